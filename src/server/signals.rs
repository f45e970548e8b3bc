//! SIGTERM and SIGINT start a clean stop (`Shared::stop`): listeners stop
//! accepting, shards wait for the writes they forwarded, the broadcast core
//! commits what is in flight and exits, and `run` returns. A second signal,
//! or a stop that takes longer than `STOP_DEADLINE`, ends the process at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tracing::error;

use super::Shared;

pub use crate::limits::STOP_DEADLINE;

/// True from `install` until the server serves (`serving`). Recovery of a
/// large data directory can take long and serves nobody, so a stop signal
/// meanwhile ends the process at once instead of waiting for it: nothing is
/// lost, recovery starts over at the next start, and every change recovery
/// makes to files is safe at any instant, as after a crash.
static RECOVERING: AtomicBool = AtomicBool::new(false);

/// Called once every shard listens: from now on a stop signal stops
/// cleanly.
pub fn serving() {
    RECOVERING.store(false, Ordering::SeqCst);
}

fn name(signal: i32) -> &'static str {
    match signal {
        SIGTERM => "SIGTERM",
        SIGINT => "SIGINT",
        _ => "signal",
    }
}

/// Starts the thread that turns SIGTERM and SIGINT into a clean stop.
pub fn install(shared: Arc<Shared>) -> Result<(), String> {
    RECOVERING.store(true, Ordering::SeqCst);
    let mut signals =
        Signals::new([SIGTERM, SIGINT]).map_err(|error| format!("cannot handle SIGTERM and SIGINT: {error}"))?;
    std::thread::Builder::new()
        .name("zoocore-signals".into())
        .spawn(move || {
            let mut received = 0;
            for signal in signals.forever() {
                if RECOVERING.load(Ordering::SeqCst) {
                    tracing::warn!(signal = name(signal), "stop signal during recovery; exiting now, before serving");
                    std::process::exit(0);
                }
                received += 1;
                if received == 1 {
                    shared.stop(&format!("received {}", name(signal)));
                    std::thread::Builder::new()
                        .name("zoocore-stop-deadline".into())
                        .spawn(|| {
                            std::thread::sleep(STOP_DEADLINE);
                            error!(deadline_s = STOP_DEADLINE.as_secs(), "clean stop took too long; exiting now");
                            std::process::exit(1);
                        })
                        .ok();
                } else {
                    error!(signal = name(signal), "second stop signal; exiting now without a clean stop");
                    std::process::exit(1);
                }
            }
        })
        .map_err(|error| format!("cannot start the signal thread: {error}"))?;
    Ok(())
}
