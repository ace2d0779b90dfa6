//! JSON Schemas of every payload on every topic, generated from the Rust
//! types that produce them, so that a plant engineer can build a Node-RED,
//! Grafana or Home Assistant view, or validate a payload, without reading
//! the code.
//!
//! The schemas are checked into `config/schemas/` (one file per payload,
//! draft 2020-12) and `tests/it/ingest/schemas.rs` fails when the files and the types
//! drift apart; `huddle-aggregator schemas --out config/schemas` writes
//! them again after a deliberate change. [`catalogue`] is also the topic
//! table of `config/schemas/README.md`.

use chrono::{DateTime, Utc};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::Value;

use crate::wire::event;
use crate::wire::payload;

/// One topic's payload.
#[derive(Debug, Clone)]
pub struct TopicSchema {
    /// File name under `config/schemas/`.
    pub file: String,
    /// The topic, with `{site}`, `{area}`, `{board}` placeholders.
    pub topic: String,
    /// Who publishes it.
    pub publisher: &'static str,
    /// Retained or not (every topic is QoS 1).
    pub retained: bool,
    /// The schema.
    pub schema: Value,
}

/// One event on `.../event/{kind}`: the envelope and the kind's payload.
// (A schema only: the code reads `event::Envelope`, then `event::Event`.)
#[derive(JsonSchema)]
#[allow(dead_code)]
struct EventMessage<T> {
    /// Envelope schema version: 2 (1 from boards not yet upgraded, without
    /// `incarnation` and `base`).
    schema: u32,
    /// Globally unique id (UUID v7).
    id: uuid::Uuid,
    /// The board that wrote it (equals the topic's board level).
    board: String,
    /// The board file's incarnation: a random id made when the file was
    /// created, and again when the file and the aggregator disagreed
    /// (schema 2, required there).
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[0-9A-Za-z-]+$"))]
    incarnation: Option<String>,
    /// The first `seq` of this incarnation (schema 2; absent means 1).
    #[schemars(range(min = 1))]
    base: Option<u64>,
    /// Sequence number within the board's incarnation, gap-free from `base`.
    #[schemars(range(min = 1))]
    seq: u64,
    /// UTC wall time, RFC 3339 with milliseconds.
    at: DateTime<Utc>,
    /// Whether the board's clock was synchronised (NTP) when it wrote this.
    clock_synced: bool,
    /// The kind (equals the topic's last level).
    kind: String,
    /// The kind's payload.
    data: T,
}

fn generator() -> SchemaGenerator {
    schemars::generate::SchemaSettings::draft2020_12().into_generator()
}

fn schema_of<T: JsonSchema>(title: &str) -> Value {
    let mut schema: Schema = generator().into_root_schema_for::<T>();
    schema.insert("title".into(), Value::String(title.into()));
    schema.to_value()
}

/// The schema of one event kind's message, with `kind` fixed.
fn event_schema<T: JsonSchema>(kind: &str) -> Value {
    let mut v = schema_of::<EventMessage<T>>(&format!("event {kind}"));
    if let Some(props) = v.get_mut("properties").and_then(Value::as_object_mut) {
        props.insert("kind".into(), serde_json::json!({ "const": kind }));
        props.insert(
            "schema".into(),
            serde_json::json!({ "enum": [event::LEGACY_SCHEMA_VERSION, event::SCHEMA_VERSION] }),
        );
        for optional in ["incarnation", "base"] {
            if let Some(p) = props.get_mut(optional).and_then(Value::as_object_mut) {
                p.remove("type");
                p.insert(
                    "type".into(),
                    serde_json::json!(if optional == "base" {
                        "integer"
                    } else {
                        "string"
                    }),
                );
            }
        }
    }
    if let Some(obj) = v.as_object_mut() {
        // Schema 2 names its incarnation; schema 1 has none.
        obj.insert(
            "if".into(),
            serde_json::json!({ "properties": { "schema": { "const": event::SCHEMA_VERSION } } }),
        );
        obj.insert(
            "then".into(),
            serde_json::json!({ "required": ["incarnation"] }),
        );
        obj.insert(
            "else".into(),
            serde_json::json!({ "not": { "anyOf": [ { "required": ["incarnation"] }, { "required": ["base"] } ] } }),
        );
    }
    v
}

/// Every event kind's schema, in [`Event::KINDS`] order.
fn event_schemas() -> Vec<(&'static str, Value)> {
    use event::*;
    let all: Vec<(&'static str, Value)> = vec![
        (
            "huddle.started",
            event_schema::<HuddleStarted>("huddle.started"),
        ),
        (
            "attendance.tapped",
            event_schema::<AttendanceTapped>("attendance.tapped"),
        ),
        (
            "attendance.unknown_badge",
            event_schema::<UnknownBadge>("attendance.unknown_badge"),
        ),
        (
            "huddle.advanced",
            event_schema::<HuddleAdvanced>("huddle.advanced"),
        ),
        ("kpi.reviewed", event_schema::<KpiReviewed>("kpi.reviewed")),
        (
            "action.created",
            event_schema::<ActionCreated>("action.created"),
        ),
        (
            "action.updated",
            event_schema::<ActionUpdated>("action.updated"),
        ),
        ("need.raised", event_schema::<NeedRaised>("need.raised")),
        ("need.escalated", event_schema::<NeedRef>("need.escalated")),
        ("need.closed", event_schema::<NeedRef>("need.closed")),
        (
            "experiment.updated",
            event_schema::<ExperimentUpdated>("experiment.updated"),
        ),
        (
            "huddle.closed",
            event_schema::<HuddleClosed>("huddle.closed"),
        ),
        (
            "badge.enrolled",
            event_schema::<BadgeEnrolled>("badge.enrolled"),
        ),
        (
            "roster.applied",
            event_schema::<RosterApplied>("roster.applied"),
        ),
        (
            "observation.recorded",
            event_schema::<ObservationRecorded>("observation.recorded"),
        ),
        (
            "observation.acknowledged",
            event_schema::<ObservationAcknowledged>("observation.acknowledged"),
        ),
    ];
    debug_assert!(all.iter().map(|(k, _)| *k).eq(event::Event::KINDS));
    all
}

/// Every topic's payload schema, kiosk topics first.
pub fn catalogue() -> Vec<TopicSchema> {
    let board = "huddle/v1/{site}/{area}/{board}";
    let site = "huddle/v1/{site}";
    let mut out: Vec<TopicSchema> = event_schemas()
        .into_iter()
        .map(|(kind, schema)| TopicSchema {
            file: format!("event.{kind}.schema.json"),
            topic: format!("{board}/event/{kind}"),
            publisher: "kiosk",
            retained: false,
            schema,
        })
        .collect();
    let mut add = |file: &str, topic: String, publisher, retained, schema| {
        out.push(TopicSchema {
            file: format!("{file}.schema.json"),
            topic,
            publisher,
            retained,
            schema,
        })
    };
    add(
        "online",
        format!("{board}/online"),
        "kiosk (last will: false)",
        true,
        schema_of::<bool>("online"),
    );
    add(
        "schedule",
        format!("{board}/schedule"),
        "kiosk",
        true,
        schema_of::<payload::ScheduleMessage>("schedule"),
    );
    add(
        "ack",
        format!("{board}/ack"),
        "aggregator",
        true,
        schema_of::<payload::Ack>("ack"),
    );
    add(
        "roster",
        format!("{board}/roster"),
        "aggregator",
        true,
        schema_of::<payload::RosterMessage>("roster"),
    );
    add(
        "board-status",
        format!("{board}/status"),
        "aggregator",
        true,
        schema_of::<payload::BoardLive>("board status"),
    );
    add(
        "site-status",
        format!("{site}/status"),
        "aggregator",
        true,
        schema_of::<payload::SiteLive>("site status"),
    );
    add(
        "coaching",
        format!("{site}/coaching"),
        "aggregator",
        true,
        schema_of::<crate::aggregator::coaching::Report>("coaching"),
    );
    for kind in ["missed_huddle", "escalation_stale", "board_offline"] {
        add(
            &format!("alert.{kind}"),
            format!("{site}/alert/{kind}"),
            "aggregator",
            false,
            schema_of::<payload::BoardAlert>(&format!("alert {kind}")),
        );
    }
    add(
        "alert.coaching_overdue",
        format!("{site}/alert/coaching_overdue"),
        "aggregator",
        false,
        schema_of::<crate::aggregator::coaching::OverdueAlert>("alert coaching_overdue"),
    );
    add(
        "aggregator-stats",
        format!("{site}/aggregator/stats"),
        "aggregator",
        true,
        schema_of::<crate::aggregator::Stats>("aggregator stats"),
    );
    out
}

/// A schema as written to its file: pretty JSON with a final newline.
pub fn file_text(schema: &Value) -> String {
    // Design: a `Value` always serialises.
    let mut text = serde_json::to_string_pretty(schema).expect("a JSON value serialises");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_kind_and_every_file_name_is_there_once() {
        let all = catalogue();
        let mut files: Vec<&str> = all.iter().map(|t| t.file.as_str()).collect();
        files.sort();
        files.dedup();
        assert_eq!(files.len(), all.len());
        for kind in event::Event::KINDS {
            assert!(all
                .iter()
                .any(|t| t.topic.ends_with(&format!("/event/{kind}"))));
        }
        let tapped = &all[1].schema;
        assert_eq!(tapped["properties"]["kind"]["const"], "attendance.tapped");
        assert!(tapped["required"]
            .as_array()
            .unwrap()
            .contains(&Value::from("data")));
    }
}
