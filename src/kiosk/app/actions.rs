//! Actions: a new one with its owner and due date, and the review of an
//! open one (done, a new date, blocked).

use chrono::{DateTime, NaiveDate, Utc};

use super::{new_id, AppError, Board, Tone};
use crate::domain::{NewAction, Refusal};
use crate::text::{Text, TextKey};
use crate::wire::event::{ActionCreated, ActionUpdated, Event};

impl Board {
    pub(super) fn add_action(
        &mut self,
        action: NewAction,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        let Some(huddle) = &self.huddle else {
            return Ok(());
        };
        let huddle_id = huddle.id.clone();
        let id = new_id();
        let event = Event::ActionCreated(ActionCreated {
            action_id: id.clone(),
            huddle_id: huddle_id.clone(),
            what: action.what.clone(),
            owner: action.owner.clone(),
            due: action.due,
            source: "new".into(),
        });
        self.store.transact(now, |tx| {
            tx.insert_action(&id, &huddle_id, &action, "new")?;
            tx.emit(&event).map(|_| ())
        })?;
        if let Some(h) = self.huddle.as_mut() {
            h.actions_created += 1;
        }
        self.error = None;
        self.notify(
            Text::with(TextKey::ActionAdded, &action.what),
            Tone::Ok,
            now,
        );
        Ok(())
    }

    pub(super) fn update_action(
        &mut self,
        id: &str,
        status: &str,
        due: Option<NaiveDate>,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        let Some(huddle) = &self.huddle else {
            return Ok(());
        };
        if status == "rescheduled" && due.is_none() {
            self.refuse(Refusal::PickNewDate, now);
            return Ok(());
        }
        let huddle_id = huddle.id.clone();
        let Some(old) = self.store.action_state(id)? else {
            return Ok(());
        };
        let old_status = old.status;
        let due = due.or(old.due).unwrap_or_else(|| self.today(now));
        let event = Event::ActionUpdated(ActionUpdated {
            action_id: id.to_owned(),
            huddle_id: huddle_id.clone(),
            status: status.to_owned(),
            due,
        });
        self.store.transact(now, |tx| {
            let delta = (status == "done") as i64 - (old_status == "done") as i64;
            tx.update_action(id, status, due, &huddle_id, delta)?;
            tx.emit(&event).map(|_| ())
        })?;
        if let Some(h) = self.huddle.as_mut() {
            h.actions_closed = (h.actions_closed as i64 + (status == "done") as i64
                - (old_status == "done") as i64) as u32;
        }
        self.error = None;
        Ok(())
    }
}
