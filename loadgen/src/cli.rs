//! The command line: `zoocore-loadgen run ...` measures, `zoocore-loadgen
//! report ...` turns JSON summaries into one HTML page, `zoocore-loadgen
//! floor ...` answers with no server work, for the machine's own floor.
//!
//! Every flag of `run` is documented in its doc comment, which clap shows in
//! `--help`, and each value is checked when it is parsed, so a bad mix, a
//! zipf exponent out of range or a ramp that cannot end is refused before a
//! single connection is opened. Durations take a unit (`500us`, `250ms`,
//! `2s`, `1m`); a bare number means seconds.
//!
//! The run is always bounded: by `--duration` (10 s unless `--ops` is given),
//! by `--ops`, whichever comes first, and in any case by `--max-duration`.
//! A ramp is bounded by its maximum rate and the length of its steps.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};

use crate::sampler::{parse_distribution, parse_mix, Distribution, Mix};

#[derive(Debug, Parser)]
#[command(
    name = "zoocore-loadgen",
    version,
    about = "Load generator for ZooKeeper-compatible servers (zoocore, Apache ZooKeeper)",
    long_about = "Load generator for ZooKeeper-compatible servers. It speaks the ZooKeeper \
                  wire protocol itself and measures latency with HDR histograms. `run` \
                  measures one workload; `report` overlays several runs' JSON summaries in \
                  one self-contained HTML page."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs one workload against a server or ensemble and reports its latency.
    Run(Box<RunArgs>),
    /// Writes an HTML report overlaying the runs of several --json summaries.
    Report(ReportArgs),
    /// Answers the ZooKeeper protocol at once with no server work: the same
    /// load run against it measures what the machine, the kernel and this
    /// load generator cost by themselves (scripts/compare.py --floor).
    Floor(FloorArgs),
}

/// The workloads of `run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Operations drawn from --mix on --keys nodes, closed loop or at --rate.
    Mix,
    /// --watchers sessions watch --watched-nodes nodes; one writer sets them at
    /// --rate writes/s; measures the time from the write's reply to each event.
    Watch,
    /// --connections threads each open a session and close it, again and
    /// again (at --rate sessions/s in total if given).
    Churn,
    /// --connections contenders take a lock (ephemeral sequential nodes under
    /// ROOT/lock, watching the predecessor); measures the hand-off latency.
    Lock,
}

#[derive(Debug, Clone, Args, Serialize)]
pub struct RunArgs {
    /// Connect string: comma-separated host:port pairs. Connections are
    /// spread round-robin over them.
    #[arg(long, default_value = "127.0.0.1:2181", value_parser = parse_hosts)]
    pub hosts: Hosts,

    /// Which workload to run.
    #[arg(long, value_enum, default_value_t = Workload::Mix)]
    pub workload: Workload,

    /// Operation mix for the mix workload, as OP=WEIGHT pairs. OP is get
    /// (getData), set (setData), exists, children (getChildren of a key's
    /// directory), create (a new node), delete (a node this connection
    /// created) or multi (--multi-size setData in one multi).
    #[arg(long, default_value = "get=100", value_parser = parse_mix)]
    #[serde(serialize_with = "serialize_display")]
    pub mix: Mix,

    /// Number of key nodes created under ROOT before measuring.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub keys: u64,

    /// Bytes of data in each key node and in each setData/create.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub value_size: u32,

    /// Key choice: uniform, or zipf:THETA with 0 < THETA < 1 (key 0 hottest).
    #[arg(long, default_value = "uniform", value_parser = parse_distribution)]
    #[serde(serialize_with = "serialize_display")]
    pub dist: Distribution,

    /// Keys per directory: key K is ROOT/keys/dD/kK with D = K / this. The
    /// children operation lists one such directory.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub keys_per_directory: u64,

    /// setData operations per multi.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub multi_size: u32,

    /// Sessions (TCP connections) for the mix workload; contenders for lock;
    /// parallel churners for churn.
    #[arg(long, short = 'c', default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub connections: u32,

    /// Requests in flight per connection: the pipeline depth of the closed
    /// loop (default 8), and the cap per connection of the open loop
    /// (default 1024, so that the cap is not what delays requests).
    #[arg(long, short = 'd', value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub outstanding: Option<u32>,

    /// Open loop: requests per second in total (writes/s for watch,
    /// sessions/s for churn). Latency is then measured from each request's
    /// intended send time. Without it the mix workload runs closed loop.
    #[arg(long)]
    pub rate: Option<f64>,

    /// Open loop: a wake-up also sends the requests due within this much
    /// time, in one batch (they are timed from their actual send). 0 sends
    /// every request alone at its due time.
    #[arg(long, default_value = "100us", value_parser = parse_duration)]
    #[serde(with = "duration_ms")]
    pub send_ahead: Duration,

    /// Worker threads driving the connections of the mix workload.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub threads: u32,

    /// Load applied before measuring starts (not recorded).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    #[serde(with = "duration_ms")]
    pub warmup: Duration,

    /// Measured time (default 10s unless --ops is given).
    #[arg(long, value_parser = parse_duration)]
    #[serde(with = "option_duration_ms")]
    pub duration: Option<Duration>,

    /// Stop after this many measured operations.
    #[arg(long)]
    pub ops: Option<u64>,

    /// Hard bound on the measured time, whatever --ops says.
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    #[serde(with = "duration_ms")]
    pub max_duration: Duration,

    /// Ramp the open-loop rate START:STEP:MAX (ops/s) until the target
    /// percentile is exceeded; each step lasts --step-duration. Needs
    /// --target-p99 or --target-p999.
    #[arg(long, value_parser = parse_ramp)]
    pub ramp: Option<Ramp>,

    /// Ramp target: the p99 latency a rate must keep.
    #[arg(long, value_parser = parse_duration)]
    #[serde(with = "option_duration_ms")]
    pub target_p99: Option<Duration>,

    /// Ramp target: the p99.9 latency a rate must keep.
    #[arg(long, value_parser = parse_duration)]
    #[serde(with = "option_duration_ms")]
    pub target_p999: Option<Duration>,

    /// Length of each ramp step.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    #[serde(with = "duration_ms")]
    pub step_duration: Duration,

    /// Connect over TLS, to a server's secureClientPort; needs --tls-ca.
    #[arg(long)]
    pub tls: bool,

    /// TLS: PEM file of the CA certificates the server's certificate must
    /// chain to.
    #[arg(long)]
    pub tls_ca: Option<std::path::PathBuf>,

    /// TLS: PEM certificate chain to present (servers with
    /// ssl.clientAuth=need); with --tls-key.
    #[arg(long)]
    pub tls_cert: Option<std::path::PathBuf>,

    /// TLS: PEM private key of --tls-cert.
    #[arg(long)]
    pub tls_key: Option<std::path::PathBuf>,

    /// TLS: the name the server's certificate must carry (default: the
    /// host's IP address, which the certificate then names as an IP SAN).
    #[arg(long)]
    pub tls_server_name: Option<String>,

    /// Watch workload: watcher sessions.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub watchers: u32,

    /// Watch workload: nodes each watcher watches.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub watched_nodes: u32,

    /// Lock workload: how long a contender holds the lock.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    #[serde(with = "duration_ms")]
    pub hold: Duration,

    /// Parent of every node the loadgen creates.
    #[arg(long, default_value = "/zoocore-loadgen", value_parser = parse_root)]
    pub root: String,

    /// Keep the nodes under ROOT after the run instead of deleting them.
    #[arg(long)]
    pub keep: bool,

    /// Session timeout asked for in each ConnectRequest.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    #[serde(with = "duration_ms")]
    pub session_timeout: Duration,

    /// How long to wait for in-flight replies after the measured time.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    #[serde(with = "duration_ms")]
    pub drain_timeout: Duration,

    /// Seed of the random key and operation choices.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// Write the JSON summary here.
    #[arg(long)]
    pub json: Option<PathBuf>,

    /// Write the percentile distributions as HdrHistogram .hgrm text (values
    /// in microseconds): PREFIX.hgrm for all operations, PREFIX.OP.hgrm for
    /// each.
    #[arg(long, value_name = "PREFIX")]
    pub hgrm: Option<PathBuf>,

    /// Name of this run in the JSON and the HTML report.
    #[arg(long)]
    pub label: Option<String>,

    /// No live line each second.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

impl RunArgs {
    /// --outstanding, or its default for the load model.
    pub fn outstanding(&self) -> u32 {
        self.outstanding.unwrap_or(if self.rate.is_some() || self.ramp.is_some() { 1024 } else { 8 })
    }

    /// The measured time: --duration, or 10 s unless --ops is given, always
    /// capped by --max-duration.
    pub fn measure_duration(&self) -> Duration {
        let wanted = match (self.duration, self.ops) {
            (Some(duration), _) => duration,
            (None, Some(_)) => self.max_duration,
            (None, None) => Duration::from_secs(10),
        };
        wanted.min(self.max_duration)
    }

    /// Checks the combinations clap cannot express.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(rate) = self.rate {
            if !(rate > 0.0 && rate.is_finite()) {
                return Err(format!("--rate must be positive, got {rate}"));
            }
        }
        if self.ramp.is_some() {
            if self.target_p99.is_none() && self.target_p999.is_none() {
                return Err("--ramp needs --target-p99 or --target-p999".into());
            }
            if self.workload != Workload::Mix {
                return Err("--ramp applies to the mix workload only".into());
            }
        }
        if self.hosts.is_empty() {
            return Err("--hosts is empty".into());
        }
        if self.tls && self.tls_ca.is_none() {
            return Err("--tls needs --tls-ca".into());
        }
        let tls_files = self.tls_ca.is_some() || self.tls_cert.is_some() || self.tls_key.is_some();
        if !self.tls && (tls_files || self.tls_server_name.is_some()) {
            return Err("--tls-ca, --tls-cert, --tls-key and --tls-server-name need --tls".into());
        }
        if self.threads > self.connections {
            return Err("--threads cannot exceed --connections".into());
        }
        Ok(())
    }
}

/// A ramp of offered rates: start, start + step, ... up to max.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Ramp {
    pub start: f64,
    pub step: f64,
    pub max: f64,
}

impl Ramp {
    pub fn rates(&self) -> Vec<f64> {
        let mut rates = Vec::new();
        let mut rate = self.start;
        while rate <= self.max * (1.0 + 1e-9) && rates.len() < MAX_RAMP_STEPS {
            rates.push(rate);
            rate += self.step;
        }
        rates
    }
}

/// The most steps a ramp may have.
pub const MAX_RAMP_STEPS: usize = 1000;

pub fn parse_ramp(text: &str) -> Result<Ramp, String> {
    let parts: Vec<&str> = text.split(':').collect();
    let [start, step, max] = parts[..] else {
        return Err(format!("expected START:STEP:MAX, got {text:?}"));
    };
    let number = |part: &str| -> Result<f64, String> {
        let value: f64 = parse_count(part)?;
        if !(value > 0.0 && value.is_finite()) {
            return Err(format!("ramp value {part:?} must be positive"));
        }
        Ok(value)
    };
    let ramp = Ramp { start: number(start)?, step: number(step)?, max: number(max)? };
    if ramp.max < ramp.start {
        return Err("the ramp's MAX is below its START".into());
    }
    if ramp.rates().len() >= MAX_RAMP_STEPS {
        return Err(format!("a ramp may have at most {MAX_RAMP_STEPS} steps"));
    }
    Ok(ramp)
}

/// A number with an optional k or m suffix (`20k` = 20000).
fn parse_count(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let (digits, multiplier) = if let Some(rest) = text.strip_suffix(['k', 'K']) {
        (rest, 1e3)
    } else if let Some(rest) = text.strip_suffix(['m', 'M']) {
        (rest, 1e6)
    } else {
        (text, 1.0)
    };
    digits.parse::<f64>().map(|value| value * multiplier).map_err(|_| format!("{text:?} is not a number"))
}

/// Parses `250us`, `1.5ms`, `2s`, `1m`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|character: char| !(character.is_ascii_digit() || character == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("{text:?} is not a duration (try 500ms, 2s, 1m)"))?;
    let seconds_per_unit = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "ns" => 1e-9,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => return Err(format!("unknown duration unit {other:?} in {text:?}")),
    };
    let seconds = value * seconds_per_unit;
    if !(seconds.is_finite() && (0.0..=86_400.0).contains(&seconds)) {
        return Err(format!("duration {text:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// The addresses of a connect string, resolved once at parse time.
#[derive(Debug, Clone, PartialEq)]
pub struct Hosts(pub Vec<SocketAddr>);

impl std::ops::Deref for Hosts {
    type Target = Vec<SocketAddr>;

    fn deref(&self) -> &Vec<SocketAddr> {
        &self.0
    }
}

impl Serialize for Hosts {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let joined: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        serializer.serialize_str(&joined.join(","))
    }
}

pub fn parse_hosts(text: &str) -> Result<Hosts, String> {
    let mut addresses = Vec::new();
    for host in text.split(',').map(str::trim).filter(|host| !host.is_empty()) {
        let resolved = host
            .to_socket_addrs()
            .map_err(|error| format!("cannot resolve {host:?}: {error}"))?
            .next()
            .ok_or_else(|| format!("{host:?} resolves to no address"))?;
        addresses.push(resolved);
    }
    if addresses.is_empty() {
        return Err("no host given".into());
    }
    Ok(Hosts(addresses))
}

fn parse_root(text: &str) -> Result<String, String> {
    if !text.starts_with('/') || text.len() < 2 || text.ends_with('/') || text.contains("//") {
        return Err(format!("--root must be an absolute ZooKeeper path other than /, got {text:?}"));
    }
    Ok(text.to_string())
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// JSON summaries written by `run --json`, one per run to overlay.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,

    /// The HTML file to write.
    #[arg(long, short = 'o', default_value = "report.html")]
    pub output: PathBuf,

    /// Title of the page.
    #[arg(long, default_value = "zoocore-loadgen report")]
    pub title: String,
}

#[derive(Debug, Args)]
pub struct FloorArgs {
    /// Address to listen on (port 0: any free port, printed on stdout).
    #[arg(long, default_value = "127.0.0.1:2181")]
    pub listen: SocketAddr,

    /// Bytes of zeros each getData returns (as --value-size of run).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub value_size: u32,

    /// Before replying to a read of the socket that brought writes, write
    /// 4 KiB in place to this file with O_DSYNC: a floor that includes the
    /// disk's synced write.
    #[arg(long)]
    pub dsync: Option<PathBuf>,
}

fn serialize_display<T: std::fmt::Display, S: serde::Serializer>(value: &T, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

mod duration_ms {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(duration.as_secs_f64() * 1000.0)
    }
}

mod option_duration_ms {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(duration: &Option<Duration>, serializer: S) -> Result<S::Ok, S::Error> {
        match duration {
            Some(duration) => serializer.serialize_f64(duration.as_secs_f64() * 1000.0),
            None => serializer.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn run_args(arguments: &[&str]) -> RunArgs {
        let mut full = vec!["zoocore-loadgen", "run"];
        full.extend_from_slice(arguments);
        match Cli::try_parse_from(full).unwrap().command {
            Command::Run(arguments) => *arguments,
            Command::Report(_) | Command::Floor(_) => panic!("expected run"),
        }
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_defaults() {
        let arguments = run_args(&[]);
        assert_eq!(*arguments.hosts, vec!["127.0.0.1:2181".parse::<SocketAddr>().unwrap()]);
        assert_eq!(arguments.connections, 4);
        assert_eq!(arguments.outstanding(), 8);
        assert_eq!(arguments.warmup, Duration::from_secs(2));
        assert_eq!(arguments.measure_duration(), Duration::from_secs(10));
        assert_eq!(arguments.mix.to_string(), "get=100");
        assert_eq!(arguments.root, "/zoocore-loadgen");
        assert!(arguments.validate().is_ok());
    }

    #[test]
    fn run_flags_parse() {
        let arguments = run_args(&[
            "--hosts",
            "127.0.0.1:2181,127.0.0.1:2182",
            "--mix",
            "get=90,set=10",
            "--keys",
            "5000",
            "--value-size",
            "1024",
            "--dist",
            "zipf:0.99",
            "--connections",
            "16",
            "--outstanding",
            "4",
            "--rate",
            "20000",
            "--warmup",
            "500ms",
            "--ops",
            "1000",
            "--json",
            "/tmp/x.json",
        ]);
        assert_eq!(arguments.hosts.len(), 2);
        assert_eq!(arguments.keys, 5000);
        assert_eq!(arguments.value_size, 1024);
        assert_eq!(arguments.dist, Distribution::Zipf(0.99));
        assert_eq!(arguments.rate, Some(20000.0));
        assert_eq!(arguments.warmup, Duration::from_millis(500));
        assert_eq!(arguments.ops, Some(1000));
        assert_eq!(arguments.measure_duration(), Duration::from_secs(300));
        let ramped = run_args(&["--ramp", "10k:5k:50k", "--target-p99", "1ms"]);
        assert_eq!(ramped.ramp.unwrap().rates().len(), 9);
        assert_eq!(ramped.target_p99, Some(Duration::from_millis(1)));
        assert!(ramped.validate().is_ok());
        assert!(run_args(&["--ramp", "1:1:2"]).validate().is_err());
        let serialized = serde_json::to_value(&arguments).unwrap();
        assert_eq!(serialized["mix"], "get=90,set=10");
        assert_eq!(serialized["warmup"], 500.0);
    }

    #[test]
    fn bad_values_are_refused() {
        for bad in [
            vec!["--mix", "get=x"],
            vec!["--dist", "zipf:2"],
            vec!["--connections", "0"],
            vec!["--warmup", "2 parsecs"],
            vec!["--root", "relative"],
            vec!["--ramp", "5:1"],
            vec!["--workload", "dance"],
        ] {
            let mut full = vec!["zoocore-loadgen", "run"];
            full.extend_from_slice(&bad);
            assert!(Cli::try_parse_from(&full).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("1.5ms"), Ok(Duration::from_micros(1500)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("ms").is_err());
    }

    #[test]
    fn report_arguments() {
        let cli = Cli::try_parse_from(["zoocore-loadgen", "report", "a.json", "b.json", "-o", "r.html"]).unwrap();
        let Command::Report(report) = cli.command else { panic!("expected report") };
        assert_eq!(report.inputs.len(), 2);
        assert_eq!(report.output, PathBuf::from("r.html"));
        assert!(Cli::try_parse_from(["zoocore-loadgen", "report"]).is_err());
    }
}
