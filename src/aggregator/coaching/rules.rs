//! The coaching loop's rules (Leaders Coaching Leaders): from the
//! site roster and the stored observations to one [`Entry`] per person of
//! the cascade above the team members. Pure: no SQLite, no MQTT, no clock;
//! `now` and the coaching start are parameters, so tests pin them.
//! [`super::db`] reads the observations, [`super::shell`]
//! publishes what these functions return and exports them through
//! [`super::export`].
//!
//! The definitions (`config/schemas/README.md`, "Coaching loop (aggregator)", repeats them
//! for the people who read the figures):
//!
//! - **Whose observations.** A team leader learns at level 3
//!   (facilitation), a supervisor at level 4 (coaching); a person's
//!   observations are those at their level with them as learner. A
//!   supervisor coaches at level 3, a manager at level 4; a coach's
//!   observations are those at their level with them as observer. An
//!   observation counts from its time (`at` of the board, or the time the
//!   aggregator received it when the board's clock was not synchronised);
//!   one dated after `now` does not count yet.
//! - **Cadence.** With a target of N per window W: `count_in_window` is the
//!   observations in `(now - W, now]`. `due_by` is `max(coaching start,
//!   the N-th most recent observation) + W`: the moment the window stops
//!   holding N, where a person with fewer than N observations counts the
//!   coaching start for the missing ones (one window of grace after the
//!   aggregator first ran with coaching). Overdue when `now >= due_by`,
//!   by `now - due_by`. A target of 0 is never overdue.
//! - **Score.** An observation's score is the mean of its rubric scores
//!   (1-4); a learner's score is the mean over their last
//!   [`ROLLING`] observations.
//! - **Trend.** The least-squares slope of the scores of the learner's last
//!   [`TREND_SPAN`] observations against their order (points per
//!   observation; needs two); `rising` from [`TREND_STEADY`] up, `falling`
//!   from minus that down, `steady` between.
//! - **Learner change** (per coach). For each learner the coach observed:
//!   the mean score of the learner's last [`ROLLING`] observations after
//!   the coach's first observation of them (by any coach), minus the score
//!   of that first observation; averaged over the learners observed again
//!   since (`learners_measured`).
//! - **Helpfulness** (per coach). The mean of the ratings (1-5) the
//!   learners gave the coach's observations; an observation without its
//!   `observation.acknowledged` is recorded but not yet rated.
//! - **Focus points** (per coach). Each observation sets one. It is
//!   *landed* when the learner's next observation at that level (by any
//!   coach) scores that behaviour 3 or more, *not landed* when it scores it
//!   lower (or not at all), and *pending* while the learner has not been
//!   observed again.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::compact::Scored;
use crate::aggregator::roster::BoardRoster;
use crate::domain::{mean_score, ObservationLevel, Role};
use crate::wire::event::{ObservationAcknowledged, ObservationRecorded};

/// A learner's score is the mean over this many latest observations.
pub const ROLLING: usize = 4;
/// The trend is the slope over this many latest observations.
pub const TREND_SPAN: usize = 8;
/// A slope (points per observation) smaller than this either way is steady.
pub const TREND_STEADY: f64 = 0.05;
/// A focus point is landed when re-observed at this score or more.
pub const LANDED_AT: u8 = 3;

/// The cadence targets (from `[coaching]` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Targets {
    /// Observations per window for each team leader.
    pub team_leader: u32,
    /// Observations per window for each supervisor.
    pub supervisor: u32,
    /// The sliding window.
    pub window: Duration,
}

impl Targets {
    /// From the configuration's `[coaching]`.
    pub fn from_config(c: &crate::aggregator::config::CoachingConfig) -> Targets {
        Targets {
            team_leader: c.team_leader_per_window,
            supervisor: c.supervisor_per_window,
            window: Duration::days(i64::from(c.window_days)),
        }
    }

    /// The target of a role that is observed, `None` for the others.
    pub fn of(&self, role: Role) -> Option<u32> {
        match role {
            Role::TeamLeader => Some(self.team_leader),
            Role::Supervisor => Some(self.supervisor),
            Role::Member | Role::Manager => None,
        }
    }
}

/// The level at which a role is observed (as learner).
pub fn learns_at(role: Role) -> Option<ObservationLevel> {
    match role {
        Role::TeamLeader => Some(ObservationLevel::Facilitation),
        Role::Supervisor => Some(ObservationLevel::Coaching),
        Role::Member | Role::Manager => None,
    }
}

/// The level at which a role observes (as coach).
pub fn coaches_at(role: Role) -> Option<ObservationLevel> {
    match role {
        Role::Supervisor => Some(ObservationLevel::Facilitation),
        Role::Manager => Some(ObservationLevel::Coaching),
        Role::Member | Role::TeamLeader => None,
    }
}

/// Someone of the cascade, from the roster (or, missing from it, from the
/// observations that name them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// Person id.
    pub id: String,
    /// Display name (the id when the roster does not know them).
    pub name: String,
    /// Role.
    pub role: Role,
    /// Their coach's person id, from the roster.
    pub coach: Option<String>,
    /// The boards they are on, in name order.
    pub boards: Vec<String>,
    /// Whether the roster lists them.
    pub in_roster: bool,
}

/// One person per id from the per-board rosters; a person on several
/// boards (a supervisor) keeps the name, role and coach of their first
/// line and collects the boards.
pub fn people_from_rosters(rosters: &[BoardRoster]) -> Vec<Person> {
    let mut people: BTreeMap<String, Person> = BTreeMap::new();
    for r in rosters {
        for p in &r.message.people {
            let entry = people.entry(p.id.clone()).or_insert_with(|| Person {
                id: p.id.clone(),
                name: p.name.clone(),
                role: p.role,
                coach: p.coach.clone(),
                boards: Vec::new(),
                in_roster: true,
            });
            if !entry.boards.contains(&r.message.board) {
                entry.boards.push(r.message.board.clone());
            }
        }
    }
    let mut out: Vec<Person> = people.into_values().collect();
    for p in &mut out {
        p.boards.sort();
    }
    out
}

/// One observation as the rules see it: the recorded event, its
/// acknowledgement if it came, and the time it counts from.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The board it was recorded at.
    pub board: String,
    /// The `observation.recorded` event's seq.
    pub seq: u64,
    /// When it counts (see the module docs).
    pub at: DateTime<Utc>,
    /// The recorded payload.
    pub recorded: ObservationRecorded,
    /// The learner's rating, once acknowledged.
    pub helpfulness: Option<u8>,
    /// When the acknowledgement was made.
    pub acknowledged_at: Option<DateTime<Utc>>,
}

impl Observation {
    /// The mean rubric score, `None` when nothing was rated.
    pub fn score(&self) -> Option<f64> {
        mean_score(&self.recorded.scores)
    }

    /// The score given to one behaviour.
    pub fn score_of(&self, behaviour: &str) -> Option<u8> {
        self.recorded
            .scores
            .iter()
            .find(|s| s.behaviour == behaviour)
            .map(|s| s.score)
    }
}

/// One stored coaching event, decoded: what [`fold`] takes.
#[derive(Debug, Clone, PartialEq)]
pub enum CoachingEvent {
    /// `observation.recorded`.
    Recorded(ObservationRecorded),
    /// `observation.acknowledged`.
    Acknowledged(ObservationAcknowledged),
}

/// A coaching event with where and when it was stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredCoachingEvent {
    /// Board.
    pub board: String,
    /// Seq.
    pub seq: u64,
    /// When it counts (the board's `at`, or the receipt time when the
    /// board's clock was not synchronised).
    pub at: DateTime<Utc>,
    /// The event.
    pub event: CoachingEvent,
}

/// The observations, and what could not be used (for the log).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Folded {
    /// Ordered by time, then board, then seq.
    pub observations: Vec<Observation>,
    /// One line per unusable event, naming board and seq.
    pub problems: Vec<String>,
}

/// Why a recorded observation cannot be counted, if it cannot.
pub(super) fn check_recorded(r: &ObservationRecorded) -> Result<(), String> {
    let rubric = r.level.behaviours();
    for s in &r.scores {
        if !rubric.contains(&s.behaviour.as_str()) {
            return Err(format!(
                "behaviour `{}` is not in the {:?} rubric",
                s.behaviour, r.level
            ));
        }
        if !(1..=4).contains(&s.score) {
            return Err(format!(
                "score {} for `{}` is not 1 to 4",
                s.score, s.behaviour
            ));
        }
    }
    if r.observer == r.learner {
        return Err(format!("`{}` observed themselves", r.observer));
    }
    Ok(())
}

/// Joins recorded observations and their acknowledgements (by
/// `observation_id`, in any order). The first recording of an id is kept;
/// an acknowledgement by someone other than the learner, or with a rating
/// outside 1-5, is not counted; an acknowledgement without its recording is
/// kept aside until the recording arrives (it is simply not shown).
pub fn fold(events: impl IntoIterator<Item = StoredCoachingEvent>) -> Folded {
    let mut folded = Folded::default();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    let mut acks: Vec<(String, u64, DateTime<Utc>, ObservationAcknowledged)> = Vec::new();
    for e in events {
        match e.event {
            CoachingEvent::Recorded(r) => {
                if let Err(why) = check_recorded(&r) {
                    folded.problems.push(format!(
                        "board {} seq {}: observation {} not counted: {why}",
                        e.board, e.seq, r.observation_id
                    ));
                    continue;
                }
                if let Some(&i) = by_id.get(&r.observation_id) {
                    let first = &folded.observations[i];
                    folded.problems.push(format!(
                        "board {} seq {}: observation {} was already recorded at board {} seq {}; the first is kept",
                        e.board, e.seq, r.observation_id, first.board, first.seq
                    ));
                    continue;
                }
                by_id.insert(r.observation_id.clone(), folded.observations.len());
                folded.observations.push(Observation {
                    board: e.board,
                    seq: e.seq,
                    at: e.at,
                    recorded: r,
                    helpfulness: None,
                    acknowledged_at: None,
                });
            }
            CoachingEvent::Acknowledged(a) => acks.push((e.board, e.seq, e.at, a)),
        }
    }
    for (board, seq, at, a) in acks {
        let Some(&i) = by_id.get(&a.observation_id) else {
            continue;
        };
        let o = &mut folded.observations[i];
        if a.learner != o.recorded.learner {
            folded.problems.push(format!(
                "board {board} seq {seq}: acknowledgement of observation {} by `{}`, but the learner is `{}`",
                a.observation_id, a.learner, o.recorded.learner
            ));
        } else if !(1..=5).contains(&a.helpfulness) {
            folded.problems.push(format!(
                "board {board} seq {seq}: helpfulness {} is not 1 to 5",
                a.helpfulness
            ));
        } else if o.helpfulness.is_none() {
            o.helpfulness = Some(a.helpfulness);
            o.acknowledged_at = Some(at);
        }
    }
    folded
        .observations
        .sort_by(|a, b| (a.at, &a.board, a.seq).cmp(&(b.at, &b.board, b.seq)));
    folded
}

/// Cadence against one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cadence {
    /// The target per window.
    pub target: u32,
    /// Observations in `(now - window, now]`.
    pub count_in_window: u32,
    /// The newest observation at or before `now`.
    pub last_observed: Option<DateTime<Utc>>,
    /// When the window stops (or stopped) holding the target; `None` for a
    /// target of 0.
    pub due_by: Option<DateTime<Utc>>,
}

impl Cadence {
    /// Whether the person is overdue at `now`.
    pub fn overdue(&self, now: DateTime<Utc>) -> bool {
        self.due_by.is_some_and(|d| now >= d)
    }

    /// Seconds overdue at `now` (0 when not overdue).
    pub fn overdue_s(&self, now: DateTime<Utc>) -> u64 {
        self.due_by
            .map_or(0, |d| (now - d).num_seconds().max(0) as u64)
    }
}

/// The cadence of one person from their observation times (ascending);
/// `since` is the coaching start (see the module docs).
pub fn cadence(
    times: &[DateTime<Utc>],
    target: u32,
    window: Duration,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Cadence {
    let past: Vec<DateTime<Utc>> = times.iter().copied().filter(|t| *t <= now).collect();
    let count_in_window = past.iter().filter(|t| **t > now - window).count() as u32;
    let due_by = (target > 0).then(|| {
        let n = target as usize;
        let nth = (past.len() >= n).then(|| past[past.len() - n]);
        nth.map_or(since, |t| t.max(since)) + window
    });
    Cadence {
        target,
        count_in_window,
        last_observed: past.last().copied(),
        due_by,
    }
}

/// Which way a learner's scores go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Trend {
    /// Slope at least [`TREND_STEADY`].
    Rising,
    /// Slope within [`TREND_STEADY`] of zero.
    Steady,
    /// Slope at most minus [`TREND_STEADY`].
    Falling,
}

impl Trend {
    /// The wire name.
    pub fn key(self) -> &'static str {
        match self {
            Trend::Rising => "rising",
            Trend::Steady => "steady",
            Trend::Falling => "falling",
        }
    }
}

/// A learner's figures from their scores in time order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LearnerFigures {
    /// The mean of the last [`ROLLING`] scores.
    pub score: Option<f64>,
    /// How many observations that mean is over.
    pub observations: u32,
    /// Least-squares slope over the last [`TREND_SPAN`] scores.
    pub slope: Option<f64>,
    /// The slope's direction.
    pub trend: Option<Trend>,
}

/// The least-squares slope of `ys` against 0, 1, 2...; `None` for fewer than two.
pub fn slope(ys: &[f64]) -> Option<f64> {
    if ys.len() < 2 {
        return None;
    }
    let n = ys.len() as f64;
    let mean_x = (n - 1.0) / 2.0;
    let mean_y = ys.iter().sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for (i, y) in ys.iter().enumerate() {
        let dx = i as f64 - mean_x;
        num += dx * (y - mean_y);
        den += dx * dx;
    }
    Some(num / den)
}

fn mean(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

fn last(xs: &[f64], n: usize) -> &[f64] {
    &xs[xs.len().saturating_sub(n)..]
}

/// Score and trend from a learner's scores in time order.
pub fn learner_figures(scores: &[f64]) -> LearnerFigures {
    let recent = last(scores, ROLLING);
    let slope = slope(last(scores, TREND_SPAN));
    LearnerFigures {
        score: mean(recent),
        observations: recent.len() as u32,
        slope,
        trend: slope.map(|s| {
            if s >= TREND_STEADY {
                Trend::Rising
            } else if s <= -TREND_STEADY {
                Trend::Falling
            } else {
                Trend::Steady
            }
        }),
    }
}

/// What became of one focus point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FocusOutcome {
    /// The learner's next observation scored it [`LANDED_AT`] or more.
    Landed,
    /// The next observation scored it lower, or did not score it.
    NotLanded,
    /// Not observed again yet.
    Pending,
}

impl FocusOutcome {
    /// The wire name.
    pub fn key(self) -> &'static str {
        match self {
            FocusOutcome::Landed => "landed",
            FocusOutcome::NotLanded => "not_landed",
            FocusOutcome::Pending => "pending",
        }
    }
}

/// The outcome of the focus point of every observation (given in time
/// order), in one pass from the newest: each observation meets the same
/// learner's next one at its level. Linear, so that years of history stay
/// cheap to compute every minute.
pub fn focus_outcomes<O: Scored>(observations: &[O]) -> Vec<FocusOutcome> {
    let mut next: HashMap<(&str, ObservationLevel), &O> = HashMap::new();
    let mut out = vec![FocusOutcome::Pending; observations.len()];
    for (i, o) in observations.iter().enumerate().rev() {
        let key = (o.learner(), o.level());
        out[i] = match next.get(&key) {
            None => FocusOutcome::Pending,
            Some(n) if o.focus_score_in(n).unwrap_or(0) >= LANDED_AT => FocusOutcome::Landed,
            Some(_) => FocusOutcome::NotLanded,
        };
        next.insert(key, o);
    }
    out
}

/// A coach's figures at one level.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CoachFigures {
    /// Observations the coach made.
    pub observations: u32,
    /// Distinct learners observed.
    pub learners: u32,
    /// Learners observed again after the coach's first observation of them.
    pub learners_measured: u32,
    /// Mean change of the measured learners' scores (module docs).
    pub learner_change: Option<f64>,
    /// Mean helpfulness received.
    pub helpfulness: Option<f64>,
    /// Ratings received.
    pub ratings: u32,
    /// Focus points set.
    pub focus_set: u32,
    /// Focus points landed.
    pub focus_landed: u32,
    /// Focus points not re-observed yet.
    pub focus_pending: u32,
}

/// The figures of `coach` as observer at `level`, from every observation
/// in time order.
pub fn coach_figures<O: Scored>(
    coach: &str,
    level: ObservationLevel,
    observations: &[O],
) -> CoachFigures {
    History::new(observations).coach(coach, level)
}

/// Observations in time order, indexed once per computation so that every
/// figure is found without scanning the whole history again: years of a
/// plant's observations are computed in milliseconds.
struct History<'a, O> {
    observations: &'a [O],
    /// [`focus_outcomes`].
    outcomes: Vec<FocusOutcome>,
    /// Per level ([`slot`]), the indices of each learner, ascending.
    by_learner: [HashMap<&'a str, Vec<usize>>; 2],
    /// Per level, the indices of each observer, ascending.
    by_coach: [HashMap<&'a str, Vec<usize>>; 2],
}

/// The index of a level in [`History`]'s maps.
fn slot(level: ObservationLevel) -> usize {
    match level {
        ObservationLevel::Facilitation => 0,
        ObservationLevel::Coaching => 1,
    }
}

impl<'a, O: Scored> History<'a, O> {
    fn new(observations: &'a [O]) -> Self {
        let mut by_learner: [HashMap<&str, Vec<usize>>; 2] = Default::default();
        let mut by_coach: [HashMap<&str, Vec<usize>>; 2] = Default::default();
        for (i, o) in observations.iter().enumerate() {
            let l = slot(o.level());
            by_learner[l].entry(o.learner()).or_default().push(i);
            by_coach[l].entry(o.observer()).or_default().push(i);
        }
        History {
            observations,
            outcomes: focus_outcomes(observations),
            by_learner,
            by_coach,
        }
    }

    fn of_learner(&self, id: &str, level: ObservationLevel) -> &[usize] {
        self.by_learner[slot(level)]
            .get(id)
            .map_or(&[], Vec::as_slice)
    }

    fn of_coach(&self, id: &str, level: ObservationLevel) -> &[usize] {
        self.by_coach[slot(level)]
            .get(id)
            .map_or(&[], Vec::as_slice)
    }

    /// The figures of `coach` as observer at `level`.
    fn coach(&self, coach: &str, level: ObservationLevel) -> CoachFigures {
        let observations = self.observations;
        let mut f = CoachFigures::default();
        let mut first_of: BTreeMap<&str, usize> = BTreeMap::new();
        let mut ratings = Vec::new();
        for &i in self.of_coach(coach, level) {
            let o = &observations[i];
            f.observations += 1;
            first_of.entry(o.learner()).or_insert(i);
            if let Some(h) = o.helpfulness() {
                ratings.push(f64::from(h));
            }
            f.focus_set += 1;
            match self.outcomes[i] {
                FocusOutcome::Landed => f.focus_landed += 1,
                FocusOutcome::Pending => f.focus_pending += 1,
                FocusOutcome::NotLanded => {}
            }
        }
        f.learners = first_of.len() as u32;
        f.ratings = ratings.len() as u32;
        f.helpfulness = mean(&ratings);
        let mut changes = Vec::new();
        for (learner, first) in first_of {
            let Some(base) = observations[first].score() else {
                continue;
            };
            let theirs = self.of_learner(learner, level);
            let after: Vec<f64> = theirs[theirs.partition_point(|&j| j <= first)..]
                .iter()
                .filter_map(|&j| observations[j].score())
                .collect();
            if let Some(now) = mean(last(&after, ROLLING)) {
                changes.push(now - base);
            }
        }
        f.learners_measured = changes.len() as u32;
        f.learner_change = mean(&changes);
        f
    }
}

/// One person's line on the coaching topic and in the export. Fields that
/// do not apply to the role are `null` (empty in CSV).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Entry {
    /// Person id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Their coach (roster).
    pub coach: Option<String>,
    /// Their boards (roster).
    pub boards: Vec<String>,
    /// Whether the roster lists them (if not, role and name were inferred
    /// from observations).
    pub in_roster: bool,
    /// Cadence target per window (team leaders, supervisors).
    pub target: Option<u32>,
    /// Observations in the window.
    pub count_in_window: Option<u32>,
    /// The newest observation of them.
    pub last_observed: Option<DateTime<Utc>>,
    /// When the window stops holding the target.
    pub due_by: Option<DateTime<Utc>>,
    /// Whether they are overdue now.
    pub overdue: bool,
    /// Seconds overdue (0 when not).
    pub overdue_s: u64,
    /// Rolling mean score as learner (facilitation for team leaders,
    /// coaching for supervisors).
    pub score: Option<f64>,
    /// Observations in that mean.
    pub score_observations: Option<u32>,
    /// Score slope, points per observation.
    pub score_slope: Option<f64>,
    /// `rising`, `steady`, `falling`.
    pub trend: Option<Trend>,
    /// Observations made as coach (supervisors, managers).
    pub coached: Option<u32>,
    /// Distinct learners observed.
    pub learners: Option<u32>,
    /// Learners observed again since the first observation.
    pub learners_measured: Option<u32>,
    /// Mean change of those learners' scores.
    pub learner_change: Option<f64>,
    /// Mean helpfulness received (1-5).
    pub helpfulness: Option<f64>,
    /// Ratings received.
    pub ratings: Option<u32>,
    /// Focus points set.
    pub focus_set: Option<u32>,
    /// Focus points landed.
    pub focus_landed: Option<u32>,
    /// Focus points not re-observed yet.
    pub focus_pending: Option<u32>,
}

/// The targets as published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PublishedTargets {
    /// Per team leader.
    pub team_leader: u32,
    /// Per supervisor.
    pub supervisor: u32,
}

/// The retained payload of `huddle/v1/{site}/coaching`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Report {
    /// The site.
    pub site: String,
    /// When it was computed.
    pub at: DateTime<Utc>,
    /// The cadence window in days.
    pub window_days: i64,
    /// The cadence targets.
    pub targets: PublishedTargets,
    /// The coaching start (see the module docs).
    pub since: DateTime<Utc>,
    /// One entry per team leader, supervisor and manager: managers first,
    /// then supervisors, then team leaders, each by id.
    pub people: Vec<Entry>,
    /// People named by observations, not in the roster, and not listed
    /// because [`MAX_UNLISTED`] were listed already.
    #[serde(default)]
    pub unlisted_left_out: u32,
}

/// Rounds to three decimals: the published figures are read by people.
pub(super) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Most people an observation may add to the report without being in the
/// roster (ids come from the boards: a board that invents them must not
/// grow the report past what MQTT can carry). The rest are counted.
pub const MAX_UNLISTED: usize = 50;

/// Adds the people that observations name but the roster does not, with
/// the role their part implies (at most [`MAX_UNLISTED`]); returns them
/// with the number of unlisted people left out.
fn with_unlisted<O: Scored>(people: &[Person], observations: &[O]) -> (Vec<Person>, u32) {
    let mut out = people.to_vec();
    let mut left_out = 0u32;
    let mut known: BTreeSet<String> = people.iter().map(|p| p.id.clone()).collect();
    for o in observations {
        let (learner_role, observer_role) = match o.level() {
            ObservationLevel::Facilitation => (Role::TeamLeader, Role::Supervisor),
            ObservationLevel::Coaching => (Role::Supervisor, Role::Manager),
        };
        for (id, role) in [(o.learner(), learner_role), (o.observer(), observer_role)] {
            if !known.contains(id) {
                known.insert(id.to_owned());
                if out.len() - people.len() >= MAX_UNLISTED {
                    left_out += 1;
                    continue;
                }
                out.push(Person {
                    id: id.to_owned(),
                    name: id.to_owned(),
                    role,
                    coach: None,
                    boards: vec![o.board().to_owned()],
                    in_roster: false,
                });
            }
        }
    }
    (out, left_out)
}

/// The whole report at `now`. `observations` in time order ([`fold`]),
/// full or compact; those dated after `now` are left out. Team members
/// are not listed.
pub fn report<O: Scored>(
    site: &str,
    people: &[Person],
    observations: &[O],
    targets: Targets,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Report {
    // In time order, the past is a prefix.
    let past = &observations[..observations.partition_point(|o| o.at() <= now)];
    let history = History::new(past);
    let (people, unlisted_left_out) = with_unlisted(people, past);
    let mut entries: Vec<Entry> = people
        .into_iter()
        .filter(|p| p.role != Role::Member)
        .map(|p| entry(&p, &history, targets, since, now))
        .collect();
    entries.sort_by(|a, b| b.role.cmp(&a.role).then_with(|| a.id.cmp(&b.id)));
    Report {
        site: site.to_owned(),
        at: now,
        window_days: targets.window.num_days(),
        targets: PublishedTargets {
            team_leader: targets.team_leader,
            supervisor: targets.supervisor,
        },
        since,
        people: entries,
        unlisted_left_out,
    }
}

fn entry<O: Scored>(
    p: &Person,
    history: &History<'_, O>,
    targets: Targets,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Entry {
    let mut e = Entry {
        id: p.id.clone(),
        name: p.name.clone(),
        role: p.role,
        coach: p.coach.clone(),
        boards: p.boards.clone(),
        in_roster: p.in_roster,
        target: None,
        count_in_window: None,
        last_observed: None,
        due_by: None,
        overdue: false,
        overdue_s: 0,
        score: None,
        score_observations: None,
        score_slope: None,
        trend: None,
        coached: None,
        learners: None,
        learners_measured: None,
        learner_change: None,
        helpfulness: None,
        ratings: None,
        focus_set: None,
        focus_landed: None,
        focus_pending: None,
    };
    if let (Some(level), Some(target)) = (learns_at(p.role), targets.of(p.role)) {
        let mine: Vec<&O> = history
            .of_learner(&p.id, level)
            .iter()
            .map(|&i| &history.observations[i])
            .collect();
        let times: Vec<DateTime<Utc>> = mine.iter().map(|o| o.at()).collect();
        let c = cadence(&times, target, targets.window, since, now);
        e.target = Some(target);
        e.count_in_window = Some(c.count_in_window);
        e.last_observed = c.last_observed;
        e.due_by = c.due_by;
        e.overdue = c.overdue(now);
        e.overdue_s = c.overdue_s(now);
        let scores: Vec<f64> = mine.iter().filter_map(|o| o.score()).collect();
        let l = learner_figures(&scores);
        e.score = l.score.map(round3);
        e.score_observations = Some(l.observations);
        e.score_slope = l.slope.map(round3);
        e.trend = l.trend;
    }
    if let Some(level) = coaches_at(p.role) {
        let c = history.coach(&p.id, level);
        e.coached = Some(c.observations);
        e.learners = Some(c.learners);
        e.learners_measured = Some(c.learners_measured);
        e.learner_change = c.learner_change.map(round3);
        e.helpfulness = c.helpfulness.map(round3);
        e.ratings = Some(c.ratings);
        e.focus_set = Some(c.focus_set);
        e.focus_landed = Some(c.focus_landed);
        e.focus_pending = Some(c.focus_pending);
    }
    e
}

/// The payload of `huddle/v1/{site}/alert/coaching_overdue` (not retained).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OverdueAlert {
    /// Always `coaching_overdue`.
    pub kind: String,
    /// Person id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Their coach, who should observe them.
    pub coach: Option<String>,
    /// Their boards.
    pub boards: Vec<String>,
    /// The target per window.
    pub target: u32,
    /// Observations in the window.
    pub count_in_window: u32,
    /// Since when they are overdue.
    pub overdue_since: DateTime<Utc>,
    /// When this was noticed.
    pub at: DateTime<Utc>,
}

/// The people overdue in `current` who were not overdue (or not listed) in
/// `previous`: one alert per transition into overdue. Without a previous
/// report (the first computation after a start) nobody is alerted: the
/// retained topic already shows who is overdue, and a restart must not
/// repeat every alert.
pub fn newly_overdue(previous: Option<&Report>, current: &Report) -> Vec<OverdueAlert> {
    let Some(previous) = previous else {
        return Vec::new();
    };
    let was: BTreeSet<&str> = previous
        .people
        .iter()
        .filter(|e| e.overdue)
        .map(|e| e.id.as_str())
        .collect();
    current
        .people
        .iter()
        .filter(|e| e.overdue && !was.contains(e.id.as_str()))
        .filter_map(|e| {
            Some(OverdueAlert {
                kind: crate::wire::topic::ALERT_COACHING_OVERDUE.into(),
                id: e.id.clone(),
                name: e.name.clone(),
                role: e.role,
                coach: e.coach.clone(),
                boards: e.boards.clone(),
                target: e.target?,
                count_in_window: e.count_in_window?,
                overdue_since: e.due_by?,
                at: current.at,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
