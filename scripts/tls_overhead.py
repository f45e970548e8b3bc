#!/usr/bin/env python3
"""What TLS costs a read: getData over the secure client port against the
plain one, on one zoocore (or any server given with --plain/--secure).

Makes a CA and certificates with the openssl CLI in a temporary directory,
starts the zoocore binary with clientPort and secureClientPort (PEM stores,
ssl.clientAuth=need), then on one connection of each kind:

- latency: getData of a 128-byte znode, one request at a time (median,
  p99 in microseconds);
- throughput: pipelined getData, --depth requests in flight.

The client is Python (its ssl module is OpenSSL): its own cost per request
is the same on both connections, so the difference between the two columns
is what TLS costs, client and server together. Prints one table; removes
everything it made.

With --zkref the same runs against Apache ZooKeeper 3.8 instead
(../shared/tools/zkref, standalone, NettyServerCnxnFactory with the same
certificates; Debian's Netty jars are added to its classpath).

Usage: scripts/tls_overhead.py [--binary target/release/zoocore | --zkref]
       [--requests 20000] [--depth 32]
"""
import argparse
import os
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time

GET_DATA = 4


def openssl(directory, *arguments):
    subprocess.run(["openssl", *arguments], cwd=directory, check=True, capture_output=True)


def make_certificates(directory):
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl(directory, "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=bench ca")
    with open(os.path.join(directory, "server.ext"), "w") as out:
        out.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    with open(os.path.join(directory, "client.ext"), "w") as out:
        out.write("extendedKeyUsage=clientAuth\n")
    for name in ("server", "client"):
        openssl(directory, "req", *ec, "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + name)
        openssl(directory, "x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", name + ".crt", "-days", "2", "-extfile", name + ".ext")
        with open(os.path.join(directory, name + ".pem"), "w") as out:
            for part in (".key", ".crt"):
                out.write(open(os.path.join(directory, name + part)).read())


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_zoocore(binary, directory, secure_port):
    config = os.path.join(directory, "zoo.cfg")
    with open(config, "w") as out:
        out.write("\n".join([
            "dataDir=" + os.path.join(directory, "data"),
            "clientPort=0",
            "admin.enableServer=false",
            "secureClientPort=%d" % secure_port,
            "ssl.keyStore.location=" + os.path.join(directory, "server.pem"),
            "ssl.trustStore.location=" + os.path.join(directory, "ca.pem"),
            "ssl.clientAuth=need",
            "zoocore.logLevel=warn",
        ]) + "\n")
    process = subprocess.Popen([binary, "--config", config], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    plain = secure = None
    for line in process.stdout:
        if line.startswith("zoocore secure listening on "):
            secure = line.split()[-1]
        if line.startswith("zoocore listening on "):
            plain = line.split()[-1]
            break
    if not plain or not secure:
        process.kill()
        sys.exit("zoocore did not start")
    return process, plain, secure


ZKREF = os.environ.get("ZKREF") or os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "tools", "zkref"))
if not os.path.isdir(ZKREF):
    ZKREF = "/work/shared/tools/zkref"
NETTY_MODULES = ("buffer", "codec", "common", "handler", "resolver", "transport", "transport-native-epoll",
                 "transport-native-unix-common")


def start_zkref(directory, secure_port):
    """ZooKeeper 3.8 standalone on a free client port with the secure port."""
    plain_port = free_port()
    environment = dict(os.environ)
    environment["ZKREF_ROOT"] = os.path.join(directory, "zkref")
    environment["ZKREF_ADMIN_PORT"] = str(free_port())
    environment["ZKREF_CLASSPATH"] = ":".join(
        ["/usr/share/java/zookeeper.jar", "/usr/share/java/slf4j-log4j12.jar", "/usr/share/java/log4j-1.2.jar",
         "/usr/share/java/servlet-api.jar"] + ["/usr/share/java/netty-%s.jar" % module for module in NETTY_MODULES])
    environment["ZKREF_EXTRA_CFG"] = "\n".join([
        "secureClientPort=%d" % secure_port,
        "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory",
        "ssl.keyStore.location=" + os.path.join(directory, "server.pem"),
        "ssl.keyStore.type=PEM",
        "ssl.trustStore.location=" + os.path.join(directory, "ca.pem"),
        "ssl.trustStore.type=PEM",
        "ssl.clientAuth=need",
    ])
    subprocess.run([os.path.join(ZKREF, "start-standalone.sh"), str(plain_port)], env=environment, check=True,
                   capture_output=True)
    return environment, "127.0.0.1:%d" % plain_port, "127.0.0.1:%d" % secure_port


def frame(body):
    return struct.pack(">i", len(body)) + body


def zk_string(text):
    data = text.encode()
    return struct.pack(">i", len(data)) + data


class Connection:
    def __init__(self, address, context=None):
        host, port = address.rsplit(":", 1)
        raw = socket.create_connection((host, int(port)))
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = context.wrap_socket(raw, server_hostname="localhost") if context else raw
        self.buffer = bytearray()
        connect = struct.pack(">iqiq", 0, 0, 30000, 0) + struct.pack(">i", 16) + bytes(16)
        self.sock.sendall(frame(connect))
        self.read_frame()

    def read_frame(self):
        while True:
            if len(self.buffer) >= 4:
                length = struct.unpack_from(">i", self.buffer)[0]
                if len(self.buffer) >= 4 + length:
                    body = bytes(self.buffer[4:4 + length])
                    del self.buffer[:4 + length]
                    return body
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("closed")
            self.buffer += chunk

    def call(self, xid, opcode, payload):
        self.sock.sendall(frame(struct.pack(">ii", xid, opcode) + payload))
        body = self.read_frame()
        error = struct.unpack_from(">i", body, 12)[0]
        if error:
            raise RuntimeError("error %d" % error)
        return body


def measure(connection, path, requests, depth):
    request = frame(struct.pack(">ii", 1, GET_DATA) + zk_string(path) + b"\x00")
    latencies = []
    for _ in range(min(requests, 5000)):
        started = time.perf_counter_ns()
        connection.sock.sendall(request)
        connection.read_frame()
        latencies.append((time.perf_counter_ns() - started) / 1000)
    latencies.sort()
    batch = request * depth
    started = time.perf_counter()
    done = 0
    while done < requests:
        connection.sock.sendall(batch)
        for _ in range(depth):
            connection.read_frame()
        done += depth
    elapsed = time.perf_counter() - started
    return latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)], done / elapsed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default="target/release/zoocore")
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--depth", type=int, default=32)
    parser.add_argument("--zkref", action="store_true", help="measure Apache ZooKeeper 3.8 instead")
    args = parser.parse_args()
    directory = tempfile.mkdtemp(prefix="zoocore-tls-bench-")
    process = zkref = None
    try:
        make_certificates(directory)
        if args.zkref:
            zkref, plain, secure = start_zkref(directory, free_port())
        else:
            process, plain, secure = start_zoocore(args.binary, directory, free_port())
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(os.path.join(directory, "ca.pem"))
        context.load_cert_chain(os.path.join(directory, "client.crt"), os.path.join(directory, "client.key"))
        setup = Connection(plain)
        path = "/tls-bench"
        setup.call(2, 1, zk_string(path) + struct.pack(">i", 128) + bytes(128)
                   + struct.pack(">i", 1) + struct.pack(">i", 31) + zk_string("world") + zk_string("anyone")
                   + struct.pack(">i", 0))
        rows = []
        for name, address, tls in (("plain", plain, None), ("TLS", secure, context)):
            connection = Connection(address, tls)
            version = connection.sock.version() if tls else "-"
            rows.append((name, version) + measure(connection, path, args.requests, args.depth))
        server = "ZooKeeper 3.8 (zkref)" if args.zkref else "zoocore"
        print("%s: getData of 128 bytes, one connection, %d requests; pipelined depth %d"
              % (server, args.requests, args.depth))
        print("%-6s %-8s %12s %12s %16s" % ("port", "protocol", "median us", "p99 us", "pipelined ops/s"))
        for name, version, median, p99, rate in rows:
            print("%-6s %-8s %12.1f %12.1f %16.0f" % (name, version, median, p99, rate))
        plain_row, tls_row = rows
        print("TLS costs %.1f us more per request one at a time, %.2f us per request pipelined"
              % (tls_row[2] - plain_row[2], 1e6 / tls_row[4] - 1e6 / plain_row[4]))
    finally:
        if process:
            process.terminate()
            process.wait(timeout=20)
        if zkref:
            subprocess.run([os.path.join(ZKREF, "stop.sh"), "standalone"], env=zkref, capture_output=True)
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
