//! The board's SQLite file, and its one owner: every statement the board
//! runs is here, as a named function, in files by topic.
//!
//! - `mod.rs` (this file): opening the file, the schema and its
//!   [`MIGRATIONS`], and [`Store::transact`], the one way to write.
//! - `outbox.rs`: the outbox and the file's incarnation ([`Tx::emit`],
//!   the publisher's reads, acks).
//! - `huddle.rs`: huddles, attendance and taps.
//! - `actions.rs`: actions and KPI reviews.
//! - `needs.rs`: resource needs and the experiment.
//! - `roster.rs`: the aggregator's roster and badges enrolled here.
//! - `observations.rs`: coaching observations and the focus point.
//!
//! One owner (the kiosk core, [`crate::kiosk::app`]) holds the [`Store`];
//! the core runs no SQL itself. Every user action is one
//! [`Store::transact`] call: the closure writes the records through the
//! named methods of [`Tx`] and emits the events through [`Tx::emit`],
//! which gives each the board's next `seq` in the same transaction. Either
//! all of it commits or none of it does, and the screen confirms only
//! after the commit returns.
//!
//! The file runs in WAL mode with `synchronous=FULL`: a committed action
//! survives a power cut. Migrations are numbered in [`MIGRATIONS`] and the
//! schema version lives in `PRAGMA user_version`; a database written by a
//! newer version is refused rather than guessed at. The migrations are
//! append only: a file made by any earlier release opens and migrates.
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
//!
//! The remembered ack goes down only when the site's file went back (a
//! backup restored): an ack that holds less than the remembered one and
//! is newer than the ack that moved it (`at`, kept as counter
//! `acked_at`). The rows above it are sent again; those already pruned
//! cannot be, and the rows still held then start a new incarnation (see
//! [`Store::mark_delivered`]).

use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction};

use crate::wire::event::Envelope;

mod actions;
mod huddle;
mod needs;
mod observations;
mod outbox;
mod roster;

pub use actions::{ActionRow, ActionState, KpiReviewRow};
pub use needs::{ExperimentRow, NeedRow};
pub use observations::FocusRecord;
pub use outbox::{inspect, Delivered, Fork, Incarnation, Inspection, OutboxRow};
pub use roster::AppliedRoster;

use outbox::start_incarnation;

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
    // 5: a roster person's own language.
    "ALTER TABLE roster_people ADD COLUMN language TEXT;",
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
    /// records with the named methods of [`Tx`] and events with
    /// [`Tx::emit`]; an error from it rolls everything back. Returns the
    /// closure's value and the envelopes that were committed.
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
        // One line per committed event: what a power cut must not lose
        // (the Pi rig compares these lines with the file after each cut).
        for e in &emitted {
            tracing::info!(seq = e.seq, id = %e.id, kind = %e.kind, "committed");
        }
        if let (Some(hook), Some(last)) = (&self.on_commit, emitted.last()) {
            hook(last.seq);
        }
        Ok((value, emitted))
    }

    /// Runs a read-only query closure on the connection, for tests and
    /// tools that look at the file directly (the kiosk core uses the named
    /// reads of this module instead).
    pub fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        f(&self.conn).map_err(|e| self.err(e))
    }
}

/// One open transaction of [`Store::transact`]. Its methods (in this
/// folder's files, by topic) are the statements an act may run; what they
/// write commits or rolls back together with the act's events.
pub struct Tx<'a> {
    tx: Transaction<'a>,
    board: String,
    now: DateTime<Utc>,
    synced: bool,
    emitted: Vec<Envelope>,
    path: PathBuf,
}

impl Tx<'_> {
    /// The connection inside the transaction (the store's own statements).
    pub(in crate::kiosk::store) fn conn(&self) -> &Connection {
        &self.tx
    }

    /// The action's time.
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// Wraps a SQLite error with the file's name.
    pub(in crate::kiosk::store) fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
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
fn optional<T>(r: rusqlite::Result<T>) -> rusqlite::Result<Option<T>> {
    r.optional()
}

#[cfg(test)]
mod tests;
