//! Benchmark: tap → ack latency at plant load. A kiosk commits an action
//! (record + outbox event, `synchronous=FULL`); the time until the
//! aggregator's retained ack covering it is back at that kiosk.
//!
//! `cargo bench --bench latency -- [--boards N] [--rate R]`
//!
//! Starts a Mosquitto here (TCP_NODELAY, queue limits raised), the release
//! `huddle-aggregator`, and `huddle-kiosk simulate --latency` with N boards
//! (default 500) each doing one huddle at R actions per second (default 1),
//! all on this machine; prints the simulator's p50/p99 line. An observer
//! subscribed to every event and ack (QoS 0) also times each event from
//! the moment the broker forwards it to the moment the broker forwards the
//! ack covering it: the aggregator's share of the latency (with the
//! broker's two hops), so that a tail can be placed on the kiosks' side or
//! the aggregator's, and counts the events over 10 ms there.
//!
//! `HUDDLE_BENCH_KIOSK_DIR=/dev/shm` puts the simulated kiosks' SQLite
//! files in that directory instead of beside the aggregator's. In a plant
//! every kiosk writes to its own SD card; here 500 of them would otherwise
//! share the aggregator's disk and its fsyncs.

#[path = "proc.rs"]
mod proc;
#[path = "../it/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, HashMap};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event as MqttEvent, MqttOptions, Packet, QoS};

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
    // `HUDDLE_BENCH_AGGREGATOR=path` times another build (A/B comparisons).
    let binary = std::env::var("HUDDLE_BENCH_AGGREGATOR").unwrap_or_else(|_| AGGREGATOR.into());
    // `HUDDLE_BENCH_AGGREGATOR_LOG=huddle_board::aggregator=debug` shows
    // its slow commits (over `ingest::SLOW_COMMIT`) on stderr.
    let aggregator_log =
        std::env::var("HUDDLE_BENCH_AGGREGATOR_LOG").unwrap_or_else(|_| "warn".into());
    let mut aggregator = Command::new(binary)
        .args(["--config", "config/aggregator.toml"])
        .env("HUDDLE_DATA_DIR", dir.path().join("agg"))
        .env("HUDDLE_MQTT_URL", broker.url())
        .env("RUST_LOG", aggregator_log)
        .spawn()
        .expect("start huddle-aggregator");
    std::thread::sleep(Duration::from_secs(1));
    let kiosk_dir = match std::env::var_os("HUDDLE_BENCH_KIOSK_DIR") {
        Some(d) => tempfile::tempdir_in(d)
            .expect("HUDDLE_BENCH_KIOSK_DIR: a directory to create the kiosks' files in"),
        None => tempfile::tempdir().unwrap(),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let observer = {
        let (port, stop) = (broker.port, stop.clone());
        std::thread::spawn(move || observe(port, &stop))
    };
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
        .arg(kiosk_dir.path())
        .env("HUDDLE_MQTT_URL", broker.url())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .output()
        .expect("run huddle-kiosk simulate");
    let threads = proc::thread_cpu(aggregator.id());
    let cpu = proc::cpu_seconds(aggregator.id()).unwrap_or(0.0);
    support::sigkill(&mut aggregator);
    stop.store(true, Ordering::Relaxed);
    let mut seen = observer.join().expect("the observer");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("latency"))
        .unwrap_or("no latency line");
    println!("{boards} boards at {rate} actions/s each: {line}");
    seen.sort_by(f64::total_cmp);
    if !seen.is_empty() {
        let q = |p: f64| seen[((seen.len() - 1) as f64 * p).round() as usize];
        println!(
            "the aggregator's share (event forwarded by the broker -> ack forwarded), {} events: \
             p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {} over 10 ms",
            seen.len(),
            q(0.5),
            q(0.99),
            q(1.0),
            seen.iter().filter(|&&ms| ms > 10.0).count()
        );
    }
    // The whole run: start, the huddles, and the wait for the last acks.
    let events = seen.len().max(1) as f64;
    println!(
        "aggregator CPU over the run: {cpu:.2} s, {:.0} µs per event ({})",
        cpu / events * 1e6,
        threads
            .iter()
            .filter(|(_, s)| *s >= 0.01)
            .map(|(name, s)| format!("{name} {:.0} µs", s / events * 1e6))
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert!(
        out.status.success(),
        "some boards were not fully acknowledged:\n{stderr}"
    );
}

/// Subscribes to every event and ack at QoS 0 until `stop`; returns, in ms,
/// for each event the time from its arrival here to the arrival of the
/// first ack covering it.
fn observe(port: u16, stop: &AtomicBool) -> Vec<f64> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut o = MqttOptions::new("bench-latency-observer", "127.0.0.1", port);
        o.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut ev) = AsyncClient::new(o, 100);
        huddle_board::mqtt::no_delay(&mut ev);
        for topic in ["huddle/v1/+/+/+/event/+", "huddle/v1/+/+/+/ack"] {
            client.subscribe(topic, QoS::AtMostOnce).await.unwrap();
        }
        // By (board, incarnation): an ack covers each incarnation apart.
        let mut pending: HashMap<(String, String), BTreeMap<u64, Instant>> = HashMap::new();
        let mut seen = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let Ok(Ok(e)) = tokio::time::timeout(Duration::from_millis(200), ev.poll()).await
            else {
                continue;
            };
            let MqttEvent::Incoming(Packet::Publish(p)) = e else {
                continue;
            };
            let now = Instant::now();
            let levels: Vec<&str> = p.topic.split('/').collect();
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&p.payload) else {
                continue;
            };
            let (Some(board), Some(seq)) = (levels.get(4), v["seq"].as_u64()) else {
                continue;
            };
            let key = |inc: &serde_json::Value| {
                (
                    (*board).to_owned(),
                    inc.as_str().unwrap_or_default().to_owned(),
                )
            };
            if levels.get(5) == Some(&"event") {
                let waiting = pending.entry(key(&v["incarnation"])).or_default();
                waiting.entry(seq).or_insert(now);
            } else if !p.retain {
                let legacy = [(key(&serde_json::Value::Null), seq)];
                let entries = v["incarnations"].as_array().into_iter().flatten();
                let acks =
                    entries.filter_map(|i| Some((key(&i["incarnation"]), i["seq"].as_u64()?)));
                for (key, seq) in legacy.into_iter().chain(acks) {
                    let Some(waiting) = pending.get_mut(&key) else {
                        continue;
                    };
                    let rest = waiting.split_off(&(seq + 1));
                    for at in std::mem::replace(waiting, rest).into_values() {
                        seen.push((now - at).as_secs_f64() * 1e3);
                    }
                }
            }
        }
        seen
    })
}
