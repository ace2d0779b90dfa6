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
