#!/usr/bin/env python3
"""kazoo with pure-sasl's GSSAPI mechanism (Kerberos, over the PyPI package
`kerberos`) against a server whose JAAS Server section has a
Krb5LoginModule with the zookeeper/localhost keytab: the GSSAPI case of
kazoo's test_sasl.py, plus the ACL checks that show which `sasl` id the
principal became.

The client's tickets come from the environment (KRB5_CONFIG, KRB5CCNAME):
the caller runs kinit first. Connect with host name "localhost", so that
pure-sasl asks for the service ticket zookeeper/localhost.

Usage:
  kazoo_gssapi.py --hosts localhost:PORT --principal client@TEST.REALM --id ID [--super]
      authenticates as PRINCIPAL; a node with ACL sasl:ID is readable,
      one with ACL sasl:nobody-else is not (unless --super: the id is
      zookeeper.superUser), and a client without SASL gets NoAuth.
  kazoo_gssapi.py --hosts localhost:PORT --principal P --fail
      the authentication fails: kazoo reaches AUTH_FAILED.
Prints "ok <name>" or "FAIL <name>: <reason>" per check; exits 1 if any
failed. Passes against Apache ZooKeeper 3.8 as against zoocore.
"""
import argparse
import uuid

from checks import check, exit_status, expect_auth_failed, expect_no_auth
from kazoo.client import KazooClient
from kazoo.security import make_acl


def gssapi(principal):
    return {"sasl_options": {"mechanism": "GSSAPI", "service": "zookeeper", "principal": principal}}


def authenticated(hosts, principal, expected_id, is_super):
    """test_connect_gssapi_auth, and the id the server gave the principal."""
    plain = KazooClient(hosts=hosts, timeout=10)
    plain.start()
    client = KazooClient(hosts=hosts, timeout=10, **gssapi(principal))
    client.start()
    root = "/kazoo-gssapi-" + uuid.uuid4().hex[:8]
    mine, other = root + "/mine", root + "/other"
    try:
        client.create(root, b"")
        client.create(mine, b"secret", acl=(make_acl("sasl", expected_id, all=True),))
        client.create(other, b"", acl=(make_acl("sasl", "nobody-else", all=True),))
        data, _ = client.get(mine)
        assert data == b"secret", data
        acls, _ = client.get_acls(mine)
        assert [(a.id.scheme, a.id.id, a.perms) for a in acls] == [("sasl", expected_id, 31)], acls
        expect_no_auth(plain, mine, "an unauthenticated client")
        if is_super:
            client.get(other)
        else:
            expect_no_auth(client, other, "%s (id %s)" % (principal, expected_id))
    finally:
        for path in (mine, other, root):
            try:
                client.delete(path)
            except Exception:  # noqa: BLE001 - best-effort cleanup; a super client may be needed
                pass
        client.stop()
        client.close()
        plain.stop()
        plain.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", required=True)
    parser.add_argument("--principal", required=True)
    parser.add_argument("--id")
    parser.add_argument("--super", action="store_true")
    parser.add_argument("--fail", action="store_true")
    arguments = parser.parse_args()
    if arguments.fail:
        check("gssapi invalid auth", lambda: expect_auth_failed(arguments.hosts, **gssapi(arguments.principal)))
    else:
        check(
            "gssapi connect auth",
            lambda: authenticated(arguments.hosts, arguments.principal, arguments.id, arguments.super),
        )
    exit_status()


if __name__ == "__main__":
    main()
