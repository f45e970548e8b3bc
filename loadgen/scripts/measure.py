#!/usr/bin/env python3
"""Runs zoocore-loadgen once and accounts for every core of the machine.

The loadgen reports its own CPU use; this wrapper adds the server's (from
/proc/PID/stat, when --server-pid is given) and everything else's (the rest
of /proc/stat's busy time), over the same wall-clock span, so a measurement
taken while something else was running on the machine can be recognised and
thrown away. It prints one line per run and appends it, as JSON, to
--log if given.

Usage:
  loadgen/scripts/measure.py --server-pid PID [--log runs.jsonl] -- \\
      target/release/zoocore-loadgen run --hosts 127.0.0.1:2681 ... --json out.json

The loadgen command must write --json; the wrapper reads it afterwards.
"""

import argparse
import json
import os
import subprocess
import sys
import time

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def machine_busy_seconds():
    """Busy CPU seconds of the whole machine (all but idle and iowait)."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / TICKS_PER_SECOND


def process_seconds(pid):
    """User plus system CPU seconds of one process, or 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server-pid", type=int)
    parser.add_argument("--log")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    options = parser.parse_args()
    command = options.command[1:] if options.command[:1] == ["--"] else options.command
    json_path = command[command.index("--json") + 1]

    machine_before = machine_busy_seconds()
    server_before = process_seconds(options.server_pid) if options.server_pid else 0.0
    started = time.monotonic()
    child = subprocess.Popen(command)
    child.wait()
    wall = time.monotonic() - started
    if child.returncode != 0:
        sys.exit(child.returncode)
    # The child's own CPU, including setup and teardown, from the kernel.
    machine = machine_busy_seconds() - machine_before
    server = (process_seconds(options.server_pid) - server_before) if options.server_pid else 0.0
    children = os.times()
    loadgen_total = children.children_user + children.children_system
    with open(json_path) as summary_file:
        summary = json.load(summary_file)
    row = {
        "label": summary["label"],
        "ops_per_sec": round(summary["ops_per_sec"]),
        "p50_us": summary["latency_us"]["p50"],
        "p99_us": summary["latency_us"]["p99"],
        "p999_us": summary["latency_us"]["p999"],
        "max_us": summary["latency_us"]["max"],
        "errors": summary["errors"],
        "loadgen_cores_measured": round(summary["loadgen_cpu"]["cores"], 3),
        "loadgen_cpu_ns_per_op": round(summary["loadgen_cpu"]["cpu_ns_per_op"]),
        "wall_s": round(wall, 2),
        "server_cores": round(server / wall, 3),
        "loadgen_cores_whole_run": round(loadgen_total / wall, 3),
        "other_cores": round(max(machine - server - loadgen_total, 0.0) / wall, 3),
    }
    print(json.dumps(row))
    if options.log:
        with open(options.log, "a") as log:
            log.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
