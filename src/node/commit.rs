//! The group-commit queue: which of the node's work goes into the log's
//! next write, and in what order it is reported durable.
//!
//! The node hands out work (raft readies) in order and must hear of it
//! durable in the same order (`Node::persisted`). The log makes one write
//! at a time durable: a write's blocks are rewritten by the next one (the
//! partial last block), so two writes in flight could land out of order.
//! While one write runs, the node goes on preparing, and what it hands out
//! meanwhile waits here and goes out as the next write the moment the one
//! in flight ends (pipelined group commit): a lone write goes out at once,
//! a burst shares one IO.
//!
//! The queue is the decision, not the IO: the broadcast core appends the
//! queued work to its log and runs the write; `benches/commit_pipeline.rs`
//! runs the same queue against a stand-in disk. Time is the caller's
//! (`At`), so the queue can say how long a write's work waited without
//! reading a clock.

use super::Work;

/// What to do with the queued work once the log is idle.
pub enum Batch<At> {
    /// Nothing in it must be durable (it only moves the commit index):
    /// report it durable now, in this order. It rides with the next write.
    Release(Vec<Work>),
    /// Write it, and call `finish` when the write is durable. `entries`:
    /// how many log entries it holds; `queued_since`: when its oldest piece
    /// was handed out (the wait behind the write before it).
    Write { entries: usize, queued_since: At },
}

/// Work waiting for the log, and the work of the write in flight.
pub struct CommitQueue<At> {
    queued: Vec<Work>,
    queued_since: Option<At>,
    writing: Vec<Work>,
    in_flight: bool,
}

impl<At: Copy> Default for CommitQueue<At> {
    fn default() -> Self {
        Self::new()
    }
}

impl<At: Copy> CommitQueue<At> {
    pub fn new() -> Self {
        CommitQueue { queued: Vec::new(), queued_since: None, writing: Vec::new(), in_flight: false }
    }

    /// Queues a piece of work handed out at `at`, behind everything before.
    pub fn push(&mut self, work: Work, at: At) {
        self.queued_since.get_or_insert(at);
        self.queued.push(work);
    }

    /// Work handed out and not yet reported durable: the bound of the
    /// pipeline (`limits::LOG_WORK_IN_FLIGHT_MAX`) counts this.
    pub fn in_flight(&self) -> usize {
        self.queued.len() + self.writing.len()
    }

    /// Whether a write is in flight.
    pub fn writing(&self) -> bool {
        self.in_flight
    }

    /// The work the next write would hold, in order: the caller appends
    /// its entries and hard state to the log before `start`.
    pub fn queued(&self) -> &[Work] {
        &self.queued
    }

    /// Takes the queued work for the idle log; `None` when nothing waits.
    pub fn start(&mut self) -> Option<Batch<At>> {
        assert!(!self.in_flight, "one write at a time: the next one rewrites the last one's partial block");
        debug_assert!(self.writing.is_empty());
        let queued_since = self.queued_since.take()?;
        assert!(!self.queued.is_empty(), "a queued-since time without queued work");
        if !self.queued.iter().any(|work| work.must_sync || !work.entries.is_empty()) {
            return Some(Batch::Release(std::mem::take(&mut self.queued)));
        }
        let entries = self.queued.iter().map(|work| work.entries.len()).sum();
        self.writing = std::mem::take(&mut self.queued);
        self.in_flight = true;
        Some(Batch::Write { entries, queued_since })
    }

    /// The write in flight is durable: its work, in the order handed out,
    /// to report to the node.
    pub fn finish(&mut self) -> Vec<Work> {
        assert!(self.in_flight, "a write finished that was never started");
        self.in_flight = false;
        let written = std::mem::take(&mut self.writing);
        debug_assert!(!written.is_empty());
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::{ClientInput, Node, NodeSettings, Now};
    use crate::replica::Recovered;
    use crate::tree::Tree;

    fn now(ms: i64) -> Now {
        Now { monotonic_ms: ms, wall_ms: 1_700_000_000_000 + ms }
    }

    fn standalone() -> Node {
        Node::new(NodeSettings::single_voter(), Tree::new(), Recovered::default(), now(0)).unwrap()
    }

    /// Drives a fresh single voter through the queue with an instant disk
    /// until it is leader and idle.
    fn settle(node: &mut Node, queue: &mut CommitQueue<u32>) {
        loop {
            while let Some(work) = node.ready(now(0)).unwrap() {
                queue.push(work, 0);
            }
            match queue.start() {
                None => break,
                Some(Batch::Release(works)) => works.into_iter().for_each(|work| node.persisted(work, now(0)).unwrap()),
                Some(Batch::Write { .. }) => {
                    queue.finish().into_iter().for_each(|work| node.persisted(work, now(0)).unwrap())
                }
            }
        }
        node.take_output();
    }

    fn connect(node: &mut Node, connection: u64) {
        let input = ClientInput::Connect {
            connection,
            session_id: 0,
            password: vec![0; 16],
            timeout_ms: 30_000,
            read_only: false,
        };
        node.step_client(input, now(1)).unwrap();
    }

    #[test]
    fn work_handed_out_during_a_write_goes_out_as_the_next_write_in_order() {
        let mut node = standalone();
        let mut queue = CommitQueue::new();
        settle(&mut node, &mut queue);
        assert_eq!(queue.in_flight(), 0);

        connect(&mut node, 1);
        let first = node.ready(now(1)).unwrap().expect("the handshake is an entry");
        queue.push(first, 10);
        let Some(Batch::Write { entries: 1, queued_since: 10 }) = queue.start() else {
            panic!("one entry to write");
        };
        assert!(queue.writing());

        // Two more handshakes while the first write runs: they wait.
        connect(&mut node, 2);
        connect(&mut node, 3);
        while let Some(work) = node.ready(now(2)).unwrap() {
            queue.push(work, 20);
        }
        assert!(queue.in_flight() >= 2, "queued behind the write: {}", queue.in_flight());
        let queued = queue.queued().len();

        // The first write is durable: its one piece, then the next write
        // carries everything queued meanwhile, as one batch.
        let written = queue.finish();
        assert_eq!(written.len(), 1);
        written.into_iter().for_each(|work| node.persisted(work, now(3)).unwrap());
        let Some(Batch::Write { entries, queued_since: 20 }) = queue.start() else {
            panic!("the queued handshakes go out as one write");
        };
        assert_eq!(entries, 2);
        assert_eq!(queue.in_flight(), queued);
        queue.finish().into_iter().for_each(|work| node.persisted(work, now(4)).unwrap());
        settle(&mut node, &mut queue);
        assert_eq!(node.local_session_count(), 3);
        assert_eq!(queue.in_flight(), 0);
        assert!(queue.start().is_none());
    }

    #[test]
    #[should_panic(expected = "one write at a time")]
    fn a_second_write_while_one_is_in_flight_is_a_bug() {
        let mut node = standalone();
        let mut queue = CommitQueue::new();
        settle(&mut node, &mut queue);
        connect(&mut node, 1);
        queue.push(node.ready(now(1)).unwrap().unwrap(), 1);
        queue.start();
        queue.start();
    }
}
