//! ACLs and authentication, as ZooKeeper's ZooKeeperServer.checkACL,
//! PrepRequestProcessor.fixupACL and its authentication providers define
//! them. Schemes: world, auth, digest, ip, sasl (the identity a SASL
//! exchange establishes, see [`crate::auth`]), and the super user that a
//! digest matching `DigestAuthenticationProvider.superDigest` makes.

// The address value only; core has no sockets (tests/tidy.rs keeps std::net
// out of the IO-free modules).
use core::net::IpAddr;

use base64::Engine;
use sha1::{Digest, Sha1};

use crate::proto::{Acl, Id};

/// `user:base64(sha1(user:password))`, the id a digest ACL names.
pub fn digest(user_and_password: &str) -> String {
    let user = user_and_password.split(':').next().unwrap_or("");
    let hash = Sha1::digest(user_and_password.as_bytes());
    format!("{user}:{}", base64::engine::general_purpose::STANDARD.encode(hash))
}

/// The identities an `addauth` adds, or None if the scheme is not one the
/// server knows (the client then gets AuthFailed and is disconnected, as in
/// ZooKeeper). `ip` ignores what it is sent and names the client's address.
pub fn authenticate(scheme: &str, auth: &[u8], super_digest: Option<&str>, peer_ip: &str) -> Option<Vec<Id>> {
    match scheme {
        "ip" => Some(vec![Id::new("ip", peer_ip)]),
        "digest" => {
            let credentials = String::from_utf8_lossy(auth);
            let id = digest(&credentials);
            let mut ids = Vec::with_capacity(2);
            if super_digest.is_some_and(|expected| same_secret(expected.as_bytes(), id.as_bytes())) {
                ids.push(Id::new("super", ""));
            }
            ids.push(Id::new("digest", &id));
            Some(ids)
        }
        _ => None,
    }
}

/// Whether two secrets (a session password, a digest) are equal, in time
/// that depends on their lengths only, so that timing a refusal tells an
/// attacker nothing about how much of a guess was right.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

/// Whether identities `auth` hold permission `permission` under `acl`.
pub fn check(acl: &[Acl], auth: &[Id], permission: i32) -> bool {
    if acl.is_empty() || auth.iter().any(|id| id.scheme == "super") {
        return true;
    }
    acl.iter().filter(|entry| entry.perms & permission != 0).any(|entry| {
        let wanted = &entry.id;
        if wanted.scheme == "world" && wanted.id == "anyone" {
            return true;
        }
        auth.iter().filter(|id| id.scheme == wanted.scheme).any(|id| match wanted.scheme.as_str() {
            "ip" => ip_matches(&id.id, &wanted.id),
            // SASLAuthenticationProvider.matches: a SASL user named "super"
            // passes every sasl ACL.
            "sasl" => id.id == wanted.id || id.id == "super",
            _ => id.id == wanted.id,
        })
    })
}

/// Rewrites the `auth` scheme into the caller's authenticated identities,
/// validates every other entry and removes duplicates; None means
/// InvalidACL.
pub fn fixup(acl: &[Acl], auth: &[Id]) -> Option<Vec<Acl>> {
    if acl.is_empty() {
        return None;
    }
    let mut fixed: Vec<Acl> = Vec::with_capacity(acl.len());
    for entry in acl {
        match entry.id.scheme.as_str() {
            "world" if entry.id.id == "anyone" => fixed.push(entry.clone()),
            "auth" => {
                let mut any = false;
                for id in auth.iter().filter(|id| id.scheme != "ip" && id.scheme != "super") {
                    any = true;
                    fixed.push(Acl { perms: entry.perms, id: id.clone() });
                }
                if !any {
                    return None;
                }
            }
            "digest" if entry.id.id.split(':').count() == 2 => fixed.push(entry.clone()),
            "ip" if parse_ip_pattern(&entry.id.id).is_some() => fixed.push(entry.clone()),
            "sasl" if crate::auth::is_valid_sasl_id(&entry.id.id) => fixed.push(entry.clone()),
            "x509" if crate::auth::x509::is_valid_id(&entry.id.id) => fixed.push(entry.clone()),
            _ => return None,
        }
    }
    let mut unique: Vec<Acl> = Vec::with_capacity(fixed.len());
    for entry in fixed {
        if !unique.contains(&entry) {
            unique.push(entry);
        }
    }
    Some(unique)
}

/// Parses "10.0.0.0/8", "::1" or "127.0.0.1" into an address and prefix bits.
fn parse_ip_pattern(pattern: &str) -> Option<(IpAddr, u32)> {
    let (address, bits) = match pattern.split_once('/') {
        Some((address, bits)) => (address, Some(bits.parse::<u32>().ok()?)),
        None => (pattern, None),
    };
    let address: IpAddr = address.parse().ok()?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    let bits = bits.unwrap_or(max);
    (bits <= max).then_some((address, bits))
}

fn ip_matches(client: &str, pattern: &str) -> bool {
    let (Some((client, _)), Some((network, bits))) = (parse_ip_pattern(client), parse_ip_pattern(pattern)) else {
        return false;
    };
    match (client, network) {
        (IpAddr::V4(client), IpAddr::V4(network)) => {
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            u32::from(client) & mask == u32::from(network) & mask
        }
        (IpAddr::V6(client), IpAddr::V6(network)) => {
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            u128::from(client) & mask == u128::from(network) & mask
        }
        _ => false,
    }
}

/// The user name whoAmI reports for an identity.
pub fn user_name(id: &Id) -> String {
    match id.scheme.as_str() {
        "digest" => id.id.split(':').next().unwrap_or("").to_string(),
        "super" => String::new(),
        _ => id.id.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::codes::perms;

    #[test]
    fn secrets_are_equal_only_when_every_byte_and_the_length_agree() {
        assert!(same_secret(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!same_secret(b"0123456789abcdef", b"0123456789abcdeF"));
        assert!(!same_secret(b"0123456789abcdef", b"0123456789abcde"));
        assert!(!same_secret(b"", b"x"));
        let id = digest("super:test");
        assert_eq!(authenticate("digest", b"super:test", Some(&id), "127.0.0.1").unwrap()[0].scheme, "super");
        let wrong = authenticate("digest", b"super:wrong", Some(&id), "127.0.0.1").unwrap();
        assert!(wrong.iter().all(|id| id.scheme != "super"));
    }

    #[test]
    fn digest_matches_zookeeper() {
        // The superDigest of the reference harness: super:test.
        assert_eq!(digest("super:test"), "super:D/InIHSb7yEEbrWz8b9l71RjZJU=");
    }

    #[test]
    fn super_digest_adds_super() {
        let ids =
            authenticate("digest", b"super:test", Some("super:D/InIHSb7yEEbrWz8b9l71RjZJU="), "127.0.0.1").unwrap();
        assert_eq!(ids[0], Id::new("super", ""));
        assert!(check(&[Acl::new(perms::READ, "digest", "x:y")], &ids, perms::WRITE));
        assert!(authenticate("kerberos", b"x", None, "127.0.0.1").is_none());
        assert!(authenticate("world", b"anyone", None, "127.0.0.1").is_none());
        assert_eq!(authenticate("ip", b"10.0.0.1", None, "127.0.0.1"), Some(vec![Id::new("ip", "127.0.0.1")]));
    }

    #[test]
    fn permission_checks() {
        let user = Id::new("digest", &digest("u:p"));
        let acl = vec![Acl { perms: perms::READ, id: user.clone() }];
        assert!(check(&acl, std::slice::from_ref(&user), perms::READ));
        assert!(!check(&acl, std::slice::from_ref(&user), perms::WRITE));
        assert!(!check(&acl, &[Id::new("ip", "127.0.0.1")], perms::READ));
        assert!(check(&Acl::open_unsafe(), &[], perms::ADMIN));
        assert!(check(&[], &[], perms::ADMIN));
    }

    #[test]
    fn sasl_acls_match_the_user_or_a_sasl_super() {
        let acl = vec![Acl::new(perms::READ, "sasl", "jaasuser")];
        assert!(check(&acl, &[Id::new("sasl", "jaasuser")], perms::READ));
        assert!(!check(&acl, &[Id::new("sasl", "other")], perms::READ));
        assert!(!check(&acl, &[Id::new("digest", "jaasuser")], perms::READ));
        assert!(check(&acl, &[Id::new("sasl", "super")], perms::READ));
        assert_eq!(fixup(&acl, &[]), Some(acl.clone()));
    }

    #[test]
    fn ip_patterns() {
        let acl = vec![Acl::new(perms::ALL, "ip", "10.0.0.0/8")];
        assert!(check(&acl, &[Id::new("ip", "10.1.2.3")], perms::READ));
        assert!(!check(&acl, &[Id::new("ip", "11.1.2.3")], perms::READ));
        assert!(check(&[Acl::new(perms::ALL, "ip", "::1")], &[Id::new("ip", "::1")], perms::READ));
    }

    #[test]
    fn fixup_rewrites_auth_and_rejects_bad_entries() {
        let user = Id::new("digest", "u:hash");
        let fixed = fixup(&[Acl::new(perms::ALL, "auth", "")], &[Id::new("ip", "127.0.0.1"), user.clone()]);
        assert_eq!(fixed, Some(vec![Acl { perms: perms::ALL, id: user }]));
        assert_eq!(fixup(&[Acl::new(perms::ALL, "auth", "")], &[Id::new("ip", "127.0.0.1")]), None);
        assert_eq!(fixup(&[], &[]), None);
        assert_eq!(fixup(&[Acl::new(perms::ALL, "digest", "nocolon")], &[]), None);
        assert_eq!(fixup(&[Acl::new(perms::ALL, "digest", "a:b:c")], &[]), None);
        assert_eq!(fixup(&[Acl::new(perms::ALL, "world", "someone")], &[]), None);
        assert_eq!(fixup(&[Acl::new(perms::ALL, "ip", "300.1.1.1")], &[]), None);
        assert_eq!(fixup(&[Acl::new(perms::ALL, "foo", "bar")], &[]), None);
        assert_eq!(fixup(&[Acl::new(perms::ALL, "sasl", "a@b@c")], &[]), None);
        let sasl_user = Id::new("sasl", "jaasuser");
        let fixed = fixup(&[Acl::new(perms::ALL, "auth", "")], &[sasl_user.clone(), Id::new("ip", "127.0.0.1")]);
        assert_eq!(fixed, Some(vec![Acl { perms: perms::ALL, id: sasl_user }]));
        let doubled = vec![Acl::new(perms::ALL, "world", "anyone"); 2];
        assert_eq!(fixup(&doubled, &[]).unwrap().len(), 1);
    }
}
