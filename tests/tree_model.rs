//! The tree checked against a model, and against its own log.
//!
//! A model test: seeded random sequences of writes (create in every mode,
//! sequential and ephemeral included, setData and delete with right, wrong
//! and any versions, multis that succeed or fail part way, sessions that
//! close and take their ephemerals) go through the server's own path, the
//! `Preparer` and then `Tree::apply` on a committed tree, and every result
//! is checked against a model kept in a `BTreeMap`: the error code, the
//! reply (created path, the Stat fields the model tracks), the zxid each
//! write takes, and the touched nodes after each step; the whole tree every
//! [`WALK_EVERY`] steps and at the end.
//!
//! A replay property: the transactions of such a run, encoded as the log
//! stores them and decoded again, rebuild a tree equal to the one that
//! produced them (same digest and history, every node, session and
//! ephemeral), from an empty tree and from a snapshot taken part way.
//!
//! Seeds are printed; `ZOOCORE_TEST_SEED=<seed>` replays one.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::Random;
use zoocore::prep::{PrepSettings, Prepared, Preparer, WriteContext};
use zoocore::proto::codes::op;
use zoocore::proto::{Acl, CreateRequest, ErrorCode, MultiOp, OpResult, Request, Response, Stat};
use zoocore::replica::codec;
use zoocore::reply;
use zoocore::tree::{Tree, Txn, TxnHeader};

/// Seeds in a normal run, and writes per seed.
const SEEDS: usize = 5;
const STEPS: usize = 3000;
/// Every how many steps the whole tree is compared with the model.
const WALK_EVERY: usize = 250;
/// Sessions open at any time.
const SESSIONS: usize = 3;
/// Names the random paths are made of, up to this depth: few enough that
/// writes often meet existing nodes, parents and children.
const NAMES: &[&str] = &["a", "b", "c"];
const DEPTH_MAX: u64 = 3;

/// What a znode is, as far as the rules the model follows care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Persistent,
    Ephemeral,
    Container,
    Ttl,
}

#[derive(Debug, Clone)]
struct ModelNode {
    data: Option<Vec<u8>>,
    czxid: i64,
    mzxid: i64,
    pzxid: i64,
    ctime: i64,
    mtime: i64,
    version: i32,
    aversion: i32,
    /// Children ever created here: the next sequential suffix.
    creates: i32,
    children: BTreeSet<String>,
    /// The owning session of an ephemeral, else 0.
    owner: i64,
    kind: Kind,
}

impl ModelNode {
    /// The Stat a client is shown: cversion counts creates and deletes.
    fn stat(&self) -> Stat {
        let children = self.children.len() as i32;
        Stat {
            czxid: self.czxid,
            mzxid: self.mzxid,
            ctime: self.ctime,
            mtime: self.mtime,
            version: self.version,
            cversion: 2 * self.creates - children,
            aversion: self.aversion,
            ephemeral_owner: self.owner,
            data_length: self.data.as_ref().map_or(0, Vec::len) as i32,
            num_children: children,
            pzxid: self.pzxid,
        }
    }
}

/// The tree as plain maps, with ZooKeeper's rules written out one by one.
#[derive(Debug, Clone)]
struct Model {
    nodes: BTreeMap<String, ModelNode>,
    zxid: i64,
}

fn parent_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) => "/",
        Some(slash) => &path[..slash],
        None => unreachable!("generated paths are absolute"),
    }
}

fn name_of(path: &str) -> &str {
    &path[path.rfind('/').expect("an absolute path") + 1..]
}

impl Model {
    /// The fresh tree's nodes (the root and /zookeeper's), as the model's start.
    fn of_fresh_tree(tree: &Tree) -> Model {
        let mut nodes = BTreeMap::new();
        for (path, node) in tree.paths() {
            nodes.insert(
                path.to_string(),
                ModelNode {
                    data: node.data().map(<[u8]>::to_vec),
                    czxid: node.czxid(),
                    mzxid: node.mzxid(),
                    pzxid: node.pzxid(),
                    ctime: node.ctime_ms(),
                    mtime: node.mtime_ms(),
                    version: node.version(),
                    aversion: node.aversion(),
                    creates: node.cversion(),
                    children: tree.children(path).into_iter().map(str::to_string).collect(),
                    owner: 0,
                    kind: Kind::Persistent,
                },
            );
        }
        Model { nodes, zxid: tree.last_zxid() }
    }

    fn create(
        &mut self,
        create: &CreateRequest,
        session: i64,
        zxid: i64,
        time: i64,
    ) -> Result<(String, Stat), ErrorCode> {
        let (kind, sequential) = match create.flags {
            0 => (Kind::Persistent, false),
            1 => (Kind::Ephemeral, false),
            2 => (Kind::Persistent, true),
            3 => (Kind::Ephemeral, true),
            4 => (Kind::Container, false),
            5 => (Kind::Ttl, false),
            6 => (Kind::Ttl, true),
            flags => unreachable!("generated flags {flags}"),
        };
        // ZooKeeper's order: the parent, then the name, then the parent's kind.
        let parent_path = parent_of(&create.path).to_string();
        let parent = self.nodes.get(&parent_path).ok_or(ErrorCode::NoNode)?;
        let path = if sequential { format!("{}{:010}", create.path, parent.creates) } else { create.path.clone() };
        if self.nodes.contains_key(&path) {
            return Err(ErrorCode::NodeExists);
        }
        if parent.kind == Kind::Ephemeral {
            return Err(ErrorCode::NoChildrenForEphemerals);
        }
        let parent = self.nodes.get_mut(&parent_path).expect("looked up above");
        parent.creates += 1;
        parent.pzxid = zxid;
        parent.children.insert(name_of(&path).to_string());
        let node = ModelNode {
            data: create.data.clone(),
            czxid: zxid,
            mzxid: zxid,
            pzxid: zxid,
            ctime: time,
            mtime: time,
            version: 0,
            aversion: 0,
            creates: 0,
            children: BTreeSet::new(),
            owner: if kind == Kind::Ephemeral { session } else { 0 },
            kind,
        };
        let stat = node.stat();
        self.nodes.insert(path.clone(), node);
        Ok((path, stat))
    }

    fn set_data(
        &mut self,
        path: &str,
        data: &Option<Vec<u8>>,
        version: i32,
        zxid: i64,
        time: i64,
    ) -> Result<Stat, ErrorCode> {
        let node = self.nodes.get_mut(path).ok_or(ErrorCode::NoNode)?;
        if version != -1 && version != node.version {
            return Err(ErrorCode::BadVersion);
        }
        node.data = data.clone();
        node.version += 1;
        node.mzxid = zxid;
        node.mtime = time;
        Ok(node.stat())
    }

    fn delete(&mut self, path: &str, version: i32, zxid: i64) -> Result<(), ErrorCode> {
        if matches!(path, "/" | "/zookeeper" | "/zookeeper/quota" | "/zookeeper/config") {
            return Err(ErrorCode::BadArguments);
        }
        self.nodes.get(parent_of(path)).ok_or(ErrorCode::NoNode)?;
        let node = self.nodes.get(path).ok_or(ErrorCode::NoNode)?;
        if version != -1 && version != node.version {
            return Err(ErrorCode::BadVersion);
        }
        if !node.children.is_empty() {
            return Err(ErrorCode::NotEmpty);
        }
        self.remove(path, zxid);
        Ok(())
    }

    fn remove(&mut self, path: &str, zxid: i64) {
        self.nodes.remove(path);
        let parent = self.nodes.get_mut(parent_of(path)).expect("a node's parent exists");
        parent.children.remove(name_of(path));
        parent.pzxid = parent.pzxid.max(zxid);
    }

    fn check(&self, path: &str, version: i32) -> Result<(), ErrorCode> {
        let node = self.nodes.get(path).ok_or(ErrorCode::NoNode)?;
        if version != -1 && version != node.version {
            return Err(ErrorCode::BadVersion);
        }
        Ok(())
    }

    fn close_session(&mut self, session: i64, zxid: i64) {
        for path in self.ephemerals_of(session) {
            self.remove(&path, zxid);
        }
    }

    fn ephemerals_of(&self, session: i64) -> Vec<String> {
        let owned = self.nodes.iter().filter(|(_, node)| node.kind == Kind::Ephemeral && node.owner == session);
        owned.map(|(path, _)| path.clone()).collect()
    }

    /// One multi operation on the model.
    fn multi_op(&mut self, operation: &MultiOp, session: i64, zxid: i64, time: i64) -> Result<OpResult, ErrorCode> {
        Ok(match operation {
            MultiOp::Create(create) => {
                let (path, stat) = self.create(create, session, zxid, time)?;
                if create.opcode == op::CREATE {
                    OpResult::Create(path)
                } else {
                    OpResult::Create2(path, stat)
                }
            }
            MultiOp::SetData { path, data, version } => {
                OpResult::SetData(self.set_data(path, data, *version, zxid, time)?)
            }
            MultiOp::Delete { path, version } => {
                self.delete(path, *version, zxid)?;
                OpResult::Delete
            }
            MultiOp::Check { path, version } => {
                self.check(path, *version)?;
                OpResult::Check
            }
            MultiOp::GetData { .. } | MultiOp::GetChildren { .. } => unreachable!("no reads are generated"),
        })
    }

    /// What the server must answer to `request`, and the model after it.
    /// Every write takes the next zxid, failed ones too.
    fn write(&mut self, request: &Request, session: i64, time: i64) -> (ErrorCode, Response) {
        self.zxid += 1;
        let zxid = self.zxid;
        let result = match request {
            Request::Create(create) => self.create(create, session, zxid, time).map(|(path, stat)| {
                if create.opcode == op::CREATE {
                    Response::Path(path)
                } else {
                    Response::PathStat(path, stat)
                }
            }),
            Request::SetData { path, data, version } => {
                self.set_data(path, data, *version, zxid, time).map(Response::Stat)
            }
            Request::Delete { path, version } => self.delete(path, *version, zxid).map(|()| Response::Empty),
            Request::Multi(operations) => {
                // All or nothing: on a copy, each operation seeing the ones before it.
                let mut scratch = self.clone();
                let mut results = Vec::new();
                for (index, operation) in operations.iter().enumerate() {
                    match scratch.multi_op(operation, session, zxid, time) {
                        Ok(result) => results.push(result),
                        Err(err) => {
                            let code = |position: usize| match position.cmp(&index) {
                                std::cmp::Ordering::Less => 0,
                                std::cmp::Ordering::Equal => err.code(),
                                std::cmp::Ordering::Greater => ErrorCode::RuntimeInconsistency.code(),
                            };
                            let errors = (0..operations.len()).map(|position| OpResult::Error(code(position)));
                            return (ErrorCode::Ok, Response::Multi(errors.collect()));
                        }
                    }
                }
                *self = scratch;
                Ok(Response::Multi(results))
            }
            other => unreachable!("not generated: {other:?}"),
        };
        match result {
            Ok(response) => (ErrorCode::Ok, response),
            Err(err) => (err, Response::Empty),
        }
    }
}

/// One seeded run: the server's write path on one side, the model on the other.
struct Run {
    seed: u64,
    random: Random,
    preparer: Preparer,
    committed: Tree,
    model: Model,
    sessions: Vec<i64>,
    next_session: i64,
    time_ms: i64,
    /// Every transaction applied to `committed`, in order: its log.
    log: Vec<(TxnHeader, Txn)>,
    /// How often each kind of outcome was seen, so a run shows it met them all.
    seen: BTreeMap<&'static str, usize>,
}

impl Run {
    fn new(seed: u64) -> Run {
        let settings = PrepSettings { extended_types_enabled: true, ..PrepSettings::default() };
        let mut run = Run {
            seed,
            random: Random::new(seed),
            preparer: Preparer::new(Tree::new(), settings),
            model: Model::of_fresh_tree(&Tree::new()),
            committed: Tree::new(),
            sessions: Vec::new(),
            next_session: 0x100,
            time_ms: 1_000,
            log: Vec::new(),
            seen: BTreeMap::new(),
        };
        for _ in 0..SESSIONS {
            run.open_session();
        }
        run
    }

    fn commit(&mut self, header: TxnHeader, txn: Txn) -> zoocore::tree::Applied {
        let applied = self.committed.apply(&header, &txn);
        self.log.push((header, txn));
        applied
    }

    fn open_session(&mut self) {
        let session = self.next_session;
        self.next_session += 1;
        self.time_ms += 1;
        let (header, txn) =
            self.preparer.create_session(session, 30_000, [7; 16], self.time_ms).expect("a fresh session id");
        self.model.zxid += 1;
        assert_eq!(header.zxid, self.model.zxid, "seed {}: createSession takes the next zxid", self.seed);
        self.commit(header, txn);
        self.sessions.push(session);
    }

    fn close_session(&mut self, step: usize) {
        let session = self.sessions.remove(self.random.below(self.sessions.len() as u64) as usize);
        self.time_ms += 1;
        let (header, txn) = self.preparer.close_session(session, self.time_ms).expect("an open session");
        self.model.zxid += 1;
        assert_eq!(header.zxid, self.model.zxid, "seed {} step {step}: closeSession's zxid", self.seed);
        let ephemerals = self.model.ephemerals_of(session);
        if !ephemerals.is_empty() {
            *self.seen.entry("a close deleting ephemerals").or_default() += 1;
        }
        self.model.close_session(session, header.zxid);
        self.commit(header, txn);
        for path in ephemerals {
            assert!(self.committed.get(&path).is_none(), "seed {} step {step}: {path} outlived its session", self.seed);
            self.assert_node(parent_of(&path), step);
        }
        self.open_session();
    }

    /// A path made of [`NAMES`], or one that exists (sequential names included).
    fn path(&mut self) -> String {
        let existing: Vec<&String> =
            self.model.nodes.keys().filter(|path| *path != "/" && !path.starts_with("/zookeeper")).collect();
        if !existing.is_empty() && self.random.percent(30) {
            return existing[self.random.below(existing.len() as u64) as usize].clone();
        }
        let depth = 1 + self.random.below(DEPTH_MAX);
        (0..depth).map(|_| format!("/{}", self.random.pick(NAMES))).collect()
    }

    fn data(&mut self) -> Option<Vec<u8>> {
        if self.random.percent(10) {
            return None;
        }
        let length = self.random.below(16) as usize;
        Some(self.random.bytes(length))
    }

    /// Any version (-1), the node's own, or a wrong one.
    fn version(&mut self, path: &str) -> i32 {
        let current = self.model.nodes.get(path).map_or(0, |node| node.version);
        match self.random.below(10) {
            0..=2 => -1,
            3..=7 => current,
            _ => current + 1 + self.random.below(2) as i32,
        }
    }

    fn create_request(&mut self) -> CreateRequest {
        let flags = self.random.below(7) as i32;
        let mut path = self.path();
        if flags == 2 || flags == 3 || flags == 6 {
            // A sequential node: the name is a prefix under some parent.
            if self.random.percent(30) {
                path = String::new();
            }
            path.push_str("/s-");
        }
        let (opcode, ttl_ms) = match flags {
            4 => (op::CREATE_CONTAINER, -1),
            5 | 6 => (op::CREATE_TTL, 1 + self.random.below(100_000) as i64),
            _ => (if self.random.percent(50) { op::CREATE } else { op::CREATE2 }, -1),
        };
        CreateRequest { opcode, path, data: self.data(), acl: Acl::open_unsafe(), flags, ttl_ms }
    }

    fn multi_op(&mut self) -> MultiOp {
        match self.random.below(4) {
            0 => MultiOp::Create(self.create_request()),
            1 => {
                let path = self.path();
                MultiOp::SetData { version: self.version(&path), data: self.data(), path }
            }
            2 => {
                let path = self.path();
                MultiOp::Delete { version: self.version(&path), path }
            }
            _ => {
                let path = self.path();
                MultiOp::Check { version: self.version(&path), path }
            }
        }
    }

    fn request(&mut self) -> Request {
        match self.random.below(100) {
            0..=39 => Request::Create(self.create_request()),
            40..=59 => {
                let path = self.path();
                Request::SetData { version: self.version(&path), data: self.data(), path }
            }
            60..=79 => {
                let path = self.path();
                Request::Delete { version: self.version(&path), path }
            }
            _ => {
                let count = 1 + self.random.below(4) as usize;
                Request::Multi((0..count).map(|_| self.multi_op()).collect())
            }
        }
    }

    /// One random step: a session closes (and another opens), or a write.
    fn step(&mut self, step: usize) {
        if self.random.percent(3) {
            self.close_session(step);
            return;
        }
        let request = self.request();
        let session = self.sessions[self.random.below(self.sessions.len() as u64) as usize];
        self.time_ms += 1;
        let context = WriteContext { session_id: session, xid: step as i32, auth: &[], time_ms: self.time_ms };
        let expected = self.model.write(&request, session, self.time_ms);
        *self.seen.entry(outcome(&request, &expected)).or_default() += 1;
        let what = format!("seed {} step {step}: {request:?}", self.seed);
        let Prepared::Txn { header, txn, err, response } = self.preparer.prepare(&request, &context) else {
            panic!("{what}: a write is logged");
        };
        assert_eq!(header.zxid, self.model.zxid, "{what}: the zxid");
        assert_eq!((err, response), expected, "{what}: prep's answer");
        let applied = self.commit(header, txn);
        let (_, txn) = self.log.last().expect("just logged");
        assert_eq!(reply::build(&request, txn, &applied), expected, "{what}: the committed tree's answer");
        for path in touched(&request, &expected.1) {
            self.assert_node(&path, step);
            if path != "/" {
                self.assert_node(parent_of(&path), step);
            }
        }
    }

    /// The node at `path` is in the committed tree exactly as in the model (or in neither).
    fn assert_node(&self, path: &str, step: usize) {
        let actual = self.committed.get(path).map(|node| (node.stat(), node.data().map(<[u8]>::to_vec)));
        let expected = self.model.nodes.get(path).map(|node| (node.stat(), node.data.clone()));
        assert_eq!(actual, expected, "seed {} step {step}: {path}", self.seed);
    }

    /// The whole committed tree against the model: paths, nodes, children, ephemerals.
    fn assert_whole_tree(&self, step: usize) {
        let paths: BTreeSet<String> = self.committed.paths().map(|(path, _)| path.to_string()).collect();
        let expected: BTreeSet<String> = self.model.nodes.keys().cloned().collect();
        assert_eq!(paths, expected, "seed {} step {step}: the paths", self.seed);
        for (path, node) in &self.model.nodes {
            self.assert_node(path, step);
            let children: BTreeSet<String> = self.committed.children(path).into_iter().map(str::to_string).collect();
            assert_eq!(children, node.children, "seed {} step {step}: children of {path}", self.seed);
        }
        for session in &self.sessions {
            let ephemerals: Vec<String> = self.committed.ephemerals_of(*session).map(|path| path.to_string()).collect();
            assert_eq!(ephemerals, self.model.ephemerals_of(*session), "seed {} step {step}: ephemerals", self.seed);
        }
        assert_eq!(self.committed.last_zxid(), self.model.zxid, "seed {} step {step}: last zxid", self.seed);
    }
}

/// The kind of outcome a write had, for [`Run::seen`].
fn outcome(request: &Request, (err, response): &(ErrorCode, Response)) -> &'static str {
    match (request, err, response) {
        (Request::Create(create), ErrorCode::Ok, _) if create.flags == 3 => "an ephemeral sequential create",
        (Request::Create(create), ErrorCode::Ok, _) if create.flags == 1 => "an ephemeral create",
        (Request::Create(create), ErrorCode::Ok, _) if create.flags % 2 == 0 && create.flags != 4 => {
            if create.path.ends_with('-') {
                "a sequential create"
            } else {
                "a persistent create"
            }
        }
        (Request::Create(_), ErrorCode::Ok, _) => "a container or TTL create",
        (Request::SetData { .. }, ErrorCode::Ok, _) => "a setData",
        (Request::Delete { .. }, ErrorCode::Ok, _) => "a delete",
        (Request::Multi(_), _, Response::Multi(results)) if results.iter().any(|r| matches!(r, OpResult::Error(_))) => {
            "a failed multi"
        }
        (Request::Multi(_), _, _) => "a multi",
        (_, ErrorCode::NoNode, _) => "NoNode",
        (_, ErrorCode::NodeExists, _) => "NodeExists",
        (_, ErrorCode::BadVersion, _) => "BadVersion",
        (_, ErrorCode::NotEmpty, _) => "NotEmpty",
        (_, ErrorCode::NoChildrenForEphemerals, _) => "NoChildrenForEphemerals",
        (_, err, _) => panic!("an outcome the generator does not aim at: {err:?}"),
    }
}

/// Every outcome a run of [`STEPS`] meets.
const OUTCOMES: &[&str] = &[
    "an ephemeral sequential create",
    "an ephemeral create",
    "a sequential create",
    "a persistent create",
    "a container or TTL create",
    "a setData",
    "a delete",
    "a failed multi",
    "a multi",
    "NoNode",
    "NodeExists",
    "BadVersion",
    "NotEmpty",
    "NoChildrenForEphemerals",
    "a close deleting ephemerals",
];

/// The path a multi operation names (a prefix for a sequential create).
fn operation_path(operation: &MultiOp) -> &str {
    match operation {
        MultiOp::Create(create) => &create.path,
        MultiOp::Delete { path, .. }
        | MultiOp::SetData { path, .. }
        | MultiOp::Check { path, .. }
        | MultiOp::GetData { path }
        | MultiOp::GetChildren { path } => path,
    }
}

/// The paths a write may have changed: the ones it names, and the nodes it created.
fn touched(request: &Request, response: &Response) -> Vec<String> {
    let mut paths: Vec<String> = match request {
        Request::Create(create) => vec![create.path.clone()],
        Request::SetData { path, .. } | Request::Delete { path, .. } => vec![path.clone()],
        Request::Multi(operations) => {
            operations.iter().map(|operation| operation_path(operation).to_string()).collect()
        }
        _ => Vec::new(),
    };
    let created = |result: &OpResult| match result {
        OpResult::Create(path) | OpResult::Create2(path, _) => Some(path.clone()),
        _ => None,
    };
    match response {
        Response::Path(path) | Response::PathStat(path, _) => paths.push(path.clone()),
        Response::Multi(results) => paths.extend(results.iter().filter_map(created)),
        _ => {}
    }
    // A sequential request's own path is a prefix, not a node.
    paths.retain(|path| !path.ends_with('-'));
    paths
}

#[test]
fn the_tree_follows_a_btreemap_model_through_random_writes() {
    for seed in Random::seeds("tree model", SEEDS) {
        let mut run = Run::new(seed);
        for step in 0..STEPS {
            run.step(step);
            if (step + 1) % WALK_EVERY == 0 {
                run.assert_whole_tree(step);
            }
        }
        run.assert_whole_tree(STEPS);
        // Prep's speculative tree saw the same transactions.
        assert_eq!(run.preparer.speculative().digest(), run.committed.digest(), "seed {seed}: the speculative tree");
        // The run met every kind of outcome, so the checks above were not vacuous.
        let missing: Vec<&&str> = OUTCOMES.iter().filter(|kind| !run.seen.contains_key(**kind)).collect();
        assert!(missing.is_empty(), "seed {seed}: never saw {missing:?}; saw {:?}", run.seen);
    }
}

/// Everything a tree holds, in a form that compares whole.
fn contents(tree: &Tree) -> impl PartialEq + std::fmt::Debug {
    let nodes: BTreeMap<String, zoocore::tree::Node> =
        tree.paths().map(|(path, node)| (path.to_string(), zoocore::tree::Node::clone(node))).collect();
    let sessions: BTreeMap<i64, zoocore::tree::Session> =
        tree.sessions().map(|session| (session.id, session.clone())).collect();
    let ephemerals: BTreeMap<i64, Vec<String>> = tree
        .ephemerals()
        .map(|(session, paths)| (session, paths.iter().map(|path| path.to_string()).collect()))
        .collect();
    let containers: BTreeSet<String> = tree.containers().map(|path| path.to_string()).collect();
    let ttls: BTreeSet<String> = tree.ttl_nodes().map(|path| path.to_string()).collect();
    (
        tree.last_zxid(),
        tree.digest(),
        tree.node_count(),
        tree.approximate_data_bytes(),
        nodes,
        sessions,
        ephemerals,
        containers,
        ttls,
    )
}

/// Decodes the log entry a transaction is stored as, checking it reads back whole.
fn through_the_log(header: &TxnHeader, txn: &Txn, seed: u64) -> (TxnHeader, Txn) {
    let mut payload = Vec::new();
    codec::encode(header, txn, &mut payload);
    let decoded = codec::decode(header.zxid, &payload)
        .unwrap_or_else(|error| panic!("seed {seed}: zxid {} does not decode: {error:?}", header.zxid));
    assert_eq!((&decoded.0, &decoded.1), (header, txn), "seed {seed}: the log entry reads back whole");
    decoded
}

#[test]
fn a_tree_rebuilt_from_its_log_equals_the_tree_that_wrote_it() {
    for seed in Random::seeds("tree replay", SEEDS) {
        let mut run = Run::new(seed);
        let mut snapshot = None;
        for step in 0..STEPS {
            run.step(step);
            if step == STEPS / 2 {
                // A snapshot as the snapshot file keeps it: nodes, sessions, last zxid.
                let nodes: Vec<_> = run.committed.paths().map(|(_, node)| node.clone()).collect();
                let sessions: Vec<_> = run.committed.sessions().cloned().collect();
                snapshot = Some((nodes, sessions, run.committed.last_zxid()));
            }
        }
        // From nothing: every transaction, through the log's encoding.
        let mut rebuilt = Tree::new();
        for (header, txn) in &run.log {
            let (header, txn) = through_the_log(header, txn, seed);
            rebuilt.apply(&header, &txn);
        }
        assert_eq!(contents(&rebuilt), contents(&run.committed), "seed {seed}: replayed from the start");
        let history: Vec<_> = rebuilt.digest_log().copied().collect();
        assert_eq!(history, run.committed.digest_log().copied().collect::<Vec<_>>(), "seed {seed}: digest history");
        // From the snapshot: the log after it, as recovery does.
        let (nodes, sessions, last_zxid) = snapshot.expect("taken half way");
        let records = nodes.iter().map(zoocore::tree::RestoredNode::of);
        let mut recovered = Tree::restore(records, sessions, last_zxid).expect("the snapshot restores");
        for (header, txn) in run.log.iter().filter(|(header, _)| header.zxid > last_zxid) {
            let (header, txn) = through_the_log(header, txn, seed);
            recovered.apply(&header, &txn);
        }
        assert_eq!(contents(&recovered), contents(&run.committed), "seed {seed}: recovered from a snapshot");
        assert!(run.log.len() > STEPS, "seed {seed}: every step and session logged a transaction");
    }
}
