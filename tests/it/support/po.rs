//! The kiosk's gettext catalogues read back (`ui/translations/`): a
//! minimal .po reader for the translation checks (`translations`) and the
//! UI tests that name texts in English ([`crate::support::ui::Ui::tr`]).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Reads a string literal starting at `s[0] == '"'`; returns its inner
/// text (escapes kept) and the rest after the closing quote.
pub fn literal(s: &str) -> Option<(String, &str)> {
    let body = s.strip_prefix('"')?;
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '"' => return Some((body[..i].to_owned(), &body[i + 1..])),
            _ => {}
        }
    }
    None
}

/// One entry of a .po file.
#[derive(Debug, Default)]
pub struct PoEntry {
    pub msgid: String,
    pub plural: Option<String>,
    pub msgstr: Vec<String>,
    pub fuzzy: bool,
}

/// A minimal .po reader: flags, msgid, msgid_plural, msgstr and
/// msgstr[n], continuation lines. Enough for catalogues written by hand or
/// by Poedit; it fails loudly on anything else.
pub fn read_po(path: &Path) -> (String, Vec<PoEntry>) {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut entries = Vec::new();
    let mut cur = PoEntry::default();
    let mut started = false;
    // Which field a continuation line extends: 0 msgid, 1 plural, 2+n msgstr[n].
    let mut field = 0usize;
    let push = |cur: &mut PoEntry, entries: &mut Vec<PoEntry>| {
        entries.push(std::mem::take(cur));
    };
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end();
        let quoted = |s: &str| -> String {
            literal(s.trim())
                .unwrap_or_else(|| panic!("{}:{}: a quoted string", path.display(), n + 1))
                .0
        };
        if line.is_empty() || (line.starts_with('#') && !line.starts_with("#,")) {
            continue;
        }
        if let Some(flags) = line.strip_prefix("#,") {
            if started && !cur.msgstr.is_empty() {
                push(&mut cur, &mut entries);
                started = false;
            }
            cur.fuzzy |= flags.split(',').any(|f| f.trim() == "fuzzy");
        } else if let Some(s) = line.strip_prefix("msgid_plural ") {
            cur.plural = Some(quoted(s));
            field = 1;
        } else if let Some(s) = line.strip_prefix("msgid ") {
            if started {
                push(&mut cur, &mut entries);
            }
            started = true;
            cur.msgid = quoted(s);
            field = 0;
        } else if let Some(s) = line.strip_prefix("msgstr[") {
            let (idx, s) = s.split_once(']').expect("msgstr[n]");
            let idx: usize = idx.parse().expect("a plural index");
            assert_eq!(
                idx,
                cur.msgstr.len(),
                "{}:{}: msgstr[{idx}] out of order",
                path.display(),
                n + 1
            );
            cur.msgstr.push(quoted(s));
            field = 2 + idx;
        } else if let Some(s) = line.strip_prefix("msgstr ") {
            cur.msgstr.push(quoted(s));
            field = 2;
        } else if line.starts_with('"') {
            let more = quoted(line);
            match field {
                0 => cur.msgid.push_str(&more),
                1 => cur.plural.get_or_insert_default().push_str(&more),
                f => cur.msgstr[f - 2].push_str(&more),
            }
        } else {
            panic!("{}:{}: unexpected line {line:?}", path.display(), n + 1);
        }
    }
    if started {
        push(&mut cur, &mut entries);
    }
    let header = entries
        .iter()
        .position(|e| e.msgid.is_empty())
        .map(|i| entries.remove(i).msgstr.concat())
        .unwrap_or_default();
    (header, entries)
}

/// The singular translations of `lang`'s catalogue, by English msgid, as
/// the UI tests use them ([`crate::support::ui::Ui::tr`]).
pub fn catalogue(lang: &str) -> BTreeMap<String, String> {
    if lang == "en" {
        return BTreeMap::new();
    }
    let (_, entries) = read_po(&po_path(lang));
    entries
        .into_iter()
        .filter(|e| e.plural.is_none())
        .filter_map(|e| Some((unescape(&e.msgid), unescape(e.msgstr.first()?))))
        .collect()
}

/// A .po string's text: `\"` and `\\` undone (the catalogues use no
/// other escape).
fn unescape(s: &str) -> String {
    s.replace("\\\"", "\"").replace("\\\\", "\\")
}

pub fn po_path(lang: &str) -> PathBuf {
    Path::new(ROOT).join(format!(
        "ui/translations/{lang}/LC_MESSAGES/huddle-board.po"
    ))
}

/// Adds a problem for every entry of `lang`'s catalogue whose message is
/// no longer in `known` (`gone` says where it went and what to do).
pub fn stale_entries(
    lang: &str,
    entries: &[PoEntry],
    known: &std::collections::BTreeSet<&str>,
    gone: &str,
    problems: &mut Vec<String>,
) {
    for e in entries {
        if !known.contains(e.msgid.as_str()) {
            problems.push(format!("{lang}: {:?} is no longer {gone}", e.msgid));
        }
    }
}

/// Fails with every problem, one per line.
pub fn assert_no_problems(problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
