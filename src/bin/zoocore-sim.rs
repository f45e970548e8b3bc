//! zoocore-sim: runs seeded simulations of whole ensembles and reports
//! every violation of the checkers with its seed and the tail of its trace.
//!
//! A thin shell over `zoocore::sim`: parse the options, run the seeds one
//! after another, print. `--seed S` alone replays seed S step for step and
//! prints its whole trace; with `--seeds N` it starts a range at S.

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use zoocore::sim::{run_seed, RunSettings};

/// Trace lines printed under a violation (the newest ones).
const TRACE_TAIL_LINES: usize = 40;

#[derive(Parser)]
#[command(name = "zoocore-sim", about = "Deterministic simulation of zoocore ensembles under faults")]
struct Options {
    /// How many seeds to run (default 100, or 1 with --seed).
    #[arg(long)]
    seeds: Option<u64>,
    /// The first seed; alone, replays that seed and prints its whole trace.
    #[arg(long)]
    seed: Option<u64>,
    /// Voters per ensemble: 3 or 5 (default: 5 for every third seed, else 3).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(["3", "5"]))]
    nodes: Option<String>,
    /// Steps of the faulty phase per seed (5 simulated ms each).
    #[arg(long, default_value_t = 2_000)]
    steps: u64,
    /// Print every seed's trace, not only the violating ones'.
    #[arg(long)]
    trace: bool,
}

fn main() -> ExitCode {
    let options = Options::parse();
    let first = options.seed.unwrap_or(0);
    let count = options.seeds.unwrap_or(if options.seed.is_some() { 1 } else { 100 });
    let replay = options.seed.is_some() && options.seeds.is_none();
    let nodes = options.nodes.as_deref().map(|text| if text == "5" { 5 } else { 3 });
    let settings = RunSettings { nodes, steps: options.steps, ..RunSettings::default() };
    let started = Instant::now();
    let mut violations = 0u64;
    let mut simulated_ms = 0i64;
    let mut sent = 0u64;
    let mut answered = 0u64;
    let mut inconclusive = 0usize;
    let mut events = 0usize;
    let mut watch_events = 0u64;
    for seed in first..first.saturating_add(count) {
        let report = run_seed(seed, &settings);
        simulated_ms += report.simulated_ms;
        sent += report.operations_sent;
        answered += report.operations_answered;
        inconclusive += report.inconclusive;
        events += report.events_checked;
        watch_events += report.watch_events;
        if replay || options.trace {
            for line in &report.trace {
                println!("{line}");
            }
        }
        if !report.violations.is_empty() {
            violations += report.violations.len() as u64;
            println!("seed {seed} ({} nodes): {} violations", report.nodes, report.violations.len());
            for violation in &report.violations {
                println!("  violation: {violation}");
            }
            if !replay && !options.trace {
                let tail = report.trace.len().saturating_sub(TRACE_TAIL_LINES);
                println!("  trace (last {} lines; replay with --seed {seed}):", report.trace.len() - tail);
                for line in &report.trace[tail..] {
                    println!("    {line}");
                }
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{sent} operations sent, {answered} answered, {events} history events checked, {inconclusive} histories inconclusive, {watch_events} watch events"
    );
    println!(
        "{:.1} simulated s in {elapsed:.1} real s: {:.0} simulated s per real s",
        simulated_ms as f64 / 1000.0,
        simulated_ms as f64 / 1000.0 / elapsed.max(1e-9)
    );
    println!("{count} seeds, {violations} violations");
    if violations == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
