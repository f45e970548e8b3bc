//! Latency measurement: HDR histograms per operation, their percentiles, and
//! the `.hgrm` text format.
//!
//! Every latency is recorded in nanoseconds into an `hdrhistogram` with three
//! significant digits and a range of 1 ns to two minutes, so a value is kept
//! within 0.1 % and the histogram never saturates in a bounded run (values past
//! the range are clamped to it rather than dropped). Each worker thread owns a
//! [`Recorder`] (one histogram and one error count per named slot) and the
//! main thread adds them together at the end, so the hot path never shares a
//! cache line with another thread.
//!
//! Reports use microseconds: [`LatencySummary`] holds p50, p90, p99, p99.9,
//! max and mean in µs, and [`write_hgrm`] writes the percentile distribution
//! in the layout of Java HdrHistogram's `outputPercentileDistribution` with
//! values in microseconds (the unit is not stored in the format, so it is
//! named in the file name and the README). The same distribution goes into the
//! JSON summary as a list of points, which is what the HTML report plots.

use std::collections::BTreeMap;
use std::io::{self, Write};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The smallest latency the histograms tell apart, in nanoseconds.
pub const LOWEST_DISCERNIBLE_NS: u64 = 1;
/// The largest latency recorded exactly; larger values are clamped to it.
pub const HIGHEST_TRACKABLE_NS: u64 = 120_000_000_000;
pub const SIGNIFICANT_DIGITS: u8 = 3;

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(LOWEST_DISCERNIBLE_NS, HIGHEST_TRACKABLE_NS, SIGNIFICANT_DIGITS)
        .expect("the histogram bounds are valid constants")
}

/// One thread's measurements: a histogram and error counts per slot.
#[derive(Debug, Clone)]
pub struct Recorder {
    pub names: Vec<&'static str>,
    pub histograms: Vec<Histogram<u64>>,
    pub errors: Vec<u64>,
    /// Error replies by ZooKeeper error code (a handful of distinct codes at
    /// most, so this map stays small).
    pub error_codes: BTreeMap<i32, u64>,
}

impl Recorder {
    pub fn new(names: &[&'static str]) -> Recorder {
        Recorder {
            names: names.to_vec(),
            histograms: names.iter().map(|_| new_histogram()).collect(),
            errors: vec![0; names.len()],
            error_codes: BTreeMap::new(),
        }
    }

    #[inline]
    pub fn record(&mut self, slot: usize, latency_ns: u64) {
        self.histograms[slot].saturating_record(latency_ns.max(LOWEST_DISCERNIBLE_NS));
    }

    /// Counts an error reply; `code` is the ZooKeeper error code, or a
    /// loadgen-local negative code below -1000 for failures that have none.
    pub fn record_error(&mut self, slot: usize, code: i32) {
        self.errors[slot] += 1;
        *self.error_codes.entry(code).or_insert(0) += 1;
    }

    pub fn add(&mut self, other: &Recorder) {
        for (slot, histogram) in other.histograms.iter().enumerate() {
            self.histograms[slot].add(histogram).expect("histograms of one configuration add up");
            self.errors[slot] += other.errors[slot];
        }
        for (code, count) in &other.error_codes {
            *self.error_codes.entry(*code).or_insert(0) += count;
        }
    }

    #[cfg(test)]
    pub fn clear(&mut self) {
        for histogram in &mut self.histograms {
            histogram.reset();
        }
        self.errors.iter_mut().for_each(|count| *count = 0);
        self.error_codes.clear();
    }

    pub fn total_count(&self) -> u64 {
        self.histograms.iter().map(Histogram::len).sum()
    }

    pub fn total_errors(&self) -> u64 {
        self.errors.iter().sum()
    }

    /// All slots in one histogram.
    pub fn combined(&self) -> Histogram<u64> {
        let mut combined = new_histogram();
        for histogram in &self.histograms {
            combined.add(histogram).expect("histograms of one configuration add up");
        }
        combined
    }
}

/// Percentiles of one histogram in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

pub fn nanoseconds_to_microseconds(value_ns: u64) -> f64 {
    value_ns as f64 / 1000.0
}

pub fn summarize(histogram: &Histogram<u64>) -> LatencySummary {
    if histogram.is_empty() {
        return LatencySummary::default();
    }
    let at = |quantile: f64| nanoseconds_to_microseconds(histogram.value_at_quantile(quantile));
    LatencySummary {
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        p999: at(0.999),
        max: nanoseconds_to_microseconds(histogram.max()),
        mean: histogram.mean() / 1000.0,
    }
}

/// One line of a percentile distribution.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PercentilePoint {
    pub value_us: f64,
    /// Between 0 and 1.
    pub percentile: f64,
    pub total_count: u64,
}

/// The percentile distribution as HdrHistogram prints it: five ticks per
/// half distance to 100 %, so the points crowd towards the tail.
pub fn percentile_distribution(histogram: &Histogram<u64>) -> Vec<PercentilePoint> {
    let mut points = Vec::new();
    if histogram.is_empty() {
        return points;
    }
    let mut total_count = 0u64;
    for step in histogram.iter_quantiles(5) {
        total_count += step.count_since_last_iteration();
        points.push(PercentilePoint {
            value_us: nanoseconds_to_microseconds(step.value_iterated_to()),
            percentile: step.quantile_iterated_to(),
            total_count,
        });
    }
    points
}

/// Writes the percentile distribution in HdrHistogram's `.hgrm` layout,
/// values in microseconds with three decimals.
pub fn write_hgrm(histogram: &Histogram<u64>, out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "{:>12} {:>14} {:>10} {:>14}\n", "Value", "Percentile", "TotalCount", "1/(1-Percentile)")?;
    for point in percentile_distribution(histogram) {
        if point.percentile < 1.0 {
            writeln!(
                out,
                "{:12.3} {:2.12} {:10} {:14.2}",
                point.value_us,
                point.percentile,
                point.total_count,
                1.0 / (1.0 - point.percentile)
            )?;
        } else {
            writeln!(out, "{:12.3} {:2.12} {:10}", point.value_us, point.percentile, point.total_count)?;
        }
    }
    let (mean_us, deviation_us) =
        if histogram.is_empty() { (0.0, 0.0) } else { (histogram.mean() / 1000.0, histogram.stdev() / 1000.0) };
    writeln!(out, "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]", mean_us, deviation_us)?;
    writeln!(
        out,
        "#[Max     = {:12.3}, Total count    = {:12}]",
        nanoseconds_to_microseconds(histogram.max()),
        histogram.len()
    )?;
    writeln!(out, "#[Buckets = {:12}, SubBuckets     = {:12}]", histogram.buckets(), 2048)?;
    Ok(())
}

/// Process CPU time (user and system) from getrusage, in nanoseconds.
pub fn process_cpu_ns() -> u64 {
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let to_ns = |time: libc::timeval| time.tv_sec as u64 * 1_000_000_000 + time.tv_usec as u64 * 1000;
    to_ns(usage.ru_utime) + to_ns(usage.ru_stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled() -> Histogram<u64> {
        let mut histogram = new_histogram();
        // 1..=1000 microseconds, one each.
        for value_us in 1..=1000u64 {
            histogram.record(value_us * 1000).unwrap();
        }
        histogram
    }

    #[test]
    fn summary_percentiles_are_in_microseconds() {
        let summary = summarize(&filled());
        let close = |value: f64, expected: f64| (value - expected).abs() <= expected * 0.002;
        assert!(close(summary.p50, 500.0), "{summary:?}");
        assert!(close(summary.p90, 900.0), "{summary:?}");
        assert!(close(summary.p99, 990.0), "{summary:?}");
        assert!(close(summary.p999, 999.0), "{summary:?}");
        assert!(close(summary.max, 1000.0), "{summary:?}");
        assert!(close(summary.mean, 500.5), "{summary:?}");
        assert_eq!(summarize(&new_histogram()), LatencySummary::default());
    }

    #[test]
    fn hgrm_has_the_hdrhistogram_layout() {
        let mut text = Vec::new();
        write_hgrm(&filled(), &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"]
        );
        assert_eq!(lines[1], "");
        let first: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(first.len(), 4);
        assert_eq!(first[0], "1.000");
        assert_eq!(first[2], "1");
        // The last data line is the 100th percentile with every count.
        let last_data = lines[lines.len() - 4];
        let fields: Vec<&str> = last_data.split_whitespace().collect();
        assert_eq!(fields.len(), 3, "{last_data}");
        assert_eq!(fields[1], "1.000000000000");
        assert_eq!(fields[2], "1000");
        assert!(lines[lines.len() - 3].starts_with("#[Mean    ="));
        assert!(lines[lines.len() - 2].contains("Total count    =         1000"));
        assert!(lines[lines.len() - 1].starts_with("#[Buckets ="));
        // Percentiles rise monotonically and so do the values.
        let points = percentile_distribution(&filled());
        assert!(points
            .windows(2)
            .all(|pair| pair[0].percentile <= pair[1].percentile && pair[0].value_us <= pair[1].value_us));
    }

    #[test]
    fn recorders_add_up() {
        let names = ["get", "set"];
        let mut first = Recorder::new(&names);
        let mut second = Recorder::new(&names);
        first.record(0, 1000);
        second.record(0, 3000);
        second.record(1, 2000);
        second.record_error(1, -101);
        first.add(&second);
        assert_eq!(first.histograms[0].len(), 2);
        assert_eq!(first.total_count(), 3);
        assert_eq!(first.total_errors(), 1);
        assert_eq!(first.error_codes.get(&-101), Some(&1));
        assert_eq!(first.combined().len(), 3);
        // Out-of-range values are clamped, not lost.
        first.record(1, u64::MAX);
        assert_eq!(first.histograms[1].len(), 2);
        first.clear();
        assert_eq!(first.total_count(), 0);
    }
}
