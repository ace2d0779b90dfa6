//! Every migration of the site file, in order, and what runs them.
//!
//! [`MIGRATIONS`] is the whole schema: entry `i` takes the file from
//! version `i` to `i + 1`, and the version lives in `PRAGMA user_version`.
//! Each step runs in a transaction of its own with the new version, so a
//! file is at one version or the next, never between. The indexes the
//! status and coaching readers rely on are made here too (they name them
//! with `INDEXED BY`): this is the one place that says what the file holds.
//! Append only: a shipped entry never changes, so every file ever written
//! opens and migrates the same way.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension};

use super::{open_conn, StoreError};

/// The schema, one migration per entry; entry `i` takes the file from
/// version `i` to `i + 1`. Append only.
pub const MIGRATIONS: &[&str] = &[
    // 1: events, boards, integrity alerts, counters.
    "CREATE TABLE events (
         board TEXT NOT NULL,
         seq INTEGER NOT NULL,
         id TEXT NOT NULL,
         at TEXT NOT NULL,
         clock_synced INTEGER NOT NULL,
         kind TEXT NOT NULL,
         data TEXT NOT NULL,
         received_at TEXT NOT NULL,
         PRIMARY KEY (board, seq)
     ) WITHOUT ROWID;
     CREATE TABLE boards (
         board TEXT PRIMARY KEY,
         area TEXT NOT NULL,
         acked INTEGER NOT NULL DEFAULT 0,
         online INTEGER NOT NULL DEFAULT 0,
         last_seq INTEGER NOT NULL DEFAULT 0,
         last_event_at TEXT,
         huddle TEXT NOT NULL DEFAULT 'not_started',
         huddle_seq INTEGER NOT NULL DEFAULT 0
     );
     CREATE TABLE integrity_alerts (
         id INTEGER PRIMARY KEY AUTOINCREMENT,
         board TEXT NOT NULL,
         seq INTEGER NOT NULL,
         stored_id TEXT NOT NULL,
         received_id TEXT NOT NULL,
         received_data TEXT NOT NULL,
         detected_at TEXT NOT NULL
     );
     CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);",
    // 2: the coaching loop's partial index on observation events, and its start.
    COACHING,
    // 3: the live status's partial index on huddle start/close and need events.
    LIVE_STATUS,
    // 4: events in arrival order; the partial indexes without `IN` lists.
    EVENTS_IN_ARRIVAL_ORDER,
    // 5: board incarnations.
    INCARNATIONS,
    // 6: the alert log (the dashboard's recent alerts across restarts).
    ALERT_LOG,
];

/// Migration 2, for the coaching loop: a *partial* index on `events.kind`
/// that holds only the two observation kinds (reading them costs a few
/// index pages however many events the file holds, and inserting any other
/// event costs the index nothing but the test of its `WHERE`), and the
/// coaching start (`coaching_meta.since`: the moment this step ran, the
/// first start of an aggregator with coaching), from which a person never
/// observed gets one window of grace. Migration 4 rewrites the index's
/// `WHERE` with `OR`.
pub const COACHING: &str = "CREATE INDEX events_observations ON events (kind)
         WHERE kind IN ('observation.recorded', 'observation.acknowledged');
     CREATE TABLE coaching_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
     INSERT INTO coaching_meta (key, value)
         VALUES ('since', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));";

/// Migration 3, for the live status: a *partial* index holding only the
/// huddle start/close and need events, so the status thread's start reads
/// a few index pages rather than scanning years of taps, and
/// `boards.first_seen` (when the writer first stored anything of the
/// board: slots before it count for nothing). Migration 4 rewrites the
/// index's `WHERE` with `OR`.
pub const LIVE_STATUS: &str = "CREATE INDEX events_status ON events (kind)
     WHERE kind IN ('huddle.started', 'huddle.closed', 'need.raised', 'need.escalated', 'need.closed');
     ALTER TABLE boards ADD COLUMN first_seen TEXT;";

/// Migration 4, for ingest speed (measured with `cargo bench --bench
/// writer`: 12.7 µs of SQLite per event before, 5.3 after, with the
/// in-memory board rows):
///
/// - `events` becomes a rowid table with a unique `(board, seq)` index.
///   Events arrive interleaved from hundreds of boards; clustered by
///   `(board, seq)` (`WITHOUT ROWID`) every insert landed in the middle of
///   the tree, at each board's own tail page, with a page split every few
///   rows of about 350 bytes. Now rows are appended at the tree's end and
///   only the small index entries go to each board's place.
/// - The partial indexes name their kinds with `OR`, not `IN (...)`:
///   SQLite evaluates a partial index's `IN` list on every insert by
///   building a temporary b-tree of the list, which cost 3 µs an event
///   for two indexes; `OR`ed equalities cost nothing worth measuring. The
///   queries repeat the predicates word for word (SQLite uses a partial
///   index only for a query whose `WHERE` holds its predicate), and name
///   the index (`INDEXED BY`), so a predicate that drifts is an error at
///   the first query, not a silent table scan.
const EVENTS_IN_ARRIVAL_ORDER: &str = "CREATE TABLE events_v4 (
         board TEXT NOT NULL,
         seq INTEGER NOT NULL,
         id TEXT NOT NULL,
         at TEXT NOT NULL,
         clock_synced INTEGER NOT NULL,
         kind TEXT NOT NULL,
         data TEXT NOT NULL,
         received_at TEXT NOT NULL
     );
     INSERT INTO events_v4 (board, seq, id, at, clock_synced, kind, data, received_at)
         SELECT board, seq, id, at, clock_synced, kind, data, received_at FROM events
         ORDER BY received_at, board, seq;
     DROP TABLE events;
     ALTER TABLE events_v4 RENAME TO events;
     CREATE UNIQUE INDEX events_key ON events (board, seq);
     CREATE INDEX events_status ON events (kind)
         WHERE kind = 'huddle.started' OR kind = 'huddle.closed' OR kind = 'need.raised'
            OR kind = 'need.escalated' OR kind = 'need.closed';
     CREATE INDEX events_observations ON events (kind)
         WHERE kind = 'observation.recorded' OR kind = 'observation.acknowledged';";

/// Migration 5: events keyed by `(board, incarnation, seq)`; one row per
/// incarnation of a board with its ack. Existing events and acks become
/// the legacy incarnation `""`. (Adding a column with a constant default
/// rewrites nothing; the new unique index is built once.)
///
/// Design: the board's current incarnation, its ack and chain live in the
/// `boards` row (`current`, `acked`, `chain`), which every batch that
/// touches the board writes anyway; its `incarnations` row is written
/// when it appears and when it stops being current. At plant load (one
/// event per commit) a second row per commit cost 40 µs of writer CPU per
/// event (`cargo bench --bench latency`, A/B).
const INCARNATIONS: &str = "ALTER TABLE events ADD COLUMN incarnation TEXT NOT NULL DEFAULT '';
     DROP INDEX events_key;
     CREATE UNIQUE INDEX events_key ON events (board, incarnation, seq);
     ALTER TABLE integrity_alerts ADD COLUMN incarnation TEXT NOT NULL DEFAULT '';
     CREATE TABLE incarnations (
         board TEXT NOT NULL,
         incarnation TEXT NOT NULL,
         base INTEGER NOT NULL,
         acked INTEGER NOT NULL,
         chain TEXT NOT NULL,
         first_seen TEXT NOT NULL,
         last_stored_at TEXT NOT NULL,
         PRIMARY KEY (board, incarnation)
     );
     INSERT INTO incarnations (board, incarnation, base, acked, chain, first_seen, last_stored_at)
         SELECT board, '', 1, acked, '', coalesce(first_seen, ''), coalesce(last_event_at, '')
         FROM boards;
     ALTER TABLE boards ADD COLUMN current TEXT NOT NULL DEFAULT '';
     ALTER TABLE boards ADD COLUMN chain TEXT NOT NULL DEFAULT '';";

/// Every alert the aggregator listed, in the order listed: the topic and
/// the payload as published ([`super::AlertLog`]).
const ALERT_LOG: &str = "CREATE TABLE alert_log (
         id INTEGER PRIMARY KEY,
         logged_at TEXT NOT NULL,
         topic TEXT NOT NULL,
         payload TEXT NOT NULL
     );";

pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    migrate_to(conn, path, MIGRATIONS.len())
}

/// Runs the migrations after the file's version up to version `to`.
pub(super) fn migrate_to(conn: &mut Connection, path: &Path, to: usize) -> Result<(), StoreError> {
    let sql = |source| StoreError::Sqlite {
        path: path.to_owned(),
        source,
    };
    let found: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(sql)?;
    let known = MIGRATIONS.len() as i64;
    if found > known {
        return Err(StoreError::TooNew {
            path: path.to_owned(),
            found,
            known,
        });
    }
    for (i, step) in MIGRATIONS[..to].iter().enumerate().skip(found as usize) {
        let tx = conn.transaction().map_err(sql)?;
        tx.execute_batch(step).map_err(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)
            .map_err(sql)?;
        tx.commit().map_err(sql)?;
    }
    Ok(())
}

/// Reads `user_version` without migrating (tests).
pub fn schema_version(path: &Path) -> Result<i64, StoreError> {
    let conn = open_conn(path)?;
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .optional()
        .map(|v| v.unwrap_or(0))
        .map_err(|source| StoreError::Sqlite {
            path: path.to_owned(),
            source,
        })
}
