//! The site aggregator: the service beside the site broker that ingests
//! every board's events over MQTT into the site file, acknowledges them,
//! and publishes what the site needs to see (statuses, alerts, coaching
//! figures, rosters, a dashboard). Built without Slint; it imports
//! [`crate::domain`], [`crate::wire`] and the shared shell, never the
//! kiosk. `src/bin/huddle-aggregator.rs` parses the command line and calls
//! [`run`] (or the `export` and `--check` paths).
//!
//! The tree:
//! - [`ingest`]: the shell that wires the rest: the MQTT event loop, the
//!   writer thread that owns the site file, and what is published after
//!   each commit (acks, statuses, stats, rosters).
//! - [`validate`](mod@validate) (pure): one message's topic and bytes in, an
//!   [`Envelope`](crate::wire::event::Envelope) or a [`Reject`] with its
//!   [`Reason`] out.
//! - [`store`]: the site file, one owner: every migration, every write
//!   (events keyed by `(board, incarnation, seq)`, each incarnation's
//!   contiguous ack, integrity alerts, counters; one transaction per group
//!   commit) and the read-only opener the other threads use.
//! - [`status`]: the live status: each board's and the site's retained
//!   status and the alerts, from the committed events, the boards'
//!   `online` flags and retained schedules, and the clock ([`status::rules`]
//!   pure, [`status::db`] the read at start, [`status::shell`] the thread).
//! - [`coaching`]: the coaching loop: cadence and effectiveness from the
//!   stored observations, published on `huddle/v1/{site}/coaching` by a
//!   thread of its own, and the observation and coaching exports
//!   ([`coaching::rules`] and [`coaching::export`] pure, [`coaching::db`]
//!   the reads, [`coaching::summary`] the observations folded so far,
//!   [`coaching::shell`] the thread).
//! - [`roster`] (pure): the site roster CSV into one
//!   [`RosterMessage`](crate::wire::payload::RosterMessage) per board.
//! - [`discovery`] (pure): Home Assistant MQTT discovery messages for a
//!   board.
//! - [`live`]: the live picture for the web dashboard: every site-level
//!   state the aggregator publishes retained, and recent alerts.
//! - [`web`]: the supervisors' dashboard (page, JSON, server-sent
//!   events) and `/metrics`, read from [`live`] (and, for `/metrics`, the
//!   boards' acks in the site file).
//! - [`metrics`]: the OpenMetrics text of `/metrics`, gathered when
//!   scraped.
//! - [`outlet`]: what the coaching and status threads share: their way
//!   out to the broker and the hub, JSON, the clock.
//! - [`generate`]: the `generate` command: a made-up plant's history of
//!   any length written through [`store`] as ingest writes it, for the
//!   dashboard's demo and the benchmarks.
//! - [`doctor`]: the technician's checks of the site server
//!   (`huddle-aggregator doctor`).
//! - [`config`]: `aggregator.toml`; [`schema`]: the JSON Schemas of what
//!   the aggregator publishes.
//!
//! The guarantees: a message is acknowledged to the broker only after the
//! transaction that holds it has committed, and in the order it arrived
//! (rejected ones too, through the same queue); a board's retained ack
//! never passes a gap and survives restarts; a bad message is counted,
//! logged at most once a minute per board and reason, and never stops the
//! others; the status and coaching threads only read the site file and
//! never hold up ingest.
//!
//! Threads: the tokio runtime (the MQTT event loop, the task that sends
//! PUBACKs and publications in commit order, the web server);
//! `aggregator-writer` (owns the write connection: validate, group commit,
//! acks); `aggregator-checkpoint` (passive WAL checkpoints every 500 ms, so
//! that no commit pays for one); `aggregator-status` and
//! `aggregator-coaching` (read-only connections, fed after each commit).

pub mod coaching;
pub mod config;
pub mod discovery;
pub mod doctor;
pub mod generate;
pub mod ingest;
pub mod live;
pub mod metrics;
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
