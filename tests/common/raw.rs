//! A minimal blocking jute client for what the zookeeper-client crate cannot express: exact
//! per-op multi results, server-side path validation (the crate validates paths itself),
//! checkWatches/removeWatches, opcode 1 create, session passwords.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Opcodes and error codes come from the server's codec, the one list of
/// them; what this client writes and reads it still does by hand.
pub use zoocore::proto::codes::op;

pub mod err {
    use zoocore::proto::ErrorCode;

    pub const OK: i32 = ErrorCode::Ok as i32;
    pub const RUNTIME_INCONSISTENCY: i32 = ErrorCode::RuntimeInconsistency as i32;
    pub const MARSHALLING_ERROR: i32 = ErrorCode::MarshallingError as i32;
    pub const UNIMPLEMENTED: i32 = ErrorCode::Unimplemented as i32;
    pub const BAD_ARGUMENTS: i32 = ErrorCode::BadArguments as i32;
    pub const NO_NODE: i32 = ErrorCode::NoNode as i32;
    pub const NO_AUTH: i32 = ErrorCode::NoAuth as i32;
    pub const BAD_VERSION: i32 = ErrorCode::BadVersion as i32;
    pub const NO_CHILDREN_FOR_EPHEMERALS: i32 = ErrorCode::NoChildrenForEphemerals as i32;
    pub const NODE_EXISTS: i32 = ErrorCode::NodeExists as i32;
    pub const NOT_EMPTY: i32 = ErrorCode::NotEmpty as i32;
    pub const SESSION_EXPIRED: i32 = ErrorCode::SessionExpired as i32;
    pub const INVALID_ACL: i32 = ErrorCode::InvalidAcl as i32;
    pub const AUTH_FAILED: i32 = ErrorCode::AuthFailed as i32;
    pub const NO_WATCHER: i32 = ErrorCode::NoWatcher as i32;
    pub const RECONFIG_DISABLED: i32 = ErrorCode::ReconfigDisabled as i32;
    pub const NOT_READ_ONLY: i32 = ErrorCode::NotReadOnly as i32;
}

/// Jute encoder.
#[derive(Default, Clone)]
pub struct Enc(pub Vec<u8>);

impl Enc {
    pub fn new() -> Self {
        Enc(Vec::new())
    }
    pub fn i32(mut self, v: i32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn i64(mut self, v: i64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn bool(mut self, v: bool) -> Self {
        self.0.push(v as u8);
        self
    }
    pub fn str(self, s: &str) -> Self {
        self.buf(s.as_bytes())
    }
    pub fn buf(mut self, b: &[u8]) -> Self {
        self = self.i32(b.len() as i32);
        self.0.extend_from_slice(b);
        self
    }
    /// `[perms, scheme, id]...` vector.
    pub fn acls(mut self, acls: &[(i32, &str, &str)]) -> Self {
        self = self.i32(acls.len() as i32);
        for (perms, scheme, id) in acls {
            self = self.i32(*perms).str(scheme).str(id);
        }
        self
    }
    /// world:anyone with all permissions.
    pub fn open_acl(self) -> Self {
        self.acls(&[(31, "world", "anyone")])
    }
    pub fn strs(mut self, v: &[&str]) -> Self {
        self = self.i32(v.len() as i32);
        for s in v {
            self = self.str(s);
        }
        self
    }
    pub fn raw(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }
    pub fn bytes(self) -> Vec<u8> {
        self.0
    }
}

/// Jute decoder.
pub struct Dec<'a>(pub &'a [u8]);

impl<'a> Dec<'a> {
    pub fn i32(&mut self) -> i32 {
        let (h, t) = self.0.split_at(4);
        self.0 = t;
        i32::from_be_bytes(h.try_into().unwrap())
    }
    pub fn i64(&mut self) -> i64 {
        let (h, t) = self.0.split_at(8);
        self.0 = t;
        i64::from_be_bytes(h.try_into().unwrap())
    }
    pub fn bool(&mut self) -> bool {
        let b = self.0[0];
        self.0 = &self.0[1..];
        b != 0
    }
    /// A buffer; `None` for length -1.
    pub fn buf(&mut self) -> Option<Vec<u8>> {
        let n = self.i32();
        if n < 0 {
            return None;
        }
        let (h, t) = self.0.split_at(n as usize);
        self.0 = t;
        Some(h.to_vec())
    }
    pub fn str(&mut self) -> String {
        String::from_utf8(self.buf().unwrap_or_default()).unwrap()
    }
    pub fn strs(&mut self) -> Vec<String> {
        let n = self.i32();
        (0..n.max(0)).map(|_| self.str()).collect()
    }
    pub fn stat(&mut self) -> RawStat {
        RawStat {
            czxid: self.i64(),
            mzxid: self.i64(),
            ctime: self.i64(),
            mtime: self.i64(),
            version: self.i32(),
            cversion: self.i32(),
            aversion: self.i32(),
            ephemeral_owner: self.i64(),
            data_length: self.i32(),
            num_children: self.i32(),
            pzxid: self.i64(),
        }
    }
    /// A create2 reply: path then stat.
    pub fn stat_after_path(&mut self) -> RawStat {
        let _ = self.str();
        self.stat()
    }
    pub fn remaining(&self) -> usize {
        self.0.len()
    }
}

pub use zoocore::proto::Stat as RawStat;

#[derive(Debug, Clone)]
pub struct Reply {
    pub xid: i32,
    pub zxid: i64,
    pub err: i32,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn dec(&self) -> Dec<'_> {
        Dec(&self.body)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEvent {
    pub event_type: i32,
    pub state: i32,
    pub path: String,
}

#[derive(Debug, Clone)]
pub struct ConnectResponse {
    pub protocol_version: i32,
    pub timeout: i32,
    pub session_id: i64,
    pub passwd: Vec<u8>,
    pub read_only: Option<bool>,
}

/// One raw connection / session.
pub struct Conn {
    stream: TcpStream,
    next_xid: i32,
    pub session_id: i64,
    pub passwd: Vec<u8>,
    pub timeout: i32,
    /// Notifications read while waiting for replies.
    pub events: VecDeque<RawEvent>,
}

fn read_frame(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len)?;
    let n = i32::from_be_bytes(len);
    if !(0..=64 << 20).contains(&n) {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("bad frame length {n}")));
    }
    let mut body = vec![0u8; n as usize];
    stream.read_exact(&mut body)?;
    Ok(body)
}

impl Conn {
    /// Opens a new session with a 10 s requested timeout.
    pub fn connect(addr: &str) -> Conn {
        let (conn, resp) = Self::handshake(addr, 10_000, 0, &[0u8; 16], 0).expect("raw connect");
        assert_ne!(resp.session_id, 0, "new session refused");
        conn
    }

    /// Sends a ConnectRequest and reads the ConnectResponse. The caller checks
    /// `session_id != 0` (0 = the server refused: expired or wrong password).
    pub fn handshake(
        addr: &str,
        timeout_ms: i32,
        session_id: i64,
        passwd: &[u8],
        last_zxid: i64,
    ) -> io::Result<(Conn, ConnectResponse)> {
        Self::handshake_as(addr, timeout_ms, session_id, passwd, last_zxid, false)
    }

    /// `handshake` with the ConnectRequest's readOnly flag: `read_only`
    /// accepts a read-only session from a server without a quorum.
    pub fn handshake_as(
        addr: &str,
        timeout_ms: i32,
        session_id: i64,
        passwd: &[u8],
        last_zxid: i64,
        read_only: bool,
    ) -> io::Result<(Conn, ConnectResponse)> {
        let mut stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let body = Enc::new().i32(0).i64(last_zxid).i32(timeout_ms).i64(session_id).buf(passwd).bool(read_only).bytes();
        let mut frame = (body.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        stream.write_all(&frame)?;
        let resp = read_frame(&mut stream)?;
        let mut d = Dec(&resp);
        let protocol_version = d.i32();
        let timeout = d.i32();
        let sid = d.i64();
        let passwd = d.buf().unwrap_or_default();
        let read_only = if d.remaining() > 0 { Some(d.bool()) } else { None };
        let r = ConnectResponse { protocol_version, timeout, session_id: sid, passwd: passwd.clone(), read_only };
        let conn = Conn { stream, next_xid: 1, session_id: sid, passwd, timeout, events: VecDeque::new() };
        Ok((conn, r))
    }

    /// The local port of this connection's socket.
    pub fn local_port(&self) -> u16 {
        self.stream.local_addr().expect("local address").port()
    }

    /// The socket's file descriptor, for socket options a test sets.
    pub fn raw_fd(&self) -> i32 {
        use std::os::fd::AsRawFd;
        self.stream.as_raw_fd()
    }

    pub fn set_read_timeout(&self, d: Duration) {
        self.stream.set_read_timeout(Some(d)).unwrap();
    }

    /// Writes an already framed or unframed byte string as is.
    pub fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Sends `op` with `body` and a fresh xid; returns the xid.
    pub fn send(&mut self, op: i32, body: &[u8]) -> io::Result<i32> {
        let xid = self.next_xid;
        self.next_xid += 1;
        self.send_xid(xid, op, body)?;
        Ok(xid)
    }

    pub fn send_xid(&mut self, xid: i32, op: i32, body: &[u8]) -> io::Result<()> {
        let mut frame = Vec::with_capacity(12 + body.len());
        frame.extend_from_slice(&((8 + body.len()) as i32).to_be_bytes());
        frame.extend_from_slice(&xid.to_be_bytes());
        frame.extend_from_slice(&op.to_be_bytes());
        frame.extend_from_slice(body);
        self.stream.write_all(&frame)
    }

    /// Reads the next reply that is not a notification (notifications go to `events`).
    pub fn read_reply(&mut self) -> io::Result<Reply> {
        loop {
            let frame = read_frame(&mut self.stream)?;
            let mut d = Dec(&frame);
            let xid = d.i32();
            let zxid = d.i64();
            let err = d.i32();
            if xid == -1 {
                let event_type = d.i32();
                let state = d.i32();
                let path = d.str();
                self.events.push_back(RawEvent { event_type, state, path });
                continue;
            }
            return Ok(Reply { xid, zxid, err, body: d.0.to_vec() });
        }
    }

    /// Reads the next frame of any kind (a notification has xid -1).
    pub fn read_any(&mut self) -> io::Result<Reply> {
        let frame = read_frame(&mut self.stream)?;
        let mut d = Dec(&frame);
        let xid = d.i32();
        let zxid = d.i64();
        let err = d.i32();
        Ok(Reply { xid, zxid, err, body: d.0.to_vec() })
    }

    /// Waits (up to the read timeout) for the next notification.
    pub fn next_event(&mut self) -> io::Result<RawEvent> {
        if let Some(e) = self.events.pop_front() {
            return Ok(e);
        }
        loop {
            let r = self.read_any()?;
            if r.xid == -1 {
                let mut d = r.dec();
                return Ok(RawEvent { event_type: d.i32(), state: d.i32(), path: d.str() });
            }
        }
    }

    /// Sends a request and waits for its reply.
    pub fn request(&mut self, op: i32, body: &[u8]) -> Reply {
        let xid = self.send(op, body).unwrap_or_else(|e| panic!("send op {op}: {e}"));
        let r = self.read_reply().unwrap_or_else(|e| panic!("reply to op {op}: {e}"));
        assert_eq!(r.xid, xid, "reply xid");
        r
    }

    /// Expects the server to close the connection (EOF or reset) within the read timeout.
    pub fn expect_closed(&mut self) -> bool {
        loop {
            match self.read_any() {
                Ok(_) => continue,
                Err(e) => {
                    return matches!(
                        e.kind(),
                        io::ErrorKind::UnexpectedEof
                            | io::ErrorKind::ConnectionReset
                            | io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::BrokenPipe
                    )
                }
            }
        }
    }

    // ---- request helpers ----

    pub fn create(&mut self, path: &str, data: &[u8], flags: i32) -> Reply {
        let body = Enc::new().str(path).buf(data).open_acl().i32(flags).bytes();
        self.request(op::CREATE2, &body)
    }

    pub fn delete(&mut self, path: &str, version: i32) -> Reply {
        self.request(op::DELETE, &Enc::new().str(path).i32(version).bytes())
    }

    pub fn exists(&mut self, path: &str, watch: bool) -> Reply {
        self.request(op::EXISTS, &Enc::new().str(path).bool(watch).bytes())
    }

    pub fn get_data(&mut self, path: &str, watch: bool) -> Reply {
        self.request(op::GET_DATA, &Enc::new().str(path).bool(watch).bytes())
    }

    pub fn set_data(&mut self, path: &str, data: &[u8], version: i32) -> Reply {
        self.request(op::SET_DATA, &Enc::new().str(path).buf(data).i32(version).bytes())
    }

    pub fn get_children(&mut self, path: &str, watch: bool) -> Reply {
        self.request(op::GET_CHILDREN, &Enc::new().str(path).bool(watch).bytes())
    }

    pub fn close(&mut self) -> Reply {
        self.request(op::CLOSE_SESSION, &[])
    }
}

/// Builder for multi / multiRead request bodies.
#[derive(Default)]
pub struct MultiBody(Enc);

impl MultiBody {
    pub fn new() -> Self {
        Self::default()
    }
    fn header(mut self, op: i32) -> Self {
        self.0 = self.0.i32(op).bool(false).i32(-1);
        self
    }
    pub fn create(mut self, path: &str, data: &[u8], flags: i32) -> Self {
        self = self.header(op::CREATE);
        self.0 = self.0.str(path).buf(data).open_acl().i32(flags);
        self
    }
    pub fn create2(mut self, path: &str, data: &[u8], flags: i32) -> Self {
        self = self.header(op::CREATE2);
        self.0 = self.0.str(path).buf(data).open_acl().i32(flags);
        self
    }
    pub fn delete(mut self, path: &str, version: i32) -> Self {
        self = self.header(op::DELETE);
        self.0 = self.0.str(path).i32(version);
        self
    }
    pub fn set_data(mut self, path: &str, data: &[u8], version: i32) -> Self {
        self = self.header(op::SET_DATA);
        self.0 = self.0.str(path).buf(data).i32(version);
        self
    }
    pub fn check(mut self, path: &str, version: i32) -> Self {
        self = self.header(op::CHECK);
        self.0 = self.0.str(path).i32(version);
        self
    }
    pub fn get_data(mut self, path: &str) -> Self {
        self = self.header(op::GET_DATA);
        self.0 = self.0.str(path).bool(false);
        self
    }
    pub fn get_children(mut self, path: &str) -> Self {
        self = self.header(op::GET_CHILDREN);
        self.0 = self.0.str(path).bool(false);
        self
    }
    pub fn finish(self) -> Vec<u8> {
        self.0.i32(-1).bool(true).i32(-1).bytes()
    }
}

/// One decoded multi / multiRead result: `(op type, err, payload)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiResult {
    Create(String),
    Create2(String, RawStat),
    Delete,
    SetData(RawStat),
    Check,
    GetData(Vec<u8>, RawStat),
    GetChildren(Vec<String>),
    Error(i32),
}

/// Decodes a multi response body up to its `done` header.
pub fn decode_multi(body: &[u8]) -> Vec<MultiResult> {
    let mut d = Dec(body);
    let mut out = Vec::new();
    loop {
        let op_type = d.i32();
        let done = d.bool();
        let err = d.i32();
        if done {
            assert_eq!(op_type, -1, "done header type");
            break;
        }
        let r = match op_type {
            op::CREATE => MultiResult::Create(d.str()),
            op::CREATE2 => {
                let p = d.str();
                MultiResult::Create2(p, d.stat())
            }
            op::DELETE => MultiResult::Delete,
            op::SET_DATA => MultiResult::SetData(d.stat()),
            op::CHECK => MultiResult::Check,
            op::GET_DATA => {
                let data = d.buf().unwrap_or_default();
                MultiResult::GetData(data, d.stat())
            }
            op::GET_CHILDREN => MultiResult::GetChildren(d.strs()),
            op::ERROR => {
                let e = d.i32();
                assert_eq!(e, err, "ErrorResult err equals header err");
                MultiResult::Error(e)
            }
            other => panic!("unexpected multi result type {other}"),
        };
        out.push(r);
    }
    out
}
