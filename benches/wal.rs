//! Group commit through the write-ahead log: append a batch of ~150-byte
//! records, then sync it, on a temporary directory: one write and one
//! fdatasync on fallocated or zero-filled segments, or one O_DSYNC write on
//! zero-filled ones (`dsync`, what the server does). The time of one
//! sync of a small batch is the floor of a write's latency on this disk as
//! the server sees it through io_uring. The directory is under the system's temporary directory, or
//! under $ZOOCORE_BENCH_DIR to measure a particular disk.
//!
//! Criterion reports records per second as "thrpt" (elements); a summary
//! line per case adds the fdatasync latencies the log measured itself.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use glommio::LocalExecutorBuilder;
use zoocore::wal::{Record, Wal, WalOptions};

/// Entry data bytes; with the 26 bytes of frame and entry header a record
/// takes 150 bytes on disk.
const DATA_BYTES: usize = 124;
const BATCHES: [u64; 3] = [1, 32, 256];

fn append_and_sync(criterion: &mut Criterion) {
    let executor = LocalExecutorBuilder::default().make().expect("a glommio executor (is ulimit -l at least 512?)");
    let root = match std::env::var_os("ZOOCORE_BENCH_DIR") {
        Some(directory) => tempfile::tempdir_in(directory),
        None => tempfile::tempdir(),
    }
    .expect("a temporary directory");
    let data = vec![0x5a_u8; DATA_BYTES];
    let mut group = criterion.benchmark_group("wal_append_sync");
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(6));
    for (fill, zero_fill, dsync_writes) in
        [("fallocated", false, false), ("zero_filled", true, false), ("dsync", true, true)]
    {
        for batch in BATCHES {
            let options = WalOptions { preallocation_zero_fill: zero_fill, dsync_writes, ..WalOptions::default() };
            let directory = root.path().join(format!("{fill}-{batch}"));
            let (mut wal, _) = executor.run(Wal::open(&directory, 1, options)).expect("the log opens");
            let mut next_index = 1u64;
            let mut measured = (0u64, Duration::ZERO);
            group.throughput(Throughput::Elements(batch));
            group.bench_function(BenchmarkId::new(fill, batch), |bencher| {
                bencher.iter_custom(|iterations| {
                    executor.run(async {
                        let started = Instant::now();
                        for _ in 0..iterations {
                            let first = next_index;
                            let records: Vec<Record<'_>> = (first..first + batch)
                                .map(|index| Record::Entry { index, term: 1, entry_type: 0, data: &data })
                                .collect();
                            wal.append(&records).expect("append");
                            wal.sync().await.expect("sync");
                            next_index = first + batch;
                        }
                        let elapsed = started.elapsed();
                        measured.0 += iterations * batch;
                        measured.1 += elapsed;
                        elapsed
                    })
                })
            });
            let counters = wal.counters();
            let (records, total) = measured;
            // A case the filter left out measured nothing.
            if records == 0 {
                executor.run(wal.close()).expect("the log closes");
                std::fs::remove_dir_all(&directory).expect("the log directory is removed");
                continue;
            }
            println!(
                "wal {fill} batch {batch:>3}: {:>9.0} records/s, {:>7.0} syncs/s ({:.0} us each), {:.1} records/sync, \
                 fdatasync last {:?} max {:?}, {} segments",
                records as f64 / total.as_secs_f64(),
                counters.syncs as f64 / total.as_secs_f64(),
                total.as_secs_f64() * 1e6 / counters.syncs.max(1) as f64,
                counters.records_per_sync(),
                counters.last_fdatasync_latency,
                counters.fdatasync_latency_max,
                counters.segments_created,
            );
            executor.run(wal.close()).expect("the log closes");
            std::fs::remove_dir_all(&directory).expect("the log directory is removed");
        }
    }
    group.finish();
}

criterion_group!(benches, append_and_sync);
criterion_main!(benches);
