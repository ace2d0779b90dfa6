//! The dashboard as supervisors use it: a real Mosquitto, the real
//! `huddle-aggregator` (site zone Europe/Berlin) with eight simulated
//! boards, and a real headless Chromium set to New York, driven by
//! tests/dashboard/supervisors.js. One browser session walks through:
//!
//! - site times: the tiles show the site's clock times and the header
//!   says that the browser's zone differs;
//! - a board over target says how far over ("5 min over"), in its tile's
//!   accessible name too, and no timer is cut;
//! - the summary's huddle states add up to the boards, offline apart;
//! - keyboard focus stays on a tile through two redraws and a change to
//!   that board;
//! - a new alert adds one item to the alerts' live region, nothing else;
//! - busy (a board missed, one over target, two offline, 20+ alerts):
//!   axe-core (WCAG 2.1 A and AA, best practice) finds no violation, also
//!   with the details window open and at 390 px;
//! - at 390 px the boards that need attention come first, and no text is
//!   under 14 px;
//! - the aggregator stopped: the page says "Connection lost since HH:MM"
//!   (site time), dims the data and stops the timers;
//! - the aggregator started again: a fresh page lists the conditions still
//!   open (the stale escalations, the offline boards, the missed huddle),
//!   rebuilt from the database.
//!
//! With `DASHBOARD_SCREENSHOTS=1` it saves the screenshot of the
//! disconnected page to ui/screenshots/ (the others are made by
//! `end_to_end::browser_renders_the_full_live_status`).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, Duration as Span, DurationRound, Utc};
use chrono_tz::Tz;
use huddle_board::wire::event::{Event, HuddleStarted, NeedRaised, StartTrigger};
use huddle_board::wire::payload::ScheduleMessage;
use huddle_board::wire::topic::BoardTopics;

use super::end_to_end::{install_driver, Site, AREA, CHROMIUM, INSTALL_HELP, SITE, TOKEN};
use crate::support::{free_port, wait_port, Aggregator};

const SITE_ZONE: Tz = chrono_tz::Europe::Berlin;
const BROWSER_ZONE: &str = "America/New_York";
const BOARDS: [&str; 8] = [
    "line1", "line2", "line3", "line4", "line5", "line6", "line7", "line8",
];
/// Escalations raised on line5, all old enough to be stale.
const STALE: usize = 22;

fn key(board: &str) -> String {
    format!("{AREA}/{board}")
}

fn started(huddle: &str, target_minutes: u32) -> Event {
    Event::HuddleStarted(HuddleStarted {
        huddle_id: huddle.into(),
        scheduled_at: None,
        slot: None,
        started_by: "p01".into(),
        trigger: StartTrigger::TeamLeader,
        target_minutes,
        agenda: vec!["attendance".into(), "kpis".into(), "close".into()],
    })
}

fn schedule(site: &mut Site, board: &str, times: &[String], grace_s: u32) {
    let m = ScheduleMessage {
        board: board.into(),
        timezone: SITE_ZONE.name().into(),
        times: times.to_vec(),
        grace_s,
        target_s: 900,
        issued_at: Utc::now(),
    };
    let topic = BoardTopics::new(SITE, AREA, board).schedule();
    site.boards
        .publish(topic, true, serde_json::to_vec(&m).unwrap());
}

fn online(site: &mut Site, board: &str, up: bool) {
    let topic = BoardTopics::new(SITE, AREA, board).online();
    site.boards
        .publish(topic, true, up.to_string().into_bytes());
}

/// The page's text for a time in the site's zone ("14:45", or
/// "Sat 06:45" on another day).
fn site_time(at: DateTime<Utc>) -> String {
    let local = at.with_timezone(&SITE_ZONE);
    let today = Utc::now().with_timezone(&SITE_ZONE).date_naive();
    if local.date_naive() == today {
        local.format("%H:%M").to_string()
    } else {
        local.format("%a %H:%M").to_string()
    }
}

#[test]
fn supervisors_see_site_time_keep_focus_and_open_alerts_through_a_restart() {
    let driver = install_driver();
    let mut site = Site::start_with("[status]\noffline_after_s = 3600\n");
    // Every board known (its first event stored) before anything else.
    site.online(&BOARDS);
    for b in &BOARDS[1..] {
        site.boards.tap(b, "p03");
    }
    site.wait_boards(&BOARDS[1..], 1);
    let now = Utc::now();
    // line4: one slot at the next whole minute, no grace: missed then.
    let slot = (now + Span::seconds(5))
        .with_timezone(&SITE_ZONE)
        .duration_trunc(Span::minutes(1))
        .unwrap()
        + Span::minutes(1);
    schedule(&mut site, "line4", &[slot.format("%H:%M").to_string()], 0);
    // line7: the plant's two huddles (its next one is shown).
    schedule(&mut site, "line7", &["06:45".into(), "14:45".into()], 600);
    // line1: over its 15 min target; line2: just started.
    site.boards
        .event_at("line1", now - Span::minutes(20), started("h-line1", 15));
    site.boards.event_at("line2", now, started("h-line2", 15));
    // line5: escalations raised five hours ago (stale after four).
    for i in 0..STALE {
        site.boards.event_at(
            "line5",
            now - Span::hours(5),
            Event::NeedRaised(NeedRaised {
                need_id: format!("n{i}"),
                huddle_id: "h0".into(),
                category: "maintenance".into(),
                text: format!("Guard sensor {i} faulty"),
                escalated: true,
            }),
        );
    }
    online(&mut site, "line6", false);
    // Generous: on two cores shared with the rest of the suite (Chromium
    // among it) the scene has taken over 30 s; what was missing is said.
    let started_waiting = std::time::Instant::now();
    let state = loop {
        let s = site.state();
        let stale = s["alerts"].as_array().map_or(0, |a| {
            a.iter().filter(|a| a["kind"] == "escalation_stale").count()
        });
        let boards = &s["boards"];
        let missing = [
            (stale != STALE).then(|| format!("{stale} of {STALE} stale escalations alerted")),
            (boards[key("line6")]["status"]["online"] != false).then(|| "line6 offline".into()),
            (boards[key("line1")]["status"]["state"] != "in_progress")
                .then(|| "line1 in progress".into()),
            (!boards[key("line7")]["status"]["next_due_at"].is_string())
                .then(|| "line7's next slot".into()),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<String>>();
        if missing.is_empty() {
            break s;
        }
        assert!(
            started_waiting.elapsed() < Duration::from_secs(90),
            "the scene did not come in /api/state: missing {missing:?}\n{}",
            site.aggregator.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };

    let next = state["boards"][key("line7")]["status"]["next_due_at"]
        .as_str()
        .unwrap();
    let next: DateTime<Utc> = next.parse().unwrap();

    let scene = serde_json::json!({
        "boards": BOARDS.map(key),
        "site_zone": SITE_ZONE.name(),
        "browser_zone": BROWSER_ZONE,
        "site_times": { key("line7"): site_time(next) },
        "over": key("line1"),
        "focus": key("line2"),
        "missed": key("line4"),
        "goes_offline": "line8",
        "offline": [key("line6"), key("line8")],
        "attention": [key("line1"), key("line4"), key("line5"), key("line6"), key("line8")],
        "open_after_restart": ["escalation_stale line5", "board_offline line6", "board_offline line8", "missed_huddle line4"],
    });
    let shots = std::env::var_os("DASHBOARD_SCREENSHOTS")
        .map(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("ui/screenshots"));
    // Lighthouse's report stays beside the driver, named in the output.
    let reports = driver.join("reports");
    std::fs::create_dir_all(&reports).unwrap();
    let mut node = Command::new(crate::support::require("node", "nodejs"));
    node.arg(driver.join("supervisors.js"))
        .current_dir(&driver)
        .env("DASHBOARD_URL", format!("http://127.0.0.1:{}", site.web))
        .env("DASHBOARD_TOKEN", TOKEN)
        .env("SCENE", scene.to_string())
        .env("CHROMIUM", CHROMIUM)
        .env("CHROMIUM_PROFILE", site.dir.path().join("chromium-profile"))
        .env("CDP_PORT", free_port().to_string())
        .env("REPORT_DIR", &reports)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(dir) = &shots {
        std::fs::create_dir_all(dir).unwrap();
        node.env("SCREENSHOT_DIR", dir);
    }
    let mut child = node
        .spawn()
        .unwrap_or_else(|e| panic!("node: {e}; {INSTALL_HELP}"));
    let mut stdin = child.stdin.take().unwrap();
    let mut said = Vec::new();
    let mut before_restart = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.expect("the driver's output");
        eprintln!("supervisors.js: {line}");
        said.push(line.clone());
        let Some(what) = line.strip_prefix("ASK ") else {
            continue;
        };
        match what {
            "tap assembly/line2" => {
                site.boards.tap("line2", "p07");
            }
            "offline line8" => online(&mut site, "line8", false),
            "stop the aggregator" => {
                before_restart = alert_ids(&site.state());
                let _ = site.aggregator.child.kill();
                let _ = site.aggregator.child.wait();
            }
            "start the aggregator" => {
                site.aggregator =
                    Aggregator::start_bin(&site.bin, site.dir.path(), &site.broker.url());
                assert!(
                    wait_port(site.web, Duration::from_secs(30)),
                    "the dashboard did not listen again:\n{}",
                    site.aggregator.log()
                );
            }
            other => panic!("the driver asked for {other:?}"),
        }
        writeln!(stdin, "OK").unwrap();
    }
    let status = child.wait().unwrap();
    // What the restarted aggregator lists (the page showed it).
    let after = site.state();
    let alerts: Vec<String> = after["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| format!("{} {}", a["kind"].as_str().unwrap(), a["payload"]["board"]))
        .collect();
    // The recent history comes back from the site file, ended alerts too
    // (line8's "went offline" is listed again beside the condition rebuilt
    // at start), and the conditions still open are not listed twice.
    let after_restart = alert_ids(&after);
    assert!(!before_restart.is_empty(), "no alert before the restart");
    for a in &before_restart {
        assert!(
            after_restart.contains(a),
            "the alert {a} was listed before the restart, not after: {after_restart:?}"
        );
    }
    let unique: std::collections::BTreeSet<&String> = after_restart.iter().collect();
    assert_eq!(
        unique.len(),
        after_restart.len(),
        "an alert listed twice: {after_restart:?}"
    );
    assert!(
        status.success() && said.iter().any(|l| l == "PASS"),
        "the browser test failed ({status}): {said:?}\nthe aggregator lists {alerts:?}\n{}",
        site.aggregator.log()
    );
    site.aggregator.assert_running();
}

/// Every alert `/api/state` lists, as its topic and payload.
fn alert_ids(state: &serde_json::Value) -> Vec<String> {
    state["alerts"]
        .as_array()
        .expect("alerts in /api/state")
        .iter()
        .map(|a| format!("{} {}", a["topic"], a["payload"]))
        .collect()
}
