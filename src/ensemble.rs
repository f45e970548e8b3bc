//! Who is in the ensemble and which member this server is, from ZooKeeper's
//! own `zoo.cfg` and `dataDir/myid`.
//!
//! [`crate::config`] turns text into `server.N` lines; this module turns
//! those lines into an [`Ensemble`] that the peer transport and the node can
//! trust: every member has resolved socket addresses, this server's id is
//! one of them, no server is listed twice, and a stable
//! [`Ensemble::identity`] lets two servers tell, when they connect, whether
//! they were configured as members of the same ensemble. It is the one place
//! where a configuration that ZooKeeper would run as an ensemble is checked
//! against ZooKeeper's rules (`QuorumPeerConfig.setupMyId`,
//! `setupClientPort`, `setupPeerType`, `parseDynamicConfig` and
//! `QuorumPeer.start`), so that such a file never starts as a standalone
//! server by accident.
//!
//! It does no IO beyond what building the value needs, once, at start: the
//! `myid` file is read and host names are resolved (blocking, as ZooKeeper
//! does when it parses). Everything after that is plain data.
//!
//! Where zoocore is stricter than ZooKeeper, it is because ZooKeeper's
//! leniency there hides a mistake: ZooKeeper keeps the last of two lines for
//! one server id, and accepts two servers sharing a quorum or election
//! address (they then fail at run time); zoocore refuses both with the lines
//! named. Where ZooKeeper only warns (an even or tiny number of voters, a
//! `peerType` that disagrees with this server's line), zoocore warns the same
//! way, through [`Ensemble::warnings`], since this module has no logger.
//!
//! The identity covers the ids, the roles and the quorum and election ports,
//! and not the host names: a common way to write ZooKeeper's files (the
//! official Docker image's, for one) gives each server `0.0.0.0` for its own
//! line and names for the others, so the host parts differ from file to file
//! in an ensemble ZooKeeper runs happily. Ids, roles and ports are what the
//! members must agree on to form one quorum.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use thiserror::Error;

use crate::config::{Config, PeerRole, QuorumServer};

/// The name of ZooKeeper's server id file inside `dataDir`.
pub const MY_ID_FILE_NAME: &str = "myid";

/// One `server.N` line, with its addresses resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The N of `server.N`.
    pub id: u64,
    /// Whether it votes.
    pub role: PeerRole,
    /// Where it accepts peer connections (ZooKeeper's quorum port, where
    /// followers meet the leader; zoocore's peer transport listens there).
    pub quorum_address: SocketAddr,
    /// ZooKeeper's leader-election port. zoocore elects over the quorum
    /// port, but keeps the address for `conf` and for the identity.
    pub election_address: SocketAddr,
    /// Where it serves clients. For this server it is always known: the
    /// server line's, or `clientPortAddress:clientPort` when the line has
    /// none, as in ZooKeeper's `setupClientPort`. For other members it is
    /// the server line's, if any.
    pub client_address: Option<SocketAddr>,
}

/// The members of the ensemble and which one this server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ensemble {
    /// This server's id, from `dataDir/myid`.
    pub my_id: u64,
    /// Every member, this server included, by id.
    pub members: BTreeMap<u64, Member>,
    /// A stable hash of the member list (ids, roles, quorum and election
    /// ports), exchanged when peers connect so that a server configured for
    /// another ensemble is refused.
    pub identity: u64,
    /// What ZooKeeper would log as a warning about this configuration.
    pub warnings: Vec<String>,
}

/// Why a configuration cannot run as an ensemble.
#[derive(Debug, Error)]
pub enum EnsembleError {
    /// `dataDir/myid` does not exist.
    #[error(
        "myid file {} is missing: an ensemble member reads its server id there, as ZooKeeper does; \
         write this server's N from its server.N line into it (for example `echo {example} > {}`); \
         the ids in this configuration are {}",
        path.display(), path.display(), render_ids(ids)
    )]
    MyIdMissing {
        /// Where the file was looked for.
        path: PathBuf,
        /// The ids of the server lines, to choose from.
        ids: Vec<u64>,
        /// The first of them, for the example command.
        example: u64,
    },
    /// `dataDir/myid` exists but cannot be read.
    #[error("cannot read myid file {}: {error}", path.display())]
    MyIdUnreadable {
        /// The file.
        path: PathBuf,
        /// What the operating system reported.
        error: std::io::Error,
    },
    /// The first line of `myid` is not a server id.
    #[error("myid file {}: {text:?} is not a server id (expected a number from 0 to 9223372036854775807)", path.display())]
    MyIdNotANumber {
        /// The file.
        path: PathBuf,
        /// Its first line, trimmed.
        text: String,
    },
    /// `myid` names a server that has no `server.N` line.
    #[error(
        "myid file {} says this is server {id}, but there is no server.{id} line; the ids in this configuration are {}",
        path.display(), render_ids(ids)
    )]
    MyIdNotListed {
        /// The file.
        path: PathBuf,
        /// The id it holds.
        id: u64,
        /// The ids of the server lines.
        ids: Vec<u64>,
    },
    /// One server id is written on more than one line.
    #[error("server {id} is listed more than once: {}", lines.join(", "))]
    RepeatedServerId {
        /// The id.
        id: u64,
        /// The lines naming it, as `server.1 (line 14)`.
        lines: Vec<String>,
    },
    /// Two server lines use the same address.
    #[error("server.{first} and server.{second} both use {address} ({first_use} port of server.{first}, {second_use} port of server.{second})")]
    SharedAddress {
        /// The smaller id.
        first: u64,
        /// What the address is for the first (`quorum` or `election`).
        first_use: &'static str,
        /// The other id (may equal `first` when a line repeats its own address).
        second: u64,
        /// What the address is for the second.
        second_use: &'static str,
        /// The address both resolve to.
        address: SocketAddr,
    },
    /// A host name in a server line does not resolve.
    #[error("server.{id}: host {host:?} does not resolve: {reason}")]
    UnresolvedHost {
        /// The server line's id.
        id: u64,
        /// The host as written.
        host: String,
        /// What the resolver said.
        reason: String,
    },
    /// Only observers are listed, which ZooKeeper rejects.
    #[error(
        "the server lines list {observers} observer(s) and no participant: observers need voting members to follow"
    )]
    NoVoters {
        /// How many observers are listed.
        observers: usize,
    },
    /// One voter plus observers while standalone mode is on, which ZooKeeper rejects.
    #[error(
        "one participant with {observers} observer(s) while standaloneEnabled=true: ZooKeeper rejects observers \
         without a quorum; set standaloneEnabled=false to run an ensemble of one voter"
    )]
    ObserversWithoutQuorum {
        /// How many observers are listed.
        observers: usize,
    },
    /// `clientPort`/`clientPortAddress` disagree with this server's line.
    #[error(
        "client address for this server (id = {id}) in zoo.cfg is {static_address} (clientPort/clientPortAddress), \
         which differs from {line_address} in its server.{id} line; remove clientPort or make them agree"
    )]
    ClientAddressConflict {
        /// This server's id.
        id: u64,
        /// What `clientPortAddress:clientPort` say.
        static_address: String,
        /// What the server line says.
        line_address: SocketAddr,
    },
}

fn render_ids(ids: &[u64]) -> String {
    ids.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
}

impl Ensemble {
    /// Builds the ensemble of a configuration, or `None` for a standalone
    /// one (no server lines, or one voter with `standaloneEnabled=true`,
    /// which ZooKeeper also runs standalone). Reads `myid` from `dataDir` as
    /// ZooKeeper does, and resolves host names.
    pub fn from_config(config: &Config) -> Result<Option<Ensemble>, EnsembleError> {
        if let Some((&id, lines)) = config.repeated_server_ids.iter().next() {
            return Err(EnsembleError::RepeatedServerId { id, lines: lines.clone() });
        }
        let voter_count = config.servers.values().filter(|server| server.role == PeerRole::Participant).count();
        let observer_count = config.servers.len() - voter_count;
        if config.servers.is_empty() {
            return Ok(None);
        }
        if voter_count == 0 {
            return Err(EnsembleError::NoVoters { observers: observer_count });
        }
        if !config.is_distributed() {
            // One voter and standalone mode on: ZooKeeper runs standalone
            // and logs the line as ignored, unless observers are listed.
            if observer_count > 0 {
                return Err(EnsembleError::ObserversWithoutQuorum { observers: observer_count });
            }
            return Ok(None);
        }

        let ids: Vec<u64> = config.servers.keys().copied().collect();
        let my_id = read_my_id(config, &ids)?;
        let mut warnings = Vec::new();
        if voter_count <= 2 {
            warnings.push(format!(
                "{voter_count} voting member(s): no server failure will be tolerated; you need at least 3 servers"
            ));
        } else if voter_count % 2 == 0 {
            warnings.push(format!(
                "{voter_count} voting members: non-optimal configuration, consider an odd number of servers \
                 (an even number tolerates no more failures than one less)"
            ));
        }

        let mut members = BTreeMap::new();
        for server in config.servers.values() {
            let member = resolve_member(server)?;
            members.insert(member.id, member);
        }
        check_shared_addresses(&members)?;

        let me = members.get_mut(&my_id).expect("read_my_id checks that my id has a server line");
        me.client_address = Some(my_client_address(config, me)?);
        if me.role != config.peer_type {
            warnings.push(format!(
                "peerType={} disagrees with this server's line server.{my_id} ({}); using the server line, as ZooKeeper does",
                config.peer_type.as_str(),
                me.role.as_str()
            ));
        }

        let identity = identity(&members);
        Ok(Some(Ensemble { my_id, members, identity, warnings }))
    }

    /// This server's member.
    pub fn me(&self) -> &Member {
        // from_config guarantees it; a hand-built Ensemble without it is a programming error.
        &self.members[&self.my_id]
    }

    /// The ids of the voting members (participants), ascending.
    pub fn voters(&self) -> Vec<u64> {
        self.members.values().filter(|member| member.role == PeerRole::Participant).map(|member| member.id).collect()
    }

    /// The ids of the non-voting members (observers), ascending.
    pub fn learners(&self) -> Vec<u64> {
        self.members.values().filter(|member| member.role == PeerRole::Observer).map(|member| member.id).collect()
    }

    /// Every member but this server, by ascending id.
    pub fn peers(&self) -> impl Iterator<Item = &Member> {
        let my_id = self.my_id;
        self.members.values().filter(move |member| member.id != my_id)
    }

    /// Builds an ensemble from members given directly (tests, and servers
    /// bound to ephemeral ports), with the identity computed as
    /// [`Ensemble::from_config`] would.
    ///
    /// Returns `None` when `my_id` is not among the members.
    pub fn from_members(my_id: u64, members: impl IntoIterator<Item = Member>) -> Option<Ensemble> {
        let members: BTreeMap<u64, Member> = members.into_iter().map(|member| (member.id, member)).collect();
        if !members.contains_key(&my_id) {
            return None;
        }
        let identity = identity(&members);
        Some(Ensemble { my_id, members, identity, warnings: Vec::new() })
    }
}

/// Reads `dataDir/myid`: its first line is the id, as ZooKeeper reads it
/// (surrounding whitespace is forgiven, which ZooKeeper does not do).
fn read_my_id(config: &Config, ids: &[u64]) -> Result<u64, EnsembleError> {
    let path = config.data_dir.join(MY_ID_FILE_NAME);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let example = ids.first().copied().unwrap_or(1);
            return Err(EnsembleError::MyIdMissing { path, ids: ids.to_vec(), example });
        }
        Err(error) => return Err(EnsembleError::MyIdUnreadable { path, error }),
    };
    let text = String::from_utf8_lossy(&bytes);
    let first_line = text.lines().next().unwrap_or_default().trim();
    let id = match first_line.parse::<u64>() {
        Ok(id) if i64::try_from(id).is_ok() => id,
        _ => return Err(EnsembleError::MyIdNotANumber { path, text: first_line.to_string() }),
    };
    if !ids.contains(&id) {
        return Err(EnsembleError::MyIdNotListed { path, id, ids: ids.to_vec() });
    }
    Ok(id)
}

/// Resolves a host and port, preferring the first address the resolver gives.
fn resolve(id: u64, host: &str, port: u16) -> Result<SocketAddr, EnsembleError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let unresolved = |reason: String| EnsembleError::UnresolvedHost { id, host: host.to_string(), reason };
    let mut addresses = (host, port).to_socket_addrs().map_err(|error| unresolved(error.to_string()))?;
    addresses.next().ok_or_else(|| unresolved("no address".to_string()))
}

fn resolve_member(server: &QuorumServer) -> Result<Member, EnsembleError> {
    let quorum_address = resolve(server.id, &server.host, server.quorum_port)?;
    let election_address = SocketAddr::new(quorum_address.ip(), server.election_port);
    let client_address = match &server.client_address {
        Some(client) => Some(resolve(server.id, &client.host, client.port)?),
        None => None,
    };
    Ok(Member { id: server.id, role: server.role, quorum_address, election_address, client_address })
}

/// Refuses two uses of one quorum or election address; ZooKeeper would
/// start and then fail to bind, or connect a server to itself.
fn check_shared_addresses(members: &BTreeMap<u64, Member>) -> Result<(), EnsembleError> {
    let mut seen: BTreeMap<SocketAddr, (u64, &'static str)> = BTreeMap::new();
    for member in members.values() {
        for (address, used_as) in [(member.quorum_address, "quorum"), (member.election_address, "election")] {
            if let Some(&(first, first_use)) = seen.get(&address) {
                return Err(EnsembleError::SharedAddress {
                    first,
                    first_use,
                    second: member.id,
                    second_use: used_as,
                    address,
                });
            }
            seen.insert(address, (member.id, used_as));
        }
    }
    Ok(())
}

/// Where this server serves clients, by ZooKeeper's `setupClientPort`: the
/// server line's client address wins; `clientPort` (and
/// `clientPortAddress`) written beside it must agree with it, where a
/// wildcard `clientPortAddress`, or none (ZooKeeper's wildcard default),
/// only has to agree on the port. Without a client address in the line,
/// zoo.cfg's `clientPortAddress:clientPort` is used (zoocore's defaults).
fn my_client_address(config: &Config, me: &Member) -> Result<SocketAddr, EnsembleError> {
    let static_address = config.client_socket_address();
    let Some(line_address) = me.client_address else {
        return Ok(static_address);
    };
    if config.client_port_set {
        let wildcard = !config.client_port_address_set || static_address.ip().is_unspecified();
        let agrees =
            if wildcard { static_address.port() == line_address.port() } else { static_address == line_address };
        if !agrees {
            let static_text = if config.client_port_address_set {
                static_address.to_string()
            } else {
                format!("clientPort={}", static_address.port())
            };
            return Err(EnsembleError::ClientAddressConflict { id: me.id, static_address: static_text, line_address });
        }
    }
    Ok(line_address)
}

/// FNV-1a over a canonical rendering of ids, roles and ports: stable across
/// builds and platforms, unlike `std`'s hashers, which is what an identity
/// exchanged between processes needs.
fn identity(members: &BTreeMap<u64, Member>) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET_BASIS;
    for member in members.values() {
        let line = format!(
            "server.{}={}:{}:{}\n",
            member.id,
            member.quorum_address.port(),
            member.election_address.port(),
            member.role.as_str()
        );
        for byte in line.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// A data directory with an optional myid, removed when dropped.
    struct DataDir(PathBuf);

    impl DataDir {
        fn new(tag: &str, my_id: Option<&str>) -> DataDir {
            let path = std::env::temp_dir().join(format!("zoocore-ensemble-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            if let Some(text) = my_id {
                std::fs::write(path.join("myid"), text).unwrap();
            }
            DataDir(path)
        }
    }

    impl Drop for DataDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const THREE: &str = "\
server.1=127.0.0.1:28881:38881:participant;127.0.0.1:2181
server.2=127.0.0.1:28882:38882:participant;127.0.0.1:2182
server.3=127.0.0.1:28883:38883:participant;127.0.0.1:2183
";

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    fn config(data_dir: &Path, text: &str) -> Config {
        let text = format!("dataDir={}\n{text}", data_dir.display());
        Config::parse(&text).unwrap_or_else(|error| panic!("{text:?}: {error}"))
    }

    fn ensemble(tag: &str, my_id: &str, text: &str) -> Ensemble {
        let data = DataDir::new(tag, Some(my_id));
        Ensemble::from_config(&config(&data.0, text)).unwrap().expect("an ensemble")
    }

    fn refused(tag: &str, my_id: Option<&str>, text: &str) -> EnsembleError {
        let data = DataDir::new(tag, my_id);
        match Ensemble::from_config(&config(&data.0, text)) {
            Ok(ensemble) => panic!("expected an error for {text:?}, got {ensemble:?}"),
            Err(error) => error,
        }
    }

    #[test]
    fn a_three_server_ensemble() {
        let ensemble = ensemble("three", "2\n", THREE);
        assert_eq!(ensemble.my_id, 2);
        assert_eq!(ensemble.voters(), [1, 2, 3]);
        assert!(ensemble.learners().is_empty());
        assert_eq!(ensemble.peers().map(|member| member.id).collect::<Vec<_>>(), [1, 3]);
        let me = ensemble.me();
        assert_eq!(me.quorum_address, addr("127.0.0.1:28882"));
        assert_eq!(me.election_address, addr("127.0.0.1:38882"));
        assert_eq!(me.client_address, Some(addr("127.0.0.1:2182")));
        assert!(ensemble.warnings.is_empty(), "{:?}", ensemble.warnings);
    }

    #[test]
    fn standalone_configs_have_no_ensemble() {
        let data = DataDir::new("standalone", None);
        assert_eq!(Ensemble::from_config(&config(&data.0, "clientPort=2181\n")).unwrap(), None);
        // One voter with standalone mode on runs standalone, as in ZooKeeper,
        // and needs no myid.
        assert_eq!(Ensemble::from_config(&config(&data.0, "server.1=127.0.0.1:2888:3888\n")).unwrap(), None);
    }

    #[test]
    fn every_server_agrees_on_the_identity() {
        let identities: Vec<u64> =
            ["1", "2", "3"].iter().map(|id| ensemble(&format!("identity{id}"), id, THREE).identity).collect();
        assert_eq!(identities[0], identities[1]);
        assert_eq!(identities[1], identities[2]);
        // A server writing 0.0.0.0 for its own line, as ZooKeeper's Docker image does, is the same ensemble.
        let own_wildcard = THREE.replace("server.1=127.0.0.1", "server.1=0.0.0.0");
        assert_eq!(ensemble("wildcard", "1", &own_wildcard).identity, identities[0]);
        // Another role, port or member is another ensemble.
        let observer = THREE.replace("38883:participant", "38883:observer");
        assert_ne!(ensemble("observer", "1", &observer).identity, identities[0]);
        let port = THREE.replace("28883", "28884");
        assert_ne!(ensemble("port", "1", &port).identity, identities[0]);
        let four = format!("{THREE}server.4=127.0.0.1:28884:38884\n");
        assert_ne!(ensemble("four", "1", &four).identity, identities[0]);
    }

    #[test]
    fn observers_are_learners() {
        let text = format!("{THREE}server.4=127.0.0.1:28884:38884:observer\npeerType=observer\n");
        let ensemble = ensemble("learners", "4", &text);
        assert_eq!(ensemble.voters(), [1, 2, 3]);
        assert_eq!(ensemble.learners(), [4]);
        assert_eq!(ensemble.me().role, PeerRole::Observer);
        assert!(ensemble.warnings.is_empty(), "{:?}", ensemble.warnings);
    }

    #[test]
    fn peer_type_disagreeing_with_the_server_line_warns_and_the_line_wins() {
        let ensemble = ensemble("peertype", "1", &format!("{THREE}peerType=observer\n"));
        assert_eq!(ensemble.me().role, PeerRole::Participant);
        assert_eq!(ensemble.voters(), [1, 2, 3]);
        assert!(
            ensemble.warnings.iter().any(|warning| warning.contains("peerType=observer")),
            "{:?}",
            ensemble.warnings
        );
    }

    #[test]
    fn small_and_even_voter_counts_are_accepted_with_a_warning() {
        let two = "server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.1:2889:3889\n";
        let ensemble_two = ensemble("two", "1", two);
        assert_eq!(ensemble_two.voters(), [1, 2]);
        assert!(
            ensemble_two.warnings.iter().any(|warning| warning.contains("at least 3")),
            "{:?}",
            ensemble_two.warnings
        );
        let one = ensemble("one", "1", "standaloneEnabled=false\nserver.1=127.0.0.1:2888:3888\n");
        assert_eq!(one.voters(), [1]);
        assert_eq!(one.peers().count(), 0);
        let four = ensemble("even", "1", &format!("{THREE}server.4=127.0.0.1:28884:38884\n"));
        assert!(four.warnings.iter().any(|warning| warning.contains("odd number")), "{:?}", four.warnings);
    }

    #[test]
    fn a_missing_myid_says_where_and_what_to_write() {
        let data = DataDir::new("missing", None);
        let config = config(&data.0, THREE);
        let error = Ensemble::from_config(&config).unwrap_err();
        assert!(matches!(error, EnsembleError::MyIdMissing { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains(&data.0.join("myid").display().to_string()), "{message}");
        assert!(message.contains("echo 1 >"), "{message}");
        assert!(message.contains("1, 2, 3"), "{message}");
    }

    #[test]
    fn a_bad_myid_names_the_file_and_the_text() {
        for text in ["one\n", "", "-1", "1.0", "9223372036854775808"] {
            let error = refused("nan", Some(text), THREE);
            assert!(matches!(error, EnsembleError::MyIdNotANumber { .. }), "{text:?}: {error:?}");
            assert!(error.to_string().contains(&format!("{:?}", text.trim())), "{error}");
        }
        // ZooKeeper's own tooling writes the id and a newline; spaces are forgiven.
        assert_eq!(ensemble("spaces", " 3 \r\n", THREE).my_id, 3);
        let error = refused("unlisted", Some("7\n"), THREE);
        assert!(matches!(error, EnsembleError::MyIdNotListed { id: 7, .. }), "{error:?}");
        assert!(error.to_string().contains("server.7"), "{error}");
    }

    #[test]
    fn a_server_listed_twice_is_refused() {
        let error = refused("twice", Some("1"), &format!("{THREE}server.01=127.0.0.1:28884:38884\n"));
        assert!(matches!(error, EnsembleError::RepeatedServerId { id: 1, .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains("server.1 (line 2)") && message.contains("server.01 (line 5)"), "{message}");
        let error = refused("same-key", Some("1"), &format!("{THREE}server.2=127.0.0.1:28885:38885\n"));
        assert!(matches!(error, EnsembleError::RepeatedServerId { id: 2, .. }), "{error:?}");

        let shared_quorum = THREE.replace("28883:38883", "28881:38883");
        let error = refused("shared", Some("1"), &shared_quorum);
        assert!(matches!(error, EnsembleError::SharedAddress { first: 1, second: 3, .. }), "{error:?}");
        assert!(error.to_string().contains("127.0.0.1:28881"), "{error}");
        // One server's election port as another's quorum port is also a clash.
        let crossed = THREE.replace("28883:38883", "38881:38883");
        assert!(matches!(error_of("crossed", &crossed), EnsembleError::SharedAddress { .. }));
    }

    fn error_of(tag: &str, text: &str) -> EnsembleError {
        refused(tag, Some("1"), text)
    }

    #[test]
    fn observers_need_voters() {
        let only_observers = "server.1=127.0.0.1:2888:3888:observer\nserver.2=127.0.0.1:2889:3889:observer\n";
        assert!(matches!(error_of("only-observers", only_observers), EnsembleError::NoVoters { observers: 2 }));
        let one_voter = "server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.1:2889:3889:observer\n";
        assert!(matches!(error_of("one-voter", one_voter), EnsembleError::ObserversWithoutQuorum { observers: 1 }));
        // With standalone mode off, one voter and an observer are an ensemble.
        let ensemble = ensemble("one-voter-off", "2", &format!("standaloneEnabled=false\n{one_voter}"));
        assert_eq!(ensemble.voters(), [1]);
        assert_eq!(ensemble.learners(), [2]);
    }

    #[test]
    fn unresolvable_hosts_are_named() {
        let text = THREE.replace("server.3=127.0.0.1", "server.3=no-such-host.invalid");
        let error = error_of("unresolved", &text);
        assert!(matches!(error, EnsembleError::UnresolvedHost { id: 3, .. }), "{error:?}");
        assert!(error.to_string().contains("no-such-host.invalid"), "{error}");
        // localhost resolves (to whichever loopback the resolver lists first).
        let named = THREE.replace("server.3=127.0.0.1", "server.3=localhost");
        assert!(ensemble("localhost", "1", &named).members[&3].quorum_address.ip().is_loopback());
    }

    #[test]
    fn the_server_line_client_address_follows_zookeeper_rules() {
        // The line's address wins over zoocore's default clientPortAddress.
        assert_eq!(ensemble("client-line", "3", THREE).me().client_address, Some(addr("127.0.0.1:2183")));
        // A line with only a port listens on every address, as ZooKeeper does.
        let port_only = THREE.replace(";127.0.0.1:2183", ";2183");
        assert_eq!(ensemble("client-port", "3", &port_only).me().client_address, Some(addr("0.0.0.0:2183")));
        // Without a client part, clientPortAddress:clientPort is used, for me only.
        let no_client = "clientPort=3181\nserver.1=127.0.0.1:2888:3888\nserver.2=127.0.0.1:2889:3889\n";
        let ensemble_without = ensemble("client-static", "2", no_client);
        assert_eq!(ensemble_without.me().client_address, Some(addr("127.0.0.1:3181")));
        assert_eq!(ensemble_without.members[&1].client_address, None);
        // clientPort beside the line must agree with it: on the port when
        // clientPortAddress is absent or a wildcard, on the whole address otherwise.
        assert_eq!(
            ensemble("client-same-port", "3", &format!("clientPort=2183\n{THREE}")).me().client_address,
            Some(addr("127.0.0.1:2183"))
        );
        let wildcard = format!("clientPort=2183\nclientPortAddress=0.0.0.0\n{THREE}");
        assert_eq!(ensemble("client-wildcard", "3", &wildcard).me().client_address, Some(addr("127.0.0.1:2183")));
        let error = refused("client-port-differs", Some("3"), &format!("clientPort=2190\n{THREE}"));
        assert!(matches!(error, EnsembleError::ClientAddressConflict { id: 3, .. }), "{error:?}");
        assert!(
            error.to_string().contains("clientPort=2190") && error.to_string().contains("127.0.0.1:2183"),
            "{error}"
        );
        let other_ip = format!("clientPort=2183\nclientPortAddress=127.0.0.2\n{THREE}");
        let error = refused("client-ip-differs", Some("3"), &other_ip);
        assert!(matches!(error, EnsembleError::ClientAddressConflict { .. }), "{error:?}");
    }

    /// The files ZooKeeper 3.8's ensemble ran from (zkref's
    /// start-ensemble.sh), as written and as ZooKeeper rewrote them with
    /// reconfigEnabled=true, with only the directories changed.
    #[test]
    fn zookeeper_ensemble_files_give_three_ensembles() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ensemble");
        let mut identities = Vec::new();
        for node in 1..=3u64 {
            let source = fixtures.join(format!("n{node}"));
            let data = DataDir::new(&format!("fixture{node}"), None);
            std::fs::copy(source.join("myid"), data.0.join("myid")).unwrap();
            let dynamic = data.0.join("zoo.cfg.dynamic.100000000");
            std::fs::copy(source.join("zoo.cfg.dynamic.100000000"), &dynamic).unwrap();
            let original_data_dir = format!("/tmp/zkref-peer/ensemble/n{node}/data");
            for (name, rewrite_dynamic) in [("zoo.cfg", false), ("zoo.cfg.rewritten", true)] {
                let mut text = std::fs::read_to_string(source.join(name)).unwrap();
                text = text.replace(&original_data_dir, &data.0.display().to_string());
                if rewrite_dynamic {
                    let original = format!("/tmp/zkref-peer/ensemble/n{node}/zoo.cfg.dynamic.100000000");
                    assert!(text.contains(&original), "{name}: {text}");
                    text = text.replace(&original, &dynamic.display().to_string());
                }
                let path = data.0.join(name);
                std::fs::write(&path, text).unwrap();
                let config = Config::from_file(&path).unwrap_or_else(|error| panic!("n{node}/{name}: {error}"));
                assert!(config.is_distributed(), "n{node}/{name}");
                let ensemble = Ensemble::from_config(&config).unwrap().expect("an ensemble");
                assert_eq!(ensemble.my_id, node);
                assert_eq!(ensemble.voters(), [1, 2, 3]);
                let client_port = 2180 + u16::try_from(node).unwrap();
                assert_eq!(ensemble.me().client_address, Some(SocketAddr::from(([127, 0, 0, 1], client_port))));
                assert_eq!(ensemble.me().quorum_address.port(), 28880 + u16::try_from(node).unwrap());
                assert!(ensemble.warnings.is_empty(), "{:?}", ensemble.warnings);
                identities.push(ensemble.identity);
            }
        }
        assert!(identities.windows(2).all(|pair| pair[0] == pair[1]), "{identities:?}");
    }
}
