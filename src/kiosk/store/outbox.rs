//! The outbox and the file's incarnation: appending events with the
//! board's next `seq` and chain digest, reading them for the publisher,
//! and applying the aggregator's acks (see the store's module doc).

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use super::{Store, StoreError, Tx};
use crate::wire::event::{chain_next, chain_start, Envelope, Event};
use crate::wire::payload::{Ack, IncarnationAck};
use crate::wire::time::ts;

/// One undelivered outbox row, for the publisher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// The board's sequence number.
    pub seq: u64,
    /// The event kind (a topic level).
    pub kind: String,
    /// The exact JSON envelope, the MQTT payload.
    pub body: String,
}

/// What [`Store::mark_delivered`] did with an ack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The remembered ack after this one (lower than before only when
    /// [`Delivered::rewound`]).
    pub acked: u64,
    /// The board's last `seq` at the time.
    pub last_seq: u64,
    /// The ack showed another file writing under this incarnation: a new
    /// one was started and the undelivered rows moved into it.
    pub fork: Option<Fork>,
    /// The site's file went back (a newer ack holds less than the
    /// remembered one, see [`Store::mark_delivered`]): the remembered ack
    /// it was lowered from. Every row above `acked` is to be sent again.
    pub rewound: Option<u64>,
}

/// A new incarnation started because the aggregator's ack disagreed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fork {
    /// The incarnation the ack named.
    pub old: String,
    /// The new one.
    pub new: String,
    /// Its first `seq` (the remembered ack + 1).
    pub base: u64,
    /// What disagreed (for the log).
    pub why: String,
}

/// The file's current incarnation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incarnation {
    /// Its id (32 hex digits).
    pub id: String,
    /// Its first `seq`.
    pub base: u64,
    /// The chain digest after the board's last `seq`.
    pub chain: String,
    /// When it started.
    pub started_at: String,
    /// Why: `new file`, `migrated`, or what the ack showed.
    pub reason: String,
}

pub(super) fn read_incarnation(conn: &Connection) -> rusqlite::Result<Incarnation> {
    conn.query_row(
        "SELECT id, base, chain, started_at, reason FROM incarnation",
        [],
        |r| {
            Ok(Incarnation {
                id: r.get(0)?,
                base: r.get::<_, i64>(1)? as u64,
                chain: r.get(2)?,
                started_at: r.get(3)?,
                reason: r.get(4)?,
            })
        },
    )
}

/// The `at` of the newest ack that moved the remembered ack, in
/// milliseconds since the epoch (0 before the first, and in files from
/// before it was kept).
const ACKED_AT: &str = "acked_at";

fn counter_or_zero(conn: &Connection, name: &str) -> rusqlite::Result<u64> {
    Ok(counter(conn, name).optional()?.unwrap_or(0))
}

fn set_counter(conn: &Connection, name: &str, value: u64) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO counters (name, value) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        params![name, value as i64],
    )?;
    Ok(())
}

fn counter(conn: &Connection, name: &str) -> rusqlite::Result<u64> {
    conn.query_row("SELECT value FROM counters WHERE name = ?1", [name], |r| {
        r.get::<_, i64>(0)
    })
    .map(|v| v as u64)
}

/// Starts a new incarnation from the remembered ack + 1 and moves every
/// row above the ack into it (inside the caller's transaction).
pub(super) fn start_incarnation(
    conn: &Connection,
    now: DateTime<Utc>,
    reason: &str,
) -> rusqlite::Result<Incarnation> {
    let acked = counter(conn, "acked")?;
    let id = uuid::Uuid::now_v7().simple().to_string();
    let base = acked + 1;
    let mut chain = chain_start(&id);
    let rows: Vec<(i64, String)> = conn
        .prepare("SELECT seq, body FROM outbox WHERE seq > ?1 ORDER BY seq")?
        .query_map([acked as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut update = conn.prepare("UPDATE outbox SET body = ?2, chain = ?3 WHERE seq = ?1")?;
    for (seq, body) in rows {
        let env: Envelope = serde_json::from_str(&body).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Text, Box::new(e))
        })?;
        let env = env.in_incarnation(&id, base);
        chain = chain_next(&chain, &env.id);
        update.execute(params![seq, env.to_json(), chain])?;
    }
    conn.execute("DELETE FROM incarnation", [])?;
    conn.execute(
        "INSERT INTO incarnation (id, base, chain, started_at, reason) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, base as i64, chain, ts(now), reason],
    )?;
    read_incarnation(conn)
}

impl Store {
    /// The board's events with `seq > since`, oldest first, exactly as they
    /// go on the wire.
    pub fn events_since(&self, since: u64) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT body FROM outbox WHERE seq > ?1 ORDER BY seq")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([since as i64], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<_>, _>>();
        rows.map_err(|e| self.err(e))
    }

    /// The highest `seq` assigned so far (0 before the first event).
    pub fn last_seq(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row("SELECT value FROM counters WHERE name = 'seq'", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|v| v as u64)
            .map_err(|e| self.err(e))
    }

    /// Events not yet delivered.
    pub fn undelivered(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|v| v as u64)
            .map_err(|e| self.err(e))
    }

    /// The aggregator's last ack that this board remembers (0 before any).
    pub fn acked(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row("SELECT value FROM counters WHERE name = 'acked'", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|v| v as u64)
            .map_err(|e| self.err(e))
    }

    /// Outbox rows with `from <= seq <= through`, in seq order.
    pub fn outbox_rows(&self, from: u64, through: u64) -> Result<Vec<OutboxRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, kind, body FROM outbox WHERE seq >= ?1 AND seq <= ?2 ORDER BY seq",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([from as i64, through as i64], |r| {
                Ok(OutboxRow {
                    seq: r.get::<_, i64>(0)? as u64,
                    kind: r.get(1)?,
                    body: r.get(2)?,
                })
            })
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<_>, _>>();
        rows.map_err(|e| self.err(e))
    }

    /// The file's current incarnation.
    pub fn incarnation(&self) -> Result<Incarnation, StoreError> {
        read_incarnation(&self.conn).map_err(|e| self.err(e))
    }

    /// The ack entry that acknowledges exactly this file's events of its
    /// current incarnation up to `seq` (`None` when that row is not in the
    /// outbox, or is not of the current incarnation). For tests and tools
    /// that stand in for the aggregator.
    pub fn ack_for(&self, seq: u64) -> Result<Option<IncarnationAck>, StoreError> {
        let inc = self.incarnation()?;
        let chain: Option<String> = self
            .conn
            .query_row(
                "SELECT chain FROM outbox WHERE seq = ?1",
                [seq as i64],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?
            .flatten();
        Ok(chain
            .filter(|_| seq >= inc.base)
            .map(|chain| IncarnationAck {
                incarnation: inc.id,
                seq,
                chain,
            }))
    }

    /// Applies the aggregator's ack in one short transaction. Only the
    /// entry of this file's incarnation counts, and only when this file
    /// wrote exactly what it covers (see the module doc): then rows up to
    /// it get `delivered_at = now` and the ack is remembered (counter
    /// `acked`, with the ack's `at`). When the entry is beyond the last
    /// `seq`, or its chain digest differs from the row's, a new
    /// incarnation starts ([`Delivered::fork`]) and nothing is marked.
    ///
    /// An entry below the remembered ack is an old ack arriving late
    /// (ignored) unless it is newer than the ack that moved it last: then
    /// the site's file went back, restored from a backup, and lost what
    /// came after it. The remembered ack is lowered to the entry and
    /// every row above it is to be sent again ([`Delivered::rewound`]).
    /// When some of those rows were already pruned, nobody holds them any
    /// more: the rows still held move into a new incarnation from the
    /// first of them, so that the aggregator acks them again past the
    /// gap, and the gap stays in the old incarnation for the integrity
    /// report to show.
    pub fn mark_delivered(
        &mut self,
        ack: &Ack,
        now: DateTime<Utc>,
    ) -> Result<Delivered, StoreError> {
        let path = self.path.clone();
        let sql = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql)?;
        let last_seq = counter(&tx, "seq").map_err(sql)?;
        let before = counter(&tx, "acked").map_err(sql)?;
        let current = read_incarnation(&tx).map_err(sql)?;
        let Some(entry) = ack.incarnation(&current.id) else {
            return Ok(Delivered {
                acked: before,
                last_seq,
                fork: None,
                rewound: None,
            });
        };
        let at = ack.at.timestamp_millis().max(0) as u64;
        let went_back = entry.seq < before && at > counter_or_zero(&tx, ACKED_AT).map_err(sql)?;
        let why = if entry.seq > last_seq {
            Some(format!(
                "the aggregator holds seq {} of this incarnation, this file ends at {last_seq}",
                entry.seq
            ))
        } else if entry.seq > before || (went_back && entry.seq >= current.base) {
            let mine: Option<String> = tx
                .query_row(
                    "SELECT chain FROM outbox WHERE seq = ?1",
                    [entry.seq as i64],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql)?
                .flatten();
            // A row pruned below the remembered ack cannot be compared;
            // the aggregator's next ack checks what is sent again.
            let pruned = mine.is_none() && entry.seq < before;
            (!pruned && mine.as_deref() != Some(entry.chain.as_str())).then(|| {
                format!(
                    "the aggregator's events up to seq {} are not this file's",
                    entry.seq
                )
            })
        } else {
            None
        };
        if let Some(why) = why {
            let new = start_incarnation(&tx, now, &why).map_err(sql)?;
            tx.commit().map_err(sql)?;
            return Ok(Delivered {
                acked: before,
                last_seq,
                fork: Some(Fork {
                    old: current.id,
                    new: new.id,
                    base: new.base,
                    why,
                }),
                rewound: None,
            });
        }
        if went_back {
            return rewind(tx, entry.seq, before, last_seq, at, now).map_err(sql);
        }
        let acked = entry.seq.max(before);
        if acked > before {
            tx.execute(
                "UPDATE outbox SET delivered_at = ?2 WHERE seq <= ?1 AND delivered_at IS NULL",
                params![acked as i64, ts(now)],
            )
            .map_err(sql)?;
            tx.execute(
                "UPDATE counters SET value = ?1 WHERE name = 'acked'",
                [acked as i64],
            )
            .map_err(sql)?;
            set_counter(&tx, ACKED_AT, at).map_err(sql)?;
        }
        tx.commit().map_err(sql)?;
        Ok(Delivered {
            acked,
            last_seq,
            fork: None,
            rewound: None,
        })
    }

    /// Deletes events delivered before `before`; returns how many. `seq`
    /// lives in the counter, so a pruned number is never reused.
    pub fn prune_delivered(&self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        self.conn
            .execute(
                "DELETE FROM outbox WHERE delivered_at IS NOT NULL AND delivered_at < ?1",
                [ts(before)],
            )
            .map_err(|e| self.err(e))
    }
}

/// The site's file went back to `seq` (see [`Store::mark_delivered`]):
/// lowers the remembered ack from `before` and marks every row above it
/// undelivered, or, when rows above it were pruned, moves the rows still
/// held into a new incarnation. Commits `tx`.
fn rewind(
    tx: rusqlite::Transaction<'_>,
    seq: u64,
    before: u64,
    last_seq: u64,
    at: u64,
    now: DateTime<Utc>,
) -> rusqlite::Result<Delivered> {
    let first_held: Option<i64> = tx.query_row("SELECT min(seq) FROM outbox", [], |r| r.get(0))?;
    let first_held = first_held.map_or(last_seq + 1, |s| s as u64);
    let acked = seq.max(first_held.saturating_sub(1));
    tx.execute(
        "UPDATE outbox SET delivered_at = NULL WHERE seq > ?1",
        [acked as i64],
    )?;
    tx.execute(
        "UPDATE counters SET value = ?1 WHERE name = 'acked'",
        [acked as i64],
    )?;
    set_counter(&tx, ACKED_AT, at)?;
    let fork = if acked > seq {
        let old = read_incarnation(&tx)?.id;
        let why = format!(
            "the aggregator's events went back to seq {seq} (its file restored from a backup) and this file no longer holds {} to {acked}",
            seq + 1
        );
        let new = start_incarnation(&tx, now, &why)?;
        Some(Fork {
            old,
            new: new.id,
            base: new.base,
            why,
        })
    } else {
        None
    };
    tx.commit()?;
    Ok(Delivered {
        acked,
        last_seq,
        fork,
        rewound: Some(before),
    })
}

impl Tx<'_> {
    /// Appends an event to the outbox with the board's next `seq`.
    pub fn emit(&mut self, event: &Event) -> Result<u64, StoreError> {
        let seq: i64 = self
            .tx
            .query_row(
                "UPDATE counters SET value = value + 1 WHERE name = 'seq' RETURNING value",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        let inc = read_incarnation(&self.tx).map_err(|e| self.err(e))?;
        let env = Envelope::new(&self.board, seq as u64, self.now, self.synced, event)
            .in_incarnation(&inc.id, inc.base);
        let chain = chain_next(&inc.chain, &env.id);
        self.tx
            .execute(
                "INSERT INTO outbox (seq, id, at, kind, body, chain) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![seq, env.id.to_string(), ts(env.at), env.kind, env.to_json(), chain],
            )
            .map_err(|e| self.err(e))?;
        self.tx
            .execute("UPDATE incarnation SET chain = ?1", [&chain])
            .map_err(|e| self.err(e))?;
        self.emitted.push(env);
        Ok(seq as u64)
    }
}

/// What `huddle-kiosk doctor` reads of a board's file, without writing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// `PRAGMA quick_check`'s lines: `["ok"]` for a sound file.
    pub quick_check: Vec<String>,
    /// The last `seq` written.
    pub last_seq: u64,
    /// The aggregator's ack as remembered.
    pub acked: u64,
    /// When the oldest event the ack does not cover was made.
    pub oldest_unacked_at: Option<String>,
}

/// Reads the file at `path` read-only (it must exist): its quick check,
/// and the backlog of events the aggregator has not acknowledged.
pub fn inspect(path: &std::path::Path) -> Result<Inspection, StoreError> {
    let sql = |source| StoreError::Sqlite {
        path: path.to_owned(),
        source,
    };
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(sql)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sql)?;
    let mut stmt = conn.prepare("PRAGMA quick_check").map_err(sql)?;
    let quick_check = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(sql)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql)?;
    if quick_check != ["ok"] {
        return Ok(Inspection {
            quick_check,
            last_seq: 0,
            acked: 0,
            oldest_unacked_at: None,
        });
    }
    let last_seq = counter(&conn, "seq").map_err(sql)?;
    let acked = counter(&conn, "acked").map_err(sql)?;
    let oldest_unacked_at = conn
        .query_row(
            "SELECT at FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT 1",
            [acked as i64],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql)?;
    Ok(Inspection {
        quick_check,
        last_seq,
        acked,
        oldest_unacked_at,
    })
}
