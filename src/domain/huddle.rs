//! The huddle: its agenda, the rules for each step's records, and the
//! summary at close.
//!
//! Inputs arrive from the screen as plain values; each `validate` function
//! says whether they may be stored, and why not as a [`Refusal`] (a reason,
//! not words: the views word it, in the board's language). The kiosk stores
//! only what passed.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::{Person, Roster};

/// Longest short text accepted from the on-screen keyboard.
pub const MAX_TEXT: usize = 200;

/// One step of the huddle's agenda.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Start and attendance.
    Attendance,
    /// Reflect: yesterday's KPIs.
    Kpis,
    /// Review of open actions from earlier huddles.
    OpenActions,
    /// Plan today: resource needs.
    Needs,
    /// Improve: the team's one experiment.
    Experiment,
    /// New actions.
    NewActions,
    /// Close (always last; not configurable).
    Close,
}

impl Step {
    /// The configurable steps in the standard order.
    pub const ALL_AGENDA: [Step; 6] = [
        Step::Attendance,
        Step::Kpis,
        Step::OpenActions,
        Step::Needs,
        Step::Experiment,
        Step::NewActions,
    ];

    /// Config and wire name.
    pub fn key(self) -> &'static str {
        match self {
            Step::Attendance => "attendance",
            Step::Kpis => "kpis",
            Step::OpenActions => "open_actions",
            Step::Needs => "needs",
            Step::Experiment => "experiment",
            Step::NewActions => "new_actions",
            Step::Close => "close",
        }
    }

    /// Parses a config or wire name.
    pub fn from_key(key: &str) -> Option<Step> {
        Step::ALL_AGENDA
            .into_iter()
            .chain([Step::Close])
            .find(|s| s.key() == key)
    }
}

/// A text field of a form, for [`Refusal::Empty`] and [`Refusal::TooLong`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// What an action is.
    ActionWhat,
    /// A KPI's actual figure.
    Actual,
    /// A KPI miss's note.
    Note,
    /// What a need is.
    NeedText,
    /// The experiment's obstacle.
    Obstacle,
    /// What the experiment is expected to give.
    Expectation,
    /// The experiment's next step.
    NextStep,
}

/// Why an input cannot be stored: a reason the screen words (and
/// translates); names are the people concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A required text is empty.
    Empty(Field),
    /// A text is longer than [`MAX_TEXT`] characters.
    TooLong(Field),
    /// A missed KPI has no reason picked.
    PickReason,
    /// A missed KPI has neither an action nor "None needed".
    ActionOrNoneNeeded,
    /// The action's owner is not on the roster.
    PickOwner,
    /// No due date picked.
    PickDueDate,
    /// The due date is before today.
    DueInPast,
    /// No need category picked.
    PickCategory,
    /// The experiment's owner is not on the roster.
    PickExperimentOwner,
    /// The experiment has no check date.
    PickCheckDate,
    /// A reschedule without a new date.
    PickNewDate,
    /// This person may not start the huddle (their name).
    CannotStart(String),
    /// This person may not close the huddle (their name).
    CannotClose(String),
    /// This person may not enrol badges (their name).
    CannotEnrol(String),
}

/// For logs: the reason's name, not words for the screen.
impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for Refusal {}

/// Trims and checks a short text.
pub fn clean_text(value: &str, field: Field, required: bool) -> Result<String, Refusal> {
    let text = value.trim();
    if required && text.is_empty() {
        return Err(Refusal::Empty(field));
    }
    if text.chars().count() > MAX_TEXT {
        return Err(Refusal::TooLong(field));
    }
    Ok(text.to_owned())
}

/// The date a due-date choice on screen means: today, tomorrow, in 3 days, in a week.
pub fn due_date(choice: usize, today: NaiveDate) -> Option<NaiveDate> {
    let days = [0, 1, 3, 7].get(choice)?;
    today.checked_add_signed(Duration::days(*days))
}

/// A new action as entered: what, who, by when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NewAction {
    /// What is to be done.
    pub what: String,
    /// The owner's person id.
    pub owner: String,
    /// Local due date.
    pub due: NaiveDate,
}

impl NewAction {
    /// Checks text, owner (on the roster) and due date (not in the past).
    pub fn validate(
        what: &str,
        owner: &str,
        due: Option<NaiveDate>,
        roster: &Roster,
        today: NaiveDate,
    ) -> Result<Self, Refusal> {
        let what = clean_text(what, Field::ActionWhat, true)?;
        if roster.person(owner).is_none() {
            return Err(Refusal::PickOwner);
        }
        let Some(due) = due else {
            return Err(Refusal::PickDueDate);
        };
        if due < today {
            return Err(Refusal::DueInPast);
        }
        Ok(NewAction {
            what,
            owner: owner.to_owned(),
            due,
        })
    }
}

/// The outcome of one KPI's review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum KpiOutcome {
    /// Target met.
    Hit,
    /// Target missed, with its reason and what follows.
    Missed {
        /// A reason from the board's pick list.
        reason: String,
        /// Optional words.
        note: String,
        /// The action raised for it, or none needed.
        action: Option<NewAction>,
    },
}

/// A KPI review as entered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KpiReview {
    /// The KPI's key.
    pub kpi: String,
    /// The actual figure, if given.
    pub actual: String,
    /// Hit, or missed with reason and action.
    pub outcome: KpiOutcome,
}

/// What the screen sends for a missed KPI.
#[derive(Debug, Clone, Default)]
pub struct MissInput<'a> {
    /// Index into the board's miss reasons; `None` when not picked.
    pub reason: Option<usize>,
    /// Optional note.
    pub note: &'a str,
    /// "None needed" was chosen.
    pub none_needed: bool,
    /// The action's text, when an action is raised.
    pub action_what: &'a str,
    /// The action's owner.
    pub action_owner: &'a str,
    /// The action's due date.
    pub action_due: Option<NaiveDate>,
}

impl KpiReview {
    /// A hit.
    pub fn hit(kpi: &str, actual: &str) -> Result<Self, Refusal> {
        Ok(KpiReview {
            kpi: kpi.to_owned(),
            actual: clean_text(actual, Field::Actual, false)?,
            outcome: KpiOutcome::Hit,
        })
    }

    /// A miss: needs a reason and either an action or "none needed".
    pub fn missed(
        kpi: &str,
        actual: &str,
        input: &MissInput<'_>,
        reasons: &[String],
        roster: &Roster,
        today: NaiveDate,
    ) -> Result<Self, Refusal> {
        let Some(reason) = input.reason.and_then(|i| reasons.get(i)) else {
            return Err(Refusal::PickReason);
        };
        let note = clean_text(input.note, Field::Note, false)?;
        let action = if input.none_needed {
            None
        } else if input.action_what.trim().is_empty() {
            return Err(Refusal::ActionOrNoneNeeded);
        } else {
            Some(NewAction::validate(
                input.action_what,
                input.action_owner,
                input.action_due,
                roster,
                today,
            )?)
        };
        Ok(KpiReview {
            kpi: kpi.to_owned(),
            actual: clean_text(actual, Field::Actual, false)?,
            outcome: KpiOutcome::Missed {
                reason: reason.clone(),
                note,
                action,
            },
        })
    }
}

/// A resource need as entered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeedInput {
    /// The category from the board's list.
    pub category: String,
    /// Short description.
    pub text: String,
    /// Escalated to the supervisor (tier 2).
    pub escalated: bool,
}

impl NeedInput {
    /// Checks category and text.
    pub fn validate(
        category: Option<usize>,
        text: &str,
        escalated: bool,
        categories: &[String],
    ) -> Result<Self, Refusal> {
        let Some(category) = category.and_then(|i| categories.get(i)) else {
            return Err(Refusal::PickCategory);
        };
        Ok(NeedInput {
            category: category.clone(),
            text: clean_text(text, Field::NeedText, true)?,
            escalated,
        })
    }
}

/// The team's improvement experiment (one PDCA step).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ExperimentInput {
    /// The obstacle it addresses.
    pub obstacle: String,
    /// What the team expects.
    pub expectation: String,
    /// The next step.
    pub next_step: String,
    /// Its owner's person id.
    pub owner: String,
    /// When to check the result.
    pub check_date: NaiveDate,
}

impl ExperimentInput {
    /// Checks every field.
    pub fn validate(
        obstacle: &str,
        expectation: &str,
        next_step: &str,
        owner: &str,
        check_date: Option<NaiveDate>,
        roster: &Roster,
    ) -> Result<Self, Refusal> {
        let obstacle = clean_text(obstacle, Field::Obstacle, true)?;
        let expectation = clean_text(expectation, Field::Expectation, true)?;
        let next_step = clean_text(next_step, Field::NextStep, true)?;
        if roster.person(owner).is_none() {
            return Err(Refusal::PickExperimentOwner);
        }
        let Some(check_date) = check_date else {
            return Err(Refusal::PickCheckDate);
        };
        Ok(ExperimentInput {
            obstacle,
            expectation,
            next_step,
            owner: owner.to_owned(),
            check_date,
        })
    }
}

/// What may happen with a badge of this person at a prompt.
pub fn may_start(person: &Person) -> Result<(), Refusal> {
    if person.role.may_run_huddle() {
        Ok(())
    } else {
        Err(Refusal::CannotStart(person.name.clone()))
    }
}

/// Closing needs the team leader's badge.
pub fn may_close(person: &Person) -> Result<(), Refusal> {
    if person.role.may_run_huddle() {
        Ok(())
    } else {
        Err(Refusal::CannotClose(person.name.clone()))
    }
}

/// Enrolment needs a team leader's or supervisor's badge.
pub fn may_enrol(person: &Person) -> Result<(), Refusal> {
    if person.role.may_enrol() {
        Ok(())
    } else {
        Err(Refusal::CannotEnrol(person.name.clone()))
    }
}

/// One arrival in a huddle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    /// When the tap was committed.
    pub at: DateTime<Utc>,
    /// After the huddle's time plus grace.
    pub late: bool,
}

/// The open (or just closed) huddle, as the kiosk holds it in memory. It
/// is rebuilt from the store at start, so it survives a kill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Huddle {
    /// Global id.
    pub id: String,
    /// The time arrivals are measured against (the slot's time, or the
    /// start of an unscheduled huddle).
    pub due: DateTime<Utc>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Index into the agenda (the agenda's length means the close step).
    pub step: usize,
    /// Who is here, by person id.
    pub attendance: BTreeMap<String, Arrival>,
    /// KPI key -> hit?
    pub kpis: BTreeMap<String, bool>,
    /// Needs raised in this huddle, and how many of them were escalated.
    pub needs_raised: u32,
    /// Of those, escalated.
    pub needs_escalated: u32,
    /// Actions created in this huddle.
    pub actions_created: u32,
    /// Actions marked done in this huddle.
    pub actions_closed: u32,
    /// When it was closed.
    pub closed_at: Option<DateTime<Utc>>,
}

/// The numbers on the summary screen and in `huddle.closed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Summary {
    /// People who tapped in.
    pub present: u32,
    /// People expected (members and team leaders of the roster).
    pub expected: u32,
    /// Of the present, late.
    pub late: u32,
    /// Expected people who did not tap in.
    pub absent: Vec<String>,
    /// KPIs hit.
    pub kpis_hit: u32,
    /// KPIs reviewed.
    pub kpis_reviewed: u32,
    /// KPIs configured.
    pub kpis_total: u32,
    /// Needs raised.
    pub needs_raised: u32,
    /// Needs escalated.
    pub needs_escalated: u32,
    /// Actions created.
    pub actions_created: u32,
    /// Actions closed.
    pub actions_closed: u32,
    /// Duration in seconds.
    pub duration_s: i64,
    /// Target in seconds.
    pub target_s: i64,
}

impl Huddle {
    /// A huddle that starts now.
    pub fn new(id: String, due: DateTime<Utc>, started_at: DateTime<Utc>) -> Self {
        Huddle {
            id,
            due,
            started_at,
            step: 0,
            attendance: BTreeMap::new(),
            kpis: BTreeMap::new(),
            needs_raised: 0,
            needs_escalated: 0,
            actions_created: 0,
            actions_closed: 0,
            closed_at: None,
        }
    }

    /// Counts for the summary at `now` (or at close).
    pub fn summary(
        &self,
        roster: &Roster,
        kpis_total: usize,
        target: Duration,
        now: DateTime<Utc>,
    ) -> Summary {
        let expected: Vec<&Person> = roster.expected().collect();
        let end = self.closed_at.unwrap_or(now);
        Summary {
            present: self.attendance.len() as u32,
            expected: expected.len() as u32,
            late: self.attendance.values().filter(|a| a.late).count() as u32,
            absent: expected
                .iter()
                .filter(|p| !self.attendance.contains_key(&p.id))
                .map(|p| p.id.clone())
                .collect(),
            kpis_hit: self.kpis.values().filter(|hit| **hit).count() as u32,
            kpis_reviewed: self.kpis.len() as u32,
            kpis_total: kpis_total as u32,
            needs_raised: self.needs_raised,
            needs_escalated: self.needs_escalated,
            actions_created: self.actions_created,
            actions_closed: self.actions_closed,
            duration_s: (end - self.started_at).num_seconds().max(0),
            target_s: target.num_seconds(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roster() -> Roster {
        Roster::new(
            vec![
                Person {
                    id: "p1".into(),
                    name: "Ana Silva".into(),
                    role: Role::Member,
                },
                Person {
                    id: "p2".into(),
                    name: "Eva Novak".into(),
                    role: Role::TeamLeader,
                },
                Person {
                    id: "p3".into(),
                    name: "Sam Reyes".into(),
                    role: Role::Supervisor,
                },
            ],
            [],
        )
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 28).unwrap()
    }

    fn reasons() -> Vec<String> {
        vec!["Material".into(), "Machine".into()]
    }

    use crate::domain::Role;

    #[test]
    fn a_miss_without_a_reason_cannot_be_saved() {
        let input = MissInput {
            reason: None,
            none_needed: true,
            ..Default::default()
        };
        let e =
            KpiReview::missed("quality", "", &input, &reasons(), &roster(), today()).unwrap_err();
        assert_eq!(e, Refusal::PickReason);
        let input = MissInput {
            reason: Some(7),
            none_needed: true,
            ..Default::default()
        };
        assert!(KpiReview::missed("quality", "", &input, &reasons(), &roster(), today()).is_err());
    }

    #[test]
    fn a_miss_needs_an_action_or_none_needed() {
        let input = MissInput {
            reason: Some(0),
            ..Default::default()
        };
        let e =
            KpiReview::missed("quality", "", &input, &reasons(), &roster(), today()).unwrap_err();
        assert_eq!(e, Refusal::ActionOrNoneNeeded);

        let none = MissInput {
            reason: Some(0),
            none_needed: true,
            ..Default::default()
        };
        let r = KpiReview::missed("quality", "96", &none, &reasons(), &roster(), today()).unwrap();
        assert_eq!(
            r.outcome,
            KpiOutcome::Missed {
                reason: "Material".into(),
                note: String::new(),
                action: None
            }
        );

        let with_action = MissInput {
            reason: Some(1),
            action_what: " Check the lot ",
            action_owner: "p1",
            action_due: due_date(1, today()),
            ..Default::default()
        };
        let r =
            KpiReview::missed("quality", "", &with_action, &reasons(), &roster(), today()).unwrap();
        let KpiOutcome::Missed {
            action: Some(a), ..
        } = r.outcome
        else {
            panic!("no action")
        };
        assert_eq!(a.what, "Check the lot");
        assert_eq!(a.due, NaiveDate::from_ymd_opt(2026, 11, 29).unwrap());
    }

    #[test]
    fn an_action_needs_owner_on_roster_and_a_date() {
        let r = roster();
        assert_eq!(
            NewAction::validate("x", "nobody", due_date(0, today()), &r, today()),
            Err(Refusal::PickOwner)
        );
        assert_eq!(
            NewAction::validate("x", "p1", None, &r, today()),
            Err(Refusal::PickDueDate)
        );
        assert_eq!(
            NewAction::validate("  ", "p1", due_date(0, today()), &r, today()),
            Err(Refusal::Empty(Field::ActionWhat))
        );
        let yesterday = today().pred_opt();
        assert_eq!(
            NewAction::validate("x", "p1", yesterday, &r, today()),
            Err(Refusal::DueInPast)
        );
        assert_eq!(
            NewAction::validate(
                &"x".repeat(MAX_TEXT + 1),
                "p1",
                due_date(0, today()),
                &r,
                today()
            ),
            Err(Refusal::TooLong(Field::ActionWhat))
        );
        assert!(NewAction::validate("x", "p1", due_date(3, today()), &r, today()).is_ok());
        assert_eq!(due_date(4, today()), None);
    }

    #[test]
    fn only_the_team_leader_starts_and_closes() {
        let r = roster();
        assert!(may_start(r.person("p2").unwrap()).is_ok());
        assert!(may_close(r.person("p2").unwrap()).is_ok());
        for id in ["p1", "p3"] {
            let p = r.person(id).unwrap();
            assert_eq!(may_start(p), Err(Refusal::CannotStart(p.name.clone())));
            assert_eq!(may_close(p), Err(Refusal::CannotClose(p.name.clone())));
        }
        assert_eq!(
            may_enrol(r.person("p1").unwrap()),
            Err(Refusal::CannotEnrol("Ana Silva".into()))
        );
        assert!(may_enrol(r.person("p2").unwrap()).is_ok());
        assert!(may_enrol(r.person("p3").unwrap()).is_ok());
    }

    #[test]
    fn needs_and_experiments_are_checked() {
        let cats = vec!["People".to_string()];
        assert_eq!(
            NeedInput::validate(None, "x", false, &cats),
            Err(Refusal::PickCategory)
        );
        assert_eq!(
            NeedInput::validate(Some(0), " ", false, &cats),
            Err(Refusal::Empty(Field::NeedText))
        );
        assert!(
            NeedInput::validate(Some(0), "Cover Monday", true, &cats)
                .unwrap()
                .escalated
        );
        let r = roster();
        assert!(ExperimentInput::validate("o", "e", "n", "p1", due_date(3, today()), &r).is_ok());
        assert_eq!(
            ExperimentInput::validate("o", "", "n", "p1", due_date(3, today()), &r),
            Err(Refusal::Empty(Field::Expectation))
        );
        assert_eq!(
            ExperimentInput::validate("o", "e", "n", "px", due_date(3, today()), &r),
            Err(Refusal::PickExperimentOwner)
        );
        assert_eq!(
            ExperimentInput::validate("o", "e", "n", "p1", None, &r),
            Err(Refusal::PickCheckDate)
        );
    }

    #[test]
    fn summary_counts() {
        let t0 = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        let mut h = Huddle::new("h".into(), t0, t0);
        h.attendance
            .insert("p1".into(), Arrival { at: t0, late: true });
        h.kpis.insert("safety".into(), true);
        h.kpis.insert("quality".into(), false);
        h.closed_at = Some(t0 + Duration::seconds(754));
        let s = h.summary(&roster(), 4, Duration::minutes(15), t0 + Duration::hours(2));
        assert_eq!((s.present, s.expected, s.late), (1, 2, 1));
        assert_eq!(s.absent, vec!["p2".to_string()]);
        assert_eq!((s.kpis_hit, s.kpis_reviewed, s.kpis_total), (1, 2, 4));
        assert_eq!(s.duration_s, 754);
        assert_eq!(s.target_s, 900);
    }
}
