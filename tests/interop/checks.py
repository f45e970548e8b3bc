"""The reporting the interop scripts share: each check prints "ok NAME" or
"FAIL NAME: REASON", and the script exits 1 if any failed."""
import sys

from kazoo.exceptions import NoAuthError

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
