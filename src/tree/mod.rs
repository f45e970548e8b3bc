//! The znode tree: an immutable, persistent (copy-on-write) map from path to
//! node, and the one function that applies a transaction to it.
//!
//! Every reader on every core holds an `Arc<Tree>` of some version and reads
//! it without locks; the broadcast core clones the newest version (a pointer
//! copy: the maps are persistent tries that share structure), applies a
//! batch of transactions to the clone and publishes it. A snapshot is the same
//! clone written out in the background.
//!
//! Memory is the shape's other concern (a large deployment has tens of
//! millions of znodes): each znode is one block (`node`: its Stat fields,
//! path and small data in one allocation, a reference to its ACL) that is
//! a leaf of a compact hash trie (`trie`); there is no separate key and no
//! children set. A parent's children are found through the trie (a child's
//! hash starts with its parent's, see `trie`), and the parent keeps only
//! their count. Equal ACL lists are stored once (ZooKeeper's
//! ReferenceCountedACLCache does the same). A value over 1 KiB is the
//! buffer the transaction carries, shared. What this costs per znode,
//! measured, is in docs/memory.md.
//!
//! `apply` is pure and deterministic: given the same tree and transaction it
//! makes the same change on the leader, on a follower, in log replay and after
//! snapshot restore. It never reads a clock (the transaction carries its time)
//! and never fails on a transaction that prep produced; on one that does not
//! fit (possible only for a damaged log) it skips that change and says so in
//! the outcome rather than panicking. Zxids move forward: applying one at
//! or below the tree's last zxid is a programmer error and panics.
//!
//! The tree keeps ZooKeeper's rolling digest of itself (`digest`): one
//! integer updated by every change of a node, and the history of it that
//! the `hash` four-letter word prints.

mod digest;
mod node;
pub mod quota;
mod trie;
mod txn;

pub use digest::{ZxidDigest, DIGEST_LOG_INTERVAL, DIGEST_LOG_LIMIT, DIGEST_VERSION};
pub use node::{Node, NodeFields, INLINE_DATA_BYTES_MAX};
pub use txn::{Applied, OpOutcome, Trigger, Txn, TxnHeader};

use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, OnceLock};

use digest::DigestLog;
use node::{AclRef, DataSource};
use trie::Trie;

use crate::proto::Acl;

/// Paths and child names are shared, immutable strings.
pub type Path = Arc<str>;

/// A node as a snapshot or an import gives it to `Tree::restore`: borrowed
/// from the decoded file, built into a `Node` once its children are counted.
#[derive(Debug, Clone, Copy)]
pub struct RestoredNode<'a> {
    pub path: &'a str,
    /// None is null data, kept apart from empty.
    pub data: Option<&'a [u8]>,
    pub acl: &'a Arc<[Acl]>,
    /// `num_children` is ignored: it follows from the paths.
    pub fields: NodeFields,
}

impl<'a> RestoredNode<'a> {
    /// The record of a node of a tree: restoring a tree from its own nodes
    /// copies it.
    pub fn of(node: &'a Node) -> RestoredNode<'a> {
        RestoredNode { path: node.path(), data: node.data(), acl: node.acl(), fields: node.fields() }
    }
}

/// The fields of a node made by a create at `header`.
fn created_fields(header: &TxnHeader, owner: i64) -> NodeFields {
    NodeFields {
        czxid: header.zxid,
        mzxid: header.zxid,
        pzxid: header.zxid,
        ctime_ms: header.time_ms,
        mtime_ms: header.time_ms,
        version: 0,
        cversion: 0,
        aversion: 0,
        ephemeral_owner: owner,
        num_children: 0,
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
    nodes: Trie,
    ephemerals: imbl::HashMap<i64, imbl::OrdSet<Path>>,
    containers: imbl::OrdSet<Path>,
    ttls: imbl::OrdSet<Path>,
    sessions: imbl::HashMap<i64, Session>,
    /// Every distinct ACL list in use, so equal lists share one allocation.
    /// Lists no node uses any more stay until the next restart (they are
    /// few: one per distinct list ever set).
    acls: imbl::HashMap<Arc<[Acl]>, AclRef>,
    last_zxid: i64,
    /// ZooKeeper's approximate_data_size: the sum of path and data lengths.
    approximate_data_bytes: i64,
    /// The sum of every node's `digest::node_digest`, kept by `store` and
    /// `unstore`, the only two ways a node enters or leaves `nodes`.
    digest: u64,
    digest_log: DigestLog,
}

impl Default for Tree {
    fn default() -> Self {
        Tree::new()
    }
}

/// The process's hash keys (ahash with random keys: fast, and a client
/// cannot choose names that collide).
fn hash_keys() -> &'static ahash::RandomState {
    static STATE: OnceLock<ahash::RandomState> = OnceLock::new();
    STATE.get_or_init(ahash::RandomState::new)
}

/// The hash of a parent's path, the low bits its children's hashes share.
fn hash_str(text: &str) -> u64 {
    let mut hasher = hash_keys().build_hasher();
    hasher.write(text.as_bytes());
    hasher.finish()
}

/// A path's place in the trie: its parent's hash in the low bits (the
/// levels a parent's children share), and above them the same hasher
/// carried on over the child's name, so the path's bytes are hashed once.
fn path_hash(path: &str) -> u64 {
    match split(path) {
        Some((parent, name)) => {
            let mut hasher = hash_keys().build_hasher();
            hasher.write(parent.as_bytes());
            let prefix = hasher.finish();
            hasher.write(name.as_bytes());
            (prefix & trie::PREFIX_MASK) | (hasher.finish() & !trie::PREFIX_MASK)
        }
        None => hash_str(path),
    }
}

/// The name of `path` if it is a child of `parent`.
fn child_name<'p>(parent: &str, path: &'p str) -> Option<&'p str> {
    let rest = if parent == "/" { path.strip_prefix('/')? } else { path.strip_prefix(parent)?.strip_prefix('/')? };
    (!rest.is_empty() && !rest.contains('/')).then_some(rest)
}

impl Tree {
    fn empty(last_zxid: i64) -> Tree {
        Tree {
            nodes: Trie::new(path_hash),
            ephemerals: imbl::HashMap::new(),
            containers: imbl::OrdSet::new(),
            ttls: imbl::OrdSet::new(),
            sessions: imbl::HashMap::new(),
            acls: imbl::HashMap::new(),
            last_zxid,
            approximate_data_bytes: 0,
            digest: 0,
            digest_log: DigestLog::default(),
        }
    }

    /// A fresh tree: `/`, `/zookeeper`, `/zookeeper/quota` and the read-only
    /// `/zookeeper/config`, as a new ZooKeeper has them.
    pub fn new() -> Tree {
        let mut tree = Tree::empty(0);
        let open = tree.intern_acl(&Arc::from(Acl::open_unsafe()));
        let read = tree.intern_acl(&Arc::from(Acl::read_unsafe()));
        let empty = DataSource::Bytes(&[]);
        let with_children = |num_children| NodeFields { num_children, ..NodeFields::default() };
        tree.put(Node::build("/", empty, &open, &with_children(1)));
        tree.put(Node::build(ZOOKEEPER_PATH, empty, &open, &with_children(2)));
        tree.put(Node::build(QUOTA_PATH, empty, &open, &with_children(0)));
        // ZooKeeper's /zookeeper/config starts with aversion -1.
        tree.put(Node::build(CONFIG_PATH, empty, &read, &NodeFields { aversion: -1, ..NodeFields::default() }));
        tree
    }

    /// The shared copy of an ACL list equal to `acl`.
    fn intern_acl(&mut self, acl: &Arc<[Acl]>) -> AclRef {
        if let Some(interned) = self.acls.get(&**acl) {
            return interned.clone();
        }
        let interned = Arc::new(acl.clone());
        self.acls.insert(acl.clone(), interned.clone());
        interned
    }

    /// Adds a new node, with its size and its place in the ephemeral,
    /// container or TTL index. Its ACL must be interned already.
    fn put(&mut self, node: Node) {
        self.approximate_data_bytes += (node.path().len() + node.data_len()) as i64;
        if node.is_container() {
            self.containers.insert(Path::from(node.path()));
        } else if node.ttl_ms().is_some() {
            self.ttls.insert(Path::from(node.path()));
        } else if let Some(session) = node.owner_session() {
            self.ephemerals.entry(session).or_default().insert(Path::from(node.path()));
        }
        self.store(node);
    }

    /// Replaces an existing node by its new version.
    fn replace(&mut self, node: Node) {
        self.store(node);
    }

    /// Puts a node in the trie, moving the digest from the node it replaces
    /// (if any) to it.
    fn store(&mut self, node: Node) {
        match self.nodes.insert(node.clone()) {
            Some(replaced) => {
                let (added, removed) = digest::replacement_digests(&node, &replaced);
                self.digest = self.digest.wrapping_add(added).wrapping_sub(removed);
            }
            None => self.digest = self.digest.wrapping_add(digest::node_digest(&node)),
        }
    }

    /// Takes a node out of the trie, and its share out of the digest.
    fn unstore(&mut self, path: &str) {
        if let Some(removed) = self.nodes.remove(path) {
            self.digest = self.digest.wrapping_sub(digest::node_digest(&removed));
        }
    }

    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// The names of the children of `path`, sorted (ZooKeeper gives no
    /// order; a sorted one is as good and the same on every server). Empty
    /// when the node has none or does not exist.
    pub fn children(&self, path: &str) -> Vec<&str> {
        let Some(node) = self.get(path) else {
            return Vec::new();
        };
        let expected = node.num_children().max(0) as usize;
        if expected == 0 {
            return Vec::new();
        }
        let mut names: Vec<&str> = Vec::with_capacity(expected);
        // The walk stops at the last child: the rest of the subtree, if any,
        // belongs to other parents whose hashes begin the same way.
        names.extend(
            self.nodes.with_prefix(hash_str(path)).filter_map(|child| child_name(path, child.path())).take(expected),
        );
        names.sort_unstable();
        names
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

    /// The digest of the whole tree, as ZooKeeper's `DataTree.getTreeDigest`
    /// computes it (see `digest`): equal on every server at the same zxid.
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// The digest at every `DIGEST_LOG_INTERVAL`th zxid this tree applied,
    /// oldest first, at most `DIGEST_LOG_LIMIT` (ZooKeeper's digestLog).
    pub fn digest_log(&self) -> impl Iterator<Item = &ZxidDigest> {
        self.digest_log.iter()
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

    /// Every node with its path, in no particular order.
    pub fn paths(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.nodes.iter().map(|node| (node.path(), node))
    }

    /// Rebuilds a tree from its nodes (as a snapshot stores them: every
    /// field but the children counts, which follow from the paths), its
    /// sessions and its last zxid. The indexes of ephemerals, containers and
    /// TTL nodes are derived again. A node whose parent is missing, or a path
    /// given twice, is an error naming it, never a panic.
    pub fn restore<'a>(
        nodes: impl IntoIterator<Item = RestoredNode<'a>>,
        sessions: impl IntoIterator<Item = Session>,
        last_zxid: i64,
    ) -> Result<Tree, String> {
        let mut tree = Tree::empty(last_zxid);
        let all: Vec<RestoredNode<'a>> = nodes.into_iter().collect();
        let mut counts = vec![0i32; all.len()];
        {
            let index: std::collections::HashMap<&str, usize> =
                all.iter().enumerate().map(|(position, node)| (node.path, position)).collect();
            if index.len() != all.len() {
                return Err("a path appears twice in the snapshot".to_string());
            }
            if !index.contains_key("/") {
                return Err("snapshot has no root node".to_string());
            }
            for node in &all {
                let path = node.path;
                if path == "/" {
                    continue;
                }
                let (parent_path, _) = split(path).ok_or_else(|| format!("invalid path {path:?} in snapshot"))?;
                let parent =
                    index.get(parent_path).ok_or_else(|| format!("node {path:?} has no parent in the snapshot"))?;
                counts[*parent] += 1;
            }
        }
        for (restored, count) in all.into_iter().zip(counts) {
            let acl = tree.intern_acl(restored.acl);
            let data = restored.data.map_or(DataSource::Null, DataSource::Bytes);
            let fields = NodeFields { num_children: count, ..restored.fields };
            tree.put(Node::build(restored.path, data, &acl, &fields));
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
            for child in self.children(&current) {
                count += 1;
                stack.push(join(&current, child));
            }
        }
        count
    }

    /// Applies one transaction at `header.zxid`, which must be above the
    /// last one applied. See the module essay.
    pub fn apply(&mut self, header: &TxnHeader, txn: &Txn) -> Applied {
        // Every server applies the same transactions in the same order, and
        // its digest is compared with the others' at the same zxid: a
        // transaction applied twice or out of order would make a tree no
        // other server has, so that is a bug to stop at, not to skip.
        assert!(
            header.zxid > self.last_zxid,
            "transaction at zxid {:#x} applied to a tree already at {:#x}: zxids must move forward",
            header.zxid,
            self.last_zxid
        );
        let applied = self.apply_operations(header, txn);
        let previous = std::mem::replace(&mut self.last_zxid, header.zxid);
        self.digest_log.record(previous, header.zxid, self.digest);
        applied
    }

    /// Applies one more part of the transaction at `header.zxid`, which may
    /// be the tree's last zxid: prep checks a multi's operations one at a
    /// time on a scratch tree, each at the multi's zxid, so each sees the
    /// ones before it. The digest history is not written (it would hold the
    /// digest after the first part only); prep's trees are never shown. The
    /// log and the committed tree use `apply`.
    pub fn apply_continuing(&mut self, header: &TxnHeader, txn: &Txn) -> Applied {
        assert!(
            header.zxid >= self.last_zxid,
            "transaction part at zxid {:#x} applied to a tree already at {:#x}: zxids must move forward",
            header.zxid,
            self.last_zxid
        );
        let applied = self.apply_operations(header, txn);
        self.last_zxid = header.zxid;
        applied
    }

    fn apply_operations(&mut self, header: &TxnHeader, txn: &Txn) -> Applied {
        // Quota stats follow the transaction's net change (tree/quota.rs).
        let quota = quota::Touched::before(self, txn);
        let mut applied = Applied::default();
        self.apply_one(header, txn, &mut applied);
        quota.after(self);
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
                let outcome = match self.get(path) {
                    Some(node) => {
                        let node = node.clone();
                        let new_length = data.as_ref().map_or(0, |data| data.len());
                        self.approximate_data_bytes += new_length as i64 - node.data_len() as i64;
                        let mut fields = node.fields();
                        fields.version = fields.version.wrapping_add(1);
                        fields.mzxid = header.zxid;
                        fields.mtime_ms = header.time_ms;
                        let node = node.with(&fields, None, Some(DataSource::of(data)));
                        let stat = node.stat();
                        self.replace(node);
                        applied.triggers.push(Trigger::DataChanged(path.clone()));
                        OpOutcome::DataSet(stat)
                    }
                    None => OpOutcome::Skipped,
                };
                applied.outcomes.push(outcome);
            }
            Txn::SetAcl { path, acl } => {
                let outcome = match self.get(path) {
                    Some(node) => {
                        let node = node.clone();
                        let acl = self.intern_acl(acl);
                        let mut fields = node.fields();
                        fields.aversion = fields.aversion.wrapping_add(1);
                        let node = node.with(&fields, Some(&acl), None);
                        let stat = node.stat();
                        self.replace(node);
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
        let Some((parent_path, _)) = split(path) else {
            return OpOutcome::Skipped;
        };
        if self.get(path).is_some() {
            return OpOutcome::Skipped;
        }
        let Some(parent) = self.get(parent_path).cloned() else {
            return OpOutcome::Skipped;
        };
        let mut fields = parent.fields();
        fields.num_children = fields.num_children.wrapping_add(1);
        fields.cversion = fields.cversion.wrapping_add(1);
        fields.pzxid = header.zxid;
        // A child usually has its parent's ACL: share it without a lookup.
        let acl = if parent.acl() == acl { parent.acl_ref() } else { self.intern_acl(acl) };
        let parent = parent.with_fields(&fields);
        let parent_path = Path::from(parent.path());
        self.replace(parent);
        let node = Node::build(path, DataSource::of(data), &acl, &created_fields(header, owner));
        let stat = node.stat();
        self.put(node);
        applied.triggers.push(Trigger::Created(path.clone()));
        applied.triggers.push(Trigger::ChildrenChanged(parent_path));
        OpOutcome::Created(path.clone(), stat)
    }

    /// Removes a childless node. A delete changes the parent's pzxid and
    /// not its create counter (the reported cversion still moves, see `stat`).
    fn delete_node(&mut self, path: &Path, zxid: i64, applied: &mut Applied) -> bool {
        let Some((parent_path, _)) = split(path) else {
            return false;
        };
        let Some(node) = self.get(path).cloned() else {
            return false;
        };
        if node.num_children() != 0 {
            return false;
        }
        let parent_path: Path = match self.get(parent_path) {
            Some(parent) => {
                let mut fields = parent.fields();
                fields.num_children = fields.num_children.wrapping_sub(1);
                if zxid > fields.pzxid {
                    fields.pzxid = zxid;
                }
                let parent = parent.with_fields(&fields);
                let parent_path = Path::from(parent.path());
                self.replace(parent);
                parent_path
            }
            None => Arc::from(parent_path),
        };
        self.unstore(path);
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
        applied.triggers.push(Trigger::ChildrenChanged(parent_path));
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
