//! Jute, ZooKeeper's record serialization: big-endian integers, a one-byte
//! boolean, and length-prefixed buffers, strings and vectors where a length of
//! -1 means null.
//!
//! The reader is a cursor over one whole frame, so running out of bytes inside
//! a frame is a malformed record, never a reason to wait for more input. Every
//! length read from the wire is checked against the bytes that remain before
//! anything is allocated, so a hostile length cannot make the server reserve
//! memory it was not sent.

use std::fmt;

/// Why a frame could not be decoded. The connection that sent it is closed
/// with this as the logged reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The record needs more bytes than the frame holds.
    Truncated { needed: usize, remaining: usize },
    /// A length field is negative (other than -1 for null) or larger than the frame.
    BadLength(i32),
    /// A field holds a value the protocol does not allow here.
    Invalid(&'static str),
    /// The opcode is not one the server knows.
    UnknownOpcode(i32),
    /// A read inside multi or a write inside multiRead: ZooKeeper answers
    /// MarshallingError and keeps the connection.
    MultiOpNotAllowed { multi_read: bool },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated { needed, remaining } => {
                write!(f, "record truncated: needed {needed} more bytes, {remaining} remain")
            }
            DecodeError::BadLength(length) => write!(f, "invalid length field {length}"),
            DecodeError::Invalid(what) => write!(f, "invalid field: {what}"),
            DecodeError::UnknownOpcode(op) => write!(f, "unknown opcode {op}"),
            DecodeError::MultiOpNotAllowed { multi_read } => {
                write!(f, "operation not allowed in {}", if *multi_read { "multiRead" } else { "multi" })
            }
        }
    }
}

impl std::error::Error for DecodeError {}

pub type DecodeResult<T> = Result<T, DecodeError>;

/// A cursor over the bytes of one frame.
pub struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, position: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.position
    }

    pub fn position(&self) -> usize {
        self.position
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    fn take(&mut self, count: usize) -> DecodeResult<&'a [u8]> {
        if self.remaining() < count {
            return Err(DecodeError::Truncated { needed: count, remaining: self.remaining() });
        }
        let slice = &self.bytes[self.position..self.position + count];
        self.position += count;
        Ok(slice)
    }

    pub fn read_i32(&mut self) -> DecodeResult<i32> {
        let bytes = self.take(4)?;
        Ok(i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    pub fn read_i64(&mut self) -> DecodeResult<i64> {
        let bytes = self.take(8)?;
        let mut array = [0u8; 8];
        array.copy_from_slice(bytes);
        Ok(i64::from_be_bytes(array))
    }

    pub fn read_bool(&mut self) -> DecodeResult<bool> {
        Ok(self.take(1)?[0] != 0)
    }

    /// A length prefix: -1 is null, other negatives and lengths past the end
    /// of the frame are errors.
    fn read_length(&mut self) -> DecodeResult<Option<usize>> {
        let length = self.read_i32()?;
        if length == -1 {
            return Ok(None);
        }
        if length < 0 || length as usize > self.remaining() {
            return Err(DecodeError::BadLength(length));
        }
        Ok(Some(length as usize))
    }

    /// A buffer; null reads as empty, as ZooKeeper's server treats it.
    pub fn read_buffer(&mut self) -> DecodeResult<Vec<u8>> {
        Ok(self.read_buffer_slice()?.to_vec())
    }

    /// A buffer that keeps null (length -1) apart from empty, as znode data
    /// does: ZooKeeper returns null data as null.
    pub fn read_optional_buffer(&mut self) -> DecodeResult<Option<Vec<u8>>> {
        match self.read_length()? {
            None => Ok(None),
            Some(length) => Ok(Some(self.take(length)?.to_vec())),
        }
    }

    pub fn read_buffer_slice(&mut self) -> DecodeResult<&'a [u8]> {
        match self.read_length()? {
            None => Ok(&[]),
            Some(length) => self.take(length),
        }
    }

    /// A string; invalid UTF-8 is replaced as Java's decoder does, so that
    /// path validation, not the codec, rejects it with BadArguments.
    pub fn read_string(&mut self) -> DecodeResult<String> {
        let bytes = self.read_buffer_slice()?;
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }

    /// A vector whose elements each take at least `element_min_bytes`; null
    /// reads as empty.
    pub fn read_vec<T>(
        &mut self,
        element_min_bytes: usize,
        mut read_element: impl FnMut(&mut Self) -> DecodeResult<T>,
    ) -> DecodeResult<Vec<T>> {
        let count = self.read_i32()?;
        if count == -1 {
            return Ok(Vec::new());
        }
        if count < 0 || (count as usize).saturating_mul(element_min_bytes) > self.remaining() {
            return Err(DecodeError::BadLength(count));
        }
        let mut elements = Vec::with_capacity(count as usize);
        for _ in 0..count {
            elements.push(read_element(self)?);
        }
        Ok(elements)
    }

    pub fn read_string_vec(&mut self) -> DecodeResult<Vec<String>> {
        self.read_vec(4, |reader| reader.read_string())
    }
}

/// Appends jute fields to a byte vector.
pub struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Writer<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        Writer { out }
    }

    pub fn write_i32(&mut self, value: i32) {
        self.out.extend_from_slice(&value.to_be_bytes());
    }

    pub fn write_i64(&mut self, value: i64) {
        self.out.extend_from_slice(&value.to_be_bytes());
    }

    pub fn write_bool(&mut self, value: bool) {
        self.out.push(value as u8);
    }

    pub fn write_buffer(&mut self, bytes: &[u8]) {
        self.write_i32(bytes.len() as i32);
        self.out.extend_from_slice(bytes);
    }

    /// A buffer, or null (length -1) for None.
    pub fn write_optional_buffer(&mut self, bytes: Option<&[u8]>) {
        match bytes {
            Some(bytes) => self.write_buffer(bytes),
            None => self.write_null(),
        }
    }

    /// A null buffer (length -1).
    pub fn write_null(&mut self) {
        self.write_i32(-1);
    }

    pub fn write_string(&mut self, value: &str) {
        self.write_buffer(value.as_bytes());
    }

    pub fn write_string_vec<S: AsRef<str>>(&mut self, values: &[S]) {
        self.write_i32(values.len() as i32);
        for value in values {
            self.write_string(value.as_ref());
        }
    }

    pub fn len(&self) -> usize {
        self.out.len()
    }

    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }
}

/// Frames a record: reserves the 4-byte length, lets `body` write, then
/// patches the length in.
pub fn write_frame(out: &mut Vec<u8>, body: impl FnOnce(&mut Writer<'_>)) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    body(&mut Writer::new(out));
    let length = (out.len() - start - 4) as i32;
    out[start..start + 4].copy_from_slice(&length.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_primitives() {
        let mut out = Vec::new();
        let mut writer = Writer::new(&mut out);
        writer.write_i32(-7);
        writer.write_i64(1 << 40);
        writer.write_bool(true);
        writer.write_string("/a/b");
        writer.write_null();
        writer.write_string_vec(&["x", "yz"]);
        let mut reader = Reader::new(&out);
        assert_eq!(reader.read_i32().unwrap(), -7);
        assert_eq!(reader.read_i64().unwrap(), 1 << 40);
        assert!(reader.read_bool().unwrap());
        assert_eq!(reader.read_string().unwrap(), "/a/b");
        assert_eq!(reader.read_buffer().unwrap(), Vec::<u8>::new());
        assert_eq!(reader.read_string_vec().unwrap(), vec!["x", "yz"]);
        assert!(reader.is_empty());
    }

    #[test]
    fn hostile_lengths_are_errors_not_allocations() {
        let mut out = Vec::new();
        Writer::new(&mut out).write_i32(i32::MAX);
        assert_eq!(Reader::new(&out).read_buffer(), Err(DecodeError::BadLength(i32::MAX)));
        assert_eq!(Reader::new(&out).read_string_vec(), Err(DecodeError::BadLength(i32::MAX)));
        let mut negative = Vec::new();
        Writer::new(&mut negative).write_i32(-2);
        assert_eq!(Reader::new(&negative).read_buffer(), Err(DecodeError::BadLength(-2)));
        assert!(matches!(Reader::new(&[0, 0]).read_i32(), Err(DecodeError::Truncated { .. })));
    }

    #[test]
    fn frame_length_is_patched() {
        let mut out = vec![9];
        write_frame(&mut out, |writer| writer.write_i64(5));
        assert_eq!(&out[1..5], &8i32.to_be_bytes());
        assert_eq!(out.len(), 13);
    }
}
