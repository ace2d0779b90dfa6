//! The kiosk core at a test's hands: the shipped `config/kiosk.toml` on a
//! data directory of the test's own, the demo board's clock (Monday
//! 2026-11-30, Europe/Berlin), badge taps and the events a board stored.
//! Plain functions: nothing here is global.

use std::path::Path;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use huddle_board::kiosk::app::{Board, Intent};
use huddle_board::kiosk::badge::{BadgeInput, BadgeRead};
use huddle_board::kiosk::config::KioskConfig;
use huddle_board::wire::event::Envelope;

/// The shipped kiosk configuration (the demo board and its roster).
pub const SHIPPED: &str = include_str!("../../../config/kiosk.toml");

/// The shipped configuration with its data (SQLite file) in `dir`.
pub fn kiosk_config(dir: &Path) -> KioskConfig {
    let mut c = KioskConfig::from_toml(SHIPPED, Path::new("config/kiosk.toml")).unwrap();
    c.storage.data_dir = dir.to_owned();
    c
}

/// The Monday of the tests: 30 Nov 2026.
pub fn monday() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 30).unwrap()
}

/// Monday 30 Nov 2026 at `h:m` in the shipped zone (Europe/Berlin).
pub fn at(h: u32, m: u32) -> DateTime<Utc> {
    chrono_tz::Europe::Berlin
        .with_ymd_and_hms(2026, 11, 30, h, m, 0)
        .unwrap()
        .with_timezone(&Utc)
}

/// A badge read, as any reader hands it to the core.
pub fn badge(n: &str) -> Intent {
    Intent::Badge(BadgeInput::Read(BadgeRead { number: n.into() }))
}

/// Every event the board has stored, in seq order.
pub fn events(board: &Board) -> Vec<Envelope> {
    board
        .store()
        .events_since(0)
        .unwrap()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The kinds of [`events`].
pub fn kinds(board: &Board) -> Vec<String> {
    events(board).into_iter().map(|e| e.kind).collect()
}
