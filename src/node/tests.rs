use std::sync::Arc;

use super::harness::{Cluster, Faults};
use super::*;
use crate::proto::codes::op;
use crate::proto::{Acl, CreateRequest, MultiOp, OpResult};

fn now(ms: i64) -> Now {
    Now { monotonic_ms: ms, wall_ms: 1_700_000_000_000 + ms }
}

fn standalone() -> Node {
    let settings = NodeSettings {
        replica: ReplicaConfig {
            id: 1,
            voters: vec![1],
            learners: vec![],
            election_ticks: 10,
            heartbeat_ticks: 2,
            election_jitter_ticks: 0,
        },
        prep: PrepSettings::default(),
        session_tick_ms: 100,
        raft_tick_ms: 10,
        touch_interval_ms: 50,
        snap_count: 1_000_000,
        container_check_interval_ms: 60_000,
        container_deletes_per_minute_max: 10_000,
        session_id_seed: 1 << 56,
        password_secret: [5; 16],
        random_seed: 7,
    };
    let mut node = Node::new(settings, Tree::new(), Recovered::default(), now(0)).unwrap();
    settle(&mut node, now(0));
    node
}

/// Runs the ready loop as a driver with an instant disk would.
fn settle(node: &mut Node, at: Now) -> Output {
    while let Some(work) = node.ready(at).unwrap() {
        assert!(work.messages.is_empty(), "a single voter sends nothing");
        node.persisted(work, at).unwrap();
    }
    node.take_output()
}

fn create(path: &str) -> Request {
    Request::Create(CreateRequest {
        opcode: op::CREATE,
        path: path.into(),
        data: Some(b"v".to_vec()),
        acl: Acl::open_unsafe(),
        flags: 0,
        ttl_ms: -1,
    })
}

fn connect(node: &mut Node, connection: ConnectionId) -> i64 {
    let input = ClientInput::Connect { connection, session_id: 0, password: Vec::new(), timeout_ms: 4000 };
    node.step_client(input, now(1)).unwrap();
    let output = settle(node, now(1));
    match &output.replies[..] {
        [Reply { connection: to, body: ReplyBody::Connected { session_id, .. } }] if *to == connection => *session_id,
        other => panic!("expected one Connected reply, got {other:?}"),
    }
}

fn write(node: &mut Node, connection: ConnectionId, session_id: i64, xid: i32, request: Request) {
    let input = ClientInput::Write { connection, session_id, xid, request, auth: Arc::from(Vec::new()) };
    node.step_client(input, now(2)).unwrap();
}

#[test]
fn a_standalone_node_answers_from_the_committed_tree_in_session_order() {
    let mut node = standalone();
    assert_eq!(node.role(), Role::Leader);
    let session = connect(&mut node, 9);
    write(&mut node, 9, session, 1, create("/a"));
    write(&mut node, 9, session, 2, Request::Sync { path: "/a".into() });
    write(&mut node, 9, session, 3, create("/a"));
    let output = settle(&mut node, now(2));
    let publication = output.publication.expect("the create is published");
    assert!(publication.tree.get("/a").is_some());
    let answers: Vec<(i32, ErrorCode)> = output
        .replies
        .iter()
        .map(|reply| match &reply.body {
            ReplyBody::Response { xid, err, .. } => (*xid, *err),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(answers, vec![(1, ErrorCode::Ok), (2, ErrorCode::Ok), (3, ErrorCode::NodeExists)]);
}

#[test]
fn a_failed_multi_is_answered_per_operation_from_the_log() {
    let mut node = standalone();
    let session = connect(&mut node, 4);
    let multi = Request::Multi(vec![
        MultiOp::Create(CreateRequest {
            opcode: op::CREATE,
            path: "/m".into(),
            data: None,
            acl: Acl::open_unsafe(),
            flags: 0,
            ttl_ms: -1,
        }),
        MultiOp::Check { path: "/m".into(), version: 7 },
    ]);
    write(&mut node, 4, session, 1, multi);
    let output = settle(&mut node, now(2));
    match &output.replies[..] {
        [Reply { body: ReplyBody::Response { err: ErrorCode::Ok, response: Response::Multi(results), .. }, .. }] => {
            assert_eq!(results, &vec![OpResult::Error(0), OpResult::Error(ErrorCode::BadVersion.code())]);
        }
        other => panic!("{other:?}"),
    }
    assert!(node.committed().get("/m").is_none());
}

#[test]
fn sessions_expire_on_the_leader_and_close_their_connection() {
    let mut node = standalone();
    let session = connect(&mut node, 3);
    node.tick(now(3_000)).unwrap();
    assert!(settle(&mut node, now(3_000)).replies.is_empty(), "not yet expired");
    node.tick(now(4_200)).unwrap();
    let output = settle(&mut node, now(4_200));
    assert!(
        matches!(&output.replies[..], [Reply { connection: 3, body: ReplyBody::Close { reason: "session expired" } }]),
        "{:?}",
        output.replies
    );
    assert!(node.committed().session(session).is_none());
}

#[test]
fn three_nodes_elect_a_leader_and_replicate_without_faults() {
    let mut cluster = Cluster::new(3, 3, 1, Faults::none());
    let violations = cluster.run(1_000).to_vec();
    assert!(violations.is_empty(), "{violations:?}\n{}", cluster.trace.join("\n"));
    assert!(cluster.acknowledged.len() > 20, "clients made progress: {}", cluster.acknowledged.len());
}

/// Committed logs never disagree and acknowledged writes survive, over many
/// seeds of drops, duplicates, reordering, partitions and crashes that lose
/// unsynced writes. `ZOOCORE_SIM_SEEDS` runs more.
#[test]
fn seeds_of_faults_lose_nothing_and_converge() {
    let seeds: u64 = std::env::var("ZOOCORE_SIM_SEEDS").ok().and_then(|text| text.parse().ok()).unwrap_or(8);
    let mut progress = 0;
    for seed in 0..seeds {
        let size = if seed % 3 == 2 { 5 } else { 3 };
        let mut cluster = Cluster::new(size, 4, seed, Faults::hostile());
        let violations = cluster.run(2_000).to_vec();
        assert!(
            violations.is_empty(),
            "seed {seed}: {} violations, the first: {:?}\ntrace:\n{}",
            violations.len(),
            &violations[..violations.len().min(5)],
            cluster.trace.join("\n")
        );
        progress += cluster.acknowledged.len();
    }
    assert!(progress > 0, "no write was ever acknowledged");
}

/// The same seed replays the same run.
#[test]
fn a_seed_replays_identically() {
    let run = |seed| {
        let mut cluster = Cluster::new(3, 3, seed, Faults::hostile());
        cluster.run(1_500);
        (cluster.acknowledged.clone(), cluster.applied(), cluster.trace.clone())
    };
    assert_eq!(run(42), run(42));
}
