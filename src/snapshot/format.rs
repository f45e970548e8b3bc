//! The bytes of a snapshot file: a fixed 64-byte header and an rkyv payload,
//! stored as LZ4 blocks (version 2) or as it is (version 1, still read).
//! docs/formats/snapshot.md describes both byte by byte; the layout tests in
//! tests.rs hold this file and that page together.
//!
//! The payload is compressed because most of a snapshot is repetition:
//! paths share their prefixes, and every node record is 104 bytes of which
//! many are zero (padding, versions, small offsets). LZ4 blocks of at most
//! `CHUNK_RAW_BYTES_MAX` keep writing a stream (the writer never holds more
//! than one block) and reading as fast as copying the file.
//!
//! The payload types borrow from the tree (`&[u8]` archived as rkyv vectors
//! with `AsVec`), so writing copies each path and data buffer once, straight
//! into the output, and never builds an owned copy of the tree. They are
//! only ever serialized; reading works on their archived forms in place.
//! Strings are archived as byte vectors, not as rkyv strings, so that every
//! variable-length field has the one layout the format page describes (a
//! relative offset and a length) and the reader checks UTF-8 itself.

use rkyv::rancor::Fallible;
use rkyv::ser::{Allocator, Writer};
use rkyv::vec::{ArchivedVec, VecResolver};
use rkyv::with::{ArchiveWith, AsVec, Map, SerializeWith};
use rkyv::{Archive, Place, Serialize};

use crate::tree::Node;

/// "ZOOSNAP" and a zero byte: the first 8 bytes of every snapshot file.
pub const MAGIC: [u8; 8] = *b"ZOOSNAP\0";
/// The version written: the payload as LZ4 blocks.
pub const FORMAT_VERSION: u32 = 2;
/// The first version, its payload stored as it is; still read.
pub const FORMAT_VERSION_UNCOMPRESSED: u32 = 1;
pub const HEADER_BYTES: usize = 64;

pub const MAGIC_OFFSET: usize = 0;
pub const FORMAT_VERSION_OFFSET: usize = 8;
pub const RESERVED_FIRST_OFFSET: usize = 12;
pub const CLUSTER_ID_OFFSET: usize = 16;
pub const INDEX_OFFSET: usize = 24;
pub const TERM_OFFSET: usize = 32;
pub const PAYLOAD_LENGTH_OFFSET: usize = 40;
pub const PAYLOAD_CHECKSUM_OFFSET: usize = 48;
/// Version 2: the payload's length once decompressed. Version 1: zero.
pub const RAW_PAYLOAD_LENGTH_OFFSET: usize = 52;
pub const HEADER_CHECKSUM_OFFSET: usize = 60;

/// The header's fields, as written and as read back once validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub version: u32,
    pub cluster_id: u64,
    pub index: u64,
    pub term: u64,
    /// The payload's bytes in the file.
    pub payload_bytes: u64,
    pub payload_crc32c: u32,
    /// Version 2: the payload's bytes once decompressed (0 in version 1).
    pub raw_payload_bytes: u64,
}

/// Version 2's payload is a run of chunks, each this header (u32 raw
/// length, u32 compressed length, little-endian) and an LZ4 block.
pub const CHUNK_HEADER_BYTES: usize = 8;
/// The most raw bytes one chunk holds: the writer's buffer.
pub const CHUNK_RAW_BYTES_MAX: usize = 1 << 20;
/// LZ4 never shrinks data by more than this, so a header claiming more raw
/// bytes than this times the file's is damage, found before allocating.
pub const LZ4_RATIO_MAX: u64 = 256;

/// Why a header was refused: the offset of the offending field and a reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderFault {
    pub offset_bytes: u64,
    pub reason: String,
}

impl Header {
    pub fn encode(&self) -> [u8; HEADER_BYTES] {
        let mut bytes = [0u8; HEADER_BYTES];
        bytes[MAGIC_OFFSET..MAGIC_OFFSET + 8].copy_from_slice(&MAGIC);
        put_u32(&mut bytes, FORMAT_VERSION_OFFSET, self.version);
        put_u64(&mut bytes, CLUSTER_ID_OFFSET, self.cluster_id);
        put_u64(&mut bytes, INDEX_OFFSET, self.index);
        put_u64(&mut bytes, TERM_OFFSET, self.term);
        put_u64(&mut bytes, PAYLOAD_LENGTH_OFFSET, self.payload_bytes);
        put_u32(&mut bytes, PAYLOAD_CHECKSUM_OFFSET, self.payload_crc32c);
        put_u64(&mut bytes, RAW_PAYLOAD_LENGTH_OFFSET, self.raw_payload_bytes);
        let header_crc32c = crc32c::crc32c(&bytes[..HEADER_CHECKSUM_OFFSET]);
        put_u32(&mut bytes, HEADER_CHECKSUM_OFFSET, header_crc32c);
        bytes
    }

    /// Checks, in this order, the magic number, the header checksum (so a
    /// flipped bit in any later field is caught here, before it can be
    /// misread as a foreign cluster or a wrong index), the version and the
    /// reserved bytes.
    pub fn decode(bytes: &[u8; HEADER_BYTES]) -> Result<Header, HeaderFault> {
        let fault = |offset: usize, reason: String| HeaderFault { offset_bytes: offset as u64, reason };
        if bytes[MAGIC_OFFSET..MAGIC_OFFSET + 8] != MAGIC {
            return Err(fault(MAGIC_OFFSET, format!("not a zoocore snapshot: magic number is {:02x?}", &bytes[..8])));
        }
        let stored = get_u32(bytes, HEADER_CHECKSUM_OFFSET);
        let computed = crc32c::crc32c(&bytes[..HEADER_CHECKSUM_OFFSET]);
        if stored != computed {
            return Err(fault(
                HEADER_CHECKSUM_OFFSET,
                format!("header CRC32C is {stored:#010x} but bytes 0..60 give {computed:#010x}: the header is damaged"),
            ));
        }
        let version = get_u32(bytes, FORMAT_VERSION_OFFSET);
        if version != FORMAT_VERSION && version != FORMAT_VERSION_UNCOMPRESSED {
            return Err(fault(
                FORMAT_VERSION_OFFSET,
                format!(
                    "format version {version} is not one this server reads ({FORMAT_VERSION_UNCOMPRESSED} or {FORMAT_VERSION})"
                ),
            ));
        }
        if get_u32(bytes, RESERVED_FIRST_OFFSET) != 0 {
            return Err(fault(RESERVED_FIRST_OFFSET, "reserved bytes 12..16 are not zero".to_string()));
        }
        let raw_payload_bytes = get_u64(bytes, RAW_PAYLOAD_LENGTH_OFFSET);
        if version == FORMAT_VERSION_UNCOMPRESSED && raw_payload_bytes != 0 {
            return Err(fault(
                RAW_PAYLOAD_LENGTH_OFFSET,
                "reserved bytes 52..60 of a version 1 file are not zero".into(),
            ));
        }
        Ok(Header {
            version,
            raw_payload_bytes,
            cluster_id: get_u64(bytes, CLUSTER_ID_OFFSET),
            index: get_u64(bytes, INDEX_OFFSET),
            term: get_u64(bytes, TERM_OFFSET),
            payload_bytes: get_u64(bytes, PAYLOAD_LENGTH_OFFSET),
            payload_crc32c: get_u32(bytes, PAYLOAD_CHECKSUM_OFFSET),
        })
    }
}

fn put_u32(bytes: &mut [u8], offset: usize, value: u32) {
    bytes[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
}

fn put_u64(bytes: &mut [u8], offset: usize, value: u64) {
    bytes[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
}

fn get_u32(bytes: &[u8; HEADER_BYTES], offset: usize) -> u32 {
    let mut field = [0u8; 4];
    field.copy_from_slice(&bytes[offset..offset + 4]);
    u32::from_le_bytes(field)
}

fn get_u64(bytes: &[u8; HEADER_BYTES], offset: usize) -> u64 {
    let mut field = [0u8; 8];
    field.copy_from_slice(&bytes[offset..offset + 8]);
    u64::from_le_bytes(field)
}

/// The root of the payload. Field order is the archived order (rkyv
/// archives structs as `repr(C)`); wider fields first keeps padding small.
#[derive(Archive, Serialize)]
pub struct PayloadRecord<'a> {
    /// The tree's last applied zxid (may be below the header's index when
    /// the last log entries carried no transaction).
    pub last_zxid: i64,
    #[rkyv(with = AsVec)]
    pub voters: &'a [u64],
    #[rkyv(with = AsVec)]
    pub learners: &'a [u64],
    #[rkyv(with = AsVec)]
    pub voters_outgoing: &'a [u64],
    #[rkyv(with = AsVec)]
    pub learners_next: &'a [u64],
    /// Distinct ACL lists; a node names one by its position here.
    pub acl_lists: Vec<Vec<AclRecord<'a>>>,
    /// Archived as `NodeRecord`s, each made as it is written (see
    /// `NodeEntries`).
    #[rkyv(with = NodeEntries)]
    pub nodes: Vec<NodeEntry<'a>>,
    pub sessions: Vec<SessionRecord>,
    pub auto_leave: bool,
}

#[derive(Archive, Serialize)]
pub struct AclRecord<'a> {
    #[rkyv(with = AsVec)]
    pub scheme: &'a [u8],
    #[rkyv(with = AsVec)]
    pub id: &'a [u8],
    pub perms: i32,
}

#[derive(Archive, Serialize)]
pub struct NodeRecord<'a> {
    #[rkyv(with = AsVec)]
    pub path: &'a [u8],
    /// None is null data, kept apart from an empty buffer.
    #[rkyv(with = Map<AsVec>)]
    pub data: Option<&'a [u8]>,
    pub czxid: i64,
    pub mzxid: i64,
    pub pzxid: i64,
    pub ctime_ms: i64,
    pub mtime_ms: i64,
    pub ephemeral_owner: i64,
    pub version: i32,
    /// The raw create counter (`Node::cversion`), not the reported cversion.
    pub cversion: i32,
    pub aversion: i32,
    /// Position in `PayloadRecord::acl_lists`.
    pub acl_list: u32,
}

/// A node to write: the tree's own node and the position of its ACL list.
/// 16 bytes a node where a `NodeRecord` is 96: the writer holds one for
/// every node of the tree while it writes, so this is most of what a
/// snapshot of a large tree costs in memory.
#[derive(Clone, Copy)]
pub struct NodeEntry<'a> {
    pub node: &'a Node,
    pub acl_list: u32,
}

impl<'a> NodeEntry<'a> {
    pub fn record(&self) -> NodeRecord<'a> {
        let node = self.node;
        NodeRecord {
            path: node.path().as_bytes(),
            data: node.data(),
            czxid: node.czxid(),
            mzxid: node.mzxid(),
            pzxid: node.pzxid(),
            ctime_ms: node.ctime_ms(),
            mtime_ms: node.mtime_ms(),
            ephemeral_owner: node.ephemeral_owner(),
            version: node.version(),
            cversion: node.cversion(),
            aversion: node.aversion(),
            acl_list: self.acl_list,
        }
    }
}

/// Archives node entries exactly as a `Vec<NodeRecord>` (the format does
/// not change), making each record from its entry when rkyv asks for it.
pub struct NodeEntries;

impl<'a> ArchiveWith<Vec<NodeEntry<'a>>> for NodeEntries {
    type Archived = ArchivedVec<ArchivedNodeRecord<'a>>;
    type Resolver = VecResolver;

    fn resolve_with(entries: &Vec<NodeEntry<'a>>, resolver: VecResolver, out: Place<Self::Archived>) {
        ArchivedVec::resolve_from_len(entries.len(), resolver, out);
    }
}

impl<'a, S> SerializeWith<Vec<NodeEntry<'a>>, S> for NodeEntries
where
    S: Fallible + Allocator + Writer + ?Sized,
{
    fn serialize_with(entries: &Vec<NodeEntry<'a>>, serializer: &mut S) -> Result<VecResolver, S::Error> {
        ArchivedVec::<ArchivedNodeRecord<'a>>::serialize_from_iter::<NodeRecord<'a>, _, _>(
            entries.iter().map(NodeEntry::record),
            serializer,
        )
    }
}

#[derive(Archive, Serialize)]
pub struct SessionRecord {
    pub id: i64,
    pub timeout_ms: i32,
    pub password: [u8; 16],
}
