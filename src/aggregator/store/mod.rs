//! The site file: the aggregator's SQLite database. This module owns it
//! whole: its schema ([`migrations`], every migration of the file in
//! order), every write, and the writer's memory of what is committed. The
//! file holds every board's events, keyed by `(board, incarnation, seq)`,
//! and per incarnation of a board the contiguous high-water mark that the
//! ack publishes, with the integrity alerts and the counters.
//!
//! Who calls it: the ingest writer thread ([`crate::aggregator::ingest`])
//! holds the one [`Store`] and records each group commit with
//! [`Store::apply`]; the `export` command reads the file back
//! ([`Store::open_existing`], [`Store::for_each_event`]); the status and
//! coaching threads read it on connections of their own
//! ([`open_read_only`]) and never write. The one other writer is the
//! [`AlertLog`] (the alerts the dashboard listed, on a connection of its
//! own). This module imports nothing of theirs.
//!
//! The guarantees:
//! - **One transaction per group commit.** [`Store::apply`] records the
//!   events, rejections (counted) and online flags of a batch in one
//!   transaction; the boards and counters in memory follow only once it
//!   committed. What it returns (acks, statuses, alerts) is committed, so
//!   the ingest acknowledges a message to the broker and publishes an ack
//!   only after the transaction that holds it.
//! - **Idempotent.** A second message with the same `(board, incarnation,
//!   seq)` and the same `id` and `data` is a duplicate; with a different
//!   `id` or `data` it is an integrity alert (kept in `integrity_alerts`);
//!   the first one stored is always kept.
//! - **The ack never passes a gap.** The ack of a board's incarnation
//!   ([`crate::wire::event`]) is the highest `seq` with every `seq` from
//!   its `base` up to it stored, with the chain digest of those events'
//!   ids. It lives in `incarnations.acked` (and `chain`) and moves in the
//!   same transaction as the events, so it survives restarts. The legacy
//!   incarnation `""` (schema 1 boards) has base 1 and no digest.
//! - **Incarnations.** A board's current incarnation is the one that
//!   appeared last: its events drive the board's huddle state and newest
//!   event. A new incarnation of a board that had one is a replaced file
//!   (reflashed, spare, restored copy); the board's status says since
//!   when. An older incarnation that stores new events after a newer one
//!   appeared means two boards claim one id: a [`TwinAlert`] (once per
//!   pair and run).
//! - **Durable and versioned.** The file runs in WAL mode with
//!   `synchronous=FULL`. Migrations are numbered in [`MIGRATIONS`] with the
//!   version in `PRAGMA user_version`; a file written by a newer version is
//!   refused.
//!
//! The files: [`migrations`] (the schema), `batch` (one group commit:
//! [`Input`] in, [`BatchOutcome`] out), `boards` (each board as committed:
//! incarnations, acks, status), `checkpoint` (the [`Checkpointer`] thread),
//! `export` (the events read back), `alerts` (the [`AlertLog`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use rusqlite::{Connection, OpenFlags};

mod alerts;
mod batch;
mod boards;
mod checkpoint;
mod export;
pub mod migrations;
#[cfg(test)]
mod tests;

pub use alerts::{AlertLog, LOG_KEPT};
pub use batch::{BatchOutcome, BoardOutcome, Input, IntegrityAlert, Refused, Stats, TwinAlert};
pub use boards::{MAX_INCARNATIONS, MAX_SEQ_AHEAD};
pub use checkpoint::{Checkpointer, CHECKPOINT_EVERY};
pub use export::EventRow;
pub use migrations::{schema_version, MIGRATIONS};

use batch::read_stats;
use boards::{read_boards, BoardRow};
use migrations::migrate;

/// The time of every group commit in this process ([`Store::apply`],
/// transaction begin to commit), for `/metrics`: from 0.5 ms to 4 s in
/// doubling buckets.
pub fn commit_seconds() -> &'static Histogram {
    static COMMITS: OnceLock<Histogram> = OnceLock::new();
    COMMITS.get_or_init(|| Histogram::new(exponential_buckets(0.0005, 2.0, 14)))
}

/// Errors of the aggregator's store.
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
         (the boards re-send what they still hold from the last ack)"
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
    /// The checkpointer thread cannot be started.
    #[error("cannot start the WAL checkpoint thread: {0}")]
    Thread(std::io::Error),
    /// The file does not exist (export, which never creates it).
    #[error("no database at {0} yet: the aggregator has stored nothing")]
    Missing(PathBuf),
}

/// An open aggregator database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// Every board's row as committed (see [`BoardRow`]).
    boards: HashMap<String, BoardRow>,
    /// The counters as committed.
    stats: Stats,
}

impl Store {
    /// Opens (creating) the file, sets WAL and `synchronous=FULL`, and
    /// migrates it. Refuses a file from a newer version.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
                path: dir.to_owned(),
                source,
            })?;
        }
        let mut conn = open_conn(path)?;
        migrate(&mut conn, path)?;
        let sql = |source| StoreError::Sqlite {
            path: path.to_owned(),
            source,
        };
        let boards = read_boards(&conn).map_err(sql)?;
        let stats = read_stats(&conn).map_err(sql)?;
        Ok(Store {
            conn,
            path: path.to_owned(),
            boards,
            stats,
        })
    }

    /// Opens an existing file (export): never creates one.
    pub fn open_existing(path: &Path) -> Result<Store, StoreError> {
        if !path.is_file() {
            return Err(StoreError::Missing(path.to_owned()));
        }
        Store::open(path)
    }

    /// Moves the coaching start (`coaching_meta.since`) back to `at` when
    /// it is later: a history written by `generate` begins before the
    /// file was made, as if the aggregator had run since.
    pub fn backdate_coaching_start(&mut self, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE coaching_meta SET value = ?1 WHERE key = 'since' AND value > ?1",
                [crate::wire::time::ts(at)],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
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
}

fn open_conn(path: &Path) -> Result<Connection, StoreError> {
    let sql = |source| StoreError::Sqlite {
        path: path.to_owned(),
        source,
    };
    let conn = Connection::open(path).map_err(sql)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sql)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(sql)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(sql)?;
    // Design: a burst touches the tail page of every board at once; with
    // SQLite's default 2 MB cache those pages were read back from the OS
    // on every commit. 64 MB of cache, reads through mmap and fewer WAL
    // checkpoints keep ingest CPU-bound rather than copy-bound. None of
    // these weakens durability (synchronous=FULL stays).
    conn.pragma_update(None, "cache_size", -65536)
        .map_err(sql)?;
    conn.pragma_update(None, "mmap_size", 268_435_456i64)
        .map_err(sql)?;
    // Design: checkpoints are the checkpointer thread's ([`Checkpointer`]),
    // so that copying the WAL into the file and its fsync never stall a
    // group commit (with the writer checkpointing every 10,000 pages, one
    // commit in every 40 MB of WAL paid for copying all of it). This
    // limit is only the backstop should that thread stop.
    conn.pragma_update(None, "wal_autocheckpoint", 100_000)
        .map_err(sql)?;
    Ok(conn)
}

/// Opens the site file read-only, for a thread of its own (the status and
/// coaching readers). It must exist and be migrated ([`Store::open`]
/// first).
pub fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
    let sql = |source| StoreError::Sqlite {
        path: path.to_owned(),
        source,
    };
    if !path.is_file() {
        return Err(StoreError::Missing(path.to_owned()));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(sql)?;
    Ok(conn)
}
