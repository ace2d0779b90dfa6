//! Reviewing the KPIs: a hit, or a miss with its reason and note and
//! either an action or "none needed". A corrected review replaces the
//! earlier one and the action it created.

use chrono::{DateTime, Utc};

use super::{new_id, AppError, Board, Tone};
use crate::domain::{KpiOutcome, KpiReview, Refusal};
use crate::text::{Text, TextKey};
use crate::wire::event::{ActionCreated, Event, KpiReviewed};

impl Board {
    pub(super) fn save_kpi(
        &mut self,
        review: Result<KpiReview, Refusal>,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        let review = match review {
            Ok(r) => r,
            Err(r) => {
                self.refuse(r, now);
                return Ok(());
            }
        };
        let Some(huddle) = &self.huddle else {
            return Ok(());
        };
        if !self.config.huddle.kpis.iter().any(|k| k.key == review.kpi) {
            return Ok(());
        }
        let huddle_id = huddle.id.clone();
        let (hit, reason, note, action, none_needed) = match &review.outcome {
            KpiOutcome::Hit => (true, String::new(), String::new(), None, false),
            KpiOutcome::Missed {
                reason,
                note,
                action,
            } => (
                false,
                reason.clone(),
                note.clone(),
                action.clone(),
                action.is_none(),
            ),
        };
        let action_id = action.as_ref().map(|_| new_id());
        let reviewed = KpiReviewed {
            huddle_id: huddle_id.clone(),
            kpi: review.kpi.clone(),
            status: if hit { "hit" } else { "missed" }.into(),
            actual: review.actual.clone(),
            reason: reason.clone(),
            note: note.clone(),
            action_id: action_id.clone(),
            none_needed,
        };
        let replaced_action = self.store.kpi_review_action(&huddle_id, &review.kpi)?;
        let source = format!("kpi:{}", review.kpi);
        self.store.transact(now, |tx| {
            if let Some(old) = &replaced_action {
                // A corrected review replaces its earlier action.
                tx.delete_replaced_action(old, &huddle_id)?;
            }
            tx.save_kpi_review(&reviewed)?;
            if let (Some(a), Some(id)) = (&action, &action_id) {
                tx.insert_action(id, &huddle_id, a, &source)?;
            }
            tx.emit(&Event::KpiReviewed(reviewed.clone()))?;
            if let (Some(a), Some(id)) = (&action, &action_id) {
                tx.emit(&Event::ActionCreated(ActionCreated {
                    action_id: id.clone(),
                    huddle_id: huddle_id.clone(),
                    what: a.what.clone(),
                    owner: a.owner.clone(),
                    due: a.due,
                    source: source.clone(),
                }))?;
            }
            Ok::<_, AppError>(())
        })?;
        if let Some(h) = self.huddle.as_mut() {
            h.kpis.insert(review.kpi.clone(), hit);
            h.actions_created =
                h.actions_created + action.is_some() as u32 - replaced_action.is_some() as u32;
        }
        self.error = None;
        let name = self.kpi_name(&review.kpi);
        let key = if hit {
            TextKey::KpiHit
        } else {
            TextKey::KpiMissedSaved
        };
        self.notify(Text::with(key, name), Tone::Ok, now);
        Ok(())
    }

    pub(super) fn kpi_name(&self, key: &str) -> String {
        self.config
            .huddle
            .kpis
            .iter()
            .find(|k| k.key == key)
            .map(|k| k.name.clone())
            .unwrap_or_default()
    }
}
