//! Quorum TLS (`sslQuorum=true`, `ssl.quorum.*`) against real ensembles of
//! the zoocore binary on loopback, configured as a ZooKeeper operator
//! configures it: every member has its own certificate from the
//! ensemble's CA (made at test time with openssl, tests/common/certs.rs)
//! and trusts that CA.
//!
//! What is checked: an ensemble over TLS elects and replicates; a member
//! whose certificate comes from another CA, or names another host, is kept
//! out while the others serve, and the logs name the reason; a plain-text
//! peer on a TLS quorum port is refused with a logged reason; the quorum's
//! `portUnification` lets TLS and plain members meet during a rolling
//! change; bad settings stop the start with exit status 2 naming the key
//! and the file. Every wait polls with a deadline; nothing asserts on time.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use common::certs::{self, CertificateDir, PEER_EXTENSIONS};
use common::*;
use zoocore::server::peer::wire::{Answer, Hello, Verdict, ANSWER_BYTES};

const ELECTION_DEADLINE: Duration = Duration::from_secs(20);
/// How long a log line may take to appear.
const LOG_DEADLINE: Duration = Duration::from_secs(10);

/// The PKCS12 store's password: distinctive, so a leak is found.
const P12_PASSWORD: &str = "quorum-P12-pass-4417";

/// The ensemble's CA and one certificate per member (`peer1`..`peer3`);
/// `rogue`, a peer certificate from another CA; `elsewhere`, one from the
/// ensemble's CA that names 127.0.0.2 only; `peer1.p12`, peer1's as PKCS12.
fn make_certificates() -> CertificateDir {
    let certificates = CertificateDir::new();
    let path = certificates.root();
    certs::make_ca(path, "ca");
    certs::make_ca(path, "rogue-ca");
    for id in 1..=3 {
        certs::make_leaf(path, &format!("peer{id}"), &format!("/CN=server{id}"), "ca", Some(PEER_EXTENSIONS), "2");
    }
    certs::make_leaf(path, "rogue", "/CN=rogue", "rogue-ca", Some(PEER_EXTENSIONS), "2");
    let elsewhere = "subjectAltName=IP:127.0.0.2\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n";
    certs::make_leaf(path, "elsewhere", "/CN=elsewhere", "ca", Some(elsewhere), "2");
    certs::pkcs12(path, "peer1", P12_PASSWORD);
    certificates
}

/// The lines every member shares: TLS on, the ensemble's CA trusted.
fn common_lines(certificates: &CertificateDir) -> Vec<String> {
    vec!["sslQuorum=true".into(), format!("ssl.quorum.trustStore.location={}", certificates.path("ca.pem"))]
}

/// A member's own key store.
fn key_store(certificates: &CertificateDir, name: &str) -> Vec<String> {
    vec![format!("ssl.quorum.keyStore.location={}", certificates.path(&format!("{name}.pem")))]
}

/// Three voters over quorum TLS; the member at index `odd` (if any) uses
/// the key store `odd_store` instead of its own, and every member gets
/// `extra` lines.
fn tls_cluster(certificates: &CertificateDir, odd: Option<(usize, &str)>, extra: &[&str]) -> Cluster {
    let mut lines = common_lines(certificates);
    lines.extend(extra.iter().map(|line| line.to_string()));
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let member_lines = |index: usize| match odd {
        Some((odd_index, store)) if odd_index == index => key_store(certificates, store),
        _ => key_store(certificates, &format!("peer{}", index + 1)),
    };
    Cluster::start_laid_out(3, 0, &lines, &Layout { member_lines: Some(&member_lines), ..Layout::default() })
}

/// The whole stderr log of a member.
fn log(server: &Server) -> String {
    std::fs::read_to_string(server.dir().unwrap().join("zoocore.stderr.log")).unwrap_or_default()
}

/// Asserts that the member's log comes to hold every one of `texts`.
fn assert_logged(server: &Server, texts: &[&str]) {
    let logged = wait_for(LOG_DEADLINE, || {
        let log = log(server);
        texts.iter().all(|text| log.contains(text))
    });
    assert!(logged, "{texts:?} not in the log\n{}", server.stderr_tail());
}

/// Waits until, among the members at `indexes`, one leads and the others
/// follow; returns the leader's index.
fn wait_for_leader_among(cluster: &Cluster, indexes: &[usize]) -> usize {
    let mut modes = Vec::new();
    wait_for_some(ELECTION_DEADLINE, || {
        modes = cluster.modes();
        let leaders: Vec<usize> = indexes.iter().copied().filter(|index| modes[*index] == "leader").collect();
        let followers = indexes.iter().filter(|index| modes[**index] == "follower").count();
        (leaders.len() == 1 && followers == indexes.len() - 1).then(|| leaders[0])
    })
    .unwrap_or_else(|| {
        let tails: Vec<String> = cluster.servers.iter().map(|server| server.stderr_tail()).collect();
        panic!("no leader among {indexes:?} within {ELECTION_DEADLINE:?}: {modes:?}\n{}", tails.join("\n"))
    })
}

/// Writes on the member at `writer` and reads the value back on `reader`
/// after a sync: the write went through the leader and was replicated.
async fn write_and_read_elsewhere(cluster: &Cluster, writer: usize, reader: usize) {
    let path = unique("qtls");
    let value = format!("written on {writer}");
    let client = connect(cluster.servers[writer].addr()).await;
    client.create(&path, value.as_bytes(), &persistent()).await.expect("create");
    let other = connect(cluster.servers[reader].addr()).await;
    other.sync(&path).await.expect("sync");
    let (data, _) = other.get_data(&path).await.expect("read on another member");
    assert_eq!(data, value.as_bytes());
}

/// A member's quorum port and its ensemble identity, from its zoo.cfg.
fn quorum_port_and_identity(server: &Server, id: u64) -> (u16, u64) {
    let config = zoocore::config::Config::from_file(server.dir().unwrap().join("zoo.cfg")).unwrap();
    let port = config.servers[&id].quorum_port;
    let ensemble = zoocore::ensemble::Ensemble::from_config(&config).unwrap().unwrap();
    (port, ensemble.identity)
}

/// Dials a member's quorum port in plain text with a correct hello from
/// `sender`; returns its answer, or None when it closed without one.
fn plain_hello(port: u16, sender: u64, receiver: u64, identity: u64) -> Option<Answer> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(LOG_DEADLINE)).unwrap();
    stream.write_all(&Hello { sender, receiver, identity }.encode()).unwrap();
    let mut bytes = [0u8; ANSWER_BYTES];
    match stream.read_exact(&mut bytes) {
        Ok(()) => Some(Answer::decode(&bytes).expect("an answer, if any, decodes")),
        Err(error) => {
            // Closed (end of stream, reset, perhaps after a TLS alert), not timed out.
            assert!(!matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut), "{error}");
            None
        }
    }
}

#[tokio::test]
async fn three_servers_over_quorum_tls_elect_a_leader_and_replicate() {
    let certificates = make_certificates();
    let cluster = tls_cluster(&certificates, None, &[]);
    let leader = cluster.wait_for_leader(ELECTION_DEADLINE);
    for server in &cluster.servers {
        assert_logged(server, &["peer transport listening", "tls=\"sslQuorum\""]);
    }
    // A write on a follower (forwarded to the leader over TLS), read on
    // the other follower; then one on the leader read on a follower.
    let (first, second) = ((leader + 1) % 3, (leader + 2) % 3);
    write_and_read_elsewhere(&cluster, first, second).await;
    write_and_read_elsewhere(&cluster, leader, first).await;
}

/// Starts three members, the third with the key store `store`, and checks
/// that the first two elect and serve while the third stays out.
async fn kept_out(certificates: &CertificateDir, store: &str) -> Cluster {
    let cluster = tls_cluster(certificates, Some((2, store)), &[]);
    let leader = wait_for_leader_among(&cluster, &[0, 1]);
    write_and_read_elsewhere(&cluster, leader, 1 - leader).await;
    let modes = cluster.modes();
    assert!(!matches!(modes[2].as_str(), "leader" | "follower"), "the member with {store} joined: {modes:?}");
    cluster
}

#[tokio::test]
async fn a_server_with_a_certificate_from_another_ca_cannot_join() {
    let certificates = make_certificates();
    // Member 3 trusts the ensemble's CA (its certificate is public) but
    // holds no key it signed.
    let cluster = kept_out(&certificates, "rogue").await;
    // The members it dials refuse its certificate and say why...
    for server in &cluster.servers[..2] {
        assert_logged(server, &["peer connection refused", "TLS handshake failed", "UnknownIssuer"]);
    }
    // ...and its own log names the refusal: under TLS 1.3 its handshake
    // ends before the acceptor has checked its certificate, whose verdict
    // comes as an alert in place of the hello's answer.
    assert_logged(&cluster.servers[2], &["cannot link to peer", "received fatal alert: UnknownCA"]);
}

#[tokio::test]
async fn a_certificate_naming_another_host_is_refused_unless_hostname_verification_is_off() {
    let certificates = make_certificates();
    let cluster = kept_out(&certificates, "elsewhere").await;
    // Dialled, member 3's certificate does not name its server line's
    // 127.0.0.1; dialling, it claims id 3 with a certificate for another host.
    assert_logged(
        &cluster.servers[0],
        &["cannot link to peer", "failed (sslQuorum)", "certificate not valid for name"],
    );
    assert_logged(&cluster.servers[0], &["peer connection refused", "server.3 is 127.0.0.1", "not valid for name"]);
    assert_logged(&cluster.servers[2], &["refused by server", "ssl.quorum.hostnameVerification"]);
    drop(cluster);
    // The same certificates with verification off: any certificate from the CA will do.
    let cluster = tls_cluster(&certificates, Some((2, "elsewhere")), &["ssl.quorum.hostnameVerification=false"]);
    let leader = cluster.wait_for_leader(ELECTION_DEADLINE);
    write_and_read_elsewhere(&cluster, (leader + 1) % 3, (leader + 2) % 3).await;
}

#[tokio::test]
async fn a_plain_text_peer_on_a_tls_quorum_port_is_refused_and_the_ensemble_serves_on() {
    let certificates = make_certificates();
    let cluster = tls_cluster(&certificates, None, &[]);
    cluster.wait_for_leader(ELECTION_DEADLINE);
    // A hello that plain links would accept (right ids and ensemble).
    let (port, identity) = quorum_port_and_identity(&cluster.servers[0], 1);
    assert_eq!(plain_hello(port, 2, 1, identity), None, "a plain peer got an answer on a TLS quorum port");
    assert_logged(&cluster.servers[0], &["peer connection refused", "TLS handshake failed"]);
    let leader = cluster.wait_for_leader(ELECTION_DEADLINE);
    write_and_read_elsewhere(&cluster, (leader + 1) % 3, leader).await;
}

#[tokio::test]
async fn port_unification_lets_tls_and_plain_members_meet_during_a_rolling_change() {
    let certificates = make_certificates();
    // Members 1 and 2 already dial TLS; member 3 still dials plain. All
    // three accept both, as in the middle of ZooKeeper's rolling upgrade.
    let lines =
        [format!("ssl.quorum.trustStore.location={}", certificates.path("ca.pem")), "portUnification=true".into()];
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let member_lines = |index: usize| {
        let mut member = key_store(&certificates, &format!("peer{}", index + 1));
        member.push(format!("sslQuorum={}", index < 2));
        member
    };
    let cluster =
        Cluster::start_laid_out(3, 0, &lines, &Layout { member_lines: Some(&member_lines), ..Layout::default() });
    let leader = cluster.wait_for_leader(ELECTION_DEADLINE);
    write_and_read_elsewhere(&cluster, 2, leader).await;
    write_and_read_elsewhere(&cluster, leader, 2).await;
    // A plain hello is answered on a unified port.
    let (port, identity) = quorum_port_and_identity(&cluster.servers[0], 1);
    let answer = plain_hello(port, 2, 1, identity).expect("an answer on a unified port");
    assert_eq!(answer.verdict, Verdict::Accepted);
}

#[test]
fn bad_quorum_tls_settings_stop_the_start_with_exit_status_2() {
    let certificates = make_certificates();
    let directory = TestDir::new("quorum-tls-config");
    std::fs::create_dir_all(directory.path().join("data")).unwrap();
    std::fs::write(directory.path().join("data/myid"), "1\n").unwrap();
    let run = |lines: &[String]| {
        let mut text = format!(
            "tickTime=200\ndataDir={}\nclientPort=0\nserver.1=127.0.0.1:{}:{}\nserver.2=127.0.0.1:{}:{}\nserver.3=127.0.0.1:{}:{}\n",
            directory.path().join("data").display(),
            free_port(),
            free_port(),
            free_port(),
            free_port(),
            free_port(),
            free_port()
        );
        for line in lines {
            text.push_str(line);
            text.push('\n');
        }
        let config = directory.write("zoo.cfg", &text);
        let output = Process::run(&mut zoocore(&["--config", config.to_str().unwrap()]), START_DEADLINE);
        assert_eq!(output.status.code(), Some(2), "{lines:?}: {output:?}");
        output.stderr
    };
    let trust = format!("ssl.quorum.trustStore.location={}", certificates.path("ca.pem"));
    let on = "sslQuorum=true".to_string();
    let error = run(std::slice::from_ref(&on));
    assert!(error.contains("ssl.quorum.keyStore.location"), "{error}");
    let error = run(&[on.clone(), key_store(&certificates, "peer1")[0].clone()]);
    assert!(error.contains("ssl.quorum.trustStore.location"), "{error}");
    let missing = certificates.path("missing.pem");
    let error = run(&[on.clone(), format!("ssl.quorum.keyStore.location={missing}"), trust.clone()]);
    assert!(error.contains("ssl.quorum.keyStore.location") && error.contains(&missing), "{error}");
    let p12 = certificates.path("peer1.p12");
    let error = run(&[
        on.clone(),
        format!("ssl.quorum.keyStore.location={p12}"),
        "ssl.quorum.keyStore.password=wrong-Password-90".into(),
        trust.clone(),
    ]);
    assert!(error.contains("ssl.quorum.keyStore") && error.contains(&p12), "{error}");
    assert!(!error.contains("wrong-Password-90"), "a password reached the output: {error}");
    let error =
        run(&[on.clone(), key_store(&certificates, "peer1")[0].clone(), trust.clone(), "sslQuorum=maybe".into()]);
    assert!(error.contains("sslQuorum") && error.contains("maybe"), "{error}");
    // The right password loads (the start then goes on, so it is only
    // checked here through the library).
    let config = zoocore::config::Config::parse(&format!(
        "sslQuorum=true\nssl.quorum.keyStore.location={p12}\nssl.quorum.keyStore.password={P12_PASSWORD}\n{trust}"
    ))
    .unwrap();
    zoocore::tls::quorum::load(config.quorum_tls.as_ref().unwrap()).expect("the PKCS12 key store loads");
    assert!(Path::new(&p12).exists());
}
