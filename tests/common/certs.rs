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
    openssl(
        directory,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN=zoocore test {name}"),
        ],
    );
}

/// A certificate for `subject` signed by the CA `ca`, valid for `days`
/// (0: already expired), with `extensions` (file contents; version 3
/// certificates, which webpki requires, need some): `NAME.key`,
/// `NAME.crt` and the PEM key store `NAME.pem`.
pub fn make_leaf(directory: &Path, name: &str, subject: &str, ca: &str, extensions: Option<&str>, days: &str) {
    let run = |arguments: &[&str]| openssl(directory, arguments);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        &format!("{name}.key"),
        "-out",
        &format!("{name}.csr"),
        "-subj",
        subject,
    ]);
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
