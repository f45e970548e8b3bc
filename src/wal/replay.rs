//! Recovery's decisions, without IO: which records a segment's bytes hold,
//! where they stop and whether that stop is a torn tail or damage, and what
//! raft state the records add up to. The same index rules check records at
//! `append`, so the log never holds a sequence recovery would refuse.

use std::fmt;

use super::record::{
    decode_record, plausible_frame, DecodeProblem, Decoded, Entry, HardState, Record, SnapshotMarker,
    FRAME_HEADER_BYTES,
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
}

impl Replay {
    pub fn new(indexes: LogIndexes) -> Replay {
        Replay { indexes, hard_state: None, entries: Vec::new(), positions: Vec::new() }
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
                let covered = self.entries.partition_point(|entry| entry.index <= marker.index);
                self.entries.drain(..covered);
                self.positions.drain(..covered);
            }
            Record::HardState(state) => self.hard_state = Some(state),
        }
        Ok(())
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
            if first.index != snapshot.index + 1 {
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
}

impl fmt::Display for Damage {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damage::Undecodable(problem) => problem.fmt(formatter),
            Damage::BytesAfterEnd { first_nonzero } => {
                write!(formatter, "the records end here but nonzero bytes follow at offset {first_nonzero}")
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
    /// offset of a whole, checksummed record found further on, if any:
    /// the difference between a torn tail and corruption.
    Damaged { offset: u64, damage: Damage, valid_record_after: ValidAfter },
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
                    Some(first_nonzero) => SegmentEnd::Damaged {
                        offset: at as u64,
                        damage: Damage::BytesAfterEnd { first_nonzero: first_nonzero as u64 },
                        valid_record_after: hunt_valid_record(bytes, first_nonzero.saturating_sub(3).max(at + 1)),
                    },
                };
                return SegmentScan { records, end };
            }
            Err(error) => {
                let end = SegmentEnd::Damaged {
                    offset: error.offset,
                    damage: Damage::Undecodable(error.problem),
                    valid_record_after: hunt_valid_record(bytes, at + 1),
                };
                return SegmentScan { records, end };
            }
        }
    }
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

/// A torn tail is damage at the end of the last segment with no whole record
/// after it: the write that was cut short was never acknowledged, because a
/// sync returns only after its write and fdatasync complete and the next
/// write starts after that. Anything else is corruption.
pub fn judge(end: &SegmentEnd, last_segment: bool) -> Verdict {
    match *end {
        SegmentEnd::Clean { .. } => Verdict::Clean,
        SegmentEnd::Damaged { offset, valid_record_after: ValidAfter::None, .. } if last_segment => {
            Verdict::TornTail { offset }
        }
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
}
