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
use super::control::{self, ShardQuery};
use super::memory::IdleCollector;
use super::messages::{Commit, ConnectionId, Stamped, ToBroadcast};
use super::shared::{Shared, Version};
use crate::metrics::WriteStage;
use crate::tree::Tree;
use crate::watch::{Fired, WatchTable};

/// The shortest time between two "requests throttled" lines of one shard.
const THROTTLE_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// How often a shard tells the broadcast core which sessions were active.
const TOUCH_INTERVAL: Duration = Duration::from_millis(250);
pub use crate::limits::CONNECTION_MEMORY_BYTES_MAX_DEFAULT;

pub struct Shard {
    pub id: usize,
    pub shared: Arc<Shared>,
    /// The version this shard has caught up to: its watches have fired for
    /// every change up to it.
    adopted: RefCell<Arc<Version>>,
    connections: RefCell<HashMap<ConnectionId, Rc<Connection>>>,
    pub watches: RefCell<WatchTable<ConnectionId>>,
    to_broadcast: ConnectedSender<Stamped>,
    touched: RefCell<HashSet<i64>>,
    next_connection: Cell<u64>,
    /// globalOutstandingLimit, split evenly across shards.
    pub permits: Rc<Semaphore>,
    /// When the last "throttled" line was logged.
    throttle_logged: Cell<Option<std::time::Instant>>,
    /// This shard's share of the connection memory limit.
    connection_memory_bytes_max: usize,
    /// When the last "connection memory" refusal was logged.
    memory_refusal_logged: Cell<Option<std::time::Instant>>,
}

impl Shard {
    /// The newest committed tree, after catching up to it. Borrowed, not
    /// cloned: every shard's reads share that `Arc`, and bumping its count
    /// on each read would bounce its cache line between cores. Hold it only
    /// while answering (a catch-up meanwhile would panic the RefCell).
    pub fn tree(&self) -> std::cell::Ref<'_, Tree> {
        self.catch_up();
        std::cell::Ref::map(self.adopted.borrow(), |version| &*version.tree)
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
                    // Not `watches_mut`: this may run between a read's
                    // `expect_watch` and its registration, and must not
                    // lower the flag there (the touch timer does later).
                    let mut watches = self.watches.borrow_mut();
                    if watches.watch_count() > 0 {
                        for trigger in &next.triggers {
                            watches.trigger(trigger, &mut fired);
                        }
                    }
                }
                for event in fired {
                    if let Some(connection) = self.connection(event.connection) {
                        connection.send_event(self, event.event_type, &event.path);
                    }
                }
            }
            // The broadcast core drops it: see `shared::Retired`.
            let previous = std::mem::replace(&mut *self.adopted.borrow_mut(), next);
            self.shared.retired.retire(previous);
        }
    }

    /// Says, before a read that may register a watch takes the tree, that
    /// this shard wants every change: the broadcast core wakes a shard for
    /// a change without replies for it only when it may hold watches (the
    /// others catch up on their next read or commit, and on the touch
    /// timer). Raised before the catch-up, each side with a full fence
    /// between its store and its load: either the core sees the flag and
    /// sends the change, or this catch-up sees the change and the watch is
    /// registered on the version after it.
    pub fn expect_watch(&self) {
        self.shared.shard_stats[self.id].watching.store(true, Ordering::SeqCst);
        std::sync::atomic::fence(Ordering::SeqCst);
    }

    /// The watch table, for a change; the flag `expect_watch` raised is
    /// lowered when the last watch goes.
    pub fn watches_mut(&self) -> WatchesMut<'_> {
        WatchesMut { table: Some(self.watches.borrow_mut()), watching: &self.shared.shard_stats[self.id].watching }
    }

    pub fn touch(&self, session_id: i64) {
        if session_id != 0 {
            self.touched.borrow_mut().insert(session_id);
        }
    }

    pub async fn send(&self, message: ToBroadcast) {
        self.shared.metrics.shards[self.id].to_broadcast_sent.fetch_add(1, Ordering::Relaxed);
        if self.to_broadcast.send(Stamped { message, at: std::time::Instant::now() }).await.is_err() {
            if self.shared.stopping.load(Ordering::Relaxed) {
                debug!(shard = self.id, "broadcast core gone: the server is stopping");
            } else {
                warn!(shard = self.id, "broadcast core queue closed");
            }
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
        self.watches_mut().remove_connection(id);
    }

    /// A request waits because this shard's share of globalOutstandingLimit
    /// is taken: logged at most once per `THROTTLE_LOG_INTERVAL`.
    pub fn note_throttled(&self) {
        let now = std::time::Instant::now();
        if self.throttle_logged.get().is_some_and(|last| now.duration_since(last) < THROTTLE_LOG_INTERVAL) {
            return;
        }
        self.throttle_logged.set(Some(now));
        warn!(
            shard = self.id,
            limit = self.shared.config.global_outstanding_limit,
            "requests throttled: globalOutstandingLimit reached; clients wait until earlier requests complete"
        );
    }

    /// Memory the shard's connections hold now (see
    /// `CONNECTION_MEMORY_BYTES_MAX_DEFAULT`).
    pub fn connection_memory_bytes(&self) -> usize {
        self.connections.borrow().values().map(|connection| connection.memory_bytes()).sum()
    }

    /// Whether one more connection fits the memory limit; a refusal is
    /// logged at most once per `THROTTLE_LOG_INTERVAL`.
    fn admit_by_memory(&self, peer: SocketAddr) -> bool {
        let held = self.connection_memory_bytes();
        if held + connection::CONNECTION_FIXED_BYTES <= self.connection_memory_bytes_max {
            return true;
        }
        let now = std::time::Instant::now();
        if self.memory_refusal_logged.get().is_none_or(|last| now.duration_since(last) >= THROTTLE_LOG_INTERVAL) {
            self.memory_refusal_logged.set(Some(now));
            warn!(
                %peer,
                shard = self.id,
                held_bytes = held,
                limit_bytes = self.connection_memory_bytes_max,
                "connection refused: client connections hold this shard's share of \
                 zoocore.connectionMemoryMaxBytes (logged at most once per 10 s)"
            );
        }
        false
    }

    /// Answers another core's question about this shard (control.rs).
    fn answer(&self, query: ShardQuery) {
        match query {
            ShardQuery::WatchSummary(reply) => {
                let _ = reply.try_send(control::summarize(&self.watches.borrow()));
            }
            ShardQuery::Watches(reply) => {
                let sessions: HashMap<ConnectionId, i64> =
                    self.connections.borrow().iter().map(|(id, connection)| (*id, connection.session_id())).collect();
                let _ = reply.try_send(control::list_watches(&self.watches.borrow(), &sessions));
            }
        }
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

/// The watch table borrowed for a change (`Shard::watches_mut`).
pub struct WatchesMut<'a> {
    table: Option<std::cell::RefMut<'a, WatchTable<ConnectionId>>>,
    watching: &'a std::sync::atomic::AtomicBool,
}

impl std::ops::Deref for WatchesMut<'_> {
    type Target = WatchTable<ConnectionId>;
    fn deref(&self) -> &Self::Target {
        self.table.as_ref().expect("held until dropped")
    }
}

impl std::ops::DerefMut for WatchesMut<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.table.as_mut().expect("held until dropped")
    }
}

impl Drop for WatchesMut<'_> {
    fn drop(&mut self) {
        let empty = self.table.take().is_some_and(|table| table.watch_count() == 0);
        if empty {
            self.watching.store(false, Ordering::SeqCst);
        }
    }
}

/// Where one shard listens: the plain client port, the secure (TLS) one,
/// or both.
pub struct Listen {
    pub plain: Option<SocketAddr>,
    pub secure: Option<(SocketAddr, crate::tls::TlsContext)>,
}

/// The addresses a shard bound (port 0 resolved).
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub plain: Option<SocketAddr>,
    pub secure: Option<SocketAddr>,
}

fn bind(address: SocketAddr, what: &str) -> Result<(TcpListener, SocketAddr), String> {
    let listener =
        TcpListener::bind(address).map_err(|error| format!("cannot listen on {address} ({what}): {error}"))?;
    let local = listener.local_addr().unwrap_or(address);
    Ok((listener, local))
}

/// Runs one shard until the server stops. `listen` is where to listen;
/// the bound addresses are reported through `bound`.
pub async fn run(
    id: usize,
    shared: Arc<Shared>,
    listen: Listen,
    to_broadcast: SharedSender<Stamped>,
    from_broadcast: SharedReceiver<Commit>,
    bound: std::sync::mpsc::Sender<Result<Bound, String>>,
) {
    let plain = match listen.plain.map(|address| bind(address, "clientPort")).transpose() {
        Ok(plain) => plain,
        Err(error) => {
            let _ = bound.send(Err(error));
            return;
        }
    };
    let secure = match listen
        .secure
        .map(|(address, context)| bind(address, "secureClientPort").map(|(listener, local)| (listener, local, context)))
        .transpose()
    {
        Ok(secure) => secure,
        Err(error) => {
            let _ = bound.send(Err(error));
            return;
        }
    };
    let bound_addresses =
        Bound { plain: plain.as_ref().map(|(_, local)| *local), secure: secure.as_ref().map(|(_, local, _)| *local) };
    let shard_count = shared.shard_stats.len().max(1) as u64;
    let limit = (shared.config.global_outstanding_limit as u64).div_ceil(shard_count).max(1);
    let connection_memory = shared.config.connection_memory_bytes_max.unwrap_or(CONNECTION_MEMORY_BYTES_MAX_DEFAULT);
    let shard = Rc::new(Shard {
        id,
        adopted: RefCell::new(shared.published.load_full()),
        shared,
        connections: RefCell::new(HashMap::new()),
        watches: RefCell::new(WatchTable::new()),
        to_broadcast: super::connecting(to_broadcast.connect()).await,
        touched: RefCell::new(HashSet::new()),
        next_connection: Cell::new(0),
        permits: Rc::new(Semaphore::new(limit)),
        throttle_logged: Cell::new(None),
        connection_memory_bytes_max: (connection_memory / shard_count) as usize,
        memory_refusal_logged: Cell::new(None),
    });
    let receiver = super::connecting(from_broadcast.connect()).await;
    let _running = Running::new(shard.shared.clone());
    let _ = bound.send(Ok(bound_addresses));

    let commits = {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            while let Some(commit) = receiver.recv().await {
                let metrics = &shard.shared.metrics;
                metrics.shards[shard.id].commits_received.fetch_add(1, Ordering::Relaxed);
                let received = std::time::Instant::now();
                let mine = &metrics.shards[shard.id];
                mine.record_stage(WriteStage::ToShard, received.saturating_duration_since(commit.sent));
                shard.apply_commit(commit);
                mine.record_stage(WriteStage::ShardApply, received.elapsed());
            }
        })
    };
    let touches = {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            let mut idle = IdleCollector::default();
            loop {
                Timer::new(TOUCH_INTERVAL).await;
                let packets = shard.shared.shard_stats[shard.id].packets_received.load(Ordering::Relaxed);
                let commits = shard.shared.metrics.shards[shard.id].commits_received.load(Ordering::Relaxed);
                idle.check(packets.wrapping_add(commits));
                // Lowers the watch flag if the watches fired since emptied
                // the table, and keeps an idle shard's version recent, so
                // that it does not hold old versions' garbage for long.
                drop(shard.watches_mut());
                shard.catch_up();
                let sessions: Vec<i64> = shard.touched.borrow_mut().drain().collect();
                if !sessions.is_empty() {
                    shard.send(ToBroadcast::Touch(sessions)).await;
                }
            }
        })
    };
    let queries = {
        let shard = shard.clone();
        let inbox = shard.shared.control.shard_inbox(id);
        glommio::spawn_local(async move {
            while let Ok(query) = inbox.recv().await {
                shard.answer(query);
            }
        })
    };
    commits.detach();
    touches.detach();
    queries.detach();

    // Both listeners accept until the server stops; then they are closed
    // and the shard's connections are drained.
    let plain_loop = async {
        if let Some((listener, _)) = plain {
            accept_loop(&shard, listener, None).await;
        }
    };
    let secure_loop = async {
        if let Some((listener, _, context)) = secure {
            accept_loop(&shard, listener, Some(context)).await;
        }
    };
    futures_lite::future::zip(plain_loop, secure_loop).await;
    shutdown(&shard).await;
}

/// Accepts connections on one listener until the server stops; a TLS
/// listener's connections first go through the TLS handshake
/// (`connection::serve_tls`), in their own task.
async fn accept_loop(shard: &Rc<Shard>, listener: TcpListener, tls: Option<crate::tls::TlsContext>) {
    loop {
        // An accept that is ready at once never yields by itself: under a
        // flood of new connections the shard's other tasks (established
        // sessions, commits) get their turn between two accepts.
        futures_lite::future::yield_now().await;
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            shard.shared.stopped().await;
            None
        })
        .await;
        let Some(accepted) = accepted else {
            return;
        };
        match accepted {
            Ok(stream) => {
                let peer = match stream.peer_addr() {
                    Ok(peer) => peer,
                    Err(_) => continue,
                };
                if !shard.shared.admit_connection(peer.ip()) {
                    shard.shared.metrics.connection_rejected.fetch_add(1, Ordering::Relaxed);
                    warn!(
                        %peer,
                        limit = shard.shared.config.client_connections_per_host_max,
                        "connection refused: too many connections from this address (maxClientCnxns)"
                    );
                    continue;
                }
                if !shard.admit_by_memory(peer) {
                    shard.shared.release_connection(peer.ip());
                    shard.shared.metrics.connection_rejected.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let _ = stream.set_nodelay(true);
                let id = shard.next_connection_id();
                debug!(%peer, shard = shard.id, tls = tls.is_some(), "connection accepted");
                match &tls {
                    None => {
                        glommio::spawn_local(connection::serve(shard.clone(), stream, peer, id, Vec::new(), 0)).detach()
                    }
                    Some(context) => {
                        glommio::spawn_local(connection::serve_tls(shard.clone(), stream, peer, id, context.clone()))
                            .detach()
                    }
                };
            }
            Err(error) => {
                warn!(%error, "accept failed; retrying");
                Timer::new(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Counts this shard among the running ones until it ends, however it ends.
struct Running(Arc<Shared>);

impl Running {
    fn new(shared: Arc<Shared>) -> Running {
        shared.control.shard_started();
        Running(shared)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.control.shard_stopped();
    }
}

use crate::limits::SHUTDOWN_DRAIN;

/// A clean stop: no more connections are accepted (the listener is closed);
/// the replies of writes in flight are awaited, bounded, so the batch the
/// broadcast core is committing reaches its clients; then every connection
/// is closed after its queued bytes are written.
async fn shutdown(shard: &Rc<Shard>) {
    let stats = &shard.shared.shard_stats[shard.id];
    let deadline = std::time::Instant::now() + SHUTDOWN_DRAIN;
    while stats.outstanding_requests.load(Ordering::Relaxed) > 0 && std::time::Instant::now() < deadline {
        Timer::new(Duration::from_millis(5)).await;
    }
    let connections: Vec<Rc<Connection>> = shard.connections.borrow().values().cloned().collect();
    debug!(shard = shard.id, connections = connections.len(), "closing connections: the server is stopping");
    for connection in &connections {
        connection.outbox.close(super::close::CloseReason::Stopping);
    }
    while !shard.connections.borrow().is_empty() && std::time::Instant::now() < deadline {
        Timer::new(Duration::from_millis(5)).await;
    }
}
