//! Delivery from the boards to the site: the outbox publisher against a
//! real Mosquitto and an honest peer, and the real binaries under faults
//! (broker and aggregator killed, boards killed mid-send).

#[cfg(feature = "kiosk")]
mod faults;
mod outbox;
