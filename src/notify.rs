//! systemd's service notification protocol (`sd_notify`), without
//! libsystemd: one datagram to the socket named by `$NOTIFY_SOCKET`.
//!
//! Both units are `Type=notify` with `WatchdogSec=`. Each binary says
//! `READY=1` when it is really ready (the kiosk after its first frame, the
//! aggregator once its database is open and its broker loop runs), and
//! feeds the watchdog from the loop whose health matters: the kiosk from
//! a timer on the UI's own event loop, so a frozen UI is restarted; the
//! aggregator from its writer thread. Outside systemd (no
//! `$NOTIFY_SOCKET`) every call does nothing.

use std::ffi::OsString;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Set once `READY=1` has been said: the watchdog stays quiet until then,
/// so systemd (and the tests) always see `READY=1` first, whichever
/// thread happens to run first.
static READY_SAID: AtomicBool = AtomicBool::new(false);

/// Sends one notification; false when there is no socket or it failed.
pub fn notify(state: &str) -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some_and(|path| notify_to(&path, state))
}

/// Sends one notification to the socket `path` (`@name`: abstract).
fn notify_to(path: &OsString, state: &str) -> bool {
    let Ok(socket) = UnixDatagram::unbound() else {
        return false;
    };
    let path = path.to_string_lossy().into_owned();
    let sent = match path.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
                .and_then(|addr| socket.send_to_addr(state.as_bytes(), &addr))
        }
        None => socket.send_to(state.as_bytes(), &path),
    };
    sent.is_ok()
}

/// `READY=1`: the service is up.
pub fn ready() {
    let said = notify("READY=1");
    READY_SAID.store(true, Ordering::Release);
    if said {
        tracing::info!("told systemd the service is ready");
    }
}

/// The watchdog interval systemd asked for (`$WATCHDOG_USEC`, for this
/// process when `$WATCHDOG_PID` names one), if any.
pub fn watchdog_interval() -> Option<Duration> {
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim() != std::process::id().to_string() {
            return None;
        }
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Feeds the watchdog at half its interval, however often it is called.
#[derive(Debug)]
pub struct Watchdog {
    socket: Option<OsString>,
    every: Option<Duration>,
    last: Option<Instant>,
}

impl Watchdog {
    /// From the environment; a watchdog that does nothing outside systemd.
    pub fn from_env() -> Watchdog {
        Watchdog {
            socket: std::env::var_os("NOTIFY_SOCKET"),
            every: watchdog_interval().map(|d| d / 2),
            last: None,
        }
    }

    /// How often to feed it, when systemd asked for a watchdog.
    pub fn every(&self) -> Option<Duration> {
        self.every
    }

    /// Sends `WATCHDOG=1` when half the interval has passed since the last,
    /// once the process has said `READY=1`.
    pub fn feed(&mut self, now: Instant) {
        let (Some(every), Some(socket)) = (self.every, &self.socket) else {
            return;
        };
        if !READY_SAID.load(Ordering::Acquire) {
            return;
        }
        if self
            .last
            .is_none_or(|last| now.duration_since(last) >= every)
        {
            notify_to(socket, "WATCHDOG=1");
            self.last = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_datagram_reaches_the_socket_and_the_watchdog_is_rate_limited() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        assert!(notify_to(&path.clone().into_os_string(), "READY=1"));
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");

        READY_SAID.store(true, Ordering::Release);
        let mut w = Watchdog {
            socket: Some(path.into_os_string()),
            every: Some(Duration::from_secs(5)),
            last: None,
        };
        let t = Instant::now();
        w.feed(t);
        w.feed(t + Duration::from_secs(1));
        w.feed(t + Duration::from_secs(6));
        server
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut got = Vec::new();
        while let Ok(n) = server.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        assert_eq!(got, ["WATCHDOG=1", "WATCHDOG=1"]);
    }
}
