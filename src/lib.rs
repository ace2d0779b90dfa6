//! huddle-board: daily huddle boards and the "Leaders Coaching Leaders"
//! cascade for lean plants.
//!
//! The library holds everything; the two binaries under `src/bin` are thin
//! (parse arguments, load config, call `run`). The tree is the
//! architecture, in four layers that import only downwards:
//! - [`domain`]: the pure rules (people and roles, the schedule, the
//!   huddle, observations and the coaching cascade, badge hashes). It
//!   imports nothing else of the crate and never touches SQLite, MQTT or
//!   the clock.
//! - [`wire`]: the contract both programs speak: the event envelope, the
//!   retained payloads, the topic tree, the time format. It imports only
//!   [`domain`].
//! - the shared shell: [`config`] (loading, errors naming file and key,
//!   the MQTT settings), [`mqtt`], [`text`], [`logging`], [`notify`],
//!   [`doctor`] (the checks both `doctor` commands share). They
//!   import only [`domain`] and [`wire`].
//! - the two wings, which never import each other: [`kiosk`] (feature
//!   `kiosk`: the Slint touchscreen app at every board, its SQLite file and
//!   outbox, its badge readers) and [`aggregator`] (the site service,
//!   built without Slint: ingest, the site file, status, coaching, the
//!   dashboard).
//!
//! `tests/it/layout.rs` enforces these rules.
#![warn(missing_docs)]

pub mod aggregator;
pub mod config;
pub mod doctor;
pub mod domain;
pub mod kiosk;
pub mod logging;
pub mod mqtt;
pub mod notify;
pub mod text;
pub mod wire;
