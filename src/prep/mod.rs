//! Prep: turns a client's write request into a deterministic transaction, or
//! into the error ZooKeeper would answer, against the newest state including
//! every change prepared but not yet committed (ZooKeeper's
//! PrepRequestProcessor with its outstanding change records).
//!
//! The outstanding changes are kept as a speculative tree: each prepared
//! transaction is applied to it at once, with the same `Tree::apply` the
//! commit uses, so the next request sees it. Prep runs on the leader alone;
//! every server applies the committed transactions to its own committed
//! tree and answers its own clients from that (`crate::reply`), so the
//! speculative tree is never published and is thrown away when the leader
//! changes (`crate::node`). The checks run in ZooKeeper's order, because the order decides
//! which error a request with several faults gets.

mod path;

pub use path::validate_path;

use std::sync::Arc;

use sha1::{Digest, Sha1};

use crate::acl;
use crate::proto::codes::{ephemeral_owner, op, perms};
use crate::proto::{CreateMode, CreateRequest, ErrorCode, Id, MultiOp, Request, Response};
use crate::reply;
use crate::tree::{self, Path, Tree, Txn, TxnHeader};

/// Settings prep needs from the configuration.
#[derive(Debug, Clone, Default)]
pub struct PrepSettings {
    pub extended_types_enabled: bool,
    pub reconfig_enabled: bool,
    /// `zookeeper.enforceQuota`: refuse writes past a hard quota limit.
    pub enforce_quota: bool,
}

/// Who is asking, and the leader's clock.
#[derive(Debug, Clone, Copy)]
pub struct WriteContext<'a> {
    pub session_id: i64,
    /// The client's xid for the request, logged as the transaction's cxid so
    /// that whichever server holds the connection can match its reply.
    pub xid: i32,
    pub auth: &'a [Id],
    pub time_ms: i64,
}

/// The cxid of transactions the server makes on its own behalf (session
/// expiry, container deletion): no client request carries it, so no reply
/// is ever matched to them.
pub const INTERNAL_CXID: i32 = i32::MIN;

/// The result of preparing one request.
#[derive(Debug)]
pub enum Prepared {
    /// A transaction to log; the reply is sent once it commits. A failed
    /// write is logged too, as `Txn::Error`, so it takes a zxid as it does in
    /// ZooKeeper.
    Txn { header: TxnHeader, txn: Txn, err: ErrorCode, response: Response },
    /// Nothing to log (sync); the reply is sent once everything prepared
    /// before it commits, which keeps per-session order.
    Reply { err: ErrorCode, response: Response },
}

pub struct Preparer {
    speculative: Tree,
    next_zxid: i64,
    settings: PrepSettings,
}

impl Preparer {
    /// A preparer whose speculative state starts as `tree`.
    pub fn new(tree: Tree, settings: PrepSettings) -> Self {
        let next_zxid = tree.last_zxid() + 1;
        Preparer { speculative: tree, next_zxid, settings }
    }

    /// ZooKeeper's session id layout: the server id in the top byte, then
    /// milliseconds since the epoch shifted so ids from successive starts do
    /// not collide.
    pub fn session_id_seed(server_id: u8, now_ms: i64) -> i64 {
        let time_part = ((now_ms as u64) << 24) >> 8;
        (time_part | ((server_id as u64) << 56)) as i64
    }

    /// The newest state, including everything prepared.
    pub fn speculative(&self) -> &Tree {
        &self.speculative
    }

    /// Starts the speculative state over from `committed`, which must hold
    /// everything prepared (its last zxid is the speculative one's). Both
    /// trees applied the same transactions, but each built its own nodes:
    /// without this the leader would keep two copies of every znode it
    /// ever wrote. Sharing the committed tree's nodes costs an `Arc` clone.
    pub fn rebase(&mut self, committed: &Tree) {
        assert_eq!(committed.last_zxid(), self.speculative.last_zxid(), "rebase onto a tree that lacks prepared work");
        self.speculative = committed.clone();
    }

    /// Sets the zxid the next transaction gets: the replica's next log index.
    pub fn set_next_zxid(&mut self, zxid: i64) {
        self.next_zxid = zxid;
    }

    fn apply_speculative(&mut self, header: &TxnHeader, txn: &Txn) -> tree::Applied {
        // Watches fire from the committed tree, on every server; the
        // speculative tree's triggers are not needed.
        self.speculative.apply(header, txn)
    }

    pub fn last_zxid(&self) -> i64 {
        self.next_zxid - 1
    }

    fn next_header(&mut self, context: &WriteContext<'_>) -> TxnHeader {
        let header = TxnHeader {
            zxid: self.next_zxid,
            time_ms: context.time_ms,
            session_id: context.session_id,
            cxid: context.xid,
        };
        self.next_zxid += 1;
        header
    }

    /// A session's password: keyed by a server's secret, so only the server
    /// that made the session could have told it; every server checks it
    /// against the copy the session's transaction put in the tree.
    pub fn password(secret: &[u8; 16], session_id: i64) -> [u8; 16] {
        let mut hasher = Sha1::new();
        hasher.update(secret);
        hasher.update(session_id.to_be_bytes());
        let digest = hasher.finalize();
        let mut password = [0u8; 16];
        password.copy_from_slice(&digest[..16]);
        password
    }

    /// Whether `password` is the one this session was given.
    pub fn password_matches(&self, session_id: i64, password: &[u8]) -> bool {
        self.speculative.session(session_id).is_some_and(|session| crate::acl::same_secret(&session.password, password))
    }

    /// A new session, with the id and password the server that holds its
    /// connection chose; None if that id is taken.
    pub fn create_session(
        &mut self,
        session_id: i64,
        timeout_ms: i32,
        password: [u8; 16],
        time_ms: i64,
    ) -> Option<(TxnHeader, Txn)> {
        if self.speculative.session(session_id).is_some() {
            return None;
        }
        let context = WriteContext { session_id, xid: 0, auth: &[], time_ms };
        let header = self.next_header(&context);
        let txn = Txn::CreateSession { session_id, timeout_ms, password };
        self.apply_speculative(&header, &txn);
        Some((header, txn))
    }

    /// Ends a session (closeSession or expiry); None if it is already gone.
    pub fn close_session(&mut self, session_id: i64, time_ms: i64) -> Option<(TxnHeader, Txn)> {
        self.close_session_for(&WriteContext { session_id, xid: INTERNAL_CXID, auth: &[], time_ms })
    }

    /// Ends the session that asks in `context` (its closeSession request).
    fn close_session_for(&mut self, context: &WriteContext<'_>) -> Option<(TxnHeader, Txn)> {
        let session_id = context.session_id;
        self.speculative.session(session_id)?;
        let header = self.next_header(context);
        let txn = Txn::CloseSession { session_id };
        self.apply_speculative(&header, &txn);
        Some((header, txn))
    }

    /// Deletes an empty container or an expired TTL node on the server's
    /// own behalf (ZooKeeper's ContainerManager, opcode deleteContainer).
    pub fn delete_container(&mut self, path: &Path, time_ms: i64) -> Option<(TxnHeader, Txn)> {
        let node = self.speculative.get(path)?;
        if node.num_children() != 0 {
            return None;
        }
        let header = self.next_header(&WriteContext { session_id: 0, xid: INTERNAL_CXID, auth: &[], time_ms });
        let txn = Txn::Delete { path: path.clone() };
        self.apply_speculative(&header, &txn);
        Some((header, txn))
    }

    /// Logs a failed write as an error transaction (ZooKeeper's ErrorTxn).
    fn fail(&mut self, err: ErrorCode, request: &Request, context: &WriteContext<'_>) -> Prepared {
        let txn = match request {
            // Every operation of a failed multi fails with the first error.
            Request::Multi(ops) => Txn::Multi(ops.iter().map(|_| Txn::Error { code: err.code() }).collect()),
            _ => Txn::Error { code: err.code() },
        };
        self.log_failure(txn, request, context)
    }

    fn log_failure(&mut self, txn: Txn, request: &Request, context: &WriteContext<'_>) -> Prepared {
        let header = self.next_header(context);
        let applied = self.apply_speculative(&header, &txn);
        let (err, response) = reply::build(request, &txn, &applied);
        Prepared::Txn { header, txn, err, response }
    }

    /// Refuses a write for a reason found outside prep (the session moved
    /// to another server): logged as a failed write, as ZooKeeper does.
    pub fn reject(&mut self, err: ErrorCode, request: &Request, context: &WriteContext<'_>) -> Prepared {
        self.fail(err, request, context)
    }

    /// Prepares one write request (see `Request::is_write`).
    pub fn prepare(&mut self, request: &Request, context: &WriteContext<'_>) -> Prepared {
        if self.speculative.session(context.session_id).is_none() {
            return self.fail(ErrorCode::SessionExpired, request, context);
        }
        let single = match request {
            Request::Create(create) => prep_create(&self.speculative, create, context, &self.settings),
            Request::Delete { path, version } => prep_delete(&self.speculative, path, *version, context),
            Request::SetData { path, data, version } => {
                prep_set_data(&self.speculative, path, data, *version, context, &self.settings)
            }
            Request::SetAcl { path, acl, version } => prep_set_acl(&self.speculative, path, acl, *version, context),
            Request::Check { path, version } => prep_check(&self.speculative, path, *version, context),
            Request::Multi(ops) => return self.prepare_multi(request, ops, context),
            Request::Sync { path } => {
                return Prepared::Reply { err: ErrorCode::Ok, response: Response::Path(path.clone()) }
            }
            Request::Reconfig { .. } => {
                // A standalone server answers as ZooKeeper's does with
                // reconfigEnabled=false; ensembles are a later issue.
                let err =
                    if self.settings.reconfig_enabled { ErrorCode::Unimplemented } else { ErrorCode::ReconfigDisabled };
                return self.fail(err, request, context);
            }
            Request::CloseSession => {
                return match self.close_session_for(context) {
                    Some((header, txn)) => Prepared::Txn { header, txn, err: ErrorCode::Ok, response: Response::Empty },
                    None => self.fail(ErrorCode::SessionExpired, request, context),
                };
            }
            _ => Err(ErrorCode::BadArguments),
        };
        let txn = match single {
            Ok(txn) => txn,
            Err(err) => return self.fail(err, request, context),
        };
        let header = self.next_header(context);
        let applied = self.apply_speculative(&header, &txn);
        let (err, response) = reply::build(request, &txn, &applied);
        Prepared::Txn { header, txn, err, response }
    }

    /// A multi is all or nothing: its operations are prepared one after
    /// another on a scratch copy, each seeing the ones before it. On the
    /// first failure the copy is dropped and the multi is logged as one
    /// error per operation: 0 before the failed operation, its code at it,
    /// RuntimeInconsistency after it (ZooKeeper's MultiTxn of ErrorTxns);
    /// the reply header's err stays 0, as ZooKeeper sends it.
    fn prepare_multi(&mut self, request: &Request, ops: &[MultiOp], context: &WriteContext<'_>) -> Prepared {
        let mut scratch = self.speculative.clone();
        let header = TxnHeader {
            zxid: self.next_zxid,
            time_ms: context.time_ms,
            session_id: context.session_id,
            cxid: context.xid,
        };
        let mut txns = Vec::with_capacity(ops.len());
        let mut outcomes = Vec::with_capacity(ops.len());
        for (index, operation) in ops.iter().enumerate() {
            let prepared = match operation {
                MultiOp::Create(create) => prep_create(&scratch, create, context, &self.settings),
                MultiOp::Delete { path, version } => prep_delete(&scratch, path, *version, context),
                MultiOp::SetData { path, data, version } => {
                    prep_set_data(&scratch, path, data, *version, context, &self.settings)
                }
                MultiOp::Check { path, version } => prep_check(&scratch, path, *version, context),
                MultiOp::GetChildren { .. } | MultiOp::GetData { .. } => Err(ErrorCode::BadArguments),
            };
            match prepared {
                Ok(txn) => {
                    let mut applied = scratch.apply_continuing(&header, &txn);
                    outcomes.append(&mut applied.outcomes);
                    txns.push(txn);
                }
                Err(err) => {
                    let errors = (0..ops.len())
                        .map(|position| Txn::Error {
                            code: match position.cmp(&index) {
                                std::cmp::Ordering::Less => 0,
                                std::cmp::Ordering::Equal => err.code(),
                                std::cmp::Ordering::Greater => ErrorCode::RuntimeInconsistency.code(),
                            },
                        })
                        .collect();
                    return self.log_failure(Txn::Multi(errors), request, context);
                }
            }
        }
        self.speculative = scratch;
        self.next_zxid += 1;
        let txn = Txn::Multi(txns);
        let applied = tree::Applied { outcomes, triggers: Vec::new() };
        let (err, response) = reply::build(request, &txn, &applied);
        Prepared::Txn { header, txn, err, response }
    }
}

type PrepResult = Result<Txn, ErrorCode>;

/// ZooKeeper's checkAndIncVersion: -1 matches any version.
fn check_version(current: i32, expected: i32) -> Result<(), ErrorCode> {
    if expected != -1 && expected != current {
        return Err(ErrorCode::BadVersion);
    }
    Ok(())
}

/// The parent of a path as ZooKeeper's validatePathForCreate and
/// getParentPathAndValidate find it: everything before the last slash, the
/// root for "/x". Paths without a slash or with a NUL are bad arguments.
fn parent_of(path: &str) -> Result<&str, ErrorCode> {
    let slash = path.rfind('/').ok_or(ErrorCode::BadArguments)?;
    if path.contains('\0') {
        return Err(ErrorCode::BadArguments);
    }
    Ok(if slash == 0 { "/" } else { &path[..slash] })
}

fn node_at<'t>(tree: &'t Tree, path: &str) -> Result<&'t tree::Node, ErrorCode> {
    tree.get(path).ok_or(ErrorCode::NoNode)
}

fn require(acl: &[crate::proto::Acl], auth: &[Id], permission: i32) -> Result<(), ErrorCode> {
    if acl::check(acl, auth, permission) {
        Ok(())
    } else {
        Err(ErrorCode::NoAuth)
    }
}

fn prep_create(tree: &Tree, create: &CreateRequest, context: &WriteContext<'_>, settings: &PrepSettings) -> PrepResult {
    let mode = CreateMode::from_flags(create.flags).ok_or(ErrorCode::BadArguments)?;
    if mode.is_ttl() && !settings.extended_types_enabled {
        return Err(ErrorCode::Unimplemented);
    }
    let ttl_ms = if create.opcode == op::CREATE_TTL { create.ttl_ms } else { -1 };
    if mode.is_ttl() {
        if ttl_ms <= 0 || ttl_ms > ephemeral_owner::TTL_MAX {
            return Err(ErrorCode::BadArguments);
        }
    } else if ttl_ms >= 0 {
        return Err(ErrorCode::BadArguments);
    }
    let parent_path = parent_of(&create.path)?;
    let acl = acl::fixup(&create.acl, context.auth).ok_or(ErrorCode::InvalidAcl)?;
    let parent = node_at(tree, parent_path)?;
    require(parent.acl(), context.auth, perms::CREATE)?;
    let path =
        if mode.is_sequential() { format!("{}{:010}", create.path, parent.cversion()) } else { create.path.clone() };
    validate_path(&path).map_err(|_| ErrorCode::BadArguments)?;
    if tree.get(&path).is_some() {
        return Err(ErrorCode::NodeExists);
    }
    if parent.owner_session().is_some() {
        return Err(ErrorCode::NoChildrenForEphemerals);
    }
    let data_bytes = create.data.as_ref().map_or(0, |data| data.len()) as i64;
    tree::quota::check(tree, &path, data_bytes, 1, settings.enforce_quota).map_err(|_| ErrorCode::QuotaExceeded)?;
    let owner = if mode.is_ephemeral() {
        context.session_id
    } else if mode.is_container() {
        ephemeral_owner::CONTAINER
    } else if mode.is_ttl() {
        ephemeral_owner::ttl(ttl_ms)
    } else {
        0
    };
    Ok(Txn::Create {
        path: Arc::from(path),
        data: create.data.as_deref().map(Arc::from),
        acl: Arc::from(acl),
        ephemeral_owner: owner,
    })
}

/// "/", "/zookeeper", "/zookeeper/quota" and "/zookeeper/config" cannot be
/// deleted (DataTree.isSpecialPath).
fn is_special_path(path: &str) -> bool {
    matches!(path, "/" | tree::ZOOKEEPER_PATH | tree::QUOTA_PATH | tree::CONFIG_PATH)
}

fn prep_delete(tree: &Tree, path: &str, version: i32, context: &WriteContext<'_>) -> PrepResult {
    if is_special_path(path) {
        return Err(ErrorCode::BadArguments);
    }
    let parent_path = parent_of(path)?;
    let parent = node_at(tree, parent_path)?;
    require(parent.acl(), context.auth, perms::DELETE)?;
    let node = node_at(tree, path)?;
    check_version(node.version(), version)?;
    if node.num_children() != 0 {
        return Err(ErrorCode::NotEmpty);
    }
    Ok(Txn::Delete { path: Arc::from(path) })
}

fn prep_set_data(
    tree: &Tree,
    path: &str,
    data: &Option<Vec<u8>>,
    version: i32,
    context: &WriteContext<'_>,
    settings: &PrepSettings,
) -> PrepResult {
    validate_path(path).map_err(|_| ErrorCode::BadArguments)?;
    let node = node_at(tree, path)?;
    require(node.acl(), context.auth, perms::WRITE)?;
    // ZooKeeper checks the quota before the version.
    let bytes_diff = data.as_ref().map_or(0, |data| data.len()) as i64 - node.data_len() as i64;
    tree::quota::check(tree, path, bytes_diff, 0, settings.enforce_quota).map_err(|_| ErrorCode::QuotaExceeded)?;
    check_version(node.version(), version)?;
    Ok(Txn::SetData { path: Arc::from(path), data: data.as_deref().map(Arc::from) })
}

fn prep_set_acl(
    tree: &Tree,
    path: &str,
    acl: &[crate::proto::Acl],
    version: i32,
    context: &WriteContext<'_>,
) -> PrepResult {
    validate_path(path).map_err(|_| ErrorCode::BadArguments)?;
    let acl = acl::fixup(acl, context.auth).ok_or(ErrorCode::InvalidAcl)?;
    let node = node_at(tree, path)?;
    require(node.acl(), context.auth, perms::ADMIN)?;
    check_version(node.aversion(), version)?;
    Ok(Txn::SetAcl { path: Arc::from(path), acl: Arc::from(acl) })
}

fn prep_check(tree: &Tree, path: &str, version: i32, context: &WriteContext<'_>) -> PrepResult {
    validate_path(path).map_err(|_| ErrorCode::BadArguments)?;
    let node = node_at(tree, path)?;
    require(node.acl(), context.auth, perms::READ)?;
    check_version(node.version(), version)?;
    Ok(Txn::Check { path: Arc::from(path) })
}

#[cfg(test)]
mod tests;
