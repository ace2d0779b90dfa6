//! Huddles and attendance: a huddle's row (started, its step, closed),
//! each arrival, and the reads that rebuild the open huddle after a
//! restart.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{optional, Store, StoreError, Tx};
use crate::domain::{Arrival, Huddle};
use crate::wire::event::TapVia;
use crate::wire::time::{parse_ts, ts};

impl Store {
    /// The open huddle (at most one), with its arrivals and KPI outcomes,
    /// as it was when the board last wrote it.
    pub fn open_huddle(&self) -> Result<Option<Huddle>, StoreError> {
        let c = &self.conn;
        let load = || -> rusqlite::Result<Option<Huddle>> {
            let row = optional(c.query_row(
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
            let mut stmt = c.prepare(
                "SELECT person_id, arrived_at, late FROM attendance WHERE huddle_id = ?1",
            )?;
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
        };
        load().map_err(|e| self.err(e))
    }

    /// Each person's latest arrival, in any huddle.
    pub fn last_taps(&self) -> Result<HashMap<String, DateTime<Utc>>, StoreError> {
        let load = || -> rusqlite::Result<HashMap<String, DateTime<Utc>>> {
            let mut stmt = self
                .conn
                .prepare("SELECT person_id, MAX(arrived_at) FROM attendance GROUP BY person_id")?;
            let rows =
                stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            let mut out = HashMap::new();
            for row in rows {
                let (p, at) = row?;
                if let Some(at) = parse_ts(&at) {
                    out.insert(p, at);
                }
            }
            Ok(out)
        };
        load().map_err(|e| self.err(e))
    }

    /// Whether a huddle was already held (or is open) for the slot at `slot_at`.
    pub fn slot_held(&self, slot_at: DateTime<Utc>) -> Result<bool, StoreError> {
        self.conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM huddles WHERE slot = ?1)",
                [ts(slot_at)],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// How many huddles were closed (for the scripted huddles to resume).
    pub fn closed_huddles(&self) -> Result<usize, StoreError> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM huddles WHERE closed_at IS NOT NULL",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as usize)
            .map_err(|e| self.err(e))
    }

    /// When the board's last event was written, if any is in the outbox.
    pub fn last_event_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let last: Option<String> = self
            .conn
            .query_row("SELECT MAX(at) FROM outbox", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        Ok(last.as_deref().and_then(parse_ts))
    }
}

impl Tx<'_> {
    /// A new huddle's row, started now by `started_by`.
    pub fn insert_huddle(
        &self,
        id: &str,
        due: DateTime<Utc>,
        slot: Option<DateTime<Utc>>,
        started_by: &str,
    ) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT INTO huddles (id, due, slot, started_at, started_by) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, ts(due), slot.map(ts), ts(self.now()), started_by],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// A person's arrival in a huddle, now.
    pub fn insert_attendance(
        &self,
        huddle_id: &str,
        person_id: &str,
        late: bool,
        via: TapVia,
    ) -> Result<(), StoreError> {
        let via = match via {
            TapVia::Badge => "badge",
            TapVia::Name => "name",
        };
        self.conn()
            .execute(
                "INSERT INTO attendance (huddle_id, person_id, arrived_at, late, via) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![huddle_id, person_id, ts(self.now()), late, via],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// The huddle's current agenda step.
    pub fn set_step(&self, huddle_id: &str, step: usize) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "UPDATE huddles SET step = ?2 WHERE id = ?1",
                params![huddle_id, step as i64],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Closes the huddle now.
    pub fn close_huddle(&self, huddle_id: &str, closed_by: &str) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "UPDATE huddles SET closed_at = ?2, closed_by = ?3 WHERE id = ?1",
                params![huddle_id, ts(self.now()), closed_by],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }
}
