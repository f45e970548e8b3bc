#!/usr/bin/env python3
"""zoocore against Apache ZooKeeper, side by side, in one command.

Starts Apache ZooKeeper 3.8 (through ../shared/tools/zkref/start-standalone.sh,
on its own port and ZKREF_ROOT, forceSync=yes) and zoocore (release build, its
own temporary dataDir and port, default fsync settings), runs the same
zoocore-loadgen workloads against both, writes every JSON summary, .hgrm and
an HTML report, prints a table with both servers and the ratios, and stops
both servers by PID whatever happens (normal end, error, Ctrl-C, SIGTERM).

Workloads, for each op (getData and setData of --value-size bytes):
  closed    --connections x --outstanding in flight (default 4 x 8)
  10k       open loop at 10,000 requests/s
  50%, 90%  open loop at 50% and 90% of ZooKeeper's measured peak for that
            op, the peak being ZooKeeper's closed-loop throughput measured in
            this same run
Each workload runs against ZooKeeper, then zoocore, back to back.

The machine must be otherwise idle for the numbers to mean anything. The
script samples /proc/stat before starting and warns if other processes use
CPU; every run then reports "other cores" (CPU used by anything but the
server and the loadgen over the run, from /proc/stat as
loadgen/scripts/measure.py counts it, naming the processes that used it), and
runs above --busy-threshold are flagged in the table.

Usage:
  scripts/compare.py [--duration 10s] [--warmup 2s] [--out DIR] ...
  scripts/compare.py --help
"""

import argparse
import datetime
import importlib.util
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZKREF_DEFAULT = os.path.normpath(os.path.join(ROOT, "..", "shared", "tools", "zkref"))
if not os.path.isdir(ZKREF_DEFAULT):
    ZKREF_DEFAULT = "/work/shared/tools/zkref"

# Per-process CPU accounting of loadgen/scripts/measure.py, shared rather than copied.
_spec = importlib.util.spec_from_file_location("measure", os.path.join(ROOT, "loadgen", "scripts", "measure.py"))
measure = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(measure)


def machine_seconds():
    """(busy, interrupt) CPU seconds of the whole machine from /proc/stat.

    busy is everything but idle and iowait, as loadgen/scripts/measure.py
    counts it (without IRQ time accounting the kernel charges interrupt
    ticks to the interrupted task too, so the server's and the loadgen's own
    network softirq work comes off when their CPU time is subtracted);
    interrupt (irq + softirq) is reported for information.
    """
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    ticks = measure.TICKS_PER_SECOND
    busy = sum(fields[:8]) - fields[3] - fields[4]
    return busy / ticks, (fields[5] + fields[6]) / ticks


def process_times():
    """{pid: (name, CPU ticks of its own threads)} of every process."""
    times = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                text = stat.read()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        times[int(entry)] = (name, int(fields[11]) + int(fields[12]))
    return times


def other_processes(before, after, exclude, wall):
    """CPU cores used by every process but `exclude` between two
    process_times() (processes started in between count from zero), and the
    biggest users by name."""
    used = []
    for pid, (name, ticks) in after.items():
        if pid in exclude:
            continue
        cores = (ticks - before.get(pid, (name, 0))[1]) / measure.TICKS_PER_SECOND / wall
        if cores > 0:
            used.append((cores, f"{name}[{pid}]"))
    used.sort(reverse=True)
    names = ", ".join(f"{name} {cores:.2f}" for cores, name in used[:4] if cores >= 0.02)
    return sum(cores for cores, _ in used), names


OPS = {"get": "getData", "set": "setData"}


def log(message):
    print(f"[compare] {message}", file=sys.stderr, flush=True)


def warn(message):
    print(f"[compare] WARNING: {message}", file=sys.stderr, flush=True)


def seconds(text):
    """'5s', '500ms', '2m' or a plain number of seconds."""
    text = str(text).strip()
    for suffix, factor in (("ms", 0.001), ("s", 1.0), ("m", 60.0)):
        if text.endswith(suffix) and text[: -len(suffix)].replace(".", "", 1).isdigit():
            return float(text[: -len(suffix)]) * factor
    return float(text)


def parse_rate(text):
    """'10000', '10k' or '1.5m' requests per second."""
    text = text.strip().lower()
    factor = {"k": 1000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if factor > 1 else text) * factor)


def loadavg():
    with open("/proc/loadavg") as handle:
        return " ".join(handle.read().split()[:3])


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def four_letter_word(port, word):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as connection:
            connection.sendall(word.encode())
            chunks = []
            while True:
                chunk = connection.recv(4096)
                if not chunk:
                    break
                chunks.append(chunk)
            return b"".join(chunks).decode(errors="replace")
    except OSError:
        return ""


def busy_cores_now(sample_s):
    """CPU cores busy on the whole machine over sample_s seconds."""
    before = machine_seconds()[0]
    time.sleep(sample_s)
    return (machine_seconds()[0] - before) / sample_s


def top_processes(count=5):
    try:
        out = subprocess.run(
            ["ps", "-eo", "pid,pcpu,etime,comm", "--sort=-pcpu"], capture_output=True, text=True, timeout=5
        ).stdout
        return "\n".join(out.splitlines()[: count + 1])
    except (OSError, subprocess.SubprocessError):
        return ""


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def stop_pid(pid, name, grace_s=10.0):
    """SIGTERM, wait up to grace_s, then SIGKILL. Only the one PID."""
    if pid is None or not pid_alive(pid):
        return
    log(f"stopping {name} (pid {pid})")
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done == pid:
                return
        except ChildProcessError:
            if not pid_alive(pid):
                return
        time.sleep(0.1)
    warn(f"{name} (pid {pid}) did not exit after SIGTERM, sending SIGKILL")
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (OSError, ChildProcessError):
        pass


class Servers:
    """Both servers; `stop` is safe to call any number of times."""

    def __init__(self, options, work):
        self.options = options
        self.work = work
        self.zk_pid = None
        self.zoocore = None
        self.zk_root = os.path.join(work, "zkref")
        self.zoocore_data = os.path.join(work, "zoocore-data")

    def zk_env(self):
        env = dict(os.environ)
        env["ZKREF_ROOT"] = self.zk_root
        env["ZKREF_ADMIN_PORT"] = str(self.options.zk_admin_port)
        env["ZKREF_FORCE_SYNC"] = "yes"
        env["ZKREF_HEAP"] = self.options.zk_heap
        if self.options.zk_jvm_extra:
            env["ZKREF_JVM_EXTRA"] = self.options.zk_jvm_extra
        return env

    def start_zookeeper(self):
        script = os.path.join(self.options.zkref, "start-standalone.sh")
        log(f"starting ZooKeeper: ZKREF_ROOT={self.zk_root} {script} {self.options.zk_port}")
        result = subprocess.run(
            [script, str(self.options.zk_port)], env=self.zk_env(), capture_output=True, text=True, timeout=90
        )
        pid_file = os.path.join(self.zk_root, "standalone", "zk.pid")
        if os.path.exists(pid_file):
            with open(pid_file) as handle:
                self.zk_pid = int(handle.read().strip())
        sys.stderr.write(result.stdout + result.stderr)
        if result.returncode != 0:
            raise RuntimeError("ZooKeeper did not start")
        if self.options.zk_cpus:
            subprocess.run(["taskset", "-a", "-p", "-c", self.options.zk_cpus, str(self.zk_pid)], check=True)
        version = four_letter_word(self.options.zk_port, "srvr").splitlines()
        log(f"ZooKeeper pid {self.zk_pid}: {version[0] if version else '?'}")

    def start_zoocore(self):
        os.makedirs(self.zoocore_data, exist_ok=True)
        config = os.path.join(self.work, "zoocore.cfg")
        lines = [
            f"dataDir={self.zoocore_data}",
            f"clientPort={self.options.zoocore_port}",
            "clientPortAddress=127.0.0.1",
            "maxClientCnxns=0",
            "4lw.commands.whitelist=*",
            "zoocore.logLevel=warn",
            # Its AdminServer would take 8080, which another server may hold.
            "admin.enableServer=false",
        ]
        if self.options.zoocore_shards:
            lines.append(f"zoocore.shards={self.options.zoocore_shards}")
        with open(config, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        command = [self.options.zoocore_bin, "--config", config]
        if self.options.zoocore_cpus:
            command = ["taskset", "-c", self.options.zoocore_cpus] + command
        log(f"starting zoocore: {' '.join(command)}")
        self.zoocore_log = open(os.path.join(self.work, "zoocore.log"), "w")
        self.zoocore = subprocess.Popen(command, stdout=self.zoocore_log, stderr=subprocess.STDOUT, cwd=self.work)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.zoocore.poll() is not None:
                raise RuntimeError(f"zoocore exited with {self.zoocore.returncode}; see {self.zoocore_log.name}")
            if four_letter_word(self.options.zoocore_port, "ruok") == "imok":
                log(f"zoocore pid {self.zoocore.pid} ready on 127.0.0.1:{self.options.zoocore_port}")
                return
            time.sleep(0.2)
        raise RuntimeError("timed out waiting for zoocore")

    def stop(self):
        if self.zoocore is not None:
            stop_pid(self.zoocore.pid, "zoocore")
            self.zoocore = None
        if self.zk_pid is not None:
            # stop.sh kills only the PID in this ZKREF_ROOT's zk.pid, after
            # checking it is that QuorumPeerMain; then make sure ourselves.
            try:
                subprocess.run(
                    [os.path.join(self.options.zkref, "stop.sh"), "standalone"],
                    env=self.zk_env(),
                    capture_output=True,
                    timeout=30,
                )
            except (OSError, subprocess.SubprocessError) as error:
                warn(f"stop.sh failed: {error}")
            stop_pid(self.zk_pid, "ZooKeeper")
            self.zk_pid = None


def wait_until_idle(server_pids, threshold, limit_s):
    """Waits (at most limit_s) for a 2 s sample in which processes other than
    the servers use at most `threshold` cores. Returns the last sample."""
    deadline = time.monotonic() + limit_s
    waited = False
    while True:
        busy_before, interrupt_before = machine_seconds()
        processes_before = process_times()
        servers_before = sum(measure.process_seconds(pid) for pid in server_pids)
        time.sleep(2.0)
        servers = sum(measure.process_seconds(pid) for pid in server_pids) - servers_before
        busy_after, interrupt_after = machine_seconds()
        processes, _ = other_processes(processes_before, process_times(), set(server_pids) | {os.getpid()}, 2.0)
        residual = (busy_after - busy_before - (interrupt_after - interrupt_before) - servers) / 2.0
        other = max(processes, residual, 0.0)
        if other <= threshold:
            if waited:
                log(f"machine idle again ({other:.2f} other cores)")
            return other
        if time.monotonic() >= deadline:
            warn(f"machine still busy ({other:.2f} other cores) after waiting {limit_s:.0f}s; running anyway")
            return other
        if not waited:
            log(f"waiting (up to {limit_s:.0f}s) for the machine to be idle: {other:.2f} other cores")
            waited = True


def keep_attempt(stem, action):
    """Keeps the best attempt's output files aside ("best") and puts them back
    ("restore"), so a retried run leaves the least disturbed attempt."""
    names = [name for name in os.listdir(os.path.dirname(stem)) if name.startswith(os.path.basename(stem) + ".")]
    for name in names:
        path = os.path.join(os.path.dirname(stem), name)
        if action == "best" and not name.endswith(".best"):
            shutil.copy(path, path + ".best")
        elif action == "restore" and name.endswith(".best"):
            os.replace(path, path[: -len(".best")])


def run_loadgen(options, server_pid, port, label, extra, json_path, hgrm_prefix=None):
    """One bounded loadgen run with CPU accounting; returns the summary."""
    command = [
        options.loadgen_bin,
        "run",
        "--hosts",
        f"127.0.0.1:{port}",
        "--label",
        label,
        "--quiet",
        "--json",
        json_path,
        "--value-size",
        str(options.value_size),
        "--keys",
        str(options.keys),
        "--connections",
        str(options.connections),
        "--warmup",
        options.warmup,
        "--duration",
        options.duration,
        "--max-duration",
        options.duration,
        "--drain-timeout",
        "5s",
    ] + extra
    if hgrm_prefix:
        command += ["--hgrm", hgrm_prefix]
    if options.loadgen_cpus:
        command = ["taskset", "-c", options.loadgen_cpus] + command
    # Setup (1000 creates) and teardown plus warm-up, duration and drain.
    timeout = seconds(options.warmup) + seconds(options.duration) + 120
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy_before, interrupt_before = machine_seconds()
    processes_before = process_times()
    server_before = measure.process_seconds(server_pid)
    started = time.monotonic()
    with open(json_path + ".log", "w") as output:
        child = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        try:
            child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            warn(f"loadgen run {label} exceeded {timeout:.0f}s, killing pid {child.pid}")
            child.kill()
            child.wait()
        except BaseException:
            # Interrupted: end this loadgen (ours, by its PID) before the
            # servers are stopped.
            child.kill()
            child.wait()
            raise
    wall = time.monotonic() - started
    busy_after, interrupt_after = machine_seconds()
    busy, interrupt = busy_after - busy_before, interrupt_after - interrupt_before
    processes, consumers = other_processes(processes_before, process_times(), {server_pid, os.getpid()}, wall)
    server = measure.process_seconds(server_pid) - server_before
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    loadgen = (children_after.ru_utime - children_before.ru_utime) + (
        children_after.ru_stime - children_before.ru_stime
    )
    if child.returncode != 0 or not os.path.exists(json_path):
        with open(json_path + ".log") as output:
            tail = output.read()[-2000:]
        raise RuntimeError(f"loadgen run {label} failed ({child.returncode}):\n{tail}")
    with open(json_path) as handle:
        summary = json.load(handle)
    summary["compare"] = {
        "wall_s": round(wall, 2),
        "server_cores": round(server / wall, 3),
        "loadgen_cores": round(loadgen / wall, 3),
        # Two views of the CPU used by anything but the server and the
        # loadgen: the sum over the other processes (misses processes that
        # started and ended within the run), and the machine's busy time
        # less the server's, the loadgen's and all interrupt time (catches
        # those, but undercounts; interrupt time is left out because softirq
        # work that runs while a CPU waits in io_uring or idles, as
        # loopback traffic does, is charged to no process). The larger wins.
        "other_cores": round(max(processes, (busy - server - loadgen - interrupt) / wall, 0.0), 3),
        "other_processes_cores": round(processes, 3),
        "residual_cores": round((busy - server - loadgen) / wall, 3),
        "interrupt_cores": round(interrupt / wall, 3),
        "other_processes": consumers,
    }
    with open(json_path, "w") as handle:
        json.dump(summary, handle, indent=1)
    return summary


def fmt_rate(value):
    return f"{value / 1000:.1f}k" if value >= 1000 else f"{value:.0f}"


def fmt_us(value):
    return f"{value / 1000:.2f}ms" if value >= 10000 else f"{value:.0f}us"


def ratio(numerator, denominator):
    return numerator / denominator if denominator else float("inf")


def table(rows, busy_threshold):
    """rows: (workload, zk summary, zoocore summary). Markdown-ish table."""
    header = (
        "| workload | ZK ops/s | zoocore ops/s | x thr | ZK p50 | zc p50 | x p50 "
        "| ZK p99 | zc p99 | x p99 | ZK p99.9 | zc p99.9 | x p99.9 | errors ZK/zc | other cores ZK/zc |"
    )
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for workload, zk, zc in rows:
        zl, cl = zk["latency_us"], zc["latency_us"]
        cells = [
            workload,
            fmt_rate(zk["ops_per_sec"]),
            fmt_rate(zc["ops_per_sec"]),
            f"{ratio(zc['ops_per_sec'], zk['ops_per_sec']):.2f}",
        ]
        for key in ("p50", "p99", "p999"):
            cells += [fmt_us(zl[key]), fmt_us(cl[key]), f"{ratio(zl[key], cl[key]):.2f}"]
        cells.append(f"{zk['errors']}/{zc['errors']}")
        other_zk, other_zc = zk["compare"]["other_cores"], zc["compare"]["other_cores"]
        flag = " BUSY" if max(other_zk, other_zc) > busy_threshold else ""
        cells.append(f"{other_zk:.2f}/{other_zc:.2f}{flag}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog=__doc__.split("\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--duration", default="10s", help="measured time of each run (default 10s)")
    parser.add_argument("--warmup", default="2s", help="unrecorded load before each run (default 2s)")
    parser.add_argument(
        "--server-warmup",
        default="10s",
        help="unrecorded get/set load on each server once started, for the JIT (default 10s)",
    )
    parser.add_argument("--out", help="output directory (default compare-results/YYYYmmdd-HHMMSS)")
    parser.add_argument("--ops", default="get,set", help="ops to compare, of get,set (default both)")
    parser.add_argument("--rates", default="10000,50%,90%", help="open-loop rates: numbers, or %% of ZooKeeper's peak")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--outstanding", type=int, default=8, help="closed loop: requests in flight per connection")
    parser.add_argument("--value-size", type=int, default=100)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--zk-port", type=int, default=0, help="default: a free port")
    parser.add_argument("--zk-admin-port", type=int, default=0, help="default: a free port")
    parser.add_argument("--zoocore-port", type=int, default=0, help="default: a free port")
    parser.add_argument("--zk-heap", default="1000m")
    parser.add_argument("--zk-jvm-extra", default="", help="extra JVM flags (ZKREF_JVM_EXTRA), e.g. GC settings")
    parser.add_argument(
        "--zoocore-shards", type=int, default=0, help="zoocore.shards (default: zoocore's, one per CPU)"
    )
    parser.add_argument("--zk-cpus", help="taskset CPU list for the JVM")
    parser.add_argument(
        "--zoocore-cpus",
        help="taskset CPU list for zoocore's unpinned threads (the broadcast core); its shards pin themselves "
        "to CPUs 0..shards-1 whatever this says (see tuning/README.md)",
    )
    parser.add_argument("--loadgen-cpus", help="taskset CPU list for the loadgen")
    parser.add_argument("--zkref", default=ZKREF_DEFAULT, help=f"zkref scripts (default {ZKREF_DEFAULT})")
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    parser.add_argument("--zoocore-bin", default=os.path.join(target, "release", "zoocore"))
    parser.add_argument("--loadgen-bin", default=os.path.join(target, "release", "zoocore-loadgen"))
    parser.add_argument("--no-build", action="store_true", help="do not run cargo build --release first")
    parser.add_argument(
        "--busy-threshold", type=float, default=0.15, help="other processes' CPU, in cores, above which to warn (0.15)"
    )
    parser.add_argument("--require-idle", action="store_true", help="exit instead of warning when the machine is busy")
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0,
        help="before each run, wait up to this many seconds for other processes to use at most --busy-threshold",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=0,
        help="run a workload again (up to this many times) when other processes disturbed it; the least "
        "disturbed attempt is kept",
    )
    options = parser.parse_args()
    options.ops = [op.strip() for op in options.ops.split(",") if op.strip()]
    for op in options.ops:
        if op not in OPS:
            parser.error(f"unknown op {op!r}: use get and/or set")
    options.rates = [rate.strip() for rate in options.rates.split(",") if rate.strip()]
    for rate in options.rates:
        try:
            float(rate[:-1]) if rate.endswith("%") else parse_rate(rate)
        except ValueError:
            parser.error(f"--rates: not a rate or a percentage: {rate}")
    for option in ("duration", "warmup", "server_warmup"):
        try:
            seconds(getattr(options, option))
        except ValueError:
            parser.error(f"--{option.replace('_', '-')}: not a duration: {getattr(options, option)}")
    return options


def environment(options):
    lines = [
        f"date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"host: {platform.node()} {platform.platform()}",
        f"cpus: {os.cpu_count()}",
        f"loadavg: {loadavg()}",
    ]
    try:
        head = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        lines.append(f"zoocore commit: {head}")
    except OSError:
        pass
    lines.append(f"options: {vars(options)}")
    return "\n".join(lines) + "\n"


def main():
    options = parse_args()
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = os.path.abspath(options.out or os.path.join("compare-results", stamp))
    os.makedirs(out, exist_ok=True)

    if not options.no_build:
        log("cargo build --release --workspace")
        subprocess.run(["cargo", "build", "--release", "--workspace", "--quiet"], cwd=ROOT, check=True)
    for binary in (options.zoocore_bin, options.loadgen_bin):
        if not os.access(binary, os.X_OK):
            sys.exit(
                f"{binary} not found: build with cargo build --release --workspace, or pass --zoocore-bin/--loadgen-bin"
            )
    for name in ("zk_port", "zk_admin_port", "zoocore_port"):
        if not getattr(options, name):
            setattr(options, name, free_port())
        elif port_open(getattr(options, name)):
            sys.exit(f"port {getattr(options, name)} ({name}) is in use")

    # Is anything else using the CPU? Sampled before our servers exist.
    busy = busy_cores_now(3.0)
    log(f"machine: {os.cpu_count()} CPUs, {busy:.2f} cores busy over 3 s before starting, loadavg {loadavg()}")
    if busy > options.busy_threshold:
        warn(
            f"the machine is busy ({busy:.2f} cores used by other processes): numbers will be disturbed.\n"
            + top_processes()
        )
        if options.require_idle:
            sys.exit(1)

    with open(os.path.join(out, "env.txt"), "w") as handle:
        handle.write(environment(options) + f"busy cores before start: {busy:.2f}\n")

    work = tempfile.mkdtemp(prefix="zoocore-compare-")
    servers = Servers(options, work)

    def on_signal(number, _frame):
        raise KeyboardInterrupt(f"signal {number}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    status = 0
    try:
        servers.start_zookeeper()
        servers.start_zoocore()
        targets = {
            "zookeeper": (servers.zk_pid, options.zk_port),
            "zoocore": (servers.zoocore.pid, options.zoocore_port),
        }
        if seconds(options.server_warmup) > 0:
            for name, (pid, port) in targets.items():
                log(f"warming {name} up for {options.server_warmup}")
                warm = dict(vars(options))
                warm_options = argparse.Namespace(**warm)
                warm_options.warmup, warm_options.duration = "0s", options.server_warmup
                run_loadgen(
                    warm_options,
                    pid,
                    port,
                    f"{name}-warmup",
                    ["--mix", "get=50,set=50", "--outstanding", str(options.outstanding)],
                    os.path.join(work, f"{name}.warmup.json"),
                )

        rows = []
        summaries = []

        server_pids = [pid for pid, _ in targets.values()]

        def pair(workload, extra):
            result = {}
            for name, (pid, port) in targets.items():
                label = f"{name} {workload}"
                stem = os.path.join(out, f"{name}.{workload}")
                best = None
                for attempt in range(options.retries + 1):
                    if options.wait_idle > 0:
                        wait_until_idle(server_pids, options.busy_threshold, options.wait_idle)
                    summary = run_loadgen(options, pid, port, label, extra, stem + ".json", stem)
                    compare = summary["compare"]
                    log(
                        f"{label:40} {summary['ops_per_sec']:>9.0f} ops/s  p50 {summary['latency_us']['p50']:.0f}us  "
                        f"p99 {summary['latency_us']['p99']:.0f}us  p99.9 {summary['latency_us']['p999']:.0f}us  "
                        f"errors {summary['errors']}  server {compare['server_cores']:.2f} "
                        f"loadgen {compare['loadgen_cores']:.2f} irq {compare['interrupt_cores']:.2f} "
                        f"other {compare['other_cores']:.2f} cores"
                    )
                    if best is None or compare["other_cores"] < best[0]["compare"]["other_cores"]:
                        best = (summary, attempt)
                        keep_attempt(stem, "best")
                    if compare["other_cores"] <= options.busy_threshold:
                        break
                    warn(
                        f"{label}: other processes used {compare['other_cores']:.2f} cores during the run "
                        f"({compare['other_processes'] or 'short-lived processes'})"
                        + ("; running it again" if attempt < options.retries else "")
                    )
                summary, kept = best
                keep_attempt(stem, "restore")
                summary["compare"]["attempts"] = attempt + 1
                summary["compare"]["kept_attempt"] = kept + 1
                with open(stem + ".json", "w") as handle:
                    json.dump(summary, handle, indent=1)
                result[name] = summary
                summaries.append(stem + ".json")
            rows.append((workload, result["zookeeper"], result["zoocore"]))
            return result

        peaks = {}
        for op in options.ops:
            mix = ["--mix", f"{op}=100"]
            closed = pair(
                f"{op}-closed-{options.connections}x{options.outstanding}",
                mix + ["--outstanding", str(options.outstanding)],
            )
            peaks[op] = closed["zookeeper"]["ops_per_sec"]
            for rate in options.rates:
                if rate.endswith("%"):
                    offered = int(peaks[op] * float(rate[:-1]) / 100)
                    name = f"{op}-open-{rate[:-1]}pct-zkpeak-{fmt_rate(offered)}"
                else:
                    offered = parse_rate(rate)
                    name = f"{op}-open-{fmt_rate(offered)}"
                if offered < 1:
                    warn(f"skipping {name}: rate {offered}")
                    continue
                pair(name, mix + ["--rate", str(offered)])

        # HTML: one page per workload (both servers overlaid) and one with all.
        reports = []
        for workload, _zk, _zc in rows:
            page = os.path.join(out, f"report.{workload}.html")
            subprocess.run(
                [options.loadgen_bin, "report", "--title", f"zoocore vs ZooKeeper: {workload}", "-o", page]
                + [os.path.join(out, f"{name}.{workload}.json") for name in targets],
                check=True,
                capture_output=True,
            )
            reports.append(page)
        subprocess.run(
            [options.loadgen_bin, "report", "--title", "zoocore vs ZooKeeper", "-o", os.path.join(out, "report.html")]
            + summaries,
            check=True,
            capture_output=True,
        )

        text = [
            f"zoocore vs Apache ZooKeeper 3.8 (forceSync=yes), {os.cpu_count()} CPUs, "
            f"{options.duration} per run after {options.warmup} warm-up, {options.value_size}-byte values, "
            f"{options.keys} keys, {options.connections} connections",
            "x thr = zoocore ops/s / ZooKeeper ops/s; "
            "x pNN = ZooKeeper latency / zoocore latency (above 1: zoocore faster)",
            f"other cores = CPU used by other processes during the run (BUSY above {options.busy_threshold})",
            "",
            table(rows, options.busy_threshold),
            "",
        ]
        # The targets.
        for workload, zk, zc in rows:
            if "closed" in workload and workload.startswith("get"):
                factor = ratio(zc["ops_per_sec"], zk["ops_per_sec"])
                text.append(
                    f"target getData >= 5x ZooKeeper's peak: {factor:.2f}x {'met' if factor >= 5 else 'NOT met'}"
                )
            if "closed" in workload and workload.startswith("set"):
                factor = ratio(zc["ops_per_sec"], zk["ops_per_sec"])
                text.append(
                    f"target setData >= 3x ZooKeeper's throughput: {factor:.2f}x {'met' if factor >= 3 else 'NOT met'}"
                )
            if "50pct" in workload:
                p999 = zc["latency_us"]["p999"]
                verdict = "met" if p999 <= 250 else "NOT met"
                text.append(f"target p99.9 <= 250us at half ZooKeeper's peak ({workload}): {p999:.0f}us {verdict}")
        # Does zoocore's setData reach the disk at all?
        if "set" in options.ops:
            files = [name for _, _, names in os.walk(servers.zoocore_data) for name in names]
            if not files:
                text.append(
                    "NOTE: zoocore wrote nothing to its dataDir: its log is in memory in this build, so its setData "
                    "is not fsynced while ZooKeeper's is (forceSync=yes)."
                )
        max_other = max(max(zk["compare"]["other_cores"], zc["compare"]["other_cores"]) for _, zk, zc in rows)
        text.append(f"machine: {busy:.2f} cores busy before start; at most {max_other:.2f} other cores during a run")
        text.append(f"results: {out} (JSON, .hgrm, report.html and report.<workload>.html)")
        report = "\n".join(text)
        print(report)
        with open(os.path.join(out, "summary.md"), "w") as handle:
            handle.write(report + "\n")
        with open(os.path.join(out, "summary.json"), "w") as handle:
            json.dump(
                [
                    {
                        "workload": workload,
                        "zookeeper": {k: zk[k] for k in ("ops_per_sec", "errors", "latency_us", "compare")},
                        "zoocore": {k: zc[k] for k in ("ops_per_sec", "errors", "latency_us", "compare")},
                        "throughput_ratio": ratio(zc["ops_per_sec"], zk["ops_per_sec"]),
                        "latency_ratio": {
                            key: ratio(zk["latency_us"][key], zc["latency_us"][key]) for key in ("p50", "p99", "p999")
                        },
                    }
                    for workload, zk, zc in rows
                ],
                handle,
                indent=1,
            )
    except KeyboardInterrupt as interrupt:
        warn(f"interrupted ({interrupt}); stopping the servers")
        status = 130
    except (RuntimeError, OSError, subprocess.SubprocessError) as error:
        warn(str(error))
        status = 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        servers.stop()
        # Keep the servers' logs with the results, then drop their data.
        for source, target in (
            ("zkref/standalone/stdout.log", "zookeeper-stdout.log"),
            ("zkref/standalone/zookeeper.log", "zookeeper.log"),
            ("zkref/standalone/zoo.cfg", "zookeeper-zoo.cfg"),
            ("zoocore.log", "zoocore.log"),
            ("zoocore.cfg", "zoocore.cfg"),
        ):
            if os.path.exists(os.path.join(work, source)):
                shutil.copy(os.path.join(work, source), os.path.join(out, target))
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(status)


if __name__ == "__main__":
    main()
