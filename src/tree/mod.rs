//! The znode tree: an immutable, persistent (copy-on-write) map from path to
//! node, and the one function that applies a transaction to it.
//!
//! Every reader on every core holds an `Arc<Tree>` of some version and reads
//! it without locks; the broadcast core clones the newest version (a pointer
//! copy: the maps are `imbl` HAMTs and B-trees that share structure), applies a
//! batch of transactions to the clone and publishes it. A snapshot is the same
//! clone written out in the background.
//!
//! `apply` is pure and deterministic: given the same tree and transaction it
//! makes the same change on the leader, on a follower, in log replay and after
//! snapshot restore. It never reads a clock (the transaction carries its time)
//! and never fails on a transaction that prep produced; on one that does not
//! fit (possible only for a damaged log) it skips that change and says so in
//! the outcome rather than panicking.

pub mod quota;
mod txn;

pub use txn::{Applied, OpOutcome, Trigger, Txn, TxnHeader};

use std::sync::Arc;

use crate::proto::codes::ephemeral_owner;
use crate::proto::{Acl, Stat};

/// Paths and child names are shared, immutable strings.
pub type Path = Arc<str>;

/// One znode. Children are kept as names; numChildren and dataLength are
/// derived, never stored twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// None is null data (a client sent a null buffer), kept apart from empty.
    pub data: Option<Arc<[u8]>>,
    pub acl: Arc<[Acl]>,
    pub czxid: i64,
    pub mzxid: i64,
    pub pzxid: i64,
    pub ctime_ms: i64,
    pub mtime_ms: i64,
    pub version: i32,
    /// The number of children ever created here (see `stat`); the suffix
    /// of the next sequential child.
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub children: imbl::OrdSet<Path>,
}

impl Node {
    pub fn stat(&self) -> Stat {
        Stat {
            czxid: self.czxid,
            mzxid: self.mzxid,
            ctime: self.ctime_ms,
            mtime: self.mtime_ms,
            version: self.version,
            // ZooKeeper stores the number of child creates and reports
            // 2 * creates - children, which counts creates and deletes.
            cversion: self.cversion.wrapping_mul(2).wrapping_sub(self.children.len() as i32),
            aversion: self.aversion,
            // Container and TTL markers are not shown to clients.
            ephemeral_owner: self.owner_session().unwrap_or(0),
            data_length: self.data_len() as i32,
            num_children: self.children.len() as i32,
            pzxid: self.pzxid,
        }
    }

    fn new_root_like(acl: Vec<Acl>) -> Node {
        Node {
            data: Some(Arc::from(&[][..])),
            acl: Arc::from(acl),
            czxid: 0,
            mzxid: 0,
            pzxid: 0,
            ctime_ms: 0,
            mtime_ms: 0,
            version: 0,
            cversion: 0,
            aversion: 0,
            ephemeral_owner: 0,
            children: imbl::OrdSet::new(),
        }
    }

    pub fn data_len(&self) -> usize {
        self.data.as_ref().map_or(0, |data| data.len())
    }

    pub fn is_container(&self) -> bool {
        self.ephemeral_owner == ephemeral_owner::CONTAINER
    }

    pub fn ttl_ms(&self) -> Option<i64> {
        ephemeral_owner::ttl_of(self.ephemeral_owner)
    }

    /// The session that owns this node, if it is an ephemeral.
    pub fn owner_session(&self) -> Option<i64> {
        let owner = self.ephemeral_owner;
        (owner != 0 && !self.is_container() && self.ttl_ms().is_none()).then_some(owner)
    }
}

/// A session as the replicated state knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: i64,
    pub timeout_ms: i32,
    pub password: [u8; 16],
}

pub const ZOOKEEPER_PATH: &str = "/zookeeper";
pub const QUOTA_PATH: &str = "/zookeeper/quota";
pub const CONFIG_PATH: &str = "/zookeeper/config";

/// One version of the whole replicated state: znodes, the index of
/// ephemerals, containers and TTL nodes, and the sessions.
#[derive(Debug, Clone)]
pub struct Tree {
    nodes: imbl::HashMap<Path, Arc<Node>>,
    ephemerals: imbl::HashMap<i64, imbl::OrdSet<Path>>,
    containers: imbl::OrdSet<Path>,
    ttls: imbl::OrdSet<Path>,
    sessions: imbl::HashMap<i64, Session>,
    last_zxid: i64,
    /// ZooKeeper's approximate_data_size: the sum of path and data lengths.
    approximate_data_bytes: i64,
}

impl Default for Tree {
    fn default() -> Self {
        Tree::new()
    }
}

impl Tree {
    /// A fresh tree: `/`, `/zookeeper`, `/zookeeper/quota` and the read-only
    /// `/zookeeper/config`, as a new ZooKeeper has them.
    pub fn new() -> Tree {
        let mut tree = Tree {
            nodes: imbl::HashMap::new(),
            ephemerals: imbl::HashMap::new(),
            containers: imbl::OrdSet::new(),
            ttls: imbl::OrdSet::new(),
            sessions: imbl::HashMap::new(),
            last_zxid: 0,
            approximate_data_bytes: 0,
        };
        let mut root = Node::new_root_like(Acl::open_unsafe());
        root.children.insert(Arc::from("zookeeper"));
        let mut zookeeper = Node::new_root_like(Acl::open_unsafe());
        zookeeper.children.insert(Arc::from("quota"));
        zookeeper.children.insert(Arc::from("config"));
        tree.put(Arc::from("/"), root);
        tree.put(Arc::from(ZOOKEEPER_PATH), zookeeper);
        tree.put(Arc::from(QUOTA_PATH), Node::new_root_like(Acl::open_unsafe()));
        // ZooKeeper's /zookeeper/config starts with aversion -1.
        let mut config = Node::new_root_like(Acl::read_unsafe());
        config.aversion = -1;
        tree.put(Arc::from(CONFIG_PATH), config);
        tree
    }

    /// Adds a new node, with its size and its place in the ephemeral,
    /// container or TTL index.
    fn put(&mut self, path: Path, node: Node) {
        self.approximate_data_bytes += (path.len() + node.data_len()) as i64;
        if node.is_container() {
            self.containers.insert(path.clone());
        } else if node.ttl_ms().is_some() {
            self.ttls.insert(path.clone());
        } else if let Some(session) = node.owner_session() {
            self.ephemerals.entry(session).or_default().insert(path.clone());
        }
        self.nodes.insert(path, Arc::new(node));
    }

    pub fn get(&self, path: &str) -> Option<&Arc<Node>> {
        self.nodes.get(path)
    }

    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    pub fn approximate_data_bytes(&self) -> i64 {
        self.approximate_data_bytes
    }

    pub fn session(&self, session_id: i64) -> Option<&Session> {
        self.sessions.get(&session_id)
    }

    pub fn sessions(&self) -> impl Iterator<Item = &Session> {
        self.sessions.values()
    }

    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// The ephemeral paths a session owns.
    pub fn ephemerals_of(&self, session_id: i64) -> impl Iterator<Item = &Path> {
        self.ephemerals.get(&session_id).into_iter().flat_map(|paths| paths.iter())
    }

    pub fn ephemeral_count(&self) -> usize {
        self.ephemerals.values().map(|paths| paths.len()).sum()
    }

    pub fn ephemerals(&self) -> impl Iterator<Item = (i64, &imbl::OrdSet<Path>)> {
        self.ephemerals.iter().map(|(session, paths)| (*session, paths))
    }

    pub fn containers(&self) -> impl Iterator<Item = &Path> {
        self.containers.iter()
    }

    pub fn ttl_nodes(&self) -> impl Iterator<Item = &Path> {
        self.ttls.iter()
    }

    pub fn paths(&self) -> impl Iterator<Item = (&Path, &Arc<Node>)> {
        self.nodes.iter()
    }

    /// Rebuilds a tree from its nodes (as a snapshot stores them: every
    /// node but the children sets, which follow from the paths), its
    /// sessions and its last zxid. The indexes of ephemerals, containers and
    /// TTL nodes are derived again. A node whose parent is missing is an
    /// error naming it, never a panic.
    pub fn restore(
        nodes: impl IntoIterator<Item = (Path, Node)>,
        sessions: impl IntoIterator<Item = Session>,
        last_zxid: i64,
    ) -> Result<Tree, String> {
        let mut tree = Tree {
            nodes: imbl::HashMap::new(),
            ephemerals: imbl::HashMap::new(),
            containers: imbl::OrdSet::new(),
            ttls: imbl::OrdSet::new(),
            sessions: imbl::HashMap::new(),
            last_zxid,
            approximate_data_bytes: 0,
        };
        let mut all: Vec<(Path, Node)> = nodes.into_iter().collect();
        // Parents before children: a parent's path is a prefix, so shorter first.
        all.sort_by(|left, right| left.0.len().cmp(&right.0.len()).then_with(|| left.0.cmp(&right.0)));
        // One shared empty set: imbl's OrdSet::new allocates a node, and
        // most znodes are leaves.
        let no_children = imbl::OrdSet::new();
        for (path, mut node) in all {
            node.children = no_children.clone();
            if &*path != "/" {
                let (parent_path, name) = split(&path).ok_or_else(|| format!("invalid path {path:?} in snapshot"))?;
                let parent = tree
                    .nodes
                    .get_mut(parent_path)
                    .ok_or_else(|| format!("node {path:?} has no parent in the snapshot"))?;
                Arc::make_mut(parent).children.insert(Arc::from(name));
            }
            tree.put(path, node);
        }
        if tree.nodes.get("/").is_none() {
            return Err("snapshot has no root node".to_string());
        }
        for session in sessions {
            tree.sessions.insert(session.id, session);
        }
        Ok(tree)
    }

    /// Counts the nodes below `path`, not counting `path` itself
    /// (getAllChildrenNumber).
    pub fn descendant_count(&self, path: &str) -> usize {
        let mut count = 0;
        let mut stack = vec![path.to_string()];
        while let Some(current) = stack.pop() {
            if let Some(node) = self.nodes.get(current.as_str()) {
                for child in node.children.iter() {
                    count += 1;
                    stack.push(join(&current, child));
                }
            }
        }
        count
    }

    /// Applies one transaction at `header.zxid`. See the module essay.
    pub fn apply(&mut self, header: &TxnHeader, txn: &Txn) -> Applied {
        // Quota stats follow the transaction's net change (tree/quota.rs).
        let quota = quota::Touched::before(self, txn);
        let mut applied = Applied::default();
        self.apply_one(header, txn, &mut applied);
        quota.after(self);
        if header.zxid > self.last_zxid {
            self.last_zxid = header.zxid;
        }
        applied
    }

    fn apply_one(&mut self, header: &TxnHeader, txn: &Txn, applied: &mut Applied) {
        match txn {
            Txn::CreateSession { session_id, timeout_ms, password } => {
                self.sessions
                    .insert(*session_id, Session { id: *session_id, timeout_ms: *timeout_ms, password: *password });
                applied.outcomes.push(OpOutcome::SessionCreated);
            }
            Txn::CloseSession { session_id } => {
                let owned: Vec<Path> = self.ephemerals_of(*session_id).cloned().collect();
                for path in owned {
                    self.delete_node(&path, header.zxid, applied);
                }
                self.sessions.remove(session_id);
                self.ephemerals.remove(session_id);
                applied.outcomes.push(OpOutcome::SessionClosed);
            }
            Txn::Create { path, data, acl, ephemeral_owner } => {
                let outcome = self.create_node(header, path, data, acl, *ephemeral_owner, applied);
                applied.outcomes.push(outcome);
            }
            Txn::Delete { path } => {
                let outcome =
                    if self.delete_node(path, header.zxid, applied) { OpOutcome::Deleted } else { OpOutcome::Skipped };
                applied.outcomes.push(outcome);
            }
            Txn::SetData { path, data } => {
                let outcome = match self.nodes.get(&**path) {
                    Some(node) => {
                        let mut node = Node::clone(node);
                        let new_length = data.as_ref().map_or(0, |data| data.len());
                        self.approximate_data_bytes += new_length as i64 - node.data_len() as i64;
                        node.data = data.clone();
                        node.version = node.version.wrapping_add(1);
                        node.mzxid = header.zxid;
                        node.mtime_ms = header.time_ms;
                        let stat = node.stat();
                        self.nodes.insert(path.clone(), Arc::new(node));
                        applied.triggers.push(Trigger::DataChanged(path.clone()));
                        OpOutcome::DataSet(stat)
                    }
                    None => OpOutcome::Skipped,
                };
                applied.outcomes.push(outcome);
            }
            Txn::SetAcl { path, acl } => {
                let outcome = match self.nodes.get(&**path) {
                    Some(node) => {
                        let mut node = Node::clone(node);
                        node.acl = acl.clone();
                        node.aversion = node.aversion.wrapping_add(1);
                        let stat = node.stat();
                        self.nodes.insert(path.clone(), Arc::new(node));
                        OpOutcome::AclSet(stat)
                    }
                    None => OpOutcome::Skipped,
                };
                applied.outcomes.push(outcome);
            }
            Txn::Check { .. } => applied.outcomes.push(OpOutcome::Checked),
            Txn::Error { .. } => applied.outcomes.push(OpOutcome::Failed),
            Txn::Multi(txns) => {
                for sub in txns {
                    self.apply_one(header, sub, applied);
                }
            }
        }
    }

    fn create_node(
        &mut self,
        header: &TxnHeader,
        path: &Path,
        data: &Option<Arc<[u8]>>,
        acl: &Arc<[Acl]>,
        owner: i64,
        applied: &mut Applied,
    ) -> OpOutcome {
        let Some((parent_path, name)) = split(path) else {
            return OpOutcome::Skipped;
        };
        if self.nodes.contains_key(&**path) {
            return OpOutcome::Skipped;
        }
        let Some(parent) = self.nodes.get(parent_path) else {
            return OpOutcome::Skipped;
        };
        let mut parent = Node::clone(parent);
        parent.children.insert(Arc::from(name));
        parent.cversion = parent.cversion.wrapping_add(1);
        parent.pzxid = header.zxid;
        self.nodes.insert(Arc::from(parent_path), Arc::new(parent));
        let node = Node {
            data: data.clone(),
            acl: acl.clone(),
            czxid: header.zxid,
            mzxid: header.zxid,
            pzxid: header.zxid,
            ctime_ms: header.time_ms,
            mtime_ms: header.time_ms,
            version: 0,
            cversion: 0,
            aversion: 0,
            ephemeral_owner: owner,
            children: imbl::OrdSet::new(),
        };
        let stat = node.stat();
        self.put(path.clone(), node);
        applied.triggers.push(Trigger::Created(path.clone()));
        applied.triggers.push(Trigger::ChildrenChanged(Arc::from(parent_path)));
        OpOutcome::Created(path.clone(), stat)
    }

    /// Removes a childless node. A delete changes the parent's pzxid and
    /// not its create counter (the reported cversion still moves, see `stat`).
    fn delete_node(&mut self, path: &Path, zxid: i64, applied: &mut Applied) -> bool {
        let Some((parent_path, name)) = split(path) else {
            return false;
        };
        let Some(node) = self.nodes.get(&**path).cloned() else {
            return false;
        };
        if !node.children.is_empty() {
            return false;
        }
        if let Some(parent) = self.nodes.get(parent_path) {
            let mut parent = Node::clone(parent);
            parent.children.remove(name);
            if zxid > parent.pzxid {
                parent.pzxid = zxid;
            }
            self.nodes.insert(Arc::from(parent_path), Arc::new(parent));
        }
        self.nodes.remove(&**path);
        self.approximate_data_bytes -= (path.len() + node.data_len()) as i64;
        if node.is_container() {
            self.containers.remove(path);
        } else if node.ttl_ms().is_some() {
            self.ttls.remove(path);
        } else if let Some(session) = node.owner_session() {
            if let Some(paths) = self.ephemerals.get_mut(&session) {
                paths.remove(path);
                if paths.is_empty() {
                    self.ephemerals.remove(&session);
                }
            }
        }
        applied.triggers.push(Trigger::Deleted(path.clone()));
        applied.triggers.push(Trigger::ChildrenChanged(Arc::from(parent_path)));
        true
    }
}

/// Splits "/a/b" into ("/a", "b") and "/a" into ("/", "a"); None for "/".
pub fn split(path: &str) -> Option<(&str, &str)> {
    let slash = path.rfind('/')?;
    if path.len() <= 1 {
        return None;
    }
    let parent = if slash == 0 { "/" } else { &path[..slash] };
    Some((parent, &path[slash + 1..]))
}

/// Joins a parent path and a child name.
pub fn join(parent: &str, child: &str) -> String {
    if parent == "/" {
        format!("/{child}")
    } else {
        format!("{parent}/{child}")
    }
}

#[cfg(test)]
mod tests;
