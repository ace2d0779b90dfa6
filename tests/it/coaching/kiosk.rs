//! Coaching observations at the kiosk core, on a real SQLite file with a
//! pinned clock: whole level 3 and level 4 flows commit exactly the two
//! events; refusals, the timeout and a kill mid-flow leave no record.

use std::path::Path;

use crate::support::board::{at, badge, events, kiosk_config, monday, SHIPPED};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use huddle_board::domain::{
    FlowStep, ObservationLevel, SelfView, Step, COACHING, FACILITATION, FLOW_TIMEOUT_S,
};
use huddle_board::kiosk::app::{Board, Intent, Screen};
use huddle_board::kiosk::config::KioskConfig;
use huddle_board::text::{Text, TextKey};
use huddle_board::wire::event::{Envelope, Event};

const LEADER: &str = "1001";
const MEMBER: &str = "1002";
const SUPERVISOR: &str = "2001";
const MANAGER: &str = "3001";

fn observation_events(board: &Board) -> Vec<Event> {
    events(board)
        .into_iter()
        .filter(|e| e.kind.starts_with("observation."))
        .map(|e| Event::from_parts(&e.kind, &e.data).unwrap())
        .collect()
}

fn two(b: &Board) -> [Event; 2] {
    observation_events(b)
        .try_into()
        .expect("exactly the two observation events")
}

fn stored_rows(board: &Board) -> i64 {
    board
        .store()
        .read(|c| c.query_row("SELECT COUNT(*) FROM observations", [], |r| r.get(0)))
        .unwrap()
}

fn error(b: &Board, t: DateTime<Utc>) -> Option<Text> {
    b.view(t).unwrap().error
}

/// Walks a flow from the menu to the confirmation at `t`, scoring
/// behaviour i with `1 + i % 4`.
fn fill(b: &mut Board, level: ObservationLevel, t: DateTime<Utc>) {
    let h = |b: &mut Board, i: Intent| {
        b.handle(i, t).unwrap();
    };
    h(b, Intent::ObserveBegin(level));
    assert_eq!(b.screen(), Screen::Observe(FlowStep::SelfView));
    h(b, Intent::ObserveSelfView(SelfView::SoSo));
    assert_eq!(b.screen(), Screen::Observe(FlowStep::Rubric));
    for i in 0..level.behaviours().len() {
        h(
            b,
            Intent::ObserveScore {
                behaviour: i,
                score: 1 + (i % 4) as u8,
            },
        );
    }
    h(b, Intent::ObserveNext);
    assert_eq!(b.screen(), Screen::Observe(FlowStep::Picks));
    h(b, Intent::ObserveStrength(0));
    h(b, Intent::ObserveFocus(3));
    h(
        b,
        Intent::ObserveNote {
            focus: true,
            text: "Ask the quiet ones first".into(),
        },
    );
    h(b, Intent::ObserveNext);
    assert_eq!(b.screen(), Screen::Observe(FlowStep::Trigger));
    h(b, Intent::ObserveTrigger("When someone is silent".into()));
    h(b, Intent::ObserveReobserve(1));
    h(b, Intent::ObserveNext);
    assert_eq!(b.screen(), Screen::Observe(FlowStep::Confirm));
}

#[test]
fn level_3_after_the_huddle_commits_exactly_the_two_events() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = Board::open(kiosk_config(dir.path()), at(6, 40)).unwrap();
    b.handle(badge(LEADER), at(6, 40)).unwrap();
    b.handle(badge(SUPERVISOR), at(6, 41)).unwrap();
    // The supervisor's tap counts them in, then opens the coaching menu.
    assert!(b.huddle().unwrap().attendance.contains_key("p07"));
    assert_eq!(b.screen(), Screen::Observe(FlowStep::Menu));
    b.handle(Intent::ObserveCancel, at(6, 41)).unwrap();
    assert_eq!(b.screen(), Screen::Step(Step::Attendance));
    b.handle(Intent::CloseHuddle, at(6, 55)).unwrap();
    b.handle(badge(LEADER), at(6, 55)).unwrap();
    let huddle_id = events(&b)
        .iter()
        .find(|e| e.kind == "huddle.closed")
        .map(|e| e.data["huddle_id"].as_str().unwrap().to_owned())
        .unwrap();
    b.handle(Intent::Dismiss, at(6, 56)).unwrap();

    let before = b.store().last_seq().unwrap();
    b.handle(badge(SUPERVISOR), at(7, 0)).unwrap();
    assert_eq!(b.screen(), Screen::Observe(FlowStep::Menu));
    let menu = b.view(at(7, 0)).unwrap().observation.unwrap();
    assert_eq!(menu.levels, vec![ObservationLevel::Facilitation]);
    fill(&mut b, ObservationLevel::Facilitation, at(7, 5));
    assert_eq!(b.store().last_seq().unwrap(), before, "nothing stored yet");
    b.handle(badge(LEADER), at(7, 6)).unwrap();
    assert_eq!(b.screen(), Screen::Observe(FlowStep::Rate));
    assert_eq!(b.store().last_seq().unwrap(), before, "nothing stored yet");
    b.handle(Intent::ObserveRate(4), at(7, 6)).unwrap();
    assert_eq!(b.screen(), Screen::Idle);
    assert_eq!(
        b.view(at(7, 6)).unwrap().notice.unwrap().text,
        Text::with(TextKey::ObservationSaved, "Eva Novak")
    );

    let all = events(&b);
    assert_eq!(all.len() as u64, before + 2, "exactly two events");
    assert_eq!(all[before as usize].kind, "observation.recorded");
    assert_eq!(all[before as usize + 1].kind, "observation.acknowledged");
    let [Event::ObservationRecorded(rec), Event::ObservationAcknowledged(ack)] = two(&b) else {
        panic!("not the two observation events");
    };
    assert_eq!(rec.level, ObservationLevel::Facilitation);
    assert_eq!(rec.observer, "p07");
    assert_eq!(rec.learner, "p01");
    assert_eq!(rec.huddle_id.as_deref(), Some(huddle_id.as_str()));
    assert_eq!(rec.self_view, SelfView::SoSo);
    let keys: Vec<&str> = rec.scores.iter().map(|s| s.behaviour.as_str()).collect();
    assert_eq!(keys, FACILITATION);
    let scores: Vec<u8> = rec.scores.iter().map(|s| s.score).collect();
    assert_eq!(scores, [1, 2, 3, 4, 1, 2, 3, 4, 1]);
    assert_eq!(rec.strength.behaviour, "on_time_standard");
    assert_eq!(rec.strength.note, "");
    assert_eq!(rec.focus.behaviour, "everyone_contributed");
    assert_eq!(rec.focus.note, "Ask the quiet ones first");
    assert_eq!(rec.trigger, "When someone is silent");
    assert_eq!(rec.reobserve_on, monday() + Duration::days(7));
    assert_eq!(ack.observation_id, rec.observation_id);
    assert_eq!(ack.learner, "p01");
    assert_eq!(ack.helpfulness, 4);
    assert_eq!(stored_rows(&b), 1);

    // The idle screen keeps the focus point in sight, across a restart.
    drop(b);
    let b = Board::open(kiosk_config(dir.path()), at(8, 0)).unwrap();
    let focus = b.view(at(8, 0)).unwrap().focus.unwrap();
    assert_eq!(focus.learner, "Eva Novak");
    assert_eq!(FACILITATION[focus.behaviour], "everyone_contributed");
    assert_eq!(focus.note, "Ask the quiet ones first");
    assert_eq!(focus.trigger, "When someone is silent");
    assert_eq!(focus.reobserve_on, monday() + Duration::days(7));
}

#[test]
fn level_4_by_the_manager_with_the_supervisor_confirming() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = Board::open(kiosk_config(dir.path()), at(10, 0)).unwrap();
    b.handle(badge(MANAGER), at(10, 0)).unwrap();
    assert_eq!(b.screen(), Screen::Observe(FlowStep::Menu));
    // A manager does not observe huddles: the menu does not offer it, the core refuses it.
    b.handle(
        Intent::ObserveBegin(ObservationLevel::Facilitation),
        at(10, 0),
    )
    .unwrap();
    assert_eq!(
        error(&b, at(10, 0)),
        Some(Text::with(TextKey::CannotObserveHuddle, "Mira Kowalski"))
    );
    assert_eq!(b.screen(), Screen::Observe(FlowStep::Menu));
    fill(&mut b, ObservationLevel::Coaching, at(10, 1));
    // The team leader is not the learner at level 4.
    b.handle(badge(LEADER), at(10, 2)).unwrap();
    assert_eq!(
        error(&b, at(10, 2)),
        Some(Text {
            key: TextKey::NotTheLearner,
            arg: "Eva Novak".into(),
            arg2: "Sam Reyes".into()
        })
    );
    assert_eq!(b.screen(), Screen::Observe(FlowStep::Confirm));
    b.handle(badge(SUPERVISOR), at(10, 2)).unwrap();
    b.handle(Intent::ObserveRate(5), at(10, 3)).unwrap();
    let [Event::ObservationRecorded(rec), Event::ObservationAcknowledged(ack)] = two(&b) else {
        panic!("not the two observation events");
    };
    assert_eq!(rec.level, ObservationLevel::Coaching);
    assert_eq!(
        (rec.observer.as_str(), rec.learner.as_str()),
        ("p08", "p07")
    );
    assert_eq!(rec.huddle_id, None);
    let keys: Vec<&str> = rec.scores.iter().map(|s| s.behaviour.as_str()).collect();
    assert_eq!(keys, COACHING);
    assert_eq!(rec.focus.behaviour, "asked_not_told");
    assert_eq!((ack.learner.as_str(), ack.helpfulness), ("p07", 5));
    assert_eq!(events(&b).len(), 2, "the whole file: the two events");
    // A level 4 observation is not the team leader's focus point.
    assert_eq!(b.view(at(10, 4)).unwrap().focus, None);
}

#[test]
fn refusals_leave_no_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = Board::open(kiosk_config(dir.path()), at(10, 0)).unwrap();
    // A member's badge outside the huddle window opens nothing.
    b.handle(badge(MEMBER), at(10, 0)).unwrap();
    assert_eq!(b.screen(), Screen::Idle);
    assert!(b.view(at(10, 0)).unwrap().observation.is_none());
    // The intents without an open flow do nothing.
    b.handle(
        Intent::ObserveBegin(ObservationLevel::Facilitation),
        at(10, 0),
    )
    .unwrap();
    assert_eq!(b.screen(), Screen::Idle);
    // The team leader's badge starts a huddle, never the coaching menu.
    b.handle(badge(LEADER), at(10, 1)).unwrap();
    assert_eq!(b.screen(), Screen::Step(Step::Attendance));
    let seq = b.store().last_seq().unwrap();

    b.handle(badge(SUPERVISOR), at(10, 2)).unwrap();
    b.handle(Intent::ObserveBegin(ObservationLevel::Coaching), at(10, 2))
        .unwrap();
    assert_eq!(
        error(&b, at(10, 2)),
        Some(Text::with(TextKey::CannotObserveCoaching, "Sam Reyes"))
    );
    b.handle(
        Intent::ObserveBegin(ObservationLevel::Facilitation),
        at(10, 2),
    )
    .unwrap();
    // Each step says what it still needs.
    b.handle(Intent::ObserveNext, at(10, 2)).unwrap();
    assert_eq!(error(&b, at(10, 2)), Some(Text::new(TextKey::PickSelfView)));
    b.handle(Intent::ObserveSelfView(SelfView::WentWell), at(10, 2))
        .unwrap();
    b.handle(
        Intent::ObserveScore {
            behaviour: 0,
            score: 5,
        },
        at(10, 2),
    )
    .unwrap();
    assert_eq!(
        error(&b, at(10, 2)),
        Some(Text::new(TextKey::ScoreOutOfRange))
    );
    b.handle(
        Intent::ObserveScore {
            behaviour: 0,
            score: 3,
        },
        at(10, 2),
    )
    .unwrap();
    b.handle(Intent::ObserveNext, at(10, 2)).unwrap();
    assert_eq!(
        error(&b, at(10, 2)),
        Some(Text::with(TextKey::ScoreEveryBehaviour, "8"))
    );
    assert_eq!(b.screen(), Screen::Observe(FlowStep::Rubric));
    b.handle(Intent::ObserveBack, at(10, 2)).unwrap();
    assert_eq!(b.screen(), Screen::Observe(FlowStep::SelfView));
    b.handle(Intent::ObserveCancel, at(10, 3)).unwrap();
    assert_eq!(b.screen(), Screen::Step(Step::Attendance));

    // A whole draft, then the wrong badges at the confirmation.
    b.handle(badge(SUPERVISOR), at(10, 4)).unwrap();
    fill(&mut b, ObservationLevel::Facilitation, at(10, 5));
    b.handle(badge(SUPERVISOR), at(10, 6)).unwrap();
    assert_eq!(
        error(&b, at(10, 6)),
        Some(Text::with(TextKey::ObserverCannotConfirm, "Sam Reyes"))
    );
    b.handle(badge(MEMBER), at(10, 6)).unwrap();
    assert_eq!(
        error(&b, at(10, 6)),
        Some(Text {
            key: TextKey::NotTheLearner,
            arg: "Ana Silva".into(),
            arg2: "Eva Novak".into()
        })
    );
    b.handle(badge("987654"), at(10, 6)).unwrap();
    assert_eq!(
        b.view(at(10, 6)).unwrap().notice.unwrap().text,
        Text::new(TextKey::NotEnrolledCannotConfirm)
    );
    assert_eq!(b.screen(), Screen::Observe(FlowStep::Confirm));
    assert_eq!(
        b.huddle().unwrap().attendance.len(),
        2,
        "badges at the confirmation are not arrivals"
    );
    // The learner confirms but rates out of range: refused, still waiting.
    b.handle(badge(LEADER), at(10, 7)).unwrap();
    b.handle(Intent::ObserveRate(6), at(10, 7)).unwrap();
    assert_eq!(
        error(&b, at(10, 7)),
        Some(Text::new(TextKey::RateHelpfulness))
    );
    assert_eq!(b.screen(), Screen::Observe(FlowStep::Rate));

    // Walked away: the flow times out back to the huddle, nothing stored.
    let touched = at(10, 7);
    b.handle(Intent::Tick, touched + Duration::seconds(FLOW_TIMEOUT_S))
        .unwrap();
    assert_eq!(b.screen(), Screen::Observe(FlowStep::Rate));
    b.handle(
        Intent::Tick,
        touched + Duration::seconds(FLOW_TIMEOUT_S + 1),
    )
    .unwrap();
    assert_eq!(b.screen(), Screen::Step(Step::Attendance));
    assert_eq!(
        b.view(touched + Duration::seconds(FLOW_TIMEOUT_S + 1))
            .unwrap()
            .notice
            .unwrap()
            .text,
        Text::new(TextKey::ObservationTimedOut)
    );
    // Only the supervisor's own arrival was stored along the way.
    assert_eq!(b.store().last_seq().unwrap(), seq + 1);
    assert!(observation_events(&b).is_empty());
    assert_eq!(stored_rows(&b), 0);
    b.handle(Intent::ObserveRate(4), at(10, 20)).unwrap();
    assert!(observation_events(&b).is_empty(), "the draft is gone");
}

#[test]
fn killed_mid_flow_comes_back_without_a_record() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut b = Board::open(kiosk_config(dir.path()), at(10, 0)).unwrap();
        b.handle(badge(SUPERVISOR), at(10, 0)).unwrap();
        fill(&mut b, ObservationLevel::Facilitation, at(10, 1));
        b.handle(badge(LEADER), at(10, 2)).unwrap();
        assert_eq!(b.screen(), Screen::Observe(FlowStep::Rate));
        // Dropped before the rating, as a SIGKILL would.
    }
    let mut b = Board::open(kiosk_config(dir.path()), at(10, 3)).unwrap();
    assert_eq!(b.screen(), Screen::Idle);
    assert!(b.view(at(10, 3)).unwrap().observation.is_none());
    b.handle(Intent::ObserveRate(4), at(10, 3)).unwrap();
    assert!(events(&b).is_empty(), "no event at all");
    assert_eq!(stored_rows(&b), 0);
}

#[test]
fn several_team_leaders_are_picked_on_screen_and_nobody_observes_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let toml = SHIPPED.replace(
        "name = \"Ana Silva\"\nrole = \"member\"",
        "name = \"Ana Silva\"\nrole = \"team_leader\"",
    );
    assert_ne!(toml, SHIPPED, "the shipped roster changed: fix this test");
    let mut c = KioskConfig::from_toml(&toml, Path::new("kiosk.toml")).unwrap();
    c.storage.data_dir = dir.path().to_owned();
    let mut b = Board::open(c, at(10, 0)).unwrap();
    b.handle(badge(SUPERVISOR), at(10, 0)).unwrap();
    b.handle(
        Intent::ObserveBegin(ObservationLevel::Facilitation),
        at(10, 0),
    )
    .unwrap();
    assert_eq!(b.screen(), Screen::Observe(FlowStep::Learner));
    let names: Vec<String> = b
        .view(at(10, 0))
        .unwrap()
        .observation
        .unwrap()
        .learners
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["Eva Novak", "Ana Silva"]);
    b.handle(Intent::ObserveLearner("p07".into()), at(10, 0))
        .unwrap();
    assert_eq!(
        error(&b, at(10, 0)),
        Some(Text::with(TextKey::SelfObservation, "Sam Reyes"))
    );
    b.handle(Intent::ObserveLearner("p03".into()), at(10, 0))
        .unwrap();
    assert_eq!(
        error(&b, at(10, 0)),
        Some(Text::with(TextKey::NotALearner, "Ben Okafor"))
    );
    b.handle(Intent::ObserveLearner("p02".into()), at(10, 0))
        .unwrap();
    assert_eq!(b.screen(), Screen::Observe(FlowStep::SelfView));
    assert_eq!(
        b.view(at(10, 0)).unwrap().observation.unwrap().learner,
        "Ana Silva"
    );
    b.handle(Intent::ObserveBack, at(10, 0)).unwrap();
    assert_eq!(b.screen(), Screen::Observe(FlowStep::Learner));
}

#[test]
fn the_simulator_observes_at_a_realistic_cadence_some_boards_late() {
    use huddle_board::kiosk::simulate::{board_config, run_offline, SimOptions};
    let dir = tempfile::tempdir().unwrap();
    let base = kiosk_config(dir.path());
    let opts = SimOptions {
        boards: 4,
        first: 1,
        huddles: 35,
        rate: 0.0,
        data_dir: dir.path().join("sim"),
        ack_timeout: std::time::Duration::from_secs(1),
        publish: false,
        latency: false,
    };
    let results = run_offline(&base, &opts).unwrap();
    assert_eq!(results.len(), 4);
    let mut level3 = Vec::new();
    let mut level4 = Vec::new();
    let mut overdue = Vec::new();
    for i in 0..4 {
        let c = board_config(&base, i, &opts.data_dir);
        let store =
            huddle_board::kiosk::store::Store::open(&c.database_path(), &c.board.id).unwrap();
        let all: Vec<Envelope> = store
            .events_since(0)
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let huddles = all.iter().filter(|e| e.kind == "huddle.closed").count();
        assert_eq!(huddles, 35);
        // Every record is followed at once by its acknowledgement.
        let mut reobserve: Vec<(DateTime<Utc>, NaiveDate)> = Vec::new();
        let (mut l3, mut l4) = (0, 0);
        for (k, e) in all.iter().enumerate() {
            let Ok(Event::ObservationRecorded(rec)) = Event::from_parts(&e.kind, &e.data) else {
                continue;
            };
            let Ok(Event::ObservationAcknowledged(ack)) =
                Event::from_parts(&all[k + 1].kind, &all[k + 1].data)
            else {
                panic!("no acknowledgement right after {}", rec.observation_id);
            };
            assert_eq!(ack.observation_id, rec.observation_id);
            assert_eq!(ack.learner, rec.learner);
            match rec.level {
                ObservationLevel::Facilitation => {
                    l3 += 1;
                    assert_eq!(
                        (rec.observer.as_str(), rec.learner.as_str()),
                        ("p07", "p01")
                    );
                    reobserve.push((e.at, rec.reobserve_on));
                }
                ObservationLevel::Coaching => {
                    l4 += 1;
                    assert_eq!(
                        (rec.observer.as_str(), rec.learner.as_str()),
                        ("p08", "p07")
                    );
                }
            }
        }
        // Overdue: the next observation came after the agreed date.
        let tz = chrono_tz::Europe::Berlin;
        let late = reobserve
            .windows(2)
            .filter(|w| w[1].0.with_timezone(&tz).date_naive() > w[0].1)
            .count();
        level3.push(l3);
        level4.push(l4);
        overdue.push(late);
    }
    eprintln!("level 3 {level3:?}, level 4 {level4:?}, overdue {overdue:?} (35 huddles each)");
    // About 2 in 7 huddles on the diligent boards (1-3), fewer on board 4.
    for &n in &level3[..3] {
        assert!((5..=18).contains(&n), "level 3 cadence {level3:?}");
    }
    assert!(level3[3] < level3[..3].iter().min().copied().unwrap());
    assert!(level4.iter().sum::<usize>() < level3.iter().sum::<usize>() / 2);
    assert!(level4.iter().sum::<usize>() > 0, "{level4:?}");
    assert!(
        overdue[3] > 0,
        "the late board shows overdue coaching: {overdue:?}"
    );
}
