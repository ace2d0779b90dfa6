//! The "Leaders Coaching Leaders" loop: observations recorded at the kiosk
//! core, and their cadence and effectiveness at the real aggregator.

mod aggregator;
mod kiosk;
