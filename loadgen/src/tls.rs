//! TLS for the loadgen's connections (`--tls`), to measure what TLS costs a
//! request against the same workload over plain TCP.
//!
//! rustls, as the server uses, driven by hand (`read_tls`, `write_tls`) so
//! that the same `Link` serves the blocking setup client and the mix
//! engine's non-blocking, edge-triggered sockets. The handshake happens on
//! the first write and read of the ZooKeeper connect request, so no
//! workload changes: it writes and reads a `Link` as it wrote a socket.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

/// What `--tls` and its files configure.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    /// PEM certificates of the CAs that sign the server's certificate.
    pub ca: PathBuf,
    /// PEM certificate chain and key, for servers with `ssl.clientAuth=need`.
    pub certificate: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// The name the server's certificate must carry; the host's IP address
    /// when absent.
    pub server_name: Option<String>,
}

/// A client TLS configuration, made once per run.
#[derive(Clone)]
pub struct Tls {
    config: Arc<ClientConfig>,
    server_name: Option<ServerName<'static>>,
}

impl Tls {
    /// Reads the files; the error names the file and what was wrong.
    pub fn load(files: &TlsFiles) -> Result<Tls, String> {
        let mut roots = RootCertStore::empty();
        let cas = CertificateDer::pem_file_iter(&files.ca)
            .map_err(|error| format!("--tls-ca {}: {error}", files.ca.display()))?;
        for ca in cas {
            let ca = ca.map_err(|error| format!("--tls-ca {}: {error}", files.ca.display()))?;
            roots.add(ca).map_err(|error| format!("--tls-ca {}: {error}", files.ca.display()))?;
        }
        if roots.is_empty() {
            return Err(format!("--tls-ca {}: no certificate in it", files.ca.display()));
        }
        let builder = ClientConfig::builder_with_provider(Arc::new(zoocore::tls::crypto_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|error| error.to_string())?
            .with_root_certificates(roots);
        let config = match (&files.certificate, &files.key) {
            (Some(certificate), Some(key)) => {
                let chain: Result<Vec<_>, _> = CertificateDer::pem_file_iter(certificate)
                    .map_err(|error| format!("--tls-cert {}: {error}", certificate.display()))?
                    .collect();
                let chain = chain.map_err(|error| format!("--tls-cert {}: {error}", certificate.display()))?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|error| format!("--tls-key {}: {error}", key.display()))?;
                builder.with_client_auth_cert(chain, key).map_err(|error| format!("--tls-cert/--tls-key: {error}"))?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => return Err("--tls-cert and --tls-key go together".to_string()),
        };
        let server_name = match &files.server_name {
            Some(name) => {
                Some(ServerName::try_from(name.clone()).map_err(|error| format!("--tls-server-name {name}: {error}"))?)
            }
            None => None,
        };
        Ok(Tls { config: Arc::new(config), server_name })
    }

    fn session(&self, address: SocketAddr) -> io::Result<ClientConnection> {
        let name = self.server_name.clone().unwrap_or_else(|| ServerName::IpAddress(address.ip().into()));
        ClientConnection::new(self.config.clone(), name).map_err(io::Error::other)
    }
}

/// A connection's byte stream: the socket itself, or TLS over it.
pub enum Link<S> {
    Plain(S),
    Tls { session: Box<ClientConnection>, socket: S },
}

impl<S: Read + Write> Link<S> {
    /// `socket`, with TLS to the server at `address` when `tls` is given.
    pub fn new(socket: S, address: SocketAddr, tls: Option<&Tls>) -> io::Result<Link<S>> {
        Ok(match tls {
            None => Link::Plain(socket),
            Some(tls) => Link::Tls { session: Box::new(tls.session(address)?), socket },
        })
    }

    pub fn socket(&self) -> &S {
        match self {
            Link::Plain(socket) | Link::Tls { socket, .. } => socket,
        }
    }

    pub fn socket_mut(&mut self) -> &mut S {
        match self {
            Link::Plain(socket) | Link::Tls { socket, .. } => socket,
        }
    }

    /// The same link over another handle of its socket (the mix engine
    /// turns the setup client's blocking socket into a mio one).
    pub fn map_socket<T>(self, change: impl FnOnce(S) -> io::Result<T>) -> io::Result<Link<T>> {
        Ok(match self {
            Link::Plain(socket) => Link::Plain(change(socket)?),
            Link::Tls { session, socket } => Link::Tls { session, socket: change(socket)? },
        })
    }

    /// Whether a read that returned less than asked may still leave bytes
    /// behind: TLS hands out one record at a time, so an edge-triggered
    /// reader must go on until WouldBlock.
    pub fn reads_in_records(&self) -> bool {
        matches!(self, Link::Tls { .. })
    }

    /// Whether encrypted bytes wait for the socket to take them.
    pub fn has_pending_writes(&self) -> bool {
        matches!(self, Link::Tls { session, .. } if session.wants_write())
    }

    /// Sends what TLS has ready, until done or the socket would block.
    fn push(session: &mut ClientConnection, socket: &mut S) -> io::Result<()> {
        while session.wants_write() {
            match session.write_tls(socket) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "socket closed")),
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }
}

impl<S: Read + Write> Read for Link<S> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let (session, socket) = match self {
            Link::Plain(socket) => return socket.read(buffer),
            Link::Tls { session, socket } => (session, socket),
        };
        loop {
            match session.reader().read(buffer) {
                Ok(count) => return Ok(count),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => return Err(error),
            }
            // No plaintext yet: take more records from the socket (which
            // says WouldBlock or times out when it has none).
            if session.read_tls(socket)? == 0 {
                return Ok(0);
            }
            session.process_new_packets().map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?;
            // The handshake answers, alerts and key updates go out now.
            Self::push(session, socket)?;
        }
    }
}

impl<S: Read + Write> Write for Link<S> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let (session, socket) = match self {
            Link::Plain(socket) => return socket.write(bytes),
            Link::Tls { session, socket } => (session, socket),
        };
        // Encrypt what rustls takes (it bounds what it holds), then send.
        let taken = session.writer().write(bytes)?;
        Self::push(session, socket)?;
        if taken == 0 && !bytes.is_empty() {
            return Err(io::Error::from(io::ErrorKind::WouldBlock));
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Link::Plain(socket) => socket.flush(),
            Link::Tls { session, socket } => Self::push(session, socket),
        }
    }
}
