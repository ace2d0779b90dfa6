//! `aggregator.toml`: the site server's configuration, validated before
//! anything starts. Loading, the environment overrides and the errors that
//! name the file and the key are [`crate::config`]'s.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::{
    beside, check_site_key, check_timezone, check_topic_level, parse_file, parse_str, ConfigError,
    MqttConfig, Secret, SiteConfig, StorageConfig, DEMO_SECRET_MARK, ENV_DATA_DIR, ENV_MQTT_URL,
};

/// The aggregator's ingest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Larger messages are rejected (bytes).
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// Most events in one commit.
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: default_max_message_bytes(),
            max_batch: default_max_batch(),
        }
    }
}

fn default_max_message_bytes() -> usize {
    64 * 1024
}
fn default_max_batch() -> usize {
    5000
}

/// The site roster the aggregator publishes to boards.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RosterConfig {
    /// CSV with a header: `person_id,name,role,board,area,coach,badge_hashes`
    /// (hashes separated by `;`). A relative path is relative to the
    /// config file's folder (so `roster.csv` beside `aggregator.toml` works
    /// in the repository and under /etc/huddle, whatever the working
    /// directory: systemd starts services in `/`).
    #[serde(default)]
    pub file: Option<PathBuf>,
}

/// The coaching loop at the aggregator: how often each learner should be
/// observed, and how often the figures are computed again.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoachingConfig {
    /// Observations each team leader should have within the window (0: no target).
    #[serde(default = "default_team_leader_per_window")]
    pub team_leader_per_window: u32,
    /// Observations each supervisor should have within the window (0: no target).
    #[serde(default = "default_supervisor_per_window")]
    pub supervisor_per_window: u32,
    /// The sliding window, in days of 24 hours.
    #[serde(default = "default_window_days")]
    pub window_days: u32,
    /// The figures are computed again this often (seconds), besides after
    /// every commit that stored an observation: overdue grows with time alone.
    #[serde(default = "default_recompute_s")]
    pub recompute_s: u64,
}

impl Default for CoachingConfig {
    fn default() -> Self {
        Self {
            team_leader_per_window: default_team_leader_per_window(),
            supervisor_per_window: default_supervisor_per_window(),
            window_days: default_window_days(),
            recompute_s: default_recompute_s(),
        }
    }
}

fn default_team_leader_per_window() -> u32 {
    2
}
fn default_supervisor_per_window() -> u32 {
    1
}
fn default_window_days() -> u32 {
    7
}
fn default_recompute_s() -> u64 {
    60
}

/// The live status rules at the aggregator.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusConfig {
    /// An escalated need still open after this many seconds is stale
    /// (alert `escalation_stale`).
    #[serde(default = "default_escalation_stale_s")]
    pub escalation_stale_s: u64,
    /// A board not heard for this many seconds (no event, no `online`
    /// heartbeat) is offline even if its retained flag says `true`.
    #[serde(default = "default_offline_after_s")]
    pub offline_after_s: u64,
}

impl Default for StatusConfig {
    fn default() -> Self {
        Self {
            escalation_stale_s: default_escalation_stale_s(),
            offline_after_s: default_offline_after_s(),
        }
    }
}

fn default_escalation_stale_s() -> u64 {
    4 * 3600
}
fn default_offline_after_s() -> u64 {
    120
}

impl StatusConfig {
    fn validate(&self, err: &dyn Fn(&str, String) -> ConfigError) -> Result<(), ConfigError> {
        if !(60..=30 * 86_400).contains(&self.escalation_stale_s) {
            return Err(err(
                "status.escalation_stale_s",
                "must be between 60 (a minute) and 2592000 (30 days)".into(),
            ));
        }
        if !(45..=86_400).contains(&self.offline_after_s) {
            return Err(err(
                "status.offline_after_s",
                "must be between 45 and 86400: kiosks publish their `online` heartbeat every 30 s, so less would call live boards offline".into(),
            ));
        }
        Ok(())
    }
}

/// Home Assistant MQTT discovery at the aggregator.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HomeAssistantConfig {
    /// Publish a retained discovery message per board entity, so that
    /// every board appears in Home Assistant with no set-up there.
    #[serde(default)]
    pub discovery: bool,
    /// Home Assistant's discovery prefix (its default: `homeassistant`).
    #[serde(default = "default_discovery_prefix")]
    pub prefix: String,
}

impl Default for HomeAssistantConfig {
    fn default() -> Self {
        Self {
            discovery: false,
            prefix: default_discovery_prefix(),
        }
    }
}

fn default_discovery_prefix() -> String {
    "homeassistant".into()
}

impl HomeAssistantConfig {
    fn validate(&self, err: &dyn Fn(&str, String) -> ConfigError) -> Result<(), ConfigError> {
        let ok = !self.prefix.is_empty()
            && self
                .prefix
                .split('/')
                .all(|level| !level.is_empty() && !level.contains(['+', '#']));
        if !ok {
            return Err(err(
                "home_assistant.prefix",
                "must be a topic prefix like `homeassistant`: no empty level, no + or #".into(),
            ));
        }
        Ok(())
    }
}

/// The aggregator's configuration (`config/aggregator.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregatorConfig {
    /// The site this aggregator serves.
    pub site: SiteConfig,
    /// Where state lives.
    #[serde(default)]
    pub storage: StorageConfig,
    /// The site broker.
    #[serde(default)]
    pub mqtt: MqttConfig,
    /// Ingest limits.
    #[serde(default)]
    pub ingest: IngestConfig,
    /// The site roster.
    #[serde(default)]
    pub roster: RosterConfig,
    /// The web dashboard; none without the section.
    #[serde(default)]
    pub web: Option<WebConfig>,
    /// Coaching cadence targets.
    #[serde(default)]
    pub coaching: CoachingConfig,
    /// Live status thresholds.
    #[serde(default)]
    pub status: StatusConfig,
    /// Home Assistant discovery.
    #[serde(default)]
    pub home_assistant: HomeAssistantConfig,
    /// The file this was read from, for messages. Not a key.
    #[serde(skip)]
    pub source: PathBuf,
}

impl CoachingConfig {
    fn validate(&self, err: &dyn Fn(&str, String) -> ConfigError) -> Result<(), ConfigError> {
        for (key, value) in [
            (
                "coaching.team_leader_per_window",
                self.team_leader_per_window,
            ),
            ("coaching.supervisor_per_window", self.supervisor_per_window),
        ] {
            if value > 100 {
                return Err(err(
                    key,
                    format!("{value} observations per window is not a target people can meet: give 0 (no target) to 100"),
                ));
            }
        }
        if !(1..=365).contains(&self.window_days) {
            return Err(err(
                "coaching.window_days",
                "must be between 1 and 365".into(),
            ));
        }
        if !(1..=3600).contains(&self.recompute_s) {
            return Err(err(
                "coaching.recompute_s",
                "must be between 1 and 3600".into(),
            ));
        }
        Ok(())
    }
}

/// The web dashboard served by the aggregator (`[web]`). The section's
/// presence turns it on (the shipped file has it, on port 8080): a
/// configuration without it opens no port and needs no token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// `false` keeps the section but serves nothing.
    #[serde(default = "default_web_enabled")]
    pub enabled: bool,
    /// `ADDRESS:PORT` to listen on.
    #[serde(default = "default_web_listen")]
    pub listen: String,
    /// The read-only access token, in the file itself.
    #[serde(default)]
    pub token: Option<Secret>,
    /// Or a file holding the token (one line), e.g. made by the package.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// The token from `token` or `token_file`, read at load. Not a key.
    #[serde(skip)]
    pub resolved_token: Option<Secret>,
    /// HTTPS: the certificate chain (PEM, the server's first), with
    /// `key_file`; relative to the configuration file's folder.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// HTTPS: the certificate's private key (PEM), with `cert_file`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Connections at once from one client address (IPv6: one /64).
    #[serde(default = "default_web_max_per_address")]
    pub max_per_address: usize,
    /// The HTTPS setup made from `cert_file` and `key_file` at load;
    /// `None` serves plain HTTP. Not a key.
    #[serde(skip)]
    pub tls: Option<WebTls>,
}

/// The dashboard's TLS server setup (rustls with the ring provider, as
/// MQTT's TLS), made once at load so that `--check` sees a bad file.
#[derive(Clone)]
pub struct WebTls(pub std::sync::Arc<rustls::ServerConfig>);

impl fmt::Debug for WebTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebTls(…)")
    }
}

impl WebTls {
    /// Reads the PEM certificate chain and private key; the key at fault
    /// and the message (naming the file) otherwise.
    pub fn load(cert: &Path, key: &Path) -> Result<WebTls, (&'static str, String)> {
        let read = |path: &Path, k: &'static str| {
            std::fs::read(path).map_err(|e| (k, format!("cannot read {}: {e}", path.display())))
        };
        let pem = read(cert, "web.cert_file")?;
        let certs = rustls_pemfile::certs(&mut pem.as_slice())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ("web.cert_file", format!("{}: {e}", cert.display())))?;
        if certs.is_empty() {
            return Err((
                "web.cert_file",
                format!("{} holds no PEM certificate", cert.display()),
            ));
        }
        let pem = read(key, "web.key_file")?;
        let private = rustls_pemfile::private_key(&mut pem.as_slice())
            .map_err(|e| ("web.key_file", format!("{}: {e}", key.display())))?
            .ok_or_else(|| {
                (
                    "web.key_file",
                    format!("{} holds no PEM private key", key.display()),
                )
            })?;
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ("web.cert_file", e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, private)
            .map_err(|e| {
                (
                    "web.key_file",
                    format!(
                        "{} does not make a server key for {}: {e}",
                        key.display(),
                        cert.display()
                    ),
                )
            })?;
        // One request per connection, HTTP/1.1 only.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(WebTls(std::sync::Arc::new(config)))
    }
}

fn default_web_enabled() -> bool {
    true
}
fn default_web_listen() -> String {
    "0.0.0.0:8080".into()
}
fn default_web_max_per_address() -> usize {
    crate::aggregator::web::DEFAULT_MAX_PER_ADDRESS
}

impl WebConfig {
    /// The address to listen on (validated at load).
    pub fn listen_addr(&self) -> Result<std::net::SocketAddr, String> {
        self.listen.parse().map_err(|_| {
            format!(
                "`{}` is not ADDRESS:PORT (for example 0.0.0.0:8080 or 127.0.0.1:8080)",
                self.listen
            )
        })
    }

    /// Reads `token` or `token_file` into `resolved_token`; the key at
    /// fault and the message otherwise.
    fn resolve(&mut self) -> Result<(), (&'static str, String)> {
        if !self.enabled {
            return Ok(());
        }
        let token =
            match (&self.token, &self.token_file) {
                (Some(_), Some(_)) => {
                    return Err((
                        "web.token_file",
                        "give `token` or `token_file`, not both".into(),
                    ))
                }
                (None, None) => return Err((
                    "web.token",
                    "the dashboard needs a read-only access token: set `token` or `token_file` \
                     (make one with `openssl rand -hex 32`), or remove the [web] section"
                        .into(),
                )),
                (Some(t), None) => t.0.clone(),
                (None, Some(f)) => std::fs::read_to_string(f)
                    .map_err(|e| {
                        (
                            "web.token_file",
                            format!("cannot read {}: {e}", f.display()),
                        )
                    })?
                    .trim()
                    .to_owned(),
            };
        let key = if self.token.is_some() {
            "web.token"
        } else {
            "web.token_file"
        };
        check_web_token(&token).map_err(|m| (key, m))?;
        self.resolved_token = Some(Secret(token));
        let both = "HTTPS needs both `cert_file` and `key_file` (or neither, for plain HTTP)";
        self.tls = match (&self.cert_file, &self.key_file) {
            (None, None) => None,
            (Some(_), None) => return Err(("web.key_file", format!("not set: {both}"))),
            (None, Some(_)) => return Err(("web.cert_file", format!("not set: {both}"))),
            (Some(cert), Some(key)) => Some(WebTls::load(cert, key)?),
        };
        Ok(())
    }
}

/// A dashboard token: 16 to 256 URL-safe characters, so that it travels
/// in a URL or a header as it is.
pub fn check_web_token(token: &str) -> Result<(), String> {
    if !(16..=256).contains(&token.len()) {
        return Err("the token must be 16 to 256 characters long".into());
    }
    if !token
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~'))
    {
        return Err("the token may only hold A-Z, a-z, 0-9, `-`, `.`, `_` and `~`".into());
    }
    Ok(())
}

impl AggregatorConfig {
    /// The secret keys still at their shipped demo values (a warning at
    /// start and from `--check`; the aggregator runs with them).
    pub fn demo_secrets(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        if self.site.site_key.ends_with(DEMO_SECRET_MARK) {
            keys.push("site.site_key");
        }
        let token = self
            .web
            .as_ref()
            .and_then(|w| w.resolved_token.as_ref().or(w.token.as_ref()));
        if token.is_some_and(|t| t.0.ends_with(DEMO_SECRET_MARK)) {
            keys.push("web.token");
        }
        keys
    }

    /// Reads, overrides from the environment, and validates.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let mut config: AggregatorConfig = parse_file(path)?;
        config.source = path.to_owned();
        config.roster.file = config.roster.file.map(|f| beside(path, f));
        if let Ok(dir) = std::env::var(ENV_DATA_DIR) {
            if !dir.is_empty() {
                config.storage.data_dir = PathBuf::from(dir);
            }
        }
        if let Ok(url) = std::env::var(ENV_MQTT_URL) {
            if !url.is_empty() {
                config.mqtt.url = url;
            }
        }
        config.validate()?;
        config.resolve_web()?;
        Ok(config)
    }

    /// Reads the dashboard's token (from the file or `token_file`, which
    /// is taken from the configuration file's folder when relative).
    fn resolve_web(&mut self) -> Result<(), ConfigError> {
        let Some(web) = &mut self.web else {
            return Ok(());
        };
        if let Some(dir) = self.source.parent() {
            for f in [&mut web.token_file, &mut web.cert_file, &mut web.key_file]
                .into_iter()
                .flatten()
            {
                if f.is_relative() {
                    *f = dir.join(&*f);
                }
            }
        }
        web.resolve().map_err(|(key, message)| ConfigError {
            file: self.source.clone(),
            key: key.to_owned(),
            message,
        })
    }

    /// Checks everything that the types alone do not.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |key: &str, message: String| ConfigError {
            file: self.source.clone(),
            key: key.to_owned(),
            message,
        };
        check_topic_level(&self.site.id).map_err(|m| err("site.id", m))?;
        check_timezone(&self.site.timezone).map_err(|m| err("site.timezone", m))?;
        check_site_key(&self.site.site_key).map_err(|m| err("site.site_key", m))?;
        self.mqtt.validate(&err)?;
        if !(1024..=16 * 1024 * 1024).contains(&self.ingest.max_message_bytes) {
            return Err(err(
                "ingest.max_message_bytes",
                "must be between 1024 and 16777216".into(),
            ));
        }
        if !(1..=100_000).contains(&self.ingest.max_batch) {
            return Err(err(
                "ingest.max_batch",
                "must be between 1 and 100000".into(),
            ));
        }
        if let Some(web) = self.web.as_ref().filter(|w| w.enabled) {
            web.listen_addr().map_err(|m| err("web.listen", m))?;
            let most = crate::aggregator::web::MAX_CONNECTIONS;
            if !(1..=most).contains(&web.max_per_address) {
                return Err(err(
                    "web.max_per_address",
                    format!("must be between 1 and {most}"),
                ));
            }
        }
        if let Some(f) = &self.roster.file {
            if !f.is_file() {
                return Err(err(
                    "roster.file",
                    format!("{} is not a readable file", f.display()),
                ));
            }
        }
        self.coaching.validate(&err)?;
        self.status.validate(&err)?;
        self.home_assistant.validate(&err)
    }

    /// Parses TOML text as if read from `path`, without the environment (tests).
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut config: AggregatorConfig = parse_str(text, path)?;
        config.source = path.to_owned();
        config.roster.file = config.roster.file.map(|f| beside(path, f));
        config.validate()?;
        config.resolve_web()?;
        Ok(config)
    }

    /// The aggregator's SQLite file.
    pub fn database_path(&self) -> PathBuf {
        self.storage
            .data_dir
            .join(format!("aggregator-{}.db", self.site.id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::demo_secret_warning;

    const SHIPPED_AGGREGATOR: &str = include_str!("../../config/aggregator.toml");

    #[test]
    fn web_section_turns_the_dashboard_on_and_is_checked() {
        let shipped = SHIPPED_AGGREGATOR.replace("file = \"roster.csv\"", "");
        let c = AggregatorConfig::from_toml(&shipped, Path::new("a.toml")).unwrap();
        let web = c.web.as_ref().expect("the shipped file has [web]");
        assert!(web.enabled);
        assert_eq!(web.listen_addr().unwrap().port(), 8080);
        assert_eq!(
            web.resolved_token.as_ref().map(|t| t.0.as_str()),
            Some("demo-dashboard-token-change-me")
        );
        assert!(
            !format!("{web:?}").contains("demo-dashboard-token"),
            "Debug shows the token"
        );
        let without = shipped.split("\n[web]").next().unwrap_or_default();
        let d = AggregatorConfig::from_toml(without, Path::new("a.toml")).unwrap();
        assert!(d.web.is_none(), "no section, no dashboard");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("dashboard.token");
        std::fs::write(&file, "from-a-file-0123456789\n").unwrap();
        let with_file = format!(
            "{without}\n[web]\nlisten = \"127.0.0.1:9090\"\ntoken_file = \"{}\"\n",
            file.display()
        );
        let e = AggregatorConfig::from_toml(&with_file, Path::new("a.toml")).unwrap();
        let web = e.web.unwrap();
        assert_eq!(web.resolved_token.unwrap().0, "from-a-file-0123456789");
        let off = format!("{without}\n[web]\nenabled = false\n");
        assert!(
            AggregatorConfig::from_toml(&off, Path::new("a.toml")).is_ok(),
            "off needs no token"
        );
        for (lines, key) in [
            ("listen = \"0.0.0.0:8080\"", "web.token"),
            ("token = \"short\"", "web.token"),
            ("token = \"has spaces in it, sixteen+\"", "web.token"),
            ("token_file = \"/nonexistent/token\"", "web.token_file"),
            (
                "token = \"0123456789abcdef\"\ntoken_file = \"/x\"",
                "web.token_file",
            ),
            (
                "token = \"0123456789abcdef\"\nlisten = \"8080\"",
                "web.listen",
            ),
            ("token = \"0123456789abcdef\"\nport = 1", "web.port"),
        ] {
            let bad = format!("{without}\n[web]\n{lines}\n");
            let e = AggregatorConfig::from_toml(&bad, Path::new("/etc/huddle/aggregator.toml"))
                .unwrap_err();
            assert_eq!(e.key, key, "{lines}: {e}");
            assert!(e.to_string().contains("/etc/huddle/aggregator.toml"), "{e}");
        }
    }

    #[test]
    fn the_shipped_demo_secrets_are_named_and_real_ones_are_not() {
        let path = Path::new("/etc/huddle/aggregator.toml");
        let shipped = SHIPPED_AGGREGATOR.replace("file = \"roster.csv\"", "");
        let c = AggregatorConfig::from_toml(&shipped, path).unwrap();
        assert_eq!(c.demo_secrets(), ["site.site_key", "web.token"]);
        let warning = demo_secret_warning(&c.demo_secrets(), path).unwrap();
        assert!(
            warning
                .starts_with("site.site_key, web.token in /etc/huddle/aggregator.toml still have"),
            "{warning}"
        );
        let own = shipped
            .replace(
                "demo-site-key-change-me",
                "3f9a0c7d1e2b4a5968c7d0e1f2a3b4c5",
            )
            .replace(
                "demo-dashboard-token-change-me",
                "b1e2c3d4e5f60718293a4b5c6d7e8f90",
            );
        let c = AggregatorConfig::from_toml(&own, path).unwrap();
        assert!(c.demo_secrets().is_empty());
        assert_eq!(demo_secret_warning(&c.demo_secrets(), path), None);
    }

    #[test]
    fn a_relative_roster_file_is_beside_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("config/roster.csv"),
            dir.path().join("roster.csv"),
        )
        .unwrap();
        let path = dir.path().join("aggregator.toml");
        let c = AggregatorConfig::from_toml(SHIPPED_AGGREGATOR, &path).unwrap();
        assert_eq!(c.roster.file, Some(dir.path().join("roster.csv")));
        let absolute = SHIPPED_AGGREGATOR.replace(
            "file = \"roster.csv\"",
            &format!("file = \"{}\"", dir.path().join("roster.csv").display()),
        );
        let c = AggregatorConfig::from_toml(&absolute, Path::new("/elsewhere/a.toml")).unwrap();
        assert_eq!(c.roster.file, Some(dir.path().join("roster.csv")));
    }

    #[test]
    fn coaching_keys_default_and_are_checked() {
        // The shipped file names a roster beside it.
        let shipped = SHIPPED_AGGREGATOR.replace("file = \"roster.csv\"", "");
        let c = AggregatorConfig::from_toml(&shipped, Path::new("a.toml")).unwrap();
        let text = shipped
            .split("\n[coaching]")
            .next()
            .unwrap_or_default()
            .to_owned();
        let d = AggregatorConfig::from_toml(&text, Path::new("a.toml")).unwrap();
        assert_eq!(
            d.coaching.window_days, c.coaching.window_days,
            "shipped = defaults"
        );
        assert_eq!(
            (
                c.coaching.team_leader_per_window,
                c.coaching.supervisor_per_window,
                c.coaching.window_days,
                c.coaching.recompute_s
            ),
            (2, 1, 7, 60)
        );
        for (line, key) in [
            ("window_days = 0", "coaching.window_days"),
            (
                "team_leader_per_window = 500",
                "coaching.team_leader_per_window",
            ),
            (
                "supervisor_per_window = -1",
                "coaching.supervisor_per_window",
            ),
            ("recompute_s = 0", "coaching.recompute_s"),
            ("per_week = 2", "coaching.per_week"),
        ] {
            let bad = format!("{text}\n[coaching]\n{line}\n");
            let e = AggregatorConfig::from_toml(&bad, Path::new("/etc/huddle/aggregator.toml"))
                .unwrap_err();
            assert_eq!(e.key, key, "{line}: {e}");
            assert!(e.to_string().contains("/etc/huddle/aggregator.toml"), "{e}");
        }
    }

    #[test]
    fn status_keys_default_and_are_checked() {
        let shipped = SHIPPED_AGGREGATOR.replace("file = \"roster.csv\"", "");
        let c = AggregatorConfig::from_toml(&shipped, Path::new("a.toml")).unwrap();
        assert_eq!(
            (c.status.escalation_stale_s, c.status.offline_after_s),
            (14400, 120)
        );
        let text = shipped
            .split("\n[status]")
            .next()
            .unwrap_or_default()
            .to_owned();
        let d = AggregatorConfig::from_toml(&text, Path::new("a.toml")).unwrap();
        assert_eq!(
            (d.status.escalation_stale_s, d.status.offline_after_s),
            (14400, 120),
            "shipped = defaults"
        );
        for (line, key) in [
            ("escalation_stale_s = 10", "status.escalation_stale_s"),
            ("offline_after_s = 30", "status.offline_after_s"),
            ("offline_after_s = \"2m\"", "status.offline_after_s"),
            ("stale_after = 1", "status.stale_after"),
        ] {
            let bad = format!("{text}\n[status]\n{line}\n");
            let e = AggregatorConfig::from_toml(&bad, Path::new("/etc/huddle/aggregator.toml"))
                .unwrap_err();
            assert_eq!(e.key, key, "{line}: {e}");
            assert!(e.to_string().contains("/etc/huddle/aggregator.toml"), "{e}");
        }
    }
}
