//! The kiosk's SQLite file: the huddle's records and the outbox of events.
//!
//! One owner (the kiosk core) holds the [`Store`]. Every user action is one
//! [`Store::transact`] call: the closure writes the records and emits the
//! events through [`Tx::emit`], which gives each the board's next `seq` in
//! the same transaction. Either all of it commits or none of it does, and
//! the screen confirms only after the commit returns.
//!
//! The file runs in WAL mode with `synchronous=FULL`: a committed action
//! survives a power cut. Migrations are numbered in [`MIGRATIONS`] and the
//! schema version lives in `PRAGMA user_version`; a database written by a
//! newer version is refused rather than guessed at.
//!
//! # The file's incarnation
//!
//! The file holds one **incarnation** ([`crate::wire::event`]): a random id made
//! when the file is created (or migrated to schema 4), the first `seq` it
//! covers (`base`), and the chain digest after its last event. Every
//! emitted envelope carries the incarnation, and every outbox row the
//! chain digest after it. [`Store::mark_delivered`] accepts the
//! aggregator's ack only when it names this incarnation and its digest
//! equals the row's: an ack beyond the last `seq`, or one whose digest
//! differs, means that another file wrote under this incarnation (an older
//! copy restored, a clone running beside it). The store then starts a new
//! incarnation at once, from the remembered ack + 1, and rewrites every
//! undelivered row into it (same ids, same `seq`s, new envelope and
//! digests), so that nothing this file wrote counts as delivered unless
//! the aggregator stored exactly it.

use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::wire::event::{chain_next, chain_start, Envelope, Event};
use crate::wire::payload::{Ack, IncarnationAck};
use crate::wire::time::ts;

/// The schema, one migration per entry; entry `i` takes the file from
/// version `i` to `i + 1`. Append only.
pub const MIGRATIONS: &[&str] = &[
    // 1: the huddle's records and the outbox.
    "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
     INSERT INTO counters (name, value) VALUES ('seq', 0);
     CREATE TABLE outbox (
         seq INTEGER PRIMARY KEY,
         id TEXT NOT NULL UNIQUE,
         at TEXT NOT NULL,
         kind TEXT NOT NULL,
         body TEXT NOT NULL,
         delivered_at TEXT
     );
     CREATE TABLE badges (
         hash TEXT PRIMARY KEY,
         person_id TEXT NOT NULL,
         enrolled_at TEXT NOT NULL,
         enrolled_by TEXT NOT NULL
     );
     CREATE TABLE huddles (
         id TEXT PRIMARY KEY,
         due TEXT NOT NULL,
         slot TEXT,
         started_at TEXT NOT NULL,
         started_by TEXT NOT NULL,
         step INTEGER NOT NULL DEFAULT 0,
         closed_at TEXT,
         closed_by TEXT,
         needs_raised INTEGER NOT NULL DEFAULT 0,
         needs_escalated INTEGER NOT NULL DEFAULT 0,
         actions_created INTEGER NOT NULL DEFAULT 0,
         actions_closed INTEGER NOT NULL DEFAULT 0
     );
     CREATE UNIQUE INDEX one_open_huddle ON huddles ((closed_at IS NULL)) WHERE closed_at IS NULL;
     CREATE TABLE attendance (
         huddle_id TEXT NOT NULL REFERENCES huddles(id),
         person_id TEXT NOT NULL,
         arrived_at TEXT NOT NULL,
         late INTEGER NOT NULL,
         via TEXT NOT NULL,
         PRIMARY KEY (huddle_id, person_id)
     );
     CREATE TABLE kpi_reviews (
         huddle_id TEXT NOT NULL REFERENCES huddles(id),
         kpi TEXT NOT NULL,
         hit INTEGER NOT NULL,
         actual TEXT NOT NULL,
         reason TEXT NOT NULL,
         note TEXT NOT NULL,
         action_id TEXT,
         reviewed_at TEXT NOT NULL,
         PRIMARY KEY (huddle_id, kpi)
     );
     CREATE TABLE actions (
         id TEXT PRIMARY KEY,
         huddle_id TEXT NOT NULL REFERENCES huddles(id),
         what TEXT NOT NULL,
         owner TEXT NOT NULL,
         due TEXT NOT NULL,
         status TEXT NOT NULL,
         source TEXT NOT NULL,
         created_at TEXT NOT NULL,
         reviewed_in TEXT
     );
     CREATE TABLE needs (
         id TEXT PRIMARY KEY,
         huddle_id TEXT NOT NULL REFERENCES huddles(id),
         category TEXT NOT NULL,
         text TEXT NOT NULL,
         escalated INTEGER NOT NULL,
         raised_at TEXT NOT NULL,
         closed_at TEXT
     );
     CREATE TABLE experiments (
         id INTEGER PRIMARY KEY AUTOINCREMENT,
         huddle_id TEXT NOT NULL REFERENCES huddles(id),
         obstacle TEXT NOT NULL,
         expectation TEXT NOT NULL,
         next_step TEXT NOT NULL,
         owner TEXT NOT NULL,
         check_date TEXT NOT NULL,
         updated_at TEXT NOT NULL
     );",
    // 2: delivery (the aggregator's ack, remembered) and the roster the
    // aggregator publishes for this board (newest `issued_at` wins).
    "INSERT INTO counters (name, value) VALUES
         ('acked', COALESCE((SELECT MAX(seq) FROM outbox WHERE delivered_at IS NOT NULL), 0));
     CREATE INDEX outbox_delivered ON outbox (delivered_at) WHERE delivered_at IS NOT NULL;
     CREATE TABLE roster (
         id INTEGER PRIMARY KEY CHECK (id = 1),
         issued_at TEXT NOT NULL,
         applied_at TEXT NOT NULL
     );
     CREATE TABLE roster_people (
         position INTEGER PRIMARY KEY,
         id TEXT NOT NULL UNIQUE,
         name TEXT NOT NULL,
         role TEXT NOT NULL,
         coach TEXT
     );
     CREATE TABLE roster_badges (
         hash TEXT PRIMARY KEY,
         person_id TEXT NOT NULL
     );",
    // 3: coaching observations (levels 3 and 4), written only once the
    // learner has confirmed and rated them, with both events.
    "CREATE TABLE observations (
         id TEXT PRIMARY KEY,
         level TEXT NOT NULL,
         observer TEXT NOT NULL,
         learner TEXT NOT NULL,
         huddle_id TEXT,
         self_view TEXT NOT NULL,
         scores TEXT NOT NULL,
         strength TEXT NOT NULL,
         strength_note TEXT NOT NULL,
         focus TEXT NOT NULL,
         focus_note TEXT NOT NULL,
         trigger TEXT NOT NULL,
         reobserve_on TEXT NOT NULL,
         helpfulness INTEGER NOT NULL,
         started_at TEXT NOT NULL,
         acknowledged_at TEXT NOT NULL
     );
     CREATE INDEX observations_learner ON observations (learner, acknowledged_at);",
    // 4: the file's incarnation (one row, made by `ensure_incarnation`
    // after the migrations) and each outbox row's chain digest.
    "CREATE TABLE incarnation (
         id TEXT NOT NULL,
         base INTEGER NOT NULL,
         chain TEXT NOT NULL,
         started_at TEXT NOT NULL,
         reason TEXT NOT NULL
     );
     ALTER TABLE outbox ADD COLUMN chain TEXT;",
];

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite said no.
    #[error("database {path}: {source}")]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The file was written by a newer huddle-board.
    #[error(
        "database {path} has schema version {found}, but this program knows versions up to {known}: \
         it was written by a newer huddle-board. Install that version again, or move the file away \
         to start empty (undelivered events in it would be lost)"
    )]
    TooNew {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: i64,
        /// The newest this build knows.
        known: i64,
    },
    /// The state directory cannot be created.
    #[error("cannot create the state directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Called after a commit that emitted events, with the last `seq`.
pub type CommitHook = Box<dyn Fn(u64) + Send>;

/// An open kiosk database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    board: String,
    clock_synced: fn() -> bool,
    /// Wakes the outbox publisher after a commit (never waits for it).
    on_commit: Option<CommitHook>,
}

/// One undelivered outbox row, for the publisher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// The board's sequence number.
    pub seq: u64,
    /// The event kind (a topic level).
    pub kind: String,
    /// The exact JSON envelope, the MQTT payload.
    pub body: String,
}

/// What [`Store::mark_delivered`] did with an ack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The remembered ack after this one (never lower than before).
    pub acked: u64,
    /// The board's last `seq` at the time.
    pub last_seq: u64,
    /// The ack showed another file writing under this incarnation: a new
    /// one was started and the undelivered rows moved into it.
    pub fork: Option<Fork>,
}

/// A new incarnation started because the aggregator's ack disagreed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fork {
    /// The incarnation the ack named.
    pub old: String,
    /// The new one.
    pub new: String,
    /// Its first `seq` (the remembered ack + 1).
    pub base: u64,
    /// What disagreed (for the log).
    pub why: String,
}

/// The file's current incarnation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incarnation {
    /// Its id (32 hex digits).
    pub id: String,
    /// Its first `seq`.
    pub base: u64,
    /// The chain digest after the board's last `seq`.
    pub chain: String,
    /// When it started.
    pub started_at: String,
    /// Why: `new file`, `migrated`, or what the ack showed.
    pub reason: String,
}

fn read_incarnation(conn: &Connection) -> rusqlite::Result<Incarnation> {
    conn.query_row(
        "SELECT id, base, chain, started_at, reason FROM incarnation",
        [],
        |r| {
            Ok(Incarnation {
                id: r.get(0)?,
                base: r.get::<_, i64>(1)? as u64,
                chain: r.get(2)?,
                started_at: r.get(3)?,
                reason: r.get(4)?,
            })
        },
    )
}

fn counter(conn: &Connection, name: &str) -> rusqlite::Result<u64> {
    conn.query_row("SELECT value FROM counters WHERE name = ?1", [name], |r| {
        r.get::<_, i64>(0)
    })
    .map(|v| v as u64)
}

/// Starts a new incarnation from the remembered ack + 1 and moves every
/// row above the ack into it (inside the caller's transaction).
fn start_incarnation(
    conn: &Connection,
    now: DateTime<Utc>,
    reason: &str,
) -> rusqlite::Result<Incarnation> {
    let acked = counter(conn, "acked")?;
    let id = uuid::Uuid::now_v7().simple().to_string();
    let base = acked + 1;
    let mut chain = chain_start(&id);
    let rows: Vec<(i64, String)> = conn
        .prepare("SELECT seq, body FROM outbox WHERE seq > ?1 ORDER BY seq")?
        .query_map([acked as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut update = conn.prepare("UPDATE outbox SET body = ?2, chain = ?3 WHERE seq = ?1")?;
    for (seq, body) in rows {
        let env: Envelope = serde_json::from_str(&body).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Text, Box::new(e))
        })?;
        let env = env.in_incarnation(&id, base);
        chain = chain_next(&chain, &env.id);
        update.execute(params![seq, env.to_json(), chain])?;
    }
    conn.execute("DELETE FROM incarnation", [])?;
    conn.execute(
        "INSERT INTO incarnation (id, base, chain, started_at, reason) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, base as i64, chain, ts(now), reason],
    )?;
    read_incarnation(conn)
}

impl Store {
    /// Opens (creating) the file, sets WAL and `synchronous=FULL`, and
    /// migrates it. Refuses a file from a newer version.
    pub fn open(path: &Path, board: &str) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
                path: dir.to_owned(),
                source,
            })?;
        }
        let sql = |source| StoreError::Sqlite {
            path: path.to_owned(),
            source,
        };
        let mut conn = Connection::open(path).map_err(sql)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sql)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sql)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(sql)?;
        migrate(&mut conn, path)?;
        Ok(Store {
            conn,
            path: path.to_owned(),
            board: board.to_owned(),
            clock_synced: crate::wire::event::clock_synced,
            on_commit: None,
        })
    }

    /// Sets the hook called after each commit that emitted events (the
    /// kiosk wakes its outbox publisher with it). It must not block.
    pub fn set_commit_hook(&mut self, hook: CommitHook) {
        self.on_commit = Some(hook);
    }

    /// Replaces the clock-synchronisation probe (tests).
    pub fn set_clock_probe(&mut self, probe: fn() -> bool) {
        self.clock_synced = probe;
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Runs one user action as one transaction at `now`. The closure writes
    /// records with [`Tx::conn`] and events with [`Tx::emit`]; an error
    /// from it rolls everything back. Returns the closure's value and the
    /// envelopes that were committed.
    pub fn transact<T, E>(
        &mut self,
        now: DateTime<Utc>,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, E>,
    ) -> Result<(T, Vec<Envelope>), E>
    where
        E: From<StoreError>,
    {
        let synced = (self.clock_synced)();
        let path = self.path.clone();
        let board = self.board.clone();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|source| StoreError::Sqlite {
                path: path.clone(),
                source,
            })?;
        let mut t = Tx {
            tx,
            board,
            now,
            synced,
            emitted: Vec::new(),
            path: path.clone(),
        };
        let value = f(&mut t)?;
        let Tx { tx, emitted, .. } = t;
        tx.commit()
            .map_err(|source| StoreError::Sqlite { path, source })?;
        if let (Some(hook), Some(last)) = (&self.on_commit, emitted.last()) {
            hook(last.seq);
        }
        Ok((value, emitted))
    }

    /// The board's events with `seq > since`, oldest first, exactly as they
    /// go on the wire.
    pub fn events_since(&self, since: u64) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT body FROM outbox WHERE seq > ?1 ORDER BY seq")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([since as i64], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<_>, _>>();
        rows.map_err(|e| self.err(e))
    }

    /// The highest `seq` assigned so far (0 before the first event).
    pub fn last_seq(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row("SELECT value FROM counters WHERE name = 'seq'", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|v| v as u64)
            .map_err(|e| self.err(e))
    }

    /// Events not yet delivered.
    pub fn undelivered(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|v| v as u64)
            .map_err(|e| self.err(e))
    }

    /// The aggregator's last ack that this board remembers (0 before any).
    pub fn acked(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row("SELECT value FROM counters WHERE name = 'acked'", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|v| v as u64)
            .map_err(|e| self.err(e))
    }

    /// Outbox rows with `from <= seq <= through`, in seq order.
    pub fn outbox_rows(&self, from: u64, through: u64) -> Result<Vec<OutboxRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, kind, body FROM outbox WHERE seq >= ?1 AND seq <= ?2 ORDER BY seq",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([from as i64, through as i64], |r| {
                Ok(OutboxRow {
                    seq: r.get::<_, i64>(0)? as u64,
                    kind: r.get(1)?,
                    body: r.get(2)?,
                })
            })
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<_>, _>>();
        rows.map_err(|e| self.err(e))
    }

    /// The file's current incarnation.
    pub fn incarnation(&self) -> Result<Incarnation, StoreError> {
        read_incarnation(&self.conn).map_err(|e| self.err(e))
    }

    /// The ack entry that acknowledges exactly this file's events of its
    /// current incarnation up to `seq` (`None` when that row is not in the
    /// outbox, or is not of the current incarnation). For tests and tools
    /// that stand in for the aggregator.
    pub fn ack_for(&self, seq: u64) -> Result<Option<IncarnationAck>, StoreError> {
        let inc = self.incarnation()?;
        let chain: Option<String> = self
            .conn
            .query_row(
                "SELECT chain FROM outbox WHERE seq = ?1",
                [seq as i64],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?
            .flatten();
        Ok(chain
            .filter(|_| seq >= inc.base)
            .map(|chain| IncarnationAck {
                incarnation: inc.id,
                seq,
                chain,
            }))
    }

    /// Applies the aggregator's ack in one short transaction. Only the
    /// entry of this file's incarnation counts, and only when this file
    /// wrote exactly what it covers (see the module doc): then rows up to
    /// it get `delivered_at = now` and the ack is remembered (counter
    /// `acked`, never lowered). When the entry is beyond the last `seq`,
    /// or its chain digest differs from the row's, a new incarnation
    /// starts ([`Delivered::fork`]) and nothing is marked.
    pub fn mark_delivered(
        &mut self,
        ack: &Ack,
        now: DateTime<Utc>,
    ) -> Result<Delivered, StoreError> {
        let path = self.path.clone();
        let sql = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql)?;
        let last_seq = counter(&tx, "seq").map_err(sql)?;
        let before = counter(&tx, "acked").map_err(sql)?;
        let current = read_incarnation(&tx).map_err(sql)?;
        let Some(entry) = ack.incarnation(&current.id) else {
            return Ok(Delivered {
                acked: before,
                last_seq,
                fork: None,
            });
        };
        let why = if entry.seq > last_seq {
            Some(format!(
                "the aggregator holds seq {} of this incarnation, this file ends at {last_seq}",
                entry.seq
            ))
        } else if entry.seq > before {
            let mine: Option<String> = tx
                .query_row(
                    "SELECT chain FROM outbox WHERE seq = ?1",
                    [entry.seq as i64],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql)?
                .flatten();
            (mine.as_deref() != Some(entry.chain.as_str())).then(|| {
                format!(
                    "the aggregator's events up to seq {} are not this file's",
                    entry.seq
                )
            })
        } else {
            None
        };
        if let Some(why) = why {
            let new = start_incarnation(&tx, now, &why).map_err(sql)?;
            tx.commit().map_err(sql)?;
            return Ok(Delivered {
                acked: before,
                last_seq,
                fork: Some(Fork {
                    old: current.id,
                    new: new.id,
                    base: new.base,
                    why,
                }),
            });
        }
        let acked = entry.seq.max(before);
        if acked > before {
            tx.execute(
                "UPDATE outbox SET delivered_at = ?2 WHERE seq <= ?1 AND delivered_at IS NULL",
                params![acked as i64, ts(now)],
            )
            .map_err(sql)?;
            tx.execute(
                "UPDATE counters SET value = ?1 WHERE name = 'acked'",
                [acked as i64],
            )
            .map_err(sql)?;
        }
        tx.commit().map_err(sql)?;
        Ok(Delivered {
            acked,
            last_seq,
            fork: None,
        })
    }

    /// Deletes events delivered before `before`; returns how many. `seq`
    /// lives in the counter, so a pruned number is never reused.
    pub fn prune_delivered(&self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        self.conn
            .execute(
                "DELETE FROM outbox WHERE delivered_at IS NOT NULL AND delivered_at < ?1",
                [ts(before)],
            )
            .map_err(|e| self.err(e))
    }

    /// Runs a read-only query closure on the connection (the kiosk core's
    /// loaders live beside the records they read, in `app`).
    pub fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        f(&self.conn).map_err(|e| self.err(e))
    }
}

/// One open transaction of [`Store::transact`].
pub struct Tx<'a> {
    tx: Transaction<'a>,
    board: String,
    now: DateTime<Utc>,
    synced: bool,
    emitted: Vec<Envelope>,
    path: PathBuf,
}

impl Tx<'_> {
    /// The connection inside the transaction.
    pub fn conn(&self) -> &Connection {
        &self.tx
    }

    /// The action's time.
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// Wraps a SQLite error with the file's name.
    pub fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Appends an event to the outbox with the board's next `seq`.
    pub fn emit(&mut self, event: &Event) -> Result<u64, StoreError> {
        let seq: i64 = self
            .tx
            .query_row(
                "UPDATE counters SET value = value + 1 WHERE name = 'seq' RETURNING value",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        let inc = read_incarnation(&self.tx).map_err(|e| self.err(e))?;
        let env = Envelope::new(&self.board, seq as u64, self.now, self.synced, event)
            .in_incarnation(&inc.id, inc.base);
        let chain = chain_next(&inc.chain, &env.id);
        self.tx
            .execute(
                "INSERT INTO outbox (seq, id, at, kind, body, chain) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![seq, env.id.to_string(), ts(env.at), env.kind, env.to_json(), chain],
            )
            .map_err(|e| self.err(e))?;
        self.tx
            .execute("UPDATE incarnation SET chain = ?1", [&chain])
            .map_err(|e| self.err(e))?;
        self.emitted.push(env);
        Ok(seq as u64)
    }
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let sql = |source| StoreError::Sqlite {
        path: path.to_owned(),
        source,
    };
    let known = MIGRATIONS.len() as i64;
    let found: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(sql)?;
    if found > known {
        return Err(StoreError::TooNew {
            path: path.to_owned(),
            found,
            known,
        });
    }
    for (i, migration) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        // Design: IMMEDIATE, and the version read again inside, so that two
        // connections opening the file at once (the core and the outbox
        // publisher) never run the same migration twice.
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql)?;
        let now: i64 = tx
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(sql)?;
        if now > i as i64 {
            continue;
        }
        tx.execute_batch(migration).map_err(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)
            .map_err(sql)?;
        tx.commit().map_err(sql)?;
        tracing::info!(path = %path.display(), version = i + 1, "database migrated");
    }
    ensure_incarnation(conn, found == 0).map_err(sql)
}

/// Gives a file without an incarnation its first one: a new file, or one
/// made before incarnations (its undelivered events move into it).
fn ensure_incarnation(conn: &mut Connection, created: bool) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let have: i64 = tx.query_row("SELECT COUNT(*) FROM incarnation", [], |r| r.get(0))?;
    if have == 0 {
        let reason = if created { "new file" } else { "migrated" };
        let inc = start_incarnation(&tx, Utc::now(), reason)?;
        tracing::info!(incarnation = %inc.id, base = inc.base, reason, "the board's database file has a new incarnation");
    }
    tx.commit()
}

/// Parses a stored local date.
pub fn parse_date(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

/// A row helper: an optional value from a query returning at most one row.
pub fn optional<T>(r: rusqlite::Result<T>) -> rusqlite::Result<Option<T>> {
    r.optional()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::event::{NeedRef, UnknownBadge};

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-28T06:45:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn closed(n: &str) -> Event {
        Event::NeedClosed(NeedRef {
            need_id: n.into(),
            by: None,
        })
    }

    #[test]
    fn seq_is_gap_free_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.db");
        {
            let mut s = Store::open(&path, "demo").unwrap();
            for i in 0..3 {
                let (_, envs) = s
                    .transact(t0(), |tx| {
                        tx.emit(&closed(&i.to_string()))
                            .map_err(anyhow::Error::from)
                    })
                    .unwrap();
                assert_eq!(envs[0].seq, i + 1);
            }
        }
        let mut s = Store::open(&path, "demo").unwrap();
        assert_eq!(s.last_seq().unwrap(), 3);
        s.transact(t0(), |tx| {
            tx.emit(&closed("a"))?;
            tx.emit(&closed("b"))
        })
        .map_err(|e: StoreError| e)
        .unwrap();
        let seqs: Vec<u64> = s
            .events_since(0)
            .unwrap()
            .iter()
            .map(|b| serde_json::from_str::<Envelope>(b).unwrap().seq)
            .collect();
        assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
        assert_eq!(s.events_since(4).unwrap().len(), 1);
        assert_eq!(s.undelivered().unwrap(), 5);
    }

    #[test]
    fn a_failed_action_leaves_neither_record_nor_event() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("k.db"), "demo").unwrap();
        let r: Result<((), _), anyhow::Error> = s.transact(t0(), |tx| {
            tx.conn()
                .execute(
                    "INSERT INTO badges (hash, person_id, enrolled_at, enrolled_by) VALUES ('h', 'p1', 'x', 'p2')",
                    [],
                )
                .map_err(|e| tx.err(e))?;
            tx.emit(&Event::UnknownBadge(UnknownBadge {
                badge_hash: crate::domain::hash_badge(b"k", "1"),
                huddle_id: None,
            }))?;
            // The record that follows violates a constraint: all must go.
            tx.conn()
                .execute("INSERT INTO attendance (huddle_id, person_id, arrived_at, late, via) VALUES ('nope', 'p', 'x', 0, 'badge')", [])
                .map_err(|e| tx.err(e))?;
            Ok(())
        });
        assert!(r.is_err());
        assert_eq!(s.last_seq().unwrap(), 0);
        assert!(s.events_since(0).unwrap().is_empty());
        let badges: i64 = s
            .read(|c| c.query_row("SELECT COUNT(*) FROM badges", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(badges, 0);
        // And the next action gets seq 1.
        let (_, envs) = s
            .transact(t0(), |tx| {
                tx.emit(&closed("x")).map_err(anyhow::Error::from)
            })
            .unwrap();
        assert_eq!(envs[0].seq, 1);
    }

    #[test]
    fn acks_mark_delivered_durably_and_pruning_keeps_seq() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.db");
        let mut s = Store::open(&path, "demo").unwrap();
        for i in 0..4 {
            s.transact(t0(), |tx| tx.emit(&closed(&i.to_string())))
                .map_err(|e: StoreError| e)
                .unwrap();
        }
        let d = s.mark_delivered(&ack(&s, 2), t0()).unwrap();
        assert_eq!((d.acked, d.last_seq, d.fork), (2, 4, None));
        assert_eq!(s.undelivered().unwrap(), 2);
        // Lower acks never lower it.
        assert_eq!(s.mark_delivered(&ack(&s, 1), t0()).unwrap().acked, 2);
        assert_eq!(s.mark_delivered(&ack(&s, 4), t0()).unwrap().acked, 4);
        assert_eq!(s.undelivered().unwrap(), 0);
        assert_eq!(s.outbox_rows(3, 4).unwrap().len(), 2);
        // Pruned rows leave the counter alone.
        assert_eq!(s.prune_delivered(t0()).unwrap(), 0);
        assert_eq!(
            s.prune_delivered(t0() + chrono::Duration::seconds(1))
                .unwrap(),
            4
        );
        drop(s);
        let mut s = Store::open(&path, "demo").unwrap();
        assert_eq!(s.acked().unwrap(), 4);
        let (_, envs) = s
            .transact(t0(), |tx| {
                tx.emit(&closed("x")).map_err(anyhow::Error::from)
            })
            .unwrap();
        assert_eq!(envs[0].seq, 5);
    }

    fn ack(s: &Store, seq: u64) -> Ack {
        Ack {
            board: "demo".into(),
            seq: 0,
            at: t0(),
            incarnations: vec![s.ack_for(seq).unwrap().expect("a row of this incarnation")],
        }
    }

    fn emit_n(s: &mut Store, n: usize) {
        for i in 0..n {
            s.transact(t0(), |tx| tx.emit(&closed(&i.to_string())))
                .map_err(|e: StoreError| e)
                .unwrap();
        }
    }

    #[test]
    fn a_new_file_has_an_incarnation_and_its_envelopes_carry_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("k.db"), "demo").unwrap();
        let inc = s.incarnation().unwrap();
        assert_eq!((inc.base, inc.reason.as_str()), (1, "new file"));
        assert_eq!(inc.id.len(), 32);
        emit_n(&mut s, 2);
        let rows = s.outbox_rows(1, 2).unwrap();
        for row in &rows {
            let env: Envelope = serde_json::from_str(&row.body).unwrap();
            assert_eq!(
                (env.schema, env.incarnation.as_str(), env.base),
                (2, inc.id.as_str(), 1)
            );
        }
        // Another file for the same board is another incarnation.
        let other = Store::open(&dir.path().join("k2.db"), "demo").unwrap();
        assert_ne!(other.incarnation().unwrap().id, inc.id);
    }

    #[test]
    fn an_ack_that_is_not_this_files_starts_a_new_incarnation_and_marks_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.db");
        let mut s = Store::open(&path, "demo").unwrap();
        emit_n(&mut s, 4);
        s.mark_delivered(&ack(&s, 2), t0()).unwrap();
        let first = s.incarnation().unwrap();

        // Another incarnation's entry: ignored.
        let mut other = ack(&s, 3);
        other.incarnations[0].incarnation = "someone-else".into();
        let d = s.mark_delivered(&other, t0()).unwrap();
        assert_eq!((d.acked, d.fork.is_none()), (2, true));

        // Beyond the last seq (an older copy of the file): a fork.
        let mut beyond = ack(&s, 4);
        beyond.incarnations[0].seq = 9;
        let d = s.mark_delivered(&beyond, t0()).unwrap();
        let fork = d.fork.expect("a fork");
        assert_eq!(
            (d.acked, fork.old.as_str(), fork.base),
            (2, first.id.as_str(), 3)
        );
        assert_eq!(s.undelivered().unwrap(), 2, "nothing marked");
        let second = s.incarnation().unwrap();
        assert_eq!((second.id.as_str(), second.base), (fork.new.as_str(), 3));
        // The undelivered rows moved into it, ids and seqs kept.
        for row in s.outbox_rows(3, 4).unwrap() {
            let env: Envelope = serde_json::from_str(&row.body).unwrap();
            assert_eq!(
                (env.incarnation.as_str(), env.base),
                (second.id.as_str(), 3)
            );
        }
        // A digest that differs (a clone wrote other events): a fork again.
        let mut forged = ack(&s, 3);
        forged.incarnations[0].chain = "0".repeat(32);
        assert!(s.mark_delivered(&forged, t0()).unwrap().fork.is_some());
        // New events go on in the newest incarnation, and its own ack counts.
        emit_n(&mut s, 1);
        let d = s.mark_delivered(&ack(&s, 5), t0()).unwrap();
        assert_eq!((d.acked, d.fork), (5, None));
        assert_eq!(s.undelivered().unwrap(), 0);
        let third = s.incarnation().unwrap();
        assert_ne!(third.id, second.id);
        drop(s);
        let s = Store::open(&path, "demo").unwrap();
        assert_eq!(s.incarnation().unwrap(), third, "kept across reopen");
    }

    #[test]
    fn wal_and_full_sync_are_set() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("k.db"), "demo").unwrap();
        let mode: String = s
            .read(|c| c.pragma_query_value(None, "journal_mode", |r| r.get(0)))
            .unwrap();
        let sync: i64 = s
            .read(|c| c.pragma_query_value(None, "synchronous", |r| r.get(0)))
            .unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(sync, 2, "synchronous=FULL");
    }

    #[test]
    fn a_newer_database_is_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.db");
        drop(Store::open(&path, "demo").unwrap());
        let c = Connection::open(&path).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
        drop(c);
        let e = Store::open(&path, "demo").err().unwrap();
        let msg = e.to_string();
        assert!(
            msg.contains("schema version 99") && msg.contains("newer"),
            "{msg}"
        );
        assert!(msg.contains(&path.display().to_string()), "{msg}");
    }
}
