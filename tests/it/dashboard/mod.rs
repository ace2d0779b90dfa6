//! The supervisors' web dashboard: end to end with a real broker and a
//! real headless Chromium, and its own defences (token, HTTPS, connection
//! slots), its `/metrics` for the plant's monitoring, and its words in
//! every language.

mod end_to_end;
mod metrics;
mod security;
mod supervisors;
mod translations;
