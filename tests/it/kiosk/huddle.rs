//! The kiosk core on a real SQLite file with a pinned clock: whole huddles,
//! refusals, enrolment, and coming back as it was after a reopen.

use crate::support::board::{at, badge, events, kinds, kiosk_config};
use chrono::Duration;
use huddle_board::domain::Step;
use huddle_board::kiosk::app::{Board, Intent, Screen};
use huddle_board::text::{Text, TextKey};

const LEADER: &str = "1001";
const SUPERVISOR: &str = "2001";

#[test]
fn a_whole_huddle_from_first_tap_to_summary() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = Board::open(kiosk_config(dir.path()), at(6, 30)).unwrap();
    // First tap inside the window (opens 15 min before 06:45) starts it.
    b.handle(badge("1002"), at(6, 35)).unwrap();
    assert_eq!(b.screen(), Screen::Step(Step::Attendance));
    b.handle(badge(LEADER), at(6, 40)).unwrap();
    b.handle(badge("1003"), at(6, 50)).unwrap(); // grace is 5 min: on time
    b.handle(badge("1004"), at(6, 51)).unwrap(); // late
    b.handle(Intent::TapName("p05".into()), at(6, 52)).unwrap(); // late, by name
    let notice = |b: &Board, t| b.view(t).unwrap().notice.unwrap().text;
    assert_eq!(
        notice(&b, at(6, 52)),
        Text::with(TextKey::WelcomeLate, "Dmitri Ivanov")
    );
    b.handle(badge("1003"), at(6, 53)).unwrap(); // already here
    assert_eq!(
        notice(&b, at(6, 53)),
        Text::with(TextKey::AlreadyHere, "Ben Okafor")
    );
    let h = b.huddle().unwrap();
    assert_eq!(h.attendance.len(), 5);
    assert_eq!(h.attendance.values().filter(|a| a.late).count(), 2);

    b.handle(Intent::NextStep, at(6, 53)).unwrap();
    assert_eq!(b.screen(), Screen::Step(Step::Kpis));
    b.handle(
        Intent::KpiHit {
            key: "safety".into(),
            actual: "0".into(),
        },
        at(6, 53),
    )
    .unwrap();
    b.handle(
        Intent::KpiMiss {
            key: "quality".into(),
            actual: "96".into(),
            reason: Some(0),
            note: String::new(),
            none_needed: false,
            what: "Check lot".into(),
            owner: "p02".into(),
            due: Some(1),
        },
        at(6, 54),
    )
    .unwrap();
    b.handle(
        Intent::KpiMiss {
            key: "delivery".into(),
            actual: String::new(),
            reason: Some(4),
            note: "late truck".into(),
            none_needed: true,
            what: String::new(),
            owner: String::new(),
            due: None,
        },
        at(6, 54),
    )
    .unwrap();
    b.handle(
        Intent::KpiHit {
            key: "cost".into(),
            actual: String::new(),
        },
        at(6, 54),
    )
    .unwrap();
    b.handle(Intent::NextStep, at(6, 55)).unwrap();
    b.handle(Intent::NextStep, at(6, 55)).unwrap();
    assert_eq!(b.screen(), Screen::Step(Step::Needs));
    b.handle(
        Intent::RaiseNeed {
            category: Some(1),
            text: "Labels".into(),
            escalate: true,
        },
        at(6, 55),
    )
    .unwrap();
    b.handle(
        Intent::RaiseNeed {
            category: Some(0),
            text: "Cover".into(),
            escalate: false,
        },
        at(6, 56),
    )
    .unwrap();
    b.handle(Intent::NextStep, at(6, 56)).unwrap();
    b.handle(
        Intent::SaveExperiment {
            obstacle: "Changeover 40 min".into(),
            expectation: "Under 25".into(),
            next_step: "Pre-stage dies".into(),
            owner: "p03".into(),
            check: Some(3),
        },
        at(6, 56),
    )
    .unwrap();
    b.handle(Intent::NextStep, at(6, 57)).unwrap();
    b.handle(
        Intent::AddAction {
            what: "Clean nozzle".into(),
            owner: "p01".into(),
            due: Some(0),
        },
        at(6, 57),
    )
    .unwrap();
    b.handle(Intent::NextStep, at(6, 57)).unwrap();
    assert_eq!(b.screen(), Screen::Step(Step::Close));

    // Close needs the team leader's badge: a member's is refused.
    b.handle(Intent::CloseHuddle, at(6, 58)).unwrap();
    b.handle(badge("1002"), at(6, 58)).unwrap();
    assert!(b.huddle().is_some(), "a member's badge closed the huddle");
    assert_eq!(
        b.view(at(6, 58)).unwrap().error,
        Some(Text::with(TextKey::CannotClose, "Ana Silva"))
    );
    b.handle(badge(SUPERVISOR), at(6, 58)).unwrap();
    assert!(
        b.huddle().is_some(),
        "a supervisor's badge closed the huddle"
    );
    b.handle(badge(LEADER), at(6, 59)).unwrap();
    assert!(b.huddle().is_none());
    assert_eq!(b.screen(), Screen::Summary);

    let s = b.view(at(6, 59)).unwrap().summary.unwrap();
    assert_eq!((s.present, s.expected, s.late), (5, 6, 2));
    assert_eq!((s.kpis_hit, s.kpis_reviewed, s.kpis_total), (2, 4, 4));
    assert_eq!((s.needs_raised, s.needs_escalated), (2, 1));
    assert_eq!((s.actions_created, s.actions_closed), (2, 0));
    assert_eq!(s.duration_s, 24 * 60);
    assert_eq!(s.absent, vec!["p06".to_string()]);

    let k = kinds(&b);
    assert_eq!(k.first().unwrap(), "huddle.started");
    assert_eq!(k.last().unwrap(), "huddle.closed");
    assert_eq!(k.iter().filter(|k| *k == "attendance.tapped").count(), 5);
    assert_eq!(k.iter().filter(|k| *k == "need.escalated").count(), 1);
    let seqs: Vec<u64> = events(&b).iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "seq is gap-free"
    );
    // No badge number in any payload.
    for line in b.store().events_since(0).unwrap() {
        for n in ["1001", "1002", "1003", "1004", "2001"] {
            assert!(
                !line.contains(&format!("\"{n}\"")),
                "badge number {n} in {line}"
            );
        }
    }
}

#[test]
fn reopening_gives_the_same_huddle_back() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut b = Board::open(kiosk_config(dir.path()), at(6, 40)).unwrap();
        b.handle(badge(LEADER), at(6, 40)).unwrap();
        b.handle(badge("1002"), at(6, 41)).unwrap();
        b.handle(Intent::NextStep, at(6, 42)).unwrap();
        b.handle(
            Intent::KpiHit {
                key: "safety".into(),
                actual: String::new(),
            },
            at(6, 42),
        )
        .unwrap();
        b.handle(Intent::NextStep, at(6, 43)).unwrap();
        // Dropped without closing, as a SIGKILL would.
    }
    let mut b = Board::open(kiosk_config(dir.path()), at(6, 44)).unwrap();
    assert_eq!(b.screen(), Screen::Step(Step::OpenActions));
    let h = b.huddle().unwrap();
    assert_eq!(h.attendance.len(), 2);
    assert_eq!(h.kpis.get("safety"), Some(&true));
    assert_eq!(h.started_at, at(6, 40));
    let before = b.store().last_seq().unwrap();
    // The same people are still here: no second arrival.
    b.handle(badge("1002"), at(6, 50)).unwrap();
    assert_eq!(b.store().last_seq().unwrap(), before);
    b.handle(badge("1003"), at(6, 50)).unwrap();
    assert_eq!(b.store().last_seq().unwrap(), before + 1);
}

#[test]
fn outside_the_window_a_member_tap_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = Board::open(kiosk_config(dir.path()), at(10, 0)).unwrap();
    b.handle(badge("1002"), at(10, 0)).unwrap();
    assert!(b.huddle().is_none());
    assert!(kinds(&b).is_empty());
    let notice = b.view(at(10, 0)).unwrap().notice.unwrap();
    assert_eq!(notice.text, Text::with(TextKey::NoHuddleNowNext, "14:45"));
    // The team leader may hold an unscheduled huddle.
    b.handle(badge(LEADER), at(10, 1)).unwrap();
    assert!(b.huddle().is_some());
}

#[test]
fn a_scheduled_huddle_is_started_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = Board::open(kiosk_config(dir.path()), at(6, 40)).unwrap();
    b.handle(badge("1002"), at(6, 40)).unwrap();
    b.handle(Intent::NextStep, at(6, 41)).unwrap();
    b.handle(Intent::CloseHuddle, at(6, 42)).unwrap();
    b.handle(badge(LEADER), at(6, 42)).unwrap();
    b.handle(Intent::Dismiss, at(6, 43)).unwrap();
    // A later tap in the same window does not start the slot again.
    b.handle(badge("1003"), at(7, 0)).unwrap();
    assert!(b.huddle().is_none());
    assert_eq!(
        kinds(&b).iter().filter(|k| *k == "huddle.started").count(),
        1
    );
}

#[test]
fn an_unknown_badge_is_enrolled_by_a_team_leader() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = Board::open(kiosk_config(dir.path()), at(6, 40)).unwrap();
    b.handle(badge(LEADER), at(6, 40)).unwrap();
    b.handle(badge("55555"), at(6, 41)).unwrap();
    assert_eq!(b.screen(), Screen::UnknownBadge);
    b.handle(Intent::EnrolBegin, at(6, 41)).unwrap();
    assert_eq!(b.screen(), Screen::Enrol);
    b.handle(Intent::EnrolChoose("p06".into()), at(6, 41))
        .unwrap();
    assert_eq!(
        b.view(at(6, 41)).unwrap().prompt,
        Some(Text::with(TextKey::PromptEnrol, "Fatima Haddad"))
    );
    // A member cannot authorise; an unknown badge cannot either.
    b.handle(badge("1002"), at(6, 42)).unwrap();
    assert_eq!(
        b.view(at(6, 42)).unwrap().error,
        Some(Text::with(TextKey::CannotEnrol, "Ana Silva"))
    );
    b.handle(badge("77777"), at(6, 42)).unwrap();
    assert_eq!(
        b.view(at(6, 42)).unwrap().notice.unwrap().text,
        Text::new(TextKey::NotEnrolledCannotConfirm)
    );
    assert_eq!(b.screen(), Screen::Enrol);
    b.handle(badge(LEADER), at(6, 42)).unwrap();
    assert_eq!(b.screen(), Screen::Step(Step::Attendance));
    assert!(
        b.huddle().unwrap().attendance.contains_key("p06"),
        "the enrolled person counts as arrived"
    );
    let k = kinds(&b);
    assert!(k.contains(&"attendance.unknown_badge".to_string()));
    assert!(k.contains(&"badge.enrolled".to_string()));
    // The badge now works after a restart too.
    drop(b);
    let mut b = Board::open(kiosk_config(dir.path()), at(6, 50)).unwrap();
    assert_eq!(
        b.roster()
            .by_badge(&huddle_board::domain::hash_badge(
                b"demo-site-key-change-me",
                "55555"
            ))
            .unwrap()
            .id,
        "p06"
    );
    b.handle(badge("55555"), at(6, 59)).unwrap();
    assert_eq!(b.screen(), Screen::Step(Step::Attendance));
}

#[test]
fn a_half_done_enrolment_times_out_to_the_board() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = Board::open(kiosk_config(dir.path()), at(10, 0)).unwrap();
    b.handle(badge("55555"), at(10, 0)).unwrap();
    b.handle(Intent::EnrolBegin, at(10, 0)).unwrap();
    b.handle(Intent::Tick, at(10, 0) + Duration::seconds(30))
        .unwrap();
    assert_eq!(b.screen(), Screen::Enrol);
    b.handle(Intent::Tick, at(10, 0) + Duration::seconds(61))
        .unwrap();
    assert_eq!(b.screen(), Screen::Idle);
}

#[test]
fn refused_inputs_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = Board::open(kiosk_config(dir.path()), at(6, 40)).unwrap();
    b.handle(badge(LEADER), at(6, 40)).unwrap();
    let before = b.store().last_seq().unwrap();
    let miss = |reason: Option<usize>, none_needed: bool| Intent::KpiMiss {
        key: "quality".into(),
        actual: String::new(),
        reason,
        note: String::new(),
        none_needed,
        what: String::new(),
        owner: String::new(),
        due: None,
    };
    b.handle(miss(None, true), at(6, 41)).unwrap();
    let error = |b: &Board| b.view(at(6, 41)).unwrap().error.map(|t| t.key);
    assert_eq!(error(&b), Some(TextKey::PickReason));
    b.handle(miss(Some(0), false), at(6, 41)).unwrap();
    assert_eq!(error(&b), Some(TextKey::ActionOrNoneNeeded));
    b.handle(
        Intent::AddAction {
            what: "x".into(),
            owner: "nobody".into(),
            due: Some(0),
        },
        at(6, 41),
    )
    .unwrap();
    assert_eq!(error(&b), Some(TextKey::PickOwner));
    b.handle(
        Intent::RaiseNeed {
            category: None,
            text: "x".into(),
            escalate: false,
        },
        at(6, 41),
    )
    .unwrap();
    assert_eq!(error(&b), Some(TextKey::PickCategory));
    assert_eq!(b.store().last_seq().unwrap(), before);
    // Starting is the team leader's: a member's badge at the prompt is refused.
    drop(b);
    let dir = tempfile::tempdir().unwrap();
    let mut b = Board::open(kiosk_config(dir.path()), at(10, 0)).unwrap();
    b.handle(Intent::StartHuddle, at(10, 0)).unwrap();
    b.handle(badge("1002"), at(10, 0)).unwrap();
    assert!(b.huddle().is_none());
    b.handle(badge(LEADER), at(10, 0)).unwrap();
    assert!(b.huddle().is_some());
}
