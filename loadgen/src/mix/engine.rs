//! The mix workload's engine: a few worker threads, each driving its share
//! of the connections with non-blocking sockets on one mio poll.
//!
//! The hot path is built to cost little per request, because on a 2-core
//! machine every cycle the loadgen spends is taken from the server it
//! measures:
//!
//! - No allocation per request. Each worker keeps one scratch `Request` per
//!   operation whose path `String` is rewritten in place, encodes it with
//!   `Request::encode` into the connection's output buffer (reserved up front
//!   for `--outstanding` requests), and checks replies with
//!   `wire::check_reply_body`, which walks the body without building a
//!   `Response`.
//! - Batched syscalls. A worker reads everything a socket has, answers every
//!   reply in that read, and only then writes each connection's output buffer
//!   once, so under load one `read` and one `write` carry many requests.
//! - One timestamp per read. All replies found by one `read` share the clock
//!   reading taken right after it.
//! - No read that only returns WouldBlock: a read that does not fill the
//!   buffer proves the socket was empty, and edge-triggered epoll reports
//!   any later bytes as a new event.
//!
//! Closed loop (no `--rate`): each connection keeps `--outstanding` requests
//! in flight; a reply immediately queues the next request, whose latency runs
//! from that moment. Open loop (`--rate R`): each worker owns R / threads of
//! the rate and computes the intended send time of its k-th request as
//! `base + k / rate`. A due request goes to the next connection with fewer
//! than `--outstanding` in flight; when every connection is full, due
//! requests wait (as a count, not a queue) and are sent as soon as replies
//! free a slot, still stamped with their intended time. A late request's
//! latency is measured from its intended time, so a stalled server is charged
//! for the requests it kept the loadgen from sending (no coordinated
//! omission). The precise wake-ups come from a timerfd, not from epoll's
//! millisecond timeout. Each wake-up also sends the requests due within
//! `--send-ahead` (100 µs by default) in one batch on one connection,
//! because on a virtual machine every small write that wakes the server
//! costs the loadgen 10-20 µs of kernel time; those early requests are
//! timed from their actual send, so batching never hides latency.
//!
//! A request is measured when its intended time falls inside the measured
//! window; warm-up requests only feed the live line. After the window the
//! worker stops issuing, waits up to `--drain-timeout` for the replies in
//! flight, and closes each session with closeSession.
//!
//! The create operation makes `ROOT/new/cC-N` nodes numbered per connection
//! and the delete operation removes them oldest first; a delete drawn while
//! its connection has nothing left to delete becomes a create. ZooKeeper
//! answers a session's requests in order, so a delete may follow its create
//! before the create's reply arrives. Replies are matched to requests by
//! that order and checked by xid.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use zoocore::proto::codes::{op, xid};
use zoocore::proto::records::REPLY_HEADER_BYTES;
use zoocore::proto::{Acl, CreateRequest, MultiOp, Reader, ReplyHeader, Request};

use crate::harness::WorkerEnd;
use crate::keyspace::KeySpace;
use crate::sampler::{KeySampler, Mix, Operation, Rng};
use crate::stats::{new_histogram, Recorder};
use crate::timeline::{Clock, Control, IntervalRecorder, IntervalReport};
use crate::tls::Link;
use crate::wire::{check_reply_body, encode_ping, encode_request, write_nonblocking, FrameBuffer};

/// Loadgen-side error codes, outside ZooKeeper's range.
pub const LOCAL_ERROR_CONNECTION_LOST: i32 = -1001;
pub const LOCAL_ERROR_BAD_REPLY: i32 = -1002;
pub const LOCAL_ERROR_VALUE_SIZE: i32 = -1003;

const TIMER_TOKEN: Token = Token(usize::MAX);
/// Readiness events taken from one epoll_wait.
const EVENTS_CAPACITY: usize = 1024;
/// The initial read buffer of a connection (it grows only for larger frames).
const READ_BUFFER_BYTES: usize = 64 * 1024;
/// Marks in-flight entries that are not measured (closeSession).
const NOT_RECORDED: u8 = u8::MAX;
/// How long closing sessions may take.
const CLOSE_TIMEOUT_NS: u64 = 2_000_000_000;

/// What every worker of one run shares.
pub struct MixSettings {
    pub keys: KeySpace,
    pub sampler: KeySampler,
    pub mix: Mix,
    pub value: Vec<u8>,
    pub multi_size: usize,
    pub outstanding: usize,
    pub open_loop: bool,
    pub measure_start_ns: u64,
    pub deadline_ns: u64,
    pub drain_timeout_ns: u64,
    pub ping_interval_ns: u64,
    /// How far ahead of its due time the open loop may send a request.
    pub send_ahead_ns: u64,
    pub clock: Clock,
    pub control: Arc<Control>,
    pub threads: usize,
    pub seed: u64,
}

/// A session opened (handshake done) before the run starts.
pub struct OpenedConnection {
    /// Unique within the run; names the connection's created nodes.
    pub index: u64,
    pub stream: Link<std::net::TcpStream>,
}

/// What a mix worker counts beside its recorder.
pub struct MixCounts {
    /// Watch notifications received, though the mix sets no watch.
    pub notifications: u64,
    /// Open loop: how late each measured request was sent after its due
    /// time (0 for early ones). A large tail means the loadgen, or the CPU
    /// it was given, could not keep the schedule.
    pub send_lag: Histogram<u64>,
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    xid: i32,
    opcode: i32,
    slot: u8,
    measured: bool,
    /// Where the request's latency starts.
    origin_ns: u64,
}

struct Connection {
    index: u64,
    stream: Link<TcpStream>,
    alive: bool,
    frames: FrameBuffer,
    out: Vec<u8>,
    out_written: usize,
    in_flight: VecDeque<InFlight>,
    next_xid: i32,
    created_next: u64,
    deleted_next: u64,
    last_send_ns: u64,
}

impl Connection {
    fn take_xid(&mut self) -> i32 {
        let taken = self.next_xid;
        self.next_xid = if taken == i32::MAX { 1 } else { taken + 1 };
        taken
    }
}

/// One reusable request per operation; only paths change between uses.
struct Scratch {
    get: Request,
    set: Request,
    exists: Request,
    children: Request,
    create: Request,
    delete: Request,
    multi: Request,
}

/// Room for the longest path without reallocating.
const PATH_CAPACITY_BYTES: usize = 256;

fn path_buffer() -> String {
    String::with_capacity(PATH_CAPACITY_BYTES)
}

impl Scratch {
    fn new(value: &[u8], multi_size: usize) -> Scratch {
        Scratch {
            get: Request::GetData { path: path_buffer(), watch: false },
            set: Request::SetData { path: path_buffer(), data: Some(value.to_vec()), version: -1 },
            exists: Request::Exists { path: path_buffer(), watch: false },
            children: Request::GetChildren { path: path_buffer(), watch: false },
            create: Request::Create(CreateRequest {
                opcode: op::CREATE,
                path: path_buffer(),
                data: Some(value.to_vec()),
                acl: Acl::open_unsafe(),
                flags: 0,
                ttl_ms: -1,
            }),
            delete: Request::Delete { path: path_buffer(), version: -1 },
            multi: Request::Multi(
                (0..multi_size)
                    .map(|_| MultiOp::SetData { path: path_buffer(), data: Some(value.to_vec()), version: -1 })
                    .collect(),
            ),
        }
    }
}

/// The path field of a scratch request.
fn path_of(request: &mut Request) -> &mut String {
    match request {
        Request::GetData { path, .. }
        | Request::SetData { path, .. }
        | Request::Exists { path, .. }
        | Request::GetChildren { path, .. }
        | Request::Delete { path, .. } => path,
        Request::Create(create) => &mut create.path,
        _ => unreachable!("scratch requests all have a path"),
    }
}

/// The open loop's schedule: the k-th request is due at base + k * interval.
struct Schedule {
    generation: u64,
    base_ns: u64,
    interval_ns: f64,
    issued: u64,
}

impl Schedule {
    fn next_due_ns(&self) -> u64 {
        self.base_ns + (self.issued as f64 * self.interval_ns) as u64
    }
}

/// A timerfd: wakes the poll at a nanosecond-precise time.
struct Timer {
    fd: OwnedFd,
}

impl Timer {
    fn new() -> io::Result<Timer> {
        // SAFETY: timerfd_create has no memory preconditions; the result is
        // checked before it is wrapped.
        let raw = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: raw is a fresh descriptor that nothing else owns.
        Ok(Timer { fd: unsafe { OwnedFd::from_raw_fd(raw) } })
    }

    fn arm_after(&self, delay_ns: u64) {
        let delay_ns = delay_ns.max(1);
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec {
                tv_sec: (delay_ns / 1_000_000_000) as libc::time_t,
                tv_nsec: (delay_ns % 1_000_000_000) as libc::c_long,
            },
        };
        // SAFETY: the descriptor is a timerfd we own and spec outlives the call.
        unsafe {
            libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut());
        }
    }

    fn clear(&self) {
        let mut expirations = [0u8; 8];
        // SAFETY: reads at most 8 bytes into a buffer of 8 bytes.
        unsafe {
            libc::read(self.fd.as_raw_fd(), expirations.as_mut_ptr().cast(), expirations.len());
        }
    }
}

/// Runs one worker until its window closes, its budget of measured
/// operations is spent, or the control block says stop.
pub fn run_worker(
    settings: Arc<MixSettings>,
    thread: usize,
    connections: Vec<OpenedConnection>,
    ops_budget: Option<u64>,
    reports: SyncSender<IntervalReport>,
) -> io::Result<WorkerEnd<MixCounts>> {
    let poll = Poll::new()?;
    let timer = Timer::new()?;
    poll.registry().register(&mut SourceFd(&timer.fd.as_raw_fd()), TIMER_TOKEN, Interest::READABLE)?;
    let request_bytes_estimate = 64 + settings.keys.root.len() + settings.value.len();
    let out_capacity = settings.outstanding * request_bytes_estimate * settings.multi_size.max(1) + 256;
    let mut opened = Vec::with_capacity(connections.len());
    for (position, connection) in connections.into_iter().enumerate() {
        let mut stream = connection.stream.map_socket(|socket| {
            socket.set_nonblocking(true)?;
            Ok(TcpStream::from_std(socket))
        })?;
        poll.registry().register(stream.socket_mut(), Token(position), Interest::READABLE | Interest::WRITABLE)?;
        opened.push(Connection {
            index: connection.index,
            stream,
            alive: true,
            frames: FrameBuffer::with_capacity(READ_BUFFER_BYTES),
            out: Vec::with_capacity(out_capacity),
            out_written: 0,
            in_flight: VecDeque::with_capacity(settings.outstanding + 2),
            next_xid: 1,
            created_next: 0,
            deleted_next: 0,
            last_send_ns: 0,
        });
    }
    let now_ns = settings.clock.now_ns();
    let names: Vec<&'static str> = Operation::ALL.iter().map(|operation| operation.name()).collect();
    let worker = Worker {
        rng: Rng::new(settings.seed ^ (thread as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        scratch: Scratch::new(&settings.value, settings.multi_size),
        recorder: Recorder::new(&names),
        interval: IntervalRecorder::new(reports, settings.measure_start_ns, now_ns),
        budget: ops_budget,
        issued_measured: 0,
        issuing: true,
        closing: false,
        stopped_issuing_ns: 0,
        schedule: Schedule { generation: u64::MAX, base_ns: now_ns, interval_ns: 0.0, issued: 0 },
        cursor: 0,
        send_lag: new_histogram(),
        notifications: 0,
        failures: Vec::new(),
        connections: opened,
        poll,
        timer,
        settings,
    };
    Ok(worker.run())
}

struct Worker {
    settings: Arc<MixSettings>,
    poll: Poll,
    timer: Timer,
    connections: Vec<Connection>,
    rng: Rng,
    scratch: Scratch,
    recorder: Recorder,
    interval: IntervalRecorder,
    budget: Option<u64>,
    issued_measured: u64,
    issuing: bool,
    closing: bool,
    stopped_issuing_ns: u64,
    schedule: Schedule,
    cursor: usize,
    send_lag: Histogram<u64>,
    notifications: u64,
    failures: Vec<String>,
}

impl Worker {
    fn run(mut self) -> WorkerEnd<MixCounts> {
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        let start_ns = self.settings.clock.now_ns();
        if !self.settings.open_loop {
            for index in 0..self.connections.len() {
                for _ in 0..self.settings.outstanding {
                    if self.may_issue(start_ns, start_ns) {
                        self.issue(index, start_ns, start_ns);
                    }
                }
            }
        }
        let mut drain_until_ns = u64::MAX;
        let mut next_ping_check_ns = start_ns + self.settings.ping_interval_ns / 2;
        loop {
            let now_ns = self.settings.clock.now_ns();
            self.interval.tick(now_ns);
            if self.issuing
                && (now_ns >= self.settings.deadline_ns || self.settings.control.stopped() || self.budget_spent())
            {
                self.issuing = false;
                self.stopped_issuing_ns = now_ns.min(self.settings.deadline_ns);
                drain_until_ns = now_ns + self.settings.drain_timeout_ns;
            }
            if !self.issuing && !self.closing {
                let drained = self.connections.iter().all(|connection| connection.in_flight.is_empty());
                if drained || now_ns >= drain_until_ns {
                    self.begin_close();
                    drain_until_ns = now_ns + CLOSE_TIMEOUT_NS;
                }
            }
            if self.closing {
                let closed =
                    self.connections.iter().all(|connection| !connection.alive || connection.in_flight.is_empty());
                if closed || now_ns >= drain_until_ns {
                    break;
                }
            }
            let mut timer_delay_ns = None;
            if self.settings.open_loop && self.issuing {
                timer_delay_ns = self.issue_due(now_ns);
            }
            if now_ns >= next_ping_check_ns {
                self.ping_idle(now_ns);
                next_ping_check_ns = now_ns + self.settings.ping_interval_ns / 2;
            }
            for index in 0..self.connections.len() {
                self.flush(index, now_ns);
            }
            if self.connections.iter().all(|connection| !connection.alive) {
                break;
            }
            let mut wake_ns = self.interval.next_boundary_ns().min(next_ping_check_ns).min(drain_until_ns);
            if self.issuing {
                wake_ns = wake_ns.min(self.settings.deadline_ns);
            }
            if let Some(delay_ns) = timer_delay_ns {
                self.timer.arm_after(delay_ns);
            }
            let timeout = Duration::from_nanos(wake_ns.saturating_sub(now_ns));
            if let Err(error) = self.poll.poll(&mut events, Some(timeout)) {
                if error.kind() != io::ErrorKind::Interrupted {
                    self.failures.push(format!("poll failed: {error}"));
                    break;
                }
            }
            for event in events.iter() {
                let token = event.token();
                if token == TIMER_TOKEN {
                    self.timer.clear();
                    continue;
                }
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    self.on_readable(token.0);
                }
            }
        }
        for index in 0..self.connections.len() {
            let connection = &mut self.connections[index];
            if connection.alive {
                let _ = self.poll.registry().deregister(connection.stream.socket_mut());
            }
        }
        WorkerEnd {
            recorder: self.recorder,
            stopped_ns: Some(if self.stopped_issuing_ns == 0 {
                self.settings.clock.now_ns()
            } else {
                self.stopped_issuing_ns
            }),
            failures: self.failures,
            dropped_reports: self.interval.finish(),
            counts: MixCounts { notifications: self.notifications, send_lag: self.send_lag },
        }
    }

    fn budget_spent(&self) -> bool {
        matches!(self.budget, Some(budget) if self.issued_measured >= budget)
    }

    /// Whether a request intended at `intended_ns` may go out now, counting
    /// it against the budget if it is measured.
    #[inline]
    fn may_issue(&mut self, intended_ns: u64, now_ns: u64) -> bool {
        if !self.issuing || now_ns >= self.settings.deadline_ns || intended_ns >= self.settings.deadline_ns {
            return false;
        }
        if intended_ns >= self.settings.measure_start_ns {
            if self.budget_spent() {
                return false;
            }
            self.issued_measured += 1;
        }
        true
    }

    /// Encodes one request of the mix on a connection. It is measured if
    /// `intended_ns` falls in the measured window, and its latency runs
    /// from `origin_ns`.
    fn issue(&mut self, index: usize, intended_ns: u64, origin_ns: u64) {
        let settings: &MixSettings = &self.settings;
        let connection = &mut self.connections[index];
        let mut operation = settings.mix.sample(&mut self.rng);
        if operation == Operation::Delete && connection.deleted_next >= connection.created_next {
            operation = Operation::Create;
        }
        let scratch = &mut self.scratch;
        let request: &mut Request = match operation {
            Operation::Get => &mut scratch.get,
            Operation::Set => &mut scratch.set,
            Operation::Exists => &mut scratch.exists,
            Operation::Children => &mut scratch.children,
            Operation::Create => &mut scratch.create,
            Operation::Delete => &mut scratch.delete,
            Operation::Multi => &mut scratch.multi,
        };
        match operation {
            Operation::Get | Operation::Set | Operation::Exists => {
                let key = settings.sampler.sample(&mut self.rng);
                settings.keys.write_key(path_of(request), key);
            }
            Operation::Children => {
                let key = settings.sampler.sample(&mut self.rng);
                settings.keys.write_directory(path_of(request), key);
            }
            Operation::Create => {
                settings.keys.write_created(path_of(request), connection.index, connection.created_next);
                connection.created_next += 1;
            }
            Operation::Delete => {
                settings.keys.write_created(path_of(request), connection.index, connection.deleted_next);
                connection.deleted_next += 1;
            }
            Operation::Multi => {
                if let Request::Multi(operations) = request {
                    for operation in operations.iter_mut() {
                        if let MultiOp::SetData { path, .. } = operation {
                            let key = settings.sampler.sample(&mut self.rng);
                            settings.keys.write_key(path, key);
                        }
                    }
                }
            }
        }
        let request_xid = connection.take_xid();
        encode_request(&mut connection.out, request_xid, request);
        connection.in_flight.push_back(InFlight {
            xid: request_xid,
            opcode: request.opcode(),
            slot: operation.index() as u8,
            measured: intended_ns >= settings.measure_start_ns,
            origin_ns,
        });
    }

    /// Issues the open loop's due requests. Returns the delay until the
    /// next one if the timer should wake the poll for it (None when the
    /// connections are full and replies will wake it instead).
    fn issue_due(&mut self, now_ns: u64) -> Option<u64> {
        let generation = self.settings.control.rate_generation.load(std::sync::atomic::Ordering::Acquire);
        if generation != self.schedule.generation {
            let thread_rate = self.settings.control.rate() / self.settings.threads as f64;
            self.schedule = Schedule {
                generation,
                base_ns: now_ns,
                interval_ns: if thread_rate > 0.0 { 1e9 / thread_rate } else { f64::INFINITY },
                issued: 0,
            };
        }
        if !self.schedule.interval_ns.is_finite() {
            return None;
        }
        // Requests due within the send-ahead window go out now, together,
        // on one connection while it has room; the next batch starts on the
        // next connection.
        let horizon_ns = now_ns + self.settings.send_ahead_ns;
        let connection_count = self.connections.len();
        let mut batch_connection = None;
        let result = loop {
            let due_ns = self.schedule.next_due_ns();
            if due_ns > horizon_ns {
                break Some(due_ns - now_ns);
            }
            let mut chosen = None;
            for step in 0..connection_count {
                let candidate = (self.cursor + step) % connection_count;
                let connection = &self.connections[candidate];
                if connection.alive && connection.in_flight.len() < self.settings.outstanding {
                    chosen = Some(candidate);
                    break;
                }
            }
            let Some(index) = chosen else {
                break None;
            };
            if !self.may_issue(due_ns, now_ns) {
                break None;
            }
            // An early request is timed from its actual send, a late one
            // from when it was due.
            self.issue(index, due_ns, due_ns.min(now_ns));
            if due_ns >= self.settings.measure_start_ns {
                self.send_lag.saturating_record(now_ns.saturating_sub(due_ns).max(1));
            }
            self.schedule.issued += 1;
            self.cursor = index;
            batch_connection = Some(index);
        };
        if let Some(index) = batch_connection {
            self.cursor = (index + 1) % connection_count;
        }
        result
    }

    fn ping_idle(&mut self, now_ns: u64) {
        for connection in &mut self.connections {
            if connection.alive && now_ns.saturating_sub(connection.last_send_ns) >= self.settings.ping_interval_ns {
                encode_ping(&mut connection.out);
            }
        }
    }

    fn begin_close(&mut self) {
        self.closing = true;
        for connection in &mut self.connections {
            if !connection.alive {
                continue;
            }
            let request_xid = connection.take_xid();
            encode_request(&mut connection.out, request_xid, &Request::CloseSession);
            connection.in_flight.push_back(InFlight {
                xid: request_xid,
                opcode: op::CLOSE_SESSION,
                slot: NOT_RECORDED,
                measured: false,
                origin_ns: 0,
            });
        }
    }

    fn flush(&mut self, index: usize, now_ns: u64) {
        let connection = &mut self.connections[index];
        if !connection.alive {
            return;
        }
        if connection.out_written == connection.out.len() {
            // TLS may still hold records the socket did not take.
            if connection.stream.has_pending_writes() {
                if let Err(error) = connection.stream.flush() {
                    self.fail(index, &format!("write failed: {error}"));
                }
            }
            return;
        }
        match write_nonblocking(&mut connection.stream, &connection.out[connection.out_written..]) {
            Ok(written) => {
                connection.out_written += written;
                if connection.out_written == connection.out.len() {
                    connection.out.clear();
                    connection.out_written = 0;
                }
                connection.last_send_ns = now_ns;
            }
            Err(error) => self.fail(index, &format!("write failed: {error}")),
        }
    }

    fn on_readable(&mut self, index: usize) {
        loop {
            let connection = &mut self.connections[index];
            if !connection.alive {
                return;
            }
            let drained = match connection.frames.read_from_filled(&mut connection.stream) {
                Ok((0, _)) => {
                    if self.closing && connection.in_flight.is_empty() {
                        connection.alive = false;
                        let _ = self.poll.registry().deregister(connection.stream.socket_mut());
                    } else {
                        self.fail(index, "the server closed the connection");
                    }
                    return;
                }
                // TLS hands out a record at a time: read on to WouldBlock.
                Ok((_, filled)) => !filled && !connection.stream.reads_in_records(),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    self.fail(index, &format!("read failed: {error}"));
                    return;
                }
            };
            let now_ns = self.settings.clock.now_ns();
            let completed = match self.take_replies(index, now_ns) {
                Ok(completed) => completed,
                Err(reason) => {
                    self.fail(index, &reason);
                    return;
                }
            };
            if !self.settings.open_loop {
                for _ in 0..completed {
                    if !self.may_issue(now_ns, now_ns) {
                        break;
                    }
                    self.issue(index, now_ns, now_ns);
                }
            }
            if drained {
                return;
            }
        }
    }

    /// Answers every complete reply in the connection's buffer; returns how
    /// many measured-path requests completed.
    fn take_replies(&mut self, index: usize, now_ns: u64) -> Result<usize, String> {
        let settings: &MixSettings = &self.settings;
        let connection = &mut self.connections[index];
        let mut completed = 0;
        while let Some(frame) = connection.frames.next_frame().map_err(|error| error.to_string())? {
            let header =
                ReplyHeader::decode(&mut Reader::new(frame)).map_err(|error| format!("bad reply header: {error}"))?;
            match header.xid {
                xid::NOTIFICATION => {
                    self.notifications += 1;
                    continue;
                }
                xid::PING => continue,
                _ => {}
            }
            let entry = connection
                .in_flight
                .pop_front()
                .ok_or_else(|| format!("reply xid {} with nothing in flight", header.xid))?;
            if entry.xid != header.xid {
                return Err(format!("reply xid {} while xid {} was next", header.xid, entry.xid));
            }
            if entry.slot == NOT_RECORDED {
                continue;
            }
            let mut code = header.err;
            if code == 0 {
                match check_reply_body(entry.opcode, &frame[REPLY_HEADER_BYTES..]) {
                    Ok(data_bytes) => {
                        if entry.opcode == op::GET_DATA && data_bytes != settings.value.len() {
                            code = LOCAL_ERROR_VALUE_SIZE;
                        }
                    }
                    Err(_) => code = LOCAL_ERROR_BAD_REPLY,
                }
            }
            let latency_ns = now_ns.saturating_sub(entry.origin_ns);
            self.interval.record(latency_ns);
            if code != 0 {
                self.interval.record_error();
            }
            if entry.measured {
                let slot = entry.slot as usize;
                self.recorder.record(slot, latency_ns);
                if code != 0 {
                    self.recorder.record_error(slot, code);
                }
            }
            completed += 1;
        }
        Ok(completed)
    }

    /// Gives up a connection: its measured requests in flight become errors.
    fn fail(&mut self, index: usize, reason: &str) {
        let connection = &mut self.connections[index];
        if !connection.alive {
            return;
        }
        connection.alive = false;
        let _ = self.poll.registry().deregister(connection.stream.socket_mut());
        for entry in connection.in_flight.drain(..) {
            if entry.measured && entry.slot != NOT_RECORDED {
                self.recorder.record_error(entry.slot as usize, LOCAL_ERROR_CONNECTION_LOST);
            }
        }
        self.failures.push(format!("connection {}: {reason}", connection.index));
    }
}
