//! Benchmark: huddle-aggregator beside the baseline a plant engineer would
//! build instead, a Node-RED flow, in one run on the same Mosquitto.
//!
//! `cargo bench --bench baseline -- [--boards N] [--events-per-board E]
//!  [--nodered-events-per-board E] [--latency-boards N] [--rate R] [--kill-boards N] [--kill-events-per-board E]
//!  [--only ingest|latency|kill]`
//!
//! The flow (`tests/bench/nodered/flows.json`): `mqtt in` (QoS 1, clean
//! session off, fixed client id) → a function that validates the envelope
//! with the aggregator's rules → a function that inserts into SQLite
//! (better-sqlite3, WAL, `synchronous=FULL`, insert-or-ignore on
//! (board, seq)) and keeps each board's contiguous seq → `mqtt out` of the
//! retained `.../ack` in the aggregator's format. Node-RED and
//! better-sqlite3 are installed here with `npm ci` from the committed lock
//! file into `<target>/nodered` (once; again when the lock file changes).
//!
//! Three comparisons, each consumer on the same broker with the same
//! configuration (TCP_NODELAY, queue limits off); the broker is restarted
//! (no persistence) before each measurement so that no session, queue or
//! retained ack of one consumer is in the way of the next:
//!
//! 1. Durable ingest from a pre-filled queue, as `--bench ingest` does:
//!    register the persistent session, stop the consumer, publish N x E
//!    events, start it and time until every board's retained ack reaches E.
//!    A bare `mosquitto_sub` draining the same queue gives the ceiling.
//!    Node-RED gets a smaller queue from the same boards (default 40 events
//!    each, not 400: at one commit per event it would take many minutes);
//!    beside it, the rate of one-row SQLite commits on this disk in the
//!    same run (WAL, `synchronous=FULL`), the ceiling of any consumer that
//!    commits event by event.
//! 2. Tap → ack latency at plant load: `huddle-kiosk simulate --latency`
//!    with the consumer acking.
//! 3. The kill: the consumer runs, a burst of events is published, the
//!    consumer gets SIGKILL when half of the burst is in the broker, is
//!    restarted after the burst, and once its store stops growing the
//!    events in its SQLite file are counted against the events published.

#[path = "load.rs"]
mod load;
#[path = "../it/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event as MqttEvent, MqttOptions, Packet, QoS};

const AGGREGATOR: &str = env!("CARGO_BIN_EXE_huddle-aggregator");
const KIOSK: &str = env!("CARGO_BIN_EXE_huddle-kiosk");
/// The broker's configuration for every measurement (as `--bench ingest`).
const BROKER_CONF: &str = "max_queued_messages 0\nmax_queued_bytes 0\nmax_inflight_messages 0\n";

/// What the benchmark was asked to do.
struct Options {
    boards: usize,
    per_board: u64,
    nodered_per_board: u64,
    latency_boards: usize,
    rate: f64,
    kill_boards: usize,
    kill_per_board: u64,
    only: Option<String>,
}

fn parse_options() -> Options {
    let mut o = Options {
        boards: 500,
        per_board: 400,
        nodered_per_board: 40,
        latency_boards: 500,
        rate: 1.0,
        kill_boards: 100,
        kill_per_board: 500,
        only: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| panic!("{name} needs a value"))
        };
        let number = |name: &str, v: String| -> u64 {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}: `{v}` is not a whole number"))
        };
        match a.as_str() {
            "--boards" => o.boards = number("--boards", value("--boards")) as usize,
            "--events-per-board" => {
                o.per_board = number("--events-per-board", value("--events-per-board"))
            }
            "--nodered-events-per-board" => {
                o.nodered_per_board = number(
                    "--nodered-events-per-board",
                    value("--nodered-events-per-board"),
                )
            }
            "--latency-boards" => {
                o.latency_boards = number("--latency-boards", value("--latency-boards")) as usize
            }
            "--rate" => {
                let v = value("--rate");
                o.rate = v
                    .parse()
                    .unwrap_or_else(|_| panic!("--rate: `{v}` is not a number"))
            }
            "--kill-boards" => {
                o.kill_boards = number("--kill-boards", value("--kill-boards")) as usize
            }
            "--kill-events-per-board" => {
                o.kill_per_board =
                    number("--kill-events-per-board", value("--kill-events-per-board"))
            }
            "--only" => o.only = Some(value("--only")),
            _ => {} // cargo bench passes --bench
        }
    }
    o
}

// ---------------------------------------------------------------- Node-RED

/// The Cargo target directory: this binary is `<target>/release/deps/baseline-…`.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the benchmark's own path");
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .expect("the benchmark runs from <target>/release/deps")
}

/// Where the flow's files are committed.
fn flow_sources() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bench/nodered")
}

const INSTALL_HELP: &str = "the Node-RED baseline needs Node.js 20 with npm and a C++ toolchain \
     to build better-sqlite3 (`apt-get install -y nodejs npm build-essential python3`), and the npm registry";

/// Installs Node-RED and better-sqlite3 into `<target>/nodered` with
/// `npm ci` from the committed lock file (skipped when that lock file is
/// already installed), and copies the flow and the settings next to them.
fn install_nodered() -> PathBuf {
    let node = support::require("node", "nodejs");
    support::require("npm", "npm");
    let version = Command::new(&node)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}; {INSTALL_HELP}", node.display()));
    let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    assert!(
        (20..22).contains(&major),
        "node {version} found; {INSTALL_HELP} (the lock file pins Node-RED 4, which is for Node 20)"
    );
    let src = flow_sources();
    let dir = target_dir().join("nodered");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let lock = std::fs::read(src.join("package-lock.json"))
        .expect("tests/bench/nodered/package-lock.json");
    let stamp = dir.join("installed-package-lock.json");
    let binding = dir.join("node_modules/better-sqlite3/build/Release/better_sqlite3.node");
    let installed = std::fs::read(&stamp).is_ok_and(|s| s == lock)
        && dir.join("node_modules/node-red/red.js").exists()
        && binding.exists();
    if !installed {
        let _ = std::fs::remove_file(&stamp);
        for f in ["package.json", "package-lock.json"] {
            std::fs::copy(src.join(f), dir.join(f)).unwrap_or_else(|e| panic!("copy {f}: {e}"));
        }
        eprintln!("installing Node-RED into {} (npm ci)…", dir.display());
        let mut npm = Command::new("npm");
        npm.args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir);
        // Debian's nodejs ships its headers: node-gyp then needs no download.
        if Path::new("/usr/include/node/node.h").exists() {
            npm.env("npm_config_nodedir", "/usr");
        }
        let status = npm
            .status()
            .unwrap_or_else(|e| panic!("npm: {e}; {INSTALL_HELP}"));
        assert!(
            status.success() && binding.exists(),
            "`npm ci` in {} failed ({status}); {INSTALL_HELP}",
            dir.display()
        );
        std::fs::write(&stamp, &lock).unwrap();
    }
    let check = Command::new(&node)
        .args(["-e", "require('better-sqlite3')(':memory:').close()"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "better-sqlite3 does not load in {}: {}; remove that directory and run again; {INSTALL_HELP}",
        dir.display(),
        String::from_utf8_lossy(&check.stderr)
    );
    for f in ["settings.js", "flows.json"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap_or_else(|e| panic!("copy {f}: {e}"));
    }
    dir
}

// ---------------------------------------------------------------- consumers

/// One of the two consumers under test.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Aggregator,
    NodeRed,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Aggregator => "huddle-aggregator",
            Kind::NodeRed => "Node-RED flow",
        }
    }
}

/// A consumer for one measurement: its files live in `dir`.
struct Consumer {
    kind: Kind,
    site: String,
    dir: PathBuf,
    nodered: PathBuf,
    port: u16,
}

impl Consumer {
    fn new(kind: Kind, site: &str, dir: &Path, nodered: &Path, port: u16) -> Consumer {
        let dir = dir.join(format!("{}-{site}", kind.name().replace(' ', "-")));
        std::fs::create_dir_all(&dir).unwrap();
        if kind == Kind::Aggregator {
            // The shipped configuration, with this site and no roster file.
            let text = include_str!("../../config/aggregator.toml")
                .replace("id = \"plant1\"", &format!("id = \"{site}\""));
            let text: Vec<&str> = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("file"))
                .collect();
            std::fs::write(dir.join("aggregator.toml"), text.join("\n")).unwrap();
        }
        Consumer {
            kind,
            site: site.to_string(),
            dir,
            nodered: nodered.to_path_buf(),
            port,
        }
    }

    /// The SQLite file the consumer stores events in.
    fn db(&self) -> PathBuf {
        match self.kind {
            Kind::Aggregator => self.dir.join(format!("data/aggregator-{}.db", self.site)),
            Kind::NodeRed => self.dir.join("nodered.db"),
        }
    }

    fn log(&self) -> PathBuf {
        self.dir.join("consumer.log")
    }

    /// Starts the process (not waiting for it to connect).
    fn spawn(&self) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .unwrap();
        let err = log.try_clone().unwrap();
        match self.kind {
            Kind::Aggregator => Command::new(AGGREGATOR)
                .arg("--config")
                .arg(self.dir.join("aggregator.toml"))
                .env("HUDDLE_DATA_DIR", self.dir.join("data"))
                .env("HUDDLE_MQTT_URL", format!("mqtt://127.0.0.1:{}", self.port))
                .env("RUST_LOG", "warn")
                .stdout(log)
                .stderr(err)
                .spawn()
                .expect("start huddle-aggregator"),
            Kind::NodeRed => {
                let user_dir = self.dir.join("userdir");
                std::fs::create_dir_all(&user_dir).unwrap();
                Command::new("node")
                    .arg(self.nodered.join("node_modules/node-red/red.js"))
                    .arg("--settings")
                    .arg(self.nodered.join("settings.js"))
                    .arg("--userDir")
                    .arg(&user_dir)
                    .arg(self.nodered.join("flows.json"))
                    .env("MQTT_PORT", self.port.to_string())
                    .env("HUDDLE_NR_DB", self.db())
                    .env("NR_PORT", support::free_port().to_string())
                    .stdout(log)
                    .stderr(err)
                    .spawn()
                    .expect("start Node-RED")
            }
        }
    }

    /// Starts the process and waits until it has subscribed.
    fn start(&self) -> Child {
        let log_len = std::fs::metadata(self.log()).map(|m| m.len()).unwrap_or(0) as usize;
        let child = self.spawn();
        match self.kind {
            // The aggregator logs nothing at warn when all is well (as in --bench ingest).
            Kind::Aggregator => std::thread::sleep(Duration::from_secs(2)),
            Kind::NodeRed => {
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    let text = std::fs::read(self.log()).unwrap_or_default();
                    let new = String::from_utf8_lossy(text.get(log_len..).unwrap_or_default());
                    if new.contains("Connected to broker") {
                        break;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "Node-RED did not connect within 60 s; its log {}:\n{new}",
                        self.log().display()
                    );
                    std::thread::sleep(Duration::from_millis(100));
                }
                // The subscription follows the connection.
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        child
    }

    /// Events stored in its SQLite file (0 before the file exists).
    fn stored(&self) -> u64 {
        let path = self.db();
        if !path.exists() {
            return 0;
        }
        let count = || -> rusqlite::Result<i64> {
            let db = rusqlite::Connection::open_with_flags(
                &path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )?;
            db.busy_timeout(Duration::from_secs(5))?;
            db.query_row("SELECT COUNT(*) FROM events", [], |r| r.get::<_, i64>(0))
        };
        count().map_or(0, |n| n.max(0) as u64)
    }
}

// ---------------------------------------------------------------- MQTT helpers

/// Retained acks of `site` as the broker holds them now: board → seq.
async fn read_acks(port: u16, site: &str) -> HashMap<String, u64> {
    let mut o = MqttOptions::new("bench-read-acks", "127.0.0.1", port);
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut ev) = AsyncClient::new(o, 1000);
    client
        .subscribe(format!("huddle/v1/{site}/+/+/ack"), QoS::AtLeastOnce)
        .await
        .expect("subscribe to acks");
    let mut acks = HashMap::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Ok(e) = ev.poll().await {
            if let MqttEvent::Incoming(Packet::Publish(p)) = e {
                if let Ok(ack) =
                    serde_json::from_slice::<huddle_board::wire::payload::Ack>(&p.payload)
                {
                    acks.insert(ack.board, ack.seq);
                }
            }
        }
    })
    .await;
    acks
}

// ---------------------------------------------------------------- measurements

/// Events per second and seconds.
struct Rate {
    per_s: f64,
    secs: f64,
}

fn rate(events: u64, d: Duration) -> Rate {
    Rate {
        per_s: events as f64 / d.as_secs_f64(),
        secs: d.as_secs_f64(),
    }
}

/// The broker's ceiling: a bare persistent `mosquitto_sub` draining the queue.
fn bare_ingest(rt: &tokio::runtime::Runtime, port: u16, o: &Options) -> Rate {
    let site = "bare";
    let total = o.boards as u64 * o.per_board;
    let sub = support::require("mosquitto_sub", "mosquitto-clients");
    let topic = format!("huddle/v1/{site}/+/+/event/+");
    let args = [
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
    ];
    let status = Command::new(&sub).args(args).arg("-E").status().unwrap();
    assert!(
        status.success(),
        "mosquitto_sub could not register its session"
    );
    rt.block_on(load::publish(port, site, o.boards, o.per_board, None));
    let t = Instant::now();
    let status = Command::new(&sub)
        .args(args)
        .args(["-C", &total.to_string()])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "mosquitto_sub failed: {status}");
    rate(total, t.elapsed())
}

/// Durable ingest from a pre-filled queue (see the module doc).
fn ingest(rt: &tokio::runtime::Runtime, c: &Consumer, o: &Options, per_board: u64) -> Ingest {
    let total = o.boards as u64 * per_board;
    let mut child = c.start();
    support::sigkill(&mut child);
    rt.block_on(load::publish(c.port, &c.site, o.boards, per_board, None));
    let t = Instant::now();
    let mut child = c.spawn();
    let acks = rt.spawn(load::wait_acks(c.port, c.site.clone(), o.boards, per_board));
    // The acks are the measure; the file is watched too (every second, so
    // as not to slow the aggregator) because the flow may lose ack
    // publications: see tests/README.md, "Performance".
    let deadline = t + Duration::from_secs(1200);
    let mut stored_at = None;
    while !acks.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(if stored_at.is_some() {
            50
        } else {
            1000
        }));
        if stored_at.is_none() && c.kind == Kind::NodeRed && c.stored() >= total {
            stored_at = Some(Instant::now());
        }
        if stored_at.is_some_and(|s| s.elapsed() > Duration::from_secs(30)) {
            break;
        }
    }
    let acked_at = if acks.is_finished() {
        rt.block_on(acks).ok().map(|(at, _)| at)
    } else {
        acks.abort();
        None
    };
    support::sigkill(&mut child);
    let done = acked_at.or(stored_at).unwrap_or_else(|| {
        panic!(
            "{} did not store {total} events within 20 minutes; its log: {}",
            c.kind.name(),
            c.log().display()
        )
    });
    Ingest {
        rate: rate(total, done - t),
        acked: acked_at.is_some(),
    }
}

/// A durable ingest run: its rate, and whether every ack came through (if
/// not, the rate is up to the moment the last event was in the file).
struct Ingest {
    rate: Rate,
    acked: bool,
}

/// One-row SQLite commits per second on this disk (WAL, `synchronous=FULL`),
/// keyed as both consumers key events.
fn commit_rate(dir: &Path) -> Rate {
    let db = rusqlite::Connection::open(dir.join("commits.db")).expect("open commits.db");
    db.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
         CREATE TABLE e (board TEXT, seq INTEGER, PRIMARY KEY (board, seq)) WITHOUT ROWID;",
    )
    .expect("create commits.db");
    let n = 1000u64;
    let t = Instant::now();
    for i in 0..n {
        db.execute(
            "INSERT INTO e VALUES (?1, ?2)",
            (load::board_id((i % 500) as usize), i as i64),
        )
        .expect("insert into commits.db");
    }
    rate(n, t.elapsed())
}

/// Tap → ack latency at plant load: the simulator's summary line.
fn latency(c: &Consumer, o: &Options) -> (String, bool) {
    let mut child = c.start();
    let out = Command::new(KIOSK)
        .args([
            "simulate",
            "--huddles",
            "1",
            "--latency",
            "--timeout",
            "120",
        ])
        .args(["--boards", &o.latency_boards.to_string()])
        .args(["--rate", &o.rate.to_string()])
        .arg("--data-dir")
        .arg(c.dir.join("kiosks"))
        .env("HUDDLE_MQTT_URL", format!("mqtt://127.0.0.1:{}", c.port))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .output()
        .expect("run huddle-kiosk simulate");
    support::sigkill(&mut child);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("latency"))
        .map(|l| {
            l.split("commit -> ack")
                .last()
                .unwrap_or(l)
                .trim()
                .to_string()
        })
        .unwrap_or_else(|| format!("no latency line; simulator said:\n{stderr}"));
    (line, out.status.success())
}

/// What the kill test found.
struct KillOutcome {
    published: u64,
    stored: u64,
    boards_fully_acked: usize,
}

/// The kill test (see the module doc).
fn kill(rt: &tokio::runtime::Runtime, c: &Consumer, o: &Options) -> KillOutcome {
    let published = o.kill_boards as u64 * o.kill_per_board;
    let child = Arc::new(Mutex::new(Some(c.start())));
    let victim = Arc::clone(&child);
    let at_half: Box<dyn FnOnce() + Send> = Box::new(move || {
        if let Some(mut ch) = victim.lock().expect("not poisoned").take() {
            support::sigkill(&mut ch);
        }
    });
    rt.block_on(load::publish(
        c.port,
        &c.site,
        o.kill_boards,
        o.kill_per_board,
        Some(at_half),
    ));
    assert!(
        child.lock().expect("not poisoned").is_none(),
        "the consumer was not killed mid-burst"
    );
    let at_kill = c.stored();
    let mut again = c.spawn();
    // Wait until everything is stored, or nothing more is stored for 15 s.
    let mut last = (c.stored(), Instant::now());
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = c.stored();
        if now >= published || Instant::now() > deadline {
            break;
        }
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(15) {
            break;
        }
    }
    let acks = rt.block_on(read_acks(c.port, &c.site));
    support::sigkill(&mut again);
    let stored = c.stored();
    eprintln!(
        "  {}: {at_kill} stored when killed, {stored} after the restart",
        c.kind.name()
    );
    KillOutcome {
        published,
        stored,
        boards_fully_acked: acks.values().filter(|s| **s >= o.kill_per_board).count(),
    }
}

fn main() {
    let o = parse_options();
    let wants = |what: &str| o.only.as_deref().is_none_or(|x| x == what);
    let nodered = install_nodered();
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let mut broker = support::Mosquitto::start_with(BROKER_CONF);
    let port = broker.port;
    let dir = tempfile::tempdir().expect("temporary directory");
    let consumer = |kind, site: &str| Consumer::new(kind, site, dir.path(), &nodered, port);
    let mut ours_ok = true;

    if wants("ingest") {
        println!(
            "durable ingest from a pre-filled queue of {} boards ({} events each; Node-RED {}):",
            o.boards, o.per_board, o.nodered_per_board
        );
        let bare = bare_ingest(&rt, port, &o);
        broker.restart();
        let ours = ingest(&rt, &consumer(Kind::Aggregator, "ingest"), &o, o.per_board);
        broker.restart();
        let theirs = ingest(
            &rt,
            &consumer(Kind::NodeRed, "ingest"),
            &o,
            o.nodered_per_board,
        );
        let commits = commit_rate(dir.path());
        let theirs_name = if theirs.acked {
            "Node-RED flow, durable + acked"
        } else {
            "Node-RED flow, durable (acks LOST)"
        };
        assert!(ours.acked, "the aggregator's acks did not all arrive");
        for (name, r) in [
            ("bare mosquitto_sub (broker ceiling)", &bare),
            ("huddle-aggregator, durable + acked", &ours.rate),
            (theirs_name, &theirs.rate),
            ("one-row commits on this disk", &commits),
        ] {
            println!("  {name:<38} {:>9.0} events/s  ({:.2} s)", r.per_s, r.secs);
        }
        println!(
            "  aggregator / Node-RED                  {:>9.1}x   (target >= 10x)",
            ours.rate.per_s / theirs.rate.per_s
        );
        println!(
            "  aggregator / ceiling                   {:>9.2}",
            ours.rate.per_s / bare.per_s
        );
    }

    if wants("latency") {
        println!(
            "tap -> ack latency, {} boards at {} actions/s each:",
            o.latency_boards, o.rate
        );
        for kind in [Kind::Aggregator, Kind::NodeRed] {
            broker.restart();
            let (line, acked) = latency(&consumer(kind, "plant1"), &o);
            let note = if acked {
                ""
            } else {
                "  (NOT every board fully acked)"
            };
            println!("  {:<18} {line}{note}", kind.name());
            ours_ok &= acked || kind == Kind::NodeRed;
        }
    }

    if wants("kill") {
        println!(
            "kill mid-burst: {} events from {} boards, SIGKILL at half, restart:",
            o.kill_boards as u64 * o.kill_per_board,
            o.kill_boards
        );
        for kind in [Kind::Aggregator, Kind::NodeRed] {
            broker.restart();
            let k = kill(&rt, &consumer(kind, "kill"), &o);
            println!(
                "  {:<18} stored {} of {} published, lost {}; {} of {} boards fully acked",
                kind.name(),
                k.stored,
                k.published,
                k.published - k.stored.min(k.published),
                k.boards_fully_acked,
                o.kill_boards
            );
            ours_ok &= kind == Kind::NodeRed
                || (k.stored == k.published && k.boards_fully_acked == o.kill_boards);
        }
    }
    drop(broker);
    assert!(ours_ok, "huddle-aggregator failed a check above");
}
