//! Recovery as an operator meets it: snapshots and log compaction across
//! restarts; a torn tail is cut with a log line; a corrupt record, or a data
//! directory from another cluster, stops the server with an error naming the
//! file (and offset); `--truncate-corrupt` starts anyway.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::raw::{Conn, Enc};
use common::{wait_for, zoocore, Process, Server, LISTENING};
use zoocore::proto::codes::op;
use zoocore::wal;

const NODES: usize = 600;

fn create_nodes(server: &Server, prefix: &str, count: usize) {
    let mut conn = Conn::connect(server.addr());
    assert_eq!(conn.create(prefix, b"", 0).err, 0);
    // Pipelined, so the log sees real batches.
    let mut sent = Vec::new();
    for index in 0..count {
        let body = Enc::new().str(&format!("{prefix}/n{index}")).buf(format!("v{index}").as_bytes()).open_acl().i32(0);
        sent.push(conn.send(op::CREATE, &body.bytes()).expect("send"));
        if sent.len() == 64 || index + 1 == count {
            for _ in sent.drain(..) {
                assert_eq!(conn.read_reply().expect("reply").err, 0);
            }
        }
    }
}

fn check_nodes(server: &Server, prefix: &str, count: usize) {
    let mut conn = Conn::connect(server.addr());
    for index in 0..count {
        let reply = conn.request(op::GET_DATA, &Enc::new().str(&format!("{prefix}/n{index}")).bool(false).bytes());
        assert_eq!(reply.err, 0, "{prefix}/n{index} after restart");
        assert_eq!(reply.dec().buf().as_deref(), Some(format!("v{index}").as_bytes()));
    }
}

fn files(directory: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(directory)
        .map(|entries| entries.filter_map(|entry| entry.ok().map(|entry| entry.path())).collect())
        .unwrap_or_default();
    found.retain(|path| path.file_name().is_some_and(|name| name.to_string_lossy().starts_with(prefix)));
    found.sort();
    found
}

/// Runs the binary on the server's config and data until it exits or
/// prints its listening line; returns (listened, stderr).
fn run_binary(config: &Path, extra: &[&str]) -> (bool, String) {
    let stderr_path = config.with_file_name("probe.stderr.log");
    let _ = fs::remove_file(&stderr_path);
    let mut command = zoocore(&["--config", config.to_str().expect("a UTF-8 path")]);
    let mut process = Process::start(command.args(extra), Some(&stderr_path));
    let listened = process.wait_for_line(LISTENING, Duration::from_secs(30)).is_ok();
    process.kill();
    (listened, process.stderr())
}

#[test]
fn snapshots_and_the_compacted_log_survive_restarts() {
    let mut server = Server::start_with(&["snapCount=100"]);
    let data = server.dir().expect("spawned").join("data");
    create_nodes(&server, "/durable", NODES);
    assert!(
        wait_for(Duration::from_secs(20), || !files(&data.join("snapshot"), "snapshot.").is_empty()),
        "a snapshot is written every snapCount transactions"
    );
    server.restart();
    check_nodes(&server, "/durable", NODES);
    create_nodes(&server, "/more", 50);
    server.restart();
    check_nodes(&server, "/durable", NODES);
    check_nodes(&server, "/more", 50);
    let log = server.stderr_tail();
    assert!(!log.contains("panicked"), "{log}");
}

/// Compaction deletes the segments behind the retained snapshots off the
/// write path (a thread of its own): they do go, while writes go on, and
/// what is left recovers everything.
#[test]
fn compacted_log_segments_are_deleted_while_writes_go_on() {
    let mut server = Server::start_with(&["snapCount=100", "preAllocSize=16"]);
    let log_directory = server.dir().expect("spawned").join("data/log");
    create_nodes(&server, "/compacted", 1500);
    let deleted = wait_for(Duration::from_secs(20), || server.stderr_tail().contains("log segment compacted away"));
    assert!(deleted, "compaction deleted segments:\n{}", server.stderr_tail());
    let left = files(&log_directory, "log.");
    let oldest = left.first().and_then(|path| path.file_name()).map(|name| name.to_string_lossy().into_owned());
    // Segments are named by their first index: the first one is gone.
    assert!(
        oldest.as_deref().is_some_and(|name| name != "log.0000000000000001"),
        "the oldest segments were deleted: {left:?}"
    );
    server.restart();
    check_nodes(&server, "/compacted", 1500);
}

#[test]
fn a_torn_tail_is_cut_and_everything_acknowledged_stays() {
    let mut server = Server::start();
    let data = server.dir().expect("spawned").join("data");
    create_nodes(&server, "/torn", 100);
    server.kill();
    let segment = files(&data.join("log"), "log.").pop().expect("a log segment");
    let mut bytes = fs::read(&segment).expect("read segment");
    // Walk the batches to where the records end.
    let end = wal::replay::scan_batches(&bytes, wal::RECORDS_OFFSET).end.offset() as usize;
    // The first bytes of a batch after the last whole one, the rest still
    // zeros: what a crash mid-write leaves.
    bytes[end..end + 11].copy_from_slice(&[0x09, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 5, 2, 3]);
    fs::write(&segment, &bytes).expect("write segment");
    server.restart();
    check_nodes(&server, "/torn", 100);
    let log = fs::read_to_string(server.dir().unwrap().join("zoocore.stderr.log")).unwrap_or_default();
    assert!(log.contains("truncated"), "the cut is logged:\n{log}");
}

#[test]
fn a_corrupt_record_stops_the_server_naming_file_and_offset() {
    let mut server = Server::start();
    let directory = server.dir().expect("spawned").to_path_buf();
    create_nodes(&server, "/corrupt", 100);
    server.kill();
    let segment = files(&directory.join("data/log"), "log.").pop().expect("a log segment");
    let mut bytes = fs::read(&segment).expect("read segment");
    // Records start after the 4096-byte segment header; damage an early one,
    // with many whole records after it.
    bytes[4096 + 200] ^= 0xff;
    fs::write(&segment, &bytes).expect("write segment");
    let config = directory.join("zoo.cfg");
    let (listened, stderr) = run_binary(&config, &[]);
    assert!(!listened, "a corrupt log must stop the server:\n{stderr}");
    let name = segment.file_name().unwrap().to_string_lossy().to_string();
    assert!(stderr.contains(&name) && stderr.contains("offset"), "the error names file and offset:\n{stderr}");
    let (listened, stderr) = run_binary(&config, &["--truncate-corrupt"]);
    assert!(listened, "--truncate-corrupt starts the server:\n{stderr}");
}

#[test]
fn a_data_directory_of_another_cluster_is_refused() {
    let mut server = Server::start();
    let directory = server.dir().expect("spawned").to_path_buf();
    create_nodes(&server, "/foreign", 10);
    server.kill();
    let id_file = directory.join("data/cluster-id");
    fs::write(&id_file, "0123456789abcdef\n").expect("write cluster id");
    let (listened, stderr) = run_binary(&directory.join("zoo.cfg"), &[]);
    assert!(!listened, "a foreign data directory must stop the server:\n{stderr}");
    assert!(stderr.contains("log."), "the error names the file:\n{stderr}");
}

/// The entries of a version 2 segment: (index, offset of the record, frame
/// bytes).
fn entries_in(bytes: &[u8]) -> Vec<(u64, usize, usize)> {
    wal::replay::scan_batches(bytes, wal::RECORDS_OFFSET)
        .records
        .iter()
        .filter_map(|scanned| match scanned.record {
            wal::Record::Entry { index, .. } => Some((index, scanned.offset as usize, scanned.record.frame_bytes())),
            _ => None,
        })
        .collect()
}

fn snapshot_index(path: &Path) -> u64 {
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    u64::from_str_radix(name.trim_start_matches("snapshot."), 16).expect("snapshot index")
}

/// Issue 15, item 1: the last record of the newest segment, written whole
/// and synced (it holds the last acknowledged create), then damaged. A torn
/// write could never leave that (its batch's commit frame is there), so the
/// server refuses to start, naming file and offset, instead of cutting it.
#[test]
fn a_damaged_last_record_is_refused_not_cut_as_a_torn_tail() {
    let mut server = Server::start();
    let directory = server.dir().expect("spawned").to_path_buf();
    create_nodes(&server, "/last", 300);
    server.kill();
    let segment = files(&directory.join("data/log"), "log.").pop().expect("a log segment");
    let clean = fs::read(&segment).expect("read segment");
    let &(index, offset, frame_bytes) = entries_in(&clean).last().expect("entries");
    let config = directory.join("zoo.cfg");
    let name = segment.file_name().unwrap().to_string_lossy().to_string();
    // A byte of the payload, then a byte of the length field.
    for damaged in [offset + frame_bytes - 2, offset + 1] {
        let mut bytes = clean.clone();
        bytes[damaged] ^= 0x10;
        fs::write(&segment, &bytes).expect("write segment");
        let (listened, stderr) = run_binary(&config, &[]);
        assert!(!listened, "entry {index} damaged at {damaged}: the server must refuse to start:\n{stderr}");
        assert!(
            stderr.contains(&name) && stderr.contains(&format!("offset {offset}")),
            "the error names file and offset {offset}:\n{stderr}"
        );
        assert!(!stderr.contains("torn tail"), "damage is not a torn tail:\n{stderr}");
    }
    fs::write(&segment, &clean).expect("restore segment");
    server.restart();
    check_nodes(&server, "/last", 300);
}

/// Issue 15, item 2: damage in a log entry that the newest snapshot covers,
/// with entries after the snapshot only in the log. `--truncate-corrupt`
/// needs to cut nothing that matters: it keeps every entry after the
/// snapshot, logs what it cut and moves the original segment aside.
#[test]
fn truncate_corrupt_keeps_every_record_the_snapshot_does_not_cover() {
    let mut server = Server::start_with(&["snapCount=200"]);
    let directory = server.dir().expect("spawned").to_path_buf();
    let snapshots = directory.join("data/snapshot");
    create_nodes(&server, "/keep", NODES);
    let stderr_log = directory.join("zoocore.stderr.log");
    let marked = |index: u64| {
        fs::read_to_string(&stderr_log).unwrap_or_default().contains(&format!("snapshot taken zxid=0x{index:x}"))
    };
    assert!(
        wait_for(Duration::from_secs(20), || files(&snapshots, "snapshot.")
            .iter()
            .rev()
            .find(|path| !path.to_string_lossy().ends_with(".tmp"))
            .is_some_and(|path| marked(snapshot_index(path)))),
        "a snapshot is written and marked"
    );
    // Entries after the newest snapshot, only in the log.
    create_nodes(&server, "/after", 50);
    server.kill();
    let newest = files(&snapshots, "snapshot.").into_iter().rfind(|path| !path.to_string_lossy().ends_with(".tmp"));
    let covered = snapshot_index(&newest.expect("a snapshot"));
    let log_directory = directory.join("data/log");
    let segment = files(&log_directory, "log.").pop().expect("a log segment");
    let mut bytes = fs::read(&segment).expect("read segment");
    let entries = entries_in(&bytes);
    let &(index, offset, frame_bytes) =
        entries.iter().find(|(index, _, _)| *index + 20 == covered).expect("an entry below the snapshot in the log");
    assert!(entries.last().unwrap().0 > covered + 40, "entries after the snapshot are in the log");
    bytes[offset + frame_bytes / 2] ^= 0x01;
    fs::write(&segment, &bytes).expect("write segment");

    let config = directory.join("zoo.cfg");
    let (listened, stderr) = run_binary(&config, &[]);
    assert!(!listened, "damage is refused without the flag:\n{stderr}");
    let (listened, stderr) = run_binary(&config, &["--truncate-corrupt"]);
    assert!(listened, "--truncate-corrupt starts the server (entry {index} damaged, snapshot {covered}):\n{stderr}");
    assert!(
        stderr.contains("moved_aside_to") && stderr.contains("no whole entry lost"),
        "what was cut is logged:\n{stderr}"
    );
    let aside: Vec<PathBuf> = files(&log_directory, "truncated-");
    assert_eq!(aside.len(), 1, "one aside directory");
    let kept = aside[0].join(segment.file_name().unwrap());
    assert_eq!(fs::read(&kept).expect("the original segment is kept aside"), bytes);
    // Later starts need no flag, and nothing acknowledged is missing.
    server.restart();
    check_nodes(&server, "/keep", NODES);
    check_nodes(&server, "/after", 50);
}

/// Issue 15, item 3: a damaged newest snapshot is skipped with a logged
/// reason and recovery replays from the one before it, as ZooKeeper does;
/// snapshots left unfinished by a crash are removed at start.
#[test]
fn a_damaged_newest_snapshot_falls_back_to_an_older_one() {
    let mut server = Server::start_with(&["snapCount=100"]);
    let directory = server.dir().expect("spawned").to_path_buf();
    let snapshots = directory.join("data/snapshot");
    let complete = |path: &PathBuf| !path.to_string_lossy().ends_with(".tmp");
    create_nodes(&server, "/snap", NODES);
    assert!(
        wait_for(Duration::from_secs(20), || files(&snapshots, "snapshot.")
            .iter()
            .filter(|path| complete(path))
            .count()
            >= 2),
        "several snapshots are written"
    );
    let stderr_log = directory.join("zoocore.stderr.log");
    let marker_written = |snapshot: &Path| {
        fs::read_to_string(&stderr_log)
            .unwrap_or_default()
            .contains(&format!("snapshot taken zxid=0x{:x}", snapshot_index(snapshot)))
    };
    let newest_before = files(&snapshots, "snapshot.").into_iter().rfind(complete).expect("a snapshot");
    assert!(wait_for(Duration::from_secs(20), || marker_written(&newest_before)), "the snapshot is marked in the log");
    create_nodes(&server, "/later", 20);
    server.kill();
    let newest = files(&snapshots, "snapshot.").into_iter().rfind(complete).expect("a snapshot");
    let mut bytes = fs::read(&newest).expect("read snapshot");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::write(&newest, &bytes).expect("write snapshot");
    // Leftovers of crashes mid-snapshot.
    let leftovers: Vec<PathBuf> =
        (1..=3).map(|index| snapshots.join(format!("snapshot.{:016x}.tmp", index * 7))).collect();
    for leftover in &leftovers {
        fs::write(leftover, b"half a snapshot").expect("write leftover");
    }
    server.restart();
    check_nodes(&server, "/snap", NODES);
    check_nodes(&server, "/later", 20);
    let log = server.stderr_tail();
    let name = newest.file_name().unwrap().to_string_lossy().to_string();
    assert!(log.contains(&name) && log.contains("falling back"), "the fallback is logged with its reason:\n{log}");
    for leftover in &leftovers {
        assert!(!leftover.exists(), "{} is removed at start", leftover.display());
    }
}
