//! Read-only mode (`readonlymode.enabled`), as ZooKeeper's
//! ReadOnlyZooKeeperServer: a member of a three-server ensemble whose two
//! peers are killed serves reads to clients that asked for read-only,
//! answers NotReadOnly to writes, says `ro` to `isro`, and goes back to
//! read-write (closing its read-only connections) when the quorum returns.
//! kazoo's side of the same story is tests/interop/read_only.py, run from
//! tests/interop.rs.
mod common;

use std::time::Duration;

use common::raw::{err, op, Conn, Enc};
use common::*;

const DEADLINE: Duration = Duration::from_secs(30);

#[test]
fn a_member_cut_off_from_its_quorum_serves_read_only_clients_until_the_quorum_returns() {
    if Server::external() {
        return;
    }
    let mut cluster = Cluster::start_with(3, 0, &["readonlymode.enabled=true"]);
    let leader = cluster.wait_for_leader(DEADLINE);
    let survivor = (leader + 1) % 3;
    let address = cluster.servers[survivor].addr().to_string();
    assert_eq!(four_letter(&address, "isro"), "rw");

    // Written through the survivor, so it has applied it when answered.
    let mut writer = Conn::connect(&address);
    assert_eq!(writer.create("/ro", b"kept", 0).err, err::OK);
    drop(writer);

    for (index, server) in cluster.servers.iter_mut().enumerate() {
        if index != survivor {
            server.kill();
        }
    }
    assert!(
        wait_for(DEADLINE, || four_letter(&address, "isro") == "ro"),
        "the survivor never went read-only: {:?}",
        cluster.modes()
    );
    assert_eq!(cluster.modes()[survivor], "read-only");
    let stat = four_letter(&address, "stat");
    assert!(stat.contains("Mode: read-only"), "{stat}");

    // A client that did not ask for read-only is turned away, as ZooKeeper
    // turns it away: no ConnectResponse, the connection closes.
    assert!(Conn::handshake_as(&address, 10_000, 0, &[0; 16], 0, false).is_err());

    let (mut client, answer) = Conn::handshake_as(&address, 10_000, 0, &[0; 16], 0, true).expect("read-only handshake");
    assert_eq!(answer.read_only, Some(true));
    assert_ne!(answer.session_id, 0);
    let reply = client.get_data("/ro", true);
    assert_eq!(reply.err, err::OK);
    assert_eq!(reply.dec().buf().as_deref(), Some(&b"kept"[..]));
    assert_eq!(client.exists("/ro", false).err, err::OK);
    let children = client.get_children("/", false);
    assert_eq!(children.err, err::OK);
    assert!(children.dec().strs().contains(&"ro".to_string()));
    assert_eq!(client.request(op::GET_ACL, &Enc::new().str("/ro").bytes()).err, err::OK);

    // Every write, and sync, is NotReadOnly; the connection stays.
    assert_eq!(client.create("/new", b"", 0).err, err::NOT_READ_ONLY);
    assert_eq!(client.set_data("/ro", b"changed", -1).err, err::NOT_READ_ONLY);
    assert_eq!(client.delete("/ro", -1).err, err::NOT_READ_ONLY);
    assert_eq!(client.request(op::SYNC, &Enc::new().str("/ro").bytes()).err, err::NOT_READ_ONLY);
    assert_eq!(client.get_data("/ro", false).err, err::OK);

    // The session's password is checked on a resume to this server.
    let (_, refused) =
        Conn::handshake_as(&address, 10_000, client.session_id, &[1; 16], 0, true).expect("wrong password answered");
    assert_eq!(refused.session_id, 0);
    let (mut resumed, answer) =
        Conn::handshake_as(&address, 10_000, client.session_id, &client.passwd, 0, true).expect("resume");
    assert_eq!((answer.session_id, answer.read_only), (client.session_id, Some(true)));
    assert_eq!(resumed.get_data("/ro", false).err, err::OK);

    // The quorum returns: read-only connections close, the survivor says
    // rw again, and a normal client writes through it.
    for (index, server) in cluster.servers.iter_mut().enumerate() {
        if index != survivor {
            server.restart();
        }
    }
    cluster.wait_for_leader(DEADLINE);
    resumed.set_read_timeout(DEADLINE);
    assert!(resumed.expect_closed(), "the read-only connection stayed open after a leader was found");
    assert_eq!(four_letter(&address, "isro"), "rw");
    // A new leader may close a handshake until its term's first entry
    // commits; clients retry, and so does this one.
    let (mut writer, answer) =
        wait_for_some(DEADLINE, || Conn::handshake_as(&address, 10_000, 0, &[0; 16], 0, true).ok())
            .expect("a handshake is answered once the quorum is back");
    assert_eq!(answer.read_only, Some(false), "a leader is known: a normal session");
    assert_eq!(writer.create("/after", b"", 0).err, err::OK);
}

#[test]
fn without_read_only_mode_a_member_cut_off_from_its_quorum_refuses_read_only_clients() {
    if Server::external() {
        return;
    }
    let mut cluster = Cluster::start(3, 0);
    let leader = cluster.wait_for_leader(DEADLINE);
    let survivor = (leader + 1) % 3;
    let address = cluster.servers[survivor].addr().to_string();
    for (index, server) in cluster.servers.iter_mut().enumerate() {
        if index != survivor {
            server.kill();
        }
    }
    assert!(wait_for(DEADLINE, || cluster.modes()[survivor] == "looking"), "{:?}", cluster.modes());
    assert_eq!(four_letter(&address, "isro"), "rw");
    assert!(Conn::handshake_as(&address, 10_000, 0, &[0; 16], 0, true).is_err());
}

#[test]
fn a_standalone_server_is_always_read_write() {
    if Server::external() {
        return;
    }
    let server = Server::start_with(&["readonlymode.enabled=true"]);
    assert_eq!(server.four_letter("isro"), "rw");
    let (mut client, answer) = Conn::handshake_as(server.addr(), 10_000, 0, &[0; 16], 0, true).expect("handshake");
    assert_eq!(answer.read_only, Some(false));
    assert_eq!(client.create("/standalone", b"", 0).err, err::OK);
}
