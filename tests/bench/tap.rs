//! Benchmark: badge read -> record committed -> UI model updated, on a real
//! SQLite file with `synchronous=FULL`, beside this disk's bare fsync.
//!
//! `cargo bench --bench tap -- [--dir DIR] [--taps N] [--wiegand]`
//!
//! With `--wiegand` each tap starts at the last edge of a 26-bit H10301
//! frame: the Wiegand decoder (H10301 the only format, so the frame ends at
//! its last bit) turns it into the badge, then the same path as above.
//!
//! Each measured tap runs through the real core and the real Slint adapter
//! (headless window, software renderer): hash, rules, one transaction with
//! its outbox event, the view query, and the Slint models set. The clock is
//! pinned and moved by hand so that every tap is a new arrival, a start or
//! a close (each one commit).

use std::cell::RefCell;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration as StdDuration, Instant};

use chrono::{Duration, TimeZone, Utc};
use huddle_board::kiosk::app::{Board, Intent};
use huddle_board::kiosk::badge::wiegand::{
    badge_input, edges_of, Decoder, DecoderConfig, Edge, Format, Formats, Keypad, Normalise,
};
use huddle_board::kiosk::badge::{BadgeInput, BadgeRead};
use huddle_board::kiosk::config::KioskConfig;
use huddle_board::kiosk::ui::{Driver, KioskWindow};
use slint::ComponentHandle;

fn badge(n: &str) -> Intent {
    Intent::Badge(BadgeInput::Read(BadgeRead { number: n.into() }))
}

/// A Wiegand decoder with every edge of badge `n`'s frame but the last.
fn primed_decoder(n: &str, at: StdDuration) -> (Decoder, Edge) {
    let formats = Formats::new(&[Format::H10301], Keypad::None);
    let mut decoder = Decoder::new(DecoderConfig {
        formats,
        ..DecoderConfig::default()
    });
    let frame = Format::H10301
        .encode(0, n.parse().expect("a demo badge fits H10301"))
        .expect("a demo badge fits H10301");
    let mut edges = edges_of(&frame, at, StdDuration::from_millis(1));
    let last = edges.pop().expect("26 edges");
    for e in edges {
        assert!(decoder.edge(e).is_empty());
    }
    (decoder, last)
}

fn percentile(sorted: &[StdDuration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn report(name: &str, mut samples: Vec<StdDuration>) -> (f64, f64) {
    samples.sort();
    let (p50, p99) = (percentile(&samples, 0.5), percentile(&samples, 0.99));
    println!(
        "{name:<38} n={:<6} p50={p50:.3} ms  p99={p99:.3} ms  max={:.3} ms",
        samples.len(),
        samples.last().unwrap().as_secs_f64() * 1000.0
    );
    (p50, p99)
}

fn bare_fsync(dir: &Path, n: usize) -> Vec<StdDuration> {
    let path = dir.join("fsync-probe");
    let mut f = std::fs::File::create(&path).unwrap();
    let block = [7u8; 4096];
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f.write_all(&block).unwrap();
        f.sync_data().unwrap();
        out.push(t.elapsed());
    }
    let _ = std::fs::remove_file(&path);
    out
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut dir: Option<PathBuf> = None;
    let mut taps = 2000usize;
    let mut wiegand = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--dir" => dir = args.next().map(PathBuf::from),
            "--taps" => taps = args.next().and_then(|v| v.parse().ok()).expect("--taps N"),
            "--wiegand" => wiegand = true,
            _ => {} // cargo bench passes --bench
        }
    }
    let base = dir.unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    let dir = base.join(format!("tap-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let mut config = KioskConfig::from_toml(
        include_str!("../../config/kiosk.toml"),
        Path::new("config/kiosk.toml"),
    )
    .unwrap();
    config.storage.data_dir = dir.clone();
    huddle_board::kiosk::snapshot::init_headless().unwrap();
    let start = chrono_tz::Europe::Berlin
        .with_ymd_and_hms(2026, 11, 30, 10, 0, 0)
        .unwrap()
        .with_timezone(&Utc);
    let board = Board::open(config.clone(), start).unwrap();
    let ui = KioskWindow::new().unwrap();
    ui.window().set_size(slint::PhysicalSize::new(800, 480));
    ui.show().unwrap();
    let driver = Rc::new(RefCell::new(Driver { board, now: start }));

    let leader = "1001";
    let members: Vec<String> = config
        .people
        .iter()
        .filter(|p| p.role == huddle_board::domain::Role::Member)
        .filter_map(|p| p.badges.first().cloned())
        .collect();
    let mut samples = Vec::with_capacity(taps);
    let tap = |n: &str, samples: &mut Vec<StdDuration>| {
        let before = driver.borrow().board.store().last_seq().unwrap();
        if wiegand {
            let (mut decoder, last) = primed_decoder(n, StdDuration::from_secs(1));
            let t = Instant::now();
            let read = decoder
                .edge(last)
                .pop()
                .expect("the last bit ends the frame");
            let input = badge_input(&read, Normalise::Card).expect("a badge");
            driver
                .borrow_mut()
                .handle(Intent::Badge(input), &ui)
                .unwrap();
            samples.push(t.elapsed());
        } else {
            let t = Instant::now();
            driver.borrow_mut().handle(badge(n), &ui).unwrap();
            samples.push(t.elapsed());
        }
        assert!(
            driver.borrow().board.store().last_seq().unwrap() > before,
            "tap {n} committed nothing"
        );
    };
    while samples.len() < taps {
        // A huddle: the leader starts it, members arrive, the leader closes it.
        driver.borrow_mut().advance(Duration::minutes(30));
        tap(leader, &mut samples);
        for m in &members {
            driver.borrow_mut().advance(Duration::seconds(5));
            tap(m, &mut samples);
        }
        driver
            .borrow_mut()
            .handle(Intent::CloseHuddle, &ui)
            .unwrap();
        tap(leader, &mut samples);
        driver.borrow_mut().handle(Intent::Dismiss, &ui).unwrap();
    }
    let fsync = bare_fsync(&dir, taps);
    println!("disk: {}", dir.display());
    let what = if wiegand {
        "last Wiegand edge -> decode -> commit -> UI model updated"
    } else {
        "tap -> commit -> UI model updated"
    };
    let (_, tap_p99) = report(what, samples);
    let (_, fsync_p99) = report("bare write 4 KiB + fdatasync", fsync);
    println!(
        "target p99 <= fsync p99 + 2 ms: {:.3} <= {:.3}: {}",
        tap_p99,
        fsync_p99 + 2.0,
        if tap_p99 <= fsync_p99 + 2.0 {
            "met"
        } else {
            "NOT met"
        }
    );
    let _ = std::fs::remove_dir_all(&dir);
}
