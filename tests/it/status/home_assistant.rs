//! Home Assistant MQTT discovery: the aggregator publishes, retained, one
//! device per board whose sensors read the board's retained status, and
//! the value templates render (with Jinja2, the engine Home Assistant's
//! templates are built on) against real status payloads.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Aggregator, Mosquitto, Sub};
use huddle_board::aggregator::discovery;
use serde_json::{json, Value};

/// Debian's Python with Jinja2 (`python3-jinja2`).
fn python_with_jinja() -> &'static str {
    let python = "/usr/bin/python3";
    let ok = Command::new(python)
        .args(["-c", "import jinja2"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "this test renders Home Assistant templates with Jinja2: run `tests/setup`, or install it with `apt-get install -y python3 python3-jinja2`"
    );
    python
}

/// Renders each (template, value_json) with Jinja2 as Home Assistant does
/// for an MQTT entity (`value_json` bound to the payload).
fn render(cases: &[(String, Value)]) -> Vec<String> {
    const SCRIPT: &str = r#"
import json, sys, jinja2
env = jinja2.Environment(undefined=jinja2.StrictUndefined)
for case in json.load(sys.stdin):
    print(env.from_string(case[0]).render(value_json=case[1]).strip())
"#;
    let mut child = Command::new(python_with_jinja())
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(cases).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "a template does not render: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A status in progress (as the aggregator publishes it) and one with no
/// huddle yet.
fn statuses() -> (Value, Value) {
    let running = json!({
        "board": "line-3", "area": "assembly", "state": "in_progress", "online": true,
        "last_seq": 12, "last_event_at": "2026-11-30T06:46:10.000Z",
        "next_due_at": null,
        "huddle": {
            "huddle_id": "h1", "scheduled_at": "2026-11-30T06:45:00Z",
            "started_at": "2026-11-30T06:45:20Z", "target_s": 900,
            "step": "safety", "step_started_at": "2026-11-30T06:45:20Z",
            "present": 7, "expected": 9, "closed_at": null, "summary": null
        },
        "escalations": [
            { "need_id": "n1", "category": "people", "text": "cover for Ana",
              "escalated_at": "2026-11-30T06:50:00Z", "stale": false }
        ],
        "last_observation_at": null
    });
    let idle = json!({
        "board": "line-4", "area": "assembly", "state": "not_started", "online": false,
        "last_seq": 0, "last_event_at": null, "next_due_at": null, "huddle": null,
        "escalations": [], "last_observation_at": null
    });
    // Both are real BoardLive payloads.
    for v in [&running, &idle] {
        serde_json::from_value::<huddle_board::wire::payload::BoardLive>(v.clone()).unwrap();
    }
    (running, idle)
}

#[test]
fn every_template_renders_against_real_statuses() {
    let (running, idle) = statuses();
    let entities = discovery::board("homeassistant", "plant1", "assembly", "line-3");
    let mut cases = Vec::new();
    for e in &entities {
        for status in [&running, &idle] {
            for key in ["value_template", "json_attributes_template"] {
                if let Some(t) = e.payload[key].as_str() {
                    cases.push((t.to_owned(), status.clone()));
                }
            }
        }
    }
    let got = render(&cases);
    assert_eq!(
        got,
        [
            "in_progress",
            "not_started",
            "7",
            "{\"expected\": 9}",
            "0",
            "{\"expected\": 0}",
            "1",
            "0",
            "ON",
            "OFF"
        ]
    );
}

#[test]
fn with_discovery_on_each_board_appears_retained_and_reads_its_status_topic() {
    crate::support::require("mosquitto_pub", "mosquitto-clients");
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("aggregator.toml"),
        "[site]\nid = \"plant1\"\ntimezone = \"Europe/Berlin\"\nsite_key = \"demo-site-key-change-me\"\n\
         [home_assistant]\ndiscovery = true\n",
    )
    .unwrap();
    let mut agg = Aggregator::start(dir.path(), &broker.url());
    // A board announces itself as a kiosk does: its retained online flag.
    let publish =
        |topic: &str, payload: &str| crate::support::publish_retained(broker.port, topic, payload);
    publish("huddle/v1/plant1/assembly/line-3/online", "true");

    let sub = Sub::start(broker.port, "homeassistant/#", dir.path());
    let deadline = Instant::now() + Duration::from_secs(20);
    let configs: Vec<(String, Value)> = loop {
        agg.assert_running();
        let got: Vec<(String, Value)> = sub
            .text()
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter_map(|(t, p)| Some((t.to_owned(), serde_json::from_str(p).ok()?)))
            .collect();
        if got.len() >= 4 {
            break got;
        }
        assert!(
            Instant::now() < deadline,
            "no discovery messages after 20 s; got {got:?}\n{}",
            agg.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let want = discovery::board("homeassistant", "plant1", "assembly", "line-3");
    for d in &want {
        let (_, payload) = configs
            .iter()
            .find(|(t, _)| *t == d.topic)
            .unwrap_or_else(|| panic!("{} was not published: {configs:?}", d.topic));
        assert_eq!(payload, &d.payload);
        assert_eq!(
            payload["state_topic"],
            "huddle/v1/plant1/assembly/line-3/status"
        );
    }
    // Retained: a Home Assistant that connects later gets them at once.
    let late = Sub::start(broker.port, "homeassistant/#", dir.path());
    let deadline = Instant::now() + Duration::from_secs(5);
    while late.text().lines().count() < 4 {
        assert!(Instant::now() < deadline, "not retained: {}", late.text());
        std::thread::sleep(Duration::from_millis(50));
    }
    // And the status topic they read carries the board.
    let status = Sub::start(
        broker.port,
        "huddle/v1/plant1/assembly/line-3/status",
        dir.path(),
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !status.text().contains("\"board\":\"line-3\"") {
        assert!(Instant::now() < deadline, "no status: {}", status.text());
        std::thread::sleep(Duration::from_millis(50));
    }
}
