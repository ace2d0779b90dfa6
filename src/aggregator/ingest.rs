//! The aggregator's running shell: the MQTT event loop, the writer thread
//! that owns the SQLite file, and everything published after a commit.
//!
//! ```text
//!  rumqttc EventLoop (task) --Publish--> writer thread (owns Store)
//!        ^                                 | validate, group commit,
//!        |                                 | decide what to publish
//!        +---- client.ack / publish <----- output task <--+
//!  roster task (polls the file's mtime) ---> client.publish
//! ```
//!
//! - **Persistent session, manual acks.** The client id is
//!   `huddle-aggregator-{site}` with clean session off, so the broker
//!   queues for the aggregator while it restarts; PUBACKs are sent by hand
//!   ([`rumqttc::MqttOptions::set_manual_acks`]) only after the message's
//!   transaction committed, and in arrival order (MQTT wants PUBACKs in
//!   order): every QoS 1 message, rejected or not, goes through the
//!   writer's one queue.
//! - **Group commit.** The writer blocks for the first message, then takes
//!   whatever else has arrived without waiting (up to `ingest.max_batch`),
//!   commits it in one transaction, acknowledges, publishes, and starts
//!   over. At plant load that is one message per fsync; under a burst the
//!   batches grow by themselves. A failed commit is retried (nothing is
//!   acknowledged until it succeeds).
//! - **After a commit** each touched board's retained ack is published when
//!   it moved, or when a duplicate at or below it arrived (a kiosk that
//!   re-sends needs to hear it again); the counters when they changed. The
//!   committed events, `online` flags and received schedules go to the
//!   live status thread ([`super::status::shell`]), which publishes the
//!   boards' and the site's status and the alerts. After every ConnAck
//!   everything retained is published again (the broker may have lost
//!   it); the event subscription is made again when the session was not
//!   kept, and the `online` and `schedule` ones always (so that the broker
//!   replays every board's retained flag and schedule).
//! - **Bad messages** are counted per reason in the same transaction and
//!   logged at most once a minute per (board, reason).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use chrono::Utc;
use rumqttc::{AsyncClient, Event as MqttEvent, Packet, Publish, QoS};

use super::coaching::shell::{self as coaching_shell, CoachingError};
use super::live::Hub;
use super::outlet::json;
use super::roster::{self, BoardRoster, RosterError};
use super::status::shell::{self as status_shell, Feed, Feeder, OverdueCount, StatusError};
use super::store::{BatchOutcome, Checkpointer, Input, Stats, Store, StoreError};
use super::validate::{bound_time, validate, Reason, Reject};
use crate::aggregator::config::AggregatorConfig;
use crate::mqtt::{Backoff, FailureLog, MqttError};
use crate::wire::payload::{Ack, ScheduleMessage};
use crate::wire::topic::{parse_board_topic, BoardTopics, SiteTopics};

/// How often the roster file's modification time is checked.
pub const ROSTER_POLL: Duration = Duration::from_secs(3);
/// How many recent alerts the live picture keeps for the dashboard.
pub const ALERTS_KEPT: usize = 200;
/// A commit that takes longer is logged at debug level.
pub const SLOW_COMMIT: Duration = Duration::from_millis(8);
/// A (board, reason) is logged at most once in this interval.
pub const REJECT_LOG_EVERY: Duration = Duration::from_secs(60);
/// The largest packet MQTT can carry. Incoming packets up to it are read
/// (and rejected as oversize by the validator): a packet above rumqttc's
/// limit would break the connection and come back forever with the
/// persistent session.
const MQTT_MAX_PACKET: usize = 268_435_460;

/// Why the aggregator cannot start.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The roster file.
    #[error(transparent)]
    Roster(#[from] RosterError),
    /// The MQTT options (TLS files).
    #[error(transparent)]
    Mqtt(#[from] MqttError),
    /// The writer thread could not be started.
    #[error("cannot start the writer thread: {0}")]
    Thread(std::io::Error),
    /// The coaching loop could not be started.
    #[error(transparent)]
    Coaching(#[from] CoachingError),
    /// The live status could not be started.
    #[error(transparent)]
    Status(#[from] StatusError),
}

/// The client id of a site's aggregator (fixed: the persistent session
/// belongs to it).
pub fn client_id(site: &str) -> String {
    format!("huddle-aggregator-{site}")
}

/// What reaches the writer, in arrival order.
enum Item {
    /// A message from the broker.
    Message(Publish),
    /// Connected again: publish every retained state.
    Republish,
}

/// One retained or plain publication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    /// The topic.
    pub topic: String,
    /// JSON bytes.
    pub payload: Vec<u8>,
    /// Retained (state) or not (an alert).
    pub retain: bool,
}

/// What the writer hands to the output task after a commit.
struct Output {
    /// PUBACKs to send, in arrival order.
    acks: Vec<Publish>,
    /// Retained publications (QoS 1).
    publications: Vec<Publication>,
}

/// Rate limit for rejection logs: once per (board, reason) per interval,
/// counting what it held back.
#[derive(Debug)]
pub struct LogLimiter {
    every: Duration,
    last: HashMap<(String, Reason), (Instant, u64)>,
}

impl LogLimiter {
    /// Logs at most once per `every` per key.
    pub fn new(every: Duration) -> Self {
        LogLimiter {
            every,
            last: HashMap::new(),
        }
    }

    /// `Some(held back since the last log)` when this one should be logged.
    pub fn allow(&mut self, board: &str, reason: Reason, now: Instant) -> Option<u64> {
        match self.last.get_mut(&(board.to_owned(), reason)) {
            Some((at, held)) if now.duration_since(*at) < self.every => {
                *held += 1;
                None
            }
            Some((at, held)) => {
                let n = *held;
                *at = now;
                *held = 0;
                Some(n)
            }
            None => {
                self.last.insert((board.to_owned(), reason), (now, 0));
                Some(0)
            }
        }
    }
}

/// The alert kind (topic level) of an integrity conflict: a second event
/// under a stored `(board, incarnation, seq)` with other content.
pub const ALERT_INTEGRITY: &str = "integrity";
/// The alert kind (topic level) of two boards claiming one board id.
pub const ALERT_BOARD_TWIN: &str = "board_twin";

/// `huddle/v1/{site}/alert/integrity` (not retained).
#[derive(serde::Serialize)]
struct IntegrityAlertMessage<'a> {
    kind: &'static str,
    board: &'a str,
    incarnation: &'a str,
    seq: u64,
    stored_id: &'a str,
    received_id: &'a str,
    /// For people (the dashboard shows it).
    message: String,
    at: chrono::DateTime<Utc>,
}

/// `huddle/v1/{site}/alert/board_twin` (not retained).
#[derive(serde::Serialize)]
struct TwinAlertMessage<'a> {
    kind: &'static str,
    /// For people (the dashboard shows it).
    message: String,
    #[serde(flatten)]
    alert: &'a super::store::TwinAlert,
}

/// How often, at most, the counters (stats) are published.
pub const STATUS_EVERY: Duration = Duration::from_secs(1);

/// What to publish after a commit, given what was last published. Pure
/// (`tick` is the caller's clock): updates `published` and returns the
/// publications. Acks go out at once; the counters at most every
/// [`STATUS_EVERY`], so that a burst does not flood the broker
/// ([`due_publications`] sends what waited). The boards' statuses are the
/// live status thread's ([`super::status::shell`]).
pub fn publications(
    site: &str,
    outcome: &BatchOutcome,
    published: &mut Published,
    now: chrono::DateTime<Utc>,
    tick: Instant,
) -> Vec<Publication> {
    let mut out = Vec::new();
    for (board, b) in &outcome.boards {
        let topics = BoardTopics::new(site, &b.area, board);
        if let Some(old) = &b.moved_from {
            // The board's ack under its old area goes (the ACL pins a
            // board to one area: it was moved on purpose).
            out.push(Publication {
                topic: BoardTopics::new(site, old, board).ack(),
                payload: Vec::new(),
                retain: true,
            });
        }
        if b.ack_due() {
            out.push(Publication {
                topic: topics.ack(),
                payload: json(&Ack {
                    at: now,
                    ..b.ack.clone()
                }),
                retain: true,
            });
        }
    }
    // Integrity conflicts are never only a log line: each is an alert on
    // MQTT and on the dashboard.
    let site_topics = SiteTopics::new(site);
    for a in &outcome.alerts {
        out.push(Publication {
            topic: site_topics.alert(ALERT_INTEGRITY),
            payload: json(&IntegrityAlertMessage {
                kind: ALERT_INTEGRITY,
                board: &a.board,
                incarnation: &a.incarnation,
                seq: a.seq,
                stored_id: &a.stored_id,
                received_id: &a.received_id,
                message: format!(
                    "a second event for seq {} of incarnation {} with other content; the first is kept",
                    a.seq,
                    if a.incarnation.is_empty() { "(legacy)" } else { &a.incarnation }
                ),
                at: now,
            }),
            retain: false,
        });
    }
    for t in &outcome.twins {
        out.push(Publication {
            topic: site_topics.alert(ALERT_BOARD_TWIN),
            payload: json(&TwinAlertMessage {
                kind: ALERT_BOARD_TWIN,
                message: format!(
                    "two boards send events as {}: database files {} (older) and {} (newer). \
                     Both are kept; give the spare or the copied card its own board id",
                    t.board, t.older, t.newer
                ),
                alert: t,
            }),
            retain: false,
        });
    }
    if published.stats.as_ref() != Some(&outcome.stats) {
        published.pending_stats = Some(outcome.stats.clone());
    }
    out.extend(due_publications(site, published, tick));
    out
}

/// The stats that waited and are now due.
pub fn due_publications(site: &str, published: &mut Published, tick: Instant) -> Vec<Publication> {
    let mut out = Vec::new();
    let stats_due = published
        .stats_at
        .is_none_or(|t| tick.duration_since(t) >= STATUS_EVERY);
    if stats_due {
        if let Some(stats) = published.pending_stats.take() {
            out.push(Publication {
                topic: SiteTopics::new(site).aggregator_stats(),
                payload: json(&stats),
                retain: true,
            });
            published.stats = Some(stats);
            published.stats_at = Some(tick);
        }
    }
    out
}

/// What was last published, so that unchanged states are not sent again,
/// and what waits for its turn.
#[derive(Debug, Default)]
pub struct Published {
    stats: Option<Stats>,
    stats_at: Option<Instant>,
    pending_stats: Option<Stats>,
}

/// Everything retained, published again after a (re)connection.
fn republish_all(
    site: &str,
    acks: &[(String, Ack)],
    stats: &Stats,
    published: &mut Published,
) -> Vec<Publication> {
    let mut out = Vec::new();
    for (area, ack) in acks {
        let topics = BoardTopics::new(site, area, &ack.board);
        out.push(Publication {
            topic: topics.ack(),
            payload: json(ack),
            retain: true,
        });
    }
    out.push(Publication {
        topic: SiteTopics::new(site).aggregator_stats(),
        payload: json(stats),
        retain: true,
    });
    published.stats = Some(stats.clone());
    out
}

/// Sorts one message into what the store records, or a rejection.
fn classify(
    site: &str,
    max_bytes: usize,
    p: &Publish,
    now: chrono::DateTime<Utc>,
) -> Result<Option<Input>, Reject> {
    if let Some(t) = parse_board_topic(&p.topic) {
        if t.site == site && t.rest == ["schedule"] {
            // Not stored: the writer hands it to the live status.
            return Ok(None);
        }
        if t.site == site && t.rest == ["online"] {
            let online = match p.payload.as_ref() {
                b"true" => true,
                b"false" => false,
                // Not ours to judge: an odd online flag is left alone.
                _ => return Ok(None),
            };
            return Ok(Some(Input::Online {
                area: t.area.to_owned(),
                board: t.board.to_owned(),
                online,
            }));
        }
    }
    validate(site, &p.topic, &p.payload, max_bytes).map(|mut a| {
        if bound_time(&mut a.envelope, now) {
            tracing::debug!(board = %a.envelope.board, seq = a.envelope.seq,
                "an event dated far from its receive time was given the receive time");
        }
        Some(Input::Event {
            area: a.area,
            envelope: a.envelope,
        })
    })
}

/// A board's schedule message, checked against its topic; `None` (and a
/// warning) for anything else.
fn schedule_feed(site: &str, p: &Publish) -> Option<Feed> {
    let t = parse_board_topic(&p.topic)?;
    if t.site != site || t.rest != ["schedule"] || p.payload.is_empty() {
        return None;
    }
    match serde_json::from_slice::<ScheduleMessage>(&p.payload) {
        Ok(m) if m.board == t.board => Some(Feed::Schedule {
            area: t.area.to_owned(),
            message: m,
            live: !p.retain,
        }),
        Ok(m) => {
            tracing::warn!(topic = %p.topic, board = %m.board, "a schedule names another board; ignored");
            None
        }
        Err(e) => {
            tracing::warn!(topic = %p.topic, error = %e, "a schedule is not a schedule message; ignored");
            None
        }
    }
}

/// What the live status learns from a committed batch: every event (moved
/// out of `inputs`), the flags, and each touched board's ack.
fn status_feeds(inputs: Vec<Input>, outcome: &BatchOutcome, feeds: &mut Vec<Feed>) {
    for input in inputs {
        if let Input::Event { area, envelope } = input {
            feeds.push(Feed::Event {
                area,
                event: envelope,
            });
        }
    }
    for (board, b) in &outcome.boards {
        feeds.push(Feed::Stored {
            area: b.area.clone(),
            board: board.clone(),
            last_seq: b.status.last_seq,
            last_event_at: b.status.last_event_at,
            replaced_at: b.status.replaced_at,
        });
    }
}

/// The writer thread: group commits until the queue closes.
#[allow(clippy::too_many_arguments)]
fn writer(
    mut store: Store,
    site: String,
    max_bytes: usize,
    max_batch: usize,
    items: mpsc::Receiver<Item>,
    out: tokio::sync::mpsc::UnboundedSender<Output>,
    coaching: coaching_shell::Trigger,
    status: Feeder,
) {
    let mut limiter = LogLimiter::new(REJECT_LOG_EVERY);
    let mut published = Published::default();
    // systemd's watchdog is fed from here: a writer stuck for longer than
    // WatchdogSec gets the service restarted.
    let mut watchdog = crate::notify::Watchdog::from_env();
    loop {
        watchdog.feed(Instant::now());
        let first = match items.recv_timeout(STATUS_EVERY / 4) {
            Ok(item) => item,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let publications = due_publications(&site, &mut published, Instant::now());
                if !publications.is_empty()
                    && out
                        .send(Output {
                            acks: Vec::new(),
                            publications,
                        })
                        .is_err()
                {
                    break;
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match items.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let mut inputs = Vec::with_capacity(batch.len());
        let mut acks = Vec::with_capacity(batch.len());
        let mut rejects = Vec::new();
        let mut republish = false;
        let mut feeds = Vec::new();
        for item in batch {
            match item {
                Item::Republish => republish = true,
                Item::Message(p) => {
                    match classify(&site, max_bytes, &p, Utc::now()) {
                        Ok(Some(input)) => {
                            if let Input::Online {
                                area,
                                board,
                                online,
                            } = &input
                            {
                                feeds.push(Feed::Online {
                                    area: area.clone(),
                                    board: board.clone(),
                                    online: *online,
                                    live: !p.retain,
                                });
                            }
                            inputs.push(input);
                        }
                        Ok(None) => feeds.extend(schedule_feed(&site, &p)),
                        Err(r) => {
                            inputs.push(Input::Rejected(r.reason));
                            rejects.push(r);
                        }
                    }
                    acks.push(p);
                }
            }
        }
        let mut pause = Duration::from_millis(100);
        let started = Instant::now();
        let outcome = loop {
            match store.apply(&inputs, Utc::now()) {
                Ok(o) => {
                    // For finding where a latency tail comes from (tests/README.md,
                    // "Performance"): a disk that stalls its fsync.
                    let took = started.elapsed();
                    if took > SLOW_COMMIT {
                        tracing::debug!(took = ?took, messages = inputs.len(), "slow commit");
                    }
                    break o;
                }
                Err(e) => {
                    tracing::error!(error = %e, retry_in = ?pause, "commit failed; nothing is acknowledged until it succeeds");
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        };
        // Coaching hook: a pulse, never a wait.
        if coaching_shell::touches(&inputs) {
            coaching.pulse();
        }
        // Live status hook: what was committed, never a wait.
        status_feeds(inputs, &outcome, &mut feeds);
        status.send(feeds);
        let now = Instant::now();
        for r in &rejects {
            let board = r.board.as_deref().unwrap_or("-");
            if let Some(held) = limiter.allow(board, r.reason, now) {
                tracing::warn!(board, reason = %r.reason, detail = %r.detail, held_back = held, "rejected a message");
            }
        }
        for a in &outcome.alerts {
            tracing::error!(board = %a.board, incarnation = %a.incarnation, seq = a.seq, stored_id = %a.stored_id, received_id = %a.received_id,
                "integrity alert: a second event with the same (board, incarnation, seq) and other content; the first is kept");
        }
        for r in &outcome.refused {
            if let Some(held) = limiter.allow(&r.board, Reason::BadSeq, now) {
                tracing::warn!(board = %r.board, incarnation = %r.incarnation, seq = r.seq, why = %r.why,
                    held_back = held, "rejected an event that cannot be the board's next (bad_seq)");
            }
        }
        for t in &outcome.twins {
            tracing::error!(board = %t.board, older = %t.older, newer = %t.newer,
                "two boards claim one board id: an older incarnation of its database file stores new events after a newer one appeared; both are kept");
        }
        let mut publications =
            publications(&site, &outcome, &mut published, Utc::now(), Instant::now());
        if republish {
            publications.extend(republish_all(
                &site,
                &store.acks(Utc::now()),
                store.stats(),
                &mut published,
            ));
        }
        if out.send(Output { acks, publications }).is_err() {
            break;
        }
    }
}

/// Sends PUBACKs and publications in the order the writer produced them.
async fn output(
    client: AsyncClient,
    hub: Arc<Hub>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Output>,
) {
    while let Some(o) = rx.recv().await {
        for p in &o.acks {
            if let Err(e) = client.ack(p).await {
                tracing::warn!(error = %e, "cannot queue a PUBACK (the broker will deliver again)");
            }
        }
        for p in o.publications {
            hub.publish(&p.topic, &p.payload, p.retain);
            if !crate::mqtt::fits(&p.topic, &p.payload) {
                super::outlet::too_large(&p.topic, p.payload.len(), "ack or alert");
                continue;
            }
            if let Err(e) = client
                .publish(p.topic, QoS::AtLeastOnce, p.retain, p.payload)
                .await
            {
                tracing::warn!(error = %e, "cannot queue a publication");
            }
        }
    }
}

/// Publishes the rosters on every (re)connection and whenever the file's
/// modification time changes. A file that turns bad later is logged and
/// the last good roster stays.
async fn roster_task(
    client: AsyncClient,
    site: String,
    file: std::path::PathBuf,
    mut current: Vec<BoardRoster>,
    mut connected: tokio::sync::mpsc::UnboundedReceiver<()>,
) {
    let publish = |rosters: &[BoardRoster]| {
        let client = client.clone();
        let msgs: Vec<(String, Vec<u8>)> = rosters
            .iter()
            .map(|r| {
                (
                    BoardTopics::new(&site, &r.area, &r.message.board).roster(),
                    json(&r.message),
                )
            })
            .collect();
        async move {
            for (topic, payload) in msgs {
                if !crate::mqtt::fits(&topic, &payload) {
                    super::outlet::too_large(&topic, payload.len(), "roster");
                    continue;
                }
                if let Err(e) = client.publish(topic, QoS::AtLeastOnce, true, payload).await {
                    tracing::warn!(error = %e, "cannot queue a roster");
                }
            }
        }
    };
    let mut mtime = roster::modified(&file).ok();
    let mut tick = tokio::time::interval(ROSTER_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            c = connected.recv() => {
                if c.is_none() { return; }
                publish(&current).await;
            }
            _ = tick.tick() => {
                let now = roster::modified(&file).ok();
                if now == mtime { continue; }
                mtime = now;
                match roster::load(&file) {
                    Ok(r) => {
                        tracing::info!(file = %file.display(), boards = r.len(), "roster changed; publishing");
                        current = r;
                        publish(&current).await;
                    }
                    Err(e) => tracing::error!(error = %e, "the roster file changed but cannot be used; the last good roster stays"),
                }
            }
        }
    }
}

/// Runs the aggregator's ingest until `shutdown` completes. Opens the
/// database and reads the roster first: errors there stop it before it
/// connects. A broker that is down is waited for (with backoff), never an
/// error. Unacknowledged messages at shutdown are delivered again by the
/// broker (persistent session), and storing is idempotent.
pub async fn run(
    config: AggregatorConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), IngestError> {
    let site = config.site.id.clone();
    let db = config.database_path();
    let store = Store::open(&db)?;
    let _checkpointer = Checkpointer::start(&db)?;
    let rosters = match &config.roster.file {
        Some(f) => Some((f.clone(), roster::load(f)?)),
        None => None,
    };
    let mut options = crate::mqtt::options(&config.mqtt, &client_id(&site), &config.source)?;
    options.set_manual_acks(true);
    options.set_max_packet_size(MQTT_MAX_PACKET, crate::mqtt::MAX_PACKET);
    let (client, mut eventloop) = AsyncClient::new(options, 1024);
    crate::mqtt::no_delay(&mut eventloop);
    let hub = Hub::logged(&db, ALERTS_KEPT)?;
    let overdue = OverdueCount::default();
    let (coaching, coaching_thread) = coaching_shell::start(
        &config,
        client.clone(),
        hub.clone(),
        tokio::runtime::Handle::current(),
        overdue.clone(),
    )?;
    let (status, status_thread) = status_shell::start(
        &config,
        client.clone(),
        hub.clone(),
        tokio::runtime::Handle::current(),
        overdue,
    )?;
    let (items_tx, items_rx) = mpsc::channel::<Item>();
    let (out_tx, out_rx) = tokio::sync::mpsc::unbounded_channel();
    let writer_thread = {
        let site = site.clone();
        let (max_bytes, max_batch) = (config.ingest.max_message_bytes, config.ingest.max_batch);
        let coaching = coaching.clone();
        let status = status.clone();
        std::thread::Builder::new()
            .name("aggregator-writer".into())
            .spawn(move || {
                writer(
                    store, site, max_bytes, max_batch, items_rx, out_tx, coaching, status,
                )
            })
            .map_err(IngestError::Thread)?
    };
    let output_task = tokio::spawn(output(client.clone(), hub.clone(), out_rx));
    let web = super::web::start(config.web.as_ref(), &config.site, hub.clone(), &db);
    let (connected_tx, connected_rx) = tokio::sync::mpsc::unbounded_channel();
    let roster_task = rosters.map(|(file, r)| {
        tokio::spawn(roster_task(
            client.clone(),
            site.clone(),
            file,
            r,
            connected_rx,
        ))
    });

    let topics = SiteTopics::new(&site);
    // The database is open and the writer runs: ready for systemd, whether
    // or not the broker is up yet (the loop below keeps trying).
    crate::notify::ready();
    let mut backoff = Backoff::new(Duration::from_secs(config.mqtt.backoff_max_s));
    // A wrong CA or password is said once with the key to fix, not at
    // every attempt (see crate::mqtt).
    let mut failures = FailureLog::new();
    let source = config.source.display().to_string();
    tracing::info!(site = %site, db = %config.database_path().display(), broker = %config.mqtt.url, "aggregator starting");
    let poll = async {
        loop {
            match eventloop.poll().await {
                Ok(MqttEvent::Incoming(Packet::ConnAck(ack))) => {
                    backoff.reset();
                    let line = failures.connected(&config.mqtt.url, Instant::now());
                    tracing::info!(session_present = ack.session_present, "{line}");
                    // Events only when the session was lost (the broker
                    // keeps the subscription and queues for it); `online`
                    // and `schedule` always, so that the broker replays
                    // every board's retained flag and schedule (the live
                    // status does not store schedules).
                    let mut filters = vec![topics.all_online(), topics.all_schedules()];
                    if !ack.session_present {
                        filters.insert(0, topics.all_events());
                    }
                    let subscriber = client.clone();
                    tokio::spawn(async move {
                        for f in filters {
                            if let Err(e) = subscriber.subscribe(f, QoS::AtLeastOnce).await {
                                tracing::error!(error = %e, "cannot queue a subscription");
                            }
                        }
                    });
                    let _ = items_tx.send(Item::Republish);
                    let _ = connected_tx.send(());
                    coaching.pulse();
                    status.send(vec![Feed::Link(true)]);
                }
                Ok(MqttEvent::Incoming(Packet::Publish(p))) => {
                    if items_tx.send(Item::Message(p)).is_err() {
                        tracing::error!("the writer thread stopped");
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    status.send(vec![Feed::Link(false)]);
                    let d = crate::mqtt::diagnose(&e, &config.mqtt, &source);
                    if let Some(line) = failures.failed(&d, Instant::now()) {
                        if d.fault.is_config() {
                            tracing::error!("{line}");
                        } else {
                            tracing::warn!("{line}");
                        }
                    }
                    tokio::time::sleep(backoff.next()).await;
                }
            }
        }
    };
    tokio::select! {
        _ = poll => {}
        _ = shutdown => tracing::info!("shutting down"),
    }
    drop(items_tx);
    let _ = tokio::task::spawn_blocking(move || writer_thread.join()).await;
    drop(coaching);
    let _ = tokio::task::spawn_blocking(move || coaching_thread.join()).await;
    drop(status);
    let _ = tokio::task::spawn_blocking(move || status_thread.join()).await;
    output_task.abort();
    if let Some(t) = web {
        t.abort();
    }
    if let Some(t) = roster_task {
        t.abort();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregator::store::BoardOutcome;
    use crate::wire::payload::{BoardStatus, HuddleState};

    #[test]
    fn rejection_logs_are_limited_per_board_and_reason() {
        let mut l = LogLimiter::new(Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(l.allow("b1", Reason::BadSeq, t0), Some(0));
        assert_eq!(
            l.allow("b1", Reason::BadSeq, t0 + Duration::from_secs(1)),
            None
        );
        assert_eq!(
            l.allow("b1", Reason::BadSeq, t0 + Duration::from_secs(2)),
            None
        );
        assert_eq!(l.allow("b1", Reason::Oversize, t0), Some(0));
        assert_eq!(l.allow("b2", Reason::BadSeq, t0), Some(0));
        assert_eq!(
            l.allow("b1", Reason::BadSeq, t0 + Duration::from_secs(61)),
            Some(2)
        );
    }

    fn outcome(ack_before: u64, ack: u64, dup: bool) -> BatchOutcome {
        let mut o = BatchOutcome::default();
        o.boards.insert(
            "b1".into(),
            BoardOutcome {
                area: "assembly".into(),
                ack: Ack {
                    board: "b1".into(),
                    seq: ack,
                    at: Utc::now(),
                    incarnations: Vec::new(),
                },
                ack_moved: ack != ack_before,
                duplicate_at_or_below_ack: dup,
                status: BoardStatus {
                    board: "b1".into(),
                    online: true,
                    last_seq: ack,
                    last_event_at: None,
                    huddle: HuddleState::NotStarted,
                    incarnation: None,
                    replaced_at: None,
                },
                moved_from: None,
            },
        );
        o
    }

    #[test]
    fn a_board_moved_to_another_area_clears_its_old_ack() {
        let mut o = outcome(1, 2, false);
        o.boards.get_mut("b1").unwrap().moved_from = Some("paint".into());
        let out = publications(
            "plant1",
            &o,
            &mut Published::default(),
            Utc::now(),
            Instant::now(),
        );
        let cleared = out
            .iter()
            .find(|p| p.topic == "huddle/v1/plant1/paint/b1/ack")
            .expect("the old ack is cleared");
        assert!(cleared.retain && cleared.payload.is_empty());
        assert!(out
            .iter()
            .any(|p| p.topic == "huddle/v1/plant1/assembly/b1/ack"));
    }

    #[test]
    fn integrity_conflicts_and_twins_are_alerts_on_mqtt_not_retained() {
        let mut o = outcome(1, 1, false);
        o.alerts.push(super::super::store::IntegrityAlert {
            board: "b1".into(),
            incarnation: "aaa".into(),
            seq: 7,
            stored_id: "s".into(),
            received_id: "r".into(),
        });
        o.twins.push(super::super::store::TwinAlert {
            board: "b1".into(),
            older: "aaa".into(),
            newer: "bbb".into(),
            at: Utc::now(),
        });
        let out = publications(
            "plant1",
            &o,
            &mut Published::default(),
            Utc::now(),
            Instant::now(),
        );
        let alerts: Vec<&Publication> =
            out.iter().filter(|p| p.topic.contains("/alert/")).collect();
        assert_eq!(alerts.len(), 2);
        assert_eq!(alerts[0].topic, "huddle/v1/plant1/alert/integrity");
        assert_eq!(alerts[1].topic, "huddle/v1/plant1/alert/board_twin");
        assert!(alerts.iter().all(|p| !p.retain));
        let twin: serde_json::Value = serde_json::from_slice(&alerts[1].payload).unwrap();
        assert_eq!(
            (twin["board"].as_str(), twin["older"].as_str()),
            (Some("b1"), Some("aaa"))
        );
        let conflict: serde_json::Value = serde_json::from_slice(&alerts[0].payload).unwrap();
        assert_eq!(conflict["seq"], 7);
    }

    #[test]
    fn publishes_the_ack_when_it_moves_or_a_duplicate_arrives_and_never_a_status() {
        let now = Utc::now();
        let t0 = Instant::now();
        let mut p = Published::default();
        let first = publications("plant1", &outcome(0, 2, false), &mut p, now, t0);
        let topics: Vec<&str> = first.iter().map(|p| p.topic.as_str()).collect();
        assert_eq!(
            topics,
            [
                "huddle/v1/plant1/assembly/b1/ack",
                "huddle/v1/plant1/aggregator/stats"
            ],
            "the boards' statuses are the live status thread's"
        );
        let ack: Ack = serde_json::from_slice(&first[0].payload).unwrap();
        assert_eq!(ack.seq, 2);

        assert!(publications("plant1", &outcome(2, 2, false), &mut p, now, t0).is_empty());
        let again = publications("plant1", &outcome(2, 2, true), &mut p, now, t0);
        assert_eq!(again.len(), 1);
        assert!(again[0].topic.ends_with("/ack"));
    }

    #[test]
    fn changed_stats_wait_their_turn() {
        let now = Utc::now();
        let t0 = Instant::now();
        let mut p = Published::default();
        publications("plant1", &outcome(0, 2, false), &mut p, now, t0);
        let t1 = t0 + Duration::from_millis(100);
        let mut o = outcome(2, 3, false);
        o.stats.stored = 3;
        let soon = publications("plant1", &o, &mut p, now, t1);
        assert_eq!(soon.len(), 1);
        assert!(soon[0].topic.ends_with("/ack"));
        assert!(due_publications("plant1", &mut p, t1 + Duration::from_millis(500)).is_empty());
        let due = due_publications("plant1", &mut p, t0 + STATUS_EVERY);
        let stats: Stats = serde_json::from_slice(&due[0].payload).unwrap();
        assert_eq!(stats.stored, 3, "the newest stats are the ones sent");
    }

    #[test]
    fn a_schedule_is_handed_over_only_for_its_own_board() {
        let msg = |topic: &str, board: &str, retain: bool| {
            let m = ScheduleMessage {
                board: board.into(),
                timezone: "Europe/Berlin".into(),
                times: vec!["06:45".into()],
                grace_s: 300,
                target_s: 900,
                issued_at: Utc::now(),
            };
            let mut p = Publish::new(topic, QoS::AtLeastOnce, serde_json::to_vec(&m).unwrap());
            p.retain = retain;
            p
        };
        let good = msg("huddle/v1/plant1/assembly/b1/schedule", "b1", true);
        assert!(matches!(
            classify("plant1", 65536, &good, Utc::now()),
            Ok(None)
        ));
        match schedule_feed("plant1", &good) {
            Some(Feed::Schedule {
                area,
                message,
                live,
            }) => {
                assert_eq!(
                    (area.as_str(), message.board.as_str(), live),
                    ("assembly", "b1", false)
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(schedule_feed(
            "plant1",
            &msg("huddle/v1/plant1/assembly/b2/schedule", "b1", false)
        )
        .is_none());
        assert!(schedule_feed("plant2", &good).is_none());
        let junk = Publish::new(
            "huddle/v1/plant1/assembly/b1/schedule",
            QoS::AtLeastOnce,
            "06:45",
        );
        assert!(schedule_feed("plant1", &junk).is_none());
    }
}
