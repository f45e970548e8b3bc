//! Reply bodies. A reply is a ReplyHeader followed by the body of the
//! operation, except that an error reply carries the header alone (as
//! ZooKeeper's FinalRequestProcessor sends it) unless it is a multi, whose
//! per-operation results always follow.

use std::sync::Arc;

use super::codes::op;
use super::jute::{write_frame, DecodeError, DecodeResult, Reader, Writer};
use super::records::{Acl, ReplyHeader, Stat, WatcherEvent};

/// One result inside a multi or multiRead reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResult {
    /// create (opcode 1): the path only.
    Create(String),
    /// create2, createContainer and createTTL: the path and the new Stat.
    Create2(String, Stat),
    Delete,
    SetData(Stat),
    Check,
    GetData(Option<Arc<[u8]>>, Stat),
    GetChildren(Vec<Arc<str>>),
    /// A failed operation; 0 marks operations before the one that failed.
    Error(i32),
}

/// (authScheme, user) pairs of whoAmI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    pub auth_scheme: String,
    pub user: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// No body: delete, check, setWatches, auth, ping, closeSession,
    /// checkWatches, removeWatches, addWatch.
    Empty,
    /// create (opcode 1) and sync.
    Path(String),
    /// create2, createContainer, createTTL.
    PathStat(String, Stat),
    /// exists, setData, setACL.
    Stat(Stat),
    /// getData, and reconfig.
    Data(Option<Arc<[u8]>>, Stat),
    Acl(Vec<Acl>, Stat),
    Children(Vec<Arc<str>>),
    Children2(Vec<Arc<str>>, Stat),
    Multi(Vec<OpResult>),
    /// getEphemerals.
    Paths(Vec<String>),
    /// getAllChildrenNumber; and addWatch, whose body is an ErrorResponse of 0.
    Number(i32),
    WhoAmI(Vec<ClientInfo>),
    /// sasl (SetSASLResponse): the server's next token, null after a
    /// failure.
    Sasl(Option<Vec<u8>>),
}

impl Response {
    pub fn encode(&self, writer: &mut Writer<'_>) {
        match self {
            Response::Empty => {}
            Response::Path(path) => writer.write_string(path),
            Response::PathStat(path, stat) => {
                writer.write_string(path);
                stat.encode(writer);
            }
            Response::Stat(stat) => stat.encode(writer),
            Response::Data(data, stat) => {
                writer.write_optional_buffer(data.as_deref());
                stat.encode(writer);
            }
            Response::Acl(acl, stat) => {
                Acl::encode_list(acl, writer);
                stat.encode(writer);
            }
            Response::Children(children) => writer.write_string_vec(children),
            Response::Children2(children, stat) => {
                writer.write_string_vec(children);
                stat.encode(writer);
            }
            Response::Multi(results) => encode_multi(results, writer),
            Response::Paths(paths) => writer.write_string_vec(paths),
            Response::Number(number) => writer.write_i32(*number),
            Response::Sasl(token) => writer.write_optional_buffer(token.as_deref()),
            Response::WhoAmI(infos) => {
                writer.write_i32(infos.len() as i32);
                for info in infos {
                    writer.write_string(&info.auth_scheme);
                    writer.write_string(&info.user);
                }
            }
        }
    }

    /// Decodes the body of a successful reply to a request of `opcode`.
    pub fn decode(opcode: i32, reader: &mut Reader<'_>) -> DecodeResult<Response> {
        Ok(match opcode {
            op::CREATE | op::SYNC => Response::Path(reader.read_string()?),
            op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => {
                Response::PathStat(reader.read_string()?, Stat::decode(reader)?)
            }
            op::EXISTS | op::SET_DATA | op::SET_ACL => Response::Stat(Stat::decode(reader)?),
            op::GET_DATA | op::RECONFIG => {
                Response::Data(reader.read_optional_buffer()?.map(Arc::from), Stat::decode(reader)?)
            }
            op::GET_ACL => Response::Acl(Acl::decode_list(reader)?, Stat::decode(reader)?),
            op::GET_CHILDREN => Response::Children(decode_names(reader)?),
            op::GET_CHILDREN2 => Response::Children2(decode_names(reader)?, Stat::decode(reader)?),
            op::MULTI | op::MULTI_READ => Response::Multi(decode_multi(reader)?),
            op::GET_EPHEMERALS => Response::Paths(reader.read_string_vec()?),
            op::SASL => Response::Sasl(reader.read_optional_buffer()?),
            op::GET_ALL_CHILDREN_NUMBER | op::ADD_WATCH => Response::Number(reader.read_i32()?),
            op::WHO_AM_I => Response::WhoAmI(reader.read_vec(8, |reader| {
                Ok(ClientInfo { auth_scheme: reader.read_string()?, user: reader.read_string()? })
            })?),
            _ => Response::Empty,
        })
    }
}

fn decode_names(reader: &mut Reader<'_>) -> DecodeResult<Vec<Arc<str>>> {
    reader.read_vec(4, |reader| Ok(Arc::from(reader.read_string()?)))
}

fn encode_multi(results: &[OpResult], writer: &mut Writer<'_>) {
    for result in results {
        let (opcode, err) = match result {
            OpResult::Create(_) => (op::CREATE, 0),
            OpResult::Create2(..) => (op::CREATE2, 0),
            OpResult::Delete => (op::DELETE, 0),
            OpResult::SetData(_) => (op::SET_DATA, 0),
            OpResult::Check => (op::CHECK, 0),
            OpResult::GetData(..) => (op::GET_DATA, 0),
            OpResult::GetChildren(_) => (op::GET_CHILDREN, 0),
            OpResult::Error(err) => (op::ERROR, *err),
        };
        writer.write_i32(opcode);
        writer.write_bool(false);
        writer.write_i32(err);
        match result {
            OpResult::Create(path) => writer.write_string(path),
            OpResult::Create2(path, stat) => {
                writer.write_string(path);
                stat.encode(writer);
            }
            OpResult::Delete | OpResult::Check => {}
            OpResult::SetData(stat) => stat.encode(writer),
            OpResult::GetData(data, stat) => {
                writer.write_optional_buffer(data.as_deref());
                stat.encode(writer);
            }
            OpResult::GetChildren(children) => writer.write_string_vec(children),
            OpResult::Error(err) => writer.write_i32(*err),
        }
    }
    writer.write_i32(-1);
    writer.write_bool(true);
    writer.write_i32(-1);
}

fn decode_multi(reader: &mut Reader<'_>) -> DecodeResult<Vec<OpResult>> {
    let mut results = Vec::new();
    loop {
        let opcode = reader.read_i32()?;
        let done = reader.read_bool()?;
        let _err = reader.read_i32()?;
        if done {
            return Ok(results);
        }
        results.push(match opcode {
            op::CREATE => OpResult::Create(reader.read_string()?),
            op::CREATE2 => OpResult::Create2(reader.read_string()?, Stat::decode(reader)?),
            op::DELETE => OpResult::Delete,
            op::SET_DATA => OpResult::SetData(Stat::decode(reader)?),
            op::CHECK => OpResult::Check,
            op::GET_DATA => OpResult::GetData(reader.read_optional_buffer()?.map(Arc::from), Stat::decode(reader)?),
            op::GET_CHILDREN => OpResult::GetChildren(decode_names(reader)?),
            op::ERROR => OpResult::Error(reader.read_i32()?),
            _ => return Err(DecodeError::Invalid("unknown result type in multi reply")),
        });
    }
}

/// Appends one framed reply. Error replies other than multi carry the
/// header alone.
pub fn write_reply(out: &mut Vec<u8>, header: ReplyHeader, response: &Response) {
    write_frame(out, |writer| {
        header.encode(writer);
        // ZooKeeper sends a body with an error only for multi (its results)
        // and sasl (a null token).
        if header.err == 0 || matches!(response, Response::Multi(_) | Response::Sasl(_)) {
            response.encode(writer);
        }
    });
}

/// Appends one framed watch notification (xid -1, zxid -1).
pub fn write_event(out: &mut Vec<u8>, event: &WatcherEvent) {
    write_frame(out, |writer| {
        ReplyHeader { xid: super::codes::xid::NOTIFICATION, zxid: -1, err: 0 }.encode(writer);
        event.encode(writer);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_round_trip() {
        let stat = Stat { version: 3, ..Stat::default() };
        let cases = vec![
            (op::CREATE, Response::Path("/a".into())),
            (op::CREATE2, Response::PathStat("/a".into(), stat)),
            (op::SET_DATA, Response::Stat(stat)),
            (op::GET_DATA, Response::Data(Some(Arc::from(&b"xyz"[..])), stat)),
            (op::GET_DATA, Response::Data(None, stat)),
            (op::GET_ACL, Response::Acl(Acl::open_unsafe(), stat)),
            (op::GET_CHILDREN, Response::Children(vec![Arc::from("a"), Arc::from("b")])),
            (op::GET_CHILDREN2, Response::Children2(vec![Arc::from("a")], stat)),
            (
                op::MULTI,
                Response::Multi(vec![
                    OpResult::Create("/a".into()),
                    OpResult::Create2("/b".into(), stat),
                    OpResult::Delete,
                    OpResult::SetData(stat),
                    OpResult::Check,
                    OpResult::Error(-101),
                ]),
            ),
            (op::GET_EPHEMERALS, Response::Paths(vec!["/e".into()])),
            (op::GET_ALL_CHILDREN_NUMBER, Response::Number(12)),
            (op::WHO_AM_I, Response::WhoAmI(vec![ClientInfo { auth_scheme: "ip".into(), user: "127.0.0.1".into() }])),
        ];
        for (opcode, response) in cases {
            let mut out = Vec::new();
            response.encode(&mut Writer::new(&mut out));
            let mut reader = Reader::new(&out);
            assert_eq!(Response::decode(opcode, &mut reader).unwrap(), response);
            assert!(reader.is_empty());
        }
    }

    #[test]
    fn error_replies_carry_the_header_alone() {
        let mut out = Vec::new();
        write_reply(&mut out, ReplyHeader { xid: 1, zxid: 2, err: -101 }, &Response::Stat(Stat::default()));
        assert_eq!(out.len(), 4 + 16);
        let mut multi = Vec::new();
        write_reply(
            &mut multi,
            ReplyHeader { xid: 1, zxid: 2, err: -101 },
            &Response::Multi(vec![OpResult::Error(-101)]),
        );
        assert!(multi.len() > 4 + 16);
    }
}
