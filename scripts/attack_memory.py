#!/usr/bin/env python3
"""Issue 15, item 5: what misbehaving clients cost a server, as RSS.

Starts a server (zoocore by default; --zookeeper to measure the real
ZooKeeper 3.8 started by ../shared/tools/zkref and passed as --port/--pid),
runs each attack bounded in count and time, and prints the server's RSS
before and after and whether the server closed the attacking connections.
Numbers, not assertions: the tests check the properties.

  scripts/attack_memory.py [--binary target/debug/zoocore] [--count 2000]
"""
import argparse, os, socket, struct, subprocess, sys, tempfile, time

def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0

def frame(body):
    return struct.pack(">i", len(body)) + body

def zk_string(text):
    data = text.encode()
    return struct.pack(">i", len(data)) + data

def connect_request(timeout_ms=10000):
    return frame(struct.pack(">iqiq", 0, 0, timeout_ms, 0) + struct.pack(">i", 16) + b"\0" * 16)

def read_frame(sock):
    def exact(n):
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data
    (length,) = struct.unpack(">i", exact(4))
    return exact(length)

def session(port, timeout_ms=10000, rcvbuf=None):
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", port))
    sock.sendall(connect_request(timeout_ms))
    read_frame(sock)
    return sock

def request(sock, xid, opcode, body):
    sock.sendall(frame(struct.pack(">ii", xid, opcode) + body))

def closed_by_server(sock, wait_s):
    sock.settimeout(wait_s)
    try:
        while True:
            if not sock.recv(1 << 20):
                return True
    except (socket.timeout, BlockingIOError):
        return False
    except (ConnectionError, OSError):
        return True

def start_zoocore(binary, directory, extra):
    config = os.path.join(directory, "zoo.cfg")
    with open(config, "w") as out:
        out.write(f"tickTime=2000\ndataDir={directory}/data\nclientPort=0\nmaxClientCnxns=0\n"
                  "admin.enableServer=false\n" + "".join(line + "\n" for line in extra))
    process = subprocess.Popen([binary, "--config", config], stdout=subprocess.PIPE,
                               stderr=open(os.path.join(directory, "stderr.log"), "w"), text=True)
    for line in process.stdout:
        if line.startswith("zoocore listening on"):
            return process, int(line.rsplit(":", 1)[1])
    raise SystemExit("zoocore did not start")

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default="target/debug/zoocore")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--writes", type=int, default=20000)
    parser.add_argument("--watcher-timeout-ms", type=int, default=4000)
    parser.add_argument("--port", type=int, help="measure a running server instead (with --pid)")
    parser.add_argument("--pid", type=int)
    arguments = parser.parse_args()
    directory = tempfile.mkdtemp(prefix="attack-")
    process = None
    if arguments.port:
        port, pid = arguments.port, arguments.pid
    else:
        process, port = start_zoocore(arguments.binary, directory, ["zookeeper.nio.sessionlessCnxnTimeout=10000"])
        pid = process.pid
    try:
        report = lambda name, before, after, extra="": print(
            f"{name:<48} RSS {before / 1024:8.1f} -> {after / 1024:8.1f} MiB {extra}", flush=True)

        # 1. A watcher that never reads, while another session writes 5 KB values.
        writer = session(port)
        request(writer, 1, 1, zk_string("/n") + struct.pack(">i", 0) + struct.pack(">ii", 1, 31)
                + zk_string("world") + zk_string("anyone") + struct.pack(">i", 0))
        reply = read_frame(writer)
        assert struct.unpack(">iqi", reply[:16])[2] == 0, "create /n failed"
        watcher = session(port, timeout_ms=arguments.watcher_timeout_ms, rcvbuf=4096)
        request(watcher, 1, 106, zk_string("/n") + struct.pack(">i", 1))  # addWatch, persistent recursive
        time.sleep(0.2)
        before = rss_kib(pid)
        value = b"v" * 5000
        started = time.time()
        pipelined = 0
        for xid in range(2, arguments.writes + 2):
            request(writer, xid, 5, zk_string("/n") + struct.pack(">i", len(value)) + value + struct.pack(">i", -1))
            pipelined += 1
            if pipelined == 100:
                for _ in range(pipelined):
                    read_frame(writer)
                pipelined = 0
        for _ in range(pipelined):
            read_frame(writer)
        report(f"watcher not reading, {arguments.writes} setData 5 KB", before, rss_kib(pid),
               f"({time.time() - started:.1f} s)")
        # 2. Its session expires (4 s timeout, it sends no pings): closed?
        closed = closed_by_server(watcher, 12)
        report("  ... after its session expired", before, rss_kib(pid), f"connection closed by server: {closed}")

        # 3. Connections that claim a 1 MiB frame and send nothing more.
        before = rss_kib(pid)
        claims = []
        for _ in range(arguments.count):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(struct.pack(">i", 1_000_000))
            claims.append(sock)
        time.sleep(0.5)
        report(f"{arguments.count} connections claiming a 1 MB frame", before, rss_kib(pid))
        # 4. Idle sessions.
        before = rss_kib(pid)
        idle = [session(port, timeout_ms=30000) for _ in range(arguments.count)]
        time.sleep(0.5)
        report(f"{arguments.count} idle sessions", before, rss_kib(pid))
        # 5. Connections that never complete a handshake, and a healthy client meanwhile.
        before = rss_kib(pid)
        healthy = session(port, timeout_ms=10000)
        silent, worst, xid = [], 0.0, 1
        for index in range(arguments.count * 2):
            silent.append(socket.create_connection(("127.0.0.1", port)))
            if index % 50 == 0:
                xid += 1
                sent = time.time()
                request(healthy, xid, 3, zk_string("/n") + b"\0")  # exists
                read_frame(healthy)
                worst = max(worst, time.time() - sent)
        report(f"{arguments.count * 2} connections without a handshake", before, rss_kib(pid),
               f"healthy client's slowest exists: {worst * 1000:.0f} ms")
        closed = sum(closed_by_server(sock, 0.01) for sock in claims[:50])
        time.sleep(11)
        closed_late = sum(closed_by_server(sock, 0.5) for sock in silent[:50])
        report("  ... 11 s later (sessionlessCnxnTimeout 10 s)", before, rss_kib(pid),
               f"closed: {closed_late}/50 silent sampled")
        for sock in claims + idle + silent:
            sock.close()
    finally:
        if process:
            process.terminate()
            process.wait()

if __name__ == "__main__":
    main()
