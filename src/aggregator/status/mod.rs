//! The live status: each board's and the site's retained status, and the
//! alerts (missed huddle, stale escalation, board offline).
//!
//! - [`rules`] (pure): committed events, the boards' `online` flags and
//!   retained schedules and `now` in; [`BoardLive`], [`SiteLive`] and
//!   alerts out. Its items are re-exported here.
//! - [`db`]: the one read of the site file at start (read only; the
//!   ingest writer owns every write).
//! - [`shell`]: the thread that feeds the rules after each commit and on a
//!   timer, and publishes what changed.
//!
//! Called by [`crate::aggregator::ingest`], which starts the thread and
//! feeds it only what has committed.

pub mod db;
pub mod rules;
pub mod shell;

pub use rules::*;
