"""The reporting the interop scripts share: each check prints "ok NAME" or
"FAIL NAME: REASON", and the script exits 1 if any failed; and the
checks more than one script makes."""
import sys
import time

from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.protocol.states import KeeperState

FAILED = []


def check(name, function):
    try:
        function()
    except Exception as error:  # noqa: BLE001 - report any failure by name
        FAILED.append(name)
        print("FAIL %s: %r" % (name, error))
    else:
        print("ok %s" % name)


def exit_status():
    """Ends the script: 1 if any check failed."""
    sys.exit(1 if FAILED else 0)


def expect_no_auth(client, path, who):
    """`client` may not read `path`: the server answers NoAuth."""
    try:
        client.get(path)
    except NoAuthError:
        return
    raise AssertionError("%s read %s, which its ACL protects" % (who, path))


def expect_auth_failed(hosts, **client_options):
    """test_invalid_sasl_auth: the session reaches AUTH_FAILED. kazoo's own
    test expects start() to raise AuthFailedError, but start() raises only a
    time-out, and whether it returns first or times out depends on a race
    inside kazoo (it may report the session connected before its SASL
    exchange ends), against Apache ZooKeeper 3.8 as against zoocore. So the
    connection is started without waiting, and the AUTH_FAILED state kazoo
    enters is what is checked."""
    client = KazooClient(hosts=hosts, timeout=10, connection_retry={"max_tries": 0}, **client_options)
    states = []
    record = client._session_callback

    def recording(state):
        states.append(state)
        return record(state)

    client._session_callback = recording
    try:
        client.start_async()
        deadline = time.monotonic() + 10
        while KeeperState.AUTH_FAILED not in states and time.monotonic() < deadline:
            time.sleep(0.05)
        assert KeeperState.AUTH_FAILED in states, states
    finally:
        client.stop()
        client.close()
