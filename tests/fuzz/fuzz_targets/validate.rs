//! Fuzzes the aggregator's validation of one incoming event message
//! (`huddle_board::aggregator::validate::validate`) with arbitrary topics
//! and payloads.
//!
//! Input: `topic\npayload`. The bytes before the first newline are the
//! topic (lossy UTF-8: MQTT topics are UTF-8 strings), the rest is the
//! payload. With no newline, or an empty first line, the whole input (or
//! what follows the newline) is the payload and the topic is derived from
//! it: `huddle/v1/plant1/assembly/{board}/event/{kind}` with the payload's
//! own `board` and `kind` when it has them as strings, so that mutated
//! envelopes still get past the topic checks and reach the deeper ones.
//!
//! For any input, validation must not panic, and:
//! - an accepted envelope has `1 <= base <= seq <= i64::MAX`, an
//!   incarnation that is empty (schema 1, base 1) or 1 to 64 ASCII letters,
//!   digits or dashes (schema 2, as sent), the topic's site, area, board
//!   and kind levels, a kind of `Event::KINDS`, the payload's own `id`,
//!   `seq` and `board`, and `data` that is JSON, parses as its kind and
//!   holds no text (key or value) over `MAX_TEXT_CHARS` characters;
//!   with its time bounded as ingest bounds it and re-encoded as a kiosk
//!   writes it, it is accepted again, the same;
//! - a rejection names a reason of `Reason::ALL` (whose key parses back)
//!   and the topic's board level, when the topic has one;
//! - the size limit decides alone: the same message under a limit one
//!   byte below its size is `oversize`, whatever else is wrong with it.
#![no_main]

use huddle_board::aggregator::validate::{
    bound_time, validate, Reason, MAX_INCARNATION, MAX_SEQ, MAX_TEXT_CHARS,
};
use huddle_board::wire::event::{Envelope, Event, LEGACY_SCHEMA_VERSION, SCHEMA_VERSION};
use huddle_board::wire::topic::parse_board_topic;
use libfuzzer_sys::fuzz_target;
use serde::de::IgnoredAny;
use serde::Deserialize;

/// The aggregator's site.
const SITE: &str = "plant1";
/// `ingest.max_message_bytes` as shipped (config/aggregator.toml).
const LIMIT: usize = 64 * 1024;

/// A fixed receive time (the target must be deterministic).
fn received() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(1_796_000_000, 0).expect("a time in 2026")
}

/// The payload's board and kind, for a derived topic; anything else is
/// skipped without being checked.
#[derive(Deserialize)]
struct Names {
    board: Option<String>,
    kind: Option<String>,
}

/// What an accepted payload must say at its top level, read by a plain
/// serde parse (unknown fields skipped, `data` not looked into).
#[derive(Deserialize)]
struct Loose {
    schema: u64,
    id: uuid::Uuid,
    board: String,
    incarnation: Option<String>,
    base: Option<u64>,
    seq: u64,
    kind: String,
}

fn derived_topic(payload: &[u8]) -> String {
    let names = serde_json::from_slice::<Names>(payload).ok();
    let board = names.as_ref().and_then(|n| n.board.as_deref());
    let kind = names.as_ref().and_then(|n| n.kind.as_deref());
    format!(
        "huddle/v1/{SITE}/assembly/{}/event/{}",
        board.unwrap_or("b1"),
        kind.unwrap_or("attendance.tapped")
    )
}

/// The longest string (key or value) in a valid JSON text, in characters,
/// counted from the text itself rather than by a parser: an escape is one
/// character, except a high surrogate's (`\ud800`-`\udbff`), which counts
/// nothing, so that a pair is one and the count never exceeds the decoded
/// length.
fn longest_string(json: &str) -> usize {
    let bytes = json.as_bytes();
    let (mut most, mut i) = (0, 0);
    while i < bytes.len() {
        if bytes[i] != b'"' {
            i += 1;
            continue;
        }
        let mut n = 0;
        i += 1;
        while bytes[i] != b'"' {
            match bytes[i] {
                b'\\' if bytes[i + 1] == b'u' => {
                    let hex = &json[i + 2..i + 6];
                    let unit = u16::from_str_radix(hex, 16).expect("JSON escapes are hex");
                    n += usize::from(!(0xD800..0xDC00).contains(&unit));
                    i += 6;
                }
                b'\\' => {
                    n += 1;
                    i += 2;
                }
                b => {
                    n += usize::from(b & 0xC0 != 0x80);
                    i += 1;
                }
            }
        }
        most = most.max(n);
        i += 1;
    }
    most
}

fuzz_target!(|data: &[u8]| {
    let (topic, payload) = match data.iter().position(|&b| b == b'\n') {
        Some(0) => (derived_topic(&data[1..]), &data[1..]),
        Some(n) => (
            String::from_utf8_lossy(&data[..n]).into_owned(),
            &data[n + 1..],
        ),
        None => (derived_topic(data), data),
    };
    let topic = topic.as_str();
    let parsed = parse_board_topic(topic);
    let result = validate(SITE, topic, payload, LIMIT);

    if !payload.is_empty() {
        let small = validate(SITE, topic, payload, payload.len() - 1);
        let r = small.expect_err("a message over the limit is rejected");
        assert_eq!(r.reason, Reason::Oversize);
        assert_eq!(r.board.as_deref(), parsed.as_ref().map(|p| p.board));
    }

    let accepted = match result {
        Err(r) => {
            assert!(Reason::ALL.contains(&r.reason), "{r:?}");
            assert_eq!(Reason::from_key(r.reason.key()), Some(r.reason));
            assert_eq!(
                r.board.as_deref(),
                parsed.as_ref().map(|p| p.board),
                "a rejection names the topic's board level"
            );
            return;
        }
        Ok(a) => a,
    };
    let e = &accepted.envelope;
    let p = parsed.expect("an accepted message's topic parses");
    assert!(payload.len() <= LIMIT);
    assert_eq!(p.site, SITE);
    assert_eq!(p.rest, ["event", e.kind.as_str()], "topic {topic}");
    assert_eq!(accepted.area, p.area);
    assert_eq!(e.board, p.board, "the board is the topic's board level");
    assert!(Event::KINDS.contains(&e.kind.as_str()), "kind {}", e.kind);
    assert!(e.base >= 1, "base {}", e.base);
    assert!(e.seq >= e.base, "seq {} base {}", e.seq, e.base);
    assert!(e.seq <= i64::MAX as u64 && MAX_SEQ == i64::MAX as u64);
    let inc = &e.incarnation;
    assert!(
        inc.is_empty()
            || ((1..=MAX_INCARNATION).contains(&inc.len())
                && MAX_INCARNATION == 64
                && inc.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')),
        "incarnation {inc:?}"
    );

    // The fields are the payload's own.
    let loose: Loose = serde_json::from_slice(payload).expect("an accepted payload parses loosely");
    assert_eq!(loose.id, e.id);
    assert_eq!(loose.board, e.board);
    assert_eq!(loose.seq, e.seq);
    assert_eq!(loose.kind, e.kind);
    if loose.schema == u64::from(LEGACY_SCHEMA_VERSION) {
        assert!(loose.incarnation.is_none() && loose.base.is_none());
        assert!(
            inc.is_empty() && e.base == 1,
            "schema 1: {inc:?} base {}",
            e.base
        );
    } else {
        assert_eq!(loose.schema, u64::from(SCHEMA_VERSION));
        assert_eq!(loose.incarnation.as_ref(), Some(inc));
        assert!(!inc.is_empty(), "schema 2 has an incarnation");
        assert_eq!(loose.base.unwrap_or(1), e.base);
    }
    assert!(
        serde_json::from_str::<IgnoredAny>(&e.data).is_ok(),
        "data is JSON"
    );
    let longest = longest_string(&e.data);
    assert!(
        longest <= MAX_TEXT_CHARS,
        "accepted data holds a text of at least {longest} characters"
    );
    let data: serde_json::Value = match serde_json::from_str(&e.data) {
        Ok(v) => v,
        // Valid JSON that serde_json's Value cannot hold (a number beyond
        // f64 in a field the kind ignores): nothing more to compare.
        Err(_) => return,
    };
    let event = Event::from_parts(&e.kind, &data).expect("data parses as its kind");

    // What ingest keeps (its time bounded by the receive time, as
    // `ingest` does), re-encoded as a kiosk writes it, is accepted again,
    // the same. Unbounded, it need not be: `validate` takes an `at` whose
    // UTC falls outside the years 0000-9999 (`0000-01-01T00:30:00+01:00`),
    // which no RFC 3339 text can carry back.
    let mut kept = e.clone();
    bound_time(&mut kept, received());
    let mut again = Envelope::new(&kept.board, kept.seq, kept.at, kept.clock_synced, &event);
    if !inc.is_empty() {
        again = again.in_incarnation(inc, kept.base);
    }
    again.id = kept.id;
    let json = again.to_json();
    let back = validate(SITE, topic, json.as_bytes(), LIMIT)
        .unwrap_or_else(|r| panic!("re-encoded {json} is rejected: {r:?}"));
    assert_eq!(back.area, accepted.area);
    let b = &back.envelope;
    assert_eq!(
        (&b.board, &b.incarnation, &b.kind),
        (&kept.board, inc, &kept.kind)
    );
    assert_eq!((b.base, b.seq, b.id), (kept.base, kept.seq, kept.id));
    assert_eq!(b.clock_synced, kept.clock_synced);
    assert_eq!(b.at.timestamp_millis(), kept.at.timestamp_millis());
});
