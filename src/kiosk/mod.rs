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
//! - [`doctor`]: the technician's checks of a board (`huddle-kiosk doctor`).
//! - `ui` and `snapshot` (feature `kiosk`): the Slint window, the only
//!   place where the core's types become Slint's, and the headless PNG
//!   renderer of every screen.
//!
//! Called by `src/bin/huddle-kiosk.rs`, the tests and the benchmarks. It
//! imports [`crate::domain`], [`crate::wire`] and the shared modules,
//! never the aggregator.
//!
//! How an action flows (the core never waits for the disk or the network
//! before the screen can move on, and changes what the screen shows only
//! after the commit):
//!
//! ```text
//!  keyboard-wedge keys (window) ─┐
//!  simulated/FIFO reader thread ─┼─ Intent ─> core thread: Board ──> SQLite (WAL, synchronous=FULL)
//!  screen callbacks ─────────────┘            │  one transaction per action:
//!                                             │  records + outbox event (seq n)
//!                                             └─ BoardView ─> upgrade_in_event_loop ─> Slint UI (main thread)
//! ```
//!
//! `Board::handle(intent, now)` decides with the domain rules, writes
//! through `Store::transact` and only after the commit changes what the
//! screen shows; the state is rebuilt from the file at start, so a killed
//! kiosk comes back mid-huddle. The repository's `ui/` holds the Slint side:
//! `adapters.slint` (data in, verb callbacks out), `texts.slint` (the words
//! of every message key, through `@tr()`), `main.slint`, `theme.slint`,
//! `views/` and `widgets/`.
//!
//! Threads: Slint's event loop on the main thread; the core thread owns the
//! `Board` and the SQLite connection; each badge source has its own thread;
//! a tokio runtime (thread `mqtt`) runs the outbox publisher, which has its
//! own SQLite connection, is woken by the core after each commit, and sends
//! its link status and the aggregator's roster back to the core as intents
//! (`Intent::Link`, `Intent::ApplyRoster`). The screen never waits for the
//! disk or the network.

pub mod app;
pub mod badge;
pub mod config;
pub mod doctor;
pub mod language;
pub mod outbox;
pub mod simulate;
pub mod store;

#[cfg(feature = "kiosk")]
pub mod snapshot;
#[cfg(feature = "kiosk")]
pub mod ui;
