#!/usr/bin/env python3
"""kazoo's read-only test (kazoo/tests/test_connection.py, TestReadOnlyMode)
against a 3-server ensemble with readonlymode.enabled=true: a
KazooClient(read_only=True) restarted after two members stop connects
read-only to the one left, reads, gets NotReadOnlyCallError for writes, and
once the two are back reconnects read-write.

The test driving this script owns the servers: the script prints
"step stop-others" or "step start-others" and waits for a line on stdin
once that is done.

Usage: kazoo_read_only.py --hosts H:P,H:P,H:P --survivor H:P
Prints "ok <name>" or "FAIL <name>: <reason>" per check; exits 1 if any failed.
"""
import argparse
import sys
import time
import uuid

from checks import check, exit_status
from kazoo.client import KazooClient
from kazoo.exceptions import NotReadOnlyCallError
from kazoo.protocol.states import KeeperState

WAIT_S = 30


def step(name):
    print("step " + name, flush=True)
    if not sys.stdin.readline():
        raise SystemExit("the driving test went away")


def wait_for_state(client, state):
    """Waits, polling with a deadline, until the client is in `state`."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if client.client_state == state:
            return
        time.sleep(0.05)
    raise AssertionError("client state %s, not %s, after %d s" % (client.client_state, state, WAIT_S))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", required=True)
    parser.add_argument("--survivor", required=True)
    args = parser.parse_args()

    # Written through the member that stays, so it holds the node.
    path = "/read-only-" + uuid.uuid4().hex
    writer = KazooClient(hosts=args.survivor, timeout=10)
    writer.start(timeout=WAIT_S)
    writer.create(path, b"kept")
    writer.create(path + "/child")
    writer.stop()
    writer.close()

    client = KazooClient(hosts=args.hosts, timeout=10, read_only=True, connection_retry=None)
    states = []
    client.add_listener(states.append)
    client.start(timeout=WAIT_S)
    check("connected read-write while the quorum is up", lambda: wait_for_state(client, KeeperState.CONNECTED))
    try:
        step("stop-others")
        # As kazoo's test: a restarted client starts a new session, which
        # the member left can only give read-only.
        client.stop()
        client.start(timeout=WAIT_S)
        check("connected read-only", lambda: wait_for_state(client, KeeperState.CONNECTED_RO))

        def reads():
            data, stat = client.get(path)
            assert data == b"kept", data
            assert client.get_children(path) == ["child"]
            assert client.exists(path + "/child") is not None
            assert client.exists(path + "/missing") is None

        check("reads are served", reads)

        def refused(name, call):
            def run():
                try:
                    call()
                except NotReadOnlyCallError:
                    return
                raise AssertionError("%s did not raise NotReadOnlyCallError" % name)

            check("%s raises NotReadOnlyCallError" % name, run)

        refused("create", lambda: client.create("/fred"))
        refused("set", lambda: client.set(path, b"changed"))
        refused("delete", lambda: client.delete(path + "/child"))
        refused("sync", lambda: client.sync(path))
        check("the session stays read-only after refused writes",
              lambda: wait_for_state(client, KeeperState.CONNECTED_RO))

        step("start-others")
        check("reconnects read-write once the quorum is back",
              lambda: wait_for_state(client, KeeperState.CONNECTED))

        def writes():
            client.set(path, b"changed")
            assert client.get(path)[0] == b"changed"
            client.delete(path, recursive=True)

        check("writes are served again", writes)
    finally:
        client.stop()
        client.close()
    print("states: %s" % states, flush=True)
    exit_status()


if __name__ == "__main__":
    main()
