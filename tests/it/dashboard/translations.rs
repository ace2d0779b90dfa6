//! The dashboard's words: the template `ui/translations/huddle-dashboard.pot`
//! is exactly the texts the page shows (the `{{...}}` of `index.html`, the
//! `t()`, `tn()` and `N_()` texts of `app.js`, the aggregator's alert
//! texts); a text the kiosk's template also has is shared (translated
//! once, in the kiosk's `huddle-board.po`, and absent from
//! `huddle-dashboard.po`); every other one is translated in every
//! language's `huddle-dashboard.po` (no empty or fuzzy entry, the
//! placeholders kept, the plural forms the language has); and the page
//! has no text that bypasses the catalogue.
//!
//! Regenerate the template after changing a text of the page:
//! `HUDDLE_UPDATE_POT=1 cargo test --test it dashboard::translations`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::support::po::{assert_no_problems, read_po, stale_entries, PoEntry};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const WEB: &str = "src/aggregator/web";

/// Each language and its `Plural-Forms` (app.js's `PLURAL` computes the same).
const SHIPPED: [(&str, &str); 4] = [
    ("de", "nplurals=2; plural=(n != 1);"),
    ("es", "nplurals=2; plural=(n != 1);"),
    ("fr", "nplurals=2; plural=(n > 1);"),
    (
        "pl",
        "nplurals=3; plural=(n==1 ? 0 : n%10>=2 && n%10<=4 && (n%100<10 || n%100>=20) ? 1 : 2);",
    ),
];

/// The language names of the picker: each in its own language, the same
/// on every page.
const AUTONYMS: [&str; 5] = ["English", "Deutsch", "Español", "Français", "Polski"];

/// A message: its text and, for plurals, its plural (as .po text: `"`
/// and `\` escaped).
type Message = (String, Option<String>);

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn po_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// A JavaScript single-quoted literal at the start of `s`: its text and
/// the rest.
fn js_literal(s: &str) -> Option<(String, &str)> {
    let body = s.strip_prefix('\'')?;
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => out.extend(chars.next().map(|(_, c)| c)),
            '\'' => return Some((out, &body[i + 1..])),
            _ => out.push(c),
        }
    }
    None
}

/// Where `name(` is called in `code` (not as a part of a longer name).
fn calls<'a>(code: &'a str, name: &str) -> Vec<&'a str> {
    let pat = format!("{name}(");
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = code[from..].find(&pat) {
        let at = from + i;
        let before = code[..at].chars().next_back();
        if !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.') {
            out.push(&code[at + pat.len()..]);
        }
        from = at + pat.len();
    }
    out
}

/// The texts of app.js; panics on a `t(` whose text is neither a literal
/// nor one of the tables of `N_()` texts.
fn app_js_messages() -> BTreeMap<Message, &'static str> {
    let code: String = read(&format!("{WEB}/app.js"))
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = BTreeMap::new();
    let looked_up = [
        "STATES[",
        "ALERT_NAMES[",
        "ROLES[",
        "STEPS[",
        "TRENDS[",
        "p.text,",
    ];
    for (name, plural) in [("t", false), ("N_", false), ("tn", true)] {
        for rest in calls(&code, name) {
            // The definitions.
            if rest.starts_with("id") {
                continue;
            }
            let Some((text, after)) = js_literal(rest) else {
                assert!(
                    name == "t" && looked_up.iter().any(|l| rest.starts_with(l)),
                    "app.js: {name}({}...: the text must be a literal or an N_() table's",
                    &rest[..rest.len().min(30)]
                );
                continue;
            };
            let plural = plural.then(|| {
                let p = after
                    .trim_start()
                    .strip_prefix(',')
                    .expect("tn(singular, plural, n)");
                js_literal(p.trim_start()).expect("tn's plural literal").0
            });
            out.insert(
                (po_escape(&text), plural.as_deref().map(po_escape)),
                "src/aggregator/web/app.js",
            );
        }
    }
    out
}

/// Every message the page shows, with the file it comes from.
fn page_messages() -> BTreeMap<Message, BTreeSet<&'static str>> {
    let mut all: BTreeMap<Message, BTreeSet<&'static str>> = BTreeMap::new();
    let html = read(&format!("{WEB}/index.html"));
    let mut rest = html.as_str();
    while let Some(i) = rest.find("{{") {
        let j = rest[i..].find("}}").expect("{{ without }}");
        all.entry((po_escape(&rest[i + 2..i + j]), None))
            .or_default()
            .insert("src/aggregator/web/index.html");
        rest = &rest[i + j + 2..];
    }
    for (m, f) in app_js_messages() {
        all.entry(m).or_default().insert(f);
    }
    for text in huddle_board::aggregator::status::texts::ALL {
        all.entry((po_escape(text), None))
            .or_default()
            .insert("src/aggregator/status/texts.rs");
    }
    all
}

/// The kiosk template's singular messages (the shared ones come from there).
fn kiosk_messages() -> BTreeSet<String> {
    let (_, entries) = read_po(&Path::new(ROOT).join("ui/translations/huddle-board.pot"));
    entries
        .into_iter()
        .filter(|e| e.plural.is_none())
        .map(|e| e.msgid)
        .collect()
}

fn pot_path() -> PathBuf {
    Path::new(ROOT).join("ui/translations/huddle-dashboard.pot")
}

fn dashboard_po(lang: &str) -> PathBuf {
    Path::new(ROOT).join(format!(
        "ui/translations/{lang}/LC_MESSAGES/huddle-dashboard.po"
    ))
}

fn kiosk_po(lang: &str) -> PathBuf {
    Path::new(ROOT).join(format!(
        "ui/translations/{lang}/LC_MESSAGES/huddle-board.po"
    ))
}

fn pot_text(messages: &BTreeMap<Message, BTreeSet<&str>>, shared: &BTreeSet<String>) -> String {
    let mut out = String::from(
        "# The dashboard's messages: the {{...}} texts of src/aggregator/web/index.html,\n\
         # the t(), tn() and N_() texts of app.js, the alert texts of\n\
         # src/aggregator/status/texts.rs. Those marked \"shared\" are the kiosk's too:\n\
         # they are translated in huddle-board.po only; the others in huddle-dashboard.po.\n\
         # Regenerate: HUDDLE_UPDATE_POT=1 cargo test --test it dashboard::translations\n\
         msgid \"\"\n\
         msgstr \"\"\n\
         \"Project-Id-Version: huddle-dashboard\\n\"\n\
         \"MIME-Version: 1.0\\n\"\n\
         \"Content-Type: text/plain; charset=UTF-8\\n\"\n\
         \"Content-Transfer-Encoding: 8bit\\n\"\n",
    );
    for ((msgid, plural), files) in messages {
        out.push('\n');
        if plural.is_none() && shared.contains(msgid) {
            out.push_str("#. shared: translated in huddle-board.po\n");
        }
        for f in files {
            out.push_str(&format!("#: {f}\n"));
        }
        out.push_str(&format!("msgid \"{msgid}\"\n"));
        match plural {
            Some(p) => out.push_str(&format!(
                "msgid_plural \"{p}\"\nmsgstr[0] \"\"\nmsgstr[1] \"\"\n"
            )),
            None => out.push_str("msgstr \"\"\n"),
        }
    }
    out
}

#[test]
fn pot_is_every_text_of_the_page() {
    let messages = page_messages();
    assert!(
        messages.len() > 80,
        "found only {} messages",
        messages.len()
    );
    let expected = pot_text(&messages, &kiosk_messages());
    if std::env::var_os("HUDDLE_UPDATE_POT").is_some() {
        std::fs::write(pot_path(), &expected).unwrap();
    }
    let actual = std::fs::read_to_string(pot_path()).unwrap_or_default();
    assert!(
        actual == expected,
        "ui/translations/huddle-dashboard.pot is not the page's current texts: regenerate it \
         with `HUDDLE_UPDATE_POT=1 cargo test --test it dashboard::translations`, then \
         translate the new messages in every language's huddle-dashboard.po"
    );
}

/// The placeholders of a text (`{}`, `{n}`, `{board}`), sorted.
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

fn check_entry(lang: &str, nplurals: usize, m: &Message, e: &PoEntry, problems: &mut Vec<String>) {
    if e.fuzzy {
        problems.push(format!("{lang}: fuzzy {:?}", m.0));
    }
    if e.plural != m.1 {
        problems.push(format!(
            "{lang}: the plural of {:?} differs from the template",
            m.0
        ));
    }
    let wanted = if m.1.is_some() { nplurals } else { 1 };
    if e.msgstr.len() != wanted || e.msgstr.iter().any(|s| s.trim().is_empty()) {
        problems.push(format!(
            "{lang}: {:?} needs {wanted} non-empty translation(s)",
            m.0
        ));
    }
    for s in &e.msgstr {
        if placeholders(s) != placeholders(&m.0) {
            problems.push(format!(
                "{lang}: {:?} -> {s:?} changes the placeholders",
                m.0
            ));
        }
    }
}

#[test]
fn every_text_of_the_page_is_translated_once_in_every_language() {
    let messages = page_messages();
    let shared = kiosk_messages();
    let mut problems = Vec::new();
    for (lang, forms) in SHIPPED {
        let nplurals: usize = forms[9..10].parse().unwrap();
        let (header, own) = read_po(&dashboard_po(lang));
        if !header.contains(&format!("Plural-Forms: {forms}\\n")) {
            problems.push(format!(
                "{lang}: huddle-dashboard.po needs Plural-Forms: {forms}"
            ));
        }
        if !header.contains(&format!("Language: {lang}\\n")) {
            problems.push(format!(
                "{lang}: huddle-dashboard.po needs Language: {lang}"
            ));
        }
        let (kiosk_header, kiosk) = read_po(&kiosk_po(lang));
        assert!(
            kiosk_header.contains(&format!("Plural-Forms: {forms}\\n")),
            "{lang}: the kiosk's catalogue has other plural forms than app.js computes"
        );
        let own_by_id: BTreeMap<&str, &PoEntry> =
            own.iter().map(|e| (e.msgid.as_str(), e)).collect();
        let kiosk_by_id: BTreeMap<&str, &PoEntry> =
            kiosk.iter().map(|e| (e.msgid.as_str(), e)).collect();
        for m in messages.keys() {
            let is_shared = m.1.is_none() && shared.contains(&m.0);
            match (is_shared, own_by_id.get(m.0.as_str())) {
                (true, Some(_)) => problems.push(format!(
                    "{lang}: {:?} is the kiosk's too: translate it in huddle-board.po only, \
                     not in huddle-dashboard.po",
                    m.0
                )),
                (true, None) => match kiosk_by_id.get(m.0.as_str()) {
                    Some(e) => check_entry(lang, nplurals, m, e, &mut problems),
                    None => problems.push(format!("{lang}: huddle-board.po lacks {:?}", m.0)),
                },
                (false, Some(e)) => check_entry(lang, nplurals, m, e, &mut problems),
                (false, None) => {
                    problems.push(format!("{lang}: huddle-dashboard.po lacks {:?}", m.0))
                }
            }
        }
        let known: BTreeSet<&str> = messages.keys().map(|m| m.0.as_str()).collect();
        stale_entries(
            lang,
            &own,
            &known,
            "on the page: remove it from huddle-dashboard.po",
            &mut problems,
        );
    }
    assert_no_problems(&problems);
}

#[test]
fn the_page_shows_no_text_outside_the_catalogue() {
    let html = read(&format!("{WEB}/index.html"));
    let mut stray = Vec::new();
    // Text between tags: a {{message}}, a language's own name, or a dash.
    let mut rest = html.as_str();
    while let Some(i) = rest.find('>') {
        rest = &rest[i + 1..];
        let text = &rest[..rest.find('<').unwrap_or(rest.len())];
        let mut t = text.trim().to_owned();
        while let (Some(a), Some(b)) = (t.find("{{"), t.find("}}")) {
            t.replace_range(a..b + 2, "");
        }
        let t = t.trim();
        if !t.is_empty() && t != "\u{2014}" && !AUTONYMS.contains(&t) {
            stray.push(t.to_owned());
        }
    }
    // Attributes read out to people.
    for attr in ["aria-label=\"", "title=\"", "placeholder=\"", "alt=\""] {
        let mut rest = html.as_str();
        while let Some(i) = rest.find(attr) {
            rest = &rest[i + attr.len()..];
            let v = &rest[..rest.find('"').unwrap()];
            if !(v.starts_with("{{") && v.ends_with("}}")) {
                stray.push(format!("{attr}{v}\""));
            }
        }
    }
    assert!(
        stray.is_empty(),
        "index.html shows texts not from the catalogue: {stray:?}"
    );
    // Every language of the server is a catalogue here, and the picker's.
    let langs: Vec<&str> = huddle_board::aggregator::web::i18n::LANGUAGES.to_vec();
    assert_eq!(
        langs[1..].to_vec(),
        SHIPPED.map(|(l, _)| l).to_vec(),
        "the dashboard's languages and the catalogues"
    );
    for l in &langs {
        assert!(
            html.contains(&format!("<option value=\"{l}\" lang=\"{l}\">")),
            "the picker lacks {l}"
        );
    }
    // Each page is in its language and carries the whole catalogue.
    for (lang, _) in SHIPPED {
        let page = huddle_board::aggregator::web::i18n::render(lang);
        assert!(page.contains(&format!("<html lang=\"{lang}\">")));
        assert!(!page.contains("{{"), "{lang}: a {{text}} left in the page");
        let cat = huddle_board::aggregator::web::i18n::catalogue(lang);
        assert_eq!(
            cat.len(),
            page_messages().len(),
            "{lang}: the page's catalogue"
        );
        let english: Vec<&String> = cat
            .iter()
            .filter(|(k, v)| v[0] == **k)
            .map(|(k, _)| k)
            .collect();
        // Words that are the same in a language ("Coach", "Board") are
        // allowed, but most must differ: a catalogue that fell back to
        // English shows here.
        assert!(
            english.len() * 5 < cat.len(),
            "{lang}: {} of {} texts are English: {english:?}",
            english.len(),
            cat.len()
        );
    }
}
