//! Criterion benchmarks of zoocore's hot paths, through the public API:
//!
//! - `jute/*`: decode and encode of the common requests (getData, setData,
//!   create, multi) and replies (getData with 100 bytes and a Stat,
//!   getChildren with 100 children);
//! - `tree/*`: `Tree::get` on a 100k-node tree, and `Tree::apply` of a batch
//!   of 1000 setData or create transactions on a clone (what the broadcast
//!   core does with each batch);
//! - `prep/*`: a batch of 1000 setData or create requests through
//!   `prep::Preparer` (checks, transaction, speculative apply);
//! - `version/*`: publishing a tree version (`Arc` clone, link, `ArcSwap`
//!   store, as the broadcast core does with `server::shared::Version`) and
//!   loading it (`ArcSwap::load`, `Shared::tree`);
//! - `read/*`: `read::serve` of a getData, alone and with its framed reply.
//!
//! Run with `cargo bench --bench hot_paths` (add a filter such as `jute/` to
//! run a part). Numbers on a machine that is busy with other work are not
//! worth keeping: see docs/benchmarking.md.

use std::hint::black_box;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

use zoocore::config::Config;
use zoocore::prep::{PrepSettings, Prepared, Preparer, WriteContext};
use zoocore::proto::codes::op;
use zoocore::proto::jute::write_frame;
use zoocore::proto::response::write_reply;
use zoocore::proto::{Acl, CreateRequest, MultiOp, Reader, ReplyHeader, Request, Response, Stat};
use zoocore::read;
use zoocore::server::Shared;
use zoocore::tree::{Path, Tree, Trigger, Txn, TxnHeader};

const VALUE: [u8; 100] = [b'v'; 100];
/// Nodes of the big tree: 1000 directories of 100 keys, as the loadgen lays
/// out its keys (ROOT/keys/dD/kK).
const KEYS: usize = 100_000;
const KEYS_PER_DIRECTORY: usize = 100;
const BATCH: usize = 1000;
const SESSION: i64 = 0x1000;

fn key_path(key: usize) -> String {
    format!("/keys/d{}/k{key}", key / KEYS_PER_DIRECTORY)
}

fn stat() -> Stat {
    Stat {
        czxid: 0x1_0000_0001,
        mzxid: 0x1_0000_2000,
        ctime: 1_700_000_000_000,
        mtime: 1_700_000_100_000,
        version: 17,
        cversion: 0,
        aversion: 0,
        ephemeral_owner: 0,
        data_length: VALUE.len() as i32,
        num_children: 0,
        pzxid: 0x1_0000_0001,
    }
}

fn create_request(path: &str) -> CreateRequest {
    CreateRequest {
        opcode: op::CREATE,
        path: path.to_string(),
        data: Some(VALUE.to_vec()),
        acl: Acl::open_unsafe(),
        flags: 0,
        ttl_ms: -1,
    }
}

/// The requests the jute benchmarks encode and decode.
fn requests() -> Vec<(&'static str, Request)> {
    let path = key_path(12_345);
    vec![
        ("getData", Request::GetData { path: path.clone(), watch: false }),
        ("setData", Request::SetData { path: path.clone(), data: Some(VALUE.to_vec()), version: -1 }),
        ("create", Request::Create(create_request("/zoocore-loadgen/new/c0-12345"))),
        (
            "multi4",
            Request::Multi(vec![
                MultiOp::Check { path: "/keys/d0".into(), version: 3 },
                MultiOp::SetData { path: key_path(1), data: Some(VALUE.to_vec()), version: -1 },
                MultiOp::SetData { path: key_path(2), data: Some(VALUE.to_vec()), version: -1 },
                MultiOp::Create(create_request("/zoocore-loadgen/new/c0-12346")),
            ]),
        ),
    ]
}

fn encode_request(request: &Request, out: &mut Vec<u8>) {
    write_frame(out, |writer| request.encode(42, writer));
}

fn bench_jute(c: &mut Criterion) {
    let mut group = c.benchmark_group("jute");
    group.throughput(Throughput::Elements(1));
    let mut out = Vec::with_capacity(4096);
    for (name, request) in requests() {
        group.bench_function(format!("encode_request/{name}"), |b| {
            b.iter(|| {
                out.clear();
                encode_request(black_box(&request), &mut out);
                black_box(out.len())
            })
        });
        let mut frame = Vec::new();
        encode_request(&request, &mut frame);
        let body = frame[4..].to_vec();
        let (_, decoded) = Request::decode(&body);
        assert_eq!(decoded.as_ref().ok(), Some(&request), "{name} round trip");
        group.bench_function(format!("decode_request/{name}"), |b| {
            b.iter(|| {
                let (header, request) = Request::decode(black_box(&body));
                black_box((header, request.is_ok()))
            })
        });
    }

    let children: Vec<Arc<str>> = (0..100).map(|i| Arc::from(format!("k{}", 1000 + i))).collect();
    let replies = [
        ("getData100", op::GET_DATA, Response::Data(Some(Arc::from(&VALUE[..])), stat())),
        ("getChildren100", op::GET_CHILDREN, Response::Children(children)),
        ("setData", op::SET_DATA, Response::Stat(stat())),
    ];
    for (name, opcode, response) in replies {
        let header = ReplyHeader { xid: 42, zxid: 0x1_0000_2000, err: 0 };
        group.bench_function(format!("encode_reply/{name}"), |b| {
            b.iter(|| {
                out.clear();
                write_reply(&mut out, header, black_box(&response));
                black_box(out.len())
            })
        });
        let mut frame = Vec::new();
        write_reply(&mut frame, header, &response);
        let body = frame[4..].to_vec();
        let decode = |body: &[u8]| {
            let mut reader = Reader::new(body);
            let header = ReplyHeader::decode(&mut reader).expect("header");
            (header, Response::decode(opcode, &mut reader).expect("body"))
        };
        assert_eq!(decode(&body).1, response, "{name} round trip");
        group.bench_function(format!("decode_reply/{name}"), |b| b.iter(|| black_box(decode(black_box(&body)))));
    }
    group.finish();
}

fn header(zxid: i64) -> TxnHeader {
    TxnHeader { zxid, time_ms: 1_700_000_000_000 + zxid, session_id: SESSION, cxid: 0 }
}

fn create_txn(path: &str) -> Txn {
    Txn::Create {
        path: Path::from(path),
        data: Some(Arc::from(&VALUE[..])),
        acl: Arc::from(Acl::open_unsafe()),
        ephemeral_owner: 0,
    }
}

/// A tree of 1000 directories under /keys holding 100 keys of 100 bytes
/// each (100k keys, 101,005 nodes in all), and a session for prep.
fn big_tree() -> Tree {
    let mut tree = Tree::new();
    let mut zxid = 0;
    let mut apply = |tree: &mut Tree, txn: Txn| {
        zxid += 1;
        tree.apply(&header(zxid), &txn);
    };
    apply(&mut tree, Txn::CreateSession { session_id: SESSION, timeout_ms: 30_000, password: [7; 16] });
    apply(&mut tree, create_txn("/keys"));
    apply(&mut tree, create_txn("/new"));
    for directory in 0..KEYS / KEYS_PER_DIRECTORY {
        apply(&mut tree, create_txn(&format!("/keys/d{directory}")));
    }
    for key in 0..KEYS {
        apply(&mut tree, create_txn(&key_path(key)));
    }
    tree
}

/// Keys in a scattered order, so lookups do not walk the map in order.
fn scattered_keys(count: usize) -> Vec<String> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            key_path((state % KEYS as u64) as usize)
        })
        .collect()
}

fn bench_tree(c: &mut Criterion, tree: &Tree) {
    let mut group = c.benchmark_group("tree");
    let keys = scattered_keys(4096);
    group.throughput(Throughput::Elements(1));
    let mut next = 0;
    group.bench_function("get_100k/hit", |b| {
        b.iter(|| {
            next = (next + 1) % keys.len();
            black_box(tree.get(black_box(&keys[next])).is_some())
        })
    });
    group.bench_function("get_100k/miss", |b| b.iter(|| black_box(tree.get(black_box("/keys/d7/nope")).is_some())));

    let set_batch: Vec<Txn> = scattered_keys(BATCH)
        .into_iter()
        .map(|path| Txn::SetData { path: Path::from(path), data: Some(Arc::from(&VALUE[..])) })
        .collect();
    let create_batch: Vec<Txn> = (0..BATCH).map(|i| create_txn(&format!("/new/c0-{i:010}"))).collect();
    let first_zxid = tree.last_zxid() + 1;
    group.throughput(Throughput::Elements(BATCH as u64));
    for (name, batch) in [("apply_1000/setData", &set_batch), ("apply_1000/create", &create_batch)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                // The broadcast core's step: clone the newest version (a
                // pointer copy) and apply the batch to the clone.
                let mut next = tree.clone();
                for (i, txn) in batch.iter().enumerate() {
                    black_box(next.apply(&header(first_zxid + i as i64), txn));
                }
                next
            })
        });
    }
    group.finish();
}

fn bench_prep(c: &mut Criterion, tree: &Tree) {
    let mut group = c.benchmark_group("prep");
    group.throughput(Throughput::Elements(BATCH as u64));
    let set_batch: Vec<Request> = scattered_keys(BATCH)
        .into_iter()
        .map(|path| Request::SetData { path, data: Some(VALUE.to_vec()), version: -1 })
        .collect();
    let create_batch: Vec<Request> =
        (0..BATCH).map(|i| Request::Create(create_request(&format!("/new/c0-{i:010}")))).collect();
    let auth = [];
    let context = WriteContext { session_id: SESSION, xid: 1, auth: &auth, time_ms: 1_700_000_000_000 };
    for (name, batch) in [("batch_1000/setData", &set_batch), ("batch_1000/create", &create_batch)] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || Preparer::new(tree.clone(), PrepSettings::default()),
                |mut preparer| {
                    for request in batch.iter() {
                        let prepared = preparer.prepare(request, &context);
                        debug_assert!(matches!(prepared, Prepared::Txn { err: zoocore::proto::ErrorCode::Ok, .. }));
                        black_box(prepared);
                    }
                    preparer
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

/// The shape of `server::shared::Version` (private to the server): a tree,
/// the batch's triggers, and the link to the next version.
struct Version {
    tree: Arc<Tree>,
    #[allow(dead_code)]
    triggers: Vec<Trigger>,
    next: OnceLock<Arc<Version>>,
}

impl Version {
    fn new(tree: Arc<Tree>, triggers: Vec<Trigger>) -> Self {
        Version { tree, triggers, next: OnceLock::new() }
    }
}

fn bench_version(c: &mut Criterion, tree: &Tree) {
    let mut group = c.benchmark_group("version");
    group.throughput(Throughput::Elements(1));
    let speculative = tree.clone();
    let first = Arc::new(Version::new(Arc::new(speculative.clone()), Vec::new()));
    let published = ArcSwap::new(first.clone());
    group.bench_function("publish", |b| {
        let mut current = Arc::new(Version::new(Arc::new(speculative.clone()), Vec::new()));
        b.iter(|| {
            // broadcast.rs: Arc of a clone of the speculative tree, a new
            // Version linked from the current one, stored in the ArcSwap.
            // Nothing else holds the old versions, so each is dropped when
            // `current` moves on and the chain does not grow.
            let version = Arc::new(Version::new(Arc::new(speculative.clone()), Vec::new()));
            let _ = current.next.set(version.clone());
            published.store(version.clone());
            current = version;
        })
    });
    group.bench_function("load_guard", |b| b.iter(|| black_box(published.load().tree.last_zxid())));
    group.bench_function("load_full", |b| b.iter(|| black_box(published.load_full())));
    // The server's own: Shared::tree (load, then clone the tree's Arc).
    let shared = Shared::new(Config::default(), tree.clone(), 1);
    group.bench_function("shared_tree", |b| b.iter(|| black_box(shared.tree())));
    group.finish();
}

fn bench_read(c: &mut Criterion, tree: &Tree) {
    let mut group = c.benchmark_group("read");
    group.throughput(Throughput::Elements(1));
    let requests: Vec<Request> =
        scattered_keys(4096).into_iter().map(|path| Request::GetData { path, watch: false }).collect();
    let mut next = 0;
    group.bench_function("serve/getData", |b| {
        b.iter(|| {
            next = (next + 1) % requests.len();
            black_box(read::serve(tree, black_box(&requests[next]), SESSION, &[]))
        })
    });
    let mut out = Vec::with_capacity(4096);
    group.bench_function("serve_and_reply/getData", |b| {
        b.iter(|| {
            next = (next + 1) % requests.len();
            let reply = read::serve(tree, black_box(&requests[next]), SESSION, &[]);
            out.clear();
            write_reply(
                &mut out,
                ReplyHeader { xid: 1, zxid: tree.last_zxid(), err: reply.err.code() },
                &reply.response,
            );
            black_box(out.len())
        })
    });
    group.finish();
}

fn hot_paths(c: &mut Criterion) {
    bench_jute(c);
    let tree = big_tree();
    assert!(tree.node_count() > KEYS);
    bench_tree(c, &tree);
    bench_prep(c, &tree);
    bench_version(c, &tree);
    bench_read(c, &tree);
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = hot_paths
}
criterion_main!(benches);
