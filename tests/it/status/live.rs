//! The live status end to end: real kiosks (the kiosk core and its real
//! outbox publisher, each with its own SQLite file), a real Mosquitto, the
//! real `huddle-aggregator` binary.
//!
//! Three boards: `demo` runs a huddle (the team leader and one member
//! tapped in), `line2` has a huddle due at the next minute that nobody
//! starts (grace 0), `line3` crashes (its last will). The retained board
//! and site status topics must show in progress / missed / offline with the
//! right counts, `line2`'s missed huddle and `line3`'s going offline must
//! each raise one alert, and after the aggregator is killed and started
//! again the statuses are rebuilt (from its database and the boards'
//! retained schedules) without any alert repeated.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::board::{badge, SHIPPED};
use crate::support::wait_for;
use crate::support::{Aggregator, Mosquitto, Sub};
use chrono::{DateTime, Duration as Span, Timelike, Utc};
use huddle_board::kiosk::app::Board;
use huddle_board::kiosk::config::KioskConfig;
use huddle_board::kiosk::outbox::Outbox;
use huddle_board::wire::payload::{
    AlertKind, BoardAlert, BoardLive, LiveState, ScheduleMessage, SiteLive, StateCounts,
};

const TZ: chrono_tz::Tz = chrono_tz::Europe::Berlin;

/// [`wait_for`], failing with `dump()` (what was seen, the logs).
fn wait_or<T>(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> Option<T>,
    dump: impl Fn() -> String,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out waiting for {what}\n{}",
            dump()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every payload received on `topic`, oldest first.
fn on<T: serde::de::DeserializeOwned>(sub: &Sub, topic: &str) -> Vec<T> {
    sub.text()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(t, _)| *t == topic)
        .filter_map(|(_, p)| serde_json::from_str(p).ok())
        .collect()
}

fn board_config(dir: &Path, url: &str, id: &str, area: &str, schedule: &str) -> KioskConfig {
    let text = SHIPPED
        .replace("id = \"demo\"", &format!("id = \"{id}\""))
        .replace("area = \"assembly\"", &format!("area = \"{area}\""))
        .replace(
            "schedule = [\"06:45\", \"14:45\"]",
            &format!("schedule = [\"{schedule}\"]"),
        )
        .replace("grace_minutes = 5", "grace_minutes = 0");
    let mut c = KioskConfig::from_toml(&text, Path::new("kiosk.toml")).unwrap();
    assert_eq!(
        c.board.id, id,
        "the shipped kiosk.toml changed its board id line"
    );
    assert_eq!(c.huddle.grace_minutes, 0, "the shipped kiosk.toml changed");
    c.storage.data_dir = dir.join(id);
    c.mqtt.url = url.to_owned();
    c.mqtt.keep_alive_s = 5;
    c
}

/// The next whole local minute at least `ahead` from now.
fn next_minute(ahead: Span) -> DateTime<Utc> {
    let t = Utc::now() + ahead;
    let floor = t.with_second(0).unwrap().with_nanosecond(0).unwrap();
    floor + Span::minutes(1)
}

fn hhmm(t: DateTime<Utc>) -> String {
    t.with_timezone(&TZ).format("%H:%M").to_string()
}

#[test]
fn kiosks_reach_the_retained_statuses_and_a_missed_huddle_alerts_once() {
    crate::support::require("mosquitto_sub", "mosquitto-clients");
    let broker = Mosquitto::start();
    let url = broker.url();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("aggregator.toml"),
        format!(
            "[site]\nid = \"plant1\"\ntimezone = \"Europe/Berlin\"\nsite_key = \"demo-site-key-change-me\"\n\
             [roster]\nfile = \"{}\"\n",
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("config/roster.csv")
                .display()
        ),
    )
    .unwrap();
    // One copy of the binary for both runs: the shared target directory
    // may be rebuilt by other work while this test waits.
    let bin = dir.path().join("huddle-aggregator");
    std::fs::copy(env!("CARGO_BIN_EXE_huddle-aggregator"), &bin).unwrap();
    let all = Sub::start(broker.port, "huddle/v1/plant1/#", dir.path());
    let mut agg = Aggregator::start_bin(&bin, dir.path(), &url);

    // line2's huddle is due at the next minute (grace 0); the others' slot
    // is two hours away, so nothing of theirs is due or missed.
    let due = next_minute(Span::seconds(20));
    let later = hhmm(due + Span::hours(2));
    let kiosks = dir.path().join("kiosks");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let demo_config = board_config(&kiosks, &url, "demo", "assembly", &later);
    let mut demo = Board::open(demo_config.clone(), Utc::now()).unwrap();
    let demo_out = Outbox::start(&demo_config, rt.handle(), Box::new(|_| {})).unwrap();
    let mut others = Vec::new();
    for (id, area, at) in [
        ("line2", "assembly", hhmm(due)),
        ("line3", "paint", later.clone()),
    ] {
        let c = board_config(&kiosks, &url, id, area, &at);
        drop(huddle_board::kiosk::store::Store::open(&c.database_path(), id).unwrap());
        others.push(Outbox::start(&c, rt.handle(), Box::new(|_| {})).unwrap());
    }
    // The team leader starts; one member taps in.
    demo.handle(badge("1001"), Utc::now()).unwrap();
    demo.handle(badge("1002"), Utc::now()).unwrap();
    demo_out.notify();

    let status = |b: &str, area: &str| format!("huddle/v1/plant1/{area}/{b}/status");
    let agg_log = agg.log_path();
    let live = wait_or(
        "demo in progress",
        Duration::from_secs(60),
        || {
            agg.assert_running();
            on::<BoardLive>(&all, &status("demo", "assembly"))
                .into_iter()
                .last()
                .filter(|s| {
                    s.state == LiveState::InProgress
                        && s.huddle.as_ref().is_some_and(|h| h.present == 2)
                })
        },
        || {
            format!(
                "seen:\n{}\naggregator:\n{}",
                all.text(),
                std::fs::read_to_string(&agg_log).unwrap_or_default()
            )
        },
    );
    let h = live.huddle.unwrap();
    assert_eq!(h.expected, 6, "the roster's team leader and five members");
    assert_eq!(h.step.as_deref(), Some("attendance"));
    assert_eq!(
        h.scheduled_at, None,
        "started by the team leader outside every window"
    );
    assert!(live.online);
    assert_eq!(live.last_seq, demo.store().last_seq().unwrap());
    // The kiosk's schedule is retained, as published.
    let schedule = wait_for("line2's schedule", Duration::from_secs(10), || {
        on::<ScheduleMessage>(&all, "huddle/v1/plant1/assembly/line2/schedule").pop()
    });
    assert_eq!(schedule.times, [hhmm(due)]);
    assert_eq!(
        (schedule.timezone.as_str(), schedule.grace_s),
        ("Europe/Berlin", 0)
    );

    // line3 crashes: its last will says offline.
    wait_for("line3 online", Duration::from_secs(20), || {
        on::<BoardLive>(&all, &status("line3", "paint"))
            .last()
            .filter(|s| s.online)
            .cloned()
    });
    drop(others.pop());
    wait_for("line3 offline", Duration::from_secs(30), || {
        on::<BoardLive>(&all, &status("line3", "paint"))
            .last()
            .filter(|s| !s.online)
            .cloned()
    });

    // line2's huddle: not started before its time, missed after it.
    let before: Vec<BoardLive> = on(&all, &status("line2", "assembly"));
    assert!(
        before.iter().all(|s| s.state == LiveState::NotStarted),
        "{before:?}"
    );
    assert_eq!(before.last().and_then(|s| s.next_due_at), Some(due));
    let missed = wait_for("line2 missed", Duration::from_secs(100), || {
        agg.assert_running();
        on::<BoardLive>(&all, &status("line2", "assembly"))
            .into_iter()
            .last()
            .filter(|s| s.state == LiveState::Missed)
    });
    assert!(Utc::now() >= due, "missed before its time");
    assert!(missed.online);
    let site_topic = "huddle/v1/plant1/status";
    let today = Utc::now().with_timezone(&TZ).date_naive() == due.with_timezone(&TZ).date_naive();
    let expected_site = |s: &SiteLive| {
        s.boards == 3
            && s.states
                == StateCounts {
                    not_started: 1,
                    in_progress: 1,
                    closed: 0,
                    missed: 1,
                    offline: 1,
                }
            && s.missed_today == u32::from(today)
            && s.held_today == 0
            && s.attendance_rate == Some(0.333)
            && s.open_escalations == 0
    };
    let t0 = Instant::now();
    while !on::<SiteLive>(&all, site_topic)
        .last()
        .is_some_and(expected_site)
    {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the site summary: {:?} (today: {today})",
            on::<SiteLive>(&all, site_topic).last()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let alerts = |all: &Sub| -> Vec<BoardAlert> {
        let text = all.text();
        text.lines()
            .filter(|l| l.starts_with("huddle/v1/plant1/alert/"))
            .filter_map(|l| serde_json::from_str(l.split_once(' ')?.1).ok())
            .collect()
    };
    let seen = wait_for("the two alerts", Duration::from_secs(10), || {
        Some(alerts(&all)).filter(|a| a.len() >= 2)
    });
    std::thread::sleep(Duration::from_secs(2));
    let seen_now = alerts(&all);
    assert_eq!(seen.len(), seen_now.len(), "alerts repeated: {seen_now:?}");
    let mut kinds: Vec<(AlertKind, &str)> = seen_now
        .iter()
        .map(|a| (a.kind, a.board.as_str()))
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            (AlertKind::MissedHuddle, "line2"),
            (AlertKind::BoardOffline, "line3")
        ]
    );
    let m = seen_now
        .iter()
        .find(|a| a.kind == AlertKind::MissedHuddle)
        .unwrap();
    assert_eq!((m.scheduled_at, m.at), (Some(due), due));
    assert!(all
        .text()
        .contains("huddle/v1/plant1/alert/missed_huddle {"));

    // Retained: a dashboard that subscribes now reads the same picture.
    let late = Sub::start(broker.port, "huddle/v1/plant1/+/+/status", dir.path());
    let late_site = Sub::start(broker.port, site_topic, dir.path());
    wait_for("the retained statuses", Duration::from_secs(10), || {
        let states: Vec<(String, LiveState, bool)> = ["demo", "line2", "line3"]
            .iter()
            .zip(["assembly", "assembly", "paint"])
            .filter_map(|(b, a)| on::<BoardLive>(&late, &status(b, a)).pop())
            .map(|s| (s.board, s.state, s.online))
            .collect();
        (states
            == [
                ("demo".to_owned(), LiveState::InProgress, true),
                ("line2".to_owned(), LiveState::Missed, true),
                ("line3".to_owned(), LiveState::NotStarted, false),
            ])
        .then_some(())
    });
    assert!(on::<SiteLive>(&late_site, site_topic)
        .last()
        .is_some_and(expected_site));

    // A restart: rebuilt from the database and the retained schedules; no
    // alert is repeated.
    drop(agg);
    let restarted = Sub::start(broker.port, "huddle/v1/plant1/#", dir.path());
    let mut agg = Aggregator::start_bin(&bin, dir.path(), &url);
    wait_for("the rebuilt statuses", Duration::from_secs(20), || {
        agg.assert_running();
        let mut demos = on::<BoardLive>(&restarted, &status("demo", "assembly"));
        // The first is the broker's retained copy; then the new aggregator's.
        if demos.len() < 2 || !agg.log().contains("live status rebuilt") {
            return None;
        }
        let demo = demos.pop()?;
        let line2 = on::<BoardLive>(&restarted, &status("line2", "assembly")).pop()?;
        (demo.state == LiveState::InProgress
            && demo.huddle.as_ref().is_some_and(|h| h.present == 2)
            && line2.state == LiveState::Missed)
            .then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    let line2: Vec<BoardLive> = on(&restarted, &status("line2", "assembly"));
    assert!(
        line2.iter().all(|s| s.state == LiveState::Missed),
        "line2 must stay missed through the restart (its schedule is replayed first): {line2:?}"
    );
    assert!(
        alerts(&restarted).is_empty(),
        "alerts repeated after a restart: {:?}\n{}",
        alerts(&restarted),
        agg.log()
    );
    rt.block_on(async {
        demo_out.shutdown().await;
        for o in others {
            o.shutdown().await;
        }
    });
}
