//! The kiosk core: one owner of the board's state and its store.
//!
//! Everything a person does at the board arrives here as an [`Intent`]
//! (from the screen, a badge reader or the clock). [`Board::handle`] decides
//! with the pure rules of [`crate::domain`], writes the records and their
//! events in one [`Store::transact`] call, and only after the commit
//! changes what the screen shows. [`Board::view`] is what the screen shows,
//! in plain Rust types; `ui` is the only place that turns it into Slint's.
//!
//! The in-memory state is a cache of the store: [`Board::open`] rebuilds it
//! from the file, so a killed kiosk comes back as it was.

use std::collections::HashMap;
use std::time::Instant;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rusqlite::{params, Connection};

use crate::domain::{
    classify_tap, due_date, may_close, may_enrol, may_start, Arrival, ExperimentInput, FlowStep,
    Huddle, KpiOutcome, KpiReview, MissInput, NeedInput, NewAction, ObservationLevel, Person,
    Refusal, Role, Roster, Schedule, SelfView, Step, Summary, TapKind,
};
use crate::domain::{hash_badge, BadgeHash};
use crate::kiosk::badge::{BadgeInput, KeyboardWedge};
use crate::kiosk::config::KioskConfig;
use crate::kiosk::outbox::LinkStatus;
use crate::kiosk::store::{parse_date, Store, StoreError};
use crate::text::{Text, TextKey};
use crate::wire::event::*;
use crate::wire::payload::RosterMessage;
use crate::wire::time::{parse_ts, ts};

mod observe;

pub use observe::{FocusRow, ObservationView};

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
}

/// What the board waits for a badge to authorise.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pending {
    Start,
    Close,
    Enrol { person_id: String },
}

/// An action as the screen lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRow {
    /// Id.
    pub id: String,
    /// What.
    pub what: String,
    /// Owner's name.
    pub owner: String,
    /// Local due date.
    pub due: NaiveDate,
    /// `open`, `done`, `rescheduled`, `blocked`.
    pub status: String,
}

/// A need as the screen lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeedRow {
    /// Id.
    pub id: String,
    /// Category.
    pub category: String,
    /// Text.
    pub text: String,
    /// Escalated.
    pub escalated: bool,
    /// When it was raised.
    pub raised_at: DateTime<Utc>,
}

/// A KPI with its review in the open huddle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KpiRow {
    /// Key.
    pub key: String,
    /// Name.
    pub name: String,
    /// Target.
    pub target: String,
    /// `""`, `hit` or `missed`.
    pub status: String,
    /// Actual.
    pub actual: String,
    /// Reason.
    pub reason: String,
    /// Note.
    pub note: String,
    /// The action's text; empty when none.
    pub action: String,
    /// Missed with "None needed" chosen (the view says so).
    pub none_needed: bool,
}

/// The experiment as shown.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExperimentRow {
    /// Obstacle.
    pub obstacle: String,
    /// Expectation.
    pub expectation: String,
    /// Next step.
    pub next_step: String,
    /// Owner's name.
    pub owner: String,
    /// Check date.
    pub check_date: Option<NaiveDate>,
}

/// A person on the attendance screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonRow {
    /// The person.
    pub person: Person,
    /// Their arrival in the open huddle.
    pub arrival: Option<Arrival>,
}

/// Everything the screen shows, in plain types.
#[derive(Debug, Clone, PartialEq)]
pub struct BoardView {
    /// The screen.
    pub screen: Screen,
    /// Board name.
    pub board_name: String,
    /// The time zone for display.
    pub tz: chrono_tz::Tz,
    /// Now.
    pub now: DateTime<Utc>,
    /// Badge prompt, if waiting for one.
    pub prompt: Option<Text>,
    /// Refusal on the current form.
    pub error: Option<Text>,
    /// The toast.
    pub notice: Option<Notice>,
    /// Dimmed.
    pub dimmed: bool,
    /// The agenda (without close) and the current index.
    pub agenda: Vec<Step>,
    /// Current step index (agenda length = close), when a huddle is open.
    pub step: Option<usize>,
    /// Huddle start and target, for the timer.
    pub started_at: Option<DateTime<Utc>>,
    /// Target duration.
    pub target: Duration,
    /// Next scheduled slot (local), for the idle screen.
    pub next_slot: Option<DateTime<Utc>>,
    /// Roster with arrivals.
    pub people: Vec<PersonRow>,
    /// People who can own actions.
    pub owners: Vec<Person>,
    /// KPIs with reviews.
    pub kpis: Vec<KpiRow>,
    /// Miss reasons.
    pub reasons: Vec<String>,
    /// Need categories.
    pub categories: Vec<String>,
    /// Open actions from earlier huddles (and those reviewed now).
    pub open_actions: Vec<ActionRow>,
    /// Actions created in this huddle.
    pub new_actions: Vec<ActionRow>,
    /// Needs of this huddle and open escalations.
    pub needs: Vec<NeedRow>,
    /// Open escalations (idle screen).
    pub escalations: Vec<NeedRow>,
    /// The current experiment.
    pub experiment: ExperimentRow,
    /// The summary (open huddle so far, or the one just closed).
    pub summary: Option<Summary>,
    /// People to enrol a badge to.
    pub enrol_people: Vec<Person>,
    /// Delivery state.
    pub link: Text,
    /// Connected and nothing waits for the aggregator's ack.
    pub link_ok: bool,
    /// The coaching observation under way, if any.
    pub observation: Option<ObservationView>,
    /// The team leader's current focus point (idle screen), from the
    /// latest acknowledged level 3 observation of this board's team leader.
    pub focus: Option<FocusRow>,
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
        let (roster, roster_issued) = build_roster(&config, &store)?;
        let schedule = Schedule::new(
            config.schedule_times(),
            config.timezone(),
            Duration::minutes(config.huddle.opens_before_minutes.into()),
            Duration::minutes(config.huddle.window_minutes.into()),
            Duration::minutes(config.huddle.grace_minutes.into()),
        );
        let agenda = config.agenda();
        let huddle = store.read(load_open_huddle)?;
        let last_taps = store.read(load_last_taps)?;
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
        });
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
                        .read(load_experiment)
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

    /// Applies the aggregator's roster if it is for this board and newer
    /// than the one in use: the people and their badge hashes replace the
    /// config's (enrolled badges still apply on top), stored with the
    /// `roster.applied` event in one transaction. Returns whether it did.
    fn apply_roster(
        &mut self,
        message: RosterMessage,
        now: DateTime<Utc>,
    ) -> Result<bool, AppError> {
        if message.board != self.config.board.id {
            tracing::warn!(board = %message.board, "roster for another board ignored");
            return Ok(false);
        }
        if self.roster_issued.is_some_and(|t| message.issued_at <= t) {
            tracing::debug!(issued_at = %message.issued_at, "roster not newer than the one in use");
            return Ok(false);
        }
        let mut ids = std::collections::HashSet::new();
        if let Some(bad) = message
            .people
            .iter()
            .find(|p| p.id.trim().is_empty() || !ids.insert(p.id.as_str()))
        {
            tracing::warn!(person = %bad.id, "roster refused: empty or repeated person id");
            return Ok(false);
        }
        let badges: usize = message.people.iter().map(|p| p.badge_hashes.len()).sum();
        let event = Event::RosterApplied(RosterApplied {
            issued_at: message.issued_at,
            people: message.people.len(),
            badges,
        });
        self.store.transact(now, |tx| {
            let c = tx.conn();
            c.execute_batch("DELETE FROM roster_people; DELETE FROM roster_badges;")
                .map_err(|e| tx.err(e))?;
            for (i, p) in message.people.iter().enumerate() {
                c.execute(
                    "INSERT INTO roster_people (position, id, name, role, coach) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![i as i64, p.id, p.name, role_key(p.role), p.coach],
                )
                .map_err(|e| tx.err(e))?;
                for h in &p.badge_hashes {
                    c.execute(
                        "INSERT OR REPLACE INTO roster_badges (hash, person_id) VALUES (?1, ?2)",
                        params![h.as_str(), p.id],
                    )
                    .map_err(|e| tx.err(e))?;
                }
            }
            c.execute(
                "INSERT OR REPLACE INTO roster (id, issued_at, applied_at) VALUES (1, ?1, ?2)",
                params![ts(message.issued_at), ts(now)],
            )
            .map_err(|e| tx.err(e))?;
            tx.emit(&event).map(|_| ())
        })?;
        let (roster, issued) = build_roster(&self.config, &self.store)?;
        self.roster = roster;
        self.roster_issued = issued;
        tracing::info!(issued_at = %message.issued_at, people = message.people.len(), badges, "roster applied");
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

    fn badge(&mut self, hash: BadgeHash, now: DateTime<Utc>) -> Result<(), AppError> {
        let Some(person) = self.roster.by_badge(&hash).cloned() else {
            if self.flow.is_some() {
                self.flow_unknown_badge(now);
                return Ok(());
            }
            if self.pending.is_some() {
                self.notify(TextKey::NotEnrolledCannotConfirm, Tone::Error, now);
                return Ok(());
            }
            let huddle_id = self.huddle.as_ref().map(|h| h.id.clone());
            let event = Event::UnknownBadge(UnknownBadge {
                badge_hash: hash.clone(),
                huddle_id,
            });
            self.store.transact(now, |tx| tx.emit(&event).map(|_| ()))?;
            self.unknown_badge = Some(hash);
            self.go(Screen::UnknownBadge, now);
            return Ok(());
        };
        if self.flow.is_some() {
            return self.flow_badge(&person, now);
        }
        if let Some((pending, _)) = self.pending.clone() {
            return self.authorise(pending, &person, now);
        }
        // A coach's tap does what it always did, then opens the coaching menu.
        if self.huddle.is_some() {
            self.attend(&person, TapVia::Badge, now)?;
            self.open_menu(&person, now);
            return Ok(());
        }
        let coach = !crate::domain::levels_for(&person).is_empty();
        let recent = self
            .last_taps
            .get(&person.id)
            .is_some_and(|t| now - *t <= self.duplicate_window());
        if recent && coach {
            self.open_menu(&person, now);
            return Ok(());
        }
        if recent {
            self.notify(
                Text::with(TextKey::AlreadyHere, &person.name),
                Tone::Info,
                now,
            );
            return Ok(());
        }
        let slot = self.schedule.open_slot(now);
        if person.role.may_run_huddle() {
            return self.start(&person, StartTrigger::TeamLeader, now);
        }
        match slot {
            Some(slot) if !self.store.read(|c| slot_held(c, slot.at))? => {
                self.start(&person, StartTrigger::FirstTap, now)?;
                self.open_menu(&person, now);
                Ok(())
            }
            _ if coach => {
                self.open_menu(&person, now);
                Ok(())
            }
            _ => {
                let text = match self.schedule.next_slot(now) {
                    Some(next) => Text::with(
                        TextKey::NoHuddleNowNext,
                        next.at
                            .with_timezone(&self.schedule.tz())
                            .format("%H:%M")
                            .to_string(),
                    ),
                    None => Text::new(TextKey::NoHuddleNow),
                };
                self.notify(text, Tone::Info, now);
                Ok(())
            }
        }
    }

    fn duplicate_window(&self) -> Duration {
        Duration::seconds(self.config.huddle.duplicate_window_s.into())
    }

    fn authorise(
        &mut self,
        pending: Pending,
        person: &Person,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        let allowed = match &pending {
            Pending::Start => may_start(person),
            Pending::Close => may_close(person),
            Pending::Enrol { .. } => may_enrol(person),
        };
        if let Err(refusal) = allowed {
            self.refuse(refusal, now);
            return Ok(());
        }
        self.pending = None;
        match pending {
            Pending::Start => self.start(person, StartTrigger::TeamLeader, now),
            Pending::Close => self.close(person, now),
            Pending::Enrol { person_id } => self.enrol(&person_id, person, now),
        }
    }

    fn start(
        &mut self,
        by: &Person,
        trigger: StartTrigger,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        let slot = self.schedule.open_slot(now);
        let due = slot.map(|s| s.at).unwrap_or(now);
        let huddle = Huddle::new(new_id(), due, now);
        let started = Event::HuddleStarted(HuddleStarted {
            huddle_id: huddle.id.clone(),
            scheduled_at: slot.map(|s| s.at),
            slot: slot.map(|s| s.local.format("%H:%M").to_string()),
            started_by: by.id.clone(),
            trigger,
            target_minutes: self.config.huddle.target_minutes,
            agenda: self.agenda.iter().map(|s| s.key().to_owned()).collect(),
        });
        let late = self.schedule.is_late(due, now);
        let tapped = Event::AttendanceTapped(AttendanceTapped {
            huddle_id: huddle.id.clone(),
            person_id: by.id.clone(),
            via: TapVia::Badge,
            late,
        });
        self.store.transact(now, |tx| {
            tx.conn()
                .execute(
                    "INSERT INTO huddles (id, due, slot, started_at, started_by) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![huddle.id, ts(due), slot.map(|s| ts(s.at)), ts(now), by.id],
                )
                .map_err(|e| tx.err(e))?;
            insert_attendance(tx.conn(), &huddle.id, &by.id, now, late, TapVia::Badge).map_err(|e| tx.err(e))?;
            tx.emit(&started)?;
            tx.emit(&tapped)
        })?;
        let mut huddle = huddle;
        huddle
            .attendance
            .insert(by.id.clone(), Arrival { at: now, late });
        self.huddle = Some(huddle);
        self.last_taps.insert(by.id.clone(), now);
        self.go(Screen::Step(self.agenda[0]), now);
        self.notify(Text::with(TextKey::HuddleStarted, &by.name), Tone::Ok, now);
        Ok(())
    }

    fn tap_name(&mut self, person_id: &str, now: DateTime<Utc>) -> Result<(), AppError> {
        let Some(person) = self.roster.person(person_id).cloned() else {
            return Ok(());
        };
        if self.huddle.is_none() {
            self.notify(TextKey::StartFirst, Tone::Info, now);
            return Ok(());
        }
        self.attend(&person, TapVia::Name, now)
    }

    fn attend(&mut self, person: &Person, via: TapVia, now: DateTime<Utc>) -> Result<(), AppError> {
        let Some(huddle) = &self.huddle else {
            return Ok(());
        };
        let present = huddle.attendance.contains_key(&person.id);
        let last = self.last_taps.get(&person.id).copied();
        match classify_tap(
            &self.schedule,
            huddle.due,
            present,
            last,
            self.duplicate_window(),
            now,
        ) {
            TapKind::AlreadyHere => {
                self.notify(
                    Text::with(TextKey::AlreadyHere, &person.name),
                    Tone::Info,
                    now,
                );
            }
            TapKind::Arrival { late } => {
                let huddle_id = huddle.id.clone();
                let event = Event::AttendanceTapped(AttendanceTapped {
                    huddle_id: huddle_id.clone(),
                    person_id: person.id.clone(),
                    via,
                    late,
                });
                self.store.transact(now, |tx| {
                    insert_attendance(tx.conn(), &huddle_id, &person.id, now, late, via)
                        .map_err(|e| tx.err(e))?;
                    tx.emit(&event).map(|_| ())
                })?;
                if let Some(h) = self.huddle.as_mut() {
                    h.attendance
                        .insert(person.id.clone(), Arrival { at: now, late });
                }
                self.last_taps.insert(person.id.clone(), now);
                let key = if late {
                    TextKey::WelcomeLate
                } else {
                    TextKey::Welcome
                };
                let text = Text::with(key, &person.name);
                self.notify(text, if late { Tone::Warn } else { Tone::Ok }, now);
            }
        }
        Ok(())
    }

    fn advance(&mut self, by: i32, now: DateTime<Utc>) -> Result<(), AppError> {
        let Some(huddle) = &self.huddle else {
            return Ok(());
        };
        let last = self.agenda.len();
        let step = (huddle.step as i64 + by as i64).clamp(0, last as i64) as usize;
        if step == huddle.step {
            return Ok(());
        }
        let key = self.agenda.get(step).copied().unwrap_or(Step::Close);
        let id = huddle.id.clone();
        let event = Event::HuddleAdvanced(HuddleAdvanced {
            huddle_id: id.clone(),
            step: key.key().into(),
            index: step,
        });
        self.store.transact(now, |tx| {
            tx.conn()
                .execute(
                    "UPDATE huddles SET step = ?2 WHERE id = ?1",
                    params![id, step as i64],
                )
                .map_err(|e| tx.err(e))?;
            tx.emit(&event).map(|_| ())
        })?;
        if let Some(h) = self.huddle.as_mut() {
            h.step = step;
        }
        self.go(Screen::Step(key), now);
        Ok(())
    }

    fn save_kpi(
        &mut self,
        review: Result<KpiReview, Refusal>,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        let review = match review {
            Ok(r) => r,
            Err(r) => {
                self.refuse(r, now);
                return Ok(());
            }
        };
        let Some(huddle) = &self.huddle else {
            return Ok(());
        };
        if !self.config.huddle.kpis.iter().any(|k| k.key == review.kpi) {
            return Ok(());
        }
        let huddle_id = huddle.id.clone();
        let (hit, reason, note, action, none_needed) = match &review.outcome {
            KpiOutcome::Hit => (true, String::new(), String::new(), None, false),
            KpiOutcome::Missed {
                reason,
                note,
                action,
            } => (
                false,
                reason.clone(),
                note.clone(),
                action.clone(),
                action.is_none(),
            ),
        };
        let action_id = action.as_ref().map(|_| new_id());
        let reviewed = Event::KpiReviewed(KpiReviewed {
            huddle_id: huddle_id.clone(),
            kpi: review.kpi.clone(),
            status: if hit { "hit" } else { "missed" }.into(),
            actual: review.actual.clone(),
            reason: reason.clone(),
            note: note.clone(),
            action_id: action_id.clone(),
            none_needed,
        });
        let replaced_action: Option<String> = self.store.read(|c| {
            crate::kiosk::store::optional(c.query_row(
                "SELECT action_id FROM kpi_reviews WHERE huddle_id = ?1 AND kpi = ?2",
                params![huddle_id, review.kpi],
                |r| r.get::<_, Option<String>>(0),
            ))
            .map(Option::flatten)
        })?;
        let source = format!("kpi:{}", review.kpi);
        self.store.transact(now, |tx| {
            let c = tx.conn();
            if let Some(old) = &replaced_action {
                // A corrected review replaces its earlier action.
                c.execute("DELETE FROM actions WHERE id = ?1", [old]).map_err(|e| tx.err(e))?;
                c.execute("UPDATE huddles SET actions_created = actions_created - 1 WHERE id = ?1", [&huddle_id])
                    .map_err(|e| tx.err(e))?;
            }
            c.execute(
                "INSERT OR REPLACE INTO kpi_reviews (huddle_id, kpi, hit, actual, reason, note, action_id, reviewed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![huddle_id, review.kpi, hit, review.actual, reason, note, action_id, ts(now)],
            )
            .map_err(|e| tx.err(e))?;
            if let (Some(a), Some(id)) = (&action, &action_id) {
                insert_action(c, id, &huddle_id, a, &source, now).map_err(|e| tx.err(e))?;
            }
            tx.emit(&reviewed)?;
            if let (Some(a), Some(id)) = (&action, &action_id) {
                tx.emit(&Event::ActionCreated(ActionCreated {
                    action_id: id.clone(),
                    huddle_id: huddle_id.clone(),
                    what: a.what.clone(),
                    owner: a.owner.clone(),
                    due: a.due,
                    source: source.clone(),
                }))?;
            }
            Ok::<_, AppError>(())
        })?;
        if let Some(h) = self.huddle.as_mut() {
            h.kpis.insert(review.kpi.clone(), hit);
            h.actions_created =
                h.actions_created + action.is_some() as u32 - replaced_action.is_some() as u32;
        }
        self.error = None;
        let name = self.kpi_name(&review.kpi);
        let key = if hit {
            TextKey::KpiHit
        } else {
            TextKey::KpiMissedSaved
        };
        self.notify(Text::with(key, name), Tone::Ok, now);
        Ok(())
    }

    fn kpi_name(&self, key: &str) -> String {
        self.config
            .huddle
            .kpis
            .iter()
            .find(|k| k.key == key)
            .map(|k| k.name.clone())
            .unwrap_or_default()
    }

    fn add_action(&mut self, action: NewAction, now: DateTime<Utc>) -> Result<(), AppError> {
        let Some(huddle) = &self.huddle else {
            return Ok(());
        };
        let huddle_id = huddle.id.clone();
        let id = new_id();
        let event = Event::ActionCreated(ActionCreated {
            action_id: id.clone(),
            huddle_id: huddle_id.clone(),
            what: action.what.clone(),
            owner: action.owner.clone(),
            due: action.due,
            source: "new".into(),
        });
        self.store.transact(now, |tx| {
            insert_action(tx.conn(), &id, &huddle_id, &action, "new", now)
                .map_err(|e| tx.err(e))?;
            tx.emit(&event).map(|_| ())
        })?;
        if let Some(h) = self.huddle.as_mut() {
            h.actions_created += 1;
        }
        self.error = None;
        self.notify(
            Text::with(TextKey::ActionAdded, &action.what),
            Tone::Ok,
            now,
        );
        Ok(())
    }

    fn update_action(
        &mut self,
        id: &str,
        status: &str,
        due: Option<NaiveDate>,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        let Some(huddle) = &self.huddle else {
            return Ok(());
        };
        if status == "rescheduled" && due.is_none() {
            self.refuse(Refusal::PickNewDate, now);
            return Ok(());
        }
        let huddle_id = huddle.id.clone();
        let row: Option<(String, String)> = self.store.read(|c| {
            crate::kiosk::store::optional(c.query_row(
                "SELECT status, due FROM actions WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            ))
        })?;
        let Some((old_status, old_due)) = row else {
            return Ok(());
        };
        let due = due
            .or_else(|| parse_date(&old_due))
            .unwrap_or_else(|| self.today(now));
        let event = Event::ActionUpdated(ActionUpdated {
            action_id: id.to_owned(),
            huddle_id: huddle_id.clone(),
            status: status.to_owned(),
            due,
        });
        self.store.transact(now, |tx| {
            tx.conn()
                .execute(
                    "UPDATE actions SET status = ?2, due = ?3, reviewed_in = ?4 WHERE id = ?1",
                    params![id, status, due.to_string(), huddle_id],
                )
                .map_err(|e| tx.err(e))?;
            let delta = (status == "done") as i64 - (old_status == "done") as i64;
            tx.conn()
                .execute(
                    "UPDATE huddles SET actions_closed = actions_closed + ?2 WHERE id = ?1",
                    params![huddle_id, delta],
                )
                .map_err(|e| tx.err(e))?;
            tx.emit(&event).map(|_| ())
        })?;
        if let Some(h) = self.huddle.as_mut() {
            h.actions_closed = (h.actions_closed as i64 + (status == "done") as i64
                - (old_status == "done") as i64) as u32;
        }
        self.error = None;
        Ok(())
    }

    fn raise_need(&mut self, need: NeedInput, now: DateTime<Utc>) -> Result<(), AppError> {
        let Some(huddle) = &self.huddle else {
            return Ok(());
        };
        let huddle_id = huddle.id.clone();
        let id = new_id();
        let raised = Event::NeedRaised(NeedRaised {
            need_id: id.clone(),
            huddle_id: huddle_id.clone(),
            category: need.category.clone(),
            text: need.text.clone(),
            escalated: need.escalated,
        });
        self.store.transact(now, |tx| {
            tx.conn()
                .execute(
                    "INSERT INTO needs (id, huddle_id, category, text, escalated, raised_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![id, huddle_id, need.category, need.text, need.escalated, ts(now)],
                )
                .map_err(|e| tx.err(e))?;
            tx.conn()
                .execute(
                    "UPDATE huddles SET needs_raised = needs_raised + 1, needs_escalated = needs_escalated + ?2 WHERE id = ?1",
                    params![huddle_id, need.escalated as i64],
                )
                .map_err(|e| tx.err(e))?;
            tx.emit(&raised)?;
            if need.escalated {
                tx.emit(&Event::NeedEscalated(NeedRef { need_id: id.clone(), by: None }))?;
            }
            Ok::<_, AppError>(())
        })?;
        if let Some(h) = self.huddle.as_mut() {
            h.needs_raised += 1;
            h.needs_escalated += need.escalated as u32;
        }
        self.error = None;
        let text = if need.escalated {
            TextKey::NeedRaisedEscalated
        } else {
            TextKey::NeedRaised
        };
        self.notify(text, Tone::Ok, now);
        Ok(())
    }

    fn save_experiment(&mut self, e: ExperimentInput, now: DateTime<Utc>) -> Result<(), AppError> {
        let Some(huddle) = &self.huddle else {
            return Ok(());
        };
        let huddle_id = huddle.id.clone();
        let event = Event::ExperimentUpdated(ExperimentUpdated {
            huddle_id: huddle_id.clone(),
            obstacle: e.obstacle.clone(),
            expectation: e.expectation.clone(),
            next_step: e.next_step.clone(),
            owner: e.owner.clone(),
            check_date: e.check_date,
        });
        self.store.transact(now, |tx| {
            tx.conn()
                .execute(
                    "INSERT INTO experiments (huddle_id, obstacle, expectation, next_step, owner, check_date, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![huddle_id, e.obstacle, e.expectation, e.next_step, e.owner, e.check_date.to_string(), ts(now)],
                )
                .map_err(|err| tx.err(err))?;
            tx.emit(&event).map(|_| ())
        })?;
        self.error = None;
        self.notify(TextKey::ExperimentSaved, Tone::Ok, now);
        Ok(())
    }

    fn close(&mut self, by: &Person, now: DateTime<Utc>) -> Result<(), AppError> {
        let Some(huddle) = &self.huddle else {
            return Ok(());
        };
        let mut closed = huddle.clone();
        closed.closed_at = Some(now);
        let summary = self.summary_of(&closed, now);
        let event = Event::HuddleClosed(HuddleClosed {
            huddle_id: closed.id.clone(),
            closed_by: by.id.clone(),
            summary,
        });
        self.store.transact(now, |tx| {
            tx.conn()
                .execute(
                    "UPDATE huddles SET closed_at = ?2, closed_by = ?3 WHERE id = ?1",
                    params![closed.id, ts(now), by.id],
                )
                .map_err(|e| tx.err(e))?;
            tx.emit(&event).map(|_| ())
        })?;
        self.huddle = None;
        self.closed = Some(closed);
        self.go(Screen::Summary, now);
        self.notify(TextKey::HuddleClosed, Tone::Ok, now);
        Ok(())
    }

    fn enrol(&mut self, person_id: &str, by: &Person, now: DateTime<Utc>) -> Result<(), AppError> {
        let Some(hash) = self.unknown_badge.clone() else {
            return Ok(());
        };
        let Some(person) = self.roster.person(person_id).cloned() else {
            return Ok(());
        };
        let event = Event::BadgeEnrolled(BadgeEnrolled {
            person_id: person.id.clone(),
            badge_hash: hash.clone(),
            enrolled_by: by.id.clone(),
        });
        self.store.transact(now, |tx| {
            tx.conn()
                .execute(
                    "INSERT OR REPLACE INTO badges (hash, person_id, enrolled_at, enrolled_by) VALUES (?1, ?2, ?3, ?4)",
                    params![hash.as_str(), person.id, ts(now), by.id],
                )
                .map_err(|e| tx.err(e))?;
            tx.emit(&event).map(|_| ())
        })?;
        self.roster.enrol(hash, &person.id);
        self.unknown_badge = None;
        let screen = self.huddle_screen();
        self.go(screen, now);
        self.notify(
            Text::with(TextKey::BadgeEnrolled, &person.name),
            Tone::Ok,
            now,
        );
        // The enrolled person was tapping in: count them, as a second action.
        if self.huddle.is_some() {
            self.attend(&person, TapVia::Badge, now)?;
        }
        Ok(())
    }

    fn summary_of(&self, huddle: &Huddle, now: DateTime<Utc>) -> Summary {
        huddle.summary(
            &self.roster,
            self.config.huddle.kpis.len(),
            Duration::minutes(self.config.huddle.target_minutes.into()),
            now,
        )
    }

    /// What the screen shows at `now`.
    pub fn view(&self, now: DateTime<Utc>) -> Result<BoardView, AppError> {
        let huddle_id = self
            .huddle
            .as_ref()
            .map(|h| h.id.clone())
            .unwrap_or_default();
        let name_of = |id: &str| {
            self.roster
                .person(id)
                .map(|p| p.name.clone())
                .unwrap_or_else(|| id.to_owned())
        };
        let (open_actions, new_actions, needs, escalations, reviews, experiment) =
            self.store.read(|c| {
                Ok((
                    load_actions(
                        c,
                        "huddle_id != ?1 AND (status != 'done' OR reviewed_in = ?1)",
                        &huddle_id,
                    )?,
                    load_actions(c, "huddle_id = ?1", &huddle_id)?,
                    load_needs(
                        c,
                        "huddle_id = ?1 OR (escalated = 1 AND closed_at IS NULL)",
                        &huddle_id,
                    )?,
                    load_needs(c, "escalated = 1 AND closed_at IS NULL AND ?1 = ?1", "")?,
                    load_reviews(c, &huddle_id)?,
                    load_experiment(c)?,
                ))
            })?;
        let fix_owner = |mut rows: Vec<ActionRow>| {
            for r in &mut rows {
                r.owner = name_of(&r.owner);
            }
            rows
        };
        let kpis = self
            .config
            .huddle
            .kpis
            .iter()
            .map(|k| {
                let mut row = KpiRow {
                    key: k.key.clone(),
                    name: k.name.clone(),
                    target: k.target.clone(),
                    status: String::new(),
                    actual: String::new(),
                    reason: String::new(),
                    note: String::new(),
                    action: String::new(),
                    none_needed: false,
                };
                if let Some(r) = reviews.get(&k.key) {
                    row.status = if r.hit { "hit" } else { "missed" }.into();
                    row.actual = r.actual.clone();
                    row.reason = r.reason.clone();
                    row.note = r.note.clone();
                    row.action = match &r.action_id {
                        Some(id) => new_actions
                            .iter()
                            .find(|a| &a.id == id)
                            .map(|a| a.what.clone())
                            .unwrap_or_default(),
                        None => String::new(),
                    };
                    row.none_needed = !r.hit && r.action_id.is_none();
                }
                row
            })
            .collect();
        let people = self
            .roster
            .people()
            .iter()
            .filter(|p| {
                p.role <= Role::TeamLeader
                    || self
                        .huddle
                        .as_ref()
                        .is_some_and(|h| h.attendance.contains_key(&p.id))
            })
            .map(|p| PersonRow {
                person: p.clone(),
                arrival: self
                    .huddle
                    .as_ref()
                    .and_then(|h| h.attendance.get(&p.id).cloned()),
            })
            .collect();
        let experiment = experiment
            .map(|mut e| {
                e.owner = name_of(&e.owner);
                e
            })
            .unwrap_or_default();
        let summary = match (&self.huddle, &self.closed) {
            (Some(h), _) => Some(self.summary_of(h, now)),
            (None, Some(h)) => Some(self.summary_of(h, now)),
            _ => None,
        };
        let prompt = self.pending.as_ref().map(|(p, _)| match p {
            Pending::Start => Text::new(TextKey::PromptStart),
            Pending::Close => Text::new(TextKey::PromptClose),
            Pending::Enrol { person_id } => Text::with(TextKey::PromptEnrol, name_of(person_id)),
        });
        let (link, link_ok) = match &self.link {
            Some(status) => status.describe(self.store.last_seq()?),
            None => match self.store.undelivered()? {
                0 => (Text::new(TextKey::LinkLocalOnly), false),
                n => (Text::with(TextKey::LinkOfflineQueued, n.to_string()), false),
            },
        };
        Ok(BoardView {
            screen: self.screen,
            board_name: self.config.board.name.clone(),
            tz: self.schedule.tz(),
            now,
            prompt,
            error: self.error.clone(),
            notice: self.notice.clone().filter(|n| now < n.until),
            dimmed: self.dimmed(now),
            agenda: self.agenda.clone(),
            step: self.huddle.as_ref().map(|h| h.step),
            started_at: self.huddle.as_ref().map(|h| h.started_at),
            target: Duration::minutes(self.config.huddle.target_minutes.into()),
            next_slot: self.schedule.next_slot(now).map(|s| s.at),
            people,
            owners: self.roster.expected().cloned().collect(),
            kpis,
            reasons: self.config.huddle.miss_reasons.clone(),
            categories: self.config.huddle.need_categories.clone(),
            open_actions: fix_owner(open_actions),
            new_actions: fix_owner(new_actions),
            needs,
            escalations,
            experiment,
            summary,
            enrol_people: self.roster.people().to_vec(),
            link,
            link_ok,
            observation: self.observation_view(now),
            focus: self.store.read(|c| observe::load_focus(c, &self.roster))?,
        })
    }
}

fn insert_attendance(
    c: &Connection,
    huddle_id: &str,
    person_id: &str,
    now: DateTime<Utc>,
    late: bool,
    via: TapVia,
) -> rusqlite::Result<usize> {
    let via = match via {
        TapVia::Badge => "badge",
        TapVia::Name => "name",
    };
    c.execute(
        "INSERT INTO attendance (huddle_id, person_id, arrived_at, late, via) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![huddle_id, person_id, ts(now), late, via],
    )
}

fn insert_action(
    c: &Connection,
    id: &str,
    huddle_id: &str,
    a: &NewAction,
    source: &str,
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO actions (id, huddle_id, what, owner, due, status, source, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'open', ?6, ?7)",
        params![
            id,
            huddle_id,
            a.what,
            a.owner,
            a.due.to_string(),
            source,
            ts(now)
        ],
    )?;
    c.execute(
        "UPDATE huddles SET actions_created = actions_created + 1 WHERE id = ?1",
        [huddle_id],
    )?;
    Ok(())
}

/// The roster in use: the aggregator's latest (stored), else the config's;
/// badges enrolled at this board apply on top of either.
fn build_roster(
    config: &KioskConfig,
    store: &Store,
) -> Result<(Roster, Option<DateTime<Utc>>), StoreError> {
    let (people, mut badges, issued) = match store.read(load_applied_roster)? {
        Some((issued, people, badges)) => (people, badges, Some(issued)),
        None => {
            let key = config.badge.site_key.as_bytes();
            let people: Vec<Person> = config
                .people
                .iter()
                .map(|p| Person {
                    id: p.id.clone(),
                    name: p.name.clone(),
                    role: p.role,
                })
                .collect();
            let mut badges: Vec<(BadgeHash, String)> = Vec::new();
            for p in &config.people {
                badges.extend(p.badges.iter().map(|n| (hash_badge(key, n), p.id.clone())));
                badges.extend(
                    p.badge_hashes
                        .iter()
                        .filter_map(|h| BadgeHash::parse(h))
                        .map(|h| (h, p.id.clone())),
                );
            }
            (people, badges, None)
        }
    };
    badges.extend(store.read(load_enrolled)?);
    Ok((Roster::new(people, badges), issued))
}

fn role_key(role: Role) -> String {
    // Design: the serde name (`team_leader`), the same word as in the config.
    serde_json::to_value(role)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

type AppliedRoster = (DateTime<Utc>, Vec<Person>, Vec<(BadgeHash, String)>);

fn load_applied_roster(c: &Connection) -> rusqlite::Result<Option<AppliedRoster>> {
    let issued: Option<String> = crate::kiosk::store::optional(c.query_row(
        "SELECT issued_at FROM roster WHERE id = 1",
        [],
        |r| r.get(0),
    ))?;
    let Some(issued) = issued.as_deref().and_then(parse_ts) else {
        return Ok(None);
    };
    let mut stmt = c.prepare("SELECT id, name, role FROM roster_people ORDER BY position")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    let mut people = Vec::new();
    for row in rows {
        let (id, name, role) = row?;
        match serde_json::from_value::<Role>(serde_json::Value::String(role.clone())) {
            Ok(role) => people.push(Person { id, name, role }),
            Err(_) => {
                tracing::warn!(person = %id, %role, "stored roster person with an unknown role skipped")
            }
        }
    }
    let mut stmt = c.prepare("SELECT hash, person_id FROM roster_badges")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    let mut badges = Vec::new();
    for row in rows {
        let (hash, person) = row?;
        if let Some(h) = BadgeHash::parse(&hash) {
            badges.push((h, person));
        }
    }
    Ok(Some((issued, people, badges)))
}

fn load_enrolled(c: &Connection) -> rusqlite::Result<Vec<(BadgeHash, String)>> {
    let mut stmt = c.prepare("SELECT hash, person_id FROM badges ORDER BY enrolled_at")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (hash, person) = row?;
        if let Some(h) = BadgeHash::parse(&hash) {
            out.push((h, person));
        }
    }
    Ok(out)
}

fn load_last_taps(c: &Connection) -> rusqlite::Result<HashMap<String, DateTime<Utc>>> {
    let mut stmt =
        c.prepare("SELECT person_id, MAX(arrived_at) FROM attendance GROUP BY person_id")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    let mut out = HashMap::new();
    for row in rows {
        let (p, at) = row?;
        if let Some(at) = parse_ts(&at) {
            out.insert(p, at);
        }
    }
    Ok(out)
}

fn slot_held(c: &Connection, slot_at: DateTime<Utc>) -> rusqlite::Result<bool> {
    c.query_row(
        "SELECT EXISTS (SELECT 1 FROM huddles WHERE slot = ?1)",
        [ts(slot_at)],
        |r| r.get(0),
    )
}

fn load_open_huddle(c: &Connection) -> rusqlite::Result<Option<Huddle>> {
    let row = crate::kiosk::store::optional(c.query_row(
        "SELECT id, due, started_at, step, needs_raised, needs_escalated, actions_created, actions_closed
         FROM huddles WHERE closed_at IS NULL",
        [],
        |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                [r.get::<_, i64>(4)?, r.get::<_, i64>(5)?, r.get::<_, i64>(6)?, r.get::<_, i64>(7)?],
            ))
        },
    ))?;
    let Some((id, due, started, step, counts)) = row else {
        return Ok(None);
    };
    let (Some(due), Some(started)) = (parse_ts(&due), parse_ts(&started)) else {
        return Ok(None);
    };
    let mut h = Huddle::new(id, due, started);
    h.step = step.max(0) as usize;
    h.needs_raised = counts[0] as u32;
    h.needs_escalated = counts[1] as u32;
    h.actions_created = counts[2] as u32;
    h.actions_closed = counts[3] as u32;
    let mut stmt =
        c.prepare("SELECT person_id, arrived_at, late FROM attendance WHERE huddle_id = ?1")?;
    let rows = stmt.query_map([&h.id], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, bool>(2)?,
        ))
    })?;
    for row in rows {
        let (p, at, late) = row?;
        if let Some(at) = parse_ts(&at) {
            h.attendance.insert(p, Arrival { at, late });
        }
    }
    let mut stmt = c.prepare("SELECT kpi, hit FROM kpi_reviews WHERE huddle_id = ?1")?;
    let rows = stmt.query_map([&h.id], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?))
    })?;
    for row in rows {
        let (k, hit) = row?;
        h.kpis.insert(k, hit);
    }
    Ok(Some(h))
}

fn load_actions(c: &Connection, filter: &str, huddle_id: &str) -> rusqlite::Result<Vec<ActionRow>> {
    let sql = format!(
        "SELECT id, what, owner, due, status FROM actions WHERE {filter} ORDER BY due, created_at"
    );
    let mut stmt = c.prepare_cached(&sql)?;
    let rows = stmt.query_map([huddle_id], |r| {
        Ok(ActionRow {
            id: r.get(0)?,
            what: r.get(1)?,
            owner: r.get(2)?,
            due: parse_date(&r.get::<_, String>(3)?).unwrap_or_default(),
            status: r.get(4)?,
        })
    })?;
    rows.collect()
}

fn load_needs(c: &Connection, filter: &str, huddle_id: &str) -> rusqlite::Result<Vec<NeedRow>> {
    let sql = format!("SELECT id, category, text, escalated, raised_at FROM needs WHERE {filter} ORDER BY raised_at");
    let mut stmt = c.prepare_cached(&sql)?;
    let rows = stmt.query_map([huddle_id], |r| {
        Ok(NeedRow {
            id: r.get(0)?,
            category: r.get(1)?,
            text: r.get(2)?,
            escalated: r.get(3)?,
            raised_at: parse_ts(&r.get::<_, String>(4)?).unwrap_or_default(),
        })
    })?;
    rows.collect()
}

struct ReviewRow {
    hit: bool,
    actual: String,
    reason: String,
    note: String,
    action_id: Option<String>,
}

fn load_reviews(c: &Connection, huddle_id: &str) -> rusqlite::Result<HashMap<String, ReviewRow>> {
    let mut stmt = c.prepare_cached(
        "SELECT kpi, hit, actual, reason, note, action_id FROM kpi_reviews WHERE huddle_id = ?1",
    )?;
    let rows = stmt.query_map([huddle_id], |r| {
        Ok((
            r.get::<_, String>(0)?,
            ReviewRow {
                hit: r.get(1)?,
                actual: r.get(2)?,
                reason: r.get(3)?,
                note: r.get(4)?,
                action_id: r.get(5)?,
            },
        ))
    })?;
    rows.collect()
}

fn load_experiment(c: &Connection) -> rusqlite::Result<Option<ExperimentRow>> {
    crate::kiosk::store::optional(c.query_row(
        "SELECT obstacle, expectation, next_step, owner, check_date FROM experiments ORDER BY id DESC LIMIT 1",
        [],
        |r| {
            Ok(ExperimentRow {
                obstacle: r.get(0)?,
                expectation: r.get(1)?,
                next_step: r.get(2)?,
                owner: r.get(3)?,
                check_date: parse_date(&r.get::<_, String>(4)?),
            })
        },
    ))
}
