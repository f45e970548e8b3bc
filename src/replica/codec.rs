//! The payload of a raft log entry: one transaction and the parts of its
//! header that the log index does not already give (the zxid is the index).
//!
//! A small tagged binary format written and read with the jute primitives,
//! so a damaged payload is refused field by field by the same bounds-checked
//! reader the wire uses. docs/formats/wal.md gives it byte by byte.

use std::sync::Arc;

use crate::proto::jute::{DecodeError, DecodeResult, Reader, Writer};
use crate::proto::Acl;
use crate::tree::{Txn, TxnHeader};

/// The payload format's version: the first byte of every payload. Version 2
/// adds the cxid after the session id; version 1 payloads are still read
/// (their cxid is `INTERNAL_CXID`: no live request waits for them).
pub const PAYLOAD_VERSION: u8 = 2;
const PAYLOAD_VERSION_1: u8 = 1;

const TAG_CREATE_SESSION: u8 = 1;
const TAG_CLOSE_SESSION: u8 = 2;
const TAG_CREATE: u8 = 3;
const TAG_DELETE: u8 = 4;
const TAG_SET_DATA: u8 = 5;
const TAG_SET_ACL: u8 = 6;
const TAG_CHECK: u8 = 7;
const TAG_ERROR: u8 = 8;
const TAG_MULTI: u8 = 9;

/// Multi nesting allowed when decoding: prep never nests multis, so a
/// deeper payload is damage, and the bound keeps recursion shallow.
const MULTI_DEPTH_MAX: usize = 2;

pub fn encode(header: &TxnHeader, txn: &Txn, out: &mut Vec<u8>) {
    out.push(PAYLOAD_VERSION);
    let mut writer = Writer::new(out);
    writer.write_i64(header.time_ms);
    writer.write_i64(header.session_id);
    writer.write_i32(header.cxid);
    encode_txn(txn, &mut writer);
}

fn encode_txn(txn: &Txn, writer: &mut Writer<'_>) {
    match txn {
        Txn::CreateSession { session_id, timeout_ms, password } => {
            writer.write_u8(TAG_CREATE_SESSION);
            writer.write_i64(*session_id);
            writer.write_i32(*timeout_ms);
            writer.write_buffer(password);
        }
        Txn::CloseSession { session_id } => {
            writer.write_u8(TAG_CLOSE_SESSION);
            writer.write_i64(*session_id);
        }
        Txn::Create { path, data, acl, ephemeral_owner } => {
            writer.write_u8(TAG_CREATE);
            writer.write_string(path);
            writer.write_optional_buffer(data.as_deref());
            Acl::encode_list(acl, writer);
            writer.write_i64(*ephemeral_owner);
        }
        Txn::Delete { path } => {
            writer.write_u8(TAG_DELETE);
            writer.write_string(path);
        }
        Txn::SetData { path, data } => {
            writer.write_u8(TAG_SET_DATA);
            writer.write_string(path);
            writer.write_optional_buffer(data.as_deref());
        }
        Txn::SetAcl { path, acl } => {
            writer.write_u8(TAG_SET_ACL);
            writer.write_string(path);
            Acl::encode_list(acl, writer);
        }
        Txn::Check { path } => {
            writer.write_u8(TAG_CHECK);
            writer.write_string(path);
        }
        Txn::Error { code } => {
            writer.write_u8(TAG_ERROR);
            writer.write_i32(*code);
        }
        Txn::Multi(txns) => {
            writer.write_u8(TAG_MULTI);
            writer.write_i32(txns.len() as i32);
            for sub in txns {
                encode_txn(sub, writer);
            }
        }
    }
}

/// Decodes a payload for the entry at `zxid`.
pub fn decode(zxid: i64, payload: &[u8]) -> DecodeResult<(TxnHeader, Txn)> {
    let Some((&version, rest)) = payload.split_first() else {
        return Err(DecodeError::Invalid("empty log payload"));
    };
    if version != PAYLOAD_VERSION && version != PAYLOAD_VERSION_1 {
        return Err(DecodeError::Invalid("unknown log payload version"));
    }
    let mut reader = Reader::new(rest);
    let time_ms = reader.read_i64()?;
    let session_id = reader.read_i64()?;
    let cxid = if version == PAYLOAD_VERSION_1 { crate::prep::INTERNAL_CXID } else { reader.read_i32()? };
    let header = TxnHeader { zxid, time_ms, session_id, cxid };
    let txn = decode_txn(&mut reader, 0)?;
    if !reader.is_empty() {
        return Err(DecodeError::Invalid("trailing bytes after the transaction"));
    }
    Ok((header, txn))
}

fn decode_txn(reader: &mut Reader<'_>, depth: usize) -> DecodeResult<Txn> {
    Ok(match reader.read_u8()? {
        TAG_CREATE_SESSION => {
            let session_id = reader.read_i64()?;
            let timeout_ms = reader.read_i32()?;
            let bytes = reader.read_buffer_slice()?;
            let password: [u8; 16] = bytes.try_into().map_err(|_| DecodeError::Invalid("session password length"))?;
            Txn::CreateSession { session_id, timeout_ms, password }
        }
        TAG_CLOSE_SESSION => Txn::CloseSession { session_id: reader.read_i64()? },
        TAG_CREATE => Txn::Create {
            path: Arc::from(reader.read_string()?),
            data: reader.read_optional_buffer()?.map(Arc::from),
            acl: Arc::from(Acl::decode_list(reader)?),
            ephemeral_owner: reader.read_i64()?,
        },
        TAG_DELETE => Txn::Delete { path: Arc::from(reader.read_string()?) },
        TAG_SET_DATA => {
            Txn::SetData { path: Arc::from(reader.read_string()?), data: reader.read_optional_buffer()?.map(Arc::from) }
        }
        TAG_SET_ACL => {
            Txn::SetAcl { path: Arc::from(reader.read_string()?), acl: Arc::from(Acl::decode_list(reader)?) }
        }
        TAG_CHECK => Txn::Check { path: Arc::from(reader.read_string()?) },
        TAG_ERROR => Txn::Error { code: reader.read_i32()? },
        TAG_MULTI => {
            if depth >= MULTI_DEPTH_MAX {
                return Err(DecodeError::Invalid("multi nested too deep"));
            }
            let count = reader.read_i32()?;
            if count < 0 || count as usize > reader.remaining() {
                return Err(DecodeError::BadLength(count));
            }
            let mut txns = Vec::with_capacity(count as usize);
            for _ in 0..count {
                txns.push(decode_txn(reader, depth + 1)?);
            }
            Txn::Multi(txns)
        }
        _ => return Err(DecodeError::Invalid("unknown transaction tag")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Txn> {
        let create =
            Txn::Create { path: Arc::from("/a"), data: None, acl: Arc::from(Acl::open_unsafe()), ephemeral_owner: 5 };
        vec![
            Txn::CreateSession { session_id: 9, timeout_ms: 4000, password: [7; 16] },
            Txn::CloseSession { session_id: 9 },
            create.clone(),
            Txn::Delete { path: Arc::from("/a") },
            Txn::SetData { path: Arc::from("/a"), data: Some(Arc::from(&b""[..])) },
            Txn::SetAcl { path: Arc::from("/a"), acl: Arc::from(Acl::read_unsafe()) },
            Txn::Check { path: Arc::from("/a") },
            Txn::Error { code: -101 },
            Txn::Multi(vec![create, Txn::Check { path: Arc::from("/a") }]),
            Txn::Multi(vec![]),
        ]
    }

    #[test]
    fn every_transaction_round_trips() {
        let header = TxnHeader { zxid: 42, time_ms: 1234, session_id: 77, cxid: 31 };
        for txn in samples() {
            let mut out = Vec::new();
            encode(&header, &txn, &mut out);
            assert_eq!(decode(42, &out).unwrap(), (header, txn));
        }
    }

    /// Logs written before the cxid was logged stay readable.
    #[test]
    fn version_1_payloads_are_read_without_a_cxid() {
        let header = TxnHeader { zxid: 42, time_ms: 1234, session_id: 77, cxid: 31 };
        for txn in samples() {
            let mut out = Vec::new();
            encode(&header, &txn, &mut out);
            // Version 1: the same bytes without the cxid's four.
            let mut old = vec![PAYLOAD_VERSION_1];
            old.extend_from_slice(&out[1..17]);
            old.extend_from_slice(&out[21..]);
            let expected = TxnHeader { cxid: crate::prep::INTERNAL_CXID, ..header };
            assert_eq!(decode(42, &old).unwrap(), (expected, txn));
        }
    }

    #[test]
    fn damage_is_an_error_not_a_panic() {
        let header = TxnHeader { zxid: 1, time_ms: 1, session_id: 1, cxid: 1 };
        for txn in samples() {
            let mut out = Vec::new();
            encode(&header, &txn, &mut out);
            for cut in 0..out.len() {
                assert!(decode(1, &out[..cut]).is_err(), "cut at {cut} of {txn:?}");
            }
            let mut bad_version = out.clone();
            bad_version[0] = 99;
            assert!(decode(1, &bad_version).is_err());
        }
    }
}
