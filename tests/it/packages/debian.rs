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
//!   the aggregator's makes a random dashboard token once (its part run
//!   here into scratch roots: 64 hex digits, 0640 to that group, never
//!   replaced), which the packaged binary loads as `web.token_file`;
//! - the unit, the binary path and the config path agree, and the shipped
//!   config as installed loads with the packaged binary (the aggregator's
//!   `--check` finds the roster beside it in /etc/huddle).
//!
//! CI time: no second release build. The test packages the binaries that
//! `cargo test` has already built (debug, in place of the release ones:
//! what is checked is the packaging, not the code) by linking them into a
//! scratch target folder and running `cargo deb --no-build` there, with
//! `--fast` compression. Release packages are built as the README says.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::require;

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

    dashboard_token_is_made_once(&postinst, &root, scratch.path());
    setup_issues_the_dashboards_certificate(&root, scratch.path());
}

/// `openssl verify -CAfile CA -purpose sslserver ARGS... CERT`: passed?
fn verifies(ca: &Path, cert: &Path, args: &[&str]) -> bool {
    Command::new(require("openssl", "openssl"))
        .arg("verify")
        .arg("-CAfile")
        .arg(ca)
        .args(["-purpose", "sslserver"])
        .args(args)
        .arg(cert)
        .output()
        .unwrap()
        .status
        .success()
}

/// The packaged `setup.sh --web-host` issues the dashboard's HTTPS
/// certificate from the site CA for those names only, says how to use
/// it, keeps it on later runs and issues it again (same key) when the
/// names change; the packaged binary loads it as `[web]` cert_file and
/// key_file.
fn setup_issues_the_dashboards_certificate(root: &Path, scratch: &Path) {
    use std::os::unix::fs::PermissionsExt;

    require("mosquitto_passwd", "mosquitto");
    let out = scratch.join("broker");
    let setup = |args: &[&str]| {
        Command::new("bash")
            .arg(root.join("usr/share/huddle-aggregator/mosquitto/setup.sh"))
            .args(["--site", "plant1", "--host", "broker.plant1.example"])
            .arg("--out")
            .arg(&out)
            .args(args)
            .output()
            .unwrap()
    };
    let first = setup(&[
        "line1=assembly",
        "--web-host",
        "dash.plant1.example",
        "--web-host",
        "10.1.2.3",
    ]);
    assert!(
        first.status.success(),
        "setup.sh --web-host failed: {}",
        String::from_utf8_lossy(&first.stderr)
    );
    let said = String::from_utf8_lossy(&first.stdout).into_owned();
    let (ca, crt, key) = (out.join("ca.crt"), out.join("web.crt"), out.join("web.key"));
    for line in [
        "cert_file = \"/etc/huddle/dashboard.crt\"",
        "key_file = \"/etc/huddle/dashboard.key\"",
        &format!("{} /etc/huddle/dashboard.crt", crt.display()),
        &format!("{} /etc/huddle/dashboard.key", key.display()),
    ] {
        assert!(said.contains(line), "setup.sh must print `{line}`:\n{said}");
    }
    // Signed by the site CA (the broker's), for the names given and no
    // other (not the broker's --host), for a TLS server.
    assert!(verifies(
        &ca,
        &crt,
        &["-verify_hostname", "dash.plant1.example"]
    ));
    assert!(verifies(&ca, &crt, &["-verify_ip", "10.1.2.3"]));
    for other in ["broker.plant1.example", "localhost", "other.example"] {
        assert!(
            !verifies(&ca, &crt, &["-verify_hostname", other]),
            "the dashboard's certificate must not name {other}"
        );
    }
    assert!(
        !verifies(&crt, &crt, &[]),
        "web.crt must be signed by the CA, not by itself"
    );
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "mode of {}", key.display());
    // A key every browser takes (not Ed25519, which rustls would serve).
    let dump = text(run(Command::new(require("openssl", "openssl"))
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&crt)));
    assert!(
        (dump.contains("id-ecPublicKey") && dump.contains("P-256"))
            || dump.contains("rsaEncryption"),
        "the dashboard's key must be ECDSA P-256 or RSA:\n{dump}"
    );

    // The packaged aggregator takes them as [web] cert_file and key_file.
    let shipped = std::fs::read_to_string(root.join("etc/huddle/aggregator.toml")).unwrap();
    let config = root.join("etc/huddle/aggregator-https.toml");
    std::fs::write(
        &config,
        shipped.replacen(
            "\n[web]\n",
            &format!(
                "\n[web]\ncert_file = {:?}\nkey_file = {:?}\n",
                crt.display().to_string(),
                key.display().to_string()
            ),
            1,
        ),
    )
    .unwrap();
    let check = run(Command::new(root.join("usr/bin/huddle-aggregator"))
        .arg("--config")
        .arg(&config)
        .arg("--check"));
    assert!(text(check).contains(": ok"));

    // A later run without --web-host, or with the same names, keeps it;
    // other names issue it again with the same key.
    let (cert_before, key_before) = (std::fs::read(&crt).unwrap(), std::fs::read(&key).unwrap());
    let again = setup(&["line2=paint"]);
    assert!(again.status.success());
    let same = [
        "--web-host",
        "dash.plant1.example",
        "--web-host",
        "10.1.2.3",
    ];
    assert!(setup(&same).status.success());
    assert_eq!(
        std::fs::read(&crt).unwrap(),
        cert_before,
        "web.crt replaced"
    );
    assert!(!String::from_utf8_lossy(&again.stdout).contains("cert_file"));
    assert!(setup(&["--web-host", "dash2.plant1.example"])
        .status
        .success());
    assert_ne!(
        std::fs::read(&crt).unwrap(),
        cert_before,
        "web.crt not issued again"
    );
    assert_eq!(std::fs::read(&key).unwrap(), key_before, "web.key replaced");
    assert!(verifies(
        &ca,
        &crt,
        &["-verify_hostname", "dash2.plant1.example"]
    ));
    assert!(!verifies(
        &ca,
        &crt,
        &["-verify_hostname", "dash.plant1.example"]
    ));

    // A name that is neither DNS nor IP stops the run.
    let bad = setup(&["--web-host", "dash board"]);
    assert_eq!(bad.status.code(), Some(2), "--web-host 'dash board'");
}

/// The part of the aggregator's postinst between its `dashboard-token:`
/// markers, run on its own into scratch roots (`$DPKG_ROOT`), with a
/// `getent` that knows the group and a `chgrp` that logs (the test's
/// system has no `huddle-aggregator` group); then the packaged binary
/// loads the token with `web.token_file`.
fn dashboard_token_is_made_once(postinst: &str, root: &Path, scratch: &Path) {
    use std::os::unix::fs::PermissionsExt;

    let begin = postinst
        .find("# dashboard-token: begin")
        .unwrap_or_else(|| {
            panic!("the aggregator's postinst makes no dashboard token:\n{postinst}")
        });
    let end = postinst[begin..]
        .find("# dashboard-token: end")
        .map(|e| begin + e)
        .expect("the postinst's dashboard-token part has no end marker");
    let part = &postinst[begin..end];
    assert!(
        postinst.find("systemd-sysusers").unwrap() < begin,
        "the user must exist before the token is given to its group"
    );
    let bin = scratch.join("token-bin");
    std::fs::create_dir_all(&bin).unwrap();
    for (name, body) in [
        ("getent", "[ \"$1 $2\" = \"group huddle-aggregator\" ]\n"),
        ("chgrp", "echo \"$*\" >>\"$CHGRP_LOG\"\n"),
    ] {
        let f = bin.join(name);
        std::fs::write(&f, format!("#!/bin/sh\n{body}")).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let log = scratch.join("chgrp.log");
    let make = |sysroot: &Path| {
        run(Command::new("sh")
            .arg("-ec")
            .arg(part)
            .env("DPKG_ROOT", sysroot)
            .env("PATH", &path)
            .env("CHGRP_LOG", &log));
        sysroot.join("etc/huddle/dashboard.token")
    };
    let read = |f: &Path| std::fs::read_to_string(f).unwrap();

    let first = scratch.join("token-root-1");
    let token = make(&first);
    let made = read(&token);
    let hex = made.trim_end_matches('\n');
    assert!(
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "the token must be 64 hex digits on one line: {made:?}"
    );
    let mode = std::fs::metadata(&token).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640, "mode of {}", token.display());
    let chgrp = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        chgrp
            .lines()
            .any(|l| l.starts_with("huddle-aggregator ") && l.contains("dashboard.token")),
        "the token must be given to the group huddle-aggregator; chgrp was run with: {chgrp:?}"
    );
    let left: Vec<_> = std::fs::read_dir(token.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        ["dashboard.token"],
        "the postinst leaves nothing else"
    );

    // Never replaced: not on the next configure, nor a token of the site's own.
    make(&first);
    assert_eq!(read(&token), made, "a second configure replaced the token");
    std::fs::write(&token, "the-sites-own-token-0123456789\n").unwrap();
    make(&first);
    assert_eq!(read(&token), "the-sites-own-token-0123456789\n");
    // Random: another install makes another token.
    let other = read(&make(&scratch.join("token-root-2")));
    assert_ne!(other, made, "two installs made the same token");

    // The packaged binary reads it with token_file (the demo token's
    // line replaced), and no longer warns of a demo token.
    let shipped = read(&root.join("etc/huddle/aggregator.toml"));
    let demo = "token = \"demo-dashboard-token-change-me\"";
    assert!(
        shipped.contains(demo),
        "the shipped [web] token changed: update this test"
    );
    std::fs::write(&token, &made).unwrap();
    let config = root.join("etc/huddle/aggregator-token-file.toml");
    std::fs::write(
        &config,
        shipped.replace(
            demo,
            &format!("token_file = {:?}", token.display().to_string()),
        ),
    )
    .unwrap();
    let out = run(Command::new(root.join("usr/bin/huddle-aggregator"))
        .current_dir("/")
        .arg("--config")
        .arg(&config)
        .arg("--check"));
    let warning = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !warning.contains("web.token"),
        "the token file was not taken as the token: {warning}"
    );
    assert!(text(out).contains(": ok"));
}
