//! The aggregator's SQLite file: every board's events, keyed by
//! `(board, seq)`, and per board the contiguous high-water mark that the
//! ack publishes.
//!
//! One owner (the ingest writer thread) holds the [`Store`]. Each call to
//! [`Store::apply`] is one transaction holding a whole group commit:
//! events, rejections (counted), online flags. Inserting is idempotent: a
//! second message with the same `(board, seq)` and the same `id` and
//! `data` is a duplicate; with a different `id` or `data` it is an
//! integrity alert (kept in `integrity_alerts`); the first one stored is
//! always kept.
//!
//! The ack of a board is the highest `seq` with every `seq` from 1 up to
//! it stored. It lives in `boards.acked` and moves in the same transaction
//! as the events, so it survives restarts and never passes a gap.
//!
//! The file runs in WAL mode with `synchronous=FULL`. Migrations are
//! numbered in [`MIGRATIONS`] with the version in `PRAGMA user_version`; a
//! file written by a newer version is refused.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};

use super::validate::{Incoming, Reason};
use crate::payload::{BoardStatus, HuddleState};
use crate::store::{parse_ts, ts};

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
    super::coaching_db::MIGRATION,
    // 3: the live status's partial index on huddle start/close and need events.
    super::status_db::MIGRATION,
    // 4: events in arrival order; the partial indexes without `IN` lists.
    EVENTS_IN_ARRIVAL_ORDER,
];

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

/// One thing the writer records in a group commit.
#[derive(Debug, Clone)]
pub enum Input {
    /// A validated event from a board in `area`.
    Event {
        /// The topic's area.
        area: String,
        /// The checked event.
        envelope: Incoming,
    },
    /// A rejected message: only counted.
    Rejected(Reason),
    /// A board's retained `online` flag.
    Online {
        /// The topic's area.
        area: String,
        /// The board.
        board: String,
        /// The flag.
        online: bool,
    },
}

/// A second message for a stored `(board, seq)` with a different `id` or
/// `data`. The first is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrityAlert {
    /// The board.
    pub board: String,
    /// The seq both messages claim.
    pub seq: u64,
    /// The stored event's id.
    pub stored_id: String,
    /// The newcomer's id.
    pub received_id: String,
}

/// What a group commit did to one board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardOutcome {
    /// The board's area (its topics).
    pub area: String,
    /// The ack before the commit.
    pub ack_before: u64,
    /// The ack after it.
    pub ack: u64,
    /// A duplicate at or below the ack arrived: publish the ack again, it
    /// helps a kiosk that is re-sending.
    pub duplicate_at_or_below_ack: bool,
    /// The board's status after the commit.
    pub status: BoardStatus,
}

impl BoardOutcome {
    /// Whether the retained ack should be published.
    pub fn ack_due(&self) -> bool {
        self.ack != self.ack_before || self.duplicate_at_or_below_ack
    }
}

/// The aggregator's counters, as published on the stats topic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Stats {
    /// Rejected messages by reason (every reason, 0 included).
    pub rejected: BTreeMap<String, u64>,
    /// Messages that reused a stored `(board, seq)` with other content.
    pub integrity_alerts: u64,
    /// Events stored.
    pub stored: u64,
    /// Exact re-sends of stored events (harmless).
    pub duplicates: u64,
}

/// What one group commit did.
#[derive(Debug, Clone, Default)]
pub struct BatchOutcome {
    /// Per touched board.
    pub boards: BTreeMap<String, BoardOutcome>,
    /// Integrity alerts raised by this batch.
    pub alerts: Vec<IntegrityAlert>,
    /// The counters after the commit.
    pub stats: Stats,
}

/// One stored event, for export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventRow {
    /// Board.
    pub board: String,
    /// Seq.
    pub seq: u64,
    /// Event id.
    pub id: String,
    /// UTC time at the board.
    pub at: String,
    /// Kind.
    pub kind: String,
    /// Data, as JSON text.
    pub data: String,
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

/// How often the checkpointer copies the WAL back into the file.
pub const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// The checkpointer: a thread with its own connection that runs a passive
/// checkpoint every [`CHECKPOINT_EVERY`], beside the writer and never
/// blocking it (a passive checkpoint copies what no reader still needs and
/// waits for nobody). The WAL thus stays small and the writer's commits
/// stay one WAL append and one fsync each. Ends when dropped.
pub struct Checkpointer {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts it on the (migrated) file at `path`.
    pub fn start(path: &Path) -> Result<Checkpointer, StoreError> {
        let conn = open_conn(path)?;
        let path = path.to_owned();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("aggregator-checkpoint".into())
            .spawn(move || {
                let mut failing = false;
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(CHECKPOINT_EVERY)
                {
                    let r = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                    match r {
                        Ok(()) => failing = false,
                        Err(e) if !failing => {
                            failing = true;
                            tracing::warn!(db = %path.display(), error = %e, "a WAL checkpoint failed; trying again");
                        }
                        Err(_) => {}
                    }
                }
            })
            .map_err(StoreError::Thread)?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    migrate_to(conn, path, MIGRATIONS.len())
}

/// Runs the migrations after the file's version up to version `to`.
fn migrate_to(conn: &mut Connection, path: &Path, to: usize) -> Result<(), StoreError> {
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

fn huddle_key(state: HuddleState) -> &'static str {
    match state {
        HuddleState::NotStarted => "not_started",
        HuddleState::InProgress => "in_progress",
        HuddleState::Closed => "closed",
    }
}

fn huddle_from_key(key: &str) -> HuddleState {
    match key {
        "in_progress" => HuddleState::InProgress,
        "closed" => HuddleState::Closed,
        _ => HuddleState::NotStarted,
    }
}

fn counter_name(reason: Reason) -> String {
    format!("rejected.{}", reason.key())
}

fn bump(tx: &Transaction<'_>, name: &str, by: u64) -> rusqlite::Result<()> {
    if by == 0 {
        return Ok(());
    }
    tx.prepare_cached(
        "INSERT INTO counters (name, value) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
    )?
    .execute(params![name, by as i64])?;
    Ok(())
}

/// One board's row of `boards` as committed, with the seqs stored above
/// its ack (held back by a gap; empty unless one is open). The writer is
/// the only one who writes `boards`, so this copy is the truth between
/// commits and no batch has to read the table back.
#[derive(Debug, Clone)]
struct BoardRow {
    area: String,
    acked: u64,
    online: bool,
    last_seq: u64,
    last_event_at: Option<DateTime<Utc>>,
    huddle: HuddleState,
    huddle_seq: u64,
    above: BTreeSet<u64>,
}

impl BoardRow {
    fn new(area: &str) -> BoardRow {
        BoardRow {
            area: area.to_owned(),
            acked: 0,
            online: false,
            last_seq: 0,
            last_event_at: None,
            huddle: HuddleState::NotStarted,
            huddle_seq: 0,
            above: BTreeSet::new(),
        }
    }

    /// Whether this seq is stored already.
    fn holds(&self, seq: u64) -> bool {
        seq <= self.acked || self.above.contains(&seq)
    }

    /// Records a newly stored event: the ack moves over every seq that
    /// now follows it without a gap; the newest event and the huddle
    /// state move by seq, so events that fill a gap late do not roll them
    /// back.
    fn stored(&mut self, e: &Incoming) {
        self.above.insert(e.seq);
        while self.above.first() == Some(&(self.acked + 1)) {
            self.above.pop_first();
            self.acked += 1;
        }
        if self.last_seq < e.seq {
            self.last_seq = e.seq;
            self.last_event_at = Some(e.at);
        }
        let huddle = match e.kind.as_str() {
            "huddle.started" => HuddleState::InProgress,
            "huddle.closed" => HuddleState::Closed,
            _ => return,
        };
        if self.huddle_seq < e.seq {
            self.huddle_seq = e.seq;
            self.huddle = huddle;
        }
    }

    /// Whether the columns a batch writes differ from `other`'s.
    fn differs(&self, other: &BoardRow) -> bool {
        (
            &self.area,
            self.acked,
            self.online,
            self.last_seq,
            self.huddle,
            self.huddle_seq,
        ) != (
            &other.area,
            other.acked,
            other.online,
            other.last_seq,
            other.huddle,
            other.huddle_seq,
        )
    }

    fn status(&self, board: &str) -> BoardStatus {
        BoardStatus {
            board: board.to_owned(),
            online: self.online,
            last_seq: self.acked,
            last_event_at: self.last_event_at,
            huddle: self.huddle,
        }
    }
}

/// Reads every board's row, and the seqs stored above each ack.
fn read_boards(conn: &Connection) -> rusqlite::Result<HashMap<String, BoardRow>> {
    let mut boards = HashMap::new();
    let mut stmt = conn.prepare(
        "SELECT board, area, acked, online, last_seq, last_event_at, huddle, huddle_seq FROM boards",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let at: Option<String> = r.get(5)?;
        boards.insert(
            r.get::<_, String>(0)?,
            BoardRow {
                area: r.get(1)?,
                acked: r.get::<_, i64>(2)? as u64,
                online: r.get::<_, i64>(3)? != 0,
                last_seq: r.get::<_, i64>(4)? as u64,
                last_event_at: at.as_deref().and_then(parse_ts),
                huddle: huddle_from_key(&r.get::<_, String>(6)?),
                huddle_seq: r.get::<_, i64>(7)? as u64,
                above: BTreeSet::new(),
            },
        );
    }
    let mut above = conn.prepare("SELECT seq FROM events WHERE board = ?1 AND seq > ?2")?;
    for (board, row) in boards.iter_mut() {
        let seqs = above.query_map(params![board, row.acked as i64], |r| {
            r.get::<_, i64>(0).map(|v| v as u64)
        })?;
        for seq in seqs {
            row.above.insert(seq?);
        }
    }
    Ok(boards)
}

fn read_stats(conn: &Connection) -> rusqlite::Result<Stats> {
    let mut stats = Stats {
        rejected: Reason::ALL
            .iter()
            .map(|r| (r.key().to_owned(), 0))
            .collect(),
        ..Stats::default()
    };
    let mut stmt = conn.prepare_cached("SELECT name, value FROM counters")?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
    })?;
    for row in rows {
        let (name, value) = row?;
        match name.as_str() {
            "stored" => stats.stored = value,
            "duplicates" => stats.duplicates = value,
            "integrity_alerts" => stats.integrity_alerts = value,
            other => {
                if let Some(reason) = other.strip_prefix("rejected.") {
                    stats.rejected.insert(reason.to_owned(), value);
                }
            }
        }
    }
    Ok(stats)
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

    /// Records one group commit in one transaction at `now`: stores the
    /// events idempotently, counts rejections, sets online flags, moves
    /// each touched board's contiguous ack. Nothing is written, and the
    /// boards and counters in memory stay as they were, if it fails.
    pub fn apply(
        &mut self,
        batch: &[Input],
        now: DateTime<Utc>,
    ) -> Result<BatchOutcome, StoreError> {
        let path = self.path.clone();
        let sql = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql)?;
        let done = apply_in(&tx, &self.boards, &self.stats, batch, now).map_err(sql)?;
        tx.commit().map_err(sql)?;
        let mut outcome = BatchOutcome {
            alerts: done.alerts,
            stats: done.stats.clone(),
            ..BatchOutcome::default()
        };
        for (board, t) in done.touched {
            outcome.boards.insert(
                board.clone(),
                BoardOutcome {
                    area: t.row.area.clone(),
                    ack_before: t.before.as_ref().map_or(0, |b| b.acked),
                    ack: t.row.acked,
                    duplicate_at_or_below_ack: t.duplicate.is_some_and(|s| s <= t.row.acked),
                    status: t.row.status(&board),
                },
            );
            self.boards.insert(board, t.row);
        }
        self.stats = done.stats;
        Ok(outcome)
    }

    /// Every known board with its area and status, by board (to publish
    /// again after the broker lost its retained messages).
    pub fn boards(&self) -> Vec<(String, BoardStatus)> {
        let mut boards: Vec<_> = self
            .boards
            .iter()
            .map(|(b, row)| (row.area.clone(), row.status(b)))
            .collect();
        boards.sort_by(|a, b| a.1.board.cmp(&b.1.board));
        boards
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The integrity alerts, oldest first.
    pub fn integrity_alerts(&self) -> Result<Vec<IntegrityAlert>, StoreError> {
        (|| {
            let mut stmt = self.conn.prepare(
                "SELECT board, seq, stored_id, received_id FROM integrity_alerts ORDER BY id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(IntegrityAlert {
                    board: r.get(0)?,
                    seq: r.get::<_, i64>(1)? as u64,
                    stored_id: r.get(2)?,
                    received_id: r.get(3)?,
                })
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })()
        .map_err(|e| self.err(e))
    }

    /// Calls `f` with every stored event, ordered by board then seq.
    pub fn for_each_event<E>(&self, mut f: impl FnMut(EventRow) -> Result<(), E>) -> Result<(), E>
    where
        E: From<StoreError>,
    {
        let mut stmt = self
            .conn
            .prepare("SELECT board, seq, id, at, kind, data FROM events ORDER BY board, seq")
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let row = (|| {
                Ok::<_, rusqlite::Error>(EventRow {
                    board: r.get(0)?,
                    seq: r.get::<_, i64>(1)? as u64,
                    id: r.get(2)?,
                    at: r.get(3)?,
                    kind: r.get(4)?,
                    data: r.get(5)?,
                })
            })()
            .map_err(|e| self.err(e))?;
            f(row)?;
        }
        Ok(())
    }
}

/// What one batch did to one board: its row as it will be after the
/// commit.
#[derive(Debug)]
struct Touch {
    /// The row before the batch (`None`: a new board).
    before: Option<BoardRow>,
    /// The row after it.
    row: BoardRow,
    /// The highest duplicate seq seen, if any.
    duplicate: Option<u64>,
}

/// What a batch did, to be taken into the store's memory once committed.
struct Done {
    touched: HashMap<String, Touch>,
    alerts: Vec<IntegrityAlert>,
    stats: Stats,
}

fn touch<'t>(
    tx: &Transaction<'_>,
    touched: &'t mut HashMap<String, Touch>,
    boards: &HashMap<String, BoardRow>,
    board: &str,
    area: &str,
    received_at: &str,
) -> rusqlite::Result<&'t mut Touch> {
    if !touched.contains_key(board) {
        let before = boards.get(board).cloned();
        if before.is_none() {
            tx.prepare_cached("INSERT INTO boards (board, area, first_seen) VALUES (?1, ?2, ?3)")?
                .execute(params![board, area, received_at])?;
        }
        let mut row = before.clone().unwrap_or_else(|| BoardRow::new(area));
        area.clone_into(&mut row.area);
        touched.insert(
            board.to_owned(),
            Touch {
                before,
                row,
                duplicate: None,
            },
        );
    }
    Ok(touched
        .get_mut(board)
        .expect("inserted above when it was missing"))
}

/// Inserts a new event; `false` if `(board, seq)` was stored after all.
///
/// Design: a plain `INSERT`, not an upsert: SQLite's `ON CONFLICT DO
/// NOTHING` seeks the `(board, seq)` index twice, a plain insert reuses
/// its uniqueness check's seek. The memory says the key is new; should it
/// be wrong, the constraint error undoes this one statement only, and the
/// event goes on to the comparison like any re-send.
fn insert_event(
    tx: &Transaction<'_>,
    e: &Incoming,
    id: &str,
    received_at: &str,
) -> rusqlite::Result<bool> {
    let r = tx
        .prepare_cached(
            "INSERT INTO events (board, seq, id, at, clock_synced, kind, data, received_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            e.board,
            e.seq as i64,
            id,
            ts(e.at),
            e.clock_synced as i64,
            e.kind,
            e.data,
            received_at
        ]);
    match r {
        Ok(_) => Ok(true),
        Err(rusqlite::Error::SqliteFailure(f, _))
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

fn apply_in(
    tx: &Transaction<'_>,
    boards: &HashMap<String, BoardRow>,
    stats: &Stats,
    batch: &[Input],
    now: DateTime<Utc>,
) -> rusqlite::Result<Done> {
    let received_at = ts(now);
    let mut touched = HashMap::new();
    let mut alerts = Vec::new();
    let (mut stored, mut duplicates) = (0u64, 0u64);
    let mut rejected: BTreeMap<Reason, u64> = BTreeMap::new();
    for input in batch {
        match input {
            Input::Rejected(reason) => *rejected.entry(*reason).or_default() += 1,
            Input::Online {
                area,
                board,
                online,
            } => {
                // Design: kiosks republish `online` every 30 s as a
                // heartbeat; an unchanged flag writes nothing, so a batch
                // of heartbeats commits without touching the disk.
                touch(tx, &mut touched, boards, board, area, &received_at)?
                    .row
                    .online = *online;
            }
            Input::Event { area, envelope: e } => {
                let t = touch(tx, &mut touched, boards, &e.board, area, &received_at)?;
                let id = e.id.to_string();
                // The memory knows what is stored: a re-send goes straight
                // to the comparison, a new event straight to the insert.
                let inserted = !t.row.holds(e.seq) && insert_event(tx, e, &id, &received_at)?;
                if inserted {
                    stored += 1;
                    t.row.stored(e);
                    continue;
                }
                let (stored_id, stored_data): (String, String) = tx
                    .prepare_cached("SELECT id, data FROM events WHERE board = ?1 AND seq = ?2")?
                    .query_row(params![e.board, e.seq as i64], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })?;
                if stored_id == id && same_json(&stored_data, &e.data) {
                    duplicates += 1;
                    t.duplicate = Some(t.duplicate.map_or(e.seq, |s| s.max(e.seq)));
                } else {
                    tx.execute(
                        "INSERT INTO integrity_alerts
                         (board, seq, stored_id, received_id, received_data, detected_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![e.board, e.seq as i64, stored_id, id, e.data, received_at],
                    )?;
                    alerts.push(IntegrityAlert {
                        board: e.board.clone(),
                        seq: e.seq,
                        stored_id,
                        received_id: id,
                    });
                }
            }
        }
    }
    // One write per board and batch, and none when nothing changed.
    for (board, t) in &touched {
        if t.before.as_ref().is_none_or(|b| t.row.differs(b)) {
            let r = &t.row;
            tx.prepare_cached(
                "UPDATE boards SET area = ?2, acked = ?3, online = ?4, last_seq = ?5,
                     last_event_at = ?6, huddle = ?7, huddle_seq = ?8
                 WHERE board = ?1",
            )?
            .execute(params![
                board,
                r.area,
                r.acked as i64,
                r.online as i64,
                r.last_seq as i64,
                r.last_event_at.map(ts),
                huddle_key(r.huddle),
                r.huddle_seq as i64
            ])?;
        }
    }
    let mut stats = stats.clone();
    stats.stored += stored;
    stats.duplicates += duplicates;
    stats.integrity_alerts += alerts.len() as u64;
    bump(tx, "stored", stored)?;
    bump(tx, "duplicates", duplicates)?;
    bump(tx, "integrity_alerts", alerts.len() as u64)?;
    for (reason, n) in rejected {
        bump(tx, &counter_name(reason), n)?;
        *stats.rejected.entry(reason.key().to_owned()).or_default() += n;
    }
    Ok(Done {
        touched,
        alerts,
        stats,
    })
}

/// Whether two JSON texts hold the same value (a board that re-sends may
/// serialise the same payload with other spacing or key order).
fn same_json(a: &str, b: &str) -> bool {
    match (
        serde_json::from_str::<serde_json::Value>(a),
        serde_json::from_str::<serde_json::Value>(b),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Envelope, Event, HuddleClosed, HuddleStarted, NeedRef, StartTrigger};
    use chrono::TimeZone;

    fn at(min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, 6, min, 0).unwrap()
    }

    fn need(board: &str, seq: u64, need: &str) -> Envelope {
        Envelope::new(
            board,
            seq,
            at(seq as u32 % 60),
            true,
            &Event::NeedClosed(NeedRef {
                need_id: need.into(),
                by: None,
            }),
        )
    }

    fn ev(e: Envelope) -> Input {
        Input::Event {
            area: "assembly".into(),
            envelope: Incoming::from_envelope(&e),
        }
    }

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("agg.db")).unwrap();
        (dir, store)
    }

    #[test]
    fn the_checkpointer_copies_the_wal_into_the_file_and_the_writer_does_not() {
        let (dir, mut s) = open();
        let file = dir.path().join("agg.db");
        let size = || std::fs::metadata(&file).unwrap().len();
        let before = size();
        let batch: Vec<Input> = (1..=2000).map(|i| ev(need("b1", i, "n"))).collect();
        s.apply(&batch, Utc::now()).unwrap();
        // Committed, but only in the WAL: the writer does not checkpoint.
        assert_eq!(size(), before, "the writer checkpointed by itself");
        let _checkpointer = Checkpointer::start(&file).unwrap();
        let deadline = std::time::Instant::now() + 10 * CHECKPOINT_EVERY;
        while size() < before + 200_000 {
            assert!(
                std::time::Instant::now() < deadline,
                "no checkpoint within {:?}: the file is still {} bytes",
                10 * CHECKPOINT_EVERY,
                size()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // The writer goes on beside it.
        s.apply(&[ev(need("b1", 2001, "n"))], Utc::now()).unwrap();
    }

    #[test]
    fn a_gap_holds_the_ack_until_it_is_filled() {
        let (_dir, mut s) = open();
        let o = s
            .apply(
                &[
                    ev(need("b1", 1, "n")),
                    ev(need("b1", 2, "n")),
                    ev(need("b1", 4, "n")),
                ],
                at(0),
            )
            .unwrap();
        let b = &o.boards["b1"];
        assert_eq!((b.ack_before, b.ack), (0, 2));
        assert!(b.ack_due());
        assert_eq!(b.status.last_seq, 2);

        let o = s.apply(&[ev(need("b1", 6, "n"))], at(1)).unwrap();
        assert_eq!(o.boards["b1"].ack, 2);
        assert!(
            !o.boards["b1"].ack_due(),
            "a gap above the ack publishes nothing"
        );

        let o = s.apply(&[ev(need("b1", 3, "n"))], at(2)).unwrap();
        assert_eq!(o.boards["b1"].ack, 4);
        let o = s.apply(&[ev(need("b1", 5, "n"))], at(3)).unwrap();
        assert_eq!(o.boards["b1"].ack, 6);
        assert_eq!(o.stats.stored, 6);
    }

    #[test]
    fn the_ack_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agg.db");
        {
            let mut s = Store::open(&path).unwrap();
            s.apply(&[ev(need("b1", 1, "n")), ev(need("b1", 2, "n"))], at(0))
                .unwrap();
        }
        let mut s = Store::open(&path).unwrap();
        assert_eq!(s.boards()[0].1.last_seq, 2);
        let o = s.apply(&[ev(need("b1", 3, "n"))], at(1)).unwrap();
        assert_eq!((o.boards["b1"].ack_before, o.boards["b1"].ack), (2, 3));
        assert_eq!(schema_version(&path).unwrap(), MIGRATIONS.len() as i64);
    }

    #[test]
    fn a_version_3_file_keeps_its_events_and_acks_through_migration_4() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agg.db");
        let two = need("b1", 2, "n");
        {
            // A file as version 3 wrote it: events clustered by (board, seq).
            let mut conn = Connection::open(&path).unwrap();
            migrate_to(&mut conn, &path, 3).unwrap();
            let tx = conn.transaction().unwrap();
            let (boards, stats) = (HashMap::new(), Stats::default());
            let batch = [
                ev(need("b1", 1, "n")),
                ev(two.clone()),
                ev(need("b1", 4, "n")),
            ];
            apply_in(&tx, &boards, &stats, &batch, at(0)).unwrap();
            tx.commit().unwrap();
        }
        let mut s = Store::open(&path).unwrap();
        assert_eq!(schema_version(&path).unwrap(), 4);
        let mut seqs = Vec::new();
        s.for_each_event(|r| {
            seqs.push(r.seq);
            Ok::<_, StoreError>(())
        })
        .unwrap();
        assert_eq!(seqs, [1, 2, 4]);
        assert_eq!(s.boards()[0].1.last_seq, 2);
        let o = s.apply(&[ev(two), ev(need("b1", 3, "n"))], at(1)).unwrap();
        assert_eq!(o.stats.duplicates, 1, "seq 2, stored before, is known");
        let unique: bool = s
            .conn
            .query_row(
                "SELECT \"unique\" FROM pragma_index_list('events') WHERE name = 'events_key'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(
            unique,
            "(board, seq) is unique in the file, not only in memory"
        );
        assert_eq!(o.boards["b1"].ack, 4, "seq 4, stored before, is found");
        let plan: String = s
            .conn
            .query_row(
                "EXPLAIN QUERY PLAN SELECT id FROM events WHERE board = 'b1' AND seq = 2",
                [],
                |r| r.get(3),
            )
            .unwrap();
        assert!(plan.contains("events_key"), "{plan}");
    }

    #[test]
    fn a_stored_event_the_memory_does_not_know_is_a_re_send_not_an_error() {
        let (_dir, mut s) = open();
        let one = need("b1", 1, "n");
        s.apply(&[ev(one.clone())], at(0)).unwrap();
        // Memory that knows the board but missed the event: the insert
        // meets the unique key.
        let boards = HashMap::from([("b1".to_owned(), BoardRow::new("a"))]);
        let tx = s.conn.transaction().unwrap();
        let done = apply_in(&tx, &boards, &Stats::default(), &[ev(one)], at(1)).unwrap();
        assert_eq!((done.stats.stored, done.stats.duplicates), (0, 1));
        assert!(done.alerts.is_empty());
    }

    #[test]
    fn a_gap_and_what_lies_beyond_it_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agg.db");
        let three = need("b1", 3, "n");
        {
            let mut s = Store::open(&path).unwrap();
            let o = s
                .apply(&[ev(need("b1", 1, "n")), ev(three.clone())], at(0))
                .unwrap();
            assert_eq!(o.boards["b1"].ack, 1);
        }
        let mut s = Store::open(&path).unwrap();
        // seq 3 is known to be stored: a re-send of it is a duplicate...
        let o = s.apply(&[ev(three)], at(1)).unwrap();
        assert_eq!((o.stats.stored, o.stats.duplicates), (2, 1));
        // ...and filling the gap moves the ack over it.
        let o = s.apply(&[ev(need("b1", 2, "n"))], at(2)).unwrap();
        assert_eq!((o.boards["b1"].ack_before, o.boards["b1"].ack), (1, 3));
        let mut again = Store::open(&path).unwrap();
        assert_eq!(again.boards()[0].1.last_seq, 3);
        let o = again.apply(&[ev(need("b1", 4, "n"))], at(3)).unwrap();
        assert_eq!(o.boards["b1"].ack, 4);
    }

    #[test]
    fn an_exact_duplicate_is_counted_and_republishes_the_ack() {
        let (_dir, mut s) = open();
        let first = need("b1", 1, "n");
        s.apply(&[ev(first.clone())], at(0)).unwrap();
        let o = s.apply(&[ev(first.clone())], at(1)).unwrap();
        let b = &o.boards["b1"];
        assert_eq!(b.ack, 1);
        assert!(b.duplicate_at_or_below_ack && b.ack_due());
        assert_eq!(o.stats.duplicates, 1);
        assert_eq!(o.stats.stored, 1);
        assert!(o.alerts.is_empty());
    }

    #[test]
    fn same_key_other_content_is_an_alert_and_the_first_is_kept() {
        let (_dir, mut s) = open();
        let first = need("b1", 1, "first");
        let mut second = need("b1", 1, "second");
        s.apply(&[ev(first.clone())], at(0)).unwrap();
        let o = s.apply(&[ev(second.clone())], at(1)).unwrap();
        assert_eq!(o.alerts.len(), 1);
        assert_eq!(o.alerts[0].stored_id, first.id.to_string());
        assert_eq!(o.stats.integrity_alerts, 1);

        // Same id, other data: also an alert.
        second.id = first.id;
        let o = s.apply(&[ev(second)], at(2)).unwrap();
        assert_eq!(o.alerts.len(), 1);
        assert_eq!(s.integrity_alerts().unwrap().len(), 2);

        let mut rows = Vec::new();
        s.for_each_event(|r| {
            rows.push(r);
            Ok::<_, StoreError>(())
        })
        .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].id, first.id.to_string());
        assert!(rows[0].data.contains("\"first\""), "{}", rows[0].data);
    }

    #[test]
    fn a_duplicate_inside_one_batch_is_seen() {
        let (_dir, mut s) = open();
        let e = need("b1", 1, "n");
        let o = s.apply(&[ev(e.clone()), ev(e)], at(0)).unwrap();
        assert_eq!((o.stats.stored, o.stats.duplicates), (1, 1));
    }

    #[test]
    fn rejections_are_counted_by_reason() {
        let (_dir, mut s) = open();
        let o = s
            .apply(
                &[
                    Input::Rejected(Reason::MalformedJson),
                    Input::Rejected(Reason::MalformedJson),
                    Input::Rejected(Reason::BadSeq),
                ],
                at(0),
            )
            .unwrap();
        assert!(o.boards.is_empty());
        assert_eq!(o.stats.rejected["malformed_json"], 2);
        assert_eq!(o.stats.rejected["bad_seq"], 1);
        assert_eq!(o.stats.rejected["oversize"], 0);
        assert_eq!(o.stats.rejected.len(), Reason::ALL.len());
    }

    #[test]
    fn status_follows_huddles_online_and_the_newest_event() {
        let (_dir, mut s) = open();
        let started = Envelope::new(
            "b1",
            1,
            at(1),
            true,
            &Event::HuddleStarted(HuddleStarted {
                huddle_id: "h".into(),
                scheduled_at: None,
                slot: None,
                started_by: "p01".into(),
                trigger: StartTrigger::TeamLeader,
                target_minutes: 15,
                agenda: vec![],
            }),
        );
        let o = s
            .apply(
                &[
                    Input::Online {
                        area: "assembly".into(),
                        board: "b1".into(),
                        online: true,
                    },
                    ev(started),
                ],
                at(1),
            )
            .unwrap();
        let st = &o.boards["b1"].status;
        assert!(st.online);
        assert_eq!(st.huddle, HuddleState::InProgress);
        assert_eq!(st.last_event_at, Some(at(1)));

        let closed = Envelope::new(
            "b1",
            3,
            at(3),
            true,
            &Event::HuddleClosed(HuddleClosed {
                huddle_id: "h".into(),
                closed_by: "p01".into(),
                summary: serde_json::from_value(serde_json::json!({
                    "present": 1, "expected": 1, "late": 0, "absent": [], "kpis_hit": 0,
                    "kpis_reviewed": 0, "kpis_total": 0, "needs_raised": 0,
                    "needs_escalated": 0, "actions_created": 0, "actions_closed": 0,
                    "duration_s": 60, "target_s": 900
                }))
                .unwrap(),
            }),
        );
        let o = s.apply(&[ev(closed)], at(3)).unwrap();
        let st = &o.boards["b1"].status;
        assert_eq!(st.huddle, HuddleState::Closed);
        assert_eq!(st.last_seq, 1, "the gap at 2 holds the status's seq too");
        assert_eq!(st.last_event_at, Some(at(3)));
    }

    #[test]
    fn a_newer_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agg.db");
        Store::open(&path).unwrap();
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        let e = Store::open(&path).err().unwrap().to_string();
        assert!(e.contains("schema version 99"), "{e}");
    }
}
