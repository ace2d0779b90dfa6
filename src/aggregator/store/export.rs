//! The file read back: every stored event once, in order, for the
//! `export` command ([`Store::for_each_event`]), and the integrity alerts.

use serde::Serialize;

use super::{IntegrityAlert, Store, StoreError};

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

impl Store {
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
    ///
    /// Design: one range of the `(board, incarnation, seq)` index per
    /// incarnation, streamed as SQLite walks it. One query joined with
    /// `incarnations` and ordered by its `first_seen` made SQLite sort each
    /// board's whole history in a temporary b-tree first: the export's
    /// memory and its time per row grew with the history (`cargo bench
    /// --bench history`). The ids seen are kept only for a board with more
    /// than one incarnation.
    pub fn for_each_event<E>(&self, mut f: impl FnMut(EventRow) -> Result<(), E>) -> Result<(), E>
    where
        E: From<StoreError>,
    {
        let streams: Vec<(String, String)> = (|| {
            let mut stmt = self.conn.prepare(
                "SELECT board, incarnation FROM incarnations ORDER BY board, first_seen, incarnation",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })()
        .map_err(|e| self.err(e))?;
        let mut events = self
            .conn
            .prepare(
                "SELECT seq, id, at, kind, data FROM events
                 WHERE board = ?1 AND incarnation = ?2 ORDER BY seq",
            )
            .map_err(|e| self.err(e))?;
        let mut seen = std::collections::HashSet::new();
        for (i, (board, incarnation)) in streams.iter().enumerate() {
            let first = i == 0 || streams[i - 1].0 != *board;
            let more = streams.get(i + 1).is_some_and(|n| n.0 == *board);
            if first {
                seen.clear();
            }
            // Only a board with several incarnations can hold one event twice.
            let dedupe = !first || more;
            let mut rows = events
                .query(rusqlite::params![board, incarnation])
                .map_err(|e| self.err(e))?;
            while let Some(r) = rows.next().map_err(|e| self.err(e))? {
                let row = (|| {
                    Ok::<_, rusqlite::Error>(EventRow {
                        board: board.clone(),
                        incarnation: incarnation.clone(),
                        seq: r.get::<_, i64>(0)? as u64,
                        id: r.get(1)?,
                        at: r.get(2)?,
                        kind: r.get(3)?,
                        data: r.get(4)?,
                    })
                })()
                .map_err(|e| self.err(e))?;
                if !dedupe || seen.insert(row.id.clone()) {
                    f(row)?;
                }
            }
        }
        Ok(())
    }
}
