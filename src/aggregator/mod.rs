//! The site aggregator: ingest of every board's events over MQTT.
//!
//! - [`validate`] (pure): one message's topic and bytes in, an
//!   [`Envelope`](crate::wire::event::Envelope) or a [`Reject`] with its
//!   [`Reason`] out.
//! - [`store`]: the SQLite file (events keyed by `(board, seq)`, each
//!   board's contiguous ack, integrity alerts, counters); one transaction
//!   per group commit.
//! - [`roster`] (pure): the site roster CSV into one
//!   [`RosterMessage`](crate::wire::payload::RosterMessage) per board.
//! - [`coaching`] (pure), [`coaching_db`], [`coaching_shell`]: the
//!   coaching loop (issue 5): cadence and effectiveness from the stored
//!   observations, published on `huddle/v1/{site}/coaching` by a thread of
//!   its own, and the observation and coaching exports.
//! - [`discovery`] (pure): Home Assistant MQTT discovery messages for a
//!   board.
//! - [`live`]: the live picture for the web dashboard: every site-level
//!   state the aggregator publishes retained, and recent alerts.
//! - [`status`] (pure), [`status_db`], [`status_shell`]: the live status
//!   (issue 6): each board's and the site's retained status and the
//!   alerts, from the committed events, the boards' `online` flags and
//!   retained schedules, and the clock.
//! - [`ingest`]: the shell that wires them: the MQTT event loop, the
//!   writer thread that owns the database, and what is published after
//!   each commit (acks, statuses, stats, rosters).
//! - [`outlet`]: what the coaching and status threads share: their way
//!   out to the broker and the hub, JSON, the clock, the read-only file.
//! - [`web`]: the supervisors' dashboard (page, JSON, server-sent
//!   events), read from [`live`] only.
//!
//! The guarantees: a message is acknowledged to the broker only after the
//! transaction that holds it has committed, and in the order it arrived
//! (rejected ones too, through the same queue); a board's retained ack
//! never passes a gap and survives restarts; a bad message is counted,
//! logged at most once a minute per board and reason, and never stops the
//! others.

pub mod coaching;
pub mod config;
pub mod discovery;
pub mod ingest;
pub mod live;
pub mod outlet;
pub mod roster;
pub mod schema;
pub mod status;
pub mod store;
pub mod validate;
pub mod web;

pub use ingest::run;
pub use roster::{BoardRoster, RosterError};
pub use store::{BatchOutcome, Input, Stats, Store, StoreError};
pub use validate::{validate, Accepted, Reason, Reject};
