//! The simulator: whole ensembles run from a seed, then checked.
//!
//! A run is one `node::harness::Cluster` (the real node state machine of
//! every server, with simulated clients, network, disks and clocks, all
//! in one thread and driven by one seeded generator) taken through a
//! faulty phase, a heal and a quiet phase; the harness checks logs,
//! sessions and convergence as it goes, and this module adds the
//! linearizability check of each shared znode's history at the end. The
//! binary `zoocore-sim` runs seeds one after another and prints each
//! violation's seed with the tail of its trace; `--seed S` replays one
//! seed step for step, because nothing in a run reads a clock or draws an
//! unseeded number.

pub mod linearizable;

use crate::node::harness::{Cluster, Faults, START_MS};
use linearizable::Verdict;

/// How one seed is run.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// 3 or 5 voters; None picks by seed (every third seed runs 5).
    pub nodes: Option<u64>,
    /// Steps of the faulty phase (each `harness::STEP_MS` of simulated time).
    pub steps: u64,
    pub clients: u64,
    pub faults: Faults,
}

impl Default for RunSettings {
    fn default() -> RunSettings {
        RunSettings { nodes: None, steps: 2_000, clients: 4, faults: Faults::hostile() }
    }
}

/// What one seed did.
#[derive(Debug, Clone)]
pub struct SeedReport {
    pub seed: u64,
    pub nodes: u64,
    pub violations: Vec<String>,
    pub trace: Vec<String>,
    /// Simulated time the run covered.
    pub simulated_ms: i64,
    pub operations_sent: u64,
    pub operations_answered: u64,
    /// Shared znodes whose history the search gave up on.
    pub inconclusive: usize,
    /// Events checked for linearizability.
    pub events_checked: usize,
    /// Watch events delivered to clients, each checked for coming before
    /// any reply that shows its change.
    pub watch_events: u64,
}

/// Runs seed `seed` and checks it.
pub fn run_seed(seed: u64, settings: &RunSettings) -> SeedReport {
    let nodes = settings.nodes.unwrap_or(if seed % 3 == 2 { 5 } else { 3 });
    let mut cluster = Cluster::new(nodes, settings.clients, seed, settings.faults.clone());
    // A panic in the node (an assertion, or raft refusing what its log
    // became) is a finding like any other: report it with the trace so far.
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        cluster.run(settings.steps);
    }));
    let mut violations = cluster.violations.clone();
    let mut inconclusive = 0;
    let mut events_checked = 0;
    match ran {
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|text| text.to_string()))
                .unwrap_or_else(|| "a panic without a message".to_string());
            // The histories stop mid-run; checking them would add noise.
            violations.push(format!("panic at t={}: {message}", cluster.now_ms()));
        }
        Ok(()) => {
            for (key, history) in &cluster.histories {
                events_checked += history.len();
                match linearizable::check(&None, history) {
                    Verdict::Linearizable => {}
                    Verdict::Inconclusive => inconclusive += 1,
                    Verdict::Violation { stuck_at } => violations.push(format!(
                        "the history of {key} ({} operations) is not linearizable; no order places {stuck_at:?}",
                        history.len()
                    )),
                }
            }
        }
    }
    SeedReport {
        seed,
        nodes,
        violations,
        trace: cluster.trace.clone(),
        simulated_ms: cluster.now_ms() - START_MS,
        operations_sent: cluster.operations_sent,
        operations_answered: cluster.operations_answered,
        inconclusive,
        events_checked,
        watch_events: cluster.watch_events,
    }
}
