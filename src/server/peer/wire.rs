//! The bytes of the peer protocol, free of IO: the handshake a connecting
//! server sends, the acceptor's answer, and the frame header. The shell in
//! `super` only moves these bytes; every check on them is here, with its
//! own typed error, so that it is tested without sockets.
//!
//! All integers are little-endian.
//!
//! Hello (connector to acceptor, 32 bytes):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `ZCPH` |
//! | 4 | 2 | protocol version, [`PROTOCOL_VERSION`] |
//! | 6 | 2 | reserved, 0 |
//! | 8 | 8 | sender's server id |
//! | 16 | 8 | the server id the sender means to reach |
//! | 24 | 8 | the sender's ensemble identity |
//!
//! Answer (acceptor to connector, 24 bytes):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `ZCPA` |
//! | 4 | 2 | protocol version |
//! | 6 | 1 | [`Verdict`] code: 0 accepted, otherwise why refused |
//! | 7 | 1 | reserved, 0 |
//! | 8 | 8 | acceptor's server id |
//! | 16 | 8 | acceptor's ensemble identity |
//!
//! After an accepting answer the connector sends frames and the acceptor
//! only reads them; each frame is an 8-byte header, the payload length
//! (u32) and the CRC-32C of the payload (u32), then the payload.

use thiserror::Error;

/// Identifies a zoocore peer hello.
pub const HELLO_MAGIC: [u8; 4] = *b"ZCPH";
/// Identifies a zoocore peer answer.
pub const ANSWER_MAGIC: [u8; 4] = *b"ZCPA";
/// The version of this protocol; a peer speaking another is refused.
pub const PROTOCOL_VERSION: u16 = 1;
/// Bytes in a hello.
pub const HELLO_BYTES: usize = 32;
/// Bytes in an answer.
pub const ANSWER_BYTES: usize = 24;
/// Bytes in a frame header.
pub const FRAME_HEADER_BYTES: usize = 8;

/// What a connecting server says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    /// The sender's server id.
    pub sender: u64,
    /// The id it means to reach.
    pub receiver: u64,
    /// The sender's ensemble identity.
    pub identity: u64,
}

/// The acceptor's decision on a hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Frames may follow.
    Accepted,
    /// The sender's id is not a member of the acceptor's ensemble.
    UnknownSender,
    /// The sender claims the acceptor's own id.
    OwnId,
    /// The sender's ensemble identity differs from the acceptor's.
    OtherEnsemble,
    /// The sender meant another server (its address list is wrong).
    WrongReceiver,
    /// The sender speaks another protocol version.
    Version,
    /// Over quorum TLS with hostname verification: the sender's
    /// certificate does not name the host of its id's server line.
    Certificate,
}

impl Verdict {
    fn code(self) -> u8 {
        match self {
            Verdict::Accepted => 0,
            Verdict::UnknownSender => 1,
            Verdict::OwnId => 2,
            Verdict::OtherEnsemble => 3,
            Verdict::WrongReceiver => 4,
            Verdict::Version => 5,
            Verdict::Certificate => 6,
        }
    }

    fn from_code(code: u8) -> Option<Verdict> {
        Some(match code {
            0 => Verdict::Accepted,
            1 => Verdict::UnknownSender,
            2 => Verdict::OwnId,
            3 => Verdict::OtherEnsemble,
            4 => Verdict::WrongReceiver,
            5 => Verdict::Version,
            6 => Verdict::Certificate,
            _ => return None,
        })
    }

    /// Why, in words, for the logs of both sides.
    pub fn reason(self) -> &'static str {
        match self {
            Verdict::Accepted => "accepted",
            Verdict::UnknownSender => "the sender's id is not in the acceptor's server list",
            Verdict::OwnId => "the sender claims the acceptor's own id",
            Verdict::OtherEnsemble => "the sender's server list (ids, roles, ports) differs from the acceptor's",
            Verdict::WrongReceiver => "the sender meant to reach another server id at this address",
            Verdict::Version => "the sender speaks another peer protocol version",
            Verdict::Certificate => {
                "the sender's certificate does not name the host of its id's server line (ssl.quorum.hostnameVerification)"
            }
        }
    }
}

/// The acceptor's answer as read by the connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// The decision.
    pub verdict: Verdict,
    /// The acceptor's id.
    pub acceptor: u64,
    /// The acceptor's ensemble identity.
    pub identity: u64,
}

/// Bytes that are not what the protocol says.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum WireError {
    /// The first bytes are not a zoocore peer hello or answer.
    #[error("bad magic {found:02x?} (not a zoocore peer)")]
    Magic {
        /// The four bytes found.
        found: [u8; 4],
    },
    /// The other side speaks another version.
    #[error("peer protocol version {found}, this server speaks {PROTOCOL_VERSION}")]
    Version {
        /// The version found.
        found: u16,
    },
    /// An answer carries a verdict code this version does not know.
    #[error("unknown verdict code {code}")]
    Verdict {
        /// The code found.
        code: u8,
    },
    /// A frame announces more bytes than the bound allows.
    #[error("frame of {length} bytes exceeds the bound of {bound} bytes")]
    FrameTooLong {
        /// The announced length.
        length: usize,
        /// `PeerLimits::frame_bytes_max`.
        bound: usize,
    },
    /// A frame's payload does not match its checksum.
    #[error("frame of {length} bytes fails its CRC-32C: header says {expected:#010x}, payload gives {actual:#010x}")]
    Checksum {
        /// The payload length.
        length: usize,
        /// The checksum in the header.
        expected: u32,
        /// The checksum of the payload received.
        actual: u32,
    },
}

fn u16_at(bytes: &[u8], offset: usize) -> u16 {
    u16::from_le_bytes([bytes[offset], bytes[offset + 1]])
}

fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[offset..offset + 4]);
    u32::from_le_bytes(word)
}

fn u64_at(bytes: &[u8], offset: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[offset..offset + 8]);
    u64::from_le_bytes(word)
}

fn magic_at(bytes: &[u8]) -> [u8; 4] {
    [bytes[0], bytes[1], bytes[2], bytes[3]]
}

impl Hello {
    /// The hello's bytes.
    pub fn encode(&self) -> [u8; HELLO_BYTES] {
        let mut bytes = [0u8; HELLO_BYTES];
        bytes[0..4].copy_from_slice(&HELLO_MAGIC);
        bytes[4..6].copy_from_slice(&PROTOCOL_VERSION.to_le_bytes());
        bytes[8..16].copy_from_slice(&self.sender.to_le_bytes());
        bytes[16..24].copy_from_slice(&self.receiver.to_le_bytes());
        bytes[24..32].copy_from_slice(&self.identity.to_le_bytes());
        bytes
    }

    /// Reads a hello. A version mismatch is reported with the hello's
    /// magic intact, so the acceptor can answer it with [`Verdict::Version`].
    pub fn decode(bytes: &[u8; HELLO_BYTES]) -> Result<Hello, WireError> {
        let magic = magic_at(bytes);
        if magic != HELLO_MAGIC {
            return Err(WireError::Magic { found: magic });
        }
        let version = u16_at(bytes, 4);
        if version != PROTOCOL_VERSION {
            return Err(WireError::Version { found: version });
        }
        Ok(Hello { sender: u64_at(bytes, 8), receiver: u64_at(bytes, 16), identity: u64_at(bytes, 24) })
    }

    /// The acceptor's decision: `members` tells whether an id is in its
    /// ensemble.
    pub fn judge(&self, my_id: u64, my_identity: u64, is_member: impl Fn(u64) -> bool) -> Verdict {
        if self.sender == my_id {
            Verdict::OwnId
        } else if !is_member(self.sender) {
            Verdict::UnknownSender
        } else if self.identity != my_identity {
            Verdict::OtherEnsemble
        } else if self.receiver != my_id {
            Verdict::WrongReceiver
        } else {
            Verdict::Accepted
        }
    }
}

impl Answer {
    /// The answer's bytes.
    pub fn encode(&self) -> [u8; ANSWER_BYTES] {
        let mut bytes = [0u8; ANSWER_BYTES];
        bytes[0..4].copy_from_slice(&ANSWER_MAGIC);
        bytes[4..6].copy_from_slice(&PROTOCOL_VERSION.to_le_bytes());
        bytes[6] = self.verdict.code();
        bytes[8..16].copy_from_slice(&self.acceptor.to_le_bytes());
        bytes[16..24].copy_from_slice(&self.identity.to_le_bytes());
        bytes
    }

    /// Reads an answer.
    pub fn decode(bytes: &[u8; ANSWER_BYTES]) -> Result<Answer, WireError> {
        let magic = magic_at(bytes);
        if magic != ANSWER_MAGIC {
            return Err(WireError::Magic { found: magic });
        }
        // An acceptor of another version still answers in this layout, so
        // its verdict (Version) is readable whatever its version number.
        let verdict = Verdict::from_code(bytes[6]).ok_or(WireError::Verdict { code: bytes[6] })?;
        Ok(Answer { verdict, acceptor: u64_at(bytes, 8), identity: u64_at(bytes, 16) })
    }
}

/// Appends one frame (header and payload) to `out`.
///
/// The caller keeps payloads within `u32` (the transport refuses longer
/// ones before queueing them).
pub fn encode_frame(payload: &[u8], out: &mut Vec<u8>) {
    let length = u32::try_from(payload.len()).expect("frames longer than u32 are refused before queueing");
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// A frame header read from the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Payload bytes that follow.
    pub length: usize,
    /// CRC-32C of the payload.
    pub checksum: u32,
}

impl FrameHeader {
    /// Reads a header, refusing a length above `frame_bytes_max` before any
    /// payload is read or allocated.
    pub fn decode(bytes: &[u8; FRAME_HEADER_BYTES], frame_bytes_max: usize) -> Result<FrameHeader, WireError> {
        let length = usize::try_from(u32_at(bytes, 0)).unwrap_or(usize::MAX);
        if length > frame_bytes_max {
            return Err(WireError::FrameTooLong { length, bound: frame_bytes_max });
        }
        Ok(FrameHeader { length, checksum: u32_at(bytes, 4) })
    }

    /// Checks a received payload against the header.
    pub fn check(&self, payload: &[u8]) -> Result<(), WireError> {
        let actual = crc32c::crc32c(payload);
        if actual != self.checksum {
            return Err(WireError::Checksum { length: payload.len(), expected: self.checksum, actual });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_round_trips_and_is_judged() {
        let hello = Hello { sender: 2, receiver: 1, identity: 0xabcd };
        let decoded = Hello::decode(&hello.encode()).unwrap();
        assert_eq!(decoded, hello);
        let members = |id: u64| (1..=3).contains(&id);
        assert_eq!(decoded.judge(1, 0xabcd, members), Verdict::Accepted);
        assert_eq!(Hello { sender: 9, ..hello }.judge(1, 0xabcd, members), Verdict::UnknownSender);
        assert_eq!(Hello { sender: 1, ..hello }.judge(1, 0xabcd, members), Verdict::OwnId);
        assert_eq!(hello.judge(1, 0xabce, members), Verdict::OtherEnsemble);
        assert_eq!(Hello { receiver: 3, ..hello }.judge(1, 0xabcd, members), Verdict::WrongReceiver);
    }

    #[test]
    fn bad_hellos_are_named() {
        let mut bytes = Hello { sender: 2, receiver: 1, identity: 7 }.encode();
        bytes[4] = 9;
        assert_eq!(Hello::decode(&bytes), Err(WireError::Version { found: 9 }));
        let garbage = *b"GET / HTTP/1.1\r\nHost: zk\r\n\r\n....";
        assert!(matches!(Hello::decode(&garbage), Err(WireError::Magic { .. })));
    }

    #[test]
    fn answers_round_trip() {
        for verdict in [
            Verdict::Accepted,
            Verdict::UnknownSender,
            Verdict::OwnId,
            Verdict::OtherEnsemble,
            Verdict::WrongReceiver,
            Verdict::Version,
            Verdict::Certificate,
        ] {
            let answer = Answer { verdict, acceptor: 3, identity: 11 };
            assert_eq!(Answer::decode(&answer.encode()), Ok(answer));
        }
        let mut bytes = Answer { verdict: Verdict::Accepted, acceptor: 3, identity: 11 }.encode();
        bytes[6] = 200;
        assert_eq!(Answer::decode(&bytes), Err(WireError::Verdict { code: 200 }));
    }

    #[test]
    fn frames_round_trip_and_damage_is_caught() {
        let mut out = Vec::new();
        encode_frame(b"hello", &mut out);
        encode_frame(b"", &mut out);
        let header_bytes: [u8; FRAME_HEADER_BYTES] = out[..8].try_into().unwrap();
        let header = FrameHeader::decode(&header_bytes, 64).unwrap();
        assert_eq!(header.length, 5);
        assert_eq!(header.check(&out[8..13]), Ok(()));
        assert!(matches!(header.check(b"hellO"), Err(WireError::Checksum { length: 5, .. })));
        let empty: [u8; FRAME_HEADER_BYTES] = out[13..21].try_into().unwrap();
        assert_eq!(FrameHeader::decode(&empty, 64).unwrap().length, 0);
        assert_eq!(FrameHeader::decode(&header_bytes, 4), Err(WireError::FrameTooLong { length: 5, bound: 4 }));
        let huge = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
        assert!(matches!(FrameHeader::decode(&huge, 64 << 20), Err(WireError::FrameTooLong { .. })));
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Issue 14, item 6: the handshake and frame header decoders take
            /// any bytes a connecting process sends without panicking, and a
            /// header never admits a payload above the bound.
            #[test]
            fn any_handshake_or_header_bytes_are_judged(
                hello in proptest::array::uniform32(any::<u8>()),
                answer in proptest::collection::vec(any::<u8>(), ANSWER_BYTES),
                header in proptest::array::uniform8(any::<u8>()),
                bound in 0usize..(1 << 30),
            ) {
                if let Ok(decoded) = Hello::decode(&hello) {
                    prop_assert_eq!(Hello::decode(&decoded.encode()).ok(), Some(decoded));
                }
                let answer: [u8; ANSWER_BYTES] = answer.try_into().unwrap();
                if let Ok(decoded) = Answer::decode(&answer) {
                    prop_assert_eq!(Answer::decode(&decoded.encode()).ok(), Some(decoded));
                }
                match FrameHeader::decode(&header, bound) {
                    Ok(decoded) => prop_assert!(decoded.length <= bound),
                    Err(WireError::FrameTooLong { length, .. }) => prop_assert!(length > bound),
                    Err(other) => prop_assert!(false, "unexpected {other:?}"),
                }
            }
        }
    }
}
