//! The pure core: people and roles, badge hashes, the schedule, the
//! huddle's rules, coaching observations and their rubrics.
//!
//! Nothing here touches SQLite, MQTT, GPIO or the clock: functions take
//! `now` and return decisions, so every rule is a unit test. It imports
//! nothing else of the crate. Both wings build on it: the kiosk's `app`
//! composes these rules with its store, and the aggregator folds the same
//! types from the events it stores (status and coaching).

mod badge;
mod coaching;
mod huddle;
mod observation;
mod roster;
mod schedule;

pub use badge::*;
pub use coaching::*;
pub use huddle::*;
pub use observation::*;
pub use roster::*;
pub use schedule::*;
