//! Operating an ensemble: what a 3-voter, 1-observer zoocore ensemble of
//! real processes answers to srvr, stat, mntr and conf, to the admin
//! commands leader, voting_view, zabstate, observers and configuration, and
//! on its Prometheus page, held against what ZooKeeper 3.8's 3-node
//! ensemble answered (tests/fixtures/ops/ensemble_zk/, recorded from zkref's
//! start-ensemble.sh: `leader.*` from its leader, `follower.*` from a
//! follower). Keys and the kinds of their values are compared, not values,
//! which differ between any two runs.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;
use serde_json::Value;

const ELECTION_DEADLINE: Duration = Duration::from_secs(20);
/// The broadcast core refreshes its view every 500 ms; this is how long a
/// condition on it may take to show, with room for a slow machine.
const VIEW_DEADLINE: Duration = Duration::from_secs(20);
const PROMETHEUS: &str = "metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider";

/// ZooKeeper's leader-only mntr keys that zoocore does not print: the
/// proposal sizes (the broadcast core does not see the encoded size of one
/// proposal) and the per-learner queue summary sets (zoocore exports queue
/// depth per peer as zoocore_peer_queue_frames on the Prometheus page).
fn leader_keys_not_printed(key: &str) -> bool {
    key.ends_with("_proposal_size") || key.contains("learner_handler_qp")
}

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/ops/ensemble_zk/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap_or_else(|error| panic!("{name}: {error}"))
}

/// The kind of a value as mntr prints it: integer, decimal or text.
fn text_kind(value: &str) -> &'static str {
    if value.parse::<i64>().is_ok() {
        "integer"
    } else if value.parse::<f64>().is_ok() {
        "decimal"
    } else {
        "text"
    }
}

/// mntr's lines as key -> value.
fn mntr(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once('\t'))
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

/// srvr's and stat's `Key: value` lines (the client list of stat aside).
fn colon_keys(text: &str) -> Vec<String> {
    text.lines()
        .filter(|line| !line.starts_with(' ') && !line.is_empty())
        .filter_map(|line| line.split_once(':').map(|(key, _)| key.to_string()))
        .collect()
}

/// The JSON kind of a value; integers and decimals apart, as Jackson
/// writes them.
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(number) if number.is_i64() || number.is_u64() => "integer",
        Value::Number(_) => "decimal",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `ours` has exactly the keys of `reference`, each with the same kind of
/// value, down through objects and the first element of arrays.
fn same_shape(what: &str, reference: &Value, ours: &Value) {
    assert_eq!(json_kind(reference), json_kind(ours), "{what}: ZooKeeper has {reference}, zoocore {ours}");
    match (reference, ours) {
        (Value::Object(theirs), Value::Object(mine)) => {
            let their_keys: BTreeSet<&String> = theirs.keys().collect();
            let my_keys: BTreeSet<&String> = mine.keys().collect();
            assert_eq!(their_keys, my_keys, "{what}: keys differ from ZooKeeper's\nzoocore: {ours}");
            for (key, value) in theirs {
                same_shape(&format!("{what}.{key}"), value, &mine[key]);
            }
        }
        (Value::Array(theirs), Value::Array(mine)) => {
            if let (Some(their_first), Some(my_first)) = (theirs.first(), mine.first()) {
                same_shape(&format!("{what}[0]"), their_first, my_first);
            }
        }
        _ => {}
    }
}

fn admin(server: &Server, command: &str) -> Value {
    let addr = server.admin_addr().expect("the admin server");
    http_json(addr, &format!("/commands/{command}"))
}

fn metrics_page(server: &Server) -> String {
    let addr = server.metrics_addr().expect("the metrics page");
    let (status, _, body) = http(addr, "GET", "/metrics");
    assert_eq!(status, 200, "{body}");
    body
}

/// The value of the sample `name{labels}` (labels as printed), if present.
fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test]
async fn an_ensemble_answers_operations_commands_as_zookeepers_does() {
    let cluster = Cluster::start_with(3, 1, &[PROMETHEUS, "metricsProvider.httpPort=0"]);
    let leader = cluster.wait_for_leader(ELECTION_DEADLINE);
    let leader_id = leader as u64 + 1;
    let followers: Vec<usize> = (0..3).filter(|index| *index != leader).collect();
    let observer = 3;

    // Writes through a follower, so the leader has proposals to time and
    // every member has a log to report.
    let client = connect(cluster.servers[followers[0]].addr()).await;
    for index in 0..20 {
        client.create(&format!("/ops-{index}"), b"x", &persistent()).await.expect("create");
    }
    client.sync("/").await.expect("sync");

    // The leader sees both followers and the observer synced once its view
    // is refreshed.
    let leader_server = &cluster.servers[leader];
    assert!(
        wait_for(VIEW_DEADLINE, || {
            let values = mntr(&leader_server.four_letter("mntr"));
            values.get("zk_synced_followers").map(String::as_str) == Some("2")
                && values.get("zk_synced_observers").map(String::as_str) == Some("1")
        }),
        "the leader never counted its followers and observer synced:\n{}",
        leader_server.four_letter("mntr")
    );

    // srvr and stat: ZooKeeper's lines and Mode for each role. The leader's
    // `Proposal sizes` line is the one zoocore does not print.
    for (role, index) in [("leader", leader), ("follower", followers[0]), ("observer", observer)] {
        let server = &cluster.servers[index];
        let fixture_role = if role == "leader" { "leader" } else { "follower" };
        for word in ["srvr", "stat"] {
            let ours = server.four_letter(word);
            assert!(ours.contains(&format!("\nMode: {role}\n")), "{role}'s {word}:\n{ours}");
            let mut expected = colon_keys(&fixture(&format!("{fixture_role}.{word}.txt")));
            expected.retain(|key| key != "Proposal sizes last/min/max");
            assert_eq!(colon_keys(&ours), expected, "{role}'s {word}:\n{ours}");
        }
    }

    // mntr: every key both print has the same kind of value; the keys
    // ZooKeeper's leader prints and its follower does not are on zoocore's
    // leader only; every member has its peer state and quorum size.
    let zk_leader = mntr(&fixture("leader.mntr.txt"));
    let zk_follower = mntr(&fixture("follower.mntr.txt"));
    let leader_only: BTreeSet<&String> =
        zk_leader.keys().filter(|key| !zk_follower.contains_key(*key) && !leader_keys_not_printed(key)).collect();
    assert!(leader_only.contains(&"zk_pending_syncs".to_string()), "{leader_only:?}");
    for (role, index) in [("leader", leader), ("follower", followers[0]), ("follower", followers[1])] {
        let ours = mntr(&cluster.servers[index].four_letter("mntr"));
        let reference = if role == "leader" { &zk_leader } else { &zk_follower };
        assert_eq!(ours["zk_server_state"], role);
        assert_eq!(ours["zk_peer_state"], reference["zk_peer_state"], "{role}");
        assert_eq!(ours["zk_quorum_size"], "3", "{role}: three voters");
        for key in &leader_only {
            assert_eq!(ours.contains_key(*key), role == "leader", "{role}: {key}");
        }
        for (key, value) in &ours {
            if let Some(theirs) = reference.get(key) {
                assert_eq!(text_kind(value), text_kind(theirs), "{role}'s {key}: {value} against ZooKeeper's {theirs}");
            }
        }
    }
    let leader_mntr = mntr(&leader_server.four_letter("mntr"));
    assert_eq!(leader_mntr["zk_learners"], "3", "two followers and the observer");
    assert_eq!(leader_mntr["zk_synced_non_voting_followers"], "0");
    assert!(leader_mntr["zk_cnt_election_time"].parse::<u64>().unwrap() >= 1, "{leader_mntr:?}");
    let observer_mntr = mntr(&cluster.servers[observer].four_letter("mntr"));
    assert_eq!(observer_mntr["zk_server_state"], "observer");
    assert_eq!(observer_mntr["zk_peer_state"], "observing - broadcast");
    assert_eq!(observer_mntr["zk_observer_master_id"], leader_id.to_string());

    // conf: ZooKeeper's keys in its order, then the membership.
    let zk_conf = fixture("leader.conf.txt");
    let key_of = |line: &str| line.split_once('=').map(|(key, _)| key.to_string()).unwrap_or(line.to_string());
    let zk_head: Vec<String> =
        zk_conf.lines().take_while(|line| !line.starts_with("membership:")).map(key_of).collect();
    for (index, server) in cluster.servers.iter().enumerate() {
        let conf = server.four_letter("conf");
        let head: Vec<String> = conf.lines().take_while(|line| !line.starts_with("membership:")).map(key_of).collect();
        assert_eq!(head, zk_head, "conf of server {}:\n{conf}", index + 1);
        assert!(conf.contains(&format!("\nserverId={}\n", index + 1)), "{conf}");
        let peer_type = if index == observer { 1 } else { 0 };
        assert!(conf.contains(&format!("\npeerType={peer_type}\n")), "{conf}");
        let membership: Vec<&str> = conf.lines().skip_while(|line| !line.starts_with("membership:")).collect();
        assert_eq!(membership.first(), Some(&"membership: "), "{conf}");
        assert_eq!(membership.len(), 1 + 4 + 1, "the line, four servers and the version:\n{conf}");
        assert!(membership[4].starts_with("server.4=127.0.0.1:") && membership[4].contains(":observer;127.0.0.1:"));
        assert!(membership[1].contains(":participant;127.0.0.1:"), "{conf}");
        assert!(membership[5].starts_with("version="), "{conf}");
    }

    // The admin commands: ZooKeeper's keys and kinds, leader and follower.
    for (role, index) in [("leader", leader), ("follower", followers[0])] {
        let server = &cluster.servers[index];
        for command in ["leader", "voting_view", "zabstate", "observers", "conf"] {
            let reference = fixture_json(&format!("{role}.{command}.json"));
            let ours = admin(server, command);
            if command == "observers" && role == "leader" {
                // ZooKeeper's recording had no observer; ours has one.
                assert_eq!(ours["synced_observers"], 1, "{ours}");
                assert_eq!(ours["observers"][0]["sid"], 4, "{ours}");
                continue;
            }
            same_shape(&format!("{role}'s {command}"), &reference, &ours);
        }
        let answer = admin(server, "leader");
        assert_eq!(answer["is_leader"], role == "leader");
        assert_eq!(answer["leader_id"], leader_id);
        assert_eq!(answer["leader_ip"], "127.0.0.1");
        let zab = admin(server, "zabstate");
        assert_eq!(zab["myid"], index as u64 + 1);
        assert_eq!(zab["voting"], true);
        assert_eq!(zab["zabstate"], "broadcast");
        let view = admin(server, "voting_view");
        let members: Vec<&String> = view["current_config"].as_object().unwrap().keys().collect();
        assert_eq!(members, ["1", "2", "3"], "the voters only: {view}");
        assert_eq!(admin(server, "conf")["server_id"], index as u64 + 1);
    }
    let observer_zab = admin(&cluster.servers[observer], "zabstate");
    assert_eq!(observer_zab["voting"], false, "{observer_zab}");
    assert_eq!(observer_zab["is_leader"], false);

    // Prometheus: per-peer lag and queues on the leader, proposal latency
    // once a write committed, elections on every member.
    let page = metrics_page(leader_server);
    for peer in (1..=4u64).filter(|peer| *peer != leader_id) {
        let labels = format!("{{peer=\"{peer}\"}}");
        assert!(sample(&page, &format!("zoocore_peer_lag_entries{labels}")).is_some(), "lag of {peer}:\n{page}");
        assert_eq!(sample(&page, &format!("zoocore_peer_connected{labels}")), Some(1.0), "{peer}");
        assert!(sample(&page, &format!("zoocore_peer_queue_frames{labels}")).is_some(), "{peer}");
        assert!(sample(&page, &format!("zoocore_peer_dropped_frames_total{labels}")).is_some(), "{peer}");
    }
    assert!(sample(&page, "proposal_latency_count").unwrap_or(0.0) >= 1.0, "{page}");
    assert!(page.contains("# TYPE proposal_latency summary"), "{page}");
    assert!(page.contains("# TYPE election_time summary"), "{page}");
    assert!(sample(&page, "learners").is_some() && sample(&page, "synced_followers") == Some(2.0), "{page}");
    for server in &cluster.servers {
        let page = metrics_page(server);
        assert!(sample(&page, "zoocore_elections_total").unwrap_or(0.0) >= 1.0, "{page}");
        assert!(sample(&page, "election_time_count").unwrap_or(0.0) >= 1.0, "{page}");
        // The view is refreshed twice a second: the last writes may show
        // a refresh later.
        let applied = || sample(&metrics_page(server), "zoocore_log_index{index=\"applied\"}").unwrap_or(0.0);
        assert!(wait_for(VIEW_DEADLINE, || applied() >= 20.0), "{}", metrics_page(server));
    }
    // Only the leader knows the others' lag.
    let follower_page = metrics_page(&cluster.servers[followers[0]]);
    assert!(!follower_page.contains("zoocore_peer_lag_entries{"), "{follower_page}");
}

#[tokio::test]
async fn a_member_without_a_quorum_is_looking_and_says_so() {
    let mut cluster = Cluster::start(3, 0);
    let leader = cluster.wait_for_leader(ELECTION_DEADLINE);
    let survivor = (leader + 1) % 3;
    for index in (0..3).filter(|index| *index != survivor) {
        cluster.servers[index].kill();
    }
    let server = &cluster.servers[survivor];
    assert!(
        wait_for(VIEW_DEADLINE, || server.four_letter("srvr").contains("\nMode: looking\n")),
        "the last member never noticed it lost its quorum:\n{}",
        server.four_letter("srvr")
    );
    let values = mntr(&server.four_letter("mntr"));
    assert_eq!(values["zk_server_state"], "looking");
    assert_eq!(values["zk_peer_state"], "looking - election");
    assert!(!values.contains_key("zk_synced_followers"));
    assert!(values["zk_looking_count"].parse::<u64>().unwrap() >= 2, "the first election and this one: {values:?}");
    // ZooKeeper does not serve without a leader; its commands that need
    // the server say so.
    let answer = admin(server, "leader");
    assert_eq!(answer["error"], "This ZooKeeper instance is not currently serving requests", "{answer}");
    let answer = admin(server, "zabstate");
    assert_eq!(answer["error"], "This ZooKeeper instance is not currently serving requests", "{answer}");
}

/// Every member's digest history (the `hash` word, tree/digest.rs) at the
/// same zxid, once synced: the same digest on all three, equal to the
/// digest recomputed from what each serves; and a member restarted from
/// its own disk logs the same digests again.
#[test]
fn members_agree_on_the_tree_digest_at_each_zxid() {
    use common::digest::{members_agree_at, parse_hash, write_until_logged};
    use common::raw::Conn;

    let mut cluster = Cluster::start(3, 0);
    let leader = cluster.wait_for_leader(ELECTION_DEADLINE);
    let follower = (leader + 1) % 3;
    let mut writer = Conn::connect(cluster.servers[leader].addr());
    assert_eq!(writer.create("/digest", b"x", 0).err, 0);
    assert_eq!(writer.create("/digest/ephemeral", b"e", 1).err, 0);
    for _ in 0..3 {
        assert_eq!(writer.create("/digest/sequential-", b"s", 2).err, 0);
    }
    assert_eq!(writer.delete("/digest/sequential-0000000001", -1).err, 0);

    // Sessions are log entries but change no znode: readers opened after
    // the writes see the digest logged at the writes' last zxid.
    let agree_at = |cluster: &Cluster, zxid: i64| members_agree_at(&cluster.servers, zxid);
    let first = write_until_logged(&mut writer, "/digest", 256);
    agree_at(&cluster, first);
    let before_restart: Vec<Vec<(i64, u64)>> =
        cluster.servers.iter().map(|server| parse_hash(&server.four_letter("hash"))).collect();
    assert_eq!(before_restart[0], before_restart[1], "whole histories agree");
    assert_eq!(before_restart[1], before_restart[2], "whole histories agree");

    cluster.servers[follower].restart();
    cluster.wait_for_leader(ELECTION_DEADLINE);
    let second = write_until_logged(&mut writer, "/digest", first + 1);
    agree_at(&cluster, second);
    let replayed = parse_hash(&cluster.servers[follower].four_letter("hash"));
    let leaders = parse_hash(&cluster.servers[leader].four_letter("hash"));
    for entry in &replayed {
        assert!(leaders.contains(entry), "the restarted member logged {entry:?}, the leader did not: {leaders:?}");
    }
}
