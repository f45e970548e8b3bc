//! Tidy: checks on the sources themselves that keep the core honest.
//!
//! The core decides and the shell does the IO; that split is what lets the
//! simulator replay any failure from a seed, and it erodes one convenient
//! `Instant::now()` at a time. So this test reads the sources and fails,
//! naming the file, the line and the word, when:
//!
//! - an IO-free module ([`IO_FREE`], the list docs/ARCHITECTURE.md gives)
//!   names a clock (`Instant`, `SystemTime`), a runtime (`glommio`,
//!   `tokio`), threads, files or sockets (`std::thread`, `std::fs`,
//!   `std::net`). Comments and string literals are stripped first, so prose
//!   may mention them. Test code is exempt: files named `tests.rs` and items
//!   under `#[cfg(test)]`. Address values need no sockets: `core::net`
//!   (`IpAddr`) is allowed where `std::net` is not;
//! - a source file (src/, tests/, loadgen/src/, loadgen/tests/) is longer
//!   than [`LINES_MAX`] lines without an entry in [`LONG_FILES`] saying why.
//!   An entry for a file that no longer needs one fails too, so the list
//!   shrinks as files do;
//! - a module of the operations layer or the metrics leaf ([`SHELL_FREE`])
//!   names the shell (`crate::server`, `glommio`): ops/ reads the server
//!   only through its `ServerView` trait, and metrics/ is fed by every
//!   module, so the dependency runs one way (docs/ARCHITECTURE.md, module
//!   map). Comments and strings are stripped first; test code is not
//!   exempt.

use std::fs;
use std::path::{Path, PathBuf};

/// The modules that do no IO, read no clock and start no thread: folders
/// end with `/`. Left off, and why:
/// - wal/mod.rs, wal/segment.rs: write the log through glommio's DmaFile
///   and time its syncs (record.rs and replay.rs, the format and the
///   recovery rules, are pure);
/// - snapshot/mod.rs: writes and reads snapshot files on its own thread
///   (format.rs, the record layout, is pure);
/// - config.rs, ensemble.rs, tls/: read files at start (dynamic config,
///   myid, key stores); ensemble.rs resolves host names;
/// - metrics/, admin/: clocks, the admin HTTP server on glommio;
/// - migrate/mod.rs, migrate/inspect.rs: the import/export commands, which
///   read and write files (zkformat.rs and datatree.rs are pure);
/// - server/: the glommio shell, except server/peer/wire.rs (the peer
///   handshake and frame header codec).
///
/// Randomness is not checked here: auth/mod.rs draws its DIGEST-MD5 nonces
/// from the OS generator (`auth::new_nonce`, called by the shell).
const IO_FREE: &[&str] = &[
    "src/proto/",
    "src/tree/",
    "src/prep/",
    "src/node/",
    "src/replica/",
    "src/sim/",
    // auth/krb5.rs is the Kerberos acceptor over the system's GSS-API,
    // which reads the keytab: the rest of auth/ is IO-free.
    "src/auth/mod.rs",
    "src/auth/jaas.rs",
    "src/auth/sasl.rs",
    "src/auth/gssapi.rs",
    "src/auth/x509.rs",
    "src/acl.rs",
    "src/session.rs",
    "src/watch.rs",
    "src/read.rs",
    "src/reply.rs",
    "src/wal/record.rs",
    "src/wal/replay.rs",
    "src/snapshot/format.rs",
    "src/migrate/zkformat.rs",
    "src/migrate/datatree.rs",
    "src/server/peer/wire.rs",
];

/// The modules that must not depend on the shell: the operations layer
/// and the metrics leaf (folders end with `/`).
const SHELL_FREE: &[&str] = &["src/ops/", "src/metrics/"];

/// Names of the shell that a [`SHELL_FREE`] module may not use.
const SHELL_NAMES: &[&str] = &["crate::server", "glommio"];

/// Words an IO-free module may not name.
const FORBIDDEN: &[&str] = &["Instant", "SystemTime", "glommio", "tokio", "std::thread", "std::fs", "std::net"];

/// The longest a source file may be without an entry in [`LONG_FILES`].
const LINES_MAX: usize = 1000;

/// Files allowed past [`LINES_MAX`], with the reason.
const LONG_FILES: &[(&str, &str)] = &[
    (
        "src/config/mod.rs",
        "every zoo.cfg key and its strict check in one place (its tests are \
         config/tests.rs, the system-property settings config/tunables.rs)",
    ),
    (
        "src/node/mod.rs",
        "the node's one state machine (client input, raft, expiry, snapshots): \
         its steps share private state, and splitting them would scatter the order rules",
    ),
    (
        "src/node/harness/mod.rs",
        "the deterministic cluster harness: network, disks, clocks, crashes and \
         simulated clients, which the simulator and the node tests share",
    ),
    (
        "src/wal/mod.rs",
        "the log's append, group-commit sync, segment rolling and truncation; \
         the record codec and recovery rules are already their own files",
    ),
    ("tests/robustness.rs", "one scenario per kind of bad input, each with its healthy bystander client"),
];

/// The folders whose files the line limit covers.
const SOURCE_ROOTS: &[&str] = &["src", "tests", "loadgen/src", "loadgen/tests"];

/// Every use `uses` finds in the Rust files `list` names (files, or
/// folders ending in '/'), as "file:line: `word`: text", and how many files
/// were read. `skip_unit_tests` leaves out `tests.rs` files.
fn scan(
    list: &[&str],
    list_name: &str,
    skip_unit_tests: bool,
    uses: fn(&str) -> Vec<(usize, &'static str)>,
) -> (usize, Vec<String>) {
    let root = manifest_dir();
    let mut violations = Vec::new();
    let mut checked = 0;
    for entry in list {
        let files = if entry.ends_with('/') { rust_files(&root.join(entry)) } else { vec![root.join(entry)] };
        assert!(
            files.iter().any(|file| file.is_file()),
            "{list_name} names {entry}, which holds no Rust file: fix the list"
        );
        for file in files {
            if skip_unit_tests && file.file_name().is_some_and(|name| name == "tests.rs") {
                continue;
            }
            let source = fs::read_to_string(&file).unwrap_or_else(|error| panic!("{}: {error}", file.display()));
            for (line, word) in uses(&source) {
                let text = source.lines().nth(line - 1).unwrap_or_default().trim();
                violations.push(format!("{}:{line}: `{word}`: {text}", relative(&root, &file)));
            }
            checked += 1;
        }
    }
    (checked, violations)
}

#[test]
fn io_free_modules_name_no_clock_runtime_thread_file_or_socket() {
    let (checked, violations) = scan(IO_FREE, "IO_FREE", true, forbidden_uses);
    assert!(checked > 0, "no IO-free module was read");
    assert!(
        violations.is_empty(),
        "IO-free modules must take time and IO from their caller (see docs/ARCHITECTURE.md):\n{}",
        violations.join("\n")
    );
}

#[test]
fn operations_and_metrics_do_not_name_the_shell() {
    let (checked, violations) = scan(SHELL_FREE, "SHELL_FREE", false, shell_uses);
    assert!(checked > 0, "no module of ops/ or metrics/ was read");
    assert!(
        violations.is_empty(),
        "ops/ and metrics/ must not depend on the shell: read the server through ops::ServerView, \
         and move data both sides need into ops/ or metrics/ (see src/ops/mod.rs):\n{}",
        violations.join("\n")
    );
}

#[test]
fn no_source_file_is_longer_than_the_limit_without_a_reason() {
    let root = manifest_dir();
    let mut too_long = Vec::new();
    for source_root in SOURCE_ROOTS {
        for file in rust_files(&root.join(source_root)) {
            let lines =
                fs::read_to_string(&file).unwrap_or_else(|error| panic!("{}: {error}", file.display())).lines().count();
            let name = relative(&root, &file);
            let allowed = LONG_FILES.iter().any(|(path, _)| *path == name);
            if lines > LINES_MAX && !allowed {
                too_long.push(format!("{name}: {lines} lines"));
            }
        }
    }
    assert!(
        too_long.is_empty(),
        "source files over {LINES_MAX} lines: split them, or add them to LONG_FILES in tests/tidy.rs with the reason:\n{}",
        too_long.join("\n")
    );
}

#[test]
fn every_long_file_entry_is_still_needed() {
    let root = manifest_dir();
    for (path, reason) in LONG_FILES {
        assert!(!reason.is_empty(), "LONG_FILES entry {path} gives no reason");
        let lines = fs::read_to_string(root.join(path))
            .unwrap_or_else(|error| panic!("LONG_FILES names {path}: {error}"))
            .lines()
            .count();
        assert!(lines > LINES_MAX, "{path} is down to {lines} lines (limit {LINES_MAX}): remove it from LONG_FILES");
    }
}

// The checker's own tests: what it must catch and what it must let pass.

#[test]
fn the_checker_catches_each_way_of_naming_a_forbidden_module() {
    let source = "use std::time::{Duration, Instant};\n\
                  use std::{fs, io};\n\
                  fn f() {\n\
                  \x20   let started = std::time::SystemTime::now();\n\
                  \x20   std::thread::spawn(|| ());\n\
                  \x20   let _ = ::std::net::TcpStream::connect(\"a\");\n\
                  }\n\
                  use std::{\n\
                  \x20   collections::HashMap,\n\
                  \x20   thread::JoinHandle,\n\
                  };\n";
    assert_eq!(
        forbidden_uses(source),
        [(1, "Instant"), (2, "std::fs"), (4, "SystemTime"), (5, "std::thread"), (6, "std::net"), (10, "std::thread"),]
    );
}

#[test]
fn the_checker_ignores_comments_strings_tests_and_longer_names() {
    let source = "//! Time comes in as an argument, never from `Instant::now()`.\n\
                  use core::net::IpAddr; // not std::net: no sockets\n\
                  /* glommio /* nested */ tokio */\n\
                  const HELP: &str = \"see std::fs\";\n\
                  const RAW: &str = r#\"an \"Instant\" \"#;\n\
                  const BYTES: &[u8] = br\"tokio\";\n\
                  const QUOTE: char = '\"';\n\
                  fn f<'a>(x: &'a str) -> &'a str { let _ = '}'; x }\n\
                  struct InstantReply; // a longer name is not the word\n\
                  #[cfg(test)]\n\
                  mod tests {\n\
                  \x20   use std::time::Instant;\n\
                  \x20   fn g() { let _ = std::fs::read(\"x\"); }\n\
                  }\n\
                  #[cfg(test)]\n\
                  use std::thread;\n\
                  fn after() { let _ = Instant::now(); }\n";
    assert_eq!(forbidden_uses(source), [(17, "Instant")]);
}

/// The shell's names a source uses outside comments and strings, as (line,
/// name), in order: `glommio`, and the server module however it is
/// reached (`crate::server`, `super::server`, `use crate::{server, ..}`).
fn shell_uses(source: &str) -> Vec<(usize, &'static str)> {
    let code = strip_comments_and_literals(source);
    let mut found = Vec::new();
    for (index, line) in code.lines().enumerate() {
        for name in SHELL_NAMES {
            if contains_word(line, name) {
                found.push((index + 1, *name));
            }
        }
        if contains_word(line, "super::server") {
            found.push((index + 1, "crate::server"));
        }
    }
    for (line, member) in group_members(&code, "crate::{") {
        if member.split("::").next().is_some_and(|head| head.trim() == "server") {
            found.push((line, "crate::server"));
        }
    }
    found.sort();
    found.dedup();
    found
}

#[test]
fn the_shell_checker_catches_each_way_of_naming_the_server() {
    let source = "//! Not `crate::server`: prose may name it.\n\
                  use crate::server::Shared;\n\
                  use crate::{config::Config,\n\
                  \x20   server::control};\n\
                  use super::server;\n\
                  fn f() { glommio::spawn_local(async {}); }\n\
                  const NOTE: &str = \"glommio\";\n\
                  fn g(server: &dyn ServerView, servers: u8) { let _ = (config, server, servers); }\n";
    assert_eq!(shell_uses(source), [(2, "crate::server"), (4, "crate::server"), (5, "crate::server"), (6, "glommio")]);
}

/// The forbidden words a source names outside comments, strings and test
/// code, as (line, word), in order.
fn forbidden_uses(source: &str) -> Vec<(usize, &'static str)> {
    let code = blank_test_items(&strip_comments_and_literals(source));
    let mut found = Vec::new();
    for (index, line) in code.lines().enumerate() {
        for word in FORBIDDEN {
            if contains_word(line, word) {
                found.push((index + 1, *word));
            }
        }
    }
    // `use std::{fs, ...}` names std::fs without writing it.
    for (line, member) in group_members(&code, "std::{") {
        let head = member.split("::").next().unwrap_or_default().split_whitespace().next().unwrap_or_default();
        if let Some(word) = FORBIDDEN.iter().find(|word| word.strip_prefix("std::") == Some(head)) {
            found.push((line, *word));
        }
    }
    found.sort();
    found.dedup();
    found
}

/// Whether `word` occurs in `line` as a whole name (not inside a longer one).
fn contains_word(line: &str, word: &str) -> bool {
    let is_name = |c: char| c.is_alphanumeric() || c == '_';
    line.match_indices(word).any(|(start, _)| {
        let before = line[..start].chars().next_back();
        let after = line[start + word.len()..].chars().next();
        !before.is_some_and(is_name) && !after.is_some_and(is_name)
    })
}

/// The members of every `PREFIX...}` group (`std::{`, `crate::{`), each
/// with the line it is on.
fn group_members(code: &str, prefix: &str) -> Vec<(usize, String)> {
    let mut members = Vec::new();
    for (start, _) in code.match_indices(prefix) {
        let mut line = code[..start].matches('\n').count() + 1;
        let mut depth = 0;
        let mut member = String::new();
        let mut member_line = line;
        for c in code[start + prefix.len()..].chars() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    members.push((member_line, member.trim().to_string()));
                    member.clear();
                    continue;
                }
                _ => {}
            }
            if c == '\n' {
                line += 1;
            } else if member.trim().is_empty() && !c.is_whitespace() {
                member_line = line;
            }
            member.push(c);
        }
        if !member.trim().is_empty() {
            members.push((member_line, member.trim().to_string()));
        }
    }
    members
}

/// The source with comments, string literals and char literals replaced
/// by spaces, newlines kept, so line numbers still match.
fn strip_comments_and_literals(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let blank = |out: &mut String, c: char| out.push(if c == '\n' { '\n' } else { ' ' });
    let mut index = 0;
    while index < chars.len() {
        let c = chars[index];
        let next = chars.get(index + 1).copied();
        let is_name =
            |at: Option<usize>| at.and_then(|at| chars.get(at)).is_some_and(|c| c.is_alphanumeric() || *c == '_');
        // r starts a raw string only as a token of its own, or after b (br"..").
        let raw_may_start =
            !is_name(index.checked_sub(1)) || (chars[index - 1] == 'b' && !is_name(index.checked_sub(2)));
        if c == '/' && next == Some('/') {
            while index < chars.len() && chars[index] != '\n' {
                index += 1;
                out.push(' ');
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while index < chars.len() {
                if chars[index] == '/' && chars.get(index + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    index += 2;
                } else if chars[index] == '*' && chars.get(index + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    index += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, chars[index]);
                    index += 1;
                }
            }
        } else if c == 'r' && raw_may_start && matches!(next, Some('"' | '#')) {
            // A raw string r"..." or r#"..."#; r#name is a raw identifier.
            let hashes = chars[index + 1..].iter().take_while(|&&c| c == '#').count();
            if chars.get(index + 1 + hashes) != Some(&'"') {
                out.push(c);
                index += 1;
                continue;
            }
            let closing: Vec<char> = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
            out.push(' ');
            index += 1 + hashes + 1;
            out.push_str(&" ".repeat(hashes + 1));
            while index < chars.len() && !chars[index..].starts_with(&closing) {
                blank(&mut out, chars[index]);
                index += 1;
            }
            out.push_str(&" ".repeat(closing.len()));
            index += closing.len();
        } else if c == '"' {
            out.push(' ');
            index += 1;
            while index < chars.len() && chars[index] != '"' {
                if chars[index] == '\\' {
                    blank(&mut out, chars[index]);
                    index += 1;
                }
                if index < chars.len() {
                    blank(&mut out, chars[index]);
                    index += 1;
                }
            }
            out.push(' ');
            index += 1;
        } else if c == '\'' && (next == Some('\\') || chars.get(index + 2) == Some(&'\'')) {
            // A char literal ('x', '\n', '\u{..}'); 'a alone is a lifetime.
            out.push(' ');
            index += 1;
            while index < chars.len() && chars[index] != '\'' {
                if chars[index] == '\\' {
                    out.push(' ');
                    index += 1;
                }
                out.push(' ');
                index += 1;
            }
            out.push(' ');
            index += 1;
        } else {
            out.push(c);
            index += 1;
        }
    }
    out
}

/// Blanks every item under `#[cfg(test)]`: to its `;`, or through its
/// braces. Runs on stripped code, so braces in strings cannot mislead it.
fn blank_test_items(code: &str) -> String {
    let mut out: Vec<char> = code.chars().collect();
    let marker: Vec<char> = "#[cfg(test)]".chars().collect();
    let mut index = 0;
    while index + marker.len() <= out.len() {
        if out[index..index + marker.len()] != marker[..] {
            index += 1;
            continue;
        }
        let mut end = index + marker.len();
        let mut depth = 0;
        while end < out.len() {
            match out[end] {
                ';' if depth == 0 => break,
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            end += 1;
        }
        let item_end = (end + 1).min(out.len());
        for c in &mut out[index..item_end] {
            if *c != '\n' {
                *c = ' ';
            }
        }
        index = end + 1;
    }
    out.into_iter().collect()
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `directory`, sorted.
fn rust_files(directory: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![directory.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let entries = fs::read_dir(&folder).unwrap_or_else(|error| panic!("{}: {error}", folder.display()));
        for entry in entries {
            let path = entry.unwrap_or_else(|error| panic!("{}: {error}", folder.display())).path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|extension| extension == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// `file` relative to the workspace root, with `/` separators.
fn relative(root: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(root).unwrap_or(file);
    relative.components().map(|part| part.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}
