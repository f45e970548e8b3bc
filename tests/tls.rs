//! TLS on the client port (`secureClientPort`) against the real binary,
//! configured as a ZooKeeper operator configures it: `ssl.keyStore.*` and
//! `ssl.trustStore.*` (PEM and PKCS12), `ssl.clientAuth`, and the `x509`
//! identity of a client certificate.
//!
//! A CA, the server's and clients' certificates are made at test time with
//! the openssl command line tool in a temporary directory. Real clients:
//! kazoo over TLS (tests/interop/kazoo_tls.py: create, get, watch, x509
//! ACLs), Debian's Java zkCli over Netty TLS, and rustls for what a client
//! library hides (four-letter words over TLS, refused handshakes). Each case
//! was checked against Apache ZooKeeper 3.8 (tests/interop/README.md).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::certs::{self, CLIENT_EXTENSIONS, SERVER_EXTENSIONS};
use common::{zoocore, Process, Server, START_DEADLINE};

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The subject of the client certificate, as Java's
/// `X500Principal.getName()` prints it (the `x509` id ZooKeeper gives).
pub const CLIENT_SUBJECT: &str = "CN=client,OU=Tests,O=Zoocore Test,C=US";

/// The PKCS12 key store's password: distinctive, so a leak is found.
const P12_PASSWORD: &str = "p12-Pass-7781";

/// Certificates made for one test (tests/common/certs.rs).
struct Certificates {
    directory: certs::CertificateDir,
}

impl Certificates {
    /// A CA; the server's key and certificate (for 127.0.0.1 and
    /// localhost) as a PEM key store and a PKCS12 one (password `P12_PASSWORD`);
    /// `server2`, a second server certificate for reloads;
    /// the client certificates `client` (CLIENT_SUBJECT) and `other` from
    /// that CA; `expired`, one from that CA that expires at once; and
    /// `rogue`, a client certificate from another CA.
    fn make() -> Certificates {
        let directory = certs::CertificateDir::new();
        let path = directory.root();
        for ca in ["ca", "rogue-ca"] {
            certs::make_ca(path, ca);
        }
        let leaf = |name: &str, subject: &str, ca: &str, extensions: &str| {
            certs::make_leaf(path, name, subject, ca, Some(extensions), "2")
        };
        // Valid for no time at all: expired a second after it was made.
        certs::make_leaf(path, "expired", "/CN=expired", "ca", Some(CLIENT_EXTENSIONS), "0");
        leaf("server", "/CN=localhost", "ca", SERVER_EXTENSIONS);
        leaf("server2", "/CN=localhost", "ca", SERVER_EXTENSIONS);
        leaf("client", "/C=US/O=Zoocore Test/OU=Tests/CN=client", "ca", CLIENT_EXTENSIONS);
        leaf("other", "/CN=other", "ca", CLIENT_EXTENSIONS);
        leaf("rogue", "/CN=rogue", "rogue-ca", CLIENT_EXTENSIONS);
        certs::pkcs12(path, "server", P12_PASSWORD);
        Certificates { directory }
    }

    fn path(&self, name: &str) -> String {
        self.directory.path(name)
    }

    /// The zoo.cfg lines of a secure port on `port` with PEM stores.
    fn server_lines(&self, port: u16, client_auth: &str) -> Vec<String> {
        certs::secure_port_lines(&self.directory, port, client_auth)
    }
}

/// A zoocore with a secure port beside its plain one.
fn tls_server(certificates: &Certificates, client_auth: &str, extra: &[&str]) -> (Server, String) {
    let port = common::free_port();
    let mut lines = certificates.server_lines(port, client_auth);
    lines.extend(extra.iter().map(|line| line.to_string()));
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    (Server::start_with(&lines), format!("127.0.0.1:{port}"))
}

/// A rustls client trusting the test CA, with the named client
/// certificate or none.
fn client_config(certificates: &Certificates, identity: Option<&str>) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(certificates.path("ca.pem")).unwrap() {
        roots.add(certificate.unwrap()).unwrap();
    }
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some(name) => {
            let pem = certificates.path(&format!("{name}.pem"));
            let chain: Vec<CertificateDer<'static>> =
                CertificateDer::pem_file_iter(&pem).unwrap().map(Result::unwrap).collect();
            let key = PrivateKeyDer::from_pem_file(&pem).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    Arc::new(config)
}

/// Sends a four-letter word over TLS and reads the answer to the end; Err
/// when the handshake or the connection fails before any answer.
fn four_letter_over_tls(address: &str, config: Arc<rustls::ClientConfig>, word: &str) -> Result<String, String> {
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let connection = rustls::ClientConnection::new(config, name).map_err(|error| error.to_string())?;
    let socket = TcpStream::connect(address).map_err(|error| error.to_string())?;
    socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut stream = rustls::StreamOwned::new(connection, socket);
    stream.write_all(word.as_bytes()).map_err(|error| error.to_string())?;
    stream.flush().map_err(|error| error.to_string())?;
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => {}
        // The server closes after the answer without a close_notify, as
        // ZooKeeper does; what arrived before counts.
        Err(error) if !answer.is_empty() => {
            let _ = error;
        }
        Err(error) => return Err(error.to_string()),
    }
    Ok(String::from_utf8_lossy(&answer).to_string())
}

/// A four-letter word over TLS that got no answer: the handshake was
/// refused, or the connection closed before a byte came back.
fn unanswered(result: &Result<String, String>) -> bool {
    result.as_ref().map_or(true, |answer| answer.is_empty())
}

fn wait_for_log(server: &Server, text: &str) -> bool {
    common::wait_for(Duration::from_secs(10), || server.stderr_tail().contains(text))
}

#[test]
fn four_letter_words_answer_over_tls_and_conf_shows_the_port() {
    let certificates = Certificates::make();
    let (server, secure) = tls_server(&certificates, "need", &[]);
    let answer = four_letter_over_tls(&secure, client_config(&certificates, Some("client")), "srvr").unwrap();
    assert!(answer.contains("Zookeeper version:"), "{answer}");
    let answer = four_letter_over_tls(&secure, client_config(&certificates, Some("client")), "ruok").unwrap();
    assert_eq!(answer, "imok");
    // openssl s_client, as an operator would check the port.
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", &secure, "-quiet", "-verify_return_error"])
        .args(["-CAfile", &certificates.path("ca.pem")])
        .args(["-cert", &certificates.path("client.crt"), "-key", &certificates.path("client.key")])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // stdin stays open until the server has answered and closed.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"srvr").unwrap();
    let mut answer = String::new();
    child.stdout.take().unwrap().read_to_string(&mut answer).unwrap();
    drop(stdin);
    child.wait().unwrap();
    assert!(answer.contains("Zookeeper version:"), "openssl s_client: {answer}");
    let port = secure.rsplit(':').next().unwrap();
    let conf = server.four_letter("conf");
    assert!(conf.lines().any(|line| line == format!("secureClientPort={port}")), "{conf}");
}

#[test]
fn a_client_without_a_certificate_is_refused_under_need() {
    let certificates = Certificates::make();
    let (server, secure) = tls_server(&certificates, "need", &[]);
    let result = four_letter_over_tls(&secure, client_config(&certificates, None), "srvr");
    assert!(unanswered(&result), "answered without a certificate: {result:?}");
    assert!(wait_for_log(&server, "TLS handshake failed"), "{}", server.stderr_tail());
    // The refusal closed that connection only.
    let answer = four_letter_over_tls(&secure, client_config(&certificates, Some("client")), "ruok").unwrap();
    assert_eq!(answer, "imok");
}

#[test]
fn an_untrusted_certificate_is_refused() {
    let certificates = Certificates::make();
    let (server, secure) = tls_server(&certificates, "want", &[]);
    let result = four_letter_over_tls(&secure, client_config(&certificates, Some("rogue")), "srvr");
    assert!(unanswered(&result), "answered a rogue certificate: {result:?}");
    assert!(wait_for_log(&server, "TLS handshake failed"), "{}", server.stderr_tail());
    // Under want, no certificate at all is fine.
    let answer = four_letter_over_tls(&secure, client_config(&certificates, None), "ruok").unwrap();
    assert_eq!(answer, "imok");
}

#[test]
fn an_expired_certificate_is_refused() {
    let certificates = Certificates::make();
    let (server, secure) = tls_server(&certificates, "need", &[]);
    // The certificate's validity ends the second it was made.
    let refused = common::wait_for(Duration::from_secs(10), || {
        unanswered(&four_letter_over_tls(&secure, client_config(&certificates, Some("expired")), "ruok"))
    });
    assert!(refused, "an expired certificate was accepted");
    assert!(wait_for_log(&server, "certificate expired"), "{}", server.stderr_tail());
}

#[test]
fn client_auth_none_asks_for_no_certificate() {
    let certificates = Certificates::make();
    let (_server, secure) = tls_server(&certificates, "none", &[]);
    let answer = four_letter_over_tls(&secure, client_config(&certificates, None), "ruok").unwrap();
    assert_eq!(answer, "imok");
}

#[test]
fn a_plain_text_client_on_the_secure_port_is_closed_with_a_reason() {
    let certificates = Certificates::make();
    let (server, secure) = tls_server(&certificates, "need", &[]);
    let mut socket = TcpStream::connect(&secure).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    socket.write_all(b"srvr").unwrap();
    let mut answer = Vec::new();
    let _ = socket.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    assert!(!text.contains("Zookeeper version"), "a plain-text client was answered: {text}");
    assert!(wait_for_log(&server, "TLS handshake failed"), "{}", server.stderr_tail());
    // A connect request in plain text, as a client without TLS sends it.
    let mut socket = TcpStream::connect(&secure).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut frame = vec![0, 0, 0, 44];
    frame.extend_from_slice(&[0; 4]); // protocol version
    frame.extend_from_slice(&[0; 8]); // last zxid seen
    frame.extend_from_slice(&30000i32.to_be_bytes());
    frame.extend_from_slice(&[0; 8]); // session id
    frame.extend_from_slice(&16i32.to_be_bytes());
    frame.extend_from_slice(&[0; 16]);
    socket.write_all(&frame).unwrap();
    let mut answer = Vec::new();
    let _ = socket.read_to_end(&mut answer);
    assert!(answer.len() < 36, "a plain-text connect request got a session: {answer:?}");
    // The plain port is untouched.
    assert!(server.four_letter("ruok").contains("imok"));
}

#[test]
fn a_pkcs12_key_store_serves_too() {
    let certificates = Certificates::make();
    let port = common::free_port();
    let lines = [
        format!("secureClientPort={port}"),
        format!("ssl.keyStore.location={}", certificates.path("server.p12")),
        format!("ssl.keyStore.password={P12_PASSWORD}"),
        format!("ssl.trustStore.location={}", certificates.path("ca.pem")),
    ];
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let server = Server::start_with(&lines);
    let answer =
        four_letter_over_tls(&format!("127.0.0.1:{port}"), client_config(&certificates, Some("client")), "ruok")
            .unwrap();
    assert_eq!(answer, "imok");
    // The password shows nowhere an operator looks (issue 11, item 6).
    let admin = server.admin_addr().unwrap();
    for command in ["system_properties", "initial_configuration", "configuration", "environment"] {
        let (status, _, body) = common::http(admin, "GET", &format!("/commands/{command}"));
        assert_eq!(status, 200, "{command}");
        assert!(!body.contains(P12_PASSWORD), "{command} shows the password: {body}");
    }
    for word in ["conf", "envi"] {
        assert!(!server.four_letter(word).contains(P12_PASSWORD), "{word} shows the password");
    }
    assert!(!server.stderr_tail().contains(P12_PASSWORD), "the log shows the password");
}

/// A bad store or setting stops the start, naming the key and the file or
/// value, and never shows a password.
#[test]
fn bad_settings_stop_the_start_with_a_clear_error() {
    let certificates = Certificates::make();
    let directory = tempfile::tempdir().unwrap();
    let run = |lines: &[String]| {
        let config = directory.path().join("zoo.cfg");
        let data = directory.path().join("data");
        let mut text =
            format!("clientPort=0\nadmin.enableServer=false\ndataDir={}\nsecureClientPort=0\n", data.display());
        for line in lines {
            text.push_str(line);
            text.push('\n');
        }
        std::fs::write(&config, text).unwrap();
        let output = Process::run(&mut zoocore(&["--config", config.to_str().unwrap()]), START_DEADLINE);
        assert_eq!(output.status.code(), Some(2), "{lines:?}: {output:?}");
        output.stderr
    };
    let pem = |name: &str| format!("ssl.keyStore.location={}", certificates.path(name));
    let trust = format!("ssl.trustStore.location={}", certificates.path("ca.pem"));
    let missing = certificates.path("missing.pem");
    let error = run(&[format!("ssl.keyStore.location={missing}"), trust.clone()]);
    assert!(error.contains("ssl.keyStore.location") && error.contains(&missing), "{error}");
    let error = run(std::slice::from_ref(&trust));
    assert!(error.contains("ssl.keyStore.location"), "{error}");
    let error = run(&[pem("server.pem")]);
    assert!(error.contains("ssl.trustStore.location"), "{error}");
    let pem_type = "ssl.keyStore.type=PEM".to_string();
    let error = run(&[pem("server.crt"), pem_type.clone(), trust.clone()]);
    assert!(error.contains("ssl.keyStore.location") && error.contains("PRIVATE KEY"), "{error}");
    let error = run(&[pem("server.key"), pem_type.clone(), trust.clone()]);
    assert!(error.contains("ssl.keyStore.location") && error.contains("CERTIFICATE"), "{error}");
    let error = run(&[pem("server.p12"), "ssl.keyStore.password=wrong-password".into(), trust.clone()]);
    assert!(error.contains("ssl.keyStore") && error.contains("server.p12"), "{error}");
    assert!(!error.contains("wrong-password"), "{error}");
    let jks = certificates.path("server.jks");
    std::fs::write(&jks, b"not read").unwrap();
    let error = run(&[format!("ssl.keyStore.location={jks}"), trust.clone()]);
    assert!(error.contains("ssl.keyStore.type") && error.contains("keytool -importkeystore"), "{error}");
    let error = run(&[pem("server.pem"), trust.clone(), "ssl.clientAuth=maybe".into()]);
    assert!(error.contains("ssl.clientAuth") && error.contains("maybe"), "{error}");
    let error = run(&[pem("server.pem"), trust.clone(), "ssl.enabledProtocols=TLSv1.1".into()]);
    assert!(error.contains("ssl.enabledProtocols") && error.contains("TLSv1.1"), "{error}");
    let error = run(&[pem("server.pem"), trust.clone(), "ssl.ciphersuites=TLS_RSA_WITH_NULL_MD5".into()]);
    assert!(error.contains("ssl.ciphersuites") && error.contains("TLS_RSA_WITH_NULL_MD5"), "{error}");
    let other_key = format!("ssl.keyStore.location={}", certificates.path("mismatch.pem"));
    let key = std::fs::read_to_string(certificates.path("other.key")).unwrap();
    let certificate = std::fs::read_to_string(certificates.path("server.crt")).unwrap();
    std::fs::write(certificates.path("mismatch.pem"), format!("{key}{certificate}")).unwrap();
    let error = run(&[other_key, trust.clone()]);
    assert!(error.contains("ssl.keyStore.location") && error.contains("mismatch.pem"), "{error}");
}

/// kazoo over TLS: create, get and a watch; the x509 ACL scheme with the
/// client certificate's subject; a client without a certificate refused.
#[test]
fn kazoo_over_tls() {
    let python = std::env::var_os("ZOOCORE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repository().join(".venv"))
        .join("bin/python");
    assert!(Path::new(&python).exists(), "{} is missing: run .ci/setup.sh first", python.display());
    let certificates = Certificates::make();
    let (server, secure) = tls_server(&certificates, "need", &[]);
    let output = Command::new(python)
        .arg("-W")
        .arg("ignore")
        .arg(repository().join("tests/interop/kazoo_tls.py"))
        .args(["--hosts", &secure, "--certs", &certificates.path(""), "--subject", CLIENT_SUBJECT])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let passed = stdout.lines().filter(|line| line.starts_with("ok ")).count();
    assert!(
        output.status.success() && passed == 4,
        "kazoo TLS checks: {passed} of 4 passed\n{stdout}\n--- stderr ---\n{}\n--- server log ---\n{}",
        String::from_utf8_lossy(&output.stderr),
        server.stderr_tail()
    );
}

/// zkCli with the Netty client socket: Debian's netty-all.jar is a
/// manifest-only jar, so the module jars are named one by one.
fn zkcli_classpath() -> String {
    let mut jars = vec!["zookeeper".to_string(), "zookeeper-jute".to_string()];
    for module in [
        "buffer",
        "codec",
        "common",
        "handler",
        "resolver",
        "transport",
        "transport-native-epoll",
        "transport-native-unix-common",
    ] {
        jars.push(format!("netty-{module}"));
    }
    jars.push("slf4j-nop".into());
    jars.iter().map(|jar| format!("/usr/share/java/{jar}.jar")).collect::<Vec<_>>().join(":")
}

/// Debian's Java zkCli over TLS: the Netty client socket with PEM stores,
/// as `zookeeper.client.secure=true` configures it.
#[test]
fn zkcli_over_tls() {
    assert!(
        Path::new("/usr/share/java/zookeeper.jar").exists() && Path::new("/usr/share/java/netty-handler.jar").exists(),
        "Debian's zookeeper package (with its netty jars) is missing: run .ci/setup.sh first"
    );
    let certificates = Certificates::make();
    let (server, secure) = tls_server(&certificates, "need", &[]);
    let mut child = Command::new(std::env::var("JAVA").unwrap_or_else(|_| "java".into()))
        .arg("-cp")
        .arg(zkcli_classpath())
        .arg("-Dzookeeper.client.secure=true")
        .arg("-Dzookeeper.clientCnxnSocket=org.apache.zookeeper.ClientCnxnSocketNetty")
        .arg(format!("-Dzookeeper.ssl.keyStore.location={}", certificates.path("client.pem")))
        .arg("-Dzookeeper.ssl.keyStore.type=PEM")
        .arg(format!("-Dzookeeper.ssl.trustStore.location={}", certificates.path("ca.pem")))
        .arg("-Dzookeeper.ssl.trustStore.type=PEM")
        .args(["org.apache.zookeeper.ZooKeeperMain", "-server", &secure])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // zkCli splits ACLs at commas, so an x509 ACL naming a subject with
    // several parts is written with the auth scheme, which becomes it.
    let commands = "create /tlsnode data auth::cdrwa\ngetAcl /tlsnode\nget /tlsnode\nwhoami\ndelete /tlsnode\nquit\n";
    child.stdin.take().unwrap().write_all(commands.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let output = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let context = format!("{output}\n--- server log ---\n{}", server.stderr_tail());
    assert!(output.contains("Created /tlsnode"), "{context}");
    // zkCli prints the id with its commas escaped.
    let escaped = CLIENT_SUBJECT.replace(',', "%2C");
    assert!(output.contains(&format!("'x509,'{escaped}\n: cdrwa")), "{context}");
    assert!(output.lines().any(|line| line == "data"), "{context}");
    assert!(output.contains(&format!("x509: {CLIENT_SUBJECT}")), "{context}");
}

/// `secureClientPort` without `clientPort`: TLS clients only, as in
/// ZooKeeper; stdout's last line is the secure one.
#[test]
fn secure_port_alone() {
    let certificates = Certificates::make();
    let directory = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let mut text = format!(
        "admin.enableServer=false\n4lw.commands.whitelist=*\ndataDir={}\n",
        directory.path().join("data").display()
    );
    for line in certificates.server_lines(port, "need") {
        text.push_str(&line);
        text.push('\n');
    }
    let config = directory.path().join("zoo.cfg");
    std::fs::write(&config, text).unwrap();
    let mut server = Process::start(&mut zoocore(&["--config", config.to_str().unwrap()]), None);
    let secure = server.wait_for_line("zoocore secure listening on ", START_DEADLINE);
    let secure = secure.unwrap_or_else(|exited| panic!("zoocore exited ({}):\n{}", exited.status, exited.stderr));
    let address = format!("127.0.0.1:{port}");
    let answer = four_letter_over_tls(&address, client_config(&certificates, Some("client")), "ruok");
    server.kill();
    // Both lines are printed at once: the secure one is the first, and stdout shows no plain one.
    let stdout = server.stdout();
    assert_eq!(secure, address);
    assert_eq!(stdout.lines().next(), Some(format!("zoocore secure listening on {address}").as_str()), "{stdout}");
    assert!(!stdout.contains("zoocore listening on"), "{stdout}");
    assert_eq!(answer.unwrap(), "imok");
}

/// The x509 identity as ZooKeeper's X509AuthenticationProvider gives it:
/// the subject in RFC 2253 order, and `super` first for the super user.
#[test]
fn x509_identities_of_a_real_certificate() {
    use rustls::pki_types::pem::PemObject;
    use zoocore::auth::x509;
    let certificates = Certificates::make();
    let der = rustls::pki_types::CertificateDer::from_pem_file(certificates.path("client.crt")).unwrap();
    assert_eq!(x509::subject_name(&der).unwrap(), CLIENT_SUBJECT);
    let ids = x509::identities(&der, None).unwrap();
    assert_eq!(
        ids.iter().map(|id| (id.scheme.as_str(), id.id.as_str())).collect::<Vec<_>>(),
        [("x509", CLIENT_SUBJECT)]
    );
    let ids = x509::identities(&der, Some(CLIENT_SUBJECT)).unwrap();
    let schemes: Vec<&str> = ids.iter().map(|id| id.scheme.as_str()).collect();
    assert_eq!(schemes, ["super", "x509"]);
    assert!(x509::identities(&der[..der.len() / 2], None).is_err());
}

/// The certificate the server presents to a client trusting the test CA.
fn presented_certificate(address: &str, config: Arc<rustls::ClientConfig>) -> Option<Vec<u8>> {
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut connection = rustls::ClientConnection::new(config, name).ok()?;
    let mut socket = TcpStream::connect(address).ok()?;
    socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    while connection.is_handshaking() {
        connection.complete_io(&mut socket).ok()?;
    }
    connection.peer_certificates().and_then(|chain| chain.first()).map(|certificate| certificate.to_vec())
}

/// `client.certReload=true`: renewed stores are taken without a restart,
/// as ZooKeeper 3.8.1+ does; connections made before keep theirs.
#[test]
fn client_cert_reload_takes_renewed_stores() {
    use rustls::pki_types::pem::PemObject;
    let certificates = Certificates::make();
    let (server, secure) = tls_server(&certificates, "need", &["client.certReload=true"]);
    let der = |name: &str| rustls::pki_types::CertificateDer::from_pem_file(certificates.path(name)).unwrap().to_vec();
    let trusting_client = || client_config(&certificates, Some("client"));
    assert_eq!(presented_certificate(&secure, trusting_client()), Some(der("server.crt")));
    let rogue = four_letter_over_tls(&secure, client_config(&certificates, Some("rogue")), "ruok");
    assert!(unanswered(&rogue), "{rogue:?}");
    // Renew: a new server certificate, and a trust store that also holds
    // the other CA.
    let both_cas = format!(
        "{}{}",
        std::fs::read_to_string(certificates.path("ca.pem")).unwrap(),
        std::fs::read_to_string(certificates.path("rogue-ca.pem")).unwrap()
    );
    std::fs::write(certificates.path("ca.pem"), both_cas).unwrap();
    std::fs::copy(certificates.path("server2.pem"), certificates.path("server.pem")).unwrap();
    let reloaded = common::wait_for(Duration::from_secs(15), || {
        presented_certificate(&secure, trusting_client()) == Some(der("server2.crt"))
            && four_letter_over_tls(&secure, client_config(&certificates, Some("rogue")), "ruok").as_deref()
                == Ok("imok")
    });
    assert!(reloaded, "the renewed stores were not taken\n{}", server.stderr_tail());
    assert!(server.stderr_tail().contains("TLS stores reloaded"));
}

/// A subject with everything RFC 2253 escapes (`#`, `=`, `;`, quotes, a
/// comma in a value), a multi-valued RDN, and an attribute without an
/// RFC 2253 keyword (emailAddress, printed as its OID and DER in hex): the
/// x509 id must be the string ZooKeeper 3.8 gives the same certificate,
/// recorded here from `whoami` in zkCli over TLS against zkref.
#[test]
fn x509_id_of_an_unusual_subject_is_zookeepers() {
    use rustls::pki_types::pem::PemObject;
    const ZOOKEEPER_SAYS: &str =
        r#"DC=example,1.2.840.113549.1.9.1=#16057840792e7a,CN=a\#b \= c\; \"q\",O=Org+OU=Unit,ST=Some\, State,C=US"#;
    let certificates = Certificates::make();
    certs::make_leaf_with(
        certificates.directory.root(),
        "odd",
        r#"/C=US/ST=Some, State/O=Org+OU=Unit/CN=a#b = c; "q"/emailAddress=x@y.z/DC=example"#,
        "ca",
        Some(CLIENT_EXTENSIONS),
        "2",
        &["-multivalue-rdn"],
    );
    let der = rustls::pki_types::CertificateDer::from_pem_file(certificates.path("odd.crt")).unwrap();
    assert_eq!(zoocore::auth::x509::subject_name(&der).unwrap(), ZOOKEEPER_SAYS);
}

/// What a handshake negotiated: the protocol version and cipher suite.
fn negotiated(address: &str, config: Arc<rustls::ClientConfig>) -> Option<(String, String)> {
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut connection = rustls::ClientConnection::new(config, name).ok()?;
    let mut socket = TcpStream::connect(address).ok()?;
    socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    while connection.is_handshaking() {
        connection.complete_io(&mut socket).ok()?;
    }
    let protocol = format!("{:?}", connection.protocol_version()?);
    let suite = format!("{:?}", connection.negotiated_cipher_suite()?.suite());
    Some((protocol, suite))
}

/// `ssl.enabledProtocols` and `ssl.ciphersuites` bound what a handshake
/// may choose; by default TLSv1.3 is chosen.
#[test]
fn protocols_and_cipher_suites_are_the_configured_ones() {
    let certificates = Certificates::make();
    let (_server, secure) = tls_server(&certificates, "need", &[]);
    let (protocol, _) = negotiated(&secure, client_config(&certificates, Some("client"))).unwrap();
    assert_eq!(protocol, "TLSv1_3");
    let (_server, secure) = tls_server(
        &certificates,
        "need",
        &["ssl.enabledProtocols=TLSv1.2", "ssl.ciphersuites=TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"],
    );
    let (protocol, suite) = negotiated(&secure, client_config(&certificates, Some("client"))).unwrap();
    assert_eq!((protocol.as_str(), suite.as_str()), ("TLSv1_2", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"));
}
