//! What the screens show: [`Board::view`] gathers the board's state and
//! the store's records into a [`BoardView`] of plain Rust types.

use chrono::{DateTime, Duration, Utc};

use super::{ActionRow, AppError, Board, ExperimentRow, NeedRow, Notice, Pending, Screen};
use super::{FocusRow, ObservationView};
use crate::domain::{Arrival, Huddle, Person, Role, Step, Summary};
use crate::text::{Text, TextKey};

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
    /// The language the screen speaks now: the board's, or the person's
    /// own while a notice said to them shows or, in a coaching
    /// observation, the learner's on the screens that ask them to confirm
    /// and rate (see `crate::kiosk::language`).
    pub language: String,
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

impl Board {
    pub(super) fn summary_of(&self, huddle: &Huddle, now: DateTime<Utc>) -> Summary {
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
        let open_actions = self.store.open_actions(&huddle_id)?;
        let new_actions = self.store.new_actions(&huddle_id)?;
        let needs = self.store.needs(&huddle_id)?;
        let escalations = self.store.open_escalations()?;
        let reviews = self.store.kpi_reviews(&huddle_id)?;
        let experiment = self.store.experiment()?;
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
        let notice = self.notice.clone().filter(|n| now < n.until);
        let language = notice
            .as_ref()
            .and_then(|n| n.language.clone())
            .or_else(|| self.learner_language())
            .unwrap_or_else(|| self.config.board.language.clone());
        Ok(BoardView {
            screen: self.screen,
            board_name: self.config.board.name.clone(),
            language,
            tz: self.schedule.tz(),
            now,
            prompt,
            error: self.error.clone(),
            notice,
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
            focus: self.focus_row()?,
        })
    }
}
