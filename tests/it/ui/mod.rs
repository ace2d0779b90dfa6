//! The kiosk's screens driven the way a person (or a screen reader) does,
//! headless on Slint's testing backend ([`crate::support::ui`]).
//!
//! Slint's platform is per thread (its context is a thread-local), and the
//! test harness runs every test on a thread of its own, even with
//! `--test-threads=1`: each test sets the platform once on its thread
//! ([`crate::support::ui::headless`]) and its windows never leave it.

mod coaching;
mod fit;
mod flow;
mod languages;
