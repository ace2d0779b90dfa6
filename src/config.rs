//! What both configurations share: reading a TOML file, the environment
//! overrides, the errors and the MQTT and storage sections.
//!
//! `config/kiosk.toml` (the kiosk's `config` module) and
//! `config/aggregator.toml` (the aggregator's) are the documented defaults and run as they are. Each `load` reads a
//! file, applies the environment ([`ENV_DATA_DIR`] for the state
//! directory, [`ENV_MQTT_URL`] for the broker), then validates everything
//! before anything starts. Every [`ConfigError`] names the file and the
//! key. Every key of both files is described in `config/README.md`.

use std::fmt;
use std::path::{Path, PathBuf};

use chrono::NaiveTime;
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// Environment variable that overrides `storage.data_dir`.
pub const ENV_DATA_DIR: &str = "HUDDLE_DATA_DIR";
/// Environment variable that overrides `mqtt.url`.
pub const ENV_MQTT_URL: &str = "HUDDLE_MQTT_URL";

/// A configuration file that cannot be used, with the file and the key.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    /// The file that was read.
    pub file: PathBuf,
    /// The dotted key at fault (`board.timezone`), empty for the whole file.
    pub key: String,
    /// What is wrong and, where it helps, what to write instead.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}: key `{}`: {}",
                self.file.display(),
                self.key,
                self.message
            )
        }
    }
}

/// Where the kiosk keeps its SQLite file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// State directory; relative paths are relative to the working directory.
    /// Overridden by `HUDDLE_DATA_DIR`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: default_data_dir(),
        }
    }
}

pub(crate) fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}

/// The site's MQTT broker.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://host:port` or `mqtts://host:port` (TLS). Overridden by `HUDDLE_MQTT_URL`.
    #[serde(default = "default_mqtt_url")]
    pub url: String,
    /// User name, if the broker wants one.
    #[serde(default)]
    pub username: Option<String>,
    /// Password for `username`.
    #[serde(default)]
    pub password: Option<String>,
    /// PEM file of the CA that signed the broker's certificate (`mqtts://`);
    /// without it the system's roots are used.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate, for brokers that require one.
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    /// MQTT keep-alive in seconds: how soon a dead link is noticed.
    #[serde(default = "default_keep_alive_s")]
    pub keep_alive_s: u64,
    /// Longest pause between reconnection attempts (seconds); the pause
    /// doubles from 0.5 s with jitter up to this.
    #[serde(default = "default_backoff_max_s")]
    pub backoff_max_s: u64,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            url: default_mqtt_url(),
            username: None,
            password: None,
            ca_file: None,
            client_cert: None,
            client_key: None,
            keep_alive_s: default_keep_alive_s(),
            backoff_max_s: default_backoff_max_s(),
        }
    }
}

fn default_mqtt_url() -> String {
    "mqtt://localhost:1883".to_owned()
}
fn default_keep_alive_s() -> u64 {
    15
}
fn default_backoff_max_s() -> u64 {
    30
}

impl MqttConfig {
    pub(crate) fn validate(
        &self,
        err: &dyn Fn(&str, String) -> ConfigError,
    ) -> Result<(), ConfigError> {
        check_mqtt_url(&self.url).map_err(|m| err("mqtt.url", m))?;
        if self.password.is_some() && self.username.is_none() {
            return Err(err(
                "mqtt.password",
                "is set but mqtt.username is not".into(),
            ));
        }
        if self.client_cert.is_some() != self.client_key.is_some() {
            return Err(err(
                "mqtt.client_key",
                "mqtt.client_cert and mqtt.client_key go together".into(),
            ));
        }
        for (key, path) in [
            ("mqtt.ca_file", &self.ca_file),
            ("mqtt.client_cert", &self.client_cert),
            ("mqtt.client_key", &self.client_key),
        ] {
            if let Some(p) = path {
                if !p.is_file() {
                    return Err(err(key, format!("{} is not a readable file", p.display())));
                }
            }
        }
        if !(5..=600).contains(&self.keep_alive_s) {
            return Err(err("mqtt.keep_alive_s", "must be between 5 and 600".into()));
        }
        if !(1..=3600).contains(&self.backoff_max_s) {
            return Err(err(
                "mqtt.backoff_max_s",
                "must be between 1 and 3600".into(),
            ));
        }
        Ok(())
    }
}

/// A secret string that never shows in `Debug` output (logs).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// The site served by an aggregator.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// Site id, one topic level.
    pub id: String,
    /// The site's IANA time zone.
    pub timezone: String,
    /// The site key for badge hashes (the boards' `badge.site_key`).
    pub site_key: String,
}

/// How the shipped files mark a secret that is only good for a demo: its
/// value ends so (`demo-site-key-change-me`).
pub const DEMO_SECRET_MARK: &str = "change-me";

/// The warning for secrets left at their shipped demo values, naming the
/// keys and the file; `None` when there are none.
pub fn demo_secret_warning(keys: &[&str], file: &Path) -> Option<String> {
    (!keys.is_empty()).then(|| {
        format!(
            "{} in {} still {} the shipped demo value: anyone with this package knows it. \
             Set your own (for example `openssl rand -hex 32`)",
            keys.join(", "),
            file.display(),
            if keys.len() == 1 { "has" } else { "have" }
        )
    })
}

/// A path named in the config file `config`: relative ones are taken from
/// the file's folder.
pub(crate) fn beside(config: &Path, file: PathBuf) -> PathBuf {
    match config.parent() {
        Some(dir) if file.is_relative() => dir.join(file),
        _ => file,
    }
}

pub(crate) fn parse_file<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_owned(),
        key: String::new(),
        message: format!("cannot read the file: {e}"),
    })?;
    parse_str(&text, path)
}

pub(crate) fn parse_str<T: DeserializeOwned>(text: &str, path: &Path) -> Result<T, ConfigError> {
    let de = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        let mut message = inner.message().to_owned();
        if let Some(span) = inner.span() {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            message = format!("{message} (line {line})");
        }
        ConfigError {
            file: path.to_owned(),
            key: if key == "." { String::new() } else { key },
            message,
        }
    })
}

/// One MQTT topic level of the project's alphabet.
pub fn check_topic_level(value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > 64 {
        return Err("must be 1 to 64 characters".into());
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    {
        return Err(format!(
            "`{value}` may only hold a-z, 0-9, `_` and `-` (it is an MQTT topic level)"
        ));
    }
    Ok(())
}

/// A person, KPI or other id: letters, digits, `_`, `-` and `.`.
pub fn check_id(value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > 64 {
        return Err("must be 1 to 64 characters".into());
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
    {
        return Err(format!(
            "`{value}` may only hold letters, digits, `_`, `-` and `.`"
        ));
    }
    Ok(())
}

pub(crate) fn check_timezone(value: &str) -> Result<(), String> {
    value
        .parse::<chrono_tz::Tz>()
        .map(|_| ())
        .map_err(|_| format!("`{value}` is not an IANA time zone (for example Europe/Berlin)"))
}

pub(crate) fn check_site_key(value: &str) -> Result<(), String> {
    if value.chars().count() < 16 {
        return Err("must be at least 16 characters (a shared secret of the site)".into());
    }
    Ok(())
}

pub(crate) fn check_mqtt_url(value: &str) -> Result<(), String> {
    let rest = value
        .strip_prefix("mqtt://")
        .or_else(|| value.strip_prefix("mqtts://"))
        .ok_or_else(|| format!("`{value}` must start with mqtt:// or mqtts://"))?;
    let (host, port) = rest.rsplit_once(':').unwrap_or((rest, "1883"));
    if host.is_empty() {
        return Err(format!("`{value}` has no host"));
    }
    port.trim_end_matches('/')
        .parse::<u16>()
        .map_err(|_| format!("`{value}` has no valid port"))?;
    Ok(())
}

/// Parses `"HH:MM"`.
pub fn parse_hhmm(value: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(value, "%H:%M")
        .map_err(|_| format!("`{value}` is not a time of day as HH:MM"))
}
