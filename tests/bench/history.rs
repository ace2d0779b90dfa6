//! Benchmark: what the aggregator costs as its history grows.
//!
//! `cargo bench --no-default-features --bench history -- [--sizes
//! 500x30,500x90,500x365] [--seed S] [--bin PATH]... [--keep DIR]
//! [--client-nagle]` (without
//! `--no-default-features` it builds the kiosk's Slint too, unused here).
//! tests/README.md ("History") has the figures and what they found.
//!
//! For each size (boards × days) it writes a history with `huddle-aggregator
//! generate` (release build) into a new folder (or reuses `DIR/BxD` with
//! `--keep`), then measures, with a Mosquitto started here:
//! - the file: bytes per event, per year at that rate, and the free pages
//!   (`PRAGMA freelist_count`: reclaimable by `VACUUM`);
//! - `export --what events --format csv`: rows per second and the
//!   process's peak RSS (`wait4`), reading its output as it comes;
//! - cold start → first ack: from spawning the aggregator to the retained
//!   ack of a new event of one board (published again every 20 ms until
//!   acknowledged: the aggregator's subscription comes some time after its
//!   start); the page cache is warm (the file was just written or read);
//! - the live status's rebuild at start and the coaching computation, at
//!   start (beside the status rebuild) and later (every 4 s here: the
//!   median), from the aggregator's own `elapsed_ms` log lines;
//! - a board's status after an event: 200 events, one at a time, each on
//!   another board, from just before the publish to the retained status
//!   that holds its seq (p50, p99, max);
//! - `/api/state`: 200 requests one after the other (p50, p99), and its
//!   size;
//! - RSS after all that (`VmRSS`, of which anonymous `RssAnon`: the
//!   rest is the site file's pages mapped by SQLite's mmap).
//!
//! The bench's own MQTT client turns Nagle's algorithm off, as the
//! product's clients do (`mqtt::no_delay`): with it on, each event's
//! PUBLISH, written right after the PUBACK of the last status received,
//! waited for the broker's delayed ACK, and that 34 ms was measured as
//! the aggregator's status latency. `--client-nagle` measures that way
//! again.
//!
//! With `--load N`, after the status measurement it publishes N more
//! events round the boards (`need.closed`, QoS 1, as fast as the broker
//! takes them) and waits for every board's ack: a compressed hour of
//! plant load (the rate and the RSS after it are reported).
//!
//! With `--bin PATH` (repeatable) each binary is measured on the same
//! histories in the same run, one after the other (an A/B); the default
//! is this build's. Timings are wall time on whatever else the machine
//! runs: say which cores were shared when quoting them.

#[path = "../it/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use chrono::Utc;
use huddle_board::wire::event::{Envelope, Event, NeedRef};
use huddle_board::wire::payload::{Ack, BoardLive};
use huddle_board::wire::topic::BoardTopics;
use rumqttc::{Client, MqttOptions, QoS};

const AGGREGATOR: &str = env!("CARGO_BIN_EXE_huddle-aggregator");
const SITE: &str = "plant1";
const TOKEN: &str = "bench-dashboard-token-0123456789";
const UNTIL: &str = "2026-12-04T15:00:00Z";

/// One column of the table: a size and a binary.
#[derive(Default)]
struct Column {
    name: String,
    figures: BTreeMap<&'static str, String>,
}

fn main() {
    let mut sizes = vec![(500usize, 30u32), (500, 90), (500, 365)];
    let mut bins: Vec<PathBuf> = Vec::new();
    let mut keep: Option<PathBuf> = None;
    let mut seed = 1u64;
    let mut nagle = false;
    let mut load = 0usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_default();
        match a.as_str() {
            "--sizes" => {
                sizes = value()
                    .split(',')
                    .map(|s| {
                        let (b, d) = s.split_once('x').expect("--sizes BxD,BxD");
                        (b.parse().expect("boards"), d.parse().expect("days"))
                    })
                    .collect()
            }
            "--bin" => bins.push(PathBuf::from(value())),
            "--keep" => keep = Some(PathBuf::from(value())),
            "--seed" => seed = value().parse().expect("--seed S"),
            "--client-nagle" => nagle = true,
            "--load" => load = value().parse().expect("--load EVENTS"),
            _ => {}
        }
    }
    if bins.is_empty() {
        bins.push(PathBuf::from(AGGREGATOR));
    }
    let broker =
        support::Mosquitto::start_with("max_queued_messages 100000\nmax_inflight_messages 1000\n");
    let mut columns = Vec::new();
    for (boards, days) in sizes {
        let tmp = tempfile::tempdir().unwrap();
        let dir = match &keep {
            Some(k) => k.join(format!("{boards}x{days}")),
            None => tmp.path().to_owned(),
        };
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let mut generated = BTreeMap::new();
        write_config(&dir, "");
        if !dir.join("data/roster.csv").exists() {
            generated = generate(&bins[0], &dir, boards, days, seed);
        }
        let file = file_figures(&dir, days);
        for bin in &bins {
            let mut c = Column {
                name: format!(
                    "{boards}x{days}{}",
                    if bins.len() > 1 {
                        format!(" {}", bin.display())
                    } else {
                        String::new()
                    }
                ),
                ..Column::default()
            };
            c.figures.extend(generated.clone());
            c.figures.extend(file.clone());
            write_config(&dir, "");
            c.figures.extend(export(bin, &dir));
            c.figures.extend(run(bin, &dir, &broker, nagle, load));
            print_table(std::slice::from_ref(&c));
            columns.push(c);
        }
    }
    println!("\nhistory: every figure against history size ({UNTIL} back; seed {seed})");
    print_table(&columns);
}

fn write_config(dir: &Path, extra: &str) {
    std::fs::write(
        dir.join("aggregator.toml"),
        format!(
            "[site]\nid = \"{SITE}\"\ntimezone = \"Europe/Berlin\"\nsite_key = \"demo-site-key-change-me\"\n{extra}"
        ),
    )
    .unwrap();
}

fn command(bin: &Path, dir: &Path) -> Command {
    let mut c = Command::new(bin);
    c.arg("--config")
        .arg(dir.join("aggregator.toml"))
        .env("HUDDLE_DATA_DIR", dir.join("data"));
    c
}

fn generate(
    bin: &Path,
    dir: &Path,
    boards: usize,
    days: u32,
    seed: u64,
) -> BTreeMap<&'static str, String> {
    let t0 = Instant::now();
    let out = command(bin, dir)
        .args(["generate", "--boards", &boards.to_string()])
        .args(["--days", &days.to_string(), "--seed", &seed.to_string()])
        .args(["--until", UNTIL])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "generate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{}", line.trim());
    let events: f64 = line
        .split(": ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    let secs = t0.elapsed().as_secs_f64();
    BTreeMap::from([
        ("generate: events", format!("{events:.0}")),
        (
            "generate: events/s",
            format!("{:.0}", events / secs.max(1e-9)),
        ),
    ])
}

fn db_path(dir: &Path) -> PathBuf {
    dir.join(format!("data/aggregator-{SITE}.db"))
}

fn file_figures(dir: &Path, days: u32) -> BTreeMap<&'static str, String> {
    let db = db_path(dir);
    let conn =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let q = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
    let events = q("SELECT value FROM counters WHERE name = 'stored'") as f64;
    let (pages, free, page) = (
        q("PRAGMA page_count"),
        q("PRAGMA freelist_count"),
        q("PRAGMA page_size"),
    );
    let size = std::fs::metadata(&db).unwrap().len() as f64;
    BTreeMap::from([
        ("db: MB", format!("{:.0}", size / 1e6)),
        ("db: bytes/event", format!("{:.0}", size / events.max(1.0))),
        (
            "db: GB/year at this rate",
            format!("{:.2}", size / f64::from(days) * 365.0 / 1e9),
        ),
        (
            "db: reclaimable MB",
            format!("{:.1}", (free * page) as f64 / 1e6),
        ),
        ("db: pages", pages.to_string()),
    ])
}

/// Peak RSS (kB) and exit of a child, by `wait4`.
fn wait_rss(child: &mut std::process::Child) -> (i64, bool) {
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills; the pid is our child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as i32;
    // SAFETY: as above.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    (
        usage.ru_maxrss,
        r == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
    )
}

fn export(bin: &Path, dir: &Path) -> BTreeMap<&'static str, String> {
    let t0 = Instant::now();
    let mut child = command(bin, dir)
        .args(["export", "--what", "events", "--format", "csv"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut buf = vec![0u8; 1 << 16];
    let mut lines = 0u64;
    loop {
        let n = out.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
    }
    let (rss, ok) = wait_rss(&mut child);
    assert!(ok, "export failed");
    let secs = t0.elapsed().as_secs_f64();
    BTreeMap::from([
        (
            "export csv: rows/s",
            format!("{:.0}", (lines - 1) as f64 / secs),
        ),
        (
            "export csv: peak RSS MB",
            format!("{:.0}", rss as f64 / 1e3),
        ),
    ])
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// Each board's area, current incarnation and ack, from the file.
fn boards(dir: &Path) -> Vec<(String, String, String, u64)> {
    let conn = rusqlite::Connection::open_with_flags(
        db_path(dir),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut stmt = conn
        .prepare("SELECT board, area, current, acked FROM boards ORDER BY board")
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, i64>(3)? as u64))
        })
        .unwrap();
    rows.collect::<Result<_, _>>().unwrap()
}

fn event(board: &str, incarnation: &str, seq: u64) -> Envelope {
    Envelope::new(
        board,
        seq,
        Utc::now(),
        true,
        &Event::NeedClosed(NeedRef {
            need_id: format!("bench-{seq}"),
            by: None,
        }),
    )
    .in_incarnation(incarnation, 1)
}

fn api_state(port: u16) -> usize {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET /api/state HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = Vec::new();
    s.read_to_end(&mut body).unwrap();
    assert!(body.starts_with(b"HTTP/1.1 200"), "/api/state");
    body.len()
}

/// A log line's `elapsed_ms=` figures (colours taken out).
fn logged_ms(log: &str, message: &str) -> Vec<f64> {
    let mut plain = String::with_capacity(log.len());
    let mut escape = false;
    for c in log.chars() {
        match (escape, c) {
            (false, '\x1b') => escape = true,
            (true, 'm') => escape = false,
            (true, _) => {}
            (false, c) => plain.push(c),
        }
    }
    plain
        .lines()
        .filter(|l| l.contains(message))
        .filter_map(|l| l.split("elapsed_ms=").nth(1))
        .filter_map(|s| s.split_whitespace().next())
        .filter_map(|s| s.parse().ok())
        .collect()
}

fn run(
    bin: &Path,
    dir: &Path,
    broker: &support::Mosquitto,
    nagle: bool,
    load: usize,
) -> BTreeMap<&'static str, String> {
    let web = support::free_port();
    write_config(
        dir,
        &format!(
            "[roster]\nfile = \"{}\"\n[web]\nlisten = \"127.0.0.1:{web}\"\ntoken = \"{TOKEN}\"\n\
             [coaching]\nrecompute_s = 4\n",
            dir.join("data/roster.csv").display()
        ),
    );
    let mut boards = boards(dir);
    let mut o = MqttOptions::new(
        format!("bench-history-{}", support::free_port()),
        "127.0.0.1",
        broker.port,
    );
    o.set_max_packet_size(1 << 24, 1 << 24);
    let (client, mut connection) = Client::new(o, 10_000);
    if !nagle {
        huddle_board::mqtt::no_delay(&mut connection.eventloop);
    }
    client
        .subscribe(format!("huddle/v1/{SITE}/+/+/ack"), QoS::AtLeastOnce)
        .unwrap();
    client
        .subscribe(format!("huddle/v1/{SITE}/+/+/status"), QoS::AtLeastOnce)
        .unwrap();
    let (tx, rx) = mpsc::channel::<(Instant, String, Vec<u8>)>();
    std::thread::spawn(move || {
        for ev in connection.iter() {
            if let Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) = ev {
                if tx
                    .send((Instant::now(), p.topic.clone(), p.payload.to_vec()))
                    .is_err()
                {
                    return;
                }
            }
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    while rx.try_recv().is_ok() {}

    let log = dir.join(format!("aggregator-{}.log", support::free_port()));
    let t0 = Instant::now();
    let mut child = command(bin, dir)
        .env("HUDDLE_MQTT_URL", broker.url())
        .env(
            "RUST_LOG",
            "info,huddle_board::aggregator::coaching::shell=debug",
        )
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // Cold start -> first ack.
    let (board, area, incarnation, acked) = boards[0].clone();
    let topics = BoardTopics::new(SITE, &area, &board);
    let first = event(&board, &incarnation, acked + 1);
    let cold = 'cold: loop {
        client
            .publish(
                topics.event(&first.kind),
                QoS::AtLeastOnce,
                false,
                first.to_json(),
            )
            .unwrap();
        let until = Instant::now() + Duration::from_millis(20);
        while let Ok((at, topic, payload)) = rx.recv_timeout(until - Instant::now().min(until)) {
            if topic == topics.ack() {
                if let Ok(a) = serde_json::from_slice::<Ack>(&payload) {
                    if a.incarnation(&incarnation).is_some_and(|i| i.seq > acked) {
                        break 'cold at - t0;
                    }
                }
            }
            if Instant::now() >= until {
                break;
            }
        }
        assert!(t0.elapsed() < Duration::from_secs(600), "no first ack");
        assert!(child.try_wait().unwrap().is_none(), "the aggregator exited");
    };
    boards[0].3 += 1;
    let anon_at_ack = anon_mb(child.id());
    // The statuses retained at start arrive first; let them pass.
    support::wait_port(web, Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(2));
    while rx.try_recv().is_ok() {}
    // A board's status after an event.
    let mut status_ms = Vec::new();
    for i in 0..200 {
        let n = (1 + i % (boards.len() - 1).max(1)).min(boards.len() - 1);
        let (board, area, incarnation, acked) = &mut boards[n];
        *acked += 1;
        let e = event(board, incarnation, *acked);
        let topics = BoardTopics::new(SITE, area, board);
        let sent = Instant::now();
        client
            .publish(topics.event(&e.kind), QoS::AtLeastOnce, false, e.to_json())
            .unwrap();
        let deadline = sent + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (at, topic, payload) = rx.recv_timeout(left).expect("a status after an event");
            if topic == topics.status() {
                if let Ok(s) = serde_json::from_slice::<BoardLive>(&payload) {
                    if s.last_seq >= *acked {
                        status_ms.push((at - sent).as_secs_f64() * 1000.0);
                        break;
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // A compressed hour of plant load: `load` events round the boards, as
    // fast as the broker takes them, until every board's ack holds them.
    let load_s = (load > 0).then(|| {
        let t = Instant::now();
        let mut waiting: BTreeMap<String, (String, u64)> = BTreeMap::new();
        let n = boards.len();
        for i in 0..load {
            let (board, area, incarnation, acked) = &mut boards[i % n];
            *acked += 1;
            let e = event(board, incarnation, *acked);
            let topics = BoardTopics::new(SITE, area, board);
            client
                .publish(topics.event(&e.kind), QoS::AtLeastOnce, false, e.to_json())
                .unwrap();
            waiting.insert(topics.ack(), (incarnation.clone(), *acked));
        }
        while !waiting.is_empty() {
            let left = Duration::from_secs(600).saturating_sub(t.elapsed());
            let (_, topic, payload) = rx.recv_timeout(left).expect("every ack of the load");
            if let (Some((incarnation, seq)), Ok(a)) =
                (waiting.get(&topic), serde_json::from_slice::<Ack>(&payload))
            {
                if a.incarnation(incarnation).is_some_and(|i| i.seq >= *seq) {
                    waiting.remove(&topic);
                }
            }
        }
        t.elapsed().as_secs_f64()
    });
    let anon_after_load = anon_mb(child.id());
    // /api/state.
    let mut state_ms = Vec::new();
    let mut bytes = 0;
    for _ in 0..200 {
        let t = Instant::now();
        bytes = api_state(web);
        state_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let pid = child.id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let (rss, anon, hwm) = (kb("VmRSS:"), kb("RssAnon:"), kb("VmHWM:"));
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let rebuilt = logged_ms(&text, "live status rebuilt");
    let mut coaching = logged_ms(&text, "coaching figures computed");
    let fmt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1}"));
    BTreeMap::from([
        (
            "cold start -> first ack: ms",
            format!("{:.0}", cold.as_secs_f64() * 1000.0),
        ),
        ("status rebuild at start: ms", fmt(rebuilt.first().copied())),
        (
            "coaching computation at start: ms",
            fmt(coaching.first().copied()),
        ),
        (
            "coaching computation later: ms (median)",
            fmt((coaching.len() > 1).then(|| percentile(&mut coaching[1..], 0.5))),
        ),
        (
            "status after event: p50 ms",
            format!("{:.1}", percentile(&mut status_ms, 0.5)),
        ),
        (
            "status after event: p99 ms",
            format!("{:.1}", percentile(&mut status_ms, 0.99)),
        ),
        (
            "/api/state: p50 ms",
            format!("{:.2}", percentile(&mut state_ms, 0.5)),
        ),
        (
            "/api/state: p99 ms",
            format!("{:.2}", percentile(&mut state_ms, 0.99)),
        ),
        ("/api/state: kB", format!("{:.0}", bytes as f64 / 1e3)),
        ("RSS anon at the first ack: MB", format!("{anon_at_ack:.0}")),
        (
            "RSS after the runs: MB (anon)",
            format!("{:.0} ({:.0})", rss / 1e3, anon / 1e3),
        ),
        ("RSS peak: MB", format!("{:.0}", hwm / 1e3)),
        ("load: events", load.to_string()),
        ("load: events/s", fmt(load_s.map(|s| load as f64 / s))),
        (
            "RSS anon after the load: MB",
            format!("{anon_after_load:.0}"),
        ),
    ])
}

/// A process's anonymous resident memory (`RssAnon`), MB.
fn anon_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("RssAnon:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1e3
}

fn print_table(columns: &[Column]) {
    let mut keys: Vec<&'static str> = Vec::new();
    for c in columns {
        for k in c.figures.keys() {
            if !keys.contains(k) {
                keys.push(k);
            }
        }
    }
    print!("| figure |");
    for c in columns {
        print!(" {} |", c.name);
    }
    println!();
    print!("|---|");
    for _ in columns {
        print!("---:|");
    }
    println!();
    for k in keys {
        print!("| {k} |");
        for c in columns {
            print!(" {} |", c.figures.get(k).map_or("-", String::as_str));
        }
        println!();
    }
}
