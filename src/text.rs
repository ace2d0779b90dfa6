//! Message keys: what the core wants said on screen, without the words.
//!
//! The core (toasts, prompts, refusals, the link state) produces a [`Text`]:
//! a [`TextKey`] and up to two arguments (a name, a time, a count). The
//! words live only in the views: `ui/texts.slint` renders each key with
//! `@tr()`, so that translations can be added. `ui` maps [`TextKey`] to the
//! Slint enum of the same name one to one (the match there is exhaustive on
//! both sides).
//!
//! [`Text`]'s `Display` prints the key and its arguments, for logs and
//! tests, never an English sentence.

use std::fmt;

use crate::domain::{Field, ObservationLevel, ObservationRefusal, Refusal};

/// Every message the core can ask the screen to show. The argument(s) each
/// key takes are in its doc; the English wording is in `ui/texts.slint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TextKey {
    /// "Welcome, {name}."
    Welcome,
    /// "Welcome, {name} (late)."
    WelcomeLate,
    /// "{name}, you are already here."
    AlreadyHere,
    /// "No huddle right now."
    NoHuddleNow,
    /// "No huddle right now. The next one is at {time}."
    NoHuddleNowNext,
    /// "Start the huddle first: the team leader taps their badge."
    StartFirst,
    /// "Huddle started. Welcome, {name}."
    HuddleStarted,
    /// "{kpi}: hit."
    KpiHit,
    /// "{kpi}: missed, saved."
    KpiMissedSaved,
    /// "Action added: {what}."
    ActionAdded,
    /// "Need raised."
    NeedRaised,
    /// "Need raised and escalated."
    NeedRaisedEscalated,
    /// "Experiment saved."
    ExperimentSaved,
    /// "Huddle closed. Thank you!"
    HuddleClosed,
    /// "Badge enrolled to {name}."
    BadgeEnrolled,
    /// "This badge is not enrolled, so it cannot confirm."
    NotEnrolledCannotConfirm,
    /// "Could not read the badge, please tap again."
    CouldNotRead,
    /// "Team leader: tap your badge to start the huddle."
    PromptStart,
    /// "Team leader: tap your badge to close the huddle."
    PromptClose,
    /// "Team leader or supervisor: tap your badge to enrol this badge to {name}."
    PromptEnrol,
    /// "Please enter what the action is."
    EnterWhat,
    /// "Please enter what is needed."
    EnterNeedText,
    /// "Please enter the obstacle."
    EnterObstacle,
    /// "Please enter what you expect."
    EnterExpectation,
    /// "Please enter the next step."
    EnterNextStep,
    /// "Please enter the actual figure." (optional today: not shown)
    EnterActual,
    /// "Please enter the note." (optional today: not shown)
    EnterNote,
    /// "what the action is is too long (at most {max} characters)."
    TooLongWhat,
    /// "the actual figure is too long (at most {max} characters)."
    TooLongActual,
    /// "the note is too long (at most {max} characters)."
    TooLongNote,
    /// "what is needed is too long (at most {max} characters)."
    TooLongNeedText,
    /// "the obstacle is too long (at most {max} characters)."
    TooLongObstacle,
    /// "what you expect is too long (at most {max} characters)."
    TooLongExpectation,
    /// "the next step is too long (at most {max} characters)."
    TooLongNextStep,
    /// "A missed KPI needs a reason: pick one."
    PickReason,
    /// "Add an action for the miss, or choose \"None needed\"."
    ActionOrNoneNeeded,
    /// "Pick the action's owner."
    PickOwner,
    /// "Pick a due date."
    PickDueDate,
    /// "The due date is in the past."
    DueInPast,
    /// "Pick the need's category."
    PickCategory,
    /// "Pick the experiment's owner."
    PickExperimentOwner,
    /// "Pick the date to check the result."
    PickCheckDate,
    /// "Pick the new date."
    PickNewDate,
    /// "{name} cannot start the huddle: the team leader's badge starts it."
    CannotStart,
    /// "{name} cannot close the huddle: the team leader's badge closes it."
    CannotClose,
    /// "{name} cannot enrol badges: a team leader or supervisor must confirm."
    CannotEnrol,
    /// Header: "online".
    LinkOnline,
    /// Header: "online · {n} sending".
    LinkSending,
    /// Header: "connecting…".
    LinkConnecting,
    /// Header: "connecting… · {n} queued".
    LinkConnectingQueued,
    /// Header: "offline".
    LinkOffline,
    /// Header: "offline · {n} queued".
    LinkOfflineQueued,
    /// Header, no publisher running: "local only".
    LinkLocalOnly,
    /// Header: "broker refused the password" (a config error: see the log).
    LinkPasswordRefused,
    /// Header: "broker refused the password · {n} queued".
    LinkPasswordRefusedQueued,
    /// Header: "broker certificate not trusted" (check mqtt.ca_file).
    LinkCertificateUntrusted,
    /// Header: "broker certificate not trusted · {n} queued".
    LinkCertificateUntrustedQueued,
    /// "{name} cannot observe a huddle: a supervisor observes the team leader."
    CannotObserveHuddle,
    /// "{name} cannot observe coaching: a manager observes the supervisor."
    CannotObserveCoaching,
    /// "Nobody to observe: this board has no team leader on its roster."
    NoTeamLeader,
    /// "Nobody to observe: this board has no supervisor on its roster."
    NoSupervisor,
    /// "{name}, nobody observes themselves."
    SelfObservation,
    /// "{name} is not observed at this level."
    NotALearner,
    /// "{name}: the learner confirms with their own badge, not the coach."
    ObserverCannotConfirm,
    /// "{name} cannot confirm: only {learner} confirms, with their own badge."
    NotTheLearner,
    /// "Pick how it went, in the learner's own view."
    PickSelfView,
    /// "Score every behaviour: {n} behaviours still open." (plural forms)
    ScoreEveryBehaviour,
    /// "Scores go from 1 to 4."
    ScoreOutOfRange,
    /// "Pick one strength."
    PickStrength,
    /// "Pick one focus point."
    PickFocus,
    /// "Enter or pick when to apply the focus point."
    EnterTrigger,
    /// "The trigger is too long (at most {max} characters)."
    TriggerTooLong,
    /// "Pick when to observe again."
    PickReobserveDate,
    /// "The next observation must be after today."
    ReobserveNotAfterToday,
    /// "Rate how helpful the coaching was, 1 to 5."
    RateHelpfulness,
    /// "Finish or cancel the observation first."
    ObservationInProgress,
    /// "The observation was left unfinished: nothing was saved."
    ObservationTimedOut,
    /// "Observation cancelled: nothing was saved."
    ObservationCancelled,
    /// "Observation saved. Thank you, {name}!"
    ObservationSaved,
}

/// A message: its key and arguments (empty when the key takes fewer).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Text {
    /// What to say.
    pub key: TextKey,
    /// The first argument (a name, a time, a count), or empty.
    pub arg: String,
    /// The second argument, or empty.
    pub arg2: String,
}

impl Text {
    /// A message without arguments.
    pub fn new(key: TextKey) -> Text {
        Text {
            key,
            arg: String::new(),
            arg2: String::new(),
        }
    }

    /// A message with one argument.
    pub fn with(key: TextKey, arg: impl Into<String>) -> Text {
        Text {
            key,
            arg: arg.into(),
            arg2: String::new(),
        }
    }
}

impl From<TextKey> for Text {
    fn from(key: TextKey) -> Text {
        Text::new(key)
    }
}

/// The key and its arguments, e.g. `Welcome("Ana Silva")`: for logs and
/// tests, not for the screen.
impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.key)?;
        match (self.arg.is_empty(), self.arg2.is_empty()) {
            (true, true) => Ok(()),
            (false, true) => write!(f, "({:?})", self.arg),
            _ => write!(f, "({:?}, {:?})", self.arg, self.arg2),
        }
    }
}

impl From<Refusal> for Text {
    fn from(refusal: Refusal) -> Text {
        let max = crate::domain::MAX_TEXT.to_string();
        match refusal {
            Refusal::Empty(field) => Text::new(match field {
                Field::ActionWhat => TextKey::EnterWhat,
                Field::NeedText => TextKey::EnterNeedText,
                Field::Obstacle => TextKey::EnterObstacle,
                Field::Expectation => TextKey::EnterExpectation,
                Field::NextStep => TextKey::EnterNextStep,
                Field::Actual => TextKey::EnterActual,
                Field::Note => TextKey::EnterNote,
            }),
            Refusal::TooLong(field) => Text::with(
                match field {
                    Field::ActionWhat => TextKey::TooLongWhat,
                    Field::Actual => TextKey::TooLongActual,
                    Field::Note => TextKey::TooLongNote,
                    Field::NeedText => TextKey::TooLongNeedText,
                    Field::Obstacle => TextKey::TooLongObstacle,
                    Field::Expectation => TextKey::TooLongExpectation,
                    Field::NextStep => TextKey::TooLongNextStep,
                },
                max,
            ),
            Refusal::PickReason => TextKey::PickReason.into(),
            Refusal::ActionOrNoneNeeded => TextKey::ActionOrNoneNeeded.into(),
            Refusal::PickOwner => TextKey::PickOwner.into(),
            Refusal::PickDueDate => TextKey::PickDueDate.into(),
            Refusal::DueInPast => TextKey::DueInPast.into(),
            Refusal::PickCategory => TextKey::PickCategory.into(),
            Refusal::PickExperimentOwner => TextKey::PickExperimentOwner.into(),
            Refusal::PickCheckDate => TextKey::PickCheckDate.into(),
            Refusal::PickNewDate => TextKey::PickNewDate.into(),
            Refusal::CannotStart(name) => Text::with(TextKey::CannotStart, name),
            Refusal::CannotClose(name) => Text::with(TextKey::CannotClose, name),
            Refusal::CannotEnrol(name) => Text::with(TextKey::CannotEnrol, name),
        }
    }
}

impl From<ObservationRefusal> for Text {
    fn from(refusal: ObservationRefusal) -> Text {
        use ObservationRefusal as R;
        let max = crate::domain::NOTE_MAX_CHARS.to_string();
        match refusal {
            R::CannotObserve(name, ObservationLevel::Facilitation) => {
                Text::with(TextKey::CannotObserveHuddle, name)
            }
            R::CannotObserve(name, ObservationLevel::Coaching) => {
                Text::with(TextKey::CannotObserveCoaching, name)
            }
            R::NoLearner(ObservationLevel::Facilitation) => TextKey::NoTeamLeader.into(),
            R::NoLearner(ObservationLevel::Coaching) => TextKey::NoSupervisor.into(),
            R::SelfObservation(name) => Text::with(TextKey::SelfObservation, name),
            R::NotALearner(name) => Text::with(TextKey::NotALearner, name),
            R::ObserverCannotConfirm(name) => Text::with(TextKey::ObserverCannotConfirm, name),
            R::NotTheLearner(name, learner) => Text {
                key: TextKey::NotTheLearner,
                arg: name,
                arg2: learner,
            },
            R::PickSelfView => TextKey::PickSelfView.into(),
            R::ScoreEveryBehaviour(n) => Text::with(TextKey::ScoreEveryBehaviour, n.to_string()),
            R::ScoreOutOfRange => TextKey::ScoreOutOfRange.into(),
            R::PickStrength => TextKey::PickStrength.into(),
            R::PickFocus => TextKey::PickFocus.into(),
            R::NoteTooLong => Text::with(TextKey::TooLongNote, max),
            R::EnterTrigger => TextKey::EnterTrigger.into(),
            R::TriggerTooLong => Text::with(TextKey::TriggerTooLong, max),
            R::PickReobserveDate => TextKey::PickReobserveDate.into(),
            R::ReobserveNotAfterToday => TextKey::ReobserveNotAfterToday.into(),
            R::RateHelpfulness => TextKey::RateHelpfulness.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_key_and_its_arguments() {
        assert_eq!(Text::new(TextKey::NeedRaised).to_string(), "NeedRaised");
        assert_eq!(
            Text::with(TextKey::Welcome, "Ana Silva").to_string(),
            "Welcome(\"Ana Silva\")"
        );
    }

    #[test]
    fn refusals_become_keys_with_their_names() {
        assert_eq!(
            Text::from(Refusal::CannotClose("Ben Okafor".into())),
            Text::with(TextKey::CannotClose, "Ben Okafor")
        );
        assert_eq!(
            Text::from(Refusal::TooLong(Field::Note)),
            Text::with(TextKey::TooLongNote, "200")
        );
        assert_eq!(
            Text::from(Refusal::Empty(Field::Obstacle)).key,
            TextKey::EnterObstacle
        );
    }
}
