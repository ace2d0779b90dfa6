//! Validation of one incoming event message: topic and bytes in, an
//! [`Envelope`] or a [`Reject`] out. Pure: no I/O, no clock, never panics.
//!
//! The checks run in a fixed order, and the first that fails names the
//! reason:
//!
//! 1. `oversize`: more bytes than `ingest.max_message_bytes`;
//! 2. `bad_topic`: not `huddle/v1/{site}/{area}/{board}/event/{kind}` of this site;
//! 3. `malformed_json`: not a JSON object;
//! 4. `bad_schema`: its `schema` is missing, or neither
//!    [`LEGACY_SCHEMA_VERSION`] nor [`SCHEMA_VERSION`];
//! 5. `malformed_json`: not an envelope (a missing, unknown or mistyped
//!    field; schema 2 without `incarnation`, schema 1 with it or `base`);
//! 6. `bad_seq`: `seq` is below the incarnation's `base` (0 included), or
//!    beyond [`MAX_SEQ`] (SQLite's integers);
//! 7. `unknown_kind`: `kind` is not one of [`Event::KINDS`];
//! 8. `kind_mismatch`: the topic's kind level differs from `kind`;
//! 9. `board_mismatch`: the topic's board level differs from `board`;
//! 10. `bad_payload`: `data` does not parse as that kind, or holds a text
//!     longer than [`MAX_TEXT_CHARS`].
//!
//! An envelope of a newer schema (which may carry new fields) is reported
//! as `bad_schema`, not as malformed.
//!
//! Speed: this runs for every message at tens of thousands a second, so
//! the happy path parses the bytes once into a borrowed envelope whose
//! `data` stays raw JSON text ([`serde_json::value::RawValue`]), then
//! parses `data` once as its kind. No `serde_json::Value` tree is built,
//! and the store keeps the received `data` text as it came. Only a
//! message that fails the strict parse is looked at a second time, to
//! tell a foreign schema from a malformed envelope.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::wire::event::{Envelope, Event, LEGACY_SCHEMA_VERSION, SCHEMA_VERSION};
use crate::wire::topic::parse_board_topic;

/// Why a message was rejected. The names are the wire names of the
/// aggregator's stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// Not JSON, not an object, or not an envelope.
    MalformedJson,
    /// The envelope's schema version is not ours.
    BadSchema,
    /// A kind this schema does not know.
    UnknownKind,
    /// The data does not parse as its kind.
    BadPayload,
    /// The topic's board is not the envelope's board.
    BoardMismatch,
    /// The topic's kind is not the envelope's kind.
    KindMismatch,
    /// Larger than `ingest.max_message_bytes`.
    Oversize,
    /// `seq` is 0.
    BadSeq,
    /// Not an event topic of this site.
    BadTopic,
}

impl Reason {
    /// Every reason, in the order of the stats.
    pub const ALL: [Reason; 9] = [
        Reason::MalformedJson,
        Reason::BadSchema,
        Reason::UnknownKind,
        Reason::BadPayload,
        Reason::BoardMismatch,
        Reason::KindMismatch,
        Reason::Oversize,
        Reason::BadSeq,
        Reason::BadTopic,
    ];

    /// The wire name (`malformed_json`, ...).
    pub fn key(self) -> &'static str {
        match self {
            Reason::MalformedJson => "malformed_json",
            Reason::BadSchema => "bad_schema",
            Reason::UnknownKind => "unknown_kind",
            Reason::BadPayload => "bad_payload",
            Reason::BoardMismatch => "board_mismatch",
            Reason::KindMismatch => "kind_mismatch",
            Reason::Oversize => "oversize",
            Reason::BadSeq => "bad_seq",
            Reason::BadTopic => "bad_topic",
        }
    }

    /// Parses a wire name.
    pub fn from_key(key: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.key() == key)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// A rejected message: the reason, the board named by the topic (when the
/// topic names one) and a short detail for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// Why.
    pub reason: Reason,
    /// The topic's board level, if the topic has one.
    pub board: Option<String>,
    /// What exactly was wrong (for the log; never the payload itself).
    pub detail: String,
}

/// A checked event as the store records it: the envelope's fields, with
/// `data` as the JSON text received (valid, and valid for its kind).
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    /// The board that wrote it.
    pub board: String,
    /// The board file's incarnation (`""`: legacy, schema 1).
    pub incarnation: String,
    /// The incarnation's first seq (1 for legacy).
    pub base: u64,
    /// Its sequence number within the incarnation (at least `base`).
    pub seq: u64,
    /// Its global id.
    pub id: uuid::Uuid,
    /// The board's UTC wall time.
    pub at: DateTime<Utc>,
    /// Whether the board's clock was synchronised.
    pub clock_synced: bool,
    /// One of [`Event::KINDS`].
    pub kind: String,
    /// The payload's JSON text, as received.
    pub data: String,
}

impl Incoming {
    /// The record of an envelope built in memory (tests, tools).
    pub fn from_envelope(e: &Envelope) -> Incoming {
        Incoming {
            board: e.board.clone(),
            incarnation: e.incarnation.clone(),
            base: e.base,
            seq: e.seq,
            id: e.id,
            at: e.at,
            clock_synced: e.clock_synced,
            kind: e.kind.clone(),
            data: e.data.to_string(),
        }
    }
}

/// Where an accepted event came from: the topic's area (needed for the
/// board's ack topic) and the event.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    /// The topic's area level.
    pub area: String,
    /// The event, checked.
    pub envelope: Incoming,
}

/// The envelope as it is on the wire, borrowed from the message's bytes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire<'a> {
    schema: u64,
    id: uuid::Uuid,
    #[serde(borrow)]
    board: Cow<'a, str>,
    #[serde(default, borrow)]
    incarnation: Option<Cow<'a, str>>,
    #[serde(default)]
    base: Option<u64>,
    seq: u64,
    #[serde(borrow)]
    at: Cow<'a, str>,
    clock_synced: bool,
    #[serde(borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    data: &'a RawValue,
}

/// Only the schema, for a message the strict parse refused.
#[derive(Deserialize)]
struct Probe {
    schema: Option<serde_json::Value>,
}

/// Tells why a message failed the strict parse: not JSON, not an object,
/// a foreign schema, or a malformed envelope of our schema.
fn diagnose(payload: &[u8], strict: serde_json::Error) -> (Reason, String) {
    if let Err(e) = serde_json::from_slice::<IgnoredAny>(payload) {
        return (Reason::MalformedJson, format!("not JSON: {e}"));
    }
    let Ok(probe) = serde_json::from_slice::<Probe>(payload) else {
        return (Reason::MalformedJson, "not a JSON object".to_owned());
    };
    match probe.schema.as_ref().and_then(|s| s.as_u64()) {
        Some(v) if v == u64::from(SCHEMA_VERSION) || v == u64::from(LEGACY_SCHEMA_VERSION) => {
            (Reason::MalformedJson, format!("not an envelope: {strict}"))
        }
        other => (Reason::BadSchema, schema_detail(other)),
    }
}

fn schema_detail(found: Option<u64>) -> String {
    format!(
        "schema {} (this aggregator knows {LEGACY_SCHEMA_VERSION} and {SCHEMA_VERSION})",
        found.map_or_else(|| "missing or not a number".to_owned(), |v| v.to_string())
    )
}

/// Validates one message published on `topic` for the aggregator of `site`.
pub fn validate(
    site: &str,
    topic: &str,
    payload: &[u8],
    max_bytes: usize,
) -> Result<Accepted, Reject> {
    let parsed = parse_board_topic(topic);
    let topic_board = parsed.as_ref().map(|p| p.board.to_owned());
    let reject = |reason: Reason, detail: String| Reject {
        reason,
        board: topic_board.clone(),
        detail,
    };
    if payload.len() > max_bytes {
        return Err(reject(
            Reason::Oversize,
            format!("{} bytes, the limit is {max_bytes}", payload.len()),
        ));
    }
    let parsed = match parsed {
        Some(p) if p.site == site && p.rest.len() == 2 && p.rest[0] == "event" => p,
        _ => {
            return Err(reject(
                Reason::BadTopic,
                format!("`{topic}` is not an event topic of site {site}"),
            ))
        }
    };
    let wire: Wire<'_> = match serde_json::from_slice(payload) {
        Ok(w) => w,
        Err(e) => {
            let (reason, detail) = diagnose(payload, e);
            return Err(reject(reason, detail));
        }
    };
    let (incarnation, base) = match (wire.schema, &wire.incarnation, wire.base) {
        (s, None, None) if s == u64::from(LEGACY_SCHEMA_VERSION) => (String::new(), 1),
        (s, Some(inc), base) if s == u64::from(SCHEMA_VERSION) => {
            let base = base.unwrap_or(1);
            if !valid_incarnation(inc) {
                return Err(reject(
                    Reason::MalformedJson,
                    format!(
                        "not an envelope: incarnation `{}` is not 1 to {MAX_INCARNATION} letters, digits or dashes",
                        truncate(inc)
                    ),
                ));
            }
            (inc.to_string(), base)
        }
        (s, _, _) if s == u64::from(LEGACY_SCHEMA_VERSION) || s == u64::from(SCHEMA_VERSION) => {
            return Err(reject(
                Reason::MalformedJson,
                format!(
                    "not an envelope: schema {s} {} `incarnation` and `base`",
                    if s == u64::from(SCHEMA_VERSION) {
                        "needs"
                    } else {
                        "has no"
                    }
                ),
            ))
        }
        (s, _, _) => return Err(reject(Reason::BadSchema, schema_detail(Some(s)))),
    };
    let at = DateTime::parse_from_rfc3339(&wire.at)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            reject(
                Reason::MalformedJson,
                format!("not an envelope: `at` is not an RFC 3339 time: {e}"),
            )
        })?;
    if base == 0 || wire.seq < base || wire.seq > MAX_SEQ {
        return Err(reject(
            Reason::BadSeq,
            format!(
                "seq {} (base {base}): sequences run from base >= 1 to {MAX_SEQ}",
                wire.seq
            ),
        ));
    }
    let Some(kind) = Event::KINDS.iter().find(|k| **k == wire.kind) else {
        return Err(reject(
            Reason::UnknownKind,
            format!("unknown kind `{}`", truncate(&wire.kind)),
        ));
    };
    if parsed.rest[1] != *kind {
        return Err(reject(
            Reason::KindMismatch,
            format!("topic kind `{}`, envelope kind `{kind}`", parsed.rest[1]),
        ));
    }
    if parsed.board != wire.board {
        return Err(reject(
            Reason::BoardMismatch,
            format!(
                "topic board `{}`, envelope board `{}`",
                parsed.board,
                truncate(&wire.board)
            ),
        ));
    }
    // Design: `kind` is one of our constants (no characters to escape) and
    // `data` is valid JSON, so this is the adjacently tagged event.
    let tagged = format!("{{\"kind\":\"{kind}\",\"data\":{}}}", wire.data.get());
    if let Err(e) = serde_json::from_str::<Event>(&tagged) {
        return Err(reject(
            Reason::BadPayload,
            format!("data is not a {kind}: {e}"),
        ));
    }
    match longest_text(wire.data.get()) {
        Some(longest) if longest > MAX_TEXT_CHARS => {
            return Err(reject(
                Reason::BadPayload,
                format!("data holds a text of {longest} characters; the limit is {MAX_TEXT_CHARS}"),
            ))
        }
        Some(_) => {}
        // The typed parse skips fields its kind does not know without
        // reading them; a number beyond f64 or a lone surrogate there
        // would hide a text of any length.
        None => {
            return Err(reject(
                Reason::BadPayload,
                "data holds a number or a string that is not plain JSON".to_owned(),
            ))
        }
    }
    Ok(Accepted {
        area: parsed.area.to_owned(),
        envelope: Incoming {
            board: wire.board.into_owned(),
            incarnation,
            base,
            seq: wire.seq,
            id: wire.id,
            at,
            clock_synced: wire.clock_synced,
            kind: (*kind).to_owned(),
            data: wire.data.get().to_owned(),
        },
    })
}

/// The longest text accepted anywhere in an event's `data` (keys
/// included), in characters. Kiosks refuse free text over
/// [`crate::domain::MAX_TEXT`] (200) at the screen, and ids are far
/// shorter: whatever is longer did not come from a kiosk, and every text
/// the aggregator republishes (statuses, alerts) stays small.
pub const MAX_TEXT_CHARS: usize = 1000;

/// The longest string in a JSON text, in characters; `None` when a value
/// in it cannot be read (a number beyond f64, a lone surrogate).
fn longest_text(raw: &str) -> Option<usize> {
    use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
    use serde::Deserializer;

    struct Longest;

    impl<'de> Visitor<'de> for Longest {
        type Value = usize;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_bool<E>(self, _: bool) -> Result<usize, E> {
            Ok(0)
        }
        fn visit_i64<E>(self, _: i64) -> Result<usize, E> {
            Ok(0)
        }
        fn visit_u64<E>(self, _: u64) -> Result<usize, E> {
            Ok(0)
        }
        fn visit_f64<E>(self, _: f64) -> Result<usize, E> {
            Ok(0)
        }
        fn visit_unit<E>(self) -> Result<usize, E> {
            Ok(0)
        }
        fn visit_none<E>(self) -> Result<usize, E> {
            Ok(0)
        }
        fn visit_str<E>(self, v: &str) -> Result<usize, E> {
            Ok(v.chars().count())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
            let mut most = 0;
            while let Some(n) = seq.next_element_seed(Longest)? {
                most = most.max(n);
            }
            Ok(most)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
            let mut most = 0;
            while let Some(k) = map.next_key_seed(Longest)? {
                most = most.max(k).max(map.next_value_seed(Longest)?);
            }
            Ok(most)
        }
    }

    impl<'de> DeserializeSeed<'de> for Longest {
        type Value = usize;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
            d.deserialize_any(self)
        }
    }

    serde_json::Deserializer::from_str(raw)
        .deserialize_any(Longest)
        .ok()
}

/// An event dated further ahead of its receive time than this is given
/// the receive time ([`bound_time`]).
pub const MAX_AHEAD: chrono::TimeDelta = chrono::TimeDelta::hours(1);
/// An event dated further back than this is given the receive time: a
/// board queues events while offline, but not for over a year.
pub const MAX_BEHIND: chrono::TimeDelta = chrono::TimeDelta::days(400);

/// Gives an event whose `at` is far from its receive time `now` (a Pi
/// that booted without a real-time clock and without NTP says 1970; a
/// forged one says 9999) the receive time instead, and marks its clock as
/// not synchronised. Returns whether it did. Rejecting it instead would
/// leave a gap that holds the board's ack back for ever; keeping its
/// time would freeze "last observed" or make an escalation old at once.
pub fn bound_time(e: &mut Incoming, now: DateTime<Utc>) -> bool {
    if e.at > now + MAX_AHEAD || e.at < now - MAX_BEHIND {
        e.at = now;
        e.clock_synced = false;
        return true;
    }
    false
}

/// The longest incarnation id accepted (kiosks make 32 hex digits).
pub const MAX_INCARNATION: usize = 64;

/// The highest seq accepted: SQLite stores integers as i64.
pub const MAX_SEQ: u64 = i64::MAX as u64;

fn valid_incarnation(id: &str) -> bool {
    (1..=MAX_INCARNATION).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// At most 64 characters of untrusted text, for log lines.
fn truncate(text: &str) -> String {
    text.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::event::{AttendanceTapped, TapVia};
    use crate::wire::topic::BoardTopics;
    use chrono::{TimeZone, Utc};

    const LIMIT: usize = 64 * 1024;

    fn topics() -> BoardTopics {
        BoardTopics::new("plant1", "assembly", "b1")
    }

    fn good(seq: u64) -> serde_json::Value {
        let e = Event::AttendanceTapped(AttendanceTapped {
            huddle_id: "h1".into(),
            person_id: "p02".into(),
            via: TapVia::Badge,
            late: false,
        });
        let at = Utc.with_ymd_and_hms(2026, 11, 28, 6, 45, 3).unwrap();
        serde_json::from_str(&Envelope::new("b1", seq, at, true, &e).to_json()).unwrap()
    }

    fn check(topic: &str, payload: &[u8]) -> Result<Accepted, Reject> {
        validate("plant1", topic, payload, LIMIT)
    }

    fn reason(topic: &str, payload: &[u8]) -> Reason {
        check(topic, payload).unwrap_err().reason
    }

    fn json(v: &serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(v).unwrap()
    }

    #[test]
    fn a_good_envelope_is_accepted_with_its_area() {
        let a = check(&topics().event("attendance.tapped"), &json(&good(1))).unwrap();
        assert_eq!(a.area, "assembly");
        assert_eq!(a.envelope.seq, 1);
        assert_eq!(a.envelope.board, "b1");
    }

    #[test]
    fn times_far_from_the_receive_time_become_the_receive_time() {
        let t = topics().event("attendance.tapped");
        let now = Utc.with_ymd_and_hms(2026, 11, 28, 7, 0, 0).unwrap();
        let mut e = check(&t, &json(&good(1))).unwrap().envelope;
        let kept = e.at;
        assert!(!bound_time(&mut e, now), "15 minutes back is kept");
        assert_eq!((e.at, e.clock_synced), (kept, true));
        for far in [
            Utc.with_ymd_and_hms(9999, 12, 31, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap(),
            now + MAX_AHEAD + chrono::TimeDelta::seconds(1),
        ] {
            e.at = far;
            assert!(bound_time(&mut e, now));
            assert_eq!((e.at, e.clock_synced), (now, false));
        }
        e.at = now - chrono::TimeDelta::days(30);
        assert!(!bound_time(&mut e, now), "a month offline is kept");
    }

    #[test]
    fn every_reason_is_reachable() {
        let t = topics().event("attendance.tapped");
        assert_eq!(reason(&t, b"{not json"), Reason::MalformedJson);
        assert_eq!(reason(&t, b"[1,2,3]"), Reason::MalformedJson);
        assert_eq!(reason(&t, &[0xff, 0x00, 0x13, 0x37]), Reason::MalformedJson);
        assert_eq!(reason(&t, b""), Reason::MalformedJson);

        let mut v = good(1);
        v["schema"] = 3.into();
        assert_eq!(reason(&t, &json(&v)), Reason::BadSchema);
        // Schema 2 without its incarnation, schema 1 with one.
        v["schema"] = 2.into();
        assert_eq!(reason(&t, &json(&v)), Reason::MalformedJson);
        v["schema"] = 1.into();
        v["incarnation"] = "abc".into();
        v["base"] = 1.into();
        assert_eq!(reason(&t, &json(&v)), Reason::MalformedJson);
        v["schema"] = 2.into();
        v["incarnation"] = "not/ok".into();
        assert_eq!(reason(&t, &json(&v)), Reason::MalformedJson);
        v["incarnation"] = "abc".into();
        assert!(check(&t, &json(&v)).is_ok());
        v.as_object_mut().unwrap().remove("base");
        assert_eq!(
            check(&t, &json(&v)).unwrap().envelope.base,
            1,
            "absent means 1"
        );
        v["base"] = 1.into();
        // A seq below its base, or beyond SQLite's integers.
        v["base"] = 5.into();
        assert_eq!(reason(&t, &json(&v)), Reason::BadSeq);
        v["base"] = 1.into();
        v["seq"] = (u64::MAX - 3).into();
        assert_eq!(reason(&t, &json(&v)), Reason::BadSeq);
        v["seq"] = (i64::MAX as u64).into();
        assert!(check(&t, &json(&v)).is_ok());
        v["base"] = 0.into();
        v["seq"] = 0.into();
        assert_eq!(reason(&t, &json(&v)), Reason::BadSeq);
        // A text longer than any kiosk writes, in a field or a key.
        let mut v = good(1);
        v["data"]["person_id"] = "p".repeat(MAX_TEXT_CHARS).into();
        assert!(check(&t, &json(&v)).is_ok());
        v["data"]["person_id"] = "p".repeat(MAX_TEXT_CHARS + 1).into();
        assert_eq!(reason(&t, &json(&v)), Reason::BadPayload);
        let mut v = good(1);
        v["data"]["k".repeat(MAX_TEXT_CHARS + 1)] = 1.into();
        assert_eq!(reason(&t, &json(&v)), Reason::BadPayload);
        // A field the kind does not know, that the text check cannot read,
        // hides nothing (found by reading the fuzz target's invariants).
        let mut v = good(1);
        v["data"]["person_id"] = "p".repeat(MAX_TEXT_CHARS + 1).into();
        let text = json(&v);
        let text = String::from_utf8(text).unwrap();
        for hidden in [r#""z":1e400,"#, r#""z":"\ud800","#] {
            let bypass = text.replacen(r#""data":{"#, &format!(r#""data":{{{hidden}"#), 1);
            assert_eq!(
                reason(&t, bypass.as_bytes()),
                Reason::BadPayload,
                "{hidden}"
            );
        }
        let mut v = good(1);
        v["schema"] = 3.into();
        v.as_object_mut().unwrap().remove("schema");
        assert_eq!(reason(&t, &json(&v)), Reason::BadSchema);

        let mut v = good(1);
        v["extra"] = true.into();
        assert_eq!(reason(&t, &json(&v)), Reason::MalformedJson);
        let mut v = good(1);
        v["seq"] = (-3).into();
        assert_eq!(reason(&t, &json(&v)), Reason::MalformedJson);
        let mut v = good(1);
        v["at"] = "yesterday".into();
        assert_eq!(reason(&t, &json(&v)), Reason::MalformedJson);

        assert_eq!(reason(&t, &json(&good(0))), Reason::BadSeq);

        let mut v = good(1);
        v["kind"] = "coffee.spilled".into();
        assert_eq!(
            reason(&topics().event("coffee.spilled"), &json(&v)),
            Reason::UnknownKind
        );

        assert_eq!(
            reason(&topics().event("huddle.started"), &json(&good(1))),
            Reason::KindMismatch
        );

        let other = BoardTopics::new("plant1", "assembly", "b2").event("attendance.tapped");
        let r = check(&other, &json(&good(1))).unwrap_err();
        assert_eq!(r.reason, Reason::BoardMismatch);
        assert_eq!(r.board.as_deref(), Some("b2"));

        let mut v = good(1);
        v["data"]["via"] = "telepathy".into();
        assert_eq!(reason(&t, &json(&v)), Reason::BadPayload);
        let mut v = good(1);
        v["data"] = serde_json::json!({});
        assert_eq!(reason(&t, &json(&v)), Reason::BadPayload);

        let big = vec![b' '; LIMIT + 1];
        assert_eq!(reason(&t, &big), Reason::Oversize);
        let mut padded = json(&good(1));
        padded.resize(LIMIT, b' ');
        assert!(check(&t, &padded).is_ok(), "exactly the limit is allowed");

        assert_eq!(
            reason("huddle/v1/plant1/assembly/b1/ack", &json(&good(1))),
            Reason::BadTopic
        );
        assert_eq!(
            reason(
                &BoardTopics::new("plant2", "assembly", "b1").event("attendance.tapped"),
                &json(&good(1))
            ),
            Reason::BadTopic
        );
        assert_eq!(reason("somewhere/else", b"{}"), Reason::BadTopic);
    }

    #[test]
    fn oversize_is_decided_before_anything_is_parsed() {
        let r = validate("plant1", "not/a/topic", &[b'x'; 2048], 1024).unwrap_err();
        assert_eq!(r.reason, Reason::Oversize);
    }

    #[test]
    fn reason_names_round_trip() {
        for r in Reason::ALL {
            assert_eq!(Reason::from_key(r.key()), Some(r));
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let t = topics().event("attendance.tapped");
        for _ in 0..5000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 200) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|i| (seed.rotate_left(i as u32 % 64) >> 3) as u8)
                .collect();
            assert!(check(&t, &bytes).is_err());
        }
    }
}
