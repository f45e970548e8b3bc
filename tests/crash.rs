//! Crash test: a client keeps creates, multis, sequential creates and
//! versioned setData in flight while the server is killed with SIGKILL at
//! random moments and restarted on the same data dir. After every restart:
//! every acknowledged write is there, no multi is half-applied, no
//! sequence number is reused, the previous session can be resumed, and the
//! server starts without any repair.
//!
//! Rounds: 20 by default, `ZOOCORE_CRASH_ROUNDS` for a long run; the seed is
//! printed and `ZOOCORE_TEST_SEED` replays one.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use common::raw::{Conn, Enc};
use common::{zoocore, Process, Random, Server};

use zoocore::proto::codes::op::{CREATE as OP_CREATE, GET_CHILDREN as OP_GET_CHILDREN, GET_DATA as OP_GET_DATA};
use zoocore::proto::codes::op::{MULTI as OP_MULTI, SET_DATA as OP_SET_DATA};
const NO_NODE: i32 = zoocore::proto::ErrorCode::NoNode as i32;
const IN_FLIGHT_MAX: usize = 48;
const COUNTERS: usize = 8;

enum Sent {
    Create { path: String, data: Vec<u8> },
    Multi { first: String, second: String },
    Sequential { data: Vec<u8> },
    Counter { key: usize, version: i32, data: Vec<u8> },
}

#[derive(Default)]
struct Acknowledged {
    creates: BTreeMap<String, Vec<u8>>,
    multis: Vec<(String, String)>,
    all_multis: Vec<(String, String)>,
    sequential: HashMap<String, Vec<u8>>,
    /// Per counter key: the version and data of the newest acknowledged set.
    counters: Vec<Option<(i32, Vec<u8>)>>,
}

fn multi_body(first: &str, second: &str) -> Vec<u8> {
    let create = |path: &str| Enc::new().i32(OP_CREATE).bool(false).i32(-1).str(path).buf(b"m").open_acl().i32(0);
    let mut body = create(first).bytes();
    body.extend(create(second).bytes());
    body.extend(Enc::new().i32(-1).bool(true).i32(-1).bytes());
    body
}

fn get_data(conn: &mut Conn, path: &str) -> (i32, Option<Vec<u8>>, i32) {
    let reply = conn.request(OP_GET_DATA, &Enc::new().str(path).bool(false).bytes());
    if reply.err != 0 {
        return (reply.err, None, -1);
    }
    let mut decoder = reply.dec();
    let data = decoder.buf();
    let stat = decoder.stat();
    (0, data, stat.version)
}

/// Drives load until the connection breaks (the server was killed), or
/// `deadline` passes. Returns the session's id and password.
fn drive(server_addr: &str, round: usize, counter_versions: &mut [i32], acked: &mut Acknowledged, deadline: Instant) {
    let Ok((mut conn, response)) = Conn::handshake(server_addr, 30_000, 0, &[0; 16], 0) else { return };
    if response.session_id == 0 {
        return;
    }
    conn.set_read_timeout(Duration::from_secs(5));
    let mut pending: HashMap<i32, Sent> = HashMap::new();
    let mut counter_busy = [false; COUNTERS];
    let mut sequence = 0usize;
    loop {
        while pending.len() < IN_FLIGHT_MAX && Instant::now() < deadline {
            sequence += 1;
            let (op, body, sent) = match sequence % 4 {
                0 => {
                    let path = format!("/crash/c-{round}-{sequence}");
                    let data = format!("c{round}-{sequence}").into_bytes();
                    let body = Enc::new().str(&path).buf(&data).open_acl().i32(0).bytes();
                    (OP_CREATE, body, Sent::Create { path, data })
                }
                1 => {
                    let first = format!("/crash/m-{round}-{sequence}-a");
                    let second = format!("/crash/m-{round}-{sequence}-b");
                    acked.all_multis.push((first.clone(), second.clone()));
                    (OP_MULTI, multi_body(&first, &second), Sent::Multi { first, second })
                }
                2 => {
                    let data = format!("s{round}-{sequence}").into_bytes();
                    let body = Enc::new().str("/crash/seq/s-").buf(&data).open_acl().i32(2).bytes();
                    (OP_CREATE, body, Sent::Sequential { data })
                }
                _ => {
                    let key = sequence / 4 % COUNTERS;
                    if counter_busy[key] {
                        continue;
                    }
                    counter_busy[key] = true;
                    let version = counter_versions[key];
                    let data = format!("k{round}-{sequence}").into_bytes();
                    let body = Enc::new().str(&format!("/crash/k-{key}")).buf(&data).i32(version).bytes();
                    (OP_SET_DATA, body, Sent::Counter { key, version, data })
                }
            };
            match conn.send(op, &body) {
                Ok(xid) => {
                    pending.insert(xid, sent);
                }
                Err(_) => return,
            }
        }
        if pending.is_empty() {
            return;
        }
        let Ok(reply) = conn.read_reply() else { return };
        let Some(sent) = pending.remove(&reply.xid) else { continue };
        match sent {
            Sent::Create { path, data } => {
                assert_eq!(reply.err, 0, "create {path}");
                acked.creates.insert(path, data);
            }
            Sent::Multi { first, second } => {
                // A multi reply's header says 0; its results say whether it applied.
                let mut decoder = reply.dec();
                let result_type = decoder.i32();
                assert_eq!(result_type, OP_CREATE, "multi creating {first} applied");
                acked.multis.push((first, second));
            }
            Sent::Sequential { data } => {
                assert_eq!(reply.err, 0, "sequential create");
                let name = reply.dec().str();
                if let Some(previous) = acked.sequential.insert(name.clone(), data.clone()) {
                    panic!("sequence number reused: {name} held {previous:?}, now {data:?}");
                }
            }
            Sent::Counter { key, version, data } => {
                counter_busy[key] = false;
                assert_eq!(reply.err, 0, "setData k-{key} at version {version}");
                let new_version = reply.dec().stat().version;
                assert_eq!(new_version, version + 1);
                counter_versions[key] = new_version;
                acked.counters[key] = Some((new_version, data));
            }
        }
    }
}

/// Which older writes a round checks besides its own: all of them in the
/// last round, a sample in the others (checking everything every round
/// would grow with the square of the rounds).
struct Scope {
    /// Multis acknowledged, and sent, before this round.
    older_acknowledged_multis: usize,
    older_sent_multis: usize,
    everything: bool,
    /// Every how many older creates one is checked.
    sample_stride: usize,
}

fn verify(server: &Server, acked: &Acknowledged, counter_versions: &mut [i32], round: usize, scope: &Scope) {
    let mut conn = Conn::connect(server.addr());
    // The round's own creates are checked by the caller; here all or a sample.
    for (position, (path, data)) in acked.creates.iter().enumerate() {
        if !scope.everything && position % scope.sample_stride != 0 {
            continue;
        }
        let (err, found, _) = get_data(&mut conn, path);
        assert_eq!((err, found.as_deref()), (0, Some(&data[..])), "round {round}: acknowledged create {path}");
    }
    for (first, second) in acked.multis.iter().skip(if scope.everything { 0 } else { scope.older_acknowledged_multis })
    {
        assert_eq!(get_data(&mut conn, first).0, 0, "round {round}: acknowledged multi {first}");
        assert_eq!(get_data(&mut conn, second).0, 0, "round {round}: acknowledged multi {second}");
    }
    for (first, second) in acked.all_multis.iter().skip(if scope.everything { 0 } else { scope.older_sent_multis }) {
        let (a, b) = (get_data(&mut conn, first).0, get_data(&mut conn, second).0);
        assert!(a == b && (a == 0 || a == NO_NODE), "round {round}: multi half applied: {first}={a} {second}={b}");
    }
    let reply = conn.request(OP_GET_CHILDREN, &Enc::new().str("/crash/seq").bool(false).bytes());
    assert_eq!(reply.err, 0);
    let children: HashSet<String> = reply.dec().strs().into_iter().collect();
    for (name, data) in &acked.sequential {
        let child = name.trim_start_matches("/crash/seq/");
        assert!(children.contains(child), "round {round}: acknowledged sequential {name} lost");
        let (_, found, _) = get_data(&mut conn, name);
        assert_eq!(found.as_deref(), Some(&data[..]), "round {round}: {name}");
    }
    for (key, counter) in acked.counters.iter().enumerate() {
        let (err, found, version) = get_data(&mut conn, &format!("/crash/k-{key}"));
        assert_eq!(err, 0);
        if let Some((acked_version, acked_data)) = counter {
            assert!(version >= *acked_version, "round {round}: k-{key} at version {version} < acked {acked_version}");
            if version == *acked_version {
                assert_eq!(found.as_deref(), Some(&acked_data[..]), "round {round}: k-{key} data");
            }
        }
        // An unacknowledged set may have applied: continue from the truth.
        counter_versions[key] = version;
    }
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    survive_sigkill(&[], 20);
}

/// Issue 10, item 4: with 64 KiB segments and a snapshot every ~100
/// writes, the kills land while the next segment is being prepared (zero
/// filled in its own task), while a rollover renames it into place, and
/// while a snapshot is being written.
#[test]
fn acknowledged_writes_survive_sigkill_during_rollovers_and_snapshots() {
    survive_sigkill(&["preAllocSize=64", "snapCount=100"], 10);
}

fn survive_sigkill(config: &[&str], default_rounds: usize) {
    let rounds: usize =
        std::env::var("ZOOCORE_CRASH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(default_rounds);
    eprintln!("crash test: {rounds} rounds");
    let mut random = Random::from_env("crash test");
    let mut server = Server::start_with(config);
    {
        let mut conn = Conn::connect(server.addr());
        for path in ["/crash", "/crash/seq"] {
            assert_eq!(conn.create(path, b"", 0).err, 0);
        }
        for key in 0..COUNTERS {
            assert_eq!(conn.create(&format!("/crash/k-{key}"), b"", 0).err, 0);
        }
    }
    let mut acked = Acknowledged { counters: vec![None; COUNTERS], ..Acknowledged::default() };
    let mut counter_versions = vec![0i32; COUNTERS];
    let mut previous_session: Option<(i64, Vec<u8>)> = None;
    for round in 0..rounds {
        let address = server.addr().to_string();
        let crash_after = Duration::from_millis(20 + random.below(400));
        let deadline = Instant::now() + crash_after + Duration::from_secs(5);
        let load = {
            let mut versions = counter_versions.clone();
            let mut round_acked = Acknowledged { counters: acked.counters.clone(), ..Acknowledged::default() };
            std::thread::spawn(move || {
                drive(&address, round, &mut versions, &mut round_acked, deadline);
                round_acked
            })
        };
        // The crash moment is the point of the test: a random delay, not a wait.
        std::thread::sleep(crash_after);
        server.kill();
        let round_acked = load.join().expect("load thread");
        let scope = Scope {
            older_acknowledged_multis: acked.multis.len(),
            older_sent_multis: acked.all_multis.len(),
            everything: round + 1 == rounds,
            sample_stride: 25,
        };
        let round_creates: Vec<(String, Vec<u8>)> =
            round_acked.creates.iter().map(|(path, data)| (path.clone(), data.clone())).collect();
        acked.creates.extend(round_acked.creates);
        acked.multis.extend(round_acked.multis);
        acked.all_multis.extend(round_acked.all_multis);
        for (name, data) in round_acked.sequential {
            if let Some(previous) = acked.sequential.insert(name.clone(), data.clone()) {
                panic!(
                    "round {round}: sequence number reused across a restart: {name} held {previous:?}, now {data:?}"
                );
            }
        }
        acked.counters = round_acked.counters;
        server.restart();
        if let Some((session_id, password)) = &previous_session {
            let (_, response) = Conn::handshake(server.addr(), 30_000, *session_id, password, 0).expect("resume");
            assert_eq!(response.session_id, *session_id, "round {round}: a live session survives a restart");
        }
        let probe = Conn::connect(server.addr());
        previous_session = Some((probe.session_id, probe.passwd.clone()));
        drop(probe);
        verify(&server, &acked, &mut counter_versions, round, &scope);
        let mut conn = Conn::connect(server.addr());
        for (path, data) in &round_creates {
            let (err, found, _) = get_data(&mut conn, path);
            assert_eq!((err, found.as_deref()), (0, Some(&data[..])), "round {round}: acknowledged create {path}");
        }
    }
    eprintln!(
        "crash test: {} creates, {} multis, {} sequential creates acknowledged and found after {rounds} crashes",
        acked.creates.len(),
        acked.multis.len(),
        acked.sequential.len()
    );
    assert!(acked.creates.len() + acked.multis.len() > rounds, "the load made progress");
}

/// Issue 15, item 6: SIGTERM while a large data directory is recovered is
/// acted on at once: the process exits without finishing recovery and
/// without ever printing its listening line.
#[test]
fn sigterm_during_recovery_exits_at_once() {
    if common::skip_if_external("sigterm_during_recovery_exits_at_once", "needs its own data directory") {
        return;
    }
    const VALUES: usize = 120;
    const VALUE_BYTES: usize = 1_000_000;
    let mut server = Server::start();
    let directory = server.dir().expect("spawned").to_path_buf();
    let mut conn = Conn::connect(server.addr());
    assert_eq!(conn.create("/big", b"", 0).err, 0);
    // About 120 MB of log: recovery reads and replays all of it.
    for version in 0..VALUES {
        let value = vec![(version % 250) as u8 + 1; VALUE_BYTES];
        let reply = conn.request(OP_SET_DATA, &Enc::new().str("/big").buf(&value).i32(-1).bytes());
        assert_eq!(reply.err, 0);
    }
    drop(conn);
    server.kill();

    let mut recovering = Process::start(
        &mut zoocore(&["--config", directory.join("zoo.cfg").to_str().unwrap()]),
        Some(&directory.join("recovery.stderr.log")),
    );
    // Wait for recovery to begin, then ask the server to stop.
    let began = common::wait_for(Duration::from_secs(20), || {
        recovering.stderr().contains("recovering: reading snapshots and the log")
    });
    assert!(began, "recovery starts");
    recovering.signal(libc::SIGTERM);
    let status = recovering.wait_exit(Duration::from_secs(30)).expect("the server must exit after SIGTERM");
    let stdout = recovering.stdout();
    let stderr = recovering.stderr();
    assert!(status.success(), "a requested stop exits 0: {status}\n{stderr}");
    assert!(!stdout.contains("listening"), "the server stopped before serving:\n{stdout}\n{stderr}");
    assert!(stderr.contains("stop signal during recovery"), "the early stop is logged:\n{stderr}");
    assert!(!stderr.contains("log recovered"), "recovery was cut short, not waited for:\n{stderr}");
    // Nothing was lost: the next start recovers everything.
    server.restart();
    let mut conn = Conn::connect(server.addr());
    let reply = conn.request(OP_GET_DATA, &Enc::new().str("/big").bool(false).bytes());
    assert_eq!(reply.err, 0);
    assert_eq!(reply.dec().buf().expect("data")[0], ((VALUES - 1) % 250) as u8 + 1);
}
