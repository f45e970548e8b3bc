//! Read-only mode: ZooKeeper's `readonlymode.enabled`.
//!
//! A member of an ensemble cut off from its quorum knows no leader and can
//! order no write, but its committed tree is still a consistent (if
//! possibly stale) view. ZooKeeper lets such a server, after it has looked
//! for a leader for `max(2000 ms, tickTime)`, start a `ReadOnlyZooKeeperServer`
//! that serves clients which asked for it in their handshake (the
//! ConnectRequest's trailing `readOnly` flag). This module is that server's
//! state, kept apart from the node's normal sessions because it is
//! entirely local:
//!
//! - its sessions live only on this server and are never logged (ZooKeeper
//!   gives them local sessions): ids from this server's own sequence,
//!   passwords from its own secret, so a resume here is checked exactly as
//!   any other; they expire when their connection has been gone for their
//!   timeout;
//! - a resume of a session the ensemble knows (one in the committed tree)
//!   is closed without an answer, as ZooKeeper refuses a "global session
//!   reconnection in RO mode": the session is alive in the ensemble, and
//!   the client keeps trying until it finds a server with a leader;
//! - once a leader is known again, every read-only connection is closed,
//!   so its client reconnects and gets a real session.
//!
//! What the sessions may do (reads from the committed tree, NotReadOnly for
//! everything that would change state, sync included) is decided by the
//! node with the helpers here; the shell serves reads as always.

use std::collections::BTreeMap;

use super::{ConnectionId, Node, ReplyBody};
use crate::prep::Preparer;
use crate::proto::{ErrorCode, Request, Response};

/// ZooKeeper's lower bound on how long a server looks for a leader before
/// it serves read-only clients (`QuorumPeer`: `max(2000, tickTime)`), so an
/// ordinary election does not hand out sessions that end a moment later.
pub const READ_ONLY_GRACE_MS_MIN: i64 = 2000;

#[derive(Debug)]
struct Session {
    /// None while no connection holds the session.
    connection: Option<ConnectionId>,
    timeout_ms: i32,
    /// When the connection went (meaningful while `connection` is None).
    detached_ms: i64,
}

/// What a read-only handshake gets.
#[derive(Debug, PartialEq, Eq)]
pub enum Resume {
    /// Attached; close `previous` if it held the session.
    Attached { previous: Option<ConnectionId> },
    /// Unknown, expired, or the password is wrong.
    Refused,
}

/// The read-only server's state on one node.
#[derive(Debug)]
pub struct ReadOnly {
    /// How long to look for a leader before serving read-only clients;
    /// None when read-only mode is off (and on a standalone server).
    grace_ms: Option<i64>,
    /// Since when this server has known no leader.
    looking_since_ms: Option<i64>,
    serving: bool,
    sessions: BTreeMap<i64, Session>,
}

impl ReadOnly {
    pub fn new(grace_ms: Option<i64>, now_ms: i64) -> ReadOnly {
        ReadOnly { grace_ms, looking_since_ms: Some(now_ms), serving: false, sessions: BTreeMap::new() }
    }

    /// Whether read-only clients are served now.
    pub fn serving(&self) -> bool {
        self.serving
    }

    /// The server knows no leader (since `now_ms`, unless it already knew).
    pub fn looking(&mut self, now_ms: i64) {
        self.looking_since_ms.get_or_insert(now_ms);
    }

    /// True when the grace period ran out at `now_ms` and the server starts
    /// serving read-only clients now.
    pub fn start_if_due(&mut self, now_ms: i64) -> bool {
        let due = match (self.grace_ms, self.looking_since_ms) {
            (Some(grace), Some(since)) => now_ms - since >= grace,
            _ => false,
        };
        if due && !self.serving {
            self.serving = true;
            return true;
        }
        false
    }

    /// A leader is known: read-only mode ends. The connections to close.
    pub fn leave(&mut self) -> Vec<ConnectionId> {
        self.looking_since_ms = None;
        self.serving = false;
        std::mem::take(&mut self.sessions).into_values().filter_map(|session| session.connection).collect()
    }

    /// A new read-only session on `connection`.
    pub fn create(&mut self, session_id: i64, connection: ConnectionId, timeout_ms: i32) {
        debug_assert!(self.serving, "read-only sessions exist only while serving");
        self.sessions.insert(session_id, Session { connection: Some(connection), timeout_ms, detached_ms: 0 });
    }

    /// A resume of `session_id` on `connection`; `password_matches` says
    /// whether the client presented the session's password.
    pub fn resume(
        &mut self,
        session_id: i64,
        connection: ConnectionId,
        timeout_ms: i32,
        password_matches: bool,
    ) -> Resume {
        match self.sessions.get_mut(&session_id) {
            Some(session) if password_matches => {
                session.timeout_ms = timeout_ms;
                let previous = session.connection.replace(connection).filter(|&held| held != connection);
                Resume::Attached { previous }
            }
            _ => Resume::Refused,
        }
    }

    /// Whether `session_id` is a read-only session held by `connection`.
    pub fn holds(&self, session_id: i64, connection: ConnectionId) -> bool {
        self.sessions.get(&session_id).is_some_and(|session| session.connection == Some(connection))
    }

    /// The client closed its session.
    pub fn close(&mut self, session_id: i64) {
        self.sessions.remove(&session_id);
    }

    /// `connection` is gone; its session may be resumed within its timeout.
    pub fn detach(&mut self, session_id: i64, connection: ConnectionId, now_ms: i64) {
        if let Some(session) = self.sessions.get_mut(&session_id) {
            if session.connection == Some(connection) {
                session.connection = None;
                session.detached_ms = now_ms;
            }
        }
    }

    /// Forgets sessions whose connection has been gone for their timeout.
    pub fn expire(&mut self, now_ms: i64) {
        self.sessions.retain(|_, session| {
            session.connection.is_some() || now_ms - session.detached_ms < i64::from(session.timeout_ms)
        });
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }
}

impl Node {
    /// A handshake from a client that accepts a read-only session, while
    /// this server serves them.
    pub(super) fn connect_read_only(
        &mut self,
        connection: ConnectionId,
        session_id: i64,
        password: &[u8],
        timeout_ms: i32,
    ) {
        let secret = self.settings.password_secret;
        if session_id == 0 {
            let session_id = self.next_session_id;
            self.next_session_id += 1;
            self.read_only.create(session_id, connection, timeout_ms);
            let password = Preparer::password(&secret, session_id);
            self.reply(connection, ReplyBody::Connected { session_id, timeout_ms, password, read_only: true });
            return;
        }
        if self.committed.session(session_id).is_some() {
            // ZooKeeper: "Refusing global session reconnection in RO mode".
            // The session lives in the ensemble; the client tries elsewhere.
            self.reply(
                connection,
                ReplyBody::Close { reason: "refusing a global session's reconnection in read-only mode" },
            );
            return;
        }
        let expected = Preparer::password(&secret, session_id);
        match self.read_only.resume(session_id, connection, timeout_ms, crate::acl::same_secret(&expected, password)) {
            Resume::Attached { previous } => {
                if let Some(previous) = previous {
                    self.reply(previous, ReplyBody::Close { reason: "session moved to another connection" });
                }
                let password = expected;
                self.reply(connection, ReplyBody::Connected { session_id, timeout_ms, password, read_only: true });
            }
            Resume::Refused => self.reply(connection, ReplyBody::Refused),
        }
    }

    /// A request the shell passes to the node (a write, sync or
    /// closeSession) from a read-only session: as ZooKeeper's
    /// ReadOnlyRequestProcessor, NotReadOnly with this server's last applied
    /// zxid, except closeSession, which ends the local session.
    pub(super) fn read_only_write(&mut self, connection: ConnectionId, session_id: i64, xid: i32, request: &Request) {
        let zxid = self.applied_index as i64;
        let err = if matches!(request, Request::CloseSession) {
            self.read_only.close(session_id);
            ErrorCode::Ok
        } else {
            ErrorCode::NotReadOnly
        };
        self.reply(connection, ReplyBody::Response { xid, zxid, err, response: Response::Empty });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_only_after_the_grace_period_and_only_while_leaderless() {
        let mut read_only = ReadOnly::new(Some(2000), 0);
        assert!(!read_only.start_if_due(1999));
        assert!(read_only.start_if_due(2000));
        assert!(!read_only.start_if_due(2001), "starts once");
        read_only.create(7, 1, 4000);
        assert_eq!(read_only.leave(), vec![1]);
        assert!(!read_only.serving());
        assert!(!read_only.start_if_due(10_000), "not looking: a leader is known");
        read_only.looking(10_000);
        assert!(!read_only.start_if_due(11_999));
        assert!(read_only.start_if_due(12_000));
    }

    #[test]
    fn disabled_never_serves() {
        let mut read_only = ReadOnly::new(None, 0);
        assert!(!read_only.start_if_due(i64::MAX));
    }

    #[test]
    fn sessions_resume_with_their_password_and_expire_when_detached() {
        let mut read_only = ReadOnly::new(Some(0), 0);
        assert!(read_only.start_if_due(0));
        read_only.create(7, 1, 4000);
        assert!(read_only.holds(7, 1));
        assert_eq!(read_only.resume(7, 2, 4000, false), Resume::Refused);
        assert_eq!(read_only.resume(7, 2, 4000, true), Resume::Attached { previous: Some(1) });
        assert!(!read_only.holds(7, 1) && read_only.holds(7, 2));
        read_only.detach(7, 1, 100);
        assert!(read_only.holds(7, 2), "a stale connection's close does not detach");
        read_only.detach(7, 2, 100);
        read_only.expire(4099);
        assert_eq!(read_only.len(), 1);
        read_only.expire(4100);
        assert_eq!(read_only.len(), 0);
        assert_eq!(read_only.resume(7, 3, 4000, true), Resume::Refused);
    }
}
