//! Real third-party clients against the real binary: the kazoo suite (kazoo
//! from PyPI: plain operations and its recipes) and the zkCli suite (Debian's
//! Java zkCli), both of which pass against Apache ZooKeeper 3.8 (see
//! tests/interop/README.md). `.ci/setup.sh` installs the clients; without
//! them these tests fail and say so, they do not skip.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Server;

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The server as the suites expect it: TTL nodes on, and the super digest of
/// the reference harness (user super, password test).
fn start_server() -> Server {
    Server::start_with(&[
        "extendedTypesEnabled=true",
        "DigestAuthenticationProvider.superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU=",
        "maxClientCnxns=0",
    ])
}

fn run_suite(name: &str, mut command: Command, server: &Server) {
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
            server.stderr_tail()
        );
    }
    assert!(passed > 50, "{name}: only {passed} checks ran\n{stdout}");
    eprintln!("{name}: {passed} checks passed");
}

#[test]
fn kazoo_suite_passes() {
    let python = std::env::var_os("ZOOCORE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repository().join(".venv"))
        .join("bin/python");
    assert!(Path::new(&python).exists(), "{} is missing: run .ci/setup.sh first", python.display());
    let server = start_server();
    let mut command = Command::new(python);
    command.arg(repository().join("tests/interop/kazoo_suite.py")).args(["--hosts", server.addr(), "--ttl", "on"]);
    run_suite("kazoo suite", command, &server);
}

#[test]
fn zkcli_suite_passes() {
    assert!(
        Path::new("/usr/share/java/zookeeper.jar").exists(),
        "Debian's zookeeper package is missing: run .ci/setup.sh first"
    );
    let server = start_server();
    let mut command = Command::new("bash");
    command.arg(repository().join("tests/interop/zkcli_suite.sh")).args([server.addr(), "--ttl", "on"]);
    run_suite("zkCli suite", command, &server);
}
