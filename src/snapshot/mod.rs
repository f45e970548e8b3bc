//! Snapshots: the whole replicated state (every znode, every session) at one
//! applied log index, so that recovery reads the newest snapshot and replays
//! only the log after it, and the log before it can be compacted.
//!
//! Why it is shaped so:
//!
//! - **Taking one is free; writing one is off every hot path.** The tree is
//!   persistent, so the broadcast core hands over an `Arc<Tree>` of the
//!   version at the index (a pointer copy) and goes on applying writes to its
//!   own copy. `spawn_write` serializes that version on a plain std thread
//!   (not a glommio executor: it must not share a core's queue with
//!   connections) that lowers its own priority, so shards keep serving reads
//!   and the broadcast core keeps committing while it runs.
//! - **rkyv, written straight to the file.** The payload types in
//!   `format.rs` borrow the tree's paths and data, and the serializer writes
//!   through a checksumming buffer into the temporary file, so a snapshot
//!   never holds a second copy of the data in memory: besides the tree it
//!   needs one small record per node. Reading validates the whole payload
//!   with bytecheck, then builds nodes from the archived bytes in place
//!   (no intermediate owned structure). The layout is pinned by rkyv's
//!   format features (little endian, 64-bit relative offsets, aligned), so a
//!   file is the same on every machine, and snapshots larger than 4 GiB work.
//! - **A fixed header in front, checksummed apart from the payload.** Magic,
//!   version, cluster id, index, term, payload length and the payload's
//!   CRC32C sit at fixed offsets with their own CRC32C, so a reader learns
//!   which cluster and which index a file holds without reading the payload,
//!   and a flipped bit in the header is reported as damage, never misread as
//!   a foreign cluster or another index. docs/formats/snapshot.md gives every
//!   byte.
//! - **Atomic and durable.** The file is written under a temporary name,
//!   fsynced, renamed to `snapshot.<index as 16 hex digits>`, and the
//!   directory is fsynced, so a crash leaves either the whole new snapshot or
//!   none; a leftover temporary file is ignored by readers and removed at
//!   start (`remove_temporary_files`) and by `purge`.
//! - **A damaged snapshot falls back to an older one, as ZooKeeper's does.**
//!   `read_latest_allowing_fallback` skips a damaged snapshot with a warning
//!   naming file and offset and reads the next older one. That is safe only
//!   because the log is kept from the oldest retained snapshot on (`purge`
//!   reports it, the server compacts no further), and the server checks that
//!   the log really reaches back to the snapshot it fell back to before it
//!   starts: if it does not, it refuses rather than start from older state.
//!   `read_latest` is the strict form (the newest or an error). No input
//!   file, however broken, makes this module panic: every length is checked
//!   against the file's size before it is trusted.
//! - **Spread out, as ZooKeeper does.** `next_snapshot_after` is
//!   SyncRequestProcessor's randomised threshold, IO-free: the caller brings
//!   the random number, so every server of an ensemble snapshots at a
//!   different moment and a simulator can replay the choice.

mod format;

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use rkyv::rancor;
use rkyv::util::AlignedVec;

use crate::proto::{Acl, Id};
use crate::tree::{NodeFields, RestoredNode, Session, Tree};
use format::{AclRecord, ArchivedNodeRecord, ArchivedPayloadRecord, Header, NodeEntry, PayloadRecord, SessionRecord};

pub use format::{FORMAT_VERSION, HEADER_BYTES, MAGIC};

/// File names are this prefix and the index as 16 lowercase hex digits.
pub const FILE_PREFIX: &str = "snapshot.";
/// A snapshot being written carries this suffix until it is renamed.
pub const TEMPORARY_SUFFIX: &str = ".tmp";
/// ZooKeeper's lower bound for autopurge.snapRetainCount.
pub const RETAIN_COUNT_MINIMUM: usize = 3;
/// What a snapshot records besides the tree: where in the raft log it was
/// taken and the configuration at that point (raft-rs `ConfState`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotMeta {
    /// The raft log index of the last entry the tree holds (the zxid).
    pub index: u64,
    /// The term of that entry.
    pub term: u64,
    /// The cluster this state belongs to; a reader refuses any other.
    pub cluster_id: u64,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    /// Joint consensus only: the outgoing voters. Empty otherwise.
    pub voters_outgoing: Vec<u64>,
    /// Joint consensus only: learners that become voters on leaving it.
    pub learners_next: Vec<u64>,
    /// Joint consensus only: whether raft leaves the joint state by itself.
    pub auto_leave: bool,
}

/// Why a snapshot could not be written or read. Every variant names the
/// file (or directory) concerned.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot {}: cannot {operation}: {source}", path.display())]
    Io {
        path: PathBuf,
        operation: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("snapshot {} is damaged at byte offset {offset_bytes}: {reason}", file.display())]
    Damaged { file: PathBuf, offset_bytes: u64, reason: String },
    #[error(
        "snapshot {} belongs to cluster {found:#018x}, not to this server's cluster {expected:#018x}",
        file.display()
    )]
    ForeignCluster { file: PathBuf, expected: u64, found: u64 },
    #[error("snapshot {}: cannot serialize the tree: {reason}", file.display())]
    Serialize { file: PathBuf, reason: String },
}

/// What `purge` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Purged {
    /// Snapshots (and leftover temporary files) deleted, oldest first.
    pub deleted: Vec<PathBuf>,
    /// The index of the oldest snapshot kept: the log must be kept from
    /// there on (so that a fallback to that snapshot can replay it); entries
    /// before it may be compacted. None if the directory has no snapshot.
    pub oldest_kept_index: Option<u64>,
}

/// `snapshot.<index as 16 lowercase hex digits>`.
pub fn file_name(index: u64) -> String {
    format!("{FILE_PREFIX}{index:016x}")
}

/// The index a snapshot file name carries, or None for any other name
/// (temporary files included).
pub fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(FILE_PREFIX)?;
    if digits.len() != 16 || !digits.bytes().all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte)) {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

fn parse_temporary_file_name(name: &str) -> Option<u64> {
    parse_file_name(name.strip_suffix(TEMPORARY_SUFFIX)?)
}

/// The log count after which the next snapshot is due, as ZooKeeper's
/// SyncRequestProcessor computes it: a snapshot is taken once more than
/// `snapshot_count / 2 + roll` entries were logged since the last one, with
/// `roll` uniform in `[0, snapshot_count / 2)`; here `roll` is
/// `random % (snapshot_count / 2)`. `snapshot_count` is zookeeper.snapCount
/// (ZooKeeper's default 100000), raised to 2 as ZooKeeper raises it. Draw a
/// new `random` after every snapshot.
pub fn next_snapshot_after(snapshot_count: u64, random: u64) -> u64 {
    let half = snapshot_count.max(2) / 2;
    half + random % half
}

/// The size counterpart (zookeeper.snapSizeLimitInKb, in bytes here): a
/// snapshot is also due once the log since the last one exceeds the
/// returned byte count. None when the limit is zero (disabled), as in
/// ZooKeeper.
pub fn next_snapshot_after_bytes(snapshot_size_limit_bytes: u64, random: u64) -> Option<u64> {
    let half = snapshot_size_limit_bytes / 2;
    if half == 0 {
        return None;
    }
    Some(half + random % half)
}

/// Writes `tree` as the snapshot at `meta.index` into `directory` (which
/// must exist) and returns the file's path once it is durable: written to a
/// temporary name, fsynced, renamed, directory fsynced. A snapshot already
/// at that index is replaced.
pub fn write(directory: &Path, tree: &Tree, meta: &SnapshotMeta) -> Result<PathBuf, SnapshotError> {
    let started = Instant::now();
    let final_path = directory.join(file_name(meta.index));
    let temporary_path = directory.join(format!("{}{TEMPORARY_SUFFIX}", file_name(meta.index)));
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temporary_path)
        .map_err(io_error(&temporary_path, "create the temporary file"))?;
    let header = match write_contents(file, &temporary_path, tree, meta) {
        Ok(header) => header,
        Err(error) => {
            // Best effort: a leftover would be ignored and later purged.
            let _ = fs::remove_file(&temporary_path);
            return Err(error);
        }
    };
    fs::rename(&temporary_path, &final_path).map_err(io_error(&final_path, "rename the temporary file"))?;
    sync_directory(directory)?;
    tracing::info!(
        file = %final_path.display(),
        nodes = tree.node_count(),
        sessions = tree.session_count(),
        bytes = HEADER_BYTES as u64 + header.payload_bytes,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "snapshot written"
    );
    Ok(final_path)
}

/// `write` on a new std thread named `zoocore-snapshot`, at a lowered
/// priority (nice 10), so the caller's core goes on at once. The clone of
/// the tree is free (persistent structure). An error only if the thread
/// cannot be started; the handle yields the write's own result.
pub fn spawn_write(directory: PathBuf, tree: Arc<Tree>, meta: SnapshotMeta) -> Result<WriteHandle, SnapshotError> {
    let directory_for_error = directory.clone();
    let written = tree.clone();
    let thread = std::thread::Builder::new()
        .name("zoocore-snapshot".to_string())
        .spawn(move || {
            lower_thread_priority();
            write(&directory, &written, &meta)
        })
        .map_err(io_error(&directory_for_error, "start the snapshot thread"))?;
    Ok(WriteHandle { thread, tree })
}

/// A snapshot being written by `spawn_write`'s thread.
///
/// It holds a second reference to the tree being written, so that the last
/// reference to that version goes where the handle is joined, not on the
/// snapshot thread: every block that writes replaced while the snapshot
/// was written is freed by the thread that made it (the broadcast core),
/// whose allocator reuses the memory at once, whatever it does with frees
/// from other threads (see `server::shared::Retired`).
#[derive(Debug)]
pub struct WriteHandle {
    thread: JoinHandle<Result<PathBuf, SnapshotError>>,
    tree: Arc<Tree>,
}

impl WriteHandle {
    /// The write is over (the thread has let go of its reference).
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// The write's result (`Err` if the thread panicked), once it is over;
    /// the tree is dropped here, after the thread's own reference.
    pub fn join(self) -> std::thread::Result<Result<PathBuf, SnapshotError>> {
        let WriteHandle { thread, tree } = self;
        let result = thread.join();
        drop(tree);
        result
    }

    /// The version being written.
    pub fn tree(&self) -> &Arc<Tree> {
        &self.tree
    }
}

/// The snapshots in `directory`, oldest first, by the index in their names.
/// Temporary files and other names are left out. A missing directory has
/// none.
pub fn list(directory: &Path) -> Result<Vec<(u64, PathBuf)>, SnapshotError> {
    let mut found: Vec<(u64, PathBuf)> =
        list_names(directory)?.into_iter().filter_map(|(name, path)| Some((parse_file_name(&name)?, path))).collect();
    found.sort();
    Ok(found)
}

/// The newest snapshot in `directory` and its meta, or None if there is
/// none. The newest file must validate (header, CRC32C, bytecheck, restore)
/// and belong to `cluster_id`; otherwise this is an error naming the file
/// and offset, and no older snapshot is tried: see the module essay.
pub fn read_latest(directory: &Path, cluster_id: u64) -> Result<Option<(Tree, SnapshotMeta)>, SnapshotError> {
    match list(directory)?.pop() {
        Some((index, path)) => read_file(&path, cluster_id, Some(index)).map(Some),
        None => Ok(None),
    }
}

/// Like `read_latest`, but a damaged snapshot is skipped with a warning and
/// the next older one tried (the operator's explicit choice). A foreign
/// cluster or an IO error still stops it. If every snapshot is damaged, the
/// newest one's error is returned: starting empty would lose the state.
pub fn read_latest_allowing_fallback(
    directory: &Path,
    cluster_id: u64,
) -> Result<Option<(Tree, SnapshotMeta)>, SnapshotError> {
    let mut first_damage: Option<SnapshotError> = None;
    for (index, path) in list(directory)?.into_iter().rev() {
        match read_file(&path, cluster_id, Some(index)) {
            Ok(found) => return Ok(Some(found)),
            Err(damage @ SnapshotError::Damaged { .. }) => {
                tracing::warn!("{damage}; falling back to an older snapshot");
                first_damage.get_or_insert(damage);
            }
            Err(other) => return Err(other),
        }
    }
    match first_damage {
        Some(damage) => Err(damage),
        None => Ok(None),
    }
}

/// Reads one snapshot file. `expected_index`, when given (from the file
/// name), must match the header's index.
pub fn read_file(
    file: &Path,
    cluster_id: u64,
    expected_index: Option<u64>,
) -> Result<(Tree, SnapshotMeta), SnapshotError> {
    let damaged =
        |offset_bytes: u64, reason: String| SnapshotError::Damaged { file: file.to_path_buf(), offset_bytes, reason };
    let mut handle = File::open(file).map_err(io_error(file, "open"))?;
    let file_bytes = handle.metadata().map_err(io_error(file, "read the metadata of"))?.len();
    if file_bytes < HEADER_BYTES as u64 {
        return Err(damaged(
            file_bytes,
            format!("the file has {file_bytes} bytes, fewer than the {HEADER_BYTES}-byte header"),
        ));
    }
    let mut header_bytes = [0u8; HEADER_BYTES];
    handle.read_exact(&mut header_bytes).map_err(io_error(file, "read the header of"))?;
    let header = Header::decode(&header_bytes).map_err(|fault| damaged(fault.offset_bytes, fault.reason))?;
    if let Some(expected) = expected_index {
        if header.index != expected {
            return Err(damaged(
                format::INDEX_OFFSET as u64,
                format!("the header says index {} but the file name says {expected}", header.index),
            ));
        }
    }
    if header.cluster_id != cluster_id {
        return Err(SnapshotError::ForeignCluster {
            file: file.to_path_buf(),
            expected: cluster_id,
            found: header.cluster_id,
        });
    }
    let available = file_bytes - HEADER_BYTES as u64;
    if header.payload_bytes > available {
        return Err(damaged(
            file_bytes,
            format!(
                "truncated: the header promises {} payload bytes but the file ends after {available}",
                header.payload_bytes
            ),
        ));
    }
    if header.payload_bytes < available {
        return Err(damaged(
            HEADER_BYTES as u64 + header.payload_bytes,
            format!("{} bytes follow the end of the payload", available - header.payload_bytes),
        ));
    }
    // Bounded by the file's size just above, so no length from the file can
    // make this allocate more than the file holds.
    let payload_length = usize::try_from(header.payload_bytes)
        .map_err(|_| damaged(format::PAYLOAD_LENGTH_OFFSET as u64, "payload too large for memory".to_string()))?;
    let mut payload = AlignedVec::<16>::with_capacity(payload_length);
    payload.resize(payload_length, 0);
    handle.read_exact(&mut payload).map_err(io_error(file, "read the payload of"))?;
    let computed = crc32c::crc32c(&payload);
    if computed != header.payload_crc32c {
        return Err(damaged(
            HEADER_BYTES as u64,
            format!(
                "payload CRC32C is {computed:#010x} but the header says {:#010x}: a byte in {} .. {} is damaged",
                header.payload_crc32c, HEADER_BYTES, file_bytes
            ),
        ));
    }
    let compressed = header.version != format::FORMAT_VERSION_UNCOMPRESSED;
    let payload = if compressed { decompress(&payload, header.raw_payload_bytes, &damaged)? } else { payload };
    // Past decompression, offsets count bytes of the decompressed payload:
    // a version 2 file says so and points at the payload's start.
    let damaged_in_payload = |offset_bytes: u64, reason: String| {
        if compressed {
            let within = offset_bytes - HEADER_BYTES as u64;
            damaged(HEADER_BYTES as u64, format!("{reason} (at byte {within} of the decompressed payload)"))
        } else {
            damaged(offset_bytes, reason)
        }
    };
    let archived = rkyv::access::<ArchivedPayloadRecord, rancor::Error>(&payload)
        .map_err(|error| damaged(HEADER_BYTES as u64, format!("payload fails rkyv validation: {error}")))?;
    let tree = restore_tree(archived, &payload, &damaged_in_payload)?;
    let meta = SnapshotMeta {
        index: header.index,
        term: header.term,
        cluster_id: header.cluster_id,
        voters: archived.voters.iter().map(|id| id.to_native()).collect(),
        learners: archived.learners.iter().map(|id| id.to_native()).collect(),
        voters_outgoing: archived.voters_outgoing.iter().map(|id| id.to_native()).collect(),
        learners_next: archived.learners_next.iter().map(|id| id.to_native()).collect(),
        auto_leave: archived.auto_leave,
    };
    Ok((tree, meta))
}

/// A version 2 payload, decompressed chunk by chunk into `raw_bytes`
/// (the header's figure, checked against the file's size before anything
/// is allocated, and against the chunks at the end).
fn decompress(
    payload: &[u8],
    raw_bytes: u64,
    damaged: &dyn Fn(u64, String) -> SnapshotError,
) -> Result<AlignedVec<16>, SnapshotError> {
    use format::{CHUNK_HEADER_BYTES, CHUNK_RAW_BYTES_MAX, LZ4_RATIO_MAX, RAW_PAYLOAD_LENGTH_OFFSET};
    let raw_length_fault = |reason: String| damaged(RAW_PAYLOAD_LENGTH_OFFSET as u64, reason);
    if raw_bytes > (payload.len() as u64).saturating_mul(LZ4_RATIO_MAX) {
        return Err(raw_length_fault(format!(
            "the header says {raw_bytes} bytes decompressed, more than LZ4 can make of {} bytes",
            payload.len()
        )));
    }
    let mut raw = AlignedVec::<16>::with_capacity(raw_bytes as usize);
    let mut at = 0usize;
    while at < payload.len() {
        let chunk_offset = (HEADER_BYTES + at) as u64;
        let fault = |reason: String| damaged(chunk_offset, reason);
        if payload.len() - at < CHUNK_HEADER_BYTES {
            return Err(fault(format!("a chunk header is cut short after {} bytes", payload.len() - at)));
        }
        let field =
            |offset: usize| u32::from_le_bytes(payload[offset..offset + 4].try_into().expect("4 bytes")) as usize;
        let (chunk_raw, chunk_stored) = (field(at), field(at + 4));
        let body = at + CHUNK_HEADER_BYTES;
        if chunk_raw == 0 || chunk_raw > CHUNK_RAW_BYTES_MAX {
            return Err(fault(format!("a chunk of {chunk_raw} bytes, outside 1..={CHUNK_RAW_BYTES_MAX}")));
        }
        if chunk_stored > payload.len() - body {
            return Err(fault(format!("a chunk of {chunk_stored} stored bytes runs past the payload's end")));
        }
        if (raw.len() + chunk_raw) as u64 > raw_bytes {
            return Err(fault(format!("the chunks hold more than the header's {raw_bytes} decompressed bytes")));
        }
        let start = raw.len();
        raw.resize(start + chunk_raw, 0);
        match lz4_flex::block::decompress_into(&payload[body..body + chunk_stored], &mut raw[start..]) {
            Ok(made) if made == chunk_raw => {}
            Ok(made) => return Err(fault(format!("a chunk decompresses to {made} bytes, not {chunk_raw}"))),
            Err(error) => return Err(fault(format!("a chunk does not decompress: {error}"))),
        }
        at = body + chunk_stored;
    }
    if raw.len() as u64 != raw_bytes {
        return Err(raw_length_fault(format!(
            "the chunks hold {} decompressed bytes, the header says {raw_bytes}",
            raw.len()
        )));
    }
    Ok(raw)
}

/// Removes every `snapshot.<index>.tmp` in `directory`: called at start,
/// before any snapshot is written, so each one is left by a write that a
/// crash interrupted and will never be finished. Returns what was removed.
pub fn remove_temporary_files(directory: &Path) -> Result<Vec<PathBuf>, SnapshotError> {
    let mut removed = Vec::new();
    for (name, path) in list_names(directory)? {
        if parse_temporary_file_name(&name).is_none() {
            continue;
        }
        match fs::remove_file(&path) {
            Ok(()) => removed.push(path),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(io_error(&path, "delete")(error)),
        }
    }
    if !removed.is_empty() {
        sync_directory(directory)?;
    }
    Ok(removed)
}

/// Deletes all but the newest `retain_count` snapshots (at least
/// `RETAIN_COUNT_MINIMUM`, as ZooKeeper's autopurge raises smaller counts),
/// and temporary files left by interrupted writes. Snapshots are chosen by
/// their names alone, without reading them.
pub fn purge(directory: &Path, retain_count: usize) -> Result<Purged, SnapshotError> {
    if retain_count < RETAIN_COUNT_MINIMUM {
        tracing::warn!("snapshot retain count {retain_count} raised to the minimum {RETAIN_COUNT_MINIMUM}");
    }
    let retain_count = retain_count.max(RETAIN_COUNT_MINIMUM);
    let names = list_names(directory)?;
    let mut snapshots: Vec<(u64, PathBuf)> =
        names.iter().filter_map(|(name, path)| Some((parse_file_name(name)?, path.clone()))).collect();
    snapshots.sort();
    let newest_index = snapshots.last().map(|(index, _)| *index);
    let split = snapshots.len().saturating_sub(retain_count);
    let mut doomed: Vec<(u64, PathBuf)> = snapshots[..split].to_vec();
    // A temporary file at or below the newest complete snapshot's index is
    // left from a crash; one above it may be a write still under way.
    doomed.extend(names.iter().filter_map(|(name, path)| {
        let index = parse_temporary_file_name(name)?;
        (Some(index) <= newest_index).then(|| (index, path.clone()))
    }));
    doomed.sort();
    let mut deleted = Vec::with_capacity(doomed.len());
    for (_, path) in doomed {
        match fs::remove_file(&path) {
            Ok(()) => deleted.push(path),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(io_error(&path, "delete")(error)),
        }
    }
    Ok(Purged { deleted, oldest_kept_index: snapshots.get(split).map(|(index, _)| *index) })
}

fn io_error<'a>(path: &'a Path, operation: &'static str) -> impl FnOnce(io::Error) -> SnapshotError + 'a {
    move |source| SnapshotError::Io { path: path.to_path_buf(), operation, source }
}

fn list_names(directory: &Path) -> Result<Vec<(String, PathBuf)>, SnapshotError> {
    let entries = match fs::read_dir(directory) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(io_error(directory, "list the directory")(error)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_error(directory, "list the directory"))?;
        if let Some(name) = entry.file_name().to_str() {
            names.push((name.to_string(), entry.path()));
        }
    }
    Ok(names)
}

fn sync_directory(directory: &Path) -> Result<(), SnapshotError> {
    File::open(directory).and_then(|handle| handle.sync_all()).map_err(io_error(directory, "fsync the directory"))
}

/// Nice 10 for the calling thread only (on Linux, setpriority with a thread
/// id changes that thread). Failure is harmless: the write just competes
/// at normal priority.
fn lower_thread_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid and setpriority take and return plain integers.
    unsafe {
        let thread_id = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, thread_id as libc::id_t, 10);
    }
}

fn write_contents(file: File, path: &Path, tree: &Tree, meta: &SnapshotMeta) -> Result<Header, SnapshotError> {
    let mut writer = CompressingWriter::new(file);
    // The header's place; it is written last, when the payload's length and
    // checksum are known.
    writer.file.write_all(&[0u8; HEADER_BYTES]).map_err(io_error(path, "write"))?;
    let record = payload_record(tree, meta);
    let serialized = rkyv::api::high::to_bytes_in::<_, rancor::Error>(&record, &mut writer);
    if let Err(error) = serialized {
        return Err(match writer.error.take() {
            Some(source) => SnapshotError::Io { path: path.to_path_buf(), operation: "write", source },
            None => SnapshotError::Serialize { file: path.to_path_buf(), reason: error.to_string() },
        });
    }
    writer.flush().map_err(io_error(path, "write"))?;
    let header = Header {
        version: format::FORMAT_VERSION,
        cluster_id: meta.cluster_id,
        index: meta.index,
        term: meta.term,
        payload_bytes: writer.file_bytes as u64,
        payload_crc32c: writer.crc32c,
        raw_payload_bytes: writer.position_bytes as u64,
    };
    let mut file = writer.file;
    file.seek(SeekFrom::Start(0)).map_err(io_error(path, "seek in"))?;
    file.write_all(&header.encode()).map_err(io_error(path, "write the header of"))?;
    file.sync_all().map_err(io_error(path, "fsync"))?;
    Ok(header)
}

/// The borrowed records of a tree. Nodes are sorted by path length, then
/// path: the order `Tree::restore` wants (parents first), so its sort finds
/// them already in order, and the same tree always gives the same bytes.
/// Equal ACL lists are stored once, as ZooKeeper's snapshots do.
fn payload_record<'a>(tree: &'a Tree, meta: &'a SnapshotMeta) -> PayloadRecord<'a> {
    let mut nodes: Vec<NodeEntry<'a>> = tree.paths().map(|(_, node)| NodeEntry { node, acl_list: 0 }).collect();
    nodes.sort_unstable_by(|left, right| {
        let (left, right) = (left.node.path(), right.node.path());
        left.len().cmp(&right.len()).then_with(|| left.cmp(right))
    });
    // Lists are numbered in the nodes' order, so equal trees give equal bytes.
    let mut acl_positions: HashMap<&'a [Acl], u32> = HashMap::new();
    let mut acl_lists: Vec<Vec<AclRecord<'a>>> = Vec::new();
    for entry in &mut nodes {
        let acl: &'a [Acl] = entry.node.acl();
        entry.acl_list = *acl_positions.entry(acl).or_insert_with(|| {
            acl_lists.push(
                acl.iter()
                    .map(|entry| AclRecord {
                        scheme: entry.id.scheme.as_bytes(),
                        id: entry.id.id.as_bytes(),
                        perms: entry.perms,
                    })
                    .collect(),
            );
            (acl_lists.len() - 1) as u32
        });
    }
    let mut sessions: Vec<SessionRecord> = tree
        .sessions()
        .map(|session| SessionRecord { id: session.id, timeout_ms: session.timeout_ms, password: session.password })
        .collect();
    sessions.sort_unstable_by_key(|session| session.id);
    PayloadRecord {
        last_zxid: tree.last_zxid(),
        voters: &meta.voters,
        learners: &meta.learners,
        voters_outgoing: &meta.voters_outgoing,
        learners_next: &meta.learners_next,
        acl_lists,
        nodes,
        sessions,
        auto_leave: meta.auto_leave,
    }
}

/// Builds the tree from a validated payload. Anything bytecheck cannot know
/// (UTF-8 of names, ACL positions, the tree's shape) is checked here and
/// reported with the offset of the record at fault.
fn restore_tree(
    archived: &ArchivedPayloadRecord,
    payload: &[u8],
    damaged: &dyn Fn(u64, String) -> SnapshotError,
) -> Result<Tree, SnapshotError> {
    let offset_of = |record: *const u8| HEADER_BYTES as u64 + (record as usize - payload.as_ptr() as usize) as u64;
    let mut acl_lists: Vec<Arc<[Acl]>> = Vec::with_capacity(archived.acl_lists.len());
    for list in archived.acl_lists.iter() {
        let mut entries = Vec::with_capacity(list.len());
        for entry in list.iter() {
            let text = |bytes: &[u8]| {
                std::str::from_utf8(bytes).map(str::to_string).map_err(|_| {
                    damaged(offset_of((entry as *const format::ArchivedAclRecord).cast()), "ACL id is not UTF-8".into())
                })
            };
            entries.push(Acl {
                perms: entry.perms.to_native(),
                id: Id { scheme: text(entry.scheme.as_slice())?, id: text(entry.id.as_slice())? },
            });
        }
        acl_lists.push(Arc::from(entries));
    }
    let mut nodes = Vec::with_capacity(archived.nodes.len());
    for record in archived.nodes.iter() {
        let offset = || offset_of((record as *const ArchivedNodeRecord).cast());
        let path = std::str::from_utf8(record.path.as_slice())
            .map_err(|_| damaged(offset(), "a node's path is not UTF-8".to_string()))?;
        let acl_list = record.acl_list.to_native();
        let acl = acl_lists.get(acl_list as usize).ok_or_else(|| {
            damaged(offset(), format!("node {path:?} names ACL list {acl_list} of {}", acl_lists.len()))
        })?;
        nodes.push(RestoredNode {
            path,
            data: record.data.as_ref().map(|data| data.as_slice()),
            acl,
            fields: NodeFields {
                czxid: record.czxid.to_native(),
                mzxid: record.mzxid.to_native(),
                pzxid: record.pzxid.to_native(),
                ctime_ms: record.ctime_ms.to_native(),
                mtime_ms: record.mtime_ms.to_native(),
                version: record.version.to_native(),
                cversion: record.cversion.to_native(),
                aversion: record.aversion.to_native(),
                ephemeral_owner: record.ephemeral_owner.to_native(),
                // Counted again by `Tree::restore`.
                num_children: 0,
            },
        });
    }
    let sessions = archived.sessions.iter().map(|session| Session {
        id: session.id.to_native(),
        timeout_ms: session.timeout_ms.to_native(),
        password: session.password,
    });
    Tree::restore(nodes, sessions, archived.last_zxid.to_native())
        .map_err(|reason| damaged(HEADER_BYTES as u64, format!("the nodes do not form a tree: {reason}")))
}

/// rkyv's output sink: gathers up to `CHUNK_RAW_BYTES_MAX` raw bytes,
/// compresses them into one chunk, checksums the chunk with CRC32C and
/// writes it to the file. rkyv's positions count raw bytes. An IO error is
/// kept whole here (rkyv's own error type would flatten it) so `write` can
/// report it as IO.
struct CompressingWriter {
    file: File,
    buffer: Vec<u8>,
    /// Raw payload bytes so far: rkyv's positions.
    position_bytes: usize,
    /// Payload bytes in the file so far (chunk headers and blocks).
    file_bytes: usize,
    /// Of the payload bytes in the file.
    crc32c: u32,
    error: Option<io::Error>,
}

impl CompressingWriter {
    fn new(file: File) -> CompressingWriter {
        CompressingWriter {
            file,
            buffer: Vec::with_capacity(format::CHUNK_RAW_BYTES_MAX),
            position_bytes: 0,
            file_bytes: 0,
            crc32c: 0,
            error: None,
        }
    }

    /// Writes the buffered bytes as one chunk.
    fn flush(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        debug_assert!(self.buffer.len() <= format::CHUNK_RAW_BYTES_MAX);
        let block = lz4_flex::block::compress(&self.buffer);
        let mut chunk = Vec::with_capacity(format::CHUNK_HEADER_BYTES + block.len());
        chunk.extend_from_slice(&(self.buffer.len() as u32).to_le_bytes());
        chunk.extend_from_slice(&(block.len() as u32).to_le_bytes());
        chunk.extend_from_slice(&block);
        // What the reader will make of it, checked before it is written.
        debug_assert_eq!(
            lz4_flex::block::decompress(&block, self.buffer.len()).as_deref().ok(),
            Some(&self.buffer[..]),
            "an LZ4 block that does not read back"
        );
        self.crc32c = crc32c::crc32c_append(self.crc32c, &chunk);
        self.file.write_all(&chunk)?;
        self.file_bytes += chunk.len();
        self.buffer.clear();
        Ok(())
    }

    fn keep_error<E: rancor::Source>(&mut self, error: io::Error) -> E {
        let message = io::Error::new(error.kind(), error.to_string());
        self.error = Some(error);
        E::new(message)
    }
}

impl rkyv::ser::Positional for CompressingWriter {
    fn pos(&self) -> usize {
        self.position_bytes
    }
}

impl<E: rancor::Source> rkyv::ser::Writer<E> for CompressingWriter {
    fn write(&mut self, bytes: &[u8]) -> Result<(), E> {
        let mut rest = bytes;
        while !rest.is_empty() {
            let room = format::CHUNK_RAW_BYTES_MAX - self.buffer.len();
            let (now, later) = rest.split_at(room.min(rest.len()));
            self.buffer.extend_from_slice(now);
            rest = later;
            if self.buffer.len() == format::CHUNK_RAW_BYTES_MAX {
                if let Err(error) = self.flush() {
                    return Err(self.keep_error(error));
                }
            }
        }
        self.position_bytes += bytes.len();
        Ok(())
    }
}

/// A tree as bytes, for a leader sending its state to a follower over a
/// peer link: the snapshot file's payload (no header; the link checksums
/// its frames).
pub fn tree_to_bytes(tree: &Tree) -> Vec<u8> {
    let meta = SnapshotMeta::default();
    let record = payload_record(tree, &meta);
    // Serializing borrowed in-memory records into a Vec cannot fail.
    rkyv::api::high::to_bytes::<rancor::Error>(&record).map(|bytes| bytes.to_vec()).unwrap_or_default()
}

/// The tree `tree_to_bytes` wrote; damage is an error naming the offset.
pub fn tree_from_bytes(bytes: &[u8]) -> Result<Tree, SnapshotError> {
    let file = PathBuf::from("<peer snapshot>");
    let damaged =
        |offset_bytes: u64, reason: String| SnapshotError::Damaged { file: file.clone(), offset_bytes, reason };
    let mut payload = AlignedVec::<16>::with_capacity(bytes.len());
    payload.extend_from_slice(bytes);
    let archived = rkyv::access::<ArchivedPayloadRecord, rancor::Error>(&payload)
        .map_err(|error| damaged(0, format!("payload fails rkyv validation: {error}")))?;
    restore_tree(archived, &payload, &damaged)
}

#[cfg(test)]
mod tests;
