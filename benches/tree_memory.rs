//! What a znode costs in memory, counted by the allocator.
//!
//! A counting wrapper around the server's allocator (mimalloc) keeps the
//! bytes asked for, live, and a histogram of live allocations by requested
//! size, so the table below says what holds the bytes: each structure of the
//! tree has its own characteristic size (a key of the loadgen layout is one
//! block of about 170 bytes: header, path and its 100 bytes of data; a trie
//! branch is 64 bytes with its `Arc` header). RSS is read
//! from /proc/self/status beside it, so what the allocator keeps but the
//! tree does not use shows too.
//!
//! The trees are built through the public `Tree::apply` with a fresh data
//! buffer, ACL and path per create, as the log decoder hands them to the
//! committed tree:
//!
//! - `keys/N`: N znodes of 100 bytes in the loadgen layout
//!   (`/zoocore-loadgen/keys/dD/kK`, 100 keys per directory);
//! - `flat/100000`: 100,000 empty children of one parent;
//! - `big/30`: 30 znodes of 1 MiB.
//!
//! The criterion part measures "time" in allocated bytes (a custom
//! `Measurement`), so its report and its regression check are in bytes per
//! znode. Run with `cargo bench --bench tree_memory`; set
//! `ZOOCORE_MEMORY_ZNODES=1000000` (default 100000) for the table at that size.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use zoocore::proto::Acl;
use zoocore::tree::{Tree, Txn, TxnHeader};

struct Counting;

/// Live requested bytes and allocations.
static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);
static LIVE_COUNT: AtomicI64 = AtomicI64::new(0);
/// Live allocations by requested size, in 8-byte steps up to 4 KiB; the
/// last bucket holds everything larger.
const BUCKETS: usize = 513;
static BY_SIZE_COUNT: [AtomicI64; BUCKETS] = [const { AtomicI64::new(0) }; BUCKETS];
static BY_SIZE_BYTES: [AtomicI64; BUCKETS] = [const { AtomicI64::new(0) }; BUCKETS];
static ENABLED: AtomicUsize = AtomicUsize::new(1);

fn bucket(size: usize) -> usize {
    (size.div_ceil(8)).min(BUCKETS - 1)
}

fn count(size: usize, sign: i64) {
    if ENABLED.load(Ordering::Relaxed) == 0 {
        return;
    }
    LIVE_BYTES.fetch_add(sign * size as i64, Ordering::Relaxed);
    LIVE_COUNT.fetch_add(sign, Ordering::Relaxed);
    BY_SIZE_COUNT[bucket(size)].fetch_add(sign, Ordering::Relaxed);
    BY_SIZE_BYTES[bucket(size)].fetch_add(sign * size as i64, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size(), 1);
        unsafe { mimalloc::MiMalloc.alloc(layout) }
    }
    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        count(layout.size(), -1);
        unsafe { mimalloc::MiMalloc.dealloc(pointer, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size(), 1);
        unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(layout.size(), -1);
        count(new_size, 1);
        unsafe { mimalloc::MiMalloc.realloc(pointer, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live_bytes() -> i64 {
    LIVE_BYTES.load(Ordering::Relaxed)
}

fn rss_bytes() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        .map_or(0, |kib| kib * 1024)
}

fn snapshot_by_size() -> Vec<(i64, i64)> {
    (0..BUCKETS)
        .map(|index| (BY_SIZE_COUNT[index].load(Ordering::Relaxed), BY_SIZE_BYTES[index].load(Ordering::Relaxed)))
        .collect()
}

const VALUE_BYTES: usize = 100;
const KEYS_PER_DIRECTORY: usize = 100;

/// Applies creates with fresh buffers, as the committed tree gets them from
/// the log decoder.
struct Builder {
    tree: Tree,
    zxid: i64,
}

impl Builder {
    fn new() -> Builder {
        Builder { tree: Tree::new(), zxid: 0 }
    }

    fn create(&mut self, path: &str, data_bytes: usize) {
        self.zxid += 1;
        let header = TxnHeader { zxid: self.zxid, time_ms: 1_700_000_000_000 + self.zxid, session_id: 0, cxid: 0 };
        let txn = Txn::Create {
            path: Arc::from(path),
            data: Some(Arc::from(vec![0x5a_u8; data_bytes])),
            acl: Arc::from(Acl::open_unsafe()),
            ephemeral_owner: 0,
        };
        self.tree.apply(&header, &txn);
    }
}

impl Builder {
    fn set_data(&mut self, path: &str, data_bytes: usize) {
        self.zxid += 1;
        let header = TxnHeader { zxid: self.zxid, time_ms: 1_700_000_000_000 + self.zxid, session_id: 0, cxid: 0 };
        let txn = Txn::SetData { path: Arc::from(path), data: Some(Arc::from(vec![0xa5_u8; data_bytes])) };
        self.tree.apply(&header, &txn);
    }
}

/// `keys` znodes of 100 bytes in the loadgen layout, with their
/// directories (znode count: keys + keys/100 + 2 + the 4 of a new tree).
fn keys_tree(keys: usize) -> Tree {
    let mut builder = Builder::new();
    builder.create("/zoocore-loadgen", 0);
    builder.create("/zoocore-loadgen/keys", 0);
    for key in 0..keys {
        if key % KEYS_PER_DIRECTORY == 0 {
            builder.create(&format!("/zoocore-loadgen/keys/d{}", key / KEYS_PER_DIRECTORY), 0);
        }
        builder.create(&format!("/zoocore-loadgen/keys/d{}/k{key}", key / KEYS_PER_DIRECTORY), VALUE_BYTES);
    }
    builder.tree
}

fn flat_tree(children: usize) -> Tree {
    let mut builder = Builder::new();
    builder.create("/flat", 0);
    for child in 0..children {
        builder.create(&format!("/flat/c{child:07}"), 0);
    }
    builder.tree
}

fn big_tree(znodes: usize) -> Tree {
    let mut builder = Builder::new();
    for index in 0..znodes {
        builder.create(&format!("/big{index}"), 1 << 20);
    }
    builder.tree
}

/// Builds a tree and says what it costs: live bytes asked for, RSS growth,
/// and by requested size what holds them.
fn report(name: &str, znodes: usize, build: impl FnOnce() -> Tree) -> Tree {
    let before_bytes = live_bytes();
    let before_rss = rss_bytes();
    let before_sizes = snapshot_by_size();
    let tree = build();
    let bytes = live_bytes() - before_bytes;
    let rss = rss_bytes() - before_rss;
    println!(
        "{name}: {} znodes in the tree; {znodes} added: {:.1} MiB asked for ({:.0} B/znode), RSS +{:.1} MiB ({:.0} B/znode)",
        tree.node_count(),
        bytes as f64 / 1048576.0,
        bytes as f64 / znodes as f64,
        rss as f64 / 1048576.0,
        rss as f64 / znodes as f64,
    );
    let after_sizes = snapshot_by_size();
    let mut rows: Vec<(usize, i64, i64)> = (0..BUCKETS)
        .map(|index| {
            (index, after_sizes[index].0 - before_sizes[index].0, after_sizes[index].1 - before_sizes[index].1)
        })
        .filter(|row| row.2 > 0)
        .collect();
    rows.sort_by_key(|row| -row.2);
    println!("  {:>14} {:>12} {:>12} {:>10}", "request size", "live allocs", "MiB", "B/znode");
    for (index, live, held) in rows.iter().take(8) {
        let size =
            if *index == BUCKETS - 1 { "> 4096".to_string() } else { format!("{}..{}", index * 8 - 7, index * 8) };
        println!("  {size:>14} {live:>12} {:>12.1} {:>10.1}", *held as f64 / 1048576.0, *held as f64 / znodes as f64);
    }
    tree
}

/// setData of every key, in batches of `REWRITE_BATCH` published as a
/// version each (a version clone per batch, as the broadcast core
/// publishes), first with only the newest version alive, then with the
/// starting version held throughout (as a snapshot writer holds one): what
/// a rewrite of the whole tree costs in live bytes and RSS.
fn rewrite(keys: Tree, znodes: usize) {
    const REWRITE_BATCH: usize = 128;
    let zxid = keys.last_zxid();
    let mut builder = Builder { tree: keys, zxid };
    for held in [false, true] {
        let before_bytes = live_bytes();
        let before_rss = rss_bytes();
        let start = held.then(|| builder.tree.clone());
        let mut peak_bytes = 0;
        for key in 0..znodes {
            if key % REWRITE_BATCH == 0 {
                // Publishing: the batch's writes copy the branches they touch.
                let published = builder.tree.clone();
                drop(published);
                peak_bytes = peak_bytes.max(live_bytes() - before_bytes);
            }
            builder.set_data(&format!("/zoocore-loadgen/keys/d{}/k{key}", key / KEYS_PER_DIRECTORY), VALUE_BYTES);
        }
        let held_bytes = live_bytes() - before_bytes;
        let held_rss = rss_bytes() - before_rss;
        drop(start);
        // What mimalloc can give back once the old version is gone (it
        // purges freed pages only when asked or after its delay).
        // SAFETY: mi_collect takes no pointers.
        unsafe { libmimalloc_sys::mi_collect(true) };
        println!(
            "keys/{znodes} rewritten{}: {:.1} MiB more asked for at the end ({:.1} MiB at the peak), RSS +{:.1} MiB; \
             after the old version went: {:.1} MiB asked for, RSS +{:.1} MiB",
            if held { ", the first version held" } else { "" },
            held_bytes as f64 / 1048576.0,
            peak_bytes as f64 / 1048576.0,
            held_rss as f64 / 1048576.0,
            (live_bytes() - before_bytes) as f64 / 1048576.0,
            (rss_bytes() - before_rss) as f64 / 1048576.0,
        );
    }
}

/// Criterion "time" in bytes the allocator holds for the tree.
struct AllocatedBytes;

struct BytesFormatter;

impl ValueFormatter for BytesFormatter {
    fn scale_values(&self, _typical: f64, _values: &mut [f64]) -> &'static str {
        "B"
    }
    fn scale_throughputs(&self, _typical: f64, throughput: &Throughput, values: &mut [f64]) -> &'static str {
        if let Throughput::Elements(elements) = throughput {
            for value in values.iter_mut() {
                *value /= *elements as f64;
            }
        }
        "B/znode"
    }
    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "B"
    }
}

impl Measurement for AllocatedBytes {
    type Intermediate = i64;
    type Value = i64;
    fn start(&self) -> i64 {
        live_bytes()
    }
    fn end(&self, start: i64) -> i64 {
        live_bytes() - start
    }
    fn add(&self, left: &i64, right: &i64) -> i64 {
        left + right
    }
    fn zero(&self) -> i64 {
        0
    }
    fn to_f64(&self, value: &i64) -> f64 {
        *value as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &BytesFormatter
    }
}

fn bench_memory(c: &mut Criterion<AllocatedBytes>) {
    let znodes: usize =
        std::env::var("ZOOCORE_MEMORY_ZNODES").ok().and_then(|value| value.parse().ok()).unwrap_or(100_000);
    println!("bytes held by the tree (counting allocator over mimalloc)");
    let keys = report(&format!("keys/{znodes}"), znodes + znodes / KEYS_PER_DIRECTORY + 2, || keys_tree(znodes));
    rewrite(keys, znodes);
    let flat = report("flat/100000", 100_001, || flat_tree(100_000));
    drop(flat);
    let big = report("big/30 (1 MiB each)", 30, || big_tree(30));
    drop(big);

    // The figure a regression shows in: bytes per znode of a 10k-key tree,
    // the tree kept alive while measured and dropped after.
    let mut group = c.benchmark_group("memory");
    group.sample_size(10);
    const KEYS: usize = 10_000;
    group.throughput(Throughput::Elements((KEYS + KEYS / KEYS_PER_DIRECTORY + 2) as u64));
    group.bench_function("keys_10k/bytes", |b| {
        b.iter_custom(|iterations| {
            let mut total = 0;
            for _ in 0..iterations {
                let start = live_bytes();
                let tree = keys_tree(KEYS);
                total += live_bytes() - start;
                drop(tree);
            }
            total
        })
    });
    group.finish();
}

criterion_group! {
    name = memory;
    config = Criterion::default().with_measurement(AllocatedBytes);
    targets = bench_memory
}
criterion_main!(memory);
