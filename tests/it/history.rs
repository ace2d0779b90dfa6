//! `huddle-aggregator generate` and the aggregator on what it wrote:
//! - one seed (and `--until`) gives the same history, event for event;
//!   another seed another one; every event passes the aggregator's own
//!   validation on its board's topic and names only people of that
//!   board's roster, the ids of its own huddles, and a `seq` without gaps;
//! - on a generated site of 20 boards × 30 days the aggregator starts
//!   against a real Mosquitto, serves `/api/state` with every board at
//!   its stored `seq`, each board's open escalations and huddle state as
//!   the history says, the coaching figures of the roster's people; and a
//!   board's next event is stored and acknowledged with the chain digest
//!   of its whole history;
//! - the coaching thread's summary of the observations (their compact
//!   form), folded as rows arrive (in pieces, out of order), read again
//!   after a restart and kept up to date from the rows stored since,
//!   equals a full fold of the file, and the reports computed from it
//!   equal those computed from the full observations;
//! - what the aggregator keeps instead of replaying history equals a full
//!   recomputation on a generated month after a restart: the live status
//!   read at start (recent huddles, open needs) evaluates the same as
//!   every event replayed, and each board's ack and chain, kept by the
//!   store, are those of its events.
//!
//! Real Mosquitto, real SQLite, the real binary; nothing is mocked.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use huddle_board::aggregator::coaching::db::CoachingDb;
use huddle_board::aggregator::coaching::summary::Summary;
use huddle_board::aggregator::coaching::{
    fold, people_from_rosters, report, CoachingEvent, CompactObservation, Observation, Targets,
};
use huddle_board::aggregator::roster;
use huddle_board::aggregator::status::db::StatusDb;
use huddle_board::aggregator::status::{Rules, Site};
use huddle_board::aggregator::store::{Input, Store};
use huddle_board::aggregator::validate;
use huddle_board::wire::event::{
    chain_next, chain_start, Envelope, Event, NeedRef, ObservationAcknowledged,
};
use huddle_board::wire::payload::Ack;
use huddle_board::wire::topic::BoardTopics;

use crate::support::{free_port, retained, wait_for, wait_port, Aggregator, Mosquitto, Publisher};

const AGGREGATOR: &str = env!("CARGO_BIN_EXE_huddle-aggregator");
const SITE: &str = "plant1";
const TOKEN: &str = "test-dashboard-token-0123456789";

/// One exported event.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    board: String,
    seq: u64,
    id: String,
    at: String,
    kind: String,
    data: String,
    incarnation: String,
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

fn aggregator(dir: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new(AGGREGATOR)
        .arg("--config")
        .arg(dir.join("aggregator.toml"))
        .args(args)
        .env("HUDDLE_DATA_DIR", dir.join("data"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "huddle-aggregator {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `generate` into a new folder; returns it.
fn generate(boards: u32, days: u32, seed: u64, until: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), "");
    let (b, d, s) = (boards.to_string(), days.to_string(), seed.to_string());
    let mut args = vec!["generate", "--boards", &b, "--days", &d, "--seed", &s];
    if !until.is_empty() {
        args.extend(["--until", until]);
    }
    let out = aggregator(dir.path(), &args);
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(
        line.starts_with(&format!("generated {boards} boards")),
        "{line}"
    );
    dir
}

fn export(dir: &Path) -> Vec<Row> {
    let out = aggregator(dir, &["export", "--what", "events", "--format", "csv"]);
    let mut reader = csv::Reader::from_reader(out.stdout.as_slice());
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            Row {
                board: r[0].to_owned(),
                seq: r[1].parse().unwrap(),
                id: r[2].to_owned(),
                at: r[3].to_owned(),
                kind: r[4].to_owned(),
                data: r[5].to_owned(),
                incarnation: r[6].to_owned(),
            }
        })
        .collect()
}

/// Board → (area, its people) from the generated roster.
fn rosters(dir: &Path) -> BTreeMap<String, (String, BTreeSet<String>)> {
    let mut out: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    let text = std::fs::read_to_string(dir.join("data/roster.csv")).unwrap();
    let mut reader = csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    for r in reader.records() {
        let r = r.unwrap();
        let e = out
            .entry(r[3].to_owned())
            .or_insert_with(|| (r[4].to_owned(), BTreeSet::new()));
        e.1.insert(r[0].to_owned());
    }
    out
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

#[test]
fn generate_is_deterministic_for_a_seed_and_writes_only_what_boards_could() {
    let until = "2026-12-04T12:00:00Z";
    let a = generate(6, 12, 11, until);
    let b = generate(6, 12, 11, until);
    let c = generate(6, 12, 12, until);
    let (ea, eb, ec) = (export(a.path()), export(b.path()), export(c.path()));
    assert!(ea.len() > 1000, "{} events", ea.len());
    assert_eq!(ea, eb, "one seed, one history");
    assert_ne!(ea, ec, "another seed, another history");
    assert_eq!(
        std::fs::read(a.path().join("data/roster.csv")).unwrap(),
        std::fs::read(b.path().join("data/roster.csv")).unwrap()
    );

    let rosters = rosters(a.path());
    assert_eq!(rosters.len(), 6);
    let mut seqs: BTreeMap<&str, u64> = BTreeMap::new();
    let mut huddles: BTreeSet<String> = BTreeSet::new();
    let mut kinds: BTreeSet<&str> = BTreeSet::new();
    for r in &ea {
        assert!(at(&r.at) < at(until), "{r:?} is after --until");
        let (area, people) = &rosters[&r.board];
        // What a board of that roster would have sent, on its topic.
        let env = serde_json::json!({
            "schema": 2, "id": r.id, "board": r.board, "incarnation": r.incarnation,
            "seq": r.seq, "at": r.at, "clock_synced": true, "kind": r.kind,
            "data": serde_json::from_str::<serde_json::Value>(&r.data).unwrap(),
        });
        let topic = BoardTopics::new(SITE, area, &r.board).event(&r.kind);
        let accepted = validate(SITE, &topic, env.to_string().as_bytes(), 65536)
            .unwrap_or_else(|e| panic!("{r:?} is refused: {e:?}"));
        assert_eq!(accepted.envelope.seq, r.seq);
        let last = seqs.entry(&r.board).or_insert(0);
        assert_eq!(r.seq, *last + 1, "a gap on {}", r.board);
        *last = r.seq;
        kinds.insert(&r.kind);
        let data: serde_json::Value = serde_json::from_str(&r.data).unwrap();
        for key in [
            "person_id",
            "owner",
            "started_by",
            "closed_by",
            "learner",
            "observer",
        ] {
            if let Some(p) = data[key].as_str() {
                assert!(
                    people.contains(p),
                    "{p} ({key}) is not on {}'s roster",
                    r.board
                );
            }
        }
        match r.kind.as_str() {
            "huddle.started" => {
                huddles.insert(data["huddle_id"].as_str().unwrap().to_owned());
            }
            "attendance.tapped" | "kpi.reviewed" | "huddle.closed" | "huddle.advanced" => {
                let h = data["huddle_id"].as_str().unwrap();
                assert!(huddles.contains(h), "{r:?} names a huddle never started");
            }
            _ => {}
        }
    }
    for k in [
        "huddle.started",
        "attendance.tapped",
        "huddle.advanced",
        "kpi.reviewed",
        "action.created",
        "action.updated",
        "need.raised",
        "need.escalated",
        "need.closed",
        "experiment.updated",
        "huddle.closed",
        "observation.recorded",
        "observation.acknowledged",
    ] {
        assert!(kinds.contains(k), "no {k} in a generated fortnight");
    }
}

/// One HTTP request to the dashboard; the body of a 200.
fn api_state(port: u16) -> serde_json::Value {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /api/state HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    serde_json::from_str(body).expect("/api/state is JSON")
}

/// The board's state as the live status rules give it without a
/// schedule; `None` near a boundary of those rules (the test's clock
/// moves on while it runs).
fn expected_state(rows: &[&Row], now: DateTime<Utc>) -> Option<&'static str> {
    let mut started: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
    let mut closed = BTreeSet::new();
    for r in rows {
        let data: serde_json::Value = serde_json::from_str(&r.data).unwrap();
        let id = data["huddle_id"].as_str().unwrap_or_default().to_owned();
        match r.kind.as_str() {
            "huddle.started" => {
                started.insert(id, at(&r.at));
            }
            "huddle.closed" => {
                closed.insert(id);
            }
            _ => {}
        }
    }
    let near = |t: DateTime<Utc>, hours: i64| {
        ((now - t) - chrono::Duration::hours(hours))
            .num_seconds()
            .abs()
            < 300
    };
    let latest = started.iter().max_by_key(|(_, t)| **t)?;
    if started.values().any(|t| near(*t, 12) || near(*t, 24)) {
        return None;
    }
    let running = started
        .iter()
        .any(|(id, t)| !closed.contains(id) && now - *t < chrono::Duration::hours(24));
    Some(if running {
        "in_progress"
    } else if now - *latest.1 < chrono::Duration::hours(12) && closed.contains(latest.0) {
        "closed"
    } else {
        "not_started"
    })
}

/// Open escalations per board, from the history.
fn open_escalations(rows: &[Row]) -> BTreeMap<String, usize> {
    let mut open: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in rows {
        let data: serde_json::Value = serde_json::from_str(&r.data).unwrap();
        let need = data["need_id"].as_str().unwrap_or_default().to_owned();
        let set = open.entry(r.board.clone()).or_default();
        match r.kind.as_str() {
            "need.raised" if data["escalated"] == true => {
                set.insert(need);
            }
            "need.escalated" => {
                set.insert(need);
            }
            "need.closed" => {
                set.remove(&need);
            }
            _ => {}
        }
    }
    open.into_iter().map(|(b, s)| (b, s.len())).collect()
}

#[test]
fn the_aggregator_runs_on_a_generated_month_and_takes_the_next_event() {
    crate::support::require("mosquitto_sub", "mosquitto-clients");
    let dir = generate(20, 30, 7, "");
    let rows = export(dir.path());
    let rosters = rosters(dir.path());
    let broker = Mosquitto::start();
    let web = free_port();
    write_config(
        dir.path(),
        &format!(
            "[roster]\nfile = \"{}\"\n[web]\nlisten = \"127.0.0.1:{web}\"\ntoken = \"{TOKEN}\"\n",
            dir.path().join("data/roster.csv").display()
        ),
    );
    let mut agg = Aggregator::start(dir.path(), &broker.url());
    if !wait_port(web, Duration::from_secs(30)) {
        agg.assert_running();
        panic!("no dashboard on {web}:\n{}", agg.log());
    }

    let mut by_board: BTreeMap<String, Vec<&Row>> = BTreeMap::new();
    for r in &rows {
        by_board.entry(r.board.clone()).or_default().push(r);
    }
    assert_eq!(by_board.len(), 20);
    let key = |board: &str| format!("{}/{board}", rosters[board].0);
    let state = wait_for("every board in /api/state", Duration::from_secs(60), || {
        agg.assert_running();
        let s = api_state(web);
        let all = by_board
            .keys()
            .all(|b| s["boards"][key(b)]["status"].is_object());
        (all && s["coaching"].is_object()).then_some(s)
    });
    let now = Utc::now();
    let escalations = open_escalations(&rows);
    for (board, events) in &by_board {
        let status = &state["boards"][key(board)]["status"];
        assert_eq!(status["last_seq"], events.len() as u64, "{board}: {status}");
        assert_eq!(
            status["last_event_at"].as_str().map(at),
            Some(at(&events.last().unwrap().at)),
            "{board}"
        );
        let listed = status["escalations"].as_array().unwrap().len() as u64;
        let more = status["escalations_more"].as_u64().unwrap_or(0);
        assert_eq!(
            (listed + more) as usize,
            escalations.get(board).copied().unwrap_or(0),
            "{board}'s open escalations: {status}"
        );
        if let Some(expected) = expected_state(events, now) {
            assert_eq!(status["state"], expected, "{board}: {status}");
        }
    }
    assert_eq!(state["site"]["boards"], 20, "{}", state["site"]);
    let people = state["coaching"]["people"].as_array().unwrap();
    let leaders = people.iter().filter(|p| p["role"] == "team_leader").count();
    assert_eq!(
        leaders, 20,
        "every board's team leader has coaching figures"
    );
    assert!(
        people
            .iter()
            .any(|p| p["count_in_window"].as_u64() > Some(0)),
        "nobody was observed this week"
    );

    // A board's next event: stored, and acknowledged with the chain of
    // its whole history.
    let board = by_board.keys().next().unwrap().clone();
    let history = &by_board[&board];
    let incarnation = history[0].incarnation.clone();
    let seq = history.len() as u64 + 1;
    let mut env = Envelope::new(
        &board,
        seq,
        Utc::now(),
        true,
        &Event::NeedClosed(NeedRef {
            need_id: "n-after-the-history".into(),
            by: None,
        }),
    )
    .in_incarnation(&incarnation, 1);
    env.id = uuid::Uuid::now_v7();
    let mut chain = chain_start(&incarnation);
    for r in history.iter() {
        chain = chain_next(&chain, &r.id.parse().unwrap());
    }
    chain = chain_next(&chain, &env.id);
    let topics = BoardTopics::new(SITE, &rosters[&board].0, &board);
    let mut publisher = Publisher::connect(broker.port);
    let deadline = Instant::now() + Duration::from_secs(60);
    let ack = loop {
        // Sent again until acknowledged: the aggregator's subscription may
        // come after the first publication (a duplicate is harmless).
        publisher.publish(topics.event(&env.kind), false, env.to_json().into_bytes());
        publisher.flush();
        let text = retained(broker.port, &topics.ack());
        if let Ok(ack) = serde_json::from_str::<Ack>(&text) {
            if ack.incarnation(&incarnation).is_some_and(|i| i.seq == seq) {
                break ack;
            }
        }
        agg.assert_running();
        assert!(Instant::now() < deadline, "no ack of {seq}:\n{}", agg.log());
    };
    assert_eq!(ack.incarnation(&incarnation).unwrap().chain, chain);
    let stored = export(dir.path());
    assert_eq!(stored.len(), rows.len() + 1);
    assert!(stored
        .iter()
        .any(|r| r.id == env.id.to_string() && r.seq == seq));
}

#[test]
fn what_is_kept_at_start_equals_a_full_recomputation_on_a_generated_month() {
    let dir = generate(30, 30, 3, "");
    let rows = export(dir.path());
    let db = dir.path().join(format!("data/aggregator-{SITE}.db"));
    let now = Utc::now();
    let rules = Rules {
        escalation_stale: chrono::Duration::hours(4),
        offline_after: chrono::Duration::minutes(2),
    };
    let tz: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
    let status = StatusDb::open(&db).unwrap();
    let (mut kept, mut full) = (
        Site::new(SITE, tz, rules, now),
        Site::new(SITE, tz, rules, now),
    );
    let read = status.load(&mut kept, now).unwrap();
    let all = status.load_full(&mut full, now).unwrap();
    assert!(
        read * 3 < all,
        "the start read {read} of {all} events: it walks the history"
    );
    let first = status
        .first_recent_row(now - chrono::Duration::hours(50))
        .unwrap();
    assert!(first > 1, "the recent rows start at {first}");
    let (a, b) = (kept.evaluate(now), full.evaluate(now));
    assert_eq!(a.boards.len(), 30);
    assert!(
        a.boards.iter().any(|s| !s.escalations.is_empty()),
        "no open escalation in a generated month"
    );
    assert_eq!(a, b, "the status read at start differs from a full replay");

    // The store's per-board rows, read back at open: each board's ack
    // and chain are those of its stored events.
    let store = Store::open(&db).unwrap();
    let mut chains: BTreeMap<&str, (String, u64)> = BTreeMap::new();
    for r in &rows {
        let (chain, n) = chains
            .entry(&r.board)
            .or_insert_with(|| (chain_start(&r.incarnation), 0));
        *chain = chain_next(chain, &r.id.parse().unwrap());
        *n += 1;
    }
    let acks = store.acks(now);
    assert_eq!(acks.len(), 30);
    for (_, ack) in acks {
        let (chain, n) = &chains[ack.board.as_str()];
        let i = &ack.incarnations[0];
        assert_eq!((i.seq, &i.chain), (*n, chain), "{}", ack.board);
    }
}

/// A reproducible shuffle (xorshift): rows that arrive out of order, with
/// acknowledgements before their recordings.
fn shuffled<T>(mut items: Vec<T>, mut seed: u64) -> Vec<T> {
    for i in (1..items.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        items.swap(i, (seed % (i as u64 + 1)) as usize);
    }
    items
}

fn compacted(folded: &[Observation]) -> Vec<CompactObservation> {
    folded.iter().map(CompactObservation::from).collect()
}

#[test]
fn the_coaching_summary_equals_a_full_recomputation_after_a_restart() {
    let dir = generate(20, 30, 5, "");
    let path = dir.path().join(format!("data/aggregator-{SITE}.db"));
    let people = people_from_rosters(&roster::load(&dir.path().join("data/roster.csv")).unwrap());
    let targets = Targets {
        team_leader: 1,
        supervisor: 1,
        window: chrono::Duration::days(7),
    };
    let db = CoachingDb::open(&path).unwrap();
    let since = db.since().unwrap();
    // The report from the kept (compact) observations and from the full
    // ones, as the export computes it.
    let reports_equal = |kept: &[CompactObservation], full: &[Observation], what: &str| {
        let now = Utc::now();
        for at in [now, now - chrono::Duration::days(12)] {
            let a = report(SITE, &people, kept, targets, since, at);
            let b = report(SITE, &people, full, targets, since, at);
            assert!(a.people.len() > 20, "{what}: {} people", a.people.len());
            assert_eq!(a, b, "{what}: the report at {at} differs");
        }
    };

    // Rows arriving in pieces and out of order, folded as they come.
    let (events, problems, _) = db.events_after(0).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    let events = shuffled(events, 0x9e37_79b9_7f4a_7c15);
    let mut seen = BTreeSet::new();
    let mut early_acks = 0;
    for e in &events {
        match &e.event {
            CoachingEvent::Recorded(r) => {
                seen.insert(r.observation_id.as_str());
            }
            CoachingEvent::Acknowledged(a) => {
                early_acks += usize::from(!seen.contains(a.observation_id.as_str()));
            }
        }
    }
    assert!(
        early_acks > 10,
        "only {early_acks} acknowledgements before their recording"
    );
    let mut live = Summary::new();
    for piece in events.chunks(23) {
        assert_eq!(live.apply(piece.to_vec()), Vec::<String>::new());
    }
    let full = fold(events).observations;
    assert!(full.len() > 100, "{}", full.len());
    assert!(full.iter().any(|o| o.helpfulness.is_some()));
    assert_eq!(
        live.observations(),
        compacted(&full),
        "folded as the rows came"
    );
    reports_equal(live.observations(), &full, "folded as the rows came");

    // After a restart: the summary is read from the file, then kept up to
    // date from the rows stored since, as the coaching thread does.
    let mut restarted = Summary::new();
    assert_eq!(restarted.update(&db).unwrap(), Vec::<String>::new());
    let full = db.observations().unwrap().observations;
    assert_eq!(restarted.observations(), compacted(&full), "read at start");
    reports_equal(restarted.observations(), &full, "read at start");

    let last = full.last().unwrap().clone();
    let unrated = full
        .iter()
        .find(|o| o.helpfulness.is_none())
        .unwrap()
        .clone();
    let mut again = last.recorded.clone();
    again.observation_id = "o-after-the-restart".into();
    let ack = |o: &str, learner: &str, helpfulness| {
        Event::ObservationAcknowledged(ObservationAcknowledged {
            observation_id: o.into(),
            learner: learner.into(),
            helpfulness,
        })
    };
    let input = |seq, at, e: &Event| Input::Event {
        area: "assembly".into(),
        envelope: validate::Incoming::from_envelope(&Envelope::new("b-new", seq, at, true, e)),
    };
    let now = Utc::now();
    let mut store = Store::open(&path).unwrap();
    // Its acknowledgement first, then the recording (dated before the
    // history's last), then an acknowledgement of an older observation.
    for (seq, e) in [
        (1, ack(&again.observation_id, &again.learner, 4)),
        (2, Event::ObservationRecorded(again.clone())),
        (
            3,
            ack(
                &unrated.recorded.observation_id,
                &unrated.recorded.learner,
                2,
            ),
        ),
    ] {
        let at = if seq == 2 {
            last.at - chrono::Duration::hours(1)
        } else {
            now
        };
        store.apply(&[input(seq, at, &e)], now).unwrap();
        assert_eq!(restarted.update(&db).unwrap(), Vec::<String>::new());
    }
    let full = db.observations().unwrap().observations;
    assert_eq!(full.len(), restarted.observations().len());
    assert!(full
        .iter()
        .any(|o| o.recorded.observation_id == again.observation_id && o.helpfulness == Some(4)));
    assert_eq!(
        restarted.observations(),
        compacted(&full),
        "kept up to date after the restart"
    );
    reports_equal(
        restarted.observations(),
        &full,
        "kept up to date after the restart",
    );
}
