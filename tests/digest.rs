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

use common::*;
use zoocore::migrate::{self, datatree::DataTree};

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(path)
}

/// `hash` lines as ZooKeeper prints them: hex zxid, ": ", decimal digest.
fn parse_hash(text: &str) -> Vec<(i64, u64)> {
    text.lines()
        .map(|line| {
            let (zxid, digest) = line.split_once(": ").unwrap_or_else(|| panic!("not a hash line: {line:?}"));
            (i64::from_str_radix(zxid, 16).expect("hex zxid"), digest.parse().expect("decimal digest"))
        })
        .collect()
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
