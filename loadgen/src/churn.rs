//! The session churn workload: how fast sessions can be opened and closed.
//!
//! `--connections C` threads each repeat, until the window closes: open a
//! TCP connection, do the ConnectRequest handshake (a new session), send
//! closeSession, read its reply, drop the socket. Three latencies are kept:
//! `connect` (TCP connect plus handshake), `close` (closeSession to its
//! reply) and `session`, the whole cycle, which is the top-level number.
//!
//! Without `--rate` each thread starts its next session as soon as the last
//! one is closed (closed loop). With `--rate R` each thread owns R / C
//! sessions per second and `session` runs from each one's intended start
//! time, so a server that stalls is charged for the sessions it delayed.
//! Setup creates only ROOT, and nothing in this workload writes nodes.

use std::sync::mpsc::{sync_channel, SyncSender};
use std::time::Duration;

use zoocore::proto::Request;

use crate::cli::RunArgs;
use crate::keyspace::CALL_TIMEOUT;
use crate::output::Summary;
use crate::run::{label_of, new_summary, session_timeout_ms, supervise, CpuMeter, Window, CONNECT_TIMEOUT};
use crate::stats::Recorder;
use crate::timeline::{Aggregator, IntervalRecorder, IntervalReport, REPORTS_QUEUED_PER_WORKER};
use crate::wire::SyncClient;

const SESSION_SLOT: usize = 0;
const CONNECT_SLOT: usize = 1;
const CLOSE_SLOT: usize = 2;
const NAMES: [&str; 3] = ["session", "connect", "close"];
/// The error code recorded when a session cannot be opened or closed.
const LOCAL_ERROR_SESSION_FAILED: i32 = -1004;

pub fn run(args: &RunArgs) -> Result<Summary, String> {
    let threads = args.connections as usize;
    let window = Window::start(args.warmup, args.measure_duration());
    let (sender, receiver) = sync_channel(REPORTS_QUEUED_PER_WORKER * threads);
    let mut handles = Vec::with_capacity(threads);
    for index in 0..threads {
        let host = args.hosts[index % args.hosts.len()];
        let thread_rate = args.rate.map(|rate| rate / threads as f64);
        let budget = args.ops.map(|ops| ops / threads as u64 + u64::from((index as u64) < ops % threads as u64));
        let timeout_ms = session_timeout_ms(args);
        let sender = sender.clone();
        let handle = std::thread::Builder::new()
            .name(format!("churn-{index}"))
            .spawn(move || churner(host, timeout_ms, thread_rate, budget, window, sender))
            .map_err(|error| format!("cannot start a churn thread: {error}"))?;
        handles.push(handle);
    }
    drop(sender);
    let mut aggregator = Aggregator::new(receiver, threads, args.quiet, &label_of(args));
    let mut cpu = CpuMeter::new();
    supervise(&handles, &mut aggregator, &window, &mut cpu, |_| {});
    let mut recorder = Recorder::new(&NAMES);
    let mut stopped_ns = window.measure_start_ns;
    for handle in handles {
        let (thread_recorder, thread_stopped_ns) = handle.join().map_err(|_| "a churn thread panicked".to_string())?;
        recorder.add(&thread_recorder);
        stopped_ns = stopped_ns.max(thread_stopped_ns);
    }
    aggregator.finish();
    let mut summary = new_summary(args);
    let duration_s = stopped_ns.saturating_sub(window.measure_start_ns) as f64 / 1e9;
    summary.fill(&recorder, duration_s, Some(SESSION_SLOT));
    summary.loadgen_cpu = cpu.finish(&window, recorder.histograms[SESSION_SLOT].len());
    summary.set_timeline(&aggregator.timeline);
    Ok(summary)
}

fn churner(
    host: std::net::SocketAddr,
    session_timeout_ms: i32,
    thread_rate: Option<f64>,
    budget: Option<u64>,
    window: Window,
    sender: SyncSender<IntervalReport>,
) -> (Recorder, u64) {
    let clock = window.clock;
    let mut recorder = Recorder::new(&NAMES);
    let mut interval = IntervalRecorder::new(sender, window.measure_start_ns, clock.now_ns());
    let start_ns = clock.now_ns();
    let mut started = 0u64;
    let mut measured = 0u64;
    let stopped_ns;
    loop {
        let now_ns = clock.now_ns();
        interval.tick(now_ns);
        let intended_ns = match thread_rate {
            Some(rate) => start_ns + (started as f64 * 1e9 / rate) as u64,
            None => now_ns,
        };
        if intended_ns >= window.deadline_ns
            || now_ns >= window.deadline_ns
            || matches!(budget, Some(budget) if measured >= budget)
        {
            stopped_ns = now_ns.min(window.deadline_ns);
            break;
        }
        if intended_ns > now_ns {
            std::thread::sleep(Duration::from_nanos((intended_ns - now_ns).min(100_000_000)));
            continue;
        }
        started += 1;
        let is_measured = intended_ns >= window.measure_start_ns;
        let connect_start_ns = clock.now_ns();
        let outcome = SyncClient::connect(host, session_timeout_ms, CONNECT_TIMEOUT).and_then(|mut client| {
            let connected_ns = clock.now_ns();
            client.call(&Request::CloseSession, CALL_TIMEOUT)?;
            Ok((connected_ns, clock.now_ns()))
        });
        let now_ns = clock.now_ns();
        match outcome {
            Ok((connected_ns, closed_ns)) => {
                interval.record(closed_ns - intended_ns);
                if is_measured {
                    recorder.record(SESSION_SLOT, closed_ns - intended_ns);
                    recorder.record(CONNECT_SLOT, connected_ns - connect_start_ns);
                    recorder.record(CLOSE_SLOT, closed_ns - connected_ns);
                }
            }
            Err(_) => {
                interval.record_error();
                if is_measured {
                    recorder.record(SESSION_SLOT, now_ns - intended_ns);
                    recorder.record_error(SESSION_SLOT, LOCAL_ERROR_SESSION_FAILED);
                }
            }
        }
        if is_measured {
            measured += 1;
        }
    }
    interval.finish();
    (recorder, stopped_ns)
}
