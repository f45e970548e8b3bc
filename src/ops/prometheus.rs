//! The Prometheus page (`/metrics`): ZooKeeper's names as its Prometheus
//! provider exports them, and zoocore's own `zoocore_*` families, rendered
//! from the same [`Monitor`] that mntr prints plus the recorders of
//! [`Metrics`]. Apart from the monitor so the list of values and the text
//! format each read in one sitting.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use super::monitor::{quota_figures, Kind, Monitor, QUOTA_METRICS};
use super::ServerView;
use crate::metrics::{CloseKind, Snapshot, WriteStage};

/// The Prometheus text format (version 0.0.4) for one page.
struct Exposition {
    out: String,
}

impl Exposition {
    fn family(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, String)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (index, (label, text)) in labels.iter().enumerate() {
                if index > 0 {
                    self.out.push(',');
                }
                let escaped = text.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
                let _ = write!(self.out, "{label}=\"{escaped}\"");
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", prometheus_number(value));
    }

    /// One summary sample set: quantiles, _sum and _count.
    fn summary(&mut self, name: &str, labels: &[(&str, String)], snapshot: &Snapshot, quantiles: &[f64], scale: f64) {
        for quantile in quantiles {
            let mut with_quantile = labels.to_vec();
            with_quantile.push(("quantile", quantile.to_string()));
            self.sample(name, &with_quantile, snapshot.quantile(*quantile) as f64 * scale);
        }
        self.sample(&format!("{name}_sum"), labels, snapshot.sum() as f64 * scale);
        self.sample(&format!("{name}_count"), labels, snapshot.count() as f64);
    }
}

pub(super) fn prometheus_number(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_string()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

/// The /metrics page: ZooKeeper's names (as its Prometheus provider exports
/// them) and zoocore's own `zoocore_*` families.
pub fn render_prometheus(server: &dyn ServerView, monitor: &Monitor) -> String {
    let mut page = Exposition { out: String::with_capacity(16 << 10) };
    for entry in &monitor.entries {
        let kind = match entry.kind {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
            Kind::MonitorOnly => continue,
        };
        let Some(value) = entry.value.number() else { continue };
        page.family(&entry.name, &entry.name, kind);
        page.sample(&entry.name, &[], value);
    }
    for summary in &monitor.summaries {
        let Some(snapshot) = &summary.snapshot else { continue };
        let quantiles: &[f64] = if summary.advanced { &[0.5, 0.9, 0.99] } else { &[0.5] };
        page.family(summary.name, summary.name, "summary");
        page.summary(summary.name, &[], snapshot, quantiles, 1.0 / summary.divisor as f64);
    }

    let tree = server.tree();
    let quota = quota_figures(&tree);
    for metric in QUOTA_METRICS {
        // ZooKeeper's errors per namespace are a counter set, the rest
        // gauge sets; both are labelled "key".
        let kind = if metric == QUOTA_METRICS[4] { "counter" } else { "gauge" };
        page.family(metric, metric, kind);
        for (namespace, _, value) in quota.iter().filter(|(_, name, _)| *name == metric) {
            page.sample(metric, &[("key", namespace.clone())], *value as f64);
        }
    }

    let metrics = server.metrics();
    page.family("zoocore_info", "zoocore's version and the ZooKeeper API it provides", "gauge");
    page.sample(
        "zoocore_info",
        &[
            ("version", env!("CARGO_PKG_VERSION").to_string()),
            ("zookeeper_api", super::fourletter::ZOOKEEPER_API_VERSION.to_string()),
        ],
        1.0,
    );
    page.family("zoocore_shards", "shard executors, one per core", "gauge");
    page.sample("zoocore_shards", &[], metrics.shards.len() as f64);

    page.family("zoocore_requests_total", "requests answered, per shard and kind (read or write)", "counter");
    for (id, shard) in metrics.shards.iter().enumerate() {
        for (kind, counter) in [("read", &shard.reads), ("write", &shard.writes)] {
            page.sample(
                "zoocore_requests_total",
                &[("shard", id.to_string()), ("kind", kind.to_string())],
                counter.load(Ordering::Relaxed) as f64,
            );
        }
    }
    let latency_quantiles = [0.5, 0.9, 0.99, 0.999];
    page.family(
        "zoocore_request_latency_seconds",
        "time from a request's arrival on its shard to its reply, per shard and kind",
        "summary",
    );
    for (id, shard) in metrics.shards.iter().enumerate() {
        for (kind, recorder) in [("read", &shard.read_latency_us), ("write", &shard.write_latency_us)] {
            let labels = [("shard", id.to_string()), ("kind", kind.to_string())];
            page.summary("zoocore_request_latency_seconds", &labels, &recorder.snapshot(), &latency_quantiles, 1e-6);
        }
    }
    page.family(
        "zoocore_queue_depth",
        "messages waiting in the cross-core queues: shard to broadcast core, broadcast core to shard, and the broadcast core's inbox",
        "gauge",
    );
    for (id, shard) in metrics.shards.iter().enumerate() {
        let shard_label = id.to_string();
        page.sample(
            "zoocore_queue_depth",
            &[("queue", "shard_to_broadcast".to_string()), ("shard", shard_label.clone())],
            shard.to_broadcast_depth() as f64,
        );
        page.sample(
            "zoocore_queue_depth",
            &[("queue", "broadcast_to_shard".to_string()), ("shard", shard_label)],
            shard.to_shard_depth() as f64,
        );
    }
    page.sample(
        "zoocore_queue_depth",
        &[("queue", "broadcast_inbox".to_string()), ("shard", "broadcast".to_string())],
        metrics.broadcast_inbox_depth.load(Ordering::Relaxed) as f64,
    );
    let distribution_quantiles = [0.5, 0.9, 0.99];
    for (name, help, recorder, scale) in [
        (
            "zoocore_write_batch_requests",
            "messages (writes, handshakes, session touches) the broadcast core took into one batch",
            &metrics.write_batch_requests,
            1.0,
        ),
        (
            "zoocore_group_commit_entries",
            "log records written with one write and one fsync",
            &metrics.group_commit_entries,
            1.0,
        ),
        ("zoocore_group_commit_bytes", "bytes written with one write and one fsync", &metrics.group_commit_bytes, 1.0),
        ("zoocore_fsync_seconds", "time of one fsync of the transaction log", &metrics.fsync_us, 1e-6),
        ("zoocore_snapshot_seconds", "time to take one snapshot", &metrics.snapshot_us, 1e-6),
    ] {
        page.family(name, help, "summary");
        page.summary(name, &[], &recorder.snapshot(), &distribution_quantiles, scale);
    }
    page.family(
        "zoocore_write_stage_seconds",
        "time a write spends in each stage: per message (to_core, queue), per broadcast round (prep, release, \
         publish), per log sync (log_write, fsync), per commit on a shard (to_shard, shard_apply), per socket \
         write (socket_write)",
        "summary",
    );
    for stage in WriteStage::ALL {
        page.summary(
            "zoocore_write_stage_seconds",
            &[("stage", stage.name().to_string())],
            &metrics.stage(stage),
            &latency_quantiles,
            1e-6,
        );
    }
    page.family(
        "zoocore_slow_fsyncs_total",
        "fsyncs of the transaction log slower than fsync.warningthresholdms",
        "counter",
    );
    page.sample("zoocore_slow_fsyncs_total", &[], metrics.fsync_threshold_exceeded.load(Ordering::Relaxed) as f64);
    page.family(
        "zoocore_connections_closed_total",
        "client connections ended, by who or what ended them (server/close.rs)",
        "counter",
    );
    for kind in CloseKind::ALL {
        let count = metrics.connections_closed[kind.index()].load(Ordering::Relaxed);
        page.sample("zoocore_connections_closed_total", &[("reason", kind.as_str().to_string())], count as f64);
    }
    page.family("zoocore_sessions_expired_total", "sessions that expired without their client closing them", "counter");
    page.sample("zoocore_sessions_expired_total", &[], metrics.sessions_expired.load(Ordering::Relaxed) as f64);
    render_ensemble(server, &mut page);
    page.out
}

/// The ensemble's families: zoocore's own, as ZooKeeper's provider has no
/// per-peer lag or queue gauges (its nearest, learner_handler_qp_size, is a
/// summary of the leader's queue per packet). Only a member prints samples;
/// the peer families are the leader's view except the link ones, which
/// every member has.
fn render_ensemble(server: &dyn ServerView, page: &mut Exposition) {
    let view = server.ensemble();
    page.family("zoocore_elections_total", "leader elections this server saw end since it started", "counter");
    page.family("zoocore_term", "the raft term this server is in", "gauge");
    page.family("zoocore_log_index", "indexes of this server's log: last appended, committed, applied", "gauge");
    if view.distributed {
        page.sample("zoocore_elections_total", &[], view.elections as f64);
        page.sample("zoocore_term", &[], view.term as f64);
        for (which, index) in
            [("last", view.last_index), ("commit", view.commit_index), ("applied", view.applied_index)]
        {
            page.sample("zoocore_log_index", &[("index", which.to_string())], index as f64);
        }
    }
    page.family(
        "zoocore_peer_lag_entries",
        "on the leader, how many log entries each member is behind the leader's last index",
        "gauge",
    );
    for (id, _) in &view.matched {
        if let Some(lag) = view.lag(*id) {
            page.sample("zoocore_peer_lag_entries", &[("peer", id.to_string())], lag as f64);
        }
    }
    let links = &view.links;
    for (name, help, kind, value) in [
        (
            "zoocore_peer_connected",
            "whether the link to the peer is up (1) or down (0)",
            "gauge",
            (|link| u64::from(link.connected)) as fn(&super::PeerStats) -> u64,
        ),
        ("zoocore_peer_queue_frames", "frames waiting on the send queue to the peer", "gauge", |link| {
            link.queue_frames as u64
        }),
        ("zoocore_peer_queue_bytes", "payload bytes waiting on the send queue to the peer", "gauge", |link| {
            link.queue_bytes as u64
        }),
        (
            "zoocore_peer_dropped_frames_total",
            "frames for the peer dropped: its queue was full or its link down",
            "counter",
            |link| link.drops,
        ),
        ("zoocore_peer_reconnects_total", "outbound connections to the peer after the first", "counter", |link| {
            link.reconnects
        }),
    ] {
        page.family(name, help, kind);
        for link in links {
            page.sample(name, &[("peer", link.id.to_string())], value(link) as f64);
        }
    }
}
