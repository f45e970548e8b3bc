//! Four-letter words on the client port, in ZooKeeper's text formats
//! (monitoring tools parse them), gated by 4lw.commands.whitelist.

use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::time::UNIX_EPOCH;

use super::shard::Shard;
use crate::config::FourLetterWordWhitelist;

/// The ZooKeeper release whose client API zoocore provides; clients parse
/// the version to pick features.
pub const ZOOKEEPER_API_VERSION: &str = "3.9.3";

pub fn full_version() -> String {
    format!(
        "{ZOOKEEPER_API_VERSION}-zoocore-{}, built on zoocore {}",
        env!("CARGO_PKG_VERSION"),
        env!("CARGO_PKG_VERSION")
    )
}

pub fn respond(shard: &Shard, word: &str) -> String {
    let allowed = match &shard.shared.config.four_letter_word_whitelist {
        FourLetterWordWhitelist::All => true,
        whitelist => whitelist.allows(word),
    };
    if !allowed {
        return format!("{word} is not executed because it is not in the whitelist.\n");
    }
    match word {
        "ruok" => "imok".to_string(),
        "isro" => "rw".to_string(),
        "srvr" => server_stats(shard, false),
        "stat" => server_stats(shard, true),
        "envi" => environment(),
        "conf" => configuration(shard),
        "cons" => connections(shard, false),
        "crst" => {
            for connections in &shard.shared.connections {
                if let Ok(connections) = connections.lock() {
                    for info in connections.values() {
                        info.packets_received.store(0, Ordering::Relaxed);
                        info.packets_sent.store(0, Ordering::Relaxed);
                    }
                }
            }
            "Connection stats reset.\n".to_string()
        }
        "srst" => {
            for stats in &shard.shared.shard_stats {
                stats.reset();
            }
            "Server stats reset.\n".to_string()
        }
        "mntr" => monitor(shard),
        "wchs" => watch_summary(shard),
        "dump" => dump(shard),
        "dirs" => format!("datadir_size: {}\nlogdir_size: {}\n", 0, 0),
        "gtmk" | "stmk" => "0\n".to_string(),
        "hash" => "Digest computation is disabled.\n".to_string(),
        "wchc" | "wchp" => "This command is not yet available in zoocore.\n".to_string(),
        _ => String::new(),
    }
}

fn mode(_shard: &Shard) -> &'static str {
    "standalone"
}

fn format_average(value: f64) -> String {
    let text = format!("{value:.4}");
    let trimmed = text.trim_end_matches('0');
    if trimmed.ends_with('.') {
        format!("{trimmed}0")
    } else {
        trimmed.to_string()
    }
}

fn server_stats(shard: &Shard, with_clients: bool) -> String {
    let shared = &shard.shared;
    let tree = shared.tree();
    let mut out = String::new();
    let _ = writeln!(out, "Zookeeper version: {}", full_version());
    if with_clients {
        out.push_str("Clients:\n");
        out.push_str(&connections(shard, true));
        out.push('\n');
    }
    let (min, average, max) = shared.latency_ms();
    let _ =
        writeln!(out, "Latency min/avg/max: {}/{}/{}", min.round() as i64, format_average(average), max.round() as i64);
    let _ = writeln!(out, "Received: {}", shared.sum(|stats| &stats.packets_received));
    let _ = writeln!(out, "Sent: {}", shared.sum(|stats| &stats.packets_sent));
    let _ = writeln!(out, "Connections: {}", shared.connection_count());
    let _ = writeln!(out, "Outstanding: {}", shared.outstanding().max(0));
    let _ = writeln!(out, "Zxid: 0x{:x}", tree.last_zxid());
    let _ = writeln!(out, "Mode: {}", mode(shard));
    let _ = writeln!(out, "Node count: {}", tree.node_count());
    out
}

/// One line per connection, as ServerCnxn.dumpConnectionInfo prints it.
fn connections(shard: &Shard, brief: bool) -> String {
    let mut out = String::new();
    for connections in &shard.shared.connections {
        let Ok(connections) = connections.lock() else {
            continue;
        };
        for info in connections.values() {
            let _ = write!(
                out,
                " /{}[1](queued={},recved={},sent={}",
                info.peer,
                info.outstanding.load(Ordering::Relaxed).max(0),
                info.packets_received.load(Ordering::Relaxed),
                info.packets_sent.load(Ordering::Relaxed)
            );
            let session_id = info.session_id.load(Ordering::Relaxed);
            if !brief && session_id != 0 {
                let established = info.established.duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
                let _ = write!(
                    out,
                    ",sid=0x{:x},lop={},est={},to={},lzxid=0x{:x}",
                    session_id,
                    opcode_name(info.last_opcode.load(Ordering::Relaxed) as i32),
                    established,
                    info.timeout_ms.load(Ordering::Relaxed),
                    info.last_zxid.load(Ordering::Relaxed)
                );
            }
            out.push_str(")\n");
        }
    }
    if !brief {
        out.push('\n');
    }
    out
}

/// ZooKeeper's short names for the last operation (Request.op2String).
fn opcode_name(opcode: i32) -> &'static str {
    use crate::proto::codes::op;
    match opcode {
        op::CREATE | op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => "CREA",
        op::DELETE => "DELE",
        op::EXISTS => "EXIS",
        op::GET_DATA => "GETD",
        op::SET_DATA => "SETD",
        op::GET_ACL => "GETA",
        op::SET_ACL => "SETA",
        op::GET_CHILDREN | op::GET_CHILDREN2 => "GETC",
        op::SYNC => "SYNC",
        op::PING => "PING",
        op::MULTI => "MULT",
        op::MULTI_READ => "MLTR",
        op::SET_WATCHES | op::SET_WATCHES2 => "SETW",
        op::CLOSE_SESSION => "CLOS",
        _ => "NA",
    }
}

fn environment() -> String {
    let mut out = String::from("Environment:\n");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let os_release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let _ = writeln!(out, "zookeeper.version={}", full_version());
    let _ = writeln!(out, "zoocore.version={}", env!("CARGO_PKG_VERSION"));
    let _ = writeln!(out, "host.name={}", host.trim());
    let _ = writeln!(out, "os.name={}", std::env::consts::OS);
    let _ = writeln!(out, "os.arch={}", std::env::consts::ARCH);
    let _ = writeln!(out, "os.version={}", os_release.trim());
    let _ = writeln!(out, "user.name={}", std::env::var("USER").unwrap_or_default());
    let _ = writeln!(out, "user.home={}", std::env::var("HOME").unwrap_or_default());
    let _ =
        writeln!(out, "user.dir={}", std::env::current_dir().map(|dir| dir.display().to_string()).unwrap_or_default());
    out
}

fn configuration(shard: &Shard) -> String {
    let config = &shard.shared.config;
    let bound_port = shard.shared.client_address.lock().ok().and_then(|address| *address).map(|address| address.port());
    let mut out = String::new();
    for (key, value) in config.render_conf() {
        let value = match (key.as_str(), bound_port) {
            ("clientPort", Some(port)) => port.to_string(),
            _ => value,
        };
        let _ = writeln!(out, "{key}={value}");
    }
    out
}

fn monitor(shard: &Shard) -> String {
    let shared = &shard.shared;
    let tree = shared.tree();
    let (min, average, max) = shared.latency_ms();
    let mut out = String::new();
    let mut line = |key: &str, value: String| {
        let _ = writeln!(out, "{key}\t{value}");
    };
    line("zk_version", full_version());
    line("zk_server_state", mode(shard).to_string());
    line("zk_avg_latency", format_average(average));
    line("zk_max_latency", (max.round() as i64).to_string());
    line("zk_min_latency", (min.round() as i64).to_string());
    line("zk_packets_received", shared.sum(|stats| &stats.packets_received).to_string());
    line("zk_packets_sent", shared.sum(|stats| &stats.packets_sent).to_string());
    line("zk_num_alive_connections", shared.connection_count().to_string());
    line("zk_outstanding_requests", shared.outstanding().max(0).to_string());
    line("zk_znode_count", tree.node_count().to_string());
    line("zk_watch_count", shared.sum(|stats| &stats.watch_count).to_string());
    line("zk_ephemerals_count", tree.ephemeral_count().to_string());
    line("zk_approximate_data_size", tree.approximate_data_bytes().to_string());
    line("zk_global_sessions", tree.session_count().to_string());
    line("zk_uptime", shared.started.elapsed().as_millis().to_string());
    line("zk_last_zxid", format!("0x{:x}", tree.last_zxid()));
    if let Some((open, max_files)) = file_descriptors() {
        line("zk_open_file_descriptor_count", open.to_string());
        line("zk_max_file_descriptor_count", max_files.to_string());
    }
    out
}

fn file_descriptors() -> Option<(usize, u64)> {
    let open = std::fs::read_dir("/proc/self/fd").ok()?.count();
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|line| line.starts_with("Max open files"))?;
    let soft = line.split_whitespace().nth(3)?.parse().ok()?;
    Some((open, soft))
}

fn watch_summary(shard: &Shard) -> String {
    let shared = &shard.shared;
    format!(
        "{} connections watching {} paths\nTotal watches:{}\n",
        shared.sum(|stats| &stats.watching_connection_count),
        shared.sum(|stats| &stats.watched_path_count),
        shared.sum(|stats| &stats.watch_count)
    )
}

fn dump(shard: &Shard) -> String {
    let tree = shard.shared.tree();
    let mut out = String::from("SessionTracker dump:\n");
    let mut sessions: Vec<_> = tree.sessions().map(|session| (session.id, session.timeout_ms)).collect();
    sessions.sort_unstable();
    let _ = writeln!(out, "Global Sessions({}):", sessions.len());
    for (id, timeout_ms) in &sessions {
        let _ = writeln!(out, "0x{id:x}\t{timeout_ms}ms");
    }
    out.push_str("ephemeral nodes dump:\n");
    let mut owners: Vec<_> = tree.ephemerals().collect();
    owners.sort_by_key(|(session, _)| *session);
    let _ = writeln!(out, "Sessions with Ephemerals ({}):", owners.len());
    for (session, paths) in owners {
        let _ = writeln!(out, "0x{session:x}:");
        for path in paths.iter() {
            let _ = writeln!(out, "\t{path}");
        }
    }
    out.push_str("Connections dump:\n");
    out.push_str(&connections(shard, false));
    out
}
