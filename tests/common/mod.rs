//! Shared harness for the integration tests.
//!
//! Two modes:
//! * `ZOOCORE_TEST_ADDR=127.0.0.1:PORT` set: every test talks to that external server (used to
//!   validate the assertions against the real Apache ZooKeeper). Nothing is started; tests that
//!   need a special server configuration skip themselves (see [`Server::external`]).
//! * otherwise: each [`Server`] spawns its own zoocore binary (`$ZOOCORE_BIN`, else the binary
//!   cargo built for this package) as `zoocore --config <tmpdir>/zoo.cfg` with `clientPort=0`,
//!   and waits for the line `zoocore listening on 127.0.0.1:PORT` on its stdout.
//!
//! The child's stderr goes to `<tmpdir>/zoocore.stderr.log`. When a test panics while the server
//! is alive, the tail of that log is printed (libtest shows it with the failure) and the
//! tmpdir is kept; otherwise it is removed on drop.
//!
//! harness.rs starts every process (servers, ensembles, one-off runs of a binary), holds the
//! one wait-with-deadline and the seeded generator; it needs no client crate, so loadgen's tests
//! share it.
//! This file adds what needs the client crates: connecting, the proxy, HTTP, digest ids.
#![allow(dead_code)]

pub mod certs;
pub mod digest;
pub mod disk;
pub mod history;
pub mod partition;
pub mod raw;

mod harness;

pub use harness::*;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use zookeeper_client as zk;

/// One HTTP/1.1 GET (or another `method`) to `addr`; returns the status, the headers
/// (lower-case names) and the body.
pub fn http(addr: &str, method: &str, path: &str) -> (u16, Vec<(String, String)>, String) {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect http");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read http response");
    let text = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete response head");
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().expect("status code");
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

/// GET `path` from `addr` and parse the body as JSON (asserting status 200).
pub fn http_json(addr: &str, path: &str) -> serde_json::Value {
    let (status, _, body) = http(addr, "GET", path);
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|error| panic!("GET {path}: not JSON ({error}): {body}"))
}

/// The state tests/fixtures/ops/record_ops.py recorded the reference ZooKeeper in: one session
/// with the ephemeral /ops/e1, data watches on /ops/a and /ops/nothing, a child watch on /ops.
/// Keep the client and the watchers alive while checking.
pub async fn ops_state(addr: &str) -> (zk::Client, Vec<Box<dyn std::any::Any>>) {
    let client = connect(addr).await;
    client.create("/ops", b"", &persistent()).await.unwrap();
    client.create("/ops/a", b"", &persistent()).await.unwrap();
    client.create("/ops/e1", b"x", &ephemeral()).await.unwrap();
    let (_, _, data) = client.get_and_watch_data("/ops/a").await.unwrap();
    let (_, exists) = client.check_and_watch_stat("/ops/nothing").await.unwrap();
    let (_, _, children) = client.get_and_watch_children("/ops").await.unwrap();
    (client, vec![Box::new(data), Box::new(exists), Box::new(children)])
}

/// Async variant of [`wait_for`] for conditions that need the client.
pub async fn wait_for_async<F, Fut>(deadline: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + deadline;
    loop {
        if cond().await {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Awaits `fut` for at most `secs` seconds, panicking with `what` on timeout.
pub async fn within<T>(secs: u64, what: &str, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {secs}s waiting for {what}"),
    }
}

/// A unique node name for a test: tests share one external server, so every test works under
/// its own `/<name>-<pid>-<nanos>` subtree.
pub fn unique(name: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() % 1_000_000_000_000;
    format!("/{name}-{}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst), nanos)
}

pub fn persistent() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

pub fn ephemeral() -> zk::CreateOptions<'static> {
    zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all())
}

pub fn mode(m: zk::CreateMode) -> zk::CreateOptions<'static> {
    m.with_acls(zk::Acls::anyone_all())
}

/// Connects a client with default options (session timeout requested: 6 s, the crate default).
pub async fn connect(addr: &str) -> zk::Client {
    within(15, "connect", zk::Client::connector().connect(addr)).await.expect("connect")
}

/// Connects a client requesting the given session timeout.
pub async fn connect_timeout(addr: &str, timeout: Duration) -> zk::Client {
    within(15, "connect", zk::Client::connector().session_timeout(timeout).connect(addr)).await.expect("connect")
}

/// Prints a skip note (shown with `--nocapture`) and returns true when running against an
/// external server.
pub fn skip_if_external(test: &str, why: &str) -> bool {
    if Server::external() {
        eprintln!("SKIP {test}: {why} (external server via {ADDR_ENV})");
        return true;
    }
    false
}

/// Parses "zxid" hex from a stat for messages.
pub fn hex(z: i64) -> String {
    format!("{z:#x}")
}

/// A minimal TCP proxy on 127.0.0.1 used to cut client connections (forcing the client to
/// reconnect and re-send its watches with SetWatches) without touching the server.
pub struct Proxy {
    addr: String,
    state: std::sync::Arc<ProxyState>,
}

struct ProxyState {
    /// While true, new connections are accepted and immediately closed.
    refusing: std::sync::atomic::AtomicBool,
    /// Bumped to cut every current connection.
    generation: std::sync::atomic::AtomicUsize,
    /// Where new connections go.
    target: std::sync::Mutex<String>,
}

impl Proxy {
    /// Starts a proxy forwarding to `target`; must be called inside a tokio runtime.
    pub async fn start(target: &str) -> Proxy {
        use std::sync::atomic::AtomicBool;
        use std::sync::Arc;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let state = Arc::new(ProxyState {
            refusing: AtomicBool::new(false),
            generation: AtomicUsize::new(0),
            target: std::sync::Mutex::new(target.to_string()),
        });
        let st = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { return };
                if st.refusing.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target = st.target.lock().unwrap().clone();
                let st = st.clone();
                let gen = st.generation.load(Ordering::SeqCst);
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else { return };
                    let copy = tokio::io::copy_bidirectional(&mut inbound, &mut outbound);
                    tokio::pin!(copy);
                    loop {
                        tokio::select! {
                            _ = &mut copy => return,
                            _ = tokio::time::sleep(Duration::from_millis(10)) => {
                                if st.generation.load(Ordering::SeqCst) != gen {
                                    return; // dropping both sockets cuts the connection
                                }
                            }
                        }
                    }
                });
            }
        });
        Proxy { addr, state }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Cuts all current connections; while `refuse` is true new ones are closed at once.
    pub fn cut(&self, refuse: bool) {
        self.state.refusing.store(refuse, Ordering::SeqCst);
        self.state.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Sends new connections to another server (a client moving there).
    pub fn retarget(&self, target: &str) {
        *self.state.target.lock().unwrap() = target.to_string();
    }

    /// Accepts connections again.
    pub fn resume(&self) {
        self.state.refusing.store(false, Ordering::SeqCst);
    }
}

/// `user:base64(sha1("user:password"))`, the id of a digest ACL.
pub fn digest_id(user: &str, password: &str) -> String {
    use base64::Engine as _;
    use sha1::Digest as _;
    let hash = sha1::Sha1::digest(format!("{user}:{password}").as_bytes());
    format!("{user}:{}", base64::engine::general_purpose::STANDARD.encode(hash))
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}
