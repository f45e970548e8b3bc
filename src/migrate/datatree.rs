//! ZooKeeper's DataTree as replay needs it: znodes with ZooKeeper's
//! persisted Stat, sessions with their timeouts, and `process_txn`, which
//! applies a logged transaction exactly as ZooKeeper's
//! `DataTree.processTxn` does during restore.
//!
//! Why not zoocore's own `Tree::apply`: ZooKeeper's snapshots are fuzzy
//! (written while transactions go on), so replay starts at the snapshot's
//! zxid and may meet transactions the snapshot already holds. ZooKeeper's
//! transactions carry absolute values (the data version after a setData,
//! the parent's cversion after a create) and its replay ignores NoNode and
//! NodeExists, which makes that overlap harmless. zoocore's transactions are
//! relative (version + 1), right for its own log but wrong here. So replay
//! runs on this model and the result is converted once into a `Tree`.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::zkformat::{opcode, Snapshot, SnapshotNode, StatPersisted, Txn, TxnHeader, OPEN_ACL_KEY};
use crate::proto::codes::ephemeral_owner;
use crate::proto::Acl;
use crate::tree::{self, NodeFields, RestoredNode, Session, Tree};

/// ZooKeeper's `superSecret`, mixed into the seed of a session's password.
const SUPER_SECRET: i64 = 0xB341_5C00;

/// A znode in the model.
#[derive(Debug, Clone)]
pub struct ZkNode {
    pub data: Option<Arc<[u8]>>,
    pub acl: Arc<[Acl]>,
    pub stat: StatPersisted,
}

/// Counts of what replay did, for the import summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayCounts {
    pub transactions: u64,
    /// Operations ZooKeeper's restore also ignores: a create of a node
    /// that exists, a change of one that does not (the snapshot already
    /// held them).
    pub ignored: u64,
}

#[derive(Debug, Clone, Default)]
pub struct DataTree {
    /// Path ("/" for the root) to node.
    pub nodes: HashMap<String, ZkNode>,
    /// Session id to timeout (ms).
    pub sessions: HashMap<i64, i32>,
    ephemerals: HashMap<i64, BTreeSet<String>>,
    acl_cache: HashMap<Vec<Acl>, Arc<[Acl]>>,
    pub last_zxid: i64,
    pub counts: ReplayCounts,
}

/// Why a snapshot does not form a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeFault {
    MissingParent { path: String },
    UnknownAcl { path: String, key: i64 },
    NoRoot,
}

impl std::fmt::Display for TreeFault {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TreeFault::MissingParent { path } => write!(formatter, "node {path:?} comes before its parent"),
            TreeFault::UnknownAcl { path, key } => {
                write!(formatter, "node {path:?} names ACL {key}, which the ACL map does not hold")
            }
            TreeFault::NoRoot => write!(formatter, "the snapshot has no root node"),
        }
    }
}

fn parent_of(path: &str) -> Option<&str> {
    tree::split(path).map(|(parent, _)| parent)
}

/// The session id of an ephemeral owner, None for persistent, container
/// and TTL nodes (as zoocore's tree and ZooKeeper's EphemeralType decide).
fn owner_session(owner: i64) -> Option<i64> {
    (owner != 0 && owner != ephemeral_owner::CONTAINER && ephemeral_owner::ttl_of(owner).is_none()).then_some(owner)
}

impl DataTree {
    /// The tree a snapshot holds, at the zxid in its file name.
    pub fn from_snapshot(snapshot: Snapshot, zxid: i64) -> Result<DataTree, TreeFault> {
        let mut tree = DataTree { last_zxid: zxid, ..DataTree::default() };
        let mut acl_map: HashMap<i64, Arc<[Acl]>> = HashMap::with_capacity(snapshot.acls.len());
        for (key, list) in &snapshot.acls {
            let shared = tree.intern(list);
            acl_map.insert(*key, shared);
        }
        let open = tree.intern(&Acl::open_unsafe());
        tree.nodes.reserve(snapshot.nodes.len());
        for SnapshotNode { path, data, acl_key, stat } in snapshot.nodes {
            let path = if path.is_empty() { "/".to_string() } else { path };
            if let Some(parent) = parent_of(&path) {
                if !tree.nodes.contains_key(parent) {
                    return Err(TreeFault::MissingParent { path });
                }
            }
            let acl = match acl_map.get(&acl_key) {
                Some(acl) => acl.clone(),
                None if acl_key == OPEN_ACL_KEY => open.clone(),
                None => return Err(TreeFault::UnknownAcl { path, key: acl_key }),
            };
            if let Some(session) = owner_session(stat.ephemeral_owner) {
                tree.ephemerals.entry(session).or_default().insert(path.clone());
            }
            tree.nodes.insert(path, ZkNode { data: data.map(Arc::from), acl, stat });
        }
        if !tree.nodes.contains_key("/") {
            return Err(TreeFault::NoRoot);
        }
        tree.sessions = snapshot.sessions.iter().copied().collect();
        Ok(tree)
    }

    fn intern(&mut self, list: &[Acl]) -> Arc<[Acl]> {
        if let Some(shared) = self.acl_cache.get(list) {
            return shared.clone();
        }
        let shared: Arc<[Acl]> = Arc::from(list.to_vec());
        self.acl_cache.insert(list.to_vec(), shared.clone());
        shared
    }

    /// Applies one logged transaction, as ZooKeeper's restore does
    /// (FileTxnSnapLog.processTransaction, then DataTree.processTxn).
    pub fn process_txn(&mut self, header: &TxnHeader, txn: &Txn) {
        self.counts.transactions += 1;
        match txn {
            Txn::CreateSession { timeout_ms } => {
                self.sessions.insert(header.client_id, *timeout_ms);
            }
            Txn::CloseSession { paths } => {
                self.sessions.remove(&header.client_id);
                self.kill_session(header.client_id, header.zxid, paths.as_deref());
            }
            Txn::Multi(operations) => {
                // A multi with an error in it changed nothing.
                if !operations.iter().any(|(kind, _)| *kind == opcode::ERROR) {
                    for (kind, operation) in operations {
                        self.apply_operation(header, *kind, operation);
                    }
                }
            }
            other => self.apply_operation(header, header.kind, other),
        }
        if header.zxid > self.last_zxid {
            self.last_zxid = header.zxid;
        }
    }

    fn apply_operation(&mut self, header: &TxnHeader, kind: i32, txn: &Txn) {
        let zxid = header.zxid;
        let applied = match txn {
            Txn::Create { path, data, acl, ephemeral, parent_cversion } => {
                let owner = if *ephemeral { header.client_id } else { 0 };
                let created = self.create_node(path, data, acl, owner, *parent_cversion, zxid, header.time);
                if !created && kind == opcode::CREATE {
                    // ZooKeeper's fix-up for a node deleted and created again
                    // inside the fuzzy range: the parent still takes the
                    // logged cversion and zxid.
                    if let Some(parent) = parent_of(path) {
                        self.set_cversion_pzxid(parent, *parent_cversion, zxid);
                    }
                }
                created
            }
            Txn::CreateContainer { path, data, acl, parent_cversion } => {
                self.create_node(path, data, acl, ephemeral_owner::CONTAINER, *parent_cversion, zxid, header.time)
            }
            Txn::CreateTtl { path, data, acl, parent_cversion, ttl_ms } => {
                self.create_node(path, data, acl, ephemeral_owner::ttl(*ttl_ms), *parent_cversion, zxid, header.time)
            }
            Txn::Delete { path } => self.delete_node(path, zxid),
            Txn::SetData { path, data, version } => match self.nodes.get_mut(path.as_str()) {
                Some(node) => {
                    node.data = data.as_deref().map(Arc::from);
                    node.stat.mtime = header.time;
                    node.stat.mzxid = zxid;
                    node.stat.version = *version;
                    true
                }
                None => false,
            },
            Txn::SetAcl { path, acl, version } => {
                let acl = self.intern(acl);
                match self.nodes.get_mut(path.as_str()) {
                    Some(node) => {
                        node.acl = acl;
                        node.stat.aversion = *version;
                        true
                    }
                    None => false,
                }
            }
            Txn::Check { .. } | Txn::Error { .. } => true,
            // Sessions inside a multi do not occur; a nested multi is
            // refused by the decoder.
            Txn::CreateSession { .. } | Txn::CloseSession { .. } | Txn::Multi(_) => false,
        };
        if !applied {
            self.counts.ignored += 1;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn create_node(
        &mut self,
        path: &str,
        data: &Option<Vec<u8>>,
        acl: &[Acl],
        owner: i64,
        parent_cversion: i32,
        zxid: i64,
        time: i64,
    ) -> bool {
        let Some(parent_path) = parent_of(path) else { return false };
        if self.nodes.contains_key(path) {
            return false;
        }
        let acl = self.intern(acl);
        let Some(parent) = self.nodes.get_mut(parent_path) else { return false };
        let new_cversion = if parent_cversion == -1 { parent.stat.cversion + 1 } else { parent_cversion };
        // Replaying a create the snapshot's parent already counted must not
        // move its cversion and pzxid back.
        if new_cversion > parent.stat.cversion {
            parent.stat.cversion = new_cversion;
            parent.stat.pzxid = zxid;
        }
        let stat = StatPersisted {
            czxid: zxid,
            mzxid: zxid,
            ctime: time,
            mtime: time,
            version: 0,
            cversion: 0,
            aversion: 0,
            ephemeral_owner: owner,
            pzxid: zxid,
        };
        if let Some(session) = owner_session(owner) {
            self.ephemerals.entry(session).or_default().insert(path.to_string());
        }
        self.nodes.insert(path.to_string(), ZkNode { data: data.as_deref().map(Arc::from), acl, stat });
        true
    }

    fn set_cversion_pzxid(&mut self, path: &str, cversion: i32, zxid: i64) {
        if let Some(node) = self.nodes.get_mut(path) {
            let cversion = if cversion == -1 { node.stat.cversion + 1 } else { cversion };
            if cversion > node.stat.cversion {
                node.stat.cversion = cversion;
                node.stat.pzxid = zxid;
            }
        }
    }

    fn delete_node(&mut self, path: &str, zxid: i64) -> bool {
        let Some(parent_path) = parent_of(path) else { return false };
        let Some(node) = self.nodes.remove(path) else { return false };
        if let Some(session) = owner_session(node.stat.ephemeral_owner) {
            if let Some(paths) = self.ephemerals.get_mut(&session) {
                paths.remove(path);
                if paths.is_empty() {
                    self.ephemerals.remove(&session);
                }
            }
        }
        if let Some(parent) = self.nodes.get_mut(parent_path) {
            if zxid > parent.stat.pzxid {
                parent.stat.pzxid = zxid;
            }
        }
        true
    }

    /// ZooKeeper's killSession: the paths the transaction names, then any
    /// ephemeral of the session still left.
    fn kill_session(&mut self, session: i64, zxid: i64, paths: Option<&[String]>) {
        for path in paths.unwrap_or_default() {
            self.delete_node(path, zxid);
        }
        let left: Vec<String> =
            self.ephemerals.remove(&session).map(|paths| paths.into_iter().collect()).unwrap_or_default();
        for path in left {
            self.delete_node(&path, zxid);
        }
    }

    /// The zoocore tree holding the same znodes, Stats, ACLs and sessions.
    /// A session's password is the one ZooKeeper gave it, so its clients can
    /// resume it on zoocore.
    pub fn into_tree(self) -> Result<Tree, String> {
        // imbl's OrdSet::new allocates a node: one shared empty set spares
        // an allocation (and zeroed pages) per znode.
        let nodes = self.nodes.iter().map(|(path, node)| {
            let stat = node.stat;
            RestoredNode {
                path,
                data: node.data.as_deref(),
                acl: &node.acl,
                fields: NodeFields {
                    czxid: stat.czxid,
                    mzxid: stat.mzxid,
                    pzxid: stat.pzxid,
                    ctime_ms: stat.ctime,
                    mtime_ms: stat.mtime,
                    version: stat.version,
                    cversion: stat.cversion,
                    aversion: stat.aversion,
                    ephemeral_owner: stat.ephemeral_owner,
                    // Counted by Tree::restore.
                    num_children: 0,
                },
            }
        });
        let sessions = self.sessions.iter().map(|(id, timeout_ms)| Session {
            id: *id,
            timeout_ms: *timeout_ms,
            password: zookeeper_password(*id),
        });
        Tree::restore(nodes, sessions, self.last_zxid)
    }
}

/// The password ZooKeeper gives session `session_id`
/// (SessionTrackerImpl/ZooKeeperServer.generatePasswd): 16 bytes of
/// `java.util.Random` seeded with the id XOR ZooKeeper's super secret.
pub fn zookeeper_password(session_id: i64) -> [u8; 16] {
    const MULTIPLIER: u64 = 0x5_DEEC_E66D;
    const MASK: u64 = (1 << 48) - 1;
    let mut seed = ((session_id ^ SUPER_SECRET) as u64 ^ MULTIPLIER) & MASK;
    let mut next_int = || {
        seed = (seed.wrapping_mul(MULTIPLIER).wrapping_add(0xB)) & MASK;
        (seed >> 16) as u32
    };
    let mut password = [0u8; 16];
    // Random.nextBytes: each int fills four bytes, low byte first.
    for chunk in password.chunks_mut(4) {
        let mut value = next_int();
        for byte in chunk {
            *byte = value as u8;
            value >>= 8;
        }
    }
    password
}

/// A ZooKeeper snapshot of a zoocore tree: nodes depth first from the root
/// (stored as ""), each distinct ACL list once in the ACL map, keys from 1
/// as ZooKeeper's ReferenceCountedACLCache numbers them.
pub fn snapshot_of(tree: &Tree) -> Snapshot {
    let mut acl_keys: HashMap<Vec<Acl>, i64> = HashMap::new();
    let mut acls: Vec<(i64, Vec<Acl>)> = Vec::new();
    let mut nodes = Vec::with_capacity(tree.node_count());
    let mut stack: Vec<String> = vec!["/".to_string()];
    while let Some(path) = stack.pop() {
        let Some(node) = tree.get(&path) else { continue };
        let key = match acl_keys.get(&node.acl()[..]) {
            Some(key) => *key,
            None => {
                let key = acls.len() as i64 + 1;
                acl_keys.insert(node.acl().to_vec(), key);
                acls.push((key, node.acl().to_vec()));
                key
            }
        };
        nodes.push(SnapshotNode {
            path: if path == "/" { String::new() } else { path.clone() },
            data: node.data().map(<[u8]>::to_vec),
            acl_key: key,
            stat: StatPersisted {
                czxid: node.czxid(),
                mzxid: node.mzxid(),
                ctime: node.ctime_ms(),
                mtime: node.mtime_ms(),
                version: node.version(),
                cversion: node.cversion(),
                aversion: node.aversion(),
                ephemeral_owner: node.ephemeral_owner(),
                pzxid: node.pzxid(),
            },
        });
        // Reversed so that children come out in name order.
        for child in tree.children(&path).into_iter().rev() {
            stack.push(tree::join(&path, child));
        }
    }
    let mut sessions: Vec<(i64, i32)> = tree.sessions().map(|session| (session.id, session.timeout_ms)).collect();
    sessions.sort_unstable();
    // dbid -1: what FileSnap writes for a standalone server's database.
    Snapshot { dbid: -1, sessions, acls, nodes, digest: None, checksum: 0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::zkformat;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    #[test]
    fn passwords_follow_java_util_random() {
        // new java.util.Random(id ^ 0xB3415C00L).nextBytes(new byte[16]),
        // printed by OpenJDK 17 for these ids.
        assert_eq!(hex(&zookeeper_password(42)), "c813ee495620c3a68794ef27a239e8a9");
        assert_eq!(hex(&zookeeper_password(0x0100_00ab_cdef_0001)), "76b39f6d54c3bc4f6ebe2fdff1198ecf");
        assert_eq!(hex(&zookeeper_password(-5)), "d47144b5e45e45c49c3b7fdcd66257ba");
    }

    fn header(zxid: i64, kind: i32) -> TxnHeader {
        TxnHeader { client_id: 7, cxid: 1, zxid, time: 1000 + zxid, kind }
    }

    fn create(path: &str, parent_cversion: i32) -> Txn {
        Txn::Create {
            path: path.to_string(),
            data: Some(b"d".to_vec()),
            acl: Acl::open_unsafe(),
            ephemeral: false,
            parent_cversion,
        }
    }

    #[test]
    fn replay_over_a_fuzzy_snapshot_is_idempotent_as_in_zookeeper() {
        let mut model = DataTree::from_snapshot(snapshot_of(&Tree::new()), 0).unwrap();
        model.process_txn(&header(1, opcode::CREATE), &create("/a", 1));
        model.process_txn(&header(2, opcode::SET_DATA), &Txn::SetData { path: "/a".into(), data: None, version: 1 });
        let once = model.nodes["/a"].stat;
        let root_once = model.nodes["/"].stat;
        // The same transactions again (the snapshot already held them).
        model.process_txn(&header(1, opcode::CREATE), &create("/a", 1));
        model.process_txn(&header(2, opcode::SET_DATA), &Txn::SetData { path: "/a".into(), data: None, version: 1 });
        assert_eq!(model.nodes["/a"].stat, once);
        assert_eq!(model.nodes["/"].stat, root_once);
        assert_eq!(model.counts.ignored, 1, "the second create is ignored");
        // A node deleted and created again in the fuzzy range: the create
        // of a node that exists still moves the parent (ZooKeeper's fix-up).
        model.process_txn(&header(3, opcode::CREATE), &create("/a", 5));
        assert_eq!((model.nodes["/"].stat.cversion, model.nodes["/"].stat.pzxid), (5, 3));
        // A multi with an error changes nothing.
        let failed = Txn::Multi(vec![(opcode::CREATE, create("/b", 6)), (opcode::ERROR, Txn::Error { code: -101 })]);
        model.process_txn(&header(4, opcode::MULTI), &failed);
        assert!(!model.nodes.contains_key("/b"));
        assert_eq!(model.last_zxid, 4);
    }

    #[test]
    fn closing_a_session_deletes_its_ephemerals() {
        let mut model = DataTree::from_snapshot(snapshot_of(&Tree::new()), 0).unwrap();
        model.process_txn(&header(1, opcode::CREATE_SESSION), &Txn::CreateSession { timeout_ms: 30_000 });
        let ephemeral = Txn::Create {
            path: "/e".to_string(),
            data: None,
            acl: Acl::open_unsafe(),
            ephemeral: true,
            parent_cversion: 1,
        };
        model.process_txn(&header(2, opcode::CREATE), &ephemeral);
        assert_eq!(model.nodes["/e"].stat.ephemeral_owner, 7);
        model.process_txn(&header(3, opcode::CLOSE_SESSION), &Txn::CloseSession { paths: None });
        assert!(!model.nodes.contains_key("/e") && model.sessions.is_empty());
        assert_eq!(model.nodes["/"].stat.pzxid, 3);
    }

    #[test]
    fn a_snapshot_round_trips_through_the_model() {
        let tree = Tree::new();
        let snapshot = snapshot_of(&tree);
        let stream = zkformat::encode_snapshot(&snapshot);
        let decoded = zkformat::decode_snapshot(&stream).unwrap();
        let model = DataTree::from_snapshot(decoded, 0).unwrap();
        let back = model.into_tree().unwrap();
        assert_eq!(back.node_count(), tree.node_count());
        for (path, node) in tree.paths() {
            assert_eq!(back.get(path).map(|node| node.stat()), Some(node.stat()), "{path}");
        }
    }
}
