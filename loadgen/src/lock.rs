//! The lock workload: the kazoo lock recipe under contention, and how long
//! the lock takes to pass from one holder to the next.
//!
//! `--connections C` contenders, one session and one thread each, loop
//! until the window closes. To take the lock a contender creates an
//! ephemeral sequential node `ROOT/lock/lock-NNNNNNNNNN`, lists
//! `ROOT/lock`, and holds the lock if its node has the lowest sequence
//! number; otherwise it calls exists with a watch on the node just before its
//! own (not on the holder, so a release wakes one contender, not all) and
//! waits for that node's deletion event, then lists again. This is the
//! recipe of kazoo's `Lock` (and of ZooKeeper's own recipes page). It holds
//! the lock for `--hold`, then deletes its node.
//!
//! Three latencies are kept, with one clock shared by the contenders:
//! `handoff`, from the moment a holder starts its release (just before it
//! sends the delete) to the moment the next holder learns it holds the lock;
//! `acquire`, from sending the create to holding the lock; and `release`,
//! the delete's round trip. Hand-offs are only counted for acquisitions that
//! had to wait, since an uncontended acquisition has no predecessor. The
//! top-level numbers are `handoff`, and ops/s is hand-offs per second.
//!
//! The workload also checks the recipe: a shared flag is set while a
//! contender holds the lock, and finding it already set on acquiring is
//! counted as `mutual_exclusion_violations` (it must stay 0).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::Duration;

use zoocore::proto::codes::{event, CreateMode, ErrorCode};
use zoocore::proto::{Request, Response};

use crate::cli::RunArgs;
use crate::harness::{connect, run_workers, setup_client, teardown, Plan, Window, Worker, WorkerEnd};
use crate::keyspace::{create_all, create_request, CALL_TIMEOUT};
use crate::output::Summary;
use crate::stats::Recorder;
use crate::timeline::IntervalReport;
use crate::wire::{ClientError, SyncClient};

const HANDOFF_SLOT: usize = 0;
const ACQUIRE_SLOT: usize = 1;
const RELEASE_SLOT: usize = 2;
const NAMES: [&str; 3] = ["handoff", "acquire", "release"];
const NODE_PREFIX: &str = "lock-";

struct Shared {
    held: AtomicBool,
    /// When the last release started (clock ns), 0 before the first.
    released_ns: AtomicU64,
    violations: AtomicU64,
    acquisitions: AtomicU64,
}

/// The sequence number a node name ends with.
fn sequence_of(name: &str) -> Option<u64> {
    name.strip_prefix(NODE_PREFIX)?.parse().ok()
}

/// Of the children of the lock directory, the one just before `mine` in
/// sequence order, or None if `mine` is the lowest.
fn predecessor<'a>(children: impl IntoIterator<Item = &'a str>, mine: &str) -> Option<String> {
    let my_sequence = sequence_of(mine)?;
    children
        .into_iter()
        .filter_map(|child| Some((sequence_of(child)?, child)))
        .filter(|(sequence, _)| *sequence < my_sequence)
        .max_by_key(|(sequence, _)| *sequence)
        .map(|(_, child)| child.to_string())
}

pub fn run(args: &RunArgs) -> Result<Summary, String> {
    let directory = format!("{}/lock", args.root);
    let mut setup = setup_client(args)?;
    create_all(&mut setup, [args.root.clone(), directory.clone()], &[]).map_err(|error| format!("setup: {error}"))?;
    let _ = setup.close(CALL_TIMEOUT);
    let contenders = args.connections as usize;
    let mut clients = Vec::with_capacity(contenders);
    for index in 0..contenders {
        clients.push(connect(args, "contender", index)?);
    }
    let shared = Arc::new(Shared {
        held: AtomicBool::new(false),
        released_ns: AtomicU64::new(0),
        violations: AtomicU64::new(0),
        acquisitions: AtomicU64::new(0),
    });
    let window = Window::start(args.warmup, args.measure_duration());
    let give_up_ns = window.deadline_ns + args.drain_timeout.as_nanos() as u64;
    let workers = clients
        .into_iter()
        .enumerate()
        .map(|(index, client)| {
            let shared = Arc::clone(&shared);
            let directory = directory.clone();
            let hold = args.hold;
            Worker::new(format!("lock-{index}"), move |reports| {
                Ok(contender(client, &directory, &shared, hold, window, give_up_ns, reports))
            })
        })
        .collect();
    let plan = Plan { window, workers, primary: Some(HANDOFF_SLOT), cpu_per: Some(ACQUIRE_SLOT), step_seconds: None };
    let mut summary = run_workers(args, plan, |_| {})?.summary;
    summary.counters.insert("mutual_exclusion_violations".into(), shared.violations.load(Ordering::Relaxed) as f64);
    summary.counters.insert("acquisitions_total".into(), shared.acquisitions.load(Ordering::Relaxed) as f64);
    teardown(args, &mut summary);
    Ok(summary)
}

fn contender(
    mut client: SyncClient,
    directory: &str,
    shared: &Shared,
    hold: Duration,
    window: Window,
    give_up_ns: u64,
    reports: SyncSender<IntervalReport>,
) -> WorkerEnd<()> {
    let clock = window.clock;
    let mut recorder = Recorder::new(&NAMES);
    let mut interval = window.interval_recorder(reports);
    let prefix = format!("{directory}/{NODE_PREFIX}");
    let result = (|| -> Result<(), ClientError> {
        loop {
            let request_ns = clock.now_ns();
            interval.tick(request_ns);
            if request_ns >= window.deadline_ns {
                return Ok(());
            }
            let measured = request_ns >= window.measure_start_ns;
            let created = client
                .call(&create_request(prefix.clone(), Vec::new(), CreateMode::EphemeralSequential), CALL_TIMEOUT)?;
            let Some(Response::Path(my_path)) = created.response else {
                return Err(ClientError::Io(std::io::Error::other(format!(
                    "create {prefix} failed with error {}",
                    created.error_code()
                ))));
            };
            let my_name = my_path.rsplit('/').next().unwrap_or_default().to_string();
            let mut waited = false;
            loop {
                if clock.now_ns() >= give_up_ns {
                    return Ok(());
                }
                let listed =
                    client.call(&Request::GetChildren { path: directory.to_string(), watch: false }, CALL_TIMEOUT)?;
                let Some(Response::Children(children)) = listed.response else {
                    return Err(ClientError::Io(std::io::Error::other(format!(
                        "getChildren {directory} failed with error {}",
                        listed.error_code()
                    ))));
                };
                let Some(previous) = predecessor(children.iter().map(|child| &**child), &my_name) else {
                    break;
                };
                let previous_path = format!("{directory}/{previous}");
                let watched =
                    client.call(&Request::Exists { path: previous_path.clone(), watch: true }, CALL_TIMEOUT)?;
                if watched.error_code() == ErrorCode::NoNode.code() {
                    continue;
                }
                waited = true;
                // Wait for the predecessor's deletion, ticking the interval
                // recorder while idle.
                loop {
                    interval.tick(clock.now_ns());
                    if clock.now_ns() >= give_up_ns {
                        return Ok(());
                    }
                    match client.next_event(Duration::from_millis(100))? {
                        Some(received)
                            if received.path == previous_path && received.event_type == event::NODE_DELETED =>
                        {
                            break
                        }
                        _ => {}
                    }
                }
            }
            let acquired_ns = clock.now_ns();
            if shared.held.swap(true, Ordering::AcqRel) {
                shared.violations.fetch_add(1, Ordering::Relaxed);
            }
            shared.acquisitions.fetch_add(1, Ordering::Relaxed);
            let released_ns = shared.released_ns.load(Ordering::Acquire);
            if waited && released_ns > 0 {
                let handoff_ns = acquired_ns.saturating_sub(released_ns);
                interval.record(handoff_ns);
                if measured {
                    recorder.record(HANDOFF_SLOT, handoff_ns);
                }
            }
            if measured {
                recorder.record(ACQUIRE_SLOT, acquired_ns - request_ns);
            }
            if !hold.is_zero() {
                std::thread::sleep(hold);
            }
            let release_ns = clock.now_ns();
            shared.held.store(false, Ordering::Release);
            shared.released_ns.store(release_ns, Ordering::Release);
            let deleted = client.call(&Request::Delete { path: my_path, version: -1 }, CALL_TIMEOUT)?;
            if measured {
                recorder.record(RELEASE_SLOT, clock.now_ns() - release_ns);
                if deleted.error_code() != 0 {
                    recorder.record_error(RELEASE_SLOT, deleted.error_code());
                }
            }
        }
    })();
    // A contender stops issuing at the deadline, or earlier if it failed;
    // one that waited for the lock past the deadline still stopped there.
    let stopped_ns = window.stopped_now_ns();
    let failures = match result {
        Ok(()) => {
            let _ = client.close(CALL_TIMEOUT);
            Vec::new()
        }
        Err(error) => vec![format!("lock contender: {error}")],
    };
    WorkerEnd { recorder, stopped_ns: Some(stopped_ns), failures, dropped_reports: interval.finish(), counts: () }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_predecessor_is_the_next_lower_sequence() {
        let children = ["lock-0000000003", "lock-0000000001", "lock-0000000007", "other"];
        assert_eq!(predecessor(children, "lock-0000000007").as_deref(), Some("lock-0000000003"));
        assert_eq!(predecessor(children, "lock-0000000001"), None);
        assert_eq!(sequence_of("lock-0000000042"), Some(42));
    }
}
