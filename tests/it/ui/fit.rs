//! Nothing overflows: every screen of the demo script (the one
//! `huddle-kiosk snapshot` renders, with the forms and the keyboard it
//! opens) at 800x480 and 1280x800, in every shipped language and in the
//! pseudo-locale (every text about 40 % longer, with accents), with every
//! visible text measured by Slint ([`crate::support::fit`]): none is cut
//! off (elided, clipped, lines lost), runs out of the element that clips
//! it, or out of the box drawn around it. Nothing is allowed for: a text
//! that cannot fit changes the layout. A failing screen is saved as
//! `fit-<lang>-<screen>-<size>.png` next to the test binaries.
//!
//! What it cannot see: a word broken inside a text that wraps and elides
//! (a button's label) when the broken word still fits the box's height,
//! texts hidden behind another element (it measures them all the same),
//! and screens the script does not reach (the learner picked among several
//! team leaders, error banners other than those the script triggers).

use std::path::Path;

use huddle_board::kiosk::language::{LANGUAGES, PSEUDO};
use huddle_board::kiosk::snapshot;
use slint::ComponentHandle;

use crate::support::fit;

/// The screens the demo script shows (`ui/screenshots/01-...` to `22-...`,
/// and the forms, keyboard and refusal shown on some: `03a-...`).
const SCREENS: usize = 29;

/// The official 7" panel, and a 10" one (where the type scale grows).
const SIZES: [(u32, u32); 2] = [(800, 480), (1280, 800)];

#[test]
fn every_text_fits_every_screen_in_every_language() {
    crate::support::ui::headless();
    let dir = tempfile::tempdir().unwrap();
    let mut problems = Vec::new();
    for lang in LANGUAGES.into_iter().chain([PSEUDO]) {
        let mut config = crate::support::board::kiosk_config(dir.path());
        config.board.language = lang.to_owned();
        let mut screens = 0;
        snapshot::walk(&config, |name, ui| {
            for (w, h) in SIZES {
                ui.window().set_size(slint::PhysicalSize::new(w, h));
                let report = fit::check(ui);
                assert!(
                    report.texts >= 3,
                    "{lang} {name}: only {} texts measured: is the item tree readable?",
                    report.texts
                );
                if !report.problems.is_empty() {
                    let shot = Path::new(env!("CARGO_TARGET_TMPDIR"))
                        .join(format!("fit-{lang}-{name}-{w}x{h}.png"));
                    snapshot::write_png(ui, &shot)?;
                    problems.push(format!("{lang} {name} {w}x{h} ({}):", shot.display()));
                    problems.extend(report.problems.iter().map(|p| format!("    {p}")));
                }
            }
            screens += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(screens, SCREENS, "{lang}: screens walked");
    }
    assert!(
        problems.is_empty(),
        "texts that do not fit:\n{}",
        problems.join("\n")
    );
}

slint::slint! {
    // Four texts: one that fits, and one of each way of not fitting.
    export component FitCases inherits Window {
        width: 400px;
        height: 300px;
        Text {
            x: 10px; y: 10px; width: 300px; height: 30px;
            text: "Fits";
            font-size: 20px;
        }
        Text {
            x: 10px; y: 50px; width: 60px; height: 30px;
            text: "Fatima Haddad";
            font-size: 20px;
            overflow: elide;
        }
        Text {
            x: 10px; y: 90px; width: 120px; height: 30px;
            text: "a text on more lines than its box holds";
            font-size: 20px;
            wrap: word-wrap;
        }
        Rectangle {
            x: 10px; y: 200px; width: 100px; height: 40px;
            clip: true;
            Text {
                x: 50px; y: 0px; width: 200px; height: 40px;
                text: "runs out of its clip";
                font-size: 20px;
            }
        }
    }
}

/// The check itself: it measures what it should, and sees each way a
/// text does not fit (elided, lines lost, out of the element that clips
/// it), and not the text that fits.
#[test]
fn the_check_sees_each_way_a_text_is_cut() {
    crate::support::ui::headless();
    let ui = FitCases::new().unwrap();
    ui.show().unwrap();
    let report = fit::check(&ui);
    assert_eq!(report.texts, 4, "{report:#?}");
    let problems = report.problems.join("\n");
    assert_eq!(report.problems.len(), 3, "{problems}");
    assert!(
        problems.contains("\"Fatima Haddad\" at (10, 50) 60x30: cut off"),
        "{problems}"
    );
    assert!(
        problems
            .contains("\"a text on more lines than its box holds\" at (10, 90) 120x30: lines cut"),
        "{problems}"
    );
    assert!(
        problems.contains("\"runs out of its clip\" at (60, 200) 200x40: runs out sideways"),
        "{problems}"
    );
    assert!(!problems.contains("Fits"), "{problems}");
}
