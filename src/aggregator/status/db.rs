//! The live status's reads of the site file, once at start: every known
//! board (area, `online` flag, ack, newest event), the huddles of the last
//! two days with their taps and steps, the needs still open (escalations
//! can be old) and the boards' coaching observations. After that the
//! status thread is fed by the ingest writer after each commit and never
//! reads the file again.
//!
//! Read only, on a connection of its own (WAL): the ingest writer owns
//! every write. What is read does not grow with the site's history where
//! the status does not need it to:
//! - **Huddles**: the starts and closes of the partial index
//!   `events_status`
//!   ([`LIVE_STATUS`](crate::aggregator::store::migrations::LIVE_STATUS), its
//!   `WHERE` rewritten by migration 4) *from the first row received in
//!   the last two days on*: the index holds `(kind, rowid)`, and rows are
//!   appended in arrival order, so a binary search over `received_at` by
//!   rowid ([`StatusDb::first_recent_row`]) bounds the range. Taps and
//!   steps are then read per board and incarnation by the `(board,
//!   incarnation, seq)` index from the first recent huddle on.
//! - **Needs**: every need event (the same index), but the needs that
//!   were closed are dropped before the fold (the status drops them at its
//!   first evaluation anyway): only open needs take memory.
//! - **Observations**: the `observation.recorded` of the same index,
//!   newest arrival first, until every board's last one was seen.
//!
//! [`StatusDb::load_full`] replays every event instead: the reference
//! that a test holds [`StatusDb::load`] equal to.
//!
//! A board's `first_seen` (migration 3) says since when its slots count.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use super::rules::{Site, StoredEvent};
use crate::aggregator::store::{open_read_only, StoreError};
use crate::wire::time::{parse_ts, ts};

/// Huddle starts and closes from a rowid on: the partial index's
/// `(kind, rowid)` range (its `WHERE` must be the index's, as migration 4
/// made it: see
/// [`MIGRATIONS`](crate::aggregator::store::migrations::MIGRATIONS)).
const RECENT_HUDDLES: &str = "SELECT board, incarnation, seq, at, kind, data
     FROM events INDEXED BY events_status
     WHERE (kind = 'huddle.started' OR kind = 'huddle.closed' OR kind = 'need.raised'
        OR kind = 'need.escalated' OR kind = 'need.closed')
       AND (kind = 'huddle.started' OR kind = 'huddle.closed') AND rowid >= ?1";

/// Every need event, by the same index.
const NEEDS: &str = "SELECT board, incarnation, seq, at, kind, data
     FROM events INDEXED BY events_status
     WHERE (kind = 'huddle.started' OR kind = 'huddle.closed' OR kind = 'need.raised'
        OR kind = 'need.escalated' OR kind = 'need.closed')
       AND (kind = 'need.raised' OR kind = 'need.escalated' OR kind = 'need.closed')";

/// Taps and steps of one board's incarnation from a seq on (a range of
/// the `(board, incarnation, seq)` index).
const HUDDLE_DETAIL: &str = "SELECT board, incarnation, seq, at, kind, data FROM events
     WHERE board = ?1 AND incarnation = ?2 AND seq >= ?3
       AND kind IN ('attendance.tapped', 'huddle.advanced')";

/// The recorded observations by the coaching index (see
/// [`crate::aggregator::coaching::db`]), newest arrival first.
const OBSERVATIONS: &str = "SELECT board, incarnation, seq, at, kind, data, received_at
     FROM events INDEXED BY events_observations
     WHERE (kind = 'observation.recorded' OR kind = 'observation.acknowledged')
       AND kind = 'observation.recorded'
     ORDER BY rowid DESC";

/// Every event the rules read, in each board's order (the reference).
const EVERY_EVENT: &str = "SELECT board, incarnation, seq, at, kind, data FROM events
     ORDER BY board, incarnation, seq";

/// The first stored row at or after a rowid, with its arrival.
const ROW_AT_OR_AFTER: &str =
    "SELECT rowid, received_at FROM events WHERE rowid >= ?1 ORDER BY rowid LIMIT 1";
/// Huddles started longer ago than this are not read back.
const RECENT: Duration = Duration::hours(48);
/// Rows received this much before [`RECENT`] are read too: an event may
/// be dated up to an hour after its arrival
/// ([`MAX_AHEAD`](crate::aggregator::validate::MAX_AHEAD)), and the
/// aggregator's clock may have been stepped back a little.
const ARRIVAL_MARGIN: Duration = Duration::hours(2);

/// A read-only connection to the aggregator's file.
pub struct StatusDb {
    conn: Connection,
    path: PathBuf,
}

/// One row as read.
struct Row {
    board: String,
    incarnation: String,
    seq: u64,
    at: DateTime<Utc>,
    kind: String,
    data: String,
}

impl StatusDb {
    /// Opens the file read-only. It must exist and be migrated
    /// ([`crate::aggregator::store::Store::open`] first).
    pub fn open(path: &Path) -> Result<StatusDb, StoreError> {
        Ok(StatusDb {
            conn: open_read_only(path)?,
            path: path.to_owned(),
        })
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn rows(&self, sql: &str, args: impl rusqlite::Params) -> Result<Vec<Row>, StoreError> {
        let mut stmt = self.conn.prepare(sql).map_err(|e| self.err(e))?;
        let mut rows = stmt.query(args).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let row = (|| {
                Ok::<_, rusqlite::Error>((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)? as u64,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                ))
            })()
            .map_err(|e| self.err(e))?;
            // A time the writer stored is always RFC 3339; a file edited
            // by hand loses that row, not the start.
            if let Some(at) = parse_ts(&row.3) {
                out.push(Row {
                    board: row.0,
                    incarnation: row.1,
                    seq: row.2,
                    at,
                    kind: row.4,
                    data: row.5,
                });
            }
        }
        Ok(out)
    }

    /// The first row received at or after `since` (the end of the table
    /// when none was): a binary search by rowid, as the writer appends
    /// rows in arrival order. O(log n) index lookups.
    pub fn first_recent_row(&self, since: DateTime<Utc>) -> Result<i64, StoreError> {
        let since = ts(since);
        let at_or_after = |rowid: i64| -> Result<Option<(i64, String)>, StoreError> {
            self.conn
                .query_row(ROW_AT_OR_AFTER, params![rowid], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
                .map_err(|e| self.err(e))
        };
        let last: Option<i64> = self
            .conn
            .query_row("SELECT max(rowid) FROM events", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        let Some(last) = last else {
            return Ok(0);
        };
        // Whether the first row at or after `rowid` arrived at or after
        // `since` (true past the end): false, then true, as rowid grows.
        let recent = |rowid: i64| -> Result<bool, StoreError> {
            Ok(at_or_after(rowid)?.is_none_or(|(_, received)| received >= since))
        };
        let (mut lo, mut hi) = (0i64, last + 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if recent(mid)? {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        Ok(at_or_after(lo)?.map_or(last + 1, |(rowid, _)| rowid))
    }

    /// The boards, with what the `boards` and `incarnations` rows say;
    /// returns each board's area.
    fn boards(
        &self,
        site: &mut Site,
        now: DateTime<Utc>,
    ) -> Result<BTreeMap<String, String>, StoreError> {
        type BoardRow = (String, String, u64, bool, Option<String>, Option<String>);
        let boards: Vec<BoardRow> = (|| {
            // When the board was first seen; for boards older than this
            // column, its first event's arrival (by the `(board, seq)` index).
            let mut stmt = self.conn.prepare(
                "SELECT board, area, acked, online, last_event_at,
                     coalesce(first_seen, (SELECT received_at FROM events e
                         WHERE e.board = boards.board ORDER BY seq LIMIT 1))
                 FROM boards",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get::<_, i64>(2)? as u64,
                    r.get::<_, i64>(3)? != 0,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })()
        .map_err(|e| self.err(e))?;
        let mut areas = BTreeMap::new();
        for (board, area, acked, online, last, first) in boards {
            let last = last.as_deref().and_then(parse_ts);
            let first = first.as_deref().and_then(parse_ts);
            site.known(&area, &board, online, acked, last, first, now);
            areas.insert(board, area);
        }
        // Boards whose file was replaced: the newest of two or more
        // incarnations (the legacy one of boards not yet upgraded aside).
        let replaced: Vec<(String, String)> = (|| {
            let mut stmt = self.conn.prepare(
                "SELECT board, MAX(first_seen) FROM incarnations WHERE incarnation != ''
                 GROUP BY board HAVING COUNT(*) > 1",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })()
        .map_err(|e| self.err(e))?;
        for (board, at) in replaced {
            if let Some(at) = parse_ts(&at) {
                site.replaced(&board, at);
            }
        }
        Ok(areas)
    }

    /// Loads the state at `now` into `site`; returns how many events it
    /// read. Reads what the status needs, not the history (see the module
    /// docs).
    pub fn load(&self, site: &mut Site, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let areas = self.boards(site, now)?;
        let mut read = 0;
        let mut apply = |site: &mut Site, r: &Row| {
            let Some(area) = areas.get(&r.board) else {
                return;
            };
            let e = StoredEvent {
                board: &r.board,
                seq: r.seq,
                at: r.at,
                kind: &r.kind,
                data: &r.data,
            };
            site.event(area, e, false, now);
            read += 1;
        };
        // The first recent huddle start of each board's incarnation.
        let from = self.first_recent_row(now - RECENT - ARRIVAL_MARGIN)?;
        let mut first_recent: BTreeMap<(String, String), u64> = BTreeMap::new();
        for r in self.rows(RECENT_HUDDLES, params![from])? {
            if now - r.at >= RECENT {
                continue;
            }
            if r.kind == "huddle.started" {
                let first = first_recent
                    .entry((r.board.clone(), r.incarnation.clone()))
                    .or_insert(r.seq);
                *first = (*first).min(r.seq);
            }
            apply(site, &r);
        }
        for ((board, incarnation), from) in &first_recent {
            for r in self.rows(HUDDLE_DETAIL, params![board, incarnation, *from as i64])? {
                apply(site, &r);
            }
        }
        // Needs: a closed need is dropped at the first evaluation, so its
        // events are not folded at all.
        let needs = self.rows(NEEDS, [])?;
        let closed: std::collections::HashSet<(&str, String)> = needs
            .iter()
            .filter(|r| r.kind == "need.closed")
            .filter_map(|r| Some((r.board.as_str(), need_id(&r.data)?)))
            .collect();
        for r in &needs {
            let open = need_id(&r.data).is_none_or(|id| !closed.contains(&(r.board.as_str(), id)));
            if open {
                apply(site, r);
            }
        }
        // Each board's last level 3 observation: newest arrivals first,
        // until every board has one and the rows are older than the
        // oldest of those by more than a clock may be off. (A board never
        // observed makes this read them all: about one event in a
        // hundred.)
        let mut stmt = self.conn.prepare(OBSERVATIONS).map_err(|e| self.err(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        let mut last: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let (row, received) = (|| {
                Ok::<_, rusqlite::Error>((
                    (
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)? as u64,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                    ),
                    r.get::<_, String>(6)?,
                ))
            })()
            .map_err(|e| self.err(e))?;
            // An older arrival is dated at most MAX_AHEAD after it.
            let received = parse_ts(&received).unwrap_or(DateTime::<Utc>::MAX_UTC);
            if last.len() == areas.len()
                && last
                    .values()
                    .min()
                    .is_some_and(|t| received + ARRIVAL_MARGIN < *t)
            {
                break;
            }
            let Some(at) = parse_ts(&row.3) else {
                continue;
            };
            let row = Row {
                board: row.0,
                incarnation: row.1,
                seq: row.2,
                at,
                kind: row.4,
                data: row.5,
            };
            if areas.contains_key(&row.board) && facilitation(&row.data) {
                let t = last.entry(row.board.clone()).or_insert(row.at);
                *t = (*t).max(row.at);
            }
            apply(site, &row);
        }
        Ok(read)
    }

    /// The reference for [`StatusDb::load`]: the same boards, then every
    /// stored event the rules read, each board's by incarnation and seq. Reads
    /// the whole history: for tests and checks, not for a start.
    pub fn load_full(&self, site: &mut Site, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let areas = self.boards(site, now)?;
        let mut read = 0;
        for r in self.rows(EVERY_EVENT, [])? {
            let Some(area) = areas.get(&r.board) else {
                continue;
            };
            if !super::rules::reads(&r.kind) {
                continue;
            }
            let e = StoredEvent {
                board: &r.board,
                seq: r.seq,
                at: r.at,
                kind: &r.kind,
                data: &r.data,
            };
            site.event(area, e, false, now);
            read += 1;
        }
        Ok(read)
    }
}

/// Whether an `observation.recorded` payload is a level 3 one (a team
/// leader's huddle).
fn facilitation(data: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Level {
        level: crate::domain::ObservationLevel,
    }
    serde_json::from_str::<Level>(data)
        .is_ok_and(|l| l.level == crate::domain::ObservationLevel::Facilitation)
}

/// The `need_id` of a need event's payload.
fn need_id(data: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Need {
        need_id: String,
    }
    serde_json::from_str::<Need>(data).ok().map(|n| n.need_id)
}
