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

#[test]
fn fresh_tree_has_the_zookeeper_nodes() {
    let tree = Tree::new();
    assert_eq!(tree.get("/").unwrap().stat().num_children, 1);
    assert_eq!(tree.get(CONFIG_PATH).unwrap().acl[..], Acl::read_unsafe()[..]);
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
    assert_eq!(tree.get("/").unwrap().cversion, 1, "the create counter does not move on delete");
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
    assert_eq!(before.get("/a").unwrap().version, 0);
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
    let nodes: Vec<(Path, Node)> = tree.paths().map(|(path, node)| (path.clone(), Node::clone(node))).collect();
    let sessions: Vec<Session> = tree.sessions().cloned().collect();
    let restored = Tree::restore(nodes, sessions, tree.last_zxid()).unwrap();
    assert_eq!(restored.node_count(), tree.node_count());
    assert_eq!(restored.get("/a").unwrap().stat(), tree.get("/a").unwrap().stat());
    assert_eq!(restored.get("/").unwrap().stat(), tree.get("/").unwrap().stat());
    assert_eq!(restored.ephemerals_of(7).count(), 1);
    assert_eq!(restored.containers().count(), 1);
    assert_eq!(restored.approximate_data_bytes(), tree.approximate_data_bytes());
    assert_eq!(restored.session(7), tree.session(7));
    let orphan = vec![(Arc::from("/x/y"), Node::clone(tree.get("/a").unwrap()))];
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
            assert_eq!(&*node.path, path.as_str());
            let children: Vec<String> = tree.children(path).into_iter().map(str::to_string).collect();
            assert_eq!(children, model_children(model, path), "children of {path}");
            assert_eq!(node.num_children as usize, children.len());
        }
        let mut paths: Vec<String> = tree.paths().map(|(path, _)| path.to_string()).collect();
        paths.sort();
        assert_eq!(paths, model.iter().cloned().collect::<Vec<_>>());
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
