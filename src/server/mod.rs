//! The glommio shell: executors, listeners, cross-core channels. All
//! decisions live in the IO-free modules (prep, tree, read, watch, session);
//! this module moves bytes and messages between them.

mod broadcast;
pub mod close;
mod connection;
pub mod control;

mod log;
mod memory;
mod messages;
mod outbox;
pub mod peer;
mod queue;
mod shard;
mod shared;
mod signals;
mod snapshot_stream;

pub use crate::ops::{full_version, ConnectionInfo, EnsembleView, ServerView, ZOOKEEPER_API_VERSION};
pub use shared::Shared;
pub use signals::STOP_DEADLINE;

use std::net::SocketAddr;
use std::sync::Arc;

use glommio::channels::shared_channel;
use glommio::{LocalExecutorBuilder, Placement};
use tracing::info;

use crate::config::Config;
use crate::prep::PrepSettings;
use crate::tree::Tree;

/// Awaits a glommio shared-channel `connect`, waking the executor every
/// 5 ms meanwhile. glommio's connect future waits for the peer through a
/// list the reactor only looks at when it wakes for another reason, so an
/// executor that falls asleep while connecting can miss the peer for ever
/// (seen here: a start that hung until a debugger attached).
pub(crate) async fn connecting<T>(connect: impl std::future::Future<Output = T>) -> T {
    futures_lite::future::or(connect, async {
        loop {
            glommio::timer::Timer::new(std::time::Duration::from_millis(5)).await;
        }
    })
    .await
}

/// glommio refuses to start below this soft RLIMIT_MEMLOCK.
const MEMLOCK_BYTES_MIN: u64 = 512 * 1024;

/// Checks the locked-memory limit glommio needs, with advice on failure.
pub fn check_memlock() -> Result<(), String> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we pass and reads nothing else.
    let result = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) };
    if result != 0 {
        return Ok(());
    }
    if limit.rlim_cur != libc::RLIM_INFINITY && limit.rlim_cur < MEMLOCK_BYTES_MIN {
        return Err(format!(
            "the locked-memory limit (ulimit -l) is {} KiB; zoocore's io_uring runtime needs at least {} KiB. \
             Raise it with `ulimit -l 8192` in this shell, LimitMEMLOCK=infinity in a systemd unit, \
             or a memlock line in /etc/security/limits.conf",
            limit.rlim_cur / 1024,
            MEMLOCK_BYTES_MIN / 1024
        ));
    }
    Ok(())
}

/// The key of session passwords, fresh at every start.
fn random_secret() -> Result<[u8; 16], String> {
    use std::io::Read;
    let mut secret = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut file| file.read_exact(&mut secret))
        .map_err(|error| format!("cannot read /dev/urandom for session passwords: {error}"))?;
    Ok(secret)
}

/// The operations' listeners, once started: an executor to join at the
/// stop, and the addresses of the AdminServer and the metrics page.
pub struct OperationsStarted {
    pub executor: Option<glommio::ExecutorJoinHandle<()>>,
    pub admin: Option<SocketAddr>,
    pub metrics: Option<SocketAddr>,
}

/// Where a started server listens.
#[derive(Debug, Clone, Copy)]
pub struct Listening {
    /// The plain client port; None when only `secureClientPort` is set.
    pub client: Option<SocketAddr>,
    /// The TLS client port (`secureClientPort`), if on.
    pub secure: Option<SocketAddr>,
    /// The AdminServer, if on and bound.
    pub admin: Option<SocketAddr>,
    /// The Prometheus page, if on and bound.
    pub metrics: Option<SocketAddr>,
}

/// Starts the server and blocks until it stops (SIGTERM or SIGINT stop it
/// cleanly): standalone, or the member of `ensemble` this server is.
/// `tls` is the secure client port's loaded configuration (crate::tls),
/// given when `secureClientPort` is set. `start_operations` starts what
/// an operator reads the server through (the AdminServer and the metrics
/// page: `crate::admin::start`), handed in by the binary that composes the
/// pieces so that the shell does not depend on them; it gets the server as
/// the operations layer's read-only view (`crate::ops::ServerView`). `on_listening` is
/// called once every shard accepts connections.
pub fn run(
    config: Config,
    ensemble: Option<crate::ensemble::Ensemble>,
    tls: Option<crate::tls::TlsContext>,
    quorum_tls: Option<crate::tls::quorum::QuorumTls>,
    start_operations: impl FnOnce(Arc<dyn ServerView>) -> Result<OperationsStarted, String>,
    on_listening: impl FnOnce(&Listening),
) -> Result<(), String> {
    check_memlock()?;
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|error| format!("cannot create dataDir {}: {error}", config.data_dir.display()))?;
    let shard_count = config.effective_shard_count();
    let cpus = std::thread::available_parallelism().map(|count| count.get()).unwrap_or(1);
    let settings = PrepSettings {
        extended_types_enabled: config.extended_types_enabled,
        reconfig_enabled: config.reconfig_enabled,
        enforce_quota: config.tunables.enforce_quota,
    };
    // An ensemble member serves clients where its server line says.
    let member_address = ensemble.as_ref().and_then(|ensemble| ensemble.me().client_address);
    let plain_address = match member_address {
        Some(address) => Some(address),
        None => config.plain_client_port_enabled().then(|| config.client_socket_address()),
    };
    let secure_address = config.secure_client_socket_address();
    if secure_address.is_some() != tls.is_some() {
        return Err("secureClientPort needs its loaded TLS configuration (and only it)".to_string());
    }
    let shared = Shared::new(config, Tree::new(), shard_count);
    signals::install(shared.clone())?;
    let OperationsStarted { executor: admin, admin: admin_address, metrics: metrics_address } =
        start_operations(shared.clone())?;

    let mut to_broadcast_receivers = Vec::new();
    let mut to_broadcast_senders = Vec::new();
    let mut to_shard_senders = Vec::new();
    let mut to_shard_receivers = Vec::new();
    for _ in 0..shard_count {
        let (sender, receiver) = shared_channel::new_bounded(messages::TO_BROADCAST_QUEUE_MESSAGES_MAX);
        to_broadcast_senders.push(sender);
        to_broadcast_receivers.push(receiver);
        let (sender, receiver) = shared_channel::new_bounded(messages::TO_SHARD_QUEUE_MESSAGES_MAX);
        to_shard_senders.push(sender);
        to_shard_receivers.push(receiver);
    }

    let mut executors = Vec::new();
    // The broadcast core recovers the state and publishes it before any
    // shard starts serving.
    let (ready_sender, ready_receiver) = std::sync::mpsc::channel::<Result<(), String>>();
    let core_shared = shared.clone();
    let secret = random_secret()?;
    executors.push(
        LocalExecutorBuilder::new(Placement::Unbound)
            .name("zoocore-broadcast")
            .spawn(move || async move {
                match broadcast::BroadcastCore::start(core_shared, ensemble, settings, secret, quorum_tls).await {
                    Ok(core) => {
                        let _ = ready_sender.send(Ok(()));
                        core.run(to_broadcast_receivers, to_shard_senders).await;
                    }
                    Err(error) => {
                        let _ = ready_sender.send(Err(error.to_string()));
                    }
                }
            })
            .map_err(|error| format!("cannot start the broadcast core: {error}"))?,
    );
    ready_receiver.recv().map_err(|_| "the broadcast core stopped during recovery".to_string())??;

    let mut plain_listen = plain_address;
    let mut secure_listen = secure_address;
    for (id, (sender, receiver)) in to_broadcast_senders.into_iter().zip(to_shard_receivers).enumerate() {
        let (bound_sender, bound_receiver) = std::sync::mpsc::channel();
        let shared = shared.clone();
        let listen = shard::Listen { plain: plain_listen, secure: secure_listen.zip(tls.clone()) };
        let placement = if shard_count <= cpus { Placement::Fixed(id) } else { Placement::Unbound };
        executors.push(
            LocalExecutorBuilder::new(placement)
                .name(&format!("zoocore-shard-{id}"))
                .spawn(move || shard::run(id, shared, listen, sender, receiver, bound_sender))
                .map_err(|error| format!("cannot start shard {id}: {error}"))?,
        );
        // The first shard may bind port 0; the others join its ports.
        let bound = bound_receiver.recv().map_err(|_| format!("shard {id} stopped before listening"))??;
        plain_listen = bound.plain;
        secure_listen = bound.secure;
    }
    if let Ok(mut address) = shared.client_address.lock() {
        *address = plain_listen;
    }
    signals::serving();
    if let Some(address) = secure_listen {
        info!(address = %address, shards = shard_count, "zoocore listening for TLS clients (secureClientPort)");
    }
    if let Some(address) = plain_listen {
        info!(address = %address, shards = shard_count, "zoocore listening");
    }
    on_listening(&Listening {
        client: plain_listen,
        secure: secure_listen,
        admin: admin_address,
        metrics: metrics_address,
    });
    for executor in executors {
        executor.join().map_err(|error| format!("executor failed: {error}"))?;
    }
    if let Some(admin) = admin {
        admin.join().map_err(|error| format!("admin executor failed: {error}"))?;
    }
    info!("zoocore stopped");
    Ok(())
}
