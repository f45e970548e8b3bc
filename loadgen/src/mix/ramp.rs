//! The ramp's judge: the mix workload's open loop at rising rates, each
//! step judged on its own seconds against a latency target.
//!
//! The rate starts at START and rises by STEP every `--step-duration` up to
//! MAX. The judge runs on the main thread at each tick of the harness: it
//! moves the offered rate when the clock enters the next step, and judges a
//! step once its last second has closed, from the seconds the aggregator
//! merged for it (the first second of a step of 3 s or more is left out as
//! the transition). The run stops at the first step whose percentile
//! exceeds the target; the summary reports the highest rate that kept it.

use std::time::Duration;

use crate::cli::RunArgs;
use crate::harness::Window;
use crate::output::{RampStep, RampSummary};
use crate::stats::summarize;
use crate::timeline::{Aggregator, Control};

/// Judges ramp steps as their seconds close and moves the rate along.
pub struct RampJudge {
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
    /// The judge of `--ramp`, or None for a run at one rate.
    pub fn of(args: &RunArgs) -> Option<RampJudge> {
        let rates = args.ramp?.rates();
        let (target, quantile, name) = match (args.target_p999, args.target_p99) {
            (Some(target), _) => (target, 0.999, "p99.9"),
            (None, Some(target)) => (target, 0.99, "p99"),
            (None, None) => unreachable!("validate requires a target"),
        };
        Some(RampJudge {
            rates,
            step_seconds: args.step_duration.as_secs_f64().ceil().max(1.0) as u64,
            target_ns: target.as_nanos() as u64,
            target_quantile: quantile,
            target_name: name.into(),
            current: 0,
            steps: Vec::new(),
            done: false,
        })
    }

    /// The rate offered first (cli's parser makes a ramp at least one step).
    pub fn first_rate(&self) -> f64 {
        self.rates[0]
    }

    /// A step's length in whole seconds.
    pub fn step_seconds(&self) -> u64 {
        self.step_seconds
    }

    /// How long the steps take together, at most `max`.
    pub fn measure_duration(&self, max: Duration) -> Duration {
        Duration::from_secs(self.step_seconds * self.rates.len() as u64).min(max)
    }

    /// Moves the offered rate along and judges the steps whose seconds have
    /// closed; stops the run at the first step over target.
    pub fn tick(&mut self, aggregator: &mut Aggregator, window: &Window, control: &Control) {
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

    pub fn into_summary(self) -> RampSummary {
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
