//! Benchmark: tap → ack latency at plant load. A kiosk commits an action
//! (record + outbox event, `synchronous=FULL`); the time until the
//! aggregator's retained ack covering it is back at that kiosk.
//!
//! `cargo bench --bench latency -- [--boards N] [--rate R]`
//!
//! Starts a Mosquitto here (TCP_NODELAY, queue limits raised), the release
//! `huddle-aggregator`, and `huddle-kiosk simulate --latency` with N boards
//! (default 500) each doing one huddle at R actions per second (default 1),
//! all on this machine; prints the simulator's p50/p99 line.

#[path = "../support/mod.rs"]
mod support;

use std::process::{Command, Stdio};

const KIOSK: &str = env!("CARGO_BIN_EXE_huddle-kiosk");
const AGGREGATOR: &str = env!("CARGO_BIN_EXE_huddle-aggregator");

fn main() {
    let mut boards = 500usize;
    let mut rate = 1.0f64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--boards" => {
                boards = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--boards N")
            }
            "--rate" => rate = args.next().and_then(|v| v.parse().ok()).expect("--rate R"),
            _ => {}
        }
    }
    let broker = support::Mosquitto::start_with("max_queued_messages 100000\n");
    let dir = tempfile::tempdir().unwrap();
    let mut aggregator = Command::new(AGGREGATOR)
        .args(["--config", "config/aggregator.toml"])
        .env("HUDDLE_DATA_DIR", dir.path().join("agg"))
        .env("HUDDLE_MQTT_URL", broker.url())
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("start huddle-aggregator");
    std::thread::sleep(std::time::Duration::from_secs(1));
    let out = Command::new(KIOSK)
        .args([
            "simulate",
            "--huddles",
            "1",
            "--latency",
            "--timeout",
            "120",
        ])
        .args(["--boards", &boards.to_string(), "--rate", &rate.to_string()])
        .arg("--data-dir")
        .arg(dir.path().join("kiosks"))
        .env("HUDDLE_MQTT_URL", broker.url())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .output()
        .expect("run huddle-kiosk simulate");
    support::sigkill(&mut aggregator);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("latency"))
        .unwrap_or("no latency line");
    println!("{boards} boards at {rate} actions/s each: {line}");
    assert!(
        out.status.success(),
        "some boards were not fully acknowledged:\n{stderr}"
    );
}
