//! The dashboard's languages: which one a request gets, and the page in it.
//!
//! The words: `ui/translations/huddle-dashboard.pot` lists every message
//! the page shows (the `{{...}}` texts of `index.html`, the `t(...)` and
//! `tn(...)` texts of `app.js`, and the alerts' texts of
//! [`crate::aggregator::status::texts`]). A message the kiosk's screens
//! also show (a status or role name, "Attendance") is translated once, in
//! the kiosk's catalogue `<lang>/LC_MESSAGES/huddle-board.po`; every other
//! one in `<lang>/LC_MESSAGES/huddle-dashboard.po` beside it. Both are
//! compiled in, as the kiosk's are (see ui/translations/README.md).
//!
//! Which language ([`choose`]): the [`COOKIE`] cookie that the page's
//! language picker sets, when it names a shipped language; else the
//! browser's `Accept-Language`, by its q-values (a region is ignored:
//! `de-AT` is `de`; `q=0` refuses); else English.
//!
//! The page in a language ([`page`], made once per language): `index.html`
//! with each `{{English text}}` replaced by its translation, `<html
//! lang>` set, the picker's current language selected, and the
//! catalogue of every message as JSON in a `<script
//! type="application/json" id="catalogue">` data block (not run, so the
//! Content-Security-Policy allows it), from which `app.js` takes its
//! texts. Numbers, dates and times are formatted by the browser (`Intl`)
//! in the page's language.

use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The languages of the page, English (the source language) first.
pub const LANGUAGES: [&str; 5] = ["en", "de", "es", "fr", "pl"];

/// The cookie in which the page's language picker keeps the choice.
pub const COOKIE: &str = "huddle_lang";

const INDEX_HTML: &str = include_str!("index.html");
const TEMPLATE: &str = include_str!("../../../ui/translations/huddle-dashboard.pot");

/// Each language's catalogues: the kiosk's (shared messages) and the
/// dashboard's own.
const CATALOGUES: [(&str, &str, &str); 4] = [
    (
        "de",
        include_str!("../../../ui/translations/de/LC_MESSAGES/huddle-board.po"),
        include_str!("../../../ui/translations/de/LC_MESSAGES/huddle-dashboard.po"),
    ),
    (
        "es",
        include_str!("../../../ui/translations/es/LC_MESSAGES/huddle-board.po"),
        include_str!("../../../ui/translations/es/LC_MESSAGES/huddle-dashboard.po"),
    ),
    (
        "fr",
        include_str!("../../../ui/translations/fr/LC_MESSAGES/huddle-board.po"),
        include_str!("../../../ui/translations/fr/LC_MESSAGES/huddle-dashboard.po"),
    ),
    (
        "pl",
        include_str!("../../../ui/translations/pl/LC_MESSAGES/huddle-board.po"),
        include_str!("../../../ui/translations/pl/LC_MESSAGES/huddle-dashboard.po"),
    ),
];

/// One entry of a .po file, its strings unescaped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    /// The English text.
    pub msgid: String,
    /// The English plural, for a message with plural forms.
    pub plural: Option<String>,
    /// The translations (one, or one per plural form).
    pub msgstr: Vec<String>,
    /// Marked `#, fuzzy` (not used).
    pub fuzzy: bool,
}

/// The entries of a .po or .pot file (the header, `msgid ""`, left out).
/// Lines it does not know are skipped: the files are checked by the
/// translation tests, which read them with their own reader.
pub fn parse_po(text: &str) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut cur: Option<Entry> = None;
    let mut fuzzy = false;
    // Which string a continuation line extends: 0 msgid, 1 plural, 2+n msgstr[n].
    let mut field = 0usize;
    for line in text.lines().map(str::trim) {
        if let Some(flags) = line.strip_prefix("#,") {
            fuzzy = flags.split(',').any(|f| f.trim() == "fuzzy");
        } else if let Some(s) = line.strip_prefix("msgid_plural ") {
            if let Some(e) = cur.as_mut() {
                e.plural = Some(unquote(s));
            }
            field = 1;
        } else if let Some(s) = line.strip_prefix("msgid ") {
            entries.extend(cur.take());
            cur = Some(Entry {
                msgid: unquote(s),
                fuzzy: std::mem::take(&mut fuzzy),
                ..Entry::default()
            });
            field = 0;
        } else if let Some(s) = line.strip_prefix("msgstr") {
            let s = s.trim_start_matches(|c: char| c == '[' || c.is_ascii_digit() || c == ']');
            if let Some(e) = cur.as_mut() {
                e.msgstr.push(unquote(s.trim()));
                field = 1 + e.msgstr.len();
            }
        } else if line.starts_with('"') {
            if let Some(e) = cur.as_mut() {
                let more = unquote(line);
                match field {
                    0 => e.msgid.push_str(&more),
                    1 => e.plural.get_or_insert_default().push_str(&more),
                    f => {
                        if let Some(s) = e.msgstr.get_mut(f - 2) {
                            s.push_str(&more);
                        }
                    }
                }
            }
        }
    }
    entries.extend(cur);
    entries.retain(|e| !e.msgid.is_empty());
    entries
}

/// A .po string's text: the quotes gone, `\"`, `\\`, `\n` and `\t` undone.
fn unquote(s: &str) -> String {
    let inner = s
        .trim()
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or("");
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The language of a request: `cookie` (the picker's choice) when it is
/// shipped, else the best shipped language of `accept_language`, else `en`.
pub fn choose(accept_language: Option<&str>, cookie: Option<&str>) -> &'static str {
    if let Some(l) = cookie.and_then(shipped) {
        return l;
    }
    accept_language.and_then(negotiate).unwrap_or(LANGUAGES[0])
}

/// The shipped language of a tag (`de`, `de-AT`, `DE_de`), if any.
fn shipped(tag: &str) -> Option<&'static str> {
    let primary = tag.trim().split(['-', '_']).next()?.to_ascii_lowercase();
    LANGUAGES.iter().copied().find(|l| *l == primary)
}

/// The shipped language an `Accept-Language` value likes best: highest
/// q-value first, the header's order among equals; `q=0` and languages
/// not shipped are passed over; `*` means any, so English.
pub fn negotiate(header: &str) -> Option<&'static str> {
    let mut ranked: Vec<(u16, usize, &str)> = Vec::new();
    for (i, item) in header.split(',').enumerate().take(32) {
        let mut parts = item.split(';');
        let tag = parts.next().unwrap_or("").trim();
        let mut q = 1000u16;
        for p in parts {
            if let Some(v) = p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")) {
                q = v
                    .trim()
                    .parse::<f32>()
                    .ok()
                    .filter(|q| (0.0..=1.0).contains(q))
                    .map_or(0, |q| (q * 1000.0).round() as u16);
            }
        }
        if q > 0 && !tag.is_empty() {
            ranked.push((q, i, tag));
        }
    }
    ranked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    ranked.iter().find_map(|(_, _, tag)| {
        if *tag == "*" {
            Some(LANGUAGES[0])
        } else {
            shipped(tag)
        }
    })
}

/// `lang`'s translation of every message of the template: one string, or
/// one per plural form; English is the template itself. A message a
/// catalogue lacks stays English (the translation tests allow none).
pub fn catalogue(lang: &str) -> BTreeMap<String, Vec<String>> {
    let found: Vec<Entry> = CATALOGUES
        .iter()
        .filter(|(l, _, _)| *l == lang)
        .flat_map(|(_, kiosk, dashboard)| parse_po(dashboard).into_iter().chain(parse_po(kiosk)))
        .filter(|e| !e.fuzzy && e.msgstr.iter().all(|s| !s.is_empty()))
        .collect();
    let mut out = BTreeMap::new();
    for m in parse_po(TEMPLATE) {
        let english = match &m.plural {
            Some(p) => vec![m.msgid.clone(), p.clone()],
            None => vec![m.msgid.clone()],
        };
        // The dashboard's own catalogue first, then the kiosk's.
        let t = found
            .iter()
            .find(|e| e.msgid == m.msgid && e.plural == m.plural)
            .map_or(english, |e| e.msgstr.clone());
        out.insert(m.msgid, t);
    }
    out
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The page in `lang` (one of [`LANGUAGES`]; another gives English).
pub fn render(lang: &str) -> String {
    let lang = LANGUAGES
        .iter()
        .copied()
        .find(|l| *l == lang)
        .unwrap_or("en");
    let cat = catalogue(lang);
    let mut html = String::with_capacity(INDEX_HTML.len() + 16 * 1024);
    let mut rest = INDEX_HTML;
    while let Some(i) = rest.find("{{") {
        html.push_str(&rest[..i]);
        let Some(j) = rest[i..].find("}}") else { break };
        let id = &rest[i + 2..i + j];
        let text = cat
            .get(id)
            .and_then(|t| t.first())
            .map_or(id, String::as_str);
        html.push_str(&html_escape(text));
        rest = &rest[i + j + 2..];
    }
    html.push_str(rest);
    let json = serde_json::json!({ "lang": lang, "messages": cat });
    // Design: `<` never appears raw, so the data block cannot be ended by
    // a translation.
    let json = json.to_string().replace('<', "\\u003c");
    html.replacen("<html lang=\"en\">", &format!("<html lang=\"{lang}\">"), 1)
        .replacen(
            &format!("<option value=\"{lang}\" lang=\"{lang}\">"),
            &format!("<option value=\"{lang}\" lang=\"{lang}\" selected>"),
            1,
        )
        .replacen(
            "<!-- catalogue -->",
            &format!("<script type=\"application/json\" id=\"catalogue\">{json}</script>"),
            1,
        )
}

/// The page in `lang`, made on first use.
pub fn page(lang: &str) -> &'static str {
    static PAGES: OnceLock<Vec<String>> = OnceLock::new();
    let pages = PAGES.get_or_init(|| LANGUAGES.iter().map(|l| render(l)).collect());
    let i = LANGUAGES.iter().position(|l| *l == lang).unwrap_or(0);
    &pages[i]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_values_decide_and_the_cookie_wins() {
        assert_eq!(negotiate("de-DE,de;q=0.9,en;q=0.8"), Some("de"));
        assert_eq!(negotiate("en;q=0.5, pl;q=0.9"), Some("pl"));
        assert_eq!(negotiate("ja, fr-CA;q=0.3"), Some("fr"));
        assert_eq!(negotiate("es;q=0, fr;q=0.1"), Some("fr"));
        assert_eq!(negotiate("ja, zh"), None);
        assert_eq!(negotiate("ja, *;q=0.1"), Some("en"));
        assert_eq!(negotiate("de;q=0.5, es;q=0.5"), Some("de"));
        assert_eq!(choose(Some("ja"), None), "en");
        assert_eq!(choose(None, None), "en");
        assert_eq!(choose(Some("de"), Some("fr")), "fr");
        // A cookie naming no shipped language is ignored.
        assert_eq!(choose(Some("de"), Some("xx")), "de");
    }

    #[test]
    fn the_page_is_german_for_german() {
        let de = render("de");
        assert!(de.starts_with("<!doctype html>\n<html lang=\"de\">"));
        assert!(de.contains("<option value=\"de\" lang=\"de\" selected>"));
        assert!(!de.contains("{{"), "a text left untranslated in the page");
        assert!(de.contains("id=\"catalogue\""));
        let en = render("en");
        assert!(en.contains("<html lang=\"en\">") && en.contains(">Boards<"));
        // Every message has a German text, and some differ from English.
        let cat = catalogue("de");
        assert!(cat.len() > 50);
        assert_eq!(cat["Not started"], vec!["Nicht gestartet".to_owned()]);
    }

    #[test]
    fn po_strings_are_unescaped() {
        let e = parse_po(
            "msgid \"\"\nmsgstr \"x\"\n\n#, fuzzy\nmsgid \"a \\\"b\\\"\"\nmsgstr \"\"\n\"c\\\\\"\n\nmsgid \"{n} d\"\nmsgid_plural \"{n} ds\"\nmsgstr[0] \"e\"\nmsgstr[1] \"f\"\n",
        );
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].msgid, "a \"b\"");
        assert_eq!(e[0].msgstr, vec!["c\\".to_owned()]);
        assert!(e[0].fuzzy && !e[1].fuzzy);
        assert_eq!(e[1].plural.as_deref(), Some("{n} ds"));
        assert_eq!(e[1].msgstr.len(), 2);
    }
}
