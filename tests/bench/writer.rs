//! Benchmark: the aggregator's writer without MQTT, to split its cost per
//! event between validation and the SQLite group commit.
//!
//! `cargo bench --no-default-features --bench writer -- [--boards N]
//! [--events-per-board E] [--batch B] [--runs R]`
//!
//! The same load as `--bench ingest` (500 boards x 400 attendance taps,
//! interleaved as a drained broker queue delivers them), validated and
//! committed in batches of `ingest.max_batch` (5,000) into a fresh file
//! with `synchronous=FULL`, as the writer thread does. Prints, per run and
//! as the median of the runs, µs per event for each stage.

#[allow(dead_code)]
#[path = "load.rs"]
mod load;

use std::time::{Duration, Instant};

use chrono::Utc;
use huddle_board::aggregator::store::{Input, Store};
use huddle_board::aggregator::validate::validate;

const SITE: &str = "bench";

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name} N")))
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let boards = arg(&args, "--boards", 500);
    let per_board = arg(&args, "--events-per-board", 400) as u64;
    let batch = arg(&args, "--batch", 5000);
    let runs = arg(&args, "--runs", 5);
    let now = Utc::now();
    let messages: Vec<(String, String)> = (1..=per_board)
        .flat_map(|seq| (0..boards).map(move |b| (b, seq)))
        .map(|(b, seq)| load::message(SITE, b, seq, now))
        .collect();
    let total = messages.len() as f64;
    let mut validating = Vec::new();
    let mut committing = Vec::new();
    for run in 1..=runs {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("agg.db")).unwrap();
        let (mut v, mut c) = (Duration::ZERO, Duration::ZERO);
        for chunk in messages.chunks(batch) {
            let t = Instant::now();
            let inputs: Vec<Input> = chunk
                .iter()
                .map(|(topic, payload)| {
                    let a = validate(SITE, topic, payload.as_bytes(), 65536).expect("valid");
                    Input::Event {
                        area: a.area,
                        envelope: a.envelope,
                    }
                })
                .collect();
            v += t.elapsed();
            let t = Instant::now();
            store.apply(&inputs, Utc::now()).unwrap();
            c += t.elapsed();
        }
        let us = |d: Duration| d.as_secs_f64() * 1e6 / total;
        println!(
            "run {run}: validate {:.2} µs/event, commit {:.2} µs/event",
            us(v),
            us(c)
        );
        validating.push(us(v));
        committing.push(us(c));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "{} events from {boards} boards in batches of {batch}, median of {runs} runs: \
         validate {:.2} µs/event, commit {:.2} µs/event",
        messages.len(),
        median(&mut validating),
        median(&mut committing)
    );
}
