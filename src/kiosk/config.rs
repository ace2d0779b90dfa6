//! `kiosk.toml`: the board's configuration, validated before anything
//! starts. Loading, the environment overrides and the errors that name
//! the file and the key are [`crate::config`]'s.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use chrono::NaiveTime;
use serde::Deserialize;

use crate::config::{
    check_id, check_site_key, check_timezone, check_topic_level, parse_file, parse_hhmm, parse_str,
    ConfigError, MqttConfig, StorageConfig, DEMO_SECRET_MARK, ENV_DATA_DIR, ENV_MQTT_URL,
};
use crate::domain::{Role, Step};
use crate::kiosk::badge::wiegand::{DecoderConfig, Format, Formats, Keypad, Normalise};

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
    /// The language of the board's screens (`en`, `de`, `es`, `fr`, `pl`).
    #[serde(default = "default_language")]
    pub language: String,
}

fn default_language() -> String {
    crate::kiosk::language::DEFAULT.to_owned()
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
    /// The person's own language for what is said to them (their welcome
    /// after a badge tap); absent: the board's.
    #[serde(default)]
    pub language: Option<String>,
}

impl KioskConfig {
    /// The embedded defaults: the shipped `config/kiosk.toml`, with which
    /// `huddle-kiosk` runs when no `--config` is given.
    pub const EMBEDDED: &'static str = include_str!("../../config/kiosk.toml");

    /// Reads and validates `path`; without one, the embedded defaults with
    /// the environment applied.
    pub fn load_or_embedded(path: Option<&Path>) -> Result<Self, ConfigError> {
        match path {
            Some(p) => Self::load(p),
            None => {
                let mut c =
                    Self::from_toml(Self::EMBEDDED, Path::new("<embedded config/kiosk.toml>"))?;
                c.apply_env(|name| std::env::var(name).ok());
                c.validate()?;
                Ok(c)
            }
        }
    }

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
        crate::kiosk::language::check(&self.board.language)
            .map_err(|m| err("board.language", m))?;
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
            if let Some(language) = &p.language {
                crate::kiosk::language::check(language)
                    .map_err(|m| err(&format!("people[{i}].language"), m))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../config/kiosk.toml");

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
            (
                "language = \"en\"",
                "language = \"deutsch\"",
                "board.language",
            ),
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
    fn the_shipped_demo_secret_is_named_and_a_real_one_is_not() {
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
