//! The coaching loop's shell: one thread that computes the figures of
//! [`super::rules`] and publishes them, and the exports.
//!
//! ```text
//!  writer thread --pulse after a commit with observation.*--+
//!  MQTT loop     --pulse after every ConnAck----------------+--> coaching thread
//!  timer (coaching.recompute_s) ----------------------------+     | read (own connection)
//!                                                                 | roster file (on mtime change)
//!                                                                 | rules (pure)
//!                                                                 +--> client.publish: coaching (retained),
//!                                                                      alert/coaching_overdue (not retained)
//! ```
//!
//! - **Never blocks ingest.** The writer only sends a unit on a channel;
//!   the thread reads with its own read-only connection (WAL) and
//!   publishes through its own handle on the MQTT client. Pulses that
//!   arrive while it computes, or within [`MIN_GAP`] of the last
//!   computation, are merged into one more computation.
//! - **When.** At start, after every commit that stored an
//!   `observation.*` event, after every (re)connection (the broker may have
//!   lost the retained message), and every `coaching.recompute_s` seconds
//!   (overdue grows with time alone).
//! - **Alerts** once per transition into overdue ([`newly_overdue`]): the
//!   thread keeps the previous report in memory; the first report after a
//!   start alerts nobody.
//! - **Reads only what is new.** The thread keeps a [`Summary`] of the
//!   observations; a computation reads the rows stored since the last one,
//!   so it costs the figures, not a decode of the site's history (the
//!   first, at start, reads the whole file).
//! - **The roster** is read again when the file's modification time
//!   changes; a file that turns bad is logged and the last good one stays
//!   (the roster task says the same for the boards).

use std::path::PathBuf;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rumqttc::AsyncClient;

use super::db::CoachingDb;
use super::export::{coaching_rows, observation_rows, COACHING_COLUMNS, OBSERVATION_COLUMNS};
use super::rules::{self as coaching, newly_overdue, people_from_rosters, Person, Report, Targets};
use super::summary::Summary;
use crate::aggregator::config::AggregatorConfig;
use crate::aggregator::live::Hub;
use crate::aggregator::outlet::{json, now_ms, release_freed_memory, Outlet};
use crate::aggregator::roster::{self, RosterError};
use crate::aggregator::status::shell::OverdueCount;
use crate::aggregator::store::{Input, Store, StoreError};
use crate::wire::topic::SiteTopics;

/// Why the coaching figures cannot be computed.
#[derive(Debug, thiserror::Error)]
pub enum CoachingError {
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The roster file.
    #[error(transparent)]
    Roster(#[from] RosterError),
    /// The thread could not be started.
    #[error("cannot start the coaching thread: {0}")]
    Thread(std::io::Error),
}

/// Wakes the coaching thread. Cheap and never blocking; when every
/// trigger is dropped the thread ends.
#[derive(Clone)]
pub struct Trigger(mpsc::Sender<()>);

impl Trigger {
    /// Asks for a computation (merged with any already asked for).
    pub fn pulse(&self) {
        let _ = self.0.send(());
    }
}

/// Whether a group commit holds coaching events (the writer's test).
pub fn touches(inputs: &[Input]) -> bool {
    inputs.iter().any(
        |i| matches!(i, Input::Event { envelope, .. } if envelope.kind.starts_with("observation.")),
    )
}

/// The roster's people, read again when the file changes.
struct RosterCache {
    file: Option<PathBuf>,
    mtime: Option<DateTime<Utc>>,
    people: Vec<Person>,
}

impl RosterCache {
    fn new(file: Option<PathBuf>) -> Self {
        RosterCache {
            file,
            mtime: None,
            people: Vec::new(),
        }
    }

    /// The people; `Err` only when the file is bad and no good one was read.
    fn people(&mut self) -> Result<&[Person], RosterError> {
        let Some(file) = &self.file else {
            return Ok(&self.people);
        };
        let mtime = roster::modified(file).ok();
        if mtime.is_none() || mtime != self.mtime {
            match roster::load(file) {
                Ok(r) => {
                    self.people = people_from_rosters(&r);
                    self.mtime = mtime;
                }
                Err(e) if self.mtime.is_none() => return Err(e),
                Err(e) => {
                    tracing::error!(error = %e, "the roster file changed but cannot be used; coaching keeps the last good roster");
                    self.mtime = mtime;
                }
            }
        }
        Ok(&self.people)
    }
}

/// The report at `now` from the file at `db` and the roster's `people`,
/// with the events that could not be used.
pub fn compute(
    site: &str,
    db: &CoachingDb,
    people: &[Person],
    targets: Targets,
    now: DateTime<Utc>,
) -> Result<(Report, Vec<String>), StoreError> {
    let since = db.since()?;
    let folded = db.observations()?;
    let report = coaching::report(site, people, &folded.observations, targets, since, now);
    Ok((report, folded.problems))
}

/// Opens the file for an export (migrating it, never creating it).
fn open_for_export(config: &AggregatorConfig) -> Result<CoachingDb, StoreError> {
    let path = config.database_path();
    drop(Store::open_existing(&path)?);
    CoachingDb::open(&path)
}

/// `export --what observations`: the header and one row per observation.
pub fn export_observations(
    config: &AggregatorConfig,
) -> Result<(Vec<&'static str>, Vec<Vec<String>>), CoachingError> {
    let db = open_for_export(config)?;
    let folded = db.observations()?;
    for p in &folded.problems {
        tracing::warn!(problem = %p, "not exported");
    }
    Ok((
        OBSERVATION_COLUMNS.to_vec(),
        observation_rows(&folded.observations),
    ))
}

/// `export --what coaching`: the header and one row per person, as the
/// coaching topic would carry them at `now`.
pub fn export_coaching(
    config: &AggregatorConfig,
    now: DateTime<Utc>,
) -> Result<(Vec<&'static str>, Vec<Vec<String>>), CoachingError> {
    let db = open_for_export(config)?;
    let mut roster = RosterCache::new(config.roster.file.clone());
    let people = roster.people()?.to_vec();
    let targets = Targets::from_config(&config.coaching);
    let (report, _) = compute(&config.site.id, &db, &people, targets, now)?;
    Ok((COACHING_COLUMNS.to_vec(), coaching_rows(&report)))
}

/// The running loop's state.
struct Loop {
    site: String,
    db: CoachingDb,
    roster: RosterCache,
    targets: Targets,
    out: Outlet,
    overdue: OverdueCount,
    previous: Option<Report>,
    summary: Summary,
}

impl Loop {
    fn tick(&mut self) {
        let people = match self.roster.people() {
            Ok(p) => p.to_vec(),
            Err(e) => {
                tracing::error!(error = %e, "coaching: no usable roster; people are taken from the observations");
                Vec::new()
            }
        };
        let t0 = Instant::now();
        let read = self.db.since().and_then(|since| {
            let problems = self.summary.update(&self.db)?;
            Ok((since, problems))
        });
        let (since, problems) = match read {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot compute the coaching figures; trying again at the next pulse");
                return;
            }
        };
        let report = coaching::report(
            &self.site,
            &people,
            self.summary.observations(),
            self.targets,
            since,
            now_ms(),
        );
        tracing::debug!(
            people = report.people.len(),
            observations = self.summary.observations().len(),
            elapsed_ms = t0.elapsed().as_secs_f64() * 1000.0,
            "coaching figures computed"
        );
        for p in &problems {
            tracing::warn!(problem = %p, "coaching: an event is not counted");
        }
        let topics = SiteTopics::new(&self.site);
        let alerts = newly_overdue(self.previous.as_ref(), &report);
        self.overdue
            .set(report.people.iter().filter(|p| p.overdue).count() as u32);
        self.out
            .publish(topics.coaching(), true, json(&report), "coaching");
        for a in &alerts {
            tracing::info!(person = %a.id, since = %a.overdue_since, "coaching overdue");
            self.out.publish(
                topics.coaching_overdue_alert(),
                false,
                json(a),
                "coaching alert",
            );
        }
        self.previous = Some(report);
        release_freed_memory();
    }
}

/// The least time between two computations: pulses that arrive sooner are
/// merged into one computation at the end of it.
pub const MIN_GAP: Duration = Duration::from_secs(1);

/// Starts the coaching thread. The database must be migrated
/// ([`Store::open`] first); publications go through `client` on `runtime`.
/// After each report it sets `overdue` (the live status's site summary
/// reads it). Returns the trigger and the thread: the thread ends when
/// every clone of the trigger is dropped.
pub fn start(
    config: &AggregatorConfig,
    client: AsyncClient,
    hub: Arc<Hub>,
    runtime: tokio::runtime::Handle,
    overdue: OverdueCount,
) -> Result<(Trigger, std::thread::JoinHandle<()>), CoachingError> {
    let db = CoachingDb::open(&config.database_path())?;
    let every = Duration::from_secs(config.coaching.recompute_s);
    let mut state = Loop {
        site: config.site.id.clone(),
        db,
        roster: RosterCache::new(config.roster.file.clone()),
        targets: Targets::from_config(&config.coaching),
        out: Outlet::new(client, runtime, hub),
        overdue,
        previous: None,
        summary: Summary::new(),
    };
    let (tx, rx) = mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("aggregator-coaching".into())
        .spawn(move || {
            let mut next = Instant::now();
            let mut earliest = Instant::now();
            loop {
                match rx.recv_timeout(next.saturating_duration_since(Instant::now())) {
                    Ok(()) => {
                        // Design: one computation reads every observation
                        // (3.5 ms for a few hundred); a pulse per commit
                        // while observations stream in took that much CPU
                        // from ingest again and again, and showed in their
                        // tap -> ack tail. The report is for people, so
                        // a second late costs nothing.
                        std::thread::sleep(earliest.saturating_duration_since(Instant::now()));
                        while rx.try_recv().is_ok() {}
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
                // Design: a bug in the rules must not end the loop for good
                // (ingest does not depend on it); it is logged and the next
                // pulse tries again.
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| state.tick())).is_err() {
                    tracing::error!("the coaching computation failed (a bug: please report it with the log); trying again at the next pulse");
                }
                earliest = Instant::now() + MIN_GAP;
                next = Instant::now() + every;
            }
        })
        .map_err(CoachingError::Thread)?;
    Ok((Trigger(tx), thread))
}
