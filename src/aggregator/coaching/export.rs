//! The observation and coaching exports' columns and rows (pure): one row
//! per observation, one per person of a [`Report`], as text. The shell
//! ([`super::shell`]) writes them as CSV or JSON for the `export` command.

use chrono::{DateTime, NaiveDate, Utc};

use super::rules::{focus_outcomes, round3, Observation, Report, Trend};
use crate::domain::{BehaviourScore, ObservationLevel, Pick, SelfView};

/// The columns of `export --what observations --format csv`.
pub const OBSERVATION_COLUMNS: [&str; 21] = [
    "observation_id",
    "level",
    "board",
    "seq",
    "at",
    "observer",
    "learner",
    "huddle_id",
    "self_view",
    "score",
    "scores",
    "strength",
    "strength_note",
    "focus",
    "focus_note",
    "trigger",
    "reobserve_on",
    "acknowledged",
    "helpfulness",
    "acknowledged_at",
    "focus_outcome",
];

fn self_view_key(v: SelfView) -> &'static str {
    match v {
        SelfView::WentWell => "went_well",
        SelfView::SoSo => "so_so",
        SelfView::Badly => "badly",
    }
}

fn level_key(l: ObservationLevel) -> &'static str {
    match l {
        ObservationLevel::Facilitation => "facilitation",
        ObservationLevel::Coaching => "coaching",
    }
}

fn time(t: DateTime<Utc>) -> String {
    crate::wire::time::ts(t)
}

fn scores_text(scores: &[BehaviourScore]) -> String {
    scores
        .iter()
        .map(|s| format!("{}={}", s.behaviour, s.score))
        .collect::<Vec<_>>()
        .join(";")
}

fn date(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

fn pick(p: &Pick) -> (String, String) {
    (p.behaviour.clone(), p.note.clone())
}

/// One export row per observation (columns [`OBSERVATION_COLUMNS`]), in
/// time order.
pub fn observation_rows(observations: &[Observation]) -> Vec<Vec<String>> {
    let outcomes = focus_outcomes(observations);
    observations
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let r = &o.recorded;
            let (strength, strength_note) = pick(&r.strength);
            let (focus, focus_note) = pick(&r.focus);
            vec![
                r.observation_id.clone(),
                level_key(r.level).into(),
                o.board.clone(),
                o.seq.to_string(),
                time(o.at),
                r.observer.clone(),
                r.learner.clone(),
                r.huddle_id.clone().unwrap_or_default(),
                self_view_key(r.self_view).into(),
                o.score().map(|s| round3(s).to_string()).unwrap_or_default(),
                scores_text(&r.scores),
                strength,
                strength_note,
                focus,
                focus_note,
                r.trigger.clone(),
                date(r.reobserve_on),
                o.helpfulness.is_some().to_string(),
                o.helpfulness.map(|h| h.to_string()).unwrap_or_default(),
                o.acknowledged_at.map(time).unwrap_or_default(),
                outcomes[i].key().into(),
            ]
        })
        .collect()
}

/// The columns of `export --what coaching --format csv`: the fields of
/// [`Entry`](super::rules::Entry), `boards` joined by `;`.
pub const COACHING_COLUMNS: [&str; 27] = [
    "id",
    "name",
    "role",
    "coach",
    "boards",
    "in_roster",
    "target",
    "count_in_window",
    "last_observed",
    "due_by",
    "overdue",
    "overdue_s",
    "score",
    "score_observations",
    "score_slope",
    "trend",
    "coached",
    "learners",
    "learners_measured",
    "learner_change",
    "helpfulness",
    "ratings",
    "focus_set",
    "focus_landed",
    "focus_pending",
    "window_days",
    "at",
];

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// One export row per entry of the report (columns [`COACHING_COLUMNS`]).
pub fn coaching_rows(report: &Report) -> Vec<Vec<String>> {
    report
        .people
        .iter()
        .map(|e| {
            vec![
                e.id.clone(),
                e.name.clone(),
                e.role.key().into(),
                opt(e.coach.as_ref()),
                e.boards.join(";"),
                e.in_roster.to_string(),
                opt(e.target),
                opt(e.count_in_window),
                opt(e.last_observed.map(time)),
                opt(e.due_by.map(time)),
                e.overdue.to_string(),
                e.overdue_s.to_string(),
                opt(e.score),
                opt(e.score_observations),
                opt(e.score_slope),
                opt(e.trend.map(Trend::key)),
                opt(e.coached),
                opt(e.learners),
                opt(e.learners_measured),
                opt(e.learner_change),
                opt(e.helpfulness),
                opt(e.ratings),
                opt(e.focus_set),
                opt(e.focus_landed),
                opt(e.focus_pending),
                report.window_days.to_string(),
                time(report.at),
            ]
        })
        .collect()
}
