//! The one place that starts processes for the tests, waits with a deadline
//! and draws seeded randomness.
//!
//! Every test that runs the zoocore binary goes through here: [`Server`]
//! (one configured server, restartable on its port), [`Cluster`] (an
//! ensemble on ports from [`free_port`]) and [`Process`] (any binary run
//! once with its own flags: until it listens, until it exits, or until a
//! line appears). Every wait is [`wait_for`] with a deadline; nothing
//! asserts on time.
//!
//! This file uses std, libc, tempfile and the zoocore library only, so that
//! loadgen's tests share it (`#[path = "../../tests/common/harness.rs"]`)
//! instead of keeping their own copy of the start-up and port logic.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long the harness waits for the server to print its listening line.
pub const START_DEADLINE: Duration = Duration::from_secs(20);

/// How often [`wait_for`] looks again.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

pub const TICK_TIME_MS: u64 = 2000;

/// Name of the env var that selects an external server.
pub const ADDR_ENV: &str = "ZOOCORE_TEST_ADDR";

/// The line zoocore prints on stdout once it accepts clients.
pub const LISTENING: &str = "zoocore listening on ";

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
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Polls `attempt` like [`wait_for`] until it yields a value; None once `deadline` passes.
pub fn wait_for_some<T>(deadline: Duration, mut attempt: impl FnMut() -> Option<T>) -> Option<T> {
    let mut found = None;
    wait_for(deadline, || {
        found = attempt();
        found.is_some()
    });
    found
}

/// The tests' seeded generator: the simulator's (`zoocore::node::harness::Random`) with a
/// seed from the environment. A test that draws from it prints its seed (libtest shows it
/// with a failure), and the env var [`Random::SEED_ENV`] replays that run.
pub struct Random {
    generator: zoocore::node::harness::Random,
}

impl Random {
    /// The env var that fixes the seed of every [`Random::from_env`].
    pub const SEED_ENV: &'static str = "ZOOCORE_TEST_SEED";

    /// A generator with a fixed seed: the same numbers on every run.
    pub fn new(seed: u64) -> Random {
        Random { generator: zoocore::node::harness::Random::new(seed) }
    }

    /// Seeded from [`Random::SEED_ENV`] when set, else from the clock; the seed is printed.
    pub fn from_env(what: &str) -> Random {
        Random::new(Self::seed_from_env(what, None))
    }

    /// Seeded from [`Random::SEED_ENV`] when set, else `default`; the seed is printed.
    pub fn from_env_or(what: &str, default: u64) -> Random {
        Random::new(Self::seed_from_env(what, Some(default)))
    }

    /// Seeds for a test that runs several: the one [`Random::SEED_ENV`] names, or `count` fresh
    /// ones. They are printed; a failure names its seed, and the env var replays that one alone.
    pub fn seeds(what: &str, count: usize) -> Vec<u64> {
        if std::env::var_os(Self::SEED_ENV).is_some() {
            return vec![Self::seed_from_env(what, None)];
        }
        let mut random = Random::new(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64);
        let seeds: Vec<u64> = (0..count).map(|_| random.next_u64()).collect();
        eprintln!("{what}: seeds {seeds:?} ({}=<seed> replays one)", Self::SEED_ENV);
        seeds
    }

    /// The seed [`Random::from_env`] uses, printed with how to replay it.
    pub fn seed_from_env(what: &str, default: Option<u64>) -> u64 {
        let seed = match std::env::var(Self::SEED_ENV) {
            Ok(text) => text.trim().parse().unwrap_or_else(|_| panic!("{}={text:?} is not a u64", Self::SEED_ENV)),
            Err(_) => {
                default.unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64)
            }
        };
        eprintln!("{what}: seed {seed} ({}={seed} replays it)", Self::SEED_ENV);
        seed
    }

    pub fn next_u64(&mut self) -> u64 {
        self.generator.next_u64()
    }

    /// A number in `0..bound` (`bound` > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0, "Random::below(0)");
        self.generator.below(bound)
    }

    /// True `percent` times in a hundred.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.generator.chance(percent)
    }

    pub fn bytes(&mut self, count: usize) -> Vec<u8> {
        (0..count).map(|_| self.next_u64() as u8).collect()
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

fn external_addr() -> Option<String> {
    std::env::var(ADDR_ENV).ok().filter(|s| !s.trim().is_empty())
}

/// The zoocore binary: `$ZOOCORE_BIN`, else the one cargo built for this
/// package, else (loadgen's tests, another package) the newest of
/// `target/{release,debug}/zoocore` beside the running test binary.
pub fn zoocore_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("ZOOCORE_BIN") {
        return PathBuf::from(path);
    }
    if let Some(path) = option_env!("CARGO_BIN_EXE_zoocore") {
        return PathBuf::from(path);
    }
    // A test binary is <target>/<profile>/deps/<name>.
    let exe = std::env::current_exe().expect("the test binary's path");
    let target = exe.ancestors().nth(3).expect("the test binary is under <target>/<profile>/deps");
    let newest = ["release", "debug"]
        .into_iter()
        .map(|profile| target.join(profile).join("zoocore"))
        .filter(|candidate| candidate.is_file())
        .max_by_key(|candidate| candidate.metadata().and_then(|meta| meta.modified()).ok());
    newest.unwrap_or_else(|| {
        panic!(
            "no zoocore binary under {}: build it (`cargo build -p zoocore`), set ZOOCORE_BIN=/path/to/zoocore, \
             or {ADDR_ENV}=host:port to test an external server",
            target.display()
        )
    })
}

/// A command running the zoocore binary with `args`, without the JVM
/// variables a developer's shell may hold (zoocore reads JAAS settings there).
pub fn zoocore(args: &[&str]) -> Command {
    let mut command = Command::new(zoocore_bin());
    command.args(args).env_remove("SERVER_JVMFLAGS").env_remove("JVMFLAGS");
    command
}

/// A fresh directory for a test, removed on drop unless the test panicked
/// or `ZOOCORE_KEEP_TMP` is set (then its path is printed).
pub struct TestDir {
    path: PathBuf,
    temp: Option<tempfile::TempDir>,
}

impl TestDir {
    pub fn new(tag: &str) -> TestDir {
        let base = option_env!("CARGO_TARGET_TMPDIR").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
        std::fs::create_dir_all(&base).expect("create the tests' tmpdir");
        let temp = tempfile::Builder::new()
            .prefix(&format!("zoocore-{tag}-{}-", std::process::id()))
            .tempdir_in(base)
            .expect("create a test directory");
        TestDir { path: temp.path().to_path_buf(), temp: Some(temp) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `text` to `name` in this directory and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path.join(name);
        std::fs::write(&path, text).expect("write a test file");
        path
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("ZOOCORE_KEEP_TMP").is_some() {
            if let Some(temp) = self.temp.take() {
                eprintln!("kept {}", temp.keep().display());
            }
        }
    }
}

/// Where a [`Process`]'s stderr goes.
enum ErrSink {
    /// Appended to a file (a server's log across restarts).
    File(PathBuf),
    /// Collected in memory.
    Collected(Arc<Mutex<Vec<u8>>>, Option<JoinHandle<()>>),
}

/// How a process ended before it printed the line a test waited for.
#[derive(Debug)]
pub struct Exited {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Everything a process that ran to its end printed.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// A child process this test started: stdin closed, stdout collected by a
/// thread (so the child never blocks on a full pipe), stderr collected or
/// appended to a file. Killed by its PID and reaped on drop.
pub struct Process {
    child: Option<Child>,
    stdout: Arc<Mutex<Vec<u8>>>,
    stdout_reader: Option<JoinHandle<()>>,
    stderr: ErrSink,
    status: Option<ExitStatus>,
}

fn collect(mut pipe: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(read) = pipe.read(&mut buffer) {
            if read == 0 {
                break;
            }
            into.lock().unwrap().extend_from_slice(&buffer[..read]);
        }
    })
}

impl Process {
    /// Starts `command`, its stderr appended to `stderr_log`, or collected when None.
    pub fn start(command: &mut Command, stderr_log: Option<&Path>) -> Process {
        command.stdin(Stdio::null()).stdout(Stdio::piped());
        match stderr_log {
            Some(path) => {
                let file =
                    std::fs::OpenOptions::new().create(true).append(true).open(path).expect("open the stderr log");
                command.stderr(Stdio::from(file));
            }
            None => {
                command.stderr(Stdio::piped());
            }
        }
        let mut child = command.spawn().unwrap_or_else(|error| panic!("spawn {command:?}: {error}"));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stdout_reader = Some(collect(child.stdout.take().expect("piped stdout"), stdout.clone()));
        let stderr = match stderr_log {
            Some(path) => ErrSink::File(path.to_path_buf()),
            None => {
                let collected = Arc::new(Mutex::new(Vec::new()));
                let reader = collect(child.stderr.take().expect("piped stderr"), collected.clone());
                ErrSink::Collected(collected, Some(reader))
            }
        };
        Process { child: Some(child), stdout, stdout_reader, stderr, status: None }
    }

    /// Runs `command` to its end, killing it and failing the test past `deadline`.
    pub fn run(command: &mut Command, deadline: Duration) -> Output {
        let mut process = Process::start(command, None);
        let Some(status) = process.wait_exit(deadline) else {
            process.kill();
            panic!(
                "{command:?} did not exit within {deadline:?}; stdout: {:?} stderr: {:?}",
                process.stdout(),
                process.stderr()
            );
        };
        Output { status, stdout: process.stdout(), stderr: process.stderr() }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// What it printed on stdout so far.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned()
    }

    /// What it printed on stderr so far (the whole log when it goes to a file).
    pub fn stderr(&self) -> String {
        match &self.stderr {
            ErrSink::File(path) => std::fs::read_to_string(path).unwrap_or_default(),
            ErrSink::Collected(collected, _) => String::from_utf8_lossy(&collected.lock().unwrap()).into_owned(),
        }
    }

    /// Its exit status if it has exited (it is reaped then, and what it
    /// printed is read to the end).
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.status = Some(status);
                    self.child = None;
                    self.finish_reading();
                }
            }
        }
        self.status
    }

    /// Waits up to `deadline` for it to exit on its own; None if it still runs.
    pub fn wait_exit(&mut self, deadline: Duration) -> Option<ExitStatus> {
        wait_for(deadline, || self.try_status().is_some());
        self.try_status()
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) to it, if it still runs.
    pub fn signal(&mut self, signal: i32) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill only sends a signal to our own child's pid.
            unsafe { libc::kill(pid as i32, signal) };
        }
    }

    /// SIGKILL, then reaps it and reads what it printed to the end.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            if let Ok(status) = child.wait() {
                self.status = Some(status);
            }
            self.finish_reading();
        }
    }

    /// The rest of a complete stdout line that starts with `prefix`, if one was printed.
    pub fn line_after(&self, prefix: &str) -> Option<String> {
        let stdout = self.stdout();
        let complete = &stdout[..stdout.rfind('\n').map_or(0, |end| end + 1)];
        complete.lines().find_map(|line| line.strip_prefix(prefix).map(|rest| rest.trim().to_string()))
    }

    /// Waits until it prints a stdout line starting with `prefix` and returns the rest of that
    /// line; Err if it exits first. Past `deadline` it is killed and the test fails.
    pub fn wait_for_line(&mut self, prefix: &str, deadline: Duration) -> Result<String, Exited> {
        let outcome = wait_for_some(deadline, || {
            if let Some(rest) = self.line_after(prefix) {
                return Some(Ok(rest));
            }
            // A line printed just before the exit still counts.
            let status = self.try_status()?;
            Some(self.line_after(prefix).ok_or(status))
        });
        match outcome {
            Some(Ok(rest)) => Ok(rest),
            Some(Err(status)) => Err(Exited { status, stdout: self.stdout(), stderr: self.stderr() }),
            None => {
                self.kill();
                panic!(
                    "no stdout line {prefix:?} within {deadline:?}\nstdout:\n{}\nstderr:\n{}",
                    self.stdout(),
                    self.stderr()
                )
            }
        }
    }

    /// Waits for the readers to see the end of the pipes (after an exit).
    fn finish_reading(&mut self) {
        if let Some(reader) = self.stdout_reader.take() {
            let _ = reader.join();
        }
        if let ErrSink::Collected(_, reader) = &mut self.stderr {
            if let Some(reader) = reader.take() {
                let _ = reader.join();
            }
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running server (spawned zoocore, or the external one).
pub struct Server {
    addr: String,
    external: bool,
    process: Option<Process>,
    dir: Option<TestDir>,
    extra: Vec<String>,
    port: u16,
    admin: Option<String>,
    metrics: Option<String>,
    /// The pid of a server someone else started (see [`Cluster::attach`]).
    attached_pid: Option<u32>,
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
            let mut server = Server::unstarted(None, Vec::new());
            server.addr = addr;
            server.external = true;
            server.port = port;
            return server;
        }
        let mut server =
            Server::unstarted(Some(TestDir::new("test")), extra_cfg_lines.iter().map(|s| s.to_string()).collect());
        if let Err(tail) = server.try_spawn(0) {
            panic!("zoocore exited before listening\n{tail}");
        }
        server
    }

    fn unstarted(dir: Option<TestDir>, extra: Vec<String>) -> Server {
        if let Some(dir) = &dir {
            std::fs::create_dir_all(dir.path().join("data")).expect("create dataDir");
        }
        Server {
            addr: String::new(),
            external: false,
            process: None,
            dir,
            extra,
            port: 0,
            admin: None,
            metrics: None,
            attached_pid: None,
        }
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
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_ref().map(TestDir::path)
    }

    /// Whether the process is running (it has not been killed or seen to exit).
    pub fn is_running(&self) -> bool {
        self.process.is_some() || self.attached_pid.is_some()
    }

    fn write_config(&self, client_port: u16) -> PathBuf {
        let dir = self.dir().unwrap();
        let mut cfg = format!(
            "tickTime={TICK_TIME_MS}\ndataDir={}\nclientPort={client_port}\nclientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\nadmin.serverPort=0\n",
            dir.join("data").display()
        );
        // Two shards unless the test says otherwise, so that paths between
        // shards (a session moving, a watch on another shard) run whatever
        // the machine's CPU count and so its default.
        if !self.extra.iter().any(|line| line.trim_start().starts_with("zoocore.shards")) {
            cfg.push_str("zoocore.shards=2\n");
        }
        for line in &self.extra {
            cfg.push_str(line);
            cfg.push('\n');
        }
        let path = dir.join("zoo.cfg");
        std::fs::write(&path, cfg).expect("write zoo.cfg");
        path
    }

    /// Starts the server; Err(the tail of its stderr) if it exits before
    /// it listens (other failures to start panic).
    fn try_spawn(&mut self, client_port: u16) -> Result<(), String> {
        let cfg = self.write_config(client_port);
        let log = self.dir().unwrap().join("zoocore.stderr.log");
        let mut process = Process::start(Command::new(zoocore_bin()).arg("--config").arg(&cfg), Some(&log));
        // The admin and metrics lines come before the listening line.
        let addr = match process.wait_for_line(LISTENING, START_DEADLINE) {
            Ok(addr) => addr,
            Err(exited) => return Err(format!("exit status {}\n{}", exited.status, self.stderr_tail())),
        };
        self.port = addr.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port in listening line");
        self.addr = addr;
        self.admin = process.line_after("zoocore admin on ");
        self.metrics = process.line_after("zoocore metrics on ");
        self.process = Some(process);
        Ok(())
    }

    /// Sends the server `signal` (e.g. `libc::SIGTERM`) and waits up to `deadline` for it to
    /// exit. Returns its exit status, or None if it is still running (it is then killed).
    pub fn signal_and_wait(&mut self, signal: i32, deadline: Duration) -> Option<ExitStatus> {
        let mut process = self.process.take().expect("a spawned server");
        process.signal(signal);
        process.wait_exit(deadline)
    }

    /// The server process's id (None for an external server not attached
    /// with its pid).
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(Process::pid).or(self.attached_pid)
    }

    /// Waits up to `deadline` for the server to exit on its own. Returns its
    /// exit status, or None if it is still running (it keeps running).
    pub fn wait_exit(&mut self, deadline: Duration) -> Option<ExitStatus> {
        let status = self.process.as_mut().expect("a spawned server").wait_exit(deadline);
        if status.is_some() {
            self.process = None;
        }
        status
    }

    /// Kills the server process (SIGKILL) and waits for it. No-op in external mode.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
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
        let Some(dir) = self.dir() else { return String::new() };
        let text = std::fs::read_to_string(dir.join("zoocore.stderr.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(60);
        format!("--- zoocore stderr ({}) ---\n{}", dir.display(), lines[start..].join("\n"))
    }

    /// Sends a four-letter-word command and returns the whole answer.
    pub fn four_letter(&self, cmd: &str) -> String {
        four_letter(&self.addr, cmd)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() && self.process.is_some() {
            eprintln!("{}", self.stderr_tail());
        }
        self.kill();
    }
}

/// Sends a four-letter word to `addr` and reads the whole answer (bounded by a 5 s read timeout).
pub fn four_letter(addr: &str, cmd: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect 4lw");
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream.write_all(cmd.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = stream.read_to_string(&mut out);
    out
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
    /// Each member's quorum and election ports, as every zoo.cfg names them.
    pub peer_ports: Vec<(u16, u16)>,
}

/// Where test servers listen.
pub const LOOPBACK: &str = "127.0.0.1";

/// How members' zoo.cfg files differ from one another; by default they
/// do not.
#[derive(Default)]
pub struct Layout<'a> {
    /// Member `m`'s zoo.cfg names member `n` at host `route(m, n)` (its own
    /// line stays on 127.0.0.1, where it listens): a test puts a proxy
    /// there to cut links. Ports are the same in every zoo.cfg, so the
    /// members still agree on the ensemble.
    pub route: Option<&'a dyn Fn(usize, usize) -> String>,
    /// Lines only member `m`'s zoo.cfg has (its own dataLogDir, say).
    pub member_lines: Option<&'a dyn Fn(usize) -> Vec<String>>,
}

impl Cluster {
    /// `voters` participants and `observers` observers, ids 1, 2, ...
    pub fn start(voters: usize, observers: usize) -> Cluster {
        Self::start_with(voters, observers, &[])
    }

    pub fn start_with(voters: usize, observers: usize, extra_cfg_lines: &[&str]) -> Cluster {
        Self::start_laid_out(voters, observers, extra_cfg_lines, &Layout::default())
    }

    /// As [`Cluster::start_with`], with members' zoo.cfg files laid out
    /// by `layout`.
    pub fn start_laid_out(voters: usize, observers: usize, extra_cfg_lines: &[&str], layout: &Layout) -> Cluster {
        // Every member's ports are written into every member's zoo.cfg
        // before any starts, so a port another process takes in between
        // cannot be swapped for one member alone: the whole ensemble starts
        // again on fresh ports.
        for attempt in 1.. {
            match Self::try_start_with(voters, observers, extra_cfg_lines, layout) {
                Ok(cluster) => return cluster,
                Err(tail) if attempt < 4 && tail.contains("Address already in use") => continue,
                Err(tail) => panic!("an ensemble member exited before listening\n{tail}"),
            }
        }
        unreachable!("the loop returns or panics")
    }

    fn try_start_with(
        voters: usize,
        observers: usize,
        extra_cfg_lines: &[&str],
        layout: &Layout,
    ) -> Result<Cluster, String> {
        let size = voters + observers;
        let ports: Vec<(u16, u16, u16)> = (0..size).map(|_| (free_port(), free_port(), free_port())).collect();
        let lines_of = |member: usize| -> Vec<String> {
            let mut lines: Vec<String> = ports
                .iter()
                .enumerate()
                .map(|(index, (client, quorum, election))| {
                    let role = if index < voters { "participant" } else { "observer" };
                    let host = match &layout.route {
                        Some(route) if index != member => route(member, index),
                        _ => LOOPBACK.to_string(),
                    };
                    format!("server.{}={host}:{quorum}:{election}:{role};{LOOPBACK}:{client}", index + 1)
                })
                .collect();
            lines.extend(extra_cfg_lines.iter().map(|line| line.to_string()));
            if let Some(member_lines) = &layout.member_lines {
                lines.extend(member_lines(member));
            }
            lines
        };
        let mut servers = Vec::with_capacity(size);
        for (index, (client, _, _)) in ports.iter().enumerate() {
            let mut member_lines = lines_of(index);
            if index >= voters {
                member_lines.push("peerType=observer".to_string());
            }
            let mut server = Server::unstarted(Some(TestDir::new("member")), member_lines);
            std::fs::write(server.dir().unwrap().join("data").join("myid"), format!("{}\n", index + 1))
                .expect("write myid");
            // The members started so far are stopped (and their
            // directories removed) when `servers` drops.
            server.try_spawn(*client)?;
            servers.push(server);
        }
        let peer_ports = ports.iter().map(|&(_, quorum, election)| (quorum, election)).collect();
        Ok(Cluster { servers, peer_ports })
    }

    /// An ensemble started by someone else, such as the reference
    /// ZooKeeper through zkref: each member's client address and pid. It
    /// can be paused (by pid) but not killed or restarted.
    pub fn attach(members: &[(String, u32)]) -> Cluster {
        let servers = members
            .iter()
            .map(|(addr, pid)| {
                let mut server = Server::unstarted(None, Vec::new());
                server.port =
                    addr.rsplit(':').next().and_then(|port| port.parse().ok()).expect("a port in the address");
                server.addr = addr.clone();
                server.external = true;
                server.attached_pid = Some(*pid);
                server
            })
            .collect();
        Cluster { servers, peer_ports: Vec::new() }
    }

    /// Every member's client address, as a connect string.
    pub fn connect_string(&self) -> String {
        self.servers.iter().map(|server| server.addr().to_string()).collect::<Vec<_>>().join(",")
    }

    /// What `srvr` says each live member is (leader, follower, observer,
    /// looking, read-only), or "" for a member that is down.
    pub fn modes(&self) -> Vec<String> {
        self.servers
            .iter()
            .map(|server| {
                if !server.is_running() {
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
        let mut modes = Vec::new();
        let leader = wait_for_some(deadline, || {
            modes = self.modes();
            let leaders: Vec<usize> =
                modes.iter().enumerate().filter(|(_, mode)| *mode == "leader").map(|(index, _)| index).collect();
            let settled = modes.iter().all(|mode| mode.is_empty() || !matches!(mode.as_str(), "looking" | "read-only"));
            (leaders.len() == 1 && settled).then(|| leaders[0])
        });
        leader.unwrap_or_else(|| {
            let tails: Vec<String> = self.servers.iter().map(|server| server.stderr_tail()).collect();
            panic!("no single leader within {deadline:?}: {modes:?}\n{}", tails.join("\n"))
        })
    }
}
