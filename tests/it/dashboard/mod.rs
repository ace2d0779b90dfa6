//! The supervisors' web dashboard: end to end with a real broker and a
//! real headless Chromium, and its own defences (token, HTTPS, connection
//! slots).

mod end_to_end;
mod security;
mod supervisors;
