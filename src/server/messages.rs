//! What crosses cores. Shards send the broadcast core client work (the
//! node's `ClientInput`); after each round of the node the broadcast core
//! publishes the new committed version (tree and triggers, see
//! `shared::Version`) and sends each shard a `Commit` with that shard's
//! replies. The shard catches up to the newest version, firing watches,
//! before it sends them, so no reply shows a change before its watch event
//! is queued.

use std::time::Instant;

pub use crate::node::{ClientInput as ToBroadcast, ConnectionId, Reply, ReplyBody};

/// The shard a connection lives on: the top 16 bits of its id.
pub fn shard_of(connection: ConnectionId) -> usize {
    (connection >> 48) as usize
}

/// One committed round as one shard sees it: its replies (possibly none;
/// the message also wakes the shard to fire the round's watches).
#[derive(Debug)]
pub struct Commit {
    pub replies: Vec<Reply>,
    /// When the broadcast core sent it (the `to_shard` write stage).
    pub sent: Instant,
}

/// A shard's message to the broadcast core and when it was sent (the
/// `to_core` write stage); the broadcast core restamps it on receipt to time
/// its inbox (`queue`).
#[derive(Debug)]
pub struct Stamped {
    pub message: ToBroadcast,
    pub at: Instant,
}

pub use crate::limits::TO_BROADCAST_QUEUE_MESSAGES_MAX;
pub use crate::limits::TO_SHARD_QUEUE_MESSAGES_MAX;
