//! `huddle-kiosk doctor`: checks a board the way a technician would, one
//! line per check, and for each failure the remedy (the config key, the
//! command or the package). The command exits 1 if any check failed.
//!
//! The checks, in order ([`CHECKS`] names them for `--check`):
//! - `config`: the file loads and validates (its error names key and file);
//!   nothing else runs without it;
//! - `data`: the data directory exists and is writable, has free space,
//!   and the board's file passes `PRAGMA quick_check` (read-only);
//! - `clock`: the kernel says the clock is synchronised;
//! - `broker`: DNS, TCP, then an MQTT connection with the board's own
//!   settings (TLS with the configured CA and the certificate's names,
//!   the credentials), and a subscription to the board's ack topic, which
//!   the ACL must allow. Publishing is not tried (a board's topics are
//!   read by the aggregator): the backlog check shows whether the board's
//!   events get through;
//! - `backlog`: the last `seq` against the aggregator's ack; an event
//!   unacknowledged for over [`BACKLOG_AGE`] is a failure;
//! - `display`: a DRM device with a connected display, usable by this user;
//! - `input`: a touch screen, and a keyboard(-wedge reader) when badges come
//!   from one;
//! - `fonts`: font files where fontconfig looks;
//! - `gpio`: the GPIO chip readable and writable, when badges come from a
//!   Wiegand reader;
//! - `unit`: `huddle-kiosk.service` is active.
//!
//! The broker's checks and a check's [`Line`] are shared with the
//! aggregator's `doctor` ([`crate::doctor`], which says how the probe
//! keeps clear of the running kiosk's session).
//!
//! Reads only: the board's file is opened read-only, and the data
//! directory is probed with a file that is removed at once.

use std::path::Path;

use chrono::{DateTime, Utc};

use super::config::{BadgeSourceKind, KioskConfig};
use super::store;
pub use crate::doctor::Line;
use crate::wire::topic::BoardTopics;

mod probe;

/// Every check, in the order run (`--check NAME` runs some only).
pub const CHECKS: &[&str] = &[
    "config", "data", "clock", "broker", "backlog", "display", "input", "fonts", "gpio", "unit",
];
/// Free space under which the data directory fails.
pub const MIN_FREE_BYTES: u64 = 200 * 1024 * 1024;
/// An event unacknowledged for longer fails the backlog check.
pub const BACKLOG_AGE: chrono::Duration = chrono::Duration::minutes(30);

/// Runs the checks named in `only` (all when empty) for the config at
/// `path` (the embedded defaults without one), printing each line as it
/// is known through `out`. Returns every line.
pub fn run(path: Option<&Path>, only: &[String], mut out: impl FnMut(&Line)) -> Vec<Line> {
    let wanted = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    let mut lines = Vec::new();
    let mut say = |line: Line| {
        out(&line);
        lines.push(line);
    };
    let file = path.map_or("the embedded defaults".into(), |p| p.display().to_string());
    let mut config = match KioskConfig::load_or_embedded(path) {
        Ok(c) => c,
        Err(e) => {
            say(Line::config_failed(&e, &file));
            return lines;
        }
    };
    let from_unit = crate::doctor::unit_data_dir("huddle-kiosk.service");
    if let Some(dir) = &from_unit {
        config.storage.data_dir = dir.clone();
    }
    if wanted("config") {
        say(Line::ok(
            "config",
            format!(
                "{file}: board {} in {}/{}",
                config.board.id, config.board.site, config.board.area
            ),
        ));
    }
    if let Some(dir) = &from_unit {
        say(Line::ok(
            "config.data_dir",
            format!(
                "{} (HUDDLE_DATA_DIR of huddle-kiosk.service)",
                dir.display()
            ),
        ));
    }
    if wanted("data") {
        data(&config).into_iter().for_each(&mut say);
    }
    if wanted("clock") {
        say(if crate::wire::event::clock_synced() {
            Line::ok("clock", "synchronised")
        } else {
            Line::failed(
                "clock",
                "not synchronised (events are sent with clock_synced false)",
                "enable time sync: `timedatectl set-ntp true`, and check `timedatectl timesync-status` reaches the site's NTP server",
            )
        });
    }
    if wanted("broker") {
        broker(&config, &file).into_iter().for_each(&mut say);
    }
    if wanted("backlog") {
        say(backlog(&config, Utc::now()));
    }
    if wanted("display") {
        say(probe::display());
    }
    if wanted("input") {
        probe::input(config.badge.source == BadgeSourceKind::Keyboard)
            .into_iter()
            .for_each(&mut say);
    }
    if wanted("fonts") {
        say(probe::fonts());
    }
    if wanted("gpio") {
        say(probe::gpio(config.badge.source == BadgeSourceKind::Gpio));
    }
    if wanted("unit") {
        say(probe::unit("huddle-kiosk.service"));
    }
    lines
}

fn data(config: &KioskConfig) -> Vec<Line> {
    let dir = &config.storage.data_dir;
    let key = "storage.data_dir";
    let mut lines = Vec::new();
    match crate::doctor::writable_dir(dir) {
        Ok(false) => {
            return vec![Line::ok(
                "data",
                format!("{} does not exist yet; the kiosk makes it at its first start", dir.display()),
            )]
        }
        Ok(true) => match free_bytes(dir) {
            Some(free) if free < MIN_FREE_BYTES => lines.push(Line::failed(
                "data",
                format!("{} is writable but has only {} MB free", dir.display(), free >> 20),
                "free space on that file system (the journal: `journalctl --vacuum-size=100M`)",
            )),
            free => lines.push(Line::ok(
                "data",
                format!(
                    "{} is writable, {} free",
                    dir.display(),
                    free.map_or("? MB".into(), |f| format!("{} MB", f >> 20))
                ),
            )),
        },
        Err(e) => lines.push(Line::failed(
            "data",
            e,
            format!(
                "make it writable by the kiosk's user (`chown -R huddle: {}`), remount the file system read-write, or set {key}",
                dir.display()
            ),
        )),
    }
    let db = config.database_path();
    if !db.exists() {
        lines.push(Line::ok(
            "data.file",
            format!("{} not made yet (made at the first start)", db.display()),
        ));
        return lines;
    }
    lines.push(match store::inspect(&db) {
        Ok(i) if i.quick_check == ["ok"] => {
            Line::ok("data.file", format!("{} passes quick_check", db.display()))
        }
        Ok(i) => Line::failed(
            "data.file",
            format!(
                "{} fails quick_check: {}",
                db.display(),
                i.quick_check.join("; ")
            ),
            repair(&db),
        ),
        Err(e) => Line::failed("data.file", format!("{e}"), repair(&db)),
    });
    lines
}

fn repair(db: &Path) -> String {
    format!(
        "stop the kiosk, keep a copy, and recover what SQLite can: `sqlite3 {} .recover | sqlite3 recovered.db`; \
         events the site has acknowledged are safe at the aggregator",
        db.display()
    )
}

fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs fills a zeroed struct we own from a valid C string.
    unsafe {
        let mut s: libc::statvfs = std::mem::zeroed();
        (libc::statvfs(path.as_ptr(), &mut s) == 0).then(|| s.f_bavail as u64 * s.f_frsize as u64)
    }
}

fn broker(config: &KioskConfig, file: &str) -> Vec<Line> {
    let b = &config.board;
    let probe = crate::doctor::BrokerProbe {
        mqtt: &config.mqtt,
        source: &config.source,
        client_id: format!("huddle-kiosk-doctor-{}-{}", b.site, b.id),
        read: BoardTopics::new(&b.site, &b.area, &b.id).ack(),
        denied: "give this board's user read on its own topics in the broker's ACL (config/mosquitto: `setup.sh` writes it)",
        file,
    };
    probe.run()
}

fn backlog(config: &KioskConfig, now: DateTime<Utc>) -> Line {
    let db = config.database_path();
    if !db.exists() {
        return Line::ok("backlog", "no file yet: nothing to send");
    }
    match store::inspect(&db) {
        Ok(i) if i.quick_check != ["ok"] => Line::failed(
            "backlog",
            "the file fails quick_check (see data.file)",
            repair(&db),
        ),
        Ok(i) => {
            let waiting = i.last_seq.saturating_sub(i.acked);
            let oldest = i
                .oldest_unacked_at
                .as_deref()
                .and_then(|t| t.parse::<DateTime<Utc>>().ok());
            let found = format!(
                "last seq {}, acknowledged up to {} ({waiting} waiting)",
                i.last_seq, i.acked
            );
            match oldest {
                Some(at) if waiting > 0 && now - at > BACKLOG_AGE => Line::failed(
                    "backlog",
                    format!("{found}, the oldest since {}", at.format("%Y-%m-%d %H:%M UTC")),
                    "see the broker checks above; check the aggregator runs (`systemctl status huddle-aggregator` on the site server) and that this board's user may publish its topics in the broker's ACL",
                ),
                _ => Line::ok("backlog", found),
            }
        }
        Err(e) => Line::failed("backlog", format!("{e}"), repair(&db)),
    }
}
