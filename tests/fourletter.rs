//! Every four-letter word, in ZooKeeper's text format: each answer is held
//! against line patterns that the real ZooKeeper 3.8's answers
//! (tests/fixtures/ops/fourletter_zk.txt, recorded by record_ops.py with the
//! same session, watches and ephemeral node as here) also match, so the
//! patterns are checked against the reference, not only against zoocore.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use common::*;

/// What the reference ZooKeeper answered, by word.
fn reference() -> HashMap<String, String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ops/fourletter_zk.txt");
    let text = std::fs::read_to_string(path).expect("fixture");
    let mut answers = HashMap::new();
    let mut current: Option<(String, String)> = None;
    for line in text.split_inclusive('\n') {
        if let Some(word) = line.strip_prefix("=== ") {
            current = Some((word.trim_end().to_string(), String::new()));
        } else if line.trim_end() == "<<<END" {
            let (word, mut answer) = current.take().expect("an answer in progress");
            // The recorder wrote a newline after each answer.
            answer.pop();
            answers.insert(word, answer);
        } else if let Some((_, answer)) = current.as_mut() {
            answer.push_str(line);
        }
    }
    answers
}

/// Matches `text` against `pattern`, where `{n}` is a number (digits, an
/// optional sign and decimals), `{h}` lower-case hex digits, `{a}` an
/// IP:port and `{s}` any non-empty text; everything else is literal.
fn matches(pattern: &str, text: &str) -> bool {
    fn class(kind: &str, c: char) -> bool {
        match kind {
            "n" => c.is_ascii_digit() || c == '-' || c == '.',
            "h" => c.is_ascii_digit() || ('a'..='f').contains(&c),
            "a" => c.is_ascii_digit() || c == '.' || c == ':',
            _ => true,
        }
    }
    if pattern.is_empty() {
        return text.is_empty();
    }
    if let Some(rest) = pattern.strip_prefix('{') {
        let (kind, rest) = rest.split_once('}').expect("a closed placeholder");
        let taken: Vec<usize> =
            text.char_indices().take_while(|(_, c)| class(kind, *c)).map(|(i, c)| i + c.len_utf8()).collect();
        // Longest first, at least one character.
        return taken.iter().rev().any(|&end| matches(rest, &text[end..]));
    }
    let mut chars = pattern.chars();
    let first = chars.next().unwrap();
    text.starts_with(first) && matches(chars.as_str(), &text[first.len_utf8()..])
}

/// Every line of `text` matches one of `patterns`.
fn check_lines(word: &str, who: &str, text: &str, patterns: &[&str]) {
    for line in text.lines() {
        assert!(
            patterns.iter().any(|pattern| matches(pattern, line)),
            "{who}'s {word}: line {line:?} matches none of {patterns:?}\n{text}"
        );
    }
}

/// The lines that match `pattern`, in order.
fn lines_matching<'a>(text: &'a str, patterns: &[&str]) -> Vec<&'a str> {
    text.lines().filter(|line| patterns.iter().any(|pattern| matches(pattern, line))).collect()
}

/// Session ids differ between servers: compare with them masked.
fn mask_sessions(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .map(|line| match line.find("0x") {
            Some(at) => format!("{}0xSESSION", &line[..at]),
            None => line.to_string(),
        })
        .collect();
    lines.sort();
    lines
}

const SRVR_LINES: [&str; 9] = [
    "Zookeeper version: {s}",
    "Latency min/avg/max: {n}/{n}/{n}",
    "Received: {n}",
    "Sent: {n}",
    "Connections: {n}",
    "Outstanding: {n}",
    "Zxid: 0x{h}",
    "Mode: standalone",
    "Node count: {n}",
];
const BRIEF_CONNECTION: &str = " /{a}[{n}](queued={n},recved={n},sent={n})";
const FULL_CONNECTION: &str = " /{a}[{n}](queued={n},recved={n},sent={n},sid=0x{h},lop={s},est={n},to={n},lcxid=0x{h},lzxid=0x{h},lresp={n},llat={n},minlat={n},avglat={n},maxlat={n})";
const DUMP_LINES: [&str; 10] = [
    "SessionTracker dump:",
    "Session Sets ({n})/({n}):",
    "{n} expire at {s}:",
    "\t0x{h}",
    "ephemeral nodes dump:",
    "Sessions with Ephemerals ({n}):",
    "0x{h}:",
    "\t/ops/e1",
    "Connections dump:",
    "Connections Sets ({n})/({n}):",
];
const DUMP_CONNECTION: &str = "\tip: /{a} sessionId: 0x{h}";

/// Checks one word's answer, from zoocore or from the reference.
fn check_word(word: &str, who: &str, text: &str) {
    match word {
        "ruok" => assert_eq!(text, "imok", "{who}"),
        "isro" => assert_eq!(text, "rw", "{who}"),
        "gtmk" => assert_eq!(text, "306", "{who}"),
        "stmk" | "hash" => assert_eq!(text, "", "{who}'s {word}"),
        "crst" => assert_eq!(text, "Connection stats reset.\n", "{who}"),
        "srst" => assert_eq!(text, "Server stats reset.\n", "{who}"),
        "dirs" => check_lines(word, who, text, &["datadir_size: {n}", "logdir_size: {n}"]),
        "srvr" => {
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(lines.len(), SRVR_LINES.len(), "{who}'s srvr:\n{text}");
            for (line, pattern) in lines.iter().zip(SRVR_LINES) {
                assert!(matches(pattern, line), "{who}'s srvr: {line:?} is not {pattern:?}");
            }
        }
        "stat" => {
            let lines: Vec<&str> = text.lines().collect();
            assert!(matches(SRVR_LINES[0], lines[0]), "{who}'s stat:\n{text}");
            assert_eq!(lines[1], "Clients:", "{who}'s stat");
            let blank = lines.iter().position(|line| line.is_empty()).expect("a blank line after the clients");
            assert!(blank > 2, "{who}'s stat lists at least one client:\n{text}");
            for line in &lines[2..blank] {
                assert!(matches(BRIEF_CONNECTION, line), "{who}'s stat: {line:?}");
            }
            for (line, pattern) in lines[blank + 1..].iter().zip(&SRVR_LINES[1..]) {
                assert!(matches(pattern, line), "{who}'s stat: {line:?} is not {pattern:?}");
            }
            assert_eq!(lines.len() - blank - 1, SRVR_LINES.len() - 1, "{who}'s stat:\n{text}");
        }
        "cons" => {
            assert!(text.ends_with(")\n\n"), "{who}'s cons ends with an empty line:\n{text:?}");
            check_lines(word, who, text.trim_end(), &[BRIEF_CONNECTION, FULL_CONNECTION]);
            assert_eq!(lines_matching(text, &[FULL_CONNECTION]).len(), 1, "{who}'s cons shows the session:\n{text}");
        }
        "conf" => {
            let keys: Vec<&str> = text.lines().map(|line| line.split('=').next().unwrap()).collect();
            assert_eq!(
                keys,
                [
                    "clientPort",
                    "secureClientPort",
                    "dataDir",
                    "dataDirSize",
                    "dataLogDir",
                    "dataLogSize",
                    "tickTime",
                    "maxClientCnxns",
                    "minSessionTimeout",
                    "maxSessionTimeout",
                    "clientPortListenBacklog",
                    "serverId"
                ],
                "{who}'s conf keys"
            );
        }
        "envi" => {
            assert!(text.starts_with("Environment:\n"), "{who}'s envi");
            let keys: BTreeSet<&str> = text.lines().skip(1).map(|line| line.split('=').next().unwrap()).collect();
            for key in [
                "zookeeper.version",
                "host.name",
                "os.name",
                "os.arch",
                "os.version",
                "user.name",
                "user.home",
                "user.dir",
            ] {
                assert!(keys.contains(key), "{who}'s envi has {key}");
            }
        }
        "mntr" => check_lines(word, who, text, &["zk_{s}\t{s}"]),
        "wchs" => assert_eq!(text, "1 connections watching 2 paths\nTotal watches:2\n", "{who}'s wchs"),
        "wchc" => {
            assert_eq!(mask_sessions(text), ["", "\t/ops/a", "\t/ops/nothing", "0xSESSION"], "{who}'s wchc:\n{text}");
            assert!(text.ends_with("\n\n"), "{who}'s wchc ends with an empty line");
        }
        "wchp" => {
            assert_eq!(
                mask_sessions(text),
                ["", "\t0xSESSION", "\t0xSESSION", "/ops/a", "/ops/nothing"],
                "{who}'s wchp:\n{text}"
            );
            assert!(text.ends_with("\n\n"), "{who}'s wchp ends with an empty line");
        }
        "dump" => {
            check_lines(word, who, text, &[&DUMP_LINES[..], &[DUMP_CONNECTION]].concat());
            let headers = lines_matching(text, &[DUMP_LINES[0], DUMP_LINES[4], DUMP_LINES[5], DUMP_LINES[8]]);
            assert_eq!(headers.len(), 4, "{who}'s dump has its four sections in order:\n{text}");
            assert_eq!(lines_matching(text, &[DUMP_LINES[7]]).len(), 1, "{who}'s dump lists the ephemeral");
        }
        other => panic!("no check for {other}"),
    }
}

#[tokio::test]
async fn every_word_answers_in_zookeepers_format() {
    if skip_if_external("every_word_answers_in_zookeepers_format", "needs the ops fixture state") {
        return;
    }
    let reference = reference();
    let server = Server::start();
    let (_client, _watches) = ops_state(server.addr()).await;
    for word in zoocore::ops::fourletter::WORDS {
        let expected = reference.get(word).unwrap_or_else(|| panic!("{word} in the fixture"));
        check_word(word, "ZooKeeper", expected);
        let answer = server.four_letter(word);
        check_word(word, "zoocore", &answer);
    }
}

#[tokio::test]
async fn mntr_has_zookeepers_keys_with_the_same_kinds_of_values() {
    let reference = reference();
    let parse = |text: &str| -> HashMap<String, String> {
        text.lines()
            .filter_map(|line| line.split_once('\t'))
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect()
    };
    let zookeeper = parse(&reference["mntr"]);
    let server = Server::start();
    let (_client, _watches) = ops_state(server.addr()).await;
    let ours = parse(&server.four_letter("mntr"));
    for (key, value) in &ours {
        let theirs = zookeeper.get(key).unwrap_or_else(|| panic!("zoocore's {key} is not in ZooKeeper's mntr"));
        assert_eq!(value.parse::<f64>().is_ok(), theirs.parse::<f64>().is_ok(), "{key}: {value} vs {theirs}");
    }
    for key in [
        "zk_version",
        "zk_server_state",
        "zk_znode_count",
        "zk_watch_count",
        "zk_ephemerals_count",
        "zk_approximate_data_size",
        "zk_num_alive_connections",
        "zk_outstanding_requests",
        "zk_avg_latency",
        "zk_min_latency",
        "zk_max_latency",
        "zk_packets_received",
        "zk_packets_sent",
        "zk_open_file_descriptor_count",
        "zk_max_file_descriptor_count",
        "zk_uptime",
        "zk_global_sessions",
        "zk_avg_readlatency",
        "zk_p99_readlatency",
        "zk_cnt_updatelatency",
        "zk_avg_fsynctime",
        "zk_avg_snapshottime",
    ] {
        assert!(ours.contains_key(key), "zoocore's mntr has {key}");
    }
    // Same state, same counts, where ZooKeeper's can be compared.
    assert_eq!(ours["zk_watch_count"], zookeeper["zk_watch_count"]);
    assert_eq!(ours["zk_ephemerals_count"], zookeeper["zk_ephemerals_count"]);
    assert_eq!(ours["zk_global_sessions"], zookeeper["zk_global_sessions"]);
    assert_eq!(ours["zk_server_state"], "standalone");
}

#[tokio::test]
async fn trace_mask_set_and_get() {
    let reference = reference();
    assert_eq!(reference["stmk 5"], "5");
    assert_eq!(reference["gtmk after stmk 5"], "5");
    let server = Server::start();
    let mut request = b"stmk".to_vec();
    request.extend_from_slice(&5i64.to_be_bytes());
    let answer = {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(server.addr()).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        stream.write_all(&request).unwrap();
        let mut out = String::new();
        let _ = stream.read_to_string(&mut out);
        out
    };
    assert_eq!(answer, "5");
    assert_eq!(server.four_letter("gtmk"), "5");
    // Without its argument stmk fails silently, as in ZooKeeper.
    assert_eq!(server.four_letter("stmk"), "");
    assert_eq!(server.four_letter("gtmk"), "5");
}

#[test]
fn the_whitelist_gates_every_word() {
    if skip_if_external("the_whitelist_gates_every_word", "needs its own whitelist") {
        return;
    }
    // ZooKeeper's default whitelist is srvr alone.
    let server = Server::start_with(&["4lw.commands.whitelist=srvr"]);
    for word in zoocore::ops::fourletter::WORDS {
        let answer = server.four_letter(word);
        if word == "srvr" {
            assert!(answer.starts_with("Zookeeper version: "), "{answer}");
        } else {
            assert_eq!(answer, format!("{word} is not executed because it is not in the whitelist.\n"));
        }
    }
    let server = Server::start_with(&["4lw.commands.whitelist=ruok, wchc ,mntr"]);
    assert_eq!(server.four_letter("ruok"), "imok");
    assert_eq!(server.four_letter("wchc"), "\n");
    assert!(server.four_letter("mntr").starts_with("zk_version\t"));
    assert!(server.four_letter("srvr").starts_with("Zookeeper version: "), "srvr is always allowed");
    assert_eq!(server.four_letter("stat"), "stat is not executed because it is not in the whitelist.\n");
}

#[tokio::test]
async fn watches_on_every_shard_are_listed() {
    if skip_if_external("watches_on_every_shard_are_listed", "needs its own shard count") {
        return;
    }
    let server = Server::start_with(&["zoocore.shards=2"]);
    // Several clients, so connections land on both shards (SO_REUSEPORT).
    let mut clients = Vec::new();
    let mut watchers = Vec::new();
    let first = connect(server.addr()).await;
    first.create("/w", b"", &persistent()).await.unwrap();
    for index in 0..8 {
        let client = connect(server.addr()).await;
        let path = format!("/w/{index}");
        let (_, watcher) = client.check_and_watch_stat(&path).await.unwrap();
        watchers.push(watcher);
        clients.push(client);
    }
    let wchp = server.four_letter("wchp");
    let paths: Vec<&str> = wchp.lines().filter(|line| line.starts_with('/')).collect();
    assert_eq!(paths.len(), 8, "{wchp}");
    let wchc = server.four_letter("wchc");
    assert_eq!(wchc.lines().filter(|line| line.starts_with("0x")).count(), 8, "{wchc}");
    assert_eq!(server.four_letter("wchs"), "8 connections watching 8 paths\nTotal watches:8\n");
    drop(watchers);
}
