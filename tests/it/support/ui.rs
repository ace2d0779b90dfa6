//! The kiosk's window driven the way a person (or a screen reader) does,
//! shared by the UI tests: elements found by their accessible label and
//! pressed with their default action; badges typed as key events, as a
//! keyboard-wedge reader types them. Call [`headless`] first, on the
//! test's own thread.
#![allow(dead_code)]

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

use chrono::{DateTime, Utc};
use huddle_board::kiosk::app::{Board, Intent};
use huddle_board::kiosk::config::KioskConfig;
use huddle_board::kiosk::ui::{Driver, KioskWindow};
use i_slint_backend_testing::ElementHandle;
use slint::platform::{Key, WindowEvent};
use slint::{ComponentHandle, SharedString};

use super::board::{at, kiosk_config};

/// Sets Slint's testing backend (software renderer, mock time) on this
/// thread, once: Slint's platform is per thread, and every test runs on a
/// thread of its own, so each UI test calls this first and keeps its
/// windows on its thread.
pub fn headless() {
    thread_local!(static SET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
    if !SET.with(|s| s.replace(true)) {
        huddle_board::kiosk::snapshot::init_headless().unwrap();
    }
}

/// A kiosk window on the testing backend, driven by label.
pub struct Ui {
    pub window: KioskWindow,
    pub driver: Rc<RefCell<Driver>>,
    /// Names the failure screenshot.
    pub name: &'static str,
    /// The catalogue of the board's language (English msgid -> its
    /// words); empty for English.
    pub words: std::collections::BTreeMap<String, String>,
}

impl Ui {
    /// The demo board on a fresh SQLite file in `dir`, 800x480, at `now`.
    pub fn new(name: &'static str, dir: &Path, now: DateTime<Utc>) -> Ui {
        Ui::new_in(name, dir, now, "en")
    }

    /// The demo board with `board.language = lang`: the window speaks
    /// `lang`, and [`Ui::tr`] turns the English texts the tests name into
    /// its words, so a test runs the same in every language.
    pub fn new_in(name: &'static str, dir: &Path, now: DateTime<Utc>, lang: &str) -> Ui {
        let mut config = kiosk_config(dir);
        config.board.language = lang.to_owned();
        Ui::with_config(name, config, now)
    }

    /// A board of `config` (its language: `board.language`), 800x480.
    pub fn with_config(name: &'static str, config: KioskConfig, now: DateTime<Utc>) -> Ui {
        let lang = config.board.language.clone();
        let board = Board::open(config, now).unwrap();
        let window = KioskWindow::new().unwrap();
        huddle_board::kiosk::language::select(&lang).unwrap();
        let words = super::po::catalogue(&lang);
        window.window().set_size(slint::PhysicalSize::new(800, 480));
        let driver = Rc::new(RefCell::new(Driver { board, now }));
        Driver::connect(driver.clone(), &window);
        driver.borrow_mut().handle(Intent::Tick, &window).unwrap();
        window.show().unwrap();
        Ui {
            window,
            driver,
            name,
            words,
        }
    }

    /// The words of the English `@tr()` text `english` in the board's
    /// language, each `{}` filled with the next of `args`. Fails when the
    /// catalogue lacks the text (a test naming a text that is not in the
    /// UI).
    pub fn tr(&self, english: &str, args: &[&str]) -> String {
        let mut text = if self.words.is_empty() {
            english.to_owned()
        } else {
            self.words
                .get(english)
                .unwrap_or_else(|| panic!("{english:?} is not in the catalogue"))
                .clone()
        };
        for a in args {
            text = text.replacen("{}", a, 1);
        }
        text
    }

    pub fn all(&self, label: &str) -> Vec<ElementHandle> {
        ElementHandle::find_by_accessible_label(&self.window, label)
            .filter(|e| e.is_valid())
            .collect()
    }

    /// The one element with this label; fails loudly when there is none.
    pub fn find(&self, label: &str) -> ElementHandle {
        let found = self.all(label);
        assert!(
            !found.is_empty(),
            "no element labelled {label:?} on screen (the UI must be compiled with debug info: build.rs sets it); labels: {:?} (screen: {})",
            self.labels(),
            self.shot()
        );
        found.into_iter().next().unwrap()
    }

    /// The element whose label starts with `prefix`.
    pub fn find_prefix(&self, prefix: &str) -> ElementHandle {
        let p = prefix.to_owned();
        i_slint_backend_testing::ElementQuery::from_root(&self.window)
            .match_descendants()
            .match_predicate(move |e| {
                e.accessible_label()
                    .is_some_and(|l| l.starts_with(p.as_str()))
            })
            .find_first()
            .unwrap_or_else(|| {
                panic!(
                    "no element labelled {prefix:?}... among {:?} (screen: {})",
                    self.labels(),
                    self.shot()
                )
            })
    }

    /// Saves the screen next to the test binaries, to look at after a failure.
    pub fn shot(&self) -> String {
        let path =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{}-failure.png", self.name));
        let _ = huddle_board::kiosk::snapshot::write_png(&self.window, &path);
        path.display().to_string()
    }

    pub fn labels(&self) -> Vec<String> {
        i_slint_backend_testing::ElementQuery::from_root(&self.window)
            .match_descendants()
            .find_all()
            .iter()
            .filter_map(|e| e.accessible_label().map(|l| l.to_string()))
            .collect()
    }

    /// Presses an element of a scrolling list, swiping (a scroll wheel
    /// here) at window point `(x, y)` until it is in view, as a person
    /// does: the search sees only what is not clipped away.
    pub fn press_scrolling(&self, label: &str, x: f32, y: f32) {
        for _ in 0..40 {
            if self.has(label) {
                return self.press(label);
            }
            self.window
                .window()
                .dispatch_event(WindowEvent::PointerScrolled {
                    position: slint::LogicalPosition::new(x, y),
                    delta_x: 0.0,
                    delta_y: -40.0,
                });
        }
        self.press(label);
    }

    pub fn press(&self, label: &str) {
        self.find(label).invoke_accessible_default_action();
    }

    pub fn value(&self, label: &str) -> String {
        self.find(label)
            .accessible_value()
            .unwrap_or_default()
            .to_string()
    }

    pub fn has(&self, label: &str) -> bool {
        !self.all(label).is_empty()
    }

    /// Types keys into the window as a keyboard-wedge reader does.
    pub fn type_badge(&self, number: &str) {
        let mut keys: Vec<SharedString> = number
            .chars()
            .map(|c| SharedString::from(c.to_string()))
            .collect();
        keys.push(Key::Return.into());
        for text in keys {
            self.window
                .window()
                .dispatch_event(WindowEvent::KeyPressed { text: text.clone() });
            self.window
                .window()
                .dispatch_event(WindowEvent::KeyReleased { text });
        }
    }

    /// Types text on the on-screen keyboard, then Done: a letter that is
    /// not ASCII through the accented layer ("Key Accents", then its key).
    pub fn type_text(&self, text: &str) {
        for c in text.chars() {
            match c {
                ' ' => self.press("Key Space"),
                'ß' => {
                    self.press("Key Accents");
                    self.press("Key ß");
                }
                c if !c.is_ascii() => {
                    self.press("Key Accents");
                    self.press(&format!("Key {}", c.to_uppercase()));
                }
                c => self.press(&format!("Key {}", c.to_ascii_uppercase())),
            }
        }
        self.press("Key Done");
    }

    pub fn seq(&self) -> u64 {
        self.driver.borrow().board.store().last_seq().unwrap()
    }

    pub fn kinds(&self) -> Vec<String> {
        self.driver
            .borrow()
            .board
            .store()
            .events_since(0)
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str::<huddle_board::wire::event::Envelope>(l).unwrap())
            .map(|e| e.kind)
            .collect()
    }

    /// Moves the board's clock to Monday `h:m` in Berlin.
    pub fn at(&self, h: u32, m: u32) {
        self.driver.borrow_mut().now = at(h, m);
    }
}
