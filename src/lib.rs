//! zoocore: a ZooKeeper-compatible coordination server, built shard-per-core.
//! See docs/ARCHITECTURE.md for the modules and the path of a request.

pub mod acl;
pub mod admin;
pub mod auth;
pub mod clock;
pub mod config;
pub mod ensemble;
pub mod limits;
pub mod metrics;
pub mod migrate;
pub mod node;
pub mod ops;
pub mod prep;
pub mod proto;
pub mod read;
pub mod replica;
pub mod reply;
pub mod server;
pub mod session;
pub mod sim;
pub mod snapshot;
pub mod tls;
pub mod tree;
pub mod wal;
pub mod watch;
