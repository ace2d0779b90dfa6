//! The contract both programs speak over MQTT, and nothing else.
//!
//! - [`event`]: the envelope every board event travels in (schema 1 and 2,
//!   incarnation, seq, chain digest) and the event bodies.
//! - [`payload`]: the other messages: acks, rosters, schedules, statuses.
//! - [`topic`]: the topic tree, `huddle/v1/{site}/...`, built and parsed.
//! - [`time`]: how a time is written on the wire and in both databases.
//!
//! Imports only [`crate::domain`]. A change here is a change of the
//! contract: the JSON Schemas under `config/schemas/` are generated from
//! these types (`huddle-aggregator schemas`) and a test checks that they
//! are current.

pub mod event;
pub mod payload;
pub mod time;
pub mod topic;
