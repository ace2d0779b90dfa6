//! The board in every shipped language: the same steps as a person takes,
//! with the texts named in English and looked up in the language's
//! catalogue ([`crate::support::ui::Ui::tr`]), so nothing here depends on
//! the English words being on screen.

use crate::support::board::at as monday;
use crate::support::ui::Ui;
use huddle_board::kiosk::language::LANGUAGES;

#[test]
fn a_huddle_starts_in_every_language() {
    crate::support::ui::headless();
    let dir = tempfile::tempdir().unwrap();
    for lang in LANGUAGES {
        let ui = Ui::new_in("ui_languages", &dir.path().join(lang), monday(6, 20), lang);
        let start = ui.tr("Start huddle", &[]);
        if lang != "en" {
            assert_ne!(start, "Start huddle", "{lang}: the catalogue translates");
            assert!(!ui.has("Start huddle"), "{lang}: English left on screen");
        }
        ui.press(&start);
        assert_eq!(
            ui.value(&ui.tr("Prompt", &[])),
            ui.tr("Team leader: tap your badge to start the huddle.", &[]),
            "{lang}"
        );
        ui.at(6, 40);
        ui.type_badge("1001");
        assert!(
            ui.has(&ui.tr("Name {}", &["Ana Silva"])),
            "{lang}: the attendance screen, labels {:?}",
            ui.labels()
        );
        assert_eq!(
            ui.value(&ui.tr("Message", &[])),
            ui.tr("Huddle started. Welcome, {}.", &["Eva Novak"]),
            "{lang}"
        );
        ui.type_badge("1002");
        assert_eq!(
            ui.value(&ui.tr("Message", &[])),
            ui.tr("Welcome, {}.", &["Ana Silva"]),
            "{lang}"
        );
    }
}

#[test]
fn a_person_is_welcomed_in_their_own_language() {
    crate::support::ui::headless();
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::support::board::kiosk_config(dir.path());
    config.board.language = "en".into();
    let ana = config
        .people
        .iter_mut()
        .find(|p| p.name == "Ana Silva")
        .expect("Ana Silva in the demo roster");
    ana.language = Some("pl".into());
    let ui = Ui::with_config("ui_person_language", config, monday(6, 20));
    let polish = crate::support::po::catalogue("pl");
    ui.press("Start huddle");
    ui.at(6, 40);
    ui.type_badge("1001");
    assert_eq!(ui.value("Message"), "Huddle started. Welcome, Eva Novak.");
    // Ana's badge: her welcome in Polish, the board's own words meanwhile too
    // (Slint's language is global: the window speaks hers while it shows).
    ui.type_badge("1002");
    let welcome = polish["Welcome, {}."].replacen("{}", "Ana Silva", 1);
    assert_eq!(ui.value(&polish["Message"]), welcome);
    assert_ne!(welcome, "Welcome, Ana Silva.");
    // The toast gone, the board speaks English again.
    ui.at(6, 42);
    ui.driver
        .borrow_mut()
        .handle(huddle_board::kiosk::app::Intent::Tick, &ui.window)
        .unwrap();
    assert!(ui.has("Name Ana Silva"), "labels {:?}", ui.labels());
    assert!(!ui.has("Message") && !ui.has(&polish["Message"]));
}

#[test]
fn a_learner_confirms_and_rates_in_their_own_language() {
    use huddle_board::domain::{SelfView, FACILITATION};
    use huddle_board::kiosk::app::Intent;

    crate::support::ui::headless();
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::support::board::kiosk_config(dir.path());
    config.board.language = "en".into();
    let eva = config
        .people
        .iter_mut()
        .find(|p| p.name == "Eva Novak")
        .expect("Eva Novak, the team leader, in the demo roster");
    eva.language = Some("de".into());
    let ui = Ui::with_config("ui_learner_language", config, monday(10, 0));
    let german = crate::support::po::catalogue("de");
    let de = |english: &str, arg: &str| {
        german
            .get(english)
            .unwrap_or_else(|| panic!("{english:?} not in the German catalogue"))
            .replacen("{}", arg, 1)
    };
    let run = |intent: Intent| {
        ui.driver.borrow_mut().handle(intent, &ui.window).unwrap();
    };

    // The supervisor's screens speak the board's language.
    ui.type_badge("2001");
    ui.press("Observe huddle");
    assert!(ui.has("So-so"), "labels {:?}", ui.labels());
    run(Intent::ObserveSelfView(SelfView::SoSo));
    for behaviour in 0..FACILITATION.len() {
        run(Intent::ObserveScore {
            behaviour,
            score: 3,
        });
    }
    run(Intent::ObserveNext);
    run(Intent::ObserveStrength(0));
    run(Intent::ObserveFocus(1));
    run(Intent::ObserveNext);
    run(Intent::ObserveTrigger("When someone is silent".into()));
    run(Intent::ObserveReobserve(1));
    assert!(
        ui.has("Next"),
        "the trigger step in English: {:?}",
        ui.labels()
    );
    run(Intent::ObserveNext);

    // Eva's screens speak hers: the confirm prompt...
    assert_eq!(
        ui.value(&de("Prompt", "")),
        de("{}: tap your badge to confirm", "Eva Novak"),
        "labels {:?}",
        ui.labels()
    );
    assert!(!ui.has("Prompt"), "English left on Eva's screen");
    // ...a refusal said meanwhile too (the coach's own badge)...
    ui.type_badge("2001");
    assert!(ui.has(&de("Error", "")), "labels {:?}", ui.labels());
    // ...the rating, and the thanks.
    ui.type_badge("1001");
    assert_eq!(
        ui.value(&de("Question", "")),
        de("{}, how helpful was this coaching?", "Eva Novak")
    );
    ui.press(&de("Helpfulness {}", "4"));
    assert_eq!(
        ui.kinds(),
        ["observation.recorded", "observation.acknowledged"]
    );
    assert_eq!(
        ui.value(&de("Message", "")),
        de("Observation saved. Thank you, {}!", "Eva Novak")
    );
    assert_ne!(
        de("Observation saved. Thank you, {}!", "Eva Novak"),
        "Observation saved. Thank you, Eva Novak!"
    );

    // The thanks gone, the board speaks English again.
    ui.driver.borrow_mut().now = monday(10, 1);
    run(Intent::Tick);
    assert!(ui.has("Start huddle"), "labels {:?}", ui.labels());
}

#[test]
fn a_person_of_the_site_roster_is_welcomed_in_their_language() {
    use huddle_board::domain::{hash_badge, Role};
    use huddle_board::kiosk::app::Intent;
    use huddle_board::wire::payload::{RosterMessage, RosterPerson};

    crate::support::ui::headless();
    let dir = tempfile::tempdir().unwrap();
    let config = crate::support::board::kiosk_config(dir.path());
    let key = config.badge.site_key.clone();
    let board = config.board.id.clone();
    let ui = Ui::with_config("ui_site_roster_language", config, monday(6, 20));
    let person = |id: &str, name: &str, role, number: &str, language: Option<&str>| RosterPerson {
        id: id.into(),
        name: name.into(),
        role,
        coach: None,
        badge_hashes: vec![hash_badge(key.as_bytes(), number)],
        language: language.map(str::to_owned),
    };
    // The aggregator's roster: Ana speaks French; Ben's language is one
    // this board does not ship, so his welcome is in the board's.
    let roster = RosterMessage {
        board,
        issued_at: monday(5, 0),
        people: vec![
            person("p01", "Eva Novak", Role::TeamLeader, "1001", None),
            person("p02", "Ana Silva", Role::Member, "1002", Some("fr")),
            person("p03", "Ben Okafor", Role::Member, "1003", Some("tl")),
        ],
    };
    let run = |intent: Intent| {
        ui.driver.borrow_mut().handle(intent, &ui.window).unwrap();
    };
    run(Intent::ApplyRoster(roster));
    let french = crate::support::po::catalogue("fr");
    ui.press("Start huddle");
    ui.at(6, 40);
    ui.type_badge("1001");
    assert_eq!(ui.value("Message"), "Huddle started. Welcome, Eva Novak.");
    ui.type_badge("1002");
    assert_eq!(
        ui.value(&french["Message"]),
        french["Welcome, {}."].replacen("{}", "Ana Silva", 1),
        "labels {:?}",
        ui.labels()
    );
    ui.at(6, 42);
    run(Intent::Tick);
    ui.type_badge("1003");
    assert_eq!(ui.value("Message"), "Welcome, Ben Okafor.");
}
