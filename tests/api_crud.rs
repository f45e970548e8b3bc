//! create / create2 / delete / exists / getData / setData / getChildren / getChildren2 and the
//! movement of every Stat field. Validated against Apache ZooKeeper 3.8.0.
mod common;

use common::raw::{err, op, Conn, Enc};
use common::*;
use zk::{CreateMode, Error};
use zookeeper_client as zk;

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test]
async fn create_persistent_sets_every_stat_field() {
    let s = Server::start();
    let c = connect(s.addr()).await;
    let p = unique("crud-create");
    let before = now_ms();
    let (stat, seq) = c.create(&p, b"hello", &persistent()).await.unwrap();
    let after = now_ms();
    assert_eq!(seq.into_i64(), -1, "non-sequential create has no sequence");
    assert!(stat.czxid > 0);
    assert_eq!(stat.mzxid, stat.czxid, "mzxid == czxid on create");
    assert_eq!(stat.pzxid, stat.czxid, "pzxid == czxid on create");
    assert_eq!(stat.ctime, stat.mtime, "ctime == mtime on create");
    assert!(stat.ctime >= before - 5_000 && stat.ctime <= after + 5_000, "ctime is wall-clock ms");
    assert_eq!((stat.version, stat.cversion, stat.aversion), (0, 0, 0));
    assert_eq!(stat.ephemeral_owner, 0);
    assert_eq!(stat.data_length, 5);
    assert_eq!(stat.num_children, 0);

    // create2's stat is the stat every read returns.
    let (data, gstat) = c.get_data(&p).await.unwrap();
    assert_eq!(data, b"hello");
    assert_eq!(gstat, stat);
    assert_eq!(c.check_stat(&p).await.unwrap(), Some(stat));
    let (children, cstat) = c.get_children(&p).await.unwrap();
    assert!(children.is_empty());
    assert_eq!(cstat, stat);
    let (acl, astat) = c.get_acl(&p).await.unwrap();
    assert_eq!(acl, vec![zk::Acl::new(zk::Permission::ALL, zk::AuthId::anyone())]);
    assert_eq!(astat, stat);

    // Empty data: dataLength 0, getData returns an empty buffer.
    let (e, _) = c.create(&format!("{p}/empty"), b"", &persistent()).await.unwrap();
    assert_eq!(e.data_length, 0);
    assert_eq!(c.get_data(&format!("{p}/empty")).await.unwrap().0, b"");
}

#[tokio::test]
async fn create_ephemeral_owner_is_session_id() {
    let s = Server::start();
    let c = connect(s.addr()).await;
    let p = unique("crud-eph");
    c.create(&p, b"", &persistent()).await.unwrap();
    let (stat, _) = c.create(&format!("{p}/e"), b"x", &ephemeral()).await.unwrap();
    assert_eq!(stat.ephemeral_owner, c.session_id().0);
    let (stat, seq) = c.create(&format!("{p}/es-"), b"x", &mode(CreateMode::EphemeralSequential)).await.unwrap();
    assert_eq!(stat.ephemeral_owner, c.session_id().0);
    assert_eq!(seq.into_i64(), 1);
    // Another session sees the same owner.
    let c2 = connect(s.addr()).await;
    assert_eq!(c2.check_stat(&format!("{p}/e")).await.unwrap().unwrap().ephemeral_owner, c.session_id().0);
    assert_ne!(c2.session_id(), c.session_id());
}

#[tokio::test]
async fn create_errors() {
    let s = Server::start();
    let c = connect(s.addr()).await;
    let p = unique("crud-create-err");
    c.create(&p, b"", &persistent()).await.unwrap();
    assert_eq!(c.create(&p, b"", &persistent()).await.unwrap_err(), Error::NodeExists);
    assert_eq!(c.create(&p, b"", &ephemeral()).await.unwrap_err(), Error::NodeExists);
    assert_eq!(c.create(&format!("{p}/missing/child"), b"", &persistent()).await.unwrap_err(), Error::NoNode);
    assert_eq!(
        c.create(&format!("{p}/missing/s-"), b"", &mode(CreateMode::PersistentSequential)).await.unwrap_err(),
        Error::NoNode
    );
    // Ephemerals can't have children, whatever the child's mode.
    c.create(&format!("{p}/eph"), b"", &ephemeral()).await.unwrap();
    for m in [
        CreateMode::Persistent,
        CreateMode::Ephemeral,
        CreateMode::PersistentSequential,
        CreateMode::EphemeralSequential,
        CreateMode::Container,
    ] {
        assert_eq!(
            c.create(&format!("{p}/eph/c"), b"", &mode(m)).await.unwrap_err(),
            Error::NoChildrenForEphemerals,
            "child of ephemeral with mode {m:?}"
        );
    }
    // Root always exists.
    let mut r = Conn::connect(s.addr());
    assert_eq!(r.create("/", b"", 0).err, err::NODE_EXISTS, "create / is NodeExists");
}

#[tokio::test]
async fn sequential_suffix_counts_creates_not_deletes() {
    // ZooKeeper stores a per-parent create counter; the Stat's cversion it reports is
    // 2*counter - numChildren (= creates + deletes). The sequential suffix is the counter
    // before the create, %010d.
    let s = Server::start();
    let c = connect(s.addr()).await;
    let p = unique("crud-seq");
    let seqm = mode(CreateMode::PersistentSequential);
    c.create(&p, b"", &persistent()).await.unwrap();
    let cv = |st: zk::Stat| (st.cversion, st.num_children);

    let (_, s0) = c.create(&format!("{p}/s-"), b"", &seqm).await.unwrap();
    assert_eq!(s0.into_i64(), 0);
    assert_eq!(s0.to_string(), "0000000000");
    assert_eq!(cv(c.check_stat(&p).await.unwrap().unwrap()), (1, 1));
    c.create(&format!("{p}/a"), b"", &persistent()).await.unwrap();
    c.create(&format!("{p}/b"), b"", &persistent()).await.unwrap();
    assert_eq!(cv(c.check_stat(&p).await.unwrap().unwrap()), (3, 3));
    c.delete(&format!("{p}/a"), None).await.unwrap();
    assert_eq!(cv(c.check_stat(&p).await.unwrap().unwrap()), (4, 2), "delete bumps the reported cversion");
    c.delete(&format!("{p}/b"), None).await.unwrap();
    assert_eq!(cv(c.check_stat(&p).await.unwrap().unwrap()), (5, 1));
    // 3 creates so far -> next suffix 3, although the reported cversion is 5.
    let (_, s1) = c.create(&format!("{p}/s-"), b"", &seqm).await.unwrap();
    assert_eq!(s1.into_i64(), 3);
    assert_eq!(cv(c.check_stat(&p).await.unwrap().unwrap()), (6, 2));
    // A failed create does not count.
    assert_eq!(c.create(&format!("{p}/s-0000000000"), b"", &persistent()).await.unwrap_err(), Error::NodeExists);
    assert_eq!(cv(c.check_stat(&p).await.unwrap().unwrap()), (6, 2));
    // Ephemeral sequential shares the counter.
    let (_, s2) = c.create(&format!("{p}/e-"), b"", &mode(CreateMode::EphemeralSequential)).await.unwrap();
    assert_eq!(s2.into_i64(), 4);
    // A sequential path may end with '/': the name is just the suffix.
    let (_, s3) = c.create(&format!("{p}/"), b"", &seqm).await.unwrap();
    assert_eq!(s3.into_i64(), 5);
    // A create+delete inside a multi counts like standalone ops.
    let mut w = c.new_multi_writer();
    w.add_create(&format!("{p}/m"), b"", &persistent()).unwrap();
    w.add_delete(&format!("{p}/m"), None).unwrap();
    w.commit().await.unwrap();
    let (_, s4) = c.create(&format!("{p}/s-"), b"", &seqm).await.unwrap();
    assert_eq!(s4.into_i64(), 7);
    assert_eq!(
        sorted(c.list_children(&p).await.unwrap()),
        vec!["0000000005", "e-0000000004", "s-0000000000", "s-0000000003", "s-0000000007"]
    );
    let st = c.check_stat(&p).await.unwrap().unwrap();
    // 8 creates, 3 deletes.
    assert_eq!(cv(st), (11, 5));

    // Sequence suffix of a path whose last component is empty is validated after appending:
    // "/p/." is an invalid node name but "/p/.0000000008" is fine.
    let (_, s5) = c.create(&format!("{p}/."), b"", &seqm).await.unwrap();
    assert_eq!(s5.into_i64(), 8);
    assert!(c.check_stat(&format!("{p}/.0000000008")).await.unwrap().is_some());
}

#[tokio::test]
async fn child_create_and_delete_move_parent_stat() {
    let s = Server::start();
    let c = connect(s.addr()).await;
    let p = unique("crud-parent");
    let (p0, _) = c.create(&p, b"data", &persistent()).await.unwrap();

    let (child, _) = c.create(&format!("{p}/c1"), b"", &persistent()).await.unwrap();
    let p1 = c.check_stat(&p).await.unwrap().unwrap();
    assert_eq!(p1.pzxid, child.czxid, "pzxid = zxid of the last child create");
    assert_eq!(p1.cversion, p0.cversion + 1);
    assert_eq!(p1.num_children, 1);
    assert_eq!(
        (p1.czxid, p1.mzxid, p1.ctime, p1.mtime, p1.version, p1.aversion),
        (p0.czxid, p0.mzxid, p0.ctime, p0.mtime, p0.version, p0.aversion),
        "child ops do not touch the parent's data fields"
    );
    assert_eq!(p1.data_length, 4);

    // setData / setACL on the child do not move the parent.
    let cs = c.set_data(&format!("{p}/c1"), b"zz", None).await.unwrap();
    c.set_acl(&format!("{p}/c1"), &[zk::Acl::new(zk::Permission::ALL, zk::AuthId::anyone())], None).await.unwrap();
    assert_eq!(c.check_stat(&p).await.unwrap().unwrap(), p1);
    assert!(cs.mzxid > child.czxid);

    // Grandchildren do not move the grandparent.
    let (gc, _) = c.create(&format!("{p}/c1/g"), b"", &persistent()).await.unwrap();
    assert_eq!(c.check_stat(&p).await.unwrap().unwrap(), p1);
    let c1 = c.check_stat(&format!("{p}/c1")).await.unwrap().unwrap();
    assert_eq!(c1.pzxid, gc.czxid);
    c.delete(&format!("{p}/c1/g"), None).await.unwrap();

    // Delete: cversion +1, numChildren -1, pzxid = the delete's zxid (after the child's czxid,
    // before the next transaction's zxid).
    c.delete(&format!("{p}/c1"), None).await.unwrap();
    let p2 = c.check_stat(&p).await.unwrap().unwrap();
    let (next, _) = c.create(&format!("{p}-after"), b"", &persistent()).await.unwrap();
    assert_eq!(p2.cversion, p1.cversion + 1);
    assert_eq!(p2.num_children, 0);
    assert!(p2.pzxid > cs.mzxid && p2.pzxid < next.czxid, "pzxid moved to the delete's zxid");
    assert_eq!((p2.mzxid, p2.version, p2.mtime), (p0.mzxid, p0.version, p0.mtime));

    // An ephemeral child removed by its session's close also moves pzxid/cversion.
    let c2 = connect(s.addr()).await;
    let (e, _) = c2.create(&format!("{p}/e"), b"", &ephemeral()).await.unwrap();
    let p3 = c.check_stat(&p).await.unwrap().unwrap();
    assert_eq!((p3.pzxid, p3.cversion, p3.num_children), (e.czxid, p2.cversion + 1, 1));
    drop(c2);
    assert!(
        wait_for_async(std::time::Duration::from_secs(5), || async {
            c.check_stat(&format!("{p}/e")).await.unwrap().is_none()
        })
        .await,
        "ephemeral removed when its client closes"
    );
    let p4 = c.check_stat(&p).await.unwrap().unwrap();
    assert_eq!((p4.cversion, p4.num_children), (p3.cversion + 1, 0));
    assert!(p4.pzxid > p3.pzxid);
}

#[tokio::test]
async fn delete_versions_and_errors() {
    let s = Server::start();
    let c = connect(s.addr()).await;
    let p = unique("crud-delete");
    c.create(&p, b"", &persistent()).await.unwrap();
    assert_eq!(c.delete(&format!("{p}/nope"), None).await.unwrap_err(), Error::NoNode);
    assert_eq!(c.delete(&format!("{p}/nope"), Some(3)).await.unwrap_err(), Error::NoNode);

    c.create(&format!("{p}/c"), b"", &persistent()).await.unwrap();
    assert_eq!(c.delete(&p, None).await.unwrap_err(), Error::NotEmpty);
    // NotEmpty wins over a matching version; BadVersion is checked before NotEmpty.
    assert_eq!(c.delete(&p, Some(0)).await.unwrap_err(), Error::NotEmpty);
    assert_eq!(c.delete(&p, Some(7)).await.unwrap_err(), Error::BadVersion);

    let v = format!("{p}/v");
    c.create(&v, b"", &persistent()).await.unwrap();
    c.set_data(&v, b"1", Some(0)).await.unwrap();
    assert_eq!(c.delete(&v, Some(0)).await.unwrap_err(), Error::BadVersion);
    assert_eq!(c.delete(&v, Some(2)).await.unwrap_err(), Error::BadVersion);
    c.delete(&v, Some(1)).await.unwrap();
    assert_eq!(c.check_stat(&v).await.unwrap(), None);
    assert_eq!(c.get_data(&v).await.unwrap_err(), Error::NoNode);
    assert_eq!(c.delete(&v, Some(1)).await.unwrap_err(), Error::NoNode);

    // -1 matches any version.
    c.delete(&format!("{p}/c"), None).await.unwrap();
    c.delete(&p, Some(0)).await.unwrap();
    assert_eq!(c.check_stat(&p).await.unwrap(), None);
}

#[tokio::test]
async fn set_data_versions_and_stat() {
    let s = Server::start();
    let c = connect(s.addr()).await;
    let p = unique("crud-set");
    let (s0, _) = c.create(&p, b"a", &persistent()).await.unwrap();

    let s1 = c.set_data(&p, b"bbb", Some(0)).await.unwrap();
    assert_eq!(s1.version, 1);
    assert_eq!(s1.czxid, s0.czxid);
    assert_eq!(s1.ctime, s0.ctime);
    assert!(s1.mzxid > s0.mzxid);
    assert!(s1.mtime >= s0.mtime);
    assert_eq!(s1.pzxid, s0.pzxid, "setData does not move pzxid");
    assert_eq!((s1.cversion, s1.aversion, s1.num_children), (0, 0, 0));
    assert_eq!(s1.data_length, 3);
    assert_eq!(c.get_data(&p).await.unwrap(), (b"bbb".to_vec(), s1));

    // Wrong version: BadVersion, nothing changes.
    assert_eq!(c.set_data(&p, b"x", Some(0)).await.unwrap_err(), Error::BadVersion);
    assert_eq!(c.set_data(&p, b"x", Some(5)).await.unwrap_err(), Error::BadVersion);
    assert_eq!(c.get_data(&p).await.unwrap(), (b"bbb".to_vec(), s1));

    // Same data still bumps version and mzxid; -1 matches any version.
    let s2 = c.set_data(&p, b"bbb", None).await.unwrap();
    assert_eq!(s2.version, 2);
    assert!(s2.mzxid > s1.mzxid);
    // Empty data.
    let s3 = c.set_data(&p, b"", Some(2)).await.unwrap();
    assert_eq!((s3.version, s3.data_length), (3, 0));
    assert_eq!(c.get_data(&p).await.unwrap().0, b"");

    assert_eq!(c.set_data(&format!("{p}/nope"), b"", None).await.unwrap_err(), Error::NoNode);
    assert_eq!(c.set_data(&format!("{p}/nope"), b"", Some(1)).await.unwrap_err(), Error::NoNode);
}

#[tokio::test]
async fn exists_and_get_on_missing_nodes() {
    let s = Server::start();
    let c = connect(s.addr()).await;
    let p = unique("crud-missing");
    assert_eq!(c.check_stat(&p).await.unwrap(), None);
    assert_eq!(c.get_data(&p).await.unwrap_err(), Error::NoNode);
    assert_eq!(c.list_children(&p).await.unwrap_err(), Error::NoNode);
    assert_eq!(c.get_children(&p).await.unwrap_err(), Error::NoNode);
    assert_eq!(c.get_acl(&p).await.unwrap_err(), Error::NoNode);
    assert_eq!(
        c.set_acl(&p, &[zk::Acl::new(zk::Permission::ALL, zk::AuthId::anyone())], None).await.unwrap_err(),
        Error::NoNode
    );

    // Raw: error replies carry no body.
    let mut r = Conn::connect(s.addr());
    let rep = r.exists(&p, false);
    assert_eq!((rep.err, rep.body.len()), (err::NO_NODE, 0));
    let rep = r.get_data(&p, false);
    assert_eq!((rep.err, rep.body.len()), (err::NO_NODE, 0));
}

#[tokio::test]
async fn get_children_and_children2() {
    let s = Server::start();
    let c = connect(s.addr()).await;
    let p = unique("crud-children");
    c.create(&p, b"", &persistent()).await.unwrap();
    assert!(c.list_children(&p).await.unwrap().is_empty());
    for n in ["b", "a", "c"] {
        c.create(&format!("{p}/{n}"), b"", &persistent()).await.unwrap();
    }
    c.create(&format!("{p}/a/deep"), b"", &persistent()).await.unwrap();
    // Order is unspecified by ZooKeeper: compare sorted. Only direct children.
    assert_eq!(sorted(c.list_children(&p).await.unwrap()), vec!["a", "b", "c"]);
    let (children, stat) = c.get_children(&p).await.unwrap();
    assert_eq!(sorted(children), vec!["a", "b", "c"]);
    assert_eq!(stat, c.check_stat(&p).await.unwrap().unwrap());
    assert_eq!(stat.num_children, 3);
    // Names only, not paths.
    assert_eq!(c.list_children(&format!("{p}/a")).await.unwrap(), vec!["deep"]);

    // Raw getChildren (op 8) answers a bare string vector.
    let mut r = Conn::connect(s.addr());
    let rep = r.get_children(&p, false);
    assert_eq!(rep.err, 0);
    let mut d = rep.dec();
    let mut names = d.strs();
    names.sort();
    assert_eq!(names, vec!["a", "b", "c"]);
    assert_eq!(d.remaining(), 0, "getChildren reply has no stat");
    // getChildren2 (op 12) = vector + stat.
    let rep = r.request(op::GET_CHILDREN2, &Enc::new().str(&p).bool(false).bytes());
    let mut d = rep.dec();
    assert_eq!(d.strs().len(), 3);
    assert_eq!(d.stat().num_children, 3);
    assert_eq!(d.remaining(), 0);
}

#[tokio::test]
async fn root_and_system_nodes() {
    let s = Server::start();
    let c = connect(s.addr()).await;
    let root = c.check_stat("/").await.unwrap().expect("/ exists");
    assert_eq!((root.czxid, root.ctime, root.version, root.ephemeral_owner), (0, 0, 0, 0));
    assert!(root.num_children >= 1);
    assert!(c.list_children("/").await.unwrap().contains(&"zookeeper".to_string()));
    assert_eq!(c.get_acl("/").await.unwrap().0, vec![zk::Acl::new(zk::Permission::ALL, zk::AuthId::anyone())]);

    let zkstat = c.check_stat("/zookeeper").await.unwrap().expect("/zookeeper exists");
    assert_eq!(zkstat.czxid, 0);
    assert_eq!(zkstat.ephemeral_owner, 0);
    let kids = c.list_children("/zookeeper").await.unwrap();
    assert!(kids.contains(&"quota".to_string()) && kids.contains(&"config".to_string()), "{kids:?}");
    assert_eq!(c.get_acl("/zookeeper").await.unwrap().0, vec![zk::Acl::new(zk::Permission::ALL, zk::AuthId::anyone())]);

    // /zookeeper/quota: empty, all-zero stat, world:anyone:cdrwa.
    let (qdata, qstat) = c.get_data("/zookeeper/quota").await.unwrap();
    assert!(qdata.is_empty());
    assert_eq!((qstat.czxid, qstat.mzxid, qstat.version, qstat.aversion, qstat.data_length), (0, 0, 0, 0, 0));
    assert_eq!(
        c.get_acl("/zookeeper/quota").await.unwrap().0,
        vec![zk::Acl::new(zk::Permission::ALL, zk::AuthId::anyone())]
    );

    // /zookeeper/config: world:anyone:r, and aversion -1.
    let (cacl, cstat) = c.get_acl("/zookeeper/config").await.unwrap();
    assert_eq!(cacl, vec![zk::Acl::new(zk::Permission::READ, zk::AuthId::anyone())]);
    assert_eq!((cstat.czxid, cstat.mzxid, cstat.aversion, cstat.num_children), (0, 0, -1, 0));

    // Writes.
    assert_eq!(c.create("/zookeeper", b"", &persistent()).await.unwrap_err(), Error::NodeExists);
    for p in ["/zookeeper", "/zookeeper/config", "/zookeeper/quota"] {
        assert_eq!(c.delete(p, None).await.unwrap_err(), Error::BadArguments(&"server error"), "delete {p}");
    }
    assert_eq!(c.set_data("/zookeeper/config", b"x", None).await.unwrap_err(), Error::NoAuth);
    // /zookeeper is an ordinary world-writable node otherwise.
    let mine = format!("/zookeeper{}", unique("x"));
    c.create(&mine, b"", &persistent()).await.unwrap();
    c.delete(&mine, None).await.unwrap();
}

/// The crate validates paths itself, so these go through the raw client. ZooKeeper checks
/// the parent's existence before validating a create path, and reads do no validation at all.
#[test]
fn invalid_paths_rejected_by_server() {
    let s = Server::start();
    let mut r = Conn::connect(s.addr());
    let root = unique("crud-paths");
    assert_eq!(r.create(&root, b"", 0).err, 0);
    assert_eq!(r.create(&format!("{root}/a"), b"", 0).err, 0);
    let (bad, nonode) = (err::BAD_ARGUMENTS, err::NO_NODE);

    struct Case {
        path: String,
        create: i32,
        create1: i32,
        exists: i32,
        get: i32,
        set: i32,
        delete: i32,
        children: i32,
        get_acl: i32,
        set_acl: i32,
    }
    let case = |path: String, create: i32, exists: i32, set: i32, delete: i32| Case {
        path,
        create,
        create1: create,
        exists,
        get: exists,
        set,
        delete,
        children: exists,
        get_acl: nonode,
        set_acl: set,
    };
    let cases = vec![
        // "" is looked up as the root by reads (!), rejected by writes.
        Case { get_acl: 0, ..case(String::new(), bad, 0, bad, bad) },
        case("a".into(), bad, nonode, bad, bad),
        // Trailing slash with an existing parent: BadArguments on create.
        case(format!("{root}/a/"), bad, nonode, bad, nonode),
        // Parent "/root/a/" does not exist: NoNode wins on create; delete only looks nodes up.
        case(format!("{root}/a//b"), nonode, nonode, bad, nonode),
        case(format!("{root}/a/./b"), nonode, nonode, bad, nonode),
        case(format!("{root}/a/../b"), nonode, nonode, bad, nonode),
        case(format!("{root}/a/."), bad, nonode, bad, nonode),
        case(format!("{root}/a/.."), bad, nonode, bad, nonode),
        case(format!("{root}/a/\u{fff0}"), bad, nonode, bad, nonode),
        case(format!("{root}/a/x\u{e000}"), bad, nonode, bad, nonode),
        case(format!("{root}/a/x\u{1}"), bad, nonode, bad, nonode),
        // NUL is rejected by exists and delete too (but not getData/getChildren/getACL).
        Case { get: nonode, children: nonode, ..case(format!("{root}/a\u{0}b"), bad, bad, bad, bad) },
    ];
    for c in &cases {
        let p = &c.path;
        let got = (
            r.create(p, b"", 0).err,
            r.request(op::CREATE, &Enc::new().str(p).buf(b"").open_acl().i32(0).bytes()).err,
            r.exists(p, false).err,
            r.get_data(p, false).err,
            r.set_data(p, b"", -1).err,
            r.delete(p, -1).err,
            r.get_children(p, false).err,
            r.request(op::GET_ACL, &Enc::new().str(p).bytes()).err,
            r.request(op::SET_ACL, &Enc::new().str(p).open_acl().i32(-1).bytes()).err,
        );
        let want = (c.create, c.create1, c.exists, c.get, c.set, c.delete, c.children, c.get_acl, c.set_acl);
        assert_eq!(
            got, want,
            "path {p:?}: (create2, create, exists, getData, setData, delete, getChildren, getACL, setACL)"
        );
    }
    // Sequential create validates the final path: "/a/" + suffix is fine.
    let rep = r.create(&format!("{root}/a/"), b"", 2);
    assert_eq!(rep.err, 0);
    assert_eq!(rep.dec().str(), format!("{root}/a/0000000000"));
    let rep = r.create(&format!("{root}/a/."), b"", 2);
    assert_eq!(rep.err, 0);
    assert_eq!(rep.dec().str(), format!("{root}/a/.0000000001"));
    assert_eq!(r.create(&format!("{root}/a/\u{fff0}"), b"", 2).err, bad);
}

#[test]
fn create_opcode1_and_create2_replies() {
    let s = Server::start();
    let mut r = Conn::connect(s.addr());
    let root = unique("crud-op1");
    // create (op 1): the reply is the path only.
    let rep = r.request(op::CREATE, &Enc::new().str(&root).buf(b"v").open_acl().i32(0).bytes());
    assert_eq!(rep.err, 0);
    assert!(rep.zxid > 0);
    let mut d = rep.dec();
    assert_eq!(d.str(), root);
    assert_eq!(d.remaining(), 0);
    // create2 (op 15): path + stat; the reply header zxid is the node's czxid.
    let rep = r.create(&format!("{root}/c"), b"vv", 0);
    assert_eq!(rep.err, 0);
    let mut d = rep.dec();
    assert_eq!(d.str(), format!("{root}/c"));
    let st = d.stat();
    assert_eq!(d.remaining(), 0);
    assert_eq!(st.czxid, rep.zxid);
    assert_eq!(st.data_length, 2);
    // Flags outside 0..=6 (and 4 = container via create2 is allowed): 7 is BadArguments.
    let rep = r.request(op::CREATE2, &Enc::new().str(&format!("{root}/f")).buf(b"").open_acl().i32(7).bytes());
    assert_eq!(rep.err, err::BAD_ARGUMENTS);
    // Empty ACL list: InvalidACL.
    let rep = r.request(op::CREATE2, &Enc::new().str(&format!("{root}/f")).buf(b"").acls(&[]).i32(0).bytes());
    assert_eq!(rep.err, err::INVALID_ACL);
    // Unknown opcode: an Unimplemented reply, then the server closes the connection.
    let rep = r.request(999, &Enc::new().str("/").bytes());
    assert_eq!(rep.err, err::UNIMPLEMENTED);
    assert!(r.expect_closed(), "connection closed after an unknown opcode");
    // The session itself is still valid: other connections work.
    let mut r2 = Conn::connect(s.addr());
    assert_eq!(r2.exists(&root, false).err, 0);
}

#[test]
fn reply_zxids() {
    let s = Server::start();
    let mut r = Conn::connect(s.addr());
    let root = unique("crud-zxid");
    // A write's reply header carries the write's zxid; a later read carries the last
    // committed zxid (>= the write's).
    let w = r.create(&root, b"", 0);
    let st = w.dec().stat_after_path();
    assert_eq!(w.zxid, st.czxid);
    let s2 = r.set_data(&root, b"x", -1);
    let st2 = s2.dec().stat();
    assert_eq!(s2.zxid, st2.mzxid);
    let rd = r.exists(&root, false);
    assert!(rd.zxid >= s2.zxid);
    // A failed write also consumes a zxid in ZooKeeper: its header zxid is a fresh one.
    let f = r.create(&root, b"", 0);
    assert_eq!(f.err, err::NODE_EXISTS);
    assert!(f.zxid > s2.zxid, "failed create reply zxid {} > {}", f.zxid, s2.zxid);
}
