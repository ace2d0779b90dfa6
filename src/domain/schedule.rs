//! When huddles happen: local start times in the site's time zone, the
//! window in which a huddle may start, lateness and missed huddles.
//!
//! Schedules are local (people say "06:45"); events carry UTC. Night shifts
//! cross midnight and daylight-saving changes happen twice a year, so every
//! slot is resolved against the real calendar day it falls on.

use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// One scheduled huddle on one day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// The local start time as scheduled.
    pub local: NaiveDateTime,
    /// The same instant in UTC.
    pub at: DateTime<Utc>,
}

/// A board's huddle schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    times: Vec<NaiveTime>,
    tz: Tz,
    opens_before: Duration,
    window: Duration,
    grace: Duration,
}

impl Schedule {
    /// `times` local start times in `tz`; a slot may be started from
    /// `opens_before` ahead of it until `window` after it; arrivals (and
    /// starts) later than `grace` after it are late.
    pub fn new(
        times: Vec<NaiveTime>,
        tz: Tz,
        opens_before: Duration,
        window: Duration,
        grace: Duration,
    ) -> Self {
        let mut times = times;
        times.sort();
        times.dedup();
        Schedule {
            times,
            tz,
            opens_before,
            window,
            grace,
        }
    }

    /// The time zone.
    pub fn tz(&self) -> Tz {
        self.tz
    }

    /// The local start times, sorted.
    pub fn times(&self) -> &[NaiveTime] {
        &self.times
    }

    /// Grace after a slot's time.
    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// Slots on the local days around `now`, in order.
    fn slots_around(&self, now: DateTime<Utc>) -> Vec<Slot> {
        let today = now.with_timezone(&self.tz).date_naive();
        let mut slots = Vec::new();
        for offset in -1..=1 {
            let Some(day) = today.checked_add_signed(Duration::days(offset)) else {
                continue;
            };
            for t in &self.times {
                slots.push(self.slot_on(day, *t));
            }
        }
        slots.sort_by_key(|s| s.at);
        slots
    }

    /// Resolves a local start on a day. A time skipped by a DST change
    /// moves forward by the gap; a repeated time takes its first instant.
    pub fn slot_on(&self, day: NaiveDate, time: NaiveTime) -> Slot {
        let local = day.and_time(time);
        let at = match self.tz.from_local_datetime(&local) {
            LocalResult::Single(t) => t,
            LocalResult::Ambiguous(first, _) => first,
            LocalResult::None => {
                let mut probe = local;
                loop {
                    probe += Duration::minutes(15);
                    if let Some(t) = self.tz.from_local_datetime(&probe).earliest() {
                        break t;
                    }
                }
            }
        };
        Slot {
            local,
            at: at.with_timezone(&Utc),
        }
    }

    /// The slot whose start window (`opens_before` ahead until `window`
    /// after) contains `now`; the nearest one when windows overlap.
    pub fn open_slot(&self, now: DateTime<Utc>) -> Option<Slot> {
        self.slots_around(now)
            .into_iter()
            .filter(|s| now >= s.at - self.opens_before && now <= s.at + self.window)
            .min_by_key(|s| (now - s.at).num_seconds().abs())
    }

    /// The first slot starting after `now`.
    pub fn next_slot(&self, now: DateTime<Utc>) -> Option<Slot> {
        self.slots_around(now).into_iter().find(|s| s.at > now)
    }

    /// Whether an arrival at `arrived` is late for a huddle due at `due`.
    pub fn is_late(&self, due: DateTime<Utc>, arrived: DateTime<Utc>) -> bool {
        arrived > due + self.grace
    }

    /// Whether a slot is missed at `now`: not started within its grace.
    /// `started` is the start of the huddle held for this slot, if any.
    pub fn is_missed(
        &self,
        slot: &Slot,
        started: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> bool {
        let deadline = slot.at + self.grace;
        match started {
            Some(s) => s > deadline,
            None => now > deadline,
        }
    }
}

/// How a tap by a known person counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TapKind {
    /// A new arrival: record it.
    Arrival {
        /// After the huddle's time plus grace.
        late: bool,
    },
    /// Already recorded in this huddle, or tapped again within the
    /// duplicate window: not a new arrival.
    AlreadyHere,
}

/// Classifies a tap. `present` says whether the person is already in this
/// huddle's attendance; `last_tap` is their previous tap at this board.
pub fn classify_tap(
    schedule: &Schedule,
    due: DateTime<Utc>,
    present: bool,
    last_tap: Option<DateTime<Utc>>,
    duplicate_window: Duration,
    now: DateTime<Utc>,
) -> TapKind {
    let recent = last_tap.is_some_and(|t| now >= t && now - t <= duplicate_window);
    if present || recent {
        TapKind::AlreadyHere
    } else {
        TapKind::Arrival {
            late: schedule.is_late(due, now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hm(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    fn berlin(times: &[(u32, u32)]) -> Schedule {
        Schedule::new(
            times.iter().map(|&(h, m)| hm(h, m)).collect(),
            chrono_tz::Europe::Berlin,
            Duration::minutes(15),
            Duration::minutes(60),
            Duration::minutes(5),
        )
    }

    fn local(s: &Schedule, y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        s.tz()
            .with_ymd_and_hms(y, mo, d, h, mi, 0)
            .earliest()
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn window_opens_before_and_closes_after() {
        let s = berlin(&[(6, 45), (14, 45)]);
        assert!(s.open_slot(local(&s, 2026, 11, 28, 6, 29)).is_none());
        assert_eq!(
            s.open_slot(local(&s, 2026, 11, 28, 6, 30))
                .unwrap()
                .local
                .time(),
            hm(6, 45)
        );
        assert_eq!(
            s.open_slot(local(&s, 2026, 11, 28, 7, 45))
                .unwrap()
                .local
                .time(),
            hm(6, 45)
        );
        assert!(s.open_slot(local(&s, 2026, 11, 28, 7, 46)).is_none());
        assert_eq!(
            s.next_slot(local(&s, 2026, 11, 28, 7, 46))
                .unwrap()
                .local
                .time(),
            hm(14, 45)
        );
    }

    #[test]
    fn night_shift_crosses_midnight() {
        let s = berlin(&[(23, 50)]);
        let slot = s.open_slot(local(&s, 2026, 11, 29, 0, 20)).unwrap();
        assert_eq!(
            slot.local.date(),
            NaiveDate::from_ymd_opt(2026, 11, 28).unwrap()
        );
        assert!(s.is_late(slot.at, local(&s, 2026, 11, 28, 23, 56)));
        assert!(!s.is_late(slot.at, local(&s, 2026, 11, 28, 23, 55)));
    }

    #[test]
    fn daylight_saving_gap_moves_the_slot_forward() {
        // 2026-03-29 02:00 does not exist in Berlin (clocks jump to 03:00).
        let s = berlin(&[(2, 30)]);
        let slot = s.slot_on(NaiveDate::from_ymd_opt(2026, 3, 29).unwrap(), hm(2, 30));
        assert_eq!(slot.at, Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap());
        // The repeated hour in October takes its first instant (CEST).
        let slot = s.slot_on(NaiveDate::from_ymd_opt(2026, 10, 25).unwrap(), hm(2, 30));
        assert_eq!(
            slot.at,
            Utc.with_ymd_and_hms(2026, 10, 25, 0, 30, 0).unwrap()
        );
    }

    #[test]
    fn late_after_grace_not_at_it() {
        let s = berlin(&[(6, 45)]);
        let due = local(&s, 2026, 11, 28, 6, 45);
        let dup = Duration::minutes(2);
        let at = |m| local(&s, 2026, 11, 28, 6, m);
        assert_eq!(
            classify_tap(&s, due, false, None, dup, at(50)),
            TapKind::Arrival { late: false }
        );
        assert_eq!(
            classify_tap(&s, due, false, None, dup, at(51)),
            TapKind::Arrival { late: true }
        );
    }

    #[test]
    fn second_tap_within_window_is_already_here() {
        let s = berlin(&[(6, 45)]);
        let due = local(&s, 2026, 11, 28, 6, 45);
        let dup = Duration::minutes(2);
        let first = local(&s, 2026, 11, 28, 6, 40);
        // Within the window: not an arrival, even in a new huddle.
        assert_eq!(
            classify_tap(
                &s,
                due,
                false,
                Some(first),
                dup,
                first + Duration::seconds(119)
            ),
            TapKind::AlreadyHere
        );
        // After the window and not present: a new arrival.
        assert_eq!(
            classify_tap(
                &s,
                due,
                false,
                Some(first),
                dup,
                first + Duration::seconds(121)
            ),
            TapKind::Arrival { late: false }
        );
        // Present in this huddle: never a second arrival.
        assert_eq!(
            classify_tap(
                &s,
                due,
                true,
                Some(first),
                dup,
                first + Duration::minutes(30)
            ),
            TapKind::AlreadyHere
        );
    }

    #[test]
    fn missed_after_grace_and_not_before() {
        let s = berlin(&[(6, 45)]);
        let slot = s.open_slot(local(&s, 2026, 11, 28, 6, 45)).unwrap();
        assert!(!s.is_missed(&slot, None, local(&s, 2026, 11, 28, 6, 50)));
        assert!(s.is_missed(&slot, None, local(&s, 2026, 11, 28, 6, 51)));
        assert!(!s.is_missed(
            &slot,
            Some(local(&s, 2026, 11, 28, 6, 49)),
            local(&s, 2026, 11, 28, 9, 0)
        ));
    }
}
