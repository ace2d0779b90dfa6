//! The live status: each board's and the site's retained status, and the
//! alerts (missed huddle, stale escalation, board offline), from the
//! committed events, the boards' `online` flags and retained schedules,
//! and the clock.
//!
//! - [`rules`] (pure): committed events, the boards' flags and schedules
//!   and `now` in; [`BoardLive`](crate::wire::payload::BoardLive),
//!   [`SiteLive`](crate::wire::payload::SiteLive) and alerts out. The rules
//!   themselves are written out in its documentation.
//! - [`slots`] (pure): a board's schedule, checked, and its slots.
//! - [`texts`]: the alerts' English texts, the key of their translations.
//! - [`db`]: the one read of the site file at start (read only; the
//!   ingest writer owns every write).
//! - [`shell`]: the thread that feeds the rules after each commit and on a
//!   timer, and publishes what changed.
//!
//! The items of [`rules`] and [`slots`] are re-exported here
//! (`status::Site`, `status::BoardSchedule`).
//!
//! Called by [`crate::aggregator::ingest`], which starts the thread and
//! feeds it only what has committed. The guarantees: the rules never touch
//! the clock, the file or the broker (every call takes `now`), so each is a
//! unit test; each alert fires once, on a transition, and a restart
//! alerts nothing that arose before it.

pub mod db;
pub mod rules;
pub mod shell;
pub mod slots;
pub mod texts;

pub use rules::*;
pub use slots::*;
