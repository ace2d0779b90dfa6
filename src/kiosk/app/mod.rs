//! The kiosk core: what the team does at the board, one owner of the
//! board's state and its store.
//!
//! Everything a person does at the board arrives here as an [`Intent`]
//! (from the screen, a badge reader or the clock); [`Board::handle`]
//! dispatches it to the file for what the person is doing:
//!
//! - `huddle.rs`: badge taps, starting the huddle, attendance, the agenda
//!   steps, closing it, and enrolling an unknown badge.
//! - `kpis.rs`: reviewing the KPIs (a miss with its action).
//! - `actions.rs`: new actions and reviewing open ones.
//! - `needs.rs`: resource needs and the team's experiment.
//! - `roster.rs`: the roster in use (the aggregator's or the config's).
//! - `observe.rs`: the coaching observation (levels 3 and 4).
//! - `view.rs`: what the screens show ([`Board::view`], [`BoardView`]).
//!
//! Called by the Slint window (`ui`, the only place that turns the view
//! into Slint's types), the snapshot renderer, `simulate`, the binary, the
//! tests and the benchmarks.
//!
//! Guarantees: each act decides with the pure rules of [`crate::domain`],
//! then writes its records and their events in one [`Store::transact`]
//! call, and only after that SQLite transaction commits does the screen
//! confirm it (the state in memory changes, the toast says so). A failed
//! act leaves neither record nor event. The core runs no SQL: every
//! statement is a named function of [`crate::kiosk::store`]. The
//! in-memory state is a cache of the store: [`Board::open`] rebuilds it
//! from the file, so a killed kiosk comes back as it was.

use std::collections::HashMap;
use std::time::Instant;

use chrono::{DateTime, Duration, NaiveDate, Utc};

use crate::domain::{
    due_date, hash_badge, BadgeHash, ExperimentInput, FlowStep, Huddle, KpiReview, MissInput,
    NeedInput, NewAction, ObservationLevel, Roster, Schedule, SelfView, Step,
};
use crate::kiosk::badge::{BadgeInput, KeyboardWedge};
use crate::kiosk::config::KioskConfig;
use crate::kiosk::outbox::LinkStatus;
use crate::kiosk::store::{Store, StoreError};
use crate::text::{Text, TextKey};
use crate::wire::payload::RosterMessage;

mod actions;
mod huddle;
mod kpis;
mod needs;
mod observe;
mod roster;
mod view;

pub use crate::kiosk::store::{ActionRow, ExperimentRow, NeedRow};
pub use observe::{FocusRow, ObservationView};
pub use view::{BoardView, KpiRow, PersonRow};

/// Errors that stop the kiosk (a refusal is not one: it is shown).
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the screen or a reader asks of the board.
#[derive(Debug, Clone, PartialEq)]
pub enum Intent {
    /// A badge reader's input.
    Badge(BadgeInput),
    /// A key from a keyboard-wedge reader (a digit, or "\n").
    Key(String),
    /// Any touch.
    Touched,
    /// "Start huddle": prompts for the team leader's badge.
    StartHuddle,
    /// Next agenda step.
    NextStep,
    /// Previous agenda step.
    PreviousStep,
    /// "Close huddle": prompts for the team leader's badge.
    CloseHuddle,
    /// Cancel the badge prompt.
    CancelPrompt,
    /// Leave the summary, unknown-badge or enrolment screen.
    Dismiss,
    /// A member tapped their own name.
    TapName(String),
    /// A KPI hit.
    KpiHit {
        /// KPI key.
        key: String,
        /// Actual figure.
        actual: String,
    },
    /// A KPI miss.
    KpiMiss {
        /// KPI key.
        key: String,
        /// Actual figure.
        actual: String,
        /// Reason index.
        reason: Option<usize>,
        /// Note.
        note: String,
        /// "None needed".
        none_needed: bool,
        /// Action text.
        what: String,
        /// Action owner.
        owner: String,
        /// Due choice index.
        due: Option<usize>,
    },
    /// An open action is done.
    ActionDone(String),
    /// An open action gets a new date (due choice index).
    Reschedule(String, usize),
    /// An open action is blocked.
    ActionBlocked(String),
    /// A new action.
    AddAction {
        /// What.
        what: String,
        /// Owner id.
        owner: String,
        /// Due choice index.
        due: Option<usize>,
    },
    /// A resource need.
    RaiseNeed {
        /// Category index.
        category: Option<usize>,
        /// Text.
        text: String,
        /// Escalate to the supervisor.
        escalate: bool,
    },
    /// The experiment.
    SaveExperiment {
        /// Obstacle.
        obstacle: String,
        /// Expectation.
        expectation: String,
        /// Next step.
        next_step: String,
        /// Owner id.
        owner: String,
        /// Check-date choice index.
        check: Option<usize>,
    },
    /// From the unknown-badge screen to enrolment.
    EnrolBegin,
    /// The person to enrol the badge to.
    EnrolChoose(String),
    /// Time passes.
    Tick,
    /// The outbox publisher's link changed (shown in the header).
    Link(LinkStatus),
    /// A roster published for this board by the aggregator: applied if it
    /// is newer than the one in use.
    ApplyRoster(RosterMessage),
    /// Coaching menu: open the observation of this level.
    ObserveBegin(ObservationLevel),
    /// The learner, when there are several to pick from (person id).
    ObserveLearner(String),
    /// The learner's own view (the flow moves on by itself).
    ObserveSelfView(SelfView),
    /// One behaviour's score.
    ObserveScore {
        /// Index into the level's rubric.
        behaviour: usize,
        /// 1 to 4.
        score: u8,
    },
    /// The strength (index into the rubric).
    ObserveStrength(usize),
    /// The focus point (index into the rubric).
    ObserveFocus(usize),
    /// A note on the strength (`focus: false`) or the focus point.
    ObserveNote {
        /// Which note.
        focus: bool,
        /// The words.
        text: String,
    },
    /// When to apply the focus point (a preset or free text).
    ObserveTrigger(String),
    /// The re-observation choice (index into `REOBSERVE_DAYS`).
    ObserveReobserve(usize),
    /// On to the next step of the observation (checks this one).
    ObserveNext,
    /// Back one step.
    ObserveBack,
    /// Drop the observation; nothing is stored.
    ObserveCancel,
    /// The learner's helpfulness rating (1-5): stores the observation.
    ObserveRate(u8),
}

/// Which screen the board shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    /// Between huddles.
    Idle,
    /// A step of the open huddle (including [`Step::Close`]).
    Step(Step),
    /// The summary of the huddle just closed.
    Summary,
    /// A badge nobody holds.
    UnknownBadge,
    /// Enrolment of that badge.
    Enrol,
    /// A step of a coaching observation (from the coaching menu on).
    Observe(FlowStep),
}

/// A toast's tone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// Neutral.
    Info,
    /// Done.
    Ok,
    /// Not done, nothing wrong.
    Warn,
    /// Refused.
    Error,
}

/// A short message for a few seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// What to say (the view words it).
    pub text: Text,
    /// The tone.
    pub tone: Tone,
    /// When it goes away.
    pub until: DateTime<Utc>,
    /// The language of the person it is said to, when it is said to one
    /// who has their own (`language` in the roster); `None`: the board's.
    pub language: Option<String>,
}

/// What the board waits for a badge to authorise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Pending {
    Start,
    Close,
    Enrol { person_id: String },
}

/// The board: config, store, roster, schedule and the open huddle.
pub struct Board {
    config: KioskConfig,
    store: Store,
    roster: Roster,
    schedule: Schedule,
    agenda: Vec<Step>,
    huddle: Option<Huddle>,
    closed: Option<Huddle>,
    screen: Screen,
    pending: Option<(Pending, DateTime<Utc>)>,
    unknown_badge: Option<BadgeHash>,
    last_taps: HashMap<String, DateTime<Utc>>,
    notice: Option<Notice>,
    error: Option<Text>,
    wedge: KeyboardWedge,
    last_activity: DateTime<Utc>,
    screen_since: DateTime<Utc>,
    /// The publisher's link, when one runs (none in tests and snapshots).
    link: Option<LinkStatus>,
    /// `issued_at` of the aggregator's roster in use, if any.
    roster_issued: Option<DateTime<Utc>>,
    /// The coaching observation under way: in memory only until the
    /// learner confirms and rates it.
    flow: Option<observe::Flow>,
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

impl Board {
    /// Opens the board's database and rebuilds the state from it.
    pub fn open(config: KioskConfig, now: DateTime<Utc>) -> Result<Board, AppError> {
        let store = Store::open(&config.database_path(), &config.board.id)?;
        Board::with_store(config, store, now)
    }

    /// Builds the board on an open store.
    pub fn with_store(
        config: KioskConfig,
        store: Store,
        now: DateTime<Utc>,
    ) -> Result<Board, AppError> {
        let (roster, roster_issued) = roster::build_roster(&config, &store)?;
        let schedule = Schedule::new(
            config.schedule_times(),
            config.timezone(),
            Duration::minutes(config.huddle.opens_before_minutes.into()),
            Duration::minutes(config.huddle.window_minutes.into()),
            Duration::minutes(config.huddle.grace_minutes.into()),
        );
        let agenda = config.agenda();
        let huddle = store.open_huddle()?;
        let last_taps = store.last_taps()?;
        let wedge = KeyboardWedge::new(
            std::time::Duration::from_millis(config.badge.wedge_timeout_ms),
            config.badge.min_digits,
        );
        let mut board = Board {
            config,
            store,
            roster,
            schedule,
            agenda,
            huddle,
            closed: None,
            screen: Screen::Idle,
            pending: None,
            unknown_badge: None,
            last_taps,
            notice: None,
            error: None,
            wedge,
            last_activity: now,
            screen_since: now,
            link: None,
            roster_issued,
            flow: None,
        };
        board.screen = board.huddle_screen();
        Ok(board)
    }

    /// The store (for `events` and benchmarks).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Calls `hook` with the last seq after each commit that wrote events
    /// (the kiosk wakes its outbox publisher with it; it must not block).
    pub fn set_commit_hook(&mut self, hook: crate::kiosk::store::CommitHook) {
        self.store.set_commit_hook(hook);
    }

    /// `issued_at` of the aggregator's roster in use (`None`: the config's).
    pub fn roster_issued(&self) -> Option<DateTime<Utc>> {
        self.roster_issued
    }

    /// The configuration.
    pub fn config(&self) -> &KioskConfig {
        &self.config
    }

    /// The roster.
    pub fn roster(&self) -> &Roster {
        &self.roster
    }

    /// The open huddle.
    pub fn huddle(&self) -> Option<&Huddle> {
        self.huddle.as_ref()
    }

    /// The screen.
    pub fn screen(&self) -> Screen {
        self.screen
    }

    fn huddle_screen(&self) -> Screen {
        match &self.huddle {
            Some(h) => Screen::Step(self.agenda.get(h.step).copied().unwrap_or(Step::Close)),
            None => Screen::Idle,
        }
    }

    fn go(&mut self, screen: Screen, now: DateTime<Utc>) {
        self.screen = screen;
        self.screen_since = now;
        self.error = None;
    }

    fn notify(&mut self, text: impl Into<Text>, tone: Tone, now: DateTime<Utc>) {
        let ms = self.config.ui.toast_ms as i64;
        self.notice = Some(Notice {
            text: text.into(),
            tone,
            until: now + Duration::milliseconds(ms),
            language: None,
        });
    }

    /// [`Self::notify`], said to `person_id` in their own language.
    fn notify_person(&mut self, text: Text, tone: Tone, now: DateTime<Utc>, person_id: &str) {
        self.notify(text, tone, now);
        let language = self.language_of(person_id);
        if let Some(n) = self.notice.as_mut() {
            n.language = language;
        }
    }

    /// The person's own language, if they have one the board ships: the
    /// aggregator's roster's when one is in use and gives it, else
    /// `kiosk.toml`'s (`language` of `[[people]]`).
    fn language_of(&self, person_id: &str) -> Option<String> {
        let from_site = if self.roster_issued.is_some() {
            self.store.roster_language(person_id).unwrap_or_else(|e| {
                tracing::warn!(error = %e, person = person_id, "roster language not read");
                None
            })
        } else {
            None
        };
        let language = from_site.or_else(|| {
            self.config
                .people
                .iter()
                .find(|p| p.id == person_id)
                .and_then(|p| p.language.clone())
        })?;
        if crate::kiosk::language::check(&language).is_err() {
            tracing::debug!(person = person_id, %language, "a language this board does not ship: the board's is used");
            return None;
        }
        Some(language)
    }

    fn refuse(&mut self, refusal: impl Into<Text>, now: DateTime<Utc>) {
        let text = refusal.into();
        self.error = Some(text.clone());
        self.notify(text, Tone::Error, now);
    }

    fn today(&self, now: DateTime<Utc>) -> NaiveDate {
        now.with_timezone(&self.schedule.tz()).date_naive()
    }

    /// Handles one intent at `now`. Returns whether the view changed.
    pub fn handle(&mut self, intent: Intent, now: DateTime<Utc>) -> Result<bool, AppError> {
        if !matches!(
            intent,
            Intent::Tick | Intent::Link(_) | Intent::ApplyRoster(_)
        ) {
            self.last_activity = now;
        }
        match intent {
            Intent::Badge(BadgeInput::Read(read)) => {
                let hash = hash_badge(self.config.badge.site_key.as_bytes(), &read.number);
                self.badge(hash, now)?;
            }
            Intent::Badge(BadgeInput::Unreadable(reason)) => {
                tracing::warn!(%reason, "badge frame refused");
                self.notify(TextKey::CouldNotRead, Tone::Warn, now);
            }
            Intent::Key(text) => {
                if let Some(read) = self.wedge.key(&text, Instant::now()) {
                    return self.handle(Intent::Badge(BadgeInput::Read(read)), now);
                }
                return Ok(false);
            }
            Intent::Touched => {}
            Intent::StartHuddle => {
                if self.huddle.is_none() {
                    self.pending = Some((Pending::Start, now));
                }
            }
            Intent::NextStep => self.advance(1, now)?,
            Intent::PreviousStep => self.advance(-1, now)?,
            Intent::CloseHuddle => {
                if self.huddle.is_some() {
                    self.pending = Some((Pending::Close, now));
                }
            }
            Intent::CancelPrompt => {
                self.pending = None;
                if self.screen == Screen::Enrol {
                    self.leave(now);
                }
            }
            Intent::Dismiss => self.leave(now),
            Intent::TapName(person_id) => self.tap_name(&person_id, now)?,
            Intent::KpiHit { key, actual } => {
                let review = KpiReview::hit(&key, &actual);
                self.save_kpi(review, now)?;
            }
            Intent::KpiMiss {
                key,
                actual,
                reason,
                note,
                none_needed,
                what,
                owner,
                due,
            } => {
                let today = self.today(now);
                let input = MissInput {
                    reason,
                    note: &note,
                    none_needed,
                    action_what: &what,
                    action_owner: &owner,
                    action_due: due.and_then(|d| due_date(d, today)),
                };
                let review = KpiReview::missed(
                    &key,
                    &actual,
                    &input,
                    &self.config.huddle.miss_reasons,
                    &self.roster,
                    today,
                );
                self.save_kpi(review, now)?;
            }
            Intent::ActionDone(id) => self.update_action(&id, "done", None, now)?,
            Intent::Reschedule(id, choice) => {
                let due = due_date(choice, self.today(now));
                self.update_action(&id, "rescheduled", due, now)?;
            }
            Intent::ActionBlocked(id) => self.update_action(&id, "blocked", None, now)?,
            Intent::AddAction { what, owner, due } => {
                let today = self.today(now);
                match NewAction::validate(
                    &what,
                    &owner,
                    due.and_then(|d| due_date(d, today)),
                    &self.roster,
                    today,
                ) {
                    Ok(action) => self.add_action(action, now)?,
                    Err(r) => self.refuse(r, now),
                }
            }
            Intent::RaiseNeed {
                category,
                text,
                escalate,
            } => {
                match NeedInput::validate(
                    category,
                    &text,
                    escalate,
                    &self.config.huddle.need_categories,
                ) {
                    Ok(need) => self.raise_need(need, now)?,
                    Err(r) => self.refuse(r, now),
                }
            }
            Intent::SaveExperiment {
                obstacle,
                expectation,
                next_step,
                owner,
                check,
            } => {
                let today = self.today(now);
                // No date picked keeps the current experiment's check date.
                let current = || {
                    self.store
                        .experiment()
                        .ok()
                        .flatten()
                        .and_then(|e| e.check_date)
                };
                let check = match check {
                    Some(c) => due_date(c, today),
                    None => current(),
                };
                match ExperimentInput::validate(
                    &obstacle,
                    &expectation,
                    &next_step,
                    &owner,
                    check,
                    &self.roster,
                ) {
                    Ok(e) => self.save_experiment(e, now)?,
                    Err(r) => self.refuse(r, now),
                }
            }
            Intent::EnrolBegin => {
                if self.unknown_badge.is_some() {
                    self.go(Screen::Enrol, now);
                }
            }
            Intent::EnrolChoose(person_id) => {
                if self.unknown_badge.is_some() && self.roster.person(&person_id).is_some() {
                    self.pending = Some((Pending::Enrol { person_id }, now));
                }
            }
            Intent::Tick => return Ok(self.tick(now)),
            Intent::Link(status) => {
                let changed = self.link.as_ref() != Some(&status);
                self.link = Some(status);
                return Ok(changed);
            }
            Intent::ApplyRoster(message) => return self.apply_roster(message, now),
            Intent::ObserveBegin(_)
            | Intent::ObserveLearner(_)
            | Intent::ObserveSelfView(_)
            | Intent::ObserveScore { .. }
            | Intent::ObserveStrength(_)
            | Intent::ObserveFocus(_)
            | Intent::ObserveNote { .. }
            | Intent::ObserveTrigger(_)
            | Intent::ObserveReobserve(_)
            | Intent::ObserveNext
            | Intent::ObserveBack
            | Intent::ObserveCancel
            | Intent::ObserveRate(_) => return self.observe(intent, now),
        }
        Ok(true)
    }

    /// Expires toasts, prompts and half-done flows. Returns whether the view changed.
    fn tick(&mut self, now: DateTime<Utc>) -> bool {
        let mut changed = false;
        if self.notice.as_ref().is_some_and(|n| now >= n.until) {
            self.notice = None;
            changed = true;
        }
        let timeout = Duration::seconds(self.config.ui.prompt_timeout_s.into());
        if self
            .pending
            .as_ref()
            .is_some_and(|(_, since)| now - *since > timeout)
        {
            self.pending = None;
            changed = true;
        }
        changed |= self.expire_flow(now);
        let transient = matches!(
            self.screen,
            Screen::Summary | Screen::UnknownBadge | Screen::Enrol
        );
        if transient
            && self.pending.is_none()
            && now - self.screen_since > timeout.max(Duration::seconds(1))
        {
            self.leave(now);
            changed = true;
        }
        changed
    }

    /// Whether the screen should be dimmed at `now`.
    pub fn dimmed(&self, now: DateTime<Utc>) -> bool {
        let after = self.config.ui.dim_after_s;
        after > 0
            && self.screen == Screen::Idle
            && self.pending.is_none()
            && self.schedule.open_slot(now).is_none()
            && now - self.last_activity > Duration::seconds(after.into())
    }

    fn leave(&mut self, now: DateTime<Utc>) {
        self.unknown_badge = None;
        self.pending = None;
        let screen = self.huddle_screen();
        self.go(screen, now);
    }

    fn duplicate_window(&self) -> Duration {
        Duration::seconds(self.config.huddle.duplicate_window_s.into())
    }
}
