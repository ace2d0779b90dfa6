//! What ships: the Debian packages built for real with cargo-deb, and the
//! systemd units with the notify protocol of both binaries.

#[cfg(feature = "kiosk")]
mod debian;
#[cfg(feature = "kiosk")]
mod systemd;
