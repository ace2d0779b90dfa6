//! Every relative link in every Markdown file of the repository points at
//! something that exists, checked by reading the files (std only, no
//! build of the code under test):
//!
//! - the files: every `*.md` under the repository, except `target/`,
//!   `.git/` and `node_modules/` folders at any depth;
//! - the links: inline links and images (`[text](dest)`, `![alt](dest)`,
//!   an image inside a link too) and reference definitions
//!   (`[name]: dest`), outside fenced code blocks and code spans. Links
//!   with a scheme (`https:`, `mailto:`) are not followed;
//! - a path is relative to the file that holds the link (a leading `/`:
//!   to the repository's root) and must name a file or a folder;
//! - an anchor (`#part`, alone or after a `.md` path) must be the slug of
//!   a heading of that file, by GitHub's rules: the heading's text
//!   lowercased, every character other than a letter, a digit, a space,
//!   `-` and `_` dropped, spaces turned into `-`; a repeated slug gets
//!   `-1`, `-2`... in order.
//!
//! A failure lists every broken link as `file:line: link: what is wrong`.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

const SKIP_DIRS: [&str; 3] = ["target", ".git", "node_modules"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every Markdown file under `dir`, sorted.
fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {dir:?}: {e}"));
    for entry in entries {
        let entry = entry.unwrap();
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            if !SKIP_DIRS.contains(&name.as_str()) {
                markdown_files(&path, out);
            }
        } else if name.ends_with(".md") {
            out.push(path);
        }
    }
    out.sort();
}

/// The lines of a Markdown file that are not inside a fenced code block,
/// with their numbers (from 1) and code spans blanked.
fn prose_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fence: Option<String> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let marker: String = trimmed
            .chars()
            .take_while(|c| *c == '`' || *c == '~')
            .collect();
        let is_fence =
            marker.len() >= 3 && marker.chars().all(|c| c == marker.as_bytes()[0] as char);
        match &fence {
            Some(open) => {
                if is_fence && marker.starts_with(open.as_str()) && trimmed.trim() == marker {
                    fence = None;
                }
            }
            None if is_fence => fence = Some(marker),
            None => out.push((i + 1, blank_code_spans(line))),
        }
    }
    out
}

/// `line` with every code span (`` `...` ``, any number of backticks)
/// replaced by spaces.
fn blank_code_spans(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '`' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let run = chars[i..].iter().take_while(|c| **c == '`').count();
        // Find the closing run of the same length.
        let mut j = i + run;
        let mut close = None;
        while j < chars.len() {
            if chars[j] == '`' {
                let r = chars[j..].iter().take_while(|c| **c == '`').count();
                if r == run {
                    close = Some(j);
                    break;
                }
                j += r;
            } else {
                j += 1;
            }
        }
        match close {
            Some(j) => {
                out.extend(std::iter::repeat_n(' ', j + run - i));
                i = j + run;
            }
            None => {
                out.extend(std::iter::repeat_n('`', run));
                i += run;
            }
        }
    }
    out
}

/// The destinations of the links on one line (code spans already blank).
fn link_targets(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    // Reference definitions: `[name]: dest`.
    let t = line.trim_start();
    if t.starts_with('[') && !t.starts_with("[^") {
        if let Some(end) = t.find("]:") {
            if let Some(dest) = t[end + 2..].split_whitespace().next() {
                out.push(dest.trim_matches(|c| c == '<' || c == '>').to_owned());
            }
        }
    }
    // Inline links and images: `](dest)` up to the matching parenthesis.
    let bytes = line.as_bytes();
    let mut from = 0;
    while let Some(at) = line[from..].find("](") {
        let start = from + at + 2;
        let mut depth = 1;
        let mut end = start;
        while end < bytes.len() {
            match bytes[end] {
                b'(' => depth += 1,
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            end += 1;
        }
        let inner = line[start..end].trim();
        // A title may follow the destination: `(dest "title")`.
        let dest = if let Some(rest) = inner.strip_prefix('<') {
            rest.split('>').next().unwrap_or("")
        } else {
            inner.split_whitespace().next().unwrap_or("")
        };
        out.push(dest.to_owned());
        from = end.min(line.len());
        if from < start {
            break;
        }
    }
    out
}

/// GitHub's slug of a heading's text.
fn slug(heading: &str) -> String {
    let mut text = heading.to_owned();
    // A link in a heading shows its text only.
    while let (Some(open), Some(mid)) = (text.find('['), text.find("](")) {
        if mid < open {
            break;
        }
        let Some(close) = text[mid..].find(')') else {
            break;
        };
        text = format!(
            "{}{}{}",
            &text[..open],
            &text[open + 1..mid],
            &text[mid + close + 1..]
        );
    }
    text.trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Every anchor of a Markdown file: its headings' slugs, repeated ones
/// numbered as GitHub does.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut fence: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        let marker: String = trimmed
            .chars()
            .take_while(|c| *c == '`' || *c == '~')
            .collect();
        if marker.len() >= 3 {
            match &fence {
                Some(open) if marker.starts_with(open.as_str()) && trimmed.trim() == marker => {
                    fence = None
                }
                Some(_) => {}
                None => fence = Some(marker),
            }
            continue;
        }
        if fence.is_some() || line.starts_with("    ") {
            continue;
        }
        let hashes = trimmed.chars().take_while(|c| *c == '#').count();
        if !(1..=6).contains(&hashes) {
            continue;
        }
        let rest = &trimmed[hashes..];
        if !(rest.is_empty() || rest.starts_with(' ')) {
            continue;
        }
        // A closing sequence of `#` is not part of the heading.
        let rest = rest.trim().trim_end_matches('#').trim_end();
        let base = slug(rest);
        let mut candidate = base.clone();
        let mut n = 0;
        while out.contains(&candidate) {
            n += 1;
            candidate = format!("{base}-{n}");
        }
        out.insert(candidate);
    }
    out
}

/// `path` with `.` and `..` resolved, without touching the disk.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn has_scheme(dest: &str) -> bool {
    match dest.find(':') {
        Some(colon) => {
            let scheme = &dest[..colon];
            !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                && !dest[..colon].contains('/')
        }
        None => false,
    }
}

/// What is wrong with one link of `file`, if anything.
fn check(root: &Path, file: &Path, dest: &str) -> Option<String> {
    if dest.is_empty() {
        return Some("empty destination".into());
    }
    if has_scheme(dest) {
        return None;
    }
    let (path, anchor) = match dest.split_once('#') {
        Some((p, a)) => (p, Some(a)),
        None => (dest, None),
    };
    let target = if path.is_empty() {
        file.to_path_buf()
    } else if let Some(from_root) = path.strip_prefix('/') {
        normalize(&root.join(from_root))
    } else {
        normalize(&file.parent().unwrap().join(path))
    };
    if !target.starts_with(root) {
        return Some("points outside the repository".into());
    }
    if !target.exists() {
        return Some(format!(
            "no such file or folder: {}",
            target.strip_prefix(root).unwrap().display()
        ));
    }
    let anchor = anchor.filter(|a| !a.is_empty())?;
    if target.extension().is_none_or(|e| e != "md") {
        return None; // An anchor into code or a picture: GitHub's own (line numbers).
    }
    let text = std::fs::read_to_string(&target).unwrap();
    let known = anchors(&text);
    if known.contains(anchor) {
        None
    } else {
        let near: Vec<&String> = known
            .iter()
            .filter(|k| {
                let a = anchor.split('-').next().unwrap_or("");
                !a.is_empty() && k.contains(a)
            })
            .take(4)
            .collect();
        Some(format!(
            "no heading `#{anchor}` in {}{}",
            target.strip_prefix(root).unwrap().display(),
            if near.is_empty() {
                String::new()
            } else {
                format!(" (headings with a like name: {near:?})")
            }
        ))
    }
}

#[test]
fn every_relative_markdown_link_points_at_a_file_and_heading_that_exist() {
    let root = root();
    let mut files = Vec::new();
    markdown_files(&root, &mut files);
    assert!(
        files.iter().any(|f| f.ends_with("README.md")),
        "no README.md found under {root:?}"
    );
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (line_no, line) in prose_lines(&text) {
            for dest in link_targets(&line) {
                checked += 1;
                if let Some(what) = check(&root, file, &dest) {
                    broken.push(format!(
                        "{}:{line_no}: ({dest}): {what}",
                        file.strip_prefix(&root).unwrap().display()
                    ));
                }
            }
        }
    }
    assert!(
        checked > 0,
        "no links found in {} Markdown files",
        files.len()
    );
    assert!(
        broken.is_empty(),
        "{} broken link(s) in the Markdown files (a path is relative to the file \
         holding the link; an anchor is a heading's GitHub slug):\n  {}",
        broken.len(),
        broken.join("\n  ")
    );
}

#[test]
fn slugs_follow_githubs_rules() {
    assert_eq!(
        slug("The site's broker (`mosquitto/`)"),
        "the-sites-broker-mosquitto"
    );
    assert_eq!(slug("Delivery (kiosk side)"), "delivery-kiosk-side");
    assert_eq!(
        slug("History: generate and bench history"),
        "history-generate-and-bench-history"
    );
    assert_eq!(slug("`[web]` (aggregator)"), "web-aggregator");
    assert_eq!(slug("snake_case and a-dash"), "snake_case-and-a-dash");
    let repeated = anchors("# A\n## Tests\n```\n# not a heading\n```\n## Tests\n");
    assert!(repeated.contains("tests") && repeated.contains("tests-1"));
    assert!(!repeated.contains("not-a-heading"));
}

#[test]
fn links_in_code_are_not_links() {
    let lines = prose_lines("a [x](here.md) b `[y](in-code.md)`\n```\n[z](fenced.md)\n```\n");
    let found: Vec<String> = lines.iter().flat_map(|(_, l)| link_targets(l)).collect();
    assert_eq!(found, vec!["here.md".to_owned()]);
    assert_eq!(
        link_targets("[![img](pic.png)](page.md#part \"title\")"),
        vec!["pic.png".to_owned(), "page.md#part".to_owned()]
    );
}
