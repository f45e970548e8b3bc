//! Snapshots streamed over a peer link in chunks.
//!
//! A follower behind the leader's compacted log gets the leader's tree. The
//! tree can be far larger than a frame (a million znodes is about 240 MB),
//! and encoding it takes the better part of a second: done on the broadcast
//! core, it would stall every write and every client of the leader. So the
//! shell, not the node, carries it: the node hands out one whole
//! `PeerMessage::Snapshot` as always; here a thread encodes it, and a task on
//! the broadcast core's executor cuts the bytes into `SNAPSHOT_CHUNK_BYTES`
//! chunks and queues them as the link drains. Nothing else is sent to that
//! peer while its stream runs, so the appends raft sends after the snapshot
//! cannot overtake it (links are FIFO); what is skipped raft sends again. A
//! link that falls ends the stream; raft, finding the follower still behind,
//! sends another snapshot.
//!
//! The receiver reassembles chunks in order, up to
//! `SNAPSHOT_STREAM_BYTES_MAX`, and hands the whole message to the node. A
//! chunk out of order, or a stream larger than the bound, drops what was
//! assembled, with a logged reason.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use glommio::timer::Timer;
use tracing::{info, warn};

use super::peer::PeerLinks;
use crate::node::wire::Chunk;
use crate::node::PeerMessage;

pub use crate::limits::SNAPSHOT_CHUNK_BYTES;

pub use crate::limits::SNAPSHOT_STREAM_BYTES_MAX;

/// How often a stream looks again at a full link queue.
const STREAM_POLL: Duration = Duration::from_millis(1);

/// The streams of one server: those it sends and those it receives.
#[derive(Default)]
pub struct SnapshotStreams {
    sending: Rc<RefCell<BTreeSet<u64>>>,
    receiving: BTreeMap<u64, Vec<u8>>,
}

impl SnapshotStreams {
    /// Whether a stream to `to` is running (its other messages wait).
    pub fn is_sending(&self, to: u64) -> bool {
        self.sending.borrow().contains(&to)
    }

    /// Starts streaming `message` (a snapshot) to `to`, unless a stream to
    /// it already runs (raft asked twice; the first one serves).
    pub fn send(&self, links: &Rc<PeerLinks>, to: u64, message: PeerMessage) {
        if !self.sending.borrow_mut().insert(to) {
            return;
        }
        let (done, encoded) = async_channel::bounded::<Vec<u8>>(1);
        let spawned = std::thread::Builder::new().name("zoocore-snapshot-send".to_string()).spawn(move || {
            let mut bytes = Vec::new();
            message.encode(&mut bytes);
            let _ = done.send_blocking(bytes);
        });
        if let Err(error) = spawned {
            warn!(peer = to, %error, "cannot start a thread to encode a snapshot; raft will ask again");
            self.sending.borrow_mut().remove(&to);
            return;
        }
        let sending = self.sending.clone();
        let links = links.clone();
        glommio::spawn_local(async move {
            let outcome = match encoded.recv().await {
                Ok(bytes) => stream(&links, to, &bytes).await,
                Err(_) => Err("the encoder thread ended without a result".to_string()),
            };
            match outcome {
                Ok(bytes) => info!(peer = to, bytes, "snapshot streamed"),
                Err(reason) => warn!(peer = to, %reason, "snapshot stream ended early; raft will send another"),
            }
            sending.borrow_mut().remove(&to);
        })
        .detach();
    }

    /// Takes one chunk from `from`; returns the whole message once its last
    /// chunk is in.
    pub fn receive(&mut self, from: u64, chunk: Chunk<'_>) -> Option<Vec<u8>> {
        if chunk.total > SNAPSHOT_STREAM_BYTES_MAX {
            warn!(
                peer = from,
                bytes = chunk.total,
                bound = SNAPSHOT_STREAM_BYTES_MAX,
                "snapshot stream too large; refused"
            );
            self.receiving.remove(&from);
            return None;
        }
        if chunk.offset == 0 {
            // A new stream replaces any unfinished one from that peer.
            self.receiving.insert(from, Vec::new());
        }
        let Some(assembled) = self.receiving.get_mut(&from) else {
            warn!(peer = from, offset = chunk.offset, "snapshot chunk without its stream's start; dropped");
            return None;
        };
        if assembled.len() as u64 != chunk.offset {
            warn!(
                peer = from,
                offset = chunk.offset,
                have = assembled.len(),
                "snapshot chunk out of order; stream dropped"
            );
            self.receiving.remove(&from);
            return None;
        }
        if assembled.is_empty() {
            // The total was checked against the bound above.
            assembled.reserve_exact(chunk.total as usize);
        }
        assembled.extend_from_slice(chunk.bytes);
        if assembled.len() as u64 == chunk.total {
            return self.receiving.remove(&from);
        }
        None
    }

    /// The link from `from` fell: its unfinished stream will not resume.
    pub fn forget(&mut self, from: u64) {
        self.receiving.remove(&from);
    }
}

/// Queues `bytes` to `to` chunk by chunk as the link drains; the bytes
/// sent, or why it stopped.
async fn stream(links: &PeerLinks, to: u64, bytes: &[u8]) -> Result<usize, String> {
    let total = bytes.len() as u64;
    for (index, piece) in bytes.chunks(SNAPSHOT_CHUNK_BYTES).enumerate() {
        let mut frame = Vec::with_capacity(piece.len() + 64);
        Chunk { total, offset: (index * SNAPSHOT_CHUNK_BYTES) as u64, bytes: piece }.encode(&mut frame);
        while !links.has_room(to, frame.len()) {
            if !links.is_connected(to) {
                return Err(format!("the link fell after {} of {total} bytes", index * SNAPSHOT_CHUNK_BYTES));
            }
            Timer::new(STREAM_POLL).await;
        }
        if !links.send(to, frame) {
            return Err("the link refused a chunk".to_string());
        }
    }
    Ok(bytes.len())
}
