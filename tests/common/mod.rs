//! Shared harness for the API integration tests.
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
#![allow(dead_code)]

pub mod digest;
pub mod raw;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use zookeeper_client as zk;

/// How long the harness waits for the server to print its listening line.
const START_DEADLINE: Duration = Duration::from_secs(20);

pub const TICK_TIME_MS: u64 = 2000;

/// Name of the env var that selects an external server.
pub const ADDR_ENV: &str = "ZOOCORE_TEST_ADDR";

fn external_addr() -> Option<String> {
    std::env::var(ADDR_ENV).ok().filter(|s| !s.trim().is_empty())
}

fn zoocore_bin() -> PathBuf {
    if let Ok(p) = std::env::var("ZOOCORE_BIN") {
        return PathBuf::from(p);
    }
    match option_env!("CARGO_BIN_EXE_zoocore") {
        Some(p) => PathBuf::from(p),
        None => panic!(
            "no zoocore binary: set ZOOCORE_BIN=/path/to/zoocore, or {ADDR_ENV}=host:port to test an external server"
        ),
    }
}

fn unique_tmpdir() -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let base = option_env!("CARGO_TARGET_TMPDIR").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
    let dir =
        base.join(format!("zoocore-test-{}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst), nanos));
    fs::create_dir_all(dir.join("data")).expect("create tmpdir");
    dir
}

/// A running server (spawned zoocore, or the external one).
pub struct Server {
    addr: String,
    external: bool,
    child: Option<Child>,
    dir: Option<PathBuf>,
    extra: Vec<String>,
    port: u16,
    admin: Option<String>,
    metrics: Option<String>,
}

impl Server {
    /// True when tests run against an external server (`ZOOCORE_TEST_ADDR`).
    pub fn external() -> bool {
        external_addr().is_some()
    }

    /// Starts a server with the default test configuration.
    pub fn start() -> Server {
        Self::start_with(&[])
    }

    /// Starts a server with extra `zoo.cfg` lines. In external mode the extra lines can't be
    /// applied: callers that depend on them must skip when [`Server::external`] is true.
    pub fn start_with(extra_cfg_lines: &[&str]) -> Server {
        if let Some(addr) = external_addr() {
            let port = addr.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(0);
            return Server {
                addr,
                external: true,
                child: None,
                dir: None,
                extra: Vec::new(),
                port,
                admin: None,
                metrics: None,
            };
        }
        let dir = unique_tmpdir();
        let mut server = Server {
            addr: String::new(),
            external: false,
            child: None,
            dir: Some(dir),
            extra: extra_cfg_lines.iter().map(|s| s.to_string()).collect(),
            port: 0,
            admin: None,
            metrics: None,
        };
        server.spawn(0);
        server
    }

    /// "127.0.0.1:PORT"
    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// "127.0.0.1:PORT" of the AdminServer, from the `zoocore admin on ...` line (the harness
    /// asks for `admin.serverPort=0`; None when it is off or external).
    pub fn admin_addr(&self) -> Option<&str> {
        self.admin.as_deref()
    }

    /// "127.0.0.1:PORT" of the Prometheus page, from the `zoocore metrics on ...` line (on when
    /// the config names ZooKeeper's Prometheus provider).
    pub fn metrics_addr(&self) -> Option<&str> {
        self.metrics.as_deref()
    }

    /// The temp dir holding zoo.cfg, data/ and zoocore.stderr.log (None for external).
    pub fn dir(&self) -> Option<&PathBuf> {
        self.dir.as_ref()
    }

    fn write_config(&self, client_port: u16) -> PathBuf {
        let dir = self.dir.as_ref().unwrap();
        let mut cfg = format!(
            "tickTime={TICK_TIME_MS}\ndataDir={}\nclientPort={client_port}\nclientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\nadmin.serverPort=0\n",
            dir.join("data").display()
        );
        for line in &self.extra {
            cfg.push_str(line);
            cfg.push('\n');
        }
        let path = dir.join("zoo.cfg");
        fs::write(&path, cfg).expect("write zoo.cfg");
        path
    }

    fn spawn(&mut self, client_port: u16) {
        if let Err(tail) = self.try_spawn(client_port) {
            panic!("zoocore exited before listening\n{tail}");
        }
    }

    /// Starts the server; Err(the tail of its stderr) if it exits before
    /// it listens (other failures to start panic).
    fn try_spawn(&mut self, client_port: u16) -> Result<(), String> {
        let cfg = self.write_config(client_port);
        let dir = self.dir.clone().unwrap();
        let stderr = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("zoocore.stderr.log"))
            .expect("open stderr log");
        let mut child = Command::new(zoocore_bin())
            .arg("--config")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("spawn zoocore");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<(String, Option<String>, Option<String>)>();
        // Reads lines until the listening line (the admin and metrics lines come before it), then
        // keeps draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let mut sent = false;
            let (mut admin, mut metrics) = (None, None);
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if !sent {
                            let line = line.trim();
                            if let Some(addr) = line.strip_prefix("zoocore admin on ") {
                                admin = Some(addr.to_string());
                            } else if let Some(addr) = line.strip_prefix("zoocore metrics on ") {
                                metrics = Some(addr.to_string());
                            } else if let Some(addr) = line.strip_prefix("zoocore listening on ") {
                                let _ = tx.send((addr.to_string(), admin.take(), metrics.take()));
                                sent = true;
                            }
                        }
                    }
                }
            }
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink);
        });
        let deadline = Instant::now() + START_DEADLINE;
        let (addr, admin, metrics) = loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(addresses) => break addresses,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        return Err(format!("exit status {status}\n{}", self.stderr_tail()));
                    }
                    if Instant::now() > deadline {
                        let _ = child.kill();
                        let _ = child.wait();
                        panic!(
                            "zoocore did not print its listening line within {START_DEADLINE:?}\n{}",
                            self.stderr_tail()
                        );
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = child.kill();
                    let status = child.wait();
                    panic!("zoocore closed stdout before listening ({status:?})\n{}", self.stderr_tail());
                }
            }
        };
        self.port = addr.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port in listening line");
        self.addr = addr;
        self.admin = admin;
        self.metrics = metrics;
        self.child = Some(child);
        Ok(())
    }

    /// Sends the server `signal` (e.g. `libc::SIGTERM`) and waits up to `deadline` for it to
    /// exit. Returns its exit status, or None if it is still running (it is then killed).
    pub fn signal_and_wait(&mut self, signal: i32, deadline: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take().expect("a spawned server");
        // SAFETY: kill only sends a signal to our own child's pid.
        unsafe { libc::kill(child.id() as i32, signal) };
        let end = Instant::now() + deadline;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= end {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server process's id (None for an external server).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|child| child.id())
    }

    /// Waits up to `deadline` for the server to exit on its own. Returns its
    /// exit status, or None if it is still running (it keeps running).
    pub fn wait_exit(&mut self, deadline: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + deadline;
        loop {
            let child = self.child.as_mut().expect("a spawned server");
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server process (SIGKILL) and waits for it. No-op in external mode.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills (if running) and starts the server again on the same dataDir and port.
    /// Panics in external mode.
    pub fn restart(&mut self) {
        assert!(!self.external, "cannot restart an external server");
        self.kill();
        let port = self.port;
        // The port is ours, but a moment after a kill another process may
        // still hold it (a standalone server's port came from the
        // ephemeral range); a few tries cover that.
        for attempt in 1.. {
            match self.try_spawn(port) {
                Ok(()) => break,
                Err(tail) if attempt < 20 && tail.contains("Address already in use") => {
                    std::thread::sleep(Duration::from_millis(250))
                }
                Err(tail) => panic!("zoocore exited before listening\n{tail}"),
            }
        }
        assert_eq!(self.port, port, "restarted server must listen on the same port");
    }

    /// Last lines of the captured stderr log.
    pub fn stderr_tail(&self) -> String {
        let Some(dir) = &self.dir else { return String::new() };
        let text = fs::read_to_string(dir.join("zoocore.stderr.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(60);
        format!("--- zoocore stderr ({}) ---\n{}", dir.display(), lines[start..].join("\n"))
    }

    /// Sends a four-letter-word command and returns the whole answer.
    pub fn four_letter(&self, cmd: &str) -> String {
        let mut s = std::net::TcpStream::connect(&self.addr).expect("connect 4lw");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(cmd.as_bytes()).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }
}

/// A port free on 127.0.0.1 a moment ago (the ensemble's server lines name
/// every member's ports before any member starts). It is taken from below
/// the kernel's ephemeral range (32768 and up on Linux), so no outbound
/// connection (a peer redialling a killed member, another test's client)
/// can take it between a kill and a restart on the same port.
pub fn free_port() -> u16 {
    const LOW: u32 = 20_000;
    const HIGH: u32 = 32_000;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    // Each test process starts at its own offset so that parallel test
    // binaries do not probe the same ports in the same order.
    let start = std::process::id().wrapping_mul(2_654_435_761) % (HIGH - LOW);
    for _ in 0..(HIGH - LOW) {
        let step = NEXT.fetch_add(1, Ordering::SeqCst) as u32;
        let port = (LOW + (start + step.wrapping_mul(7)) % (HIGH - LOW)) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {LOW} and {HIGH} on 127.0.0.1");
}

/// An ensemble of zoocore processes on loopback, each started from its own
/// zoo.cfg with ZooKeeper's `server.N` lines and a `myid` file, as an
/// operator starts ZooKeeper's.
pub struct Cluster {
    pub servers: Vec<Server>,
}

impl Cluster {
    /// `voters` participants and `observers` observers, ids 1, 2, ...
    pub fn start(voters: usize, observers: usize) -> Cluster {
        Self::start_with(voters, observers, &[])
    }

    pub fn start_with(voters: usize, observers: usize, extra_cfg_lines: &[&str]) -> Cluster {
        // Every member's ports are written into every member's zoo.cfg
        // before any starts, so a port another process takes in between
        // cannot be swapped for one member alone: the whole ensemble starts
        // again on fresh ports.
        for attempt in 1.. {
            match Self::try_start_with(voters, observers, extra_cfg_lines) {
                Ok(cluster) => return cluster,
                Err(tail) if attempt < 4 && tail.contains("Address already in use") => continue,
                Err(tail) => panic!("an ensemble member exited before listening\n{tail}"),
            }
        }
        unreachable!("the loop returns or panics")
    }

    fn try_start_with(voters: usize, observers: usize, extra_cfg_lines: &[&str]) -> Result<Cluster, String> {
        let size = voters + observers;
        let ports: Vec<(u16, u16, u16)> = (0..size).map(|_| (free_port(), free_port(), free_port())).collect();
        let mut lines: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(index, (client, quorum, election))| {
                let role = if index < voters { "participant" } else { "observer" };
                format!("server.{}=127.0.0.1:{quorum}:{election}:{role};127.0.0.1:{client}", index + 1)
            })
            .collect();
        lines.extend(extra_cfg_lines.iter().map(|line| line.to_string()));
        let mut servers = Vec::with_capacity(size);
        for (index, (client, _, _)) in ports.iter().enumerate() {
            let dir = unique_tmpdir();
            fs::create_dir_all(dir.join("data")).expect("create dataDir");
            fs::write(dir.join("data").join("myid"), format!("{}\n", index + 1)).expect("write myid");
            let mut member_lines = lines.clone();
            if index >= voters {
                member_lines.push("peerType=observer".to_string());
            }
            let mut server = Server {
                addr: String::new(),
                external: false,
                child: None,
                dir: Some(dir),
                extra: member_lines,
                port: 0,
                admin: None,
                metrics: None,
            };
            // The members started so far are stopped (and their
            // directories removed) when `servers` drops.
            server.try_spawn(*client)?;
            servers.push(server);
        }
        Ok(Cluster { servers })
    }

    /// Every member's client address, as a connect string.
    pub fn connect_string(&self) -> String {
        self.servers.iter().map(|server| server.addr().to_string()).collect::<Vec<_>>().join(",")
    }

    /// What `srvr` says each live member is (leader, follower, observer,
    /// looking), or "" for a member that is down.
    pub fn modes(&self) -> Vec<String> {
        self.servers
            .iter()
            .map(|server| {
                if server.child.is_none() {
                    return String::new();
                }
                std::net::TcpStream::connect(server.addr())
                    .ok()
                    .and_then(|mut stream| {
                        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
                        stream.write_all(b"srvr").ok()?;
                        let mut out = String::new();
                        let _ = stream.read_to_string(&mut out);
                        out.lines().find_map(|line| line.strip_prefix("Mode: ").map(str::to_string))
                    })
                    .unwrap_or_default()
            })
            .collect()
    }

    /// Waits until exactly one live member leads and every other live one
    /// follows it (or observes); returns the leader's index.
    pub fn wait_for_leader(&self, deadline: Duration) -> usize {
        let end = Instant::now() + deadline;
        loop {
            let modes = self.modes();
            let leaders: Vec<usize> =
                modes.iter().enumerate().filter(|(_, mode)| *mode == "leader").map(|(index, _)| index).collect();
            let settled = modes.iter().all(|mode| mode.is_empty() || mode != "looking");
            if leaders.len() == 1 && settled {
                return leaders[0];
            }
            if Instant::now() >= end {
                let tails: Vec<String> = self.servers.iter().map(|server| server.stderr_tail()).collect();
                panic!("no single leader within {deadline:?}: {modes:?}\n{}", tails.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        if panicking && self.child.is_some() {
            eprintln!("{}", self.stderr_tail());
        }
        self.kill();
        if let Some(dir) = &self.dir {
            if !panicking && std::env::var_os("ZOOCORE_KEEP_TMP").is_none() {
                let _ = fs::remove_dir_all(dir);
            }
        }
    }
}

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

/// Polls `cond` every 20 ms until it is true or `deadline` (a duration from now) passes.
/// Returns whether the condition became true.
pub fn wait_for(deadline: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
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
