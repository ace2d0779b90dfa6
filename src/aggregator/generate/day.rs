//! One working day of the generated plant: each board's huddles (taps,
//! steps, KPI reviews, actions, needs, the experiment, the close) and the
//! coaching observations of the day, as the boards' kiosks would have
//! written them. Pure: the clock is the day's date and `until`; every
//! draw comes from the board's own [`Rng`], so a board's history does not
//! depend on how many boards there are after it.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

use super::plant::{Board, Plant};
use super::rng::Rng;
use crate::domain::{BehaviourScore, ObservationLevel, Pick, SelfView, Summary};
use crate::wire::event::{
    ActionCreated, ActionUpdated, AttendanceTapped, Event, ExperimentUpdated, HuddleAdvanced,
    HuddleClosed, HuddleStarted, KpiReviewed, NeedRaised, NeedRef, ObservationAcknowledged,
    ObservationRecorded, StartTrigger, TapVia,
};

/// The two shifts' huddles, site time.
pub const SLOTS: [&str; 2] = ["06:45", "14:45"];
/// The agenda the generated kiosks run.
pub const AGENDA: [&str; 6] = [
    "attendance",
    "kpis",
    "open_actions",
    "needs",
    "experiment",
    "new_actions",
];
/// The KPIs and how often each is missed.
const KPIS: [(&str, f64); 4] = [
    ("safety", 0.02),
    ("quality", 0.12),
    ("delivery", 0.15),
    ("cost", 0.10),
];
const MISS_REASONS: [&str; 6] = [
    "Material", "Machine", "Method", "People", "Upstream", "Other",
];
const NEED_CATEGORIES: [&str; 5] = ["People", "Material", "Equipment", "Information", "Safety"];
const NEEDS: [&str; 6] = [
    "Second forklift for the afternoon",
    "Spare torque wrench, ours is out for calibration",
    "Two people from the pool for the changeover",
    "Drawing revision C for the new bracket",
    "Guard on station 4 is loose",
    "Label printer keeps jamming",
];
const ACTIONS: [&str; 6] = [
    "Check the feeder settings with maintenance",
    "Re-train the night shift on the new work instruction",
    "Ask logistics for an earlier delivery window",
    "Replace the worn fixture pins",
    "Update the visual standard at station 2",
    "Sort the blocked parts with quality",
];
const OBSTACLES: [&str; 4] = [
    "Changeovers take 25 minutes",
    "Scrap at the press after every die change",
    "Parts wait at the buffer before test",
    "First-pass yield drops on Mondays",
];
const TRIGGERS: [&str; 4] = [
    "When a discussion passes two minutes",
    "When a KPI is red two days running",
    "Before asking the next question",
    "When someone has not spoken yet",
];

/// A target huddle length, seconds.
const TARGET_S: u32 = 900;
/// Late after the slot plus this.
const GRACE: Duration = Duration::minutes(5);

/// An action a board still has open.
#[derive(Debug, Clone)]
struct OpenAction {
    id: String,
    due: NaiveDate,
}

/// A need a board raised and nobody closed yet.
#[derive(Debug, Clone)]
struct OpenNeed {
    id: String,
    escalated: bool,
    raised: NaiveDate,
}

/// What one board carries from day to day.
#[derive(Debug, Clone)]
pub struct BoardState {
    rng: Rng,
    actions: Vec<OpenAction>,
    needs: Vec<OpenNeed>,
}

impl BoardState {
    /// The state of the `index`-th board for `seed`.
    pub fn new(seed: u64, index: usize) -> BoardState {
        BoardState {
            rng: Rng::fork(seed, index as u64),
            actions: Vec::new(),
            needs: Vec::new(),
        }
    }
}

/// One board's events of a day, in the order written (time order).
pub type Day = Vec<(DateTime<Utc>, Event)>;

/// Whether the plant works on `date` (Monday to Friday).
pub fn working(date: NaiveDate) -> bool {
    !matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

/// A local time of `date` in `tz` (the earliest instant of a repeated one;
/// one skipped by daylight saving moves an hour on).
fn local(tz: Tz, date: NaiveDate, hhmm: &str) -> DateTime<Utc> {
    let t = NaiveTime::parse_from_str(hhmm, "%H:%M").unwrap_or(NaiveTime::MIN);
    let naive = date.and_time(t);
    tz.from_local_datetime(&naive)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(naive + Duration::hours(1)))
                .earliest()
        })
        .map_or_else(|| naive.and_utc(), |t| t.with_timezone(&Utc))
}

/// Every board's events of `date` (empty on days off), by board index;
/// nothing at or after `until`.
pub fn day(
    plant: &mut Plant,
    states: &mut [BoardState],
    tz: Tz,
    date: NaiveDate,
    until: DateTime<Utc>,
) -> Vec<Day> {
    let mut out: Vec<Day> = vec![Vec::new(); plant.boards.len()];
    if !working(date) {
        return out;
    }
    for (i, slot) in SLOTS.iter().enumerate() {
        let at = local(tz, date, slot);
        for b in 0..plant.boards.len() {
            huddle(plant, b, &mut states[b], date, slot, at, i, &mut out[b]);
        }
    }
    // Level 4: a manager watches a supervisor coach after the morning
    // huddle, on the first of the supervisor's boards.
    let mut seen = std::collections::BTreeSet::new();
    for b in 0..plant.boards.len() {
        let board = &plant.boards[b];
        if !seen.insert(board.supervisor) {
            continue;
        }
        let manager = board.manager;
        let rng = &mut states[b].rng;
        if rng.chance(plant.people[manager].diligence * 0.25) {
            let at = local(tz, date, SLOTS[0]) + Duration::minutes(rng.range(35, 90));
            let learner = board.supervisor;
            observe(
                plant,
                rng,
                ObservationLevel::Coaching,
                manager,
                learner,
                None,
                at,
                date,
                &mut out[b],
            );
        }
    }
    for d in &mut out {
        d.retain(|(at, _)| *at < until);
        d.sort_by_key(|(at, _)| *at);
    }
    out
}

/// One huddle of board `b` at slot time `slot_at` (or none: missed).
#[allow(clippy::too_many_arguments)]
fn huddle(
    plant: &mut Plant,
    b: usize,
    state: &mut BoardState,
    date: NaiveDate,
    slot: &str,
    slot_at: DateTime<Utc>,
    shift: usize,
    out: &mut Day,
) {
    let board: Board = plant.boards[b].clone();
    let rng = &mut state.rng;
    // One in fifty is not held; one in thirty starts after its grace.
    if rng.chance(0.02) {
        return;
    }
    let start = if rng.chance(0.033) {
        slot_at + Duration::minutes(rng.range(6, 20))
    } else {
        slot_at + Duration::seconds(rng.range(-120, 240))
    };
    let id = rng.uuid_at(start).to_string();
    let tl = &plant.people[board.team_leader];
    let tl_here = rng.chance(0.94);
    let mut present: Vec<(usize, DateTime<Utc>, bool)> = Vec::new();
    for &p in std::iter::once(&board.team_leader).chain(&board.members) {
        let here = if p == board.team_leader {
            tl_here
        } else {
            rng.chance(0.9 + 0.08 * plant.people[p].diligence)
        };
        if !here {
            continue;
        }
        let late = rng.chance(0.07);
        let at = if late {
            slot_at + GRACE + Duration::seconds(rng.range(30, 600))
        } else {
            start + Duration::seconds(rng.range(0, 150))
        };
        present.push((p, at.max(start), late && at > slot_at + GRACE));
    }
    let (started_by, trigger) = if tl_here && rng.chance(0.7) {
        (tl.id.clone(), StartTrigger::TeamLeader)
    } else {
        let first = present.iter().min_by_key(|(_, at, _)| *at);
        (
            first.map_or(tl.id.clone(), |(p, _, _)| plant.people[*p].id.clone()),
            StartTrigger::FirstTap,
        )
    };
    let late_start = start > slot_at + GRACE;
    out.push((
        start,
        Event::HuddleStarted(HuddleStarted {
            huddle_id: id.clone(),
            scheduled_at: (!late_start).then_some(slot_at),
            slot: (!late_start).then(|| slot.to_owned()),
            started_by,
            trigger,
            target_minutes: TARGET_S / 60,
            agenda: AGENDA.iter().map(|s| (*s).to_owned()).collect(),
        }),
    ));
    for (p, at, late) in &present {
        out.push((
            *at,
            Event::AttendanceTapped(AttendanceTapped {
                huddle_id: id.clone(),
                person_id: plant.people[*p].id.clone(),
                via: if rng.chance(0.92) {
                    TapVia::Badge
                } else {
                    TapVia::Name
                },
                late: *late,
            }),
        ));
    }
    let members: Vec<String> = board
        .members
        .iter()
        .map(|m| plant.people[*m].id.clone())
        .collect();
    let mut t = start + Duration::seconds(rng.range(100, 160));
    let step = |out: &mut Day, t: DateTime<Utc>, index: usize| {
        out.push((
            t,
            Event::HuddleAdvanced(HuddleAdvanced {
                huddle_id: id.clone(),
                step: AGENDA[index].to_owned(),
                index,
            }),
        ));
    };
    let mut sum = Summary {
        present: present.len() as u32,
        expected: 1 + board.members.len() as u32,
        late: present.iter().filter(|p| p.2).count() as u32,
        absent: std::iter::once(&board.team_leader)
            .chain(&board.members)
            .filter(|p| !present.iter().any(|(q, _, _)| q == *p))
            .map(|p| plant.people[*p].id.clone())
            .collect(),
        kpis_hit: 0,
        kpis_reviewed: 0,
        kpis_total: KPIS.len() as u32,
        needs_raised: 0,
        needs_escalated: 0,
        actions_created: 0,
        actions_closed: 0,
        duration_s: 0,
        target_s: i64::from(TARGET_S),
    };
    // KPIs: yesterday's figures, each hit or missed with a reason.
    step(out, t, 1);
    for (kpi, miss) in KPIS {
        t += Duration::seconds(rng.range(20, 60));
        sum.kpis_reviewed += 1;
        let missed = rng.chance(miss);
        let action = (missed && rng.chance(0.6)).then(|| rng.uuid_at(t).to_string());
        out.push((
            t,
            Event::KpiReviewed(KpiReviewed {
                huddle_id: id.clone(),
                kpi: kpi.to_owned(),
                status: if missed { "missed" } else { "hit" }.to_owned(),
                actual: format!("{}", rng.range(90, 100)),
                reason: if missed {
                    (*rng.pick(&MISS_REASONS)).to_owned()
                } else {
                    String::new()
                },
                note: String::new(),
                action_id: action.clone(),
                none_needed: missed && action.is_none(),
            }),
        ));
        sum.kpis_hit += u32::from(!missed);
        if let Some(action_id) = action {
            let owner = rng.pick(&members).clone();
            let due = date + Duration::days(rng.range(1, 6));
            out.push((
                t,
                Event::ActionCreated(ActionCreated {
                    action_id: action_id.clone(),
                    huddle_id: id.clone(),
                    what: (*rng.pick(&ACTIONS)).to_owned(),
                    owner,
                    due,
                    source: format!("kpi:{kpi}"),
                }),
            ));
            sum.actions_created += 1;
            state.actions.push(OpenAction { id: action_id, due });
        }
    }
    // Open actions: those due are closed, rescheduled or blocked.
    t += Duration::seconds(rng.range(20, 60));
    step(out, t, 2);
    let mut kept = Vec::new();
    for mut a in std::mem::take(&mut state.actions) {
        let due_now = a.due <= date;
        if !due_now && !rng.chance(0.05) {
            kept.push(a);
            continue;
        }
        t += Duration::seconds(rng.range(10, 30));
        let r = rng.unit();
        let status = if r < 0.72 || kept.len() > 40 {
            "done"
        } else if r < 0.92 {
            a.due = date + Duration::days(rng.range(2, 7));
            "rescheduled"
        } else {
            "blocked"
        };
        out.push((
            t,
            Event::ActionUpdated(ActionUpdated {
                action_id: a.id.clone(),
                huddle_id: id.clone(),
                status: status.to_owned(),
                due: a.due,
            }),
        ));
        if status == "done" {
            sum.actions_closed += 1;
        } else {
            if status == "blocked" {
                a.due = date + Duration::days(1);
            }
            kept.push(a);
        }
    }
    state.actions = kept;
    // Needs: some raised, some escalated (now or later), escalated ones
    // closed by the supervisor after a while; a few stay open for weeks.
    t += Duration::seconds(rng.range(20, 60));
    step(out, t, 3);
    if rng.chance(0.25) {
        let need_id = rng.uuid_at(t).to_string();
        let escalated = rng.chance(0.35);
        out.push((
            t,
            Event::NeedRaised(NeedRaised {
                need_id: need_id.clone(),
                huddle_id: id.clone(),
                category: (*rng.pick(&NEED_CATEGORIES)).to_owned(),
                text: (*rng.pick(&NEEDS)).to_owned(),
                escalated,
            }),
        ));
        sum.needs_raised += 1;
        sum.needs_escalated += u32::from(escalated);
        state.needs.push(OpenNeed {
            id: need_id,
            escalated,
            raised: date,
        });
    }
    let supervisor = plant.people[board.supervisor].id.clone();
    let mut needs = Vec::new();
    for mut n in std::mem::take(&mut state.needs) {
        t += Duration::seconds(rng.range(5, 20));
        if !n.escalated {
            if rng.chance(0.15) {
                n.escalated = true;
                sum.needs_escalated += 1;
                out.push((
                    t,
                    Event::NeedEscalated(NeedRef {
                        need_id: n.id.clone(),
                        by: Some(tl.id.clone()),
                    }),
                ));
            } else if date - n.raised > Duration::days(5) {
                // Sorted out on the floor: no event, the board forgets it.
                continue;
            }
            needs.push(n);
        } else if rng.chance(0.2) || needs.len() > 25 {
            out.push((
                t,
                Event::NeedClosed(NeedRef {
                    need_id: n.id.clone(),
                    by: Some(supervisor.clone()),
                }),
            ));
        } else {
            needs.push(n);
        }
    }
    state.needs = needs;
    // The experiment: set again on Monday mornings.
    t += Duration::seconds(rng.range(20, 60));
    step(out, t, 4);
    if shift == 0 && date.weekday() == Weekday::Mon {
        out.push((
            t,
            Event::ExperimentUpdated(ExperimentUpdated {
                huddle_id: id.clone(),
                obstacle: (*rng.pick(&OBSTACLES)).to_owned(),
                expectation: "Ten minutes less by Friday".to_owned(),
                next_step: (*rng.pick(&ACTIONS)).to_owned(),
                owner: rng.pick(&members).clone(),
                check_date: date + Duration::days(7),
            }),
        ));
    }
    t += Duration::seconds(rng.range(20, 60));
    step(out, t, 5);
    if rng.chance(0.3) {
        let action_id = rng.uuid_at(t).to_string();
        let owner = rng.pick(&members).clone();
        let due = date + Duration::days(rng.range(1, 10));
        out.push((
            t,
            Event::ActionCreated(ActionCreated {
                action_id: action_id.clone(),
                huddle_id: id.clone(),
                what: (*rng.pick(&ACTIONS)).to_owned(),
                owner,
                due,
                source: "new".to_owned(),
            }),
        ));
        sum.actions_created += 1;
        state.actions.push(OpenAction { id: action_id, due });
    }
    let closed = (start + Duration::seconds(rng.range(600, 1200))).max(t + Duration::seconds(20));
    sum.duration_s = (closed - start).num_seconds();
    // Level 3: the supervisor watched this huddle.
    let watcher = board.supervisor;
    if rng.chance(plant.people[watcher].diligence * 0.26) {
        let at = closed + Duration::seconds(rng.range(60, 300));
        observe(
            plant,
            rng,
            ObservationLevel::Facilitation,
            watcher,
            board.team_leader,
            Some(id.clone()),
            at,
            date,
            out,
        );
    }
    out.push((
        closed,
        Event::HuddleClosed(HuddleClosed {
            huddle_id: id,
            closed_by: plant.people[board.team_leader].id.clone(),
            summary: sum,
        }),
    ));
}

/// An observation and, most of the time, the learner's acknowledgement.
#[allow(clippy::too_many_arguments)]
fn observe(
    plant: &mut Plant,
    rng: &mut Rng,
    level: ObservationLevel,
    observer: usize,
    learner: usize,
    huddle_id: Option<String>,
    at: DateTime<Utc>,
    date: NaiveDate,
    out: &mut Day,
) {
    let skill = plant.people[learner].skill;
    let scores: Vec<BehaviourScore> = level
        .behaviours()
        .iter()
        .map(|b| BehaviourScore {
            behaviour: (*b).to_owned(),
            score: (skill + rng.unit() * 1.6 - 0.8).round().clamp(1.0, 4.0) as u8,
        })
        .collect();
    let best = scores
        .iter()
        .max_by_key(|s| s.score)
        .map_or("", |s| &s.behaviour);
    let worst = scores
        .iter()
        .min_by_key(|s| s.score)
        .map_or("", |s| &s.behaviour);
    let observation_id = rng.uuid_at(at).to_string();
    let learner_id = plant.people[learner].id.clone();
    out.push((
        at,
        Event::ObservationRecorded(ObservationRecorded {
            observation_id: observation_id.clone(),
            level,
            observer: plant.people[observer].id.clone(),
            learner: learner_id.clone(),
            huddle_id,
            self_view: *rng.pick(&[SelfView::WentWell, SelfView::SoSo, SelfView::Badly]),
            strength: Pick {
                behaviour: best.to_owned(),
                note: String::new(),
            },
            focus: Pick {
                behaviour: worst.to_owned(),
                note: String::new(),
            },
            scores,
            trigger: (*rng.pick(&TRIGGERS)).to_owned(),
            reobserve_on: date + Duration::days(*rng.pick(&crate::domain::REOBSERVE_DAYS)),
        }),
    ));
    if rng.chance(0.9) {
        out.push((
            at + Duration::seconds(rng.range(30, 180)),
            Event::ObservationAcknowledged(ObservationAcknowledged {
                observation_id,
                learner: learner_id,
                helpfulness: rng.range(3, 5) as u8,
            }),
        ));
    }
    let p = &mut plant.people[learner];
    p.skill = (p.skill + 0.04).min(3.8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_working_day_has_two_closed_huddles_a_board_and_a_weekend_none() {
        let mut plant = Plant::new(10, 3, "k");
        let mut states: Vec<BoardState> = (0..10).map(|i| BoardState::new(3, i)).collect();
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let monday = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        let far = Utc::now() + Duration::days(3650);
        let days = day(&mut plant, &mut states, tz, monday, far);
        let started: usize = days
            .iter()
            .flatten()
            .filter(|(_, e)| matches!(e, Event::HuddleStarted(_)))
            .count();
        let closed: usize = days
            .iter()
            .flatten()
            .filter(|(_, e)| matches!(e, Event::HuddleClosed(_)))
            .count();
        assert_eq!(started, closed);
        assert!((16..=20).contains(&started), "{started}");
        for d in &days {
            assert!(d.windows(2).all(|w| w[0].0 <= w[1].0));
        }
        let sunday = monday - Duration::days(1);
        assert!(day(&mut plant, &mut states, tz, sunday, far)
            .iter()
            .all(Vec::is_empty));
        // Nothing at or after `until`.
        let noon = local(tz, monday, "12:00");
        let morning = day(&mut plant, &mut states, tz, monday, noon);
        assert!(morning.iter().flatten().all(|(at, _)| *at < noon));
    }
}
