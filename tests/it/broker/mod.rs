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
//! - `huddle-kiosk doctor` passes a healthy board and names each broken
//!   part (password, CA, broker down, data directory, file, config).
//! - The real kiosk (simulated board) and the real aggregator work end to
//!   end over TLS with their credentials.
//! - Given a wrong password or a CA that did not sign the broker's
//!   certificate, the real kiosk and the real aggregator say so once, with
//!   the config key and file to fix, while they keep retrying.
//!
//! Here the broker and the clients of the product's kind; the tests in
//! `acl` (MQTT clients only), `programs` (the real binaries) and
//! `attacks`.

// Without feature kiosk only `acl` is built: the helpers of the others idle.
#![cfg_attr(not(feature = "kiosk"), allow(dead_code, unused_imports))]

mod acl;
#[cfg(feature = "kiosk")]
mod attacks;
#[cfg(feature = "kiosk")]
mod doctor;
#[cfg(feature = "kiosk")]
mod programs;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::{free_port, require, wait_port};
use huddle_board::config::MqttConfig;
use rumqttc::{Client, ConnectionError, Event, Packet, QoS};

#[cfg(feature = "kiosk")]
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

/// Waits up to `wait` for the next publish on `rx`.
fn next(rx: &mpsc::Receiver<(String, Vec<u8>)>, wait: Duration) -> Option<(String, Vec<u8>)> {
    rx.recv_timeout(wait).ok()
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
