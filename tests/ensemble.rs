//! Ensembles of real zoocore processes on loopback, started from zoo.cfg
//! files with ZooKeeper's `server.N` lines and `myid`: election, writes on
//! any server read on any other, sessions moving between servers, the
//! leader killed under load with nothing acknowledged lost, restart and
//! catch-up, observers.
mod common;

use std::collections::BTreeMap;
use std::future::ready;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use zookeeper_client as zk;

const ELECTION_DEADLINE: Duration = Duration::from_secs(20);

#[tokio::test]
async fn three_servers_elect_one_leader_and_any_server_serves_writes_and_reads() {
    let cluster = Cluster::start(3, 0);
    let leader = cluster.wait_for_leader(ELECTION_DEADLINE);
    let modes = cluster.modes();
    assert_eq!(modes.iter().filter(|mode| *mode == "follower").count(), 2, "{modes:?}");

    // A write on each server (two are forwarded to the leader), read on every other after sync.
    let root = unique("ens");
    let first = connect(cluster.servers[(leader + 1) % 3].addr()).await;
    first.create(&root, b"r", &persistent()).await.expect("create on a follower");
    for (index, server) in cluster.servers.iter().enumerate() {
        let client = connect(server.addr()).await;
        let path = format!("{root}/from-{index}");
        client.create(&path, format!("v{index}").as_bytes(), &persistent()).await.expect("create");
        // The client reads its own write on its own server at once.
        let (data, _) = client.get_data(&path).await.expect("read own write");
        assert_eq!(data, format!("v{index}").as_bytes());
    }
    for server in &cluster.servers {
        let client = connect(server.addr()).await;
        client.sync(&root).await.expect("sync");
        let mut children = client.list_children(&root).await.expect("children after sync");
        children.sort();
        assert_eq!(children, vec!["from-0", "from-1", "from-2"], "on {}", server.addr());
    }
    // zxids agree across servers: the same stat everywhere.
    let mut stats = Vec::new();
    for server in &cluster.servers {
        let client = connect(server.addr()).await;
        client.sync(&root).await.expect("sync");
        stats.push(client.check_stat(&format!("{root}/from-1")).await.expect("stat").expect("exists"));
    }
    assert!(stats.windows(2).all(|pair| pair[0] == pair[1]), "{stats:?}");
}

#[tokio::test]
async fn a_session_moves_between_servers_with_its_ephemerals_and_watches() {
    let cluster = Cluster::start(3, 0);
    cluster.wait_for_leader(ELECTION_DEADLINE);
    let root = unique("move");
    let watcher_client = connect(cluster.servers[2].addr()).await;
    watcher_client.create(&root, b"", &persistent()).await.expect("root");
    // The session starts on server 0 and owns an ephemeral.
    let proxy = Proxy::start(cluster.servers[0].addr()).await;
    let client = within(15, "connect", zk::Client::connector().connect(proxy.addr())).await.expect("connect");
    let session = client.session_id();
    client.create(&format!("{root}/eph"), b"e", &ephemeral()).await.expect("ephemeral");
    // Cut it from server 0: the client's next server is 1 (the proxy now points there).
    proxy.retarget(cluster.servers[1].addr());
    proxy.cut(false);
    // The session resumes on server 1 with its id; its ephemeral lives on,
    // and the session writes there. A request that raced the cut fails
    // with ConnectionLoss and is retried, as an application would.
    let resumed = wait_for_async(Duration::from_secs(15), || async {
        match client.create(&format!("{root}/after-move"), b"", &persistent()).await {
            Ok(_) | Err(zk::Error::NodeExists) => true,
            Err(zk::Error::ConnectionLoss) => false,
            Err(error) => panic!("the session did not resume on server 1: {error}"),
        }
    })
    .await;
    assert!(resumed, "the session did not resume on server 1 within 15 s");
    assert_eq!(client.session_id(), session, "the same session");
    assert_eq!(client.get_data(&format!("{root}/eph")).await.expect("the ephemeral lives on").0, b"e");
    // Closing the session deletes its ephemeral everywhere.
    drop(client);
    let watcher = watcher_client.check_and_watch_stat(&format!("{root}/eph")).await.expect("watch");
    if watcher.0.is_some() {
        let event = within(20, "ephemeral deleted", watcher.1.changed()).await;
        assert_eq!(event.event_type, zk::EventType::NodeDeleted);
    }
}

/// The leader is killed while clients write through every server: writes
/// go on after the election, and every acknowledged write is on every
/// surviving server.
#[tokio::test]
async fn killing_the_leader_under_load_loses_no_acknowledged_write() {
    kill_under_load(true).await;
}

/// The same with a follower killed: the others go on without an election.
#[tokio::test]
async fn killing_a_follower_under_load_loses_no_acknowledged_write() {
    kill_under_load(false).await;
}

async fn kill_under_load(kill_the_leader: bool) {
    let mut cluster = Cluster::start(3, 0);
    let leader = cluster.wait_for_leader(ELECTION_DEADLINE);
    let victim = if kill_the_leader { leader } else { (leader + 1) % 3 };
    let root = unique("kill");
    connect(cluster.servers[0].addr()).await.create(&root, b"", &persistent()).await.expect("root");
    let acknowledged = Arc::new(std::sync::Mutex::new(BTreeMap::<String, i64>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let connect_string = cluster.connect_string();
    let mut writers = Vec::new();
    for writer in 0..3 {
        let acknowledged = acknowledged.clone();
        let stop = stop.clone();
        let connect_string = connect_string.clone();
        let root = root.clone();
        writers.push(tokio::spawn(async move {
            let mut written = 0u64;
            let mut client: Option<zk::Client> = None;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && written < 100_000 {
                let current = match &client {
                    Some(client) => client.clone(),
                    None => match zk::Client::connector()
                        .session_timeout(Duration::from_secs(10))
                        .connect(&connect_string)
                        .await
                    {
                        Ok(connected) => {
                            client = Some(connected.clone());
                            connected
                        }
                        Err(_) => {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        }
                    },
                };
                let path = format!("{root}/w{writer}-{written}");
                written += 1;
                match tokio::time::timeout(Duration::from_secs(10), current.create(&path, b"x", &persistent())).await {
                    Ok(Ok((stat, _))) => {
                        acknowledged.lock().unwrap().insert(path, stat.czxid);
                    }
                    Ok(Err(zk::Error::SessionExpired)) | Ok(Err(zk::Error::ClientClosed)) => client = None,
                    _ => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
        }));
    }
    let started = wait_for_async(Duration::from_secs(20), || ready(acknowledged.lock().unwrap().len() >= 200)).await;
    assert!(started, "the writers got 200 writes acknowledged before the kill");
    let before_kill = acknowledged.lock().unwrap().len();
    cluster.servers[victim].kill();
    // Writes continue (after the election, if the leader was killed).
    let resumed =
        wait_for_async(Duration::from_secs(30), || ready(acknowledged.lock().unwrap().len() >= before_kill + 200))
            .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for writer in writers {
        let _ = writer.await;
    }
    assert!(resumed, "writes did not resume after server {victim} was killed");
    let acknowledged = acknowledged.lock().unwrap().clone();
    for (index, server) in cluster.servers.iter().enumerate() {
        if index == victim {
            continue;
        }
        let client = connect(server.addr()).await;
        client.sync(&root).await.expect("sync");
        let children: std::collections::BTreeSet<String> =
            client.list_children(&root).await.expect("children").into_iter().collect();
        for path in acknowledged.keys() {
            let name = path.rsplit('/').next().unwrap();
            assert!(children.contains(name), "acknowledged {path} is missing on server {index}");
        }
    }
    // The killed server restarts, catches up and agrees.
    cluster.servers[victim].restart();
    let client = connect(cluster.servers[victim].addr()).await;
    client.sync(&root).await.expect("sync on the restarted server");
    let children = client.list_children(&root).await.expect("children");
    assert!(children.len() >= acknowledged.len(), "the restarted server caught up");
}

#[tokio::test]
async fn an_observer_serves_clients_and_forwards_writes() {
    let cluster = Cluster::start(3, 1);
    cluster.wait_for_leader(ELECTION_DEADLINE);
    let observer = &cluster.servers[3];
    assert!(
        wait_for_async(Duration::from_secs(10), || ready(cluster.modes()[3] == "observer")).await,
        "{:?}",
        cluster.modes()
    );
    let root = unique("obs");
    let client = connect(observer.addr()).await;
    client.create(&root, b"o", &persistent()).await.expect("a write through the observer");
    let other = connect(cluster.servers[0].addr()).await;
    other.sync(&root).await.expect("sync");
    assert_eq!(other.get_data(&root).await.expect("read").0, b"o");
}

/// A server that lost its data directory (or joins empty) after the others
/// compacted their logs behind a snapshot catches up from a snapshot sent
/// over the peer link, then follows new writes.
#[tokio::test]
async fn a_server_started_empty_after_compaction_catches_up_by_snapshot() {
    let mut cluster = Cluster::start_with(3, 0, &["snapCount=100"]);
    let leader = cluster.wait_for_leader(ELECTION_DEADLINE);
    let lagging = (leader + 1) % 3;
    kill_and_empty(&mut cluster.servers[lagging]);
    let root = unique("catchup");
    let client = connect(cluster.servers[leader].addr()).await;
    client.create(&root, b"", &persistent()).await.expect("root");
    // Enough writes for several snapshots (snapCount 100), so the log the
    // empty server would need is gone, and a tree of several MiB, so the
    // snapshot crosses the link in several chunks (1 MiB each).
    let value = vec![b'd'; 8 << 10];
    for index in 0..400 {
        client.create(&format!("{root}/n{index}"), &value, &persistent()).await.expect("create");
    }
    cluster.servers[lagging].restart();
    let rejoined = connect(cluster.servers[lagging].addr()).await;
    let last = std::cell::RefCell::new(None);
    let caught_up = wait_for_async(Duration::from_secs(20), || async {
        let _ = rejoined.sync(&root).await;
        let count = rejoined.list_children(&root).await.map(|children| children.len());
        let done = matches!(count, Ok(400));
        *last.borrow_mut() = Some(count);
        done
    })
    .await;
    assert!(caught_up, "the empty server did not catch up: {:?}", last.borrow());
    let (data, _) = rejoined.get_data(&format!("{root}/n399")).await.expect("a streamed znode");
    assert_eq!(data, value);
    // And it follows what comes after.
    client.create(&format!("{root}/after"), b"", &persistent()).await.expect("create after");
    rejoined.sync(&root).await.expect("sync");
    assert!(rejoined.check_stat(&format!("{root}/after")).await.expect("stat").is_some());
}

/// A follower that had acknowledged everything loses its data directory
/// (an operator resyncing it, as ZooKeeper's operators do) and restarts
/// empty while the ensemble is idle: raft-rs alone would take its refusals
/// for stale answers and never send it anything; it must catch up.
#[tokio::test]
async fn a_follower_emptied_after_acknowledging_everything_catches_up() {
    let mut cluster = Cluster::start_with(3, 0, &["snapCount=100"]);
    let leader = cluster.wait_for_leader(ELECTION_DEADLINE);
    let root = unique("amnesia");
    let client = connect(cluster.servers[leader].addr()).await;
    client.create(&root, b"", &persistent()).await.expect("root");
    for index in 0..300 {
        client.create(&format!("{root}/n{index}"), b"d", &persistent()).await.expect("create");
    }
    let emptied = (leader + 1) % 3;
    let follower = connect(cluster.servers[emptied].addr()).await;
    follower.sync(&root).await.expect("the follower has everything");
    assert_eq!(follower.list_children(&root).await.expect("children").len(), 300);
    drop(follower);
    kill_and_empty(&mut cluster.servers[emptied]);
    cluster.servers[emptied].restart();
    // No write meanwhile: the heartbeats alone must bring it back.
    let last = std::cell::Cell::new(None);
    let caught_up = wait_for_async(Duration::from_secs(20), || async {
        let count = match connect_within(cluster.servers[emptied].addr(), Duration::from_secs(2)).await {
            Some(rejoined) => rejoined.list_children(&root).await.map(|children| children.len()).ok(),
            None => None,
        };
        last.set(count);
        count == Some(300)
    })
    .await;
    assert!(
        caught_up,
        "the emptied follower did not catch up: {:?}\n{}",
        last.get(),
        cluster.servers[emptied].stderr_tail()
    );
}

/// Kills `server` and empties its data directory but for `myid`, as an
/// operator does to resync a server.
fn kill_and_empty(server: &mut Server) {
    server.kill();
    let data = server.dir().unwrap().join("data");
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().is_some_and(|name| name != "myid") {
            let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
        }
    }
}

/// A session on `address`, or None if none opens within `limit` (a server
/// without a leader yet closes new connections).
async fn connect_within(address: &str, limit: Duration) -> Option<zk::Client> {
    tokio::time::timeout(limit, zk::Client::connector().session_timeout(Duration::from_secs(4)).connect(address))
        .await
        .ok()?
        .ok()
}

#[tokio::test]
async fn five_servers_survive_two_failures() {
    let mut cluster = Cluster::start(5, 0);
    let leader = cluster.wait_for_leader(ELECTION_DEADLINE);
    let root = unique("five");
    connect(cluster.servers[leader].addr()).await.create(&root, b"", &persistent()).await.expect("root");
    // Two servers down, one of them the leader: three of five still decide.
    let other = (leader + 2) % 5;
    cluster.servers[leader].kill();
    cluster.servers[other].kill();
    let survivor = (0..5).find(|index| *index != leader && *index != other).unwrap();
    let client = connect_anywhere(&cluster, &[leader, other]).await;
    let last = std::cell::RefCell::new(None);
    let written = wait_for_async(Duration::from_secs(20), || async {
        match client.create(&format!("{root}/after-two-failures"), b"", &persistent()).await {
            Ok(_) | Err(zk::Error::NodeExists) => true,
            Err(error) => {
                *last.borrow_mut() = Some(error);
                false
            }
        }
    })
    .await;
    assert!(written, "no write with 3 of 5 servers up: {:?}", last.borrow());
    let reader = connect(cluster.servers[survivor].addr()).await;
    reader.sync(&root).await.expect("sync");
    assert!(reader.check_stat(&format!("{root}/after-two-failures")).await.expect("stat").is_some());
}

/// A client with the connect string of every live server.
async fn connect_anywhere(cluster: &Cluster, down: &[usize]) -> zk::Client {
    let hosts: Vec<&str> = cluster
        .servers
        .iter()
        .enumerate()
        .filter(|(index, _)| !down.contains(index))
        .map(|(_, server)| server.addr())
        .collect();
    within(30, "connect", zk::Client::connector().connect(&hosts.join(","))).await.expect("connect")
}

/// A session re-attached on another server ends its old connection, as a
/// client re-attaching on the same server does.
#[tokio::test]
async fn a_session_resumed_elsewhere_ends_its_old_connection() {
    let cluster = Cluster::start(3, 0);
    cluster.wait_for_leader(ELECTION_DEADLINE);
    let first = connect(cluster.servers[0].addr()).await;
    let mut states = first.state_watcher();
    let session = first.session_id();
    let info = first.session().clone();
    let second = within(15, "resume", zk::Client::connector().session(info).connect(cluster.servers[1].addr()))
        .await
        .expect("resume on server 1");
    assert_eq!(second.session_id(), session);
    // The first client sees its connection end (it then reconnects by
    // itself, taking the session back, as two ZooKeeper clients sharing a
    // session do).
    let mut seen = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while !seen.contains(&zk::SessionState::Disconnected) {
            seen.push(states.changed().await);
        }
    })
    .await;
    assert!(seen.contains(&zk::SessionState::Disconnected), "the old connection was not ended: {seen:?}");
}

/// Sends SIGCONT to the stopped servers when dropped, so a failing test
/// leaves no stopped process behind.
struct Stopped(Vec<u32>);

impl Stopped {
    fn stop(pids: Vec<u32>) -> Stopped {
        for &pid in &pids {
            // SAFETY: kill only sends a signal to our own child's pid.
            unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
        }
        Stopped(pids)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        for &pid in &self.0 {
            // SAFETY: as above.
            unsafe { libc::kill(pid as i32, libc::SIGCONT) };
        }
    }
}

/// A leader cut off from every follower (here: both followers frozen with
/// SIGSTOP, so nothing closes and the leader does not know yet) must not
/// answer a sync: the others may already have elected a new leader and
/// committed writes it has not seen, and a read after sync must show them.
/// The sync waits for a quorum to confirm the leader (ReadIndex) and is
/// never answered Ok; once the followers run again, syncs work.
#[tokio::test]
async fn a_leader_without_its_quorum_does_not_answer_sync() {
    let cluster = Cluster::start(3, 0);
    let leader = cluster.wait_for_leader(ELECTION_DEADLINE);
    let root = unique("readindex");
    let client = connect(cluster.servers[leader].addr()).await;
    client.create(&root, b"", &persistent()).await.expect("root");
    client.sync(&root).await.expect("a sync with the quorum up");

    let followers: Vec<u32> =
        (0..3).filter(|&index| index != leader).filter_map(|index| cluster.servers[index].pid()).collect();
    let frozen = Stopped::stop(followers);
    let answer = tokio::time::timeout(Duration::from_secs(2), client.sync(&root)).await;
    assert!(!matches!(answer, Ok(Ok(_))), "an isolated leader answered a sync: {answer:?}");
    drop(frozen);

    let leader = cluster.wait_for_leader(ELECTION_DEADLINE);
    let after = connect(cluster.servers[leader].addr()).await;
    after.sync(&root).await.expect("a sync once the quorum is back");
    assert!(after.check_stat(&root).await.expect("stat").is_some());
}
