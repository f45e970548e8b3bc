use super::node::DataSource;
use super::*;
use crate::proto::codes::ephemeral_owner;

fn header(zxid: i64) -> TxnHeader {
    TxnHeader { zxid, time_ms: 1000 + zxid, session_id: 7, cxid: 0 }
}

fn create(path: &str, owner: i64) -> Txn {
    Txn::Create {
        path: Arc::from(path),
        data: Some(Arc::from(&b"data"[..])),
        acl: Arc::from(Acl::open_unsafe()),
        ephemeral_owner: owner,
    }
}

/// A node's content, owned, to build variants of it.
#[derive(Clone)]
struct Parts {
    path: String,
    data: Option<Vec<u8>>,
    acl: Arc<[Acl]>,
    fields: NodeFields,
}

impl Parts {
    fn of(node: &Node) -> Parts {
        Parts {
            path: node.path().to_string(),
            data: node.data().map(<[u8]>::to_vec),
            acl: node.acl().clone(),
            fields: node.fields(),
        }
    }

    fn build(&self) -> Node {
        let data = self.data.as_deref().map_or(DataSource::Null, DataSource::Bytes);
        Node::build(&self.path, data, &Arc::new(self.acl.clone()), &self.fields)
    }
}

#[test]
fn fresh_tree_has_the_zookeeper_nodes() {
    let tree = Tree::new();
    assert_eq!(tree.get("/").unwrap().stat().num_children, 1);
    assert_eq!(tree.get(CONFIG_PATH).unwrap().acl()[..], Acl::read_unsafe()[..]);
    assert!(tree.get(QUOTA_PATH).is_some());
    assert_eq!(tree.descendant_count("/"), 3);
}

#[test]
fn create_moves_parent_cversion_and_pzxid_delete_only_pzxid() {
    let mut tree = Tree::new();
    let applied = tree.apply(&header(5), &create("/a", 0));
    assert_eq!(applied.triggers, vec![Trigger::Created(Arc::from("/a")), Trigger::ChildrenChanged(Arc::from("/"))]);
    let stat = tree.get("/a").unwrap().stat();
    assert_eq!((stat.czxid, stat.mzxid, stat.pzxid, stat.ctime, stat.data_length), (5, 5, 5, 1005, 4));
    // Reported cversion is 2 * creates - children: the root's /zookeeper
    // child was never "created", so a fresh root reports -1.
    assert_eq!(Tree::new().get("/").unwrap().stat().cversion, -1);
    let root = tree.get("/").unwrap().stat();
    assert_eq!((root.cversion, root.pzxid, root.num_children), (0, 5, 2));
    tree.apply(&header(6), &Txn::Delete { path: Arc::from("/a") });
    let root = tree.get("/").unwrap().stat();
    assert_eq!((root.cversion, root.pzxid, root.num_children), (1, 6, 1));
    assert_eq!(tree.get("/").unwrap().cversion(), 1, "the create counter does not move on delete");
    assert_eq!(tree.last_zxid(), 6);
}

#[test]
fn set_data_and_acl_bump_their_versions() {
    let mut tree = Tree::new();
    tree.apply(&header(1), &create("/a", 0));
    let before = tree.clone();
    tree.apply(&header(2), &Txn::SetData { path: Arc::from("/a"), data: Some(Arc::from(&b"xy"[..])) });
    tree.apply(&header(3), &Txn::SetAcl { path: Arc::from("/a"), acl: Arc::from(Acl::read_unsafe()) });
    let stat = tree.get("/a").unwrap().stat();
    assert_eq!((stat.version, stat.aversion, stat.mzxid, stat.mtime, stat.data_length), (1, 1, 2, 1002, 2));
    // The clone taken before is a separate version: copy-on-write.
    assert_eq!(before.get("/a").unwrap().version(), 0);
}

#[test]
fn close_session_removes_its_ephemerals_only() {
    let mut tree = Tree::new();
    tree.apply(&header(1), &Txn::CreateSession { session_id: 7, timeout_ms: 4000, password: [1; 16] });
    tree.apply(&header(2), &create("/e", 7));
    tree.apply(&header(3), &create("/p", 0));
    tree.apply(&header(4), &create("/c", ephemeral_owner::CONTAINER));
    assert_eq!(tree.ephemerals_of(7).count(), 1);
    assert_eq!(tree.containers().count(), 1);
    let applied = tree.apply(&header(5), &Txn::CloseSession { session_id: 7 });
    assert!(applied.triggers.contains(&Trigger::Deleted(Arc::from("/e"))));
    assert!(tree.get("/e").is_none() && tree.get("/p").is_some() && tree.session(7).is_none());
    assert_eq!(tree.ephemeral_count(), 0);
}

#[test]
fn transactions_that_do_not_fit_are_skipped() {
    let mut tree = Tree::new();
    let applied = tree.apply(&header(1), &Txn::Delete { path: Arc::from("/missing") });
    assert_eq!(applied.outcomes, vec![OpOutcome::Skipped]);
    let applied = tree.apply(&header(2), &create("/no/parent", 0));
    assert_eq!(applied.outcomes, vec![OpOutcome::Skipped]);
    tree.apply(&header(3), &create("/a", 0));
    tree.apply(&header(4), &create("/a/b", 0));
    assert_eq!(tree.apply(&header(5), &Txn::Delete { path: Arc::from("/a") }).outcomes, vec![OpOutcome::Skipped]);
    assert_eq!(tree.approximate_data_bytes(), Tree::new().approximate_data_bytes() + 2 + 4 + 4 + 4);
}

#[test]
fn restore_rebuilds_children_and_indexes() {
    let mut tree = Tree::new();
    tree.apply(&header(1), &Txn::CreateSession { session_id: 7, timeout_ms: 4000, password: [1; 16] });
    tree.apply(&header(2), &create("/a", 0));
    tree.apply(&header(3), &create("/a/e", 7));
    tree.apply(&header(4), &create("/c", ephemeral_owner::CONTAINER));
    let nodes: Vec<RestoredNode> = tree.paths().map(|(_, node)| RestoredNode::of(node)).collect();
    let sessions: Vec<Session> = tree.sessions().cloned().collect();
    let restored = Tree::restore(nodes, sessions, tree.last_zxid()).unwrap();
    assert_eq!(restored.node_count(), tree.node_count());
    assert_eq!(restored.get("/a").unwrap().stat(), tree.get("/a").unwrap().stat());
    assert_eq!(restored.get("/").unwrap().stat(), tree.get("/").unwrap().stat());
    assert_eq!(restored.ephemerals_of(7).count(), 1);
    assert_eq!(restored.containers().count(), 1);
    assert_eq!(restored.approximate_data_bytes(), tree.approximate_data_bytes());
    assert_eq!(restored.session(7), tree.session(7));
    let orphan = vec![RestoredNode { path: "/x/y", ..RestoredNode::of(tree.get("/a").unwrap()) }];
    assert!(Tree::restore(orphan, Vec::new(), 0).is_err());
}

#[test]
fn split_and_join() {
    assert_eq!(split("/a"), Some(("/", "a")));
    assert_eq!(split("/a/b"), Some(("/a", "b")));
    assert_eq!(split("/"), None);
    assert_eq!(join("/", "a"), "/a");
    assert_eq!(join("/a", "b"), "/a/b");
}

/// The tree against a model (a sorted set of paths) under random creates
/// and deletes in a small namespace, so parents fill up, empty out and
/// share trie prefixes; every older version must stay as it was.
mod model {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    fn model_children(model: &BTreeSet<String>, parent: &str) -> Vec<String> {
        let mut names: Vec<String> = model
            .iter()
            .filter(|path| split(path).is_some_and(|(candidate, _)| candidate == parent))
            .map(|path| split(path).unwrap().1.to_string())
            .collect();
        names.sort();
        names
    }

    fn check(tree: &Tree, model: &BTreeSet<String>) {
        assert_eq!(tree.node_count(), model.len());
        for path in model {
            let node = tree.get(path).unwrap_or_else(|| panic!("{path} missing"));
            assert_eq!(node.path(), path.as_str());
            let children: Vec<String> = tree.children(path).into_iter().map(str::to_string).collect();
            assert_eq!(children, model_children(model, path), "children of {path}");
            assert_eq!(node.num_children() as usize, children.len());
        }
        let mut paths: Vec<String> = tree.paths().map(|(path, _)| path.to_string()).collect();
        paths.sort();
        assert_eq!(paths, model.iter().cloned().collect::<Vec<_>>());
        assert_eq!(tree.digest(), super::digest_by_walk(tree), "the rolling digest is the sum over the nodes");
    }

    fn path_of(choice: (u8, u8, u8)) -> String {
        let (depth, first, second) = choice;
        match depth % 3 {
            0 => format!("/n{}", first % 40),
            1 => format!("/n{}/c{}", first % 8, second % 60),
            _ => format!("/n{}/c{}/g{}", first % 3, second % 5, first % 7),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn tree_matches_the_model(ops in proptest::collection::vec((any::<bool>(), any::<(u8, u8, u8)>()), 1..400)) {
            let mut tree = Tree::new();
            let mut model: BTreeSet<String> =
                ["/", ZOOKEEPER_PATH, QUOTA_PATH, CONFIG_PATH].iter().map(|path| path.to_string()).collect();
            let mut versions: Vec<(Tree, BTreeSet<String>)> = Vec::new();
            for (zxid, (is_create, choice)) in ops.into_iter().enumerate() {
                let path = path_of(choice);
                let zxid = zxid as i64 + 1;
                if is_create {
                    let parent_exists = model.contains(split(&path).unwrap().0);
                    let applied = tree.apply(&header(zxid), &create(&path, 0));
                    let created = matches!(applied.outcomes[0], OpOutcome::Created(..));
                    prop_assert_eq!(created, parent_exists && !model.contains(&path));
                    if created {
                        model.insert(path);
                    }
                } else {
                    let deletable = model.contains(&path) && model_children(&model, &path).is_empty();
                    let applied = tree.apply(&header(zxid), &Txn::Delete { path: Arc::from(path.as_str()) });
                    prop_assert_eq!(applied.outcomes[0] == OpOutcome::Deleted, deletable);
                    if deletable {
                        model.remove(&path);
                    }
                }
                if zxid % 50 == 0 {
                    versions.push((tree.clone(), model.clone()));
                }
            }
            check(&tree, &model);
            for (version, version_model) in &versions {
                check(version, version_model);
            }
        }
    }
}

// ----- the digest -----------------------------------------------------------

/// The digest computed the slow way: every node's hash, summed.
fn digest_by_walk(tree: &Tree) -> u64 {
    tree.paths().fold(0u64, |sum, (_, node)| sum.wrapping_add(digest::node_digest(node)))
}

/// CRC-32 (IEEE) written out bit by bit, to check the hash against the
/// definition rather than against the crate that computes it.
fn crc32_by_bits(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[test]
fn node_hash_is_zookeepers_crc_of_path_data_and_stat() {
    let mut tree = Tree::new();
    tree.apply(&header(0x1_0000_0005), &create("/a", 0x77));
    let node = tree.get("/a").unwrap();
    let mut bytes = b"/adata".to_vec();
    for field in [0x1_0000_0005i64, 0x1_0000_0005, 0x1_0000_0005, 1000 + 0x1_0000_0005, 1000 + 0x1_0000_0005] {
        bytes.extend_from_slice(&field.to_be_bytes());
    }
    for field in [0i32, 0, 0] {
        bytes.extend_from_slice(&field.to_be_bytes());
    }
    bytes.extend_from_slice(&0x77i64.to_be_bytes());
    assert_eq!(bytes.len(), 6 + 60);
    assert_eq!(digest::node_digest(node), u64::from(crc32_by_bits(&bytes)));
    // The root hashes as "", and /zookeeper counts but what is below it
    // does not (ZooKeeper's DigestCalculator).
    let zeros = [0u8; 60];
    let fresh = Tree::new();
    let root = u64::from(crc32_by_bits(&zeros));
    let zookeeper = u64::from(crc32_by_bits(&[b"/zookeeper".as_slice(), &zeros].concat()));
    assert_eq!(fresh.digest(), root + zookeeper);
    assert_eq!(digest::node_digest(fresh.get(QUOTA_PATH).unwrap()), 0);
    assert_eq!(digest::node_digest(fresh.get(CONFIG_PATH).unwrap()), 0);
}

#[test]
fn every_digested_field_changes_the_node_hash() {
    let mut tree = Tree::new();
    tree.apply(&header(1), &create("/a", 0));
    let base = Parts::of(tree.get("/a").unwrap());
    type Change = fn(&mut Parts);
    let changes: Vec<(&str, Change)> = vec![
        ("path", |node| node.path = "/b".to_string()),
        ("data", |node| node.data = Some(b"datb".to_vec())),
        ("czxid", |node| node.fields.czxid += 1),
        ("mzxid", |node| node.fields.mzxid += 1),
        ("pzxid", |node| node.fields.pzxid += 1),
        ("ctime", |node| node.fields.ctime_ms += 1),
        ("mtime", |node| node.fields.mtime_ms += 1),
        ("version", |node| node.fields.version += 1),
        ("cversion", |node| node.fields.cversion += 1),
        ("aversion", |node| node.fields.aversion += 1),
        ("ephemeral owner", |node| node.fields.ephemeral_owner = 5),
        ("container marker", |node| node.fields.ephemeral_owner = ephemeral_owner::CONTAINER),
        ("ttl marker", |node| node.fields.ephemeral_owner = ephemeral_owner::ttl(1000)),
    ];
    let base_node = base.build();
    for (field, change) in changes {
        let mut changed = base.clone();
        change(&mut changed);
        assert_ne!(digest::node_digest(&changed.build()), digest::node_digest(&base_node), "{field}");
    }
    // As in ZooKeeper, neither the ACL (aversion stands for it), the
    // children count, nor null against empty data is hashed.
    let mut same = base.clone();
    same.acl = Arc::from(Acl::read_unsafe());
    same.fields.num_children = 3;
    assert_eq!(digest::node_digest(&same.build()), digest::node_digest(&base_node));
    let (mut null, mut empty) = (base.clone(), base.clone());
    null.data = None;
    empty.data = Some(Vec::new());
    let (null, empty) = (null.build(), empty.build());
    assert_eq!(digest::node_digest(&null), digest::node_digest(&empty));
}

#[test]
fn every_change_moves_the_digest_and_no_op_leaves_it() {
    let mut tree = Tree::new();
    let mut zxid = 0;
    let mut step = |tree: &mut Tree, txn: Txn| {
        zxid += 1;
        let before = tree.digest();
        tree.apply(&header(zxid), &txn);
        assert_eq!(tree.digest(), digest_by_walk(tree), "{txn:?}");
        before != tree.digest()
    };
    let path = |text: &str| -> Path { Arc::from(text) };
    assert!(step(&mut tree, create("/a", 0)));
    assert!(step(&mut tree, create("/a/b", 7)));
    assert!(step(&mut tree, Txn::SetData { path: path("/a"), data: Some(Arc::from(&b"other"[..])) }));
    assert!(step(&mut tree, Txn::SetData { path: path("/"), data: None }));
    assert!(step(&mut tree, Txn::SetAcl { path: path("/a/b"), acl: Arc::from(Acl::read_unsafe()) }));
    assert!(step(&mut tree, Txn::Delete { path: path("/a/b") }));
    assert!(step(&mut tree, create("/e", 0x56)));
    assert!(step(&mut tree, Txn::CloseSession { session_id: 0x56 }));
    assert!(step(&mut tree, Txn::Multi(vec![create("/m", 0), Txn::Delete { path: path("/m") }])));
    // Changes that change no node.
    assert!(!step(&mut tree, Txn::CreateSession { session_id: 0x57, timeout_ms: 4000, password: [0; 16] }));
    assert!(!step(&mut tree, Txn::CloseSession { session_id: 0x57 }), "a session without ephemerals");
    assert!(!step(&mut tree, Txn::Check { path: path("/a") }));
    assert!(!step(&mut tree, Txn::Error { code: -101 }));
    assert!(!step(&mut tree, Txn::Delete { path: path("/missing") }));
    assert!(!step(&mut tree, create("/a", 0)));
    // Quota bookkeeping under /zookeeper/ is left out, as ZooKeeper leaves it.
    assert!(!step(&mut tree, create("/zookeeper/quota/a", 0)));
    assert!(!step(&mut tree, create("/zookeeper/quota/a/zookeeper_limits", 0)));
}

#[test]
fn equal_content_gives_an_equal_digest_whatever_the_order() {
    let mut tree = Tree::new();
    tree.apply(&header(1), &Txn::CreateSession { session_id: 7, timeout_ms: 4000, password: [1; 16] });
    for (zxid, path) in ["/a", "/a/b", "/c", "/a/b/d", "/e"].iter().enumerate() {
        tree.apply(&header(zxid as i64 + 2), &create(path, if *path == "/e" { 7 } else { 0 }));
    }
    tree.apply(&header(9), &Txn::SetData { path: Arc::from("/c"), data: None });
    let mut nodes: Vec<RestoredNode> = tree.paths().map(|(_, node)| RestoredNode::of(node)).collect();
    // Parents before children, in two different orders.
    nodes.sort_by(|left, right| left.path.cmp(right.path));
    let forward = Tree::restore(nodes.clone(), Vec::new(), tree.last_zxid()).unwrap();
    nodes.sort_by_key(|node| (node.path.matches('/').count(), std::cmp::Reverse(node.path)));
    let backward = Tree::restore(nodes, Vec::new(), tree.last_zxid()).unwrap();
    assert_eq!(forward.digest(), tree.digest());
    assert_eq!(backward.digest(), tree.digest());
    // The same content reached by another history: a node created and
    // deleted in between leaves the parent's pzxid and create counter
    // changed, so ZooKeeper's digest (and ours) tells the two apart.
    let mut detour = Tree::new();
    detour.apply(&header(1), &create("/a", 0));
    detour.apply(&header(2), &create("/tmp", 0));
    detour.apply(&header(3), &Txn::Delete { path: Arc::from("/tmp") });
    let mut direct = Tree::new();
    direct.apply(&header(1), &create("/a", 0));
    assert_ne!(detour.digest(), direct.digest());
}

#[test]
fn the_history_keeps_every_128th_zxid_within_its_bound() {
    let mut tree = Tree::new();
    tree.apply(&header(1), &create("/a", 0));
    assert_eq!(tree.digest_log().count(), 0);
    for zxid in 2..=DIGEST_LOG_INTERVAL {
        tree.apply(&header(zxid), &Txn::SetData { path: Arc::from("/a"), data: None });
    }
    let logged: Vec<ZxidDigest> = tree.digest_log().copied().collect();
    assert_eq!(logged, vec![ZxidDigest { zxid: DIGEST_LOG_INTERVAL, digest: tree.digest() }]);
    // A zxid that passes a multiple (its index carried no transaction)
    // is logged in its place.
    tree.apply(&header(2 * DIGEST_LOG_INTERVAL + 1), &Txn::Error { code: -101 });
    assert_eq!(tree.digest_log().last().unwrap().zxid, 2 * DIGEST_LOG_INTERVAL + 1);
    // Bounded: the oldest go first.
    let first_zxid = 3 * DIGEST_LOG_INTERVAL;
    let rounds = DIGEST_LOG_LIMIT as i64 + 10;
    for round in 0..rounds {
        tree.apply(&header(first_zxid + round * DIGEST_LOG_INTERVAL), &Txn::Error { code: -101 });
    }
    let logged: Vec<i64> = tree.digest_log().map(|entry| entry.zxid).collect();
    assert_eq!(logged.len(), DIGEST_LOG_LIMIT);
    assert_eq!(logged.last(), Some(&(first_zxid + (rounds - 1) * DIGEST_LOG_INTERVAL)));
    assert!(logged.windows(2).all(|pair| pair[1] - pair[0] == DIGEST_LOG_INTERVAL));
}

#[test]
#[should_panic(expected = "zxids must move forward")]
fn applying_a_zxid_twice_is_a_bug() {
    let mut tree = Tree::new();
    tree.apply(&header(3), &create("/a", 0));
    tree.apply(&header(3), &create("/b", 0));
}

#[test]
#[should_panic(expected = "zxids must move forward")]
fn applying_an_older_zxid_is_a_bug() {
    let mut tree = Tree::new();
    tree.apply(&header(3), &create("/a", 0));
    tree.apply(&header(2), &create("/b", 0));
}

#[test]
fn a_multi_is_checked_operation_by_operation_at_one_zxid() {
    let mut tree = Tree::new();
    tree.apply(&header(1), &create("/x", 0));
    let mut scratch = tree.clone();
    scratch.apply_continuing(&header(2), &create("/a", 0));
    scratch.apply_continuing(&header(2), &create("/a/b", 0));
    let mut whole = tree.clone();
    whole.apply(&header(2), &Txn::Multi(vec![create("/a", 0), create("/a/b", 0)]));
    assert_eq!((scratch.digest(), scratch.last_zxid()), (whole.digest(), whole.last_zxid()));
}

#[test]
#[should_panic(expected = "zxids must move forward")]
fn a_multi_part_below_the_last_zxid_is_a_bug() {
    let mut tree = Tree::new();
    tree.apply(&header(3), &create("/a", 0));
    tree.apply_continuing(&header(2), &create("/b", 0));
}
