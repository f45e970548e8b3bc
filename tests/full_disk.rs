//! Issue 15, item 4: a full disk never leaves a half-dead server.
//!
//! The test makes a small ext4 filesystem in a file, loop-mounts it (root
//! only; without root it says so and checks nothing else), puts dataLogDir
//! there and writes until the disk is full. zoocore fail-stops: it exits at
//! once with a non-zero status and a log line naming ENOSPC and the file, so
//! a supervisor restarts it, and once space is freed it starts again with
//! every acknowledged write. At start, a filesystem with less free space than
//! one preallocated segment gets a smaller segment and a warning instead of a
//! refusal, as ZooKeeper starts there too.

mod common;

use std::fs;
use std::time::Duration;

use common::disk::SmallDisk;
use common::raw::{Conn, Enc};
use common::{zoocore, Output, Process, Server};
use zoocore::proto::codes::op;

/// The filesystem's size: smaller than one default 64 MiB segment.
const FILESYSTEM_MIB: u64 = 24;
/// Data per setData: a few hundred fill the filesystem.
const VALUE_BYTES: usize = 64 * 1024;
/// The writer gives up after this many writes (the disk fills long before).
const WRITES_MAX: usize = 2_000;

#[test]
fn a_full_disk_stops_the_server_and_nothing_acknowledged_is_lost() {
    if common::skip_if_external("a_full_disk_stops_the_server", "needs its own data directory") {
        return;
    }
    let scratch = tempfile::tempdir().expect("scratch directory");
    let disk = match SmallDisk::make(scratch.path(), FILESYSTEM_MIB) {
        Ok(disk) => disk,
        Err(reason) => {
            eprintln!("skipped: {reason}");
            return;
        }
    };
    let log_directory = disk.mount.join("datalog");
    // Space an operator can free later.
    let filler = disk.mount.join("filler");
    fs::write(&filler, vec![0x55u8; 4 * 1024 * 1024]).expect("write filler");
    // Default preAllocSize (64 MiB) on a 24 MiB filesystem: ZooKeeper starts
    // here, and so must zoocore, with a smaller segment and a warning.
    let mut server = Server::start_with(&[&format!("dataLogDir={}", log_directory.display()), "snapCount=1000000"]);
    let log = server.stderr_tail();
    assert!(log.contains("made smaller than preAllocSize"), "a smaller segment is logged:\n{log}");

    let mut conn = Conn::connect(server.addr());
    assert_eq!(conn.create("/fill", b"", 0).err, 0);
    let mut acknowledged = None;
    for version in 0..WRITES_MAX {
        let value = vec![(version % 251) as u8; VALUE_BYTES];
        let body = Enc::new().str("/fill").buf(&value).i32(-1).bytes();
        let reply = conn.send(op::SET_DATA, &body).and_then(|_| conn.read_reply());
        match reply {
            Ok(reply) if reply.err == 0 => acknowledged = Some(version),
            Ok(reply) => panic!("setData answered error {} before the disk filled", reply.err),
            Err(_) => break,
        }
    }
    let acknowledged = acknowledged.expect("some writes were acknowledged before the disk filled");
    let status = server.wait_exit(Duration::from_secs(20));
    let log = server.stderr_tail();
    let status = status.unwrap_or_else(|| panic!("the server must exit when its log cannot write:\n{log}"));
    assert!(!status.success(), "the exit status says it failed: {status}\n{log}");
    assert!(
        log.contains("ENOSPC") && log.contains(&log_directory.display().to_string()),
        "the cause and the file are logged:\n{log}"
    );

    // A new server whose log goes on the full filesystem cannot make even
    // the smallest segment: it says ENOSPC and what to do, and does not
    // advise --truncate-corrupt (nothing is damaged).
    let fresh = scratch.path().join("fresh");
    fs::create_dir_all(&fresh).expect("fresh directory");
    let config = fresh.join("zoo.cfg");
    fs::write(
        &config,
        format!(
            "dataDir={}
dataLogDir={}
clientPort=0
admin.enableServer=false
",
            fresh.join("data").display(),
            disk.mount.join("fresh-log").display()
        ),
    )
    .expect("write zoo.cfg");
    let Output { status, stderr, .. } =
        Process::run(&mut zoocore(&["--config", config.to_str().unwrap()]), Duration::from_secs(30));
    assert!(!status.success(), "no start without space for a segment ({status}):\n{stderr}");
    assert!(stderr.contains("ENOSPC") && stderr.contains("free space"), "the error says why and what to do:\n{stderr}");
    assert!(!stderr.contains("truncate-corrupt"), "a full disk is not damage:\n{stderr}");

    // The operator frees space and the supervisor restarts the server: it
    // has every acknowledged write and takes new ones.
    fs::remove_file(&filler).expect("free space");
    server.restart();
    let mut conn = Conn::connect(server.addr());
    let reply = conn.request(op::GET_DATA, &Enc::new().str("/fill").bool(false).bytes());
    assert_eq!(reply.err, 0);
    let data = reply.dec().buf().expect("data");
    let found = data[0] as usize;
    assert!(
        found == acknowledged % 251 || found == (acknowledged + 1) % 251,
        "the last acknowledged write ({acknowledged}) survives; found the value of write {found} mod 251"
    );
    let body = Enc::new().str("/fill").buf(b"after").i32(-1).bytes();
    assert_eq!(conn.request(op::SET_DATA, &body).err, 0, "writes resume after the restart");
    drop(conn);
    drop(server);
}
