//! The kiosk's outbox publisher (issue 3). Being written.
