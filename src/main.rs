//! The zoocore binary: `zoocore` starts a standalone server on the embedded
//! default (127.0.0.1:2181, data under ./zoocore-data); `zoocore --config
//! zoo.cfg` reads ZooKeeper's configuration format.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use zoocore::config::Config;

// mimalloc is built with `no_thp` (Cargo.toml): with transparent huge pages
// its arenas were backed by 2 MiB pages that a sparse heap only partly
// uses, which cost 22 MiB at start and about 90 MiB more with a million
// znodes (docs/memory.md). Freed memory goes back to the OS after
// mimalloc's purge delay (10 ms, 100 ms for arenas). MIMALLOC_ALLOW_THP=1
// in the environment turns huge pages back on.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "zoocore", version, about = "A ZooKeeper-compatible coordination server, shard-per-core")]
struct Arguments {
    /// A zoo.cfg in ZooKeeper's format. Without it: standalone on
    /// 127.0.0.1:2181 with data under ./zoocore-data.
    #[arg(long, short, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Operator's flag for a damaged log: cut it at the corrupt record
    /// (logging what is dropped) and fall back to an older valid snapshot,
    /// instead of refusing to start. Acknowledged writes after the damage
    /// are lost; use it only after saving a copy of the data directories.
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
    // Three processes started from an ensemble's zoo.cfg files must never
    // become three standalone databases that diverge without a word.
    if config.is_distributed() {
        eprintln!(
            "zoocore: this configuration describes an ensemble ({} server.N lines, standaloneEnabled={}), \
             which this build cannot run yet; refusing to start it as a standalone server",
            config.servers.len(),
            config.standalone_enabled
        );
        return ExitCode::from(2);
    }
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
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    // Scripts and tests read these lines; the listening line comes last.
    let result = zoocore::server::run(config, |listening| {
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
