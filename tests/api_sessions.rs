//! Sessions: timeout negotiation, close, expiry, resumption, passwords, getEphemerals, ping.
//! Validated against ZooKeeper 3.8.0 (tickTime=2000: min 4000 ms, max 40000 ms).
mod common;

use std::time::{Duration, Instant};

use common::raw::{err, op, Conn};
use common::*;
use zk::{CreateMode, EventType, SessionState};
use zookeeper_client as zk;

#[tokio::test]
async fn session_timeout_is_clamped_to_2_and_20_ticks() {
    let s = Server::start();
    for (asked, got) in [(1_000u64, 4_000u64), (4_000, 4_000), (10_000, 10_000), (40_000, 40_000), (100_000, 40_000)] {
        let c = connect_timeout(s.addr(), Duration::from_millis(asked)).await;
        assert_eq!(c.session_timeout(), Duration::from_millis(got), "asked {asked}");
    }
    // Raw: the ConnectResponse carries the negotiated value; the password is 16 bytes.
    for (asked, got) in [(0, 4_000), (1, 4_000), (5_555, 5_555), (i32::MAX, 40_000)] {
        let (_conn, resp) = Conn::handshake(s.addr(), asked, 0, &[0u8; 16], 0).unwrap();
        assert_eq!(resp.timeout, got, "asked {asked}");
        assert_ne!(resp.session_id, 0);
        assert_eq!(resp.passwd.len(), 16);
        assert_eq!(resp.protocol_version, 0);
        assert_eq!(resp.read_only, Some(false));
    }
}

#[tokio::test]
async fn session_timeout_bounds_from_config() {
    if skip_if_external("session_timeout_bounds_from_config", "needs minSessionTimeout/maxSessionTimeout") {
        return;
    }
    let s = Server::start_with(&["minSessionTimeout=3000", "maxSessionTimeout=5000"]);
    for (asked, got) in [(1_000u64, 3_000u64), (4_000, 4_000), (100_000, 5_000)] {
        let c = connect_timeout(s.addr(), Duration::from_millis(asked)).await;
        assert_eq!(c.session_timeout(), Duration::from_millis(got), "asked {asked}");
    }
}

#[tokio::test]
async fn session_ids_are_distinct() {
    let s = Server::start();
    let mut ids = Vec::new();
    for _ in 0..5 {
        let c = connect(s.addr()).await;
        assert_ne!(c.session_id().0, 0);
        ids.push(c.session_id().0);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5);
}

#[tokio::test]
async fn close_removes_ephemerals_and_fires_other_sessions_watches() {
    let s = Server::start();
    let a = connect(s.addr()).await;
    let b = connect(s.addr()).await;
    let p = unique("session-close");
    b.create(&p, b"", &persistent()).await.unwrap();
    a.create(&format!("{p}/e"), b"", &ephemeral()).await.unwrap();
    a.create(&format!("{p}/s-"), b"", &mode(CreateMode::EphemeralSequential)).await.unwrap();
    a.create(&format!("{p}/keep"), b"", &persistent()).await.unwrap();
    let (_, exists_w) = b.check_and_watch_stat(&format!("{p}/e")).await.unwrap();
    let (_, child_w) = b.list_and_watch_children(&p).await.unwrap();

    drop(a); // the crate sends closeSession when the last handle goes
    let e = within(5, "NodeDeleted", exists_w.changed()).await;
    assert_eq!((e.event_type, e.path), (EventType::NodeDeleted, format!("{p}/e")));
    let e = within(5, "NodeChildrenChanged", child_w.changed()).await;
    assert_eq!((e.event_type, e.path), (EventType::NodeChildrenChanged, p.clone()));
    assert_eq!(b.list_children(&p).await.unwrap(), vec!["keep"]);
}

#[test]
fn close_session_raw() {
    let s = Server::start();
    let mut a = Conn::connect(s.addr());
    let mut b = Conn::connect(s.addr());
    let p = unique("session-close-raw");
    assert_eq!(a.create(&p, b"", 1).err, 0);
    let (sid, pw) = (a.session_id, a.passwd.clone());
    let rep = a.close();
    assert_eq!(rep.err, 0);
    assert_eq!(rep.body.len(), 0);
    assert!(a.expect_closed(), "server closes the connection after closeSession");
    assert_eq!(b.exists(&p, false).err, err::NO_NODE, "ephemeral removed by the time close is answered");
    // A closed session can't be resumed.
    let (_c, resp) = Conn::handshake(s.addr(), 10_000, sid, &pw, 0).unwrap();
    assert_eq!(resp.session_id, 0);
}

/// Cut a session's connection (via a proxy that refuses reconnects) until the server expires
/// it: its ephemerals go, other sessions' watches fire, live idle sessions (pinging) survive,
/// and the expired session can't be resumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_removes_ephemerals_and_fires_watches() {
    let s = Server::start();
    let proxy = Proxy::start(s.addr()).await;
    let a = connect_timeout(proxy.addr(), Duration::from_millis(4_000)).await;
    assert_eq!(a.session_timeout(), Duration::from_millis(4_000));
    let idle = connect_timeout(s.addr(), Duration::from_millis(4_000)).await;
    let b = connect(s.addr()).await;
    let p = unique("session-expiry");
    b.create(&p, b"", &persistent()).await.unwrap();
    let (est, _) = a.create(&format!("{p}/a"), b"", &ephemeral()).await.unwrap();
    assert_eq!(est.ephemeral_owner, a.session_id().0);
    idle.create(&format!("{p}/idle"), b"", &ephemeral()).await.unwrap();
    let (_, gone_w) = b.check_and_watch_stat(&format!("{p}/a")).await.unwrap();
    let (_, _, own_w) = a.get_and_watch_data(&p).await.unwrap();
    let info = a.session().clone();
    let mut state = a.state_watcher();

    let cut = Instant::now();
    proxy.cut(true);
    let e = within(15, "NodeDeleted after expiry", gone_w.changed()).await;
    let elapsed = cut.elapsed();
    assert_eq!((e.event_type, e.path), (EventType::NodeDeleted, format!("{p}/a")));
    assert!(elapsed >= Duration::from_millis(3_000), "expired too early: {elapsed:?} (timeout 4 s)");
    assert!(elapsed <= Duration::from_millis(10_000), "expired too late: {elapsed:?}");

    // The idle session kept pinging and is alive with its ephemeral.
    assert!(idle.check_stat(&format!("{p}/idle")).await.unwrap().is_some());
    assert_eq!(b.list_children(&p).await.unwrap(), vec!["idle"]);

    // The expired client learns it (locally or from the server) and its watchers get the
    // terminal session event.
    proxy.resume();
    let mut st = state.state();
    while st != SessionState::Expired {
        st = within(15, "Expired state", state.changed()).await;
    }
    let e = within(5, "session event on watcher", own_w.changed()).await;
    assert_eq!((e.event_type, e.session_state), (EventType::Session, SessionState::Expired));
    assert_eq!(a.get_data(&p).await.unwrap_err(), zk::Error::SessionExpired);

    // Resuming the expired session is refused by the server.
    let err = within(15, "resume", zk::Client::connector().session(info).connect(s.addr())).await.unwrap_err();
    assert_eq!(err, zk::Error::SessionExpired);
}

#[tokio::test]
async fn resume_session_with_id_and_password() {
    let s = Server::start();
    let p = unique("session-resume");
    let a = within(
        10,
        "connect",
        zk::Client::connector().detached().session_timeout(Duration::from_secs(10)).connect(s.addr()),
    )
    .await
    .unwrap();
    let sid = a.session_id();
    a.create(&p, b"", &ephemeral()).await.unwrap();
    let info = a.into_session(); // detached: no closeSession

    // The timeout is negotiated again on every connect.
    let b = within(
        10,
        "resume",
        zk::Client::connector().session(info).session_timeout(Duration::from_secs(8)).connect(s.addr()),
    )
    .await
    .unwrap();
    assert_eq!(b.session_id(), sid);
    assert_eq!(b.session_timeout(), Duration::from_secs(8));
    let st = b.check_stat(&p).await.unwrap().expect("ephemeral survives the reconnect");
    assert_eq!(st.ephemeral_owner, sid.0);
    assert_eq!(b.list_ephemerals("/").await.unwrap(), vec![p.clone()]);
    b.delete(&p, None).await.unwrap();
}

#[test]
fn wrong_password_and_unknown_session_are_refused_raw() {
    let s = Server::start();
    let mut a = Conn::connect(s.addr());
    let p = unique("session-passwd");
    assert_eq!(a.create(&p, b"", 1).err, 0);
    let mut bad = a.passwd.clone();
    bad[0] ^= 0xff;
    // Refusal = a ConnectResponse with timeout 0, session id 0 and a 16-byte zero password,
    // then the server closes the connection.
    for (sid, pw) in [(a.session_id, bad.clone()), (a.session_id, vec![]), (0x0123_4567_89ab_cdef, vec![0u8; 16])] {
        let (mut conn, resp) = Conn::handshake(s.addr(), 10_000, sid, &pw, 0).unwrap();
        assert_eq!((resp.session_id, resp.timeout), (0, 0), "sid {sid:#x}");
        assert_eq!(resp.passwd, vec![0u8; 16]);
        assert!(conn.expect_closed());
    }
    // (Not asserted: ZooKeeper 3.8 closes the session's current connection as soon as a
    // ConnectRequest names its id, before checking the password, so `a` has been kicked here.
    // The session itself stays valid.)
    // Correct password: same session, on a new connection, with the newly negotiated timeout.
    let (mut b, resp) = Conn::handshake(s.addr(), 12_000, a.session_id, &a.passwd.clone(), 0).unwrap();
    assert_eq!(resp.session_id, a.session_id);
    assert_eq!(resp.timeout, 12_000);
    assert_eq!(resp.passwd, a.passwd);
    assert_eq!(b.exists(&p, false).err, 0);
    // A second correct resume moves the session again and the server closes the previous
    // connection.
    let (mut c, _) = Conn::handshake(s.addr(), 12_000, a.session_id, &a.passwd.clone(), 0).unwrap();
    assert!(b.expect_closed(), "old connection of a moved session is closed");
    assert_eq!(c.exists(&p, false).err, 0);
    let st = {
        let rep = c.exists(&p, false);
        rep.dec().stat()
    };
    assert_eq!(st.ephemeral_owner, resp.session_id);
}

#[test]
fn connect_with_future_zxid_is_refused_raw() {
    // A client that has seen a zxid the server hasn't: the server drops the connection
    // without a ConnectResponse.
    let s = Server::start();
    let res = Conn::handshake(s.addr(), 10_000, 0, &[0u8; 16], i64::MAX);
    assert!(res.is_err(), "expected the connection to be closed");
}

#[test]
fn ping_raw() {
    let s = Server::start();
    let mut r = Conn::connect(s.addr());
    r.send_xid(-2, op::PING, &[]).unwrap();
    let rep = r.read_any().unwrap();
    assert_eq!((rep.xid, rep.err, rep.body.len()), (-2, 0, 0));
}

#[tokio::test]
async fn get_ephemerals() {
    let s = Server::start();
    let c = connect(s.addr()).await;
    let other = connect(s.addr()).await;
    let p = unique("session-ephemerals");
    c.create(&p, b"", &persistent()).await.unwrap();
    c.create(&format!("{p}/x"), b"", &persistent()).await.unwrap();
    for e in ["ab", "abc", "x/y"] {
        c.create(&format!("{p}/{e}"), b"", &ephemeral()).await.unwrap();
    }
    other.create(&format!("{p}/other"), b"", &ephemeral()).await.unwrap();
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let all = sorted(c.list_ephemerals("/").await.unwrap());
    assert_eq!(all, vec![format!("{p}/ab"), format!("{p}/abc"), format!("{p}/x/y")]);
    assert_eq!(sorted(c.list_ephemerals(&p).await.unwrap()), all);
    // Plain string-prefix match, not path components: "/ab" also matches "/abc".
    assert_eq!(
        sorted(c.list_ephemerals(&format!("{p}/ab")).await.unwrap()),
        vec![format!("{p}/ab"), format!("{p}/abc")]
    );
    assert_eq!(c.list_ephemerals(&format!("{p}/x")).await.unwrap(), vec![format!("{p}/x/y")]);
    // No NoNode for a missing prefix.
    assert!(c.list_ephemerals(&format!("{p}/nope")).await.unwrap().is_empty());
    assert_eq!(other.list_ephemerals(&p).await.unwrap(), vec![format!("{p}/other")]);
    // A session without ephemerals.
    let none = connect(s.addr()).await;
    assert!(none.list_ephemerals("/").await.unwrap().is_empty());
}

/// zoocore only (needs Server::restart): committed data and live sessions survive a restart
/// on the same dataDir and port; the client reconnects on its own, and its watches are re-set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_and_sessions_survive_restart() {
    if skip_if_external("data_and_sessions_survive_restart", "cannot restart an external server") {
        return;
    }
    let mut s = Server::start();
    let c = connect_timeout(s.addr(), Duration::from_secs(20)).await;
    let sid = c.session_id();
    let p = unique("session-restart");
    c.create(&p, b"v1", &persistent()).await.unwrap();
    c.create(&format!("{p}/e"), b"", &ephemeral()).await.unwrap();
    let s1 = c.set_data(&p, b"v2", None).await.unwrap();
    let (_, _, watcher) = c.get_and_watch_data(&p).await.unwrap();
    let mut state = c.state_watcher();

    s.restart();
    let mut st = state.state();
    while st != SessionState::SyncConnected || c.state() != SessionState::SyncConnected {
        st = within(20, "reconnect after restart", state.changed()).await;
        assert!(!st.is_terminated(), "session lost across restart: {st:?}");
    }
    assert_eq!(c.session_id(), sid);
    let (data, st2) = c.get_data(&p).await.unwrap();
    assert_eq!(data, b"v2");
    assert_eq!(st2, s1);
    let e = c.check_stat(&format!("{p}/e")).await.unwrap().expect("ephemeral of a live session survives");
    assert_eq!(e.ephemeral_owner, sid.0);
    // New writes get zxids above everything before the restart.
    let s3 = c.set_data(&p, b"v3", None).await.unwrap();
    assert!(s3.mzxid > s1.mzxid);
    let ev = within(10, "watch re-set after restart", watcher.changed()).await;
    assert_eq!(ev.event_type, EventType::NodeDataChanged);
}
