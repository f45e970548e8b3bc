#!/bin/bash
# What quorum TLS (sslQuorum) costs writes: the same setData load through
# one follower of a 3-node zoocore ensemble on loopback, once with plain
# peer links and once with sslQuorum (mutual TLS), each run on a fresh
# ensemble in a temporary directory that is removed at the end.
#
#   scripts/quorum_tls_overhead.sh [BUILD_DIR]   (default target/debug)
#
# Needs openssl, the zoocore and zoocore-loadgen binaries in BUILD_DIR.
set -euo pipefail
build=${1:-$(dirname "$0")/../target/debug}
bin=$build/zoocore; loadgen=$build/zoocore-loadgen
work=$(mktemp -d /tmp/zoocore-quorum-tls.XXXXXX)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$work"; }
trap cleanup EXIT

ssl() { (cd "$work" && openssl "$@" >/dev/null 2>&1); }
ssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=bench ca"
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n' > "$work/peer.ext"
for i in 1 2 3; do
  ssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "peer$i.key" -out "peer$i.csr" -subj "/CN=peer$i"
  ssl x509 -req -in "peer$i.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -out "peer$i.crt" -days 2 -extfile peer.ext
  cat "$work/peer$i.key" "$work/peer$i.crt" > "$work/peer$i.pem"
done

srvr() { exec 3<>"/dev/tcp/127.0.0.1/$1" && echo srvr >&3 && cat <&3; exec 3<&-; }

run() {
  local mode=$1 base=$((20000 + RANDOM % 12000)) lines="" i
  for i in 1 2 3; do lines+="server.$i=127.0.0.1:$((base+i*10+1)):$((base+i*10+2)):participant;127.0.0.1:$((base+i*10))"$'\n'; done
  pids=()
  for i in 1 2 3; do
    local d=$work/$mode/m$i; mkdir -p "$d/data"; echo $i > "$d/data/myid"
    { printf 'tickTime=2000\ndataDir=%s\nadmin.serverPort=0\n4lw.commands.whitelist=*\n%s' "$d/data" "$lines"
      if [ "$mode" = sslQuorum ]; then
        printf 'sslQuorum=true\nssl.quorum.keyStore.location=%s\nssl.quorum.trustStore.location=%s\n' "$work/peer$i.pem" "$work/ca.pem"
      fi; } > "$d/zoo.cfg"
    ZOOCORE_LOG=${ZOOCORE_LOG:-warn} "$bin" --config "$d/zoo.cfg" > "$d/out.log" 2> "$d/err.log" & pids+=($!)
  done
  # Settled: one leader, two followers; the load goes through a follower.
  local follower="" t modes
  for t in $(seq 150); do
    modes=""
    for i in 1 2 3; do modes+="$(srvr $((base+i*10)) 2>/dev/null | grep -o 'Mode: [a-z]*' || true);"; done
    if [ "$(echo "$modes" | grep -o leader | wc -l)" = 1 ] && [ "$(echo "$modes" | grep -o follower | wc -l)" = 2 ]; then
      for i in 1 2 3; do
        if srvr $((base+i*10)) 2>/dev/null | grep -q "Mode: follower"; then follower=$((base+i*10)); break; fi
      done
      break
    fi
    sleep 0.2
  done
  [ -n "$follower" ] || { echo "$mode: no follower"; exit 1; }
  for shape in "4 8" "1 1"; do
    set -- $shape
    "$loadgen" run --hosts "127.0.0.1:$follower" --workload mix --mix set=100 --keys 1000 --value-size 100 \
      -c "$1" -d "$2" --warmup 2s --duration 10s --label "$mode $1x$2" -q 2>&1 | grep -vE "^(setup|teardown|measured|wrote)" | sed "s/^/$mode ${1}x$2  /"
  done
  kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true; pids=()
}
run plain
run sslQuorum
