//! End-to-end runs of the zoocore-loadgen binary against a real server.
//!
//! The server comes from the environment when `ZOOCORE_LOADGEN_TEST_HOSTS`
//! is set (for example a reference Apache ZooKeeper on 127.0.0.1:2681);
//! otherwise each test starts the zoocore server itself through the
//! workspace's one test harness, tests/common/harness.rs (`Server`), shared
//! here by path. The server binary is `ZOOCORE_BIN`, or the newer of
//! `target/release/zoocore` and `target/debug/zoocore` in the target
//! directory these tests were built in.
//!
//! Every run is bounded: a few thousand operations or one second of load,
//! a `--max-duration`, and a wall-clock limit after which the loadgen is
//! killed and the test fails. Each test uses its own `--root`, so the tests
//! can share one server and run in parallel.

#[path = "../../tests/common/certs.rs"]
#[allow(dead_code)] // Only the client-port helpers are used here.
mod certs;
#[path = "../../tests/common/harness.rs"]
mod harness;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use harness::{Process, Server, TestDir};
use serde_json::Value;

/// How long one loadgen run may take before the test kills it.
const RUN_LIMIT: Duration = Duration::from_secs(90);

/// The server to test against: the one `ZOOCORE_LOADGEN_TEST_HOSTS` names
/// (None), or one started here and stopped when the returned value drops.
fn server() -> (Option<Server>, String) {
    match std::env::var("ZOOCORE_LOADGEN_TEST_HOSTS") {
        Ok(hosts) if !hosts.trim().is_empty() => (None, hosts),
        _ => {
            let server = Server::start();
            let address = server.addr().to_string();
            (Some(server), address)
        }
    }
}

/// Runs the loadgen with `arguments`, killing it past [`RUN_LIMIT`].
fn loadgen(arguments: &[&str]) -> harness::Output {
    let output = Process::run(Command::new(env!("CARGO_BIN_EXE_zoocore-loadgen")).args(arguments), RUN_LIMIT);
    assert!(
        output.status.success(),
        "zoocore-loadgen {arguments:?} failed:\nstdout:\n{}\nstderr:\n{}",
        output.stdout,
        output.stderr
    );
    output
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read the JSON summary"))
        .expect("the JSON summary parses")
}

fn number(value: &Value, pointer: &str) -> f64 {
    value.pointer(pointer).and_then(Value::as_f64).unwrap_or_else(|| panic!("{pointer} is not a number in {value:#}"))
}

fn check_latency(summary: &Value, prefix: &str) {
    let p50 = number(summary, &format!("{prefix}/p50"));
    let p90 = number(summary, &format!("{prefix}/p90"));
    let p99 = number(summary, &format!("{prefix}/p99"));
    let p999 = number(summary, &format!("{prefix}/p999"));
    let max = number(summary, &format!("{prefix}/max"));
    let mean = number(summary, &format!("{prefix}/mean"));
    assert!(p50 > 0.0 && p50 <= p90 && p90 <= p99 && p99 <= p999 && p999 <= max, "{prefix}");
    assert!(mean > 0.0 && mean <= max, "{prefix}");
}

#[test]
fn mix_run_writes_a_complete_summary() {
    let (_guard, hosts) = server();
    let scratch = TestDir::new("loadgen-mix");
    let directory = scratch.path();
    let json = directory.join("mix.json");
    let hgrm = directory.join("mix");
    let root = format!("/zoocore-loadgen-test-{}-mix", std::process::id());
    let output = loadgen(&[
        "run",
        "--hosts",
        &hosts,
        "--root",
        &root,
        "--mix",
        "get=40,set=20,exists=10,children=10,create=10,delete=5,multi=5",
        "--keys",
        "50",
        "--keys-per-directory",
        "10",
        "--value-size",
        "64",
        "--connections",
        "2",
        "--outstanding",
        "4",
        "--warmup",
        "0s",
        "--ops",
        "2000",
        "--max-duration",
        "60s",
        "--json",
        json.to_str().unwrap(),
        "--hgrm",
        hgrm.to_str().unwrap(),
        "--label",
        "integration",
        "--quiet",
    ]);
    let table = &output.stdout;
    assert!(table.contains("p99.9 us") && table.contains("get"), "{table}");

    let summary = read_json(&json);
    assert_eq!(number(&summary, "/ops"), 2000.0);
    assert_eq!(number(&summary, "/errors"), 0.0, "{summary:#}");
    assert!(number(&summary, "/ops_per_sec") > 0.0);
    assert_eq!(summary["label"], "integration");
    assert_eq!(summary["workload"], "mix");
    check_latency(&summary, "/latency_us");
    let per_op = summary["per_op"].as_object().expect("per_op is an object");
    let mut per_op_total = 0.0;
    for operation in ["get", "set", "exists", "children", "create", "multi"] {
        assert!(per_op.contains_key(operation), "{operation} missing from {per_op:?}");
        check_latency(&summary, &format!("/per_op/{operation}/latency_us"));
    }
    for (_, entry) in per_op {
        per_op_total += entry["ops"].as_f64().unwrap();
    }
    assert_eq!(per_op_total, 2000.0);
    assert_eq!(summary["config"]["hosts"].as_str().unwrap().split(',').count(), hosts.split(',').count());
    assert_eq!(summary["config"]["connections"], 2);
    assert_eq!(summary["config"]["mix"], "get=40,set=20,exists=10,children=10,create=10,delete=5,multi=5");
    assert!(number(&summary, "/loadgen_cpu/cpu_ns_per_op") > 0.0);
    let histogram = summary["histogram"].as_array().expect("histogram points");
    assert!(!histogram.is_empty());
    assert_eq!(histogram.last().unwrap()["total_count"], 2000);

    let hgrm_text = std::fs::read_to_string(directory.join("mix.hgrm")).expect("mix.hgrm");
    assert!(hgrm_text.contains("Total count    =         2000"), "{hgrm_text}");
    assert!(directory.join("mix.get.hgrm").is_file());

    let report = directory.join("report.html");
    loadgen(&["report", json.to_str().unwrap(), json.to_str().unwrap(), "-o", report.to_str().unwrap()]);
    let html = std::fs::read_to_string(&report).expect("report.html");
    assert_eq!(html.matches("<svg").count(), 3);
}

/// The other workloads, one short run each: they must finish, count no
/// error and fill in their headline latency.
#[test]
fn watch_lock_and_churn_workloads_run() {
    let (_guard, hosts) = server();
    let scratch = TestDir::new("loadgen-workloads");
    let directory = scratch.path();
    for (workload, extra) in [
        ("watch", vec!["--watchers", "3", "--watched-nodes", "4", "--rate", "200"]),
        ("lock", vec!["--connections", "3"]),
        ("churn", vec!["--connections", "2", "--rate", "100"]),
    ] {
        let json = directory.join(format!("{workload}.json"));
        let root = format!("/zoocore-loadgen-test-{}-{workload}", std::process::id());
        let mut arguments = vec![
            "run",
            "--workload",
            workload,
            "--hosts",
            &hosts,
            "--root",
            &root,
            "--warmup",
            "200ms",
            "--duration",
            "1s",
            "--quiet",
            "--json",
            json.to_str().unwrap(),
        ];
        arguments.extend(extra);
        loadgen(&arguments);
        let summary = read_json(&json);
        assert_eq!(summary["workload"], workload);
        assert!(number(&summary, "/ops") > 0.0, "{workload}: {summary:#}");
        assert_eq!(number(&summary, "/errors"), 0.0, "{workload}: {summary:#}");
        assert!(number(&summary, "/latency_us/max") > 0.0, "{workload}");
        // Every workload divides by the duration it actually measured,
        // which the one-second window bounds.
        let duration_s = number(&summary, "/duration_s");
        assert!(duration_s > 0.0 && duration_s <= 1.0, "{workload}: duration_s {duration_s}");
        let ops = number(&summary, "/ops");
        let expected_rate = ops / duration_s;
        assert!((number(&summary, "/ops_per_sec") - expected_rate).abs() <= 1e-9 * expected_rate, "{workload}");
        if workload == "lock" {
            assert_eq!(number(&summary, "/counters/mutual_exclusion_violations"), 0.0);
        }
        if workload == "watch" {
            assert_eq!(number(&summary, "/counters/events_missing"), 0.0, "{summary:#}");
        }
    }
}

/// `--tls` against a secure client port that asks for a client certificate
/// (`ssl.clientAuth=need`): the mix workload runs over TLS with no error,
/// and the same run without the client certificate is refused.
#[test]
fn tls_runs_against_a_secure_port() {
    if std::env::var("ZOOCORE_LOADGEN_TEST_HOSTS").is_ok_and(|hosts| !hosts.trim().is_empty()) {
        eprintln!("skipped: needs a server of its own with a secure port");
        return;
    }
    let certificates = certs::CertificateDir::new();
    certs::make_ca(certificates.root(), "ca");
    certs::make_leaf(certificates.root(), "server", "/CN=localhost", "ca", Some(certs::SERVER_EXTENSIONS), "2");
    certs::make_leaf(certificates.root(), "client", "/CN=loadgen", "ca", Some(certs::CLIENT_EXTENSIONS), "2");
    let port = harness::free_port();
    let lines = certs::secure_port_lines(&certificates, port, "need");
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let _server = Server::start_with(&lines);
    let secure = format!("127.0.0.1:{port}");
    let (ca, certificate, key) =
        (certificates.path("ca.pem"), certificates.path("client.crt"), certificates.path("client.key"));
    let scratch = TestDir::new("loadgen-tls");
    let json = scratch.path().join("tls.json");
    let json_text = json.display().to_string();
    // One run over TLS; `identity` adds the client certificate.
    let run_over_tls = |root: &str, ops: &str, identity: bool, json: Option<&str>| {
        let mut arguments = vec!["run", "--hosts", &secure, "--tls", "--tls-ca", &ca, "--root", root];
        if identity {
            arguments.extend(["--tls-cert", &certificate, "--tls-key", &key]);
        }
        arguments.extend(["--keys", "200", "--ops", ops, "--warmup", "0s", "--max-duration", "30s"]);
        if let Some(json) = json {
            arguments.extend(["--json", json]);
        }
        Process::run(Command::new(env!("CARGO_BIN_EXE_zoocore-loadgen")).args(&arguments), RUN_LIMIT)
    };
    let run = run_over_tls("/loadgen-tls", "3000", true, Some(&json_text));
    assert!(run.status.success(), "zoocore-loadgen over TLS failed:\n{}\n{}", run.stdout, run.stderr);
    let summary = read_json(&json);
    assert_eq!(number(&summary, "/ops"), 3000.0, "{summary:#}");
    assert_eq!(number(&summary, "/errors"), 0.0, "{summary:#}");
    // Without a client certificate the server refuses the handshake.
    let refused = run_over_tls("/loadgen-tls-refused", "10", false, None);
    assert!(
        !refused.status.success() && refused.stderr.contains("cannot open a session"),
        "a run without a client certificate was not refused:\n{}\n{}",
        refused.stdout,
        refused.stderr
    );
}

/// `floor` answers every operation of the mix workload with the reply's
/// shape, syncs its writes to the --dsync file, and closes a connection that
/// sends a malformed frame without stopping.
#[test]
fn floor_answers_the_mix_workload_and_survives_bad_input() {
    use std::io::{Read, Write};

    let scratch = TestDir::new("loadgen-floor");
    let dsync = scratch.path().join("floor-dsync");
    let mut floor = Process::start(
        Command::new(env!("CARGO_BIN_EXE_zoocore-loadgen")).args([
            "floor",
            "--listen",
            "127.0.0.1:0",
            "--value-size",
            "64",
            "--dsync",
            dsync.to_str().unwrap(),
        ]),
        None,
    );
    let address = floor.wait_for_line("floor listening on ", Duration::from_secs(10)).expect("the floor starts");

    // A negative frame length: that connection is closed, with a reason.
    let mut bad = std::net::TcpStream::connect(&address).expect("connect");
    bad.write_all(&(-5i32).to_be_bytes()).expect("send");
    bad.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(bad.read(&mut [0u8; 16]).expect("the floor closes the connection"), 0);

    let json = scratch.path().join("floor.json");
    loadgen(&[
        "run",
        "--hosts",
        &address,
        "--mix",
        "get=40,set=20,exists=10,children=10,create=10,delete=5,multi=5",
        "--keys",
        "50",
        "--value-size",
        "64",
        "--connections",
        "2",
        "--warmup",
        "0s",
        "--ops",
        "2000",
        "--max-duration",
        "60s",
        "--json",
        json.to_str().unwrap(),
        "--quiet",
    ]);
    let summary = read_json(&json);
    assert_eq!(number(&summary, "/ops"), 2000.0);
    assert_eq!(number(&summary, "/errors"), 0.0, "{summary:#}");
    check_latency(&summary, "/latency_us");
    let synced = std::fs::metadata(&dsync).expect("the --dsync file exists").len();
    assert_eq!(synced, 4096 * 1024, "one block per connection slot");
    assert!(floor.try_status().is_none(), "the floor still serves: {}", floor.stderr());
    floor.kill();
    assert!(floor.stderr().contains("bad frame"), "the bad connection's reason is logged: {}", floor.stderr());
}
