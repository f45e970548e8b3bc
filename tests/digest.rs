//! The tree digest against the real ZooKeeper 3.8.
//!
//! ZooKeeper writes into every transaction of its log (3.6+) the digest its
//! tree has after that transaction, and prints its digest history with the
//! `hash` four-letter word. Replaying ZooKeeper's own data directories
//! (tests/fixtures/digest, recorded by record_digest.py, and the migration
//! fixtures) into zoocore's tree must give those same numbers, transaction
//! by transaction; and zoocore's `hash` answers in ZooKeeper's format.

mod common;

use std::path::{Path, PathBuf};

use common::digest::{digest_by_reading, parse_hash, write_until_logged};
use common::raw::Conn;
use common::*;
use zoocore::migrate::{self, datatree::DataTree};

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(path)
}

/// Replays a ZooKeeper data directory's newest snapshot and its logs on
/// the import's model of ZooKeeper's DataTree, converting the model into
/// zoocore's tree after every transaction, and compares that tree's digest
/// with the one ZooKeeper logged. Returns how many were compared.
fn compare_every_logged_digest(directory: &Path) -> usize {
    let version2 = migrate::version_directory(directory);
    let snapshot_file = migrate::list_files(&version2, "snapshot").unwrap().pop().expect("a snapshot");
    let snapshot = migrate::read_zookeeper_snapshot(&snapshot_file.path).unwrap();
    let snapshot_digest = snapshot.digest;
    let mut model = DataTree::from_snapshot(snapshot, snapshot_file.zxid).unwrap();
    // ZooKeeper's snapshot ends with its digest at a zxid (zxid 0 when it
    // had none yet, which its restore ignores too); at the snapshot's own
    // zxid nothing fuzzy happened in between.
    let at_snapshot =
        |recorded: &migrate::zkformat::ZxidDigest| recorded.zxid > 0 && recorded.zxid == snapshot_file.zxid;
    if let Some(recorded) = snapshot_digest.filter(at_snapshot) {
        assert_eq!(model.clone().into_tree().unwrap().digest() as i64, recorded.digest, "snapshot digest");
    }
    let mut compared = 0;
    for log in migrate::list_files(&version2, "log").unwrap() {
        for record in migrate::read_zookeeper_log(&log.path).unwrap().records {
            if record.header.zxid <= snapshot_file.zxid {
                continue;
            }
            model.process_txn(&record.header, &record.txn);
            if let Some((version, digest)) = record.digest {
                assert_eq!(version, zoocore::tree::DIGEST_VERSION);
                let tree = model.clone().into_tree().unwrap();
                assert_eq!(
                    tree.digest() as i64,
                    digest,
                    "{}: digest after zxid {:#x} ({:?})",
                    log.path.display(),
                    record.header.zxid,
                    record.txn
                );
                compared += 1;
            }
        }
    }
    compared
}

#[test]
fn imported_tree_has_the_digest_zookeeper_printed() {
    let printed = parse_hash(&std::fs::read_to_string(fixture("digest/hash.txt")).unwrap());
    let &(last_zxid, last_digest) = printed.last().expect("ZooKeeper printed digests");
    let (tree, _) = migrate::read_zookeeper(&fixture("digest/zk"), None).unwrap();
    assert_eq!(tree.last_zxid(), last_zxid, "the fixture stops at the last printed zxid");
    assert_eq!(tree.digest(), last_digest);
    // The admin command's JSON holds the same numbers.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("digest/hash.json")).unwrap()).unwrap();
    let from_json: Vec<(i64, u64)> = json["digests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| (entry["zxid"].as_i64().unwrap(), entry["digest"].as_u64().unwrap()))
        .collect();
    assert_eq!(from_json, printed);
}

#[test]
fn every_transaction_zookeeper_logged_gives_its_digest() {
    let compared = compare_every_logged_digest(&fixture("digest/zk"));
    assert!(compared >= 250, "compared {compared}");
    // The migration fixtures: sequential, container and TTL nodes, multis,
    // ACLs, closed sessions (tests/fixtures/migrate/README of record_migrate).
    let mut from_migrate = 0;
    for variant in ["plain", "gz", "snappy"] {
        from_migrate += compare_every_logged_digest(&fixture(&format!("migrate/{variant}/zk")));
    }
    assert!(from_migrate > 0, "the migration fixtures log digests");
}

/// ZooKeeper's `hash` admin answer, as recorded.
fn reference_json() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("digest/hash.json")).unwrap()).unwrap()
}

/// Keys of a JSON object, in order.
fn keys(value: &serde_json::Value) -> Vec<String> {
    value.as_object().expect("an object").keys().cloned().collect()
}

#[test]
fn hash_prints_the_history_in_zookeepers_format() {
    if skip_if_external("hash_prints_the_history_in_zookeepers_format", "restarts the server") {
        return;
    }
    let mut server = Server::start();
    assert_eq!(server.four_letter("hash"), "", "nothing is logged before zxid 128, as in ZooKeeper");
    let mut conn = Conn::connect(server.addr());
    // A tree whose every digested field has moved.
    assert_eq!(conn.create("/d", b"first", 0).err, 0);
    assert_eq!(conn.create("/d/eph", b"e", 1).err, 0);
    for _ in 0..3 {
        assert_eq!(conn.create("/d/seq-", b"s", 2).err, 0);
    }
    assert_eq!(conn.delete("/d/seq-0000000001", -1).err, 0);
    let acl = common::raw::Enc::new().str("/d/eph").acls(&[(1, "world", "anyone")]).i32(-1).bytes();
    assert_eq!(conn.request(common::raw::op::SET_ACL, &acl).err, 0);
    assert_eq!(conn.set_data("/", b"root data", -1).err, 0);
    assert_eq!(conn.create("/d/counter", b"0", 0).err, 0);
    let zxid = write_until_logged(&mut conn, "/d/counter", 256);

    let printed = server.four_letter("hash");
    let history = parse_hash(&printed);
    let reference = parse_hash(&std::fs::read_to_string(fixture("digest/hash.txt")).unwrap());
    assert!(!reference.is_empty(), "the reference logged digests");
    assert!(history.len() >= 2, "{printed}");
    assert!(history.windows(2).all(|pair| pair[0].0 / 128 < pair[1].0 / 128), "{printed}");
    assert_eq!(history.last(), Some(&(zxid, digest_by_reading(&mut conn))), "{printed}");

    // The admin command: ZooKeeper's keys, in its order, the same entries.
    let admin = http_json(server.admin_addr().expect("admin server"), "/commands/hash");
    let reference_json = reference_json();
    assert_eq!(keys(&admin), keys(&reference_json));
    let entries = admin["digests"].as_array().unwrap();
    for entry in entries {
        assert_eq!(keys(entry), keys(&reference_json["digests"][0]));
        assert_eq!(entry["digest_version"], reference_json["digests"][0]["digest_version"]);
    }
    let from_admin: Vec<(i64, u64)> =
        entries.iter().map(|entry| (entry["zxid"].as_i64().unwrap(), entry["digest"].as_u64().unwrap())).collect();
    assert_eq!(from_admin, history);

    // Restarted from its own disk, the server replays to the same digests:
    // whatever it logs again agrees with what it logged before, and the
    // next logged digest is again the tree's.
    drop(conn);
    server.restart();
    let mut conn = Conn::connect(server.addr());
    let replayed = parse_hash(&server.four_letter("hash"));
    for entry in &replayed {
        if let Some(before) = history.iter().find(|before| before.0 == entry.0) {
            assert_eq!(before, entry, "zxid {:#x} after the restart", entry.0);
        }
    }
    let zxid = write_until_logged(&mut conn, "/d/counter", zxid + 1);
    let after = parse_hash(&server.four_letter("hash"));
    assert_eq!(after.last(), Some(&(zxid, digest_by_reading(&mut conn))));
}
