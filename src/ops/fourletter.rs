//! Four-letter words on the client port, in ZooKeeper's text formats
//! (monitoring tools parse them), gated by 4lw.commands.whitelist.
//!
//! Each word reads the server through [`ServerView`] (the published tree,
//! the counters) and, for watches and session timers, asks their owners
//! through it (the shell sends the question over its control channels), so
//! no shard's hot path is locked for them.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use crate::config::{FourLetterWordWhitelist, PeerRole, QuorumServer};
use crate::ops::{self as metrics, ConnectionInfo, Monitor, ServerView};

/// The release whose client API zoocore provides; clients parse the
/// version to pick features.
pub const ZOOKEEPER_API_VERSION: &str = "3.9.3";

/// ZooKeeper's default trace mask (ZooTrace: client requests, client
/// ping and server packet tracing), printed by gtmk.
pub const DEFAULT_TRACE_MASK: i64 = 306;

/// Every four-letter word ZooKeeper 3.8 answers.
pub const WORDS: [&str; 18] = [
    "conf", "cons", "crst", "dirs", "dump", "envi", "gtmk", "ruok", "stmk", "srvr", "srst", "stat", "wchc", "wchp",
    "wchs", "mntr", "isro", "hash",
];

pub fn full_version() -> String {
    format!(
        "{ZOOKEEPER_API_VERSION}-zoocore-{}, built on zoocore {}",
        env!("CARGO_PKG_VERSION"),
        env!("CARGO_PKG_VERSION")
    )
}

/// The answer to `word`; `argument` is stmk's mask, if the client sent it.
pub async fn respond(server: &dyn ServerView, word: &str, argument: Option<i64>) -> String {
    let allowed = match &server.config().four_letter_word_whitelist {
        FourLetterWordWhitelist::All => true,
        whitelist => whitelist.allows(word),
    };
    if !allowed {
        tracing::debug!(word, "four-letter word refused: not in 4lw.commands.whitelist");
        return format!("{word} is not executed because it is not in the whitelist.\n");
    }
    match word {
        "ruok" => "imok".to_string(),
        // ZooKeeper answers "ro" from its ReadOnlyZooKeeperServer.
        "isro" => if server.read_only() { "ro" } else { "rw" }.to_string(),
        "srvr" => server_stats(server, false),
        "stat" => server_stats(server, true),
        "envi" => environment(),
        "conf" => configuration(server),
        "cons" => connections(server, false),
        "crst" => {
            server.reset_connection_stats();
            "Connection stats reset.\n".to_string()
        }
        "srst" => {
            server.reset_server_stats();
            "Server stats reset.\n".to_string()
        }
        "mntr" => monitor(server).await,
        "wchs" => watch_summary(server).await,
        "wchc" => watches(server, false).await,
        "wchp" => watches(server, true).await,
        "dump" => dump(server).await,
        "dirs" => {
            let (data, log) = metrics::directory_sizes(server);
            format!("datadir_size: {data}\nlogdir_size: {log}\n")
        }
        "gtmk" => server.trace_mask().to_string(),
        // ZooKeeper fails the command (and prints nothing) without the mask.
        "stmk" => match argument {
            Some(mask) => {
                server.set_trace_mask(mask);
                mask.to_string()
            }
            None => String::new(),
        },
        // The committed tree's digest history (tree/digest.rs), one line
        // per logged digest as ZooKeeper's DigestCommand prints it: hex
        // zxid, then the digest in decimal; nothing before the first.
        "hash" => server.tree().digest_log().map(|entry| format!("{:x}: {}\n", entry.zxid, entry.digest)).collect(),
        _ => String::new(),
    }
}

fn server_stats(server: &dyn ServerView, with_clients: bool) -> String {
    let tree = server.tree();
    let mut out = String::new();
    let _ = writeln!(out, "Zookeeper version: {}", full_version());
    if with_clients {
        out.push_str("Clients:\n");
        out.push_str(&connections(server, true));
        out.push('\n');
    }
    let (min, average, max) = super::monitor::latency_ms(server.metrics());
    let _ = writeln!(
        out,
        "Latency min/avg/max: {}/{}/{}",
        min.round() as i64,
        metrics::java_double(average),
        max.round() as i64
    );
    let _ = writeln!(out, "Received: {}", server.packets_received());
    let _ = writeln!(out, "Sent: {}", server.packets_sent());
    let _ = writeln!(out, "Connections: {}", server.connection_count());
    let _ = writeln!(out, "Outstanding: {}", server.outstanding().max(0));
    let _ = writeln!(out, "Zxid: 0x{:x}", tree.last_zxid());
    let _ = writeln!(out, "Mode: {}", metrics::server_state(server));
    let _ = writeln!(out, "Node count: {}", tree.node_count());
    out
}

/// ZooKeeper's interest ops: 1 (reading) for a connection with a session,
/// 0 while its handshake (or a four-letter word) is under way.
pub fn interest_ops(info: &ConnectionInfo) -> i64 {
    if info.session_id.load(Ordering::Relaxed) != 0 {
        1
    } else {
        0
    }
}

/// The wall-clock time (ms since the epoch) of a time given in ms since
/// the server started.
pub fn wall_ms(server: &dyn ServerView, since_start_ms: i64) -> i64 {
    crate::clock::wall_ms() - server.started().elapsed().as_millis() as i64 + since_start_ms
}

pub fn established_ms(info: &ConnectionInfo) -> i64 {
    crate::clock::epoch_ms(info.established)
}

/// One line per connection, as ServerCnxn.dumpConnectionInfo prints it.
fn connections(server: &dyn ServerView, brief: bool) -> String {
    let mut out = String::new();
    for info in server.connections() {
        let _ = write!(
            out,
            " /{}[{}](queued={},recved={},sent={}",
            info.peer,
            interest_ops(&info),
            info.outstanding.load(Ordering::Relaxed).max(0),
            info.packets_received.load(Ordering::Relaxed),
            info.packets_sent.load(Ordering::Relaxed)
        );
        let session_id = info.session_id.load(Ordering::Relaxed);
        if !brief && session_id != 0 {
            let _ = write!(
                out,
                ",sid=0x{:x},lop={},est={},to={}",
                session_id,
                opcode_name(info.last_opcode.load(Ordering::Relaxed) as i32),
                established_ms(&info),
                info.timeout_ms.load(Ordering::Relaxed),
            );
            let last_cxid = info.last_cxid.load(Ordering::Relaxed);
            if last_cxid >= 0 {
                let _ = write!(out, ",lcxid=0x{last_cxid:x}");
            }
            let (last, min, average, max) = info.latency.snapshot();
            let _ = write!(
                out,
                ",lzxid=0x{:x},lresp={},llat={last},minlat={min},avglat={average},maxlat={max}",
                info.last_zxid.load(Ordering::Relaxed),
                info.last_response_ms.load(Ordering::Relaxed),
            );
        }
        out.push_str(")\n");
    }
    if !brief {
        out.push('\n');
    }
    out
}

/// ZooKeeper's short names for the last operation (Request.op2String).
pub fn opcode_name(opcode: i32) -> &'static str {
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

/// The environment, as envi lists it: ZooKeeper's keys that apply to a
/// process that is not a JVM, and zoocore's version.
pub fn environment_entries() -> Vec<(String, String)> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let os_release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let directory = std::env::current_dir().map(|dir| dir.display().to_string()).unwrap_or_default();
    let os_name = match std::env::consts::OS {
        "linux" => "Linux".to_string(),
        other => other.to_string(),
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64".to_string(),
        other => other.to_string(),
    };
    let pair = |key: &str, value: String| (key.to_string(), value);
    vec![
        pair("zookeeper.version", full_version()),
        pair("zoocore.version", env!("CARGO_PKG_VERSION").to_string()),
        pair("host.name", host.trim().to_string()),
        pair("os.name", os_name),
        pair("os.arch", arch),
        pair("os.version", os_release.trim().to_string()),
        pair("user.name", user_name()),
        pair("user.home", std::env::var("HOME").unwrap_or_default()),
        pair("user.dir", directory),
    ]
}

/// The name of the user the process runs as: $USER, else /etc/passwd.
fn user_name() -> String {
    if let Ok(user) = std::env::var("USER") {
        return user;
    }
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() }.to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.get(2) == Some(&uid.as_str()))
        .and_then(|fields| fields.first().map(|name| name.to_string()))
        .unwrap_or_default()
}

fn environment() -> String {
    let mut out = String::from("Environment:\n");
    for (key, value) in environment_entries() {
        let _ = writeln!(out, "{key}={value}");
    }
    out
}

/// conf's pairs with the bound client port (clientPort=0 asks for any)
/// and, on an ensemble member, its id as serverId.
pub fn configuration_entries(server: &dyn ServerView) -> Vec<(String, String)> {
    let bound_port = server.client_address().map(|address| address.port());
    let my_id = member_id(server);
    let (data, log) = metrics::directory_sizes(server);
    server
        .config()
        .render_conf_with_sizes(data, log)
        .into_iter()
        .map(|(key, value)| match (key.as_str(), bound_port, my_id) {
            ("clientPort", Some(port), _) => (key, port.to_string()),
            ("serverId", _, Some(id)) => (key, id.to_string()),
            _ => (key, value),
        })
        .collect()
}

/// This server's id if it is an ensemble member; None standalone.
pub fn member_id(server: &dyn ServerView) -> Option<u64> {
    let view = server.ensemble();
    view.distributed.then_some(view.my_id)
}

/// One `server.N` line as ZooKeeper's QuorumServer prints it:
/// `host:quorumPort:electionPort:role[;clientHost:clientPort]`.
pub fn server_line(server: &QuorumServer) -> String {
    let mut line = format!("{}:{}:{}:{}", server.host, server.quorum_port, server.election_port, server.role.as_str());
    if let Some(client) = &server.client_address {
        let _ = write!(line, ";{}:{}", client.host, client.port);
    }
    line
}

/// The configuration's version as ZooKeeper prints it after `membership:`:
/// the hex suffix of its dynamic file (`zoo.cfg.dynamic.100000000`), 0
/// for servers listed in zoo.cfg itself.
pub fn membership_version(config: &crate::config::Config) -> String {
    config
        .dynamic_config_file
        .as_ref()
        .and_then(|path| path.file_name()?.to_str()?.rsplit_once(".dynamic.").map(|(_, version)| version.to_string()))
        .filter(|version| !version.is_empty() && version.chars().all(|c| c.is_ascii_hexdigit()))
        .unwrap_or_else(|| "0".to_string())
}

fn configuration(server: &dyn ServerView) -> String {
    let mut out = String::new();
    for (key, value) in configuration_entries(server) {
        let _ = writeln!(out, "{key}={value}");
    }
    // A quorum member appends its quorum settings and the membership, as
    // ZooKeeper's QuorumPeer does.
    let Some(my_id) = member_id(server) else { return out };
    let config = server.config();
    let me = config.servers.get(&my_id);
    let _ = writeln!(out, "initLimit={}", config.init_limit_ticks);
    let _ = writeln!(out, "syncLimit={}", config.sync_limit_ticks);
    // ZooKeeper's only election algorithm (FastLeaderElection); zoocore
    // elects with raft but reports what a ZooKeeper member would.
    out.push_str("electionAlg=3\n");
    let _ = writeln!(out, "electionPort={}", me.map_or(-1, |server| i64::from(server.election_port)));
    let _ = writeln!(out, "quorumPort={}", me.map_or(-1, |server| i64::from(server.quorum_port)));
    // LearnerType's ordinal: 0 participant, 1 observer.
    let observer = me.map_or(config.peer_type == PeerRole::Observer, |server| server.role == PeerRole::Observer);
    let _ = writeln!(out, "peerType={}", u8::from(observer));
    out.push_str("membership: \n");
    for (id, server) in &config.servers {
        let _ = writeln!(out, "server.{id}={}", server_line(server));
    }
    let _ = writeln!(out, "version={}", membership_version(config));
    out
}

async fn monitor(server: &dyn ServerView) -> String {
    let watches = server.watch_summary().await;
    let mut out = String::new();
    for (name, value) in Monitor::gather(server, watches).flat() {
        let _ = writeln!(out, "zk_{name}\t{}", value.to_text());
    }
    out
}

async fn watch_summary(server: &dyn ServerView) -> String {
    let summary = server.watch_summary().await;
    format!(
        "{} connections watching {} paths\nTotal watches:{}\n",
        summary.data_connections, summary.data_paths, summary.data_watches
    )
}

/// wchc (by session) and wchp (by path), as WatchManager.dumpWatches
/// prints them, followed by an empty line.
async fn watches(server: &dyn ServerView, by_path: bool) -> String {
    let report = server.watches().await;
    let mut out = String::new();
    if by_path {
        for (path, sessions) in &report.by_path {
            let _ = writeln!(out, "{path}");
            for session in sessions {
                let _ = writeln!(out, "\t0x{session:x}");
            }
        }
    } else {
        for (session, paths) in &report.by_session {
            let _ = writeln!(out, "0x{session:x}");
            for path in paths {
                let _ = writeln!(out, "\t{path}");
            }
        }
    }
    out.push('\n');
    out
}

/// A time as Java's Date.toString prints it, in UTC:
/// `Sat Nov 21 05:52:02 UTC 2026`.
pub fn java_date(ms_since_epoch: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let seconds = ms_since_epoch.div_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{} {} {:02} {:02}:{:02}:{:02} UTC {}",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        day,
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60,
        year
    )
}

/// Connections grouped by when they would time out without traffic (the
/// last reply, or the handshake, plus the session timeout, rounded up to a
/// tick), as NIOServerCnxnFactory.dumpConnections groups them.
pub fn connection_expiry(server: &dyn ServerView) -> BTreeMap<i64, Vec<(SocketAddr, i64)>> {
    let tick = server.config().tick_time_ms.max(1) as i64;
    let mut sets: BTreeMap<i64, Vec<(SocketAddr, i64)>> = BTreeMap::new();
    for info in server.connections() {
        let last_response = info.last_response_ms.load(Ordering::Relaxed);
        let active = if last_response > 0 { wall_ms(server, last_response) } else { established_ms(&info) };
        let timeout = match info.timeout_ms.load(Ordering::Relaxed) {
            0 => tick * 5,
            timeout => timeout,
        };
        let expiry = ((active + timeout) / tick + 1) * tick;
        sets.entry(expiry).or_default().push((info.peer, info.session_id.load(Ordering::Relaxed)));
    }
    sets
}

async fn dump(server: &dyn ServerView) -> String {
    let buckets = server.session_buckets().await;
    let tree = server.tree();
    let mut out = String::from("SessionTracker dump:\n");
    let session_total: usize = buckets.iter().map(|(_, sessions)| sessions.len()).sum();
    let _ = writeln!(out, "Session Sets ({})/({}):", buckets.len(), session_total);
    for (expiry_ms, sessions) in &buckets {
        let _ = writeln!(out, "{} expire at {}:", sessions.len(), java_date(*expiry_ms));
        for session in sessions {
            let _ = writeln!(out, "\t0x{session:x}");
        }
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
    let sets = connection_expiry(server);
    let connection_total: usize = sets.values().map(Vec::len).sum();
    let _ = writeln!(out, "Connections Sets ({})/({}):", sets.len(), connection_total);
    for (expiry_ms, connections) in &sets {
        let _ = writeln!(out, "{} expire at {}:", connections.len(), java_date(*expiry_ms));
        for (peer, session) in connections {
            let _ = writeln!(out, "\tip: /{peer} sessionId: 0x{session:x}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_date_matches_date_to_string() {
        // 2026-11-21T05:52:02Z, as the reference ZooKeeper printed it.
        assert_eq!(java_date(1_795_240_322_000), "Sat Nov 21 05:52:02 UTC 2026");
        assert_eq!(java_date(0), "Thu Jan 01 00:00:00 UTC 1970");
        assert_eq!(java_date(951_782_400_000), "Tue Feb 29 00:00:00 UTC 2000");
    }
}
