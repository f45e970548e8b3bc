//! Authentication beyond `addauth`: SASL as a ZooKeeper server offers it.
//!
//! The decisions live in IO-free pieces: [`jaas`] reads the JAAS login
//! configuration a ZooKeeper operator already has, [`sasl`] runs the
//! DIGEST-MD5 exchange of opcode 102, and [`enforce`] says whether a
//! connection may go on under `enforce.auth.*`. The connection only routes
//! frames to them and sends what they answer; the identity an exchange
//! establishes (`sasl:<user>`) joins the connection's auth ids exactly as an
//! `addauth digest` identity does, so ACL checks need nothing new.

pub mod jaas;
pub mod sasl;
pub mod x509;

use std::collections::BTreeMap;

use base64::Engine;
use rand::RngCore;
use thiserror::Error;

use crate::proto::Id;

/// The login module ZooKeeper's DIGEST-MD5 users are listed under.
pub const DIGEST_LOGIN_MODULE: &str = "org.apache.zookeeper.server.auth.DigestLoginModule";
/// The option prefix of a DIGEST-MD5 user: `user_NAME="password"`.
pub const USER_OPTION_PREFIX: &str = "user_";

/// Why the JAAS `Server` section cannot serve DIGEST-MD5.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ServerSectionError {
    #[error("no JAAS configuration section named '{section}' was found")]
    MissingSection { section: String },
    #[error(
        "section '{section}' uses {class}: Kerberos (GSSAPI) is not supported by zoocore; only DIGEST-MD5 users (user_NAME=\"password\") are"
    )]
    Kerberos { section: String, class: String },
    #[error("section '{section}' lists no DIGEST-MD5 users (user_NAME=\"password\" options)")]
    NoUsers { section: String },
}

/// The DIGEST-MD5 users of section `section`, as ZooKeeper's
/// `SaslServerCallbackHandler` collects them: every `user_` option of every
/// module in the section (a later one replaces an earlier one).
pub fn server_credentials(file: &jaas::JaasFile, section: &str) -> Result<sasl::Credentials, ServerSectionError> {
    let Some(found) = file.section(section) else {
        return Err(ServerSectionError::MissingSection { section: section.to_string() });
    };
    if let Some(module) = found.modules.iter().find(|module| module.class.ends_with("Krb5LoginModule")) {
        return Err(ServerSectionError::Kerberos { section: section.to_string(), class: module.class.clone() });
    }
    let mut users = BTreeMap::new();
    for module in &found.modules {
        for (key, value) in &module.options {
            if let Some(user) = key.strip_prefix(USER_OPTION_PREFIX) {
                users.insert(user.to_string(), value.clone());
            }
        }
    }
    if users.is_empty() {
        return Err(ServerSectionError::NoUsers { section: section.to_string() });
    }
    Ok(sasl::Credentials::new(users))
}

/// A fresh DIGEST-MD5 nonce from the OS CSPRNG.
pub fn new_nonce() -> String {
    let mut bytes = [0u8; sasl::NONCE_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Whether a `sasl` ACL id is valid: ZooKeeper accepts any name that
/// parses as a Kerberos name (`primary[/instance][@REALM]`, or any name
/// without `@`).
pub fn is_valid_sasl_id(id: &str) -> bool {
    if !id.contains('@') {
        return true;
    }
    let (name, realm) = id.split_once('@').unwrap_or((id, ""));
    let part_ok = |part: &str| !part.is_empty() && !part.contains('/') && !part.contains('@');
    let name_ok = match name.split_once('/') {
        Some((primary, instance)) => part_ok(primary) && part_ok(instance),
        None => part_ok(name),
    };
    name_ok && part_ok(realm)
}

/// `enforce.auth.enabled` / `enforce.auth.schemes` (or
/// `sessionRequireClientSASLAuth`) decided: whether a connection holding
/// `auth` may send a request other than auth and sasl.
pub fn enforce(schemes: Option<&[String]>, auth: &[Id]) -> bool {
    match schemes {
        None => true,
        Some(schemes) => auth.iter().any(|id| schemes.contains(&id.scheme)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_from_the_server_section() {
        let file = jaas::parse(
            "Server { org.apache.zookeeper.server.auth.DigestLoginModule required user_a=\"1\" user_b=\"2\" other=x; };",
        )
        .unwrap();
        let credentials = server_credentials(&file, "Server").unwrap();
        assert_eq!(credentials.user_count(), 2);
        assert!(
            credentials.contains_user("a") && credentials.contains_user("b") && !credentials.contains_user("other")
        );
        assert_eq!(
            server_credentials(&file, "ZkServer"),
            Err(ServerSectionError::MissingSection { section: "ZkServer".into() })
        );
        let empty = jaas::parse("Server { M required; };").unwrap();
        assert_eq!(server_credentials(&empty, "Server"), Err(ServerSectionError::NoUsers { section: "Server".into() }));
        let kerberos =
            jaas::parse("Server { com.sun.security.auth.module.Krb5LoginModule required keyTab=\"/k\"; };").unwrap();
        assert!(matches!(server_credentials(&kerberos, "Server"), Err(ServerSectionError::Kerberos { .. })));
    }

    #[test]
    fn nonces_are_fresh_and_the_size_java_uses() {
        let (first, second) = (new_nonce(), new_nonce());
        assert_eq!(first.len(), 40);
        assert_ne!(first, second);
    }

    #[test]
    fn sasl_ids_follow_kerberos_names() {
        assert!(is_valid_sasl_id("jaasuser"));
        assert!(is_valid_sasl_id("client@KAZOOTEST.ORG"));
        assert!(is_valid_sasl_id("zookeeper/host.example@REALM"));
        assert!(!is_valid_sasl_id("a@b@c"));
        assert!(!is_valid_sasl_id("@REALM"));
        assert!(!is_valid_sasl_id("user@"));
    }

    #[test]
    fn enforcement_wants_one_of_the_schemes() {
        let ip = Id::new("ip", "127.0.0.1");
        let sasl = Id::new("sasl", "jaasuser");
        let schemes = vec!["sasl".to_string()];
        assert!(enforce(None, std::slice::from_ref(&ip)));
        assert!(!enforce(Some(&schemes), std::slice::from_ref(&ip)));
        assert!(enforce(Some(&schemes), &[sasl, ip]));
    }
}
