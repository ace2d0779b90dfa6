//! The kiosk's translations: the template `ui/translations/huddle-board.pot`
//! is exactly the `@tr()` messages of `ui/**/*.slint`, and every shipped
//! language translates every one of them (no empty, no fuzzy entry, the
//! placeholders kept, the plural forms its language needs).
//!
//! Regenerate the template after changing a `@tr()` text:
//! `HUDDLE_UPDATE_POT=1 cargo test --test it translations::` (the same
//! extraction as `slint-tr-extractor --no-default-translation-context`,
//! without installing it; see ui/translations/README.md).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::support::po::{assert_no_problems, literal, po_path, read_po, stale_entries, PoEntry};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The languages shipped beside English and their number of plural forms.
const SHIPPED: [(&str, usize); 4] = [("de", 2), ("es", 2), ("fr", 2), ("pl", 3)];

/// One `@tr()` message: its text and, for plurals, the plural text, both
/// as written between the quotes (escapes kept, as in a .po file).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Message {
    msgid: String,
    plural: Option<String>,
}

fn slint_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            slint_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "slint") {
            out.push(path);
        }
    }
}

/// Every `@tr()` message of `text`, in order of appearance.
fn messages_of(text: &str, file: &str) -> Vec<Message> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("@tr(") {
        rest = &rest[at + 4..];
        let (msgid, after) = literal(rest.trim_start())
            .unwrap_or_else(|| panic!("{file}: @tr( must start with a string literal"));
        let after = after.trim_start();
        assert!(
            !after.starts_with("=>"),
            "{file}: @tr(\"{msgid}\" => ...): explicit contexts are not used (build.rs turns contexts off)"
        );
        let plural = after
            .strip_prefix('|')
            .map(|p| literal(p.trim_start()).expect("a plural literal").0);
        found.push(Message { msgid, plural });
    }
    found
}

/// The messages of the UI, each with the files that use it.
fn ui_messages() -> BTreeMap<Message, BTreeSet<String>> {
    let mut files = Vec::new();
    slint_files(&Path::new(ROOT).join("ui"), &mut files);
    let mut all: BTreeMap<Message, BTreeSet<String>> = BTreeMap::new();
    for path in files {
        let name = path
            .strip_prefix(ROOT)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        // Comments may mention @tr() without calling it.
        let code: String = text
            .lines()
            .map(|l| l.split("//").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        for m in messages_of(&code, &name) {
            all.entry(m).or_default().insert(name.clone());
        }
    }
    all
}

fn pot_text(messages: &BTreeMap<Message, BTreeSet<String>>) -> String {
    let mut out = String::from(
        "# The kiosk's messages, from the @tr() texts of ui/**/*.slint.\n\
         # Regenerate: HUDDLE_UPDATE_POT=1 cargo test --test it translations::\n\
         msgid \"\"\n\
         msgstr \"\"\n\
         \"Project-Id-Version: huddle-board\\n\"\n\
         \"MIME-Version: 1.0\\n\"\n\
         \"Content-Type: text/plain; charset=UTF-8\\n\"\n\
         \"Content-Transfer-Encoding: 8bit\\n\"\n",
    );
    for (m, files) in messages {
        out.push('\n');
        for f in files {
            out.push_str(&format!("#: {f}\n"));
        }
        out.push_str(&format!("msgid \"{}\"\n", m.msgid));
        match &m.plural {
            Some(p) => out.push_str(&format!(
                "msgid_plural \"{p}\"\nmsgstr[0] \"\"\nmsgstr[1] \"\"\n"
            )),
            None => out.push_str("msgstr \"\"\n"),
        }
    }
    out
}

fn pot_path() -> PathBuf {
    Path::new(ROOT).join("ui/translations/huddle-board.pot")
}

#[test]
fn pot_matches_the_slint_sources() {
    let messages = ui_messages();
    assert!(
        messages.len() > 300,
        "found only {} messages",
        messages.len()
    );
    let expected = pot_text(&messages);
    if std::env::var_os("HUDDLE_UPDATE_POT").is_some() {
        std::fs::write(pot_path(), &expected).unwrap();
    }
    let actual = std::fs::read_to_string(pot_path()).unwrap_or_default();
    assert!(
        actual == expected,
        "ui/translations/huddle-board.pot is not the current @tr() texts: \
         regenerate it with `HUDDLE_UPDATE_POT=1 cargo test --test it translations::`, \
         then translate the new messages in every language"
    );
}

/// The placeholders of a text (`{}`, `{0}`, `{n}`), sorted: a translation
/// may reorder numbered ones but must keep every one.
fn placeholders(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find('{') {
        let Some(j) = rest[i..].find('}') else { break };
        out.push(rest[i..i + j + 1].to_owned());
        rest = &rest[i + j + 1..];
    }
    out.sort();
    out
}

#[test]
fn every_message_is_translated_in_every_language() {
    let messages = ui_messages();
    let mut problems = Vec::new();
    for (lang, nplurals) in SHIPPED {
        let (header, entries) = read_po(&po_path(lang));
        if !header.contains(&format!("Plural-Forms: nplurals={nplurals};")) {
            problems.push(format!(
                "{lang}: the header needs Plural-Forms: nplurals={nplurals}; ..."
            ));
        }
        if !header.contains(&format!("Language: {lang}\\n")) {
            problems.push(format!("{lang}: the header needs Language: {lang}"));
        }
        let by_id: BTreeMap<&str, &PoEntry> =
            entries.iter().map(|e| (e.msgid.as_str(), e)).collect();
        for m in messages.keys() {
            let Some(e) = by_id.get(m.msgid.as_str()) else {
                problems.push(format!("{lang}: missing {:?}", m.msgid));
                continue;
            };
            if e.fuzzy {
                problems.push(format!("{lang}: fuzzy {:?}", m.msgid));
            }
            if e.plural != m.plural {
                problems.push(format!(
                    "{lang}: plural of {:?} differs from the template",
                    m.msgid
                ));
            }
            let wanted = if m.plural.is_some() { nplurals } else { 1 };
            if e.msgstr.len() != wanted || e.msgstr.iter().any(|s| s.trim().is_empty()) {
                problems.push(format!(
                    "{lang}: {:?} needs {wanted} non-empty translation(s)",
                    m.msgid
                ));
            }
            for s in &e.msgstr {
                if placeholders(s) != placeholders(&m.msgid) {
                    problems.push(format!(
                        "{lang}: {:?} -> {s:?} changes the placeholders",
                        m.msgid
                    ));
                }
            }
        }
        let known: BTreeSet<&str> = messages.keys().map(|m| m.msgid.as_str()).collect();
        stale_entries(
            lang,
            &entries,
            &known,
            "in the UI: remove it",
            &mut problems,
        );
    }
    assert_no_problems(&problems);
}

/// One letter with an accent, the same width class, so that the pseudo
/// text keeps the English text's shape: `a` -> `å`, `T` -> `Ţ`.
fn accented(c: char) -> char {
    const FROM: &str = "abcdeghijklnoprstuwyzACDEGHIJKLNORSTUWYZ";
    const TO: &str = "åƀçðéĝĥîĵķļñöþŕšţüŵýžÅÇÐÉĜĤÎĴĶĻÑÖŔŠŢÜŴÝŽ";
    FROM.chars()
        .position(|f| f == c)
        .and_then(|i| TO.chars().nth(i))
        .unwrap_or(c)
}

/// The pseudo-locale's words for an English text (as written in the .po,
/// escapes kept): every letter accented, the placeholders and escapes
/// kept, and about 40 % more characters, as brackets around it and filler
/// words inside, so that a cut-off end shows: `Welcome, {}.` -> `[Ŵéļçömé, {}. ļöŕ]`.
fn pseudo(msgid: &str) -> String {
    let mut body = String::new();
    let mut visible = 0usize;
    let mut chars = msgid.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                body.push(c);
                body.extend(chars.next());
                visible += 1;
            }
            '{' => {
                body.push(c);
                for d in chars.by_ref() {
                    body.push(d);
                    if d == '}' {
                        break;
                    }
                }
                visible += 4;
            }
            c => {
                body.push(accented(c));
                visible += 1;
            }
        }
    }
    if !msgid.chars().any(|c| c.is_alphabetic()) {
        return body;
    }
    let extra = (visible * 4).div_ceil(10);
    let filler: String = "ļöŕéñ îþšüñ ðöļöŕ šîţ åçéţ "
        .chars()
        .cycle()
        .take(extra.saturating_sub(3))
        .collect();
    let filler = filler.trim_end();
    if filler.is_empty() {
        format!("[{body}]")
    } else {
        format!("[{body} {filler}]")
    }
}

fn pseudo_po(messages: &BTreeMap<Message, BTreeSet<String>>) -> String {
    let mut out = String::from(
        "# The pseudo-locale: the template's texts about 40 % longer, with accents,\n\
         # to check that the screens fit a long language. Generated: do not edit.\n\
         # Regenerate: HUDDLE_UPDATE_POT=1 cargo test --test it translations::\n\
         msgid \"\"\n\
         msgstr \"\"\n\
         \"Project-Id-Version: huddle-board\\n\"\n\
         \"Language: xx\\n\"\n\
         \"MIME-Version: 1.0\\n\"\n\
         \"Content-Type: text/plain; charset=UTF-8\\n\"\n\
         \"Content-Transfer-Encoding: 8bit\\n\"\n\
         \"Plural-Forms: nplurals=2; plural=(n != 1);\\n\"\n",
    );
    for m in messages.keys() {
        out.push_str(&format!("\nmsgid \"{}\"\n", m.msgid));
        match &m.plural {
            Some(p) => out.push_str(&format!(
                "msgid_plural \"{p}\"\nmsgstr[0] \"{}\"\nmsgstr[1] \"{}\"\n",
                pseudo(&m.msgid),
                pseudo(p)
            )),
            None => out.push_str(&format!("msgstr \"{}\"\n", pseudo(&m.msgid))),
        }
    }
    out
}

#[test]
fn the_pseudo_locale_is_the_template_made_longer() {
    let expected = pseudo_po(&ui_messages());
    let path = po_path(huddle_board::kiosk::language::PSEUDO);
    if std::env::var_os("HUDDLE_UPDATE_POT").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &expected).unwrap();
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "{} is not the current template made longer: regenerate it with \
         `HUDDLE_UPDATE_POT=1 cargo test --test it translations::`",
        path.display()
    );
    assert_eq!(pseudo("Next"), "[Ñéxţ]");
    assert_eq!(pseudo("Welcome, {}."), "[Ŵéļçömé, {}. ļöŕ]");
    assert_eq!(pseudo("\\\"{n}\\\" open"), "[\\\"{n}\\\" öþéñ ļö]");
    assert_eq!(pseudo("{} / {}"), "{} / {}");
}

#[test]
fn the_shipped_languages_are_the_catalogues() {
    let mut dirs: Vec<String> = std::fs::read_dir(Path::new(ROOT).join("ui/translations"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|l| l != huddle_board::kiosk::language::PSEUDO)
        .collect();
    dirs.sort();
    let mut shipped: Vec<String> = huddle_board::kiosk::language::LANGUAGES
        .iter()
        .filter(|l| **l != "en")
        .map(|l| l.to_string())
        .collect();
    shipped.sort();
    assert_eq!(dirs, shipped);
    assert_eq!(SHIPPED.map(|(l, _)| l.to_owned()).to_vec(), shipped);
}

#[test]
fn the_reader_sees_fuzzy_and_empty_entries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.po");
    std::fs::write(
        &path,
        "msgid \"\"\nmsgstr \"\"\n\"Language: xx\\n\"\n\n#, fuzzy\nmsgid \"A {}\"\nmsgstr \"B {}\"\n\nmsgid \"C\"\nmsgstr \"\"\n\nmsgid \"{} d\"\nmsgid_plural \"{} ds\"\nmsgstr[0] \"{} x\"\nmsgstr[1] \"{} y\"\n",
    )
    .unwrap();
    let (header, entries) = read_po(&path);
    assert!(header.contains("Language: xx"));
    assert_eq!(entries.len(), 3);
    assert!(entries[0].fuzzy && !entries[1].fuzzy);
    assert_eq!(entries[1].msgstr, vec![String::new()]);
    assert_eq!(entries[2].msgstr.len(), 2);
    assert_eq!(placeholders("{1} a {0}"), placeholders("{0} b {1}"));
    assert_ne!(placeholders("{} a"), placeholders("a"));
}
