//! The `run` subcommand: set up the nodes, start the workers, watch the
//! clock on the main thread, then merge, tear down and summarise.
//!
//! Each workload module provides its workers; this module owns what they
//! share. A run's timeline is: setup (create the nodes under `--root` in one
//! pipelined session), connect the sessions, start the clock, warm up for
//! `--warmup`, measure until `--duration` or `--ops` (or a ramp's last step),
//! drain, close the sessions, delete the nodes unless `--keep`.
//!
//! The main thread does no protocol work. It receives the workers' interval
//! reports (see `timeline`), prints the live line, samples the process's CPU
//! time when measurement starts and after the workers finish (so
//! `loadgen_cpu` covers the measured window plus the short drain, and
//! includes the main thread's own bookkeeping), and in ramp mode judges each
//! finished step and moves the offered rate to the next.

use std::sync::mpsc::sync_channel;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use zoocore::proto::{Request, Response};

use crate::cli::{RunArgs, Workload};
use crate::keyspace::{create_keys, delete_tree, KeySpace, CALL_TIMEOUT};
use crate::mix::{run_worker, MixSettings, OpenedConnection, WorkerOutcome};
use crate::output::{CpuSummary, RampStep, RampSummary, Summary};
use crate::sampler::KeySampler;
use crate::stats::{new_histogram, process_cpu_ns, summarize, Recorder};
use crate::timeline::{Aggregator, Clock, Control, REPORTS_QUEUED_PER_WORKER};
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
pub fn new_summary(args: &RunArgs) -> Summary {
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
}

/// CPU time sampled at the start of measurement and after the workers.
pub struct CpuMeter {
    start_cpu_ns: Option<u64>,
    start_wall_ns: u64,
}

impl CpuMeter {
    pub fn new() -> CpuMeter {
        CpuMeter { start_cpu_ns: None, start_wall_ns: 0 }
    }

    /// Takes the first sample once the clock passes the measure start.
    pub fn poll(&mut self, window: &Window) {
        let now_ns = window.clock.now_ns();
        if self.start_cpu_ns.is_none() && now_ns >= window.measure_start_ns {
            self.start_cpu_ns = Some(process_cpu_ns());
            self.start_wall_ns = now_ns;
        }
    }

    pub fn finish(&self, window: &Window, measured_ops: u64) -> CpuSummary {
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

impl Default for CpuMeter {
    fn default() -> Self {
        CpuMeter::new()
    }
}

/// Runs the main thread's loop until every handle has finished: closes
/// seconds, samples CPU, and calls `on_tick` (the ramp's judge) each tick.
pub fn supervise<T>(
    handles: &[JoinHandle<T>],
    aggregator: &mut Aggregator,
    window: &Window,
    cpu: &mut CpuMeter,
    mut on_tick: impl FnMut(&mut Aggregator),
) {
    loop {
        cpu.poll(window);
        aggregator.poll(SUPERVISE_TICK, &window.clock, window.measure_start_ns);
        on_tick(aggregator);
        if handles.iter().all(JoinHandle::is_finished) {
            break;
        }
    }
}

/// Runs the workload the arguments name and returns its summary.
pub fn run(args: &RunArgs) -> Result<Summary, String> {
    args.validate()?;
    match args.workload {
        Workload::Mix => run_mix(args),
        Workload::Watch => crate::watch::run(args),
        Workload::Churn => crate::churn::run(args),
        Workload::Lock => crate::lock::run(args),
    }
}

pub fn session_timeout_ms(args: &RunArgs) -> i32 {
    args.session_timeout.as_millis().clamp(1, i32::MAX as u128) as i32
}

/// Opens one setup session on the first host.
pub fn setup_client(args: &RunArgs) -> Result<SyncClient, String> {
    SyncClient::connect(args.hosts[0], session_timeout_ms(args), CONNECT_TIMEOUT)
        .map_err(|error| format!("cannot open a session to {}: {error}", args.hosts[0]))
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

fn run_mix(args: &RunArgs) -> Result<Summary, String> {
    let keys = KeySpace::new(&args.root, args.keys, args.keys_per_directory);
    let value = value_bytes(args.value_size);
    let mut setup = setup_client(args)?;
    let created = create_keys(&mut setup, &keys, &value).map_err(|error| format!("setup: {error}"))?;
    let mut probe_path = String::new();
    keys.write_key(&mut probe_path, 0);
    let probe = setup
        .call(&Request::GetData { path: probe_path.clone(), watch: false }, CALL_TIMEOUT)
        .map_err(|error| format!("setup probe: {error}"))?;
    match probe.response {
        Some(Response::Data(data, _)) if data.as_deref().map_or(0, <[u8]>::len) == value.len() => {}
        Some(Response::Data(data, _)) => {
            return Err(format!(
            "{probe_path} holds {} bytes, not --value-size {} (left from an earlier run? delete {} or change --root)",
            data.as_deref().map_or(0, <[u8]>::len),
            value.len(),
            args.root
        ))
        }
        _ => return Err(format!("getData {probe_path} failed: error {}", probe.error_code())),
    }
    let _ = setup.close(CALL_TIMEOUT);
    eprintln!("setup: {} keys under {} ({created} created), {} bytes each", args.keys, args.root, args.value_size);

    let mut opened = Vec::with_capacity(args.connections as usize);
    for index in 0..args.connections as usize {
        let host = args.hosts[index % args.hosts.len()];
        let client = SyncClient::connect(host, session_timeout_ms(args), CONNECT_TIMEOUT)
            .map_err(|error| format!("connection {index} to {host}: {error}"))?;
        opened.push(OpenedConnection { index: index as u64, stream: client.into_stream() });
    }

    let ramp_rates = args.ramp.map(|ramp| ramp.rates()).unwrap_or_default();
    let step_seconds = args.step_duration.as_secs_f64().ceil().max(1.0) as u64;
    let measure = if ramp_rates.is_empty() {
        args.measure_duration()
    } else {
        Duration::from_secs(step_seconds * ramp_rates.len() as u64).min(args.max_duration)
    };
    let initial_rate = ramp_rates.first().copied().or(args.rate);
    let control = Arc::new(Control::new(initial_rate));
    let window = Window::start(args.warmup, measure);
    let threads = args.threads as usize;
    let settings = Arc::new(MixSettings {
        keys,
        sampler: KeySampler::new(args.keys, args.dist),
        mix: args.mix.clone(),
        value,
        multi_size: args.multi_size as usize,
        outstanding: args.outstanding() as usize,
        open_loop: initial_rate.is_some(),
        measure_start_ns: window.measure_start_ns,
        deadline_ns: window.deadline_ns,
        drain_timeout_ns: args.drain_timeout.as_nanos() as u64,
        ping_interval_ns: args.session_timeout.as_nanos() as u64 / 3,
        send_ahead_ns: args.send_ahead.as_nanos() as u64,
        clock: window.clock,
        control: Arc::clone(&control),
        threads,
        seed: args.seed,
    });
    let (sender, receiver) = sync_channel(REPORTS_QUEUED_PER_WORKER * threads);
    let mut per_thread: Vec<Vec<OpenedConnection>> = (0..threads).map(|_| Vec::new()).collect();
    for (position, connection) in opened.into_iter().enumerate() {
        per_thread[position % threads].push(connection);
    }
    let mut handles = Vec::with_capacity(threads);
    for (thread, connections) in per_thread.into_iter().enumerate() {
        let budget = args.ops.map(|ops| ops / threads as u64 + u64::from((thread as u64) < ops % threads as u64));
        let settings = Arc::clone(&settings);
        let sender = sender.clone();
        let handle = std::thread::Builder::new()
            .name(format!("loadgen-{thread}"))
            .spawn(move || run_worker(settings, thread, connections, budget, sender))
            .map_err(|error| format!("cannot start a worker thread: {error}"))?;
        handles.push(handle);
    }
    drop(sender);

    let label = label_of(args);
    let mut aggregator = Aggregator::new(receiver, threads, args.quiet, &label);
    let mut cpu = CpuMeter::new();
    let mut ramp = args.ramp.map(|_| RampJudge::new(args, ramp_rates.clone(), step_seconds));
    if ramp.is_some() {
        aggregator.window_seconds = Some(step_seconds);
    }
    supervise(&handles, &mut aggregator, &window, &mut cpu, |aggregator| {
        if let Some(judge) = ramp.as_mut() {
            judge.tick(aggregator, &window, &control);
        }
    });
    let mut outcomes: Vec<WorkerOutcome> = Vec::with_capacity(threads);
    for handle in handles {
        match handle.join() {
            Ok(Ok(outcome)) => outcomes.push(outcome),
            Ok(Err(error)) => return Err(format!("worker failed to start: {error}")),
            Err(_) => return Err("a worker thread panicked".into()),
        }
    }
    aggregator.finish();
    if let Some(judge) = ramp.as_mut() {
        judge.tick(&mut aggregator, &window, &control);
    }
    let measured_ops: u64 = outcomes.iter().map(|outcome| outcome.measured_ops).sum();
    let cpu_summary = cpu.finish(&window, measured_ops);

    let mut recorder = Recorder::new(&outcomes[0].recorder.names);
    for outcome in &outcomes {
        recorder.add(&outcome.recorder);
    }
    let stopped_ns = outcomes.iter().map(|outcome| outcome.stopped_issuing_ns).max().unwrap_or(window.deadline_ns);
    let duration_s = stopped_ns.saturating_sub(window.measure_start_ns) as f64 / 1e9;
    let mut summary = new_summary(args);
    summary.fill(&recorder, duration_s, None);
    summary.loadgen_cpu = cpu_summary;
    summary.set_timeline(&aggregator.timeline);
    summary.ramp = ramp.map(RampJudge::into_summary);
    for outcome in &outcomes {
        summary.notes.extend(outcome.failures.iter().cloned());
    }
    if settings.open_loop {
        let mut send_lag = new_histogram();
        for outcome in &outcomes {
            send_lag.add(&outcome.send_lag).expect("send-lag histograms share bounds");
        }
        if !send_lag.is_empty() {
            let lag = summarize(&send_lag);
            summary.counters.insert("send_lag_p99_us".into(), lag.p99);
            summary.counters.insert("send_lag_p999_us".into(), lag.p999);
            summary.counters.insert("send_lag_max_us".into(), lag.max);
        }
    }
    let notifications: u64 = outcomes.iter().map(|outcome| outcome.notifications).sum();
    if notifications > 0 {
        summary.counters.insert("unexpected_notifications".into(), notifications as f64);
    }
    let dropped: u64 = outcomes.iter().map(|outcome| outcome.dropped_reports).sum();
    if dropped + aggregator.late_reports > 0 {
        summary.notes.push(format!(
            "{} interval reports were dropped or late (live line and timeline only)",
            dropped + aggregator.late_reports
        ));
    }
    teardown(args, &mut summary);
    Ok(summary)
}

/// Judges ramp steps as their seconds close and moves the rate along.
struct RampJudge {
    rates: Vec<f64>,
    step_seconds: u64,
    target_ns: u64,
    target_quantile: f64,
    target_name: String,
    /// The step whose rate is currently offered.
    current: usize,
    steps: Vec<RampStep>,
    done: bool,
}

impl RampJudge {
    fn new(args: &RunArgs, rates: Vec<f64>, step_seconds: u64) -> RampJudge {
        let (target, quantile, name) = match (args.target_p999, args.target_p99) {
            (Some(target), _) => (target, 0.999, "p99.9"),
            (None, Some(target)) => (target, 0.99, "p99"),
            (None, None) => unreachable!("validate requires a target"),
        };
        RampJudge {
            rates,
            step_seconds,
            target_ns: target.as_nanos() as u64,
            target_quantile: quantile,
            target_name: name.into(),
            current: 0,
            steps: Vec::new(),
            done: false,
        }
    }

    fn tick(&mut self, aggregator: &mut Aggregator, window: &Window, control: &Control) {
        if self.done {
            return;
        }
        // Move the offered rate when the clock enters the next step.
        let now_ns = window.clock.now_ns();
        if now_ns >= window.measure_start_ns {
            let step = ((now_ns - window.measure_start_ns) / (self.step_seconds * 1_000_000_000)) as usize;
            if step > self.current && step < self.rates.len() {
                self.current = step;
                control.set_rate(self.rates[step]);
            }
        }
        // Judge every step whose last second has closed.
        while self.steps.len() < self.rates.len() {
            let index = self.steps.len() as u64;
            let last_second = ((index + 1) * self.step_seconds) as i64 - 1;
            if aggregator.last_closed < last_second {
                break;
            }
            let Some((histogram, errors, seconds)) = aggregator.windows.remove(&index) else {
                // No second of this step was measured (the run ended).
                self.done = true;
                return;
            };
            let latency = summarize(&histogram);
            let observed_ns = histogram.value_at_quantile(self.target_quantile);
            let kept_target = observed_ns <= self.target_ns && !histogram.is_empty();
            let achieved = histogram.len() as f64 / seconds.max(1) as f64;
            eprintln!(
                "ramp: offered {:.0} ops/s, achieved {:.0}, {} {:.1} us (target {:.1} us): {}",
                self.rates[index as usize],
                achieved,
                self.target_name,
                observed_ns as f64 / 1000.0,
                self.target_ns as f64 / 1000.0,
                if kept_target { "ok" } else { "over target, stopping" }
            );
            self.steps.push(RampStep {
                offered_ops_per_sec: self.rates[index as usize],
                achieved_ops_per_sec: achieved,
                errors,
                latency_us: latency,
                kept_target,
            });
            if !kept_target {
                control.stop();
                self.done = true;
                return;
            }
        }
        if self.steps.len() == self.rates.len() {
            self.done = true;
        }
    }

    fn into_summary(self) -> RampSummary {
        let best = self
            .steps
            .iter()
            .take_while(|step| step.kept_target)
            .map(|step| step.offered_ops_per_sec)
            .fold(0.0, f64::max);
        RampSummary {
            target_percentile: self.target_name,
            target_us: self.target_ns as f64 / 1000.0,
            steps: self.steps,
            best_ops_per_sec: best,
        }
    }
}
