//! The shards' part of a watch, played by the harness, and the check that
//! a client hears of a change to a znode it watches before any reply that
//! shows the change (ZooKeeper's ordering guarantee).
//!
//! The node releases a publication (the committed tree and the watch
//! triggers of what it applied) and replies in one output, with the rule
//! that the publication goes first. The shell's shards obey it: they fire
//! their watch tables on the publication, then write the replies. The
//! harness does what a shard does with the same IO-free `WatchTable`, so a
//! node that released a reply before the publication that explains it
//! would show here as a client seeing a change whose event it never got.
//!
//! A client's data watch is set by its sync-then-read and remembers the
//! mzxid it saw. A reply on the same connection carrying zxid Z, while the
//! znode's mzxid in the server's applied tree is above what the watch saw
//! and at most Z, means the reply reflects a change the watch should
//! already have announced. (A change overwritten by a later one before the
//! reply escapes this check; the next read's check catches most of them.)
//! Watches end with their connection, as in ZooKeeper; the simulated
//! clients do not re-register them with setWatches.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::super::{ConnectionId, Publication};
use crate::tree::Tree;
use crate::watch::{Table, WatchMode, WatchTable};

#[derive(Default)]
struct ServerWatches {
    /// What the server's shards would read: the last published tree.
    published: Option<Arc<Tree>>,
    table: WatchTable<ConnectionId>,
}

/// One event delivered: the connection, the event type and the path.
pub(super) type Delivered = (ConnectionId, i32, String);

#[derive(Default)]
pub(super) struct Watches {
    servers: BTreeMap<u64, ServerWatches>,
    /// Per connection, its data watches not yet fired: path -> the mzxid
    /// the read that set it saw.
    armed: BTreeMap<ConnectionId, BTreeMap<String, i64>>,
}

impl Watches {
    /// Server `id` publishes: its tree is replaced and the triggers fire,
    /// in order. Returns the events, in a deterministic order.
    pub(super) fn publish(&mut self, id: u64, publication: Publication) -> Vec<Delivered> {
        let server = self.servers.entry(id).or_default();
        server.published = Some(publication.tree);
        let mut delivered = Vec::new();
        for trigger in &publication.triggers {
            let mut fired = Vec::new();
            server.table.trigger(trigger, &mut fired);
            // The table fires from hash maps: sort, so a seed replays.
            fired.sort_by_key(|fired| fired.connection);
            for fired in fired {
                if let Some(armed) = self.armed.get_mut(&fired.connection) {
                    armed.remove(&*fired.path);
                }
                delivered.push((fired.connection, fired.event_type, fired.path.to_string()));
            }
        }
        delivered
    }

    /// The tree server `id` last published, if it published since it started.
    pub(super) fn published(&self, id: u64) -> Option<&Arc<Tree>> {
        self.servers.get(&id).and_then(|server| server.published.as_ref())
    }

    /// A read on `connection` at server `id` saw `path` at `mzxid` and left
    /// a data watch, as getData with watch=true does.
    pub(super) fn arm(&mut self, id: u64, connection: ConnectionId, path: &str, mzxid: i64) {
        let server = self.servers.entry(id).or_default();
        server.table.add(Table::Data, path, connection, WatchMode::Standard);
        self.armed.entry(connection).or_default().insert(path.to_string(), mzxid);
    }

    /// A reply on `connection` at server `id`, whose node has applied
    /// `applied`, carries `zxid`: the sentence of a violation if it shows a
    /// change to a watched znode whose event did not come first. The node's
    /// applied tree, not the published one, is the truth here: a node that
    /// replied before publishing would leave the published tree behind too.
    pub(super) fn check_reply(&self, id: u64, applied: &Tree, connection: ConnectionId, zxid: i64) -> Option<String> {
        let tree = applied;
        for (path, &seen) in self.armed.get(&connection)? {
            let Some(znode) = tree.get(path) else { continue };
            if znode.mzxid() > seen && znode.mzxid() <= zxid {
                return Some(format!(
                    "connection {connection:#x} at server {id}: a reply with zxid {zxid} came before the watch event of {path}, changed at {} after the watch saw {seen}",
                    znode.mzxid()
                ));
            }
        }
        None
    }

    /// The connection closed: its watches go.
    pub(super) fn connection_closed(&mut self, id: u64, connection: ConnectionId) {
        if let Some(server) = self.servers.get_mut(&id) {
            server.table.remove_connection(connection);
        }
        self.armed.remove(&connection);
    }

    /// Server `id` crashed: its tree and every watch of its connections go.
    pub(super) fn server_crashed(&mut self, id: u64) {
        if let Some(server) = self.servers.remove(&id) {
            for (connection, _) in server.table.by_connection() {
                self.armed.remove(&connection);
            }
        }
    }
}
