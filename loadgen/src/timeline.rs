//! Time during a run: the shared clock, the per-second interval reports that
//! feed the live line and the throughput-over-time plot, and the shared
//! control block that tells workers to stop or change rate.
//!
//! Every thread of a run reads one [`Clock`], nanoseconds since the run's
//! epoch (the start of warm-up), so timestamps from different threads can be
//! subtracted (watch events from writes, lock hand-offs from releases).
//! Seconds are counted from the start of measurement: second -2 and -1 are
//! the warm-up of a 2 s warm-up, second 0 is the first measured one.
//!
//! A worker keeps an [`IntervalRecorder`] (a histogram of the second so far,
//! with operation and error counts) and hands it to the main thread over a
//! bounded channel when the second turns; if the channel is full the report
//! is dropped and counted rather than blocking the hot loop. The main
//! thread's [`Aggregator`] adds the reports of each second and closes it
//! once every worker has reported it or a grace time has passed; closing
//! prints the live line to stderr and appends a [`TimelinePoint`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::stats::{nanoseconds_to_microseconds, new_histogram};

pub const NANOSECONDS_PER_SECOND: u64 = 1_000_000_000;
/// Interval reports the channel holds per worker before reports are dropped.
pub const REPORTS_QUEUED_PER_WORKER: usize = 16;

/// Nanoseconds since the run's epoch.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    epoch: Instant,
}

impl Clock {
    pub fn new() -> Clock {
        Clock { epoch: Instant::now() }
    }

    #[inline]
    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    pub fn instant_ns(&self, instant: Instant) -> u64 {
        instant.saturating_duration_since(self.epoch).as_nanos() as u64
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

/// What the main thread tells the workers while they run.
#[derive(Debug, Default)]
pub struct Control {
    /// Stop issuing, drain and close.
    pub stop: AtomicBool,
    /// The offered rate in thousandths of an operation per second, all
    /// workers together; 0 means closed loop.
    pub rate_millis: AtomicU64,
    /// Bumped whenever `rate_millis` changes, so workers re-anchor their
    /// schedules.
    pub rate_generation: AtomicU64,
}

impl Control {
    pub fn new(rate: Option<f64>) -> Control {
        let control = Control::default();
        if let Some(rate) = rate {
            control.set_rate(rate);
        }
        control
    }

    pub fn set_rate(&self, rate: f64) {
        self.rate_millis.store((rate * 1000.0).round() as u64, Ordering::Relaxed);
        self.rate_generation.fetch_add(1, Ordering::Release);
    }

    pub fn rate(&self) -> f64 {
        self.rate_millis.load(Ordering::Relaxed) as f64 / 1000.0
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    #[inline]
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// One worker's second.
#[derive(Debug)]
pub struct IntervalReport {
    pub second: i64,
    pub histogram: Histogram<u64>,
    pub errors: u64,
}

/// The second a timestamp falls in, counted from the start of measurement.
pub fn second_of(now_ns: u64, measure_start_ns: u64) -> i64 {
    let offset = now_ns as i128 - measure_start_ns as i128;
    offset.div_euclid(NANOSECONDS_PER_SECOND as i128) as i64
}

/// A worker's histogram of the current second.
pub struct IntervalRecorder {
    histogram: Histogram<u64>,
    errors: u64,
    second: i64,
    measure_start_ns: u64,
    sender: SyncSender<IntervalReport>,
    pub dropped_reports: u64,
}

impl IntervalRecorder {
    pub fn new(sender: SyncSender<IntervalReport>, measure_start_ns: u64, now_ns: u64) -> Self {
        IntervalRecorder {
            histogram: new_histogram(),
            errors: 0,
            second: second_of(now_ns, measure_start_ns),
            measure_start_ns,
            sender,
            dropped_reports: 0,
        }
    }

    #[inline]
    pub fn record(&mut self, latency_ns: u64) {
        self.histogram.saturating_record(latency_ns.max(1));
    }

    pub fn record_error(&mut self) {
        self.errors += 1;
    }

    /// The start of the next second, in clock nanoseconds.
    pub fn next_boundary_ns(&self) -> u64 {
        (self.measure_start_ns as i128 + (self.second as i128 + 1) * NANOSECONDS_PER_SECOND as i128).max(0) as u64
    }

    /// Sends the finished second if `now_ns` is past it.
    #[inline]
    pub fn tick(&mut self, now_ns: u64) {
        if now_ns >= self.next_boundary_ns() {
            self.send();
            self.second = second_of(now_ns, self.measure_start_ns);
        }
    }

    fn send(&mut self) {
        let report = IntervalReport { second: self.second, histogram: self.histogram.clone(), errors: self.errors };
        self.histogram.reset();
        self.errors = 0;
        match self.sender.try_send(report) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => self.dropped_reports += 1,
        }
    }

    /// Sends the last, partial second.
    pub fn finish(mut self) -> u64 {
        if !self.histogram.is_empty() || self.errors > 0 {
            self.send();
        }
        self.dropped_reports
    }
}

/// One measured second of the run, as plotted over time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TimelinePoint {
    /// Seconds since the start of measurement (negative during warm-up).
    pub t_s: i64,
    pub ops_per_sec: f64,
    pub errors: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

struct OpenSecond {
    histogram: Histogram<u64>,
    errors: u64,
    reports: usize,
}

/// Adds up the workers' seconds on the main thread.
pub struct Aggregator {
    receiver: Receiver<IntervalReport>,
    workers: usize,
    open: BTreeMap<i64, OpenSecond>,
    /// Seconds at or below this are closed; late reports for them are
    /// dropped.
    closed_through: i64,
    pub timeline: Vec<TimelinePoint>,
    pub warmup_timeline: Vec<TimelinePoint>,
    quiet: bool,
    label: String,
    pub late_reports: u64,
    /// When set, closed measured seconds are also merged per window of
    /// this many seconds (the ramp's steps), into `windows`.
    pub window_seconds: Option<u64>,
    /// Window index to (merged histogram, errors, seconds merged). The main
    /// thread removes a window once it has judged it, so only the windows
    /// still being closed are kept.
    pub windows: BTreeMap<u64, (Histogram<u64>, u64, u64)>,
    /// The last closed second.
    pub last_closed: i64,
}

/// How long after a second ends the aggregator waits for slow workers.
const GRACE_NS: u64 = 1_500_000_000;

impl Aggregator {
    pub fn new(receiver: Receiver<IntervalReport>, workers: usize, quiet: bool, label: &str) -> Self {
        Aggregator {
            receiver,
            workers,
            open: BTreeMap::new(),
            closed_through: i64::MIN,
            timeline: Vec::new(),
            warmup_timeline: Vec::new(),
            quiet,
            label: label.to_string(),
            late_reports: 0,
            window_seconds: None,
            windows: BTreeMap::new(),
            last_closed: i64::MIN,
        }
    }

    /// Receives reports for up to `wait` and closes the seconds that are
    /// complete or overdue at `now_ns`.
    pub fn poll(&mut self, wait: Duration, clock: &Clock, measure_start_ns: u64) {
        let deadline = Instant::now() + wait;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match self.receiver.recv_timeout(remaining) {
                Ok(report) => self.add(report),
                Err(_) => break,
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        while let Ok(report) = self.receiver.try_recv() {
            self.add(report);
        }
        let now_ns = clock.now_ns();
        let overdue = second_of(now_ns.saturating_sub(GRACE_NS), measure_start_ns) - 1;
        let closable: Vec<i64> = self
            .open
            .iter()
            .filter(|(second, open)| open.reports >= self.workers || **second <= overdue)
            .map(|(second, _)| *second)
            .collect();
        for second in closable {
            self.close(second);
        }
    }

    fn add(&mut self, report: IntervalReport) {
        if report.second <= self.closed_through {
            self.late_reports += 1;
            return;
        }
        let open = self.open.entry(report.second).or_insert_with(|| OpenSecond {
            histogram: new_histogram(),
            errors: 0,
            reports: 0,
        });
        open.histogram.add(&report.histogram).expect("interval histograms share bounds");
        open.errors += report.errors;
        open.reports += 1;
    }

    fn close(&mut self, second: i64) {
        // Seconds close in order: anything older still open closes first.
        let older: Vec<i64> = self.open.range(..=second).map(|(key, _)| *key).collect();
        for key in older {
            let open = self.open.remove(&key).expect("listed above");
            let point = TimelinePoint {
                t_s: key,
                ops_per_sec: open.histogram.len() as f64,
                errors: open.errors,
                p50_us: nanoseconds_to_microseconds(open.histogram.value_at_quantile(0.5)),
                p99_us: nanoseconds_to_microseconds(open.histogram.value_at_quantile(0.99)),
                p999_us: nanoseconds_to_microseconds(open.histogram.value_at_quantile(0.999)),
                max_us: nanoseconds_to_microseconds(open.histogram.max()),
            };
            if !self.quiet {
                eprintln!("{}", live_line(&self.label, &point));
            }
            if key < 0 {
                self.warmup_timeline.push(point);
            } else {
                if let Some(length) = self.window_seconds {
                    let index = key as u64 / length;
                    // The first second of a long window is the transition
                    // from the previous rate, so it is left out.
                    if length < 3 || !(key as u64).is_multiple_of(length) {
                        let window = self.windows.entry(index).or_insert_with(|| (new_histogram(), 0, 0));
                        window.0.add(&open.histogram).expect("interval histograms share bounds");
                        window.1 += open.errors;
                        window.2 += 1;
                    }
                }
                self.timeline.push(point);
            }
            self.closed_through = self.closed_through.max(key);
            self.last_closed = self.closed_through;
        }
    }

    /// Closes everything still open (after the workers have finished).
    pub fn finish(&mut self) {
        while let Ok(report) = self.receiver.try_recv() {
            self.add(report);
        }
        if let Some(last) = self.open.keys().next_back().copied() {
            self.close(last);
        }
    }
}

/// The line printed each second.
pub fn live_line(label: &str, point: &TimelinePoint) -> String {
    let phase = if point.t_s < 0 { " warmup" } else { "" };
    format!(
        "[{label}{phase} {:>4}s] {:>9.0} ops/s  p50 {:>8.1}us  p99 {:>8.1}us  p99.9 {:>8.1}us  max {:>9.1}us  errors {}",
        point.t_s, point.ops_per_sec, point.p50_us, point.p99_us, point.p999_us, point.max_us, point.errors
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::sync_channel;

    #[test]
    fn seconds_count_from_measurement() {
        let start = 2 * NANOSECONDS_PER_SECOND;
        assert_eq!(second_of(0, start), -2);
        assert_eq!(second_of(start - 1, start), -1);
        assert_eq!(second_of(start, start), 0);
        assert_eq!(second_of(start + 1_500_000_000, start), 1);
    }

    #[test]
    fn intervals_reach_the_aggregator() {
        let (sender, receiver) = sync_channel(4);
        let clock = Clock::new();
        let mut interval = IntervalRecorder::new(sender, 0, 0);
        interval.record(1000);
        interval.record(3000);
        interval.record_error();
        interval.tick(NANOSECONDS_PER_SECOND + 5);
        interval.record(2000);
        assert_eq!(interval.finish(), 0);
        let mut aggregator = Aggregator::new(receiver, 1, true, "test");
        aggregator.poll(Duration::from_millis(1), &clock, 0);
        aggregator.finish();
        assert_eq!(aggregator.timeline.len(), 2);
        assert_eq!(aggregator.timeline[0].t_s, 0);
        assert_eq!(aggregator.timeline[0].ops_per_sec, 2.0);
        assert_eq!(aggregator.timeline[0].errors, 1);
        assert_eq!(aggregator.timeline[1].ops_per_sec, 1.0);
        assert!(live_line("x", &aggregator.timeline[0]).contains("2 ops/s"));
    }
}
