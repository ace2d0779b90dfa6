//! The live status rules (issue 6): from the stored events, each board's
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
//!   within `offline_after_s`. Kiosks republish `online` every 30 s
//!   ([`crate::kiosk::outbox::HEARTBEAT`]). Silence is only judged while the
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
//!   the roster's members and team leaders).
//! - **Alerts** fire on transitions only, each once: `missed_huddle` at a
//!   slot's grace end, `escalation_stale` when an escalation turns stale,
//!   `board_offline` when a board goes from online to offline. A condition
//!   that arose before this aggregator started is shown by the retained
//!   status, never alerted: so a restart does not repeat alerts (except a
//!   board that went silent without a last will, which is alerted again
//!   after `offline_after_s`: nothing stored says it was already offline).
//!   A missed huddle is not alerted while the board is offline (its start
//!   may be waiting in its outbox); it is when the board is back and the
//!   slot is still missed.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, NaiveTime, Utc};
use chrono_tz::Tz;
use serde::Deserialize;

use crate::domain::{ObservationLevel, Schedule, Slot, Summary};
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
/// Most open needs one board's fold keeps (the oldest go first).
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

/// A board's schedule, checked.
#[derive(Debug, Clone)]
pub struct BoardSchedule {
    schedule: Schedule,
    /// The slots of `(range.0, range.1]`, resolved once ([`Self::prepare`]):
    /// time zone arithmetic is most of an evaluation's cost otherwise.
    cache: Vec<Slot>,
    range: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

impl BoardSchedule {
    /// Checks a received schedule: a known time zone, `HH:MM` times.
    pub fn from_message(m: &ScheduleMessage) -> Result<BoardSchedule, String> {
        let tz: Tz = m
            .timezone
            .parse()
            .map_err(|_| format!("`{}` is not an IANA time zone", m.timezone))?;
        let times = m
            .times
            .iter()
            .map(|t| {
                NaiveTime::parse_from_str(t, "%H:%M").map_err(|_| format!("`{t}` is not HH:MM"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(BoardSchedule {
            schedule: Schedule::new(
                times,
                tz,
                Duration::zero(),
                Duration::zero(),
                Duration::seconds(m.grace_s.into()),
            ),
            cache: Vec::new(),
            range: None,
        })
    }

    /// Resolves the slots of three days either side of `now` unless the
    /// cached ones still cover two and a half.
    fn prepare(&mut self, now: DateTime<Utc>) {
        let margin = Duration::hours(60);
        let fresh = self
            .range
            .is_some_and(|(lo, hi)| lo <= now - margin && hi >= now + margin);
        if !fresh {
            let range = (now - Duration::days(3), now + Duration::days(3));
            self.cache = self.resolve(range.0, range.1);
            self.range = Some(range);
        }
    }

    /// The slots whose time is in `(from, to]`, in order.
    fn slots_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Slot> {
        match self.range {
            Some((lo, hi)) if lo <= from && to <= hi => self
                .cache
                .iter()
                .filter(|s| s.at > from && s.at <= to)
                .copied()
                .collect(),
            _ => self.resolve(from, to),
        }
    }

    /// [`Self::slots_between`] without the cache.
    fn resolve(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Slot> {
        let tz = self.schedule.tz();
        let (Some(first), Some(last)) = (
            (from.with_timezone(&tz).date_naive()).pred_opt(),
            (to.with_timezone(&tz).date_naive()).succ_opt(),
        ) else {
            return Vec::new();
        };
        let mut slots = Vec::new();
        for day in first.iter_days().take_while(|d| *d <= last) {
            for t in self.times() {
                let s = self.schedule.slot_on(day, t);
                if s.at > from && s.at <= to {
                    slots.push(s);
                }
            }
        }
        slots.sort_by_key(|s| s.at);
        slots.dedup_by_key(|s| s.at);
        slots
    }

    fn times(&self) -> Vec<NaiveTime> {
        self.schedule.times().to_vec()
    }

    fn grace(&self) -> Duration {
        self.schedule.grace()
    }
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
            let live = board_live(name, b, online, self.rules, now);
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
                        format!("board {name} went offline"),
                    ));
                }
            }
            b.was_online = online;
            if let Some(s) = &b.schedule {
                for slot in s.slots_between((now - DAY).max(b.since), now) {
                    let deadline = slot.at + s.grace();
                    if deadline >= now || deadline < self.started || !online {
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
                        format!(
                            "board {name}: the {} huddle was not started within {} min",
                            slot.local.format("%H:%M"),
                            s.grace().num_minutes()
                        ),
                    );
                    a.scheduled_at = Some(slot.at);
                    alerts.push(a);
                }
            }
            for e in &live.escalations {
                let at = e.escalated_at + self.rules.escalation_stale;
                if !e.stale || at < self.started {
                    continue;
                }
                let key = (name.clone(), AlertKind::EscalationStale, e.need_id.clone());
                if self.alerted.contains_key(&key) {
                    continue;
                }
                self.alerted.insert(key, at);
                let mut a = alert(
                    AlertKind::EscalationStale,
                    name,
                    &b.area,
                    at,
                    format!(
                        "board {name}: escalation \"{}\" ({}) is open for {} h",
                        e.text,
                        e.category,
                        self.rules.escalation_stale.num_hours()
                    ),
                );
                a.need_id = Some(e.need_id.clone());
                alerts.push(a);
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
                        t.present += u64::from(s.present);
                        t.expected += u64::from(s.expected);
                    }
                    None => {
                        t.present += h.present.len() as u64;
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
            moved: std::mem::take(&mut self.moved),
        }
    }
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn alert(
    kind: AlertKind,
    board: &str,
    area: &str,
    at: DateTime<Utc>,
    message: String,
) -> BoardAlert {
    BoardAlert {
        kind,
        board: board.to_owned(),
        area: area.to_owned(),
        at,
        message,
        scheduled_at: None,
        need_id: None,
    }
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
        let oldest = b
            .needs
            .iter()
            .min_by_key(|(_, n)| n.first_seen)
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

fn board_live(
    name: &str,
    b: &BoardFold,
    online: bool,
    rules: Rules,
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
    // Design: the oldest are listed (they are the most urgent, and a flood
    // of new ones cannot push them out); the rest are counted.
    let hidden = escalations.split_off(escalations.len().min(MAX_ESCALATIONS_LISTED));
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
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    const TZ: Tz = chrono_tz::Europe::Berlin;
    const RULES: Rules = Rules {
        escalation_stale: Duration::hours(4),
        offline_after: Duration::seconds(120),
    };

    /// 2026-11-30 (a Monday) at local h:m:s in Berlin.
    fn t(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        day(30, h, m, s)
    }

    fn day(d: u32, h: u32, m: u32, s: u32) -> DateTime<Utc> {
        TZ.with_ymd_and_hms(2026, 11, d, h, m, s)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn schedule(board: &str, times: &[&str]) -> ScheduleMessage {
        ScheduleMessage {
            board: board.into(),
            timezone: "Europe/Berlin".into(),
            times: times.iter().map(|s| s.to_string()).collect(),
            grace_s: 300,
            target_s: 900,
            issued_at: t(0, 0, 0),
        }
    }

    /// A site started at `started` with board `b1` online and scheduled.
    fn site(started: DateTime<Utc>, times: &[&str]) -> Site {
        let mut s = Site::new("plant1", TZ, RULES, started);
        s.online("assembly", "b1", true, true, started);
        s.schedule("assembly", &schedule("b1", times), true, started)
            .unwrap();
        s
    }

    struct Board<'a> {
        site: &'a mut Site,
        seq: u64,
    }

    impl Board<'_> {
        fn on(site: &mut Site) -> Board<'_> {
            Board { site, seq: 0 }
        }
        fn ev(&mut self, at: DateTime<Utc>, kind: &str, data: serde_json::Value) {
            self.seq += 1;
            let data = data.to_string();
            let e = StoredEvent {
                board: "b1",
                seq: self.seq,
                at,
                kind,
                data: &data,
            };
            self.site.event("assembly", e, true, at);
        }
        fn start(&mut self, at: DateTime<Utc>, id: &str, scheduled: Option<DateTime<Utc>>) {
            self.ev(
                at,
                "huddle.started",
                json!({"huddle_id": id, "scheduled_at": scheduled, "slot": null, "started_by": "p01",
                       "trigger": "team_leader", "target_minutes": 15, "agenda": ["attendance", "kpis"]}),
            );
        }
        fn tap(&mut self, at: DateTime<Utc>, id: &str, person: &str) {
            self.ev(
                at,
                "attendance.tapped",
                json!({"huddle_id": id, "person_id": person, "via": "badge", "late": false}),
            );
        }
        fn close(&mut self, at: DateTime<Utc>, id: &str, present: u32, expected: u32) {
            self.ev(
                at,
                "huddle.closed",
                json!({"huddle_id": id, "closed_by": "p01", "summary": {
                    "present": present, "expected": expected, "late": 0, "absent": [], "kpis_hit": 0,
                    "kpis_reviewed": 0, "kpis_total": 0, "needs_raised": 0, "needs_escalated": 0,
                    "actions_created": 0, "actions_closed": 0, "duration_s": 600, "target_s": 900}}),
            );
        }
    }

    fn b1(e: &Evaluation) -> &BoardLive {
        e.boards.iter().find(|b| b.board == "b1").unwrap()
    }

    fn kinds(e: &Evaluation) -> Vec<AlertKind> {
        e.alerts.iter().map(|a| a.kind).collect()
    }

    /// Evaluates at `now` after the board's heartbeat.
    fn at(s: &mut Site, now: DateTime<Utc>) -> Evaluation {
        s.online("assembly", "b1", true, true, now);
        s.evaluate(now)
    }

    #[test]
    fn ids_a_board_invents_are_bounded_and_escalations_are_listed_oldest_first() {
        let mut s = site(t(6, 0, 0), &["06:45"]);
        let mut b = Board::on(&mut s);
        for i in 0..2000u32 {
            let at = t(6, 1, 0) + Duration::seconds(i.into());
            // Taps for huddles that never start, and escalated needs.
            b.tap(at, &format!("ghost-{i}"), &format!("p{i}"));
            b.ev(
                at,
                "need.raised",
                json!({"need_id": format!("n{i}"), "huddle_id": "h", "category": "material",
                       "text": "x", "escalated": true}),
            );
        }
        let e = at(&mut s, t(7, 0, 0));
        let fold = &s.boards["b1"];
        assert!(fold.huddles.len() <= MAX_HUDDLES, "{}", fold.huddles.len());
        assert!(fold.needs.len() <= MAX_NEEDS, "{}", fold.needs.len());
        let live = b1(&e);
        assert_eq!(live.escalations.len(), MAX_ESCALATIONS_LISTED);
        assert_eq!(
            live.escalations.len() as u32 + live.escalations_more,
            MAX_NEEDS as u32
        );
        assert_eq!(e.site.open_escalations, MAX_NEEDS as u32);
        // The oldest kept are listed first.
        assert!(live.escalations[0].escalated_at <= live.escalations[1].escalated_at);
        let bytes = serde_json::to_vec(live).unwrap().len();
        assert!(bytes < 64 * 1024, "status of {bytes} bytes");
        // Huddles that never started are forgotten after KEEP.
        let e = at(&mut s, t(7, 0, 0) + KEEP + Duration::minutes(1));
        assert!(s.boards["b1"].huddles.is_empty());
        drop(e);
    }

    #[test]
    fn a_replaced_board_says_since_when() {
        let mut s = site(t(6, 0, 0), &["06:45"]);
        assert_eq!(b1(&at(&mut s, t(6, 1, 0))).replaced_at, None);
        s.replaced("b1", t(5, 0, 0));
        assert_eq!(
            b1(&s.evaluate_changed(t(6, 2, 0))).replaced_at,
            Some(t(5, 0, 0)),
            "the change is seen without a full evaluation"
        );
    }

    #[test]
    fn a_board_that_moves_to_another_area_is_reported_once_with_its_old_area() {
        let mut s = site(t(6, 0, 0), &["06:45"]);
        let e = at(&mut s, t(6, 1, 0));
        assert!(e.moved.is_empty());
        s.online("paint", "b1", true, true, t(6, 2, 0));
        let e = s.evaluate(t(6, 2, 0));
        assert_eq!(e.moved, [("b1".to_owned(), "assembly".to_owned())]);
        assert_eq!(b1(&e).area, "paint");
        assert!(s.evaluate(t(6, 3, 0)).moved.is_empty());
    }

    #[test]
    fn missed_after_grace_and_not_before_and_alerted_once() {
        let mut s = site(t(6, 0, 0), &["06:45", "14:45"]);
        let e = at(&mut s, t(6, 30, 0));
        assert_eq!(b1(&e).state, LiveState::NotStarted);
        assert_eq!(b1(&e).next_due_at, Some(t(6, 45, 0)));
        let e = at(&mut s, t(6, 50, 0));
        assert_eq!(b1(&e).state, LiveState::NotStarted, "at the grace's end");
        assert!(e.alerts.is_empty());
        let e = at(&mut s, t(6, 50, 1));
        assert_eq!(b1(&e).state, LiveState::Missed);
        assert_eq!(kinds(&e), [AlertKind::MissedHuddle]);
        assert_eq!(e.alerts[0].at, t(6, 50, 0));
        assert_eq!(e.alerts[0].scheduled_at, Some(t(6, 45, 0)));
        assert_eq!(e.site.missed_today, 1);
        assert_eq!(e.site.states.missed, 1);
        let e = at(&mut s, t(6, 55, 0));
        assert!(e.alerts.is_empty(), "never repeated");
        assert_eq!(b1(&e).next_due_at, Some(t(14, 45, 0)));
        // The next slot comes: not started again until its grace passes.
        let e = at(&mut s, t(14, 46, 0));
        assert_eq!(b1(&e).state, LiveState::NotStarted);
        let e = at(&mut s, t(14, 51, 0));
        assert_eq!(kinds(&e), [AlertKind::MissedHuddle]);
        assert_eq!(e.site.missed_today, 2);
    }

    #[test]
    fn a_started_huddle_is_in_progress_then_closed_with_attendance() {
        let mut s = site(t(6, 0, 0), &["06:45"]);
        s.expected("b1", 4);
        let mut b = Board::on(&mut s);
        b.start(t(6, 44, 0), "h1", Some(t(6, 45, 0)));
        b.tap(t(6, 44, 10), "h1", "p01");
        b.tap(t(6, 44, 20), "h1", "p02");
        b.tap(t(6, 44, 20), "h1", "p02"); // a duplicate changes nothing
        b.ev(
            t(6, 47, 0),
            "huddle.advanced",
            json!({"huddle_id": "h1", "step": "kpis", "index": 1}),
        );
        let e = at(&mut s, t(6, 51, 0));
        let h = b1(&e).huddle.clone().unwrap();
        assert_eq!(b1(&e).state, LiveState::InProgress);
        assert!(e.alerts.is_empty());
        assert_eq!((h.present, h.expected), (2, 4));
        assert_eq!(h.step.as_deref(), Some("kpis"));
        assert_eq!(h.step_started_at, Some(t(6, 47, 0)));
        assert_eq!(h.target_s, 900);
        assert_eq!(e.site.attendance_rate, Some(0.5));
        let mut b = Board::on(&mut s);
        b.seq = 10;
        b.close(t(7, 0, 0), "h1", 3, 4);
        let e = at(&mut s, t(7, 1, 0));
        let h = b1(&e).huddle.clone().unwrap();
        assert_eq!(b1(&e).state, LiveState::Closed);
        assert_eq!((h.closed_at, h.step), (Some(t(7, 0, 0)), None));
        assert_eq!(h.summary.unwrap().present, 3);
        assert_eq!((e.site.held_today, e.site.missed_today), (1, 0));
        assert_eq!(e.site.attendance_rate, Some(0.75));
    }

    #[test]
    fn a_late_start_was_missed_and_is_held_once_closed() {
        let mut s = site(t(6, 0, 0), &["06:45"]);
        assert_eq!(kinds(&at(&mut s, t(6, 51, 0))), [AlertKind::MissedHuddle]);
        let mut b = Board::on(&mut s);
        b.start(t(6, 55, 0), "h1", Some(t(6, 45, 0)));
        let e = at(&mut s, t(6, 56, 0));
        assert_eq!(b1(&e).state, LiveState::InProgress);
        assert!(e.alerts.is_empty());
        let mut b = Board::on(&mut s);
        b.seq = 5;
        b.close(t(7, 5, 0), "h1", 4, 4);
        let e = at(&mut s, t(7, 6, 0));
        assert_eq!(b1(&e).state, LiveState::Closed);
        assert_eq!((e.site.held_today, e.site.missed_today), (1, 1));
        // A team leader's start outside the window (no scheduled_at) answers
        // the slot it is near.
        let mut s = site(t(6, 0, 0), &["06:45"]);
        let mut b = Board::on(&mut s);
        b.start(t(6, 40, 0), "h2", None);
        let e = at(&mut s, t(6, 52, 0));
        assert!(e.alerts.is_empty());
        assert_eq!(e.site.missed_today, 0);
    }

    #[test]
    fn the_night_shift_slot_belongs_to_the_day_it_starts_on() {
        let mut s = site(day(29, 22, 0, 0), &["23:50"]);
        let e = at(&mut s, day(29, 23, 56, 0));
        assert_eq!(kinds(&e), [AlertKind::MissedHuddle]);
        assert_eq!(e.site.missed_today, 1);
        // After midnight the board is still missed (its latest slot), but
        // it counted for yesterday.
        let e = at(&mut s, t(0, 20, 0));
        assert_eq!(b1(&e).state, LiveState::Missed);
        assert_eq!(e.site.missed_today, 0);
        assert!(e.alerts.is_empty());
        assert_eq!(b1(&e).next_due_at, Some(t(23, 50, 0)));
        // Started on time before midnight, closed after it: closed.
        let mut s = site(day(29, 22, 0, 0), &["23:50"]);
        let mut b = Board::on(&mut s);
        b.start(day(29, 23, 49, 0), "h", Some(day(29, 23, 50, 0)));
        b.close(t(0, 5, 0), "h", 3, 3);
        let e = at(&mut s, t(0, 20, 0));
        assert_eq!(b1(&e).state, LiveState::Closed);
        assert!(e.alerts.is_empty());
    }

    #[test]
    fn conditions_older_than_the_start_are_shown_not_alerted() {
        // Known from the database since yesterday; the aggregator restarted at 07:00.
        let mut s = Site::new("plant1", TZ, RULES, t(7, 0, 0));
        s.known(
            "assembly",
            "b1",
            true,
            0,
            None,
            Some(day(29, 12, 0, 0)),
            t(7, 0, 0),
        );
        s.schedule("assembly", &schedule("b1", &["06:45"]), false, t(7, 0, 0))
            .unwrap();
        let mut b = Board::on(&mut s);
        b.ev(
            t(1, 0, 0),
            "need.raised",
            json!({"need_id": "n1", "huddle_id": "h0", "category": "Material", "text": "pallets", "escalated": true}),
        );
        let e = at(&mut s, t(7, 0, 1));
        assert_eq!(b1(&e).state, LiveState::Missed);
        assert!(b1(&e).escalations[0].stale);
        assert!(e.alerts.is_empty(), "{:?}", e.alerts);
    }

    #[test]
    fn a_board_first_seen_at_noon_missed_no_morning_huddle() {
        let mut s = site(t(12, 0, 0), &["06:45", "14:45"]);
        let e = at(&mut s, t(12, 0, 1));
        assert_eq!(b1(&e).state, LiveState::NotStarted);
        assert_eq!(e.site.missed_today, 0);
        let e = at(&mut s, t(14, 50, 1));
        assert_eq!(b1(&e).state, LiveState::Missed);
        assert_eq!(e.site.missed_today, 1);
    }

    #[test]
    fn an_escalation_ages_to_stale_once_and_closes() {
        let mut s = site(t(6, 0, 0), &[]);
        let mut b = Board::on(&mut s);
        b.ev(
            t(7, 0, 0),
            "need.raised",
            json!({"need_id": "n1", "huddle_id": "h1", "category": "Material", "text": "pallets", "escalated": false}),
        );
        let e = at(&mut s, t(7, 30, 0));
        assert!(b1(&e).escalations.is_empty(), "raised, not escalated");
        let mut b = Board::on(&mut s);
        b.seq = 1;
        b.ev(
            t(8, 0, 0),
            "need.escalated",
            json!({"need_id": "n1", "by": "p01"}),
        );
        let e = at(&mut s, t(11, 59, 59));
        let esc = &b1(&e).escalations[0];
        assert_eq!((esc.escalated_at, esc.stale), (t(8, 0, 0), false));
        assert_eq!(
            (esc.category.as_str(), esc.text.as_str()),
            ("Material", "pallets")
        );
        assert_eq!((e.site.open_escalations, e.site.stale_escalations), (1, 0));
        let e = at(&mut s, t(12, 0, 0));
        assert!(b1(&e).escalations[0].stale);
        assert_eq!(kinds(&e), [AlertKind::EscalationStale]);
        assert_eq!(e.alerts[0].need_id.as_deref(), Some("n1"));
        assert_eq!(e.alerts[0].at, t(12, 0, 0));
        assert_eq!(e.site.stale_escalations, 1);
        assert!(at(&mut s, t(12, 0, 1)).alerts.is_empty(), "never repeated");
        let mut b = Board::on(&mut s);
        b.seq = 2;
        b.ev(
            t(12, 5, 0),
            "need.closed",
            json!({"need_id": "n1", "by": "p07"}),
        );
        let e = at(&mut s, t(12, 6, 0));
        assert!(b1(&e).escalations.is_empty());
        assert_eq!(e.site.open_escalations, 0);
    }

    #[test]
    fn offline_after_the_last_will_and_back() {
        let mut s = site(t(6, 0, 0), &[]);
        assert!(b1(&s.evaluate(t(6, 0, 1))).online);
        s.online("assembly", "b1", false, true, t(6, 1, 0));
        let e = s.evaluate(t(6, 1, 0));
        assert!(!b1(&e).online);
        assert_eq!(kinds(&e), [AlertKind::BoardOffline]);
        assert_eq!(e.alerts[0].at, t(6, 1, 0));
        assert_eq!(e.site.states.offline, 1);
        assert!(s.evaluate(t(6, 5, 0)).alerts.is_empty(), "never repeated");
        s.online("assembly", "b1", true, true, t(6, 6, 0));
        let e = s.evaluate(t(6, 6, 0));
        assert!(b1(&e).online);
        assert!(e.alerts.is_empty());
        // Offline again: a new condition, alerted again.
        s.online("assembly", "b1", false, true, t(6, 7, 0));
        assert_eq!(kinds(&s.evaluate(t(6, 7, 0))), [AlertKind::BoardOffline]);
    }

    #[test]
    fn offline_after_silence_unless_the_aggregators_own_link_is_down() {
        let mut s = site(t(6, 0, 0), &[]);
        let e = s.evaluate(t(6, 1, 59));
        assert!(b1(&e).online, "119 s of silence");
        let e = s.evaluate(t(6, 2, 0));
        assert!(!b1(&e).online, "120 s of silence");
        assert_eq!(kinds(&e), [AlertKind::BoardOffline]);
        assert_eq!(e.alerts[0].at, t(6, 2, 0));
        // An event is a sign of life.
        let mut b = Board::on(&mut s);
        b.start(t(6, 3, 0), "h", None);
        assert!(b1(&s.evaluate(t(6, 3, 0))).online);
        // The aggregator's link is down: silence is not judged; when it is
        // back, every board has offline_after_s to be heard.
        s.link(false, t(6, 4, 0));
        assert!(b1(&s.evaluate(t(6, 30, 0))).online);
        s.link(true, t(6, 30, 0));
        let e = s.evaluate(t(6, 31, 59));
        assert!(b1(&e).online && e.alerts.is_empty());
        assert!(!b1(&s.evaluate(t(6, 32, 0))).online);
    }

    #[test]
    fn a_restart_does_not_repeat_an_offline_alert() {
        let mut s = Site::new("plant1", TZ, RULES, t(6, 0, 0));
        s.known(
            "assembly",
            "b1",
            false,
            7,
            Some(t(5, 0, 0)),
            None,
            t(6, 0, 0),
        );
        // The broker replays the retained last will.
        s.online("assembly", "b1", false, false, t(6, 0, 1));
        let e = s.evaluate(t(6, 0, 1));
        assert!(!b1(&e).online);
        assert_eq!(b1(&e).last_seq, 7);
        assert!(e.alerts.is_empty());
        // A replayed `true` gives the board offline_after_s to be heard.
        let mut s = Site::new("plant1", TZ, RULES, t(6, 0, 0));
        s.known("assembly", "b1", true, 7, None, None, t(6, 0, 0));
        s.online("assembly", "b1", true, false, t(6, 0, 1));
        assert!(b1(&s.evaluate(t(6, 2, 0))).online);
        assert!(!b1(&s.evaluate(t(6, 2, 1))).online);
    }

    #[test]
    fn a_missed_huddle_waits_while_the_board_is_offline() {
        let mut s = site(t(6, 0, 0), &["06:45"]);
        s.online("assembly", "b1", false, true, t(6, 40, 0));
        let e = s.evaluate(t(6, 52, 0));
        assert_eq!(b1(&e).state, LiveState::Missed);
        assert!(!kinds(&e).contains(&AlertKind::MissedHuddle));
        // Back, with the start it held in its outbox: no alert.
        s.online("assembly", "b1", true, true, t(6, 53, 0));
        let mut b = Board::on(&mut s);
        b.start(t(6, 46, 0), "h", Some(t(6, 45, 0)));
        let e = s.evaluate(t(6, 53, 0));
        assert_eq!(b1(&e).state, LiveState::InProgress);
        assert!(e.alerts.is_empty());
    }

    #[test]
    fn the_site_summary_counts_boards_huddles_and_escalations() {
        let mut s = site(t(6, 0, 0), &["06:45"]);
        s.coaching_overdue(2);
        // b2: in progress, 1 of 5 present; b3: no schedule, offline.
        s.online("assembly", "b2", true, true, t(6, 0, 0));
        s.online("paint", "b3", false, true, t(6, 0, 0));
        s.expected("b2", 5);
        let data = |v: serde_json::Value| v.to_string();
        let started = data(
            json!({"huddle_id": "x", "scheduled_at": null, "slot": null, "started_by": "p",
            "trigger": "team_leader", "target_minutes": 10, "agenda": ["attendance"]}),
        );
        let tapped =
            data(json!({"huddle_id": "x", "person_id": "p", "via": "name", "late": false}));
        let need = data(
            json!({"need_id": "n", "huddle_id": "x", "category": "People", "text": "cover", "escalated": true}),
        );
        for (seq, kind, d) in [
            (1, "huddle.started", &started),
            (2, "attendance.tapped", &tapped),
            (3, "need.raised", &need),
        ] {
            let e = StoredEvent {
                board: "b2",
                seq,
                at: t(6, 40, 0),
                kind,
                data: d,
            };
            s.event("assembly", e, true, t(6, 40, 0));
        }
        s.online("assembly", "b2", true, true, t(7, 0, 0));
        let e = at(&mut s, t(7, 0, 0));
        let site = &e.site;
        assert_eq!(site.boards, 3);
        assert_eq!(
            site.states,
            StateCounts {
                not_started: 1,
                in_progress: 1,
                closed: 0,
                missed: 1,
                offline: 1
            }
        );
        assert_eq!((site.held_today, site.missed_today), (0, 1));
        assert_eq!(site.attendance_rate, Some(0.2));
        assert_eq!((site.open_escalations, site.stale_escalations), (1, 0));
        assert_eq!(site.coaching_overdue, 2);
        let b3 = e.boards.iter().find(|b| b.board == "b3").unwrap();
        assert_eq!((b3.area.as_str(), b3.online), ("paint", false));
    }

    #[test]
    fn evaluating_the_changed_boards_gives_the_same_summary() {
        let mut s = site(t(6, 0, 0), &["06:45"]);
        s.online("paint", "b2", true, true, t(6, 0, 0));
        let full = s.evaluate(t(6, 0, 1));
        assert_eq!(full.boards.len(), 2);
        s.online("paint", "b2", false, true, t(6, 0, 2));
        let changed = s.evaluate_changed(t(6, 0, 2));
        assert_eq!(changed.boards.len(), 1);
        assert!(!changed.boards[0].online);
        assert_eq!(changed.site.states.offline, 1);
        assert_eq!(changed.site, s.evaluate(t(6, 0, 2)).site);
        assert!(s.evaluate_changed(t(6, 0, 3)).boards.is_empty());
    }

    #[test]
    fn a_bad_schedule_is_refused_and_the_last_observation_is_kept() {
        let mut s = site(t(6, 0, 0), &["06:45"]);
        let mut bad = schedule("b1", &["6h45"]);
        assert!(s
            .schedule("assembly", &bad, true, t(6, 0, 0))
            .unwrap_err()
            .contains("6h45"));
        bad.times = vec!["06:45".into()];
        bad.timezone = "Mars/Base".into();
        assert!(s.schedule("assembly", &bad, true, t(6, 0, 0)).is_err());
        let mut b = Board::on(&mut s);
        b.ev(
            t(6, 30, 0),
            "observation.recorded",
            json!({"level": "facilitation"}),
        );
        b.ev(
            t(6, 31, 0),
            "observation.recorded",
            json!({"level": "coaching"}),
        );
        let e = at(&mut s, t(6, 52, 0));
        assert_eq!(b1(&e).state, LiveState::Missed, "the good schedule stays");
        assert_eq!(b1(&e).last_observation_at, Some(t(6, 30, 0)));
    }
}

#[cfg(test)]
mod cost {
    use super::*;

    /// Not a benchmark: prints what one evaluation of a 500-board plant
    /// costs (`cargo test --lib status::cost -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn evaluation_of_500_boards() {
        let tz = chrono_tz::Europe::Berlin;
        let now = Utc::now();
        let rules = Rules {
            escalation_stale: Duration::hours(4),
            offline_after: Duration::seconds(120),
        };
        let mut s = Site::new("plant1", tz, rules, now);
        for i in 0..500 {
            let board = format!("b{i:03}");
            s.online("a", &board, true, true, now);
            let m = ScheduleMessage {
                board: board.clone(),
                timezone: "Europe/Berlin".into(),
                times: vec!["06:45".into(), "14:45".into(), "22:45".into()],
                grace_s: 300,
                target_s: 900,
                issued_at: now,
            };
            s.schedule("a", &m, true, now).unwrap();
            let data = format!(
                r#"{{"huddle_id":"h{i}","scheduled_at":null,"target_minutes":15,"agenda":["attendance"]}}"#
            );
            let e = StoredEvent {
                board: &board,
                seq: 1,
                at: now,
                kind: "huddle.started",
                data: &data,
            };
            s.event("a", e, true, now);
        }
        let t0 = std::time::Instant::now();
        for _ in 0..20 {
            s.evaluate(now);
        }
        eprintln!("one evaluation of 500 boards: {:?}", t0.elapsed() / 20);
        let t0 = std::time::Instant::now();
        for i in 0..20 {
            s.online("a", &format!("b{i:03}"), true, true, now);
            assert_eq!(s.evaluate_changed(now).boards.len(), 1);
        }
        eprintln!(
            "one evaluation after one board changed: {:?}",
            t0.elapsed() / 20
        );
        let t0 = std::time::Instant::now();
        let n = 20;
        let mut bytes = 0;
        for _ in 0..n {
            let e = s.evaluate(now);
            for b in &e.boards {
                bytes += serde_json::to_vec(b).unwrap().len();
            }
        }
        eprintln!(
            "one evaluation of 500 boards, serialised: {:?} ({} bytes)",
            t0.elapsed() / n,
            bytes / n as usize
        );
    }
}
