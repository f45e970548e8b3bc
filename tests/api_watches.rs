//! One-shot watches (getData/exists/getChildren), addWatch (persistent, persistent recursive),
//! checkWatches/removeWatches, event-before-reply ordering, and SetWatches on reconnect.
//! Validated against ZooKeeper 3.8.0.
mod common;

use std::time::Duration;

use common::raw::{err, op, Conn, Enc, RawEvent};
use common::*;
use zk::{AddWatchMode, EventType};
use zookeeper_client as zk;

// Wire values of Watcher.Event.EventType / KeeperState.
const NODE_CREATED: i32 = 1;
const NODE_DELETED: i32 = 2;
const NODE_DATA_CHANGED: i32 = 3;
const NODE_CHILDREN_CHANGED: i32 = 4;
const SYNC_CONNECTED: i32 = 3;

fn ev(t: i32, path: &str) -> RawEvent {
    RawEvent { event_type: t, state: SYNC_CONNECTED, path: path.to_string() }
}

/// Flushes notifications: any event caused by a write that completed before this call is
/// delivered before this request's reply.
fn flush(r: &mut Conn) -> Vec<RawEvent> {
    assert_eq!(r.request(op::EXISTS, &Enc::new().str("/").bool(false).bytes()).err, 0);
    r.events.drain(..).collect()
}

#[tokio::test]
async fn data_watch_fires_once_on_change_and_delete() {
    let s = Server::start();
    let c = connect(s.addr()).await;
    let w = connect(s.addr()).await;
    let p = unique("watch-data");
    c.create(&p, b"", &persistent()).await.unwrap();

    let (_, _, watcher) = w.get_and_watch_data(&p).await.unwrap();
    c.set_data(&p, b"1", None).await.unwrap();
    let e = within(5, "NodeDataChanged", watcher.changed()).await;
    assert_eq!(e.event_type, EventType::NodeDataChanged);
    assert_eq!(e.path, p);
    assert_eq!(e.session_state, zk::SessionState::SyncConnected);

    let (_, _, watcher) = w.get_and_watch_data(&p).await.unwrap();
    c.delete(&p, None).await.unwrap();
    let e = within(5, "NodeDeleted", watcher.changed()).await;
    assert_eq!((e.event_type, e.path.as_str()), (EventType::NodeDeleted, p.as_str()));

    // getData with watch on a missing node fails and leaves no watch (exists would).
    assert_eq!(w.get_and_watch_data(&p).await.unwrap_err(), zk::Error::NoNode);
}

#[test]
fn oneshot_watches_fire_exactly_once_raw() {
    let s = Server::start();
    let mut c = Conn::connect(s.addr());
    let mut r = Conn::connect(s.addr());
    let p = unique("watch-once");
    assert_eq!(c.create(&p, b"", 0).err, 0);

    assert_eq!(r.get_data(&p, true).err, 0);
    assert_eq!(c.set_data(&p, b"1", -1).err, 0);
    assert_eq!(c.set_data(&p, b"2", -1).err, 0);
    assert_eq!(flush(&mut r), vec![ev(NODE_DATA_CHANGED, &p)], "one event for two changes");

    // Data and child watches on one path are independent; setting the same watch twice still
    // gives one event.
    assert_eq!(r.get_data(&p, true).err, 0);
    assert_eq!(r.get_data(&p, true).err, 0);
    assert_eq!(r.exists(&p, true).err, 0);
    assert_eq!(r.get_children(&p, true).err, 0);
    assert_eq!(c.create(&format!("{p}/c"), b"", 0).err, 0);
    assert_eq!(flush(&mut r), vec![ev(NODE_CHILDREN_CHANGED, &p)], "child create fires only the child watch");
    // setData on the parent fires the (single) data/exists watch, not a child watch.
    assert_eq!(c.set_data(&p, b"3", -1).err, 0);
    assert_eq!(flush(&mut r), vec![ev(NODE_DATA_CHANGED, &p)]);
    // Delete of the watched node with data + child watches: a single NodeDeleted.
    assert_eq!(r.get_data(&p, true).err, 0);
    assert_eq!(r.get_children(&p, true).err, 0);
    assert_eq!(c.delete(&format!("{p}/c"), -1).err, 0);
    assert_eq!(flush(&mut r), vec![ev(NODE_CHILDREN_CHANGED, &p)]);
    assert_eq!(r.get_children(&p, true).err, 0);
    assert_eq!(c.delete(&p, -1).err, 0);
    assert_eq!(flush(&mut r), vec![ev(NODE_DELETED, &p)], "data+child watch on a deleted node: one NodeDeleted");
}

#[tokio::test]
async fn exists_watch_on_missing_and_existing_nodes() {
    let s = Server::start();
    let c = connect(s.addr()).await;
    let w = connect(s.addr()).await;
    let p = unique("watch-exists");

    let (stat, watcher) = w.check_and_watch_stat(&p).await.unwrap();
    assert_eq!(stat, None);
    c.create(&p, b"", &persistent()).await.unwrap();
    let e = within(5, "NodeCreated", watcher.changed()).await;
    assert_eq!((e.event_type, e.path.as_str()), (EventType::NodeCreated, p.as_str()));

    let (stat, watcher) = w.check_and_watch_stat(&p).await.unwrap();
    assert!(stat.is_some());
    c.set_data(&p, b"x", None).await.unwrap();
    let e = within(5, "NodeDataChanged", watcher.changed()).await;
    assert_eq!(e.event_type, EventType::NodeDataChanged);

    let (_, watcher) = w.check_and_watch_stat(&p).await.unwrap();
    c.delete(&p, None).await.unwrap();
    let e = within(5, "NodeDeleted", watcher.changed()).await;
    assert_eq!(e.event_type, EventType::NodeDeleted);

    // An exists watch on a missing node also fires for an ephemeral created by another session.
    let (_, watcher) = w.check_and_watch_stat(&p).await.unwrap();
    c.create(&p, b"", &ephemeral()).await.unwrap();
    assert_eq!(within(5, "NodeCreated", watcher.changed()).await.event_type, EventType::NodeCreated);
}

#[tokio::test]
async fn child_watch_events() {
    let s = Server::start();
    let c = connect(s.addr()).await;
    let w = connect(s.addr()).await;
    let p = unique("watch-child");
    c.create(&p, b"", &persistent()).await.unwrap();

    let (children, watcher) = w.list_and_watch_children(&p).await.unwrap();
    assert!(children.is_empty());
    c.create(&format!("{p}/a"), b"", &persistent()).await.unwrap();
    let e = within(5, "NodeChildrenChanged", watcher.changed()).await;
    assert_eq!((e.event_type, e.path.as_str()), (EventType::NodeChildrenChanged, p.as_str()));

    let (children, _stat, watcher) = w.get_and_watch_children(&p).await.unwrap();
    assert_eq!(children, vec!["a"]);
    c.delete(&format!("{p}/a"), None).await.unwrap();
    let e = within(5, "NodeChildrenChanged", watcher.changed()).await;
    assert_eq!((e.event_type, e.path.as_str()), (EventType::NodeChildrenChanged, p.as_str()));

    let (_, watcher) = w.list_and_watch_children(&p).await.unwrap();
    c.delete(&p, None).await.unwrap();
    let e = within(5, "NodeDeleted", watcher.changed()).await;
    assert_eq!((e.event_type, e.path.as_str()), (EventType::NodeDeleted, p.as_str()));

    assert_eq!(w.list_and_watch_children(&p).await.unwrap_err(), zk::Error::NoNode);
}

#[test]
fn child_watch_ignores_grandchildren_and_data_raw() {
    let s = Server::start();
    let mut c = Conn::connect(s.addr());
    let mut r = Conn::connect(s.addr());
    let p = unique("watch-child-raw");
    assert_eq!(c.create(&p, b"", 0).err, 0);
    assert_eq!(c.create(&format!("{p}/a"), b"", 0).err, 0);
    assert_eq!(r.get_children(&p, true).err, 0);
    assert_eq!(c.create(&format!("{p}/a/b"), b"", 0).err, 0);
    assert_eq!(c.set_data(&p, b"x", -1).err, 0);
    assert_eq!(c.set_data(&format!("{p}/a"), b"x", -1).err, 0);
    assert!(flush(&mut r).is_empty(), "grandchild create and setData do not fire a child watch");
    // A child with a sequential name fires it.
    assert_eq!(c.create(&format!("{p}/s-"), b"", 2).err, 0);
    assert_eq!(flush(&mut r), vec![ev(NODE_CHILDREN_CHANGED, &p)]);
}

/// A notification caused by a write is delivered before the reply to that write, and before
/// the reply to any later request on the watching connection.
#[test]
fn watch_event_precedes_reply_raw() {
    let s = Server::start();
    let mut r = Conn::connect(s.addr());
    let p = unique("watch-order");
    assert_eq!(r.create(&p, b"", 0).err, 0);

    // The watcher itself writes: event frame first, then the setData reply.
    assert_eq!(r.get_data(&p, true).err, 0);
    let xid = r.send(op::SET_DATA, &Enc::new().str(&p).buf(b"1").i32(-1).bytes()).unwrap();
    let first = r.read_any().unwrap();
    assert_eq!(first.xid, -1, "notification before the reply");
    assert_eq!(first.zxid, -1, "notifications carry zxid -1 in the reply header");
    assert_eq!(first.err, 0);
    let mut d = first.dec();
    assert_eq!((d.i32(), d.i32(), d.str()), (NODE_DATA_CHANGED, SYNC_CONNECTED, p.clone()));
    let second = r.read_any().unwrap();
    assert_eq!((second.xid, second.err), (xid, 0));

    // Another session writes; the watcher's next read sees the event first, then new data.
    let mut c = Conn::connect(s.addr());
    assert_eq!(r.get_data(&p, true).err, 0);
    assert_eq!(c.set_data(&p, b"2", -1).err, 0);
    let xid = r.send(op::GET_DATA, &Enc::new().str(&p).bool(false).bytes()).unwrap();
    let first = r.read_any().unwrap();
    assert_eq!(first.xid, -1);
    let reply = r.read_any().unwrap();
    assert_eq!(reply.xid, xid);
    assert_eq!(reply.dec().buf().unwrap(), b"2");
}

#[tokio::test]
async fn watch_event_precedes_reply_crate() {
    let s = Server::start();
    let c = connect(s.addr()).await;
    let p = unique("watch-order-crate");
    c.create(&p, b"", &persistent()).await.unwrap();
    let (_, _, watcher) = c.get_and_watch_data(&p).await.unwrap();
    c.set_data(&p, b"x", None).await.unwrap();
    // The event was dispatched before the reply completed the set_data future.
    let e = tokio::time::timeout(Duration::ZERO, watcher.changed()).await.expect("event already delivered");
    assert_eq!(e.event_type, EventType::NodeDataChanged);
}

#[tokio::test]
async fn persistent_watch_is_not_removed_by_events() {
    let s = Server::start();
    let c = connect(s.addr()).await;
    let w = connect(s.addr()).await;
    let p = unique("watch-persistent");
    // Can be set on a missing node.
    let mut watcher = w.watch(&p, AddWatchMode::Persistent).await.unwrap();
    c.create(&p, b"", &persistent()).await.unwrap();
    c.set_data(&p, b"1", None).await.unwrap();
    c.set_data(&p, b"2", None).await.unwrap();
    c.create(&format!("{p}/child"), b"", &persistent()).await.unwrap();
    c.create(&format!("{p}/child/grandchild"), b"", &persistent()).await.unwrap(); // not seen
    c.set_data(&format!("{p}/child"), b"", None).await.unwrap(); // not seen
    c.delete(&format!("{p}/child/grandchild"), None).await.unwrap(); // not seen
    c.delete(&format!("{p}/child"), None).await.unwrap();
    c.delete(&p, None).await.unwrap();
    c.create(&p, b"", &persistent()).await.unwrap(); // still watching after delete
    let want = [
        (EventType::NodeCreated, p.clone()),
        (EventType::NodeDataChanged, p.clone()),
        (EventType::NodeDataChanged, p.clone()),
        (EventType::NodeChildrenChanged, p.clone()),
        (EventType::NodeChildrenChanged, p.clone()),
        (EventType::NodeDeleted, p.clone()),
        (EventType::NodeCreated, p.clone()),
    ];
    for (i, (t, path)) in want.iter().enumerate() {
        let e = within(5, "persistent event", watcher.changed()).await;
        assert_eq!((&e.event_type, &e.path), (t, path), "event {i}");
    }
}

#[tokio::test]
async fn persistent_recursive_watch_sees_descendants_without_child_events() {
    let s = Server::start();
    let c = connect(s.addr()).await;
    let w = connect(s.addr()).await;
    let p = unique("watch-recursive");
    c.create(&p, b"", &persistent()).await.unwrap();
    let mut watcher = w.watch(&p, AddWatchMode::PersistentRecursive).await.unwrap();
    c.create(&format!("{p}/a"), b"", &persistent()).await.unwrap();
    c.create(&format!("{p}/a/b"), b"", &persistent()).await.unwrap();
    c.set_data(&format!("{p}/a/b"), b"x", None).await.unwrap();
    c.set_data(&p, b"x", None).await.unwrap();
    c.delete(&format!("{p}/a/b"), None).await.unwrap();
    c.create(&format!("{p}x"), b"", &persistent()).await.unwrap(); // sibling with a common prefix: not seen
    c.delete(&format!("{p}/a"), None).await.unwrap();
    c.delete(&p, None).await.unwrap();
    let want = [
        (EventType::NodeCreated, format!("{p}/a")),
        (EventType::NodeCreated, format!("{p}/a/b")),
        (EventType::NodeDataChanged, format!("{p}/a/b")),
        (EventType::NodeDataChanged, p.clone()),
        (EventType::NodeDeleted, format!("{p}/a/b")),
        (EventType::NodeDeleted, format!("{p}/a")),
        (EventType::NodeDeleted, p.clone()),
    ];
    for (i, (t, path)) in want.iter().enumerate() {
        let e = within(5, "recursive event", watcher.changed()).await;
        assert_eq!((&e.event_type, &e.path), (t, path), "event {i}");
    }
}

#[test]
fn persistent_recursive_events_raw() {
    // On the wire: no NodeChildrenChanged for a recursive watch, and events of the subtree.
    let s = Server::start();
    let mut c = Conn::connect(s.addr());
    let mut r = Conn::connect(s.addr());
    let p = unique("watch-recursive-raw");
    assert_eq!(c.create(&p, b"", 0).err, 0);
    // addWatch reply: err 0, empty body.
    // addWatch reply: err 0 and a body of one int 0 (an ErrorResponse record).
    let rep = r.request(op::ADD_WATCH, &Enc::new().str(&p).i32(1).bytes());
    assert_eq!((rep.err, rep.body.as_slice()), (0, &[0u8, 0, 0, 0][..]));
    assert_eq!(c.create(&format!("{p}/a"), b"", 0).err, 0);
    assert_eq!(c.create(&format!("{p}/a/b"), b"", 0).err, 0);
    assert_eq!(flush(&mut r), vec![ev(NODE_CREATED, &format!("{p}/a")), ev(NODE_CREATED, &format!("{p}/a/b"))]);
    // Persistent (mode 0) on the same connection and another path: child events too.
    assert_eq!(r.request(op::ADD_WATCH, &Enc::new().str(&format!("{p}/a")).i32(0).bytes()).err, 0);
    assert_eq!(c.create(&format!("{p}/a/c"), b"", 0).err, 0);
    let got = flush(&mut r);
    // Both watches fire for the one change; a NodeCreated for the recursive one and a
    // NodeChildrenChanged on /a for the persistent one.
    assert!(got.contains(&ev(NODE_CREATED, &format!("{p}/a/c"))), "{got:?}");
    assert!(got.contains(&ev(NODE_CHILDREN_CHANGED, &format!("{p}/a"))), "{got:?}");
    assert_eq!(got.len(), 2, "{got:?}");
    // Invalid addWatch mode.
    assert_eq!(r.request(op::ADD_WATCH, &Enc::new().str(&p).i32(2).bytes()).err, err::MARSHALLING_ERROR);
}

#[test]
fn check_and_remove_watches_raw() {
    let s = Server::start();
    let mut r = Conn::connect(s.addr());
    let mut c = Conn::connect(s.addr());
    let p = unique("watch-remove");
    assert_eq!(r.create(&p, b"", 0).err, 0);
    let check = |r: &mut Conn, t: i32| r.request(op::CHECK_WATCHES, &Enc::new().str(&p).i32(t).bytes()).err;
    let remove = |r: &mut Conn, t: i32| r.request(op::REMOVE_WATCHES, &Enc::new().str(&p).i32(t).bytes()).err;
    // WatcherType: 1 Children, 2 Data, 3 Any.
    for t in [1, 2, 3] {
        assert_eq!(check(&mut r, t), err::NO_WATCHER, "check type {t} with no watch");
        assert_eq!(remove(&mut r, t), err::NO_WATCHER, "remove type {t} with no watch");
    }
    assert_eq!(r.request(op::REMOVE_WATCHES, &Enc::new().str("/no/such/node").i32(3).bytes()).err, err::NO_WATCHER);

    // A data watch: visible to Data and Any, not Children.
    assert_eq!(r.get_data(&p, true).err, 0);
    assert_eq!(check(&mut r, 1), err::NO_WATCHER);
    assert_eq!(check(&mut r, 2), 0);
    assert_eq!(check(&mut r, 3), 0);
    assert_eq!(remove(&mut r, 1), err::NO_WATCHER);
    let rep = r.request(op::REMOVE_WATCHES, &Enc::new().str(&p).i32(2).bytes());
    assert_eq!((rep.err, rep.body.len()), (0, 0));
    assert_eq!(remove(&mut r, 2), err::NO_WATCHER, "already removed");
    assert_eq!(check(&mut r, 2), err::NO_WATCHER);
    // The removed watch no longer fires, and the server sends no event for the removal.
    assert_eq!(c.set_data(&p, b"x", -1).err, 0);
    assert!(flush(&mut r).is_empty());

    // Exists watch counts as a data watch; child watch as Children; Any removes both.
    assert_eq!(r.exists(&p, true).err, 0);
    assert_eq!(r.get_children(&p, true).err, 0);
    assert_eq!(check(&mut r, 1), 0);
    assert_eq!(check(&mut r, 2), 0);
    assert_eq!(remove(&mut r, 3), 0);
    assert_eq!(check(&mut r, 1), err::NO_WATCHER);
    assert_eq!(check(&mut r, 2), err::NO_WATCHER);
    assert_eq!(c.create(&format!("{p}/k"), b"", 0).err, 0);
    assert!(flush(&mut r).is_empty());

    // (Not asserted: ZooKeeper 3.8's checkWatches answers OK when *another* session has a
    // watch on the path - WatchManager.containsWatcher only checks the path's watcher set is
    // non-empty. A correct server answers NoWatcher.)

    // A persistent recursive watch answers Children, Data and Any, and Any removes it.
    assert_eq!(r.request(op::ADD_WATCH, &Enc::new().str(&p).i32(1).bytes()).err, 0);
    for t in [1, 2, 3] {
        assert_eq!(check(&mut r, t), 0, "check type {t} on a persistent recursive watch");
    }
    assert_eq!(remove(&mut r, 3), 0);
    assert_eq!(check(&mut r, 3), err::NO_WATCHER);

    // Unknown watcher type: MarshallingError.
    assert_eq!(remove(&mut r, 7), err::MARSHALLING_ERROR);
}

#[tokio::test]
async fn crate_watcher_remove() {
    let s = Server::start();
    let c = connect(s.addr()).await;
    let w = connect(s.addr()).await;
    let p = unique("watch-remove-crate");
    c.create(&p, b"", &persistent()).await.unwrap();
    // Oneshot: remove() sends RemoveWatches(Data) and succeeds.
    let (_, _, watcher) = w.get_and_watch_data(&p).await.unwrap();
    watcher.remove().await.unwrap();
    let (_, watcher) = w.list_and_watch_children(&p).await.unwrap();
    watcher.remove().await.unwrap();
    // Persistent: remove() sends RemoveWatches(Any).
    let watcher = w.watch(&p, AddWatchMode::PersistentRecursive).await.unwrap();
    watcher.remove().await.unwrap();
    // Watching again after removal works.
    let (_, _, watcher) = w.get_and_watch_data(&p).await.unwrap();
    c.set_data(&p, b"1", None).await.unwrap();
    assert_eq!(within(5, "event", watcher.changed()).await.event_type, EventType::NodeDataChanged);
}

/// Cut the client's TCP connection (through a local proxy), change things while it is
/// disconnected, let it reconnect: the client re-sends its watches with SetWatches(relative
/// zxid) and the server fires the ones whose nodes changed after that zxid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_watches_on_reconnect_fires_missed_events() {
    let s = Server::start();
    let c = connect(s.addr()).await;
    let p = unique("watch-setwatches");
    c.create(&p, b"", &persistent()).await.unwrap();
    c.create(&format!("{p}/data"), b"", &persistent()).await.unwrap();
    c.create(&format!("{p}/gone"), b"", &persistent()).await.unwrap();
    c.create(&format!("{p}/kids"), b"", &persistent()).await.unwrap();
    c.create(&format!("{p}/same"), b"", &persistent()).await.unwrap();

    let proxy = Proxy::start(s.addr()).await;
    let w = connect_timeout(proxy.addr(), Duration::from_secs(10)).await;
    let sid = w.session_id();
    let (_, _, data_w) = w.get_and_watch_data(&format!("{p}/data")).await.unwrap();
    let (_, _, gone_w) = w.get_and_watch_data(&format!("{p}/gone")).await.unwrap();
    let (_, kids_w) = w.list_and_watch_children(&format!("{p}/kids")).await.unwrap();
    let (_, new_w) = w.check_and_watch_stat(&format!("{p}/new")).await.unwrap();
    let (_, _, same_w) = w.get_and_watch_data(&format!("{p}/same")).await.unwrap();
    let mut state = w.state_watcher();

    proxy.cut(true);
    assert_eq!(within(10, "Disconnected", state.changed()).await, zk::SessionState::Disconnected);
    c.set_data(&format!("{p}/data"), b"x", None).await.unwrap();
    c.delete(&format!("{p}/gone"), None).await.unwrap();
    c.create(&format!("{p}/kids/k"), b"", &persistent()).await.unwrap();
    c.create(&format!("{p}/new"), b"", &persistent()).await.unwrap();
    proxy.resume();
    assert_eq!(within(10, "SyncConnected", state.changed()).await, zk::SessionState::SyncConnected);
    assert_eq!(w.session_id(), sid, "same session after reconnect");

    let e = within(5, "data", data_w.changed()).await;
    assert_eq!((e.event_type, e.path), (EventType::NodeDataChanged, format!("{p}/data")));
    let e = within(5, "gone", gone_w.changed()).await;
    assert_eq!((e.event_type, e.path), (EventType::NodeDeleted, format!("{p}/gone")));
    let e = within(5, "kids", kids_w.changed()).await;
    assert_eq!((e.event_type, e.path), (EventType::NodeChildrenChanged, format!("{p}/kids")));
    let e = within(5, "new", new_w.changed()).await;
    assert_eq!((e.event_type, e.path), (EventType::NodeCreated, format!("{p}/new")));
    // The unchanged node's watch was re-registered, not fired: it fires on the next change.
    c.set_data(&format!("{p}/same"), b"y", None).await.unwrap();
    let e = within(5, "same", same_w.changed()).await;
    assert_eq!((e.event_type, e.path), (EventType::NodeDataChanged, format!("{p}/same")));
}

#[test]
fn set_watches_raw() {
    // SetWatches (op 101, xid -8): relativeZxid, dataWatches, existWatches, childWatches.
    let s = Server::start();
    let mut c = Conn::connect(s.addr());
    let p = unique("watch-setwatches-raw");
    assert_eq!(c.create(&p, b"", 0).err, 0);
    assert_eq!(c.create(&format!("{p}/d"), b"", 0).err, 0);
    let base = c.exists(&p, false).zxid;
    assert_eq!(c.set_data(&format!("{p}/d"), b"x", -1).err, 0);

    let mut r = Conn::connect(s.addr());
    let body = Enc::new().i64(base).strs(&[&format!("{p}/d"), &p]).strs(&[&format!("{p}/missing")]).strs(&[&p]).bytes();
    r.send_xid(-8, op::SET_WATCHES, &body).unwrap();
    // The missed change fires at once (before the SetWatches reply); the others are armed.
    let mut frames = Vec::new();
    loop {
        let f = r.read_any().unwrap();
        let done = f.xid == -8;
        frames.push(f);
        if done {
            break;
        }
    }
    let reply = frames.pop().unwrap();
    assert_eq!(reply.err, 0);
    let events: Vec<RawEvent> = frames
        .iter()
        .map(|f| {
            assert_eq!(f.xid, -1);
            let mut d = f.dec();
            RawEvent { event_type: d.i32(), state: d.i32(), path: d.str() }
        })
        .collect();
    assert_eq!(events, vec![ev(NODE_DATA_CHANGED, &format!("{p}/d"))]);
    assert_eq!(c.create(&format!("{p}/missing"), b"", 0).err, 0);
    assert_eq!(c.set_data(&p, b"y", -1).err, 0);
    let got = flush(&mut r);
    assert!(got.contains(&ev(NODE_CREATED, &format!("{p}/missing"))), "{got:?}");
    assert!(got.contains(&ev(NODE_CHILDREN_CHANGED, &p)), "{got:?}");
    assert!(got.contains(&ev(NODE_DATA_CHANGED, &p)), "{got:?}");
    assert_eq!(got.len(), 3, "{got:?}");
}

#[test]
fn set_watches2_persistent_raw() {
    // SetWatches2 (op 105, xid -8) adds persistentWatches and persistentRecursiveWatches lists.
    // (The zookeeper-client crate 0.9 always re-sends watches with SetWatches (op 101), so its
    // persistent watches are not restored after a reconnect; this covers op 105 on the wire.)
    let s = Server::start();
    let mut c = Conn::connect(s.addr());
    let p = unique("watch-setwatches2");
    assert_eq!(c.create(&p, b"", 0).err, 0);
    assert_eq!(c.create(&format!("{p}/q"), b"", 0).err, 0);
    let base = c.exists(&p, false).zxid;

    let mut r = Conn::connect(s.addr());
    let body = Enc::new().i64(base).strs(&[]).strs(&[]).strs(&[]).strs(&[&p]).strs(&[&format!("{p}/q")]).bytes();
    r.send_xid(-8, op::SET_WATCHES2, &body).unwrap();
    let reply = r.read_any().unwrap();
    assert_eq!((reply.xid, reply.err), (-8, 0));

    assert_eq!(c.set_data(&p, b"1", -1).err, 0);
    assert_eq!(c.set_data(&p, b"2", -1).err, 0);
    assert_eq!(c.create(&format!("{p}/q/x"), b"", 0).err, 0);
    assert_eq!(c.set_data(&format!("{p}/q/x"), b"", -1).err, 0);
    let got = flush(&mut r);
    assert_eq!(
        got,
        vec![
            ev(NODE_DATA_CHANGED, &p),
            ev(NODE_DATA_CHANGED, &p),
            ev(NODE_CREATED, &format!("{p}/q/x")),
            ev(NODE_DATA_CHANGED, &format!("{p}/q/x")),
        ]
    );
    // The persistent (non-recursive) watch on p saw nothing of p/q/x above (not p's child);
    // creating a child of p fires NodeChildrenChanged on p.
    assert_eq!(c.create(&format!("{p}/y"), b"", 0).err, 0);
    assert_eq!(flush(&mut r), vec![ev(NODE_CHILDREN_CHANGED, &p)]);
}

/// A shard is woken for a change only when it has replies in it or may
/// hold watches: a watch set over an otherwise idle connection must still
/// fire, whichever shard the connection landed on. Eight watchers spread
/// over two shards by the kernel (all on the writer's shard one time in
/// 256), each watching its own node and sending nothing after; the writer
/// changes every node, then deletes it, for several rounds.
#[test]
fn watches_fire_on_idle_shards_that_the_writer_is_not_on() {
    let s = Server::start_with(&["zoocore.shards=2"]);
    let mut writer = Conn::connect(s.addr());
    let mut watchers: Vec<Conn> = (0..8).map(|_| Conn::connect(s.addr())).collect();
    for watcher in &watchers {
        watcher.set_read_timeout(Duration::from_secs(10));
    }
    let base = unique("idle-shard");
    for round in 0..5 {
        let paths: Vec<String> = (0..watchers.len()).map(|i| format!("{base}-{round}-{i}")).collect();
        for path in &paths {
            assert_eq!(writer.create(path, b"0", 0).err, 0);
        }
        for (watcher, path) in watchers.iter_mut().zip(&paths) {
            assert_eq!(watcher.get_data(path, true).err, 0);
        }
        for path in &paths {
            assert_eq!(writer.set_data(path, b"1", -1).err, 0);
        }
        for (watcher, path) in watchers.iter_mut().zip(&paths) {
            let event = watcher.next_event().expect("the data watch fires");
            assert_eq!(event, ev(NODE_DATA_CHANGED, path));
        }
        // exists watches, then deletes: the same, through the other table.
        for (watcher, path) in watchers.iter_mut().zip(&paths) {
            assert_eq!(watcher.exists(path, true).err, 0);
        }
        for path in &paths {
            assert_eq!(writer.delete(path, -1).err, 0);
        }
        for (watcher, path) in watchers.iter_mut().zip(&paths) {
            let event = watcher.next_event().expect("the exists watch fires");
            assert_eq!(event, ev(NODE_DELETED, path));
        }
    }
}
