//! The tree digest as a client can check it: ZooKeeper's `hash` lines,
//! writes up to a zxid the history logs, and the digest recomputed from
//! what reads return (path, data and Stat of every znode), independently
//! of the server's code.

use std::time::Duration;

use super::raw::{op, Conn, Enc};
use super::{wait_for, Server};
use zoocore::tree::DIGEST_LOG_INTERVAL;

/// How long a member just restarted may take before it gives sessions.
const MEMBER_READY_DEADLINE: Duration = Duration::from_secs(20);

/// Every member of `servers` logged a digest at `zxid`, the same on all,
/// and equal to the digest recomputed from what each serves after a sync:
/// the members hold identical trees. Returns each member's (zxid, digest).
pub fn members_agree_at(servers: &[Server], zxid: i64) -> Vec<(i64, u64)> {
    let mut logged = Vec::new();
    for (index, server) in servers.iter().enumerate() {
        // A member just restarted may refuse sessions until it follows.
        let mut reader = None;
        assert!(
            wait_for(MEMBER_READY_DEADLINE, || {
                reader = Conn::handshake(server.addr(), 10_000, 0, &[0; 16], 0)
                    .ok()
                    .filter(|(_, answer)| answer.session_id != 0)
                    .map(|(conn, _)| conn);
                reader.is_some()
            }),
            "member {index} takes no session"
        );
        let mut reader = reader.unwrap();
        assert_eq!(reader.request(op::SYNC, &Enc::new().str("/").bytes()).err, 0, "sync on member {index}");
        let history = parse_hash(&server.four_letter("hash"));
        let at = *history
            .iter()
            .find(|(logged_zxid, _)| *logged_zxid == zxid)
            .unwrap_or_else(|| panic!("member {index} logged no digest at {zxid:#x}: {history:?}"));
        assert_eq!(at.1, digest_by_reading(&mut reader), "member {index}'s digest at {zxid:#x}");
        logged.push(at);
    }
    assert!(logged.windows(2).all(|pair| pair[0] == pair[1]), "members disagree at {zxid:#x}: {logged:?}");
    logged
}

/// `hash` as ZooKeeper's DigestCommand prints it: one `hexzxid: decimal`
/// line per logged digest. Panics on any other line.
pub fn parse_hash(text: &str) -> Vec<(i64, u64)> {
    text.lines()
        .map(|line| {
            let (zxid, digest) = line.split_once(": ").unwrap_or_else(|| panic!("not a hash line: {line:?}"));
            assert!(zxid.bytes().all(|byte| byte.is_ascii_hexdigit() && !byte.is_ascii_uppercase()), "{line:?}");
            assert!(!digest.is_empty() && digest.bytes().all(|byte| byte.is_ascii_digit()), "{line:?}");
            (i64::from_str_radix(zxid, 16).unwrap(), digest.parse().unwrap())
        })
        .collect()
}

/// Sets `path`'s data until a write lands on a zxid the digest history logs
/// (a multiple of its interval) of at least `at_least`, and returns that
/// zxid. Writes are pipelined, as many as should reach the target; with no
/// other writer each takes the next zxid, and a shortfall or an overshoot
/// (a zxid taken by something else) only means another round.
pub fn write_until_logged(conn: &mut Conn, path: &str, at_least: i64) -> i64 {
    let mut last = conn.set_data(path, b"start", -1);
    assert_eq!(last.err, 0, "setData {path}");
    loop {
        let zxid = last.dec().stat().mzxid;
        if zxid >= at_least && zxid % DIGEST_LOG_INTERVAL == 0 {
            return zxid;
        }
        // The first logged zxid above the last write and not below `at_least`.
        let target = (zxid.max(at_least - 1) / DIGEST_LOG_INTERVAL + 1) * DIGEST_LOG_INTERVAL;
        let count = (target - zxid) as usize;
        let mut sent = Vec::with_capacity(count);
        for round in 0..count {
            let body = Enc::new().str(path).buf(format!("{round}").as_bytes()).i32(-1).bytes();
            sent.push(conn.send(op::SET_DATA, &body).expect("send setData"));
        }
        for xid in sent {
            last = conn.read_reply().expect("setData reply");
            assert_eq!((last.xid, last.err), (xid, 0), "setData {path}");
        }
    }
}

/// CRC-32 (IEEE, java.util.zip.CRC32), bit by bit.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// The digest of the tree `conn`'s server shows, from its reads alone, by
/// ZooKeeper's rules (DigestCalculator): each znode's CRC of path ("" for
/// the root), data and its persisted Stat, summed; nothing below
/// `/zookeeper/`. A client sees cversion as 2 * creates - children, so the
/// persisted create counter is (cversion + children) / 2. The tree must
/// not change meanwhile and hold no container or TTL node (their owner
/// markers are not shown to clients).
pub fn digest_by_reading(conn: &mut Conn) -> u64 {
    let mut sum = 0u64;
    let mut stack = vec!["/".to_string()];
    while let Some(path) = stack.pop() {
        let reply = conn.get_data(&path, false);
        assert_eq!(reply.err, 0, "getData {path}");
        let mut decoder = reply.dec();
        let data = decoder.buf();
        let stat = decoder.stat();
        if !path.starts_with("/zookeeper/") {
            let mut bytes = if path == "/" { Vec::new() } else { path.as_bytes().to_vec() };
            bytes.extend_from_slice(data.as_deref().unwrap_or_default());
            for field in [stat.czxid, stat.mzxid, stat.pzxid, stat.ctime, stat.mtime] {
                bytes.extend_from_slice(&field.to_be_bytes());
            }
            let creates = (stat.cversion + stat.num_children) / 2;
            for field in [stat.version, creates, stat.aversion] {
                bytes.extend_from_slice(&field.to_be_bytes());
            }
            bytes.extend_from_slice(&stat.ephemeral_owner.to_be_bytes());
            sum = sum.wrapping_add(u64::from(crc32(&bytes)));
        }
        let children = conn.get_children(&path, false);
        assert_eq!(children.err, 0, "getChildren {path}");
        for child in children.dec().strs() {
            stack.push(if path == "/" { format!("/{child}") } else { format!("{path}/{child}") });
        }
    }
    sum
}
