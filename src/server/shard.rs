//! A shard: one glommio executor pinned to one core, owning the connections
//! it accepted (SO_REUSEPORT spreads them) for their whole lives. It serves
//! their reads from its adopted tree version, forwards writes to the
//! broadcast core, and applies each commit in one step: adopt the tree, fire
//! watches, then send replies.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use glommio::channels::shared_channel::{ConnectedSender, SharedReceiver, SharedSender};
use glommio::net::TcpListener;
use glommio::sync::Semaphore;
use glommio::timer::Timer;
use tracing::{debug, warn};

use super::connection::{self, Connection};
use super::messages::{Commit, ConnectionId, ToBroadcast};
use super::shared::{Shared, Version};
use crate::tree::Tree;
use crate::watch::{Fired, WatchTable};

/// How often a shard tells the broadcast core which sessions were active.
const TOUCH_INTERVAL: Duration = Duration::from_millis(250);

pub struct Shard {
    pub id: usize,
    pub shared: Arc<Shared>,
    /// The version this shard has caught up to: its watches have fired for
    /// every change up to it.
    adopted: RefCell<Arc<Version>>,
    connections: RefCell<HashMap<ConnectionId, Rc<Connection>>>,
    pub watches: RefCell<WatchTable<ConnectionId>>,
    to_broadcast: ConnectedSender<ToBroadcast>,
    touched: RefCell<HashSet<i64>>,
    next_connection: Cell<u64>,
    /// globalOutstandingLimit, split evenly across shards.
    pub permits: Rc<Semaphore>,
}

impl Shard {
    /// The newest committed tree, after catching up to it.
    pub fn tree(&self) -> Arc<Tree> {
        self.catch_up();
        self.adopted.borrow().tree.clone()
    }

    /// Follows the version links to the newest published version, firing
    /// this shard's watches for each one on the way.
    pub fn catch_up(&self) {
        loop {
            let next = self.adopted.borrow().next().cloned();
            let Some(next) = next else { return };
            if !next.triggers.is_empty() {
                let mut fired: Vec<Fired<ConnectionId>> = Vec::new();
                {
                    let mut watches = self.watches.borrow_mut();
                    if watches.watch_count() > 0 {
                        for trigger in &next.triggers {
                            watches.trigger(trigger, &mut fired);
                        }
                    }
                }
                if !fired.is_empty() {
                    for event in fired {
                        if let Some(connection) = self.connection(event.connection) {
                            connection.send_event(self, event.event_type, &event.path);
                        }
                    }
                    self.publish_watch_stats();
                }
            }
            *self.adopted.borrow_mut() = next;
        }
    }

    pub fn touch(&self, session_id: i64) {
        if session_id != 0 {
            self.touched.borrow_mut().insert(session_id);
        }
    }

    pub async fn send(&self, message: ToBroadcast) {
        if self.to_broadcast.send(message).await.is_err() {
            warn!(shard = self.id, "broadcast core queue closed");
        }
    }

    pub fn connection(&self, id: ConnectionId) -> Option<Rc<Connection>> {
        self.connections.borrow().get(&id).cloned()
    }

    fn next_connection_id(&self) -> ConnectionId {
        let next = self.next_connection.get() + 1;
        self.next_connection.set(next);
        ((self.id as u64) << 48) | next
    }

    pub fn register(&self, connection: Rc<Connection>) {
        if let Ok(mut infos) = self.shared.connections[self.id].lock() {
            infos.insert(connection.id, connection.info.clone());
        }
        self.connections.borrow_mut().insert(connection.id, connection);
    }

    pub fn unregister(&self, id: ConnectionId) {
        self.connections.borrow_mut().remove(&id);
        if let Ok(mut infos) = self.shared.connections[self.id].lock() {
            infos.remove(&id);
        }
        self.watches.borrow_mut().remove_connection(id);
        self.publish_watch_stats();
    }

    pub fn publish_watch_stats(&self) {
        let watches = self.watches.borrow();
        let stats = &self.shared.shard_stats[self.id];
        stats.watch_count.store(watches.watch_count() as u64, Ordering::Relaxed);
        stats.watched_path_count.store(watches.watched_path_count() as u64, Ordering::Relaxed);
        stats.watching_connection_count.store(watches.connection_count() as u64, Ordering::Relaxed);
    }

    /// Handles a committed batch: catch up (firing watches) first, then
    /// replies, so no reply can show a change before its event is queued.
    fn apply_commit(&self, commit: Commit) {
        self.catch_up();
        for reply in commit.replies {
            if let Some(connection) = self.connection(reply.connection) {
                connection.on_reply(self, reply.body);
            }
        }
    }
}

/// Runs one shard until the server stops. `address` is where to listen;
/// the bound address is reported through `bound`.
pub async fn run(
    id: usize,
    shared: Arc<Shared>,
    address: SocketAddr,
    to_broadcast: SharedSender<ToBroadcast>,
    from_broadcast: SharedReceiver<Commit>,
    bound: std::sync::mpsc::Sender<Result<SocketAddr, String>>,
) {
    let listener = match TcpListener::bind(address) {
        Ok(listener) => listener,
        Err(error) => {
            let _ = bound.send(Err(format!("cannot listen on {address}: {error}")));
            return;
        }
    };
    let local = listener.local_addr().unwrap_or(address);
    let shard_count = shared.shard_stats.len().max(1) as u64;
    let limit = (shared.config.global_outstanding_limit as u64).div_ceil(shard_count).max(1);
    let shard = Rc::new(Shard {
        id,
        adopted: RefCell::new(shared.published.load_full()),
        shared,
        connections: RefCell::new(HashMap::new()),
        watches: RefCell::new(WatchTable::new()),
        to_broadcast: to_broadcast.connect().await,
        touched: RefCell::new(HashSet::new()),
        next_connection: Cell::new(0),
        permits: Rc::new(Semaphore::new(limit)),
    });
    let receiver = from_broadcast.connect().await;
    let _ = bound.send(Ok(local));

    let commits = {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            while let Some(commit) = receiver.recv().await {
                shard.apply_commit(commit);
            }
        })
    };
    let touches = {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            loop {
                Timer::new(TOUCH_INTERVAL).await;
                let sessions: Vec<i64> = shard.touched.borrow_mut().drain().collect();
                if !sessions.is_empty() {
                    shard.send(ToBroadcast::Touch(sessions)).await;
                }
            }
        })
    };
    commits.detach();
    touches.detach();

    loop {
        match listener.accept().await {
            Ok(stream) => {
                let peer = match stream.peer_addr() {
                    Ok(peer) => peer,
                    Err(_) => continue,
                };
                if !shard.shared.admit_connection(peer.ip()) {
                    warn!(
                        %peer,
                        limit = shard.shared.config.client_connections_per_host_max,
                        "connection refused: too many connections from this address (maxClientCnxns)"
                    );
                    continue;
                }
                let _ = stream.set_nodelay(true);
                let id = shard.next_connection_id();
                debug!(%peer, shard = shard.id, "connection accepted");
                glommio::spawn_local(connection::serve(shard.clone(), stream, peer, id)).detach();
            }
            Err(error) => {
                warn!(%error, "accept failed; retrying");
                Timer::new(Duration::from_millis(10)).await;
            }
        }
    }
}
