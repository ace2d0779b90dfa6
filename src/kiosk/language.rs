//! The board's languages: which ones ship, how a `kiosk.toml` value is
//! checked, and how the Slint window is switched to one.
//!
//! The words live in `ui/translations/<lang>/LC_MESSAGES/huddle-board.po`,
//! bundled into the binary by `build.rs` (Slint's bundled translations, no
//! gettext on the Pi). English is the source language: it has no catalogue.
//! `board.language` in `kiosk.toml` picks the board's language; config
//! errors, logs and the CLI stay in English.
//!
//! A person's own language: a person of `kiosk.toml`'s roster may carry a
//! `language`. The core decides which language the screen speaks
//! ([`crate::kiosk::app::BoardView`]'s `language`: the person's while a
//! notice said to them shows, such as their welcome after a badge tap;
//! the learner's on a coaching observation's confirm and rate screens and
//! in the thanks after their rating; else the board's) and `ui::apply`
//! switches the window when it changes.
//! Design: Slint's selected translation is global (per thread), so the
//! whole window speaks the person's language for the few seconds their
//! welcome shows, then switches back; rendering personal strings from Rust
//! instead would need a second catalogue lookup outside Slint. The "badge
//! not enrolled" screen speaks the board's language (nobody is known yet).
//! People of the site's (MQTT) roster carry theirs in the roster message;
//! when that roster is in use its language wins, and a code this board
//! does not ship falls back to the board's (`Board::language_of`).
//!
//! Dates (weekday and month names) follow the selected language through
//! chrono's `unstable-locales` (glibc's locale data compiled in, pure
//! Rust). Design: chrono already formats every date and time of the board,
//! so the localized names cost one feature and no new formatting API;
//! ICU4X's `icu_datetime` would bring CLDR patterns and its own data
//! provider (a larger binary and a second date type) for the four short
//! forms the screens show. Times are 24-hour `HH:MM` in every shipped
//! language, and counts are plain integers, so numbers need no library.

use std::cell::Cell;

use chrono::NaiveDate;

/// The languages the board ships, English first (the source language).
pub const LANGUAGES: [&str; 5] = ["en", "de", "es", "fr", "pl"];

/// The pseudo-locale: every English text about 40 % longer, with accents
/// (`ui/translations/xx/`, generated from the template by the translation
/// tests). It finds texts that would not fit a longer language before a
/// translator does: the UI tests and `huddle-kiosk snapshot --lang xx`
/// use it; `board.language` and a person's `language` refuse it
/// ([`check`]).
pub const PSEUDO: &str = "xx";

/// The language used when `board.language` is not given.
pub const DEFAULT: &str = "en";

thread_local! {
    /// The index in [`LANGUAGES`] of the selected language. Per thread, as
    /// Slint's selected translation is (its context is thread-local).
    /// `LANGUAGES.len()` stands for [`PSEUDO`].
    static SELECTED: Cell<usize> = const { Cell::new(0) };
}

/// The language selected on this thread by [`select`] (`en` before).
pub fn selected() -> &'static str {
    LANGUAGES
        .get(SELECTED.with(Cell::get))
        .copied()
        .unwrap_or(PSEUDO)
}

/// A date as the screens show it, short, in `code`'s words: "Mon 30 Nov",
/// "Mo., 30. Nov.", "lun 30 nov", "lun. 30 nov.", "pon 30 lis".
pub fn short_date(date: NaiveDate, code: &str) -> String {
    use chrono::Locale;
    let (pattern, locale) = match code {
        "de" => ("%a, %-d. %b", Locale::de_DE),
        "es" => ("%a %-d %b", Locale::es_ES),
        "fr" => ("%a %-d %b", Locale::fr_FR),
        "pl" => ("%a %-d %b", Locale::pl_PL),
        _ => ("%a %-d %b", Locale::en_GB),
    };
    date.format_localized(pattern, locale).to_string()
}

/// Checks a language code from the config: one of [`LANGUAGES`].
pub fn check(code: &str) -> Result<(), String> {
    if LANGUAGES.contains(&code) {
        Ok(())
    } else {
        Err(format!(
            "unknown language {code:?}: the board speaks {}",
            LANGUAGES.join(", ")
        ))
    }
}

/// Switches every `@tr()` text of the process's Slint windows to `code`
/// (one of [`LANGUAGES`], or [`PSEUDO`]). Call it after the first window
/// exists (Slint loads the bundled catalogues with it).
#[cfg(feature = "kiosk")]
pub fn select(code: &str) -> anyhow::Result<()> {
    if code != PSEUDO {
        check(code).map_err(anyhow::Error::msg)?;
    }
    slint::select_bundled_translation(code)
        .map_err(|e| anyhow::anyhow!("cannot select language {code}: {e}"))?;
    let index = LANGUAGES
        .iter()
        .position(|l| *l == code)
        .unwrap_or(if code == PSEUDO { LANGUAGES.len() } else { 0 });
    SELECTED.with(|s| s.set(index));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_languages_pass_and_others_are_named() {
        for code in LANGUAGES {
            check(code).unwrap();
        }
        let e = check("de-DE").unwrap_err();
        assert!(e.contains("\"de-DE\"") && e.contains("pl"), "{e}");
    }

    #[test]
    fn dates_speak_the_language() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        assert_eq!(short_date(d, "en"), "Mon 30 Nov");
        for (code, weekday) in [("de", "Mo"), ("es", "lun"), ("fr", "lun"), ("pl", "pon")] {
            let s = short_date(d, code);
            assert!(s.starts_with(weekday) && s.contains("30"), "{code}: {s}");
        }
    }
}
