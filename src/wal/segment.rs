//! Segment files on disk: their names, creating one durably, reading one
//! whole, and the lock that keeps a second process out of the directory.

use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use glommio::io::{Directory, DmaFile, OpenOptions};

use super::record::{encode_segment_header, RECORDS_OFFSET};
use super::WalError;

const SEGMENT_PREFIX: &str = "log.";
const TEMPORARY_SUFFIX: &str = ".tmp";
const LOCK_FILE_NAME: &str = "wal.lock";
/// Reads of a segment at open go in pieces of this size.
const READ_CHUNK_BYTES: usize = 4 * 1024 * 1024;
/// Zero-filling a new segment writes pieces of this size.
const ZERO_FILL_CHUNK_BYTES: usize = 1024 * 1024;
/// Zero-filling the next segment ahead of time, beside the log's own
/// writes, goes in smaller pieces: a sync's write queued behind one waits
/// for at most this much.
const PREPARE_CHUNK_BYTES: usize = 256 * 1024;
/// And it leaves the disk to the log most of the time: after each piece it
/// rests this many times as long as the piece took (the device is busy
/// with it a quarter of the time at most), until the log waits for the
/// segment (`PrepareHurry`). Back to back, the 64 MiB of a default segment
/// held the log's O_DSYNC writes up to 32 ms each for the seconds it took.
const PREPARE_REST_FACTOR: u32 = 3;
/// The next segment is prepared ahead only while the filesystem has this
/// many preallocations free: it holds a second segment's space, which a
/// nearly full disk needs for snapshots (the rollover then makes the
/// segment at once, as it always did, fitted to what is left).
pub const PREPARE_FREE_PREALLOCATIONS_MIN: u64 = 4;
/// The name of the segment prepared ahead; like a segment being created,
/// it is removed if found at start.
const PREPARED_FILE_NAME: &str = "next-segment.tmp";

/// `log.` and the index in 16 lowercase hex digits, so that names sort as
/// their indexes do (ZooKeeper's `log.<zxid hex>`, padded).
pub fn segment_file_name(first_index: u64) -> String {
    format!("{SEGMENT_PREFIX}{first_index:016x}")
}

/// The index a segment file is named after, if `name` is a segment's name.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(SEGMENT_PREFIX)?;
    if digits.len() != 16 || !digits.bytes().all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte)) {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// A segment being created; renamed to its name once durable.
fn temporary_file_name(first_index: u64) -> String {
    format!("{}{TEMPORARY_SUFFIX}", segment_file_name(first_index))
}

pub fn is_temporary_file_name(name: &str) -> bool {
    name == PREPARED_FILE_NAME || name.strip_suffix(TEMPORARY_SUFFIX).and_then(parse_segment_file_name).is_some()
}

pub fn align_down(value: u64, alignment: u64) -> u64 {
    value / alignment * alignment
}

pub fn align_up(value: u64, alignment: u64) -> u64 {
    value.div_ceil(alignment) * alignment
}

/// Maps a glommio error to ours, naming the file and what was being done.
pub fn io_error<T>(path: &Path, operation: &'static str) -> impl FnOnce(glommio::GlommioError<T>) -> WalError {
    let path = path.to_path_buf();
    move |error| WalError::Io { path, operation, source: error.into() }
}

pub fn std_io_error(path: &Path, operation: &'static str) -> impl FnOnce(std::io::Error) -> WalError {
    let path = path.to_path_buf();
    move |source| WalError::Io { path, operation, source }
}

/// Takes an exclusive `flock` on `wal.lock` in the directory, held as long
/// as the returned file is open.
pub fn lock_directory(directory: &Path) -> Result<File, WalError> {
    let path = directory.join(LOCK_FILE_NAME);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(std_io_error(&path, "open the lock file"))?;
    // SAFETY: flock only reads the descriptor, which `file` keeps open.
    let result = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if result != 0 {
        let error = std::io::Error::last_os_error();
        if error.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(WalError::Locked { path });
        }
        return Err(WalError::Io { path, operation: "lock", source: error });
    }
    Ok(file)
}

/// glommio decides once per device whether to use the kernel's polled IO
/// by reading the first block of the first DMA file opened there. An empty
/// file answers "yes" on devices that do not support it (virtio disks, for
/// one), and every read then fails with EOPNOTSUPP. Opening a nonempty file
/// first makes the probe answer truly: the lock file is given content and
/// opened before any segment.
pub async fn settle_polled_io_probe(directory: &Path) -> Result<(), WalError> {
    let path = directory.join(LOCK_FILE_NAME);
    let content = format!("zoocore write-ahead log lock, pid {}\n", std::process::id());
    std::fs::write(&path, content).map_err(std_io_error(&path, "write the lock file"))?;
    let file = DmaFile::open(&path).await.map_err(io_error(&path, "open"))?;
    file.close().await.map_err(io_error(&path, "close"))
}

/// Writes `bytes` at the aligned `position` with one DMA write: `bytes` is
/// padded with zeros to whole blocks.
pub async fn write_blocks(file: &DmaFile, path: &Path, position: u64, parts: &[&[u8]]) -> Result<u64, WalError> {
    let alignment = file.alignment();
    debug_assert_eq!(position % alignment, 0);
    let length: usize = parts.iter().map(|part| part.len()).sum();
    let size = align_up(length as u64, alignment) as usize;
    let mut buffer = file.alloc_dma_buffer(size);
    let target = buffer.as_bytes_mut();
    let mut at = 0;
    for part in parts {
        target[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    target[at..].fill(0);
    let written = file.write_at(buffer, position).await.map_err(io_error(path, "write"))?;
    if written != size {
        let source = std::io::Error::new(
            std::io::ErrorKind::WriteZero,
            format!("short write: {written} of {size} bytes at offset {position}"),
        );
        return Err(WalError::Io { path: path.to_path_buf(), operation: "write", source });
    }
    Ok(size as u64)
}

/// Space left free on the log's filesystem when a segment is made smaller
/// to fit: room for the directory and the filesystem's own metadata.
pub const FREE_SPACE_MARGIN_BYTES: u64 = 1024 * 1024;

/// The preallocation a new segment gets: `wanted`, or less when the
/// filesystem holding `directory` has less space free (with
/// [`FREE_SPACE_MARGIN_BYTES`] kept back), in whole 4 KiB blocks and at
/// least two blocks. ZooKeeper starts with less space than one preallocated
/// file too; refusing to start would be worse than a smaller segment.
pub fn fitting_preallocation(directory: &Path, wanted: u64) -> Result<u64, WalError> {
    let Some(available) = available_bytes(directory) else { return Ok(wanted) };
    if available >= wanted.saturating_add(FREE_SPACE_MARGIN_BYTES) {
        return Ok(wanted);
    }
    let minimum = 2 * RECORDS_OFFSET;
    let fitting = align_down(available.saturating_sub(FREE_SPACE_MARGIN_BYTES), 4096);
    if fitting < minimum {
        return Err(WalError::NoSpace {
            path: directory.to_path_buf(),
            available_bytes: available,
            needed_bytes: minimum + FREE_SPACE_MARGIN_BYTES,
        });
    }
    tracing::warn!(
        directory = %directory.display(),
        available_bytes = available,
        preallocation_bytes = wanted,
        segment_bytes = fitting,
        "little free space: this log segment is made smaller than preAllocSize to fit"
    );
    Ok(fitting)
}

/// Bytes an unprivileged writer may still use on the filesystem holding
/// `path`, if the system says.
fn available_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let name = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut status: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `name` is a NUL-terminated path and `status` a valid struct
    // that statvfs only writes into.
    if unsafe { libc::statvfs(name.as_ptr(), &mut status) } != 0 {
        return None;
    }
    Some((status.f_bavail as u64).saturating_mul(status.f_frsize as u64))
}

/// Flags a segment that will be written is opened with: O_DSYNC when
/// every write is to be durable by itself (`dsync_writes`).
pub fn open_flags(options: &super::WalOptions) -> i32 {
    if options.force_sync && options.dsync_writes {
        libc::O_DSYNC
    } else {
        0
    }
}

/// A segment file made ahead of need: preallocated, zero-filled and synced
/// under [`PREPARED_FILE_NAME`], with no header yet (its first index is
/// known only when the log rolls over to it).
pub struct PreparedSegment {
    file: DmaFile,
    path: PathBuf,
    capacity: u64,
}

/// Makes the next segment's file in the background of the log's writes
/// (the broadcast core runs it as a separate task), so that a rollover
/// never waits for a zero-fill. `None` when the filesystem is too full to
/// hold a second segment (see [`PREPARE_FREE_PREALLOCATIONS_MIN`]).
pub async fn prepare_segment(
    directory_path: PathBuf,
    preallocation_bytes: u64,
    hurry: PrepareHurry,
) -> Result<Option<PreparedSegment>, WalError> {
    let needed = preallocation_bytes.saturating_mul(PREPARE_FREE_PREALLOCATIONS_MIN);
    if available_bytes(&directory_path).is_some_and(|available| available < needed) {
        return Ok(None);
    }
    let path = directory_path.join(PREPARED_FILE_NAME);
    let file = create_file(&path).await?;
    file.pre_allocate(preallocation_bytes, false).await.map_err(io_error(&path, "preallocate"))?;
    write_zeros(&file, &path, 0, preallocation_bytes, PREPARE_CHUNK_BYTES, Some(&hurry)).await?;
    file.fdatasync().await.map_err(io_error(&path, "fdatasync"))?;
    Ok(Some(PreparedSegment { file, path, capacity: preallocation_bytes }))
}

/// Set when the log waits for the segment being prepared: the rest of the
/// zero-fill goes at full speed.
#[derive(Clone, Default)]
pub struct PrepareHurry(std::rc::Rc<std::cell::Cell<bool>>);

impl PrepareHurry {
    pub fn hurry(&self) {
        self.0.set(true);
    }
}

/// Turns a prepared file into the segment that starts at `first_index`:
/// header written and synced, then renamed into place and the directory
/// synced, the same order as [`create_segment`] keeps; the segment is
/// returned open with `flags` for the log's writes.
pub async fn finish_prepared_segment(
    prepared: PreparedSegment,
    directory: &Directory,
    directory_path: &Path,
    cluster_id: u64,
    first_index: u64,
    flags: i32,
) -> Result<(DmaFile, PathBuf, u64), WalError> {
    let PreparedSegment { file, path, capacity } = prepared;
    let final_path = directory_path.join(segment_file_name(first_index));
    write_blocks(&file, &path, 0, &[&encode_segment_header(cluster_id, first_index)]).await?;
    file.fdatasync().await.map_err(io_error(&path, "fdatasync"))?;
    file.rename(&final_path).await.map_err(io_error(&path, "rename"))?;
    directory.sync().await.map_err(io_error(directory_path, "sync the directory"))?;
    let file = reopen_with(file, &final_path, flags).await?;
    Ok((file, final_path, capacity))
}

/// The segment's zero-fill and header go through a descriptor without
/// O_DSYNC (one fdatasync at the end, not one per 256 KiB write, which
/// the log's own writes would queue behind); the log writes through one
/// opened with `flags`.
async fn reopen_with(file: DmaFile, path: &Path, flags: i32) -> Result<DmaFile, WalError> {
    if flags == 0 {
        return Ok(file);
    }
    let reopened = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(flags)
        .dma_open(path)
        .await
        .map_err(io_error(path, "open"))?;
    file.close().await.map_err(io_error(path, "close"))?;
    Ok(reopened)
}

/// Creates (or empties) a segment file under a name it is not read by.
async fn create_file(path: &Path) -> Result<DmaFile, WalError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .dma_open(path)
        .await
        .map_err(io_error(path, "create"))
}

/// Writes zeros over `[from, to)` of `file`, `chunk_bytes` at a time;
/// with `rest`, each piece is followed by a rest `PREPARE_REST_FACTOR`
/// times as long as it took, until the log hurries it.
async fn write_zeros(
    file: &DmaFile,
    path: &Path,
    from: u64,
    to: u64,
    chunk_bytes: usize,
    rest: Option<&PrepareHurry>,
) -> Result<(), WalError> {
    let zeros = vec![0u8; chunk_bytes];
    let mut position = align_up(from, file.alignment());
    while position < to {
        let length = chunk_bytes.min((to - position) as usize);
        let started = std::time::Instant::now();
        position += write_blocks(file, path, position, &[&zeros[..length]]).await?;
        if rest.is_some_and(|hurry| !hurry.0.get()) {
            glommio::timer::sleep(started.elapsed() * PREPARE_REST_FACTOR).await;
        }
    }
    Ok(())
}

/// Creates a segment durably: header block and preallocation written and
/// synced under a temporary name, then renamed into place and the directory
/// synced. A segment under its real name always has a whole header, and
/// `initial` (framed records, empty for a new segment, a batch for a
/// repaired one) whole after it.
pub async fn create_segment(
    directory: &Directory,
    directory_path: &Path,
    cluster_id: u64,
    first_index: u64,
    options: &super::WalOptions,
    initial: &[u8],
) -> Result<(DmaFile, PathBuf, u64), WalError> {
    let final_path = directory_path.join(segment_file_name(first_index));
    let temporary_path = directory_path.join(temporary_file_name(first_index));
    let preallocation_bytes = fitting_preallocation(directory_path, options.preallocation_bytes)?;
    let file = create_file(&temporary_path).await?;
    file.pre_allocate(preallocation_bytes, false).await.map_err(io_error(&temporary_path, "preallocate"))?;
    let header = encode_segment_header(cluster_id, first_index);
    write_blocks(&file, &temporary_path, 0, &[&header, initial]).await?;
    if options.preallocation_zero_fill {
        let from = RECORDS_OFFSET + initial.len() as u64;
        write_zeros(&file, &temporary_path, from, preallocation_bytes, ZERO_FILL_CHUNK_BYTES, None).await?;
    }
    file.fdatasync().await.map_err(io_error(&temporary_path, "fdatasync"))?;
    file.rename(&final_path).await.map_err(io_error(&temporary_path, "rename"))?;
    directory.sync().await.map_err(io_error(directory_path, "sync the directory"))?;
    let file = reopen_with(file, &final_path, open_flags(options)).await?;
    Ok((file, final_path, preallocation_bytes))
}

/// Reads a whole file into memory (a segment is bounded by its
/// preallocation, or by one oversized record).
pub async fn read_whole_file(path: &Path) -> Result<Vec<u8>, WalError> {
    let file = DmaFile::open(path).await.map_err(io_error(path, "open"))?;
    let size = file.file_size().await.map_err(io_error(path, "stat"))? as usize;
    let mut bytes = Vec::with_capacity(size);
    while bytes.len() < size {
        let length = READ_CHUNK_BYTES.min(size - bytes.len());
        let chunk = file.read_at(bytes.len() as u64, length).await.map_err(io_error(path, "read"))?;
        if chunk.is_empty() {
            break;
        }
        bytes.extend_from_slice(&chunk);
    }
    file.close().await.map_err(io_error(path, "close"))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_as_indexes_and_parse_back() {
        assert_eq!(segment_file_name(1), "log.0000000000000001");
        assert_eq!(segment_file_name(0x1_0000_0000), "log.0000000100000000");
        assert_eq!(parse_segment_file_name("log.00000000000000ff"), Some(255));
        assert_eq!(parse_segment_file_name(&segment_file_name(u64::MAX)), Some(u64::MAX));
        for bad in ["log.ff", "log.00000000000000FF", "log.000000000000000g", "snapshot.0000000000000001", "log."] {
            assert_eq!(parse_segment_file_name(bad), None, "{bad}");
        }
        assert!(is_temporary_file_name("log.0000000000000010.tmp"));
        assert!(!is_temporary_file_name("log.0000000000000010"));
        let mut names: Vec<String> = [300u64, 2, 17].iter().map(|&index| segment_file_name(index)).collect();
        names.sort();
        assert_eq!(names, [segment_file_name(2), segment_file_name(17), segment_file_name(300)]);
    }

    #[test]
    fn alignment() {
        assert_eq!(align_down(4097, 4096), 4096);
        assert_eq!(align_up(4097, 4096), 8192);
        assert_eq!(align_up(4096, 512), 4096);
        assert_eq!(align_up(0, 512), 0);
    }
}
