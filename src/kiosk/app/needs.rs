//! Resource needs (raised, perhaps escalated to the supervisor) and the
//! team's experiment (obstacle, expectation, next step, check date).

use chrono::{DateTime, Utc};

use super::{new_id, AppError, Board, Tone};
use crate::domain::{ExperimentInput, NeedInput};
use crate::text::TextKey;
use crate::wire::event::{Event, ExperimentUpdated, NeedRaised, NeedRef};

impl Board {
    pub(super) fn raise_need(
        &mut self,
        need: NeedInput,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        let Some(huddle) = &self.huddle else {
            return Ok(());
        };
        let huddle_id = huddle.id.clone();
        let id = new_id();
        let raised = Event::NeedRaised(NeedRaised {
            need_id: id.clone(),
            huddle_id: huddle_id.clone(),
            category: need.category.clone(),
            text: need.text.clone(),
            escalated: need.escalated,
        });
        self.store.transact(now, |tx| {
            tx.insert_need(&id, &huddle_id, &need)?;
            tx.emit(&raised)?;
            if need.escalated {
                tx.emit(&Event::NeedEscalated(NeedRef {
                    need_id: id.clone(),
                    by: None,
                }))?;
            }
            Ok::<_, AppError>(())
        })?;
        if let Some(h) = self.huddle.as_mut() {
            h.needs_raised += 1;
            h.needs_escalated += need.escalated as u32;
        }
        self.error = None;
        let text = if need.escalated {
            TextKey::NeedRaisedEscalated
        } else {
            TextKey::NeedRaised
        };
        self.notify(text, Tone::Ok, now);
        Ok(())
    }

    pub(super) fn save_experiment(
        &mut self,
        e: ExperimentInput,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        let Some(huddle) = &self.huddle else {
            return Ok(());
        };
        let huddle_id = huddle.id.clone();
        let event = Event::ExperimentUpdated(ExperimentUpdated {
            huddle_id: huddle_id.clone(),
            obstacle: e.obstacle.clone(),
            expectation: e.expectation.clone(),
            next_step: e.next_step.clone(),
            owner: e.owner.clone(),
            check_date: e.check_date,
        });
        self.store.transact(now, |tx| {
            tx.insert_experiment(&huddle_id, &e)?;
            tx.emit(&event).map(|_| ())
        })?;
        self.error = None;
        self.notify(TextKey::ExperimentSaved, Tone::Ok, now);
        Ok(())
    }
}
