//! TLS on the peer links: ZooKeeper's `sslQuorum` with its `ssl.quorum.*`
//! settings, so that only servers holding a certificate from the
//! ensemble's CA can join it.
//!
//! The settings are the client port's read under another prefix (ZooKeeper
//! has one `X509Util` and two subclasses for the two prefixes; here
//! [`TlsSettings::read`] takes [`QUORUM_KEYS`]), so stores, protocols,
//! cipher suites and the refusal of JKS are the very same code. What the
//! quorum adds is the other end of a connection: a server dials its peers,
//! so it needs a rustls `ClientConfig` too, presenting its own certificate
//! (mutual authentication: each side verifies the other's against
//! `ssl.quorum.trustStore`). A trust store is therefore always required
//! here, whatever `ssl.quorum.clientAuth` says.
//!
//! `ssl.quorum.hostnameVerification` (ZooKeeper's default: true) binds a
//! certificate to a server line: the dialling side checks the acceptor's
//! certificate against the host of the `server.N` line it dials (an IP
//! literal against an IP SAN, a name against a DNS SAN), and the accepting
//! side checks the dialler's certificate against the host of the server
//! line whose id the dialler claims in its hello. ZooKeeper's acceptor
//! instead looks the connecting address up in reverse DNS; checking the
//! claimed id's configured host needs no DNS, works for loopback test
//! certificates (SAN `IP:127.0.0.1`), and stops one member's certificate
//! from being used to claim another member's id. With it off, any
//! certificate from the CA is accepted for any id.
//!
//! `sslQuorumReloadCertFiles=true` reloads both configurations when the
//! store files change, as `client.certReload` does for the client port;
//! links already up keep their session.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, ServerConfig, SignatureScheme};

use super::{
    boolean, key_pair, provider_and_versions, server_config, trust_roots, versions_error, watch_stores, TlsError,
    TlsKeys, TlsSettings, QUORUM_KEYS,
};
use crate::config::{Config, ConfigError};

/// The peer links' TLS settings, checked but not yet loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumTlsSettings {
    /// The stores, protocols and suites, read from `ssl.quorum.*`.
    pub tls: TlsSettings,
    /// `ssl.quorum.hostnameVerification` (see the module essay).
    pub hostname_verification: bool,
}

/// Reads the `ssl.quorum.*` keys when the peer links need them: with
/// `sslQuorum=true`, or with the quorum's `portUnification=true` (which
/// accepts TLS peers beside plain ones); None otherwise.
pub fn settings_from_config(config: &Config) -> Result<Option<QuorumTlsSettings>, ConfigError> {
    if !config.ssl_quorum && !config.quorum_port_unification {
        return Ok(None);
    }
    let keys: &'static TlsKeys = &QUORUM_KEYS;
    let mut tls = TlsSettings::read(
        config,
        keys,
        "this server's key store for the peer links (PEM: private key and certificate chain; or PKCS12) when \
         sslQuorum or portUnification is true",
        "the ensemble's CA certificates, which peers' certificates are verified against, when sslQuorum or \
         portUnification is true",
    )?;
    if tls.trust_store.is_none() {
        // A dialling server verifies the acceptor whatever clientAuth says.
        return Err(ConfigError::InvalidValue {
            key: format!("{}.location", keys.trust_store),
            value: String::new(),
            expected: "the ensemble's CA certificates, which peers' certificates are verified against, when sslQuorum \
                       or portUnification is true",
        });
    }
    tls.cert_reload = config.ssl_quorum_reload_cert_files;
    Ok(Some(QuorumTlsSettings {
        hostname_verification: boolean(config, keys.hostname_verification)?.unwrap_or(true),
        tls,
    }))
}

/// The loaded configurations of both ends of a peer link, shared by the
/// peer transport; each is swapped whole on a reload, and a handshake takes
/// the current one.
#[derive(Clone)]
pub struct QuorumTls {
    server: Arc<ArcSwap<ServerConfig>>,
    client: Arc<ArcSwap<ClientConfig>>,
    hostname_verification: bool,
}

impl std::fmt::Debug for QuorumTls {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("QuorumTls")
            .field("hostname_verification", &self.hostname_verification)
            .finish_non_exhaustive()
    }
}

impl QuorumTls {
    /// The acceptor for one inbound peer connection.
    pub fn acceptor(&self) -> futures_rustls::TlsAcceptor {
        futures_rustls::TlsAcceptor::from(self.server.load_full())
    }

    /// The connector for one outbound peer connection.
    pub fn connector(&self) -> futures_rustls::TlsConnector {
        futures_rustls::TlsConnector::from(self.client.load_full())
    }

    /// Whether certificates must name their server line's host.
    pub fn hostname_verification(&self) -> bool {
        self.hostname_verification
    }

    /// Checks that a dialler's certificate (already verified against the
    /// trust store by the handshake) names `host`, the host of the server
    /// line whose id it claims; a no-op without hostname verification.
    pub fn check_peer_name(&self, certificate: &CertificateDer<'_>, host: &ServerName<'_>) -> Result<(), String> {
        if !self.hostname_verification {
            return Ok(());
        }
        let parsed = ParsedCertificate::try_from(certificate).map_err(|error| error.to_string())?;
        rustls::client::verify_server_name(&parsed, host).map_err(|error| error.to_string())
    }
}

/// Reads the stores and builds both configurations; a bad store is an error
/// naming its `ssl.quorum.*` key and file.
pub fn load(settings: &QuorumTlsSettings) -> Result<QuorumTls, TlsError> {
    Ok(QuorumTls {
        server: Arc::new(ArcSwap::from(server_config(&settings.tls)?)),
        client: Arc::new(ArcSwap::from(client_config(settings)?)),
        hostname_verification: settings.hostname_verification,
    })
}

/// `sslQuorumReloadCertFiles`: swaps both configurations when a store file
/// changes (see [`super::spawn_reloader`]).
pub fn spawn_reloader(
    settings: QuorumTlsSettings,
    context: &QuorumTls,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let (server, client) = (context.server.clone(), context.client.clone());
    let tls = settings.tls.clone();
    watch_stores(tls, "sslQuorumReloadCertFiles", move |_| {
        let fresh_server = server_config(&settings.tls)?;
        let fresh_client = client_config(&settings)?;
        server.store(fresh_server);
        client.store(fresh_client);
        Ok(())
    })
}

/// The dialling side: presents this server's certificate and verifies the
/// acceptor's against the trust store.
fn client_config(settings: &QuorumTlsSettings) -> Result<Arc<ClientConfig>, TlsError> {
    let tls = &settings.tls;
    let Some(trust) = &tls.trust_store else {
        return Err(TlsError::Verifier {
            key: QUORUM_KEYS.trust_store,
            path: Default::default(),
            detail: "no trust store: the peer links verify each other's certificates".to_string(),
        });
    };
    let (provider, versions) = provider_and_versions(tls);
    let roots = trust_roots(trust)?;
    let verifier =
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build().map_err(|error| {
            TlsError::Verifier { key: trust.key, path: trust.location.clone(), detail: error.to_string() }
        })?;
    let verifier = Arc::new(PeerVerifier { inner: verifier, hostname_verification: settings.hostname_verification });
    let (chain, key) = key_pair(&tls.key_store)?;
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|error| versions_error(tls, error))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(chain, key)
        .map_err(|error| TlsError::KeyPair { key: tls.key_store.key, path: tls.key_store.location.clone(), error })?;
    Ok(Arc::new(config))
}

/// webpki's verification of the acceptor, which, with hostname
/// verification off, accepts a certificate from the trusted CA whatever
/// host it names (the chain, validity and key usage are still checked:
/// webpki checks the name last).
#[derive(Debug)]
struct PeerVerifier {
    inner: Arc<WebPkiServerVerifier>,
    hostname_verification: bool,
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.hostname_verification => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, certificate, signature)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, certificate, signature)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(lines: &str) -> Result<Config, ConfigError> {
        Config::parse(lines)
    }

    #[test]
    fn reads_the_quorum_keys_under_their_own_prefix() {
        let config = parse(
            "sslQuorum=true\nssl.quorum.keyStore.location=/etc/zk/peer.pem\nssl.quorum.keyStore.password=q-secret\n\
             ssl.quorum.trustStore.location=/etc/zk/ca.p12\nssl.quorum.trustStore.password=t-secret\n\
             ssl.quorum.protocol=TLSv1.2\nssl.quorum.hostnameVerification=false\nsslQuorumReloadCertFiles=true\n\
             ssl.keyStore.location=/etc/zk/client.pem",
        )
        .unwrap();
        let quorum = config.quorum_tls.clone().unwrap();
        assert_eq!(quorum.tls.key_store.key, "ssl.quorum.keyStore");
        assert_eq!(quorum.tls.key_store.location, std::path::PathBuf::from("/etc/zk/peer.pem"));
        assert_eq!(quorum.tls.trust_store.as_ref().unwrap().store_type, super::super::StoreType::Pkcs12);
        assert_eq!(quorum.tls.protocols, vec!["TLSv1.2"]);
        assert!(!quorum.hostname_verification);
        assert!(quorum.tls.cert_reload);
        // Passwords stay out of every listing.
        let listed = format!("{config:?}{:?}", config.render_conf());
        assert!(!listed.contains("q-secret") && !listed.contains("t-secret"), "a password leaked: {listed}");
        assert!(config.initial_configuration.contains("ssl.quorum.keyStore.password=********"));
        // Without sslQuorum the keys are only system properties.
        let plain = parse("ssl.quorum.keyStore.location=/etc/zk/peer.pem").unwrap();
        assert!(plain.quorum_tls.is_none());
    }

    #[test]
    fn the_system_property_form_works_too() {
        let mut config = parse("sslQuorum=true\nssl.quorum.keyStore.location=/k.pem").unwrap_err();
        assert!(config.to_string().contains("ssl.quorum.trustStore.location"), "{config}");
        let mut parsed = parse("clientPort=2181").unwrap();
        parsed.ssl_quorum = true;
        parsed
            .apply_jvm_flags(&[
                "-Dzookeeper.ssl.quorum.keyStore.location=/k.pem -Dzookeeper.ssl.quorum.trustStore.location=/ca.pem",
            ])
            .unwrap();
        assert_eq!(parsed.quorum_tls.unwrap().tls.trust_store.unwrap().location, std::path::PathBuf::from("/ca.pem"));
        config = parse(
            "sslQuorum=true\nssl.quorum.keyStore.location=k.pem\nssl.quorum.trustStore.location=c.pem\n\
                        ssl.quorum.hostnameVerification=maybe",
        )
        .unwrap_err();
        assert!(config.to_string().contains("ssl.quorum.hostnameVerification"), "{config}");
    }

    #[test]
    fn missing_and_bad_settings_name_their_key() {
        for (text, key) in [
            ("sslQuorum=true", "ssl.quorum.keyStore.location"),
            ("portUnification=true", "ssl.quorum.keyStore.location"),
            ("sslQuorum=yes", "sslQuorum"),
            ("sslQuorum=true\nssl.quorum.keyStore.location=k.pem", "ssl.quorum.trustStore.location"),
            (
                "sslQuorum=true\nssl.quorum.keyStore.location=k.pem\nssl.quorum.trustStore.location=c.pem\n\
                 ssl.quorum.clientAuth=none",
                "",
            ),
            (
                "sslQuorum=true\nssl.quorum.keyStore.location=k.pem\nssl.quorum.trustStore.location=c.pem\n\
                 ssl.quorum.enabledProtocols=TLSv1.1",
                "ssl.quorum.enabledProtocols",
            ),
            (
                "sslQuorum=true\nssl.quorum.keyStore.location=k.pem\nssl.quorum.trustStore.location=c.pem\n\
                 ssl.quorum.ciphersuites=TLS_RSA_WITH_RC4_128_SHA",
                "ssl.quorum.ciphersuites",
            ),
            (
                "sslQuorum=true\nssl.quorum.keyStore.location=k.jks\nssl.quorum.trustStore.location=c.pem\n\
                 ssl.quorum.keyStore.type=BKS",
                "ssl.quorum.keyStore.type",
            ),
        ] {
            match parse(text) {
                Ok(_) => assert!(key.is_empty(), "{text}: accepted"),
                Err(error) => assert!(!key.is_empty() && error.to_string().contains(key), "{text}: {error}"),
            }
        }
    }

    #[test]
    fn load_names_the_key_and_the_file() {
        for (trust_store, expected) in [("ca.pem", "ssl.quorum.trustStore.location"), ("ca.jks", "keytool")] {
            let config = parse(&format!(
                "sslQuorum=true\nssl.quorum.keyStore.location=/nonexistent/peer.pem\n\
                 ssl.quorum.trustStore.location=/nonexistent/{trust_store}"
            ))
            .unwrap();
            let error = load(config.quorum_tls.as_ref().unwrap()).err().unwrap().to_string();
            assert!(error.contains(expected) && error.contains("/nonexistent/"), "{error}");
        }
    }
}
