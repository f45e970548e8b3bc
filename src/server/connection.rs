//! One client connection on its shard: a reader task that decodes frames
//! and dispatches them, and a writer task that drains the outbox.
//!
//! Per-session FIFO: a write goes to the broadcast core and takes a place in
//! `pending`; a read that arrives while a write is pending waits behind it
//! and is served when the write's reply is sent, from the tree that already
//! holds the write. Reads with nothing ahead of them are answered at once.
//! A write that arrives while reads wait is held until they are served:
//! otherwise it could commit in the same batch as the write they wait for,
//! and they would see it, which ZooKeeper's strict per-session order forbids.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Instant;

use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use tracing::{debug, info, warn};

use super::close::CloseReason;
use super::messages::{ConnectionId, ReplyBody, ToBroadcast};
use super::outbox::Outbox;
use super::shard::Shard;
use super::shared::Shared;
use crate::acl;
use crate::auth::{Mechanisms, SaslExchange, SaslStep};
use crate::metrics::WriteStage;
use crate::ops::fourletter;
use crate::ops::ConnectionInfo;
use crate::proto::codes::{add_watch_mode, four_letter_word, op, state};
use crate::proto::jute::write_frame;
use crate::proto::response::{write_event, write_reply};
use crate::proto::{
    ConnectRequest, ConnectResponse, DecodeError, ErrorCode, Id, ReplyHeader, Request, Response, WatcherEvent,
};
use crate::read;
use crate::session::SessionTracker;
use crate::watch::Table;

use crate::limits::CLOSE_LINGER;
pub use crate::limits::CONNECTION_FIXED_BYTES;
use crate::limits::OUTBOX_BACKPRESSURE_BYTES;
use crate::limits::OUTBOX_BYTES_MAX;
use crate::limits::READ_BUFFER_BYTES;
use crate::limits::READ_BUFFER_INITIAL_BYTES;

enum Pending {
    Write { started: Instant, close_session: bool },
    Local { xid: i32, work: LocalWork, started: Instant },
}

/// What a shard answers by itself: a request, or the error for one that
/// could not be decoded (ZooKeeper answers MarshallingError and keeps the
/// connection).
enum LocalWork {
    Request(Request),
    Error(ErrorCode, Response),
}

pub struct Connection {
    pub id: ConnectionId,
    pub peer: SocketAddr,
    pub info: Arc<ConnectionInfo>,
    session_id: Cell<i64>,
    sent_read_only_byte: Cell<bool>,
    auth: RefCell<Arc<[Id]>>,
    /// The connection's SASL exchange, made at its first sasl packet.
    sasl: RefCell<Option<SaslExchange>>,
    pending: RefCell<VecDeque<Pending>>,
    pub outbox: Outbox,
    handshake: Cell<Option<bool>>,
    handshake_waker: Cell<Option<Waker>>,
    /// Reads in `pending`, and the reader task waiting for them to drain.
    waiting_reads: Cell<usize>,
    reads_drained: Cell<Option<Waker>>,
    /// The read buffer's size, for the connection memory limit.
    read_buffer_bytes: Cell<usize>,
    /// What the connection holds besides its buffers: more on TLS.
    fixed_bytes: usize,
}

impl Connection {
    fn new(id: ConnectionId, peer: SocketAddr, fixed_bytes: usize) -> Self {
        Connection {
            id,
            peer,
            info: Arc::new(ConnectionInfo::new(peer)),
            session_id: Cell::new(0),
            sent_read_only_byte: Cell::new(false),
            auth: RefCell::new(Arc::from(vec![Id::new("ip", &peer.ip().to_string())])),
            sasl: RefCell::new(None),
            pending: RefCell::new(VecDeque::new()),
            outbox: Outbox::default(),
            handshake: Cell::new(None),
            handshake_waker: Cell::new(None),
            waiting_reads: Cell::new(0),
            reads_drained: Cell::new(None),
            read_buffer_bytes: Cell::new(0),
            fixed_bytes,
        }
    }

    /// Memory this connection holds, for the shard's connection memory
    /// limit: its buffers and a fixed estimate for the rest.
    pub fn memory_bytes(&self) -> usize {
        self.fixed_bytes + self.read_buffer_bytes.get() + self.outbox.held_bytes()
    }

    pub fn session_id(&self) -> i64 {
        self.session_id.get()
    }

    fn check_outbox_bound(&self) {
        if self.outbox.pending_bytes() > OUTBOX_BYTES_MAX && !self.outbox.is_aborted() {
            self.outbox.abort(CloseReason::NotReading { bound_bytes: OUTBOX_BYTES_MAX });
        }
    }

    /// Sends a reply; `started` (with whether the request was a write)
    /// feeds the latency statistics.
    fn send_reply(&self, shard: &Shard, header: ReplyHeader, response: &Response, started: Option<(Instant, bool)>) {
        tracing::trace!(peer = %self.peer, xid = header.xid, err = header.err, "reply");
        self.outbox.push(|out| write_reply(out, header, response));
        self.info.packets_sent.fetch_add(1, Ordering::Relaxed);
        self.info.last_zxid.store(header.zxid, Ordering::Relaxed);
        let stats = &shard.shared.shard_stats[shard.id];
        stats.packets_sent.fetch_add(1, Ordering::Relaxed);
        if let Some((started, write)) = started {
            let now = Instant::now();
            let micros = now.saturating_duration_since(started).as_micros() as u64;
            // Once for the server (srvr, mntr, Prometheus) and once for
            // this connection (cons).
            shard.shared.metrics.shards[shard.id].record_request(write, micros);
            self.info.latency.record(micros / 1000);
            let since_start = now.saturating_duration_since(shard.shared.started).as_millis() as i64;
            self.info.last_response_ms.store(since_start, Ordering::Relaxed);
        }
        self.check_outbox_bound();
    }

    pub fn send_event(&self, shard: &Shard, event_type: i32, path: &str) {
        let event = WatcherEvent { event_type, state: state::SYNC_CONNECTED, path: path.to_string() };
        self.outbox.push(|out| write_event(out, &event));
        self.info.packets_sent.fetch_add(1, Ordering::Relaxed);
        shard.shared.shard_stats[shard.id].packets_sent.fetch_add(1, Ordering::Relaxed);
        self.check_outbox_bound();
    }

    fn finish_handshake(&self, accepted: bool) {
        self.handshake.set(Some(accepted));
        if let Some(waker) = self.handshake_waker.take() {
            waker.wake();
        }
    }

    /// Resolves once no read waits in `pending`.
    async fn reads_served(&self) {
        poll_fn(|context| {
            if self.waiting_reads.get() == 0 || self.outbox.is_closing() {
                Poll::Ready(())
            } else {
                self.reads_drained.set(Some(context.waker().clone()));
                Poll::Pending
            }
        })
        .await
    }

    async fn handshake_result(&self) -> bool {
        poll_fn(|context| match self.handshake.get() {
            Some(result) => Poll::Ready(result),
            None if self.outbox.is_closing() => Poll::Ready(false),
            None => {
                self.handshake_waker.set(Some(context.waker().clone()));
                Poll::Pending
            }
        })
        .await
    }

    /// The handshake's answer; its readOnly flag only if the client sent
    /// one (older clients read no trailing byte).
    fn write_connect_response(&self, session_id: i64, timeout_ms: i32, password: [u8; 16], read_only: bool) {
        let response = ConnectResponse {
            protocol_version: 0,
            timeout_ms,
            session_id,
            password: password.to_vec(),
            read_only: self.sent_read_only_byte.get().then_some(read_only),
        };
        self.outbox.push(|out| write_frame(out, |writer| response.encode(writer)));
    }

    /// A reply from the broadcast core, in commit order.
    pub fn on_reply(&self, shard: &Shard, body: ReplyBody) {
        match body {
            ReplyBody::Response { xid, zxid, err, response } => {
                let front = self.pending.borrow_mut().pop_front();
                let (started, close_session) = match front {
                    Some(Pending::Write { started, close_session }) => (Some(started), close_session),
                    _ => (None, false),
                };
                self.release_one(shard);
                self.send_reply(
                    shard,
                    ReplyHeader { xid, zxid, err: err.code() },
                    &response,
                    started.map(|at| (at, true)),
                );
                if close_session {
                    self.outbox.close(CloseReason::SessionClosedByClient);
                }
                self.serve_waiting_reads(shard);
            }
            ReplyBody::Connected { session_id, timeout_ms, password, read_only } => {
                self.session_id.set(session_id);
                self.info.session_id.store(session_id, Ordering::Relaxed);
                self.info.timeout_ms.store(timeout_ms as i64, Ordering::Relaxed);
                self.write_connect_response(session_id, timeout_ms, password, read_only);
                self.finish_handshake(true);
            }
            ReplyBody::Refused => {
                self.write_connect_response(0, 0, [0; 16], false);
                self.finish_handshake(false);
                self.outbox.close(CloseReason::SessionExpiredOrWrongPassword);
            }
            ReplyBody::Close { reason } => {
                // Expired or moved: closed at once, whatever is queued, as
                // ZooKeeper closes an expired session's connection.
                self.outbox.abort(CloseReason::Node(reason));
            }
        }
    }

    fn release_one(&self, shard: &Shard) {
        shard.permits.signal(1);
        self.info.outstanding.fetch_sub(1, Ordering::Relaxed);
        shard.shared.shard_stats[shard.id].outstanding_requests.fetch_sub(1, Ordering::Relaxed);
    }

    /// Serves the reads queued behind a write that just completed, up to
    /// the next write.
    fn serve_waiting_reads(&self, shard: &Shard) {
        loop {
            let next = {
                let mut pending = self.pending.borrow_mut();
                match pending.front() {
                    Some(Pending::Local { .. }) => pending.pop_front(),
                    _ => None,
                }
            };
            let Some(Pending::Local { xid, work, started }) = next else {
                if self.waiting_reads.get() == 0 {
                    if let Some(waker) = self.reads_drained.take() {
                        waker.wake();
                    }
                }
                return;
            };
            self.waiting_reads.set(self.waiting_reads.get() - 1);
            self.release_one(shard);
            self.serve_local(shard, xid, work, started);
        }
    }

    /// Answers a request that never leaves the shard.
    fn serve_local(&self, shard: &Shard, xid: i32, work: LocalWork, started: Instant) {
        if matches!(&work, LocalWork::Request(request) if request.may_add_watch()) {
            shard.expect_watch();
        }
        let tree = shard.tree();
        let zxid = tree.last_zxid();
        let reply = |err: ErrorCode, response: Response| {
            self.send_reply(shard, ReplyHeader { xid, zxid, err: err.code() }, &response, Some((started, false)));
        };
        let request = match work {
            LocalWork::Request(request) => request,
            LocalWork::Error(err, response) => return reply(err, response),
        };
        match request {
            Request::Ping => {
                // ZooKeeper answers every ping with xid -2, whatever was sent.
                let header = ReplyHeader { xid: crate::proto::codes::xid::PING, zxid, err: 0 };
                self.send_reply(shard, header, &Response::Empty, Some((started, false)));
            }
            Request::SetWatches(watches) => {
                let resync = read::resync_watches(&tree, &watches);
                for (event_type, path) in &resync.events {
                    self.send_event(shard, *event_type, path);
                }
                {
                    let mut table = shard.watches_mut();
                    for registration in resync.registrations {
                        table.add(registration.table, &registration.path, self.id, registration.mode);
                    }
                }
                reply(ErrorCode::Ok, Response::Empty);
            }
            Request::AddWatch { path, mode } => {
                // ZooKeeper takes any path here, and rejects an unknown mode
                // as it fails to decode it.
                if !(mode == add_watch_mode::PERSISTENT || mode == add_watch_mode::PERSISTENT_RECURSIVE) {
                    return reply(ErrorCode::MarshallingError, Response::Empty);
                }
                let recursive = mode == add_watch_mode::PERSISTENT_RECURSIVE;
                shard.watches_mut().add_persistent(&path, self.id, recursive);
                // ZooKeeper answers addWatch with an ErrorResponse body of 0.
                reply(ErrorCode::Ok, Response::Number(0));
            }
            Request::CheckWatches { path, watcher_type } => {
                let found = shard.watches.borrow().contains(&path, self.id, watcher_type);
                reply(if found { ErrorCode::Ok } else { ErrorCode::NoWatcher }, Response::Empty);
            }
            Request::RemoveWatches { watcher_type, .. } if !(1..=5).contains(&watcher_type) => {
                reply(ErrorCode::MarshallingError, Response::Empty);
            }
            Request::RemoveWatches { path, watcher_type } => {
                let removed = shard.watches_mut().remove(&path, self.id, watcher_type);
                reply(if removed { ErrorCode::Ok } else { ErrorCode::NoWatcher }, Response::Empty);
            }
            request => {
                let auth = self.auth.borrow().clone();
                let answer = read::serve(&tree, &request, self.session_id(), &auth);
                if let Some(registration) = answer.watch {
                    let table: Table = registration.table;
                    shard.watches_mut().add(table, &registration.path, self.id, registration.mode);
                }
                reply(answer.err, answer.response);
            }
        }
    }

    /// Adds identities for later requests; ZooKeeper lists the
    /// connection's ip identity last (whoAmI).
    fn add_auth_ids(&self, ids: Vec<Id>) {
        let mut auth: Vec<Id> = self.auth.borrow().to_vec();
        for id in ids {
            if !auth.contains(&id) {
                let position = auth.iter().position(|known| known.scheme == "ip").unwrap_or(auth.len());
                auth.insert(position, id);
            }
        }
        *self.auth.borrow_mut() = Arc::from(auth);
    }

    /// One sasl packet (opcode 102), answered at once with zxid 0 as
    /// ZooKeeper's processSasl does; the exchange itself is
    /// [`crate::auth`] (DIGEST-MD5 or GSSAPI). False when the connection must close: a failed
    /// exchange gets AuthFailed (SessionClosedRequireSaslAuth when SASL is
    /// enforced) and a null token, unless `allowSaslFailedClients` keeps it.
    fn sasl_step(&self, shard: &Shard, xid: i32, token: &[u8]) -> bool {
        let auth_config = &shard.shared.config.auth;
        let reply = |err: ErrorCode, token: Option<Vec<u8>>| {
            self.send_reply(shard, ReplyHeader { xid, zxid: 0, err: err.code() }, &Response::Sasl(token), None);
        };
        let sasl_required =
            auth_config.enforce_auth_schemes.as_ref().is_some_and(|schemes| schemes.iter().any(|s| s == "sasl"));
        let mechanisms = Mechanisms {
            digest: auth_config.sasl_credentials.as_ref(),
            kerberos: auth_config.kerberos.as_deref(),
            mapping: &auth_config.principal_mapping,
        };
        // The first packet chooses the mechanism; a failed exchange stays
        // in place, so whatever follows it fails too.
        let result = {
            let mut slot = self.sasl.borrow_mut();
            match &mut *slot {
                Some(exchange) => exchange.step(token, mechanisms),
                None => SaslExchange::start(token, mechanisms)
                    .and_then(|exchange| slot.insert(exchange).step(token, mechanisms)),
            }
        };
        match result {
            Ok(SaslStep::Continue(challenge)) => {
                reply(ErrorCode::Ok, Some(challenge));
                true
            }
            Ok(SaslStep::Complete { token, authorization_id, principal }) => {
                if let Some(principal) = principal {
                    info!(peer = %self.peer, "Successfully authenticated client: authenticationID={principal}");
                }
                info!(
                    peer = %self.peer,
                    session = format_args!("0x{:x}", self.session_id()),
                    "adding SASL authorization for authorizationID: {authorization_id}"
                );
                let mut ids = vec![Id::new("sasl", &authorization_id)];
                if auth_config.super_user.as_deref() == Some(authorization_id.as_str()) {
                    ids.push(Id::new("super", ""));
                }
                self.add_auth_ids(ids);
                reply(ErrorCode::Ok, token);
                true
            }
            Err(error) => {
                shard.shared.metrics.auth_failed.fetch_add(1, Ordering::Relaxed);
                warn!(peer = %self.peer, %error, "client failed to SASL authenticate");
                if auth_config.allow_sasl_failed_clients && !sasl_required {
                    warn!(peer = %self.peer, "keeping the connection despite the SASL failure (allowSaslFailedClients)");
                    reply(ErrorCode::Ok, None);
                    return true;
                }
                let err = if sasl_required { ErrorCode::SessionClosedRequireSaslAuth } else { ErrorCode::AuthFailed };
                reply(err, None);
                false
            }
        }
    }

    /// addauth: identities are added for later requests at once, as
    /// ZooKeeper does in its IO thread; an unknown scheme fails the
    /// connection.
    /// The reply echoes the request's xid (-4 from most clients) with zxid 0.
    fn authenticate(&self, shard: &Shard, xid: i32, scheme: &str, data: &[u8]) -> bool {
        let super_digest = shard.shared.config.tunables.super_digest.as_deref();
        let header = |err: ErrorCode| ReplyHeader { xid, zxid: 0, err: err.code() };
        match acl::authenticate(scheme, data, super_digest, &self.peer.ip().to_string()) {
            Some(ids) => {
                self.add_auth_ids(ids);
                self.send_reply(shard, header(ErrorCode::Ok), &Response::Empty, None);
                true
            }
            None => {
                shard.shared.metrics.auth_failed.fetch_add(1, Ordering::Relaxed);
                warn!(peer = %self.peer, scheme, "authentication failed: unknown scheme");
                self.send_reply(shard, header(ErrorCode::AuthFailed), &Response::Empty, None);
                false
            }
        }
    }
}

/// Reads whole frames from a socket into one reusable buffer.
struct FrameReader {
    buffer: Vec<u8>,
    start: usize,
    end: usize,
}

impl FrameReader {
    fn new() -> Self {
        FrameReader { buffer: vec![0; READ_BUFFER_INITIAL_BYTES], start: 0, end: 0 }
    }

    fn available(&self) -> &[u8] {
        &self.buffer[self.start..self.end]
    }

    /// Reads until `need` bytes are buffered, the peer closes, or the
    /// connection starts closing. The buffer grows only when a read has
    /// filled it: its size follows the bytes that arrived, never a length
    /// the peer merely claims.
    async fn fill<R: futures_lite::AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
        connection: &Connection,
        need: usize,
    ) -> Result<(), CloseReason> {
        let outbox = &connection.outbox;
        while self.end - self.start < need {
            if self.start > 0 && self.buffer.len() - self.start < need {
                self.buffer.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.end == self.buffer.len() {
                let grown = (self.buffer.len() * 2).min(need.max(READ_BUFFER_BYTES)).max(self.end + 1);
                self.buffer.resize(grown, 0);
                connection.read_buffer_bytes.set(self.buffer.len());
            }
            let free = &mut self.buffer[self.end..];
            let read = futures_lite::future::or(async { Some(reader.read(free).await) }, async {
                outbox.closed().await;
                None
            })
            .await;
            match read {
                None => return Err(closed_reason(outbox)),
                Some(Ok(0)) if self.end == self.start => return Err(CloseReason::ClientClosed),
                Some(Ok(0)) => return Err(CloseReason::ClientClosedMidPacket),
                Some(Ok(count)) => self.end += count,
                Some(Err(error)) => return Err(CloseReason::ReadFailed(error.to_string())),
            }
        }
        Ok(())
    }

    /// The next frame's body; its length must be within [0, max].
    async fn next_frame<R: futures_lite::AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
        connection: &Connection,
        max: usize,
    ) -> Result<std::ops::Range<usize>, CloseReason> {
        self.fill(reader, connection, 4).await?;
        let prefix = self.available();
        let length = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
        if length < 0 || length as usize > max {
            return Err(CloseReason::PacketLength { length, max });
        }
        self.fill(reader, connection, 4 + length as usize).await?;
        let body = self.start + 4..self.start + 4 + length as usize;
        self.start = body.end;
        Ok(body)
    }

    /// Frees a buffer grown for a large frame once it has been handled.
    fn shrink(&mut self, connection: &Connection) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.buffer.len() > READ_BUFFER_BYTES {
                self.buffer.truncate(READ_BUFFER_BYTES);
                self.buffer.shrink_to_fit();
                connection.read_buffer_bytes.set(self.buffer.len());
            }
        }
    }
}

/// Runs the TLS handshake of a connection on the secure port, bounded by
/// `tls::HANDSHAKE_TIMEOUT` (rustls bounds its size), then serves it like
/// any other, with the `x509` identity of a verified client certificate.
/// A failed handshake (a plain-text client, an untrusted, expired or
/// missing certificate under `ssl.clientAuth=need`) closes only this
/// connection, with the reason logged.
pub async fn serve_tls(
    shard: Rc<Shard>,
    stream: TcpStream,
    peer: SocketAddr,
    id: ConnectionId,
    context: crate::tls::TlsContext,
) {
    let handshake = futures_lite::future::or(async { Some(context.acceptor().accept(stream).await) }, async {
        glommio::timer::Timer::new(crate::tls::HANDSHAKE_TIMEOUT).await;
        None
    })
    .await;
    let refused = |reason: String| {
        shard.shared.release_connection(peer.ip());
        info!(%peer, reason, "TLS connection closed before a session");
    };
    let stream = match handshake {
        Some(Ok(stream)) => stream,
        Some(Err(error)) => {
            return refused(format!("TLS handshake failed: {error}"));
        }
        None => {
            return refused(format!("TLS handshake not finished within {} s", crate::tls::HANDSHAKE_TIMEOUT.as_secs()))
        }
    };
    // ZooKeeper's X509AuthenticationProvider: the first certificate of the
    // verified chain names the client; one that gives no name is an
    // authentication failure that closes the connection.
    let ids = match stream.get_ref().1.peer_certificates().and_then(|chain| chain.first()) {
        None => Vec::new(),
        Some(certificate) => match crate::auth::x509::identities(certificate, context.x509_super_user.as_deref()) {
            Ok(ids) => {
                if let Some(id) = ids.last() {
                    info!(%peer, id = %id.id, "authenticated id for scheme 'x509'");
                }
                ids
            }
            Err(error) => {
                shard.shared.metrics.auth_failed.fetch_add(1, Ordering::Relaxed);
                return refused(format!("x509 authentication failed: {error}"));
            }
        },
    };
    serve(shard, stream, peer, id, ids, crate::tls::CONNECTION_TLS_BYTES).await;
}

/// Serves one connection until it closes; `ids` are identities its
/// transport established (a TLS client certificate's), added to its
/// connection's `ip`, and `transport_bytes` what the transport holds per
/// connection (rustls's state; 0 for a plain socket).
pub async fn serve<S>(
    shard: Rc<Shard>,
    stream: S,
    peer: SocketAddr,
    id: ConnectionId,
    ids: Vec<Id>,
    transport_bytes: usize,
) where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let fixed_bytes = CONNECTION_FIXED_BYTES + transport_bytes;
    let (mut reader, writer) = futures_lite::io::split(stream);
    let connection = Rc::new(Connection::new(id, peer, fixed_bytes));
    if !ids.is_empty() {
        connection.add_auth_ids(ids);
    }
    shard.register(connection.clone());
    let writer_task = glommio::spawn_local(write_loop(connection.clone(), writer, shard.shared.clone(), shard.id));
    // A four-letter word ends the loop with Ok, its outbox already closing.
    let ended = session_loop(&shard, &connection, &mut reader).await.err();
    connection.outbox.close(ended.unwrap_or(CloseReason::FourLetterWord));
    let pending = connection.pending.borrow_mut().drain(..).count();
    for _ in 0..pending {
        connection.release_one(&shard);
    }
    shard.unregister(id);
    shard.shared.release_connection(peer.ip());
    let session_id = connection.session_id();
    if session_id != 0 {
        shard.send(ToBroadcast::Disconnected { connection: id, session_id }).await;
    }
    // What is queued gets `CLOSE_LINGER` to be written, then the connection
    // is aborted (dropping the task cancels the timer).
    let linger = {
        let connection = connection.clone();
        glommio::spawn_local(async move {
            glommio::timer::Timer::new(CLOSE_LINGER).await;
            connection.outbox.abort(CloseReason::UnreadAtClose);
        })
    };
    writer_task.await;
    drop(linger);
    // The first reason given is the one: a server-side close also ends
    // the reader, which then reports the outbox's reason.
    let reason = closed_reason(&connection.outbox);
    shard.shared.metrics.connection_closed(reason.kind().index());
    if reason.is_routine() {
        debug!(%peer, session = format_args!("0x{session_id:x}"), %reason, "connection closed");
    } else {
        info!(%peer, session = format_args!("0x{session_id:x}"), %reason, "connection closed");
    }
}

/// The reason of a closing outbox; every close gives one.
fn closed_reason(outbox: &super::outbox::Outbox) -> CloseReason {
    let reason = outbox.close_reason();
    debug_assert!(reason.is_some() || !outbox.is_closing(), "an outbox closed without a reason");
    reason.unwrap_or(CloseReason::Stopping)
}

async fn write_loop<W: AsyncWrite + Unpin>(
    connection: Rc<Connection>,
    mut writer: W,
    shared: Arc<Shared>,
    shard_id: usize,
) {
    let outbox = &connection.outbox;
    let mut spare = Vec::new();
    while let Some(chunk) = outbox.next(spare).await {
        outbox.set_in_flight(chunk.capacity());
        // A client that does not read would hold this write for ever: an
        // abort gives it up (the socket closes when the stream is dropped).
        // The flush is free on a plain socket; on TLS it pushes out the
        // records rustls still holds.
        let written = futures_lite::future::or(
            async {
                match writer.write_all(&chunk).await {
                    Ok(()) => Some(writer.flush().await),
                    Err(error) => Some(Err(error)),
                }
            },
            async {
                outbox.aborted().await;
                None
            },
        )
        .await;
        outbox.set_in_flight(0);
        match written {
            Some(Ok(())) => {
                if let Some(queued) = outbox.take_writing_since() {
                    shared.metrics.shards[shard_id].record_stage(WriteStage::SocketWrite, queued.elapsed());
                }
            }
            Some(Err(_)) => {
                outbox.close(CloseReason::WriteFailed);
                break;
            }
            None => return,
        }
        spare = if chunk.capacity() > READ_BUFFER_BYTES { Vec::new() } else { chunk };
    }
    let _ = writer.close().await;
}

async fn session_loop<R: AsyncRead + Unpin>(
    shard: &Rc<Shard>,
    connection: &Rc<Connection>,
    reader: &mut R,
) -> Result<(), CloseReason> {
    let config = &shard.shared.config;
    let max = config.jute_max_buffer_bytes as usize;
    let mut frames = FrameReader::new();
    connection.read_buffer_bytes.set(frames.buffer.len());
    let outbox = &connection.outbox;
    let sessionless_timeout = std::time::Duration::from_millis(config.tunables.sessionless_connection_timeout_ms);
    let handshake =
        futures_lite::future::or(async { Some(handshake(shard, connection, reader, &mut frames, max).await) }, async {
            glommio::timer::Timer::new(sessionless_timeout).await;
            None
        })
        .await;
    match handshake {
        None => return Err(CloseReason::NoSessionInTime { ms: sessionless_timeout.as_millis() }),
        Some(Err(reason)) => return Err(reason),
        Some(Ok(false)) => return Ok(()),
        Some(Ok(true)) => {}
    }

    loop {
        frames.shrink(connection);
        outbox.wait_below(OUTBOX_BACKPRESSURE_BYTES).await;
        if outbox.is_closing() {
            return Err(closed_reason(outbox));
        }
        let body = frames.next_frame(reader, connection, max).await?;
        let started = Instant::now();
        connection.info.packets_received.fetch_add(1, Ordering::Relaxed);
        shard.shared.shard_stats[shard.id].packets_received.fetch_add(1, Ordering::Relaxed);
        let (header, decoded) = Request::decode(&frames.buffer[body]);
        let Some(header) = header else {
            return Err(CloseReason::MalformedHeader);
        };
        connection.info.last_opcode.store(header.opcode as i64, Ordering::Relaxed);
        connection.info.last_cxid.store(header.xid as i64, Ordering::Relaxed);
        tracing::trace!(peer = %connection.peer, xid = header.xid, opcode = header.opcode, "request");
        let request = match decoded {
            Ok(request) => request,
            Err(DecodeError::UnknownOpcode(opcode)) => {
                let newest_zxid = shard.shared.tree().last_zxid();
                let header = ReplyHeader { xid: header.xid, zxid: newest_zxid, err: ErrorCode::Unimplemented.code() };
                connection.send_reply(shard, header, &Response::Empty, None);
                return Err(CloseReason::UnknownOpcode(opcode));
            }
            Err(error) if header.opcode == op::AUTH || header.opcode == op::SASL => {
                // ZooKeeper reads auth and sasl packets in its IO thread and
                // drops the connection when one does not decode.
                return Err(CloseReason::MalformedAuth(error.to_string()));
            }
            Err(error) => {
                // A body that does not decode gets MarshallingError and the
                // connection stays, as in ZooKeeper; a multiRead reply still
                // carries an (empty) result list.
                debug!(peer = %connection.peer, opcode = header.opcode, %error, "malformed request body");
                let multi_read = matches!(error, DecodeError::MultiOpNotAllowed { multi_read: true });
                let response = if multi_read { Response::Multi(Vec::new()) } else { Response::Empty };
                let work = LocalWork::Error(ErrorCode::MarshallingError, response);
                dispatch_local(shard, connection, header.xid, work, started).await?;
                continue;
            }
        };
        shard.touch(connection.session_id());
        dispatch(shard, connection, header.xid, request, started).await?;
    }
}

/// Everything before a session: a four-letter word (answered, then
/// `Ok(false)`: the connection closes) or a handshake (`Ok(true)` once the
/// session is established). Bounded in time by the caller.
async fn handshake<R: AsyncRead + Unpin>(
    shard: &Rc<Shard>,
    connection: &Rc<Connection>,
    reader: &mut R,
    frames: &mut FrameReader,
    max: usize,
) -> Result<bool, CloseReason> {
    let config = &shard.shared.config;
    let outbox = &connection.outbox;
    frames.fill(reader, connection, 4).await?;
    let prefix = frames.available();
    if let Some(word) = four_letter_word([prefix[0], prefix[1], prefix[2], prefix[3]]) {
        connection.info.packets_received.fetch_add(1, Ordering::Relaxed);
        let argument = if word == "stmk" { read_trace_mask(frames, reader, connection).await } else { None };
        let text = fourletter::respond(&*shard.shared, word, argument).await;
        outbox.push(|out| out.extend_from_slice(text.as_bytes()));
        outbox.close(CloseReason::FourLetterWord);
        return Ok(false);
    }
    let body = frames.next_frame(reader, connection, max).await?;
    let request = ConnectRequest::decode(&frames.buffer[body])
        .map_err(|error| CloseReason::MalformedConnect(error.to_string()))?;
    let newest_zxid = shard.shared.tree().last_zxid();
    if request.last_zxid_seen > newest_zxid {
        return Err(CloseReason::ClientAhead { seen: request.last_zxid_seen, ours: newest_zxid });
    }
    let timeout_ms = SessionTracker::negotiate_timeout(
        request.timeout_ms,
        config.session_timeout_min_ms,
        config.session_timeout_max_ms,
    );
    connection.sent_read_only_byte.set(request.read_only.is_some());
    shard
        .send(ToBroadcast::Connect {
            connection: connection.id,
            session_id: request.session_id,
            password: request.password,
            timeout_ms,
            read_only: request.read_only == Some(true),
        })
        .await;
    if !connection.handshake_result().await {
        return Err(CloseReason::SessionRefused);
    }
    Ok(true)
}

/// stmk's argument: the 8-byte mask that follows the word, if the client
/// sent it promptly (ZooKeeper reads what has arrived and fails without it).
async fn read_trace_mask<R: AsyncRead + Unpin>(
    frames: &mut FrameReader,
    reader: &mut R,
    connection: &Connection,
) -> Option<i64> {
    let filled = futures_lite::future::or(async { Some(frames.fill(reader, connection, 12).await) }, async {
        glommio::timer::Timer::new(std::time::Duration::from_millis(200)).await;
        None
    })
    .await;
    match filled {
        Some(Ok(())) => {
            let bytes = &frames.available()[4..12];
            Some(i64::from_be_bytes(bytes.try_into().ok()?))
        }
        _ => None,
    }
}

async fn dispatch(
    shard: &Rc<Shard>,
    connection: &Rc<Connection>,
    xid: i32,
    request: Request,
    started: Instant,
) -> Result<(), CloseReason> {
    match &request {
        Request::Auth { scheme, auth, .. } => {
            if !connection.authenticate(shard, xid, scheme, auth) {
                connection.outbox.close(CloseReason::AuthFailed);
            }
            return Ok(());
        }
        Request::Sasl { token } => {
            if !connection.sasl_step(shard, xid, token) {
                connection.outbox.close(CloseReason::SaslFailed);
            }
            return Ok(());
        }
        _ => {}
    }
    // enforce.auth.*: ZooKeeper checks every other request, pings included,
    // answers the first one from a connection without one of the schemes
    // with SessionClosedRequireSaslAuth, and closes the connection.
    let schemes = shard.shared.config.auth.enforce_auth_schemes.as_deref();
    if !crate::auth::enforce(schemes, &connection.auth.borrow()) {
        let held: Vec<String> = connection.auth.borrow().iter().map(|id| id.scheme.clone()).collect();
        warn!(
            peer = %connection.peer,
            ?held,
            expected = ?schemes.unwrap_or_default(),
            "client authentication scheme(s) do not match any expected scheme; closing the session"
        );
        let header = ReplyHeader { xid, zxid: 0, err: ErrorCode::SessionClosedRequireSaslAuth.code() };
        connection.send_reply(shard, header, &Response::Empty, None);
        connection.outbox.close(CloseReason::AuthRequired);
        return Ok(());
    }
    if !request.is_write() {
        return dispatch_local(shard, connection, xid, LocalWork::Request(request), started).await;
    }
    connection.reads_served().await;
    take_permit(shard).await?;
    count_outstanding(shard, connection);
    let close_session = request.opcode() == op::CLOSE_SESSION;
    connection.pending.borrow_mut().push_back(Pending::Write { started, close_session });
    let auth = connection.auth.borrow().clone();
    shard
        .send(ToBroadcast::Write { connection: connection.id, session_id: connection.session_id(), xid, request, auth })
        .await;
    Ok(())
}

/// Everything that waits in `pending` holds one of the shard's permits
/// (globalOutstandingLimit); reading from the client stops while none is
/// free.
async fn take_permit(shard: &Shard) -> Result<(), CloseReason> {
    if shard.permits.available() == 0 {
        shard.note_throttled();
    }
    shard.permits.acquire(1).await.map_err(|_| CloseReason::Stopping)
}

fn count_outstanding(shard: &Shard, connection: &Connection) {
    connection.info.outstanding.fetch_add(1, Ordering::Relaxed);
    shard.shared.shard_stats[shard.id].outstanding_requests.fetch_add(1, Ordering::Relaxed);
}

/// Answers on the shard at once, or in order behind the session's pending
/// writes.
async fn dispatch_local(
    shard: &Rc<Shard>,
    connection: &Rc<Connection>,
    xid: i32,
    work: LocalWork,
    started: Instant,
) -> Result<(), CloseReason> {
    if connection.pending.borrow().is_empty() {
        connection.serve_local(shard, xid, work, started);
        return Ok(());
    }
    take_permit(shard).await?;
    // The write this read waited behind may have completed meanwhile.
    if connection.pending.borrow().is_empty() {
        shard.permits.signal(1);
        connection.serve_local(shard, xid, work, started);
        return Ok(());
    }
    count_outstanding(shard, connection);
    connection.waiting_reads.set(connection.waiting_reads.get() + 1);
    connection.pending.borrow_mut().push_back(Pending::Local { xid, work, started });
    Ok(())
}
