//! Reading ZooKeeper's `zoo.cfg` into a typed [`Config`].
//!
//! zoocore wants to start from the same configuration files that operators
//! already write for Apache ZooKeeper, so this module follows the rules
//! ZooKeeper 3.8 applies in `QuorumPeerConfig.parseProperties`, and departs
//! from them only where a departure is safer and is written down here.
//!
//! The file is read in two steps. The first step turns text into entries: one
//! `key=value` per line, `#` and `!` start comment lines, blank lines are
//! skipped, and whitespace around the key and the value is trimmed, as
//! `java.util.Properties` followed by ZooKeeper's own `trim()` would do. Unlike
//! `Properties`, a line without `=` is an error that names its line number,
//! because in a server configuration such a line is always a mistake, and
//! backslash escapes and continuation lines are not interpreted: values are
//! taken literally, which is what every real `zoo.cfg` relies on. When a key
//! appears twice the later line wins, as it does in `Properties`, and the
//! earlier value is not even checked. A file that is not valid UTF-8 is read
//! as ISO-8859-1, the encoding `Properties.load` uses, so reading never fails
//! on encoding.
//!
//! The second step gives each entry a type. Every key zoocore understands
//! becomes a field with ZooKeeper's default, named in full with the unit last
//! (`tick_time_ms`, `session_timeout_min_ms`). A key that ZooKeeper does not
//! recognise is not an error there: ZooKeeper stores it as the Java system
//! property `zookeeper.<key>`, and that is how settings such as
//! `authProvider.1` or `DigestAuthenticationProvider.superDigest` reach the
//! rest of the server. zoocore keeps those entries in
//! [`Config::system_properties`] under the same prefixed names, and
//! [`Config::property`] finds them by either name. Those whose name ends in
//! `password` (`ssl.keyStore.password`) go to [`Config::secret_properties`]
//! instead, whose values print as `***`, so that nothing listing the
//! properties (the AdminServer's `system_properties`, Debug output, logs)
//! shows them; `initial_configuration` keeps the file's text with their
//! values masked. Keys that ZooKeeper itself
//! interprets but zoocore does not implement (SASL between peers and so
//! on) are ignored with a warning rather
//! than silently treated as system properties, because pretending to honour
//! `secureClientPort` would be worse than saying it is not honoured.
//!
//! Values are checked strictly. Where ZooKeeper would quietly read a bad
//! boolean as `false` or overflow an integer, zoocore refuses to start, and
//! every [`ConfigError`] names the key and the offending value, so an operator
//! can fix the file from the message alone. Where ZooKeeper corrects a value
//! and logs a warning (a `snapCount` below 2, an `autopurge.snapRetainCount`
//! below 3), zoocore corrects it the same way and records the warning in
//! [`Config::warnings`]; this module has no logger, so the caller prints them.
//!
//! zoocore differs from ZooKeeper in three defaults, all towards not exposing
//! a fresh server to the network: the client, admin and metrics listeners bind
//! to 127.0.0.1 instead of 0.0.0.0, and a missing `dataDir` means
//! `./zoocore-data` instead of an error. Host names are not resolved here,
//! since parsing a file should not wait on DNS: listen addresses must be IP
//! literals (IPv6 optionally in brackets), with `localhost` accepted as
//! 127.0.0.1. Peer host names in `server.N` lines are kept as written;
//! [`crate::ensemble`] resolves them and checks the lines against `myid`.
//! With `dynamicConfigFile=` (ZooKeeper 3.5+ moves the `server.N` lines
//! there on first start when `reconfigEnabled=true`), [`Config::from_file`]
//! reads the server lines from that file, so a zoo.cfg that ZooKeeper has
//! rewritten reads the same as the one it started from.
//!
//! Finally, [`Config::render_conf`] turns the configuration back into the
//! key/value pairs that ZooKeeper's `conf` four-letter word prints, in the same
//! order, so that tools comparing zoocore with ZooKeeper see the same shape.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use thiserror::Error;

/// ZooKeeper's `ZooKeeperServer.DEFAULT_TICK_TIME`.
pub const DEFAULT_TICK_TIME_MS: u32 = 3000;
/// The port ZooKeeper clients connect to unless told otherwise.
pub const DEFAULT_CLIENT_PORT: u16 = 2181;
/// Where zoocore keeps its data when `dataDir` is not set.
pub const DEFAULT_DATA_DIR: &str = "./zoocore-data";
/// ZooKeeper's default limit of connections from one client address.
pub const DEFAULT_CLIENT_CONNECTIONS_PER_HOST_MAX: u32 = 60;
/// ZooKeeper's default `globalOutstandingLimit`.
pub const DEFAULT_GLOBAL_OUTSTANDING_LIMIT: u32 = 1000;
/// Jute's default `jute.maxbuffer`, 0xfffff bytes.
pub const DEFAULT_JUTE_MAX_BUFFER_BYTES: u32 = 0xfffff;
/// ZooKeeper's default `snapCount`.
pub const DEFAULT_SNAP_COUNT: u32 = 100_000;
/// The smallest `snapCount` ZooKeeper accepts; smaller values are raised to it.
pub const SNAP_COUNT_MIN: u32 = 2;
/// The smallest `autopurge.snapRetainCount`; smaller values are raised to it.
pub const AUTOPURGE_SNAP_RETAIN_COUNT_MIN: u32 = 3;
/// The default `initLimit`, in ticks.
pub const DEFAULT_INIT_LIMIT_TICKS: u32 = 10;
/// The default `syncLimit`, in ticks.
pub const DEFAULT_SYNC_LIMIT_TICKS: u32 = 5;
/// The default port of the admin server.
pub const DEFAULT_ADMIN_SERVER_PORT: u16 = 8080;
/// The default URL under which the admin server answers commands.
pub const DEFAULT_ADMIN_COMMAND_URL: &str = "/commands";
/// ZooKeeper's default metrics provider class.
pub const DEFAULT_METRICS_PROVIDER_CLASS_NAME: &str = "org.apache.zookeeper.metrics.impl.DefaultMetricsProvider";
/// The Prometheus metrics provider's default HTTP port.
pub const DEFAULT_METRICS_PROVIDER_HTTP_PORT: u16 = 7000;
/// The directory ZooKeeper adds below `dataDir` and `dataLogDir` for its files.
pub const DATA_VERSION_DIRECTORY: &str = "version-2";
/// The prefix ZooKeeper gives to unrecognised keys to make system properties.
pub const SYSTEM_PROPERTY_PREFIX: &str = "zookeeper.";

/// The largest value of a Java `int`, which bounds every integer ZooKeeper reads.
const JAVA_INT_MAX: i64 = i32::MAX as i64;

/// Keys that ZooKeeper interprets itself but zoocore does not implement.
///
/// They are ignored with a warning: ZooKeeper does not turn them into system
/// properties, and accepting them silently would hide missing features.
const UNSUPPORTED_ZOOKEEPER_KEYS: &[&str] = &[
    "observerMasterPort",
    "localSessionsEnabled",
    "localSessionsUpgradingEnabled",
    "connectToLearnerMasterLimit",
    "quorumListenOnAllIPs",
    "syncEnabled",
    "quorum.auth.enableSasl",
    "quorum.auth.serverRequireSasl",
    "quorum.auth.learnerRequireSasl",
    "quorum.auth.learner.saslLoginContext",
    "quorum.auth.server.saslLoginContext",
    "quorum.auth.kerberos.servicePrincipal",
    "quorum.cnxn.threads.size",
    "jvm.pause.info-threshold.ms",
    "jvm.pause.warn-threshold.ms",
    "jvm.pause.sleep.time.ms",
    "jvm.pause.monitor",
    "multiAddress.enabled",
    "multiAddress.reachabilityCheckTimeoutMs",
    "multiAddress.reachabilityCheckEnabled",
    "oraclePath",
];

/// What went wrong while reading a configuration.
///
/// Every message names the key and the value, or the line, that caused it.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration file {}: {error}", path.display())]
    Read {
        /// The path that was given.
        path: PathBuf,
        /// What the operating system reported.
        error: std::io::Error,
    },
    /// A line is neither blank, a comment, nor `key=value` with a key.
    #[error("line {line}: expected key=value, found {text:?}")]
    Syntax {
        /// The line number, counted from 1.
        line: usize,
        /// The line after trimming.
        text: String,
    },
    /// A key contains whitespace, which is always a typing mistake.
    #[error("line {line}: key {key:?} contains whitespace")]
    KeyWithWhitespace {
        /// The line number, counted from 1.
        line: usize,
        /// The key as written.
        key: String,
    },
    /// A value does not have the form its key requires.
    #[error("invalid value for {key}: {value:?} (expected {expected})")]
    InvalidValue {
        /// The key as written in the file.
        key: String,
        /// The value after trimming.
        value: String,
        /// A description of the values the key accepts.
        expected: &'static str,
    },
    /// A `server.N` key whose N is not a server id.
    #[error("invalid server key {key:?} (expected server.N where N is a server id from 0 to 9223372036854775807)")]
    InvalidServerId {
        /// The key as written in the file.
        key: String,
    },
    /// The session timeout bounds are the wrong way round.
    #[error(
        "minSessionTimeout {session_timeout_min_ms} must not be larger than maxSessionTimeout {session_timeout_max_ms}"
    )]
    SessionTimeoutRange {
        /// The lower bound after defaults were applied.
        session_timeout_min_ms: u32,
        /// The upper bound after defaults were applied.
        session_timeout_max_ms: u32,
    },
    /// `server.N` lines in zoo.cfg beside `dynamicConfigFile`, which ZooKeeper rejects.
    #[error("{key} must be in the dynamic configuration file {}, not in zoo.cfg beside dynamicConfigFile", dynamic_config_file.display())]
    ServerLineBesideDynamicConfigFile {
        /// The `server.N` key as written.
        key: String,
        /// The value of `dynamicConfigFile`.
        dynamic_config_file: PathBuf,
    },
    /// The dynamic configuration file holds a key other than `server.N`.
    #[error("dynamic configuration file {}: line {line}: {key} is not allowed there (only server.N lines are)", path.display())]
    DynamicConfigKey {
        /// The dynamic configuration file.
        path: PathBuf,
        /// The line number, counted from 1.
        line: usize,
        /// The key as written.
        key: String,
    },
    /// A value in the dynamic configuration file is invalid.
    #[error("dynamic configuration file {}: {error}", path.display())]
    DynamicConfig {
        /// The dynamic configuration file.
        path: PathBuf,
        /// What is wrong with it.
        error: Box<ConfigError>,
    },
    /// `clientPortAddress` was given without `clientPort`, which ZooKeeper rejects.
    #[error("clientPortAddress is set to {value:?} but clientPort is not set")]
    ClientPortAddressWithoutClientPort {
        /// The value of `clientPortAddress`.
        value: String,
    },
    /// The JAAS file named by `java.security.auth.login.config` cannot be
    /// read.
    #[error("cannot read the JAAS file {} (java.security.auth.login.config): {error}", path.display())]
    JaasRead {
        /// The file named.
        path: PathBuf,
        /// What the operating system reported.
        error: std::io::Error,
    },
    /// The JAAS file does not parse.
    #[error("JAAS file {} (java.security.auth.login.config): {error}", path.display())]
    Jaas {
        /// The file named.
        path: PathBuf,
        /// What is wrong, with its line.
        error: crate::auth::jaas::JaasError,
    },
    /// The JAAS file's server section cannot serve SASL.
    #[error("JAAS file {} (java.security.auth.login.config): {error}", path.display())]
    JaasServerSection {
        /// The file named.
        path: PathBuf,
        /// What the section lacks.
        error: crate::auth::ServerSectionError,
    },
    /// The server section's `Krb5LoginModule` names a keytab or principal
    /// that gives no Kerberos credential.
    #[error("JAAS file {} (java.security.auth.login.config), section '{section}', {}: {error}", path.display(), crate::auth::gssapi::KRB5_LOGIN_MODULE)]
    Kerberos {
        /// The JAAS file.
        path: PathBuf,
        /// Its section.
        section: String,
        /// What the library or the file system reported.
        error: crate::auth::krb5::AcceptorError,
    },
}

/// SASL and enforced authentication, resolved from the keys and system
/// properties ZooKeeper reads them from (zoo.cfg keys, or `-D` flags in
/// `SERVER_JVMFLAGS`/`JVMFLAGS`, see [`Config::apply_jvm_flags`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// An `authProvider.N` names `SASLAuthenticationProvider`: the `sasl`
    /// ACL scheme is known (and may be enforced).
    pub sasl_provider: bool,
    /// `java.security.auth.login.config`: the JAAS file, if any.
    pub jaas_config_file: Option<PathBuf>,
    /// `zookeeper.sasl.serverconfig`: the JAAS section the server reads.
    pub sasl_server_section: String,
    /// The DIGEST-MD5 users of that section, once [`Config::load_jaas`] has
    /// read the file. SASL is configured when this or `kerberos` is set.
    pub sasl_credentials: Option<crate::auth::sasl::Credentials>,
    /// The Kerberos (GSSAPI) acceptor of that section's `Krb5LoginModule`,
    /// acquired from its keytab by [`Config::load_jaas`].
    pub kerberos: Option<std::sync::Arc<crate::auth::krb5::Acceptor>>,
    /// How a Kerberos principal becomes a `sasl` id:
    /// `zookeeper.kerberos.removeHostFromPrincipal` and
    /// `removeRealmFromPrincipal`, and krb5.conf's default realm (set by
    /// [`Config::load_jaas`]).
    pub principal_mapping: crate::auth::gssapi::PrincipalMapping,
    /// `zookeeper.superUser`: a SASL user that is also `super`.
    pub super_user: Option<String>,
    /// `enforce.auth.enabled` with its `enforce.auth.schemes`, or
    /// `sessionRequireClientSASLAuth` (meaning `sasl`): the schemes one of
    /// which a connection must hold before any request but auth and sasl.
    pub enforce_auth_schemes: Option<Vec<String>>,
    /// `zookeeper.allowSaslFailedClients`: a failed SASL exchange keeps the
    /// connection (unless SASL is enforced).
    pub allow_sasl_failed_clients: bool,
}

/// The JAAS section a ZooKeeper server reads unless
/// `zookeeper.sasl.serverconfig` names another.
pub const DEFAULT_SASL_SERVER_SECTION: &str = "Server";
/// The class an `authProvider.N` names to enable the `sasl` scheme.
pub const SASL_AUTHENTICATION_PROVIDER: &str = "org.apache.zookeeper.server.auth.SASLAuthenticationProvider";

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            sasl_provider: false,
            jaas_config_file: None,
            sasl_server_section: DEFAULT_SASL_SERVER_SECTION.to_string(),
            sasl_credentials: None,
            kerberos: None,
            principal_mapping: crate::auth::gssapi::PrincipalMapping::default(),
            super_user: None,
            enforce_auth_schemes: None,
            allow_sasl_failed_clients: false,
        }
    }
}

/// Which four-letter words the server answers (`4lw.commands.whitelist`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FourLetterWordWhitelist {
    /// Every command, written `*` in the file.
    All,
    /// Only these commands. ZooKeeper always adds `srvr`, and so does zoocore.
    Set(BTreeSet<String>),
}

impl FourLetterWordWhitelist {
    /// Tells whether the server may answer `command`.
    pub fn allows(&self, command: &str) -> bool {
        match self {
            FourLetterWordWhitelist::All => true,
            FourLetterWordWhitelist::Set(commands) => commands.contains(command),
        }
    }
}

impl Default for FourLetterWordWhitelist {
    /// ZooKeeper 3.5 and later answer only `srvr` unless configured otherwise.
    fn default() -> Self {
        FourLetterWordWhitelist::Set(BTreeSet::from(["srvr".to_string()]))
    }
}

/// Whether a server votes (`participant`) or only follows (`observer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PeerRole {
    /// A voting member, ZooKeeper's default.
    #[default]
    Participant,
    /// A non-voting member that only replicates.
    Observer,
}

impl PeerRole {
    /// The name used in `zoo.cfg`.
    pub fn as_str(self) -> &'static str {
        match self {
            PeerRole::Participant => "participant",
            PeerRole::Observer => "observer",
        }
    }
}

/// The client address part of a `server.N` line, after the `;`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerClientAddress {
    /// The host as written, or `0.0.0.0` when only a port was given.
    pub host: String,
    /// The client port.
    pub port: u16,
}

/// One `server.N=host:quorumPort:electionPort[:role][;[clientHost:]clientPort]` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumServer {
    /// The N of `server.N`.
    pub id: u64,
    /// The peer's host name or address, as written and without brackets.
    pub host: String,
    /// The port followers use to connect to the leader.
    pub quorum_port: u16,
    /// The port used for leader election.
    pub election_port: u16,
    /// Whether the peer votes.
    pub role: PeerRole,
    /// Where the peer serves clients, if the line says so.
    pub client_address: Option<ServerClientAddress>,
}

/// A parsed `zoo.cfg`.
///
/// Fields are public so tests and the embedding server can adjust them, but
/// derived values (`data_log_dir`, the session timeouts) are resolved when
/// parsing and do not follow later changes to `data_dir` or `tick_time_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `tickTime`: the basic time unit, in milliseconds; always positive.
    pub tick_time_ms: u32,
    /// `dataDir`: where snapshots live; relative paths stay relative.
    pub data_dir: PathBuf,
    /// `dataLogDir`: where transaction logs live; defaults to `data_dir`.
    pub data_log_dir: PathBuf,
    /// `clientPort`: 0 asks the operating system for an ephemeral port.
    pub client_port: u16,
    /// `clientPortAddress`: 127.0.0.1 by default in zoocore (0.0.0.0 in ZooKeeper).
    pub client_port_address: IpAddr,
    /// `clientPortListenBacklog`: `None` (written -1) leaves the system default.
    pub client_port_listen_backlog: Option<u32>,
    /// `secureClientPort`: a TLS listener serving the client protocol; 0
    /// asks for an ephemeral port. Without `clientPort` beside it, the only
    /// client listener, as in ZooKeeper.
    pub secure_client_port: Option<u16>,
    /// `secureClientPortAddress`: defaults to `clientPortAddress`.
    pub secure_client_port_address: Option<IpAddr>,
    /// The `ssl.*` settings of the secure port, checked when
    /// `secureClientPort` is set (crate::tls).
    pub tls: Option<crate::tls::TlsSettings>,
    /// `sslQuorum`: the peer links run over TLS with mutual authentication.
    pub ssl_quorum: bool,
    /// `sslQuorumReloadCertFiles`: reload the `ssl.quorum.*` stores when
    /// their files change.
    pub ssl_quorum_reload_cert_files: bool,
    /// The quorum's `portUnification`: the quorum port accepts TLS and
    /// plain peers alike (for a rolling change to or from `sslQuorum`).
    pub quorum_port_unification: bool,
    /// The `ssl.quorum.*` settings of the peer links, checked when
    /// `sslQuorum` or `portUnification` is true (crate::tls::quorum).
    pub quorum_tls: Option<crate::tls::quorum::QuorumTlsSettings>,
    /// The system-property settings zoocore acts on, checked at start.
    pub tunables: Tunables,
    /// `minSessionTimeout`: defaults to two ticks.
    pub session_timeout_min_ms: u32,
    /// `maxSessionTimeout`: defaults to twenty ticks.
    pub session_timeout_max_ms: u32,
    /// `maxClientCnxns`: connections allowed from one client address; 0 is unlimited.
    pub client_connections_per_host_max: u32,
    /// `globalOutstandingLimit`: queued requests before the server throttles.
    pub global_outstanding_limit: u32,
    /// `jute.maxbuffer`: the largest packet or znode payload, in bytes.
    ///
    /// ZooKeeper reads this only as the JVM property `jute.maxbuffer`, so in its
    /// `zoo.cfg` the key would have no effect; zoocore accepts it as a key.
    pub jute_max_buffer_bytes: u32,
    /// `4lw.commands.whitelist`.
    pub four_letter_word_whitelist: FourLetterWordWhitelist,
    /// `extendedTypesEnabled`: allows TTL nodes.
    pub extended_types_enabled: bool,
    /// `snapCount`: transactions between snapshots; at least 2.
    pub snap_count: u32,
    /// `autopurge.snapRetainCount`: snapshots kept by the purge task; at least 3.
    pub autopurge_snap_retain_count: u32,
    /// `autopurge.purgeInterval`: hours between purges; 0 disables purging.
    pub autopurge_purge_interval_hours: u32,
    /// `forceSync`: whether the transaction log is fsynced before replies.
    pub force_sync: bool,
    /// `initLimit`: ticks a follower may take to connect and sync to a leader.
    pub init_limit_ticks: u32,
    /// `syncLimit`: ticks a follower may lag behind a leader.
    pub sync_limit_ticks: u32,
    /// `admin.enableServer`.
    pub admin_server_enabled: bool,
    /// `admin.serverAddress`: 127.0.0.1 by default in zoocore (0.0.0.0 in ZooKeeper).
    pub admin_server_address: IpAddr,
    /// `admin.serverPort`.
    pub admin_server_port: u16,
    /// `admin.commandURL`: always starts with `/`.
    pub admin_command_url: String,
    /// `metricsProvider.className`.
    pub metrics_provider_class_name: String,
    /// `metricsProvider.httpHost`: 127.0.0.1 by default in zoocore (0.0.0.0 in ZooKeeper).
    pub metrics_provider_http_host: IpAddr,
    /// `metricsProvider.httpPort`.
    pub metrics_provider_http_port: u16,
    /// Every other `metricsProvider.<name>` key, under `<name>`, as ZooKeeper passes them to the provider.
    pub metrics_provider_options: BTreeMap<String, String>,
    /// `reconfigEnabled`.
    pub reconfig_enabled: bool,
    /// `standaloneEnabled`: whether a single configured server may run standalone.
    pub standalone_enabled: bool,
    /// `server.N` lines, by id, from zoo.cfg or from `dynamicConfigFile`.
    pub servers: BTreeMap<u64, QuorumServer>,
    /// Server ids written on more than one line, each with the lines that
    /// name it (`server.1 (line 14)`), in file order. Only the last line of
    /// an id is in `servers`, as `java.util.Properties` keeps it; an
    /// ensemble refuses such a file (see `crate::ensemble`), since two lines
    /// for one server are always a mistake there.
    pub repeated_server_ids: BTreeMap<u64, Vec<String>>,
    /// `dynamicConfigFile`: where the `server.N` lines are kept when
    /// ZooKeeper 3.5+ runs with `reconfigEnabled=true` (it moves them there
    /// on first start). [`Config::from_file`] reads them into `servers`.
    pub dynamic_config_file: Option<PathBuf>,
    /// Whether `clientPort` was written in the file (ZooKeeper's rule for a
    /// client address in the server line needs to know).
    pub client_port_set: bool,
    /// Whether `clientPortAddress` was written in the file.
    pub client_port_address_set: bool,
    /// `peerType`.
    pub peer_type: PeerRole,
    /// `zoocore.shards`: shard cores to run; 0 means the default,
    /// [`default_shard_count`] of the available CPUs.
    pub shard_count: u32,
    /// `zoocore.connectionMemoryMaxBytes`: memory all client connections may
    /// hold together; None for the default (server/shard.rs).
    pub connection_memory_bytes_max: Option<u64>,
    /// `zoocore.logLevel`: a log filter such as `info`; an empty value means unset.
    pub log_level: Option<String>,
    /// Set by the `--truncate-corrupt` operator flag, never by the file:
    /// recovery cuts a corrupt log at the damage (logging what it drops)
    /// instead of refusing to start.
    pub truncate_corrupt: bool,
    /// Unrecognised keys, as ZooKeeper's system properties `zookeeper.<key>`.
    pub system_properties: BTreeMap<String, String>,
    /// The system properties whose name ends in `password`
    /// (`ssl.keyStore.password`, ...), kept apart so that nothing that
    /// lists the properties (`sysp`, `envi`, Debug output, logs) shows them.
    pub secret_properties: BTreeMap<String, Secret>,
    /// SASL and enforced authentication.
    pub auth: AuthConfig,
    /// Values that were corrected or ignored, for the caller to log.
    pub warnings: Vec<String>,
    /// The text the configuration was parsed from (the AdminServer's
    /// `initial_configuration`); empty for the embedded default.
    pub initial_configuration: String,
}

impl Default for Config {
    /// The embedded default: a standalone server on 127.0.0.1:2181 keeping
    /// its data in `./zoocore-data`.
    fn default() -> Self {
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        Config {
            tick_time_ms: DEFAULT_TICK_TIME_MS,
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            data_log_dir: PathBuf::from(DEFAULT_DATA_DIR),
            client_port: DEFAULT_CLIENT_PORT,
            client_port_address: loopback,
            client_port_listen_backlog: None,
            secure_client_port: None,
            secure_client_port_address: None,
            tls: None,
            ssl_quorum: false,
            ssl_quorum_reload_cert_files: false,
            quorum_port_unification: false,
            quorum_tls: None,
            tunables: Tunables::default(),
            session_timeout_min_ms: default_session_timeout_min_ms(DEFAULT_TICK_TIME_MS),
            session_timeout_max_ms: default_session_timeout_max_ms(DEFAULT_TICK_TIME_MS),
            client_connections_per_host_max: DEFAULT_CLIENT_CONNECTIONS_PER_HOST_MAX,
            global_outstanding_limit: DEFAULT_GLOBAL_OUTSTANDING_LIMIT,
            jute_max_buffer_bytes: DEFAULT_JUTE_MAX_BUFFER_BYTES,
            four_letter_word_whitelist: FourLetterWordWhitelist::default(),
            extended_types_enabled: false,
            snap_count: DEFAULT_SNAP_COUNT,
            autopurge_snap_retain_count: AUTOPURGE_SNAP_RETAIN_COUNT_MIN,
            autopurge_purge_interval_hours: 0,
            force_sync: true,
            init_limit_ticks: DEFAULT_INIT_LIMIT_TICKS,
            sync_limit_ticks: DEFAULT_SYNC_LIMIT_TICKS,
            admin_server_enabled: true,
            admin_server_address: loopback,
            admin_server_port: DEFAULT_ADMIN_SERVER_PORT,
            admin_command_url: DEFAULT_ADMIN_COMMAND_URL.to_string(),
            metrics_provider_class_name: DEFAULT_METRICS_PROVIDER_CLASS_NAME.to_string(),
            metrics_provider_http_host: loopback,
            metrics_provider_http_port: DEFAULT_METRICS_PROVIDER_HTTP_PORT,
            metrics_provider_options: BTreeMap::new(),
            reconfig_enabled: false,
            standalone_enabled: true,
            servers: BTreeMap::new(),
            repeated_server_ids: BTreeMap::new(),
            dynamic_config_file: None,
            client_port_set: false,
            client_port_address_set: false,
            peer_type: PeerRole::Participant,
            shard_count: 0,
            connection_memory_bytes_max: None,
            log_level: None,
            truncate_corrupt: false,
            system_properties: BTreeMap::new(),
            secret_properties: BTreeMap::new(),
            auth: AuthConfig::default(),
            warnings: Vec::new(),
            initial_configuration: String::new(),
        }
    }
}

impl Config {
    /// Reads and parses a `zoo.cfg` file.
    ///
    /// A relative `dataDir` in the file stays relative, so it is resolved
    /// against the working directory of the server, as ZooKeeper does.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|error| ConfigError::Read { path: path.to_path_buf(), error })?;
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            // Java's Properties.load reads ISO-8859-1, where every byte is the
            // character with the same number.
            Err(not_utf8) => not_utf8.into_bytes().iter().map(|&byte| char::from(byte)).collect(),
        };
        let mut config = Config::parse(&text)?;
        if let Some(dynamic_path) = config.dynamic_config_file.clone() {
            config.read_dynamic_config_file(&dynamic_path)?;
        }
        Ok(config)
    }

    /// Reads the `server.N` lines of ZooKeeper's dynamic configuration file
    /// into `servers`, with ZooKeeper's rules: only `server.N` keys are
    /// allowed (a `version` key inside is an error; the version is the hex
    /// suffix of the file name, `zoo.cfg.dynamic.100000000`), and a relative
    /// path is resolved against the working directory, as Java's
    /// `FileInputStream` does. A `zoo.cfg.dynamic.next` left by an
    /// unfinished reconfiguration is not read: zoocore does not reconfigure.
    fn read_dynamic_config_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let bytes = std::fs::read(path).map_err(|error| ConfigError::Read { path: path.to_path_buf(), error })?;
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(not_utf8) => not_utf8.into_bytes().iter().map(|&byte| char::from(byte)).collect(),
        };
        let in_file =
            |error: ConfigError| ConfigError::DynamicConfig { path: path.to_path_buf(), error: Box::new(error) };
        let entries = read_entries(&text).map_err(in_file)?;
        for entry in &entries {
            if !entry.key.starts_with("server.") {
                return Err(ConfigError::DynamicConfigKey {
                    path: path.to_path_buf(),
                    line: entry.line,
                    key: entry.key.to_string(),
                });
            }
        }
        self.repeated_server_ids = repeated_server_ids(&entries);
        for entry in last_entries(&entries) {
            let id_text = entry.key.strip_prefix("server.").unwrap_or_default();
            let id = parse_server_id(entry.key, id_text).map_err(in_file)?;
            let server = parse_quorum_server(entry.key, id, entry.value).map_err(in_file)?;
            self.servers.insert(id, server);
        }
        Ok(())
    }

    /// Parses the text of a `zoo.cfg`.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let entries = read_entries(text)?;
        let mut builder = Builder::default();
        for entry in last_entries(&entries) {
            builder.apply(entry.key, entry.value)?;
        }
        let mut config = builder.finish()?;
        if let Some(dynamic_config_file) = &config.dynamic_config_file {
            // ZooKeeper refuses the two places at once rather than guess
            // which list of servers is meant.
            if let Some(entry) = entries.iter().find(|entry| entry.key.starts_with("server.")) {
                return Err(ConfigError::ServerLineBesideDynamicConfigFile {
                    key: entry.key.to_string(),
                    dynamic_config_file: dynamic_config_file.clone(),
                });
            }
        }
        config.repeated_server_ids = repeated_server_ids(&entries);
        config.initial_configuration = mask_passwords(text);
        config.take_secrets();
        config.resolve_auth()?;
        config.resolve_tls()?;
        config.tunables = Tunables::from_config(&config)?;
        Ok(config)
    }

    /// Takes the `-Dname=value` flags of `SERVER_JVMFLAGS` and `JVMFLAGS`
    /// (in that order; the later flag wins, as on a java command line), the
    /// way ZooKeeper's scripts hand them to the JVM: `-Djava.security.auth.login.config=...`,
    /// `-Dzookeeper.superUser=...` and so on. A key the file also sets keeps
    /// the file's value, since ZooKeeper sets its zoo.cfg keys as system
    /// properties after the JVM started. Other flags (-Xmx...) are ignored.
    pub fn apply_jvm_flags(&mut self, flags: &[&str]) -> Result<(), ConfigError> {
        let mut from_flags: BTreeMap<String, String> = BTreeMap::new();
        for text in flags {
            for word in text.split_whitespace() {
                let Some(definition) = word.strip_prefix("-D") else { continue };
                let (name, value) = definition.split_once('=').unwrap_or((definition, ""));
                let value = value.trim_matches(|c| c == '"' || c == '\'');
                if !name.is_empty() {
                    from_flags.insert(name.to_string(), value.to_string());
                }
            }
        }
        for (name, value) in from_flags {
            if !self.secret_properties.contains_key(&name) {
                self.system_properties.entry(name).or_insert(value);
            }
        }
        self.take_secrets();
        self.resolve_auth()?;
        self.resolve_tls()?;
        self.tunables = Tunables::from_config(self)?;
        Ok(())
    }

    /// Moves the password properties into `secret_properties`.
    fn take_secrets(&mut self) {
        let names: Vec<String> = self.system_properties.keys().filter(|name| is_password_key(name)).cloned().collect();
        for name in names {
            if let Some(value) = self.system_properties.remove(&name) {
                self.secret_properties.insert(name, Secret(value));
            }
        }
    }

    /// A password property, by either name (see [`Config::property`]).
    pub fn secret(&self, name: &str) -> Option<&Secret> {
        self.secret_properties
            .get(name)
            .or_else(|| self.secret_properties.get(&format!("{SYSTEM_PROPERTY_PREFIX}{name}")))
    }

    /// Checks the secure port's `ssl.*` keys (crate::tls); nothing is read
    /// from disk yet.
    fn resolve_tls(&mut self) -> Result<(), ConfigError> {
        self.tls = crate::tls::settings_from_config(self)?;
        self.quorum_tls = crate::tls::quorum::settings_from_config(self)?;
        if self.property("client.portUnification").is_some_and(|value| value.trim().eq_ignore_ascii_case("true")) {
            let warning = "client.portUnification=true is not supported: TLS clients use secureClientPort, plain \
                           clients clientPort"
                .to_string();
            if !self.warnings.contains(&warning) {
                self.warnings.push(warning);
            }
        }
        Ok(())
    }

    /// Whether the plain client port listens: always, unless
    /// `secureClientPort` is set and `clientPort` is not (ZooKeeper then
    /// serves TLS clients only). An ensemble member's server line with a
    /// client port counts as setting it.
    pub fn plain_client_port_enabled(&self) -> bool {
        self.secure_client_port.is_none() || self.client_port_set
    }

    /// Where the secure port listens, if it is on.
    pub fn secure_client_socket_address(&self) -> Option<SocketAddr> {
        self.secure_client_port
            .map(|port| SocketAddr::new(self.secure_client_port_address.unwrap_or(self.client_port_address), port))
    }

    /// Reads the JAAS file named by `java.security.auth.login.config`, if
    /// any, and takes the DIGEST-MD5 users and the Kerberos login of its
    /// server section; the Kerberos credential is acquired from the keytab
    /// now, so a missing keytab or a principal without a key stops the
    /// start. As in ZooKeeper, a named file without that section stops it
    /// too.
    pub fn load_jaas(&mut self) -> Result<(), ConfigError> {
        let Some(path) = self.auth.jaas_config_file.clone() else {
            return Ok(());
        };
        let bytes = std::fs::read(&path).map_err(|error| ConfigError::JaasRead { path: path.clone(), error })?;
        if bytes.len() > crate::auth::jaas::JAAS_FILE_BYTES_MAX {
            let error = crate::auth::jaas::JaasError::TooLarge {
                bytes: bytes.len(),
                max: crate::auth::jaas::JAAS_FILE_BYTES_MAX,
            };
            return Err(ConfigError::Jaas { path, error });
        }
        let text = String::from_utf8_lossy(&bytes);
        let file = crate::auth::jaas::parse(&text).map_err(|error| ConfigError::Jaas { path: path.clone(), error })?;
        let section = self.auth.sasl_server_section.clone();
        let login = crate::auth::server_login(&file, &section)
            .map_err(|error| ConfigError::JaasServerSection { path: path.clone(), error })?;
        if let Some(kerberos) = &login.kerberos {
            let acceptor = crate::auth::krb5::Acceptor::acquire(kerberos).map_err(|error| ConfigError::Kerberos {
                path: path.clone(),
                section,
                error,
            })?;
            self.auth.principal_mapping.default_realm = acceptor.default_realm().to_string();
            self.auth.kerberos = Some(std::sync::Arc::new(acceptor));
        }
        self.auth.sasl_credentials = login.digest;
        Ok(())
    }

    /// Derives [`AuthConfig`] from the system properties, strictly: a bad
    /// boolean, enforcement without schemes, or a scheme no provider serves
    /// is an error naming the key and value.
    fn resolve_auth(&mut self) -> Result<(), ConfigError> {
        let mut auth = AuthConfig {
            sasl_credentials: self.auth.sasl_credentials.take(),
            kerberos: self.auth.kerberos.take(),
            ..AuthConfig::default()
        };
        auth.principal_mapping.default_realm = std::mem::take(&mut self.auth.principal_mapping.default_realm);
        let provider_prefix = format!("{SYSTEM_PROPERTY_PREFIX}authProvider.");
        for (key, class) in &self.system_properties {
            let Some(_) = key.strip_prefix(&provider_prefix) else { continue };
            match class.trim() {
                SASL_AUTHENTICATION_PROVIDER => auth.sasl_provider = true,
                // Served on the secure client port (crate::tls); ZooKeeper
                // registers it there by itself too.
                crate::tls::X509_AUTHENTICATION_PROVIDER => {}
                "org.apache.zookeeper.server.auth.DigestAuthenticationProvider"
                | "org.apache.zookeeper.server.auth.IPAuthenticationProvider" => {}
                other => {
                    let warning = format!("{key}={other}: zoocore has no such authentication provider; ignored");
                    if !self.warnings.contains(&warning) {
                        self.warnings.push(warning);
                    }
                }
            }
        }
        auth.jaas_config_file = self.property("java.security.auth.login.config").map(PathBuf::from);
        if let Some(section) = self.property("zookeeper.sasl.serverconfig") {
            auth.sasl_server_section = section.to_string();
        }
        auth.super_user = self.property("zookeeper.superUser").map(str::to_string);
        let boolean = |config: &Config, name: &str| match config.property(name) {
            Some(value) => parse_boolean(name, value.trim()),
            None => Ok(false),
        };
        auth.allow_sasl_failed_clients = boolean(self, "allowSaslFailedClients")?;
        auth.principal_mapping.remove_host = boolean(self, "kerberos.removeHostFromPrincipal")?;
        auth.principal_mapping.remove_realm = boolean(self, "kerberos.removeRealmFromPrincipal")?;
        // Only ZooKeeper's default auth_to_local rule is implemented: other
        // rules would map principals to other ids than ZooKeeper does, so
        // they stop the start instead.
        if let Some(rules) = self.property("security.auth_to_local") {
            if rules.trim() != "DEFAULT" {
                return Err(invalid(
                    "zookeeper.security.auth_to_local",
                    rules,
                    "DEFAULT (zoocore maps principals with ZooKeeper's default rule only)",
                ));
            }
        }
        if boolean(self, "sessionRequireClientSASLAuth")? {
            auth.enforce_auth_schemes = Some(vec!["sasl".to_string()]);
        } else if boolean(self, "enforce.auth.enabled")? {
            let text = self.property("enforce.auth.schemes").unwrap_or("");
            let schemes: Vec<String> =
                text.split(',').map(str::trim).filter(|scheme| !scheme.is_empty()).map(str::to_string).collect();
            if schemes.is_empty() {
                return Err(invalid(
                    "enforce.auth.schemes",
                    text,
                    "a comma-separated list of schemes when enforce.auth.enabled is true",
                ));
            }
            if let Some(unknown) = schemes.iter().find(|scheme| {
                let available = matches!(scheme.as_str(), "ip" | "digest") || (*scheme == "sasl" && auth.sasl_provider);
                !available
            }) {
                return Err(invalid(
                    "enforce.auth.schemes",
                    unknown,
                    "schemes with a provider: ip, digest, or sasl with authProvider.N=org.apache.zookeeper.server.auth.SASLAuthenticationProvider",
                ));
            }
            auth.enforce_auth_schemes = Some(schemes);
        }
        self.auth = auth;
        Ok(())
    }

    /// Looks up a system property by its full name
    /// (`zookeeper.DigestAuthenticationProvider.superDigest`) or by the key
    /// written in the file (`DigestAuthenticationProvider.superDigest`).
    ///
    /// Keys that have a typed field, such as `snapCount`, are not system
    /// properties in zoocore and are not found here.
    pub fn property(&self, name: &str) -> Option<&str> {
        self.system_properties
            .get(name)
            .or_else(|| self.system_properties.get(&format!("{SYSTEM_PROPERTY_PREFIX}{name}")))
            .map(String::as_str)
    }

    /// ZooKeeper's `readonlymode.enabled` (Java's `Boolean.getBoolean`:
    /// "true" in any case), as a system property or a zoo.cfg key.
    pub fn read_only_mode_enabled(&self) -> bool {
        self.property("readonlymode.enabled").is_some_and(|value| value.trim().eq_ignore_ascii_case("true"))
    }

    /// Tells whether the server runs as a member of an ensemble, by
    /// ZooKeeper's rule: servers are listed and either there is more than one
    /// voting member or standalone mode is disabled.
    pub fn is_distributed(&self) -> bool {
        if self.servers.is_empty() {
            return false;
        }
        let voting_member_count = self.servers.values().filter(|server| server.role == PeerRole::Participant).count();
        !self.standalone_enabled || voting_member_count > 1
    }

    /// The number of shard cores to run, with 0 replaced by
    /// [`default_shard_count`] of the CPUs available to this process.
    pub fn effective_shard_count(&self) -> usize {
        if self.shard_count > 0 {
            return usize::try_from(self.shard_count).unwrap_or(usize::MAX);
        }
        default_shard_count(std::thread::available_parallelism().map(|count| count.get()).unwrap_or(1))
    }

    /// The address the client listener binds to.
    pub fn client_socket_address(&self) -> SocketAddr {
        SocketAddr::new(self.client_port_address, self.client_port)
    }

    /// The address the admin server binds to.
    pub fn admin_socket_address(&self) -> SocketAddr {
        SocketAddr::new(self.admin_server_address, self.admin_server_port)
    }

    /// The key/value pairs that ZooKeeper's `conf` four-letter word prints on
    /// a standalone server, in ZooKeeper's order, for the keys that follow
    /// from the configuration alone.
    ///
    /// ZooKeeper 3.8 prints `clientPort`, `secureClientPort`, `dataDir`,
    /// `dataDirSize`, `dataLogDir`, `dataLogSize`, `tickTime`,
    /// `maxClientCnxns`, `minSessionTimeout`, `maxSessionTimeout`,
    /// `clientPortListenBacklog` and `serverId`, one `key=value` per line.
    /// This returns all of them except the two sizes, which need the disk:
    /// the caller inserts `dataDirSize` after `dataDir` and `dataLogSize`
    /// after `dataLogDir` (or uses [`Config::render_conf_with_sizes`]). The
    /// caller also replaces `clientPort` with the bound port when
    /// `client_port` is 0; on a quorum member the `conf` four-letter word
    /// (`ops::fourletter`) replaces `serverId` with its id and appends
    /// ZooKeeper's quorum keys (`initLimit`, `syncLimit`, `electionAlg`,
    /// `electionPort`, `quorumPort`, `peerType`, `membership:`).
    ///
    /// As in ZooKeeper, the directories are printed as absolute paths with
    /// `version-2` appended; an unset `secureClientPort` and an unset backlog print -1,
    /// and a standalone server's `serverId` is 0.
    pub fn render_conf(&self) -> Vec<(String, String)> {
        let pair = |key: &str, value: String| (key.to_string(), value);
        vec![
            pair("clientPort", self.client_port.to_string()),
            pair("secureClientPort", self.secure_client_port.map_or_else(|| "-1".to_string(), |port| port.to_string())),
            pair("dataDir", render_version_directory(&self.data_dir)),
            pair("dataLogDir", render_version_directory(&self.data_log_dir)),
            pair("tickTime", self.tick_time_ms.to_string()),
            pair("maxClientCnxns", self.client_connections_per_host_max.to_string()),
            pair("minSessionTimeout", self.session_timeout_min_ms.to_string()),
            pair("maxSessionTimeout", self.session_timeout_max_ms.to_string()),
            pair(
                "clientPortListenBacklog",
                self.client_port_listen_backlog.map_or_else(|| "-1".to_string(), |backlog| backlog.to_string()),
            ),
            pair("serverId", "0".to_string()),
        ]
    }

    /// [`Config::render_conf`] with `dataDirSize` and `dataLogSize` inserted
    /// where ZooKeeper prints them.
    pub fn render_conf_with_sizes(&self, data_dir_size_bytes: u64, data_log_size_bytes: u64) -> Vec<(String, String)> {
        let mut rendered = Vec::new();
        for (key, value) in self.render_conf() {
            let size = match key.as_str() {
                "dataDir" => Some(("dataDirSize", data_dir_size_bytes)),
                "dataLogDir" => Some(("dataLogSize", data_log_size_bytes)),
                _ => None,
            };
            rendered.push((key, value));
            if let Some((size_key, size_bytes)) = size {
                rendered.push((size_key.to_string(), size_bytes.to_string()));
            }
        }
        rendered
    }
}

/// ZooKeeper's default lower session timeout: two ticks.
fn default_session_timeout_min_ms(tick_time_ms: u32) -> u32 {
    tick_time_ms.saturating_mul(2).min(i32::MAX as u32)
}

/// ZooKeeper's default upper session timeout: twenty ticks.
fn default_session_timeout_max_ms(tick_time_ms: u32) -> u32 {
    tick_time_ms.saturating_mul(20).min(i32::MAX as u32)
}

/// Prints `directory/version-2` as an absolute path, the way ZooKeeper's
/// `File.getAbsolutePath` does, keeping the relative path if the working
/// directory cannot be known.
fn render_version_directory(directory: &Path) -> String {
    let version_directory = directory.join(DATA_VERSION_DIRECTORY);
    std::path::absolute(&version_directory).unwrap_or(version_directory).display().to_string()
}

/// One `key=value` line, trimmed.
struct Entry<'a> {
    line: usize,
    key: &'a str,
    value: &'a str,
}

/// The entries that count: a later line overrides an earlier one with the
/// same key, as in `java.util.Properties`, so only the last occurrence of
/// each key is read (and the earlier values are not even checked).
fn last_entries<'a, 'b>(entries: &'b [Entry<'a>]) -> impl Iterator<Item = &'b Entry<'a>> {
    let mut last_index_of_key: BTreeMap<&str, usize> = BTreeMap::new();
    for (index, entry) in entries.iter().enumerate() {
        last_index_of_key.insert(entry.key, index);
    }
    entries
        .iter()
        .enumerate()
        .filter(move |(index, entry)| last_index_of_key.get(entry.key) == Some(index))
        .map(|(_, entry)| entry)
}

/// The server ids named by more than one `server.N` line (`server.1` twice,
/// or `server.1` and `server.01`), each with its lines in file order.
fn repeated_server_ids(entries: &[Entry<'_>]) -> BTreeMap<u64, Vec<String>> {
    let mut lines_by_id: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for entry in entries {
        let Some(id_text) = entry.key.strip_prefix("server.") else { continue };
        // A bad id is reported when the line itself is read.
        let Ok(id) = parse_server_id(entry.key, id_text) else { continue };
        lines_by_id.entry(id).or_default().push(format!("{} (line {})", entry.key, entry.line));
    }
    lines_by_id.retain(|_, lines| lines.len() > 1);
    lines_by_id
}

/// Trims the way Java's `String.trim` does (every character up to the space)
/// and also drops Unicode whitespace.
fn trim_java(text: &str) -> &str {
    text.trim_matches(|character: char| character <= ' ' || character.is_whitespace())
}

/// Splits text into numbered lines at `\n`, `\r\n` or a lone `\r`, the line
/// terminators `java.util.Properties` knows.
fn numbered_lines(text: &str) -> Vec<(usize, &str)> {
    let bytes = text.as_bytes();
    let mut lines = Vec::new();
    let mut line_start = 0;
    let mut position = 0;
    while position < bytes.len() {
        let terminator_length = match (bytes[position], bytes.get(position + 1)) {
            (b'\r', Some(b'\n')) => 2,
            (b'\r', _) | (b'\n', _) => 1,
            _ => 0,
        };
        if terminator_length == 0 {
            position += 1;
            continue;
        }
        // The terminators are ASCII, so these are character boundaries.
        lines.push((lines.len() + 1, &text[line_start..position]));
        position += terminator_length;
        line_start = position;
    }
    if line_start < bytes.len() {
        lines.push((lines.len() + 1, &text[line_start..]));
    }
    lines
}

/// Turns text into entries, rejecting lines that are not `key=value`.
fn read_entries(text: &str) -> Result<Vec<Entry<'_>>, ConfigError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut entries = Vec::new();
    for (line_number, line) in numbered_lines(text) {
        let line = trim_java(line);
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(ConfigError::Syntax { line: line_number, text: line.to_string() });
        };
        let key = trim_java(key);
        if key.is_empty() {
            return Err(ConfigError::Syntax { line: line_number, text: line.to_string() });
        }
        if key.contains(char::is_whitespace) {
            return Err(ConfigError::KeyWithWhitespace { line: line_number, key: key.to_string() });
        }
        entries.push(Entry { line: line_number, key, value: trim_java(value) });
    }
    Ok(entries)
}

/// A password, kept out of `Debug` output (and so out of every log).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The password itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Secret(***)")
    }
}

/// Whether a key names a password (`ssl.keyStore.password`,
/// `ssl.quorum.trustStore.password`, ...).
fn is_password_key(key: &str) -> bool {
    key.to_ascii_lowercase().ends_with("password")
}

/// The file's text with the values of password keys replaced, for the
/// AdminServer's `initial_configuration`.
fn mask_passwords(text: &str) -> String {
    let mut masked = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        match line.split_once('=') {
            Some((key, _)) if is_password_key(trim_java(key)) && !trim_java(key).starts_with(['#', '!']) => {
                masked.push_str(key);
                masked.push_str("=********");
                if line.ends_with('\n') {
                    masked.push('\n');
                }
            }
            _ => masked.push_str(line),
        }
    }
    masked
}

/// The configuration under construction, with what must wait for all keys.
#[derive(Default)]
struct Builder {
    config: Config,
    data_log_dir: Option<PathBuf>,
    client_port_given: bool,
    client_port_address_text: Option<String>,
    session_timeout_min_ms: Option<u32>,
    session_timeout_max_ms: Option<u32>,
}

impl Builder {
    /// Reads one entry into the configuration.
    fn apply(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let config = &mut self.config;
        match key {
            "tickTime" => config.tick_time_ms = parse_positive_int(key, value)?,
            "dataDir" => config.data_dir = parse_path(key, value)?,
            "dataLogDir" => self.data_log_dir = Some(parse_path(key, value)?),
            "clientPort" => {
                config.client_port = parse_port(key, value)?;
                config.client_port_set = true;
                self.client_port_given = true;
            }
            "clientPortAddress" => {
                config.client_port_address = parse_ip_address(key, value)?;
                config.client_port_address_set = true;
                self.client_port_address_text = Some(value.to_string());
            }
            "clientPortListenBacklog" => {
                config.client_port_listen_backlog = parse_optional_non_negative_int(
                    key,
                    value,
                    "a non-negative integer, or -1 for the system default",
                )?;
            }
            "secureClientPort" => config.secure_client_port = Some(parse_port(key, value)?),
            "secureClientPortAddress" => config.secure_client_port_address = Some(parse_ip_address(key, value)?),
            "minSessionTimeout" => self.session_timeout_min_ms = parse_session_timeout(key, value)?,
            "maxSessionTimeout" => self.session_timeout_max_ms = parse_session_timeout(key, value)?,
            "maxClientCnxns" => {
                config.client_connections_per_host_max = parse_non_negative_int(key, value)?;
            }
            "globalOutstandingLimit" => {
                config.global_outstanding_limit = parse_positive_int(key, value)?;
            }
            "jute.maxbuffer" => config.jute_max_buffer_bytes = parse_buffer_size(key, value)?,
            "4lw.commands.whitelist" => {
                config.four_letter_word_whitelist = parse_four_letter_word_whitelist(value);
            }
            "extendedTypesEnabled" => config.extended_types_enabled = parse_boolean(key, value)?,
            "snapCount" => {
                let snap_count = parse_non_negative_int(key, value)?;
                if snap_count < SNAP_COUNT_MIN {
                    config
                        .warnings
                        .push(format!("snapCount {snap_count} is below {SNAP_COUNT_MIN}; using {SNAP_COUNT_MIN}"));
                }
                config.snap_count = snap_count.max(SNAP_COUNT_MIN);
            }
            "autopurge.snapRetainCount" => {
                let count = parse_non_negative_int(key, value)?;
                if count < AUTOPURGE_SNAP_RETAIN_COUNT_MIN {
                    config.warnings.push(format!(
                        "autopurge.snapRetainCount {count} is below \
                         {AUTOPURGE_SNAP_RETAIN_COUNT_MIN}; using {AUTOPURGE_SNAP_RETAIN_COUNT_MIN}"
                    ));
                }
                config.autopurge_snap_retain_count = count.max(AUTOPURGE_SNAP_RETAIN_COUNT_MIN);
            }
            "autopurge.purgeInterval" => {
                config.autopurge_purge_interval_hours = parse_non_negative_int(key, value)?;
            }
            "forceSync" => config.force_sync = parse_yes_no(key, value)?,
            "initLimit" => config.init_limit_ticks = parse_positive_int(key, value)?,
            "syncLimit" => config.sync_limit_ticks = parse_positive_int(key, value)?,
            "electionAlg" => {
                // ZooKeeper 3.8 only implements fast leader election, number 3.
                if value != "3" {
                    return Err(invalid(key, value, "3, the only election algorithm"));
                }
            }
            "admin.enableServer" => config.admin_server_enabled = parse_boolean(key, value)?,
            "admin.serverAddress" => config.admin_server_address = parse_ip_address(key, value)?,
            "admin.serverPort" => config.admin_server_port = parse_port(key, value)?,
            "admin.commandURL" => {
                if !value.starts_with('/') {
                    return Err(invalid(key, value, "a URL path starting with /"));
                }
                config.admin_command_url = value.to_string();
            }
            "metricsProvider.className" => {
                if value.is_empty() {
                    return Err(invalid(key, value, "a class name"));
                }
                config.metrics_provider_class_name = value.to_string();
            }
            "metricsProvider.httpHost" => {
                config.metrics_provider_http_host = parse_ip_address(key, value)?;
            }
            "metricsProvider.httpPort" => {
                config.metrics_provider_http_port = parse_port(key, value)?;
            }
            "reconfigEnabled" => config.reconfig_enabled = parse_boolean(key, value)?,
            // Quorum TLS (crate::tls::quorum); its ssl.quorum.* stores are
            // system properties like the client port's ssl.* ones.
            "sslQuorum" => config.ssl_quorum = parse_boolean(key, value)?,
            "sslQuorumReloadCertFiles" => config.ssl_quorum_reload_cert_files = parse_boolean(key, value)?,
            "portUnification" => config.quorum_port_unification = parse_boolean(key, value)?,
            "standaloneEnabled" => config.standalone_enabled = parse_boolean(key, value)?,
            "peerType" => config.peer_type = parse_role(key, value)?,
            "dynamicConfigFile" => config.dynamic_config_file = Some(parse_path(key, value)?),
            "zoocore.shards" => config.shard_count = parse_non_negative_int(key, value)?,
            "zoocore.connectionMemoryMaxBytes" => {
                let bytes = parse_integer_in_range(key, value, 1, i64::MAX, "a positive number of bytes")?;
                config.connection_memory_bytes_max = Some(bytes as u64);
            }
            "zoocore.logLevel" => {
                config.log_level = (!value.is_empty()).then(|| value.to_string());
            }
            _ => self.apply_prefixed(key, value)?,
        }
        Ok(())
    }

    /// Reads the keys recognised by their prefix, and keeps the rest as
    /// system properties.
    fn apply_prefixed(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let config = &mut self.config;
        if let Some(id_text) = key.strip_prefix("server.") {
            let id = parse_server_id(key, id_text)?;
            let server = parse_quorum_server(key, id, value)?;
            config.servers.insert(id, server);
        } else if let Some(option) = key.strip_prefix("metricsProvider.") {
            config.metrics_provider_options.insert(option.to_string(), value.to_string());
        } else if key.starts_with("zoocore.") {
            config.warnings.push(format!("unknown zoocore key {key} ignored"));
        } else if UNSUPPORTED_ZOOKEEPER_KEYS.contains(&key) || key.starts_with("group.") || key.starts_with("weight.") {
            config.warnings.push(format!("{key} is a ZooKeeper setting that zoocore does not support; ignored"));
        } else {
            config.system_properties.insert(format!("{SYSTEM_PROPERTY_PREFIX}{key}"), value.to_string());
        }
        Ok(())
    }

    /// Resolves defaults that depend on other keys and checks the keys
    /// against each other.
    fn finish(self) -> Result<Config, ConfigError> {
        let mut config = self.config;
        config.data_log_dir = self.data_log_dir.unwrap_or_else(|| config.data_dir.clone());
        config.session_timeout_min_ms =
            self.session_timeout_min_ms.unwrap_or_else(|| default_session_timeout_min_ms(config.tick_time_ms));
        config.session_timeout_max_ms =
            self.session_timeout_max_ms.unwrap_or_else(|| default_session_timeout_max_ms(config.tick_time_ms));
        if config.session_timeout_min_ms > config.session_timeout_max_ms {
            return Err(ConfigError::SessionTimeoutRange {
                session_timeout_min_ms: config.session_timeout_min_ms,
                session_timeout_max_ms: config.session_timeout_max_ms,
            });
        }
        if let Some(value) = self.client_port_address_text {
            if !self.client_port_given {
                return Err(ConfigError::ClientPortAddressWithoutClientPort { value });
            }
        }
        Ok(config)
    }
}

/// Builds an [`ConfigError::InvalidValue`].
fn invalid(key: &str, value: &str, expected: &'static str) -> ConfigError {
    ConfigError::InvalidValue { key: key.to_string(), value: value.to_string(), expected }
}

/// Parses a decimal integer in `minimum..=maximum`, as Java's `Integer.parseInt` would read it.
fn parse_integer_in_range(
    key: &str,
    value: &str,
    minimum: i64,
    maximum: i64,
    expected: &'static str,
) -> Result<i64, ConfigError> {
    match value.parse::<i64>() {
        Ok(number) if (minimum..=maximum).contains(&number) => Ok(number),
        _ => Err(invalid(key, value, expected)),
    }
}

/// Parses a Java `int` greater than zero.
fn parse_positive_int(key: &str, value: &str) -> Result<u32, ConfigError> {
    const EXPECTED: &str = "a positive integer";
    let number = parse_integer_in_range(key, value, 1, JAVA_INT_MAX, EXPECTED)?;
    u32::try_from(number).map_err(|_| invalid(key, value, EXPECTED))
}

/// Parses a Java `int` that is zero or more.
fn parse_non_negative_int(key: &str, value: &str) -> Result<u32, ConfigError> {
    const EXPECTED: &str = "a non-negative integer";
    let number = parse_integer_in_range(key, value, 0, JAVA_INT_MAX, EXPECTED)?;
    u32::try_from(number).map_err(|_| invalid(key, value, EXPECTED))
}

/// Parses a Java `int` where -1 means "not set".
fn parse_optional_non_negative_int(key: &str, value: &str, expected: &'static str) -> Result<Option<u32>, ConfigError> {
    let number = parse_integer_in_range(key, value, -1, JAVA_INT_MAX, expected)?;
    if number == -1 {
        return Ok(None);
    }
    u32::try_from(number).map(Some).map_err(|_| invalid(key, value, expected))
}

/// Parses a session timeout, where -1 asks for the default derived from `tickTime`.
fn parse_session_timeout(key: &str, value: &str) -> Result<Option<u32>, ConfigError> {
    parse_optional_non_negative_int(key, value, "a non-negative number of milliseconds, or -1 for the default")
}

/// Parses `jute.maxbuffer`, which Java reads with `Integer.decode` and so also
/// accepts hexadecimal such as `0xfffff`.
fn parse_buffer_size(key: &str, value: &str) -> Result<u32, ConfigError> {
    const EXPECTED: &str = "a positive number of bytes, in decimal or 0x hexadecimal";
    let hexadecimal = value.strip_prefix("0x").or_else(|| value.strip_prefix("0X")).or_else(|| value.strip_prefix('#'));
    let number = match hexadecimal {
        Some(digits) => i64::from_str_radix(digits, 16).ok(),
        None => value.parse::<i64>().ok(),
    };
    match number {
        Some(number) if (1..=JAVA_INT_MAX).contains(&number) => {
            u32::try_from(number).map_err(|_| invalid(key, value, EXPECTED))
        }
        _ => Err(invalid(key, value, EXPECTED)),
    }
}

/// Parses a TCP port; 0 lets the operating system choose.
fn parse_port(key: &str, value: &str) -> Result<u16, ConfigError> {
    value.parse::<u16>().map_err(|_| invalid(key, value, "a port number from 0 to 65535"))
}

/// Parses a port that a peer listens on, which cannot be 0.
fn parse_peer_port(key: &str, value: &str, port: &str) -> Result<u16, ConfigError> {
    match port.trim().parse::<u16>() {
        Ok(number) if number > 0 => Ok(number),
        _ => Err(invalid(key, value, "peer ports from 1 to 65535")),
    }
}

/// Parses a non-empty path.
fn parse_path(key: &str, value: &str) -> Result<PathBuf, ConfigError> {
    if value.is_empty() {
        return Err(invalid(key, value, "a directory path"));
    }
    Ok(PathBuf::from(value))
}

/// Parses an IP literal, IPv6 optionally in brackets, or `localhost`.
fn parse_ip_address(key: &str, value: &str) -> Result<IpAddr, ConfigError> {
    if value.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let unbracketed = value.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')).unwrap_or(value);
    unbracketed
        .parse::<IpAddr>()
        .map_err(|_| invalid(key, value, "an IP address or localhost (host names are not resolved)"))
}

/// Parses ZooKeeper's strict boolean: `true` or `false`, in any case.
fn parse_boolean(key: &str, value: &str) -> Result<bool, ConfigError> {
    if value.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(invalid(key, value, "true or false"))
    }
}

/// Parses `forceSync`'s `yes` or `no`, in any case.
fn parse_yes_no(key: &str, value: &str) -> Result<bool, ConfigError> {
    if value.eq_ignore_ascii_case("yes") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("no") {
        Ok(false)
    } else {
        Err(invalid(key, value, "yes or no"))
    }
}

/// Parses `participant` or `observer`, in any case.
fn parse_role(key: &str, value: &str) -> Result<PeerRole, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "participant" => Ok(PeerRole::Participant),
        "observer" => Ok(PeerRole::Observer),
        _ => Err(invalid(key, value, "participant or observer")),
    }
}

/// Parses the whitelist the way ZooKeeper's `FourLetterCommands` does: a
/// comma-separated list where empty items are skipped, `*` anywhere means
/// every command, and `srvr` is always allowed.
fn parse_four_letter_word_whitelist(value: &str) -> FourLetterWordWhitelist {
    let mut commands = BTreeSet::from(["srvr".to_string()]);
    for item in value.split(',').map(trim_java) {
        if item == "*" {
            return FourLetterWordWhitelist::All;
        }
        if !item.is_empty() {
            commands.insert(item.to_string());
        }
    }
    FourLetterWordWhitelist::Set(commands)
}

/// Parses the N of `server.N`, a Java `long` that is not negative.
fn parse_server_id(key: &str, id_text: &str) -> Result<u64, ConfigError> {
    match id_text.parse::<u64>() {
        Ok(id) if i64::try_from(id).is_ok() => Ok(id),
        _ => Err(ConfigError::InvalidServerId { key: key.to_string() }),
    }
}

/// Splits `host:port...`, where an IPv6 host is written in brackets, into
/// the host without brackets followed by the other parts, as ZooKeeper's
/// `ConfigUtils.getHostAndPort` does.
fn split_host_and_ports(text: &str) -> Option<Vec<&str>> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after_host) = rest.split_once(']')?;
        if after_host.is_empty() {
            return Some(vec![host]);
        }
        let ports = after_host.strip_prefix(':')?;
        let mut parts = vec![host];
        parts.extend(ports.split(':'));
        Some(parts)
    } else {
        Some(text.split(':').collect())
    }
}

/// Parses `host:quorumPort:electionPort[:role][;[clientHost:]clientPort]`.
fn parse_quorum_server(key: &str, id: u64, value: &str) -> Result<QuorumServer, ConfigError> {
    const EXPECTED_FORM: &str = "host:quorumPort:electionPort[:participant|observer][;[clientHost:]clientPort]";
    let form_error = || invalid(key, value, EXPECTED_FORM);

    let mut halves = value.split(';');
    let server_part = halves.next().unwrap_or_default();
    let client_part = halves.next();
    if halves.next().is_some() {
        return Err(form_error());
    }
    if server_part.contains('|') {
        return Err(invalid(key, value, "a single server address (zoocore does not support multiple addresses)"));
    }

    let parts = split_host_and_ports(trim_java(server_part)).ok_or_else(form_error)?;
    let (host, quorum_port_text, election_port_text, role_text) = match parts.as_slice() {
        [host, quorum, election] => (*host, *quorum, *election, None),
        [host, quorum, election, role] => (*host, *quorum, *election, Some(*role)),
        _ => return Err(form_error()),
    };
    let host = trim_java(host);
    if host.is_empty() {
        return Err(form_error());
    }
    let quorum_port = parse_peer_port(key, value, quorum_port_text)?;
    let election_port = parse_peer_port(key, value, election_port_text)?;
    if quorum_port == election_port {
        return Err(invalid(key, value, "different quorum and election ports"));
    }
    let role = match role_text {
        Some(role_text) => parse_role(key, role_text)
            .map_err(|_| invalid(key, value, "a role of participant or observer after the ports"))?,
        None => PeerRole::Participant,
    };

    let client_address = match client_part {
        None => None,
        Some(client_text) => {
            let client_parts = split_host_and_ports(trim_java(client_text)).ok_or_else(form_error)?;
            let (client_host, client_port_text) = match client_parts.as_slice() {
                [port] => ("0.0.0.0", *port),
                [client_host, port] if !trim_java(client_host).is_empty() => (trim_java(client_host), *port),
                _ => return Err(form_error()),
            };
            let port = match client_port_text.trim().parse::<u16>() {
                Ok(port) => port,
                Err(_) => return Err(invalid(key, value, "a client port from 0 to 65535 after ;")),
            };
            Some(ServerClientAddress { host: client_host.to_string(), port })
        }
    };

    Ok(QuorumServer { id, host: host.to_string(), quorum_port, election_port, role, client_address })
}

/// Shards when `zoocore.shards` is not set: one per CPU but one, which the
/// broadcast core (its own executor, unpinned) then has to itself instead of
/// sharing a shard's; a single CPU still gets one shard. Measured on 2 CPUs
/// against one shard per CPU (docs/ARCHITECTURE.md, "Threads").
pub fn default_shard_count(cpus: usize) -> usize {
    cpus.saturating_sub(1).max(1)
}

#[cfg(test)]
mod tests;
pub mod tunables;

pub use tunables::Tunables;
