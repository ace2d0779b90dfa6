//! The coaching observation at the board: who may open which flow, the
//! draft the coach fills in step by step, and when a half-done flow is
//! abandoned.
//!
//! A supervisor observes a team leader's huddle (level 3, "Observe
//! huddle"); a manager observes a supervisor's coaching (level 4, "Observe
//! coaching"). Nobody observes themselves, and only the learner's own badge
//! confirms. The draft lives in the kiosk's memory until the learner has
//! confirmed and rated it; then [`Draft::finish`] turns it into the two
//! events of the contract, written in one transaction. Until then nothing
//! is stored, so an abandoned flow ([`flow_expired`]) or a killed kiosk
//! leaves no half record.
//!
//! Like the huddle's rules, these take `today`/`now` as parameters and
//! return reasons ([`ObservationRefusal`]) that the screen words.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::{
    BehaviourScore, ObservationLevel, Person, Pick, Role, Roster, SelfView, NOTE_MAX_CHARS,
};

/// How long a half-done observation may sit untouched before the board
/// goes back to what it showed (and the draft is dropped). Longer than a
/// badge prompt: the coach and the learner talk between the steps.
pub const FLOW_TIMEOUT_S: i64 = 300;

/// The re-observation choices on screen, in days from today.
pub const REOBSERVE_DAYS: [i64; 3] = [3, 7, 14];

/// Why a step of the observation cannot go on: a reason the screen words;
/// names are the people concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObservationRefusal {
    /// This person may not open this level's observation (their name).
    CannotObserve(String, ObservationLevel),
    /// The board's roster has nobody to observe at this level.
    NoLearner(ObservationLevel),
    /// The observer picked themselves as the learner (their name).
    SelfObservation(String),
    /// The picked learner does not have the level's learner role (name).
    NotALearner(String),
    /// The observer tapped their own badge to confirm (their name).
    ObserverCannotConfirm(String),
    /// Someone else's badge at the confirmation (their name, the learner's).
    NotTheLearner(String, String),
    /// The learner's own view is not picked.
    PickSelfView,
    /// Behaviours without a score (how many).
    ScoreEveryBehaviour(usize),
    /// A score outside 1-4.
    ScoreOutOfRange,
    /// No strength picked.
    PickStrength,
    /// No focus point picked.
    PickFocus,
    /// A note longer than [`NOTE_MAX_CHARS`].
    NoteTooLong,
    /// The trigger is empty.
    EnterTrigger,
    /// The trigger is longer than [`NOTE_MAX_CHARS`].
    TriggerTooLong,
    /// No re-observation date picked.
    PickReobserveDate,
    /// The re-observation date is today or earlier.
    ReobserveNotAfterToday,
    /// Helpfulness outside 1-5.
    RateHelpfulness,
}

/// For logs: the reason's name, not words for the screen.
impl std::fmt::Display for ObservationRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for ObservationRefusal {}

/// Which role observes at a level, and which role learns.
pub fn roles(level: ObservationLevel) -> (Role, Role) {
    match level {
        ObservationLevel::Facilitation => (Role::Supervisor, Role::TeamLeader),
        ObservationLevel::Coaching => (Role::Manager, Role::Supervisor),
    }
}

/// The levels this person may open (empty for members and team leaders).
pub fn levels_for(person: &Person) -> Vec<ObservationLevel> {
    [ObservationLevel::Facilitation, ObservationLevel::Coaching]
        .into_iter()
        .filter(|l| roles(*l).0 == person.role)
        .collect()
}

/// Whether `observer` may open the observation of `level`: a supervisor
/// observes huddles (level 3), a manager observes coaching (level 4).
pub fn may_observe(observer: &Person, level: ObservationLevel) -> Result<(), ObservationRefusal> {
    if roles(level).0 == observer.role {
        Ok(())
    } else {
        Err(ObservationRefusal::CannotObserve(
            observer.name.clone(),
            level,
        ))
    }
}

/// The people `observer` may observe at `level` on this roster, in roster
/// order: team leaders (level 3) or supervisors (level 4), never the
/// observer. The screen picks when there are several.
pub fn learners<'a>(
    roster: &'a Roster,
    observer: &Person,
    level: ObservationLevel,
) -> Vec<&'a Person> {
    let role = roles(level).1;
    roster
        .people()
        .iter()
        .filter(|p| p.role == role && p.id != observer.id)
        .collect()
}

/// Checks the learner picked for `observer` at `level`.
pub fn check_learner(
    observer: &Person,
    learner: &Person,
    level: ObservationLevel,
) -> Result<(), ObservationRefusal> {
    if learner.id == observer.id {
        return Err(ObservationRefusal::SelfObservation(observer.name.clone()));
    }
    if learner.role != roles(level).1 {
        return Err(ObservationRefusal::NotALearner(learner.name.clone()));
    }
    Ok(())
}

/// Whether the badge holder `by` may confirm an observation of `learner`
/// by `observer`: only the learner's own badge does.
pub fn check_confirmer(
    by: &Person,
    observer: &Person,
    learner: &Person,
) -> Result<(), ObservationRefusal> {
    if by.id == learner.id {
        Ok(())
    } else if by.id == observer.id {
        Err(ObservationRefusal::ObserverCannotConfirm(by.name.clone()))
    } else {
        Err(ObservationRefusal::NotTheLearner(
            by.name.clone(),
            learner.name.clone(),
        ))
    }
}

/// Whether a flow last touched at `touched` is abandoned at `now`.
pub fn flow_expired(touched: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    now - touched > Duration::seconds(FLOW_TIMEOUT_S)
}

/// The date a re-observation choice on screen means (index into
/// [`REOBSERVE_DAYS`]).
pub fn reobserve_date(choice: usize, today: NaiveDate) -> Option<NaiveDate> {
    let days = REOBSERVE_DAYS.get(choice)?;
    today.checked_add_signed(Duration::days(*days))
}

/// The steps of the flow, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlowStep {
    /// The observer's badge opened the choice: which observation.
    Menu,
    /// Several possible learners: pick one.
    Learner,
    /// The learner's own view, first.
    SelfView,
    /// Each behaviour of the rubric, 1-4.
    Rubric,
    /// One strength and one focus point, each with an optional note.
    Picks,
    /// When to apply the focus point, and when to observe again.
    Trigger,
    /// The learner taps their badge.
    Confirm,
    /// The learner rates the coaching's helpfulness; the tap stores it.
    Rate,
}

impl FlowStep {
    /// The step before this one (the learner step only when there was a pick).
    pub fn back(self, picked_learner: bool) -> FlowStep {
        match self {
            FlowStep::Menu | FlowStep::Learner => FlowStep::Menu,
            FlowStep::SelfView if picked_learner => FlowStep::Learner,
            FlowStep::SelfView => FlowStep::Menu,
            FlowStep::Rubric => FlowStep::SelfView,
            FlowStep::Picks => FlowStep::Rubric,
            FlowStep::Trigger => FlowStep::Picks,
            FlowStep::Confirm => FlowStep::Trigger,
            FlowStep::Rate => FlowStep::Confirm,
        }
    }
}

/// An observation being filled in. Every field may still be missing;
/// [`Draft::check`] says what a step still needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    /// Facilitation or coaching.
    pub level: ObservationLevel,
    /// The coach.
    pub observer: Person,
    /// The learner, once known.
    pub learner: Option<Person>,
    /// The huddle observed (level 3).
    pub huddle_id: Option<String>,
    /// The learner's own view.
    pub self_view: Option<SelfView>,
    /// One entry per behaviour of the level's rubric, in order.
    pub scores: Vec<Option<u8>>,
    /// Index of the strength's behaviour.
    pub strength: Option<usize>,
    /// The strength's note.
    pub strength_note: String,
    /// Index of the focus point's behaviour.
    pub focus: Option<usize>,
    /// The focus point's note.
    pub focus_note: String,
    /// When to apply the focus point.
    pub trigger: String,
    /// When to observe again.
    pub reobserve_on: Option<NaiveDate>,
}

fn check_note(note: &str) -> Result<String, ObservationRefusal> {
    let note = note.trim();
    if note.chars().count() > NOTE_MAX_CHARS {
        return Err(ObservationRefusal::NoteTooLong);
    }
    Ok(note.to_owned())
}

impl Draft {
    /// An empty draft of `level` by `observer`.
    pub fn new(level: ObservationLevel, observer: Person, huddle_id: Option<String>) -> Draft {
        Draft {
            level,
            observer,
            learner: None,
            huddle_id,
            self_view: None,
            scores: vec![None; level.behaviours().len()],
            strength: None,
            strength_note: String::new(),
            focus: None,
            focus_note: String::new(),
            trigger: String::new(),
            reobserve_on: None,
        }
    }

    /// Sets one behaviour's score (1-4).
    pub fn score(&mut self, behaviour: usize, score: u8) -> Result<(), ObservationRefusal> {
        if !(1..=4).contains(&score) {
            return Err(ObservationRefusal::ScoreOutOfRange);
        }
        match self.scores.get_mut(behaviour) {
            Some(slot) => {
                *slot = Some(score);
                Ok(())
            }
            None => Err(ObservationRefusal::ScoreOutOfRange),
        }
    }

    /// What `step` still needs before the flow may go on from it, at `today`.
    pub fn check(&self, step: FlowStep, today: NaiveDate) -> Result<(), ObservationRefusal> {
        match step {
            FlowStep::Menu | FlowStep::Learner | FlowStep::Confirm | FlowStep::Rate => Ok(()),
            FlowStep::SelfView => self
                .self_view
                .map(|_| ())
                .ok_or(ObservationRefusal::PickSelfView),
            FlowStep::Rubric => match self.scores.iter().filter(|s| s.is_none()).count() {
                0 => Ok(()),
                n => Err(ObservationRefusal::ScoreEveryBehaviour(n)),
            },
            FlowStep::Picks => {
                let n = self.level.behaviours().len();
                if self.strength.is_none_or(|i| i >= n) {
                    return Err(ObservationRefusal::PickStrength);
                }
                if self.focus.is_none_or(|i| i >= n) {
                    return Err(ObservationRefusal::PickFocus);
                }
                check_note(&self.strength_note)?;
                check_note(&self.focus_note).map(|_| ())
            }
            FlowStep::Trigger => {
                let trigger = self.trigger.trim();
                if trigger.is_empty() {
                    return Err(ObservationRefusal::EnterTrigger);
                }
                if trigger.chars().count() > NOTE_MAX_CHARS {
                    return Err(ObservationRefusal::TriggerTooLong);
                }
                match self.reobserve_on {
                    None => Err(ObservationRefusal::PickReobserveDate),
                    Some(d) if d <= today => Err(ObservationRefusal::ReobserveNotAfterToday),
                    Some(_) => Ok(()),
                }
            }
        }
    }

    /// The first step from `SelfView` on that is not complete, if any.
    pub fn first_incomplete(&self, today: NaiveDate) -> Option<(FlowStep, ObservationRefusal)> {
        [
            FlowStep::SelfView,
            FlowStep::Rubric,
            FlowStep::Picks,
            FlowStep::Trigger,
        ]
        .into_iter()
        .find_map(|s| self.check(s, today).err().map(|r| (s, r)))
    }

    /// The two events of a confirmed observation: the record and the
    /// learner's acknowledgement with their helpfulness rating (1-5).
    /// Checks everything again; `confirmed_by` must be the learner.
    pub fn finish(
        &self,
        observation_id: String,
        confirmed_by: &Person,
        helpfulness: u8,
        today: NaiveDate,
    ) -> Result<(ObservationRecorded, ObservationAcknowledged), ObservationRefusal> {
        may_observe(&self.observer, self.level)?;
        let Some(learner) = &self.learner else {
            return Err(ObservationRefusal::NoLearner(self.level));
        };
        check_learner(&self.observer, learner, self.level)?;
        check_confirmer(confirmed_by, &self.observer, learner)?;
        if let Some((_, refusal)) = self.first_incomplete(today) {
            return Err(refusal);
        }
        if !(1..=5).contains(&helpfulness) {
            return Err(ObservationRefusal::RateHelpfulness);
        }
        let keys = self.level.behaviours();
        let pick = |i: Option<usize>, note: &str| -> Result<Pick, ObservationRefusal> {
            Ok(Pick {
                behaviour: i
                    .and_then(|i| keys.get(i))
                    .map(|k| (*k).to_owned())
                    .unwrap_or_default(),
                note: check_note(note)?,
            })
        };
        let recorded = ObservationRecorded {
            observation_id: observation_id.clone(),
            level: self.level,
            observer: self.observer.id.clone(),
            learner: learner.id.clone(),
            huddle_id: self.huddle_id.clone(),
            self_view: self.self_view.ok_or(ObservationRefusal::PickSelfView)?,
            scores: keys
                .iter()
                .zip(&self.scores)
                .map(|(k, s)| BehaviourScore {
                    behaviour: (*k).to_owned(),
                    score: s.unwrap_or_default(),
                })
                .collect(),
            strength: pick(self.strength, &self.strength_note)?,
            focus: pick(self.focus, &self.focus_note)?,
            trigger: self.trigger.trim().to_owned(),
            reobserve_on: self
                .reobserve_on
                .ok_or(ObservationRefusal::PickReobserveDate)?,
        };
        let acknowledged = ObservationAcknowledged {
            observation_id,
            learner: learner.id.clone(),
            helpfulness,
        };
        Ok((recorded, acknowledged))
    }
}

/// `observation.recorded`: written in the same transaction as the
/// learner's `observation.acknowledged`, so no half observation is ever sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ObservationRecorded {
    /// The observation's id (UUID v7), shared with its acknowledgement.
    pub observation_id: String,
    /// Facilitation (level 3) or coaching (level 4).
    pub level: ObservationLevel,
    /// The coach: a supervisor (level 3) or a manager (level 4).
    pub observer: String,
    /// The learner: a team leader (level 3) or a supervisor (level 4).
    pub learner: String,
    /// The huddle observed (level 3, when one was running or just closed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub huddle_id: Option<String>,
    /// The learner's own view, asked first.
    pub self_view: SelfView,
    /// One score per behaviour of the level's rubric, in rubric order.
    pub scores: Vec<BehaviourScore>,
    /// One strength.
    pub strength: Pick,
    /// One focus point.
    pub focus: Pick,
    /// When to apply the focus point.
    pub trigger: String,
    /// When the coach will observe again.
    pub reobserve_on: NaiveDate,
}

/// `observation.acknowledged`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ObservationAcknowledged {
    /// The observation confirmed.
    pub observation_id: String,
    /// The learner, who confirmed with their own badge.
    pub learner: String,
    /// How helpful the coaching was, 1 to 5.
    pub helpfulness: u8,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(id: &str, role: Role) -> Person {
        Person {
            id: id.into(),
            name: format!("{id} name"),
            role,
        }
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 30).unwrap()
    }

    fn roster() -> Roster {
        Roster::new(
            vec![
                person("tl", Role::TeamLeader),
                person("m", Role::Member),
                person("sup", Role::Supervisor),
                person("mgr", Role::Manager),
            ],
            [],
        )
    }

    fn complete(level: ObservationLevel) -> Draft {
        let (observer, learner) = match level {
            ObservationLevel::Facilitation => ("sup", "tl"),
            ObservationLevel::Coaching => ("mgr", "sup"),
        };
        let r = roster();
        let mut d = Draft::new(level, r.person(observer).unwrap().clone(), None);
        d.learner = r.person(learner).cloned();
        d.self_view = Some(SelfView::SoSo);
        for i in 0..d.scores.len() {
            d.score(i, 1 + (i % 4) as u8).unwrap();
        }
        d.strength = Some(0);
        d.focus = Some(2);
        d.focus_note = "  ask first  ".into();
        d.trigger = "When a KPI is missed".into();
        d.reobserve_on = reobserve_date(1, today());
        d
    }

    #[test]
    fn supervisors_observe_huddles_and_managers_observe_coaching() {
        let r = roster();
        let p = |id| r.person(id).unwrap();
        assert!(may_observe(p("sup"), ObservationLevel::Facilitation).is_ok());
        assert!(may_observe(p("mgr"), ObservationLevel::Coaching).is_ok());
        for (id, level) in [
            ("m", ObservationLevel::Facilitation),
            ("m", ObservationLevel::Coaching),
            ("tl", ObservationLevel::Facilitation),
            ("sup", ObservationLevel::Coaching),
            ("mgr", ObservationLevel::Facilitation),
        ] {
            assert_eq!(
                may_observe(p(id), level),
                Err(ObservationRefusal::CannotObserve(
                    format!("{id} name"),
                    level
                ))
            );
        }
        assert!(levels_for(p("m")).is_empty());
        assert!(levels_for(p("tl")).is_empty());
        assert_eq!(levels_for(p("sup")), vec![ObservationLevel::Facilitation]);
        assert_eq!(levels_for(p("mgr")), vec![ObservationLevel::Coaching]);
    }

    #[test]
    fn learners_have_the_level_role_and_are_never_the_observer() {
        let r = roster();
        let sup = r.person("sup").unwrap();
        let mgr = r.person("mgr").unwrap();
        let ids = |v: Vec<&Person>| v.into_iter().map(|p| p.id.clone()).collect::<Vec<_>>();
        assert_eq!(
            ids(learners(&r, sup, ObservationLevel::Facilitation)),
            ["tl"]
        );
        assert_eq!(ids(learners(&r, mgr, ObservationLevel::Coaching)), ["sup"]);
        assert!(learners(&r, sup, ObservationLevel::Coaching).is_empty());
        assert_eq!(
            check_learner(sup, sup, ObservationLevel::Facilitation),
            Err(ObservationRefusal::SelfObservation("sup name".into()))
        );
        assert_eq!(
            check_learner(sup, r.person("m").unwrap(), ObservationLevel::Facilitation),
            Err(ObservationRefusal::NotALearner("m name".into()))
        );
    }

    #[test]
    fn only_the_learner_confirms() {
        let r = roster();
        let p = |id| r.person(id).unwrap();
        assert!(check_confirmer(p("tl"), p("sup"), p("tl")).is_ok());
        assert_eq!(
            check_confirmer(p("sup"), p("sup"), p("tl")),
            Err(ObservationRefusal::ObserverCannotConfirm("sup name".into()))
        );
        assert_eq!(
            check_confirmer(p("m"), p("sup"), p("tl")),
            Err(ObservationRefusal::NotTheLearner(
                "m name".into(),
                "tl name".into()
            ))
        );
    }

    #[test]
    fn each_step_says_what_it_still_needs() {
        let r = roster();
        let mut d = Draft::new(
            ObservationLevel::Facilitation,
            r.person("sup").unwrap().clone(),
            None,
        );
        assert_eq!(
            d.check(FlowStep::SelfView, today()),
            Err(ObservationRefusal::PickSelfView)
        );
        assert_eq!(
            d.check(FlowStep::Rubric, today()),
            Err(ObservationRefusal::ScoreEveryBehaviour(9))
        );
        assert_eq!(d.score(0, 5), Err(ObservationRefusal::ScoreOutOfRange));
        assert_eq!(d.score(0, 0), Err(ObservationRefusal::ScoreOutOfRange));
        assert_eq!(d.score(9, 2), Err(ObservationRefusal::ScoreOutOfRange));
        d.score(0, 4).unwrap();
        assert_eq!(
            d.check(FlowStep::Rubric, today()),
            Err(ObservationRefusal::ScoreEveryBehaviour(8))
        );
        assert_eq!(
            d.check(FlowStep::Picks, today()),
            Err(ObservationRefusal::PickStrength)
        );
        d.strength = Some(1);
        assert_eq!(
            d.check(FlowStep::Picks, today()),
            Err(ObservationRefusal::PickFocus)
        );
        d.focus = Some(9); // not a behaviour of the rubric
        assert_eq!(
            d.check(FlowStep::Picks, today()),
            Err(ObservationRefusal::PickFocus)
        );
        d.focus = Some(8);
        d.focus_note = "x".repeat(NOTE_MAX_CHARS + 1);
        assert_eq!(
            d.check(FlowStep::Picks, today()),
            Err(ObservationRefusal::NoteTooLong)
        );
        d.focus_note.clear();
        assert!(d.check(FlowStep::Picks, today()).is_ok());
        d.trigger = "   ".into();
        assert_eq!(
            d.check(FlowStep::Trigger, today()),
            Err(ObservationRefusal::EnterTrigger)
        );
        d.trigger = "y".repeat(NOTE_MAX_CHARS + 1);
        assert_eq!(
            d.check(FlowStep::Trigger, today()),
            Err(ObservationRefusal::TriggerTooLong)
        );
        d.trigger = "At the start".into();
        assert_eq!(
            d.check(FlowStep::Trigger, today()),
            Err(ObservationRefusal::PickReobserveDate)
        );
        d.reobserve_on = Some(today());
        assert_eq!(
            d.check(FlowStep::Trigger, today()),
            Err(ObservationRefusal::ReobserveNotAfterToday)
        );
        d.reobserve_on = reobserve_date(0, today());
        assert!(d.check(FlowStep::Trigger, today()).is_ok());
    }

    #[test]
    fn a_complete_draft_becomes_the_two_events() {
        for level in [ObservationLevel::Facilitation, ObservationLevel::Coaching] {
            let d = complete(level);
            let learner = d.learner.clone().unwrap();
            let (rec, ack) = d.finish("obs-1".into(), &learner, 4, today()).unwrap();
            assert_eq!(rec.observation_id, "obs-1");
            assert_eq!(ack.observation_id, "obs-1");
            assert_eq!(rec.level, level);
            assert_eq!(rec.observer, d.observer.id);
            assert_eq!(rec.learner, learner.id);
            assert_eq!(ack.learner, learner.id);
            assert_eq!(ack.helpfulness, 4);
            assert_eq!(rec.scores.len(), level.behaviours().len());
            let keys: Vec<&str> = rec.scores.iter().map(|s| s.behaviour.as_str()).collect();
            assert_eq!(keys, level.behaviours());
            assert!(rec.scores.iter().all(|s| (1..=4).contains(&s.score)));
            assert_eq!(rec.strength.behaviour, level.behaviours()[0]);
            assert_eq!(rec.focus.behaviour, level.behaviours()[2]);
            assert_eq!(rec.focus.note, "ask first");
            assert_eq!(rec.reobserve_on, today() + Duration::days(7));
        }
    }

    #[test]
    fn finishing_refuses_the_wrong_badge_a_bad_rating_and_gaps() {
        let d = complete(ObservationLevel::Facilitation);
        let r = roster();
        let learner = r.person("tl").unwrap();
        assert_eq!(
            d.finish("o".into(), r.person("m").unwrap(), 3, today())
                .unwrap_err(),
            ObservationRefusal::NotTheLearner("m name".into(), "tl name".into())
        );
        assert_eq!(
            d.finish("o".into(), r.person("sup").unwrap(), 3, today())
                .unwrap_err(),
            ObservationRefusal::ObserverCannotConfirm("sup name".into())
        );
        for bad in [0, 6] {
            assert_eq!(
                d.finish("o".into(), learner, bad, today()).unwrap_err(),
                ObservationRefusal::RateHelpfulness
            );
        }
        let mut gap = d.clone();
        gap.scores[3] = None;
        assert_eq!(
            gap.finish("o".into(), learner, 3, today()).unwrap_err(),
            ObservationRefusal::ScoreEveryBehaviour(1)
        );
        // The date was fine when picked, but the flow crossed midnight into it.
        let late = d.reobserve_on.unwrap();
        assert_eq!(
            d.finish("o".into(), learner, 3, late).unwrap_err(),
            ObservationRefusal::ReobserveNotAfterToday
        );
    }

    #[test]
    fn a_flow_expires_after_the_timeout_without_a_touch() {
        let t = DateTime::parse_from_rfc3339("2026-11-30T06:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert!(!flow_expired(t, t + Duration::seconds(FLOW_TIMEOUT_S)));
        assert!(flow_expired(t, t + Duration::seconds(FLOW_TIMEOUT_S + 1)));
        assert_eq!(FlowStep::SelfView.back(true), FlowStep::Learner);
        assert_eq!(FlowStep::SelfView.back(false), FlowStep::Menu);
        assert_eq!(FlowStep::Rate.back(false), FlowStep::Confirm);
        assert_eq!(reobserve_date(3, today()), None);
        assert_eq!(
            reobserve_date(2, today()),
            Some(today() + Duration::days(14))
        );
    }
}
