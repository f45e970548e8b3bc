//! The nodes a run works on, and their setup before and removal after it.
//!
//! Everything lives under `--root` (default `/zoocore-loadgen`):
//!
//! ```text
//! ROOT/keys/dD/kK     the --keys key nodes, --value-size bytes each,
//!                     D = K / --keys-per-directory
//! ROOT/new/cC-N       nodes made by the create operation of connection C
//!                     (the delete operation removes them in order)
//! ROOT/watch/wM       the watch workload's watched nodes
//! ROOT/lock/lock-N    the lock workload's ephemeral sequential nodes
//! ```
//!
//! Paths are written into reusable `String`s with [`push_decimal`], so
//! choosing a key costs no allocation once a buffer has grown to its longest
//! path. Setup runs in one session with a pipeline of creates (NodeExists is
//! fine, so a kept tree is reused); teardown lists and deletes the tree
//! depth-first, also pipelined (a child is first deleted as if it were a
//! leaf, and walked only when the server answers NotEmpty), so removing 100k keys takes seconds, not
//! minutes.

use std::time::Duration;

use zoocore::proto::codes::{op, CreateMode, ErrorCode};
use zoocore::proto::{Acl, CreateRequest, Request, Response};

use crate::wire::{ClientError, SyncClient};

/// The pipeline depth of setup and teardown.
const SETUP_PIPELINE_DEPTH: usize = 256;
/// How many requests setup builds before sending them (bounds its memory).
const SETUP_BATCH: usize = 4096;
/// The timeout of one setup or teardown request.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Appends the decimal digits of `value` without allocating.
#[inline]
pub fn push_decimal(out: &mut String, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut position = digits.len();
    loop {
        position -= 1;
        digits[position] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    // The bytes are ASCII digits.
    out.push_str(std::str::from_utf8(&digits[position..]).expect("ASCII digits"));
}

/// Names of the run's nodes.
#[derive(Debug, Clone)]
pub struct KeySpace {
    pub root: String,
    pub key_count: u64,
    pub keys_per_directory: u64,
}

impl KeySpace {
    pub fn new(root: &str, key_count: u64, keys_per_directory: u64) -> KeySpace {
        KeySpace { root: root.to_string(), key_count, keys_per_directory }
    }

    pub fn keys_directory(&self) -> String {
        format!("{}/keys", self.root)
    }

    pub fn new_directory(&self) -> String {
        format!("{}/new", self.root)
    }

    pub fn directory_count(&self) -> u64 {
        self.key_count.div_ceil(self.keys_per_directory)
    }

    /// Replaces `out` with the directory of `key`.
    #[inline]
    pub fn write_directory(&self, out: &mut String, key: u64) {
        out.clear();
        out.push_str(&self.root);
        out.push_str("/keys/d");
        push_decimal(out, key / self.keys_per_directory);
    }

    /// Replaces `out` with the path of `key`.
    #[inline]
    pub fn write_key(&self, out: &mut String, key: u64) {
        self.write_directory(out, key);
        out.push_str("/k");
        push_decimal(out, key);
    }

    /// Replaces `out` with the path of the `sequence`th node created by
    /// `connection`.
    #[inline]
    pub fn write_created(&self, out: &mut String, connection: u64, sequence: u64) {
        out.clear();
        out.push_str(&self.root);
        out.push_str("/new/c");
        push_decimal(out, connection);
        out.push('-');
        push_decimal(out, sequence);
    }
}

pub fn create_request(path: String, data: Vec<u8>, mode: CreateMode) -> Request {
    Request::Create(CreateRequest {
        opcode: op::CREATE,
        path,
        data: Some(data),
        acl: Acl::open_unsafe(),
        flags: mode.flags(),
        ttl_ms: -1,
    })
}

/// Why setup or teardown failed.
#[derive(Debug)]
pub enum SetupError {
    Client(ClientError),
    /// A create or delete came back with this error code for this path.
    Refused {
        path: String,
        code: i32,
    },
}

impl std::fmt::Display for SetupError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SetupError::Client(error) => write!(formatter, "{error}"),
            SetupError::Refused { path, code } => {
                write!(formatter, "{path}: error {code} ({:?})", ErrorCode::from_code(*code))
            }
        }
    }
}

impl From<ClientError> for SetupError {
    fn from(error: ClientError) -> Self {
        SetupError::Client(error)
    }
}

/// Creates the given persistent nodes in order (parents first), pipelined;
/// nodes that exist already are fine.
pub fn create_all(
    client: &mut SyncClient,
    paths: impl IntoIterator<Item = String>,
    value: &[u8],
) -> Result<u64, SetupError> {
    let mut created = 0;
    let mut batch: Vec<Request> = Vec::with_capacity(SETUP_BATCH);
    let mut paths = paths.into_iter().peekable();
    while paths.peek().is_some() {
        batch.clear();
        batch.extend(
            paths.by_ref().take(SETUP_BATCH).map(|path| create_request(path, value.to_vec(), CreateMode::Persistent)),
        );
        let codes = client.pipeline(&batch, SETUP_PIPELINE_DEPTH, CALL_TIMEOUT)?;
        for (request, code) in batch.iter().zip(codes) {
            match code {
                0 => created += 1,
                code if code == ErrorCode::NodeExists.code() => {}
                code => {
                    let Request::Create(create) = request else { unreachable!("setup only creates") };
                    return Err(SetupError::Refused { path: create.path.clone(), code });
                }
            }
        }
    }
    Ok(created)
}

/// Creates ROOT, ROOT/keys, its directories and the key nodes, and ROOT/new.
pub fn create_keys(client: &mut SyncClient, keys: &KeySpace, value: &[u8]) -> Result<u64, SetupError> {
    let mut scaffolding = vec![keys.root.clone(), keys.keys_directory(), keys.new_directory()];
    let mut directory = String::new();
    for directory_index in 0..keys.directory_count() {
        keys.write_directory(&mut directory, directory_index * keys.keys_per_directory);
        scaffolding.push(directory.clone());
    }
    create_all(client, scaffolding, &[])?;
    let key_paths = (0..keys.key_count).map(|key| {
        let mut path = String::new();
        keys.write_key(&mut path, key);
        path
    });
    create_all(client, key_paths, value)
}

/// Deletes `path` and everything below it, depth-first, pipelining the
/// deletes of each directory's children. A node that is already gone is fine.
pub fn delete_tree(client: &mut SyncClient, path: &str) -> Result<u64, SetupError> {
    let reply = client.call(&Request::GetChildren { path: path.to_string(), watch: false }, CALL_TIMEOUT)?;
    if reply.error_code() == ErrorCode::NoNode.code() {
        return Ok(0);
    }
    let mut deleted = 0;
    if let Some(Response::Children(children)) = reply.response {
        // Children are deleted as if they were leaves; the ones that turn
        // out to have children of their own (NotEmpty) are walked in turn.
        let leaves: Vec<String> = children.iter().map(|child| format!("{path}/{child}")).collect();
        for chunk in leaves.chunks(SETUP_BATCH) {
            let requests: Vec<Request> =
                chunk.iter().map(|leaf| Request::Delete { path: leaf.clone(), version: -1 }).collect();
            let codes = client.pipeline(&requests, SETUP_PIPELINE_DEPTH, CALL_TIMEOUT)?;
            for (leaf, code) in chunk.iter().zip(codes) {
                match code {
                    0 => deleted += 1,
                    code if code == ErrorCode::NoNode.code() => {}
                    code if code == ErrorCode::NotEmpty.code() => {
                        deleted += delete_tree(client, leaf)?;
                    }
                    code => return Err(SetupError::Refused { path: leaf.clone(), code }),
                }
            }
        }
    }
    let reply = client.call(&Request::Delete { path: path.to_string(), version: -1 }, CALL_TIMEOUT)?;
    match reply.error_code() {
        0 => Ok(deleted + 1),
        code if code == ErrorCode::NoNode.code() => Ok(deleted),
        code => Err(SetupError::Refused { path: path.to_string(), code }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_written_in_place() {
        let keys = KeySpace::new("/lg", 1000, 100);
        let mut path = String::with_capacity(64);
        keys.write_key(&mut path, 0);
        assert_eq!(path, "/lg/keys/d0/k0");
        keys.write_key(&mut path, 957);
        assert_eq!(path, "/lg/keys/d9/k957");
        keys.write_directory(&mut path, 957);
        assert_eq!(path, "/lg/keys/d9");
        keys.write_created(&mut path, 3, 18_446_744_073_709_551_615);
        assert_eq!(path, "/lg/new/c3-18446744073709551615");
        assert_eq!(keys.directory_count(), 10);
        assert_eq!(KeySpace::new("/lg", 1001, 100).directory_count(), 11);
    }
}
