//! The board: everything only `huddle-kiosk` runs.
//!
//! - [`app`]: the core. Screens, intents and the huddle's flow as the team
//!   leader and the team use it; each act commits through the store before
//!   the screen confirms it. It runs no SQL itself.
//! - [`store`]: the board's SQLite file, its only owner: the schema and
//!   its migrations, and every statement the board runs, as named
//!   functions. Events are written to the outbox in the same transaction
//!   as the state they describe.
//! - [`outbox`]: delivery to the site over MQTT. A row leaves the outbox
//!   only when the aggregator's ack (with its chain digest) covers it.
//! - [`badge`]: the readers (keyboard wedge, FIFO/stdin, Wiegand on GPIO
//!   behind feature `gpio`).
//! - [`config`]: `kiosk.toml`, validated.
//! - [`language`]: the shipped languages and switching the window's.
//! - [`simulate`]: scripted huddles for demos, tests and benchmarks.
//! - `ui` and `snapshot` (feature `kiosk`): the Slint window, the only
//!   place where the core's types become Slint's, and the headless PNG
//!   renderer of every screen.
//!
//! Called by `src/bin/huddle-kiosk.rs`, the tests and the benchmarks. It
//! imports [`crate::domain`], [`crate::wire`] and the shared modules,
//! never the aggregator.

pub mod app;
pub mod badge;
pub mod config;
pub mod language;
pub mod outbox;
pub mod simulate;
pub mod store;

#[cfg(feature = "kiosk")]
pub mod snapshot;
#[cfg(feature = "kiosk")]
pub mod ui;
