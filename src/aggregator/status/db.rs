//! The live status's reads of the site file, once at start: every known
//! board (area, `online` flag, ack, newest event), the huddles of the last
//! two days with their taps and steps, every need (open escalations can
//! be old) and the boards' coaching observations. After that the status
//! thread is fed by the ingest writer after each commit and never reads
//! the file again.
//!
//! Read only, on a connection of its own (WAL): the ingest writer owns
//! every write. The huddle start/close and need events are read through
//! the *partial* index `events_status`
//! ([`LIVE_STATUS`](crate::aggregator::store::migrations::LIVE_STATUS), its
//! `WHERE` rewritten by migration 4), so the start reads a few index pages
//! rather than scanning years of taps; taps and steps are then read per
//! board by `(board, seq)` from the first recent huddle on. A board's
//! `first_seen` (same migration) says since when its slots count.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use rusqlite::{params, Connection};

use super::rules::{Site, StoredEvent};
use crate::aggregator::store::{open_read_only, StoreError};
use crate::wire::time::parse_ts;

/// The query the partial index serves (its `WHERE` must be the index's,
/// as migration 4 made it: see
/// [`MIGRATIONS`](crate::aggregator::store::migrations::MIGRATIONS)).
const INDEXED_EVENTS: &str = "SELECT board, seq, at, kind, data
     FROM events INDEXED BY events_status
     WHERE kind = 'huddle.started' OR kind = 'huddle.closed' OR kind = 'need.raised'
        OR kind = 'need.escalated' OR kind = 'need.closed'";

/// Taps and steps of one board from a seq on (a range of the `(board, seq)`
/// index).
const HUDDLE_DETAIL: &str = "SELECT seq, at, kind, data FROM events
     WHERE board = ?1 AND seq >= ?2 AND kind IN ('attendance.tapped', 'huddle.advanced')";

/// The coaching index's query (see [`crate::aggregator::coaching::db`]).
const OBSERVATIONS: &str = "SELECT board, seq, at, kind, data
     FROM events INDEXED BY events_observations
     WHERE kind = 'observation.recorded' OR kind = 'observation.acknowledged'";

/// Huddles started longer ago than this are not read back.
const RECENT: Duration = Duration::hours(48);

/// A read-only connection to the aggregator's file.
pub struct StatusDb {
    conn: Connection,
    path: PathBuf,
}

/// One row as read.
struct Row {
    board: String,
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
        let with_board = stmt.column_count() == 5;
        let mut rows = stmt.query(args).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let o = usize::from(with_board);
            let row = (|| {
                Ok::<_, rusqlite::Error>((
                    if with_board {
                        r.get::<_, String>(0)?
                    } else {
                        String::new()
                    },
                    r.get::<_, i64>(o)? as u64,
                    r.get::<_, String>(o + 1)?,
                    r.get::<_, String>(o + 2)?,
                    r.get::<_, String>(o + 3)?,
                ))
            })()
            .map_err(|e| self.err(e))?;
            // A time the writer stored is always RFC 3339; a file edited
            // by hand loses that row, not the start.
            if let Some(at) = parse_ts(&row.2) {
                out.push(Row {
                    board: row.0,
                    seq: row.1,
                    at,
                    kind: row.3,
                    data: row.4,
                });
            }
        }
        Ok(out)
    }

    /// Loads the state at `now` into `site`; returns how many events it read.
    pub fn load(&self, site: &mut Site, now: DateTime<Utc>) -> Result<usize, StoreError> {
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
        let mut read = 0;
        let mut apply = |site: &mut Site, board: &str, r: &Row| {
            let Some(area) = areas.get(board) else {
                return;
            };
            let e = StoredEvent {
                board,
                seq: r.seq,
                at: r.at,
                kind: &r.kind,
                data: &r.data,
            };
            site.event(area, e, false, now);
            read += 1;
        };
        // The first recent huddle start of each board.
        let mut first_recent: BTreeMap<String, u64> = BTreeMap::new();
        for r in self.rows(INDEXED_EVENTS, [])? {
            if r.kind.starts_with("huddle.") {
                if now - r.at >= RECENT {
                    continue;
                }
                if r.kind == "huddle.started" {
                    let first = first_recent.entry(r.board.clone()).or_insert(r.seq);
                    *first = (*first).min(r.seq);
                }
            }
            apply(site, &r.board.clone(), &r);
        }
        for (board, from) in &first_recent {
            for r in self.rows(HUDDLE_DETAIL, params![board, *from as i64])? {
                apply(site, board, &r);
            }
        }
        for r in self.rows(OBSERVATIONS, [])? {
            if r.kind == "observation.recorded" {
                apply(site, &r.board.clone(), &r);
            }
        }
        Ok(read)
    }
}
