//! What the operations layer shows of the ensemble: the broadcast core's
//! last view of this server's place in it ([`EnsembleView`]), each peer
//! link's counters ([`PeerStats`]), and the judgments ZooKeeper's operators
//! see (synced, lag, peer state, zab phase), as methods of the view.
//!
//! Plain data, so the two sides meet here without a circle: the broadcast
//! core (server/) writes the view and the peer transport (server/peer/)
//! fills the link counters; the four-letter words, the admin commands and
//! the Prometheus page read a copy through [`super::ServerView::ensemble`].

/// A follower or observer whose highest replicated index (the leader's
/// `matched`) is at most this many entries behind the leader's last index
/// counts as synced (ZooKeeper's `zk_synced_followers`). ZooKeeper calls a
/// learner synced while it acks within syncLimit ticks; zoocore's leader
/// knows indexes, not ack times, so the bound is in entries: one full
/// broadcast batch of writes in flight is normal, a peer further behind is
/// catching up rather than following the broadcast.
pub const SYNCED_LAG_ENTRIES_MAX: u64 = 1000;

/// What the operations layer shows of the ensemble.
#[derive(Debug, Clone, Default)]
pub struct EnsembleView {
    /// False for a standalone server.
    pub distributed: bool,
    pub my_id: u64,
    pub role: Option<crate::node::Role>,
    pub leader: Option<u64>,
    pub term: u64,
    /// Leader changes seen since start, and when the last one ended (ms of
    /// the broadcast core's clock) and how long it took without a leader.
    pub elections: u64,
    pub last_election_ms: Option<i64>,
    /// The leader's view of each other member: id, highest replicated index.
    pub matched: Vec<(u64, u64)>,
    pub commit_index: u64,
    pub applied_index: u64,
    /// The last index in this server's log (on the leader: the newest
    /// proposal), against which `matched` gives each peer's lag.
    pub last_index: u64,
    /// Syncs of this server's clients not answered yet: waiting for the
    /// leader's index or for this server to apply up to it.
    pub pending_syncs: usize,
    /// When this server last became leader (ZooKeeper's leader_uptime).
    pub leading_since: Option<std::time::Instant>,
    /// Each peer link, as the transport counts it.
    pub links: Vec<PeerStats>,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
}

impl EnsembleView {
    /// ZooKeeper's name of this server's state: standalone, leader,
    /// follower, observer, looking, or read-only.
    pub fn mode(&self) -> &'static str {
        match self.role {
            None => "standalone",
            Some(role) => role.mode(!self.distributed),
        }
    }

    /// Whether this server serves read-only clients now
    /// (`readonlymode.enabled`, no leader): `isro` answers "ro".
    pub fn read_only(&self) -> bool {
        self.role == Some(crate::node::Role::ReadOnly)
    }

    /// Whether this server is an ensemble member that leads.
    pub fn leading(&self) -> bool {
        self.distributed && self.role == Some(crate::node::Role::Leader)
    }

    /// ZooKeeper's zab phase, as the admin `zabstate` names it: zoocore has
    /// no discovery or synchronization phase a client could see (raft
    /// brings a follower up to date while it already follows), so a
    /// server is electing or broadcasting.
    pub fn zab_state(&self) -> &'static str {
        match self.role {
            Some(role) if role.leaderless() => "election",
            _ => "broadcast",
        }
    }

    /// mntr's `zk_peer_state`: the peer state and the zab phase.
    pub fn peer_state(&self) -> String {
        let state = match self.role {
            Some(crate::node::Role::Leader) => "leading",
            Some(crate::node::Role::Follower) => "following",
            Some(crate::node::Role::Observer) => "observing",
            // ZooKeeper's peer stays LOOKING while its read-only server runs.
            Some(crate::node::Role::Looking | crate::node::Role::ReadOnly) | None => "looking",
        };
        format!("{state} - {}", self.zab_state())
    }

    /// Times this server has been without a leader: each election that
    /// ended, and the one under way (ZooKeeper's looking_count).
    pub fn looking_count(&self) -> u64 {
        self.elections + u64::from(self.role.is_some_and(crate::node::Role::leaderless))
    }

    pub fn link(&self, id: u64) -> Option<&PeerStats> {
        self.links.iter().find(|link| link.id == id)
    }

    /// On the leader, how many entries member `id` is behind its log.
    pub fn lag(&self, id: u64) -> Option<u64> {
        if !self.leading() {
            return None;
        }
        let matched = self.matched.iter().find(|(member, _)| *member == id)?.1;
        Some(self.last_index.saturating_sub(matched))
    }

    /// On the leader, whether member `id` is connected and within
    /// [`SYNCED_LAG_ENTRIES_MAX`] of the leader's log.
    pub fn synced(&self, id: u64) -> bool {
        let connected = self.link(id).is_some_and(|link| link.connected);
        connected && self.lag(id).is_some_and(|lag| lag <= SYNCED_LAG_ENTRIES_MAX)
    }

    /// The other voting members.
    pub fn followers(&self) -> impl Iterator<Item = u64> + '_ {
        self.voters.iter().copied().filter(move |id| *id != self.my_id)
    }

    /// The non-voting members (observers) other than this server.
    pub fn observers(&self) -> impl Iterator<Item = u64> + '_ {
        self.learners.iter().copied().filter(move |id| *id != self.my_id)
    }

    /// On the leader, the members it has a live link to (ZooKeeper's
    /// learners: every follower and observer with a learner handler).
    pub fn connected_learners(&self) -> usize {
        if !self.leading() {
            return 0;
        }
        self.followers().chain(self.observers()).filter(|id| self.link(*id).is_some_and(|link| link.connected)).count()
    }

    pub fn synced_followers(&self) -> usize {
        self.followers().filter(|id| self.synced(*id)).count()
    }

    pub fn synced_observers(&self) -> usize {
        self.observers().filter(|id| self.synced(*id)).count()
    }
}

/// One peer's link, as plain numbers (for metrics and admin pages).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// The peer's server id.
    pub id: u64,
    /// Whether the outbound link (this server to the peer) is up.
    pub connected: bool,
    /// Whether an inbound link (the peer to this server) is up.
    pub inbound_connected: bool,
    /// Frames waiting on the send queue.
    pub queue_frames: usize,
    /// Payload bytes waiting on the send queue.
    pub queue_bytes: usize,
    /// Frames written to the peer.
    pub frames_sent: u64,
    /// Payload bytes written to the peer.
    pub bytes_sent: u64,
    /// Frames received from the peer.
    pub frames_received: u64,
    /// Payload bytes received from the peer.
    pub bytes_received: u64,
    /// Frames refused by `send` or dropped from the queue when the link fell.
    pub drops: u64,
    /// Outbound connections made after the first one.
    pub reconnects: u64,
    /// Handshakes the peer refused (another ensemble, or it does not know
    /// this server's id); the reason is in both servers' logs.
    pub refusals: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::Role;

    fn leader_view() -> EnsembleView {
        let link = |id, connected| PeerStats { id, connected, ..PeerStats::default() };
        EnsembleView {
            distributed: true,
            my_id: 1,
            role: Some(Role::Leader),
            leader: Some(1),
            voters: vec![1, 2, 3],
            learners: vec![4],
            last_index: 5000,
            matched: vec![(2, 5000), (3, 5000 - SYNCED_LAG_ENTRIES_MAX - 1), (4, 4990)],
            links: vec![link(2, true), link(3, true), link(4, false)],
            ..EnsembleView::default()
        }
    }

    #[test]
    fn the_leader_counts_members_synced_when_linked_and_close_behind() {
        let view = leader_view();
        assert_eq!(view.lag(2), Some(0));
        assert_eq!(view.lag(3), Some(SYNCED_LAG_ENTRIES_MAX + 1));
        // 2 is current; 3 is linked but too far behind; 4 is close but its link is down.
        assert_eq!(view.synced_followers(), 1);
        assert_eq!(view.synced_observers(), 0);
        assert_eq!(view.connected_learners(), 2);
        assert_eq!(view.peer_state(), "leading - broadcast");
        assert_eq!(view.mode(), "leader");
    }

    #[test]
    fn only_a_leader_judges_the_others() {
        let mut view = leader_view();
        view.role = Some(Role::Follower);
        assert_eq!(view.lag(2), None);
        assert_eq!(view.synced_followers(), 0);
        assert_eq!(view.connected_learners(), 0);
        assert_eq!(view.peer_state(), "following - broadcast");
        view.role = Some(Role::Looking);
        view.elections = 1;
        assert_eq!(view.looking_count(), 2);
        assert_eq!((view.peer_state().as_str(), view.zab_state()), ("looking - election", "election"));
        assert!(!view.read_only());
        view.role = Some(Role::ReadOnly);
        assert_eq!(view.looking_count(), 2);
        assert_eq!((view.mode(), view.peer_state().as_str()), ("read-only", "looking - election"));
        assert!(view.read_only());
        let standalone = EnsembleView::default();
        assert_eq!(standalone.mode(), "standalone");
        assert!(!standalone.leading());
    }
}
