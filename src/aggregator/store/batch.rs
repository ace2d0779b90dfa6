//! One group commit: what the writer records ([`Input`]), the one
//! transaction that records it ([`Store::apply`]), and what it did
//! ([`BatchOutcome`]: per board the ack and status after the commit, the
//! integrity and twin alerts, the refused events, the counters).
//!
//! Inserting is idempotent: a second message with the same `(board,
//! incarnation, seq)` and the same `id` and `data` is a duplicate; with a
//! different `id` or `data` it is an integrity alert (kept in
//! `integrity_alerts`); the first one stored is always kept.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, Transaction};
use serde::{Deserialize, Serialize};

use super::boards::{huddle_key, BoardRow};
use super::{Store, StoreError};
use crate::aggregator::validate::{Incoming, Reason};
use crate::wire::payload::{Ack, BoardStatus};
use crate::wire::time::ts;

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

pub(super) fn read_stats(conn: &Connection) -> rusqlite::Result<Stats> {
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
        let began = std::time::Instant::now();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql)?;
        let done = apply_in(&tx, &self.boards, &self.stats, batch, now).map_err(sql)?;
        tx.commit().map_err(sql)?;
        super::commit_seconds().observe(began.elapsed().as_secs_f64());
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

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
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
pub(super) struct Done {
    touched: HashMap<String, Touch>,
    pub(super) alerts: Vec<IntegrityAlert>,
    twins: Vec<TwinAlert>,
    refused: Vec<Refused>,
    pub(super) stats: Stats,
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

pub(super) fn apply_in(
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
