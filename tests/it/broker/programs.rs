//! The real `huddle-kiosk` (a simulated board) and `huddle-aggregator`
//! over the shipped broker: end to end over TLS with their credentials,
//! and a wrong password or CA said once, naming the key and the file,
//! while they keep retrying.

use super::*;

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
    let agg: String = include_str!("../../../config/aggregator.toml")
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
    let kiosk = include_str!("../../../config/kiosk.toml").replacen(
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

/// Runs the real aggregator and a real simulated kiosk for [`RUN`] with
/// these credentials and CA; returns their logs (stderr).
fn run_both(broker: &Broker, dir: &Path, password: Option<&str>, ca: &Path) -> (String, String) {
    let agg_password = password.unwrap_or(&broker.passwords["aggregator"]);
    let kiosk_password = password.unwrap_or(&broker.passwords["sim-001"]);
    let agg_config = dir.join("aggregator.toml");
    std::fs::write(
        &agg_config,
        shipped_with(
            include_str!("../../../config/aggregator.toml"),
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
            include_str!("../../../config/kiosk.toml"),
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
