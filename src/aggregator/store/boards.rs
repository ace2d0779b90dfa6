//! Each board as committed, kept in memory between commits: its
//! incarnations (each with its ack, its chain digest and the seqs stored
//! above a gap), its huddle state and newest event, its `online` flag. The
//! writer is the only one who writes `boards` and `incarnations`, so this
//! copy is the truth between commits: it is read once at open
//! ([`read_boards`]) and a batch changes a copy that replaces it only once
//! the transaction committed.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection};

use super::Store;
use crate::aggregator::validate::Incoming;
use crate::wire::event::{chain_next, chain_start};
use crate::wire::payload::{Ack, BoardStatus, HuddleState, IncarnationAck};
use crate::wire::time::parse_ts;

/// Most seqs an event may run ahead of its incarnation's ack. A kiosk
/// sends at most `delivery.window` (500 shipped) beyond it.
pub const MAX_SEQ_AHEAD: u64 = 1_000_000;
/// Most incarnations one board may have. A board gets a new one when its
/// file is replaced or forks: a few in its life.
pub const MAX_INCARNATIONS: usize = 64;

pub(super) fn huddle_key(state: HuddleState) -> &'static str {
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

/// One incarnation of a board as committed: its ack, chain digest and the
/// seqs (with ids) stored above the ack, held back by a gap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Stream {
    pub(super) base: u64,
    pub(super) acked: u64,
    /// Digest after `acked` (empty for the legacy incarnation).
    pub(super) chain: String,
    pub(super) above: BTreeMap<u64, uuid::Uuid>,
    pub(super) first_seen: String,
    pub(super) last_stored_at: String,
}

impl Stream {
    pub(super) fn new(incarnation: &str, base: u64, now: &str) -> Stream {
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
    pub(super) fn holds(&self, seq: u64) -> bool {
        seq <= self.acked || self.above.contains_key(&seq)
    }

    /// Records a stored event; the ack (and digest) moves over every seq
    /// that now follows it without a gap.
    pub(super) fn stored(&mut self, seq: u64, id: uuid::Uuid, legacy: bool) {
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
pub(super) struct BoardRow {
    pub(super) area: String,
    pub(super) online: bool,
    /// Highest seq stored of the current incarnation.
    pub(super) last_seq: u64,
    pub(super) last_event_at: Option<DateTime<Utc>>,
    pub(super) huddle: HuddleState,
    pub(super) huddle_seq: u64,
    /// The incarnation that appeared last.
    pub(super) current: String,
    /// When the current incarnation replaced another (none: never).
    pub(super) replaced_at: Option<DateTime<Utc>>,
    pub(super) streams: BTreeMap<String, Stream>,
    /// (older, newer) incarnation pairs already alerted as twins.
    pub(super) twins_alerted: BTreeSet<(String, String)>,
}

impl BoardRow {
    pub(super) fn new(area: &str) -> BoardRow {
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
    pub(super) fn refuses(&self, e: &Incoming) -> Option<String> {
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
    pub(super) fn acks(&self) -> impl Iterator<Item = (&String, u64)> + '_ {
        self.streams.iter().map(|(id, s)| (id, s.acked))
    }

    /// The current incarnation's ack.
    pub(super) fn acked(&self) -> u64 {
        self.streams.get(&self.current).map_or(0, |s| s.acked)
    }

    /// The incarnation of an event, made when first seen. A new
    /// incarnation of a board that has events becomes its current one.
    pub(super) fn stream(&mut self, e: &Incoming, now: &str) -> &mut Stream {
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
    pub(super) fn stored(&mut self, e: &Incoming, now: &str) -> Option<String> {
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
    pub(super) fn differs(&self, other: &BoardRow) -> bool {
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

    pub(super) fn status(&self, board: &str) -> BoardStatus {
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
    pub(super) fn ack(&self, board: &str, at: DateTime<Utc>) -> Ack {
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
pub(super) fn read_boards(conn: &Connection) -> rusqlite::Result<HashMap<String, BoardRow>> {
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

impl Store {
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
}
