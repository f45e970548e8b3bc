//! sync, getAllChildrenNumber, containers, TTL nodes, the config node, reconfig, jute.maxbuffer.
//! Validated against ZooKeeper 3.8.0 (TTL tests once more with extendedTypesEnabled=true).
//!
//! External mode: set ZOOCORE_TEST_EXTENDED_TYPES=1 when the external server runs with
//! `extendedTypesEnabled=true` (the TTL tests pick the matching expectations).
mod common;

use std::time::Duration;

use common::raw::{err, op, Conn, Enc};
use common::*;
use zk::{CreateMode, Error};
use zookeeper_client as zk;

const EXTENDED_ENV: &str = "ZOOCORE_TEST_EXTENDED_TYPES";

fn external_extended_types() -> bool {
    std::env::var(EXTENDED_ENV).map(|v| v == "1" || v == "true").unwrap_or(false)
}

#[tokio::test]
async fn sync_any_path() {
    let s = Server::start();
    let c = connect(s.addr()).await;
    let p = unique("misc-sync");
    c.create(&p, b"", &persistent()).await.unwrap();
    c.sync(&p).await.unwrap();
    c.sync("/").await.unwrap();
    // sync does not check that the node exists.
    c.sync(&format!("{p}/missing")).await.unwrap();
    // Raw: the reply echoes the path.
    let mut r = Conn::connect(s.addr());
    let rep = r.request(op::SYNC, &Enc::new().str(&format!("{p}/missing")).bytes());
    assert_eq!(rep.err, 0);
    assert_eq!(rep.dec().str(), format!("{p}/missing"));
}

#[tokio::test]
async fn get_all_children_number() {
    let s = Server::start();
    let c = connect(s.addr()).await;
    let p = unique("misc-count");
    c.create(&p, b"", &persistent()).await.unwrap();
    assert_eq!(c.count_descendants_number(&p).await.unwrap(), 0);
    for n in ["a", "a/b", "a/b/c", "d", "e"] {
        c.create(&format!("{p}/{n}"), b"", &persistent()).await.unwrap();
    }
    c.create(&format!("{p}/d/eph"), b"", &ephemeral()).await.unwrap();
    // All descendants, the node itself excluded.
    assert_eq!(c.count_descendants_number(&p).await.unwrap(), 6);
    assert_eq!(c.count_descendants_number(&format!("{p}/a")).await.unwrap(), 2);
    assert_eq!(c.count_descendants_number(&format!("{p}/e")).await.unwrap(), 0);
    assert_eq!(c.count_descendants_number(&format!("{p}/missing")).await.unwrap_err(), Error::NoNode);
    assert!(c.count_descendants_number("/").await.unwrap() >= 8);
    // Prefix siblings ("/p" vs "/pX") are not descendants.
    c.create(&format!("{p}X"), b"", &persistent()).await.unwrap();
    assert_eq!(c.count_descendants_number(&p).await.unwrap(), 6);
}

#[tokio::test]
async fn container_nodes() {
    let s = Server::start();
    let c = connect(s.addr()).await;
    let p = unique("misc-container");
    let (st, seq) = c.create(&p, b"cdata", &mode(CreateMode::Container)).await.unwrap();
    assert_eq!(seq.into_i64(), -1);
    assert_eq!((st.version, st.cversion, st.aversion, st.num_children, st.data_length), (0, 0, 0, 0, 5));
    assert_eq!(st.czxid, st.mzxid);
    // Containers take any kind of child, and behave like persistent nodes otherwise.
    c.create(&format!("{p}/x"), b"", &persistent()).await.unwrap();
    c.create(&format!("{p}/e"), b"", &ephemeral()).await.unwrap();
    c.create(&format!("{p}/s-"), b"", &mode(CreateMode::PersistentSequential)).await.unwrap();
    c.create(&format!("{p}/x/c"), b"", &mode(CreateMode::Container)).await.unwrap();
    assert_eq!(c.get_data(&p).await.unwrap().0, b"cdata");
    assert_eq!(c.create(&p, b"", &mode(CreateMode::Container)).await.unwrap_err(), Error::NodeExists);
    assert_eq!(c.delete(&p, None).await.unwrap_err(), Error::NotEmpty);
    // A container can be created inside a multi.
    let mut w = c.new_multi_writer();
    w.add_create(&format!("{p}-m"), b"", &mode(CreateMode::Container)).unwrap();
    w.commit().await.unwrap();
    assert!(c.check_stat(&format!("{p}-m")).await.unwrap().is_some());
    // Explicit delete of an empty container works.
    c.delete(&format!("{p}-m"), None).await.unwrap();
    // Same stat shape whether read back or returned by create.
    let back = c.check_stat(&format!("{p}/x/c")).await.unwrap().unwrap();
    assert_eq!(back.ephemeral_owner, 0, "a container's ephemeralOwner reads 0");
    assert_eq!(st.ephemeral_owner, 0);
}

/// zoocore only: ZooKeeper's container sweep runs every 60 s by default, too slow to assert.
#[tokio::test]
async fn container_removed_after_last_child_goes() {
    if skip_if_external("container_removed_after_last_child_goes", "the real sweep runs every 60 s") {
        return;
    }
    let s = Server::start_with(&["znode.container.checkIntervalMs=1000"]);
    let c = connect(s.addr()).await;
    let p = unique("misc-container-gc");
    c.create(&p, b"", &persistent()).await.unwrap();
    c.create(&format!("{p}/used"), b"", &mode(CreateMode::Container)).await.unwrap();
    c.create(&format!("{p}/never"), b"", &mode(CreateMode::Container)).await.unwrap();
    c.create(&format!("{p}/used/kid"), b"", &persistent()).await.unwrap();
    c.delete(&format!("{p}/used/kid"), None).await.unwrap();
    let gone = wait_for_async(Duration::from_secs(10), || async {
        c.check_stat(&format!("{p}/used")).await.unwrap().is_none()
    })
    .await;
    assert!(gone, "empty container that had a child is removed within 10 s");
    // One that never had a child is kept.
    assert!(c.check_stat(&format!("{p}/never")).await.unwrap().is_some());
}

#[tokio::test]
async fn ttl_nodes_without_extended_types_are_unimplemented() {
    if Server::external() && external_extended_types() {
        eprintln!("SKIP ttl_nodes_without_extended_types_are_unimplemented: external server has extended types");
        return;
    }
    let s = Server::start();
    let c = connect(s.addr()).await;
    let p = unique("misc-ttl-off");
    let ttl = Duration::from_secs(5);
    assert_eq!(c.create(&p, b"", &persistent().with_ttl(ttl)).await.unwrap_err(), Error::Unimplemented);
    assert_eq!(
        c.create(&p, b"", &mode(CreateMode::PersistentSequential).with_ttl(ttl)).await.unwrap_err(),
        Error::Unimplemented
    );
    assert_eq!(c.check_stat(&p).await.unwrap(), None);
    // Raw createTTL (op 21): err -6 Unimplemented.
    let mut r = Conn::connect(s.addr());
    let rep = r.request(op::CREATE_TTL, &Enc::new().str(&p).buf(b"").open_acl().i32(5).i64(5000).bytes());
    assert_eq!(rep.err, err::UNIMPLEMENTED);
}

#[tokio::test]
async fn ttl_nodes_with_extended_types() {
    if Server::external() && !external_extended_types() {
        eprintln!("SKIP ttl_nodes_with_extended_types: set {EXTENDED_ENV}=1 if the external server has extendedTypesEnabled=true");
        return;
    }
    let s = Server::start_with(&["extendedTypesEnabled=true"]);
    let c = connect(s.addr()).await;
    let p = unique("misc-ttl-on");
    let (st, _) = c.create(&p, b"t", &persistent().with_ttl(Duration::from_millis(5_000))).await.unwrap();
    // ZooKeeper stores the TTL in the node's ephemeralOwner (0xFF top byte | ttl) but reports
    // ephemeralOwner 0 to clients for TTL and container nodes.
    assert_eq!(st.ephemeral_owner, 0);
    assert_eq!((st.version, st.cversion, st.num_children, st.data_length), (0, 0, 0, 1));
    assert_eq!(c.check_stat(&p).await.unwrap().unwrap(), st);
    assert_eq!(c.get_data(&p).await.unwrap().0, b"t");
    let (_, seq) = c
        .create(&format!("{p}/s-"), b"", &mode(CreateMode::PersistentSequential).with_ttl(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(seq.into_i64(), 0);
    c.create(&format!("{p}/plain"), b"", &persistent()).await.unwrap();

    // Raw: ttl out of range, or TTL flags with a non-TTL create, are BadArguments.
    let mut r = Conn::connect(s.addr());
    let ttl_req =
        |path: &str, flags: i32, ttl: i64| Enc::new().str(path).buf(b"").open_acl().i32(flags).i64(ttl).bytes();
    assert_eq!(r.request(op::CREATE_TTL, &ttl_req(&format!("{p}/z"), 5, 0)).err, err::BAD_ARGUMENTS, "ttl 0");
    assert_eq!(r.request(op::CREATE_TTL, &ttl_req(&format!("{p}/z"), 5, -1)).err, err::BAD_ARGUMENTS, "ttl -1");
    assert_eq!(
        r.request(op::CREATE_TTL, &ttl_req(&format!("{p}/z"), 5, 0x0100_0000_0000)).err,
        err::BAD_ARGUMENTS,
        "ttl > 2^40-1"
    );
    assert_eq!(
        r.request(op::CREATE_TTL, &ttl_req(&format!("{p}/z"), 0, 1000)).err,
        err::BAD_ARGUMENTS,
        "createTTL with persistent flags"
    );
    assert_eq!(
        r.request(op::CREATE_TTL, &ttl_req(&format!("{p}/z"), 1, 1000)).err,
        err::BAD_ARGUMENTS,
        "createTTL with ephemeral flags"
    );
    assert_eq!(r.create(&format!("{p}/z"), b"", 5).err, err::BAD_ARGUMENTS, "create2 with TTL flags");
    let rep = r.request(op::CREATE_TTL, &ttl_req(&format!("{p}/z"), 5, 0x00FF_FFFF_FFFF));
    assert_eq!(rep.err, 0, "max ttl");
    let st = rep.dec().stat_after_path();
    assert_eq!(st.ephemeral_owner, 0);
}

/// zoocore only: expiry of a TTL node (ZooKeeper's sweep runs every 60 s by default).
#[tokio::test]
async fn ttl_node_expires() {
    if skip_if_external("ttl_node_expires", "the real TTL sweep runs every 60 s") {
        return;
    }
    let s = Server::start_with(&["extendedTypesEnabled=true", "znode.container.checkIntervalMs=1000"]);
    let c = connect(s.addr()).await;
    let p = unique("misc-ttl-expire");
    c.create(&p, b"", &persistent().with_ttl(Duration::from_millis(500))).await.unwrap();
    c.create(&format!("{p}-kept"), b"", &persistent().with_ttl(Duration::from_secs(600))).await.unwrap();
    let gone = wait_for_async(Duration::from_secs(10), || async { c.check_stat(&p).await.unwrap().is_none() }).await;
    assert!(gone, "TTL node without children removed after its ttl");
    assert!(c.check_stat(&format!("{p}-kept")).await.unwrap().is_some());
}

#[tokio::test]
async fn config_node_and_reconfig() {
    let s = Server::start();
    let c = connect(s.addr()).await;
    // Standalone without dynamic config: /zookeeper/config is empty.
    let (data, stat) = c.get_config().await.unwrap();
    assert!(data.is_empty(), "{:?}", String::from_utf8_lossy(&data));
    assert_eq!((stat.czxid, stat.mzxid, stat.version, stat.aversion), (0, 0, 0, -1));
    let (_, _, _watcher) = c.get_and_watch_config().await.unwrap();
    // reconfig is disabled by default: ReconfigDisabled (-123), for every form.
    let err = c
        .update_ensemble(zk::EnsembleUpdate::New { ensemble: ["server.1=127.0.0.1:2888:3888;2181"].into_iter() }, None)
        .await
        .unwrap_err();
    assert_eq!(err, Error::ReconfigDisabled);
    let err = c
        .update_ensemble(
            zk::EnsembleUpdate::Incremental {
                joinings: ["server.2=127.0.0.1:2889:3889;2182"].into_iter(),
                leavings: ["3"].into_iter(),
            },
            Some(0),
        )
        .await
        .unwrap_err();
    assert_eq!(err, Error::ReconfigDisabled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_closes_the_connection() {
    let s = Server::start();
    let c = connect(s.addr()).await;
    let other = connect(s.addr()).await;
    let p = unique("misc-maxbuffer");
    c.create(&p, b"", &persistent()).await.unwrap();
    // Just under jute.maxbuffer (1 MiB - 1): fine.
    let big = vec![7u8; 1_000_000];
    c.set_data(&p, &big, None).await.unwrap();
    assert_eq!(other.get_data(&p).await.unwrap().0.len(), 1_000_000);

    // 1.1 MiB: the server drops the connection; the request fails with ConnectionLoss.
    let huge = vec![9u8; 1_100_000 + 53_760];
    let e = within(20, "oversized setData", c.set_data(&p, &huge, None)).await.unwrap_err();
    assert_eq!(e, Error::ConnectionLoss);
    // Nothing was written; other clients are unaffected.
    let (data, st) = other.get_data(&p).await.unwrap();
    assert_eq!((data.len(), st.version), (1_000_000, 1));
    other.set_data(&p, b"small", None).await.unwrap();
    // The session itself survives: the client reconnects and goes on.
    let got = std::cell::RefCell::new(None);
    let reconnected = wait_for_async(Duration::from_secs(15), || async {
        match within(15, "getData after the reconnect", c.get_data(&p)).await {
            Ok((d, _)) => *got.borrow_mut() = Some(d),
            Err(Error::ConnectionLoss) => {}
            Err(e) => panic!("{e:?}"),
        }
        got.borrow().is_some()
    })
    .await;
    assert!(reconnected, "the client did not reconnect within 15 s");
    assert_eq!(got.into_inner().as_deref(), Some(&b"small"[..]));

    // Raw: a frame length over the limit closes the connection without a reply.
    let mut r = Conn::connect(s.addr());
    let body = Enc::new().str(&p).buf(&huge).i32(-1).bytes();
    let _ = r.send(op::SET_DATA, &body);
    assert!(r.expect_closed());
}

#[test]
fn four_letter_ruok() {
    let s = Server::start();
    assert_eq!(s.four_letter("ruok"), "imok");
}
