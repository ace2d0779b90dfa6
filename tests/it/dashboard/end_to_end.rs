//! The web dashboard end to end: a real Mosquitto, the real
//! `huddle-aggregator` binary serving its dashboard on a free port, boards
//! simulated by publishing their events and `online` flags as a kiosk's
//! outbox does, and (second test) a real headless Chromium driven by
//! `playwright-core` (tests/dashboard/browser.js).
//!
//! - The token: without it or with a wrong one every data route is `401`;
//!   `?token=` on `/` sets an HttpOnly, SameSite=Strict cookie and
//!   redirects, and on the API routes it is not enough (`401`); the token
//!   never shows in the aggregator's log.
//! - `/api/state` equals what the broker retains on the status, coaching
//!   and stats topics (read back by a fresh MQTT subscriber).
//! - `/api/events` sends the snapshot, then a tap's change.
//! - In the browser: the page shows the boards; a huddle started at a
//!   simulated kiosk changes its tile without a reload.
//! - The page renders the full live status (issue 6's `BoardLive`,
//!   `SiteLive`, alerts, the coaching report): the third test serves a
//!   hub filled with such payloads (built from the Rust types) in
//!   process, checks what the tiles show and follows a change; with
//!   `DASHBOARD_SCREENSHOTS=1` it saves the dashboard's screenshots to
//!   ui/screenshots/.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{free_port, wait_for, wait_port, Aggregator, Mosquitto, Publisher};
use chrono::Utc;
use huddle_board::wire::event::{
    AttendanceTapped, Envelope, Event, HuddleStarted, StartTrigger, TapVia,
};
use huddle_board::wire::topic::BoardTopics;
use rumqttc::{Client, MqttOptions, Packet, QoS};
use serde_json::Value;

pub(super) const TOKEN: &str = "test-dashboard-token-0123456789";
pub(super) const SITE: &str = "plant1";
pub(super) const AREA: &str = "assembly";

/// A broker, an aggregator with its dashboard, and a board publisher.
pub(super) struct Site {
    pub(super) broker: Mosquitto,
    port: u16,
    pub(super) web: u16,
    pub(super) aggregator: Aggregator,
    /// The aggregator's binary, copied at the start: the shared target
    /// directory may be rebuilt by other work before a restart.
    pub(super) bin: PathBuf,
    pub(super) dir: tempfile::TempDir,
    pub(super) boards: Boards,
}

impl Site {
    fn start() -> Site {
        Site::start_with("")
    }

    /// The same with more lines of `aggregator.toml` (whole sections).
    pub(super) fn start_with(extra: &str) -> Site {
        let broker = Mosquitto::start();
        let dir = tempfile::tempdir().unwrap();
        let web = free_port();
        std::fs::write(
            dir.path().join("aggregator.toml"),
            format!(
                "[site]\nid = \"{SITE}\"\ntimezone = \"Europe/Berlin\"\nsite_key = \"demo-site-key-change-me\"\n\
                 [coaching]\nrecompute_s = 3600\n\
                 [web]\nlisten = \"127.0.0.1:{web}\"\ntoken = \"{TOKEN}\"\n{extra}"
            ),
        )
        .unwrap();
        let bin = dir.path().join("huddle-aggregator");
        std::fs::copy(env!("CARGO_BIN_EXE_huddle-aggregator"), &bin).unwrap();
        let mut aggregator = Aggregator::start_bin(&bin, dir.path(), &broker.url());
        if !wait_port(web, Duration::from_secs(20)) {
            aggregator.assert_running();
            panic!(
                "the dashboard did not listen on {web}:\n{}",
                aggregator.log()
            );
        }
        let boards = Boards::connect(broker.port);
        Site {
            port: broker.port,
            broker,
            web,
            aggregator,
            bin,
            dir,
            boards,
        }
    }

    /// One request, the whole response.
    fn http(&self, request: &str) -> Response {
        http(self.web, request)
    }

    pub(super) fn get(&self, path: &str, headers: &str) -> Response {
        self.http(&format!("GET {path} HTTP/1.1\r\nHost: x\r\n{headers}\r\n"))
    }

    pub(super) fn state(&self) -> Value {
        let r = self.get("/api/state", &format!("Authorization: Bearer {TOKEN}\r\n"));
        assert_eq!(r.status, 200, "{}", r.body);
        serde_json::from_str(&r.body).expect("/api/state is JSON")
    }

    /// The boards say they are online (retained), and the aggregator shows
    /// them: it has subscribed, so events published from now on reach it
    /// (this publisher does not re-send as a kiosk's outbox does).
    pub(super) fn online(&mut self, boards: &[&str]) {
        for b in boards {
            self.boards.online(b);
        }
        self.wait_boards(boards, 0);
        // The event subscription may come after the `online` one: the first
        // board's first event is sent again (same bytes, a duplicate) until
        // it is stored.
        self.boards.tap(boards[0], "p03");
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.state()["boards"][format!("{AREA}/{}", boards[0])]["status"]["last_seq"] != 1 {
            assert!(
                Instant::now() < deadline,
                "no event reaches the aggregator:\n{}",
                self.aggregator.log()
            );
            std::thread::sleep(Duration::from_millis(200));
            self.boards.resend();
        }
    }

    /// Waits until every named board's status shows `last_seq`.
    pub(super) fn wait_boards(&self, boards: &[&str], seq: u64) -> Value {
        let mut last = Value::Null;
        let deadline = Instant::now() + Duration::from_secs(30);
        wait_for("the boards in /api/state", Duration::from_secs(60), || {
            let s = self.state();
            assert!(
                Instant::now() < deadline,
                "the boards {boards:?} did not reach seq {seq} in /api/state: {last}\n{}",
                self.aggregator.log()
            );
            last = s.clone();
            boards
                .iter()
                .all(|b| s["boards"][format!("{AREA}/{b}")]["status"]["last_seq"] == seq)
                .then_some(s)
        })
    }
}

pub(super) struct Response {
    pub(super) status: u16,
    pub(super) head: String,
    pub(super) body: String,
}

fn http(port: u16, request: &str) -> Response {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut bytes = Vec::new();
    let _ = s.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    Response {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// Simulated kiosks: each board's events and `online` flag, published at
/// QoS 1 as the outbox does, with its own seq.
pub(super) struct Boards {
    publisher: Publisher,
    seqs: std::collections::HashMap<String, u64>,
    last: Option<(String, Vec<u8>)>,
}

impl Boards {
    fn connect(port: u16) -> Boards {
        Boards {
            publisher: Publisher::connect(port),
            seqs: Default::default(),
            last: None,
        }
    }

    /// Publishes and waits for the broker's PUBACK.
    pub(super) fn publish(&mut self, topic: String, retain: bool, payload: Vec<u8>) {
        self.publisher.publish(topic, retain, payload);
        self.publisher.flush();
    }

    fn online(&mut self, board: &str) {
        let t = BoardTopics::new(SITE, AREA, board);
        self.publish(t.online(), true, b"true".to_vec());
    }

    /// Publishes the board's next event; returns its seq.
    fn event(&mut self, board: &str, event: Event) -> u64 {
        self.event_at(board, Utc::now(), event)
    }

    /// The same with the board's time of the event.
    pub(super) fn event_at(&mut self, board: &str, at: chrono::DateTime<Utc>, event: Event) -> u64 {
        let seq = self.seqs.entry(board.to_owned()).or_insert(0);
        *seq += 1;
        let e = Envelope::new(board, *seq, at, true, &event);
        let seq = *seq;
        let t = BoardTopics::new(SITE, AREA, board);
        let (topic, bytes) = (t.event(&e.kind), e.to_json().into_bytes());
        self.last = Some((topic.clone(), bytes.clone()));
        self.publish(topic, false, bytes);
        seq
    }

    /// Publishes the last event again, as an outbox does until its ack.
    fn resend(&mut self) {
        if let Some((topic, bytes)) = self.last.clone() {
            self.publish(topic, false, bytes);
        }
    }

    /// A huddle started by the team leader.
    fn start_huddle(&mut self, board: &str) -> u64 {
        self.event(
            board,
            Event::HuddleStarted(HuddleStarted {
                huddle_id: format!("h-{board}"),
                scheduled_at: None,
                slot: None,
                started_by: "p01".into(),
                trigger: StartTrigger::TeamLeader,
                target_minutes: 15,
                agenda: vec!["attendance".into(), "kpis".into(), "close".into()],
            }),
        )
    }

    /// A person taps in.
    pub(super) fn tap(&mut self, board: &str, person: &str) -> u64 {
        self.event(
            board,
            Event::AttendanceTapped(AttendanceTapped {
                huddle_id: format!("h-{board}"),
                person_id: person.into(),
                via: TapVia::Badge,
                late: false,
            }),
        )
    }
}

/// The huddle state in a board's status, whichever payload the aggregator
/// publishes: `state` (the full live status) or `huddle` (the minimal one).
fn huddle_state(status: &Value) -> Option<&str> {
    status["state"].as_str().or(status["huddle"].as_str())
}

/// Every retained payload under the site's status, coaching and stats
/// topics, as a fresh subscriber receives them (updated by any live
/// publication that follows).
fn retained(port: u16) -> std::collections::BTreeMap<String, Value> {
    let mut o = MqttOptions::new(format!("test-reader-{}", free_port()), "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut connection) = Client::new(o, 100);
    for f in [
        format!("huddle/v1/{SITE}/+/+/status"),
        format!("huddle/v1/{SITE}/status"),
        format!("huddle/v1/{SITE}/coaching"),
        format!("huddle/v1/{SITE}/aggregator/stats"),
    ] {
        client.subscribe(f, QoS::AtLeastOnce).unwrap();
    }
    let mut out = std::collections::BTreeMap::new();
    let mut subacks = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    // Retained messages come right after each SUBACK; a quiet half second
    // after the last SUBACK means all are in.
    while Instant::now() < deadline {
        match connection.recv_timeout(Duration::from_millis(500)) {
            Ok(Ok(rumqttc::Event::Incoming(Packet::SubAck(_)))) => subacks += 1,
            // The retained payloads first; a later live one (retain flag
            // off) is the newer state of its topic.
            Ok(Ok(rumqttc::Event::Incoming(Packet::Publish(p)))) => {
                let v = serde_json::from_slice(&p.payload).expect("retained payloads are JSON");
                out.insert(p.topic.clone(), v);
            }
            Ok(_) => {}
            Err(_) if subacks == 4 => break,
            Err(_) => {}
        }
    }
    assert_eq!(
        subacks, 4,
        "the broker acknowledged {subacks} of 4 subscriptions"
    );
    let _ = client.disconnect();
    out
}

/// The state's payload for a retained topic.
fn state_entry<'a>(state: &'a Value, topic: &str) -> &'a Value {
    let rest = topic
        .strip_prefix(&format!("huddle/v1/{SITE}/"))
        .expect("a site topic");
    let levels: Vec<&str> = rest.split('/').collect();
    match levels.as_slice() {
        ["status"] => &state["site"],
        ["coaching"] => &state["coaching"],
        ["aggregator", "stats"] => &state["stats"],
        [area, board, "status"] => &state["boards"][format!("{area}/{board}")]["status"],
        _ => panic!("unexpected topic {topic}"),
    }
}

/// Reads server-sent events from `/api/events`.
struct Events {
    reader: BufReader<TcpStream>,
}

impl Events {
    fn open(port: u16, headers: &str) -> Events {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(format!("GET /api/events HTTP/1.1\r\nHost: x\r\n{headers}\r\n").as_bytes())
            .unwrap();
        let mut reader = BufReader::new(s);
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        let mut head = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        assert!(head.contains("Content-Type: text/event-stream"), "{head}");
        Events { reader }
    }

    /// The next event: its name, id and JSON data (comments skipped).
    fn next(&mut self) -> (String, u64, Value) {
        let (mut name, mut id, mut data) = (String::new(), 0, String::new());
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).expect("the event stream");
            assert!(n > 0, "the event stream ended");
            let line = line.trim_end_matches('\n');
            if line.is_empty() {
                if !data.is_empty() {
                    return (
                        name,
                        id,
                        serde_json::from_str(&data).expect("event data is JSON"),
                    );
                }
                continue;
            }
            if let Some(v) = line.strip_prefix("event: ") {
                name = v.to_owned();
            } else if let Some(v) = line.strip_prefix("id: ") {
                id = v.parse().expect("a numeric id");
            } else if let Some(v) = line.strip_prefix("data: ") {
                data.push_str(v);
            }
        }
    }
}

#[test]
fn token_state_and_events() {
    let mut site = Site::start();
    let boards = ["line1", "line2", "line3"];
    site.online(&boards);
    for b in &boards[1..] {
        site.boards.tap(b, "p03");
    }

    // Public routes; everything else wants the token.
    let r = site.get("/healthz", "");
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
    for path in [
        "/",
        "/api/state",
        "/api/events",
        "/?token=wrong-token-0123456789",
    ] {
        let r = site.get(path, "");
        assert_eq!(r.status, 401, "{path} without the token: {}", r.head);
        assert!(r.body.contains("Token needed"), "{}", r.body);
        for wrong in [
            "Authorization: Bearer test-dashboard-token-012345678X\r\n",
            "Cookie: huddle_token=test-dashboard-token-01234567\r\n",
            "Authorization: Basic dGVzdDp0ZXN0\r\n",
        ] {
            assert_eq!(site.get(path, wrong).status, 401, "{path} with {wrong}");
        }
    }
    // The right token in the query opens the page only: the API routes
    // want the header or the cookie.
    for path in ["/api/state", "/api/events"] {
        let r = site.get(&format!("{path}?token={TOKEN}"), "");
        assert_eq!(r.status, 401, "{path}?token= without a header: {}", r.head);
        assert!(r.body.contains("Token needed"), "{}", r.body);
    }
    let r = site.get(
        &format!("/api/state?token={TOKEN}"),
        &format!("Cookie: huddle_token={TOKEN}\r\n"),
    );
    assert_eq!(r.status, 200, "/api/state with the cookie: {}", r.head);
    let r = site.get(&format!("/?token={TOKEN}"), "");
    assert_eq!(r.status, 303, "{}", r.head);
    assert!(r.head.contains("Location: /\r\n"), "{}", r.head);
    assert!(
        r.head.contains(&format!(
            "Set-Cookie: huddle_token={TOKEN}; Path=/; HttpOnly; SameSite=Strict"
        )),
        "{}",
        r.head
    );
    let page = site.get("/", &format!("Cookie: other=1; huddle_token={TOKEN}\r\n"));
    assert_eq!(page.status, 200);
    assert!(page
        .head
        .contains("Content-Security-Policy: default-src 'none'"));
    assert!(
        page.body.contains("<script src=\"/app.js\""),
        "{}",
        page.body
    );
    for asset in ["/app.js", "/style.css"] {
        let r = site.get(asset, "");
        assert_eq!(r.status, 200, "{asset}");
        assert!(r.body.len() > 1000, "{asset} is {} bytes", r.body.len());
    }
    assert_eq!(site.get("/nothing", "").status, 404);
    assert_eq!(site.http("POST /api/state HTTP/1.1\r\n\r\n").status, 405);
    assert_eq!(site.http("NONSENSE\r\n\r\n").status, 400);
    let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000));
    assert_eq!(site.http(&big).status, 431);

    // The state holds every board, and equals what the broker retains.
    site.wait_boards(&boards, 1);
    let (state, held) = wait_for("a quiet state to compare", Duration::from_secs(60), || {
        let before = site.state();
        let held = retained(site.port);
        let after = site.state();
        (before == after).then_some((after, held))
    });
    for b in boards {
        assert!(
            held.contains_key(&format!("huddle/v1/{SITE}/{AREA}/{b}/status")),
            "{b}'s status is not retained: {held:?}"
        );
    }
    assert!(held.contains_key(&format!("huddle/v1/{SITE}/aggregator/stats")));
    for (topic, payload) in &held {
        assert_eq!(state_entry(&state, topic), payload, "{topic}");
    }
    let shown = state["boards"].as_object().unwrap().len()
        + ["site", "coaching", "stats"]
            .iter()
            .filter(|k| !state[**k].is_null())
            .count();
    assert_eq!(
        shown,
        held.len(),
        "the state shows more than the broker retains: {state}"
    );
    assert_eq!(state["site_id"], SITE);

    // The stream: the snapshot first, then the tap's change.
    let mut events = Events::open(site.web, &format!("Authorization: Bearer {TOKEN}\r\n"));
    let (name, id, snapshot) = events.next();
    assert_eq!(name, "snapshot");
    assert_eq!(snapshot["version"], id);
    assert_eq!(snapshot["boards"], state["boards"]);
    let started = Instant::now();
    let seq = site.boards.start_huddle("line2");
    let change = loop {
        let (name, id, change) = events.next();
        assert_eq!(name, "change");
        assert_eq!(change["version"], id);
        if change["slot"] == "board_status" && change["board"] == "line2" {
            break change;
        }
    };
    let took = started.elapsed();
    assert_eq!(change["area"], AREA);
    assert_eq!(
        change["topic"],
        format!("huddle/v1/{SITE}/{AREA}/line2/status")
    );
    assert_eq!(change["payload"]["last_seq"], seq);
    assert_eq!(huddle_state(&change["payload"]), Some("in_progress"));
    assert!(took < Duration::from_secs(1), "the change took {took:?}");
    eprintln!("tap → event stream: {took:?}");

    site.aggregator.assert_running();
    let log = site.aggregator.log();
    assert!(log.contains("web dashboard listening"), "{log}");
    assert!(
        !log.contains(TOKEN) && !log.contains("token="),
        "the token is in the log:\n{log}"
    );
}

// ------------------------------------------------------------------ browser

pub(super) const INSTALL_HELP: &str =
    "the browser test needs Debian's Chromium, Node.js 20 and npm \
     (`tests/setup` installs them, keeping a Node.js already installed) and the npm registry (for playwright-core, axe-core \
     and lighthouse)";

/// `<target>` (the test runs from `<target>/debug/deps`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .expect("the test runs from <target>/debug/deps")
}

/// Installs the drivers' npm packages (tests/dashboard/package.json) into
/// `<target>/dashboard-test` with `npm ci` from the committed lock file
/// (skipped when that lock is installed) and copies the driver scripts
/// there; returns that directory.
pub fn install_driver() -> PathBuf {
    crate::support::require("node", "nodejs");
    crate::support::require("npm", "npm");
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing; {INSTALL_HELP}"
    );
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dashboard");
    let dir = target_dir().join("dashboard-test");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let lock =
        std::fs::read(src.join("package-lock.json")).expect("tests/dashboard/package-lock.json");
    let stamp = dir.join("installed-package-lock.json");
    let installed = std::fs::read(&stamp).is_ok_and(|s| s == lock)
        && dir
            .join("node_modules/playwright-core/package.json")
            .exists();
    if !installed {
        let _ = std::fs::remove_file(&stamp);
        for f in ["package.json", "package-lock.json"] {
            std::fs::copy(src.join(f), dir.join(f)).unwrap_or_else(|e| panic!("copy {f}: {e}"));
        }
        eprintln!(
            "installing the browser drivers' packages into {} (npm ci)…",
            dir.display()
        );
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .unwrap_or_else(|e| panic!("npm: {e}; {INSTALL_HELP}"));
        assert!(
            status.success(),
            "`npm ci` in {} failed ({status}); {INSTALL_HELP}",
            dir.display()
        );
        std::fs::write(&stamp, &lock).unwrap();
    }
    for script in ["browser.js", "supervisors.js"] {
        std::fs::copy(src.join(script), dir.join(script))
            .unwrap_or_else(|e| panic!("copy {script}: {e}"));
    }
    dir
}

/// Debian's Chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";

#[test]
fn browser_shows_boards_and_follows_a_tap() {
    let driver = install_driver();
    let mut site = Site::start();
    let boards = ["line1", "line2", "line3", "line4", "line5", "line6"];
    site.online(&boards);
    for b in &boards[1..] {
        site.boards.tap(b, "p03");
    }
    // Some variety for the screenshots: a running huddle with arrivals.
    site.boards.start_huddle("line1");
    site.boards.tap("line1", "p04");
    let seq = site.boards.tap("line1", "p05");
    site.wait_boards(&["line1"], seq);
    site.wait_boards(&boards[1..], 1);

    let profile = site.dir.path().join("chromium-profile");
    let mut node = Command::new(crate::support::require("node", "nodejs"));
    node.arg(driver.join("browser.js"))
        .current_dir(&driver)
        .env("DASHBOARD_URL", format!("http://127.0.0.1:{}", site.web))
        .env("DASHBOARD_TOKEN", TOKEN)
        .env("DASHBOARD_BOARDS", boards.len().to_string())
        .env("DASHBOARD_TAPPED", format!("{AREA}/line3"))
        .env("CHROMIUM", CHROMIUM)
        .env("CHROMIUM_PROFILE", &profile)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = node
        .spawn()
        .unwrap_or_else(|e| panic!("node: {e}; {INSTALL_HELP}"));
    let mut stdin = child.stdin.take().unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut said = Vec::new();
    for line in lines {
        let line = line.expect("the driver's output");
        eprintln!("browser.js: {line}");
        said.push(line.clone());
        if line == "READY" {
            // The page shows the boards: a kiosk starts line3's huddle.
            site.boards.start_huddle("line3");
            writeln!(stdin, "TAPPED").unwrap();
        }
    }
    let status = child.wait().unwrap();
    assert!(
        status.success() && said.iter().any(|l| l == "PASS"),
        "the browser test failed ({status}): {said:?}\n{}",
        site.aggregator.log()
    );
    site.aggregator.assert_running();
}

// ------------------------------------------------------- full live status

mod demo {
    use chrono::{DateTime, Duration, Utc};
    use huddle_board::wire::payload::{
        AlertKind, BoardAlert, BoardLive, LiveHuddle, LiveState, OpenEscalation, ScheduleMessage,
        SiteLive, StateCounts,
    };

    fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
        serde_json::to_vec(v).unwrap()
    }

    /// A board in `state`; `minutes` into its huddle when running.
    pub fn board(name: &str, area: &str, state: LiveState, now: DateTime<Utc>, i: i64) -> Vec<u8> {
        let started = now - Duration::minutes(3 + i % 14) - Duration::seconds(17 * i);
        let huddle = match state {
            LiveState::NotStarted | LiveState::Missed => None,
            _ => Some(LiveHuddle {
                huddle_id: format!("h-{name}"),
                scheduled_at: Some(started - Duration::minutes(1)),
                started_at: started,
                target_s: 900,
                step: (state == LiveState::InProgress).then(|| {
                    ["attendance", "kpis", "open_actions", "needs"][i as usize % 4].to_owned()
                }),
                step_started_at: (state == LiveState::InProgress)
                    .then_some(started + Duration::minutes(2)),
                present: 4 + (i % 5) as u32,
                expected: 9,
                closed_at: (state == LiveState::Closed)
                    .then_some(started + Duration::minutes(12 + i % 5)),
                summary: None,
            }),
        };
        let escalations = (0..i % 3)
            .map(|k| OpenEscalation {
                need_id: format!("n-{name}-{k}"),
                category: ["maintenance", "quality", "staffing"][k as usize % 3].into(),
                text: ["Press 4 guard sensor faulty", "Gauge calibration overdue"][k as usize % 2]
                    .into(),
                escalated_at: now - Duration::hours(5 + 20 * k),
                stale: k == 1,
            })
            .collect();
        json(&BoardLive {
            board: name.into(),
            area: area.into(),
            state,
            online: true,
            last_seq: 40 + i as u64,
            last_event_at: Some(now - Duration::seconds(30 + i)),
            next_due_at: Some(now + Duration::hours(7)),
            huddle,
            escalations,
            escalations_more: 0,
            escalations_more_stale: 0,
            last_observation_at: (i % 4 != 3).then(|| now - Duration::days(1 + i % 6)),
            replaced_at: None,
        })
    }

    pub fn offline(name: &str, area: &str, now: DateTime<Utc>) -> Vec<u8> {
        let mut b: BoardLive =
            serde_json::from_slice(&board(name, area, LiveState::NotStarted, now, 3)).unwrap();
        b.online = false;
        json(&b)
    }

    pub fn schedule(name: &str, now: DateTime<Utc>) -> Vec<u8> {
        json(&ScheduleMessage {
            board: name.into(),
            timezone: "Europe/Berlin".into(),
            times: vec!["06:45".into(), "14:45".into()],
            grace_s: 600,
            target_s: 900,
            issued_at: now - Duration::hours(3),
        })
    }

    pub fn site(now: DateTime<Utc>) -> Vec<u8> {
        let _ = now;
        json(&SiteLive {
            site: "plant1".into(),
            boards: 12,
            states: StateCounts {
                not_started: 2,
                in_progress: 5,
                closed: 3,
                missed: 1,
                offline: 1,
            },
            held_today: 9,
            missed_today: 1,
            attendance_rate: Some(0.87),
            open_escalations: 9,
            stale_escalations: 3,
            coaching_overdue: 1,
        })
    }

    /// An alert as the aggregator makes it: its English text filled with
    /// `values`, and both sent along (the dashboard translates them).
    pub fn alert(
        kind: AlertKind,
        board: &str,
        text: &str,
        values: &[(&str, &str)],
        at: DateTime<Utc>,
    ) -> Vec<u8> {
        let values: std::collections::BTreeMap<String, String> = values
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        json(&BoardAlert {
            kind,
            board: board.into(),
            area: "assembly".into(),
            at,
            message: huddle_board::aggregator::status::texts::fill(text, &values),
            text: Some(text.into()),
            values,
            scheduled_at: None,
            need_id: None,
        })
    }

    /// The README's coaching example, through the real type.
    pub fn coaching(now: DateTime<Utc>) -> Vec<u8> {
        let t = |h: i64| (now - Duration::hours(h)).to_rfc3339();
        let v = serde_json::json!({"site":"plant1","at":t(0),"window_days":7,
          "targets":{"team_leader":2,"supervisor":1},"since":t(24*40),
          "people":[
           {"id":"p08","name":"Mira Kowalski","role":"manager","coach":null,"boards":["line1","line2","line3"],"in_roster":true,
            "target":null,"count_in_window":null,"last_observed":null,"due_by":null,"overdue":false,"overdue_s":0,
            "score":null,"score_observations":0,"score_slope":null,"trend":null,
            "coached":6,"learners":2,"learners_measured":2,"learner_change":0.4,"helpfulness":4.5,"ratings":5,
            "focus_set":6,"focus_landed":4,"focus_pending":1},
           {"id":"p07","name":"Sam Reyes","role":"supervisor","coach":"p08","boards":["line1","line2"],"in_roster":true,
            "target":1,"count_in_window":1,"last_observed":t(50),"due_by":t(-118),
            "overdue":false,"overdue_s":0,"score":3.0,"score_observations":3,"score_slope":0.25,"trend":"rising",
            "coached":9,"learners":3,"learners_measured":3,"learner_change":0.611,"helpfulness":4.0,"ratings":7,
            "focus_set":9,"focus_landed":6,"focus_pending":2},
           {"id":"p01","name":"Eva Novak","role":"team_leader","coach":"p07","boards":["line1"],"in_roster":true,
            "target":2,"count_in_window":1,"last_observed":t(30),"due_by":t(2),
            "overdue":true,"overdue_s":7200,"score":2.5,"score_observations":2,"score_slope":1.222,"trend":"rising",
            "coached":null,"learners":null,"learners_measured":null,"learner_change":null,"helpfulness":null,"ratings":null,
            "focus_set":null,"focus_landed":null,"focus_pending":null},
           {"id":"p02","name":"Tom Berg","role":"team_leader","coach":"p07","boards":["line2"],"in_roster":true,
            "target":2,"count_in_window":2,"last_observed":t(20),"due_by":t(-100),
            "overdue":false,"overdue_s":0,"score":3.25,"score_observations":4,"score_slope":0.0,"trend":"steady",
            "coached":null,"learners":null,"learners_measured":null,"learner_change":null,"helpfulness":null,"ratings":null,
            "focus_set":null,"focus_landed":null,"focus_pending":null}]});
        let r: huddle_board::aggregator::coaching::Report = serde_json::from_value(v).unwrap();
        json(&r)
    }
}

#[test]
fn browser_renders_the_full_live_status() {
    full_live_status("en");
}

/// The same page in German: the browser asks for `de` (Accept-Language,
/// `--lang=de`), the page speaks German with no English left, and its
/// picker's switch to French persists across a reload.
#[test]
fn browser_renders_the_full_live_status_in_german() {
    full_live_status("de");
}

/// The same in the other shipped languages (no English left, nothing of
/// the coaching table cut at 1440 px, the picker).
#[test]
fn browser_renders_the_full_live_status_in_spanish_french_and_polish() {
    for lang in ["es", "fr", "pl"] {
        full_live_status(lang);
    }
}

/// English texts that must not be on the `lang` page: the parts (between
/// placeholders, 4 letters or more) of every message whose translation
/// differs, unless a translation or the page's data (`data`) has them too.
fn english_left_out(lang: &str, data: &str) -> Vec<String> {
    let cat = huddle_board::aggregator::web::i18n::catalogue(lang);
    let translated: Vec<&String> = cat.values().flatten().collect();
    let mut out = std::collections::BTreeSet::new();
    for (english, t) in &cat {
        if t.first() == Some(english) {
            continue;
        }
        let mut rest = english.as_str();
        let mut parts = Vec::new();
        while let Some(i) = rest.find('{') {
            parts.push(&rest[..i]);
            rest = rest[i..].split_once('}').map_or("", |(_, r)| r);
        }
        parts.push(rest);
        for p in parts
            .iter()
            .map(|p| p.trim_matches(|c: char| !c.is_alphanumeric()))
        {
            if p.chars().filter(|c| c.is_alphabetic()).count() >= 4
                && !translated.iter().any(|t| t.contains(p))
                && !data.contains(p)
            {
                out.insert(p.to_owned());
            }
        }
    }
    out.into_iter().collect()
}

fn full_live_status(lang: &str) {
    use huddle_board::aggregator::live::Hub;
    use huddle_board::aggregator::status::texts;
    use huddle_board::aggregator::web;
    use huddle_board::wire::payload::{AlertKind, LiveState};

    let driver = install_driver();
    let now = Utc::now();
    let hub = Hub::new(200);
    let layout: [(&str, &str, LiveState); 12] = [
        ("line1", "assembly", LiveState::InProgress),
        ("line2", "assembly", LiveState::InProgress),
        ("line3", "assembly", LiveState::Closed),
        ("line4", "assembly", LiveState::NotStarted),
        ("line5", "assembly", LiveState::Missed),
        ("paint1", "paint", LiveState::InProgress),
        ("paint2", "paint", LiveState::Closed),
        ("paint3", "paint", LiveState::InProgress),
        ("press1", "press", LiveState::Closed),
        ("press2", "press", LiveState::InProgress),
        ("press3", "press", LiveState::NotStarted),
        ("press4", "press", LiveState::NotStarted),
    ];
    for (i, (name, area, state)) in layout.iter().enumerate() {
        let topic = format!("huddle/v1/{SITE}/{area}/{name}");
        let payload = if *name == "press4" {
            demo::offline(name, area, now)
        } else {
            demo::board(name, area, *state, now, i as i64)
        };
        hub.publish(&format!("{topic}/status"), &payload, true);
        hub.publish(
            &format!("{topic}/schedule"),
            &demo::schedule(name, now),
            true,
        );
    }
    hub.publish(&format!("huddle/v1/{SITE}/status"), &demo::site(now), true);
    hub.publish(
        &format!("huddle/v1/{SITE}/coaching"),
        &demo::coaching(now),
        true,
    );
    let offline: &[(&str, &str)] = &[("board", "press4")];
    let stale: &[(&str, &str)] = &[
        ("board", "line2"),
        ("text", "Gauge calibration overdue"),
        ("category", "maintenance"),
        ("hours", "4"),
    ];
    let missed: &[(&str, &str)] = &[("board", "line5"), ("time", "14:45"), ("min", "10")];
    for (kind, board, text, values, ago) in [
        (
            AlertKind::BoardOffline,
            "press4",
            texts::WENT_OFFLINE,
            offline,
            50,
        ),
        (
            AlertKind::EscalationStale,
            "line2",
            texts::ESCALATION_STALE,
            stale,
            40,
        ),
        (
            AlertKind::MissedHuddle,
            "line5",
            texts::MISSED_HUDDLE,
            missed,
            20,
        ),
    ] {
        let a = demo::alert(
            kind,
            board,
            text,
            values,
            now - chrono::Duration::minutes(ago),
        );
        let kind = serde_json::to_value(kind).unwrap();
        hub.publish(
            &format!("huddle/v1/{SITE}/alert/{}", kind.as_str().unwrap()),
            &a,
            false,
        );
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut ctx = web::Ctx::new(SITE, TOKEN, hub.clone());
    ctx.timezone = "Europe/Berlin".into();
    let ctx = std::sync::Arc::new(ctx);
    rt.spawn(web::serve(listener, ctx));

    // What the tiles say, in the page's language: the catalogue's words,
    // and a few German ones written out (a catalogue that fell back to
    // English fails here too).
    let cat = web::i18n::catalogue(lang);
    let tr = |english: &str| -> String {
        cat.get(english)
            .and_then(|t| t.first())
            .unwrap_or_else(|| panic!("{english:?} is not in the page's catalogue"))
            .clone()
    };
    // "(1 old)" (the singular form in every shipped language), and "24 h
    // ago" with the hours as the browser's Intl writes them in `lang`.
    let old = cat["({n} old)"][0].replace("{n}", "1");
    let hours = match lang {
        "de" => "24 Std.",
        "pl" => "24 godz.",
        "es" => "24 h",
        // A narrow no-break space, as French typesetting wants.
        "fr" => "24\u{202f}h",
        _ => "24 hr",
    };
    let ago = tr("{age} ago").replace("{age}", hours);
    let expect = serde_json::json!({
        "assembly/line1": [format!("{} · {}", tr("In progress"), tr("Attendance")), "4/9", " / 15:00", format!("{}0", tr("Escalations")), ago],
        "assembly/line3": [tr("Closed"), "6/9", tr("Took"), format!("{}2 {old}", tr("Escalations"))],
        "assembly/line5": [tr("Huddle missed"), format!("{}—", tr("Present")), format!("{}1", tr("Escalations"))],
        "press/press4": [format!("{} · {}", tr("Offline"), tr("Not started"))],
    });
    if lang == "de" {
        assert_eq!(
            (tr("In progress"), tr("Present"), tr("Huddle missed")),
            ("Läuft".into(), "Anwesend".into(), "Runde verpasst".into())
        );
    }
    let texts: serde_json::Map<String, serde_json::Value> = ["In progress", "Open escalations"]
        .iter()
        .map(|e| (e.to_string(), tr(e).into()))
        .collect();
    let data = web::state_json(SITE, "Europe/Berlin", &hub.snapshot());
    let english = if lang == "en" {
        Vec::new()
    } else {
        english_left_out(lang, &data)
    };
    assert!(
        lang == "en" || english.len() > 30,
        "English to look for: {english:?}"
    );
    // The switch: to French, from French and English to German.
    let to = if lang == "fr" || lang == "en" {
        "de"
    } else {
        "fr"
    };
    let switch = serde_json::json!({
        "lang": to,
        "boards": web::i18n::catalogue(to)["Boards"][0],
    });
    let shots = std::env::var_os("DASHBOARD_SCREENSHOTS")
        .map(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("ui/screenshots"));
    let dir = tempfile::tempdir().unwrap();
    let mut node = Command::new(crate::support::require("node", "nodejs"));
    node.arg(driver.join("browser.js"))
        .current_dir(&driver)
        .env("DASHBOARD_URL", format!("http://127.0.0.1:{port}"))
        .env("DASHBOARD_TOKEN", TOKEN)
        .env("DASHBOARD_BOARDS", layout.len().to_string())
        .env("DASHBOARD_TAPPED", "assembly/line4")
        .env("DASHBOARD_EXPECT", expect.to_string())
        .env("DASHBOARD_DETAIL", "assembly/line3")
        .env("DASHBOARD_COACHING_ROWS", "4")
        .env(
            "DASHBOARD_TEXTS",
            serde_json::Value::Object(texts).to_string(),
        )
        .env(
            "DASHBOARD_ENGLISH",
            serde_json::to_string(&english).unwrap(),
        )
        .env("DASHBOARD_SWITCH", switch.to_string())
        .env("CHROMIUM", CHROMIUM)
        .env("CHROMIUM_PROFILE", dir.path().join("profile"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if lang != "en" {
        node.env("DASHBOARD_LANG", lang);
    }
    if let Some(dir) = shots.as_ref().filter(|_| lang == "en") {
        std::fs::create_dir_all(dir).unwrap();
        node.env("SCREENSHOT_DIR", dir);
    }
    let mut child = node
        .spawn()
        .unwrap_or_else(|e| panic!("node: {e}; {INSTALL_HELP}"));
    let mut stdin = child.stdin.take().unwrap();
    let mut said = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.expect("the driver's output");
        eprintln!("browser.js ({lang}): {line}");
        said.push(line.clone());
        if line == "READY" {
            hub.publish(
                &format!("huddle/v1/{SITE}/assembly/line4/status"),
                &demo::board("line4", "assembly", LiveState::InProgress, Utc::now(), 3),
                true,
            );
            writeln!(stdin, "TAPPED").unwrap();
        }
    }
    let status = child.wait().unwrap();
    assert!(
        status.success() && said.iter().any(|l| l == "PASS"),
        "the browser test failed ({status}): {said:?}"
    );
}
