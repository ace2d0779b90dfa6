//! The MQTT connection both binaries share: options from the config (URL,
//! credentials, TLS with rustls and the ring provider), the reconnection
//! backoff, and what a failed connection means. rumqttc's event loop has
//! no backoff of its own and must be polled continuously; the callers do
//! that and sleep [`Backoff::next`] after each connection error.
//!
//! A wrong CA or a wrong password is not a broker that is down: retrying
//! will not fix it, and a log that says the same line every 30 s for a
//! week hides it. [`diagnose`] sorts an error into a [`Fault`] with one
//! sentence naming the cause and the config key and file to fix;
//! [`FailureLog`] decides when that sentence is worth a log line (when it
//! changes, then a rare "still failing" reminder). The callers keep
//! retrying at the capped backoff either way: the broker's password file
//! or certificate may be the thing that gets fixed.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{ConnectReturnCode, ConnectionError, MqttOptions, TlsConfiguration, Transport};

use crate::config::MqttConfig;

/// Errors that prevent connecting at all (not a broker that is down).
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    /// A TLS file cannot be read or parsed.
    #[error("{key} in {file}: {message}")]
    Tls {
        /// The config key.
        key: &'static str,
        /// The config file.
        file: String,
        /// What is wrong.
        message: String,
    },
}

/// Host and port of an `mqtt://` or `mqtts://` URL (validated by the config).
pub fn host_port(url: &str) -> (String, u16, bool) {
    let (rest, tls) = match url.strip_prefix("mqtts://") {
        Some(r) => (r, true),
        None => (url.strip_prefix("mqtt://").unwrap_or(url), false),
    };
    let rest = rest.trim_end_matches('/');
    let default = if tls { 8883 } else { 1883 };
    match rest.rsplit_once(':') {
        Some((h, p)) => (h.to_owned(), p.parse().unwrap_or(default), tls),
        None => (rest.to_owned(), default, tls),
    }
}

fn read_pem(path: &Path, key: &'static str, file: &Path) -> Result<Vec<u8>, MqttError> {
    std::fs::read(path).map_err(|e| MqttError::Tls {
        key,
        file: file.display().to_string(),
        message: format!("cannot read {}: {e}", path.display()),
    })
}

/// Turns Nagle's algorithm off on the event loop's socket (rumqttc leaves
/// it on). Every message here is small and waited for: with Nagle a
/// PUBACK or an ack written while an earlier segment is unacknowledged
/// waits for the peer's delayed ACK, about 40 ms a hop; that was the tap
/// → ack p99 (44 ms) before this.
pub fn no_delay(eventloop: &mut rumqttc::EventLoop) {
    let mut network = eventloop.network_options();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
}

/// The largest MQTT packet the product's clients send and receive
/// (rumqttc's limit, set in [`options`]); the shipped broker's
/// `max_packet_size` is the same.
pub const MAX_PACKET: usize = 1024 * 1024;

/// Whether a QoS 1 PUBLISH of `payload` on `topic` fits in [`MAX_PACKET`].
/// rumqttc cannot send a larger packet: it fails inside its event loop,
/// drops the connection and fails again with the same stored publish after
/// every reconnect. So nothing larger is ever handed to the client.
pub fn fits(topic: &str, payload: &[u8]) -> bool {
    // Fixed header (1 + up to 4 length bytes), topic length (2), packet id (2).
    1 + 4 + 2 + topic.len() + 2 + payload.len() <= MAX_PACKET
}

/// Connection options: persistent session (`clean_session` off) with a
/// fixed client id, keep-alive, credentials and TLS from the config.
/// `source` is the config file, for messages.
pub fn options(
    config: &MqttConfig,
    client_id: &str,
    source: &Path,
) -> Result<MqttOptions, MqttError> {
    let (host, port, tls) = host_port(&config.url);
    let mut o = MqttOptions::new(client_id, host, port);
    o.set_keep_alive(Duration::from_secs(config.keep_alive_s));
    o.set_clean_session(false);
    o.set_max_packet_size(MAX_PACKET, MAX_PACKET);
    if let Some(user) = &config.username {
        o.set_credentials(user, config.password.clone().unwrap_or_default());
    }
    if tls {
        o.set_transport(Transport::Tls(tls_config(config, source)?));
    }
    Ok(o)
}

fn tls_config(config: &MqttConfig, source: &Path) -> Result<TlsConfiguration, MqttError> {
    let bad = |key: &'static str, message: String| MqttError::Tls {
        key,
        file: source.display().to_string(),
        message,
    };
    let mut roots = rustls::RootCertStore::empty();
    match &config.ca_file {
        Some(path) => {
            let pem = read_pem(path, "mqtt.ca_file", source)?;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert =
                    cert.map_err(|e| bad("mqtt.ca_file", format!("{}: {e}", path.display())))?;
                roots
                    .add(cert)
                    .map_err(|e| bad("mqtt.ca_file", format!("{}: {e}", path.display())))?;
            }
            if roots.is_empty() {
                return Err(bad(
                    "mqtt.ca_file",
                    format!("{} holds no PEM certificate", path.display()),
                ));
            }
        }
        None => {
            let found = rustls_native_roots();
            if found.is_empty() {
                return Err(bad(
                    "mqtt.ca_file",
                    "not set and the system has no CA certificates".into(),
                ));
            }
            for cert in found {
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("mqtt.url", e.to_string()))?
        .with_root_certificates(roots);
    let client = match (&config.client_cert, &config.client_key) {
        (Some(cert), Some(key)) => {
            let pem = read_pem(cert, "mqtt.client_cert", source)?;
            let certs = rustls_pemfile::certs(&mut pem.as_slice())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad("mqtt.client_cert", format!("{}: {e}", cert.display())))?;
            let pem = read_pem(key, "mqtt.client_key", source)?;
            let key = rustls_pemfile::private_key(&mut pem.as_slice())
                .map_err(|e| bad("mqtt.client_key", format!("{}: {e}", key.display())))?
                .ok_or_else(|| bad("mqtt.client_key", "holds no PEM private key".into()))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| bad("mqtt.client_cert", e.to_string()))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(TlsConfiguration::Rustls(Arc::new(client)))
}

fn rustls_native_roots() -> Vec<rustls::pki_types::CertificateDer<'static>> {
    let mut out = Vec::new();
    for path in [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
    ] {
        if let Ok(pem) = std::fs::read(path) {
            out.extend(rustls_pemfile::certs(&mut pem.as_slice()).filter_map(Result::ok));
            break;
        }
    }
    out
}

/// What a failed connection attempt means for whoever runs the site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The broker's TLS certificate was not accepted: not signed by the CA
    /// in `mqtt.ca_file`, not for the URL's host, or out of its dates.
    Untrusted,
    /// The broker refused the user name or password (CONNACK 4), or this
    /// client as not authorised (CONNACK 5, Mosquitto's answer to a wrong
    /// password).
    Credentials,
    /// Another refusal or TLS failure that a config must fix (a client
    /// certificate the broker wants, a client id it refuses).
    Refused,
    /// The broker cannot be reached, does not answer, or dropped the
    /// connection: nothing to fix in this config; events queue meanwhile.
    Network,
}

impl Fault {
    /// A mistake in this config or the broker's, which retrying alone will
    /// not fix (logged as an error; a network fault is a warning).
    pub fn is_config(self) -> bool {
        !matches!(self, Fault::Network)
    }
}

/// A connection error, sorted and said in one sentence for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    /// The kind of fault.
    pub fault: Fault,
    /// What is wrong and which key of which file to fix.
    pub message: String,
}

/// The rustls error inside a rumqttc TLS error, if any (a failed
/// handshake comes as an I/O error wrapping it).
fn rustls_error(e: &ConnectionError) -> Option<&rustls::Error> {
    let ConnectionError::Tls(tls) = e else {
        return None;
    };
    match tls {
        rumqttc::TlsError::TLS(e) => Some(e),
        rumqttc::TlsError::Io(io) => io.get_ref()?.downcast_ref::<rustls::Error>(),
        _ => None,
    }
}

/// Sorts a connection error and says what to fix. `config` is the
/// connection's config as loaded from `file`.
pub fn diagnose(e: &ConnectionError, config: &MqttConfig, file: &str) -> Diagnosis {
    use rustls::CertificateError as C;
    let url = &config.url;
    let ca = match &config.ca_file {
        Some(p) => format!("mqtt.ca_file ({}) in {file}", p.display()),
        None => format!("mqtt.ca_file in {file} (not set: the system's CAs were used)"),
    };
    let say = |fault, message: String| Diagnosis { fault, message };
    if let Some(tls) = rustls_error(e) {
        return match tls {
            rustls::Error::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => say(
                Fault::Untrusted,
                format!("the broker's TLS certificate is not for the host in mqtt.url ({url}) in {file}: name the broker as its certificate does (setup.sh --host)"),
            ),
            rustls::Error::InvalidCertificate(
                C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. },
            ) => say(
                Fault::Untrusted,
                format!("the broker's TLS certificate at {url} is out of its validity dates ({tls}): renew it on the broker, or set this machine's clock"),
            ),
            rustls::Error::InvalidCertificate(_) => say(
                Fault::Untrusted,
                format!("the broker's TLS certificate at {url} is not trusted ({tls}): {ca} must hold the CA that signed it (the site's ca.crt from setup.sh)"),
            ),
            other => say(
                Fault::Refused,
                format!("TLS with {url} failed ({other}): check {ca}, and mqtt.client_cert / mqtt.client_key if the broker asks for a client certificate"),
            ),
        };
    }
    match e {
        ConnectionError::ConnectionRefused(
            code @ (ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized),
        ) => {
            let why = match code {
                ConnectReturnCode::BadUserNamePassword => "bad user name or password",
                _ => "not authorised",
            };
            let message = match &config.username {
                Some(user) => format!(
                    "the broker at {url} refused user `{user}` and its password ({why}): mqtt.username and mqtt.password in {file} must match the broker's password file (setup.sh's credentials.txt)"
                ),
                None => format!(
                    "the broker at {url} wants a user name and password ({why}): set mqtt.username and mqtt.password in {file}"
                ),
            };
            say(Fault::Credentials, message)
        }
        ConnectionError::ConnectionRefused(ConnectReturnCode::ServiceUnavailable) => say(
            Fault::Network,
            format!("the broker at {url} is unavailable (it said so); retrying"),
        ),
        ConnectionError::ConnectionRefused(code) => say(
            Fault::Refused,
            format!("the broker at {url} refused the connection ({code:?}): check mqtt.username in {file} and the broker's configuration"),
        ),
        ConnectionError::Tls(t) => say(
            Fault::Refused,
            format!("TLS with {url} failed ({t}): check {ca} and the broker's certificate"),
        ),
        ConnectionError::Io(io) => say(Fault::Network, format!("cannot connect to {url}: {io}")),
        ConnectionError::NetworkTimeout => say(
            Fault::Network,
            format!("the broker at {url} does not answer (timeout)"),
        ),
        other => say(Fault::Network, format!("connection to {url} lost: {other}")),
    }
}

/// How often a fault that goes on is said again ("still failing").
pub const REMIND_EVERY: Duration = Duration::from_secs(15 * 60);

/// What to log about connection attempts: a fault when it first happens
/// or changes, then at most every [`REMIND_EVERY`] while it lasts, and
/// the reconnection after one. Pure: the caller's clock.
#[derive(Debug, Default)]
pub struct FailureLog {
    current: Option<(Fault, String)>,
    since: Option<Instant>,
    said_at: Option<Instant>,
    attempts: u64,
}

impl FailureLog {
    /// A new log, with nothing failed yet.
    pub fn new() -> Self {
        FailureLog::default()
    }

    /// An attempt failed with `d`: the line to log, if any.
    pub fn failed(&mut self, d: &Diagnosis, now: Instant) -> Option<String> {
        let same = self
            .current
            .as_ref()
            .is_some_and(|(f, m)| *f == d.fault && *m == d.message);
        if !same {
            self.current = Some((d.fault, d.message.clone()));
            self.since = Some(now);
            self.said_at = Some(now);
            self.attempts = 1;
            let then = if d.fault.is_config() {
                "retrying with backoff; this is said again only when it changes"
            } else {
                "events queue and are sent when it is back"
            };
            return Some(format!("{}; {then}", d.message));
        }
        self.attempts += 1;
        let due = self
            .said_at
            .is_none_or(|t| now.duration_since(t) >= REMIND_EVERY);
        if !due {
            return None;
        }
        self.said_at = Some(now);
        let minutes = self
            .since
            .map_or(0, |t| now.duration_since(t).as_secs() / 60);
        Some(format!(
            "still failing after {} attempts over {minutes} min: {}",
            self.attempts, d.message
        ))
    }

    /// Connected: the line to log (says how long it had failed, if it had).
    pub fn connected(&mut self, url: &str, now: Instant) -> String {
        let line = match (self.current.take(), self.since) {
            (Some(_), Some(since)) => format!(
                "connected to the broker at {url} again after {} failed attempts over {} s",
                self.attempts,
                now.duration_since(since).as_secs()
            ),
            _ => format!("connected to the broker at {url}"),
        };
        self.since = None;
        self.said_at = None;
        self.attempts = 0;
        line
    }

    /// The fault now going on, if any.
    pub fn fault(&self) -> Option<Fault> {
        self.current.as_ref().map(|(f, _)| *f)
    }
}

/// Doubling reconnection delay with jitter, capped; reset on success.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
    seed: u64,
}

impl Backoff {
    /// Starts at 0.5 s, capped at `max`.
    pub fn new(max: Duration) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            | 1;
        Backoff {
            next: Duration::from_millis(500),
            max,
            seed,
        }
    }

    /// The pause before the next attempt: the current step with ±25 %
    /// jitter (so that a site's boards do not reconnect in step), then doubles.
    #[allow(clippy::should_implement_trait)] // an endless sequence: an Iterator adds nothing
    pub fn next(&mut self) -> Duration {
        // xorshift: enough randomness for jitter, no dependency.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let jitter = 0.75 + (self.seed % 1000) as f64 / 2000.0;
        let pause = self.next.mul_f64(jitter).min(self.max);
        self.next = (self.next * 2).min(self.max);
        pause
    }

    /// After a successful connection.
    pub fn reset(&mut self) {
        self.next = Duration::from_millis(500);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publish_that_would_break_the_link_does_not_fit() {
        let topic = "huddle/v1/plant1/status";
        assert!(fits(topic, &vec![b'x'; MAX_PACKET - 9 - topic.len()]));
        assert!(!fits(topic, &vec![b'x'; MAX_PACKET - 8 - topic.len()]));
    }

    #[test]
    fn urls_split_into_host_port_and_tls() {
        assert_eq!(
            host_port("mqtt://localhost:1883"),
            ("localhost".into(), 1883, false)
        );
        assert_eq!(
            host_port("mqtts://broker.plant"),
            ("broker.plant".into(), 8883, true)
        );
        assert_eq!(
            host_port("mqtt://10.0.0.5"),
            ("10.0.0.5".into(), 1883, false)
        );
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let mut b = Backoff::new(Duration::from_secs(4));
        let first = b.next();
        assert!(
            first >= Duration::from_millis(375) && first <= Duration::from_millis(625),
            "{first:?}"
        );
        for _ in 0..10 {
            assert!(b.next() <= Duration::from_secs(4));
        }
        b.reset();
        assert!(b.next() <= Duration::from_millis(625));
    }

    fn config() -> MqttConfig {
        MqttConfig {
            url: "mqtts://broker.plant1:8883".into(),
            username: Some("line1".into()),
            password: Some("x".into()),
            ca_file: Some("/etc/huddle/ca.crt".into()),
            ..MqttConfig::default()
        }
    }

    fn tls(e: rustls::Error) -> ConnectionError {
        ConnectionError::Tls(rumqttc::TlsError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            e,
        )))
    }

    #[test]
    fn a_wrong_ca_names_the_ca_file_and_a_wrong_name_the_url() {
        let f = "/etc/huddle/kiosk.toml";
        let d = diagnose(
            &tls(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            )),
            &config(),
            f,
        );
        assert_eq!(d.fault, Fault::Untrusted);
        assert!(
            d.message
                .contains("mqtt.ca_file (/etc/huddle/ca.crt) in /etc/huddle/kiosk.toml")
                && d.message.contains("not trusted"),
            "{}",
            d.message
        );
        let d = diagnose(
            &tls(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName,
            )),
            &config(),
            f,
        );
        assert_eq!(d.fault, Fault::Untrusted);
        assert!(d.message.contains("mqtt.url"), "{}", d.message);
    }

    #[test]
    fn a_refused_password_names_the_user_and_the_keys() {
        for code in [
            ConnectReturnCode::BadUserNamePassword,
            ConnectReturnCode::NotAuthorized,
        ] {
            let d = diagnose(
                &ConnectionError::ConnectionRefused(code),
                &config(),
                "k.toml",
            );
            assert_eq!(d.fault, Fault::Credentials);
            assert!(
                d.message.contains("`line1`") && d.message.contains("mqtt.password in k.toml"),
                "{}",
                d.message
            );
        }
        let io = ConnectionError::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(diagnose(&io, &config(), "k.toml").fault, Fault::Network);
    }

    #[test]
    fn a_fault_is_said_once_then_rarely_and_again_when_it_changes() {
        let mut log = FailureLog::new();
        let t0 = Instant::now();
        let refused = Diagnosis {
            fault: Fault::Credentials,
            message: "refused".into(),
        };
        let first = log.failed(&refused, t0).unwrap();
        assert!(first.starts_with("refused; retrying"), "{first}");
        for s in 1..60 {
            assert_eq!(log.failed(&refused, t0 + Duration::from_secs(s * 10)), None);
        }
        let reminder = log.failed(&refused, t0 + REMIND_EVERY).unwrap();
        assert!(
            reminder.starts_with("still failing after 61 attempts over 15 min"),
            "{reminder}"
        );
        let down = Diagnosis {
            fault: Fault::Network,
            message: "down".into(),
        };
        assert!(
            log.failed(&down, t0 + REMIND_EVERY).is_some(),
            "a new fault is said"
        );
        assert_eq!(log.fault(), Some(Fault::Network));
        let back = log.connected("mqtts://b", t0 + REMIND_EVERY + Duration::from_secs(5));
        assert!(
            back.contains("again after 1 failed attempts over 5 s"),
            "{back}"
        );
        assert_eq!(log.fault(), None);
        assert!(
            log.failed(&refused, t0).is_some(),
            "said again after a connection"
        );
    }

    #[test]
    fn a_missing_ca_file_names_the_key() {
        let c = MqttConfig {
            url: "mqtts://localhost:8883".into(),
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..MqttConfig::default()
        };
        let e = options(&c, "x", Path::new("k.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("mqtt.ca_file") && e.contains("k.toml"), "{e}");
    }
}
