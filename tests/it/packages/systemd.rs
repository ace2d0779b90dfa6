//! The systemd units (`systemd/`) and the notify protocol, for real:
//!
//! - `systemd-analyze verify` accepts both units, and the aggregator's
//!   exposure by `systemd-analyze security --offline=true` is at most 2.5
//!   (the target; the kiosk's is printed, since DRM, input and
//!   GPIO need devices the aggregator does not);
//! - the real binaries, given a `$NOTIFY_SOCKET` and `$WATCHDOG_USEC` as
//!   systemd gives them, say `READY=1` and then feed the watchdog, under
//!   their unit's `LimitNOFILE=`;
//! - the kiosk's store, under strace, makes no system call that its
//!   unit's `SystemCallFilter=` (less `@clock` under `ProtectClock=`)
//!   denies;
//! - both units bound memory (`MemoryMax=`) and open files
//!   (`LimitNOFILE=`): the kiosk leaves at least half of a 1 GB Pi to the
//!   rest, the aggregator has descriptors for every dashboard connection
//!   it serves.

use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{require, Mosquitto, Xvfb};

const KIOSK: &str = env!("CARGO_BIN_EXE_huddle-kiosk");
const AGGREGATOR: &str = env!("CARGO_BIN_EXE_huddle-aggregator");

/// A unit file with `ExecStart=` pointing at the binary built here
/// (`verify` checks that the command exists).
fn unit_here(dir: &Path, name: &str, binary: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("systemd/{name}.service")),
    )
    .unwrap()
    .replace(&format!("/usr/bin/{name}"), binary);
    let path = dir.join(format!("{name}.service"));
    std::fs::write(&path, text).unwrap();
    path
}

/// The value of `key=` in a shipped unit (the last one, as systemd reads
/// it), if any.
fn unit_setting(name: &str, key: &str) -> Option<String> {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("systemd/{name}.service")),
    )
    .unwrap()
    .lines()
    .filter_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
    .map(|v| v.trim().to_owned())
    .next_back()
}

/// A byte size as systemd writes it (`512M`, `1G`, base 1024).
fn bytes(value: &str) -> Option<u64> {
    let (digits, unit) = value.split_at(value.find(|c: char| !c.is_ascii_digit())?);
    let shift = match unit {
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return None,
    };
    Some(digits.parse::<u64>().ok()? << shift)
}

/// The unit's `LimitNOFILE=` (soft limit), which must be a number.
fn nofile(name: &str) -> u64 {
    let value = unit_setting(name, "LimitNOFILE")
        .unwrap_or_else(|| panic!("{name}.service has no LimitNOFILE="));
    value
        .split(':')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name}.service: LimitNOFILE={value} is not a number"))
}

#[test]
fn units_bound_memory_and_open_files() {
    const GIB: u64 = 1 << 30;
    for name in ["huddle-aggregator", "huddle-kiosk"] {
        let value = unit_setting(name, "MemoryMax")
            .unwrap_or_else(|| panic!("{name}.service has no MemoryMax="));
        let max = bytes(&value)
            .unwrap_or_else(|| panic!("{name}.service: MemoryMax={value} is not a byte size"));
        let files = nofile(name);
        println!("{name}: MemoryMax={value} ({max} bytes), LimitNOFILE={files}");
        if name == "huddle-kiosk" {
            // Pi 4/5 with 1 to 8 GB; it measured 22 MB PSS (release).
            assert!(
                (128 << 20..=GIB / 2).contains(&max),
                "the kiosk's MemoryMax={value} must leave half of a 1 GB Pi and hold the kiosk"
            );
            assert!(
                (64..=1024).contains(&files),
                "the kiosk's LimitNOFILE={files}: about 25 files are open, a leak must stop early"
            );
        } else {
            assert!(
                (256 << 20..=4 * GIB).contains(&max),
                "the aggregator's MemoryMax={value}: it measured 38 MB at 500 boards"
            );
            let web = huddle_board::aggregator::web::MAX_CONNECTIONS as u64;
            assert!(
                (web + 64..=65_536).contains(&files),
                "the aggregator's LimitNOFILE={files} must hold {web} dashboard connections and its own files"
            );
        }
    }
}

/// Runs `command` with the unit's `LimitNOFILE=` applied, as systemd does.
fn with_unit_nofile<'a>(command: &'a mut Command, name: &str) -> &'a mut Command {
    let limit = nofile(name) as libc::rlim_t;
    // SAFETY: setrlimit is async-signal-safe; it runs in the child before exec.
    unsafe {
        command.pre_exec(move || {
            let r = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &r) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        })
    }
}

#[test]
fn units_verify_and_the_aggregator_is_hardened() {
    let analyze = require("systemd-analyze", "systemd");
    let dir = tempfile::tempdir().unwrap();
    for (name, binary) in [("huddle-aggregator", AGGREGATOR), ("huddle-kiosk", KIOSK)] {
        let unit = unit_here(dir.path(), name, binary);
        let out = Command::new(&analyze)
            .arg("verify")
            .arg(&unit)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && !stderr.contains(&format!("{name}.service")),
            "systemd-analyze verify {name}.service:\n{stderr}"
        );
        let out = Command::new(&analyze)
            .args(["security", "--offline=true", "--no-pager"])
            .arg(&unit)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let exposure: f64 = text
            .lines()
            .find_map(|l| l.split_once("Overall exposure level for "))
            .and_then(|(_, rest)| rest.split_once(": "))
            .and_then(|(_, v)| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no exposure level for {name}:\n{text}"));
        println!("{name}: exposure {exposure}");
        if name == "huddle-aggregator" {
            assert!(
                exposure <= 2.5,
                "the aggregator's exposure is {exposure}, the target is 2.5 or lower:\n{text}"
            );
        }
    }
}

/// The notifications a child sends within `wait`.
fn notifications(socket: &UnixDatagram, wait: Duration) -> Vec<String> {
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + wait;
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    got
}

fn assert_ready_then_watchdog(name: &str, got: &[String], child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        got.first().map(String::as_str),
        Some("READY=1"),
        "{name} must say READY=1 first: {got:?}"
    );
    let fed = got.iter().filter(|m| *m == "WATCHDOG=1").count();
    assert!(
        fed >= 3,
        "{name} must feed a 0.5 s watchdog several times in 3 s: {got:?}"
    );
}

#[test]
fn the_aggregator_says_ready_and_feeds_the_watchdog() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let config: String = include_str!("../../../config/aggregator.toml")
        .lines()
        .filter(|l| !l.trim_start().starts_with("file"))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(dir.path().join("aggregator.toml"), config).unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    let mut child = with_unit_nofile(&mut Command::new(AGGREGATOR), "huddle-aggregator")
        .arg("--config")
        .arg(dir.path().join("aggregator.toml"))
        .env("HUDDLE_DATA_DIR", dir.path().join("data"))
        .env("HUDDLE_MQTT_URL", broker.url())
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "500000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start huddle-aggregator");
    let got = notifications(&socket, Duration::from_secs(3));
    assert_ready_then_watchdog("huddle-aggregator", &got, &mut child);
}

#[test]
fn the_kiosk_says_ready_and_feeds_the_watchdog_from_its_ui_loop() {
    let x = Xvfb::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    let mut child = with_unit_nofile(&mut Command::new(KIOSK), "huddle-kiosk")
        .arg("run")
        .env("DISPLAY", &x.display)
        .env("HUDDLE_DATA_DIR", dir.path().join("data"))
        .env(
            "HUDDLE_MQTT_URL",
            format!("mqtt://127.0.0.1:{}", crate::support::free_port()),
        )
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "500000")
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("start huddle-kiosk");
    let got = notifications(&socket, Duration::from_secs(3));
    assert_ready_then_watchdog("huddle-kiosk", &got, &mut child);
}

/// The syscalls `SystemCallFilter=` lines allow, as `systemd-analyze
/// syscall-filter` expands their groups, less `@clock` under
/// `ProtectClock=yes` (which denies it on top of any filter).
fn allowed_syscalls(name: &str) -> std::collections::BTreeSet<String> {
    fn expand(group: &str, into: &mut std::collections::BTreeSet<String>) {
        let out = Command::new(require("systemd-analyze", "systemd"))
            .args(["syscall-filter", group])
            .output()
            .expect("run systemd-analyze syscall-filter");
        assert!(
            out.status.success(),
            "systemd-analyze syscall-filter {group}"
        );
        for line in String::from_utf8_lossy(&out.stdout).lines().skip(1) {
            let word = line.trim();
            if word.is_empty() || word.starts_with('#') {
                continue;
            }
            if word.starts_with('@') {
                expand(word, into);
            } else {
                into.insert(word.to_owned());
            }
        }
    }
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("systemd/{name}.service")),
    )
    .unwrap();
    let mut allowed = std::collections::BTreeSet::new();
    for value in text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("SystemCallFilter="))
    {
        assert!(
            !value.starts_with('~'),
            "{name}: a deny list is not read here"
        );
        for word in value.split_whitespace() {
            if word.starts_with('@') {
                expand(word, &mut allowed);
            } else {
                allowed.insert(word.to_owned());
            }
        }
    }
    if unit_setting(name, "ProtectClock").as_deref() == Some("yes") {
        let mut clock = std::collections::BTreeSet::new();
        expand("@clock", &mut clock);
        allowed.retain(|s| !clock.contains(s));
    }
    allowed
}

/// The kiosk's store path under strace: every system call it makes while
/// committing a huddle's events (and reading the clock's sync state for
/// each) must pass its unit's seccomp filter, or systemd kills it with
/// SIGSYS at its first event on the board. The UI's own calls (DRM,
/// libinput) are checked by the Pi rig (tests/pi), under the real unit.
#[test]
fn the_kiosk_store_s_system_calls_pass_its_unit_s_filter() {
    let strace = require("strace", "strace");
    let allowed = allowed_syscalls("huddle-kiosk");
    assert!(
        allowed.contains("openat") && allowed.len() > 100,
        "the filter expanded to too little: {allowed:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace");
    let out = Command::new(strace)
        .args(["-f", "-qq", "-o"])
        .arg(&trace)
        .arg(KIOSK)
        .args([
            "simulate",
            "--boards",
            "1",
            "--huddles",
            "1",
            "--timeout",
            "1",
        ])
        .arg("--data-dir")
        .arg(dir.path().join("boards"))
        .env(
            "HUDDLE_MQTT_URL",
            format!("mqtt://127.0.0.1:{}", crate::support::free_port()),
        )
        .env("RUST_LOG", "error")
        .output()
        .expect("run huddle-kiosk simulate under strace");
    let text = std::fs::read_to_string(&trace).expect("strace wrote no trace");
    let mut made = std::collections::BTreeSet::new();
    for line in text.lines() {
        // "PID name(args) = result"; "<... name resumed>" repeats a call.
        let call = line.split_once(' ').map_or(line, |(_, rest)| rest).trim();
        if let Some((name, _)) = call.split_once('(') {
            if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                made.insert(name.to_owned());
            }
        }
    }
    assert!(
        made.contains("adjtimex") || made.contains("clock_adjtime"),
        "the simulated board committed no event (no clock check in the trace); \
         its output: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let denied: Vec<_> = made.difference(&allowed).collect();
    assert!(
        denied.is_empty(),
        "huddle-kiosk makes system calls its unit's SystemCallFilter= denies \
         (seccomp would kill it with SIGSYS): {denied:?}"
    );
}
