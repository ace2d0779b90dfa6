//! `/metrics`: the aggregator's figures for a plant's monitoring
//! (Prometheus, or anything that reads OpenMetrics text), served by the
//! dashboard's web server with the same token rules as its API.
//!
//! Design: the figures are gathered when scraped, from what the
//! aggregator already keeps, so nothing on the ingest path does extra
//! work for them:
//! - the counters (events stored, duplicates, rejected by reason,
//!   integrity alerts) and every board's and the site's status from the
//!   live [`Hub`], i.e. the payloads published on MQTT (the counters are
//!   published at most every second, so a scrape may be that late);
//! - the events stored above each board's ack (held back by a gap) from
//!   the site file, on a read-only connection (one short query of the
//!   `boards` table per scrape);
//! - commit latency from the store's own histogram
//!   ([`crate::aggregator::store::commit_seconds`]), observed at every
//!   group commit;
//! - the dashboard's open event streams from the web server.
//!
//! The text is encoded by the `prometheus-client` crate, never by hand.
//! Names and labels (all prefixed `huddle_`):
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `huddle_events_stored_total` | counter | |
//! | `huddle_events_duplicate_total` | counter | |
//! | `huddle_events_rejected_total` | counter | `reason` |
//! | `huddle_integrity_alerts_total` | counter | |
//! | `huddle_commit_seconds` | histogram | |
//! | `huddle_boards` | gauge | |
//! | `huddle_boards_online` | gauge | |
//! | `huddle_boards_by_state` | gauge | `state` |
//! | `huddle_board_unacked_events` | gauge | `area`, `board` |
//! | `huddle_board_since_event_seconds` | gauge | `area`, `board` |
//! | `huddle_alerts_open` | gauge | `kind` |
//! | `huddle_dashboard_streams` | gauge | |

use std::path::Path;
use std::sync::atomic::AtomicU64;

use chrono::{DateTime, Utc};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use super::live::Snapshot;
use super::store::{commit_seconds, open_read_only};
use crate::wire::topic::{parse_board_topic, SiteTopics};

/// The content type of the OpenMetrics text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(String, String)>;

/// What the web server adds to the hub's picture.
#[derive(Debug, Clone, Copy, Default)]
pub struct WebFigures {
    /// Event streams open (dashboard pages connected now).
    pub streams: u64,
}

/// The OpenMetrics text for site `site` from the hub's `snap`, the site
/// file at `database` (skipped, with a warning, if it cannot be read) and
/// the web server's figures, at `now`.
pub fn render(
    site: &str,
    snap: &Snapshot,
    database: &Path,
    web: WebFigures,
    now: DateTime<Utc>,
) -> String {
    let mut registry = Registry::default();
    let topics = SiteTopics::new(site);
    let json = |topic: &str| -> Option<serde_json::Value> {
        serde_json::from_str(snap.retained.get(topic)?).ok()
    };

    // The ingest's counters, as last published.
    let stats = json(&topics.aggregator_stats()).unwrap_or_default();
    let count = |key: &str| stats[key].as_u64().unwrap_or(0);
    for (name, help, key) in [
        ("huddle_events_stored", "Events stored.", "stored"),
        (
            "huddle_events_duplicate",
            "Exact re-sends of stored events (harmless).",
            "duplicates",
        ),
        (
            "huddle_integrity_alerts",
            "Messages that reused a stored (board, incarnation, seq) with other content.",
            "integrity_alerts",
        ),
    ] {
        let c = Counter::<u64>::default();
        c.inc_by(count(key));
        registry.register(name, help, c);
    }
    let rejected = Family::<Labels, Counter<u64>>::default();
    if let Some(reasons) = stats["rejected"].as_object() {
        for (reason, n) in reasons {
            rejected
                .get_or_create(&vec![("reason".into(), reason.clone())])
                .inc_by(n.as_u64().unwrap_or(0));
        }
    }
    registry.register(
        "huddle_events_rejected",
        "Messages rejected, by reason.",
        rejected,
    );
    registry.register_with_unit(
        "huddle_commit",
        "Time of one group commit of the site file (transaction begin to commit).",
        Unit::Seconds,
        commit_seconds().clone(),
    );

    // The boards, from their statuses.
    let (boards, online) = (Gauge::<i64>::default(), Gauge::<i64>::default());
    let silence = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    let mut offline = 0;
    for (topic, payload) in &snap.retained {
        let Some(t) = parse_board_topic(topic).filter(|t| t.rest == ["status"]) else {
            continue;
        };
        let Ok(status) = serde_json::from_str::<serde_json::Value>(payload) else {
            continue;
        };
        boards.inc();
        if status["online"] == true {
            online.inc();
        } else {
            offline += 1;
        }
        let last = status["last_event_at"]
            .as_str()
            .and_then(|s| s.parse::<DateTime<Utc>>().ok());
        if let Some(last) = last {
            let labels = vec![
                ("area".into(), t.area.into()),
                ("board".into(), t.board.into()),
            ];
            silence
                .get_or_create(&labels)
                .set((now - last).num_milliseconds().max(0) as f64 / 1000.0);
        }
    }
    registry.register("huddle_boards", "Boards known (with a status).", boards);
    registry.register(
        "huddle_boards_online",
        "Boards connected now (their retained online flag, within the silence limit).",
        online,
    );
    registry.register_with_unit(
        "huddle_board_since_event",
        "Time since the board's newest stored event.",
        Unit::Seconds,
        silence,
    );

    // The site's summary: states and what is open.
    let summary = json(&topics.status()).unwrap_or_default();
    let states = Family::<Labels, Gauge>::default();
    if let Some(s) = summary["states"].as_object() {
        for (state, n) in s {
            states
                .get_or_create(&vec![("state".into(), state.clone())])
                .set(n.as_i64().unwrap_or(0));
        }
    }
    registry.register("huddle_boards_by_state", "Boards by huddle state.", states);
    let open = Family::<Labels, Gauge>::default();
    for (kind, n) in [
        (
            "missed_huddle",
            summary["missed_today"].as_i64().unwrap_or(0),
        ),
        (
            "escalation_stale",
            summary["stale_escalations"].as_i64().unwrap_or(0),
        ),
        ("board_offline", offline),
        (
            "coaching_overdue",
            summary["coaching_overdue"].as_i64().unwrap_or(0),
        ),
    ] {
        open.get_or_create(&vec![("kind".into(), kind.into())])
            .set(n);
    }
    registry.register(
        "huddle_alerts_open",
        "Conditions open now: huddles missed today, stale escalations, boards offline, people overdue for coaching.",
        open,
    );

    registry.register(
        "huddle_board_unacked_events",
        "Events stored above the board's ack (held back by a gap in its seqs).",
        unacked(database),
    );
    let streams = Gauge::<i64>::default();
    streams.set(web.streams as i64);
    registry.register(
        "huddle_dashboard_streams",
        "Dashboard pages connected now (open event streams).",
        streams,
    );

    let mut text = String::new();
    // Design: writing into a String cannot fail.
    encode(&mut text, &registry).expect("OpenMetrics text encodes into a String");
    text
}

/// Per board, the events stored above its ack, from the site file.
fn unacked(database: &Path) -> Family<Labels, Gauge> {
    let family = Family::<Labels, Gauge>::default();
    type Row = (String, String, i64);
    let read = || -> Result<Vec<Row>, Box<dyn std::error::Error>> {
        let conn = open_read_only(database)?;
        let mut stmt = conn.prepare("SELECT area, board, max(last_seq - acked, 0) FROM boards")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    };
    match read() {
        Ok(rows) => {
            for (area, board, n) in rows {
                family
                    .get_or_create(&vec![("area".into(), area), ("board".into(), board)])
                    .set(n);
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "metrics: cannot read the boards' acks from the site file")
        }
    }
    family
}
