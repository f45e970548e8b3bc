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

With --floor each workload also runs against `zoocore-loadgen floor`, a
responder that answers at once with no server work (one thread per
connection, writes paying one 4 KiB O_DSYNC write in its own file): what the
machine, its kernel, the loopback, the disk and the loadgen cost by
themselves. A second table sets zoocore beside that floor.

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
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

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


# The ops compare.py compares: the loadgen mix each runs. create makes new
# nodes under ROOT/new (one per request); mix is 90% getData, 10% setData.
OPS = {"get": "get=100", "set": "set=100", "create": "create=100", "mix": "get=90,set=10"}
# Ops whose requests are writes (their write stages are printed).
WRITE_OPS = ("set", "create", "mix")


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
        self.metrics_port = free_port()

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
            # The Prometheus page, for the write stages (zoocore_write_stage_seconds).
            "metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider",
            f"metricsProvider.httpPort={self.metrics_port}",
        ]
        if self.options.zoocore_shards:
            lines.append(f"zoocore.shards={self.options.zoocore_shards}")
        # Extra lines (memory.py's --zoocore-config).
        lines += getattr(self.options, "zoocore_config", None) or []
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


def srvr_mode(port):
    """The Mode line of `srvr` on 127.0.0.1:port ("" if it does not answer)."""
    for line in four_letter_word(port, "srvr").splitlines():
        if line.startswith("Mode: "):
            return line[len("Mode: ") :].strip()
    return ""


class Ensemble:
    """Three members of one server kind; subclasses start and stop them.

    `stop` is safe to call any number of times. Members are numbered 1..3 as
    in their server.N lines; `pids[i]` is None while member i is down.
    """

    SIZE = 3
    name = "?"

    def __init__(self, options, work):
        self.options = options
        self.work = work
        self.pids = {}
        self.client_ports = {}

    def hosts(self):
        return ",".join(f"127.0.0.1:{self.client_ports[i]}" for i in self.members())

    def members(self):
        return range(1, self.SIZE + 1)

    def live_pids(self):
        return [pid for pid in self.pids.values() if pid is not None]

    def modes(self):
        return {i: (srvr_mode(self.client_ports[i]) if self.pids.get(i) else "") for i in self.members()}

    def wait_settled(self, limit_s):
        """Waits until every member runs, one leads and the others follow;
        returns the leader's number."""
        deadline = time.monotonic() + limit_s
        while True:
            modes = self.modes()
            leaders = [i for i, mode in modes.items() if mode == "leader"]
            if len(leaders) == 1 and all(mode in ("leader", "follower") for mode in modes.values()):
                return leaders[0]
            if time.monotonic() >= deadline:
                raise RuntimeError(f"{self.name} ensemble did not settle within {limit_s:.0f}s: {modes}")
            for i, pid in self.pids.items():
                if pid is not None and not pid_alive(pid):
                    raise RuntimeError(f"{self.name} member {i} (pid {pid}) died; modes {modes}")
            time.sleep(0.05)

    def kill(self, member):
        """SIGKILL of one member, by its PID; returns the monotonic time just before."""
        pid = self.pids[member]
        moment = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        self.reap(member)
        self.pids[member] = None
        return moment

    def reap(self, member):
        pass


class ZkEnsemble(Ensemble):
    """ZooKeeper 3.8's 3-node ensemble through zkref's start-ensemble.sh, in
    its own ZKREF_ROOT (its quorum, election and admin ports are zkref's
    fixed ones: 28881-28883, 38881-38883, 8081-8083)."""

    name = "ZooKeeper"
    FIXED_PORTS = [28880 + i for i in (1, 2, 3)] + [38880 + i for i in (1, 2, 3)] + [8080 + i for i in (1, 2, 3)]

    def __init__(self, options, work):
        super().__init__(options, work)
        self.root = os.path.join(work, "zkref")
        self.start_script = os.path.join(options.zkref, "start-ensemble.sh")
        self.shift = 0
        self.client_ports = {i: options.zk_ensemble_base + i - 1 for i in self.members()}

    def fixed_ports(self):
        return [port + self.shift for port in self.FIXED_PORTS] + list(self.client_ports.values())

    def use_shifted_ports(self, shift):
        """zkref's ensemble ports are fixed in start-ensemble.sh; when
        another ensemble holds them, run a copy of that script (made at run
        time, in the temporary directory) with every port `shift` higher,
        sourcing zkref's own common.sh."""
        with open(os.path.join(self.options.zkref, "start-ensemble.sh")) as handle:
            text = handle.read()
        replacements = [
            ('here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"', f'here="{self.options.zkref}"'),
            ("28880", str(28880 + shift)),
            ("38880", str(38880 + shift)),
            ("echo $((8080 + $1))", f"echo $(({8080 + shift} + $1))"),
        ]
        for before, after in replacements:
            if before not in text:
                raise RuntimeError(f"zkref's start-ensemble.sh changed: no {before!r} to shift its ports")
            text = text.replace(before, after)
        self.start_script = os.path.join(self.work, "start-ensemble-shifted.sh")
        with open(self.start_script, "w") as handle:
            handle.write(text)
        os.chmod(self.start_script, 0o755)
        self.shift = shift
        self.client_ports = {i: self.options.zk_ensemble_base + shift + i - 1 for i in self.members()}
        warn(
            f"running zkref's start-ensemble.sh with every port {shift} higher (clients on "
            f"{self.hosts()}, quorum {28881 + shift}-{28883 + shift}, election {38881 + shift}-{38883 + shift}, "
            f"admin {8081 + shift}-{8083 + shift})"
        )

    def env(self):
        env = dict(os.environ)
        env["ZKREF_ROOT"] = self.root
        env["ZKREF_FORCE_SYNC"] = "yes"
        env["ZKREF_HEAP"] = self.options.zk_ensemble_heap
        env["ZKREF_ENSEMBLE_BASE"] = str(self.options.zk_ensemble_base + self.shift)
        if self.options.zk_jvm_extra:
            env["ZKREF_JVM_EXTRA"] = self.options.zk_jvm_extra
        return env

    def wait_ports_free(self, limit_s):
        """zkref's fixed ports may be held by someone else's ensemble: wait
        (bounded) rather than fail at once; returns whether they are free."""
        deadline = time.monotonic() + limit_s
        warned = False
        while True:
            busy = [port for port in self.fixed_ports() if port_open(port)]
            if not busy:
                return True
            if time.monotonic() >= deadline:
                warn(f"ports {busy} still in use after {limit_s:.0f}s (another ZooKeeper ensemble?)")
                return False
            if not warned:
                warn(f"ports {busy} in use (another ZooKeeper ensemble?); waiting up to {limit_s:.0f}s")
                warned = True
            time.sleep(1)

    def script(self, args):
        command = [self.start_script] + args
        log(f"ZKREF_ROOT={self.root} {' '.join(command)}")
        result = subprocess.run(command, env=self.env(), capture_output=True, text=True, timeout=120)
        sys.stderr.write(result.stdout + result.stderr)
        self.read_pids()
        if result.returncode != 0:
            raise RuntimeError(f"ZooKeeper: {' '.join(command)} failed")

    def read_pids(self):
        for i in self.members():
            pid_file = os.path.join(self.root, "ensemble", f"n{i}", "zk.pid")
            if os.path.exists(pid_file) and self.pids.get(i) is None:
                with open(pid_file) as handle:
                    pid = int(handle.read().strip())
                if pid_alive(pid):
                    self.pids[i] = pid

    def start(self):
        if not self.wait_ports_free(self.options.wait_ports):
            if not self.options.zk_port_shift:
                raise RuntimeError("zkref's ensemble ports are in use (--zk-port-shift runs it on others)")
            self.use_shifted_ports(self.options.zk_port_shift)
            if not self.wait_ports_free(0):
                raise RuntimeError(f"the shifted ports {self.fixed_ports()} are in use too")
        self.script([])

    def restart(self, member):
        self.script(["node", str(member)])

    def stop(self):
        if not self.pids:
            return
        try:
            subprocess.run(
                [os.path.join(self.options.zkref, "stop.sh"), "ensemble"],
                env=self.env(),
                capture_output=True,
                timeout=60,
            )
        except (OSError, subprocess.SubprocessError) as error:
            warn(f"stop.sh failed: {error}")
        for i, pid in self.pids.items():
            stop_pid(pid, f"ZooKeeper member {i}")
        self.pids = {}

    def logs(self):
        return [
            (os.path.join(self.root, "ensemble", f"n{i}", name), f"zookeeper-n{i}-{name}")
            for i in self.members()
            for name in ("zookeeper.log", "stdout.log", "zoo.cfg")
        ]


class ZoocoreEnsemble(Ensemble):
    """Three zoocore processes (release build) on free loopback ports, each
    with its own dataDir and myid, as tests/common's Cluster writes them;
    default fsync settings (forceSync=yes)."""

    name = "zoocore"

    def __init__(self, options, work):
        super().__init__(options, work)
        self.children = {}
        self.log_files = {}
        ports = {i: (free_port(), free_port(), free_port()) for i in self.members()}
        self.client_ports = {i: ports[i][0] for i in self.members()}
        self.server_lines = [
            f"server.{i}=127.0.0.1:{quorum}:{election}:participant;127.0.0.1:{client}"
            for i, (client, quorum, election) in ports.items()
        ]

    def dir(self, member):
        return os.path.join(self.work, f"zoocore-n{member}")

    def spawn(self, member):
        directory = self.dir(member)
        data = os.path.join(directory, "data")
        os.makedirs(data, exist_ok=True)
        with open(os.path.join(data, "myid"), "w") as handle:
            handle.write(f"{member}\n")
        config = os.path.join(directory, "zoo.cfg")
        lines = [
            "tickTime=2000",
            "initLimit=10",
            "syncLimit=5",
            f"dataDir={data}",
            f"clientPort={self.client_ports[member]}",
            "clientPortAddress=127.0.0.1",
            "maxClientCnxns=0",
            "4lw.commands.whitelist=*",
            # info: role changes and elections are logged with their duration.
            "zoocore.logLevel=info",
            "admin.enableServer=false",
        ] + self.server_lines
        if self.options.zoocore_shards:
            lines.append(f"zoocore.shards={self.options.zoocore_shards}")
        with open(config, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        command = [self.options.zoocore_bin, "--config", config]
        log(f"starting zoocore member {member}: {' '.join(command)}")
        self.log_files[member] = open(os.path.join(directory, "zoocore.log"), "a")
        child = subprocess.Popen(
            command, stdout=self.log_files[member], stderr=subprocess.STDOUT, cwd=directory, stdin=subprocess.DEVNULL
        )
        self.children[member] = child
        self.pids[member] = child.pid

    def wait_listening(self, member, limit_s=30):
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            child = self.children[member]
            if child.poll() is not None:
                raise RuntimeError(f"zoocore member {member} exited with {child.returncode}")
            if four_letter_word(self.client_ports[member], "ruok") == "imok":
                return
            time.sleep(0.05)
        raise RuntimeError(f"zoocore member {member} not answering ruok within {limit_s}s")

    def start(self):
        for i in self.members():
            self.spawn(i)
        for i in self.members():
            self.wait_listening(i)

    def restart(self, member):
        self.spawn(member)
        self.wait_listening(member)

    def reap(self, member):
        try:
            self.children[member].wait(timeout=10)
        except subprocess.TimeoutExpired:
            warn(f"zoocore member {member} still alive 10 s after SIGKILL")

    def stop(self):
        for i, pid in list(self.pids.items()):
            if pid is not None:
                stop_pid(pid, f"zoocore member {i}")
        self.pids = {}
        for handle in self.log_files.values():
            handle.close()

    def logs(self):
        return [
            (os.path.join(self.dir(i), name), f"zoocore-n{i}-{name}")
            for i in self.members()
            for name in ("zoocore.log", "zoo.cfg")
        ]


def failover_runs(options, cluster, out):
    """Kills the leader --kills times while a kazoo client
    (scripts/failover_writer.py) writes back to back through the connect
    string of all three; per kill, the time from SIGKILL to the completion
    of the first write issued after it that succeeded. Between kills the
    killed member is restarted and the ensemble waited for until it has one
    leader and two followers again."""
    log_path = os.path.join(out, f"{cluster.name.lower()}.failover.writes.txt")
    command = [
        options.python,
        os.path.join(ROOT, "scripts", "failover_writer.py"),
        "--hosts",
        cluster.hosts(),
        "--value-size",
        str(options.value_size),
    ]
    log(f"{cluster.name} failover: {' '.join(command)}")
    handle = open(log_path, "w")
    writer = subprocess.Popen(command, stdout=handle, stderr=open(log_path + ".stderr", "w"))

    def lines():
        with open(log_path) as reader:
            return [line.split() for line in reader.read().splitlines()]

    kills = []
    try:
        deadline = time.monotonic() + 30
        while not any(line == ["READY"] for line in lines()):
            if writer.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"failover writer did not start; see {log_path}.stderr")
            time.sleep(0.05)
        for number in range(options.kills):
            leader = cluster.wait_settled(60)
            # Steady writes before the kill.
            time.sleep(options.failover_settle)
            ports_before = [w[4] for w in lines() if len(w) == 5 and w[2] == "1"]
            writer_port = ports_before[-1] if ports_before else "?"
            # The client's own write time when nothing fails, for scale.
            steady = sorted(
                float(w[1]) - float(w[0])
                for w in lines()
                if len(w) == 5 and w[2] == "1" and float(w[0]) >= time.monotonic() - options.failover_settle
            )
            wall = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")
            moment = cluster.kill(leader)
            deadline = time.monotonic() + options.failover_limit
            recovered = None
            while recovered is None and time.monotonic() < deadline:
                time.sleep(0.02)
                for fields in lines():
                    if len(fields) == 5 and fields[2] == "1" and float(fields[0]) >= moment:
                        recovered = fields
                        break
            writes = [w for w in lines() if len(w) == 5 and float(w[1]) >= moment]
            errors = {}
            for w in writes:
                if w[2] == "0" and (recovered is None or float(w[1]) <= float(recovered[1])):
                    errors[w[3]] = errors.get(w[3], 0) + 1
            if recovered is None:
                result = {"kill": number + 1, "leader": leader, "killed_at": wall, "failover_ms": None}
                result["errors"] = errors
                warn(
                    f"{cluster.name}: no write succeeded within {options.failover_limit:.0f}s "
                    f"of killing member {leader}"
                )
            else:
                # Writes that were in flight at the kill and still succeeded.
                in_flight_ok = [w for w in writes if w[2] == "1" and float(w[0]) < moment]
                result = {
                    "kill": number + 1,
                    "leader": leader,
                    # UTC, to find the kill in the members' logs.
                    "killed_at": wall,
                    "writer_on_leader": writer_port == str(cluster.client_ports[leader]),
                    "failover_ms": round((float(recovered[1]) - moment) * 1000, 1),
                    "errors": errors,
                    "in_flight_at_kill_ok": len(in_flight_ok),
                    "recovered_on_port": recovered[4],
                    "steady_write_p50_ms": round(steady[len(steady) // 2] * 1000, 2) if steady else None,
                }
            log(f"{cluster.name} kill {number + 1}: {result}")
            kills.append(result)
            cluster.restart(leader)
            cluster.wait_settled(60)
    finally:
        writer.send_signal(signal.SIGTERM)
        try:
            writer.wait(timeout=15)
        except subprocess.TimeoutExpired:
            writer.kill()
            writer.wait()
        handle.close()
    return kills


def stats_ms(values):
    values = sorted(value for value in values if value is not None)
    if not values:
        return None
    middle = len(values) // 2
    median = values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2
    return {"min": values[0], "median": median, "max": values[-1], "n": len(values)}


def ensemble_main(options, out, busy):
    """--ensemble: ZooKeeper's 3-node ensemble, then zoocore's, never both at
    once; on each, the loads with connections spread over the three
    members, then failover by SIGKILL of the leader."""
    work = tempfile.mkdtemp(prefix="zoocore-compare-ensemble-")

    def on_signal(number, _frame):
        raise KeyboardInterrupt(f"signal {number}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    status = 0
    results = {}
    failovers = {}
    peaks = {}
    order = []
    current = None
    try:
        for cluster_class in (ZkEnsemble, ZoocoreEnsemble):
            current = cluster = cluster_class(options, work)
            cluster.start()
            leader = cluster.wait_settled(60)
            name = "zookeeper" if cluster_class is ZkEnsemble else "zoocore"
            log(f"{cluster.name} ensemble up, leader member {leader}, pids {cluster.pids}, hosts {cluster.hosts()}")
            pids = cluster.live_pids()
            if seconds(options.server_warmup) > 0:
                warm_options = argparse.Namespace(**dict(vars(options)))
                warm_options.warmup, warm_options.duration = "0s", options.server_warmup
                log(f"warming {cluster.name} up for {options.server_warmup}")
                run_loadgen(
                    warm_options,
                    pids,
                    cluster.hosts(),
                    f"{name}-warmup",
                    ["--mix", "get=50,set=50", "--outstanding", str(options.outstanding)],
                    os.path.join(work, f"{name}.warmup.json"),
                )
            for op in options.ops:
                mix = ["--mix", OPS[op]]
                workload = f"{op}-closed-{options.connections}x{options.outstanding}"
                workloads = [(workload, mix + ["--outstanding", str(options.outstanding)])]
                for rate in options.rates:
                    workloads.append((rate, mix))
                for workload, extra in workloads:
                    if extra is mix:
                        # An open loop; ZooKeeper's peak is known by now (its
                        # closed loop ran first, and ZooKeeper before zoocore).
                        rate = workload
                        if rate.endswith("%"):
                            offered = int(peaks[op] * float(rate[:-1]) / 100)
                            workload = f"{op}-open-{rate[:-1]}pct-zkpeak-{fmt_rate(offered)}"
                        else:
                            offered = parse_rate(rate)
                            workload = f"{op}-open-{fmt_rate(offered)}"
                        if offered < 1:
                            warn(f"skipping {workload}: rate {offered}")
                            continue
                        extra = mix + ["--rate", str(offered)]
                    stem = os.path.join(out, f"{name}.{workload}")
                    summary = measured_run(options, pids, pids, cluster.hosts(), f"{name} {workload}", extra, stem)
                    results[(name, workload)] = summary
                    if name == "zookeeper":
                        order.append(workload)
                        if "closed" in workload:
                            peaks[op] = summary["ops_per_sec"]
            if options.kills > 0:
                failovers[name] = failover_runs(options, cluster, out)
            cluster.stop()
            for source, target in cluster.logs():
                if os.path.exists(source):
                    shutil.copy(source, os.path.join(out, target))
            current = None

        rows = [(workload, results[("zookeeper", workload)], results[("zoocore", workload)]) for workload in order]
        text = [
            f"zoocore vs Apache ZooKeeper 3.8, 3-node ensembles (forceSync=yes on both), one after the other, "
            f"{os.cpu_count()} CPUs, {options.duration} per run after {options.warmup} warm-up, "
            f"{options.value_size}-byte values, {options.keys} keys, {options.connections} connections "
            "round-robin over the 3 members",
            "x thr = zoocore ops/s / ZooKeeper ops/s; "
            "x pNN = ZooKeeper latency / zoocore latency (above 1: zoocore faster)",
            f"other cores = CPU used by other processes during the run (BUSY above {options.busy_threshold})",
            "",
            table(rows, options.busy_threshold),
            "",
            "server CPU per member (cores, members 1/2/3), ZooKeeper | zoocore; loadgen cores ZK/zc:",
        ]
        for workload, zk, zc in rows:
            text.append(
                f"  {workload:34} {'/'.join(f'{c:.2f}' for c in zk['compare']['server_cores_each'])} | "
                f"{'/'.join(f'{c:.2f}' for c in zc['compare']['server_cores_each'])}; "
                f"loadgen {zk['compare']['loadgen_cores']:.2f}/{zc['compare']['loadgen_cores']:.2f}"
            )
        text.append("")
        for workload, zk, zc in rows:
            factor = ratio(zc["ops_per_sec"], zk["ops_per_sec"])
            if "closed" in workload and workload.startswith("get"):
                verdict = "met" if factor >= 5 else "NOT met"
                text.append(f"target getData >= 5x ZooKeeper's ensemble: {factor:.2f}x {verdict}")
            if "closed" in workload and workload.startswith("set"):
                verdict = "met" if factor >= 3 else "NOT met"
                text.append(f"target setData >= 3x ZooKeeper's ensemble: {factor:.2f}x {verdict}")
        if failovers:
            text.append("")
            text.append(
                f"failover: SIGKILL of the leader to the first write issued after it that succeeds, as a kazoo "
                f"client writing through all three sees it ({options.kills} kills each)"
            )
            summary_failover = {}
            for name, kills in failovers.items():
                figures = stats_ms(kill["failover_ms"] for kill in kills)
                summary_failover[name] = {"kills": kills, "ms": figures}
                each = ", ".join("-" if kill["failover_ms"] is None else f"{kill['failover_ms']:.0f}" for kill in kills)
                errors = {}
                for kill in kills:
                    for error, count in kill["errors"].items():
                        errors[error] = errors.get(error, 0) + count
                steady = stats_ms(kill.get("steady_write_p50_ms") for kill in kills)
                if figures:
                    text.append(
                        f"  {name:10} min {figures['min']:.0f} ms, median {figures['median']:.0f} ms, max "
                        f"{figures['max']:.0f} ms (each: {each}); client errors before recovery: {errors or 'none'}; "
                        f"a write when nothing fails: {steady['median'] if steady else '?'} ms (p50)"
                    )
                else:
                    text.append(f"  {name:10} no write succeeded after any kill")
            zc = summary_failover.get("zoocore", {}).get("ms")
            if zc:
                verdict = "met" if zc["max"] < 200 else ("met at the median" if zc["median"] < 200 else "NOT met")
                text.append(
                    f"target failover < 200 ms: zoocore max {zc['max']:.0f} ms, median {zc['median']:.0f} ms: {verdict}"
                )
            with open(os.path.join(out, "failover.json"), "w") as handle:
                json.dump(summary_failover, handle, indent=1)
        write_summary(out, text, rows, busy, f"results: {out}", latency_ratios=False)
        subprocess.run(
            [options.loadgen_bin, "report", "--title", "zoocore vs ZooKeeper, 3-node ensembles"]
            + ["-o", os.path.join(out, "report.html")]
            + [os.path.join(out, f"{name}.{run}.json") for run in order for name in ("zookeeper", "zoocore")],
            capture_output=True,
        )
    except KeyboardInterrupt as interrupt:
        warn(f"interrupted ({interrupt}); stopping the servers")
        status = 130
    except (RuntimeError, OSError, subprocess.SubprocessError, KeyError) as error:
        warn(f"{type(error).__name__}: {error}")
        status = 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if current is not None:
            current.stop()
            for source, target in current.logs():
                if os.path.exists(source):
                    shutil.copy(source, os.path.join(out, target))
        # The data of both ensembles goes with the run.
        shutil.rmtree(work, ignore_errors=True)
    return status


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
        port if isinstance(port, str) else f"127.0.0.1:{port}",
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
    # An ensemble: every member's CPU is the server's, per member in the summary too.
    server_pids = list(server_pid) if isinstance(server_pid, (list, tuple)) else [server_pid]
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy_before, interrupt_before = machine_seconds()
    processes_before = process_times()
    servers_before = [measure.process_seconds(pid) for pid in server_pids]
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
    processes, consumers = other_processes(processes_before, process_times(), {*server_pids, os.getpid()}, wall)
    each = [measure.process_seconds(pid) - before for pid, before in zip(server_pids, servers_before)]
    server = sum(each)
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
        "server_cores_each": [round(used / wall, 3) for used in each],
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


def metrics_page(metrics_port, what):
    """zoocore's Prometheus page, or None (with a warning) when it cannot be read."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
            return response.read().decode()
    except OSError as error:
        warn(f"{what} could not be read: {error}")
        return None


def summaries(page, family, label_pattern):
    """{label: {p50, p99, p999, count}} in µs, from a summary family of a
    Prometheus page whose labels match label_pattern (one group: the key)."""
    found_by_label = {}
    pattern = re.compile(
        rf'^{family}(_count)?\{{{label_pattern}(?:,quantile="([0-9.]+)")?\}} (\S+)$'
    )
    for line in (page or "").splitlines():
        found = pattern.match(line)
        if not found:
            continue
        count, label, quantile, value = found.groups()
        figures = found_by_label.setdefault(label, {})
        if count:
            figures["count"] = int(float(value))
        elif quantile in ("0.5", "0.99", "0.999"):
            key = {"0.5": "p50", "0.99": "p99", "0.999": "p999"}[quantile]
            figures[key] = float(value) * 1e6
    return found_by_label


def write_stages(metrics_port):
    """{stage: {p50, p99, p999, count}} in µs, from zoocore's Prometheus
    page (zoocore_write_stage_seconds), or {} when it cannot be read."""
    page = metrics_page(metrics_port, "the write stages")
    return summaries(page, "zoocore_write_stage_seconds", r'stage="(\w+)"')


def server_read_latency(metrics_port):
    """{"shard N": {p50, p99, p999, count}} in µs: reads from their arrival
    on the shard to their reply (zoocore_request_latency_seconds), so a
    client-side tail far above it was spent outside the server's handling
    (the kernel, the scheduler, the load generator)."""
    page = metrics_page(metrics_port, "the read latencies")
    shards = summaries(page, "zoocore_request_latency_seconds", r'shard="(\d+)",kind="read"')
    return {f"shard {shard}": figures for shard, figures in shards.items()}


def stage_table(stages_by_workload):
    """The write stages per workload (µs, p50 / p99 / p99.9)."""
    names = []
    for stages in stages_by_workload.values():
        names += [name for name in stages if name not in names]
    header = "| workload | " + " | ".join(names) + " |"
    lines = [header, "|" + "---|" * (len(names) + 1)]
    for workload, stages in stages_by_workload.items():
        cells = [workload]
        for name in names:
            figures = stages.get(name, {})
            if not figures.get("count"):
                cells.append("-")
                continue
            cells.append("/".join(f"{figures.get(key, 0):.0f}" for key in ("p50", "p99", "p999")))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def measured_run(options, idle_pids, server_pid, port, label, extra, stem):
    """run_loadgen, after waiting (--wait-idle) for the machine to be idle
    but for `idle_pids`, run again (--retries) when other processes
    disturbed it; keeps the least disturbed attempt's files at `stem`."""
    best = None
    for attempt in range(options.retries + 1):
        if options.wait_idle > 0:
            wait_until_idle(idle_pids, options.busy_threshold, options.wait_idle)
        summary = run_loadgen(options, server_pid, port, label, extra, stem + ".json", stem)
        compare = summary["compare"]
        log(
            f"{label:40} {summary['ops_per_sec']:>9.0f} ops/s  p50 {summary['latency_us']['p50']:.0f}us  "
            f"p99 {summary['latency_us']['p99']:.0f}us  p99.9 {summary['latency_us']['p999']:.0f}us  "
            f"errors {summary['errors']}  server {compare['server_cores']:.2f} {compare['server_cores_each']} "
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
    return summary


def fmt_rate(value):
    return f"{value / 1000:.1f}k" if value >= 1000 else f"{value:.0f}"


def fmt_us(value):
    return f"{value / 1000:.2f}ms" if value >= 10000 else f"{value:.0f}us"


def write_summary(out, text, rows, busy, results_line, latency_ratios):
    """Ends the report with the machine's load and where the results are,
    prints it, and writes it as summary.md and the rows as summary.json
    (both modes)."""
    # No rows when only the failover ran (--ensemble --ops "").
    max_other = max((max(zk["compare"]["other_cores"], zc["compare"]["other_cores"]) for _, zk, zc in rows), default=0.0)
    text.append(f"machine: {busy:.2f} cores busy before start; at most {max_other:.2f} other cores during a run")
    text.append(results_line)
    report = "\n".join(text)
    print(report)
    with open(os.path.join(out, "summary.md"), "w") as handle:
        handle.write(report + "\n")
    summary = []
    for workload, zk, zc in rows:
        row = {
            "workload": workload,
            "zookeeper": {k: zk[k] for k in ("ops_per_sec", "errors", "latency_us", "compare")},
            "zoocore": {k: zc[k] for k in ("ops_per_sec", "errors", "latency_us", "compare")},
            "throughput_ratio": ratio(zc["ops_per_sec"], zk["ops_per_sec"]),
        }
        if latency_ratios:
            row["latency_ratio"] = {
                key: ratio(zk["latency_us"][key], zc["latency_us"][key]) for key in ("p50", "p99", "p999")
            }
        summary.append(row)
    with open(os.path.join(out, "summary.json"), "w") as handle:
        json.dump(summary, handle, indent=1)


def ratio(numerator, denominator):
    return numerator / denominator if denominator else float("inf")


PERCENTILES = ("p50", "p99", "p999")


def latency_cells(left, right, ratios):
    """Per percentile: the left run's latency, the right run's, their ratio."""
    cells = []
    for key, factor in zip(PERCENTILES, ratios):
        cells += [fmt_us(left[key]), fmt_us(right[key]), f"{factor:.2f}"]
    return cells


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
        cells += latency_cells(zl, cl, [ratio(zl[key], cl[key]) for key in PERCENTILES])
        cells.append(f"{zk['errors']}/{zc['errors']}")
        other_zk, other_zc = zk["compare"]["other_cores"], zc["compare"]["other_cores"]
        flag = " BUSY" if max(other_zk, other_zc) > busy_threshold else ""
        cells.append(f"{other_zk:.2f}/{other_zc:.2f}{flag}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def floor_table(rows):
    """rows: (workload, floor summary, zoocore summary)."""
    header = (
        "| workload | floor ops/s | zoocore ops/s | floor p50 | zc p50 | x p50 | floor p99 | zc p99 | x p99 "
        "| floor p99.9 | zc p99.9 | x p99.9 |"
    )
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for workload, floor, zc in rows:
        fl, cl = floor["latency_us"], zc["latency_us"]
        cells = [workload, fmt_rate(floor["ops_per_sec"]), fmt_rate(zc["ops_per_sec"])]
        cells += latency_cells(fl, cl, [ratio(cl[key], fl[key]) for key in PERCENTILES])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def start_floor(options, work):
    """zoocore-loadgen floor on a free port, its synced writes in `work`:
    (process, port)."""
    port = free_port()
    log_path = os.path.join(work, "floor.log")
    with open(log_path, "w") as log_file:
        process = subprocess.Popen(
            [
                options.loadgen_bin,
                "floor",
                "--listen",
                f"127.0.0.1:{port}",
                "--value-size",
                str(options.value_size),
                "--dsync",
                os.path.join(work, "floor-dsync"),
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 10
    while not port_open(port):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_pid(process.pid, "the floor responder")
            raise RuntimeError(f"the floor responder did not start: {open(log_path).read()}")
        time.sleep(0.05)
    log(f"floor responder on port {port} (pid {process.pid})")
    return process, port


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
    parser.add_argument(
        "--ops", default="get,set", help=f"ops to compare, of {','.join(OPS)} (default get,set; mix is 90/10 get/set)"
    )
    parser.add_argument("--rates", default="10000,50%,90%", help="open-loop rates: numbers, or %% of ZooKeeper's peak")
    parser.add_argument(
        "--connections", type=int, help="connections (default 4; 6 with --ensemble, 2 per member, round-robin)"
    )
    parser.add_argument("--outstanding", type=int, default=8, help="closed loop: requests in flight per connection")
    parser.add_argument("--value-size", type=int, default=100)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--zk-port", type=int, default=0, help="default: a free port")
    parser.add_argument("--zk-admin-port", type=int, default=0, help="default: a free port")
    parser.add_argument("--zoocore-port", type=int, default=0, help="default: a free port")
    parser.add_argument("--zk-heap", default="1000m")
    parser.add_argument("--zk-jvm-extra", default="", help="extra JVM flags (ZKREF_JVM_EXTRA), e.g. GC settings")
    parser.add_argument(
        "--zoocore-shards", type=int, default=0, help="zoocore.shards (default: zoocore's, one per CPU but one)"
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
    parser.add_argument(
        "--ensemble",
        action="store_true",
        help="3-node ensembles instead of standalone servers: ZooKeeper's (zkref start-ensemble.sh), then "
        "zoocore's, never both at once; then failover by SIGKILL of the leader",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also run every workload against zoocore-loadgen floor (no server work, synced writes): the "
        "machine's own floor, in a second table",
    )
    parser.add_argument("--kills", type=int, default=5, help="--ensemble: leader kills per server (default 5, 0: none)")
    parser.add_argument(
        "--failover-settle", type=float, default=1.0, help="--ensemble: seconds of steady writes before each kill"
    )
    parser.add_argument(
        "--failover-limit", type=float, default=30.0, help="--ensemble: seconds to wait for a write after a kill"
    )
    parser.add_argument(
        "--wait-ports",
        type=float,
        default=30.0,
        help="--ensemble: seconds to wait for zkref's fixed ensemble ports to be free (default 30)",
    )
    parser.add_argument(
        "--zk-port-shift",
        type=int,
        default=100,
        help="--ensemble: when zkref's ensemble ports stay in use, run a copy of start-ensemble.sh with every "
        "port this much higher (default 100; 0: fail instead)",
    )
    parser.add_argument("--zk-ensemble-base", type=int, default=2181, help="--ensemble: ZooKeeper's first client port")
    parser.add_argument("--zk-ensemble-heap", default="512m", help="--ensemble: heap per ZooKeeper member (zkref's)")
    parser.add_argument(
        "--python",
        default=os.path.join(ROOT, ".venv", "bin", "python"),
        help="--ensemble: a Python with kazoo for the failover writer (default .venv/bin/python, .ci/setup.sh)",
    )
    options = parser.parse_args()
    if options.connections is None:
        options.connections = 6 if options.ensemble else 4
    options.ops = [op.strip() for op in options.ops.split(",") if op.strip()]
    for op in options.ops:
        if op not in OPS:
            parser.error(f"unknown op {op!r}: use any of {', '.join(OPS)}")
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
    if options.ensemble and options.floor:
        sys.exit("--floor runs beside the standalone servers; it does not apply to --ensemble")
    if options.ensemble and options.kills > 0 and not os.access(options.python, os.X_OK):
        sys.exit(f"{options.python} not found: run .ci/setup.sh (kazoo in .venv) or pass --python")
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

    if options.ensemble:
        sys.exit(ensemble_main(options, out, busy))

    work = tempfile.mkdtemp(prefix="zoocore-compare-")
    servers = Servers(options, work)
    floor = None

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
        if options.floor:
            floor, floor_port = start_floor(options, work)
            targets["floor"] = (floor.pid, floor_port)
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
        floor_rows = []
        summaries = []

        server_pids = [pid for pid, _ in targets.values()]

        stages_by_workload = {}
        reads_by_workload = {}

        def pair(workload, extra):
            result = {}
            for name, (pid, port) in targets.items():
                label = f"{name} {workload}"
                stem = os.path.join(out, f"{name}.{workload}")
                if name == "zoocore":
                    # srst resets the stage histograms (warm-up included after it).
                    four_letter_word(port, "srst")
                summary = measured_run(options, server_pids, pid, port, label, extra, stem)
                if name == "zoocore" and workload.startswith(WRITE_OPS):
                    stages_by_workload[workload] = write_stages(servers.metrics_port)
                if name == "zoocore" and workload.startswith(("get", "mix")):
                    reads_by_workload[workload] = server_read_latency(servers.metrics_port)
                result[name] = summary
                summaries.append(stem + ".json")
            rows.append((workload, result["zookeeper"], result["zoocore"]))
            if "floor" in result:
                floor_rows.append((workload, result["floor"], result["zoocore"]))
            return result

        peaks = {}
        for op in options.ops:
            mix = ["--mix", OPS[op]]
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
        if floor_rows:
            text += [
                "zoocore beside the machine's floor (zoocore-loadgen floor: the same load answered at once with no "
                "server work, each socket read that brought writes paying one 4 KiB O_DSYNC write); "
                "x = zoocore latency / floor latency",
                "",
                floor_table(floor_rows),
                "",
            ]
        if stages_by_workload:
            text += [
                "zoocore's write stages, µs p50/p99/p99.9 (zoocore_write_stage_seconds: per message, round, "
                "sync, commit or socket write; see docs/ARCHITECTURE.md)",
                "",
                stage_table(stages_by_workload),
                "",
            ]
            with open(os.path.join(out, "stages.json"), "w") as handle:
                json.dump(stages_by_workload, handle, indent=1)
        if reads_by_workload:
            text += [
                "zoocore's reads inside the server, µs p50/p99/p99.9 per shard (zoocore_request_latency_seconds: "
                "arrival on the shard to the reply queued)",
                "",
                stage_table(reads_by_workload),
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
        write_summary(
            out, text, rows, busy, f"results: {out} (JSON, .hgrm, report.html and report.<workload>.html)", True
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
        if floor is not None:
            stop_pid(floor.pid, "the floor responder")
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
