#!/usr/bin/env bash
# Runs every test of zoocore: formatting and lints, the unit tests, the
# integration tests against the real binary (zookeeper-client crate), and
# the interop suites with kazoo and Debian's Java zkCli, the fault tests on
# real ensembles, and the simulator's seeds. Installs what the
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

# The simulator's seeds in a release build (a debug build runs them about
# ten times slower): deterministic seeds 0..N-1, so a failure here replays
# with `zoocore-sim --seed S`. The long mode is `zoocore-sim --seeds 10000`.
sim_seeds="${ZOOCORE_SUITE_SIM_SEEDS:-300}"
echo "== simulator: $sim_seeds seeds"
cargo build --release --bin zoocore-sim
./target/release/zoocore-sim --seeds "$sim_seeds"

echo "== all tests passed"
