//! The aggregator's SQLite file: every board's events, keyed by
//! `(board, incarnation, seq)`, and per incarnation of a board the
//! contiguous high-water mark that the ack publishes.
//!
//! One owner (the ingest writer thread) holds the [`Store`]. Each call to
//! [`Store::apply`] is one transaction holding a whole group commit:
//! events, rejections (counted), online flags. Inserting is idempotent: a
//! second message with the same `(board, seq)` and the same `id` and
//! `data` is a duplicate; with a different `id` or `data` it is an
//! integrity alert (kept in `integrity_alerts`); the first one stored is
//! always kept.
//!
//! The ack of a board's incarnation ([`crate::wire::event`]) is the highest
//! `seq` with every `seq` from its `base` up to it stored, with the chain
//! digest of those events' ids. It lives in `incarnations.acked` (and
//! `chain`) and moves in the same transaction as the events, so it
//! survives restarts and never passes a gap. The legacy incarnation `""`
//! (schema 1 boards) has base 1 and no digest.
//!
//! A board's **current** incarnation is the one that appeared last: its
//! events drive the board's huddle state and newest event. A new
//! incarnation of a board that had one is a replaced file (reflashed,
//! spare, restored copy); the board's status says since when. An older
//! incarnation that stores new events after a newer one appeared means
//! two boards claim one id: a [`TwinAlert`] (once per pair and run).
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
use crate::wire::event::{chain_next, chain_start};
use crate::wire::payload::{Ack, BoardStatus, HuddleState, IncarnationAck};
use crate::wire::time::{parse_ts, ts};

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
    super::coaching::db::MIGRATION,
    // 3: the live status's partial index on huddle start/close and need events.
    super::status::db::MIGRATION,
    // 4: events in arrival order; the partial indexes without `IN` lists.
    EVENTS_IN_ARRIVAL_ORDER,
    // 5: board incarnations.
    INCARNATIONS,
];

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

/// A second message for a stored `(board, incarnation, seq)` with a
/// different `id` or `data`. The first is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IntegrityAlert {
    /// The board.
    pub board: String,
    /// The incarnation (`""`: the legacy one).
    #[serde(default)]
    pub incarnation: String,
    /// The seq both messages claim.
    pub seq: u64,
    /// The stored event's id.
    pub stored_id: String,
    /// The newcomer's id.
    pub received_id: String,
}

/// An older incarnation of a board stored a new event after a newer one
/// appeared: two boards (two files) claim one board id. Both are kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TwinAlert {
    /// The board id both claim.
    pub board: String,
    /// The older incarnation, still writing.
    pub older: String,
    /// The newer one.
    pub newer: String,
    /// When it was seen (UTC).
    pub at: DateTime<Utc>,
}

/// An event refused by the store as `bad_seq`: it cannot be a real next
/// event of its board, and storing it would leave a gap that never fills
/// (or a board with endless incarnations).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The board.
    pub board: String,
    /// Its incarnation.
    pub incarnation: String,
    /// The seq.
    pub seq: u64,
    /// Why (for the log).
    pub why: String,
}

/// Most seqs an event may run ahead of its incarnation's ack. A kiosk
/// sends at most `delivery.window` (500 shipped) beyond it.
pub const MAX_SEQ_AHEAD: u64 = 1_000_000;
/// Most incarnations one board may have. A board gets a new one when its
/// file is replaced or forks: a few in its life.
pub const MAX_INCARNATIONS: usize = 64;

/// What a group commit did to one board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardOutcome {
    /// The board's area (its topics).
    pub area: String,
    /// The board's ack after the commit (every incarnation's).
    pub ack: Ack,
    /// An incarnation's ack moved.
    pub ack_moved: bool,
    /// A duplicate at or below the ack arrived: publish the ack again, it
    /// helps a kiosk that is re-sending.
    pub duplicate_at_or_below_ack: bool,
    /// The board's status after the commit.
    pub status: BoardStatus,
    /// The board's area before this commit, when it moved to another.
    pub moved_from: Option<String>,
}

impl BoardOutcome {
    /// Whether the retained ack should be published.
    pub fn ack_due(&self) -> bool {
        self.ack_moved || self.duplicate_at_or_below_ack
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
    /// Two boards claiming one id, seen in this batch.
    pub twins: Vec<TwinAlert>,
    /// Valid envelopes that cannot be a board's next event (counted as
    /// `bad_seq`, not stored).
    pub refused: Vec<Refused>,
    /// The counters after the commit.
    pub stats: Stats,
}

/// One stored event, for export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventRow {
    /// Board.
    pub board: String,
    /// The board file's incarnation (`""`: legacy).
    pub incarnation: String,
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

/// One incarnation of a board as committed: its ack, chain digest and the
/// seqs (with ids) stored above the ack, held back by a gap.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stream {
    base: u64,
    acked: u64,
    /// Digest after `acked` (empty for the legacy incarnation).
    chain: String,
    above: BTreeMap<u64, uuid::Uuid>,
    first_seen: String,
    last_stored_at: String,
}

impl Stream {
    fn new(incarnation: &str, base: u64, now: &str) -> Stream {
        Stream {
            base,
            acked: base - 1,
            chain: if incarnation.is_empty() {
                String::new()
            } else {
                chain_start(incarnation)
            },
            above: BTreeMap::new(),
            first_seen: now.to_owned(),
            last_stored_at: now.to_owned(),
        }
    }

    /// Whether this seq is stored already.
    fn holds(&self, seq: u64) -> bool {
        seq <= self.acked || self.above.contains_key(&seq)
    }

    /// Records a stored event; the ack (and digest) moves over every seq
    /// that now follows it without a gap.
    fn stored(&mut self, seq: u64, id: uuid::Uuid, legacy: bool) {
        self.above.insert(seq, id);
        while let Some(entry) = self.above.first_entry() {
            if *entry.key() != self.acked + 1 {
                break;
            }
            let id = entry.remove();
            self.acked += 1;
            if !legacy {
                self.chain = chain_next(&self.chain, &id);
            }
        }
    }
}

/// One board's row of `boards` as committed, with its incarnations. The
/// writer is the only one who writes `boards` and `incarnations`, so this
/// copy is the truth between commits and no batch has to read them back.
#[derive(Debug, Clone)]
struct BoardRow {
    area: String,
    online: bool,
    /// Highest seq stored of the current incarnation.
    last_seq: u64,
    last_event_at: Option<DateTime<Utc>>,
    huddle: HuddleState,
    huddle_seq: u64,
    /// The incarnation that appeared last.
    current: String,
    /// When the current incarnation replaced another (none: never).
    replaced_at: Option<DateTime<Utc>>,
    streams: BTreeMap<String, Stream>,
    /// (older, newer) incarnation pairs already alerted as twins.
    twins_alerted: BTreeSet<(String, String)>,
}

impl BoardRow {
    fn new(area: &str) -> BoardRow {
        BoardRow {
            area: area.to_owned(),
            online: false,
            last_seq: 0,
            last_event_at: None,
            huddle: HuddleState::NotStarted,
            huddle_seq: 0,
            current: String::new(),
            replaced_at: None,
            streams: BTreeMap::new(),
            twins_alerted: BTreeSet::new(),
        }
    }

    /// Why this event cannot be the board's (`None`: it can).
    fn refuses(&self, e: &Incoming) -> Option<String> {
        let acked = match self.streams.get(&e.incarnation) {
            Some(s) => s.acked,
            None if self.streams.len() >= MAX_INCARNATIONS => {
                return Some(format!(
                    "a new incarnation, and the board has {MAX_INCARNATIONS} already"
                ))
            }
            None => e.base - 1,
        };
        (e.seq > acked.saturating_add(MAX_SEQ_AHEAD)).then(|| {
            format!(
                "seq {} is more than {MAX_SEQ_AHEAD} beyond the ack {acked}",
                e.seq
            )
        })
    }

    /// Every incarnation's ack.
    fn acks(&self) -> impl Iterator<Item = (&String, u64)> + '_ {
        self.streams.iter().map(|(id, s)| (id, s.acked))
    }

    /// The current incarnation's ack.
    fn acked(&self) -> u64 {
        self.streams.get(&self.current).map_or(0, |s| s.acked)
    }

    /// The incarnation of an event, made when first seen. A new
    /// incarnation of a board that has events becomes its current one.
    fn stream(&mut self, e: &Incoming, now: &str) -> &mut Stream {
        if !self.streams.contains_key(&e.incarnation) {
            let fresh = Stream::new(&e.incarnation, e.base, now);
            if !self.current.is_empty() {
                self.replaced_at = parse_ts(now);
            }
            self.streams.insert(e.incarnation.clone(), fresh);
            e.incarnation.clone_into(&mut self.current);
            self.last_seq = 0;
            self.huddle_seq = 0;
        }
        self.streams
            .get_mut(&e.incarnation)
            .expect("inserted above when it was missing")
    }

    /// Records a newly stored event: its incarnation's ack moves; the
    /// newest event and the huddle state move by seq within the current
    /// incarnation, so events that fill a gap late do not roll them back.
    /// Returns a twin alert when an older incarnation stored it.
    fn stored(&mut self, e: &Incoming, now: &str) -> Option<String> {
        let legacy = e.incarnation.is_empty();
        let stream = self.stream(e, now);
        stream.stored(e.seq, e.id, legacy);
        now.clone_into(&mut stream.last_stored_at);
        if e.incarnation != self.current {
            let mine = &self.streams[&e.incarnation].first_seen;
            let current = &self.streams[&self.current].first_seen;
            return (mine < current).then(|| self.current.clone());
        }
        if self.last_seq < e.seq {
            self.last_seq = e.seq;
            self.last_event_at = Some(e.at);
        }
        let huddle = match e.kind.as_str() {
            "huddle.started" => HuddleState::InProgress,
            "huddle.closed" => HuddleState::Closed,
            _ => return None,
        };
        if self.huddle_seq < e.seq {
            self.huddle_seq = e.seq;
            self.huddle = huddle;
        }
        None
    }

    /// Whether the columns a batch writes differ from `other`'s.
    fn differs(&self, other: &BoardRow) -> bool {
        (
            &self.area,
            self.acked(),
            &self.current,
            self.online,
            self.last_seq,
            self.huddle,
            self.huddle_seq,
        ) != (
            &other.area,
            other.acked(),
            &other.current,
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
            last_seq: self.acked(),
            last_event_at: self.last_event_at,
            huddle: self.huddle,
            incarnation: (!self.current.is_empty()).then(|| self.current.clone()),
            replaced_at: self.replaced_at,
        }
    }

    /// The board's ack: the legacy incarnation's seq, and the newest
    /// incarnations by last stored event.
    fn ack(&self, board: &str, at: DateTime<Utc>) -> Ack {
        let mut incarnations: Vec<(&String, &Stream)> = self
            .streams
            .iter()
            .filter(|(id, _)| !id.is_empty())
            .collect();
        incarnations.sort_by(|a, b| b.1.last_stored_at.cmp(&a.1.last_stored_at));
        Ack {
            board: board.to_owned(),
            seq: self.streams.get("").map_or(0, |s| s.acked),
            at,
            incarnations: incarnations
                .into_iter()
                .take(Ack::MAX_INCARNATIONS)
                .map(|(id, s)| IncarnationAck {
                    incarnation: id.clone(),
                    seq: s.acked,
                    chain: s.chain.clone(),
                })
                .collect(),
        }
    }
}

/// Reads every board's row and incarnations, with the seqs stored above
/// each ack.
fn read_boards(conn: &Connection) -> rusqlite::Result<HashMap<String, BoardRow>> {
    let mut boards = HashMap::new();
    // The current incarnation's ack and chain, as the `boards` row has them.
    let mut latest: HashMap<String, (String, u64, String)> = HashMap::new();
    let mut stmt = conn.prepare(
        "SELECT board, area, online, last_seq, last_event_at, huddle, huddle_seq, current, acked, chain
         FROM boards",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let at: Option<String> = r.get(4)?;
        let mut row = BoardRow::new(&r.get::<_, String>(1)?);
        row.online = r.get::<_, i64>(2)? != 0;
        row.last_seq = r.get::<_, i64>(3)? as u64;
        row.last_event_at = at.as_deref().and_then(parse_ts);
        row.huddle = huddle_from_key(&r.get::<_, String>(5)?);
        row.huddle_seq = r.get::<_, i64>(6)? as u64;
        let board: String = r.get(0)?;
        latest.insert(
            board.clone(),
            (r.get(7)?, r.get::<_, i64>(8)? as u64, r.get(9)?),
        );
        boards.insert(board, row);
    }
    let mut stmt = conn.prepare(
        "SELECT board, incarnation, base, acked, chain, first_seen, last_stored_at
         FROM incarnations ORDER BY board, first_seen",
    )?;
    let mut rows = stmt.query([])?;
    let mut above = conn
        .prepare("SELECT seq, id FROM events WHERE board = ?1 AND incarnation = ?2 AND seq > ?3")?;
    while let Some(r) = rows.next()? {
        let board: String = r.get(0)?;
        let incarnation: String = r.get(1)?;
        let Some(row) = boards.get_mut(&board) else {
            continue;
        };
        let mut stream = Stream {
            base: r.get::<_, i64>(2)? as u64,
            acked: r.get::<_, i64>(3)? as u64,
            chain: r.get(4)?,
            above: BTreeMap::new(),
            first_seen: r.get(5)?,
            last_stored_at: r.get(6)?,
        };
        if let Some((current, acked, chain)) = latest.get(&board) {
            if *current == incarnation {
                stream.acked = *acked;
                chain.clone_into(&mut stream.chain);
            }
        }
        let seqs = above.query_map(params![board, incarnation, stream.acked as i64], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?))
        })?;
        for seq in seqs {
            let (seq, id) = seq?;
            stream
                .above
                .insert(seq, id.parse().unwrap_or_else(|_| uuid::Uuid::nil()));
        }
        if !row.current.is_empty() {
            row.replaced_at = parse_ts(&stream.first_seen);
        }
        row.current.clone_from(&incarnation);
        row.streams.insert(incarnation, stream);
    }
    // The current incarnation is the one the `boards` row names (the last
    // to appear; the ordering above is only a fallback).
    for (board, row) in boards.iter_mut() {
        if let Some((current, _, _)) = latest.get(board) {
            if row.streams.contains_key(current) {
                row.current.clone_from(current);
            }
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
            twins: done.twins,
            refused: done.refused,
            stats: done.stats.clone(),
            ..BatchOutcome::default()
        };
        for (board, t) in done.touched {
            let ack_moved = t.before.as_ref().is_none_or(|b| b.acks().ne(t.row.acks()));
            outcome.boards.insert(
                board.clone(),
                BoardOutcome {
                    area: t.row.area.clone(),
                    ack: t.row.ack(&board, now),
                    ack_moved,
                    duplicate_at_or_below_ack: t.duplicate,
                    status: t.row.status(&board),
                    moved_from: t
                        .before
                        .as_ref()
                        .filter(|b| b.area != t.row.area)
                        .map(|b| b.area.clone()),
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

    /// Every known board's area and ack at `at`, by board (to publish
    /// again after the broker lost its retained messages).
    pub fn acks(&self, at: DateTime<Utc>) -> Vec<(String, Ack)> {
        let mut acks: Vec<_> = self
            .boards
            .iter()
            .map(|(b, row)| (row.area.clone(), row.ack(b, at)))
            .collect();
        acks.sort_by(|a, b| a.1.board.cmp(&b.1.board));
        acks
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The integrity alerts, oldest first.
    pub fn integrity_alerts(&self) -> Result<Vec<IntegrityAlert>, StoreError> {
        (|| {
            let mut stmt = self.conn.prepare(
                "SELECT board, incarnation, seq, stored_id, received_id FROM integrity_alerts ORDER BY id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(IntegrityAlert {
                    board: r.get(0)?,
                    incarnation: r.get(1)?,
                    seq: r.get::<_, i64>(2)? as u64,
                    stored_id: r.get(3)?,
                    received_id: r.get(4)?,
                })
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })()
        .map_err(|e| self.err(e))
    }

    /// Calls `f` with every stored event once, by board, then across the
    /// board's incarnations in order of time (the incarnation's first
    /// appearance, then `seq`). An event stored under two incarnations (a
    /// board that re-sent it in a new one after its file forked) comes
    /// once, where it was stored first.
    pub fn for_each_event<E>(&self, mut f: impl FnMut(EventRow) -> Result<(), E>) -> Result<(), E>
    where
        E: From<StoreError>,
    {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT e.board, e.incarnation, e.seq, e.id, e.at, e.kind, e.data FROM events e
                 LEFT JOIN incarnations i ON i.board = e.board AND i.incarnation = e.incarnation
                 ORDER BY e.board, i.first_seen, e.incarnation, e.seq",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        let mut seen = std::collections::HashSet::new();
        let mut board = String::new();
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let row = (|| {
                Ok::<_, rusqlite::Error>(EventRow {
                    board: r.get(0)?,
                    incarnation: r.get(1)?,
                    seq: r.get::<_, i64>(2)? as u64,
                    id: r.get(3)?,
                    at: r.get(4)?,
                    kind: r.get(5)?,
                    data: r.get(6)?,
                })
            })()
            .map_err(|e| self.err(e))?;
            if row.board != board {
                seen.clear();
                board.clone_from(&row.board);
            }
            if seen.insert(row.id.clone()) {
                f(row)?;
            }
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
    /// A duplicate at or below its incarnation's ack arrived.
    duplicate: bool,
}

/// What a batch did, to be taken into the store's memory once committed.
struct Done {
    touched: HashMap<String, Touch>,
    alerts: Vec<IntegrityAlert>,
    twins: Vec<TwinAlert>,
    refused: Vec<Refused>,
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
                duplicate: false,
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
            "INSERT INTO events (board, incarnation, seq, id, at, clock_synced, kind, data, received_at)
             VALUES (?1, ?9, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            e.board,
            e.seq as i64,
            id,
            ts(e.at),
            e.clock_synced as i64,
            e.kind,
            e.data,
            received_at,
            e.incarnation
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
    let mut twins = Vec::new();
    let mut refused = Vec::new();
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
                if let Some(why) = t.row.refuses(e) {
                    *rejected.entry(Reason::BadSeq).or_default() += 1;
                    refused.push(Refused {
                        board: e.board.clone(),
                        incarnation: e.incarnation.clone(),
                        seq: e.seq,
                        why,
                    });
                    continue;
                }
                let id = e.id.to_string();
                // The memory knows what is stored: a re-send goes straight
                // to the comparison, a new event straight to the insert.
                let held = t
                    .row
                    .streams
                    .get(&e.incarnation)
                    .is_some_and(|s| s.holds(e.seq));
                let inserted = !held && insert_event(tx, e, &id, &received_at)?;
                if inserted {
                    stored += 1;
                    if let Some(newer) = t.row.stored(e, &received_at) {
                        if t.row
                            .twins_alerted
                            .insert((e.incarnation.clone(), newer.clone()))
                        {
                            twins.push(TwinAlert {
                                board: e.board.clone(),
                                older: e.incarnation.clone(),
                                newer,
                                at: now,
                            });
                        }
                    }
                    continue;
                }
                let (stored_id, stored_data): (String, String) = tx
                    .prepare_cached(
                        "SELECT id, data FROM events WHERE board = ?1 AND incarnation = ?2 AND seq = ?3",
                    )?
                    .query_row(params![e.board, e.incarnation, e.seq as i64], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })?;
                if stored_id == id && same_json(&stored_data, &e.data) {
                    duplicates += 1;
                    t.duplicate |= t
                        .row
                        .streams
                        .get(&e.incarnation)
                        .is_some_and(|s| e.seq <= s.acked);
                } else {
                    tx.execute(
                        "INSERT INTO integrity_alerts
                         (board, incarnation, seq, stored_id, received_id, received_data, detected_at)
                         VALUES (?1, ?7, ?2, ?3, ?4, ?5, ?6)",
                        params![e.board, e.seq as i64, stored_id, id, e.data, received_at, e.incarnation],
                    )?;
                    alerts.push(IntegrityAlert {
                        board: e.board.clone(),
                        incarnation: e.incarnation.clone(),
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
                     last_event_at = ?6, huddle = ?7, huddle_seq = ?8, current = ?9, chain = ?10
                 WHERE board = ?1",
            )?
            .execute(params![
                board,
                r.area,
                r.acked() as i64,
                r.online as i64,
                r.last_seq as i64,
                r.last_event_at.map(ts),
                huddle_key(r.huddle),
                r.huddle_seq as i64,
                r.current,
                r.streams.get(&r.current).map_or("", |s| s.chain.as_str())
            ])?;
        }
        let was_current = t.before.as_ref().map(|b| b.current.as_str());
        for (incarnation, stream) in &t.row.streams {
            let before = t.before.as_ref().and_then(|b| b.streams.get(incarnation));
            // The current incarnation's ack and chain are in `boards`; its
            // row is written when it appears and when it stops being current.
            let current = *incarnation == t.row.current;
            let unchanged = before.is_some_and(|b| {
                b.acked == stream.acked && b.last_stored_at == stream.last_stored_at
            });
            let keep = if current {
                before.is_some()
            } else {
                unchanged && was_current != Some(incarnation.as_str())
            };
            if keep {
                continue;
            }
            tx.prepare_cached(
                "INSERT INTO incarnations (board, incarnation, base, acked, chain, first_seen, last_stored_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (board, incarnation) DO UPDATE SET
                     acked = excluded.acked, chain = excluded.chain, last_stored_at = excluded.last_stored_at",
            )?
            .execute(params![
                board,
                incarnation,
                stream.base as i64,
                stream.acked as i64,
                stream.chain,
                stream.first_seen,
                stream.last_stored_at
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
        twins,
        refused,
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
    use crate::wire::event::{Envelope, Event, HuddleClosed, HuddleStarted, NeedRef, StartTrigger};
    use crate::wire::payload::IncarnationAck;
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

    fn need_in(inc: &str, base: u64, seq: u64) -> Envelope {
        need("b1", seq, "n").in_incarnation(inc, base)
    }

    fn entry(o: &BatchOutcome, inc: &str) -> IncarnationAck {
        o.boards["b1"]
            .ack
            .incarnation(inc)
            .cloned()
            .expect("listed")
    }

    #[test]
    fn each_incarnation_is_stored_and_acked_apart_with_the_boards_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agg.db");
        let mut s = Store::open(&path).unwrap();
        let old: Vec<Envelope> = (1..=3).map(|q| need_in("aaa", 1, q)).collect();
        s.apply(&old.iter().cloned().map(ev).collect::<Vec<_>>(), at(0))
            .unwrap();
        // The card was reflashed: a new file starts again at seq 1.
        let new: Vec<Envelope> = (1..=2).map(|q| need_in("bbb", 1, q)).collect();
        let o = s
            .apply(&new.iter().cloned().map(ev).collect::<Vec<_>>(), at(1))
            .unwrap();
        assert_eq!(
            o.stats.stored,
            3 + 2,
            "same seqs, other incarnation: stored"
        );
        assert!(o.alerts.is_empty() && o.twins.is_empty());
        let mut chain = chain_start("bbb");
        for e in &new {
            chain = chain_next(&chain, &e.id);
        }
        assert_eq!(
            entry(&o, "bbb"),
            IncarnationAck {
                incarnation: "bbb".into(),
                seq: 2,
                chain
            }
        );
        assert_eq!(entry(&o, "aaa").seq, 3);
        let status = &o.boards["b1"].status;
        assert_eq!(status.incarnation.as_deref(), Some("bbb"));
        assert_eq!(status.replaced_at, Some(at(1)));
        // A restored copy's new incarnation starts above its old ack.
        let ccc: Vec<Envelope> = (40..=43).map(|q| need_in("ccc", 40, q)).collect();
        let o = s
            .apply(&[ev(ccc[1].clone()), ev(ccc[0].clone())], at(2))
            .unwrap();
        assert_eq!(entry(&o, "ccc").seq, 41);
        // All of it survives a restart, a gap included.
        s.apply(&[ev(ccc[3].clone())], at(3)).unwrap();
        drop(s);
        let mut s = Store::open(&path).unwrap();
        let acks = s.acks(at(4));
        assert_eq!(acks[0].1.incarnation("ccc").unwrap().seq, 41);
        let o = s.apply(&[ev(ccc[2].clone())], at(5)).unwrap();
        assert_eq!(entry(&o, "ccc").seq, 43, "the gap filled after a restart");
        let chain = ccc
            .iter()
            .fold(chain_start("ccc"), |c, e| chain_next(&c, &e.id));
        assert_eq!(
            entry(&o, "ccc").chain,
            chain,
            "the chain goes on across the restart"
        );
        assert_eq!(entry(&o, "bbb").seq, 2);
        assert_eq!(o.boards["b1"].status.incarnation.as_deref(), Some("ccc"));
    }

    #[test]
    fn what_cannot_be_a_next_event_is_bad_seq_and_not_stored() {
        let (_dir, mut s) = open();
        let o = s
            .apply(
                &[ev(need("b1", 1, "n")), ev(need("b1", 10u64.pow(15), "n"))],
                at(0),
            )
            .unwrap();
        assert_eq!((o.stats.stored, o.stats.rejected["bad_seq"]), (1, 1));
        assert_eq!(o.refused[0].seq, 10u64.pow(15));
        assert_eq!(o.boards["b1"].status.last_seq, 1);
        // Within reach of the ack it is a gap, stored.
        let o = s
            .apply(&[ev(need("b1", 1 + MAX_SEQ_AHEAD, "n"))], at(1))
            .unwrap();
        assert_eq!(o.stats.stored, 2);
        // A board cannot make endless incarnations.
        let many: Vec<Input> = (0..MAX_INCARNATIONS + 5)
            .map(|i| ev(need_in(&format!("inc{i}"), 1, 1)))
            .collect();
        let o = s.apply(&many, at(2)).unwrap();
        assert_eq!(
            o.stats.rejected["bad_seq"],
            1 + 6,
            "the legacy one counts too"
        );
    }

    #[test]
    fn an_older_incarnation_writing_after_a_newer_one_is_a_twin_alert_once() {
        let (_dir, mut s) = open();
        s.apply(&[ev(need_in("aaa", 1, 1))], at(0)).unwrap();
        s.apply(&[ev(need_in("bbb", 1, 1))], at(1)).unwrap();
        let o = s.apply(&[ev(need_in("aaa", 1, 2))], at(2)).unwrap();
        assert_eq!(o.stats.stored, 3, "both boards' events are kept");
        assert_eq!(
            o.twins,
            [TwinAlert {
                board: "b1".into(),
                older: "aaa".into(),
                newer: "bbb".into(),
                at: at(2)
            }]
        );
        let o = s.apply(&[ev(need_in("aaa", 1, 3))], at(3)).unwrap();
        assert!(o.twins.is_empty(), "once per pair");
        assert_eq!(
            o.boards["b1"].status.incarnation.as_deref(),
            Some("bbb"),
            "the newer stays current"
        );
    }

    #[test]
    fn export_gives_an_event_stored_under_two_incarnations_once_in_order_of_time() {
        let (_dir, mut s) = open();
        let second = need_in("aaa", 1, 2);
        s.apply(&[ev(need_in("aaa", 1, 1)), ev(second.clone())], at(0))
            .unwrap();
        // The board forked after seq 1: seq 2 comes again in a new incarnation.
        let moved = Envelope {
            incarnation: "bbb".into(),
            base: 2,
            ..second
        };
        s.apply(&[ev(moved), ev(need_in("bbb", 2, 3))], at(1))
            .unwrap();
        let mut rows = Vec::new();
        s.for_each_event(|r| {
            rows.push((r.incarnation, r.seq));
            Ok::<_, StoreError>(())
        })
        .unwrap();
        let aaa = |q| ("aaa".to_owned(), q);
        assert_eq!(rows, [aaa(1), aaa(2), ("bbb".to_owned(), 3)]);
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
        assert_eq!((b.ack_moved, b.ack.seq), (true, 2));
        assert!(b.ack_due());
        assert_eq!(b.status.last_seq, 2);

        let o = s.apply(&[ev(need("b1", 6, "n"))], at(1)).unwrap();
        assert_eq!(o.boards["b1"].ack.seq, 2);
        assert!(
            !o.boards["b1"].ack_due(),
            "a gap above the ack publishes nothing"
        );

        let o = s.apply(&[ev(need("b1", 3, "n"))], at(2)).unwrap();
        assert_eq!(o.boards["b1"].ack.seq, 4);
        let o = s.apply(&[ev(need("b1", 5, "n"))], at(3)).unwrap();
        assert_eq!(o.boards["b1"].ack.seq, 6);
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
        assert_eq!(
            (o.boards["b1"].ack_moved, o.boards["b1"].ack.seq),
            (true, 3)
        );
        assert_eq!(schema_version(&path).unwrap(), MIGRATIONS.len() as i64);
    }

    #[test]
    fn a_version_3_file_keeps_its_events_and_acks_through_migrations_4_and_5() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agg.db");
        let two = need("b1", 2, "n");
        {
            // A file as version 3 wrote it: events clustered by (board, seq).
            let mut conn = Connection::open(&path).unwrap();
            migrate_to(&mut conn, &path, 3).unwrap();
            let tx = conn.transaction().unwrap();
            for e in [need("b1", 1, "n"), two.clone(), need("b1", 4, "n")] {
                tx.execute(
                    "INSERT INTO events (board, seq, id, at, clock_synced, kind, data, received_at)
                     VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6, ?4)",
                    params![
                        e.board,
                        e.seq as i64,
                        e.id.to_string(),
                        ts(e.at),
                        e.kind,
                        e.data.to_string()
                    ],
                )
                .unwrap();
            }
            tx.execute(
                "INSERT INTO boards (board, area, acked, last_seq, first_seen) VALUES ('b1', 'a', 2, 4, ?1)",
                [ts(at(0))],
            )
            .unwrap();
            tx.commit().unwrap();
        }
        let mut s = Store::open(&path).unwrap();
        assert_eq!(schema_version(&path).unwrap(), MIGRATIONS.len() as i64);
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
            "(board, incarnation, seq) is unique in the file, not only in memory"
        );
        assert_eq!(o.boards["b1"].ack.seq, 4, "seq 4, stored before, is found");
        let plan: String = s
            .conn
            .query_row(
                "EXPLAIN QUERY PLAN SELECT id FROM events WHERE board = 'b1' AND incarnation = '' AND seq = 2",
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
            assert_eq!(o.boards["b1"].ack.seq, 1);
        }
        let mut s = Store::open(&path).unwrap();
        // seq 3 is known to be stored: a re-send of it is a duplicate...
        let o = s.apply(&[ev(three)], at(1)).unwrap();
        assert_eq!((o.stats.stored, o.stats.duplicates), (2, 1));
        // ...and filling the gap moves the ack over it.
        let o = s.apply(&[ev(need("b1", 2, "n"))], at(2)).unwrap();
        assert_eq!(
            (o.boards["b1"].ack_moved, o.boards["b1"].ack.seq),
            (true, 3)
        );
        let mut again = Store::open(&path).unwrap();
        assert_eq!(again.boards()[0].1.last_seq, 3);
        let o = again.apply(&[ev(need("b1", 4, "n"))], at(3)).unwrap();
        assert_eq!(o.boards["b1"].ack.seq, 4);
    }

    #[test]
    fn an_exact_duplicate_is_counted_and_republishes_the_ack() {
        let (_dir, mut s) = open();
        let first = need("b1", 1, "n");
        s.apply(&[ev(first.clone())], at(0)).unwrap();
        let o = s.apply(&[ev(first.clone())], at(1)).unwrap();
        let b = &o.boards["b1"];
        assert_eq!(b.ack.seq, 1);
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
