//! The zoocore binary: `zoocore` starts a standalone server on the embedded
//! default (127.0.0.1:2181, data under ./zoocore-data); `zoocore --config
//! zoo.cfg` reads ZooKeeper's configuration format. The subcommands move
//! data between ZooKeeper and zoocore (`import`, `export`) and print data
//! files (`inspect`); see src/migrate/.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use zoocore::config::Config;

// mimalloc is built with `no_thp` (Cargo.toml): with transparent huge pages
// its arenas were backed by 2 MiB pages that a sparse heap only partly
// uses, which cost 22 MiB at start and about 90 MiB more with a million
// znodes (docs/memory.md). Freed memory goes back to the OS after
// mimalloc's purge delay (10 ms, 100 ms for arenas).
//
// It is mimalloc v2 (the `v2` feature), not the crate's default v3: under
// a setData rewrite of a million znodes, v3 did not reuse the freed tree
// blocks (it abandons full pages and offers them again only once an eighth
// is free), so its committed memory grew by half while the live bytes
// stayed flat: peak RSS 1.8x the steady figure, against 1.3x with v2
// (docs/memory.md, "Fourth pass"). Restarts, reads and the steady figure
// measured the same.
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
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Reads a ZooKeeper 3.5-3.9 data directory (its newest valid snapshot
    /// and the transaction logs after it) into the empty zoocore data
    /// directory that zoo.cfg names.
    Import {
        /// ZooKeeper's dataDir (holding version-2/snapshot.*).
        #[arg(long, value_name = "ZK_DATA_DIR")]
        from: PathBuf,
        /// ZooKeeper's dataLogDir, when it is not its dataDir.
        #[arg(long, value_name = "ZK_DATALOG_DIR")]
        log_dir: Option<PathBuf>,
        /// The zoocore configuration whose dataDir/dataLogDir receive the data.
        #[arg(long, short, value_name = "PATH")]
        config: PathBuf,
    },
    /// Writes the zoocore data (server stopped) as a ZooKeeper snapshot and
    /// an empty transaction log under DIR/version-2; ZooKeeper started with
    /// dataDir=DIR serves the same tree.
    Export {
        /// ZooKeeper's dataDir to write.
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
        /// ZooKeeper's dataLogDir, when it is not its dataDir.
        #[arg(long, value_name = "DIR")]
        log_dir: Option<PathBuf>,
        /// The zoocore configuration whose data is exported (default: the
        /// embedded default, data under ./zoocore-data).
        #[arg(long, short, value_name = "PATH")]
        config: Option<PathBuf>,
    },
    /// Prints a ZooKeeper or zoocore log or snapshot file, as ZooKeeper's
    /// zkTxnLogToolkit.sh and zkSnapShotToolkit.sh do.
    Inspect {
        kind: InspectKind,
        path: PathBuf,
        /// One JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum InspectKind {
    Log,
    Snapshot,
}

fn load_config(path: Option<&Path>) -> Result<Config, ExitCode> {
    match path {
        Some(path) => Config::from_file(path).map_err(|error| {
            eprintln!("zoocore: {error}");
            ExitCode::from(2)
        }),
        None => Ok(Config::default()),
    }
}

/// Runs a subcommand: its report on stdout, an error on stderr and exit 1.
fn run_command(command: Command) -> ExitCode {
    use zoocore::migrate;
    let result = match command {
        Command::Import { from, log_dir, config } => {
            let config = match load_config(Some(&config)) {
                Ok(config) => config,
                Err(code) => return code,
            };
            migrate::import(&from, log_dir.as_deref(), &config).map(|report| report.to_string())
        }
        Command::Export { to, log_dir, config } => {
            let config = match load_config(config.as_deref()) {
                Ok(config) => config,
                Err(code) => return code,
            };
            migrate::export(&config, &to, log_dir.as_deref()).map(|report| report.to_string())
        }
        Command::Inspect { kind, path, json } => {
            let kind = match kind {
                InspectKind::Log => migrate::inspect::Kind::Log,
                InspectKind::Snapshot => migrate::inspect::Kind::Snapshot,
            };
            migrate::inspect::inspect(kind, &path, json)
        }
    };
    match result {
        Ok(text) => {
            use std::io::Write;
            let mut stdout = std::io::stdout().lock();
            // A closed pipe (inspect | head) is not an error worth a panic.
            let _ = writeln!(stdout, "{}", text.trim_end());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("zoocore: {error}");
            ExitCode::from(1)
        }
    }
}

fn main() -> ExitCode {
    let mut arguments = Arguments::parse();
    if let Some(command) = arguments.command.take() {
        let filter = tracing_subscriber::EnvFilter::try_from_env("ZOOCORE_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
        return run_command(command);
    }
    let mut config = match load_config(arguments.config.as_deref()) {
        Ok(config) => config,
        Err(code) => return code,
    };
    // System properties reach ZooKeeper as -D flags through these variables
    // of its scripts (the JAAS file above all); read once, here.
    let jvm_flags: Vec<String> =
        ["SERVER_JVMFLAGS", "JVMFLAGS"].iter().filter_map(|name| std::env::var(name).ok()).collect();
    let jvm_flags: Vec<&str> = jvm_flags.iter().map(String::as_str).collect();
    if let Err(error) = config.apply_jvm_flags(&jvm_flags).and_then(|()| config.load_jaas()) {
        eprintln!("zoocore: {error}");
        return ExitCode::from(2);
    }
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
    if let (Some(credentials), Some(file)) = (&config.auth.sasl_credentials, &config.auth.jaas_config_file) {
        // User names only: the passwords never reach a log.
        tracing::info!(
            users = credentials.user_count(),
            file = %file.display(),
            section = %config.auth.sasl_server_section,
            "SASL DIGEST-MD5 enabled"
        );
    }
    if let (Some(acceptor), Some(file)) = (&config.auth.kerberos, &config.auth.jaas_config_file) {
        // The principal and the keytab's path: no key material.
        tracing::info!(
            principal = acceptor.principal(),
            key_tab = %acceptor.key_tab().display(),
            default_realm = acceptor.default_realm(),
            file = %file.display(),
            section = %config.auth.sasl_server_section,
            "SASL GSSAPI (Kerberos) enabled"
        );
    }
    // The secure port's stores are read now, so a bad file stops the start
    // with the key and the file named, like any configuration error.
    let tls = match config.tls.as_ref().map(zoocore::tls::load).transpose() {
        Ok(tls) => tls,
        Err(error) => {
            eprintln!("zoocore: {error}");
            return ExitCode::from(2);
        }
    };
    if let (Some(settings), Some(context)) = (config.tls.as_ref().filter(|settings| settings.cert_reload), &tls) {
        if let Err(error) = zoocore::tls::spawn_reloader(settings.clone(), context) {
            eprintln!("zoocore: cannot start the certificate reload thread (client.certReload): {error}");
            return ExitCode::from(1);
        }
    }
    // The peer links' stores likewise (sslQuorum, crate::tls::quorum).
    let quorum_tls = match config.quorum_tls.as_ref().map(zoocore::tls::quorum::load).transpose() {
        Ok(quorum_tls) => quorum_tls,
        Err(error) => {
            eprintln!("zoocore: {error}");
            return ExitCode::from(2);
        }
    };
    if let (Some(settings), Some(context)) =
        (config.quorum_tls.as_ref().filter(|settings| settings.tls.cert_reload), &quorum_tls)
    {
        if let Err(error) = zoocore::tls::quorum::spawn_reloader(settings.clone(), context) {
            eprintln!("zoocore: cannot start the certificate reload thread (sslQuorumReloadCertFiles): {error}");
            return ExitCode::from(1);
        }
    }
    // Scripts and tests read these lines; the client line comes last (the
    // plain port's, or the secure port's when it is the only one).
    let result = zoocore::server::run(config, ensemble, tls, quorum_tls, zoocore::admin::start, |listening| {
        if let Some(address) = listening.admin {
            println!("zoocore admin on {address}");
        }
        if let Some(address) = listening.metrics {
            println!("zoocore metrics on {address}");
        }
        if let Some(address) = listening.secure {
            println!("zoocore secure listening on {address}");
        }
        if let Some(address) = listening.client {
            println!("zoocore listening on {address}");
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("zoocore: {error}");
            ExitCode::from(1)
        }
    }
}
