//! ACLs: world, auth, digest, ip; NoAuth / InvalidACL; setACL versions; addauth; super;
//! whoAmI. Validated against ZooKeeper 3.8.0 started with
//! -Dzookeeper.DigestAuthenticationProvider.superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU=
mod common;

use common::raw::{err, op, Conn, Enc};
use common::*;
use zk::{Acl, Acls, AuthId, AuthUser, CreateMode, Error, Permission};
use zookeeper_client as zk;

const SUPER_DIGEST_CFG: &str = "DigestAuthenticationProvider.superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU=";

fn acl(perm: Permission, scheme: &str, id: &str) -> Acl {
    Acl::new(perm, AuthId::new(scheme, id))
}

fn with_acl(acls: &[Acl]) -> zk::CreateOptions<'_> {
    CreateMode::Persistent.with_acls(Acls::new(acls))
}

fn sorted_users(mut v: Vec<AuthUser>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = v.drain(..).map(|u| (u.scheme().to_string(), u.user().to_string())).collect();
    out.sort();
    out
}

#[test]
fn digest_id_matches_zookeeper() {
    // The known super digest for "super:test".
    assert_eq!(digest_id("super", "test"), "super:D/InIHSb7yEEbrWz8b9l71RjZJU=");
}

#[tokio::test]
async fn digest_acl_and_addauth() {
    let s = Server::start();
    let owner = connect(s.addr()).await;
    let stranger = connect(s.addr()).await;
    let p = unique("acl-digest");
    let id = digest_id("alice", "secret");
    let acls = [acl(Permission::ALL, "digest", &id)];
    // Creating with a digest ACL needs no auth.
    let (st, _) = stranger.create(&p, b"x", &with_acl(&acls)).await.unwrap();
    assert_eq!(stranger.get_acl(&p).await.unwrap_err(), Error::NoAuth, "getACL needs READ or ADMIN");

    // Without auth: everything but exists is NoAuth.
    assert_eq!(stranger.check_stat(&p).await.unwrap(), Some(st), "exists needs no permission");
    assert_eq!(stranger.get_data(&p).await.unwrap_err(), Error::NoAuth);
    assert_eq!(stranger.list_children(&p).await.unwrap_err(), Error::NoAuth);
    assert_eq!(stranger.get_children(&p).await.unwrap_err(), Error::NoAuth);
    assert_eq!(stranger.count_descendants_number(&p).await.unwrap_err(), Error::NoAuth);
    assert_eq!(stranger.set_data(&p, b"", None).await.unwrap_err(), Error::NoAuth);
    assert_eq!(stranger.set_acl(&p, &acls, None).await.unwrap_err(), Error::NoAuth);
    assert_eq!(stranger.create(&format!("{p}/c"), b"", &persistent()).await.unwrap_err(), Error::NoAuth);
    assert_eq!(stranger.get_and_watch_data(&p).await.unwrap_err(), Error::NoAuth);
    let mut rd = stranger.new_multi_reader();
    rd.add_get_data(&p).unwrap();
    rd.add_get_children(&p).unwrap();
    let res = rd.commit().await.unwrap();
    assert!(matches!(res[0], zk::MultiReadResult::Error { err: Error::NoAuth }), "{res:?}");
    assert!(matches!(res[1], zk::MultiReadResult::Error { err: Error::NoAuth }), "{res:?}");

    // A wrong password is accepted by addauth (digest never fails) but grants nothing.
    stranger.auth("digest".into(), b"alice:wrong".to_vec()).await.unwrap();
    assert_eq!(stranger.get_data(&p).await.unwrap_err(), Error::NoAuth);

    // The right one grants everything.
    owner.auth("digest".into(), b"alice:secret".to_vec()).await.unwrap();
    assert_eq!(owner.get_data(&p).await.unwrap().0, b"x");
    assert_eq!(owner.get_acl(&p).await.unwrap().0, acls.to_vec());
    owner.set_data(&p, b"y", Some(0)).await.unwrap();
    owner.create(&format!("{p}/c"), b"", &persistent()).await.unwrap();
    owner.delete(&format!("{p}/c"), None).await.unwrap();

    // Auth given at connect time works the same.
    let c = within(
        10,
        "connect",
        zk::Client::connector().auth("digest".into(), b"alice:secret".to_vec()).connect(s.addr()),
    )
    .await
    .unwrap();
    assert_eq!(c.get_data(&p).await.unwrap().0, b"y");
}

#[tokio::test]
async fn permission_bits() {
    let s = Server::start();
    let c = connect(s.addr()).await;
    let p = unique("acl-perms");
    c.create(&p, b"", &persistent()).await.unwrap();
    let anyone = |perm| [acl(perm, "world", "anyone")];

    // READ only.
    let r = format!("{p}/r");
    c.create(&r, b"d", &CreateMode::Persistent.with_acls(Acls::anyone_read())).await.unwrap();
    assert_eq!(c.get_acl(&r).await.unwrap().0, anyone(Permission::READ).to_vec());
    assert_eq!(c.get_data(&r).await.unwrap().0, b"d");
    assert!(c.list_children(&r).await.unwrap().is_empty());
    assert_eq!(c.set_data(&r, b"", None).await.unwrap_err(), Error::NoAuth);
    assert_eq!(c.create(&format!("{r}/c"), b"", &persistent()).await.unwrap_err(), Error::NoAuth);
    assert_eq!(c.set_acl(&r, &anyone(Permission::ALL), None).await.unwrap_err(), Error::NoAuth);

    // WRITE only: setData works, reads don't.
    let w = format!("{p}/w");
    c.create(&w, b"", &with_acl(&anyone(Permission::WRITE))).await.unwrap();
    c.set_data(&w, b"z", None).await.unwrap();
    assert_eq!(c.get_data(&w).await.unwrap_err(), Error::NoAuth);
    assert_eq!(c.list_children(&w).await.unwrap_err(), Error::NoAuth);
    assert_eq!(c.get_acl(&w).await.unwrap_err(), Error::NoAuth);

    // ADMIN only: getACL and setACL work.
    let a = format!("{p}/a");
    c.create(&a, b"", &with_acl(&anyone(Permission::ADMIN))).await.unwrap();
    assert_eq!(c.get_acl(&a).await.unwrap().0, anyone(Permission::ADMIN).to_vec());
    assert_eq!(c.get_data(&a).await.unwrap_err(), Error::NoAuth);
    c.set_acl(&a, &anyone(Permission::ALL), Some(0)).await.unwrap();
    c.get_data(&a).await.unwrap();

    // CREATE without DELETE on the parent: children can be created but not deleted, whatever
    // the child's own ACL.
    let cr = format!("{p}/cr");
    c.create(&cr, b"", &with_acl(&anyone(Permission::CREATE | Permission::READ))).await.unwrap();
    c.create(&format!("{cr}/kid"), b"", &persistent()).await.unwrap();
    assert_eq!(c.delete(&format!("{cr}/kid"), None).await.unwrap_err(), Error::NoAuth);
    // DELETE on the parent is enough to delete a child whose own ACL grants nothing.
    let de = format!("{p}/de");
    c.create(&de, b"", &with_acl(&anyone(Permission::DELETE | Permission::CREATE))).await.unwrap();
    c.create(&format!("{de}/kid"), b"", &with_acl(&anyone(Permission::NONE))).await.unwrap();
    c.delete(&format!("{de}/kid"), None).await.unwrap();
    // The node's own ACL does not protect it from deletion.
    c.delete(&r, None).await.unwrap();
}

#[tokio::test]
async fn set_acl_versions_and_aversion() {
    let s = Server::start();
    let c = connect(s.addr()).await;
    let p = unique("acl-version");
    let (s0, _) = c.create(&p, b"", &persistent()).await.unwrap();
    let read = [acl(Permission::READ | Permission::ADMIN, "world", "anyone")];
    let s1 = c.set_acl(&p, &read, Some(0)).await.unwrap();
    assert_eq!(s1.aversion, 1);
    assert_eq!((s1.version, s1.cversion), (0, 0), "setACL moves only aversion");
    assert_eq!(
        (s1.mzxid, s1.mtime, s1.pzxid),
        (s0.mzxid, s0.mtime, s0.pzxid),
        "setACL does not move mzxid/mtime/pzxid"
    );
    assert_eq!(c.set_acl(&p, &read, Some(0)).await.unwrap_err(), Error::BadVersion);
    assert_eq!(c.set_acl(&p, &read, Some(5)).await.unwrap_err(), Error::BadVersion);
    let s2 = c.set_acl(&p, &read, None).await.unwrap(); // same ACL still bumps aversion
    assert_eq!(s2.aversion, 2);
    let (got, st) = c.get_acl(&p).await.unwrap();
    assert_eq!(got, read.to_vec());
    assert_eq!(st, s2);
    assert_eq!(c.check_stat(&p).await.unwrap().unwrap(), s2);
    // setACL with an invalid ACL.
    assert_eq!(c.set_acl(&p, &[acl(Permission::ALL, "nosuch", "x")], None).await.unwrap_err(), Error::InvalidAcl);
    assert_eq!(c.set_acl(&p, &[], None).await.unwrap_err(), Error::InvalidAcl);
}

#[tokio::test]
async fn invalid_acls() {
    let s = Server::start();
    let c = connect(s.addr()).await;
    let p = unique("acl-invalid");
    c.create(&p, b"", &persistent()).await.unwrap();
    for (scheme, id) in [
        ("nosuch", "x"),
        ("digest", "nocolon"),
        ("digest", "a:b:c"),
        ("ip", "999.1.1.1"),
        ("ip", "127.0.0.0/33"),
        ("world", "someone"),
        ("super", "x"),
    ] {
        let acls = [acl(Permission::ALL, scheme, id)];
        assert_eq!(
            c.create(&format!("{p}/n"), b"", &with_acl(&acls)).await.unwrap_err(),
            Error::InvalidAcl,
            "{scheme}:{id}"
        );
    }
    // "auth" without any authenticated identity on the session: InvalidACL.
    assert_eq!(
        c.create(&format!("{p}/n"), b"", &CreateMode::Persistent.with_acls(Acls::creator_all())).await.unwrap_err(),
        Error::InvalidAcl
    );
    // Raw: an empty ACL list is InvalidACL (the crate refuses it client-side).
    let mut r = Conn::connect(s.addr());
    let rep = r.request(op::CREATE2, &Enc::new().str(&format!("{p}/n")).buf(b"").acls(&[]).i32(0).bytes());
    assert_eq!(rep.err, err::INVALID_ACL);
    assert_eq!(c.check_stat(&format!("{p}/n")).await.unwrap(), None);
}

#[tokio::test]
async fn auth_scheme_acl_expands_to_session_identities() {
    let s = Server::start();
    let c = connect(s.addr()).await;
    c.auth("digest".into(), b"bob:pw".to_vec()).await.unwrap();
    let p = unique("acl-auth");
    c.create(&p, b"", &CreateMode::Persistent.with_acls(Acls::creator_all())).await.unwrap();
    // auth:"" becomes the session's digest identity (the ip identity is not used).
    assert_eq!(c.get_acl(&p).await.unwrap().0, vec![acl(Permission::ALL, "digest", &digest_id("bob", "pw"))]);
    let other = connect(s.addr()).await;
    assert_eq!(other.get_data(&p).await.unwrap_err(), Error::NoAuth);
    other.auth("digest".into(), b"bob:pw".to_vec()).await.unwrap();
    other.get_data(&p).await.unwrap();
}

#[tokio::test]
async fn ip_acls() {
    let s = Server::start();
    let c = connect(s.addr()).await;
    let p = unique("acl-ip");
    c.create(&p, b"", &persistent()).await.unwrap();
    for (id, ok) in
        [("127.0.0.1", true), ("127.0.0.0/8", true), ("127.0.0.1/32", true), ("10.1.2.3", false), ("10.0.0.0/8", false)]
    {
        let n = format!("{p}/{}", id.replace('/', "_"));
        let acls = [acl(Permission::READ, "ip", id)];
        c.create(&n, b"", &with_acl(&acls)).await.unwrap();
        assert_eq!(c.get_acl(&n).await.is_ok(), ok, "getACL {id}");
        assert_eq!(c.get_data(&n).await.is_ok(), ok, "getData {id}");
        if !ok {
            assert_eq!(c.get_data(&n).await.unwrap_err(), Error::NoAuth);
        }
    }
    // addauth ip is accepted.
    c.auth("ip".into(), b"127.0.0.1".to_vec()).await.unwrap();
}

#[tokio::test]
async fn who_am_i() {
    let s = Server::start();
    let c = connect(s.addr()).await;
    assert_eq!(sorted_users(c.list_auth_users().await.unwrap()), vec![("ip".into(), "127.0.0.1".into())]);
    c.auth("digest".into(), b"carol:pw".to_vec()).await.unwrap();
    assert_eq!(
        sorted_users(c.list_auth_users().await.unwrap()),
        vec![("digest".to_string(), "carol".to_string()), ("ip".into(), "127.0.0.1".into())]
    );
    // Several digest identities accumulate; a repeated one is not duplicated.
    c.auth("digest".into(), b"dave:pw".to_vec()).await.unwrap();
    c.auth("digest".into(), b"carol:pw".to_vec()).await.unwrap();
    assert_eq!(
        sorted_users(c.list_auth_users().await.unwrap()),
        vec![
            ("digest".to_string(), "carol".to_string()),
            ("digest".into(), "dave".into()),
            ("ip".into(), "127.0.0.1".into())
        ]
    );
}

#[tokio::test]
async fn addauth_unknown_scheme_fails_the_session() {
    let s = Server::start();
    let c = connect(s.addr()).await;
    assert_eq!(c.auth("nosuch".into(), b"x".to_vec()).await.unwrap_err(), Error::AuthFailed);
    assert_eq!(c.state(), zk::SessionState::AuthFailed);
    assert_eq!(c.get_data("/").await.unwrap_err(), Error::AuthFailed);
    // "world" is not an auth provider either.
    let c = connect(s.addr()).await;
    assert_eq!(c.auth("world".into(), b"anyone".to_vec()).await.unwrap_err(), Error::AuthFailed);
}

#[test]
fn addauth_unknown_scheme_raw() {
    // On the wire: auth (op 100, xid -4) with an unknown scheme is answered with xid -4,
    // err -115 AuthFailed, then the connection is closed.
    let s = Server::start();
    let mut r = Conn::connect(s.addr());
    r.send_xid(-4, op::AUTH, &Enc::new().i32(0).str("nosuch").buf(b"x").bytes()).unwrap();
    let rep = r.read_any().unwrap();
    assert_eq!((rep.xid, rep.err), (-4, err::AUTH_FAILED));
    assert!(r.expect_closed());
    // A good one is answered with xid -4 and err 0.
    let mut r = Conn::connect(s.addr());
    r.send_xid(-4, op::AUTH, &Enc::new().i32(0).str("digest").buf(b"u:p").bytes()).unwrap();
    let rep = r.read_any().unwrap();
    assert_eq!((rep.xid, rep.err, rep.body.len()), (-4, 0, 0));
}

#[tokio::test]
async fn super_user_bypasses_acls() {
    // zkref runs with the super digest as a JVM property; zoocore gets it as a config line.
    let s = Server::start_with(&[SUPER_DIGEST_CFG]);
    let c = connect(s.addr()).await;
    let p = unique("acl-super");
    let locked = [acl(Permission::READ, "digest", &digest_id("nobody", "x"))];
    c.create(&p, b"secret", &with_acl(&locked)).await.unwrap();
    assert_eq!(c.get_data(&p).await.unwrap_err(), Error::NoAuth);

    let sup = connect(s.addr()).await;
    sup.auth("digest".into(), b"super:test".to_vec()).await.unwrap();
    assert_eq!(sup.get_data(&p).await.unwrap().0, b"secret");
    sup.set_data(&p, b"mine", None).await.unwrap();
    sup.create(&format!("{p}/kid"), b"", &persistent()).await.unwrap();
    sup.set_acl(&p, &[acl(Permission::ALL, "world", "anyone")], None).await.unwrap();
    assert_eq!(c.get_data(&p).await.unwrap().0, b"mine");
    let users = sorted_users(sup.list_auth_users().await.unwrap());
    assert_eq!(
        users,
        vec![
            ("digest".to_string(), "super".to_string()),
            ("ip".into(), "127.0.0.1".into()),
            ("super".into(), "".into())
        ]
    );
    // A wrong super password is just another digest identity.
    let bad = connect(s.addr()).await;
    bad.auth("digest".into(), b"super:wrong".to_vec()).await.unwrap();
    let locked2 = format!("{p}-2");
    c.create(&locked2, b"", &with_acl(&locked)).await.unwrap();
    assert_eq!(bad.get_data(&locked2).await.unwrap_err(), Error::NoAuth);
}
