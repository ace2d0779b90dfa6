//! The coaching loop's reads of the site file: the stored
//! `observation.*` events and the coaching start. Read only: the ingest
//! writer owns every write, and this is a second connection (WAL lets it
//! read while the writer commits), so computing the figures never holds
//! up ingest.
//!
//! The observations are read through the *partial* index
//! `events_observations` and the start from `coaching_meta`, both made by
//! [`COACHING`](crate::aggregator::store::migrations::COACHING) (the
//! index's `WHERE` rewritten by migration 4: see
//! [`MIGRATIONS`](crate::aggregator::store::migrations::MIGRATIONS)).

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection};

use super::rules::{fold, CoachingEvent, Folded, StoredCoachingEvent};
use crate::aggregator::store::{open_read_only, StoreError};
use crate::wire::event::{ObservationAcknowledged, ObservationRecorded};
use crate::wire::time::parse_ts;

/// The queries the partial index serves, recordings first (each `WHERE`
/// must imply the index's, as migration 4 made it: see
/// [`MIGRATIONS`](crate::aggregator::store::migrations::MIGRATIONS)).
///
/// Design: one query over both kinds gave the index's order, every
/// acknowledgement before every recording; a summary folded in pieces
/// kept a year of acknowledgements aside until their recordings came.
const OBSERVATION_EVENTS: [&str; 2] = [
    "SELECT board, seq, at, clock_synced, received_at, kind, data, rowid
     FROM events INDEXED BY events_observations
     WHERE kind = 'observation.recorded' AND rowid > ?1",
    "SELECT board, seq, at, clock_synced, received_at, kind, data, rowid
     FROM events INDEXED BY events_observations
     WHERE kind = 'observation.acknowledged' AND rowid > ?1",
];

/// A read-only connection to the aggregator's file.
pub struct CoachingDb {
    conn: Connection,
    path: PathBuf,
}

impl CoachingDb {
    /// Opens the file read-only. It must exist and be migrated
    /// ([`crate::aggregator::store::Store::open`] first).
    pub fn open(path: &Path) -> Result<CoachingDb, StoreError> {
        Ok(CoachingDb {
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

    /// The coaching start recorded by
    /// [`COACHING`](crate::aggregator::store::migrations::COACHING).
    pub fn since(&self) -> Result<DateTime<Utc>, StoreError> {
        let text: String = self
            .conn
            .query_row(
                "SELECT value FROM coaching_meta WHERE key = 'since'",
                params![],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        parse_ts(&text).ok_or_else(|| {
            self.err(rusqlite::Error::InvalidColumnType(
                0,
                format!("coaching_meta.since = `{text}` is not a UTC time"),
                rusqlite::types::Type::Text,
            ))
        })
    }

    /// Every stored observation, joined with its acknowledgement, in time
    /// order; events that cannot be used are named in `problems`.
    pub fn observations(&self) -> Result<Folded, StoreError> {
        let (events, mut problems, _) = self.events_after(0)?;
        let mut folded = fold(events);
        problems.append(&mut folded.problems);
        folded.problems = problems;
        Ok(folded)
    }

    /// The coaching events stored after row `after` (rows are numbered in
    /// arrival order: the single writer only appends), recordings, then
    /// acknowledgements, each in arrival order, read in one snapshot;
    /// with the rows that cannot be decoded and the last row read
    /// (`after` when none).
    #[allow(clippy::type_complexity)]
    pub fn events_after(
        &self,
        after: i64,
    ) -> Result<(Vec<StoredCoachingEvent>, Vec<String>, i64), StoreError> {
        let mut events = Vec::new();
        let (problems, last) = self.each_after(after, |e| events.push(e))?;
        Ok((events, problems, last))
    }

    /// As [`CoachingDb::events_after`], giving each event to `each` as it
    /// is read instead of collecting them (a year of observations is
    /// 120,000 events).
    pub fn each_after(
        &self,
        after: i64,
        mut each: impl FnMut(StoredCoachingEvent),
    ) -> Result<(Vec<String>, i64), StoreError> {
        // One read transaction: a row committed between the two queries
        // must not be skipped by the next read (it starts after `last`).
        let snapshot = self.conn.unchecked_transaction().map_err(|e| self.err(e))?;
        let mut problems = Vec::new();
        let mut last = after;
        for query in OBSERVATION_EVENTS {
            let mut stmt = snapshot.prepare_cached(query).map_err(|e| self.err(e))?;
            let mut rows = stmt.query([after]).map_err(|e| self.err(e))?;
            while let Some(r) = rows.next().map_err(|e| self.err(e))? {
                let (board, seq, at, synced, received, kind, data, rowid) = (|| {
                    Ok::<_, rusqlite::Error>((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)? as u64,
                        r.get_ref(2)?.as_str()?,
                        r.get::<_, i64>(3)? != 0,
                        r.get_ref(4)?.as_str()?,
                        r.get_ref(5)?.as_str()?,
                        r.get_ref(6)?.as_str()?,
                        r.get::<_, i64>(7)?,
                    ))
                })()
                .map_err(|e| self.err(e))?;
                last = last.max(rowid);
                match decode(kind, data, at, synced, received) {
                    Ok((at, event)) => each(StoredCoachingEvent {
                        board,
                        seq,
                        at,
                        event,
                    }),
                    Err(why) => problems.push(format!("board {board} seq {seq}: {why}")),
                }
            }
        }
        Ok((problems, last))
    }
}

/// One stored row into the time it counts from and the event. The
/// validator let only well-formed payloads in; this still refuses to
/// panic on a file edited by hand.
///
/// Design: the payload is parsed straight into its kind's struct. Going
/// through a `serde_json::Value` and the tagged [`Event`] enum (as it did)
/// parsed each payload once, copied it into a tagged object and parsed
/// that again through serde's buffered content: 19 µs an observation,
/// three quarters of a computation that reads every observation of the
/// site's history (`cargo bench --bench history`).
fn decode(
    kind: &str,
    data: &str,
    at: &str,
    clock_synced: bool,
    received_at: &str,
) -> Result<(DateTime<Utc>, CoachingEvent), String> {
    let when = if clock_synced { at } else { received_at };
    let when = parse_ts(when).ok_or_else(|| format!("time `{when}` is not UTC"))?;
    let not = |e: serde_json::Error| format!("not a {kind}: {e}");
    match kind {
        "observation.recorded" => serde_json::from_str::<ObservationRecorded>(data)
            .map(|r| (when, CoachingEvent::Recorded(r)))
            .map_err(not),
        "observation.acknowledged" => serde_json::from_str::<ObservationAcknowledged>(data)
            .map(|a| (when, CoachingEvent::Acknowledged(a)))
            .map_err(not),
        _ => Err(format!("kind {kind} is not an observation")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregator::store::{Input, Store};
    use crate::domain::{BehaviourScore, ObservationLevel, Pick, SelfView, FACILITATION};
    use crate::wire::event::{Envelope, Event, NeedRef};
    use chrono::{NaiveDate, TimeZone};

    fn at(min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, 6, min, 0).unwrap()
    }

    fn ev(e: Envelope) -> Input {
        Input::Event {
            area: "assembly".into(),
            envelope: crate::aggregator::validate::Incoming::from_envelope(&e),
        }
    }

    fn recorded(id: &str) -> Event {
        Event::ObservationRecorded(ObservationRecorded {
            observation_id: id.into(),
            level: ObservationLevel::Facilitation,
            observer: "p07".into(),
            learner: "p01".into(),
            huddle_id: Some("h1".into()),
            self_view: SelfView::WentWell,
            scores: FACILITATION
                .iter()
                .map(|b| BehaviourScore {
                    behaviour: (*b).into(),
                    score: 3,
                })
                .collect(),
            strength: Pick {
                behaviour: "story_from_data".into(),
                note: String::new(),
            },
            focus: Pick {
                behaviour: "parked_discussions".into(),
                note: String::new(),
            },
            trigger: "after two minutes".into(),
            reobserve_on: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
        })
    }

    #[test]
    fn reads_observations_through_the_partial_index_and_the_coaching_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agg.db");
        let mut store = Store::open(&path).unwrap();
        let need = Event::NeedClosed(NeedRef {
            need_id: "n".into(),
            by: None,
        });
        let ack = Event::ObservationAcknowledged(ObservationAcknowledged {
            observation_id: "o1".into(),
            learner: "p01".into(),
            helpfulness: 5,
        });
        store
            .apply(
                &[
                    ev(Envelope::new("b1", 1, at(1), true, &need)),
                    ev(Envelope::new("b1", 2, at(2), true, &recorded("o1"))),
                    ev(Envelope::new("b1", 3, at(2), true, &ack)),
                    // An unsynchronised board clock: the receipt time counts.
                    ev(Envelope::new("b2", 1, at(50), false, &recorded("o2"))),
                ],
                at(5),
            )
            .unwrap();
        let db = CoachingDb::open(&path).unwrap();
        let since = db.since().unwrap();
        assert!((Utc::now() - since).num_seconds().abs() < 60, "{since}");
        let f = db.observations().unwrap();
        assert!(f.problems.is_empty(), "{:?}", f.problems);
        let ids: Vec<(&str, DateTime<Utc>)> = f
            .observations
            .iter()
            .map(|o| (o.recorded.observation_id.as_str(), o.at))
            .collect();
        assert_eq!(ids, [("o1", at(2)), ("o2", at(5))]);
        assert_eq!(f.observations[0].helpfulness, Some(5));
        assert_eq!(f.observations[1].helpfulness, None);

        for query in OBSERVATION_EVENTS {
            let plan: Vec<String> = db
                .conn
                .prepare(&format!("EXPLAIN QUERY PLAN {query}"))
                .unwrap()
                .query_map([0], |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert!(
                plan.iter().any(|p| p.contains("events_observations")),
                "{plan:?}"
            );
        }
        // Read-only: the writer owns every write.
        assert!(db
            .conn
            .execute("DELETE FROM coaching_meta", params![])
            .is_err());
        // The start survives a reopen.
        drop(store);
        Store::open(&path).unwrap();
        assert_eq!(CoachingDb::open(&path).unwrap().since().unwrap(), since);
    }

    #[test]
    fn a_missing_file_is_named() {
        let e = CoachingDb::open(Path::new("/nonexistent/agg.db"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("/nonexistent/agg.db"), "{e}");
    }
}
