//! What the coaching figures read of an observation ([`Scored`]), and the
//! compact form the coaching thread keeps of a year of them
//! ([`CompactObservation`]). Pure: no SQLite, no clock.
//!
//! The rules ([`super::rules`]) compute from any [`Scored`]: the full
//! [`Observation`] (the exports, the tests) or the compact one (the
//! thread's [`Summary`](super::summary::Summary)), and give the same
//! figures for both: `tests/it/history.rs` compares the reports.
//!
//! Design: the decoded payload cost about 1.2 kB an observation in memory
//! (a `String` per id and per rubric behaviour, nine `BehaviourScore`s),
//! 75 MB a year at 500 boards, kept for the aggregator's whole life. The
//! compact form is about a hundred bytes: people and boards shared
//! ([`Names`]), the scores as bytes in rubric order, the focus point as
//! its rubric index, no texts.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::rules::Observation;
use crate::domain::{mean_score, ObservationLevel, ObservationRecorded, COACHING, FACILITATION};

/// What the figures read of one observation.
pub trait Scored {
    /// When it counts.
    fn at(&self) -> DateTime<Utc>;
    /// The board it was recorded at.
    fn board(&self) -> &str;
    /// Facilitation or coaching.
    fn level(&self) -> ObservationLevel;
    /// The learner's person id.
    fn learner(&self) -> &str;
    /// The coach's person id.
    fn observer(&self) -> &str;
    /// The mean rubric score, `None` when nothing was rated.
    fn score(&self) -> Option<f64>;
    /// The score that `next` (the same learner's next observation at
    /// this level) gives this observation's focus point, if it scored it.
    fn focus_score_in(&self, next: &Self) -> Option<u8>;
    /// The learner's rating, once acknowledged.
    fn helpfulness(&self) -> Option<u8>;
}

impl Scored for Observation {
    fn at(&self) -> DateTime<Utc> {
        self.at
    }
    fn board(&self) -> &str {
        &self.board
    }
    fn level(&self) -> ObservationLevel {
        self.recorded.level
    }
    fn learner(&self) -> &str {
        &self.recorded.learner
    }
    fn observer(&self) -> &str {
        &self.recorded.observer
    }
    fn score(&self) -> Option<f64> {
        Observation::score(self)
    }
    fn focus_score_in(&self, next: &Self) -> Option<u8> {
        next.score_of(&self.recorded.focus.behaviour)
    }
    fn helpfulness(&self) -> Option<u8> {
        self.helpfulness
    }
}

/// The longest rubric.
const RUBRIC_MAX: usize = if FACILITATION.len() > COACHING.len() {
    FACILITATION.len()
} else {
    COACHING.len()
};

/// One observation as the coaching thread keeps it: what [`Scored`] reads
/// and where it sorts, nothing else.
#[derive(Debug, Clone, PartialEq)]
pub struct CompactObservation {
    /// When it counts.
    pub at: DateTime<Utc>,
    /// The board (shared).
    pub board: Arc<str>,
    /// The `observation.recorded` event's seq.
    pub seq: u64,
    /// The learner (shared).
    pub learner: Arc<str>,
    /// The coach (shared).
    pub observer: Arc<str>,
    /// The mean rubric score, as [`mean_score`] gives it.
    pub score: Option<f64>,
    /// The first score of each behaviour of the level's rubric, in rubric
    /// order; 0 where the behaviour was not scored.
    pub scores: [u8; RUBRIC_MAX],
    /// The focus point's index in the rubric (`None`: not a behaviour of
    /// the rubric, which no observation scores).
    pub focus: Option<u8>,
    /// Facilitation or coaching.
    pub level: ObservationLevel,
    /// The learner's rating, once acknowledged.
    pub helpfulness: Option<u8>,
}

impl CompactObservation {
    /// The compact form of a recording that passed the rules' check (its
    /// behaviours are of its level's rubric; others are not kept).
    pub fn new(
        at: DateTime<Utc>,
        board: &str,
        seq: u64,
        r: &ObservationRecorded,
        names: &mut Names,
    ) -> CompactObservation {
        let rubric = r.level.behaviours();
        let index = |b: &str| rubric.iter().position(|k| *k == b);
        let mut scores = [0; RUBRIC_MAX];
        for s in &r.scores {
            if let Some(i) = index(&s.behaviour) {
                if scores[i] == 0 {
                    scores[i] = s.score;
                }
            }
        }
        CompactObservation {
            at,
            board: names.get(board),
            seq,
            learner: names.get(&r.learner),
            observer: names.get(&r.observer),
            score: mean_score(&r.scores),
            scores,
            focus: index(&r.focus.behaviour).map(|i| i as u8),
            level: r.level,
            helpfulness: None,
        }
    }
}

impl From<&Observation> for CompactObservation {
    fn from(o: &Observation) -> Self {
        let mut c =
            CompactObservation::new(o.at, &o.board, o.seq, &o.recorded, &mut Names::default());
        c.helpfulness = o.helpfulness;
        c
    }
}

impl Scored for CompactObservation {
    fn at(&self) -> DateTime<Utc> {
        self.at
    }
    fn board(&self) -> &str {
        &self.board
    }
    fn level(&self) -> ObservationLevel {
        self.level
    }
    fn learner(&self) -> &str {
        &self.learner
    }
    fn observer(&self) -> &str {
        &self.observer
    }
    fn score(&self) -> Option<f64> {
        self.score
    }
    fn focus_score_in(&self, next: &Self) -> Option<u8> {
        let score = next.scores[usize::from(self.focus?)];
        (score > 0).then_some(score)
    }
    fn helpfulness(&self) -> Option<u8> {
        self.helpfulness
    }
}

/// The people and boards named so far, each kept once: a site's few
/// thousand names, however many observations name them.
#[derive(Debug, Default)]
pub struct Names(HashSet<Arc<str>>);

impl Names {
    /// The shared copy of `name`.
    pub fn get(&mut self, name: &str) -> Arc<str> {
        if let Some(n) = self.0.get(name) {
            return n.clone();
        }
        let n: Arc<str> = name.into();
        self.0.insert(n.clone());
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{BehaviourScore, Pick, SelfView};
    use chrono::{NaiveDate, TimeZone};

    fn observation(scores: &[(&str, u8)], focus: &str) -> Observation {
        Observation {
            board: "b1".into(),
            seq: 7,
            at: Utc.with_ymd_and_hms(2026, 11, 28, 6, 0, 0).unwrap(),
            recorded: ObservationRecorded {
                observation_id: "o1".into(),
                level: ObservationLevel::Facilitation,
                observer: "sv1".into(),
                learner: "tl1".into(),
                huddle_id: None,
                self_view: SelfView::SoSo,
                scores: scores
                    .iter()
                    .map(|(b, s)| BehaviourScore {
                        behaviour: (*b).into(),
                        score: *s,
                    })
                    .collect(),
                strength: Pick {
                    behaviour: "escalated".into(),
                    note: "a note".into(),
                },
                focus: Pick {
                    behaviour: focus.into(),
                    note: String::new(),
                },
                trigger: "at the start".into(),
                reobserve_on: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
            },
            helpfulness: Some(4),
            acknowledged_at: None,
        }
    }

    /// Every figure the rules read is the same in both forms, including a
    /// behaviour scored twice (the first counts) and a focus point that
    /// is not in the rubric.
    #[test]
    fn the_compact_form_reads_as_the_full_one() {
        let full = [
            observation(&[("escalated", 2), ("misses_owned", 4)], "misses_owned"),
            observation(&[("misses_owned", 1), ("misses_owned", 4)], "escalated"),
            observation(&[], "not_a_behaviour"),
            observation(&[("escalated", 3)], "misses_owned"),
        ];
        let compact: Vec<CompactObservation> = full.iter().map(Into::into).collect();
        for (f, c) in full.iter().zip(&compact) {
            assert_eq!(Scored::score(f), c.score());
            assert_eq!(
                (
                    f.at(),
                    f.board(),
                    f.level(),
                    f.learner(),
                    f.observer(),
                    Scored::helpfulness(f)
                ),
                (
                    c.at(),
                    c.board(),
                    c.level(),
                    c.learner(),
                    c.observer(),
                    c.helpfulness()
                )
            );
            for (g, d) in full.iter().zip(&compact) {
                assert_eq!(f.focus_score_in(g), c.focus_score_in(d));
            }
        }
        assert_eq!(compact[0].focus_score_in(&compact[1]), Some(1));
        assert_eq!(compact[1].focus_score_in(&compact[3]), Some(3));
        assert_eq!(compact[0].focus_score_in(&compact[3]), None);
        assert!(std::mem::size_of::<CompactObservation>() <= 112);
    }

    #[test]
    fn names_are_shared() {
        let mut names = Names::default();
        let a = names.get("tl1");
        let b = names.get("tl1");
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &names.get("tl2")));
    }
}
