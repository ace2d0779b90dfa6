//! The event contract shared by the kiosk and the aggregator: the JSON
//! envelope, the kinds, and their payloads.
//!
//! Every state change at a kiosk is one event, written into the outbox in
//! the same SQLite transaction as the record it describes. The envelope:
//!
//! ```json
//! { "schema": 1, "id": "<uuid v7>", "board": "demo", "seq": 42,
//!   "at": "2026-11-28T06:45:03.120Z", "clock_synced": true,
//!   "kind": "attendance.tapped", "data": { ... } }
//! ```
//!
//! `seq` is per board and gap-free; `(board, incarnation, seq)`
//! identifies an event, `id` is global.
//!
//! # Incarnations (schema 2)
//!
//! A board's database file can be replaced under it: an SD card
//! reflashed, a spare Pi given the same board id, an old image restored,
//! or (by mistake) two boards running with one id. Its `seq` then starts
//! again, or goes back, while the aggregator holds events under the same
//! numbers. So every kiosk file makes a random **incarnation** id when it
//! is created, and a new one whenever the aggregator's ack shows that the
//! file and the aggregator disagree (the kiosk's outbox module says how). Schema 2
//! envelopes carry it, with `base`, the first `seq` of that incarnation:
//!
//! ```json
//! { "schema": 2, "incarnation": "0193…", "base": 1, "seq": 42, ... }
//! ```
//!
//! The aggregator keys events by `(board, incarnation, seq)` and acks each
//! incarnation apart, from `base - 1`. Schema 1 envelopes (boards not yet
//! upgraded) have neither field and belong to the board's legacy
//! incarnation `""` with `base` 1; the aggregator accepts both. `at` is UTC; `clock_synced` says whether the kernel's
//! clock was synchronised (NTP) when the event was written, because a Pi
//! without a real-time clock boots with a wrong time. Payloads name people
//! by person id and badges by keyed hash only: never a badge number.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::BadgeHash;
use crate::domain::Summary;
/// The observation events' bodies are the domain's own records.
pub use crate::domain::{ObservationAcknowledged, ObservationRecorded};

/// The envelope's schema version that kiosks write. A consumer refuses
/// versions it does not know.
pub const SCHEMA_VERSION: u32 = 2;
/// The schema of boards not yet upgraded: no `incarnation`, no `base`
/// (the legacy incarnation `""`, base 1). Still accepted.
pub const LEGACY_SCHEMA_VERSION: u32 = 1;

/// One event as it goes on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Envelope schema version ([`SCHEMA_VERSION`]).
    pub schema: u32,
    /// Globally unique id (UUID v7: time-ordered).
    pub id: uuid::Uuid,
    /// The board that wrote it.
    pub board: String,
    /// The board file's incarnation (schema 2; empty and absent in schema 1).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub incarnation: String,
    /// The first `seq` of this incarnation (schema 2; absent means 1, and
    /// schema 1 never has it).
    #[serde(default = "first_seq", skip_serializing_if = "is_first_seq")]
    pub base: u64,
    /// Per-board sequence number, gap-free from `base`.
    pub seq: u64,
    /// UTC wall time, milliseconds.
    #[serde(with = "utc_millis")]
    #[schemars(with = "DateTime<Utc>")]
    pub at: DateTime<Utc>,
    /// Whether the board's clock was synchronised when it wrote this.
    pub clock_synced: bool,
    /// The kind, e.g. `attendance.tapped`.
    pub kind: String,
    /// The kind's payload.
    pub data: serde_json::Value,
}

/// The chain digest of an incarnation before its first event: both sides
/// fold each event's `id` into it in `seq` order ([`chain_next`]), so that
/// equal digests at one `seq` mean the same events up to it. 128 bits of
/// SHA-256, in hex.
pub fn chain_start(incarnation: &str) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(b"huddle-board chain 1\0");
    h.update(incarnation.as_bytes());
    hex::encode(&h.finalize()[..16])
}

/// The chain digest after the event `id`, from the digest before it.
pub fn chain_next(before: &str, id: &uuid::Uuid) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(before.as_bytes());
    h.update(id.as_bytes());
    hex::encode(&h.finalize()[..16])
}

fn first_seq() -> u64 {
    1
}

fn is_first_seq(base: &u64) -> bool {
    *base == 1
}

mod utc_millis {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

/// Every event a kiosk writes, with its payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", content = "data")]
pub enum Event {
    /// A huddle began.
    #[serde(rename = "huddle.started")]
    HuddleStarted(HuddleStarted),
    /// A person arrived.
    #[serde(rename = "attendance.tapped")]
    AttendanceTapped(AttendanceTapped),
    /// A badge that nobody on the roster holds.
    #[serde(rename = "attendance.unknown_badge")]
    UnknownBadge(UnknownBadge),
    /// The huddle moved to another agenda step.
    #[serde(rename = "huddle.advanced")]
    HuddleAdvanced(HuddleAdvanced),
    /// A KPI was reviewed.
    #[serde(rename = "kpi.reviewed")]
    KpiReviewed(KpiReviewed),
    /// An action was created.
    #[serde(rename = "action.created")]
    ActionCreated(ActionCreated),
    /// An action's status or date changed.
    #[serde(rename = "action.updated")]
    ActionUpdated(ActionUpdated),
    /// A resource need was raised.
    #[serde(rename = "need.raised")]
    NeedRaised(NeedRaised),
    /// A need was escalated to tier 2.
    #[serde(rename = "need.escalated")]
    NeedEscalated(NeedRef),
    /// An escalated need was closed.
    #[serde(rename = "need.closed")]
    NeedClosed(NeedRef),
    /// The team's experiment was set or advanced.
    #[serde(rename = "experiment.updated")]
    ExperimentUpdated(ExperimentUpdated),
    /// The team leader closed the huddle.
    #[serde(rename = "huddle.closed")]
    HuddleClosed(HuddleClosed),
    /// A badge was enrolled to a person.
    #[serde(rename = "badge.enrolled")]
    BadgeEnrolled(BadgeEnrolled),
    /// The board applied a roster received from the aggregator.
    #[serde(rename = "roster.applied")]
    RosterApplied(RosterApplied),
    /// A coaching observation (level 3 or 4) was recorded.
    #[serde(rename = "observation.recorded")]
    ObservationRecorded(ObservationRecorded),
    /// The learner confirmed an observation with their badge and rated it.
    #[serde(rename = "observation.acknowledged")]
    ObservationAcknowledged(ObservationAcknowledged),
}

impl Event {
    /// The kinds this schema version knows.
    pub const KINDS: [&'static str; 16] = [
        "huddle.started",
        "attendance.tapped",
        "attendance.unknown_badge",
        "huddle.advanced",
        "kpi.reviewed",
        "action.created",
        "action.updated",
        "need.raised",
        "need.escalated",
        "need.closed",
        "experiment.updated",
        "huddle.closed",
        "badge.enrolled",
        "roster.applied",
        "observation.recorded",
        "observation.acknowledged",
    ];

    /// Splits into the kind and its JSON payload.
    pub fn to_parts(&self) -> (String, serde_json::Value) {
        // Design: serialising a closed enum of plain structs cannot fail.
        let mut v = serde_json::to_value(self).expect("events serialise");
        let kind = v["kind"].as_str().unwrap_or_default().to_owned();
        (kind, v["data"].take())
    }

    /// Rebuilds an event from an envelope's kind and data.
    pub fn from_parts(kind: &str, data: &serde_json::Value) -> Result<Event, serde_json::Error> {
        serde_json::from_value(serde_json::json!({ "kind": kind, "data": data }))
    }
}

/// How a huddle was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StartTrigger {
    /// The team leader's badge.
    TeamLeader,
    /// The first tap inside the scheduled window.
    FirstTap,
}

/// `huddle.started`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HuddleStarted {
    /// The huddle's id.
    pub huddle_id: String,
    /// The slot's scheduled time (UTC), when it was a scheduled huddle.
    pub scheduled_at: Option<DateTime<Utc>>,
    /// The slot's local time, `"06:45"`, when scheduled.
    pub slot: Option<String>,
    /// Who started it.
    pub started_by: String,
    /// How.
    pub trigger: StartTrigger,
    /// Target duration in minutes.
    pub target_minutes: u32,
    /// The agenda, as step keys.
    pub agenda: Vec<String>,
}

/// How a person was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TapVia {
    /// Their badge.
    Badge,
    /// Their name on screen.
    Name,
}

/// `attendance.tapped`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AttendanceTapped {
    /// The huddle.
    pub huddle_id: String,
    /// Who.
    pub person_id: String,
    /// Badge or name.
    pub via: TapVia,
    /// After the huddle's time plus grace.
    pub late: bool,
}

/// `attendance.unknown_badge`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct UnknownBadge {
    /// The keyed hash of the badge (never the number).
    pub badge_hash: BadgeHash,
    /// The open huddle, if any.
    pub huddle_id: Option<String>,
}

/// `huddle.advanced`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HuddleAdvanced {
    /// The huddle.
    pub huddle_id: String,
    /// The step now shown (`kpis`, ..., `close`).
    pub step: String,
    /// Its index in the agenda.
    pub index: usize,
}

/// `kpi.reviewed`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct KpiReviewed {
    /// The huddle.
    pub huddle_id: String,
    /// The KPI's key.
    pub kpi: String,
    /// `hit` or `missed`.
    pub status: String,
    /// The actual figure, if given.
    pub actual: String,
    /// The miss reason (empty for a hit).
    pub reason: String,
    /// The note.
    pub note: String,
    /// The action raised for the miss (also sent as `action.created`).
    pub action_id: Option<String>,
    /// "None needed" was chosen for a miss.
    pub none_needed: bool,
}

/// `action.created`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ActionCreated {
    /// The action's id.
    pub action_id: String,
    /// The huddle that created it.
    pub huddle_id: String,
    /// What.
    pub what: String,
    /// The owner's person id.
    pub owner: String,
    /// Local due date.
    pub due: NaiveDate,
    /// `kpi:<key>` or `new`.
    pub source: String,
}

/// `action.updated`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ActionUpdated {
    /// The action's id.
    pub action_id: String,
    /// The huddle where it was reviewed.
    pub huddle_id: String,
    /// `done`, `rescheduled` or `blocked`.
    pub status: String,
    /// The due date after the update.
    pub due: NaiveDate,
}

/// `need.raised`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NeedRaised {
    /// The need's id.
    pub need_id: String,
    /// The huddle.
    pub huddle_id: String,
    /// Category.
    pub category: String,
    /// Description.
    pub text: String,
    /// Escalated at once.
    pub escalated: bool,
}

/// `need.escalated`, `need.closed`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NeedRef {
    /// The need's id.
    pub need_id: String,
    /// Who did it, if known.
    pub by: Option<String>,
}

/// `experiment.updated`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ExperimentUpdated {
    /// The huddle.
    pub huddle_id: String,
    /// The obstacle.
    pub obstacle: String,
    /// The expectation.
    pub expectation: String,
    /// The next step.
    pub next_step: String,
    /// Owner's person id.
    pub owner: String,
    /// When to check.
    pub check_date: NaiveDate,
}

/// `huddle.closed`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HuddleClosed {
    /// The huddle.
    pub huddle_id: String,
    /// The team leader who signed off.
    pub closed_by: String,
    /// The summary's numbers.
    pub summary: Summary,
}

/// `badge.enrolled`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BadgeEnrolled {
    /// Who the badge now belongs to.
    pub person_id: String,
    /// Its keyed hash.
    pub badge_hash: BadgeHash,
    /// Who authorised it.
    pub enrolled_by: String,
}

/// `roster.applied`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RosterApplied {
    /// The roster message's `issued_at`.
    pub issued_at: DateTime<Utc>,
    /// How many people it holds.
    pub people: usize,
    /// How many badge hashes it holds.
    pub badges: usize,
}

/// Whether the kernel says the clock is synchronised (NTP): `adjtimex`
/// with no changes reports `TIME_ERROR` while it is not.
pub fn clock_synced() -> bool {
    // SAFETY: adjtimex with modes = 0 only reads the kernel's clock state
    // into a zeroed struct that we own.
    unsafe {
        let mut tx: libc::timex = std::mem::zeroed();
        libc::adjtimex(&mut tx) != libc::TIME_ERROR
    }
}

impl Envelope {
    /// The envelope of an event in the board's legacy incarnation
    /// (schema 1, as boards not yet upgraded write it); a kiosk's store
    /// moves it into its incarnation with [`Envelope::in_incarnation`].
    pub fn new(
        board: &str,
        seq: u64,
        at: DateTime<Utc>,
        clock_synced: bool,
        event: &Event,
    ) -> Envelope {
        let (kind, data) = event.to_parts();
        Envelope {
            schema: LEGACY_SCHEMA_VERSION,
            id: uuid::Uuid::now_v7(),
            board: board.to_owned(),
            incarnation: String::new(),
            base: 1,
            seq,
            at,
            clock_synced,
            kind,
            data,
        }
    }

    /// The same event in incarnation `incarnation` starting at `base`
    /// (schema 2).
    pub fn in_incarnation(mut self, incarnation: &str, base: u64) -> Envelope {
        self.schema = SCHEMA_VERSION;
        incarnation.clone_into(&mut self.incarnation);
        self.base = base;
        self
    }

    /// The JSON text that goes on the wire.
    pub fn to_json(&self) -> String {
        // Design: an envelope of plain fields and a JSON value cannot fail to serialise.
        serde_json::to_string(self).expect("envelopes serialise")
    }

    /// The typed event inside.
    pub fn event(&self) -> Result<Event, serde_json::Error> {
        Event::from_parts(&self.kind, &self.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{BehaviourScore, ObservationLevel, Pick, SelfView};

    #[test]
    fn envelope_round_trips_with_the_documented_shape() {
        let at = DateTime::parse_from_rfc3339("2026-11-28T06:45:03.120Z")
            .unwrap()
            .with_timezone(&Utc);
        let e = Event::AttendanceTapped(AttendanceTapped {
            huddle_id: "h1".into(),
            person_id: "p1".into(),
            via: TapVia::Badge,
            late: false,
        });
        let env = Envelope::new("demo", 42, at, true, &e);
        let json: serde_json::Value = serde_json::from_str(&env.to_json()).unwrap();
        assert_eq!(json["schema"], 1);
        assert_eq!(json["board"], "demo");
        assert_eq!(json["seq"], 42);
        assert_eq!(json["at"], "2026-11-28T06:45:03.120Z");
        assert_eq!(json["kind"], "attendance.tapped");
        assert_eq!(json["data"]["person_id"], "p1");
        assert_eq!(json["data"]["via"], "badge");
        let back: Envelope = serde_json::from_str(&env.to_json()).unwrap();
        assert_eq!(back, env);
        assert_eq!(back.event().unwrap(), e);
        assert!(json.get("incarnation").is_none() && json.get("base").is_none());

        let env = env.in_incarnation("0193aa", 7);
        let json: serde_json::Value = serde_json::from_str(&env.to_json()).unwrap();
        assert_eq!(json["schema"], 2);
        assert_eq!(json["incarnation"], "0193aa");
        assert_eq!(json["base"], 7);
        let back: Envelope = serde_json::from_str(&env.to_json()).unwrap();
        assert_eq!(back, env);
    }

    #[test]
    fn every_kind_is_listed() {
        let e = Event::NeedClosed(NeedRef {
            need_id: "n".into(),
            by: None,
        });
        assert!(Event::KINDS.contains(&e.to_parts().0.as_str()));
        assert!(Event::from_parts("no.such_kind", &serde_json::json!({})).is_err());
    }

    #[test]
    fn observation_round_trips_by_keys() {
        let e = Event::ObservationRecorded(ObservationRecorded {
            observation_id: "o1".into(),
            level: ObservationLevel::Facilitation,
            observer: "sam".into(),
            learner: "eva".into(),
            huddle_id: Some("h1".into()),
            self_view: SelfView::SoSo,
            scores: crate::domain::FACILITATION
                .iter()
                .map(|b| BehaviourScore {
                    behaviour: (*b).into(),
                    score: 3,
                })
                .collect(),
            strength: Pick {
                behaviour: "story_from_data".into(),
                note: String::new(),
            },
            focus: Pick {
                behaviour: "parked_discussions".into(),
                note: "park at 2 minutes".into(),
            },
            trigger: "a discussion passes two minutes".into(),
            reobserve_on: NaiveDate::from_ymd_opt(2026, 12, 3).unwrap(),
        });
        let (kind, data) = e.to_parts();
        assert_eq!(kind, "observation.recorded");
        assert!(Event::KINDS.contains(&kind.as_str()));
        assert_eq!(data["level"], "facilitation");
        assert_eq!(data["self_view"], "so_so");
        assert_eq!(data["reobserve_on"], "2026-12-03");
        assert!(data["strength"].get("note").is_none());
        assert_eq!(Event::from_parts(&kind, &data).unwrap(), e);
        let ack = Event::ObservationAcknowledged(ObservationAcknowledged {
            observation_id: "o1".into(),
            learner: "eva".into(),
            helpfulness: 4,
        });
        assert!(Event::KINDS.contains(&ack.to_parts().0.as_str()));
    }
}
