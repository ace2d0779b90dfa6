//! The aggregator's roster at the kiosk core, on a real SQLite file with a
//! pinned clock: newest `issued_at` wins, `roster.applied` is recorded with
//! it, badge hashes replace the config's, enrolled badges still apply, and
//! the roster survives a reopen.

use std::path::Path;

use crate::support::board::{at, badge, kiosk_config, SHIPPED};
use chrono::{DateTime, Duration, TimeZone, Utc};
use huddle_board::domain::hash_badge;
use huddle_board::domain::{Role, Step};
use huddle_board::kiosk::app::{Board, Intent, Screen};
use huddle_board::kiosk::config::KioskConfig;
use huddle_board::wire::event::Envelope;
use huddle_board::wire::payload::{RosterMessage, RosterPerson};

fn person(c: &KioskConfig, id: &str, name: &str, role: Role, number: &str) -> RosterPerson {
    RosterPerson {
        id: id.into(),
        name: name.into(),
        role,
        coach: None,
        badge_hashes: vec![hash_badge(c.badge.site_key.as_bytes(), number)],
        language: None,
    }
}

fn roster(c: &KioskConfig, issued_at: DateTime<Utc>, people: Vec<RosterPerson>) -> RosterMessage {
    RosterMessage {
        board: c.board.id.clone(),
        issued_at,
        people,
    }
}

fn applied(board: &Board) -> Vec<serde_json::Value> {
    board
        .store()
        .events_since(0)
        .unwrap()
        .iter()
        .map(|l| serde_json::from_str::<Envelope>(l).unwrap())
        .filter(|e| e.kind == "roster.applied")
        .map(|e| e.data)
        .collect()
}

fn names(board: &Board) -> Vec<String> {
    board
        .roster()
        .people()
        .iter()
        .map(|p| p.name.clone())
        .collect()
}

#[test]
fn the_newest_roster_wins_and_is_recorded_once() {
    let dir = tempfile::tempdir().unwrap();
    let c = kiosk_config(dir.path());
    let mut b = Board::open(c.clone(), at(5, 0)).unwrap();
    assert_eq!(b.roster_issued(), None);
    assert_eq!(b.roster().people().len(), 8, "the config's roster");

    let t1 = at(4, 0);
    let first = roster(
        &c,
        t1,
        vec![
            person(&c, "p20", "Zoe Lind", Role::TeamLeader, "5001"),
            person(&c, "p21", "Yusuf Demir", Role::Member, "5002"),
        ],
    );
    assert!(b
        .handle(Intent::ApplyRoster(first.clone()), at(5, 1))
        .unwrap());
    assert_eq!(b.roster_issued(), Some(t1));
    assert_eq!(names(&b), ["Zoe Lind", "Yusuf Demir"]);

    // An older one, the same one again (a retained message after each
    // reconnect), and one for another board: all ignored.
    let older = roster(
        &c,
        t1 - Duration::hours(1),
        vec![person(&c, "p30", "Old", Role::Member, "6001")],
    );
    assert!(!b.handle(Intent::ApplyRoster(older), at(5, 2)).unwrap());
    assert!(!b.handle(Intent::ApplyRoster(first), at(5, 3)).unwrap());
    let mut other = roster(&c, t1 + Duration::hours(1), vec![]);
    other.board = "another-board".into();
    assert!(!b.handle(Intent::ApplyRoster(other), at(5, 4)).unwrap());
    assert_eq!(names(&b), ["Zoe Lind", "Yusuf Demir"]);

    let t2 = t1 + Duration::minutes(30);
    let newer = roster(
        &c,
        t2,
        vec![
            person(&c, "p20", "Zoe Lind", Role::TeamLeader, "5001"),
            person(&c, "p22", "Xenia Paul", Role::Member, "5003"),
            person(&c, "p23", "Walt Ruiz", Role::Supervisor, "5004"),
        ],
    );
    assert!(b.handle(Intent::ApplyRoster(newer), at(5, 5)).unwrap());
    assert_eq!(names(&b), ["Zoe Lind", "Xenia Paul", "Walt Ruiz"]);

    let events = applied(&b);
    assert_eq!(events.len(), 2, "one roster.applied per roster applied");
    assert_eq!(events[1]["people"], 3);
    assert_eq!(events[1]["badges"], 3);
    assert_eq!(
        events[1]["issued_at"]
            .as_str()
            .map(|s| s.parse::<DateTime<Utc>>().unwrap()),
        Some(t2)
    );
}

#[test]
fn the_roster_survives_a_reopen_and_its_badges_work() {
    let dir = tempfile::tempdir().unwrap();
    let c = kiosk_config(dir.path());
    let issued = at(4, 0);
    {
        let mut b = Board::open(c.clone(), at(5, 0)).unwrap();
        let message = roster(
            &c,
            issued,
            vec![
                person(&c, "p20", "Zoe Lind", Role::TeamLeader, "5001"),
                person(&c, "p21", "Yusuf Demir", Role::Member, "5002"),
            ],
        );
        b.handle(Intent::ApplyRoster(message), at(5, 1)).unwrap();
    }
    let mut b = Board::open(c.clone(), at(6, 0)).unwrap();
    assert_eq!(b.roster_issued(), Some(issued));
    assert_eq!(names(&b), ["Zoe Lind", "Yusuf Demir"]);
    // The config's badges no longer open anything...
    b.handle(badge("1001"), at(6, 40)).unwrap();
    assert_eq!(b.screen(), Screen::UnknownBadge);
    // ...enrolment still works on top of the aggregator's roster...
    b.handle(Intent::EnrolBegin, at(6, 40)).unwrap();
    b.handle(Intent::EnrolChoose("p21".into()), at(6, 40))
        .unwrap();
    b.handle(badge("5001"), at(6, 41)).unwrap();
    assert_eq!(
        b.roster()
            .by_badge(&hash_badge(c.badge.site_key.as_bytes(), "1001"))
            .map(|p| p.id.as_str()),
        Some("p21")
    );
    // ...and the roster's own badge hash starts the huddle.
    b.handle(badge("5001"), at(6, 42)).unwrap();
    assert_eq!(b.screen(), Screen::Step(Step::Attendance));
    assert_eq!(b.huddle().unwrap().attendance.len(), 1);
    drop(b);

    // Reopened again: the roster and the enrolled badge are both there,
    // and the same retained roster re-delivered changes nothing.
    let mut b = Board::open(c.clone(), at(7, 0)).unwrap();
    assert_eq!(
        b.roster()
            .by_badge(&hash_badge(c.badge.site_key.as_bytes(), "1001"))
            .map(|p| p.id.as_str()),
        Some("p21")
    );
    let again = roster(
        &c,
        issued,
        vec![person(&c, "p20", "Zoe Lind", Role::TeamLeader, "5001")],
    );
    assert!(!b.handle(Intent::ApplyRoster(again), at(7, 1)).unwrap());
    assert_eq!(applied(&b).len(), 1);
}

/// The site's sample roster and the kiosk's demo config name the same
/// people with the same badges: the demo works out of the box.
#[test]
fn the_shipped_site_roster_matches_the_kiosk_demo() {
    use huddle_board::aggregator::roster::parse;
    let when = Utc.with_ymd_and_hms(2026, 11, 28, 6, 0, 0).unwrap();
    let r = parse(
        include_str!("../../../config/roster.csv"),
        Path::new("config/roster.csv"),
        when,
    )
    .unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].area, "assembly");
    let people = &r[0].message.people;
    assert_eq!(people.len(), 8);
    let kiosk = KioskConfig::from_toml(SHIPPED, Path::new("config/kiosk.toml")).unwrap();
    let key = kiosk.badge.site_key.as_bytes();
    for p in &kiosk.people {
        let q = people.iter().find(|q| q.id == p.id).expect("same people");
        assert_eq!((q.name.as_str(), q.role), (p.name.as_str(), p.role));
        let expected: Vec<_> = p.badges.iter().map(|b| hash_badge(key, b)).collect();
        assert_eq!(q.badge_hashes, expected, "{}", p.id);
    }
}
