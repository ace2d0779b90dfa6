//! The site roster file (`roster.file`): a CSV that the aggregator turns
//! into one retained [`RosterMessage`] per board. Pure parsing here; the
//! ingest shell reads the file, polls its modification time and publishes.
//!
//! The format, one person per line after a header that must read exactly
//!
//! ```text
//! person_id,name,role,board,area,coach,badge_hashes
//! ```
//!
//! - `person_id`: letters, digits, `_`, `-`, `.`; unique within a board (a
//!   supervisor may appear on several boards);
//! - `name`: not empty;
//! - `role`: `member`, `team_leader`, `supervisor` or `manager`;
//! - `board`, `area`: the board's MQTT topic levels (`[a-z0-9_-]`); one
//!   board sits in one area;
//! - `coach`: a `person_id` of the same file, or empty;
//! - `badge_hashes`: keyed hashes (64 hex digits, from `huddle-aggregator
//!   hash-badge NUMBER`) separated by `;`, or empty. Never badge numbers.
//!
//! An eighth column `language` may follow (then in the header too): the
//! person's own language for what the board says to them (`de`, `es`,
//! `fr`, `pl`, `en`: two lowercase letters), or empty for the board's.
//!
//! Lines starting with `#` are comments; spaces around fields are ignored.
//! Every error names the file and the line.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::config::{check_id, check_topic_level};
use crate::domain::BadgeHash;
use crate::domain::Role;
use crate::wire::payload::{RosterMessage, RosterPerson};

/// The header the file must start with.
pub const HEADER: [&str; 7] = [
    "person_id",
    "name",
    "role",
    "board",
    "area",
    "coach",
    "badge_hashes",
];

/// The optional column after [`HEADER`].
pub const LANGUAGE: &str = "language";

/// A roster file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RosterError {
    /// The file.
    pub file: PathBuf,
    /// The line (1 is the header); 0 for the whole file.
    pub line: u64,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for RosterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "roster {}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "roster {}: line {}: {}",
                self.file.display(),
                self.line,
                self.message
            )
        }
    }
}

/// One board's roster and the area its topics sit in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardRoster {
    /// The board's area (topic level).
    pub area: String,
    /// The retained message.
    pub message: RosterMessage,
}

/// Parses the CSV `text` read from `file`; every message gets `issued_at`
/// (the file's modification time). Boards in name order, people in file order.
pub fn parse(
    text: &str,
    file: &Path,
    issued_at: DateTime<Utc>,
) -> Result<Vec<BoardRoster>, RosterError> {
    let err = |line: u64, message: String| RosterError {
        file: file.to_owned(),
        line,
        message,
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(text.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| err(0, format!("cannot read the header: {e}")))?
        .clone();
    let header_line = header.position().map_or(1, |p| p.line());
    let with_language = header.iter().eq(HEADER.into_iter().chain([LANGUAGE]));
    if header.iter().ne(HEADER) && !with_language {
        return Err(err(
            header_line,
            format!(
                "the header must be `{}` (and may end in `,{LANGUAGE}`), found `{}`",
                HEADER.join(","),
                header.iter().collect::<Vec<_>>().join(",")
            ),
        ));
    }
    struct Row {
        line: u64,
        board: String,
        area: String,
        coach: Option<String>,
        person: RosterPerson,
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            err(
                line,
                format!("not a CSV row of {} fields: {e}", header.len()),
            )
        })?;
        let line = record.position().map_or(0, |p| p.line());
        let field = |i: usize| record.get(i).unwrap_or_default().to_owned();
        let (id, name, role, board, area, coach, hashes) = (
            field(0),
            field(1),
            field(2),
            field(3),
            field(4),
            field(5),
            field(6),
        );
        check_id(&id).map_err(|m| err(line, format!("person_id: {m}")))?;
        if name.is_empty() {
            return Err(err(line, "name: must not be empty".into()));
        }
        let role = Role::from_key(&role).ok_or_else(|| {
            err(
                line,
                format!("role: `{role}` is not one of member, team_leader, supervisor, manager"),
            )
        })?;
        check_topic_level(&board).map_err(|m| err(line, format!("board: {m}")))?;
        check_topic_level(&area).map_err(|m| err(line, format!("area: {m}")))?;
        let mut badge_hashes = Vec::new();
        for h in hashes.split(';').map(str::trim).filter(|h| !h.is_empty()) {
            let hash = BadgeHash::parse(h).ok_or_else(|| {
                let shown = if h.chars().all(|c| c.is_ascii_digit()) {
                    "a badge number".to_owned()
                } else {
                    format!("`{}`", h.chars().take(16).collect::<String>())
                };
                err(
                    line,
                    format!(
                        "badge_hashes: {shown} is not a badge hash (64 hex digits from \
                         `huddle-aggregator hash-badge NUMBER`)"
                    ),
                )
            })?;
            badge_hashes.push(hash);
        }
        let language = field(7);
        let is_code = language.len() == 2 && language.bytes().all(|b| b.is_ascii_lowercase());
        if !language.is_empty() && !is_code {
            return Err(err(
                line,
                format!("language: `{language}` is not a language code (two lowercase letters, e.g. de, es, fr, pl), or empty"),
            ));
        }
        rows.push(Row {
            line,
            coach: (!coach.is_empty()).then_some(coach),
            person: RosterPerson {
                id,
                name,
                role,
                coach: None,
                badge_hashes,
                language: (!language.is_empty()).then_some(language),
            },
            board,
            area,
        });
    }
    let ids: HashSet<&str> = rows.iter().map(|r| r.person.id.as_str()).collect();
    let mut seen: HashSet<(&str, &str)> = HashSet::new();
    let mut areas: BTreeMap<&str, (&str, u64)> = BTreeMap::new();
    let mut owners: BTreeMap<&str, (&str, u64)> = BTreeMap::new();
    for r in &rows {
        if !seen.insert((r.board.as_str(), r.person.id.as_str())) {
            return Err(err(
                r.line,
                format!(
                    "person_id: `{}` appears twice on board `{}`",
                    r.person.id, r.board
                ),
            ));
        }
        let (area, first) = *areas
            .entry(r.board.as_str())
            .or_insert((r.area.as_str(), r.line));
        if area != r.area {
            return Err(err(
                r.line,
                format!(
                    "area: board `{}` is in area `{area}` on line {first}, here `{}`",
                    r.board, r.area
                ),
            ));
        }
        if let Some(coach) = &r.coach {
            if !ids.contains(coach.as_str()) {
                return Err(err(
                    r.line,
                    format!("coach: `{coach}` is not a person_id of this file"),
                ));
            }
            if coach == &r.person.id {
                return Err(err(
                    r.line,
                    "coach: a person cannot coach themselves".into(),
                ));
            }
        }
        for h in &r.person.badge_hashes {
            if let Some((other, line)) = owners.insert(h.as_str(), (r.person.id.as_str(), r.line)) {
                if other != r.person.id {
                    return Err(err(
                        r.line,
                        format!(
                            "badge_hashes: a badge of `{}` is also held by `{other}` (line {line})",
                            r.person.id
                        ),
                    ));
                }
            }
        }
    }
    let mut boards: BTreeMap<String, BoardRoster> = BTreeMap::new();
    for r in rows {
        let entry = boards
            .entry(r.board.clone())
            .or_insert_with(|| BoardRoster {
                area: r.area.clone(),
                message: RosterMessage {
                    board: r.board.clone(),
                    issued_at,
                    people: Vec::new(),
                },
            });
        entry.message.people.push(RosterPerson {
            coach: r.coach,
            ..r.person
        });
    }
    Ok(boards.into_values().collect())
}

/// Reads and parses the file; `issued_at` is its modification time.
pub fn load(file: &Path) -> Result<Vec<BoardRoster>, RosterError> {
    let err = |message: String| RosterError {
        file: file.to_owned(),
        line: 0,
        message,
    };
    let mtime = modified(file).map_err(|e| err(format!("cannot read it: {e}")))?;
    let text = std::fs::read_to_string(file).map_err(|e| err(format!("cannot read it: {e}")))?;
    parse(&text, file, mtime)
}

/// The file's modification time, to the millisecond (what `issued_at` carries).
pub fn modified(file: &Path) -> std::io::Result<DateTime<Utc>> {
    let t: DateTime<Utc> = std::fs::metadata(file)?.modified()?.into();
    Ok(DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::hash_badge;
    use chrono::TimeZone;

    const KEY: &[u8] = b"demo-site-key-change-me";

    fn when() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, 5, 0, 0).unwrap()
    }

    fn h(n: &str) -> String {
        hash_badge(KEY, n).to_string()
    }

    fn csv(rows: &[String]) -> String {
        format!("{}\n{}\n", HEADER.join(","), rows.join("\n"))
    }

    fn parse_err(text: &str) -> RosterError {
        parse(text, Path::new("/etc/huddle/roster.csv"), when()).unwrap_err()
    }

    #[test]
    fn groups_people_by_board_with_their_area() {
        let text = csv(&[
            format!("p07,Sam Reyes,supervisor,demo,assembly,,{}", h("2001")),
            format!(
                "p01,Eva Novak,team_leader,demo,assembly,p07,{};{}",
                h("1001"),
                h("1010")
            ),
            "p07,Sam Reyes,supervisor,paint,finishing,,".into(),
            "# a comment".into(),
            "p20, Lu Wen ,member,paint,finishing,p07,".into(),
        ]);
        let r = parse(&text, Path::new("r.csv"), when()).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(
            (r[0].area.as_str(), r[0].message.board.as_str()),
            ("assembly", "demo")
        );
        assert_eq!(r[0].message.issued_at, when());
        let eva = &r[0].message.people[1];
        assert_eq!(eva.role, Role::TeamLeader);
        assert_eq!(eva.coach.as_deref(), Some("p07"));
        assert_eq!(eva.badge_hashes.len(), 2);
        assert_eq!(r[1].message.people[1].name, "Lu Wen");
        assert!(r[1].message.people[1].badge_hashes.is_empty());
    }

    #[test]
    fn an_eighth_column_gives_a_language() {
        let text = format!(
            "{},{LANGUAGE}\np01,Eva Novak,team_leader,demo,assembly,,,de\np02,Ana Silva,member,demo,assembly,,,\n",
            HEADER.join(",")
        );
        let r = parse(&text, Path::new("r.csv"), when()).unwrap();
        let people = &r[0].message.people;
        assert_eq!(people[0].language.as_deref(), Some("de"));
        assert_eq!(people[1].language, None);
        let json = serde_json::to_string(&r[0].message).unwrap();
        assert_eq!(json.matches("\"language\"").count(), 1, "{json}");

        let bad = format!(
            "{},{LANGUAGE}\np01,Eva,member,demo,assembly,,,Deutsch\n",
            HEADER.join(",")
        );
        let e = parse_err(&bad);
        assert!(e.line == 2 && e.to_string().contains("language"), "{e}");
        // Without the column, people have none.
        let r = parse(
            &csv(&["p01,Eva,member,demo,assembly,,".into()]),
            Path::new("r.csv"),
            when(),
        )
        .unwrap();
        assert_eq!(r[0].message.people[0].language, None);
    }

    #[test]
    fn errors_name_the_file_and_the_line() {
        let e = parse_err("person_id,name,role,board,coach,badge_hashes\n");
        assert_eq!(e.line, 1);
        let msg = e.to_string();
        assert!(
            msg.contains("/etc/huddle/roster.csv") && msg.contains("line 1"),
            "{msg}"
        );
        assert!(msg.contains("area"), "{msg}");

        let cases = [
            ("p01,Eva,boss,demo,assembly,,", "role"),
            ("p01,,member,demo,assembly,,", "name"),
            ("p 01,Eva,member,demo,assembly,,", "person_id"),
            ("p01,Eva,member,Demo,assembly,,", "board"),
            ("p01,Eva,member,demo,Assembly Hall,,", "area"),
            ("p01,Eva,member,demo,assembly,p99,", "coach"),
            ("p01,Eva,member,demo,assembly,p01,", "coach"),
            ("p01,Eva,member,demo,assembly,,1001", "badge number"),
            ("p01,Eva,member,demo,assembly,,abc", "badge_hashes"),
            ("p01,Eva,member,demo,assembly", "7 fields"),
        ];
        for (row, needle) in cases {
            let e = parse_err(&csv(&["p00,Ok,member,demo,assembly,,".into(), row.into()]));
            assert_eq!(e.line, 3, "{row}: {e}");
            assert!(e.to_string().contains(needle), "{row}: {e}");
            assert!(
                !e.to_string().contains("1001"),
                "never echo a badge number: {e}"
            );
        }
    }

    #[test]
    fn conflicts_between_lines_are_errors() {
        let e = parse_err(&csv(&[
            "p01,Eva,member,demo,assembly,,".into(),
            "p01,Eva,member,demo,assembly,,".into(),
        ]));
        assert!(e.to_string().contains("twice") && e.line == 3, "{e}");
        let e = parse_err(&csv(&[
            "p01,Eva,member,demo,assembly,,".into(),
            "p02,Ana,member,demo,paint,,".into(),
        ]));
        assert!(e.to_string().contains("area") && e.line == 3, "{e}");
        let e = parse_err(&csv(&[
            format!("p01,Eva,member,demo,assembly,,{}", h("1001")),
            format!("p02,Ana,member,demo,assembly,,{}", h("1001")),
        ]));
        assert!(e.to_string().contains("also held by `p01`"), "{e}");
    }
}
