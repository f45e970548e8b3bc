//! Client requests: one enum variant per operation, decoded from a frame
//! after its RequestHeader, and encoded again for the load generator and the
//! codec's own tests.

use super::codes::op;
use super::jute::{DecodeError, DecodeResult, Reader, Writer};
use super::records::{Acl, RequestHeader};

/// create, create2, createContainer and createTTL share one record; `opcode`
/// says which the client sent, since it decides the shape of the reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRequest {
    pub opcode: i32,
    pub path: String,
    /// None is null data, which ZooKeeper keeps apart from empty.
    pub data: Option<Vec<u8>>,
    pub acl: Vec<Acl>,
    pub flags: i32,
    /// The TTL of createTTL, -1 for the other opcodes.
    pub ttl_ms: i64,
}

/// The watch lists a reconnecting client re-registers (SetWatches, and
/// SetWatches2 which adds the persistent lists).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SetWatches {
    pub relative_zxid: i64,
    pub data: Vec<String>,
    pub exist: Vec<String>,
    pub child: Vec<String>,
    pub persistent: Vec<String>,
    pub persistent_recursive: Vec<String>,
    /// True for SetWatches2 (opcode 105).
    pub version2: bool,
}

/// One operation inside a multi (writes) or multiRead (reads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiOp {
    Create(CreateRequest),
    Delete { path: String, version: i32 },
    SetData { path: String, data: Option<Vec<u8>>, version: i32 },
    Check { path: String, version: i32 },
    GetChildren { path: String },
    GetData { path: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Create(CreateRequest),
    Delete {
        path: String,
        version: i32,
    },
    Exists {
        path: String,
        watch: bool,
    },
    GetData {
        path: String,
        watch: bool,
    },
    SetData {
        path: String,
        data: Option<Vec<u8>>,
        version: i32,
    },
    GetAcl {
        path: String,
    },
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: i32,
    },
    GetChildren {
        path: String,
        watch: bool,
    },
    GetChildren2 {
        path: String,
        watch: bool,
    },
    Sync {
        path: String,
    },
    Ping,
    Check {
        path: String,
        version: i32,
    },
    Multi(Vec<MultiOp>),
    MultiRead(Vec<MultiOp>),
    Reconfig {
        joining: String,
        leaving: String,
        new_members: String,
        config_id: i64,
    },
    CheckWatches {
        path: String,
        watcher_type: i32,
    },
    RemoveWatches {
        path: String,
        watcher_type: i32,
    },
    Auth {
        auth_type: i32,
        scheme: String,
        auth: Vec<u8>,
    },
    SetWatches(SetWatches),
    /// One SASL token (GetSASLRequest), answered on the connection.
    Sasl {
        token: Vec<u8>,
    },
    GetEphemerals {
        prefix: String,
    },
    /// Sent by ZooKeeper's own container manager; a client sending it gets
    /// BadArguments.
    DeleteContainer {
        path: String,
    },
    GetAllChildrenNumber {
        path: String,
    },
    AddWatch {
        path: String,
        mode: i32,
    },
    WhoAmI,
    CloseSession,
}

impl Request {
    /// Decodes a request frame (header and body). The header comes back even
    /// when the body is malformed or the opcode unknown, so the caller can
    /// answer that xid before it closes the connection.
    pub fn decode(frame: &[u8]) -> (Option<RequestHeader>, DecodeResult<Request>) {
        let mut reader = Reader::new(frame);
        let header = match RequestHeader::decode(&mut reader) {
            Ok(header) => header,
            Err(error) => return (None, Err(error)),
        };
        let request = Self::decode_body(header.opcode, &mut reader);
        (Some(header), request)
    }

    fn decode_body(opcode: i32, reader: &mut Reader<'_>) -> DecodeResult<Request> {
        Ok(match opcode {
            op::CREATE | op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => {
                Request::Create(decode_create(opcode, reader)?)
            }
            op::DELETE => Request::Delete { path: reader.read_string()?, version: reader.read_i32()? },
            op::EXISTS => Request::Exists { path: reader.read_string()?, watch: reader.read_bool()? },
            op::GET_DATA => Request::GetData { path: reader.read_string()?, watch: reader.read_bool()? },
            op::SET_DATA => Request::SetData {
                path: reader.read_string()?,
                data: reader.read_optional_buffer()?,
                version: reader.read_i32()?,
            },
            op::GET_ACL => Request::GetAcl { path: reader.read_string()? },
            op::SET_ACL => Request::SetAcl {
                path: reader.read_string()?,
                acl: Acl::decode_list(reader)?,
                version: reader.read_i32()?,
            },
            op::GET_CHILDREN => Request::GetChildren { path: reader.read_string()?, watch: reader.read_bool()? },
            op::GET_CHILDREN2 => Request::GetChildren2 { path: reader.read_string()?, watch: reader.read_bool()? },
            op::SYNC => Request::Sync { path: reader.read_string()? },
            op::PING => Request::Ping,
            op::CHECK => Request::Check { path: reader.read_string()?, version: reader.read_i32()? },
            op::MULTI => Request::Multi(decode_multi(reader, false)?),
            op::MULTI_READ => Request::MultiRead(decode_multi(reader, true)?),
            op::RECONFIG => Request::Reconfig {
                joining: reader.read_string()?,
                leaving: reader.read_string()?,
                new_members: reader.read_string()?,
                config_id: reader.read_i64()?,
            },
            op::CHECK_WATCHES => {
                Request::CheckWatches { path: reader.read_string()?, watcher_type: reader.read_i32()? }
            }
            op::REMOVE_WATCHES => {
                Request::RemoveWatches { path: reader.read_string()?, watcher_type: reader.read_i32()? }
            }
            op::AUTH => Request::Auth {
                auth_type: reader.read_i32()?,
                scheme: reader.read_string()?,
                auth: reader.read_buffer()?,
            },
            op::SET_WATCHES | op::SET_WATCHES2 => {
                let version2 = opcode == op::SET_WATCHES2;
                let mut watches = SetWatches {
                    relative_zxid: reader.read_i64()?,
                    data: reader.read_string_vec()?,
                    exist: reader.read_string_vec()?,
                    child: reader.read_string_vec()?,
                    version2,
                    ..SetWatches::default()
                };
                if version2 {
                    watches.persistent = reader.read_string_vec()?;
                    watches.persistent_recursive = reader.read_string_vec()?;
                }
                Request::SetWatches(watches)
            }
            op::SASL => Request::Sasl { token: reader.read_buffer()? },
            op::GET_EPHEMERALS => Request::GetEphemerals { prefix: reader.read_string()? },
            op::DELETE_CONTAINER => Request::DeleteContainer { path: reader.read_string()? },
            op::GET_ALL_CHILDREN_NUMBER => Request::GetAllChildrenNumber { path: reader.read_string()? },
            op::ADD_WATCH => Request::AddWatch { path: reader.read_string()?, mode: reader.read_i32()? },
            op::WHO_AM_I => Request::WhoAmI,
            op::CLOSE_SESSION => Request::CloseSession,
            other => return Err(DecodeError::UnknownOpcode(other)),
        })
    }

    pub fn opcode(&self) -> i32 {
        match self {
            Request::Create(create) => create.opcode,
            Request::Delete { .. } => op::DELETE,
            Request::Exists { .. } => op::EXISTS,
            Request::GetData { .. } => op::GET_DATA,
            Request::SetData { .. } => op::SET_DATA,
            Request::GetAcl { .. } => op::GET_ACL,
            Request::SetAcl { .. } => op::SET_ACL,
            Request::GetChildren { .. } => op::GET_CHILDREN,
            Request::GetChildren2 { .. } => op::GET_CHILDREN2,
            Request::Sync { .. } => op::SYNC,
            Request::Ping => op::PING,
            Request::Check { .. } => op::CHECK,
            Request::Multi(_) => op::MULTI,
            Request::MultiRead(_) => op::MULTI_READ,
            Request::Reconfig { .. } => op::RECONFIG,
            Request::CheckWatches { .. } => op::CHECK_WATCHES,
            Request::RemoveWatches { .. } => op::REMOVE_WATCHES,
            Request::Auth { .. } => op::AUTH,
            Request::Sasl { .. } => op::SASL,
            Request::SetWatches(watches) if watches.version2 => op::SET_WATCHES2,
            Request::SetWatches(_) => op::SET_WATCHES,
            Request::GetEphemerals { .. } => op::GET_EPHEMERALS,
            Request::DeleteContainer { .. } => op::DELETE_CONTAINER,
            Request::GetAllChildrenNumber { .. } => op::GET_ALL_CHILDREN_NUMBER,
            Request::AddWatch { .. } => op::ADD_WATCH,
            Request::WhoAmI => op::WHO_AM_I,
            Request::CloseSession => op::CLOSE_SESSION,
        }
    }

    /// Whether serving it may leave a watch registered: a read with its
    /// watch flag, setWatches, addWatch.
    pub fn may_add_watch(&self) -> bool {
        match self {
            Request::Exists { watch, .. }
            | Request::GetData { watch, .. }
            | Request::GetChildren { watch, .. }
            | Request::GetChildren2 { watch, .. } => *watch,
            Request::SetWatches(_) | Request::AddWatch { .. } => true,
            _ => false,
        }
    }

    /// Whether the request changes replicated state and so must go through
    /// the broadcast core. Everything else is answered on the shard.
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Request::Create(_)
                | Request::Delete { .. }
                | Request::SetData { .. }
                | Request::SetAcl { .. }
                | Request::Check { .. }
                | Request::Multi(_)
                | Request::Sync { .. }
                | Request::Reconfig { .. }
                | Request::DeleteContainer { .. }
                | Request::CloseSession
        )
    }

    /// Encodes header and body (without the frame's length prefix).
    pub fn encode(&self, xid: i32, writer: &mut Writer<'_>) {
        RequestHeader { xid, opcode: self.opcode() }.encode(writer);
        match self {
            Request::Create(create) => encode_create(create, writer),
            Request::Delete { path, version } | Request::Check { path, version } => {
                writer.write_string(path);
                writer.write_i32(*version);
            }
            Request::Exists { path, watch }
            | Request::GetData { path, watch }
            | Request::GetChildren { path, watch }
            | Request::GetChildren2 { path, watch } => {
                writer.write_string(path);
                writer.write_bool(*watch);
            }
            Request::SetData { path, data, version } => {
                writer.write_string(path);
                writer.write_optional_buffer(data.as_deref());
                writer.write_i32(*version);
            }
            Request::GetAcl { path }
            | Request::Sync { path }
            | Request::GetAllChildrenNumber { path }
            | Request::GetEphemerals { prefix: path }
            | Request::DeleteContainer { path } => writer.write_string(path),
            Request::SetAcl { path, acl, version } => {
                writer.write_string(path);
                Acl::encode_list(acl, writer);
                writer.write_i32(*version);
            }
            Request::Ping | Request::WhoAmI | Request::CloseSession => {}
            Request::Multi(ops) | Request::MultiRead(ops) => encode_multi(ops, writer),
            Request::Reconfig { joining, leaving, new_members, config_id } => {
                writer.write_string(joining);
                writer.write_string(leaving);
                writer.write_string(new_members);
                writer.write_i64(*config_id);
            }
            Request::CheckWatches { path, watcher_type } | Request::RemoveWatches { path, watcher_type } => {
                writer.write_string(path);
                writer.write_i32(*watcher_type);
            }
            Request::Auth { auth_type, scheme, auth } => {
                writer.write_i32(*auth_type);
                writer.write_string(scheme);
                writer.write_buffer(auth);
            }
            Request::Sasl { token } => writer.write_buffer(token),
            Request::SetWatches(watches) => {
                writer.write_i64(watches.relative_zxid);
                writer.write_string_vec(&watches.data);
                writer.write_string_vec(&watches.exist);
                writer.write_string_vec(&watches.child);
                if watches.version2 {
                    writer.write_string_vec(&watches.persistent);
                    writer.write_string_vec(&watches.persistent_recursive);
                }
            }
            Request::AddWatch { path, mode } => {
                writer.write_string(path);
                writer.write_i32(*mode);
            }
        }
    }
}

fn decode_create(opcode: i32, reader: &mut Reader<'_>) -> DecodeResult<CreateRequest> {
    Ok(CreateRequest {
        opcode,
        path: reader.read_string()?,
        data: reader.read_optional_buffer()?,
        acl: Acl::decode_list(reader)?,
        flags: reader.read_i32()?,
        ttl_ms: if opcode == op::CREATE_TTL { reader.read_i64()? } else { -1 },
    })
}

fn encode_create(create: &CreateRequest, writer: &mut Writer<'_>) {
    writer.write_string(&create.path);
    writer.write_optional_buffer(create.data.as_deref());
    Acl::encode_list(&create.acl, writer);
    writer.write_i32(create.flags);
    if create.opcode == op::CREATE_TTL {
        writer.write_i64(create.ttl_ms);
    }
}

/// A multi is a sequence of (MultiHeader, op) pairs closed by a header with
/// done set. Reads are only allowed in multiRead, writes only in multi.
fn decode_multi(reader: &mut Reader<'_>, read_only: bool) -> DecodeResult<Vec<MultiOp>> {
    let mut ops = Vec::new();
    loop {
        let opcode = reader.read_i32()?;
        let done = reader.read_bool()?;
        let _err = reader.read_i32()?;
        if done {
            return Ok(ops);
        }
        let operation = match (opcode, read_only) {
            (op::CREATE | op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL, false) => {
                MultiOp::Create(decode_create(opcode, reader)?)
            }
            (op::DELETE, false) => MultiOp::Delete { path: reader.read_string()?, version: reader.read_i32()? },
            (op::SET_DATA, false) => MultiOp::SetData {
                path: reader.read_string()?,
                data: reader.read_optional_buffer()?,
                version: reader.read_i32()?,
            },
            (op::CHECK, false) => MultiOp::Check { path: reader.read_string()?, version: reader.read_i32()? },
            (op::GET_CHILDREN, true) => {
                let path = reader.read_string()?;
                let _watch = reader.read_bool()?;
                MultiOp::GetChildren { path }
            }
            (op::GET_DATA, true) => {
                let path = reader.read_string()?;
                let _watch = reader.read_bool()?;
                MultiOp::GetData { path }
            }
            _ => return Err(DecodeError::MultiOpNotAllowed { multi_read: read_only }),
        };
        ops.push(operation);
    }
}

fn encode_multi(ops: &[MultiOp], writer: &mut Writer<'_>) {
    for operation in ops {
        let opcode = match operation {
            MultiOp::Create(create) => create.opcode,
            MultiOp::Delete { .. } => op::DELETE,
            MultiOp::SetData { .. } => op::SET_DATA,
            MultiOp::Check { .. } => op::CHECK,
            MultiOp::GetChildren { .. } => op::GET_CHILDREN,
            MultiOp::GetData { .. } => op::GET_DATA,
        };
        writer.write_i32(opcode);
        writer.write_bool(false);
        writer.write_i32(-1);
        match operation {
            MultiOp::Create(create) => encode_create(create, writer),
            MultiOp::Delete { path, version } | MultiOp::Check { path, version } => {
                writer.write_string(path);
                writer.write_i32(*version);
            }
            MultiOp::SetData { path, data, version } => {
                writer.write_string(path);
                writer.write_optional_buffer(data.as_deref());
                writer.write_i32(*version);
            }
            MultiOp::GetChildren { path } | MultiOp::GetData { path } => {
                writer.write_string(path);
                writer.write_bool(false);
            }
        }
    }
    writer.write_i32(-1);
    writer.write_bool(true);
    writer.write_i32(-1);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(request: Request) {
        let mut out = Vec::new();
        request.encode(77, &mut Writer::new(&mut out));
        let (header, decoded) = Request::decode(&out);
        assert_eq!(header.unwrap().xid, 77);
        assert_eq!(header.unwrap().opcode, request.opcode());
        assert_eq!(decoded.unwrap(), request);
    }

    #[test]
    fn every_request_round_trips() {
        let create = CreateRequest {
            opcode: op::CREATE_TTL,
            path: "/t".into(),
            data: Some(b"x".to_vec()),
            acl: Acl::open_unsafe(),
            flags: 5,
            ttl_ms: 1000,
        };
        let requests = vec![
            Request::Create(create.clone()),
            Request::Create(CreateRequest { opcode: op::CREATE2, ttl_ms: -1, ..create.clone() }),
            Request::Delete { path: "/a".into(), version: 3 },
            Request::Exists { path: "/a".into(), watch: true },
            Request::GetData { path: "/a".into(), watch: false },
            Request::SetData { path: "/a".into(), data: Some(vec![1, 2]), version: -1 },
            Request::GetAcl { path: "/a".into() },
            Request::SetAcl { path: "/a".into(), acl: Acl::read_unsafe(), version: 0 },
            Request::GetChildren { path: "/".into(), watch: true },
            Request::GetChildren2 { path: "/".into(), watch: false },
            Request::Sync { path: "/".into() },
            Request::Ping,
            Request::Check { path: "/a".into(), version: 1 },
            Request::Multi(vec![
                MultiOp::Create(CreateRequest { opcode: op::CREATE, ttl_ms: -1, flags: 0, ..create }),
                MultiOp::Delete { path: "/b".into(), version: -1 },
                MultiOp::SetData { path: "/c".into(), data: None, version: 2 },
                MultiOp::Check { path: "/d".into(), version: 0 },
            ]),
            Request::MultiRead(vec![MultiOp::GetChildren { path: "/".into() }, MultiOp::GetData { path: "/a".into() }]),
            Request::Reconfig {
                joining: "server.4=h:1:2".into(),
                leaving: "".into(),
                new_members: "".into(),
                config_id: -1,
            },
            Request::CheckWatches { path: "/a".into(), watcher_type: 3 },
            Request::RemoveWatches { path: "/a".into(), watcher_type: 1 },
            Request::Auth { auth_type: 0, scheme: "digest".into(), auth: b"u:p".to_vec() },
            Request::SetWatches(SetWatches {
                relative_zxid: 9,
                data: vec!["/a".into()],
                exist: vec![],
                child: vec!["/b".into()],
                ..SetWatches::default()
            }),
            Request::SetWatches(SetWatches {
                relative_zxid: 9,
                persistent: vec!["/p".into()],
                persistent_recursive: vec!["/r".into()],
                version2: true,
                ..SetWatches::default()
            }),
            Request::GetEphemerals { prefix: "/".into() },
            Request::DeleteContainer { path: "/c".into() },
            Request::GetAllChildrenNumber { path: "/".into() },
            Request::AddWatch { path: "/a".into(), mode: 1 },
            Request::WhoAmI,
            Request::CloseSession,
        ];
        for request in requests {
            round_trip(request);
        }
    }

    #[test]
    fn unknown_opcode_keeps_the_header() {
        let mut out = Vec::new();
        RequestHeader { xid: 4, opcode: 999 }.encode(&mut Writer::new(&mut out));
        let (header, result) = Request::decode(&out);
        assert_eq!(header.unwrap().xid, 4);
        assert_eq!(result, Err(DecodeError::UnknownOpcode(999)));
    }

    #[test]
    fn writes_inside_multi_read_are_refused() {
        let mut out = Vec::new();
        Request::Multi(vec![MultiOp::Delete { path: "/a".into(), version: -1 }]).encode(1, &mut Writer::new(&mut out));
        out[4..8].copy_from_slice(&op::MULTI_READ.to_be_bytes());
        assert!(Request::decode(&out).1.is_err());
    }

    #[test]
    fn truncated_bodies_are_errors() {
        let mut out = Vec::new();
        Request::SetData { path: "/abc".into(), data: Some(vec![7; 10]), version: 1 }
            .encode(1, &mut Writer::new(&mut out));
        for cut in 8..out.len() {
            assert!(Request::decode(&out[..cut]).1.is_err(), "cut at {cut}");
        }
    }
}
