//! ZooKeeper's monitor values, gathered once per request from the server's
//! state and its recorders: the one list that mntr, the AdminServer's
//! `monitor` and the Prometheus page all print.

use std::sync::atomic::Ordering;

use crate::metrics::{Metrics, Snapshot};
use crate::ops::{ServerView, WatchSummary};

/// A value in ZooKeeper's monitor output.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    Integer(i64),
    Float(f64),
}

impl Value {
    pub(super) fn number(&self) -> Option<f64> {
        match self {
            Value::Text(_) => None,
            Value::Integer(value) => Some(*value as f64),
            Value::Float(value) => Some(*value),
        }
    }

    /// The value as mntr prints it.
    pub fn to_text(&self) -> String {
        match self {
            Value::Text(text) => text.clone(),
            Value::Integer(value) => value.to_string(),
            Value::Float(value) => java_double(*value),
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Text(text) => serde_json::Value::from(text.as_str()),
            Value::Integer(value) => serde_json::Value::from(*value),
            Value::Float(value) => serde_json::Value::from(*value),
        }
    }
}

/// A double as Java prints ZooKeeper's averages: rounded to 4 decimals,
/// at least one decimal.
pub fn java_double(value: f64) -> String {
    let text = format!("{value:.4}");
    let trimmed = text.trim_end_matches('0');
    if trimmed.ends_with('.') {
        format!("{trimmed}0")
    } else {
        trimmed.to_string()
    }
}

/// How a value is exposed to Prometheus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
    /// Only in mntr and the admin command (text, or part of a summary).
    MonitorOnly,
}

/// One line of ZooKeeper's monitor output.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub value: Value,
    pub kind: Kind,
}

/// A ZooKeeper summary: `advanced` ones print p50/p95/p99/p999 in mntr and
/// the 0.5/0.9/0.99 quantiles on the Prometheus page, basic ones only
/// avg/min/max/cnt/sum and the median.
pub(super) struct SummaryMetric {
    pub(super) name: &'static str,
    pub(super) advanced: bool,
    pub(super) snapshot: Option<Snapshot>,
    /// Recorded unit per reported unit (1000 for µs reported as ms).
    pub(super) divisor: u64,
}

/// Everything the monitor reports, gathered once.
pub struct Monitor {
    pub entries: Vec<Entry>,
    pub(super) summaries: Vec<SummaryMetric>,
}

/// The server's mode, as srvr and mntr print it.
pub fn server_state(server: &dyn ServerView) -> &'static str {
    server.mode()
}

/// (open, max) file descriptors of this process.
pub fn file_descriptors() -> Option<(usize, u64)> {
    let open = std::fs::read_dir("/proc/self/fd").ok()?.count();
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|line| line.starts_with("Max open files"))?;
    let soft = line.split_whitespace().nth(3)?.parse().ok()?;
    Some((open, soft))
}

/// Bytes in the files directly under `directory` (ZooKeeper's dirs counts
/// the files of its version-2 directories).
pub fn directory_size(directory: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(directory) else { return 0 };
    let mut total = 0;
    for entry in entries.flatten() {
        if let Ok(metadata) = entry.metadata() {
            if metadata.is_file() {
                total += metadata.len();
            } else if metadata.is_dir() {
                total += directory_size(&entry.path());
            }
        }
    }
    total
}

/// The data and log directory sizes, as dirs and srvr's admin form print them.
pub fn directory_sizes(server: &dyn ServerView) -> (u64, u64) {
    let config = server.config();
    let data = directory_size(&config.data_dir);
    let log = if config.data_log_dir == config.data_dir { data } else { directory_size(&config.data_log_dir) };
    (data, log)
}

/// (min, avg, max) latency in milliseconds, as srvr prints it: from the
/// same per-shard histograms as mntr and the Prometheus page (the average
/// from their exact sums).
pub fn latency_ms(metrics: &Metrics) -> (f64, f64, f64) {
    let Some(mut all) = metrics.latency(false) else { return (0.0, 0.0, 0.0) };
    if let Some(writes) = metrics.latency(true) {
        all.merge(&writes);
    }
    if all.count() == 0 {
        return (0.0, 0.0, 0.0);
    }
    (all.min() as f64 / 1000.0, all.mean() / 1000.0, all.max() as f64 / 1000.0)
}

impl Monitor {
    /// Gathers the monitor values; `watches` comes from the shards
    /// ([`ServerView::watch_summary`]).
    pub fn gather(server: &dyn ServerView, watches: WatchSummary) -> Monitor {
        let tree = server.tree();
        let metrics = server.metrics();
        let (min, average, max) = latency_ms(metrics);
        let mut entries = Vec::new();
        let mut push = |name: &str, value: Value, kind: Kind| {
            entries.push(Entry { name: name.to_string(), value, kind });
        };
        use Kind::{Counter, Gauge, MonitorOnly};
        push("version", Value::Text(super::fourletter::full_version()), MonitorOnly);
        push("server_state", Value::Text(server_state(server).to_string()), MonitorOnly);
        push("ephemerals_count", Value::Integer(tree.ephemeral_count() as i64), Gauge);
        push("num_alive_connections", Value::Integer(server.connection_count() as i64), Gauge);
        push("avg_latency", Value::Float((average * 10_000.0).round() / 10_000.0), Gauge);
        push("outstanding_requests", Value::Integer(server.outstanding().max(0)), Gauge);
        push("znode_count", Value::Integer(tree.node_count() as i64), Gauge);
        push("global_sessions", Value::Integer(tree.session_count() as i64), Gauge);
        push("non_mtls_remote_conn_count", Value::Integer(0), Gauge);
        push("packets_sent", Value::Integer(server.packets_sent() as i64), Gauge);
        push("packets_received", Value::Integer(server.packets_received() as i64), Gauge);
        push("watch_count", Value::Integer(watches.watches as i64), Gauge);
        push("auth_failed_count", Value::Integer(metrics.auth_failed.load(Ordering::Relaxed) as i64), Gauge);
        push("min_latency", Value::Integer(min.round() as i64), Gauge);
        if let Some((open, max_files)) = file_descriptors() {
            push("max_file_descriptor_count", Value::Integer(max_files as i64), Gauge);
            push("open_file_descriptor_count", Value::Integer(open as i64), Gauge);
        }
        push("approximate_data_size", Value::Integer(tree.approximate_data_bytes()), Gauge);
        push("local_sessions", Value::Integer(0), Gauge);
        push("uptime", Value::Integer(server.started().elapsed().as_millis() as i64), Gauge);
        push("max_latency", Value::Integer(max.round() as i64), Gauge);
        push("non_mtls_local_conn_count", Value::Integer(0), Gauge);
        push(
            "connection_rejected",
            Value::Integer(metrics.connection_rejected.load(Ordering::Relaxed) as i64),
            Counter,
        );
        push("snap_count", Value::Integer(metrics.snapshots.load(Ordering::Relaxed) as i64), Counter);
        let view = server.ensemble();
        push("looking_count", Value::Integer(view.looking_count() as i64), Counter);
        if view.distributed {
            // What ZooKeeper's quorum peers add (MonitorCommand): every
            // member its peer state and quorum size, the leader its
            // learners, the observer its leader.
            push("peer_state", Value::Text(view.peer_state()), MonitorOnly);
            push("quorum_size", Value::Integer(view.voters.len() as i64), Gauge);
            if view.leading() {
                let uptime_ms = view.leading_since.map_or(0, |since| since.elapsed().as_millis() as i64);
                push("learners", Value::Integer(view.connected_learners() as i64), Gauge);
                push("synced_followers", Value::Integer(view.synced_followers() as i64), Gauge);
                // Non-voting followers exist in ZooKeeper only while a
                // reconfiguration adds a voter; zoocore does not reconfigure.
                push("synced_non_voting_followers", Value::Integer(0), Gauge);
                push("synced_observers", Value::Integer(view.synced_observers() as i64), Gauge);
                push("pending_syncs", Value::Integer(view.pending_syncs as i64), Gauge);
                push("leader_uptime", Value::Integer(uptime_ms), Gauge);
            }
            if view.role == Some(crate::node::Role::Observer) {
                if let Some(leader) = view.leader {
                    push("observer_master_id", Value::Integer(leader as i64), Gauge);
                }
            }
        }
        // ZooKeeper's per-namespace quota gauge sets, as mntr spells them
        // (`<namespace>_<metric>`); the Prometheus page labels them instead.
        for (namespace, metric, value) in quota_figures(&tree) {
            push(&format!("{namespace}_{metric}"), Value::Integer(value), MonitorOnly);
        }
        let summaries = vec![
            SummaryMetric { name: "readlatency", advanced: true, snapshot: metrics.latency(false), divisor: 1000 },
            SummaryMetric { name: "updatelatency", advanced: true, snapshot: metrics.latency(true), divisor: 1000 },
            SummaryMetric {
                name: "fsynctime",
                advanced: false,
                snapshot: Some(metrics.fsync_us.snapshot()),
                divisor: 1000,
            },
            SummaryMetric {
                name: "snapshottime",
                advanced: false,
                snapshot: Some(metrics.snapshot_us.snapshot()),
                divisor: 1000,
            },
            SummaryMetric {
                name: "sync_processor_batch_size",
                advanced: false,
                snapshot: Some(metrics.group_commit_entries.snapshot()),
                divisor: 1,
            },
            SummaryMetric {
                name: "election_time",
                advanced: false,
                snapshot: Some(metrics.election_time_ms.snapshot()),
                divisor: 1,
            },
            SummaryMetric {
                name: "proposal_latency",
                advanced: true,
                snapshot: Some(metrics.proposal_latency_us.snapshot()),
                divisor: 1000,
            },
        ];
        Monitor { entries, summaries }
    }

    /// Every value as mntr and the admin `monitor` list it, summaries
    /// spelled out (avg_, min_, max_, cnt_, sum_ and for advanced ones
    /// p50_, p95_, p99_, p999_).
    pub fn flat(&self) -> Vec<(String, Value)> {
        let mut flat: Vec<(String, Value)> =
            self.entries.iter().map(|entry| (entry.name.clone(), entry.value.clone())).collect();
        for summary in &self.summaries {
            let empty = Snapshot::empty();
            let snapshot = summary.snapshot.as_ref().unwrap_or(&empty);
            let divisor = summary.divisor;
            let name = summary.name;
            let scaled = |value: u64| Value::Integer((value / divisor) as i64);
            flat.push((
                format!("avg_{name}"),
                Value::Float((snapshot.mean() / divisor as f64 * 10_000.0).round() / 10_000.0),
            ));
            flat.push((format!("min_{name}"), scaled(snapshot.min())));
            flat.push((format!("max_{name}"), scaled(snapshot.max())));
            flat.push((format!("cnt_{name}"), Value::Integer(snapshot.count() as i64)));
            flat.push((format!("sum_{name}"), scaled(snapshot.sum())));
            if summary.advanced {
                for (label, quantile) in [("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("p999", 0.999)] {
                    flat.push((format!("{label}_{name}"), scaled(snapshot.quantile(quantile))));
                }
            }
        }
        flat
    }
}

/// ZooKeeper's quota gauge sets (QuotaMetricsUtils, ServerMetrics).
pub(super) const QUOTA_METRICS: [&str; 5] = [
    "quota_count_limit_per_namespace",
    "quota_bytes_limit_per_namespace",
    "quota_count_usage_per_namespace",
    "quota_bytes_usage_per_namespace",
    "quota_exceeded_error_per_namespace",
];

/// (namespace, metric, value) for every namespace holding a quota.
pub(super) fn quota_figures(tree: &crate::tree::Tree) -> Vec<(String, &'static str, i64)> {
    use crate::tree::quota;
    let mut figures = Vec::new();
    for (namespace, values) in quota::namespace_figures(tree) {
        for (metric, value) in QUOTA_METRICS.iter().zip(values) {
            figures.push((namespace.clone(), *metric, value));
        }
    }
    for (namespace, count) in quota::exceeded_counts() {
        figures.push((namespace, QUOTA_METRICS[4], count as i64));
    }
    figures
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_as_prometheus_and_java_do() {
        use super::super::prometheus::prometheus_number;
        assert_eq!(prometheus_number(5.0), "5");
        assert_eq!(prometheus_number(0.25), "0.25");
        assert_eq!(java_double(3.0), "3.0");
        assert_eq!(java_double(1.13888), "1.1389");
    }
}
