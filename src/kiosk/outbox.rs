//! The kiosk's outbox publisher: every event in the outbox reaches the
//! site aggregator over MQTT, nothing lost.
//!
//! # The rule
//!
//! An event counts as delivered only when the aggregator's retained
//! `.../ack` ([`crate::wire::payload::Ack`]: the highest `seq` it has stored
//! durably with no gap below it) covers it. A broker's PUBACK proves
//! nothing (Mosquitto acknowledges before it writes). So the publisher
//!
//! - publishes outbox rows in `seq` order, QoS 1, on
//!   [`BoardTopics::event`] with the stored envelope as payload, at most
//!   `delivery.window` events beyond the ack;
//! - on each ConnAck, and whenever the ack has not moved for
//!   `delivery.ack_timeout_s` while events are outstanding, sends again
//!   from ack + 1 (the aggregator is idempotent on `(board, seq)`); each
//!   further time the ack still has not moved, it waits twice as long, up
//!   to [`MAX_STALL_WAIT`], so that boards do not fill the broker's queue
//!   for an aggregator that is away;
//! - on an ack, takes the entry of the file's incarnation
//!   ([`crate::kiosk::store`]): when its chain digest shows the aggregator holds
//!   exactly this file's events up to it, marks the rows up to it
//!   delivered and remembers the ack in the counter row `acked` (one short
//!   transaction), so that a restarted kiosk resumes from it. When it does
//!   not (an older copy of the file restored, or a second board with this
//!   id and a copy of the file), the store starts a new incarnation from
//!   the remembered ack + 1 and the publisher sends every undelivered
//!   event again in it: nothing this board wrote is lost, whatever
//!   happened to its file;
//! - prunes events delivered more than `delivery.retention_days` ago, at
//!   start and every hour.
//!
//! The connection is a persistent session (clean session off) with the
//! fixed client id `huddle-kiosk-{site}-{board}`, TLS and credentials from
//! [`crate::mqtt::options`], a retained last will `false` on `.../online`
//! and a retained `true` after each ConnAck, after which it subscribes
//! (QoS 1) to the board's `ack` and `roster`. After each ConnAck it also
//! publishes its schedule retained on `.../schedule`
//! ([`crate::wire::payload::ScheduleMessage`], from `[huddle]` and
//! `board.timezone`), so that the aggregator judges missed huddles from
//! the board's own schedule and needs no second copy. While connected it
//! republishes the retained `true` every [`HEARTBEAT`]: the aggregator
//! counts a board silent for `status.offline_after_s` as offline even when
//! no last will reached it (a broker restarted without persistence, a
//! broken link on the aggregator's side). Connection errors are retried
//! with [`Backoff`] (capped by `mqtt.backoff_max_s`) and logged once per
//! change of cause ([`crate::mqtt::FailureLog`]), with the config key and
//! file to fix ([`crate::mqtt::diagnose`]); a refused password or an
//! untrusted broker certificate also shows in the link state on screen
//! ("broker refused the password"), while the board works on offline.
//!
//! # Using it
//!
//! ```no_run
//! # async fn demo(config: &huddle_board::kiosk::config::KioskConfig) -> Result<(), Box<dyn std::error::Error>> {
//! use huddle_board::kiosk::outbox::Outbox;
//! let rt = tokio::runtime::Handle::current();
//! let outbox = Outbox::start(config, &rt, Box::new(|roster| {
//!     // hand the roster to the board's core (Intent::ApplyRoster)
//!     let _ = roster;
//! }))?;
//! let wake = outbox.notifier(); // give it to Store::set_commit_hook
//! wake.notify();                // after each commit with events
//! let mut status = outbox.status();
//! status.changed().await?;      // LinkStatus { connected, acked, last_seq, .. }
//! outbox.shutdown().await;      // retained `online` = false, clean disconnect
//! # Ok(()) }
//! ```
//!
//! - [`Outbox::start`] opens its own SQLite connection to the board's file
//!   (WAL allows a second one; every call is a short statement on a
//!   blocking thread, never held across an `.await`), and spawns two tasks
//!   on the given runtime: the link (polls rumqttc's event loop without
//!   pause, reconnects with backoff) and the driver (the delivery state
//!   machine, [`Window`]). Many instances can share one runtime (the
//!   simulator runs N boards in one process); nothing needs a UI.
//! - [`Outbox::notify`] / [`Notifier::notify`]: new events were committed.
//!   Cheap and non-blocking, for the core's commit hook.
//! - [`Outbox::status`]: a watch of [`LinkStatus`]; `queued()` is
//!   `last_seq - acked`.
//! - [`Outbox::shutdown`]: publishes `online = false`, disconnects
//!   cleanly and waits (bounded) for the tasks. Dropping an [`Outbox`]
//!   instead aborts its tasks without a DISCONNECT, like a crash: the
//!   broker then publishes the last will.
//!
//! # Troubleshooting
//!
//! - "refused user `…` and its password": `mqtt.username` /
//!   `mqtt.password` do not match the broker's password file (Mosquitto
//!   answers a wrong password with "not authorised").
//! - "TLS certificate … is not trusted": `mqtt.ca_file` must hold the CA
//!   that signed the broker's certificate; "not for the host": the URL's
//!   host must be a name in that certificate.
//! - Events stay "sending": the broker is reachable but no aggregator
//!   acknowledges; the kiosk keeps them and re-sends every
//!   `delivery.ack_timeout_s`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use rumqttc::{AsyncClient, ConnectionError, EventLoop, LastWill, QoS};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::MqttConfig;
use crate::kiosk::config::KioskConfig;
use crate::kiosk::store::{Store, StoreError};
use crate::mqtt::{Backoff, Diagnosis, FailureLog, Fault, MqttError};
use crate::text::{Text, TextKey};
use crate::wire::payload::{Ack, RosterMessage, ScheduleMessage};
use crate::wire::topic::BoardTopics;

/// Errors that stop the publisher from starting (a broker that is down is
/// not one: it is retried).
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The MQTT options cannot be built (a TLS file).
    #[error(transparent)]
    Mqtt(#[from] MqttError),
    /// The board's database cannot be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The link as the screen shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LinkStatus {
    /// A ConnAck was received and the connection has not failed since.
    pub connected: bool,
    /// The aggregator's ack as remembered (every seq up to it is delivered).
    pub acked: u64,
    /// The board's last seq as the publisher knows it.
    pub last_seq: u64,
    /// Why the last connection attempt failed; `None` once connected, and
    /// before the first attempt has an outcome ("connecting…").
    pub error: Option<String>,
    /// The kind of that failure (a refused password and an untrusted
    /// certificate have their own words on screen).
    pub fault: Option<Fault>,
}

impl LinkStatus {
    /// Events not yet acknowledged by the aggregator.
    pub fn queued(&self) -> u64 {
        self.last_seq.saturating_sub(self.acked)
    }

    /// The header's message (a key and the count; the view words it:
    /// "online", "online · 3 sending", "offline · 12 queued",
    /// "connecting…") and whether all is well, with `last_seq` from the
    /// board (the core knows its newest commit before the publisher).
    pub fn describe(&self, last_seq: u64) -> (Text, bool) {
        let queued = last_seq.max(self.last_seq).saturating_sub(self.acked);
        let n = queued.to_string();
        let (alone, with_queue) = match self.fault {
            Some(Fault::Credentials) => (
                TextKey::LinkPasswordRefused,
                TextKey::LinkPasswordRefusedQueued,
            ),
            Some(Fault::Untrusted) => (
                TextKey::LinkCertificateUntrusted,
                TextKey::LinkCertificateUntrustedQueued,
            ),
            _ => (TextKey::LinkOffline, TextKey::LinkOfflineQueued),
        };
        match (self.connected, &self.error, queued) {
            (true, _, 0) => (Text::new(TextKey::LinkOnline), true),
            (true, _, _) => (Text::with(TextKey::LinkSending, n), false),
            (false, None, 0) => (Text::new(TextKey::LinkConnecting), false),
            (false, None, _) => (Text::with(TextKey::LinkConnectingQueued, n), false),
            (false, Some(_), 0) => (Text::new(alone), false),
            (false, Some(_), _) => (Text::with(with_queue, n), false),
        }
    }
}

/// Wakes the publisher after a commit; cheap to clone, never blocks.
#[derive(Debug, Clone)]
pub struct Notifier(Arc<Notify>);

impl Notifier {
    /// New events were committed.
    pub fn notify(&self) {
        self.0.notify_one();
    }
}

/// The delivery state machine: no I/O, no clock (`now` is a parameter).
/// The driver task feeds it link events and acks and asks it what to send.
#[derive(Debug, Clone)]
pub struct Window {
    /// Remembered ack: every seq up to it is delivered.
    acked: u64,
    /// Newest seq in the outbox as known.
    last_seq: u64,
    /// Next seq to publish.
    next: u64,
    /// Between a ConnAck and the next connection error.
    connected: bool,
    /// Most events beyond the ack at a time.
    size: u64,
    /// Re-send from ack + 1 after the ack has not moved this long.
    timeout: Duration,
    /// Re-sends since the ack last moved: each doubles the next wait.
    stalls: u32,
    /// When the ack last moved (or sending began with nothing outstanding).
    progress_at: Instant,
}

impl Window {
    /// From the remembered ack and the last seq.
    pub fn new(acked: u64, last_seq: u64, size: u32, timeout: Duration, now: Instant) -> Self {
        Window {
            acked,
            last_seq: last_seq.max(acked),
            next: acked + 1,
            connected: false,
            size: u64::from(size.max(1)),
            timeout,
            stalls: 0,
            progress_at: now,
        }
    }

    /// The remembered ack.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// The last seq known.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Whether a ConnAck was seen since the last connection error.
    pub fn connected(&self) -> bool {
        self.connected
    }

    /// A ConnAck: everything beyond the ack is sent again.
    pub fn connack(&mut self, now: Instant) {
        self.connected = true;
        self.restart(now);
    }

    /// Everything beyond the ack is sent again.
    pub fn restart(&mut self, now: Instant) {
        self.next = self.acked + 1;
        self.progress_at = now;
    }

    /// The store set the ack to `acked`, perhaps lower than before (the
    /// undelivered events moved to a new incarnation, or the site's file
    /// went back): everything beyond it is sent again.
    pub fn rewind(&mut self, acked: u64, last_seq: u64, now: Instant) {
        self.acked = acked;
        self.stalls = 0;
        self.committed(last_seq);
        self.restart(now);
    }

    /// The connection failed.
    pub fn down(&mut self) {
        self.connected = false;
    }

    /// New events were committed up to `last_seq`.
    pub fn committed(&mut self, last_seq: u64) {
        self.last_seq = self.last_seq.max(last_seq);
    }

    /// The store applied an ack (checked and never lowered).
    /// Returns whether it moved.
    pub fn acked_to(&mut self, acked: u64, last_seq: u64, now: Instant) -> bool {
        self.committed(last_seq);
        if acked <= self.acked {
            return false;
        }
        self.acked = acked;
        self.next = self.next.max(acked + 1);
        self.progress_at = now;
        self.stalls = 0;
        true
    }

    /// Events sent and not yet acknowledged.
    fn outstanding(&self) -> bool {
        self.next > self.acked + 1
    }

    /// The next batch to publish (`from..=through`, at most `max` events),
    /// or `None` when there is nothing to send or the window is full.
    pub fn batch(&self, max: u64) -> Option<(u64, u64)> {
        if !self.connected {
            return None;
        }
        let through = self
            .last_seq
            .min(self.acked + self.size)
            .min(self.next + max.max(1) - 1);
        (self.next <= through).then_some((self.next, through))
    }

    /// The batch `..=through` went to the client.
    pub fn sent(&mut self, through: u64, now: Instant) {
        if !self.outstanding() {
            self.progress_at = now;
        }
        self.next = self.next.max(through + 1);
    }

    /// When the ack-stall timeout fires, if events are outstanding: the
    /// timeout, doubled for every re-send since the ack last moved, at
    /// most [`MAX_STALL_WAIT`] (or the timeout, when that is longer).
    pub fn deadline(&self) -> Option<Instant> {
        let wait = self
            .timeout
            .saturating_mul(1 << self.stalls.min(16))
            .min(MAX_STALL_WAIT.max(self.timeout));
        (self.connected && self.outstanding()).then(|| self.progress_at + wait)
    }

    /// At the deadline: re-send from ack + 1. Returns the seq it restarts
    /// from, if it did.
    pub fn stall(&mut self, now: Instant) -> Option<u64> {
        let due = self.deadline().is_some_and(|d| now >= d);
        if due {
            self.next = self.acked + 1;
            self.progress_at = now;
            self.stalls = self.stalls.saturating_add(1);
            return Some(self.next);
        }
        None
    }
}

/// The longest wait between re-sends while the ack does not move.
pub const MAX_STALL_WAIT: Duration = Duration::from_secs(300);

/// What the link task tells the driver.
#[derive(Debug)]
enum LinkEvent {
    /// A ConnAck.
    Up,
    /// A connection error, sorted and described.
    Down(Diagnosis),
    /// The retained (or fresh) ack.
    Ack(Ack),
}

/// The running publisher of one board. See the module doc.
pub struct Outbox {
    wake: Arc<Notify>,
    status: watch::Receiver<LinkStatus>,
    client: AsyncClient,
    online_topic: String,
    stop: watch::Sender<bool>,
    driver: Option<JoinHandle<()>>,
    link: Option<JoinHandle<()>>,
}

/// While connected, the retained `online` = `true` is published again this
/// often: the aggregator's live status hears the board even when nothing
/// happens at it (its `status.offline_after_s` must be well above this).
pub const HEARTBEAT: Duration = Duration::from_secs(30);

/// The board's schedule as published retained on `.../schedule` at every
/// connection.
pub fn schedule_message(config: &KioskConfig, now: chrono::DateTime<Utc>) -> ScheduleMessage {
    let mut times: Vec<String> = config
        .schedule_times()
        .iter()
        .map(|t| t.format("%H:%M").to_string())
        .collect();
    times.sort();
    times.dedup();
    ScheduleMessage {
        board: config.board.id.clone(),
        timezone: config.board.timezone.clone(),
        times,
        grace_s: config.huddle.grace_minutes.saturating_mul(60),
        target_s: config.huddle.target_minutes.saturating_mul(60),
        issued_at: now,
    }
}

/// Most events read from SQLite and handed to the client in one go.
const BATCH: u64 = 100;
/// Requests that may wait in rumqttc's channel (its own inflight limit
/// applies on top).
const CHANNEL: usize = 64;

impl Outbox {
    /// Opens a second connection to the board's database, builds the MQTT
    /// options and starts the publisher's tasks on `rt`. `on_roster` is
    /// called (on a runtime thread; keep it short, e.g. send an intent)
    /// with each roster message published for this board.
    pub fn start(
        config: &KioskConfig,
        rt: &tokio::runtime::Handle,
        on_roster: Box<dyn Fn(RosterMessage) + Send + Sync>,
    ) -> Result<Outbox, OutboxError> {
        let store = Store::open(&config.database_path(), &config.board.id)?;
        let acked = store.acked()?;
        let last_seq = store.last_seq()?;
        let board = &config.board;
        let topics = BoardTopics::new(&board.site, &board.area, &board.id);
        let client_id = format!("huddle-kiosk-{}-{}", board.site, board.id);
        let mut options = crate::mqtt::options(&config.mqtt, &client_id, &config.source)?;
        options.set_last_will(LastWill::new(
            topics.online(),
            "false",
            QoS::AtLeastOnce,
            true,
        ));
        let _enter = rt.enter();
        let (client, mut eventloop) = AsyncClient::new(options, CHANNEL);
        crate::mqtt::no_delay(&mut eventloop);
        let (link_tx, link_rx) = mpsc::unbounded_channel();
        let initial = LinkStatus {
            connected: false,
            acked,
            last_seq,
            error: None,
            fault: None,
        };
        let (status_tx, status) = watch::channel(initial);
        let (stop, stop_rx) = watch::channel(false);
        let wake = Arc::new(Notify::new());
        let link = Link {
            topics: topics.clone(),
            board: board.id.clone(),
            mqtt: config.mqtt.clone(),
            source: config.source.display().to_string(),
            backoff: Backoff::new(Duration::from_secs(config.mqtt.backoff_max_s)),
            events: link_tx,
            on_roster,
        };
        let driver = Driver {
            store: Arc::new(Mutex::new(store)),
            client: client.clone(),
            topics: topics.clone(),
            window: Window::new(
                acked,
                last_seq,
                config.delivery.window,
                Duration::from_secs(config.delivery.ack_timeout_s),
                Instant::now(),
            ),
            retention: chrono::Duration::days(config.delivery.retention_days.into()),
            status: status_tx,
            error: None,
            wake: wake.clone(),
            schedule: schedule_message(config, Utc::now()),
        };
        let link = rt.spawn(link.run(eventloop));
        let driver = rt.spawn(driver.run(link_rx, stop_rx));
        Ok(Outbox {
            wake,
            status,
            client,
            online_topic: topics.online(),
            stop,
            driver: Some(driver),
            link: Some(link),
        })
    }

    /// New events were committed: publish them (returns at once).
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    /// A cloneable, `Send` handle that does [`Outbox::notify`], for the
    /// store's commit hook.
    pub fn notifier(&self) -> Notifier {
        Notifier(self.wake.clone())
    }

    /// The link state; changes whenever it does.
    pub fn status(&self) -> watch::Receiver<LinkStatus> {
        self.status.clone()
    }

    /// Stops: retained `online` = `false`, a clean DISCONNECT (so no last
    /// will), then waits up to two seconds for the tasks. Undelivered
    /// events stay in the outbox for the next start.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(driver) = self.driver.take() {
            let _ = tokio::time::timeout(Duration::from_secs(1), driver).await;
        }
        if !self.status.borrow().connected {
            // Nobody to say goodbye to (the last will already said it).
            if let Some(link) = self.link.take() {
                link.abort();
            }
            return;
        }
        let online = self.online_topic.clone();
        let bye = async {
            let _ = self
                .client
                .publish(online, QoS::AtLeastOnce, true, "false")
                .await;
            let _ = self.client.disconnect().await;
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), bye).await;
        if let Some(mut link) = self.link.take() {
            if tokio::time::timeout(Duration::from_secs(2), &mut link)
                .await
                .is_err()
            {
                link.abort();
            }
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        // Without shutdown: stop as a crash would (the broker publishes the
        // last will when the socket closes).
        for task in [self.driver.take(), self.link.take()].into_iter().flatten() {
            task.abort();
        }
    }
}

/// The link task: polls rumqttc's event loop continuously, reconnects
/// with backoff, routes acks to the driver and rosters to the callback.
struct Link {
    topics: BoardTopics,
    board: String,
    mqtt: MqttConfig,
    source: String,
    backoff: Backoff,
    events: mpsc::UnboundedSender<LinkEvent>,
    on_roster: Box<dyn Fn(RosterMessage) + Send + Sync>,
}

impl Link {
    async fn run(mut self, mut eventloop: EventLoop) {
        use rumqttc::{Event, Outgoing, Packet};
        let mut failures = FailureLog::new();
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    self.backoff.reset();
                    let line = failures.connected(&self.mqtt.url, std::time::Instant::now());
                    tracing::info!("{line}");
                    let _ = self.events.send(LinkEvent::Up);
                }
                Ok(Event::Incoming(Packet::Publish(p))) => self.incoming(&p.topic, &p.payload),
                Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
                Ok(_) => {}
                Err(ConnectionError::RequestsDone) => return,
                Err(e) => {
                    let d = crate::mqtt::diagnose(&e, &self.mqtt, &self.source);
                    if let Some(line) = failures.failed(&d, std::time::Instant::now()) {
                        if d.fault.is_config() {
                            tracing::error!("{line}");
                        } else {
                            tracing::warn!("{line}");
                        }
                    }
                    let _ = self.events.send(LinkEvent::Down(d));
                    tokio::time::sleep(self.backoff.next()).await;
                }
            }
        }
    }

    fn incoming(&self, topic: &str, payload: &[u8]) {
        if payload.is_empty() {
            return; // a cleared retained message
        }
        if topic == self.topics.ack() {
            match serde_json::from_slice::<Ack>(payload) {
                Ok(ack) if ack.board == self.board => {
                    let _ = self.events.send(LinkEvent::Ack(ack));
                }
                Ok(ack) => {
                    tracing::warn!(topic, board = %ack.board, "ack names another board; ignored")
                }
                Err(e) => tracing::warn!(topic, error = %e, "ack is not valid JSON; ignored"),
            }
        } else if topic == self.topics.roster() {
            match serde_json::from_slice::<RosterMessage>(payload) {
                Ok(roster) => (self.on_roster)(roster),
                Err(e) => tracing::warn!(topic, error = %e, "roster is not valid JSON; ignored"),
            }
        }
    }
}

/// The driver task: owns the [`Window`], the second SQLite connection and
/// the status; publishes.
struct Driver {
    store: Arc<Mutex<Store>>,
    client: AsyncClient,
    topics: BoardTopics,
    window: Window,
    retention: chrono::Duration,
    status: watch::Sender<LinkStatus>,
    error: Option<Diagnosis>,
    wake: Arc<Notify>,
    /// Published retained after each ConnAck (`issued_at` set then).
    schedule: ScheduleMessage,
}

impl Driver {
    /// Runs a short SQLite call on a blocking thread.
    async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Option<T> {
        let store = self.store.clone();
        let r = tokio::task::spawn_blocking(move || {
            // A panic in another call poisons the lock; the store itself
            // is still consistent (SQLite transactions), so go on.
            let mut s = store.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut s)
        })
        .await;
        match r {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "outbox: database call failed");
                None
            }
            Err(e) => {
                tracing::error!(error = %e, "outbox: database task failed");
                None
            }
        }
    }

    async fn run(
        mut self,
        mut link: mpsc::UnboundedReceiver<LinkEvent>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut prune = tokio::time::interval(Duration::from_secs(3600));
        prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let wake = self.wake.clone();
        loop {
            self.send_ready().await;
            self.publish_status();
            let deadline = self.window.deadline();
            tokio::select! {
                _ = stop.changed() => return,
                _ = wake.notified() => {
                    if let Some(last) = self.db(|s| s.last_seq()).await {
                        self.window.committed(last);
                    }
                }
                event = link.recv() => match event {
                    None => return,
                    Some(LinkEvent::Up) => self.up().await,
                    Some(LinkEvent::Down(d)) => {
                        self.window.down();
                        self.error = Some(d);
                    }
                    Some(LinkEvent::Ack(ack)) => self.ack(ack).await,
                },
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    let acked = self.window.acked();
                    if let Some(from) = self.window.stall(Instant::now()) {
                        tracing::info!(acked, from, "no ack progress: sending again from ack + 1");
                    }
                }
                _ = prune.tick() => self.prune().await,
                _ = heartbeat.tick(), if self.window.connected() => {
                    let _ = self
                        .client
                        .publish(self.topics.online(), QoS::AtLeastOnce, true, "true")
                        .await;
                }
            }
        }
    }

    async fn up(&mut self) {
        self.error = None;
        for topic in [self.topics.ack(), self.topics.roster()] {
            if let Err(e) = self.client.subscribe(topic, QoS::AtLeastOnce).await {
                tracing::error!(error = %e, "outbox: subscribe not queued");
            }
        }
        let _ = self
            .client
            .publish(self.topics.online(), QoS::AtLeastOnce, true, "true")
            .await;
        self.schedule.issued_at = Utc::now();
        // Design: a plain struct of strings and numbers serialises.
        let schedule = serde_json::to_vec(&self.schedule).expect("schedule serialises");
        let _ = self
            .client
            .publish(self.topics.schedule(), QoS::AtLeastOnce, true, schedule)
            .await;
        // What was committed while the link was down.
        if let Some(last) = self.db(|s| s.last_seq()).await {
            self.window.committed(last);
        }
        self.window.connack(Instant::now());
    }

    async fn ack(&mut self, ack: Ack) {
        let Some(done) = self.db(move |s| s.mark_delivered(&ack, Utc::now())).await else {
            return;
        };
        if let Some(fork) = &done.fork {
            tracing::warn!(
                old = %fork.old,
                new = %fork.new,
                base = fork.base,
                why = %fork.why,
                "another database file wrote under this board's incarnation (an older copy restored, or a second board with this id): \
                 a new incarnation starts and every undelivered event is sent again in it"
            );
            self.window
                .rewind(done.acked, done.last_seq, Instant::now());
            return;
        }
        if let Some(from) = done.rewound {
            tracing::warn!(
                from,
                to = done.acked,
                "the aggregator's ack went back (its file restored from a backup): every event after it is sent again"
            );
            self.window
                .rewind(done.acked, done.last_seq, Instant::now());
            return;
        }
        self.window
            .acked_to(done.acked, done.last_seq, Instant::now());
    }

    async fn send_ready(&mut self) {
        while let Some((from, through)) = self.window.batch(BATCH) {
            let Some(rows) = self.db(move |s| s.outbox_rows(from, through)).await else {
                return;
            };
            if rows.first().map(|r| r.seq) != Some(from) || rows.len() as u64 != through - from + 1
            {
                tracing::error!(from, through, found = rows.len(), "outbox rows missing");
                if rows.is_empty() {
                    return;
                }
            }
            for row in rows {
                let topic = self.topics.event(&row.kind);
                if self
                    .client
                    .publish(topic, QoS::AtLeastOnce, false, row.body)
                    .await
                    .is_err()
                {
                    return; // the event loop is gone: shutting down
                }
            }
            self.window.sent(through, Instant::now());
            self.publish_status();
        }
    }

    async fn prune(&mut self) {
        let before = Utc::now() - self.retention;
        if let Some(n) = self.db(move |s| s.prune_delivered(before)).await {
            if n > 0 {
                tracing::info!(pruned = n, "delivered events past retention deleted");
            }
        }
    }

    fn publish_status(&self) {
        let now = LinkStatus {
            connected: self.window.connected(),
            acked: self.window.acked(),
            last_seq: self.window.last_seq(),
            error: self.error.as_ref().map(|d| d.message.clone()),
            fault: self.error.as_ref().map(|d| d.fault),
        };
        self.status.send_if_modified(|s| {
            let changed = *s != now;
            *s = now;
            changed
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(acked: u64, last: u64, size: u32) -> (Window, Instant) {
        let now = Instant::now();
        (
            Window::new(acked, last, size, Duration::from_secs(10), now),
            now,
        )
    }

    #[test]
    fn nothing_goes_out_before_a_connack() {
        let (mut w, now) = window(0, 5, 500);
        assert_eq!(w.batch(100), None);
        w.connack(now);
        assert_eq!(w.batch(100), Some((1, 5)));
    }

    #[test]
    fn the_window_caps_what_is_sent_beyond_the_ack() {
        let (mut w, now) = window(10, 100, 20);
        w.connack(now);
        assert_eq!(w.batch(100), Some((11, 30)));
        w.sent(30, now);
        assert_eq!(w.batch(100), None, "window full");
        assert!(w.acked_to(15, 100, now));
        assert_eq!(w.batch(100), Some((31, 35)));
        // Batches are bounded too.
        assert_eq!(w.batch(2), Some((31, 32)));
    }

    #[test]
    fn a_connack_sends_again_from_ack_plus_one() {
        let (mut w, now) = window(3, 9, 500);
        w.connack(now);
        w.sent(9, now);
        assert_eq!(w.batch(100), None);
        w.down();
        w.committed(12);
        assert_eq!(w.batch(100), None, "nothing while down");
        w.connack(now);
        assert_eq!(w.batch(100), Some((4, 12)));
    }

    #[test]
    fn a_stalled_ack_sends_again_after_the_timeout() {
        let (mut w, t0) = window(0, 5, 500);
        assert_eq!(w.deadline(), None);
        w.connack(t0);
        assert_eq!(w.deadline(), None, "nothing outstanding yet");
        let t1 = t0 + Duration::from_secs(100);
        w.sent(5, t1);
        // Idle time before sending does not count.
        assert_eq!(w.deadline(), Some(t1 + Duration::from_secs(10)));
        assert_eq!(w.stall(t1 + Duration::from_secs(9)), None);
        let t2 = t1 + Duration::from_secs(4);
        assert!(w.acked_to(2, 5, t2));
        assert_eq!(w.deadline(), Some(t2 + Duration::from_secs(10)));
        let t3 = t2 + Duration::from_secs(10);
        assert_eq!(w.stall(t3), Some(3));
        assert_eq!(w.batch(100), Some((3, 5)));
        w.sent(5, t3);
        assert!(w.acked_to(5, 5, t3));
        assert_eq!(w.deadline(), None);
    }

    #[test]
    fn re_sends_while_the_ack_does_not_move_wait_longer_each_time() {
        let (mut w, t0) = window(0, 5, 500);
        w.connack(t0);
        w.sent(5, t0);
        let secs = Duration::from_secs;
        let mut t = t0;
        let mut waits = Vec::new();
        for _ in 0..8 {
            let due = w.deadline().expect("events outstanding");
            assert_eq!(w.stall(due - secs(1)), None, "not before its time");
            waits.push((due - t).as_secs());
            assert_eq!(w.stall(due), Some(1));
            w.sent(5, due);
            t = due;
        }
        assert_eq!(waits, [10, 20, 40, 80, 160, 300, 300, 300]);
        // The ack moves: back to the timeout.
        assert!(w.acked_to(2, 5, t));
        assert_eq!(w.deadline(), Some(t + secs(10)));
        // A reconnect keeps the wait: the aggregator is still away.
        assert_eq!(w.stall(t + secs(10)), Some(3));
        w.connack(t + secs(10));
        w.sent(5, t + secs(10));
        assert_eq!(w.deadline(), Some(t + secs(30)));
    }

    #[test]
    fn an_old_ack_changes_nothing() {
        let (mut w, now) = window(7, 9, 500);
        w.connack(now);
        assert!(!w.acked_to(5, 9, now));
        assert_eq!(w.acked(), 7);
        assert_eq!(w.batch(100), Some((8, 9)));
    }

    #[test]
    fn the_schedule_message_comes_from_the_config() {
        let config = KioskConfig::from_toml(
            include_str!("../../config/kiosk.toml"),
            std::path::Path::new("kiosk.toml"),
        )
        .unwrap();
        let now = Utc::now();
        let m = schedule_message(&config, now);
        assert_eq!(m.board, config.board.id);
        assert_eq!(m.timezone, "Europe/Berlin");
        assert_eq!(m.times, ["06:45", "14:45"]);
        assert_eq!(m.grace_s, config.huddle.grace_minutes * 60);
        assert_eq!(m.target_s, config.huddle.target_minutes * 60);
        assert_eq!(m.issued_at, now);
    }

    #[test]
    fn the_link_text_says_what_the_screen_needs() {
        let mut s = LinkStatus::default();
        assert_eq!(s.describe(0), (Text::new(TextKey::LinkConnecting), false));
        s.error = Some("down".into());
        assert_eq!(
            s.describe(12),
            (Text::with(TextKey::LinkOfflineQueued, "12"), false)
        );
        s.error = None;
        s.connected = true;
        s.acked = 9;
        assert_eq!(
            s.describe(12),
            (Text::with(TextKey::LinkSending, "3"), false)
        );
        s.acked = 12;
        assert_eq!(s.describe(12), (Text::new(TextKey::LinkOnline), true));
        assert_eq!(s.queued(), 0);
        // A refused password and an untrusted broker say so.
        s.connected = false;
        s.error = Some("refused".into());
        s.fault = Some(Fault::Credentials);
        assert_eq!(
            s.describe(14),
            (Text::with(TextKey::LinkPasswordRefusedQueued, "2"), false)
        );
        s.fault = Some(Fault::Untrusted);
        assert_eq!(
            s.describe(12),
            (Text::new(TextKey::LinkCertificateUntrusted), false)
        );
    }
}
