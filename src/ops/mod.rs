//! Operations: what an operator reads of a running server. The monitor
//! values (mntr and the AdminServer's `monitor`), the Prometheus page, the
//! four-letter words and the admin commands.
//!
//! They are one layer because they answer the same questions from the same
//! state: each reads the server's shared state (`server::Shared`, the
//! published tree, the role) and the recorders of `crate::metrics`, and
//! writes text or JSON; none of them changes anything but trace masks and
//! counters an operator resets. `crate::metrics` stays a leaf that any
//! module feeds; the listeners that carry these answers (the client port
//! for four-letter words, the AdminServer's and the metrics' HTTP ports)
//! are the shell's, in `server/` and `admin/`.

pub mod commands;
pub mod fourletter;
pub mod monitor;
pub mod prometheus;

pub use monitor::{directory_sizes, file_descriptors, java_double, server_state, Entry, Kind, Monitor, Value};
pub use prometheus::render_prometheus;
