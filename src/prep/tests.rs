use super::*;
use crate::proto::codes::op;
use crate::proto::Acl;
use crate::proto::OpResult;
use crate::tree::Txn;

const SESSION: i64 = 0x100;

fn preparer() -> Preparer {
    let mut preparer = Preparer::new(
        Tree::new(),
        PrepSettings { extended_types_enabled: true, reconfig_enabled: false, enforce_quota: false },
    );
    preparer.create_session(SESSION, 4000, Preparer::password(&[9; 16], SESSION), 1).unwrap();
    preparer
}

fn context(auth: &[Id]) -> WriteContext<'_> {
    WriteContext { session_id: SESSION, xid: 1, auth, time_ms: 50 }
}

fn create(path: &str, flags: i32) -> Request {
    Request::Create(CreateRequest {
        opcode: op::CREATE2,
        path: path.into(),
        data: Some(b"v".to_vec()),
        acl: Acl::open_unsafe(),
        flags,
        ttl_ms: -1,
    })
}

fn error_of(prepared: Prepared) -> ErrorCode {
    match prepared {
        Prepared::Reply { err, .. } | Prepared::Txn { err, .. } => err,
    }
}

#[test]
fn sequential_names_come_from_parent_cversion() {
    let mut preparer = preparer();
    let ctx = context(&[]);
    preparer.prepare(&create("/q", 0), &ctx);
    let mut names = Vec::new();
    for _ in 0..3 {
        match preparer.prepare(&create("/q/n-", 2), &ctx) {
            Prepared::Txn { response: Response::PathStat(path, _), .. } => names.push(path),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(names, ["/q/n-0000000000", "/q/n-0000000001", "/q/n-0000000002"]);
    // A delete does not move cversion, so the next number continues.
    preparer.prepare(&Request::Delete { path: "/q/n-0000000002".into(), version: -1 }, &ctx);
    match preparer.prepare(&create("/q/n-", 2), &ctx) {
        Prepared::Txn { response: Response::PathStat(path, _), .. } => assert_eq!(path, "/q/n-0000000003"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn error_codes_follow_zookeeper_order() {
    let mut preparer = preparer();
    let ctx = context(&[]);
    assert_eq!(error_of(preparer.prepare(&create("/a/b", 0), &ctx)), ErrorCode::NoNode);
    assert_eq!(error_of(preparer.prepare(&create("a", 0), &ctx)), ErrorCode::BadArguments);
    // The parent is looked up before the whole path is validated.
    assert_eq!(error_of(preparer.prepare(&create("/a/", 0), &ctx)), ErrorCode::NoNode);
    assert_eq!(error_of(preparer.prepare(&create("/a", 9), &ctx)), ErrorCode::BadArguments);
    assert_eq!(error_of(preparer.prepare(&create("/a", 0), &ctx)), ErrorCode::Ok);
    assert_eq!(error_of(preparer.prepare(&create("/a/", 0), &ctx)), ErrorCode::BadArguments);
    assert_eq!(error_of(preparer.prepare(&create("/a", 0), &ctx)), ErrorCode::NodeExists);
    assert_eq!(error_of(preparer.prepare(&create("/e", 1), &ctx)), ErrorCode::Ok);
    assert_eq!(error_of(preparer.prepare(&create("/e/c", 0), &ctx)), ErrorCode::NoChildrenForEphemerals);
    assert_eq!(error_of(preparer.prepare(&create("/a/c", 0), &ctx)), ErrorCode::Ok);
    let delete = |path: &str, version| Request::Delete { path: path.into(), version };
    assert_eq!(error_of(preparer.prepare(&delete("/a", -1), &ctx)), ErrorCode::NotEmpty);
    assert_eq!(error_of(preparer.prepare(&delete("/a/c", 4), &ctx)), ErrorCode::BadVersion);
    assert_eq!(error_of(preparer.prepare(&delete("/zookeeper", -1), &ctx)), ErrorCode::BadArguments);
    assert_eq!(error_of(preparer.prepare(&delete("/nope", -1), &ctx)), ErrorCode::NoNode);
    let set = Request::SetData { path: "/zookeeper/config".into(), data: None, version: -1 };
    assert_eq!(error_of(preparer.prepare(&set, &ctx)), ErrorCode::NoAuth);
}

#[test]
fn ttl_needs_extended_types_and_a_valid_ttl() {
    let mut disabled = Preparer::new(Tree::new(), PrepSettings::default());
    disabled.create_session(SESSION, 4000, [0; 16], 1).unwrap();
    let ttl = |ttl_ms| {
        Request::Create(CreateRequest {
            opcode: op::CREATE_TTL,
            path: "/t".into(),
            data: None,
            acl: Acl::open_unsafe(),
            flags: 5,
            ttl_ms,
        })
    };
    assert_eq!(error_of(disabled.prepare(&ttl(100), &context(&[]))), ErrorCode::Unimplemented);
    let mut enabled = preparer();
    assert_eq!(error_of(enabled.prepare(&ttl(0), &context(&[]))), ErrorCode::BadArguments);
    assert_eq!(error_of(enabled.prepare(&ttl(100), &context(&[]))), ErrorCode::Ok);
    assert_eq!(enabled.speculative().get("/t").unwrap().ttl_ms(), Some(100));
}

#[test]
fn failed_multi_changes_nothing_and_reports_per_op() {
    let mut preparer = preparer();
    let ctx = context(&[]);
    let zxid_before = preparer.last_zxid();
    let multi = Request::Multi(vec![
        MultiOp::Create(CreateRequest {
            opcode: op::CREATE,
            path: "/m".into(),
            data: None,
            acl: Acl::open_unsafe(),
            flags: 0,
            ttl_ms: -1,
        }),
        MultiOp::Check { path: "/m".into(), version: 3 },
        MultiOp::Delete { path: "/m".into(), version: -1 },
    ]);
    match preparer.prepare(&multi, &ctx) {
        Prepared::Txn { err, txn: Txn::Multi(errors), response: Response::Multi(results), .. } => {
            assert_eq!(err, ErrorCode::Ok);
            // Logged as ZooKeeper's MultiTxn of ErrorTxns, so any server can answer it.
            assert_eq!(errors, vec![Txn::Error { code: 0 }, Txn::Error { code: -103 }, Txn::Error { code: -2 }]);
            assert_eq!(results, vec![OpResult::Error(0), OpResult::Error(-103), OpResult::Error(-2)]);
        }
        other => panic!("{other:?}"),
    }
    assert!(preparer.speculative().get("/m").is_none());
    assert_eq!(preparer.last_zxid(), zxid_before + 1, "a failed multi takes a zxid, as in ZooKeeper");
}

#[test]
fn successful_multi_is_one_zxid_and_later_ops_see_earlier_ones() {
    let mut preparer = preparer();
    let ctx = context(&[]);
    let multi = Request::Multi(vec![
        MultiOp::Create(CreateRequest {
            opcode: op::CREATE2,
            path: "/m".into(),
            data: None,
            acl: Acl::open_unsafe(),
            flags: 0,
            ttl_ms: -1,
        }),
        MultiOp::SetData { path: "/m".into(), data: Some(b"x".to_vec()), version: 0 },
        MultiOp::Check { path: "/m".into(), version: 1 },
    ]);
    match preparer.prepare(&multi, &ctx) {
        Prepared::Txn { header, response: Response::Multi(results), .. } => {
            assert_eq!(header.zxid, preparer.last_zxid());
            assert!(matches!(&results[0], OpResult::Create2(path, stat) if path == "/m" && stat.version == 0));
            assert!(matches!(&results[1], OpResult::SetData(stat) if stat.version == 1));
            assert_eq!(results[2], OpResult::Check);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn acl_auth_scheme_and_digest_permissions() {
    let mut preparer = preparer();
    let user = vec![Id::new("ip", "127.0.0.1"), Id::new("digest", &acl::digest("u:p"))];
    let request = Request::Create(CreateRequest {
        opcode: op::CREATE,
        path: "/secret".into(),
        data: None,
        acl: vec![Acl::new(perms::ALL, "auth", "")],
        flags: 0,
        ttl_ms: -1,
    });
    assert_eq!(error_of(preparer.prepare(&request, &context(&user[..1]))), ErrorCode::InvalidAcl);
    assert_eq!(error_of(preparer.prepare(&request, &context(&user))), ErrorCode::Ok);
    let set = Request::SetData { path: "/secret".into(), data: None, version: -1 };
    assert_eq!(error_of(preparer.prepare(&set, &context(&user[..1]))), ErrorCode::NoAuth);
    assert_eq!(error_of(preparer.prepare(&set, &context(&user))), ErrorCode::Ok);
    let expired = WriteContext { session_id: 0x999, xid: 1, auth: &[], time_ms: 1 };
    assert_eq!(error_of(preparer.prepare(&set, &expired)), ErrorCode::SessionExpired);
}
