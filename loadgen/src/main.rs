//! zoocore-loadgen: a load generator for ZooKeeper-compatible servers.
//!
//! It speaks the ZooKeeper client protocol itself, with the codec of the
//! zoocore library (`zoocore::proto`), so the same binary measures zoocore,
//! Apache ZooKeeper or any ensemble given a connect string, and it is light
//! enough that on a small machine the server, not the loadgen, sets the
//! numbers. `run` drives one workload (mix, watch, churn or lock) in a closed
//! or open loop and writes a live line each second, a final table, HDR
//! percentile distributions and a JSON summary; `report` overlays several
//! JSON summaries in one HTML page; `floor` answers the protocol with no
//! server work, so a run against it measures the machine's own floor. See
//! loadgen/README.md.
//!
//! The modules, from the wire up: `wire` (framing, the blocking client,
//! allocation-free reply checks), `sampler` (keys and operations),
//! `keyspace` (node names, setup and teardown), `stats` and `timeline`
//! (histograms, seconds, the shared clock and control), `harness` (what the
//! workloads share, and `run_workers`, the one skeleton they run on), the
//! workloads `mix` (with its non-blocking `engine` and the `ramp` judge),
//! `watch`, `churn` and `lock`, `run` (picks the workload), `output` (JSON,
//! .hgrm, table) and `report` (HTML).

mod churn;
mod cli;
mod floor;
mod harness;
mod keyspace;
mod lock;
mod mix;
mod output;
mod report;
mod run;
mod sampler;
mod stats;
mod timeline;
mod tls;
mod watch;
mod wire;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(arguments) => run_command(&arguments),
        Command::Report(arguments) => report::run(&arguments),
        Command::Floor(arguments) => floor::run(&arguments),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("zoocore-loadgen: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run_command(arguments: &cli::RunArgs) -> Result<(), String> {
    let summary = run::run(arguments)?;
    print!("{}", output::format_table(&summary));
    if let Some(path) = &arguments.json {
        output::write_json(&summary, path).map_err(|error| format!("{}: {error}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(prefix) = &arguments.hgrm {
        let written =
            output::write_hgrm_files(&summary, prefix).map_err(|error| format!("{}: {error}", prefix.display()))?;
        for path in written {
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(())
}
