//! What servers say to each other, and its bytes.
//!
//! Three kinds of message cross a peer link: raft's own messages (appends,
//! votes, heartbeats, encoded with raft-rs's protobuf codec), client work a
//! server forwards to the leader (writes, new sessions, revalidations of
//! resumed sessions, session liveness), and the leader's answers to
//! forwarded work that the log does not carry (a sync's index, whether a
//! resumed session is still alive). Each is a batch: the node gathers what
//! one step produced for one peer into one message, so a link carries one
//! frame per peer per step, not one per request.
//!
//! The format is tagged and written with the jute primitives, so the
//! bounds-checked reader that guards the client port refuses a damaged peer
//! frame field by field; docs/formats/peer.md gives it byte by byte.

use protobuf::Message as _;

use crate::proto::jute::{DecodeError, DecodeResult, Reader, Writer};
use crate::proto::{Id, Request};

/// The first byte of every peer message: the format's version.
pub const PEER_FORMAT_VERSION: u8 = 1;

/// Items in one decoded batch at most; a larger count is damage.
pub const PEER_BATCH_ITEMS_MAX: usize = 1 << 16;

const TAG_RAFT: u8 = 1;
const TAG_FORWARD: u8 = 2;
const TAG_ANSWER: u8 = 3;
const TAG_SNAPSHOT: u8 = 4;
const TAG_CHUNK: u8 = 5;

const FORWARD_WRITE: u8 = 1;
const FORWARD_CREATE_SESSION: u8 = 2;
const FORWARD_REVALIDATE: u8 = 3;
const FORWARD_TOUCH: u8 = 4;

const ANSWER_SYNCED: u8 = 1;
const ANSWER_REVALIDATED: u8 = 2;
const ANSWER_NOT_LEADER: u8 = 3;
const ANSWER_MOVED: u8 = 4;

#[derive(Debug, Clone)]
pub enum PeerMessage {
    Raft(Vec<raft::eraftpb::Message>),
    /// Client work for the leader, in the order the sender's clients sent it.
    Forward(Vec<Forwarded>),
    /// The leader's answers to forwarded work.
    Answer(Vec<Answer>),
    /// raft's MsgSnapshot with the tree at its index.
    Snapshot {
        message: raft::eraftpb::Message,
        tree: std::sync::Arc<crate::tree::Tree>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Forwarded {
    Write {
        session_id: i64,
        xid: i32,
        request: Request,
        auth: Vec<Id>,
    },
    /// A new session, with the id and password the sender chose.
    CreateSession {
        session_id: i64,
        timeout_ms: i32,
        password: [u8; 16],
    },
    /// A client resumed a session on the sender: is it still alive?
    Revalidate {
        session_id: i64,
        timeout_ms: i32,
    },
    /// Sessions that showed signs of life on the sender.
    Touch(Vec<i64>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// A sync: answer it once everything up to `index` is applied.
    Synced {
        session_id: i64,
        xid: i32,
        index: u64,
    },
    Revalidated {
        session_id: i64,
        alive: bool,
    },
    /// The receiver is not the leader: the work was not done.
    NotLeader {
        session_id: i64,
    },
    /// The session was resumed on another server: close its connection here.
    Moved {
        session_id: i64,
    },
}

impl PeerMessage {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(PEER_FORMAT_VERSION);
        let mut writer = Writer::new(out);
        match self {
            PeerMessage::Raft(messages) => {
                writer.write_u8(TAG_RAFT);
                writer.write_i32(messages.len() as i32);
                for message in messages {
                    // Encoding an in-memory protobuf message cannot fail.
                    let bytes = message.write_to_bytes().unwrap_or_default();
                    writer.write_buffer(&bytes);
                }
            }
            PeerMessage::Forward(items) => {
                writer.write_u8(TAG_FORWARD);
                writer.write_i32(items.len() as i32);
                for item in items {
                    encode_forwarded(item, &mut writer);
                }
            }
            PeerMessage::Answer(items) => {
                writer.write_u8(TAG_ANSWER);
                writer.write_i32(items.len() as i32);
                for item in items {
                    encode_answer(item, &mut writer);
                }
            }
            PeerMessage::Snapshot { message, tree } => {
                writer.write_u8(TAG_SNAPSHOT);
                writer.write_i32(1);
                writer.write_buffer(&message.write_to_bytes().unwrap_or_default());
                writer.write_buffer(&crate::snapshot::tree_to_bytes(tree));
            }
        }
    }

    pub fn decode(bytes: &[u8]) -> DecodeResult<PeerMessage> {
        let Some((&version, rest)) = bytes.split_first() else {
            return Err(DecodeError::Invalid("empty peer message"));
        };
        if version != PEER_FORMAT_VERSION {
            return Err(DecodeError::Invalid("unknown peer message version"));
        }
        let mut reader = Reader::new(rest);
        let tag = reader.read_u8()?;
        let count = reader.read_i32()?;
        if count < 0 || count as usize > PEER_BATCH_ITEMS_MAX || count as usize > reader.remaining() {
            return Err(DecodeError::BadLength(count));
        }
        let message = match tag {
            TAG_RAFT => {
                let mut messages = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    let bytes = reader.read_buffer_slice()?;
                    let message = raft::eraftpb::Message::parse_from_bytes(bytes)
                        .map_err(|_| DecodeError::Invalid("raft message does not parse"))?;
                    messages.push(message);
                }
                PeerMessage::Raft(messages)
            }
            TAG_FORWARD => {
                let mut items = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    items.push(decode_forwarded(&mut reader)?);
                }
                PeerMessage::Forward(items)
            }
            TAG_ANSWER => {
                let mut items = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    items.push(decode_answer(&mut reader)?);
                }
                PeerMessage::Answer(items)
            }
            TAG_SNAPSHOT => {
                let message = raft::eraftpb::Message::parse_from_bytes(reader.read_buffer_slice()?)
                    .map_err(|_| DecodeError::Invalid("raft message does not parse"))?;
                let tree = crate::snapshot::tree_from_bytes(reader.read_buffer_slice()?)
                    .map_err(|_| DecodeError::Invalid("snapshot tree does not decode"))?;
                PeerMessage::Snapshot { message, tree: std::sync::Arc::new(tree) }
            }
            _ => return Err(DecodeError::Invalid("unknown peer message tag")),
        };
        if !reader.is_empty() {
            return Err(DecodeError::Invalid("trailing bytes after the peer message"));
        }
        Ok(message)
    }
}

fn encode_forwarded(item: &Forwarded, writer: &mut Writer<'_>) {
    match item {
        Forwarded::Write { session_id, xid, request, auth } => {
            writer.write_u8(FORWARD_WRITE);
            writer.write_i64(*session_id);
            writer.write_i32(auth.len() as i32);
            for id in auth {
                id.encode(writer);
            }
            let mut frame = Vec::with_capacity(64);
            request.encode(*xid, &mut Writer::new(&mut frame));
            writer.write_buffer(&frame);
        }
        Forwarded::CreateSession { session_id, timeout_ms, password } => {
            writer.write_u8(FORWARD_CREATE_SESSION);
            writer.write_i64(*session_id);
            writer.write_i32(*timeout_ms);
            writer.write_buffer(password);
        }
        Forwarded::Revalidate { session_id, timeout_ms } => {
            writer.write_u8(FORWARD_REVALIDATE);
            writer.write_i64(*session_id);
            writer.write_i32(*timeout_ms);
        }
        Forwarded::Touch(sessions) => {
            writer.write_u8(FORWARD_TOUCH);
            writer.write_i32(sessions.len() as i32);
            for session in sessions {
                writer.write_i64(*session);
            }
        }
    }
}

fn decode_forwarded(reader: &mut Reader<'_>) -> DecodeResult<Forwarded> {
    Ok(match reader.read_u8()? {
        FORWARD_WRITE => {
            let session_id = reader.read_i64()?;
            let count = reader.read_i32()?;
            if count < 0 || count as usize > reader.remaining() {
                return Err(DecodeError::BadLength(count));
            }
            let mut auth = Vec::with_capacity(count as usize);
            for _ in 0..count {
                auth.push(Id::decode(reader)?);
            }
            let frame = reader.read_buffer_slice()?;
            let (header, request) = Request::decode(frame);
            let header = header.ok_or(DecodeError::Invalid("forwarded request without a header"))?;
            Forwarded::Write { session_id, xid: header.xid, request: request?, auth }
        }
        FORWARD_CREATE_SESSION => {
            let session_id = reader.read_i64()?;
            let timeout_ms = reader.read_i32()?;
            let password: [u8; 16] =
                reader.read_buffer_slice()?.try_into().map_err(|_| DecodeError::Invalid("session password length"))?;
            Forwarded::CreateSession { session_id, timeout_ms, password }
        }
        FORWARD_REVALIDATE => Forwarded::Revalidate { session_id: reader.read_i64()?, timeout_ms: reader.read_i32()? },
        FORWARD_TOUCH => {
            let count = reader.read_i32()?;
            if count < 0 || count as usize > reader.remaining() / 8 {
                return Err(DecodeError::BadLength(count));
            }
            let mut sessions = Vec::with_capacity(count as usize);
            for _ in 0..count {
                sessions.push(reader.read_i64()?);
            }
            Forwarded::Touch(sessions)
        }
        _ => return Err(DecodeError::Invalid("unknown forwarded item")),
    })
}

fn encode_answer(item: &Answer, writer: &mut Writer<'_>) {
    match item {
        Answer::Synced { session_id, xid, index } => {
            writer.write_u8(ANSWER_SYNCED);
            writer.write_i64(*session_id);
            writer.write_i32(*xid);
            writer.write_i64(*index as i64);
        }
        Answer::Revalidated { session_id, alive } => {
            writer.write_u8(ANSWER_REVALIDATED);
            writer.write_i64(*session_id);
            writer.write_bool(*alive);
        }
        Answer::NotLeader { session_id } => {
            writer.write_u8(ANSWER_NOT_LEADER);
            writer.write_i64(*session_id);
        }
        Answer::Moved { session_id } => {
            writer.write_u8(ANSWER_MOVED);
            writer.write_i64(*session_id);
        }
    }
}

fn decode_answer(reader: &mut Reader<'_>) -> DecodeResult<Answer> {
    Ok(match reader.read_u8()? {
        ANSWER_SYNCED => {
            let session_id = reader.read_i64()?;
            let xid = reader.read_i32()?;
            let index = reader.read_i64()?;
            if index < 0 {
                return Err(DecodeError::Invalid("negative sync index"));
            }
            Answer::Synced { session_id, xid, index: index as u64 }
        }
        ANSWER_REVALIDATED => Answer::Revalidated { session_id: reader.read_i64()?, alive: reader.read_bool()? },
        ANSWER_NOT_LEADER => Answer::NotLeader { session_id: reader.read_i64()? },
        ANSWER_MOVED => Answer::Moved { session_id: reader.read_i64()? },
        _ => return Err(DecodeError::Invalid("unknown answer item")),
    })
}

/// A piece of one encoded peer message too large for one frame (a
/// snapshot): the shell streams it in order and reassembles it before the
/// node sees it, so the node only ever handles whole messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk<'a> {
    /// The whole message's length in bytes.
    pub total: u64,
    /// Where `bytes` starts in it.
    pub offset: u64,
    pub bytes: &'a [u8],
}

impl Chunk<'_> {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(PEER_FORMAT_VERSION);
        let mut writer = Writer::new(out);
        writer.write_u8(TAG_CHUNK);
        writer.write_i32(1);
        writer.write_i64(self.total as i64);
        writer.write_i64(self.offset as i64);
        writer.write_buffer(self.bytes);
    }

    /// The chunk in `frame`, None if `frame` is another message, or why it
    /// does not decode.
    pub fn decode(frame: &[u8]) -> Option<DecodeResult<Chunk<'_>>> {
        match frame {
            [PEER_FORMAT_VERSION, TAG_CHUNK, rest @ ..] => Some(Chunk::decode_body(rest)),
            _ => None,
        }
    }

    fn decode_body(rest: &[u8]) -> DecodeResult<Chunk<'_>> {
        let mut reader = Reader::new(rest);
        let count = reader.read_i32()?;
        if count != 1 {
            return Err(DecodeError::BadLength(count));
        }
        let total = u64::try_from(reader.read_i64()?).map_err(|_| DecodeError::Invalid("negative chunk total"))?;
        let offset = u64::try_from(reader.read_i64()?).map_err(|_| DecodeError::Invalid("negative chunk offset"))?;
        let bytes = reader.read_buffer_slice()?;
        if !reader.is_empty() {
            return Err(DecodeError::Invalid("trailing bytes after the chunk"));
        }
        let end = offset.checked_add(bytes.len() as u64).ok_or(DecodeError::Invalid("chunk past its total"))?;
        if end > total || bytes.is_empty() {
            return Err(DecodeError::Invalid("chunk past its total, or empty"));
        }
        Ok(Chunk { total, offset, bytes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::codes::op;
    use crate::proto::{Acl, CreateRequest};
    use crate::tree::{Tree, Txn, TxnHeader};
    use std::sync::Arc;

    fn samples() -> Vec<PeerMessage> {
        let mut tree = Tree::new();
        let header = TxnHeader { zxid: 1, time_ms: 5, session_id: 0, cxid: 0 };
        tree.apply(
            &header,
            &Txn::Create {
                path: Arc::from("/s"),
                data: Some(Arc::from(&b"d"[..])),
                acl: Arc::from(Acl::open_unsafe()),
                ephemeral_owner: 0,
            },
        );
        let mut append = raft::eraftpb::Message::default();
        append.set_msg_type(raft::eraftpb::MessageType::MsgAppend);
        append.to = 2;
        append.from = 1;
        append.term = 3;
        append.index = 10;
        let entry = raft::eraftpb::Entry { index: 11, term: 3, data: b"payload".to_vec().into(), ..Default::default() };
        append.entries = vec![entry].into();
        let create = Request::Create(CreateRequest {
            opcode: op::CREATE2,
            path: "/a".into(),
            data: Some(b"x".to_vec()),
            acl: Acl::open_unsafe(),
            flags: 0,
            ttl_ms: -1,
        });
        vec![
            PeerMessage::Raft(vec![append, raft::eraftpb::Message::default()]),
            PeerMessage::Forward(vec![
                Forwarded::Write { session_id: 5, xid: 9, request: create, auth: vec![Id::new("digest", "u:x")] },
                Forwarded::Write { session_id: 5, xid: 10, request: Request::Sync { path: "/".into() }, auth: vec![] },
                Forwarded::CreateSession { session_id: 6, timeout_ms: 4000, password: [3; 16] },
                Forwarded::Revalidate { session_id: 7, timeout_ms: 6000 },
                Forwarded::Touch(vec![5, 6, 7]),
            ]),
            PeerMessage::Answer(vec![
                Answer::Synced { session_id: 5, xid: 10, index: 77 },
                Answer::Revalidated { session_id: 7, alive: false },
                Answer::NotLeader { session_id: 5 },
                Answer::Moved { session_id: 8 },
            ]),
            PeerMessage::Snapshot { message: raft::eraftpb::Message::default(), tree: Arc::new(tree) },
        ]
    }

    #[test]
    fn every_message_round_trips() {
        for message in samples() {
            let mut bytes = Vec::new();
            message.encode(&mut bytes);
            let mut again = Vec::new();
            PeerMessage::decode(&bytes).unwrap().encode(&mut again);
            assert_eq!(again, bytes, "{message:?}");
        }
    }

    #[test]
    fn damage_is_an_error_not_a_panic() {
        for message in samples() {
            let mut bytes = Vec::new();
            message.encode(&mut bytes);
            for cut in 0..bytes.len() {
                assert!(PeerMessage::decode(&bytes[..cut]).is_err(), "cut at {cut} of {message:?}");
            }
            for position in 0..bytes.len() {
                let mut damaged = bytes.clone();
                damaged[position] ^= 0xff;
                // Either refused or decoded into something; never a panic.
                let _ = PeerMessage::decode(&damaged);
            }
        }
    }

    #[test]
    fn a_chunk_round_trips_and_damage_is_an_error() {
        let chunk = Chunk { total: 10, offset: 4, bytes: b"abc" };
        let mut bytes = Vec::new();
        chunk.encode(&mut bytes);
        assert_eq!(Chunk::decode(&bytes), Some(Ok(chunk)));
        // Other messages are not chunks.
        let mut other = Vec::new();
        PeerMessage::Answer(Vec::new()).encode(&mut other);
        assert_eq!(Chunk::decode(&other), None);
        for cut in 2..bytes.len() {
            assert!(matches!(Chunk::decode(&bytes[..cut]), Some(Err(_))), "cut at {cut}");
        }
        // Past its total, or empty: refused.
        for (offset, total, piece) in [(8, 10, &b"abc"[..]), (0, 10, &b""[..]), (u64::MAX as i64 as u64, 10, &b"a"[..])]
        {
            let mut bytes = Vec::new();
            Chunk { total, offset, bytes: piece }.encode(&mut bytes);
            assert!(matches!(Chunk::decode(&bytes), Some(Err(_))), "offset {offset} total {total}");
        }
        for position in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[position] ^= 0xff;
            let _ = Chunk::decode(&damaged);
        }
    }

    // Issue 14, item 6: the peer decoders' own fuzz test. Whatever bytes a
    // peer sends, decoding answers Ok or Err and never panics or allocates
    // by a length it was told; what decodes re-encodes to a message that
    // decodes again to the same bytes.
    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        fn encoded_samples() -> Vec<Vec<u8>> {
            samples()
                .iter()
                .map(|message| {
                    let mut bytes = Vec::new();
                    message.encode(&mut bytes);
                    bytes
                })
                .collect()
        }

        /// Decodes `bytes` as the broadcast core does (a chunk, or a whole
        /// message) and checks that what decodes is stable.
        fn decode_like_the_core(bytes: &[u8]) {
            match Chunk::decode(bytes) {
                Some(Ok(chunk)) => {
                    let mut again = Vec::new();
                    chunk.encode(&mut again);
                    assert_eq!(Chunk::decode(&again), Some(Ok(chunk)));
                }
                Some(Err(_)) => {}
                None => {
                    if let Ok(message) = PeerMessage::decode(bytes) {
                        let mut again = Vec::new();
                        message.encode(&mut again);
                        let mut third = Vec::new();
                        PeerMessage::decode(&again).expect("a re-encoded message decodes").encode(&mut third);
                        assert_eq!(third, again);
                    }
                }
            }
        }

        /// One edit of a valid message: a byte changed, a run inserted, a
        /// run removed, or a length-sized field overwritten with extremes.
        fn mutate(bytes: &mut Vec<u8>, kind: u8, at: usize, value: u32) {
            if bytes.is_empty() {
                bytes.push(value as u8);
                return;
            }
            let at = at % bytes.len();
            match kind % 4 {
                0 => bytes[at] = value as u8,
                1 => {
                    let run = vec![value as u8; (value % 16) as usize + 1];
                    bytes.splice(at..at, run);
                }
                2 => {
                    let end = (at + (value % 16) as usize + 1).min(bytes.len());
                    bytes.drain(at..end);
                }
                _ => {
                    let extreme = [0u32, 1, 0x7fff_ffff, 0xffff_ffff, value][(value % 5) as usize];
                    let end = (at + 4).min(bytes.len());
                    let field = extreme.to_be_bytes();
                    bytes[at..end].copy_from_slice(&field[..end - at]);
                }
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

            #[test]
            fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
                decode_like_the_core(&bytes);
                // The same bytes behind each valid header byte pair.
                for prefix in [[PEER_FORMAT_VERSION, TAG_RAFT], [PEER_FORMAT_VERSION, TAG_FORWARD]] {
                    let mut framed = prefix.to_vec();
                    framed.extend_from_slice(&bytes);
                    decode_like_the_core(&framed);
                }
            }

            #[test]
            fn mutated_messages_never_panic(
                sample in 0usize..4,
                edits in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<u32>()), 1..6),
            ) {
                let samples = encoded_samples();
                let mut bytes = samples[sample % samples.len()].clone();
                for (kind, at, value) in edits {
                    mutate(&mut bytes, kind, at, value);
                }
                decode_like_the_core(&bytes);
            }
        }
    }
}
