//! Issue 14, item 4: three real zoocore processes on loopback under real
//! faults, while clients keep writing and reading and record a history.
//!
//! The faults: SIGKILL of the leader and of a follower; SIGSTOP of the
//! leader for longer than the clients' session timeout, then SIGCONT (a GC
//! pause); every member killed at once and restarted; a partition that cuts
//! the leader off from the other members while it keeps its clients
//! (proxies on the peer links, tests/common/partition.rs); one member's
//! disk filled (a small loop-mounted filesystem, root only).
//!
//! After each, once healed: no acknowledged write is lost (every
//! acknowledged create is on every member, and every setData's version
//! fits one order), each shared znode's history of setData and
//! sync-then-read is linearizable (the simulator's checker), and the
//! members hold identical trees (the same digest at the same zxid, equal to
//! the digest recomputed from what each serves). The time from the fault to
//! the first acknowledged write sent after it is printed:
//! `cargo test --test faults -- --nocapture` shows the figures.

mod common;

use std::time::{Duration, Instant};

use common::digest::{members_agree_at, write_until_logged};
use common::disk::SmallDisk;
use common::history::{ClientPlan, Workload};
use common::partition::{self, Network};
use common::raw::{Conn, Enc};
use common::*;
use zoocore::proto::codes::op;

const ELECTION_DEADLINE: Duration = Duration::from_secs(20);
/// The shortest session ZooKeeper grants at the harness's tickTime (2 s).
const SESSION_TIMEOUT: Duration = Duration::from_secs(4);
/// Sessions of clients pinned to one member, long enough to outlive a
/// pause or a partition of that member.
const PINNED_SESSION_TIMEOUT: Duration = Duration::from_secs(30);
/// Clients on the whole ensemble.
const ROAMING_CLIENTS: usize = 4;
/// Writes acknowledged before a fault, during it (where a quorum is left)
/// and after it heals.
const WRITES_BEFORE: usize = 100;
const WRITES_DURING: usize = 100;
const WRITES_AFTER: usize = 50;
/// How long writes may take to come back after a fault.
const RECOVERY_DEADLINE: Duration = Duration::from_secs(60);
/// How long a member stays paused: longer than `SESSION_TIMEOUT`.
const PAUSE: Duration = Duration::from_secs(6);
/// How long the leader stays cut off.
const PARTITION: Duration = Duration::from_secs(5);
/// How long pinned clients work on a member after it is back, so that
/// they invoke operations after the rest of the ensemble moved on.
const PINNED_AFTERMATH: Duration = Duration::from_secs(2);

/// Clients pinned to the member a pause or partition hits.
const PINNED_CLIENTS: usize = 4;

/// The pinned clients, which come after the roaming ones in the plans.
fn pinned_clients(back_at: u64) -> Pinned {
    let first = ROAMING_CLIENTS as u64;
    Pinned { clients: first..first + PINNED_CLIENTS as u64, back_at }
}

fn roaming(cluster: &Cluster) -> Vec<ClientPlan> {
    let plan = ClientPlan { hosts: cluster.connect_string(), session_timeout: SESSION_TIMEOUT };
    vec![plan; ROAMING_CLIENTS]
}

fn pinned(cluster: &Cluster, member: usize, count: usize) -> Vec<ClientPlan> {
    let plan =
        ClientPlan { hosts: cluster.servers[member].addr().to_string(), session_timeout: PINNED_SESSION_TIMEOUT };
    vec![plan; count]
}

/// Starts the workload on `cluster` and waits for its first writes.
fn begin(name: &str, cluster: &Cluster, plans: Vec<ClientPlan>) -> Workload {
    cluster.wait_for_leader(ELECTION_DEADLINE);
    let seed = Random::seed_from_env(name, None);
    let workload = Workload::start(&cluster.connect_string(), &unique(name), &plans, seed);
    assert!(
        workload.wait_for_writes(WRITES_BEFORE, RECOVERY_DEADLINE),
        "{name}: the clients got no writes acknowledged before the fault"
    );
    workload
}

/// Waits for writes to go on during or after a fault.
fn writes_go_on(name: &str, cluster: &Cluster, workload: &Workload, count: usize, when: &str) {
    if !workload.wait_for_writes(count, RECOVERY_DEADLINE) {
        let tails: Vec<String> = cluster.servers.iter().map(Server::stderr_tail).collect();
        panic!("{name}: writes did not go on {when} within {RECOVERY_DEADLINE:?}\n{}", tails.join("\n"));
    }
}

/// Clients pinned to a member that was paused or cut off, and when it
/// came back: what they did after that is what the test is about.
struct Pinned {
    clients: std::ops::Range<u64>,
    back_at: u64,
}

/// Stops the workload and checks everything the module docs promise.
fn finish(name: &str, cluster: &Cluster, workload: Workload, fault_at: u64, pinned: Option<Pinned>) {
    let first_write = workload.first_write_after(fault_at);
    let mut history = workload.stop();
    if let Some(Pinned { clients, back_at }) = pinned {
        let answered = history.answered_since(clients, back_at);
        println!(
            "fault figure: {name}: {answered} operations of the pinned clients answered after the member came back"
        );
        assert!(answered > 0, "{name}: the pinned clients got nothing answered after the member came back");
    }
    let leader = cluster.wait_for_leader(ELECTION_DEADLINE);
    let addresses: Vec<&str> = cluster.servers.iter().map(Server::addr).collect();
    history.read_back_from(&addresses);
    history.assert_linearizable();
    // A write after everything else lands on a zxid every member logs a
    // digest for.
    let mut writer = Conn::connect(cluster.servers[leader].addr());
    let marker = unique(&format!("{name}-digest"));
    assert_eq!(writer.create(&marker, b"", 0).err, 0, "create the digest marker");
    let zxid = write_until_logged(&mut writer, &marker, 1);
    members_agree_at(&cluster.servers, zxid);
    let (events, unanswered) = history.counts();
    println!(
        "fault figure: {name}: first acknowledged write {} after the fault; {events} shared-znode events ({unanswered} unanswered) linearizable; trees agree at {zxid:#x}",
        first_write.map_or("never".to_string(), |after| format!("{} ms", after.as_millis())),
    );
}

fn kill_under_load(name: &str, kill_the_leader: bool) {
    let mut cluster = Cluster::start(3, 0);
    let leader = cluster.wait_for_leader(ELECTION_DEADLINE);
    let victim = if kill_the_leader { leader } else { (leader + 1) % 3 };
    let workload = begin(name, &cluster, roaming(&cluster));
    cluster.servers[victim].kill();
    // Measured from the moment the process is gone.
    let fault_at = workload.now();
    writes_go_on(name, &cluster, &workload, WRITES_DURING, "with one member killed");
    cluster.servers[victim].restart();
    writes_go_on(name, &cluster, &workload, WRITES_AFTER, "after the restart");
    finish(name, &cluster, workload, fault_at, None);
}

#[test]
fn the_leader_killed_under_load_loses_nothing() {
    kill_under_load("leader-killed", true);
}

#[test]
fn a_follower_killed_under_load_loses_nothing() {
    kill_under_load("follower-killed", false);
}

#[test]
fn every_member_killed_at_once_and_restarted_loses_nothing() {
    let name = "all-killed";
    let mut cluster = Cluster::start(3, 0);
    let workload = begin(name, &cluster, roaming(&cluster));
    for server in &mut cluster.servers {
        server.kill();
    }
    let fault_at = workload.now();
    for server in &mut cluster.servers {
        server.restart();
    }
    writes_go_on(name, &cluster, &workload, WRITES_AFTER, "after every member restarted");
    finish(name, &cluster, workload, fault_at, None);
}

/// Sends SIGCONT to a stopped process when dropped, so a failing test
/// leaves no stopped process behind.
struct Paused(u32);

impl Paused {
    fn pause(pid: u32) -> Paused {
        // SAFETY: kill only sends a signal to our own child's pid.
        unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
        Paused(pid)
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { libc::kill(self.0 as i32, libc::SIGCONT) };
    }
}

/// A leader frozen past its clients' session timeout (a GC pause), while
/// two clients with long sessions stay on it: once the others have elected
/// a new leader and moved on, the old one, woken, must not acknowledge a
/// write nor answer a sync and read with stale data. ZooKeeper 3.8's sync
/// is not a quorum operation and fails the second now and then.
#[test]
fn a_leader_paused_past_the_session_timeout_serves_nothing_stale() {
    let name = "leader-paused";
    let reference = Reference::start();
    let cluster = match &reference {
        Some(reference) => reference.cluster(),
        None => Cluster::start(3, 0),
    };
    let leader = cluster.wait_for_leader(ELECTION_DEADLINE);
    let mut plans = roaming(&cluster);
    plans.extend(pinned(&cluster, leader, PINNED_CLIENTS));
    let workload = begin(name, &cluster, plans);
    let fault_at = workload.now();
    let paused_at = Instant::now();
    let paused = Paused::pause(cluster.servers[leader].pid().expect("the leader's pid"));
    writes_go_on(name, &cluster, &workload, WRITES_DURING, "with the leader paused");
    std::thread::sleep(PAUSE.saturating_sub(paused_at.elapsed()));
    drop(paused);
    let back_at = workload.now();
    writes_go_on(name, &cluster, &workload, WRITES_AFTER, "after the old leader woke");
    std::thread::sleep(PINNED_AFTERMATH);
    finish(name, &cluster, workload, fault_at, Some(pinned_clients(back_at)));
}

/// The leader cut off from both followers while it runs on and keeps its
/// clients (two of them pinned to it): the others elect a new leader and
/// go on; nothing the old one does while cut off may be acknowledged or
/// read as current; after the partition heals it rejoins and agrees.
#[test]
fn a_leader_cut_off_by_a_partition_serves_nothing_stale() {
    let name = "leader-partitioned";
    let layout = Layout { route: Some(&partition::route), ..Layout::default() };
    let cluster = Cluster::start_laid_out(3, 0, &[], &layout);
    let network = Network::start(&cluster.peer_ports);
    let leader = cluster.wait_for_leader(ELECTION_DEADLINE);
    let mut plans = roaming(&cluster);
    plans.extend(pinned(&cluster, leader, PINNED_CLIENTS));
    let workload = begin(name, &cluster, plans);
    let fault_at = workload.now();
    let cut_at = Instant::now();
    network.isolate(leader);
    writes_go_on(name, &cluster, &workload, WRITES_DURING, "with the leader cut off");
    std::thread::sleep(PARTITION.saturating_sub(cut_at.elapsed()));
    network.heal();
    let back_at = workload.now();
    writes_go_on(name, &cluster, &workload, WRITES_AFTER, "after the partition healed");
    std::thread::sleep(PINNED_AFTERMATH);
    finish(name, &cluster, workload, fault_at, Some(pinned_clients(back_at)));
}

/// The filesystem member 0's log is on.
const SMALL_DISK_MIB: u64 = 24;
/// Room member 0's log is left on it: a few segments' worth of the
/// workload, filled quickly by `BULK_VALUE_BYTES` writes.
const SMALL_DISK_ROOM_BYTES: u64 = 3 * 1024 * 1024;
const BULK_VALUE_BYTES: usize = 64 * 1024;
/// The bulk writer gives up after this many writes (the disk fills long
/// before).
const BULK_WRITES_MAX: usize = 1_000;

/// Member 0's log on a filesystem about to fill: it fail-stops with
/// ENOSPC (issue 15), the others go on (electing a leader if it led), and
/// once space is freed it restarts, catches up and agrees.
#[test]
fn a_member_whose_disk_fills_stops_and_rejoins_without_loss() {
    let name = "disk-full";
    let scratch = TestDir::new("small-disk");
    let disk = match SmallDisk::make(scratch.path(), SMALL_DISK_MIB) {
        Ok(disk) => disk,
        Err(reason) => {
            eprintln!("skipped: {reason}");
            return;
        }
    };
    let log_directory = disk.mount.join("datalog");
    let member_lines = |member: usize| {
        if member == 0 {
            vec![format!("dataLogDir={}", log_directory.display())]
        } else {
            Vec::new()
        }
    };
    // Space an operator can free later, leaving member 0's log little
    // room (its first segment is made to fit what is left).
    let free = free_bytes(&disk.mount);
    let filler = disk.mount.join("filler");
    std::fs::write(&filler, vec![0x55u8; free.saturating_sub(SMALL_DISK_ROOM_BYTES) as usize]).expect("write filler");
    let layout = Layout { member_lines: Some(&member_lines), ..Layout::default() };
    let mut cluster = Cluster::start_laid_out(3, 0, &[], &layout);
    let leader = cluster.wait_for_leader(ELECTION_DEADLINE);
    let workload = begin(name, &cluster, roaming(&cluster));

    // Bulk writes through another member fill member 0's disk; if member
    // 0 led, they fail once it is gone.
    let bulk = unique(&format!("{name}-bulk"));
    let mut writer = Conn::connect(cluster.servers[1].addr());
    assert_eq!(writer.create(&bulk, b"", 0).err, 0, "create the bulk znode");
    let body = Enc::new().str(&bulk).buf(&vec![0xabu8; BULK_VALUE_BYTES]).i32(-1).bytes();
    let mut status = None;
    for _ in 0..BULK_WRITES_MAX {
        status = cluster.servers[0].wait_exit(Duration::ZERO);
        if status.is_some() || writer.send(op::SET_DATA, &body).and_then(|_| writer.read_reply()).is_err() {
            break;
        }
    }
    let status = status.or_else(|| cluster.servers[0].wait_exit(RECOVERY_DEADLINE));
    let fault_at = workload.now();
    let status = status.expect("member 0 stopped when its disk filled");
    assert!(!status.success(), "member 0 says it failed: {status}");
    let log = cluster.servers[0].stderr_tail();
    assert!(log.contains("ENOSPC"), "member 0 names the cause:\n{log}");
    let role = if leader == 0 { "leader" } else { "follower" };
    println!("fault figure: {name}: member 0 ({role}) fail-stopped on a full disk");
    writes_go_on(name, &cluster, &workload, WRITES_DURING, "with member 0 stopped");
    std::fs::remove_file(&filler).expect("free space");
    cluster.servers[0].restart();
    writes_go_on(name, &cluster, &workload, WRITES_AFTER, "after member 0 restarted");
    finish(name, &cluster, workload, fault_at, None);
}

fn free_bytes(path: &std::path::Path) -> u64 {
    let text = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("a path without NUL");
    // SAFETY: statvfs writes into the zeroed struct we pass and reads the
    // NUL-terminated path.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    let result = unsafe { libc::statvfs(text.as_ptr(), &mut stats) };
    assert_eq!(result, 0, "statvfs {}", path.display());
    stats.f_bavail * stats.f_frsize
}

/// `ZOOCORE_FAULTS_ZKREF=<zkref's directory>` runs the paused-leader test
/// against the reference ZooKeeper 3.8 ensemble zkref starts, to see what
/// the test makes of ZooKeeper; the other tests need processes of their
/// own and skip nothing (they run against zoocore as always).
const ZKREF_ENV: &str = "ZOOCORE_FAULTS_ZKREF";
/// Where zkref keeps its ensemble unless ZKREF_ROOT says otherwise.
const ZKREF_ROOT_DEFAULT: &str = "/tmp/zkref";
const ZKREF_MEMBERS: usize = 3;
/// zkref's first client port.
const ZKREF_CLIENT_PORT: u16 = 2181;

/// A reference ZooKeeper ensemble, stopped with zkref's stop.sh on drop.
struct Reference {
    tools: std::path::PathBuf,
}

impl Reference {
    fn start() -> Option<Reference> {
        let tools = std::path::PathBuf::from(std::env::var_os(ZKREF_ENV)?);
        let started = std::process::Command::new(tools.join("start-ensemble.sh")).status().expect("run zkref");
        assert!(started.success(), "zkref could not start the ensemble: {started}");
        Some(Reference { tools })
    }

    fn cluster(&self) -> Cluster {
        let root = std::env::var("ZKREF_ROOT").unwrap_or_else(|_| ZKREF_ROOT_DEFAULT.to_string());
        let members: Vec<(String, u32)> = (1..=ZKREF_MEMBERS)
            .map(|member| {
                let pid_file = format!("{root}/ensemble/n{member}/zk.pid");
                let pid = std::fs::read_to_string(&pid_file)
                    .unwrap_or_else(|error| panic!("{pid_file}: {error}"))
                    .trim()
                    .parse()
                    .expect("a pid in zk.pid");
                (format!("{LOOPBACK}:{}", ZKREF_CLIENT_PORT + member as u16 - 1), pid)
            })
            .collect();
        Cluster::attach(&members)
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = std::process::Command::new(self.tools.join("stop.sh")).arg("ensemble").status();
    }
}
