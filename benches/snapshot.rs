//! Writing and reading the snapshot of a 100k-node tree (100 bytes of data
//! per node, 100 parents of 999 children each, so paths are ~16 bytes).
//! Throughput is the snapshot file's size per iteration. `write` includes
//! the fsyncs and the rename; `read` includes CRC32C, bytecheck validation
//! and `Tree::restore`, from the page cache, but not dropping the tree.
//!
//! Run with `cargo bench --bench snapshot`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use zoocore::proto::Acl;
use zoocore::snapshot::{self, SnapshotMeta};
use zoocore::tree::{Tree, Txn, TxnHeader};

// The server's allocator, so the numbers are the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CLUSTER: u64 = 0xbe_c4;

fn tree_of_hundred_thousand_nodes() -> Tree {
    let mut tree = Tree::new();
    let data: Arc<[u8]> = Arc::from(&[0x5a_u8; 100][..]);
    let acl: Arc<[Acl]> = Arc::from(Acl::open_unsafe());
    let mut zxid = 0;
    let mut create = |tree: &mut Tree, path: String| {
        zxid += 1;
        let header = TxnHeader { zxid, time_ms: 1_700_000_000_000 + zxid, session_id: 0, cxid: 0 };
        let txn = Txn::Create { path: Arc::from(path), data: Some(data.clone()), acl: acl.clone(), ephemeral_owner: 0 };
        tree.apply(&header, &txn);
    };
    for parent in 0..100 {
        create(&mut tree, format!("/p{parent:03}"));
        for child in 0..999 {
            create(&mut tree, format!("/p{parent:03}/c{child:04}"));
        }
    }
    tree
}

fn bench_snapshot(criterion: &mut Criterion) {
    let directory = std::env::temp_dir().join(format!("zoocore-snapshot-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&directory);
    std::fs::create_dir_all(&directory).expect("create the bench directory");
    let tree = tree_of_hundred_thousand_nodes();
    let meta = SnapshotMeta { index: tree.last_zxid() as u64, term: 1, cluster_id: CLUSTER, ..Default::default() };
    let file: PathBuf = snapshot::write(&directory, &tree, &meta).expect("write");
    let file_bytes = std::fs::metadata(&file).expect("stat").len();
    println!(
        "snapshot of {} nodes: {} bytes ({:.1} MiB)",
        tree.node_count(),
        file_bytes,
        file_bytes as f64 / 1048576.0
    );

    let mut group = criterion.benchmark_group("snapshot_100k_nodes");
    group.sample_size(10).measurement_time(Duration::from_secs(10)).throughput(Throughput::Bytes(file_bytes));
    group.bench_function("write", |bencher| {
        bencher.iter(|| snapshot::write(&directory, &tree, &meta).expect("write"));
    });
    group.bench_function("read", |bencher| {
        // Dropping the restored tree is not part of reading it.
        bencher.iter_with_large_drop(|| snapshot::read_latest(&directory, CLUSTER).expect("read").expect("a snapshot"));
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&directory);
}

criterion_group!(benches, bench_snapshot);
criterion_main!(benches);
