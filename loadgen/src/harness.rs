//! What every workload shares: the toolkit (sessions, setup and teardown,
//! the measured window, the CPU meter) and [`run_workers`], the one
//! skeleton every workload runs on.
//!
//! A workload only says what is particular to it: how to set up its nodes,
//! what each worker thread does, and which counters it adds to the summary.
//! Everything between is here, once: start the worker threads, watch the
//! clock on the main thread, join the workers, merge their recorders and
//! summarise. Before this module each workload carried its own copy of
//! those steps, and the copies drifted (two workloads divided their
//! operations by the nominal `--duration`, two by the time they actually
//! measured); with one copy, every workload reports throughput the same way.
//!
//! A run's timeline is: setup (the workload creates its nodes under
//! `--root`), connect the sessions, start the clock ([`Window::start`]),
//! warm up for `--warmup`, measure until `--duration` or `--ops` (or a
//! ramp's last step), drain, close the sessions, delete the nodes unless
//! `--keep` ([`teardown`]).
//!
//! The main thread does no protocol work. It receives the workers' interval
//! reports (see `timeline`), prints the live line, samples the process's
//! CPU time when measurement starts and after the workers finish (so
//! `loadgen_cpu` covers the measured window plus the short drain, and
//! includes the main thread's own bookkeeping), and calls the workload's
//! tick (the ramp's judge, the watch workload's stop rule).

use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::OnceLock;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::cli::RunArgs;
use crate::keyspace::{delete_tree, CALL_TIMEOUT};
use crate::output::{CpuSummary, Summary};
use crate::stats::{process_cpu_ns, Recorder};
use crate::timeline::{Aggregator, Clock, IntervalRecorder, IntervalReport, REPORTS_QUEUED_PER_WORKER};
use crate::tls::{Tls, TlsFiles};
use crate::wire::SyncClient;

/// How long to wait for a TCP connection and handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the main thread wakes to close seconds.
const SUPERVISE_TICK: Duration = Duration::from_millis(100);

pub fn label_of(args: &RunArgs) -> String {
    args.label.clone().unwrap_or_else(|| {
        let hosts: Vec<String> = args.hosts.iter().map(ToString::to_string).collect();
        format!("{:?} {}", args.workload, hosts.join(",")).to_lowercase()
    })
}

/// A summary with the fields every workload fills the same way.
fn new_summary(args: &RunArgs) -> Summary {
    Summary {
        tool: "zoocore-loadgen".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        label: label_of(args),
        workload: format!("{:?}", args.workload).to_lowercase(),
        started_unix_s: SystemTime::now().duration_since(UNIX_EPOCH).map(|elapsed| elapsed.as_secs()).unwrap_or(0),
        config: {
            let mut config = serde_json::to_value(args).unwrap_or(serde_json::Value::Null);
            config["outstanding"] = args.outstanding().into();
            config
        },
        ..Summary::default()
    }
}

pub fn session_timeout_ms(args: &RunArgs) -> i32 {
    args.session_timeout.as_millis().clamp(1, i32::MAX as u128) as i32
}

/// The run's TLS configuration under --tls, read once.
pub fn tls(args: &RunArgs) -> Result<Option<&'static Tls>, String> {
    static LOADED: OnceLock<Result<Tls, String>> = OnceLock::new();
    if !args.tls {
        return Ok(None);
    }
    let files = TlsFiles {
        ca: args.tls_ca.clone().unwrap_or_default(),
        certificate: args.tls_cert.clone(),
        key: args.tls_key.clone(),
        server_name: args.tls_server_name.clone(),
    };
    LOADED.get_or_init(|| Tls::load(&files)).as_ref().map(Some).map_err(Clone::clone)
}

/// Opens one setup session on the first host.
pub fn setup_client(args: &RunArgs) -> Result<SyncClient, String> {
    SyncClient::connect(args.hosts[0], session_timeout_ms(args), CONNECT_TIMEOUT, tls(args)?)
        .map_err(|error| format!("cannot open a session to {}: {error}", args.hosts[0]))
}

/// Opens the session of the `index`-th `role` (connection, watcher,
/// contender), spreading sessions over the hosts round-robin.
pub fn connect(args: &RunArgs, role: &str, index: usize) -> Result<SyncClient, String> {
    let host = args.hosts[index % args.hosts.len()];
    SyncClient::connect(host, session_timeout_ms(args), CONNECT_TIMEOUT, tls(args)?)
        .map_err(|error| format!("{role} {index} to {host}: {error}"))
}

/// Deletes ROOT unless --keep; failures become notes.
pub fn teardown(args: &RunArgs, summary: &mut Summary) {
    if args.keep {
        return;
    }
    let result = setup_client(args).and_then(|mut client| {
        let deleted = delete_tree(&mut client, &args.root).map_err(|error| error.to_string())?;
        let _ = client.close(CALL_TIMEOUT);
        Ok(deleted)
    });
    match result {
        Ok(deleted) => eprintln!("teardown: deleted {deleted} nodes under {}", args.root),
        Err(error) => summary.notes.push(format!("teardown failed: {error}")),
    }
}

/// The value written into every key and by every set and create.
pub fn value_bytes(size: u32) -> Vec<u8> {
    (0..size).map(|index| b'a' + (index % 26) as u8).collect()
}

/// Worker `index`'s share of `total` split over `workers`: the remainder
/// goes one each to the first workers, so the shares add up to `total`.
pub fn share_of(total: u64, workers: usize, index: usize) -> u64 {
    total / workers as u64 + u64::from((index as u64) < total % workers as u64)
}

/// The measured window of a run.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub clock: Clock,
    pub measure_start_ns: u64,
    pub deadline_ns: u64,
}

impl Window {
    /// Starts the clock now: warm-up, then `measure` of measurement.
    pub fn start(warmup: Duration, measure: Duration) -> Window {
        let clock = Clock::new();
        let measure_start_ns = warmup.as_nanos() as u64;
        Window { clock, measure_start_ns, deadline_ns: measure_start_ns + measure.as_nanos() as u64 }
    }

    /// A worker's recorder of the current second, starting now.
    pub fn interval_recorder(&self, reports: SyncSender<IntervalReport>) -> IntervalRecorder {
        IntervalRecorder::new(reports, self.measure_start_ns, self.clock.now_ns())
    }

    /// When a worker that stops now stopped issuing measured operations.
    pub fn stopped_now_ns(&self) -> u64 {
        self.clock.now_ns().min(self.deadline_ns)
    }
}

/// CPU time sampled at the start of measurement and after the workers.
struct CpuMeter {
    start_cpu_ns: Option<u64>,
    start_wall_ns: u64,
}

impl CpuMeter {
    fn new() -> CpuMeter {
        CpuMeter { start_cpu_ns: None, start_wall_ns: 0 }
    }

    /// Takes the first sample once the clock passes the measure start.
    fn poll(&mut self, window: &Window) {
        let now_ns = window.clock.now_ns();
        if self.start_cpu_ns.is_none() && now_ns >= window.measure_start_ns {
            self.start_cpu_ns = Some(process_cpu_ns());
            self.start_wall_ns = now_ns;
        }
    }

    fn finish(&self, window: &Window, measured_ops: u64) -> CpuSummary {
        let Some(start_cpu_ns) = self.start_cpu_ns else {
            return CpuSummary::default();
        };
        let cpu_ns = process_cpu_ns().saturating_sub(start_cpu_ns);
        let wall_ns = window.clock.now_ns().saturating_sub(self.start_wall_ns).max(1);
        CpuSummary {
            cpu_seconds: cpu_ns as f64 / 1e9,
            cores: cpu_ns as f64 / wall_ns as f64,
            cpu_ns_per_op: if measured_ops > 0 { cpu_ns as f64 / measured_ops as f64 } else { 0.0 },
        }
    }
}

/// What a worker thread hands back when it ends.
pub struct WorkerEnd<T> {
    /// Its measured latencies and errors (the measured window only).
    pub recorder: Recorder,
    /// When it stopped issuing measured operations (clock ns), or None for
    /// a worker that issues none (a watcher only listens). The latest of
    /// these ends the measured duration.
    pub stopped_ns: Option<u64>,
    /// What went wrong, one note each.
    pub failures: Vec<String>,
    /// Interval reports it dropped because the channel was full.
    pub dropped_reports: u64,
    /// What only this workload counts.
    pub counts: T,
}

/// The body of a worker thread: it gets the sender for its interval
/// reports. An error ends the run (a worker that could not start).
type WorkerBody<T> = Box<dyn FnOnce(SyncSender<IntervalReport>) -> Result<WorkerEnd<T>, String> + Send>;

/// One worker thread to start: its name and its body.
pub struct Worker<T> {
    name: String,
    body: WorkerBody<T>,
}

impl<T> Worker<T> {
    pub fn new(
        name: String,
        body: impl FnOnce(SyncSender<IntervalReport>) -> Result<WorkerEnd<T>, String> + Send + 'static,
    ) -> Worker<T> {
        Worker { name, body: Box::new(body) }
    }
}

/// A workload's run: its window, its workers, and which of its recorder's
/// slots the summary's top-level numbers describe.
pub struct Plan<T> {
    pub window: Window,
    pub workers: Vec<Worker<T>>,
    /// The slot the top-level numbers describe (the watch event, the lock
    /// hand-off), or None for every slot.
    pub primary: Option<usize>,
    /// The slot whose measured operations the loadgen's CPU time is divided
    /// by, or None for every slot.
    pub cpu_per: Option<usize>,
    /// A ramp's step length: the aggregator also merges the measured seconds
    /// of each step for the judge.
    pub step_seconds: Option<u64>,
}

/// A finished run: the summary filled with everything the workloads share,
/// the merged recorder, and each worker's own counts, in worker order.
pub struct Finished<T> {
    pub summary: Summary,
    pub recorder: Recorder,
    pub counts: Vec<T>,
}

/// Runs a workload's workers to the end and summarises them.
///
/// `on_tick` runs on the main thread every tick while the workers run, and
/// once more after the last second has closed, so a judge sees every
/// second. Throughput is over the measured duration as it actually ran:
/// from the start of measurement to when the last worker stopped issuing
/// (at most the window's deadline), the same for every workload.
pub fn run_workers<T: Send + 'static>(
    args: &RunArgs,
    plan: Plan<T>,
    mut on_tick: impl FnMut(&mut Aggregator),
) -> Result<Finished<T>, String> {
    let Plan { window, workers, primary, cpu_per, step_seconds } = plan;
    if workers.is_empty() {
        return Err("a run needs at least one worker".into());
    }
    let (sender, receiver) = sync_channel(REPORTS_QUEUED_PER_WORKER * workers.len());
    let mut handles: Vec<(String, JoinHandle<_>)> = Vec::with_capacity(workers.len());
    for Worker { name, body } in workers {
        let sender = sender.clone();
        let handle = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || body(sender))
            .map_err(|error| format!("cannot start thread {name}: {error}"))?;
        handles.push((name, handle));
    }
    drop(sender);

    let mut aggregator = Aggregator::new(receiver, handles.len(), args.quiet, &label_of(args));
    aggregator.window_seconds = step_seconds;
    let mut cpu = CpuMeter::new();
    loop {
        cpu.poll(&window);
        aggregator.poll(SUPERVISE_TICK, &window.clock, window.measure_start_ns);
        on_tick(&mut aggregator);
        if handles.iter().all(|(_, handle)| handle.is_finished()) {
            break;
        }
    }
    let mut ends = Vec::with_capacity(handles.len());
    for (name, handle) in handles {
        match handle.join() {
            Ok(Ok(end)) => ends.push(end),
            Ok(Err(error)) => return Err(error),
            Err(_) => return Err(format!("thread {name} panicked")),
        }
    }
    aggregator.finish();
    on_tick(&mut aggregator);

    let mut recorder = Recorder::new(&ends[0].recorder.names);
    for end in &ends {
        recorder.add(&end.recorder);
    }
    let duration_s = measured_duration_s(&window, ends.iter().map(|end| end.stopped_ns));
    let mut summary = new_summary(args);
    summary.fill(&recorder, duration_s, primary);
    let cpu_ops = match cpu_per {
        Some(slot) => recorder.histograms[slot].len(),
        None => recorder.total_count(),
    };
    summary.loadgen_cpu = cpu.finish(&window, cpu_ops);
    summary.set_timeline(&aggregator.timeline);
    let mut dropped = aggregator.late_reports;
    let mut counts = Vec::with_capacity(ends.len());
    for end in ends {
        summary.notes.extend(end.failures);
        dropped += end.dropped_reports;
        counts.push(end.counts);
    }
    if dropped > 0 {
        summary.notes.push(format!("{dropped} interval reports were dropped or late (live line and timeline only)"));
    }
    Ok(Finished { summary, recorder, counts })
}

/// The measured duration as it actually ran, in seconds: from the start of
/// measurement to when the last worker stopped issuing, at most to the
/// deadline; the whole window if no worker issues measured operations.
fn measured_duration_s(window: &Window, stopped_ns: impl IntoIterator<Item = Option<u64>>) -> f64 {
    let last_ns = stopped_ns.into_iter().flatten().max().unwrap_or(window.deadline_ns);
    last_ns.min(window.deadline_ns).saturating_sub(window.measure_start_ns) as f64 / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_to_the_total() {
        let shares: Vec<u64> = (0..3).map(|index| share_of(10, 3, index)).collect();
        assert_eq!(shares, [4, 3, 3]);
        assert_eq!((0..7).map(|index| share_of(5, 7, index)).sum::<u64>(), 5);
    }

    #[test]
    fn throughput_is_over_the_duration_actually_measured() {
        // Warm-up 1 s, then 2 s measured: the window is [1 s, 3 s).
        let window = Window::start(Duration::from_secs(1), Duration::from_secs(2));
        let second = 1_000_000_000;
        // Stopped early (a spent --ops budget, a ramp over target): the
        // last worker to stop ends the duration; a listener (None) does not.
        assert_eq!(measured_duration_s(&window, [Some(2 * second), None, Some(second + second / 2)]), 1.0);
        // Workers that noticed the deadline late stopped at the deadline.
        assert_eq!(measured_duration_s(&window, [Some(3 * second + 7), Some(5 * second)]), 2.0);
        // A worker that stopped during warm-up measured nothing.
        assert_eq!(measured_duration_s(&window, [Some(second / 2)]), 0.0);
        // Nobody issues measured operations: the whole window.
        assert_eq!(measured_duration_s(&window, [None, None]), 2.0);
    }
}
