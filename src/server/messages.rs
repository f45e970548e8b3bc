//! What crosses cores. Shards send the broadcast core session and write
//! requests; after each committed batch the broadcast core publishes the new
//! version (tree and triggers, see `shared::Version`) and sends each shard a
//! `Commit` with that shard's replies. The shard catches up to the newest
//! version, firing watches, before it sends them, so no reply shows a change
//! before its watch event is queued.

use std::sync::Arc;

use crate::proto::{ErrorCode, Id, Request, Response};

/// A connection's id, unique across shards: the shard in the top 16 bits.
pub type ConnectionId = u64;

pub fn shard_of(connection: ConnectionId) -> usize {
    (connection >> 48) as usize
}

#[derive(Debug)]
pub enum ToBroadcast {
    /// A handshake: session 0 asks for a new session, any other id resumes
    /// one with its password.
    Connect { connection: ConnectionId, session_id: i64, password: Vec<u8>, timeout_ms: i32 },
    /// A write (or sync, or closeSession), with the identities the
    /// connection had when it sent it.
    Write { connection: ConnectionId, session_id: i64, xid: i32, request: Request, auth: Arc<[Id]> },
    /// Sessions that showed signs of life since the last touch.
    Touch(Vec<i64>),
    /// The connection is gone; its session lives on until it expires.
    Disconnected { connection: ConnectionId, session_id: i64 },
}

#[derive(Debug)]
pub enum ReplyBody {
    Response {
        xid: i32,
        zxid: i64,
        err: ErrorCode,
        response: Response,
    },
    Connected {
        session_id: i64,
        timeout_ms: i32,
        password: [u8; 16],
    },
    /// The session is unknown, expired or the password is wrong.
    Refused,
    /// Close the connection: its session expired or moved to another
    /// connection.
    Close {
        reason: &'static str,
    },
}

#[derive(Debug)]
pub struct Reply {
    pub connection: ConnectionId,
    pub body: ReplyBody,
}

/// One committed batch as one shard sees it: its replies (possibly none;
/// the message also wakes the shard to fire the batch's watches).
#[derive(Debug)]
pub struct Commit {
    pub replies: Vec<Reply>,
}

/// Bounds of the cross-core queues, in messages.
pub const TO_BROADCAST_QUEUE_MESSAGES_MAX: usize = 4096;
pub const TO_SHARD_QUEUE_MESSAGES_MAX: usize = 1024;
