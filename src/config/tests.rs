use super::*;
use std::net::Ipv6Addr;

/// Parses text that the test expects to be valid.
fn parse(text: &str) -> Config {
    match Config::parse(text) {
        Ok(config) => config,
        Err(error) => panic!("unexpected error for {text:?}: {error}"),
    }
}

/// Parses text that the test expects to be rejected, and returns the message.
fn error_message(text: &str) -> String {
    match Config::parse(text) {
        Ok(config) => panic!("expected an error for {text:?}, got {config:?}"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn default_is_a_standalone_loopback_server() {
    let config = Config::default();
    assert_eq!(config.tick_time_ms, 3000);
    assert_eq!(config.data_dir, PathBuf::from("./zoocore-data"));
    assert_eq!(config.data_log_dir, PathBuf::from("./zoocore-data"));
    assert_eq!(config.client_port, 2181);
    assert_eq!(config.client_port_address, IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_eq!(config.client_socket_address(), "127.0.0.1:2181".parse::<SocketAddr>().unwrap());
    assert_eq!(config.client_port_listen_backlog, None);
    assert_eq!(config.session_timeout_min_ms, 6000);
    assert_eq!(config.session_timeout_max_ms, 60000);
    assert_eq!(config.client_connections_per_host_max, 60);
    assert_eq!(config.global_outstanding_limit, 1000);
    assert_eq!(config.jute_max_buffer_bytes, 1_048_575);
    assert!(config.four_letter_word_whitelist.allows("srvr"));
    assert!(!config.four_letter_word_whitelist.allows("conf"));
    assert!(!config.extended_types_enabled);
    assert_eq!(config.snap_count, 100_000);
    assert_eq!(config.autopurge_snap_retain_count, 3);
    assert_eq!(config.autopurge_purge_interval_hours, 0);
    assert!(config.force_sync);
    assert_eq!(config.init_limit_ticks, 10);
    assert_eq!(config.sync_limit_ticks, 5);
    assert!(config.admin_server_enabled);
    assert_eq!(config.admin_socket_address(), "127.0.0.1:8080".parse::<SocketAddr>().unwrap());
    assert_eq!(config.admin_command_url, "/commands");
    assert_eq!(config.metrics_provider_class_name, "org.apache.zookeeper.metrics.impl.DefaultMetricsProvider");
    assert_eq!(config.metrics_provider_http_host, IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_eq!(config.metrics_provider_http_port, 7000);
    assert!(config.metrics_provider_options.is_empty());
    assert!(!config.reconfig_enabled);
    assert!(config.standalone_enabled);
    assert!(config.servers.is_empty());
    assert_eq!(config.peer_type, PeerRole::Participant);
    assert_eq!(config.shard_count, 0);
    let cpus = std::thread::available_parallelism().map(|count| count.get()).unwrap_or(1);
    assert_eq!(config.effective_shard_count(), super::default_shard_count(cpus));
    assert_eq!(config.log_level, None);
    assert!(config.system_properties.is_empty());
    assert!(config.warnings.is_empty());
    assert!(!config.is_distributed());
}

#[test]
fn empty_text_gives_the_default() {
    assert_eq!(parse(""), Config::default());
    let comment = "\n\n# only a comment\n";
    assert_eq!(parse(comment), Config { initial_configuration: comment.to_string(), ..Config::default() });
}

#[test]
fn every_key_is_parsed() {
    let text = "\
tickTime=2000
dataDir=/var/lib/zoo/data
dataLogDir=/var/lib/zoo/log
clientPort=2281
clientPortAddress=10.1.2.3
clientPortListenBacklog=128
minSessionTimeout=5000
maxSessionTimeout=90000
maxClientCnxns=0
globalOutstandingLimit=5000
jute.maxbuffer=4194304
4lw.commands.whitelist=ruok, stat ,conf
extendedTypesEnabled=TRUE
snapCount=50000
autopurge.snapRetainCount=7
autopurge.purgeInterval=24
forceSync=no
initLimit=20
syncLimit=8
electionAlg=3
admin.enableServer=false
admin.serverAddress=::1
admin.serverPort=9090
admin.commandURL=/admin
metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider
metricsProvider.httpHost=0.0.0.0
metricsProvider.httpPort=7070
metricsProvider.exportJvmInfo=false
reconfigEnabled=true
standaloneEnabled=false
peerType=observer
server.1=zk1.example.com:2888:3888
server.2=zk2.example.com:2888:3888:observer;2182
zoocore.shards=4
zoocore.logLevel=debug
authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider
";
    let config = parse(text);
    assert_eq!(config.tick_time_ms, 2000);
    assert_eq!(config.data_dir, PathBuf::from("/var/lib/zoo/data"));
    assert_eq!(config.data_log_dir, PathBuf::from("/var/lib/zoo/log"));
    assert_eq!(config.client_port, 2281);
    assert_eq!(config.client_port_address, "10.1.2.3".parse::<IpAddr>().unwrap());
    assert_eq!(config.client_port_listen_backlog, Some(128));
    assert_eq!(config.session_timeout_min_ms, 5000);
    assert_eq!(config.session_timeout_max_ms, 90000);
    assert_eq!(config.client_connections_per_host_max, 0);
    assert_eq!(config.global_outstanding_limit, 5000);
    assert_eq!(config.jute_max_buffer_bytes, 4_194_304);
    let expected_commands = ["conf", "ruok", "srvr", "stat"].map(String::from);
    assert_eq!(config.four_letter_word_whitelist, FourLetterWordWhitelist::Set(BTreeSet::from(expected_commands)));
    assert!(config.extended_types_enabled);
    assert_eq!(config.snap_count, 50000);
    assert_eq!(config.autopurge_snap_retain_count, 7);
    assert_eq!(config.autopurge_purge_interval_hours, 24);
    assert!(!config.force_sync);
    assert_eq!(config.init_limit_ticks, 20);
    assert_eq!(config.sync_limit_ticks, 8);
    assert!(!config.admin_server_enabled);
    assert_eq!(config.admin_server_address, IpAddr::V6(Ipv6Addr::LOCALHOST));
    assert_eq!(config.admin_server_port, 9090);
    assert_eq!(config.admin_command_url, "/admin");
    assert_eq!(config.metrics_provider_class_name, "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider");
    assert_eq!(config.metrics_provider_http_host, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    assert_eq!(config.metrics_provider_http_port, 7070);
    assert_eq!(config.metrics_provider_options, BTreeMap::from([("exportJvmInfo".to_string(), "false".to_string())]));
    assert!(config.reconfig_enabled);
    assert!(!config.standalone_enabled);
    assert_eq!(config.peer_type, PeerRole::Observer);
    assert_eq!(config.servers.len(), 2);
    assert_eq!(config.servers[&1].host, "zk1.example.com");
    assert_eq!(config.servers[&2].role, PeerRole::Observer);
    assert_eq!(config.shard_count, 4);
    assert_eq!(config.effective_shard_count(), 4);
    assert_eq!(config.log_level.as_deref(), Some("debug"));
    assert_eq!(config.property("authProvider.1"), Some("org.apache.zookeeper.server.auth.SASLAuthenticationProvider"));
    assert_eq!(config.system_properties.len(), 1);
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    assert!(config.is_distributed());
}

#[test]
fn each_invalid_value_names_its_key_and_value() {
    let cases: &[(&str, &str)] = &[
        ("tickTime", "abc"),
        ("tickTime", "0"),
        ("tickTime", "-5"),
        ("tickTime", "2147483648"),
        ("tickTime", "2000 # two seconds"),
        ("dataDir", ""),
        ("dataLogDir", ""),
        ("clientPort", "65536"),
        ("clientPort", "-1"),
        ("clientPort", "port"),
        ("clientPortAddress", "zk.example.com"),
        ("clientPortAddress", "300.1.1.1"),
        ("clientPortListenBacklog", "-2"),
        ("minSessionTimeout", "-2"),
        ("minSessionTimeout", "4s"),
        ("maxSessionTimeout", "99999999999"),
        ("maxClientCnxns", "-1"),
        ("globalOutstandingLimit", "0"),
        ("jute.maxbuffer", "0"),
        ("jute.maxbuffer", "0xZZ"),
        ("jute.maxbuffer", "1MB"),
        ("extendedTypesEnabled", "yes"),
        ("snapCount", "-3"),
        ("autopurge.snapRetainCount", "many"),
        ("autopurge.purgeInterval", "-1"),
        ("forceSync", "true"),
        ("initLimit", "0"),
        ("syncLimit", "x"),
        ("electionAlg", "1"),
        ("admin.enableServer", "1"),
        ("admin.serverAddress", "any"),
        ("admin.serverPort", "80800"),
        ("admin.commandURL", "commands"),
        ("metricsProvider.className", ""),
        ("metricsProvider.httpHost", "metrics.local"),
        ("metricsProvider.httpPort", "-7000"),
        ("reconfigEnabled", "on"),
        ("standaloneEnabled", ""),
        ("peerType", "leader"),
        ("zoocore.shards", "-1"),
        ("zoocore.shards", "all"),
        ("server.1", "zk1:2888"),
        ("server.1", "zk1:2888:2888"),
        ("server.1", "zk1:2888:3888:voter"),
        ("server.1", "zk1:0:3888"),
        ("server.1", "zk1:2888:3888;zk1:2181:1"),
        ("server.1", "zk1:2888:3888;2181;x"),
        ("server.1", "zk1:2888:3888;client"),
        ("server.1", "zk1:2888:3888|zk1b:2888:3888"),
        ("server.1", ":2888:3888"),
        ("server.1", "[::1:2888:3888"),
    ];
    for (key, value) in cases {
        let message = error_message(&format!("{key}={value}\n"));
        assert!(message.starts_with(&format!("invalid value for {key}: ")), "{message}");
        assert!(message.contains(&format!("{value:?}")), "{message}");
        assert!(message.contains("(expected "), "{message}");
    }
    assert_eq!(error_message("tickTime=abc"), "invalid value for tickTime: \"abc\" (expected a positive integer)");
}

#[test]
fn comments_blank_lines_and_whitespace_are_skipped() {
    let text = "\u{feff}# a comment\r\n\r\n   ! another comment\r\n\t tickTime  =  2500 \r\n\
                \n  #tickTime=1\rclientPort=3000";
    let config = parse(text);
    assert_eq!(config.tick_time_ms, 2500);
    assert_eq!(config.client_port, 3000);
    assert!(config.system_properties.is_empty());
}

#[test]
fn syntax_errors_name_the_line() {
    let text = "tickTime=2000\n\n# comment\nclientPort=2181\n\n\nfoo\n";
    assert_eq!(error_message(text), "line 7: expected key=value, found \"foo\"");
    assert_eq!(error_message("a=1\r\n = 5\r\n"), "line 2: expected key=value, found \"= 5\"");
    assert_eq!(error_message("a=1\rb=2\rtick Time=5"), "line 3: key \"tick Time\" contains whitespace");
    assert_eq!(error_message("clientPort: 2181"), "line 1: expected key=value, found \"clientPort: 2181\"");
}

#[test]
fn values_keep_everything_after_the_first_equals_sign() {
    let config = parse("DigestAuthenticationProvider.superDigest=super:abc=def=\n");
    assert_eq!(config.property("DigestAuthenticationProvider.superDigest"), Some("super:abc=def="));
}

#[test]
fn sasl_and_enforcement_keys_are_resolved_strictly() {
    let config = parse(&format!("authProvider.1={SASL_AUTHENTICATION_PROVIDER}\nenforce.auth.enabled=true\nenforce.auth.schemes= sasl , digest\nsuperUser=admin\n"));
    assert!(config.auth.sasl_provider);
    assert_eq!(config.auth.enforce_auth_schemes, Some(vec!["sasl".to_string(), "digest".to_string()]));
    assert_eq!(config.auth.super_user.as_deref(), Some("admin"));
    assert_eq!(config.auth.sasl_server_section, "Server");
    let config = parse("sessionRequireClientSASLAuth=true\nauthProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider\n");
    assert_eq!(config.auth.enforce_auth_schemes, Some(vec!["sasl".to_string()]));
    let error = Config::parse("enforce.auth.enabled=true\n").unwrap_err().to_string();
    assert!(error.contains("enforce.auth.schemes"), "{error}");
    // sasl needs its provider, and x509 has none in zoocore.
    let error = Config::parse("enforce.auth.enabled=true\nenforce.auth.schemes=sasl\n").unwrap_err().to_string();
    assert!(error.contains("enforce.auth.schemes") && error.contains("sasl"), "{error}");
    assert!(Config::parse("enforce.auth.enabled=true\nenforce.auth.schemes=x509\n").is_err());
    let error = Config::parse("enforce.auth.enabled=on\n").unwrap_err().to_string();
    assert!(error.contains("enforce.auth.enabled") && error.contains("on"), "{error}");
    let config = parse("authProvider.2=com.example.Custom\n");
    assert!(config.warnings.iter().any(|warning| warning.contains("com.example.Custom")));
}

#[test]
fn jvm_flags_set_properties_without_overriding_the_file() {
    let mut config = parse("superUser=fromfile\n");
    config
        .apply_jvm_flags(&[
            "-Xmx1g -Djava.security.auth.login.config=/etc/zk/first.conf -Dzookeeper.superUser=fromflags",
            "-Djava.security.auth.login.config=\"/etc/zk/jaas.conf\" -Dzookeeper.sasl.serverconfig=ZkServer",
        ])
        .unwrap();
    assert_eq!(config.auth.jaas_config_file, Some(PathBuf::from("/etc/zk/jaas.conf")));
    assert_eq!(config.auth.sasl_server_section, "ZkServer");
    assert_eq!(config.auth.super_user.as_deref(), Some("fromfile"));
    let mut config = parse("enforce.auth.enabled=true\nenforce.auth.schemes=digest\n");
    assert!(config.apply_jvm_flags(&["-Dzookeeper.allowSaslFailedClients=maybe"]).is_err());
}

#[test]
fn kerberos_principal_mapping_properties() {
    let config = parse("kerberos.removeHostFromPrincipal=true\n");
    assert!(config.auth.principal_mapping.remove_host && !config.auth.principal_mapping.remove_realm);
    let mut config = parse("");
    config.apply_jvm_flags(&["-Dzookeeper.kerberos.removeRealmFromPrincipal=true"]).unwrap();
    assert!(config.auth.principal_mapping.remove_realm && !config.auth.principal_mapping.remove_host);
    let error = Config::parse("kerberos.removeRealmFromPrincipal=yes\n").unwrap_err().to_string();
    assert!(error.contains("kerberos.removeRealmFromPrincipal") && error.contains("yes"), "{error}");
    assert!(Config::parse("security.auth_to_local=DEFAULT\n").is_ok());
    let error = Config::parse("security.auth_to_local=RULE:[1:$1@$0](.*@X)s/@.*//\n").unwrap_err().to_string();
    assert!(error.contains("zookeeper.security.auth_to_local") && error.contains("RULE:[1:$1@$0]"), "{error}");
}

#[test]
fn load_jaas_reads_the_server_section() {
    let directory = tempfile_directory("jaas");
    let path = directory.join("jaas.conf");
    std::fs::write(
        &path,
        "Server {\n  org.apache.zookeeper.server.auth.DigestLoginModule required user_a=\"pw\";\n};\n",
    )
    .unwrap();
    let mut config = parse(&format!("java.security.auth.login.config={}\n", path.display()));
    config.load_jaas().unwrap();
    let credentials = config.auth.sasl_credentials.as_ref().unwrap();
    assert!(credentials.contains_user("a"));
    assert!(!format!("{config:?}").contains("pw\""), "the password must not reach Debug output");
    config.auth.sasl_server_section = "Other".into();
    let error = config.load_jaas().unwrap_err().to_string();
    assert!(error.contains("'Other'") && error.contains("jaas.conf"), "{error}");
    std::fs::remove_dir_all(directory).unwrap();
}

fn tempfile_directory(name: &str) -> PathBuf {
    let directory = std::env::temp_dir().join(format!("zoocore-config-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    directory
}

#[test]
fn unknown_keys_become_system_properties() {
    let text = "\
DigestAuthenticationProvider.superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU=
authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider
zookeeper.preAllocSize=1024
skipACL=yes
";
    let config = parse(text);
    assert_eq!(
        config.system_properties.keys().collect::<Vec<_>>(),
        [
            "zookeeper.DigestAuthenticationProvider.superDigest",
            "zookeeper.authProvider.1",
            "zookeeper.skipACL",
            "zookeeper.zookeeper.preAllocSize",
        ]
    );
    let digest = Some("super:D/InIHSb7yEEbrWz8b9l71RjZJU=");
    assert_eq!(config.property("DigestAuthenticationProvider.superDigest"), digest);
    assert_eq!(config.property("zookeeper.DigestAuthenticationProvider.superDigest"), digest);
    assert_eq!(config.property("skipACL"), Some("yes"));
    assert_eq!(config.property("zookeeper.preAllocSize"), Some("1024"));
    assert_eq!(config.property("missing"), None);
    assert_eq!(config.property("tickTime"), None);
}

#[test]
fn unsupported_and_unknown_zoocore_keys_warn() {
    let config = parse("quorumListenOnAllIPs=true\nzoocore.shard=3\ngroup.1=1:2:3\n");
    assert!(config.system_properties.is_empty());
    assert_eq!(config.warnings.len(), 3, "{:?}", config.warnings);
    assert!(config.warnings.iter().any(|warning| warning.contains("quorumListenOnAllIPs")));
    assert!(config.warnings.iter().any(|warning| warning.contains("zoocore.shard")));
    assert!(config.warnings.iter().any(|warning| warning.contains("group.1")));
}

#[test]
fn server_lines_are_parsed() {
    let text = "\
server.1=zk1:2888:3888
server.2 = zk2:2889:3889:participant;2182
server.3=zk3:2890:3890:OBSERVER;10.0.0.3:2183
server.4=[fe80::1]:2891:3891;[::1]:2184
server.5=10.0.0.5:2892:3892:observer
";
    let config = parse(text);
    let servers: Vec<&QuorumServer> = config.servers.values().collect();
    assert_eq!(
        *servers[0],
        QuorumServer {
            id: 1,
            host: "zk1".to_string(),
            quorum_port: 2888,
            election_port: 3888,
            role: PeerRole::Participant,
            client_address: None,
        }
    );
    assert_eq!(servers[1].client_address, Some(ServerClientAddress { host: "0.0.0.0".to_string(), port: 2182 }));
    assert_eq!(servers[2].role, PeerRole::Observer);
    assert_eq!(servers[2].client_address, Some(ServerClientAddress { host: "10.0.0.3".to_string(), port: 2183 }));
    assert_eq!(servers[3].host, "fe80::1");
    assert_eq!(servers[3].quorum_port, 2891);
    assert_eq!(servers[3].election_port, 3891);
    assert_eq!(servers[3].client_address.as_ref().map(|a| a.host.as_str()), Some("::1"));
    assert_eq!(servers[4].host, "10.0.0.5");
    assert_eq!(servers[4].role, PeerRole::Observer);
    assert!(config.is_distributed());
}

#[test]
fn server_ids_must_be_numbers() {
    for key in ["server.x", "server.", "server.-1", "server.9223372036854775808"] {
        let message = error_message(&format!("{key}=zk1:2888:3888"));
        assert!(message.contains(&format!("{key:?}")), "{message}");
    }
    assert_eq!(parse("server.01=zk1:2888:3888").servers[&1].host, "zk1");
}

#[test]
fn a_single_server_runs_standalone_unless_disabled() {
    assert!(!parse("server.1=zk1:2888:3888").is_distributed());
    assert!(parse("server.1=zk1:2888:3888\nstandaloneEnabled=false").is_distributed());
    let one_voter = "server.1=zk1:2888:3888\nserver.2=zk2:2888:3888:observer";
    assert!(!parse(one_voter).is_distributed());
}

#[test]
fn session_timeouts_default_to_tick_multiples() {
    let config = parse("tickTime=2000");
    assert_eq!(config.session_timeout_min_ms, 4000);
    assert_eq!(config.session_timeout_max_ms, 40000);

    let config = parse("tickTime=2000\nminSessionTimeout=-1\nmaxSessionTimeout=-1");
    assert_eq!(config.session_timeout_min_ms, 4000);
    assert_eq!(config.session_timeout_max_ms, 40000);

    let config = parse("tickTime=2147483647");
    assert_eq!(config.session_timeout_min_ms, 2_147_483_647);
    assert_eq!(config.session_timeout_max_ms, 2_147_483_647);

    let config = parse("minSessionTimeout=0\nmaxSessionTimeout=0");
    assert_eq!(config.session_timeout_min_ms, 0);
    assert_eq!(config.session_timeout_max_ms, 0);
}

#[test]
fn minimum_session_timeout_must_not_exceed_maximum() {
    assert_eq!(
        error_message("minSessionTimeout=10000\nmaxSessionTimeout=5000"),
        "minSessionTimeout 10000 must not be larger than maxSessionTimeout 5000"
    );
    // The default maximum, twenty ticks, is also checked.
    assert_eq!(
        error_message("tickTime=1000\nminSessionTimeout=30000"),
        "minSessionTimeout 30000 must not be larger than maxSessionTimeout 20000"
    );
    // And so is the default minimum, two ticks.
    assert!(error_message("tickTime=1000\nmaxSessionTimeout=1999").contains("2000"));
    let config = parse("minSessionTimeout=7000\nmaxSessionTimeout=7000");
    assert_eq!(config.session_timeout_min_ms, 7000);
}

#[test]
fn client_port_address_requires_client_port() {
    assert_eq!(
        error_message("clientPortAddress=0.0.0.0"),
        "clientPortAddress is set to \"0.0.0.0\" but clientPort is not set"
    );
    let config = parse("clientPortAddress=[::1]\nclientPort=0");
    assert_eq!(config.client_socket_address(), "[::1]:0".parse::<SocketAddr>().unwrap());
    let config = parse("clientPort=2181\nclientPortAddress=localhost");
    assert_eq!(config.client_port_address, IpAddr::V4(Ipv4Addr::LOCALHOST));
}

#[test]
fn data_log_dir_follows_data_dir_and_relative_paths_stay_relative() {
    let config = parse("dataDir=data/zk");
    assert_eq!(config.data_dir, PathBuf::from("data/zk"));
    assert_eq!(config.data_log_dir, PathBuf::from("data/zk"));
    let config = parse("dataLogDir=/fast/log\ndataDir=data/zk");
    assert_eq!(config.data_log_dir, PathBuf::from("/fast/log"));
}

#[test]
fn whitelist_forms() {
    assert_eq!(parse("4lw.commands.whitelist=*").four_letter_word_whitelist, FourLetterWordWhitelist::All);
    assert_eq!(parse("4lw.commands.whitelist=ruok, *").four_letter_word_whitelist, FourLetterWordWhitelist::All);
    let whitelist = parse("4lw.commands.whitelist=").four_letter_word_whitelist;
    assert_eq!(whitelist, FourLetterWordWhitelist::default());
    let whitelist = parse("4lw.commands.whitelist=mntr,,ruok").four_letter_word_whitelist;
    assert!(whitelist.allows("mntr"));
    assert!(whitelist.allows("ruok"));
    assert!(whitelist.allows("srvr"));
    assert!(!whitelist.allows("dump"));
    assert!(FourLetterWordWhitelist::All.allows("wchp"));
}

#[test]
fn small_counts_are_raised_with_a_warning() {
    let config = parse("snapCount=1\nautopurge.snapRetainCount=0");
    assert_eq!(config.snap_count, 2);
    assert_eq!(config.autopurge_snap_retain_count, 3);
    assert_eq!(config.warnings.len(), 2, "{:?}", config.warnings);
}

#[test]
fn booleans_and_buffer_sizes_accept_zookeeper_spellings() {
    let config = parse("admin.enableServer=False\nreconfigEnabled=tRuE\nforceSync=YES");
    assert!(!config.admin_server_enabled);
    assert!(config.reconfig_enabled);
    assert!(config.force_sync);
    assert_eq!(parse("jute.maxbuffer=0xfffff").jute_max_buffer_bytes, 0xfffff);
    assert_eq!(parse("jute.maxbuffer=0X10").jute_max_buffer_bytes, 16);
    assert_eq!(parse("jute.maxbuffer=+100").jute_max_buffer_bytes, 100);
    assert_eq!(parse("zoocore.logLevel=").log_level, None);
}

#[test]
fn the_last_of_repeated_keys_wins() {
    assert_eq!(parse("tickTime=1000\ntickTime=2000").tick_time_ms, 2000);
    // The earlier value is overridden before it is read, as in java.util.Properties.
    assert_eq!(parse("tickTime=abc\ntickTime=2000").tick_time_ms, 2000);
    let config = parse("server.1=a:1:2\nserver.1=b:3:4");
    assert_eq!(config.servers[&1].host, "b");
}

#[test]
fn from_file_reads_and_names_a_missing_path() {
    let directory = std::env::temp_dir().join(format!("zoocore-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();

    let path = directory.join("zoo.cfg");
    std::fs::write(&path, "tickTime=2000\ndataDir=relative/data\n").unwrap();
    let config = Config::from_file(&path).unwrap();
    assert_eq!(config.tick_time_ms, 2000);
    assert_eq!(config.data_dir, PathBuf::from("relative/data"));

    // A file that is not UTF-8 is read as ISO-8859-1, like Properties.load.
    let latin_path = directory.join("latin.cfg");
    std::fs::write(&latin_path, b"dataDir=/data/caf\xe9\n").unwrap();
    let config = Config::from_file(&latin_path).unwrap();
    assert_eq!(config.data_dir, PathBuf::from("/data/caf\u{e9}"));

    let missing = directory.join("missing.cfg");
    let error = Config::from_file(&missing).unwrap_err();
    assert!(matches!(error, ConfigError::Read { .. }));
    assert!(error.to_string().contains(&missing.display().to_string()), "{error}");

    std::fs::remove_dir_all(&directory).unwrap();
}

#[test]
fn server_lines_come_from_the_dynamic_config_file() {
    let directory = std::env::temp_dir().join(format!("zoocore-config-dynamic-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    let dynamic = directory.join("zoo.cfg.dynamic.100000000");
    std::fs::write(&dynamic, "server.1=127.0.0.1:2888:3888;2181\nserver.2=127.0.0.1:2889:3889:observer\n").unwrap();
    let path = directory.join("zoo.cfg");
    std::fs::write(&path, format!("reconfigEnabled=true\ndynamicConfigFile={}\n", dynamic.display())).unwrap();
    let config = Config::from_file(&path).unwrap();
    assert_eq!(config.dynamic_config_file.as_deref(), Some(dynamic.as_path()));
    assert_eq!(config.servers.keys().copied().collect::<Vec<_>>(), [1, 2]);
    assert_eq!(config.servers[&2].role, PeerRole::Observer);
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);

    // ZooKeeper refuses server lines in both places.
    let both = format!("dynamicConfigFile={}\nserver.3=127.0.0.1:2890:3890\n", dynamic.display());
    let message = error_message(&both);
    assert!(message.contains("server.3") && message.contains(&dynamic.display().to_string()), "{message}");

    // Only server lines belong in the dynamic file; a version inside is an error there too.
    std::fs::write(&dynamic, "server.1=127.0.0.1:2888:3888\nversion=100000000\n").unwrap();
    let message = Config::from_file(&path).unwrap_err().to_string();
    assert!(
        message.contains("line 2") && message.contains("version") && message.contains("zoo.cfg.dynamic"),
        "{message}"
    );
    std::fs::write(&dynamic, "server.1=127.0.0.1:2888\n").unwrap();
    let message = Config::from_file(&path).unwrap_err().to_string();
    assert!(message.contains("zoo.cfg.dynamic") && message.contains("server.1"), "{message}");
    std::fs::remove_file(&dynamic).unwrap();
    let message = Config::from_file(&path).unwrap_err().to_string();
    assert!(message.contains(&dynamic.display().to_string()), "{message}");

    std::fs::remove_dir_all(&directory).unwrap();
}

#[test]
fn repeated_server_ids_are_recorded_with_their_lines() {
    let config = parse("server.1=a:1:2\ntickTime=2000\nserver.01=b:3:4\nserver.2=c:5:6\n");
    assert_eq!(config.repeated_server_ids.len(), 1);
    assert_eq!(config.repeated_server_ids[&1], ["server.1 (line 1)", "server.01 (line 3)"]);
    assert!(parse("server.1=a:1:2\nserver.2=c:5:6\n").repeated_server_ids.is_empty());
}

#[test]
fn render_conf_matches_zookeeper_standalone_output() {
    let config = parse(
        "tickTime=2000\ndataDir=/tmp/zk/data\ndataLogDir=/tmp/zk/datalog\n\
         clientPort=2481\nmaxClientCnxns=0\n",
    );
    let rendered = config.render_conf_with_sizes(0, 457);
    let lines: Vec<String> = rendered.iter().map(|(key, value)| format!("{key}={value}")).collect();
    // This is what ZooKeeper 3.8.0 printed for the same file.
    assert_eq!(
        lines,
        [
            "clientPort=2481",
            "secureClientPort=-1",
            "dataDir=/tmp/zk/data/version-2",
            "dataDirSize=0",
            "dataLogDir=/tmp/zk/datalog/version-2",
            "dataLogSize=457",
            "tickTime=2000",
            "maxClientCnxns=0",
            "minSessionTimeout=4000",
            "maxSessionTimeout=40000",
            "clientPortListenBacklog=-1",
            "serverId=0",
        ]
    );
    let without_sizes: Vec<String> = config.render_conf().into_iter().map(|(key, _)| key).collect();
    assert!(!without_sizes.iter().any(|key| key.ends_with("Size")));
    assert_eq!(without_sizes.len(), 10);
}

#[test]
fn render_conf_prints_relative_directories_as_absolute() {
    let config = parse("clientPortListenBacklog=64");
    let rendered: BTreeMap<String, String> = config.render_conf().into_iter().collect();
    let data_dir = Path::new(&rendered["dataDir"]);
    assert!(data_dir.is_absolute(), "{}", data_dir.display());
    assert!(data_dir.ends_with("zoocore-data/version-2"), "{}", data_dir.display());
    assert_eq!(rendered["clientPortListenBacklog"], "64");
    assert_eq!(rendered["minSessionTimeout"], "6000");
}

#[test]
fn no_input_panics() {
    // A small deterministic generator mixes keys, separators and values
    // into lines, so that many odd combinations are tried without a fuzzer.
    let keys = [
        "tickTime",
        "dataDir",
        "clientPort",
        "clientPortAddress",
        "minSessionTimeout",
        "maxSessionTimeout",
        "server.1",
        "server.",
        "jute.maxbuffer",
        "4lw.commands.whitelist",
        "metricsProvider.",
        "zoocore.shards",
        "",
        " ",
        "#",
        "!",
        "=",
        "unknown",
    ];
    let values = [
        "",
        "0",
        "-1",
        "1",
        "65535",
        "65536",
        "2147483647",
        "2147483648",
        "99999999999999999999",
        "[",
        "]",
        "[::1]",
        "[::1",
        ":",
        ";",
        "|",
        "a:b:c",
        "h:1:2",
        "h:1:2:observer;3",
        "[::1]:1:2;[::1]:3",
        "h:1:2;;",
        "0x",
        "0xfffff",
        "\u{e9}",
        "\u{0}",
        "*",
        ",",
    ];
    let separators = ["=", " = ", "", "==", ":"];
    let terminators = ["\n", "\r", "\r\n", ""];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |bound: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        usize::try_from(state % u64::try_from(bound).unwrap()).unwrap()
    };
    for _ in 0..3000 {
        let mut text = String::new();
        for _ in 0..next(6) {
            text.push_str(keys[next(keys.len())]);
            text.push_str(separators[next(separators.len())]);
            text.push_str(values[next(values.len())]);
            text.push_str(terminators[next(terminators.len())]);
        }
        if let Ok(config) = Config::parse(&text) {
            let _ = config.render_conf();
            assert!(config.session_timeout_min_ms <= config.session_timeout_max_ms);
            assert!(config.tick_time_ms > 0);
        }
    }
}

#[test]
fn system_property_settings_are_checked_at_start() {
    let config = parse("tickTime=2000\ndataDir=/tmp/x\nclientPort=2181\n");
    assert_eq!(config.tunables, Tunables::default());
    let config = parse(
        "tickTime=2000\ndataDir=/tmp/x\nclientPort=2181\nznode.container.checkIntervalMs=500\n\
         zookeeper.nio.sessionlessCnxnTimeout=3000\nDigestAuthenticationProvider.superDigest=super:abc=\n\
         fsync.warningthresholdms=20\nenforceQuota=true\npreAllocSize=16\n",
    );
    assert_eq!(config.tunables.container_check_interval_ms, 500);
    assert_eq!(config.tunables.sessionless_connection_timeout_ms, 3000);
    assert_eq!(config.tunables.super_digest.as_deref(), Some("super:abc="));
    assert_eq!(config.tunables.fsync_warning_threshold_ms, 20);
    assert!(config.tunables.enforce_quota);
    assert_eq!(config.tunables.pre_alloc_size_kib, Some(16));
    for (line, key) in [
        ("znode.container.checkIntervalMs=soon", "znode.container.checkIntervalMs"),
        ("znode.container.checkIntervalMs=0", "znode.container.checkIntervalMs"),
        ("znode.container.maxPerMinute=-1", "znode.container.maxPerMinute"),
        ("nio.sessionlessCnxnTimeout=10s", "zookeeper.nio.sessionlessCnxnTimeout"),
        ("fsync.warningthresholdms=1e3", "fsync.warningthresholdms"),
        ("enforceQuota=yes", "enforceQuota"),
        ("preAllocSize=64M", "preAllocSize"),
        ("DigestAuthenticationProvider.superDigest=nocolon", "DigestAuthenticationProvider.superDigest"),
    ] {
        let text = format!("tickTime=2000\ndataDir=/tmp/x\nclientPort=2181\n{line}\n");
        match Config::parse(&text) {
            Err(ConfigError::InvalidValue { key: named, .. }) => assert_eq!(named, key, "{line}"),
            other => panic!("{line}: {other:?}"),
        }
    }
}

#[test]
fn by_default_the_broadcast_core_keeps_a_cpu_of_its_own() {
    assert_eq!(super::default_shard_count(0), 1);
    assert_eq!(super::default_shard_count(1), 1);
    assert_eq!(super::default_shard_count(2), 1);
    assert_eq!(super::default_shard_count(4), 3);
    assert_eq!(super::default_shard_count(64), 63);
}
