//! Why a client connection ended, as one typed value.
//!
//! Every end of a connection is named where it happens (the reader, the
//! writer, the handshake, the node's decisions) and carried to the one
//! place that logs it and counts it. The log line takes its text from
//! `Display` and its level from `is_routine`; the Prometheus page counts
//! ends by `CloseKind`, so an operator sees at a glance whether clients
//! leave on their own, send bytes zoocore cannot read, are refused, fail
//! authentication, or are sent away by the server.

use std::fmt;

/// The end of one client connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed its end between packets.
    ClientClosed,
    /// The client closed its end with a packet half sent.
    ClientClosedMidPacket,
    /// closeSession was answered.
    SessionClosedByClient,
    /// A four-letter word was answered.
    FourLetterWord,
    /// Reading the socket failed (the error's text).
    ReadFailed(String),
    /// Writing the socket failed: the client went away.
    WriteFailed,
    /// A packet length outside 0..=jute.maxbuffer.
    PacketLength {
        length: i32,
        max: usize,
    },
    MalformedHeader,
    UnknownOpcode(i32),
    /// An auth or sasl packet that does not decode.
    MalformedAuth(String),
    MalformedConnect(String),
    /// No handshake within zookeeper.nio.sessionlessCnxnTimeout.
    NoSessionInTime {
        ms: u128,
    },
    /// The client has seen a zxid this server has not reached.
    ClientAhead {
        seen: i64,
        ours: i64,
    },
    /// The node did not give the session (no leader, a refusal).
    SessionRefused,
    /// A resume of an expired or unknown session, or a wrong password.
    SessionExpiredOrWrongPassword,
    AuthFailed,
    SaslFailed,
    /// A request before authentication under enforce.auth.schemes.
    AuthRequired,
    /// Outgoing bytes over the per-connection bound (its size in bytes).
    NotReading {
        bound_bytes: usize,
    },
    /// What was queued at the close was not read within the linger.
    UnreadAtClose,
    Stopping,
    /// The node sent it away: session expired or moved, leader changed, …
    Node(&'static str),
}

pub use crate::metrics::CloseKind;

impl CloseReason {
    /// Ends that happen by the thousand in a healthy system: logged at
    /// debug, the others at info.
    pub fn is_routine(&self) -> bool {
        matches!(self, CloseReason::ClientClosed | CloseReason::SessionClosedByClient | CloseReason::FourLetterWord)
    }

    pub fn kind(&self) -> CloseKind {
        use CloseReason::*;
        match self {
            ClientClosed
            | ClientClosedMidPacket
            | SessionClosedByClient
            | FourLetterWord
            | ReadFailed(_)
            | WriteFailed => CloseKind::Client,
            PacketLength { .. } | MalformedHeader | UnknownOpcode(_) | MalformedAuth(_) | MalformedConnect(_) => {
                CloseKind::BadInput
            }
            NoSessionInTime { .. } | ClientAhead { .. } | SessionRefused | SessionExpiredOrWrongPassword => {
                CloseKind::Refused
            }
            AuthFailed | SaslFailed | AuthRequired => CloseKind::Auth,
            NotReading { .. } | UnreadAtClose | Stopping | Node(_) => CloseKind::Server,
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        use CloseReason::*;
        match self {
            ClientClosed => write!(formatter, "client closed the connection"),
            ClientClosedMidPacket => write!(formatter, "client closed the connection in the middle of a packet"),
            SessionClosedByClient => write!(formatter, "session closed by its client"),
            FourLetterWord => write!(formatter, "four-letter word"),
            ReadFailed(error) => write!(formatter, "read failed: {error}"),
            WriteFailed => write!(formatter, "write failed: the client went away"),
            PacketLength { length, max } => {
                write!(formatter, "packet length {length} is outside 0..={max} (jute.maxbuffer)")
            }
            MalformedHeader => write!(formatter, "malformed request header"),
            UnknownOpcode(opcode) => write!(formatter, "unknown opcode {opcode}"),
            MalformedAuth(error) => write!(formatter, "malformed auth packet: {error}"),
            MalformedConnect(error) => write!(formatter, "malformed connect request: {error}"),
            NoSessionInTime { ms } => {
                write!(formatter, "no session after {ms} ms (zookeeper.nio.sessionlessCnxnTimeout)")
            }
            ClientAhead { seen, ours } => write!(
                formatter,
                "refusing session request: the client has seen zxid 0x{seen:x}, our last zxid is 0x{ours:x}; it must try another server"
            ),
            SessionRefused => write!(formatter, "session refused"),
            SessionExpiredOrWrongPassword => write!(formatter, "session expired, unknown or wrong password"),
            AuthFailed => write!(formatter, "authentication failed"),
            SaslFailed => write!(formatter, "SASL authentication failed"),
            AuthRequired => write!(formatter, "authentication required (enforce.auth.schemes)"),
            NotReading { bound_bytes } => write!(
                formatter,
                "the client does not read its replies and watch events (outgoing buffer limit, {} MiB)",
                bound_bytes >> 20
            ),
            UnreadAtClose => write!(formatter, "the client did not read what was queued for it before the close"),
            Stopping => write!(formatter, "the server is stopping"),
            Node(reason) => write!(formatter, "{reason}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_label_and_index() {
        for (index, kind) in CloseKind::ALL.iter().enumerate() {
            assert_eq!(kind.index(), index);
        }
        let labels: std::collections::BTreeSet<&str> = CloseKind::ALL.iter().map(|kind| kind.as_str()).collect();
        assert_eq!(labels.len(), CloseKind::ALL.len());
    }

    #[test]
    fn routine_ends_are_the_clients_own() {
        assert!(CloseReason::ClientClosed.is_routine());
        assert!(!CloseReason::MalformedHeader.is_routine());
        assert_eq!(CloseReason::UnknownOpcode(77).kind(), CloseKind::BadInput);
        assert_eq!(CloseReason::Node("the ensemble's leader changed").to_string(), "the ensemble's leader changed");
        assert_eq!(
            CloseReason::PacketLength { length: -1, max: 1024 }.to_string(),
            "packet length -1 is outside 0..=1024 (jute.maxbuffer)"
        );
    }
}
