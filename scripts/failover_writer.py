#!/usr/bin/env python3
"""One kazoo client that writes, back to back, through an ensemble's connect
string, and logs every write's outcome for scripts/compare.py --ensemble.

Why kazoo and not a loadgen mode: the failover figure is meant "as a client
sees it", and kazoo is a real ZooKeeper client with the behaviour an
application gets: one session kept across servers, a connection lost when
its server dies or loses its leader, reconnection round-robin over the
connect string, and the session revalidated on the server it lands on. The
loadgen speaks the protocol for throughput and has none of that recovery.
kazoo's own pauses are taken out of the figure: its connection retry sleeps
--retry-delay (5 ms, no jitter, no back-off) after each full round over the
hosts, instead of its default 100 ms doubling with 40% jitter, so what is
measured is the servers' failover, not kazoo's back-off.

Each line on stdout (flushed) is one write:
  T_ISSUE T_DONE OK ERROR PORT
T_ISSUE and T_DONE are time.monotonic() (CLOCK_MONOTONIC, the same clock in
every process on the machine, so compare.py can put them beside the moment
it sent SIGKILL); OK is 1 or 0; ERROR the exception's class name ("-" when
OK); PORT the client port of the server the session was on after the write
("?" when unknown). A failed write is retried at once. A first line
"READY" says the session is open and the node exists.

Runs until SIGTERM or SIGINT, then closes the session.
"""

import argparse
import signal
import sys
import time

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException
from kazoo.retry import KazooRetry

STOP = False


def on_signal(_number, _frame):
    global STOP
    STOP = True


def connected_port(client):
    try:
        return str(client._connection._socket.getpeername()[1])
    except (AttributeError, OSError, TypeError):
        return "?"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", required=True, help="connect string, host:port,host:port,...")
    parser.add_argument("--path", default="/zoocore-failover")
    parser.add_argument("--value-size", type=int, default=100)
    parser.add_argument("--session-timeout", type=float, default=10.0, help="seconds (default 10)")
    parser.add_argument("--retry-delay", type=float, default=0.005, help="seconds between rounds over the hosts")
    options = parser.parse_args()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    retry = KazooRetry(
        max_tries=-1, delay=options.retry_delay, backoff=1, max_jitter=0, max_delay=options.retry_delay
    )
    client = KazooClient(hosts=options.hosts, timeout=options.session_timeout, connection_retry=retry)
    client.start(timeout=30)
    value = b"x" * options.value_size
    client.ensure_path(options.path)
    print("READY", flush=True)
    out = sys.stdout
    while not STOP:
        issued = time.monotonic()
        try:
            client.set(options.path, value)
            ok, error = 1, "-"
        except KazooException as exception:
            ok, error = 0, type(exception).__name__
        done = time.monotonic()
        out.write(f"{issued:.6f} {done:.6f} {ok} {error} {connected_port(client)}\n")
        out.flush()
    try:
        client.stop()
        client.close()
    except KazooException:
        pass


if __name__ == "__main__":
    main()
