//! `floor`: a ZooKeeper-protocol responder that does no server work, so that
//! the same load run against it measures what the machine, its kernel, the
//! loopback and this load generator cost by themselves.
//!
//! # Why it exists
//!
//! On a small shared machine a client-side p99.9 can be set by things no
//! server controls: a kernel thread taking a CPU for milliseconds, a vCPU
//! descheduled by the host, the load generator sharing the cores. A server's
//! own histograms cannot show those, because they start when the server
//! reads a request. Running the identical load against a responder that
//! answers at once gives the floor any server has on that machine, in the
//! same run (scripts/compare.py `--floor`).
//!
//! # Why it is shaped so
//!
//! One thread per connection with blocking reads and writes: the shortest
//! path from a readable socket to a reply that Linux offers, with no event
//! loop or runtime of its own to measure. It keeps no state: every request
//! succeeds, reads return `--value-size` zero bytes, children lists are
//! empty. With `--dsync FILE` every read of the socket that brought writes
//! costs one 4 KiB O_DSYNC write to FILE before the replies go out, the
//! simplest group commit there is, for a floor that includes the disk.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;

use zoocore::proto::response::write_reply;
use zoocore::proto::{
    ConnectRequest, ConnectResponse, ErrorCode, MultiOp, OpResult, ReplyHeader, Request, Response, Stat,
};

use crate::cli::FloorArgs;
use crate::wire::FrameBuffer;

/// Connections served at once; more are closed on accept.
pub const FLOOR_CONNECTIONS_MAX: usize = 1024;

/// Bytes of one synced write with `--dsync` (one page, as a log's).
const DSYNC_WRITE_BYTES: usize = 4096;

/// The request and reply buffers a connection starts with; they grow for
/// big batches.
const BUFFER_BYTES: usize = 64 * 1024;

/// Serves until the process is killed.
pub fn run(arguments: &FloorArgs) -> Result<(), String> {
    let listener = TcpListener::bind(arguments.listen)
        .map_err(|error| format!("cannot listen on {}: {error}", arguments.listen))?;
    let local = listener.local_addr().map_err(|error| format!("local address: {error}"))?;
    let log = match &arguments.dsync {
        Some(path) => Some(Arc::new(open_log(path)?)),
        None => None,
    };
    let shared = Arc::new(Shared {
        value: vec![0; arguments.value_size as usize].into(),
        log,
        open: AtomicUsize::new(0),
        next_session: AtomicI64::new(1),
        next_slot: AtomicUsize::new(0),
        zxid: AtomicI64::new(0),
    });
    println!("floor listening on {local}");
    let _ = io::stdout().flush();
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(stream) => stream,
            Err(error) => {
                eprintln!("floor: accept failed: {error}");
                continue;
            }
        };
        if shared.open.fetch_add(1, Ordering::AcqRel) >= FLOOR_CONNECTIONS_MAX {
            shared.open.fetch_sub(1, Ordering::AcqRel);
            eprintln!("floor: {FLOOR_CONNECTIONS_MAX} connections open; closing a new one");
            continue;
        }
        let shared = shared.clone();
        let spawned = std::thread::Builder::new().name("floor-conn".to_string()).spawn(move || {
            // The reason is logged before the socket closes, so a client that
            // sees the close can find it.
            if let Err(error) = serve(&shared, &stream) {
                eprintln!("floor: connection closed: {error}");
            }
            drop(stream);
            shared.open.fetch_sub(1, Ordering::AcqRel);
        });
        if let Err(error) = spawned {
            eprintln!("floor: cannot start a connection thread: {error}");
        }
    }
    Ok(())
}

struct Shared {
    value: Arc<[u8]>,
    log: Option<Arc<File>>,
    open: AtomicUsize,
    next_session: AtomicI64,
    next_slot: AtomicUsize,
    zxid: AtomicI64,
}

/// The file `--dsync` writes: one preallocated block per connection slot,
/// written in place so that a synced write has no size to persist.
fn open_log(path: &Path) -> Result<File, String> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .custom_flags(libc::O_DSYNC)
        .open(path)
        .map_err(|error| format!("{}: {error}", path.display()))?;
    let zeros = vec![0u8; DSYNC_WRITE_BYTES * FLOOR_CONNECTIONS_MAX];
    file.write_all_at(&zeros, 0).map_err(|error| format!("{}: {error}", path.display()))?;
    Ok(file)
}

#[derive(Debug)]
enum FloorError {
    Io(io::Error),
    Protocol(String),
}

impl std::fmt::Display for FloorError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FloorError::Io(error) => write!(formatter, "{error}"),
            FloorError::Protocol(reason) => write!(formatter, "{reason}"),
        }
    }
}

impl From<io::Error> for FloorError {
    fn from(error: io::Error) -> FloorError {
        FloorError::Io(error)
    }
}

fn serve(shared: &Shared, mut stream: &TcpStream) -> Result<(), FloorError> {
    stream.set_nodelay(true)?;
    let slot = (shared.next_slot.fetch_add(1, Ordering::Relaxed) % FLOOR_CONNECTIONS_MAX) as u64;
    let mut frames = FrameBuffer::with_capacity(BUFFER_BYTES);
    let mut out = Vec::with_capacity(BUFFER_BYTES);
    let mut connected = false;
    let block = vec![0u8; DSYNC_WRITE_BYTES];
    loop {
        if frames.read_from(&mut stream)? == 0 {
            return Ok(());
        }
        let mut wrote = false;
        let mut closing = false;
        loop {
            let frame = match frames.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(error) => return Err(FloorError::Protocol(format!("bad frame: {error}"))),
            };
            if !connected {
                let request = ConnectRequest::decode(frame)
                    .map_err(|error| FloorError::Protocol(format!("bad connect: {error}")))?;
                let response = ConnectResponse {
                    protocol_version: 0,
                    timeout_ms: request.timeout_ms,
                    session_id: shared.next_session.fetch_add(1, Ordering::Relaxed),
                    password: vec![0; 16],
                    read_only: Some(false),
                };
                zoocore::proto::jute::write_frame(&mut out, |writer| response.encode(writer));
                connected = true;
                continue;
            }
            let (header, request) = Request::decode(frame);
            let Some(header) = header else {
                return Err(FloorError::Protocol("a request without a header".to_string()));
            };
            let (err, response, write) = match request {
                Ok(request) => {
                    closing |= matches!(request, Request::CloseSession);
                    (0, answer(shared, &request), request.is_write())
                }
                Err(_) => (ErrorCode::Unimplemented.code(), Response::Empty, false),
            };
            wrote |= write;
            let zxid = if write {
                shared.zxid.fetch_add(1, Ordering::Relaxed) + 1
            } else {
                shared.zxid.load(Ordering::Relaxed)
            };
            write_reply(&mut out, ReplyHeader { xid: header.xid, zxid, err }, &response);
        }
        if let (true, Some(log)) = (wrote, &shared.log) {
            log.write_all_at(&block, slot * DSYNC_WRITE_BYTES as u64)?;
        }
        stream.write_all(&out)?;
        out.clear();
        if closing {
            return Ok(());
        }
    }
}

/// A successful reply of the request's shape, from no state.
fn answer(shared: &Shared, request: &Request) -> Response {
    let stat = Stat { data_length: shared.value.len() as i32, ..Stat::default() };
    match request {
        Request::Create(create) if create.opcode == zoocore::proto::codes::op::CREATE => {
            Response::Path(create.path.clone())
        }
        Request::Create(create) => Response::PathStat(create.path.clone(), stat),
        Request::Sync { path } => Response::Path(path.clone()),
        Request::Exists { .. } | Request::SetData { .. } | Request::SetAcl { .. } => Response::Stat(stat),
        Request::GetData { .. } => Response::Data(Some(shared.value.clone()), stat),
        Request::GetChildren { .. } => Response::Children(Vec::new()),
        Request::GetChildren2 { .. } => Response::Children2(Vec::new(), stat),
        Request::Multi(operations) | Request::MultiRead(operations) => {
            Response::Multi(operations.iter().map(|operation| answer_one(shared, operation, stat)).collect())
        }
        _ => Response::Empty,
    }
}

fn answer_one(shared: &Shared, operation: &MultiOp, stat: Stat) -> OpResult {
    match operation {
        MultiOp::Create(create) if create.opcode == zoocore::proto::codes::op::CREATE => {
            OpResult::Create(create.path.clone())
        }
        MultiOp::Create(create) => OpResult::Create2(create.path.clone(), stat),
        MultiOp::Delete { .. } => OpResult::Delete,
        MultiOp::SetData { .. } => OpResult::SetData(stat),
        MultiOp::Check { .. } => OpResult::Check,
        MultiOp::GetChildren { .. } => OpResult::GetChildren(Vec::new()),
        MultiOp::GetData { .. } => OpResult::GetData(Some(shared.value.clone()), stat),
    }
}
