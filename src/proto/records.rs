//! The jute records shared by requests and replies: Stat, ACL and Id, the
//! connect handshake, request and reply headers, and watch events.

use super::jute::{DecodeResult, Reader, Writer};

/// A znode's Stat, field for field as ZooKeeper's `org.apache.zookeeper.data.Stat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stat {
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub data_length: i32,
    pub num_children: i32,
    pub pzxid: i64,
}

/// Stat's size on the wire.
pub const STAT_BYTES: usize = 68;

impl Stat {
    pub fn encode(&self, writer: &mut Writer<'_>) {
        writer.write_i64(self.czxid);
        writer.write_i64(self.mzxid);
        writer.write_i64(self.ctime);
        writer.write_i64(self.mtime);
        writer.write_i32(self.version);
        writer.write_i32(self.cversion);
        writer.write_i32(self.aversion);
        writer.write_i64(self.ephemeral_owner);
        writer.write_i32(self.data_length);
        writer.write_i32(self.num_children);
        writer.write_i64(self.pzxid);
    }

    pub fn decode(reader: &mut Reader<'_>) -> DecodeResult<Stat> {
        Ok(Stat {
            czxid: reader.read_i64()?,
            mzxid: reader.read_i64()?,
            ctime: reader.read_i64()?,
            mtime: reader.read_i64()?,
            version: reader.read_i32()?,
            cversion: reader.read_i32()?,
            aversion: reader.read_i32()?,
            ephemeral_owner: reader.read_i64()?,
            data_length: reader.read_i32()?,
            num_children: reader.read_i32()?,
            pzxid: reader.read_i64()?,
        })
    }
}

/// An authentication identity: a scheme and an id within it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id {
    pub scheme: String,
    pub id: String,
}

impl Id {
    pub fn new(scheme: &str, id: &str) -> Id {
        Id { scheme: scheme.to_string(), id: id.to_string() }
    }

    pub fn encode(&self, writer: &mut Writer<'_>) {
        writer.write_string(&self.scheme);
        writer.write_string(&self.id);
    }

    pub fn decode(reader: &mut Reader<'_>) -> DecodeResult<Id> {
        Ok(Id { scheme: reader.read_string()?, id: reader.read_string()? })
    }
}

/// One ACL entry: permission bits granted to an identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Acl {
    pub perms: i32,
    pub id: Id,
}

impl Acl {
    pub fn new(perms: i32, scheme: &str, id: &str) -> Acl {
        Acl { perms, id: Id::new(scheme, id) }
    }

    /// world:anyone with every permission (ZooDefs.Ids.OPEN_ACL_UNSAFE).
    pub fn open_unsafe() -> Vec<Acl> {
        vec![Acl::new(super::codes::perms::ALL, "world", "anyone")]
    }

    /// world:anyone with read only (ZooDefs.Ids.READ_ACL_UNSAFE).
    pub fn read_unsafe() -> Vec<Acl> {
        vec![Acl::new(super::codes::perms::READ, "world", "anyone")]
    }

    pub fn encode_list(acls: &[Acl], writer: &mut Writer<'_>) {
        writer.write_i32(acls.len() as i32);
        for acl in acls {
            writer.write_i32(acl.perms);
            acl.id.encode(writer);
        }
    }

    pub fn decode_list(reader: &mut Reader<'_>) -> DecodeResult<Vec<Acl>> {
        reader.read_vec(12, |reader| Ok(Acl { perms: reader.read_i32()?, id: Id::decode(reader)? }))
    }
}

/// The first frame of a session: jute's ConnectRequest, with the readOnly
/// byte that 3.4+ clients append (absent from older clients).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    pub protocol_version: i32,
    pub last_zxid_seen: i64,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub password: Vec<u8>,
    /// None when the client did not send the trailing byte; the reply then
    /// leaves it out too.
    pub read_only: Option<bool>,
}

impl ConnectRequest {
    pub fn decode(body: &[u8]) -> DecodeResult<ConnectRequest> {
        let mut reader = Reader::new(body);
        let mut request = ConnectRequest {
            protocol_version: reader.read_i32()?,
            last_zxid_seen: reader.read_i64()?,
            timeout_ms: reader.read_i32()?,
            session_id: reader.read_i64()?,
            password: reader.read_buffer()?,
            read_only: None,
        };
        if !reader.is_empty() {
            request.read_only = Some(reader.read_bool()?);
        }
        Ok(request)
    }

    pub fn encode(&self, writer: &mut Writer<'_>) {
        writer.write_i32(self.protocol_version);
        writer.write_i64(self.last_zxid_seen);
        writer.write_i32(self.timeout_ms);
        writer.write_i64(self.session_id);
        writer.write_buffer(&self.password);
        if let Some(read_only) = self.read_only {
            writer.write_bool(read_only);
        }
    }
}

/// The server's answer to a ConnectRequest. A refused session has timeout 0,
/// session id 0 and a zeroed password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectResponse {
    pub protocol_version: i32,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub password: Vec<u8>,
    pub read_only: Option<bool>,
}

impl ConnectResponse {
    pub fn encode(&self, writer: &mut Writer<'_>) {
        writer.write_i32(self.protocol_version);
        writer.write_i32(self.timeout_ms);
        writer.write_i64(self.session_id);
        writer.write_buffer(&self.password);
        if let Some(read_only) = self.read_only {
            writer.write_bool(read_only);
        }
    }

    pub fn decode(body: &[u8]) -> DecodeResult<ConnectResponse> {
        let mut reader = Reader::new(body);
        let mut response = ConnectResponse {
            protocol_version: reader.read_i32()?,
            timeout_ms: reader.read_i32()?,
            session_id: reader.read_i64()?,
            password: reader.read_buffer()?,
            read_only: None,
        };
        if !reader.is_empty() {
            response.read_only = Some(reader.read_bool()?);
        }
        Ok(response)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHeader {
    pub xid: i32,
    pub opcode: i32,
}

impl RequestHeader {
    pub fn decode(reader: &mut Reader<'_>) -> DecodeResult<RequestHeader> {
        Ok(RequestHeader { xid: reader.read_i32()?, opcode: reader.read_i32()? })
    }

    pub fn encode(&self, writer: &mut Writer<'_>) {
        writer.write_i32(self.xid);
        writer.write_i32(self.opcode);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyHeader {
    pub xid: i32,
    pub zxid: i64,
    pub err: i32,
}

/// ReplyHeader's size on the wire.
pub const REPLY_HEADER_BYTES: usize = 16;

impl ReplyHeader {
    pub fn encode(&self, writer: &mut Writer<'_>) {
        writer.write_i32(self.xid);
        writer.write_i64(self.zxid);
        writer.write_i32(self.err);
    }

    pub fn decode(reader: &mut Reader<'_>) -> DecodeResult<ReplyHeader> {
        Ok(ReplyHeader { xid: reader.read_i32()?, zxid: reader.read_i64()?, err: reader.read_i32()? })
    }
}

/// A watch notification's body (WatcherEvent), sent after a ReplyHeader with
/// xid -1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatcherEvent {
    pub event_type: i32,
    pub state: i32,
    pub path: String,
}

impl WatcherEvent {
    pub fn encode(&self, writer: &mut Writer<'_>) {
        writer.write_i32(self.event_type);
        writer.write_i32(self.state);
        writer.write_string(&self.path);
    }

    pub fn decode(reader: &mut Reader<'_>) -> DecodeResult<WatcherEvent> {
        Ok(WatcherEvent { event_type: reader.read_i32()?, state: reader.read_i32()?, path: reader.read_string()? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_request_with_and_without_read_only() {
        let mut request = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 5,
            timeout_ms: 30000,
            session_id: 0,
            password: vec![0; 16],
            read_only: Some(false),
        };
        for read_only in [Some(false), Some(true), None] {
            request.read_only = read_only;
            let mut out = Vec::new();
            request.encode(&mut Writer::new(&mut out));
            assert_eq!(out.len(), 44 + read_only.map_or(0, |_| 1));
            assert_eq!(ConnectRequest::decode(&out).unwrap(), request);
        }
    }

    #[test]
    fn stat_is_68_bytes() {
        let stat = Stat { czxid: 1, pzxid: 9, num_children: 3, ..Stat::default() };
        let mut out = Vec::new();
        stat.encode(&mut Writer::new(&mut out));
        assert_eq!(out.len(), STAT_BYTES);
        assert_eq!(Stat::decode(&mut Reader::new(&out)).unwrap(), stat);
    }
}
