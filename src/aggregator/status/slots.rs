//! A board's schedule as the live status reads it: its retained
//! `.../schedule` ([`ScheduleMessage`]) checked into a
//! [`BoardSchedule`], whose slots are resolved on their own calendar days
//! with the kiosk's own rules ([`crate::domain::Schedule`]) and cached
//! around `now`, since time zone arithmetic is most of an evaluation's
//! cost otherwise.

use chrono::{DateTime, Duration, NaiveTime, Utc};
use chrono_tz::Tz;

use crate::domain::{Schedule, Slot};
use crate::wire::payload::ScheduleMessage;

/// A board's schedule, checked.
#[derive(Debug, Clone)]
pub struct BoardSchedule {
    pub(super) schedule: Schedule,
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
    pub(super) fn prepare(&mut self, now: DateTime<Utc>) {
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
    pub(super) fn slots_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Slot> {
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

    pub(super) fn grace(&self) -> Duration {
        self.schedule.grace()
    }
}
