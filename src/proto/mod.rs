//! The ZooKeeper client wire protocol: 4-byte big-endian framing around jute
//! records. `jute` reads and writes the primitives, `records` the shared
//! records, `request` and `response` the operations, `codes` the numbers.
//!
//! The codec is symmetric (requests and replies both encode and decode) so
//! the server, the load generator and the tests share one implementation.

pub mod codes;
pub mod jute;
pub mod records;
pub mod request;
pub mod response;

pub use codes::{CreateMode, ErrorCode};
pub use jute::{DecodeError, Reader, Writer};
pub use records::{Acl, ConnectRequest, ConnectResponse, Id, ReplyHeader, RequestHeader, Stat, WatcherEvent};
pub use request::{CreateRequest, MultiOp, Request, SetWatches};
pub use response::{ClientInfo, OpResult, Response};
