#!/usr/bin/env python3
"""kazoo's SASL DIGEST-MD5 tests (kazoo/tests/test_sasl.py, 2.11) against a
server whose JAAS Server section has user_jaasuser="jaas_password" and
user_super="super_secret", with
authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider,
as ZooKeeper's reference harness (and kazoo's own) configures it. The GSSAPI
cases of test_sasl.py need a KDC and are not here.

Usage: kazoo_sasl.py --hosts HOST:PORT
Prints "ok <name>" or "FAIL <name>: <reason>" per check; exits 1 if any failed.
Passes against Apache ZooKeeper 3.8 (tests/interop/README.md).
"""
import argparse
import uuid

from checks import check, exit_status, expect_auth_failed, expect_no_auth
from kazoo.client import KazooClient
from kazoo.security import make_acl


def connect_sasl_auth(hosts, root, **client_options):
    """test_connect_sasl_auth: a node with a sasl ACL for jaasuser is
    readable by its creator and NoAuth for an unauthenticated client."""
    username = "jaasuser"
    acl = make_acl("sasl", credential=username, all=True)
    plain = KazooClient(hosts=hosts, timeout=10)
    plain.start()
    client = KazooClient(hosts=hosts, timeout=10, **client_options)
    client.start()
    path = root + "/" + uuid.uuid4().hex
    try:
        client.create(path, b"secret", acl=(acl,), makepath=True)
        data, _ = client.get(path)
        assert data == b"secret", data
        acls, _ = client.get_acls(path)
        assert [(a.id.scheme, a.id.id, a.perms) for a in acls] == [("sasl", "jaasuser", 31)], acls
        expect_no_auth(plain, path, "an unauthenticated client")
    finally:
        client.delete(path)
        client.stop()
        client.close()
        plain.stop()
        plain.close()


def digest(username, password):
    return {"sasl_options": {"mechanism": "DIGEST-MD5", "username": username, "password": password}}


def legacy(username, password):
    return {"auth_data": [("sasl", "%s:%s" % (username, password))]}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", required=True)
    hosts = parser.parse_args().hosts
    root = "/kazoo-sasl-" + uuid.uuid4().hex[:8]

    check("legacy connect_sasl_auth", lambda: connect_sasl_auth(hosts, root, **legacy("jaasuser", "jaas_password")))
    check("legacy invalid_sasl_auth", lambda: expect_auth_failed(hosts, **legacy("baduser", "badpassword")))
    check("digest connect_sasl_auth", lambda: connect_sasl_auth(hosts, root, **digest("jaasuser", "jaas_password")))
    check("digest invalid_sasl_auth", lambda: expect_auth_failed(hosts, **digest("baduser", "badpassword")))
    check("digest wrong password", lambda: expect_auth_failed(hosts, **digest("jaasuser", "wrong")))

    cleanup = KazooClient(hosts=hosts, timeout=10)
    cleanup.start()
    cleanup.delete(root)
    cleanup.stop()
    cleanup.close()
    exit_status()


if __name__ == "__main__":
    main()
