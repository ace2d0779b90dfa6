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
//!
//! The tree is the architecture; each folder's `mod.rs` says what it owns,
//! who calls it and its guarantees (`cargo doc --no-deps --open` is the
//! tour):
//!
//! ```text
//! src/lib.rs       the four layers below, which import only downwards
//!   domain/        pure rules: roster and roles, badge hashes, schedule, huddle, observations
//!   wire/          the MQTT contract: event envelope, payloads, topic tree, time format
//!   config.rs mqtt.rs text.rs logging.rs notify.rs   shared by both programs
//!   kiosk/         the board: app/ (the core, split by what the team does; no SQL),
//!                  store/ (every SQL statement of the board file), outbox.rs, badge/,
//!                  config.rs, ui.rs (the only place core types become Slint's),
//!                  snapshot.rs, simulate.rs
//!   aggregator/    the site: ingest.rs, validate.rs, store/ (every migration of the
//!                  site file), roster.rs, status/ and coaching/ (rules.rs pure, db.rs
//!                  reads, shell.rs the thread), live.rs, outlet.rs, web/, schema.rs
//!   bin/           thin: parse arguments, load config, call the library
//! ```
//!
//! Cargo features: `kiosk` (default: Slint, the kiosk binary), `linuxkms`
//! (the Pi's DRM/KMS display with libinput touch), `gpio` (the Wiegand
//! reader, rppal). The aggregator builds with `--no-default-features`,
//! without Slint. Every MQTT socket, kiosk and aggregator, has TCP_NODELAY
//! (`mqtt::no_delay`).
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
