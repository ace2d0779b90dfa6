//! The ACL and the credentials `setup.sh` writes, checked by MQTT clients
//! configured as the product's: each board reads and writes only its own
//! topics under its own area, a dashboard reads status only, one board's
//! credentials take no other client id over, persistent sessions keep
//! what a client missed, and a wrong password or CA is refused.

use super::*;

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
