//! The AdminServer: every command answers JSON with the keys (and kinds of
//! values) the real ZooKeeper 3.8's AdminServer answers, under the same
//! names and short names (tests/fixtures/ops/admin_zk.json, recorded by
//! record_ops.py with the same session, watches and ephemeral node as
//! `ops_state`), and the HTTP edges behave.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::time::Duration;

use common::*;
use serde_json::Value;

fn reference() -> serde_json::Map<String, Value> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ops/admin_zk.json");
    match serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("fixture JSON") {
        Value::Object(map) => map,
        _ => panic!("the fixture is an object"),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `ours` has the shape of `theirs`: the same keys with the same kinds of
/// values, all the way down (the first element stands for an array's).
/// Objects whose keys are data (session ids, paths, times) are compared by
/// their values' shapes only.
fn same_shape(context: &str, ours: &Value, theirs: &Value) {
    assert_eq!(kind(ours), kind(theirs), "{context}: {ours} vs {theirs}");
    match (ours, theirs) {
        (Value::Object(ours), Value::Object(theirs)) => {
            let data_keyed = [
                "expiry_time_to_session_ids",
                "session_id_to_ephemeral_paths",
                "session_id_to_watched_paths",
                "path_to_session_ids",
            ]
            .iter()
            .any(|key| context.ends_with(key));
            if data_keyed {
                if let (Some(ours), Some(theirs)) = (ours.values().next(), theirs.values().next()) {
                    same_shape(&format!("{context}[*]"), ours, theirs);
                }
                assert_eq!(ours.len(), theirs.len(), "{context}: as many entries");
                return;
            }
            let our_keys: BTreeSet<&String> = ours.keys().collect();
            let their_keys: BTreeSet<&String> = theirs.keys().collect();
            assert_eq!(our_keys, their_keys, "{context}: keys");
            for (key, value) in ours {
                same_shape(&format!("{context}.{key}"), value, &theirs[key]);
            }
        }
        (Value::Array(ours), Value::Array(theirs)) => {
            if let (Some(ours), Some(theirs)) = (ours.first(), theirs.first()) {
                same_shape(&format!("{context}[0]"), ours, theirs);
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn every_command_answers_zookeepers_json() {
    if skip_if_external("every_command_answers_zookeepers_json", "needs the admin server") {
        return;
    }
    let reference = reference();
    let server = Server::start();
    let admin = server.admin_addr().expect("the admin line").to_string();
    let (_client, _watches) = ops_state(server.addr()).await;

    let listing = http(&admin, "GET", "/commands").2;
    let names = |html: &str| -> BTreeSet<String> {
        html.lines()
            .filter_map(|line| line.strip_prefix("<a href=\"/commands/"))
            .map(|rest| rest.split('"').next().unwrap().to_string())
            .collect()
    };
    let listed = names(&listing);
    assert_eq!(listed, names(reference["__listing__"].as_str().unwrap()), "the same commands are listed");

    for name in &listed {
        let theirs = &reference[name.as_str()];
        let ours = http_json(&admin, &format!("/commands/{name}"));
        assert_eq!(ours["command"], theirs["command"], "{name}");
        assert_eq!(ours["error"], theirs["error"], "{name}");
        match name.as_str() {
            // The JVM's properties do not apply; the platform's do.
            "environment" | "system_properties" => {
                for key in ["os.name", "os.arch", "os.version", "user.name", "user.home", "user.dir"] {
                    assert!(ours.get(key).is_some(), "{name} has {key}: {ours}");
                    assert_eq!(kind(&ours[key]), kind(&theirs[key]), "{name}.{key}");
                }
                if name == "environment" {
                    assert!(ours["zookeeper.version"].is_string());
                }
            }
            // zoocore reports the monitor values it has, under ZooKeeper's keys.
            "monitor" => {
                let ours = ours.as_object().unwrap();
                for (key, value) in ours {
                    let theirs = theirs.get(key).unwrap_or_else(|| panic!("monitor.{key} is not ZooKeeper's"));
                    assert_eq!(kind(value), kind(theirs), "monitor.{key}");
                }
                for key in [
                    "znode_count",
                    "watch_count",
                    "ephemerals_count",
                    "approximate_data_size",
                    "num_alive_connections",
                    "outstanding_requests",
                    "p50_readlatency",
                    "avg_updatelatency",
                    "uptime",
                ] {
                    assert!(ours.contains_key(key), "monitor has {key}");
                }
                assert_eq!(ours["watch_count"], theirs["watch_count"]);
                assert_eq!(ours["ephemerals_count"], theirs["ephemerals_count"]);
            }
            _ => same_shape(name, &ours, theirs),
        }
    }

    // Watches of the same state, as ZooKeeper lists them (session ids aside).
    let watches = http_json(&admin, "/commands/watches_by_path");
    let paths: Vec<&String> = watches["path_to_session_ids"].as_object().unwrap().keys().collect();
    assert_eq!(paths, ["/ops/a", "/ops/nothing"]);
    let summary = http_json(&admin, "/commands/watch_summary");
    assert_eq!(summary["num_total_watches"], reference["watch_summary"]["num_total_watches"]);
    assert_eq!(summary["num_paths"], reference["watch_summary"]["num_paths"]);
}

#[test]
fn short_names_and_errors_answer_as_zookeeper() {
    if skip_if_external("short_names_and_errors_answer_as_zookeeper", "needs the admin server") {
        return;
    }
    let reference = reference();
    let server = Server::start();
    let admin = server.admin_addr().expect("the admin line").to_string();
    for (key, theirs) in &reference {
        let Some(alias) = key.strip_prefix("alias ") else { continue };
        let ours = http_json(&admin, &format!("/commands/{alias}"));
        assert_eq!(ours["command"], theirs["command"], "{alias}");
        assert_eq!(ours["error"], theirs["error"], "{alias}");
    }
    assert_eq!(
        http_json(&admin, "/commands/nonexistent"),
        serde_json::json!({"command": "nonexistent", "error": "Unknown command: nonexistent"})
    );
    // set_trace_mask takes its mask as a parameter; without it, ZooKeeper's error.
    assert_eq!(http_json(&admin, "/commands/stmk?traceMask=7")["tracemask"], 7);
    assert_eq!(http_json(&admin, "/commands/gtmk")["tracemask"], 7);
    assert_eq!(server.four_letter("gtmk"), "7");
    let failed = http_json(&admin, "/commands/set_trace_mask");
    assert_eq!(failed, reference["set_trace_mask"]);
    // The initial configuration is the file as written.
    let config = std::fs::read_to_string(server.dir().unwrap().join("zoo.cfg")).unwrap();
    assert_eq!(http_json(&admin, "/commands/icfg")["initial_configuration"], config);
    // Resets answer and reset.
    assert_eq!(http_json(&admin, "/commands/srst")["error"], Value::Null);
    assert_eq!(http_json(&admin, "/commands/srvr")["server_stats"]["packets_received"], 0);
}

#[test]
fn http_edges() {
    if skip_if_external("http_edges", "needs the admin server") {
        return;
    }
    let server = Server::start();
    let admin = server.admin_addr().expect("the admin line").to_string();
    let (status, headers, _) = http(&admin, "GET", "/commands/ruok");
    assert_eq!(status, 200);
    assert!(headers.iter().any(|(name, value)| name == "content-type" && value.starts_with("application/json")));
    assert_eq!(http(&admin, "POST", "/commands/ruok").0, 405);
    assert_eq!(http(&admin, "GET", "/").0, 404);
    assert_eq!(http(&admin, "GET", "/metrics").0, 404, "metrics are off without the Prometheus provider");
    let (status, headers, body) = http(&admin, "HEAD", "/commands/ruok");
    assert_eq!((status, body.as_str()), (200, ""));
    assert!(headers.iter().any(|(name, value)| name == "content-length" && value != "0"));

    // Keep-alive: two requests on one connection.
    let mut stream = std::net::TcpStream::connect(&admin).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream
        .write_all(b"GET /commands/ruok HTTP/1.1\r\nHost: x\r\n\r\nGET /commands/isro HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut both = String::new();
    stream.read_to_string(&mut both).unwrap();
    assert_eq!(both.matches("HTTP/1.1 200 OK").count(), 2, "{both}");
    assert!(both.contains("\"read_only\": false"), "{both}");

    // A request head over the bound is refused, and the server keeps serving.
    let mut stream = std::net::TcpStream::connect(&admin).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let huge = format!("GET /commands/ruok HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(64 << 10));
    let _ = stream.write_all(huge.as_bytes());
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert_eq!(http(&admin, "GET", "/commands/ruok").0, 200);
}

#[test]
fn admin_server_keys() {
    if skip_if_external("admin_server_keys", "needs its own configuration") {
        return;
    }
    let server = Server::start_with(&["admin.enableServer=false"]);
    assert_eq!(server.admin_addr(), None, "no admin line when admin.enableServer=false");
    let server = Server::start_with(&["admin.commandURL=/zk"]);
    let admin = server.admin_addr().unwrap().to_string();
    assert_eq!(http_json(&admin, "/zk/ruok")["command"], "ruok");
    assert!(http(&admin, "GET", "/zk").2.contains("<a href=\"/zk/monitor\">monitor</a>"));
    assert_eq!(http(&admin, "GET", "/commands/ruok").0, 404);
}
