//! ZooKeeper's path rules (PathUtils.validatePath): absolute, no trailing
//! slash, no empty, "." or ".." segment, no NUL or control characters, and
//! none of the characters Java's UTF-16 strings reject (surrogates, private
//! use, U+FFF0..U+FFFF; in Rust terms also everything above U+FFFF, which
//! Java sees as a surrogate pair).

/// Checks a path; the error says what is wrong with it.
pub fn validate_path(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("path length must be > 0");
    }
    if !path.starts_with('/') {
        return Err("path must start with / character");
    }
    if path.len() == 1 {
        return Ok(());
    }
    if path.ends_with('/') {
        return Err("path must not end with / character");
    }
    for segment in path[1..].split('/') {
        match segment {
            "" => return Err("empty node name specified"),
            "." | ".." => return Err("relative paths not allowed"),
            _ => {}
        }
    }
    for character in path.chars() {
        let code = character as u32;
        let invalid = code == 0
            || (0x01..=0x1f).contains(&code)
            || (0x7f..=0x9f).contains(&code)
            || (0xd800..=0xf8ff).contains(&code)
            || code >= 0xfff0;
        if invalid {
            return Err("invalid character in path");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate_path;

    #[test]
    fn zookeeper_path_rules() {
        for good in ["/", "/a", "/a/b", "/a.b", "/..a", "/a/.b.", "/zookeeper", "/ä"] {
            assert!(validate_path(good).is_ok(), "{good}");
        }
        for bad in ["", "a", "/a/", "//", "/a//b", "/a/./b", "/a/..", "/.", "/a\0", "/a\u{1}", "/\u{e000}", "/😀"] {
            assert!(validate_path(bad).is_err(), "{bad:?}");
        }
    }
}
