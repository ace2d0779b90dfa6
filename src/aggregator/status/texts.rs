//! The English texts of the alerts, with named placeholders: the one
//! source of an alert's words. [`rules`](super::rules) fills them in for
//! the alert's `message` (logs and MQTT readers), and sends them along
//! as the alert's `text` with its `values`; the dashboard looks `text`
//! up in its catalogue (`ui/translations/<lang>/LC_MESSAGES/huddle-dashboard.po`,
//! whose template lists these texts) and fills in the same values.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::wire::payload::{AlertKind, BoardAlert};

/// A board stopped reporting.
pub const WENT_OFFLINE: &str = "board {board} went offline";
/// A board was already offline when the aggregator started.
pub const OFFLINE_AT_START: &str = "board {board} was offline when the aggregator started";
/// A scheduled huddle was not started within its grace.
pub const MISSED_HUDDLE: &str = "board {board}: the {time} huddle was not started within {min} min";
/// An escalation stayed open past `status.escalation_stale_s`.
pub const ESCALATION_STALE: &str =
    "board {board}: escalation \"{text}\" ({category}) is open for {hours} h";

/// Every alert text, for the catalogues' template.
pub const ALL: [&str; 4] = [
    WENT_OFFLINE,
    OFFLINE_AT_START,
    MISSED_HUDDLE,
    ESCALATION_STALE,
];

/// `text` with every `{name}` of `values` replaced by its value; a
/// placeholder without a value stays as it is.
pub fn fill(text: &str, values: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len() + 32);
    let mut rest = text;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        match after.find('}').map(|j| (&after[..j], j)) {
            Some((name, j)) if values.contains_key(name) => {
                out.push_str(&values[name]);
                rest = &after[j + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// An alert whose message is `text` ([`texts`]) filled with `values`.
pub(super) fn alert(
    kind: AlertKind,
    board: &str,
    area: &str,
    at: DateTime<Utc>,
    text: &str,
    values: &[(&str, String)],
) -> BoardAlert {
    let values = values
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    BoardAlert {
        kind,
        board: board.to_owned(),
        area: area.to_owned(),
        at,
        message: fill(text, &values),
        text: Some(text.to_owned()),
        values,
        scheduled_at: None,
        need_id: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_named_placeholders_once() {
        let v: BTreeMap<String, String> = [("board", "line1"), ("text", "{board}")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert_eq!(fill(WENT_OFFLINE, &v), "board line1 went offline");
        // A value is not filled again; an unknown name stays.
        assert_eq!(fill("{text} {x} {", &v), "{board} {x} {");
    }
}
