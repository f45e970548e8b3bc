//! Authentication beyond `addauth`: SASL as a ZooKeeper server offers it.
//!
//! The decisions live in IO-free pieces: [`jaas`] reads the JAAS login
//! configuration a ZooKeeper operator already has, [`sasl`] runs the
//! DIGEST-MD5 exchange of opcode 102, [`gssapi`] the Kerberos one (over
//! [`krb5`], the system's GSS-API: the one piece here that does IO), and
//! [`enforce`] says whether a
//! connection may go on under `enforce.auth.*`. The connection only routes
//! frames to them and sends what they answer; the identity an exchange
//! establishes (`sasl:<user>`) joins the connection's auth ids exactly as an
//! `addauth digest` identity does, so ACL checks need nothing new.

pub mod gssapi;
pub mod jaas;
pub mod krb5;
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

/// Why the JAAS `Server` section cannot serve SASL.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ServerSectionError {
    #[error("no JAAS configuration section named '{section}' was found")]
    MissingSection { section: String },
    #[error(
        "section '{section}' lists neither DIGEST-MD5 users (user_NAME=\"password\" options) nor a {} with a keytab",
        gssapi::KRB5_LOGIN_MODULE
    )]
    NoMechanism { section: String },
    #[error("section '{section}': {error}")]
    Kerberos { section: String, error: gssapi::LoginOptionError },
}

/// What the server section offers: DIGEST-MD5 users, a Kerberos service
/// login, or both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLogin {
    pub digest: Option<sasl::Credentials>,
    pub kerberos: Option<gssapi::KerberosLogin>,
}

/// The mechanisms of section `section`, as ZooKeeper's server reads it: the
/// DIGEST-MD5 users are every `user_` option of every module (a later one
/// replaces an earlier one, as `SaslServerCallbackHandler` collects them),
/// and a `Krb5LoginModule` entry gives the Kerberos service principal (the
/// first one, the principal ZooKeeper's login subject offers).
pub fn server_login(file: &jaas::JaasFile, section: &str) -> Result<ServerLogin, ServerSectionError> {
    let Some(found) = file.section(section) else {
        return Err(ServerSectionError::MissingSection { section: section.to_string() });
    };
    let kerberos = found
        .modules
        .iter()
        .find(|module| module.class == gssapi::KRB5_LOGIN_MODULE || module.class.ends_with(".Krb5LoginModule"))
        .map(gssapi::kerberos_login)
        .transpose()
        .map_err(|error| ServerSectionError::Kerberos { section: section.to_string(), error })?;
    let mut users = BTreeMap::new();
    for module in &found.modules {
        for (key, value) in &module.options {
            if let Some(user) = key.strip_prefix(USER_OPTION_PREFIX) {
                users.insert(user.to_string(), value.clone());
            }
        }
    }
    let digest = (!users.is_empty()).then(|| sasl::Credentials::new(users));
    if digest.is_none() && kerberos.is_none() {
        return Err(ServerSectionError::NoMechanism { section: section.to_string() });
    }
    Ok(ServerLogin { digest, kerberos })
}

/// Why a SASL exchange failed; ZooKeeper answers all alike, the kinds are
/// for the log.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SaslFailure {
    #[error("SASL is not configured: no JAAS Server section (java.security.auth.login.config)")]
    NotConfigured,
    #[error(transparent)]
    Digest(#[from] sasl::SaslError),
    #[error("GSSAPI: {0}")]
    Gssapi(#[from] gssapi::GssapiError),
}

/// What the server sends back for one sasl packet.
#[derive(Debug, PartialEq, Eq)]
pub enum SaslStep {
    /// Another round: send this token.
    Continue(Vec<u8>),
    /// Authenticated: send `token` (null for GSSAPI, `rspauth=` for
    /// DIGEST-MD5) and add `sasl:<authorization_id>`. `principal` is the
    /// Kerberos principal it was mapped from, for the log.
    Complete { token: Option<Vec<u8>>, authorization_id: String, principal: Option<String> },
}

/// The mechanisms a server offers, borrowed from its configuration.
#[derive(Debug, Clone, Copy)]
pub struct Mechanisms<'a> {
    pub digest: Option<&'a sasl::Credentials>,
    pub kerberos: Option<&'a krb5::Acceptor>,
    pub mapping: &'a gssapi::PrincipalMapping,
}

/// One connection's SASL exchange, in the mechanism its first token asks
/// for. ZooKeeper's protocol names no mechanism: a ZooKeeper server runs
/// GSSAPI when its login has a Kerberos principal and DIGEST-MD5 otherwise.
/// Serving both from one section, the first token tells them apart: a
/// DIGEST-MD5 client opens with an empty token, a GSSAPI client with its
/// context token.
#[derive(Debug)]
pub enum SaslExchange {
    Digest(sasl::DigestMd5Server),
    Gssapi(gssapi::GssapiServer<krb5::Context>),
}

impl SaslExchange {
    /// The exchange for a connection whose first sasl token is `token`.
    pub fn start(token: &[u8], mechanisms: Mechanisms<'_>) -> Result<SaslExchange, SaslFailure> {
        match (mechanisms.kerberos, mechanisms.digest) {
            (Some(_), Some(_)) if token.is_empty() => Ok(SaslExchange::Digest(sasl::DigestMd5Server::new(new_nonce()))),
            (Some(acceptor), _) => Ok(SaslExchange::Gssapi(gssapi::GssapiServer::new(acceptor.context()))),
            (None, Some(_)) => Ok(SaslExchange::Digest(sasl::DigestMd5Server::new(new_nonce()))),
            (None, None) => Err(SaslFailure::NotConfigured),
        }
    }

    /// Feeds one client token.
    pub fn step(&mut self, token: &[u8], mechanisms: Mechanisms<'_>) -> Result<SaslStep, SaslFailure> {
        match self {
            SaslExchange::Digest(exchange) => {
                let credentials = mechanisms.digest.ok_or(SaslFailure::NotConfigured)?;
                Ok(match exchange.step(token, credentials)? {
                    sasl::Step::Continue(token) => SaslStep::Continue(token),
                    sasl::Step::Complete { token, authorization_id } => {
                        SaslStep::Complete { token: Some(token), authorization_id, principal: None }
                    }
                })
            }
            SaslExchange::Gssapi(exchange) => Ok(match exchange.step(token, mechanisms.mapping)? {
                gssapi::GssapiStep::Continue(token) => SaslStep::Continue(token),
                gssapi::GssapiStep::Complete { principal, id } => {
                    SaslStep::Complete { token: None, authorization_id: id, principal: Some(principal) }
                }
            }),
        }
    }
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
        let login = server_login(&file, "Server").unwrap();
        assert_eq!(login.kerberos, None);
        let credentials = login.digest.unwrap();
        assert_eq!(credentials.user_count(), 2);
        assert!(
            credentials.contains_user("a") && credentials.contains_user("b") && !credentials.contains_user("other")
        );
        assert_eq!(
            server_login(&file, "ZkServer"),
            Err(ServerSectionError::MissingSection { section: "ZkServer".into() })
        );
        let empty = jaas::parse("Server { M required; };").unwrap();
        assert_eq!(server_login(&empty, "Server"), Err(ServerSectionError::NoMechanism { section: "Server".into() }));
        let no_use_key_tab =
            jaas::parse("Server { com.sun.security.auth.module.Krb5LoginModule required keyTab=\"/k\"; };").unwrap();
        assert_eq!(
            server_login(&no_use_key_tab, "Server"),
            Err(ServerSectionError::Kerberos {
                section: "Server".into(),
                error: gssapi::LoginOptionError::NoUseKeyTab
            })
        );
    }

    #[test]
    fn a_section_may_hold_kerberos_and_digest_users() {
        let file = jaas::parse(
            "Server {\n  com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true keyTab=\"/etc/zk.keytab\"\n\
             storeKey=true principal=\"zookeeper/localhost@TEST.REALM\";\n\
             org.apache.zookeeper.server.auth.DigestLoginModule required user_super=\"s\";\n};",
        )
        .unwrap();
        let login = server_login(&file, "Server").unwrap();
        assert_eq!(
            login.kerberos,
            Some(gssapi::KerberosLogin {
                key_tab: "/etc/zk.keytab".into(),
                principal: "zookeeper/localhost@TEST.REALM".into()
            })
        );
        assert!(login.digest.unwrap().contains_user("super"));
        let kerberos_only = jaas::parse(
            "Server { com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true keyTab=\"/k\" principal=\"zk/h\"; };",
        )
        .unwrap();
        assert_eq!(server_login(&kerberos_only, "Server").unwrap().digest, None);
    }

    #[test]
    fn the_first_token_chooses_the_mechanism() {
        let credentials = sasl::Credentials::new(BTreeMap::from([("u".to_string(), "p".to_string())]));
        let mapping = gssapi::PrincipalMapping::default();
        let digest_only = Mechanisms { digest: Some(&credentials), kerberos: None, mapping: &mapping };
        assert!(matches!(SaslExchange::start(b"", digest_only), Ok(SaslExchange::Digest(_))));
        // A non-empty first token with DIGEST-MD5 alone fails as ZooKeeper's
        // DIGEST-MD5 server fails it.
        let mut exchange = SaslExchange::start(b"\x60token", digest_only).unwrap();
        assert_eq!(
            exchange.step(b"\x60token", digest_only),
            Err(SaslFailure::Digest(sasl::SaslError::InitialResponse))
        );
        let none = Mechanisms { digest: None, kerberos: None, mapping: &mapping };
        assert_eq!(SaslExchange::start(b"", none).unwrap_err(), SaslFailure::NotConfigured);
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
