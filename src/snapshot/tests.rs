use super::format::NodeRecord;
use super::*;
use crate::proto::codes::{ephemeral_owner, perms};
use crate::tree::{Txn, TxnHeader};

const CLUSTER: u64 = 0x5eed_c0de_0000_0001;

/// A directory under the system's temporary directory, removed on drop.
struct TemporaryDirectory(PathBuf);

impl TemporaryDirectory {
    fn new(name: &str) -> TemporaryDirectory {
        let path = std::env::temp_dir().join(format!("zoocore-snapshot-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TemporaryDirectory(path)
    }
}

impl Drop for TemporaryDirectory {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn meta(index: u64) -> SnapshotMeta {
    SnapshotMeta { index, term: 3, cluster_id: CLUSTER, voters: vec![1, 2, 3], learners: vec![4], ..Default::default() }
}

struct Builder {
    tree: Tree,
    zxid: i64,
}

impl Builder {
    fn new() -> Builder {
        Builder { tree: Tree::new(), zxid: 0 }
    }

    fn apply(&mut self, txn: Txn) {
        self.zxid += 1;
        let header = TxnHeader { zxid: self.zxid, time_ms: 1_700_000_000_000 + self.zxid, session_id: 0, cxid: 0 };
        self.tree.apply(&header, &txn);
    }

    fn create(&mut self, path: &str, data: Option<&[u8]>, acl: Vec<Acl>, owner: i64) {
        self.apply(Txn::Create {
            path: Arc::from(path),
            data: data.map(Arc::from),
            acl: Arc::from(acl),
            ephemeral_owner: owner,
        });
    }
}

/// Persistent, ephemeral, sequential, container and TTL nodes; null and
/// empty data; several ACLs; sessions; a delete so that the reported
/// cversion differs from the create counter.
fn sample_tree() -> Tree {
    let mut builder = Builder::new();
    let open = Acl::open_unsafe;
    let digest = vec![
        Acl::new(perms::ALL, "digest", "user:dGhpcyBpcyBub3QgYSBoYXNo"),
        Acl::new(perms::READ, "ip", "10.0.0.0/8"),
    ];
    builder.apply(Txn::CreateSession { session_id: 0x101, timeout_ms: 30_000, password: [7; 16] });
    builder.apply(Txn::CreateSession { session_id: 0x102, timeout_ms: 4_000, password: *b"0123456789abcdef" });
    builder.create("/app", Some(b"hello"), digest.clone(), 0);
    builder.create("/app/null", None, open(), 0);
    builder.create("/app/empty", Some(b""), open(), 0);
    builder.create("/app/queue", Some(b"q"), open(), 0);
    for sequence in 0..5 {
        builder.create(&format!("/app/queue/item-{sequence:010}"), Some(b"job"), open(), 0);
    }
    builder.apply(Txn::Delete { path: Arc::from("/app/queue/item-0000000001") });
    builder.create("/app/queue/lock-0000000005", None, open(), 0x102);
    builder.create("/app/lock", Some(b"owner"), Acl::read_unsafe(), 0x101);
    builder.create("/app/container", Some(b"c"), open(), ephemeral_owner::CONTAINER);
    builder.create("/app/container/child", Some(b"x"), digest, 0);
    builder.create("/app/ttl", Some(b"t"), open(), ephemeral_owner::ttl(60_000));
    builder.create("/app/ttl-sequential-0000000000", None, open(), ephemeral_owner::ttl(1));
    builder.create("/app/ünïcødé ✓", Some(&[0, 255, 0, 255]), open(), 0);
    builder.apply(Txn::SetData { path: Arc::from("/app"), data: Some(Arc::from(&b"hello again"[..])) });
    builder.apply(Txn::SetAcl { path: Arc::from("/app/empty"), acl: Arc::from(Acl::read_unsafe()) });
    builder.apply(Txn::Error { code: -101 });
    builder.tree
}

fn assert_same_tree(expected: &Tree, actual: &Tree) {
    let mut expected_paths: Vec<&str> = expected.paths().map(|(path, _)| path).collect();
    let mut actual_paths: Vec<&str> = actual.paths().map(|(path, _)| path).collect();
    expected_paths.sort_unstable();
    actual_paths.sort_unstable();
    assert_eq!(expected_paths, actual_paths);
    for (path, node) in expected.paths() {
        let restored = actual.get(path).unwrap();
        assert_eq!(node.stat(), restored.stat(), "stat of {path}");
        assert_eq!(node, restored, "node {path}");
    }
    let sessions = |tree: &Tree| {
        let mut all: Vec<Session> = tree.sessions().cloned().collect();
        all.sort_by_key(|session| session.id);
        all
    };
    assert_eq!(sessions(expected), sessions(actual));
    for session in expected.sessions() {
        let owned = |tree: &Tree| tree.ephemerals_of(session.id).cloned().collect::<Vec<_>>();
        assert_eq!(owned(expected), owned(actual), "ephemerals of {:#x}", session.id);
    }
    assert_eq!(expected.containers().collect::<Vec<_>>(), actual.containers().collect::<Vec<_>>());
    assert_eq!(expected.ttl_nodes().collect::<Vec<_>>(), actual.ttl_nodes().collect::<Vec<_>>());
    assert_eq!(expected.last_zxid(), actual.last_zxid());
    assert_eq!(expected.node_count(), actual.node_count());
    assert_eq!(expected.ephemeral_count(), actual.ephemeral_count());
    // Snapshots do not store the digest: the restore recomputes it.
    assert_eq!(expected.digest(), actual.digest(), "tree digest");
    assert_eq!(expected.approximate_data_bytes(), actual.approximate_data_bytes());
}

fn expect_damaged(result: Result<(Tree, SnapshotMeta), SnapshotError>, file: &Path) -> (u64, String) {
    match result {
        Err(error @ SnapshotError::Damaged { .. }) => {
            assert!(error.to_string().contains(&*file.to_string_lossy()), "the error names the file: {error}");
            let SnapshotError::Damaged { file: named, offset_bytes, reason } = error else { unreachable!() };
            assert_eq!(named, file);
            (offset_bytes, reason)
        }
        Err(other) => panic!("expected damage, got {other}"),
        Ok(_) => panic!("damage to {} went unnoticed", file.display()),
    }
}

fn flip_byte(file: &Path, offset: usize) {
    let mut bytes = fs::read(file).unwrap();
    bytes[offset] ^= 0x20;
    fs::write(file, bytes).unwrap();
}

#[test]
fn file_names_carry_the_index_in_sixteen_hex_digits() {
    assert_eq!(file_name(1000), "snapshot.00000000000003e8");
    assert_eq!(parse_file_name("snapshot.00000000000003e8"), Some(1000));
    assert_eq!(parse_file_name(&file_name(u64::MAX)), Some(u64::MAX));
    for other in ["snapshot.3e8", "snapshot.00000000000003E8", "snapshot.00000000000003e8.tmp", "log.0000000000000001"]
    {
        assert_eq!(parse_file_name(other), None, "{other}");
    }
    assert_eq!(parse_temporary_file_name("snapshot.00000000000003e8.tmp"), Some(1000));
}

#[test]
fn round_trip_keeps_every_node_session_and_stat() {
    let directory = TemporaryDirectory::new("round-trip");
    let tree = sample_tree();
    let mut written_meta = meta(40);
    written_meta.voters_outgoing = vec![1, 2, 5];
    written_meta.learners_next = vec![3];
    written_meta.auto_leave = true;
    let file = write(&directory.0, &tree, &written_meta).unwrap();
    assert_eq!(file, directory.0.join("snapshot.0000000000000028"));
    let (restored, read_meta) = read_latest(&directory.0, CLUSTER).unwrap().unwrap();
    assert_eq!(read_meta, written_meta);
    assert_same_tree(&tree, &restored);

    let null = restored.get("/app/null").unwrap();
    let empty = restored.get("/app/empty").unwrap();
    assert_eq!(null.data(), None);
    assert_eq!(empty.data(), Some(&[][..]));
    let queue = restored.get("/app/queue").unwrap();
    assert_eq!(queue.cversion(), 6, "the raw create counter");
    let stat = queue.stat();
    assert_eq!((stat.num_children, stat.cversion), (5, 7), "reported: 2 * creates - children");
    assert_eq!(restored.get("/app/lock").unwrap().stat().ephemeral_owner, 0x101);
    assert_eq!(restored.get("/app/ttl").unwrap().ttl_ms(), Some(60_000));
    assert!(restored.get("/app/container").unwrap().is_container());
    assert_eq!(restored.get("/app").unwrap().data(), Some(&b"hello again"[..]));
    assert_eq!(restored.session(0x102).unwrap().password, *b"0123456789abcdef");
    assert_eq!(restored.last_zxid(), tree.last_zxid());
}

#[test]
fn large_values_and_long_paths_round_trip() {
    let directory = TemporaryDirectory::new("large");
    let mut builder = Builder::new();
    let big: Vec<u8> = (0..(1 << 20)).map(|index| (index % 251) as u8).collect();
    let at_bound = vec![9u8; crate::tree::INLINE_DATA_BYTES_MAX];
    let long_path = format!("/{}", "p".repeat(4000));
    builder.create("/big", Some(&big), Acl::open_unsafe(), 0);
    builder.create("/bound", Some(&at_bound), Acl::open_unsafe(), 0);
    builder.create(&long_path, Some(b"v"), Acl::read_unsafe(), 0);
    write(&directory.0, &builder.tree, &meta(3)).unwrap();
    let (restored, _) = read_latest(&directory.0, CLUSTER).unwrap().unwrap();
    assert_same_tree(&builder.tree, &restored);
    assert_eq!(restored.get("/big").unwrap().data(), Some(&big[..]));
    assert_eq!(restored.get("/bound").unwrap().data(), Some(&at_bound[..]));
    assert_eq!(restored.get(&long_path).unwrap().acl()[..], Acl::read_unsafe()[..]);
    assert_eq!(restored.approximate_data_bytes(), builder.tree.approximate_data_bytes());
}

#[test]
fn restored_tree_goes_on_applying_like_the_original() {
    let directory = TemporaryDirectory::new("goes-on");
    let mut original = sample_tree();
    write(&directory.0, &original, &meta(1)).unwrap();
    let (mut restored, _) = read_latest(&directory.0, CLUSTER).unwrap().unwrap();
    let header = |zxid| TxnHeader { zxid, time_ms: 5, session_id: 0x101, cxid: 0 };
    let txns = [
        Txn::Create {
            path: Arc::from("/app/queue/item-0000000006"),
            data: None,
            acl: Arc::from(Acl::open_unsafe()),
            ephemeral_owner: 0,
        },
        Txn::CloseSession { session_id: 0x101 },
        Txn::Delete { path: Arc::from("/app/container/child") },
    ];
    for (zxid, txn) in (100..).zip(&txns) {
        assert_eq!(original.apply(&header(zxid), txn), restored.apply(&header(zxid), txn));
    }
    assert_same_tree(&original, &restored);
}

#[test]
fn equal_acl_lists_are_stored_once() {
    let tree = sample_tree();
    let snapshot_meta = meta(1);
    let record = payload_record(&tree, &snapshot_meta);
    // open_unsafe, read_unsafe and the digest+ip list.
    assert_eq!(record.acl_lists.len(), 3);
    assert_eq!(record.nodes.len(), tree.node_count());
    assert_eq!(record.nodes[0].node.path(), "/", "parents first");
}

/// `PayloadRecord` as it was before nodes were archived from the tree's own
/// nodes: records made up front. Its archive must be byte for byte the same
/// (the file format did not change), and tests write damaged payloads with it.
#[derive(rkyv::Archive, rkyv::Serialize)]
struct RecordsPayload<'a> {
    last_zxid: i64,
    #[rkyv(with = rkyv::with::AsVec)]
    voters: &'a [u64],
    #[rkyv(with = rkyv::with::AsVec)]
    learners: &'a [u64],
    #[rkyv(with = rkyv::with::AsVec)]
    voters_outgoing: &'a [u64],
    #[rkyv(with = rkyv::with::AsVec)]
    learners_next: &'a [u64],
    acl_lists: Vec<Vec<AclRecord<'a>>>,
    nodes: Vec<NodeRecord<'a>>,
    sessions: Vec<SessionRecord>,
    auto_leave: bool,
}

#[test]
fn nodes_archive_as_the_records_they_were() {
    let tree = sample_tree();
    let snapshot_meta = meta(1);
    let record = payload_record(&tree, &snapshot_meta);
    let acl_lists = record
        .acl_lists
        .iter()
        .map(|list| list.iter().map(|acl| AclRecord { scheme: acl.scheme, id: acl.id, perms: acl.perms }).collect())
        .collect();
    let sessions = record
        .sessions
        .iter()
        .map(|session| SessionRecord { id: session.id, timeout_ms: session.timeout_ms, password: session.password })
        .collect();
    let records = RecordsPayload {
        last_zxid: record.last_zxid,
        voters: record.voters,
        learners: record.learners,
        voters_outgoing: record.voters_outgoing,
        learners_next: record.learners_next,
        acl_lists,
        nodes: record.nodes.iter().map(NodeEntry::record).collect(),
        sessions,
        auto_leave: record.auto_leave,
    };
    let from_nodes = rkyv::to_bytes::<rancor::Error>(&record).unwrap();
    let from_records = rkyv::to_bytes::<rancor::Error>(&records).unwrap();
    assert_eq!(from_nodes.as_slice(), from_records.as_slice());
}

#[test]
fn the_same_tree_gives_the_same_bytes() {
    let first = TemporaryDirectory::new("same-bytes-1");
    let second = TemporaryDirectory::new("same-bytes-2");
    let tree = sample_tree();
    let one = fs::read(write(&first.0, &tree, &meta(9)).unwrap()).unwrap();
    let two = fs::read(write(&second.0, &tree.clone(), &meta(9)).unwrap()).unwrap();
    assert_eq!(one, two);
}

#[test]
fn a_flipped_payload_byte_is_damage_naming_the_file() {
    let directory = TemporaryDirectory::new("payload-flip");
    let file = write(&directory.0, &sample_tree(), &meta(7)).unwrap();
    let length = fs::metadata(&file).unwrap().len() as usize;
    flip_byte(&file, HEADER_BYTES + (length - HEADER_BYTES) / 2);
    let (offset, reason) = expect_damaged(read_file(&file, CLUSTER, Some(7)), &file);
    assert_eq!(offset, HEADER_BYTES as u64);
    assert!(reason.contains("CRC32C"), "{reason}");
    assert!(read_latest(&directory.0, CLUSTER).is_err());
}

#[test]
fn a_flipped_header_byte_is_damage_never_a_foreign_cluster() {
    let directory = TemporaryDirectory::new("header-flip");
    let file = write(&directory.0, &sample_tree(), &meta(7)).unwrap();
    let pristine = fs::read(&file).unwrap();
    for offset in 0..HEADER_BYTES {
        let mut bytes = pristine.clone();
        bytes[offset] ^= 0x01;
        fs::write(&file, &bytes).unwrap();
        let (reported, _) = expect_damaged(read_file(&file, CLUSTER, Some(7)), &file);
        let expected = if offset < 8 { 0 } else { format::HEADER_CHECKSUM_OFFSET as u64 };
        assert_eq!(reported, expected, "flip at {offset}");
    }
}

#[test]
fn every_single_byte_flip_is_detected_without_panic() {
    let directory = TemporaryDirectory::new("every-flip");
    let mut builder = Builder::new();
    builder.create("/a", Some(b"x"), Acl::open_unsafe(), 0);
    let file = write(&directory.0, &builder.tree, &meta(2)).unwrap();
    let pristine = fs::read(&file).unwrap();
    for offset in 0..pristine.len() {
        let mut bytes = pristine.clone();
        bytes[offset] = !bytes[offset];
        fs::write(&file, &bytes).unwrap();
        expect_damaged(read_file(&file, CLUSTER, Some(2)), &file);
    }
}

#[test]
fn a_truncated_or_extended_file_is_damage() {
    let directory = TemporaryDirectory::new("truncated");
    let file = write(&directory.0, &sample_tree(), &meta(7)).unwrap();
    let pristine = fs::read(&file).unwrap();
    for length in [0, 1, 63, 64, 65, pristine.len() / 2, pristine.len() - 1] {
        fs::write(&file, &pristine[..length]).unwrap();
        let (offset, reason) = expect_damaged(read_file(&file, CLUSTER, Some(7)), &file);
        assert_eq!(offset, length as u64, "truncated to {length}: {reason}");
    }
    let mut longer = pristine.clone();
    longer.extend_from_slice(b"junk");
    fs::write(&file, &longer).unwrap();
    let (offset, _) = expect_damaged(read_file(&file, CLUSTER, Some(7)), &file);
    assert_eq!(offset, pristine.len() as u64);
}

#[test]
fn a_foreign_cluster_is_refused() {
    let directory = TemporaryDirectory::new("foreign");
    let file = write(&directory.0, &sample_tree(), &meta(7)).unwrap();
    match read_latest(&directory.0, CLUSTER + 1) {
        Err(SnapshotError::ForeignCluster { file: named, expected, found }) => {
            assert_eq!((named, expected, found), (file, CLUSTER + 1, CLUSTER));
        }
        other => panic!("expected a foreign cluster error, got {other:?}"),
    }
    assert!(read_latest_allowing_fallback(&directory.0, CLUSTER + 1).is_err(), "no fallback past a foreign cluster");
}

#[test]
fn a_file_name_that_disagrees_with_the_header_is_damage() {
    let directory = TemporaryDirectory::new("renamed");
    let file = write(&directory.0, &sample_tree(), &meta(7)).unwrap();
    let renamed = directory.0.join(file_name(8));
    fs::rename(&file, &renamed).unwrap();
    let Err(error) = read_latest(&directory.0, CLUSTER) else { panic!("a renamed snapshot was accepted") };
    let (offset, _) = expect_damaged(Err(error), &renamed);
    assert_eq!(offset, format::INDEX_OFFSET as u64);
}

/// Writes a version 1 file (the payload as it is) with a correct header
/// and CRC around `payload`.
fn write_raw(directory: &Path, index: u64, payload: &[u8]) -> PathBuf {
    write_with_header(directory, index, format::FORMAT_VERSION_UNCOMPRESSED, payload, 0)
}

/// Writes a file of `version` with a correct header and CRC around the
/// payload bytes given, whatever they hold.
fn write_with_header(directory: &Path, index: u64, version: u32, payload: &[u8], raw_payload_bytes: u64) -> PathBuf {
    let header = Header {
        version,
        cluster_id: CLUSTER,
        index,
        term: 1,
        payload_bytes: payload.len() as u64,
        payload_crc32c: crc32c::crc32c(payload),
        raw_payload_bytes,
    };
    let path = directory.join(file_name(index));
    let mut bytes = header.encode().to_vec();
    bytes.extend_from_slice(payload);
    fs::write(&path, bytes).unwrap();
    path
}

/// A version 2 file's payload decompressed by hand, as the format page
/// describes the chunks: (raw length u32, stored length u32, LZ4 block).
fn decompress_by_hand(file_bytes: &[u8]) -> Vec<u8> {
    let mut raw = Vec::new();
    let mut at = HEADER_BYTES;
    while at < file_bytes.len() {
        let raw_length = u32::from_le_bytes(file_bytes[at..at + 4].try_into().unwrap()) as usize;
        let stored = u32::from_le_bytes(file_bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        assert!(raw_length <= format::CHUNK_RAW_BYTES_MAX);
        raw.extend(lz4_flex::block::decompress(&file_bytes[at + 8..at + 8 + stored], raw_length).unwrap());
        at += 8 + stored;
    }
    raw
}

/// A server keeps reading the snapshots it wrote before version 2.
#[test]
fn a_version_1_file_is_still_read() {
    let directory = TemporaryDirectory::new("version-1");
    let tree = sample_tree();
    let written = write(&directory.0, &tree, &meta(5)).unwrap();
    let raw = decompress_by_hand(&fs::read(&written).unwrap());
    fs::remove_file(&written).unwrap();
    write_raw(&directory.0, 5, &raw);
    let (read, read_meta) = read_latest(&directory.0, CLUSTER).unwrap().expect("the version 1 file");
    assert_same_tree(&tree, &read);
    assert_eq!(read_meta.index, 5);
}

/// Chunks that lie, under a correct CRC (a file made by a bug, or by hand):
/// each is damage at the chunk or the header field at fault, never a panic
/// or an allocation the file cannot back.
#[test]
fn version_2_chunks_that_lie_are_damage() {
    let directory = TemporaryDirectory::new("lying-chunks");
    let tree = sample_tree();
    let written = write(&directory.0, &tree, &meta(6)).unwrap();
    let raw = decompress_by_hand(&fs::read(&written).unwrap());
    fs::remove_file(&written).unwrap();
    let block = lz4_flex::block::compress(&raw);
    let chunk = |raw_length: u32, stored: u32, body: &[u8]| {
        let mut bytes = raw_length.to_le_bytes().to_vec();
        bytes.extend_from_slice(&stored.to_le_bytes());
        bytes.extend_from_slice(body);
        bytes
    };
    let good = chunk(raw.len() as u32, block.len() as u32, &block);
    let raw_length = raw.len() as u64;
    let cases: Vec<(&str, Vec<u8>, u64, u64)> = vec![
        ("short chunk header", good[..5].to_vec(), 1, HEADER_BYTES as u64),
        ("empty chunk", chunk(0, 0, &[]), 1, HEADER_BYTES as u64),
        ("oversized chunk", chunk(u32::MAX, block.len() as u32, &block), raw_length, HEADER_BYTES as u64),
        ("stored past the end", chunk(raw.len() as u32, u32::MAX, &block), raw_length, HEADER_BYTES as u64),
        ("not LZ4", chunk(raw.len() as u32, 16, &[0xff; 16]), raw_length, HEADER_BYTES as u64),
        ("raw length too small", good.clone(), raw_length - 1, HEADER_BYTES as u64),
        ("raw length too large", good.clone(), raw_length + 1, format::RAW_PAYLOAD_LENGTH_OFFSET as u64),
        ("raw length impossible", good.clone(), u64::MAX, format::RAW_PAYLOAD_LENGTH_OFFSET as u64),
    ];
    for (index, (name, payload, raw_payload_bytes, at)) in cases.into_iter().enumerate() {
        let file = write_with_header(&directory.0, index as u64, format::FORMAT_VERSION, &payload, raw_payload_bytes);
        let (offset, reason) = expect_damaged(read_file(&file, CLUSTER, Some(index as u64)), &file);
        assert_eq!(offset, at, "{name}: {reason}");
        fs::remove_file(&file).unwrap();
    }
    // The same chunk with the truth in the header reads back.
    let file = write_with_header(&directory.0, 99, format::FORMAT_VERSION, &good, raw_length);
    assert_same_tree(&tree, &read_file(&file, CLUSTER, Some(99)).unwrap().0);
}

/// A snapshot is much smaller than its payload: paths share prefixes and
/// node records are mostly zeros.
#[test]
fn the_payload_is_compressed() {
    let directory = TemporaryDirectory::new("compressed");
    let mut builder = Builder::new();
    for directory_index in 0..100 {
        builder.create(&format!("/d{directory_index}"), None, Acl::open_unsafe(), 0);
        for key in 0..50 {
            builder.create(&format!("/d{directory_index}/k{key}"), Some(&[key as u8; 40]), Acl::open_unsafe(), 0);
        }
    }
    let file = write(&directory.0, &builder.tree, &meta(7)).unwrap();
    let bytes = fs::read(&file).unwrap();
    let raw = decompress_by_hand(&bytes);
    assert!(bytes.len() * 2 < raw.len(), "{} bytes on disk for {} raw", bytes.len(), raw.len());
    assert_same_tree(&builder.tree, &read_file(&file, CLUSTER, Some(7)).unwrap().0);
}

#[test]
fn a_well_checksummed_payload_that_is_not_rkyv_is_refused() {
    let directory = TemporaryDirectory::new("garbage");
    for (index, payload) in
        [vec![], vec![0u8; 7], vec![0xff; 128], (0..4096u32).map(|n| (n * 31) as u8).collect()].into_iter().enumerate()
    {
        let file = write_raw(&directory.0, index as u64, &payload);
        let (offset, reason) = expect_damaged(read_file(&file, CLUSTER, None), &file);
        assert_eq!(offset, HEADER_BYTES as u64, "{reason}");
    }
}

#[test]
fn a_payload_that_is_not_a_tree_is_refused() {
    let directory = TemporaryDirectory::new("not-a-tree");
    let serialize = |record: &RecordsPayload| rkyv::to_bytes::<rancor::Error>(record).unwrap();
    let node = |path: &'static [u8], acl_list: u32| NodeRecord {
        path,
        data: None,
        czxid: 0,
        mzxid: 0,
        pzxid: 0,
        ctime_ms: 0,
        mtime_ms: 0,
        ephemeral_owner: 0,
        version: 0,
        cversion: 0,
        aversion: 0,
        acl_list,
    };
    let acl = || vec![AclRecord { scheme: b"world", id: b"anyone", perms: perms::ALL }];
    let payload = |nodes: Vec<NodeRecord<'static>>, acl_lists: Vec<Vec<AclRecord<'static>>>| RecordsPayload {
        last_zxid: 0,
        voters: &[],
        learners: &[],
        voters_outgoing: &[],
        learners_next: &[],
        acl_lists,
        nodes,
        sessions: vec![],
        auto_leave: false,
    };
    let cases = [
        ("orphan", payload(vec![node(b"/", 0), node(b"/a/b", 0)], vec![acl()])),
        ("no root", payload(vec![], vec![])),
        ("bad acl", payload(vec![node(b"/", 1)], vec![acl()])),
        ("bad utf8", payload(vec![node(b"/", 0), node(b"/\xff", 0)], vec![acl()])),
    ];
    for (index, (name, record)) in cases.iter().enumerate() {
        let file = write_raw(&directory.0, index as u64, &serialize(record));
        let (offset, reason) = expect_damaged(read_file(&file, CLUSTER, None), &file);
        assert!(offset >= HEADER_BYTES as u64, "{name}: {offset} {reason}");
    }
}

#[test]
fn read_latest_picks_the_newest_and_ignores_temporary_files() {
    let directory = TemporaryDirectory::new("newest");
    assert!(read_latest(&directory.0, CLUSTER).unwrap().is_none());
    assert!(read_latest(&directory.0.join("missing"), CLUSTER).unwrap().is_none());
    let mut builder = Builder::new();
    for index in [5u64, 9, 7] {
        builder.create(&format!("/n{index}"), Some(b"v"), Acl::open_unsafe(), 0);
        write(&directory.0, &builder.tree, &meta(index)).unwrap();
    }
    fs::write(directory.0.join(format!("{}{TEMPORARY_SUFFIX}", file_name(10))), b"half written").unwrap();
    fs::write(directory.0.join("unrelated"), b"x").unwrap();
    let (tree, found) = read_latest(&directory.0, CLUSTER).unwrap().unwrap();
    assert_eq!(found.index, 9);
    assert!(tree.get("/n9").is_some() && tree.get("/n7").is_none());
    assert_eq!(list(&directory.0).unwrap().iter().map(|(index, _)| *index).collect::<Vec<_>>(), vec![5, 7, 9]);
}

#[test]
fn damage_to_the_newest_stops_unless_fallback_is_allowed() {
    let directory = TemporaryDirectory::new("fallback");
    let tree = sample_tree();
    write(&directory.0, &tree, &meta(3)).unwrap();
    write(&directory.0, &tree, &meta(4)).unwrap();
    let newest = write(&directory.0, &tree, &meta(5)).unwrap();
    flip_byte(&newest, 100);
    let Err(error) = read_latest(&directory.0, CLUSTER) else { panic!("damage went unnoticed") };
    expect_damaged(Err(error), &newest);
    let (_, found) = read_latest_allowing_fallback(&directory.0, CLUSTER).unwrap().unwrap();
    assert_eq!(found.index, 4);
    for index in [3, 4] {
        flip_byte(&directory.0.join(file_name(index)), 70);
    }
    let Err(error) = read_latest_allowing_fallback(&directory.0, CLUSTER) else { panic!("all damaged, yet read") };
    expect_damaged(Err(error), &newest);
}

#[test]
fn purge_keeps_the_newest_and_at_least_three() {
    let directory = TemporaryDirectory::new("purge");
    let tree = Tree::new();
    for index in 1..=6 {
        write(&directory.0, &tree, &meta(index * 10)).unwrap();
    }
    let stale = directory.0.join(format!("{}{TEMPORARY_SUFFIX}", file_name(15)));
    let in_flight = directory.0.join(format!("{}{TEMPORARY_SUFFIX}", file_name(70)));
    fs::write(&stale, b"").unwrap();
    fs::write(&in_flight, b"").unwrap();
    let purged = purge(&directory.0, 4).unwrap();
    assert_eq!(purged.deleted, vec![directory.0.join(file_name(10)), stale, directory.0.join(file_name(20))]);
    assert_eq!(purged.oldest_kept_index, Some(30));
    assert!(in_flight.exists(), "a write that may be under way is left alone");
    let purged = purge(&directory.0, 1).unwrap();
    assert_eq!(purged.oldest_kept_index, Some(40), "a count below 3 is raised to 3");
    assert_eq!(list(&directory.0).unwrap().len(), 3);
    assert_eq!(purge(&directory.0, 3).unwrap().deleted, Vec::<PathBuf>::new());
    let empty = TemporaryDirectory::new("purge-empty");
    assert_eq!(purge(&empty.0, 3).unwrap(), Purged::default());
}

#[test]
fn spawn_write_snapshots_the_version_it_was_handed() {
    let directory = TemporaryDirectory::new("spawn");
    let mut builder = Builder::new();
    builder.create("/before", None, Acl::open_unsafe(), 0);
    let handed = Arc::new(builder.tree.clone());
    let handle = spawn_write(directory.0.clone(), handed.clone(), meta(1)).unwrap();
    builder.create("/after", None, Acl::open_unsafe(), 0);
    handle.join().unwrap().unwrap();
    let (tree, _) = read_latest(&directory.0, CLUSTER).unwrap().unwrap();
    assert_same_tree(&handed, &tree);
    assert!(tree.get("/after").is_none());
}

#[test]
fn the_written_version_is_let_go_where_the_handle_is_joined() {
    let directory = TemporaryDirectory::new("spawn-drop");
    let mut builder = Builder::new();
    builder.create("/held", Some(b"value".as_slice()), Acl::open_unsafe(), 0);
    let handed = Arc::new(builder.tree.clone());
    let weak = Arc::downgrade(&handed);
    let handle = spawn_write(directory.0.clone(), handed, meta(1)).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !handle.is_finished() {
        assert!(std::time::Instant::now() < deadline, "the snapshot thread did not finish in 30 s");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    // The thread is done and has dropped its reference; the handle's is
    // the last one, so the version is freed by whoever joins.
    assert_eq!(Arc::strong_count(handle.tree()), 1);
    assert!(weak.upgrade().is_some());
    handle.join().unwrap().unwrap();
    assert!(weak.upgrade().is_none());
}

#[test]
fn write_into_a_missing_directory_is_an_io_error() {
    let directory = TemporaryDirectory::new("missing-directory");
    let missing = directory.0.join("absent");
    match write(&missing, &Tree::new(), &meta(1)) {
        Err(SnapshotError::Io { path, .. }) => assert!(path.starts_with(&missing)),
        other => panic!("expected an IO error, got {other:?}"),
    }
}

#[test]
fn a_hundred_thousand_nodes_round_trip() {
    let directory = TemporaryDirectory::new("hundred-thousand");
    let mut builder = Builder::new();
    let data = [0x5a_u8; 100];
    for parent in 0..100 {
        builder.create(&format!("/p{parent:03}"), Some(&data), Acl::open_unsafe(), 0);
        for child in 0..999 {
            builder.create(&format!("/p{parent:03}/c{child:04}"), Some(&data), Acl::open_unsafe(), 0);
        }
    }
    assert_eq!(builder.tree.node_count(), 100_000 + 4);
    write(&directory.0, &builder.tree, &meta(builder.zxid as u64)).unwrap();
    let (tree, found) = read_latest(&directory.0, CLUSTER).unwrap().unwrap();
    assert_eq!(found.index, builder.zxid as u64);
    assert_same_tree(&builder.tree, &tree);
}

#[test]
fn next_snapshot_after_follows_sync_request_processor() {
    assert_eq!(next_snapshot_after(100_000, 0), 50_000);
    assert_eq!(next_snapshot_after(100_000, 49_999), 99_999);
    assert_eq!(next_snapshot_after(100_000, 50_000), 50_000);
    assert_eq!(next_snapshot_after(100_000, u64::MAX), 50_000 + u64::MAX % 50_000);
    // ZooKeeper raises a snapCount below 2 to 2: the threshold is then 1.
    for count in [0, 1, 2, 3] {
        assert_eq!(next_snapshot_after(count, 12345), 1, "count {count}");
    }
    for random in (0..1000u64).map(|n| n.wrapping_mul(0x9e37_79b9_7f4a_7c15)) {
        let threshold = next_snapshot_after(1000, random);
        assert!((500..1000).contains(&threshold));
    }
    assert_eq!(next_snapshot_after_bytes(0, 5), None);
    assert_eq!(next_snapshot_after_bytes(1, 5), None);
    assert_eq!(next_snapshot_after_bytes(4 << 30, 7), Some((2 << 30) + 7));
}

/// Decodes a snapshot by hand, as docs/formats/snapshot.md describes it,
/// without rkyv: the page and the code cannot drift apart unnoticed.
#[test]
fn the_format_page_describes_the_bytes() {
    use std::mem::size_of;
    assert_eq!(size_of::<format::ArchivedPayloadRecord>(), 128);
    assert_eq!(size_of::<ArchivedNodeRecord>(), 104);
    assert_eq!(size_of::<format::ArchivedAclRecord>(), 40);
    assert_eq!(size_of::<format::ArchivedSessionRecord>(), 32);

    let directory = TemporaryDirectory::new("by-hand");
    let mut builder = Builder::new();
    builder.apply(Txn::CreateSession { session_id: 0x77, timeout_ms: 9000, password: [3; 16] });
    builder.create("/data", Some(b"data"), Acl::open_unsafe(), 0);
    builder.create("/n", None, Acl::open_unsafe(), 0);
    let file = write(&directory.0, &builder.tree, &meta(0x1234)).unwrap();
    let file_bytes = fs::read(&file).unwrap();
    let header_u32 = |offset: usize| u32::from_le_bytes(file_bytes[offset..offset + 4].try_into().unwrap());
    let header_u64 = |offset: usize| u64::from_le_bytes(file_bytes[offset..offset + 8].try_into().unwrap());
    assert_eq!(&file_bytes[0..8], b"ZOOSNAP\0");
    assert_eq!(header_u32(8), 2);
    assert_eq!(header_u32(12), 0);
    assert_eq!((header_u64(16), header_u64(24), header_u64(32)), (CLUSTER, 0x1234, 3));
    assert_eq!(header_u64(40) as usize, file_bytes.len() - 64);
    assert_eq!(header_u32(48), crc32c::crc32c(&file_bytes[64..]));
    assert_eq!(header_u32(60), crc32c::crc32c(&file_bytes[..60]));
    // The payload: chunks of (raw length, stored length, LZ4 block); what
    // follows reads the decompressed payload, whose length is at 52.
    let bytes = decompress_by_hand(&file_bytes);
    assert_eq!(header_u64(52) as usize, bytes.len());
    let u32_at = |offset: usize| u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap());
    let u64_at = |offset: usize| u64::from_le_bytes(bytes[offset..offset + 8].try_into().unwrap());
    let i64_at = |offset: usize| u64_at(offset) as i64;

    // The root record is the last 128 bytes; a list is (offset relative to
    // the list field itself as i64, count as u64).
    let root = bytes.len() - 128;
    let list = |field: usize| ((field as i64 + i64_at(field)) as usize, u64_at(field + 8) as usize);
    assert_eq!(i64_at(root), builder.tree.last_zxid());
    let (voters, voter_count) = list(root + 8);
    assert_eq!(voter_count, 3);
    assert_eq!((u64_at(voters), u64_at(voters + 8), u64_at(voters + 16)), (1, 2, 3));
    let (learners, learner_count) = list(root + 24);
    assert_eq!((learner_count, u64_at(learners)), (1, 4));
    assert_eq!(list(root + 40).1 + list(root + 56).1, 0);
    let (acl_lists, acl_list_count) = list(root + 72);
    assert_eq!(acl_list_count, 2, "open_unsafe and read_unsafe (/zookeeper/config)");
    let (first_list, first_list_length) = list(acl_lists);
    assert_eq!(first_list_length, 1);
    let (scheme, scheme_length) = list(first_list);
    let (id, id_length) = list(first_list + 16);
    assert_eq!(&bytes[scheme..scheme + scheme_length], b"world");
    assert_eq!(&bytes[id..id + id_length], b"anyone");
    assert_eq!(u32_at(first_list + 32) as i32, perms::ALL);
    assert_eq!(&bytes[first_list + 36..first_list + 40], &[0; 4], "padding is zero");
    assert_eq!(bytes[root + 120], 0, "auto_leave");
    assert_eq!(&bytes[root + 121..root + 128], &[0; 7], "padding is zero");

    let (nodes, node_count) = list(root + 88);
    assert_eq!(node_count, 6);
    let node = |position: usize| nodes + position * 104;
    let path_of = |record: usize| {
        let (path, length) = list(record);
        String::from_utf8(bytes[path..path + length].to_vec()).unwrap()
    };
    let paths: Vec<String> = (0..node_count).map(|position| path_of(node(position))).collect();
    assert_eq!(paths, ["/", "/n", "/data", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"]);
    assert_eq!(&bytes[node(1) + 16..node(1) + 40], &[0; 24], "null data: tag 0, the rest zero");
    let named = node(2);
    assert_eq!(&bytes[named + 16..named + 24], &[1, 0, 0, 0, 0, 0, 0, 0], "data present, then padding");
    let (data, data_length) = list(named + 24);
    assert_eq!(&bytes[data..data + data_length], b"data");
    let stored = builder.tree.get("/data").unwrap();
    assert_eq!(
        [i64_at(named + 40), i64_at(named + 48), i64_at(named + 56), i64_at(named + 64), i64_at(named + 72)],
        [stored.czxid(), stored.mzxid(), stored.pzxid(), stored.ctime_ms(), stored.mtime_ms()]
    );
    assert_eq!(i64_at(named + 80), 0, "ephemeral owner");
    assert_eq!([u32_at(named + 88), u32_at(named + 92), u32_at(named + 96), u32_at(named + 100)], [0, 0, 0, 0]);
    let config = (0..node_count).map(node).find(|record| path_of(*record) == "/zookeeper/config").unwrap();
    assert_eq!(u32_at(config + 96) as i32, -1, "aversion of /zookeeper/config");
    assert_eq!(u32_at(config + 100), 1, "read_unsafe is the second ACL list");

    let (sessions, session_count) = list(root + 104);
    assert_eq!(session_count, 1);
    assert_eq!((i64_at(sessions), u32_at(sessions + 8)), (0x77, 9000));
    assert_eq!(&bytes[sessions + 12..sessions + 28], &[3; 16]);
    assert_eq!(&bytes[sessions + 28..sessions + 32], &[0; 4], "padding is zero");
}

#[test]
fn the_checksum_is_standard_crc32c() {
    // The check value of CRC-32C (Castagnoli), as the format page states.
    assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
}
