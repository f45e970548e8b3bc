//! The `x509` scheme: a TLS client's certificate subject as its identity,
//! as ZooKeeper's `X509AuthenticationProvider` makes it.
//!
//! ZooKeeper takes the subject of the first certificate of the chain the
//! TLS layer verified and renders it with Java's
//! `X500Principal.getName()`, the RFC 2253 form: the relative distinguished
//! names in reverse order of their encoding (most specific first, so
//! `CN=client,O=Example,C=US`), separated by commas without spaces, the
//! attributes RFC 2253 names by keyword (CN, C, L, ST, O, OU, STREET, DC,
//! UID) written with it and every other one by its dotted OID with the
//! value as `#` and the hex of its DER encoding. ACLs compare that string
//! exactly, so it must be byte for byte what Java prints; this module does
//! only that rendering, on bytes handed to it (the TLS layer has already
//! verified the chain), and does no IO.
//!
//! A subject equal to `zookeeper.X509AuthenticationProvider.superUser`
//! also gets the `super` identity, as in ZooKeeper.

use thiserror::Error;
use x509_parser::der_parser::asn1_rs::{Any, Class, Tag};

use crate::proto::Id;

/// Why a certificate gave no identity.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum X509Error {
    /// The certificate's DER does not parse.
    #[error("the client certificate does not parse: {0}")]
    Parse(String),
    /// The subject is empty: there is nothing to name the client by.
    #[error("the client certificate has an empty subject")]
    EmptySubject,
}

/// The attributes RFC 2253 names by keyword (Java prints exactly these by
/// name in `getName()`), by dotted OID.
const RFC2253_KEYWORDS: [(&str, &str); 9] = [
    ("2.5.4.3", "CN"),
    ("2.5.4.6", "C"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.9", "STREET"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("0.9.2342.19200300.100.1.1", "UID"),
];

/// The identities a verified client certificate (DER) gives a connection:
/// `super` first when its subject is `super_user`, then `x509`.
pub fn identities(certificate_der: &[u8], super_user: Option<&str>) -> Result<Vec<Id>, X509Error> {
    let subject = subject_name(certificate_der)?;
    let mut ids = Vec::with_capacity(2);
    if super_user == Some(subject.as_str()) {
        ids.push(Id::new("super", &subject));
    }
    ids.push(Id::new("x509", &subject));
    Ok(ids)
}

/// The certificate's subject as Java's `X500Principal.getName()` renders it.
pub fn subject_name(certificate_der: &[u8]) -> Result<String, X509Error> {
    let (_, certificate) =
        x509_parser::parse_x509_certificate(certificate_der).map_err(|error| X509Error::Parse(error.to_string()))?;
    let rdns: Vec<String> = certificate
        .subject()
        .iter()
        .map(|rdn| {
            rdn.iter()
                .map(|attribute| {
                    let oid = attribute.attr_type().to_id_string();
                    let value = attribute.attr_value();
                    match RFC2253_KEYWORDS.iter().find(|(known, _)| *known == oid) {
                        Some((_, keyword)) => match decode_string(value) {
                            Some(text) => format!("{keyword}={}", escape(&text)),
                            None => format!("{keyword}=#{}", der_hex(value)),
                        },
                        None => format!("{oid}=#{}", der_hex(value)),
                    }
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    if rdns.is_empty() {
        return Err(X509Error::EmptySubject);
    }
    Ok(rdns.into_iter().rev().collect::<Vec<_>>().join(","))
}

/// Whether an `x509` ACL id could be a subject: ZooKeeper accepts what
/// `new X500Principal(id)` parses, so at least one `type=value` pair, each
/// with a non-empty type.
pub fn is_valid_id(id: &str) -> bool {
    let mut parts = vec![String::new()];
    let mut escaped = false;
    for character in id.chars() {
        match character {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' | '+' => {
                parts.push(String::new());
                continue;
            }
            _ => {}
        }
        if let Some(part) = parts.last_mut() {
            part.push(character);
        }
    }
    !id.is_empty() && parts.iter().all(|part| part.split_once('=').is_some_and(|(name, _)| !name.trim().is_empty()))
}

/// The text of a directory string, or None for a value of another type
/// (printed in hex, as Java does).
fn decode_string(value: &Any<'_>) -> Option<String> {
    if value.class() != Class::Universal {
        return None;
    }
    let data = value.data;
    match value.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::NumericString | Tag::VisibleString => {
            std::str::from_utf8(data).ok().map(str::to_string)
        }
        // T.61 as ISO-8859-1, which is how Java reads it.
        Tag::TeletexString => Some(data.iter().map(|&byte| byte as char).collect()),
        Tag::BmpString => {
            let units: Vec<u16> = data
                .chunks(2)
                .filter(|pair| pair.len() == 2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        Tag::UniversalString => data
            .chunks(4)
            .map(|quad| {
                let bytes: [u8; 4] = quad.try_into().ok()?;
                char::from_u32(u32::from_be_bytes(bytes))
            })
            .collect(),
        _ => None,
    }
}

/// RFC 2253 escaping as Java's `AVA.toRFC2253String` does it: the special
/// characters and a leading `#` or space, or a trailing space, get a
/// backslash; control characters become `\XX` of their UTF-8 bytes.
fn escape(text: &str) -> String {
    const SPECIAL: &str = ",=+<>#;\"\\";
    let mut out = String::with_capacity(text.len());
    let characters: Vec<char> = text.chars().collect();
    for (index, &character) in characters.iter().enumerate() {
        let leading = index == 0 && (character == ' ' || character == '#');
        let trailing = index + 1 == characters.len() && character == ' ';
        if SPECIAL.contains(character) || leading || trailing {
            out.push('\\');
            out.push(character);
        } else if character.is_control() {
            let mut buffer = [0u8; 4];
            for byte in character.encode_utf8(&mut buffer).bytes() {
                out.push_str(&format!("\\{byte:02X}"));
            }
        } else {
            out.push(character);
        }
    }
    out
}

/// The value's whole DER encoding (tag, length, content) in lower-case hex.
fn der_hex(value: &Any<'_>) -> String {
    let mut der = Vec::with_capacity(value.data.len() + 6);
    let tag = value.tag().0;
    let first = ((value.class() as u8) << 6) | if value.header.is_constructed() { 0x20 } else { 0 };
    if tag < 31 {
        der.push(first | tag as u8);
    } else {
        der.push(first | 0x1f);
        let mut groups = Vec::new();
        let mut rest = tag;
        loop {
            groups.push((rest & 0x7f) as u8);
            rest >>= 7;
            if rest == 0 {
                break;
            }
        }
        for (index, group) in groups.iter().enumerate().rev() {
            der.push(if index == 0 { *group } else { group | 0x80 });
        }
    }
    let length = value.data.len();
    if length < 0x80 {
        der.push(length as u8);
    } else {
        let bytes = length.to_be_bytes();
        let skip = bytes.iter().take_while(|&&byte| byte == 0).count();
        der.push(0x80 | (bytes.len() - skip) as u8);
        der.extend_from_slice(&bytes[skip..]);
    }
    der.extend_from_slice(value.data);
    der.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_as_rfc2253() {
        assert_eq!(escape("a,b"), "a\\,b");
        assert_eq!(escape(" lead"), "\\ lead");
        assert_eq!(escape("#x"), "\\#x");
        assert_eq!(escape("trail "), "trail\\ ");
        assert_eq!(escape("plain name"), "plain name");
    }

    #[test]
    fn validates_ids_as_distinguished_names() {
        assert!(is_valid_id("CN=client,O=Example,C=US"));
        assert!(is_valid_id("CN=a+OU=b"));
        assert!(!is_valid_id(""));
        assert!(!is_valid_id("client"));
        assert!(!is_valid_id("=x"));
        assert!(is_valid_id("CN=a\\,b,O=c"));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(matches!(subject_name(b"not a certificate"), Err(X509Error::Parse(_))));
        assert!(matches!(identities(&[0x30, 0x82, 0xff], None), Err(X509Error::Parse(_))));
    }
}
