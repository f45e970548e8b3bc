#!/usr/bin/env bash
# Runs every test of zoocore: formatting and lints, the unit tests, the
# integration tests against the real binary (zookeeper-client crate), and
# the interop suites with kazoo and Debian's Java zkCli. Installs what the
# interop suites need first (.ci/setup.sh). Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "== setup"
.ci/setup.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

echo "== cargo test"
# The interop tests find the venv and zkCli that setup.sh installed.
export ZOOCORE_VENV="$PWD/.venv"
cargo test --workspace -- --test-threads=2

echo "== all tests passed"
