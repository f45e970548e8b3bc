//! Moving between Apache ZooKeeper and zoocore: `import` reads a ZooKeeper
//! 3.5-3.9 data directory and writes a zoocore one; `export` writes a
//! ZooKeeper snapshot of a zoocore data directory, which ZooKeeper 3.8
//! loads, so trying zoocore is never a one-way bet.
//!
//! Shape: three layers, each testable alone. `zkformat` is ZooKeeper's
//! bytes (snapshot and transaction log, both ways), IO-free. `datatree` is
//! ZooKeeper's replay semantics on a small model of its DataTree, and the
//! conversions to and from zoocore's `Tree`. This file does the IO: it
//! finds the files, chooses the snapshot and the logs as ZooKeeper's
//! FileTxnSnapLog does, names every file in its errors, and writes zoocore's
//! data directory through the same `snapshot` and `wal` modules the server
//! recovers with.
//!
//! The zxid rule. zoocore's zxid is its raft log index. An import writes
//! its snapshot at index = the highest imported ZooKeeper zxid (epoch in the
//! high 32 bits and all) and a WAL whose snapshot marker is that index, so
//! the server's next zxids continue above every zxid a ZooKeeper client may
//! have seen: a client reconnecting with its old lastZxidSeen is accepted.
//!
//! Nothing is imported halfway: everything is read, checked and replayed in
//! memory before the first byte is written, and the target must hold no
//! zoocore data. A torn last record (a crash while ZooKeeper wrote it) is
//! where ZooKeeper itself stops reading; the import stops there too and the
//! report says so, with the file and offset.

pub mod datatree;
pub mod inspect;
pub mod zkformat;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::config::Config;
use crate::snapshot::{self, SnapshotMeta};
use crate::tree::{Tree, TxnHeader};
use crate::wal::{self, Record, Wal, WalOptions};
use datatree::DataTree;
use zkformat::{Compression, LogEnd};

/// The file in dataDir naming the cluster (see server/log.rs).
pub const CLUSTER_ID_FILE: &str = "cluster-id";
/// ZooKeeper keeps its files in this subdirectory of dataDir / dataLogDir.
pub const ZOOKEEPER_VERSION_DIRECTORY: &str = "version-2";
/// The raft term an imported snapshot is recorded at: the first term.
pub const IMPORT_TERM: u64 = 1;
/// ZooKeeper's bound on how many snapshots it tries, newest first, before
/// giving up (FileSnap: findNValidSnapshots(100)).
const SNAPSHOTS_TRIED_MAX: usize = 100;

/// Why an import, export or inspection failed. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("{}: cannot {operation}: {source}", path.display())]
    Io {
        path: PathBuf,
        operation: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is damaged at byte offset {offset}{}: {reason}", file.display(), if *.compressed { " of its decompressed stream" } else { "" })]
    Damaged { file: PathBuf, offset: u64, compressed: bool, reason: String },
    #[error("{}: {reason}", path.display())]
    Refused { path: PathBuf, reason: String },
    #[error("zoocore data: {0}")]
    Zoocore(String),
}

fn io_error<'a>(path: &'a Path, operation: &'static str) -> impl FnOnce(std::io::Error) -> MigrateError + 'a {
    move |source| MigrateError::Io { path: path.to_path_buf(), operation, source }
}

fn damaged(file: &Path, compression: Compression, fault: zkformat::Fault) -> MigrateError {
    MigrateError::Damaged {
        file: file.to_path_buf(),
        offset: fault.offset,
        compressed: compression != Compression::None,
        reason: fault.reason,
    }
}

/// A ZooKeeper file in a version-2 directory: its zxid and path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZkFile {
    pub zxid: i64,
    pub path: PathBuf,
}

/// `prefix.<hex zxid>[.suffix]` as ZooKeeper's Util.getZxidFromName reads it.
fn zxid_from_name(name: &str, prefix: &str) -> Option<i64> {
    let rest = name.strip_prefix(prefix)?.strip_prefix('.')?;
    let hex = rest.split('.').next()?;
    u64::from_str_radix(hex, 16).ok().map(|zxid| zxid as i64)
}

/// The directory holding ZooKeeper's files: `directory/version-2`, or
/// `directory` itself when it already is one.
pub fn version_directory(directory: &Path) -> PathBuf {
    let nested = directory.join(ZOOKEEPER_VERSION_DIRECTORY);
    if nested.is_dir() {
        nested
    } else {
        directory.to_path_buf()
    }
}

/// The `prefix.*` files of a version-2 directory, oldest zxid first.
pub fn list_files(directory: &Path, prefix: &str) -> Result<Vec<ZkFile>, MigrateError> {
    let mut found = Vec::new();
    for item in fs::read_dir(directory).map_err(io_error(directory, "list"))? {
        let item = item.map_err(io_error(directory, "list"))?;
        let name = item.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(zxid) = zxid_from_name(name, prefix) {
            found.push(ZkFile { zxid, path: item.path() });
        }
    }
    found.sort_by_key(|file| file.zxid);
    Ok(found)
}

/// Reads and checks one ZooKeeper snapshot file.
pub fn read_zookeeper_snapshot(path: &Path) -> Result<zkformat::Snapshot, MigrateError> {
    let bytes = fs::read(path).map_err(io_error(path, "read"))?;
    let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
    let compression = Compression::from_file_name(name);
    let stream = zkformat::decompress(&bytes, compression).map_err(|fault| MigrateError::Damaged {
        file: path.to_path_buf(),
        offset: fault.offset,
        compressed: false,
        reason: fault.reason,
    })?;
    zkformat::decode_snapshot(&stream).map_err(|fault| damaged(path, compression, fault))
}

/// Reads and checks one ZooKeeper transaction log file.
pub fn read_zookeeper_log(path: &Path) -> Result<zkformat::LogFile, MigrateError> {
    let bytes = fs::read(path).map_err(io_error(path, "read"))?;
    zkformat::decode_log(&bytes).map_err(|fault| damaged(path, Compression::None, fault))
}

/// What an import found and did.
#[derive(Debug, Clone, Default)]
pub struct ImportReport {
    pub snapshot: PathBuf,
    pub snapshot_zxid: i64,
    pub compression: &'static str,
    pub snapshot_digest: bool,
    /// Newer snapshots that were damaged, with the reason (skipped, as
    /// ZooKeeper skips them).
    pub skipped_snapshots: Vec<String>,
    pub logs: Vec<PathBuf>,
    pub transactions_replayed: u64,
    pub transactions_ignored: u64,
    /// A torn last record: file, offset, reason.
    pub torn: Option<(PathBuf, u64, String)>,
    pub last_zxid: i64,
    pub nodes: usize,
    pub sessions: usize,
    pub ephemerals: usize,
    pub cluster_id: u64,
    pub read_ms: u128,
    pub write_ms: u128,
    /// Where the read time went: snapshot decode, model, log replay, tree.
    pub phases_ms: [u128; 4],
}

impl std::fmt::Display for ImportReport {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for skipped in &self.skipped_snapshots {
            writeln!(formatter, "skipped damaged snapshot: {skipped}")?;
        }
        writeln!(
            formatter,
            "snapshot {} (zxid {:#x}, compression {}, digest {})",
            self.snapshot.display(),
            self.snapshot_zxid,
            self.compression,
            if self.snapshot_digest { "present" } else { "absent" }
        )?;
        for log in &self.logs {
            writeln!(formatter, "log {}", log.display())?;
        }
        if let Some((file, offset, reason)) = &self.torn {
            writeln!(
                formatter,
                "warning: {} ends with a partial record at byte offset {offset} ({reason}); \
                 ZooKeeper stops reading there and so did the import",
                file.display()
            )?;
        }
        writeln!(
            formatter,
            "replayed {} transactions after the snapshot ({} already in the fuzzy snapshot)",
            self.transactions_replayed, self.transactions_ignored
        )?;
        write!(
            formatter,
            "imported {} znodes, {} sessions, {} ephemerals at zxid {:#x} into cluster {:016x} (read {} ms, write {} ms); \
             zoocore continues from zxid {:#x} (read: snapshot {} ms, model {} ms, logs {} ms, tree {} ms)",
            self.nodes,
            self.sessions,
            self.ephemerals,
            self.last_zxid,
            self.cluster_id,
            self.read_ms,
            self.write_ms,
            self.last_zxid + 1,
            self.phases_ms[0],
            self.phases_ms[1],
            self.phases_ms[2],
            self.phases_ms[3]
        )
    }
}

/// Reads a ZooKeeper data directory into a zoocore tree, as ZooKeeper's
/// restore would: the newest valid snapshot, then every logged transaction
/// after its zxid.
pub fn read_zookeeper(data_dir: &Path, log_dir: Option<&Path>) -> Result<(Tree, ImportReport), MigrateError> {
    let started = Instant::now();
    let snapshot_directory = version_directory(data_dir);
    let log_directory = version_directory(log_dir.unwrap_or(data_dir));
    let mut report = ImportReport::default();
    let snapshots = list_files(&snapshot_directory, "snapshot")?;
    if snapshots.is_empty() {
        return Err(MigrateError::Refused {
            path: snapshot_directory,
            reason: "holds no snapshot.* file: not a ZooKeeper data directory (or ZooKeeper never took a snapshot)"
                .to_string(),
        });
    }
    let mut chosen = None;
    let mut first_error = None;
    for file in snapshots.iter().rev().take(SNAPSHOTS_TRIED_MAX) {
        match read_zookeeper_snapshot(&file.path) {
            Ok(snapshot) => {
                chosen = Some((file.clone(), snapshot));
                break;
            }
            Err(error @ MigrateError::Damaged { .. }) => {
                report.skipped_snapshots.push(error.to_string());
                first_error.get_or_insert(error);
            }
            Err(other) => return Err(other),
        }
    }
    let Some((file, snapshot)) = chosen else {
        return Err(first_error.expect("at least one snapshot was tried"));
    };
    let name = file.path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
    report.compression = Compression::from_file_name(name).name();
    report.snapshot_digest = snapshot.digest.is_some();
    report.snapshot_zxid = file.zxid;
    report.snapshot = file.path.clone();
    report.phases_ms[0] = started.elapsed().as_millis();
    let mut model = DataTree::from_snapshot(snapshot, file.zxid).map_err(|fault| MigrateError::Damaged {
        file: file.path.clone(),
        offset: 0,
        compressed: false,
        reason: fault.to_string(),
    })?;
    report.phases_ms[1] = started.elapsed().as_millis() - report.phases_ms[0];

    // The logs to read (FileTxnLog.getLogFiles): the newest one starting at
    // or before the snapshot's zxid, and all later ones.
    let logs = list_files(&log_directory, "log")?;
    // ZooKeeper takes a snapshot only after rolling its log, and its purge
    // keeps the log the newest snapshot needs: no log at all beside a
    // snapshot past zxid 0 means the logs are elsewhere.
    if logs.is_empty() && file.zxid > 0 {
        return Err(MigrateError::Refused {
            path: log_directory,
            reason: format!(
                "holds no log.* file, but the snapshot is at zxid {:#x}: the transactions after it would be lost; \
                 pass ZooKeeper's dataLogDir with --log-dir",
                file.zxid
            ),
        });
    }
    let first = logs.iter().rposition(|log| log.zxid <= file.zxid).unwrap_or(0);
    let mut expected_next = file.zxid + 1;
    for (position, log) in logs[first..].iter().enumerate() {
        let is_last = first + position == logs.len() - 1;
        let decoded = read_zookeeper_log(&log.path)?;
        report.logs.push(log.path.clone());
        for record in &decoded.records {
            let zxid = record.header.zxid;
            if zxid < expected_next {
                continue;
            }
            // Within an epoch zxids follow each other; a new epoch starts
            // its counter again.
            let same_epoch = zxid >> 32 == (expected_next - 1) >> 32;
            if zxid != expected_next && (same_epoch || zxid & 0xffff_ffff != 1 && zxid & 0xffff_ffff != 0) {
                return Err(MigrateError::Damaged {
                    file: log.path.clone(),
                    offset: record.offset,
                    compressed: false,
                    reason: format!(
                        "transaction zxid {zxid:#x} leaves a gap: the next expected was {expected_next:#x} (a log file is missing?)"
                    ),
                });
            }
            model.process_txn(&record.header, &record.txn);
            expected_next = zxid + 1;
        }
        if let LogEnd::Torn { offset, reason } = decoded.end {
            if !is_last {
                // ZooKeeper moves on to the next file; a gap shows above.
                report.torn.get_or_insert((log.path.clone(), offset, reason));
            } else {
                report.torn = Some((log.path.clone(), offset, reason));
            }
        }
    }
    report.transactions_replayed = model.counts.transactions;
    report.transactions_ignored = model.counts.ignored;
    report.last_zxid = model.last_zxid;
    report.sessions = model.sessions.len();
    report.phases_ms[2] = started.elapsed().as_millis() - report.phases_ms[0] - report.phases_ms[1];
    let mut tree = model.into_tree().map_err(|reason| MigrateError::Damaged {
        file: file.path.clone(),
        offset: 0,
        compressed: false,
        reason,
    })?;
    // Replay does not follow quota stats; ZooKeeper counts them afresh at
    // load (setupQuota), and so does the import.
    crate::tree::quota::recount_all(&mut tree);
    report.nodes = tree.node_count();
    report.ephemerals = tree.ephemeral_count();
    report.read_ms = started.elapsed().as_millis();
    report.phases_ms[3] = report.read_ms - report.phases_ms[0] - report.phases_ms[1] - report.phases_ms[2];
    Ok((tree, report))
}

/// Where zoocore keeps its files for `config` (server/log.rs).
struct ZoocoreDirectories {
    data: PathBuf,
    snapshots: PathBuf,
    log: PathBuf,
}

fn zoocore_directories(config: &Config) -> ZoocoreDirectories {
    ZoocoreDirectories {
        data: config.data_dir.clone(),
        snapshots: config.data_dir.join("snapshot"),
        log: config.data_log_dir.join("log"),
    }
}

fn holds_files(directory: &Path) -> bool {
    fs::read_dir(directory).map(|mut entries| entries.next().is_some()).unwrap_or(false)
}

/// Runs `body` on a glommio executor (the WAL writes through io_uring).
fn on_executor<T: Send + 'static>(
    body: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>> + Send + 'static,
) -> Result<T, MigrateError> {
    crate::server::check_memlock().map_err(MigrateError::Zoocore)?;
    glommio::LocalExecutorBuilder::default()
        .name("zoocore-migrate")
        .spawn(body)
        .map_err(|error| MigrateError::Zoocore(format!("cannot start an executor: {error}")))?
        .join()
        .map_err(|error| MigrateError::Zoocore(format!("executor failed: {error}")))
}

/// `zoocore import`: reads the ZooKeeper data directory and writes the
/// zoocore data directory `config` names, which must hold no zoocore data.
pub fn import(data_dir: &Path, log_dir: Option<&Path>, config: &Config) -> Result<ImportReport, MigrateError> {
    let directories = zoocore_directories(config);
    let cluster_file = directories.data.join(CLUSTER_ID_FILE);
    for occupied in [&cluster_file, &directories.snapshots, &directories.log] {
        if occupied.exists() && (occupied.is_file() || holds_files(occupied)) {
            return Err(MigrateError::Refused {
                path: occupied.clone(),
                reason: "already holds zoocore data; import only into an empty dataDir/dataLogDir".to_string(),
            });
        }
    }
    let (tree, mut report) = read_zookeeper(data_dir, log_dir)?;
    let started = Instant::now();
    let index = u64::try_from(report.last_zxid).map_err(|_| MigrateError::Refused {
        path: report.snapshot.clone(),
        reason: format!("the last zxid {} is negative", report.last_zxid),
    })?;
    report.cluster_id = write_zoocore(&directories, &tree, index)?;
    report.write_ms = started.elapsed().as_millis();
    Ok(report)
}

/// Writes a new zoocore data directory holding `tree` at raft index
/// `index`: the cluster id, the snapshot, and a WAL whose snapshot marker
/// and hard state say the log continues at `index + 1`.
fn write_zoocore(directories: &ZoocoreDirectories, tree: &Tree, index: u64) -> Result<u64, MigrateError> {
    for directory in [&directories.data, &directories.snapshots, &directories.log] {
        fs::create_dir_all(directory).map_err(io_error(directory, "create"))?;
    }
    let cluster_id = new_cluster_id()?;
    let cluster_file = directories.data.join(CLUSTER_ID_FILE);
    fs::write(&cluster_file, format!("{cluster_id:016x}\n")).map_err(io_error(&cluster_file, "write"))?;
    // A standalone (one-voter) group; no joint consensus.
    let meta = SnapshotMeta { index, term: IMPORT_TERM, cluster_id, voters: vec![1], ..SnapshotMeta::default() };
    snapshot::write(&directories.snapshots, tree, &meta).map_err(|error| MigrateError::Zoocore(error.to_string()))?;
    let log = canonical(&directories.log)?;
    on_executor(move || {
        Box::pin(async move {
            let (mut wal, _) = Wal::open(&log, cluster_id, WalOptions::default())
                .await
                .map_err(|error| MigrateError::Zoocore(error.to_string()))?;
            wal.append(&[
                Record::SnapshotMarker(wal::SnapshotMarker { index, term: IMPORT_TERM }),
                Record::HardState(wal::HardState { term: IMPORT_TERM, vote: 1, commit: index }),
            ])
            .map_err(|error| MigrateError::Zoocore(error.to_string()))?;
            wal.close().await.map_err(|error| MigrateError::Zoocore(error.to_string()))
        })
    })??;
    Ok(cluster_id)
}

/// glommio opens directories by absolute path only.
fn canonical(directory: &Path) -> Result<PathBuf, MigrateError> {
    fs::canonicalize(directory).map_err(io_error(directory, "resolve"))
}

fn new_cluster_id() -> Result<u64, MigrateError> {
    use std::io::Read;
    let mut bytes = [0u8; 8];
    let random = Path::new("/dev/urandom");
    fs::File::open(random).and_then(|mut file| file.read_exact(&mut bytes)).map_err(io_error(random, "read"))?;
    Ok(u64::from_le_bytes(bytes) | 1)
}

/// Reads the zoocore data directory `config` names: the newest snapshot and
/// every logged transaction after it, as the server's recovery would (a
/// standalone server commits everything its log holds). The WAL is opened
/// with the server's own rules, so a torn tail is cut as a start would.
pub fn read_zoocore(config: &Config) -> Result<Tree, MigrateError> {
    let directories = zoocore_directories(config);
    let cluster_file = directories.data.join(CLUSTER_ID_FILE);
    let text = fs::read_to_string(&cluster_file).map_err(io_error(&cluster_file, "read"))?;
    let cluster_id = u64::from_str_radix(text.trim(), 16).map_err(|_| MigrateError::Refused {
        path: cluster_file.clone(),
        reason: format!("not a cluster id: {:?}", text.trim()),
    })?;
    let found = snapshot::read_latest(&directories.snapshots, cluster_id)
        .map_err(|error| MigrateError::Zoocore(error.to_string()))?;
    let (mut tree, snapshot_index) = match found {
        Some((tree, meta)) => (tree, meta.index),
        None => (Tree::new(), 0),
    };
    fs::create_dir_all(&directories.log).map_err(io_error(&directories.log, "create"))?;
    let log = canonical(&directories.log)?;
    let entries = on_executor(move || {
        Box::pin(async move {
            let (wal, recovered) = Wal::open(&log, cluster_id, WalOptions::default())
                .await
                .map_err(|error| MigrateError::Zoocore(error.to_string()))?;
            wal.close().await.map_err(|error| MigrateError::Zoocore(error.to_string()))?;
            Ok::<_, MigrateError>(recovered.entries)
        })
    })??;
    for entry in entries.into_iter().filter(|entry| entry.index > snapshot_index) {
        if entry.entry_type != 0 || entry.data.is_empty() {
            continue;
        }
        let (header, txn) = crate::replica::codec::decode(entry.index as i64, &entry.data).map_err(|error| {
            MigrateError::Zoocore(format!("log entry {}: cannot decode its transaction: {error}", entry.index))
        })?;
        let header = TxnHeader { zxid: entry.index as i64, ..header };
        tree.apply(&header, &txn);
    }
    Ok(tree)
}

/// What an export wrote.
#[derive(Debug, Clone)]
pub struct ExportReport {
    pub snapshot: PathBuf,
    pub log: PathBuf,
    pub zxid: i64,
    pub nodes: usize,
    pub sessions: usize,
    pub bytes: u64,
    pub elapsed_ms: u128,
}

impl std::fmt::Display for ExportReport {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "exported {} znodes and {} sessions at zxid {:#x} to {} ({} bytes) and the empty log {} in {} ms",
            self.nodes,
            self.sessions,
            self.zxid,
            self.snapshot.display(),
            self.bytes,
            self.log.display(),
            self.elapsed_ms
        )
    }
}

/// `zoocore export`: writes `to/version-2/snapshot.<zxid>` (uncompressed,
/// no digest: ZooKeeper 3.5-3.9 all load that) and an empty
/// `log.<zxid + 1>` (in `log_to/version-2` when given: ZooKeeper refuses a
/// dataDir holding logs when its dataLogDir is elsewhere), so that
/// ZooKeeper started with dataDir = `to` serves the same tree. The
/// directories must hold no ZooKeeper files.
pub fn export(config: &Config, to: &Path, log_to: Option<&Path>) -> Result<ExportReport, MigrateError> {
    let started = Instant::now();
    let tree = read_zoocore(config)?;
    export_tree(&tree, to, log_to, Compression::None).map(|mut report| {
        report.elapsed_ms = started.elapsed().as_millis();
        report
    })
}

/// Writes `tree` as a ZooKeeper data directory under `to`.
pub fn export_tree(
    tree: &Tree,
    to: &Path,
    log_to: Option<&Path>,
    compression: Compression,
) -> Result<ExportReport, MigrateError> {
    let started = Instant::now();
    let directory = to.join(ZOOKEEPER_VERSION_DIRECTORY);
    let log_directory = log_to.unwrap_or(to).join(ZOOKEEPER_VERSION_DIRECTORY);
    for directory in [&directory, &log_directory] {
        fs::create_dir_all(directory).map_err(io_error(directory, "create"))?;
        if !list_files(directory, "snapshot")?.is_empty() || !list_files(directory, "log")?.is_empty() {
            return Err(MigrateError::Refused {
                path: directory.clone(),
                reason: "already holds ZooKeeper files; export only into an empty directory".to_string(),
            });
        }
    }
    let zxid = tree.last_zxid();
    let stream = zkformat::encode_snapshot(&datatree::snapshot_of(tree));
    let bytes = zkformat::compress(&stream, compression);
    let suffix = match compression {
        Compression::None => "",
        Compression::Gzip => ".gz",
        Compression::Snappy => ".snappy",
    };
    let snapshot_path = directory.join(format!("snapshot.{zxid:x}{suffix}"));
    let log_path = log_directory.join(format!("log.{:x}", zxid + 1));
    write_durably(&snapshot_path, &bytes)?;
    write_durably(&log_path, &zkformat::encode_log_header(0))?;
    for directory in [&directory, &log_directory] {
        fs::File::open(directory).and_then(|file| file.sync_all()).map_err(io_error(directory, "sync"))?;
    }
    Ok(ExportReport {
        snapshot: snapshot_path,
        log: log_path,
        zxid,
        nodes: tree.node_count(),
        sessions: tree.session_count(),
        bytes: bytes.len() as u64,
        elapsed_ms: started.elapsed().as_millis(),
    })
}

fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), MigrateError> {
    use std::io::Write;
    let mut file = fs::File::create(path).map_err(io_error(path, "create"))?;
    file.write_all(bytes).map_err(io_error(path, "write"))?;
    file.sync_all().map_err(io_error(path, "sync"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zxids_come_from_file_names_as_zookeeper_reads_them() {
        assert_eq!(zxid_from_name("snapshot.100000005", "snapshot"), Some(0x1_0000_0005));
        assert_eq!(zxid_from_name("snapshot.1a.gz", "snapshot"), Some(0x1a));
        assert_eq!(zxid_from_name("snapshot.1a.snappy", "snapshot"), Some(0x1a));
        assert_eq!(zxid_from_name("log.0", "log"), Some(0));
        assert_eq!(zxid_from_name("log.zz", "log"), None);
        assert_eq!(zxid_from_name("logs.1", "log"), None);
    }
}
