//! Clients that keep working through a fault and record what they saw, and
//! the checks run on that record once the fault has healed.
//!
//! Each client, on a session of its own, loops over three operations:
//! setData of a unique value on one of a few shared znodes, sync then
//! getData of one of them, and a create of a child no other client writes.
//! Every operation on a shared znode becomes an event (invocation, outcome,
//! response, in microseconds since the workload began) for the
//! simulator's per-znode linearizability checker; an operation whose reply
//! never came (connection lost, session gone, no answer within
//! `OPERATION_DEADLINE`) is recorded with no outcome, which the checker may
//! place anywhere after its invocation or nowhere. Creates acknowledged Ok
//! must all be on every member at the end.
//!
//! The workload runs on a runtime of its own so that the test can block on
//! the ensemble (kill, pause, restart) while clients keep going.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use zoocore::sim::linearizable::{self, Event, Op, Outcome, Verdict};
use zookeeper_client as zk;

use super::{persistent, Random};

/// A reply later than this counts as never having come.
pub const OPERATION_DEADLINE: Duration = Duration::from_secs(10);
/// Each client stops after this many operations, whatever the test does.
pub const CLIENT_OPERATIONS_MAX: u64 = 50_000;
/// Shared znodes the clients set and read.
pub const KEYS: usize = 3;

/// Where one client connects and with what session timeout.
#[derive(Clone)]
pub struct ClientPlan {
    /// A connect string: the whole ensemble, or one member to pin it there.
    pub hosts: String,
    pub session_timeout: Duration,
}

#[derive(Default)]
struct Record {
    /// (key, event) for every operation on a shared znode.
    events: Vec<(usize, Event)>,
    /// Children whose create was acknowledged Ok.
    created: BTreeSet<String>,
    /// (invocation, response) of every write acknowledged Ok.
    writes: Vec<(u64, u64)>,
}

struct Shared {
    root: String,
    began: Instant,
    stop: AtomicBool,
    record: Mutex<Record>,
}

impl Shared {
    fn now(&self) -> u64 {
        self.began.elapsed().as_micros() as u64
    }
}

/// A running workload; see the module docs.
pub struct Workload {
    runtime: tokio::runtime::Runtime,
    shared: Arc<Shared>,
    clients: Vec<tokio::task::JoinHandle<()>>,
}

impl Workload {
    /// Creates `root` and its shared znodes through `setup_hosts`, then
    /// starts one client per plan.
    pub fn start(setup_hosts: &str, root: &str, plans: &[ClientPlan], seed: u64) -> Workload {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime for the workload");
        runtime.block_on(async {
            let client = super::within(30, "setup connect", zk::Client::connect(setup_hosts)).await.expect("connect");
            client.create(root, b"", &persistent()).await.expect("create the workload's root");
            for key in 0..KEYS {
                client.create(&key_path(root, key), b"", &persistent()).await.expect("create a shared znode");
            }
        });
        let shared = Arc::new(Shared {
            root: root.to_string(),
            began: Instant::now(),
            stop: AtomicBool::new(false),
            record: Mutex::new(Record::default()),
        });
        let clients = plans
            .iter()
            .enumerate()
            .map(|(index, plan)| {
                let random = Random::new(seed ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
                runtime.spawn(run_client(shared.clone(), index as u64, plan.clone(), random))
            })
            .collect();
        Workload { runtime, shared, clients }
    }

    /// Microseconds since the workload began, on the clock events use.
    pub fn now(&self) -> u64 {
        self.shared.now()
    }

    /// Writes acknowledged so far.
    pub fn writes_acknowledged(&self) -> usize {
        self.shared.record.lock().unwrap().writes.len()
    }

    /// Waits up to `deadline` for `more` writes beyond those acknowledged now.
    pub fn wait_for_writes(&self, more: usize, deadline: Duration) -> bool {
        let target = self.writes_acknowledged() + more;
        super::wait_for(deadline, || self.writes_acknowledged() >= target)
    }

    /// The time from `fault` (a [`Workload::now`]) to the reply of the first
    /// write sent after it and acknowledged.
    pub fn first_write_after(&self, fault: u64) -> Option<Duration> {
        let record = self.shared.record.lock().unwrap();
        let first = record.writes.iter().filter(|(invoked, _)| *invoked >= fault).map(|(_, replied)| *replied).min()?;
        Some(Duration::from_micros(first - fault))
    }

    /// Stops the clients (each finishes or gives up on its operation in
    /// flight) and returns what they recorded.
    pub fn stop(self) -> History {
        self.shared.stop.store(true, Ordering::SeqCst);
        let clients = self.clients;
        self.runtime.block_on(async {
            for client in clients {
                let _ = client.await;
            }
        });
        let record = std::mem::take(&mut *self.shared.record.lock().unwrap());
        History { root: self.shared.root.clone(), began: self.shared.began, record, runtime: self.runtime }
    }
}

/// What a stopped workload recorded, and the checks on it.
pub struct History {
    root: String,
    began: Instant,
    record: Record,
    runtime: tokio::runtime::Runtime,
}

impl History {
    /// (events, operations whose reply never came).
    pub fn counts(&self) -> (usize, usize) {
        let unknown = self.record.events.iter().filter(|(_, event)| event.outcome.is_none()).count();
        (self.record.events.len(), unknown)
    }

    /// Operations of clients `clients` (by their index in the plans)
    /// invoked at or after `since` (a [`Workload::now`]) and answered.
    pub fn answered_since(&self, clients: std::ops::Range<u64>, since: u64) -> usize {
        self.record
            .events
            .iter()
            .filter(|(_, event)| clients.contains(&event.client) && event.invoke >= since && event.outcome.is_some())
            .count()
    }

    /// Reads every shared znode and every child on each member at
    /// `addresses` (sync first, so each read is a linearizable read), adds
    /// the reads to the history and checks that every acknowledged create
    /// is there.
    pub fn read_back_from(&mut self, addresses: &[&str]) {
        let now = || self.began.elapsed().as_micros() as u64;
        for (index, address) in addresses.iter().enumerate() {
            let (reads, children) = self.runtime.block_on(async {
                let client = super::within(30, "read-back connect", zk::Client::connect(address))
                    .await
                    .unwrap_or_else(|error| panic!("member {index} ({address}) takes no session: {error}"));
                let mut reads = Vec::new();
                for key in 0..KEYS {
                    let path = key_path(&self.root, key);
                    let invoke = now();
                    client.sync(&path).await.expect("sync before the read-back");
                    let (data, stat) = client.get_data(&path).await.expect("read back a shared znode");
                    reads.push((key, invoke, Some((data, stat.version)), now()));
                }
                client.sync(&self.root).await.expect("sync before listing");
                let children: BTreeSet<String> =
                    client.list_children(&self.root).await.expect("list the root").into_iter().collect();
                (reads, children)
            });
            for (key, invoke, state, response) in reads {
                let event = Event {
                    client: u64::MAX - index as u64,
                    op: Op::Read,
                    outcome: Some(Outcome::Read(state)),
                    invoke,
                    response: Some(response),
                };
                self.record.events.push((key, event));
            }
            let missing: Vec<&String> = self
                .record
                .created
                .iter()
                .filter(|path| !children.contains(path.rsplit('/').next().unwrap()))
                .collect();
            assert!(
                missing.is_empty(),
                "member {index} lost {} acknowledged creates, first {:?}",
                missing.len(),
                missing.first()
            );
        }
    }

    /// Checks each shared znode's history for linearizability; panics with
    /// the event no order explains.
    pub fn assert_linearizable(&self) {
        for key in 0..KEYS {
            let mut events: Vec<Event> =
                self.record.events.iter().filter(|(of, _)| *of == key).map(|(_, event)| event.clone()).collect();
            events.sort_by_key(|event| event.invoke);
            let initial = Some((Vec::new(), 0));
            match linearizable::check(&initial, &events) {
                Verdict::Linearizable => {}
                Verdict::Violation { stuck_at } => {
                    panic!("znode {key}'s history is not linearizable; no order places {stuck_at:?}")
                }
                Verdict::Inconclusive => panic!(
                    "znode {key}'s history of {} events was too large to check ({} states)",
                    events.len(),
                    linearizable::SEARCH_STATES_MAX
                ),
            }
        }
    }
}

fn key_path(root: &str, key: usize) -> String {
    format!("{root}/k{key}")
}

/// What happened to one operation: an outcome, or no reply (and whether
/// the session is to be dropped for a new one).
enum Reply<T> {
    Answered(T),
    Lost { session_gone: bool },
}

async fn call<T>(operation: impl std::future::Future<Output = Result<T, zk::Error>>) -> Reply<Result<T, zk::Error>> {
    match tokio::time::timeout(OPERATION_DEADLINE, operation).await {
        Err(_) => Reply::Lost { session_gone: true },
        Ok(Err(zk::Error::SessionExpired | zk::Error::ClientClosed)) => Reply::Lost { session_gone: true },
        Ok(Err(zk::Error::ConnectionLoss | zk::Error::Timeout)) => Reply::Lost { session_gone: false },
        Ok(answer) => Reply::Answered(answer),
    }
}

async fn run_client(shared: Arc<Shared>, client_id: u64, plan: ClientPlan, mut random: Random) {
    let mut session: Option<zk::Client> = None;
    let mut sequence = 0u64;
    while !shared.stop.load(Ordering::SeqCst) && sequence < CLIENT_OPERATIONS_MAX {
        let client = match &session {
            Some(client) => client.clone(),
            None => {
                let mut connector = zk::Client::connector();
                connector.session_timeout(plan.session_timeout);
                match tokio::time::timeout(OPERATION_DEADLINE, connector.connect(&plan.hosts)).await {
                    Ok(Ok(client)) => {
                        session = Some(client.clone());
                        client
                    }
                    _ => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                }
            }
        };
        sequence += 1;
        let key = random.below(KEYS as u64) as usize;
        let path = key_path(&shared.root, key);
        let roll = random.below(100);
        let invoke = shared.now();
        let session_gone = if roll < 40 {
            let data = format!("c{client_id}-{sequence}").into_bytes();
            let reply = call(client.set_data(&path, &data, None)).await;
            let response = shared.now();
            let op = Op::SetData { data, version: -1 };
            let (outcome, gone) = match reply {
                Reply::Answered(Ok(stat)) => (Some(Outcome::Version(stat.version)), false),
                Reply::Answered(Err(zk::Error::NoNode)) => (Some(Outcome::NoNode), false),
                Reply::Answered(Err(zk::Error::BadVersion)) => (Some(Outcome::BadVersion), false),
                Reply::Answered(Err(_)) => (None, false),
                Reply::Lost { session_gone } => (None, session_gone),
            };
            let mut record = shared.record.lock().unwrap();
            if matches!(outcome, Some(Outcome::Version(_))) {
                record.writes.push((invoke, response));
            }
            record.events.push((key, event(client_id, op, outcome, invoke, response)));
            gone
        } else if roll < 75 {
            let (outcome, gone) = match call(client.sync(&path)).await {
                Reply::Answered(Ok(())) => match call(client.get_data(&path)).await {
                    Reply::Answered(Ok((data, stat))) => (Some(Outcome::Read(Some((data, stat.version)))), false),
                    Reply::Answered(Err(zk::Error::NoNode)) => (Some(Outcome::Read(None)), false),
                    Reply::Answered(Err(_)) => (None, false),
                    Reply::Lost { session_gone } => (None, session_gone),
                },
                Reply::Answered(Err(_)) => (None, false),
                Reply::Lost { session_gone } => (None, session_gone),
            };
            let response = shared.now();
            // A read that was never answered constrains nothing.
            if outcome.is_some() {
                shared.record.lock().unwrap().events.push((key, event(client_id, Op::Read, outcome, invoke, response)));
            }
            gone
        } else {
            let child = format!("{}/c{client_id}-{sequence}", shared.root);
            let reply = call(client.create(&child, b"", &persistent())).await;
            let response = shared.now();
            match reply {
                Reply::Answered(Ok(_)) => {
                    let mut record = shared.record.lock().unwrap();
                    record.created.insert(child);
                    record.writes.push((invoke, response));
                    false
                }
                Reply::Answered(Err(_)) => false,
                Reply::Lost { session_gone } => session_gone,
            }
        };
        if session_gone {
            session = None;
        }
    }
}

fn event(client: u64, op: Op, outcome: Option<Outcome>, invoke: u64, response: u64) -> Event {
    let response = outcome.is_some().then_some(response);
    Event { client, op, outcome, invoke, response }
}
