//! Quotas as ZooKeeper 3.8 keeps them: a quota on `/a/b` is the node
//! `/zookeeper/quota/a/b/zookeeper_limits` (data like
//! `count=10,bytes=-1=;byteHardLimit=100;countHardLimit=-1`, written by
//! zkCli's setquota), and the server keeps
//! `/zookeeper/quota/a/b/zookeeper_stats` (`count=N,bytes=M`) up to date:
//! the number of nodes in the subtree at `/a/b` (itself included) and the
//! sum of their data lengths.
//!
//! Why it is shaped this way: everything is derived from the tree, nothing
//! is kept beside it. ZooKeeper keeps a trie of quota roots; here the
//! governing root of a path is found by looking up each ancestor's limits
//! node (a handful of map lookups, and none at all while
//! `/zookeeper/quota` has no children, which is the common case). So a
//! snapshot, an import or a follower needs no extra state, and the tree's
//! representation can change under this file without it noticing. The tree
//! calls one hook around each transaction (`Touched::before` / `after`),
//! which turns the net change of every touched path into count and byte
//! deltas for its quota root: correct for a multi that creates and then
//! changes the same node, since only the before and after states count.
//!
//! As in ZooKeeper, the stats node's data changes in place: its version,
//! mzxid and mtime stay, no watch fires; only its data (and so its
//! dataLength) moves. Creating a stats node counts the subtree afresh
//! (ZooKeeper's updateQuotaForPath). Paths under `/zookeeper` are never
//! counted (zkCli refuses quotas there), and a quota on `/` is ignored, as
//! ZooKeeper's getMaxPrefixWithQuota ignores it.
//!
//! Enforcement (`check`) is prep's: with `enforceQuota` on, a create or
//! setData that would pass a hard limit is refused with QuotaExceeded and a
//! soft limit passed is logged; with it off (ZooKeeper's default) nothing
//! is checked.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::node::DataSource;
use super::{join, Path, Tree, Txn, QUOTA_PATH, ZOOKEEPER_PATH};

pub const LIMITS_NODE: &str = "zookeeper_limits";
pub const STATS_NODE: &str = "zookeeper_stats";
const COUNT: &str = "count";
const BYTES: &str = "bytes";
const COUNT_HARD_LIMIT: &str = "countHardLimit";
const BYTE_HARD_LIMIT: &str = "byteHardLimit";

/// ZooKeeper's StatsTrack: `key=value` pairs separated by `,` or `;`;
/// a missing or unreadable value is -1.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsTrack {
    values: BTreeMap<String, i64>,
}

impl StatsTrack {
    pub fn parse(data: &[u8]) -> StatsTrack {
        let mut values = BTreeMap::new();
        let text = String::from_utf8_lossy(data);
        for pair in text.split([',', ';']).filter(|pair| !pair.is_empty()) {
            let mut parts = pair.split('=');
            let key = parts.next().unwrap_or_default();
            let value =
                parts.next().filter(|value| !value.is_empty()).and_then(|value| value.parse().ok()).unwrap_or(-1);
            if !key.is_empty() {
                values.insert(key.to_string(), value);
            }
        }
        StatsTrack { values }
    }

    pub fn get(&self, key: &str) -> i64 {
        self.values.get(key).copied().unwrap_or(-1)
    }

    pub fn count(&self) -> i64 {
        self.get(COUNT)
    }

    pub fn bytes(&self) -> i64 {
        self.get(BYTES)
    }

    pub fn count_hard_limit(&self) -> i64 {
        self.get(COUNT_HARD_LIMIT)
    }

    pub fn byte_hard_limit(&self) -> i64 {
        self.get(BYTE_HARD_LIMIT)
    }

    pub fn set(&mut self, key: &str, value: i64) {
        self.values.insert(key.to_string(), value);
    }

    /// ZooKeeper's StatsTrack.toString: count and bytes first; any other
    /// key, sorted, after an extra `=` and `;` separators (which older
    /// parsers skip).
    pub fn to_text(&self) -> String {
        let mut text = format!("{COUNT}={},{BYTES}={}", self.count(), self.bytes());
        let others: Vec<(&String, &i64)> =
            self.values.iter().filter(|(key, _)| key.as_str() != COUNT && key.as_str() != BYTES).collect();
        if !others.is_empty() {
            text.push('=');
            for (key, value) in others {
                text.push_str(&format!(";{key}={value}"));
            }
        }
        text
    }
}

/// The quota node for `root` named `leaf` (limits or stats).
pub fn quota_node_path(root: &str, leaf: &str) -> String {
    format!("{QUOTA_PATH}{root}/{leaf}")
}

fn counted(path: &str) -> bool {
    path != ZOOKEEPER_PATH && !path.starts_with("/zookeeper/")
}

/// Whether any quota may exist: `/zookeeper/quota` has children.
pub fn any(tree: &Tree) -> bool {
    tree.get(QUOTA_PATH).is_some_and(|node| node.num_children() > 0)
}

/// The deepest ancestor of `path` (or `path` itself) with a limits node,
/// never `/` (ZooKeeper's getMaxPrefixWithQuota).
pub fn governing_root(tree: &Tree, path: &str) -> Option<String> {
    if !counted(path) || !any(tree) {
        return None;
    }
    let mut candidate = path;
    while candidate != "/" && !candidate.is_empty() {
        if tree.get(&quota_node_path(candidate, LIMITS_NODE)).is_some() {
            return Some(candidate.to_string());
        }
        candidate = super::split(candidate).map_or("/", |(parent, _)| parent);
    }
    None
}

/// Why a write is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaExceeded {
    pub root: String,
}

/// Quota-exceeded errors per top namespace (ZooKeeper's
/// quota_exceeded_error_per_namespace). Process-wide, as ZooKeeper's
/// ServerMetrics are: only prep on the broadcast core writes it, and the
/// monitor reads it; keeping it in the preparer would make mntr ask the
/// broadcast core for one number. Bounded by the number of namespaces that
/// hold quotas.
static EXCEEDED: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());

/// The top namespace of a path: its first component.
pub fn top_namespace(path: &str) -> Option<&str> {
    path.strip_prefix('/').and_then(|rest| rest.split('/').next()).filter(|name| !name.is_empty())
}

pub fn exceeded_counts() -> BTreeMap<String, u64> {
    EXCEEDED.lock().map(|counts| counts.clone()).unwrap_or_default()
}

/// ZooKeeper's checkQuota, for a create (`count_diff` 1) or a setData
/// (`count_diff` 0) at `path` changing its data by `bytes_diff`. Only
/// with `enforce` (zookeeper.enforceQuota): a hard limit passed refuses
/// the write; a soft limit passed is logged.
pub fn check(tree: &Tree, path: &str, bytes_diff: i64, count_diff: i64, enforce: bool) -> Result<(), QuotaExceeded> {
    if !enforce {
        return Ok(());
    }
    let Some(root) = governing_root(tree, path) else { return Ok(()) };
    let Some(limits) = tree.get(&quota_node_path(&root, LIMITS_NODE)) else { return Ok(()) };
    let limits = StatsTrack::parse(limits.data().unwrap_or_default());
    let check_count = count_diff != 0 && (limits.count() > -1 || limits.count_hard_limit() > -1);
    let check_bytes = bytes_diff != 0 && (limits.bytes() > -1 || limits.byte_hard_limit() > -1);
    if !check_count && !check_bytes {
        return Ok(());
    }
    let Some(stats) = tree.get(&quota_node_path(&root, STATS_NODE)) else { return Ok(()) };
    let current = StatsTrack::parse(stats.data().unwrap_or_default());
    let checks = [
        (check_count, current.count() + count_diff, limits.count_hard_limit(), limits.count(), "Count"),
        (check_bytes, current.bytes() + bytes_diff, limits.byte_hard_limit(), limits.bytes(), "Byte"),
    ];
    for (wanted, new_value, hard, soft, what) in checks {
        if !wanted {
            continue;
        }
        let limit = if hard > -1 { hard } else { soft };
        if new_value > limit {
            let kind = if hard > -1 { "hard" } else { "soft" };
            tracing::warn!("Quota exceeded: {root} [current {what}={new_value}, {kind}{what}Limit={limit}]");
            if hard > -1 {
                if let (Some(namespace), Ok(mut counts)) = (top_namespace(path), EXCEEDED.lock()) {
                    *counts.entry(namespace.to_string()).or_default() += 1;
                }
                return Err(QuotaExceeded { root });
            }
        }
    }
    Ok(())
}

/// Per top namespace: (count limit, bytes limit, count usage, bytes usage),
/// summed over the quotas in it, a hard limit preferred to a soft one
/// (ZooKeeper's QuotaMetricsUtils).
pub fn namespace_figures(tree: &Tree) -> BTreeMap<String, [i64; 4]> {
    let mut figures: BTreeMap<String, [i64; 4]> = BTreeMap::new();
    if !any(tree) {
        return figures;
    }
    let mut stack = vec![QUOTA_PATH.to_string()];
    while let Some(path) = stack.pop() {
        let Some(node) = tree.get(&path) else { continue };
        if node.num_children() > 0 {
            stack.extend(tree.children(&path).into_iter().map(|child| join(&path, child)));
            continue;
        }
        let (root, leaf) = super::split(&path).unwrap_or(("", ""));
        let root = root.strip_prefix(QUOTA_PATH).unwrap_or_default();
        let (Some(namespace), Some(data)) = (top_namespace(root), node.data()) else { continue };
        let track = StatsTrack::parse(data);
        let entry = figures.entry(namespace.to_string()).or_default();
        let prefer = |hard: i64, soft: i64| if hard > -1 { hard } else { soft };
        match leaf {
            LIMITS_NODE => {
                entry[0] += prefer(track.count_hard_limit(), track.count());
                entry[1] += prefer(track.byte_hard_limit(), track.bytes());
            }
            STATS_NODE => {
                entry[2] += track.count();
                entry[3] += track.bytes();
            }
            _ => {}
        }
    }
    figures
}

/// What a transaction touches, noted before it is applied.
#[derive(Debug, Default)]
pub struct Touched {
    /// A path and its data length before (None: it did not exist).
    paths: Vec<(Path, Option<usize>)>,
    /// Stats nodes being created: their roots are counted afresh.
    recount: Vec<String>,
}

impl Touched {
    pub fn before(tree: &Tree, txn: &Txn) -> Touched {
        let mut touched = Touched::default();
        if any(tree) || creates_quota_node(txn) {
            touched.note(tree, txn);
        }
        touched
    }

    fn note(&mut self, tree: &Tree, txn: &Txn) {
        let mut remember = |path: &Path| {
            self.paths.push((path.clone(), tree.get(path).map(|node| node.data_len())));
        };
        match txn {
            Txn::Create { path, .. } => {
                remember(path);
                if let Some(root) = path.strip_prefix(QUOTA_PATH).and_then(|rest| rest.strip_suffix("/zookeeper_stats"))
                {
                    self.recount.push(root.to_string());
                }
            }
            Txn::Delete { path } | Txn::SetData { path, .. } => remember(path),
            Txn::CloseSession { session_id } => {
                for path in tree.ephemerals_of(*session_id) {
                    remember(path);
                }
            }
            Txn::Multi(txns) => {
                for sub in txns {
                    self.note(tree, sub);
                }
            }
            Txn::CreateSession { .. } | Txn::SetAcl { .. } | Txn::Check { .. } | Txn::Error { .. } => {}
        }
    }

    /// Moves the stats of every quota root the transaction changed.
    pub fn after(self, tree: &mut Tree) {
        if self.paths.is_empty() {
            return;
        }
        let mut deltas: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        for (path, before) in &self.paths {
            let after = tree.get(path).map(|node| node.data_len());
            let count = after.is_some() as i64 - before.is_some() as i64;
            let bytes = after.unwrap_or(0) as i64 - before.unwrap_or(0) as i64;
            if count == 0 && bytes == 0 {
                continue;
            }
            if let Some(root) = governing_root(tree, path) {
                let delta = deltas.entry(root).or_default();
                delta.0 += count;
                delta.1 += bytes;
            }
        }
        for (root, (count, bytes)) in deltas {
            let stats_path = quota_node_path(&root, STATS_NODE);
            let Some(stats) = tree.get(&stats_path) else { continue };
            let mut track = StatsTrack::parse(stats.data().unwrap_or_default());
            track.set(COUNT, track.count() + count);
            track.set(BYTES, track.bytes() + bytes);
            set_data_in_place(tree, &stats_path, track.to_text().into_bytes());
        }
        for root in self.recount {
            let (count, bytes) = subtree_figures(tree, &root);
            let stats_path = quota_node_path(&root, STATS_NODE);
            if tree.get(&stats_path).is_some() {
                let mut track = StatsTrack::default();
                track.set(COUNT, count);
                track.set(BYTES, bytes);
                set_data_in_place(tree, &stats_path, track.to_text().into_bytes());
            }
        }
    }
}

fn creates_quota_node(txn: &Txn) -> bool {
    match txn {
        Txn::Create { path, .. } => path.starts_with("/zookeeper/quota/"),
        Txn::Multi(txns) => txns.iter().any(creates_quota_node),
        _ => false,
    }
}

/// The node count (the root included) and data bytes of a subtree; 0, 0
/// if `root` does not exist.
pub fn subtree_figures(tree: &Tree, root: &str) -> (i64, i64) {
    let (mut count, mut bytes) = (0, 0);
    let mut stack = vec![root.to_string()];
    while let Some(path) = stack.pop() {
        if let Some(node) = tree.get(&path) {
            count += 1;
            bytes += node.data_len() as i64;
            stack.extend(tree.children(&path).into_iter().map(|child| join(&path, child)));
        }
    }
    (count, bytes)
}

/// Counts every quota's subtree afresh (ZooKeeper's setupQuota at load):
/// for a tree that comes from elsewhere, such as an import.
pub fn recount_all(tree: &mut Tree) {
    if !any(tree) {
        return;
    }
    let mut roots = Vec::new();
    let mut stack = vec![QUOTA_PATH.to_string()];
    while let Some(path) = stack.pop() {
        if tree.get(&path).is_none() {
            continue;
        }
        let children = tree.children(&path);
        if children.contains(&STATS_NODE) {
            roots.push(path.strip_prefix(QUOTA_PATH).unwrap_or_default().to_string());
        }
        stack.extend(children.into_iter().map(|child| join(&path, child)));
    }
    for root in roots {
        let (count, bytes) = subtree_figures(tree, &root);
        let stats_path = quota_node_path(&root, STATS_NODE);
        let mut track =
            tree.get(&stats_path).map(|node| StatsTrack::parse(node.data().unwrap_or_default())).unwrap_or_default();
        track.set(COUNT, count);
        track.set(BYTES, bytes);
        set_data_in_place(tree, &stats_path, track.to_text().into_bytes());
    }
}

/// Replaces a node's data without touching its Stat otherwise.
fn set_data_in_place(tree: &mut Tree, path: &str, data: Vec<u8>) {
    let Some(node) = tree.nodes.get(path) else { return };
    let old_length = node.data_len();
    let node = node.with(&node.fields(), None, Some(DataSource::Bytes(&data)));
    tree.approximate_data_bytes += data.len() as i64 - old_length as i64;
    tree.replace(node);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::proto::Acl;
    use crate::tree::TxnHeader;

    #[test]
    fn stats_track_reads_and_writes_zookeepers_text() {
        let limits = StatsTrack::parse(b"count=3,bytes=-1=;byteHardLimit=20;countHardLimit=-1");
        assert_eq!(
            (limits.count(), limits.bytes(), limits.byte_hard_limit(), limits.count_hard_limit()),
            (3, -1, 20, -1)
        );
        assert_eq!(limits.to_text(), "count=3,bytes=-1=;byteHardLimit=20;countHardLimit=-1");
        let stats = StatsTrack::parse(b"count=2,bytes=5");
        assert_eq!(stats.to_text(), "count=2,bytes=5");
        assert_eq!(StatsTrack::parse(b"garbage").count(), -1);
    }

    fn create(tree: &mut Tree, zxid: i64, path: &str, data: &[u8]) {
        let txn = Txn::Create {
            path: Arc::from(path),
            data: Some(Arc::from(data)),
            acl: Arc::from(Acl::open_unsafe()),
            ephemeral_owner: 0,
        };
        tree.apply(&TxnHeader { zxid, time_ms: 0, session_id: 0, cxid: 0 }, &txn);
    }

    fn stats(tree: &Tree, root: &str) -> String {
        String::from_utf8(tree.get(&quota_node_path(root, STATS_NODE)).unwrap().data().unwrap().to_vec()).unwrap()
    }

    #[test]
    fn stats_follow_creates_set_data_and_deletes_under_the_root() {
        let mut tree = Tree::new();
        create(&mut tree, 1, "/q", b"ab");
        create(&mut tree, 2, "/q/a", b"xyz");
        create(&mut tree, 3, "/zookeeper/quota/q", b"");
        create(&mut tree, 4, "/zookeeper/quota/q/zookeeper_limits", b"count=3,bytes=-1");
        create(&mut tree, 5, "/zookeeper/quota/q/zookeeper_stats", b"count=0,bytes=0");
        assert_eq!(stats(&tree, "/q"), "count=2,bytes=5");
        let before = tree.get(&quota_node_path("/q", STATS_NODE)).unwrap().stat();
        create(&mut tree, 6, "/q/b", b"1");
        let header = TxnHeader { zxid: 7, time_ms: 0, session_id: 0, cxid: 0 };
        tree.apply(&header, &Txn::SetData { path: Arc::from("/q/a"), data: Some(Arc::from(&b"0123456789"[..])) });
        assert_eq!(stats(&tree, "/q"), "count=3,bytes=13");
        let header = TxnHeader { zxid: 8, time_ms: 0, session_id: 0, cxid: 0 };
        tree.apply(&header, &Txn::Multi(vec![Txn::Delete { path: Arc::from("/q/b") }]));
        assert_eq!(stats(&tree, "/q"), "count=2,bytes=12");
        let after = tree.get(&quota_node_path("/q", STATS_NODE)).unwrap().stat();
        assert_eq!((after.mzxid, after.version), (before.mzxid, before.version), "stats change in place");
        create(&mut tree, 9, "/elsewhere", b"zzz");
        assert_eq!(stats(&tree, "/q"), "count=2,bytes=12");
    }

    #[test]
    fn hard_limits_refuse_only_when_enforced() {
        let mut tree = Tree::new();
        create(&mut tree, 1, "/q", b"");
        create(&mut tree, 2, "/zookeeper/quota/q", b"");
        create(
            &mut tree,
            3,
            "/zookeeper/quota/q/zookeeper_limits",
            b"count=1,bytes=-1=;byteHardLimit=4;countHardLimit=-1",
        );
        create(&mut tree, 4, "/zookeeper/quota/q/zookeeper_stats", b"");
        // The soft count limit is passed: logged, allowed.
        assert_eq!(check(&tree, "/q/a", 1, 1, true), Ok(()));
        assert_eq!(check(&tree, "/q/a", 5, 1, true), Err(QuotaExceeded { root: "/q".to_string() }));
        assert_eq!(check(&tree, "/q/a", 5, 1, false), Ok(()));
        assert_eq!(check(&tree, "/other", 500, 1, true), Ok(()));
    }
}
