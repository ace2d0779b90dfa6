//! `huddle-kiosk snapshot`: renders every screen to PNG without a display.
//!
//! A scripted demo runs through the real core (a temporary SQLite file, the
//! shipped configuration, a pinned clock) and the window is rendered with
//! Slint's software renderer on the testing backend after each step, at
//! every requested size. The screenshots in `ui/README.md` come from here.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use anyhow::Context;
use chrono::{DateTime, Duration, TimeZone, Utc};
use slint::ComponentHandle;

use crate::domain::{ObservationLevel, SelfView};
use crate::kiosk::app::{Board, Intent};
use crate::kiosk::badge::{BadgeInput, BadgeRead};
use crate::kiosk::config::KioskConfig;
use crate::kiosk::ui::{Driver, KioskWindow};

/// The sizes rendered by default: the official 7" panel and a 10" one.
pub const SIZES: [(u32, u32); 2] = [(800, 480), (1280, 800)];

/// Sets Slint's testing backend with the software renderer on this thread,
/// so that windows render (and `take_snapshot` works) without a display.
/// Must be called before any window is created.
pub fn init_headless() -> anyhow::Result<()> {
    use i_slint_backend_testing::{TestingBackend, TestingBackendOptions};
    slint::platform::set_platform(Box::new(TestingBackend::new(TestingBackendOptions {
        mock_time: true,
        threading: false,
        renderer_name: Some("software".into()),
    })))
    .map_err(|e| anyhow::anyhow!("cannot set the headless platform: {e}"))
}

/// Writes one window's current frame as PNG.
pub fn write_png(ui: &KioskWindow, path: &Path) -> anyhow::Result<()> {
    let frame = ui
        .window()
        .take_snapshot()
        .context("rendering the window")?;
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), frame.width(), frame.height());
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header()?;
    writer.write_image_data(frame.as_bytes())?;
    Ok(())
}

/// Writes where each labelled element of the window is, as JSON lines
/// `{"label", "x", "y", "w", "h"}` in window pixels, beside its PNG: the
/// Pi rig taps the emulated touch screen where these say.
pub fn write_layout(ui: &KioskWindow, path: &Path) -> anyhow::Result<()> {
    let mut text = String::new();
    for e in i_slint_backend_testing::ElementQuery::from_root(ui)
        .match_descendants()
        .find_all()
    {
        let Some(label) = e.accessible_label().filter(|l| !l.is_empty()) else {
            continue;
        };
        let (at, size) = (e.absolute_position(), e.size());
        let line = serde_json::json!({
            "label": label.as_str(),
            "x": at.x, "y": at.y, "w": size.width, "h": size.height,
        });
        text.push_str(&line.to_string());
        text.push('\n');
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Presses the element whose accessible label is `english` (or, when it
/// ends with a space, starts with it), as a person taps it: the forms and
/// the keyboard are the views' own state, opened by their buttons. The
/// labels are translated with the rest, so the window speaks English for
/// the search and its own language again before the press.
fn press(ui: &KioskWindow, english: &str) -> anyhow::Result<()> {
    let lang = crate::kiosk::language::selected();
    crate::kiosk::language::select(crate::kiosk::language::DEFAULT)?;
    let wanted = english.to_owned();
    let found = i_slint_backend_testing::ElementQuery::from_root(ui)
        .match_descendants()
        .match_predicate(move |e| {
            e.accessible_label().is_some_and(|l| {
                if wanted.ends_with(' ') {
                    l.starts_with(wanted.as_str())
                } else {
                    l == wanted.as_str()
                }
            })
        })
        .find_first();
    crate::kiosk::language::select(lang)?;
    found
        .with_context(|| format!("no element labelled {english:?} on screen"))?
        .invoke_accessible_default_action();
    Ok(())
}

fn badge(number: &str) -> Intent {
    Intent::Badge(BadgeInput::Read(BadgeRead {
        number: number.into(),
    }))
}

/// Renders the demo's screens into `out`; returns the files written.
/// `config` is the board's configuration; its data directory is replaced
/// by a temporary one. With `layout`, each PNG gets a JSON file of where
/// its labelled elements are ([`write_layout`]). Must run on a thread where
/// no Slint platform is set.
///
/// The language is `config.board.language` (`huddle-kiosk snapshot --lang`
/// overrides it).
pub fn render_all(
    config: &KioskConfig,
    out: &Path,
    sizes: &[(u32, u32)],
    layout: bool,
) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    init_headless()?;
    let mut written = Vec::new();
    walk(config, |name, ui| {
        for &(w, h) in sizes {
            ui.window().set_size(slint::PhysicalSize::new(w, h));
            let path = out.join(format!("{name}-{w}x{h}.png"));
            write_png(ui, &path)?;
            if layout {
                write_layout(ui, &path.with_extension("json"))?;
            }
            written.push(path);
        }
        Ok(())
    })?;
    Ok(written)
}

/// Runs the demo script through every screen and calls `visit` with each
/// screen's name (`01-idle`, ...) and the window showing it: what
/// [`render_all`] renders, and what the UI tests check screen by screen
/// (every text fits, in every language). The language is
/// `config.board.language`; the data directory is a temporary one. Needs
/// a Slint platform on this thread ([`init_headless`]).
pub fn walk(
    config: &KioskConfig,
    mut visit: impl FnMut(&str, &KioskWindow) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let dir = tempdir()?;
    let mut config = config.clone();
    config.storage.data_dir = dir.clone();
    let tz = config.timezone();
    // A Monday morning before the first huddle, with a huddle held the
    // Friday before so that actions, escalations and the experiment exist.
    let friday: DateTime<Utc> = tz
        .with_ymd_and_hms(2026, 11, 27, 6, 44, 0)
        .earliest()
        .context("demo date")?
        .with_timezone(&Utc);
    let board = Board::open(config.clone(), friday)?;
    let people: Vec<(String, String)> = config
        .people
        .iter()
        .filter_map(|p| p.badges.first().map(|b| (p.id.clone(), b.clone())))
        .collect();
    let badge_of = |id: &str| {
        people
            .iter()
            .find(|(p, _)| p == id)
            .map(|(_, b)| b.clone())
            .unwrap_or_default()
    };
    let leader = config
        .people
        .iter()
        .find(|p| p.role == crate::domain::Role::TeamLeader)
        .map(|p| p.id.clone())
        .context("the demo roster needs a team leader")?;
    let members: Vec<String> = config
        .people
        .iter()
        .filter(|p| p.role == crate::domain::Role::Member)
        .map(|p| p.id.clone())
        .collect();

    let ui = KioskWindow::new()?;
    crate::kiosk::language::select(&config.board.language)?;
    let driver = Rc::new(RefCell::new(Driver { board, now: friday }));
    Driver::connect(driver.clone(), &ui);
    ui.show()?;
    let mut shot = |name: &str, ui: &KioskWindow| -> anyhow::Result<()> {
        // Let the last toast go, except where it is the point of the picture.
        if !name.contains("attendance") {
            let mut d = driver.borrow_mut();
            d.advance(Duration::seconds(4));
            d.handle(Intent::Tick, ui).map_err(anyhow::Error::from)?;
        }
        visit(name, ui)
    };
    let run = |intent: Intent| -> anyhow::Result<()> {
        driver
            .borrow_mut()
            .handle(intent, &ui)
            .map_err(anyhow::Error::from)
    };
    let advance = |minutes: i64| driver.borrow_mut().advance(Duration::minutes(minutes));
    let owner = members.first().cloned().unwrap_or_else(|| leader.clone());

    // Friday: a short huddle that leaves history behind.
    run(badge(&badge_of(&leader)))?;
    run(Intent::AddAction {
        what: "Fix guard sensor on press 3".into(),
        owner: owner.clone(),
        due: Some(2),
    })?;
    run(Intent::AddAction {
        what: "Order spare nozzles".into(),
        owner: leader.clone(),
        due: Some(3),
    })?;
    run(Intent::RaiseNeed {
        category: Some(1),
        text: "Label stock for line 2".into(),
        escalate: true,
    })?;
    run(Intent::SaveExperiment {
        obstacle: "Changeover takes 40 min".into(),
        expectation: "Under 25 min by pre-staging dies".into(),
        next_step: "Pre-stage dies for the night shift".into(),
        owner: owner.clone(),
        check: Some(3),
    })?;
    advance(12);
    run(Intent::CloseHuddle)?;
    run(badge(&badge_of(&leader)))?;
    run(Intent::Dismiss)?;

    // Monday 06:40: the idle board.
    driver.borrow_mut().now = friday + Duration::days(3) - Duration::minutes(4);
    run(Intent::Tick)?;
    shot("01-idle", &ui)?;

    // 06:44: the team leader starts; people tap in, one of them late.
    advance(4);
    run(badge(&badge_of(&leader)))?;
    for m in members.iter().take(3) {
        run(badge(&badge_of(m)))?;
    }
    advance(8);
    if let Some(m) = members.get(3) {
        run(Intent::TapName(m.clone()))?;
    }
    shot("02-attendance", &ui)?;

    run(Intent::NextStep)?;
    run(Intent::KpiHit {
        key: "safety".into(),
        actual: "0".into(),
    })?;
    run(Intent::KpiMiss {
        key: "quality".into(),
        actual: "96.5".into(),
        reason: Some(0),
        note: "Lot 2231 porous".into(),
        none_needed: false,
        what: "Check supplier lot 2231".into(),
        owner: owner.clone(),
        due: Some(1),
    })?;
    run(Intent::KpiHit {
        key: "delivery".into(),
        actual: String::new(),
    })?;
    shot("03-kpis", &ui)?;
    // The forms live in the views' own state: their buttons open them.
    press(&ui, "Missed Delivery")?;
    shot("03a-kpi-miss-form", &ui)?;
    press(&ui, "Add an action")?;
    press(&ui, "What")?;
    shot("03b-keyboard", &ui)?;
    press(&ui, "Key Accents")?;
    shot("03c-keyboard-accents", &ui)?;
    press(&ui, "Key Accents")?;
    press(&ui, "Key Done")?;
    press(&ui, "Cancel")?;

    run(Intent::NextStep)?;
    let first_open = driver
        .borrow()
        .board
        .view(driver.borrow().now)?
        .open_actions
        .first()
        .map(|a| a.id.clone());
    if let Some(id) = first_open {
        run(Intent::ActionDone(id))?;
    }
    shot("04-open-actions", &ui)?;
    press(&ui, "New date ")?;
    shot("04a-new-date", &ui)?;
    press(&ui, "Cancel")?;

    run(Intent::NextStep)?;
    run(Intent::RaiseNeed {
        category: Some(0),
        text: "Cover for Dmitri on Monday".into(),
        escalate: false,
    })?;
    shot("05-needs", &ui)?;
    press(&ui, "Raise a need")?;
    shot("05a-need-form", &ui)?;
    press(&ui, "Cancel")?;

    run(Intent::NextStep)?;
    shot("06-experiment", &ui)?;

    run(Intent::NextStep)?;
    run(Intent::AddAction {
        what: "Clean the glue nozzle daily".into(),
        owner: leader.clone(),
        due: Some(1),
    })?;
    shot("07-new-actions", &ui)?;
    press(&ui, "New action")?;
    shot("07a-action-form", &ui)?;
    press(&ui, "Cancel")?;

    run(Intent::NextStep)?;
    advance(2);
    shot("08-close", &ui)?;
    run(Intent::CloseHuddle)?;
    shot("09-close-prompt", &ui)?;
    run(badge(&badge_of(&leader)))?;
    shot("10-summary", &ui)?;

    run(Intent::Dismiss)?;
    run(badge("987654"))?;
    shot("11-unknown-badge", &ui)?;
    run(Intent::EnrolBegin)?;
    shot("12-enrol", &ui)?;
    if let Some(m) = members.last() {
        run(Intent::EnrolChoose(m.clone()))?;
    }
    shot("13-enrol-prompt", &ui)?;
    run(Intent::CancelPrompt)?;

    // Coaching observations: the supervisor observed the huddle and records it
    // with the team leader; then the manager opens a level 4 observation.
    let role_badge = |role: crate::domain::Role| {
        config
            .people
            .iter()
            .find(|p| p.role == role)
            .and_then(|p| p.badges.first().cloned())
            .with_context(|| format!("the demo roster needs a {}", role.key()))
    };
    let supervisor = role_badge(crate::domain::Role::Supervisor)?;
    let manager = role_badge(crate::domain::Role::Manager)?;
    advance(3);
    run(badge(&supervisor))?;
    shot("14-coach-menu", &ui)?;
    run(Intent::ObserveBegin(ObservationLevel::Facilitation))?;
    shot("15-observe-self-view", &ui)?;
    run(Intent::ObserveSelfView(SelfView::SoSo))?;
    let scores = [3, 4, 3, 2, 3, 4, 2, 3, 4];
    for (i, score) in scores.iter().enumerate().take(5) {
        run(Intent::ObserveScore {
            behaviour: i,
            score: *score,
        })?;
    }
    shot("16-observe-rubric", &ui)?;
    // Next too early: the refusal, a counted plural, in the error banner.
    run(Intent::ObserveNext)?;
    shot("16a-observe-refused", &ui)?;
    for (i, score) in scores.iter().enumerate().skip(5) {
        run(Intent::ObserveScore {
            behaviour: i,
            score: *score,
        })?;
    }
    run(Intent::ObserveNext)?;
    run(Intent::ObserveStrength(1))?;
    run(Intent::ObserveFocus(3))?;
    run(Intent::ObserveNote {
        focus: true,
        text: "Ask the quiet ones first".into(),
    })?;
    shot("17-observe-picks", &ui)?;
    run(Intent::ObserveNext)?;
    run(Intent::ObserveTrigger("When someone is silent".into()))?;
    run(Intent::ObserveReobserve(1))?;
    shot("18-observe-trigger", &ui)?;
    run(Intent::ObserveNext)?;
    shot("19-observe-confirm", &ui)?;
    run(badge(&badge_of(&leader)))?;
    shot("20-observe-rate", &ui)?;
    run(Intent::ObserveRate(4))?;
    shot("21-idle-coaching-focus", &ui)?;
    run(badge(&manager))?;
    run(Intent::ObserveBegin(ObservationLevel::Coaching))?;
    run(Intent::ObserveSelfView(SelfView::WentWell))?;
    for (i, score) in [3, 2, 4].iter().enumerate() {
        run(Intent::ObserveScore {
            behaviour: i,
            score: *score,
        })?;
    }
    shot("22-observe-coaching-rubric", &ui)?;
    run(Intent::ObserveCancel)?;

    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn tempdir() -> anyhow::Result<PathBuf> {
    // Unique per walk: the UI tests walk several languages in one process.
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("huddle-snapshot-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
