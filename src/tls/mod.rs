//! TLS on the client port: ZooKeeper's `secureClientPort` with its
//! `ssl.*` settings, served by rustls; and, in [`quorum`], the same
//! settings under `ssl.quorum.*` for the peer links (`sslQuorum`). One
//! reader and one store loader serve both: [`TlsKeys`] names the keys each
//! end reads, as ZooKeeper's `X509Util` has one subclass per prefix.
//!
//! Why rustls: it is memory-safe Rust, needs no OpenSSL on the host, is
//! actively maintained, and `futures-rustls` adapts it to the futures
//! `AsyncRead`/`AsyncWrite` that glommio's `TcpStream` implements, so a TLS
//! connection runs through the very same connection code as a plain one
//! (server/connection.rs is generic over its stream). Its `ring` crypto
//! backend builds from the crate alone (aws-lc-rs would need cmake and a C
//! toolchain step for every build).
//!
//! The module has two halves, kept apart so that a mistake shows at start
//! with the key and the file named, never at the first connection:
//!
//! - [`TlsSettings::from_config`] reads the keys ZooKeeper reads (zoo.cfg's
//!   `ssl.*` keys are ZooKeeper's `zookeeper.ssl.*` system properties, so
//!   either form, and `-D` flags in `SERVER_JVMFLAGS`, work) strictly and
//!   without IO: an unknown `ssl.clientAuth`, a protocol rustls does not
//!   speak (TLSv1, TLSv1.1), a cipher suite it does not have, or a store
//!   type it cannot read is a [`ConfigError`] naming key and value.
//! - [`load`] reads the stores and builds the rustls `ServerConfig`; a
//!   missing or unreadable file, a store without a key or certificate, a
//!   wrong password or a key that does not match its certificate is a
//!   [`TlsError`] naming the key and the file.
//!
//! Stores: PEM (a key store is one file holding the private key and the
//! certificate chain, ZooKeeper 3.5.5+'s `ssl.keyStore.type=PEM`; a trust
//! store holds CA certificates) and PKCS12 (`p12-keystore`, pure Rust).
//! JKS and BCFKS are Java's own formats with no maintained Rust reader; they
//! are refused with the `keytool` command that converts them to PKCS12.
//!
//! `client.certReload=true` (ZooKeeper 3.8.1+) reloads the stores when their
//! files change: a thread polls their modification times and swaps the
//! whole rustls configuration, which each handshake loads once; a store
//! that does not load is logged and the previous one kept.
//!
//! `ssl.clientAuth`: `need` (ZooKeeper's default) verifies a client
//! certificate against the trust store and refuses a client without one;
//! `want` verifies one if offered; `none` asks for none. A verified
//! certificate's subject becomes the connection's `x509` identity
//! ([`crate::auth::x509`]). Client host names are not verified, as
//! ZooKeeper's server does not verify them on the client port
//! (`ssl.hostnameVerification` concerns the client side).

pub mod quorum;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedCipherSuite, SupportedProtocolVersion};
use thiserror::Error;

use crate::config::{Config, ConfigError, Secret};

/// A TLS handshake that takes longer than this closes its connection:
/// Netty's `SslHandler` default, which ZooKeeper's secure port uses. The
/// size of the handshake is bounded by rustls (64 KiB per handshake
/// message, one record buffer).
pub const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// The largest key or trust store file read; a store is a few kilobytes.
pub const STORE_FILE_BYTES_MAX: u64 = 1 << 20;
/// What one TLS connection's rustls state costs besides the connection's
/// own buffers (its record buffers, about 16 KiB each way, and the session
/// state): an estimate, for `zoocore.connectionMemoryMaxBytes`.
pub const CONNECTION_TLS_BYTES: usize = 40 << 10;
/// The class `authProvider.N` names for the `x509` scheme.
pub const X509_AUTHENTICATION_PROVIDER: &str = "org.apache.zookeeper.server.auth.X509AuthenticationProvider";

/// Where a store's password comes from: ZooKeeper's `*.password` or
/// `*.passwordPath` (a file holding it, read at [`load`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Password {
    None,
    Text(Secret),
    File(PathBuf),
}

/// `ssl.keyStore.type` / `ssl.trustStore.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreType {
    Pem,
    Pkcs12,
    Jks,
    Bcfks,
}

/// One store: the key store or the trust store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    /// The key prefix, `ssl.keyStore` or `ssl.trustStore`, for messages.
    pub key: &'static str,
    pub location: PathBuf,
    pub password: Password,
    pub store_type: StoreType,
}

/// `ssl.clientAuth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    Need,
    Want,
    None,
}

/// The names of one TLS end's keys: the client port reads `ssl.*`, the
/// quorum `ssl.quorum.*` (ZooKeeper's `ClientX509Util` and
/// `QuorumX509Util`: one reader, two prefixes).
#[derive(Debug, PartialEq, Eq)]
pub struct TlsKeys {
    pub key_store: &'static str,
    pub trust_store: &'static str,
    pub client_auth: &'static str,
    pub protocol: &'static str,
    pub enabled_protocols: &'static str,
    pub cipher_suites: &'static str,
    pub crl: &'static str,
    pub ocsp: &'static str,
    pub hostname_verification: &'static str,
}

/// The client port's keys.
pub static CLIENT_KEYS: TlsKeys = TlsKeys {
    key_store: "ssl.keyStore",
    trust_store: "ssl.trustStore",
    client_auth: "ssl.clientAuth",
    protocol: "ssl.protocol",
    enabled_protocols: "ssl.enabledProtocols",
    cipher_suites: "ssl.ciphersuites",
    crl: "ssl.crl",
    ocsp: "ssl.ocsp",
    hostname_verification: "ssl.hostnameVerification",
};

/// The peer links' keys (crate::tls::quorum).
pub static QUORUM_KEYS: TlsKeys = TlsKeys {
    key_store: "ssl.quorum.keyStore",
    trust_store: "ssl.quorum.trustStore",
    client_auth: "ssl.quorum.clientAuth",
    protocol: "ssl.quorum.protocol",
    enabled_protocols: "ssl.quorum.enabledProtocols",
    cipher_suites: "ssl.quorum.ciphersuites",
    crl: "ssl.quorum.crl",
    ocsp: "ssl.quorum.ocsp",
    hostname_verification: "ssl.quorum.hostnameVerification",
};

/// One TLS end's settings (the client port's, or the peer links'),
/// checked but not yet loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// Which keys they were read from, for messages.
    pub keys: &'static TlsKeys,
    pub key_store: Store,
    pub trust_store: Option<Store>,
    pub client_auth: ClientAuth,
    /// TLS versions offered: `TLSv1.3`, `TLSv1.2`.
    pub protocols: Vec<&'static str>,
    /// `ssl.ciphersuites`, as rustls names them; None for rustls's defaults.
    pub cipher_suites: Option<Vec<String>>,
    /// `zookeeper.X509AuthenticationProvider.superUser`: the subject that is
    /// also `super` (client port only).
    pub x509_super_user: Option<String>,
    /// `client.certReload` (or `sslQuorumReloadCertFiles`): reload the
    /// stores when their files change.
    pub cert_reload: bool,
}

/// What stops a TLS end from starting; each names the key and file.
#[derive(Debug, Error)]
pub enum TlsError {
    #[error("cannot read {key}.location {}: {error}", path.display())]
    Read { key: &'static str, path: PathBuf, error: std::io::Error },
    #[error("{key}.location {}: the file is {bytes} bytes, more than a store can be ({max} bytes)", path.display())]
    TooLarge { key: &'static str, path: PathBuf, bytes: u64, max: u64 },
    #[error("cannot read {key}.passwordPath {}: {error}", path.display())]
    PasswordFile { key: &'static str, path: PathBuf, error: std::io::Error },
    #[error("{key}.location {}: {detail}", path.display())]
    Store { key: &'static str, path: PathBuf, detail: String },
    #[error(
        "{key}.type is {kind} ({key}.location {}): zoocore cannot read Java's {kind} stores; convert it to PKCS12 with \
         `keytool -importkeystore -srckeystore {} -destkeystore store.p12 -deststoretype PKCS12` and set {key}.type=PKCS12, \
         or use PEM",
        path.display(), path.display()
    )]
    JavaOnly { key: &'static str, path: PathBuf, kind: &'static str },
    #[error("{key}.location {}: {error}", path.display())]
    KeyPair { key: &'static str, path: PathBuf, error: rustls::Error },
    #[error("{key}.location {}: {detail}", path.display())]
    Verifier { key: &'static str, path: PathBuf, detail: String },
    #[error("{protocol} / {enabled_protocols} with {cipher_suites}: {error}")]
    Versions {
        protocol: &'static str,
        enabled_protocols: &'static str,
        cipher_suites: &'static str,
        error: rustls::Error,
    },
}

/// Reads the TLS settings when `secureClientPort` is set; None otherwise.
pub fn settings_from_config(config: &Config) -> Result<Option<TlsSettings>, ConfigError> {
    if config.secure_client_port.is_none() {
        return Ok(None);
    }
    TlsSettings::from_config(config).map(Some)
}

impl TlsSettings {
    /// Reads and checks the client port's `ssl.*` keys (see the module essay).
    pub fn from_config(config: &Config) -> Result<TlsSettings, ConfigError> {
        let property = |name: &str| config.property(name).map(str::trim).filter(|value| !value.is_empty());
        let mut settings = TlsSettings::read(
            config,
            &CLIENT_KEYS,
            "the server's key store (PEM: private key and certificate chain; or PKCS12) when secureClientPort is set",
            "the CA certificates client certificates are verified against (ssl.clientAuth is need or want; \
             set ssl.clientAuth=none to ask clients for no certificate)",
        )?;
        if let Some(provider) = property("ssl.authProvider") {
            let class = config.property(&format!("authProvider.{provider}")).map(str::trim);
            if provider != "x509" && class != Some(X509_AUTHENTICATION_PROVIDER) {
                return Err(ConfigError::InvalidValue {
                    key: "ssl.authProvider".into(),
                    value: provider.to_string(),
                    expected: "x509, or a scheme whose authProvider.<scheme> is org.apache.zookeeper.server.auth.X509AuthenticationProvider",
                });
            }
        }
        settings.x509_super_user = property("zookeeper.X509AuthenticationProvider.superUser").map(str::to_string);
        settings.cert_reload = boolean(config, "client.certReload")?.unwrap_or(false);
        Ok(settings)
    }

    /// Reads what both TLS ends read the same way under their own keys:
    /// the stores, the client authentication, protocols and cipher suites,
    /// and the refusal of CRL and OCSP checks zoocore does not make.
    /// `key_store_expected` and `trust_store_expected` say why a missing
    /// store is needed.
    pub fn read(
        config: &Config,
        keys: &'static TlsKeys,
        key_store_expected: &'static str,
        trust_store_expected: &'static str,
    ) -> Result<TlsSettings, ConfigError> {
        let property = |name: &str| config.property(name).map(str::trim).filter(|value| !value.is_empty());
        let Some(key_store) = store(config, keys.key_store)? else {
            return Err(ConfigError::InvalidValue {
                key: format!("{}.location", keys.key_store),
                value: String::new(),
                expected: key_store_expected,
            });
        };
        let trust_store = store(config, keys.trust_store)?;
        let client_auth = match property(keys.client_auth).map(str::to_ascii_lowercase).as_deref() {
            None | Some("need") => ClientAuth::Need,
            Some("want") => ClientAuth::Want,
            Some("none") => ClientAuth::None,
            Some(_) => return Err(invalid(config, keys.client_auth, "need, want or none")),
        };
        if client_auth != ClientAuth::None && trust_store.is_none() {
            return Err(ConfigError::InvalidValue {
                key: format!("{}.location", keys.trust_store),
                value: String::new(),
                expected: trust_store_expected,
            });
        }
        let protocols = protocols(config, keys)?;
        let cipher_suites = match property(keys.cipher_suites) {
            None => None,
            Some(text) => {
                let mut names = Vec::new();
                for name in text.split(',').map(str::trim).filter(|name| !name.is_empty()) {
                    match find_cipher_suite(name) {
                        Some(suite) => names.push(suite_name(suite)),
                        None => {
                            return Err(ConfigError::InvalidValue {
                                key: keys.cipher_suites.into(),
                                value: name.to_string(),
                                expected: "cipher suites rustls offers: TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384, \
                                     TLS_CHACHA20_POLY1305_SHA256, TLS_ECDHE_{ECDSA,RSA}_WITH_AES_{128_GCM_SHA256,256_GCM_SHA384}, \
                                     TLS_ECDHE_{ECDSA,RSA}_WITH_CHACHA20_POLY1305_SHA256",
                            })
                        }
                    }
                }
                if names.is_empty() {
                    return Err(invalid(config, keys.cipher_suites, "a comma-separated list of cipher suites"));
                }
                Some(names)
            }
        };
        for (key, expected) in [
            (keys.crl, "false: zoocore does not check certificate revocation lists"),
            (keys.ocsp, "false: zoocore does not check OCSP"),
        ] {
            if boolean(config, key)? == Some(true) {
                return Err(invalid(config, key, expected));
            }
        }
        Ok(TlsSettings {
            keys,
            key_store,
            trust_store,
            client_auth,
            protocols,
            cipher_suites,
            x509_super_user: None,
            cert_reload: false,
        })
    }
}

fn invalid(config: &Config, key: &str, expected: &'static str) -> ConfigError {
    ConfigError::InvalidValue { key: key.to_string(), value: config.property(key).unwrap_or("").to_string(), expected }
}

/// A `true`/`false` key (either case), None when not set.
pub(crate) fn boolean(config: &Config, key: &str) -> Result<Option<bool>, ConfigError> {
    match config.property(key).map(str::trim).filter(|value| !value.is_empty()) {
        None => Ok(None),
        Some(value) if value.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(value) if value.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(_) => Err(invalid(config, key, "true or false")),
    }
}

/// One store's keys, or None when its location is not set.
fn store(config: &Config, key: &'static str) -> Result<Option<Store>, ConfigError> {
    let property = |suffix: &str| {
        config.property(&format!("{key}.{suffix}")).map(str::trim).filter(|value| !value.is_empty()).map(str::to_string)
    };
    let Some(location) = property("location") else { return Ok(None) };
    let password = match (config.secret(&format!("{key}.password")).cloned(), property("passwordPath")) {
        (Some(secret), _) => Password::Text(secret),
        (None, Some(path)) => Password::File(PathBuf::from(path)),
        (None, None) => Password::None,
    };
    // ZooKeeper's KeyStoreFileType.fromPropertyValueOrFileName: the type
    // key, else the file's extension.
    let store_type = match property("type") {
        Some(text) => match text.to_ascii_uppercase().as_str() {
            "PEM" => StoreType::Pem,
            "PKCS12" => StoreType::Pkcs12,
            "JKS" => StoreType::Jks,
            "BCFKS" => StoreType::Bcfks,
            _ => {
                return Err(ConfigError::InvalidValue {
                    key: format!("{key}.type"),
                    value: text,
                    expected: "PEM, PKCS12, JKS or BCFKS",
                })
            }
        },
        None => {
            let extension = Path::new(&location).extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
            match extension.as_deref() {
                Some("pem") => StoreType::Pem,
                Some("p12") | Some("pfx") => StoreType::Pkcs12,
                Some("jks") => StoreType::Jks,
                Some("bcfks") => StoreType::Bcfks,
                _ => {
                    return Err(ConfigError::InvalidValue {
                        key: format!("{key}.type"),
                        value: String::new(),
                        expected: "PEM or PKCS12: the type cannot be told from the file name (.pem, .p12, .pfx)",
                    })
                }
            }
        }
    };
    Ok(Some(Store { key, location: PathBuf::from(location), password, store_type }))
}

/// `ssl.enabledProtocols`, else what `ssl.protocol` implies (ZooKeeper:
/// TLSv1.3 enables TLSv1.3 and TLSv1.2; TLSv1.2 only itself).
fn protocols(config: &Config, keys: &TlsKeys) -> Result<Vec<&'static str>, ConfigError> {
    const EXPECTED: &str = "TLSv1.3 or TLSv1.2 (rustls speaks no older TLS)";
    let name = |key: &str, text: &str| match text {
        "TLSv1.3" => Ok("TLSv1.3"),
        "TLSv1.2" => Ok("TLSv1.2"),
        _ => Err(ConfigError::InvalidValue { key: key.into(), value: text.to_string(), expected: EXPECTED }),
    };
    if let Some(text) = config.property(keys.enabled_protocols).map(str::trim).filter(|text| !text.is_empty()) {
        let mut protocols = Vec::new();
        for part in text.split(',').map(str::trim).filter(|part| !part.is_empty()) {
            let protocol = name(keys.enabled_protocols, part)?;
            if !protocols.contains(&protocol) {
                protocols.push(protocol);
            }
        }
        return Ok(protocols);
    }
    match config.property(keys.protocol).map(str::trim).filter(|text| !text.is_empty()) {
        None | Some("TLS") | Some("TLSv1.3") => Ok(vec!["TLSv1.3", "TLSv1.2"]),
        Some(text) => Ok(vec![name(keys.protocol, text)?]),
    }
}

/// The name ZooKeeper (Java, IANA) gives a rustls suite: TLS 1.3 suites
/// lose rustls's `TLS13_` prefix.
fn suite_name(suite: SupportedCipherSuite) -> String {
    let name = suite.suite().as_str().unwrap_or("unknown");
    match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name.to_string(),
    }
}

/// rustls's `ring` provider. rustls 0.23.48 marks it deprecated because
/// it offers no post-quantum key exchange; neither do the Java 17 clients
/// ZooKeeper 3.8 runs on, and the alternative (aws-lc-rs) needs cmake and
/// a C build step on every build host.
#[allow(deprecated)]
pub fn crypto_provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

fn find_cipher_suite(name: &str) -> Option<SupportedCipherSuite> {
    crypto_provider()
        .cipher_suites
        .into_iter()
        .find(|suite| suite_name(*suite) == name || suite.suite().as_str() == Some(name))
}

/// The rustls configuration the secure listener accepts with, and the
/// x509 super user, shared by every shard. The configuration is swapped
/// whole when `client.certReload` sees a store change; a handshake takes
/// the current one (one atomic load), so a reload never reaches a
/// connection already running.
#[derive(Clone)]
pub struct TlsContext {
    config: Arc<arc_swap::ArcSwap<ServerConfig>>,
    pub x509_super_user: Option<Arc<str>>,
}

impl TlsContext {
    /// The acceptor for one new connection.
    pub fn acceptor(&self) -> futures_rustls::TlsAcceptor {
        futures_rustls::TlsAcceptor::from(self.config.load_full())
    }
}

/// How often `client.certReload` looks at the stores' files.
pub const CERT_RELOAD_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Reads the stores and builds the server configuration (see the module essay).
pub fn load(settings: &TlsSettings) -> Result<TlsContext, TlsError> {
    Ok(TlsContext {
        config: Arc::new(arc_swap::ArcSwap::from(server_config(settings)?)),
        x509_super_user: settings.x509_super_user.as_deref().map(Arc::from),
    })
}

/// The files a configuration is read from, with what identifies their
/// contents' version (modification time and length).
fn store_files(settings: &TlsSettings) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for store in std::iter::once(&settings.key_store).chain(settings.trust_store.as_ref()) {
        files.push(store.location.clone());
        if let Password::File(path) = &store.password {
            files.push(path.clone());
        }
    }
    files
}

fn file_versions(files: &[PathBuf]) -> Vec<Option<(std::time::SystemTime, u64)>> {
    files
        .iter()
        .map(|file| std::fs::metadata(file).ok().and_then(|meta| Some((meta.modified().ok()?, meta.len()))))
        .collect()
}

/// ZooKeeper's `client.certReload`: a thread that looks at the stores'
/// files every `CERT_RELOAD_POLL_INTERVAL` and, when one changed, reads
/// them again and swaps the configuration new handshakes use. A store that
/// fails to load (say, caught half-written) is logged and the previous
/// configuration kept; the next change is tried again.
pub fn spawn_reloader(settings: TlsSettings, context: &TlsContext) -> std::io::Result<std::thread::JoinHandle<()>> {
    let config = context.config.clone();
    watch_stores(settings, "client.certReload", move |settings| {
        config.store(server_config(settings)?);
        Ok(())
    })
}

/// Calls `reload` whenever one of `settings`' store files changed (see
/// [`spawn_reloader`]); `key` names the setting that asked for it in logs.
pub(crate) fn watch_stores(
    settings: TlsSettings,
    key: &'static str,
    mut reload: impl FnMut(&TlsSettings) -> Result<(), TlsError> + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("zoocore-cert-reload".into()).spawn(move || {
        let files = store_files(&settings);
        let mut seen = file_versions(&files);
        loop {
            std::thread::sleep(CERT_RELOAD_POLL_INTERVAL);
            let now = file_versions(&files);
            if now == seen {
                continue;
            }
            seen = now;
            match reload(&settings) {
                Ok(()) => tracing::info!(files = ?files, "TLS stores reloaded ({key})"),
                Err(error) => {
                    tracing::warn!(%error, "TLS stores changed but do not load; the previous ones stay in use ({key})");
                }
            }
        }
    })
}

/// The crypto provider restricted to `settings`' cipher suites, and the
/// protocol versions it offers: what both TLS ends build from.
fn provider_and_versions(settings: &TlsSettings) -> (Arc<CryptoProvider>, Vec<&'static SupportedProtocolVersion>) {
    let mut provider = crypto_provider();
    if let Some(names) = &settings.cipher_suites {
        provider.cipher_suites.retain(|suite| names.contains(&suite_name(*suite)));
    }
    let versions = settings
        .protocols
        .iter()
        .map(|protocol| if *protocol == "TLSv1.3" { &rustls::version::TLS13 } else { &rustls::version::TLS12 })
        .collect();
    (Arc::new(provider), versions)
}

fn versions_error(settings: &TlsSettings, error: rustls::Error) -> TlsError {
    TlsError::Versions {
        protocol: settings.keys.protocol,
        enabled_protocols: settings.keys.enabled_protocols,
        cipher_suites: settings.keys.cipher_suites,
        error,
    }
}

pub(crate) fn server_config(settings: &TlsSettings) -> Result<Arc<ServerConfig>, TlsError> {
    let (provider, versions) = provider_and_versions(settings);
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|error| versions_error(settings, error))?;
    let builder = match (&settings.trust_store, settings.client_auth) {
        (_, ClientAuth::None) | (None, _) => builder.with_no_client_auth(),
        (Some(trust), client_auth) => {
            let roots = trust_roots(trust)?;
            let mut verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            if client_auth == ClientAuth::Want {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier.build().map_err(|error| TlsError::Verifier {
                key: trust.key,
                path: trust.location.clone(),
                detail: error.to_string(),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let (chain, key) = key_pair(&settings.key_store)?;
    let config = builder.with_single_cert(chain, key).map_err(|error| TlsError::KeyPair {
        key: settings.key_store.key,
        path: settings.key_store.location.clone(),
        error,
    })?;
    Ok(Arc::new(config))
}

fn read_store(store: &Store) -> Result<Vec<u8>, TlsError> {
    let error = |error| TlsError::Read { key: store.key, path: store.location.clone(), error };
    let bytes = std::fs::metadata(&store.location).map_err(error)?.len();
    if bytes > STORE_FILE_BYTES_MAX {
        return Err(TlsError::TooLarge {
            key: store.key,
            path: store.location.clone(),
            bytes,
            max: STORE_FILE_BYTES_MAX,
        });
    }
    std::fs::read(&store.location).map_err(error)
}

fn password(store: &Store) -> Result<Option<String>, TlsError> {
    match &store.password {
        Password::None => Ok(None),
        Password::Text(secret) => Ok(Some(secret.expose().to_string())),
        Password::File(path) => std::fs::read_to_string(path)
            .map(|text| Some(text.trim_end_matches(['\r', '\n']).to_string()))
            .map_err(|error| TlsError::PasswordFile { key: store.key, path: path.clone(), error }),
    }
}

fn store_error(store: &Store, detail: impl Into<String>) -> TlsError {
    TlsError::Store { key: store.key, path: store.location.clone(), detail: detail.into() }
}

fn refuse_java_only(store: &Store) -> Result<(), TlsError> {
    let kind = match store.store_type {
        StoreType::Jks => "JKS",
        StoreType::Bcfks => "BCFKS",
        StoreType::Pem | StoreType::Pkcs12 => return Ok(()),
    };
    Err(TlsError::JavaOnly { key: store.key, path: store.location.clone(), kind })
}

/// The server's certificate chain and private key.
pub(crate) fn key_pair(store: &Store) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    refuse_java_only(store)?;
    let bytes = read_store(store)?;
    let password = password(store)?;
    match store.store_type {
        StoreType::Pkcs12 => pkcs12_key_pair(store, &bytes, password.as_deref().unwrap_or("")),
        _ => {
            if contains(&bytes, b"-----BEGIN ENCRYPTED PRIVATE KEY-----") {
                return Err(store_error(
                    store,
                    "the private key is encrypted, which zoocore's PEM reader does not decrypt; store it unencrypted \
                     (`openssl pkcs8 -topk8 -nocrypt -in KEY -out PLAIN`) and keep the file readable only by zoocore, \
                     or use a PKCS12 store with ssl.keyStore.password",
                ));
            }
            let chain = pem_certificates(store, &bytes)?;
            if chain.is_empty() {
                return Err(store_error(
                    store,
                    "no CERTIFICATE block: a PEM key store holds the private key and its certificate chain",
                ));
            }
            let key = PrivateKeyDer::from_pem_slice(&bytes).map_err(|error| match error {
                rustls::pki_types::pem::Error::NoItemsFound => store_error(
                    store,
                    "no PRIVATE KEY block: a PEM key store holds the private key and its certificate chain",
                ),
                other => store_error(store, format!("the private key does not parse: {other}")),
            })?;
            Ok((chain, key))
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

fn pem_certificates(store: &Store, bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| store_error(store, format!("a CERTIFICATE block does not parse: {error}")))
}

/// The CA certificates client certificates are verified against.
pub(crate) fn trust_roots(store: &Store) -> Result<RootCertStore, TlsError> {
    refuse_java_only(store)?;
    let bytes = read_store(store)?;
    let certificates = match store.store_type {
        StoreType::Pkcs12 => pkcs12_certificates(store, &bytes, password(store)?.as_deref().unwrap_or(""))?,
        _ => pem_certificates(store, &bytes)?,
    };
    if certificates.is_empty() {
        return Err(store_error(
            store,
            "no certificates: a trust store holds the CA certificates clients are verified against",
        ));
    }
    let mut roots = RootCertStore::empty();
    for certificate in certificates {
        roots
            .add(certificate)
            .map_err(|error| store_error(store, format!("a certificate is not usable as a CA: {error}")))?;
    }
    Ok(roots)
}

fn open_pkcs12(
    store: &Store,
    bytes: &[u8],
    password: &str,
    policy: p12_keystore::Pkcs12ImportPolicy,
) -> Result<p12_keystore::KeyStore, TlsError> {
    p12_keystore::KeyStore::from_pkcs12(bytes, password, policy)
        .map_err(|error| store_error(store, format!("not a PKCS12 store, or a wrong {}.password: {error}", store.key)))
}

fn pkcs12_key_pair(
    store: &Store,
    bytes: &[u8],
    password: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let keystore = open_pkcs12(store, bytes, password, p12_keystore::Pkcs12ImportPolicy::Strict)?;
    let Some((_, chain)) = keystore.private_key_chain() else {
        return Err(store_error(store, "no private key entry in the PKCS12 store"));
    };
    let certificates: Vec<CertificateDer<'static>> =
        chain.certs().iter().map(|certificate| CertificateDer::from(certificate.as_der().to_vec())).collect();
    if certificates.is_empty() {
        return Err(store_error(store, "the PKCS12 private key entry has no certificate"));
    }
    let key = PrivateKeyDer::try_from(chain.key().as_der().to_vec())
        .map_err(|error| store_error(store, format!("the PKCS12 private key does not parse: {error}")))?;
    Ok((certificates, key))
}

fn pkcs12_certificates(store: &Store, bytes: &[u8], password: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    // Raw: a trust store's certificates stand alone, with no key to link to.
    let keystore = open_pkcs12(store, bytes, password, p12_keystore::Pkcs12ImportPolicy::Raw)?;
    let mut certificates = Vec::new();
    for (_, entry) in keystore.entries() {
        match entry {
            p12_keystore::KeyStoreEntry::Certificate(certificate) => {
                certificates.push(CertificateDer::from(certificate.as_der().to_vec()))
            }
            p12_keystore::KeyStoreEntry::PrivateKeyChain(chain) => {
                certificates.extend(chain.certs().iter().map(|c| CertificateDer::from(c.as_der().to_vec())))
            }
            #[allow(unreachable_patterns)]
            _ => {}
        }
    }
    Ok(certificates)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(lines: &str) -> Result<Config, ConfigError> {
        Config::parse(&format!("secureClientPort=2281\n{lines}"))
    }

    #[test]
    fn reads_zookeepers_keys() {
        let config = parse(
            "ssl.keyStore.location=/etc/zk/server.pem\nssl.keyStore.password=hidden\n\
             ssl.trustStore.location=/etc/zk/ca.p12\nssl.clientAuth=want\nssl.protocol=TLSv1.2\n\
             ssl.ciphersuites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\nX509AuthenticationProvider.superUser=CN=admin",
        )
        .unwrap();
        let tls = config.tls.clone().unwrap();
        assert_eq!(tls.key_store.store_type, StoreType::Pem);
        assert_eq!(tls.trust_store.as_ref().unwrap().store_type, StoreType::Pkcs12);
        assert_eq!(tls.client_auth, ClientAuth::Want);
        assert_eq!(tls.protocols, vec!["TLSv1.2"]);
        assert_eq!(tls.cipher_suites, Some(vec!["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".to_string()]));
        assert_eq!(tls.x509_super_user.as_deref(), Some("CN=admin"));
        assert!(!format!("{config:?}").contains("hidden"), "a password reached Debug output");
        assert!(config.initial_configuration.contains("ssl.keyStore.password=********"));
        assert!(!config.system_properties.keys().any(|key| key.contains("password")));
        assert!(config.render_conf().contains(&("secureClientPort".to_string(), "2281".to_string())));
        assert!(!config.plain_client_port_enabled());
        let both =
            Config::parse("clientPort=2181\nsecureClientPort=2281\nssl.keyStore.location=a.pem\nssl.clientAuth=none")
                .unwrap();
        assert!(both.plain_client_port_enabled());
        assert_eq!(both.tls.unwrap().protocols, vec!["TLSv1.3", "TLSv1.2"]);
    }

    #[test]
    fn the_system_property_form_works_too() {
        let mut config = Config::parse("secureClientPort=2281\nssl.clientAuth=none").unwrap_err();
        assert!(config.to_string().contains("ssl.keyStore.location"), "{config}");
        let mut parsed = Config::parse("clientPort=2181").unwrap();
        parsed.secure_client_port = Some(0);
        parsed.apply_jvm_flags(&["-Dzookeeper.ssl.keyStore.location=/k.pem -Dzookeeper.ssl.clientAuth=none"]).unwrap();
        assert_eq!(parsed.tls.unwrap().key_store.location, PathBuf::from("/k.pem"));
        config = Config::parse("secureClientPort=1\nssl.keyStore.location=k.pem\nssl.clientAuth=maybe").unwrap_err();
        assert!(config.to_string().contains("ssl.clientAuth") && config.to_string().contains("maybe"));
    }

    #[test]
    fn refuses_what_rustls_cannot_do() {
        let base = "ssl.keyStore.location=k.pem\nssl.clientAuth=none\n";
        for (line, key) in [
            ("ssl.enabledProtocols=TLSv1.1", "ssl.enabledProtocols"),
            ("ssl.protocol=SSLv3", "ssl.protocol"),
            ("ssl.ciphersuites=TLS_RSA_WITH_RC4_128_SHA", "ssl.ciphersuites"),
            ("ssl.keyStore.type=BKS", "ssl.keyStore.type"),
            ("ssl.ocsp=true", "ssl.ocsp"),
            ("ssl.authProvider=custom", "ssl.authProvider"),
        ] {
            let error = parse(&format!("{base}{line}")).unwrap_err().to_string();
            assert!(error.contains(key), "{line}: {error}");
        }
        let error = parse("ssl.keyStore.location=server.keystore\nssl.clientAuth=none").unwrap_err().to_string();
        assert!(error.contains("ssl.keyStore.type"), "{error}");
        let error = parse("ssl.keyStore.location=k.pem").unwrap_err().to_string();
        assert!(error.contains("ssl.trustStore.location"), "{error}");
    }

    #[test]
    fn load_names_the_key_and_the_file() {
        let settings = parse("ssl.keyStore.location=/nonexistent/k.pem\nssl.clientAuth=none").unwrap().tls.unwrap();
        let error = load(&settings).err().unwrap().to_string();
        assert!(error.contains("ssl.keyStore.location") && error.contains("/nonexistent/k.pem"), "{error}");
        let settings = parse("ssl.keyStore.location=/nonexistent/k.jks\nssl.clientAuth=none").unwrap().tls.unwrap();
        let error = load(&settings).err().unwrap().to_string();
        assert!(error.contains("keytool -importkeystore"), "{error}");
    }
}
