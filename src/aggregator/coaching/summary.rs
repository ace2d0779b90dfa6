//! The coaching thread's summary of the stored observations, kept up to
//! date from the rows that arrived since it last read, so that a
//! computation folds only what is new instead of reading and decoding the
//! site's whole history again (60,000 observations a year at 500 boards).
//!
//! It holds what [`fold`](super::rules::fold) returns for the same rows,
//! in the compact form the figures read ([`CompactObservation`]): the
//! observations in time order, each joined with its first valid
//! acknowledgement. It is built by the same rules in the same order, and
//! `tests/it/history.rs` holds it equal to a full fold of the file, and
//! the reports equal, after the rows arrived in pieces and after a
//! restart.
//!
//! Design: the summary lives in the thread's memory and is built at start
//! from the whole file (one full read, as before), then only from the rows
//! after the last one read: the single writer only appends to `events`,
//! so its rowids are the arrival order. It costs about 200 bytes an
//! observation (the compact form and the index by id), about 12 MB a year
//! at 500 boards. A summary kept by the writer in the file would also
//! make the start flat, at the price of a migration and of a write per
//! observation in ingest's transaction.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::compact::{CompactObservation, Names};
use super::db::CoachingDb;
use super::rules::{check_recorded, CoachingEvent, StoredCoachingEvent};
use crate::aggregator::store::StoreError;
use crate::wire::event::ObservationAcknowledged;

/// Where an observation sorts: its time, board and seq.
type Key = (DateTime<Utc>, Arc<str>, u64);

/// An acknowledgement whose recording has not arrived yet.
type PendingAck = (String, u64, ObservationAcknowledged);

/// How many events [`Summary::update`] decodes before it folds them.
const PIECE: usize = 1024;

/// An observation id as the index keeps it: a UUID (what boards write) as
/// its 16 bytes, anything else as its text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Id {
    Uuid(u128),
    Text(Box<str>),
}

impl Id {
    fn new(id: &str) -> Id {
        // Only the canonical lowercase text is taken as a UUID: two texts
        // of one UUID are two ids, as they are to the full fold.
        if let Ok(u) = uuid::Uuid::try_parse(id) {
            let mut buf = uuid::Uuid::encode_buffer();
            if u.hyphenated().encode_lower(&mut buf) == id {
                return Id::Uuid(u.as_u128());
            }
        }
        Id::Text(id.into())
    }
}

/// The folded observations, updated as rows arrive.
#[derive(Debug, Default)]
pub struct Summary {
    /// The last row read (0 before the first read).
    last_row: i64,
    /// In time order, then board, then seq (as [`fold`](super::rules::fold)).
    observations: Vec<CompactObservation>,
    /// Each recorded id: where it sorts, and its rank among the
    /// observations with that key (two incarnations of a board may share
    /// a seq; later ones sort after).
    by_id: HashMap<Id, (Key, u32)>,
    /// The boards and people named.
    names: Names,
    /// Acknowledgements of ids not recorded yet, in arrival order.
    pending: HashMap<String, Vec<PendingAck>>,
}

impl Summary {
    /// An empty summary: the first [`Summary::update`] reads the whole file.
    pub fn new() -> Summary {
        Summary::default()
    }

    /// The observations in time order.
    pub fn observations(&self) -> &[CompactObservation] {
        &self.observations
    }

    /// Reads the rows stored since the last update and folds them in;
    /// returns the events that cannot be counted (each named once).
    pub fn update(&mut self, db: &CoachingDb) -> Result<Vec<String>, StoreError> {
        // Design: folded a thousand at a time, so that the first read (a
        // year of decoded payloads, about 1.2 kB each) is never all in
        // memory at once; folding in pieces gives the same summary.
        let mut folded = Vec::new();
        let mut piece = Vec::with_capacity(PIECE);
        let read = db.each_after(self.last_row, |e| {
            piece.push(e);
            if piece.len() == PIECE {
                folded.extend(self.apply(piece.drain(..)));
            }
        });
        let (mut problems, last) = match read {
            Ok(r) => r,
            Err(e) => {
                // Some rows may be folded in already: the next update
                // starts again from the first row.
                *self = Summary::default();
                return Err(e);
            }
        };
        folded.extend(self.apply(piece));
        self.last_row = last;
        problems.append(&mut folded);
        Ok(problems)
    }

    /// Folds in events that arrived after every event folded so far, as
    /// [`fold`](super::rules::fold) would with all of them: the first
    /// recording of an id is kept; an acknowledgement counts once its
    /// recording is there, the first valid one wins.
    pub fn apply(&mut self, events: impl IntoIterator<Item = StoredCoachingEvent>) -> Vec<String> {
        let mut problems = Vec::new();
        let mut acks = Vec::new();
        let mut recorded = Vec::new();
        for e in events {
            match e.event {
                CoachingEvent::Recorded(r) => {
                    if let Err(why) = check_recorded(&r) {
                        problems.push(format!(
                            "board {} seq {}: observation {} not counted: {why}",
                            e.board, e.seq, r.observation_id
                        ));
                        continue;
                    }
                    let id = Id::new(&r.observation_id);
                    if let Some(((_, board, seq), _)) = self.by_id.get(&id) {
                        problems.push(format!(
                            "board {} seq {}: observation {} was already recorded at board {board} seq {seq}; the first is kept",
                            e.board, e.seq, r.observation_id
                        ));
                        continue;
                    }
                    let o = CompactObservation::new(e.at, &e.board, e.seq, &r, &mut self.names);
                    let key = (o.at, o.board.clone(), o.seq);
                    // After any with the same key, as a stable sort keeps
                    // them.
                    let (from, to) = (self.position(&key, false), self.position(&key, true));
                    self.observations.insert(to, o);
                    self.by_id.insert(id, (key, (to - from) as u32));
                    recorded.push(r.observation_id);
                }
                CoachingEvent::Acknowledged(a) => acks.push((e.board, e.seq, a)),
            }
        }
        // As the full fold: every recording first, then the
        // acknowledgements in arrival order (those kept aside came first).
        for id in recorded {
            for ack in self.pending.remove(&id).unwrap_or_default() {
                problems.extend(self.acknowledge(ack));
            }
        }
        for ack in acks {
            if self.by_id.contains_key(&Id::new(&ack.2.observation_id)) {
                problems.extend(self.acknowledge(ack));
            } else {
                self.pending
                    .entry(ack.2.observation_id.clone())
                    .or_default()
                    .push(ack);
            }
        }
        problems
    }

    /// Where an observation with `key` sorts: before those with the same
    /// key, or after them (`after`).
    fn position(&self, key: &Key, after: bool) -> usize {
        let key = (key.0, &*key.1, key.2);
        self.observations.partition_point(|o| {
            let k = (o.at, &*o.board, o.seq);
            k < key || (after && k == key)
        })
    }

    /// One acknowledgement of a recorded id.
    fn acknowledge(&mut self, (board, seq, a): PendingAck) -> Option<String> {
        let (key, rank) = self.by_id.get(&Id::new(&a.observation_id))?;
        let i = self.position(key, false) + *rank as usize;
        let o = &mut self.observations[i];
        if *a.learner != *o.learner {
            Some(format!(
                "board {board} seq {seq}: acknowledgement of observation {} by `{}`, but the learner is `{}`",
                a.observation_id, a.learner, o.learner
            ))
        } else if !(1..=5).contains(&a.helpfulness) {
            Some(format!(
                "board {board} seq {seq}: helpfulness {} is not 1 to 5",
                a.helpfulness
            ))
        } else {
            if o.helpfulness.is_none() {
                o.helpfulness = Some(a.helpfulness);
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregator::coaching::compact::CompactObservation;
    use crate::aggregator::coaching::rules::fold;
    use crate::domain::{BehaviourScore, ObservationLevel, ObservationRecorded, Pick, SelfView};
    use chrono::{NaiveDate, TimeZone};

    fn recorded(id: &str, learner: &str, score: u8) -> CoachingEvent {
        CoachingEvent::Recorded(ObservationRecorded {
            observation_id: id.into(),
            level: ObservationLevel::Facilitation,
            observer: "sv1".into(),
            learner: learner.into(),
            huddle_id: None,
            self_view: SelfView::WentWell,
            scores: vec![BehaviourScore {
                behaviour: "escalated".into(),
                score,
            }],
            strength: Pick {
                behaviour: "escalated".into(),
                note: String::new(),
            },
            focus: Pick {
                behaviour: "escalated".into(),
                note: String::new(),
            },
            trigger: String::new(),
            reobserve_on: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
        })
    }

    fn ack(id: &str, learner: &str, helpfulness: u8) -> CoachingEvent {
        CoachingEvent::Acknowledged(ObservationAcknowledged {
            observation_id: id.into(),
            learner: learner.into(),
            helpfulness,
        })
    }

    /// Two incarnations of a board may record at the same time with the
    /// same seq: each acknowledgement still finds its own observation,
    /// whichever order the rows come in.
    #[test]
    fn observations_that_sort_alike_are_acknowledged_apart() {
        let at = Utc.with_ymd_and_hms(2026, 11, 28, 6, 0, 0).unwrap();
        let ev = |seq, event| StoredCoachingEvent {
            board: "b1".into(),
            seq,
            at,
            event,
        };
        let uuid = "01930e7c-8f4a-7c15-9e37-79b97f4a7c15";
        let events = vec![
            ev(3, recorded("o-a", "tl1", 2)),
            ev(3, recorded(uuid, "tl2", 4)),
            ev(4, ack(uuid, "tl2", 5)),
            ev(4, ack("o-a", "tl1", 1)),
            // Another text of the same UUID is another id, as in the fold.
            ev(5, ack(&uuid.to_uppercase(), "tl2", 2)),
            ev(6, recorded("o-b", "tl1", 3)),
        ];
        let full = |events: Vec<StoredCoachingEvent>| -> Vec<CompactObservation> {
            fold(events).observations.iter().map(Into::into).collect()
        };
        let rated: Vec<(String, Option<u8>)> = full(events.clone())
            .iter()
            .map(|o| (o.learner.to_string(), o.helpfulness))
            .collect();
        assert_eq!(
            rated,
            [
                ("tl1".into(), Some(1)),
                ("tl2".into(), Some(5)),
                ("tl1".into(), None)
            ]
        );
        // Reversed, the two at seq 3 sort the other way (a stable sort
        // keeps arrival order), and each keeps its own rating.
        for order in [events.clone(), events.iter().rev().cloned().collect()] {
            let mut summary = Summary::new();
            for e in order.clone() {
                assert_eq!(summary.apply([e]), Vec::<String>::new());
            }
            assert_eq!(summary.observations(), full(order));
        }
    }
}
