//! The huddle's flow: a badge tap (arrival, start, the coaching menu or
//! an unknown badge), the team leader's badge authorising a start or a
//! close, attendance, the agenda steps, and enrolling an unknown badge.

use chrono::{DateTime, Utc};

use super::{new_id, AppError, Board, Pending, Screen, Tone};
use crate::domain::{
    classify_tap, may_close, may_enrol, may_start, Arrival, BadgeHash, Huddle, Person, Step,
    TapKind,
};
use crate::text::{Text, TextKey};
use crate::wire::event::{
    AttendanceTapped, BadgeEnrolled, Event, HuddleAdvanced, HuddleClosed, HuddleStarted,
    StartTrigger, TapVia, UnknownBadge,
};

impl Board {
    pub(super) fn badge(&mut self, hash: BadgeHash, now: DateTime<Utc>) -> Result<(), AppError> {
        let Some(person) = self.roster.by_badge(&hash).cloned() else {
            if self.flow.is_some() {
                self.flow_unknown_badge(now);
                return Ok(());
            }
            if self.pending.is_some() {
                self.notify(TextKey::NotEnrolledCannotConfirm, Tone::Error, now);
                return Ok(());
            }
            let huddle_id = self.huddle.as_ref().map(|h| h.id.clone());
            let event = Event::UnknownBadge(UnknownBadge {
                badge_hash: hash.clone(),
                huddle_id,
            });
            self.store.transact(now, |tx| tx.emit(&event).map(|_| ()))?;
            self.unknown_badge = Some(hash);
            self.go(Screen::UnknownBadge, now);
            return Ok(());
        };
        if self.flow.is_some() {
            return self.flow_badge(&person, now);
        }
        if let Some((pending, _)) = self.pending.clone() {
            return self.authorise(pending, &person, now);
        }
        // A coach's tap does what it always did, then opens the coaching menu.
        if self.huddle.is_some() {
            self.attend(&person, TapVia::Badge, now)?;
            self.open_menu(&person, now);
            return Ok(());
        }
        let coach = !crate::domain::levels_for(&person).is_empty();
        let recent = self
            .last_taps
            .get(&person.id)
            .is_some_and(|t| now - *t <= self.duplicate_window());
        if recent && coach {
            self.open_menu(&person, now);
            return Ok(());
        }
        if recent {
            self.notify(
                Text::with(TextKey::AlreadyHere, &person.name),
                Tone::Info,
                now,
            );
            return Ok(());
        }
        let slot = self.schedule.open_slot(now);
        if person.role.may_run_huddle() {
            return self.start(&person, StartTrigger::TeamLeader, now);
        }
        match slot {
            Some(slot) if !self.store.slot_held(slot.at)? => {
                self.start(&person, StartTrigger::FirstTap, now)?;
                self.open_menu(&person, now);
                Ok(())
            }
            _ if coach => {
                self.open_menu(&person, now);
                Ok(())
            }
            _ => {
                let text = match self.schedule.next_slot(now) {
                    Some(next) => Text::with(
                        TextKey::NoHuddleNowNext,
                        next.at
                            .with_timezone(&self.schedule.tz())
                            .format("%H:%M")
                            .to_string(),
                    ),
                    None => Text::new(TextKey::NoHuddleNow),
                };
                self.notify(text, Tone::Info, now);
                Ok(())
            }
        }
    }

    pub(super) fn authorise(
        &mut self,
        pending: Pending,
        person: &Person,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        let allowed = match &pending {
            Pending::Start => may_start(person),
            Pending::Close => may_close(person),
            Pending::Enrol { .. } => may_enrol(person),
        };
        if let Err(refusal) = allowed {
            self.refuse(refusal, now);
            return Ok(());
        }
        self.pending = None;
        match pending {
            Pending::Start => self.start(person, StartTrigger::TeamLeader, now),
            Pending::Close => self.close(person, now),
            Pending::Enrol { person_id } => self.enrol(&person_id, person, now),
        }
    }

    pub(super) fn start(
        &mut self,
        by: &Person,
        trigger: StartTrigger,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        let slot = self.schedule.open_slot(now);
        let due = slot.map(|s| s.at).unwrap_or(now);
        let huddle = Huddle::new(new_id(), due, now);
        let started = Event::HuddleStarted(HuddleStarted {
            huddle_id: huddle.id.clone(),
            scheduled_at: slot.map(|s| s.at),
            slot: slot.map(|s| s.local.format("%H:%M").to_string()),
            started_by: by.id.clone(),
            trigger,
            target_minutes: self.config.huddle.target_minutes,
            agenda: self.agenda.iter().map(|s| s.key().to_owned()).collect(),
        });
        let late = self.schedule.is_late(due, now);
        let tapped = Event::AttendanceTapped(AttendanceTapped {
            huddle_id: huddle.id.clone(),
            person_id: by.id.clone(),
            via: TapVia::Badge,
            late,
        });
        self.store.transact(now, |tx| {
            tx.insert_huddle(&huddle.id, due, slot.map(|s| s.at), &by.id)?;
            tx.insert_attendance(&huddle.id, &by.id, late, TapVia::Badge)?;
            tx.emit(&started)?;
            tx.emit(&tapped)
        })?;
        let mut huddle = huddle;
        huddle
            .attendance
            .insert(by.id.clone(), Arrival { at: now, late });
        self.huddle = Some(huddle);
        self.last_taps.insert(by.id.clone(), now);
        self.go(Screen::Step(self.agenda[0]), now);
        self.notify(Text::with(TextKey::HuddleStarted, &by.name), Tone::Ok, now);
        Ok(())
    }

    pub(super) fn tap_name(&mut self, person_id: &str, now: DateTime<Utc>) -> Result<(), AppError> {
        let Some(person) = self.roster.person(person_id).cloned() else {
            return Ok(());
        };
        if self.huddle.is_none() {
            self.notify(TextKey::StartFirst, Tone::Info, now);
            return Ok(());
        }
        self.attend(&person, TapVia::Name, now)
    }

    pub(super) fn attend(
        &mut self,
        person: &Person,
        via: TapVia,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        let Some(huddle) = &self.huddle else {
            return Ok(());
        };
        let present = huddle.attendance.contains_key(&person.id);
        let last = self.last_taps.get(&person.id).copied();
        match classify_tap(
            &self.schedule,
            huddle.due,
            present,
            last,
            self.duplicate_window(),
            now,
        ) {
            TapKind::AlreadyHere => {
                self.notify(
                    Text::with(TextKey::AlreadyHere, &person.name),
                    Tone::Info,
                    now,
                );
            }
            TapKind::Arrival { late } => {
                let huddle_id = huddle.id.clone();
                let event = Event::AttendanceTapped(AttendanceTapped {
                    huddle_id: huddle_id.clone(),
                    person_id: person.id.clone(),
                    via,
                    late,
                });
                self.store.transact(now, |tx| {
                    tx.insert_attendance(&huddle_id, &person.id, late, via)?;
                    tx.emit(&event).map(|_| ())
                })?;
                if let Some(h) = self.huddle.as_mut() {
                    h.attendance
                        .insert(person.id.clone(), Arrival { at: now, late });
                }
                self.last_taps.insert(person.id.clone(), now);
                let key = if late {
                    TextKey::WelcomeLate
                } else {
                    TextKey::Welcome
                };
                let text = Text::with(key, &person.name);
                let tone = if late { Tone::Warn } else { Tone::Ok };
                self.notify_person(text, tone, now, &person.id);
            }
        }
        Ok(())
    }

    pub(super) fn advance(&mut self, by: i32, now: DateTime<Utc>) -> Result<(), AppError> {
        let Some(huddle) = &self.huddle else {
            return Ok(());
        };
        let last = self.agenda.len();
        let step = (huddle.step as i64 + by as i64).clamp(0, last as i64) as usize;
        if step == huddle.step {
            return Ok(());
        }
        let key = self.agenda.get(step).copied().unwrap_or(Step::Close);
        let id = huddle.id.clone();
        let event = Event::HuddleAdvanced(HuddleAdvanced {
            huddle_id: id.clone(),
            step: key.key().into(),
            index: step,
        });
        self.store.transact(now, |tx| {
            tx.set_step(&id, step)?;
            tx.emit(&event).map(|_| ())
        })?;
        if let Some(h) = self.huddle.as_mut() {
            h.step = step;
        }
        self.go(Screen::Step(key), now);
        Ok(())
    }

    pub(super) fn close(&mut self, by: &Person, now: DateTime<Utc>) -> Result<(), AppError> {
        let Some(huddle) = &self.huddle else {
            return Ok(());
        };
        let mut closed = huddle.clone();
        closed.closed_at = Some(now);
        let summary = self.summary_of(&closed, now);
        let event = Event::HuddleClosed(HuddleClosed {
            huddle_id: closed.id.clone(),
            closed_by: by.id.clone(),
            summary,
        });
        self.store.transact(now, |tx| {
            tx.close_huddle(&closed.id, &by.id)?;
            tx.emit(&event).map(|_| ())
        })?;
        self.huddle = None;
        self.closed = Some(closed);
        self.go(Screen::Summary, now);
        self.notify(TextKey::HuddleClosed, Tone::Ok, now);
        Ok(())
    }

    pub(super) fn enrol(
        &mut self,
        person_id: &str,
        by: &Person,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        let Some(hash) = self.unknown_badge.clone() else {
            return Ok(());
        };
        let Some(person) = self.roster.person(person_id).cloned() else {
            return Ok(());
        };
        let event = Event::BadgeEnrolled(BadgeEnrolled {
            person_id: person.id.clone(),
            badge_hash: hash.clone(),
            enrolled_by: by.id.clone(),
        });
        self.store.transact(now, |tx| {
            tx.enrol_badge(&hash, &person.id, &by.id)?;
            tx.emit(&event).map(|_| ())
        })?;
        self.roster.enrol(hash, &person.id);
        self.unknown_badge = None;
        let screen = self.huddle_screen();
        self.go(screen, now);
        self.notify(
            Text::with(TextKey::BadgeEnrolled, &person.name),
            Tone::Ok,
            now,
        );
        // The enrolled person was tapping in: count them, as a second action.
        if self.huddle.is_some() {
            self.attend(&person, TapVia::Badge, now)?;
        }
        Ok(())
    }
}
