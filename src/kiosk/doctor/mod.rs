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
//! Design: the broker check connects with the client id
//! `huddle-kiosk-doctor-{site}-{board}` and a clean session, so it never
//! takes the running kiosk's persistent session. A broker set to use the
//! user name as client id (the shipped Mosquitto config) drops the kiosk's
//! connection for that moment; the kiosk reconnects, and its outbox keeps
//! every event until acknowledged, so nothing is lost.
//!
//! Reads only: the board's file is opened read-only, and the data
//! directory is probed with a file that is removed at once.

use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rumqttc::{Client, ConnectionError, Event, Packet, QoS, SubscribeReasonCode};

use super::config::{BadgeSourceKind, KioskConfig};
use super::store;
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
/// How long the broker has to answer each step.
const BROKER_TIMEOUT: Duration = Duration::from_secs(10);

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The check's name (one of [`CHECKS`], with a detail such as
    /// `broker.tls`).
    pub check: String,
    /// Passed.
    pub ok: bool,
    /// What was found.
    pub found: String,
    /// For a failure: what to do.
    pub remedy: Option<String>,
}

impl Line {
    fn ok(check: &str, found: impl Into<String>) -> Line {
        Line {
            check: check.into(),
            ok: true,
            found: found.into(),
            remedy: None,
        }
    }

    fn failed(check: &str, found: impl Into<String>, remedy: impl Into<String>) -> Line {
        Line {
            check: check.into(),
            ok: false,
            found: found.into(),
            remedy: Some(remedy.into()),
        }
    }
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mark = if self.ok { "ok    " } else { "FAILED" };
        write!(f, "{mark} {:<16} {}", self.check, self.found)?;
        if let Some(r) = &self.remedy {
            write!(f, "\n       remedy: {r}")?;
        }
        Ok(())
    }
}

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
    let config = match KioskConfig::load_or_embedded(path) {
        Ok(c) => c,
        Err(e) => {
            say(Line::failed(
                "config",
                format!("{e}"),
                format!("fix the key named above in {file}; config/README.md lists every key"),
            ));
            return lines;
        }
    };
    if wanted("config") {
        say(Line::ok(
            "config",
            format!(
                "{file}: board {} in {}/{}",
                config.board.id, config.board.site, config.board.area
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
    if !dir.is_dir() {
        // The kiosk makes it at its first start, if it can.
        let parent = dir
            .ancestors()
            .skip(1)
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .find(|p| p.is_dir());
        return vec![match parent {
            Some(p) if probe::usable(p) => Line::ok(
                "data",
                format!("{} does not exist yet; the kiosk makes it at its first start", dir.display()),
            ),
            _ => Line::failed(
                "data",
                format!("{} does not exist, and cannot be made by this user", dir.display()),
                format!("create it for the kiosk's user (the package makes /var/lib/huddle-kiosk), or set {key}"),
            ),
        }];
    }
    let mut lines = Vec::new();
    let probe = dir.join(format!(".doctor-{}", std::process::id()));
    match std::fs::write(&probe, b"probe") {
        Ok(()) => {
            let _ = std::fs::remove_file(&probe);
            match free_bytes(dir) {
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
            }
        }
        Err(e) => lines.push(Line::failed(
            "data",
            format!("{} is not writable: {e}", dir.display()),
            format!(
                "make it writable by the kiosk's user (`chown -R huddle-kiosk: {}`), or remount the file system read-write",
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
    let (host, port, tls) = crate::mqtt::host_port(&config.mqtt.url);
    let url = &config.mqtt.url;
    let addrs: Vec<_> = match (host.as_str(), port).to_socket_addrs() {
        Ok(a) => a.collect(),
        Err(e) => {
            return vec![Line::failed(
                "broker.dns",
                format!("{host} does not resolve: {e}"),
                format!(
                    "check mqtt.url ({url}) in {file} and the board's DNS (`resolvectl status`)"
                ),
            )]
        }
    };
    let mut lines = vec![Line::ok(
        "broker.dns",
        format!("{host} is {}", addrs[0].ip()),
    )];
    let reached = addrs
        .iter()
        .find_map(|a| TcpStream::connect_timeout(a, BROKER_TIMEOUT).ok());
    if reached.is_none() {
        lines.push(Line::failed(
            "broker.tcp",
            format!("nothing answers on {host}:{port}"),
            format!(
                "check the broker runs (`systemctl status mosquitto` on the site server), the firewall, and the port in mqtt.url ({url}) in {file}; events queue meanwhile"
            ),
        ));
        return lines;
    }
    lines.push(Line::ok("broker.tcp", format!("{host}:{port} answers")));
    lines.extend(mqtt(config, file, tls));
    lines
}

fn mqtt(config: &KioskConfig, file: &str, tls: bool) -> Vec<Line> {
    let b = &config.board;
    let id = format!("huddle-kiosk-doctor-{}-{}", b.site, b.id);
    let mut options = match crate::mqtt::options(&config.mqtt, &id, &config.source) {
        Ok(o) => o,
        Err(e) => {
            return vec![Line::failed(
                "broker.tls",
                format!("{e}"),
                format!("fix the key named above in {file}"),
            )]
        }
    };
    options.set_clean_session(true);
    let (client, mut connection) = Client::new(options, 10);
    let ack = BoardTopics::new(&b.site, &b.area, &b.id).ack();
    let mut lines = Vec::new();
    let deadline = Instant::now() + BROKER_TIMEOUT;
    let mut subscribed = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match connection.recv_timeout(left) {
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                if tls {
                    lines.push(Line::ok(
                        "broker.tls",
                        "the certificate is trusted and names the host",
                    ));
                }
                let user = config.mqtt.username.as_deref().unwrap_or("(none)");
                lines.push(Line::ok("broker.login", format!("accepted as {user}")));
                if client.subscribe(&ack, QoS::AtLeastOnce).is_err() {
                    break;
                }
                subscribed = true;
            }
            Ok(Ok(Event::Incoming(Packet::SubAck(s)))) => {
                let granted = s
                    .return_codes
                    .iter()
                    .all(|c| matches!(c, SubscribeReasonCode::Success(_)));
                lines.push(if granted {
                    Line::ok("broker.acl", format!("may read its ack ({ack})"))
                } else {
                    Line::failed(
                        "broker.acl",
                        format!("the broker refused the subscription to {ack}"),
                        "give this board's user read on its own topics in the broker's ACL (config/mosquitto: `setup.sh` writes it)",
                    )
                });
                let _ = client.disconnect();
                return lines;
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                lines.push(connection_failed(&e, config, file, tls));
                return lines;
            }
            Err(_) => break,
        }
    }
    lines.push(Line::failed(
        if subscribed {
            "broker.acl"
        } else {
            "broker.mqtt"
        },
        format!(
            "no answer from the broker in {} s",
            BROKER_TIMEOUT.as_secs()
        ),
        "check the broker's log on the site server (`journalctl -u mosquitto`)",
    ));
    lines
}

fn connection_failed(e: &ConnectionError, config: &KioskConfig, file: &str, tls: bool) -> Line {
    use crate::mqtt::Fault;
    let d = crate::mqtt::diagnose(e, &config.mqtt, file);
    let (check, remedy) = match d.fault {
        Fault::Untrusted => (
            "broker.tls",
            format!("put the site CA's certificate in mqtt.ca_file in {file}, and make mqtt.url name the host the broker's certificate is for"),
        ),
        Fault::Credentials => (
            "broker.login",
            format!("set mqtt.username and mqtt.password in {file} to this board's account (`setup.sh` on the site server prints them)"),
        ),
        Fault::Refused if tls => ("broker.tls", format!("see the message; the keys are under [mqtt] in {file}")),
        Fault::Refused => ("broker.mqtt", format!("see the message; the keys are under [mqtt] in {file}")),
        Fault::Network => (
            "broker.mqtt",
            "the broker closed the connection: check its log (`journalctl -u mosquitto`); events queue meanwhile".to_string(),
        ),
    };
    Line::failed(check, d.message, remedy)
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
