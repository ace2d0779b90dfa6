//! `huddle-kiosk doctor` against the shipped broker (TLS, passwords,
//! ACL) and a real board file: a healthy board passes every check that
//! does not need the Pi's hardware, and each broken case fails on its own
//! line with a remedy and exit code 1.

use super::*;

/// A board's config for the broker, with `password` and `ca` when given.
fn config(broker: &Broker, dir: &Path, port: u16, password: Option<&str>, ca: &Path) -> PathBuf {
    let password = password.unwrap_or(&broker.passwords["demo"]);
    let mqtt = format!(
        "url = \"mqtts://localhost:{port}\"\nusername = \"demo\"\npassword = \"{password}\"\nca_file = \"{}\"",
        ca.display()
    );
    let text = include_str!("../../../config/kiosk.toml").replacen(
        "url = \"mqtt://localhost:1883\"",
        &mqtt,
        1,
    );
    let path = dir.join("kiosk.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs doctor's checks that need no Pi hardware; its exit code and output.
fn doctor(config: &Path, data: &Path) -> (Option<i32>, String) {
    let out = Command::new(KIOSK)
        .arg("--config")
        .arg(config)
        .arg("doctor")
        .args(["--check", "config", "--check", "data", "--check", "broker"])
        .args(["--check", "backlog"])
        .env("HUDDLE_DATA_DIR", data)
        .env_remove("HUDDLE_MQTT_URL")
        .output()
        .expect("run huddle-kiosk doctor");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{text}{}", String::from_utf8_lossy(&out.stderr));
    (out.status.code(), text)
}

/// The line of `check`, asserting that it is there.
fn line<'a>(text: &'a str, check: &str) -> &'a str {
    text.lines()
        .find(|l| l.split_whitespace().nth(1) == Some(check))
        .unwrap_or_else(|| panic!("no line for {check} in:\n{text}"))
}

fn failed(text: &str, check: &str) {
    let l = line(text, check);
    assert!(l.starts_with("FAILED"), "{check} did not fail: {l}\n{text}");
    let next = text.lines().skip_while(|x| *x != l).nth(1).unwrap_or("");
    assert!(
        next.trim_start().starts_with("remedy: "),
        "no remedy under {l}:\n{text}"
    );
}

fn healthy_file(data: &Path) {
    std::fs::create_dir_all(data).unwrap();
    drop(huddle_board::kiosk::store::Store::open(&data.join("kiosk-demo.db"), "demo").unwrap());
}

#[test]
fn doctor_passes_a_healthy_board_and_names_each_broken_part() {
    let broker = Broker::start(&["demo=assembly"]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    healthy_file(&data);
    let ca = broker.path("ca.crt");

    // Healthy: every line ok, exit 0.
    let good = config(&broker, dir.path(), broker.port, None, &ca);
    let (code, text) = doctor(&good, &data);
    assert_eq!(code, Some(0), "{text}");
    for check in [
        "config",
        "data",
        "data.file",
        "broker.dns",
        "broker.tcp",
        "broker.tls",
        "broker.login",
        "broker.acl",
        "backlog",
    ] {
        assert!(line(&text, check).starts_with("ok"), "{check}:\n{text}");
    }

    // A wrong password.
    let wrong = tempfile::tempdir().unwrap();
    let (code, text) = doctor(
        &config(&broker, wrong.path(), broker.port, Some("wrong"), &ca),
        &data,
    );
    assert_eq!(code, Some(1), "{text}");
    failed(&text, "broker.login");

    // A CA that did not sign the broker's certificate.
    let other = tempfile::tempdir().unwrap();
    let other_ca = other.path().join("other-ca.crt");
    let made = Command::new(require("openssl", "openssl"))
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=other",
        ])
        .arg("-keyout")
        .arg(other.path().join("other-ca.key"))
        .arg("-out")
        .arg(&other_ca)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(made.success());
    let (code, text) = doctor(
        &config(&broker, other.path(), broker.port, None, &other_ca),
        &data,
    );
    assert_eq!(code, Some(1), "{text}");
    failed(&text, "broker.tls");

    // The broker down (nothing listens on the port).
    let down = tempfile::tempdir().unwrap();
    let (code, text) = doctor(&config(&broker, down.path(), free_port(), None, &ca), &data);
    assert_eq!(code, Some(1), "{text}");
    failed(&text, "broker.tcp");

    // A data directory this user cannot write (root writes anything a mode
    // allows, so root gets a directory of /proc).
    let ro = dir.path().join("read-only");
    let ro = if unsafe { libc::geteuid() } == 0 {
        PathBuf::from("/proc/self/fdinfo")
    } else {
        std::fs::create_dir(&ro).unwrap();
        std::fs::set_permissions(&ro, std::os::unix::fs::PermissionsExt::from_mode(0o555)).unwrap();
        ro
    };
    let (code, text) = doctor(&good, &ro);
    assert_eq!(code, Some(1), "{text}");
    failed(&text, "data");

    // A corrupted file: its pages overwritten past the header.
    let bad = dir.path().join("corrupt");
    healthy_file(&bad);
    let file = bad.join("kiosk-demo.db");
    let mut bytes = std::fs::read(&file).unwrap();
    for b in bytes.iter_mut().skip(100) {
        *b = 0xA5;
    }
    std::fs::write(&file, bytes).unwrap();
    let (code, text) = doctor(&good, &bad);
    assert_eq!(code, Some(1), "{text}");
    failed(&text, "data.file");

    // A config with a bad key: named with its file, and nothing else runs.
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "[board]\nid = \"Not A Topic Level\"\n").unwrap();
    let (code, text) = doctor(&broken, &data);
    assert_eq!(code, Some(1), "{text}");
    failed(&text, "config");
    assert!(
        text.contains("broken.toml"),
        "the file is not named:\n{text}"
    );
    assert_eq!(
        text.lines().filter(|l| !l.starts_with(' ')).count(),
        1,
        "{text}"
    );
}

/// The aggregator's config for the broker: its account, the site CA, a
/// dashboard on `web`, own secrets, the data in `dir/agg`, no roster.
fn aggregator_config(broker: &Broker, dir: &Path, password: Option<&str>, web: u16) -> PathBuf {
    let password = password.unwrap_or(&broker.passwords["aggregator"]);
    let text = include_str!("../../../config/aggregator.toml")
        .replacen(
            "url = \"mqtt://localhost:1883\"",
            &format!(
                "url = \"mqtts://localhost:{}\"\nusername = \"aggregator\"\npassword = \"{password}\"\nca_file = \"{}\"",
                broker.port,
                broker.path("ca.crt").display()
            ),
            1,
        )
        .replacen("demo-site-key-change-me", "a-site-key-of-this-test-0123456789", 1)
        .replacen("demo-dashboard-token-change-me", "a-token-of-this-test-0123456789", 1)
        .replacen("listen = \"0.0.0.0:8080\"", &format!("listen = \"127.0.0.1:{web}\""), 1)
        .replacen("data_dir = \"data\"", &format!("data_dir = \"{}\"", dir.join("agg").display()), 1)
        .replacen("file = \"roster.csv\"", "", 1);
    let path = dir.join(format!("aggregator-{web}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn aggregator_doctor(config: &Path) -> (Option<i32>, String) {
    let out = Command::new(AGGREGATOR)
        .arg("--config")
        .arg(config)
        .arg("doctor")
        .env_remove("HUDDLE_DATA_DIR")
        .env_remove("HUDDLE_MQTT_URL")
        .output()
        .expect("run huddle-aggregator doctor");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{text}{}", String::from_utf8_lossy(&out.stderr));
    (out.status.code(), text)
}

#[test]
fn aggregator_doctor_passes_a_healthy_site_and_names_each_broken_part() {
    let broker = Broker::start(&["demo=assembly"]);
    let dir = tempfile::tempdir().unwrap();
    let web = free_port();
    let good = aggregator_config(&broker, dir.path(), None, web);

    // The aggregator stopped: its dashboard does not answer.
    let (code, text) = aggregator_doctor(&good);
    assert_eq!(code, Some(1), "{text}");
    failed(&text, "dashboard");

    // Running: every check passes.
    let mut running = Command::new(AGGREGATOR)
        .arg("--config")
        .arg(&good)
        .env_remove("HUDDLE_DATA_DIR")
        .env_remove("HUDDLE_MQTT_URL")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("agg.log")).unwrap())
        .spawn()
        .expect("start huddle-aggregator");
    assert!(
        wait_port(web, Duration::from_secs(20)),
        "the dashboard did not listen"
    );
    let (code, text) = aggregator_doctor(&good);
    for check in [
        "config",
        "roster",
        "database",
        "broker.tls",
        "broker.login",
        "broker.acl",
        "dashboard",
        "boards",
    ] {
        assert!(line(&text, check).starts_with("ok"), "{check}:\n{text}");
    }
    assert_eq!(code, Some(0), "{text}");
    let _ = running.kill();
    let _ = running.wait();

    // A wrong password.
    let (code, text) = aggregator_doctor(&aggregator_config(
        &broker,
        dir.path(),
        Some("wrong"),
        free_port(),
    ));
    assert_eq!(code, Some(1), "{text}");
    failed(&text, "broker.login");

    // Boards not heard from: a site's history that ended in January.
    let old = tempfile::tempdir().unwrap();
    let config = aggregator_config(&broker, old.path(), None, free_port());
    let made = Command::new(AGGREGATOR)
        .arg("--config")
        .arg(&config)
        .args([
            "generate",
            "--boards",
            "2",
            "--days",
            "2",
            "--until",
            "2026-01-09T12:00:00Z",
        ])
        .env_remove("HUDDLE_DATA_DIR")
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let (code, text) = aggregator_doctor(&config);
    assert_eq!(code, Some(1), "{text}");
    failed(&text, "boards");
    assert!(line(&text, "database").starts_with("ok"), "{text}");
}
