//! The replica: raft-rs's `RawNode` wrapped so that it does no IO.
//!
//! Inputs go in (proposals, peer messages, ticks, "persisted"); what the
//! shell must do comes out as plain values: entries and hard state to make
//! durable, messages to send, committed entries to apply. The raft log lives
//! in raft-rs's `MemStorage` as a cache of what the WAL holds since the last
//! snapshot; the WAL is the durable copy, written by the shell. A zxid is the
//! raft index of the entry that carries the transaction.
//!
//! Order of duties for one `Ready` (raft-rs's contract): send `messages` at
//! once; apply `committed` (they were committed earlier); make `entries`
//! and `hard_state` durable; then call `persisted` and send what it returns.
//!
//! Readies are taken asynchronously (raft-rs's `advance_append_async`): a
//! `ToPersist` is advanced in raft's memory as soon as it is handed out, so
//! the shell may step, propose and take further readies while earlier ones
//! are still being written, and reports each durable one with `persisted`,
//! in the order they were handed out. That is what lets the broadcast core
//! keep preparing and proposing during a sync (pipelined group commit). What
//! becomes committed once a ready is durable comes out of the next `ready`.

pub mod codec;

use raft::eraftpb::{ConfState, Entry, EntryType, HardState, Message, Snapshot};
use raft::storage::MemStorage;
use raft::{Config, RawNode, StateRole};

/// What raft-rs refused, and in which of the replica's operations: the one
/// error type at the replica's boundary (the node wraps it in
/// `NodeError::Raft`).
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error("{operation}: {source}")]
    Raft {
        operation: Operation,
        #[source]
        source: raft::Error,
    },
    /// raft-rs put a proposal at another index than the one prep gave the
    /// transaction as its zxid: the zxid in the entry would be wrong.
    #[error("a proposal got index {got}, not {expected}, the zxid prep gave it")]
    ProposalIndex { got: u64, expected: u64 },
}

/// The replica's operations that can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Operation {
    #[error("restoring the snapshot point")]
    RestoreSnapshotPoint,
    #[error("restoring the log entries")]
    RestoreEntries,
    #[error("the raft configuration")]
    Configure,
    #[error("starting raft")]
    Start,
    #[error("the term of entry {0}")]
    TermOf(u64),
    #[error("campaigning")]
    Campaign,
    #[error("stepping a message")]
    Step,
    #[error("proposing")]
    Propose,
    #[error("compacting the log cache to {0}")]
    Compact(u64),
}

fn failed(operation: Operation) -> impl FnOnce(raft::Error) -> ReplicaError {
    move |source| ReplicaError::Raft { operation, source }
}

/// How a replica is set up: its id, the group, and its timing in ticks.
#[derive(Debug, Clone)]
pub struct ReplicaConfig {
    pub id: u64,
    /// Voting members (ZooKeeper's participants), this one included if it votes.
    pub voters: Vec<u64>,
    /// Non-voting members (ZooKeeper's observers).
    pub learners: Vec<u64>,
    /// Ticks without a leader before a follower campaigns.
    pub election_ticks: usize,
    /// Ticks between a leader's heartbeats.
    pub heartbeat_ticks: usize,
    /// Added to `election_ticks` for this replica. raft-rs would draw a
    /// random timeout from the thread's generator, which no seed controls;
    /// a fixed, per-replica spread chosen by the caller (from its seed)
    /// keeps elections replayable and still breaks ties.
    pub election_jitter_ticks: usize,
}

/// The durable state found at start: the snapshot point, if any, the last
/// hard state and the log entries after the snapshot.
#[derive(Debug, Default)]
pub struct Recovered {
    pub snapshot: Option<SnapshotPoint>,
    pub hard_state: HardState,
    pub entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotPoint {
    pub index: u64,
    pub term: u64,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
}

/// Work the shell must finish before calling `Replica::persisted`.
pub struct ToPersist {
    /// Send now (a leader may send before it persists).
    pub messages: Vec<Message>,
    /// Apply now: committed before this ready.
    pub committed: Vec<Entry>,
    /// Make durable: log entries and the hard state.
    pub entries: Vec<Entry>,
    pub hard_state: Option<HardState>,
    /// Whether the write must be fsynced (raft-rs's must_sync).
    pub must_sync: bool,
    /// A snapshot the leader sent to install, if any (its metadata).
    pub snapshot: Option<Snapshot>,
    /// Reads confirmed by a quorum (`read_index`): (context, commit index
    /// when it was asked).
    pub read_states: Vec<(u64, u64)>,
    persisted_messages: Vec<Message>,
    /// raft-rs's number for the ready, reported back by `persisted`.
    number: u64,
}

/// What `persisted` releases: messages that could leave only once the
/// ready was durable (a follower's acknowledgements and votes).
pub struct AfterPersist {
    pub messages: Vec<Message>,
}

pub struct Replica {
    node: RawNode<MemStorage>,
    /// The number of the newest ready reported durable.
    persisted_number: u64,
    /// The newest index handed out as committed (or as a snapshot).
    handed_out: u64,
}

/// Whether an entry carries a transaction (raft's own empty entries at the
/// start of a term, and configuration changes, do not).
pub fn carries_transaction(entry: &Entry) -> bool {
    entry.get_entry_type() == EntryType::EntryNormal && !entry.data.is_empty()
}

impl Replica {
    /// A replica with id `id` in a group of `voters`, resuming from what
    /// recovery found. `election_ticks` and `heartbeat_ticks` are in calls
    /// to `tick`.
    pub fn new(setup: &ReplicaConfig, recovered: Recovered) -> Result<Replica, ReplicaError> {
        let id = setup.id;
        let voters = setup.voters.clone();
        let storage = MemStorage::new();
        let mut applied = 0;
        {
            let mut core = storage.wl();
            match &recovered.snapshot {
                Some(point) => {
                    let mut snapshot = Snapshot::default();
                    let metadata = snapshot.mut_metadata();
                    metadata.index = point.index;
                    metadata.term = point.term;
                    metadata.set_conf_state(ConfState::from((point.voters.clone(), point.learners.clone())));
                    core.apply_snapshot(snapshot).map_err(failed(Operation::RestoreSnapshotPoint))?;
                    applied = point.index;
                }
                None => core.set_conf_state(ConfState::from((voters.clone(), setup.learners.clone()))),
            }
            core.append(&recovered.entries).map_err(failed(Operation::RestoreEntries))?;
            let mut hard_state = recovered.hard_state.clone();
            // A commit index past the log (possible only if entries were
            // lost) would make raft panic; clamp it to what is there.
            let last = recovered.entries.last().map_or(applied, |entry| entry.index);
            if hard_state.commit > last {
                hard_state.commit = last;
            }
            if hard_state.commit < applied {
                hard_state.commit = applied;
            }
            core.set_hardstate(hard_state);
        }
        let election_tick = setup.election_ticks.max(2);
        let timeout = election_tick + setup.election_jitter_ticks;
        let config = Config {
            id,
            election_tick,
            min_election_tick: timeout,
            max_election_tick: timeout + 1,
            heartbeat_tick: setup.heartbeat_ticks.max(1),
            applied,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            check_quorum: true,
            pre_vote: true,
            ..Config::default()
        };
        config.validate().map_err(failed(Operation::Configure))?;
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let node = RawNode::new(&config, storage, &logger).map_err(failed(Operation::Start))?;
        Ok(Replica { node, persisted_number: 0, handed_out: applied })
    }

    pub fn is_leader(&self) -> bool {
        self.node.raft.state == StateRole::Leader
    }

    pub fn term(&self) -> u64 {
        self.node.raft.term
    }

    /// The leader this replica knows of, if any.
    pub fn leader_id(&self) -> Option<u64> {
        let leader = self.node.raft.leader_id;
        (leader != raft::INVALID_ID).then_some(leader)
    }

    pub fn id(&self) -> u64 {
        self.node.raft.id
    }

    /// The highest index each other member is known to hold (leader only;
    /// empty elsewhere), for replication lag.
    pub fn matched(&self) -> Vec<(u64, u64)> {
        if !self.is_leader() {
            return Vec::new();
        }
        let me = self.id();
        self.node.raft.prs().iter().filter(|(id, _)| **id != me).map(|(id, progress)| (*id, progress.matched)).collect()
    }

    /// The last index in the log.
    pub fn last_index(&self) -> u64 {
        self.node.raft.raft_log.last_index()
    }

    /// The entries from `low` to the end of the log that raft still holds
    /// in memory (the uncommitted tail a new leader must prepare on).
    pub fn entries_from(&self, low: u64) -> Vec<Entry> {
        let last = self.last_index();
        if low > last {
            return Vec::new();
        }
        self.node.raft.raft_log.entries(low, raft::NO_LIMIT, raft::GetEntriesContext::empty(false)).unwrap_or_default()
    }

    /// The index the next proposal will get.
    pub fn next_index(&self) -> u64 {
        self.node.raft.raft_log.last_index() + 1
    }

    /// The term of the entry at `index`, while raft still holds it.
    pub fn term_of(&self, index: u64) -> Result<u64, ReplicaError> {
        self.node.raft.raft_log.term(index).map_err(failed(Operation::TermOf(index)))
    }

    pub fn commit_index(&self) -> u64 {
        self.node.raft.raft_log.committed
    }

    /// Starts an election now (a single voter wins it at once).
    pub fn campaign(&mut self) -> Result<(), ReplicaError> {
        self.node.campaign().map_err(failed(Operation::Campaign))
    }

    pub fn tick(&mut self) {
        self.node.tick();
    }

    /// The link to `peer` fell. If `peer` is the leader this follower knows,
    /// the leader is most likely gone (a dead process's sockets close at
    /// once), so this follower forgets it: with no leader it no longer
    /// honours the old leader's lease and grants its vote to an up-to-date
    /// candidate at once, as ZooKeeper's followers go looking as soon as
    /// the leader's socket closes. A leader still alive loses nothing: its
    /// next heartbeat makes it this follower's leader again, and pre-vote
    /// keeps a candidate from disturbing followers that still hear it.
    /// Returns whether the leader was forgotten; the caller then campaigns
    /// (`campaign`) when its turn comes.
    pub fn leader_link_lost(&mut self, peer: u64) -> bool {
        let raft = &mut self.node.raft;
        if raft.state != StateRole::Follower || raft.leader_id != peer || peer == raft.id {
            return false;
        }
        raft.leader_id = raft::INVALID_ID;
        true
    }

    /// Follower `id` answered an append saying its log ends at
    /// `last_index`, below what it had acknowledged: its data directory was
    /// emptied (an operator resyncing a server, as with ZooKeeper) or its
    /// disk lost synced writes. raft-rs takes such an answer for a stale
    /// one and would never send that follower anything again; this leader
    /// forgets what the follower acknowledged instead, so raft probes back
    /// from `last_index` and sends entries, or a snapshot where its log is
    /// compacted. Lowering `matched` never lowers the commit index, and a
    /// stale answer that gets here (a duplicate) only costs a resend.
    /// Returns whether the progress was reset.
    pub fn follower_lost_log(&mut self, id: u64, last_index: u64) -> bool {
        if !self.is_leader() || id == self.id() {
            return false;
        }
        let Some(progress) = self.node.raft.mut_prs().get_mut(id) else {
            return false;
        };
        if progress.matched <= last_index {
            return false;
        }
        progress.matched = last_index;
        progress.become_probe();
        true
    }

    /// Whether this replica may campaign (a voter that neither leads nor
    /// knows a leader).
    pub fn may_campaign(&self) -> bool {
        let raft = &self.node.raft;
        raft.promotable() && raft.state != StateRole::Leader && raft.leader_id == raft::INVALID_ID
    }

    pub fn step(&mut self, message: Message) -> Result<(), ReplicaError> {
        self.node.step(message).map_err(failed(Operation::Step))
    }

    /// Asks the group to confirm this leader (raft's ReadIndex, safe mode:
    /// a heartbeat round that a quorum answers). The confirmation comes out
    /// of a later `ready` as `(context, index)` in `read_states`; it also
    /// confirms every earlier context. raft-rs drops the request while the
    /// leader has no commit of its own term yet (see
    /// `committed_in_current_term`), and a lost heartbeat answer leaves it
    /// pending: the caller asks again.
    pub fn read_index(&mut self, context: u64) {
        self.node.read_index(context.to_be_bytes().to_vec());
    }

    /// Whether this leader has committed an entry of its own term, which
    /// raft requires before it confirms reads.
    pub fn committed_in_current_term(&self) -> bool {
        let raft = &self.node.raft;
        raft.raft_log.term(raft.raft_log.committed).is_ok_and(|term| term == raft.term)
    }

    /// Appends a transaction payload; returns the index (zxid) it got.
    pub fn propose(&mut self, payload: Vec<u8>) -> Result<u64, ReplicaError> {
        let expected = self.next_index();
        self.node.propose(Vec::new(), payload).map_err(failed(Operation::Propose))?;
        let last = self.node.raft.raft_log.last_index();
        if last != expected {
            return Err(ReplicaError::ProposalIndex { got: last, expected });
        }
        Ok(expected)
    }

    /// The next piece of work, if any. It may be taken while earlier ones
    /// are not yet durable; each is reported with `persisted`, in order.
    pub fn ready(&mut self) -> Option<ToPersist> {
        if !self.node.has_ready() {
            return None;
        }
        let mut ready = self.node.ready();
        let messages = ready.take_messages();
        let committed = ready.take_committed_entries();
        let entries = ready.take_entries();
        let hard_state = ready.hs().cloned();
        let persisted_messages = ready.take_persisted_messages();
        let must_sync = ready.must_sync();
        let snapshot = (!ready.snapshot().is_empty()).then(|| ready.snapshot().clone());
        let read_states = ready
            .take_read_states()
            .into_iter()
            .filter_map(|state| {
                // Only this node asks, always with 8 bytes; anything else
                // would be a bug, and is skipped rather than misread.
                let context: [u8; 8] = state.request_ctx.as_slice().try_into().ok()?;
                Some((u64::from_be_bytes(context), state.index))
            })
            .collect();
        {
            let store = self.node.mut_store();
            let mut core = store.wl();
            if let Some(snapshot) = &snapshot {
                // The leader's snapshot replaces the log up to its index; a
                // stale one (older than what is held) is raft's to refuse
                // before it gets here.
                core.apply_snapshot(snapshot.clone()).expect("raft hands out only newer snapshots");
            }
            if !entries.is_empty() {
                // The entries come from this node's own log, which is
                // consistent by construction; a failure here is a bug.
                core.append(&entries).expect("raft entries are contiguous");
            }
            if let Some(hard_state) = &hard_state {
                core.set_hardstate(hard_state.clone());
            }
        }
        let number = ready.number();
        // The entries are in the storage, which is all raft-rs asks before
        // an asynchronous advance; the committed ones were taken above and
        // are applied by the caller at once.
        if let Some(last) = committed.last() {
            self.handed_out = self.handed_out.max(last.index);
        }
        if let Some(snapshot) = &snapshot {
            self.handed_out = self.handed_out.max(snapshot.get_metadata().index);
        }
        self.node.advance_append_async(ready);
        self.advance_applied();
        Some(ToPersist {
            messages,
            committed,
            entries,
            hard_state,
            must_sync,
            snapshot,
            read_states,
            persisted_messages,
            number,
        })
    }

    /// Tells raft that `work`'s entries and hard state are durable, and with
    /// them everything handed out before it. What that commits comes out of
    /// the next `ready`.
    pub fn persisted(&mut self, work: ToPersist) -> AfterPersist {
        assert!(
            work.number > self.persisted_number,
            "readies are persisted in the order they were handed out ({} after {})",
            work.number,
            self.persisted_number
        );
        self.persisted_number = work.number;
        self.node.on_persist_ready(work.number);
        self.advance_applied();
        AfterPersist { messages: work.persisted_messages }
    }

    /// Tells raft how far the caller has applied: everything handed out
    /// (the caller applies committed entries, or installs a snapshot, as
    /// soon as it gets them), but never past what is durable here, which
    /// raft-rs requires (a snapshot is handed out before it is durable).
    fn advance_applied(&mut self) {
        let log = &self.node.raft.raft_log;
        let applied = self.handed_out.min(log.persisted);
        if applied > log.applied {
            self.node.advance_apply_to(applied);
        }
    }

    /// Tells raft whether a snapshot reached `to`, so it resumes appends
    /// (after a success) or probes and sends another (after a failure)
    /// instead of waiting for ever.
    pub fn report_snapshot(&mut self, to: u64, delivered: bool) {
        let status = if delivered { raft::SnapshotStatus::Finish } else { raft::SnapshotStatus::Failure };
        self.node.report_snapshot(to, status);
    }

    /// Drops log entries up to `index` from memory (after a snapshot).
    pub fn compact(&mut self, index: u64) -> Result<(), ReplicaError> {
        let index = index.min(self.node.raft.raft_log.applied);
        self.node.mut_store().wl().compact(index).map_err(failed(Operation::Compact(index)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single() -> ReplicaConfig {
        ReplicaConfig {
            id: 1,
            voters: vec![1],
            learners: vec![],
            election_ticks: 10,
            heartbeat_ticks: 3,
            election_jitter_ticks: 0,
        }
    }

    /// Runs ready/persisted until quiet, returning the committed entries.
    fn drive(replica: &mut Replica, durable: &mut Vec<Entry>, hard_state: &mut HardState) -> Vec<Entry> {
        let mut committed = Vec::new();
        while let Some(work) = replica.ready() {
            committed.extend(work.committed.iter().cloned());
            durable.extend(work.entries.iter().cloned());
            if let Some(state) = &work.hard_state {
                *hard_state = state.clone();
            }
            replica.persisted(work);
        }
        committed
    }

    #[test]
    fn a_single_voter_commits_what_it_persists() {
        let mut replica = Replica::new(&single(), Recovered::default()).unwrap();
        replica.campaign().unwrap();
        let mut durable = Vec::new();
        let mut hard_state = HardState::default();
        drive(&mut replica, &mut durable, &mut hard_state);
        assert!(replica.is_leader());
        let first = replica.propose(b"one".to_vec()).unwrap();
        let second = replica.propose(b"two".to_vec()).unwrap();
        assert_eq!(second, first + 1);
        let committed = drive(&mut replica, &mut durable, &mut hard_state);
        let payloads: Vec<&[u8]> =
            committed.iter().filter(|entry| carries_transaction(entry)).map(|entry| &entry.data[..]).collect();
        assert_eq!(payloads, vec![&b"one"[..], &b"two"[..]]);
        assert_eq!(replica.commit_index(), second);

        // Restart from what was made durable: the entries come back committed.
        let recovered = Recovered { snapshot: None, hard_state: hard_state.clone(), entries: durable.clone() };
        let mut restarted = Replica::new(&single(), recovered).unwrap();
        restarted.campaign().unwrap();
        let mut durable_again = durable.clone();
        let replayed = drive(&mut restarted, &mut durable_again, &mut hard_state);
        let replayed: Vec<u64> =
            replayed.iter().filter(|entry| carries_transaction(entry)).map(|entry| entry.index).collect();
        // Recovery relies on this: the node starts its tree from the newest
        // snapshot (none here) and applies what the restarted replica hands
        // out as committed, so a restarted replica must hand out every
        // durable transaction after the snapshot point, once and in order.
        // Handing out nothing would lose both writes from the tree.
        assert_eq!(replayed, vec![first, second], "every durable transaction is replayed once, in order");
        assert!(restarted.is_leader());
        assert!(restarted.next_index() > second);
    }

    /// The pipelined group commit's contract: work is taken while earlier
    /// work is being written, and an entry comes out committed only once
    /// the work that carried it is reported durable.
    #[test]
    fn readies_are_taken_while_earlier_ones_are_written() {
        let mut replica = Replica::new(&single(), Recovered::default()).unwrap();
        replica.campaign().unwrap();
        drive(&mut replica, &mut Vec::new(), &mut HardState::default());
        let first = replica.propose(b"one".to_vec()).unwrap();
        let writing = replica.ready().expect("the first proposal is work");
        assert_eq!(writing.entries.iter().map(|entry| entry.index).collect::<Vec<_>>(), vec![first]);
        let second = replica.propose(b"two".to_vec()).unwrap();
        let queued = replica.ready().expect("the second proposal is work while the first is written");
        assert_eq!(queued.entries.iter().map(|entry| entry.index).collect::<Vec<_>>(), vec![second]);
        assert!(queued.committed.is_empty(), "nothing is durable yet, so nothing is committed");
        assert!(replica.ready().is_none(), "nothing more until a write finishes");

        replica.persisted(writing);
        let after_first = replica.ready().expect("the first write commits its entry");
        let committed: Vec<u64> = after_first.committed.iter().map(|entry| entry.index).collect();
        assert_eq!(committed, vec![first], "only what is durable is committed");
        assert!(after_first.entries.is_empty());
        replica.persisted(queued);
        replica.persisted(after_first);
        let after_second = replica.ready().expect("the second write commits its entry");
        let committed: Vec<u64> = after_second.committed.iter().map(|entry| entry.index).collect();
        assert_eq!(committed, vec![second]);
        replica.persisted(after_second);
        assert_eq!(replica.commit_index(), second);
    }

    #[test]
    #[should_panic(expected = "in the order they were handed out")]
    fn work_reported_durable_out_of_order_is_a_bug() {
        let mut replica = Replica::new(&single(), Recovered::default()).unwrap();
        replica.campaign().unwrap();
        drive(&mut replica, &mut Vec::new(), &mut HardState::default());
        replica.propose(b"one".to_vec()).unwrap();
        let older = replica.ready().unwrap();
        replica.propose(b"two".to_vec()).unwrap();
        let newer = replica.ready().unwrap();
        replica.persisted(newer);
        replica.persisted(older);
    }

    #[test]
    fn restart_after_a_snapshot_point() {
        let recovered = Recovered {
            snapshot: Some(SnapshotPoint { index: 10, term: 2, voters: vec![1], learners: vec![] }),
            hard_state: HardState { term: 2, vote: 1, commit: 10, ..HardState::default() },
            entries: Vec::new(),
        };
        let mut replica = Replica::new(&single(), recovered).unwrap();
        replica.campaign().unwrap();
        let mut durable = Vec::new();
        let mut hard_state = HardState::default();
        drive(&mut replica, &mut durable, &mut hard_state);
        assert!(replica.is_leader());
        assert!(replica.propose(b"x".to_vec()).unwrap() > 10);
    }
}
