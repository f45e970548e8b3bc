//! The bytes of the log, without IO: segment headers and framed records.
//!
//! Every function here works on slices and vectors, so the format can be
//! tested exhaustively (see the property tests below) and read by tools that
//! have no executor. docs/formats/wal.md describes the same layout byte by
//! byte; keep the two in step.
//!
//! All integers are little-endian.

use std::fmt;

/// The first four bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 4] = *b"ZCWL";
/// The format this code writes: records grouped in batches, each between a
/// begin frame that states the batch's length and a commit frame at its end.
pub const FORMAT_VERSION: u32 = 2;
/// The first format: records back to back, no batch frames. Still read; a
/// version 1 segment is never written to again (the log rolls to a new
/// segment at open).
pub const FORMAT_VERSION_UNBATCHED: u32 = 1;
/// The meaningful bytes at the start of a segment; the rest of the header
/// block up to [`RECORDS_OFFSET`] is zero.
pub const SEGMENT_HEADER_BYTES: usize = 32;
/// Where the first record of a segment starts. A whole 4 KiB block keeps the
/// header out of the partial block that every sync rewrites.
pub const RECORDS_OFFSET: u64 = 4096;
/// Length and checksum in front of every record's payload.
pub const FRAME_HEADER_BYTES: usize = 8;
/// The largest payload a frame may carry (64 MiB). A format constant, not an
/// option, so a reader never has to trust a length field beyond it.
pub const RECORD_PAYLOAD_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Payload kinds, the payload's first byte.
pub const KIND_ENTRY: u8 = 1;
pub const KIND_HARD_STATE: u8 = 2;
pub const KIND_SNAPSHOT_MARKER: u8 = 3;
pub const KIND_TRUNCATE_SUFFIX: u8 = 4;
/// Version 2 only: the frame in front of a batch, carrying the batch's
/// length (begin frame to commit frame, both included).
pub const KIND_BATCH_BEGIN: u8 = 5;
/// Version 2 only: the frame that ends a batch, carrying the same length.
/// It is the last thing a batch's write puts down, so a batch whose commit
/// frame is still zeros was cut short, and one whose commit frame is there
/// was written whole: any checksum failure inside it is damage.
pub const KIND_BATCH_COMMIT: u8 = 6;
/// kind + batch length.
const BATCH_FRAME_PAYLOAD_BYTES: usize = 1 + 8;
/// A begin or commit frame, header included (17 bytes).
pub const BATCH_FRAME_BYTES: usize = FRAME_HEADER_BYTES + BATCH_FRAME_PAYLOAD_BYTES;
/// What batching adds to every write: one begin and one commit frame.
pub const BATCH_OVERHEAD_BYTES: usize = 2 * BATCH_FRAME_BYTES;

/// kind + index + term + entry type, before the entry's data.
const ENTRY_FIXED_BYTES: usize = 1 + 8 + 8 + 1;
const HARD_STATE_BYTES: usize = 1 + 8 + 8 + 8;
const SNAPSHOT_MARKER_BYTES: usize = 1 + 8 + 8;
const TRUNCATE_SUFFIX_BYTES: usize = 1 + 8;

/// Raft's persistent vote state (raft-rs `HardState`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    pub term: u64,
    pub vote: u64,
    pub commit: u64,
}

/// "The state up to and including `index` is in a snapshot": the log before
/// it may be dropped, and entries at or below it are never returned again.
/// Entries after it are kept, as after a local snapshot. To replace the log
/// with a snapshot received from the leader (raft-rs `apply_snapshot`),
/// append the marker and then `truncate_suffix(index + 1)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotMarker {
    pub index: u64,
    pub term: u64,
}

/// A raft log entry as recovery returns it. `entry_type` is raft-rs's
/// `EntryType as u8` (0 normal, 1 conf change, 2 conf change v2); `data` is
/// opaque to the log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    pub index: u64,
    pub term: u64,
    pub entry_type: u8,
    pub data: Vec<u8>,
}

impl Entry {
    /// The record that stores this entry.
    pub fn as_record(&self) -> Record<'_> {
        Record::Entry { index: self.index, term: self.term, entry_type: self.entry_type, data: &self.data }
    }
}

/// One record of the log. Encoding borrows the entry data from the caller and
/// decoding borrows it from the segment's bytes, so neither copies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record<'a> {
    Entry {
        index: u64,
        term: u64,
        entry_type: u8,
        data: &'a [u8],
    },
    HardState(HardState),
    SnapshotMarker(SnapshotMarker),
    /// Entries at `from_index` and above are gone (raft truncating a
    /// conflicting suffix without, yet, a replacement).
    TruncateSuffix {
        from_index: u64,
    },
}

impl Record<'_> {
    /// Bytes of the payload (kind byte included), without the frame header.
    pub fn payload_bytes(&self) -> usize {
        match self {
            Record::Entry { data, .. } => ENTRY_FIXED_BYTES + data.len(),
            Record::HardState(_) => HARD_STATE_BYTES,
            Record::SnapshotMarker(_) => SNAPSHOT_MARKER_BYTES,
            Record::TruncateSuffix { .. } => TRUNCATE_SUFFIX_BYTES,
        }
    }

    /// Bytes the record takes in a segment, frame header included.
    pub fn frame_bytes(&self) -> usize {
        FRAME_HEADER_BYTES + self.payload_bytes()
    }

    pub fn to_entry(&self) -> Option<Entry> {
        match *self {
            Record::Entry { index, term, entry_type, data } => {
                Some(Entry { index, term, entry_type, data: data.to_vec() })
            }
            _ => None,
        }
    }
}

/// A record too large for the format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordTooLarge {
    pub payload_bytes: usize,
}

impl fmt::Display for RecordTooLarge {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "a record payload of {} bytes exceeds the format's limit of {} bytes",
            self.payload_bytes, RECORD_PAYLOAD_BYTES_MAX
        )
    }
}

/// Appends the framed record to `out` and returns the bytes added.
pub fn encode_record(record: &Record<'_>, out: &mut Vec<u8>) -> Result<usize, RecordTooLarge> {
    let payload_bytes = record.payload_bytes();
    if payload_bytes > RECORD_PAYLOAD_BYTES_MAX {
        return Err(RecordTooLarge { payload_bytes });
    }
    let start = out.len();
    out.reserve(FRAME_HEADER_BYTES + payload_bytes);
    out.extend_from_slice(&(payload_bytes as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    match *record {
        Record::Entry { index, term, entry_type, data } => {
            out.push(KIND_ENTRY);
            out.extend_from_slice(&index.to_le_bytes());
            out.extend_from_slice(&term.to_le_bytes());
            out.push(entry_type);
            out.extend_from_slice(data);
        }
        Record::HardState(state) => {
            out.push(KIND_HARD_STATE);
            out.extend_from_slice(&state.term.to_le_bytes());
            out.extend_from_slice(&state.vote.to_le_bytes());
            out.extend_from_slice(&state.commit.to_le_bytes());
        }
        Record::SnapshotMarker(marker) => {
            out.push(KIND_SNAPSHOT_MARKER);
            out.extend_from_slice(&marker.index.to_le_bytes());
            out.extend_from_slice(&marker.term.to_le_bytes());
        }
        Record::TruncateSuffix { from_index } => {
            out.push(KIND_TRUNCATE_SUFFIX);
            out.extend_from_slice(&from_index.to_le_bytes());
        }
    }
    let checksum = frame_checksum(&out[start..start + 4], &out[start + FRAME_HEADER_BYTES..]);
    out[start + 4..start + FRAME_HEADER_BYTES].copy_from_slice(&checksum.to_le_bytes());
    Ok(out.len() - start)
}

/// Appends a batch's begin or commit frame (`kind` is [`KIND_BATCH_BEGIN`]
/// or [`KIND_BATCH_COMMIT`]) for a batch of `batch_bytes`.
pub fn encode_batch_frame(kind: u8, batch_bytes: u64, out: &mut Vec<u8>) {
    debug_assert!(kind == KIND_BATCH_BEGIN || kind == KIND_BATCH_COMMIT);
    let start = out.len();
    out.extend_from_slice(&(BATCH_FRAME_PAYLOAD_BYTES as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.push(kind);
    out.extend_from_slice(&batch_bytes.to_le_bytes());
    let checksum = frame_checksum(&out[start..start + 4], &out[start + FRAME_HEADER_BYTES..]);
    out[start + 4..start + FRAME_HEADER_BYTES].copy_from_slice(&checksum.to_le_bytes());
}

/// Devices write whole sectors of this size or nothing (the usual
/// assumption of databases, and what a 512-byte logical block gives): a
/// write cut short leaves a prefix of its sectors. The commit frame never
/// straddles a boundary of this size, so it is either all there or all
/// zeros after a crash.
pub const SECTOR_BYTES: u64 = 512;
/// Zeros put before a commit frame so it does not straddle a sector: less
/// than one frame.
pub const BATCH_PADDING_BYTES_MAX: usize = BATCH_FRAME_BYTES - 1;

/// Frames `records` (already encoded, back to back) as one batch that will
/// start at `file_offset`: begin frame, records, zero padding (fewer than
/// 17 bytes, only if the commit frame would otherwise straddle a sector
/// boundary) and the commit frame.
pub fn encode_batch(records: &[u8], file_offset: u64) -> Vec<u8> {
    let records_end = file_offset + (BATCH_FRAME_BYTES + records.len()) as u64;
    let commit_end = records_end + BATCH_FRAME_BYTES as u64;
    let padding = if records_end / SECTOR_BYTES != (commit_end - 1) / SECTOR_BYTES {
        (SECTOR_BYTES - records_end % SECTOR_BYTES) as usize
    } else {
        0
    };
    debug_assert!(padding <= BATCH_PADDING_BYTES_MAX);
    let batch_bytes = (records.len() + BATCH_OVERHEAD_BYTES + padding) as u64;
    let mut out = Vec::with_capacity(batch_bytes as usize);
    encode_batch_frame(KIND_BATCH_BEGIN, batch_bytes, &mut out);
    out.extend_from_slice(records);
    out.resize(out.len() + padding, 0);
    encode_batch_frame(KIND_BATCH_COMMIT, batch_bytes, &mut out);
    debug_assert_eq!(out.len() as u64, batch_bytes);
    out
}

/// Decodes a begin or commit frame of kind `kind` at the start of `bytes`
/// and returns the batch length it carries.
pub fn decode_batch_frame(bytes: &[u8], file_offset: u64, kind: u8) -> Result<u64, DecodeError> {
    let fail = |problem| Err(DecodeError { offset: file_offset, problem });
    if bytes.len() < BATCH_FRAME_BYTES {
        return fail(DecodeProblem::Truncated { frame_bytes: BATCH_FRAME_BYTES, available_bytes: bytes.len() });
    }
    let payload_length = u32_at(bytes, 0);
    if payload_length as usize != BATCH_FRAME_PAYLOAD_BYTES {
        return fail(DecodeProblem::BadLength { payload_bytes: payload_length });
    }
    let stored = u32_at(bytes, 4);
    let computed = frame_checksum(&bytes[..4], &bytes[FRAME_HEADER_BYTES..BATCH_FRAME_BYTES]);
    if computed != stored {
        return fail(DecodeProblem::ChecksumMismatch { stored, computed });
    }
    let found = bytes[FRAME_HEADER_BYTES];
    if found != kind {
        return fail(DecodeProblem::UnknownKind { kind: found });
    }
    Ok(u64_at(bytes, FRAME_HEADER_BYTES + 1))
}

/// CRC-32C over the length field and the payload: a damaged length is caught
/// as surely as damaged data.
fn frame_checksum(length_field: &[u8], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(length_field), payload)
}

/// What one position of a segment holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A whole, checksummed record taking `frame_bytes`.
    Record { record: Record<'a>, frame_bytes: usize },
    /// The end of the records: nothing left, or a zero frame header (the
    /// preallocated space that no record has reached yet).
    End,
}

/// Why the bytes at a position are not a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeProblem {
    /// The frame runs past the bytes given.
    Truncated {
        frame_bytes: usize,
        available_bytes: usize,
    },
    /// Zero, or larger than [`RECORD_PAYLOAD_BYTES_MAX`].
    BadLength {
        payload_bytes: u32,
    },
    ChecksumMismatch {
        stored: u32,
        computed: u32,
    },
    UnknownKind {
        kind: u8,
    },
    /// The payload's size does not fit its kind.
    BadPayloadSize {
        kind: u8,
        payload_bytes: usize,
    },
}

impl fmt::Display for DecodeProblem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DecodeProblem::Truncated { frame_bytes, available_bytes } => {
                write!(formatter, "record of {frame_bytes} bytes cut off after {available_bytes} bytes")
            }
            DecodeProblem::BadLength { payload_bytes } => {
                write!(formatter, "record length {payload_bytes} is outside 1..={RECORD_PAYLOAD_BYTES_MAX} bytes")
            }
            DecodeProblem::ChecksumMismatch { stored, computed } => {
                write!(formatter, "record checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")
            }
            DecodeProblem::UnknownKind { kind } => write!(formatter, "unknown record kind {kind}"),
            DecodeProblem::BadPayloadSize { kind, payload_bytes } => {
                write!(formatter, "record kind {kind} with a payload of {payload_bytes} bytes")
            }
        }
    }
}

/// A decoding failure at a byte offset of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeError {
    pub offset: u64,
    pub problem: DecodeProblem,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "at byte offset {}: {}", self.offset, self.problem)
    }
}

impl std::error::Error for DecodeError {}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

/// Decodes the record at the start of `bytes`, which begin at `file_offset`
/// in their file (used only to say where a problem is).
///
/// Fewer than eight bytes that are all zero, or a frame header of eight zero
/// bytes, is the end of the records. Anything else that is not a whole
/// record with a matching checksum is an error: this function never returns
/// part of a record.
pub fn decode_record(bytes: &[u8], file_offset: u64) -> Result<Decoded<'_>, DecodeError> {
    let fail = |problem| Err(DecodeError { offset: file_offset, problem });
    if bytes.len() < FRAME_HEADER_BYTES {
        if bytes.iter().all(|&byte| byte == 0) {
            return Ok(Decoded::End);
        }
        return fail(DecodeProblem::Truncated { frame_bytes: FRAME_HEADER_BYTES, available_bytes: bytes.len() });
    }
    let payload_length = u32_at(bytes, 0);
    let stored = u32_at(bytes, 4);
    if payload_length == 0 {
        if stored == 0 {
            return Ok(Decoded::End);
        }
        return fail(DecodeProblem::BadLength { payload_bytes: 0 });
    }
    let payload_bytes = payload_length as usize;
    if payload_bytes > RECORD_PAYLOAD_BYTES_MAX {
        return fail(DecodeProblem::BadLength { payload_bytes: payload_length });
    }
    let frame_bytes = FRAME_HEADER_BYTES + payload_bytes;
    if frame_bytes > bytes.len() {
        return fail(DecodeProblem::Truncated { frame_bytes, available_bytes: bytes.len() });
    }
    let payload = &bytes[FRAME_HEADER_BYTES..frame_bytes];
    let computed = frame_checksum(&bytes[..4], payload);
    if computed != stored {
        return fail(DecodeProblem::ChecksumMismatch { stored, computed });
    }
    let kind = payload[0];
    let expected_bytes = match kind {
        KIND_ENTRY => ENTRY_FIXED_BYTES,
        KIND_HARD_STATE => HARD_STATE_BYTES,
        KIND_SNAPSHOT_MARKER => SNAPSHOT_MARKER_BYTES,
        KIND_TRUNCATE_SUFFIX => TRUNCATE_SUFFIX_BYTES,
        _ => return fail(DecodeProblem::UnknownKind { kind }),
    };
    let size_fits = if kind == KIND_ENTRY { payload_bytes >= expected_bytes } else { payload_bytes == expected_bytes };
    if !size_fits {
        return fail(DecodeProblem::BadPayloadSize { kind, payload_bytes });
    }
    let record = match kind {
        KIND_ENTRY => Record::Entry {
            index: u64_at(payload, 1),
            term: u64_at(payload, 9),
            entry_type: payload[17],
            data: &payload[ENTRY_FIXED_BYTES..],
        },
        KIND_HARD_STATE => Record::HardState(HardState {
            term: u64_at(payload, 1),
            vote: u64_at(payload, 9),
            commit: u64_at(payload, 17),
        }),
        KIND_SNAPSHOT_MARKER => {
            Record::SnapshotMarker(SnapshotMarker { index: u64_at(payload, 1), term: u64_at(payload, 9) })
        }
        _ => Record::TruncateSuffix { from_index: u64_at(payload, 1) },
    };
    Ok(Decoded::Record { record, frame_bytes })
}

/// Whether a frame that passes every cheap test could start at `bytes[0]`:
/// a plausible length, a known kind whose size fits, and enough bytes. Only
/// then is the checksum worth computing when hunting for valid records.
pub(crate) fn plausible_frame(bytes: &[u8]) -> bool {
    if bytes.len() < FRAME_HEADER_BYTES + 1 {
        return false;
    }
    let payload_bytes = u32_at(bytes, 0) as usize;
    if payload_bytes == 0
        || payload_bytes > RECORD_PAYLOAD_BYTES_MAX
        || FRAME_HEADER_BYTES + payload_bytes > bytes.len()
    {
        return false;
    }
    match bytes[FRAME_HEADER_BYTES] {
        KIND_ENTRY => payload_bytes >= ENTRY_FIXED_BYTES,
        KIND_HARD_STATE => payload_bytes == HARD_STATE_BYTES,
        KIND_SNAPSHOT_MARKER => payload_bytes == SNAPSHOT_MARKER_BYTES,
        KIND_TRUNCATE_SUFFIX => payload_bytes == TRUNCATE_SUFFIX_BYTES,
        _ => false,
    }
}

/// The fixed part of a segment file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    pub version: u32,
    pub cluster_id: u64,
    /// The index the segment is named after (see the module essay).
    pub first_index: u64,
    /// Where records start; [`RECORDS_OFFSET`] in version 1.
    pub records_offset: u32,
}

/// The segment's header block: [`SEGMENT_HEADER_BYTES`] of header, then
/// zeros up to [`RECORDS_OFFSET`].
pub fn encode_segment_header(cluster_id: u64, first_index: u64) -> Vec<u8> {
    encode_segment_header_version(cluster_id, first_index, FORMAT_VERSION)
}

/// A header of an explicit format version: tests and tools use it to make
/// version 1 segments, which this code reads but no longer writes.
pub fn encode_segment_header_version(cluster_id: u64, first_index: u64, version: u32) -> Vec<u8> {
    let mut block = vec![0u8; RECORDS_OFFSET as usize];
    block[0..4].copy_from_slice(&SEGMENT_MAGIC);
    block[4..8].copy_from_slice(&version.to_le_bytes());
    block[8..16].copy_from_slice(&cluster_id.to_le_bytes());
    block[16..24].copy_from_slice(&first_index.to_le_bytes());
    block[24..28].copy_from_slice(&(RECORDS_OFFSET as u32).to_le_bytes());
    let checksum = crc32c::crc32c(&block[0..28]);
    block[28..32].copy_from_slice(&checksum.to_le_bytes());
    block
}

/// Why a segment header is refused, with the byte offset of the field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderProblem {
    TooShort { file_bytes: usize },
    BadMagic { found: [u8; 4] },
    ChecksumMismatch { stored: u32, computed: u32 },
    UnsupportedVersion { found: u32 },
    BadRecordsOffset { found: u32 },
}

impl HeaderProblem {
    /// The byte offset of the field at fault.
    pub fn offset(&self) -> u64 {
        match self {
            HeaderProblem::TooShort { file_bytes } => *file_bytes as u64,
            HeaderProblem::BadMagic { .. } => 0,
            HeaderProblem::ChecksumMismatch { .. } => 28,
            HeaderProblem::UnsupportedVersion { .. } => 4,
            HeaderProblem::BadRecordsOffset { .. } => 24,
        }
    }
}

impl fmt::Display for HeaderProblem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            HeaderProblem::TooShort { file_bytes } => write!(
                formatter,
                "the file has {file_bytes} bytes, fewer than the {RECORDS_OFFSET}-byte segment header block"
            ),
            HeaderProblem::BadMagic { found } => {
                write!(
                    formatter,
                    "magic number {found:02x?} is not {SEGMENT_MAGIC:02x?} (\"ZCWL\"): not a zoocore log segment"
                )
            }
            HeaderProblem::ChecksumMismatch { stored, computed } => {
                write!(formatter, "header checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")
            }
            HeaderProblem::UnsupportedVersion { found } => {
                write!(
                    formatter,
                    "format version {found}; this build reads versions {FORMAT_VERSION_UNBATCHED} and {FORMAT_VERSION}"
                )
            }
            HeaderProblem::BadRecordsOffset { found } => {
                write!(formatter, "records offset {found}; every version puts records at {RECORDS_OFFSET}")
            }
        }
    }
}

/// Reads and checks a segment header from the start of a file.
pub fn decode_segment_header(bytes: &[u8]) -> Result<SegmentHeader, HeaderProblem> {
    if bytes.len() < RECORDS_OFFSET as usize {
        return Err(HeaderProblem::TooShort { file_bytes: bytes.len() });
    }
    let mut magic = [0u8; 4];
    magic.copy_from_slice(&bytes[0..4]);
    if magic != SEGMENT_MAGIC {
        return Err(HeaderProblem::BadMagic { found: magic });
    }
    let stored = u32_at(bytes, 28);
    let computed = crc32c::crc32c(&bytes[0..28]);
    if stored != computed {
        return Err(HeaderProblem::ChecksumMismatch { stored, computed });
    }
    let version = u32_at(bytes, 4);
    if version != FORMAT_VERSION && version != FORMAT_VERSION_UNBATCHED {
        return Err(HeaderProblem::UnsupportedVersion { found: version });
    }
    let records_offset = u32_at(bytes, 24);
    if records_offset as u64 != RECORDS_OFFSET {
        return Err(HeaderProblem::BadRecordsOffset { found: records_offset });
    }
    Ok(SegmentHeader { version, cluster_id: u64_at(bytes, 8), first_index: u64_at(bytes, 16), records_offset })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encoded(record: &Record<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        encode_record(record, &mut out).unwrap();
        out
    }

    #[test]
    fn entry_layout_is_as_documented() {
        let bytes = encoded(&Record::Entry { index: 7, term: 3, entry_type: 1, data: b"abc" });
        assert_eq!(bytes.len(), 8 + 18 + 3);
        assert_eq!(&bytes[0..4], &21u32.to_le_bytes());
        assert_eq!(bytes[8], KIND_ENTRY);
        assert_eq!(&bytes[9..17], &7u64.to_le_bytes());
        assert_eq!(&bytes[17..25], &3u64.to_le_bytes());
        assert_eq!(bytes[25], 1);
        assert_eq!(&bytes[26..], b"abc");
        let checksum = crc32c::crc32c_append(crc32c::crc32c(&bytes[0..4]), &bytes[8..]);
        assert_eq!(&bytes[4..8], &checksum.to_le_bytes());
    }

    #[test]
    fn every_kind_round_trips() {
        let records = [
            Record::Entry { index: 1, term: 1, entry_type: 0, data: b"" },
            Record::HardState(HardState { term: 5, vote: 2, commit: 9 }),
            Record::SnapshotMarker(SnapshotMarker { index: 100, term: 4 }),
            Record::TruncateSuffix { from_index: 42 },
        ];
        let mut log = Vec::new();
        for record in &records {
            encode_record(record, &mut log).unwrap();
        }
        let mut offset = 0;
        for record in &records {
            match decode_record(&log[offset..], offset as u64).unwrap() {
                Decoded::Record { record: decoded, frame_bytes } => {
                    assert_eq!(&decoded, record);
                    assert_eq!(frame_bytes, record.frame_bytes());
                    offset += frame_bytes;
                }
                Decoded::End => panic!("end before {record:?}"),
            }
        }
        assert_eq!(decode_record(&log[offset..], offset as u64), Ok(Decoded::End));
    }

    #[test]
    fn zeros_are_the_end_and_a_lone_checksum_is_not() {
        assert_eq!(decode_record(&[], 0), Ok(Decoded::End));
        assert_eq!(decode_record(&[0; 5], 0), Ok(Decoded::End));
        assert_eq!(decode_record(&[0; 64], 0), Ok(Decoded::End));
        let mut bytes = [0u8; 16];
        bytes[5] = 1;
        let error = decode_record(&bytes, 4100).unwrap_err();
        assert_eq!(error.offset, 4100);
        assert_eq!(error.problem, DecodeProblem::BadLength { payload_bytes: 0 });
        assert!(error.to_string().starts_with("at byte offset 4100: "), "{error}");
    }

    #[test]
    fn oversized_lengths_are_refused_without_reading_further() {
        let mut bytes = vec![0u8; 16];
        bytes[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode_record(&bytes, 0).unwrap_err().problem, DecodeProblem::BadLength { .. }));
        let data = vec![0u8; RECORD_PAYLOAD_BYTES_MAX];
        let record = Record::Entry { index: 1, term: 1, entry_type: 0, data: &data };
        assert!(encode_record(&record, &mut Vec::new()).is_err());
    }

    #[test]
    fn fixed_kinds_must_have_their_exact_size() {
        let mut bytes = encoded(&Record::TruncateSuffix { from_index: 3 });
        // Claim one more payload byte and fix the checksum: still refused.
        bytes.push(0);
        bytes[0..4].copy_from_slice(&10u32.to_le_bytes());
        let checksum = crc32c::crc32c_append(crc32c::crc32c(&bytes[0..4]), &bytes[8..]);
        bytes[4..8].copy_from_slice(&checksum.to_le_bytes());
        assert_eq!(
            decode_record(&bytes, 0).unwrap_err().problem,
            DecodeProblem::BadPayloadSize { kind: KIND_TRUNCATE_SUFFIX, payload_bytes: 10 }
        );
    }

    #[test]
    fn header_round_trips_and_names_its_faults() {
        let block = encode_segment_header(0xfeed, 77);
        assert_eq!(block.len(), RECORDS_OFFSET as usize);
        assert!(block[SEGMENT_HEADER_BYTES..].iter().all(|&byte| byte == 0));
        let header = decode_segment_header(&block).unwrap();
        assert_eq!(
            header,
            SegmentHeader { version: 2, cluster_id: 0xfeed, first_index: 77, records_offset: RECORDS_OFFSET as u32 }
        );
        let old = encode_segment_header_version(0xfeed, 77, FORMAT_VERSION_UNBATCHED);
        assert_eq!(decode_segment_header(&old).unwrap().version, 1);
        let mut bad = block.clone();
        bad[0] = b'X';
        assert!(matches!(decode_segment_header(&bad), Err(HeaderProblem::BadMagic { .. })));
        let mut bad = block.clone();
        bad[9] ^= 1;
        let problem = decode_segment_header(&bad).unwrap_err();
        assert!(matches!(problem, HeaderProblem::ChecksumMismatch { .. }));
        assert_eq!(problem.offset(), 28);
        let mut newer = block.clone();
        newer[4] = 3;
        let checksum = crc32c::crc32c(&newer[0..28]);
        newer[28..32].copy_from_slice(&checksum.to_le_bytes());
        assert_eq!(decode_segment_header(&newer), Err(HeaderProblem::UnsupportedVersion { found: 3 }));
        assert!(matches!(decode_segment_header(&block[..100]), Err(HeaderProblem::TooShort { file_bytes: 100 })));
    }

    fn any_record() -> impl Strategy<Value = (u8, u64, u64, u64, u8, Vec<u8>)> {
        (1u8..=4, any::<u64>(), any::<u64>(), any::<u64>(), any::<u8>(), proptest::collection::vec(any::<u8>(), 0..300))
    }

    fn build(parts: &(u8, u64, u64, u64, u8, Vec<u8>)) -> Record<'_> {
        let (kind, first, second, third, entry_type, data) = parts;
        match kind {
            1 => Record::Entry { index: *first, term: *second, entry_type: *entry_type, data },
            2 => Record::HardState(HardState { term: *first, vote: *second, commit: *third }),
            3 => Record::SnapshotMarker(SnapshotMarker { index: *first, term: *second }),
            _ => Record::TruncateSuffix { from_index: *first },
        }
    }

    proptest! {
        #[test]
        fn records_round_trip(parts in any_record(), trailing_zeros in 0usize..20, offset in 0u64..1 << 40) {
            let record = build(&parts);
            let mut bytes = encoded(&record);
            let frame_bytes = bytes.len();
            bytes.resize(frame_bytes + trailing_zeros, 0);
            prop_assert_eq!(decode_record(&bytes, offset), Ok(Decoded::Record { record, frame_bytes }));
            prop_assert_eq!(decode_record(&bytes[frame_bytes..], offset), Ok(Decoded::End));
        }

        #[test]
        fn any_flipped_byte_is_detected(parts in any_record(), position in any::<prop::sample::Index>(), flip in 1u8..=255) {
            let record = build(&parts);
            let mut bytes = encoded(&record);
            let at = position.index(bytes.len());
            bytes[at] ^= flip;
            // With and without preallocated zeros behind the record.
            let mut padded = bytes.clone();
            padded.resize(bytes.len() + 64, 0);
            for candidate in [&bytes, &padded] {
                let error = decode_record(candidate, 4096);
                prop_assert!(error.is_err(), "flipping byte {} by {:#x} went unnoticed: {:?}", at, flip, error);
                prop_assert_eq!(error.unwrap_err().offset, 4096);
            }
        }

        #[test]
        fn any_truncation_is_detected(parts in any_record(), keep in any::<prop::sample::Index>(), zeros in 0usize..64) {
            let record = build(&parts);
            let bytes = encoded(&record);
            let kept = keep.index(bytes.len());
            let mut torn = bytes[..kept].to_vec();
            // A torn write leaves the rest of the block as it was: zeros.
            torn.resize(kept + zeros, 0);
            match decode_record(&torn, 0) {
                Err(_) => {}
                // Only when nothing of the record survived but zeros.
                Ok(Decoded::End) => prop_assert!(bytes[..kept].iter().all(|&byte| byte == 0)),
                // Only when the missing bytes were zeros: the record is whole.
                Ok(Decoded::Record { record: decoded, .. }) => {
                    let whole = torn.len() >= bytes.len() && torn[..bytes.len()] == bytes[..];
                    prop_assert!(whole, "a cut record decoded as {:?}", decoded);
                    prop_assert_eq!(decoded, record);
                }
            }
        }
    }
}
