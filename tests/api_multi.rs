//! multi (op 14), check (op 13) inside multi, multiRead (op 22). Validated against ZooKeeper 3.8.0.
mod common;

use common::raw::{decode_multi, err, op, Conn, MultiBody, MultiResult};
use common::*;
use zk::{CheckWriteError, CreateMode, Error, MultiReadResult, MultiWriteError, MultiWriteResult};
use zookeeper_client as zk;

#[tokio::test]
async fn multi_success_results_and_effects() {
    let s = Server::start();
    let c = connect(s.addr()).await;
    let p = unique("multi-ok");
    c.create(&p, b"", &persistent()).await.unwrap();
    c.create(&format!("{p}/old"), b"", &persistent()).await.unwrap();

    let mut w = c.new_multi_writer();
    w.add_create(&format!("{p}/a"), b"A", &persistent()).unwrap();
    w.add_create(&format!("{p}/a/b"), b"B", &persistent()).unwrap(); // sees the earlier create
    w.add_check_version(&format!("{p}/a"), 0).unwrap();
    w.add_set_data(&format!("{p}/a"), b"A2", Some(0)).unwrap();
    w.add_check_version(&format!("{p}/a"), 1).unwrap(); // sees the earlier setData
    w.add_create(&format!("{p}/s-"), b"", &mode(CreateMode::PersistentSequential)).unwrap();
    w.add_create(&format!("{p}/e"), b"", &ephemeral()).unwrap();
    w.add_delete(&format!("{p}/old"), Some(0)).unwrap();
    let res = w.commit().await.unwrap();
    assert_eq!(res.len(), 8);
    match &res[0] {
        MultiWriteResult::Create { path, .. } => assert_eq!(path, &format!("{p}/a")),
        other => panic!("{other:?}"),
    }
    match &res[1] {
        MultiWriteResult::Create { path, .. } => assert_eq!(path, &format!("{p}/a/b")),
        other => panic!("{other:?}"),
    }
    assert_eq!(res[2], MultiWriteResult::Check);
    let set_stat = match &res[3] {
        MultiWriteResult::SetData { stat } => *stat,
        other => panic!("{other:?}"),
    };
    assert_eq!(set_stat.version, 1);
    assert_eq!(set_stat.num_children, 1, "stat reflects the child created earlier in the multi");
    assert_eq!(res[4], MultiWriteResult::Check);
    match &res[5] {
        MultiWriteResult::Create { path, .. } => assert_eq!(path, &format!("{p}/s-0000000002")),
        other => panic!("{other:?}"),
    }
    assert_eq!(res[7], MultiWriteResult::Delete);

    // Effects, and one zxid for the whole multi.
    let (data, a) = c.get_data(&format!("{p}/a")).await.unwrap();
    assert_eq!(data, b"A2");
    let b = c.check_stat(&format!("{p}/a/b")).await.unwrap().unwrap();
    let e = c.check_stat(&format!("{p}/e")).await.unwrap().unwrap();
    assert_eq!(a.czxid, a.mzxid, "create and setData in one multi share the zxid");
    assert_eq!(a.czxid, b.czxid);
    assert_eq!(a.czxid, e.czxid);
    assert_eq!(set_stat, a);
    assert_eq!(e.ephemeral_owner, c.session_id().0);
    assert_eq!(c.check_stat(&format!("{p}/old")).await.unwrap(), None);
    let parent = c.check_stat(&p).await.unwrap().unwrap();
    assert_eq!(parent.pzxid, a.czxid);
}

/// Adds the operations of one multi case.
type AddOps<'a> = dyn Fn(&mut zk::MultiWriter<'_>) + 'a;

#[tokio::test]
async fn multi_failure_is_all_or_nothing() {
    let s = Server::start();
    let c = connect(s.addr()).await;
    let p = unique("multi-fail");
    let (p0, _) = c.create(&p, b"", &persistent()).await.unwrap();

    let cases: Vec<(usize, Error, Box<AddOps<'_>>)> = vec![
        (
            1,
            Error::NoNode,
            Box::new(|w| {
                w.add_create(&format!("{p}/x"), b"", &persistent()).unwrap();
                w.add_check_version(&format!("{p}/nope"), 0).unwrap();
                w.add_set_data(&p, b"changed", None).unwrap();
            }),
        ),
        (
            2,
            Error::BadVersion,
            Box::new(|w| {
                w.add_create(&format!("{p}/x"), b"", &persistent()).unwrap();
                w.add_set_data(&p, b"changed", Some(0)).unwrap();
                w.add_check_version(&p, 0).unwrap(); // the setData made it version 1
            }),
        ),
        (
            0,
            Error::NodeExists,
            Box::new(|w| {
                w.add_create(&p, b"", &persistent()).unwrap();
                w.add_create(&format!("{p}/x"), b"", &persistent()).unwrap();
            }),
        ),
        (
            1,
            Error::NodeExists,
            Box::new(|w| {
                w.add_create(&format!("{p}/x"), b"", &persistent()).unwrap();
                w.add_create(&format!("{p}/x"), b"", &persistent()).unwrap();
            }),
        ),
        (
            2,
            Error::NotEmpty,
            Box::new(|w| {
                w.add_create(&format!("{p}/x"), b"", &persistent()).unwrap();
                w.add_create(&format!("{p}/x/y"), b"", &persistent()).unwrap();
                w.add_delete(&format!("{p}/x"), None).unwrap();
            }),
        ),
        (
            1,
            Error::NoChildrenForEphemerals,
            Box::new(|w| {
                w.add_create(&format!("{p}/x"), b"", &ephemeral()).unwrap();
                w.add_create(&format!("{p}/x/y"), b"", &persistent()).unwrap();
            }),
        ),
        (
            2,
            Error::NoNode,
            Box::new(|w| {
                w.add_create(&format!("{p}/x"), b"", &persistent()).unwrap();
                w.add_delete(&format!("{p}/x"), None).unwrap();
                w.add_set_data(&format!("{p}/x"), b"", None).unwrap();
            }),
        ),
    ];
    for (i, (index, error, build)) in cases.iter().enumerate() {
        let mut w = c.new_multi_writer();
        build(&mut w);
        let got = w.commit().await.unwrap_err();
        assert_eq!(got, MultiWriteError::OperationFailed { index: *index, source: error.clone() }, "case {i}");
        // Nothing applied.
        assert_eq!(c.check_stat(&format!("{p}/x")).await.unwrap(), None, "case {i}");
        let now = c.check_stat(&p).await.unwrap().unwrap();
        assert_eq!(
            (now.version, now.cversion, now.num_children, now.mzxid, now.pzxid),
            (p0.version, p0.cversion, p0.num_children, p0.mzxid, p0.pzxid),
            "case {i}"
        );
    }
}

#[tokio::test]
async fn check_writer_reports_check_failure_separately() {
    let s = Server::start();
    let c = connect(s.addr()).await;
    let p = unique("multi-checkwriter");
    c.create(&p, b"", &persistent()).await.unwrap();
    let mut w = c.new_check_writer(&p, Some(3)).unwrap();
    w.add_create(&format!("{p}/x"), b"", &persistent()).unwrap();
    assert_eq!(w.commit().await.unwrap_err(), CheckWriteError::CheckFailed { source: Error::BadVersion });
    let mut w = c.new_check_writer(&format!("{p}/nope"), None).unwrap();
    w.add_create(&format!("{p}/x"), b"", &persistent()).unwrap();
    assert_eq!(w.commit().await.unwrap_err(), CheckWriteError::CheckFailed { source: Error::NoNode });
    // check with version -1: only existence.
    let mut w = c.new_check_writer(&p, None).unwrap();
    w.add_create(&format!("{p}/x"), b"", &persistent()).unwrap();
    let res = w.commit().await.unwrap();
    assert_eq!(res.len(), 1);
    assert!(c.check_stat(&format!("{p}/x")).await.unwrap().is_some());
}

/// The exact per-op results of a failed multi: ops before the failing one get ErrorResult(0),
/// the failing op its error, the ops after it ErrorResult(-2 RuntimeInconsistency). The reply
/// header's err is 0.
#[test]
fn multi_failure_per_op_results_raw() {
    let s = Server::start();
    let mut r = Conn::connect(s.addr());
    let p = unique("multi-raw");
    assert_eq!(r.create(&p, b"", 0).err, 0);
    let body = MultiBody::new()
        .create2(&format!("{p}/m1"), b"", 0)
        .check(&format!("{p}/nope"), -1)
        .set_data(&p, b"x", -1)
        .delete(&p, 5)
        .finish();
    let rep = r.request(op::MULTI, &body);
    assert_eq!(rep.err, 0, "failed multi: header err is 0");
    assert_eq!(
        decode_multi(&rep.body),
        vec![
            MultiResult::Error(err::OK),
            MultiResult::Error(err::NO_NODE),
            MultiResult::Error(err::RUNTIME_INCONSISTENCY),
            MultiResult::Error(err::RUNTIME_INCONSISTENCY)
        ]
    );
    // Failing first op.
    let body = MultiBody::new().create2(&p, b"", 0).set_data(&p, b"x", 0).finish();
    let rep = r.request(op::MULTI, &body);
    assert_eq!(rep.err, 0);
    assert_eq!(
        decode_multi(&rep.body),
        vec![MultiResult::Error(err::NODE_EXISTS), MultiResult::Error(err::RUNTIME_INCONSISTENCY)]
    );
    // Failing last op (BadVersion on check).
    let body = MultiBody::new().set_data(&p, b"x", 0).check(&p, 0).finish();
    let rep = r.request(op::MULTI, &body);
    assert_eq!(decode_multi(&rep.body), vec![MultiResult::Error(err::OK), MultiResult::Error(err::BAD_VERSION)]);
    // Bad path inside a multi: the op's own error code.
    let body = MultiBody::new().create2(&format!("{p}/ok"), b"", 0).create2(&format!("{p}/bad/"), b"", 0).finish();
    let rep = r.request(op::MULTI, &body);
    assert_eq!(decode_multi(&rep.body), vec![MultiResult::Error(err::OK), MultiResult::Error(err::NO_NODE)]);
    let body = MultiBody::new().create2(&format!("{p}/ok"), b"", 0).create2(&format!("{p}/"), b"", 0).finish();
    let rep = r.request(op::MULTI, &body);
    assert_eq!(decode_multi(&rep.body), vec![MultiResult::Error(err::OK), MultiResult::Error(err::BAD_ARGUMENTS)]);
    // Nothing was applied by any of them.
    let rep = r.get_data(&p, false);
    let st = {
        let mut d = rep.dec();
        d.buf();
        d.stat()
    };
    assert_eq!((st.version, st.num_children), (0, 0));
}

#[test]
fn multi_success_per_op_results_raw() {
    let s = Server::start();
    let mut r = Conn::connect(s.addr());
    let p = unique("multi-raw-ok");
    assert_eq!(r.create(&p, b"", 0).err, 0);
    let body = MultiBody::new()
        .create(&format!("{p}/c1"), b"1", 0)
        .create2(&format!("{p}/c2"), b"22", 0)
        .check(&format!("{p}/c2"), 0)
        .set_data(&format!("{p}/c2"), b"x", 0)
        .delete(&format!("{p}/c1"), 0)
        .finish();
    let rep = r.request(op::MULTI, &body);
    assert_eq!(rep.err, 0);
    let res = decode_multi(&rep.body);
    assert_eq!(res.len(), 5);
    assert_eq!(res[0], MultiResult::Create(format!("{p}/c1")));
    // ZooKeeper 3.8 answers a create2 inside multi with a plain create result (ZOOKEEPER-4026);
    // later versions answer create2 + stat. Accept both.
    match &res[1] {
        MultiResult::Create(path) => assert_eq!(path, &format!("{p}/c2")),
        MultiResult::Create2(path, st) => {
            assert_eq!(path, &format!("{p}/c2"));
            assert_eq!(st.czxid, rep.zxid);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(res[2], MultiResult::Check);
    match &res[3] {
        MultiResult::SetData(st) => {
            assert_eq!(st.version, 1);
            assert_eq!(st.mzxid, rep.zxid, "every op of a multi gets the multi's zxid");
            assert_eq!(st.czxid, rep.zxid);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(res[4], MultiResult::Delete);

    // Empty multi: success, no results.
    let rep = r.request(op::MULTI, &MultiBody::new().finish());
    assert_eq!(rep.err, 0);
    assert!(decode_multi(&rep.body).is_empty());
    // A read op inside multi (or a write inside multiRead) is a MarshallingError.
    let rep = r.request(op::MULTI, &MultiBody::new().get_data(&p).finish());
    assert_eq!(rep.err, err::MARSHALLING_ERROR);
    let rep = r.request(op::MULTI_READ, &MultiBody::new().create2(&format!("{p}/z"), b"", 0).finish());
    assert_eq!(rep.err, err::MARSHALLING_ERROR);
    assert_eq!(r.exists(&format!("{p}/z"), false).err, err::NO_NODE);
}

#[tokio::test]
async fn multi_read_per_op_results() {
    let s = Server::start();
    let c = connect(s.addr()).await;
    let p = unique("multi-read");
    c.create(&p, b"root", &persistent()).await.unwrap();
    c.create(&format!("{p}/a"), b"A", &persistent()).await.unwrap();
    c.create(&format!("{p}/b"), b"", &persistent()).await.unwrap();

    let mut rd = c.new_multi_reader();
    rd.add_get_data(&format!("{p}/a")).unwrap();
    rd.add_get_children(&p).unwrap();
    rd.add_get_data(&format!("{p}/nope")).unwrap();
    rd.add_get_children(&format!("{p}/nope")).unwrap();
    rd.add_get_data(&p).unwrap();
    let res = rd.commit().await.unwrap();
    assert_eq!(res.len(), 5);
    let a_stat = c.check_stat(&format!("{p}/a")).await.unwrap().unwrap();
    match &res[0] {
        MultiReadResult::Data { data, stat } => {
            assert_eq!(data, b"A");
            assert_eq!(*stat, a_stat);
        }
        other => panic!("{other:?}"),
    }
    match &res[1] {
        MultiReadResult::Children { children } => {
            let mut ch = children.clone();
            ch.sort();
            assert_eq!(ch, vec!["a", "b"]);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(&res[2], MultiReadResult::Error { err: Error::NoNode }), "{:?}", res[2]);
    assert!(matches!(&res[3], MultiReadResult::Error { err: Error::NoNode }), "{:?}", res[3]);
    match &res[4] {
        MultiReadResult::Data { data, .. } => assert_eq!(data, b"root"),
        other => panic!("{other:?}"),
    }

    // Raw: the header err stays 0 and errors are per-op.
    let mut r = Conn::connect(s.addr());
    let rep = r.request(
        op::MULTI_READ,
        &MultiBody::new().get_data(&format!("{p}/nope")).get_children(&format!("{p}/b")).finish(),
    );
    assert_eq!(rep.err, 0);
    assert_eq!(decode_multi(&rep.body), vec![MultiResult::Error(err::NO_NODE), MultiResult::GetChildren(vec![])]);
    // Empty multiRead.
    let rep = r.request(op::MULTI_READ, &MultiBody::new().finish());
    assert_eq!(rep.err, 0);
    assert!(decode_multi(&rep.body).is_empty());
}

#[tokio::test]
async fn multi_triggers_watches_for_every_op() {
    let s = Server::start();
    let c = connect(s.addr()).await;
    let p = unique("multi-watch");
    c.create(&p, b"", &persistent()).await.unwrap();
    c.create(&format!("{p}/d"), b"", &persistent()).await.unwrap();
    let w = connect(s.addr()).await;
    let (_, _, data_w) = w.get_and_watch_data(&format!("{p}/d")).await.unwrap();
    let (_, child_w) = w.list_and_watch_children(&p).await.unwrap();
    let (_, exist_w) = w.check_and_watch_stat(&format!("{p}/n")).await.unwrap();

    let mut m = c.new_multi_writer();
    m.add_set_data(&format!("{p}/d"), b"x", None).unwrap();
    m.add_create(&format!("{p}/n"), b"", &persistent()).unwrap();
    m.commit().await.unwrap();

    let e = within(5, "data watch", data_w.changed()).await;
    assert_eq!((e.event_type, e.path.as_str()), (zk::EventType::NodeDataChanged, format!("{p}/d").as_str()));
    let e = within(5, "child watch", child_w.changed()).await;
    assert_eq!((e.event_type, e.path.as_str()), (zk::EventType::NodeChildrenChanged, p.as_str()));
    let e = within(5, "exist watch", exist_w.changed()).await;
    assert_eq!((e.event_type, e.path.as_str()), (zk::EventType::NodeCreated, format!("{p}/n").as_str()));

    // A failed multi triggers nothing (raw connection: a later reply would follow any event).
    let mut r = Conn::connect(s.addr());
    assert_eq!(r.get_data(&format!("{p}/d"), true).err, 0);
    let mut m = c.new_multi_writer();
    m.add_set_data(&format!("{p}/d"), b"y", None).unwrap();
    m.add_check_version(&format!("{p}/none"), 0).unwrap();
    assert!(m.commit().await.is_err());
    assert_eq!(r.exists(&p, false).err, 0);
    assert!(r.events.is_empty(), "no event from a failed multi: {:?}", r.events);
    c.set_data(&format!("{p}/d"), b"z", None).await.unwrap();
    assert_eq!(r.exists(&p, false).err, 0);
    assert_eq!(r.events.len(), 1);
    assert_eq!(r.events[0].event_type, 3);
}
