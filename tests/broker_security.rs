//! The shipped broker configuration (`config/mosquitto/`), for real: the
//! setup script makes a CA, the broker's certificate, passwords and the
//! ACL; a real Mosquitto runs on them (TLS only) on a free port; clients
//! connect with TLS and credentials exactly as the kiosk and the
//! aggregator do (`huddle_board::mqtt::options`).
//!
//! - Board b1 cannot publish on board b2's topics (nothing is delivered)
//!   and reads nothing of other boards, only its own ack.
//! - A board writes only under the area `setup.sh` was given for it
//!   (`board=area`); a bare new board is refused by the script.
//! - One board's credentials with the aggregator's or another board's
//!   client id take nobody over (the broker uses user names as client ids),
//!   and persistent sessions still keep what a client missed while away.
//! - A packet over the broker's `max_packet_size` disconnects its sender
//!   and is not delivered; a packet at the limit, and the largest the
//!   product's MQTT client sends, pass.
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
/// `simulate --boards 1`'s board, in the area of the shipped kiosk.toml.
const SIM_BOARD: &str = "sim-001=assembly";

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
        // Only the TLS listener: a listener option above the `listener`
        // line makes Mosquitto open a plain one on 1883 as well.
        let log = std::fs::read_to_string(out.join("mosquitto.log")).unwrap_or_default();
        for line in log.lines().filter(|l| l.contains("listen socket on port")) {
            assert!(
                line.ends_with(&format!("port {port}.")),
                "the shipped configuration opens another listener: {line}"
            );
        }
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

    /// Connects as `user` with client id `id` (see [`open`]) and waits for
    /// the broker's ConnAck; the third receiver then reports every later
    /// connection error (and ConnAck, when `reconnect`).
    fn session(
        &self,
        user: &str,
        id: &str,
        clean: bool,
        limits: Option<(usize, usize)>,
        reconnect: bool,
    ) -> (Client, mpsc::Receiver<(String, Vec<u8>)>, Connected) {
        let (client, rx, link) = open(&self.mqtt(user, None), id, clean, limits, reconnect);
        match link.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => {}
            other => panic!("{user} (client id {id}) could not connect: {other:?}"),
        }
        (client, rx, link)
    }

    /// A value of the `mosquitto.conf` that `setup.sh` wrote.
    fn setting(&self, key: &str) -> String {
        std::fs::read_to_string(self.path("mosquitto.conf"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key} ")).map(str::to_owned))
            .unwrap_or_else(|| panic!("the shipped mosquitto.conf has no `{key}`"))
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
    open(
        config,
        &format!("test-{user}-{}", free_port()),
        true,
        None,
        true,
    )
}

/// [`connect`] with client id `id`, a clean or persistent session,
/// `(incoming, outgoing)` packet limits instead of the product's, and
/// without reconnecting after the first error unless `reconnect`.
fn open(
    config: &MqttConfig,
    id: &str,
    clean: bool,
    limits: Option<(usize, usize)>,
    reconnect: bool,
) -> (Client, mpsc::Receiver<(String, Vec<u8>)>, Connected) {
    let mut o = huddle_board::mqtt::options(config, id, Path::new("test.toml")).unwrap();
    o.set_clean_session(clean);
    if let Some((incoming, outgoing)) = limits {
        o.set_max_packet_size(incoming, outgoing);
    }
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
                    if !reconnect || matches!(e, ConnectionError::ConnectionRefused(_)) {
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
    let broker = Broker::start(&["b1=assembly", "b2=assembly"]);
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
    let broker = Broker::start(&["b1=assembly"]);
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
    let broker = Broker::start(&[SIM_BOARD]);
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
    let broker = Broker::start(&[SIM_BOARD]);
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
    let broker = Broker::start(&[SIM_BOARD]);
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

/// Waits up to `wait` for the next publish on `rx`.
fn next(rx: &mpsc::Receiver<(String, Vec<u8>)>, wait: Duration) -> Option<(String, Vec<u8>)> {
    rx.recv_timeout(wait).ok()
}

#[test]
fn a_board_writes_only_under_its_own_area() {
    let broker = Broker::start(&["b1=assembly"]);
    let (agg, agg_rx) = broker.connect("aggregator");
    agg.subscribe("huddle/v1/plant1/#", QoS::AtLeastOnce)
        .unwrap();
    let (b1, b1_rx) = broker.connect("b1");
    b1.subscribe("huddle/v1/plant1/+/b1/#", QoS::AtLeastOnce)
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));

    // b1 writes its three kinds of topic under another area, then its own.
    for area in ["paint", "assembly"] {
        for what in ["event/attendance.tapped", "online", "schedule"] {
            b1.publish(
                format!("huddle/v1/plant1/{area}/b1/{what}"),
                QoS::AtLeastOnce,
                false,
                "x",
            )
            .unwrap();
        }
    }
    // The aggregator answers under both areas: b1 reads only its own.
    for area in ["paint", "assembly"] {
        agg.publish(
            format!("huddle/v1/plant1/{area}/b1/ack"),
            QoS::AtLeastOnce,
            false,
            "y",
        )
        .unwrap();
    }

    let mut seen_by_agg = drain(&agg_rx, Duration::from_secs(2));
    seen_by_agg.sort();
    assert_eq!(
        seen_by_agg,
        [
            "huddle/v1/plant1/assembly/b1/event/attendance.tapped",
            "huddle/v1/plant1/assembly/b1/online",
            "huddle/v1/plant1/assembly/b1/schedule",
        ],
        "b1 (setup.sh b1=assembly) must reach the aggregator under its own area only"
    );
    assert_eq!(
        drain(&b1_rx, Duration::from_millis(500)),
        ["huddle/v1/plant1/assembly/b1/ack"],
        "b1 must read its ack under its own area only"
    );
}

/// Runs `setup.sh --site plant1 --out OUT ARGS...`; its exit code and
/// standard error.
fn setup(out: &Path, args: &[&str]) -> (i32, String) {
    require("openssl", "openssl");
    require("mosquitto_passwd", "mosquitto");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/mosquitto/setup.sh");
    let run = Command::new("bash")
        .arg(&script)
        .args(["--site", "plant1", "--host", "localhost", "--out"])
        .arg(out)
        .args(args)
        .output()
        .expect("run config/mosquitto/setup.sh");
    (
        run.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&run.stderr).into_owned(),
    )
}

#[test]
fn setup_takes_boards_as_board_equals_area() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("broker");
    let acl = || std::fs::read_to_string(out.join("acl")).unwrap_or_default();

    // A new board without its area is refused, saying how to give it.
    let (code, err) = setup(&out, &["line1"]);
    assert_eq!(code, 2, "a bare new board must be refused: {err}");
    assert!(
        err.contains("line1=AREA"),
        "the refusal must say how to give the area: {err}"
    );
    for reserved in ["aggregator=assembly", "dashboard=assembly", "line1=alert"] {
        let (code, err) = setup(&out, &[reserved]);
        assert_eq!(code, 2, "{reserved} must be refused: {err}");
    }
    assert!(!out.join("acl").exists(), "a refused run writes nothing");

    // A board is pinned to its area; a later run adds boards and keeps
    // the earlier ones (a bare known board keeps its area), and another
    // dashboard gets its own user.
    assert_eq!(setup(&out, &["line1=assembly"]).0, 0);
    assert_eq!(
        setup(&out, &["line1", "line2=paint", "--dashboard", "grafana"]).0,
        0
    );
    let text = acl();
    for line in [
        "user line1",
        "topic write huddle/v1/plant1/assembly/line1/event/#",
        "topic read huddle/v1/plant1/assembly/line1/ack",
        "user line2",
        "topic write huddle/v1/plant1/paint/line2/online",
        "user dashboard",
        "user grafana",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "the ACL lacks `{line}`:\n{text}"
        );
    }
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("pattern") || (l.contains("/+/line") && !l.starts_with('#'))),
        "no ACL line may leave a board's area open:\n{text}"
    );
    let users: Vec<String> = std::fs::read_to_string(out.join("credentials.txt"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').next().map(str::to_owned))
        .collect();
    assert_eq!(
        users,
        ["aggregator", "dashboard", "line1", "grafana", "line2"],
        "one password per user, each made once"
    );

    // A password file from before areas: its boards must be given one.
    let ok = Command::new(require("mosquitto_passwd", "mosquitto"))
        .arg("-b")
        .arg(out.join("passwd"))
        .args(["line9", "old-password"])
        .status()
        .unwrap();
    assert!(ok.success());
    let (code, err) = setup(&out, &["line3=paint"]);
    assert_eq!(code, 2, "a board user without an area must stop the run");
    assert!(err.contains("line9=AREA"), "{err}");
    assert_eq!(setup(&out, &["line9=welding"]).0, 0);
    assert!(acl().contains("huddle/v1/plant1/welding/line9/event/#"));
}

#[test]
fn one_boards_credentials_cannot_take_over_another_client_id() {
    let broker = Broker::start(&["b1=assembly", "b2=assembly"]);
    let agg_id = huddle_board::aggregator::ingest::client_id("plant1");
    let b2_id = "huddle-kiosk-plant1-b2";
    // The victims, as the product connects them: fixed client ids,
    // persistent sessions, reconnecting.
    let (agg, agg_rx, agg_link) = broker.session("aggregator", &agg_id, false, None, true);
    agg.subscribe("huddle/v1/plant1/+/+/event/#", QoS::AtLeastOnce)
        .unwrap();
    let (b2, b2_rx, b2_link) = broker.session("b2", b2_id, false, None, true);
    b2.subscribe("huddle/v1/plant1/assembly/b2/ack", QoS::AtLeastOnce)
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));

    // The attacks: b1's credentials with each victim's client id. Each is
    // let in (as b1) and stays connected while the victims are watched.
    let mut attackers = Vec::new();
    for id in [agg_id.as_str(), b2_id] {
        let (client, _rx, link) = open(&broker.mqtt("b1", None), id, true, None, false);
        match link.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => {}
            other => panic!("b1 with client id {id} could not connect: {other:?}"),
        }
        attackers.push((client, link));
        std::thread::sleep(Duration::from_millis(300));
    }
    for (who, link) in [("the aggregator", &agg_link), ("b2", &b2_link)] {
        if let Ok(what) = link.recv_timeout(Duration::from_secs(2)) {
            panic!(
                "{who} lost its connection when b1's credentials used its client id: {what:?}\nbroker log:\n{}",
                std::fs::read_to_string(broker.path("mosquitto.log")).unwrap_or_default()
            );
        }
    }

    // Both victims still get what is theirs.
    b2.publish(
        "huddle/v1/plant1/assembly/b2/event/attendance.tapped",
        QoS::AtLeastOnce,
        false,
        "e",
    )
    .unwrap();
    let got = next(&agg_rx, Duration::from_secs(5)).map(|(t, _)| t);
    assert_eq!(
        got.as_deref(),
        Some("huddle/v1/plant1/assembly/b2/event/attendance.tapped"),
        "the aggregator must still receive b2's events"
    );
    agg.publish(
        "huddle/v1/plant1/assembly/b2/ack",
        QoS::AtLeastOnce,
        false,
        "a",
    )
    .unwrap();
    let got = next(&b2_rx, Duration::from_secs(5)).map(|(t, _)| t);
    assert_eq!(
        got.as_deref(),
        Some("huddle/v1/plant1/assembly/b2/ack"),
        "b2 must still receive its ack"
    );
    drop(attackers);
}

#[test]
fn persistent_sessions_keep_what_a_client_missed_while_away() {
    let broker = Broker::start(&["b1=assembly"]);
    let agg_id = huddle_board::aggregator::ingest::client_id("plant1");
    let b1_id = "huddle-kiosk-plant1-b1";
    const EVENTS: usize = 5_000; // Mosquitto's default queue keeps 1,000

    // Both subscribe with persistent sessions, then go away.
    let (agg, _rx, agg_link) = broker.session("aggregator", &agg_id, false, None, false);
    agg.subscribe("huddle/v1/plant1/+/+/event/#", QoS::AtLeastOnce)
        .unwrap();
    let (b1, _rx, _link) = broker.session("b1", b1_id, false, None, false);
    b1.subscribe("huddle/v1/plant1/assembly/b1/ack", QoS::AtLeastOnce)
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    agg.disconnect().unwrap();
    let _ = agg_link.recv_timeout(Duration::from_secs(5));

    // While the aggregator is away, b1 publishes a backlog and goes away.
    let pad = "x".repeat(400);
    for seq in 1..=EVENTS {
        b1.publish(
            "huddle/v1/plant1/assembly/b1/event/attendance.tapped",
            QoS::AtLeastOnce,
            false,
            format!("{{\"seq\":{seq},\"pad\":\"{pad}\"}}"),
        )
        .unwrap();
    }
    b1.disconnect().unwrap();
    std::thread::sleep(Duration::from_secs(1));

    // The aggregator comes back (same id, no new subscription): all of it.
    let (agg, agg_rx, _link) = broker.session("aggregator", &agg_id, false, None, true);
    let mut received = 0;
    while received < EVENTS {
        match next(&agg_rx, Duration::from_secs(10)) {
            Some(_) => received += 1,
            None => break,
        }
    }
    assert_eq!(
        received,
        EVENTS,
        "the aggregator's persistent session must keep the backlog while it is away; broker log:\n{}",
        std::fs::read_to_string(broker.path("mosquitto.log")).unwrap_or_default()
    );

    // And the kiosk gets the ack published while it was away.
    agg.publish(
        "huddle/v1/plant1/assembly/b1/ack",
        QoS::AtLeastOnce,
        false,
        "5000",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let (_b1, b1_rx, _link) = broker.session("b1", b1_id, false, None, true);
    assert_eq!(
        next(&b1_rx, Duration::from_secs(5)),
        Some((
            "huddle/v1/plant1/assembly/b1/ack".to_owned(),
            b"5000".to_vec()
        )),
        "b1's persistent session must keep its ack while it is away"
    );
}

/// The payload that makes a QoS 1 publish on `topic` exactly `size` bytes
/// as Mosquitto's `max_packet_size` counts it (remaining length + 1: topic
/// length, topic, packet id, payload, plus one).
fn payload_for(topic: &str, size: usize) -> Vec<u8> {
    vec![b'x'; size - 1 - 2 - topic.len() - 2]
}

#[test]
fn a_packet_over_max_packet_size_is_refused_and_a_normal_event_passes() {
    let broker = Broker::start(&["b1=assembly"]);
    let max: usize = broker.setting("max_packet_size").parse().unwrap();
    // Every message a board may legally send fits, with room.
    let legal: usize = include_str!("../config/aggregator.toml")
        .lines()
        .find_map(|l| l.strip_prefix("max_message_bytes = "))
        .and_then(|v| v.trim().parse().ok())
        .expect("ingest.max_message_bytes in config/aggregator.toml");
    assert!(
        max >= 4 * legal,
        "max_packet_size {max} leaves too little room over ingest.max_message_bytes {legal}"
    );
    let event = "huddle/v1/plant1/assembly/b1/event/need.raised";

    // The aggregator takes large packets in (as ingest.rs sets it up); a
    // dashboard has the product's own limits.
    let (agg, agg_rx, _l) =
        broker.session("aggregator", "agg", true, Some((16 << 20, 1 << 20)), true);
    agg.subscribe("huddle/v1/plant1/+/+/event/#", QoS::AtLeastOnce)
        .unwrap();
    let (dash, dash_rx, _l) = broker.session("dashboard", "dash", true, None, true);
    dash.subscribe("huddle/v1/plant1/+/+/status", QoS::AtLeastOnce)
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));

    // The largest packet the product's MQTT client sends (1 MiB whole,
    // src/mqtt.rs) passes: the aggregator's biggest status reaches a
    // dashboard instead of getting the aggregator disconnected.
    let status = "huddle/v1/plant1/assembly/b1/status";
    let whole = 1 << 20;
    let big = vec![b'x'; whole - 1 - 3 - 2 - status.len() - 2];
    agg.publish(status, QoS::AtLeastOnce, true, big.clone())
        .unwrap();
    let got = next(&dash_rx, Duration::from_secs(10)).map(|(t, p)| (t, p.len()));
    assert_eq!(
        got,
        Some((status.to_owned(), big.len())),
        "a 1 MiB publication from the aggregator must reach a dashboard"
    );

    // From b1, with its client's own limit lifted: a packet of exactly
    // max_packet_size passes, one byte more disconnects b1 and is dropped.
    let (b1, _rx, b1_link) = broker.session("b1", "b1", true, Some((1 << 20, 4 * max)), false);
    b1.publish(event, QoS::AtLeastOnce, false, payload_for(event, max))
        .unwrap();
    let got = next(&agg_rx, Duration::from_secs(10)).map(|(t, p)| (t, p.len()));
    assert_eq!(
        got,
        Some((event.to_owned(), payload_for(event, max).len())),
        "a packet of exactly max_packet_size must pass"
    );
    b1.publish(event, QoS::AtLeastOnce, false, payload_for(event, max + 1))
        .unwrap();
    let cut = b1_link.recv_timeout(Duration::from_secs(10));
    assert!(
        matches!(cut, Ok(Err(_))),
        "the broker must disconnect a board sending a packet over max_packet_size ({max}): {cut:?}"
    );
    if let Some((topic, payload)) = next(&agg_rx, Duration::from_secs(2)) {
        panic!(
            "a packet over max_packet_size reached the aggregator ({topic}, {} bytes)",
            payload.len()
        );
    }
    assert!(
        std::fs::read_to_string(broker.path("mosquitto.log"))
            .unwrap_or_default()
            .contains("oversize packet"),
        "the broker's log must say why b1 was disconnected"
    );

    // b1 connects again: a normal event passes.
    let (b1, _rx, _l) = broker.session("b1", "b1", true, None, true);
    b1.publish(event, QoS::AtLeastOnce, false, r#"{"seq":1}"#)
        .unwrap();
    let got = next(&agg_rx, Duration::from_secs(10));
    assert_eq!(
        got,
        Some((event.to_owned(), br#"{"seq":1}"#.to_vec())),
        "after that, b1's normal event must pass"
    );
}

/// The real aggregator with `config`, its data and log (`agg.log`) in
/// `dir`.
fn start_aggregator(config: &Path, dir: &Path) -> Child {
    Command::new(AGGREGATOR)
        .arg("--config")
        .arg(config)
        .env("HUDDLE_DATA_DIR", dir.join("agg"))
        .env_remove("HUDDLE_MQTT_URL")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("agg.log")).unwrap())
        .spawn()
        .expect("start huddle-aggregator")
}

/// The aggregator's resident memory in kB, from `/proc`.
fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn one_boards_credentials_cannot_stop_the_site() {
    use huddle_board::wire::event::{Envelope, Event, NeedRaised};
    use huddle_board::wire::topic::BoardTopics;

    let boards = [
        "sim-001=assembly",
        "sim-002=assembly",
        "sim-003=assembly",
        "sim-009=assembly",
    ];
    let broker = Broker::start(&boards);
    let dir = tempfile::tempdir().unwrap();
    let ca = broker.path("ca.crt");
    let agg_config = dir.path().join("aggregator.toml");
    std::fs::write(
        &agg_config,
        shipped_with(
            include_str!("../config/aggregator.toml"),
            &broker,
            "aggregator",
            &broker.passwords["aggregator"],
            &ca,
        ),
    )
    .unwrap();
    let mut aggregator = start_aggregator(&agg_config, dir.path());
    std::thread::sleep(Duration::from_secs(1));

    // The attack, with board sim-009's own credentials, on its own topics:
    // 24 escalated needs with 60 KB texts (each under
    // ingest.max_message_bytes), seqs beyond i64 and far beyond the ack,
    // and an event dated 9999-12-31.
    let (attacker, _rx) = broker.connect("sim-009");
    let topics = BoardTopics::new("plant1", "assembly", "sim-009");
    let need = |seq: u64| {
        Envelope::new(
            "sim-009",
            seq,
            chrono::Utc::now(),
            true,
            &Event::NeedRaised(NeedRaised {
                need_id: format!("n{seq}"),
                huddle_id: "h".into(),
                category: "material".into(),
                text: "x".repeat(60_000),
                escalated: true,
            }),
        )
        .in_incarnation("attack", 1)
    };
    let mut sent = Vec::new();
    for seq in 1..=24 {
        sent.push(need(seq));
    }
    sent.push(Envelope {
        seq: (1u64 << 63) + 5,
        ..need(25)
    });
    sent.push(Envelope {
        seq: 10u64.pow(15),
        ..need(26)
    });
    let mut dated = need(27);
    dated.at = "9999-12-31T00:00:00Z".parse().unwrap();
    sent.push(dated);
    for e in &sent {
        attacker
            .publish(topics.event(&e.kind), QoS::AtLeastOnce, false, e.to_json())
            .unwrap();
    }
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        aggregator.try_wait().unwrap().is_none(),
        "the aggregator stopped: {}",
        std::fs::read_to_string(dir.path().join("agg.log")).unwrap_or_default()
    );

    // Afterwards every other board, with its own credentials, runs two
    // huddles and is fully acknowledged within the deadline.
    let started = Instant::now();
    let kiosks: Vec<(usize, Child)> = (1..=3)
        .map(|n| {
            let user = format!("sim-00{n}");
            let config = dir.path().join(format!("kiosk-{n}.toml"));
            std::fs::write(
                &config,
                shipped_with(
                    include_str!("../config/kiosk.toml"),
                    &broker,
                    &user,
                    &broker.passwords[&user],
                    &ca,
                ),
            )
            .unwrap();
            let child = Command::new(KIOSK)
                .arg("--config")
                .arg(&config)
                .args(["simulate", "--boards", "1", "--first", &n.to_string()])
                .args(["--huddles", "2", "--timeout", "60"])
                .arg("--data-dir")
                .arg(dir.path().join("kiosks"))
                .env_remove("HUDDLE_MQTT_URL")
                .env("RUST_LOG", "warn")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("run huddle-kiosk simulate");
            (n, child)
        })
        .collect();
    for (n, child) in kiosks {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "board sim-00{n} was not fully acknowledged after the attack ({:?}):\n{}\n{}\naggregator log:\n{}",
            started.elapsed(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(dir.path().join("agg.log")).unwrap_or_default()
        );
    }
    let rss = rss_kb(aggregator.id());
    let _ = aggregator.kill();
    let _ = aggregator.wait();
    assert!(
        rss > 0 && rss < 200 * 1024,
        "the aggregator's memory after the attack: {rss} kB"
    );
    let log = std::fs::read_to_string(dir.path().join("agg.log")).unwrap_or_default();
    assert!(
        log.contains("bad_payload"),
        "the 60 KB texts were not rejected:\n{log}"
    );
    assert!(
        log.contains("bad_seq"),
        "the impossible seqs were not rejected:\n{log}"
    );
}

/// The ids of every event in simulated board sim-001's file under `data`.
fn sim_ids(data: &Path) -> std::collections::BTreeSet<String> {
    let store = huddle_board::kiosk::store::Store::open(
        &data.join("sim-001").join("kiosk-sim-001.db"),
        "sim-001",
    )
    .unwrap();
    store
        .events_since(0)
        .unwrap()
        .iter()
        .map(|l| {
            serde_json::from_str::<huddle_board::wire::event::Envelope>(l)
                .unwrap()
                .id
                .to_string()
        })
        .collect()
}

#[test]
fn a_reflashed_or_restored_board_loses_nothing_through_the_shipped_broker() {
    let broker = Broker::start(&[SIM_BOARD]);
    let dir = tempfile::tempdir().unwrap();
    let ca = broker.path("ca.crt");
    let agg_config = dir.path().join("aggregator.toml");
    let kiosk_config = dir.path().join("kiosk.toml");
    for (file, shipped, user) in [
        (
            &agg_config,
            include_str!("../config/aggregator.toml"),
            "aggregator",
        ),
        (
            &kiosk_config,
            include_str!("../config/kiosk.toml"),
            "sim-001",
        ),
    ] {
        let text = shipped_with(shipped, &broker, user, &broker.passwords[user], &ca);
        std::fs::write(file, text).unwrap();
    }
    let mut aggregator = start_aggregator(&agg_config, dir.path());
    let kiosks = dir.path().join("kiosks");
    let simulate = |huddles: &str| {
        let out = Command::new(KIOSK)
            .arg("--config")
            .arg(&kiosk_config)
            .args(["simulate", "--boards", "1", "--huddles", huddles])
            .args(["--timeout", "60", "--data-dir"])
            .arg(&kiosks)
            .env_remove("HUDDLE_MQTT_URL")
            .env("RUST_LOG", "warn")
            .output()
            .expect("run huddle-kiosk simulate");
        assert!(
            out.status.success(),
            "sim-001 was not fully acknowledged:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let exported = || -> Vec<String> {
        let out = Command::new(AGGREGATOR)
            .arg("--config")
            .arg(&agg_config)
            .args(["export", "--what", "events", "--format", "csv"])
            .env("HUDDLE_DATA_DIR", dir.path().join("agg"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        csv::Reader::from_reader(out.stdout.as_slice())
            .records()
            .map(|r| r.unwrap()[2].to_owned())
            .collect()
    };
    simulate("2");
    let mut written = sim_ids(&kiosks);
    // Reflashed: the file is gone.
    std::fs::remove_dir_all(&kiosks).unwrap();
    simulate("1");
    written.extend(sim_ids(&kiosks));
    // Restored from an older copy.
    let copy = dir.path().join("copy");
    let cp = Command::new("cp")
        .arg("-a")
        .arg(&kiosks)
        .arg(&copy)
        .status();
    assert!(cp.unwrap().success());
    // (`--huddles` counts across restarts: 2 is one more.)
    simulate("2");
    written.extend(sim_ids(&kiosks));
    std::fs::remove_dir_all(&kiosks).unwrap();
    std::fs::rename(&copy, &kiosks).unwrap();
    simulate("2");
    written.extend(sim_ids(&kiosks));
    let ids = exported();
    let _ = aggregator.kill();
    let _ = aggregator.wait();
    let unique: std::collections::BTreeSet<String> = ids.iter().cloned().collect();
    println!(
        "{} events written, {} exported",
        written.len(),
        unique.len()
    );
    assert!(written.len() > 60, "the board wrote too little to tell");
    assert_eq!(unique.len(), ids.len(), "an event exported twice");
    let missing: Vec<_> = written.difference(&unique).take(5).collect();
    assert!(
        missing.is_empty(),
        "{} of {} events never reached the aggregator, e.g. {missing:?}",
        written.difference(&unique).count(),
        written.len()
    );
}
