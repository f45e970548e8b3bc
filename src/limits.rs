//! Every bound of the server shell in one table: queues, batches, buffers
//! and deadlines, each with why it is what it is, and the relations
//! between them checked when the crate compiles. ZooKeeper's value is the
//! default wherever ZooKeeper has one (named as such); the bounds an
//! operator sets in zoo.cfg are `config`'s (`jute.maxbuffer`,
//! `maxClientCnxns`, `globalOutstandingLimit`, ...), and the IO-free core
//! keeps the few that are part of its own logic beside it (node/, wal/,
//! auth/). docs/ARCHITECTURE.md's bounds table lists them all.

use std::time::Duration;

// Client connections (server/connection.rs, server/shard.rs)
/// Above this many queued outgoing bytes the connection stops reading new
/// requests until the client catches up.
pub const OUTBOX_BACKPRESSURE_BYTES: usize = 4 << 20;
/// Above this many (replies and watch events alike, queued or being
/// written) the client is not reading at all; it is disconnected at once,
/// dropping what is queued.
pub const OUTBOX_BYTES_MAX: usize = 64 << 20;
/// The read buffer's size when a connection starts: an idle connection costs
/// little. It doubles when a read fills it, up to `READ_BUFFER_BYTES` for
/// pipelined requests, or up to one large frame (jute.maxbuffer) as that
/// frame's bytes arrive, never ahead of them.
pub const READ_BUFFER_INITIAL_BYTES: usize = 4 << 10;
/// The read buffer's size for a busy connection; it shrinks back to this
/// after a larger frame.
pub const READ_BUFFER_BYTES: usize = 64 << 10;
/// A closing connection may take this long to write what is queued for it
/// (a reply to closeSession, a four-letter word's answer); then it is
/// aborted, so a client that does not read cannot hold it open.
pub const CLOSE_LINGER: Duration = Duration::from_secs(2);
/// What a connection costs besides its buffers: its state, its two tasks,
/// the socket's bookkeeping. An estimate, for the connection memory limit.
pub const CONNECTION_FIXED_BYTES: usize = 8 << 10;
/// The memory all client connections may hold together (buffers plus
/// `CONNECTION_FIXED_BYTES` each), split evenly across shards;
/// past it new connections are refused with a logged reason. ZooKeeper has
/// no such bound (its global `maxCnxns` counts connections, 0 = unlimited).
/// Key: `zoocore.connectionMemoryMaxBytes`.
pub const CONNECTION_MEMORY_BYTES_MAX_DEFAULT: u64 = 1 << 30;
/// How long a stopping shard waits for the writes it forwarded to come back.
pub const SHUTDOWN_DRAIN: Duration = Duration::from_secs(5);

// Queues between cores and the broadcast core's rounds (server/messages.rs, server/broadcast.rs, server/control.rs)
/// Bounds of the cross-core queues, in messages.
pub const TO_BROADCAST_QUEUE_MESSAGES_MAX: usize = 4096;
pub const TO_SHARD_QUEUE_MESSAGES_MAX: usize = 1024;
/// Requests taken into one batch at most: one log write, one fsync.
pub const BATCH_REQUESTS_MAX: usize = 1000;
/// Pieces of work (raft readies) the node has handed out that are not yet
/// durable, at most: the one being written and those prepared behind it
/// for the next write (pipelined group commit). At the bound the
/// broadcast core takes no new input until the write finishes.
pub const LOG_WORK_IN_FLIGHT_MAX: usize = 64;
/// Old versions the shards hand back to the broadcast core to be freed
/// there (server/shared.rs, `Retired`), at most; past it a shard drops one
/// itself. The core empties the queue every turn of its loop (at least
/// once a raft tick) and a shard adds one version a commit, so it fills
/// only if the core stalls; freeing on the shard is then still correct,
/// only slower to reuse.
pub const RETIRED_VERSIONS_MAX: usize = 1024;
/// Peer frames handed to the node per round at most.
pub const PEER_FRAMES_PER_ROUND_MAX: usize = 1024;
/// How long a query waits for one answer.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// Queries waiting for one owner at most; more fail at once.
pub const QUERIES_QUEUED_MAX: usize = 64;

// Stopping (server/signals.rs)
/// The longest a clean stop may take before the process exits anyway.
pub const STOP_DEADLINE: Duration = Duration::from_secs(20);

// Peer links (server/peer/, server/snapshot_stream.rs)
/// 64 MiB: room for a snapshot chunk and its envelope.
pub const DEFAULT_FRAME_BYTES_MAX: usize = 64 << 20;
/// Raft keeps at most a few hundred messages in flight per follower.
pub const DEFAULT_SEND_QUEUE_FRAMES_MAX: usize = 4096;
/// Two of the largest frames.
pub const DEFAULT_SEND_QUEUE_BYTES_MAX: usize = 128 << 20;
/// One write of up to 1 MiB per wakeup.
pub const DEFAULT_WRITE_BATCH_BYTES_MAX: usize = 1 << 20;
/// Frames received and not yet taken by the node.
pub const DEFAULT_INBOX_FRAMES_MAX: usize = 16_384;
/// 256 KiB of read buffer per inbound connection.
pub const DEFAULT_READ_BUFFER_BYTES: usize = 256 << 10;
/// Inbound connections in their handshake at once.
pub const DEFAULT_HANDSHAKES_PENDING_MAX: usize = 64;
/// The first reconnect comes quickly: failover is meant to take < 200 ms.
pub const DEFAULT_RECONNECT_BACKOFF_MIN: Duration = Duration::from_millis(5);
/// A peer that is down is tried about once a second.
pub const DEFAULT_RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Loopback and LAN handshakes take well under a millisecond.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(1);
/// Bytes of a snapshot per frame: small enough to interleave with nothing
/// else on the link yet large enough that framing costs nothing.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;
/// The largest snapshot message a follower assembles: 8 GiB, well above
/// what zoocore's memory bounds let a tree reach.
pub const SNAPSHOT_STREAM_BYTES_MAX: u64 = 8 << 30;

// The AdminServer (admin/)
/// The request line and headers together, at most.
pub const REQUEST_HEAD_BYTES_MAX: usize = 8 << 10;
/// A request body (commands take none; it is read and dropped), at most.
pub const REQUEST_BODY_BYTES_MAX: usize = 64 << 10;
/// Headers in one request, at most.
pub const HEADERS_MAX: usize = 32;
/// A connection that sends nothing for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Admin and metrics connections served at once; more are closed at once.
pub const CONNECTIONS_MAX: usize = 64;

// What the constants above promise one another.
const _: () = assert!(OUTBOX_BACKPRESSURE_BYTES < OUTBOX_BYTES_MAX, "reading stops before a connection is aborted");
const _: () = assert!(READ_BUFFER_INITIAL_BYTES <= READ_BUFFER_BYTES, "a read buffer starts small and grows");
const _: () = assert!(CONNECTION_FIXED_BYTES >= READ_BUFFER_INITIAL_BYTES, "a connection costs at least its buffer");
const _: () = assert!(
    SHUTDOWN_DRAIN.as_millis() < STOP_DEADLINE.as_millis(),
    "writes in flight drain within the stop's deadline"
);
const _: () = assert!(
    DEFAULT_RECONNECT_BACKOFF_MIN.as_millis() < DEFAULT_RECONNECT_BACKOFF_MAX.as_millis(),
    "the peer reconnect backoff grows"
);
const _: () = assert!(DEFAULT_FRAME_BYTES_MAX <= DEFAULT_SEND_QUEUE_BYTES_MAX, "the largest frame fits a send queue");
const _: () =
    assert!(DEFAULT_WRITE_BATCH_BYTES_MAX <= DEFAULT_FRAME_BYTES_MAX, "a write gathers at most one frame's worth");
const _: () =
    assert!(SNAPSHOT_CHUNK_BYTES < DEFAULT_FRAME_BYTES_MAX, "a snapshot chunk and its header fit in one peer frame");
const _: () = assert!(SNAPSHOT_CHUNK_BYTES as u64 <= SNAPSHOT_STREAM_BYTES_MAX, "a stream holds at least one chunk");
const _: () = assert!(REQUEST_HEAD_BYTES_MAX <= REQUEST_BODY_BYTES_MAX, "an HTTP head is the smaller part");
