//! The MQTT connection both binaries share: options from the config (URL,
//! credentials, TLS with rustls and the ring provider) and the reconnection
//! backoff. rumqttc's event loop has no backoff of its own and must be
//! polled continuously; the callers do that and sleep [`Backoff::next`]
//! after each connection error.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{MqttOptions, TlsConfiguration, Transport};

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
    o.set_max_packet_size(1024 * 1024, 1024 * 1024);
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
    // Design: kept as `next` (the aggregator calls it too); it never ends,
    // so it is not an Iterator.
    #[allow(clippy::should_implement_trait)]
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
