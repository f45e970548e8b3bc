//! The AdminServer's commands: ZooKeeper 3.8's names, short names and JSON
//! keys (as its Jetty AdminServer answers a standalone server or an
//! ensemble member), from the same facts the four-letter words print. The
//! ensemble commands (`leader`, `voting_view`, `zabstate`, `observers`)
//! read the broadcast core's view (`ServerView::ensemble`) and the `server.N`
//! lines of the configuration.

use std::sync::atomic::Ordering;

use serde_json::{json, Map, Value};

use crate::metrics;
use crate::ops::fourletter::{self, established_ms, interest_ops, opcode_name};
use crate::ops::{Monitor, ServerView};

/// A command: its name, then its other names.
pub struct Command {
    pub names: &'static [&'static str],
}

impl Command {
    pub fn name(&self) -> &'static str {
        self.names[0]
    }
}

/// Every command, sorted by name as ZooKeeper lists them.
pub const COMMANDS: &[Command] = &[
    Command { names: &["configuration", "conf", "config"] },
    Command { names: &["connection_stat_reset", "crst"] },
    Command { names: &["connections", "cons"] },
    Command { names: &["dirs"] },
    Command { names: &["dump"] },
    Command { names: &["environment", "env", "envi"] },
    Command { names: &["get_trace_mask", "gtmk"] },
    Command { names: &["hash"] },
    Command { names: &["initial_configuration", "icfg"] },
    Command { names: &["is_read_only", "isro"] },
    Command { names: &["last_snapshot", "lsnp"] },
    Command { names: &["leader", "lead"] },
    Command { names: &["monitor", "mntr"] },
    Command { names: &["observer_connection_stat_reset", "orst"] },
    Command { names: &["observers", "obsr"] },
    Command { names: &["ruok"] },
    Command { names: &["server_stats", "srvr"] },
    Command { names: &["set_trace_mask", "stmk"] },
    Command { names: &["stat_reset", "srst"] },
    Command { names: &["stats", "stat"] },
    Command { names: &["system_properties", "sysp"] },
    Command { names: &["voting_view"] },
    Command { names: &["watch_summary", "wchs"] },
    Command { names: &["watches", "wchc"] },
    Command { names: &["watches_by_path", "wchp"] },
    Command { names: &["zabstate"] },
];

pub fn lookup(name: &str) -> Option<&'static Command> {
    COMMANDS.iter().find(|command| command.names.contains(&name))
}

/// The HTML list GET /commands answers, as ZooKeeper's.
pub fn listing(command_url: &str) -> String {
    let mut out = String::new();
    for command in COMMANDS {
        let name = command.name();
        out.push_str(&format!("<a href=\"{command_url}/{name}\">{name}</a>\n<br/>\n"));
    }
    out
}

/// Runs the command called `name` (any of its names) and answers
/// ZooKeeper's JSON: the command's keys, then `command` and `error`.
pub async fn run(server: &dyn ServerView, name: &str, parameter: impl Fn(&str) -> Option<String>) -> Value {
    let Some(command) = lookup(name) else {
        return json!({ "command": name, "error": format!("Unknown command: {name}") });
    };
    let primary = command.name();
    let mut response = Map::new();
    let error = execute(server, primary, &parameter, &mut response).await;
    match error {
        None => {
            response.insert("command".into(), Value::from(primary));
            response.insert("error".into(), Value::Null);
        }
        Some(error) => {
            // ZooKeeper puts the error first when a command fails.
            let mut failed = Map::new();
            failed.insert("error".into(), Value::from(error));
            failed.extend(response);
            failed.insert("command".into(), Value::from(primary));
            response = failed;
        }
    }
    Value::Object(response)
}

fn put(map: &mut Map<String, Value>, key: &str, value: impl Into<Value>) {
    map.insert(key.to_string(), value.into());
}

/// Fills `out` with the command's keys; returns its error, if it failed.
async fn execute(
    server: &dyn ServerView,
    name: &str,
    parameter: &impl Fn(&str) -> Option<String>,
    out: &mut Map<String, Value>,
) -> Option<String> {
    match name {
        "ruok" | "connection_stat_reset" | "stat_reset" | "observer_connection_stat_reset" => {
            match name {
                "connection_stat_reset" => server.reset_connection_stats(),
                "stat_reset" => server.reset_server_stats(),
                _ => {}
            }
            None
        }
        "configuration" => {
            let config = server.config();
            let conf: std::collections::HashMap<String, String> =
                fourletter::configuration_entries(server).into_iter().collect();
            let number = |key: &str| conf.get(key).and_then(|value| value.parse::<i64>().ok()).unwrap_or(-1);
            put(out, "client_port", number("clientPort"));
            put(out, "data_dir", conf.get("dataDir").cloned().unwrap_or_default());
            put(out, "data_log_dir", conf.get("dataLogDir").cloned().unwrap_or_default());
            put(out, "tick_time", config.tick_time_ms);
            put(out, "max_client_cnxns", config.client_connections_per_host_max);
            put(out, "min_session_timeout", config.session_timeout_min_ms);
            put(out, "max_session_timeout", config.session_timeout_max_ms);
            put(out, "server_id", fourletter::member_id(server).unwrap_or(0));
            put(out, "client_port_listen_backlog", number("clientPortListenBacklog"));
            None
        }
        "connections" => {
            put(out, "connections", connections(server, false));
            put(out, "secure_connections", Value::Array(Vec::new()));
            None
        }
        "server_stats" | "stats" => {
            server_stats(server, out);
            if name == "stats" {
                put(out, "connections", connections(server, true));
                put(out, "secure_connections", Value::Array(Vec::new()));
            }
            None
        }
        "dirs" => {
            let (data, log) = crate::ops::directory_sizes(server);
            put(out, "datadir_size", data);
            put(out, "logdir_size", log);
            None
        }
        "dump" => {
            let mut expiry = Map::new();
            for (expiry_ms, sessions) in server.session_buckets().await {
                put(&mut expiry, &expiry_ms.to_string(), sessions);
            }
            let tree = server.tree();
            let mut owners: Vec<_> = tree.ephemerals().collect();
            owners.sort_by_key(|(session, _)| *session);
            let mut ephemerals = Map::new();
            for (session, paths) in owners {
                let paths: Vec<Value> = paths.iter().map(|path| Value::from(&**path)).collect();
                put(&mut ephemerals, &session.to_string(), paths);
            }
            put(out, "expiry_time_to_session_ids", expiry);
            put(out, "session_id_to_ephemeral_paths", ephemerals);
            None
        }
        "environment" => {
            for (key, value) in fourletter::environment_entries() {
                put(out, &key, value);
            }
            None
        }
        "get_trace_mask" => {
            put(out, "tracemask", server.trace_mask());
            None
        }
        "set_trace_mask" => match parameter("traceMask").and_then(|mask| mask.trim().parse::<i64>().ok()) {
            Some(mask) => {
                server.set_trace_mask(mask);
                put(out, "tracemask", mask);
                None
            }
            None => Some("setTraceMask requires long traceMask argument".to_string()),
        },
        "hash" => {
            // ZooKeeper's ZxidDigest as its JSON shows it, oldest first.
            let digests = server
                .tree()
                .digest_log()
                .map(|entry| {
                    let mut item = Map::new();
                    put(&mut item, "zxid", entry.zxid);
                    put(&mut item, "digest", entry.digest);
                    put(&mut item, "digest_version", crate::tree::DIGEST_VERSION);
                    Value::Object(item)
                })
                .collect();
            put(out, "digests", Value::Array(digests));
            None
        }
        "initial_configuration" => {
            put(out, "initial_configuration", server.config().initial_configuration.clone());
            None
        }
        "is_read_only" => {
            put(out, "read_only", server.read_only());
            None
        }
        "last_snapshot" => {
            // Before the log takes its first snapshot, the state it starts
            // from is the empty tree at zxid 0, as of the server's start.
            let snapshot = server
                .metrics()
                .last_snapshot()
                .unwrap_or(metrics::SnapshotInfo { zxid: 0, timestamp_s: fourletter::wall_ms(server, 0) / 1000 });
            put(out, "zxid", format!("{:x}", snapshot.zxid));
            put(out, "timestamp", snapshot.timestamp_s);
            None
        }
        "leader" | "observers" | "voting_view" | "zabstate" => ensemble_command(server, name, out),
        "monitor" => {
            let watches = server.watch_summary().await;
            for (key, value) in Monitor::gather(server, watches).flat() {
                out.insert(key, value.to_json());
            }
            None
        }
        "system_properties" => {
            for (key, value) in system_properties(server) {
                put(out, &key, value);
            }
            None
        }
        "watch_summary" => {
            let summary = server.watch_summary().await;
            put(out, "num_connections", summary.data_connections);
            put(out, "num_paths", summary.data_paths);
            put(out, "num_total_watches", summary.data_watches);
            None
        }
        "watches" => {
            let report = server.watches().await;
            let mut by_session = Map::new();
            for (session, paths) in report.by_session {
                let paths: Vec<Value> = paths.iter().map(|path| Value::from(&**path)).collect();
                put(&mut by_session, &session.to_string(), paths);
            }
            put(out, "session_id_to_watched_paths", by_session);
            None
        }
        "watches_by_path" => {
            let report = server.watches().await;
            let mut by_path = Map::new();
            for (path, sessions) in report.by_path {
                put(&mut by_path, &path, sessions);
            }
            put(out, "path_to_session_ids", by_path);
            None
        }
        _ => Some(format!("Unknown command: {name}")),
    }
}

/// ZooKeeper's answer to a command of the ensemble, when the server is
/// an ensemble member. A standalone ZooKeeper answers `leader` with an
/// error and the others with empty values; a member without a leader is
/// not serving, and ZooKeeper then fails every command that needs its
/// server (`leader` and `zabstate` here are the ones that need one).
fn ensemble_command(server: &dyn ServerView, name: &str, out: &mut Map<String, Value>) -> Option<String> {
    let view = server.ensemble();
    let config = server.config();
    if !view.distributed {
        return match name {
            "leader" => Some("server is not initialized".to_string()),
            "observers" => {
                put(out, "synced_observers", 0);
                put(out, "observers", Value::Array(Vec::new()));
                None
            }
            "voting_view" => {
                put(out, "current_config", Map::new());
                None
            }
            _ => {
                put(out, "voting", false);
                put(out, "zabstate", "");
                None
            }
        };
    }
    let serving = view.leader.is_some();
    match name {
        "leader" => {
            let Some(leader) = view.leader else { return Some(NOT_SERVING.to_string()) };
            put(out, "is_leader", view.leading());
            put(out, "leader_id", leader);
            // ZooKeeper prints the leader's quorum host.
            put(out, "leader_ip", config.servers.get(&leader).map(|server| server.host.clone()).unwrap_or_default());
            None
        }
        "observers" => {
            // The leader lists the observers that are synced to it; a
            // follower is no observer master in zoocore (observers follow
            // the leader only), so it answers as ZooKeeper's follower
            // without one does.
            let mut observers = Vec::new();
            if view.leading() {
                for id in view.observers().filter(|id| view.synced(*id)) {
                    observers.push(observer_info(server, &view, id));
                }
            }
            put(out, "synced_observers", observers.len());
            put(out, "observers", Value::Array(observers));
            None
        }
        "voting_view" => {
            let mut current = Map::new();
            for (id, server) in config.servers.iter().filter(|(id, _)| view.voters.contains(id)) {
                let client_address = server
                    .client_address
                    .as_ref()
                    .map(|client| format!("{}:{}", client.host, client.port))
                    .unwrap_or_default();
                put(
                    &mut current,
                    &id.to_string(),
                    json!({
                        "server_addresses": [format!("{}:{}", server.host, server.quorum_port)],
                        "election_addresses": [format!("{}:{}", server.host, server.election_port)],
                        "client_address": client_address,
                        "learner_type": server.role.as_str(),
                    }),
                );
            }
            put(out, "current_config", current);
            None
        }
        _ => {
            if !serving {
                return Some(NOT_SERVING.to_string());
            }
            let me = config.servers.get(&view.my_id);
            let zxid = server.tree().last_zxid();
            let client_address = server.client_address().map(|address| address.to_string()).unwrap_or_default();
            put(out, "myid", view.my_id);
            put(out, "is_leader", view.leading());
            put(out, "quorum_address", address_set(me.map(|server| (server.host.as_str(), server.quorum_port))));
            put(out, "election_address", address_set(me.map(|server| (server.host.as_str(), server.election_port))));
            put(out, "client_address", client_address);
            put(out, "voting", view.voters.contains(&view.my_id));
            put(out, "last_zxid", format!("0x{zxid:x}"));
            // The zxid's halves, as ZooKeeper splits it (ZxidUtils).
            put(out, "zab_epoch", zxid >> 32);
            put(out, "zab_counter", zxid & 0xffff_ffff);
            put(out, "zabstate", view.zab_state());
            None
        }
    }
}

/// ZooKeeper's error for a command that needs a serving server.
const NOT_SERVING: &str = "This ZooKeeper instance is not currently serving requests";

/// A quorum or election address as ZooKeeper's MultipleAddresses bean
/// serialises one address; zoocore does not probe reachability, so the
/// address counts as reachable.
fn address_set(address: Option<(&str, u16)>) -> Value {
    let Some((host, port)) = address else {
        return json!({ "empty": true });
    };
    let one = format!("{host}:{port}");
    json!({
        "empty": false,
        "all_addresses": [one],
        "all_reachable_addresses": [one],
        "one": one,
        "reachable_address": one,
        "wildcard_addresses": [format!("0.0.0.0:{port}")],
        "all_ports": [port],
        "all_host_strings": [host],
        "all_reachable_addresses_or_all": [one],
        "reachable_or_one": one,
    })
}

/// One observer as ZooKeeper's LearnerHandler describes it, with what the
/// peer link counts. zoocore has no learner handler: `established` and
/// `requests` (forwarded requests) are not known per peer and are left out.
fn observer_info(server: &dyn ServerView, view: &super::EnsembleView, id: u64) -> Value {
    let link = view.link(id).cloned().unwrap_or_default();
    let address = server
        .config()
        .servers
        .get(&id)
        .map(|server| format!("/{}:{}", server.host, server.quorum_port))
        .unwrap_or_default();
    let matched = view.matched.iter().find(|(member, _)| *member == id).map_or(0, |(_, index)| *index);
    json!({
        "remote_socket_address": address,
        "sid": id,
        "queued_packets": link.queue_frames,
        "queued_packets_size": link.queue_bytes,
        "packets_received": link.frames_received,
        "packets_sent": link.frames_sent,
        "last_zxid": matched,
    })
}

/// srvr's keys, as ZooKeeper's server_stats answers them.
fn server_stats(server: &dyn ServerView, out: &mut Map<String, Value>) {
    let tree = server.tree();
    let (min, average, max) = super::monitor::latency_ms(server.metrics());
    let (data, log) = crate::ops::directory_sizes(server);
    let client_response = json!({ "last_buffer_size": -1, "min_buffer_size": -1, "max_buffer_size": -1 });
    put(out, "version", fourletter::full_version());
    put(out, "read_only", server.read_only());
    let mut stats = Map::new();
    put(&mut stats, "packets_sent", server.packets_sent());
    put(&mut stats, "packets_received", server.packets_received());
    put(&mut stats, "fsync_threshold_exceed_count", server.metrics().fsync_threshold_exceeded.load(Ordering::Relaxed));
    put(&mut stats, "client_response_stats", client_response.clone());
    put(&mut stats, "data_dir_size", data);
    put(&mut stats, "log_dir_size", log);
    put(&mut stats, "server_state", crate::ops::server_state(server));
    put(&mut stats, "last_processed_zxid", tree.last_zxid());
    put(&mut stats, "outstanding_requests", server.outstanding().max(0));
    put(&mut stats, "avg_latency", (average * 10_000.0).round() / 10_000.0);
    put(&mut stats, "max_latency", max.round() as i64);
    put(&mut stats, "min_latency", min.round() as i64);
    put(&mut stats, "num_alive_client_connections", server.connection_count());
    put(&mut stats, "auth_failed_count", server.metrics().auth_failed.load(Ordering::Relaxed));
    put(&mut stats, "non_mtlsremote_conn_count", 0);
    put(&mut stats, "non_mtlslocal_conn_count", 0);
    put(&mut stats, "provider_null", false);
    put(&mut stats, "uptime", server.started().elapsed().as_millis() as u64);
    put(out, "server_stats", stats);
    put(out, "client_response", client_response);
    put(out, "node_count", tree.node_count());
}

/// The connections as ZooKeeper's `connections` (full) and `stats` (brief)
/// list them.
fn connections(server: &dyn ServerView, brief: bool) -> Value {
    let mut list = Vec::new();
    for info in server.connections() {
        let mut connection = Map::new();
        put(&mut connection, "remote_socket_address", info.peer.to_string());
        put(&mut connection, "interest_ops", interest_ops(&info));
        put(&mut connection, "outstanding_requests", info.outstanding.load(Ordering::Relaxed).max(0));
        put(&mut connection, "packets_received", info.packets_received.load(Ordering::Relaxed));
        put(&mut connection, "packets_sent", info.packets_sent.load(Ordering::Relaxed));
        let session_id = info.session_id.load(Ordering::Relaxed);
        if !brief && session_id != 0 {
            let (last, min, average, max) = info.latency.snapshot();
            put(&mut connection, "session_id", session_id);
            put(&mut connection, "last_operation", opcode_name(info.last_opcode.load(Ordering::Relaxed) as i32));
            put(&mut connection, "established", established_ms(&info));
            put(&mut connection, "session_timeout", info.timeout_ms.load(Ordering::Relaxed));
            put(&mut connection, "last_cxid", info.last_cxid.load(Ordering::Relaxed));
            put(&mut connection, "last_zxid", info.last_zxid.load(Ordering::Relaxed));
            put(&mut connection, "last_response_time", info.last_response_ms.load(Ordering::Relaxed));
            put(&mut connection, "last_latency", last);
            put(&mut connection, "min_latency", min);
            put(&mut connection, "avg_latency", average);
            put(&mut connection, "max_latency", max);
        }
        list.push(Value::Object(connection));
    }
    Value::Array(list)
}

/// ZooKeeper's system properties that mean something for zoocore: the
/// platform's, and every `zookeeper.*` property from zoo.cfg.
fn system_properties(server: &dyn ServerView) -> Vec<(String, String)> {
    let mut properties: std::collections::BTreeMap<String, String> = fourletter::environment_entries()
        .into_iter()
        .filter(|(key, _)| key.starts_with("os.") || key.starts_with("user."))
        .collect();
    properties.insert("file.separator".into(), "/".into());
    properties.insert("line.separator".into(), "\n".into());
    properties.insert("path.separator".into(), ":".into());
    properties.insert("zoocore.version".into(), env!("CARGO_PKG_VERSION").into());
    properties.insert("zoocore.shards".into(), server.shard_count().to_string());
    for (key, value) in &server.config().system_properties {
        properties.insert(key.clone(), value.clone());
    }
    properties.into_iter().collect()
}
