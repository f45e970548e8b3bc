//! Moving data between Apache ZooKeeper 3.8 and zoocore, both ways.
//!
//! * `recorded_*`: ZooKeeper data directories recorded from the real
//!   ZooKeeper 3.8 (tests/fixtures/migrate/<variant>/zk: its version-2 files,
//!   the txn logs' zero padding cut off) with what ZooKeeper's clients read
//!   from it (`served.txt`). Each is imported and every znode's data, ACL
//!   and Stat as zoocore serves them must equal what ZooKeeper served. No
//!   Java needed.
//! * `live_round_trip_*`: the real thing. Starts ZooKeeper 3.8
//!   (../shared/tools/zkref) with the variant's settings, fills it through
//!   the wire protocol with a varied tree, reads it back, stops it, imports
//!   its data directory into zoocore and compares; resumes the old session
//!   on zoocore with its old lastZxidSeen; exports, starts ZooKeeper on the
//!   export and compares again. Skips, saying why, only when Java or the
//!   ZooKeeper jars are missing. `ZOOCORE_RECORD_MIGRATE_FIXTURES=1`
//!   rewrites the recorded fixtures from the live run.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::raw::{Conn, Enc, RawStat};
use common::{free_port, zoocore, Output, Process, Server};

/// zoocore's settings that match the reference server's: TTL nodes and the
/// same super digest (user super, password test).
const ZOOCORE_CFG: &[&str] = &[
    "extendedTypesEnabled=true",
    "DigestAuthenticationProvider.superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU=",
    "maxClientCnxns=0",
];

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// How long one run of `zoocore import`, `export` or `inspect` may take.
const TOOL_DEADLINE: Duration = Duration::from_secs(120);

/// Runs a zoocore subcommand to its end.
fn zoocore_tool(arguments: &[&str]) -> Output {
    Process::run(&mut zoocore(arguments), TOOL_DEADLINE)
}

fn fixtures() -> PathBuf {
    repository().join("tests/fixtures/migrate")
}

// ---------------------------------------------------------------------------
// Reading a whole tree as a client sees it.

/// One znode as served: data (None is null), ACL, Stat.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Served {
    data: Option<Vec<u8>>,
    acl: Vec<(i32, String, String)>,
    stat: RawStat,
}

mod op {
    pub const CREATE: i32 = 1;
    pub const DELETE: i32 = 2;
    pub const GET_DATA: i32 = 4;
    pub const SET_DATA: i32 = 5;
    pub const GET_ACL: i32 = 6;
    pub const SET_ACL: i32 = 7;
    pub const GET_CHILDREN: i32 = 8;
    pub const CHECK: i32 = 13;
    pub const MULTI: i32 = 14;
    pub const CREATE2: i32 = 15;
    pub const CREATE_TTL: i32 = 21;
    pub const AUTH: i32 = 100;
    pub const CLOSE: i32 = -11;
}

fn add_auth(conn: &mut Conn, scheme: &str, auth: &[u8]) {
    conn.send_xid(-4, op::AUTH, &Enc::new().i32(0).str(scheme).buf(auth).bytes()).unwrap();
    let reply = conn.read_reply().unwrap();
    assert_eq!(reply.err, 0, "auth {scheme} refused");
}

/// Every znode under "/", read as the super user (who may read all).
fn read_tree(addr: &str) -> BTreeMap<String, Served> {
    let mut conn = Conn::connect(addr);
    add_auth(&mut conn, "digest", b"super:test");
    let mut tree = BTreeMap::new();
    let mut pending = vec!["/".to_string()];
    while let Some(path) = pending.pop() {
        let reply = conn.request(op::GET_DATA, &Enc::new().str(&path).bool(false).bytes());
        assert_eq!(reply.err, 0, "getData {path} on {addr}");
        let mut decoder = reply.dec();
        let data = decoder.buf();
        let stat = decoder.stat();
        let reply = conn.request(op::GET_ACL, &Enc::new().str(&path).bytes());
        assert_eq!(reply.err, 0, "getACL {path} on {addr}");
        let mut decoder = reply.dec();
        let count = decoder.i32();
        let acl = (0..count).map(|_| (decoder.i32(), decoder.str(), decoder.str())).collect();
        let reply = conn.request(op::GET_CHILDREN, &Enc::new().str(&path).bool(false).bytes());
        assert_eq!(reply.err, 0, "getChildren {path} on {addr}");
        for child in reply.dec().strs() {
            pending.push(if path == "/" { format!("/{child}") } else { format!("{path}/{child}") });
        }
        tree.insert(path, Served { data, acl, stat });
    }
    let reply = conn.request(op::CLOSE, &[]);
    assert_eq!(reply.err, 0);
    tree
}

/// Every difference between two reads of a tree, one line each.
fn differences(expected: &BTreeMap<String, Served>, found: &BTreeMap<String, Served>) -> Vec<String> {
    let mut out = Vec::new();
    for (path, want) in expected {
        match found.get(path) {
            None => out.push(format!("{path}: missing")),
            Some(got) if got != want => out.push(format!("{path}:\n  expected {want:?}\n  found    {got:?}")),
            Some(_) => {}
        }
    }
    for path in found.keys().filter(|path| !expected.contains_key(*path)) {
        out.push(format!("{path}: not expected"));
    }
    out
}

fn assert_same(what: &str, expected: &BTreeMap<String, Served>, found: &BTreeMap<String, Served>) {
    let differences = differences(expected, found);
    assert!(differences.is_empty(), "{what}: {} znodes differ:\n{}", differences.len(), differences.join("\n"));
}

// A line-based record of a tree (served.txt): path, data as hex or "null",
// ACL entries, and the eleven Stat fields.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|at| u8::from_str_radix(&text[at..at + 2], 16).unwrap()).collect()
}

fn encode_tree(tree: &BTreeMap<String, Served>) -> String {
    let mut out = String::new();
    for (path, node) in tree {
        let s = &node.stat;
        let acl: Vec<String> = node.acl.iter().map(|(perms, scheme, id)| format!("{perms}|{scheme}|{id}")).collect();
        out.push_str(&format!(
            "{path}\t{}\t{}\t{} {} {} {} {} {} {} {} {} {} {}\n",
            node.data.as_ref().map_or("null".to_string(), |data| format!("x{}", hex(data))),
            acl.join(","),
            s.czxid,
            s.mzxid,
            s.ctime,
            s.mtime,
            s.version,
            s.cversion,
            s.aversion,
            s.ephemeral_owner,
            s.data_length,
            s.num_children,
            s.pzxid
        ));
    }
    out
}

fn decode_tree(text: &str) -> BTreeMap<String, Served> {
    let mut tree = BTreeMap::new();
    for line in text.lines().filter(|line| !line.is_empty()) {
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(fields.len(), 4, "served.txt line {line:?}");
        let data = if fields[1] == "null" { None } else { Some(unhex(&fields[1][1..])) };
        let acl = fields[2]
            .split(',')
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                let parts: Vec<&str> = entry.splitn(3, '|').collect();
                (parts[0].parse().unwrap(), parts[1].to_string(), parts[2].to_string())
            })
            .collect();
        let n: Vec<i64> = fields[3].split(' ').map(|value| value.parse().unwrap()).collect();
        let stat = RawStat {
            czxid: n[0],
            mzxid: n[1],
            ctime: n[2],
            mtime: n[3],
            version: n[4] as i32,
            cversion: n[5] as i32,
            aversion: n[6] as i32,
            ephemeral_owner: n[7],
            data_length: n[8] as i32,
            num_children: n[9] as i32,
            pzxid: n[10],
        };
        tree.insert(fields[0].to_string(), Served { data, acl, stat });
    }
    tree
}

// ---------------------------------------------------------------------------
// zoocore with imported data.

fn run_zoocore(arguments: &[&str]) -> String {
    let output = zoocore_tool(arguments);
    assert!(output.status.success(), "zoocore {arguments:?} failed: {}\n{}", output.status, output.stderr);
    output.stdout
}

/// A zoocore server whose data directory is `zookeeper_data` imported.
fn zoocore_importing(zookeeper_data: &Path) -> (Server, String) {
    let mut server = Server::start_with(ZOOCORE_CFG);
    server.kill();
    let dir = server.dir().unwrap().to_path_buf();
    fs::remove_dir_all(dir.join("data")).unwrap();
    fs::create_dir_all(dir.join("data")).unwrap();
    let report = run_zoocore(&[
        "import",
        "--from",
        zookeeper_data.to_str().unwrap(),
        "--config",
        dir.join("zoo.cfg").to_str().unwrap(),
    ]);
    server.restart();
    (server, report)
}

// ---------------------------------------------------------------------------
// Recorded fixtures.

fn recorded(variant: &str) {
    let directory = fixtures().join(variant);
    let expected = decode_tree(&fs::read_to_string(directory.join("served.txt")).unwrap());
    let (server, report) = zoocore_importing(&directory.join("zk"));
    eprintln!("{variant}: {report}");
    let found = read_tree(server.addr());
    assert_same(&format!("{variant} imported"), &expected, &found);
    let last_zxid: i64 = fs::read_to_string(directory.join("last-zxid")).unwrap().trim().parse().unwrap();
    assert!(report.contains(&format!("at zxid {last_zxid:#x}")), "{report}");
}

#[test]
fn recorded_plain_snapshot_with_digest() {
    recorded("plain");
}

#[test]
fn recorded_gzip_snapshot_without_digest() {
    recorded("gz");
}

#[test]
fn recorded_snappy_snapshot() {
    recorded("snappy");
}

// ---------------------------------------------------------------------------
// The live reference.

fn zkref() -> PathBuf {
    // The project's root sits beside shared/ (../shared/tools/zkref); a
    // worktree sits one level deeper.
    std::env::var_os("ZKREF").map(PathBuf::from).unwrap_or_else(|| {
        let near = repository().join("../shared/tools/zkref");
        if near.exists() {
            near
        } else {
            repository().join("../../shared/tools/zkref")
        }
    })
}

/// Why the live reference cannot run here, if it cannot.
fn zookeeper_missing() -> Option<String> {
    let script = zkref().join("start-standalone.sh");
    if !script.exists() {
        return Some(format!("{} is missing (set ZKREF=/path/to/zkref)", script.display()));
    }
    if Command::new("java").arg("-version").output().map(|output| !output.status.success()).unwrap_or(true) {
        return Some("java is not installed".to_string());
    }
    if !Path::new("/usr/share/java/zookeeper.jar").exists() {
        return Some("/usr/share/java/zookeeper.jar is missing (.ci/setup.sh installs it)".to_string());
    }
    None
}

/// A reference ZooKeeper 3.8 under its own root and ports; stopped on drop.
struct Reference {
    root: PathBuf,
    port: u16,
}

impl Reference {
    fn start(root: &Path, jvm_flags: &str, keep_data: bool) -> Reference {
        let port = free_port();
        let admin = free_port();
        let output = Command::new("bash")
            .arg(zkref().join("start-standalone.sh"))
            .arg(port.to_string())
            .env("ZKREF_ROOT", root)
            .env("ZKREF_ADMIN_PORT", admin.to_string())
            .env("ZKREF_HEAP", "256m")
            .env("ZKREF_KEEP_DATA", if keep_data { "1" } else { "0" })
            .env("ZKREF_JVM_EXTRA", jvm_flags)
            .output()
            .expect("run start-standalone.sh");
        assert!(
            output.status.success(),
            "ZooKeeper did not start: {}\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        Reference { root: root.to_path_buf(), port }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn data(&self) -> PathBuf {
        self.root.join("standalone/data")
    }

    fn datalog(&self) -> PathBuf {
        self.root.join("standalone/datalog")
    }

    fn stop(&self) {
        let _ =
            Command::new("bash").arg(zkref().join("stop.sh")).arg("standalone").env("ZKREF_ROOT", &self.root).output();
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        self.stop();
    }
}

fn create(conn: &mut Conn, path: &str, data: Option<&[u8]>, acl: &[(i32, &str, &str)], flags: i32) -> String {
    let mut body = Enc::new().str(path);
    body = match data {
        Some(data) => body.buf(data),
        None => body.i32(-1),
    };
    let reply = conn.request(op::CREATE2, &body.acls(acl).i32(flags).bytes());
    assert_eq!(reply.err, 0, "create {path}");
    reply.dec().str()
}

const OPEN: &[(i32, &str, &str)] = &[(31, "world", "anyone")];

/// A varied tree, written the way clients write: deep paths, binary, empty
/// and null data, ACLs of every scheme, sequential, container and TTL
/// nodes, ephemerals of a session left open, a closed session's ephemerals
/// gone, setData and setACL, deletes, and multi-transactions (one that
/// fails) written last, after the last snapshot. Returns the open session's
/// connection.
fn fill(addr: &str, bulk: usize) -> Conn {
    let mut writer = Conn::connect(addr);
    add_auth(&mut writer, "digest", b"alice:secret");
    let alice = zoocore_digest("alice", "secret");
    create(&mut writer, "/app", Some(b"root of the app"), OPEN, 0);
    let mut path = "/app".to_string();
    for level in 0..12 {
        path.push_str(&format!("/level{level}"));
        create(&mut writer, &path, Some(format!("depth {level}").as_bytes()), OPEN, 0);
    }
    let binary: Vec<u8> = (0..=255u8).collect();
    create(&mut writer, "/app/binary", Some(&binary), OPEN, 0);
    create(&mut writer, "/app/empty", Some(b""), OPEN, 0);
    create(&mut writer, "/app/null", None, OPEN, 0);
    create(&mut writer, "/acl", None, OPEN, 0);
    create(&mut writer, "/acl/world-read", Some(b"r"), &[(1, "world", "anyone")], 0);
    create(&mut writer, "/acl/digest", Some(b"d"), &[(31, "digest", &alice)], 0);
    create(&mut writer, "/acl/ip", Some(b"i"), &[(31, "ip", "127.0.0.1"), (1, "ip", "10.0.0.0/8")], 0);
    create(&mut writer, "/acl/auth", Some(b"a"), &[(31, "auth", "")], 0);
    create(&mut writer, "/acl/mixed", Some(b"m"), &[(1, "world", "anyone"), (30, "digest", &alice)], 0);
    create(&mut writer, "/seq", None, OPEN, 0);
    let mut sequentials = Vec::new();
    for _ in 0..6 {
        sequentials.push(create(&mut writer, "/seq/n-", Some(b"s"), OPEN, 2));
    }
    for gone in &sequentials[1..3] {
        let reply = writer.request(op::DELETE, &Enc::new().str(gone).i32(-1).bytes());
        assert_eq!(reply.err, 0);
    }
    create(&mut writer, "/container", Some(b"c"), OPEN, 4);
    create(&mut writer, "/container/kept", Some(b"k"), OPEN, 0);
    let reply =
        writer.request(op::CREATE_TTL, &Enc::new().str("/ttl").buf(b"t").open_acl().i32(5).i64(3_600_000).bytes());
    assert_eq!(reply.err, 0, "create TTL node");
    for version in 0..3 {
        let reply = writer
            .request(op::SET_DATA, &Enc::new().str("/app").buf(format!("v{version}").as_bytes()).i32(version).bytes());
        assert_eq!(reply.err, 0);
    }
    let reply = writer.request(
        op::SET_ACL,
        &Enc::new().str("/acl/mixed").acls(&[(3, "world", "anyone"), (31, "digest", &alice)]).i32(0).bytes(),
    );
    assert_eq!(reply.err, 0);
    // A session that ends: its ephemerals go with it.
    let mut closed = Conn::connect(addr);
    create(&mut closed, "/app/gone", Some(b"e"), OPEN, 1);
    assert_eq!(closed.request(op::CLOSE, &[]).err, 0);
    // Enough writes for several snapshots and log files.
    create(&mut writer, "/bulk", None, OPEN, 0);
    for index in 0..bulk {
        let path = format!("/bulk/n{index:04}");
        create(&mut writer, &path, Some(format!("{index}").as_bytes()), OPEN, 0);
        if index % 3 == 0 {
            let reply = writer.request(op::SET_DATA, &Enc::new().str(&path).buf(b"changed").i32(-1).bytes());
            assert_eq!(reply.err, 0);
        }
        if index % 5 == 0 {
            let reply = writer.request(op::DELETE, &Enc::new().str(&path).i32(-1).bytes());
            assert_eq!(reply.err, 0);
        }
    }
    // The open session and its ephemerals.
    let (mut open, _) = Conn::handshake(addr, 30_000, 0, &[0; 16], 0).unwrap();
    create(&mut open, "/eph", None, OPEN, 0);
    create(&mut open, "/eph/a", Some(b"ephemeral"), OPEN, 1);
    create(&mut open, "/eph/s-", Some(b"ephemeral sequential"), OPEN, 3);
    // Multi-transactions last: one that commits, one that fails.
    let multi = |ops: Vec<(i32, Vec<u8>)>| {
        let mut body = Enc::new();
        for (kind, op_body) in ops {
            body = body.i32(kind).bool(false).i32(-1).raw(&op_body);
        }
        body.i32(-1).bool(true).i32(-1).bytes()
    };
    let good = multi(vec![
        (op::CREATE, Enc::new().str("/multi").buf(b"m").open_acl().i32(0).bytes()),
        (op::CREATE, Enc::new().str("/multi/child").i32(-1).open_acl().i32(0).bytes()),
        (op::SET_DATA, Enc::new().str("/app/empty").buf(b"now set").i32(0).bytes()),
        (op::CHECK, Enc::new().str("/app").i32(3).bytes()),
        (op::DELETE, Enc::new().str("/bulk/n0001").i32(-1).bytes()),
    ]);
    let results = multi_results(&writer.request(op::MULTI, &good));
    assert!(results.iter().all(|(kind, _)| *kind != -1), "the multi commits: {results:?}");
    let bad = multi(vec![
        (op::CREATE, Enc::new().str("/multi/never").buf(b"x").open_acl().i32(0).bytes()),
        (op::CHECK, Enc::new().str("/app").i32(99).bytes()),
    ]);
    let results = multi_results(&writer.request(op::MULTI, &bad));
    assert!(results.iter().any(|(kind, err)| *kind == -1 && *err != 0), "the multi fails: {results:?}");
    assert_eq!(writer.request(op::CLOSE, &[]).err, 0);
    open
}

/// A multi reply's (type, err) per operation; type -1 is an error result.
fn multi_results(reply: &common::raw::Reply) -> Vec<(i32, i32)> {
    assert_eq!(reply.err, 0, "multi");
    let mut results = Vec::new();
    let mut decoder = reply.dec();
    loop {
        let (kind, done, err) = (decoder.i32(), decoder.bool(), decoder.i32());
        if done {
            break;
        }
        results.push((kind, err));
        match kind {
            -1 => {
                decoder.i32();
            }
            op::CREATE => {
                decoder.str();
            }
            op::SET_DATA => {
                decoder.stat();
            }
            _ => {}
        }
    }
    results
}

/// digest ACL id for user:password (base64 of SHA-1).
fn zoocore_digest(user: &str, password: &str) -> String {
    common::digest_id(user, password)
}

/// Copies ZooKeeper's version-2 files, cutting the txn logs' zero padding
/// (ZooKeeper reads a log's end of file as the end of its records, as it
/// reads the padding).
fn copy_version2(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for item in fs::read_dir(from).unwrap() {
        let item = item.unwrap();
        let name = item.file_name().into_string().unwrap();
        let mut bytes = fs::read(item.path()).unwrap();
        if name.starts_with("log.") {
            while bytes.last() == Some(&0) {
                bytes.pop();
            }
        }
        if name.starts_with("log.") || name.starts_with("snapshot.") {
            fs::write(to.join(&name), bytes).unwrap();
        }
    }
}

/// Removes the files an import does not read (older snapshots, logs that
/// end before the newest snapshot), to keep the recorded fixtures small.
fn keep_what_import_reads(directory: &Path) {
    let zxid_of = |name: &str| i64::from_str_radix(name.split('.').nth(1).unwrap(), 16).unwrap();
    let mut snapshots = Vec::new();
    let mut logs = Vec::new();
    for item in fs::read_dir(directory).unwrap() {
        let name = item.unwrap().file_name().into_string().unwrap();
        if name.starts_with("snapshot.") {
            snapshots.push((zxid_of(&name), name));
        } else if name.starts_with("log.") {
            logs.push((zxid_of(&name), name));
        }
    }
    snapshots.sort();
    logs.sort();
    let newest = snapshots.last().unwrap().0;
    for (_, name) in &snapshots[..snapshots.len() - 1] {
        fs::remove_file(directory.join(name)).unwrap();
    }
    let first_needed = logs.iter().rposition(|(zxid, _)| *zxid <= newest).unwrap_or(0);
    for (_, name) in &logs[..first_needed] {
        fs::remove_file(directory.join(name)).unwrap();
    }
}

fn live_round_trip(variant: &str, jvm_flags: &str) {
    if let Some(why) = zookeeper_missing() {
        eprintln!("SKIPPED live_round_trip_{variant}: the reference ZooKeeper cannot run here: {why}");
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let flags = format!(
        "-Dzookeeper.snapCount=40 -Dzookeeper.preAllocSize=16 -Dzookeeper.extendedTypesEnabled=true {jvm_flags}"
    );
    let reference = Reference::start(&scratch.path().join("zk"), &flags, false);
    let mut open = fill(&reference.addr(), 60);
    let served = read_tree(&reference.addr());
    let open_session = (open.session_id, open.passwd.clone());
    // The open session's last seen zxid: the reply to a read.
    let last_seen = open.request(op::GET_DATA, &Enc::new().str("/eph").bool(false).bytes()).zxid;
    reference.stop();
    drop(open);
    let zookeeper_files = scratch.path().join("zk-files");
    copy_version2(&reference.data().join("version-2"), &zookeeper_files.join("version-2"));
    copy_version2(&reference.datalog().join("version-2"), &zookeeper_files.join("version-2"));
    let logs = fs::read_dir(zookeeper_files.join("version-2"))
        .unwrap()
        .filter(|item| item.as_ref().unwrap().file_name().to_string_lossy().starts_with("log."))
        .count();
    assert!(logs >= 2, "the fill spans {logs} log files, expected several");

    // ZooKeeper -> zoocore.
    let (mut server, report) = zoocore_importing(&zookeeper_files);
    eprintln!("{variant}: {report}");
    let imported = read_tree(server.addr());
    assert_same(&format!("{variant}: ZooKeeper served, then zoocore after import"), &served, &imported);

    // The old session resumes on zoocore with its old lastZxidSeen, and
    // zxids move on from the imported ones.
    let (mut resumed, response) =
        Conn::handshake(server.addr(), 30_000, open_session.0, &open_session.1, last_seen).unwrap();
    assert_eq!(response.session_id, open_session.0, "zoocore resumes the ZooKeeper session");
    let reply = resumed.request(op::SET_DATA, &Enc::new().str("/eph/a").buf(b"after import").i32(-1).bytes());
    assert_eq!(reply.err, 0, "the resumed session writes its own ephemeral");
    assert!(reply.zxid > last_seen, "zxid {:#x} continues above {last_seen:#x}", reply.zxid);
    let after_write = read_tree(server.addr());
    drop(resumed);

    if std::env::var_os("ZOOCORE_RECORD_MIGRATE_FIXTURES").is_some() {
        let target = fixtures().join(variant);
        let _ = fs::remove_dir_all(&target);
        copy_version2(&zookeeper_files.join("version-2"), &target.join("zk/version-2"));
        keep_what_import_reads(&target.join("zk/version-2"));
        fs::write(target.join("served.txt"), encode_tree(&served)).unwrap();
        let last = report.split("at zxid ").nth(1).unwrap().split(' ').next().unwrap();
        let last = i64::from_str_radix(last.trim_start_matches("0x"), 16).unwrap();
        fs::write(target.join("last-zxid"), format!("{last}\n")).unwrap();
    }

    // zoocore -> ZooKeeper.
    server.signal_and_wait(libc::SIGTERM, Duration::from_secs(20)).expect("zoocore stops");
    let second = scratch.path().join("zk-again");
    let config = server.dir().unwrap().join("zoo.cfg");
    let export_report = run_zoocore(&[
        "export",
        "--config",
        config.to_str().unwrap(),
        "--to",
        second.join("standalone/data").to_str().unwrap(),
        "--log-dir",
        second.join("standalone/datalog").to_str().unwrap(),
    ]);
    eprintln!("{variant}: {export_report}");
    let again = Reference::start(&second, &flags, true);
    let exported = read_tree(&again.addr());
    assert_same(&format!("{variant}: zoocore served, then ZooKeeper on the export"), &after_write, &exported);
    // The session made on ZooKeeper, carried through zoocore, resumes on
    // ZooKeeper again (zoocore kept ZooKeeper's password for it).
    let (_, response) = Conn::handshake(&again.addr(), 30_000, open_session.0, &open_session.1, 0).unwrap();
    assert_eq!(response.session_id, open_session.0, "ZooKeeper resumes the session after the export");
}

#[test]
fn live_round_trip_plain() {
    live_round_trip("plain", "");
}

#[test]
fn live_round_trip_gz_without_digest() {
    live_round_trip("gz", "-Dzookeeper.snapshot.compression.method=gz -Dzookeeper.digest.enabled=false");
}

#[test]
fn live_round_trip_snappy() {
    live_round_trip("snappy", "-Dzookeeper.snapshot.compression.method=snappy");
}

// ---------------------------------------------------------------------------
// Damaged input: named with file and offset, nothing written.

fn import_fails(zookeeper_data: &Path) -> String {
    let scratch = tempfile::tempdir().unwrap();
    let data = scratch.path().join("data");
    let config = scratch.path().join("zoo.cfg");
    fs::write(&config, format!("dataDir={}\nclientPort=0\n", data.display())).unwrap();
    let output =
        zoocore_tool(&["import", "--from", zookeeper_data.to_str().unwrap(), "--config", config.to_str().unwrap()]);
    assert!(!output.status.success(), "the import of a damaged directory must fail");
    assert!(!data.join("cluster-id").exists() && !data.join("snapshot").exists(), "nothing may be written");
    output.stderr
}

/// A copy of a recorded variant's ZooKeeper files to damage.
fn damaged_copy(variant: &str) -> (tempfile::TempDir, PathBuf) {
    let scratch = tempfile::tempdir().unwrap();
    let version2 = scratch.path().join("zk/version-2");
    copy_version2(&fixtures().join(variant).join("zk/version-2"), &version2);
    (scratch, version2)
}

fn files_starting(directory: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(directory)
        .unwrap()
        .map(|item| item.unwrap().path())
        .filter(|path| path.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    found.sort_by_key(|path| {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        i64::from_str_radix(name.split('.').nth(1).unwrap(), 16).unwrap()
    });
    found
}

#[test]
fn a_flipped_byte_in_a_log_names_the_file_and_the_record_offset() {
    let (_scratch, version2) = damaged_copy("plain");
    let log = files_starting(&version2, "log.").remove(0);
    let mut bytes = fs::read(&log).unwrap();
    // Inside the first record's body: header 16, checksum 8, length 4.
    bytes[16 + 12 + 20] ^= 0x40;
    fs::write(&log, bytes).unwrap();
    let stderr = import_fails(version2.parent().unwrap());
    assert!(stderr.contains(&log.display().to_string()), "{stderr}");
    assert!(stderr.contains("byte offset 16:") && stderr.contains("Adler-32"), "{stderr}");
}

#[test]
fn a_damaged_snapshot_names_the_file_and_offset() {
    let (_scratch, version2) = damaged_copy("plain");
    let snapshot = files_starting(&version2, "snapshot.").pop().unwrap();
    let mut bytes = fs::read(&snapshot).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    fs::write(&snapshot, bytes).unwrap();
    // The only snapshot is damaged: nothing to fall back to.
    let stderr = import_fails(version2.parent().unwrap());
    assert!(stderr.contains(&snapshot.display().to_string()) && stderr.contains("damaged at byte offset"), "{stderr}");
}

#[test]
fn a_truncated_compressed_snapshot_is_refused() {
    for variant in ["gz", "snappy"] {
        let (_scratch, version2) = damaged_copy(variant);
        let snapshot = files_starting(&version2, "snapshot.").pop().unwrap();
        let bytes = fs::read(&snapshot).unwrap();
        fs::write(&snapshot, &bytes[..bytes.len() * 2 / 3]).unwrap();
        let stderr = import_fails(version2.parent().unwrap());
        assert!(
            stderr.contains(&snapshot.display().to_string()) && stderr.contains("byte offset"),
            "{variant}: {stderr}"
        );
    }
}

#[test]
fn a_missing_log_file_is_a_gap_not_a_silent_loss() {
    let (_scratch, version2) = damaged_copy("plain");
    let logs = files_starting(&version2, "log.");
    assert!(logs.len() >= 2);
    // Keep the last log but drop the one between the snapshot and it.
    fs::remove_file(&logs[0]).unwrap();
    let stderr = import_fails(version2.parent().unwrap());
    assert!(stderr.contains("leaves a gap") && stderr.contains(&logs[1].display().to_string()), "{stderr}");
}

#[test]
fn a_torn_last_record_is_imported_up_to_it_and_reported() {
    let (scratch, version2) = damaged_copy("plain");
    let log = files_starting(&version2, "log.").pop().unwrap();
    let bytes = fs::read(&log).unwrap();
    // Cut inside the last record.
    fs::write(&log, &bytes[..bytes.len() - 5]).unwrap();
    let data = scratch.path().join("data");
    let config = scratch.path().join("zoo.cfg");
    fs::write(&config, format!("dataDir={}\nclientPort=0\n", data.display())).unwrap();
    let report = run_zoocore(&[
        "import",
        "--from",
        version2.parent().unwrap().to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    assert!(
        report.contains("partial record at byte offset") && report.contains(&log.display().to_string()),
        "{report}"
    );
    let full: i64 = fs::read_to_string(fixtures().join("plain/last-zxid")).unwrap().trim().parse().unwrap();
    assert!(report.contains(&format!("at zxid {:#x}", full - 1)), "one transaction fewer: {report}");
}

#[test]
fn an_import_refuses_a_data_directory_that_holds_zoocore_data() {
    let (server, _) = zoocore_importing(&fixtures().join("plain/zk"));
    let config = server.dir().unwrap().join("zoo.cfg");
    let from = fixtures().join("plain/zk");
    let output = zoocore_tool(&["import", "--from", from.to_str().unwrap(), "--config", config.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(output.stderr.contains("already holds zoocore data"), "{}", output.stderr);
}

// ---------------------------------------------------------------------------
// The data toolkits.

#[test]
fn inspect_prints_zookeeper_logs_and_snapshots() {
    let version2 = fixtures().join("plain/zk/version-2");
    let log = files_starting(&version2, "log.").pop().unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&run_zoocore(&["inspect", "log", log.to_str().unwrap(), "--json"])).unwrap();
    let records = json["records"].as_array().unwrap();
    assert!(!records.is_empty());
    // zxids follow each other, as the file's name starts them.
    let first = i64::from_str_radix(log.file_name().unwrap().to_str().unwrap().trim_start_matches("log."), 16).unwrap();
    for (position, record) in records.iter().enumerate() {
        let zxid = i64::from_str_radix(record["zxid"].as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
        assert_eq!(zxid, first + position as i64);
    }
    assert!(records.iter().any(|record| record["type"] == "multi"), "the fill ends with multis");
    let text = run_zoocore(&["inspect", "log", log.to_str().unwrap()]);
    assert_eq!(text.lines().count(), records.len() + 1, "a header line and one line per record");

    let snapshot = files_starting(&version2, "snapshot.").pop().unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&run_zoocore(&["inspect", "snapshot", snapshot.to_str().unwrap(), "--json"])).unwrap();
    let paths: Vec<&str> = json["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|record| record["kind"] == "node")
        .map(|record| record["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"/") && paths.contains(&"/app/binary"), "{paths:?}");
    assert!(json["digest"].is_object(), "the plain variant was written with a digest");

    // Asking for the wrong kind is refused, saying what the file is.
    let output = zoocore_tool(&["inspect", "log", snapshot.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(output.stderr.contains("is a snapshot"), "{}", output.stderr);
}

#[test]
fn inspect_prints_zoocore_files_and_names_damage() {
    let (server, _) = zoocore_importing(&fixtures().join("plain/zk"));
    let mut server = server;
    server.signal_and_wait(libc::SIGTERM, Duration::from_secs(20)).expect("zoocore stops");
    let data = server.dir().unwrap().join("data");
    let snapshot = files_starting_zoocore(&data.join("snapshot"), "snapshot.").pop().unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&run_zoocore(&["inspect", "snapshot", snapshot.to_str().unwrap(), "--json"])).unwrap();
    let last: i64 = fs::read_to_string(fixtures().join("plain/last-zxid")).unwrap().trim().parse().unwrap();
    assert_eq!(json["index"], last, "the imported snapshot sits at the last ZooKeeper zxid");
    let segment = files_starting_zoocore(&data.join("log"), "log.").remove(0);
    let json: serde_json::Value =
        serde_json::from_str(&run_zoocore(&["inspect", "log", segment.to_str().unwrap(), "--json"])).unwrap();
    let records = json["records"].as_array().unwrap();
    assert!(records.iter().any(|record| record["kind"] == "snapshot_marker" && record["index"] == last), "{json}");
    // Damage in the middle of the records is named with file and offset.
    let first = records[0]["offset"].as_u64().unwrap();
    let mut bytes = fs::read(&segment).unwrap();
    bytes[first as usize + 9] ^= 0xff;
    fs::write(&segment, bytes).unwrap();
    let text = run_zoocore(&["inspect", "log", segment.to_str().unwrap()]);
    // The damaged record's offset is named (the log reports the batch it is
    // in as where the damage starts, and the record inside it).
    assert!(text.contains("DAMAGE in") && text.contains(&format!("offset {first}")), "{text}");
}

fn files_starting_zoocore(directory: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(directory)
        .unwrap()
        .map(|item| item.unwrap().path())
        .filter(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with(prefix) && !name.ends_with(".tmp") && !name.ends_with(".lock")
        })
        .collect();
    found.sort();
    found
}

// ---------------------------------------------------------------------------
// Quotas: zkCli's setquota, listquota and delquota, the stats node, hard
// limits with enforceQuota, and the mntr figures, against zoocore and the
// reference ZooKeeper 3.8, compared line for line.

const QUOTA_SCRIPT_FIRST: &str = "\
create /q \"ab\"
create /q/a \"xyz\"
setquota -n 3 /q
setquota -B 20 /q
listquota /q
create /q/b 1
create /q/c 1
create /q/d 1
set /q/a 0123456789012345678
get /zookeeper/quota/q/zookeeper_stats
get /zookeeper/quota/q/zookeeper_limits
delete /q/d
set /q/a 0123
get /zookeeper/quota/q/zookeeper_stats
setquota -N 2 /q/b
create /other 1
setquota -N 1 /other
create /other/x 1
";

const QUOTA_SCRIPT_SECOND: &str = "\
delquota -B /q
set /q/a 0123456789012345678
listquota /q
delquota /q
listquota /q
ls /zookeeper/quota
";

/// What zkCli printed, without connection chatter and log lines.
fn zkcli(addr: &str, script: &str) -> Vec<String> {
    use std::io::Write;
    let mut child = Command::new("bash")
        .arg(zkref().join("zkcli.sh"))
        .args(["-server", addr])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run zkcli.sh");
    child.stdin.take().unwrap().write_all(format!("{script}quit\n").as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    text.lines()
        .map(str::trim_end)
        .filter(|line| {
            !line.is_empty()
                && !["Connecting to", "Welcome to ZooKeeper", "JLine support", "WATCHER::", "WatchedEvent"]
                    .iter()
                    .any(|prefix| line.starts_with(prefix))
                && !line.starts_with(char::is_numeric)
                && !line.starts_with('\t')
                && !line.contains("Exception")
        })
        .map(str::to_string)
        .collect()
}

fn mntr_quota_lines(addr: &str) -> Vec<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.write_all(b"mntr").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let mut lines: Vec<String> = text.lines().filter(|line| line.contains("quota")).map(str::to_string).collect();
    lines.sort();
    lines
}

/// The quota transcript: zkCli's answers, then mntr's quota lines, twice.
fn quota_transcript(addr: &str) -> Vec<String> {
    let mut transcript = zkcli(addr, QUOTA_SCRIPT_FIRST);
    transcript.push("-- mntr".to_string());
    transcript.extend(mntr_quota_lines(addr));
    transcript.extend(zkcli(addr, QUOTA_SCRIPT_SECOND));
    transcript.push("-- mntr".to_string());
    transcript.extend(mntr_quota_lines(addr));
    transcript
}

#[test]
fn quotas_behave_as_zookeeper_3_8() {
    if let Some(why) = zookeeper_missing() {
        eprintln!("SKIPPED quotas_behave_as_zookeeper_3_8: zkCli and the reference ZooKeeper need Java: {why}");
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let reference = Reference::start(&scratch.path().join("zk"), "-Dzookeeper.enforceQuota=true", false);
    let expected = quota_transcript(&reference.addr());
    drop(reference);
    let mut configuration = ZOOCORE_CFG.to_vec();
    configuration.extend([
        "enforceQuota=true",
        "metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider",
        "metricsProvider.httpPort=0",
    ]);
    let server = Server::start_with(&configuration);
    let found = quota_transcript(server.addr());
    assert!(
        expected.iter().any(|line| line.contains("Quota has exceeded")),
        "the script passes a hard limit: {expected:#?}"
    );
    assert!(expected.iter().any(|line| line.contains("quota_count_usage_per_namespace")), "{expected:#?}");
    assert_eq!(found, expected, "zoocore's transcript (left) differs from ZooKeeper's (right)");
    eprintln!("quota transcript, identical on both:\n{}", found.join("\n"));
    // The Prometheus page carries the same figures, labelled by namespace
    // as ZooKeeper's Prometheus provider labels its gauge sets.
    let (status, _, page) = common::http(server.metrics_addr().unwrap(), "GET", "/metrics");
    assert_eq!(status, 200);
    for line in ["quota_exceeded_error_per_namespace{key=\"q\"} 1", "quota_count_usage_per_namespace{key=\"other\"} 1"]
    {
        assert!(page.lines().any(|sample| sample == line), "{line} missing from /metrics");
    }
}

#[test]
fn an_import_without_the_logs_is_refused_rather_than_losing_their_transactions() {
    let (_scratch, version2) = damaged_copy("plain");
    for log in files_starting(&version2, "log.") {
        fs::remove_file(log).unwrap();
    }
    let stderr = import_fails(version2.parent().unwrap());
    assert!(stderr.contains("holds no log.* file") && stderr.contains("--log-dir"), "{stderr}");
}
