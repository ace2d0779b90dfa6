use super::*;
use crate::aggregator::coaching::compact::CompactObservation;
use crate::aggregator::coaching::export::{
    coaching_rows, observation_rows, COACHING_COLUMNS, OBSERVATION_COLUMNS,
};
use crate::domain::{BehaviourScore, Pick, SelfView, COACHING, FACILITATION};
use crate::wire::payload::{RosterMessage, RosterPerson};
use chrono::TimeZone;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 6, 0, 0).unwrap()
}

fn day(d: f64) -> DateTime<Utc> {
    t0() + Duration::seconds((d * 86_400.0) as i64)
}

fn targets() -> Targets {
    Targets {
        team_leader: 2,
        supervisor: 1,
        window: Duration::days(7),
    }
}

/// A recorded observation where every behaviour scores `base` except
/// those in `scores`; its acknowledgement when `helpfulness` is given.
#[derive(Clone)]
struct Obs<'a> {
    id: &'a str,
    level: ObservationLevel,
    observer: &'a str,
    learner: &'a str,
    at: DateTime<Utc>,
    base: u8,
    scores: &'a [(&'a str, u8)],
    focus: &'a str,
    helpfulness: Option<u8>,
}

fn events(list: &[Obs<'_>]) -> Vec<StoredCoachingEvent> {
    let mut out = Vec::new();
    for (i, o) in list.iter().enumerate() {
        let seq = 2 * i as u64 + 1;
        let scores = o
            .level
            .behaviours()
            .iter()
            .map(|b| BehaviourScore {
                behaviour: (*b).into(),
                score: o
                    .scores
                    .iter()
                    .find(|(k, _)| k == b)
                    .map_or(o.base, |(_, s)| *s),
            })
            .collect();
        out.push(StoredCoachingEvent {
            board: "b1".into(),
            seq,
            at: o.at,
            event: CoachingEvent::Recorded(ObservationRecorded {
                observation_id: o.id.into(),
                level: o.level,
                observer: o.observer.into(),
                learner: o.learner.into(),
                huddle_id: None,
                self_view: SelfView::SoSo,
                scores,
                strength: Pick {
                    behaviour: o.level.behaviours()[0].into(),
                    note: String::new(),
                },
                focus: Pick {
                    behaviour: o.focus.into(),
                    note: "note".into(),
                },
                trigger: "when".into(),
                reobserve_on: o.at.date_naive(),
            }),
        });
        if let Some(h) = o.helpfulness {
            out.push(StoredCoachingEvent {
                board: "b1".into(),
                seq: seq + 1,
                at: o.at,
                event: CoachingEvent::Acknowledged(ObservationAcknowledged {
                    observation_id: o.id.into(),
                    learner: o.learner.into(),
                    helpfulness: h,
                }),
            });
        }
    }
    out
}

fn fac<'a>(id: &'a str, observer: &'a str, learner: &'a str, at: DateTime<Utc>) -> Obs<'a> {
    Obs {
        id,
        level: ObservationLevel::Facilitation,
        observer,
        learner,
        at,
        base: 3,
        scores: &[],
        focus: "parked_discussions",
        helpfulness: Some(4),
    }
}

fn person(id: &str, role: Role, coach: Option<&str>) -> Person {
    Person {
        id: id.into(),
        name: format!("Name {id}"),
        role,
        coach: coach.map(Into::into),
        boards: vec!["b1".into()],
        in_roster: true,
    }
}

fn roster() -> Vec<Person> {
    vec![
        person("tl1", Role::TeamLeader, Some("sv1")),
        person("tl2", Role::TeamLeader, Some("sv1")),
        person("sv1", Role::Supervisor, Some("mg1")),
        person("sv2", Role::Supervisor, Some("mg1")),
        person("mg1", Role::Manager, None),
        person("m01", Role::Member, Some("tl1")),
    ]
}

fn entry_of<'a>(r: &'a Report, id: &str) -> &'a Entry {
    r.people.iter().find(|e| e.id == id).expect(id)
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-9)
}

#[test]
fn cadence_crosses_into_overdue_and_back() {
    let w = Duration::days(7);
    let times = [day(1.0), day(3.0)];
    let c = cadence(&times, 2, w, t0(), day(5.0));
    assert_eq!(c.count_in_window, 2);
    assert_eq!(
        c.due_by,
        Some(day(8.0)),
        "the window stops holding 2 at day 1 + 7"
    );
    assert!(!c.overdue(day(5.0)));
    // Exactly at day 8 the observation of day 1 has left (now - W, now].
    let c = cadence(&times, 2, w, t0(), day(8.0));
    assert_eq!(c.count_in_window, 1);
    assert!(c.overdue(day(8.0)));
    assert_eq!(c.overdue_s(day(8.0)), 0);
    let late = day(8.0) + Duration::hours(1);
    assert_eq!(cadence(&times, 2, w, t0(), late).overdue_s(late), 3600);
    // A new observation brings them back.
    let times = [day(1.0), day(3.0), day(8.0) + Duration::hours(2)];
    let back = day(8.0) + Duration::hours(3);
    let c = cadence(&times, 2, w, t0(), back);
    assert_eq!(c.count_in_window, 2);
    assert_eq!(c.due_by, Some(day(10.0)));
    assert!(!c.overdue(back));
    assert_eq!(c.last_observed, Some(day(8.0) + Duration::hours(2)));
    // An observation dated in the future does not count yet.
    let c = cadence(&[day(20.0)], 1, w, t0(), day(5.0));
    assert_eq!((c.count_in_window, c.last_observed), (0, None));
    // A target of 0 is never overdue.
    assert!(!cadence(&[], 0, w, t0(), day(400.0)).overdue(day(400.0)));
}

#[test]
fn overdue_alerts_once_per_transition() {
    let history = [
        fac("o1", "sv1", "tl1", day(1.0)),
        fac("o2", "sv1", "tl1", day(3.0)),
    ];
    let folded = fold(events(&history));
    assert!(folded.problems.is_empty(), "{:?}", folded.problems);
    let people = roster();
    let at = |now| {
        report(
            "plant1",
            &people,
            &folded.observations,
            targets(),
            t0(),
            now,
        )
    };
    let first = at(day(5.0));
    assert!(!entry_of(&first, "tl1").overdue);
    assert!(newly_overdue(None, &first).is_empty(), "nothing at start");
    let crossed = at(day(8.0) + Duration::minutes(1));
    let tl1 = entry_of(&crossed, "tl1");
    assert!(tl1.overdue);
    assert_eq!(tl1.overdue_s, 60);
    let alerts = newly_overdue(Some(&first), &crossed);
    let ids: Vec<&str> = alerts.iter().map(|a| a.id.as_str()).collect();
    // tl2 and sv1 were never observed: one window of grace from the
    // coaching start, overdue since day 7.
    assert!(
        ids.contains(&"tl1") && ids.contains(&"tl2") && ids.contains(&"sv1"),
        "{ids:?}"
    );
    assert!(!ids.contains(&"mg1") && !ids.contains(&"m01"));
    let a = alerts.iter().find(|a| a.id == "tl1").unwrap();
    assert_eq!(
        (a.overdue_since, a.count_in_window, a.target),
        (day(8.0), 1, 2)
    );
    assert_eq!(a.coach.as_deref(), Some("sv1"));
    let later = at(day(8.0) + Duration::minutes(2));
    assert!(
        newly_overdue(Some(&crossed), &later).is_empty(),
        "not every minute"
    );

    // Observed again: back; then overdue again, alerted again.
    let mut history = history.to_vec();
    history.push(fac("o3", "sv1", "tl1", day(8.5)));
    let folded = fold(events(&history));
    let at = |now| {
        report(
            "plant1",
            &people,
            &folded.observations,
            targets(),
            t0(),
            now,
        )
    };
    let back = at(day(9.0));
    assert!(!entry_of(&back, "tl1").overdue);
    let again = at(day(10.5));
    assert!(entry_of(&again, "tl1").overdue);
    let alerts = newly_overdue(Some(&back), &again);
    assert_eq!(alerts.iter().filter(|a| a.id == "tl1").count(), 1);
    assert_eq!(alerts[0].overdue_since, day(10.0));
}

#[test]
fn a_learner_with_no_observations_yet() {
    let people = roster();
    let r = report::<Observation>("plant1", &people, &[], targets(), t0(), day(6.0));
    let tl = entry_of(&r, "tl1");
    assert_eq!(tl.count_in_window, Some(0));
    assert_eq!(tl.last_observed, None);
    assert_eq!(tl.due_by, Some(day(7.0)), "one window of grace");
    assert!(!tl.overdue);
    assert_eq!(
        (tl.score, tl.score_observations, tl.trend),
        (None, Some(0), None)
    );
    let sv = entry_of(&r, "sv1");
    assert_eq!(
        (sv.coached, sv.learners, sv.learner_change),
        (Some(0), Some(0), None)
    );
    assert_eq!(
        (sv.helpfulness, sv.ratings, sv.focus_set),
        (None, Some(0), Some(0))
    );
    let r = report::<Observation>(
        "plant1",
        &people,
        &[],
        targets(),
        t0(),
        day(7.0) + Duration::seconds(10),
    );
    assert_eq!(entry_of(&r, "tl1").overdue_s, 10);
    // Members are not listed; managers have no cadence.
    assert!(r.people.iter().all(|e| e.role != Role::Member));
    let mg = entry_of(&r, "mg1");
    assert_eq!(
        (mg.target, mg.count_in_window, mg.overdue),
        (None, None, false)
    );
    let roles: Vec<Role> = r.people.iter().map(|e| e.role).collect();
    assert_eq!(
        roles,
        [
            Role::Manager,
            Role::Supervisor,
            Role::Supervisor,
            Role::TeamLeader,
            Role::TeamLeader
        ]
    );
}

#[test]
fn focus_points_land_fail_or_wait() {
    let history = [
        Obs {
            focus: "parked_discussions",
            scores: &[("parked_discussions", 2)],
            ..fac("o1", "sv1", "tl1", day(1.0))
        },
        // Re-observed at 3: o1's focus landed. Sets board_prepared.
        Obs {
            focus: "board_prepared",
            scores: &[("parked_discussions", 3), ("board_prepared", 1)],
            ..fac("o2", "sv1", "tl1", day(3.0))
        },
        // Another coach re-observes: board_prepared at 2, not landed.
        Obs {
            focus: "story_from_data",
            scores: &[("board_prepared", 2)],
            ..fac("o3", "sv2", "tl1", day(5.0))
        },
        // tl2's focus is not re-observed yet: pending.
        fac("o4", "sv1", "tl2", day(5.0)),
    ];
    let folded = fold(events(&history));
    let o = &folded.observations;
    let outcomes = focus_outcomes(o);
    assert_eq!(
        outcomes,
        [
            FocusOutcome::Landed,
            FocusOutcome::NotLanded,
            FocusOutcome::Pending,
            FocusOutcome::Pending
        ]
    );
    let sv1 = coach_figures("sv1", ObservationLevel::Facilitation, o);
    assert_eq!(
        (sv1.focus_set, sv1.focus_landed, sv1.focus_pending),
        (3, 1, 1),
        "one landed, one not landed, one pending (not failed)"
    );
    let sv2 = coach_figures("sv2", ObservationLevel::Facilitation, o);
    assert_eq!(
        (sv2.focus_set, sv2.focus_landed, sv2.focus_pending),
        (1, 0, 1)
    );
    // The compact form the coaching thread keeps gives the same.
    let compact: Vec<CompactObservation> = o.iter().map(Into::into).collect();
    assert_eq!(focus_outcomes(&compact), outcomes);
    assert_eq!(
        coach_figures("sv1", ObservationLevel::Facilitation, &compact),
        sv1
    );
    let rows = observation_rows(o);
    assert_eq!(rows[0][20], "landed");
    assert_eq!(rows[1][20], "not_landed");
    assert_eq!(rows[2][20], "pending");
}

#[test]
fn trend_sign_and_rolling_score() {
    let up = learner_figures(&[2.0, 2.5, 3.0]);
    assert_eq!(up.trend, Some(Trend::Rising));
    assert!(close(up.slope, 0.5));
    assert!(close(up.score, 2.5));
    let down = learner_figures(&[3.5, 3.0, 2.0]);
    assert_eq!(down.trend, Some(Trend::Falling));
    assert!(close(down.slope, -0.75));
    assert_eq!(learner_figures(&[3.0, 3.0, 3.0]).trend, Some(Trend::Steady));
    assert_eq!(
        learner_figures(&[3.0]).trend,
        None,
        "one point has no slope"
    );
    // The score rolls over the last 4; the trend looks at the last 8.
    let l = learner_figures(&[1.0, 1.0, 4.0, 4.0, 4.0, 4.0]);
    assert!(close(l.score, 4.0));
    assert_eq!(l.observations, 4);
    assert_eq!(l.trend, Some(Trend::Rising));

    // Through the report: tl1's scores go 2, 3, 4.
    let history = [
        Obs {
            base: 2,
            ..fac("o1", "sv1", "tl1", day(1.0))
        },
        Obs {
            base: 3,
            ..fac("o2", "sv1", "tl1", day(2.0))
        },
        Obs {
            base: 4,
            ..fac("o3", "sv1", "tl1", day(3.0))
        },
    ];
    let folded = fold(events(&history));
    let r = report(
        "plant1",
        &roster(),
        &folded.observations,
        targets(),
        t0(),
        day(4.0),
    );
    let tl = entry_of(&r, "tl1");
    assert_eq!(tl.trend, Some(Trend::Rising));
    assert_eq!(
        (tl.score, tl.score_slope, tl.score_observations),
        (Some(3.0), Some(1.0), Some(3))
    );
}

#[test]
fn helpfulness_means_and_learner_change_per_coach() {
    let history = [
        Obs {
            base: 2,
            helpfulness: Some(4),
            ..fac("o1", "sv1", "tl1", day(1.0))
        },
        Obs {
            base: 3,
            helpfulness: Some(5),
            ..fac("o2", "sv1", "tl1", day(2.0))
        },
        // Recorded, not yet acknowledged: counted, not rated.
        Obs {
            base: 4,
            helpfulness: None,
            ..fac("o3", "sv2", "tl1", day(3.0))
        },
        Obs {
            base: 3,
            helpfulness: Some(2),
            ..fac("o4", "sv1", "tl2", day(3.0))
        },
    ];
    let folded = fold(events(&history));
    let o = &folded.observations;
    assert_eq!(o[2].helpfulness, None);
    let sv1 = coach_figures("sv1", ObservationLevel::Facilitation, o);
    assert_eq!((sv1.observations, sv1.learners, sv1.ratings), (3, 2, 3));
    assert!(close(sv1.helpfulness, 11.0 / 3.0));
    // tl1: first by sv1 at 2.0, since then 3 and 4: mean 3.5, change 1.5;
    // tl2 not observed again: not measured.
    assert_eq!(sv1.learners_measured, 1);
    assert!(close(sv1.learner_change, 1.5));
    let sv2 = coach_figures("sv2", ObservationLevel::Facilitation, o);
    assert_eq!(
        (sv2.ratings, sv2.helpfulness, sv2.learner_change),
        (0, None, None)
    );
    let r = report("plant1", &roster(), o, targets(), t0(), day(4.0));
    assert_eq!(entry_of(&r, "sv1").helpfulness, Some(3.667));
    assert_eq!(entry_of(&r, "tl1").count_in_window, Some(3));
}

#[test]
fn the_same_one_level_up_for_managers() {
    let coaching = |id, learner, at, base, focus_score, h| Obs {
        id,
        level: ObservationLevel::Coaching,
        observer: "mg1",
        learner,
        at,
        base,
        scores: focus_score,
        focus: "asked_not_told",
        helpfulness: h,
    };
    let history = [
        coaching("c1", "sv1", day(1.0), 2, &[("asked_not_told", 1)], Some(3)),
        coaching("c2", "sv1", day(4.0), 3, &[("asked_not_told", 4)], Some(5)),
        // A facilitation observation by sv1 does not count for sv1's
        // cadence as learner.
        fac("o1", "sv1", "tl1", day(4.5)),
    ];
    let folded = fold(events(&history));
    let r = report(
        "plant1",
        &roster(),
        &folded.observations,
        targets(),
        t0(),
        day(5.0),
    );
    let mg = entry_of(&r, "mg1");
    assert_eq!(
        (mg.coached, mg.learners, mg.learners_measured),
        (Some(2), Some(1), Some(1))
    );
    assert_eq!((mg.helpfulness, mg.ratings), (Some(4.0), Some(2)));
    assert_eq!(
        (mg.focus_set, mg.focus_landed, mg.focus_pending),
        (Some(2), Some(1), Some(1))
    );
    let first = mean_score(&folded.observations[0].recorded.scores).unwrap();
    let second = mean_score(&folded.observations[1].recorded.scores).unwrap();
    assert_eq!(mg.learner_change, Some(round3(second - first)));
    let sv1 = entry_of(&r, "sv1");
    assert_eq!(
        (sv1.count_in_window, sv1.target, sv1.overdue),
        (Some(2), Some(1), false)
    );
    assert_eq!(sv1.score_observations, Some(2));
    assert_eq!(sv1.coached, Some(1), "and sv1's own coaching of tl1");
    assert_eq!(COACHING.len(), 8);
    assert_eq!(FACILITATION.len(), 9);
}

#[test]
fn fold_joins_acknowledgements_and_names_what_it_cannot_count() {
    let mut ev = events(&[
        fac("o1", "sv1", "tl1", day(1.0)),
        fac("o2", "sv1", "tl1", day(2.0)),
    ]);
    // The acknowledgement first: still joined.
    ev.swap(0, 1);
    // A second recording of o2 elsewhere, an acknowledgement by the
    // wrong person, a rating of 9, a score of 7, a self-observation.
    let mut dup = ev[2].clone();
    dup.seq = 40;
    ev.push(dup);
    let mut wrong = ev[3].clone();
    if let CoachingEvent::Acknowledged(a) = &mut wrong.event {
        a.learner = "tl2".into();
    }
    ev.insert(0, wrong);
    let mut nine = ev[1].clone();
    if let CoachingEvent::Acknowledged(a) = &mut nine.event {
        a.helpfulness = 9;
    }
    ev.insert(0, nine);
    let mut bad = events(&[Obs {
        base: 7,
        ..fac("o3", "sv1", "tl1", day(3.0))
    }]);
    let mut selfie = events(&[fac("o4", "tl1", "tl1", day(3.0))]);
    ev.append(&mut bad);
    ev.append(&mut selfie);
    let f = fold(ev);
    let ids: Vec<&str> = f
        .observations
        .iter()
        .map(|o| o.recorded.observation_id.as_str())
        .collect();
    assert_eq!(ids, ["o1", "o2"]);
    assert_eq!(f.observations[0].helpfulness, Some(4));
    assert_eq!(f.observations[0].acknowledged_at, Some(day(1.0)));
    assert_eq!(f.problems.len(), 5, "{:#?}", f.problems);
    assert!(f
        .problems
        .iter()
        .any(|p| p.contains("seq 40") && p.contains("already recorded")));
    assert!(f
        .problems
        .iter()
        .any(|p| p.contains("the learner is `tl1`")));
    assert!(f.problems.iter().any(|p| p.contains("helpfulness 9")));
    assert!(f.problems.iter().any(|p| p.contains("score 7")));
    assert!(f.problems.iter().any(|p| p.contains("observed themselves")));
}

#[test]
fn people_a_board_invents_are_listed_up_to_a_bound_and_counted() {
    let ids: Vec<(String, String)> = (0..400)
        .map(|i| (format!("o{i}"), format!("tl-invented-{i}")))
        .collect();
    let list: Vec<Obs<'_>> = ids
        .iter()
        .map(|(o, tl)| fac(o, "sv1", tl, day(1.0)))
        .collect();
    let folded = fold(events(&list));
    let r = report(
        "plant1",
        &roster(),
        &folded.observations,
        targets(),
        t0(),
        day(2.0),
    );
    let unlisted = r.people.iter().filter(|p| !p.in_roster).count();
    assert_eq!(unlisted, MAX_UNLISTED);
    assert_eq!(r.unlisted_left_out as usize, 400 - MAX_UNLISTED);
    let bytes = serde_json::to_vec(&r).unwrap().len();
    assert!(
        bytes < crate::mqtt::MAX_PACKET / 2,
        "report of {bytes} bytes"
    );
}

#[test]
fn people_from_rosters_and_from_observations() {
    let rp = |id: &str, role, coach: Option<&str>| RosterPerson {
        language: None,
        id: id.into(),
        name: id.to_uppercase(),
        role,
        coach: coach.map(Into::into),
        badge_hashes: vec![],
    };
    let board = |b: &str, people| BoardRoster {
        area: "a".into(),
        message: RosterMessage {
            board: b.into(),
            issued_at: t0(),
            people,
        },
    };
    let rosters = [
        board(
            "b2",
            vec![
                rp("sv1", Role::Supervisor, Some("mg1")),
                rp("tl2", Role::TeamLeader, Some("sv1")),
            ],
        ),
        board(
            "b1",
            vec![
                rp("sv1", Role::Supervisor, Some("mg1")),
                rp("tl1", Role::TeamLeader, Some("sv1")),
            ],
        ),
    ];
    let people = people_from_rosters(&rosters);
    let sv1 = people.iter().find(|p| p.id == "sv1").unwrap();
    assert_eq!(sv1.boards, ["b1", "b2"]);
    assert_eq!(people.len(), 3);
    // Observations naming people the roster lacks: listed, inferred.
    let folded = fold(events(&[fac("o1", "sv9", "tl9", day(1.0))]));
    let r = report(
        "plant1",
        &people,
        &folded.observations,
        targets(),
        t0(),
        day(2.0),
    );
    let tl9 = entry_of(&r, "tl9");
    assert_eq!(
        (tl9.role, tl9.in_roster, tl9.name.as_str()),
        (Role::TeamLeader, false, "tl9")
    );
    assert_eq!(entry_of(&r, "sv9").role, Role::Supervisor);
    let rows = coaching_rows(&r);
    assert!(rows.iter().all(|row| row.len() == COACHING_COLUMNS.len()));
    assert!(observation_rows(&folded.observations)
        .iter()
        .all(|row| row.len() == OBSERVATION_COLUMNS.len()));
}
