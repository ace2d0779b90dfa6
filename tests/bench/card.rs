//! Benchmark: one board's year on its SD card: how large its file grows
//! and how many bytes each huddle writes.
//!
//! `cargo bench --bench card -- [--huddles N] [--retention-days D]
//! [--dir DIR] [--checkpoint-pages P] [--page-size B]`
//!
//! The board is the simulator's (`huddle-kiosk simulate`): the real kiosk
//! core on a real file with `synchronous=FULL`, with a simulated clock and
//! the demo roster (a team leader, a supervisor, a manager, members; taps,
//! late arrivals, KPI misses with reasons and actions, needs escalated,
//! the experiment, coaching observations). The simulator holds one huddle
//! a working day; a plant board holds two, so `--huddles 522` is one
//! plant year (2 x 261 working days) and the outbox's retention counts
//! double in simulated days (30 days of two huddles a day hold as many
//! huddles as 60 simulated days of one).
//!
//! Each event is acknowledged as soon as it is committed, alone, the way
//! a quiet site's aggregator acks (the worst case: one `mark_delivered`
//! transaction per event), through the store's own `mark_delivered` on a
//! second connection as the outbox thread holds one; delivered events
//! past retention are pruned after every huddle, as the outbox thread
//! does every minute.
//!
//! Written bytes are this process's `/proc/self/io`: `write_bytes` (what
//! reached the block layer: WAL frames, checkpoints into the file) and
//! `wchar` (what passed through `write()`). Nothing else in the process
//! writes. Printed: per huddle, the median and p99 of both, and the mean;
//! at the end, the file (pages, free pages), the WAL, and the file size
//! per huddle.
//!
//! `--checkpoint-pages` and `--page-size` set `wal_autocheckpoint` and
//! `page_size` on a fresh file before the board opens it, to compare
//! (A/B in one run: run it twice in one command line).

use std::path::{Path, PathBuf};

use chrono::Duration;
use huddle_board::kiosk::config::KioskConfig;
use huddle_board::kiosk::simulate::{board_config, run_board};
use huddle_board::kiosk::store::Store;
use huddle_board::wire::payload::Ack;

/// This process's I/O counters: (`write_bytes`, `wchar`).
fn io() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/self/io").expect("/proc/self/io is readable");
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/self/io"))
    };
    (field("write_bytes:"), field("wchar:"))
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}: not a number: {v}"))
        })
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn kb(bytes: u64) -> String {
    format!("{:.1} kB", bytes as f64 / 1000.0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let huddles: usize = arg(&args, "--huddles").unwrap_or(522);
    let retention_days: i64 = arg(&args, "--retention-days").unwrap_or(30);
    let checkpoint: Option<u32> = arg(&args, "--checkpoint-pages");
    let page_size: Option<u32> = arg(&args, "--page-size");
    let dir: PathBuf = arg(&args, "--dir").unwrap_or_else(|| {
        std::env::temp_dir().join(format!("huddle-card-{}", std::process::id()))
    });
    let _ = std::fs::remove_dir_all(&dir);
    let base = KioskConfig::load_or_embedded(None).expect("the embedded defaults load");
    let config = board_config(&base, 0, &dir);
    let file = config.database_path();
    let board_id = config.board.id.clone();
    std::fs::create_dir_all(file.parent().expect("a data directory")).expect("data directory");
    if page_size.is_some() {
        let c = rusqlite::Connection::open(&file).expect("a fresh file");
        if let Some(b) = page_size {
            c.pragma_update(None, "page_size", b).expect("page_size");
        }
        c.pragma_update(None, "journal_mode", "WAL").expect("WAL");
    }
    let retention = Duration::days(retention_days * 2);

    let mut acker: Option<Store> = None;
    let mut acked = 0u64;
    let mut in_huddle = false;
    let mut per_huddle: Vec<(u64, u64)> = Vec::with_capacity(huddles);
    let started = io();
    let mut mark = started;
    let mut failure: Option<String> = None;
    let clock = std::time::Instant::now();
    let result = run_board(config, 1, huddles, |board| {
        if failure.is_some() {
            return;
        }
        let acker = acker.get_or_insert_with(|| {
            let s = Store::open(&file, &board_id).expect("a second connection");
            if let Some(p) = checkpoint {
                // Per connection: on the board's (most commits) and the acker's.
                for store in [board.store(), &s] {
                    store
                        .read(|c| c.pragma_update(None, "wal_autocheckpoint", p))
                        .expect("wal_autocheckpoint");
                }
            }
            s
        });
        let step = (|| -> Result<(), String> {
            let store = board.store();
            let last = store.last_seq().map_err(|e| e.to_string())?;
            let now = store
                .last_event_at()
                .map_err(|e| e.to_string())?
                .unwrap_or_else(chrono::Utc::now);
            if last > acked {
                let entry = acker
                    .ack_for(last)
                    .map_err(|e| e.to_string())?
                    .ok_or("no ack entry for the last seq")?;
                let ack = Ack {
                    board: board_id.clone(),
                    seq: 0,
                    at: now,
                    incarnations: vec![entry],
                };
                acked = acker
                    .mark_delivered(&ack, now)
                    .map_err(|e| e.to_string())?
                    .acked;
            }
            let open = board.huddle().is_some();
            if in_huddle && !open {
                acker
                    .prune_delivered(now - retention)
                    .map_err(|e| e.to_string())?;
                let now_io = io();
                per_huddle.push((now_io.0 - mark.0, now_io.1 - mark.1));
                mark = now_io;
            }
            in_huddle = open;
            Ok(())
        })();
        failure = step.err();
    });
    if let Some(f) = failure {
        panic!("the simulated board failed: {f}");
    }
    let board = result.expect("the simulated board runs");
    let elapsed = clock.elapsed();
    let end = io();
    let last_seq = board.store().last_seq().expect("last seq");
    drop(board);
    let acker = acker.expect("at least one event");
    let pragma = |name: &str| -> i64 {
        acker
            .read(|c| c.pragma_query_value(None, name, |r| r.get(0)))
            .expect("pragma")
    };
    let (pages, free, page) = (
        pragma("page_count"),
        pragma("freelist_count"),
        pragma("page_size"),
    );
    let checkpoint_pages = pragma("wal_autocheckpoint");
    let outbox: i64 = acker
        .read(|c| c.query_row("SELECT count(*) FROM outbox", [], |r| r.get(0)))
        .expect("outbox rows");
    let db = size(&file);
    let wal = size(&PathBuf::from(format!("{}-wal", file.display())));

    let n = per_huddle.len().max(1) as u64;
    let mut block: Vec<u64> = per_huddle.iter().map(|p| p.0).collect();
    let mut chars: Vec<u64> = per_huddle.iter().map(|p| p.1).collect();
    block.sort_unstable();
    chars.sort_unstable();
    println!(
        "card: {} huddles ({last_seq} events, {:.1} per huddle) in {:.1} s; page_size {page}, wal_autocheckpoint {checkpoint_pages}; retention {retention_days} days of two huddles",
        per_huddle.len(),
        last_seq as f64 / n as f64,
        elapsed.as_secs_f64()
    );
    if !block.is_empty() {
        println!(
            "written per huddle (write_bytes): median {}, p99 {}, mean {}",
            kb(pct(&block, 0.5)),
            kb(pct(&block, 0.99)),
            kb((end.0 - started.0) / n)
        );
        println!(
            "written per huddle (wchar):       median {}, p99 {}, mean {}",
            kb(pct(&chars, 0.5)),
            kb(pct(&chars, 0.99)),
            kb((end.1 - started.1) / n)
        );
    }
    println!(
        "file after the run: {} ({pages} pages, {free} free = {}), WAL {}, outbox {outbox} rows; {} of file per huddle",
        kb(db),
        kb((free * page) as u64),
        kb(wal),
        kb(db / n)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
