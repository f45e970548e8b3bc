//! Transactions: what prep decides and the log records. A transaction holds
//! every value its application needs (final path of a sequential node, data,
//! fixed-up ACL, owner), so applying it needs nothing but the tree.

use std::sync::Arc;

use super::Path;
use crate::proto::{Acl, Stat};

/// What every transaction carries besides its body: its zxid (the log index),
/// the leader's clock when it was prepared, the session that asked and the
/// xid of its request (ZooKeeper's cxid), by which the server holding that
/// session's connection finds the request to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnHeader {
    pub zxid: i64,
    pub time_ms: i64,
    pub session_id: i64,
    pub cxid: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Txn {
    CreateSession {
        session_id: i64,
        timeout_ms: i32,
        password: [u8; 16],
    },
    /// Ends a session and deletes its ephemerals.
    CloseSession {
        session_id: i64,
    },
    Create {
        path: Path,
        data: Option<Arc<[u8]>>,
        acl: Arc<[Acl]>,
        ephemeral_owner: i64,
    },
    Delete {
        path: Path,
    },
    SetData {
        path: Path,
        data: Option<Arc<[u8]>>,
    },
    SetAcl {
        path: Path,
        acl: Arc<[Acl]>,
    },
    /// A version check inside a multi: it changes nothing.
    Check {
        path: Path,
    },
    /// A failed write (ZooKeeper's ErrorTxn): it changes nothing but takes
    /// its zxid.
    Error {
        code: i32,
    },
    /// The operations of a successful multi, applied all at one zxid.
    Multi(Vec<Txn>),
}

/// What applying one (sub-)transaction did, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpOutcome {
    SessionCreated,
    SessionClosed,
    Created(Path, Stat),
    Deleted,
    DataSet(Stat),
    AclSet(Stat),
    Checked,
    /// An error transaction was applied.
    Failed,
    /// The transaction did not fit the tree and changed nothing. Prep never
    /// produces such a transaction; replay of a damaged log might.
    Skipped,
}

/// A change that may fire watches, in the order the changes were made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    Created(Path),
    Deleted(Path),
    DataChanged(Path),
    ChildrenChanged(Path),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    pub outcomes: Vec<OpOutcome>,
    pub triggers: Vec<Trigger>,
}
