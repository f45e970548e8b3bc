//! The Prometheus page: on with ZooKeeper's Prometheus provider class, in
//! the text format (parsed by the prometheus-parse crate and checked line by
//! line), under ZooKeeper's metric names and kinds, plus zoocore's per-shard
//! and broadcast-core families.

mod common;

use std::collections::{HashMap, HashSet};

use common::*;
use prometheus_parse::{LineInfo, Scrape, Value};

const PROMETHEUS: &str = "metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider";

fn scrape(addr: &str) -> (String, Scrape) {
    let (status, headers, body) = http(addr, "GET", "/metrics");
    assert_eq!(status, 200, "{body}");
    assert!(
        headers.iter().any(|(name, value)| name == "content-type" && value.starts_with("text/plain; version=0.0.4")),
        "{headers:?}"
    );
    let parsed = Scrape::parse(body.lines().map(|line| Ok(line.to_string()))).expect("the text format parses");
    (body, parsed)
}

/// Every line is a HELP, a TYPE or a sample, and every sample's family has
/// a TYPE line before it.
fn check_text_format(body: &str) {
    let mut typed: HashSet<String> = HashSet::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().unwrap();
            let kind = parts.next().unwrap();
            assert!(["gauge", "counter", "summary", "histogram", "untyped"].contains(&kind), "{line}");
            assert!(typed.insert(name.to_string()), "one TYPE line per family: {line}");
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        match LineInfo::parse(line) {
            LineInfo::Sample { metric_name, value, .. } => {
                let family = ["_sum", "_count"]
                    .iter()
                    .find_map(|suffix| metric_name.strip_suffix(suffix).filter(|family| typed.contains(*family)))
                    .unwrap_or(metric_name);
                assert!(typed.contains(family), "{metric_name} has a TYPE line before it");
                assert!(value.parse::<f64>().is_ok() || ["NaN", "+Inf", "-Inf"].contains(&value), "{line}");
            }
            _ => panic!("not a HELP, TYPE or sample line: {line:?}"),
        }
    }
}

fn value<'a>(scrape: &'a Scrape, name: &str, labels: &[(&str, &str)]) -> Option<&'a Value> {
    scrape
        .samples
        .iter()
        .find(|sample| {
            sample.metric == name && labels.iter().all(|(label, wanted)| sample.labels.get(label) == Some(*wanted))
        })
        .map(|sample| &sample.value)
}

fn number(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    match value(scrape, name, labels) {
        Some(Value::Gauge(number) | Value::Counter(number) | Value::Untyped(number)) => *number,
        other => panic!("{name}{labels:?}: {other:?}"),
    }
}

#[tokio::test]
async fn metrics_page_has_zookeepers_names_and_zoocores_own() {
    if skip_if_external("metrics_page_has_zookeepers_names_and_zoocores_own", "needs its own configuration") {
        return;
    }
    let server = Server::start_with(&[PROMETHEUS, "metricsProvider.httpPort=0", "zoocore.shards=2"]);
    let metrics = server.metrics_addr().expect("the metrics line").to_string();
    let (_client, _watches) = ops_state(server.addr()).await;
    let client = connect(server.addr()).await;
    for index in 0..20 {
        client.create(&format!("/ops/n{index}"), b"data", &persistent()).await.unwrap();
        client.get_data(&format!("/ops/n{index}")).await.unwrap();
    }

    let (body, scrape) = scrape(&metrics);
    check_text_format(&body);

    // ZooKeeper's gauges, with the values the monitor reports.
    let admin = server.admin_addr().unwrap().to_string();
    let monitor = http_json(&admin, "/commands/monitor");
    for name in [
        "znode_count",
        "watch_count",
        "ephemerals_count",
        "approximate_data_size",
        "num_alive_connections",
        "outstanding_requests",
        "packets_received",
        "packets_sent",
        "uptime",
        "global_sessions",
        "avg_latency",
        "max_latency",
        "min_latency",
        "open_file_descriptor_count",
    ] {
        assert!(matches!(value(&scrape, name, &[]), Some(Value::Gauge(_))), "{name} is a gauge");
        assert!(scrape.docs.contains_key(name), "{name} has HELP");
    }
    for name in ["znode_count", "watch_count", "ephemerals_count", "global_sessions"] {
        assert_eq!(number(&scrape, name, &[]), monitor[name].as_f64().unwrap(), "{name}");
    }
    // The creates under /ops fired the child watch; the two data watches remain.
    assert_eq!(number(&scrape, "watch_count", &[]), 2.0);
    assert_eq!(number(&scrape, "ephemerals_count", &[]), 1.0);
    assert!(matches!(value(&scrape, "connection_rejected", &[]), Some(Value::Counter(_))));

    // ZooKeeper's summaries: readlatency and updatelatency with the 0.5, 0.9
    // and 0.99 quantiles, fsynctime and snapshottime with the median.
    for (name, quantiles) in [
        ("readlatency", vec![0.5, 0.9, 0.99]),
        ("updatelatency", vec![0.5, 0.9, 0.99]),
        ("fsynctime", vec![0.5]),
        ("snapshottime", vec![0.5]),
    ] {
        let Some(Value::Summary(counts)) = value(&scrape, name, &[]) else { panic!("{name} is a summary") };
        let got: Vec<f64> = counts.iter().map(|count| count.quantile).collect();
        assert_eq!(got, quantiles, "{name} quantiles");
        number(&scrape, &format!("{name}_sum"), &[]);
        number(&scrape, &format!("{name}_count"), &[]);
    }
    assert!(number(&scrape, "readlatency_count", &[]) >= 20.0);
    assert!(number(&scrape, "updatelatency_count", &[]) >= 20.0);

    // zoocore's own: per shard and kind, queue depths, batches.
    let mut requests = HashMap::new();
    for shard in ["0", "1"] {
        for kind in ["read", "write"] {
            let labels = [("shard", shard), ("kind", kind)];
            assert!(matches!(value(&scrape, "zoocore_requests_total", &labels), Some(Value::Counter(_))));
            requests.insert((shard, kind), number(&scrape, "zoocore_requests_total", &labels));
            let Some(Value::Summary(counts)) = value(&scrape, "zoocore_request_latency_seconds", &labels) else {
                panic!("latency of shard {shard} {kind}s is a summary")
            };
            assert_eq!(counts.len(), 4);
            let count = number(&scrape, "zoocore_request_latency_seconds_count", &labels);
            assert_eq!(count, requests[&(shard, kind)], "one latency per request on shard {shard}");
        }
        for queue in ["shard_to_broadcast", "broadcast_to_shard"] {
            let depth = number(&scrape, "zoocore_queue_depth", &[("queue", queue), ("shard", shard)]);
            assert!(depth >= 0.0);
        }
    }
    let writes: f64 = requests.iter().filter(|((_, kind), _)| *kind == "write").map(|(_, count)| count).sum();
    let reads: f64 = requests.iter().filter(|((_, kind), _)| *kind == "read").map(|(_, count)| count).sum();
    assert!(writes >= 23.0, "writes: {writes}");
    assert!(reads >= 23.0, "reads: {reads}");
    number(&scrape, "zoocore_queue_depth", &[("queue", "broadcast_inbox")]);
    assert!(number(&scrape, "zoocore_write_batch_requests_count", &[]) > 0.0);
    for name in [
        "zoocore_group_commit_entries",
        "zoocore_group_commit_bytes",
        "zoocore_fsync_seconds",
        "zoocore_snapshot_seconds",
    ] {
        assert!(matches!(value(&scrape, name, &[]), Some(Value::Summary(_))), "{name}");
    }
    assert_eq!(number(&scrape, "zoocore_shards", &[]), 2.0);
    assert!(matches!(value(&scrape, "zoocore_slow_fsyncs_total", &[]), Some(Value::Counter(_))));

    // Issue 10: every stage of a write is timed. The per-message stages saw
    // every write (and handshake); the per-sync ones every group commit.
    let stage_count = |stage: &str| number(&scrape, "zoocore_write_stage_seconds_count", &[("stage", stage)]);
    for stage in [
        "to_core",
        "queue",
        "prep",
        "log_wait",
        "log_write",
        "release",
        "publish",
        "to_shard",
        "shard_apply",
        "socket_write",
    ] {
        let Some(Value::Summary(counts)) = value(&scrape, "zoocore_write_stage_seconds", &[("stage", stage)]) else {
            panic!("the {stage} stage is a summary")
        };
        assert_eq!(counts.len(), 4, "{stage}: quantiles 0.5, 0.9, 0.99, 0.999");
        assert!(stage_count(stage) > 0.0, "{stage} was timed");
    }
    assert!(stage_count("to_core") >= 20.0 && stage_count("queue") >= 20.0);
    let syncs = number(&scrape, "zoocore_group_commit_entries_count", &[]);
    assert_eq!(stage_count("log_write"), syncs, "one log_write per group commit");
    assert_eq!(stage_count("log_wait"), syncs, "one log_wait per group commit");
    // Segments are O_DSYNC: the write is the sync, no fdatasync follows.
    assert_eq!(stage_count("fsync"), 0.0, "no fdatasync after an O_DSYNC write");
}

#[test]
fn metrics_are_off_without_the_prometheus_provider() {
    if skip_if_external("metrics_are_off_without_the_prometheus_provider", "needs its own configuration") {
        return;
    }
    let server = Server::start();
    assert_eq!(server.metrics_addr(), None);
    let server = Server::start_with(&[PROMETHEUS, "metricsProvider.httpPort=0", "admin.enableServer=false"]);
    assert_eq!(server.admin_addr(), None);
    let metrics = server.metrics_addr().expect("metrics on").to_string();
    assert_eq!(http(&metrics, "GET", "/other").0, 404);
    assert_eq!(http(&metrics, "POST", "/metrics").0, 405);
    let (body, _) = scrape(&metrics);
    check_text_format(&body);
}

/// Connection ends are counted by who or what ended them: a client that
/// closes, one that sends a packet length zoocore refuses, a four-letter
/// word.
#[test]
fn connection_ends_are_counted_by_kind() {
    use std::io::Write;
    if skip_if_external("connection_ends_are_counted_by_kind", "needs its own configuration") {
        return;
    }
    let server = Server::start_with(&[PROMETHEUS, "metricsProvider.httpPort=0"]);
    let metrics = server.metrics_addr().expect("metrics on").to_string();
    let closed = |reason: &str| number(&scrape(&metrics).1, "zoocore_connections_closed_total", &[("reason", reason)]);
    assert_eq!(closed("bad_input"), 0.0);
    let mut bad = std::net::TcpStream::connect(server.addr()).expect("connect");
    bad.write_all(&(-5i32).to_be_bytes()).expect("send a negative packet length");
    assert!(common::raw::Conn::connect(server.addr()).close().err == 0, "a client closes its session");
    server.four_letter("ruok");
    assert!(
        wait_for(std::time::Duration::from_secs(10), || closed("bad_input") >= 1.0 && closed("client") >= 2.0),
        "bad_input {} client {}",
        closed("bad_input"),
        closed("client")
    );
}
