//! What the aggregator takes in: the real binary against bad and good
//! input, the bound on what any accepted payload makes it publish, and the
//! JSON Schemas of every payload.

mod aggregator;
mod payload_bounds;
mod schemas;
