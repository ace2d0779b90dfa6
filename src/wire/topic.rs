//! Every MQTT topic of the project is built here, and parsed here.
//!
//! The tree (UNS style, ISA-95 levels; every level `[a-z0-9_-]`, checked
//! by the configuration):
//!
//! | topic | publisher | QoS / retained | payload |
//! |---|---|---|---|
//! | `huddle/v1/{site}/{area}/{board}/event/{kind}` | kiosk | 1 / no | [`crate::wire::event::Envelope`] |
//! | `huddle/v1/{site}/{area}/{board}/online` | kiosk (+ last will) | 1 / yes | `true` / `false` |
//! | `huddle/v1/{site}/{area}/{board}/schedule` | kiosk | 1 / yes | [`crate::wire::payload::ScheduleMessage`] |
//! | `huddle/v1/{site}/{area}/{board}/ack` | aggregator | 1 / yes | [`crate::wire::payload::Ack`] |
//! | `huddle/v1/{site}/{area}/{board}/roster` | aggregator | 1 / yes | [`crate::wire::payload::RosterMessage`] |
//! | `huddle/v1/{site}/{area}/{board}/status` | aggregator | 1 / yes | [`crate::wire::payload::BoardLive`] |
//! | `huddle/v1/{site}/status` | aggregator | 1 / yes | [`crate::wire::payload::SiteLive`] |
//! | `huddle/v1/{site}/coaching` | aggregator | 1 / yes | the coaching figures |
//! | `huddle/v1/{site}/alert/{kind}` | aggregator | 1 / no | [`crate::wire::payload::BoardAlert`]; `coaching_overdue` |
//!
//! The event kind is one topic level as it is (`attendance.tapped`): `.` is
//! a legal topic character.

/// The root of every topic, with the contract's version.
pub const ROOT: &str = "huddle/v1";

/// The alert kind (topic level) of overdue coaching.
pub const ALERT_COACHING_OVERDUE: &str = "coaching_overdue";

/// The topics of one board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardTopics {
    base: String,
}

impl BoardTopics {
    /// `huddle/v1/{site}/{area}/{board}`; the levels were validated by the config.
    pub fn new(site: &str, area: &str, board: &str) -> Self {
        BoardTopics {
            base: format!("{ROOT}/{site}/{area}/{board}"),
        }
    }

    /// The board's prefix.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Where an event of `kind` is published.
    pub fn event(&self, kind: &str) -> String {
        format!("{}/event/{kind}", self.base)
    }

    /// Retained `true`/`false`, with the last will.
    pub fn online(&self) -> String {
        format!("{}/online", self.base)
    }

    /// Retained schedule.
    pub fn schedule(&self) -> String {
        format!("{}/schedule", self.base)
    }

    /// Retained ack from the aggregator.
    pub fn ack(&self) -> String {
        format!("{}/ack", self.base)
    }

    /// Retained roster from the aggregator.
    pub fn roster(&self) -> String {
        format!("{}/roster", self.base)
    }

    /// Retained status from the aggregator.
    pub fn status(&self) -> String {
        format!("{}/status", self.base)
    }
}

/// The site-level topics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteTopics {
    site: String,
}

impl SiteTopics {
    /// For one site.
    pub fn new(site: &str) -> Self {
        SiteTopics {
            site: site.to_owned(),
        }
    }

    /// The aggregator's subscription to every board's events.
    pub fn all_events(&self) -> String {
        format!("{ROOT}/{}/+/+/event/+", self.site)
    }

    /// Every board's `online` topic.
    pub fn all_online(&self) -> String {
        format!("{ROOT}/{}/+/+/online", self.site)
    }

    /// Every board's `schedule` topic.
    pub fn all_schedules(&self) -> String {
        format!("{ROOT}/{}/+/+/schedule", self.site)
    }

    /// Site summary.
    pub fn status(&self) -> String {
        format!("{ROOT}/{}/status", self.site)
    }

    /// Coaching cadence and effectiveness.
    pub fn coaching(&self) -> String {
        format!("{ROOT}/{}/coaching", self.site)
    }

    /// The alert that someone became overdue for coaching.
    pub fn coaching_overdue_alert(&self) -> String {
        self.alert(ALERT_COACHING_OVERDUE)
    }

    /// An alert of one kind.
    pub fn alert(&self, kind: &str) -> String {
        format!("{ROOT}/{}/alert/{kind}", self.site)
    }

    /// The aggregator's own counters (rejected messages by reason, ...).
    pub fn aggregator_stats(&self) -> String {
        format!("{ROOT}/{}/aggregator/stats", self.site)
    }
}

/// A board's topic, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedBoardTopic<'a> {
    /// Site.
    pub site: &'a str,
    /// Area.
    pub area: &'a str,
    /// Board.
    pub board: &'a str,
    /// What follows the board: `["event", kind]`, `["online"]`, ...
    pub rest: Vec<&'a str>,
}

/// Parses `huddle/v1/{site}/{area}/{board}/...`; `None` for anything else.
pub fn parse_board_topic(topic: &str) -> Option<ParsedBoardTopic<'_>> {
    let rest = topic.strip_prefix(ROOT)?.strip_prefix('/')?;
    let mut levels = rest.split('/');
    let site = levels.next().filter(|l| !l.is_empty())?;
    let area = levels.next().filter(|l| !l.is_empty())?;
    let board = levels.next().filter(|l| !l.is_empty())?;
    let rest: Vec<&str> = levels.collect();
    if rest.is_empty() || rest.iter().any(|l| l.is_empty()) {
        return None;
    }
    Some(ParsedBoardTopic {
        site,
        area,
        board,
        rest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_parses_the_tree() {
        let t = BoardTopics::new("plant1", "assembly", "demo");
        assert_eq!(
            t.event("attendance.tapped"),
            "huddle/v1/plant1/assembly/demo/event/attendance.tapped"
        );
        assert_eq!(t.ack(), "huddle/v1/plant1/assembly/demo/ack");
        let topic = t.event("huddle.started");
        let p = parse_board_topic(&topic).unwrap();
        assert_eq!((p.site, p.area, p.board), ("plant1", "assembly", "demo"));
        assert_eq!(p.rest, vec!["event", "huddle.started"]);
        assert_eq!(
            SiteTopics::new("plant1").all_events(),
            "huddle/v1/plant1/+/+/event/+"
        );
        assert_eq!(
            SiteTopics::new("plant1").coaching_overdue_alert(),
            "huddle/v1/plant1/alert/coaching_overdue"
        );
        assert!(parse_board_topic("huddle/v1/plant1/assembly").is_none());
        assert!(parse_board_topic("huddle/v2/plant1/a/b/ack").is_none());
        assert!(parse_board_topic("huddle/v1/plant1/a/b/").is_none());
    }
}
