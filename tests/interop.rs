//! Real third-party clients against the real binary: the kazoo suite (kazoo
//! from PyPI: plain operations and its recipes) and the zkCli suite (Debian's
//! Java zkCli), both of which pass against Apache ZooKeeper 3.8 (see
//! tests/interop/README.md). `.ci/setup.sh` installs the clients; without
//! them these tests fail and say so, they do not skip.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

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
    cluster.wait_for_leader(std::time::Duration::from_secs(20));
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
