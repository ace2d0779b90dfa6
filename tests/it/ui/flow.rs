//! The kiosk's screens driven the way a person (or a screen reader) does:
//! elements found by their accessible label and pressed with their default
//! action; badges typed as key events into the window, as a keyboard-wedge
//! reader types them. Headless (Slint's testing backend, software
//! renderer), through the real core and a real SQLite file.

use std::path::Path;

use crate::support::board::at as monday;
use crate::support::ui::Ui;

#[test]
fn screens_by_accessible_label() {
    crate::support::ui::headless();
    let dir = tempfile::tempdir().unwrap();
    whole_huddle(&dir.path().join("a"));
    unknown_badge_and_enrolment(&dir.path().join("b"));
}

fn whole_huddle(dir: &Path) {
    let ui = Ui::new("ui_flow", dir, monday(6, 20));
    // Idle: "Start huddle" asks for the team leader's badge.
    ui.press("Start huddle");
    assert!(
        ui.value("Prompt").contains("Team leader"),
        "prompt: {}",
        ui.value("Prompt")
    );
    ui.at(6, 40);
    ui.type_badge("1002"); // a member cannot start it
    assert_eq!(ui.seq(), 0);
    assert!(ui.has("Prompt"));
    ui.type_badge("1001");
    assert!(
        ui.has("Name Ana Silva"),
        "the attendance screen shows the roster"
    );
    assert_eq!(ui.value("Present"), "1/6");

    // Members tap their badge or their name; one arrives late.
    ui.type_badge("1002");
    ui.press("Name Ben Okafor");
    ui.at(6, 52);
    ui.press("Name Chloé Martin");
    assert_eq!(ui.value("Present"), "4/6");
    assert!(
        ui.value("Name Chloé Martin").contains("late"),
        "{}",
        ui.value("Name Chloé Martin")
    );
    let seq = ui.seq();
    ui.press("Name Ana Silva"); // already here
    assert_eq!(ui.seq(), seq);

    // KPIs: one hit, one miss with a reason and no action.
    ui.press("Next");
    ui.press("Hit Safety");
    ui.press("Missed Quality");
    ui.press("Reason Material");
    ui.press("None needed");
    if ui.has("Save") {
        ui.press("Save");
    }
    assert_eq!(ui.value("KPI Quality"), "missed");
    assert_eq!(ui.value("KPI Safety"), "hit");

    // Open actions: none yet. Needs: one escalated.
    ui.press("Next");
    ui.press("Next");
    ui.press("Raise a need");
    ui.press("Category Material");
    ui.press("What is needed");
    // Accented letters of the shipped languages, through the keyboard.
    ui.type_text("labels für łódź");
    ui.press("Escalate to supervisor");
    ui.press("Save");
    assert!(ui.has("Need Labels für łódź"), "the need is listed");

    // Experiment: skipped. New actions: one, by on-screen keyboard.
    ui.press("Next");
    ui.press("Next");
    ui.press("New action");
    ui.press("What");
    ui.type_text("clean nozzle");
    ui.press("Owner Ben Okafor");
    ui.find_prefix("Due Tomorrow")
        .invoke_accessible_default_action();
    ui.press("Save");
    assert!(ui.has("Action Clean nozzle"), "the new action is listed");

    // Close: a member's badge is refused; the team leader's closes.
    ui.press("Next");
    ui.at(6, 58);
    ui.press("Close huddle");
    ui.type_badge("1003");
    assert!(ui.has("Prompt"), "still waiting for the team leader");
    ui.type_badge("1001");
    assert_eq!(ui.value("Attendance"), "4/6");
    assert_eq!(ui.value("Late"), "1");
    assert_eq!(ui.value("KPIs hit"), "1/4");
    assert_eq!(ui.value("Needs raised"), "1");
    assert_eq!(ui.value("Needs escalated"), "1");
    assert_eq!(ui.value("Actions created"), "1");
    assert_eq!(ui.value("Actions closed"), "0");
    assert!(
        ui.value("Duration").starts_with("18:00"),
        "{}",
        ui.value("Duration")
    );
    ui.press("Done");
    assert!(ui.has("Start huddle"), "back on the idle screen");
}

fn unknown_badge_and_enrolment(dir: &Path) {
    let ui = Ui::new("ui_flow", dir, monday(10, 0));
    ui.type_badge("4242");
    assert!(
        ui.has("Enrol badge"),
        "the unknown-badge screen says what to do"
    );
    assert!(!ui.value("What to do").is_empty());
    ui.press("Enrol badge");
    ui.press("Name Fatima Haddad");
    assert!(ui.value("Prompt").contains("Fatima Haddad"));
    ui.type_badge("1004"); // a member cannot enrol
    assert!(ui.has("Prompt"));
    ui.type_badge("2001"); // the supervisor can
    assert!(!ui.has("Prompt"));
    assert!(ui.has("Start huddle"), "back on the idle screen");
    // The badge is now Fatima's: it starts the scheduled huddle at 14:40.
    ui.at(14, 40);
    ui.type_badge("4242");
    assert!(ui.has("Name Fatima Haddad"));
    assert!(
        ui.value("Name Fatima Haddad").contains("here"),
        "{}",
        ui.value("Name Fatima Haddad")
    );
}
