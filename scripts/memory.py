#!/usr/bin/env python3
"""What a znode costs in memory: zoocore against Apache ZooKeeper, one run.

For each scenario, starts both servers fresh (ZooKeeper 3.8 through
../shared/tools/zkref/start-standalone.sh on its own port and ZKREF_ROOT;
zoocore's release build on its own port and temporary dataDir, default
settings), fills both with the same tree through zoocore-loadgen (--keep),
waits --settle seconds and measures:

  zoocore     RSS (VmRSS of /proc/PID/status), and its growth over the
              freshly started server
  ZooKeeper   heap in use after a full GC (`jcmd PID GC.run`, then
              `jcmd PID GC.heap_info`), and its RSS
  both        the newest snapshot's size, the restart time (stop, start on
              the same data, until the server answers and holds every
              znode again: `mntr`'s zk_znode_count) and the RSS after it
  zoocore     with --rewrite-seconds S (keys scenarios): the peak RSS,
              sampled every 50 ms, while setData rewrites keys for S
              seconds (the server snapshots every snapCount writes meanwhile),
              against the steady RSS before it; --curve FILE writes every
              sample (seconds since the rewrite began, RSS) as CSV, for the
              rewrite and the settle after it, and copies the server's log
              (snapshot lines at info) beside it as FILE.log

Scenarios (--scenarios, comma-separated):
  keys:N     N znodes of --value-size bytes in the loadgen layout
             (ROOT/keys/dD/kK, 100 keys a directory); e.g. keys:1000000
  flat:N     N empty children of one parent
  big:N      N znodes of --big-bytes bytes (just under ZooKeeper's 1 MiB
             jute.maxbuffer) each

Prints one table (also written as JSON with --json). Both servers are
stopped by PID whatever happens. Needs the release binaries:
  cargo build --release --bins -p zoocore -p zoocore-loadgen

Usage:
  scripts/memory.py [--scenarios keys:100000,keys:1000000,flat:100000,big:30]
"""

import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The server handling of compare.py (start, stop by PID, 4lw), shared rather than copied.
_spec = importlib.util.spec_from_file_location("compare", os.path.join(ROOT, "scripts", "compare.py"))
compare = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compare)

MIB = 1024 * 1024


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def zk_heap_used_after_gc(pid):
    """Heap in use after a full GC, from jcmd's GC.heap_info (G1: 'used NK')."""
    subprocess.run(["jcmd", str(pid), "GC.run"], capture_output=True, text=True, timeout=120, check=True)
    info = subprocess.run(["jcmd", str(pid), "GC.heap_info"], capture_output=True, text=True, timeout=60, check=True)
    match = re.search(r"used (\d+)K", info.stdout)
    if not match:
        raise RuntimeError(f"no 'used' in GC.heap_info: {info.stdout!r}")
    return int(match.group(1)) * 1024


def znode_count(port):
    for line in compare.four_letter_word(port, "mntr").splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[0] == "zk_znode_count":
            return int(fields[1])
    return None


def newest_snapshot(directory):
    """(size, name) of the newest snapshot file under directory."""
    newest = None
    for parent, _, names in os.walk(directory):
        for name in names:
            # A snapshot still being written ends in .tmp.
            if not name.startswith("snapshot") or name.endswith(".tmp"):
                continue
            path = os.path.join(parent, name)
            stat = os.stat(path)
            if newest is None or stat.st_mtime > newest[0]:
                newest = (stat.st_mtime, stat.st_size, name)
    return (newest[1], newest[2]) if newest else (0, None)


def fill(options, port, scenario, count):
    keys_per_directory = 100
    value_size = options.value_size
    if scenario == "flat":
        keys_per_directory, value_size = count, 0
    elif scenario == "big":
        value_size = options.big_bytes
    command = [
        options.loadgen_bin, "run", "--hosts", f"127.0.0.1:{port}", "--keys", str(count),
        "--value-size", str(value_size), "--keys-per-directory", str(keys_per_directory),
        "--keep", "--mix", "get=1", "--warmup", "0s", "--ops", "1", "--connections", "4",
    ]  # fmt: skip
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"loadgen failed: {result.stdout[-2000:]}{result.stderr[-2000:]}")
    return time.monotonic() - started


def wait_for_count(port, expected, pid_alive, limit_s=600):
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if not pid_alive():
            raise RuntimeError("server exited during restart")
        count = znode_count(port)
        if count is not None and count >= expected:
            return
        time.sleep(0.05)
    raise RuntimeError(f"server on {port} did not get back to {expected} znodes")


def rewrite_peak(options, port, pid, count):
    """(peak RSS, setData count) while setData rewrites the keys."""
    command = [
        options.loadgen_bin, "run", "--hosts", f"127.0.0.1:{port}", "--keys", str(count),
        "--value-size", str(options.value_size), "--keep", "--mix", "set=1", "--warmup", "0s",
        "--duration", f"{options.rewrite_seconds}s", "--connections", "8", "--outstanding", "16",
        "--json", os.path.join(options.work, "rewrite.json"),
    ]  # fmt: skip
    options.curve_samples = []
    options.curve_began = began = time.monotonic()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    while child.poll() is None:
        rss = rss_bytes(pid)
        options.curve_samples.append((time.monotonic() - began, rss))
        peak = max(peak, rss)
        time.sleep(0.05)
    peak = max(peak, rss_bytes(pid))
    if child.returncode != 0:
        raise RuntimeError("the rewrite loadgen failed")
    with open(os.path.join(options.work, "rewrite.json")) as handle:
        summary = json.load(handle)
    operations = summary.get("operations") or summary.get("ops") or summary.get("total_operations")
    return peak, operations


def measure_zoocore(options, servers, scenario, count):
    servers.start_zoocore()
    pid = servers.zoocore.pid
    base = rss_bytes(pid)
    fill_s = fill(options, options.zoocore_port, scenario, count)
    time.sleep(options.settle)
    znodes = znode_count(options.zoocore_port)
    rss = rss_bytes(pid)
    rewrite = None
    if scenario == "keys" and options.rewrite_seconds > 0:
        peak, operations = rewrite_peak(options, options.zoocore_port, pid, count)
        settle_until = time.monotonic() + options.settle
        while time.monotonic() < settle_until:
            options.curve_samples.append((time.monotonic() - options.curve_began, rss_bytes(pid)))
            time.sleep(0.05)
        if options.curve:
            with open(options.curve, "w") as handle:
                handle.write("seconds,rss_bytes\n")
                handle.writelines(f"{at:.3f},{rss}\n" for at, rss in options.curve_samples)
            servers.zoocore_log.flush()
            shutil.copyfile(servers.zoocore_log.name, options.curve + ".log")
        rewrite = {"peak_rss": peak, "operations": operations, "rss_after": rss_bytes(pid)}
    snapshot_size, snapshot_name = newest_snapshot(servers.zoocore_data)
    compare.stop_pid(pid, "zoocore")
    servers.zoocore = None
    started = time.monotonic()
    servers.start_zoocore()
    wait_for_count(options.zoocore_port, znodes, lambda: servers.zoocore.poll() is None)
    restart_s = time.monotonic() - started
    time.sleep(options.settle)
    rss_restarted = rss_bytes(servers.zoocore.pid)
    compare.stop_pid(servers.zoocore.pid, "zoocore")
    servers.zoocore = None
    shutil.rmtree(servers.zoocore_data, ignore_errors=True)
    return {
        "znodes": znodes, "fill_s": fill_s, "rss_start": base, "rss": rss, "rss_restarted": rss_restarted,
        "snapshot_bytes": snapshot_size, "snapshot": snapshot_name, "restart_s": restart_s, "rewrite": rewrite,
    }  # fmt: skip


def measure_zookeeper(options, servers, scenario, count):
    os.environ.pop("ZKREF_KEEP_DATA", None)
    servers.start_zookeeper()
    pid = servers.zk_pid
    base_heap = zk_heap_used_after_gc(pid)
    base_rss = rss_bytes(pid)
    fill_s = fill(options, options.zk_port, scenario, count)
    time.sleep(options.settle)
    znodes = znode_count(options.zk_port)
    heap = zk_heap_used_after_gc(pid)
    rss = rss_bytes(pid)
    snapshot_size, snapshot_name = newest_snapshot(servers.zk_root)
    servers.stop()
    os.environ["ZKREF_KEEP_DATA"] = "1"
    started = time.monotonic()
    try:
        servers.start_zookeeper()
        wait_for_count(options.zk_port, znodes, lambda: compare.pid_alive(servers.zk_pid))
        restart_s = time.monotonic() - started
        time.sleep(options.settle)
        rss_restarted = rss_bytes(servers.zk_pid)
        heap_restarted = zk_heap_used_after_gc(servers.zk_pid)
    finally:
        os.environ.pop("ZKREF_KEEP_DATA", None)
        servers.stop()
    return {
        "znodes": znodes, "fill_s": fill_s, "heap_start": base_heap, "heap": heap, "rss_start": base_rss,
        "rss": rss, "rss_restarted": rss_restarted, "heap_restarted": heap_restarted,
        "snapshot_bytes": snapshot_size, "snapshot": snapshot_name, "restart_s": restart_s,
    }  # fmt: skip


def snapshot_per_znode(result):
    """Bytes per transaction of the newest snapshot: its name ends in the
    zxid (hex) it was taken at, about one create per transaction here."""
    if not result or not result["snapshot"]:
        return "-"
    zxid = int(result["snapshot"].rsplit(".", 1)[-1], 16)
    return f"{result['snapshot_bytes'] / max(zxid, 1):,.0f}"


def mib(value):
    return f"{value / MIB:,.1f}"


def per(value, count):
    return f"{value / count:,.0f}"


def table(results):
    header = (
        "| scenario | zoocore RSS MiB | zoocore growth B/znode | ZK heap after GC MiB | ZK heap growth B/znode "
        "| ZK RSS MiB | RSS after restart MiB (zoocore / ZK) | restart s (zoocore / ZK) | snapshot MB (zoocore / ZK) "
        "| snapshot B/zxid (zoocore / ZK) |"
    )
    lines = [header, "|" + "---|" * 10]
    for name, count, zoocore, zk in results:
        row = [name]
        if zoocore:
            row += [mib(zoocore["rss"]), per(zoocore["rss"] - zoocore["rss_start"], count)]
        else:
            row += ["-", "-"]
        if zk:
            row += [mib(zk["heap"]), per(zk["heap"] - zk["heap_start"], count), mib(zk["rss"])]
        else:
            row += ["-", "-", "-"]
        row.append(f"{mib(zoocore['rss_restarted']) if zoocore else '-'} / {mib(zk['rss_restarted']) if zk else '-'}")
        row.append(f"{zoocore['restart_s'] if zoocore else 0:.2f} / {zk['restart_s'] if zk else 0:.2f}")
        row.append(
            f"{(zoocore['snapshot_bytes'] if zoocore else 0) / 1e6:,.1f} / {(zk['snapshot_bytes'] if zk else 0) / 1e6:,.1f}"
        )
        row.append(f"{snapshot_per_znode(zoocore)} / {snapshot_per_znode(zk)}")
        lines.append("| " + " | ".join(row) + " |")
    for name, count, zoocore, zk in results:
        if zoocore and zoocore.get("rewrite"):
            rewrite = zoocore["rewrite"]
            lines.append(
                f"{name}: zoocore under setData rewrites ({rewrite['operations']} writes): peak RSS "
                f"{mib(rewrite['peak_rss'])} MiB = {rewrite['peak_rss'] / zoocore['rss']:.2f}x the steady "
                f"{mib(zoocore['rss'])} MiB; {mib(rewrite['rss_after'])} MiB after"
            )
    return "\n".join(lines)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", default="keys:100000,keys:1000000,flat:100000,big:30")
    parser.add_argument("--value-size", type=int, default=100)
    parser.add_argument("--big-bytes", type=int, default=1_000_000, help="bytes of each big znode")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds between the load and the measurement")
    parser.add_argument("--rewrite-seconds", type=float, default=0, help="setData load after the fill (zoocore)")
    parser.add_argument("--skip-zookeeper", action="store_true")
    parser.add_argument("--skip-zoocore", action="store_true")
    parser.add_argument("--json", help="write the results here too")
    parser.add_argument("--curve", help="CSV of the RSS samples of the (last) rewrite, and the server's log beside it")
    parser.add_argument(
        "--zoocore-config", action="append", default=[], metavar="KEY=VALUE",
        help="an extra line of zoocore's configuration (repeatable), e.g. snapCount=10000000",
    )  # fmt: skip
    parser.add_argument("--zk-heap", default="1000m", help="ZooKeeper's -Xms/-Xmx (ZKREF_HEAP; zkref's default; give 3M znodes 2g)")
    parser.add_argument("--zkref", default=compare.ZKREF_DEFAULT)
    parser.add_argument("--zoocore-bin", default=os.path.join(ROOT, "target", "release", "zoocore"))
    parser.add_argument("--loadgen-bin", default=os.path.join(ROOT, "target", "release", "zoocore-loadgen"))
    options = parser.parse_args()
    # What compare.Servers reads from its options.
    options.zk_port = compare.free_port()
    options.zoocore_port = compare.free_port()
    options.zk_admin_port = compare.free_port()
    options.zk_jvm_extra = None
    options.zk_cpus = None
    options.zoocore_cpus = None
    options.zoocore_shards = None
    if options.curve:
        # The snapshot lines, to place them on the curve.
        os.environ.setdefault("ZOOCORE_LOG", "warn,zoocore::snapshot=info")
    return options


def main():
    options = parse_args()
    for binary in (options.zoocore_bin, options.loadgen_bin):
        if not os.path.exists(binary):
            sys.exit(f"{binary} is missing: cargo build --release --bins -p zoocore -p zoocore-loadgen")
    if not options.skip_zookeeper and shutil.which("jcmd") is None:
        sys.exit("jcmd is missing (it comes with the JDK ZooKeeper runs on)")
    work = tempfile.mkdtemp(prefix="zoocore-memory-")
    options.work = work
    servers = compare.Servers(options, work)
    results = []
    try:
        for scenario_text in options.scenarios.split(","):
            scenario, _, count_text = scenario_text.partition(":")
            if scenario not in ("keys", "flat", "big"):
                sys.exit(f"unknown scenario {scenario_text!r}: keys:N, flat:N or big:N")
            count = int(count_text)
            compare.log(f"scenario {scenario_text}")
            zoocore = None if options.skip_zoocore else measure_zoocore(options, servers, scenario, count)
            compare.log(f"zoocore: {zoocore}")
            zk = None if options.skip_zookeeper else measure_zookeeper(options, servers, scenario, count)
            compare.log(f"ZooKeeper: {zk}")
            results.append((scenario_text, count, zoocore, zk))
            print(table(results[-1:]).splitlines()[-1], flush=True)
    finally:
        servers.stop()
    print(table(results))
    if options.json:
        with open(options.json, "w") as handle:
            json.dump([{"scenario": n, "count": c, "zoocore": z, "zookeeper": k} for n, c, z, k in results], handle, indent=2)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
