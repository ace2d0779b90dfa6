//! Delivery under faults, end to end with the real binaries: simulated
//! kiosks (`huddle-kiosk simulate`, the real core, outbox and publisher),
//! a real Mosquitto started here with its default queue limits, and the
//! real `huddle-aggregator`. After each run the aggregator's export must
//! hold exactly the kiosks' events: no gap, no duplicate, same content.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{sigkill, Mosquitto, Sub};
use huddle_board::aggregator::coaching::Report;
use huddle_board::wire::event::Envelope;
use huddle_board::wire::topic::SiteTopics;

const KIOSK: &str = env!("CARGO_BIN_EXE_huddle-kiosk");
const AGGREGATOR: &str = env!("CARGO_BIN_EXE_huddle-aggregator");

struct Site {
    dir: tempfile::TempDir,
    broker: Mosquitto,
    aggregator: Option<Child>,
}

impl Site {
    fn new() -> Site {
        let broker = Mosquitto::start();
        let dir = tempfile::tempdir().unwrap();
        let agg = include_str!("../../../config/aggregator.toml");
        // No roster file here: this test is about events.
        let agg: String = agg
            .lines()
            .filter(|l| !l.trim_start().starts_with("file"))
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(dir.path().join("aggregator.toml"), agg).unwrap();
        let kiosk = include_str!("../../../config/kiosk.toml").to_owned();
        let kiosk = if kiosk.contains("[delivery]") {
            kiosk.replace("ack_timeout_s = 10", "ack_timeout_s = 2")
        } else {
            format!("{kiosk}\n[delivery]\nack_timeout_s = 2\n")
        };
        std::fs::write(dir.path().join("kiosk.toml"), kiosk).unwrap();
        Site {
            dir,
            broker,
            aggregator: None,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn start_aggregator(&mut self) {
        let child = Command::new(AGGREGATOR)
            .args(["--config", self.path("aggregator.toml").to_str().unwrap()])
            .env("HUDDLE_DATA_DIR", self.path("agg"))
            .env("HUDDLE_MQTT_URL", self.broker.url())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start huddle-aggregator");
        self.aggregator = Some(child);
    }

    fn kill_aggregator(&mut self) {
        if let Some(mut c) = self.aggregator.take() {
            sigkill(&mut c);
        }
    }

    fn simulate_cmd(&self, boards: usize, huddles: usize, rate: f64) -> Command {
        self.simulate_in("kiosks", boards, huddles, rate)
    }

    /// `huddle-kiosk simulate` with its boards' files in `data` (a folder
    /// of the site's temp dir).
    fn simulate_in(&self, data: &str, boards: usize, huddles: usize, rate: f64) -> Command {
        let mut c = Command::new(KIOSK);
        c.args([
            "--config",
            self.path("kiosk.toml").to_str().unwrap(),
            "simulate",
        ])
        .args([
            "--boards",
            &boards.to_string(),
            "--huddles",
            &huddles.to_string(),
        ])
        .args(["--rate", &rate.to_string(), "--timeout", "90"])
        .args(["--data-dir", self.path(data).to_str().unwrap()])
        .env("HUDDLE_MQTT_URL", self.broker.url())
        .env("RUST_LOG", "warn");
        c
    }

    fn simulate(&self, boards: usize, huddles: usize) -> Output {
        let out = self
            .simulate_cmd(boards, huddles, 0.0)
            .output()
            .expect("run huddle-kiosk simulate");
        assert!(
            out.status.success(),
            "simulate failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Every event the boards' files in `data` hold.
    fn envelopes_in(&self, data: &str) -> Vec<Envelope> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(self.path(data)).unwrap() {
            let dir = entry.unwrap().path();
            let board = dir.file_name().unwrap().to_str().unwrap().to_owned();
            let store = huddle_board::kiosk::store::Store::open(
                &dir.join(format!("kiosk-{board}.db")),
                &board,
            )
            .unwrap();
            for line in store.events_since(0).unwrap() {
                out.push(serde_json::from_str(&line).unwrap());
            }
        }
        out
    }

    /// The ids of every event the boards' files in `data` hold.
    fn ids_in(&self, data: &str) -> BTreeSet<String> {
        self.envelopes_in(data)
            .iter()
            .map(|e| e.id.to_string())
            .collect()
    }

    /// The ids in the aggregator's export; each appears once.
    fn exported_ids(&self) -> BTreeSet<String> {
        let mut ids = BTreeSet::new();
        for (board, seq, id, _, _) in self.exported() {
            assert!(ids.insert(id), "{board}/{seq} exported twice");
        }
        ids
    }

    /// Every event of every simulated kiosk, by (board, seq).
    fn kiosk_events(&self) -> BTreeMap<(String, u64), Envelope> {
        self.envelopes_in("kiosks")
            .into_iter()
            .map(|e| ((e.board.clone(), e.seq), e))
            .collect()
    }

    /// Every event the aggregator stored, from its CSV export.
    fn exported(&self) -> Vec<(String, u64, String, String, serde_json::Value)> {
        let out = Command::new(AGGREGATOR)
            .args([
                "export",
                "--config",
                self.path("aggregator.toml").to_str().unwrap(),
            ])
            .args(["--what", "events", "--format", "csv"])
            .env("HUDDLE_DATA_DIR", self.path("agg"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "export failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut reader = csv::Reader::from_reader(out.stdout.as_slice());
        reader
            .records()
            .map(|r| {
                let r = r.unwrap();
                (
                    r[0].to_owned(),
                    r[1].parse().unwrap(),
                    r[2].to_owned(),
                    r[4].to_owned(),
                    serde_json::from_str(&r[5]).unwrap(),
                )
            })
            .collect()
    }

    /// The export holds exactly the kiosks' events.
    fn assert_exactly_once(&self) {
        let kiosks = self.kiosk_events();
        assert!(!kiosks.is_empty(), "the kiosks recorded nothing");
        let exported = self.exported();
        let mut seen = BTreeMap::new();
        for (board, seq, id, kind, data) in &exported {
            assert!(
                seen.insert((board.clone(), *seq), ()).is_none(),
                "duplicate {board}/{seq}"
            );
            let e = kiosks
                .get(&(board.clone(), *seq))
                .unwrap_or_else(|| panic!("{board}/{seq} was never written"));
            assert_eq!(
                (&e.id.to_string(), &e.kind, &e.data),
                (id, kind, data),
                "{board}/{seq} differs"
            );
        }
        let missing: Vec<_> = kiosks
            .keys()
            .filter(|k| !seen.contains_key(*k))
            .take(10)
            .collect();
        assert!(
            missing.is_empty(),
            "{} events never arrived, e.g. {missing:?}",
            kiosks.len() - seen.len()
        );
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.kill_aggregator();
    }
}

/// Prints `BOARD LAST ACKED` lines: all fully acked.
fn assert_all_acked(out: &Output, boards: usize) {
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), boards, "{text}");
    for l in lines {
        let f: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(f[1], f[2], "not fully acked: {l}");
    }
}

fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn three_boards_five_huddles_arrive_exactly_once_and_no_badge_number_leaks() {
    let mut site = Site::new();
    let all = Sub::start(site.broker.port, "#", site.dir.path());
    site.start_aggregator();
    let out = site.simulate(3, 5);
    assert_all_acked(&out, 3);
    site.assert_exactly_once();
    // Nothing on any topic carries a badge number of the roster.
    let seen = all.text();
    assert!(
        seen.contains("attendance.tapped"),
        "the subscriber saw no events"
    );
    for number in [
        "1001", "1002", "1003", "1004", "1005", "1006", "2001", "3001",
    ] {
        for pattern in [
            format!("\"{number}\""),
            format!(":{number},"),
            format!(":{number}}}"),
        ] {
            assert!(
                !seen.contains(&pattern),
                "badge number {number} in clear on the wire"
            );
        }
    }
}

#[test]
fn kiosks_killed_at_random_moments_lose_nothing() {
    let mut site = Site::new();
    site.start_aggregator();
    let mut rng = 0x2545_f491_u64;
    // Each run asks for 3 more huddles than the last, at a pace (40 actions
    // a second) that keeps it busy for about 2 s, so every kill lands mid-run.
    for run in 0..6 {
        let mut child = site
            .simulate_cmd(3, 3 * (run + 1), 40.0)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(300 + rng % 900));
        assert!(
            child.try_wait().unwrap().is_none(),
            "the simulator ended before it was killed"
        );
        sigkill(&mut child);
    }
    let out = site.simulate(3, 21);
    assert_all_acked(&out, 3);
    site.assert_exactly_once();
}

#[test]
fn the_broker_restarted_without_persistence_twice_loses_nothing() {
    let mut site = Site::new();
    site.start_aggregator();
    let child = site
        .simulate_cmd(3, 8, 100.0)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(1200));
        site.broker.kill();
        std::thread::sleep(Duration::from_millis(700));
        site.broker.restart();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "simulate: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_all_acked(&out, 3);
    site.assert_exactly_once();
}

#[test]
fn the_aggregator_killed_mid_ingest_loses_nothing_and_acks_converge() {
    let mut site = Site::new();
    site.start_aggregator();
    let child = site
        .simulate_cmd(3, 8, 150.0)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    for i in 0..3 {
        std::thread::sleep(Duration::from_millis(700 + 300 * i));
        site.kill_aggregator();
        std::thread::sleep(Duration::from_millis(400));
        site.start_aggregator();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "simulate: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_all_acked(&out, 3);
    assert!(wait_until(Duration::from_secs(10), || site
        .exported()
        .len()
        == site.kiosk_events().len()));
    site.assert_exactly_once();
}

/// Issue 5 end to end: observations made through the real kiosk flow at
/// simulated boards reach the aggregator's retained coaching report and
/// its observations export.
#[test]
fn observations_at_simulated_kiosks_reach_the_coaching_report_and_export() {
    let mut site = Site::new();
    site.start_aggregator();
    let out = site.simulate(2, 14);
    assert_all_acked(&out, 2);
    let recorded: Vec<Envelope> = site
        .kiosk_events()
        .into_values()
        .filter(|e| e.kind == "observation.recorded")
        .collect();
    assert!(
        !recorded.is_empty(),
        "the simulator made no observation in 2 x 14 huddles"
    );
    let ids: BTreeSet<String> = recorded
        .iter()
        .map(|e| e.data["observation_id"].as_str().unwrap().to_owned())
        .collect();
    let learners: BTreeSet<String> = recorded
        .iter()
        .map(|e| e.data["learner"].as_str().unwrap().to_owned())
        .collect();

    // The export holds exactly these observations.
    let export = Command::new(AGGREGATOR)
        .args([
            "export",
            "--config",
            site.path("aggregator.toml").to_str().unwrap(),
        ])
        .args(["--what", "observations", "--format", "csv"])
        .env("HUDDLE_DATA_DIR", site.path("agg"))
        .output()
        .unwrap();
    assert!(
        export.status.success(),
        "export failed: {}",
        String::from_utf8_lossy(&export.stderr)
    );
    let mut reader = csv::Reader::from_reader(export.stdout.as_slice());
    let column = reader
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "observation_id")
        .expect("an observation_id column");
    let exported: BTreeSet<String> = reader
        .records()
        .map(|r| r.unwrap()[column].to_owned())
        .collect();
    assert_eq!(exported, ids, "the export holds the kiosks' observations");

    // The retained report names every learner as observed.
    let sub = crate::support::require("mosquitto_sub", "mosquitto-clients");
    let topic = SiteTopics::new("plant1").coaching();
    let mut last = String::new();
    let seen = wait_until(Duration::from_secs(30), || {
        let got = Command::new(&sub)
            .args(["-h", "127.0.0.1", "-p", &site.broker.port.to_string()])
            .args(["-t", &topic, "-C", "1", "-W", "3"])
            .output()
            .unwrap();
        last = String::from_utf8_lossy(&got.stdout).into_owned();
        let Ok(report) = serde_json::from_str::<Report>(last.trim()) else {
            return false;
        };
        learners.iter().all(|l| {
            report
                .people
                .iter()
                .any(|p| &p.id == l && p.last_observed.is_some())
        })
    });
    assert!(
        seen,
        "the retained coaching report does not show every learner ({learners:?}) as observed:\n{last}"
    );
}

/// Runs `huddle-kiosk simulate` to the end and checks every board was
/// fully acknowledged.
fn run_to_acked(mut cmd: Command, boards: usize) {
    let out = cmd.output().expect("run huddle-kiosk simulate");
    assert!(
        out.status.success(),
        "simulate failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_all_acked(&out, boards);
}

fn assert_all_in(written: &BTreeSet<String>, exported: &BTreeSet<String>, what: &str) {
    let missing: Vec<_> = written.difference(exported).take(5).collect();
    assert!(
        missing.is_empty(),
        "{what}: {} of {} events never reached the aggregator, e.g. {missing:?}",
        written.difference(exported).count(),
        written.len()
    );
}

#[test]
fn a_reflashed_restored_or_doubled_board_loses_nothing() {
    let mut site = Site::new();
    let alerts = Sub::start(
        site.broker.port,
        &SiteTopics::new("plant1").alert("#"),
        site.dir.path(),
    );
    let statuses = Sub::start(
        site.broker.port,
        "huddle/v1/plant1/+/+/status",
        site.dir.path(),
    );
    site.start_aggregator();
    run_to_acked(site.simulate_in("kiosks", 2, 3, 0.0), 2);
    let mut written = site.ids_in("kiosks");
    assert!(!statuses.text().contains("replaced_at"));

    // 1. Reflashed: the boards' files are gone; one more huddle each.
    std::fs::remove_dir_all(site.path("kiosks")).unwrap();
    run_to_acked(site.simulate_in("kiosks", 2, 1, 0.0), 2);
    let reflashed = site.ids_in("kiosks");
    assert_all_in(&reflashed, &site.exported_ids(), "after a reflash");
    assert!(
        wait_until(Duration::from_secs(10), || statuses
            .text()
            .contains("\"replaced_at\"")),
        "the boards' status does not say they were replaced"
    );
    written.extend(reflashed);

    // 2. Restored from an older copy: the copy is behind what the
    // aggregator stored for its incarnation.
    let copy = site.path("copy");
    let status = Command::new("cp")
        .arg("-a")
        .arg(site.path("kiosks"))
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    // (`--huddles` counts across restarts: 2 is one more.)
    run_to_acked(site.simulate_in("kiosks", 2, 2, 0.0), 2);
    written.extend(site.ids_in("kiosks"));
    std::fs::remove_dir_all(site.path("kiosks")).unwrap();
    std::fs::rename(&copy, site.path("kiosks")).unwrap();
    run_to_acked(site.simulate_in("kiosks", 2, 2, 0.0), 2);
    let restored = site.ids_in("kiosks");
    assert!(
        restored.difference(&written).count() > 10,
        "the restored copy wrote nothing new"
    );
    assert_all_in(&restored, &site.exported_ids(), "after a restore");
    written.extend(restored);

    // 3. Two boards with one id at once (a spare set up with the same id).
    let (mut a, mut b) = (
        site.simulate_in("kiosks", 2, 3, 40.0),
        site.simulate_in("spare", 2, 2, 40.0),
    );
    let (a, b) = (
        a.stdout(Stdio::piped()).spawn().unwrap(),
        b.stdout(Stdio::piped()).spawn().unwrap(),
    );
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "simulate failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_all_acked(&out, 2);
    }
    written.extend(site.ids_in("kiosks"));
    written.extend(site.ids_in("spare"));
    assert_all_in(&written, &site.exported_ids(), "in all");
    assert!(
        wait_until(Duration::from_secs(10), || alerts
            .text()
            .contains("board_twin")),
        "no alert says two boards claim one id: {}",
        alerts.text()
    );
}

#[test]
fn boards_send_again_what_a_site_file_restored_from_a_backup_lost() {
    let mut site = Site::new();
    site.start_aggregator();
    run_to_acked(site.simulate_in("kiosks", 2, 2, 0.0), 2);

    // The night's backup: the site's file as it stood (the aggregator
    // stopped, so its file and WAL are consistent together).
    site.kill_aggregator();
    let dir = site.dir.path().to_owned();
    let copy = |from: &str, to: &str| {
        let status = Command::new("cp")
            .arg("-a")
            .arg(dir.join(from))
            .arg(dir.join(to))
            .status()
            .unwrap();
        assert!(status.success(), "cp -a {from} {to}");
    };
    copy("agg", "backup");
    site.start_aggregator();
    // A day after the backup: two more huddles, acknowledged.
    run_to_acked(site.simulate_in("kiosks", 2, 4, 0.0), 2);
    let before_restore = site.exported_ids();

    // The site's disk fails; the backup is restored.
    site.kill_aggregator();
    std::fs::remove_dir_all(site.path("agg")).unwrap();
    copy("backup", "agg");
    site.start_aggregator();
    let restored = site.exported_ids();
    assert!(
        before_restore.difference(&restored).count() > 10,
        "the backup holds what came after it: the test restores nothing"
    );
    // The next huddle: the boards must fill the gap, or their acks stop.
    run_to_acked(site.simulate_in("kiosks", 2, 5, 0.0), 2);
    site.assert_exactly_once();
}
