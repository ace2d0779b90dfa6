//! The live status's shell: one thread that keeps the [`Site`] of
//! [`super::rules`] up to date and publishes what it says.
//!
//! ```text
//!  writer thread --after each commit: committed events, online flags,
//!                  schedules, each touched board's ack ------------+
//!  MQTT loop     --link up (ConnAck) / down ----------------------+--> status thread
//!  timer (1 s) ---------------------------------------------------+     | rules (pure, Site)
//!                                                                        +--> client + hub:
//!     retained .../{board}/status and huddle/v1/{site}/status when they changed,
//!     huddle/v1/{site}/alert/{missed_huddle|escalation_stale|board_offline} (not retained)
//! ```
//!
//! - **Fed only what is committed.** The ingest writer hands over a
//!   batch's events after its transaction committed (never a rejected or
//!   uncommitted one); the rules are idempotent, so a duplicate re-sent by
//!   a board changes nothing. `online` and `schedule` messages come through
//!   the same queue (their PUBACKs keep their place in the writer's order).
//! - **Rebuilt at start** from the database ([`StatusDb`]): every board's
//!   flag and ack, the huddles of the last two days with their taps and
//!   steps, every open escalation, the last observations. The conditions
//!   still open then (missed slots of the last 24 hours, stale
//!   escalations, boards offline: [`Evaluation::earlier`](super::rules::Evaluation::earlier))
//!   go to the hub's list of alerts once, so the dashboard lists them
//!   again after a restart; they are not published on MQTT again. (The
//!   hub also starts with the latest alerts of the site file's alert log,
//!   ended ones included, and lists an alert equal to one of those once.) Schedules are not
//!   stored: the aggregator subscribes to `+/+/schedule` again at every
//!   connection, so the broker replays every board's retained schedule.
//! - **When.** After every batch fed (only the boards it changed are
//!   evaluated again; the summary counts the others as last evaluated), and
//!   every second for all boards (missed slots, stale escalations and
//!   silence come with time alone); nothing for [`SETTLE`] after each
//!   ConnAck, while the broker replays the retained schedules and flags. A retained status
//!   is published only when its bytes changed, and all of them again after
//!   every (re)connection (the broker may have lost them).
//! - **Coaching overdue** in the site summary is the coaching thread's
//!   latest count, shared through an atomic ([`OverdueCount`]).
//! - **Expected attendance** of a running huddle is the number of members
//!   and team leaders of the board in the site roster (read again when the
//!   file's modification time changes); a closed huddle has its own in the
//!   kiosk's summary.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rumqttc::AsyncClient;

use super::db::StatusDb;
use super::rules::{Rules, Site, StoredEvent};
use crate::aggregator::config::AggregatorConfig;
use crate::aggregator::discovery;
use crate::aggregator::live::Hub;
use crate::aggregator::outlet::{json, now_ms, Outlet};
use crate::aggregator::roster;
use crate::aggregator::store::StoreError;
use crate::aggregator::validate::Incoming;
use crate::domain::Role;
use crate::wire::payload::{BoardAlert, ScheduleMessage};
use crate::wire::topic::{BoardTopics, SiteTopics};

/// The time rules are evaluated at least this often.
pub const TICK: Duration = Duration::from_secs(1);
/// After each ConnAck nothing is published for this long, so that the
/// broker's replay of every board's retained schedule and flag is in
/// first (otherwise a missed board would show `not_started` for a moment
/// after a restart, its schedule not yet known).
pub const SETTLE: Duration = Duration::from_secs(1);
/// The roster file's modification time is checked this often.
const ROSTER_POLL: Duration = Duration::from_secs(10);
/// Why the live status cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The thread could not be started.
    #[error("cannot start the live status thread: {0}")]
    Thread(std::io::Error),
}

/// The coaching report's count of overdue people, shared by the coaching
/// thread (writer) and the status thread (reader).
#[derive(Debug, Clone, Default)]
pub struct OverdueCount(Arc<AtomicU32>);

impl OverdueCount {
    /// Sets the count (the coaching thread, after each report).
    pub fn set(&self, n: u32) {
        self.0.store(n, Ordering::Relaxed);
    }

    /// The latest count.
    pub fn get(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One thing the status thread learns.
#[derive(Debug)]
pub enum Feed {
    /// A committed event (any kind: every event is a sign of life).
    Event {
        /// The topic's area.
        area: String,
        /// The event as stored.
        event: Incoming,
    },
    /// A board's committed `online` flag.
    Online {
        /// The topic's area.
        area: String,
        /// The board.
        board: String,
        /// The flag.
        online: bool,
        /// Published now by the board (not a retained copy replayed).
        live: bool,
    },
    /// A board's schedule.
    Schedule {
        /// The topic's area.
        area: String,
        /// The message.
        message: ScheduleMessage,
        /// Published now by the board (not a retained copy replayed).
        live: bool,
    },
    /// A board's ack and newest event after a commit.
    Stored {
        /// The area.
        area: String,
        /// The board.
        board: String,
        /// Its ack.
        last_seq: u64,
        /// Its newest event's time.
        last_event_at: Option<DateTime<Utc>>,
        /// When its database file was last replaced (a new incarnation).
        replaced_at: Option<DateTime<Utc>>,
    },
    /// The aggregator's own link to the broker: `true` at every ConnAck.
    Link(bool),
}

/// Hands feeds to the status thread; cheap, never blocking. When every
/// clone is dropped the thread ends.
#[derive(Clone)]
pub struct Feeder(mpsc::Sender<Vec<Feed>>);

impl Feeder {
    /// Sends a batch (nothing when empty).
    pub fn send(&self, feeds: Vec<Feed>) {
        if !feeds.is_empty() {
            let _ = self.0.send(feeds);
        }
    }
}

/// Members and team leaders per board in the roster file, read again when
/// its modification time changes.
struct Expected {
    file: Option<PathBuf>,
    mtime: Option<DateTime<Utc>>,
    checked: Option<Instant>,
}

impl Expected {
    fn refresh(&mut self, site: &mut Site, now: Instant) {
        let Some(file) = &self.file else {
            return;
        };
        if self
            .checked
            .is_some_and(|t| now.duration_since(t) < ROSTER_POLL)
        {
            return;
        }
        self.checked = Some(now);
        let mtime = roster::modified(file).ok();
        if mtime.is_some() && mtime == self.mtime {
            return;
        }
        self.mtime = mtime;
        match roster::load(file) {
            Ok(rosters) => {
                for r in rosters {
                    let n = r
                        .message
                        .people
                        .iter()
                        .filter(|p| matches!(p.role, Role::Member | Role::TeamLeader))
                        .count();
                    site.expected(&r.message.board, n as u32);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "live status: the roster cannot be used; expected attendance stays as it was")
            }
        }
    }
}

/// The running thread's state.
struct Loop {
    site_id: String,
    site: Site,
    out: Outlet,
    overdue: OverdueCount,
    expected: Expected,
    /// Retained topic → the bytes last published.
    published: HashMap<String, Vec<u8>>,
    link_up: bool,
    /// Evaluations wait until then (see [`SETTLE`]).
    settle: Option<Instant>,
    /// Home Assistant's discovery prefix, when discovery is on.
    discovery: Option<String>,
    /// Boards whose discovery messages went out since the last ConnAck.
    discovered: std::collections::HashSet<String>,
}

impl Loop {
    fn feed(&mut self, feeds: Vec<Feed>) {
        let now = now_ms();
        for f in feeds {
            match f {
                Feed::Event { area, event } => {
                    let e = StoredEvent {
                        board: &event.board,
                        seq: event.seq,
                        at: event.at,
                        kind: &event.kind,
                        data: &event.data,
                    };
                    self.site.event(&area, e, true, now);
                }
                Feed::Online {
                    area,
                    board,
                    online,
                    live,
                } => self.site.online(&area, &board, online, live, now),
                Feed::Schedule {
                    area,
                    message,
                    live,
                } => match self.site.schedule(&area, &message, live, now) {
                    Ok(()) => {
                        // The dashboard shows it too (the kiosk published it).
                        let topic = BoardTopics::new(&self.site_id, &area, &message.board);
                        self.out.show(&topic.schedule(), true, &json(&message));
                    }
                    Err(e) => {
                        tracing::warn!(board = %message.board, error = %e, "a board's schedule cannot be used; its previous one stays")
                    }
                },
                Feed::Stored {
                    area,
                    board,
                    last_seq,
                    last_event_at,
                    replaced_at,
                } => {
                    self.site
                        .stored(&area, &board, last_seq, last_event_at, now);
                    if let Some(at) = replaced_at {
                        self.site.replaced(&board, at);
                    }
                }
                Feed::Link(up) => {
                    self.site.link(up, now);
                    if up {
                        // Everything retained again: the broker may have lost it.
                        self.published.clear();
                        self.discovered.clear();
                        self.settle = Some(Instant::now() + SETTLE);
                    }
                    self.link_up = up;
                }
            }
        }
    }

    fn publish(&self, topic: String, retain: bool, payload: Vec<u8>) {
        if !self.link_up && retain {
            // Everything retained goes again at the next ConnAck; an alert
            // waits in the client's queue for it.
            self.out.show(&topic, retain, &payload);
            return;
        }
        self.out.publish(topic, retain, payload, "status");
    }

    fn retained(&mut self, topic: String, payload: Vec<u8>) {
        if self.published.get(&topic) == Some(&payload) {
            return;
        }
        self.published.insert(topic.clone(), payload.clone());
        self.publish(topic, true, payload);
    }

    /// Evaluates every board (`full`, the tick) or only those changed.
    fn evaluate(&mut self, full: bool) {
        let full = match self.settle {
            Some(t) if Instant::now() < t => return,
            Some(_) => {
                self.settle = None;
                true
            }
            None => full,
        };
        self.expected.refresh(&mut self.site, Instant::now());
        self.site.coaching_overdue(self.overdue.get());
        let e = if full {
            self.site.evaluate(now_ms())
        } else {
            self.site.evaluate_changed(now_ms())
        };
        let topics = SiteTopics::new(&self.site_id);
        // A board moved to another area (its broker account was moved:
        // the ACL pins each board to one): its old status goes, from the
        // broker and from the dashboard.
        for (board, old) in &e.moved {
            tracing::info!(board = %board, from = %old, "a board moved to another area; its old status is cleared");
            let topic = BoardTopics::new(&self.site_id, old, board).status();
            self.published.remove(&topic);
            self.publish(topic, true, Vec::new());
        }
        for b in &e.boards {
            let topic = BoardTopics::new(&self.site_id, &b.area, &b.board).status();
            self.retained(topic, json(b));
            let due = self.link_up && !self.discovered.contains(&b.board);
            if let Some(prefix) = self.discovery.as_deref().filter(|_| due) {
                let messages = discovery::board(prefix, &self.site_id, &b.area, &b.board);
                for d in messages {
                    self.retained(d.topic, json(&d.payload));
                }
                self.discovered.insert(b.board.clone());
            }
        }
        self.retained(topics.status(), json(&e.site));
        for a in &e.alerts {
            tracing::info!(kind = ?a.kind, board = %a.board, at = %a.at, "{}", a.message);
            self.publish(topics.alert(&kind_of(a)), false, json(a));
        }
        // Alerted by an earlier run: listed on the dashboard again, not
        // published again.
        for a in &e.earlier {
            self.out.show(&topics.alert(&kind_of(a)), false, &json(a));
        }
    }
}

/// An alert's kind as its topic's last level.
fn kind_of(a: &BoardAlert) -> String {
    serde_json::to_value(a.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Starts the status thread: rebuilds the state from the database (which
/// must be migrated: [`crate::aggregator::store::Store::open`] first), then runs until
/// every [`Feeder`] is dropped. Publications go through `client` on
/// `runtime` and to `hub`.
pub fn start(
    config: &AggregatorConfig,
    client: AsyncClient,
    hub: Arc<Hub>,
    runtime: tokio::runtime::Handle,
    overdue: OverdueCount,
) -> Result<(Feeder, std::thread::JoinHandle<()>), StatusError> {
    let rules = Rules {
        escalation_stale: chrono::Duration::seconds(config.status.escalation_stale_s as i64),
        offline_after: chrono::Duration::seconds(config.status.offline_after_s as i64),
    };
    let tz = config.site.timezone.parse().unwrap_or(chrono_tz::UTC);
    let started = now_ms();
    let mut site = Site::new(&config.site.id, tz, rules, started);
    let t0 = Instant::now();
    let events = StatusDb::open(&config.database_path())?.load(&mut site, started)?;
    tracing::info!(
        events,
        elapsed_ms = t0.elapsed().as_millis() as u64,
        "live status rebuilt from the database"
    );
    crate::aggregator::outlet::release_freed_memory();
    let mut state = Loop {
        site_id: config.site.id.clone(),
        site,
        out: Outlet::new(client, runtime, hub),
        overdue,
        expected: Expected {
            file: config.roster.file.clone(),
            mtime: None,
            checked: None,
        },
        published: HashMap::new(),
        // Until the first ConnAck the hub still shows the state.
        link_up: false,
        settle: None,
        discovery: config
            .home_assistant
            .discovery
            .then(|| config.home_assistant.prefix.clone()),
        discovered: std::collections::HashSet::new(),
    };
    let (tx, rx) = mpsc::channel::<Vec<Feed>>();
    let thread = std::thread::Builder::new()
        .name("aggregator-status".into())
        .spawn(move || {
            let mut next = Instant::now();
            loop {
                match rx.recv_timeout(next.saturating_duration_since(Instant::now())) {
                    Ok(feeds) => {
                        state.feed(feeds);
                        while let Ok(more) = rx.try_recv() {
                            state.feed(more);
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
                let full = Instant::now() >= next;
                if full {
                    next = Instant::now() + TICK;
                }
                // Design: a bug in the rules must not end the live status
                // for good (ingest does not depend on it); it is logged and
                // the next feed or tick tries again.
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| state.evaluate(full)))
                    .is_err()
                {
                    tracing::error!("the live status evaluation failed (a bug: please report it with the log); trying again");
                }
            }
        })
        .map_err(StatusError::Thread)?;
    Ok((Feeder(tx), thread))
}
