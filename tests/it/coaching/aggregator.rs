//! The coaching loop end to end: the real `huddle-aggregator` binary, a
//! real Mosquitto, a real SQLite file.
//!
//! Observations are published as a board publishes them (the recorded
//! event and its acknowledgement as consecutive seqs, one left
//! unacknowledged); they appear in the retained `huddle/v1/{site}/coaching`
//! payload and in both CSV exports. The coaching start is moved back so
//! that a team leader nobody observed crosses into overdue a few seconds
//! after the start: exactly one alert, not retained, and nobody observed
//! in time is alerted.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::{wait_for, Aggregator, Mosquitto, Publisher, Sub};
use chrono::{DateTime, NaiveDate, Utc};
use huddle_board::aggregator::coaching::{
    OverdueAlert, Report, Trend, COACHING_COLUMNS, OBSERVATION_COLUMNS,
};
use huddle_board::aggregator::store::Store;
use huddle_board::domain::{mean_score, BehaviourScore, ObservationLevel, Pick, Role, SelfView};
use huddle_board::wire::event::{Envelope, Event, ObservationAcknowledged, ObservationRecorded};
use huddle_board::wire::topic::{BoardTopics, SiteTopics};

const AGGREGATOR: &str = env!("CARGO_BIN_EXE_huddle-aggregator");
const SITE_KEY: &str = "demo-site-key-change-me";
/// The grace left before the never-observed people become overdue.
const GRACE_S: i64 = 20;

/// Publishes the envelope on its event topic, as a board does.
fn publish_event(p: &mut Publisher, board: &BoardTopics, e: &Envelope) {
    p.publish(board.event(&e.kind), false, e.to_json().into_bytes());
}

/// The payloads printed by `mosquitto_sub -v` (one JSON line per message).
fn export(dir: &Path, what: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let out = Command::new(AGGREGATOR)
        .arg("--config")
        .arg(dir.join("aggregator.toml"))
        .args(["export", "--what", what, "--format", "csv"])
        .env("HUDDLE_DATA_DIR", dir.join("data"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "export --what {what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut reader = csv::Reader::from_reader(out.stdout.as_slice());
    let header = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let rows = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    (header, rows)
}

/// Every behaviour of the level at `base`, some overridden.
fn recorded(
    id: &str,
    level: ObservationLevel,
    observer: &str,
    learner: &str,
    base: u8,
    overrides: &[(&str, u8)],
    focus: &str,
) -> ObservationRecorded {
    ObservationRecorded {
        observation_id: id.into(),
        level,
        observer: observer.into(),
        learner: learner.into(),
        huddle_id: None,
        self_view: SelfView::SoSo,
        scores: level
            .behaviours()
            .iter()
            .map(|b| BehaviourScore {
                behaviour: (*b).into(),
                score: overrides
                    .iter()
                    .find(|(k, _)| k == b)
                    .map_or(base, |(_, s)| *s),
            })
            .collect(),
        strength: Pick {
            behaviour: level.behaviours()[0].into(),
            note: String::new(),
        },
        focus: Pick {
            behaviour: focus.into(),
            note: "one point".into(),
        },
        trigger: "next huddle".into(),
        reobserve_on: NaiveDate::from_ymd_opt(2026, 12, 10).unwrap(),
    }
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 0.001)
}

#[test]
fn observations_reach_the_coaching_topic_the_alert_and_both_exports() {
    crate::support::require("mosquitto_sub", "mosquitto-clients");
    let broker = Mosquitto::start();
    let url = broker.url();
    let dir = tempfile::tempdir().unwrap();
    let roster = dir.path().join("roster.csv");
    std::fs::write(
        &roster,
        "person_id,name,role,board,area,coach,badge_hashes\n\
         p01,Eva Novak,team_leader,demo,assembly,p07,\n\
         p02,Tom Berg,team_leader,demo,assembly,p07,\n\
         p03,Ana Silva,member,demo,assembly,p01,\n\
         p07,Sam Reyes,supervisor,demo,assembly,p08,\n\
         p08,Mira Kowalski,manager,demo,assembly,,\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("aggregator.toml"),
        format!(
            "[site]\nid = \"plant1\"\ntimezone = \"Europe/Berlin\"\nsite_key = \"{SITE_KEY}\"\n\
             [roster]\nfile = \"{}\"\n[coaching]\nrecompute_s = 1\n",
            roster.display()
        ),
    )
    .unwrap();

    // The coaching start moved back: the grace of the never-observed ends
    // GRACE_S seconds from now.
    let db = dir.path().join("data/aggregator-plant1.db");
    drop(Store::open(&db).unwrap());
    let since = Utc::now() - chrono::Duration::days(7) + chrono::Duration::seconds(GRACE_S);
    let since = DateTime::from_timestamp_millis(since.timestamp_millis()).unwrap();
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute(
            "UPDATE coaching_meta SET value = ?1 WHERE key = 'since'",
            [since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)],
        )
        .unwrap();
    let due = since + chrono::Duration::days(7);

    let site = SiteTopics::new("plant1");
    let coaching_sub = Sub::start(broker.port, &site.coaching(), dir.path());
    let alert_sub = Sub::start(broker.port, &site.coaching_overdue_alert(), dir.path());
    let mut agg = Aggregator::start(dir.path(), &url);
    let first = wait_for("the first coaching report", Duration::from_secs(20), || {
        agg.assert_running();
        coaching_sub.payloads::<Report>().into_iter().next()
    });
    let ids: Vec<&str> = first.people.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(
        ids,
        ["p08", "p07", "p01", "p02"],
        "managers, supervisors, team leaders; no members"
    );
    assert_eq!(
        (
            first.window_days,
            first.targets.team_leader,
            first.targets.supervisor
        ),
        (7, 2, 1)
    );
    assert_eq!(first.since, since);
    assert!(first.people.iter().all(|e| !e.overdue));
    assert_eq!(first.people[2].due_by, Some(due));

    // The board: p08 observes p07's coaching, p07 observes p01 twice (the
    // second one not yet confirmed). Recorded + acknowledged as
    // consecutive seqs, as the kiosk sends them.
    let demo = BoardTopics::new("plant1", "assembly", "demo");
    let mut board = Publisher::connect(broker.port);
    let c1 = recorded(
        "c1",
        ObservationLevel::Coaching,
        "p08",
        "p07",
        3,
        &[],
        "asked_not_told",
    );
    let o1 = recorded(
        "o1",
        ObservationLevel::Facilitation,
        "p07",
        "p01",
        2,
        &[("parked_discussions", 1)],
        "parked_discussions",
    );
    let o2 = recorded(
        "o2",
        ObservationLevel::Facilitation,
        "p07",
        "p01",
        3,
        &[("parked_discussions", 4)],
        "board_prepared",
    );
    let ack = |id: &str, learner: &str, helpfulness| {
        Event::ObservationAcknowledged(ObservationAcknowledged {
            observation_id: id.into(),
            learner: learner.into(),
            helpfulness,
        })
    };
    let events = [
        Event::ObservationRecorded(c1.clone()),
        ack("c1", "p07", 5),
        Event::ObservationRecorded(o1.clone()),
        ack("o1", "p01", 4),
        Event::ObservationRecorded(o2.clone()),
    ];
    let mut times = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let at = DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap();
        times.push(at);
        publish_event(
            &mut board,
            &demo,
            &Envelope::new("demo", i as u64 + 1, at, true, e),
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    board.flush();

    let counted = wait_for(
        "the observations in the report",
        Duration::from_secs(20),
        || {
            agg.assert_running();
            coaching_sub.payloads::<Report>().into_iter().find(|r| {
                r.people
                    .iter()
                    .any(|e| e.id == "p01" && e.count_in_window == Some(2))
                    && r.people
                        .iter()
                        .any(|e| e.id == "p08" && e.helpfulness.is_some())
            })
        },
    );
    assert!(
        counted.at < due,
        "the machine is too slow for this test: the observations were counted at {}, \
         after the grace ended at {due}",
        counted.at
    );

    // p02 crosses into overdue: one alert, once.
    let alert = wait_for(
        "the overdue alert",
        Duration::from_secs(GRACE_S as u64 + 20),
        || {
            agg.assert_running();
            alert_sub.payloads::<OverdueAlert>().into_iter().next()
        },
    );
    assert_eq!(
        (alert.id.as_str(), alert.kind.as_str()),
        ("p02", "coaching_overdue")
    );
    assert_eq!(
        (alert.name.as_str(), alert.role),
        ("Tom Berg", Role::TeamLeader)
    );
    assert_eq!(alert.coach.as_deref(), Some("p07"));
    assert_eq!(
        (alert.overdue_since, alert.count_in_window, alert.target),
        (due, 0, 2)
    );
    // Three more computations (recompute_s = 1): no second alert.
    std::thread::sleep(Duration::from_secs(3));
    let alerts: Vec<OverdueAlert> = alert_sub.payloads();
    assert_eq!(alerts.len(), 1, "{alerts:?}");

    let report = coaching_sub.payloads::<Report>().pop().unwrap();
    let entry = |id: &str| report.people.iter().find(|e| e.id == id).unwrap().clone();
    let p02 = entry("p02");
    assert!(p02.overdue && p02.overdue_s >= 1, "{p02:?}");
    assert_eq!((p02.count_in_window, p02.last_observed), (Some(0), None));

    let p01 = entry("p01");
    assert!(!p01.overdue);
    assert_eq!(
        (p01.name.as_str(), p01.coach.as_deref()),
        ("Eva Novak", Some("p07"))
    );
    assert_eq!(p01.last_observed, Some(times[4]));
    let s1 = mean_score(&o1.scores).unwrap();
    let s2 = mean_score(&o2.scores).unwrap();
    assert!(close(p01.score, (s1 + s2) / 2.0), "{p01:?}");
    assert_eq!(p01.trend, Some(Trend::Rising));
    assert_eq!(
        p01.due_by,
        Some(times[2] + chrono::Duration::days(7)),
        "the window stops holding two when o1 leaves it"
    );

    let p07 = entry("p07");
    assert_eq!((p07.count_in_window, p07.overdue), (Some(1), false));
    assert_eq!(p07.due_by, Some(times[0] + chrono::Duration::days(7)));
    assert!(close(p07.score, 3.0));
    assert_eq!(
        (p07.coached, p07.learners, p07.learners_measured),
        (Some(2), Some(1), Some(1))
    );
    assert!(close(p07.learner_change, s2 - s1));
    assert_eq!(
        (p07.helpfulness, p07.ratings),
        (Some(4.0), Some(1)),
        "o2 is not rated yet"
    );
    assert_eq!(
        (p07.focus_set, p07.focus_landed, p07.focus_pending),
        (Some(2), Some(1), Some(1))
    );
    let p08 = entry("p08");
    assert_eq!(
        (p08.coached, p08.helpfulness, p08.focus_pending),
        (Some(1), Some(5.0), Some(1))
    );
    assert_eq!(p08.target, None);

    // Retained: a new subscriber gets the report at once; the alert is not.
    let late = Sub::start(broker.port, &site.coaching(), dir.path());
    let late_alerts = Sub::start(broker.port, &site.coaching_overdue_alert(), dir.path());
    wait_for(
        "the retained coaching report",
        Duration::from_secs(5),
        || late.payloads::<Report>().into_iter().next(),
    );
    assert!(
        late_alerts.payloads::<OverdueAlert>().is_empty(),
        "the alert was retained"
    );

    // The exports.
    let (header, rows) = export(dir.path(), "observations");
    assert_eq!(header, OBSERVATION_COLUMNS);
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let got: Vec<(&str, &str, &str, &str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r[col("observation_id")].as_str(),
                r[col("level")].as_str(),
                r[col("acknowledged")].as_str(),
                r[col("helpfulness")].as_str(),
                r[col("focus_outcome")].as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("c1", "coaching", "true", "5", "pending"),
            ("o1", "facilitation", "true", "4", "landed"),
            ("o2", "facilitation", "false", "", "pending"),
        ]
    );
    let o1_row = &rows[1];
    assert_eq!(o1_row[col("board")], "demo");
    assert_eq!(o1_row[col("seq")], "3");
    assert_eq!(o1_row[col("observer")], "p07");
    assert_eq!(o1_row[col("learner")], "p01");
    assert_eq!(
        o1_row[col("at")],
        times[2].to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    );
    assert!(o1_row[col("scores")].contains("parked_discussions=1"));
    assert_eq!(o1_row[col("reobserve_on")], "2026-12-10");

    let (header, rows) = export(dir.path(), "coaching");
    assert_eq!(header, COACHING_COLUMNS);
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let ids: Vec<&str> = rows.iter().map(|r| r[col("id")].as_str()).collect();
    assert_eq!(ids, ["p08", "p07", "p01", "p02"]);
    let p02_row = &rows[3];
    assert_eq!(p02_row[col("overdue")], "true");
    assert_eq!(p02_row[col("count_in_window")], "0");
    assert_eq!(p02_row[col("role")], "team_leader");
    let p07_row = &rows[1];
    assert_eq!(p07_row[col("helpfulness")], "4");
    assert_eq!(p07_row[col("focus_landed")], "1");
    assert_eq!(p07_row[col("boards")], "demo");

    agg.assert_running();
    assert!(
        !agg.log().contains("panicked"),
        "the aggregator panicked:\n{}",
        agg.log()
    );
}
