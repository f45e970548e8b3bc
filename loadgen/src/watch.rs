//! The watch workload: how long a change takes to reach its watchers.
//!
//! `--watchers N` sessions each set a data watch (getData with watch=true) on
//! every one of `--watched-nodes M` nodes, `ROOT/watch/w0..`. One writer
//! session sets those nodes at `--rate` writes per second (100 by default),
//! round-robin. A node is written again only once every watcher has received
//! the previous change's event and set its watch again, so no change can slip
//! between an event and the new watch, and each event belongs to exactly one
//! write. When no node is ready the writer waits, and the run reports how
//! often that happened; the writes then run below the asked rate.
//!
//! Each event is timed twice against the write it announces, with one clock
//! shared by all threads: `watch_event` from the moment the writer read the
//! write's reply to the moment the watcher read the event (the time the
//! brief asks for), and `watch_event_from_send` from the moment the write
//! was sent. ZooKeeper may deliver the event to another session before the
//! writer has read its own reply; such events are recorded as 0 in
//! `watch_event` and counted as `events_before_reply`, and
//! `watch_event_from_send` stays exact for them; how much earlier than the
//! reply they came is recorded as `watch_event_before_reply`. Apache
//! ZooKeeper queues the notifications of a change before the writer's reply,
//! so against it most events come first and `watch_event` is mostly 0:
//! compare servers on `watch_event_from_send` too. The writer's setData
//! latency is recorded as `set`. The top-level numbers are `watch_event`.
//!
//! Watchers are blocking threads, one per session (at most 1000), which is
//! cheap at the event rates a watch test needs; the writer is one more.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use zoocore::proto::codes::event;
use zoocore::proto::Request;

use crate::cli::RunArgs;
use crate::harness::{connect, run_workers, setup_client, teardown, value_bytes, Plan, Window, Worker, WorkerEnd};
use crate::keyspace::{create_all, CALL_TIMEOUT};
use crate::output::Summary;
use crate::stats::Recorder;
use crate::timeline::IntervalReport;
use crate::wire::{ClientError, SyncClient};

const EVENT_SLOT: usize = 0;
const FROM_SEND_SLOT: usize = 1;
const SET_SLOT: usize = 2;
const EARLY_SLOT: usize = 3;
const NAMES: [&str; 4] = ["watch_event", "watch_event_from_send", "set", "watch_event_before_reply"];
/// The default write rate when --rate is not given.
const DEFAULT_WRITES_PER_SECOND: f64 = 100.0;
/// How long a watcher waits for the writer to publish a reply time.
const REPLY_WAIT: Duration = Duration::from_secs(5);

struct Shared {
    /// Per node: watchers whose watch is set for the next write.
    armed: Vec<AtomicU32>,
    /// Per node: when the last write was sent and its reply read (0 while
    /// not yet read).
    send_ns: Vec<AtomicU64>,
    reply_ns: Vec<AtomicU64>,
    /// Set when the writer's thread ends, however it ends.
    writer_done: AtomicBool,
    stop: AtomicBool,
    events: AtomicU64,
    events_before_reply: AtomicU64,
}

/// What the writer counts beside its recorder (watchers count nothing).
#[derive(Default)]
struct WriterCounts {
    writes: u64,
    writer_waits: u64,
}

/// Sets the writer's done flag when dropped, so the stop rule also sees a
/// writer that panicked.
struct WriterDone<'a>(&'a AtomicBool);

impl Drop for WriterDone<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

fn node_of(path: &str) -> Option<usize> {
    path.rsplit_once("/w")?.1.parse().ok()
}

pub fn run(args: &RunArgs) -> Result<Summary, String> {
    let node_count = args.watched_nodes as usize;
    let watcher_count = args.watchers as usize;
    let value = value_bytes(args.value_size);
    let directory = format!("{}/watch", args.root);
    let paths: Vec<String> = (0..node_count).map(|node| format!("{directory}/w{node}")).collect();
    let mut setup = setup_client(args)?;
    let mut scaffolding = vec![args.root.clone(), directory.clone()];
    scaffolding.extend(paths.iter().cloned());
    create_all(&mut setup, scaffolding, &value).map_err(|error| format!("setup: {error}"))?;
    let _ = setup.close(CALL_TIMEOUT);

    let shared = Arc::new(Shared {
        armed: (0..node_count).map(|_| AtomicU32::new(0)).collect(),
        send_ns: (0..node_count).map(|_| AtomicU64::new(0)).collect(),
        reply_ns: (0..node_count).map(|_| AtomicU64::new(0)).collect(),
        writer_done: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        events: AtomicU64::new(0),
        events_before_reply: AtomicU64::new(0),
    });
    let paths = Arc::new(paths);
    let mut watchers = Vec::with_capacity(watcher_count);
    for index in 0..watcher_count {
        watchers.push(connect(args, "watcher", index)?);
    }
    let writer = connect(args, "writer", 0)?;

    let window = Window::start(args.warmup, args.measure_duration());
    let mut workers = Vec::with_capacity(watcher_count + 1);
    for (index, client) in watchers.into_iter().enumerate() {
        let shared = Arc::clone(&shared);
        let paths = Arc::clone(&paths);
        workers.push(Worker::new(format!("watcher-{index}"), move |reports| {
            Ok(watcher(client, &shared, &paths, window, reports))
        }));
    }
    let rate = args.rate.unwrap_or(DEFAULT_WRITES_PER_SECOND);
    {
        let shared = Arc::clone(&shared);
        let paths = Arc::clone(&paths);
        let value = value.clone();
        workers.push(Worker::new("writer".into(), move |reports| {
            let _done = WriterDone(&shared.writer_done);
            Ok(writer_loop(writer, &shared, &paths, watcher_count as u32, rate, &value, window, reports))
        }));
    }

    // Watchers run until told to stop: once the writer is done and every
    // change has reached every watcher, or the drain timeout has passed.
    let drain_ns = args.drain_timeout.as_nanos() as u64;
    let plan = Plan { window, workers, primary: Some(EVENT_SLOT), cpu_per: Some(EVENT_SLOT), step_seconds: None };
    let finished = run_workers(args, plan, |_| {
        let now_ns = window.clock.now_ns();
        let writer_done = shared.writer_done.load(Ordering::Acquire);
        let all_armed = shared.armed.iter().all(|armed| armed.load(Ordering::Acquire) >= watcher_count as u32);
        if writer_done && (all_armed || now_ns >= window.deadline_ns + drain_ns) {
            shared.stop.store(true, Ordering::Release);
        }
    })?;
    let mut summary = finished.summary;
    let recorder = &finished.recorder;
    let writes: u64 = finished.counts.iter().map(|counts| counts.writes).sum();
    let writer_waits: u64 = finished.counts.iter().map(|counts| counts.writer_waits).sum();
    let measured_events = recorder.histograms[EVENT_SLOT].len();
    let expected = recorder.histograms[SET_SLOT].len() * watcher_count as u64;
    summary.counters.insert("writes_measured".into(), recorder.histograms[SET_SLOT].len() as f64);
    summary.counters.insert("writes_total".into(), writes as f64);
    summary.counters.insert("events_total".into(), shared.events.load(Ordering::Relaxed) as f64);
    summary.counters.insert("events_before_reply".into(), shared.events_before_reply.load(Ordering::Relaxed) as f64);
    summary.counters.insert("events_missing".into(), expected.saturating_sub(measured_events) as f64);
    summary.counters.insert("writer_waits_for_watchers".into(), writer_waits as f64);
    teardown(args, &mut summary);
    Ok(summary)
}

fn watcher(
    mut client: SyncClient,
    shared: &Shared,
    paths: &[String],
    window: Window,
    reports: SyncSender<IntervalReport>,
) -> WorkerEnd<WriterCounts> {
    let clock = window.clock;
    let mut recorder = Recorder::new(&NAMES);
    let mut interval = window.interval_recorder(reports);
    let mut failures = Vec::new();
    let arm = |client: &mut SyncClient, node: usize| -> Result<(), ClientError> {
        let request = Request::GetData { path: paths[node].clone(), watch: true };
        client.call(&request, CALL_TIMEOUT)?;
        shared.armed[node].fetch_add(1, Ordering::AcqRel);
        Ok(())
    };
    let result = (|| -> Result<(), ClientError> {
        for node in 0..paths.len() {
            arm(&mut client, node)?;
        }
        while !shared.stop.load(Ordering::Acquire) {
            interval.tick(clock.now_ns());
            let Some(received) = client.next_event(Duration::from_millis(100))? else {
                continue;
            };
            if received.event_type != event::NODE_DATA_CHANGED {
                continue;
            }
            let Some(node) = node_of(&received.path).filter(|node| *node < paths.len()) else {
                continue;
            };
            let event_ns = clock.instant_ns(received.received);
            shared.events.fetch_add(1, Ordering::Relaxed);
            arm(&mut client, node)?;
            let waited = Instant::now();
            let mut reply_ns = shared.reply_ns[node].load(Ordering::Acquire);
            while reply_ns == 0 && waited.elapsed() < REPLY_WAIT {
                std::thread::sleep(Duration::from_micros(50));
                reply_ns = shared.reply_ns[node].load(Ordering::Acquire);
            }
            let send_ns = shared.send_ns[node].load(Ordering::Acquire);
            if reply_ns == 0 {
                continue;
            }
            if event_ns < reply_ns {
                shared.events_before_reply.fetch_add(1, Ordering::Relaxed);
            }
            let from_reply_ns = event_ns.saturating_sub(reply_ns);
            interval.record(from_reply_ns);
            if send_ns >= window.measure_start_ns && send_ns < window.deadline_ns {
                recorder.record(EVENT_SLOT, from_reply_ns);
                recorder.record(FROM_SEND_SLOT, event_ns.saturating_sub(send_ns));
                if event_ns < reply_ns {
                    recorder.record(EARLY_SLOT, reply_ns - event_ns);
                }
            }
        }
        Ok(())
    })();
    if let Err(error) = result {
        failures.push(format!("watcher: {error}"));
    } else {
        let _ = client.close(CALL_TIMEOUT);
    }
    // A watcher issues nothing measured: the writer's window is the run's.
    let dropped_reports = interval.finish();
    WorkerEnd { recorder, stopped_ns: None, failures, dropped_reports, counts: WriterCounts::default() }
}

#[allow(clippy::too_many_arguments)]
fn writer_loop(
    mut client: SyncClient,
    shared: &Shared,
    paths: &[String],
    watcher_count: u32,
    rate: f64,
    value: &[u8],
    window: Window,
    reports: SyncSender<IntervalReport>,
) -> WorkerEnd<WriterCounts> {
    let clock = window.clock;
    let mut recorder = Recorder::new(&NAMES);
    let mut interval = window.interval_recorder(reports);
    let interval_ns = 1e9 / rate;
    let mut writes = 0u64;
    let mut writer_waits = 0u64;
    let mut next_node = 0usize;
    let mut failure = None;
    let mut request = Request::SetData { path: String::new(), data: Some(value.to_vec()), version: -1 };
    let start_ns = clock.now_ns();
    let mut waiting = false;
    loop {
        let now_ns = clock.now_ns();
        interval.tick(now_ns);
        if now_ns >= window.deadline_ns {
            break;
        }
        let due_ns = start_ns + (writes as f64 * interval_ns) as u64;
        if due_ns > now_ns {
            std::thread::sleep(Duration::from_nanos((due_ns - now_ns).min(100_000_000)));
            continue;
        }
        let ready = (0..paths.len())
            .map(|offset| (next_node + offset) % paths.len())
            .find(|node| shared.armed[*node].load(Ordering::Acquire) >= watcher_count);
        let Some(node) = ready else {
            if !waiting {
                writer_waits += 1;
                waiting = true;
            }
            std::thread::sleep(Duration::from_micros(100));
            continue;
        };
        waiting = false;
        next_node = (node + 1) % paths.len();
        shared.armed[node].store(0, Ordering::Release);
        shared.reply_ns[node].store(0, Ordering::Release);
        if let Request::SetData { path, .. } = &mut request {
            path.clone_from(&paths[node]);
        }
        let send_ns = clock.now_ns();
        shared.send_ns[node].store(send_ns, Ordering::Release);
        match client.call(&request, CALL_TIMEOUT) {
            Ok(reply) => {
                let reply_ns = clock.now_ns();
                shared.reply_ns[node].store(reply_ns.max(1), Ordering::Release);
                writes += 1;
                if send_ns >= window.measure_start_ns {
                    recorder.record(SET_SLOT, reply_ns - send_ns);
                    if reply.error_code() != 0 {
                        recorder.record_error(SET_SLOT, reply.error_code());
                    }
                }
            }
            Err(error) => {
                failure = Some(format!("writer: {error}"));
                break;
            }
        }
    }
    let stopped_ns = window.stopped_now_ns();
    if failure.is_none() {
        let _ = client.close(CALL_TIMEOUT);
    }
    WorkerEnd {
        recorder,
        stopped_ns: Some(stopped_ns),
        failures: failure.into_iter().collect(),
        dropped_reports: interval.finish(),
        counts: WriterCounts { writes, writer_waits },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watched_paths_map_to_nodes() {
        assert_eq!(node_of("/zoocore-loadgen/watch/w17"), Some(17));
        assert_eq!(node_of("/zoocore-loadgen/watch/x"), None);
    }
}
