//! The layout of `src/` as `src/lib.rs` describes it, checked by reading
//! the files (std only, no build of the code under test):
//!
//! - the layers import only downwards: `src/domain/**` names nothing else
//!   of the crate; `src/wire/**` only `domain` and `wire`; the shared
//!   modules (`config.rs`, `mqtt.rs`, `text.rs`, `logging.rs`,
//!   `notify.rs`) only `domain`, `wire` and each other;
//! - the two wings never import each other: `src/kiosk/**` never names
//!   `crate::aggregator`, `src/aggregator/**` never names `crate::kiosk`;
//! - the site store (`src/aggregator/store*`) imports nothing from
//!   `status` or `coaching` (one owner of the site file's migrations);
//! - the kiosk's core (`src/kiosk/app/**`) runs no SQL: no `rusqlite`,
//!   `execute(`, `query_row`, `prepare(` (the store owns every statement);
//! - no `.rs` file under `src/` is over 1,000 lines;
//! - no issue numbers in `src/` (`issue 5`, `issues 5 and 6`, `#13` in a
//!   comment): the code says what it does, the history says why;
//! - every `mod.rs` and `lib.rs` opens with a `//!` paragraph.
//!
//! What counts as naming a module: every `crate::` path in code (use
//! statements, grouped `use crate::{a, b::{c}}` across lines, inline
//! paths, `#[cfg(test)]` code included) and in doc comments (`//!`,
//! `///`): a doc link such as [`crate::kiosk::app`] is an import for the
//! reader, and `cargo doc` follows it. `super::` paths are resolved from
//! the file's own module (an inline `mod` inside a file is not tracked).
//! Plain `//` comments and string literals are not code and are skipped.
//!
//! Each failure lists every violation as `file:line: rule: what`, with
//! what to do.

use std::path::{Path, PathBuf};

const MAX_LINES: usize = 1000;
const SHARED: [&str; 5] = ["config", "mqtt", "text", "logging", "notify"];

/// One `.rs` file under `src/`, read and split into views.
struct Source {
    /// Relative to the crate root, with `/`, e.g. `src/kiosk/app/mod.rs`.
    path: String,
    /// The file as it is.
    text: String,
    /// Same length and lines: string and char literals and plain
    /// comments blanked; doc comments kept.
    code_and_docs: String,
    /// Same length and lines: only comment text (plain and doc) kept.
    comments: String,
    /// Same length and lines: only code (every comment and literal blanked).
    code: String,
}

impl Source {
    /// The module path of the file: `src/kiosk/app/mod.rs` is
    /// `["kiosk", "app"]`, `src/kiosk/outbox.rs` `["kiosk", "outbox"]`.
    fn module(&self) -> Vec<String> {
        let rel = self.path.trim_start_matches("src/").trim_end_matches(".rs");
        let mut parts: Vec<String> = rel.split('/').map(str::to_owned).collect();
        if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
            parts.pop();
        }
        parts
    }

    fn line_of(&self, byte: usize) -> usize {
        self.text[..byte].matches('\n').count() + 1
    }

    /// `file:line`, and `(doc link)` when the path at `byte` is in a doc
    /// comment rather than in code.
    fn at(&self, byte: usize) -> String {
        let doc = self.code.as_bytes()[byte] == b' ';
        format!(
            "{}:{}{}",
            self.path,
            self.line_of(byte),
            if doc {
                " (doc comment: a link is an import for the reader; if it only names the boundary, say it in plain words without `crate::`)"
            } else {
                ""
            }
        )
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn sources() -> Vec<Source> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&root().join("src"), &mut files);
    assert!(!files.is_empty(), "no .rs file under src/");
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p)
                .unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
            let (code_and_docs, comments, code) = views(&text);
            Source {
                path: p
                    .strip_prefix(root())
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/"),
                text,
                code_and_docs,
                comments,
                code,
            }
        })
        .collect()
}

/// Splits Rust source into three views of the same length (every newline
/// kept, so that byte offsets and line numbers agree with the file):
/// code with doc comments, comments only, code only. A small lexer: line
/// and (nested) block comments, strings, raw strings, byte strings, char
/// literals (told from lifetimes).
fn views(text: &str) -> (String, String, String) {
    #[derive(Clone, Copy, PartialEq)]
    enum Kind {
        Code,
        Doc,
        Comment,
        Literal,
    }
    let b = text.as_bytes();
    let mut kind = vec![Kind::Code; b.len()];
    let mut i = 0;
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            let end = text[i..].find('\n').map_or(b.len(), |n| i + n);
            let doc = (b.get(i + 2) == Some(&b'/') && b.get(i + 3) != Some(&b'/'))
                || b.get(i + 2) == Some(&b'!');
            let k = if doc { Kind::Doc } else { Kind::Comment };
            kind[i..end].iter_mut().for_each(|x| *x = k);
            i = end;
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let doc = matches!(b.get(i + 2), Some(b'!'))
                || (b.get(i + 2) == Some(&b'*') && b.get(i + 3) != Some(&b'/'));
            let start = i;
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            let k = if doc { Kind::Doc } else { Kind::Comment };
            kind[start..i].iter_mut().for_each(|x| *x = k);
        } else if (c == b'r' || (c == b'b' && b.get(i + 1) == Some(&b'r')))
            && (i == 0 || !ident(b[i - 1]))
            && {
                let j = i + if c == b'b' { 2 } else { 1 };
                let hashes = b[j..].iter().take_while(|&&x| x == b'#').count();
                b.get(j + hashes) == Some(&b'"')
            }
        {
            let j = i + if c == b'b' { 2 } else { 1 };
            let hashes = b[j..].iter().take_while(|&&x| x == b'#').count();
            let close = format!("\"{}", "#".repeat(hashes));
            let body = j + hashes + 1;
            let end = text[body..]
                .find(&close)
                .map_or(b.len(), |n| body + n + close.len());
            kind[i..end].iter_mut().for_each(|x| *x = Kind::Literal);
            i = end;
        } else if c == b'"' {
            let start = i;
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i = (i + 1).min(b.len());
            kind[start..i].iter_mut().for_each(|x| *x = Kind::Literal);
        } else if c == b'\'' {
            // A char literal ('x', '\n', '\u{1F600}', 'é') or a lifetime ('a).
            let rest = &text[i + 1..];
            let end = if rest.starts_with('\\') {
                rest[2..].find('\'').map(|n| i + 1 + 2 + n + 1)
            } else {
                let mut chars = rest.char_indices();
                match (chars.next(), chars.next()) {
                    (Some(_), Some((n, '\''))) => Some(i + 1 + n + 1),
                    _ => None,
                }
            };
            match end {
                Some(end) => {
                    kind[i..end].iter_mut().for_each(|x| *x = Kind::Literal);
                    i = end;
                }
                None => i += 1,
            }
        } else {
            i += 1;
        }
    }
    let view = |keep: &dyn Fn(Kind) -> bool| -> String {
        let bytes: Vec<u8> = b
            .iter()
            .zip(&kind)
            .map(|(&c, &k)| {
                if c == b'\n' || keep(k) {
                    c
                } else if c.is_ascii() {
                    b' '
                } else {
                    // Continuation bytes of a blanked character: blank too
                    // (the result stays the same length and valid UTF-8).
                    b' '
                }
            })
            .collect();
        String::from_utf8(bytes).unwrap()
    };
    (
        view(&|k| matches!(k, Kind::Code | Kind::Doc)),
        view(&|k| matches!(k, Kind::Doc | Kind::Comment)),
        view(&|k| k == Kind::Code),
    )
}

/// Every module path the text names through `crate::` or `super::`, with
/// the byte offset where it starts. Groups are expanded:
/// `crate::{a::b, c::{d, e}}` gives `[a, b]`, `[c, d]`, `[c, e]`.
/// `super::` is resolved from `module` (the file's module path).
fn paths(text: &str, module: &[String]) -> Vec<(usize, Vec<String>)> {
    let b = text.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let at_word = i == 0 || !(ident(b[i - 1]) || b[i - 1] == b'$' || b[i - 1] == b':');
        if at_word && b[i..].starts_with(b"crate::") {
            for p in group(text, i + "crate::".len()) {
                out.push((i, p));
            }
            i += "crate::".len();
        } else if at_word && b[i..].starts_with(b"super::") {
            let mut base: Vec<String> = module.to_vec();
            let mut j = i;
            while text[j..].starts_with("super::") {
                base.pop();
                j += "super::".len();
                j += skip_space(&text[j..]);
            }
            for p in group(text, j) {
                let mut full = base.clone();
                full.extend(p);
                out.push((i, full));
            }
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

fn skip_space(s: &str) -> usize {
    s.len() - s.trim_start().len()
}

/// The paths of a `use` tree starting at `at` (after `crate::`).
fn group(text: &str, at: usize) -> Vec<Vec<String>> {
    fn tree(text: &str, mut i: usize) -> (Vec<Vec<String>>, usize) {
        let b = text.as_bytes();
        let mut segs: Vec<String> = Vec::new();
        loop {
            i += skip_space(&text[i..]);
            if b.get(i) == Some(&b'{') {
                let mut all = Vec::new();
                i += 1;
                loop {
                    i += skip_space(&text[i..]);
                    match b.get(i) {
                        None => return (all, i),
                        Some(b'}') => return (prefixed(&segs, all), i + 1),
                        Some(b',') => i += 1,
                        _ => {
                            let (sub, j) = tree(text, i);
                            all.extend(sub);
                            if j == i {
                                // Something unexpected: the next character.
                                i += text[i..].chars().next().map_or(1, char::len_utf8);
                            } else {
                                i = j;
                            }
                        }
                    }
                }
            }
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            if i == start {
                // `*` or the end of the path.
                if b.get(i) == Some(&b'*') {
                    i += 1;
                }
                return (vec![segs], i);
            }
            let seg = &text[start..i];
            if seg != "self" {
                segs.push(seg.to_owned());
            }
            let j = i + skip_space(&text[i..]);
            if text[j..].starts_with("::") {
                i = j + 2;
            } else {
                // ` as name` ends the path (the alias is skipped); so does
                // anything else.
                let rest = &text[j..];
                if rest.starts_with("as") && rest[2..].starts_with(char::is_whitespace) {
                    let k = j + 2 + skip_space(&rest[2..]);
                    let alias = text[k..]
                        .bytes()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_')
                        .count();
                    return (vec![segs], k + alias);
                }
                return (vec![segs], i);
            }
        }
    }
    fn prefixed(prefix: &[String], subs: Vec<Vec<String>>) -> Vec<Vec<String>> {
        subs.into_iter()
            .map(|s| prefix.iter().cloned().chain(s).collect())
            .collect()
    }
    tree(text, at).0
}

/// Where a file sits in the layers of `src/lib.rs`.
#[derive(Debug, PartialEq)]
enum Layer {
    Domain,
    Wire,
    Shared,
    Kiosk,
    Aggregator,
    Other,
}

fn layer(path: &str) -> Layer {
    let rel = path.trim_start_matches("src/");
    let top = rel.split('/').next().unwrap().trim_end_matches(".rs");
    match top {
        "domain" => Layer::Domain,
        "wire" => Layer::Wire,
        "kiosk" => Layer::Kiosk,
        "aggregator" => Layer::Aggregator,
        t if SHARED.contains(&t) && !rel.contains('/') => Layer::Shared,
        _ => Layer::Other,
    }
}

/// Fails with every violation, one per line, under a heading that says
/// what the rule is for.
fn report(rule: &str, why: &str, violations: Vec<String>) {
    assert!(
        violations.is_empty(),
        "{rule}: {} violation(s) in src/ ({why}):\n{}\n",
        violations.len(),
        violations.join("\n")
    );
}

#[test]
fn the_layers_import_only_downwards() {
    let mut bad = Vec::new();
    for s in sources() {
        let (allowed, fix): (&[&str], &str) = match layer(&s.path) {
            Layer::Domain => (
                &["domain"],
                "domain is the pure core: move the code that needs it out to the layer that uses both, or pass the value in",
            ),
            Layer::Wire => (
                &["domain", "wire"],
                "wire is the contract: move what it needs into wire or domain, or the code that needs more up into a wing",
            ),
            Layer::Shared => (
                &["domain", "wire", "config", "mqtt", "text", "logging", "notify"],
                "shared modules serve both wings: move the wing's part into src/kiosk or src/aggregator",
            ),
            _ => continue,
        };
        for (at, p) in paths(&s.code_and_docs, &s.module()) {
            let Some(first) = p.first() else { continue };
            let top_level = matches!(
                first.as_str(),
                "domain"
                    | "wire"
                    | "kiosk"
                    | "aggregator"
                    | "config"
                    | "mqtt"
                    | "text"
                    | "logging"
                    | "notify"
            );
            if top_level && !allowed.contains(&first.as_str()) {
                bad.push(format!(
                    "{}: {:?} layer names crate::{}: it may import only {}; {fix}",
                    s.at(at),
                    layer(&s.path),
                    p.join("::"),
                    allowed.join(", "),
                ));
            }
        }
    }
    report(
        "layers",
        "domain imports nothing of the crate, wire only domain, the shared modules only domain, wire and each other; doc links count",
        bad,
    );
}

#[test]
fn the_wings_never_import_each_other() {
    let mut bad = Vec::new();
    for s in sources() {
        let (other, fix) = match layer(&s.path) {
            Layer::Kiosk => (
                "aggregator",
                "the kiosk must not depend on the site service: move what both need into src/domain, src/wire or a shared module",
            ),
            Layer::Aggregator => (
                "kiosk",
                "the aggregator builds without the kiosk (no Slint): move what both need into src/domain, src/wire or a shared module",
            ),
            _ => continue,
        };
        for (at, p) in paths(&s.code_and_docs, &s.module()) {
            if p.first().map(String::as_str) == Some(other) {
                bad.push(format!(
                    "{}: names crate::{}: {fix}",
                    s.at(at),
                    p.join("::")
                ));
            }
        }
    }
    report(
        "wings",
        "src/kiosk never names crate::aggregator and src/aggregator never names crate::kiosk; doc links count",
        bad,
    );
}

#[test]
fn the_site_store_imports_neither_status_nor_coaching() {
    let mut bad = Vec::new();
    for s in sources() {
        let rel = s.path.as_str();
        if !(rel == "src/aggregator/store.rs" || rel.starts_with("src/aggregator/store/")) {
            continue;
        }
        for (at, p) in paths(&s.code_and_docs, &s.module()) {
            let names: Vec<&str> = p.iter().map(String::as_str).collect();
            if let ["aggregator", sub @ ("status" | "coaching"), ..] = names[..] {
                bad.push(format!(
                    "{}: names crate::{}: the store owns the site file and its migrations for everyone; move what it takes from {sub} into the store (or have {sub} call the store)",
                    s.at(at),
                    p.join("::")
                ));
            }
        }
    }
    report(
        "site store",
        "src/aggregator/store imports nothing from status or coaching",
        bad,
    );
}

#[test]
fn the_kiosk_app_runs_no_sql() {
    let mut bad = Vec::new();
    for s in sources() {
        if !s.path.starts_with("src/kiosk/app/") {
            continue;
        }
        for (n, line) in s.code.lines().enumerate() {
            for word in ["rusqlite", "execute(", "query_row", "prepare("] {
                if line.contains(word) {
                    bad.push(format!(
                        "{}:{}: `{word}`: the core runs no SQL; add a named function to src/kiosk/store.rs and call it",
                        s.path,
                        n + 1
                    ));
                }
            }
        }
    }
    report(
        "kiosk app",
        "src/kiosk/app contains no rusqlite, execute(, query_row, prepare(",
        bad,
    );
}

#[test]
fn no_source_file_is_over_1000_lines() {
    let bad: Vec<String> = sources()
        .iter()
        .filter(|s| s.text.lines().count() > MAX_LINES)
        .map(|s| {
            format!(
                "{}:{}: {} lines, over {MAX_LINES}: split it by concern into a folder (`{}/mod.rs` with its parts beside it)",
                s.path,
                MAX_LINES + 1,
                s.text.lines().count(),
                s.path.trim_end_matches(".rs").trim_end_matches("/mod")
            )
        })
        .collect();
    report(
        "size",
        "a newcomer reads a file whole: no .rs file under src/ over 1,000 lines",
        bad,
    );
}

#[test]
fn no_issue_numbers_in_src() {
    let mut bad = Vec::new();
    for s in sources() {
        for (n, (line, comment)) in s.text.lines().zip(s.comments.lines()).enumerate() {
            let mut found = issue_words(line);
            found.extend(hash_numbers(comment));
            for f in found {
                bad.push(format!(
                    "{}:{}: {f:?}: say what the code does or why, without the tracker's number (the commit message keeps it)",
                    s.path,
                    n + 1
                ));
            }
        }
    }
    report(
        "issue numbers",
        "no `issue 5`, `(issue 13)`, `issues 5 and 6` or `#13` in src/",
        bad,
    );
}

/// `issue 5`, `Issue 13's`, `issues 5 and 6`, `issue #5` anywhere in a line.
fn issue_words(line: &str) -> Vec<String> {
    let lower = line.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(n) = lower[from..].find("issue") {
        let start = from + n;
        let word_start = start == 0 || !lower.as_bytes()[start - 1].is_ascii_alphanumeric();
        let mut j = start + "issue".len();
        if lower[j..].starts_with('s') {
            j += 1;
        }
        let gap = lower[j..].len() - lower[j..].trim_start().len();
        let mut k = j + gap;
        if lower[k..].starts_with('#') {
            k += 1;
        }
        if word_start && gap > 0 && lower[k..].starts_with(|c: char| c.is_ascii_digit()) {
            let end = k + lower[k..].chars().take_while(char::is_ascii_digit).count();
            out.push(line[start..end].to_owned());
        }
        from = start + "issue".len();
    }
    out
}

/// `#13` in comment text (not `&#13;`, not a colour like `#1a2b3c`).
fn hash_numbers(comment: &str) -> Vec<String> {
    let b = comment.as_bytes();
    let mut out = Vec::new();
    for (i, _) in comment.match_indices('#') {
        let before_ok = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'&');
        let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        let after = b.get(i + 1 + digits);
        let after_ok = after.is_none_or(|c| !(c.is_ascii_alphanumeric() || *c == b'_'));
        if before_ok && digits > 0 && after_ok {
            out.push(comment[i..i + 1 + digits].to_owned());
        }
    }
    out
}

#[test]
fn every_mod_rs_and_lib_rs_opens_with_a_doc_paragraph() {
    let bad: Vec<String> = sources()
        .iter()
        .filter(|s| s.path.ends_with("/mod.rs") || s.path == "src/lib.rs")
        .filter(|s| {
            !s.text
                .lines()
                .find(|l| !l.trim().is_empty())
                .is_some_and(|l| l.starts_with("//!"))
        })
        .map(|s| {
            format!(
                "{}:1: no `//!` paragraph first: open the file with what the module is for, what is in it, and what it may import",
                s.path
            )
        })
        .collect();
    report(
        "module docs",
        "every mod.rs and lib.rs under src/ opens with a //! paragraph",
        bad,
    );
}

/// The reader itself, on known text: paths in groups across lines, inline
/// paths, `super::` chains and doc links count; strings and plain
/// comments do not; issue numbers are found in words and comments only.
#[test]
fn the_layout_reader_sees_what_it_should() {
    let text = r##"//! See [`crate::kiosk::app`].
use crate::{
    domain::{Role, Step},
    wire::event::Envelope as E,
};
use std::fmt; // crate::aggregator in a plain comment
fn f() -> crate::mqtt::Client { let s = "crate::aggregator::x"; let c = '"'; let l: &'static str = "x"; todo!() }
/* crate::aggregator in a block comment */
mod tests { use super::super::aggregator::store; }
"##;
    let (docs, comments, code) = views(text);
    assert_eq!(docs.len(), text.len());
    let module = vec!["kiosk".to_owned(), "app".to_owned()];
    let found: Vec<(usize, String)> = paths(&docs, &module)
        .into_iter()
        .map(|(at, p)| (text[..at].matches('\n').count() + 1, p.join("::")))
        .collect();
    assert_eq!(
        found,
        [
            (1, "kiosk::app".to_owned()),
            (2, "domain::Role".to_owned()),
            (2, "domain::Step".to_owned()),
            (2, "wire::event::Envelope".to_owned()),
            (7, "mqtt::Client".to_owned()),
            (9, "aggregator::store".to_owned()),
        ]
    );
    assert!(code.contains("crate::mqtt::Client") && !code.contains("See"));
    assert!(comments.contains("plain comment") && !comments.contains("fn f"));
    assert_eq!(
        issue_words("the loop (issue 5) and Issues 5 and 6, issue #7"),
        ["issue 5", "Issues 5", "issue #7"]
    );
    assert!(issue_words("an issue of 5 boards, tissue 5").is_empty());
    assert_eq!(
        hash_numbers("// fixed in #13, not &#13; nor #1a2b3c"),
        ["#13"]
    );
}
