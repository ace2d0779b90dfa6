//! The coaching loop (Leaders Coaching Leaders): cadence and
//! effectiveness of every coach and learner, from the stored
//! observations and the site roster.
//!
//! - [`rules`] (pure): observations, roster and `now` in; one entry per
//!   person and the overdue alerts out. The definitions of every figure
//!   are written out in its documentation.
//! - [`compact`] (pure): what the figures read of an observation, and
//!   the compact form the thread keeps of each.
//! - [`export`] (pure): the observation and coaching exports' columns and
//!   rows.
//! - [`db`]: the reads of the stored observations (read only, a
//!   connection of its own).
//! - [`summary`]: the observations folded so far, updated from the rows
//!   that arrived since (the thread's computations read only those).
//! - [`shell`]: the thread that recomputes and publishes
//!   `huddle/v1/{site}/coaching`, and the `export` command's observation
//!   and coaching tables.
//!
//! The items of [`rules`] and [`export`] are re-exported here
//! (`coaching::Report`, `coaching::OBSERVATION_COLUMNS`).
//!
//! Called by [`crate::aggregator::ingest`] (the thread) and the `export`
//! command. The guarantees: the rules never touch the clock, the file or
//! the broker (`now` and the coaching start are parameters); computing
//! never holds up ingest (the thread reads on its own connection and is
//! only pulsed by the writer); an overdue alert fires once per transition.

pub mod compact;
pub mod db;
pub mod export;
pub mod rules;
pub mod shell;
pub mod summary;

pub use compact::{CompactObservation, Scored};
pub use export::*;
pub use rules::*;
