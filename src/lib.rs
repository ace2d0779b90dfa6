//! huddle-board: daily huddle boards and the "Leaders Coaching Leaders"
//! cascade for lean plants.
//!
//! The library holds everything; the two binaries are thin:
//! - `huddle-kiosk` (feature `kiosk`): the Slint touchscreen app at every
//!   board. [`app`] is its core, [`store`] its SQLite file, [`badge`] its
//!   readers, `ui` the only place where its types become Slint's.
//! - `huddle-aggregator`: the site service, built without Slint.
//!
//! [`domain`] holds the pure rules, [`event`] the contract both sides share,
//! [`config`] the validated configuration, [`text`] the message keys that
//! the views word (and translate).
#![warn(missing_docs)]

pub mod aggregator;
pub mod app;
pub mod badge;
pub mod config;
pub mod domain;
pub mod event;
pub mod logging;
pub mod mqtt;
pub mod notify;
pub mod outbox;
pub mod payload;
pub mod schema;
pub mod simulate;
pub mod store;
pub mod text;
pub mod topic;

#[cfg(feature = "kiosk")]
pub mod snapshot;
#[cfg(feature = "kiosk")]
pub mod ui;
