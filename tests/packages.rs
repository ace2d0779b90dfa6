//! The Debian packages (`[package.metadata.deb]` in Cargo.toml), built for
//! real with cargo-deb and read back with dpkg-deb:
//!
//! - each holds its binary, its unit, its config under /etc/huddle as
//!   conffiles, its documentation, and (the aggregator) the site broker's
//!   files; the control fields name the package, the host's architecture
//!   and the dependencies;
//! - the maintainer scripts are there, valid shell, and do what the units
//!   expect: the kiosk's postinst makes the `huddle` user (the sysusers
//!   file, run here by the real `systemd-sysusers` into a scratch root) with
//!   every group of the unit's `SupplementaryGroups=`, and enables the unit;
//!   the aggregator's makes the `huddle-aggregator` user the same way, and
//!   both give their config (it holds secrets) to that user's group, 0640;
//! - the unit, the binary path and the config path agree, and the shipped
//!   config as installed loads with the packaged binary (the aggregator's
//!   `--check` finds the roster beside it in /etc/huddle).
//!
//! CI time: no second release build. The test packages the binaries that
//! `cargo test` has already built (debug, in place of the release ones:
//! what is checked is the packaging, not the code) by linking them into a
//! scratch target folder and running `cargo deb --no-build` there, with
//! `--fast` compression. Release packages are built as the README says.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::require;

const KIOSK: &str = env!("CARGO_BIN_EXE_huddle-kiosk");
const AGGREGATOR: &str = env!("CARGO_BIN_EXE_huddle-aggregator");
/// The cargo-deb version .ci/run installs and the README names.
const CARGO_DEB: &str = "3.8.0";

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(out: Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Fails with the install command when cargo-deb is missing.
fn require_cargo_deb() {
    let found = Command::new(env!("CARGO"))
        .args(["deb", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "cargo-deb is missing: install it with `cargo install cargo-deb --version {CARGO_DEB} --locked` (this test builds the real packages)"
    );
}

/// The packages built from the test suite's own binaries: (kiosk, aggregator).
fn build(scratch: &Path) -> (PathBuf, PathBuf) {
    require_cargo_deb();
    let release = scratch.join("target/release");
    std::fs::create_dir_all(&release).unwrap();
    for bin in [KIOSK, AGGREGATOR] {
        let from = Path::new(bin);
        let to = release.join(from.file_name().unwrap());
        // A hard link is instant; a copy when the scratch folder is on
        // another file system.
        if std::fs::hard_link(from, &to).is_err() {
            std::fs::copy(from, &to).unwrap();
        }
    }
    let out = scratch.join("debian");
    for variant in [None, Some("aggregator")] {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["deb", "--no-build", "--fast", "--offline"])
            .arg("--manifest-path")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .arg("--output")
            .arg(&out)
            .env("CARGO_TARGET_DIR", scratch.join("target"));
        if let Some(v) = variant {
            cmd.args(["--variant", v]);
        }
        run(&mut cmd);
    }
    let find = |name: &str| {
        std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{name}_")) && n.ends_with(".deb"))
            })
            .unwrap_or_else(|| panic!("no {name}_*.deb in {}", out.display()))
    };
    (find("huddle-kiosk"), find("huddle-aggregator"))
}

/// `dpkg-deb -c`: path (without the leading `.`) and mode string, files only.
fn contents(deb: &Path) -> Vec<(String, String)> {
    let listing = text(run(Command::new(require("dpkg-deb", "dpkg"))
        .arg("-c")
        .arg(deb)));
    listing
        .lines()
        .filter(|l| l.starts_with('-'))
        .filter_map(|l| {
            let mode = l.split_whitespace().next()?.to_owned();
            let path = l.split_whitespace().last()?.trim_start_matches('.');
            Some((path.to_owned(), mode))
        })
        .collect()
}

fn field(deb: &Path, name: &str) -> String {
    text(run(Command::new(require("dpkg-deb", "dpkg"))
        .args(["-f"])
        .arg(deb)
        .arg(name)))
    .trim()
    .to_owned()
}

/// A control member (`conffiles`, `postinst`, ...), or "" when absent.
fn control_member(deb: &Path, dir: &Path, name: &str) -> String {
    if !dir.exists() {
        run(Command::new(require("dpkg-deb", "dpkg"))
            .arg("-e")
            .arg(deb)
            .arg(dir));
    }
    std::fs::read_to_string(dir.join(name)).unwrap_or_default()
}

fn extract(deb: &Path, dir: &Path) {
    run(Command::new(require("dpkg-deb", "dpkg"))
        .arg("-x")
        .arg(deb)
        .arg(dir));
}

/// The values of `key=` in a unit file (all lines, split on spaces).
fn unit_values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .flat_map(|v| v.split_whitespace().map(str::to_owned))
        .collect()
}

fn host_arch() -> String {
    text(run(
        Command::new(require("dpkg", "dpkg")).arg("--print-architecture")
    ))
    .trim()
    .to_owned()
}

fn assert_has(files: &[(String, String)], path: &str, mode: &str, package: &str) {
    let found = files.iter().find(|(p, _)| p == path);
    match found {
        Some((_, m)) => assert_eq!(m, mode, "{package}: mode of {path}"),
        None => panic!(
            "{package} lacks {path}; it holds:\n{}",
            files
                .iter()
                .map(|(p, m)| format!("{m} {p}"))
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

/// Maintainer scripts: present, `sh -n` clean, every debhelper token replaced.
fn check_scripts(deb: &Path, control: &Path, package: &str) -> String {
    for script in ["postinst", "prerm", "postrm"] {
        let body = control_member(deb, control, script);
        assert!(!body.is_empty(), "{package} has no {script}");
        assert!(
            !body.contains("#DEBHELPER#"),
            "{package}'s {script} keeps the debhelper token"
        );
        run(Command::new("sh").arg("-n").arg(control.join(script)));
        if script != "postinst" {
            assert!(
                body.contains(&format!("{package}.service")),
                "{package}'s {script} must handle its unit:\n{body}"
            );
        }
    }
    control_member(deb, control, "postinst")
}

/// Runs the real systemd-sysusers, as `package`'s postinst runs it, on its
/// packaged sysusers file (from the extracted `root`) into the scratch
/// root `sysroot`; returns the `/etc/passwd` and `/etc/group` it made.
fn make_users(root: &Path, sysroot: &Path, package: &str) -> (String, String) {
    let conf = format!("usr/lib/sysusers.d/{package}.conf");
    std::fs::create_dir_all(sysroot.join("etc")).unwrap();
    std::fs::create_dir_all(sysroot.join("usr/lib/sysusers.d")).unwrap();
    std::fs::copy(root.join(&conf), sysroot.join(&conf)).unwrap();
    run(Command::new(require("systemd-sysusers", "systemd"))
        .arg(format!("--root={}", sysroot.display()))
        .arg(format!("{package}.conf")));
    let read = |f: &str| std::fs::read_to_string(sysroot.join(f)).unwrap();
    (read("etc/passwd"), read("etc/group"))
}

#[test]
fn both_packages_hold_what_the_units_expect() {
    let scratch = tempfile::Builder::new()
        .prefix("packages-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let started = std::time::Instant::now();
    let (kiosk, aggregator) = build(scratch.path());
    println!(
        "built both packages in {:.1} s: {} ({} bytes), {} ({} bytes)",
        started.elapsed().as_secs_f64(),
        kiosk.display(),
        std::fs::metadata(&kiosk).unwrap().len(),
        aggregator.display(),
        std::fs::metadata(&aggregator).unwrap().len()
    );
    let arch = host_arch();

    // The kiosk.
    assert_eq!(field(&kiosk, "Package"), "huddle-kiosk");
    assert_eq!(field(&kiosk, "Architecture"), arch);
    let depends = field(&kiosk, "Depends");
    assert!(
        depends.contains("libc6") && depends.contains("systemd"),
        "huddle-kiosk Depends: {depends}"
    );
    let files = contents(&kiosk);
    for (path, mode) in [
        ("/usr/bin/huddle-kiosk", "-rwxr-xr-x"),
        ("/usr/lib/systemd/system/huddle-kiosk.service", "-rw-r--r--"),
        ("/usr/lib/sysusers.d/huddle-kiosk.conf", "-rw-r--r--"),
        ("/etc/huddle/kiosk.toml", "-rw-r--r--"),
        ("/usr/share/doc/huddle-kiosk/README.md", "-rw-r--r--"),
        ("/usr/share/doc/huddle-kiosk/copyright", "-rw-r--r--"),
    ] {
        assert_has(&files, path, mode, "huddle-kiosk");
    }
    assert!(
        !files.iter().any(|(p, _)| p.contains("aggregator")),
        "the kiosk's package holds nothing of the aggregator"
    );
    let control = scratch.path().join("kiosk-control");
    assert_eq!(
        control_member(&kiosk, &control, "conffiles").trim(),
        "/etc/huddle/kiosk.toml"
    );
    let postinst = check_scripts(&kiosk, &control, "huddle-kiosk");
    for needed in [
        "systemd-sysusers",
        "huddle-kiosk.conf",
        "deb-systemd-helper enable huddle-kiosk.service",
        "chgrp huddle /etc/huddle/kiosk.toml",
    ] {
        assert!(
            postinst.contains(needed),
            "huddle-kiosk's postinst lacks `{needed}`:\n{postinst}"
        );
    }
    assert!(
        postinst.find("systemd-sysusers").unwrap() < postinst.find("chgrp huddle").unwrap(),
        "the user must exist before kiosk.toml is given to its group"
    );

    // The kiosk's unit, user and paths agree with its package.
    let root = scratch.path().join("kiosk-root");
    extract(&kiosk, &root);
    let unit =
        std::fs::read_to_string(root.join("usr/lib/systemd/system/huddle-kiosk.service")).unwrap();
    let exec = unit_values(&unit, "ExecStart");
    assert_eq!(
        exec[..3],
        [
            "/usr/bin/huddle-kiosk",
            "--config",
            "/etc/huddle/kiosk.toml"
        ]
    );
    assert_eq!(unit_values(&unit, "User"), ["huddle"]);
    assert!(unit.contains("Environment=HUDDLE_DATA_DIR=/var/lib/huddle-kiosk"));
    assert_eq!(unit_values(&unit, "StateDirectory"), ["huddle-kiosk"]);
    assert_eq!(unit_values(&unit, "ConfigurationDirectory"), ["huddle"]);
    let (passwd, group) = make_users(&root, &scratch.path().join("sysroot"), "huddle-kiosk");
    assert!(
        passwd
            .lines()
            .any(|l| l.starts_with("huddle:") && l.contains(":/var/lib/huddle-kiosk:")),
        "no huddle user made: {passwd}"
    );
    for g in unit_values(&unit, "SupplementaryGroups") {
        assert!(
            group
                .lines()
                .any(|l| l.starts_with(&format!("{g}:")) && l.ends_with(":huddle")),
            "the unit wants group {g}; sysusers made:\n{group}"
        );
    }
    // The config as installed loads with the packaged binary.
    let hash = text(run(Command::new(root.join("usr/bin/huddle-kiosk"))
        .arg("--config")
        .arg(root.join("etc/huddle/kiosk.toml"))
        .args(["hash-badge", "1001"])));
    assert_eq!(hash.trim().len(), 64, "hash-badge printed: {hash}");

    // The aggregator.
    assert_eq!(field(&aggregator, "Package"), "huddle-aggregator");
    assert_eq!(field(&aggregator, "Architecture"), arch);
    let depends = field(&aggregator, "Depends");
    assert!(
        depends.contains("libc6") && !depends.contains("fontconfig"),
        "huddle-aggregator Depends (no GUI libraries): {depends}"
    );
    assert!(field(&aggregator, "Recommends").contains("mosquitto"));
    let files = contents(&aggregator);
    for (path, mode) in [
        ("/usr/bin/huddle-aggregator", "-rwxr-xr-x"),
        (
            "/usr/lib/systemd/system/huddle-aggregator.service",
            "-rw-r--r--",
        ),
        ("/usr/lib/sysusers.d/huddle-aggregator.conf", "-rw-r--r--"),
        ("/etc/huddle/aggregator.toml", "-rw-r--r--"),
        ("/etc/huddle/roster.csv", "-rw-r--r--"),
        (
            "/usr/share/huddle-aggregator/mosquitto/setup.sh",
            "-rwxr-xr-x",
        ),
        (
            "/usr/share/huddle-aggregator/mosquitto/mosquitto.conf",
            "-rw-r--r--",
        ),
        (
            "/usr/share/huddle-aggregator/mosquitto/acl.template",
            "-rw-r--r--",
        ),
        ("/usr/share/doc/huddle-aggregator/README.md", "-rw-r--r--"),
        ("/usr/share/doc/huddle-aggregator/copyright", "-rw-r--r--"),
        (
            "/usr/share/huddle-aggregator/schemas/board-status.schema.json",
            "-rw-r--r--",
        ),
        (
            "/usr/share/huddle-aggregator/schemas/event.huddle.closed.schema.json",
            "-rw-r--r--",
        ),
    ] {
        assert_has(&files, path, mode, "huddle-aggregator");
    }
    assert!(
        !files.iter().any(|(p, _)| p.contains("kiosk")),
        "the aggregator's package holds nothing of the kiosk"
    );
    let control = scratch.path().join("aggregator-control");
    let mut conffiles: Vec<String> = control_member(&aggregator, &control, "conffiles")
        .lines()
        .map(str::to_owned)
        .collect();
    conffiles.sort();
    assert_eq!(
        conffiles,
        ["/etc/huddle/aggregator.toml", "/etc/huddle/roster.csv"]
    );
    let postinst = check_scripts(&aggregator, &control, "huddle-aggregator");
    for needed in [
        "systemd-sysusers",
        "huddle-aggregator.conf",
        "deb-systemd-helper enable huddle-aggregator.service",
        "/etc/huddle/aggregator.toml",
        "chgrp huddle-aggregator",
        "chmod 0640",
    ] {
        assert!(
            postinst.contains(needed),
            "huddle-aggregator's postinst lacks `{needed}`:\n{postinst}"
        );
    }
    assert!(
        postinst.find("systemd-sysusers").unwrap()
            < postinst.find("chgrp huddle-aggregator").unwrap(),
        "the user must exist before aggregator.toml is given to its group"
    );

    let root = scratch.path().join("aggregator-root");
    extract(&aggregator, &root);
    let unit =
        std::fs::read_to_string(root.join("usr/lib/systemd/system/huddle-aggregator.service"))
            .unwrap();
    assert_eq!(
        unit_values(&unit, "ExecStart"),
        [
            "/usr/bin/huddle-aggregator",
            "--config",
            "/etc/huddle/aggregator.toml"
        ]
    );
    assert!(unit.contains("Environment=HUDDLE_DATA_DIR=/var/lib/huddle-aggregator"));
    assert_eq!(unit_values(&unit, "StateDirectory"), ["huddle-aggregator"]);
    // Its own user, which the config's group can name (a DynamicUser= could
    // be given no group, and the config with its secrets stayed 0644).
    assert_eq!(unit_values(&unit, "User"), ["huddle-aggregator"]);
    assert!(
        !unit.contains("DynamicUser="),
        "the aggregator runs as its packaged user"
    );
    let (passwd, group) = make_users(
        &root,
        &scratch.path().join("aggregator-sysroot"),
        "huddle-aggregator",
    );
    assert!(
        passwd
            .lines()
            .any(|l| l.starts_with("huddle-aggregator:")
                && l.contains(":/var/lib/huddle-aggregator:")),
        "no huddle-aggregator user made: {passwd}"
    );
    assert!(
        group.lines().any(|l| l.starts_with("huddle-aggregator:")),
        "no huddle-aggregator group made: {group}"
    );
    // The installed config finds the installed roster (beside it), from
    // any working directory, as systemd starts it in `/`.
    let out = run(Command::new(root.join("usr/bin/huddle-aggregator"))
        .current_dir("/")
        .arg("--config")
        .arg(root.join("etc/huddle/aggregator.toml"))
        .arg("--check"));
    // The packaged secrets are demo values: --check passes, and says so.
    let warning = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        warning.contains("site.site_key, web.token in ") && warning.contains("demo value"),
        "--check did not warn of the demo secrets: {warning}"
    );
    let check = text(out);
    assert!(check.contains(": ok"), "--check printed: {check}");
    // setup.sh runs from where the package puts it.
    let help = text(run(Command::new("bash")
        .arg(root.join("usr/share/huddle-aggregator/mosquitto/setup.sh"))
        .arg("--help")));
    assert!(help.contains("--site"), "setup.sh --help: {help}");
}
