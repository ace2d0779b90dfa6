//! Actions and KPI reviews: an action created (on its own or by a missed
//! KPI), its status and date as the team reviews it, and each KPI's
//! review in a huddle.

use std::collections::HashMap;

use chrono::NaiveDate;
use rusqlite::{params, Connection};

use super::{optional, parse_date, Store, StoreError, Tx};
use crate::domain::NewAction;
use crate::wire::event::KpiReviewed;
use crate::wire::time::ts;

/// An action as the screen lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRow {
    /// Id.
    pub id: String,
    /// What.
    pub what: String,
    /// Owner: the person's id as stored; the board's view shows their name.
    pub owner: String,
    /// Local due date.
    pub due: NaiveDate,
    /// `open`, `done`, `rescheduled`, `blocked`.
    pub status: String,
}

/// An action's stored status and due date, before a review changes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionState {
    /// `open`, `done`, `rescheduled`, `blocked`.
    pub status: String,
    /// The local due date (`None` if the stored one is not understood).
    pub due: Option<NaiveDate>,
}

/// A KPI's review in a huddle, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KpiReviewRow {
    /// Hit (else missed).
    pub hit: bool,
    /// The actual figure.
    pub actual: String,
    /// The miss reason.
    pub reason: String,
    /// The note.
    pub note: String,
    /// The action the miss created, if any.
    pub action_id: Option<String>,
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

impl Store {
    /// Actions of earlier huddles still open, and those reviewed in this
    /// one (whatever their status now), by due date.
    pub fn open_actions(&self, huddle_id: &str) -> Result<Vec<ActionRow>, StoreError> {
        load_actions(
            &self.conn,
            "huddle_id != ?1 AND (status != 'done' OR reviewed_in = ?1)",
            huddle_id,
        )
        .map_err(|e| self.err(e))
    }

    /// Actions created in this huddle, by due date.
    pub fn new_actions(&self, huddle_id: &str) -> Result<Vec<ActionRow>, StoreError> {
        load_actions(&self.conn, "huddle_id = ?1", huddle_id).map_err(|e| self.err(e))
    }

    /// An action's status and due date (`None`: no such action).
    pub fn action_state(&self, id: &str) -> Result<Option<ActionState>, StoreError> {
        let row: Option<(String, String)> = optional(self.conn.query_row(
            "SELECT status, due FROM actions WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        ))
        .map_err(|e| self.err(e))?;
        Ok(row.map(|(status, due)| ActionState {
            status,
            due: parse_date(&due),
        }))
    }

    /// The KPI reviews of a huddle, by KPI key.
    pub fn kpi_reviews(
        &self,
        huddle_id: &str,
    ) -> Result<HashMap<String, KpiReviewRow>, StoreError> {
        let load = || -> rusqlite::Result<HashMap<String, KpiReviewRow>> {
            let mut stmt = self.conn.prepare_cached(
                "SELECT kpi, hit, actual, reason, note, action_id FROM kpi_reviews WHERE huddle_id = ?1",
            )?;
            let rows = stmt.query_map([huddle_id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    KpiReviewRow {
                        hit: r.get(1)?,
                        actual: r.get(2)?,
                        reason: r.get(3)?,
                        note: r.get(4)?,
                        action_id: r.get(5)?,
                    },
                ))
            })?;
            rows.collect()
        };
        load().map_err(|e| self.err(e))
    }

    /// The action an earlier review of this KPI in this huddle created, if
    /// any (a corrected review replaces it).
    pub fn kpi_review_action(
        &self,
        huddle_id: &str,
        kpi: &str,
    ) -> Result<Option<String>, StoreError> {
        optional(self.conn.query_row(
            "SELECT action_id FROM kpi_reviews WHERE huddle_id = ?1 AND kpi = ?2",
            params![huddle_id, kpi],
            |r| r.get::<_, Option<String>>(0),
        ))
        .map(Option::flatten)
        .map_err(|e| self.err(e))
    }
}

impl Tx<'_> {
    /// A new open action, counted in its huddle's `actions_created`.
    pub fn insert_action(
        &self,
        id: &str,
        huddle_id: &str,
        a: &NewAction,
        source: &str,
    ) -> Result<(), StoreError> {
        let c = self.conn();
        let run = || -> rusqlite::Result<()> {
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
                    ts(self.now())
                ],
            )?;
            c.execute(
                "UPDATE huddles SET actions_created = actions_created + 1 WHERE id = ?1",
                [huddle_id],
            )?;
            Ok(())
        };
        run().map_err(|e| self.err(e))
    }

    /// Deletes the action a corrected KPI review replaces, and uncounts it.
    pub fn delete_replaced_action(
        &self,
        action_id: &str,
        huddle_id: &str,
    ) -> Result<(), StoreError> {
        let c = self.conn();
        let run = || -> rusqlite::Result<()> {
            c.execute("DELETE FROM actions WHERE id = ?1", [action_id])?;
            c.execute(
                "UPDATE huddles SET actions_created = actions_created - 1 WHERE id = ?1",
                [huddle_id],
            )?;
            Ok(())
        };
        run().map_err(|e| self.err(e))
    }

    /// A KPI's review in a huddle, replacing an earlier one of that KPI.
    pub fn save_kpi_review(&self, r: &KpiReviewed) -> Result<(), StoreError> {
        let hit = r.status == "hit";
        self.conn()
            .execute(
                "INSERT OR REPLACE INTO kpi_reviews (huddle_id, kpi, hit, actual, reason, note, action_id, reviewed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![r.huddle_id, r.kpi, hit, r.actual, r.reason, r.note, r.action_id, ts(self.now())],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// An action's new status and due date, reviewed in `huddle_id`, whose
    /// `actions_closed` moves by `closed_delta`.
    pub fn update_action(
        &self,
        id: &str,
        status: &str,
        due: NaiveDate,
        huddle_id: &str,
        closed_delta: i64,
    ) -> Result<(), StoreError> {
        let c = self.conn();
        let run = || -> rusqlite::Result<()> {
            c.execute(
                "UPDATE actions SET status = ?2, due = ?3, reviewed_in = ?4 WHERE id = ?1",
                params![id, status, due.to_string(), huddle_id],
            )?;
            c.execute(
                "UPDATE huddles SET actions_closed = actions_closed + ?2 WHERE id = ?1",
                params![huddle_id, closed_delta],
            )?;
            Ok(())
        };
        run().map_err(|e| self.err(e))
    }
}
