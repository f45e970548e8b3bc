//! Operations: what an operator reads of a running server. The monitor
//! values (mntr and the AdminServer's `monitor`), the Prometheus page, the
//! four-letter words and the admin commands.
//!
//! They are one layer because they answer the same questions from the same
//! state, and none of them changes anything but trace masks and counters an
//! operator resets. That state comes through one narrow, read-only view,
//! [`ServerView`] (view.rs): a trait with exactly the questions asked here
//! (configuration, start time, published tree, role and ensemble, counters,
//! connections, watches and sessions, trace mask, stop), which the shell's
//! `server::Shared` answers. So the dependency runs one way: server/ and
//! admin/ call into ops/ with a `&dyn ServerView`, and ops/ names neither
//! `crate::server` nor glommio (tests/tidy.rs keeps it so). ops/ does read
//! /proc and directory sizes, so it is not one of the IO-free modules.
//!
//! The plain data both sides name lives here rather than in server/: a
//! connection's counters ([`ConnectionInfo`], written by its shard), the
//! watch answers the shell merges from its shards ([`WatchSummary`],
//! [`WatchReport`], [`SessionBuckets`]), the ensemble view the broadcast
//! core keeps and its judgments, and the peer links' counters
//! ([`EnsembleView`], [`PeerStats`], ensemble.rs), and the version strings
//! (fourletter.rs). They are what an operator sees, so they sit with the
//! code that shows them; server/ re-exports the ones it names often. The
//! kinds of connection end ([`crate::metrics::CloseKind`]) are in metrics/
//! instead, beside the counters indexed by them, since metrics/ is the leaf
//! every module feeds.
//!
//! The listeners that carry these answers (the client port for four-letter
//! words, the AdminServer's and the metrics' HTTP ports) are the shell's,
//! in `server/` and `admin/`.

pub mod commands;
pub mod ensemble;
pub mod fourletter;
pub mod monitor;
pub mod prometheus;
pub mod view;

pub use ensemble::{EnsembleView, PeerStats, SYNCED_LAG_ENTRIES_MAX};
pub use fourletter::{full_version, ZOOKEEPER_API_VERSION};
pub use monitor::{
    directory_sizes, file_descriptors, java_double, latency_ms, server_state, Entry, Kind, Monitor, Value,
};
pub use prometheus::render_prometheus;
pub use view::{ConnectionInfo, ConnectionLatency, ServerView, SessionBuckets, WatchReport, WatchSummary};
