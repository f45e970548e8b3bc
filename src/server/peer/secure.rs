//! TLS on the peer links (`sslQuorum`, the quorum's `portUnification`):
//! what a link's security is, the stream that is plain or TLS, and the
//! acceptor's TLS step and certificate check. Kept apart from the
//! transport in mod.rs, which reads and writes a [`PeerStream`] the same
//! way either way; the configurations come from crate::tls::quorum.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_lite::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use glommio::net::TcpStream;
use rustls::pki_types::{CertificateDer, ServerName};

use super::wire::Verdict;
use super::{Inner, PeerError};
use crate::tls::quorum::QuorumTls;

/// Whether the peer links run over TLS (`sslQuorum`, `portUnification`;
/// crate::tls::quorum) and what each peer's certificate must name.
pub struct PeerSecurity {
    pub(super) tls: Option<QuorumTls>,
    /// `sslQuorum`: outbound links are TLS and inbound ones must be.
    pub(super) ssl_quorum: bool,
    /// `portUnification`: inbound links may be TLS or plain, told apart by
    /// their first byte (a TLS record starts with 0x16, a hello with `Z`).
    pub(super) port_unification: bool,
    /// Each peer's host, as its server line writes it.
    pub(super) hosts: BTreeMap<u64, ServerName<'static>>,
}

/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

impl PeerSecurity {
    /// Plain TCP: the handshake's server id and ensemble checks alone.
    pub fn plain() -> PeerSecurity {
        PeerSecurity { tls: None, ssl_quorum: false, port_unification: false, hosts: BTreeMap::new() }
    }

    /// TLS as `sslQuorum` and `portUnification` say, with `hosts` the
    /// host of every server line by id. Without `tls` (neither key set),
    /// plain.
    pub fn new<'a>(
        tls: Option<QuorumTls>,
        ssl_quorum: bool,
        port_unification: bool,
        hosts: impl IntoIterator<Item = (u64, &'a str)>,
    ) -> Result<PeerSecurity, PeerError> {
        let Some(tls) = tls else { return Ok(PeerSecurity::plain()) };
        let mut names = BTreeMap::new();
        for (id, host) in hosts {
            let name = ServerName::try_from(host.to_string())
                .map_err(|_| PeerError::HostName { id, host: host.to_string() })?;
            names.insert(id, name);
        }
        Ok(PeerSecurity { tls: Some(tls), ssl_quorum, port_unification, hosts: names })
    }

    /// The TLS configuration outbound links use, if they use one.
    pub(super) fn dialling(&self) -> Option<&QuorumTls> {
        self.tls.as_ref().filter(|_| self.ssl_quorum)
    }
}

/// A peer connection, plain or TLS. The transport reads and writes it the
/// same way either way.
pub(super) enum PeerStream {
    Plain(TcpStream),
    Tls(Box<futures_rustls::TlsStream<TcpStream>>),
}

impl PeerStream {
    /// The certificate the other side presented, on a TLS link.
    pub(super) fn peer_certificate(&self) -> Option<CertificateDer<'static>> {
        match self {
            PeerStream::Plain(_) => None,
            PeerStream::Tls(stream) => {
                let (_, connection) = stream.get_ref();
                connection.peer_certificates().and_then(|chain| chain.first()).map(|c| c.clone().into_owned())
            }
        }
    }
}

impl AsyncRead for PeerStream {
    fn poll_read(self: Pin<&mut Self>, context: &mut Context<'_>, buffer: &mut [u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            PeerStream::Plain(stream) => Pin::new(stream).poll_read(context, buffer),
            PeerStream::Tls(stream) => Pin::new(stream.as_mut()).poll_read(context, buffer),
        }
    }
}

impl AsyncWrite for PeerStream {
    fn poll_write(self: Pin<&mut Self>, context: &mut Context<'_>, buffer: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            PeerStream::Plain(stream) => Pin::new(stream).poll_write(context, buffer),
            PeerStream::Tls(stream) => Pin::new(stream.as_mut()).poll_write(context, buffer),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            PeerStream::Plain(stream) => Pin::new(stream).poll_flush(context),
            PeerStream::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(context),
        }
    }

    fn poll_close(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            PeerStream::Plain(stream) => Pin::new(stream).poll_close(context),
            PeerStream::Tls(stream) => Pin::new(stream.as_mut()).poll_close(context),
        }
    }
}

/// Writes all of `bytes` and pushes them out: a TLS stream holds the
/// records it made until flushed.
pub(super) async fn send_all(stream: &mut (impl AsyncWrite + Unpin), bytes: &[u8]) -> std::io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}

/// The acceptor's TLS handshake, when the quorum port speaks TLS: the
/// stream to read the hello from, or why the connection is refused (a
/// plain peer on a TLS port, a certificate not from the trusted CA).
pub(super) async fn secure_inbound(inner: &Inner, stream: TcpStream) -> Result<PeerStream, String> {
    let security = &inner.security;
    let Some(tls) = &security.tls else { return Ok(PeerStream::Plain(stream)) };
    if security.port_unification {
        let mut first = [0u8; 1];
        let peeked = stream.peek(&mut first).await.map_err(|error| format!("no hello: {error}"))?;
        if peeked == 0 {
            return Err("closed before its hello".to_string());
        }
        if first[0] != TLS_HANDSHAKE_RECORD {
            return Ok(PeerStream::Plain(stream));
        }
    }
    match tls.acceptor().accept(stream).await {
        Ok(stream) => Ok(PeerStream::Tls(Box::new(futures_rustls::TlsStream::Server(stream)))),
        Err(error) => Err(format!("TLS handshake failed (sslQuorum: the quorum port speaks TLS only): {error}")),
    }
}

/// An accepted hello over TLS with hostname verification still needs a
/// certificate that names the host of the sender's server line
/// (crate::tls::quorum); Err says what it names instead.
pub(super) fn check_certificate(
    inner: &Inner,
    stream: &PeerStream,
    sender: u64,
    verdict: Verdict,
) -> Result<(), String> {
    let (Verdict::Accepted, Some(tls), Some(certificate)) =
        (verdict, inner.security.tls.as_ref(), stream.peer_certificate())
    else {
        return Ok(());
    };
    let host = inner.security.hosts.get(&sender).ok_or_else(|| format!("no host known for server {sender}"))?;
    tls.check_peer_name(&certificate, host).map_err(|error| format!("server.{sender} is {}: {error}", host.to_str()))
}
