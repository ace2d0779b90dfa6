//! The roster in use: the aggregator's latest for this board (stored),
//! else the config's, with the badges enrolled at this board on top.

use chrono::{DateTime, Utc};

use super::{AppError, Board};
use crate::domain::{hash_badge, BadgeHash, Person, Roster};
use crate::kiosk::config::KioskConfig;
use crate::kiosk::store::{Store, StoreError};
use crate::wire::event::{Event, RosterApplied};
use crate::wire::payload::RosterMessage;

impl Board {
    /// Applies the aggregator's roster if it is for this board and newer
    /// than the one in use: the people and their badge hashes replace the
    /// config's (enrolled badges still apply on top), stored with the
    /// `roster.applied` event in one transaction. Returns whether it did.
    pub(super) fn apply_roster(
        &mut self,
        message: RosterMessage,
        now: DateTime<Utc>,
    ) -> Result<bool, AppError> {
        if message.board != self.config.board.id {
            tracing::warn!(board = %message.board, "roster for another board ignored");
            return Ok(false);
        }
        if self.roster_issued.is_some_and(|t| message.issued_at <= t) {
            tracing::debug!(issued_at = %message.issued_at, "roster not newer than the one in use");
            return Ok(false);
        }
        let mut ids = std::collections::HashSet::new();
        if let Some(bad) = message
            .people
            .iter()
            .find(|p| p.id.trim().is_empty() || !ids.insert(p.id.as_str()))
        {
            tracing::warn!(person = %bad.id, "roster refused: empty or repeated person id");
            return Ok(false);
        }
        let badges: usize = message.people.iter().map(|p| p.badge_hashes.len()).sum();
        let event = Event::RosterApplied(RosterApplied {
            issued_at: message.issued_at,
            people: message.people.len(),
            badges,
        });
        self.store.transact(now, |tx| {
            tx.replace_roster(&message)?;
            tx.emit(&event).map(|_| ())
        })?;
        let (roster, issued) = build_roster(&self.config, &self.store)?;
        self.roster = roster;
        self.roster_issued = issued;
        tracing::info!(issued_at = %message.issued_at, people = message.people.len(), badges, "roster applied");
        Ok(true)
    }
}

/// The roster in use: the aggregator's latest (stored), else the config's;
/// badges enrolled at this board apply on top of either.
pub(super) fn build_roster(
    config: &KioskConfig,
    store: &Store,
) -> Result<(Roster, Option<DateTime<Utc>>), StoreError> {
    let (people, mut badges, issued) = match store.applied_roster()? {
        Some((issued, people, badges)) => (people, badges, Some(issued)),
        None => {
            let key = config.badge.site_key.as_bytes();
            let people: Vec<Person> = config
                .people
                .iter()
                .map(|p| Person {
                    id: p.id.clone(),
                    name: p.name.clone(),
                    role: p.role,
                })
                .collect();
            let mut badges: Vec<(BadgeHash, String)> = Vec::new();
            for p in &config.people {
                badges.extend(p.badges.iter().map(|n| (hash_badge(key, n), p.id.clone())));
                badges.extend(
                    p.badge_hashes
                        .iter()
                        .filter_map(|h| BadgeHash::parse(h))
                        .map(|h| (h, p.id.clone())),
                );
            }
            (people, badges, None)
        }
    };
    badges.extend(store.enrolled_badges()?);
    Ok((Roster::new(people, badges), issued))
}
