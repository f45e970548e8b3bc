//! zoocore: a ZooKeeper-compatible coordination server, built shard-per-core.
//! See docs/ARCHITECTURE.md for the modules and the path of a request.

pub mod proto;
