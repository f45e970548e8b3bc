//! Recovery's decisions, without IO: which records a segment's bytes hold,
//! where they stop and whether that stop is a torn tail or damage, and what
//! raft state the records add up to. The same index rules check records at
//! `append`, so the log never holds a sequence recovery would refuse.

use std::fmt;

use super::record::{
    decode_batch_frame, decode_record, plausible_frame, DecodeProblem, Decoded, Entry, HardState, Record,
    SnapshotMarker, BATCH_FRAME_BYTES, BATCH_OVERHEAD_BYTES, BATCH_PADDING_BYTES_MAX, FORMAT_VERSION_UNBATCHED,
    FRAME_HEADER_BYTES, KIND_BATCH_BEGIN, KIND_BATCH_COMMIT,
};

/// A record that breaks the log's index rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Violation {
    /// Raft indexes start at 1.
    IndexZero,
    /// An entry past the end of the log leaves a hole.
    EntryGap {
        index: u64,
        expected: u64,
    },
    /// An entry at or below the newest snapshot marker: that part of the log
    /// is settled.
    EntryAtOrBelowSnapshot {
        index: u64,
        snapshot_index: u64,
    },
    TruncateAtOrBelowSnapshot {
        from_index: u64,
        snapshot_index: u64,
    },
    TruncateBeyondEnd {
        from_index: u64,
        last_index: u64,
    },
    SnapshotRegressed {
        index: u64,
        previous_index: u64,
    },
    /// After replay, the first entry does not follow the snapshot marker.
    GapAfterSnapshot {
        first_index: u64,
        snapshot_index: u64,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Violation::IndexZero => write!(formatter, "index 0 is not a raft log index"),
            Violation::EntryGap { index, expected } => {
                write!(formatter, "entry {index} leaves a gap: the next index is {expected}")
            }
            Violation::EntryAtOrBelowSnapshot { index, snapshot_index } => {
                write!(formatter, "entry {index} is at or below the snapshot marker at {snapshot_index}")
            }
            Violation::TruncateAtOrBelowSnapshot { from_index, snapshot_index } => {
                write!(formatter, "truncation from {from_index} reaches the snapshot marker at {snapshot_index}")
            }
            Violation::TruncateBeyondEnd { from_index, last_index } => {
                write!(formatter, "truncation from {from_index} is beyond the last index {last_index}")
            }
            Violation::SnapshotRegressed { index, previous_index } => {
                write!(formatter, "snapshot marker {index} is below the earlier marker {previous_index}")
            }
            Violation::GapAfterSnapshot { first_index, snapshot_index } => write!(
                formatter,
                "the first entry after the snapshot marker at {snapshot_index} is {first_index}: entries are missing"
            ),
        }
    }
}

/// What the records so far say about indexes: enough to check the next
/// record and to name the next segment, without holding any entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogIndexes {
    /// The last index of the log; a snapshot marker beyond the entries raises
    /// it. `None` while unknown: a replay that starts at a segment left by
    /// compaction does not know what the deleted segments held until an
    /// entry or a truncation sets it.
    last_index: Option<u64>,
    snapshot: Option<SnapshotMarker>,
}

impl LogIndexes {
    /// A log that has held nothing: the next entry is 1.
    pub fn new_log() -> LogIndexes {
        LogIndexes { last_index: Some(0), snapshot: None }
    }

    /// A log whose beginning was compacted away.
    pub fn after_compaction() -> LogIndexes {
        LogIndexes { last_index: None, snapshot: None }
    }

    pub fn last_index(&self) -> Option<u64> {
        self.last_index
    }

    pub fn next_index(&self) -> Option<u64> {
        self.last_index.map(|last| last + 1)
    }

    pub fn snapshot(&self) -> Option<SnapshotMarker> {
        self.snapshot
    }

    pub fn check(&self, record: &Record<'_>) -> Result<(), Violation> {
        match *record {
            Record::Entry { index, .. } => {
                if index == 0 {
                    return Err(Violation::IndexZero);
                }
                if let Some(snapshot) = self.snapshot {
                    if index <= snapshot.index {
                        return Err(Violation::EntryAtOrBelowSnapshot { index, snapshot_index: snapshot.index });
                    }
                }
                if let Some(last) = self.last_index {
                    if index > last + 1 {
                        return Err(Violation::EntryGap { index, expected: last + 1 });
                    }
                }
            }
            Record::TruncateSuffix { from_index } => {
                if from_index == 0 {
                    return Err(Violation::IndexZero);
                }
                if let Some(snapshot) = self.snapshot {
                    if from_index <= snapshot.index {
                        return Err(Violation::TruncateAtOrBelowSnapshot {
                            from_index,
                            snapshot_index: snapshot.index,
                        });
                    }
                }
                if let Some(last) = self.last_index {
                    if from_index > last + 1 {
                        return Err(Violation::TruncateBeyondEnd { from_index, last_index: last });
                    }
                }
            }
            Record::SnapshotMarker(marker) => {
                if let Some(snapshot) = self.snapshot {
                    if marker.index < snapshot.index {
                        return Err(Violation::SnapshotRegressed {
                            index: marker.index,
                            previous_index: snapshot.index,
                        });
                    }
                }
            }
            Record::HardState(_) => {}
        }
        Ok(())
    }

    /// Takes a record that passed [`LogIndexes::check`] into account.
    pub fn apply(&mut self, record: &Record<'_>) {
        match *record {
            Record::Entry { index, .. } => self.last_index = Some(index),
            Record::TruncateSuffix { from_index } => self.last_index = Some(from_index - 1),
            Record::SnapshotMarker(marker) => {
                self.snapshot = Some(marker);
                self.last_index = self.last_index.map(|last| last.max(marker.index));
            }
            Record::HardState(_) => {}
        }
    }
}

/// Where a record lies: which segment (by position in the list) and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub segment: usize,
    pub offset: u64,
}

/// The raft state that the records replayed so far add up to.
#[derive(Debug)]
pub struct Replay {
    pub indexes: LogIndexes,
    pub hard_state: Option<HardState>,
    /// Contiguous, ascending, all above the snapshot marker.
    entries: Vec<Entry>,
    /// Where each of `entries` was read, for errors found at the end.
    positions: Vec<Position>,
    /// Entries above this index are kept even when a snapshot marker covers
    /// them: the server restores from an older snapshot than the newest
    /// marker (the newest snapshot file is damaged) and needs them.
    keep_above: Option<u64>,
}

impl Replay {
    pub fn new(indexes: LogIndexes) -> Replay {
        Replay { indexes, hard_state: None, entries: Vec::new(), positions: Vec::new(), keep_above: None }
    }

    /// Keeps entries above `index` when markers cover them (see
    /// `keep_above`).
    pub fn keeping_above(mut self, index: Option<u64>) -> Replay {
        self.keep_above = index;
        self
    }

    /// Applies one record: a later entry for an index replaces the earlier
    /// one and drops everything after it; a truncation drops its suffix; a
    /// snapshot marker drops the entries it covers.
    pub fn apply(&mut self, record: &Record<'_>, position: Position) -> Result<(), Violation> {
        self.indexes.check(record)?;
        self.indexes.apply(record);
        match *record {
            Record::Entry { index, term, entry_type, data } => {
                self.keep_below(index);
                self.entries.push(Entry { index, term, entry_type, data: data.to_vec() });
                self.positions.push(position);
            }
            Record::TruncateSuffix { from_index } => self.keep_below(from_index),
            Record::SnapshotMarker(marker) => {
                let dropped_up_to = self.keep_above.map_or(marker.index, |keep| keep.min(marker.index));
                let covered = self.entries.partition_point(|entry| entry.index <= dropped_up_to);
                self.entries.drain(..covered);
                self.positions.drain(..covered);
            }
            Record::HardState(state) => self.hard_state = Some(state),
        }
        Ok(())
    }

    /// Applies a record while `--truncate-corrupt` reads on past damage,
    /// where a hole may have swallowed records. An entry that would leave a
    /// gap is taken when the gap lies within `covered` (the snapshot the
    /// server restores from): that snapshot's marker is applied first, so
    /// nothing the snapshot lacks is skipped. An entry at or below the
    /// newest marker is settled and ignored, and so is a marker below it:
    /// a snapshot's marker reaches the log when its file is durable, which
    /// may be after entries the covering snapshot already holds, so reading
    /// on from a hole can meet an older marker after the one applied for
    /// `covered`. Any other broken rule is returned, and the caller stops
    /// there.
    pub fn apply_after_damage(
        &mut self,
        record: &Record<'_>,
        position: Position,
        covered: Option<SnapshotMarker>,
    ) -> Result<(), Violation> {
        match self.indexes.check(record) {
            Ok(()) => self.apply(record, position),
            Err(Violation::EntryAtOrBelowSnapshot { .. } | Violation::SnapshotRegressed { .. }) => Ok(()),
            Err(Violation::EntryGap { index, .. }) => match covered {
                Some(marker)
                    if index - 1 <= marker.index
                        && self.indexes.snapshot().is_none_or(|newest| newest.index < marker.index) =>
                {
                    self.apply(&Record::SnapshotMarker(marker), position)?;
                    // The marker may cover this entry too.
                    self.apply_after_damage(record, position, None)
                }
                _ => Err(Violation::EntryGap { index, expected: self.indexes.next_index().unwrap_or(0) }),
            },
            Err(violation) => Err(violation),
        }
    }

    fn keep_below(&mut self, index: u64) {
        let kept = self.entries.partition_point(|entry| entry.index < index);
        self.entries.truncate(kept);
        self.positions.truncate(kept);
    }

    /// The state at the end of the log, or the first entry that does not
    /// follow the snapshot marker and where it was read.
    pub fn finish(self) -> Result<Replayed, (Violation, Position)> {
        let snapshot = self.indexes.snapshot();
        if let (Some(snapshot), Some(first)) = (snapshot, self.entries.first()) {
            if first.index > snapshot.index + 1 {
                let violation =
                    Violation::GapAfterSnapshot { first_index: first.index, snapshot_index: snapshot.index };
                return Err((violation, self.positions[0]));
            }
        }
        Ok(Replayed { hard_state: self.hard_state, snapshot, entries: self.entries })
    }
}

/// What a whole replay adds up to.
#[derive(Debug, PartialEq, Eq)]
pub struct Replayed {
    pub hard_state: Option<HardState>,
    pub snapshot: Option<SnapshotMarker>,
    pub entries: Vec<Entry>,
}

/// A record found in a segment and its byte offset in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScannedRecord<'a> {
    pub offset: u64,
    pub record: Record<'a>,
}

/// Why a segment's records stop before a clean end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Damage {
    /// The bytes at the offset are not a record.
    Undecodable(DecodeProblem),
    /// The records end with a zero frame header, but nonzero bytes follow
    /// at `first_nonzero`.
    BytesAfterEnd { first_nonzero: u64 },
    /// Version 2: the batch that starts here has no commit frame yet (its
    /// last 17 bytes, ending at `batch_end`, are zeros).
    Uncommitted { batch_end: u64 },
    /// Version 2: the begin frame states a batch that does not fit the file.
    BatchPastFileEnd { batch_end: u64, file_bytes: u64 },
    /// Version 2: the bytes at `at`, inside a batch whose commit frame is
    /// present, are not a record: a batch written whole and damaged since.
    InsideCommittedBatch { at: u64, problem: DecodeProblem },
    /// Version 2: inside a committed batch, a zero frame header at `at`
    /// where a record must be.
    HoleInCommittedBatch { at: u64 },
    /// Version 2: the commit frame at `at` does not decode or disagrees
    /// with the begin frame.
    BadCommit { at: u64 },
}

impl Damage {
    /// The offset of the damaged bytes themselves when they lie inside a
    /// batch (the segment's records stop at the batch's start).
    pub fn inner_offset(&self) -> Option<u64> {
        match *self {
            Damage::InsideCommittedBatch { at, .. }
            | Damage::HoleInCommittedBatch { at }
            | Damage::BadCommit { at } => Some(at),
            _ => None,
        }
    }
}

impl fmt::Display for Damage {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damage::Undecodable(problem) => problem.fmt(formatter),
            Damage::BytesAfterEnd { first_nonzero } => {
                write!(formatter, "the records end here but nonzero bytes follow at offset {first_nonzero}")
            }
            Damage::Uncommitted { batch_end } => {
                write!(formatter, "the batch starting here has no commit frame (it would end at offset {batch_end})")
            }
            Damage::BatchPastFileEnd { batch_end, file_bytes } => {
                write!(
                    formatter,
                    "the batch starting here would end at offset {batch_end}, past the file's {file_bytes} bytes"
                )
            }
            Damage::InsideCommittedBatch { at, problem } => write!(
                formatter,
                "inside the batch starting here, which was written whole (its commit frame is present), \
                 the record at offset {at} is damaged: {problem}"
            ),
            Damage::HoleInCommittedBatch { at } => write!(
                formatter,
                "inside the batch starting here, which was written whole (its commit frame is present), \
                 zeros at offset {at} where a record must be"
            ),
            Damage::BadCommit { at } => {
                write!(formatter, "the commit frame of the batch starting here, at offset {at}, is damaged")
            }
        }
    }
}

/// How a segment's records stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentEnd {
    /// A zero frame header (or the end of the file) at `offset`, and only
    /// zeros after it.
    Clean { offset: u64 },
    /// Records stop at `offset` for `damage`. `valid_record_after` is the
    /// offset of a whole, checksummed record found further on, if any.
    /// `torn` says whether the bytes are what a write cut short leaves
    /// (version 1: no whole record after the damage; version 2: a batch
    /// whose commit frame is still zeros, with only zeros after it); only
    /// then, in the last segment, is the damage a torn tail.
    Damaged { offset: u64, damage: Damage, valid_record_after: ValidAfter, torn: bool },
}

impl SegmentEnd {
    pub fn offset(&self) -> u64 {
        match *self {
            SegmentEnd::Clean { offset } | SegmentEnd::Damaged { offset, .. } => offset,
        }
    }
}

/// Whether any whole record follows a damaged one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValidAfter {
    None,
    At {
        offset: u64,
    },
    /// The hunt gave up after checksumming [`HUNT_CHECKSUM_BYTES_MAX`]: a
    /// record may follow, so the damage is not called a torn tail.
    Unknown,
}

/// The records of one segment and how they stop.
#[derive(Debug)]
pub struct SegmentScan<'a> {
    pub records: Vec<ScannedRecord<'a>>,
    pub end: SegmentEnd,
}

/// Reads records from `bytes` (a whole segment file) starting at
/// `records_offset`, until a clean end or damage.
pub fn scan_segment(bytes: &[u8], records_offset: u64) -> SegmentScan<'_> {
    let mut records = Vec::new();
    let mut at = records_offset as usize;
    loop {
        match decode_record(&bytes[at.min(bytes.len())..], at as u64) {
            Ok(Decoded::Record { record, frame_bytes }) => {
                records.push(ScannedRecord { offset: at as u64, record });
                at += frame_bytes;
            }
            Ok(Decoded::End) => {
                let after_header = (at + FRAME_HEADER_BYTES).min(bytes.len());
                let end = match first_nonzero(bytes, after_header) {
                    None => SegmentEnd::Clean { offset: at as u64 },
                    Some(first_nonzero) => {
                        let valid_record_after = hunt_valid_record(bytes, first_nonzero.saturating_sub(3).max(at + 1));
                        SegmentEnd::Damaged {
                            offset: at as u64,
                            damage: Damage::BytesAfterEnd { first_nonzero: first_nonzero as u64 },
                            valid_record_after,
                            torn: valid_record_after == ValidAfter::None,
                        }
                    }
                };
                return SegmentScan { records, end };
            }
            Err(error) => {
                let valid_record_after = hunt_valid_record(bytes, at + 1);
                let end = SegmentEnd::Damaged {
                    offset: error.offset,
                    damage: Damage::Undecodable(error.problem),
                    valid_record_after,
                    torn: valid_record_after == ValidAfter::None,
                };
                return SegmentScan { records, end };
            }
        }
    }
}

/// Reads the records of a segment of format `version` (see
/// [`scan_segment`] for version 1 and [`scan_batches`] for version 2).
pub fn scan_segment_version(bytes: &[u8], records_offset: u64, version: u32) -> SegmentScan<'_> {
    if version == FORMAT_VERSION_UNBATCHED {
        scan_segment(bytes, records_offset)
    } else {
        scan_batches(bytes, records_offset)
    }
}

/// Reads the batches of a version 2 segment from `records_offset`: each a
/// begin frame, records, and a commit frame at the end the begin frame
/// states.
///
/// A write is a prefix of its sectors when a crash cuts it short: the rest
/// of its extent keeps what was there, zeros (preallocated space). The
/// commit frame is the last thing in the batch and never straddles a sector
/// ([`SECTOR_BYTES`](super::record::SECTOR_BYTES)), so it is all zeros
/// exactly when the write did not reach its end. Hence the rule: a batch whose begin frame is
/// whole, whose commit frame is all zeros and after which nothing but zeros
/// follows is a write cut short (`torn`); a begin frame that does not
/// decode with only zeros after its 17 bytes is one too. A batch whose
/// commit frame is present was written whole, so any record in it that
/// fails its checksum is damage, never a torn write.
pub fn scan_batches(bytes: &[u8], records_offset: u64) -> SegmentScan<'_> {
    let mut records = Vec::new();
    let mut at = records_offset as usize;
    let only_zeros_from = |from: usize| first_nonzero(bytes, from.min(bytes.len())).is_none();
    loop {
        let Some(nonzero) = first_nonzero(bytes, at.min(bytes.len())) else {
            return SegmentScan { records, end: SegmentEnd::Clean { offset: at as u64 } };
        };
        let damaged = |damage: Damage, torn: bool, hunt_from: usize| SegmentEnd::Damaged {
            offset: at as u64,
            damage,
            valid_record_after: hunt_valid_record(bytes, hunt_from),
            torn,
        };
        let begin = &bytes[at..];
        if begin.len() >= FRAME_HEADER_BYTES && begin[..FRAME_HEADER_BYTES].iter().all(|&byte| byte == 0) {
            // Zeros where the next batch would start, and bytes later on.
            let damage = Damage::BytesAfterEnd { first_nonzero: nonzero as u64 };
            let end = damaged(damage, false, nonzero.saturating_sub(3).max(at + 1));
            return SegmentScan { records, end };
        }
        let batch_bytes = match decode_batch_frame(begin, at as u64, KIND_BATCH_BEGIN) {
            Ok(batch_bytes) => batch_bytes,
            Err(error) => {
                let torn = only_zeros_from(at + BATCH_FRAME_BYTES);
                let end = damaged(Damage::Undecodable(error.problem), torn, at + 1);
                return SegmentScan { records, end };
            }
        };
        let batch_end = at as u64 + batch_bytes;
        if batch_bytes < BATCH_OVERHEAD_BYTES as u64 || batch_end > bytes.len() as u64 {
            // The begin frame is checksummed, so its length is what was
            // written: a batch past the end of the file is a write that
            // was growing the file (one record larger than a segment) and
            // did not finish, if nothing after the begin frame is written.
            let torn = batch_bytes >= BATCH_OVERHEAD_BYTES as u64 && only_zeros_from(at + BATCH_FRAME_BYTES);
            let damage = Damage::BatchPastFileEnd { batch_end, file_bytes: bytes.len() as u64 };
            let end = damaged(damage, torn, at + 1);
            return SegmentScan { records, end };
        }
        let batch_end = batch_end as usize;
        let commit_at = batch_end - BATCH_FRAME_BYTES;
        if bytes[commit_at..batch_end].iter().all(|&byte| byte == 0) {
            let torn = only_zeros_from(batch_end);
            let end = damaged(Damage::Uncommitted { batch_end: batch_end as u64 }, torn, at + 1);
            return SegmentScan { records, end };
        }
        let mut inner = at + BATCH_FRAME_BYTES;
        let mut batch = Vec::new();
        let mut problem = None;
        while inner < commit_at {
            match decode_record(&bytes[inner..commit_at], inner as u64) {
                Ok(Decoded::Record { record, frame_bytes }) => {
                    batch.push(ScannedRecord { offset: inner as u64, record });
                    inner += frame_bytes;
                }
                Ok(Decoded::End) => {
                    let padding = commit_at - inner <= BATCH_PADDING_BYTES_MAX
                        && bytes[inner..commit_at].iter().all(|&byte| byte == 0);
                    if !padding {
                        problem = Some(Damage::HoleInCommittedBatch { at: inner as u64 });
                    }
                    break;
                }
                Err(error) => {
                    problem = Some(Damage::InsideCommittedBatch { at: inner as u64, problem: error.problem });
                    break;
                }
            }
        }
        let problem =
            problem.or_else(|| match decode_batch_frame(&bytes[commit_at..], commit_at as u64, KIND_BATCH_COMMIT) {
                Ok(length) if length == batch_bytes => None,
                _ => Some(Damage::BadCommit { at: commit_at as u64 }),
            });
        if let Some(damage) = problem {
            // Whole records after the damaged one, not the whole ones
            // before it in the same batch.
            let hunt_from = damage.inner_offset().map_or(at + 1, |inner| inner as usize + 1);
            let end = damaged(damage, false, hunt_from);
            return SegmentScan { records, end };
        }
        records.extend(batch);
        at = batch_end;
    }
}

/// Whole records from `from` on, read past damage: where bytes do not
/// decode, the next whole record is searched for (batch frames of version 2
/// are stepped over). Returns the records and the holes skipped, as
/// `(from, to)` byte offsets of stretches that held nonzero bytes.
pub fn scan_past_damage(bytes: &[u8], from: u64) -> (Vec<ScannedRecord<'_>>, Vec<(u64, u64)>) {
    let mut records = Vec::new();
    let mut holes = Vec::new();
    let mut at = from as usize;
    while at < bytes.len() {
        match decode_record(&bytes[at..], at as u64) {
            Ok(Decoded::Record { record, frame_bytes }) => {
                records.push(ScannedRecord { offset: at as u64, record });
                at += frame_bytes;
                continue;
            }
            Ok(Decoded::End) | Err(_) => {}
        }
        let frame_at = |position: usize| {
            matches!(decode_record(&bytes[position..], position as u64), Ok(Decoded::Record { .. }))
                || [KIND_BATCH_BEGIN, KIND_BATCH_COMMIT]
                    .iter()
                    .any(|&kind| decode_batch_frame(&bytes[position..], position as u64, kind).is_ok())
        };
        if frame_at(at) {
            // A batch frame: stepped over.
            at += BATCH_FRAME_BYTES;
            continue;
        }
        if bytes[at] == 0 {
            // Zeros (a batch's padding, which may be shorter than a frame
            // header, or the preallocated end): the next frame starts at
            // most three bytes before the next nonzero byte.
            let Some(nonzero) = first_nonzero(bytes, at) else { break };
            if let Some(next) = (nonzero.saturating_sub(3).max(at + 1)..=nonzero).find(|&position| frame_at(position)) {
                at = next;
                continue;
            }
        }
        let resume = match hunt_valid_record(bytes, at + 1) {
            ValidAfter::At { offset } => offset as usize,
            ValidAfter::None | ValidAfter::Unknown => bytes.len(),
        };
        // A begin frame right before the record found is not damage.
        let mut stretch_end = resume;
        if resume >= at + BATCH_FRAME_BYTES
            && decode_batch_frame(&bytes[resume - BATCH_FRAME_BYTES..], 0, KIND_BATCH_BEGIN).is_ok()
        {
            stretch_end = resume - BATCH_FRAME_BYTES;
        }
        if first_nonzero(&bytes[..stretch_end], at).is_some() {
            let end = bytes[..stretch_end].iter().rposition(|&byte| byte != 0).map_or(stretch_end, |last| last + 1);
            holes.push((at as u64, end as u64));
        }
        at = resume;
    }
    (records, holes)
}

/// The first nonzero byte at or after `from`.
fn first_nonzero(bytes: &[u8], from: usize) -> Option<usize> {
    const CHUNK_BYTES: usize = 64;
    let mut at = from;
    while at + CHUNK_BYTES <= bytes.len() {
        let chunk = &bytes[at..at + CHUNK_BYTES];
        if chunk.iter().fold(0u8, |seen, &byte| seen | byte) != 0 {
            break;
        }
        at += CHUNK_BYTES;
    }
    bytes[at.min(bytes.len())..].iter().position(|&byte| byte != 0).map(|found| at + found)
}

/// The hunt for valid records after damage checksums at most this much
/// (1 GiB, about a tenth of a second with CRC-32C instructions): zeros are
/// skipped without checksumming, and only frames whose length and kind
/// make sense are checked, so real torn tails stay far below it.
pub const HUNT_CHECKSUM_BYTES_MAX: u64 = 1 << 30;

/// Looks for a whole, checksummed record starting anywhere at or after
/// `from`. A frame's length field is never zero, so a frame starts at most
/// three bytes before a nonzero byte; runs of zeros are skipped.
fn hunt_valid_record(bytes: &[u8], from: usize) -> ValidAfter {
    let mut checksummed_bytes = 0u64;
    let mut candidate = from;
    while candidate < bytes.len() {
        let Some(nonzero) = first_nonzero(bytes, candidate) else {
            return ValidAfter::None;
        };
        // Frames starting before `nonzero - 3` would have a zero length.
        candidate = candidate.max(nonzero.saturating_sub(3));
        let slice = &bytes[candidate..];
        if plausible_frame(slice) {
            if let Ok(Decoded::Record { .. }) = decode_record(slice, candidate as u64) {
                return ValidAfter::At { offset: candidate as u64 };
            }
            checksummed_bytes += (FRAME_HEADER_BYTES + length_field(slice)) as u64;
            if checksummed_bytes > HUNT_CHECKSUM_BYTES_MAX {
                return ValidAfter::Unknown;
            }
        }
        candidate += 1;
    }
    ValidAfter::None
}

fn length_field(bytes: &[u8]) -> usize {
    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize
}

/// What recovery does with how a segment ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to do.
    Clean,
    /// The last segment's final write was cut short: drop from `offset`.
    TornTail { offset: u64 },
    /// Damage with something after it, or in a segment other than the last:
    /// an error unless the operator asked to truncate.
    Corrupt { offset: u64 },
}

/// A torn tail is damage at the end of the last segment that looks like a
/// write cut short (`torn`, decided by the segment's format: see
/// [`scan_batches`]): that write was never acknowledged, because a sync
/// returns only after its write and fdatasync complete and the next write
/// starts after that. Anything else is corruption.
pub fn judge(end: &SegmentEnd, last_segment: bool) -> Verdict {
    match *end {
        SegmentEnd::Clean { .. } => Verdict::Clean,
        SegmentEnd::Damaged { offset, torn: true, .. } if last_segment => Verdict::TornTail { offset },
        SegmentEnd::Damaged { offset, .. } => Verdict::Corrupt { offset },
    }
}

#[cfg(test)]
mod tests {
    use super::super::record::{encode_record, RECORDS_OFFSET};
    use super::*;

    fn entry(index: u64, term: u64) -> Record<'static> {
        Record::Entry { index, term, entry_type: 0, data: b"payload" }
    }

    fn at(offset: u64) -> Position {
        Position { segment: 0, offset }
    }

    fn segment(records: &[Record<'_>], size: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; RECORDS_OFFSET as usize];
        for record in records {
            encode_record(record, &mut bytes).unwrap();
        }
        bytes.resize(size, 0);
        bytes
    }

    #[test]
    fn later_entries_replace_earlier_ones_and_their_suffix() {
        let mut replay = Replay::new(LogIndexes::new_log());
        for index in 1..=5 {
            replay.apply(&entry(index, 1), at(index)).unwrap();
        }
        replay.apply(&entry(3, 2), at(10)).unwrap();
        let entries = replay.finish().unwrap().entries;
        let seen: Vec<(u64, u64)> = entries.iter().map(|entry| (entry.index, entry.term)).collect();
        assert_eq!(seen, [(1, 1), (2, 1), (3, 2)]);
    }

    #[test]
    fn truncation_and_snapshots_drop_what_they_cover() {
        let mut replay = Replay::new(LogIndexes::new_log());
        for index in 1..=10 {
            replay.apply(&entry(index, 1), at(index)).unwrap();
        }
        replay.apply(&Record::TruncateSuffix { from_index: 8 }, at(11)).unwrap();
        assert_eq!(replay.indexes.last_index(), Some(7));
        let marker = SnapshotMarker { index: 4, term: 1 };
        replay.apply(&Record::SnapshotMarker(marker), at(12)).unwrap();
        let state = HardState { term: 1, vote: 1, commit: 7 };
        replay.apply(&Record::HardState(state), at(13)).unwrap();
        let replayed = replay.finish().unwrap();
        assert_eq!(replayed.hard_state, Some(state));
        assert_eq!(replayed.snapshot, Some(marker));
        assert_eq!(replayed.entries.iter().map(|entry| entry.index).collect::<Vec<_>>(), [5, 6, 7]);
    }

    #[test]
    fn a_snapshot_beyond_the_entries_moves_the_log_on() {
        let mut replay = Replay::new(LogIndexes::new_log());
        replay.apply(&entry(1, 1), at(0)).unwrap();
        replay.apply(&Record::SnapshotMarker(SnapshotMarker { index: 100, term: 3 }), at(1)).unwrap();
        assert_eq!(replay.indexes.next_index(), Some(101));
        assert_eq!(replay.apply(&entry(102, 3), at(2)), Err(Violation::EntryGap { index: 102, expected: 101 }));
        assert_eq!(
            replay.apply(&entry(100, 3), at(2)),
            Err(Violation::EntryAtOrBelowSnapshot { index: 100, snapshot_index: 100 })
        );
        replay.apply(&entry(101, 3), at(2)).unwrap();
    }

    #[test]
    fn index_rules() {
        let mut indexes = LogIndexes::new_log();
        assert_eq!(indexes.check(&entry(2, 1)), Err(Violation::EntryGap { index: 2, expected: 1 }));
        assert_eq!(indexes.check(&entry(0, 1)), Err(Violation::IndexZero));
        indexes.apply(&entry(1, 1));
        assert_eq!(
            indexes.check(&Record::TruncateSuffix { from_index: 3 }),
            Err(Violation::TruncateBeyondEnd { from_index: 3, last_index: 1 })
        );
        indexes.apply(&Record::SnapshotMarker(SnapshotMarker { index: 1, term: 1 }));
        assert!(indexes.check(&Record::SnapshotMarker(SnapshotMarker { index: 0, term: 1 })).is_err());
        assert!(indexes.check(&Record::TruncateSuffix { from_index: 1 }).is_err());
        // After compaction anything may come first.
        let unknown = LogIndexes::after_compaction();
        assert!(unknown.check(&entry(500, 1)).is_ok());
        assert_eq!(unknown.next_index(), None);
    }

    #[test]
    fn a_replay_from_compacted_segments_must_reach_its_snapshot() {
        let mut replay = Replay::new(LogIndexes::after_compaction());
        replay.apply(&entry(50, 1), at(7)).unwrap();
        replay.apply(&Record::SnapshotMarker(SnapshotMarker { index: 40, term: 1 }), at(8)).unwrap();
        assert_eq!(
            replay.finish().unwrap_err(),
            (Violation::GapAfterSnapshot { first_index: 50, snapshot_index: 40 }, at(7))
        );
    }

    #[test]
    fn a_clean_segment_ends_at_the_first_zero_header() {
        let bytes = segment(&[entry(1, 1), entry(2, 1)], 16384);
        let scan = scan_segment(&bytes, RECORDS_OFFSET);
        assert_eq!(scan.records.len(), 2);
        assert_eq!(scan.records[1].offset, RECORDS_OFFSET + entry(1, 1).frame_bytes() as u64);
        let end = RECORDS_OFFSET + 2 * entry(1, 1).frame_bytes() as u64;
        assert_eq!(scan.end, SegmentEnd::Clean { offset: end });
        assert_eq!(judge(&scan.end, true), Verdict::Clean);
        // A segment filled to its last byte ends cleanly too.
        let full = segment(&[entry(1, 1)], RECORDS_OFFSET as usize + entry(1, 1).frame_bytes());
        assert!(matches!(scan_segment(&full, RECORDS_OFFSET).end, SegmentEnd::Clean { .. }));
    }

    #[test]
    fn a_cut_last_record_is_a_torn_tail() {
        let mut bytes = segment(&[entry(1, 1), entry(2, 1)], 16384);
        let second = RECORDS_OFFSET as usize + entry(1, 1).frame_bytes();
        // The second record's last bytes never reached the disk.
        for byte in &mut bytes[second + 12..second + entry(2, 1).frame_bytes()] {
            *byte = 0;
        }
        let scan = scan_segment(&bytes, RECORDS_OFFSET);
        assert_eq!(scan.records.len(), 1);
        assert_eq!(scan.end.offset(), second as u64);
        assert_eq!(judge(&scan.end, true), Verdict::TornTail { offset: second as u64 });
        assert_eq!(judge(&scan.end, false), Verdict::Corrupt { offset: second as u64 });
    }

    #[test]
    fn garbage_after_the_end_without_records_is_torn() {
        let mut bytes = segment(&[entry(1, 1)], 16384);
        bytes[9000..9100].fill(0xa5);
        let scan = scan_segment(&bytes, RECORDS_OFFSET);
        assert!(matches!(scan.end, SegmentEnd::Damaged { damage: Damage::BytesAfterEnd { first_nonzero: 9000 }, .. }));
        assert!(matches!(judge(&scan.end, true), Verdict::TornTail { .. }));
    }

    #[test]
    fn damage_with_a_record_after_it_is_corruption() {
        let records = [entry(1, 1), entry(2, 1), entry(3, 1)];
        let clean = segment(&records, 16384);
        let frame = entry(1, 1).frame_bytes();
        let second = RECORDS_OFFSET as usize + frame;
        // Any byte of the second record: its length, checksum, or payload.
        for flipped in second..second + frame {
            let mut bytes = clean.clone();
            bytes[flipped] ^= 0x40;
            let scan = scan_segment(&bytes, RECORDS_OFFSET);
            assert_eq!(scan.records.len(), 1, "flip at {flipped}");
            let SegmentEnd::Damaged { offset, valid_record_after, .. } = scan.end else {
                panic!("flip at {flipped} not seen: {:?}", scan.end);
            };
            assert_eq!(offset, second as u64);
            assert_eq!(valid_record_after, ValidAfter::At { offset: (second + frame) as u64 });
            assert_eq!(judge(&scan.end, true), Verdict::Corrupt { offset: second as u64 });
        }
        // A zeroed (lost) block in the middle: records after the "end".
        let mut bytes = clean.clone();
        bytes[second..second + frame].fill(0);
        let scan = scan_segment(&bytes, RECORDS_OFFSET);
        assert!(matches!(judge(&scan.end, true), Verdict::Corrupt { .. }), "{:?}", scan.end);
    }

    /// A version 2 segment: `batches` written one after another, as `sync`
    /// writes them, then zeros.
    fn batched_segment(batches: &[&[Record<'_>]], size: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; RECORDS_OFFSET as usize];
        for batch in batches {
            let mut body = Vec::new();
            for record in *batch {
                encode_record(record, &mut body).unwrap();
            }
            let at = bytes.len() as u64;
            bytes.extend_from_slice(&super::super::record::encode_batch(&body, at));
        }
        bytes.resize(size, 0);
        bytes
    }

    fn big_entry(index: u64) -> Record<'static> {
        Record::Entry { index, term: 1, entry_type: 0, data: &[0x5a; 700] }
    }

    #[test]
    fn every_flipped_byte_of_the_last_batch_is_damage_never_a_torn_tail() {
        let first: &[Record<'_>] = &[entry(1, 1), entry(2, 1)];
        let last: &[Record<'_>] =
            &[entry(3, 1), big_entry(4), Record::HardState(HardState { term: 1, vote: 1, commit: 4 })];
        let clean = batched_segment(&[first, last], 16384);
        let scan = scan_batches(&clean, RECORDS_OFFSET);
        assert_eq!(scan.records.len(), 5);
        let SegmentEnd::Clean { offset: end } = scan.end else { panic!("{:?}", scan.end) };
        let last_start = RECORDS_OFFSET as usize + BATCH_OVERHEAD_BYTES + 2 * entry(1, 1).frame_bytes();
        for flipped in last_start..end as usize {
            let mut bytes = clean.clone();
            bytes[flipped] ^= 0x01;
            let scan = scan_batches(&bytes, RECORDS_OFFSET);
            assert_eq!(scan.records.len(), 2, "flip at {flipped}");
            assert_eq!(scan.end.offset(), last_start as u64, "flip at {flipped}");
            assert_eq!(judge(&scan.end, true), Verdict::Corrupt { offset: last_start as u64 }, "flip at {flipped}");
        }
    }

    #[test]
    fn every_prefix_of_the_last_write_is_a_torn_tail() {
        let first: &[Record<'_>] = &[entry(1, 1), entry(2, 1)];
        let last: &[Record<'_>] = &[entry(3, 1), big_entry(4)];
        let clean = batched_segment(&[first, last], 16384);
        let last_start = RECORDS_OFFSET as usize + BATCH_OVERHEAD_BYTES + 2 * entry(1, 1).frame_bytes();
        let SegmentEnd::Clean { offset: end } = scan_batches(&clean, RECORDS_OFFSET).end else { panic!() };
        // The write stopped at a sector boundary; the rest is still zeros.
        let sector = super::super::record::SECTOR_BYTES as usize;
        for written in (last_start.next_multiple_of(sector)..end as usize).step_by(sector).chain([last_start]) {
            let mut bytes = clean.clone();
            bytes[written..end as usize].fill(0);
            let scan = scan_batches(&bytes, RECORDS_OFFSET);
            assert_eq!(scan.records.len(), 2, "cut at {written}");
            let verdict = judge(&scan.end, true);
            assert!(
                verdict == Verdict::Clean || verdict == Verdict::TornTail { offset: last_start as u64 },
                "cut at {written}: {verdict:?} {:?}",
                scan.end
            );
            // In any segment but the last, the same bytes are corruption.
            if verdict != Verdict::Clean {
                assert_eq!(judge(&scan.end, false), Verdict::Corrupt { offset: last_start as u64 });
            }
        }
    }

    #[test]
    fn a_batch_damaged_and_followed_by_bytes_is_corruption() {
        let batches: [&[Record<'_>]; 3] = [&[entry(1, 1)], &[entry(2, 1)], &[entry(3, 1)]];
        let clean = batched_segment(&batches, 16384);
        let second = RECORDS_OFFSET as usize + BATCH_OVERHEAD_BYTES + entry(1, 1).frame_bytes();
        // The second batch's commit frame zeroed (a lost block), the third intact.
        let commit = second + BATCH_OVERHEAD_BYTES + entry(2, 1).frame_bytes() - BATCH_FRAME_BYTES;
        let mut bytes = clean.clone();
        bytes[commit..commit + BATCH_FRAME_BYTES].fill(0);
        let scan = scan_batches(&bytes, RECORDS_OFFSET);
        assert_eq!(judge(&scan.end, true), Verdict::Corrupt { offset: second as u64 });
        let (records, holes) = scan_past_damage(&bytes, second as u64);
        let found: Vec<u64> = records
            .iter()
            .filter_map(|scanned| match scanned.record {
                Record::Entry { index, .. } => Some(index),
                _ => None,
            })
            .collect();
        assert_eq!(found, [2, 3]);
        assert!(holes.is_empty(), "{holes:?}");
    }

    /// A batch's padding (zeros before its commit frame, so the frame does
    /// not straddle a sector) can be shorter than a frame header; reading
    /// on past damage steps over it rather than calling it a hole.
    #[test]
    fn reading_on_steps_over_padding_of_every_length() {
        let mut paddings = std::collections::BTreeSet::new();
        for length in 0..600 {
            let data = vec![0x5a; length];
            let first: &[Record<'_>] = &[Record::Entry { index: 1, term: 1, entry_type: 0, data: &data }];
            let second: &[Record<'_>] = &[entry(2, 1)];
            let bytes = batched_segment(&[first, second], 16384);
            let records_end = RECORDS_OFFSET as usize + BATCH_FRAME_BYTES + first[0].frame_bytes();
            paddings.insert(super::super::record::encode_batch(&bytes[..0], records_end as u64).len());
            let (records, holes) = scan_past_damage(&bytes, RECORDS_OFFSET);
            assert_eq!(records.len(), 2, "data of {length} bytes");
            assert!(holes.is_empty(), "data of {length} bytes: {holes:?}");
        }
        // Every padding length, zero to a frame less one byte, was met.
        assert_eq!(paddings.len(), BATCH_PADDING_BYTES_MAX + 1);
    }

    /// A snapshot's marker is logged when its file is durable, after later
    /// entries; reading on from a hole applies the covering snapshot's
    /// marker first and then meets the older one, which changes nothing.
    #[test]
    fn reading_on_past_damage_ignores_a_late_older_marker() {
        let covered = SnapshotMarker { index: 8, term: 1 };
        let mut replay = Replay::new(LogIndexes::new_log()).keeping_above(Some(covered.index));
        for index in 1..=4 {
            replay.apply(&entry(index, 1), at(index)).unwrap();
        }
        // Entry 5 was in the hole.
        let records: Vec<Record<'_>> = (6..=7)
            .map(|index| entry(index, 1))
            .chain([Record::SnapshotMarker(SnapshotMarker { index: 3, term: 1 })])
            .chain((8..=12).map(|index| entry(index, 1)))
            .collect();
        for (number, record) in records.iter().enumerate() {
            replay.apply_after_damage(record, at(100 + number as u64), Some(covered)).unwrap();
        }
        let replayed = replay.finish().unwrap();
        assert_eq!(replayed.snapshot, Some(covered));
        let indexes: Vec<u64> = replayed.entries.iter().map(|entry| entry.index).collect();
        assert_eq!(indexes, (9..=12).collect::<Vec<_>>());
    }
}
