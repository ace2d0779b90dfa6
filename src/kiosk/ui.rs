//! The Slint adapter: the only place where the kiosk core's types become
//! Slint types, and where the screen's callbacks become [`Intent`]s.
//!
//! Threads: the main thread runs Slint's event loop; the core thread owns
//! the [`Board`] (and so the SQLite file) and receives intents through a
//! channel from the screen and from the badge reader. After each intent it
//! builds a [`BoardView`] and hands it to the event loop with
//! `upgrade_in_event_loop`, so the screen never waits for the disk and
//! shows only what has been committed.
//!
//! [`run`] also starts a tokio runtime (thread `mqtt`) with the
//! [`Outbox`] publisher: the store's commit hook wakes it, and its
//! [`crate::kiosk::outbox::LinkStatus`] and the aggregator's rosters come back to
//! the core as [`Intent::Link`] and [`Intent::ApplyRoster`]. If it cannot
//! start, the kiosk runs as before and queues.

use std::rc::Rc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use slint::{ComponentHandle, ModelRc, SharedString, VecModel};

use crate::domain::{FlowStep, ObservationLevel, Role, SelfView, Step};
use crate::kiosk::app::{self, Board, BoardView, Intent};
use crate::kiosk::badge::{BadgeInput, BadgeSource};
use crate::kiosk::outbox::Outbox;
use crate::text;

/// The code generated from `ui/main.slint`.
#[allow(missing_docs, clippy::all)]
mod generated {
    slint::include_modules!();
}
pub use generated::*;

fn s(text: impl AsRef<str>) -> SharedString {
    SharedString::from(text.as_ref())
}

fn model<T: Clone + 'static>(items: Vec<T>) -> ModelRc<T> {
    ModelRc::new(VecModel::from(items))
}

fn opt_index(i: i32) -> Option<usize> {
    usize::try_from(i).ok()
}

/// Wires every callback of the window to `sink`.
pub fn connect(ui: &KioskWindow, sink: impl Fn(Intent) + 'static) {
    let sink: Rc<dyn Fn(Intent)> = Rc::new(sink);
    let k = ui.global::<Kiosk>();
    let f = sink.clone();
    k.on_key_typed(move |t| f(Intent::Key(t.to_string())));
    let f = sink.clone();
    k.on_touched(move || f(Intent::Touched));
    let f = sink.clone();
    k.on_start_huddle(move || f(Intent::StartHuddle));
    let f = sink.clone();
    k.on_next_step(move || f(Intent::NextStep));
    let f = sink.clone();
    k.on_previous_step(move || f(Intent::PreviousStep));
    let f = sink.clone();
    k.on_close_huddle(move || f(Intent::CloseHuddle));
    let f = sink.clone();
    k.on_cancel_prompt(move || f(Intent::CancelPrompt));
    let f = sink.clone();
    k.on_dismiss(move || f(Intent::Dismiss));

    let f = sink.clone();
    ui.global::<Attendance>()
        .on_tap_name(move |id| f(Intent::TapName(id.to_string())));

    let kpis = ui.global::<Kpis>();
    let f = sink.clone();
    kpis.on_mark_hit(move |key, actual| {
        f(Intent::KpiHit {
            key: key.into(),
            actual: actual.into(),
        })
    });
    let f = sink.clone();
    kpis.on_save_miss(
        move |key, actual, reason, note, none_needed, what, owner, due| {
            f(Intent::KpiMiss {
                key: key.into(),
                actual: actual.into(),
                reason: opt_index(reason),
                note: note.into(),
                none_needed,
                what: what.into(),
                owner: owner.into(),
                due: opt_index(due),
            })
        },
    );

    let actions = ui.global::<Actions>();
    let f = sink.clone();
    actions.on_mark_done(move |id| f(Intent::ActionDone(id.into())));
    let f = sink.clone();
    actions.on_reschedule(move |id, due| {
        f(Intent::Reschedule(
            id.into(),
            opt_index(due).unwrap_or(usize::MAX),
        ))
    });
    let f = sink.clone();
    actions.on_mark_blocked(move |id| f(Intent::ActionBlocked(id.into())));
    let f = sink.clone();
    actions.on_add_action(move |what, owner, due| {
        f(Intent::AddAction {
            what: what.into(),
            owner: owner.into(),
            due: opt_index(due),
        })
    });

    let f = sink.clone();
    ui.global::<Needs>()
        .on_raise(move |category, text, escalate| {
            f(Intent::RaiseNeed {
                category: opt_index(category),
                text: text.into(),
                escalate,
            })
        });

    let f = sink.clone();
    ui.global::<Experiment>()
        .on_save(move |obstacle, expectation, next_step, owner, check| {
            f(Intent::SaveExperiment {
                obstacle: obstacle.into(),
                expectation: expectation.into(),
                next_step: next_step.into(),
                owner: owner.into(),
                check: opt_index(check),
            })
        });

    let enrol = ui.global::<Enrol>();
    let f = sink.clone();
    enrol.on_begin(move || f(Intent::EnrolBegin));
    let f = sink.clone();
    enrol.on_choose(move |id| f(Intent::EnrolChoose(id.into())));

    connect_observe(ui, sink);
}

/// The coaching observation's callbacks.
fn connect_observe(ui: &KioskWindow, sink: Rc<dyn Fn(Intent)>) {
    let o = ui.global::<Observe>();
    let f = sink.clone();
    o.on_begin(move |level| {
        let level = match level {
            4 => ObservationLevel::Coaching,
            _ => ObservationLevel::Facilitation,
        };
        f(Intent::ObserveBegin(level))
    });
    let f = sink.clone();
    o.on_pick_learner(move |id| f(Intent::ObserveLearner(id.into())));
    let f = sink.clone();
    o.on_choose_self_view(move |v| {
        let v = match v {
            SelfViewKey::WentWell => SelfView::WentWell,
            SelfViewKey::SoSo => SelfView::SoSo,
            SelfViewKey::Badly => SelfView::Badly,
            SelfViewKey::None => return,
        };
        f(Intent::ObserveSelfView(v))
    });
    let f = sink.clone();
    o.on_score(move |i, score| {
        if let (Some(behaviour), Ok(score)) = (opt_index(i), u8::try_from(score)) {
            f(Intent::ObserveScore { behaviour, score })
        }
    });
    let f = sink.clone();
    o.on_choose_strength(move |i| {
        if let Some(i) = opt_index(i) {
            f(Intent::ObserveStrength(i))
        }
    });
    let f = sink.clone();
    o.on_choose_focus(move |i| {
        if let Some(i) = opt_index(i) {
            f(Intent::ObserveFocus(i))
        }
    });
    let f = sink.clone();
    o.on_note(move |focus, text| {
        f(Intent::ObserveNote {
            focus,
            text: text.into(),
        })
    });
    let f = sink.clone();
    o.on_set_trigger(move |t| f(Intent::ObserveTrigger(t.into())));
    let f = sink.clone();
    o.on_reobserve(move |i| {
        if let Some(i) = opt_index(i) {
            f(Intent::ObserveReobserve(i))
        }
    });
    let f = sink.clone();
    o.on_next(move || f(Intent::ObserveNext));
    let f = sink.clone();
    o.on_back(move || f(Intent::ObserveBack));
    let f = sink.clone();
    o.on_cancel(move || f(Intent::ObserveCancel));
    let f = sink;
    o.on_rate(move |n| {
        if let Ok(n) = u8::try_from(n) {
            f(Intent::ObserveRate(n))
        }
    });
}

fn screen_of(screen: app::Screen) -> Screen {
    match screen {
        app::Screen::Idle => Screen::Idle,
        app::Screen::Summary => Screen::Summary,
        app::Screen::UnknownBadge => Screen::UnknownBadge,
        app::Screen::Enrol => Screen::Enrol,
        app::Screen::Observe(step) => match step {
            FlowStep::Menu => Screen::CoachMenu,
            FlowStep::Learner => Screen::ObserveLearner,
            FlowStep::SelfView => Screen::ObserveSelfView,
            FlowStep::Rubric => Screen::ObserveRubric,
            FlowStep::Picks => Screen::ObservePicks,
            FlowStep::Trigger => Screen::ObserveTrigger,
            FlowStep::Confirm => Screen::ObserveConfirm,
            FlowStep::Rate => Screen::ObserveRate,
        },
        app::Screen::Step(step) => match step {
            Step::Attendance => Screen::Attendance,
            Step::Kpis => Screen::Kpis,
            Step::OpenActions => Screen::OpenActions,
            Step::Needs => Screen::Needs,
            Step::Experiment => Screen::Experiment,
            Step::NewActions => Screen::NewActions,
            Step::Close => Screen::Close,
        },
    }
}

/// The Slint twin of a core message key (one to one; the match is
/// exhaustive, so a key added on one side only does not compile).
fn key_of(key: text::TextKey) -> TextKey {
    match key {
        text::TextKey::Welcome => TextKey::Welcome,
        text::TextKey::WelcomeLate => TextKey::WelcomeLate,
        text::TextKey::AlreadyHere => TextKey::AlreadyHere,
        text::TextKey::NoHuddleNow => TextKey::NoHuddleNow,
        text::TextKey::NoHuddleNowNext => TextKey::NoHuddleNowNext,
        text::TextKey::StartFirst => TextKey::StartFirst,
        text::TextKey::HuddleStarted => TextKey::HuddleStarted,
        text::TextKey::KpiHit => TextKey::KpiHit,
        text::TextKey::KpiMissedSaved => TextKey::KpiMissedSaved,
        text::TextKey::ActionAdded => TextKey::ActionAdded,
        text::TextKey::NeedRaised => TextKey::NeedRaised,
        text::TextKey::NeedRaisedEscalated => TextKey::NeedRaisedEscalated,
        text::TextKey::ExperimentSaved => TextKey::ExperimentSaved,
        text::TextKey::HuddleClosed => TextKey::HuddleClosed,
        text::TextKey::BadgeEnrolled => TextKey::BadgeEnrolled,
        text::TextKey::NotEnrolledCannotConfirm => TextKey::NotEnrolledCannotConfirm,
        text::TextKey::CouldNotRead => TextKey::CouldNotRead,
        text::TextKey::PromptStart => TextKey::PromptStart,
        text::TextKey::PromptClose => TextKey::PromptClose,
        text::TextKey::PromptEnrol => TextKey::PromptEnrol,
        text::TextKey::EnterWhat => TextKey::EnterWhat,
        text::TextKey::EnterNeedText => TextKey::EnterNeedText,
        text::TextKey::EnterObstacle => TextKey::EnterObstacle,
        text::TextKey::EnterExpectation => TextKey::EnterExpectation,
        text::TextKey::EnterNextStep => TextKey::EnterNextStep,
        text::TextKey::EnterActual => TextKey::EnterActual,
        text::TextKey::EnterNote => TextKey::EnterNote,
        text::TextKey::TooLongWhat => TextKey::TooLongWhat,
        text::TextKey::TooLongActual => TextKey::TooLongActual,
        text::TextKey::TooLongNote => TextKey::TooLongNote,
        text::TextKey::TooLongNeedText => TextKey::TooLongNeedText,
        text::TextKey::TooLongObstacle => TextKey::TooLongObstacle,
        text::TextKey::TooLongExpectation => TextKey::TooLongExpectation,
        text::TextKey::TooLongNextStep => TextKey::TooLongNextStep,
        text::TextKey::PickReason => TextKey::PickReason,
        text::TextKey::ActionOrNoneNeeded => TextKey::ActionOrNoneNeeded,
        text::TextKey::PickOwner => TextKey::PickOwner,
        text::TextKey::PickDueDate => TextKey::PickDueDate,
        text::TextKey::DueInPast => TextKey::DueInPast,
        text::TextKey::PickCategory => TextKey::PickCategory,
        text::TextKey::PickExperimentOwner => TextKey::PickExperimentOwner,
        text::TextKey::PickCheckDate => TextKey::PickCheckDate,
        text::TextKey::PickNewDate => TextKey::PickNewDate,
        text::TextKey::CannotStart => TextKey::CannotStart,
        text::TextKey::CannotClose => TextKey::CannotClose,
        text::TextKey::CannotEnrol => TextKey::CannotEnrol,
        text::TextKey::LinkOnline => TextKey::LinkOnline,
        text::TextKey::LinkSending => TextKey::LinkSending,
        text::TextKey::LinkConnecting => TextKey::LinkConnecting,
        text::TextKey::LinkConnectingQueued => TextKey::LinkConnectingQueued,
        text::TextKey::LinkOffline => TextKey::LinkOffline,
        text::TextKey::LinkOfflineQueued => TextKey::LinkOfflineQueued,
        text::TextKey::LinkLocalOnly => TextKey::LinkLocalOnly,
        text::TextKey::LinkPasswordRefused => TextKey::LinkPasswordRefused,
        text::TextKey::LinkPasswordRefusedQueued => TextKey::LinkPasswordRefusedQueued,
        text::TextKey::LinkCertificateUntrusted => TextKey::LinkCertificateUntrusted,
        text::TextKey::LinkCertificateUntrustedQueued => TextKey::LinkCertificateUntrustedQueued,
        text::TextKey::CannotObserveHuddle => TextKey::CannotObserveHuddle,
        text::TextKey::CannotObserveCoaching => TextKey::CannotObserveCoaching,
        text::TextKey::NoTeamLeader => TextKey::NoTeamLeader,
        text::TextKey::NoSupervisor => TextKey::NoSupervisor,
        text::TextKey::SelfObservation => TextKey::SelfObservation,
        text::TextKey::NotALearner => TextKey::NotALearner,
        text::TextKey::ObserverCannotConfirm => TextKey::ObserverCannotConfirm,
        text::TextKey::NotTheLearner => TextKey::NotTheLearner,
        text::TextKey::PickSelfView => TextKey::PickSelfView,
        text::TextKey::ScoreEveryBehaviour => TextKey::ScoreEveryBehaviour,
        text::TextKey::ScoreOutOfRange => TextKey::ScoreOutOfRange,
        text::TextKey::PickStrength => TextKey::PickStrength,
        text::TextKey::PickFocus => TextKey::PickFocus,
        text::TextKey::EnterTrigger => TextKey::EnterTrigger,
        text::TextKey::TriggerTooLong => TextKey::TriggerTooLong,
        text::TextKey::PickReobserveDate => TextKey::PickReobserveDate,
        text::TextKey::ReobserveNotAfterToday => TextKey::ReobserveNotAfterToday,
        text::TextKey::RateHelpfulness => TextKey::RateHelpfulness,
        text::TextKey::ObservationInProgress => TextKey::ObservationInProgress,
        text::TextKey::ObservationTimedOut => TextKey::ObservationTimedOut,
        text::TextKey::ObservationCancelled => TextKey::ObservationCancelled,
        text::TextKey::ObservationSaved => TextKey::ObservationSaved,
    }
}

fn text_view(t: Option<&text::Text>) -> TextView {
    match t {
        Some(t) => TextView {
            key: key_of(t.key),
            arg: s(&t.arg),
            arg2: s(&t.arg2),
        },
        None => TextView {
            key: TextKey::None,
            arg: SharedString::new(),
            arg2: SharedString::new(),
        },
    }
}

fn role_of(role: Role) -> RoleKey {
    match role {
        Role::Member => RoleKey::Member,
        Role::TeamLeader => RoleKey::TeamLeader,
        Role::Supervisor => RoleKey::Supervisor,
        Role::Manager => RoleKey::Manager,
    }
}

fn step_of(step: Step) -> StepKey {
    match step {
        Step::Attendance => StepKey::Attendance,
        Step::Kpis => StepKey::Kpis,
        Step::OpenActions => StepKey::OpenActions,
        Step::Needs => StepKey::Needs,
        Step::Experiment => StepKey::Experiment,
        Step::NewActions => StepKey::NewActions,
        Step::Close => StepKey::Close,
    }
}

fn tone_of(tone: app::Tone) -> Tone {
    match tone {
        app::Tone::Info => Tone::Info,
        app::Tone::Ok => Tone::Ok,
        app::Tone::Warn => Tone::Warn,
        app::Tone::Error => Tone::Error,
    }
}

/// A local date as the screen shows it, "Mon 30 Nov", in the selected
/// language.
fn day(date: NaiveDate) -> String {
    crate::kiosk::language::short_date(date, crate::kiosk::language::selected())
}

fn mmss(d: Duration) -> String {
    let secs = d.num_seconds().max(0);
    format!("{:02}:{:02}", secs / 60, secs % 60)
}

/// How long since `since`, in the largest whole unit (the view words it).
fn age(since: DateTime<Utc>, now: DateTime<Utc>) -> (i32, AgeUnit) {
    let d = now - since;
    let n = |v: i64| i32::try_from(v).unwrap_or(i32::MAX);
    if d.num_days() >= 1 {
        (n(d.num_days()), AgeUnit::Days)
    } else if d.num_hours() >= 1 {
        (n(d.num_hours()), AgeUnit::Hours)
    } else {
        (n(d.num_minutes().max(0)), AgeUnit::Minutes)
    }
}

/// The clock and timer texts: what changes every second without any
/// record changing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockView {
    clock: String,
    date: String,
    timer: String,
    timer_over: bool,
    dimmed: bool,
}

impl ClockView {
    /// From a view.
    pub fn of(view: &BoardView) -> ClockView {
        ClockView::new(view.tz, view.now, view.started_at, view.target, view.dimmed)
    }

    /// From the board, without reading the store.
    pub fn of_board(board: &Board, now: DateTime<Utc>) -> ClockView {
        let target = Duration::minutes(board.config().huddle.target_minutes.into());
        let started = board.huddle().map(|h| h.started_at);
        ClockView::new(
            board.config().timezone(),
            now,
            started,
            target,
            board.dimmed(now),
        )
    }

    fn new(
        tz: chrono_tz::Tz,
        now: DateTime<Utc>,
        started: Option<DateTime<Utc>>,
        target: Duration,
        dimmed: bool,
    ) -> ClockView {
        let local = now.with_timezone(&tz);
        let elapsed = started.map(|s| now - s).unwrap_or_default();
        ClockView {
            clock: local.format("%H:%M").to_string(),
            date: day(local.date_naive()),
            timer: if started.is_some() {
                format!("{} / {}", mmss(elapsed), mmss(target))
            } else {
                String::new()
            },
            timer_over: elapsed > target,
            dimmed,
        }
    }

    /// Sets the clock texts on the window.
    pub fn apply(&self, ui: &KioskWindow) {
        let k = ui.global::<Kiosk>();
        k.set_clock(s(&self.clock));
        k.set_date(s(&self.date));
        k.set_timer_text(s(&self.timer));
        k.set_timer_over(self.timer_over);
        k.set_dimmed(self.dimmed);
    }
}

fn person_view(row: &app::PersonRow, tz: chrono_tz::Tz) -> PersonView {
    PersonView {
        id: s(&row.person.id),
        name: s(&row.person.name),
        role: role_of(row.person.role),
        initials: s(row.person.initials()),
        present: row.arrival.is_some(),
        late: row.arrival.as_ref().is_some_and(|a| a.late),
        arrived: s(row
            .arrival
            .as_ref()
            .map(|a| a.at.with_timezone(&tz).format("%H:%M").to_string())
            .unwrap_or_default()),
    }
}

fn plain_person(p: &crate::domain::Person) -> PersonView {
    PersonView {
        id: s(&p.id),
        name: s(&p.name),
        role: role_of(p.role),
        initials: s(p.initials()),
        present: false,
        late: false,
        arrived: SharedString::new(),
    }
}

fn action_view(a: &app::ActionRow, today: NaiveDate) -> ActionView {
    ActionView {
        id: s(&a.id),
        what: s(&a.what),
        owner: s(&a.owner),
        due: s(day(a.due)),
        status: s(&a.status),
        overdue: a.status != "done" && a.due < today,
    }
}

fn need_view(n: &app::NeedRow, now: DateTime<Utc>) -> NeedView {
    let (age, age_unit) = age(n.raised_at, now);
    NeedView {
        id: s(&n.id),
        category: s(&n.category),
        text: s(&n.text),
        escalated: n.escalated,
        age,
        age_unit,
    }
}

/// Sets every property of the window from a view.
pub fn apply(view: &BoardView, ui: &KioskWindow) {
    let tz = view.tz;
    let now = view.now;
    let today = now.with_timezone(&tz).date_naive();
    if view.language != crate::kiosk::language::selected() {
        // The core only produces checked codes: config validation and
        // `language::check` allow nothing else.
        if let Err(e) = crate::kiosk::language::select(&view.language) {
            tracing::warn!("{e:#}");
        }
    }
    let k = ui.global::<Kiosk>();
    k.set_screen(screen_of(view.screen));
    k.set_board_name(s(&view.board_name));
    k.set_link(text_view(Some(&view.link)));
    k.set_link_ok(view.link_ok);
    k.set_toast(text_view(view.notice.as_ref().map(|n| &n.text)));
    if let Some(n) = &view.notice {
        k.set_toast_tone(tone_of(n.tone));
    }
    k.set_prompt(text_view(view.prompt.as_ref()));
    k.set_error(text_view(view.error.as_ref()));
    let current = view.step.unwrap_or(usize::MAX);
    let steps: Vec<StepView> = view
        .agenda
        .iter()
        .copied()
        .chain([Step::Close])
        .enumerate()
        .map(|(i, step)| StepView {
            key: step_of(step),
            done: i < current,
            current: i == current,
        })
        .collect();
    k.set_steps(model(steps));
    ClockView::of(view).apply(ui);

    let idle = ui.global::<Idle>();
    // The view words it: "Next huddle today at 06:45".
    match view.next_slot {
        Some(at) => {
            let local = at.with_timezone(&tz);
            let date = local.date_naive();
            let next_day = if date == today {
                NextDay::Today
            } else if date == today.succ_opt().unwrap_or(today) {
                NextDay::Tomorrow
            } else {
                NextDay::Date
            };
            idle.set_next_day(next_day);
            idle.set_next_date(s(day(date)));
            idle.set_next_time(s(local.format("%H:%M").to_string()));
        }
        None => {
            idle.set_next_day(NextDay::None);
            idle.set_next_date(SharedString::new());
            idle.set_next_time(SharedString::new());
        }
    }
    let e = &view.experiment;
    idle.set_escalations(model(
        view.escalations.iter().map(|n| need_view(n, now)).collect(),
    ));

    let att = ui.global::<Attendance>();
    att.set_people(model(
        view.people.iter().map(|p| person_view(p, tz)).collect(),
    ));
    if let Some(sum) = &view.summary {
        att.set_present_count(sum.present as i32);
        att.set_roster_count(sum.expected as i32);
        att.set_late_count(sum.late as i32);
    } else {
        att.set_present_count(0);
        att.set_roster_count(view.people.len() as i32);
        att.set_late_count(0);
    }

    let kpis = ui.global::<Kpis>();
    kpis.set_kpis(model(
        view.kpis
            .iter()
            .map(|r| KpiView {
                key: s(&r.key),
                name: s(&r.name),
                target: s(&r.target),
                status: s(&r.status),
                actual: s(&r.actual),
                reason: s(&r.reason),
                note: s(&r.note),
                action: s(&r.action),
                none_needed: r.none_needed,
            })
            .collect(),
    ));
    kpis.set_reasons(model(view.reasons.iter().map(s).collect()));

    let choices = ui.global::<Choices>();
    choices.set_owners(model(view.owners.iter().map(plain_person).collect()));
    // Today, tomorrow, in 3 days, in a week: the view words the choices.
    choices.set_due_dates(model(
        (0..4)
            .map(|i| s(day(crate::domain::due_date(i, today).unwrap_or(today))))
            .collect(),
    ));

    let actions = ui.global::<Actions>();
    actions.set_open_actions(model(
        view.open_actions
            .iter()
            .map(|a| action_view(a, today))
            .collect(),
    ));
    actions.set_new_actions(model(
        view.new_actions
            .iter()
            .map(|a| action_view(a, today))
            .collect(),
    ));

    let needs = ui.global::<Needs>();
    needs.set_categories(model(view.categories.iter().map(s).collect()));
    needs.set_needs(model(
        view.needs.iter().map(|n| need_view(n, now)).collect(),
    ));

    let exp = ui.global::<Experiment>();
    exp.set_obstacle(s(&e.obstacle));
    exp.set_expectation(s(&e.expectation));
    exp.set_next_step(s(&e.next_step));
    exp.set_owner(s(&e.owner));
    exp.set_check_date(s(e.check_date.map(day).unwrap_or_default()));

    if let Some(sum) = &view.summary {
        let summary = ui.global::<Summary>();
        summary.set_attendance(s(format!("{}/{}", sum.present, sum.expected)));
        summary.set_late(sum.late as i32);
        summary.set_kpis_hit(s(format!("{}/{}", sum.kpis_hit, sum.kpis_total)));
        summary.set_needs_raised(sum.needs_raised as i32);
        summary.set_needs_escalated(sum.needs_escalated as i32);
        summary.set_actions_created(sum.actions_created as i32);
        summary.set_actions_closed(sum.actions_closed as i32);
        summary.set_duration(s(mmss(Duration::seconds(sum.duration_s))));
        summary.set_target(s(mmss(Duration::seconds(sum.target_s))));
        summary.set_over_target(sum.duration_s > sum.target_s);
    }

    ui.global::<Enrol>()
        .set_people(model(view.enrol_people.iter().map(plain_person).collect()));

    apply_focus(view.focus.as_ref(), today, &idle);
    if let Some(o) = &view.observation {
        apply_observation(o, today, &ui.global::<Observe>());
    }
}

/// The idle screen's coaching card.
fn apply_focus(focus: Option<&app::FocusRow>, today: NaiveDate, idle: &Idle<'_>) {
    idle.set_has_focus(focus.is_some());
    let Some(f) = focus else { return };
    idle.set_focus_learner(s(&f.learner));
    idle.set_focus_behaviour(f.behaviour as i32);
    idle.set_focus_note(s(&f.note));
    idle.set_focus_trigger(s(&f.trigger));
    idle.set_reobserve_date(s(day(f.reobserve_on)));
    idle.set_reobserve_overdue(f.reobserve_on < today);
}

fn apply_observation(o: &app::ObservationView, today: NaiveDate, g: &Observe<'_>) {
    g.set_observer(s(&o.observer));
    g.set_may_observe_huddle(o.levels.contains(&ObservationLevel::Facilitation));
    g.set_may_observe_coaching(o.levels.contains(&ObservationLevel::Coaching));
    g.set_in_huddle(o.in_huddle);
    if let Some(level) = o.level {
        g.set_level(i32::from(level.number()));
    }
    g.set_learner(s(&o.learner));
    g.set_learners(model(o.learners.iter().map(plain_person).collect()));
    g.set_self_view(match o.self_view {
        None => SelfViewKey::None,
        Some(SelfView::WentWell) => SelfViewKey::WentWell,
        Some(SelfView::SoSo) => SelfViewKey::SoSo,
        Some(SelfView::Badly) => SelfViewKey::Badly,
    });
    g.set_scores(model(
        o.scores
            .iter()
            .map(|v| v.map(i32::from).unwrap_or(0))
            .collect(),
    ));
    let index = |i: Option<usize>| i.map(|i| i as i32).unwrap_or(-1);
    g.set_strength(index(o.strength));
    g.set_strength_note(s(&o.strength_note));
    g.set_focus(index(o.focus));
    g.set_focus_note(s(&o.focus_note));
    g.set_trigger(s(&o.trigger));
    g.set_reobserve_choice(index(o.reobserve_choice));
    g.set_reobserve_dates(model(
        (0..crate::domain::REOBSERVE_DAYS.len())
            .map(|i| s(day(crate::domain::reobserve_date(i, today).unwrap_or(today))))
            .collect(),
    ));
}

/// Runs the kiosk: the window on this thread, the core on another, the
/// badge source on a third, the outbox publisher on a tokio runtime of its
/// own. Returns when the window closes.
pub fn run(mut board: Board, source: Option<Box<dyn BadgeSource>>) -> anyhow::Result<()> {
    let ui = KioskWindow::new()?;
    crate::kiosk::language::select(&board.config().board.language)?;
    let (tx, rx) = mpsc::channel::<Intent>();
    let (runtime, outbox) = start_outbox(&mut board, &tx);
    let ui_tx = tx.clone();
    connect(&ui, move |intent| {
        let _ = ui_tx.send(intent);
    });
    if let Some(source) = source {
        let (badge_tx, badge_rx) = mpsc::channel::<BadgeInput>();
        std::thread::Builder::new()
            .name("badge".into())
            .spawn(move || source.run(badge_tx))?;
        let tx = tx.clone();
        std::thread::Builder::new()
            .name("badge-forward".into())
            .spawn(move || {
                for input in badge_rx {
                    if tx.send(Intent::Badge(input)).is_err() {
                        break;
                    }
                }
            })?;
    }
    // The first view is applied before the window shows.
    let first = board.view(Utc::now())?;
    apply(&first, &ui);
    let weak = ui.as_weak();
    let core = std::thread::Builder::new()
        .name("core".into())
        .spawn(move || core_loop(board, rx, weak))?;
    // systemd (Type=notify): ready once the event loop turns, which is when
    // the first frame is drawn (the software renderer has no first-frame
    // notifier); the watchdog is fed by a timer on this same loop, so a
    // frozen UI misses it and is restarted.
    let ready = slint::Timer::default();
    ready.start(
        slint::TimerMode::SingleShot,
        StdDuration::ZERO,
        crate::notify::ready,
    );
    let heartbeat = slint::Timer::default();
    let mut watchdog = crate::notify::Watchdog::from_env();
    if let Some(every) = watchdog.every() {
        heartbeat.start(slint::TimerMode::Repeated, every / 2, move || {
            watchdog.feed(std::time::Instant::now())
        });
    }
    ui.run()?;
    drop(tx);
    // The publisher's tasks hold senders of the core's channel: stop them
    // first, so that the core sees the channel close.
    if let Some(runtime) = runtime {
        if let Some(outbox) = outbox {
            runtime.block_on(outbox.shutdown());
        }
        runtime.shutdown_timeout(StdDuration::from_secs(1));
    }
    let _ = core.join();
    Ok(())
}

/// Starts the tokio runtime (its own worker thread) and the outbox
/// publisher: commits wake it, its link status and the aggregator's roster
/// come back to the core as intents. Without a runtime or a publisher the
/// kiosk runs as before and queues; the reason is logged.
fn start_outbox(
    board: &mut Board,
    tx: &mpsc::Sender<Intent>,
) -> (Option<tokio::runtime::Runtime>, Option<Outbox>) {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("mqtt")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "no tokio runtime: events stay queued");
            return (None, None);
        }
    };
    let roster_tx = tx.clone();
    let on_roster = Box::new(move |roster| {
        let _ = roster_tx.send(Intent::ApplyRoster(roster));
    });
    let outbox = match Outbox::start(board.config(), runtime.handle(), on_roster) {
        Ok(outbox) => outbox,
        Err(e) => {
            tracing::error!(error = %e, "outbox publisher not started: events stay queued");
            return (Some(runtime), None);
        }
    };
    let wake = outbox.notifier();
    board.set_commit_hook(Box::new(move |_| wake.notify()));
    let mut status = outbox.status();
    let link_tx = tx.clone();
    runtime.spawn(async move {
        loop {
            let now = status.borrow_and_update().clone();
            if link_tx.send(Intent::Link(now)).is_err() {
                return;
            }
            if status.changed().await.is_err() {
                return;
            }
        }
    });
    (Some(runtime), Some(outbox))
}

/// The core thread: handles intents and ticks, pushes views.
fn core_loop(mut board: Board, rx: Receiver<Intent>, ui: slint::Weak<KioskWindow>) {
    let mut last_clock: Option<ClockView> = None;
    loop {
        let intent = match rx.recv_timeout(StdDuration::from_millis(250)) {
            Ok(intent) => intent,
            Err(RecvTimeoutError::Timeout) => Intent::Tick,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let now = Utc::now();
        let changed = match board.handle(intent, now) {
            Ok(changed) => changed,
            Err(e) => {
                // The store failed: nothing was confirmed. Say so on screen.
                tracing::error!(error = %e, "action not stored");
                true
            }
        };
        if changed {
            match board.view(now) {
                Ok(view) => {
                    last_clock = Some(ClockView::of(&view));
                    if ui
                        .upgrade_in_event_loop(move |ui| apply(&view, &ui))
                        .is_err()
                    {
                        return;
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot read the board's state"),
            }
        } else {
            let view = ClockView::of_board(&board, now);
            if last_clock.as_ref() != Some(&view) {
                last_clock = Some(view.clone());
                if ui.upgrade_in_event_loop(move |ui| view.apply(&ui)).is_err() {
                    return;
                }
            }
        }
    }
}

/// A synchronous driver for tests and snapshots: callbacks run the intent
/// on the board at once and apply the new view, with a settable clock.
pub struct Driver {
    /// The board.
    pub board: Board,
    /// The clock the driver uses.
    pub now: DateTime<Utc>,
}

impl Driver {
    /// Runs one intent and applies the view.
    pub fn handle(&mut self, intent: Intent, ui: &KioskWindow) -> Result<(), app::AppError> {
        self.board.handle(intent, self.now)?;
        apply(&self.board.view(self.now)?, ui);
        Ok(())
    }

    /// Wires a window to a shared driver.
    pub fn connect(driver: Rc<std::cell::RefCell<Driver>>, ui: &KioskWindow) {
        let weak = ui.as_weak();
        connect(ui, move |intent| {
            let Some(ui) = weak.upgrade() else { return };
            let mut d = driver.borrow_mut();
            if let Err(e) = d.handle(intent, &ui) {
                tracing::error!(error = %e, "action not stored");
            }
        });
    }

    /// Moves the clock.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
    }
}
