//! The server's Kerberos acceptor over the system's GSS-API (MIT krb5
//! through libgssapi): the one part of [`crate::auth`] that does IO. It
//! reads the keytab (once, at start, as ZooKeeper's JAAS login does) and
//! runs `gss_accept_sec_context`, `gss_wrap` and `gss_unwrap` for
//! [`super::gssapi::GssapiServer`], which decides everything else.
//!
//! The calls run on the connection's shard, as the DIGEST-MD5 exchange
//! does: accepting a Kerberos ticket needs no KDC round trip (a decryption
//! with the service key and a replay-cache entry), and it is paid once per
//! connection. ZooKeeper runs the same work on its IO worker threads.
//!
//! Without the cargo feature `kerberos` the types still exist, uninhabited,
//! and [`Acceptor::acquire`] answers [`AcceptorError::NotBuilt`], so the
//! rest of the server has no feature switches.

use std::path::PathBuf;

use thiserror::Error;

use super::gssapi::KRB5_LOGIN_MODULE;

/// Why the server's Kerberos credential cannot be had: a start error.
#[derive(Debug, Error)]
pub enum AcceptorError {
    #[error("keyTab {}: {error}", path.display())]
    KeyTab { path: PathBuf, error: std::io::Error },
    #[error("principal {principal:?}: {message}")]
    Principal { principal: String, message: String },
    #[error("principal {principal:?} has no usable key in keyTab {}: {message}", key_tab.display())]
    Credential { principal: String, key_tab: PathBuf, message: String },
    #[error("the default realm of krb5.conf (KRB5_CONFIG) cannot be read: {0}")]
    DefaultRealm(String),
    #[error("zoocore was built without the `kerberos` feature: {KRB5_LOGIN_MODULE} is not available")]
    NotBuilt,
}

#[cfg(feature = "kerberos")]
mod system {

    use std::path::PathBuf;

    use libgssapi::context::{SecurityContext, ServerCtx};
    use libgssapi::credential::{Cred, CredUsage};
    use libgssapi::name::Name;
    use libgssapi::oid::{OidSet, GSS_MECH_KRB5, GSS_NT_KRB5_PRINCIPAL};

    use super::AcceptorError;
    use crate::auth::gssapi::{AcceptContext, KerberosLogin};

    /// The server's acceptor credential: the service principal's key from
    /// the keytab, acquired once at start (as ZooKeeper logs in once).
    pub struct Acceptor {
        principal: String,
        key_tab: PathBuf,
        default_realm: String,
        credential: Cred,
    }

    impl Acceptor {
        /// Acquires the credential of `login`. MIT krb5 names the acceptor's
        /// keytab through the process environment (`KRB5_KTNAME`), which
        /// this sets: a server has one JAAS `Server` principal, and this
        /// runs at start, before any other thread uses Kerberos.
        pub fn acquire(login: &KerberosLogin) -> Result<Acceptor, AcceptorError> {
            let key_tab = login.key_tab.clone();
            // Opened first so a missing or unreadable file is named as such,
            // not as the library's "no key table entry".
            std::fs::File::open(&key_tab).map_err(|error| AcceptorError::KeyTab { path: key_tab.clone(), error })?;
            std::env::set_var("KRB5_KTNAME", format!("FILE:{}", key_tab.display()));
            let principal_error = |error: libgssapi::error::Error| AcceptorError::Principal {
                principal: login.principal.clone(),
                message: error.to_string(),
            };
            let name = Name::new(login.principal.as_bytes(), Some(GSS_NT_KRB5_PRINCIPAL)).map_err(principal_error)?;
            let name = name.canonicalize(Some(GSS_MECH_KRB5)).map_err(principal_error)?;
            let mut mechanisms = OidSet::new();
            mechanisms.add(GSS_MECH_KRB5).map_err(principal_error)?;
            let credential =
                Cred::acquire(Some(&name), None, CredUsage::Accept, Some(&mechanisms)).map_err(|error| {
                    AcceptorError::Credential {
                        principal: login.principal.clone(),
                        key_tab: key_tab.clone(),
                        message: error.to_string(),
                    }
                })?;
            let principal = display(&name)
                .map_err(|message| AcceptorError::Principal { principal: login.principal.clone(), message })?;
            Ok(Acceptor { principal, key_tab, default_realm: default_realm()?, credential })
        }

        /// The service principal, with its realm.
        pub fn principal(&self) -> &str {
            &self.principal
        }

        pub fn key_tab(&self) -> &std::path::Path {
            &self.key_tab
        }

        /// krb5.conf's default realm, as the library reads it.
        pub fn default_realm(&self) -> &str {
            &self.default_realm
        }

        /// A fresh context for one connection's exchange.
        pub fn context(&self) -> Context {
            Context(ServerCtx::new(Some(self.credential.clone())))
        }
    }

    /// The default realm, as the library resolves a name without one: the
    /// realm it appends to a bare principal.
    fn default_realm() -> Result<String, AcceptorError> {
        let failed = |message: String| AcceptorError::DefaultRealm(message);
        let bare = Name::new(b"zoocore", Some(GSS_NT_KRB5_PRINCIPAL)).map_err(|error| failed(error.to_string()))?;
        let full = bare.canonicalize(Some(GSS_MECH_KRB5)).map_err(|error| failed(error.to_string()))?;
        let full = display(&full).map_err(failed)?;
        Ok(full.split_once('@').map(|(_, realm)| realm.to_string()).unwrap_or_default())
    }

    fn display(name: &Name) -> Result<String, String> {
        let shown = name.display_name().map_err(|error| error.to_string())?;
        String::from_utf8(shown.to_vec()).map_err(|_| "the name is not UTF-8".to_string())
    }

    /// One connection's acceptor context.
    pub struct Context(ServerCtx);

    impl AcceptContext for Context {
        fn accept(&mut self, token: &[u8]) -> Result<(Option<Vec<u8>>, bool), String> {
            let reply = self.0.step(token, None).map_err(|error| error.to_string())?;
            Ok((reply.map(|reply| reply.to_vec()), self.0.is_complete()))
        }

        fn peer(&self) -> Result<String, String> {
            display(&self.0.source_name().map_err(|error| error.to_string())?)
        }

        fn wrap(&mut self, message: &[u8]) -> Result<Vec<u8>, String> {
            self.0.wrap(false, message).map(|wrapped| wrapped.to_vec()).map_err(|error| error.to_string())
        }

        fn unwrap(&mut self, message: &[u8]) -> Result<Vec<u8>, String> {
            self.0.unwrap(message).map(|plain| plain.to_vec()).map_err(|error| error.to_string())
        }
    }
}

// Built without Kerberos: a `Krb5LoginModule` is refused at start.
#[cfg(not(feature = "kerberos"))]
mod system {

    use super::AcceptorError;
    use crate::auth::gssapi::{AcceptContext, KerberosLogin};

    pub enum Acceptor {}

    impl Acceptor {
        pub fn acquire(_login: &KerberosLogin) -> Result<Acceptor, AcceptorError> {
            Err(AcceptorError::NotBuilt)
        }

        pub fn principal(&self) -> &str {
            match *self {}
        }

        pub fn key_tab(&self) -> &std::path::Path {
            match *self {}
        }

        pub fn default_realm(&self) -> &str {
            match *self {}
        }

        pub fn context(&self) -> Context {
            match *self {}
        }
    }

    /// Never made: only an [`Acceptor`] makes one, and there is none.
    pub struct Context;

    impl AcceptContext for Context {
        fn accept(&mut self, _token: &[u8]) -> Result<(Option<Vec<u8>>, bool), String> {
            Err(AcceptorError::NotBuilt.to_string())
        }

        fn peer(&self) -> Result<String, String> {
            Err(AcceptorError::NotBuilt.to_string())
        }

        fn wrap(&mut self, _message: &[u8]) -> Result<Vec<u8>, String> {
            Err(AcceptorError::NotBuilt.to_string())
        }

        fn unwrap(&mut self, _message: &[u8]) -> Result<Vec<u8>, String> {
            Err(AcceptorError::NotBuilt.to_string())
        }
    }
}

pub use system::{Acceptor, Context};

impl std::fmt::Debug for Acceptor {
    // The principal and the keytab's path only: never key material.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Acceptor")
            .field("principal", &self.principal())
            .field("key_tab", &self.key_tab())
            .finish()
    }
}

impl PartialEq for Acceptor {
    fn eq(&self, other: &Self) -> bool {
        self.principal() == other.principal() && self.key_tab() == other.key_tab()
    }
}

impl Eq for Acceptor {}
