//! The write-ahead log: raft's log on disk, under dataLogDir.
//!
//! # Why it is shaped so
//!
//! A write is acknowledged only once its log record is durable, so the log's
//! fdatasync is on every write's path. The one lever that makes that cheap is
//! group commit: the broadcast core collects a batch, [`Wal::append`] buffers
//! its records in memory (no IO, no await), and [`Wal::sync`] makes the whole
//! batch durable with one write and one fdatasync, both through glommio's
//! io_uring. One fsync then pays for a thousand records as easily as for one.
//!
//! The write is a DMA (O_DIRECT) write of whole blocks from an aligned
//! buffer. Records are not block-sized, so a batch usually ends inside a
//! block; the log keeps that partial block's bytes and the next sync writes
//! them again, followed by its own records, from the block's start. Nothing
//! is ever written at a position before the durable end except those same
//! bytes.
//!
//! Segment files are preallocated (ZooKeeper's `zookeeper.preAllocSize`,
//! 64 MiB): writes land inside a file whose size never changes, so an
//! fdatasync has no file size to persist. A segment is named after the first
//! index it was opened for (`log.0000000000000001`, like ZooKeeper's
//! `log.<zxid>`), so that compaction can drop whole files, oldest first,
//! once a snapshot covers them. Its header carries a magic number, the
//! format version and the cluster id, so a directory from another cluster or
//! a newer format is refused rather than misread. New segments are written
//! and synced under a temporary name and renamed into place, so a segment
//! under its real name always has a whole header.
//!
//! Every record is framed with its length and a CRC-32C over length and
//! payload; a zero frame header is the end of the records (preallocated
//! space reads as zeros). Each write is one batch (format version 2): a
//! begin frame that states the batch's length, the records, and a commit
//! frame at the stated end. A crash leaves a write as a prefix of its
//! sectors, and the commit frame never straddles a sector, so recovery can
//! decide (see [`replay::scan_batches`]): a last batch whose commit frame is
//! still zeros was cut short and never acknowledged (a torn tail, truncated
//! with a warning); a batch whose commit frame is there was written whole,
//! and any checksum failure in it is damage, an error naming the file and
//! byte offset. Version 1 segments (no batches) are still read, by the old
//! rule.
//!
//! With [`WalOptions::truncate_corrupt`] recovery plans in memory before it
//! changes a file: it reads on past damage, keeps every record that can
//! still be used (damage the caller's snapshot covers costs nothing), and
//! only then moves the damaged segments aside and writes what it kept into
//! one new segment, logging exactly what it cut.
//!
//! Raft may replace a suffix of its log (a new leader overwrites conflicting
//! entries). The log never rewrites in place: a later record for an index
//! replaces the earlier one and drops everything after it, and a truncation
//! record drops a suffix with no replacement. The same index rules
//! ([`replay::LogIndexes`]) check records as they are appended and as they
//! are replayed, so the log cannot hold a sequence recovery would refuse.
//!
//! Decisions live in IO-free modules ([`record`]: the bytes; [`replay`]:
//! scanning, judging, replaying), tested without an executor; this module
//! and [`segment`] only move bytes between them and the files.
//!
//! docs/formats/wal.md documents the format byte by byte.

pub mod record;
pub mod replay;
pub mod segment;
#[cfg(test)]
mod tests;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use glommio::io::{Directory, DmaFile, OpenOptions};
use tracing::{debug, info, warn};

pub use record::{
    decode_record, decode_segment_header, encode_record, encode_segment_header, DecodeError, DecodeProblem, Decoded,
    Entry, HardState, HeaderProblem, Record, SegmentHeader, SnapshotMarker, FORMAT_VERSION, FORMAT_VERSION_UNBATCHED,
    RECORDS_OFFSET, RECORD_PAYLOAD_BYTES_MAX, SEGMENT_MAGIC,
};
pub use replay::Violation;

use record::{encode_batch, RecordTooLarge, BATCH_OVERHEAD_BYTES, BATCH_PADDING_BYTES_MAX};
use replay::{judge, scan_segment_version, LogIndexes, Position, Replay, SegmentEnd, ValidAfter, Verdict};
use segment::{
    align_down, create_segment, finish_prepared_segment, io_error, is_temporary_file_name, lock_directory,
    parse_segment_file_name, prepare_segment, read_whole_file, segment_file_name, settle_polled_io_probe, std_io_error,
    write_blocks, PrepareHurry, PreparedSegment,
};

/// ZooKeeper's `zookeeper.preAllocSize` default.
pub const PREALLOCATION_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;
/// Records `append` may buffer before a `sync`, by default.
pub const PENDING_BYTES_MAX_DEFAULT: usize = 64 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalOptions {
    /// Each segment file is preallocated to this size, and a new segment
    /// starts when the next record does not fit (ZooKeeper's
    /// `zookeeper.preAllocSize`). A multiple of 4096, at least 8192.
    pub preallocation_bytes: u64,
    /// Write zeros over a new segment's preallocated space instead of only
    /// reserving it. Filesystems such as ext4 and XFS mark reserved space
    /// "unwritten" and must record its first write in their journal at the
    /// next fdatasync; zero-filled space needs no such update. Costs one
    /// write of the segment's size per new segment.
    pub preallocation_zero_fill: bool,
    /// fdatasync after each sync's write (ZooKeeper's `forceSync`; `false`
    /// is `forceSync=no`: faster, and a power loss may lose acknowledged
    /// writes or leave damage that needs `truncate_corrupt`).
    pub force_sync: bool,
    /// With `force_sync`: open segments with O_DSYNC, so each write is
    /// durable when it completes and no fdatasync follows it (one IO per
    /// sync instead of two).
    pub dsync_writes: bool,
    /// Operator's flag: on corruption, drop the log from the damaged record
    /// on (logging what is dropped) instead of refusing to open.
    pub truncate_corrupt: bool,
    /// Bytes of records `append` buffers before it refuses more until a
    /// `sync`.
    pub pending_bytes_max: usize,
    /// The snapshot the caller restores from. `truncate_corrupt` may step
    /// over damaged records that this snapshot covers (they are not needed)
    /// and keep the whole records after them.
    pub covered_by_snapshot: Option<SnapshotMarker>,
}

impl WalError {
    /// Whether the filesystem ran out of space (ENOSPC), the one operating
    /// error whose remedy is not in zoocore's hands.
    pub fn is_no_space(&self) -> bool {
        match self {
            WalError::NoSpace { .. } => true,
            // glommio's errors keep the errno only in their text.
            WalError::Io { source, .. } => {
                source.raw_os_error() == Some(libc::ENOSPC)
                    || source.kind() == std::io::ErrorKind::StorageFull
                    || source.to_string().contains(&format!("(os error {})", libc::ENOSPC))
            }
            _ => false,
        }
    }
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            preallocation_bytes: PREALLOCATION_BYTES_DEFAULT,
            preallocation_zero_fill: false,
            force_sync: true,
            dsync_writes: false,
            truncate_corrupt: false,
            pending_bytes_max: PENDING_BYTES_MAX_DEFAULT,
            covered_by_snapshot: None,
        }
    }
}

impl WalOptions {
    fn validate(&self) -> Result<(), WalError> {
        if self.preallocation_bytes < 2 * RECORDS_OFFSET || !self.preallocation_bytes.is_multiple_of(4096) {
            return Err(WalError::InvalidOptions(format!(
                "preallocation_bytes is {}; it must be a multiple of 4096 and at least {}",
                self.preallocation_bytes,
                2 * RECORDS_OFFSET
            )));
        }
        if self.pending_bytes_max == 0 {
            return Err(WalError::InvalidOptions("pending_bytes_max must be above zero".to_string()));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("{operation} {path}: {source}", path = path.display())]
    Io { path: PathBuf, operation: &'static str, source: std::io::Error },
    #[error(
        "{path}: corrupt at byte offset {offset}: {reason}; the log is not opened. Starting with the WAL's \
         truncate_corrupt option keeps every record it can still use, logs what it cuts and moves the \
         original segments aside",
        path = path.display()
    )]
    Corrupt { path: PathBuf, offset: u64, reason: String },
    #[error(
        "{path}: belongs to cluster {found:#x}, and this server to cluster {expected:#x}: refusing a log \
         directory from another cluster",
        path = path.display()
    )]
    ForeignCluster { path: PathBuf, expected: u64, found: u64 },
    #[error(
        "{path}: format version {found}; this build reads versions {FORMAT_VERSION_UNBATCHED} and {FORMAT_VERSION}",
        path = path.display()
    )]
    UnsupportedVersion { path: PathBuf, found: u32 },
    #[error(
        "{path}: only {available_bytes} bytes are free on its filesystem, fewer than the {needed_bytes} a log \
         segment needs (ENOSPC). This is not damage: free space there, or move dataLogDir to a larger \
         filesystem, and start again",
        path = path.display()
    )]
    NoSpace { path: PathBuf, available_bytes: u64, needed_bytes: u64 },
    #[error("{path}: another process holds the log directory's lock", path = path.display())]
    Locked { path: PathBuf },
    #[error("refused record: {0}")]
    InvalidRecord(Violation),
    #[error("{0}")]
    RecordTooLarge(RecordTooLarge),
    #[error(
        "{pending_bytes} bytes are buffered and {record_bytes} more would pass pending_bytes_max ({limit}); sync first"
    )]
    PendingFull { pending_bytes: usize, record_bytes: usize, limit: usize },
    #[error("cannot compact up to index {up_to_index}: the newest snapshot marker is {snapshot_index:?}")]
    CompactBeyondSnapshot { up_to_index: u64, snapshot_index: Option<u64> },
    #[error("invalid WAL options: {0}")]
    InvalidOptions(String),
    #[error("an earlier write or fdatasync of the log failed; reopen the log to recover")]
    Failed,
}

/// Log segments no longer needed, to delete off the write path
/// (`Wal::compact_later`).
#[derive(Debug)]
pub struct Deletions {
    pub paths: Vec<PathBuf>,
    pub directory: PathBuf,
    pub up_to_index: u64,
}

impl Deletions {
    /// Deletes the segments, oldest first (a crash part-way leaves the
    /// newer ones), then syncs the directory. Blocking: run it on a thread
    /// of its own. A failure is logged and left: the segments are covered
    /// by the snapshot marker, so the next recovery drops them anyway.
    pub fn run(self) {
        for path in &self.paths {
            match std::fs::remove_file(path) {
                Ok(()) => info!(file = %path.display(), up_to_index = self.up_to_index, "log segment compacted away"),
                Err(error) => {
                    warn!(file = %path.display(), %error, "deleting a compacted log segment failed; it stays until the next compaction or start");
                    return;
                }
            }
        }
        if let Err(error) = std::fs::File::open(&self.directory).and_then(|directory| directory.sync_all()) {
            warn!(directory = %self.directory.display(), %error, "syncing the log directory after deletions failed");
        }
    }
}

/// What the log has done since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalCounters {
    /// Bytes handed to the device: whole blocks, rewritten partial blocks
    /// and padding included.
    pub bytes_written: u64,
    /// Bytes of records made durable.
    pub record_bytes_synced: u64,
    /// Syncs that wrote something.
    pub syncs: u64,
    pub fdatasyncs: u64,
    pub records_synced: u64,
    /// Records made durable by the latest sync.
    pub last_sync_records: u64,
    pub last_fdatasync_latency: Duration,
    /// The latest sync's writes, segment creation included.
    pub last_write_latency: Duration,
    pub fdatasync_latency_max: Duration,
    pub segments_created: u64,
    /// Segments that came from a file prepared ahead (see `prepare_next`).
    pub segments_prepared: u64,
    pub segments_deleted: u64,
}

impl WalCounters {
    pub fn records_per_sync(&self) -> f64 {
        if self.syncs == 0 {
            0.0
        } else {
            self.records_synced as f64 / self.syncs as f64
        }
    }
}

/// Something recovery cut off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truncation {
    pub path: PathBuf,
    /// Where the log now ends in that file (0 for a file removed whole).
    pub offset: u64,
    /// A torn tail (expected after a crash) or corruption dropped because
    /// of `truncate_corrupt`.
    pub torn_tail: bool,
    pub reason: String,
    /// Whole, checksummed records found in the dropped part.
    pub records_dropped: usize,
    /// With `truncate_corrupt`: where the original file was kept.
    pub moved_to: Option<PathBuf>,
}

/// The raft state the log holds, as `open` found it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    pub hard_state: Option<HardState>,
    /// The newest snapshot marker; `entries` start right after it, or
    /// earlier: right after `WalOptions::covered_by_snapshot` when that is
    /// older and the log still holds the entries after it.
    pub snapshot: Option<SnapshotMarker>,
    /// Contiguous, ascending, with every replacement and truncation applied.
    pub entries: Vec<Entry>,
    /// Empty after a clean shutdown.
    pub truncations: Vec<Truncation>,
}

#[derive(Debug)]
struct SegmentInfo {
    first_index: u64,
    path: PathBuf,
    /// The highest entry index the file holds, superseded or not.
    entry_index_max: Option<u64>,
}

/// Records buffered for one segment.
#[derive(Debug)]
struct PendingChunk {
    /// `None`: the current segment; `Some(index)`: a new segment named so.
    new_segment: Option<u64>,
    bytes: Vec<u8>,
    entry_index_max: Option<u64>,
}

pub struct Wal {
    directory_path: PathBuf,
    directory: Directory,
    cluster_id: u64,
    options: WalOptions,
    /// Oldest first; the last is the one being written.
    segments: Vec<SegmentInfo>,
    current: DmaFile,
    /// The end of the records written to the current segment.
    written_end: u64,
    /// The current segment's preallocated size: `preallocation_bytes`, or
    /// less when the filesystem had less space free when it was made.
    current_capacity: u64,
    /// The current segment's bytes from the block boundary before
    /// `written_end` up to it: rewritten in front of the next sync's records.
    tail_block: Vec<u8>,
    pending: Vec<PendingChunk>,
    pending_bytes: usize,
    pending_records: u64,
    /// After every appended record, buffered ones included.
    indexes: LogIndexes,
    hard_state: Option<HardState>,
    counters: WalCounters,
    failed: bool,
    /// The next segment, being zero-filled by its own task (see
    /// `prepare_next`).
    next_segment: Option<glommio::Task<Result<Option<PreparedSegment>, WalError>>>,
    /// Tells the preparation of `next_segment` that the log waits for it.
    next_segment_hurry: PrepareHurry,
    _lock: File,
}

/// How far recovery keeps a segment.
struct Kept {
    first_index: u64,
    path: PathBuf,
    end: u64,
    entry_index_max: Option<u64>,
}

impl Wal {
    /// Opens the log in `directory` (created if missing) for cluster
    /// `cluster_id`, recovering what it holds.
    pub async fn open(
        directory: impl AsRef<Path>,
        cluster_id: u64,
        options: WalOptions,
    ) -> Result<(Wal, Recovered), WalError> {
        options.validate()?;
        let directory_path = directory.as_ref().to_path_buf();
        std::fs::create_dir_all(&directory_path).map_err(std_io_error(&directory_path, "create"))?;
        let lock = lock_directory(&directory_path)?;
        settle_polled_io_probe(&directory_path).await?;
        let directory = Directory::open(&directory_path).await.map_err(io_error(&directory_path, "open"))?;
        let mut names = Vec::new();
        let listing = std::fs::read_dir(&directory_path).map_err(std_io_error(&directory_path, "list"))?;
        for item in listing {
            let item = item.map_err(std_io_error(&directory_path, "list"))?;
            let file_name = item.file_name();
            let Some(name) = file_name.to_str() else { continue };
            if let Some(first_index) = parse_segment_file_name(name) {
                names.push(first_index);
            } else if is_temporary_file_name(name) {
                let path = item.path();
                if parse_segment_file_name(name.trim_end_matches(".tmp")).is_some() {
                    warn!(file = %path.display(), "removing a segment whose creation did not finish");
                } else {
                    debug!(file = %path.display(), "removing the segment prepared ahead by the last run");
                }
                std::fs::remove_file(&path).map_err(std_io_error(&path, "remove"))?;
            }
        }
        names.sort_unstable();

        let mut recovered = Recovered::default();
        let planned = plan_recovery(&directory_path, &names, cluster_id, &options).await?;
        if let Some(repair) = &planned.repair {
            // The plan is complete and keeps every record that can be used:
            // only now are files changed. Then the log is opened again
            // without the option, which checks the repair.
            let replayed = planned.replay.finish().map_err(|(violation, _)| WalError::Corrupt {
                path: repair.first_damage.0.clone(),
                offset: repair.first_damage.1,
                reason: format!("{}; reading on past it: {violation}", repair.first_damage.2),
            })?;
            let truncations =
                carry_out_repair(&directory, &directory_path, &names, cluster_id, &options, repair, &replayed).await?;
            directory.close().await.map_err(io_error(&directory_path, "close"))?;
            drop(lock);
            let checked = WalOptions { truncate_corrupt: false, ..options };
            let (wal, mut recovered) = Box::pin(Wal::open(&directory_path, cluster_id, checked)).await?;
            recovered.truncations.splice(0..0, truncations);
            return Ok((wal, recovered));
        }
        let Planned { kept, replay, last_bytes, last_version, torn_tail, repair: _ } = planned;
        if let Some(torn) = torn_tail {
            warn!(
                file = %torn.path.display(),
                offset = torn.offset,
                reason = %torn.reason,
                "torn tail at the end of the log: the last write was cut short before its commit frame; truncating it"
            );
            truncate_segment(&torn.path, torn.offset, options.preallocation_bytes).await?;
            directory.sync().await.map_err(io_error(&directory_path, "sync the directory"))?;
            recovered.truncations.push(Truncation {
                path: torn.path,
                offset: torn.offset,
                torn_tail: true,
                reason: torn.reason,
                records_dropped: 0,
                moved_to: None,
            });
        }
        if kept.is_empty() {
            if !names.is_empty() {
                warn!(directory = %directory_path.display(), "no segment survived recovery; starting an empty log");
            }
            let (current, path, capacity) =
                create_segment(&directory, &directory_path, cluster_id, 1, &options, &[]).await?;
            let tail_block = new_segment_tail(&current, cluster_id, 1);
            let mut wal = Wal {
                directory_path,
                directory,
                cluster_id,
                options,
                segments: vec![SegmentInfo { first_index: 1, path, entry_index_max: None }],
                current,
                written_end: RECORDS_OFFSET,
                current_capacity: capacity,
                tail_block,
                pending: Vec::new(),
                pending_bytes: 0,
                pending_records: 0,
                indexes: LogIndexes::new_log(),
                hard_state: None,
                counters: WalCounters { segments_created: 1, ..WalCounters::default() },
                failed: false,
                next_segment: None,
                next_segment_hurry: PrepareHurry::default(),
                _lock: lock,
            };
            wal.prepare_next();
            return Ok((wal, recovered));
        }

        let indexes = replay.indexes;
        let first = &kept[0];
        if first.first_index != 1 && indexes.snapshot().is_none() {
            return Err(WalError::Corrupt {
                path: first.path.clone(),
                offset: 16,
                reason: format!(
                    "the log starts at index {} without a snapshot marker: earlier segments are missing",
                    first.first_index
                ),
            });
        }
        let replayed = replay.finish().map_err(|(violation, position)| WalError::Corrupt {
            path: kept[position.segment].path.clone(),
            offset: position.offset,
            reason: violation.to_string(),
        })?;
        let hard_state = replayed.hard_state;
        recovered.hard_state = replayed.hard_state;
        recovered.snapshot = replayed.snapshot;
        recovered.entries = replayed.entries;

        let last = kept.last().expect("kept is not empty");
        let current = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(segment::open_flags(&options))
            .dma_open(&last.path)
            .await
            .map_err(io_error(&last.path, "open"))?;
        let block_start = align_down(last.end, current.alignment()) as usize;
        let tail_block = last_bytes[block_start..last.end as usize].to_vec();
        let written_end = last.end;
        let current_capacity = (last_bytes.len() as u64).max(RECORDS_OFFSET);
        drop(last_bytes);
        let segments = kept
            .into_iter()
            .map(|kept| SegmentInfo {
                first_index: kept.first_index,
                path: kept.path,
                entry_index_max: kept.entry_index_max,
            })
            .collect::<Vec<_>>();
        info!(
            directory = %directory_path.display(),
            segments = segments.len(),
            entries = recovered.entries.len(),
            last_index = ?indexes.last_index(),
            snapshot_index = ?recovered.snapshot.map(|marker| marker.index),
            "log recovered"
        );
        let mut wal = Wal {
            directory_path,
            directory,
            cluster_id,
            options,
            segments,
            current,
            written_end,
            current_capacity,
            tail_block,
            pending: Vec::new(),
            pending_bytes: 0,
            pending_records: 0,
            indexes,
            hard_state,
            counters: WalCounters::default(),
            failed: false,
            next_segment: None,
            next_segment_hurry: PrepareHurry::default(),
            _lock: lock,
        };
        if last_version == FORMAT_VERSION_UNBATCHED {
            // Batches never go into a version 1 segment: its reader would
            // take their frames for damage. Later writes start a new one.
            let previous = wal.segments.last().map_or(0, |segment| segment.first_index);
            let name = wal.indexes.next_index().unwrap_or(0).max(previous + 1);
            info!(name, "the newest log segment has format version 1; new records go into a version 2 segment");
            wal.start_segment(name).await?;
        }
        wal.prepare_next();
        Ok((wal, recovered))
    }

    /// Buffers `records` for the next [`Wal::sync`]: no IO. All or none are
    /// taken: a record that breaks the index rules, or a batch that would
    /// pass `pending_bytes_max`, is refused whole.
    pub fn append(&mut self, records: &[Record<'_>]) -> Result<(), WalError> {
        if self.failed {
            return Err(WalError::Failed);
        }
        let chunk_count = self.pending.len();
        let last_chunk = self.pending.last().map(|chunk| (chunk.bytes.len(), chunk.entry_index_max));
        let result = self.append_all(records);
        if result.is_err() {
            self.pending.truncate(chunk_count);
            if let (Some(chunk), Some((length, entry_index_max))) = (self.pending.last_mut(), last_chunk) {
                chunk.bytes.truncate(length);
                chunk.entry_index_max = entry_index_max;
            }
        }
        result
    }

    fn append_all(&mut self, records: &[Record<'_>]) -> Result<(), WalError> {
        let mut indexes = self.indexes;
        let mut hard_state = self.hard_state;
        let mut added_bytes = 0;
        for record in records {
            indexes.check(record).map_err(WalError::InvalidRecord)?;
            let frame_bytes = record.frame_bytes();
            if record.payload_bytes() > RECORD_PAYLOAD_BYTES_MAX {
                return Err(WalError::RecordTooLarge(RecordTooLarge { payload_bytes: record.payload_bytes() }));
            }
            if self.pending_bytes + added_bytes + frame_bytes > self.options.pending_bytes_max {
                return Err(WalError::PendingFull {
                    pending_bytes: self.pending_bytes + added_bytes,
                    record_bytes: frame_bytes,
                    limit: self.options.pending_bytes_max,
                });
            }
            let (planned_end, planned_name) = self.planned_end();
            // A new segment's size is known once it is made: planned with
            // the configured one.
            let capacity = match self.pending.last() {
                Some(PendingChunk { new_segment: Some(_), .. }) => self.options.preallocation_bytes,
                _ => self.current_capacity,
            };
            let full = planned_end + frame_bytes as u64 > capacity;
            if full && planned_end > RECORDS_OFFSET + (BATCH_OVERHEAD_BYTES + BATCH_PADDING_BYTES_MAX) as u64 {
                // Named so that recovery can check nothing is missing
                // between this segment and the one before.
                let name = indexes.next_index().unwrap_or(0).max(planned_name + 1);
                self.pending.push(PendingChunk { new_segment: Some(name), bytes: Vec::new(), entry_index_max: None });
            } else if self.pending.is_empty() {
                self.pending.push(PendingChunk { new_segment: None, bytes: Vec::new(), entry_index_max: None });
            }
            let chunk = self.pending.last_mut().expect("a chunk was just ensured");
            let record_at = chunk.bytes.len();
            encode_record(record, &mut chunk.bytes).map_err(WalError::RecordTooLarge)?;
            // In pairs: what goes to the disk reads back as the record, at
            // the length recovery will step by (checked in debug builds,
            // which the test command runs).
            debug_assert!(
                matches!(
                    decode_record(&chunk.bytes[record_at..], record_at as u64),
                    Ok(Decoded::Record { record: read_back, frame_bytes: read_bytes })
                        if read_back == *record && read_bytes == frame_bytes
                ),
                "a record does not read back as written"
            );
            match *record {
                Record::Entry { index, .. } => {
                    chunk.entry_index_max = Some(chunk.entry_index_max.map_or(index, |max| max.max(index)))
                }
                Record::HardState(state) => hard_state = Some(state),
                _ => {}
            }
            indexes.apply(record);
            added_bytes += frame_bytes;
        }
        self.indexes = indexes;
        self.hard_state = hard_state;
        self.pending_bytes += added_bytes;
        self.pending_records += records.len() as u64;
        Ok(())
    }

    /// Where the buffered records will end once written as a batch (its
    /// begin and commit frames included), and the name of the segment they
    /// end in.
    fn planned_end(&self) -> (u64, u64) {
        let current_name = self.segments.last().map_or(0, |segment| segment.first_index);
        let overhead = (BATCH_OVERHEAD_BYTES + BATCH_PADDING_BYTES_MAX) as u64;
        match self.pending.last() {
            None => (self.written_end + overhead, current_name),
            Some(PendingChunk { new_segment: None, bytes, .. }) => {
                (self.written_end + overhead + bytes.len() as u64, current_name)
            }
            Some(PendingChunk { new_segment: Some(name), bytes, .. }) => {
                (RECORDS_OFFSET + overhead + bytes.len() as u64, *name)
            }
        }
    }

    /// Drops entries from `from_index` on (raft replacing a conflicting
    /// suffix) by appending a truncation record; buffered like `append`.
    /// Nothing is written if the log ends before `from_index`.
    pub fn truncate_suffix(&mut self, from_index: u64) -> Result<(), WalError> {
        if self.indexes.last_index().is_some_and(|last| from_index > last) {
            return Ok(());
        }
        self.append(&[Record::TruncateSuffix { from_index }])
    }

    /// Makes every buffered record durable: one write (a second one and a
    /// segment creation only when the batch fills the current segment) and
    /// one fdatasync, unless `force_sync` is off.
    pub async fn sync(&mut self) -> Result<(), WalError> {
        if self.failed {
            return Err(WalError::Failed);
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        let result = self.write_pending().await;
        if result.is_err() {
            // What reached the disk is unknown; only recovery can tell.
            self.failed = true;
        }
        result
    }

    async fn write_pending(&mut self) -> Result<(), WalError> {
        let chunks = std::mem::take(&mut self.pending);
        let started = Instant::now();
        let mut current_unsynced = false;
        for chunk in chunks {
            if let Some(name) = chunk.new_segment {
                if current_unsynced && self.options.force_sync && !self.options.dsync_writes {
                    // The full segment must be durable before a later one
                    // holds records: damage may only be at the very end.
                    self.fdatasync().await?;
                }
                self.start_segment(name).await?;
            }
            self.write_chunk(&encode_batch(&chunk.bytes, self.written_end)).await?;
            current_unsynced = true;
            let segment = self.segments.last_mut().expect("there is a current segment");
            if let Some(index) = chunk.entry_index_max {
                segment.entry_index_max = Some(segment.entry_index_max.map_or(index, |max| max.max(index)));
            }
        }
        self.counters.last_write_latency = started.elapsed();
        if self.options.force_sync && !self.options.dsync_writes {
            self.fdatasync().await?;
        }
        self.counters.syncs += 1;
        self.counters.records_synced += self.pending_records;
        self.counters.last_sync_records = self.pending_records;
        self.counters.record_bytes_synced += self.pending_bytes as u64;
        self.pending_records = 0;
        self.pending_bytes = 0;
        Ok(())
    }

    async fn fdatasync(&mut self) -> Result<(), WalError> {
        let started = Instant::now();
        let path = &self.segments.last().expect("there is a current segment").path;
        self.current.fdatasync().await.map_err(io_error(path, "fdatasync"))?;
        let latency = started.elapsed();
        self.counters.fdatasyncs += 1;
        self.counters.last_fdatasync_latency = latency;
        self.counters.fdatasync_latency_max = self.counters.fdatasync_latency_max.max(latency);
        Ok(())
    }

    /// One DMA write: the partial block kept from the last write, then
    /// `bytes` (one framed batch), padded with zeros to whole blocks.
    async fn write_chunk(&mut self, bytes: &[u8]) -> Result<(), WalError> {
        let alignment = self.current.alignment();
        let block_start = self.written_end - self.tail_block.len() as u64;
        debug_assert_eq!(block_start % alignment, 0);
        let path = &self.segments.last().expect("there is a current segment").path;
        let written = write_blocks(&self.current, path, block_start, &[&self.tail_block, bytes]).await?;
        self.counters.bytes_written += written;
        let new_end = self.written_end + bytes.len() as u64;
        let keep = (new_end - align_down(new_end, alignment)) as usize;
        let mut tail_block = Vec::with_capacity(keep);
        if keep > bytes.len() {
            tail_block.extend_from_slice(&self.tail_block[self.tail_block.len() - (keep - bytes.len())..]);
            tail_block.extend_from_slice(bytes);
        } else {
            tail_block.extend_from_slice(&bytes[bytes.len() - keep..]);
        }
        self.tail_block = tail_block;
        self.written_end = new_end;
        Ok(())
    }

    /// Starts zero-filling the next segment in a task of its own, beside
    /// the log's writes, so that the rollover to it costs a header write
    /// and a rename rather than a zero-fill of `preallocation_bytes` with
    /// every write waiting (only where segments are zero-filled: a reserved
    /// but unwritten segment is made at once anyway).
    fn prepare_next(&mut self) {
        if !self.options.preallocation_zero_fill || self.next_segment.is_some() {
            return;
        }
        self.next_segment_hurry = PrepareHurry::default();
        let task = prepare_segment(
            self.directory_path.clone(),
            self.options.preallocation_bytes,
            self.next_segment_hurry.clone(),
        );
        self.next_segment = Some(glommio::spawn_local(task));
    }

    /// The prepared next segment, if its task made one. A preparation that
    /// failed is not the log's failure: the rollover makes the segment
    /// itself, and reports the error if it fails again.
    async fn take_prepared(&mut self) -> Option<PreparedSegment> {
        self.next_segment_hurry.hurry();
        match self.next_segment.take()?.await {
            Ok(prepared) => prepared,
            Err(error) => {
                warn!(%error, "preparing the next log segment ahead failed; it is made at the rollover instead");
                None
            }
        }
    }

    async fn start_segment(&mut self, name: u64) -> Result<(), WalError> {
        let prepared = self.take_prepared().await;
        let (file, path, capacity) = match prepared {
            Some(prepared) => {
                self.counters.segments_prepared += 1;
                let flags = segment::open_flags(&self.options);
                finish_prepared_segment(prepared, &self.directory, &self.directory_path, self.cluster_id, name, flags)
                    .await?
            }
            None => {
                create_segment(&self.directory, &self.directory_path, self.cluster_id, name, &self.options, &[]).await?
            }
        };
        self.tail_block = new_segment_tail(&file, self.cluster_id, name);
        let previous = std::mem::replace(&mut self.current, file);
        let previous_path = self.segments.last().map(|segment| segment.path.clone()).unwrap_or_default();
        previous.close().await.map_err(io_error(&previous_path, "close"))?;
        self.segments.push(SegmentInfo { first_index: name, path, entry_index_max: None });
        self.written_end = RECORDS_OFFSET;
        self.current_capacity = capacity;
        self.counters.segments_created += 1;
        self.prepare_next();
        Ok(())
    }

    /// Deletes whole segments, oldest first, whose entries all lie below
    /// `up_to_index`; the segment being written is kept. The newest snapshot
    /// marker must cover everything below `up_to_index`. Before deleting,
    /// the newest snapshot marker and hard state are appended and synced
    /// again (with anything buffered), so they survive in a kept segment.
    /// Returns the number of segments deleted. The deletions block the
    /// caller: the server uses `compact_later`, and this is for tests.
    #[cfg(test)]
    pub async fn compact(&mut self, up_to_index: u64) -> Result<usize, WalError> {
        let Some(deletions) = self.compact_later(up_to_index).await? else {
            return Ok(0);
        };
        let deleted = deletions.paths.len();
        deletions.run();
        Ok(deleted)
    }

    /// `compact`, with the deletions handed back to be done elsewhere (a
    /// thread of their own), so that the writes after it never wait for
    /// them: the log forgets the segments once the records that make them
    /// unnecessary are durable, and a segment still on disk below the
    /// newest snapshot marker, if the deletions never happen (a crash), is
    /// read and dropped at the next recovery like any covered entry.
    pub async fn compact_later(&mut self, up_to_index: u64) -> Result<Option<Deletions>, WalError> {
        if self.failed {
            return Err(WalError::Failed);
        }
        let snapshot = self.indexes.snapshot();
        if snapshot.is_none_or(|marker| up_to_index > marker.index + 1) {
            return Err(WalError::CompactBeyondSnapshot {
                up_to_index,
                snapshot_index: snapshot.map(|marker| marker.index),
            });
        }
        let candidates = &self.segments[..self.segments.len() - 1];
        let doomed = candidates
            .iter()
            .take_while(|segment| segment.entry_index_max.is_none_or(|index| index < up_to_index))
            .count();
        if doomed == 0 {
            return Ok(None);
        }
        let mut keep = Vec::with_capacity(2);
        if let Some(marker) = snapshot {
            keep.push(Record::SnapshotMarker(marker));
        }
        if let Some(state) = self.hard_state {
            keep.push(Record::HardState(state));
        }
        self.append(&keep)?;
        self.sync().await?;
        let paths: Vec<PathBuf> = self.segments.drain(..doomed).map(|segment| segment.path).collect();
        self.counters.segments_deleted += paths.len() as u64;
        Ok(Some(Deletions { paths, directory: self.directory_path.clone(), up_to_index }))
    }

    /// Syncs anything buffered and closes the files.
    pub async fn close(mut self) -> Result<(), WalError> {
        self.sync().await?;
        // A segment prepared ahead is not needed: the next start removes it.
        drop(self.next_segment.take());
        let path = self.segments.last().map(|segment| segment.path.clone()).unwrap_or_default();
        self.current.close().await.map_err(io_error(&path, "close"))?;
        self.directory.close().await.map_err(io_error(&self.directory_path, "close"))
    }

    pub fn counters(&self) -> WalCounters {
        self.counters
    }

    /// Whether syncs are O_DSYNC writes with no fdatasync after them.
    pub fn dsync_writes(&self) -> bool {
        self.options.force_sync && self.options.dsync_writes
    }

    /// The last index of the log, buffered records included (`None` only
    /// for a log replayed from compacted segments that held no entry).
    pub fn last_index(&self) -> Option<u64> {
        self.indexes.last_index()
    }

    pub fn snapshot(&self) -> Option<SnapshotMarker> {
        self.indexes.snapshot()
    }

    pub fn hard_state(&self) -> Option<HardState> {
        self.hard_state
    }

    /// Bytes buffered by `append` and not yet synced.
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// The segment files, oldest first.
    pub fn segment_paths(&self) -> Vec<PathBuf> {
        self.segments.iter().map(|segment| segment.path.clone()).collect()
    }

    pub fn directory(&self) -> &Path {
        &self.directory_path
    }
}

/// The bytes a new segment's first write must rewrite: the header block's
/// part in the block where records start (empty when blocks are ≤ 4 KiB).
fn new_segment_tail(file: &DmaFile, cluster_id: u64, first_index: u64) -> Vec<u8> {
    let block_start = align_down(RECORDS_OFFSET, file.alignment()) as usize;
    encode_segment_header(cluster_id, first_index)[block_start..].to_vec()
}

/// A torn tail found in the last segment: cut in place once planning ends.
struct TornTail {
    path: PathBuf,
    offset: u64,
    reason: String,
}

/// With `truncate_corrupt`: what reading on past the first damage found.
/// Nothing is changed on disk until the whole log has been read.
struct Repair {
    /// Position (in the name list) of the first segment that is moved aside
    /// and rewritten: the one holding the first damage.
    from: usize,
    /// The log's last index before that segment (what the kept segments end
    /// with); records above it are rewritten.
    last_index_before: Option<u64>,
    first_damage: (PathBuf, u64, String),
    /// Stretches of damaged bytes stepped over: file, from, to, the entry
    /// before and the entry after.
    holes: Vec<(PathBuf, u64, u64)>,
    /// Where reading on had to stop (a gap no snapshot covers, or a broken
    /// index rule), and why: every whole record after it is lost.
    stopped: Option<(PathBuf, u64, String)>,
    /// Whole entries found after the stop: count, lowest and highest index,
    /// bytes.
    lost_entries: usize,
    lost_index_range: Option<(u64, u64)>,
    lost_bytes: u64,
}

impl Repair {
    fn lose(&mut self, record: &Record<'_>) {
        if let Record::Entry { index, .. } = *record {
            self.lost_entries += 1;
            self.lost_index_range = Some(match self.lost_index_range {
                None => (index, index),
                Some((low, high)) => (low.min(index), high.max(index)),
            });
        }
        self.lost_bytes += record.frame_bytes() as u64;
    }
}

/// What reading every segment decided.
struct Planned {
    kept: Vec<Kept>,
    replay: Replay,
    last_bytes: Vec<u8>,
    last_version: u32,
    torn_tail: Option<TornTail>,
    repair: Option<Repair>,
}

/// Reads every segment in order, replays its records, and judges where each
/// ends, changing no file: the plan is carried out by the caller. Without
/// `truncate_corrupt` the first corruption is an error. With it, reading
/// goes on past the damage (`Repair`), stepping over holes that the
/// snapshot in `covered_by_snapshot` makes harmless, so that the repair keeps
/// every record that can still be used.
async fn plan_recovery(
    directory: &Path,
    names: &[u64],
    cluster_id: u64,
    options: &WalOptions,
) -> Result<Planned, WalError> {
    let start = if names.first() == Some(&1) { LogIndexes::new_log() } else { LogIndexes::after_compaction() };
    let covered = options.covered_by_snapshot;
    let mut replay = Replay::new(start).keeping_above(covered.map(|marker| marker.index));
    let mut kept: Vec<Kept> = Vec::new();
    let mut last_bytes = Vec::new();
    let mut last_version = FORMAT_VERSION;
    let mut torn_tail = None;
    let mut repair: Option<Repair> = None;
    for (position, &first_index) in names.iter().enumerate() {
        let path = directory.join(segment_file_name(first_index));
        let bytes = read_whole_file(&path).await?;
        let last_segment = position + 1 == names.len();

        let header = decode_segment_header(&bytes);
        let header_fault = match header {
            Err(HeaderProblem::UnsupportedVersion { found }) => {
                return Err(WalError::UnsupportedVersion { path, found });
            }
            Err(problem) => Some((problem.offset(), problem.to_string())),
            Ok(header) if header.cluster_id != cluster_id => {
                return Err(WalError::ForeignCluster { path, expected: cluster_id, found: header.cluster_id });
            }
            Ok(header) if header.first_index != first_index => Some((
                16,
                format!("the header names index {} but the file name index {first_index}", header.first_index),
            )),
            Ok(_) => None,
        };
        let version = header.map_or(FORMAT_VERSION, |header| header.version);

        if let Some(reading_on) = repair.as_mut() {
            // Past the first damage: every whole record is either used or
            // counted as lost.
            if header_fault.is_some() {
                reading_on.holes.push((path.clone(), 0, bytes.len() as u64));
                continue;
            }
            let (records, holes) = replay::scan_past_damage(&bytes, RECORDS_OFFSET);
            reading_on.holes.extend(holes.into_iter().map(|(from, to)| (path.clone(), from, to)));
            read_on(reading_on, &mut replay, &records, &path, position, covered);
            continue;
        }

        let continuity_fault = match (position.checked_sub(1).map(|before| names[before]), replay.indexes.next_index())
        {
            (Some(previous), Some(next)) if first_index != next.max(previous + 1) => Some((
                16,
                format!(
                    "the segment starts at index {first_index} but the log before it continues at {}: {}",
                    next.max(previous + 1),
                    if first_index > next.max(previous + 1) { "entries are missing" } else { "segments overlap" }
                ),
            )),
            _ => None,
        };
        let last_index_before = replay.indexes.last_index();
        if let Some((offset, reason)) = header_fault.clone().or(continuity_fault) {
            if !options.truncate_corrupt {
                return Err(WalError::Corrupt { path, offset, reason });
            }
            let mut reading_on = Repair::new(position, last_index_before, (path.clone(), offset, reason));
            if header_fault.is_some() {
                reading_on.holes.push((path.clone(), 0, bytes.len() as u64));
            } else {
                let (records, holes) = replay::scan_past_damage(&bytes, RECORDS_OFFSET);
                reading_on.holes.extend(holes.into_iter().map(|(from, to)| (path.clone(), from, to)));
                read_on(&mut reading_on, &mut replay, &records, &path, position, covered);
            }
            repair = Some(reading_on);
            continue;
        }

        let scan = scan_segment_version(&bytes, RECORDS_OFFSET, version);
        let mut entry_index_max = None;
        let mut violation = None;
        for scanned in &scan.records {
            let at = Position { segment: kept.len(), offset: scanned.offset };
            if let Err(broken) = replay.apply(&scanned.record, at) {
                violation = Some((scanned.offset, broken.to_string()));
                break;
            }
            if let Record::Entry { index, .. } = scanned.record {
                entry_index_max = Some(entry_index_max.map_or(index, |max: u64| max.max(index)));
            }
        }
        let verdict = match violation {
            Some((offset, _)) => Verdict::Corrupt { offset },
            None => judge(&scan.end, last_segment),
        };
        let reason = match (&violation, &scan.end) {
            (Some((_, reason)), _) => reason.clone(),
            (None, SegmentEnd::Damaged { damage, valid_record_after, .. }) => match valid_record_after {
                ValidAfter::At { offset } => format!("{damage}, with a valid record after it at offset {offset}"),
                ValidAfter::Unknown => format!("{damage}, and the search for valid records after it gave up"),
                ValidAfter::None => damage.to_string(),
            },
            (None, SegmentEnd::Clean { .. }) => String::new(),
        };
        let end = match verdict {
            Verdict::Clean => scan.end.offset(),
            Verdict::TornTail { offset } => {
                torn_tail = Some(TornTail { path: path.clone(), offset, reason });
                offset
            }
            Verdict::Corrupt { offset } => {
                if !options.truncate_corrupt {
                    // Name the damaged bytes themselves, not the start of
                    // the batch around them.
                    let offset = match scan.end {
                        SegmentEnd::Damaged { damage, .. } if violation.is_none() => {
                            damage.inner_offset().unwrap_or(offset)
                        }
                        _ => offset,
                    };
                    return Err(WalError::Corrupt { path, offset, reason });
                }
                let mut reading_on = Repair::new(position, last_index_before, (path.clone(), offset, reason));
                let (records, holes) = replay::scan_past_damage(&bytes, offset);
                reading_on.holes.extend(holes.into_iter().map(|(from, to)| (path.clone(), from, to)));
                // A broken index rule: the record at `offset` is whole, and
                // reading on meets it again.
                read_on(&mut reading_on, &mut replay, &records, &path, position, covered);
                repair = Some(reading_on);
                continue;
            }
        };
        kept.push(Kept { first_index, path, end, entry_index_max });
        last_bytes = bytes;
        last_version = version;
    }
    Ok(Planned { kept, replay, last_bytes, last_version, torn_tail, repair })
}

impl Repair {
    fn new(from: usize, last_index_before: Option<u64>, first_damage: (PathBuf, u64, String)) -> Repair {
        Repair {
            from,
            last_index_before,
            first_damage,
            holes: Vec::new(),
            stopped: None,
            lost_entries: 0,
            lost_index_range: None,
            lost_bytes: 0,
        }
    }
}

/// Applies records found past the first damage, until one cannot be used;
/// from then on every record is counted as lost.
fn read_on(
    repair: &mut Repair,
    replay: &mut Replay,
    records: &[replay::ScannedRecord<'_>],
    path: &Path,
    position: usize,
    covered: Option<SnapshotMarker>,
) {
    for scanned in records {
        if repair.stopped.is_none() {
            let at = Position { segment: position, offset: scanned.offset };
            match replay.apply_after_damage(&scanned.record, at, covered) {
                Ok(()) => continue,
                Err(violation) => {
                    repair.stopped = Some((path.to_path_buf(), scanned.offset, violation.to_string()));
                }
            }
        }
        repair.lose(&scanned.record);
    }
}

/// Carries out a `truncate_corrupt` repair: every segment from the first
/// damaged one on is hard-linked into a new `truncated-<unix seconds>`
/// directory beside the segments (nothing is deleted), then one new segment
/// holding what the plan keeps from them (the snapshot marker, the entries
/// after the kept segments, the hard state) replaces them. Each step leaves
/// either the old files in place or the new one complete: the new segment
/// is written and synced under a temporary name before it is renamed in.
async fn carry_out_repair(
    directory: &Directory,
    directory_path: &Path,
    names: &[u64],
    cluster_id: u64,
    options: &WalOptions,
    repair: &Repair,
    replayed: &replay::Replayed,
) -> Result<Vec<Truncation>, WalError> {
    let seconds = crate::clock::wall_ms() / 1000;
    let aside = directory_path.join(format!("truncated-{seconds}"));
    std::fs::create_dir_all(&aside).map_err(std_io_error(&aside, "create"))?;
    let doomed = &names[repair.from..];
    for &name in doomed {
        let path = directory_path.join(segment_file_name(name));
        let target = aside.join(segment_file_name(name));
        if !target.exists() {
            std::fs::hard_link(&path, &target).map_err(std_io_error(&target, "link"))?;
        }
    }
    File::open(&aside).and_then(|handle| handle.sync_all()).map_err(std_io_error(&aside, "sync the directory"))?;

    // Entries the marker covers (kept for an older snapshot) go before it,
    // the others after it, as the index rules require.
    let above = repair.last_index_before.unwrap_or(0);
    let rewritten: Vec<&Entry> = replayed.entries.iter().filter(|entry| entry.index > above).collect();
    let marker_index = replayed.snapshot.map_or(0, |marker| marker.index);
    let split = rewritten.partition_point(|entry| entry.index <= marker_index);
    let mut records: Vec<Record<'_>> = rewritten[..split].iter().map(|entry| entry.as_record()).collect();
    if let Some(marker) = replayed.snapshot {
        records.push(Record::SnapshotMarker(marker));
    }
    records.extend(rewritten[split..].iter().map(|entry| entry.as_record()));
    if let Some(state) = replayed.hard_state {
        records.push(Record::HardState(state));
    }
    let mut body = Vec::new();
    for record in &records {
        encode_record(record, &mut body).map_err(WalError::RecordTooLarge)?;
    }
    let name = match repair.from.checked_sub(1) {
        None => names[repair.from],
        Some(before) => {
            let next = repair.last_index_before.map_or(0, |last| last + 1);
            next.max(names[before] + 1)
        }
    };
    let (file, new_path, _) =
        create_segment(directory, directory_path, cluster_id, name, options, &encode_batch(&body, RECORDS_OFFSET))
            .await?;
    file.close().await.map_err(io_error(&new_path, "close"))?;
    for &doomed_name in doomed {
        if doomed_name != name {
            let path = directory_path.join(segment_file_name(doomed_name));
            std::fs::remove_file(&path).map_err(std_io_error(&path, "remove"))?;
        }
    }
    directory.sync().await.map_err(io_error(directory_path, "sync the directory"))?;

    let (first_path, first_offset, first_reason) = &repair.first_damage;
    let mut truncations = Vec::new();
    let kept_range = rewritten.first().zip(rewritten.last()).map(|(first, last)| (first.index, last.index));
    for (path, from, to) in &repair.holes {
        warn!(
            file = %path.display(),
            from_offset = from,
            to_offset = to,
            bytes = to - from,
            "truncate_corrupt: damaged bytes stepped over; their records are not in the repaired log"
        );
    }
    let lost = match (repair.lost_index_range, &repair.stopped) {
        (Some((low, high)), Some((path, offset, why))) => format!(
            "{} whole entries cut from {} offset {offset} on ({why}): indexes {low}..={high} \
             (zxids {low:#x}..={high:#x}), {} bytes",
            repair.lost_entries,
            path.display(),
            repair.lost_bytes
        ),
        (None, Some((path, offset, why))) => {
            format!("reading stopped at {} offset {offset} ({why}); no whole entry after it", path.display())
        }
        _ => "no whole entry lost".to_string(),
    };
    warn!(
        file = %first_path.display(),
        offset = first_offset,
        reason = %first_reason,
        moved_aside_to = %aside.display(),
        segments_moved = doomed.len(),
        rewritten_entries = rewritten.len(),
        rewritten_indexes = ?kept_range,
        snapshot_index = ?replayed.snapshot.map(|marker| marker.index),
        lost = %lost,
        "truncate_corrupt: the log was repaired; the original segments are kept in the aside directory"
    );
    for (position, &doomed_name) in doomed.iter().enumerate() {
        let path = directory_path.join(segment_file_name(doomed_name));
        truncations.push(Truncation {
            offset: if position == 0 && path == *first_path { *first_offset } else { 0 },
            path,
            torn_tail: false,
            reason: format!("{first_reason}; {lost}"),
            records_dropped: if position == 0 { repair.lost_entries } else { 0 },
            moved_to: Some(aside.join(segment_file_name(doomed_name))),
        });
    }
    Ok(truncations)
}

/// Cuts a segment's records at `offset`: the file is shortened there (the
/// rest of its block reads as zeros) and preallocated again, then synced.
async fn truncate_segment(path: &Path, offset: u64, preallocation_bytes: u64) -> Result<(), WalError> {
    let file = OpenOptions::new().read(true).write(true).dma_open(path).await.map_err(io_error(path, "open"))?;
    file.truncate(offset).await.map_err(io_error(path, "truncate"))?;
    file.pre_allocate(preallocation_bytes.max(offset), false).await.map_err(io_error(path, "preallocate"))?;
    file.fdatasync().await.map_err(io_error(path, "fdatasync"))?;
    file.close().await.map_err(io_error(path, "close"))
}
