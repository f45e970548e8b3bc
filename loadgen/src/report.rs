//! The `report` subcommand: one self-contained HTML page that overlays runs.
//!
//! It reads the JSON summaries that `run --json` writes and draws, with
//! inline SVG (no script, no fonts or files fetched, so the page opens the
//! same offline and in a mail attachment):
//!
//! - latency by percentile, on HdrHistogram's usual axes: x is
//!   log10(1 / (1 - percentile)), so 90 %, 99 %, 99.9 % ... are evenly
//!   spaced, and y is the latency on a log scale;
//! - throughput over time (ops/s per measured second);
//! - p99 latency over time;
//! - a table of every run's headline numbers and per-operation rows, and
//!   each run's configuration.
//!
//! Runs get colours in the order given, so `report zoocore.json zk.json`
//! always draws zoocore in the first colour.

use std::fmt::Write as _;

use crate::cli::ReportArgs;
use crate::output::{read_json, Summary};

const COLOURS: [&str; 8] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
const CHART_WIDTH: f64 = 860.0;
const CHART_HEIGHT: f64 = 380.0;
const MARGIN_LEFT: f64 = 80.0;
const MARGIN_RIGHT: f64 = 45.0;
const MARGIN_TOP: f64 = 40.0;
const MARGIN_BOTTOM: f64 = 50.0;
/// The percentile axis ends at 99.9999 %.
const MAX_PERCENTILE_NINES: f64 = 6.0;

pub fn run(args: &ReportArgs) -> Result<(), String> {
    let mut runs = Vec::with_capacity(args.inputs.len());
    for input in &args.inputs {
        runs.push(read_json(input)?);
    }
    let html = render(&args.title, &runs);
    std::fs::write(&args.output, html).map_err(|error| format!("{}: {error}", args.output.display()))?;
    eprintln!("wrote {}", args.output.display());
    Ok(())
}

/// Escapes text for HTML and SVG.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// One axis: its range in plotted units, whether values are log10'd before
/// plotting, and labelled ticks (in plotted units).
struct Axis {
    label: String,
    min: f64,
    max: f64,
    log: bool,
    ticks: Vec<(f64, String)>,
}

impl Axis {
    fn linear(label: &str, min: f64, max: f64) -> Axis {
        let max = if max > min { max } else { min + 1.0 };
        let step = nice_step((max - min) / 6.0);
        let mut ticks = Vec::new();
        let mut tick = (min / step).ceil() * step;
        while tick <= max + step * 1e-9 {
            ticks.push((tick, format_number(tick)));
            tick += step;
        }
        Axis { label: label.into(), min, max, log: false, ticks }
    }

    /// A log axis over [min, max] (values, not logs; both positive).
    fn logarithmic(label: &str, min: f64, max: f64) -> Axis {
        let low = min.max(1e-3).log10().floor();
        let high = max.max(min * 10.0).log10().ceil();
        let mut ticks = Vec::new();
        let mut decade = low;
        while decade <= high {
            for multiple in [1.0, 2.0, 5.0] {
                let value = multiple * 10f64.powf(decade);
                let plotted = value.log10();
                if plotted >= low && plotted <= high {
                    ticks.push((plotted, format_number(value)));
                }
            }
            decade += 1.0;
        }
        Axis { label: label.into(), min: low, max: high, log: true, ticks }
    }

    fn plotted(&self, value: f64) -> f64 {
        if self.log {
            value.max(1e-3).log10()
        } else {
            value
        }
    }
}

fn nice_step(rough: f64) -> f64 {
    if rough <= 0.0 || !rough.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(rough.log10().floor());
    let fraction = rough / magnitude;
    let nice = if fraction <= 1.0 {
        1.0
    } else if fraction <= 2.0 {
        2.0
    } else if fraction <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

fn format_number(value: f64) -> String {
    if value.abs() >= 1e6 {
        format!("{:.1}M", value / 1e6)
    } else if value.abs() >= 1e4 {
        format!("{:.0}k", value / 1e3)
    } else if value.abs() >= 100.0 || value == value.round() {
        format!("{value:.0}")
    } else if value.abs() >= 1.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.3}")
    }
}

struct Series {
    label: String,
    colour: &'static str,
    points: Vec<(f64, f64)>,
}

fn chart(title: &str, x: &Axis, y: &Axis, series: &[Series]) -> String {
    let plot_width = CHART_WIDTH - MARGIN_LEFT - MARGIN_RIGHT;
    let plot_height = CHART_HEIGHT - MARGIN_TOP - MARGIN_BOTTOM;
    let to_x = |value: f64| MARGIN_LEFT + (value - x.min) / (x.max - x.min) * plot_width;
    let to_y = |value: f64| MARGIN_TOP + plot_height - (value - y.min) / (y.max - y.min) * plot_height;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{CHART_WIDTH}" height="{CHART_HEIGHT}" viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ =
        write!(svg, r#"<text x="{}" y="20" font-size="15" font-weight="bold">{}</text>"#, MARGIN_LEFT, escape(title));
    for (value, label) in &x.ticks {
        let position = to_x(*value);
        let _ = write!(
            svg,
            r##"<line x1="{position:.1}" y1="{MARGIN_TOP}" x2="{position:.1}" y2="{:.1}" stroke="#ddd"/><text x="{position:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            MARGIN_TOP + plot_height,
            MARGIN_TOP + plot_height + 16.0,
            escape(label)
        );
    }
    for (value, label) in &y.ticks {
        let position = to_y(*value);
        let _ = write!(
            svg,
            r##"<line x1="{MARGIN_LEFT}" y1="{position:.1}" x2="{:.1}" y2="{position:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            MARGIN_LEFT + plot_width,
            MARGIN_LEFT - 6.0,
            position + 4.0,
            escape(label)
        );
    }
    let _ = write!(
        svg,
        r##"<rect x="{MARGIN_LEFT}" y="{MARGIN_TOP}" width="{plot_width}" height="{plot_height}" fill="none" stroke="#888"/>"##
    );
    let _ = write!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        MARGIN_LEFT + plot_width / 2.0,
        CHART_HEIGHT - 10.0,
        escape(&x.label)
    );
    let _ = write!(
        svg,
        r#"<text transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        MARGIN_TOP + plot_height / 2.0,
        escape(&y.label)
    );
    for (index, line) in series.iter().enumerate() {
        let mut path = String::new();
        for &(x_value, y_value) in &line.points {
            let plotted_x = x.plotted(x_value);
            let plotted_y = y.plotted(y_value);
            if !(plotted_x.is_finite() && plotted_y.is_finite()) || plotted_x > x.max {
                continue;
            }
            let _ = write!(
                path,
                "{}{:.1},{:.1}",
                if path.is_empty() { "M" } else { " L" },
                to_x(plotted_x),
                to_y(plotted_y.clamp(y.min, y.max))
            );
        }
        if !path.is_empty() {
            let _ = write!(svg, r#"<path d="{path}" fill="none" stroke="{}" stroke-width="2"/>"#, line.colour);
        }
        let legend_y = MARGIN_TOP + 16.0 + index as f64 * 16.0;
        let _ = write!(
            svg,
            r#"<rect x="{:.1}" y="{:.1}" width="12" height="3" fill="{}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            MARGIN_LEFT + 10.0,
            legend_y - 4.0,
            line.colour,
            MARGIN_LEFT + 28.0,
            legend_y,
            escape(&line.label)
        );
    }
    svg.push_str("</svg>");
    svg
}

fn percentile_chart(runs: &[Summary]) -> String {
    let mut series = Vec::new();
    let mut low_us = f64::MAX;
    let mut high_us: f64 = 0.0;
    let mut nines: f64 = 2.0;
    for (index, run) in runs.iter().enumerate() {
        let points: Vec<(f64, f64)> = run
            .histogram
            .iter()
            .filter(|point| point.percentile < 1.0)
            .map(|point| ((1.0 / (1.0 - point.percentile)).log10(), point.value_us))
            .filter(|(x, _)| *x <= MAX_PERCENTILE_NINES)
            .collect();
        for (x, value) in &points {
            low_us = low_us.min(*value);
            high_us = high_us.max(*value);
            nines = nines.max(x.ceil());
        }
        series.push(Series { label: run_label(run, index), colour: COLOURS[index % COLOURS.len()], points });
    }
    if low_us > high_us {
        low_us = 1.0;
        high_us = 10.0;
    }
    let names = ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "99.9999%"];
    let x = Axis {
        label: "percentile".into(),
        min: 0.0,
        max: nines.min(MAX_PERCENTILE_NINES),
        log: false,
        ticks: (0..=nines.min(MAX_PERCENTILE_NINES) as usize)
            .map(|nine| (nine as f64, names[nine].to_string()))
            .collect(),
    };
    let y = Axis::logarithmic("latency (us, log scale)", low_us, high_us);
    chart("Latency by percentile", &x, &y, &series)
}

fn timeline_chart(
    runs: &[Summary],
    title: &str,
    y_label: &str,
    log: bool,
    pick: fn(&crate::timeline::TimelinePoint) -> f64,
) -> String {
    let mut series = Vec::new();
    let mut last_second: f64 = 1.0;
    let mut low: f64 = f64::MAX;
    let mut high: f64 = 0.0;
    for (index, run) in runs.iter().enumerate() {
        let points: Vec<(f64, f64)> = run.timeline.iter().map(|point| (point.t_s as f64 + 0.5, pick(point))).collect();
        for (x, y) in &points {
            last_second = last_second.max(x.ceil());
            low = low.min(*y);
            high = high.max(*y);
        }
        series.push(Series { label: run_label(run, index), colour: COLOURS[index % COLOURS.len()], points });
    }
    if low > high {
        low = 1.0;
        high = 10.0;
    }
    let x = Axis::linear("seconds since measurement started", 0.0, last_second);
    let y = if log { Axis::logarithmic(y_label, low.max(1e-3), high) } else { Axis::linear(y_label, 0.0, high * 1.1) };
    chart(title, &x, &y, &series)
}

fn run_label(run: &Summary, index: usize) -> String {
    if run.label.is_empty() {
        format!("run {}", index + 1)
    } else {
        run.label.clone()
    }
}

fn summary_table(runs: &[Summary]) -> String {
    let mut html = String::from(
        "<table><tr><th>run</th><th>op</th><th>ops</th><th>ops/s</th><th>p50 us</th><th>p90 us</th><th>p99 us</th><th>p99.9 us</th><th>max us</th><th>mean us</th><th>errors</th><th>loadgen cores</th><th>loadgen CPU ns/op</th></tr>",
    );
    for (index, run) in runs.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        let label = run_label(run, index);
        let headline = run.primary_op.clone().unwrap_or_else(|| "all".into());
        let mut rows = vec![(headline, run.ops, run.ops_per_sec, run.latency_us, run.errors)];
        for (name, operation) in &run.per_op {
            rows.push((name.clone(), operation.ops, operation.ops_per_sec, operation.latency_us, operation.errors));
        }
        for (position, (name, ops, ops_per_sec, latency, errors)) in rows.iter().enumerate() {
            let run_cell = if position == 0 {
                format!(
                    r#"<td rowspan="{}"><span style="color:{colour}">&#9632;</span> {}</td>"#,
                    rows.len(),
                    escape(&label)
                )
            } else {
                String::new()
            };
            let cpu_cells = if position == 0 {
                format!(
                    r#"<td rowspan="{rows}">{:.3}</td><td rowspan="{rows}">{:.0}</td>"#,
                    run.loadgen_cpu.cores,
                    run.loadgen_cpu.cpu_ns_per_op,
                    rows = rows.len()
                )
            } else {
                String::new()
            };
            let _ = write!(
                html,
                "<tr{}>{run_cell}<td>{}</td><td>{ops}</td><td>{ops_per_sec:.0}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{errors}</td>{cpu_cells}</tr>",
                if position == 0 { r#" class="headline""# } else { "" },
                escape(name),
                latency.p50,
                latency.p90,
                latency.p99,
                latency.p999,
                latency.max,
                latency.mean,
            );
        }
    }
    html.push_str("</table>");
    html
}

/// The whole page.
pub fn render(title: &str, runs: &[Summary]) -> String {
    let mut html = String::new();
    let _ = write!(
        html,
        r#"<!DOCTYPE html><html><head><meta charset="utf-8"><title>{}</title><style>
body {{ font-family: sans-serif; margin: 24px; color: #222; }}
table {{ border-collapse: collapse; margin: 12px 0 24px; font-size: 13px; }}
td, th {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; }}
th {{ background: #f0f0f0; }} tr.headline td {{ font-weight: bold; }}
td:first-child {{ text-align: left; }} pre {{ background: #f7f7f7; padding: 8px; font-size: 12px; overflow-x: auto; }}
svg {{ display: block; margin: 12px 0; }}
</style></head><body><h1>{}</h1>"#,
        escape(title),
        escape(title)
    );
    html.push_str("<p>Latencies in microseconds. Open-loop runs measure from each request's intended send time; closed-loop runs from the actual send.</p>");
    html.push_str(&summary_table(runs));
    html.push_str(&percentile_chart(runs));
    html.push_str(&timeline_chart(runs, "Throughput over time", "ops/s", false, |point| point.ops_per_sec));
    html.push_str(&timeline_chart(runs, "p99 latency over time", "p99 (us, log scale)", true, |point| point.p99_us));
    for (index, run) in runs.iter().enumerate() {
        let _ = write!(
            html,
            "<h3>{}</h3><pre>{}</pre>",
            escape(&run_label(run, index)),
            escape(&serde_json::to_string_pretty(&run.config).unwrap_or_default())
        );
        for note in &run.notes {
            let _ = write!(html, "<p>note: {}</p>", escape(note));
        }
    }
    html.push_str("</body></html>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Recorder;
    use crate::timeline::TimelinePoint;

    fn sample(label: &str, scale: u64) -> Summary {
        let mut recorder = Recorder::new(&["get"]);
        for value in 1..=10_000u64 {
            recorder.record(0, value * 100 * scale);
        }
        let mut summary =
            Summary { label: label.into(), config: serde_json::json!({"connections": 4}), ..Summary::default() };
        summary.fill(&recorder, 1.0, None);
        summary.timeline = (0..5)
            .map(|second| TimelinePoint {
                t_s: second,
                ops_per_sec: 1000.0 * (second + 1) as f64,
                errors: 0,
                p50_us: 100.0,
                p99_us: 900.0,
                p999_us: 990.0,
                max_us: 1000.0,
            })
            .collect();
        summary
    }

    #[test]
    fn the_page_overlays_every_run_and_is_self_contained() {
        let html = render("zoocore <vs> zk", &[sample("zoocore", 1), sample("zookeeper", 3)]);
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert_eq!(html.matches("<svg").count(), 3);
        assert!(html.contains("zoocore &lt;vs&gt; zk"));
        assert!(html.contains(COLOURS[0]) && html.contains(COLOURS[1]));
        // Each chart has one path per run.
        assert_eq!(html.matches("<path d=\"M").count(), 6);
        assert!(!html.contains("http://") || html.matches("http://").count() == 3);
        assert!(!html.contains("<script"));
    }

    #[test]
    fn axes_have_sensible_ticks() {
        let axis = Axis::linear("x", 0.0, 57.0);
        assert_eq!(axis.ticks.first().unwrap().1, "0");
        assert!(axis.ticks.len() >= 4);
        let log = Axis::logarithmic("y", 80.0, 4000.0);
        assert!(log.ticks.iter().any(|(_, label)| label == "100"));
        assert!(log.ticks.iter().any(|(_, label)| label == "1000"));
        assert_eq!(nice_step(0.7), 1.0);
        assert_eq!(nice_step(1300.0), 2000.0);
    }
}
