//! Test certificates made at test time with the openssl command line tool
//! in a temporary directory: a CA, and leaf certificates it (or another
//! CA) signs, each also written as a PEM key store (`NAME.pem`: the private
//! key, then the certificate), the form ZooKeeper's `*.keyStore.type=PEM`
//! reads. EC P-256 keys: fast to make on a loaded machine.

use std::path::Path;
use std::process::Command;

/// Subject alternative names and usages of a server certificate on
/// loopback: `IP:127.0.0.1` and `DNS:localhost`.
pub const SERVER_EXTENSIONS: &str =
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n";
/// A client certificate's usages.
pub const CLIENT_EXTENSIONS: &str = "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n";
/// A quorum peer's: it both accepts (server) and dials (client), on loopback.
pub const PEER_EXTENSIONS: &str =
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n";

/// The options of `openssl req` that make a fresh unencrypted P-256 key.
const NEW_EC_KEY: [&str; 5] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

/// Runs openssl in `directory`; panics with its stderr when it fails.
pub fn openssl(directory: &Path, arguments: &[&str]) {
    let output = Command::new("openssl")
        .args(arguments)
        .current_dir(directory)
        .output()
        .unwrap_or_else(|error| panic!("openssl is missing ({error}): run .ci/setup.sh first"));
    assert!(output.status.success(), "openssl {arguments:?} failed:\n{}", String::from_utf8_lossy(&output.stderr));
}

/// A self-signed CA: `NAME.key` and `NAME.pem`.
pub fn make_ca(directory: &Path, name: &str) {
    let (key, certificate, subject) =
        (format!("{name}.key"), format!("{name}.pem"), format!("/CN=zoocore test {name}"));
    let mut arguments = vec!["req", "-x509"];
    arguments.extend(NEW_EC_KEY);
    arguments.extend(["-keyout", &key, "-out", &certificate, "-days", "2", "-subj", &subject]);
    openssl(directory, &arguments);
}

/// A certificate for `subject` signed by the CA `ca`, valid for `days`
/// (0: already expired), with `extensions` (file contents; version 3
/// certificates, which webpki requires, need some): `NAME.key`,
/// `NAME.crt` and the PEM key store `NAME.pem`.
pub fn make_leaf(directory: &Path, name: &str, subject: &str, ca: &str, extensions: Option<&str>, days: &str) {
    make_leaf_with(directory, name, subject, ca, extensions, days, &[])
}

/// [`make_leaf`] with more `openssl req` options (`-multivalue-rdn`).
pub fn make_leaf_with(
    directory: &Path,
    name: &str,
    subject: &str,
    ca: &str,
    extensions: Option<&str>,
    days: &str,
    request_options: &[&str],
) {
    let run = |arguments: &[&str]| openssl(directory, arguments);
    let (key, request) = (format!("{name}.key"), format!("{name}.csr"));
    let mut arguments = vec!["req"];
    arguments.extend(NEW_EC_KEY);
    arguments.extend(["-keyout", &key, "-out", &request]);
    arguments.extend(request_options);
    arguments.extend(["-subj", subject]);
    run(&arguments);
    let mut arguments = vec![
        "x509".to_string(),
        "-req".into(),
        "-in".into(),
        format!("{name}.csr"),
        "-CA".into(),
        format!("{ca}.pem"),
        "-CAkey".into(),
        format!("{ca}.key"),
        "-CAcreateserial".into(),
        "-out".into(),
        format!("{name}.crt"),
        "-days".into(),
        days.into(),
    ];
    if let Some(extensions) = extensions {
        let file = format!("{name}.ext");
        std::fs::write(directory.join(&file), extensions).expect("write the extensions file");
        arguments.extend(["-extfile".into(), file]);
    }
    let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
    run(&arguments);
    let key = std::fs::read_to_string(directory.join(format!("{name}.key"))).expect("read the key");
    let certificate = std::fs::read_to_string(directory.join(format!("{name}.crt"))).expect("read the certificate");
    std::fs::write(directory.join(format!("{name}.pem")), format!("{key}{certificate}")).expect("write the key store");
}

/// `NAME.p12`: the PKCS12 key store of the leaf `NAME`, under `password`.
pub fn pkcs12(directory: &Path, name: &str, password: &str) {
    let (certificate, key, store) = (format!("{name}.crt"), format!("{name}.key"), format!("{name}.p12"));
    let password = format!("pass:{password}");
    openssl(
        directory,
        &["pkcs12", "-export", "-in", &certificate, "-inkey", &key, "-out", &store, "-passout", &password],
    );
}

/// Certificates made for one test, in a directory that lives as long as it.
pub struct CertificateDir {
    directory: tempfile::TempDir,
}

impl CertificateDir {
    pub fn new() -> CertificateDir {
        CertificateDir { directory: tempfile::tempdir().expect("a temporary directory") }
    }

    pub fn root(&self) -> &Path {
        self.directory.path()
    }

    /// A file's path in the directory, as text for zoo.cfg lines.
    pub fn path(&self, name: &str) -> String {
        self.directory.path().join(name).display().to_string()
    }
}

/// The zoo.cfg lines of a secure client port on `port` with the PEM key
/// store `server.pem` and trust store `ca.pem` of `directory`.
pub fn secure_port_lines(directory: &CertificateDir, port: u16, client_auth: &str) -> Vec<String> {
    vec![
        format!("secureClientPort={port}"),
        "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory".into(),
        format!("ssl.keyStore.location={}", directory.path("server.pem")),
        "ssl.keyStore.type=PEM".into(),
        format!("ssl.trustStore.location={}", directory.path("ca.pem")),
        "ssl.trustStore.type=PEM".into(),
        format!("ssl.clientAuth={client_auth}"),
        "maxClientCnxns=0".into(),
    ]
}
