//! SASL DIGEST-MD5 and enforced authentication against the real binary,
//! configured as a ZooKeeper operator configures them: a JAAS file with a
//! `Server` section named by `java.security.auth.login.config`, and
//! `authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider`.
//!
//! Real clients: kazoo with pure-sasl (the cases of kazoo's test_sasl.py,
//! tests/interop/kazoo_sasl.py) and Debian's Java zkCli with a JAAS `Client`
//! section; and raw frames for what a client library hides (the reply codes
//! and the closed connection), each checked against Apache ZooKeeper 3.8.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{zoocore, Process, Server, LISTENING, START_DEADLINE};
use md5::{Digest, Md5};

const SERVER_JAAS: &str = r#"Server {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_super="super_secret"
    user_jaasuser="jaas_password";
};
"#;

const SASL_PROVIDER: &str = "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider";

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A JAAS file in a directory of its own that lives as long as the test.
fn jaas_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("jaas.conf");
    std::fs::write(&path, text).unwrap();
    (directory, path)
}

fn sasl_server(extra: &[&str]) -> (Server, tempfile::TempDir) {
    let (directory, path) = jaas_file(SERVER_JAAS);
    let jaas = format!("java.security.auth.login.config={}", path.display());
    let mut lines = vec![SASL_PROVIDER, jaas.as_str(), "maxClientCnxns=0"];
    lines.extend_from_slice(extra);
    (Server::start_with(&lines), directory)
}

// --- a minimal client, frame by frame -------------------------------------

struct Client {
    stream: TcpStream,
}

/// A reply: xid, zxid, err and the rest of the frame.
struct Reply {
    xid: i32,
    zxid: i64,
    err: i32,
    body: Vec<u8>,
}

impl Client {
    fn connect(server: &Server) -> Client {
        Client::connect_to(server.addr())
    }

    fn connect_to(address: &str) -> Client {
        let stream = TcpStream::connect(address).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut request = Vec::new();
        request.extend_from_slice(&0i32.to_be_bytes()); // protocol version
        request.extend_from_slice(&0i64.to_be_bytes()); // last zxid seen
        request.extend_from_slice(&30_000i32.to_be_bytes());
        request.extend_from_slice(&0i64.to_be_bytes()); // session id
        request.extend_from_slice(&16i32.to_be_bytes());
        request.extend_from_slice(&[0; 16]);
        let mut client = Client { stream };
        client.send(&request);
        let response = client.frame().expect("connect response");
        assert!(response.len() >= 36, "short connect response");
        client
    }

    fn send(&mut self, body: &[u8]) {
        let mut frame = (body.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(body);
        self.stream.write_all(&frame).unwrap();
    }

    /// The next frame, or None once the server closed the connection.
    fn frame(&mut self) -> Option<Vec<u8>> {
        let mut length = [0u8; 4];
        self.stream.read_exact(&mut length).ok()?;
        let mut body = vec![0; i32::from_be_bytes(length) as usize];
        self.stream.read_exact(&mut body).ok()?;
        Some(body)
    }

    fn request(&mut self, xid: i32, opcode: i32, payload: &[u8]) -> Option<Reply> {
        let mut body = xid.to_be_bytes().to_vec();
        body.extend_from_slice(&opcode.to_be_bytes());
        body.extend_from_slice(payload);
        self.send(&body);
        let frame = self.frame()?;
        Some(Reply {
            xid: i32::from_be_bytes(frame[0..4].try_into().unwrap()),
            zxid: i64::from_be_bytes(frame[4..12].try_into().unwrap()),
            err: i32::from_be_bytes(frame[12..16].try_into().unwrap()),
            body: frame[16..].to_vec(),
        })
    }

    /// One sasl packet (opcode 102); the reply and its token (None: null).
    fn sasl(&mut self, xid: i32, token: &[u8]) -> Option<(Reply, Option<Vec<u8>>)> {
        let mut payload = (token.len() as i32).to_be_bytes().to_vec();
        payload.extend_from_slice(token);
        let reply = self.request(xid, 102, &payload)?;
        let length = i32::from_be_bytes(reply.body[0..4].try_into().unwrap());
        let token = (length >= 0).then(|| reply.body[4..4 + length as usize].to_vec());
        Some((reply, token))
    }

    /// Whether the server has closed the connection (reads end).
    fn closed_by_server(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.stream.read(&mut byte), Ok(0))
    }

    fn get_data(&mut self, xid: i32, path: &str) -> Option<Reply> {
        let mut payload = (path.len() as i32).to_be_bytes().to_vec();
        payload.extend_from_slice(path.as_bytes());
        payload.push(0);
        self.request(xid, 4, &payload)
    }

    fn who_am_i(&mut self, xid: i32) -> Vec<(String, String)> {
        let reply = self.request(xid, 107, &[]).expect("whoAmI reply");
        let mut body = &reply.body[..];
        let read_string = |body: &mut &[u8]| {
            let length = i32::from_be_bytes(body[0..4].try_into().unwrap()) as usize;
            let text = String::from_utf8(body[4..4 + length].to_vec()).unwrap();
            *body = &body[4 + length..];
            text
        };
        let count = i32::from_be_bytes(body[0..4].try_into().unwrap());
        body = &body[4..];
        (0..count).map(|_| (read_string(&mut body), read_string(&mut body))).collect()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The value of `name` in a DIGEST-MD5 challenge.
fn directive(challenge: &str, name: &str) -> String {
    challenge
        .split(',')
        .find_map(|part| part.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in {challenge}"))
        .trim_matches('"')
        .to_string()
}

/// An RFC 2831 client response (and the rspauth it expects) for a challenge.
fn digest_response(challenge: &str, user: &str, password: &str) -> (String, String) {
    let (realm, nonce, cnonce, uri) =
        (directive(challenge, "realm"), directive(challenge, "nonce"), "c1", "zookeeper/zk-sasl-md5");
    let value = |a2: &str| {
        let mut a1 = Md5::digest(format!("{user}:{realm}:{password}")).to_vec();
        a1.extend_from_slice(format!(":{nonce}:{cnonce}").as_bytes());
        let kd = format!("{}:{nonce}:00000001:{cnonce}:auth:{}", hex(&Md5::digest(&a1)), hex(&Md5::digest(a2)));
        hex(&Md5::digest(kd))
    };
    let response = format!(
        "charset=utf-8,username=\"{user}\",realm=\"{realm}\",nonce=\"{nonce}\",nc=00000001,cnonce=\"{cnonce}\",\
         digest-uri=\"{uri}\",maxbuf=65536,response={},qop=auth",
        value(&format!("AUTHENTICATE:{uri}"))
    );
    (response, format!("rspauth={}", value(&format!(":{uri}"))))
}

/// Runs the whole exchange; the final reply and token, or None if closed.
fn authenticate(client: &mut Client, user: &str, password: &str) -> (Reply, Option<Vec<u8>>, String) {
    let (reply, challenge) = client.sasl(1, b"").expect("challenge");
    assert_eq!((reply.xid, reply.zxid, reply.err), (1, 0, 0));
    let challenge = String::from_utf8(challenge.expect("a challenge token")).unwrap();
    assert!(challenge.starts_with("realm=\"zk-sasl-md5\",nonce=\""), "{challenge}");
    assert!(challenge.ends_with("\",charset=utf-8,algorithm=md5-sess"), "{challenge}");
    assert_eq!(directive(&challenge, "nonce").len(), 40);
    let (response, rspauth) = digest_response(&challenge, user, password);
    let (reply, token) = client.sasl(2, response.as_bytes()).expect("a reply to the digest-response");
    (reply, token, rspauth)
}

#[test]
fn digest_md5_exchange_adds_the_sasl_identity() {
    let (server, _jaas) = sasl_server(&[]);
    let mut client = Client::connect(&server);
    let (reply, token, rspauth) = authenticate(&mut client, "jaasuser", "jaas_password");
    assert_eq!((reply.xid, reply.zxid, reply.err), (2, 0, 0));
    assert_eq!(token.as_deref(), Some(rspauth.as_bytes()));
    let identities = client.who_am_i(3);
    assert_eq!(identities[0], ("sasl".to_string(), "jaasuser".to_string()));
    assert_eq!(identities.last().unwrap().0, "ip");
    // ZooKeeper refuses any token once the exchange is complete.
    let (reply, token) = client.sasl(4, b"").expect("a reply after completion");
    assert_eq!((reply.xid, reply.zxid, reply.err, token), (4, 0, -115, None));
    assert!(client.closed_by_server());
}

#[test]
fn failed_exchange_is_auth_failed_and_closes() {
    let (server, _jaas) = sasl_server(&[]);
    for (user, password) in [("jaasuser", "wrong"), ("baduser", "badpassword")] {
        let mut client = Client::connect(&server);
        let (reply, token, _) = authenticate(&mut client, user, password);
        // AuthFailed with a null token, zxid 0, then the connection closes.
        assert_eq!((reply.xid, reply.zxid, reply.err, token), (2, 0, -115, None), "{user}");
        assert!(client.closed_by_server(), "{user}");
    }
    let mut client = Client::connect(&server);
    let (reply, token) = client.sasl(1, b"username=\"x\"").expect("a reply to an initial response");
    assert_eq!((reply.err, token), (-115, None));
    assert!(client.closed_by_server());
    let log = server.stderr_tail();
    assert!(log.contains("client failed to SASL authenticate"), "{log}");
    assert!(log.contains("SASL DIGEST-MD5 enabled") && log.contains("users=2"), "{log}");
    assert!(!log.contains("jaas_password") && !log.contains("super_secret"), "a password reached the log:\n{log}");
}

#[test]
fn allow_sasl_failed_clients_keeps_the_connection() {
    let (server, _jaas) = sasl_server(&["allowSaslFailedClients=true"]);
    let mut client = Client::connect(&server);
    let (reply, token, _) = authenticate(&mut client, "jaasuser", "wrong");
    assert_eq!((reply.err, token), (0, None));
    let identities = client.who_am_i(3);
    assert!(identities.iter().all(|(scheme, _)| scheme != "sasl"), "{identities:?}");
}

#[test]
fn super_user_gets_super() {
    let (server, _jaas) = sasl_server(&["superUser=super"]);
    let mut client = Client::connect(&server);
    let (reply, _, _) = authenticate(&mut client, "super", "super_secret");
    assert_eq!(reply.err, 0);
    let identities = client.who_am_i(3);
    assert!(identities.contains(&("sasl".to_string(), "super".to_string())), "{identities:?}");
    assert!(identities.iter().any(|(scheme, _)| scheme == "super"), "{identities:?}");
}

#[test]
fn enforced_sasl_closes_unauthenticated_sessions() {
    for setting in
        [&["sessionRequireClientSASLAuth=true"][..], &["enforce.auth.enabled=true", "enforce.auth.schemes=sasl"]]
    {
        let (server, _jaas) = sasl_server(setting);
        // Unauthenticated: the first request (a ping too) is answered with
        // SessionClosedRequireSaslAuth (-124), zxid 0, and the connection closes.
        let mut plain = Client::connect(&server);
        let reply = plain.get_data(7, "/").expect("a reply");
        assert_eq!((reply.xid, reply.zxid, reply.err), (7, 0, -124), "{setting:?}");
        assert!(plain.closed_by_server());
        let mut pinger = Client::connect(&server);
        let reply = pinger.request(-2, 11, &[]).expect("a reply to the ping");
        assert_eq!(reply.err, -124);
        // A failed exchange under enforcement answers -124 as well.
        let mut wrong = Client::connect(&server);
        let (reply, token, _) = authenticate(&mut wrong, "jaasuser", "wrong");
        assert_eq!((reply.err, token), (-124, None));
        assert!(wrong.closed_by_server());
        // Authenticated: requests are served.
        let mut client = Client::connect(&server);
        assert_eq!(authenticate(&mut client, "jaasuser", "jaas_password").0.err, 0);
        let reply = client.get_data(3, "/").expect("getData reply");
        assert_eq!(reply.err, 0);
    }
}

#[test]
fn enforced_digest_accepts_addauth() {
    let (server, _jaas) = sasl_server(&["enforce.auth.enabled=true", "enforce.auth.schemes=digest,sasl"]);
    let mut client = Client::connect(&server);
    let mut payload = 0i32.to_be_bytes().to_vec();
    payload.extend_from_slice(&6i32.to_be_bytes());
    payload.extend_from_slice(b"digest");
    payload.extend_from_slice(&3i32.to_be_bytes());
    payload.extend_from_slice(b"u:p");
    assert_eq!(client.request(-4, 100, &payload).unwrap().err, 0);
    assert_eq!(client.get_data(2, "/").unwrap().err, 0);
}

/// The config and JAAS errors stop the start and name key, value or file.
#[test]
fn bad_settings_stop_the_start_with_a_clear_error() {
    let directory = tempfile::tempdir().unwrap();
    let run = |lines: &[&str], environment: &[(&str, &str)]| {
        let config = directory.path().join("zoo.cfg");
        let data = directory.path().join("data");
        let mut text = format!("clientPort=0\nadmin.enableServer=false\ndataDir={}\n", data.display());
        for line in lines {
            text.push_str(line);
            text.push('\n');
        }
        std::fs::write(&config, text).unwrap();
        let mut command = zoocore(&["--config", config.to_str().unwrap()]);
        command.envs(environment.iter().copied());
        let output = Process::run(&mut command, START_DEADLINE);
        assert!(!output.status.success(), "{lines:?} started");
        output.stderr
    };
    let error = run(&["enforce.auth.enabled=true"], &[]);
    assert!(error.contains("enforce.auth.schemes"), "{error}");
    let error = run(&["enforce.auth.enabled=true", "enforce.auth.schemes=sasl"], &[]);
    assert!(error.contains("enforce.auth.schemes") && error.contains("sasl"), "{error}");
    let error = run(&["enforce.auth.enabled=yes"], &[]);
    assert!(error.contains("enforce.auth.enabled") && error.contains("yes"), "{error}");
    let missing = directory.path().join("missing-jaas.conf");
    let missing_flag = format!("-Xmx1g -Djava.security.auth.login.config={}", missing.display());
    let error = run(&[SASL_PROVIDER], &[("SERVER_JVMFLAGS", &missing_flag)]);
    assert!(error.contains("missing-jaas.conf"), "{error}");
    let (_keep, client_only) = jaas_file("Client {\n  M required username=\"a\" password=\"secret\";\n};\n");
    let error = run(&[&format!("java.security.auth.login.config={}", client_only.display())], &[]);
    assert!(error.contains("'Server'") && !error.contains("secret"), "{error}");
    let (_keep, broken) = jaas_file("Server {\n  M required\n  user_a=\"secret\"\n};\n");
    let error = run(&[&format!("java.security.auth.login.config={}", broken.display())], &[]);
    assert!(error.contains("line 4") && !error.contains("secret"), "{error}");
}

/// The JAAS file named through JVMFLAGS, as zkServer.sh passes it.
#[test]
fn jaas_file_through_jvmflags() {
    let (_directory, path) = jaas_file(SERVER_JAAS);
    let directory = tempfile::tempdir().unwrap();
    let config = directory.path().join("zoo.cfg");
    std::fs::write(
        &config,
        format!(
            "clientPort=0\nadmin.enableServer=false\ndataDir={}\n{SASL_PROVIDER}\n",
            directory.path().join("data").display()
        ),
    )
    .unwrap();
    let mut command = zoocore(&["--config", config.to_str().unwrap()]);
    command.env("JVMFLAGS", format!("-Xmx512m -Djava.security.auth.login.config={}", path.display()));
    let mut server = Process::start(&mut command, None);
    let address = server.wait_for_line(LISTENING, START_DEADLINE);
    let address =
        address.unwrap_or_else(|exited| panic!("the server did not start ({}):\n{}", exited.status, exited.stderr));
    let mut client = Client::connect_to(&address);
    let (reply, _, _) = authenticate(&mut client, "jaasuser", "jaas_password");
    server.kill();
    assert_eq!(reply.err, 0);
}

#[test]
fn kazoo_sasl_suite_passes() {
    let python = std::env::var_os("ZOOCORE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repository().join(".venv"))
        .join("bin/python");
    assert!(Path::new(&python).exists(), "{} is missing: run .ci/setup.sh first", python.display());
    let (server, _jaas) = sasl_server(&[]);
    let output = Command::new(python)
        .arg("-W")
        .arg("ignore")
        .arg(repository().join("tests/interop/kazoo_sasl.py"))
        .args(["--hosts", server.addr()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let passed = stdout.lines().filter(|line| line.starts_with("ok ")).count();
    assert!(
        output.status.success() && passed == 5,
        "kazoo SASL suite: {passed} of 5 passed\n{stdout}\n--- stderr ---\n{}\n--- server log ---\n{}",
        String::from_utf8_lossy(&output.stderr),
        server.stderr_tail()
    );
}

/// Debian's Java zkCli with a JAAS `Client` section: it authenticates with
/// DIGEST-MD5, gets the client-side SaslAuthenticated event, and works under
/// a sasl ACL; with a wrong password it gets AuthFailed.
#[test]
fn zkcli_with_a_jaas_client_section() {
    assert!(
        Path::new("/usr/share/java/zookeeper.jar").exists(),
        "Debian's zookeeper package is missing: run .ci/setup.sh first"
    );
    let (server, _jaas) = sasl_server(&[]);
    let zkcli = |password: &str, commands: &str| {
        let (directory, client_jaas) = jaas_file(&format!(
            "Client {{\n    org.apache.zookeeper.server.auth.DigestLoginModule required\n    username=\"jaasuser\"\n    password=\"{password}\";\n}};\n"
        ));
        let mut child = Command::new(std::env::var("JAVA").unwrap_or_else(|_| "java".into()))
            .arg("-cp")
            .arg("/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-nop.jar")
            .arg(format!("-Djava.security.auth.login.config={}", client_jaas.display()))
            .args(["org.apache.zookeeper.ZooKeeperMain", "-server", server.addr()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(commands.as_bytes()).unwrap();
        let output = child.wait_with_output().unwrap();
        drop(directory);
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
    };
    let output = zkcli(
        "jaas_password",
        "create /saslnode data sasl:jaasuser:cdrwa\ngetAcl /saslnode\nget /saslnode\nwhoami\ndelete /saslnode\nquit\n",
    );
    assert!(output.contains("state:SaslAuthenticated"), "{output}");
    assert!(output.contains("Created /saslnode"), "{output}");
    assert!(output.contains("'sasl,'jaasuser\n: cdrwa"), "{output}");
    assert!(output.lines().any(|line| line == "data"), "{output}");
    assert!(output.contains("sasl: jaasuser"), "{output}");
    // A request before quitting: the client holds it until the SASL
    // exchange ends, so the AuthFailed event is queued before the close
    // (with a bare quit, zkCli could close before the server answered).
    let output = zkcli("wrong", "ls /\nquit\n");
    assert!(output.contains("state:AuthFailed"), "{output}");
}
