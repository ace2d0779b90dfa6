//! Benchmark: a tap at a simulated kiosk → the board's change on the
//! dashboard's event stream (`/api/events`), at plant load.
//!
//! `cargo bench --bench dashboard -- [--boards N] [--every S] [--seconds T]`
//!
//! Starts a Mosquitto here (TCP_NODELAY, queue limits raised) and the
//! release `huddle-aggregator` with its dashboard on a free loopback port.
//! N boards (default 500) start a huddle, then each taps someone in every
//! S seconds (default 2: 250 taps/s over the site, staggered evenly) for T
//! seconds (default 30), published at QoS 1 on the board's event topic as
//! the kiosk's outbox does. One reader follows `/api/events` as a browser
//! does; a tap's latency is from just before its publish to the first
//! `change` whose board status holds its seq (`last_seq`). Prints p50,
//! p90, p99 and max over every tap after the first round, and the same
//! for an MQTT subscriber of the retained status topics in the same run
//! (the difference is what the web path adds).
//!
//! Written against the minimal board status, which publishes a board's
//! counter-only change (a tap) at most once a second per board: taps
//! closer together than that on one board wait for it, so `--every` below
//! 1 measures that throttle, not the dashboard. Whatever publishes a
//! board's status, a tap must change it (its `last_seq`).

#[path = "../it/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use huddle_board::wire::event::{
    AttendanceTapped, Envelope, Event, HuddleStarted, StartTrigger, TapVia,
};
use huddle_board::wire::topic::BoardTopics;
use rumqttc::{Client, MqttOptions, QoS};

const AGGREGATOR: &str = env!("CARGO_BIN_EXE_huddle-aggregator");
const TOKEN: &str = "bench-dashboard-token-0123456789";
const SITE: &str = "plant1";
const AREA: &str = "assembly";

fn board_name(i: usize) -> String {
    format!("b{i:04}")
}

fn main() {
    let (mut boards, mut every, mut seconds) = (500usize, 2.0f64, 30u64);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_default();
        match a.as_str() {
            "--boards" => boards = value().parse().expect("--boards N"),
            "--every" => every = value().parse().expect("--every S"),
            "--seconds" => seconds = value().parse().expect("--seconds T"),
            _ => {}
        }
    }
    let broker =
        support::Mosquitto::start_with("max_queued_messages 1000000\nmax_inflight_messages 1000\n");
    let dir = tempfile::tempdir().unwrap();
    let web = support::free_port();
    std::fs::write(
        dir.path().join("aggregator.toml"),
        format!(
            "[site]\nid = \"{SITE}\"\ntimezone = \"Europe/Berlin\"\nsite_key = \"demo-site-key-change-me\"\n\
             [web]\nlisten = \"127.0.0.1:{web}\"\ntoken = \"{TOKEN}\"\n"
        ),
    )
    .unwrap();
    let mut aggregator = std::process::Command::new(AGGREGATOR)
        .arg("--config")
        .arg(dir.path().join("aggregator.toml"))
        .env("HUDDLE_DATA_DIR", dir.path().join("data"))
        .env("HUDDLE_MQTT_URL", broker.url())
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("start huddle-aggregator");
    assert!(
        support::wait_port(web, Duration::from_secs(20)),
        "the dashboard did not listen"
    );

    // The kiosks: one connection carries every board's publications.
    let mut o = MqttOptions::new("bench-kiosks", "127.0.0.1", broker.port);
    o.set_keep_alive(Duration::from_secs(60));
    o.set_inflight(1000);
    let (client, mut connection) = Client::new(o, 10_000);
    std::thread::spawn(move || {
        for ev in connection.iter() {
            if let Err(e) = ev {
                eprintln!("kiosks: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    });
    let publish = |i: usize, seq: u64, event: &Event| {
        let name = board_name(i);
        let e = Envelope::new(&name, seq, Utc::now(), true, event);
        client
            .publish(
                BoardTopics::new(SITE, AREA, &name).event(&e.kind),
                QoS::AtLeastOnce,
                false,
                e.to_json().into_bytes(),
            )
            .expect("queue a publication");
    };
    for i in 0..boards {
        client
            .publish(
                BoardTopics::new(SITE, AREA, &board_name(i)).online(),
                QoS::AtLeastOnce,
                true,
                "true",
            )
            .unwrap();
        publish(
            i,
            1,
            &Event::HuddleStarted(HuddleStarted {
                huddle_id: format!("h{i}"),
                scheduled_at: None,
                slot: None,
                started_by: "p01".into(),
                trigger: StartTrigger::TeamLeader,
                target_minutes: 15,
                agenda: vec!["attendance".into(), "close".into()],
            }),
        );
    }
    wait_boards(web, boards);

    // Sent times by (board, seq); the reader matches them.
    let sent: Sent = Arc::default();
    let (lat_tx, lat_rx) = mpsc::channel::<(u64, Duration)>();
    // The same taps as an MQTT dashboard sees them (the retained status
    // topics), for comparison: what the web path adds.
    let sent_mqtt: Sent = Arc::default();
    let (mqtt_tx, mqtt_rx) = mpsc::channel::<(u64, Duration)>();
    {
        let sent = sent_mqtt.clone();
        let mut o = MqttOptions::new("bench-mqtt-dashboard", "127.0.0.1", broker.port);
        o.set_keep_alive(Duration::from_secs(60));
        let (sub, mut connection) = Client::new(o, 10_000);
        sub.subscribe(format!("huddle/v1/{SITE}/+/+/status"), QoS::AtMostOnce)
            .unwrap();
        std::thread::spawn(move || {
            let _keep = sub;
            for ev in connection.iter() {
                let Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) = ev else {
                    continue;
                };
                let now = Instant::now();
                let board = p.topic.rsplit('/').nth(1).unwrap_or("").to_owned();
                let last = serde_json::from_slice::<serde_json::Value>(&p.payload)
                    .ok()
                    .and_then(|v| v["last_seq"].as_u64());
                if let Some(last) = last {
                    if !matched(&sent, &board, last, now, &mqtt_tx) {
                        return;
                    }
                }
            }
        });
    }
    {
        let sent = sent.clone();
        let mut stream = TcpStream::connect(("127.0.0.1", web)).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
            .write_all(
                format!(
                    "GET /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
                )
                .as_bytes(),
            )
            .unwrap();
        std::thread::spawn(move || read_events(stream, sent, lat_tx));
    }

    let rounds = ((seconds as f64) / every).ceil() as u64;
    eprintln!(
        "{boards} boards, a tap each every {every} s ({:.0} taps/s) for {seconds} s…",
        boards as f64 / every
    );
    let start = Instant::now();
    let step = Duration::from_secs_f64(every / boards as f64);
    let mut n = 0u32;
    for round in 0..rounds {
        for i in 0..boards {
            let due = start + step * n;
            n += 1;
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let seq = round + 2;
            let now = Instant::now();
            sent.lock().unwrap().insert((i, seq), now);
            sent_mqtt.lock().unwrap().insert((i, seq), now);
            publish(
                i,
                seq,
                &Event::AttendanceTapped(AttendanceTapped {
                    huddle_id: format!("h{i}"),
                    person_id: format!("p{round:03}"),
                    via: TapVia::Badge,
                    late: false,
                }),
            );
        }
    }
    let taps = (rounds as usize) * boards;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut lat: Vec<Duration> = Vec::new();
    let mut first_round = 0;
    while lat.len() + first_round < taps && Instant::now() < deadline {
        if let Ok((seq, d)) = lat_rx.recv_timeout(Duration::from_millis(200)) {
            if seq == 2 {
                first_round += 1;
            } else {
                lat.push(d);
            }
        }
    }
    let mut mqtt: Vec<Duration> = Vec::new();
    while let Ok((seq, d)) = mqtt_rx.recv_timeout(Duration::from_millis(200)) {
        if seq != 2 {
            mqtt.push(d);
        }
    }
    let _ = aggregator.kill();
    let _ = aggregator.wait();
    let seen = lat.len() + first_round;
    assert!(
        seen == taps,
        "only {seen} of {taps} taps reached the event stream"
    );
    println!(
        "dashboard: tap → /api/events, {boards} boards, {:.0} taps/s: {} (target p99 ≤ 50 ms)",
        boards as f64 / every,
        figures(lat)
    );
    println!(
        "  same run, tap → the retained status topic at an MQTT subscriber: {}",
        figures(mqtt)
    );
}

fn figures(mut lat: Vec<Duration>) -> String {
    if lat.is_empty() {
        return "no sample".into();
    }
    lat.sort();
    let q = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "n={} p50={:.1} ms p90={:.1} ms p99={:.1} ms max={:.1} ms",
        lat.len(),
        ms(q(0.5)),
        ms(q(0.9)),
        ms(q(0.99)),
        ms(lat[lat.len() - 1]),
    )
}

type Sent = Arc<Mutex<HashMap<(usize, u64), Instant>>>;

/// Every tap of `board` up to `last` not matched yet gets its latency;
/// false when nobody listens any more.
fn matched(
    sent: &Sent,
    board: &str,
    last: u64,
    now: Instant,
    out: &mpsc::Sender<(u64, Duration)>,
) -> bool {
    let Some(i) = board
        .strip_prefix('b')
        .and_then(|n| n.parse::<usize>().ok())
    else {
        return true;
    };
    let mut sent = sent.lock().unwrap();
    for seq in 2..=last {
        if let Some(t) = sent.remove(&(i, seq)) {
            if out.send((seq, now.duration_since(t))).is_err() {
                return false;
            }
        }
    }
    true
}

/// Waits until `/api/state` shows every board.
fn wait_boards(web: u16, boards: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut s = TcpStream::connect(("127.0.0.1", web)).unwrap();
        s.write_all(
            format!("GET /api/state HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n").as_bytes(),
        )
        .unwrap();
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        let n = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| {
                v["boards"]
                    .as_object()
                    .map(|b| b.values().filter(|b| b["status"]["last_seq"] == 1).count())
            })
            .unwrap_or(0);
        if n == boards {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {n} of {boards} boards reached /api/state"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Follows the stream; for each board status change, every tap it covers
/// that was not matched yet gets its latency.
fn read_events(stream: TcpStream, sent: Sent, out: mpsc::Sender<(u64, Duration)>) {
    let mut reader = BufReader::new(stream);
    let mut data = String::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let now = Instant::now();
        if let Some(d) = line.strip_prefix("data: ") {
            data = d.trim_end().to_owned();
            continue;
        }
        if line != "\n" || data.is_empty() {
            continue;
        }
        let v: serde_json::Value = match serde_json::from_str(&std::mem::take(&mut data)) {
            Ok(v) => v,
            Err(_) => continue,
        };
        if v["slot"] != "board_status" {
            continue;
        }
        let (Some(board), Some(last)) = (v["board"].as_str(), v["payload"]["last_seq"].as_u64())
        else {
            continue;
        };
        if !matched(&sent, board, last, now, &out) {
            return;
        }
    }
}
