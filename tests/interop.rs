//! Real third-party clients against the real binary: the kazoo suite (kazoo
//! from PyPI: plain operations and its recipes) and the zkCli suite (Debian's
//! Java zkCli), both of which pass against Apache ZooKeeper 3.8 (see
//! tests/interop/README.md). `.ci/setup.sh` installs the clients; without
//! them these tests fail and say so, they do not skip.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Cluster, Server};

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The settings the suites expect: TTL nodes on, and the super digest of
/// the reference harness (user super, password test).
const SUITE_SETTINGS: [&str; 3] = [
    "extendedTypesEnabled=true",
    "DigestAuthenticationProvider.superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU=",
    "maxClientCnxns=0",
];

fn start_server() -> Server {
    Server::start_with(&SUITE_SETTINGS)
}

/// A 3-server ensemble with the same settings, once it has a leader; the
/// suites get the connect string of all three, as an application would.
fn start_ensemble() -> Cluster {
    let cluster = Cluster::start_with(3, 0, &SUITE_SETTINGS);
    cluster.wait_for_leader(Duration::from_secs(20));
    cluster
}

fn kazoo_python() -> PathBuf {
    let python = std::env::var_os("ZOOCORE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repository().join(".venv"))
        .join("bin/python");
    assert!(Path::new(&python).exists(), "{} is missing: run .ci/setup.sh first", python.display());
    python
}

fn zkcli_present() {
    assert!(
        Path::new("/usr/share/java/zookeeper.jar").exists(),
        "Debian's zookeeper package is missing: run .ci/setup.sh first"
    );
}

fn run_suite(name: &str, command: Command, server: &Server) {
    run_suite_logged(name, command, || server.stderr_tail())
}

fn run_suite_logged(name: &str, mut command: Command, logs: impl Fn() -> String) {
    let output = command.output().unwrap_or_else(|error| panic!("{name}: cannot run: {error}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let failures: Vec<&str> = stdout.lines().filter(|line| line.starts_with("FAIL")).collect();
    let passed = stdout.lines().filter(|line| line.starts_with("ok ")).count();
    if !output.status.success() || !failures.is_empty() {
        panic!(
            "{name}: {} failed, {passed} passed\n{}\n--- stderr ---\n{}\n--- server log ---\n{}",
            failures.len(),
            failures.join("\n"),
            String::from_utf8_lossy(&output.stderr),
            logs()
        );
    }
    assert!(passed > 50, "{name}: only {passed} checks ran\n{stdout}");
    eprintln!("{name}: {passed} checks passed");
}

#[test]
fn kazoo_suite_passes() {
    let python = kazoo_python();
    let server = start_server();
    let mut command = Command::new(python);
    command.arg(repository().join("tests/interop/kazoo_suite.py")).args(["--hosts", server.addr(), "--ttl", "on"]);
    run_suite("kazoo suite", command, &server);
}

#[test]
fn zkcli_suite_passes() {
    zkcli_present();
    let server = start_server();
    let mut command = Command::new("bash");
    command.arg(repository().join("tests/interop/zkcli_suite.sh")).args([server.addr(), "--ttl", "on"]);
    run_suite("zkCli suite", command, &server);
}

fn cluster_logs(cluster: &Cluster) -> String {
    cluster.servers.iter().map(|server| server.stderr_tail()).collect::<Vec<_>>().join("\n")
}

#[test]
fn kazoo_suite_passes_against_an_ensemble() {
    let python = kazoo_python();
    let cluster = start_ensemble();
    let mut command = Command::new(python);
    command.arg(repository().join("tests/interop/kazoo_suite.py")).args([
        "--hosts",
        &cluster.connect_string(),
        "--ttl",
        "on",
    ]);
    run_suite_logged("kazoo suite (3-server ensemble)", command, || cluster_logs(&cluster));
}

#[test]
fn zkcli_suite_passes_against_an_ensemble() {
    zkcli_present();
    let cluster = start_ensemble();
    let mut command = Command::new("bash");
    command.arg(repository().join("tests/interop/zkcli_suite.sh")).args([&cluster.connect_string(), "--ttl", "on"]);
    run_suite_logged("zkCli suite (3-server ensemble)", command, || cluster_logs(&cluster));
}

/// kazoo's read-only test (TestReadOnlyMode) against an ensemble with
/// readonlymode.enabled: the script asks for two members to stop and to
/// start again; this side does it and answers on the script's stdin.
#[test]
fn kazoo_read_only_client_against_an_ensemble_losing_its_quorum() {
    const DEADLINE: Duration = Duration::from_secs(180);
    let python = kazoo_python();
    let mut settings = SUITE_SETTINGS.to_vec();
    settings.push("readonlymode.enabled=true");
    let mut cluster = Cluster::start_with(3, 0, &settings);
    let leader = cluster.wait_for_leader(Duration::from_secs(20));
    let survivor = (leader + 1) % 3;
    let mut child = Command::new(python)
        .arg(repository().join("tests/interop/kazoo_read_only.py"))
        .args(["--hosts", &cluster.connect_string(), "--survivor", cluster.servers[survivor].addr()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kazoo_read_only.py");
    let (lines, stdout) = std::sync::mpsc::channel();
    let reader = BufReader::new(child.stdout.take().expect("stdout"));
    std::thread::spawn(move || reader.lines().map_while(Result::ok).try_for_each(|line| lines.send(line)));
    let mut stdin = child.stdin.take().expect("stdin");
    let started = std::time::Instant::now();
    let mut seen = Vec::new();
    while let Ok(line) = stdout.recv_timeout(DEADLINE.saturating_sub(started.elapsed())) {
        let others = (0..3).filter(|&index| index != survivor);
        match line.as_str() {
            "step stop-others" => others.for_each(|index| cluster.servers[index].kill()),
            "step start-others" => others.for_each(|index| cluster.servers[index].restart()),
            _ => {}
        }
        if line.starts_with("step ") {
            writeln!(stdin, "done").expect("answer the script");
        }
        seen.push(line);
    }
    let finished = child.try_wait().ok().flatten().is_some() || started.elapsed() < DEADLINE;
    if !finished {
        let _ = child.kill();
    }
    let output = child.wait_with_output().expect("the script's exit");
    let failures: Vec<&String> = seen.iter().filter(|line| line.starts_with("FAIL")).collect();
    let passed = seen.iter().filter(|line| line.starts_with("ok ")).count();
    assert!(
        finished && output.status.success() && failures.is_empty() && passed == 10,
        "kazoo read-only: {passed} passed, finished: {finished}\n{}\n--- stderr ---\n{}\n--- servers ---\n{}",
        seen.join("\n"),
        String::from_utf8_lossy(&output.stderr),
        cluster_logs(&cluster)
    );
    eprintln!("kazoo read-only: {passed} checks passed; {}", seen.last().map_or("", String::as_str));
}
