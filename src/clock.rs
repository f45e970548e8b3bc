//! The one reading of the wall clock.
//!
//! Wall time only labels things for people and for ZooKeeper's wire fields
//! (ctime and mtime, a connection's established time, a snapshot's age,
//! the name of a folder of truncated segments); every decision runs on
//! monotonic time, handed to the IO-free modules as an argument. A clock
//! set before 1970 reads as 0 rather than failing.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch of `time`.
pub fn epoch_ms(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis() as i64)
}

/// Milliseconds since the Unix epoch, now.
pub fn wall_ms() -> i64 {
    epoch_ms(SystemTime::now())
}
