//! Payloads of the topics other than events (those are in [`crate::event`]).
//! Shared by the kiosk and the aggregator; JSON through serde.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::badge::BadgeHash;
use crate::domain::Role;

/// `.../ack`, retained, from the aggregator: the highest `seq` of the board
/// that it has stored durably with no gap below it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The board.
    pub board: String,
    /// Every event with `seq <= this` is stored; 0 before the first.
    pub seq: u64,
    /// When the aggregator committed it.
    pub at: DateTime<Utc>,
}

/// One person in a roster message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// `.../roster`, retained: the board's people. Newest `issued_at` wins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterMessage {
    /// The board.
    pub board: String,
    /// When the roster was issued; a kiosk ignores one older than it has.
    pub issued_at: DateTime<Utc>,
    /// The people, in display order.
    pub people: Vec<RosterPerson>,
}

/// The huddle state in a board's minimal status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HuddleState {
    /// No huddle seen since the last close (or ever).
    NotStarted,
    /// Started, not closed.
    InProgress,
    /// The last huddle was closed.
    Closed,
}

/// `.../status`, retained, from the aggregator (minimal; the full rules are issue 6).
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
}
