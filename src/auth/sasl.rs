//! The server side of SASL DIGEST-MD5 (RFC 2831) as a ZooKeeper server runs
//! it: the exchange behind opcode 102, with `qop=auth` only, which is all a
//! ZooKeeper client asks for (the Java client and kazoo's pure-sasl alike).
//!
//! It is a state machine fed the client's tokens and answering with the
//! server's, with no IO and no randomness of its own: the nonce comes in when
//! the machine is made, so tests replay exact exchanges. The shape follows
//! Java's `DigestMD5Server`, which a ZooKeeper server wraps:
//!
//! 1. the client opens with an empty token; the server answers the challenge
//!    `realm="zk-sasl-md5",nonce="...",charset=utf-8,algorithm=md5-sess`
//!    (ZooKeeper names its DIGEST server `zk-sasl-md5`, which Java also uses
//!    as the realm; no `qop` directive means `auth`);
//! 2. the client sends its digest-response; the server checks every
//!    directive, recomputes the response from the user's password, and on a
//!    match answers `rspauth=...`, which the client checks in turn. The
//!    exchange is then complete and the authorization id is the
//!    authenticated user name, as ZooKeeper's callback handler sets it.
//!
//! Any other token, or any token after completion, is an error; ZooKeeper
//! answers all of them alike (AuthFailed and a closed connection), so the
//! error kinds here are for the log. An unknown user fails exactly as a wrong
//! password does ("Mismatched response", computed against a dummy password),
//! so the answers do not tell which user names exist. The digests are
//! compared in constant time.

use std::collections::BTreeMap;

use md5::{Digest, Md5};
use subtle::ConstantTimeEq;
use thiserror::Error;

/// The service (protocol) a ZooKeeper client names in its `digest-uri`.
pub const SERVICE: &str = "zookeeper";
/// ZooKeeper's fixed DIGEST-MD5 server name, the host part of `digest-uri`
/// and the realm the challenge offers.
pub const SERVER_NAME: &str = "zk-sasl-md5";
/// The longest digest-response Java's server accepts (RFC 2831 2.1.2).
pub const RESPONSE_BYTES_MAX: usize = 4096;
/// Random bytes in a nonce; Java's server uses 30, which base64 makes 40
/// characters.
pub const NONCE_BYTES: usize = 30;

/// The DIGEST-MD5 users of the JAAS `Server` section (`user_NAME="pw"`).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Credentials {
    passwords: BTreeMap<String, String>,
}

impl Credentials {
    pub fn new(passwords: BTreeMap<String, String>) -> Self {
        Credentials { passwords }
    }

    pub fn user_count(&self) -> usize {
        self.passwords.len()
    }

    pub fn contains_user(&self, user: &str) -> bool {
        self.passwords.contains_key(user)
    }
}

impl std::fmt::Debug for Credentials {
    // Passwords are never printed, only the user names.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Credentials").field("users", &self.passwords.keys().collect::<Vec<_>>()).finish()
    }
}

/// Why an exchange failed. The messages follow Java's `SaslException`
/// texts, which ZooKeeper logs.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SaslError {
    #[error("DIGEST-MD5 must not have an initial response")]
    InitialResponse,
    #[error("DIGEST-MD5: Server at illegal state")]
    IllegalState,
    #[error("DIGEST-MD5: Invalid digest response length. Got: {length} Expected < {RESPONSE_BYTES_MAX}")]
    ResponseTooLong { length: usize },
    #[error("DIGEST-MD5: digest response format violation. {0}")]
    Format(&'static str),
    #[error("DIGEST-MD5: digest response format violation. Missing {0}.")]
    Missing(&'static str),
    #[error("DIGEST-MD5: digest response format violation. Repeated {0}.")]
    Repeated(String),
    #[error("DIGEST-MD5: digest response format violation. Nonexistent realm: {0}")]
    UnknownRealm(String),
    #[error("DIGEST-MD5: digest response format violation. Nonce count does not match: {0}")]
    NonceCount(String),
    #[error("DIGEST-MD5: digest response format violation. Invalid QOP: {0}")]
    Qop(String),
    #[error("DIGEST-MD5: digest response format violation. Mismatched URI: {0}; expecting: {SERVICE}/{SERVER_NAME}")]
    Uri(String),
    #[error("DIGEST-MD5: digest response format violation. Mismatched response.")]
    MismatchedResponse,
}

/// What the server sends back for one client token.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Another round: send this token and wait for the client's next.
    Continue(Vec<u8>),
    /// Authenticated: send this last token (`rspauth=...`); the connection
    /// gains the identity `sasl:<authorization_id>`.
    Complete { token: Vec<u8>, authorization_id: String },
}

#[derive(Debug)]
enum State {
    Start,
    Challenged,
    /// Complete or failed: nothing more is accepted.
    Done,
}

/// One connection's DIGEST-MD5 server exchange.
#[derive(Debug)]
pub struct DigestMd5Server {
    nonce: String,
    state: State,
}

impl DigestMd5Server {
    /// A fresh exchange whose challenge carries `nonce` (base64 of
    /// [`NONCE_BYTES`] random bytes, from the caller's CSPRNG).
    pub fn new(nonce: String) -> Self {
        DigestMd5Server { nonce, state: State::Start }
    }

    pub fn is_complete_or_failed(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Feeds one client token. After an error the exchange is over.
    pub fn step(&mut self, token: &[u8], credentials: &Credentials) -> Result<Step, SaslError> {
        let state = std::mem::replace(&mut self.state, State::Done);
        match state {
            State::Start if !token.is_empty() => Err(SaslError::InitialResponse),
            State::Start => {
                self.state = State::Challenged;
                let challenge =
                    format!("realm=\"{SERVER_NAME}\",nonce=\"{}\",charset=utf-8,algorithm=md5-sess", self.nonce);
                Ok(Step::Continue(challenge.into_bytes()))
            }
            State::Challenged => self.verify(token, credentials),
            State::Done => Err(SaslError::IllegalState),
        }
    }

    fn verify(&self, token: &[u8], credentials: &Credentials) -> Result<Step, SaslError> {
        if token.len() >= RESPONSE_BYTES_MAX {
            return Err(SaslError::ResponseTooLong { length: token.len() });
        }
        let directives = parse_directives(token)?;
        let get = |name: &'static str| directives.get(name).map(String::as_str);
        let require = |name: &'static str| get(name).ok_or(SaslError::Missing(name));
        if let Some(charset) = get("charset") {
            if !charset.eq_ignore_ascii_case("utf-8") {
                return Err(SaslError::Format("Incompatible charset value"));
            }
        }
        let username = require("username")?;
        let realm = get("realm").unwrap_or("");
        if !realm.is_empty() && realm != SERVER_NAME {
            return Err(SaslError::UnknownRealm(realm.to_string()));
        }
        let nonce = require("nonce")?;
        if nonce.as_bytes().ct_eq(self.nonce.as_bytes()).unwrap_u8() != 1 {
            return Err(SaslError::Format("Mismatched nonce."));
        }
        let cnonce = require("cnonce")?;
        let nonce_count = require("nc")?;
        if u32::from_str_radix(nonce_count, 16).ok() != Some(1) {
            return Err(SaslError::NonceCount(nonce_count.to_string()));
        }
        let qop = get("qop").unwrap_or("auth");
        if qop != "auth" {
            return Err(SaslError::Qop(qop.to_string()));
        }
        let digest_uri = require("digest-uri")?;
        let expected_uri_matches = digest_uri.split_once('/').is_some_and(|(service, host)| {
            service.eq_ignore_ascii_case(SERVICE) && host.eq_ignore_ascii_case(SERVER_NAME)
        });
        if !expected_uri_matches {
            return Err(SaslError::Uri(digest_uri.to_string()));
        }
        let response = require("response")?;
        let authzid = get("authzid");
        // An unknown user is checked against a password no response can
        // match, so both failures take the same path and the same time.
        let (password, known) = match credentials.passwords.get(username) {
            Some(password) => (password.as_str(), true),
            None => ("\u{0}unknown user\u{0}", false),
        };
        let parts = DigestParts { username, realm, password, nonce, cnonce, nonce_count, qop, digest_uri, authzid };
        let expected = parts.response_value(&format!("AUTHENTICATE:{digest_uri}"));
        let matches = response.to_ascii_lowercase().as_bytes().ct_eq(expected.as_bytes()).unwrap_u8() == 1;
        if !(matches && known) {
            return Err(SaslError::MismatchedResponse);
        }
        let rspauth = parts.response_value(&format!(":{digest_uri}"));
        Ok(Step::Complete { token: format!("rspauth={rspauth}").into_bytes(), authorization_id: username.to_string() })
    }
}

/// The inputs of RFC 2831's response-value (section 2.1.2.1).
struct DigestParts<'a> {
    username: &'a str,
    realm: &'a str,
    password: &'a str,
    nonce: &'a str,
    cnonce: &'a str,
    nonce_count: &'a str,
    qop: &'a str,
    digest_uri: &'a str,
    authzid: Option<&'a str>,
}

impl DigestParts<'_> {
    /// HEX(KD(HEX(H(A1)), nonce:nc:cnonce:qop:HEX(H(A2)))), with
    /// A1 = H(user:realm:password):nonce:cnonce[:authzid].
    fn response_value(&self, a2: &str) -> String {
        debug_assert!(a2.ends_with(self.digest_uri));
        let user_realm_password = Md5::digest(format!("{}:{}:{}", self.username, self.realm, self.password));
        let mut a1 = Md5::new();
        a1.update(user_realm_password);
        a1.update(format!(":{}:{}", self.nonce, self.cnonce));
        if let Some(authzid) = self.authzid {
            a1.update(format!(":{authzid}"));
        }
        let a1_hex = hex(&a1.finalize());
        let a2_hex = hex(&Md5::digest(a2.as_bytes()));
        let kd = format!("{a1_hex}:{}:{}:{}:{}:{a2_hex}", self.nonce, self.nonce_count, self.cnonce, self.qop);
        hex(&Md5::digest(kd.as_bytes()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Splits `name=value,name="quoted \" value",...` into a map. Names are
/// case-insensitive; a directive given twice is an error (RFC 2831 lets
/// none of the ones used here repeat).
fn parse_directives(token: &[u8]) -> Result<BTreeMap<String, String>, SaslError> {
    let text = std::str::from_utf8(token).map_err(|_| SaslError::Format("The response is not UTF-8."))?;
    let mut directives = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(directives);
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            name.push(c);
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(SaslError::Format("A directive has no value."));
        }
        let name = name.trim().to_ascii_lowercase();
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(SaslError::Format("Unterminated quoted value.")),
                    Some('"') => break,
                    Some('\\') => value.push(chars.next().ok_or(SaslError::Format("Unterminated quoted value."))?),
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
            value = value.trim().to_string();
        }
        if directives.insert(name.clone(), value).is_some() {
            return Err(SaslError::Repeated(name));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials() -> Credentials {
        Credentials::new(BTreeMap::from([
            ("jaasuser".to_string(), "jaas_password".to_string()),
            ("super".to_string(), "super_secret".to_string()),
        ]))
    }

    /// An exchange recorded against Apache ZooKeeper 3.8 (the reference
    /// harness, user jaasuser) with kazoo's pure-sasl: replaying the
    /// client's response with the same nonce must give the same rspauth.
    #[test]
    fn replays_an_exchange_recorded_against_zookeeper() {
        let nonce = "9MGA98d8YOLhkeLKOkI6p7r9EaPvCqzY63LsyLXf";
        let mut server = DigestMd5Server::new(nonce.to_string());
        let challenge = server.step(b"", &credentials()).unwrap();
        assert_eq!(
            challenge,
            Step::Continue(
                format!("realm=\"zk-sasl-md5\",nonce=\"{nonce}\",charset=utf-8,algorithm=md5-sess").into_bytes()
            )
        );
        let response = format!(
            "qop=auth,realm=\"zk-sasl-md5\",username=\"jaasuser\",nonce=\"{nonce}\",cnonce=\"6037398199927158\",\
             nc=00000001,digest-uri=\"zookeeper/zk-sasl-md5\",response=4c41e94c7c2332cf40ac8e5a9049cc3b"
        );
        let done = server.step(response.as_bytes(), &credentials()).unwrap();
        assert_eq!(
            done,
            Step::Complete {
                token: b"rspauth=a53328ccc845c3b61d834a8ff8f3b558".to_vec(),
                authorization_id: "jaasuser".into()
            }
        );
        assert_eq!(server.step(b"", &credentials()), Err(SaslError::IllegalState));
    }

    fn response_for(nonce: &str, user: &str, password: &str, extra: &str) -> String {
        let parts = DigestParts {
            username: user,
            realm: SERVER_NAME,
            password,
            nonce,
            cnonce: "abc",
            nonce_count: "00000001",
            qop: "auth",
            digest_uri: "zookeeper/zk-sasl-md5",
            authzid: None,
        };
        let value = parts.response_value("AUTHENTICATE:zookeeper/zk-sasl-md5");
        format!(
            "username=\"{user}\",realm=\"zk-sasl-md5\",nonce=\"{nonce}\",cnonce=\"abc\",nc=00000001,qop=auth,\
             digest-uri=\"zookeeper/zk-sasl-md5\",response={value}{extra}"
        )
    }

    fn challenged() -> DigestMd5Server {
        let mut server = DigestMd5Server::new("n0nce".into());
        server.step(b"", &credentials()).unwrap();
        server
    }

    #[test]
    fn wrong_password_and_unknown_user_fail_alike() {
        let wrong = response_for("n0nce", "jaasuser", "nope", "");
        assert_eq!(challenged().step(wrong.as_bytes(), &credentials()), Err(SaslError::MismatchedResponse));
        let unknown = response_for("n0nce", "baduser", "badpassword", "");
        assert_eq!(challenged().step(unknown.as_bytes(), &credentials()), Err(SaslError::MismatchedResponse));
        let right = response_for("n0nce", "super", "super_secret", "");
        assert!(matches!(
            challenged().step(right.as_bytes(), &credentials()),
            Ok(Step::Complete { authorization_id, .. }) if authorization_id == "super"
        ));
    }

    #[test]
    fn every_directive_is_checked() {
        let base = response_for("n0nce", "jaasuser", "jaas_password", "");
        let check = |token: String, error: SaslError| {
            assert_eq!(challenged().step(token.as_bytes(), &credentials()), Err(error), "{token}");
        };
        check(base.replace("nonce=\"n0nce\"", "nonce=\"other\""), SaslError::Format("Mismatched nonce."));
        check(base.replace("nc=00000001", "nc=00000002"), SaslError::NonceCount("00000002".into()));
        check(base.replace("qop=auth", "qop=auth-conf"), SaslError::Qop("auth-conf".into()));
        check(base.replace("zookeeper/zk-sasl-md5", "http/example"), SaslError::Uri("http/example".into()));
        check(
            base.replace("realm=\"zk-sasl-md5\"", "realm=\"elsewhere\""),
            SaslError::UnknownRealm("elsewhere".into()),
        );
        check(base.replace(",cnonce=\"abc\"", ""), SaslError::Missing("cnonce"));
        check(format!("{base},username=\"again\""), SaslError::Repeated("username".into()));
        check(format!("{base},charset=latin1"), SaslError::Format("Incompatible charset value"));
        check("x".repeat(RESPONSE_BYTES_MAX), SaslError::ResponseTooLong { length: RESPONSE_BYTES_MAX });
        check("username=\"unterminated".into(), SaslError::Format("Unterminated quoted value."));
        check("novalue".into(), SaslError::Format("A directive has no value."));
        // Once failed, the exchange accepts nothing more.
        let mut server = challenged();
        assert!(server.step(b"garbage", &credentials()).is_err());
        assert_eq!(server.step(base.as_bytes(), &credentials()), Err(SaslError::IllegalState));
    }

    #[test]
    fn an_initial_response_is_refused() {
        let mut server = DigestMd5Server::new("n".into());
        assert_eq!(server.step(b"username=x", &credentials()), Err(SaslError::InitialResponse));
        assert!(server.is_complete_or_failed());
    }

    #[test]
    fn authzid_enters_the_digest_and_uppercase_hex_is_accepted() {
        let parts = DigestParts {
            username: "jaasuser",
            realm: SERVER_NAME,
            password: "jaas_password",
            nonce: "n0nce",
            cnonce: "abc",
            nonce_count: "00000001",
            qop: "auth",
            digest_uri: "zookeeper/zk-sasl-md5",
            authzid: Some("other"),
        };
        let value = parts.response_value("AUTHENTICATE:zookeeper/zk-sasl-md5").to_ascii_uppercase();
        let token = format!(
            "username=\"jaasuser\",realm=\"zk-sasl-md5\",nonce=\"n0nce\",cnonce=\"abc\",nc=00000001,qop=auth,\
             digest-uri=\"zookeeper/zk-sasl-md5\",authzid=\"other\",response={value}"
        );
        // ZooKeeper authorizes the authenticated user, whatever authzid asks.
        assert!(matches!(
            challenged().step(token.as_bytes(), &credentials()),
            Ok(Step::Complete { authorization_id, .. }) if authorization_id == "jaasuser"
        ));
    }

    #[test]
    fn debug_hides_passwords() {
        let shown = format!("{:?}", credentials());
        assert!(shown.contains("jaasuser") && !shown.contains("jaas_password"));
    }
}
