//! Leaders Coaching Leaders: the two observation rubrics and their vocabulary.
//!
//! Level 3: a supervisor observes a team leader facilitating a huddle and
//! rates each behaviour of [`FACILITATION`]. Level 4: a manager observes a
//! supervisor's coaching conversation and rates each behaviour of
//! [`COACHING`]. Both end the same way: the learner's own view first, one
//! strength and one focus point picked from the rubric's behaviours, a
//! trigger, a date to re-observe, and the learner's confirmation with a
//! helpfulness rating.
//!
//! Behaviours are named by stable snake_case keys: events, the aggregator
//! and exports use the keys; the screen shows them through `@tr()`.

use serde::{Deserialize, Serialize};

/// The level 3 rubric: how a team leader facilitates the huddle.
pub const FACILITATION: [&str; 9] = [
    "on_time_standard",
    "board_prepared",
    "story_from_data",
    "everyone_contributed",
    "misses_owned",
    "escalated",
    "parked_discussions",
    "experiment_advanced",
    "recognised_contributions",
];

/// The level 4 rubric: how a supervisor coaches ("coach the coach").
pub const COACHING: [&str; 8] = [
    "prepared",
    "observed_silently",
    "self_assessment_first",
    "asked_not_told",
    "facts_based",
    "one_focus_point",
    "agreed_reobservation",
    "checked_previous_focus",
];

/// Which observation: level 3 (facilitation) or level 4 (coaching).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ObservationLevel {
    /// A supervisor observes a team leader's huddle.
    Facilitation,
    /// A manager observes a supervisor's coaching.
    Coaching,
}

impl ObservationLevel {
    /// The cascade level number (3 or 4).
    pub fn number(self) -> u8 {
        match self {
            ObservationLevel::Facilitation => 3,
            ObservationLevel::Coaching => 4,
        }
    }

    /// The behaviour keys this level rates, in rubric order.
    pub fn behaviours(self) -> &'static [&'static str] {
        match self {
            ObservationLevel::Facilitation => &FACILITATION,
            ObservationLevel::Coaching => &COACHING,
        }
    }
}

/// The learner's own view, asked before the coach says anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SelfView {
    /// It went well.
    WentWell,
    /// So-so.
    SoSo,
    /// It went badly.
    Badly,
}

/// One behaviour's rating on the 1-4 scale: 1 not seen, 2 partly, 3 done,
/// 4 done and the team does it without prompting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BehaviourScore {
    /// A key of the level's rubric.
    pub behaviour: String,
    /// 1 to 4.
    pub score: u8,
}

/// A strength or focus point: one behaviour and an optional short note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Pick {
    /// A key of the level's rubric.
    pub behaviour: String,
    /// Optional short note (at most [`NOTE_MAX_CHARS`] characters).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// Longest note or trigger, in characters.
pub const NOTE_MAX_CHARS: usize = 120;

/// Mean of the rubric scores, or `None` when nothing was rated.
pub fn mean_score(scores: &[BehaviourScore]) -> Option<f64> {
    (!scores.is_empty())
        .then(|| scores.iter().map(|s| f64::from(s.score)).sum::<f64>() / scores.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rubrics_have_unique_keys() {
        for level in [ObservationLevel::Facilitation, ObservationLevel::Coaching] {
            let mut keys = level.behaviours().to_vec();
            keys.sort_unstable();
            keys.dedup();
            assert_eq!(keys.len(), level.behaviours().len());
        }
    }

    #[test]
    fn mean_of_scores() {
        let s = |score| BehaviourScore {
            behaviour: "prepared".into(),
            score,
        };
        assert_eq!(mean_score(&[]), None);
        assert_eq!(mean_score(&[s(2), s(3)]), Some(2.5));
    }
}
