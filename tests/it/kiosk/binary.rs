//! The real `huddle-kiosk` binary in a real X server (Xvfb):
//! - fed badge numbers through its simulated source (a FIFO), killed with
//!   SIGKILL and restarted: the huddle comes back as it was and the events
//!   printed by `huddle-kiosk events` stay gap-free, nobody counted twice;
//! - typed into by xdotool exactly as a USB keyboard-wedge reader types;
//! - delivering through a real Mosquitto: events published, the retained
//!   ack marks them delivered in its database, and after SIGKILL the last
//!   will sets `online` to `false`.
//!
//! Without a broker of their own, the kiosks here point at a closed port:
//! they must work exactly as with one (and never touch a developer's).

use std::collections::HashMap;
use std::ffi::CString;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{require, retained, Xvfb};
use huddle_board::wire::event::Envelope;

const KIOSK: &str = env!("CARGO_BIN_EXE_huddle-kiosk");

struct Board {
    dir: PathBuf,
    config: PathBuf,
    fifo: PathBuf,
    display: String,
    /// `HUDDLE_MQTT_URL` for the kiosk.
    mqtt_url: String,
}

impl Board {
    fn new(dir: &Path, display: &str) -> Board {
        let fifo = dir.join("badges.fifo");
        let c = CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
        let text = include_str!("../../../config/kiosk.toml")
            .replace("source = \"keyboard\"", "source = \"simulated\"")
            .replace(
                "simulated_path = \"-\"",
                &format!("simulated_path = \"{}\"", fifo.display()),
            );
        assert!(text.contains("source = \"simulated\""));
        Board::with_config(dir, display, text, fifo)
    }

    /// The shipped configuration as it is: keyboard-wedge input.
    fn keyboard(dir: &Path, display: &str) -> Board {
        let text = include_str!("../../../config/kiosk.toml").to_owned();
        Board::with_config(dir, display, text, dir.join("no-fifo"))
    }

    fn with_config(dir: &Path, display: &str, text: String, fifo: PathBuf) -> Board {
        let config = dir.join("kiosk.toml");
        std::fs::write(&config, text).unwrap();
        Board {
            dir: dir.to_owned(),
            config,
            fifo,
            display: display.to_owned(),
            // Nothing listens there: the broker is unreachable.
            mqtt_url: format!("mqtt://127.0.0.1:{}", crate::support::free_port()),
        }
    }

    fn start(&self) -> Child {
        Command::new(KIOSK)
            .args(["--config", self.config.to_str().unwrap()])
            .env("DISPLAY", &self.display)
            .env("HUDDLE_DATA_DIR", self.dir.join("data"))
            .env("HUDDLE_MQTT_URL", &self.mqtt_url)
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .spawn()
            .expect("start huddle-kiosk")
    }

    /// Writes one badge number into the FIFO once the kiosk reads it.
    fn tap(&self, number: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&self.fifo)
            {
                Ok(mut f) => {
                    f.write_all(format!("{number}\n").as_bytes()).unwrap();
                    return;
                }
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("the kiosk never opened its badge FIFO: {e}"),
            }
        }
    }

    fn events(&self) -> Vec<Envelope> {
        let out = Command::new(KIOSK)
            .args(["--config", self.config.to_str().unwrap(), "events"])
            .env("HUDDLE_DATA_DIR", self.dir.join("data"))
            .env("RUST_LOG", "warn")
            .output()
            .expect("run huddle-kiosk events");
        if !out.status.success() {
            return Vec::new();
        }
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad envelope {l}: {e}")))
            .collect()
    }

    fn wait_for(&self, count: usize) -> Vec<Envelope> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let events = self.events();
            if events.len() >= count {
                return events;
            }
            assert!(
                Instant::now() < deadline,
                "waited for {count} events, have {}",
                events.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn kill(mut child: Child) {
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let status = child.wait().unwrap();
    assert!(!status.success(), "the kiosk was not killed");
}

fn check_invariants(events: &[Envelope]) -> HashMap<String, usize> {
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=events.len() as u64).collect::<Vec<_>>(),
        "seq must be gap-free from 1"
    );
    assert_eq!(
        events.iter().filter(|e| e.kind == "huddle.started").count(),
        1,
        "one huddle"
    );
    let mut arrivals: HashMap<String, usize> = HashMap::new();
    for e in events.iter().filter(|e| e.kind == "attendance.tapped") {
        *arrivals
            .entry(e.data["person_id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    for (person, n) in &arrivals {
        assert_eq!(*n, 1, "{person} counted {n} times");
    }
    arrivals
}

#[test]
fn sigkill_and_restart_lose_nothing_and_count_nobody_twice() {
    let x = Xvfb::start();
    let dir = tempfile::tempdir().unwrap();
    let board = Board::new(dir.path(), &x.display);

    let kiosk = board.start();
    board.tap("1001"); // the team leader starts the huddle
    board.wait_for(2);
    board.tap("1002");
    board.wait_for(3);
    kill(kiosk);

    let kiosk = board.start();
    board.tap("1002"); // already here: no event
    board.tap("1003");
    let events = board.wait_for(4);
    assert_eq!(
        events[3].data["person_id"], "p03",
        "1002 was counted again after the restart"
    );
    // Kill while taps may still be in flight.
    board.tap("1004");
    board.tap("1005");
    std::thread::sleep(Duration::from_millis(30));
    kill(kiosk);
    check_invariants(&board.events());

    let kiosk = board.start();
    for n in ["1004", "1005", "1006", "1003"] {
        board.tap(n);
    }
    let events = board.wait_for(7);
    std::thread::sleep(Duration::from_millis(300));
    kill(kiosk);

    let events_after = board.events();
    assert_eq!(events_after.len(), events.len().max(7));
    let arrivals = check_invariants(&events_after);
    let mut people: Vec<_> = arrivals.keys().cloned().collect();
    people.sort();
    assert_eq!(people, ["p01", "p02", "p03", "p04", "p05", "p06"]);
}

fn xdotool(args: &[&str], display: &str) -> String {
    let out = Command::new("timeout")
        .arg("20")
        .arg("xdotool")
        .args(args)
        .env("DISPLAY", display)
        .output()
        .expect("run xdotool");
    assert!(
        out.status.success(),
        "xdotool {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_keyboard_wedge_reader_types_badges_into_the_window() {
    require("xdotool", "xdotool");
    let x = Xvfb::start();
    let dir = tempfile::tempdir().unwrap();
    let board = Board::keyboard(dir.path(), &x.display);
    let kiosk = board.start();
    let window = xdotool(
        &[
            "search",
            "--sync",
            "--onlyvisible",
            "--name",
            "huddle-board",
        ],
        &x.display,
    );
    let window = window.lines().next().expect("the kiosk window").to_owned();
    // Without a window manager the X focus must be given explicitly.
    xdotool(&["windowfocus", "--sync", &window], &x.display);
    xdotool(&["type", "--delay", "20", "1001"], &x.display);
    xdotool(&["key", "Return"], &x.display);
    let events = board.wait_for(2);
    assert_eq!(events[0].kind, "huddle.started");
    assert_eq!(events[1].data["person_id"], "p01");
    // A half-typed number expires (300 ms) instead of joining the next badge.
    xdotool(&["type", "--delay", "20", "99"], &x.display);
    std::thread::sleep(Duration::from_millis(700));
    xdotool(&["type", "--delay", "20", "1002"], &x.display);
    xdotool(&["key", "Return"], &x.display);
    let events = board.wait_for(3);
    assert_eq!(events[2].kind, "attendance.tapped", "{:?}", events[2]);
    assert_eq!(events[2].data["person_id"], "p02");
    kill(kiosk);
}

/// The retained payload on `topic`, read by a fresh `mosquitto_sub`.
fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_kiosk_delivers_through_a_real_broker_and_its_last_will_fires_on_sigkill() {
    let broker = crate::support::Mosquitto::start();
    let x = Xvfb::start();
    let dir = tempfile::tempdir().unwrap();
    let mut board = Board::new(dir.path(), &x.display);
    board.mqtt_url = broker.url();
    let base = "huddle/v1/plant1/assembly/demo";
    let events = crate::support::Sub::start(broker.port, &format!("{base}/event/#"), dir.path());

    let kiosk = board.start();
    wait_until("online = true", || {
        retained(broker.port, &format!("{base}/online")) == "true"
    });
    board.tap("1001"); // the team leader starts the huddle: two events
    board.wait_for(2);
    wait_until("both events on the broker", || {
        events
            .text()
            .lines()
            .filter(|l| l.starts_with(base))
            .count()
            >= 2
    });
    let text = events.text();
    assert!(
        text.contains(&format!("{base}/event/huddle.started {{")),
        "{text}"
    );
    assert!(text.contains("\"seq\":2"), "{text}");

    // The aggregator's retained ack (for this file's incarnation, with the
    // chain digest of its two events) marks them delivered, durably.
    let db = dir.path().join("data").join("kiosk-demo.db");
    let entry = huddle_board::kiosk::store::Store::open(&db, "demo")
        .unwrap()
        .ack_for(2)
        .unwrap()
        .expect("event 2 in the outbox");
    let ack = huddle_board::wire::payload::Ack {
        board: "demo".into(),
        seq: 0,
        at: chrono::Utc::now(),
        incarnations: vec![entry],
    };
    crate::support::publish_retained(
        broker.port,
        &format!("{base}/ack"),
        &serde_json::to_string(&ack).unwrap(),
    );
    wait_until("the ack remembered", || {
        let store = huddle_board::kiosk::store::Store::open(&db, "demo").unwrap();
        store.acked().unwrap() == 2 && store.undelivered().unwrap() == 0
    });

    kill(kiosk);
    wait_until("the last will", || {
        retained(broker.port, &format!("{base}/online")) == "false"
    });
}
