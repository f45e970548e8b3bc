//! Where the broadcast core makes raft's log durable, and where recovery
//! starts: the WAL (`crate::wal`, docs/formats/wal.md) under
//! `dataLogDir/log`, snapshots (`crate::snapshot`, docs/formats/snapshot.md)
//! under `dataDir/snapshot`, and the cluster id in `dataDir/cluster-id`
//! that both carry, so a data directory from another cluster is refused.
//!
//! `append` buffers records; `sync` writes everything buffered with one write
//! and one fdatasync (group commit), and only then may replies leave.
//!
//! Opening is where operators meet failures, so `open` returns a typed
//! `LogError` whose message carries the advice for its cause: damage points
//! at `--truncate-corrupt`, a full disk (ENOSPC) at freeing space, a log that
//! does not reach back to the usable snapshot says a snapshot is missing.
//! Errors at run time name ENOSPC when that is the cause; the broadcast core
//! then fail-stops with `EXIT_STATUS_LOG_FAILED`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use raft::eraftpb::{Entry, EntryType, HardState};
use tracing::{info, warn};

use crate::config::Config;
use crate::replica::{Recovered, SnapshotPoint};
use crate::snapshot;
use crate::tree::Tree;
use crate::wal::{self, Record, Wal, WalError, WalOptions};

/// The exit status when the log fails at run time (a write or fdatasync
/// error, ENOSPC among them): ZooKeeper's SyncRequestProcessor exits with
/// its UNEXPECTED_ERROR (1) in the same case.
pub const EXIT_STATUS_LOG_FAILED: i32 = 1;

/// The file that names the cluster a data directory belongs to.
const CLUSTER_ID_FILE: &str = "cluster-id";

/// Why the log and snapshots could not be opened. Each variant's message
/// says what to do, and only damage points at `--truncate-corrupt`.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot create {}: {source}", path.display())]
    CreateDirectory { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    ClusterId(ClusterIdError),
    #[error(
        "{0} (start with --truncate-corrupt to repair the log: it keeps every record it can still use, logs \
         what it cuts and moves the original segments aside; save a copy of the data directories first)"
    )]
    Damaged(WalError),
    #[error("{0} (ENOSPC: the filesystem holding the log is full)")]
    NoSpace(WalError),
    #[error("{0}")]
    Wal(WalError),
    #[error("{0} (no older snapshot could be used instead)")]
    Snapshot(snapshot::SnapshotError),
    /// The log was compacted past every snapshot that can be used.
    #[error(
        "the log in {} was compacted up to index {compacted_to} but the newest usable snapshot in {} is at \
         {snapshot_index}: a snapshot is missing",
        log.display(), snapshots.display()
    )]
    SnapshotMissing { log: PathBuf, compacted_to: u64, snapshots: PathBuf, snapshot_index: u64 },
    /// The log's first entry does not follow the snapshot.
    #[error(
        "the log in {} starts at index {first} but the newest snapshot ends at {snapshot_index}: entries are missing",
        log.display()
    )]
    EntriesMissing { log: PathBuf, first: u64, snapshot_index: u64 },
    /// At run time: the snapshot directory could not be listed.
    #[error("listing the snapshots: {0}")]
    SnapshotList(snapshot::SnapshotError),
}

impl From<WalError> for LogError {
    fn from(error: WalError) -> LogError {
        match error {
            WalError::Corrupt { .. } => LogError::Damaged(error),
            _ if error.is_no_space() => LogError::NoSpace(error),
            _ => LogError::Wal(error),
        }
    }
}

pub struct Log {
    wal: Wal,
    cluster_id: u64,
    snapshot_directory: PathBuf,
    sync_bytes: usize,
}

/// Why the data directory's cluster id cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum ClusterIdError {
    #[error("{}: not a cluster id (16 hex digits): {text:?}", path.display())]
    NotAnId { path: PathBuf, text: String },
    #[error(
        "{} is missing but {} or {} holds data: this data directory was not made by this server",
        path.display(), log.display(), snapshots.display()
    )]
    MissingBesideData { path: PathBuf, log: PathBuf, snapshots: PathBuf },
    #[error("cannot read /dev/urandom: {0}")]
    Random(std::io::Error),
    #[error("cannot {operation} {}: {source}", path.display())]
    Io { path: PathBuf, operation: &'static str, source: std::io::Error },
}

/// Reads the cluster id, or makes one for a new data directory.
fn cluster_id(data_directory: &Path, log_directory: &Path, snapshot_directory: &Path) -> Result<u64, ClusterIdError> {
    let path = data_directory.join(CLUSTER_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => u64::from_str_radix(text.trim(), 16)
            .map_err(|_| ClusterIdError::NotAnId { path: path.clone(), text: text.trim().to_string() }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let has_files = |directory: &Path| {
                std::fs::read_dir(directory).map(|mut entries| entries.next().is_some()).unwrap_or(false)
            };
            if has_files(log_directory) || has_files(snapshot_directory) {
                return Err(ClusterIdError::MissingBesideData {
                    path,
                    log: log_directory.to_path_buf(),
                    snapshots: snapshot_directory.to_path_buf(),
                });
            }
            let mut bytes = [0u8; 8];
            use std::io::Read;
            std::fs::File::open("/dev/urandom")
                .and_then(|mut file| file.read_exact(&mut bytes))
                .map_err(ClusterIdError::Random)?;
            let id = u64::from_le_bytes(bytes) | 1;
            std::fs::write(&path, format!("{id:016x}\n")).map_err(|source| ClusterIdError::Io {
                path: path.clone(),
                operation: "write",
                source,
            })?;
            info!(cluster_id = format_args!("{id:016x}"), "new data directory");
            Ok(id)
        }
        Err(source) => Err(ClusterIdError::Io { path, operation: "read", source }),
    }
}

impl Log {
    /// Opens the log and the newest snapshot: the tree to start from and
    /// what the replica must recover.
    pub async fn open(config: &Config) -> Result<(Log, Recovered, Tree), LogError> {
        // glommio opens directories by absolute path only (a relative one
        // fails with EBADF), so the directories are resolved first.
        let absolute = |directory: &Path| -> Result<PathBuf, LogError> {
            std::fs::create_dir_all(directory)
                .and_then(|_| std::fs::canonicalize(directory))
                .map_err(|source| LogError::CreateDirectory { path: directory.to_path_buf(), source })
        };
        let data_directory = absolute(&config.data_dir)?;
        let snapshot_directory = absolute(&data_directory.join("snapshot"))?;
        let log_directory = absolute(&absolute(&config.data_log_dir)?.join("log"))?;
        let cluster_id =
            cluster_id(&data_directory, &log_directory, &snapshot_directory).map_err(LogError::ClusterId)?;
        let started = Instant::now();
        info!(data = %data_directory.display(), log = %log_directory.display(), "recovering: reading snapshots and the log");
        // No snapshot is being written yet: every temporary file is left by
        // a crash mid-snapshot and would otherwise stay for ever.
        for removed in snapshot::remove_temporary_files(&snapshot_directory).map_err(LogError::Snapshot)? {
            warn!(file = %removed.display(), "removed a snapshot left unfinished by a crash");
        }
        // A damaged newest snapshot falls back to an older one, as in
        // ZooKeeper; the log is kept back to the oldest retained snapshot,
        // and is checked below to reach back to the one used.
        let found =
            snapshot::read_latest_allowing_fallback(&snapshot_directory, cluster_id).map_err(LogError::Snapshot)?;
        // ZooKeeper's preAllocSize (KiB), rounded to whole 4 KiB blocks.
        let preallocation_bytes = match config.tunables.pre_alloc_size_kib {
            Some(kib) => kib.saturating_mul(1024).div_ceil(4096).max(2) * 4096,
            None => wal::PREALLOCATION_BYTES_DEFAULT,
        };
        // Zero-filled segments cost one write when a segment is made, and
        // spare every fdatasync the journal update that converting reserved
        // (unwritten) extents needs: measured +22% setData throughput and a
        // p99 of 0.85 ms instead of 1.9 ms on the project machine.
        let options = WalOptions {
            force_sync: config.force_sync,
            truncate_corrupt: config.truncate_corrupt,
            preallocation_zero_fill: true,
            // One O_DSYNC write per sync instead of a write and an
            // fdatasync: measured p50 setData at 10k/s 804 µs instead of
            // 1178 µs, closed-loop 33.3k/s instead of 23.4k/s on the
            // project machine (docs/ARCHITECTURE.md, "Durability").
            dsync_writes: true,
            preallocation_bytes,
            covered_by_snapshot: found
                .as_ref()
                .map(|(_, meta)| wal::SnapshotMarker { index: meta.index, term: meta.term }),
            ..WalOptions::default()
        };
        let (wal, recovered) = Wal::open(&log_directory, cluster_id, options).await?;
        for cut in &recovered.truncations {
            warn!(
                file = %cut.path.display(),
                offset = cut.offset,
                torn_tail = cut.torn_tail,
                records_dropped = cut.records_dropped,
                moved_to = ?cut.moved_to,
                reason = %cut.reason,
                "log truncated at recovery"
            );
        }
        let (tree, point) = match found {
            Some((tree, meta)) => (
                tree,
                Some(SnapshotPoint {
                    index: meta.index,
                    term: meta.term,
                    voters: meta.voters,
                    learners: meta.learners,
                }),
            ),
            None => (Tree::new(), None),
        };
        let snapshot_index = point.as_ref().map_or(0, |point| point.index);
        let log_reaches_back = recovered
            .entries
            .iter()
            .find(|entry| entry.index > snapshot_index)
            .is_some_and(|entry| entry.index == snapshot_index + 1);
        if let Some(marker) = recovered.snapshot {
            if marker.index > snapshot_index && !log_reaches_back {
                return Err(LogError::SnapshotMissing {
                    log: log_directory.clone(),
                    compacted_to: marker.index,
                    snapshots: snapshot_directory.clone(),
                    snapshot_index,
                });
            }
        }
        let mut entries: Vec<Entry> = Vec::with_capacity(recovered.entries.len());
        for stored in recovered.entries.into_iter().filter(|entry| entry.index > snapshot_index) {
            let mut entry = Entry { index: stored.index, term: stored.term, ..Entry::default() };
            entry.set_entry_type(match stored.entry_type {
                1 => EntryType::EntryConfChange,
                2 => EntryType::EntryConfChangeV2,
                _ => EntryType::EntryNormal,
            });
            entry.data = stored.data.into();
            entries.push(entry);
        }
        if let Some(first) = entries.first() {
            if first.index != snapshot_index + 1 {
                return Err(LogError::EntriesMissing {
                    log: log_directory.clone(),
                    first: first.index,
                    snapshot_index,
                });
            }
        }
        let mut hard_state = HardState::default();
        if let Some(stored) = recovered.hard_state {
            hard_state.term = stored.term;
            hard_state.vote = stored.vote;
            hard_state.commit = stored.commit;
        }
        info!(
            snapshot_index,
            log_entries = entries.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "log and snapshot read"
        );
        let log = Log { wal, cluster_id, snapshot_directory, sync_bytes: 0 };
        Ok((log, Recovered { snapshot: point, hard_state, entries }, tree))
    }

    pub fn append(&mut self, entries: &[Entry], hard_state: Option<&HardState>) -> Result<(), LogError> {
        let mut records: Vec<Record<'_>> = Vec::with_capacity(entries.len() + 1);
        for entry in entries {
            records.push(Record::Entry {
                index: entry.index,
                term: entry.term,
                entry_type: entry.get_entry_type() as u8,
                data: &entry.data,
            });
            self.sync_bytes += entry.data.len();
        }
        if let Some(state) = hard_state {
            records.push(Record::HardState(wal::HardState {
                term: state.term,
                vote: state.vote,
                commit: state.commit,
            }));
        }
        self.wal.append(&records).map_err(LogError::from)
    }

    /// Makes everything appended durable: one write, one fdatasync.
    /// Returns the bytes of entry data it covered.
    pub async fn sync(&mut self) -> Result<usize, LogError> {
        self.wal.sync().await.map_err(LogError::from)?;
        Ok(std::mem::take(&mut self.sync_bytes))
    }

    /// How long the latest sync took to make its records durable
    /// (ZooKeeper's fsynctime): its fdatasync, or with O_DSYNC segments
    /// its writes, which are durable when they complete.
    pub fn last_fsync(&self) -> std::time::Duration {
        let counters = self.wal.counters();
        if self.wal.dsync_writes() {
            counters.last_write_latency
        } else {
            counters.last_fdatasync_latency
        }
    }

    /// The latest sync's writes and, unless they were O_DSYNC, its
    /// fdatasync: the `log_write` and `fsync` write stages.
    pub fn last_write_and_fdatasync(&self) -> (std::time::Duration, Option<std::time::Duration>) {
        let counters = self.wal.counters();
        let fdatasync = (!self.wal.dsync_writes()).then_some(counters.last_fdatasync_latency);
        (counters.last_write_latency, fdatasync)
    }

    /// Records that the state up to `index` is in a durable snapshot, and
    /// drops log segments no retained snapshot needs.
    pub async fn snapshot_taken(&mut self, index: u64, term: u64, retain_count: usize) -> Result<(), LogError> {
        self.wal.append(&[Record::SnapshotMarker(wal::SnapshotMarker { index, term })]).map_err(LogError::from)?;
        // Keep the log from the oldest snapshot that purging keeps.
        let snapshots = snapshot::list(&self.snapshot_directory).map_err(LogError::SnapshotList)?;
        let keep_from = snapshots.len().saturating_sub(retain_count.max(snapshot::RETAIN_COUNT_MINIMUM));
        let deletions = match snapshots.get(keep_from) {
            Some((oldest_kept, _)) => self.wal.compact_later(*oldest_kept).await.map_err(LogError::from)?,
            None => None,
        };
        let Some(deletions) = deletions else {
            // Nothing to compact: the marker is made durable on its own.
            self.wal.sync().await.map_err(LogError::from)?;
            return Ok(());
        };
        // The marker is durable with what compaction keeps; the files go
        // on a thread of their own, so no write waits for their deletion.
        let spawned = std::thread::Builder::new().name("zoocore-log-compact".into()).spawn(move || deletions.run());
        if let Err(error) = spawned {
            warn!(%error, "no thread to delete compacted log segments; they stay until the next start");
        }
        Ok(())
    }

    pub fn snapshot_directory(&self) -> &Path {
        &self.snapshot_directory
    }

    pub fn cluster_id(&self) -> u64 {
        self.cluster_id
    }

    pub async fn close(self) -> Result<(), LogError> {
        self.wal.close().await.map_err(LogError::from)
    }
}
