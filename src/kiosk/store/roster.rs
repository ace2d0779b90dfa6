//! The roster: the one the aggregator published for this board (newest
//! `issued_at` wins) and the badges enrolled at this board.

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{optional, Store, StoreError, Tx};
use crate::domain::{BadgeHash, Person, Role};
use crate::wire::payload::RosterMessage;
use crate::wire::time::{parse_ts, ts};

/// The aggregator's roster in use: when it was issued, its people in
/// order, and their badge hashes (person id for each).
pub type AppliedRoster = (DateTime<Utc>, Vec<Person>, Vec<(BadgeHash, String)>);

fn role_key(role: Role) -> String {
    // Design: the serde name (`team_leader`), the same word as in the config.
    serde_json::to_value(role)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

impl Store {
    /// The aggregator's roster stored here, if one was applied. A person
    /// with a role this build does not know is skipped (and logged).
    pub fn applied_roster(&self) -> Result<Option<AppliedRoster>, StoreError> {
        let c = &self.conn;
        let load = || -> rusqlite::Result<Option<AppliedRoster>> {
            let issued: Option<String> = optional(c.query_row(
                "SELECT issued_at FROM roster WHERE id = 1",
                [],
                |r| r.get(0),
            ))?;
            let Some(issued) = issued.as_deref().and_then(parse_ts) else {
                return Ok(None);
            };
            let mut stmt =
                c.prepare("SELECT id, name, role FROM roster_people ORDER BY position")?;
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
            let rows =
                stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            let mut badges = Vec::new();
            for row in rows {
                let (hash, person) = row?;
                if let Some(h) = BadgeHash::parse(&hash) {
                    badges.push((h, person));
                }
            }
            Ok(Some((issued, people, badges)))
        };
        load().map_err(|e| self.err(e))
    }

    /// The language of a person of the aggregator's roster stored here, if
    /// the roster gives them one.
    pub fn roster_language(&self, person_id: &str) -> Result<Option<String>, StoreError> {
        let found: rusqlite::Result<Option<Option<String>>> = optional(self.conn.query_row(
            "SELECT language FROM roster_people WHERE id = ?1",
            params![person_id],
            |r| r.get(0),
        ));
        found.map(Option::flatten).map_err(|e| self.err(e))
    }

    /// The badges enrolled at this board, oldest first (person id for each).
    pub fn enrolled_badges(&self) -> Result<Vec<(BadgeHash, String)>, StoreError> {
        let load = || -> rusqlite::Result<Vec<(BadgeHash, String)>> {
            let mut stmt = self
                .conn
                .prepare("SELECT hash, person_id FROM badges ORDER BY enrolled_at")?;
            let rows =
                stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            let mut out = Vec::new();
            for row in rows {
                let (hash, person) = row?;
                if let Some(h) = BadgeHash::parse(&hash) {
                    out.push((h, person));
                }
            }
            Ok(out)
        };
        load().map_err(|e| self.err(e))
    }
}

impl Tx<'_> {
    /// Replaces the stored roster with the aggregator's message (applied now).
    pub fn replace_roster(&self, message: &RosterMessage) -> Result<(), StoreError> {
        let c = self.conn();
        let run = || -> rusqlite::Result<()> {
            c.execute_batch("DELETE FROM roster_people; DELETE FROM roster_badges;")?;
            for (i, p) in message.people.iter().enumerate() {
                c.execute(
                    "INSERT INTO roster_people (position, id, name, role, coach, language) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![i as i64, p.id, p.name, role_key(p.role), p.coach, p.language],
                )?;
                for h in &p.badge_hashes {
                    c.execute(
                        "INSERT OR REPLACE INTO roster_badges (hash, person_id) VALUES (?1, ?2)",
                        params![h.as_str(), p.id],
                    )?;
                }
            }
            c.execute(
                "INSERT OR REPLACE INTO roster (id, issued_at, applied_at) VALUES (1, ?1, ?2)",
                params![ts(message.issued_at), ts(self.now())],
            )?;
            Ok(())
        };
        run().map_err(|e| self.err(e))
    }

    /// A badge enrolled now to `person_id` by `enrolled_by` (replacing an
    /// earlier enrolment of the same badge).
    pub fn enrol_badge(
        &self,
        hash: &BadgeHash,
        person_id: &str,
        enrolled_by: &str,
    ) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT OR REPLACE INTO badges (hash, person_id, enrolled_at, enrolled_by) VALUES (?1, ?2, ?3, ?4)",
                params![hash.as_str(), person_id, ts(self.now()), enrolled_by],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }
}
