//! The sessions whose connections this server holds, and their requests
//! waiting for an answer, in each session's order.
//!
//! ZooKeeper answers a session's requests in the order it sent them. A
//! write is answered when its transaction is applied here (wherever it was
//! prepared); a sync when the leader has named the index it waits for and
//! this server has applied that far. Answers can become known out of order
//! (a sync's index may come back from the leader before an earlier write of
//! the same session is applied), so each session keeps a queue and only its
//! head may leave.

use std::collections::{BTreeMap, VecDeque};

use super::{ConnectionId, Reply, ReplyBody};
use crate::proto::{ErrorCode, Request, Response};

/// One request waiting for its answer.
#[derive(Debug)]
pub(super) struct Waiting {
    pub xid: i32,
    /// When it was queued (the node's monotonic ms).
    pub since_ms: i64,
    pub request: Request,
    pub answer: Option<Answered>,
}

/// A known answer, sent once this server has applied `after_index`.
#[derive(Debug)]
pub(super) struct Answered {
    pub after_index: u64,
    pub err: ErrorCode,
    pub response: Response,
}

#[derive(Debug)]
pub(super) struct LocalSession {
    pub connection: ConnectionId,
    pub timeout_ms: i32,
    pub queue: VecDeque<Waiting>,
}

/// Every session attached to one of this server's connections.
#[derive(Debug, Default)]
pub(super) struct LocalSessions {
    sessions: BTreeMap<i64, LocalSession>,
}

impl LocalSessions {
    /// Attaches `session_id` to `connection`; returns the connection it was
    /// attached to before, if another.
    pub fn attach(&mut self, session_id: i64, connection: ConnectionId, timeout_ms: i32) -> Option<ConnectionId> {
        match self.sessions.insert(session_id, LocalSession { connection, timeout_ms, queue: VecDeque::new() }) {
            Some(previous) if previous.connection != connection => Some(previous.connection),
            _ => None,
        }
    }

    pub fn connection(&self, session_id: i64) -> Option<ConnectionId> {
        self.sessions.get(&session_id).map(|session| session.connection)
    }

    pub fn contains(&self, session_id: i64) -> bool {
        self.sessions.contains_key(&session_id)
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Detaches a session if it is still on `connection`.
    pub fn detach_if(&mut self, session_id: i64, connection: ConnectionId) {
        if self.connection(session_id) == Some(connection) {
            self.sessions.remove(&session_id);
        }
    }

    pub fn detach(&mut self, session_id: i64) -> Option<LocalSession> {
        self.sessions.remove(&session_id)
    }

    /// Detaches every session, returning their connections.
    pub fn detach_all(&mut self) -> Vec<ConnectionId> {
        std::mem::take(&mut self.sessions).into_values().map(|session| session.connection).collect()
    }

    /// Queues a request; false if the session is not attached here.
    pub fn push(&mut self, session_id: i64, xid: i32, request: Request, now_ms: i64) -> bool {
        match self.sessions.get_mut(&session_id) {
            Some(session) => {
                session.queue.push_back(Waiting { xid, since_ms: now_ms, request, answer: None });
                true
            }
            None => false,
        }
    }

    /// The request of `session_id` with `xid` still without an answer: the
    /// one a transaction with that cxid, or a sync's index, answers.
    pub fn unanswered(&mut self, session_id: i64, xid: i32) -> Option<&mut Waiting> {
        let session = self.sessions.get_mut(&session_id)?;
        session.queue.iter_mut().find(|waiting| waiting.answer.is_none() && waiting.xid == xid)
    }

    /// Sends the answers at the head of the session's queue that this
    /// server has applied far enough for.
    pub fn release(&mut self, session_id: i64, applied_index: u64, applied_zxid: i64, replies: &mut Vec<Reply>) {
        let Some(session) = self.sessions.get_mut(&session_id) else {
            return;
        };
        while session
            .queue
            .front()
            .is_some_and(|waiting| waiting.answer.as_ref().is_some_and(|answer| answer.after_index <= applied_index))
        {
            let Some(Waiting { xid, answer: Some(answer), .. }) = session.queue.pop_front() else {
                break;
            };
            replies.push(Reply {
                connection: session.connection,
                body: ReplyBody::Response {
                    xid,
                    // ZooKeeper's reply header carries the last zxid the
                    // tree processed when the reply is built, for writes
                    // too: a write released behind a sync whose answer came
                    // late would otherwise carry a zxid below the sync's,
                    // and the client's last-seen zxid would go back.
                    zxid: applied_zxid,
                    err: answer.err,
                    response: answer.response,
                },
            });
        }
    }

    /// Sessions whose oldest request has waited longer than the session's
    /// timeout: its answer was lost with a peer link (a forwarded write or
    /// its answer), and only a reconnect tells the client so.
    pub fn stalled(&self, now_ms: i64) -> Vec<i64> {
        self.sessions
            .iter()
            .filter(|(_, session)| {
                session.queue.front().is_some_and(|waiting| now_ms - waiting.since_ms > session.timeout_ms as i64)
            })
            .map(|(id, _)| *id)
            .collect()
    }

    /// Syncs queued on this server's sessions and not answered yet (for
    /// ZooKeeper's zk_pending_syncs).
    pub fn pending_syncs(&self) -> usize {
        self.sessions
            .values()
            .map(|session| {
                session.queue.iter().filter(|waiting| matches!(waiting.request, Request::Sync { .. })).count()
            })
            .sum()
    }
}
