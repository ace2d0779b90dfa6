use super::*;
use crate::wire::payload::{AlertKind, BoardLive, LiveState, ScheduleMessage};
use chrono::TimeZone;
use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use serde_json::json;

const TZ: Tz = chrono_tz::Europe::Berlin;
const RULES: Rules = Rules {
    escalation_stale: Duration::hours(4),
    offline_after: Duration::seconds(120),
};

/// 2026-11-30 (a Monday) at local h:m:s in Berlin.
fn t(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    day(30, h, m, s)
}

fn day(d: u32, h: u32, m: u32, s: u32) -> DateTime<Utc> {
    TZ.with_ymd_and_hms(2026, 11, d, h, m, s)
        .unwrap()
        .with_timezone(&Utc)
}

fn schedule(board: &str, times: &[&str]) -> ScheduleMessage {
    ScheduleMessage {
        board: board.into(),
        timezone: "Europe/Berlin".into(),
        times: times.iter().map(|s| s.to_string()).collect(),
        grace_s: 300,
        target_s: 900,
        issued_at: t(0, 0, 0),
    }
}

/// A site started at `started` with board `b1` online and scheduled.
fn site(started: DateTime<Utc>, times: &[&str]) -> Site {
    let mut s = Site::new("plant1", TZ, RULES, started);
    s.online("assembly", "b1", true, true, started);
    s.schedule("assembly", &schedule("b1", times), true, started)
        .unwrap();
    s
}

struct Board<'a> {
    site: &'a mut Site,
    seq: u64,
}

impl Board<'_> {
    fn on(site: &mut Site) -> Board<'_> {
        Board { site, seq: 0 }
    }
    fn ev(&mut self, at: DateTime<Utc>, kind: &str, data: serde_json::Value) {
        self.seq += 1;
        let data = data.to_string();
        let e = StoredEvent {
            board: "b1",
            seq: self.seq,
            at,
            kind,
            data: &data,
        };
        self.site.event("assembly", e, true, at);
    }
    fn start(&mut self, at: DateTime<Utc>, id: &str, scheduled: Option<DateTime<Utc>>) {
        self.ev(
            at,
            "huddle.started",
            json!({"huddle_id": id, "scheduled_at": scheduled, "slot": null, "started_by": "p01",
                   "trigger": "team_leader", "target_minutes": 15, "agenda": ["attendance", "kpis"]}),
        );
    }
    fn tap(&mut self, at: DateTime<Utc>, id: &str, person: &str) {
        self.ev(
            at,
            "attendance.tapped",
            json!({"huddle_id": id, "person_id": person, "via": "badge", "late": false}),
        );
    }
    fn close(&mut self, at: DateTime<Utc>, id: &str, present: u32, expected: u32) {
        self.ev(
            at,
            "huddle.closed",
            json!({"huddle_id": id, "closed_by": "p01", "summary": {
                "present": present, "expected": expected, "late": 0, "absent": [], "kpis_hit": 0,
                "kpis_reviewed": 0, "kpis_total": 0, "needs_raised": 0, "needs_escalated": 0,
                "actions_created": 0, "actions_closed": 0, "duration_s": 600, "target_s": 900}}),
        );
    }
}

fn b1(e: &Evaluation) -> &BoardLive {
    e.boards.iter().find(|b| b.board == "b1").unwrap()
}

fn kinds(e: &Evaluation) -> Vec<AlertKind> {
    e.alerts.iter().map(|a| a.kind).collect()
}

/// Evaluates at `now` after the board's heartbeat.
fn at(s: &mut Site, now: DateTime<Utc>) -> Evaluation {
    s.online("assembly", "b1", true, true, now);
    s.evaluate(now)
}

#[test]
fn ids_a_board_invents_are_bounded_and_escalations_are_listed_oldest_first() {
    let mut s = site(t(6, 0, 0), &["06:45"]);
    let mut b = Board::on(&mut s);
    for i in 0..2000u32 {
        let at = t(6, 1, 0) + Duration::seconds(i.into());
        // Taps for huddles that never start, and escalated needs.
        b.tap(at, &format!("ghost-{i}"), &format!("p{i}"));
        b.ev(
            at,
            "need.raised",
            json!({"need_id": format!("n{i}"), "huddle_id": "h", "category": "material",
                   "text": "x", "escalated": true}),
        );
    }
    let e = at(&mut s, t(7, 0, 0));
    let fold = &s.boards["b1"];
    assert!(fold.huddles.len() <= MAX_HUDDLES, "{}", fold.huddles.len());
    assert!(fold.needs.len() <= MAX_NEEDS, "{}", fold.needs.len());
    let live = b1(&e);
    assert_eq!(live.escalations.len(), MAX_ESCALATIONS_LISTED);
    assert_eq!(
        live.escalations.len() as u32 + live.escalations_more,
        MAX_NEEDS as u32
    );
    assert_eq!(e.site.open_escalations, MAX_NEEDS as u32);
    // The oldest kept are listed first.
    assert!(live.escalations[0].escalated_at <= live.escalations[1].escalated_at);
    let bytes = serde_json::to_vec(live).unwrap().len();
    assert!(bytes < 64 * 1024, "status of {bytes} bytes");
    // Huddles that never started are forgotten after KEEP.
    let e = at(&mut s, t(7, 0, 0) + KEEP + Duration::minutes(1));
    assert!(s.boards["b1"].huddles.is_empty());
    drop(e);
}

#[test]
fn a_replaced_board_says_since_when() {
    let mut s = site(t(6, 0, 0), &["06:45"]);
    assert_eq!(b1(&at(&mut s, t(6, 1, 0))).replaced_at, None);
    s.replaced("b1", t(5, 0, 0));
    assert_eq!(
        b1(&s.evaluate_changed(t(6, 2, 0))).replaced_at,
        Some(t(5, 0, 0)),
        "the change is seen without a full evaluation"
    );
}

#[test]
fn a_board_that_moves_to_another_area_is_reported_once_with_its_old_area() {
    let mut s = site(t(6, 0, 0), &["06:45"]);
    let e = at(&mut s, t(6, 1, 0));
    assert!(e.moved.is_empty());
    s.online("paint", "b1", true, true, t(6, 2, 0));
    let e = s.evaluate(t(6, 2, 0));
    assert_eq!(e.moved, [("b1".to_owned(), "assembly".to_owned())]);
    assert_eq!(b1(&e).area, "paint");
    assert!(s.evaluate(t(6, 3, 0)).moved.is_empty());
}

#[test]
fn missed_after_grace_and_not_before_and_alerted_once() {
    let mut s = site(t(6, 0, 0), &["06:45", "14:45"]);
    let e = at(&mut s, t(6, 30, 0));
    assert_eq!(b1(&e).state, LiveState::NotStarted);
    assert_eq!(b1(&e).next_due_at, Some(t(6, 45, 0)));
    let e = at(&mut s, t(6, 50, 0));
    assert_eq!(b1(&e).state, LiveState::NotStarted, "at the grace's end");
    assert!(e.alerts.is_empty());
    let e = at(&mut s, t(6, 50, 1));
    assert_eq!(b1(&e).state, LiveState::Missed);
    assert_eq!(kinds(&e), [AlertKind::MissedHuddle]);
    assert_eq!(e.alerts[0].at, t(6, 50, 0));
    assert_eq!(e.alerts[0].scheduled_at, Some(t(6, 45, 0)));
    assert_eq!(e.site.missed_today, 1);
    assert_eq!(e.site.states.missed, 1);
    let e = at(&mut s, t(6, 55, 0));
    assert!(e.alerts.is_empty(), "never repeated");
    assert_eq!(b1(&e).next_due_at, Some(t(14, 45, 0)));
    // The next slot comes: not started again until its grace passes.
    let e = at(&mut s, t(14, 46, 0));
    assert_eq!(b1(&e).state, LiveState::NotStarted);
    let e = at(&mut s, t(14, 51, 0));
    assert_eq!(kinds(&e), [AlertKind::MissedHuddle]);
    assert_eq!(e.site.missed_today, 2);
}

#[test]
fn a_started_huddle_is_in_progress_then_closed_with_attendance() {
    let mut s = site(t(6, 0, 0), &["06:45"]);
    s.expected("b1", 4);
    let mut b = Board::on(&mut s);
    b.start(t(6, 44, 0), "h1", Some(t(6, 45, 0)));
    b.tap(t(6, 44, 10), "h1", "p01");
    b.tap(t(6, 44, 20), "h1", "p02");
    b.tap(t(6, 44, 20), "h1", "p02"); // a duplicate changes nothing
    b.ev(
        t(6, 47, 0),
        "huddle.advanced",
        json!({"huddle_id": "h1", "step": "kpis", "index": 1}),
    );
    let e = at(&mut s, t(6, 51, 0));
    let h = b1(&e).huddle.clone().unwrap();
    assert_eq!(b1(&e).state, LiveState::InProgress);
    assert!(e.alerts.is_empty());
    assert_eq!((h.present, h.expected), (2, 4));
    assert_eq!(h.step.as_deref(), Some("kpis"));
    assert_eq!(h.step_started_at, Some(t(6, 47, 0)));
    assert_eq!(h.target_s, 900);
    assert_eq!(e.site.attendance_rate, Some(0.5));
    let mut b = Board::on(&mut s);
    b.seq = 10;
    b.close(t(7, 0, 0), "h1", 3, 4);
    let e = at(&mut s, t(7, 1, 0));
    let h = b1(&e).huddle.clone().unwrap();
    assert_eq!(b1(&e).state, LiveState::Closed);
    assert_eq!((h.closed_at, h.step), (Some(t(7, 0, 0)), None));
    assert_eq!(h.summary.unwrap().present, 3);
    assert_eq!((e.site.held_today, e.site.missed_today), (1, 0));
    assert_eq!(e.site.attendance_rate, Some(0.75));
}

#[test]
fn a_late_start_was_missed_and_is_held_once_closed() {
    let mut s = site(t(6, 0, 0), &["06:45"]);
    assert_eq!(kinds(&at(&mut s, t(6, 51, 0))), [AlertKind::MissedHuddle]);
    let mut b = Board::on(&mut s);
    b.start(t(6, 55, 0), "h1", Some(t(6, 45, 0)));
    let e = at(&mut s, t(6, 56, 0));
    assert_eq!(b1(&e).state, LiveState::InProgress);
    assert!(e.alerts.is_empty());
    let mut b = Board::on(&mut s);
    b.seq = 5;
    b.close(t(7, 5, 0), "h1", 4, 4);
    let e = at(&mut s, t(7, 6, 0));
    assert_eq!(b1(&e).state, LiveState::Closed);
    assert_eq!((e.site.held_today, e.site.missed_today), (1, 1));
    // A team leader's start outside the window (no scheduled_at) answers
    // the slot it is near.
    let mut s = site(t(6, 0, 0), &["06:45"]);
    let mut b = Board::on(&mut s);
    b.start(t(6, 40, 0), "h2", None);
    let e = at(&mut s, t(6, 52, 0));
    assert!(e.alerts.is_empty());
    assert_eq!(e.site.missed_today, 0);
}

#[test]
fn the_night_shift_slot_belongs_to_the_day_it_starts_on() {
    let mut s = site(day(29, 22, 0, 0), &["23:50"]);
    let e = at(&mut s, day(29, 23, 56, 0));
    assert_eq!(kinds(&e), [AlertKind::MissedHuddle]);
    assert_eq!(e.site.missed_today, 1);
    // After midnight the board is still missed (its latest slot), but
    // it counted for yesterday.
    let e = at(&mut s, t(0, 20, 0));
    assert_eq!(b1(&e).state, LiveState::Missed);
    assert_eq!(e.site.missed_today, 0);
    assert!(e.alerts.is_empty());
    assert_eq!(b1(&e).next_due_at, Some(t(23, 50, 0)));
    // Started on time before midnight, closed after it: closed.
    let mut s = site(day(29, 22, 0, 0), &["23:50"]);
    let mut b = Board::on(&mut s);
    b.start(day(29, 23, 49, 0), "h", Some(day(29, 23, 50, 0)));
    b.close(t(0, 5, 0), "h", 3, 3);
    let e = at(&mut s, t(0, 20, 0));
    assert_eq!(b1(&e).state, LiveState::Closed);
    assert!(e.alerts.is_empty());
}

#[test]
fn conditions_older_than_the_start_are_shown_not_alerted() {
    // Known from the database since yesterday; the aggregator restarted at 07:00.
    let mut s = Site::new("plant1", TZ, RULES, t(7, 0, 0));
    s.known(
        "assembly",
        "b1",
        true,
        0,
        None,
        Some(day(29, 12, 0, 0)),
        t(7, 0, 0),
    );
    s.schedule("assembly", &schedule("b1", &["06:45"]), false, t(7, 0, 0))
        .unwrap();
    let mut b = Board::on(&mut s);
    b.ev(
        t(1, 0, 0),
        "need.raised",
        json!({"need_id": "n1", "huddle_id": "h0", "category": "Material", "text": "pallets", "escalated": true}),
    );
    let e = at(&mut s, t(7, 0, 1));
    assert_eq!(b1(&e).state, LiveState::Missed);
    assert!(b1(&e).escalations[0].stale);
    assert!(e.alerts.is_empty(), "{:?}", e.alerts);
}

#[test]
fn a_board_first_seen_at_noon_missed_no_morning_huddle() {
    let mut s = site(t(12, 0, 0), &["06:45", "14:45"]);
    let e = at(&mut s, t(12, 0, 1));
    assert_eq!(b1(&e).state, LiveState::NotStarted);
    assert_eq!(e.site.missed_today, 0);
    let e = at(&mut s, t(14, 50, 1));
    assert_eq!(b1(&e).state, LiveState::Missed);
    assert_eq!(e.site.missed_today, 1);
}

#[test]
fn every_stale_escalation_is_alerted_also_beyond_those_listed() {
    let mut s = site(t(6, 0, 0), &[]);
    let mut b = Board::on(&mut s);
    let n = MAX_ESCALATIONS_LISTED + 2;
    for i in 0..n {
        b.ev(
            t(7, 0, 0),
            "need.raised",
            json!({"need_id": format!("n{i}"), "huddle_id": "h", "category": "material",
                   "text": "x", "escalated": true}),
        );
    }
    // One evaluation after the whole batch, once they are all stale.
    let e = at(&mut s, t(11, 0, 0));
    assert_eq!(b1(&e).escalations.len(), MAX_ESCALATIONS_LISTED);
    let alerted: std::collections::BTreeSet<_> =
        e.alerts.iter().filter_map(|a| a.need_id.clone()).collect();
    assert_eq!(alerted.len(), n, "alerted {alerted:?}");
    assert!(at(&mut s, t(11, 0, 1)).alerts.is_empty(), "never repeated");
}

#[test]
fn an_escalation_ages_to_stale_once_and_closes() {
    let mut s = site(t(6, 0, 0), &[]);
    let mut b = Board::on(&mut s);
    b.ev(
        t(7, 0, 0),
        "need.raised",
        json!({"need_id": "n1", "huddle_id": "h1", "category": "Material", "text": "pallets", "escalated": false}),
    );
    let e = at(&mut s, t(7, 30, 0));
    assert!(b1(&e).escalations.is_empty(), "raised, not escalated");
    let mut b = Board::on(&mut s);
    b.seq = 1;
    b.ev(
        t(8, 0, 0),
        "need.escalated",
        json!({"need_id": "n1", "by": "p01"}),
    );
    let e = at(&mut s, t(11, 59, 59));
    let esc = &b1(&e).escalations[0];
    assert_eq!((esc.escalated_at, esc.stale), (t(8, 0, 0), false));
    assert_eq!(
        (esc.category.as_str(), esc.text.as_str()),
        ("Material", "pallets")
    );
    assert_eq!((e.site.open_escalations, e.site.stale_escalations), (1, 0));
    let e = at(&mut s, t(12, 0, 0));
    assert!(b1(&e).escalations[0].stale);
    assert_eq!(kinds(&e), [AlertKind::EscalationStale]);
    assert_eq!(e.alerts[0].need_id.as_deref(), Some("n1"));
    assert_eq!(e.alerts[0].at, t(12, 0, 0));
    assert_eq!(e.site.stale_escalations, 1);
    assert!(at(&mut s, t(12, 0, 1)).alerts.is_empty(), "never repeated");
    let mut b = Board::on(&mut s);
    b.seq = 2;
    b.ev(
        t(12, 5, 0),
        "need.closed",
        json!({"need_id": "n1", "by": "p07"}),
    );
    let e = at(&mut s, t(12, 6, 0));
    assert!(b1(&e).escalations.is_empty());
    assert_eq!(e.site.open_escalations, 0);
}

#[test]
fn offline_after_the_last_will_and_back() {
    let mut s = site(t(6, 0, 0), &[]);
    assert!(b1(&s.evaluate(t(6, 0, 1))).online);
    s.online("assembly", "b1", false, true, t(6, 1, 0));
    let e = s.evaluate(t(6, 1, 0));
    assert!(!b1(&e).online);
    assert_eq!(kinds(&e), [AlertKind::BoardOffline]);
    assert_eq!(e.alerts[0].at, t(6, 1, 0));
    assert_eq!(e.site.states.offline, 1);
    assert!(s.evaluate(t(6, 5, 0)).alerts.is_empty(), "never repeated");
    s.online("assembly", "b1", true, true, t(6, 6, 0));
    let e = s.evaluate(t(6, 6, 0));
    assert!(b1(&e).online);
    assert!(e.alerts.is_empty());
    // Offline again: a new condition, alerted again.
    s.online("assembly", "b1", false, true, t(6, 7, 0));
    assert_eq!(kinds(&s.evaluate(t(6, 7, 0))), [AlertKind::BoardOffline]);
}

#[test]
fn offline_after_silence_unless_the_aggregators_own_link_is_down() {
    let mut s = site(t(6, 0, 0), &[]);
    let e = s.evaluate(t(6, 1, 59));
    assert!(b1(&e).online, "119 s of silence");
    let e = s.evaluate(t(6, 2, 0));
    assert!(!b1(&e).online, "120 s of silence");
    assert_eq!(kinds(&e), [AlertKind::BoardOffline]);
    assert_eq!(e.alerts[0].at, t(6, 2, 0));
    // An event is a sign of life.
    let mut b = Board::on(&mut s);
    b.start(t(6, 3, 0), "h", None);
    assert!(b1(&s.evaluate(t(6, 3, 0))).online);
    // The aggregator's link is down: silence is not judged; when it is
    // back, every board has offline_after_s to be heard.
    s.link(false, t(6, 4, 0));
    assert!(b1(&s.evaluate(t(6, 30, 0))).online);
    s.link(true, t(6, 30, 0));
    let e = s.evaluate(t(6, 31, 59));
    assert!(b1(&e).online && e.alerts.is_empty());
    assert!(!b1(&s.evaluate(t(6, 32, 0))).online);
}

#[test]
fn a_restart_does_not_repeat_an_offline_alert() {
    let mut s = Site::new("plant1", TZ, RULES, t(6, 0, 0));
    s.known(
        "assembly",
        "b1",
        false,
        7,
        Some(t(5, 0, 0)),
        None,
        t(6, 0, 0),
    );
    // The broker replays the retained last will.
    s.online("assembly", "b1", false, false, t(6, 0, 1));
    let e = s.evaluate(t(6, 0, 1));
    assert!(!b1(&e).online);
    assert_eq!(b1(&e).last_seq, 7);
    assert!(e.alerts.is_empty());
    // A replayed `true` gives the board offline_after_s to be heard.
    let mut s = Site::new("plant1", TZ, RULES, t(6, 0, 0));
    s.known("assembly", "b1", true, 7, None, None, t(6, 0, 0));
    s.online("assembly", "b1", true, false, t(6, 0, 1));
    assert!(b1(&s.evaluate(t(6, 2, 0))).online);
    assert!(!b1(&s.evaluate(t(6, 2, 1))).online);
}

#[test]
fn a_missed_huddle_waits_while_the_board_is_offline() {
    let mut s = site(t(6, 0, 0), &["06:45"]);
    s.online("assembly", "b1", false, true, t(6, 40, 0));
    let e = s.evaluate(t(6, 52, 0));
    assert_eq!(b1(&e).state, LiveState::Missed);
    assert!(!kinds(&e).contains(&AlertKind::MissedHuddle));
    // Back, with the start it held in its outbox: no alert.
    s.online("assembly", "b1", true, true, t(6, 53, 0));
    let mut b = Board::on(&mut s);
    b.start(t(6, 46, 0), "h", Some(t(6, 45, 0)));
    let e = s.evaluate(t(6, 53, 0));
    assert_eq!(b1(&e).state, LiveState::InProgress);
    assert!(e.alerts.is_empty());
}

#[test]
fn the_site_summary_counts_boards_huddles_and_escalations() {
    let mut s = site(t(6, 0, 0), &["06:45"]);
    s.coaching_overdue(2);
    // b2: in progress, 1 of 5 present; b3: no schedule, offline.
    s.online("assembly", "b2", true, true, t(6, 0, 0));
    s.online("paint", "b3", false, true, t(6, 0, 0));
    s.expected("b2", 5);
    let data = |v: serde_json::Value| v.to_string();
    let started = data(
        json!({"huddle_id": "x", "scheduled_at": null, "slot": null, "started_by": "p",
        "trigger": "team_leader", "target_minutes": 10, "agenda": ["attendance"]}),
    );
    let tapped = data(json!({"huddle_id": "x", "person_id": "p", "via": "name", "late": false}));
    let need = data(
        json!({"need_id": "n", "huddle_id": "x", "category": "People", "text": "cover", "escalated": true}),
    );
    for (seq, kind, d) in [
        (1, "huddle.started", &started),
        (2, "attendance.tapped", &tapped),
        (3, "need.raised", &need),
    ] {
        let e = StoredEvent {
            board: "b2",
            seq,
            at: t(6, 40, 0),
            kind,
            data: d,
        };
        s.event("assembly", e, true, t(6, 40, 0));
    }
    s.online("assembly", "b2", true, true, t(7, 0, 0));
    let e = at(&mut s, t(7, 0, 0));
    let site = &e.site;
    assert_eq!(site.boards, 3);
    assert_eq!(
        site.states,
        StateCounts {
            not_started: 1,
            in_progress: 1,
            closed: 0,
            missed: 1,
            offline: 1
        }
    );
    assert_eq!((site.held_today, site.missed_today), (0, 1));
    assert_eq!(site.attendance_rate, Some(0.2));
    assert_eq!((site.open_escalations, site.stale_escalations), (1, 0));
    assert_eq!(site.coaching_overdue, 2);
    let b3 = e.boards.iter().find(|b| b.board == "b3").unwrap();
    assert_eq!((b3.area.as_str(), b3.online), ("paint", false));
}

#[test]
fn evaluating_the_changed_boards_gives_the_same_summary() {
    let mut s = site(t(6, 0, 0), &["06:45"]);
    s.online("paint", "b2", true, true, t(6, 0, 0));
    let full = s.evaluate(t(6, 0, 1));
    assert_eq!(full.boards.len(), 2);
    s.online("paint", "b2", false, true, t(6, 0, 2));
    let changed = s.evaluate_changed(t(6, 0, 2));
    assert_eq!(changed.boards.len(), 1);
    assert!(!changed.boards[0].online);
    assert_eq!(changed.site.states.offline, 1);
    assert_eq!(changed.site, s.evaluate(t(6, 0, 2)).site);
    assert!(s.evaluate_changed(t(6, 0, 3)).boards.is_empty());
}

#[test]
fn a_bad_schedule_is_refused_and_the_last_observation_is_kept() {
    let mut s = site(t(6, 0, 0), &["06:45"]);
    let mut bad = schedule("b1", &["6h45"]);
    assert!(s
        .schedule("assembly", &bad, true, t(6, 0, 0))
        .unwrap_err()
        .contains("6h45"));
    bad.times = vec!["06:45".into()];
    bad.timezone = "Mars/Base".into();
    assert!(s.schedule("assembly", &bad, true, t(6, 0, 0)).is_err());
    let mut b = Board::on(&mut s);
    b.ev(
        t(6, 30, 0),
        "observation.recorded",
        json!({"level": "facilitation"}),
    );
    b.ev(
        t(6, 31, 0),
        "observation.recorded",
        json!({"level": "coaching"}),
    );
    let e = at(&mut s, t(6, 52, 0));
    assert_eq!(b1(&e).state, LiveState::Missed, "the good schedule stays");
    assert_eq!(b1(&e).last_observation_at, Some(t(6, 30, 0)));
}

mod cost {
    use super::*;

    /// Not a benchmark: prints what one evaluation of a 500-board plant
    /// costs (`cargo test --lib status::rules::tests::cost -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn evaluation_of_500_boards() {
        let tz = chrono_tz::Europe::Berlin;
        let now = Utc::now();
        let rules = Rules {
            escalation_stale: Duration::hours(4),
            offline_after: Duration::seconds(120),
        };
        let mut s = Site::new("plant1", tz, rules, now);
        for i in 0..500 {
            let board = format!("b{i:03}");
            s.online("a", &board, true, true, now);
            let m = ScheduleMessage {
                board: board.clone(),
                timezone: "Europe/Berlin".into(),
                times: vec!["06:45".into(), "14:45".into(), "22:45".into()],
                grace_s: 300,
                target_s: 900,
                issued_at: now,
            };
            s.schedule("a", &m, true, now).unwrap();
            let data = format!(
                r#"{{"huddle_id":"h{i}","scheduled_at":null,"target_minutes":15,"agenda":["attendance"]}}"#
            );
            let e = StoredEvent {
                board: &board,
                seq: 1,
                at: now,
                kind: "huddle.started",
                data: &data,
            };
            s.event("a", e, true, now);
        }
        let t0 = std::time::Instant::now();
        for _ in 0..20 {
            s.evaluate(now);
        }
        eprintln!("one evaluation of 500 boards: {:?}", t0.elapsed() / 20);
        let t0 = std::time::Instant::now();
        for i in 0..20 {
            s.online("a", &format!("b{i:03}"), true, true, now);
            assert_eq!(s.evaluate_changed(now).boards.len(), 1);
        }
        eprintln!(
            "one evaluation after one board changed: {:?}",
            t0.elapsed() / 20
        );
        let t0 = std::time::Instant::now();
        let n = 20;
        let mut bytes = 0;
        for _ in 0..n {
            let e = s.evaluate(now);
            for b in &e.boards {
                bytes += serde_json::to_vec(b).unwrap().len();
            }
        }
        eprintln!(
            "one evaluation of 500 boards, serialised: {:?} ({} bytes)",
            t0.elapsed() / n,
            bytes / n as usize
        );
    }
}

#[test]
fn conditions_open_at_the_start_are_handed_out_once_as_earlier() {
    let mut s = Site::new("plant1", TZ, RULES, t(7, 0, 0));
    s.known(
        "assembly",
        "b1",
        true,
        0,
        None,
        Some(day(29, 12, 0, 0)),
        t(7, 0, 0),
    );
    s.known(
        "assembly",
        "b2",
        false,
        3,
        Some(t(5, 0, 0)),
        None,
        t(7, 0, 0),
    );
    s.schedule("assembly", &schedule("b1", &["06:45"]), false, t(7, 0, 0))
        .unwrap();
    let mut b = Board::on(&mut s);
    b.ev(
        t(1, 0, 0),
        "need.raised",
        json!({"need_id": "n1", "huddle_id": "h0", "category": "Material", "text": "pallets", "escalated": true}),
    );
    let e = at(&mut s, t(7, 0, 1));
    assert!(e.alerts.is_empty(), "{:?}", e.alerts);
    let mut earlier: Vec<(AlertKind, &str)> = e
        .earlier
        .iter()
        .map(|a| (a.kind, a.board.as_str()))
        .collect();
    earlier.sort();
    let mut want = vec![
        (AlertKind::MissedHuddle, "b1"),
        (AlertKind::EscalationStale, "b1"),
        (AlertKind::BoardOffline, "b2"),
    ];
    want.sort();
    assert_eq!(earlier, want);
    let missed = e.earlier.iter().find(|a| a.kind == AlertKind::MissedHuddle);
    assert_eq!(missed.unwrap().scheduled_at, Some(t(6, 45, 0)));
    // Once: the next evaluations hand out nothing again.
    assert!(at(&mut s, t(7, 0, 2)).earlier.is_empty());
    assert!(at(&mut s, t(9, 0, 0)).earlier.is_empty());
    // A board first heard after the start, offline, is not "earlier".
    s.online("assembly", "b3", false, true, t(9, 0, 1));
    assert!(s.evaluate(t(9, 0, 2)).earlier.is_empty());
}

#[test]
fn attendance_is_a_share_of_those_expected() {
    let mut s = site(t(6, 0, 0), &["06:45"]);
    let mut b = Board::on(&mut s);
    b.start(t(6, 45, 0), "h1", Some(t(6, 45, 0)));
    for p in ["p1", "p2", "p3"] {
        b.tap(t(6, 46, 0), "h1", p);
    }
    s.expected("b1", 0);
    assert_eq!(at(&mut s, t(6, 50, 0)).site.attendance_rate, None);
    s.expected("b1", 2);
    assert_eq!(at(&mut s, t(6, 51, 0)).site.attendance_rate, Some(1.0));
    s.expected("b1", 6);
    assert_eq!(at(&mut s, t(6, 52, 0)).site.attendance_rate, Some(0.5));
}
