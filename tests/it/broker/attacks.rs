//! What one board's credentials cannot do to the site, and what the shipped
//! broker keeps through a board's own trouble: a packet over the broker's
//! `max_packet_size` is refused (one at the limit passes), one board's
//! credentials cannot stop the site, and a reflashed or restored board
//! loses nothing.

use super::*;

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
    let legal: usize = include_str!("../../../config/aggregator.toml")
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
            include_str!("../../../config/aggregator.toml"),
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
                    include_str!("../../../config/kiosk.toml"),
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
            include_str!("../../../config/aggregator.toml"),
            "aggregator",
        ),
        (
            &kiosk_config,
            include_str!("../../../config/kiosk.toml"),
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
