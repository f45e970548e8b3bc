//! The zoocore command line: `--version`, `--help`, `--config` errors (each names the key and
//! the value, or the line, and exits with status 2 as README.md says), a valid config on an
//! ephemeral port, and the no-argument default (127.0.0.1:2181, ./zoocore-data in the current
//! directory; skipped when port 2181 is taken).
//!
//! Every process this file starts is its own child, killed by PID (`Child::kill`) and reaped;
//! every wait is bounded by a deadline.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_zoocore");
/// How long a run that must fail (bad arguments, bad config) may take.
const EXIT_DEADLINE: Duration = Duration::from_secs(15);
/// How long the server may take to print its listening line.
const LISTEN_DEADLINE: Duration = Duration::from_secs(20);
/// README.md: "A bad value names the key and the value and exits with status 2."
const CONFIG_ERROR_STATUS: i32 = 2;

/// A fresh directory under cargo's per-target tmpdir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "zoocore-cli-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        fs::write(&path, text).expect("write file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs zoocore with `args` in `cwd` until it exits (killing it by PID after
/// [`EXIT_DEADLINE`]), with stdout and stderr captured in files.
fn run_to_exit(args: &[&str], cwd: &Path) -> Output {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let out_path = cwd.join(format!(".run{n}.stdout"));
    let err_path = cwd.join(format!(".run{n}.stderr"));
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("spawn zoocore");
    let deadline = Instant::now() + EXIT_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "zoocore {args:?} did not exit within {EXIT_DEADLINE:?}; stdout: {:?} stderr: {:?}",
                fs::read_to_string(&out_path).unwrap_or_default(),
                fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let output = Output {
        status,
        stdout: fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: fs::read_to_string(&err_path).unwrap_or_default(),
    };
    let _ = fs::remove_file(out_path);
    let _ = fs::remove_file(err_path);
    output
}

/// A zoocore server started by this test; killed by PID and reaped on drop.
struct Running {
    child: Child,
    stderr_path: PathBuf,
    address: String,
}

enum Started {
    Listening(Running),
    /// The process exited before printing its listening line (status, stderr).
    Exited(ExitStatus, String),
}

impl Running {
    /// Starts zoocore and waits (bounded) for `zoocore listening on ADDRESS` on stdout.
    fn start(args: &[&str], cwd: &Path) -> Started {
        let stderr_path = cwd.join("zoocore.stderr.log");
        let mut child = Command::new(BIN)
            .args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&stderr_path).unwrap())
            .spawn()
            .expect("spawn zoocore");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        // Forwards stdout lines up to the listening line, then drains stdout
        // until the child exits.
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).map_or(true, |read| read == 0) {
                    return;
                }
                let listening = line.starts_with("zoocore listening on ");
                let _ = tx.send(line);
                if listening {
                    break;
                }
            }
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink);
        });
        let deadline = Instant::now() + LISTEN_DEADLINE;
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => {
                    let line = line.trim_end_matches('\n').to_string();
                    // The admin and metrics endpoints announce themselves first.
                    if line.starts_with("zoocore admin on ") || line.starts_with("zoocore metrics on ") {
                        continue;
                    }
                    let Some(address) = line.strip_prefix("zoocore listening on ") else {
                        let _ = child.kill();
                        let _ = child.wait();
                        panic!("first stdout line is not the listening line: {line:?}");
                    };
                    return Started::Listening(Running { child, stderr_path, address: address.to_string() });
                }
                Err(mpsc::RecvTimeoutError::Timeout) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                    if let Some(status) = child.try_wait().expect("try_wait") {
                        return Started::Exited(status, fs::read_to_string(&stderr_path).unwrap_or_default());
                    }
                    if Instant::now() >= deadline {
                        let _ = child.kill();
                        let _ = child.wait();
                        panic!(
                            "zoocore {args:?} printed no listening line within {LISTEN_DEADLINE:?}; stderr:\n{}",
                            fs::read_to_string(&stderr_path).unwrap_or_default()
                        );
                    }
                }
            }
        }
    }

    fn expect_listening(started: Started) -> Running {
        match started {
            Started::Listening(running) => running,
            Started::Exited(status, stderr) => panic!("zoocore exited before listening ({status}):\n{stderr}"),
        }
    }

    fn assert_alive(&mut self) {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            panic!("zoocore exited ({status}):\n{}", fs::read_to_string(&self.stderr_path).unwrap_or_default());
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // SIGKILL to this child's PID, then reap it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends a four-letter word and reads the whole answer (bounded by a 5 s read timeout).
fn four_letter(address: &str, word: &str) -> String {
    let mut stream = TcpStream::connect(address).expect("connect for a four-letter word");
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream.write_all(word.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

/// Opens a session with a minimal ConnectRequest and returns the session id (0 if refused).
fn handshake(address: &str) -> i64 {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut body = Vec::new();
    body.extend_from_slice(&0i32.to_be_bytes()); // protocolVersion
    body.extend_from_slice(&0i64.to_be_bytes()); // lastZxidSeen
    body.extend_from_slice(&10_000i32.to_be_bytes()); // timeOut
    body.extend_from_slice(&0i64.to_be_bytes()); // sessionId
    body.extend_from_slice(&16i32.to_be_bytes());
    body.extend_from_slice(&[0u8; 16]); // passwd
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    stream.write_all(&frame).unwrap();
    let mut length = [0u8; 4];
    stream.read_exact(&mut length).expect("ConnectResponse length");
    let length = i32::from_be_bytes(length);
    assert!((36..=64).contains(&length), "ConnectResponse length {length}");
    let mut response = vec![0u8; length as usize];
    stream.read_exact(&mut response).expect("ConnectResponse");
    i64::from_be_bytes(response[8..16].try_into().unwrap())
}

#[test]
fn version_prints_the_version_and_exits_0() {
    let dir = TempDir::new("version");
    for flag in ["--version", "-V"] {
        let out = run_to_exit(&[flag], dir.path());
        assert!(out.status.success(), "{flag}: {:?}, stderr {:?}", out.status, out.stderr);
        assert_eq!(out.stdout, format!("zoocore {}\n", env!("CARGO_PKG_VERSION")), "{flag}");
        assert_eq!(out.stderr, "", "{flag}");
    }
    // Nothing was started: no data directory appeared.
    assert!(!dir.path().join("zoocore-data").exists());
}

#[test]
fn help_mentions_config_and_exits_0() {
    let dir = TempDir::new("help");
    for flag in ["--help", "-h"] {
        let out = run_to_exit(&[flag], dir.path());
        assert!(out.status.success(), "{flag}: {:?}", out.status);
        assert!(out.stdout.contains("--config"), "{flag} does not mention --config:\n{}", out.stdout);
        assert!(out.stdout.contains("Usage: zoocore"), "{flag}:\n{}", out.stdout);
        assert!(out.stdout.contains("--version"), "{flag}:\n{}", out.stdout);
    }
    assert!(!dir.path().join("zoocore-data").exists());
}

#[test]
fn unknown_argument_is_a_usage_error() {
    let dir = TempDir::new("badarg");
    let out = run_to_exit(&["--bogus-flag"], dir.path());
    assert_eq!(out.status.code(), Some(2), "clap's usage-error status");
    assert!(out.stderr.contains("--bogus-flag"), "stderr: {}", out.stderr);
    assert_eq!(out.stdout, "");
    // --config needs a value.
    let out = run_to_exit(&["--config"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stderr.contains("--config"), "stderr: {}", out.stderr);
    assert!(!dir.path().join("zoocore-data").exists());
}

#[test]
fn missing_config_file_names_the_path() {
    let dir = TempDir::new("missing");
    // Relative to the current directory, and absolute.
    let absolute = dir.path().join("nowhere").join("missing.cfg");
    for path in ["missing.cfg".to_string(), absolute.display().to_string()] {
        let out = run_to_exit(&["--config", &path], dir.path());
        assert!(!out.status.success(), "--config {path} must fail");
        assert_eq!(out.status.code(), Some(CONFIG_ERROR_STATUS), "--config {path}: stderr {}", out.stderr);
        assert!(out.stderr.contains(&path), "stderr does not name {path}: {}", out.stderr);
        assert_eq!(out.stdout, "", "no listening line");
    }
    // A directory is not a configuration file either.
    let out = run_to_exit(&["--config", "."], dir.path());
    assert_eq!(out.status.code(), Some(CONFIG_ERROR_STATUS), "stderr {}", out.stderr);
    assert!(!dir.path().join("zoocore-data").exists());
}

#[test]
fn bad_config_values_name_the_key_and_the_value() {
    let dir = TempDir::new("badcfg");
    let data = dir.path().join("data");
    let data = data.display();
    // (zoo.cfg body, what stderr must contain)
    let cases: Vec<(String, Vec<&str>)> = vec![
        (format!("dataDir={data}\ntickTime=abc\n"), vec!["tickTime", "abc"]),
        (format!("dataDir={data}\nclientPort=99999\n"), vec!["clientPort", "99999"]),
        (format!("dataDir={data}\nclientPort=-1\n"), vec!["clientPort", "-1"]),
        (
            format!("dataDir={data}\ntickTime=2000\nminSessionTimeout=5000\nmaxSessionTimeout=4000\n"),
            vec!["minSessionTimeout", "5000", "maxSessionTimeout", "4000"],
        ),
        // Only the upper bound given, below the default lower bound (2 ticks = 6000 ms).
        (format!("dataDir={data}\nmaxSessionTimeout=1000\n"), vec!["maxSessionTimeout", "1000"]),
        (
            format!("dataDir={data}\ntickTime=2000\nthis line has no equals sign\n"),
            vec!["line 3", "this line has no equals sign"],
        ),
        (format!("dataDir={data}\nmaxClientCnxns=many\n"), vec!["maxClientCnxns", "many"]),
        (format!("dataDir={data}\nclientPortAddress=not-an-ip\n"), vec!["clientPortAddress", "not-an-ip"]),
        (format!("dataDir={data}\nglobalOutstandingLimit=x1\n"), vec!["globalOutstandingLimit", "x1"]),
    ];
    for (text, needles) in cases {
        let cfg = dir.write("zoo.cfg", &text);
        let out = run_to_exit(&["--config", cfg.to_str().unwrap()], dir.path());
        assert_eq!(out.status.code(), Some(CONFIG_ERROR_STATUS), "config {text:?}: stderr {}", out.stderr);
        for needle in needles {
            assert!(out.stderr.contains(needle), "config {text:?}: stderr does not contain {needle:?}: {}", out.stderr);
        }
        assert_eq!(out.stdout, "", "config {text:?}: no listening line");
        assert!(!dir.path().join("data").exists(), "config {text:?}: dataDir created despite the error");
    }
}

/// Mistakes in an ensemble's files (ZooKeeper's myid, the server lines, the
/// dynamic configuration file) are named before anything starts.
#[test]
fn ensemble_config_mistakes_are_named() {
    let dir = TempDir::new("ensemble-errors");
    let data = dir.path().join("data");
    fs::create_dir_all(&data).unwrap();
    let data = data.display().to_string();
    let three = "server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.1:2889:3889\nserver.3=127.0.0.1:2890:3890\n";
    let myid_path = format!("{data}/myid");
    // (myid contents or None, zoo.cfg body, what stderr must contain)
    let cases: Vec<(Option<&str>, String, Vec<&str>)> = vec![
        (None, format!("dataDir={data}\n{three}"), vec![myid_path.as_str(), "echo 1 >"]),
        (Some("7\n"), format!("dataDir={data}\n{three}"), vec![myid_path.as_str(), "server.7", "1, 2, 3"]),
        (Some("one\n"), format!("dataDir={data}\n{three}"), vec![myid_path.as_str(), "\"one\""]),
        (
            Some("1\n"),
            format!("dataDir={data}\n{three}server.02=127.0.0.1:2891:3891\n"),
            vec!["server 2", "server.2 (line 3)", "server.02 (line 5)"],
        ),
        (
            Some("1\n"),
            format!("dataDir={data}\n{}", three.replace("2890:3890", "2888:3890")),
            vec!["server.1", "server.3", "127.0.0.1:2888"],
        ),
        (
            Some("1\n"),
            format!("dataDir={data}\nclientPort=2190\n{}", three.replace("3888\n", "3888;2181\n")),
            vec!["clientPort=2190", "2181"],
        ),
        (
            Some("1\n"),
            format!("dataDir={data}\ndynamicConfigFile={data}/zoo.cfg.dynamic.1\n"),
            vec!["zoo.cfg.dynamic.1"],
        ),
    ];
    for (myid, text, needles) in cases {
        match myid {
            Some(myid) => fs::write(format!("{data}/myid"), myid).unwrap(),
            None => {
                let _ = fs::remove_file(format!("{data}/myid"));
            }
        }
        let cfg = dir.write("zoo.cfg", &text);
        let out = run_to_exit(&["--config", cfg.to_str().unwrap()], dir.path());
        assert_eq!(out.status.code(), Some(CONFIG_ERROR_STATUS), "config {text:?}: stderr {}", out.stderr);
        for needle in needles {
            assert!(out.stderr.contains(needle), "config {text:?}: stderr does not contain {needle:?}: {}", out.stderr);
        }
        assert_eq!(out.stdout, "", "config {text:?}: no listening line");
    }
}

#[test]
fn valid_config_on_port_0_prints_the_address_and_serves() {
    let dir = TempDir::new("valid");
    let data = dir.path().join("data");
    let cfg = dir.write(
        "zoo.cfg",
        &format!(
            "# a comment\n\ntickTime=2000\ndataDir={}\nclientPort=0\nclientPortAddress=127.0.0.1\n4lw.commands.whitelist=ruok\n",
            data.display()
        ),
    );
    let mut server = Running::expect_listening(Running::start(&["--config", cfg.to_str().unwrap()], dir.path()));
    let (host, port) = server.address.rsplit_once(':').expect("host:port");
    assert_eq!(host, "127.0.0.1");
    let port: u16 = port.parse().expect("numeric port");
    assert_ne!(port, 0, "the printed port is the one the OS picked");
    assert_eq!(four_letter(&server.address, "ruok"), "imok");
    // srvr is always allowed (ZooKeeper adds it to any whitelist); stat is not in this one.
    assert!(four_letter(&server.address, "srvr").contains("Mode: standalone"));
    assert_eq!(four_letter(&server.address, "stat"), "stat is not executed because it is not in the whitelist.\n");
    assert_ne!(handshake(&server.address), 0, "a client session can be opened");
    assert!(data.is_dir(), "dataDir {} created", data.display());
    server.assert_alive();
}

#[test]
fn default_run_listens_on_2181_with_data_in_the_current_directory() {
    const DEFAULT: &str = "127.0.0.1:2181";
    if let Err(error) = TcpListener::bind(DEFAULT) {
        eprintln!("SKIP default_run_listens_on_2181_with_data_in_the_current_directory: {DEFAULT} is in use ({error})");
        return;
    }
    // (The probe listener is closed here; another process could still take the port before
    // zoocore binds it, which is reported as a skip below, not a failure.)
    let dir = TempDir::new("default");
    let mut server = match Running::start(&[], dir.path()) {
        Started::Listening(server) => server,
        Started::Exited(status, stderr) if stderr.contains("2181") && stderr.contains("cannot listen") => {
            eprintln!("SKIP default run: port 2181 was taken meanwhile ({status}): {stderr}");
            return;
        }
        Started::Exited(status, stderr) => panic!("zoocore exited before listening ({status}):\n{stderr}"),
    };
    assert_eq!(server.address, DEFAULT);
    let data = dir.path().join("zoocore-data");
    assert!(data.is_dir(), "./zoocore-data created in the current directory {}", dir.path().display());
    // The default whitelist is srvr only (as ZooKeeper 3.5+).
    let srvr = four_letter(DEFAULT, "srvr");
    assert!(srvr.contains("Mode: standalone"), "srvr: {srvr}");
    assert_eq!(four_letter(DEFAULT, "ruok"), "ruok is not executed because it is not in the whitelist.\n");
    assert_ne!(handshake(DEFAULT), 0);
    server.assert_alive();
}
