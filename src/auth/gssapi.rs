//! SASL GSSAPI (Kerberos V5, RFC 4752) as a ZooKeeper server runs it behind
//! opcode 102: what Java's `GssKrb5Server` does inside ZooKeeper's
//! `SaslServer`, with ZooKeeper's principal mapping
//! (`SaslServerCallbackHandler`) and its JAAS `Krb5LoginModule` options.
//!
//! The exchange, as the Java client and kazoo's pure-sasl expect it:
//!
//! 1. context establishment: every client token goes to
//!    `gss_accept_sec_context` and its output token goes back, until the
//!    context is established (one round for Kerberos: AP-REQ in, AP-REP out
//!    when the client asked for mutual authentication);
//! 2. if that last round produced a token, the client answers with an empty
//!    one; the server then sends the security-layer offer, four bytes wrapped
//!    (integrity, no confidentiality): the layers offered (ZooKeeper offers
//!    only `auth`, no security layer: bit 1) and the largest buffer it
//!    receives (Java's default 65536, sent whatever the layers);
//! 3. the client answers with its wrapped choice: the layer, its own buffer
//!    size, and an optional authorization id. The exchange is complete: the
//!    server answers a null token and the connection gains
//!    `sasl:<mapped principal>`.
//!
//! The shape is a state machine over an [`AcceptContext`], the few GSS-API
//! calls it needs, so the decisions (order of messages, the layer checks,
//! the mapping) are tested without a KDC; [`super::krb5`] holds the real
//! context over the system's MIT krb5 (cargo feature `kerberos`), the one
//! part that does IO. Like ZooKeeper's
//! callback handler, the identity is the authenticated principal mapped by
//! [`PrincipalMapping`], whatever authorization id the client asks for.

use std::path::PathBuf;

use thiserror::Error;

use super::jaas::LoginModule;

/// The login module a JAAS `Server` section names for Kerberos.
pub const KRB5_LOGIN_MODULE: &str = "com.sun.security.auth.module.Krb5LoginModule";
/// RFC 4752's security-layer bit for "no security layer" (`auth`), the only
/// one ZooKeeper's server offers.
pub const LAYER_NONE: u8 = 0x01;
/// The receive buffer size the offer names: Java's SASL default
/// (`javax.security.sasl.maxbuffer` unset), which ZooKeeper keeps.
pub const MAX_BUFFER_BYTES: u32 = 65536;
/// The longest client token accepted. Kerberos AP-REQs with large
/// authorization data (Active Directory PACs) stay under Windows' default
/// MaxTokenSize of 48000 bytes; jute.maxbuffer bounds the frame anyway.
pub const TOKEN_BYTES_MAX: usize = 64 * 1024;

/// The `Krb5LoginModule` options a ZooKeeper server's JAAS section gives:
/// where the service key is, and which principal it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KerberosLogin {
    /// `keyTab`: the keytab file holding the service principal's keys.
    pub key_tab: PathBuf,
    /// `principal`: the service principal, `zookeeper/host@REALM` (without
    /// a realm, the default realm of krb5.conf).
    pub principal: String,
}

/// Why a `Krb5LoginModule` entry cannot serve a server: each names the
/// option to fix.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum LoginOptionError {
    #[error("{KRB5_LOGIN_MODULE} needs useKeyTab=true: a server authenticates with the key in its keytab")]
    NoUseKeyTab,
    #[error("{KRB5_LOGIN_MODULE} has useKeyTab=true but no keyTab=\"/path/to/keytab\" option")]
    NoKeyTab,
    #[error("{KRB5_LOGIN_MODULE} has no principal=\"service/host@REALM\" option")]
    NoPrincipal,
    #[error("{KRB5_LOGIN_MODULE} option principal={principal:?} is not a Kerberos principal name")]
    BadPrincipal { principal: String },
}

/// The options of a `Krb5LoginModule` entry. Other options (`storeKey`,
/// `doNotPrompt`, `debug`, `isInitiator`, ...) change nothing here: an
/// acceptor only needs the key, which the keytab holds.
pub fn kerberos_login(module: &LoginModule) -> Result<KerberosLogin, LoginOptionError> {
    // Java's option map keeps the last of a repeated key.
    let option = |name: &str| module.options.iter().rev().find(|(key, _)| key == name).map(|(_, value)| value.trim());
    if !option("useKeyTab").is_some_and(|value| value.eq_ignore_ascii_case("true")) {
        return Err(LoginOptionError::NoUseKeyTab);
    }
    let key_tab = option("keyTab").filter(|path| !path.is_empty()).ok_or(LoginOptionError::NoKeyTab)?;
    // Java takes a file name, or a file: URL.
    let key_tab = key_tab.strip_prefix("file://").or_else(|| key_tab.strip_prefix("FILE:")).unwrap_or(key_tab);
    let principal = option("principal").filter(|name| !name.is_empty()).ok_or(LoginOptionError::NoPrincipal)?;
    if KerberosName::parse(principal).is_none() {
        return Err(LoginOptionError::BadPrincipal { principal: principal.to_string() });
    }
    Ok(KerberosLogin { key_tab: PathBuf::from(key_tab), principal: principal.to_string() })
}

/// A principal split as ZooKeeper's `KerberosName` splits it: at most two
/// components and a realm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KerberosName<'a> {
    pub service: &'a str,
    pub host: Option<&'a str>,
    pub realm: Option<&'a str>,
}

impl<'a> KerberosName<'a> {
    /// `service[/host]@realm`, or a name without `@` taken whole as the
    /// service; None for anything else with an `@` (ZooKeeper's "Malformed
    /// Kerberos name").
    pub fn parse(name: &'a str) -> Option<KerberosName<'a>> {
        let Some((components, realm)) = name.split_once('@') else {
            return Some(KerberosName { service: name, host: None, realm: None });
        };
        if realm.contains(['/', '@']) {
            return None;
        }
        let (service, host) = match components.split_once('/') {
            Some((service, host)) => (service, Some(host)),
            None => (components, None),
        };
        if service.contains('/') || host.is_some_and(|host| host.contains('/')) {
            return None;
        }
        Some(KerberosName { service, host, realm: Some(realm) })
    }
}

/// Why a principal has no `sasl` id.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum MappingError {
    #[error("malformed Kerberos name: {0}")]
    Malformed(String),
}

/// How an authenticated principal becomes the connection's `sasl` id:
/// ZooKeeper's `SaslServerCallbackHandler` with the `DEFAULT`
/// `zookeeper.security.auth_to_local` rule.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PrincipalMapping {
    /// krb5.conf's default realm, which the `DEFAULT` rule shortens.
    pub default_realm: String,
    /// `zookeeper.kerberos.removeHostFromPrincipal`.
    pub remove_host: bool,
    /// `zookeeper.kerberos.removeRealmFromPrincipal`.
    pub remove_realm: bool,
}

impl PrincipalMapping {
    /// The id: the short name, then `/host` and `@REALM` unless removed.
    /// The short name of a principal of the default realm is its first
    /// component. For another realm ZooKeeper's rule does not apply and it
    /// logs an error and keeps the id the client asked for (the whole
    /// principal for every ZooKeeper client); here the whole principal is
    /// kept, which honest clients get from ZooKeeper too, and a client can
    /// not claim another name that way.
    pub fn map(&self, principal: &str) -> Result<String, MappingError> {
        let name = KerberosName::parse(principal).ok_or_else(|| MappingError::Malformed(principal.to_string()))?;
        if name.realm.is_some_and(|realm| realm != self.default_realm) {
            return Ok(principal.to_string());
        }
        let mut id = name.service.to_string();
        if let (Some(host), false) = (name.host, self.remove_host) {
            id.push('/');
            id.push_str(host);
        }
        if let (Some(realm), false) = (name.realm, self.remove_realm) {
            id.push('@');
            id.push_str(realm);
        }
        Ok(id)
    }
}

/// The security-layer offer, before wrapping: the layers (only "none") and
/// the receive buffer size, big-endian in three bytes.
pub fn security_layer_offer() -> [u8; 4] {
    let size = MAX_BUFFER_BYTES.to_be_bytes();
    [LAYER_NONE, size[1], size[2], size[3]]
}

/// The client's unwrapped answer to the offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerChoice {
    pub layer: u8,
    pub max_buffer: u32,
    /// The authorization id asked for, if any (ZooKeeper ignores it).
    pub authorization_id: Option<String>,
}

/// Reads the client's choice, refusing what Java's server refuses.
pub fn parse_layer_choice(message: &[u8]) -> Result<LayerChoice, GssapiError> {
    let [layer, a, b, c, rest @ ..] = message else {
        return Err(GssapiError::ShortLayerChoice { length: message.len() });
    };
    if layer & LAYER_NONE == 0 {
        return Err(GssapiError::UnsupportedLayer { layer: *layer });
    }
    let authorization_id = match rest {
        [] => None,
        bytes => Some(String::from_utf8(bytes.to_vec()).map_err(|_| GssapiError::AuthorizationIdNotUtf8)?),
    };
    Ok(LayerChoice { layer: *layer, max_buffer: u32::from_be_bytes([0, *a, *b, *c]), authorization_id })
}

/// Why a GSSAPI exchange failed. ZooKeeper answers every one alike (the
/// connection closes after AuthFailed); the kinds are for the log, and
/// none carries key material.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum GssapiError {
    #[error("GSS-API context establishment failed: {0}")]
    Context(String),
    #[error("the client token is {length} bytes, more than the {TOKEN_BYTES_MAX} accepted")]
    TokenTooLong { length: usize },
    #[error("Handshake expecting no response data from client ({length} bytes)")]
    ExpectedEmpty { length: usize },
    #[error("cannot protect the security-layer offer: {0}")]
    Wrap(String),
    #[error("cannot unwrap the client's security-layer choice: {0}")]
    Unwrap(String),
    #[error("Final handshake message should be at least 4 bytes, not {length}")]
    ShortLayerChoice { length: usize },
    #[error("Client selected unsupported protection: {layer}")]
    UnsupportedLayer { layer: u8 },
    #[error("Cannot decode authzid: not UTF-8")]
    AuthorizationIdNotUtf8,
    #[error("the authenticated principal has no sasl id: {0}")]
    Mapping(#[from] MappingError),
    #[error("the GSSAPI exchange is already complete or failed")]
    IllegalState,
}

/// The GSS-API acceptor calls the exchange makes; errors are the library's
/// messages.
pub trait AcceptContext {
    /// Feeds one token to `gss_accept_sec_context`: the token to send back
    /// (possibly none), and whether the context is now established.
    fn accept(&mut self, token: &[u8]) -> Result<(Option<Vec<u8>>, bool), String>;
    /// The initiator's principal, once established.
    fn peer(&self) -> Result<String, String>;
    /// `gss_wrap` with integrity only.
    fn wrap(&mut self, message: &[u8]) -> Result<Vec<u8>, String>;
    /// `gss_unwrap`.
    fn unwrap(&mut self, message: &[u8]) -> Result<Vec<u8>, String>;
}

/// What the server sends back for one client token.
#[derive(Debug, PartialEq, Eq)]
pub enum GssapiStep {
    /// Send this token and wait for the client's next.
    Continue(Vec<u8>),
    /// Authenticated: answer a null token; the connection gains
    /// `sasl:<id>`. `principal` is the authenticated name, for the log.
    Complete { principal: String, id: String },
}

#[derive(Debug)]
enum State {
    Establishing,
    /// Established with a last token sent: the client answers empty.
    AwaitingEmpty {
        peer: String,
    },
    /// The offer is sent: the client answers its choice.
    Offered {
        peer: String,
    },
    Done,
}

/// One connection's GSSAPI server exchange over a context `C`.
pub struct GssapiServer<C> {
    context: C,
    state: State,
}

impl<C: AcceptContext> GssapiServer<C> {
    pub fn new(context: C) -> Self {
        GssapiServer { context, state: State::Establishing }
    }

    /// Feeds one client token. After an error the exchange is over.
    pub fn step(&mut self, token: &[u8], mapping: &PrincipalMapping) -> Result<GssapiStep, GssapiError> {
        if token.len() > TOKEN_BYTES_MAX {
            self.state = State::Done;
            return Err(GssapiError::TokenTooLong { length: token.len() });
        }
        match std::mem::replace(&mut self.state, State::Done) {
            State::Establishing => {
                let (reply, established) = self.context.accept(token).map_err(GssapiError::Context)?;
                let reply = reply.filter(|reply| !reply.is_empty());
                if !established {
                    self.state = State::Establishing;
                    return Ok(GssapiStep::Continue(reply.unwrap_or_default()));
                }
                let peer = self.context.peer().map_err(GssapiError::Context)?;
                match reply {
                    Some(reply) => {
                        self.state = State::AwaitingEmpty { peer };
                        Ok(GssapiStep::Continue(reply))
                    }
                    None => self.offer(peer),
                }
            }
            State::AwaitingEmpty { peer } => {
                if !token.is_empty() {
                    return Err(GssapiError::ExpectedEmpty { length: token.len() });
                }
                self.offer(peer)
            }
            State::Offered { peer } => {
                let choice = self.context.unwrap(token).map_err(GssapiError::Unwrap)?;
                // The authorization id asked for is checked for form only:
                // ZooKeeper authorizes the authenticated principal.
                parse_layer_choice(&choice)?;
                let id = mapping.map(&peer)?;
                Ok(GssapiStep::Complete { principal: peer, id })
            }
            State::Done => Err(GssapiError::IllegalState),
        }
    }

    fn offer(&mut self, peer: String) -> Result<GssapiStep, GssapiError> {
        let offer = self.context.wrap(&security_layer_offer()).map_err(GssapiError::Wrap)?;
        self.state = State::Offered { peer };
        Ok(GssapiStep::Continue(offer))
    }
}

impl<C> std::fmt::Debug for GssapiServer<C> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("GssapiServer").field("state", &self.state).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::jaas;

    fn module(text: &str) -> LoginModule {
        jaas::parse(text).unwrap().sections.remove(0).modules.remove(0)
    }

    #[test]
    fn login_options_as_zookeeper_operators_write_them() {
        let login = kerberos_login(&module(
            "Server { com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true \
             keyTab=\"/etc/zk/zk.keytab\" storeKey=true useTicketCache=false \
             principal=\"zookeeper/host.example@EXAMPLE.COM\"; };",
        ))
        .unwrap();
        assert_eq!(
            login,
            KerberosLogin {
                key_tab: PathBuf::from("/etc/zk/zk.keytab"),
                principal: "zookeeper/host.example@EXAMPLE.COM".into()
            }
        );
        let check = |options: &str, error: LoginOptionError| {
            let text = format!("Server {{ {KRB5_LOGIN_MODULE} required {options}; }};");
            assert_eq!(kerberos_login(&module(&text)), Err(error), "{options}");
        };
        check("keyTab=\"/k\" principal=\"zk/h\"", LoginOptionError::NoUseKeyTab);
        check("useKeyTab=false keyTab=\"/k\" principal=\"zk/h\"", LoginOptionError::NoUseKeyTab);
        check("useKeyTab=true principal=\"zk/h\"", LoginOptionError::NoKeyTab);
        check("useKeyTab=true keyTab=\"/k\"", LoginOptionError::NoPrincipal);
        check(
            "useKeyTab=true keyTab=\"/k\" principal=\"a/b/c@R\"",
            LoginOptionError::BadPrincipal { principal: "a/b/c@R".into() },
        );
        let url = kerberos_login(&module(&format!(
            "S {{ {KRB5_LOGIN_MODULE} required useKeyTab=\"TRUE\" keyTab=\"file:///k\" principal=\"zk\"; }};"
        )))
        .unwrap();
        assert_eq!(url.key_tab, PathBuf::from("/k"));
    }

    #[test]
    fn principals_map_as_zookeeper_maps_them() {
        let mapping = |remove_host, remove_realm| PrincipalMapping {
            default_realm: "TEST.REALM".into(),
            remove_host,
            remove_realm,
        };
        let keep = mapping(false, false);
        assert_eq!(keep.map("client@TEST.REALM").unwrap(), "client@TEST.REALM");
        assert_eq!(keep.map("zkcli/host.example@TEST.REALM").unwrap(), "zkcli/host.example@TEST.REALM");
        assert_eq!(keep.map("bare").unwrap(), "bare");
        assert_eq!(mapping(true, false).map("zkcli/host@TEST.REALM").unwrap(), "zkcli@TEST.REALM");
        assert_eq!(mapping(false, true).map("zkcli/host@TEST.REALM").unwrap(), "zkcli/host");
        assert_eq!(mapping(true, true).map("zkcli/host@TEST.REALM").unwrap(), "zkcli");
        // Another realm: DEFAULT does not apply, the whole principal stays.
        assert_eq!(mapping(true, true).map("client/h@OTHER.REALM").unwrap(), "client/h@OTHER.REALM");
        assert_eq!(keep.map("a/b/c@TEST.REALM"), Err(MappingError::Malformed("a/b/c@TEST.REALM".into())));
        assert_eq!(keep.map("a@b@c"), Err(MappingError::Malformed("a@b@c".into())));
    }

    #[test]
    fn the_offer_and_the_choice() {
        assert_eq!(security_layer_offer(), [0x01, 0x01, 0x00, 0x00]);
        assert_eq!(
            parse_layer_choice(&[1, 0, 0x10, 0]).unwrap(),
            LayerChoice { layer: 1, max_buffer: 4096, authorization_id: None }
        );
        assert_eq!(
            parse_layer_choice(b"\x01\x01\x00\x00client@TEST.REALM").unwrap().authorization_id.as_deref(),
            Some("client@TEST.REALM")
        );
        assert_eq!(parse_layer_choice(&[1, 0, 0]), Err(GssapiError::ShortLayerChoice { length: 3 }));
        assert_eq!(parse_layer_choice(&[4, 0, 0, 0]), Err(GssapiError::UnsupportedLayer { layer: 4 }));
        assert_eq!(parse_layer_choice(&[1, 0, 0, 0, 0xff]), Err(GssapiError::AuthorizationIdNotUtf8));
    }

    /// A context that "wraps" by prefixing `W` and checks what it unwraps:
    /// enough to follow the order of the messages.
    struct Fake {
        rounds: usize,
        last_token: bool,
        peer: &'static str,
    }

    impl AcceptContext for Fake {
        fn accept(&mut self, token: &[u8]) -> Result<(Option<Vec<u8>>, bool), String> {
            if token.first() != Some(&0x60) {
                return Err("defective token".into());
            }
            self.rounds -= 1;
            let established = self.rounds == 0;
            let reply = (!established || self.last_token).then(|| b"reply".to_vec());
            Ok((reply, established))
        }

        fn peer(&self) -> Result<String, String> {
            Ok(self.peer.to_string())
        }

        fn wrap(&mut self, message: &[u8]) -> Result<Vec<u8>, String> {
            Ok([b"W".as_slice(), message].concat())
        }

        fn unwrap(&mut self, message: &[u8]) -> Result<Vec<u8>, String> {
            message.strip_prefix(b"W").map(<[u8]>::to_vec).ok_or_else(|| "bad checksum".to_string())
        }
    }

    fn mapping() -> PrincipalMapping {
        PrincipalMapping { default_realm: "TEST.REALM".into(), remove_host: false, remove_realm: true }
    }

    #[test]
    fn mutual_authentication_then_the_layer_negotiation() {
        let mut server = GssapiServer::new(Fake { rounds: 1, last_token: true, peer: "client@TEST.REALM" });
        assert_eq!(server.step(b"\x60ap-req", &mapping()), Ok(GssapiStep::Continue(b"reply".to_vec())));
        assert_eq!(server.step(b"", &mapping()), Ok(GssapiStep::Continue(b"W\x01\x01\x00\x00".to_vec())));
        // The client asks to be someone else: it still gets its own name.
        assert_eq!(
            server.step(b"W\x01\x00\x00\x00super@TEST.REALM", &mapping()),
            Ok(GssapiStep::Complete { principal: "client@TEST.REALM".into(), id: "client".into() })
        );
        assert_eq!(server.step(b"", &mapping()), Err(GssapiError::IllegalState));
    }

    #[test]
    fn no_last_token_means_the_offer_at_once() {
        let mut server = GssapiServer::new(Fake { rounds: 2, last_token: false, peer: "svc/h@TEST.REALM" });
        assert_eq!(server.step(b"\x60one", &mapping()), Ok(GssapiStep::Continue(b"reply".to_vec())));
        assert_eq!(server.step(b"\x60two", &mapping()), Ok(GssapiStep::Continue(b"W\x01\x01\x00\x00".to_vec())));
        assert_eq!(
            server.step(b"W\x01\x00\x00\x00", &mapping()),
            Ok(GssapiStep::Complete { principal: "svc/h@TEST.REALM".into(), id: "svc/h".into() })
        );
    }

    #[test]
    fn every_wrong_message_ends_the_exchange() {
        let fresh = || GssapiServer::new(Fake { rounds: 1, last_token: true, peer: "client@TEST.REALM" });
        let mut server = fresh();
        assert_eq!(server.step(b"garbage", &mapping()), Err(GssapiError::Context("defective token".into())));
        assert_eq!(server.step(b"\x60ap-req", &mapping()), Err(GssapiError::IllegalState));
        let mut server = fresh();
        server.step(b"\x60ap-req", &mapping()).unwrap();
        assert_eq!(server.step(b"x", &mapping()), Err(GssapiError::ExpectedEmpty { length: 1 }));
        let mut server = fresh();
        server.step(b"\x60ap-req", &mapping()).unwrap();
        server.step(b"", &mapping()).unwrap();
        assert_eq!(server.step(b"\x01\x00\x00\x00", &mapping()), Err(GssapiError::Unwrap("bad checksum".into())));
        let mut server = fresh();
        server.step(b"\x60ap-req", &mapping()).unwrap();
        server.step(b"", &mapping()).unwrap();
        assert_eq!(server.step(b"W\x04\x00\x00\x00", &mapping()), Err(GssapiError::UnsupportedLayer { layer: 4 }));
        let long = vec![0x60; TOKEN_BYTES_MAX + 1];
        assert_eq!(fresh().step(&long, &mapping()), Err(GssapiError::TokenTooLong { length: TOKEN_BYTES_MAX + 1 }));
    }
}
