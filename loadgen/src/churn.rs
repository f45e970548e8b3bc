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

use std::sync::mpsc::SyncSender;
use std::time::Duration;

use zoocore::proto::Request;

use crate::cli::RunArgs;
use crate::harness::{
    run_workers, session_timeout_ms, share_of, tls, Plan, Window, Worker, WorkerEnd, CONNECT_TIMEOUT,
};
use crate::keyspace::CALL_TIMEOUT;
use crate::output::Summary;
use crate::stats::Recorder;
use crate::timeline::IntervalReport;
use crate::tls::Tls;
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
    let timeout_ms = session_timeout_ms(args);
    let tls = tls(args)?;
    let workers = (0..threads)
        .map(|index| {
            let host = args.hosts[index % args.hosts.len()];
            let thread_rate = args.rate.map(|rate| rate / threads as f64);
            let budget = args.ops.map(|ops| share_of(ops, threads, index));
            Worker::new(format!("churn-{index}"), move |reports| {
                Ok(churner(host, tls, timeout_ms, thread_rate, budget, window, reports))
            })
        })
        .collect();
    let plan = Plan { window, workers, primary: Some(SESSION_SLOT), cpu_per: Some(SESSION_SLOT), step_seconds: None };
    Ok(run_workers(args, plan, |_| {})?.summary)
}

fn churner(
    host: std::net::SocketAddr,
    tls: Option<&'static Tls>,
    session_timeout_ms: i32,
    thread_rate: Option<f64>,
    budget: Option<u64>,
    window: Window,
    reports: SyncSender<IntervalReport>,
) -> WorkerEnd<()> {
    let clock = window.clock;
    let mut recorder = Recorder::new(&NAMES);
    let mut interval = window.interval_recorder(reports);
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
        let outcome = SyncClient::connect(host, session_timeout_ms, CONNECT_TIMEOUT, tls).and_then(|mut client| {
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
    WorkerEnd {
        recorder,
        stopped_ns: Some(stopped_ns),
        failures: Vec::new(),
        dropped_reports: interval.finish(),
        counts: (),
    }
}
