//! Resource needs (raised, escalated) and the team's experiment.

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{params, Connection};

use super::{optional, parse_date, Store, StoreError, Tx};
use crate::domain::{ExperimentInput, NeedInput};
use crate::wire::time::{parse_ts, ts};

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

/// The experiment as shown.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExperimentRow {
    /// Obstacle.
    pub obstacle: String,
    /// Expectation.
    pub expectation: String,
    /// Next step.
    pub next_step: String,
    /// Owner: the person's id as stored; the board's view shows their name.
    pub owner: String,
    /// Check date.
    pub check_date: Option<NaiveDate>,
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

impl Store {
    /// The needs raised in this huddle and every open escalation, oldest first.
    pub fn needs(&self, huddle_id: &str) -> Result<Vec<NeedRow>, StoreError> {
        load_needs(
            &self.conn,
            "huddle_id = ?1 OR (escalated = 1 AND closed_at IS NULL)",
            huddle_id,
        )
        .map_err(|e| self.err(e))
    }

    /// Every open escalation, oldest first.
    pub fn open_escalations(&self) -> Result<Vec<NeedRow>, StoreError> {
        load_needs(
            &self.conn,
            "escalated = 1 AND closed_at IS NULL AND ?1 = ?1",
            "",
        )
        .map_err(|e| self.err(e))
    }

    /// The current experiment (the latest saved), if any.
    pub fn experiment(&self) -> Result<Option<ExperimentRow>, StoreError> {
        optional(self.conn.query_row(
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
        .map_err(|e| self.err(e))
    }
}

impl Tx<'_> {
    /// A need raised now in a huddle, counted in its `needs_raised` (and
    /// `needs_escalated`).
    pub fn insert_need(
        &self,
        id: &str,
        huddle_id: &str,
        need: &NeedInput,
    ) -> Result<(), StoreError> {
        let c = self.conn();
        let run = || -> rusqlite::Result<()> {
            c.execute(
                "INSERT INTO needs (id, huddle_id, category, text, escalated, raised_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, huddle_id, need.category, need.text, need.escalated, ts(self.now())],
            )?;
            c.execute(
                "UPDATE huddles SET needs_raised = needs_raised + 1, needs_escalated = needs_escalated + ?2 WHERE id = ?1",
                params![huddle_id, need.escalated as i64],
            )?;
            Ok(())
        };
        run().map_err(|e| self.err(e))
    }

    /// A new version of the experiment, saved now in a huddle.
    pub fn insert_experiment(
        &self,
        huddle_id: &str,
        e: &ExperimentInput,
    ) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT INTO experiments (huddle_id, obstacle, expectation, next_step, owner, check_date, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![huddle_id, e.obstacle, e.expectation, e.next_step, e.owner, e.check_date.to_string(), ts(self.now())],
            )
            .map(|_| ())
            .map_err(|err| self.err(err))
    }
}
