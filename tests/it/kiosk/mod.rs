//! The board (`src/kiosk`): the core on a real SQLite file with a pinned
//! clock, the real `huddle-kiosk` binary in a real X server, the site
//! roster applied at the board, and the badge readers (Wiegand).

#[cfg(feature = "kiosk")]
mod binary;
mod huddle;
mod roster;
#[cfg(feature = "kiosk")]
mod wiegand;
