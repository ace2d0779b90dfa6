//! Times as both sides store and send them: UTC, RFC 3339 with
//! milliseconds ("2026-11-28T06:45:00.000Z"), which sort as text.

use chrono::{DateTime, SecondsFormat, Utc};

/// Formats a UTC time the way the store keeps it (sortable text).
pub fn ts(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses a stored UTC time.
pub fn parse_ts(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}
