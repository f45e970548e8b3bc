//! Kerberos (SASL GSSAPI) against the real binary, with a real MIT KDC.
//!
//! Each test makes its own realm, TEST.REALM, in a temporary directory
//! (Debian's krb5-kdc and krb5-admin-server tools: `kdb5_util create`,
//! `kadmin.local` for the principals and keytabs, `krb5kdc -n` on a free
//! loopback port, stopped by its PID), then starts zoocore with a JAAS
//! `Server` section naming the `zookeeper/localhost` keytab, as a ZooKeeper
//! operator writes it, and `KRB5_CONFIG` naming the realm's krb5.conf.
//! Clients are real: kazoo with pure-sasl's GSSAPI
//! (tests/interop/kazoo_gssapi.py, tickets from `kinit -kt`), Debian's Java
//! zkCli with a keytab in its JAAS `Client` section, and raw frames for a
//! malformed token. Every outcome here was checked against Apache ZooKeeper
//! 3.8 with the same realm (tests/interop/README.md tells how).

mod common;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::raw::{Conn, Enc};
use common::{wait_for, zoocore, Process, TestDir, LISTENING, START_DEADLINE};

const REALM: &str = "TEST.REALM";
const SERVICE: &str = "zookeeper/localhost";
const SASL_PROVIDER: &str = "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider";
/// How long the KDC may take to listen, and a client command to finish.
const KDC_DEADLINE: Duration = Duration::from_secs(20);
const CLIENT_DEADLINE: Duration = Duration::from_secs(60);

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tool(name: &str) -> PathBuf {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(|directory| Path::new(directory).join(name))
        .find(|path| path.exists())
        .unwrap_or_else(|| panic!("{name} is missing (Debian's MIT krb5 packages): run .ci/setup.sh first"))
}

/// A loopback port nothing listens on now (the KDC binds it right after).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A throwaway realm: its KDC, killed by its PID when dropped (before its
/// files are removed), and its files.
struct Realm {
    kdc: Option<Process>,
    directory: TestDir,
    krb5_conf: PathBuf,
    kdc_conf: PathBuf,
}

impl Realm {
    fn start() -> Realm {
        let directory = TestDir::new("kerberos");
        let root = directory.path().to_path_buf();
        let port = free_port();
        // TCP only (udp_preference_limit=1), no DNS, names taken as given:
        // the service is zookeeper/localhost whatever localhost resolves to.
        let krb5_conf = directory.write(
            "krb5.conf",
            &format!(
                "[libdefaults]\n  default_realm = {REALM}\n  dns_lookup_kdc = false\n  dns_lookup_realm = false\n  \
                 dns_canonicalize_hostname = false\n  rdns = false\n  udp_preference_limit = 1\n\
                 [realms]\n  {REALM} = {{\n    kdc = 127.0.0.1:{port}\n  }}\n"
            ),
        );
        let kdc_conf = directory.write(
            "kdc.conf",
            &format!(
                "[kdcdefaults]\n  kdc_listen = 127.0.0.1:{port}\n  kdc_tcp_listen = 127.0.0.1:{port}\n\
                 [realms]\n  {REALM} = {{\n    database_name = {root}/principal\n    key_stash_file = {root}/stash\n    \
                 acl_file = {root}/kadm5.acl\n  }}\n[logging]\n  kdc = FILE:{root}/kdc.log\n",
                root = root.display()
            ),
        );
        let mut realm = Realm { kdc: None, directory, krb5_conf, kdc_conf };
        realm.run(realm.command("kdb5_util").args(["create", "-s", "-P", "master-pw", "-r", REALM]));
        let kdc = Process::start(realm.command("krb5kdc").args(["-n", "-r", REALM]), None);
        let address = format!("127.0.0.1:{port}");
        assert!(
            wait_for(KDC_DEADLINE, || TcpStream::connect(&address).is_ok()),
            "the KDC did not listen on {address}: {}",
            kdc.stderr()
        );
        realm.kdc = Some(kdc);
        realm
    }

    fn path(&self, name: &str) -> PathBuf {
        self.directory.path().join(name)
    }

    /// A command of the krb5 tools, with this realm's files.
    fn command(&self, name: &str) -> Command {
        let mut command = Command::new(tool(name));
        self.environment(&mut command);
        command
    }

    fn environment(&self, command: &mut Command) {
        command
            .env("KRB5_CONFIG", &self.krb5_conf)
            .env("KRB5_KDC_PROFILE", &self.kdc_conf)
            .env("KRB5RCACHEDIR", self.directory.path())
            .env_remove("KRB5CCNAME")
            .env_remove("KRB5_KTNAME")
            .env_remove("KRB5_CLIENT_KTNAME");
    }

    fn run(&self, command: &mut Command) -> String {
        let output = Process::run(command, CLIENT_DEADLINE);
        assert!(output.status.success(), "{command:?} failed:\n{}\n{}", output.stdout, output.stderr);
        output.stdout
    }

    fn kadmin(&self, query: &str) {
        self.run(self.command("kadmin.local").args(["-r", REALM, "-q", query]));
    }

    /// Adds `principal` with a random key and writes its keytab.
    fn principal(&self, principal: &str) -> PathBuf {
        let key_tab = self.path(&format!("{}.keytab", principal.replace('/', "_")));
        self.kadmin(&format!("addprinc -randkey {principal}"));
        self.kadmin(&format!("ktadd -k {} {principal}", key_tab.display()));
        key_tab
    }

    /// Gets `principal` a ticket-granting ticket in a cache of its own.
    fn kinit(&self, principal: &str, key_tab: &Path) -> PathBuf {
        let cache = self.path(&format!("{}.ccache", principal.replace('/', "_")));
        self.run(
            self.command("kinit")
                .arg("-c")
                .arg(format!("FILE:{}", cache.display()))
                .arg("-kt")
                .arg(key_tab)
                .arg(principal),
        );
        cache
    }
}

fn server_jaas(key_tab: &Path, extra: &str) -> String {
    format!(
        "Server {{\n  com.sun.security.auth.module.Krb5LoginModule required\n  useKeyTab=true\n  keyTab=\"{}\"\n  \
         storeKey=true\n  useTicketCache=false\n  principal=\"{SERVICE}@{REALM}\";\n{extra}}};\n",
        key_tab.display()
    )
}

/// zoocore with this JAAS text and these JVM flags; the address it listens
/// on, or how it exited.
fn start_zoocore(realm: &Realm, jaas: &str, flags: &str) -> Result<(Process, String), common::Exited> {
    static STARTS: AtomicUsize = AtomicUsize::new(0);
    let tag = STARTS.fetch_add(1, Ordering::Relaxed);
    let jaas = realm.directory.write(&format!("jaas-{tag}.conf"), jaas);
    let data = realm.path(&format!("data-{tag}"));
    let config = realm.directory.write(
        &format!("zoo-{tag}.cfg"),
        &format!("clientPort=0\nadmin.enableServer=false\ndataDir={}\n{SASL_PROVIDER}\n", data.display()),
    );
    let mut command = zoocore(&["--config", config.to_str().unwrap()]);
    realm.environment(&mut command);
    command.env("SERVER_JVMFLAGS", format!("-Djava.security.auth.login.config={} {flags}", jaas.display()));
    let mut server = Process::start(&mut command, None);
    let address = server.wait_for_line(LISTENING, START_DEADLINE)?;
    Ok((server, address))
}

fn kerberos_server(realm: &Realm, flags: &str) -> (Process, String) {
    let key_tab = realm.path("zookeeper_localhost.keytab");
    start_zoocore(realm, &server_jaas(&key_tab, ""), flags)
        .unwrap_or_else(|exited| panic!("the server did not start ({}):\n{}", exited.status, exited.stderr))
}

/// `localhost:PORT`: pure-sasl names the service after the host it dials.
fn localhost(address: &str) -> String {
    format!("localhost:{}", address.rsplit_once(':').unwrap().1)
}

/// Runs tests/interop/kazoo_gssapi.py with `cache` as the ticket cache.
fn kazoo(realm: &Realm, cache: &Path, server: &Process, arguments: &[&str]) {
    let python = std::env::var_os("ZOOCORE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repository().join(".venv"))
        .join("bin/python");
    assert!(python.exists(), "{} is missing: run .ci/setup.sh first", python.display());
    let mut command = Command::new(python);
    realm.environment(&mut command);
    command
        .env("KRB5CCNAME", format!("FILE:{}", cache.display()))
        .args(["-W", "ignore"])
        .arg(repository().join("tests/interop/kazoo_gssapi.py"))
        .args(arguments);
    let output = Process::run(&mut command, CLIENT_DEADLINE);
    let passed = output.stdout.lines().filter(|line| line.starts_with("ok ")).count();
    assert!(
        output.status.success() && passed == 1,
        "kazoo {arguments:?}:\n{}\n--- stderr ---\n{}\n--- server log ---\n{}",
        output.stdout,
        output.stderr,
        server.stderr()
    );
}

/// kazoo authenticates with GSSAPI; by default the `sasl` id is the whole
/// principal (`client@TEST.REALM`, `zkcli/localhost@TEST.REALM`), and ACLs
/// grant it and deny others.
#[test]
fn kazoo_authenticates_and_acls_see_the_whole_principal() {
    let realm = Realm::start();
    realm.principal(SERVICE);
    let client = realm.principal("client");
    let host_client = realm.principal("zkcli/localhost");
    let (server, address) = kerberos_server(&realm, "");
    let hosts = localhost(&address);
    let cache = realm.kinit("client", &client);
    kazoo(
        &realm,
        &cache,
        &server,
        &["--hosts", &hosts, "--principal", "client@TEST.REALM", "--id", "client@TEST.REALM"],
    );
    let cache = realm.kinit("zkcli/localhost", &host_client);
    let id = "zkcli/localhost@TEST.REALM";
    kazoo(&realm, &cache, &server, &["--hosts", &hosts, "--principal", id, "--id", id]);
    let log = server.stderr();
    assert!(log.contains("SASL GSSAPI (Kerberos) enabled"), "{log}");
    assert!(log.contains("adding SASL authorization for authorizationID: zkcli/localhost@TEST.REALM"), "{log}");
}

/// `zookeeper.kerberos.removeHostFromPrincipal` and
/// `removeRealmFromPrincipal` shorten the id, and `zookeeper.superUser`
/// names the shortened one.
#[test]
fn principals_are_shortened_as_configured_and_the_super_user_is_the_short_name() {
    let realm = Realm::start();
    realm.principal(SERVICE);
    let client = realm.principal("client");
    let host_client = realm.principal("zkcli/localhost");
    let (server, address) = kerberos_server(
        &realm,
        "-Dzookeeper.kerberos.removeHostFromPrincipal=true -Dzookeeper.kerberos.removeRealmFromPrincipal=true \
         -Dzookeeper.superUser=zkcli",
    );
    let hosts = localhost(&address);
    let cache = realm.kinit("zkcli/localhost", &host_client);
    kazoo(
        &realm,
        &cache,
        &server,
        &["--hosts", &hosts, "--principal", "zkcli/localhost@TEST.REALM", "--id", "zkcli", "--super"],
    );
    let cache = realm.kinit("client", &client);
    kazoo(&realm, &cache, &server, &["--hosts", &hosts, "--principal", "client@TEST.REALM", "--id", "client"]);
}

/// A service ticket the server's keytab cannot decrypt (the service was
/// re-keyed after the keytab was written) fails the exchange: AuthFailed
/// and a closed connection, as ZooKeeper answers it.
#[test]
fn a_ticket_the_keytab_cannot_read_fails_the_authentication() {
    let realm = Realm::start();
    realm.principal(SERVICE);
    let client = realm.principal("client");
    let (server, address) = kerberos_server(&realm, "");
    realm.kadmin(&format!("cpw -randkey {SERVICE}"));
    let cache = realm.kinit("client", &client);
    kazoo(&realm, &cache, &server, &["--hosts", &localhost(&address), "--principal", "client@TEST.REALM", "--fail"]);
    assert!(server.stderr().contains("client failed to SASL authenticate"), "{}", server.stderr());
}

/// A malformed GSSAPI token, and an empty first token when only Kerberos
/// is configured: AuthFailed with a null token, then the server closes the
/// connection (ZooKeeper 3.8 answers both so).
#[test]
fn a_malformed_token_answers_auth_failed_and_closes_the_connection() {
    let realm = Realm::start();
    realm.principal(SERVICE);
    let (server, address) = kerberos_server(&realm, "");
    for token in [&b"\x60\x01\x02\x03"[..], b"", b"not a token at all"] {
        let mut connection = Conn::connect(&address);
        connection.set_read_timeout(Duration::from_secs(10));
        connection.send_xid(1, 102, &Enc::new().buf(token).bytes()).unwrap();
        let reply = connection.read_reply().unwrap();
        assert_eq!((reply.xid, reply.zxid, reply.err), (1, 0, -115), "{token:?}");
        assert_eq!(reply.dec().buf(), None, "{token:?}");
        assert!(connection.read_any().is_err(), "the connection stays open after {token:?}");
    }
    assert!(server.stderr().contains("GSS-API context establishment failed"), "{}", server.stderr());
}

/// A keytab that is missing, or that lacks the principal, stops the start
/// with exit status 2 and a message naming the JAAS file and the option.
#[test]
fn keytab_and_principal_errors_stop_the_start() {
    let realm = Realm::start();
    let service_key_tab = realm.principal(SERVICE);
    let client_key_tab = realm.principal("client");
    let missing = realm.path("missing.keytab");
    for (key_tab, expected) in [
        (missing.as_path(), format!("keyTab {}", missing.display())),
        (client_key_tab.as_path(), format!("principal \"{SERVICE}@{REALM}\" has no usable key in keyTab")),
    ] {
        let exited = match start_zoocore(&realm, &server_jaas(key_tab, ""), "") {
            Ok((_, address)) => panic!("the server started on {address} with keyTab {}", key_tab.display()),
            Err(exited) => exited,
        };
        assert_eq!(exited.status.code(), Some(2), "{}", exited.stderr);
        assert!(exited.stderr.contains(&expected), "{}", exited.stderr);
        assert!(exited.stderr.contains("java.security.auth.login.config"), "{}", exited.stderr);
        assert!(exited.stderr.contains("Krb5LoginModule"), "{}", exited.stderr);
        assert!(!exited.stderr.contains("panicked"), "{}", exited.stderr);
    }
    let no_principal = server_jaas(&service_key_tab, "").replace(&format!("principal=\"{SERVICE}@{REALM}\""), "");
    let exited = start_zoocore(&realm, &no_principal, "").err().expect("a start without principal");
    assert_eq!(exited.status.code(), Some(2), "{}", exited.stderr);
    assert!(exited.stderr.contains("no principal="), "{}", exited.stderr);
    let bad_rules =
        start_zoocore(&realm, &server_jaas(&service_key_tab, ""), "-Dzookeeper.security.auth_to_local=RULE:[1:$1]")
            .err()
            .expect("a start with auth_to_local rules");
    assert_eq!(bad_rules.status.code(), Some(2), "{}", bad_rules.stderr);
    assert!(bad_rules.stderr.contains("zookeeper.security.auth_to_local"), "{}", bad_rules.stderr);
}

/// One section with both a Krb5LoginModule and DIGEST-MD5 users: kazoo's
/// DIGEST-MD5 suite passes beside a GSSAPI client.
#[test]
fn digest_users_work_beside_kerberos_in_one_section() {
    let realm = Realm::start();
    let service_key_tab = realm.principal(SERVICE);
    let client = realm.principal("client");
    let digest = "  org.apache.zookeeper.server.auth.DigestLoginModule required\n  user_super=\"super_secret\"\n  \
                  user_jaasuser=\"jaas_password\";\n";
    let (server, address) = start_zoocore(&realm, &server_jaas(&service_key_tab, digest), "")
        .unwrap_or_else(|exited| panic!("the server did not start:\n{}", exited.stderr));
    let cache = realm.kinit("client", &client);
    let hosts = localhost(&address);
    kazoo(
        &realm,
        &cache,
        &server,
        &["--hosts", &hosts, "--principal", "client@TEST.REALM", "--id", "client@TEST.REALM"],
    );
    let python = std::env::var_os("ZOOCORE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repository().join(".venv"))
        .join("bin/python");
    let mut command = Command::new(python);
    command.args(["-W", "ignore"]).arg(repository().join("tests/interop/kazoo_sasl.py")).args(["--hosts", &address]);
    let output = Process::run(&mut command, CLIENT_DEADLINE);
    let passed = output.stdout.lines().filter(|line| line.starts_with("ok ")).count();
    assert!(output.status.success() && passed == 5, "{}\n{}\n{}", output.stdout, output.stderr, server.stderr());
}

/// Debian's Java zkCli with a keytab in its JAAS `Client` section: it gets
/// SaslAuthenticated, `whoami` shows the mapped id, and a sasl ACL for it
/// works.
#[test]
fn zkcli_with_a_kerberos_jaas_client_section() {
    assert!(
        Path::new("/usr/share/java/zookeeper.jar").exists(),
        "Debian's zookeeper package is missing: run .ci/setup.sh first"
    );
    let realm = Realm::start();
    realm.principal(SERVICE);
    let client = realm.principal("client");
    let (server, address) = kerberos_server(&realm, "-Dzookeeper.kerberos.removeRealmFromPrincipal=true");
    let client_jaas = realm.directory.write(
        "client-jaas.conf",
        &format!(
            "Client {{\n  com.sun.security.auth.module.Krb5LoginModule required\n  useKeyTab=true\n  keyTab=\"{}\"\n  \
             storeKey=true\n  useTicketCache=false\n  principal=\"client@{REALM}\";\n}};\n",
            client.display()
        ),
    );
    let mut command = Command::new(std::env::var("JAVA").unwrap_or_else(|_| "java".into()));
    realm.environment(&mut command);
    let mut child = command
        .arg("-cp")
        .arg("/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-nop.jar")
        .arg(format!("-Djava.security.auth.login.config={}", client_jaas.display()))
        .arg(format!("-Djava.security.krb5.conf={}", realm.krb5_conf.display()))
        .args(["org.apache.zookeeper.ZooKeeperMain", "-server", &localhost(&address)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"create /krb data sasl:client:cdrwa\ngetAcl /krb\nget /krb\nwhoami\ndelete /krb\nquit\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let output = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.contains("state:SaslAuthenticated"), "{output}\n{}", server.stderr());
    assert!(output.contains("Created /krb"), "{output}");
    assert!(output.contains("'sasl,'client\n: cdrwa"), "{output}");
    assert!(output.lines().any(|line| line == "data"), "{output}");
    assert!(output.contains("sasl: client"), "{output}");
}
