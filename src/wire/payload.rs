//! Payloads of the topics other than events (those are in [`crate::wire::event`]).
//! Shared by the kiosk and the aggregator; JSON through serde.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::BadgeHash;
use crate::domain::Role;

/// `.../ack`, retained, from the aggregator: per incarnation of the board,
/// the highest `seq` that it has stored durably with no gap below it.
///
/// `seq` is the legacy incarnation's (boards not yet upgraded read only
/// it); `incarnations` lists the board's newest incarnations (at most
/// [`Ack::MAX_INCARNATIONS`], most recently active first), each with the
/// chain digest of the events its ack covers, so that a board can tell
/// its own events from another file's (the kiosk's outbox).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Ack {
    /// The board.
    pub board: String,
    /// Legacy incarnation (schema 1 events): every event with
    /// `seq <= this` is stored; 0 before the first.
    pub seq: u64,
    /// When the aggregator committed it.
    pub at: DateTime<Utc>,
    /// The board's incarnations (schema 2 events), newest activity first.
    #[serde(default)]
    pub incarnations: Vec<IncarnationAck>,
}

impl Ack {
    /// Most incarnations one ack lists (a board that opened more is
    /// misbehaving; its oldest are left out, their events stay stored).
    pub const MAX_INCARNATIONS: usize = 8;

    /// This incarnation's entry, if listed.
    pub fn incarnation(&self, id: &str) -> Option<&IncarnationAck> {
        self.incarnations.iter().find(|i| i.incarnation == id)
    }
}

/// One incarnation's ack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IncarnationAck {
    /// The incarnation id.
    pub incarnation: String,
    /// Every event of it with `base <= seq <= this` is stored; `base - 1`
    /// before the first.
    pub seq: u64,
    /// The chain digest after the event at `seq` ([`crate::wire::event::chain_next`]):
    /// equal on both sides only when every event up to it is the same.
    pub chain: String,
}

/// One person in a roster message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RosterPerson {
    /// Person id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// The person id of their coach (the level above), if any.
    #[serde(default)]
    pub coach: Option<String>,
    /// Keyed badge hashes (never numbers).
    #[serde(default)]
    pub badge_hashes: Vec<BadgeHash>,
    /// The person's own language for what the board says to them (their
    /// welcome, their coaching screens), a code such as `de`; absent: the
    /// board's. A kiosk that does not ship it uses the board's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// `.../roster`, retained: the board's people. Newest `issued_at` wins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RosterMessage {
    /// The board.
    pub board: String,
    /// When the roster was issued; a kiosk ignores one older than it has.
    pub issued_at: DateTime<Utc>,
    /// The people, in display order.
    pub people: Vec<RosterPerson>,
}

/// The huddle state in a board's minimal status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HuddleState {
    /// No huddle seen since the last close (or ever).
    NotStarted,
    /// Started, not closed.
    InProgress,
    /// The last huddle was closed.
    Closed,
}

/// The aggregator store's summary of a board after a commit. No longer
/// published: `.../status` carries [`BoardLive`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoardStatus {
    /// The board.
    pub board: String,
    /// The board's retained `online` flag.
    pub online: bool,
    /// Highest contiguous seq stored.
    pub last_seq: u64,
    /// `at` of the newest stored event.
    pub last_event_at: Option<DateTime<Utc>>,
    /// The huddle's state from the events.
    pub huddle: HuddleState,
    /// The board file's current incarnation (none: a board not yet
    /// upgraded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incarnation: Option<String>,
    /// When the current incarnation replaced another (a reflashed card, a
    /// spare Pi, a restored copy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_at: Option<DateTime<Utc>>,
}

// ---------------------------------------------------------------------------
// Live status. The rules that fill these are in
// `crate::aggregator::status`; the web dashboard renders them as they are.
// Times are absolute (UTC), never ages: a retained payload changes only
// when something happened, and clients compute timers and ages from `at`
// fields and their own clock.
// ---------------------------------------------------------------------------

/// `.../schedule`, retained, from the kiosk at every start: when its
/// huddles are due, so that the aggregator needs no second copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ScheduleMessage {
    /// The board.
    pub board: String,
    /// IANA time zone of the times, e.g. `Europe/Berlin`.
    pub timezone: String,
    /// Local start times, `HH:MM`, sorted.
    pub times: Vec<String>,
    /// A huddle not started this many seconds after its time is missed.
    pub grace_s: u32,
    /// The huddle's target length in seconds.
    pub target_s: u32,
    /// When the kiosk published it.
    pub issued_at: DateTime<Utc>,
}

/// Where a board's huddle stands now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LiveState {
    /// Nothing due yet, or the next one is not due.
    NotStarted,
    /// A huddle is running.
    InProgress,
    /// The latest huddle was closed.
    Closed,
    /// A scheduled huddle was not started within its grace.
    Missed,
}

/// The huddle of the moment (running, or the latest today).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LiveHuddle {
    /// The huddle's id.
    pub huddle_id: String,
    /// The slot it was started for, if any.
    pub scheduled_at: Option<DateTime<Utc>>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Target length in seconds.
    pub target_s: u32,
    /// The current agenda step's name, while running.
    pub step: Option<String>,
    /// When the current step began, while running.
    pub step_started_at: Option<DateTime<Utc>>,
    /// People tapped in so far.
    pub present: u32,
    /// People expected (members and team leaders of the board's roster).
    pub expected: u32,
    /// When it closed.
    pub closed_at: Option<DateTime<Utc>>,
    /// The kiosk's closing summary, once closed.
    pub summary: Option<crate::domain::Summary>,
}

/// A need escalated from the board and not closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OpenEscalation {
    /// The need's id.
    pub need_id: String,
    /// Its category.
    pub category: String,
    /// What was needed.
    pub text: String,
    /// When it was escalated.
    pub escalated_at: DateTime<Utc>,
    /// Older than the site's `status.escalation_stale_s`.
    pub stale: bool,
}

/// `huddle/v1/{site}/{area}/{board}/status`, retained, from the aggregator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BoardLive {
    /// The board.
    pub board: String,
    /// Its area.
    pub area: String,
    /// The huddle state now.
    pub state: LiveState,
    /// Online: the retained `online` flag is true and an event or heartbeat
    /// arrived within `status.offline_after_s`.
    pub online: bool,
    /// Highest contiguous seq stored.
    pub last_seq: u64,
    /// `at` of the newest stored event.
    pub last_event_at: Option<DateTime<Utc>>,
    /// The next scheduled huddle (from the board's retained schedule).
    pub next_due_at: Option<DateTime<Utc>>,
    /// The running huddle, or the latest one of the board's day.
    pub huddle: Option<LiveHuddle>,
    /// Open escalations, oldest first: at most
    /// `aggregator::status::MAX_ESCALATIONS_LISTED` (20).
    pub escalations: Vec<OpenEscalation>,
    /// Open escalations not listed (newer than the listed ones).
    #[serde(default)]
    pub escalations_more: u32,
    /// Of those, stale.
    #[serde(default)]
    pub escalations_more_stale: u32,
    /// When this board's team leader was last observed (coaching).
    pub last_observation_at: Option<DateTime<Utc>>,
    /// When the board's database file was last replaced: a reflashed card,
    /// a spare Pi with the same id, a restored copy (a new incarnation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_at: Option<DateTime<Utc>>,
}

/// Boards per state, for the site summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StateCounts {
    /// Not started.
    pub not_started: u32,
    /// In progress.
    pub in_progress: u32,
    /// Closed.
    pub closed: u32,
    /// Missed.
    pub missed: u32,
    /// Offline (whatever their huddle state).
    pub offline: u32,
}

/// `huddle/v1/{site}/status`, retained, from the aggregator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SiteLive {
    /// The site.
    pub site: String,
    /// Boards known.
    pub boards: u32,
    /// Boards per state.
    pub states: StateCounts,
    /// Huddles closed today (site time zone).
    pub held_today: u32,
    /// Huddles missed today.
    pub missed_today: u32,
    /// Present ÷ expected over today's huddles, when any was expected.
    pub attendance_rate: Option<f64>,
    /// Open escalations across the site.
    pub open_escalations: u32,
    /// Of those, stale.
    pub stale_escalations: u32,
    /// People whose coaching is overdue.
    pub coaching_overdue: u32,
}

/// What an alert is about.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A scheduled huddle was not started within grace.
    MissedHuddle,
    /// An escalation passed `status.escalation_stale_s`.
    EscalationStale,
    /// A board went offline.
    BoardOffline,
    /// A person's coaching became overdue (its payload is the coaching
    /// module's own).
    CoachingOverdue,
}

/// `huddle/v1/{site}/alert/{kind}`, not retained, from the aggregator
/// (except `coaching_overdue`, whose payload is
/// the coaching loop's `OverdueAlert`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BoardAlert {
    /// The kind (also the topic's last level).
    pub kind: AlertKind,
    /// The board.
    pub board: String,
    /// Its area.
    pub area: String,
    /// When the condition arose (the slot's grace end, the escalation's
    /// stale time, the moment the board went offline).
    pub at: DateTime<Utc>,
    /// One line for people, in English.
    pub message: String,
    /// `message` before its values were filled in: the English text with
    /// named placeholders (`{board}`, `{time}`, ...), the key under which
    /// a translation catalogue holds it (the dashboard shows it in its
    /// reader's language). Absent from older aggregators' alerts.
    #[serde(default)]
    pub text: Option<String>,
    /// The values of `text`'s placeholders, by name.
    #[serde(default)]
    pub values: std::collections::BTreeMap<String, String>,
    /// The slot, for `missed_huddle`.
    pub scheduled_at: Option<DateTime<Utc>>,
    /// The need, for `escalation_stale`.
    pub need_id: Option<String>,
}
