//! The client side of the ZooKeeper wire protocol, on top of the codec in
//! `zoocore::proto`.
//!
//! Requests are always encoded by `zoocore::proto::Request::encode` inside
//! `jute::write_frame`, so the loadgen sends exactly the bytes the server's
//! own codec reads. Replies are read in two ways. The hot path
//! ([`check_reply_body`]) walks a reply body with `jute::Reader` and
//! `Stat::decode` without building a `Response`, because
//! `Response::decode` allocates (the data of getData goes into an `Arc<[u8]>`,
//! each child name into an `Arc<str>`), and one allocation per reply is a
//! visible part of the loadgen's cost at 50k replies per second. It still
//! checks every length and the exact size of the body. Setup, teardown and
//! the low-rate workloads use `Response::decode` through [`SyncClient`].
//!
//! [`FrameBuffer`] reassembles frames from a byte stream with a bounded
//! buffer: a frame longer than [`MAX_FRAME_BYTES`] is a protocol error, so a
//! broken server cannot make the loadgen grow without limit.
//!
//! [`SyncClient`] is a small blocking session: connect with the handshake,
//! call with one request at a time or a bounded pipeline, keep watch events
//! that arrive in between in a bounded queue, and ping while it waits so
//! that a session idling on a watch does not expire.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::tls::{Link, Tls};
use zoocore::proto::codes::{op, xid};
use zoocore::proto::jute::write_frame;
use zoocore::proto::{ConnectRequest, ConnectResponse, DecodeError, Reader, ReplyHeader, Request, Response, Stat};

/// The largest frame the loadgen accepts: ZooKeeper's default
/// jute.maxbuffer (1 MiB of data) plus room for a getChildren of many names.
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;
/// The most watch events a [`SyncClient`] keeps before the oldest are dropped.
pub const MAX_QUEUED_EVENTS: usize = 4096;
/// The most requests a [`SyncClient::pipeline`] keeps in flight.
pub const MAX_PIPELINE_DEPTH: usize = 1024;

/// Why a session failed.
#[derive(Debug)]
pub enum ClientError {
    Io(io::Error),
    Decode(DecodeError),
    /// The server refused the session (timeout 0 in the ConnectResponse).
    Refused,
    /// A reply came back for another xid than the one expected.
    OutOfOrder {
        expected: i32,
        got: i32,
    },
    /// A frame announced a length past [`MAX_FRAME_BYTES`] or below zero.
    FrameTooLarge(i64),
    /// Nothing arrived within the deadline.
    TimedOut,
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Io(error) => write!(formatter, "i/o error: {error}"),
            ClientError::Decode(error) => write!(formatter, "malformed reply: {error}"),
            ClientError::Refused => write!(formatter, "the server refused the session"),
            ClientError::OutOfOrder { expected, got } => {
                write!(formatter, "reply for xid {got} while waiting for {expected}")
            }
            ClientError::FrameTooLarge(length) => write!(formatter, "frame length {length}"),
            ClientError::TimedOut => write!(formatter, "timed out"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<io::Error> for ClientError {
    fn from(error: io::Error) -> Self {
        if matches!(error.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) {
            ClientError::TimedOut
        } else {
            ClientError::Io(error)
        }
    }
}

impl From<DecodeError> for ClientError {
    fn from(error: DecodeError) -> Self {
        ClientError::Decode(error)
    }
}

/// Appends the framed ConnectRequest of a new session.
pub fn encode_connect(out: &mut Vec<u8>, session_timeout_ms: i32) {
    let request = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout_ms: session_timeout_ms,
        session_id: 0,
        password: vec![0; 16],
        read_only: Some(false),
    };
    write_frame(out, |writer| request.encode(writer));
}

/// Decodes the handshake reply; a refused session is an error.
pub fn decode_connect(body: &[u8]) -> Result<ConnectResponse, ClientError> {
    let response = ConnectResponse::decode(body)?;
    if response.timeout_ms <= 0 {
        return Err(ClientError::Refused);
    }
    Ok(response)
}

/// Appends one framed request.
#[inline]
pub fn encode_request(out: &mut Vec<u8>, request_xid: i32, request: &Request) {
    write_frame(out, |writer| request.encode(request_xid, writer));
}

/// Appends a ping (xid -2).
pub fn encode_ping(out: &mut Vec<u8>) {
    encode_request(out, xid::PING, &Request::Ping);
}

fn skip_stat(reader: &mut Reader<'_>) -> Result<(), DecodeError> {
    Stat::decode(reader).map(|_| ())
}

/// Checks the body of a successful reply to `opcode` without allocating:
/// every length must fit and nothing may be left over. Returns the data
/// length for getData (so callers can check the value size) and 0 otherwise.
pub fn check_reply_body(opcode: i32, body: &[u8]) -> Result<usize, DecodeError> {
    let mut reader = Reader::new(body);
    let mut data_bytes = 0;
    match opcode {
        op::GET_DATA => {
            data_bytes = reader.read_buffer_slice()?.len();
            skip_stat(&mut reader)?;
        }
        op::EXISTS | op::SET_DATA | op::SET_ACL => skip_stat(&mut reader)?,
        op::CREATE | op::SYNC => {
            reader.read_buffer_slice()?;
        }
        op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => {
            reader.read_buffer_slice()?;
            skip_stat(&mut reader)?;
        }
        op::GET_CHILDREN | op::GET_CHILDREN2 => {
            let count = reader.read_i32()?;
            if count < -1 || (count.max(0) as usize).saturating_mul(4) > reader.remaining() {
                return Err(DecodeError::BadLength(count));
            }
            for _ in 0..count.max(0) {
                reader.read_buffer_slice()?;
            }
            if opcode == op::GET_CHILDREN2 {
                skip_stat(&mut reader)?;
            }
        }
        op::MULTI | op::MULTI_READ => loop {
            let result_type = reader.read_i32()?;
            let done = reader.read_bool()?;
            let _error = reader.read_i32()?;
            if done {
                break;
            }
            match result_type {
                op::CREATE => {
                    reader.read_buffer_slice()?;
                }
                op::CREATE2 => {
                    reader.read_buffer_slice()?;
                    skip_stat(&mut reader)?;
                }
                op::SET_DATA => skip_stat(&mut reader)?,
                op::DELETE | op::CHECK => {}
                op::GET_DATA => {
                    reader.read_buffer_slice()?;
                    skip_stat(&mut reader)?;
                }
                op::GET_CHILDREN => {
                    let count = reader.read_i32()?;
                    for _ in 0..count.max(0) {
                        reader.read_buffer_slice()?;
                    }
                }
                op::ERROR => {
                    reader.read_i32()?;
                }
                _ => return Err(DecodeError::Invalid("unknown result type in multi reply")),
            }
        },
        _ => {}
    }
    if !reader.is_empty() {
        return Err(DecodeError::Invalid("trailing bytes after the reply body"));
    }
    Ok(data_bytes)
}

/// The expected body size of a getData reply carrying `value_bytes`.
#[cfg(test)]
pub fn get_data_reply_bytes(value_bytes: usize) -> usize {
    4 + value_bytes + zoocore::proto::records::STAT_BYTES
}

/// Reassembles frames from a stream into one bounded buffer. The buffer is
/// zeroed once when it is made or grown, never per read.
#[derive(Debug)]
pub struct FrameBuffer {
    bytes: Vec<u8>,
    /// Where the unread bytes start.
    start: usize,
    /// Where the unread bytes end.
    end: usize,
}

impl FrameBuffer {
    pub fn with_capacity(capacity_bytes: usize) -> FrameBuffer {
        FrameBuffer { bytes: vec![0; capacity_bytes.max(64)], start: 0, end: 0 }
    }

    /// Reads once from `source` into the free space, first moving unread
    /// bytes to the front or growing the buffer (up to one maximal frame)
    /// when a frame does not fit. Returns the bytes read; 0 is EOF.
    pub fn read_from(&mut self, source: &mut impl Read) -> io::Result<usize> {
        self.read_from_filled(source).map(|(read_bytes, _)| read_bytes)
    }

    /// Like `read_from`, and also says whether the read filled all the free
    /// space. When it did not, the socket had no more bytes at that moment,
    /// so an edge-triggered poller may skip the read that would only return
    /// WouldBlock: new bytes raise a new edge.
    pub fn read_from_filled(&mut self, source: &mut impl Read) -> io::Result<(usize, bool)> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.end == self.bytes.len() {
            let needed = self.pending_frame_bytes().unwrap_or(0);
            if self.start > 0 {
                self.bytes.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.end == self.bytes.len() || needed > self.bytes.len() {
                let grown = (self.bytes.len() * 2).max(needed).min(MAX_FRAME_BYTES + 4).max(self.end + 1);
                self.bytes.resize(grown, 0);
            }
        }
        let space = self.bytes.len() - self.end;
        let read_bytes = source.read(&mut self.bytes[self.end..])?;
        self.end += read_bytes;
        Ok((read_bytes, read_bytes == space))
    }

    /// The total length (prefix included) of the frame at the front, if its
    /// prefix has arrived.
    fn pending_frame_bytes(&self) -> Option<usize> {
        let unread = &self.bytes[self.start..self.end];
        if unread.len() < 4 {
            return None;
        }
        let length = i32::from_be_bytes([unread[0], unread[1], unread[2], unread[3]]);
        Some(length.max(0) as usize + 4)
    }

    /// The next complete frame body, or None if it has not fully arrived.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, ClientError> {
        let unread = &self.bytes[self.start..self.end];
        if unread.len() < 4 {
            return Ok(None);
        }
        let length = i32::from_be_bytes([unread[0], unread[1], unread[2], unread[3]]);
        if length < 0 || length as usize > MAX_FRAME_BYTES {
            return Err(ClientError::FrameTooLarge(length as i64));
        }
        let total = length as usize + 4;
        if unread.len() < total {
            return Ok(None);
        }
        let frame_start = self.start + 4;
        self.start += total;
        Ok(Some(&self.bytes[frame_start..frame_start + length as usize]))
    }
}

/// A watch event, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub event_type: i32,
    pub path: String,
    pub received: Instant,
}

/// A blocking session for setup, teardown and the low-rate workloads.
pub struct SyncClient {
    stream: Link<TcpStream>,
    frames: FrameBuffer,
    out: Vec<u8>,
    next_xid: i32,
    pub session_id: i64,
    pub session_timeout_ms: i32,
    events: VecDeque<Event>,
    pub dropped_events: u64,
    last_send: Instant,
}

/// The reply to one call: its header and, when `err` is 0, its body.
#[derive(Debug)]
pub struct Reply {
    pub header: ReplyHeader,
    pub response: Option<Response>,
}

impl Reply {
    pub fn error_code(&self) -> i32 {
        self.header.err
    }
}

impl SyncClient {
    /// Opens a TCP connection (TLS over it when `tls` is given) and a new
    /// session within `connect_timeout`.
    pub fn connect(
        address: SocketAddr,
        session_timeout_ms: i32,
        connect_timeout: Duration,
        tls: Option<&Tls>,
    ) -> Result<SyncClient, ClientError> {
        let stream = TcpStream::connect_timeout(&address, connect_timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(connect_timeout))?;
        let mut client = SyncClient {
            stream: Link::new(stream, address, tls)?,
            frames: FrameBuffer::with_capacity(64 * 1024),
            out: Vec::with_capacity(4096),
            next_xid: 1,
            session_id: 0,
            session_timeout_ms,
            events: VecDeque::new(),
            dropped_events: 0,
            last_send: Instant::now(),
        };
        encode_connect(&mut client.out, session_timeout_ms);
        client.flush()?;
        let body = client.read_frame(Instant::now() + connect_timeout)?;
        let response = decode_connect(&body)?;
        client.session_id = response.session_id;
        client.session_timeout_ms = response.timeout_ms;
        client.stream.socket().set_read_timeout(Some(client.ping_interval()))?;
        Ok(client)
    }

    fn ping_interval(&self) -> Duration {
        Duration::from_millis((self.session_timeout_ms as u64 / 3).max(10))
    }

    fn flush(&mut self) -> Result<(), ClientError> {
        self.stream.write_all(&self.out)?;
        self.out.clear();
        self.last_send = Instant::now();
        Ok(())
    }

    /// Reads one whole frame, pinging the server while it waits.
    fn read_frame(&mut self, deadline: Instant) -> Result<Vec<u8>, ClientError> {
        loop {
            if let Some(frame) = self.frames.next_frame()? {
                return Ok(frame.to_vec());
            }
            if Instant::now() >= deadline {
                return Err(ClientError::TimedOut);
            }
            let wait = deadline
                .saturating_duration_since(Instant::now())
                .min(self.ping_interval())
                .max(Duration::from_millis(1));
            self.stream.socket().set_read_timeout(Some(wait))?;
            match self.frames.read_from(&mut self.stream) {
                Ok(0) => {
                    return Err(ClientError::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection",
                    )))
                }
                Ok(_) => {}
                Err(error) if matches!(error.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error.into()),
            }
            if self.session_id != 0 && self.last_send.elapsed() >= self.ping_interval() {
                encode_ping(&mut self.out);
                self.flush()?;
            }
        }
    }

    /// Reads the next frame that is a reply to a request; queues events and
    /// drops ping replies. With `stop_on_event` it returns None as soon as
    /// an event has been queued.
    fn read_reply(
        &mut self,
        deadline: Instant,
        stop_on_event: bool,
    ) -> Result<Option<(ReplyHeader, Vec<u8>)>, ClientError> {
        loop {
            let frame = self.read_frame(deadline)?;
            let mut reader = Reader::new(&frame);
            let header = ReplyHeader::decode(&mut reader)?;
            match header.xid {
                xid::NOTIFICATION => {
                    let event_type = reader.read_i32()?;
                    let _state = reader.read_i32()?;
                    let path = reader.read_string()?;
                    if self.events.len() >= MAX_QUEUED_EVENTS {
                        self.events.pop_front();
                        self.dropped_events += 1;
                    }
                    self.events.push_back(Event { event_type, path, received: Instant::now() });
                    if stop_on_event {
                        return Ok(None);
                    }
                }
                xid::PING => {}
                _ => {
                    let body = frame[reader.position()..].to_vec();
                    return Ok(Some((header, body)));
                }
            }
        }
    }

    fn take_xid(&mut self) -> i32 {
        let taken = self.next_xid;
        self.next_xid = if taken == i32::MAX { 1 } else { taken + 1 };
        taken
    }

    /// Sends one request and waits for its reply.
    pub fn call(&mut self, request: &Request, timeout: Duration) -> Result<Reply, ClientError> {
        let request_xid = self.take_xid();
        encode_request(&mut self.out, request_xid, request);
        self.flush()?;
        let (header, body) =
            self.read_reply(Instant::now() + timeout, false)?.expect("only stop_on_event returns None");
        if header.xid != request_xid {
            return Err(ClientError::OutOfOrder { expected: request_xid, got: header.xid });
        }
        let response =
            if header.err == 0 { Some(Response::decode(request.opcode(), &mut Reader::new(&body))?) } else { None };
        Ok(Reply { header, response })
    }

    /// Sends many requests with at most `depth` in flight and returns the
    /// error code of each, in order. Stops at the first connection failure.
    pub fn pipeline(&mut self, requests: &[Request], depth: usize, timeout: Duration) -> Result<Vec<i32>, ClientError> {
        let depth = depth.clamp(1, MAX_PIPELINE_DEPTH);
        let mut codes = Vec::with_capacity(requests.len());
        let mut in_flight: VecDeque<i32> = VecDeque::with_capacity(depth);
        let mut next = 0;
        while codes.len() < requests.len() {
            while next < requests.len() && in_flight.len() < depth {
                let request_xid = self.take_xid();
                encode_request(&mut self.out, request_xid, &requests[next]);
                in_flight.push_back(request_xid);
                next += 1;
            }
            if !self.out.is_empty() {
                self.flush()?;
            }
            let (header, _body) =
                self.read_reply(Instant::now() + timeout, false)?.expect("only stop_on_event returns None");
            let expected = in_flight.pop_front().expect("a reply implies a request");
            if header.xid != expected {
                return Err(ClientError::OutOfOrder { expected, got: header.xid });
            }
            codes.push(header.err);
        }
        Ok(codes)
    }

    /// The next watch event, waiting up to `timeout` for one.
    pub fn next_event(&mut self, timeout: Duration) -> Result<Option<Event>, ClientError> {
        if let Some(event) = self.events.pop_front() {
            return Ok(Some(event));
        }
        match self.read_reply(Instant::now() + timeout, true) {
            Ok(None) => Ok(self.events.pop_front()),
            Ok(Some((header, _))) => Err(ClientError::OutOfOrder { expected: xid::NOTIFICATION, got: header.xid }),
            Err(ClientError::TimedOut) => Ok(self.events.pop_front()),
            Err(error) => Err(error),
        }
    }

    /// Hands over the socket of an open session (for the non-blocking
    /// workers); nothing may be left unread.
    pub fn into_stream(self) -> Link<TcpStream> {
        let _ = self.stream.socket().set_read_timeout(None);
        self.stream
    }

    /// Closes the session (closeSession, then the socket).
    pub fn close(mut self, timeout: Duration) -> Result<(), ClientError> {
        self.call(&Request::CloseSession, timeout).map(|_| ())
    }
}

/// Writes as much of `pending` as the socket takes without blocking.
/// Returns the bytes written, stopping at WouldBlock.
pub fn write_nonblocking(stream: &mut impl Write, pending: &[u8]) -> io::Result<usize> {
    let mut written = 0;
    while written < pending.len() {
        match stream.write(&pending[written..]) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "socket closed")),
            Ok(count) => written += count,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use zoocore::proto::response::OpResult;
    use zoocore::proto::Writer;

    fn body(response: &Response) -> Vec<u8> {
        let mut out = Vec::new();
        response.encode(&mut Writer::new(&mut out));
        out
    }

    #[test]
    fn reply_bodies_are_checked_without_decoding() {
        let stat = Stat::default();
        let data = body(&Response::Data(Some(Arc::from(&[7u8; 100][..])), stat));
        assert_eq!(check_reply_body(op::GET_DATA, &data), Ok(100));
        assert_eq!(data.len(), get_data_reply_bytes(100));
        assert!(check_reply_body(op::GET_DATA, &data[..data.len() - 1]).is_err());
        let children = body(&Response::Children(vec![Arc::from("a"), Arc::from("bc")]));
        assert_eq!(check_reply_body(op::GET_CHILDREN, &children), Ok(0));
        let multi = body(&Response::Multi(vec![
            OpResult::SetData(stat),
            OpResult::Create("/x".into()),
            OpResult::Delete,
            OpResult::Error(-101),
        ]));
        assert_eq!(check_reply_body(op::MULTI, &multi), Ok(0));
        assert!(check_reply_body(op::SET_DATA, &data).is_err());
        assert_eq!(check_reply_body(op::DELETE, &[]), Ok(0));
    }

    #[test]
    fn frames_are_reassembled_across_reads() {
        let mut stream = Vec::new();
        write_frame(&mut stream, |writer| writer.write_i64(1));
        write_frame(&mut stream, |writer| writer.write_i32(2));
        let mut frames = FrameBuffer::with_capacity(16);
        let mut source = &stream[..5];
        frames.read_from(&mut source).unwrap();
        assert_eq!(frames.next_frame().unwrap(), None);
        let mut rest = &stream[5..];
        while !rest.is_empty() {
            frames.read_from(&mut rest).unwrap();
        }
        assert_eq!(frames.next_frame().unwrap().unwrap(), &1i64.to_be_bytes());
        assert_eq!(frames.next_frame().unwrap().unwrap(), &2i32.to_be_bytes());
        assert_eq!(frames.next_frame().unwrap(), None);
        let mut hostile = FrameBuffer::with_capacity(16);
        hostile.read_from(&mut &(-5i32).to_be_bytes()[..]).unwrap();
        assert!(hostile.next_frame().is_err());
    }
}
