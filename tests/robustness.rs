//! Robustness: bad input loses nothing and ends only the offending connection.
//!
//! Every test keeps a healthy client next to the misbehaving ones and checks that its data is
//! intact and that it can still read and write; at the end the server must still answer `ruok`,
//! its process must still be running (not a zombie), and its stderr must not contain "panicked".
//!
//! Covered: framing errors before and after the handshake (negative, huge and above
//! jute.maxbuffer length prefixes, short frames, short ConnectRequests, unknown opcodes, failed
//! auth); garbage bodies for every opcode; a bounded seeded fuzz of random frames; frames split
//! into single bytes, and a handshake pipelined with requests; writes sent before a half-close;
//! a client that stops reading; maxClientCnxns; globalOutstandingLimit under pipelining (10, and
//! 1 with concurrent mixed pipelines); the jute.maxbuffer boundary with session resumption; the
//! four-letter-word whitelist and unknown words; a lastZxidSeen ahead of the server.
//!
//! The expectations were checked against Apache ZooKeeper 3.8.0 (shared/tools/zkref; the
//! whitespace-trimmed whitelist by hand, with `4lw.commands.whitelist= ruok , conf ,`):
//!
//! ```sh
//! ZKREF_ROOT=/tmp/zkref-rb ZKREF_ADMIN_PORT=8781 \
//!   ZKREF_EXTRA_CFG=$'maxClientCnxns=5\n4lw.commands.whitelist=ruok\nglobalOutstandingLimit=10' \
//!   ../shared/tools/zkref/start-standalone.sh 2781
//! ZOOCORE_TEST_ADDR=127.0.0.1:2781 ZOOCORE_TEST_ROBUST_REF=1 \
//!   cargo test --test robustness -- --test-threads=1 --include-ignored
//! ```
//!
//! `ZOOCORE_TEST_ROBUST_REF=1` says the external server runs with [`REF_CFG`]; without it, tests
//! that need a configuration skip in external mode. One thread: maxClientCnxns=5 is shared.
mod common;

use std::fs;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::raw::{err, op, Conn, Enc, Reply};
use common::*;

const REF_ENV: &str = "ZOOCORE_TEST_ROBUST_REF";
/// The configuration the external reference server runs with when [`REF_ENV`] is set.
const REF_CFG: &[&str] = &["maxClientCnxns=5", "4lw.commands.whitelist=ruok", "globalOutstandingLimit=10"];
/// jute.maxbuffer's default: the largest request frame, in bytes.
const JUTE_MAX: usize = 0xfffff;
/// How long a reply or a close may take before the test calls it a hang.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// Create flags.
const EPHEMERAL: i32 = 1;

// ---------------------------------------------------------------------------------------------
// Harness helpers

/// Starts a server with `cfg` lines, or returns None (with a SKIP note) in external mode when
/// the external server cannot be assumed to have that configuration.
fn start(test: &str, cfg: &[&str]) -> Option<(Server, Option<u32>)> {
    if Server::external() {
        let reference = std::env::var(REF_ENV).is_ok_and(|v| v == "1");
        let configured = cfg.is_empty() || (reference && cfg.iter().all(|line| REF_CFG.contains(line)));
        if !configured {
            eprintln!("SKIP {test}: needs {cfg:?} (set {REF_ENV}=1 if the external server runs with {REF_CFG:?})");
            return None;
        }
    }
    let server = Server::start_with(cfg);
    let pid = server_pid(&server);
    if !Server::external() {
        assert!(pid.is_some(), "cannot find the pid of the zoocore child");
    }
    Some((server, pid))
}

/// The pid of the zoocore child started for `server`: the child of this process whose command
/// line is `zoocore --config <server dir>/zoo.cfg`. None in external mode.
fn server_pid(server: &Server) -> Option<u32> {
    let config = server.dir()?.join("zoo.cfg");
    let config = config.to_str()?.as_bytes();
    let me = std::process::id();
    for entry in fs::read_dir("/proc").ok()?.flatten().take(1_000_000) {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else { continue };
        let args: Vec<&[u8]> = cmdline.split(|byte| *byte == 0).collect();
        if args.windows(2).any(|pair| pair[0] == b"--config" && pair[1] == config) && parent_pid(pid) == Some(me) {
            return Some(pid);
        }
    }
    None
}

/// State and parent pid from /proc/PID/stat ("pid (comm) S ppid ...").
fn proc_stat(pid: u32) -> Option<(char, u32)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let parent = fields.next()?.parse().ok()?;
    Some((state, parent))
}

fn parent_pid(pid: u32) -> Option<u32> {
    proc_stat(pid).map(|(_, parent)| parent)
}

/// The server answers ruok, its process has not exited, and nothing panicked.
fn assert_server_sound(server: &Server, pid: Option<u32>) {
    if let Some(pid) = pid {
        match proc_stat(pid) {
            Some((state, _)) if state != 'Z' && state != 'X' => {}
            other => panic!("the zoocore process {pid} has exited ({other:?})\n{}", server.stderr_tail()),
        }
    }
    if let Some(dir) = server.dir() {
        let log = fs::read_to_string(dir.join("zoocore.stderr.log")).unwrap_or_default();
        assert!(!log.contains("panicked"), "zoocore panicked:\n{}", server.stderr_tail());
    }
    assert_eq!(four_letter(server.addr(), "ruok"), "imok", "ruok after the abuse");
}

/// Sends a four-letter word and returns the whole answer; "" when the server closes at once.
fn four_letter(addr: &str, word: &str) -> String {
    let Ok(mut stream) = TcpStream::connect(addr) else { return String::new() };
    stream.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    if stream.write_all(word.as_bytes()).is_err() {
        return String::new();
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

fn is_closed_kind(kind: io::ErrorKind) -> bool {
    matches!(
        kind,
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

/// A new session, retrying (bounded) while the server is still releasing closed connections
/// (maxClientCnxns counts them until it has seen them close).
fn session(addr: &str) -> Conn {
    let mut last = None;
    let conn = wait_for_some(Duration::from_secs(10), || match Conn::handshake(addr, 10_000, 0, &[0u8; 16], 0) {
        Ok((conn, response)) if response.session_id != 0 => Some(conn),
        other => {
            last = Some(other.map(|(_, response)| response));
            None
        }
    });
    let conn = conn.unwrap_or_else(|| panic!("no new session within 10 s: {last:?}"));
    conn.set_read_timeout(REPLY_TIMEOUT);
    conn
}

/// Reads to the end of a connection that must be closed without a single byte sent to it.
fn assert_closed_silently(stream: &mut TcpStream, what: &str) {
    stream.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    let mut buffer = [0u8; 256];
    match stream.read(&mut buffer) {
        Ok(0) => {}
        Ok(n) => panic!("{what}: expected a close without response, got {n} bytes: {:?}", &buffer[..n]),
        Err(e) if is_closed_kind(e.kind()) => {}
        Err(e) => panic!("{what}: expected the server to close the connection, got {e}"),
    }
}

#[derive(Debug)]
enum Outcome {
    Closed,
    Replied(Reply),
}

/// The next reply (notifications skipped), or Closed; a timeout is a hang and fails.
fn outcome(conn: &mut Conn, what: &str) -> Outcome {
    match conn.read_reply() {
        Ok(reply) => Outcome::Replied(reply),
        Err(e) if is_closed_kind(e.kind()) => Outcome::Closed,
        Err(e) => panic!("{what}: the server neither answered nor closed the connection: {e}"),
    }
}

fn framed(xid: i32, opcode: i32, body: &[u8]) -> Vec<u8> {
    let mut frame = ((8 + body.len()) as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&xid.to_be_bytes());
    frame.extend_from_slice(&opcode.to_be_bytes());
    frame.extend_from_slice(body);
    frame
}

fn connect_request(last_zxid: i64, session_id: i64, password: &[u8]) -> Vec<u8> {
    let body = Enc::new().i32(0).i64(last_zxid).i32(10_000).i64(session_id).buf(password).bool(false).bytes();
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

/// A client that behaves, with a small subtree whose content is checked after every abuse.
struct Healthy {
    conn: Conn,
    root: String,
    data: Vec<u8>,
    version: i32,
}

impl Healthy {
    fn new(addr: &str, tag: &str) -> Healthy {
        let mut conn = session(addr);
        let root = unique(tag);
        assert_eq!(conn.create(&root, b"first", 0).err, err::OK);
        for child in ["a", "b", "c"] {
            assert_eq!(conn.create(&format!("{root}/{child}"), child.as_bytes(), 0).err, err::OK);
        }
        let data = format!("healthy data of {root}").into_bytes();
        let set = conn.set_data(&root, &data, 0);
        assert_eq!(set.err, err::OK);
        Healthy { conn, root, data, version: 1 }
    }

    /// Data, version and children are unchanged, and the client can still write.
    fn check(&mut self, after: &str) {
        let reply = self.conn.get_data(&self.root, false);
        assert_eq!(reply.err, err::OK, "healthy getData after {after}");
        let mut body = reply.dec();
        assert_eq!(body.buf().unwrap_or_default(), self.data, "healthy data after {after}");
        let stat = body.stat();
        assert_eq!(stat.version, self.version, "healthy version after {after}");
        assert_eq!(stat.num_children, 3, "healthy children after {after}");
        let children = self.conn.get_children(&self.root, false);
        assert_eq!(children.err, err::OK);
        let mut names = children.dec().strs();
        names.sort();
        assert_eq!(names, ["a", "b", "c"], "healthy children after {after}");
        let probe = format!("{}/probe", self.root);
        assert_eq!(self.conn.create(&probe, b"p", EPHEMERAL).err, err::OK, "healthy create after {after}");
        assert_eq!(self.conn.delete(&probe, 0).err, err::OK, "healthy delete after {after}");
    }

    fn root_children(&mut self) -> Vec<String> {
        let reply = self.conn.get_children("/", false);
        assert_eq!(reply.err, err::OK);
        let mut names = reply.dec().strs();
        names.sort();
        names
    }
}

/// `srvr`'s "Key: value" line as a number.
fn srvr_number(addr: &str, key: &str) -> Option<i64> {
    let answer = four_letter(addr, "srvr");
    answer.lines().find_map(|line| line.strip_prefix(key)?.trim_start_matches(':').trim().parse().ok())
}

/// Every closed connection was released: srvr's connection count returns to `before` (taken
/// the same way, with the same clients open) and nothing is outstanding.
fn assert_released(addr: &str, before: Option<i64>) {
    if let Some(before) = before {
        assert!(
            wait_for(Duration::from_secs(5), || srvr_number(addr, "Connections") == Some(before)),
            "connections did not return to {before}: srvr says {:?}",
            srvr_number(addr, "Connections")
        );
    }
    assert!(
        wait_for(Duration::from_secs(5), || srvr_number(addr, "Outstanding") == Some(0)),
        "outstanding requests leaked: srvr says {:?}",
        srvr_number(addr, "Outstanding")
    );
}

/// Every client opcode of ZooKeeper 3.9, plus internal and unassigned ones.
const ALL_OPCODES: &[i32] = &[
    op::CREATE,
    op::DELETE,
    op::EXISTS,
    op::GET_DATA,
    op::SET_DATA,
    op::GET_ACL,
    op::SET_ACL,
    op::GET_CHILDREN,
    op::SYNC,
    op::PING,
    op::GET_CHILDREN2,
    op::CHECK,
    op::MULTI,
    op::CREATE2,
    op::RECONFIG,
    op::CHECK_WATCHES,
    op::REMOVE_WATCHES,
    op::CREATE_CONTAINER,
    op::DELETE_CONTAINER,
    op::CREATE_TTL,
    op::MULTI_READ,
    op::AUTH,
    op::SET_WATCHES,
    op::SASL,
    op::GET_EPHEMERALS,
    op::GET_ALL_CHILDREN_NUMBER,
    op::SET_WATCHES2,
    op::ADD_WATCH,
    op::WHO_AM_I,
    op::CLOSE_SESSION,
    -10, // createSession, internal
    10,  // unassigned
    23,
    999,
];

// ---------------------------------------------------------------------------------------------
// (a) framing errors and garbage bodies

#[test]
fn framing_errors_before_the_handshake_close_only_that_connection() {
    let Some((server, pid)) = start("framing_errors_before_the_handshake_close_only_that_connection", &[]) else {
        return;
    };
    let addr = server.addr();
    let mut healthy = Healthy::new(addr, "robust-pre");
    let full_connect = connect_request(0, 0, &[0u8; 16]);
    let mut over_max = ((JUTE_MAX + 1) as i32).to_be_bytes().to_vec();
    over_max.extend_from_slice(&[0u8; 4096]);
    let mut huge = i32::MAX.to_be_bytes().to_vec();
    huge.extend_from_slice(&full_connect[4..]);
    let with_length = |body: Vec<u8>| [&(body.len() as i32).to_be_bytes()[..], &body].concat();
    let huge_password = with_length(Enc::new().i32(0).i64(0).i32(10_000).i64(0).i32(i32::MAX).raw(&[0; 17]).bytes());
    let negative_password = with_length(Enc::new().i32(0).i64(0).i32(10_000).i64(0).i32(-5).raw(&[0; 17]).bytes());
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("length -1", (-1i32).to_be_bytes().to_vec()),
        ("length i32::MIN", i32::MIN.to_be_bytes().to_vec()),
        ("length i32::MAX", huge),
        ("length jute.maxbuffer + 1", over_max),
        ("empty ConnectRequest", 0i32.to_be_bytes().to_vec()),
        ("4-byte ConnectRequest", [&4i32.to_be_bytes()[..], &[0u8; 4]].concat()),
        ("ConnectRequest cut after 20 bytes", [&20i32.to_be_bytes()[..], &full_connect[4..24]].concat()),
        ("ConnectRequest with a 2^31-1 byte password", huge_password),
        ("ConnectRequest with password length -5", negative_password),
    ];
    for (what, bytes) in cases {
        let mut stream = TcpStream::connect(addr).unwrap();
        // The server may close before everything is written; that is the expected outcome.
        let _ = stream.write_all(&bytes);
        assert_closed_silently(&mut stream, what);
        healthy.check(what);
    }
    assert_server_sound(&server, pid);
}

#[test]
fn framing_errors_after_the_handshake_close_only_that_connection_and_keep_the_session() {
    let Some((server, pid)) = start("framing_errors_after_the_handshake_close_only_that_connection", &[]) else {
        return;
    };
    let addr = server.addr();
    let mut healthy = Healthy::new(addr, "robust-post");
    let mut over_max = ((JUTE_MAX + 1) as i32).to_be_bytes().to_vec();
    over_max.extend_from_slice(&framed(1, op::EXISTS, &Enc::new().str("/").bool(false).bytes())[4..]);
    // (bytes, reply expected before the close: Some(err) or None for a silent close)
    let cases: Vec<(&str, Vec<u8>, Option<i32>)> = vec![
        ("length 0", 0i32.to_be_bytes().to_vec(), None),
        ("4-byte header", [&4i32.to_be_bytes()[..], &1i32.to_be_bytes()].concat(), None),
        ("7-byte header", [&7i32.to_be_bytes()[..], &[0u8; 7]].concat(), None),
        ("length -1", (-1i32).to_be_bytes().to_vec(), None),
        ("length i32::MIN", i32::MIN.to_be_bytes().to_vec(), None),
        ("length i32::MAX", [&i32::MAX.to_be_bytes()[..], &[0u8; 64]].concat(), None),
        ("length jute.maxbuffer + 1", over_max, None),
        ("auth with a garbage body", framed(-4, op::AUTH, &[0, 0]), None),
        (
            "auth with an unknown scheme",
            framed(-4, op::AUTH, &Enc::new().i32(0).str("bogus").buf(b"x").bytes()),
            Some(-115),
        ),
        ("unknown opcode 999", framed(7, 999, &[]), Some(err::UNIMPLEMENTED)),
        ("unknown opcode 0 (notification)", framed(7, 0, &[1, 2, 3]), Some(err::UNIMPLEMENTED)),
        ("unknown opcode -1 (error)", framed(7, -1, &[]), Some(err::UNIMPLEMENTED)),
        ("unknown opcode 10", framed(7, 10, &[]), Some(err::UNIMPLEMENTED)),
        ("unknown opcode 23", framed(7, 23, &[]), Some(err::UNIMPLEMENTED)),
    ];
    for (what, bytes, reply) in cases {
        let mut conn = session(addr);
        let (session_id, password) = (conn.session_id, conn.passwd.clone());
        let _ = conn.write_raw(&bytes);
        match (outcome(&mut conn, what), reply) {
            (Outcome::Closed, None) => {}
            (Outcome::Replied(r), Some(code)) => {
                assert_eq!(r.err, code, "{what}: reply error");
                assert!(r.xid == 7 || r.xid == -4, "{what}: reply xid {}", r.xid);
                assert!(conn.expect_closed(), "{what}: the connection stays open after the error");
            }
            (got, expected) => panic!("{what}: expected reply {expected:?} then close, got {got:?}"),
        }
        // Only the connection ended: the session resumes with its id and password.
        let (mut resumed, response) = Conn::handshake(addr, 10_000, session_id, &password, 0).unwrap();
        assert_eq!(response.session_id, session_id, "{what}: session lost");
        assert_eq!(resumed.exists("/", false).err, err::OK, "{what}: resumed session works");
        resumed.close();
        healthy.check(what);
    }
    assert_server_sound(&server, pid);
}

/// Garbage bodies of each kind for every opcode. What ZooKeeper 3.8 does with a body it cannot
/// decode is to answer MarshallingError and keep the connection (see the ignored test below);
/// closing the connection instead is accepted here. Either way: an answer to the request's xid
/// or a close, never a hang, nothing applied, and no other client affected.
#[test]
fn garbage_bodies_for_every_opcode_apply_nothing_and_affect_only_their_connection() {
    let Some((server, pid)) = start("garbage_bodies_for_every_opcode", &[]) else { return };
    let addr = server.addr();
    let mut healthy = Healthy::new(addr, "robust-garbage");
    let root_before = healthy.root_children();
    let connections_before = srvr_number(addr, "Connections");
    let mut rng = Random::from_env_or("garbage bodies", 0x0bad_b0d1);
    let (mut closed, mut answered) = (0, 0);
    for &opcode in ALL_OPCODES {
        let kinds: Vec<(&str, Vec<u8>)> = vec![
            ("empty", vec![]),
            ("2 bytes", vec![0, 0]),
            ("24 random bytes", rng.bytes(24)),
            ("300 random bytes", rng.bytes(300)),
            ("string of length 2^31-1", Enc::new().i32(i32::MAX).raw(b"ab").bytes()),
            ("string of length -7", Enc::new().i32(-7).raw(&rng.bytes(24)).bytes()),
            ("path then length 2^31-1", Enc::new().str("/").i32(i32::MAX).raw(&[0; 8]).bytes()),
            ("path then length -2", Enc::new().str("/").i32(-2).raw(&[1; 8]).bytes()),
        ];
        for (kind, body) in kinds {
            let what = format!("opcode {opcode} with {kind} body");
            let mut conn = session(addr);
            conn.send_xid(41, opcode, &body).unwrap();
            match outcome(&mut conn, &what) {
                Outcome::Closed => closed += 1,
                Outcome::Replied(reply) => {
                    answered += 1;
                    // ZooKeeper answers a ping with xid -2 whatever the request's, and treats
                    // opcode -10 with a body of 4 bytes or more as createSession, answering a
                    // ConnectResponse-shaped frame.
                    let ping_xid = opcode == op::PING && reply.xid == -2;
                    let create_session = opcode == -10;
                    assert!(reply.xid == 41 || ping_xid || create_session, "{what}: reply to xid {}", reply.xid);
                    // After an error the server may close (ZooKeeper does for an unknown opcode),
                    // after a success only for closeSession; otherwise the connection works on.
                    let must_close = reply.err == err::UNIMPLEMENTED || opcode == op::CLOSE_SESSION;
                    if must_close {
                        assert!(conn.expect_closed(), "{what}: not closed after {}", reply.err);
                    } else {
                        let xid = conn.send(op::EXISTS, &Enc::new().str("/").bool(false).bytes()).unwrap();
                        match outcome(&mut conn, &what) {
                            Outcome::Replied(next) => {
                                assert_eq!((next.xid, next.err), (xid, err::OK), "{what}: next request")
                            }
                            Outcome::Closed => {
                                assert_ne!(reply.err, err::OK, "{what}: closed after a successful reply")
                            }
                        }
                    }
                }
            }
        }
        healthy.check(&format!("opcode {opcode} garbage"));
    }
    eprintln!("garbage bodies: {closed} connections closed, {answered} answered");
    assert_released(addr, connections_before);
    assert_eq!(healthy.root_children(), root_before, "garbage created or deleted top-level nodes");
    assert_server_sound(&server, pid);
}

/// ZooKeeper 3.8.0 answers a request whose body cannot be decoded with MarshallingError (-5)
/// for that xid and keeps the connection open (FinalRequestProcessor for reads,
/// PrepRequestProcessor's ErrorTxn for writes). Checked against the reference server.
#[test]
fn malformed_bodies_get_marshalling_error_and_keep_the_connection_like_zookeeper() {
    let Some((server, _pid)) = start("malformed_bodies_get_marshalling_error", &[]) else { return };
    let addr = server.addr();
    let opcodes = [
        op::CREATE,
        op::DELETE,
        op::EXISTS,
        op::GET_DATA,
        op::SET_DATA,
        op::GET_ACL,
        op::SET_ACL,
        op::GET_CHILDREN,
        op::SYNC,
        op::GET_CHILDREN2,
        op::CHECK,
        op::MULTI,
        op::CREATE2,
        op::RECONFIG,
        op::CHECK_WATCHES,
        op::REMOVE_WATCHES,
        op::CREATE_CONTAINER,
        op::CREATE_TTL,
        op::MULTI_READ,
        op::SET_WATCHES,
        op::GET_EPHEMERALS,
        op::GET_ALL_CHILDREN_NUMBER,
        op::SET_WATCHES2,
        op::ADD_WATCH,
    ];
    let mut failures = Vec::new();
    for opcode in opcodes {
        for (kind, body) in [
            ("empty", vec![]),
            ("2 bytes", vec![0, 0]),
            ("string of length 2^31-1", Enc::new().i32(i32::MAX).raw(b"ab").bytes()),
        ] {
            let mut conn = session(addr);
            conn.send_xid(41, opcode, &body).unwrap();
            let got = match outcome(&mut conn, "malformed body") {
                Outcome::Replied(reply) if (reply.xid, reply.err) == (41, err::MARSHALLING_ERROR) => {
                    let xid = conn.send(op::EXISTS, &Enc::new().str("/").bool(false).bytes()).unwrap();
                    match outcome(&mut conn, "after MarshallingError") {
                        Outcome::Replied(next) if (next.xid, next.err) == (xid, err::OK) => continue,
                        other => format!("MarshallingError, then {other:?}"),
                    }
                }
                other => format!("{other:?}"),
            };
            failures.push(format!("opcode {opcode} with {kind} body: {got}"));
        }
    }
    assert!(failures.is_empty(), "expected MarshallingError and an open connection:\n{}", failures.join("\n"));
}

/// deleteContainer (opcode 20) is internal to ZooKeeper 3.8: from a client it is answered
/// BadArguments (-8), valid body or not, the node stays and the connection stays open.
#[test]
fn delete_container_from_a_client_is_bad_arguments_like_zookeeper() {
    let Some((server, _pid)) = start("delete_container_from_a_client_is_bad_arguments", &[]) else { return };
    let addr = server.addr();
    let path = unique("robust-container");
    let mut conn = session(addr);
    let body = Enc::new().str(&path).buf(b"").open_acl().i32(4).bytes();
    assert_eq!(conn.request(op::CREATE_CONTAINER, &body).err, err::OK);
    let reply = conn.request(op::DELETE_CONTAINER, &Enc::new().str(&path).bytes());
    assert_eq!(reply.err, err::BAD_ARGUMENTS, "deleteContainer from a client");
    assert_eq!(conn.exists(&path, false).err, err::OK, "the connection stays open and the container stays");
}

#[test]
fn frames_split_into_single_bytes_are_reassembled() {
    let Some((server, pid)) = start("frames_split_into_single_bytes_are_reassembled", &[]) else { return };
    let addr = server.addr();
    let path = unique("robust-bytewise");
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    stream.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    let create = framed(1, op::CREATE, &Enc::new().str(&path).buf(b"bytewise").open_acl().i32(0).bytes());
    let get = framed(2, op::GET_DATA, &Enc::new().str(&path).bool(false).bytes());
    for bytes in [connect_request(0, 0, &[0u8; 16]), create, get] {
        for byte in bytes {
            stream.write_all(&[byte]).unwrap();
        }
    }
    let mut frames = Vec::new();
    for _ in 0..3 {
        let mut length = [0u8; 4];
        stream.read_exact(&mut length).expect("reply length");
        let mut body = vec![0u8; i32::from_be_bytes(length) as usize];
        stream.read_exact(&mut body).expect("reply body");
        frames.push(body);
    }
    let session_id = i64::from_be_bytes(frames[0][8..16].try_into().unwrap());
    assert_ne!(session_id, 0, "ConnectResponse");
    let create_reply = &frames[1];
    assert_eq!(&create_reply[..4], &1i32.to_be_bytes(), "create xid");
    assert_eq!(&create_reply[12..16], &0i32.to_be_bytes(), "create err");
    let get_reply = &frames[2];
    assert_eq!(&get_reply[..4], &2i32.to_be_bytes(), "getData xid");
    assert_eq!(&get_reply[12..16], &0i32.to_be_bytes(), "getData err");
    assert_eq!(common::raw::Dec(&get_reply[16..]).buf().unwrap(), b"bytewise");
    assert_server_sound(&server, pid);
}

/// Reads one length-prefixed frame from a plain stream.
fn read_frame(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut length = [0u8; 4];
    stream.read_exact(&mut length)?;
    let length = i32::from_be_bytes(length);
    assert!((0..64 << 20).contains(&length), "reply frame length {length}");
    let mut body = vec![0u8; length as usize];
    stream.read_exact(&mut body)?;
    Ok(body)
}

/// (xid, err) of a reply frame.
fn reply_header(frame: &[u8]) -> (i32, i32) {
    (i32::from_be_bytes(frame[..4].try_into().unwrap()), i32::from_be_bytes(frame[12..16].try_into().unwrap()))
}

#[test]
fn a_handshake_pipelined_with_requests_in_one_write_is_served() {
    let Some((server, pid)) = start("a_handshake_pipelined_with_requests_in_one_write_is_served", &[]) else {
        return;
    };
    let path = unique("robust-pipelined-handshake");
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    let mut bytes = connect_request(0, 0, &[0u8; 16]);
    bytes.extend(framed(1, op::CREATE, &Enc::new().str(&path).buf(b"one write").open_acl().i32(0).bytes()));
    bytes.extend(framed(2, op::GET_DATA, &Enc::new().str(&path).bool(false).bytes()));
    bytes.extend(framed(3, op::CLOSE_SESSION, &[]));
    stream.write_all(&bytes).unwrap();
    let connect = read_frame(&mut stream).expect("ConnectResponse");
    assert_ne!(i64::from_be_bytes(connect[8..16].try_into().unwrap()), 0, "session id");
    assert_eq!(reply_header(&read_frame(&mut stream).unwrap()), (1, err::OK), "create");
    let get = read_frame(&mut stream).unwrap();
    assert_eq!(reply_header(&get), (2, err::OK), "getData");
    assert_eq!(common::raw::Dec(&get[16..]).buf().unwrap(), b"one write");
    assert_eq!(reply_header(&read_frame(&mut stream).unwrap()), (3, err::OK), "closeSession");
    let mut rest = Vec::new();
    match stream.read_to_end(&mut rest) {
        Ok(_) => assert!(rest.is_empty(), "bytes after the closeSession reply: {rest:?}"),
        Err(e) => assert!(is_closed_kind(e.kind()), "expected a close after closeSession: {e}"),
    }
    assert_server_sound(&server, pid);
}

/// Requests that reached the server before the client half-closed its socket are applied,
/// whether or not their replies can still be delivered.
#[test]
fn pipelined_writes_before_a_half_close_are_all_applied() {
    let Some((server, pid)) = start("pipelined_writes_before_a_half_close_are_all_applied", &[]) else { return };
    let addr = server.addr();
    let base = unique("robust-half-close");
    let mut healthy = session(addr);
    assert_eq!(healthy.create(&base, b"", 0).err, err::OK);
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    let mut bytes = connect_request(0, 0, &[0u8; 16]);
    for i in 0..200 {
        let body = Enc::new().str(&format!("{base}/n{i:03}")).buf(b"x").open_acl().i32(0).bytes();
        bytes.extend(framed(i + 1, op::CREATE, &body));
    }
    stream.write_all(&bytes).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    // Drain whatever the server still sends until it closes.
    let mut sink = Vec::new();
    let _ = stream.read_to_end(&mut sink);
    // Another session's read is not ordered after them (only sync is): poll, bounded.
    let mut applied = 0;
    let complete = wait_for(Duration::from_secs(5), || {
        let reply = healthy.get_children(&base, false);
        assert_eq!(reply.err, err::OK);
        applied = reply.dec().strs().len();
        applied == 200
    });
    assert!(complete, "creates sent before the half-close: {applied} of 200 applied");
    assert_server_sound(&server, pid);
}

/// A client that pipelines large reads and stops reading its socket is held back (the server
/// stops reading its requests) without stalling anyone else, and gets every reply once it reads.
#[test]
fn a_client_that_stops_reading_does_not_stall_others_and_loses_no_reply() {
    let Some((server, pid)) = start("a_client_that_stops_reading_does_not_stall_others", &[]) else { return };
    let addr = server.addr();
    let path = unique("robust-slow-reader");
    let payload: Vec<u8> = (0..256 * 1024u32).map(|i| (i % 253) as u8).collect();
    let mut slow = session(addr);
    slow.set_read_timeout(Duration::from_secs(10));
    assert_eq!(slow.create(&path, &payload, 0).err, err::OK);
    const READS: i32 = 100; // 25 MiB of replies
    let mut pipeline = Vec::new();
    for xid in 1..=READS {
        pipeline.extend(framed(xid, op::GET_DATA, &Enc::new().str(&path).bool(false).bytes()));
    }
    slow.write_raw(&pipeline).unwrap();
    // Meanwhile, others are served promptly.
    let mut healthy = Healthy::new(addr, "robust-slow-healthy");
    // A stall is a liveness failure, not a speed figure: every request of
    // the healthy client has a deadline, and one that passes fails the read.
    healthy.conn.set_read_timeout(Duration::from_secs(5));
    for round in 0..20 {
        healthy.check(&format!("round {round} beside a client that does not read"));
    }
    assert_eq!(four_letter(addr, "ruok"), "imok");
    // The slow client reads everything, in order.
    for xid in 1..=READS {
        let reply = slow.read_reply().unwrap_or_else(|e| panic!("reply {xid} of {READS}: {e}"));
        assert_eq!((reply.xid, reply.err), (xid, err::OK));
        assert!(reply.dec().buf().unwrap_or_default() == payload, "reply {xid} data");
    }
    assert_eq!(slow.exists(&path, false).err, err::OK, "the slow client still works");
    assert_server_sound(&server, pid);
}

// ---------------------------------------------------------------------------------------------
// (b) fuzz

const FUZZ_SEED: u64 = 0x5eed_2024_0b5e_55ed;
const FUZZ_FRAMES: usize = 2000;
const FUZZ_TIME: Duration = Duration::from_secs(10);
/// The xid of the well-formed request that ends each batch; fuzz frames never use it.
const SENTINEL_XID: i32 = 0x7fff_fff0;
const FUZZ_PATHS: &[&str] = &[
    "/fuzz",
    "/fuzz/a",
    "/fuzz/a/b",
    "/fuzz/",
    "/fuzz-",
    "",
    "fuzz",
    "//",
    "/fuzz/./a",
    "/fuzz/\u{0}",
    "/fuzz/a\u{1}",
];

/// A body made of jute-ish tokens (ints, small counts, paths, buffers, bad lengths), so that
/// many frames get past the first field of their decoder.
fn fuzz_body(rng: &mut Random) -> Vec<u8> {
    let mut body = Enc::new();
    for _ in 0..rng.below(8) {
        body = match rng.below(10) {
            0 => body.i32(rng.next_u64() as i32),
            1 | 2 => body.i32(rng.below(5) as i32 - 1),
            3 => body.i64(rng.next_u64() as i64),
            4 => body.bool(rng.below(2) == 1),
            5 | 6 => body.str(rng.pick(FUZZ_PATHS)),
            7 => {
                let n = rng.below(48) as usize;
                body.buf(&rng.bytes(n))
            }
            8 => body.i32(rng.pick(&[i32::MAX, i32::MIN, -2, 0x0100_0000, JUTE_MAX as i32])),
            _ => {
                let n = rng.below(16) as usize;
                body.raw(&rng.bytes(n))
            }
        };
    }
    body.bytes()
}

/// One fuzz frame and whether it is well framed (its length prefix matches its size).
fn fuzz_frame(rng: &mut Random) -> (Vec<u8>, bool) {
    let random_xid = rng.next_u64() as i32;
    let mut xid = rng.pick(&[1, 2, 3, -2, -4, -8, random_xid]);
    if xid == SENTINEL_XID {
        xid = 5;
    }
    match rng.below(100) {
        0..=74 => {
            let opcode = if rng.below(10) == 0 { rng.next_u64() as i32 } else { rng.pick(ALL_OPCODES) };
            (framed(xid, opcode, &fuzz_body(rng)), true)
        }
        75..=89 => {
            let n = rng.below(72) as usize;
            let mut frame = (n as i32).to_be_bytes().to_vec();
            frame.extend_from_slice(&rng.bytes(n));
            (frame, true)
        }
        90..=95 => {
            let short = rng.below(64) as i32;
            let declared = rng.pick(&[-1, i32::MIN, i32::MAX, JUTE_MAX as i32 + 1, short]);
            let mut frame = declared.to_be_bytes().to_vec();
            let n = rng.below(64) as usize;
            frame.extend_from_slice(&rng.bytes(n));
            (frame, false)
        }
        _ => {
            let n = 1 + rng.below(32) as usize;
            (rng.bytes(n), false)
        }
    }
}

#[test]
fn fuzzed_frames_after_the_handshake_leave_the_server_sound() {
    let Some((server, pid)) = start("fuzzed_frames_after_the_handshake_leave_the_server_sound", &[]) else {
        return;
    };
    let addr = server.addr();
    let mut healthy = Healthy::new(addr, "robust-fuzz");
    // A subtree the fuzz may legitimately change.
    let setup = healthy.conn.create("/fuzz", b"", 0).err;
    assert!(setup == err::OK || setup == -110, "create /fuzz: {setup}");
    let connections_before = srvr_number(addr, "Connections");
    let mut rng = Random::from_env_or("fuzzed frames", FUZZ_SEED);
    let started = Instant::now();
    let (mut sent, mut connections, mut closed_by_server) = (0usize, 0usize, 0usize);
    'connections: while sent < FUZZ_FRAMES && started.elapsed() < FUZZ_TIME {
        let mut conn = session(addr);
        connections += 1;
        loop {
            let mut batch = Vec::new();
            let mut well_framed = true;
            // closeSession (or ZooKeeper's createSession quirk) makes later requests of the
            // batch legitimately fail with SessionExpired.
            let mut ends_session = false;
            for _ in 0..1 + rng.below(6) {
                let (frame, ok) = fuzz_frame(&mut rng);
                well_framed &= ok;
                if frame.len() >= 12 {
                    let opcode = i32::from_be_bytes(frame[8..12].try_into().unwrap());
                    ends_session |= opcode == op::CLOSE_SESSION || opcode == -10;
                }
                batch.extend_from_slice(&frame);
                sent += 1;
            }
            if !well_framed {
                // The server may wait for the rest of a frame that never comes: hang up.
                let _ = conn.write_raw(&batch);
                continue 'connections;
            }
            batch.extend_from_slice(&framed(SENTINEL_XID, op::EXISTS, &Enc::new().str("/").bool(false).bytes()));
            if conn.write_raw(&batch).is_err() {
                closed_by_server += 1;
                continue 'connections;
            }
            // Everything before the sentinel is answered first, or the connection closes.
            loop {
                match conn.read_any() {
                    Ok(reply) if reply.xid == SENTINEL_XID => {
                        if ends_session && reply.err == err::SESSION_EXPIRED {
                            continue 'connections;
                        }
                        assert_eq!(reply.err, err::OK, "sentinel exists / (after batch {batch:02x?})");
                        break;
                    }
                    Ok(_) => {}
                    Err(e) if is_closed_kind(e.kind()) => {
                        closed_by_server += 1;
                        continue 'connections;
                    }
                    Err(e) => panic!("fuzz: no answer and no close after frame {sent} ({e}); batch {batch:02x?}"),
                }
            }
            if sent >= FUZZ_FRAMES || started.elapsed() >= FUZZ_TIME {
                break 'connections;
            }
        }
    }
    eprintln!(
        "fuzz: {sent} frames on {connections} connections ({closed_by_server} closed by the server) in {:?}",
        started.elapsed()
    );
    assert!(sent >= FUZZ_FRAMES / 4, "fuzz too slow to mean anything: {sent} frames in {FUZZ_TIME:?}");
    healthy.check("the fuzz");
    let reply = healthy.conn.get_data(&healthy.root, false);
    assert_eq!(reply.dec().buf().unwrap_or_default(), healthy.data);
    assert_server_sound(&server, pid);
    assert_released(addr, connections_before);
    // New sessions still work.
    let mut fresh = session(addr);
    assert_eq!(fresh.exists(&healthy.root, false).err, err::OK);
}

// ---------------------------------------------------------------------------------------------
// (c) maxClientCnxns

#[test]
fn max_client_cnxns_refuses_the_sixth_connection_only() {
    let Some((server, pid)) = start("max_client_cnxns_refuses_the_sixth_connection_only", &["maxClientCnxns=5"]) else {
        return;
    };
    let addr = server.addr();
    let base = unique("robust-cnxns");
    let mut conns: Vec<Conn> = (0..5).map(|_| session(addr)).collect();
    assert_eq!(conns[0].create(&base, b"", 0).err, err::OK);
    // The 6th: closed without a ConnectResponse.
    let refused = |what: &str| match Conn::handshake(addr, 10_000, 0, &[0u8; 16], 0) {
        Ok((_, response)) => panic!("{what}: got a ConnectResponse {response:?}"),
        Err(e) => assert!(is_closed_kind(e.kind()), "{what}: expected a close, got {e}"),
    };
    refused("6th connection");
    refused("7th connection");
    // A four-letter word is a connection too.
    assert_eq!(four_letter(addr, "ruok"), "", "ruok over the limit");
    // The first five still work.
    for (i, conn) in conns.iter_mut().enumerate() {
        let path = format!("{base}/c{i}");
        assert_eq!(conn.create(&path, format!("{i}").as_bytes(), EPHEMERAL).err, err::OK, "conn {i}");
        assert_eq!(conn.get_data(&path, false).err, err::OK, "conn {i}");
    }
    // Closing one (TCP only; its session lives on) lets one new connection in.
    let dropped = conns.remove(0);
    let (dropped_id, dropped_password) = (dropped.session_id, dropped.passwd.clone());
    drop(dropped);
    let admitted = wait_for_some(Duration::from_secs(5), || {
        let (conn, response) = Conn::handshake(addr, 10_000, dropped_id, &dropped_password, 0).ok()?;
        assert_eq!(response.session_id, dropped_id, "resumed session");
        Some(conn)
    });
    let mut resumed = admitted.expect("no connection admitted within 5 s after one was closed");
    resumed.set_read_timeout(REPLY_TIMEOUT);
    let reply = resumed.get_data(&format!("{base}/c0"), false);
    assert_eq!(
        (reply.err, reply.dec().buf().unwrap_or_default()),
        (err::OK, b"0".to_vec()),
        "ephemeral of the resumed session"
    );
    // Full again.
    refused("6th connection after the replacement");
    for conn in conns.iter_mut() {
        assert_eq!(conn.exists(&base, false).err, err::OK);
    }
    // Closing a session also frees its slot.
    conns.pop().unwrap().close();
    let mut extra = session(addr);
    assert_eq!(extra.exists(&base, false).err, err::OK);
    drop(extra);
    drop(conns);
    drop(resumed);
    assert!(wait_for(Duration::from_secs(5), || four_letter(addr, "ruok") == "imok"), "slots not released");
    assert_server_sound(&server, pid);
}

// ---------------------------------------------------------------------------------------------
// (d) globalOutstandingLimit

#[test]
fn global_outstanding_limit_throttles_pipelined_requests_without_dropping_any() {
    let Some((server, pid)) = start("global_outstanding_limit_throttles", &["globalOutstandingLimit=10"]) else {
        return;
    };
    let addr = server.addr();
    let path = unique("robust-outstanding");
    let mut conn = session(addr);
    assert_eq!(conn.create(&path, b"", 0).err, err::OK);

    // 200 setData in one write, then the 200 replies, in order.
    let mut pipeline = Vec::new();
    for i in 1..=200 {
        pipeline.extend_from_slice(&framed(
            i,
            op::SET_DATA,
            &Enc::new().str(&path).buf(format!("v{i}").as_bytes()).i32(-1).bytes(),
        ));
    }
    conn.write_raw(&pipeline).unwrap();
    for i in 1..=200 {
        let reply = conn.read_reply().unwrap_or_else(|e| panic!("reply {i} of 200: {e}"));
        assert_eq!((reply.xid, reply.err), (i, err::OK), "setData reply {i}");
        assert_eq!(reply.dec().stat().version, i, "setData {i} version");
    }

    // Interleaved setData/getData: every read sees exactly the write before it.
    let mut pipeline = Vec::new();
    for i in 0..200 {
        let data = format!("w{i}");
        pipeline.extend_from_slice(&framed(
            1000 + 2 * i,
            op::SET_DATA,
            &Enc::new().str(&path).buf(data.as_bytes()).i32(-1).bytes(),
        ));
        pipeline.extend_from_slice(&framed(1001 + 2 * i, op::GET_DATA, &Enc::new().str(&path).bool(false).bytes()));
    }
    conn.write_raw(&pipeline).unwrap();
    for i in 0..200 {
        let set = conn.read_reply().unwrap();
        assert_eq!((set.xid, set.err), (1000 + 2 * i, err::OK), "interleaved setData {i}");
        let get = conn.read_reply().unwrap();
        assert_eq!((get.xid, get.err), (1001 + 2 * i, err::OK), "interleaved getData {i}");
        let mut body = get.dec();
        assert_eq!(body.buf().unwrap_or_default(), format!("w{i}").into_bytes(), "read {i} sees its write");
        assert_eq!(body.stat().version, 201 + i);
    }

    // Four clients pipelining at once share the limit.
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let addr = addr.to_string();
            let path = format!("{path}-{t}");
            std::thread::spawn(move || {
                let mut conn = session(&addr);
                assert_eq!(conn.create(&path, b"", 0).err, err::OK);
                let mut pipeline = Vec::new();
                for i in 1..=100 {
                    pipeline.extend_from_slice(&framed(
                        i,
                        op::SET_DATA,
                        &Enc::new().str(&path).buf(&[t as u8; 64]).i32(i - 1).bytes(),
                    ));
                }
                conn.write_raw(&pipeline).unwrap();
                for i in 1..=100 {
                    let reply = conn.read_reply().unwrap_or_else(|e| panic!("client {t} reply {i}: {e}"));
                    assert_eq!((reply.xid, reply.err), (i, err::OK), "client {t} reply {i}");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("pipelining client");
    }
    assert!(
        wait_for(Duration::from_secs(5), || srvr_number(addr, "Outstanding") == Some(0)),
        "outstanding requests leaked"
    );
    assert_server_sound(&server, pid);
}

/// The smallest limit: several clients pipelining interleaved writes and reads (reads wait
/// behind their session's writes, and take a permit while they wait) all finish, in order.
#[test]
fn global_outstanding_limit_of_one_serves_concurrent_mixed_pipelines() {
    let Some((server, pid)) = start("global_outstanding_limit_of_one", &["globalOutstandingLimit=1"]) else {
        return;
    };
    let addr = server.addr().to_string();
    let base = unique("robust-limit-one");
    let threads: Vec<_> = (0..3)
        .map(|t| {
            let addr = addr.clone();
            let path = format!("{base}-{t}");
            std::thread::spawn(move || {
                let mut conn = session(&addr);
                assert_eq!(conn.create(&path, b"", 0).err, err::OK);
                let mut pipeline = Vec::new();
                for i in 0..100 {
                    let data = format!("{t}:{i}");
                    let set = Enc::new().str(&path).buf(data.as_bytes()).i32(i).bytes();
                    pipeline.extend(framed(3 * i + 1, op::SET_DATA, &set));
                    pipeline.extend(framed(3 * i + 2, op::GET_DATA, &Enc::new().str(&path).bool(false).bytes()));
                    pipeline.extend(framed(3 * i + 3, op::EXISTS, &Enc::new().str(&path).bool(false).bytes()));
                }
                conn.write_raw(&pipeline).unwrap();
                for i in 0..100 {
                    let set = conn.read_reply().unwrap_or_else(|e| panic!("client {t} setData {i}: {e}"));
                    assert_eq!((set.xid, set.err), (3 * i + 1, err::OK), "client {t} setData {i}");
                    let get = conn.read_reply().unwrap_or_else(|e| panic!("client {t} getData {i}: {e}"));
                    assert_eq!((get.xid, get.err), (3 * i + 2, err::OK), "client {t} getData {i}");
                    assert_eq!(get.dec().buf().unwrap_or_default(), format!("{t}:{i}").into_bytes());
                    let exists = conn.read_reply().unwrap_or_else(|e| panic!("client {t} exists {i}: {e}"));
                    assert_eq!((exists.xid, exists.err), (3 * i + 3, err::OK), "client {t} exists {i}");
                    assert_eq!(exists.dec().stat().version, i + 1);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("pipelining client");
    }
    assert!(wait_for(Duration::from_secs(5), || srvr_number(&addr, "Outstanding") == Some(0)), "outstanding leaked");
    assert_server_sound(&server, pid);
}

// ---------------------------------------------------------------------------------------------
// (e) jute.maxbuffer

fn set_data_frame(xid: i32, path: &str, data: &[u8]) -> Vec<u8> {
    framed(xid, op::SET_DATA, &Enc::new().str(path).buf(data).i32(-1).bytes())
}

#[test]
fn a_request_above_jute_maxbuffer_ends_the_connection_but_not_the_session() {
    let Some((server, pid)) = start("a_request_above_jute_maxbuffer", &[]) else { return };
    let addr = server.addr();
    let big = unique("robust-big");
    let ephemeral = format!("{big}-eph");
    let mut writer = session(addr);
    writer.set_read_timeout(Duration::from_secs(10));
    assert_eq!(writer.create(&big, b"", 0).err, err::OK);
    assert_eq!(writer.create(&ephemeral, b"mine", EPHEMERAL).err, err::OK);

    let million: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let reply = writer.set_data(&big, &million, -1);
    assert_eq!(reply.err, err::OK, "1,000,000-byte setData");
    assert_eq!(reply.dec().stat().data_length, 1_000_000);
    let mut reader = session(addr);
    reader.set_read_timeout(Duration::from_secs(10));
    let reply = reader.get_data(&big, false);
    assert_eq!(reply.err, err::OK);
    assert!(reply.dec().buf().unwrap_or_default() == million, "another client reads the 1,000,000 bytes");

    // 1,100,000 bytes: the frame is above jute.maxbuffer, the connection is closed unanswered.
    let session_id = writer.session_id;
    let password = writer.passwd.clone();
    let oversized = vec![7u8; 1_100_000];
    let _ = writer.write_raw(&set_data_frame(99, &big, &oversized));
    match outcome(&mut writer, "1,100,000-byte setData") {
        Outcome::Closed => {}
        Outcome::Replied(reply) => panic!("1,100,000-byte setData answered: {reply:?}"),
    }
    // The session is still valid from a new connection, with its ephemeral node.
    let (mut resumed, response) = Conn::handshake(addr, 10_000, session_id, &password, 0).unwrap();
    assert_eq!(response.session_id, session_id, "session resumed with id and password");
    assert_eq!(response.passwd, password);
    resumed.set_read_timeout(Duration::from_secs(10));
    let reply = resumed.exists(&ephemeral, false);
    assert_eq!(reply.err, err::OK, "ephemeral survived");
    assert_eq!(reply.dec().stat().ephemeral_owner, session_id);
    // Nothing of the oversized request was applied.
    let reply = reader.get_data(&big, false);
    let mut body = reply.dec();
    assert!(body.buf().unwrap_or_default() == million, "data unchanged by the oversized request");
    assert_eq!(body.stat().version, 1);
    assert_eq!(resumed.set_data(&big, b"small", 1).err, err::OK, "the resumed session writes");
    // A wrong password is refused (session id 0), the right one still works.
    let (_, wrong) = Conn::handshake(addr, 10_000, session_id, &[1u8; 16], 0).unwrap();
    assert_eq!(wrong.session_id, 0, "wrong password must be refused");
    assert_server_sound(&server, pid);
}

#[test]
fn a_frame_of_exactly_jute_maxbuffer_is_accepted_and_one_byte_more_is_not() {
    let Some((server, pid)) = start("a_frame_of_exactly_jute_maxbuffer", &[]) else { return };
    let addr = server.addr();
    let path = unique("robust-edge");
    let mut conn = session(addr);
    conn.set_read_timeout(Duration::from_secs(10));
    assert_eq!(conn.create(&path, b"", 0).err, err::OK);
    // length prefix = 8 (header) + 4 + path + 4 + data + 4 (version)
    let data_len = JUTE_MAX - 20 - path.len();
    let frame = set_data_frame(1, &path, &vec![1u8; data_len]);
    assert_eq!(frame.len() - 4, JUTE_MAX);
    conn.write_raw(&frame).unwrap();
    let reply = conn.read_reply().expect("reply to a frame of exactly jute.maxbuffer");
    assert_eq!((reply.xid, reply.err), (1, err::OK));
    assert_eq!(reply.dec().stat().data_length as usize, data_len);
    let frame = set_data_frame(2, &path, &vec![2u8; data_len + 1]);
    assert_eq!(frame.len() - 4, JUTE_MAX + 1);
    let _ = conn.write_raw(&frame);
    assert!(matches!(outcome(&mut conn, "jute.maxbuffer + 1"), Outcome::Closed));
    let mut other = session(addr);
    let reply = other.exists(&path, false);
    assert_eq!(reply.dec().stat().version, 1, "only the first write applied");
    assert_server_sound(&server, pid);
}

// ---------------------------------------------------------------------------------------------
// (f) four-letter words

#[test]
fn four_letter_words_outside_the_whitelist_are_refused_and_unknown_ones_close() {
    let Some((server, pid)) = start("four_letter_words_outside_the_whitelist", &["4lw.commands.whitelist=ruok"]) else {
        return;
    };
    let addr = server.addr();
    assert_eq!(four_letter(addr, "ruok"), "imok");
    for word in ["stat", "conf", "cons", "envi", "mntr", "wchs", "dump", "crst", "srst", "dirs", "wchc", "wchp"] {
        assert_eq!(
            four_letter(addr, word),
            format!("{word} is not executed because it is not in the whitelist.\n"),
            "{word}"
        );
    }
    // ZooKeeper adds srvr to every whitelist (zkServer.sh status needs it), so it is answered.
    let srvr = four_letter(addr, "srvr");
    assert!(srvr.starts_with("Zookeeper version: "), "srvr: {srvr:?}");
    assert!(srvr.contains("Mode: standalone"), "srvr: {srvr:?}");
    // Not a four-letter word: the 4 bytes are a length prefix far above jute.maxbuffer.
    for word in ["xyzw", "RUOK", "ruo\n", "kour"] {
        let mut stream = TcpStream::connect(addr).unwrap();
        let _ = stream.write_all(word.as_bytes());
        assert_closed_silently(&mut stream, &format!("unknown word {word:?}"));
    }
    // Bytes after a word are ignored.
    assert_eq!(four_letter(addr, "ruok and more bytes"), "imok");
    // A word split over two writes is still a word.
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    stream.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    stream.write_all(b"ru").unwrap();
    stream.write_all(b"ok").unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert_eq!(answer, "imok", "ruok in two writes");
    let mut conn = session(addr);
    assert_eq!(conn.exists("/", false).err, err::OK);
    assert_server_sound(&server, pid);
}

#[test]
fn four_letter_whitelist_entries_are_trimmed() {
    let Some((server, pid)) =
        start("four_letter_whitelist_entries_are_trimmed", &["4lw.commands.whitelist= ruok , conf ,"])
    else {
        return;
    };
    let addr = server.addr();
    assert_eq!(four_letter(addr, "ruok"), "imok");
    assert!(four_letter(addr, "conf").contains("clientPort="), "conf is whitelisted");
    assert_eq!(four_letter(addr, "stat"), "stat is not executed because it is not in the whitelist.\n");
    assert_server_sound(&server, pid);
}

// ---------------------------------------------------------------------------------------------
// (g) lastZxidSeen ahead of the server

#[test]
fn a_client_that_has_seen_a_future_zxid_is_refused_without_response() {
    let Some((server, pid)) = start("a_client_that_has_seen_a_future_zxid", &[]) else { return };
    let addr = server.addr();
    let mut healthy = Healthy::new(addr, "robust-zxid");
    let last = healthy.conn.exists("/", false).zxid;
    assert!(last > 0);
    for ahead in [last + (1 << 32), last + 1_000_000, i64::MAX] {
        let what = format!("lastZxidSeen {ahead:#x} (server at {last:#x})");
        match Conn::handshake(addr, 10_000, 0, &[0u8; 16], ahead) {
            Ok((_, response)) => panic!("{what}: got a ConnectResponse {response:?}"),
            Err(e) => assert!(is_closed_kind(e.kind()), "{what}: expected a close, got {e}"),
        }
        // A resume attempt of a live session with a future zxid is refused the same way, and the
        // session is not harmed.
        match Conn::handshake(addr, 10_000, healthy.conn.session_id, &healthy.conn.passwd.clone(), ahead) {
            Ok((_, response)) => panic!("{what} (resume): got a ConnectResponse {response:?}"),
            Err(e) => assert!(is_closed_kind(e.kind()), "{what} (resume): expected a close, got {e}"),
        }
        healthy.check(&what);
    }
    // Seen exactly the server's zxid, or less: accepted.
    for seen in [last, last - 1, 0] {
        let (mut conn, response) = Conn::handshake(addr, 10_000, 0, &[0u8; 16], seen).unwrap();
        assert_ne!(response.session_id, 0, "lastZxidSeen {seen:#x} (server at {last:#x})");
        assert_eq!(conn.exists("/", false).err, err::OK);
    }
    assert_server_sound(&server, pid);
}
