//! Configuration of both binaries: the TOML files under `config/`, their
//! validation, and the environment overrides.
//!
//! `config/kiosk.toml` and `config/aggregator.toml` are the documented
//! defaults and run as they are. [`KioskConfig::load`] and
//! [`AggregatorConfig::load`] read a file, apply the environment
//! (`HUDDLE_DATA_DIR` for the state directory, `HUDDLE_MQTT_URL` for the
//! broker), then validate everything before anything starts. Every error
//! names the file and the key.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::NaiveTime;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::badge::wiegand::{DecoderConfig, Format, Formats, Keypad, Normalise};
use crate::domain::{Role, Step};

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

/// The kiosk's whole configuration (`config/kiosk.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KioskConfig {
    /// Where this board sits in the plant; names its topics and events.
    pub board: BoardConfig,
    /// Where state lives.
    #[serde(default)]
    pub storage: StorageConfig,
    /// The site broker (the kiosk runs without it and queues).
    #[serde(default)]
    pub mqtt: MqttConfig,
    /// How the outbox is delivered.
    #[serde(default)]
    pub delivery: DeliveryConfig,
    /// How badges are read and hashed.
    pub badge: BadgeConfig,
    /// The huddle: schedule, agenda, KPIs and pick lists.
    pub huddle: HuddleConfig,
    /// Screen behaviour.
    #[serde(default)]
    pub ui: UiConfig,
    /// The roster used until the aggregator publishes one for this board.
    #[serde(default)]
    pub people: Vec<PersonConfig>,
    /// The file this was read from, for messages. Not a key.
    #[serde(skip)]
    pub source: PathBuf,
}

/// Identity of the board.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardConfig {
    /// Site id, one MQTT topic level (`[a-z0-9_-]`).
    pub site: String,
    /// Area id (ISA-95 area), one topic level.
    pub area: String,
    /// Board id, one topic level; unique within the site.
    pub id: String,
    /// The name people read on the screen.
    pub name: String,
    /// The site's IANA time zone; schedules are local, events are UTC.
    pub timezone: String,
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

fn default_data_dir() -> PathBuf {
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
    fn validate(&self, err: &dyn Fn(&str, String) -> ConfigError) -> Result<(), ConfigError> {
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

/// How the kiosk delivers its outbox.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Most events sent beyond the aggregator's ack at a time.
    #[serde(default = "default_window")]
    pub window: u32,
    /// When the ack has not moved for this many seconds while events are
    /// outstanding, send again from ack + 1.
    #[serde(default = "default_ack_timeout_s")]
    pub ack_timeout_s: u64,
    /// Delivered events are kept this many days, then pruned.
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            window: default_window(),
            ack_timeout_s: default_ack_timeout_s(),
            retention_days: default_retention_days(),
        }
    }
}

fn default_window() -> u32 {
    500
}
fn default_ack_timeout_s() -> u64 {
    10
}
fn default_retention_days() -> u32 {
    30
}

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

/// The live status rules at the aggregator (issue 6).
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

/// Home Assistant MQTT discovery at the aggregator (issue 6).
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

/// Which badge source feeds the board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BadgeSourceKind {
    /// A USB keyboard-wedge reader: digits then Enter, typed into the window.
    Keyboard,
    /// Badge numbers, one per line, from `badge.simulated_path` (a FIFO) or stdin.
    Simulated,
    /// A Wiegand reader on the Pi's GPIO (its own module).
    Gpio,
}

/// Badge reading and hashing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BadgeConfig {
    /// `keyboard`, `simulated` or `gpio`.
    pub source: BadgeSourceKind,
    /// For `simulated`: a FIFO or file path, or `-` for stdin. Keyboard-wedge
    /// input through the window works with every source.
    #[serde(default = "default_simulated_path")]
    pub simulated_path: String,
    /// The site's secret for HMAC-SHA256 badge hashes (at least 16 characters).
    /// Every board and the aggregator of a site share it.
    pub site_key: String,
    /// A half-typed number older than this is dropped (milliseconds).
    #[serde(default = "default_wedge_timeout_ms")]
    pub wedge_timeout_ms: u64,
    /// Fewest digits that make a badge number.
    #[serde(default = "default_min_digits")]
    pub min_digits: usize,
    /// The Wiegand reader on GPIO (`[badge.wiegand]`), for `source = "gpio"`
    /// and `huddle-kiosk badge decode|watch`.
    #[serde(default)]
    pub wiegand: WiegandConfig,
}

/// A Wiegand reader wired to the Pi's GPIO (`[badge.wiegand]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WiegandConfig {
    /// BCM number of the pin D0 is wired to (through a level shifter).
    #[serde(default = "default_d0_pin")]
    pub d0_pin: u8,
    /// BCM number of the pin D1 is wired to.
    #[serde(default = "default_d1_pin")]
    pub d1_pin: u8,
    /// The card formats the site uses. H10304 and H10302 are both 37 bits:
    /// list one of them.
    #[serde(default = "default_wiegand_formats")]
    pub formats: Vec<Format>,
    /// Keypad frames the reader sends: `none`, `4bit` or `8bit`.
    #[serde(default)]
    pub keypad: Keypad,
    /// A frame ends after this long without a pulse (milliseconds).
    #[serde(default = "default_silence_ms")]
    pub silence_ms: u64,
    /// Pulses closer than this are ringing or noise (microseconds).
    #[serde(default = "default_glitch_us")]
    pub glitch_us: u64,
    /// The badge number a card becomes: `card`, `facility_card` or
    /// `data_bits` (see [`Normalise`]).
    #[serde(default)]
    pub number: Normalise,
}

impl Default for WiegandConfig {
    fn default() -> Self {
        WiegandConfig {
            d0_pin: default_d0_pin(),
            d1_pin: default_d1_pin(),
            formats: default_wiegand_formats(),
            keypad: Keypad::default(),
            silence_ms: default_silence_ms(),
            glitch_us: default_glitch_us(),
            number: Normalise::default(),
        }
    }
}

impl WiegandConfig {
    /// The decoder's settings (valid once [`KioskConfig::validate`] passed).
    pub fn decoder(&self) -> DecoderConfig {
        DecoderConfig {
            formats: Formats::new(&self.formats, self.keypad),
            silence: std::time::Duration::from_millis(self.silence_ms),
            glitch: std::time::Duration::from_micros(self.glitch_us),
        }
    }

    fn validate(&self, err: &dyn Fn(&str, String) -> ConfigError) -> Result<(), ConfigError> {
        for (key, pin) in [
            ("badge.wiegand.d0_pin", self.d0_pin),
            ("badge.wiegand.d1_pin", self.d1_pin),
        ] {
            if pin > 27 {
                return Err(err(
                    key,
                    format!("{pin} is not a header GPIO: use a BCM number 0-27"),
                ));
            }
        }
        if self.d0_pin == self.d1_pin {
            return Err(err(
                "badge.wiegand.d1_pin",
                "D0 and D1 need two different pins".into(),
            ));
        }
        if self.formats.is_empty() {
            return Err(err(
                "badge.wiegand.formats",
                "enable at least one format, e.g. [\"H10301\"]".into(),
            ));
        }
        for (i, f) in self.formats.iter().enumerate() {
            if let Some(other) = self.formats[..i].iter().find(|o| o.bits() == f.bits()) {
                return Err(err(
                    &format!("badge.wiegand.formats[{i}]"),
                    format!(
                        "{f} and {other} are both {} bits and cannot be told apart: list the one this site uses",
                        f.bits()
                    ),
                ));
            }
        }
        if !(5..=500).contains(&self.silence_ms) {
            return Err(err(
                "badge.wiegand.silence_ms",
                "must be between 5 and 500 (a reader pauses at most 20 ms between pulses)".into(),
            ));
        }
        if self.glitch_us >= 200 {
            return Err(err(
                "badge.wiegand.glitch_us",
                "must be below 200 (pulses may come 200 µs apart)".into(),
            ));
        }
        Ok(())
    }
}

fn default_d0_pin() -> u8 {
    17
}
fn default_d1_pin() -> u8 {
    27
}
fn default_wiegand_formats() -> Vec<Format> {
    vec![
        Format::H10301,
        Format::H10306,
        Format::Corporate1000,
        Format::H10304,
    ]
}
fn default_silence_ms() -> u64 {
    25
}
fn default_glitch_us() -> u64 {
    150
}

fn default_simulated_path() -> String {
    "-".to_owned()
}
fn default_wedge_timeout_ms() -> u64 {
    300
}
fn default_min_digits() -> usize {
    3
}

/// The huddle's schedule, agenda and pick lists.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HuddleConfig {
    /// Local start times, `"HH:MM"`, in `board.timezone`. May cross midnight.
    pub schedule: Vec<String>,
    /// Target duration in minutes (the on-screen timer).
    #[serde(default = "default_target_minutes")]
    pub target_minutes: u32,
    /// Arrivals later than start + grace are late; a huddle not started
    /// within grace of its time is missed.
    #[serde(default = "default_grace_minutes")]
    pub grace_minutes: u32,
    /// A scheduled huddle opens this many minutes before its time...
    #[serde(default = "default_opens_before_minutes")]
    pub opens_before_minutes: u32,
    /// ...and stays open for starting until this many minutes after it.
    #[serde(default = "default_window_minutes")]
    pub window_minutes: u32,
    /// A second tap by the same person within this many seconds is not a new arrival.
    #[serde(default = "default_duplicate_window_s")]
    pub duplicate_window_s: u32,
    /// The agenda, in order (close is always last).
    #[serde(default = "default_steps")]
    pub steps: Vec<String>,
    /// The board's KPIs.
    pub kpis: Vec<KpiConfig>,
    /// The pick list of reasons for a missed KPI.
    #[serde(default = "default_miss_reasons")]
    pub miss_reasons: Vec<String>,
    /// The categories of resource needs.
    #[serde(default = "default_need_categories")]
    pub need_categories: Vec<String>,
}

fn default_target_minutes() -> u32 {
    15
}
fn default_grace_minutes() -> u32 {
    5
}
fn default_opens_before_minutes() -> u32 {
    15
}
fn default_window_minutes() -> u32 {
    60
}
fn default_duplicate_window_s() -> u32 {
    120
}
fn default_steps() -> Vec<String> {
    Step::ALL_AGENDA
        .iter()
        .map(|s| s.key().to_owned())
        .collect()
}
fn default_miss_reasons() -> Vec<String> {
    [
        "Material", "Machine", "Method", "People", "Upstream", "Other",
    ]
    .map(String::from)
    .to_vec()
}
fn default_need_categories() -> Vec<String> {
    ["People", "Material", "Equipment", "Information", "Safety"]
        .map(String::from)
        .to_vec()
}

/// One KPI of the board.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KpiConfig {
    /// Stable key (`safety`), used in events.
    pub key: String,
    /// Name on the screen.
    pub name: String,
    /// The target as people say it ("0 incidents").
    #[serde(default)]
    pub target: String,
}

/// Screen behaviour.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UiConfig {
    /// Dim the screen after this many seconds without use outside huddles; 0 never.
    #[serde(default = "default_dim_after_s")]
    pub dim_after_s: u32,
    /// How long toasts stay, in milliseconds.
    #[serde(default = "default_toast_ms")]
    pub toast_ms: u64,
    /// A half-done prompt or flow returns to the board after this many seconds.
    #[serde(default = "default_prompt_timeout_s")]
    pub prompt_timeout_s: u32,
}

impl Default for UiConfig {
    fn default() -> Self {
        Self {
            dim_after_s: default_dim_after_s(),
            toast_ms: default_toast_ms(),
            prompt_timeout_s: default_prompt_timeout_s(),
        }
    }
}

fn default_dim_after_s() -> u32 {
    300
}
fn default_toast_ms() -> u64 {
    3000
}
fn default_prompt_timeout_s() -> u32 {
    60
}

/// A person of the roster, as written in the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonConfig {
    /// Stable person id; events name people by it.
    pub id: String,
    /// Display name.
    pub name: String,
    /// `member`, `team_leader`, `supervisor` or `manager`.
    pub role: Role,
    /// Badge numbers in clear, for demos and small sites: hashed at load and
    /// never stored or sent. Prefer `badge_hashes` in production.
    #[serde(default)]
    pub badges: Vec<String>,
    /// Keyed hashes (`huddle-kiosk hash-badge NUMBER`).
    #[serde(default)]
    pub badge_hashes: Vec<String>,
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
    /// The web dashboard (issue 6); none without the section.
    #[serde(default)]
    pub web: Option<WebConfig>,
    /// Coaching cadence targets (issue 5).
    #[serde(default)]
    pub coaching: CoachingConfig,
    /// Live status thresholds (issue 6).
    #[serde(default)]
    pub status: StatusConfig,
    /// Home Assistant discovery (issue 6).
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

/// A secret string that never shows in `Debug` output (logs).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
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

impl KioskConfig {
    /// The secret keys still at their shipped demo values (a warning at
    /// start; the kiosk runs with them, as the one-command demo needs).
    pub fn demo_secrets(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        if self.badge.site_key.ends_with(DEMO_SECRET_MARK) {
            keys.push("badge.site_key");
        }
        keys
    }

    /// Reads, overrides from the environment, and validates.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let mut config: KioskConfig = parse_file(path)?;
        config.source = path.to_owned();
        config.apply_env(|name| std::env::var(name).ok());
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text as if read from `path` (tests and embedded defaults).
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut config: KioskConfig = parse_str(text, path)?;
        config.source = path.to_owned();
        config.validate()?;
        Ok(config)
    }

    /// Applies `HUDDLE_DATA_DIR` and `HUDDLE_MQTT_URL`.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) {
        if let Some(dir) = var(ENV_DATA_DIR).filter(|d| !d.is_empty()) {
            self.storage.data_dir = PathBuf::from(dir);
        }
        if let Some(url) = var(ENV_MQTT_URL).filter(|u| !u.is_empty()) {
            self.mqtt.url = url;
        }
    }

    /// The SQLite file of this board.
    pub fn database_path(&self) -> PathBuf {
        self.storage
            .data_dir
            .join(format!("kiosk-{}.db", self.board.id))
    }

    /// Checks everything that the types alone do not.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |key: &str, message: String| ConfigError {
            file: self.source.clone(),
            key: key.to_owned(),
            message,
        };
        for (key, value) in [
            ("board.site", &self.board.site),
            ("board.area", &self.board.area),
            ("board.id", &self.board.id),
        ] {
            check_topic_level(value).map_err(|m| err(key, m))?;
        }
        if self.board.name.trim().is_empty() {
            return Err(err("board.name", "must not be empty".into()));
        }
        check_timezone(&self.board.timezone).map_err(|m| err("board.timezone", m))?;
        self.mqtt.validate(&err)?;
        if !(1..=100_000).contains(&self.delivery.window) {
            return Err(err(
                "delivery.window",
                "must be between 1 and 100000".into(),
            ));
        }
        if !(1..=3600).contains(&self.delivery.ack_timeout_s) {
            return Err(err(
                "delivery.ack_timeout_s",
                "must be between 1 and 3600".into(),
            ));
        }
        if self.delivery.retention_days == 0 {
            return Err(err("delivery.retention_days", "must be at least 1".into()));
        }
        check_site_key(&self.badge.site_key).map_err(|m| err("badge.site_key", m))?;
        if self.badge.simulated_path.is_empty() {
            return Err(err(
                "badge.simulated_path",
                "must be a path or `-` for stdin".into(),
            ));
        }
        if !(1..=5000).contains(&self.badge.wedge_timeout_ms) {
            return Err(err(
                "badge.wedge_timeout_ms",
                "must be between 1 and 5000".into(),
            ));
        }
        if !(1..=32).contains(&self.badge.min_digits) {
            return Err(err("badge.min_digits", "must be between 1 and 32".into()));
        }
        self.badge.wiegand.validate(&err)?;
        let h = &self.huddle;
        if h.schedule.is_empty() {
            return Err(err(
                "huddle.schedule",
                "give at least one start time, e.g. [\"06:45\"]".into(),
            ));
        }
        for (i, t) in h.schedule.iter().enumerate() {
            parse_hhmm(t).map_err(|m| err(&format!("huddle.schedule[{i}]"), m))?;
        }
        if !(1..=120).contains(&h.target_minutes) {
            return Err(err(
                "huddle.target_minutes",
                "must be between 1 and 120".into(),
            ));
        }
        if h.grace_minutes > 60 {
            return Err(err("huddle.grace_minutes", "must be at most 60".into()));
        }
        if h.window_minutes < h.grace_minutes || h.window_minutes > 720 {
            return Err(err(
                "huddle.window_minutes",
                "must be at least huddle.grace_minutes and at most 720".into(),
            ));
        }
        if h.opens_before_minutes > 120 {
            return Err(err(
                "huddle.opens_before_minutes",
                "must be at most 120".into(),
            ));
        }
        let mut seen = HashSet::new();
        for (i, s) in h.steps.iter().enumerate() {
            let step = Step::from_key(s).ok_or_else(|| {
                err(
                    &format!("huddle.steps[{i}]"),
                    format!(
                        "unknown step `{s}`; known steps: {}",
                        Step::ALL_AGENDA
                            .iter()
                            .map(|s| s.key())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })?;
            if !seen.insert(step) {
                return Err(err(
                    &format!("huddle.steps[{i}]"),
                    format!("step `{s}` appears twice"),
                ));
            }
        }
        if h.steps.first().map(String::as_str) != Some(Step::Attendance.key()) {
            return Err(err(
                "huddle.steps",
                "the agenda must start with `attendance`".into(),
            ));
        }
        if h.kpis.is_empty() && seen.contains(&Step::Kpis) {
            return Err(err(
                "huddle.kpis",
                "the agenda has `kpis` but no KPI is configured".into(),
            ));
        }
        let mut keys = HashSet::new();
        for (i, k) in h.kpis.iter().enumerate() {
            check_id(&k.key).map_err(|m| err(&format!("huddle.kpis[{i}].key"), m))?;
            if !keys.insert(&k.key) {
                return Err(err(
                    &format!("huddle.kpis[{i}].key"),
                    format!("`{}` appears twice", k.key),
                ));
            }
            if k.name.trim().is_empty() {
                return Err(err(
                    &format!("huddle.kpis[{i}].name"),
                    "must not be empty".into(),
                ));
            }
        }
        for (key, list) in [
            ("huddle.miss_reasons", &h.miss_reasons),
            ("huddle.need_categories", &h.need_categories),
        ] {
            if list.is_empty() || list.iter().any(|s| s.trim().is_empty()) {
                return Err(err(key, "give at least one non-empty entry".into()));
            }
        }
        let mut ids = HashSet::new();
        for (i, p) in self.people.iter().enumerate() {
            check_id(&p.id).map_err(|m| err(&format!("people[{i}].id"), m))?;
            if !ids.insert(&p.id) {
                return Err(err(
                    &format!("people[{i}].id"),
                    format!("`{}` appears twice", p.id),
                ));
            }
            if p.name.trim().is_empty() {
                return Err(err(
                    &format!("people[{i}].name"),
                    "must not be empty".into(),
                ));
            }
            for (j, b) in p.badges.iter().enumerate() {
                if b.is_empty() || !b.chars().all(|c| c.is_ascii_digit()) {
                    return Err(err(
                        &format!("people[{i}].badges[{j}]"),
                        "a badge number is digits only".into(),
                    ));
                }
            }
            for (j, b) in p.badge_hashes.iter().enumerate() {
                if b.len() != 64 || !b.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(err(
                        &format!("people[{i}].badge_hashes[{j}]"),
                        "a badge hash is 64 hex digits (huddle-kiosk hash-badge NUMBER)".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The schedule's start times, parsed (validated at load).
    pub fn schedule_times(&self) -> Vec<NaiveTime> {
        self.huddle
            .schedule
            .iter()
            .filter_map(|t| parse_hhmm(t).ok())
            .collect()
    }

    /// The agenda, parsed (validated at load), without the closing step.
    pub fn agenda(&self) -> Vec<Step> {
        self.huddle
            .steps
            .iter()
            .filter_map(|s| Step::from_key(s))
            .collect()
    }

    /// The board's time zone (validated at load).
    pub fn timezone(&self) -> chrono_tz::Tz {
        self.board.timezone.parse().unwrap_or(chrono_tz::UTC)
    }
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

/// A path named in the config file `config`: relative ones are taken from
/// the file's folder.
fn beside(config: &Path, file: PathBuf) -> PathBuf {
    match config.parent() {
        Some(dir) if file.is_relative() => dir.join(file),
        _ => file,
    }
}

fn parse_file<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_owned(),
        key: String::new(),
        message: format!("cannot read the file: {e}"),
    })?;
    parse_str(&text, path)
}

fn parse_str<T: DeserializeOwned>(text: &str, path: &Path) -> Result<T, ConfigError> {
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

fn check_timezone(value: &str) -> Result<(), String> {
    value
        .parse::<chrono_tz::Tz>()
        .map(|_| ())
        .map_err(|_| format!("`{value}` is not an IANA time zone (for example Europe/Berlin)"))
}

fn check_site_key(value: &str) -> Result<(), String> {
    if value.chars().count() < 16 {
        return Err("must be at least 16 characters (a shared secret of the site)".into());
    }
    Ok(())
}

fn check_mqtt_url(value: &str) -> Result<(), String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../config/kiosk.toml");

    #[test]
    fn shipped_kiosk_config_is_valid() {
        let c = KioskConfig::from_toml(SHIPPED, Path::new("config/kiosk.toml")).unwrap();
        assert_eq!(c.board.id, "demo");
        assert!(c.people.len() >= 8);
        assert_eq!(c.schedule_times().len(), 2);
    }

    #[test]
    fn unknown_key_names_key_and_file() {
        let text = SHIPPED.replace("[board]\n", "[board]\ncolour = \"red\"\n");
        let e = KioskConfig::from_toml(&text, Path::new("/etc/huddle/kiosk.toml")).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("/etc/huddle/kiosk.toml"), "{msg}");
        assert!(msg.contains("colour"), "{msg}");
    }

    #[test]
    fn bad_values_name_their_key() {
        for (from, to, key) in [
            (
                "timezone = \"Europe/Berlin\"",
                "timezone = \"Mars/Base\"",
                "board.timezone",
            ),
            ("id = \"demo\"", "id = \"Demo Board\"", "board.id"),
            ("\"06:45\"", "\"6h45\"", "huddle.schedule[0]"),
            ("d0_pin = 17", "d0_pin = 40", "badge.wiegand.d0_pin"),
            ("d1_pin = 27", "d1_pin = 17", "badge.wiegand.d1_pin"),
            (
                "\"C1000\", \"H10304\"]",
                "\"H10304\", \"H10302\"]",
                "badge.wiegand.formats[3]",
            ),
            (
                "\"C1000\", \"H10304\"]",
                "\"C1000\", \"H10303\"]",
                "badge.wiegand.formats[3]",
            ),
            (
                "keypad = \"none\"",
                "keypad = \"6bit\"",
                "badge.wiegand.keypad",
            ),
            (
                "silence_ms = 25",
                "silence_ms = 2",
                "badge.wiegand.silence_ms",
            ),
            (
                "glitch_us = 150",
                "glitch_us = 250",
                "badge.wiegand.glitch_us",
            ),
            (
                "number = \"card\"",
                "number = \"pin\"",
                "badge.wiegand.number",
            ),
        ] {
            assert!(SHIPPED.contains(from), "fixture lost `{from}`");
            let text = SHIPPED.replacen(from, to, 1);
            let e = KioskConfig::from_toml(&text, Path::new("k.toml")).unwrap_err();
            assert_eq!(e.key, key, "{e}");
        }
    }

    #[test]
    fn wrong_type_names_nested_key() {
        let text = SHIPPED.replace("target_minutes = 15", "target_minutes = \"fifteen\"");
        let e = KioskConfig::from_toml(&text, Path::new("k.toml")).unwrap_err();
        assert_eq!(e.key, "huddle.target_minutes", "{e}");
    }

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

    const SHIPPED_AGGREGATOR: &str = include_str!("../config/aggregator.toml");

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

        let k = KioskConfig::from_toml(SHIPPED, Path::new("config/kiosk.toml")).unwrap();
        assert_eq!(k.demo_secrets(), ["badge.site_key"]);
        let own = SHIPPED.replace(
            "demo-site-key-change-me",
            "3f9a0c7d1e2b4a5968c7d0e1f2a3b4c5",
        );
        let k = KioskConfig::from_toml(&own, Path::new("config/kiosk.toml")).unwrap();
        assert!(k.demo_secrets().is_empty());
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

    #[test]
    fn environment_overrides_data_dir_and_broker() {
        let mut c = KioskConfig::from_toml(SHIPPED, Path::new("k.toml")).unwrap();
        c.apply_env(|name| match name {
            ENV_DATA_DIR => Some("/tmp/x".into()),
            ENV_MQTT_URL => Some("mqtt://broker:1884".into()),
            _ => None,
        });
        assert_eq!(c.storage.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.mqtt.url, "mqtt://broker:1884");
    }
}
