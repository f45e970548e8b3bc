//! The commit pipeline against a stand-in disk: the node (prep, raft,
//! apply, replies) and the group-commit queue the broadcast core uses
//! (`node::commit::CommitQueue`), driven by open-loop setData arrivals of
//! 100 bytes, with the log's write replaced by a fixed latency.
//!
//! Time is virtual: the core is one server that takes events in order, and
//! each step costs the CPU time the node's calls took on this thread (CPU
//! time, so a bench thread preempted by other work does not count it); a write
//! is durable `disk` after it starts. So the latencies this prints are the
//! pipeline's own (its batching and its CPU), without the executor's wakes,
//! the cross-core hops or the client: the floor a write's latency has on
//! this disk with this design, to hold against what `scripts/compare.py`
//! measures end to end.
//!
//! Criterion times the CPU the node takes for a run (its throughput
//! is writes per second of one core); a line per case adds the virtual
//! latency percentiles, the writes per batch and the rate achieved.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use zoocore::limits::{BATCH_REQUESTS_MAX, LOG_WORK_IN_FLIGHT_MAX};
use zoocore::node::commit::{Batch, CommitQueue};
use zoocore::node::{ClientInput, Node, NodeSettings, Now, ReplyBody};
use zoocore::proto::{Acl, CreateRequest, Request};
use zoocore::replica::Recovered;
use zoocore::tree::Tree;

const KEYS: usize = 1000;
const CONNECTIONS: u64 = 4;
const VALUE_BYTES: usize = 100;
const WRITES: usize = 20_000;
/// Stand-in disk latencies: about what one O_DSYNC 4 KiB write takes on
/// the development machine's disk (p50 73-88 us, p99 ~170 us), and a
/// slower and a faster disk.
const DISKS_US: [u64; 3] = [30, 100, 300];
/// Open-loop arrival rates, writes per second; the last saturates.
const RATES: [u64; 4] = [10_000, 30_000, 100_000, 1_000_000];

fn now(at_ns: u64) -> Now {
    let ms = (at_ns / 1_000_000) as i64;
    Now { monotonic_ms: ms, wall_ms: 1_700_000_000_000 + ms }
}

/// A leader with its sessions and keys, everything durable.
struct Setup {
    node: Node,
    sessions: Vec<i64>,
}

fn setup() -> Setup {
    let mut node = Node::new(NodeSettings::single_voter(), Tree::new(), Recovered::default(), now(0)).expect("a node");
    let mut queue = CommitQueue::new();
    drain(&mut node, &mut queue, 0);
    let mut sessions = Vec::new();
    for connection in 0..CONNECTIONS {
        let input = ClientInput::Connect {
            connection,
            session_id: 0,
            password: Vec::new(),
            timeout_ms: 30_000,
            read_only: false,
        };
        node.step_client(input, now(0)).expect("connect");
        for reply in drain(&mut node, &mut queue, 0) {
            if let ReplyBody::Connected { session_id, .. } = reply.1 {
                sessions.push(session_id);
            }
        }
    }
    assert_eq!(sessions.len(), CONNECTIONS as usize, "every connection has a session");
    for key in 0..KEYS {
        let request = Request::Create(CreateRequest {
            opcode: zoocore::proto::codes::op::CREATE,
            path: key_path(key),
            data: Some(vec![0; VALUE_BYTES]),
            acl: Acl::open_unsafe(),
            flags: 0,
            ttl_ms: -1,
        });
        write(&mut node, 0, sessions[0], key as i32, request, 0);
        drain(&mut node, &mut queue, 0);
    }
    Setup { node, sessions }
}

fn key_path(key: usize) -> String {
    format!("/k{key}")
}

fn write(node: &mut Node, connection: u64, session_id: i64, xid: i32, request: Request, at_ns: u64) {
    let input = ClientInput::Write { connection, session_id, xid, request, auth: Arc::from(Vec::new()) };
    node.step_client(input, now(at_ns)).expect("a write steps");
}

/// Runs the ready loop with an instant disk; the replies, as (connection, body).
fn drain(node: &mut Node, queue: &mut CommitQueue<u64>, at_ns: u64) -> Vec<(u64, ReplyBody)> {
    loop {
        while let Some(work) = node.ready(now(at_ns)).expect("ready") {
            queue.push(work, at_ns);
        }
        match queue.start() {
            None => break,
            Some(Batch::Release(works)) => works.into_iter().for_each(|work| node.persisted(work, now(at_ns)).unwrap()),
            Some(Batch::Write { .. }) => {
                queue.finish().into_iter().for_each(|work| node.persisted(work, now(at_ns)).unwrap())
            }
        }
    }
    node.take_output().replies.into_iter().map(|reply| (reply.connection, reply.body)).collect()
}

/// One open-loop run: what it measured.
struct Run {
    /// CPU time the node's calls took.
    cpu: Duration,
    /// Virtual latency of each write, arrival to reply, in ns.
    latencies: Vec<u64>,
    writes_per_batch: f64,
    /// Virtual duration, first arrival to last reply.
    span_ns: u64,
}

/// `WRITES` setData at `rate` per second, evenly spaced, round-robin over
/// the sessions, against a disk that makes a write durable `disk_ns` after
/// it starts. The core takes events in order: a finished write (its
/// replies, then the next write at once), then the arrivals so far, as
/// the broadcast core drains its inbox.
fn run(setup: &mut Setup, rate: u64, disk_ns: u64) -> Run {
    let node = &mut setup.node;
    let mut queue: CommitQueue<u64> = CommitQueue::new();
    let interval_ns = 1_000_000_000 / rate;
    let base_xid = 1_000_000;
    let mut arrivals: HashMap<(u64, i32), u64> = HashMap::with_capacity(WRITES);
    let mut latencies = Vec::with_capacity(WRITES);
    let mut next = 0usize;
    let mut clock = 0u64;
    let mut write_done_at: Option<u64> = None;
    let mut cpu = Duration::ZERO;
    let mut batches = 0u64;
    let data = vec![0x5a_u8; VALUE_BYTES];
    while latencies.len() < WRITES {
        let next_arrival = (next < WRITES).then(|| next as u64 * interval_ns);
        let event = match (write_done_at, next_arrival) {
            (Some(done), Some(arrival)) => done.min(arrival),
            (Some(done), None) => done,
            (None, Some(arrival)) => arrival,
            (None, None) => panic!("writes outstanding with nothing in flight: {}", WRITES - latencies.len()),
        };
        clock = clock.max(event);
        let started = thread_cpu();
        if write_done_at.is_some_and(|done| done <= clock) {
            write_done_at = None;
            for work in queue.finish() {
                node.persisted(work, now(clock)).expect("persisted");
            }
        }
        let mut taken = 0;
        while next < WRITES
            && next as u64 * interval_ns <= clock
            && taken < BATCH_REQUESTS_MAX
            && queue.in_flight() < LOG_WORK_IN_FLIGHT_MAX
        {
            let connection = next as u64 % CONNECTIONS;
            let xid = base_xid + next as i32;
            arrivals.insert((connection, xid), next as u64 * interval_ns);
            let request = Request::SetData { path: key_path(next % KEYS), data: Some(data.clone()), version: -1 };
            write(node, connection, setup.sessions[connection as usize], xid, request, clock);
            next += 1;
            taken += 1;
        }
        while queue.in_flight() < LOG_WORK_IN_FLIGHT_MAX {
            let Some(work) = node.ready(now(clock)).expect("ready") else { break };
            queue.push(work, clock);
        }
        let mut write_started = false;
        if !queue.writing() {
            match queue.start() {
                None => {}
                Some(Batch::Release(works)) => {
                    works.into_iter().for_each(|work| node.persisted(work, now(clock)).expect("persisted"))
                }
                Some(Batch::Write { .. }) => {
                    write_started = true;
                    batches += 1;
                }
            }
        }
        let output = node.take_output();
        let spent = thread_cpu().saturating_sub(started);
        cpu += spent;
        clock += spent.as_nanos() as u64;
        if write_started {
            write_done_at = Some(clock + disk_ns);
        }
        for reply in output.replies {
            if let ReplyBody::Response { xid, .. } = reply.body {
                if let Some(arrived) = arrivals.remove(&(reply.connection, xid)) {
                    latencies.push(clock - arrived);
                }
            }
        }
    }
    latencies.sort_unstable();
    Run { cpu, span_ns: clock, writes_per_batch: WRITES as f64 / batches.max(1) as f64, latencies }
}

/// This thread's CPU time so far.
fn thread_cpu() -> Duration {
    let mut spec = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid pointer to a timespec the call fills.
    let result = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut spec) };
    assert_eq!(result, 0, "the thread CPU clock is readable");
    Duration::new(spec.tv_sec as u64, spec.tv_nsec as u32)
}

fn percentile_us(sorted: &[u64], fraction: f64) -> f64 {
    let at = ((sorted.len() as f64 * fraction) as usize).min(sorted.len() - 1);
    sorted[at] as f64 / 1000.0
}

fn commit_pipeline(criterion: &mut Criterion) {
    let mut setup = setup();
    let mut group = criterion.benchmark_group("commit_pipeline");
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(6));
    group.throughput(Throughput::Elements(WRITES as u64));
    for disk_us in DISKS_US {
        for rate in RATES {
            let mut last = None;
            group.bench_function(BenchmarkId::new(format!("disk_{disk_us}us"), rate), |bencher| {
                bencher.iter_custom(|iterations| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iterations {
                        let measured = run(&mut setup, rate, disk_us * 1000);
                        total += measured.cpu;
                        last = Some(measured);
                    }
                    total
                })
            });
            // A case the filter left out ran nothing.
            let Some(measured) = last else { continue };
            let achieved = WRITES as f64 / (measured.span_ns as f64 / 1e9);
            println!(
                "commit pipeline, disk {disk_us} us, offered {rate}/s: achieved {achieved:.0}/s, \
                 p50 {:.0} us, p99 {:.0} us, p99.9 {:.0} us, {:.1} writes per batch, node CPU {:.1} us per write",
                percentile_us(&measured.latencies, 0.5),
                percentile_us(&measured.latencies, 0.99),
                percentile_us(&measured.latencies, 0.999),
                measured.writes_per_batch,
                measured.cpu.as_secs_f64() * 1e6 / WRITES as f64,
            );
        }
    }
    group.finish();
}

criterion_group!(benches, commit_pipeline);
criterion_main!(benches);
