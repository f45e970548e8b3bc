//! Issue 15, item 5: one client cannot exhaust the server's memory.
//!
//! Attackers are bounded in count and time. Whether the server still holds
//! a connection is read from the kernel (the server's socket file
//! descriptors, matched to the client's port in /proc/net/tcp), not from the
//! client, which would have to read the socket to see a close, and reading
//! is exactly what these clients do not do. RSS numbers are measured by
//! scripts/attack_memory.py, not asserted here.

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::raw::{Conn, Enc};
use common::{wait_for, Server};
use zoocore::proto::codes::op;

/// The client ports of the TCP connections whose server end the server
/// process `pid` (listening on `server_port`) holds open: its socket file
/// descriptors, matched by inode to /proc/net/tcp and tcp6.
fn held_client_ports(pid: u32, server_port: u16) -> HashSet<u16> {
    let mut inodes = HashSet::new();
    if let Ok(descriptors) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for entry in descriptors.filter_map(|entry| entry.ok()) {
            let Ok(target) = std::fs::read_link(entry.path()) else { continue };
            let text = target.to_string_lossy().to_string();
            if let Some(inode) = text.strip_prefix("socket:[").and_then(|rest| rest.strip_suffix(']')) {
                if let Ok(inode) = inode.parse::<u64>() {
                    inodes.insert(inode);
                }
            }
        }
    }
    let mut ports = HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 10 {
                continue;
            }
            let port = |address: &str| address.rsplit(':').next().and_then(|hex| u16::from_str_radix(hex, 16).ok());
            let held = fields[9].parse::<u64>().is_ok_and(|inode| inodes.contains(&inode));
            if held && port(fields[1]) == Some(server_port) {
                if let Some(client) = port(fields[2]) {
                    ports.insert(client);
                }
            }
        }
    }
    ports
}

/// Whether the server still holds the connection from `client_port`.
fn server_holds(pid: u32, server_port: u16, client_port: u16) -> bool {
    held_client_ports(pid, server_port).contains(&client_port)
}

/// A session that asked for `timeout_ms`, with a small receive buffer, so
/// what the server sends piles up on the server's side.
fn session_not_reading(address: &str, timeout_ms: i32) -> Conn {
    let (conn, response) = Conn::handshake(address, timeout_ms, 0, &[0u8; 16], 0).expect("handshake");
    assert_ne!(response.session_id, 0);
    set_receive_buffer(&conn, 4096);
    conn
}

fn set_receive_buffer(conn: &Conn, bytes: i32) {
    // SAFETY: setsockopt on our own socket with a valid int option.
    unsafe {
        libc::setsockopt(
            conn.raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &bytes as *const i32 as *const libc::c_void,
            std::mem::size_of::<i32>() as libc::socklen_t,
        );
    }
}

fn add_persistent_recursive_watch(conn: &mut Conn, path: &str) {
    conn.send(op::ADD_WATCH, &Enc::new().str(path).i32(1).bytes()).expect("addWatch");
}

/// setData on `path` `count` times, pipelined, stopping early when `done`.
fn write_many(conn: &mut Conn, path: &str, count: usize, mut done: impl FnMut() -> bool) -> usize {
    let mut written = 0;
    while written < count {
        for _ in 0..100 {
            conn.send(op::SET_DATA, &Enc::new().str(path).buf(b"").i32(-1).bytes()).expect("send");
        }
        for _ in 0..100 {
            assert_eq!(conn.read_reply().expect("reply").err, 0);
        }
        written += 100;
        if written % 2000 == 0 && done() {
            break;
        }
    }
    written
}

#[test]
fn a_watcher_that_never_reads_is_closed_at_the_outgoing_bound() {
    if common::skip_if_external("a_watcher_that_never_reads", "reads the server's sockets") {
        return;
    }
    let server = Server::start();
    let pid = server.pid().expect("spawned");
    let mut writer = Conn::connect(server.addr());
    // Long paths make each watch event about 4 KB, so the 64 MiB outgoing
    // bound is reached in about 17,000 writes.
    let path = format!("/w/{}", "x".repeat(4000));
    assert_eq!(writer.create("/w", b"", 0).err, 0);
    assert_eq!(writer.create(&path, b"", 0).err, 0);
    let mut watcher = session_not_reading(server.addr(), 30_000);
    add_persistent_recursive_watch(&mut watcher, "/w");
    let watcher_port = watcher.local_port();
    let log = || server.stderr_tail();
    let written = write_many(&mut writer, &path, 40_000, || log().contains("outgoing buffer limit"));
    assert!(
        wait_for(Duration::from_secs(20), || !server_holds(pid, server.port(), watcher_port)),
        "after {written} events the watcher's connection is closed by the server:\n{}",
        log()
    );
    assert!(log().contains("outgoing buffer limit"), "the reason is logged:\n{}", log());
    // Everyone else is unaffected.
    assert_eq!(writer.request(op::EXISTS, &Enc::new().str("/w").bool(false).bytes()).err, 0);
}

#[test]
fn an_expired_session_is_closed_whatever_is_queued() {
    if common::skip_if_external("an_expired_session_is_closed", "reads the server's sockets") {
        return;
    }
    let server = Server::start();
    let pid = server.pid().expect("spawned");
    let mut writer = Conn::connect(server.addr());
    let path = format!("/e/{}", "y".repeat(4000));
    assert_eq!(writer.create("/e", b"", 0).err, 0);
    assert_eq!(writer.create(&path, b"", 0).err, 0);
    // The shortest timeout the test configuration allows (2 x tickTime);
    // the watcher sends no pings, so its session expires.
    let mut watcher = session_not_reading(server.addr(), 4_000);
    add_persistent_recursive_watch(&mut watcher, "/e");
    let watcher_port = watcher.local_port();
    // A few MB of events: far below the bound, far above what the socket
    // buffers take, so they stay queued on the server.
    write_many(&mut writer, &path, 2_000, || false);
    assert!(server_holds(pid, server.port(), watcher_port), "the watcher is still connected before it expires");
    assert!(
        wait_for(Duration::from_secs(30), || !server_holds(pid, server.port(), watcher_port)),
        "the expired session's connection is closed although events are queued for it:\n{}",
        server.stderr_tail()
    );
    assert!(server.stderr_tail().contains("session expired"), "{}", server.stderr_tail());
}

#[test]
fn connections_without_a_session_are_closed_and_bounded() {
    if common::skip_if_external("connections_without_a_session", "reads the server's sockets") {
        return;
    }
    const ATTACKERS: usize = 100;
    let server = Server::start_with(&[
        "maxClientCnxns=0",
        "zookeeper.nio.sessionlessCnxnTimeout=1000",
        // Room for about 100 quiet connections across both shards.
        "zoocore.connectionMemoryMaxBytes=1500000",
    ]);
    let pid = server.pid().expect("spawned");
    let mut healthy = Conn::connect(server.addr());
    let mut attackers = Vec::new();
    for index in 0..ATTACKERS * 2 {
        let mut stream = TcpStream::connect(server.addr()).expect("connect");
        if index % 2 == 0 {
            // Claims a frame of about 1 MB (within jute.maxbuffer) and
            // never sends it.
            stream.write_all(&1_000_000i32.to_be_bytes()).expect("send a length");
        }
        attackers.push(stream);
        if index % 20 == 0 {
            // An established session is served meanwhile.
            assert_eq!(healthy.request(op::EXISTS, &Enc::new().str("/").bool(false).bytes()).err, 0);
        }
    }
    let log = server.stderr_tail();
    assert!(
        log.contains("connection refused") && log.contains("connectionMemoryMaxBytes"),
        "past the memory limit new connections are refused:\n{log}"
    );
    let ports: Vec<u16> = attackers.iter().map(|stream| stream.local_addr().expect("port").port()).collect();
    let started = Instant::now();
    assert!(
        wait_for(Duration::from_secs(30), || {
            // Requests keep the healthy session alive meanwhile.
            assert_eq!(healthy.request(op::EXISTS, &Enc::new().str("/").bool(false).bytes()).err, 0);
            let held = held_client_ports(pid, server.port());
            ports.iter().all(|port| !held.contains(port))
        }),
        "every connection without a session is closed after sessionlessCnxnTimeout:\n{}",
        server.stderr_tail()
    );
    assert!(server.stderr_tail().contains("sessionlessCnxnTimeout"), "{}", server.stderr_tail());
    eprintln!("closed within {:?}", started.elapsed());
    // The healthy session survived all of it, and new ones are admitted again.
    assert_eq!(healthy.request(op::EXISTS, &Enc::new().str("/").bool(false).bytes()).err, 0);
    let mut fresh = Conn::connect(server.addr());
    assert_eq!(fresh.request(op::EXISTS, &Enc::new().str("/").bool(false).bytes()).err, 0);
}
