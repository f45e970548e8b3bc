//! The tree's rolling digest, computed as ZooKeeper 3.6+ computes its own
//! (DigestCalculator, digest version 2), so that servers at the same zxid
//! can be compared, and a tree imported from ZooKeeper can be compared with
//! what ZooKeeper printed for it.
//!
//! What it is: each znode hashes to the CRC-32 (IEEE, java.util.zip.CRC32)
//! of its path, its data, and 60 big-endian bytes of its persisted Stat
//! (czxid, mzxid, pzxid, ctime, mtime: 8 bytes each; version, cversion,
//! aversion: 4 each; ephemeralOwner: 8). The tree's digest is the sum of
//! its nodes' hashes in 64 bits (ZooKeeper's AdHash). ZooKeeper's quirks are
//! kept because they change the value: the root hashes as the path `""`,
//! nodes under `/zookeeper/` hash to 0 (ZooKeeper leaves them out because
//! its quota nodes change locally; `/zookeeper` itself counts), null data
//! and empty data hash alike, and cversion is the persisted create counter
//! (`Node::cversion`), not the `2 * creates - children` a client is shown.
//!
//! Why a sum: a change subtracts the old node's hash and adds the new one's,
//! so keeping the digest costs a CRC of each node a transaction touches and
//! never a walk of the tree. It lives in `Tree` as one integer, so every
//! published version carries its own digest and a reader pays nothing.
//! Unlike ZooKeeper, a node does not cache its hash: that would cost eight
//! bytes a znode. The old version's hash is computed again instead, which
//! for small data costs little more than reading a cached one; a node
//! whose data did not change (a parent gaining or losing a child) shares
//! one CRC of its path and data between its two versions.
//!
//! The history (ZooKeeper's `digestLog`, printed by the `hash` four-letter
//! word and admin command) is the digest at every 128th zxid, the newest
//! 1024 kept. It is also carried by the tree, in a persistent vector, so it
//! follows the committed tree on every server without a word to the
//! server's shell, and is the same on every server by construction. It is
//! not stored in snapshots (ZooKeeper does not store its history either): a
//! restarted server's history holds what it applied since its snapshot.

use super::Node;

/// ZooKeeper's DigestCalculator.DIGEST_VERSION: the fields and CRC above.
pub const DIGEST_VERSION: i32 = 2;
/// ZooKeeper's DataTree.DIGEST_LOG_INTERVAL: the history keeps the digest
/// of every zxid that is a multiple of this.
pub const DIGEST_LOG_INTERVAL: i64 = 128;
/// ZooKeeper's DataTree.DIGEST_LOG_LIMIT: how many digests the history keeps.
pub const DIGEST_LOG_LIMIT: usize = 1024;

/// Nodes below this prefix are left out of the digest (ZooKeeper's
/// ZooDefs.ZOOKEEPER_NODE_SUBTREE).
const EXCLUDED_SUBTREE: &str = "/zookeeper/";
/// The Stat bytes hashed after the path and data: 6 longs and 3 ints.
const STAT_BYTES: usize = 8 * 6 + 4 * 3;

/// The tree's digest at one zxid, as the history keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZxidDigest {
    pub zxid: i64,
    pub digest: u64,
}

/// One node's share of the tree's digest.
pub(super) fn node_digest(node: &Node) -> u64 {
    match content_crc(node) {
        Some(crc) => finish(crc, node),
        None => 0,
    }
}

/// The shares of a node and of the version of it that it replaces. A
/// parent changed by a create or delete of a child keeps its path and data
/// (the same buffer): their CRC is then taken once for both versions, so a
/// large parent costs one pass over its data per child, as it does in
/// ZooKeeper (which caches the old version's share instead).
pub(super) fn replacement_digests(new: &Node, old: &Node) -> (u64, u64) {
    let Some(crc) = content_crc(new) else {
        return (0, 0);
    };
    if new.path() == old.path() && new.same_data(old) {
        (finish(crc.clone(), new), finish(crc, old))
    } else {
        (finish(crc, new), node_digest(old))
    }
}

/// The CRC of the path and data, None for a node left out of the digest.
fn content_crc(node: &Node) -> Option<crc32fast::Hasher> {
    let path: &str = node.path();
    if path.starts_with(EXCLUDED_SUBTREE) {
        return None;
    }
    let path = if path == "/" { "" } else { path };
    let mut crc = crc32fast::Hasher::new();
    crc.update(path.as_bytes());
    if let Some(data) = node.data() {
        crc.update(data);
    }
    Some(crc)
}

/// Adds the Stat fields to a CRC of path and data.
fn finish(mut crc: crc32fast::Hasher, node: &Node) -> u64 {
    let mut stat = [0u8; STAT_BYTES];
    let fields_64 = [node.czxid(), node.mzxid(), node.pzxid(), node.ctime_ms(), node.mtime_ms()];
    for (index, field) in fields_64.iter().enumerate() {
        stat[index * 8..index * 8 + 8].copy_from_slice(&field.to_be_bytes());
    }
    let fields_32 = [node.version(), node.cversion(), node.aversion()];
    for (index, field) in fields_32.iter().enumerate() {
        stat[40 + index * 4..44 + index * 4].copy_from_slice(&field.to_be_bytes());
    }
    stat[52..60].copy_from_slice(&node.ephemeral_owner().to_be_bytes());
    crc.update(&stat);
    u64::from(crc.finalize())
}

/// The bounded history of digests.
#[derive(Debug, Clone, Default)]
pub(super) struct DigestLog {
    entries: imbl::Vector<ZxidDigest>,
}

impl DigestLog {
    /// Records the digest after the tree moved from `previous_zxid` to
    /// `zxid`. ZooKeeper records at zxids that are multiples of the
    /// interval; here a zxid that passes one counts too, because a raft
    /// index that carries no transaction (a new leader's empty entry) never
    /// reaches the tree. With zxids one apart, as ZooKeeper's are, the two
    /// rules are the same.
    pub(super) fn record(&mut self, previous_zxid: i64, zxid: i64, digest: u64) {
        if zxid.div_euclid(DIGEST_LOG_INTERVAL) <= previous_zxid.div_euclid(DIGEST_LOG_INTERVAL) {
            return;
        }
        self.entries.push_back(ZxidDigest { zxid, digest });
        if self.entries.len() > DIGEST_LOG_LIMIT {
            self.entries.pop_front();
        }
        debug_assert!(self.entries.len() <= DIGEST_LOG_LIMIT);
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &ZxidDigest> {
        self.entries.iter()
    }
}
