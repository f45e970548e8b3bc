//! The mix workload: operations drawn at random from `--mix` over a key
//! space, in a closed loop, an open loop at `--rate`, or a ramp of rates.
//!
//! This module sets the run up (the keys, a probe that they hold
//! `--value-size` bytes, the sessions) and hands its workers to the
//! harness; `engine` is the worker, a non-blocking loop built to cost
//! little per request, and `ramp` judges a ramp's steps on the main thread.
//! Unlike the other workloads, a mix worker drives many sessions, so
//! `--threads` workers share the `--connections` sessions round-robin.

mod engine;
mod ramp;

use std::sync::Arc;

use zoocore::proto::{Request, Response};

use crate::cli::RunArgs;
use crate::harness::{connect, run_workers, setup_client, share_of, teardown, value_bytes, Plan, Window, Worker};
use crate::keyspace::{create_keys, KeySpace, CALL_TIMEOUT};
use crate::output::Summary;
use crate::sampler::KeySampler;
use crate::stats::{new_histogram, summarize};
use crate::timeline::Control;
use engine::{run_worker, MixSettings, OpenedConnection};
use ramp::RampJudge;

pub fn run(args: &RunArgs) -> Result<Summary, String> {
    let keys = KeySpace::new(&args.root, args.keys, args.keys_per_directory);
    let value = value_bytes(args.value_size);
    set_up(args, &keys, &value)?;

    let mut opened = Vec::with_capacity(args.connections as usize);
    for index in 0..args.connections as usize {
        let client = connect(args, "connection", index)?;
        opened.push(OpenedConnection { index: index as u64, stream: client.into_stream() });
    }

    let mut ramp = RampJudge::of(args);
    let measure = match &ramp {
        Some(judge) => judge.measure_duration(args.max_duration),
        None => args.measure_duration(),
    };
    let initial_rate = ramp.as_ref().map(RampJudge::first_rate).or(args.rate);
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
    let mut per_thread: Vec<Vec<OpenedConnection>> = (0..threads).map(|_| Vec::new()).collect();
    for (position, connection) in opened.into_iter().enumerate() {
        per_thread[position % threads].push(connection);
    }
    let workers = per_thread
        .into_iter()
        .enumerate()
        .map(|(thread, connections)| {
            let budget = args.ops.map(|ops| share_of(ops, threads, thread));
            let settings = Arc::clone(&settings);
            Worker::new(format!("loadgen-{thread}"), move |reports| {
                run_worker(settings, thread, connections, budget, reports)
                    .map_err(|error| format!("worker failed to start: {error}"))
            })
        })
        .collect();

    let plan = Plan {
        window,
        workers,
        primary: None,
        cpu_per: None,
        step_seconds: ramp.as_ref().map(RampJudge::step_seconds),
    };
    let finished = run_workers(args, plan, |aggregator| {
        if let Some(judge) = ramp.as_mut() {
            judge.tick(aggregator, &window, &control);
        }
    })?;
    let mut summary = finished.summary;
    summary.ramp = ramp.map(RampJudge::into_summary);
    if settings.open_loop {
        let mut send_lag = new_histogram();
        for counts in &finished.counts {
            send_lag.add(&counts.send_lag).expect("send-lag histograms share bounds");
        }
        if !send_lag.is_empty() {
            let lag = summarize(&send_lag);
            summary.counters.insert("send_lag_p99_us".into(), lag.p99);
            summary.counters.insert("send_lag_p999_us".into(), lag.p999);
            summary.counters.insert("send_lag_max_us".into(), lag.max);
        }
    }
    let notifications: u64 = finished.counts.iter().map(|counts| counts.notifications).sum();
    if notifications > 0 {
        summary.counters.insert("unexpected_notifications".into(), notifications as f64);
    }
    teardown(args, &mut summary);
    Ok(summary)
}

/// Creates the keys in one pipelined session and probes the first: a key
/// left by an earlier run with another size would make every getData an
/// error, so the run stops with a message instead.
fn set_up(args: &RunArgs, keys: &KeySpace, value: &[u8]) -> Result<(), String> {
    let mut setup = setup_client(args)?;
    let created = create_keys(&mut setup, keys, value).map_err(|error| format!("setup: {error}"))?;
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
    Ok(())
}
