//! What a run leaves behind: the JSON summary, the `.hgrm` files and the
//! final table on stdout.
//!
//! [`Summary`] is both written by `run --json` and read back by `report`, so
//! its fields are the contract between the two (and with any script that
//! reads the JSON): `ops_per_sec`, `errors`, `latency_us` with p50, p90, p99,
//! p999, max and mean, `per_op` with the same per operation, `config` with
//! every flag of the run, `timeline` with one point per measured second,
//! `histogram` with the full percentile distribution, and `loadgen_cpu` with
//! the loadgen's own CPU use over the measured window. Latencies are in
//! microseconds throughout. Fields added later are optional when read, so old
//! summaries stay readable.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::stats::{percentile_distribution, summarize, write_hgrm, LatencySummary, PercentilePoint, Recorder};
use crate::timeline::TimelinePoint;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OperationSummary {
    pub ops: u64,
    pub ops_per_sec: f64,
    pub errors: u64,
    pub latency_us: LatencySummary,
    #[serde(default)]
    pub histogram: Vec<PercentilePoint>,
}

/// The loadgen's own CPU time over the measured window.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct CpuSummary {
    pub cpu_seconds: f64,
    /// CPU seconds per wall second: 1.0 is one core kept busy.
    pub cores: f64,
    /// CPU nanoseconds per measured operation.
    pub cpu_ns_per_op: f64,
}

/// One step of a ramp.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RampStep {
    pub offered_ops_per_sec: f64,
    pub achieved_ops_per_sec: f64,
    pub errors: u64,
    pub latency_us: LatencySummary,
    /// Whether the step kept the target percentile.
    pub kept_target: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RampSummary {
    /// "p99" or "p99.9".
    pub target_percentile: String,
    pub target_us: f64,
    pub steps: Vec<RampStep>,
    /// The highest offered rate whose step kept the target (0 if none did).
    pub best_ops_per_sec: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    pub tool: String,
    pub version: String,
    pub label: String,
    pub workload: String,
    pub started_unix_s: u64,
    /// Measured operations (all kinds), and per second of the measured window.
    pub ops: u64,
    pub ops_per_sec: f64,
    pub errors: u64,
    pub duration_s: f64,
    /// The operation the top-level numbers describe; absent when they
    /// cover every operation.
    #[serde(default)]
    pub primary_op: Option<String>,
    pub latency_us: LatencySummary,
    pub per_op: BTreeMap<String, OperationSummary>,
    #[serde(default)]
    pub error_codes: BTreeMap<String, u64>,
    #[serde(default)]
    pub loadgen_cpu: CpuSummary,
    #[serde(default)]
    pub timeline: Vec<TimelinePoint>,
    #[serde(default)]
    pub histogram: Vec<PercentilePoint>,
    #[serde(default)]
    pub ramp: Option<RampSummary>,
    /// Workload-specific counts (watch events before their write's reply,
    /// lock exclusion violations, ...).
    #[serde(default)]
    pub counters: BTreeMap<String, f64>,
    #[serde(default)]
    pub notes: Vec<String>,
    pub config: serde_json::Value,
    /// The histograms themselves, for the .hgrm files (not serialised).
    #[serde(skip)]
    pub recorder: Option<Recorder>,
}

impl Summary {
    /// Fills the measured part from a merged recorder over a window of
    /// `duration_s` seconds. The top-level numbers cover the `primary`
    /// slot if one is given (the watch event, the lock hand-off), else
    /// every slot.
    pub fn fill(&mut self, recorder: &Recorder, duration_s: f64, primary: Option<usize>) {
        let combined = match primary {
            Some(slot) => recorder.histograms[slot].clone(),
            None => recorder.combined(),
        };
        self.ops = combined.len();
        self.duration_s = duration_s;
        self.ops_per_sec = rate(self.ops, duration_s);
        self.errors = recorder.total_errors();
        self.primary_op = primary.map(|slot| recorder.names[slot].to_string());
        self.latency_us = summarize(&combined);
        self.histogram = percentile_distribution(&combined);
        for (slot, name) in recorder.names.iter().enumerate() {
            let histogram = &recorder.histograms[slot];
            if histogram.is_empty() && recorder.errors[slot] == 0 {
                continue;
            }
            self.per_op.insert(
                name.to_string(),
                OperationSummary {
                    ops: histogram.len(),
                    ops_per_sec: rate(histogram.len(), duration_s),
                    errors: recorder.errors[slot],
                    latency_us: summarize(histogram),
                    histogram: percentile_distribution(histogram),
                },
            );
        }
        for (code, count) in &recorder.error_codes {
            self.error_codes.insert(code.to_string(), *count);
        }
        self.recorder = Some(recorder.clone());
    }
}

impl Summary {
    /// Keeps the seconds of the measured window: the drain after it holds
    /// only the last replies and would plot as a drop to zero.
    pub fn set_timeline(&mut self, points: &[TimelinePoint]) {
        self.timeline =
            points.iter().filter(|point| (point.t_s as f64) < self.duration_s.ceil().max(1.0)).cloned().collect();
    }
}

fn rate(count: u64, duration_s: f64) -> f64 {
    if duration_s > 0.0 {
        count as f64 / duration_s
    } else {
        0.0
    }
}

pub fn write_json(summary: &Summary, path: &Path) -> io::Result<()> {
    let mut out = BufWriter::new(File::create(path)?);
    serde_json::to_writer_pretty(&mut out, summary)?;
    out.write_all(b"\n")?;
    out.flush()
}

pub fn read_json(path: &Path) -> Result<Summary, String> {
    let text = std::fs::read_to_string(path).map_err(|error| format!("{}: {error}", path.display()))?;
    serde_json::from_str(&text).map_err(|error| format!("{}: {error}", path.display()))
}

/// Writes PREFIX.hgrm (the top-level operation, or all of them) and
/// PREFIX.OP.hgrm (each operation). Returns the files written.
pub fn write_hgrm_files(summary: &Summary, prefix: &Path) -> io::Result<Vec<PathBuf>> {
    let Some(recorder) = &summary.recorder else {
        return Ok(Vec::new());
    };
    let headline = match &summary.primary_op {
        Some(name) => recorder
            .names
            .iter()
            .position(|entry| entry == name)
            .map(|slot| recorder.histograms[slot].clone())
            .unwrap_or_else(|| recorder.combined()),
        None => recorder.combined(),
    };
    let mut written = Vec::new();
    let mut write_one = |histogram: &Histogram<u64>, suffix: &str| -> io::Result<()> {
        let mut name = prefix.as_os_str().to_owned();
        name.push(suffix);
        let path = PathBuf::from(name);
        let mut out = BufWriter::new(File::create(&path)?);
        write_hgrm(histogram, &mut out)?;
        out.flush()?;
        written.push(path);
        Ok(())
    };
    write_one(&headline, ".hgrm")?;
    for (slot, name) in recorder.names.iter().enumerate() {
        if !recorder.histograms[slot].is_empty() {
            write_one(&recorder.histograms[slot], &format!(".{name}.hgrm"))?;
        }
    }
    Ok(written)
}

/// The final table.
pub fn format_table(summary: &Summary) -> String {
    let mut text = String::new();
    let header = format!(
        "{:<22} {:>10} {:>11} {:>9} {:>9} {:>9} {:>9} {:>10} {:>9} {:>7}\n",
        "op", "ops", "ops/s", "p50 us", "p90 us", "p99 us", "p99.9 us", "max us", "mean us", "errors"
    );
    text.push_str(&header);
    let row = |name: &str, ops: u64, ops_per_sec: f64, latency: &LatencySummary, errors: u64| {
        format!(
            "{:<22} {:>10} {:>11.0} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>10.1} {:>9.1} {:>7}\n",
            name,
            ops,
            ops_per_sec,
            latency.p50,
            latency.p90,
            latency.p99,
            latency.p999,
            latency.max,
            latency.mean,
            errors
        )
    };
    for (name, operation) in &summary.per_op {
        text.push_str(&row(name, operation.ops, operation.ops_per_sec, &operation.latency_us, operation.errors));
    }
    if let Some(primary) = &summary.primary_op {
        text.push_str(&format!("headline operation: {primary}\n"));
    } else if summary.per_op.len() > 1 {
        text.push_str(&row("all", summary.ops, summary.ops_per_sec, &summary.latency_us, summary.errors));
    }
    text.push_str(&format!(
        "measured {:.2}s; loadgen CPU {:.3} cores, {:.0} ns per op\n",
        summary.duration_s, summary.loadgen_cpu.cores, summary.loadgen_cpu.cpu_ns_per_op
    ));
    if !summary.error_codes.is_empty() {
        let codes: Vec<String> = summary.error_codes.iter().map(|(code, count)| format!("{code}: {count}")).collect();
        text.push_str(&format!("error codes: {}\n", codes.join(", ")));
    }
    for (name, value) in &summary.counters {
        text.push_str(&format!("{name}: {value}\n"));
    }
    if let Some(ramp) = &summary.ramp {
        text.push_str(&format!("ramp (target {} <= {:.0} us):\n", ramp.target_percentile, ramp.target_us));
        for step in &ramp.steps {
            text.push_str(&format!(
                "  offered {:>9.0} ops/s  achieved {:>9.0}  p99 {:>8.1} us  p99.9 {:>8.1} us  {}\n",
                step.offered_ops_per_sec,
                step.achieved_ops_per_sec,
                step.latency_us.p99,
                step.latency_us.p999,
                if step.kept_target { "ok" } else { "over target" }
            ));
        }
        text.push_str(&format!("highest rate keeping the target: {:.0} ops/s\n", ramp.best_ops_per_sec));
    }
    for note in &summary.notes {
        text.push_str(&format!("note: {note}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_round_trips_through_json() {
        let mut recorder = Recorder::new(&["get", "set"]);
        for value_us in 1..=100u64 {
            recorder.record(0, value_us * 1000);
        }
        recorder.record(1, 5000);
        recorder.record_error(1, -101);
        let mut summary =
            Summary { label: "test".into(), config: serde_json::json!({"connections": 4}), ..Summary::default() };
        summary.fill(&recorder, 2.0, None);
        assert_eq!(summary.ops, 101);
        assert_eq!(summary.ops_per_sec, 50.5);
        assert_eq!(summary.errors, 1);
        assert_eq!(summary.per_op["get"].ops, 100);
        assert_eq!(summary.per_op["set"].errors, 1);
        assert_eq!(summary.error_codes["-101"], 1);
        let text = serde_json::to_string(&summary).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        for key in ["p50", "p90", "p99", "p999", "max", "mean"] {
            assert!(value["latency_us"][key].is_number(), "{key}");
        }
        let back: Summary = serde_json::from_str(&text).unwrap();
        assert_eq!(back.per_op["get"].latency_us, summary.per_op["get"].latency_us);
        let table = format_table(&summary);
        assert!(table.contains("get") && table.contains("all"));
    }
}
