//! `huddle-aggregator doctor`: checks the site server the way a
//! technician would, one line per check with the remedy for a failure
//! ([`crate::doctor::Line`]); the command exits 1 if any failed.
//!
//! The checks, in order ([`CHECKS`] names them for `--check`):
//! - `config`: `aggregator.toml` loads and validates (its error names key
//!   and file); nothing else runs without it. A secret still at its
//!   shipped demo value fails;
//! - `roster`: the roster file (`roster.file`) loads, with its boards and
//!   people counted;
//! - `database`: the site file's directory is writable, and the file
//!   passes `PRAGMA quick_check` (read-only) at a schema this build knows;
//! - `broker`: DNS, TCP, TLS, login with the aggregator's account, and a
//!   subscription to every board's events, which its ACL must allow;
//! - `dashboard`: with `[web]` on, something answers `/healthz` on its
//!   port (the running aggregator), over HTTPS when a certificate is set;
//! - `boards`: every board the site file knows has been heard from within
//!   [`SILENT_AFTER`].
//!
//! Reads only: the site file is opened read-only.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::config::AggregatorConfig;
use super::store::{open_read_only, MIGRATIONS};
pub use crate::doctor::Line;

/// Every check, in the order run (`--check NAME` runs some only).
pub const CHECKS: &[&str] = &[
    "config",
    "roster",
    "database",
    "broker",
    "dashboard",
    "boards",
];
/// A board not heard from for longer fails the `boards` check.
pub const SILENT_AFTER: chrono::Duration = chrono::Duration::days(3);

/// Runs the checks named in `only` (all when empty) for the config at
/// `path`, handing each line to `out` as it is known. Returns every line.
pub fn run(path: &Path, only: &[String], mut out: impl FnMut(&Line)) -> Vec<Line> {
    let wanted = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    let mut lines = Vec::new();
    let mut say = |line: Line| {
        out(&line);
        lines.push(line);
    };
    let file = path.display().to_string();
    let mut config = match AggregatorConfig::load(path) {
        Ok(c) => c,
        Err(e) => {
            say(Line::config_failed(&e, &file));
            return lines;
        }
    };
    let from_unit = crate::doctor::unit_data_dir("huddle-aggregator.service");
    if let Some(dir) = &from_unit {
        config.storage.data_dir = dir.clone();
        say(Line::ok(
            "config.data_dir",
            format!(
                "{} (HUDDLE_DATA_DIR of huddle-aggregator.service)",
                dir.display()
            ),
        ));
    }
    if wanted("config") {
        let demo = config.demo_secrets();
        say(if demo.is_empty() {
            Line::ok("config", format!("{file}: site {}", config.site.id))
        } else {
            Line::failed(
                "config",
                format!("{file}: {} still at the shipped demo value", demo.join(", ")),
                "set your own (`openssl rand -hex 32`) in the file, or point the key's `_file` at the one the package made",
            )
        });
    }
    if wanted("roster") {
        say(roster(&config));
    }
    if wanted("database") {
        say(database(&config));
    }
    if wanted("broker") {
        let probe = crate::doctor::BrokerProbe {
            mqtt: &config.mqtt,
            source: &config.source,
            client_id: format!("huddle-aggregator-doctor-{}", config.site.id),
            read: format!("huddle/v1/{}/+/+/event/+", config.site.id),
            denied: "give the aggregator's user read on the site's topics in the broker's ACL (config/mosquitto: `setup.sh` writes it)",
            file: &file,
        };
        probe.run().into_iter().for_each(&mut say);
    }
    if wanted("dashboard") {
        say(dashboard(&config));
    }
    if wanted("boards") {
        say(boards(&config, Utc::now()));
    }
    lines
}

fn roster(config: &AggregatorConfig) -> Line {
    let Some(f) = &config.roster.file else {
        return Line::ok(
            "roster",
            "none (roster.file not set): boards keep their own rosters",
        );
    };
    match super::roster::load(f) {
        Ok(r) => Line::ok(
            "roster",
            format!(
                "{}: {} boards, {} people",
                f.display(),
                r.len(),
                r.iter().map(|b| b.message.people.len()).sum::<usize>()
            ),
        ),
        Err(e) => Line::failed(
            "roster",
            format!("{e}"),
            "fix the line named above; `huddle-aggregator --check` checks the file again",
        ),
    }
}

fn database(config: &AggregatorConfig) -> Line {
    let db = config.database_path();
    let dir = db.parent().unwrap_or(Path::new("."));
    if let Err(e) = crate::doctor::writable_dir(dir) {
        return Line::failed(
            "database",
            e,
            format!(
                "make it writable by the aggregator's user (`chown -R huddle-aggregator: {}`), or set storage.data_dir",
                dir.display()
            ),
        );
    }
    if !db.exists() {
        return Line::ok(
            "database",
            format!("{} not made yet (made at the first start)", db.display()),
        );
    }
    let repair = format!(
        "stop the aggregator, keep a copy, and recover what SQLite can: `sqlite3 {} .recover | sqlite3 recovered.db`; the boards send again what the ack does not cover",
        db.display()
    );
    let read = || -> Result<(Vec<String>, i64), Box<dyn std::error::Error>> {
        let conn = open_read_only(&db)?;
        let mut stmt = conn.prepare("PRAGMA quick_check")?;
        let lines = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        let version = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        Ok((lines, version))
    };
    match read() {
        Ok((check, _)) if check != ["ok"] => Line::failed(
            "database",
            format!("{} fails quick_check: {}", db.display(), check.join("; ")),
            repair,
        ),
        Ok((_, v)) if v > MIGRATIONS.len() as i64 => Line::failed(
            "database",
            format!(
                "{} has schema {v}; this build knows up to {}",
                db.display(),
                MIGRATIONS.len()
            ),
            "install the newer huddle-board that wrote it",
        ),
        Ok((_, v)) => Line::ok(
            "database",
            format!("{} passes quick_check (schema {v})", db.display()),
        ),
        Err(e) => Line::failed("database", format!("{}: {e}", db.display()), repair),
    }
}

fn dashboard(config: &AggregatorConfig) -> Line {
    let Some(web) = config.web.as_ref().filter(|w| w.enabled) else {
        return Line::ok("dashboard", "off ([web] not enabled)");
    };
    let Ok(addr) = web.listen_addr() else {
        return Line::failed(
            "dashboard",
            format!("web.listen {:?} is not ADDRESS:PORT", web.listen),
            "fix web.listen",
        );
    };
    // A wildcard listen address is reached on loopback.
    let target = if addr.ip().is_unspecified() {
        SocketAddr::new(super::web::loopback_for(addr).ip(), addr.port())
    } else {
        addr
    };
    let tls = web.tls.is_some();
    let scheme = if tls { "https" } else { "http" };
    let Ok(mut s) = TcpStream::connect_timeout(&target, Duration::from_secs(5)) else {
        return Line::failed(
            "dashboard",
            format!("nothing listens on {target}"),
            "start the aggregator (`systemctl status huddle-aggregator`; its log: `journalctl -u huddle-aggregator -b`), or check web.listen",
        );
    };
    if tls {
        // The certificate and key loaded with the config (web.cert_file,
        // web.key_file); the port answers. HTTPS itself is checked by a
        // browser against the site's CA.
        return Line::ok(
            "dashboard",
            format!("{scheme}://{target} answers; its certificate and key load"),
        );
    }
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reply = String::new();
    let asked = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: doctor\r\nConnection: close\r\n\r\n");
    let _ = s.take(4096).read_to_string(&mut reply);
    if asked.is_ok() && reply.starts_with("HTTP/1.1 200") {
        Line::ok("dashboard", format!("{scheme}://{target}/healthz answers"))
    } else {
        Line::failed(
            "dashboard",
            format!(
                "{target} answers, but not as the dashboard: {:?}",
                reply.lines().next().unwrap_or("")
            ),
            "another program holds the port: change web.listen, or stop that program",
        )
    }
}

fn boards(config: &AggregatorConfig, now: DateTime<Utc>) -> Line {
    let db = config.database_path();
    if !db.exists() {
        return Line::ok("boards", "no site file yet: no board heard from");
    }
    type Row = (String, String, Option<String>);
    let read = || -> Result<Vec<Row>, Box<dyn std::error::Error>> {
        let conn = open_read_only(&db)?;
        let mut stmt =
            conn.prepare("SELECT area, board, last_event_at FROM boards ORDER BY area, board")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    };
    let rows = match read() {
        Ok(r) => r,
        Err(e) => {
            return Line::failed(
                "boards",
                format!("{}: {e}", db.display()),
                "see the database check",
            )
        }
    };
    let silent: Vec<String> = rows
        .iter()
        .filter(|(_, _, at)| {
            at.as_deref()
                .and_then(|t| t.parse::<DateTime<Utc>>().ok())
                .is_none_or(|t| now - t > SILENT_AFTER)
        })
        .map(|(area, board, _)| format!("{area}/{board}"))
        .collect();
    if silent.is_empty() {
        Line::ok(
            "boards",
            format!(
                "{} boards, each heard from within {} days",
                rows.len(),
                SILENT_AFTER.num_days()
            ),
        )
    } else {
        Line::failed(
            "boards",
            format!(
                "{} of {} boards not heard from for {} days: {}",
                silent.len(),
                rows.len(),
                SILENT_AFTER.num_days(),
                silent.join(", ")
            ),
            "run `huddle-kiosk doctor` on each (power, network, its broker account); a board retired for good stays listed",
        )
    }
}
