#!/usr/bin/env bash
# Import and export speed for N znodes (default 1000000), side by side with
# Apache ZooKeeper 3.8 loading the same data:
#   1. fill the reference ZooKeeper (../shared/tools/zkref) with N znodes
#      through the loadgen's pipelined setup (16-byte values), stop it;
#   2. ZooKeeper restarts on its data directory: its own "Snapshot loaded in"
#      time (newest snapshot + txn log replay) is the baseline;
#   3. `zoocore import` of that directory (release build), wall time;
#   4. `zoocore export` of the result, wall time, and ZooKeeper's load time of
#      the export.
# Needs Java and Debian's zookeeper package (.ci/setup.sh). Takes a few
# minutes for 1M znodes on two cores; not part of scripts/test.sh.
# Usage: scripts/bench-migrate.sh [ZNODES]   (BENCH_KEEP=1 keeps the data)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
znodes="${1:-1000000}"
zkref="${ZKREF:-}"
if [ -z "$zkref" ]; then
  for candidate in "$repo/../shared/tools/zkref" "$repo/../../shared/tools/zkref"; do
    [ -d "$candidate" ] && zkref="$candidate" && break
  done
fi
[ -n "$zkref" ] || { echo "bench-migrate: set ZKREF=/path/to/zkref" >&2; exit 1; }

cargo build --release -q -p zoocore -p zoocore-loadgen
zoocore="$repo/target/release/zoocore"
loadgen="$repo/target/release/zoocore-loadgen"
work="$(mktemp -d /tmp/bench-migrate.XXXXXX)"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port="$(free_port)"; admin="$(free_port)"
stop_all() { ZKREF_ROOT="$work/zk" "$zkref/stop.sh" standalone >/dev/null 2>&1 || true
             ZKREF_ROOT="$work/zk2" "$zkref/stop.sh" standalone >/dev/null 2>&1 || true; }
trap stop_all EXIT
now_ms() { date +%s%3N; }
zk_load_ms() { grep -o 'Snapshot loaded in [0-9]* ms' "$1/standalone/zookeeper.log" | tail -1 | grep -o '[0-9]*' ; }

export ZKREF_HEAP="${ZKREF_HEAP:-2g}" ZKREF_ADMIN_PORT="$admin" ZKREF_FORCE_SYNC=no
ZKREF_ROOT="$work/zk" "$zkref/start-standalone.sh" "$port" >/dev/null
"$loadgen" run --hosts "127.0.0.1:$port" --keys "$znodes" --value-size 16 --mix get=100 \
  --connections 1 --duration 1s --keep >/dev/null 2>"$work/loadgen.log"
ZKREF_ROOT="$work/zk" "$zkref/stop.sh" standalone >/dev/null
ZKREF_ROOT="$work/zk" ZKREF_KEEP_DATA=1 "$zkref/start-standalone.sh" "$port" >/dev/null
zk_load="$(zk_load_ms "$work/zk")"
ZKREF_ROOT="$work/zk" "$zkref/stop.sh" standalone >/dev/null
snapshot_bytes="$(du -cb "$work"/zk/standalone/data/version-2/snapshot.* | tail -1 | cut -f1)"

cat > "$work/zoo.cfg" <<CFG
dataDir=$work/zoocore
clientPort=0
CFG
start="$(now_ms)"
"$zoocore" import --from "$work/zk/standalone/data" --log-dir "$work/zk/standalone/datalog" --config "$work/zoo.cfg" > "$work/import.txt"
import_ms=$(( $(now_ms) - start ))
start="$(now_ms)"
"$zoocore" export --config "$work/zoo.cfg" --to "$work/zk2/standalone/data" --log-dir "$work/zk2/standalone/datalog" > "$work/export.txt"
export_ms=$(( $(now_ms) - start ))
ZKREF_ROOT="$work/zk2" ZKREF_KEEP_DATA=1 "$zkref/start-standalone.sh" "$(free_port)" >/dev/null
zk_export_load="$(zk_load_ms "$work/zk2")"

echo "znodes: $znodes (+ the loadgen's directories), ZooKeeper snapshots: $snapshot_bytes bytes on disk"
tail -1 "$work/import.txt"
echo "zoocore import (read, replay, write, fsync), wall:    ${import_ms} ms"
echo "ZooKeeper 3.8 loading the same directory:             ${zk_load} ms (its 'Snapshot loaded in')"
echo "zoocore export, wall:                                 ${export_ms} ms"
echo "ZooKeeper 3.8 loading the export:                     ${zk_export_load} ms"
if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
