//! The shipped broker configuration (`config/mosquitto/`), for real: the
//! setup script makes a CA, the broker's certificate, passwords and the
//! ACL; a real Mosquitto runs on them (TLS only) on a free port; clients
//! connect with TLS and credentials exactly as the kiosk and the
//! aggregator do (`huddle_board::mqtt::options`).
//!
//! - Board b1 cannot publish on board b2's topics (nothing is delivered)
//!   and reads nothing of other boards, only its own ack.
//! - A dashboard reads status only.
//! - A wrong password and a wrong CA are refused.
//! - The real kiosk (simulated board) and the real aggregator work end to
//!   end over TLS with their credentials.
//! - Given a wrong password or a CA that did not sign the broker's
//!   certificate, the real kiosk and the real aggregator say so once, with
//!   the config key and file to fix, while they keep retrying.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use huddle_board::config::MqttConfig;
use rumqttc::{Client, ConnectionError, Event, Packet, QoS};
use support::{free_port, require, wait_port};

const KIOSK: &str = env!("CARGO_BIN_EXE_huddle-kiosk");
const AGGREGATOR: &str = env!("CARGO_BIN_EXE_huddle-aggregator");

/// A broker configured by `config/mosquitto/setup.sh`, killed on drop.
struct Broker {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    passwords: HashMap<String, String>,
}

impl Broker {
    fn start(boards: &[&str]) -> Broker {
        require("mosquitto", "mosquitto");
        require("mosquitto_passwd", "mosquitto");
        require("openssl", "openssl");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let out = dir.path().join("broker");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/mosquitto/setup.sh");
        let status = Command::new("bash")
            .arg(&script)
            .args(["--site", "plant1", "--host", "localhost"])
            .args(["--port", &port.to_string()])
            .arg("--out")
            .arg(&out)
            .args(boards)
            .stdout(Stdio::null())
            .status()
            .expect("run config/mosquitto/setup.sh");
        assert!(status.success(), "setup.sh failed");
        // The test's broker: no persistence, a log to read on failure, and
        // no privilege drop (the test's temporary folder is private).
        let conf = std::fs::read_to_string(out.join("mosquitto.conf"))
            .unwrap()
            .replace("persistence true", "persistence false");
        let conf = format!(
            "{conf}\nuser root\nlog_dest file {}\n",
            out.join("mosquitto.log").display()
        );
        std::fs::write(out.join("mosquitto.conf"), conf).unwrap();
        let passwords = std::fs::read_to_string(out.join("credentials.txt"))
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(u, p)| (u.to_owned(), p.to_owned()))
            .collect();
        let child = Command::new(require("mosquitto", "mosquitto"))
            .arg("-c")
            .arg(out.join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        assert!(
            wait_port(port, Duration::from_secs(5)),
            "mosquitto did not start with the shipped configuration"
        );
        Broker {
            child,
            port,
            dir,
            passwords,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join("broker").join(name)
    }

    fn mqtt(&self, user: &str, password: Option<&str>) -> MqttConfig {
        MqttConfig {
            url: format!("mqtts://localhost:{}", self.port),
            username: Some(user.to_owned()),
            password: Some(
                password
                    .map(str::to_owned)
                    .unwrap_or_else(|| self.passwords[user].clone()),
            ),
            ca_file: Some(self.path("ca.crt")),
            ..MqttConfig::default()
        }
    }

    /// Connects as `user`; the receiver gets every publish delivered.
    fn connect(&self, user: &str) -> (Client, mpsc::Receiver<(String, Vec<u8>)>) {
        let (client, rx, connected) = connect(&self.mqtt(user, None), user);
        assert!(
            connected
                .recv_timeout(Duration::from_secs(10))
                .unwrap()
                .is_ok(),
            "{user} could not connect"
        );
        (client, rx)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type Connected = mpsc::Receiver<Result<(), String>>;

/// A client with the product's own options (TLS, credentials); its
/// connection outcome and every publish it receives come back on channels.
fn connect(
    config: &MqttConfig,
    user: &str,
) -> (Client, mpsc::Receiver<(String, Vec<u8>)>, Connected) {
    let mut o = huddle_board::mqtt::options(
        config,
        &format!("test-{user}-{}", free_port()),
        Path::new("test.toml"),
    )
    .unwrap();
    o.set_clean_session(true);
    let (client, mut connection) = Client::new(o, 100);
    let (tx, rx) = mpsc::channel();
    let (ctx, crx) = mpsc::channel();
    std::thread::spawn(move || {
        for event in connection.iter() {
            match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = ctx.send(Ok(()));
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if tx.send((p.topic.clone(), p.payload.to_vec())).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = ctx.send(Err(e.to_string()));
                    if let ConnectionError::ConnectionRefused(_) = e {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    });
    (client, rx, crx)
}

/// Everything received until `quiet` passes without a message.
fn drain(rx: &mpsc::Receiver<(String, Vec<u8>)>, quiet: Duration) -> Vec<String> {
    let mut out = Vec::new();
    while let Ok((topic, _)) = rx.recv_timeout(quiet) {
        out.push(topic);
    }
    out
}

#[test]
fn a_board_writes_and_reads_only_its_own_topics() {
    let broker = Broker::start(&["b1", "b2"]);
    let (agg, agg_rx) = broker.connect("aggregator");
    agg.subscribe("huddle/v1/plant1/#", QoS::AtLeastOnce)
        .unwrap();
    let (dash, dash_rx) = broker.connect("dashboard");
    dash.subscribe("huddle/v1/plant1/#", QoS::AtLeastOnce)
        .unwrap();
    let (b1, b1_rx) = broker.connect("b1");
    b1.subscribe("huddle/v1/plant1/#", QoS::AtLeastOnce)
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));

    // b1 writes its own topics and tries b2's.
    for topic in [
        "huddle/v1/plant1/assembly/b1/event/attendance.tapped",
        "huddle/v1/plant1/assembly/b2/event/attendance.tapped",
        "huddle/v1/plant1/assembly/b2/online",
        "huddle/v1/plant1/assembly/b2/ack",
        "huddle/v1/plant1/status",
        "huddle/v1/plant1/assembly/b1/online",
    ] {
        b1.publish(topic, QoS::AtLeastOnce, false, "x").unwrap();
    }
    // The aggregator answers both boards and publishes statuses.
    for topic in [
        "huddle/v1/plant1/assembly/b1/ack",
        "huddle/v1/plant1/assembly/b2/ack",
        "huddle/v1/plant1/assembly/b2/roster",
        "huddle/v1/plant1/assembly/b2/status",
        "huddle/v1/plant1/status",
    ] {
        agg.publish(topic, QoS::AtLeastOnce, false, "y").unwrap();
    }

    let mut seen_by_agg = drain(&agg_rx, Duration::from_secs(2));
    seen_by_agg.sort();
    assert_eq!(
        seen_by_agg,
        [
            "huddle/v1/plant1/assembly/b1/event/attendance.tapped",
            "huddle/v1/plant1/assembly/b1/online",
        ],
        "the aggregator must see b1's own publications and none forged for b2"
    );
    let seen_by_b1 = drain(&b1_rx, Duration::from_millis(500));
    assert_eq!(
        seen_by_b1,
        ["huddle/v1/plant1/assembly/b1/ack"],
        "b1 must read its own ack and nothing of other boards or the site"
    );
    let mut seen_by_dash = drain(&dash_rx, Duration::from_millis(500));
    seen_by_dash.sort();
    assert_eq!(
        seen_by_dash,
        [
            "huddle/v1/plant1/assembly/b2/status",
            "huddle/v1/plant1/status"
        ],
        "a dashboard reads status only"
    );
    // And a dashboard writes nothing.
    dash.publish(
        "huddle/v1/plant1/assembly/b1/ack",
        QoS::AtLeastOnce,
        false,
        "z",
    )
    .unwrap();
    assert!(
        drain(&b1_rx, Duration::from_secs(1)).is_empty(),
        "a dashboard must not write acks"
    );
}

#[test]
fn a_wrong_password_or_a_wrong_ca_is_refused() {
    let broker = Broker::start(&["b1"]);
    let (_c, _rx, connected) = connect(&broker.mqtt("b1", Some("not-the-password")), "b1");
    let outcome = connected.recv_timeout(Duration::from_secs(10)).unwrap();
    let error = outcome.expect_err("a wrong password must be refused");
    assert!(
        error.contains("refused") || error.contains("Refused"),
        "unexpected error for a wrong password: {error}"
    );

    // A CA that did not sign the broker's certificate.
    let other = tempfile::tempdir().unwrap();
    let status = Command::new(require("openssl", "openssl"))
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=someone else"])
        .arg("-keyout")
        .arg(other.path().join("k.pem"))
        .arg("-out")
        .arg(other.path().join("ca.pem"))
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let mut config = broker.mqtt("b1", None);
    config.ca_file = Some(other.path().join("ca.pem"));
    let (_c, _rx, connected) = connect(&config, "b1-wrong-ca");
    let error = connected
        .recv_timeout(Duration::from_secs(10))
        .unwrap()
        .expect_err("a broker certificate from another CA must be refused");
    assert!(
        error.to_lowercase().contains("certificate") || error.to_lowercase().contains("tls"),
        "unexpected error for a wrong CA: {error}"
    );
}

#[test]
fn kiosk_and_aggregator_work_end_to_end_over_tls() {
    let broker = Broker::start(&["sim-001"]);
    let dir = tempfile::tempdir().unwrap();
    let credentials = |user: &str| {
        format!(
            "url = \"mqtts://localhost:{}\"\nusername = \"{user}\"\npassword = \"{}\"\nca_file = \"{}\"",
            broker.port,
            broker.passwords[user],
            broker.path("ca.crt").display()
        )
    };
    let agg: String = include_str!("../config/aggregator.toml")
        .replacen(
            "url = \"mqtt://localhost:1883\"",
            &credentials("aggregator"),
            1,
        )
        .lines()
        .filter(|l| !l.trim_start().starts_with("file"))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(dir.path().join("aggregator.toml"), agg).unwrap();
    let kiosk = include_str!("../config/kiosk.toml").replacen(
        "url = \"mqtt://localhost:1883\"",
        &credentials("sim-001"),
        1,
    );
    std::fs::write(dir.path().join("kiosk.toml"), kiosk).unwrap();

    let mut aggregator = Command::new(AGGREGATOR)
        .arg("--config")
        .arg(dir.path().join("aggregator.toml"))
        .env("HUDDLE_DATA_DIR", dir.path().join("agg"))
        .env_remove("HUDDLE_MQTT_URL")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("agg.log")).unwrap())
        .spawn()
        .expect("start huddle-aggregator");
    let started = Instant::now();
    let out = Command::new(KIOSK)
        .arg("--config")
        .arg(dir.path().join("kiosk.toml"))
        .args([
            "simulate",
            "--boards",
            "1",
            "--huddles",
            "2",
            "--timeout",
            "60",
        ])
        .arg("--data-dir")
        .arg(dir.path().join("kiosks"))
        .env_remove("HUDDLE_MQTT_URL")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run huddle-kiosk simulate");
    let _ = aggregator.kill();
    let _ = aggregator.wait();
    assert!(
        out.status.success(),
        "the simulated board was not fully acked over TLS after {:?}:\n{}\n{}\naggregator log:\n{}\nbroker log:\n{}",
        started.elapsed(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(dir.path().join("agg.log")).unwrap_or_default(),
        std::fs::read_to_string(broker.path("mosquitto.log")).unwrap_or_default()
    );
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(line.contains("sim-001"), "simulate printed: {line}");
}

/// What a real binary logged while it kept trying to connect with a wrong
/// password or CA for `RUN`, and how many connections the broker saw.
const RUN: Duration = Duration::from_secs(7);

/// A CA that did not sign the broker's certificate, in `dir`.
fn other_ca(dir: &Path) -> PathBuf {
    let status = Command::new(require("openssl", "openssl"))
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=another site"])
        .arg("-keyout")
        .arg(dir.join("other-ca.key"))
        .arg("-out")
        .arg(dir.join("other-ca.crt"))
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "openssl could not make a CA");
    dir.join("other-ca.crt")
}

/// The shipped config with the broker's URL, `user`, `password` and
/// `ca_file`, retrying at most every second.
fn shipped_with(shipped: &str, broker: &Broker, user: &str, password: &str, ca: &Path) -> String {
    let mqtt = format!(
        "url = \"mqtts://localhost:{}\"\nusername = \"{user}\"\npassword = \"{password}\"\nca_file = \"{}\"\nbackoff_max_s = 1",
        broker.port,
        ca.display()
    );
    shipped
        .replacen("url = \"mqtt://localhost:1883\"", &mqtt, 1)
        .replacen("backoff_max_s = 30", "", 1)
        .lines()
        .filter(|l| !l.trim_start().starts_with("file"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs the real aggregator and a real simulated kiosk for [`RUN`] with
/// these credentials and CA; returns their logs (stderr).
fn run_both(broker: &Broker, dir: &Path, password: Option<&str>, ca: &Path) -> (String, String) {
    let agg_password = password.unwrap_or(&broker.passwords["aggregator"]);
    let kiosk_password = password.unwrap_or(&broker.passwords["sim-001"]);
    let agg_config = dir.join("aggregator.toml");
    std::fs::write(
        &agg_config,
        shipped_with(
            include_str!("../config/aggregator.toml"),
            broker,
            "aggregator",
            agg_password,
            ca,
        ),
    )
    .unwrap();
    let kiosk_config = dir.join("kiosk.toml");
    std::fs::write(
        &kiosk_config,
        shipped_with(
            include_str!("../config/kiosk.toml"),
            broker,
            "sim-001",
            kiosk_password,
            ca,
        ),
    )
    .unwrap();
    let agg_log = dir.join("agg.log");
    let mut aggregator = Command::new(AGGREGATOR)
        .arg("--config")
        .arg(&agg_config)
        .env("HUDDLE_DATA_DIR", dir.join("agg"))
        .env_remove("HUDDLE_MQTT_URL")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&agg_log).unwrap())
        .spawn()
        .expect("start huddle-aggregator");
    let kiosk = Command::new(KIOSK)
        .arg("--config")
        .arg(&kiosk_config)
        .args(["simulate", "--boards", "1", "--huddles", "1", "--timeout"])
        .arg(RUN.as_secs().to_string())
        .arg("--data-dir")
        .arg(dir.join("kiosks"))
        .env_remove("HUDDLE_MQTT_URL")
        .env("RUST_LOG", "info")
        .output()
        .expect("run huddle-kiosk simulate");
    let _ = aggregator.kill();
    let _ = aggregator.wait();
    assert!(
        !kiosk.status.success(),
        "the simulated board cannot be acked without a connection"
    );
    (
        std::fs::read_to_string(&agg_log).unwrap_or_default(),
        String::from_utf8_lossy(&kiosk.stderr).into_owned(),
    )
}

/// Asserts that `needle` is in exactly one line of `log`, and that line is
/// an ERROR naming `key` and the config file.
fn said_once(who: &str, log: &str, needle: &str, key: &str, file: &Path) {
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(needle)).collect();
    assert_eq!(
        lines.len(),
        1,
        "{who} must say `{needle}` once, not at every attempt; its log:\n{log}"
    );
    let line = lines[0];
    assert!(
        line.contains("ERROR") && line.contains(key) && line.contains(&file.display().to_string()),
        "{who}'s line must be an error naming {key} in {}: {line}",
        file.display()
    );
}

/// How many TCP connections the broker has logged.
fn connections(broker: &Broker) -> usize {
    std::fs::read_to_string(broker.path("mosquitto.log"))
        .unwrap_or_default()
        .matches("New connection from")
        .count()
}

#[test]
fn a_wrong_password_is_said_once_by_the_kiosk_and_the_aggregator() {
    let broker = Broker::start(&["sim-001"]);
    let dir = tempfile::tempdir().unwrap();
    let before = connections(&broker);
    let (agg, kiosk) = run_both(
        &broker,
        dir.path(),
        Some("not-the-password"),
        &broker.path("ca.crt"),
    );
    let attempts = connections(&broker) - before;
    assert!(
        attempts >= 6,
        "both binaries must keep retrying (the broker saw {attempts} connections)"
    );
    said_once(
        "the aggregator",
        &agg,
        "refused user `aggregator` and its password",
        "mqtt.password",
        &dir.path().join("aggregator.toml"),
    );
    said_once(
        "the kiosk",
        &kiosk,
        "refused user `sim-001` and its password",
        "mqtt.password",
        &dir.path().join("kiosk.toml"),
    );
}

#[test]
fn a_wrong_ca_is_said_once_by_the_kiosk_and_the_aggregator() {
    let broker = Broker::start(&["sim-001"]);
    let dir = tempfile::tempdir().unwrap();
    let ca = other_ca(dir.path());
    let before = connections(&broker);
    let (agg, kiosk) = run_both(&broker, dir.path(), None, &ca);
    let attempts = connections(&broker) - before;
    assert!(
        attempts >= 6,
        "both binaries must keep retrying (the broker saw {attempts} connections)"
    );
    for (who, log, file) in [
        ("the aggregator", &agg, "aggregator.toml"),
        ("the kiosk", &kiosk, "kiosk.toml"),
    ] {
        said_once(
            who,
            log,
            "TLS certificate at",
            &format!("mqtt.ca_file ({})", ca.display()),
            &dir.path().join(file),
        );
        assert!(log.contains("is not trusted"), "{who}: {log}");
    }
}
