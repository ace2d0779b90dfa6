//! The integration tests: one test crate (`cargo test --test it`), one
//! module per area, one copy of each helper in [`support`]. One crate links
//! the library once instead of once per file, and its tests run together
//! (two at a time by default).
//!
//! Run one area with its path: `cargo test --test it kiosk::`, one test
//! by (part of) its name. `tests/README.md` lists the areas and what
//! each needs (Mosquitto, Xvfb, Chromium, cargo-deb...).
//!
//! Modules that run the `huddle-kiosk` binary or Slint are behind feature
//! `kiosk` (the default), as the binary is.

mod support;

mod broker;
mod coaching;
mod dashboard;
mod delivery;
mod docs;
mod history;
mod ingest;
mod kiosk;
mod layout;
mod packages;
mod status;
mod translations;
#[cfg(feature = "kiosk")]
mod ui;
