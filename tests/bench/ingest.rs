//! Benchmark: the aggregator's durable ingest from a pre-filled broker
//! queue, beside the rate at which a bare `mosquitto_sub` drains the same
//! queue (the broker's ceiling).
//!
//! `cargo bench --bench ingest -- [--boards N] [--events-per-board E]`
//!
//! A Mosquitto is started here on a free port with TCP_NODELAY and the
//! queue limits raised (as the shipped broker configuration does). For
//! each consumer, its persistent session is registered first, then
//! N x E valid envelopes are published while it is away, then it is
//! started and timed: `mosquitto_sub` until it has printed every message;
//! `huddle-aggregator` until every board's retained ack reaches E (every
//! event committed to SQLite with `synchronous=FULL` and acknowledged).

#[path = "load.rs"]
mod load;
#[path = "proc.rs"]
mod proc;
#[path = "../it/support/mod.rs"]
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event as MqttEvent, MqttOptions, Packet, QoS};

const AGGREGATOR: &str = env!("CARGO_BIN_EXE_huddle-aggregator");
const SITE: &str = "bench";

fn sub_args(port: u16) -> Vec<String> {
    let topic = format!("huddle/v1/{SITE}/+/+/event/+");
    [
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-i",
        "bench-sub",
        "-c",
        "-q",
        "1",
        "-t",
        &topic,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn main() {
    let mut boards = 500usize;
    let mut per_board = 400u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--boards" => {
                boards = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--boards N")
            }
            "--events-per-board" => {
                per_board = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--events-per-board E")
            }
            _ => {}
        }
    }
    let total = boards as u64 * per_board;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let broker = support::Mosquitto::start_with(
        "max_queued_messages 0\nmax_queued_bytes 0\nmax_inflight_messages 0\n",
    );
    let port = broker.port;
    let dir = tempfile::tempdir().unwrap();

    // The broker's ceiling: a bare persistent mosquitto_sub draining the queue.
    let sub = support::require("mosquitto_sub", "mosquitto-clients");
    let status = Command::new(&sub)
        .args(sub_args(port))
        .arg("-E")
        .status()
        .unwrap();
    assert!(
        status.success(),
        "mosquitto_sub could not register its session"
    );
    rt.block_on(load::publish(port, SITE, boards, per_board, None));
    let broker_cpu = || broker.pid().and_then(proc::cpu_seconds);
    let b0 = broker_cpu();
    let t = Instant::now();
    let status = Command::new(&sub)
        .args(sub_args(port))
        .args(["-C", &total.to_string()])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let bare = t.elapsed();
    let bare_broker = broker_cpu().zip(b0).map(|(a, b)| a - b);

    // The floor of any consumer on rumqttc (the customer's MQTT crate): a
    // persistent session with manual acks that PUBACKs every message and
    // does nothing else, in the aggregator's shape (the event loop hands
    // each message to a task that acks it). Timed on CPU too.
    rt.block_on(rumqttc_null(port, 0));
    rt.block_on(load::publish(port, SITE, boards, per_board, None));
    let cpu_before = proc::cpu_seconds(std::process::id());
    let b0 = broker_cpu();
    let t = Instant::now();
    rt.block_on(rumqttc_null(port, total));
    let null = t.elapsed();
    let null_broker = broker_cpu().zip(b0).map(|(a, b)| a - b);
    let null_cpu = proc::cpu_seconds(std::process::id())
        .zip(cpu_before)
        .map(|(a, b)| a - b);

    // The aggregator: register its session, stop it, fill, start, time.
    let config = dir.path().join("aggregator.toml");
    let text = include_str!("../../config/aggregator.toml")
        .replace("id = \"plant1\"", &format!("id = \"{SITE}\""));
    let text: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("file"))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&config, text).unwrap();
    // `HUDDLE_BENCH_AGGREGATOR=path` times another build (A/B comparisons).
    let binary = std::env::var("HUDDLE_BENCH_AGGREGATOR").unwrap_or_else(|_| AGGREGATOR.into());
    let start = || {
        Command::new(&binary)
            .args(["--config", config.to_str().unwrap()])
            .env("HUDDLE_DATA_DIR", dir.path().join("agg"))
            .env("HUDDLE_MQTT_URL", format!("mqtt://127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap()
    };
    let mut agg = start();
    std::thread::sleep(Duration::from_secs(2));
    support::sigkill(&mut agg);
    rt.block_on(load::publish(port, SITE, boards, per_board, None));
    let b0 = broker_cpu();
    let t = Instant::now();
    let mut agg = start();
    let done = rt.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(600),
            load::wait_acks(port, SITE.to_owned(), boards, per_board),
        )
        .await
    });
    let done = done.expect("the aggregator did not ack everything within 10 minutes");
    let (done, ack_publications) = done;
    let ingest = done - t;
    let cpu = proc::cpu_seconds(agg.id());
    let threads = proc::thread_cpu(agg.id());
    let agg_broker = broker_cpu().zip(b0).map(|(a, b)| a - b);
    support::sigkill(&mut agg);

    let rate = |d: Duration| total as f64 / d.as_secs_f64();
    println!("events: {total} from {boards} boards");
    println!(
        "bare mosquitto_sub (broker ceiling)   {:>9.0} events/s  ({:.2} s)",
        rate(bare),
        bare.as_secs_f64()
    );
    println!(
        "rumqttc, PUBACK only (no work)        {:>9.0} events/s  ({:.2} s, {:.2} of the ceiling)",
        rate(null),
        null.as_secs_f64(),
        rate(null) / rate(bare)
    );
    if let Some(cpu) = null_cpu {
        println!(
            "rumqttc-only consumer CPU             {:>9.1} µs/event  ({cpu:.2} s)",
            cpu * 1e6 / total as f64
        );
    }
    println!(
        "huddle-aggregator, durable + acked    {:>9.0} events/s  ({:.2} s)",
        rate(ingest),
        ingest.as_secs_f64()
    );
    println!(
        "ratio to the ceiling                  {:>9.2}",
        rate(ingest) / rate(bare)
    );
    if let Some(cpu) = cpu {
        println!(
            "aggregator CPU (user + system)        {:>9.1} µs/event  ({cpu:.2} s)",
            cpu * 1e6 / total as f64
        );
    }
    println!(
        "ack publications seen by a subscriber  {:>9.2} per event ({ack_publications})",
        ack_publications as f64 / total as f64
    );
    for (name, cpu) in threads {
        println!(
            "  aggregator thread {name:<18} {:>9.1} µs/event  ({cpu:.2} s)",
            cpu * 1e6 / total as f64
        );
    }
    // The broker shares the machine: what each consumer costs it.
    for (who, cpu) in [
        ("mosquitto_sub", bare_broker),
        ("rumqttc-only", null_broker),
        ("huddle-aggregator", agg_broker),
    ] {
        if let Some(cpu) = cpu {
            println!(
                "broker CPU while {who:<18}   {:>9.1} µs/event  ({cpu:.2} s)",
                cpu * 1e6 / total as f64
            );
        }
    }
}

/// A consumer on rumqttc that PUBACKs `count` messages and nothing else
/// (with `count` 0: registers its persistent session and leaves).
async fn rumqttc_null(port: u16, count: u64) {
    let mut o = MqttOptions::new("bench-rumqttc-null", "127.0.0.1", port);
    o.set_clean_session(false);
    o.set_manual_acks(true);
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut ev) = AsyncClient::new(o, 1024);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<rumqttc::Publish>();
    let acker = client.clone();
    let acks = tokio::spawn(async move {
        while let Some(p) = rx.recv().await {
            acker.ack(&p).await.expect("queue a PUBACK");
        }
    });
    let mut seen = 0u64;
    loop {
        match ev.poll().await.expect("the null consumer's connection") {
            MqttEvent::Incoming(Packet::ConnAck(a)) if !a.session_present => {
                client
                    .subscribe(format!("huddle/v1/{SITE}/+/+/event/+"), QoS::AtLeastOnce)
                    .await
                    .expect("subscribe");
            }
            MqttEvent::Incoming(Packet::SubAck(_)) if count == 0 => break,
            MqttEvent::Incoming(Packet::Publish(p)) => {
                tx.send(p).expect("the ack task");
                seen += 1;
                if seen == count {
                    break;
                }
            }
            _ => {}
        }
    }
    drop(tx);
    // The acks leave only while the event loop is polled.
    let mut acks = acks;
    loop {
        tokio::select! {
            r = &mut acks => {
                r.expect("the ack task");
                break;
            }
            e = ev.poll() => {
                e.expect("the null consumer's connection");
            }
        }
    }
    // The last PUBACKs leave before the disconnect.
    client.disconnect().await.expect("disconnect");
    while !matches!(
        ev.poll().await,
        Err(_) | Ok(MqttEvent::Outgoing(rumqttc::Outgoing::Disconnect))
    ) {}
}
