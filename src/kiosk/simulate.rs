//! `huddle-kiosk simulate`: N virtual boards doing complete huddles through
//! the real kiosk core (one SQLite file per board), each with the real
//! outbox publisher, for demos, tests and benchmarks.
//!
//! Each board runs on its own thread with a simulated clock (its events
//! carry simulated times) and a deterministic script per board: the team
//! leader starts, members tap in (one late, one tapping twice), KPIs are
//! reviewed with misses (reasons, actions or "none needed"), open actions
//! are reviewed, needs are raised and some escalated, the experiment moves,
//! actions are created, and the team leader closes. After some huddles the
//! supervisor records a coaching observation with the team leader (level
//! 3, about 2 huddles in 7), and now and then the manager one with the
//! supervisor (level 4); on some boards the coaches are deliberately
//! behind, so that demos show overdue coaching. A restarted simulator
//! resumes: huddles already closed in a board's file count, and an open
//! huddle is carried on to its close.
//!
//! When every board is done it waits until each board's ack covers its
//! last seq (or the timeout) and prints one line per board:
//! `BOARD LAST_SEQ ACKED_SEQ`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::domain::{ObservationLevel, Role, SelfView, Step};
use crate::kiosk::app::{Board, Intent, Screen};
use crate::kiosk::badge::{BadgeInput, BadgeRead};
use crate::kiosk::config::KioskConfig;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Number of boards (`sim-001`, ...).
    pub boards: usize,
    /// The first board's number (1: `sim-001`). Several processes can
    /// share a site, each with its boards' own broker credentials.
    pub first: usize,
    /// Huddles per board (in total, across restarts).
    pub huddles: usize,
    /// User actions per second per board; 0 runs as fast as the disk allows.
    pub rate: f64,
    /// Where the boards' files go (`DIR/<board>/kiosk-<board>.db`).
    pub data_dir: PathBuf,
    /// How long to wait for the acks at the end.
    pub ack_timeout: StdDuration,
    /// Publish through the outbox (off: only the files are written).
    pub publish: bool,
    /// Measure commit -> ack latency of every event and print p50/p99.
    pub latency: bool,
}

/// One board's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimResult {
    /// Board id.
    pub board: String,
    /// Its last seq.
    pub last_seq: u64,
    /// The aggregator's ack when the simulator stopped waiting.
    pub acked: u64,
}

/// A small deterministic PRNG (xorshift64*), seeded per board.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The configuration of simulated board `i`, derived from `base`.
pub fn board_config(base: &KioskConfig, i: usize, data_dir: &std::path::Path) -> KioskConfig {
    let mut c = base.clone();
    c.board.id = format!("sim-{:03}", i + 1);
    c.board.name = format!("Simulated board {}", i + 1);
    c.storage.data_dir = data_dir.join(&c.board.id);
    c
}

fn badge(number: &str) -> Intent {
    Intent::Badge(BadgeInput::Read(BadgeRead {
        number: number.into(),
    }))
}

/// Drives one board through its huddles. `after` runs after every action
/// (the publisher's wake-up and the pacing).
pub fn run_board(
    config: KioskConfig,
    seed: u64,
    huddles: usize,
    mut after: impl FnMut(&Board),
) -> Result<Board, crate::kiosk::app::AppError> {
    let tz = config.timezone();
    let leader = config
        .people
        .iter()
        .find(|p| p.role == Role::TeamLeader)
        .and_then(|p| p.badges.first().cloned())
        .unwrap_or_default();
    let members: Vec<(String, String)> = config
        .people
        .iter()
        .filter(|p| p.role == Role::Member)
        .filter_map(|p| p.badges.first().map(|b| (p.id.clone(), b.clone())))
        .collect();
    let badge_of = |role: Role| {
        config
            .people
            .iter()
            .find(|p| p.role == role)
            .and_then(|p| p.badges.first().cloned())
    };
    let supervisor = badge_of(Role::Supervisor);
    let manager = badge_of(Role::Manager);
    // One board in four has coaches who fall behind: overdue coaching to show.
    let behind = seed.is_multiple_of(4);
    let first: DateTime<Utc> = tz
        .with_ymd_and_hms(2026, 1, 5, 6, 40, 0)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default();
    let mut board = Board::open(config, first)?;
    // Resume after the last recorded event, a day later if huddles were held.
    let closed = board.store().closed_huddles()?;
    let last_at = board.store().last_event_at()?;
    let mut now = last_at.map(|t| t + Duration::seconds(1)).unwrap_or(first);
    let mut rng = Rng::new(seed ^ closed as u64);
    let mut act = |board: &mut Board,
                   now: DateTime<Utc>,
                   intent: Intent|
     -> Result<(), crate::kiosk::app::AppError> {
        board.handle(intent, now)?;
        after(board);
        Ok(())
    };
    let mut held = closed;
    // An open huddle from before a restart is carried on to its close.
    if board.huddle().is_some() {
        now += Duration::seconds(30);
        act(&mut board, now, Intent::CloseHuddle)?;
        act(&mut board, now, badge(&leader))?;
        act(&mut board, now, Intent::Dismiss)?;
        held += 1;
    }
    while held < huddles {
        // The next scheduled morning slot after `now`, 5 minutes early.
        let mut day = now.with_timezone(&tz).date_naive() + Duration::days(1);
        if day.weekday_index() >= 5 {
            day += Duration::days((7 - day.weekday_index()) as i64);
        }
        now = tz
            .from_local_datetime(&day.and_hms_opt(6, 40, 0).unwrap_or_default())
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(now + Duration::days(1));
        act(&mut board, now, badge(&leader))?;
        for (i, (_, number)) in members.iter().enumerate() {
            // Most arrive on time; the last one is often late.
            let late = i + 1 == members.len() && rng.chance(60);
            now += Duration::seconds(if late { 660 } else { 20 + rng.below(40) as i64 });
            act(&mut board, now, badge(number))?;
            if rng.chance(15) {
                act(&mut board, now + Duration::seconds(5), badge(number))?; // "already here"
            }
        }
        let kpis: Vec<String> = board
            .config()
            .huddle
            .kpis
            .iter()
            .map(|k| k.key.clone())
            .collect();
        let owners: Vec<String> = members.iter().map(|(id, _)| id.clone()).collect();
        while let Screen::Step(step) = board.screen() {
            now += Duration::seconds(30 + rng.below(60) as i64);
            match step {
                Step::Attendance => {}
                Step::Kpis => {
                    for key in &kpis {
                        let intent = if rng.chance(70) {
                            Intent::KpiHit {
                                key: key.clone(),
                                actual: String::new(),
                            }
                        } else {
                            let none_needed = rng.chance(40);
                            Intent::KpiMiss {
                                key: key.clone(),
                                actual: format!("{}", 90 + rng.below(9)),
                                reason: Some(
                                    rng.below(board.config().huddle.miss_reasons.len() as u64)
                                        as usize,
                                ),
                                note: String::new(),
                                none_needed,
                                what: if none_needed {
                                    String::new()
                                } else {
                                    format!("Fix {key} deviation")
                                },
                                owner: owners[rng.below(owners.len() as u64) as usize].clone(),
                                due: Some(rng.below(4) as usize),
                            }
                        };
                        act(&mut board, now, intent)?;
                    }
                }
                Step::OpenActions => {
                    for a in board
                        .view(now)?
                        .open_actions
                        .into_iter()
                        .filter(|a| a.status != "done")
                    {
                        let intent = match rng.below(3) {
                            0 => Intent::ActionDone(a.id),
                            1 => Intent::Reschedule(a.id, 1 + rng.below(3) as usize),
                            _ => Intent::ActionBlocked(a.id),
                        };
                        act(&mut board, now, intent)?;
                    }
                }
                Step::Needs => {
                    for _ in 0..rng.below(3) {
                        let category =
                            rng.below(board.config().huddle.need_categories.len() as u64) as usize;
                        let intent = Intent::RaiseNeed {
                            category: Some(category),
                            text: format!("Need #{}", rng.below(1000)),
                            escalate: rng.chance(30),
                        };
                        act(&mut board, now, intent)?;
                    }
                }
                Step::Experiment if rng.chance(50) => {}
                Step::Experiment => {
                    let intent = Intent::SaveExperiment {
                        obstacle: "Changeover takes too long".into(),
                        expectation: format!("Under {} min", 20 + rng.below(10)),
                        next_step: "Pre-stage the next dies".into(),
                        owner: owners[rng.below(owners.len() as u64) as usize].clone(),
                        check: Some(2),
                    };
                    act(&mut board, now, intent)?;
                }
                Step::NewActions => {
                    if rng.chance(60) {
                        let intent = Intent::AddAction {
                            what: "Clean the work area".into(),
                            owner: owners[rng.below(owners.len() as u64) as usize].clone(),
                            due: Some(rng.below(4) as usize),
                        };
                        act(&mut board, now, intent)?;
                    }
                }
                Step::Close => {
                    act(&mut board, now, Intent::CloseHuddle)?;
                    act(&mut board, now, badge(&leader))?;
                    break;
                }
            }
            act(&mut board, now, Intent::NextStep)?;
        }
        act(&mut board, now, Intent::Dismiss)?;
        held += 1;
        let (l3, l4) = if behind { (10, 25) } else { (29, 35) };
        if let (Some(sup), Some(tl)) = (&supervisor, leader_badge(&leader)) {
            if rng.chance(l3) {
                now += Duration::minutes(5);
                let base = 1 + (held / 8).min(2) as u8;
                observe(
                    &mut board,
                    &mut act,
                    &mut rng,
                    now,
                    ObservationLevel::Facilitation,
                    sup,
                    tl,
                    base,
                )?;
                // The manager watched that coaching talk (level 4), now and then.
                if let Some(mgr) = manager.as_ref().filter(|_| rng.chance(l4)) {
                    now += Duration::minutes(10);
                    observe(
                        &mut board,
                        &mut act,
                        &mut rng,
                        now,
                        ObservationLevel::Coaching,
                        mgr,
                        sup,
                        2,
                    )?;
                }
            }
        }
    }
    Ok(board)
}

fn leader_badge(badge: &str) -> Option<&str> {
    (!badge.is_empty()).then_some(badge)
}

/// One coaching observation through the board's real flow: the coach's
/// badge, the menu, the learner's view, the rubric (around `base`, 1-4),
/// strength and focus, trigger and date, the learner's badge and rating.
#[allow(clippy::too_many_arguments)]
fn observe(
    board: &mut Board,
    act: &mut impl FnMut(&mut Board, DateTime<Utc>, Intent) -> Result<(), crate::kiosk::app::AppError>,
    rng: &mut Rng,
    now: DateTime<Utc>,
    level: ObservationLevel,
    coach: &str,
    learner: &str,
    base: u8,
) -> Result<(), crate::kiosk::app::AppError> {
    let n = level.behaviours().len();
    act(board, now, badge(coach))?;
    act(board, now, Intent::ObserveBegin(level))?;
    let view = [SelfView::WentWell, SelfView::SoSo, SelfView::Badly][rng.below(3) as usize];
    act(board, now, Intent::ObserveSelfView(view))?;
    for behaviour in 0..n {
        let score = (base + rng.below(3) as u8).clamp(1, 4);
        act(board, now, Intent::ObserveScore { behaviour, score })?;
    }
    act(board, now, Intent::ObserveNext)?;
    let strength = rng.below(n as u64) as usize;
    act(board, now, Intent::ObserveStrength(strength))?;
    act(
        board,
        now,
        Intent::ObserveFocus((strength + 1 + rng.below(n as u64 - 1) as usize) % n),
    )?;
    act(board, now, Intent::ObserveNext)?;
    act(
        board,
        now,
        Intent::ObserveTrigger("At the start of each huddle".into()),
    )?;
    act(board, now, Intent::ObserveReobserve(rng.below(2) as usize))?;
    act(board, now, Intent::ObserveNext)?;
    act(board, now, badge(learner))?;
    act(board, now, Intent::ObserveRate(3 + rng.below(3) as u8))?;
    if board.screen() != Screen::Idle {
        // Design: the script is the flow's happy path; anything else is a bug in it.
        tracing::warn!(screen = ?board.screen(), "simulated observation did not complete");
        act(board, now, Intent::ObserveCancel)?;
    }
    Ok(())
}

trait WeekdayIndex {
    fn weekday_index(&self) -> u32;
}

impl WeekdayIndex for chrono::NaiveDate {
    fn weekday_index(&self) -> u32 {
        use chrono::Datelike;
        self.weekday().num_days_from_monday()
    }
}

/// Runs the simulation without delivery (files only); returns each board's last seq.
pub fn run_offline(base: &KioskConfig, opts: &SimOptions) -> anyhow::Result<Vec<SimResult>> {
    let base = Arc::new(base.clone());
    let handles: Vec<_> = (0..opts.boards)
        .map(|i| {
            let config = board_config(&base, opts.first.max(1) - 1 + i, &opts.data_dir);
            let huddles = opts.huddles;
            let pause = (opts.rate > 0.0).then(|| StdDuration::from_secs_f64(1.0 / opts.rate));
            std::thread::spawn(move || -> anyhow::Result<SimResult> {
                let id = config.board.id.clone();
                let board = run_board(config, i as u64 + 1, huddles, |_| {
                    if let Some(p) = pause {
                        std::thread::sleep(p);
                    }
                })?;
                Ok(SimResult {
                    board: id,
                    last_seq: board.store().last_seq()?,
                    acked: 0,
                })
            })
        })
        .collect();
    let started = Instant::now();
    let mut out = Vec::new();
    for h in handles {
        out.push(
            h.join()
                .map_err(|_| anyhow::anyhow!("a board's thread panicked"))??,
        );
    }
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "simulation done"
    );
    Ok(out)
}

/// Commit instants by seq, matched against the acks as they arrive.
type Commits = Arc<std::sync::Mutex<std::collections::VecDeque<(u64, Instant)>>>;

/// Runs the simulation, delivering through each board's real outbox, and
/// waits for the acks (see the module doc).
pub fn run(base: &KioskConfig, opts: &SimOptions) -> anyhow::Result<Vec<SimResult>> {
    if !opts.publish {
        return run_offline(base, opts);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let latencies: Arc<std::sync::Mutex<Vec<StdDuration>>> = Arc::default();
    let mut boards = Vec::new();
    for i in 0..opts.boards {
        let config = board_config(base, opts.first.max(1) - 1 + i, &opts.data_dir);
        // Create and migrate the file before the publisher opens its own connection.
        drop(crate::kiosk::store::Store::open(
            &config.database_path(),
            &config.board.id,
        )?);
        let outbox = crate::kiosk::outbox::Outbox::start(&config, rt.handle(), Box::new(|_| {}))?;
        let notifier = outbox.notifier();
        let huddles = opts.huddles;
        let pause = (opts.rate > 0.0).then(|| StdDuration::from_secs_f64(1.0 / opts.rate));
        let id = config.board.id.clone();
        let commits: Commits = Arc::default();
        if opts.latency {
            let (commits, latencies, mut status) =
                (commits.clone(), latencies.clone(), outbox.status());
            rt.spawn(async move {
                while status.changed().await.is_ok() {
                    let acked = status.borrow().acked;
                    let now = Instant::now();
                    let (Ok(mut c), Ok(mut l)) = (commits.lock(), latencies.lock()) else {
                        return;
                    };
                    while let Some((_, at)) = c.front().copied().filter(|(seq, _)| *seq <= acked) {
                        c.pop_front();
                        l.push(now - at);
                    }
                }
            });
        }
        let measure = opts.latency;
        // Spread the boards over one pause so that they do not act in step.
        let offset = pause.map(|p| p.mul_f64(i as f64 / opts.boards as f64));
        let thread = std::thread::Builder::new().name(id.clone()).spawn(
            move || -> anyhow::Result<u64> {
                if let Some(o) = offset {
                    std::thread::sleep(o);
                }
                let mut seen = 0u64;
                let board = run_board(config, i as u64 + 1, huddles, |board| {
                    if measure {
                        let now = Instant::now();
                        let last = board.store().last_seq().unwrap_or(seen);
                        if let Ok(mut c) = commits.lock() {
                            c.extend((seen + 1..=last).map(|seq| (seq, now)));
                        }
                        seen = last;
                    }
                    notifier.notify();
                    if let Some(p) = pause {
                        std::thread::sleep(p);
                    }
                })?;
                Ok(board.store().last_seq()?)
            },
        )?;
        boards.push((id, outbox, thread));
    }
    let mut running = Vec::new();
    for (id, outbox, thread) in boards {
        let last_seq = thread
            .join()
            .map_err(|_| anyhow::anyhow!("board {id}'s thread panicked"))??;
        running.push((id, outbox, last_seq));
    }
    let deadline = tokio::time::Instant::now() + opts.ack_timeout;
    let results = rt.block_on(async {
        let mut results = Vec::new();
        for (id, outbox, last_seq) in &running {
            let mut status = outbox.status();
            while status.borrow().acked < *last_seq {
                if tokio::time::timeout_at(deadline, status.changed())
                    .await
                    .is_err()
                {
                    break;
                }
            }
            let acked = status.borrow().acked;
            results.push(SimResult {
                board: id.clone(),
                last_seq: *last_seq,
                acked,
            });
        }
        results
    });
    if opts.latency {
        let mut l = latencies.lock().map(|l| l.clone()).unwrap_or_default();
        l.sort();
        if !l.is_empty() {
            let pct =
                |p: f64| l[((l.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1000.0;
            eprintln!(
                "commit -> ack latency over {} events: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                l.len(),
                pct(0.5),
                pct(0.99),
                pct(1.0)
            );
        }
    }
    rt.block_on(async {
        let stops: Vec<_> = running
            .into_iter()
            .map(|(_, outbox, _)| tokio::spawn(outbox.shutdown()))
            .collect();
        for stop in stops {
            let _ = stop.await;
        }
    });
    Ok(results)
}
