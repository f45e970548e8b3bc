#!/usr/bin/env python3
"""kazoo over TLS against a server's secureClientPort with
ssl.clientAuth=need and a PEM trust store holding the test CA (tests/tls.rs
makes the certificates: ca.pem; client.key/client.crt whose subject is
--subject; other.key/other.crt, another client of the same CA).

Usage: kazoo_tls.py --hosts HOST:PORT --certs DIR --subject DN
Prints "ok <name>" or "FAIL <name>: <reason>" per check; exits 1 if any failed.
Passes against Apache ZooKeeper 3.8 (tests/interop/README.md).
"""
import argparse
import os
import threading
import uuid

from checks import check, exit_status, expect_no_auth
from kazoo.client import KazooClient
from kazoo.security import make_acl


def client(args, identity="client", timeout=10):
    options = dict(use_ssl=True, verify_certs=True, ca=os.path.join(args.certs, "ca.pem"))
    if identity:
        options["certfile"] = os.path.join(args.certs, identity + ".crt")
        options["keyfile"] = os.path.join(args.certs, identity + ".key")
    return KazooClient(hosts=args.hosts, timeout=timeout, **options)


def create_get_watch(args):
    zk = client(args)
    zk.start(timeout=15)
    try:
        path = "/tls-" + uuid.uuid4().hex
        zk.create(path, b"one")
        data, stat = zk.get(path)
        assert data == b"one" and stat.version == 0, (data, stat)
        fired = threading.Event()
        seen = []

        def watcher(event):
            seen.append(event)
            fired.set()

        zk.get(path, watch=watcher)
        zk.set(path, b"two")
        assert fired.wait(10), "no watch event"
        assert seen[0].type == "CHANGED" and seen[0].path == path, seen
        data, _ = zk.get(path)
        assert data == b"two", data
        zk.delete(path)
    finally:
        zk.stop()
        zk.close()


def x509_acl(args):
    """A node with an x509 ACL for the client certificate's subject is
    readable by that client and NoAuth for another certificate."""
    owner = client(args)
    owner.start(timeout=15)
    stranger = client(args, "other")
    stranger.start(timeout=15)
    path = "/tls-acl-" + uuid.uuid4().hex
    try:
        acl = make_acl("x509", args.subject, all=True)
        owner.create(path, b"secret", acl=(acl,))
        data, _ = owner.get(path)
        assert data == b"secret", data
        acls, _ = owner.get_acls(path)
        assert [(a.id.scheme, a.id.id, a.perms) for a in acls] == [("x509", args.subject, 31)], acls
        expect_no_auth(stranger, path, "another certificate")
    finally:
        owner.delete(path)
        owner.stop()
        owner.close()
        stranger.stop()
        stranger.close()


def auth_acl_takes_the_x509_id(args):
    """The `auth` ACL scheme turns into the connection's x509 identity."""
    zk = client(args)
    zk.start(timeout=15)
    path = "/tls-auth-" + uuid.uuid4().hex
    try:
        zk.create(path, b"", acl=(make_acl("auth", "", all=True),))
        acls, _ = zk.get_acls(path)
        assert [(a.id.scheme, a.id.id) for a in acls] == [("x509", args.subject)], acls
    finally:
        zk.delete(path)
        zk.stop()
        zk.close()


def no_certificate_refused(args):
    zk = client(args, identity=None, timeout=3)
    try:
        zk.start(timeout=5)
    except Exception:  # noqa: BLE001 - kazoo raises a timeout once it gives up
        pass
    else:
        raise AssertionError("a client without a certificate got a session under ssl.clientAuth=need")
    finally:
        zk.stop()
        zk.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", required=True)
    parser.add_argument("--certs", required=True)
    parser.add_argument("--subject", required=True)
    args = parser.parse_args()
    check("create_get_watch", lambda: create_get_watch(args))
    check("x509_acl", lambda: x509_acl(args))
    check("auth_acl_takes_the_x509_id", lambda: auth_acl_takes_the_x509_id(args))
    check("no_certificate_refused", lambda: no_certificate_refused(args))
    exit_status()


if __name__ == "__main__":
    main()
