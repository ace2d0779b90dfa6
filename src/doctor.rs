//! What both programs' `doctor` commands share: a check's [`Line`] (ok or
//! failed, what was found, the remedy) and the broker's checks
//! ([`BrokerProbe`]: DNS, TCP, TLS, login, and a subscription the ACL
//! must allow), with the settings each program connects with.
//!
//! Design: a probe connects with a client id of its own and a clean
//! session, so it never takes a running program's persistent session. A
//! broker set to use the user name as client id (the shipped Mosquitto
//! config) drops the running program's connection for that moment; it
//! reconnects, and nothing is lost (the kiosk's outbox keeps every event
//! until acknowledged, the broker keeps the aggregator's session).

use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::{Duration, Instant};

use rumqttc::{Client, ConnectionError, Event, Packet, QoS, SubscribeReasonCode};

use crate::config::MqttConfig;

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
    /// A passed check.
    pub fn ok(check: &str, found: impl Into<String>) -> Line {
        Line {
            check: check.into(),
            ok: true,
            found: found.into(),
            remedy: None,
        }
    }

    /// The config of `file` did not load: `error` names the key.
    pub fn config_failed(error: &dyn std::fmt::Display, file: &str) -> Line {
        Line::failed(
            "config",
            error.to_string(),
            format!("fix the key named above in {file}; config/README.md lists every key"),
        )
    }

    /// A failed check and what to do.
    pub fn failed(check: &str, found: impl Into<String>, remedy: impl Into<String>) -> Line {
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

/// A `doctor` command: refuses a check name not in `known`, then runs
/// `checks` (one program's, given the names asked for), printing each
/// line as it is known on stdout; an error counting the failures if one
/// failed (the programs then exit 1).
pub fn command(
    known: &[&str],
    only: &[String],
    checks: impl FnOnce(&[String], &mut dyn FnMut(&Line)) -> Vec<Line>,
) -> anyhow::Result<()> {
    if let Some(bad) = only.iter().find(|c| !known.contains(&c.as_str())) {
        anyhow::bail!("no check {bad:?}: the checks are {}", known.join(", "));
    }
    let lines = checks(only, &mut |line| println!("{line}"));
    let failed = lines.iter().filter(|l| !l.ok).count();
    anyhow::ensure!(failed == 0, "{failed} of {} checks failed", lines.len());
    Ok(())
}

/// The data directory the program's unit gives it (`HUDDLE_DATA_DIR` in
/// the unit's `Environment=`), when this process was not given one: a
/// technician's `doctor` then checks the directory the service uses, not
/// one relative to wherever the command was typed.
pub fn unit_data_dir(unit: &str) -> Option<std::path::PathBuf> {
    if std::env::var_os(crate::config::ENV_DATA_DIR).is_some() {
        return None;
    }
    let text = systemctl(&["show", unit, "--property=Environment", "--value"]).ok()?;
    let prefix = format!("{}=", crate::config::ENV_DATA_DIR);
    text.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&prefix))
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
}

/// What `systemctl ARGS` printed on its standard output, trimmed (its
/// exit status is not looked at: `is-active` exits 3 for an inactive unit
/// and still prints its state).
pub fn systemctl(args: &[&str]) -> std::io::Result<String> {
    let out = std::process::Command::new("systemctl")
        .args(args)
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Whether this user may write `dir`: a probe file is made and removed
/// at once. A directory that does not exist yet is fine when this user
/// may make it (the programs make theirs at the first start): then
/// `Ok(false)`.
pub fn writable_dir(dir: &Path) -> Result<bool, String> {
    if !dir.is_dir() {
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
        return match parent {
            Some(p) if access(p, libc::W_OK | libc::X_OK) => Ok(false),
            _ => Err(format!(
                "{} does not exist, and this user cannot make it",
                dir.display()
            )),
        };
    }
    let probe = dir.join(format!(".doctor-{}", std::process::id()));
    match std::fs::write(&probe, b"probe") {
        Ok(()) => {
            let _ = std::fs::remove_file(&probe);
            Ok(true)
        }
        Err(e) => Err(format!("{} is not writable: {e}", dir.display())),
    }
}

/// access(2): whether this process may use `path` for `mode`.
pub fn access(path: &Path, mode: libc::c_int) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: access only reads the C string we own.
    unsafe { libc::access(c.as_ptr(), mode) == 0 }
}

/// The broker's checks for one program.
pub struct BrokerProbe<'a> {
    /// The program's MQTT settings.
    pub mqtt: &'a MqttConfig,
    /// Its config file (for TLS file errors).
    pub source: &'a Path,
    /// The probe's own client id.
    pub client_id: String,
    /// A topic filter the program must be allowed to read.
    pub read: String,
    /// The remedy when the ACL refuses it.
    pub denied: &'a str,
    /// The config file's name, for remedies.
    pub file: &'a str,
}

impl BrokerProbe<'_> {
    /// DNS, TCP, then the MQTT connection (TLS, login) and the
    /// subscription; stops at the first failure.
    pub fn run(&self) -> Vec<Line> {
        let (host, port, _) = crate::mqtt::host_port(&self.mqtt.url);
        let (url, file) = (&self.mqtt.url, self.file);
        let addrs: Vec<_> = match (host.as_str(), port).to_socket_addrs() {
            Ok(a) => a.collect(),
            Err(e) => {
                return vec![Line::failed(
                    "broker.dns",
                    format!("{host} does not resolve: {e}"),
                    format!(
                    "check mqtt.url ({url}) in {file} and this machine's DNS (`resolvectl status`)"
                ),
                )]
            }
        };
        let Some(first) = addrs.first() else {
            return vec![Line::failed(
                "broker.dns",
                format!("{host} has no address"),
                format!("check mqtt.url ({url}) in {file} and this machine's DNS"),
            )];
        };
        let mut lines = vec![Line::ok("broker.dns", format!("{host} is {}", first.ip()))];
        let reached = addrs
            .iter()
            .any(|a| TcpStream::connect_timeout(a, BROKER_TIMEOUT).is_ok());
        if !reached {
            lines.push(Line::failed(
                "broker.tcp",
                format!("nothing answers on {host}:{port}"),
                format!(
                    "check the broker runs (`systemctl status mosquitto` on the site server), the firewall, and the port in mqtt.url ({url}) in {file}"
                ),
            ));
            return lines;
        }
        lines.push(Line::ok("broker.tcp", format!("{host}:{port} answers")));
        lines.extend(self.mqtt_session());
        lines
    }

    fn mqtt_session(&self) -> Vec<Line> {
        let (_, _, tls) = crate::mqtt::host_port(&self.mqtt.url);
        let file = self.file;
        let mut options = match crate::mqtt::options(self.mqtt, &self.client_id, self.source) {
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
                    let user = self.mqtt.username.as_deref().unwrap_or("(none)");
                    lines.push(Line::ok("broker.login", format!("accepted as {user}")));
                    if client.subscribe(&self.read, QoS::AtLeastOnce).is_err() {
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
                        Line::ok("broker.acl", format!("may read {}", self.read))
                    } else {
                        Line::failed(
                            "broker.acl",
                            format!("the broker refused the subscription to {}", self.read),
                            self.denied,
                        )
                    });
                    let _ = client.disconnect();
                    return lines;
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    lines.push(self.refused(&e, tls));
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

    fn refused(&self, e: &ConnectionError, tls: bool) -> Line {
        use crate::mqtt::Fault;
        let file = self.file;
        let d = crate::mqtt::diagnose(e, self.mqtt, file);
        let (check, remedy) = match d.fault {
            Fault::Untrusted => (
                "broker.tls",
                format!("put the site CA's certificate in mqtt.ca_file in {file}, and make mqtt.url name the host the broker's certificate is for"),
            ),
            Fault::Credentials => (
                "broker.login",
                format!("set mqtt.username and mqtt.password in {file} to this program's account (`setup.sh` on the site server writes them to credentials.txt)"),
            ),
            Fault::Refused if tls => ("broker.tls", format!("see the message; the keys are under [mqtt] in {file}")),
            Fault::Refused => ("broker.mqtt", format!("see the message; the keys are under [mqtt] in {file}")),
            Fault::Network => (
                "broker.mqtt",
                "the broker closed the connection: check its log (`journalctl -u mosquitto`)".to_string(),
            ),
        };
        Line::failed(check, d.message, remedy)
    }
}
