//! Giving freed memory back while the server is idle.
//!
//! mimalloc (the binary's allocator) purges freed pages after a short
//! delay, but only when the thread that freed them calls into the allocator
//! again. An executor that goes quiet right after a burst (a bulk load of
//! large znodes, a snapshot, a client that sent a lot and left) would keep
//! that memory for as long as it stays quiet: measured 188 MiB of RSS after
//! loading 30 znodes of 1 MB instead of 113 MiB. Each executor therefore
//! asks mimalloc to collect on its periodic checks while it sees no
//! activity, a few times: blocks another thread frees (a shard dropping the
//! last reference to an old tree version the broadcast core built) reach
//! their owner's heap later, and mimalloc purges a page only after its
//! delay has passed. Under load the allocator runs all the time and purges
//! by itself, so nothing is done then.

/// Idle checks in a row that collect, before the executor stops asking
/// until it has worked again.
pub const IDLE_COLLECTIONS_MAX: u32 = 4;

/// Watches one executor's activity counter between periodic checks.
#[derive(Debug, Default)]
pub struct IdleCollector {
    last_activity: u64,
    idle_collections: u32,
}

impl IdleCollector {
    /// Called from the executor's own periodic task with a counter that
    /// grows with its work; collects on the first idle checks in a row.
    pub fn check(&mut self, activity: u64) {
        if activity != self.last_activity {
            self.last_activity = activity;
            self.idle_collections = 0;
        } else if self.idle_collections < IDLE_COLLECTIONS_MAX {
            self.idle_collections += 1;
            collect(self.idle_collections == IDLE_COLLECTIONS_MAX);
        }
    }
}

/// Asks mimalloc to purge what this thread freed (it acts on the calling
/// thread's heap only); `force` also purges at once what would wait for
/// the purge delay. Harmless where mimalloc is not the global allocator:
/// its own heap is then empty.
fn collect(force: bool) {
    // SAFETY: mi_collect takes no pointers and may be called from any
    // thread at any time.
    unsafe { libmimalloc_sys::mi_collect(force) }
}
