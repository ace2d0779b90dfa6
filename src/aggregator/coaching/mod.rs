//! The coaching loop (Leaders Coaching Leaders): cadence and
//! effectiveness of every coach and learner, from the stored
//! observations and the site roster.
//!
//! - [`rules`] (pure): observations, roster and `now` in; one entry per
//!   person and the overdue alerts out. Its items are re-exported here.
//! - [`db`]: the reads of the stored observations (read only, a
//!   connection of its own).
//! - [`shell`]: the thread that recomputes and publishes
//!   `huddle/v1/{site}/coaching`, and the observation and coaching exports.
//!
//! Called by [`crate::aggregator::ingest`] (the thread) and the
//! `export` command.

pub mod db;
pub mod rules;
pub mod shell;

pub use rules::*;
