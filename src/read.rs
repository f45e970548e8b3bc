//! The read path: answering getData, exists, getChildren, getACL and the
//! other reads from one published tree version, on the shard that owns the
//! connection. Nothing here blocks or locks; a read sees exactly one
//! version, and says which watch (if any) the shard must register.
//!
//! As in ZooKeeper, reads do not validate paths: a path that cannot exist
//! is simply not found, and "" names the root (ZooKeeper keys its root by
//! ""). Only exists rejects a NUL, with BadArguments.

use std::sync::Arc;

use crate::acl;
use crate::proto::codes::event;
use crate::proto::codes::perms;
use crate::proto::{ClientInfo, ErrorCode, Id, MultiOp, OpResult, Request, Response, SetWatches};
use crate::tree::{Path, Tree};
use crate::watch::{Table, WatchMode};

/// A watch the read asks for, registered by the shard after it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchRegistration {
    pub table: Table,
    pub path: Path,
    pub mode: WatchMode,
}

#[derive(Debug)]
pub struct ReadReply {
    pub err: ErrorCode,
    pub response: Response,
    pub watch: Option<WatchRegistration>,
}

impl ReadReply {
    fn ok(response: Response) -> Self {
        ReadReply { err: ErrorCode::Ok, response, watch: None }
    }

    fn error(err: ErrorCode) -> Self {
        ReadReply { err, response: Response::Empty, watch: None }
    }
}

fn standard_watch(table: Table, path: &str) -> Option<WatchRegistration> {
    Some(WatchRegistration { table, path: Arc::from(path), mode: WatchMode::Standard })
}

/// Answers a read request. `session_id` and `auth` are the asking
/// connection's.
pub fn serve(tree: &Tree, request: &Request, session_id: i64, auth: &[Id]) -> ReadReply {
    match request {
        Request::Exists { path, watch } => {
            if path.contains('\0') {
                return ReadReply::error(ErrorCode::BadArguments);
            }
            let path = root_alias(path);
            // ZooKeeper registers an exists watch whether or not the node is there.
            let registration = if *watch { standard_watch(Table::Data, path) } else { None };
            match tree.get(path) {
                Some(node) => ReadReply { watch: registration, ..ReadReply::ok(Response::Stat(node.stat())) },
                None => ReadReply { watch: registration, ..ReadReply::error(ErrorCode::NoNode) },
            }
        }
        Request::GetData { path, watch } => read_node(tree, path, auth, perms::READ, |node| {
            let registration = if *watch { standard_watch(Table::Data, path) } else { None };
            ReadReply { watch: registration, ..ReadReply::ok(Response::Data(node.data_buffer(), node.stat())) }
        }),
        Request::GetChildren { path, watch } | Request::GetChildren2 { path, watch } => {
            let with_stat = matches!(request, Request::GetChildren2 { .. });
            read_node(tree, path, auth, perms::READ, |node| {
                let children: Vec<Arc<str>> = tree.children(node.path()).into_iter().map(Arc::from).collect();
                let response =
                    if with_stat { Response::Children2(children, node.stat()) } else { Response::Children(children) };
                let registration = if *watch { standard_watch(Table::Child, path) } else { None };
                ReadReply { watch: registration, ..ReadReply::ok(response) }
            })
        }
        Request::GetAcl { path } => {
            read_node(tree, path, auth, perms::READ | perms::ADMIN, |node| {
                // Without ADMIN, digest ids are shown as "user:x" (ZOOKEEPER-1392).
                let acl = if acl::check(node.acl(), auth, perms::ADMIN) {
                    node.acl().to_vec()
                } else {
                    node.acl()
                        .iter()
                        .map(|entry| {
                            let mut entry = entry.clone();
                            if entry.id.scheme == "digest" {
                                let user = entry.id.id.split(':').next().unwrap_or("").to_string();
                                entry.id.id = format!("{user}:x");
                            }
                            entry
                        })
                        .collect()
                };
                ReadReply::ok(Response::Acl(acl, node.stat()))
            })
        }
        Request::GetAllChildrenNumber { path } => read_node(tree, path, auth, perms::READ, |_| {
            ReadReply::ok(Response::Number(tree.descendant_count(root_alias(path)) as i32))
        }),
        Request::GetEphemerals { prefix } => {
            let prefix = prefix.trim();
            let mut paths: Vec<String> = tree
                .ephemerals_of(session_id)
                .filter(|path| prefix.is_empty() || prefix == "/" || path.starts_with(prefix))
                .map(|path| path.to_string())
                .collect();
            paths.sort();
            ReadReply::ok(Response::Paths(paths))
        }
        Request::WhoAmI => ReadReply::ok(Response::WhoAmI(
            auth.iter().map(|id| ClientInfo { auth_scheme: id.scheme.clone(), user: acl::user_name(id) }).collect(),
        )),
        Request::MultiRead(ops) => {
            let results = ops
                .iter()
                .map(|operation| match operation {
                    MultiOp::GetData { path } => {
                        let reply =
                            serve(tree, &Request::GetData { path: path.clone(), watch: false }, session_id, auth);
                        match reply.response {
                            Response::Data(data, stat) if reply.err == ErrorCode::Ok => OpResult::GetData(data, stat),
                            _ => OpResult::Error(reply.err.code()),
                        }
                    }
                    MultiOp::GetChildren { path } => {
                        let request = Request::GetChildren { path: path.clone(), watch: false };
                        let reply = serve(tree, &request, session_id, auth);
                        match reply.response {
                            Response::Children(children) if reply.err == ErrorCode::Ok => {
                                OpResult::GetChildren(children)
                            }
                            _ => OpResult::Error(reply.err.code()),
                        }
                    }
                    _ => OpResult::Error(ErrorCode::BadArguments.code()),
                })
                .collect();
            ReadReply::ok(Response::Multi(results))
        }
        _ => ReadReply::error(ErrorCode::Unimplemented),
    }
}

/// ZooKeeper's root is stored under "", so reads of "" find it.
fn root_alias(path: &str) -> &str {
    if path.is_empty() {
        "/"
    } else {
        path
    }
}

/// Looks a node up and checks a permission before `answer` runs.
fn read_node(
    tree: &Tree,
    path: &str,
    auth: &[Id],
    permission: i32,
    answer: impl FnOnce(&crate::tree::Node) -> ReadReply,
) -> ReadReply {
    let Some(node) = tree.get(root_alias(path)) else {
        return ReadReply::error(ErrorCode::NoNode);
    };
    if !acl::check(node.acl(), auth, permission) {
        return ReadReply::error(ErrorCode::NoAuth);
    }
    answer(node)
}

/// What setWatches asks of the shard: events for changes the client missed
/// since `relative_zxid`, and the watches to register for the rest
/// (DataTree.setWatches).
#[derive(Debug, Default)]
pub struct WatchResync {
    pub events: Vec<(i32, Path)>,
    pub registrations: Vec<WatchRegistration>,
}

pub fn resync_watches(tree: &Tree, watches: &SetWatches) -> WatchResync {
    let mut resync = WatchResync::default();
    let register = |resync: &mut WatchResync, table, path: &str, mode| {
        resync.registrations.push(WatchRegistration { table, path: Arc::from(path), mode })
    };
    for path in &watches.data {
        match tree.get(path) {
            None => resync.events.push((event::NODE_DELETED, Arc::from(path.as_str()))),
            Some(node) if node.mzxid() > watches.relative_zxid => {
                resync.events.push((event::NODE_DATA_CHANGED, Arc::from(path.as_str())))
            }
            Some(_) => register(&mut resync, Table::Data, path, WatchMode::Standard),
        }
    }
    for path in &watches.exist {
        match tree.get(path) {
            Some(_) => resync.events.push((event::NODE_CREATED, Arc::from(path.as_str()))),
            None => register(&mut resync, Table::Data, path, WatchMode::Standard),
        }
    }
    for path in &watches.child {
        match tree.get(path) {
            None => resync.events.push((event::NODE_DELETED, Arc::from(path.as_str()))),
            Some(node) if node.pzxid() > watches.relative_zxid => {
                resync.events.push((event::NODE_CHILDREN_CHANGED, Arc::from(path.as_str())))
            }
            Some(_) => register(&mut resync, Table::Child, path, WatchMode::Standard),
        }
    }
    for path in &watches.persistent {
        register(&mut resync, Table::Data, path, WatchMode::Persistent);
        register(&mut resync, Table::Child, path, WatchMode::Persistent);
    }
    for path in &watches.persistent_recursive {
        register(&mut resync, Table::Data, path, WatchMode::PersistentRecursive);
    }
    resync
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Acl;
    use crate::tree::{Txn, TxnHeader};

    fn tree_with(paths: &[(&str, Vec<Acl>)]) -> Tree {
        let mut tree = Tree::new();
        for (index, (path, acl)) in paths.iter().enumerate() {
            let header = TxnHeader { zxid: index as i64 + 1, time_ms: 0, session_id: 0, cxid: 0 };
            tree.apply(
                &header,
                &Txn::Create {
                    path: Arc::from(*path),
                    data: Some(Arc::from(&b"d"[..])),
                    acl: Arc::from(acl.clone()),
                    ephemeral_owner: 0,
                },
            );
        }
        tree
    }

    #[test]
    fn exists_registers_a_watch_even_without_the_node() {
        let tree = Tree::new();
        let reply = serve(&tree, &Request::Exists { path: "/x".into(), watch: true }, 1, &[]);
        assert_eq!(reply.err, ErrorCode::NoNode);
        assert_eq!(reply.watch.unwrap().table, Table::Data);
        let reply = serve(&tree, &Request::GetData { path: "/x".into(), watch: true }, 1, &[]);
        assert_eq!(reply.err, ErrorCode::NoNode);
        assert!(reply.watch.is_none());
    }

    #[test]
    fn reads_check_acls_and_redact_digests() {
        let digest = acl::digest("u:p");
        let tree = tree_with(&[(
            "/s",
            vec![Acl::new(perms::READ, "digest", &digest), Acl::new(perms::READ, "world", "anyone")],
        )]);
        let reply = serve(&tree, &Request::GetAcl { path: "/s".into() }, 1, &[]);
        match reply.response {
            Response::Acl(acl, _) => assert_eq!(acl[0].id.id, "u:x"),
            other => panic!("{other:?}"),
        }
        let locked = tree_with(&[("/l", vec![Acl::new(perms::READ, "digest", &digest)])]);
        let denied = serve(&locked, &Request::GetData { path: "/l".into(), watch: false }, 1, &[]);
        assert_eq!(denied.err, ErrorCode::NoAuth);
        let allowed =
            serve(&locked, &Request::GetData { path: "/l".into(), watch: false }, 1, &[Id::new("digest", &digest)]);
        assert_eq!(allowed.err, ErrorCode::Ok);
    }

    #[test]
    fn multi_read_reports_errors_per_op() {
        let tree = tree_with(&[("/a", Acl::open_unsafe())]);
        let reply = serve(
            &tree,
            &Request::MultiRead(vec![
                MultiOp::GetData { path: "/a".into() },
                MultiOp::GetChildren { path: "/b".into() },
            ]),
            1,
            &[],
        );
        match reply.response {
            Response::Multi(results) => {
                assert!(matches!(results[0], OpResult::GetData(..)));
                assert_eq!(results[1], OpResult::Error(ErrorCode::NoNode.code()));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn resync_reports_missed_changes() {
        let tree = tree_with(&[("/a", Acl::open_unsafe()), ("/b", Acl::open_unsafe())]);
        let watches = SetWatches {
            relative_zxid: 1,
            data: vec!["/a".into(), "/b".into(), "/gone".into()],
            exist: vec!["/a".into(), "/later".into()],
            child: vec!["/".into()],
            ..SetWatches::default()
        };
        let resync = resync_watches(&tree, &watches);
        let events: Vec<(i32, &str)> = resync.events.iter().map(|(kind, path)| (*kind, &**path)).collect();
        assert_eq!(
            events,
            vec![
                (event::NODE_DATA_CHANGED, "/b"),
                (event::NODE_DELETED, "/gone"),
                (event::NODE_CREATED, "/a"),
                (event::NODE_CHILDREN_CHANGED, "/"),
            ]
        );
        assert_eq!(resync.registrations.len(), 2);
    }
}
