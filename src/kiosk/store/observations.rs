//! Coaching observations: the row written once the learner has confirmed
//! and rated the coaching, and the latest focus point of a team leader.

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{optional, Store, StoreError, Tx};
use crate::wire::event::{ObservationAcknowledged, ObservationRecorded};
use crate::wire::time::ts;

/// The focus point of the latest facilitation (level 3) observation of a
/// learner, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FocusRecord {
    /// The learner's person id.
    pub learner: String,
    /// The focus behaviour's key in the facilitation rubric.
    pub focus: String,
    /// The focus point's note.
    pub note: String,
    /// When to apply it.
    pub trigger: String,
    /// The re-observation date, as stored (`YYYY-MM-DD`).
    pub reobserve_on: String,
}

fn key_of<T: serde::Serialize>(value: &T) -> String {
    // Design: the serde name of a unit enum variant is a plain string.
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

impl Store {
    /// The latest acknowledged facilitation observation of any of
    /// `learners` (person ids); `None` when there is none or no learner.
    pub fn latest_focus(&self, learners: &[&str]) -> Result<Option<FocusRecord>, StoreError> {
        if learners.is_empty() {
            return Ok(None);
        }
        let marks = vec!["?"; learners.len()].join(", ");
        let sql = format!(
            "SELECT learner, focus, focus_note, trigger, reobserve_on FROM observations
             WHERE level = 'facilitation' AND learner IN ({marks})
             ORDER BY acknowledged_at DESC LIMIT 1"
        );
        let load = || -> rusqlite::Result<Option<FocusRecord>> {
            let mut stmt = self.conn.prepare_cached(&sql)?;
            optional(
                stmt.query_row(rusqlite::params_from_iter(learners.iter()), |r| {
                    Ok(FocusRecord {
                        learner: r.get(0)?,
                        focus: r.get(1)?,
                        note: r.get(2)?,
                        trigger: r.get(3)?,
                        reobserve_on: r.get(4)?,
                    })
                }),
            )
        };
        load().map_err(|e| self.err(e))
    }
}

impl Tx<'_> {
    /// The observation's row, acknowledged now; the flow began at `started`.
    pub fn insert_observation(
        &self,
        r: &ObservationRecorded,
        a: &ObservationAcknowledged,
        started: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let scores = serde_json::to_string(&r.scores).unwrap_or_default();
        self.conn()
            .execute(
                "INSERT INTO observations (id, level, observer, learner, huddle_id, self_view, scores,
                     strength, strength_note, focus, focus_note, trigger, reobserve_on, helpfulness,
                     started_at, acknowledged_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
                params![
                    r.observation_id,
                    key_of(&r.level),
                    r.observer,
                    r.learner,
                    r.huddle_id,
                    key_of(&r.self_view),
                    scores,
                    r.strength.behaviour,
                    r.strength.note,
                    r.focus.behaviour,
                    r.focus.note,
                    r.trigger,
                    r.reobserve_on.to_string(),
                    a.helpfulness,
                    ts(started),
                    ts(self.now()),
                ],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }
}
