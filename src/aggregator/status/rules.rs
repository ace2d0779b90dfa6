//! The live status rules: from the stored events, each board's
//! retained schedule and `online` flag, to each board's [`BoardLive`], the
//! site's [`SiteLive`] and the alerts. Pure: no I/O and no clock; every
//! call takes `now`, so every rule is a unit test with an injected clock.
//! The shell ([`super::shell`]) feeds it committed events and board
//! messages and publishes what [`Site::evaluate`] returns.
//!
//! # The rules
//!
//! - **Slots.** A board's schedule (its retained `.../schedule`,
//!   [`ScheduleMessage`]) lists local times in the board's time zone. Each
//!   is resolved on its own calendar day with the kiosk's own rules
//!   ([`crate::domain::Schedule`]: a time skipped by daylight saving moves
//!   forward, a repeated one takes its first instant), so a night shift at
//!   23:50 is the slot of the day it starts on, and the rules look at the
//!   slots of the last 24 hours whatever the date.
//! - **Which huddle answers a slot.** The huddle whose `scheduled_at` is the
//!   slot (the kiosk stamps it when the huddle starts in the slot's
//!   window); a huddle without `scheduled_at` (a team leader's start outside
//!   every window) answers the slot if it started within
//!   [`MATCH_WINDOW`] of it.
//! - **Missed.** A slot is missed when no huddle answering it started
//!   within its grace (`grace_s`): the kiosk's own rule
//!   ([`crate::domain::Schedule::is_missed`]). So *a late start counts as
//!   missed* (the alert at the deadline stands), and once closed it also
//!   counts as held: `held_today` and `missed_today` are not exclusive.
//! - **Board state.** `in_progress` while a huddle started in the last 24
//!   hours is not closed. Otherwise, by the latest slot whose time has come
//!   within the last 12 hours ([`STATE_HOLD`]): `closed` when a huddle
//!   answering it was closed, `missed` once its grace has passed without
//!   one, `not_started` before. With no such slot (or no schedule received
//!   yet) the board is `closed` when its latest huddle of the last 12 hours
//!   was closed, else `not_started`. So `missed` lasts until the next slot
//!   comes, a huddle starts, or 12 hours pass (a night shift's 23:50 slot
//!   still shows `missed` at 00:20; yesterday afternoon's does not show at
//!   06:30).
//! - **Escalations.** A need raised with `escalated`, or escalated later,
//!   is open until `need.closed`; it is *stale* from `escalated_at +
//!   escalation_stale_s` (the kiosk's time of the event).
//! - **Online.** The board's retained `online` flag is true *and* the
//!   board was heard (an event, its `online` heartbeat, its schedule)
//!   within `offline_after_s`. Kiosks republish `online` every 30 s (the
//!   kiosk outbox's heartbeat). Silence is only judged while the
//!   aggregator's own link to the broker is up: when it comes back, every
//!   board counts as heard at that moment. After a start every board
//!   counts as heard at the start.
//! - **Known since.** Slots before the aggregator first heard of a board
//!   (its first stored event's arrival; a new board: when it first
//!   appears) count for nothing: a board installed at noon missed no
//!   morning huddle.
//! - **Today** (site summary) is the site's local calendar day: a slot
//!   counts on the day of its time, a held huddle on the day it started.
//!   The attendance rate is present ÷ expected over the huddles started
//!   today (a closed one by its summary, a running one by its taps over
//!   the roster's members and team leaders), each huddle's present counted
//!   up to its expected: a share, never above 1 (guests and a board that
//!   expects no one do not lift it); none when nobody was expected.
//! - **Alerts** fire on transitions only, each once: `missed_huddle` at a
//!   slot's grace end, `escalation_stale` when an escalation turns stale,
//!   `board_offline` when a board goes from online to offline. A condition
//!   that arose before this aggregator started is shown by the retained
//!   status, never alerted: so a restart does not repeat alerts (except a
//!   board that went silent without a last will, which is alerted again
//!   after `offline_after_s`: nothing stored says it was already offline).
//!   Such a condition still open (a missed slot of the last 24 hours, a
//!   stale escalation, a board offline at the start) is handed out once in
//!   [`Evaluation::earlier`], for the dashboard's list of alerts only.
//!   A missed huddle is not alerted while the board is offline (its start
//!   may be waiting in its outbox); it is when the board is back and the
//!   slot is still missed.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use serde::Deserialize;

use super::slots::BoardSchedule;
use super::texts::{self, alert};
use crate::domain::{ObservationLevel, Slot, Summary};
use crate::wire::payload::{
    AlertKind, BoardAlert, BoardLive, LiveHuddle, LiveState, OpenEscalation, ScheduleMessage,
    SiteLive, StateCounts,
};

/// A huddle without `scheduled_at` answers a slot that it started this
/// close to (the kiosk's default start window).
pub const MATCH_WINDOW: Duration = Duration::hours(1);

/// How far back the rules look (slots, running huddles, today's counts).
const DAY: Duration = Duration::hours(24);

/// A slot (or, without a schedule, a closed huddle) sets the board's
/// state for this long at most; the next slot ends it sooner.
pub const STATE_HOLD: Duration = Duration::hours(12);

/// What is kept in memory: huddles started in the last two days.
const KEEP: Duration = Duration::hours(48);
/// Most huddles one board's fold keeps (a day has a few; the oldest go
/// first): a board that invents huddle ids cannot grow the aggregator.
const MAX_HUDDLES: usize = 64;
/// Most needs one board's fold keeps (closed and never escalated ones go
/// first, then the oldest).
const MAX_NEEDS: usize = 500;
/// Most people counted present at one huddle.
const MAX_PRESENT: usize = 1000;
/// Most escalations a board's status lists (the oldest: the most urgent);
/// the rest are counted in `escalations_more`.
pub const MAX_ESCALATIONS_LISTED: usize = 20;

/// The event kinds the rules read; every other kind is ignored.
pub const KINDS: [&str; 8] = [
    "huddle.started",
    "huddle.advanced",
    "huddle.closed",
    "attendance.tapped",
    "need.raised",
    "need.escalated",
    "need.closed",
    "observation.recorded",
];

/// Whether the rules read events of this kind.
pub fn reads(kind: &str) -> bool {
    KINDS.contains(&kind)
}

/// The site's thresholds (`[status]` of `aggregator.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// An open escalation is stale after this.
    pub escalation_stale: Duration,
    /// A board not heard for this long is offline.
    pub offline_after: Duration,
}

/// One huddle as folded from its events.
#[derive(Debug, Clone, Default)]
struct HuddleFold {
    /// `at` of the first event folded for it (prunes huddles that never
    /// started).
    first_seen: Option<DateTime<Utc>>,
    scheduled_at: Option<DateTime<Utc>>,
    /// `None` until its `huddle.started` arrived.
    started_at: Option<DateTime<Utc>>,
    target_s: u32,
    first_step: Option<String>,
    /// The latest `huddle.advanced`: (seq, step, at).
    step: Option<(u64, String, DateTime<Utc>)>,
    present: BTreeSet<String>,
    closed: Option<(DateTime<Utc>, Summary)>,
}

/// One need as folded from its events.
#[derive(Debug, Clone, Default)]
struct NeedFold {
    /// `at` of the first event folded for it.
    first_seen: Option<DateTime<Utc>>,
    category: String,
    text: String,
    escalated_at: Option<DateTime<Utc>>,
    closed: bool,
}

/// Everything known about one board.
#[derive(Debug, Clone)]
struct BoardFold {
    area: String,
    huddles: BTreeMap<String, HuddleFold>,
    needs: BTreeMap<String, NeedFold>,
    schedule: Option<BoardSchedule>,
    /// The retained `online` flag, and when it last changed (as received).
    flag: bool,
    flag_at: DateTime<Utc>,
    /// When anything live was last heard from the board (aggregator's clock).
    heard_at: DateTime<Utc>,
    /// Online at the previous evaluation (for the transition alert).
    was_online: bool,
    last_seq: u64,
    last_event_at: Option<DateTime<Utc>>,
    last_observation_at: Option<DateTime<Utc>>,
    /// When the board's database file was last replaced.
    replaced_at: Option<DateTime<Utc>>,
    /// Members and team leaders in the roster.
    expected: u32,
    /// Since when the aggregator knows the board: earlier slots count for
    /// nothing (a board installed at noon missed no morning huddle).
    since: DateTime<Utc>,
    /// Changed since the last evaluation.
    dirty: bool,
    /// The last evaluation: the board's status and its share of today's
    /// counts. Kept here, not in a map beside the boards, so that a batch
    /// that changed one board of five hundred looks none of the others up.
    cached: Option<(BoardLive, Tally)>,
}

impl BoardFold {
    fn new(area: &str, now: DateTime<Utc>) -> BoardFold {
        BoardFold {
            area: area.to_owned(),
            huddles: BTreeMap::new(),
            needs: BTreeMap::new(),
            schedule: None,
            flag: false,
            flag_at: now,
            heard_at: now,
            was_online: false,
            last_seq: 0,
            last_event_at: None,
            last_observation_at: None,
            replaced_at: None,
            expected: 0,
            since: now,
            dirty: true,
            cached: None,
        }
    }
}

#[derive(Deserialize)]
struct Started {
    huddle_id: String,
    scheduled_at: Option<DateTime<Utc>>,
    target_minutes: u32,
    #[serde(default)]
    agenda: Vec<String>,
}

#[derive(Deserialize)]
struct Advanced {
    huddle_id: String,
    step: String,
}

#[derive(Deserialize)]
struct Tapped {
    huddle_id: String,
    person_id: String,
}

#[derive(Deserialize)]
struct Closed {
    huddle_id: String,
    summary: Summary,
}

#[derive(Deserialize)]
struct Raised {
    need_id: String,
    category: String,
    text: String,
    escalated: bool,
}

#[derive(Deserialize)]
struct NeedRef {
    need_id: String,
}

#[derive(Deserialize)]
struct Observed {
    level: ObservationLevel,
}

/// One stored event as the rules read it.
#[derive(Debug, Clone, Copy)]
pub struct StoredEvent<'a> {
    /// The board.
    pub board: &'a str,
    /// Its seq.
    pub seq: u64,
    /// The board's time of it.
    pub at: DateTime<Utc>,
    /// Its kind.
    pub kind: &'a str,
    /// Its payload's JSON text.
    pub data: &'a str,
}

/// What one evaluation says.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Every board's status, by board id.
    pub boards: Vec<BoardLive>,
    /// The site summary.
    pub site: SiteLive,
    /// Alerts that arose since the previous evaluation.
    pub alerts: Vec<BoardAlert>,
    /// Conditions that arose before this aggregator started and are still
    /// open (a missed slot of the last 24 hours, a stale escalation, a
    /// board offline at the start), each once, in the shape of an alert:
    /// alerted by an earlier run, so shown again, never published again.
    pub earlier: Vec<BoardAlert>,
    /// Boards that moved to another area since the previous evaluation,
    /// with their old area (their retained topics there are cleared).
    pub moved: Vec<(String, String)>,
}

/// The whole site's live state.
#[derive(Debug, Clone)]
pub struct Site {
    site: String,
    tz: Tz,
    rules: Rules,
    /// When this aggregator started: older conditions are never alerted.
    started: DateTime<Utc>,
    boards: BTreeMap<String, BoardFold>,
    /// Alerts sent, by (board, kind, subject), with their condition's time.
    alerted: BTreeMap<(String, AlertKind, String), DateTime<Utc>>,
    link_up: bool,
    coaching_overdue: u32,
    /// Members and team leaders per board in the roster.
    roster: BTreeMap<String, u32>,
    /// Boards moved to another area since the last evaluation, with the
    /// old area.
    moved: Vec<(String, String)>,
}

/// One board's share of the site's counts for today.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    held: u32,
    missed: u32,
    present: u64,
    expected: u64,
}

/// Adds one board to the site summary.
fn add(summary: &mut SiteLive, live: &BoardLive, t: &Tally, present: &mut u64, expected: &mut u64) {
    let counts = &mut summary.states;
    match live.state {
        LiveState::NotStarted => counts.not_started += 1,
        LiveState::InProgress => counts.in_progress += 1,
        LiveState::Closed => counts.closed += 1,
        LiveState::Missed => counts.missed += 1,
    }
    if !live.online {
        counts.offline += 1;
    }
    summary.open_escalations += live.escalations.len() as u32 + live.escalations_more;
    summary.stale_escalations +=
        live.escalations.iter().filter(|e| e.stale).count() as u32 + live.escalations_more_stale;
    summary.held_today += t.held;
    summary.missed_today += t.missed;
    *present += t.present;
    *expected += t.expected;
}

impl Site {
    /// An empty site; `started` is the aggregator's start, `tz` the site's
    /// time zone (for "today").
    pub fn new(site: &str, tz: Tz, rules: Rules, started: DateTime<Utc>) -> Site {
        Site {
            site: site.to_owned(),
            tz,
            rules,
            started,
            boards: BTreeMap::new(),
            alerted: BTreeMap::new(),
            link_up: true,
            coaching_overdue: 0,
            roster: BTreeMap::new(),
            moved: Vec::new(),
        }
    }

    fn board(&mut self, area: &str, board: &str, now: DateTime<Utc>) -> &mut BoardFold {
        // Design: every event comes here; the board's id is copied only
        // the first time.
        if !self.boards.contains_key(board) {
            let mut b = BoardFold::new(area, now);
            b.expected = self.roster.get(board).copied().unwrap_or(0);
            self.boards.insert(board.to_owned(), b);
        }
        let b = self
            .boards
            .get_mut(board)
            .expect("inserted above when it was missing");
        if b.area != area {
            let old = std::mem::replace(&mut b.area, area.to_owned());
            self.moved.push((board.to_owned(), old));
        }
        b.dirty = true;
        b
    }

    /// A board known from the database at start: its flag, ack, newest
    /// event, and when its first event was received (`since`). It counts
    /// as heard at `now` (the start).
    #[allow(clippy::too_many_arguments)]
    pub fn known(
        &mut self,
        area: &str,
        board: &str,
        online: bool,
        last_seq: u64,
        last_event_at: Option<DateTime<Utc>>,
        since: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) {
        let b = self.board(area, board, now);
        b.since = since.map_or(now, |s| s.min(now));
        b.flag = online;
        b.was_online = online;
        b.flag_at = now;
        b.heard_at = now;
        b.last_seq = last_seq;
        b.last_event_at = last_event_at;
    }

    /// A committed event (stored now, or read back at start). Idempotent:
    /// a duplicate changes nothing. `live` when it just arrived (the board
    /// is heard); `false` when read back from the database.
    pub fn event(&mut self, area: &str, e: StoredEvent<'_>, live: bool, now: DateTime<Utc>) {
        if !reads(e.kind) && !live {
            return;
        }
        let b = self.board(area, e.board, now);
        if live {
            b.heard_at = b.heard_at.max(now);
        }
        fold(b, e);
    }

    /// The board's retained `online` flag. `live` when the board just
    /// published it (a connection, its heartbeat, its last will), `false`
    /// for a retained copy replayed by the broker on subscription.
    pub fn online(
        &mut self,
        area: &str,
        board: &str,
        online: bool,
        live: bool,
        now: DateTime<Utc>,
    ) {
        let b = self.board(area, board, now);
        if b.flag != online {
            b.flag = online;
            b.flag_at = now;
        }
        if live || online {
            // A replayed `true` is the state, not a sign of life; but a
            // board must get `offline_after_s` to be heard after it.
            b.heard_at = if live { now } else { b.heard_at.max(now) };
        }
    }

    /// The board's schedule. A bad one is refused (the previous stays).
    pub fn schedule(
        &mut self,
        area: &str,
        m: &ScheduleMessage,
        live: bool,
        now: DateTime<Utc>,
    ) -> Result<(), String> {
        let s = BoardSchedule::from_message(m)?;
        let b = self.board(area, &m.board, now);
        b.schedule = Some(s);
        if live {
            b.heard_at = now;
        }
        Ok(())
    }

    /// The store's view of a board after a commit: its ack and newest event.
    pub fn stored(
        &mut self,
        area: &str,
        board: &str,
        last_seq: u64,
        last_event_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) {
        let b = self.board(area, board, now);
        b.last_seq = last_seq;
        b.last_event_at = last_event_at.or(b.last_event_at);
    }

    /// The board's database file was replaced at `at` (a new incarnation
    /// of a board that had one: a reflashed card, a spare Pi).
    pub fn replaced(&mut self, board: &str, at: DateTime<Utc>) {
        if let Some(b) = self.boards.get_mut(board) {
            if b.replaced_at != Some(at) {
                b.replaced_at = Some(at);
                b.dirty = true;
            }
        }
    }

    /// How many members and team leaders the roster gives a board (known
    /// now or later).
    pub fn expected(&mut self, board: &str, n: u32) {
        self.roster.insert(board.to_owned(), n);
        if let Some(b) = self.boards.get_mut(board) {
            b.expected = n;
            b.dirty = true;
        }
    }

    /// Whether a board is known.
    pub fn has_board(&self, board: &str) -> bool {
        self.boards.contains_key(board)
    }

    /// The aggregator's own link to the broker went up or down. While down
    /// silence is not judged; when it is back every board counts as heard.
    pub fn link(&mut self, up: bool, now: DateTime<Utc>) {
        for b in self.boards.values_mut() {
            if up && !self.link_up {
                b.heard_at = b.heard_at.max(now);
            }
            b.dirty = true;
        }
        self.link_up = up;
    }

    /// The coaching report's count of overdue people.
    pub fn coaching_overdue(&mut self, n: u32) {
        self.coaching_overdue = n;
    }

    /// Every board's status, the site summary, and the alerts that arose
    /// since the previous evaluation. The time rules need this every
    /// second or so.
    pub fn evaluate(&mut self, now: DateTime<Utc>) -> Evaluation {
        self.run(now, true)
    }

    /// The same for the boards changed since the last evaluation only
    /// (`boards` holds just those; the summary counts every board, the
    /// others as last evaluated): what a batch of events needs, at a
    /// fraction of the cost on a large site.
    pub fn evaluate_changed(&mut self, now: DateTime<Utc>) -> Evaluation {
        self.run(now, false)
    }

    fn run(&mut self, now: DateTime<Utc>, full: bool) -> Evaluation {
        let today = now.with_timezone(&self.tz).date_naive();
        let mut boards = Vec::with_capacity(self.boards.len());
        let mut alerts = Vec::new();
        let mut earlier = Vec::new();
        let mut summary = SiteLive {
            site: self.site.clone(),
            boards: self.boards.len() as u32,
            states: StateCounts::default(),
            held_today: 0,
            missed_today: 0,
            attendance_rate: None,
            open_escalations: 0,
            stale_escalations: 0,
            coaching_overdue: self.coaching_overdue,
        };
        let (mut present, mut expected) = (0u64, 0u64);
        for (name, b) in self.boards.iter_mut() {
            if !full && !b.dirty {
                if let Some((live, t)) = &b.cached {
                    add(&mut summary, live, t, &mut present, &mut expected);
                    continue;
                }
            }
            if let Some(s) = &mut b.schedule {
                s.prepare(now);
            }
            b.huddles
                .retain(|_, h| h.started_at.or(h.first_seen).is_none_or(|s| now - s < KEEP));
            b.needs.retain(|_, n| !n.closed);
            let online = is_online(b, self.rules, self.link_up, now);
            let open = open_escalations(b, self.rules, now);
            let live = board_live(name, b, online, &open, now);
            // Alerts.
            if b.was_online && !online {
                let at = if b.flag {
                    b.heard_at + self.rules.offline_after
                } else {
                    b.flag_at
                };
                if at >= self.started {
                    alerts.push(alert(
                        AlertKind::BoardOffline,
                        name,
                        &b.area,
                        at,
                        texts::WENT_OFFLINE,
                        &[("board", name.clone())],
                    ));
                }
            }
            // Offline at the start (a board known then): listed once, while
            // the start is recent (the key's time is the start, forgotten
            // after `KEEP`).
            let at_start = b.since <= self.started;
            if at_start && !b.was_online && !online && now - self.started < KEEP {
                let key = (name.clone(), AlertKind::BoardOffline, String::new());
                if let std::collections::btree_map::Entry::Vacant(v) = self.alerted.entry(key) {
                    v.insert(self.started);
                    earlier.push(alert(
                        AlertKind::BoardOffline,
                        name,
                        &b.area,
                        self.started,
                        texts::OFFLINE_AT_START,
                        &[("board", name.clone())],
                    ));
                }
            }
            b.was_online = online;
            if let Some(s) = &b.schedule {
                for slot in s.slots_between((now - DAY).max(b.since), now) {
                    let deadline = slot.at + s.grace();
                    if deadline >= now || !online {
                        continue;
                    }
                    let started = answering(b, &slot).and_then(|(_, h)| h.started_at);
                    if !s.schedule.is_missed(&slot, started, now) {
                        continue;
                    }
                    let key = (name.clone(), AlertKind::MissedHuddle, stamp(slot.at));
                    if self.alerted.contains_key(&key) {
                        continue;
                    }
                    self.alerted.insert(key, deadline);
                    let mut a = alert(
                        AlertKind::MissedHuddle,
                        name,
                        &b.area,
                        deadline,
                        texts::MISSED_HUDDLE,
                        &[
                            ("board", name.clone()),
                            ("time", slot.local.format("%H:%M").to_string()),
                            ("min", s.grace().num_minutes().to_string()),
                        ],
                    );
                    a.scheduled_at = Some(slot.at);
                    if deadline < self.started {
                        earlier.push(a);
                    } else {
                        alerts.push(a);
                    }
                }
            }
            // Every stale escalation is alerted, not only those the status
            // lists (a batch may bring more than it lists at once).
            for e in &open {
                let at = e.escalated_at + self.rules.escalation_stale;
                if !e.stale || (at < self.started && now - self.started >= KEEP) {
                    continue;
                }
                let key = (name.clone(), AlertKind::EscalationStale, e.need_id.clone());
                if self.alerted.contains_key(&key) {
                    continue;
                }
                // Kept from the start at least: an escalation stale for
                // days is listed once, not at every evaluation.
                self.alerted.insert(key, at.max(self.started));
                let mut a = alert(
                    AlertKind::EscalationStale,
                    name,
                    &b.area,
                    at,
                    texts::ESCALATION_STALE,
                    &[
                        ("board", name.clone()),
                        ("text", e.text.clone()),
                        ("category", e.category.clone()),
                        ("hours", self.rules.escalation_stale.num_hours().to_string()),
                    ],
                );
                a.need_id = Some(e.need_id.clone());
                if at < self.started {
                    earlier.push(a);
                } else {
                    alerts.push(a);
                }
            }
            // The board's share of the site summary.
            let mut t = Tally::default();
            for h in b.huddles.values() {
                let Some(started) = h.started_at else {
                    continue;
                };
                if started.with_timezone(&self.tz).date_naive() != today {
                    continue;
                }
                match &h.closed {
                    Some((_, s)) => {
                        t.held += 1;
                        t.present += u64::from(s.present.min(s.expected));
                        t.expected += u64::from(s.expected);
                    }
                    None => {
                        t.present += (h.present.len() as u64).min(u64::from(b.expected));
                        t.expected += u64::from(b.expected);
                    }
                }
            }
            if let Some(s) = &b.schedule {
                for slot in s.slots_between((now - DAY * 2).max(b.since), now) {
                    if slot.at.with_timezone(&self.tz).date_naive() != today {
                        continue;
                    }
                    let started = answering(b, &slot).and_then(|(_, h)| h.started_at);
                    if now > slot.at + s.grace() && s.schedule.is_missed(&slot, started, now) {
                        t.missed += 1;
                    }
                }
            }
            add(&mut summary, &live, &t, &mut present, &mut expected);
            b.cached = Some((live.clone(), t));
            b.dirty = false;
            boards.push(live);
        }
        if expected > 0 {
            let rate = present as f64 / expected as f64;
            summary.attendance_rate = Some((rate * 1000.0).round() / 1000.0);
        }
        // Forget alert keys whose condition is older than anything looked at.
        self.alerted.retain(|_, at| now - *at < KEEP);
        Evaluation {
            boards,
            site: summary,
            alerts,
            earlier,
            moved: std::mem::take(&mut self.moved),
        }
    }
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Folds one event into the board.
fn fold(b: &mut BoardFold, e: StoredEvent<'_>) {
    fold_one(b, &e);
    // Bounds: ids come from the boards, so the maps are capped.
    if b.huddles.len() > MAX_HUDDLES {
        let oldest = b
            .huddles
            .iter()
            .min_by_key(|(_, h)| h.started_at.or(h.first_seen))
            .map(|(id, _)| id.clone());
        if let Some(id) = oldest {
            b.huddles.remove(&id);
        }
    }
    if b.needs.len() > MAX_NEEDS {
        // Closed needs go first, then needs never escalated (a team
        // sorts most out itself, and no event says so), oldest first: an
        // open escalation, the one thing shown, goes last.
        let oldest = b
            .needs
            .iter()
            .min_by_key(|(_, n)| (!n.closed, n.escalated_at.is_some(), n.first_seen))
            .map(|(id, _)| id.clone());
        if let Some(id) = oldest {
            b.needs.remove(&id);
        }
    }
}

/// The huddle an event names, made when first seen.
fn huddle(b: &mut BoardFold, id: String, at: DateTime<Utc>) -> &mut HuddleFold {
    let h = b.huddles.entry(id).or_default();
    h.first_seen.get_or_insert(at);
    h
}

/// The need an event names, made when first seen.
fn need(b: &mut BoardFold, id: String, at: DateTime<Utc>) -> &mut NeedFold {
    let n = b.needs.entry(id).or_default();
    n.first_seen.get_or_insert(at);
    n
}

fn fold_one(b: &mut BoardFold, e: &StoredEvent<'_>) {
    match e.kind {
        "huddle.started" => {
            if let Ok(d) = serde_json::from_str::<Started>(e.data) {
                let h = huddle(b, d.huddle_id, e.at);
                h.scheduled_at = d.scheduled_at;
                h.started_at = Some(e.at);
                h.target_s = d.target_minutes.saturating_mul(60);
                h.first_step = d.agenda.into_iter().next();
            }
        }
        "huddle.advanced" => {
            if let Ok(d) = serde_json::from_str::<Advanced>(e.data) {
                let h = huddle(b, d.huddle_id, e.at);
                if h.step.as_ref().is_none_or(|(seq, _, _)| *seq < e.seq) {
                    h.step = Some((e.seq, d.step, e.at));
                }
            }
        }
        "attendance.tapped" => {
            if let Ok(d) = serde_json::from_str::<Tapped>(e.data) {
                let h = huddle(b, d.huddle_id, e.at);
                if h.present.len() < MAX_PRESENT {
                    h.present.insert(d.person_id);
                }
            }
        }
        "huddle.closed" => {
            if let Ok(d) = serde_json::from_str::<Closed>(e.data) {
                huddle(b, d.huddle_id, e.at).closed = Some((e.at, d.summary));
            }
        }
        "need.raised" => {
            if let Ok(d) = serde_json::from_str::<Raised>(e.data) {
                let n = need(b, d.need_id, e.at);
                n.category = d.category;
                n.text = d.text;
                if d.escalated {
                    n.escalated_at = Some(n.escalated_at.map_or(e.at, |t| t.min(e.at)));
                }
            }
        }
        "need.escalated" => {
            if let Ok(d) = serde_json::from_str::<NeedRef>(e.data) {
                let n = need(b, d.need_id, e.at);
                n.escalated_at = Some(n.escalated_at.map_or(e.at, |t| t.min(e.at)));
            }
        }
        "need.closed" => {
            if let Ok(d) = serde_json::from_str::<NeedRef>(e.data) {
                need(b, d.need_id, e.at).closed = true;
            }
        }
        "observation.recorded" => {
            if let Ok(d) = serde_json::from_str::<Observed>(e.data) {
                if d.level == ObservationLevel::Facilitation {
                    b.last_observation_at = b.last_observation_at.max(Some(e.at));
                }
            }
        }
        _ => {}
    }
}

fn is_online(b: &BoardFold, rules: Rules, link_up: bool, now: DateTime<Utc>) -> bool {
    b.flag && (!link_up || now - b.heard_at < rules.offline_after)
}

/// The huddle answering a slot (the latest, if several).
fn answering<'a>(b: &'a BoardFold, slot: &Slot) -> Option<(&'a String, &'a HuddleFold)> {
    b.huddles
        .iter()
        .filter(|(_, h)| {
            let Some(started) = h.started_at else {
                return false;
            };
            match h.scheduled_at {
                Some(s) => s == slot.at,
                None => (started - slot.at).abs() <= MATCH_WINDOW,
            }
        })
        .max_by_key(|(_, h)| h.started_at)
}

fn live_huddle(id: &str, h: &HuddleFold, expected: u32) -> Option<LiveHuddle> {
    let started_at = h.started_at?;
    let running = h.closed.is_none();
    let (step, step_started_at) = match (&h.step, running) {
        (_, false) => (None, None),
        (Some((_, step, at)), true) => (Some(step.clone()), Some(*at)),
        (None, true) => (h.first_step.clone(), Some(started_at)),
    };
    let (present, expected) = match &h.closed {
        Some((_, s)) => (s.present, s.expected),
        None => (h.present.len() as u32, expected),
    };
    Some(LiveHuddle {
        huddle_id: id.to_owned(),
        scheduled_at: h.scheduled_at,
        started_at,
        target_s: h.target_s,
        step,
        step_started_at,
        present,
        expected,
        closed_at: h.closed.as_ref().map(|(at, _)| *at),
        summary: h.closed.as_ref().map(|(_, s)| s.clone()),
    })
}

/// Every open escalation of the board, oldest first (by time, then need).
fn open_escalations(b: &BoardFold, rules: Rules, now: DateTime<Utc>) -> Vec<OpenEscalation> {
    let mut escalations: Vec<OpenEscalation> = b
        .needs
        .iter()
        .filter(|(_, n)| !n.closed)
        .filter_map(|(id, n)| {
            let at = n.escalated_at?;
            Some(OpenEscalation {
                need_id: id.clone(),
                category: n.category.clone(),
                text: n.text.clone(),
                escalated_at: at,
                stale: now >= at + rules.escalation_stale,
            })
        })
        .collect();
    escalations.sort_by(|a, b| (a.escalated_at, &a.need_id).cmp(&(b.escalated_at, &b.need_id)));
    escalations
}

fn board_live(
    name: &str,
    b: &BoardFold,
    online: bool,
    open: &[OpenEscalation],
    now: DateTime<Utc>,
) -> BoardLive {
    let recent = |h: &&HuddleFold| h.started_at.is_some_and(|s| now - s < DAY);
    let by_start = |h: &(&String, &HuddleFold)| h.1.started_at;
    let running = b
        .huddles
        .iter()
        .filter(|(_, h)| h.closed.is_none() && recent(h))
        .max_by_key(by_start);
    let held = |h: &&HuddleFold| h.started_at.is_some_and(|s| now - s < STATE_HOLD);
    let last_slot = b.schedule.as_ref().and_then(|s| {
        s.slots_between((now - STATE_HOLD).max(b.since), now)
            .last()
            .copied()
    });
    let (state, huddle) = if let Some((id, h)) = running {
        (LiveState::InProgress, live_huddle(id, h, b.expected))
    } else if let (Some(s), Some(slot)) = (&b.schedule, last_slot) {
        match answering(b, &slot) {
            Some((id, h)) if h.closed.is_some() => {
                (LiveState::Closed, live_huddle(id, h, b.expected))
            }
            Some((id, h)) => (LiveState::InProgress, live_huddle(id, h, b.expected)),
            None if now > slot.at + s.grace() => (LiveState::Missed, None),
            None => (LiveState::NotStarted, None),
        }
    } else {
        match b
            .huddles
            .iter()
            .filter(|(_, h)| held(h))
            .max_by_key(by_start)
        {
            Some((id, h)) if h.closed.is_some() => {
                (LiveState::Closed, live_huddle(id, h, b.expected))
            }
            _ => (LiveState::NotStarted, None),
        }
    };
    // Design: the oldest are listed (they are the most urgent, and a flood
    // of new ones cannot push them out); the rest are counted.
    let (listed, hidden) = open.split_at(open.len().min(MAX_ESCALATIONS_LISTED));
    let escalations = listed.to_vec();
    let escalations_more = hidden.len() as u32;
    let escalations_more_stale = hidden.iter().filter(|e| e.stale).count() as u32;
    BoardLive {
        board: name.to_owned(),
        area: b.area.clone(),
        state,
        online,
        last_seq: b.last_seq,
        last_event_at: b.last_event_at,
        next_due_at: b
            .schedule
            .as_ref()
            .and_then(|s| s.slots_between(now, now + DAY * 2).first().map(|s| s.at)),
        huddle,
        escalations,
        escalations_more,
        escalations_more_stale,
        last_observation_at: b.last_observation_at,
        replaced_at: b.replaced_at,
    }
}

#[cfg(test)]
mod tests;
