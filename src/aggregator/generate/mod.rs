//! `huddle-aggregator generate`: a made-up plant's history written into
//! the site file, so that the dashboard, the coaching figures and the
//! benchmarks see what a site sees after months or years.
//!
//! What it makes ([`plant`], [`day`]): boards in areas of ten, each with a
//! roster (a team leader and six to ten members; a supervisor for every
//! five boards; a manager per area); two huddles each working day (06:45
//! and 14:45 site time) with taps (some late, some absent), the agenda's
//! steps, four KPI reviews (misses with reasons, actions raised for
//! them), actions closed, rescheduled or blocked when due, needs raised,
//! escalated and closed by the supervisor (a few left open), an
//! experiment set on Mondays, and the close with its summary; supervisors
//! observe their team leaders' huddles and managers their supervisors'
//! coaching at about the configured cadence, and one in eight of them
//! lets it slide (their learners come out overdue). One seed gives the
//! same history ([`rng`]): every id is drawn from it and stamped with the
//! event's time.
//!
//! How it writes: the same way as ingest. Every event is built as a
//! board's envelope (schema 2, one incarnation per board, `seq` from 1),
//! serialised, checked by [`validate`](crate::aggregator::validate()) on
//! its event topic, and recorded by [`Store::apply`] in group commits of
//! at most a minute of plant time, at that time: `received_at`, the
//! boards' `first_seen` and acks are what a site that ran the whole
//! period would hold. Only the coaching start is moved back to the first
//! day ([`Store::backdate_coaching_start`]), as if the aggregator had run
//! since. It refuses a file that holds events already. The roster goes
//! to a CSV file of its own (the format of `roster.file`), never over the
//! configured one.

pub mod day;
pub mod plant;
pub mod rng;

use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;

use self::day::{BoardState, Day};
use self::plant::Plant;
use self::rng::Rng;
use crate::aggregator::config::AggregatorConfig;
use crate::aggregator::store::{Input, Store, StoreError};
use crate::aggregator::validate::{bound_time, validate, Reject};
use crate::wire::event::{Envelope, Event};
use crate::wire::topic::BoardTopics;

/// A group commit holds at most this much plant time.
pub const COMMIT_SPAN: Duration = Duration::seconds(60);

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// How many boards.
    pub boards: usize,
    /// How many calendar days, the last one `until`'s (site time).
    pub days: u32,
    /// The seed: one seed, one history.
    pub seed: u64,
    /// Nothing at or after this moment (the default is the moment the
    /// command runs).
    pub until: DateTime<Utc>,
}

/// Why a history cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// The site file.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The site file already holds a history.
    #[error(
        "{path} already holds {events} events: generate writes a new site's history. \
         Move the file away first (or point storage.data_dir elsewhere)"
    )]
    NotEmpty {
        /// The file.
        path: PathBuf,
        /// Its events.
        events: u64,
    },
    /// The site's time zone.
    #[error("site.timezone `{0}` is not an IANA time zone")]
    Timezone(String),
    /// A generated event that the aggregator's own validation refuses (a
    /// bug of the generator: it must write only what boards can write).
    #[error("a generated event was refused ({reason}): {detail}")]
    Invalid {
        /// The reason's key.
        reason: String,
        /// The validator's detail.
        detail: String,
    },
    /// The roster file.
    #[error("cannot write the roster {path}: {source}")]
    Roster {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// What was written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Generated {
    /// Boards.
    pub boards: usize,
    /// Areas.
    pub areas: usize,
    /// People on the rosters.
    pub people: usize,
    /// Events stored.
    pub events: u64,
    /// Huddles held.
    pub huddles: u64,
    /// Coaching observations recorded.
    pub observations: u64,
    /// Group commits.
    pub commits: u64,
}

/// The plan's events, one day at a time, as the boards would send them:
/// each day's events of every board, validated, in arrival order (time,
/// then board). Pure apart from the arithmetic: no file, no clock.
pub struct History {
    site: String,
    tz: Tz,
    plant: Plant,
    states: Vec<BoardState>,
    seqs: Vec<u64>,
    incarnations: Vec<String>,
    ids: Rng,
    date: NaiveDate,
    last: NaiveDate,
    until: DateTime<Utc>,
    max_bytes: usize,
}

impl History {
    /// The history of `plan` for `site` in time zone `tz`, badges hashed
    /// with `site_key`; envelopes are validated against `max_bytes`.
    pub fn new(site: &str, tz: Tz, site_key: &str, plan: &Plan, max_bytes: usize) -> History {
        let plant = Plant::new(plan.boards, plan.seed, site_key);
        let last = plan.until.with_timezone(&tz).date_naive();
        let mut ids = Rng::fork(plan.seed, u64::MAX - 1);
        let incarnations = (0..plan.boards)
            .map(|_| ids.uuid_at(plan.until).simple().to_string())
            .collect();
        History {
            site: site.to_owned(),
            tz,
            states: (0..plan.boards)
                .map(|i| BoardState::new(plan.seed, i))
                .collect(),
            seqs: vec![0; plan.boards],
            incarnations,
            ids,
            date: last - Duration::days(i64::from(plan.days.max(1)) - 1),
            last,
            until: plan.until,
            plant,
            max_bytes,
        }
    }

    /// The plant (people, boards).
    pub fn plant(&self) -> &Plant {
        &self.plant
    }

    /// The first day.
    pub fn first_day(&self) -> NaiveDate {
        self.date
    }

    /// The next day's events as the store records them (empty on days
    /// off), with the day; `None` after the last day.
    pub fn next_day(&mut self) -> Option<Result<(NaiveDate, Vec<Input>), GenerateError>> {
        if self.date > self.last {
            return None;
        }
        let date = self.date;
        self.date += Duration::days(1);
        let days: Vec<Day> = day::day(&mut self.plant, &mut self.states, self.tz, date, self.until);
        let mut all: Vec<(DateTime<Utc>, usize, Envelope)> = Vec::new();
        for (b, events) in days.into_iter().enumerate() {
            let board = &self.plant.boards[b];
            for (at, event) in events {
                self.seqs[b] += 1;
                let mut env = Envelope::new(&board.id, self.seqs[b], at, true, &event)
                    .in_incarnation(&self.incarnations[b], 1);
                env.id = self.ids.uuid_at(at);
                all.push((at, b, env));
            }
        }
        all.sort_by_key(|(at, b, _)| (*at, *b));
        let inputs = all
            .into_iter()
            .map(|(at, b, env)| self.check(&self.plant.boards[b].area, &env, at))
            .collect::<Result<Vec<_>, _>>();
        Some(inputs.map(|i| (date, i)))
    }

    /// The envelope as ingest would take it off its topic.
    fn check(&self, area: &str, env: &Envelope, at: DateTime<Utc>) -> Result<Input, GenerateError> {
        let topic = BoardTopics::new(&self.site, area, &env.board).event(&env.kind);
        let mut a = validate(&self.site, &topic, env.to_json().as_bytes(), self.max_bytes)
            .map_err(|r: Reject| GenerateError::Invalid {
                reason: r.reason.key().to_owned(),
                detail: r.detail,
            })?;
        bound_time(&mut a.envelope, at);
        Ok(Input::Event {
            area: a.area,
            envelope: a.envelope,
        })
    }
}

/// Writes `plan`'s history into the site file of `config` and the plant's
/// roster into `roster`; `progress` hears after each day (days done, days
/// in all, events so far).
pub fn generate(
    config: &AggregatorConfig,
    roster: &Path,
    plan: &Plan,
    mut progress: impl FnMut(u32, u32, u64),
) -> Result<Generated, GenerateError> {
    let site = &config.site;
    let tz: Tz = site
        .timezone
        .parse()
        .map_err(|_| GenerateError::Timezone(site.timezone.clone()))?;
    let db = config.database_path();
    let mut store = Store::open(&db)?;
    if store.stats().stored > 0 {
        return Err(GenerateError::NotEmpty {
            path: db,
            events: store.stats().stored,
        });
    }
    let mut history = History::new(
        &site.id,
        tz,
        &site.site_key,
        plan,
        config.ingest.max_message_bytes,
    );
    if let Some(dir) = roster.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| GenerateError::Roster {
            path: roster.to_owned(),
            source,
        })?;
    }
    std::fs::write(roster, history.plant().roster_csv()).map_err(|source| {
        GenerateError::Roster {
            path: roster.to_owned(),
            source,
        }
    })?;
    let start = history
        .first_day()
        .and_hms_opt(0, 0, 0)
        .map_or(plan.until, |t| t.and_utc());
    store.backdate_coaching_start(start)?;
    let areas: std::collections::BTreeSet<&str> = history
        .plant()
        .boards
        .iter()
        .map(|b| b.area.as_str())
        .collect();
    let mut done = Generated {
        boards: plan.boards,
        areas: areas.len(),
        people: history.plant().people.len(),
        ..Generated::default()
    };
    let mut n = 0;
    while let Some(day) = history.next_day() {
        let (_, inputs) = day?;
        for i in &inputs {
            if let Input::Event { envelope, .. } = i {
                done.huddles += u64::from(envelope.kind == "huddle.started");
                done.observations += u64::from(envelope.kind == "observation.recorded");
            }
        }
        let mut rest = inputs.as_slice();
        while let Some(first) = rest.first() {
            let from = at(first);
            let len = rest
                .iter()
                .take_while(|i| at(i) < from + COMMIT_SPAN)
                .count()
                .max(1);
            let (batch, tail) = rest.split_at(len);
            let now = at(&batch[len - 1]) + Duration::milliseconds(40);
            done.events = store.apply(batch, now)?.stats.stored;
            done.commits += 1;
            rest = tail;
        }
        n += 1;
        progress(n, plan.days.max(1), done.events);
    }
    Ok(done)
}

fn at(i: &Input) -> DateTime<Utc> {
    match i {
        Input::Event { envelope, .. } => envelope.at,
        _ => DateTime::<Utc>::MIN_UTC,
    }
}

/// A one-line progress bar for a terminal: `[#####.....] 12/30 days, 123,456 events`.
pub fn progress_line(done: u32, total: u32, events: u64, started: Instant) -> String {
    let width = 30;
    let filled = (done as usize * width)
        .checked_div(total as usize)
        .unwrap_or(width);
    format!(
        "[{}{}] {done}/{total} days, {events} events, {:.0} s",
        "#".repeat(filled),
        ".".repeat(width - filled.min(width)),
        started.elapsed().as_secs_f64()
    )
}

/// The event kinds a generated history holds (all but the badge and
/// roster kinds, which a roster from the aggregator makes unnecessary).
pub fn kinds() -> Vec<&'static str> {
    Event::KINDS
        .into_iter()
        .filter(|k| {
            !matches!(
                *k,
                "attendance.unknown_badge" | "badge.enrolled" | "roster.applied"
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan {
            boards: 6,
            days: 9,
            seed: 42,
            until: DateTime::parse_from_rfc3339("2026-12-04T12:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
        }
    }

    fn events(plan: &Plan) -> Vec<String> {
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let mut h = History::new("plant1", tz, "k", plan, 65536);
        let mut out = Vec::new();
        while let Some(day) = h.next_day() {
            for i in day.unwrap().1 {
                if let Input::Event { envelope: e, .. } = i {
                    out.push(format!(
                        "{} {} {} {} {} {}",
                        e.board, e.seq, e.id, e.at, e.kind, e.data
                    ));
                }
            }
        }
        out
    }

    #[test]
    fn one_seed_one_history_every_kind_and_nothing_after_until() {
        let p = plan();
        let a = events(&p);
        assert_eq!(a, events(&p));
        assert_ne!(
            a,
            events(&Plan {
                seed: 43,
                ..p.clone()
            })
        );
        let text = a.join("\n");
        for k in kinds() {
            assert!(text.contains(&format!(" {k} ")), "no {k}");
        }
        // 9 days to Friday 4 December: 7 working days, 12 huddles a day.
        let huddles = a.iter().filter(|e| e.contains("\"agenda\"")).count();
        assert!((75..=84).contains(&huddles), "{huddles}");
    }

    #[test]
    fn writes_through_the_store_and_refuses_a_second_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = AggregatorConfig::from_toml(
            "[site]\nid = \"plant1\"\ntimezone = \"Europe/Berlin\"\nsite_key = \"demo-site-key-change-me\"\n",
            &dir.path().join("aggregator.toml"),
        )
        .unwrap();
        config.storage.data_dir = dir.path().join("data");
        let (db, roster) = (config.database_path(), dir.path().join("roster.csv"));
        let p = plan();
        let mut days = 0;
        let g = generate(&config, &roster, &p, |d, _, _| days = d).unwrap();
        assert_eq!(days, 9);
        assert_eq!(g.events as usize, events(&p).len());
        assert!(g.huddles > 70 && g.observations > 0, "{g:?}");
        assert!(crate::aggregator::roster::load(&roster).is_ok());
        let store = Store::open_existing(&db).unwrap();
        assert_eq!(store.stats().stored, g.events);
        let acks = store.acks(Utc::now());
        assert_eq!(acks.len(), 6);
        assert!(acks.iter().all(|(_, a)| a.incarnations[0].seq > 100));
        drop(store);
        let again = generate(&config, &roster, &p, |_, _, _| {});
        assert!(matches!(again, Err(GenerateError::NotEmpty { .. })));
    }
}
