//! Recovery as an operator meets it: snapshots and log compaction across
//! restarts; a torn tail is cut with a log line; a corrupt record, or a data
//! directory from another cluster, stops the server with an error naming the
//! file (and offset); `--truncate-corrupt` starts anyway.

mod common;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::raw::{Conn, Enc};
use common::{wait_for, Server};
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
    let mut child = Command::new(env!("CARGO_BIN_EXE_zoocore"))
        .arg("--config")
        .arg(config)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("spawn zoocore");
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let mut buffer = [0u8; 256];
        while let Ok(read) = stdout.read(&mut buffer) {
            if read == 0 {
                break;
            }
            text.push_str(&String::from_utf8_lossy(&buffer[..read]));
            if text.contains("zoocore listening on") {
                return true;
            }
        }
        false
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let listened = loop {
        if reader.is_finished() {
            break reader.join().unwrap_or(false);
        }
        assert!(Instant::now() < deadline, "zoocore neither exited nor listened");
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = child.kill();
    let _ = child.wait();
    (listened, fs::read_to_string(&stderr_path).unwrap_or_default())
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

#[test]
fn a_torn_tail_is_cut_and_everything_acknowledged_stays() {
    let mut server = Server::start();
    let data = server.dir().expect("spawned").join("data");
    create_nodes(&server, "/torn", 100);
    server.kill();
    let segment = files(&data.join("log"), "log.").pop().expect("a log segment");
    let mut bytes = fs::read(&segment).expect("read segment");
    // Walk the frames to where the records end.
    let mut end = wal::RECORDS_OFFSET as usize;
    while let Ok(wal::record::Decoded::Record { frame_bytes, .. }) = wal::decode_record(&bytes[end..], end as u64) {
        end += frame_bytes;
    }
    // Half a record after the last whole one: what a crash mid-write leaves.
    bytes[end..end + 11].copy_from_slice(&[0x30, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3]);
    fs::write(&segment, &bytes).expect("write segment");
    server.restart();
    check_nodes(&server, "/torn", 100);
    let log = fs::read_to_string(server.dir().unwrap().join("zoocore.stderr.log")).unwrap_or_default();
    assert!(log.contains("truncated"), "the cut is logged:\n{log}");
}

#[test]
fn a_corrupt_record_stops_the_server_naming_file_and_offset() {
    let mut server = Server::start();
    let directory = server.dir().expect("spawned").clone();
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
    let directory = server.dir().expect("spawned").clone();
    create_nodes(&server, "/foreign", 10);
    server.kill();
    let id_file = directory.join("data/cluster-id");
    fs::write(&id_file, "0123456789abcdef\n").expect("write cluster id");
    let (listened, stderr) = run_binary(&directory.join("zoo.cfg"), &[]);
    assert!(!listened, "a foreign data directory must stop the server:\n{stderr}");
    assert!(stderr.contains("log."), "the error names the file:\n{stderr}");
}

#[test]
fn a_damaged_snapshot_stops_the_server_naming_file_and_offset() {
    let mut server = Server::start_with(&["snapCount=100"]);
    let directory = server.dir().expect("spawned").clone();
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
    // The marker of a snapshot reaches the log just after the snapshot is
    // written ("snapshot taken"); wait for it, so the case below is known.
    let stderr_log = directory.join("zoocore.stderr.log");
    let marker_written = |snapshot: &Path| {
        let name = snapshot.file_name().unwrap().to_string_lossy().to_string();
        let index = u64::from_str_radix(name.trim_start_matches("snapshot."), 16).expect("snapshot index");
        fs::read_to_string(&stderr_log).unwrap_or_default().contains(&format!("snapshot taken zxid=0x{index:x}"))
    };
    let newest_before = files(&snapshots, "snapshot.").into_iter().rfind(complete).expect("a snapshot");
    assert!(wait_for(Duration::from_secs(20), || marker_written(&newest_before)), "the snapshot is marked in the log");
    server.kill();
    let newest = files(&snapshots, "snapshot.").into_iter().rfind(complete).expect("a snapshot");
    let mut bytes = fs::read(&newest).expect("read snapshot");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::write(&newest, &bytes).expect("write snapshot");
    let config = directory.join("zoo.cfg");
    let (listened, stderr) = run_binary(&config, &[]);
    assert!(!listened, "a damaged snapshot must stop the server:\n{stderr}");
    let name = newest.file_name().unwrap().to_string_lossy().to_string();
    assert!(stderr.contains(&name) && stderr.contains("offset"), "the error names file and offset:\n{stderr}");
    // The flag falls back to an older snapshot, but the log was compacted
    // past it (the WAL returns entries after its newest marker only), so the
    // server still refuses rather than start with a gap: nothing is dropped
    // silently.
    let (listened, stderr) = run_binary(&config, &["--truncate-corrupt"]);
    if marker_written(&newest) {
        assert!(!listened, "a gap between snapshot and log must stop the server:\n{stderr}");
        assert!(stderr.contains("snapshot is missing"), "the error says why:\n{stderr}");
    } else {
        // A snapshot written just before the kill was not marked yet: the
        // log still holds everything after the older one.
        assert!(listened, "the older snapshot and the whole log recover:\n{stderr}");
    }
}
