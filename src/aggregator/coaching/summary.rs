//! The coaching thread's summary of the stored observations, kept up to
//! date from the rows that arrived since it last read, so that a
//! computation folds only what is new instead of reading and decoding the
//! site's whole history again (60,000 observations a year at 500 boards).
//!
//! It holds what [`fold`](super::rules::fold) returns for the same rows:
//! the observations in time order, each joined with its first valid
//! acknowledgement, minus the texts the figures never read (notes, the
//! trigger, the huddle id: see [`compact`]). It is built by the same
//! rules in the same order, and `tests/it/history.rs` holds it equal to a
//! full fold of the file after the rows arrived in pieces and after a
//! restart.
//!
//! Design: the summary lives in the thread's memory and is built at start
//! from the whole file (one full read, as before), then only from the rows
//! after the last one read: the single writer only appends to `events`,
//! so its rowids are the arrival order. A summary kept by the writer in
//! the file would also make the start flat, at the price of a migration
//! and of a write per observation in ingest's transaction.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::db::CoachingDb;
use super::rules::{check_recorded, CoachingEvent, Observation, StoredCoachingEvent};
use crate::aggregator::store::StoreError;
use crate::wire::event::ObservationAcknowledged;

/// Where an observation sorts: its time, board and seq.
type Key = (DateTime<Utc>, String, u64);

/// An acknowledgement whose recording has not arrived yet.
type PendingAck = (String, u64, DateTime<Utc>, ObservationAcknowledged);

/// The folded observations, updated as rows arrive.
#[derive(Debug, Default)]
pub struct Summary {
    /// The last row read (0 before the first read).
    last_row: i64,
    /// In time order, then board, then seq (as [`fold`](super::rules::fold)).
    observations: Vec<Observation>,
    /// Each recorded id and where it sorts.
    by_id: HashMap<String, Key>,
    /// Acknowledgements of ids not recorded yet, in arrival order.
    pending: HashMap<String, Vec<PendingAck>>,
}

/// Drops the texts the figures never read, to keep a year of
/// observations small in memory.
pub fn compact(o: &mut Observation) {
    o.recorded.huddle_id = None;
    o.recorded.trigger = String::new();
    o.recorded.strength.note = String::new();
    o.recorded.focus.note = String::new();
    o.recorded.observation_id.shrink_to_fit();
}

impl Summary {
    /// An empty summary: the first [`Summary::update`] reads the whole file.
    pub fn new() -> Summary {
        Summary::default()
    }

    /// The observations in time order.
    pub fn observations(&self) -> &[Observation] {
        &self.observations
    }

    /// Reads the rows stored since the last update and folds them in;
    /// returns the events that cannot be counted (each named once).
    pub fn update(&mut self, db: &CoachingDb) -> Result<Vec<String>, StoreError> {
        let (events, mut problems, last) = db.events_after(self.last_row)?;
        self.last_row = last;
        problems.extend(self.apply(events));
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
                    if let Some((_, board, seq)) = self.by_id.get(&r.observation_id) {
                        problems.push(format!(
                            "board {} seq {}: observation {} was already recorded at board {board} seq {seq}; the first is kept",
                            e.board, e.seq, r.observation_id
                        ));
                        continue;
                    }
                    let key = (e.at, e.board.clone(), e.seq);
                    let id = r.observation_id.clone();
                    let mut o = Observation {
                        board: e.board,
                        seq: e.seq,
                        at: e.at,
                        recorded: r,
                        helpfulness: None,
                        acknowledged_at: None,
                    };
                    compact(&mut o);
                    // After any with the same key, as a stable sort keeps
                    // them (two incarnations of a board may share a seq).
                    let i = self.position(&key, true);
                    self.observations.insert(i, o);
                    self.by_id.insert(id.clone(), key);
                    recorded.push(id);
                }
                CoachingEvent::Acknowledged(a) => acks.push((e.board, e.seq, e.at, a)),
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
            if self.by_id.contains_key(&ack.3.observation_id) {
                problems.extend(self.acknowledge(ack));
            } else {
                self.pending
                    .entry(ack.3.observation_id.clone())
                    .or_default()
                    .push(ack);
            }
        }
        problems
    }

    /// Where an observation with `key` sorts: before those with the same
    /// key, or after them (`after`).
    fn position(&self, key: &Key, after: bool) -> usize {
        let key = (key.0, key.1.as_str(), key.2);
        self.observations.partition_point(|o| {
            let k = (o.at, o.board.as_str(), o.seq);
            k < key || (after && k == key)
        })
    }

    /// One acknowledgement of a recorded id.
    fn acknowledge(&mut self, (board, seq, at, a): PendingAck) -> Option<String> {
        let key = self.by_id.get(&a.observation_id)?.clone();
        let (from, to) = (self.position(&key, false), self.position(&key, true));
        let o = self.observations[from..to]
            .iter_mut()
            .find(|o| o.recorded.observation_id == a.observation_id)?;
        if a.learner != o.recorded.learner {
            Some(format!(
                "board {board} seq {seq}: acknowledgement of observation {} by `{}`, but the learner is `{}`",
                a.observation_id, a.learner, o.recorded.learner
            ))
        } else if !(1..=5).contains(&a.helpfulness) {
            Some(format!(
                "board {board} seq {seq}: helpfulness {} is not 1 to 5",
                a.helpfulness
            ))
        } else {
            if o.helpfulness.is_none() {
                o.helpfulness = Some(a.helpfulness);
                o.acknowledged_at = Some(at);
            }
            None
        }
    }
}
