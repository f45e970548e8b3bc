//! Apache ZooKeeper's on-disk formats (3.5 to 3.9), byte for byte: the
//! snapshot (`version-2/snapshot.<zxid>`, magic ZKSN, optionally gz or
//! snappy compressed, optionally followed by the zxid digest) and the
//! transaction log (`version-2/log.<zxid>`, magic ZKLG, Adler-32 per record).
//! docs/formats/zookeeper.md describes every field.
//!
//! Decoding works on whole byte slices (a snapshot is decompressed into
//! memory first, bounded by `SNAPSHOT_BYTES_MAX`) with the same
//! bounds-checked jute reader that guards the wire, so a damaged length can
//! never make us allocate what the file does not hold, and every failure
//! carries the byte offset where it happened. Nothing here touches files:
//! `mod.rs` reads them and names them in errors.

use std::io::Read;

use crate::proto::jute::{DecodeError, Reader, Writer};
use crate::proto::Acl;

/// "ZKSN", the first four bytes of a snapshot's uncompressed stream.
pub const SNAPSHOT_MAGIC: i32 = 0x5A4B_534E;
/// "ZKLG", the first four bytes of a transaction log.
pub const LOG_MAGIC: i32 = 0x5A4B_4C47;
/// The only file format version ZooKeeper 3.x writes.
pub const FORMAT_VERSION: i32 = 2;
/// Magic, version and dbid.
pub const FILE_HEADER_BYTES: usize = 16;
/// The largest decompressed snapshot we accept: a guard against a
/// decompression bomb, far above any real ZooKeeper (whose whole tree must
/// fit its heap).
pub const SNAPSHOT_BYTES_MAX: u64 = 64 * 1024 * 1024 * 1024;
/// ZooKeeper's jute.maxbuffer default plus room: the largest transaction
/// record a log may hold (a multi of many 1 MiB writes is refused by
/// ZooKeeper itself long before).
pub const LOG_RECORD_BYTES_MAX: usize = 100 * 1024 * 1024;
/// The end-of-record byte after each transaction in a log.
const END_OF_RECORD: u8 = b'B';
/// xerial snappy-java's stream header (SnappyOutputStream), which
/// ZooKeeper's `snappy` compression writes: magic, version 1, compatible 1.
const SNAPPY_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
const SNAPPY_HEADER_BYTES: usize = 16;
/// snappy-java's default block size when it compresses.
const SNAPPY_BLOCK_BYTES: usize = 32 * 1024;

/// A decoding failure at a byte offset of the (uncompressed) stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub offset: u64,
    pub reason: String,
}

impl Fault {
    fn at(offset: usize, reason: impl Into<String>) -> Fault {
        Fault { offset: offset as u64, reason: reason.into() }
    }
}

fn fault(reader: &Reader<'_>, base: usize, what: &str, error: DecodeError) -> Fault {
    Fault::at(base + reader.position(), format!("{what}: {error}"))
}

/// How a snapshot file is compressed. ZooKeeper decides by the file name's
/// suffix (`zookeeper.snapshot.compression.method`: none, gz, snappy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
}

impl Compression {
    pub fn from_file_name(name: &str) -> Compression {
        if name.ends_with(".gz") {
            Compression::Gzip
        } else if name.ends_with(".snappy") {
            Compression::Snappy
        } else {
            Compression::None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gz",
            Compression::Snappy => "snappy",
        }
    }
}

/// The uncompressed stream of a snapshot file. A fault's offset is in the
/// compressed file for a broken compression frame, else in the stream.
pub fn decompress(bytes: &[u8], compression: Compression) -> Result<Vec<u8>, Fault> {
    match compression {
        Compression::None => Ok(bytes.to_vec()),
        Compression::Gzip => {
            let mut out = Vec::with_capacity(bytes.len() * 4);
            let decoder = flate2::read::GzDecoder::new(bytes);
            decoder.take(SNAPSHOT_BYTES_MAX + 1).read_to_end(&mut out).map_err(|error| {
                Fault::at(out.len(), format!("gzip stream broken after {} bytes: {error}", out.len()))
            })?;
            if out.len() as u64 > SNAPSHOT_BYTES_MAX {
                return Err(Fault::at(0, format!("decompresses to more than {SNAPSHOT_BYTES_MAX} bytes")));
            }
            Ok(out)
        }
        Compression::Snappy => snappy_decompress(bytes),
    }
}

/// snappy-java's stream: the 16-byte header, then blocks of a big-endian
/// i32 compressed length and that many bytes of raw snappy.
fn snappy_decompress(bytes: &[u8]) -> Result<Vec<u8>, Fault> {
    if bytes.len() < SNAPPY_HEADER_BYTES || bytes[..8] != SNAPPY_MAGIC {
        return Err(Fault::at(0, "not a snappy-java stream (magic 82 53 4e 41 50 50 59 00 expected)"));
    }
    let mut out = Vec::with_capacity(bytes.len() * 3);
    let mut decoder = snap::raw::Decoder::new();
    let mut position = SNAPPY_HEADER_BYTES;
    while position < bytes.len() {
        if bytes.len() - position < 4 {
            return Err(Fault::at(position, "snappy block length cut short"));
        }
        let length =
            i32::from_be_bytes([bytes[position], bytes[position + 1], bytes[position + 2], bytes[position + 3]]);
        if length < 0 || position + 4 + length as usize > bytes.len() {
            return Err(Fault::at(position, format!("snappy block length {length} runs past the end of the file")));
        }
        let block = &bytes[position + 4..position + 4 + length as usize];
        let size = snap::raw::decompress_len(block)
            .map_err(|error| Fault::at(position + 4, format!("snappy block: {error}")))?;
        if (out.len() + size) as u64 > SNAPSHOT_BYTES_MAX {
            return Err(Fault::at(position, format!("decompresses to more than {SNAPSHOT_BYTES_MAX} bytes")));
        }
        let start = out.len();
        out.resize(start + size, 0);
        decoder
            .decompress(block, &mut out[start..])
            .map_err(|error| Fault::at(position + 4, format!("snappy block: {error}")))?;
        position += 4 + length as usize;
    }
    Ok(out)
}

/// Compresses a stream as ZooKeeper's writer would for `compression`.
pub fn compress(stream: &[u8], compression: Compression) -> Vec<u8> {
    match compression {
        Compression::None => stream.to_vec(),
        Compression::Gzip => {
            use std::io::Write;
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(stream).expect("writing to memory");
            encoder.finish().expect("writing to memory")
        }
        Compression::Snappy => {
            let mut out = SNAPPY_MAGIC.to_vec();
            out.extend_from_slice(&1i32.to_be_bytes());
            out.extend_from_slice(&1i32.to_be_bytes());
            let mut encoder = snap::raw::Encoder::new();
            for block in stream.chunks(SNAPPY_BLOCK_BYTES) {
                let compressed = encoder.compress_vec(block).expect("a block within snappy's limits");
                out.extend_from_slice(&(compressed.len() as i32).to_be_bytes());
                out.extend_from_slice(&compressed);
            }
            out
        }
    }
}

/// The persisted part of a znode's Stat (jute StatPersisted). `cversion`
/// is the count of child creates; clients see 2 × cversion − numChildren.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatPersisted {
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub pzxid: i64,
}

impl StatPersisted {
    fn decode(reader: &mut Reader<'_>) -> Result<StatPersisted, DecodeError> {
        Ok(StatPersisted {
            czxid: reader.read_i64()?,
            mzxid: reader.read_i64()?,
            ctime: reader.read_i64()?,
            mtime: reader.read_i64()?,
            version: reader.read_i32()?,
            cversion: reader.read_i32()?,
            aversion: reader.read_i32()?,
            ephemeral_owner: reader.read_i64()?,
            pzxid: reader.read_i64()?,
        })
    }

    fn encode(&self, writer: &mut Writer<'_>) {
        writer.write_i64(self.czxid);
        writer.write_i64(self.mzxid);
        writer.write_i64(self.ctime);
        writer.write_i64(self.mtime);
        writer.write_i32(self.version);
        writer.write_i32(self.cversion);
        writer.write_i32(self.aversion);
        writer.write_i64(self.ephemeral_owner);
        writer.write_i64(self.pzxid);
    }
}

/// One znode as a snapshot stores it. The path of the root is "".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotNode {
    pub path: String,
    pub data: Option<Vec<u8>>,
    /// The key of its ACL list in the snapshot's ACL map; -1 is
    /// world:anyone with every permission.
    pub acl_key: i64,
    pub stat: StatPersisted,
}

/// ZooKeeper 3.6+'s digest of the tree at a zxid, after the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZxidDigest {
    pub zxid: i64,
    pub version: i32,
    pub digest: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub dbid: i64,
    /// Session id and timeout (ms).
    pub sessions: Vec<(i64, i32)>,
    /// ACL map: key, list.
    pub acls: Vec<(i64, Vec<Acl>)>,
    /// Parents before children (depth first).
    pub nodes: Vec<SnapshotNode>,
    pub digest: Option<ZxidDigest>,
    /// The Adler-32 checksums the stream carried (checked).
    pub checksum: i64,
}

/// The ACL key ZooKeeper uses for world:anyone/all without a map entry.
pub const OPEN_ACL_KEY: i64 = -1;

fn read_text<'a>(reader: &mut Reader<'a>) -> Result<String, DecodeError> {
    let bytes = reader.read_buffer_slice()?;
    String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::Invalid("text that is not UTF-8"))
}

fn read_acl_list(reader: &mut Reader<'_>) -> Result<Vec<Acl>, DecodeError> {
    Acl::decode_list(reader)
}

/// Reads the 16-byte file header: magic, version, dbid.
fn read_file_header(reader: &mut Reader<'_>, magic: i32, what: &str) -> Result<i64, Fault> {
    let found = reader.read_i32().map_err(|error| fault(reader, 0, "file header", error))?;
    if found != magic {
        return Err(Fault::at(
            0,
            format!(
                "magic {found:#010x} is not {what}'s {magic:#010x} ({})",
                String::from_utf8_lossy(&magic.to_be_bytes())
            ),
        ));
    }
    let version = reader.read_i32().map_err(|error| fault(reader, 0, "file header", error))?;
    if version != FORMAT_VERSION {
        return Err(Fault::at(4, format!("format version {version}, only {FORMAT_VERSION} is known")));
    }
    reader.read_i64().map_err(|error| fault(reader, 0, "file header", error))
}

/// Decodes a snapshot's uncompressed stream, checking its Adler-32 seals.
pub fn decode_snapshot(stream: &[u8]) -> Result<Snapshot, Fault> {
    let mut reader = Reader::new(stream);
    let dbid = read_file_header(&mut reader, SNAPSHOT_MAGIC, "a ZooKeeper snapshot")?;
    let count = reader.read_i32().map_err(|error| fault(&reader, 0, "session count", error))?;
    if count < 0 || count as usize > reader.remaining() / 12 {
        return Err(Fault::at(reader.position() - 4, format!("session count {count} does not fit the file")));
    }
    let mut sessions = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let id = reader.read_i64().map_err(|error| fault(&reader, 0, "session", error))?;
        let timeout = reader.read_i32().map_err(|error| fault(&reader, 0, "session", error))?;
        sessions.push((id, timeout));
    }
    let count = reader.read_i32().map_err(|error| fault(&reader, 0, "ACL map size", error))?;
    if count < 0 || count as usize > reader.remaining() / 12 {
        return Err(Fault::at(reader.position() - 4, format!("ACL map size {count} does not fit the file")));
    }
    let mut acls = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let key = reader.read_i64().map_err(|error| fault(&reader, 0, "ACL map key", error))?;
        let list = read_acl_list(&mut reader).map_err(|error| fault(&reader, 0, "ACL list", error))?;
        acls.push((key, list));
    }
    let mut nodes = Vec::new();
    loop {
        let at = reader.position();
        let path = read_text(&mut reader).map_err(|error| fault(&reader, 0, "node path", error))?;
        if path == "/" {
            break;
        }
        if !(path.is_empty() || path.starts_with('/')) {
            return Err(Fault::at(at, format!("node path {path:?} is not absolute")));
        }
        let data = reader.read_optional_buffer().map_err(|error| fault(&reader, 0, "node data", error))?;
        let acl_key = reader.read_i64().map_err(|error| fault(&reader, 0, "node ACL key", error))?;
        let stat = StatPersisted::decode(&mut reader).map_err(|error| fault(&reader, 0, "node stat", error))?;
        nodes.push(SnapshotNode { path, data, acl_key, stat });
    }
    let checksum = check_seal(&mut reader, stream)?;
    let digest = if reader.is_empty() {
        None
    } else {
        let digest = ZxidDigest {
            zxid: reader.read_i64().map_err(|error| fault(&reader, 0, "digest", error))?,
            version: reader.read_i32().map_err(|error| fault(&reader, 0, "digest", error))?,
            digest: reader.read_i64().map_err(|error| fault(&reader, 0, "digest", error))?,
        };
        check_seal(&mut reader, stream)?;
        Some(digest)
    };
    if !reader.is_empty() {
        return Err(Fault::at(
            reader.position(),
            format!("{} bytes after the end of the snapshot", reader.remaining()),
        ));
    }
    Ok(Snapshot { dbid, sessions, acls, nodes, digest, checksum })
}

/// A seal: the Adler-32 of every stream byte before it, as an i64, then the
/// string "/".
fn check_seal(reader: &mut Reader<'_>, stream: &[u8]) -> Result<i64, Fault> {
    let at = reader.position();
    let expected = adler32(&stream[..at]) as i64;
    let found = reader.read_i64().map_err(|error| fault(reader, 0, "checksum", error))?;
    if found != expected {
        return Err(Fault::at(at, format!("Adler-32 checksum {found:#x} does not match the content's {expected:#x}")));
    }
    let slash = read_text(reader).map_err(|error| fault(reader, 0, "end marker", error))?;
    if slash != "/" {
        return Err(Fault::at(at + 8, format!("end marker {slash:?} is not \"/\"")));
    }
    Ok(found)
}

pub fn adler32(bytes: &[u8]) -> u32 {
    let mut adler = adler2::Adler32::new();
    adler.write_slice(bytes);
    adler.checksum()
}

/// Encodes a snapshot's uncompressed stream (what ZooKeeper's FileSnap
/// writes), sealing it with Adler-32; the digest, if given, is sealed too.
pub fn encode_snapshot(snapshot: &Snapshot) -> Vec<u8> {
    let mut out = Vec::new();
    let mut writer = Writer::new(&mut out);
    writer.write_i32(SNAPSHOT_MAGIC);
    writer.write_i32(FORMAT_VERSION);
    writer.write_i64(snapshot.dbid);
    writer.write_i32(snapshot.sessions.len() as i32);
    for (id, timeout) in &snapshot.sessions {
        writer.write_i64(*id);
        writer.write_i32(*timeout);
    }
    writer.write_i32(snapshot.acls.len() as i32);
    for (key, list) in &snapshot.acls {
        writer.write_i64(*key);
        Acl::encode_list(list, &mut writer);
    }
    for node in &snapshot.nodes {
        writer.write_string(&node.path);
        writer.write_optional_buffer(node.data.as_deref());
        writer.write_i64(node.acl_key);
        node.stat.encode(&mut writer);
    }
    writer.write_string("/");
    seal(&mut out);
    if let Some(digest) = snapshot.digest {
        let mut writer = Writer::new(&mut out);
        writer.write_i64(digest.zxid);
        writer.write_i32(digest.version);
        writer.write_i64(digest.digest);
        seal(&mut out);
    }
    out
}

fn seal(out: &mut Vec<u8>) {
    let checksum = adler32(out) as i64;
    let mut writer = Writer::new(out);
    writer.write_i64(checksum);
    writer.write_string("/");
}

/// A transaction log's header alone: what an empty log holds.
pub fn encode_log_header(dbid: i64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut writer = Writer::new(&mut out);
    writer.write_i32(LOG_MAGIC);
    writer.write_i32(FORMAT_VERSION);
    writer.write_i64(dbid);
    out
}

/// jute TxnHeader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnHeader {
    pub client_id: i64,
    pub cxid: i32,
    pub zxid: i64,
    pub time: i64,
    pub kind: i32,
}

/// The ZooKeeper transactions a log holds (zookeeper.jute's txn module).
/// Values are absolute (versions, the parent's cversion after a create) so
/// that replay over a fuzzy snapshot is idempotent, as in ZooKeeper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Txn {
    CreateSession {
        timeout_ms: i32,
    },
    /// `paths` is CloseSessionTxn's paths2Delete (3.6+); None before.
    CloseSession {
        paths: Option<Vec<String>>,
    },
    /// create and create2. `parent_cversion` -1 is a 3.2-era CreateTxnV0.
    Create {
        path: String,
        data: Option<Vec<u8>>,
        acl: Vec<Acl>,
        ephemeral: bool,
        parent_cversion: i32,
    },
    CreateContainer {
        path: String,
        data: Option<Vec<u8>>,
        acl: Vec<Acl>,
        parent_cversion: i32,
    },
    CreateTtl {
        path: String,
        data: Option<Vec<u8>>,
        acl: Vec<Acl>,
        parent_cversion: i32,
        ttl_ms: i64,
    },
    /// delete and deleteContainer.
    Delete {
        path: String,
    },
    /// setData, and reconfig (a setData of /zookeeper/config).
    SetData {
        path: String,
        data: Option<Vec<u8>>,
        version: i32,
    },
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: i32,
    },
    Check {
        path: String,
        version: i32,
    },
    Error {
        code: i32,
    },
    /// Each operation with its opcode (create applies a fix-up the other
    /// create opcodes do not; see `datatree`).
    Multi(Vec<(i32, Txn)>),
}

/// ZooKeeper opcodes found in logs (ZooDefs.OpCode).
pub mod opcode {
    pub const CREATE: i32 = 1;
    pub const DELETE: i32 = 2;
    pub const SET_DATA: i32 = 5;
    pub const SET_ACL: i32 = 7;
    pub const CHECK: i32 = 13;
    pub const MULTI: i32 = 14;
    pub const CREATE2: i32 = 15;
    pub const RECONFIG: i32 = 16;
    pub const CREATE_CONTAINER: i32 = 19;
    pub const DELETE_CONTAINER: i32 = 20;
    pub const CREATE_TTL: i32 = 21;
    pub const CREATE_SESSION: i32 = -10;
    pub const CLOSE_SESSION: i32 = -11;
    pub const ERROR: i32 = -1;

    pub fn name(code: i32) -> &'static str {
        match code {
            CREATE => "create",
            DELETE => "delete",
            SET_DATA => "setData",
            SET_ACL => "setACL",
            CHECK => "check",
            MULTI => "multi",
            CREATE2 => "create2",
            RECONFIG => "reconfig",
            CREATE_CONTAINER => "createContainer",
            DELETE_CONTAINER => "deleteContainer",
            CREATE_TTL => "createTTL",
            CREATE_SESSION => "createSession",
            CLOSE_SESSION => "closeSession",
            ERROR => "error",
            _ => "unknown",
        }
    }
}

/// 3.6+ TxnDigest: the digest version and the tree digest after a
/// transaction.
pub type TxnDigest = (i32, i64);

/// One record of a transaction log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// Where the record (its checksum field) starts in the file.
    pub offset: u64,
    pub header: TxnHeader,
    pub txn: Txn,
    /// 3.6+ TxnDigest: version and tree digest after this transaction.
    pub digest: Option<TxnDigest>,
}

/// How the records of a log file ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEnd {
    /// Zero padding (ZooKeeper preallocates) or the exact end of the file.
    Clean,
    /// A record cut short at `offset` (a crash while writing): ZooKeeper
    /// stops reading this file there, and so do we, saying so.
    Torn { offset: u64, reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFile {
    pub dbid: i64,
    pub records: Vec<LogRecord>,
    pub end: LogEnd,
}

/// Decodes a whole transaction log file. A checksum that does not match,
/// or a record that does not decode, is a fault at the record's offset
/// (ZooKeeper refuses to start on those too); a record cut short by the end
/// of the file is a torn end.
pub fn decode_log(bytes: &[u8]) -> Result<LogFile, Fault> {
    let mut reader = Reader::new(bytes);
    let dbid = read_file_header(&mut reader, LOG_MAGIC, "a ZooKeeper transaction log")?;
    let mut records = Vec::new();
    let mut offset = FILE_HEADER_BYTES;
    let end = loop {
        let rest = &bytes[offset..];
        if rest.len() < 12 {
            if rest.iter().all(|byte| *byte == 0) {
                break LogEnd::Clean;
            }
            break LogEnd::Torn { offset: offset as u64, reason: "a record header cut short".to_string() };
        }
        let mut head = Reader::new(&rest[..12]);
        let crc = head.read_i64().expect("12 bytes");
        let length = head.read_i32().expect("12 bytes");
        if length == 0 {
            // ZooKeeper reads a zero length as the end of the log (the
            // preallocated padding).
            break LogEnd::Clean;
        }
        if length < 0 || length as usize > LOG_RECORD_BYTES_MAX {
            return Err(Fault::at(offset + 8, format!("record length {length} is not plausible")));
        }
        let length = length as usize;
        if rest.len() < 12 + length + 1 {
            break LogEnd::Torn {
                offset: offset as u64,
                reason: format!("a {length}-byte record cut short by the end of the file"),
            };
        }
        let body = &rest[12..12 + length];
        let terminator = rest[12 + length];
        let computed = adler32(body) as i64;
        if computed != crc {
            return Err(Fault::at(
                offset,
                format!("record checksum {crc:#x} does not match its content's Adler-32 {computed:#x}"),
            ));
        }
        if terminator != END_OF_RECORD {
            // ZooKeeper: "Last transaction was partial."
            break LogEnd::Torn {
                offset: offset as u64,
                reason: format!("end-of-record byte {terminator:#04x} is not 'B'"),
            };
        }
        let (header, txn, digest) = decode_txn_entry(body).map_err(|mut fault| {
            fault.offset += (offset + 12) as u64;
            fault
        })?;
        records.push(LogRecord { offset: offset as u64, header, txn, digest });
        offset += 12 + length + 1;
    };
    Ok(LogFile { dbid, records, end })
}

/// The bytes of a TxnHeader.
const TXN_HEADER_BYTES: usize = 32;
/// The bytes of a TxnDigest.
const TXN_DIGEST_BYTES: usize = 12;

/// A transaction entry: TxnHeader, the transaction, an optional TxnDigest.
/// Fault offsets are relative to `body`.
pub fn decode_txn_entry(body: &[u8]) -> Result<(TxnHeader, Txn, Option<TxnDigest>), Fault> {
    if body.len() < TXN_HEADER_BYTES {
        return Err(Fault::at(0, format!("a {}-byte transaction is shorter than its header", body.len())));
    }
    let mut reader = Reader::new(&body[..TXN_HEADER_BYTES]);
    let header = TxnHeader {
        client_id: reader.read_i64().expect("header bytes"),
        cxid: reader.read_i32().expect("header bytes"),
        zxid: reader.read_i64().expect("header bytes"),
        time: reader.read_i64().expect("header bytes"),
        kind: reader.read_i32().expect("header bytes"),
    };
    let rest = &body[TXN_HEADER_BYTES..];
    let (txn, used) = decode_txn(rest, header.kind, TXN_HEADER_BYTES)?;
    // TxnDigest (version i32, digest i64) follows in 3.6+ logs.
    let tail = &rest[used..];
    let digest = match tail.len() {
        0 => None,
        TXN_DIGEST_BYTES => {
            let mut reader = Reader::new(tail);
            Some((reader.read_i32().expect("12 bytes"), reader.read_i64().expect("12 bytes")))
        }
        other => {
            return Err(Fault::at(TXN_HEADER_BYTES + used, format!("{other} unexpected bytes after the transaction")))
        }
    };
    Ok((header, txn, digest))
}

/// Decodes one transaction of type `kind` from the start of `bytes`;
/// returns it and the bytes it used. `base` is where `bytes` starts, for
/// fault offsets.
fn decode_txn(bytes: &[u8], kind: i32, base: usize) -> Result<(Txn, usize), Fault> {
    let what = opcode::name(kind);
    let mut reader = Reader::new(bytes);
    let reader = &mut reader;
    let wrap = |reader: &Reader<'_>, error| fault(reader, base, what, error);
    use opcode::*;
    let txn = match kind {
        CREATE_SESSION => Txn::CreateSession { timeout_ms: reader.read_i32().map_err(|e| wrap(reader, e))? },
        CLOSE_SESSION => {
            // Before 3.6 the body is empty (and no digest follows); a
            // 3.6+ body is CloseSessionTxn, then maybe a digest. A body of
            // only a digest (closeSessionTxn disabled) reads as no paths.
            if bytes.is_empty()
                || bytes.len() == TXN_DIGEST_BYTES && Reader::new(bytes).read_vec(4, read_text).map_or(true, |_| false)
            {
                Txn::CloseSession { paths: None }
            } else {
                let paths = reader.read_vec(4, read_text).map_err(|e| wrap(reader, e))?;
                Txn::CloseSession { paths: Some(paths) }
            }
        }
        CREATE | CREATE2 => {
            let path = read_text(reader).map_err(|e| wrap(reader, e))?;
            let data = reader.read_optional_buffer().map_err(|e| wrap(reader, e))?;
            let acl = read_acl_list(reader).map_err(|e| wrap(reader, e))?;
            let ephemeral = reader.read_bool().map_err(|e| wrap(reader, e))?;
            // CreateTxnV0 (ZooKeeper 3.2) ends here; ZooKeeper replays it
            // with parentCVersion -1.
            let parent_cversion =
                if reader.remaining() == 0 { -1 } else { reader.read_i32().map_err(|e| wrap(reader, e))? };
            Txn::Create { path, data, acl, ephemeral, parent_cversion }
        }
        CREATE_CONTAINER => Txn::CreateContainer {
            path: read_text(reader).map_err(|e| wrap(reader, e))?,
            data: reader.read_optional_buffer().map_err(|e| wrap(reader, e))?,
            acl: read_acl_list(reader).map_err(|e| wrap(reader, e))?,
            parent_cversion: reader.read_i32().map_err(|e| wrap(reader, e))?,
        },
        CREATE_TTL => Txn::CreateTtl {
            path: read_text(reader).map_err(|e| wrap(reader, e))?,
            data: reader.read_optional_buffer().map_err(|e| wrap(reader, e))?,
            acl: read_acl_list(reader).map_err(|e| wrap(reader, e))?,
            parent_cversion: reader.read_i32().map_err(|e| wrap(reader, e))?,
            ttl_ms: reader.read_i64().map_err(|e| wrap(reader, e))?,
        },
        DELETE | DELETE_CONTAINER => Txn::Delete { path: read_text(reader).map_err(|e| wrap(reader, e))? },
        SET_DATA | RECONFIG => Txn::SetData {
            path: read_text(reader).map_err(|e| wrap(reader, e))?,
            data: reader.read_optional_buffer().map_err(|e| wrap(reader, e))?,
            version: reader.read_i32().map_err(|e| wrap(reader, e))?,
        },
        SET_ACL => Txn::SetAcl {
            path: read_text(reader).map_err(|e| wrap(reader, e))?,
            acl: read_acl_list(reader).map_err(|e| wrap(reader, e))?,
            version: reader.read_i32().map_err(|e| wrap(reader, e))?,
        },
        CHECK => Txn::Check {
            path: read_text(reader).map_err(|e| wrap(reader, e))?,
            version: reader.read_i32().map_err(|e| wrap(reader, e))?,
        },
        ERROR => Txn::Error { code: reader.read_i32().map_err(|e| wrap(reader, e))? },
        MULTI => {
            let count = reader.read_i32().map_err(|e| wrap(reader, e))?;
            if count < 0 || count as usize > reader.remaining() / 8 {
                return Err(Fault::at(
                    base + reader.position() - 4,
                    format!("multi of {count} operations does not fit"),
                ));
            }
            let mut operations = Vec::with_capacity(count as usize);
            for _ in 0..count {
                let kind = reader.read_i32().map_err(|e| wrap(reader, e))?;
                let start = base + reader.position() + 4;
                let body = reader.read_buffer_slice().map_err(|e| wrap(reader, e))?;
                if kind == MULTI {
                    return Err(Fault::at(start, "a multi inside a multi"));
                }
                let (txn, used) = decode_txn(body, kind, start)?;
                if used != body.len() {
                    return Err(Fault::at(start + used, "unexpected bytes after a multi operation"));
                }
                operations.push((kind, txn));
            }
            Txn::Multi(operations)
        }
        other => return Err(Fault::at(base, format!("unknown transaction type {other}"))),
    };
    Ok((txn, reader.position()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
        Snapshot {
            dbid: -1,
            sessions: vec![(0x100, 30_000)],
            acls: vec![(1, Acl::open_unsafe())],
            nodes: vec![
                SnapshotNode {
                    path: String::new(),
                    data: Some(Vec::new()),
                    acl_key: 1,
                    stat: StatPersisted::default(),
                },
                SnapshotNode {
                    path: "/a".to_string(),
                    data: None,
                    acl_key: OPEN_ACL_KEY,
                    stat: StatPersisted { czxid: 5, cversion: 2, ephemeral_owner: 0x100, ..StatPersisted::default() },
                },
            ],
            digest: Some(ZxidDigest { zxid: 5, version: 2, digest: 42 }),
            checksum: 0,
        }
    }

    #[test]
    fn snapshots_round_trip_in_every_compression() {
        let stream = encode_snapshot(&sample());
        for compression in [Compression::None, Compression::Gzip, Compression::Snappy] {
            let file = compress(&stream, compression);
            let decoded = decode_snapshot(&decompress(&file, compression).unwrap()).unwrap();
            assert_eq!(Snapshot { checksum: 0, ..decoded }, sample(), "{compression:?}");
        }
    }

    #[test]
    fn a_changed_byte_is_a_checksum_fault_at_the_seal() {
        let mut stream = encode_snapshot(&Snapshot { digest: None, ..sample() });
        let seal = stream.len() - 8 - 5;
        stream[20] ^= 1;
        let fault = decode_snapshot(&stream).unwrap_err();
        assert!(fault.offset == 20 || fault.offset == seal as u64, "{fault:?}");
    }

    #[test]
    fn a_log_record_is_checked_and_a_cut_record_is_a_torn_end() {
        let mut body = Vec::new();
        let mut writer = Writer::new(&mut body);
        writer.write_i64(0x100);
        writer.write_i32(1);
        writer.write_i64(7);
        writer.write_i64(1000);
        writer.write_i32(opcode::DELETE);
        writer.write_string("/a");
        let mut file = encode_log_header(0);
        let mut writer = Writer::new(&mut file);
        writer.write_i64(adler32(&body) as i64);
        writer.write_buffer(&body);
        file.push(b'B');
        let log = decode_log(&file).unwrap();
        assert_eq!(log.records.len(), 1);
        assert_eq!(log.records[0].txn, Txn::Delete { path: "/a".to_string() });
        assert_eq!(log.end, LogEnd::Clean);
        let torn = decode_log(&file[..file.len() - 3]).unwrap();
        assert!(matches!(torn.end, LogEnd::Torn { offset: 16, .. }) && torn.records.is_empty());
        let mut damaged = file.clone();
        damaged[16 + 12 + 30] ^= 1;
        assert_eq!(decode_log(&damaged).unwrap_err().offset, 16);
    }
}
