//! The coaching observation at the board (levels 3 and 4), the core's side.
//!
//! A supervisor's or manager's badge opens the coaching menu (after doing
//! what the tap always did: tapping in, or starting the scheduled huddle).
//! From there the flow walks the steps of [`FlowStep`]; the draft
//! ([`Draft`]) lives only in this process's memory. When the learner has
//! tapped their own badge and rated the coaching, one [`Store::transact`]
//! writes the `observations` row and both events (`observation.recorded`,
//! `observation.acknowledged`). A flow that is cancelled, left untouched
//! for [`crate::domain::FLOW_TIMEOUT_S`], or cut short by a kill leaves
//! nothing behind.
//!
//! [`Store::transact`]: crate::kiosk::store::Store::transact

use chrono::{DateTime, Duration, NaiveDate, Utc};

use super::{new_id, Board, Intent, Screen, Tone};
use crate::domain::{
    check_confirmer, check_learner, flow_expired, learners, levels_for, may_observe,
    reobserve_date, Draft, FlowStep, ObservationLevel, ObservationRefusal, Person, Role, SelfView,
};
use crate::kiosk::store::{parse_date, FocusRecord};
use crate::text::{Text, TextKey};
use crate::wire::event::Event;

use super::AppError;

/// A huddle closed this recently is still "the huddle observed" (level 3).
const JUST_CLOSED_H: i64 = 2;

/// The observation under way.
#[derive(Debug, Clone)]
pub(super) struct Flow {
    /// Whose badge opened it.
    observer: Person,
    /// The draft, once a level is chosen.
    draft: Option<Draft>,
    /// Where the flow is.
    step: FlowStep,
    /// Last touch, for the timeout.
    touched: DateTime<Utc>,
    /// When the level was chosen (stored as `started_at`).
    started: DateTime<Utc>,
    /// The learner was picked on screen (Back returns to the pick).
    picked_learner: bool,
    /// The re-observation choice on screen.
    reobserve_choice: Option<usize>,
    /// The learner, once their badge confirmed.
    confirmed_by: Option<Person>,
}

/// The observation as the screen shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservationView {
    /// The step.
    pub step: FlowStep,
    /// The coach's name.
    pub observer: String,
    /// The levels the coach may open (the menu's buttons).
    pub levels: Vec<ObservationLevel>,
    /// A huddle is open ("Back to the huddle").
    pub in_huddle: bool,
    /// The level chosen.
    pub level: Option<ObservationLevel>,
    /// The learner's name.
    pub learner: String,
    /// People to pick the learner from.
    pub learners: Vec<Person>,
    /// The learner's own view.
    pub self_view: Option<SelfView>,
    /// One per behaviour of the rubric, in order.
    pub scores: Vec<Option<u8>>,
    /// The strength's behaviour index.
    pub strength: Option<usize>,
    /// Its note.
    pub strength_note: String,
    /// The focus point's behaviour index.
    pub focus: Option<usize>,
    /// Its note.
    pub focus_note: String,
    /// When to apply the focus point.
    pub trigger: String,
    /// The re-observation choice.
    pub reobserve_choice: Option<usize>,
    /// The re-observation date.
    pub reobserve_on: Option<NaiveDate>,
}

/// The team leader's current focus point, for the idle screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FocusRow {
    /// The team leader's name.
    pub learner: String,
    /// The focus behaviour's index in the facilitation rubric.
    pub behaviour: usize,
    /// The focus point's note.
    pub note: String,
    /// When to apply it.
    pub trigger: String,
    /// When the supervisor observes again.
    pub reobserve_on: NaiveDate,
}

impl Board {
    /// Opens the coaching menu for a supervisor or manager (no-op for others).
    pub(super) fn open_menu(&mut self, person: &Person, now: DateTime<Utc>) {
        if levels_for(person).is_empty() {
            return;
        }
        self.pending = None;
        self.flow = Some(Flow {
            observer: person.clone(),
            draft: None,
            step: FlowStep::Menu,
            touched: now,
            started: now,
            picked_learner: false,
            reobserve_choice: None,
            confirmed_by: None,
        });
        self.go(Screen::Observe(FlowStep::Menu), now);
    }

    fn set_step(&mut self, step: FlowStep, now: DateTime<Utc>) {
        if let Some(flow) = self.flow.as_mut() {
            flow.step = step;
        }
        self.go(Screen::Observe(step), now);
    }

    /// Ends the flow without storing anything and shows the board again.
    fn end_flow(&mut self, now: DateTime<Utc>) {
        self.flow = None;
        let screen = self.huddle_screen();
        self.go(screen, now);
    }

    /// Drops a flow left untouched too long. Returns whether it did.
    pub(super) fn expire_flow(&mut self, now: DateTime<Utc>) -> bool {
        if !self
            .flow
            .as_ref()
            .is_some_and(|f| flow_expired(f.touched, now))
        {
            return false;
        }
        tracing::info!("coaching observation abandoned: timed out, nothing stored");
        self.end_flow(now);
        self.notify(TextKey::ObservationTimedOut, Tone::Warn, now);
        true
    }

    /// An unknown badge while the flow is open.
    pub(super) fn flow_unknown_badge(&mut self, now: DateTime<Utc>) {
        let confirming = self
            .flow
            .as_ref()
            .is_some_and(|f| f.step == FlowStep::Confirm);
        let key = if confirming {
            TextKey::NotEnrolledCannotConfirm
        } else {
            TextKey::ObservationInProgress
        };
        self.notify(key, Tone::Error, now);
    }

    /// A known badge while the flow is open: at the confirmation only the
    /// learner's counts; elsewhere the board asks to finish first.
    pub(super) fn flow_badge(&mut self, by: &Person, now: DateTime<Utc>) -> Result<(), AppError> {
        let Some(flow) = self.flow.as_mut() else {
            return Ok(());
        };
        flow.touched = now;
        let learner = flow.draft.as_ref().and_then(|d| d.learner.clone());
        match (flow.step, learner) {
            (FlowStep::Confirm, Some(learner)) => {
                match check_confirmer(by, &flow.observer, &learner) {
                    Ok(()) => {
                        flow.confirmed_by = Some(by.clone());
                        self.set_step(FlowStep::Rate, now);
                    }
                    Err(r) => self.refuse(r, now),
                }
            }
            _ => self.notify(TextKey::ObservationInProgress, Tone::Info, now),
        }
        Ok(())
    }

    /// The observation's intents. Returns whether the view changed.
    pub(super) fn observe(&mut self, intent: Intent, now: DateTime<Utc>) -> Result<bool, AppError> {
        let today = self.today(now);
        let Some(flow) = self.flow.as_mut() else {
            return Ok(false);
        };
        flow.touched = now;
        let step = flow.step;
        match intent {
            Intent::ObserveCancel => {
                self.end_flow(now);
                if step != FlowStep::Menu {
                    self.notify(TextKey::ObservationCancelled, Tone::Info, now);
                }
            }
            Intent::ObserveBegin(level) if step == FlowStep::Menu => self.begin(level, now),
            Intent::ObserveLearner(id) if step == FlowStep::Learner => {
                let Some(learner) = self.roster.person(&id).cloned() else {
                    return Ok(false);
                };
                let Some(draft) = flow.draft.as_mut() else {
                    return Ok(false);
                };
                match check_learner(&flow.observer, &learner, draft.level) {
                    Ok(()) => {
                        draft.learner = Some(learner);
                        self.set_step(FlowStep::SelfView, now);
                    }
                    Err(r) => self.refuse(r, now),
                }
            }
            Intent::ObserveBack => {
                let back = step.back(flow.picked_learner);
                if back == FlowStep::Menu {
                    flow.draft = None;
                }
                if step == FlowStep::Rate {
                    flow.confirmed_by = None;
                }
                self.set_step(back, now);
            }
            intent => {
                let Some(draft) = flow.draft.as_mut() else {
                    return Ok(false);
                };
                let mut refusal = None;
                match intent {
                    Intent::ObserveSelfView(v) if step == FlowStep::SelfView => {
                        draft.self_view = Some(v);
                        self.set_step(FlowStep::Rubric, now);
                        return Ok(true);
                    }
                    Intent::ObserveScore { behaviour, score } if step == FlowStep::Rubric => {
                        refusal = draft.score(behaviour, score).err();
                    }
                    Intent::ObserveStrength(i) if step == FlowStep::Picks => {
                        draft.strength = (i < draft.scores.len()).then_some(i);
                    }
                    Intent::ObserveFocus(i) if step == FlowStep::Picks => {
                        draft.focus = (i < draft.scores.len()).then_some(i);
                    }
                    Intent::ObserveNote { focus, text } if step == FlowStep::Picks => {
                        if focus {
                            draft.focus_note = text;
                        } else {
                            draft.strength_note = text;
                        }
                    }
                    Intent::ObserveTrigger(text) if step == FlowStep::Trigger => {
                        draft.trigger = text;
                    }
                    Intent::ObserveReobserve(choice) if step == FlowStep::Trigger => {
                        draft.reobserve_on = reobserve_date(choice, today);
                        flow.reobserve_choice = draft.reobserve_on.map(|_| choice);
                    }
                    Intent::ObserveNext => {
                        let next = match step {
                            FlowStep::SelfView => FlowStep::Rubric,
                            FlowStep::Rubric => FlowStep::Picks,
                            FlowStep::Picks => FlowStep::Trigger,
                            FlowStep::Trigger => FlowStep::Confirm,
                            _ => return Ok(false),
                        };
                        match draft.check(step, today) {
                            Ok(()) => self.set_step(next, now),
                            Err(r) => refusal = Some(r),
                        }
                    }
                    Intent::ObserveRate(helpfulness) if step == FlowStep::Rate => {
                        return self.commit_observation(helpfulness, now).map(|_| true);
                    }
                    _ => return Ok(false),
                }
                match refusal {
                    Some(r) => self.refuse(r, now),
                    None => self.error = None,
                }
            }
        }
        Ok(true)
    }

    /// The menu's choice: checks the role, finds the learner(s).
    fn begin(&mut self, level: ObservationLevel, now: DateTime<Utc>) {
        let huddle_id = match level {
            ObservationLevel::Facilitation => self.observed_huddle(now),
            ObservationLevel::Coaching => None,
        };
        let Some(flow) = self.flow.as_mut() else {
            return;
        };
        if let Err(r) = may_observe(&flow.observer, level) {
            self.refuse(r, now);
            return;
        }
        let candidates: Vec<Person> = learners(&self.roster, &flow.observer, level)
            .into_iter()
            .cloned()
            .collect();
        let mut draft = Draft::new(level, flow.observer.clone(), huddle_id);
        flow.started = now;
        flow.reobserve_choice = None;
        flow.confirmed_by = None;
        let next = match candidates.as_slice() {
            [] => {
                self.refuse(ObservationRefusal::NoLearner(level), now);
                return;
            }
            [only] => {
                draft.learner = Some(only.clone());
                flow.picked_learner = false;
                FlowStep::SelfView
            }
            _ => {
                flow.picked_learner = true;
                FlowStep::Learner
            }
        };
        flow.draft = Some(draft);
        self.set_step(next, now);
    }

    /// The huddle a level 3 observation is about: the open one, or the one
    /// closed within the last [`JUST_CLOSED_H`] hours.
    fn observed_huddle(&self, now: DateTime<Utc>) -> Option<String> {
        if let Some(h) = &self.huddle {
            return Some(h.id.clone());
        }
        self.closed
            .as_ref()
            .filter(|h| {
                h.closed_at
                    .is_some_and(|at| now - at <= Duration::hours(JUST_CLOSED_H))
            })
            .map(|h| h.id.clone())
    }

    /// The learner rated it: the row and both events in one transaction.
    fn commit_observation(&mut self, helpfulness: u8, now: DateTime<Utc>) -> Result<(), AppError> {
        let today = self.today(now);
        let Some(flow) = self.flow.clone() else {
            return Ok(());
        };
        let (Some(draft), Some(by)) = (&flow.draft, &flow.confirmed_by) else {
            return Ok(());
        };
        let (recorded, acknowledged) = match draft.finish(new_id(), by, helpfulness, today) {
            Ok(events) => events,
            Err(r) => {
                // A step became incomplete (the date passed at midnight): go back to it.
                if let Some((step, _)) = draft.first_incomplete(today) {
                    self.set_step(step, now);
                }
                self.refuse(r, now);
                return Ok(());
            }
        };
        let started = flow.started;
        self.store.transact(now, |tx| {
            tx.insert_observation(&recorded, &acknowledged, started)?;
            tx.emit(&Event::ObservationRecorded(recorded.clone()))?;
            tx.emit(&Event::ObservationAcknowledged(acknowledged.clone()))
                .map(|_| ())
        })?;
        tracing::info!(
            observation = %recorded.observation_id,
            level = recorded.level.number(),
            learner = %recorded.learner,
            "coaching observation stored"
        );
        self.end_flow(now);
        self.notify_person(
            Text::with(TextKey::ObservationSaved, &by.name),
            Tone::Ok,
            now,
            &by.id,
        );
        Ok(())
    }

    /// The learner's own language while the screens speak to them (confirm
    /// with their badge, rate the coaching); `None` elsewhere, or when
    /// they have none.
    pub(super) fn learner_language(&self) -> Option<String> {
        let flow = self.flow.as_ref()?;
        if !matches!(flow.step, FlowStep::Confirm | FlowStep::Rate) {
            return None;
        }
        let learner = flow.draft.as_ref()?.learner.as_ref()?;
        self.language_of(&learner.id)
    }

    /// The flow as the screen shows it.
    pub(super) fn observation_view(&self, _now: DateTime<Utc>) -> Option<ObservationView> {
        let flow = self.flow.as_ref()?;
        let draft = flow.draft.as_ref();
        let learner = draft.and_then(|d| d.learner.as_ref());
        Some(ObservationView {
            step: flow.step,
            observer: flow.observer.name.clone(),
            levels: levels_for(&flow.observer),
            in_huddle: self.huddle.is_some(),
            level: draft.map(|d| d.level),
            learner: learner.map(|p| p.name.clone()).unwrap_or_default(),
            learners: draft
                .map(|d| {
                    learners(&self.roster, &flow.observer, d.level)
                        .into_iter()
                        .cloned()
                        .collect()
                })
                .unwrap_or_default(),
            self_view: draft.and_then(|d| d.self_view),
            scores: draft.map(|d| d.scores.clone()).unwrap_or_default(),
            strength: draft.and_then(|d| d.strength),
            strength_note: draft.map(|d| d.strength_note.clone()).unwrap_or_default(),
            focus: draft.and_then(|d| d.focus),
            focus_note: draft.map(|d| d.focus_note.clone()).unwrap_or_default(),
            trigger: draft.map(|d| d.trigger.clone()).unwrap_or_default(),
            reobserve_choice: flow.reobserve_choice,
            reobserve_on: draft.and_then(|d| d.reobserve_on),
        })
    }
}

impl Board {
    /// The team leader's current focus point: the latest acknowledged level 3
    /// observation of a team leader on this roster (focus point, trigger and
    /// re-observation date).
    pub(super) fn focus_row(&self) -> Result<Option<FocusRow>, AppError> {
        let roster = &self.roster;
        let leaders: Vec<&str> = roster
            .people()
            .iter()
            .filter(|p| p.role == Role::TeamLeader)
            .map(|p| p.id.as_str())
            .collect();
        let Some(FocusRecord {
            learner,
            focus,
            note,
            trigger,
            reobserve_on: reobserve,
        }) = self.store.latest_focus(&leaders)?
        else {
            return Ok(None);
        };
        let behaviour = ObservationLevel::Facilitation
            .behaviours()
            .iter()
            .position(|k| *k == focus);
        let (Some(behaviour), Some(reobserve_on)) = (behaviour, parse_date(&reobserve)) else {
            tracing::warn!(%focus, %reobserve, "stored focus point not understood");
            return Ok(None);
        };
        Ok(Some(FocusRow {
            learner: roster
                .person(&learner)
                .map(|p| p.name.clone())
                .unwrap_or(learner),
            behaviour,
            note,
            trigger,
            reobserve_on,
        }))
    }
}
