//! `zoocore inspect log|snapshot PATH [--json]`: the data toolkits. Prints a
//! ZooKeeper or zoocore transaction log or snapshot in readable form, as
//! ZooKeeper's zkTxnLogToolkit.sh and zkSnapShotToolkit.sh do, or as JSON
//! (one document: the file's header fields and its records).
//!
//! The kind of file is told by its magic number, not its name, so a file
//! copied under another name still reads; what the user asked (log or
//! snapshot) must match it. Every decoder used is the one import and the
//! server use, so damage is reported with the same file and offset.

use std::path::Path;

use serde_json::{json, Value};

use super::zkformat::{self, Compression, LogEnd, Txn};
use super::MigrateError;
use crate::proto::Acl;
use crate::snapshot;
use crate::tree::Tree;
use crate::wal::record::{decode_segment_header, Record, SEGMENT_MAGIC};
use crate::wal::replay::{scan_segment_version, SegmentEnd};

/// What the user asked to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Log,
    Snapshot,
}

/// The file formats `inspect` knows, by magic number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    ZookeeperSnapshot(Compression),
    ZookeeperLog,
    ZoocoreSnapshot,
    ZoocoreLog,
}

fn detect(bytes: &[u8]) -> Option<Format> {
    let magic = |expected: &[u8]| bytes.len() >= expected.len() && &bytes[..expected.len()] == expected;
    if magic(&zkformat::SNAPSHOT_MAGIC.to_be_bytes()) {
        Some(Format::ZookeeperSnapshot(Compression::None))
    } else if magic(&[0x1f, 0x8b]) {
        Some(Format::ZookeeperSnapshot(Compression::Gzip))
    } else if magic(&[0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0]) {
        Some(Format::ZookeeperSnapshot(Compression::Snappy))
    } else if magic(&zkformat::LOG_MAGIC.to_be_bytes()) {
        Some(Format::ZookeeperLog)
    } else if magic(&snapshot::MAGIC) {
        Some(Format::ZoocoreSnapshot)
    } else if magic(&SEGMENT_MAGIC) {
        Some(Format::ZoocoreLog)
    } else {
        None
    }
}

/// Reads `path` and returns its contents as text, or as JSON.
pub fn inspect(kind: Kind, path: &Path, as_json: bool) -> Result<String, MigrateError> {
    let bytes = std::fs::read(path).map_err(|source| MigrateError::Io {
        path: path.to_path_buf(),
        operation: "read",
        source,
    })?;
    let refuse = |reason: String| MigrateError::Refused { path: path.to_path_buf(), reason };
    let format = detect(&bytes).ok_or_else(|| {
        refuse("not a ZooKeeper (ZKSN, ZKLG, gz, snappy) or zoocore (ZOOSNAP, ZCWL) log or snapshot".to_string())
    })?;
    let document = match (kind, format) {
        (Kind::Snapshot, Format::ZookeeperSnapshot(compression)) => zookeeper_snapshot(path, &bytes, compression)?,
        (Kind::Log, Format::ZookeeperLog) => zookeeper_log(path, &bytes)?,
        (Kind::Snapshot, Format::ZoocoreSnapshot) => zoocore_snapshot(path, &bytes)?,
        (Kind::Log, Format::ZoocoreLog) => zoocore_log(path, &bytes)?,
        (Kind::Log, _) => return Err(refuse("is a snapshot, not a log: use `inspect snapshot`".to_string())),
        (Kind::Snapshot, _) => return Err(refuse("is a log, not a snapshot: use `inspect log`".to_string())),
    };
    Ok(if as_json { serde_json::to_string_pretty(&document).expect("a JSON value") } else { as_text(&document) })
}

/// Data as text when it is printable UTF-8, else as hex (ZooKeeper's
/// toolkit prints it through a String too).
fn data_value(data: Option<&[u8]>) -> Value {
    match data {
        None => Value::Null,
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) if !text.chars().any(|c| c.is_control()) => json!({ "text": text }),
            _ => json!({ "hex": hex(bytes) }),
        },
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn acl_value(acl: &[Acl]) -> Value {
    Value::Array(
        acl.iter().map(|entry| json!(format!("{}:{}:{}", entry.id.scheme, entry.id.id, entry.perms))).collect(),
    )
}

fn zxid(value: i64) -> String {
    format!("{value:#x}")
}

fn zookeeper_snapshot(path: &Path, bytes: &[u8], compression: Compression) -> Result<Value, MigrateError> {
    let stream = zkformat::decompress(bytes, compression).map_err(|fault| MigrateError::Damaged {
        file: path.to_path_buf(),
        offset: fault.offset,
        compressed: false,
        reason: fault.reason,
    })?;
    let snapshot = zkformat::decode_snapshot(&stream).map_err(|fault| super::damaged(path, compression, fault))?;
    let acls: serde_json::Map<String, Value> =
        snapshot.acls.iter().map(|(key, list)| (key.to_string(), acl_value(list))).collect();
    let nodes: Vec<Value> = snapshot
        .nodes
        .iter()
        .map(|node| {
            let stat = node.stat;
            json!({
                "kind": "node",
                "path": if node.path.is_empty() { "/" } else { node.path.as_str() },
                "data": data_value(node.data.as_deref()),
                "acl": node.acl_key,
                "czxid": zxid(stat.czxid), "mzxid": zxid(stat.mzxid), "pzxid": zxid(stat.pzxid),
                "ctime": stat.ctime, "mtime": stat.mtime,
                "version": stat.version, "cversion": stat.cversion, "aversion": stat.aversion,
                "ephemeralOwner": zxid(stat.ephemeral_owner),
            })
        })
        .collect();
    let sessions: Vec<Value> = snapshot
        .sessions
        .iter()
        .map(|(id, timeout)| json!({ "kind": "session", "id": zxid(*id), "timeout": timeout }))
        .collect();
    Ok(json!({
        "file": path.display().to_string(),
        "format": "ZooKeeper snapshot",
        "compression": compression.name(),
        "dbid": snapshot.dbid,
        "acls": acls,
        "digest": snapshot.digest.map(|digest| json!({ "zxid": zxid(digest.zxid), "version": digest.version, "digest": digest.digest })),
        "records": sessions.into_iter().chain(nodes).collect::<Vec<Value>>(),
    }))
}

fn zookeeper_txn(kind: i32, txn: &Txn, client_id: i64) -> Value {
    let name = zkformat::opcode::name(kind);
    match txn {
        Txn::CreateSession { timeout_ms } => json!({ "type": name, "timeout": timeout_ms }),
        Txn::CloseSession { paths } => json!({ "type": name, "paths": paths }),
        Txn::Create { path, data, acl, ephemeral, parent_cversion } => json!({
            "type": name, "path": path, "data": data_value(data.as_deref()), "acl": acl_value(acl),
            "ephemeral": ephemeral, "ephemeralOwner": if *ephemeral { zxid(client_id) } else { zxid(0) },
            "parentCVersion": parent_cversion,
        }),
        Txn::CreateContainer { path, data, acl, parent_cversion } => json!({
            "type": name, "path": path, "data": data_value(data.as_deref()), "acl": acl_value(acl), "parentCVersion": parent_cversion,
        }),
        Txn::CreateTtl { path, data, acl, parent_cversion, ttl_ms } => json!({
            "type": name, "path": path, "data": data_value(data.as_deref()), "acl": acl_value(acl),
            "parentCVersion": parent_cversion, "ttl": ttl_ms,
        }),
        Txn::Delete { path } => json!({ "type": name, "path": path }),
        Txn::SetData { path, data, version } => {
            json!({ "type": name, "path": path, "data": data_value(data.as_deref()), "version": version })
        }
        Txn::SetAcl { path, acl, version } => {
            json!({ "type": name, "path": path, "acl": acl_value(acl), "version": version })
        }
        Txn::Check { path, version } => json!({ "type": name, "path": path, "version": version }),
        Txn::Error { code } => json!({ "type": name, "err": code }),
        Txn::Multi(operations) => json!({
            "type": name,
            "ops": operations.iter().map(|(kind, txn)| zookeeper_txn(*kind, txn, client_id)).collect::<Vec<Value>>(),
        }),
    }
}

fn zookeeper_log(path: &Path, bytes: &[u8]) -> Result<Value, MigrateError> {
    let log = zkformat::decode_log(bytes).map_err(|fault| super::damaged(path, Compression::None, fault))?;
    let records: Vec<Value> = log
        .records
        .iter()
        .map(|record| {
            let header = record.header;
            let mut value = zookeeper_txn(header.kind, &record.txn, header.client_id);
            let object = value.as_object_mut().expect("an object");
            object.insert("offset".into(), json!(record.offset));
            object.insert("time".into(), json!(header.time));
            object.insert("session".into(), json!(zxid(header.client_id)));
            object.insert("cxid".into(), json!(zxid(header.cxid as i64)));
            object.insert("zxid".into(), json!(zxid(header.zxid)));
            if let Some((version, digest)) = record.digest {
                object.insert("digest".into(), json!({ "version": version, "digest": digest }));
            }
            value
        })
        .collect();
    let end = match log.end {
        LogEnd::Clean => json!("clean"),
        LogEnd::Torn { offset, reason } => json!({ "torn_at": offset, "reason": reason }),
    };
    Ok(json!({
        "file": path.display().to_string(),
        "format": "ZooKeeper transaction log",
        "dbid": log.dbid,
        "end": end,
        "records": records,
    }))
}

fn zoocore_snapshot(path: &Path, bytes: &[u8]) -> Result<Value, MigrateError> {
    // The cluster id sits at header offset 16 (docs/formats/snapshot.md);
    // an inspection reads any cluster's file.
    let cluster_id =
        bytes.get(16..24).map(|field| u64::from_le_bytes(field.try_into().expect("8 bytes"))).ok_or_else(|| {
            MigrateError::Damaged {
                file: path.to_path_buf(),
                offset: bytes.len() as u64,
                compressed: false,
                reason: "shorter than the snapshot header".to_string(),
            }
        })?;
    let (tree, meta) =
        snapshot::read_file(path, cluster_id, None).map_err(|error| MigrateError::Zoocore(error.to_string()))?;
    let mut paths: Vec<&str> = tree.paths().map(|(path, _)| path).collect();
    paths.sort();
    let mut records: Vec<Value> = tree
        .sessions()
        .map(|session| json!({ "kind": "session", "id": zxid(session.id), "timeout": session.timeout_ms }))
        .collect();
    records.extend(paths.into_iter().map(|path| node_value(&tree, path)));
    Ok(json!({
        "file": path.display().to_string(),
        "format": "zoocore snapshot",
        "cluster_id": format!("{cluster_id:016x}"),
        "index": meta.index,
        "term": meta.term,
        "voters": meta.voters,
        "last_zxid": zxid(tree.last_zxid()),
        "records": records,
    }))
}

fn node_value(tree: &Tree, path: &str) -> Value {
    let node = tree.get(path).expect("a listed path");
    let stat = node.stat();
    json!({
        "kind": "node",
        "path": path,
        "data": data_value(node.data()),
        "acl": acl_value(node.acl()),
        "czxid": zxid(stat.czxid), "mzxid": zxid(stat.mzxid), "pzxid": zxid(stat.pzxid),
        "ctime": stat.ctime, "mtime": stat.mtime,
        "version": stat.version, "cversion": stat.cversion, "aversion": stat.aversion,
        "ephemeralOwner": zxid(node.ephemeral_owner()),
    })
}

fn zoocore_log(path: &Path, bytes: &[u8]) -> Result<Value, MigrateError> {
    let header = decode_segment_header(bytes).map_err(|problem| MigrateError::Damaged {
        file: path.to_path_buf(),
        offset: problem.offset(),
        compressed: false,
        reason: problem.to_string(),
    })?;
    let scan = scan_segment_version(bytes, header.records_offset as u64, header.version);
    let mut records = Vec::with_capacity(scan.records.len());
    for scanned in &scan.records {
        let mut value = match &scanned.record {
            Record::Entry { index, term, entry_type, data } => {
                let mut value = json!({ "kind": "entry", "index": index, "term": term, "entry_type": entry_type });
                if *entry_type == 0 && !data.is_empty() {
                    match crate::replica::codec::decode(*index as i64, data) {
                        Ok((header, txn)) => {
                            value["time"] = json!(header.time_ms);
                            value["session"] = json!(zxid(header.session_id));
                            value["txn"] = json!(format!("{txn:?}"));
                        }
                        Err(error) => {
                            return Err(MigrateError::Damaged {
                                file: path.to_path_buf(),
                                offset: scanned.offset,
                                compressed: false,
                                reason: format!("entry {index}: its transaction does not decode: {error}"),
                            })
                        }
                    }
                }
                value
            }
            Record::HardState(state) => {
                json!({ "kind": "hard_state", "term": state.term, "vote": state.vote, "commit": state.commit })
            }
            Record::SnapshotMarker(marker) => {
                json!({ "kind": "snapshot_marker", "index": marker.index, "term": marker.term })
            }
            Record::TruncateSuffix { from_index } => json!({ "kind": "truncate_suffix", "from_index": from_index }),
        };
        value["offset"] = json!(scanned.offset);
        records.push(value);
    }
    let end = match &scan.end {
        SegmentEnd::Clean { offset } => json!({ "clean_at": offset }),
        SegmentEnd::Damaged { offset, damage, .. } => json!({ "damaged_at": offset, "reason": damage.to_string() }),
    };
    Ok(json!({
        "file": path.display().to_string(),
        "format": "zoocore log segment",
        "cluster_id": format!("{:016x}", header.cluster_id),
        "first_index": header.first_index,
        "end": end,
        "records": records,
    }))
}

/// One line for the header fields, then one line per record.
fn as_text(document: &Value) -> String {
    let mut out = String::new();
    let Some(object) = document.as_object() else { return document.to_string() };
    let mut header = Vec::new();
    for (key, value) in object {
        if key != "records" {
            header.push(format!("{key}={}", plain(value)));
        }
    }
    out.push_str(&header.join(" "));
    out.push('\n');
    for record in object.get("records").and_then(Value::as_array).into_iter().flatten() {
        let fields: Vec<String> =
            record.as_object().into_iter().flatten().map(|(key, value)| format!("{key}={}", plain(value))).collect();
        out.push_str(&fields.join(" "));
        out.push('\n');
    }
    if let Some(end) = object.get("end") {
        if end.get("damaged_at").is_some() || end.get("torn_at").is_some() {
            out.push_str(&format!("DAMAGE in {}: {}\n", plain(&object["file"]), plain(end)));
        }
    }
    out
}

fn plain(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Object(map) if map.len() == 1 && (map.contains_key("text") || map.contains_key("hex")) => {
            match (map.get("text"), map.get("hex")) {
                (Some(text), _) => format!("{:?}", text.as_str().unwrap_or_default()),
                (_, Some(hex)) => format!("0x{}", hex.as_str().unwrap_or_default()),
                _ => value.to_string(),
            }
        }
        other => other.to_string(),
    }
}
