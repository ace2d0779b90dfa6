//! The coaching observation's screens driven the way a person (or a screen
//! reader) does: elements found by their accessible label and pressed with
//! their default action; badges typed as key events into the window, as a
//! keyboard-wedge reader types them. Headless (Slint's testing backend,
//! software renderer), through the real core and a real SQLite file.

use std::path::Path;

use crate::support::board::at as monday;
use crate::support::ui::Ui;
use chrono::Duration;
use huddle_board::domain::{COACHING, FACILITATION, FLOW_TIMEOUT_S};
use huddle_board::kiosk::app::Intent;
use huddle_board::kiosk::ui::Texts;
use slint::{ComponentHandle, Model};

/// The coaching screens' own helpers.
trait CoachingUi {
    fn rubric(&self, level: u8) -> Vec<String>;
    fn score_all(&self, level: u8);
}

impl CoachingUi for Ui {
    /// The worded rubric of a level, as the screen shows it.
    fn rubric(&self, level: u8) -> Vec<String> {
        let texts = self.window.global::<Texts>();
        let model = if level == 4 {
            texts.get_coaching()
        } else {
            texts.get_facilitation()
        };
        model.iter().map(|s| s.to_string()).collect()
    }

    /// Scores every behaviour with `1 + i % 4`, by the buttons' labels.
    fn score_all(&self, level: u8) {
        for (i, name) in self.rubric(level).iter().enumerate() {
            self.press_scrolling(&format!("{name}: {}", 1 + i % 4), 400.0, 300.0);
            assert_eq!(
                self.find(&format!("{name}: {}", 1 + i % 4))
                    .accessible_value()
                    .unwrap_or_default(),
                "selected"
            );
        }
    }
}

#[test]
fn coaching_flows_by_accessible_label() {
    crate::support::ui::headless();
    let dir = tempfile::tempdir().unwrap();
    observe_huddle(&dir.path().join("a"));
    observe_coaching_and_time_out(&dir.path().join("b"));
}

fn observe_huddle(dir: &Path) {
    let ui = Ui::new("coaching_ui", dir, monday(10, 0));
    assert!(
        !ui.has("Focus point"),
        "no focus point before any observation"
    );
    assert_eq!(
        ui.rubric(3).len(),
        FACILITATION.len(),
        "texts.slint vs coaching.rs"
    );
    assert_eq!(
        ui.rubric(4).len(),
        COACHING.len(),
        "texts.slint vs coaching.rs"
    );

    // A member's badge opens no coaching.
    ui.type_badge("1002");
    assert!(!ui.has("Observe huddle"));
    assert!(ui.has("Start huddle"));

    // The supervisor's badge opens the menu: huddle only, not coaching.
    ui.type_badge("2001");
    assert!(ui.has("Back to the board"));
    assert!(!ui.has("Observe coaching"));
    ui.press("Observe huddle");
    assert!(ui.value("Question").contains("Eva Novak"));
    ui.press("So-so");

    // The rubric: Next before every behaviour is scored is refused.
    ui.press("Next");
    assert!(
        ui.value("Error").contains("Score every behaviour"),
        "{}",
        ui.value("Error")
    );
    ui.score_all(3);
    ui.press("Next");

    // Strength and focus from the behaviours, a note by on-screen keyboard.
    let names = ui.rubric(3);
    ui.press("Next");
    assert!(
        ui.value("Error").contains("strength"),
        "{}",
        ui.value("Error")
    );
    ui.press_scrolling(&format!("Strength {}", names[0]), 200.0, 300.0);
    ui.press_scrolling(&format!("Focus {}", names[3]), 600.0, 300.0);
    ui.press("Focus note");
    ui.type_text("ask first");
    assert_eq!(ui.value("Focus note"), "Ask first");
    ui.press("Next");

    // The trigger (a preset) and the date to observe again.
    ui.press("Next");
    assert!(
        ui.value("Error").contains("when to apply"),
        "{}",
        ui.value("Error")
    );
    ui.find_prefix("Trigger When a KPI")
        .invoke_accessible_default_action();
    ui.find_prefix("Observe again In a week")
        .invoke_accessible_default_action();
    ui.press("Next");

    // Only the learner's badge confirms; nothing is stored before the rating.
    assert!(
        ui.value("Prompt").contains("Eva Novak"),
        "{}",
        ui.value("Prompt")
    );
    assert!(
        ui.value("Focus").contains("Ask first"),
        "{}",
        ui.value("Focus")
    );
    ui.type_badge("2001");
    assert!(
        ui.value("Error").contains("not the coach"),
        "{}",
        ui.value("Error")
    );
    ui.type_badge("1003");
    assert!(
        ui.value("Error").contains("only Eva Novak confirms"),
        "{}",
        ui.value("Error")
    );
    assert!(ui.has("Prompt"), "still waiting for the team leader");
    ui.type_badge("1001");
    assert_eq!(ui.seq(), 0, "nothing stored before the rating");
    ui.press("Helpfulness 4");
    assert_eq!(
        ui.kinds(),
        ["observation.recorded", "observation.acknowledged"]
    );

    // Back on the board, with the team leader's focus point in sight.
    assert!(ui.has("Start huddle"));
    assert!(
        ui.value("Message").contains("Eva Novak"),
        "{}",
        ui.value("Message")
    );
    let focus = ui.value("Focus point");
    assert!(
        focus.contains(&names[3]) && focus.contains("Ask first"),
        "{focus}"
    );
    assert!(
        ui.value("Focus trigger").contains("When a KPI is missed"),
        "{}",
        ui.value("Focus trigger")
    );
    assert!(
        ui.value("Next observation").contains("Mon 7 Dec"),
        "{}",
        ui.value("Next observation")
    );
}

fn observe_coaching_and_time_out(dir: &Path) {
    let ui = Ui::new("coaching_ui", dir, monday(10, 0));
    // The manager observes the supervisor's coaching (level 4) only.
    ui.type_badge("3001");
    assert!(!ui.has("Observe huddle"));
    ui.press("Observe coaching");
    assert!(ui.value("Question").contains("Sam Reyes"));
    ui.press("Went well");
    ui.score_all(4);
    ui.press("Next");
    let names = ui.rubric(4);
    ui.press_scrolling(&format!("Strength {}", names[1]), 200.0, 300.0);
    ui.press_scrolling(&format!("Focus {}", names[3]), 600.0, 300.0);
    ui.press("Next");
    ui.find_prefix("Trigger Before giving")
        .invoke_accessible_default_action();
    ui.find_prefix("Observe again In 3 days")
        .invoke_accessible_default_action();
    ui.press("Next");
    // The team leader is not the learner here; the supervisor is.
    ui.type_badge("1001");
    assert!(
        ui.value("Error").contains("only Sam Reyes confirms"),
        "{}",
        ui.value("Error")
    );
    ui.type_badge("2001");
    ui.press("Helpfulness 5");
    assert_eq!(
        ui.kinds(),
        ["observation.recorded", "observation.acknowledged"]
    );
    assert!(
        !ui.has("Focus point"),
        "level 4 does not set the team leader's focus"
    );

    // Cancel leaves nothing.
    ui.type_badge("2001");
    ui.press("Observe huddle");
    ui.press("Cancel observation");
    assert!(ui.has("Start huddle"));
    assert!(
        ui.value("Message").contains("nothing was saved"),
        "{}",
        ui.value("Message")
    );

    // A flow left half done times out back to the board without a record.
    ui.type_badge("2001");
    ui.press("Observe huddle");
    ui.press("Badly");
    assert!(ui.has(&format!("{}: 1", ui.rubric(3)[0])));
    {
        let mut d = ui.driver.borrow_mut();
        d.advance(Duration::seconds(FLOW_TIMEOUT_S + 1));
        d.handle(Intent::Tick, &ui.window).unwrap();
    }
    assert!(ui.has("Start huddle"), "back on the idle screen");
    assert!(
        ui.value("Message").contains("left unfinished"),
        "{}",
        ui.value("Message")
    );
    assert_eq!(ui.seq(), 2, "only the level 4 observation's two events");
}
