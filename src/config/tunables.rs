//! The settings ZooKeeper reads as system properties (`-Dzookeeper.x=...`,
//! or a zoo.cfg key with or without its `zookeeper.` prefix) that zoocore
//! acts on, parsed once at start with the same strict errors as the rest of
//! zoo.cfg: a value that does not read names its key and value and stops
//! the start, where reading it at the place of use would fall back to a
//! default in silence. The defaults are ZooKeeper's.

use super::{invalid, parse_boolean, Config, ConfigError};

/// ZooKeeper's `znode.container.checkIntervalMs`.
pub const CONTAINER_CHECK_INTERVAL_MS_DEFAULT: u64 = 60_000;
/// ZooKeeper's `znode.container.maxPerMinute`.
pub const CONTAINER_DELETES_PER_MINUTE_DEFAULT: u64 = 10_000;
/// ZooKeeper's `zookeeper.nio.sessionlessCnxnTimeout`.
pub const SESSIONLESS_CONNECTION_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// ZooKeeper's `fsync.warningthresholdms`.
pub const FSYNC_WARNING_THRESHOLD_MS_DEFAULT: u64 = 1_000;

/// The system-property settings, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tunables {
    /// `znode.container.checkIntervalMs`: how often empty containers and
    /// expired TTL nodes are looked for; at least 1.
    pub container_check_interval_ms: u64,
    /// `znode.container.maxPerMinute`: deletions of them at most.
    pub container_deletes_per_minute_max: u64,
    /// `zookeeper.nio.sessionlessCnxnTimeout`: a connection without a
    /// session is closed after this long.
    pub sessionless_connection_timeout_ms: u64,
    /// `DigestAuthenticationProvider.superDigest`: the `digest` id that is
    /// also `super`.
    pub super_digest: Option<String>,
    /// `fsync.warningthresholdms`: a log sync slower than this is logged.
    pub fsync_warning_threshold_ms: u64,
    /// `enforceQuota`: hard quotas refuse writes with QuotaExceeded.
    pub enforce_quota: bool,
    /// `preAllocSize` (KiB): the size of a new log segment; None leaves
    /// the log's default (ZooKeeper's 64 MiB).
    pub pre_alloc_size_kib: Option<u64>,
}

impl Default for Tunables {
    fn default() -> Tunables {
        Tunables {
            container_check_interval_ms: CONTAINER_CHECK_INTERVAL_MS_DEFAULT,
            container_deletes_per_minute_max: CONTAINER_DELETES_PER_MINUTE_DEFAULT,
            sessionless_connection_timeout_ms: SESSIONLESS_CONNECTION_TIMEOUT_MS_DEFAULT,
            super_digest: None,
            fsync_warning_threshold_ms: FSYNC_WARNING_THRESHOLD_MS_DEFAULT,
            enforce_quota: false,
            pre_alloc_size_kib: None,
        }
    }
}

impl Tunables {
    /// Reads them from `config`'s system properties.
    pub fn from_config(config: &Config) -> Result<Tunables, ConfigError> {
        let defaults = Tunables::default();
        let number = |name: &str, default: u64| -> Result<u64, ConfigError> {
            match config.property(name).map(str::trim) {
                None | Some("") => Ok(default),
                Some(text) => text.parse().map_err(|_| invalid(name, text, "a non-negative integer")),
            }
        };
        let container_check_interval_ms =
            number("znode.container.checkIntervalMs", defaults.container_check_interval_ms)?;
        if container_check_interval_ms == 0 {
            return Err(invalid("znode.container.checkIntervalMs", "0", "a positive integer (milliseconds)"));
        }
        // ZooKeeper's name carries its prefix, and `property` adds one: a
        // zoo.cfg key or -D flag with the prefix or without it is taken.
        let prefixed = "zookeeper.nio.sessionlessCnxnTimeout";
        let sessionless_key = if config.property(prefixed).is_some() { prefixed } else { "nio.sessionlessCnxnTimeout" };
        let sessionless = number(sessionless_key, defaults.sessionless_connection_timeout_ms)?;
        let enforce_quota = match config.property("enforceQuota").map(str::trim) {
            None | Some("") => defaults.enforce_quota,
            Some(text) => parse_boolean("enforceQuota", text)?,
        };
        let super_digest = config
            .property("DigestAuthenticationProvider.superDigest")
            .map(str::trim)
            .filter(|text| !text.is_empty())
            .map(str::to_string);
        if let Some(digest) = &super_digest {
            if !digest.contains(':') {
                return Err(invalid(
                    "DigestAuthenticationProvider.superDigest",
                    digest,
                    "user:base64(sha1(user:password))",
                ));
            }
        }
        Ok(Tunables {
            container_check_interval_ms,
            container_deletes_per_minute_max: number(
                "znode.container.maxPerMinute",
                defaults.container_deletes_per_minute_max,
            )?,
            sessionless_connection_timeout_ms: sessionless,
            super_digest,
            fsync_warning_threshold_ms: number("fsync.warningthresholdms", defaults.fsync_warning_threshold_ms)?,
            enforce_quota,
            pre_alloc_size_kib: match config.property("preAllocSize").map(str::trim) {
                None | Some("") => None,
                Some(text) => Some(text.parse().map_err(|_| invalid("preAllocSize", text, "KiB, an integer"))?),
            },
        })
    }
}
