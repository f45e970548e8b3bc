//! The log on real files: each test runs a glommio executor over a fresh
//! temporary directory.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use glommio::LocalExecutorBuilder;

use super::*;

const CLUSTER: u64 = 0x5eed_c0de;

fn run<Body, Done>(body: Body)
where
    Body: FnOnce(PathBuf) -> Done + Send + 'static,
    Done: Future<Output = ()> + 'static,
{
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("log");
    LocalExecutorBuilder::default().spawn(move || body(path)).unwrap().join().unwrap();
}

fn small() -> WalOptions {
    WalOptions { preallocation_bytes: 16 * 1024, ..WalOptions::default() }
}

fn entry(index: u64, term: u64) -> Entry {
    // Sizes vary so records straddle block boundaries in every way.
    let data = (0..(index * 37 % 300) as usize).map(|byte| (byte as u64 + index) as u8).collect();
    Entry { index, term, entry_type: (index % 3) as u8, data }
}

fn records(entries: &[Entry]) -> Vec<Record<'_>> {
    entries.iter().map(Entry::as_record).collect()
}

async fn append_synced(wal: &mut Wal, entries: &[Entry]) {
    wal.append(&records(entries)).unwrap();
    wal.sync().await.unwrap();
}

fn indexes(entries: &[Entry]) -> Vec<(u64, u64)> {
    entries.iter().map(|entry| (entry.index, entry.term)).collect()
}

/// Where the records end in a segment holding `entries` from the start, as
/// one batch (its begin and commit frames included).
fn records_end(entries: &[Entry]) -> u64 {
    record_offset(entries) + record::BATCH_FRAME_BYTES as u64
}

/// Where the record after `entries` starts, in a segment whose first batch
/// starts with `entries`.
fn record_offset(entries: &[Entry]) -> u64 {
    RECORDS_OFFSET
        + record::BATCH_FRAME_BYTES as u64
        + entries.iter().map(|entry| entry.as_record().frame_bytes() as u64).sum::<u64>()
}

fn write_at(path: &Path, offset: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(bytes, offset).unwrap();
    file.sync_all().unwrap();
}

fn flip_byte(path: &Path, offset: u64) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, offset).unwrap();
    file.write_all_at(&[byte[0] ^ 0x10], offset).unwrap();
}

/// Collects what tracing prints on this thread.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[test]
fn append_sync_reopen_round_trip() {
    run(|directory| async move {
        let (mut wal, recovered) = Wal::open(&directory, CLUSTER, WalOptions::default()).await.unwrap();
        assert_eq!(recovered, Recovered::default());
        assert_eq!(wal.segment_paths(), [directory.join("log.0000000000000001")]);
        let entries: Vec<Entry> = (1..=200).map(|index| entry(index, 1 + index / 50)).collect();
        // Batches of every size, so each sync rewrites a different partial block.
        let mut start = 0;
        for batch in 1..=19 {
            let end = (start + batch).min(entries.len());
            append_synced(&mut wal, &entries[start..end]).await;
            start = end;
        }
        append_synced(&mut wal, &entries[start..]).await;
        let state = HardState { term: 5, vote: 2, commit: 180 };
        wal.append(&[Record::HardState(state)]).unwrap();
        wal.sync().await.unwrap();
        let counters = wal.counters();
        assert_eq!(counters.syncs, 21);
        assert_eq!(counters.fdatasyncs, 21);
        assert_eq!(counters.records_synced, 201);
        assert_eq!(counters.last_sync_records, 1);
        assert!(counters.bytes_written >= counters.record_bytes_synced);
        assert!(counters.fdatasync_latency_max >= counters.last_fdatasync_latency);
        assert_eq!(wal.last_index(), Some(200));
        wal.close().await.unwrap();

        // The file keeps its preallocated size: appends never grew it.
        let size = std::fs::metadata(directory.join("log.0000000000000001")).unwrap().len();
        assert_eq!(size, PREALLOCATION_BYTES_DEFAULT);

        let (mut wal, recovered) = Wal::open(&directory, CLUSTER, WalOptions::default()).await.unwrap();
        assert_eq!(recovered.entries, entries);
        assert_eq!(recovered.hard_state, Some(state));
        assert_eq!(recovered.snapshot, None);
        assert!(recovered.truncations.is_empty());
        assert_eq!(wal.hard_state(), Some(state));
        // The log goes on where it stopped, in the same partial block.
        let more: Vec<Entry> = (201..=210).map(|index| entry(index, 5)).collect();
        append_synced(&mut wal, &more).await;
        wal.close().await.unwrap();
        let (_wal, recovered) = Wal::open(&directory, CLUSTER, WalOptions::default()).await.unwrap();
        assert_eq!(recovered.entries.len(), 210);
        assert_eq!(recovered.entries[200..], more[..]);
    });
}

#[test]
fn a_torn_tail_is_truncated_and_logged() {
    run(|directory| async move {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt().with_writer(captured.clone()).with_ansi(false).finish();
        let _guard = tracing::subscriber::set_default(subscriber);

        let (mut wal, _) = Wal::open(&directory, CLUSTER, WalOptions::default()).await.unwrap();
        let entries: Vec<Entry> = (1..=20).map(|index| entry(index, 1)).collect();
        append_synced(&mut wal, &entries).await;
        wal.close().await.unwrap();

        // The crash: only the first part of a large record reached the disk.
        let segment = directory.join("log.0000000000000001");
        let end = records_end(&entries);
        let big = Entry { index: 21, term: 1, entry_type: 0, data: vec![0xab; 3000] };
        let mut frame = Vec::new();
        encode_record(&big.as_record(), &mut frame).unwrap();
        write_at(&segment, end, &record::encode_batch(&frame, end)[..1800]);

        let (mut wal, recovered) = Wal::open(&directory, CLUSTER, WalOptions::default()).await.unwrap();
        assert_eq!(recovered.entries, entries);
        assert_eq!(recovered.truncations.len(), 1);
        let truncation = &recovered.truncations[0];
        assert!(truncation.torn_tail);
        assert_eq!((truncation.path.clone(), truncation.offset), (segment.clone(), end));
        let logged = captured.text();
        assert!(logged.contains("WARN") && logged.contains("torn tail"), "{logged}");
        assert!(logged.contains("log.0000000000000001") && logged.contains(&format!("offset={end}")), "{logged}");

        // The garbage is gone: a short record after the cut, then a clean reopen.
        let next = Entry { index: 21, term: 2, entry_type: 0, data: b"short".to_vec() };
        append_synced(&mut wal, std::slice::from_ref(&next)).await;
        wal.close().await.unwrap();
        let (_wal, recovered) = Wal::open(&directory, CLUSTER, WalOptions::default()).await.unwrap();
        assert!(recovered.truncations.is_empty(), "{:?}", recovered.truncations);
        assert_eq!(recovered.entries.len(), 21);
        assert_eq!(recovered.entries[20], next);
    });
}

#[test]
fn garbage_alone_after_the_end_is_a_torn_tail_too() {
    run(|directory| async move {
        let (mut wal, _) = Wal::open(&directory, CLUSTER, WalOptions::default()).await.unwrap();
        let entries: Vec<Entry> = (1..=3).map(|index| entry(index, 1)).collect();
        append_synced(&mut wal, &entries).await;
        wal.close().await.unwrap();
        let segment = directory.join("log.0000000000000001");
        // Half a frame header: fewer bytes than a header, not all zero.
        write_at(&segment, records_end(&entries), &[7, 0, 0]);
        let (_wal, recovered) = Wal::open(&directory, CLUSTER, WalOptions::default()).await.unwrap();
        assert_eq!(recovered.entries, entries);
        assert_eq!(recovered.truncations.len(), 1);
    });
}

#[test]
fn corruption_in_the_middle_is_refused_or_truncated_on_request() {
    run(|directory| async move {
        let (mut wal, _) = Wal::open(&directory, CLUSTER, WalOptions::default()).await.unwrap();
        let entries: Vec<Entry> = (1..=30).map(|index| entry(index, 1)).collect();
        for batch in entries.chunks(10) {
            append_synced(&mut wal, batch).await;
        }
        wal.close().await.unwrap();
        let segment = directory.join("log.0000000000000001");
        let fifth = record_offset(&entries[..4]);
        flip_byte(&segment, fifth + 12);

        let error = Wal::open(&directory, CLUSTER, WalOptions::default()).await.err().expect("corruption refused");
        match &error {
            WalError::Corrupt { path, offset, reason } => {
                assert_eq!((path, *offset), (&segment, fifth));
                assert!(reason.contains("written whole"), "{reason}");
            }
            other => panic!("expected corruption, got {other}"),
        }
        let message = error.to_string();
        assert!(message.contains("log.0000000000000001") && message.contains(&format!("byte offset {fifth}")));
        assert!(message.contains("truncate_corrupt"), "{message}");

        let options = WalOptions { truncate_corrupt: true, ..WalOptions::default() };
        let (mut wal, recovered) = Wal::open(&directory, CLUSTER, options).await.unwrap();
        assert_eq!(recovered.entries, entries[..4]);
        assert_eq!(recovered.truncations.len(), 1);
        assert!(!recovered.truncations[0].torn_tail);
        // The damaged record itself does not decode; the 25 after it do.
        assert_eq!(recovered.truncations[0].records_dropped, 25);
        assert_eq!(wal.last_index(), Some(4));
        append_synced(&mut wal, &[entry(5, 2)]).await;
        wal.close().await.unwrap();
        let (_wal, recovered) = Wal::open(&directory, CLUSTER, WalOptions::default()).await.unwrap();
        assert_eq!(indexes(&recovered.entries), [(1, 1), (2, 1), (3, 1), (4, 1), (5, 2)]);
    });
}

#[test]
fn a_log_from_another_cluster_is_refused() {
    run(|directory| async move {
        let (mut wal, _) = Wal::open(&directory, CLUSTER, WalOptions::default()).await.unwrap();
        append_synced(&mut wal, &[entry(1, 1)]).await;
        wal.close().await.unwrap();
        let error = Wal::open(&directory, CLUSTER + 1, WalOptions::default()).await.err().expect("refused");
        assert!(
            matches!(&error, WalError::ForeignCluster { expected, found, .. } if *expected == CLUSTER + 1 && *found == CLUSTER)
        );
        let message = error.to_string();
        assert!(message.contains("log.0000000000000001") && message.contains("another cluster"), "{message}");
        // Even truncate_corrupt does not take over another cluster's log.
        let options = WalOptions { truncate_corrupt: true, ..WalOptions::default() };
        assert!(matches!(Wal::open(&directory, CLUSTER + 1, options).await, Err(WalError::ForeignCluster { .. })));
    });
}

#[test]
fn a_damaged_header_is_an_error_naming_the_file() {
    run(|directory| async move {
        let (mut wal, _) = Wal::open(&directory, CLUSTER, WalOptions::default()).await.unwrap();
        append_synced(&mut wal, &[entry(1, 1)]).await;
        wal.close().await.unwrap();
        let segment = directory.join("log.0000000000000001");
        flip_byte(&segment, 18);
        match Wal::open(&directory, CLUSTER, WalOptions::default()).await {
            Err(WalError::Corrupt { path, offset, reason }) => {
                assert_eq!((path, offset), (segment, 28));
                assert!(reason.contains("header checksum"), "{reason}");
            }
            other => panic!("expected a corrupt header, got {:?}", other.err()),
        }
    });
}

#[test]
fn segments_roll_over_when_full() {
    run(|directory| async move {
        let options = WalOptions { preallocation_bytes: 8192, ..WalOptions::default() };
        let (mut wal, _) = Wal::open(&directory, CLUSTER, options).await.unwrap();
        let entries: Vec<Entry> = (1..=120).map(|index| entry(index, 1)).collect();
        // One batch that fills several segments, then small ones.
        append_synced(&mut wal, &entries[..60]).await;
        for batch in entries[60..].chunks(7) {
            append_synced(&mut wal, batch).await;
        }
        let paths = wal.segment_paths();
        assert!(paths.len() > 5, "{paths:?}");
        assert_eq!(wal.counters().segments_created as usize, paths.len());
        wal.close().await.unwrap();

        // Each segment is named after the first entry it holds, and keeps
        // its preallocated size.
        let (_wal, recovered) = Wal::open(&directory, CLUSTER, options).await.unwrap();
        assert_eq!(recovered.entries, entries);
        let mut next = 1;
        for path in &paths {
            let bytes = std::fs::read(path).unwrap();
            assert_eq!(bytes.len(), 8192, "{}", path.display());
            let header = decode_segment_header(&bytes).unwrap();
            assert_eq!(path.file_name().unwrap().to_str().unwrap(), segment::segment_file_name(header.first_index));
            assert_eq!(header.first_index, next);
            let scan = replay::scan_batches(&bytes, RECORDS_OFFSET);
            let Record::Entry { index, .. } = scan.records[0].record else { panic!("not an entry") };
            assert_eq!(index, header.first_index);
            next += scan.records.len() as u64;
        }
        assert_eq!(next, 121);
    });
}

#[test]
fn a_missing_segment_is_a_gap() {
    run(|directory| async move {
        let options = WalOptions { preallocation_bytes: 8192, ..WalOptions::default() };
        let (mut wal, _) = Wal::open(&directory, CLUSTER, options).await.unwrap();
        let entries: Vec<Entry> = (1..=80).map(|index| entry(index, 1)).collect();
        append_synced(&mut wal, &entries).await;
        let paths = wal.segment_paths();
        wal.close().await.unwrap();
        std::fs::remove_file(&paths[1]).unwrap();
        match Wal::open(&directory, CLUSTER, options).await {
            Err(WalError::Corrupt { path, reason, .. }) => {
                assert_eq!(path, paths[2]);
                assert!(reason.contains("entries are missing"), "{reason}");
            }
            other => panic!("expected a gap, got {:?}", other.err()),
        }
        // Losing the first segment without a snapshot is refused too.
        std::fs::remove_file(&paths[0]).unwrap();
        assert!(matches!(Wal::open(&directory, CLUSTER, options).await, Err(WalError::Corrupt { .. })));
    });
}

#[test]
fn compaction_deletes_whole_segments_below_the_snapshot() {
    run(|directory| async move {
        let options = WalOptions { preallocation_bytes: 8192, ..WalOptions::default() };
        let (mut wal, _) = Wal::open(&directory, CLUSTER, options).await.unwrap();
        let entries: Vec<Entry> = (1..=200).map(|index| entry(index, 1)).collect();
        for batch in entries.chunks(25) {
            append_synced(&mut wal, batch).await;
        }
        let state = HardState { term: 1, vote: 1, commit: 200 };
        wal.append(&[Record::HardState(state)]).unwrap();
        wal.sync().await.unwrap();
        assert!(matches!(wal.compact(10).await, Err(WalError::CompactBeyondSnapshot { snapshot_index: None, .. })));
        let marker = SnapshotMarker { index: 150, term: 1 };
        wal.append(&[Record::SnapshotMarker(marker)]).unwrap();
        wal.sync().await.unwrap();
        assert!(matches!(wal.compact(152).await, Err(WalError::CompactBeyondSnapshot { .. })));
        let before = wal.segment_paths();
        let deleted = wal.compact(151).await.unwrap();
        assert!(deleted > 0);
        let after = wal.segment_paths();
        assert_eq!(after[..], before[deleted..]);
        for path in &before[..deleted] {
            assert!(!path.exists(), "{}", path.display());
        }
        // The first kept segment still holds entry 151 or one before it.
        let first_kept = decode_segment_header(&std::fs::read(&after[0]).unwrap()).unwrap().first_index;
        assert!(first_kept <= 151, "{first_kept}");
        assert_eq!(wal.compact(151).await.unwrap(), 0);
        wal.close().await.unwrap();

        let (mut wal, recovered) = Wal::open(&directory, CLUSTER, options).await.unwrap();
        assert_eq!(recovered.snapshot, Some(marker));
        assert_eq!(recovered.hard_state, Some(state));
        assert_eq!(recovered.entries, entries[150..]);
        assert_eq!(wal.last_index(), Some(200));
        append_synced(&mut wal, &[entry(201, 2)]).await;
        wal.close().await.unwrap();
        let (_wal, recovered) = Wal::open(&directory, CLUSTER, options).await.unwrap();
        assert_eq!(recovered.entries.len(), 51);
    });
}

#[test]
fn raft_overwrites_a_conflicting_suffix() {
    run(|directory| async move {
        let (mut wal, _) = Wal::open(&directory, CLUSTER, small()).await.unwrap();
        let entries: Vec<Entry> = (1..=10).map(|index| entry(index, 1)).collect();
        append_synced(&mut wal, &entries).await;
        // A new leader replaces 6.. with its own entries.
        append_synced(&mut wal, &[entry(6, 2), entry(7, 2)]).await;
        // Truncation without a replacement, then more.
        wal.truncate_suffix(7).unwrap();
        wal.truncate_suffix(50).unwrap();
        assert_eq!(wal.last_index(), Some(6));
        append_synced(&mut wal, &[entry(7, 3), entry(8, 3)]).await;
        // Refused records leave the buffer as it was.
        assert!(matches!(
            wal.append(&records(&[entry(9, 3), entry(11, 3)])),
            Err(WalError::InvalidRecord(Violation::EntryGap { index: 11, expected: 10 }))
        ));
        assert_eq!(wal.pending_bytes(), 0);
        assert_eq!(wal.last_index(), Some(8));
        wal.close().await.unwrap();
        let (_wal, recovered) = Wal::open(&directory, CLUSTER, small()).await.unwrap();
        assert_eq!(indexes(&recovered.entries), [(1, 1), (2, 1), (3, 1), (4, 1), (5, 1), (6, 2), (7, 3), (8, 3)]);
    });
}

#[test]
fn the_buffer_is_bounded_and_fsync_can_be_skipped() {
    run(|directory| async move {
        let options = WalOptions { force_sync: false, pending_bytes_max: 4096, ..small() };
        let (mut wal, _) = Wal::open(&directory, CLUSTER, options).await.unwrap();
        let big = Entry { index: 1, term: 1, entry_type: 0, data: vec![1; 3000] };
        wal.append(&[big.as_record()]).unwrap();
        let next = Entry { index: 2, term: 1, entry_type: 0, data: vec![2; 2000] };
        assert!(matches!(wal.append(&[next.as_record()]), Err(WalError::PendingFull { .. })));
        wal.sync().await.unwrap();
        wal.append(&[next.as_record()]).unwrap();
        wal.sync().await.unwrap();
        assert_eq!(wal.counters().fdatasyncs, 0);
        assert_eq!(wal.counters().syncs, 2);
        wal.close().await.unwrap();
        let (_wal, recovered) = Wal::open(&directory, CLUSTER, options).await.unwrap();
        assert_eq!(recovered.entries, [big, next]);
    });
}

#[test]
fn a_second_opener_is_locked_out_and_leftovers_are_cleaned() {
    run(|directory| async move {
        let (wal, _) = Wal::open(&directory, CLUSTER, small()).await.unwrap();
        assert!(matches!(Wal::open(&directory, CLUSTER, small()).await, Err(WalError::Locked { .. })));
        wal.close().await.unwrap();
        let leftover = directory.join("log.0000000000000009.tmp");
        std::fs::write(&leftover, b"half made").unwrap();
        let (_wal, _) = Wal::open(&directory, CLUSTER, small()).await.unwrap();
        assert!(!leftover.exists());
    });
}

#[test]
fn zero_filled_segments_recover_alike() {
    run(|directory| async move {
        let options = WalOptions { preallocation_zero_fill: true, preallocation_bytes: 64 * 1024, ..small() };
        let (mut wal, _) = Wal::open(&directory, CLUSTER, options).await.unwrap();
        let entries: Vec<Entry> = (1..=400).map(|index| entry(index, 1)).collect();
        append_synced(&mut wal, &entries).await;
        assert!(wal.segment_paths().len() > 1);
        wal.close().await.unwrap();
        let (_wal, recovered) = Wal::open(&directory, CLUSTER, options).await.unwrap();
        assert_eq!(recovered.entries, entries);
    });
}

/// Zero-filled segments are made ahead, in a task of their own: a rollover
/// takes the prepared file (header, rename) instead of zero-filling while
/// writes wait, and a prepared file left by the last run is removed at
/// start without touching the log.
#[test]
fn segments_are_prepared_ahead_and_a_leftover_is_removed() {
    run(|root| async move {
        // As the server writes (O_DSYNC segments) and without O_DSYNC.
        for dsync_writes in [true, false] {
            let directory = root.join(format!("dsync-{dsync_writes}"));
            let preallocation_bytes = 64 * 1024;
            let options = WalOptions { preallocation_zero_fill: true, preallocation_bytes, dsync_writes, ..small() };
            let prepared = directory.join("next-segment.tmp");
            let (mut wal, _) = Wal::open(&directory, CLUSTER, options).await.unwrap();
            let entries: Vec<Entry> = (1..=2000).map(|index| entry(index, 1)).collect();
            for chunk in entries.chunks(50) {
                append_synced(&mut wal, chunk).await;
                // The preparation runs while the log waits for work.
                glommio::timer::sleep(std::time::Duration::from_millis(2)).await;
            }
            let counters = wal.counters();
            let segments = wal.segment_paths();
            assert!(segments.len() >= 3, "{segments:?}");
            assert_eq!(counters.segments_created, segments.len() as u64);
            assert_eq!(counters.segments_prepared, counters.segments_created - 1, "{counters:?}");
            for path in &segments {
                let bytes = std::fs::read(path).unwrap();
                assert_eq!(bytes.len() as u64, preallocation_bytes, "{}", path.display());
                let header = decode_segment_header(&bytes).unwrap();
                assert_eq!(path.file_name().unwrap().to_str().unwrap(), segment::segment_file_name(header.first_index));
                assert_eq!(header.cluster_id, CLUSTER);
            }
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while !prepared.exists() && std::time::Instant::now() < deadline {
                glommio::timer::sleep(std::time::Duration::from_millis(5)).await;
            }
            assert!(prepared.exists(), "the next segment is prepared before it is needed");
            wal.close().await.unwrap();
            let (wal, recovered) = Wal::open(&directory, CLUSTER, options).await.unwrap();
            assert_eq!(recovered.entries, entries);
            assert_eq!(wal.segment_paths(), segments);
            assert_eq!(wal.dsync_writes(), dsync_writes);
            assert_eq!(counters.fdatasyncs == 0, dsync_writes, "{counters:?}");
            wal.close().await.unwrap();
        }
    });
}

#[test]
fn corruption_in_an_earlier_segment_drops_the_later_ones_on_request() {
    run(|directory| async move {
        let options = WalOptions { preallocation_bytes: 8192, ..WalOptions::default() };
        let (mut wal, _) = Wal::open(&directory, CLUSTER, options).await.unwrap();
        let entries: Vec<Entry> = (1..=80).map(|index| entry(index, 1)).collect();
        append_synced(&mut wal, &entries).await;
        let paths = wal.segment_paths();
        assert!(paths.len() >= 4, "{paths:?}");
        wal.close().await.unwrap();
        // The last record of the second segment: nothing follows it in that
        // file, but later segments exist, so it cannot be a torn tail.
        let bytes = std::fs::read(&paths[1]).unwrap();
        let scan = replay::scan_batches(&bytes, RECORDS_OFFSET);
        let last = scan.records.last().unwrap().offset;
        let Record::Entry { index: last_index, .. } = scan.records.last().unwrap().record else { panic!() };
        flip_byte(&paths[1], last + 9);

        match Wal::open(&directory, CLUSTER, options).await {
            Err(WalError::Corrupt { path, offset, .. }) => assert_eq!((path, offset), (paths[1].clone(), last)),
            other => panic!("expected corruption, got {:?}", other.err()),
        }
        let cutting = WalOptions { truncate_corrupt: true, ..options };
        let (wal, recovered) = Wal::open(&directory, CLUSTER, cutting).await.unwrap();
        assert_eq!(recovered.entries, entries[..last_index as usize - 1]);
        assert_eq!(wal.segment_paths(), paths[..2]);
        assert_eq!(recovered.truncations.len(), paths.len() - 1);
        for path in &paths[2..] {
            assert!(!path.exists());
        }
        wal.close().await.unwrap();
        let (_wal, recovered) = Wal::open(&directory, CLUSTER, options).await.unwrap();
        assert!(recovered.truncations.is_empty());
        assert_eq!(recovered.entries.len(), last_index as usize - 1);
    });
}

#[test]
fn a_version_1_log_is_read_and_new_records_go_into_a_version_2_segment() {
    run(|directory| async move {
        // A version 1 segment as the previous format wrote it: records back
        // to back after the header block, then zeros.
        std::fs::create_dir_all(&directory).unwrap();
        let entries: Vec<Entry> = (1..=12).map(|index| entry(index, 1)).collect();
        let mut bytes = record::encode_segment_header_version(CLUSTER, 1, FORMAT_VERSION_UNBATCHED);
        for entry in &entries {
            encode_record(&entry.as_record(), &mut bytes).unwrap();
        }
        bytes.resize(64 * 1024, 0);
        let old = directory.join("log.0000000000000001");
        std::fs::write(&old, &bytes).unwrap();

        let (mut wal, recovered) = Wal::open(&directory, CLUSTER, small()).await.unwrap();
        assert_eq!(recovered.entries, entries);
        let paths = wal.segment_paths();
        assert_eq!(paths.len(), 2, "a version 2 segment is started: {paths:?}");
        assert_eq!(decode_segment_header(&std::fs::read(&paths[1]).unwrap()).unwrap().version, FORMAT_VERSION);
        let more: Vec<Entry> = (13..=20).map(|index| entry(index, 2)).collect();
        append_synced(&mut wal, &more).await;
        wal.close().await.unwrap();
        assert_eq!(std::fs::read(&old).unwrap(), bytes, "the version 1 segment is not written to");

        let (_wal, recovered) = Wal::open(&directory, CLUSTER, small()).await.unwrap();
        assert!(recovered.truncations.is_empty(), "{:?}", recovered.truncations);
        assert_eq!(recovered.entries[..12], entries[..]);
        assert_eq!(recovered.entries[12..], more[..]);
    });
}

#[test]
fn truncate_corrupt_steps_over_damage_the_snapshot_covers() {
    run(|directory| async move {
        let (mut wal, _) = Wal::open(&directory, CLUSTER, WalOptions::default()).await.unwrap();
        let entries: Vec<Entry> = (1..=40).map(|index| entry(index, 1)).collect();
        for batch in entries.chunks(5) {
            append_synced(&mut wal, batch).await;
        }
        wal.append(&[Record::SnapshotMarker(SnapshotMarker { index: 30, term: 1 })]).unwrap();
        wal.sync().await.unwrap();
        wal.close().await.unwrap();
        let segment = directory.join("log.0000000000000001");
        let bytes = std::fs::read(&segment).unwrap();
        // Damage entry 12, which the snapshot at 30 covers.
        let scan = replay::scan_batches(&bytes, RECORDS_OFFSET);
        let twelfth = scan.records.iter().find(|scanned| matches!(scanned.record, Record::Entry { index: 12, .. }));
        flip_byte(&segment, twelfth.unwrap().offset + 20);
        let damaged = std::fs::read(&segment).unwrap();

        let snapshot = Some(SnapshotMarker { index: 30, term: 1 });
        let options = WalOptions { covered_by_snapshot: snapshot, ..WalOptions::default() };
        assert!(matches!(Wal::open(&directory, CLUSTER, options).await, Err(WalError::Corrupt { .. })));
        assert_eq!(std::fs::read(&segment).unwrap(), damaged, "a refused open changes nothing");

        let repairing = WalOptions { truncate_corrupt: true, ..options };
        let (wal, recovered) = Wal::open(&directory, CLUSTER, repairing).await.unwrap();
        // Nothing after the snapshot is lost.
        assert_eq!(recovered.snapshot, snapshot);
        assert_eq!(recovered.entries, entries[30..]);
        assert_eq!(recovered.truncations.len(), 1);
        assert_eq!(recovered.truncations[0].records_dropped, 0);
        let aside = recovered.truncations[0].moved_to.clone().expect("moved aside");
        assert_eq!(std::fs::read(&aside).unwrap(), damaged, "the original is kept, unchanged");
        wal.close().await.unwrap();
        let (_wal, again) = Wal::open(&directory, CLUSTER, options).await.unwrap();
        assert!(again.truncations.is_empty());
        assert_eq!(again.entries, entries[30..]);
    });
}
