//! The zoocore binary: `zoocore` starts a standalone server on the embedded
//! default (127.0.0.1:2181, data under ./zoocore-data); `zoocore --config
//! zoo.cfg` reads ZooKeeper's configuration format.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use zoocore::config::Config;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "zoocore", version, about = "A ZooKeeper-compatible coordination server, shard-per-core")]
struct Arguments {
    /// A zoo.cfg in ZooKeeper's format. Without it: standalone on
    /// 127.0.0.1:2181 with data under ./zoocore-data.
    #[arg(long, short, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Operator's flag for a damaged log: repair it instead of refusing to
    /// start. The repair is planned first and keeps every record it can
    /// still use (damage the snapshot covers costs nothing); it logs what it
    /// cuts and moves the original segments into log/truncated-<time>/.
    /// Records after damage no snapshot covers are lost; save a copy of the
    /// data directories first.
    #[arg(long)]
    truncate_corrupt: bool,
}

fn main() -> ExitCode {
    let arguments = Arguments::parse();
    let mut config = match &arguments.config {
        Some(path) => match Config::from_file(path) {
            Ok(config) => config,
            Err(error) => {
                eprintln!("zoocore: {error}");
                return ExitCode::from(2);
            }
        },
        None => Config::default(),
    };
    config.truncate_corrupt = arguments.truncate_corrupt;
    // An ensemble's files are checked (myid, server lines, addresses) before
    // anything starts: a mistake in them is an error, never a silent
    // standalone start.
    let ensemble = match zoocore::ensemble::Ensemble::from_config(&config) {
        Ok(ensemble) => ensemble,
        Err(error) => {
            eprintln!("zoocore: {error}");
            return ExitCode::from(2);
        }
    };
    debug_assert_eq!(ensemble.is_some(), config.is_distributed(), "an ensemble exactly when ZooKeeper runs one");
    let filter = tracing_subscriber::EnvFilter::try_from_env("ZOOCORE_LOG")
        .ok()
        .or_else(|| config.log_level.as_deref().and_then(|level| tracing_subscriber::EnvFilter::try_new(level).ok()))
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    for warning in config.warnings.iter().chain(ensemble.iter().flat_map(|ensemble| ensemble.warnings.iter())) {
        tracing::warn!("{warning}");
    }
    // Scripts and tests read these lines; the listening line comes last.
    let result = zoocore::server::run(config, ensemble, |listening| {
        if let Some(address) = listening.admin {
            println!("zoocore admin on {address}");
        }
        if let Some(address) = listening.metrics {
            println!("zoocore metrics on {address}");
        }
        println!("zoocore listening on {}", listening.client);
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("zoocore: {error}");
            ExitCode::from(1)
        }
    }
}
