//! The pure core: people and roles, the schedule, the huddle's rules.
//!
//! Nothing here touches SQLite, MQTT, GPIO or the clock: functions take
//! `now` and return decisions. The kiosk's [`crate::kiosk::app`] composes them with
//! the store; the aggregator will fold the same types from events.

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
