//! The peer transport: opaque frames between the servers of an ensemble,
//! over TCP on each member's quorum port, on the broadcast core's glommio
//! executor.
//!
//! The node above it encodes its own messages (raft's, zoocore's
//! forwarding); this module moves their bytes and decides nothing about
//! them. It is shaped by five choices:
//!
//! - **One direction per connection.** Every server opens one outbound
//!   connection to every peer and only sends on it; it accepts inbound
//!   connections only to receive. Two servers therefore hold two
//!   connections, one each way, and never race to decide which of two
//!   simultaneous connections survives (ZooKeeper's `QuorumCnxManager`
//!   needs a tie-break by id for that). When a newer inbound connection
//!   from the same id arrives (the peer restarted, or its old connection
//!   is half-dead), it replaces the old one, which is closed.
//! - **A handshake that names the ensemble.** The connector sends magic,
//!   version, its id, the id it means to reach and its ensemble identity
//!   ([`crate::ensemble::Ensemble::identity`]); the acceptor answers with a
//!   verdict, and refuses unknown ids, its own id and another ensemble's
//!   members, with the reason logged on both sides. A handshake not done
//!   within [`PeerLimits::handshake_timeout`] is dropped. The bytes are in
//!   [`wire`], which has no IO.
//! - **Bounded, lossy sending.** [`PeerLinks::send`] never waits: it puts
//!   the frame on the peer's bounded queue or drops it, counted. Raft
//!   retransmits what is lost, and a send that blocked the broadcast core
//!   on one slow peer would stall every client. Frames queued when a link
//!   goes down are dropped too, for the same reason. Receiving is bounded
//!   the other way: when the inbox is full the readers stop reading, and
//!   TCP pushes back on the senders.
//! - **Batched writes.** Each link's writer wakes when frames are queued and
//!   drains everything queued into one buffer (up to
//!   [`PeerLimits::write_batch_bytes_max`]) and one write, with
//!   `TCP_NODELAY` on, so a burst of raft messages costs one syscall and
//!   no Nagle delay. Links that drop reconnect after a backoff that starts
//!   at a few milliseconds (an election after a failover must not wait for
//!   it) and doubles up to about a second.
//!
//! - **TLS under the handshake.** With `sslQuorum` ([`PeerSecurity`],
//!   crate::tls::quorum) a link is a rustls session with both sides'
//!   certificates verified before the hello is sent, so the handshake and
//!   the frames above are the same bytes either way, inside a
//!   `PeerStream`; a plain peer or a certificate from another CA fails
//!   the TLS handshake and is refused with the reason logged. The
//!   handshake's id and ensemble checks stay: they catch misconfiguration,
//!   TLS catches impersonation.
//!
//! Frames are a length, a CRC-32C and the payload; a frame longer than
//! [`PeerLimits::frame_bytes_max`] or failing its checksum closes that link
//! with a logged reason, and nothing a peer sends can panic the server.
//!
//! Everything here is `!Send`: [`PeerLinks`] is shared by `Rc` on the one
//! executor that runs it.

mod secure;
pub mod wire;

pub use secure::PeerSecurity;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::io::{FromRawFd, IntoRawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_lite::io::{AsyncReadExt, BufReader};
use glommio::net::{TcpListener, TcpStream};
use glommio::timer::Timer;
use thiserror::Error;
use tracing::{debug, info, warn};

use crate::ensemble::Ensemble;
use rustls::pki_types::ServerName;
use secure::{check_certificate, secure_inbound, send_all, PeerStream};
use wire::{Answer, FrameHeader, Hello, Verdict, WireError, ANSWER_BYTES, FRAME_HEADER_BYTES, HELLO_BYTES};

/// Every bound of the transport, in one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerLimits {
    /// The largest frame payload, in bytes; large enough for a snapshot
    /// chunk. A peer announcing a longer frame is disconnected.
    pub frame_bytes_max: usize,
    /// Frames waiting on one peer's send queue; more are dropped.
    pub send_queue_frames_max: usize,
    /// Payload bytes waiting on one peer's send queue; more are dropped.
    pub send_queue_bytes_max: usize,
    /// The most bytes one write gathers (a single larger frame still goes
    /// out whole, alone).
    pub write_batch_bytes_max: usize,
    /// Received frames waiting for [`PeerInbox`]; when full, links stop
    /// reading until the node takes some.
    pub inbox_frames_max: usize,
    /// The read buffer of each inbound connection, in bytes.
    pub read_buffer_bytes: usize,
    /// Inbound connections still in their handshake; more are closed at once.
    pub handshakes_pending_max: usize,
    /// The first delay before reconnecting after a failed attempt.
    pub reconnect_backoff_min: Duration,
    /// The longest delay between attempts; the delay doubles up to it.
    pub reconnect_backoff_max: Duration,
    /// How long connecting plus the handshake may take, either side.
    pub handshake_timeout: Duration,
}

pub use crate::limits::DEFAULT_FRAME_BYTES_MAX;
pub use crate::limits::DEFAULT_HANDSHAKES_PENDING_MAX;
pub use crate::limits::DEFAULT_HANDSHAKE_TIMEOUT;
pub use crate::limits::DEFAULT_INBOX_FRAMES_MAX;
pub use crate::limits::DEFAULT_READ_BUFFER_BYTES;
pub use crate::limits::DEFAULT_RECONNECT_BACKOFF_MAX;
pub use crate::limits::DEFAULT_RECONNECT_BACKOFF_MIN;
pub use crate::limits::DEFAULT_SEND_QUEUE_BYTES_MAX;
pub use crate::limits::DEFAULT_SEND_QUEUE_FRAMES_MAX;
pub use crate::limits::DEFAULT_WRITE_BATCH_BYTES_MAX;

/// How long [`PeerLinks::start`] retries a quorum port that is in use.
const BIND_RETRY_FOR: Duration = Duration::from_secs(2);
/// Between those retries.
const BIND_RETRY_INTERVAL: Duration = Duration::from_millis(20);

impl Default for PeerLimits {
    fn default() -> Self {
        PeerLimits {
            frame_bytes_max: DEFAULT_FRAME_BYTES_MAX,
            send_queue_frames_max: DEFAULT_SEND_QUEUE_FRAMES_MAX,
            send_queue_bytes_max: DEFAULT_SEND_QUEUE_BYTES_MAX,
            write_batch_bytes_max: DEFAULT_WRITE_BATCH_BYTES_MAX,
            inbox_frames_max: DEFAULT_INBOX_FRAMES_MAX,
            read_buffer_bytes: DEFAULT_READ_BUFFER_BYTES,
            handshakes_pending_max: DEFAULT_HANDSHAKES_PENDING_MAX,
            reconnect_backoff_min: DEFAULT_RECONNECT_BACKOFF_MIN,
            reconnect_backoff_max: DEFAULT_RECONNECT_BACKOFF_MAX,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }
}

/// Why the transport cannot start.
#[derive(Debug, Error)]
pub enum PeerError {
    /// The quorum address cannot be bound.
    #[error("cannot listen for peers on {address} (this server's quorum port): {error}")]
    Bind {
        /// The address from this server's `server.N` line.
        address: SocketAddr,
        /// What the operating system reported.
        error: std::io::Error,
    },
    /// Quorum TLS needs a name to verify every peer's certificate against.
    #[error(
        "server.{id}'s host {host:?} is neither an IP address nor a DNS name, so its certificate cannot be verified \
         (sslQuorum)"
    )]
    HostName {
        /// The server id.
        id: u64,
        /// Its host as written.
        host: String,
    },
    /// A bound is zero or out of range.
    #[error("peer transport limit {name} is {value}, which cannot work ({expected})")]
    Limit {
        /// The field of [`PeerLimits`].
        name: &'static str,
        /// Its value.
        value: String,
        /// What it must be.
        expected: &'static str,
    },
}

pub use crate::ops::PeerStats;

/// A wakeup for tasks on one executor: `wait` completes once `notify` has
/// been called after the wait began. Single-threaded, so a condition
/// checked just before `wait` cannot change unseen. A wait that is dropped
/// unfinished (the loser of a `future::or`) takes its waker back, so
/// connections that come and go leave nothing behind.
#[derive(Default)]
struct Signal {
    generation: Cell<u64>,
    next_key: Cell<u64>,
    wakers: RefCell<BTreeMap<u64, Waker>>,
}

impl Signal {
    fn notify(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
        let wakers = std::mem::take(&mut *self.wakers.borrow_mut());
        for waker in wakers.into_values() {
            waker.wake();
        }
    }

    fn wait(&self) -> SignalWait<'_> {
        SignalWait { signal: self, seen: self.generation.get(), key: None }
    }
}

struct SignalWait<'a> {
    signal: &'a Signal,
    seen: u64,
    key: Option<u64>,
}

impl Future for SignalWait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.signal.generation.get() != this.seen {
            if let Some(key) = this.key.take() {
                this.signal.wakers.borrow_mut().remove(&key);
            }
            return Poll::Ready(());
        }
        let key = *this.key.get_or_insert_with(|| {
            let key = this.signal.next_key.get();
            this.signal.next_key.set(key.wrapping_add(1));
            key
        });
        this.signal.wakers.borrow_mut().insert(key, context.waker().clone());
        Poll::Pending
    }
}

impl Drop for SignalWait<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            self.signal.wakers.borrow_mut().remove(&key);
        }
    }
}

/// The outbound side of one peer, and its counters.
struct Link {
    id: u64,
    address: SocketAddr,
    queue: RefCell<VecDeque<Vec<u8>>>,
    queue_bytes: Cell<usize>,
    connected: Cell<bool>,
    inbound_connected: Cell<bool>,
    wake_writer: Signal,
    frames_sent: Cell<u64>,
    bytes_sent: Cell<u64>,
    frames_received: Cell<u64>,
    bytes_received: Cell<u64>,
    drops: Cell<u64>,
    reconnects: Cell<u64>,
    refusals: Cell<u64>,
}

impl Link {
    fn add(counter: &Cell<u64>, amount: usize) {
        counter.set(counter.get().saturating_add(u64::try_from(amount).unwrap_or(u64::MAX)));
    }

    /// Drops everything queued, counting it: frames for a link that fell
    /// are stale by the time it is back, and raft resends what matters.
    fn drop_queue(&self) {
        let dropped = self.queue.borrow_mut().drain(..).count();
        self.queue_bytes.set(0);
        Link::add(&self.drops, dropped);
    }
}

/// The current inbound connection from one peer.
struct Inbound {
    generation: u64,
    close: Rc<Signal>,
}

struct Inner {
    my_id: u64,
    security: PeerSecurity,
    identity: u64,
    limits: PeerLimits,
    links: BTreeMap<u64, Link>,
    inbound: RefCell<BTreeMap<u64, Inbound>>,
    next_generation: Cell<u64>,
    handshakes_pending: Cell<usize>,
    inbox: RefCell<VecDeque<(u64, Vec<u8>)>>,
    /// Peers whose inbound link fell since the driver last looked (a
    /// leader's death shows here first: its links to us close).
    lost: RefCell<BTreeSet<u64>>,
    inbox_arrived: Signal,
    inbox_space: Signal,
    stopped: Cell<bool>,
    stop: Signal,
}

impl Inner {
    /// Runs `future` unless the transport stops first.
    async fn until_stopped<T>(&self, future: impl Future<Output = T>) -> Option<T> {
        if self.stopped.get() {
            return None;
        }
        futures_lite::future::or(async { Some(future.await) }, async {
            self.stop.wait().await;
            None
        })
        .await
    }

    async fn sleep(&self, duration: Duration) {
        self.until_stopped(Timer::new(duration)).await;
    }
}

/// Runs `future` for at most `duration`.
async fn within<T>(duration: Duration, future: impl Future<Output = T>) -> Option<T> {
    futures_lite::future::or(async { Some(future.await) }, async {
        Timer::new(duration).await;
        None
    })
    .await
}

/// The links of this server to its peers. Shared by `Rc` on the executor.
pub struct PeerLinks {
    inner: Rc<Inner>,
}

/// Frames received from peers, in arrival order per connection.
pub struct PeerInbox {
    inner: Rc<Inner>,
}

impl PeerLinks {
    /// Binds my quorum address, starts the accept loop and one outbound
    /// link per peer. Must run on the glommio executor that will own it.
    pub async fn start(
        ensemble: &Ensemble,
        limits: PeerLimits,
        security: PeerSecurity,
    ) -> Result<(Rc<PeerLinks>, PeerInbox), PeerError> {
        let address = ensemble.me().quorum_address;
        // std's listener sets SO_REUSEADDR (a restarted server rebinds at
        // once) but not SO_REUSEPORT, which glommio's own bind sets: a
        // second process on the same quorum port must fail, not share it.
        // A server killed just before may still hold the port for a moment
        // (its io_uring is torn down asynchronously by the kernel), so
        // "in use" is retried for a bounded time before it is an error.
        let mut waited = Duration::ZERO;
        loop {
            match std::net::TcpListener::bind(address) {
                Ok(listener) => return Self::start_secured_on(ensemble, listener, limits, security).await,
                Err(error) if error.kind() == std::io::ErrorKind::AddrInUse && waited < BIND_RETRY_FOR => {
                    Timer::new(BIND_RETRY_INTERVAL).await;
                    waited += BIND_RETRY_INTERVAL;
                }
                Err(error) => return Err(PeerError::Bind { address, error }),
            }
        }
    }

    /// [`PeerLinks::start`] on a listener already bound (to port 0 in tests,
    /// whose ensembles carry the bound addresses).
    pub async fn start_on(
        ensemble: &Ensemble,
        listener: std::net::TcpListener,
        limits: PeerLimits,
    ) -> Result<(Rc<PeerLinks>, PeerInbox), PeerError> {
        Self::start_secured_on(ensemble, listener, limits, PeerSecurity::plain()).await
    }

    /// [`PeerLinks::start_on`] with TLS as `security` says.
    pub async fn start_secured_on(
        ensemble: &Ensemble,
        listener: std::net::TcpListener,
        limits: PeerLimits,
        security: PeerSecurity,
    ) -> Result<(Rc<PeerLinks>, PeerInbox), PeerError> {
        check_limits(&limits)?;
        let mut security = security;
        if security.tls.is_some() {
            // A member with no host given (tests build ensembles directly)
            // is verified against its quorum address.
            for member in ensemble.peers() {
                security
                    .hosts
                    .entry(member.id)
                    .or_insert_with(|| ServerName::IpAddress(member.quorum_address.ip().into()));
            }
        }
        let links = ensemble
            .peers()
            .map(|member| {
                let link = Link {
                    id: member.id,
                    address: member.quorum_address,
                    queue: RefCell::new(VecDeque::new()),
                    queue_bytes: Cell::new(0),
                    connected: Cell::new(false),
                    inbound_connected: Cell::new(false),
                    wake_writer: Signal::default(),
                    frames_sent: Cell::new(0),
                    bytes_sent: Cell::new(0),
                    frames_received: Cell::new(0),
                    bytes_received: Cell::new(0),
                    drops: Cell::new(0),
                    reconnects: Cell::new(0),
                    refusals: Cell::new(0),
                };
                (member.id, link)
            })
            .collect();
        let tls = match (&security.tls, security.ssl_quorum, security.port_unification) {
            (None, ..) => "off",
            (Some(_), true, false) => "sslQuorum",
            (Some(_), true, true) => "sslQuorum, plain peers accepted too (portUnification)",
            (Some(_), false, _) => "plain, TLS peers accepted too (portUnification)",
        };
        let inner = Rc::new(Inner {
            my_id: ensemble.my_id,
            security,
            identity: ensemble.identity,
            limits,
            links,
            inbound: RefCell::new(BTreeMap::new()),
            next_generation: Cell::new(0),
            handshakes_pending: Cell::new(0),
            inbox: RefCell::new(VecDeque::new()),
            lost: RefCell::new(BTreeSet::new()),
            inbox_arrived: Signal::default(),
            inbox_space: Signal::default(),
            stopped: Cell::new(false),
            stop: Signal::default(),
        });
        let local = listener.local_addr().ok();
        let descriptor = listener.into_raw_fd();
        // SAFETY: the descriptor comes from a listening socket we own, and
        // ownership passes to glommio's listener, which closes it.
        let listener = unsafe { TcpListener::from_raw_fd(descriptor) };
        glommio::spawn_local(accept_loop(inner.clone(), listener, descriptor)).detach();
        for &id in inner.links.keys() {
            glommio::spawn_local(run_link(inner.clone(), id)).detach();
        }
        info!(my_id = inner.my_id, address = ?local, peers = inner.links.len(), tls, "peer transport listening");
        Ok((Rc::new(PeerLinks { inner: inner.clone() }), PeerInbox { inner }))
    }

    /// Queues `frame` for `to` without waiting. Returns false, and counts a
    /// drop, when the queue is full, the frame is longer than
    /// [`PeerLimits::frame_bytes_max`], the id is unknown, or the link is
    /// down.
    pub fn send(&self, to: u64, frame: Vec<u8>) -> bool {
        let inner = &self.inner;
        let Some(link) = inner.links.get(&to) else {
            return false;
        };
        let limits = &inner.limits;
        let queue_full = link.queue.borrow().len() >= limits.send_queue_frames_max
            || link.queue_bytes.get().saturating_add(frame.len()) > limits.send_queue_bytes_max;
        if inner.stopped.get() || !link.connected.get() || frame.len() > limits.frame_bytes_max || queue_full {
            Link::add(&link.drops, 1);
            return false;
        }
        link.queue_bytes.set(link.queue_bytes.get() + frame.len());
        link.queue.borrow_mut().push_back(frame);
        link.wake_writer.notify();
        true
    }

    /// Whether a frame of `bytes` would be queued for `to` now (the link is
    /// up and its queue has room): a long stream waits on this instead of
    /// filling the queue and dropping.
    pub fn has_room(&self, to: u64, bytes: usize) -> bool {
        let inner = &self.inner;
        let Some(link) = inner.links.get(&to) else {
            return false;
        };
        let limits = &inner.limits;
        !inner.stopped.get()
            && link.connected.get()
            && link.queue.borrow().len() < limits.send_queue_frames_max
            && link.queue_bytes.get().saturating_add(bytes) <= limits.send_queue_bytes_max
    }

    /// Whether the outbound link to `to` is up.
    pub fn is_connected(&self, to: u64) -> bool {
        self.inner.links.get(&to).is_some_and(|link| link.connected.get()) && !self.inner.stopped.get()
    }

    /// Per peer, by ascending id: link state, queue depth and counters.
    pub fn stats(&self) -> Vec<PeerStats> {
        self.inner
            .links
            .values()
            .map(|link| PeerStats {
                id: link.id,
                connected: link.connected.get(),
                inbound_connected: link.inbound_connected.get(),
                queue_frames: link.queue.borrow().len(),
                queue_bytes: link.queue_bytes.get(),
                frames_sent: link.frames_sent.get(),
                bytes_sent: link.bytes_sent.get(),
                frames_received: link.frames_received.get(),
                bytes_received: link.bytes_received.get(),
                drops: link.drops.get(),
                reconnects: link.reconnects.get(),
                refusals: link.refusals.get(),
            })
            .collect()
    }

    /// Closes the listener and every link; the tasks end at their next step.
    pub fn stop(&self) {
        let inner = &self.inner;
        if inner.stopped.replace(true) {
            return;
        }
        inner.stop.notify();
        inner.inbox_arrived.notify();
        inner.inbox_space.notify();
        for link in inner.links.values() {
            link.wake_writer.notify();
        }
        info!(my_id = inner.my_id, "peer transport stopping");
    }
}

impl Drop for PeerLinks {
    fn drop(&mut self) {
        self.stop();
    }
}

impl PeerInbox {
    /// Waits for at least one frame, then moves every frame already
    /// received, up to `max`, into `out`, oldest first, each with its
    /// sender's id. Returns with nothing once the transport is stopped.
    pub async fn recv_batch(&self, out: &mut Vec<(u64, Vec<u8>)>, max: usize) {
        loop {
            if self.try_recv_batch(out, max) > 0 || self.inner.stopped.get() || max == 0 {
                return;
            }
            self.inner.inbox_arrived.wait().await;
        }
    }

    /// Moves up to `max` waiting frames into `out` without waiting; returns
    /// how many.
    pub fn try_recv_batch(&self, out: &mut Vec<(u64, Vec<u8>)>, max: usize) -> usize {
        let mut inbox = self.inner.inbox.borrow_mut();
        let count = inbox.len().min(max);
        out.extend(inbox.drain(..count));
        if count > 0 {
            self.inner.inbox_space.notify();
        }
        count
    }

    /// The peers whose inbound link fell since the last call, in id order.
    pub fn take_lost(&self) -> Vec<u64> {
        std::mem::take(&mut *self.inner.lost.borrow_mut()).into_iter().collect()
    }

    /// Completes when a frame is waiting or a link fell (or the transport
    /// stopped), to be combined with other wakeups in
    /// `futures_lite::future::or`.
    pub async fn ready(&self) {
        while self.inner.inbox.borrow().is_empty() && self.inner.lost.borrow().is_empty() && !self.inner.stopped.get() {
            self.inner.inbox_arrived.wait().await;
        }
    }
}

fn check_limits(limits: &PeerLimits) -> Result<(), PeerError> {
    let positive = |name: &'static str, value: usize| {
        if value == 0 {
            return Err(PeerError::Limit { name, value: value.to_string(), expected: "more than 0" });
        }
        Ok(())
    };
    positive("send_queue_frames_max", limits.send_queue_frames_max)?;
    positive("send_queue_bytes_max", limits.send_queue_bytes_max)?;
    positive("write_batch_bytes_max", limits.write_batch_bytes_max)?;
    positive("inbox_frames_max", limits.inbox_frames_max)?;
    positive("read_buffer_bytes", limits.read_buffer_bytes)?;
    positive("handshakes_pending_max", limits.handshakes_pending_max)?;
    if u32::try_from(limits.frame_bytes_max).is_err() {
        return Err(PeerError::Limit {
            name: "frame_bytes_max",
            value: limits.frame_bytes_max.to_string(),
            expected: "at most 4294967295, the frame header's length field",
        });
    }
    if limits.handshake_timeout.is_zero() || limits.reconnect_backoff_min.is_zero() {
        return Err(PeerError::Limit {
            name: "handshake_timeout/reconnect_backoff_min",
            value: format!("{:?}/{:?}", limits.handshake_timeout, limits.reconnect_backoff_min),
            expected: "more than 0",
        });
    }
    Ok(())
}

/// Accepts peer connections until the transport stops.
async fn accept_loop(inner: Rc<Inner>, listener: TcpListener, descriptor: std::os::unix::io::RawFd) {
    loop {
        let Some(accepted) = inner.until_stopped(listener.accept()).await else {
            // The accept in flight in io_uring holds the socket open until
            // the ring lets it go, which the kernel does asynchronously
            // (even after the thread or the process is gone), and a server
            // restarted on this port would find it taken. Shutting the
            // listening socket down closes it for the network at once.
            // SAFETY: `listener` owns `descriptor` and is alive here.
            unsafe { libc::shutdown(descriptor, libc::SHUT_RDWR) };
            return;
        };
        let stream = match accepted {
            Ok(stream) => stream,
            Err(error) => {
                // Out of descriptors and the like: wait a little rather than spin.
                warn!(%error, "peer accept failed");
                inner.sleep(inner.limits.reconnect_backoff_min).await;
                continue;
            }
        };
        let remote = stream.peer_addr().ok();
        if inner.handshakes_pending.get() >= inner.limits.handshakes_pending_max {
            warn!(
                ?remote,
                bound = inner.limits.handshakes_pending_max,
                "peer connection closed: too many handshakes pending"
            );
            continue;
        }
        inner.handshakes_pending.set(inner.handshakes_pending.get() + 1);
        glommio::spawn_local(serve_inbound(inner.clone(), stream, remote)).detach();
    }
}

/// Reads the hello of one inbound connection, answers it, and if it is
/// accepted reads frames from it until it closes, fails, is replaced or
/// the transport stops.
async fn serve_inbound(inner: Rc<Inner>, stream: TcpStream, remote: Option<SocketAddr>) {
    let _ = stream.set_nodelay(true);
    let limits = &inner.limits;
    let greeting = async {
        let stream = secure_inbound(&inner, stream).await?;
        greet_inbound(&inner, stream).await
    };
    let greeted = inner.until_stopped(within(limits.handshake_timeout, greeting)).await;
    inner.handshakes_pending.set(inner.handshakes_pending.get().saturating_sub(1));
    let (sender, stream) = match greeted {
        None => return,
        Some(None) => {
            warn!(?remote, timeout = ?limits.handshake_timeout, "peer connection closed: no handshake in time");
            return;
        }
        Some(Some(Err(reason))) => {
            warn!(?remote, %reason, "peer connection refused");
            return;
        }
        Some(Some(Ok(accepted))) => accepted,
    };

    let generation = inner.next_generation.get();
    inner.next_generation.set(generation + 1);
    let close = Rc::new(Signal::default());
    let replaced = inner.inbound.borrow_mut().insert(sender, Inbound { generation, close: close.clone() });
    if let Some(old) = replaced {
        info!(peer = sender, ?remote, "newer inbound peer connection replaces the old one");
        old.close.notify();
    }
    let link = &inner.links[&sender];
    link.inbound_connected.set(true);
    debug!(peer = sender, ?remote, "inbound peer link up");

    let reader = BufReader::with_capacity(limits.read_buffer_bytes, stream);
    let reason = futures_lite::future::or(read_frames(&inner, link, reader), async {
        close.wait().await;
        "replaced by a newer connection from the same server".to_string()
    });
    let reason = inner.until_stopped(reason).await.unwrap_or_else(|| "transport stopped".to_string());

    let mut inbound = inner.inbound.borrow_mut();
    if inbound.get(&sender).is_some_and(|current| current.generation == generation) {
        inbound.remove(&sender);
        link.inbound_connected.set(false);
        if !inner.stopped.get() {
            inner.lost.borrow_mut().insert(sender);
            inner.inbox_arrived.notify();
        }
    }
    if reason.starts_with("bad frame") {
        warn!(peer = sender, ?remote, %reason, "inbound peer link closed");
    } else {
        info!(peer = sender, ?remote, %reason, "inbound peer link closed");
    }
}

/// The acceptor's half of the handshake: the sender's id and the stream,
/// or why it was refused.
async fn greet_inbound(inner: &Inner, mut stream: PeerStream) -> Result<(u64, PeerStream), String> {
    let mut bytes = [0u8; HELLO_BYTES];
    stream.read_exact(&mut bytes).await.map_err(|error| format!("no hello: {error}"))?;
    let verdict_of_error = |error: &WireError| match error {
        WireError::Version { .. } => Some(Verdict::Version),
        _ => None,
    };
    let mut certificate_error = None;
    let (hello, verdict) = match Hello::decode(&bytes) {
        Ok(hello) => {
            let verdict = hello.judge(inner.my_id, inner.identity, |id| inner.links.contains_key(&id));
            match check_certificate(inner, &stream, hello.sender, verdict) {
                Ok(()) => (Some(hello), verdict),
                Err(error) => {
                    certificate_error = Some(error);
                    (Some(hello), Verdict::Certificate)
                }
            }
        }
        Err(error) => match verdict_of_error(&error) {
            Some(verdict) => (None, verdict),
            // Not a zoocore peer at all: close without an answer.
            None => return Err(format!("bad hello: {error}")),
        },
    };
    let answer = Answer { verdict, acceptor: inner.my_id, identity: inner.identity };
    // The refused side reads the answer to log the reason; a failed write
    // only loses that courtesy.
    let written = send_all(&mut stream, &answer.encode()).await;
    match (hello, verdict) {
        (Some(hello), Verdict::Accepted) => {
            written.map_err(|error| format!("server {}: cannot answer the hello: {error}", hello.sender))?;
            Ok((hello.sender, stream))
        }
        (Some(hello), verdict) => Err(format!(
            "server {} (ensemble {:#018x}, meaning to reach {}): {}{}",
            hello.sender,
            hello.identity,
            hello.receiver,
            verdict.reason(),
            certificate_error.map(|error| format!(": {error}")).unwrap_or_default()
        )),
        (None, verdict) => Err(verdict.reason().to_string()),
    }
}

/// Reads frames into the inbox until the connection fails; returns why.
async fn read_frames(inner: &Inner, link: &Link, mut reader: BufReader<PeerStream>) -> String {
    let frame_bytes_max = inner.limits.frame_bytes_max;
    loop {
        let mut header = [0u8; FRAME_HEADER_BYTES];
        if let Err(error) = reader.read_exact(&mut header).await {
            return match error.kind() {
                std::io::ErrorKind::UnexpectedEof => "closed by the peer".to_string(),
                _ => format!("read failed: {error}"),
            };
        }
        let header = match FrameHeader::decode(&header, frame_bytes_max) {
            Ok(header) => header,
            Err(error) => return format!("bad frame: {error}"),
        };
        let mut payload = vec![0u8; header.length];
        if let Err(error) = reader.read_exact(&mut payload).await {
            return format!("read failed inside a frame of {} bytes: {error}", header.length);
        }
        if let Err(error) = header.check(&payload) {
            return format!("bad frame: {error}");
        }
        // A full inbox stops this reader, and TCP then stops the sender.
        while inner.inbox.borrow().len() >= inner.limits.inbox_frames_max {
            if inner.stopped.get() {
                return "transport stopped".to_string();
            }
            inner.inbox_space.wait().await;
        }
        Link::add(&link.frames_received, 1);
        Link::add(&link.bytes_received, payload.len());
        inner.inbox.borrow_mut().push_back((link.id, payload));
        inner.inbox_arrived.notify();
    }
}

/// Keeps the outbound link to one peer up until the transport stops.
async fn run_link(inner: Rc<Inner>, id: u64) {
    let link = &inner.links[&id];
    let limits = &inner.limits;
    let mut backoff = limits.reconnect_backoff_min;
    let mut ever_connected = false;
    let mut last_failure = String::new();
    while !inner.stopped.get() {
        let attempt = within(limits.handshake_timeout, connect(&inner, link)).await;
        let failure = match attempt {
            Some(Ok(stream)) => {
                if ever_connected {
                    Link::add(&link.reconnects, 1);
                }
                ever_connected = true;
                last_failure.clear();
                link.connected.set(true);
                info!(peer = id, address = %link.address, "outbound peer link up");
                let up_since = Instant::now();
                let reason = inner.until_stopped(pump(&inner, link, stream)).await;
                link.connected.set(false);
                link.drop_queue();
                let reason = reason.unwrap_or_else(|| "transport stopped".to_string());
                info!(peer = id, %reason, "outbound peer link down");
                if up_since.elapsed() >= limits.reconnect_backoff_max {
                    // A link that lived is tried again at once: a failover
                    // waits on it.
                    backoff = limits.reconnect_backoff_min;
                    continue;
                }
                // A link that fell at once (the peer closes on us, or a
                // second process with our id keeps replacing us there)
                // backs off like a failed attempt instead of looping hot.
                format!("the link fell as soon as it was up: {reason}")
            }
            Some(Err(reason)) => reason,
            None => format!("no connection and handshake within {:?}", limits.handshake_timeout),
        };
        // The first failure of a kind is worth a line; a peer that stays
        // down would otherwise fill the log once a second.
        if failure != last_failure {
            warn!(peer = id, address = %link.address, reason = %failure, retry_in = ?backoff, "cannot link to peer");
            last_failure = failure;
        } else {
            debug!(peer = id, reason = %last_failure, "cannot link to peer");
        }
        inner.sleep(backoff).await;
        backoff = (backoff * 2).min(limits.reconnect_backoff_max);
    }
}

/// The connector's half of the handshake.
async fn connect(inner: &Inner, link: &Link) -> Result<PeerStream, String> {
    let stream = TcpStream::connect_timeout(link.address, inner.limits.handshake_timeout)
        .await
        .map_err(|error| format!("connect failed: {error}"))?;
    let _ = stream.set_nodelay(true);
    let mut stream = match (inner.security.dialling(), inner.security.hosts.get(&link.id)) {
        (Some(tls), Some(host)) => match tls.connector().connect(host.clone(), stream).await {
            Ok(stream) => PeerStream::Tls(Box::new(futures_rustls::TlsStream::Client(stream))),
            Err(error) => return Err(format!("TLS handshake with {} failed (sslQuorum): {error}", host.to_str())),
        },
        _ => PeerStream::Plain(stream),
    };
    let hello = Hello { sender: inner.my_id, receiver: link.id, identity: inner.identity };
    send_all(&mut stream, &hello.encode()).await.map_err(|error| format!("cannot send the hello: {error}"))?;
    let mut bytes = [0u8; ANSWER_BYTES];
    stream.read_exact(&mut bytes).await.map_err(|error| format!("no answer to the hello: {error}"))?;
    let answer = Answer::decode(&bytes).map_err(|error| format!("bad answer: {error}"))?;
    if answer.verdict != Verdict::Accepted {
        Link::add(&link.refusals, 1);
        return Err(format!(
            "refused by server {} (ensemble {:#018x}, ours {:#018x}): {}",
            answer.acceptor,
            answer.identity,
            inner.identity,
            answer.verdict.reason()
        ));
    }
    if answer.acceptor != link.id {
        return Err(format!("the server at {} is server {}, not {}", link.address, answer.acceptor, link.id));
    }
    Ok(stream)
}

/// Writes queued frames until the connection fails; returns why. The peer
/// never writes after its answer, so a read that returns tells that the
/// connection is gone even while nothing is being sent.
async fn pump(inner: &Inner, link: &Link, stream: PeerStream) -> String {
    let (mut reader, mut writer) = futures_lite::io::split(stream);
    let closed = async move {
        let mut byte = [0u8; 1];
        match reader.read(&mut byte).await {
            Ok(0) => "closed by the peer".to_string(),
            Ok(_) => "the peer wrote after its answer".to_string(),
            Err(error) => format!("read failed: {error}"),
        }
    };
    let write = async {
        let batch_bytes_max = inner.limits.write_batch_bytes_max;
        let mut buffer = Vec::new();
        loop {
            while link.queue.borrow().is_empty() {
                if inner.stopped.get() {
                    return "transport stopped".to_string();
                }
                link.wake_writer.wait().await;
            }
            buffer.clear();
            let (mut frames, mut payload_bytes) = (0usize, 0usize);
            {
                let mut queue = link.queue.borrow_mut();
                while let Some(front) = queue.front() {
                    if !buffer.is_empty() && buffer.len() + FRAME_HEADER_BYTES + front.len() > batch_bytes_max {
                        break;
                    }
                    let Some(frame) = queue.pop_front() else { break };
                    wire::encode_frame(&frame, &mut buffer);
                    frames += 1;
                    payload_bytes += frame.len();
                }
            }
            link.queue_bytes.set(link.queue_bytes.get().saturating_sub(payload_bytes));
            if let Err(error) = send_all(&mut writer, &buffer).await {
                return format!("write failed: {error}");
            }
            Link::add(&link.frames_sent, frames);
            Link::add(&link.bytes_sent, payload_bytes);
            // A snapshot chunk must not pin tens of MiB for the link's life.
            if buffer.capacity() > batch_bytes_max.saturating_mul(2) {
                buffer = Vec::new();
            }
        }
    };
    futures_lite::future::or(closed, write).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::{block_on, poll_once};

    #[test]
    fn waits_complete_on_notify_and_dropped_waits_leave_no_waker() {
        let signal = Signal::default();
        block_on(async {
            for _ in 0..100 {
                let mut wait = Box::pin(signal.wait());
                assert!(poll_once(&mut wait).await.is_none());
                assert_eq!(signal.wakers.borrow().len(), 1);
            }
        });
        assert!(signal.wakers.borrow().is_empty());

        let mut wait = Box::pin(signal.wait());
        assert!(block_on(poll_once(&mut wait)).is_none());
        signal.notify();
        assert!(signal.wakers.borrow().is_empty());
        assert_eq!(block_on(poll_once(&mut wait)), Some(()));
        // A wait begun after the notify waits for the next one.
        let mut later = Box::pin(signal.wait());
        assert!(block_on(poll_once(&mut later)).is_none());
    }
}
