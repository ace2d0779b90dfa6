//! `/metrics` against a real Mosquitto and the real `huddle-aggregator`:
//! the token rules of the API, OpenMetrics text that a Prometheus text
//! parser (the `prometheus-parse` crate) reads, and figures that move
//! with a simulated load: events stored, a message rejected with its
//! reason, group commits, boards online, a dashboard page connected.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use huddle_board::wire::topic::BoardTopics;
use prometheus_parse::{Scrape, Value};

use super::end_to_end::{Site, AREA, SITE, TOKEN};
use crate::support::wait_for;

/// One scrape, parsed; also checks the text's OpenMetrics frame.
fn scrape(site: &Site) -> Scrape {
    let r = site.get("/metrics", &format!("Authorization: Bearer {TOKEN}\r\n"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.head
            .to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{}",
        r.head
    );
    assert!(
        r.body.ends_with("# EOF\n"),
        "no `# EOF` at the end:\n{}",
        r.body
    );
    // Every sample belongs to a family with a TYPE line.
    let typed: Vec<&str> = r
        .body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    for line in r.body.lines().filter(|l| !l.starts_with('#')) {
        let name = line.split(['{', ' ']).next().unwrap();
        assert!(
            typed.iter().any(|t| name.starts_with(t)),
            "the sample {line:?} has no TYPE line:\n{}",
            r.body
        );
    }
    Scrape::parse(r.body.lines().map(|l| Ok(l.to_owned()))).expect("the metrics parse")
}

/// The value of `metric` with `labels` (all of them must match).
fn value(s: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    s.samples
        .iter()
        .find(|x| x.metric == metric && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match &x.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(b) => b.last().map_or(0.0, |c| c.count),
            Value::Summary(_) => f64::NAN,
        })
}

#[test]
fn metrics_need_the_token_parse_and_move_with_the_load() {
    let mut site = Site::start_with("");
    let denied = site.get("/metrics", "");
    assert_eq!(
        denied.status, 401,
        "/metrics without the token: {}",
        denied.body
    );

    site.online(&["line1", "line2"]);
    let before = scrape(&site);
    let stored = value(&before, "huddle_events_stored_total", &[]).expect("events stored");
    let commits = value(&before, "huddle_commit_seconds_count", &[]).expect("commit count");
    assert!(
        stored >= 1.0 && commits >= 1.0,
        "stored {stored}, commits {commits}"
    );

    // Load: ten events, one message that is not an event.
    for i in 0..10 {
        site.boards.tap("line2", &format!("p{i:02}"));
    }
    let t = BoardTopics::new(SITE, AREA, "line2");
    site.boards
        .publish(t.event("attendance.tapped"), false, b"not json".to_vec());
    // A dashboard page connected (its event stream open).
    let mut page = TcpStream::connect(("127.0.0.1", site.web)).unwrap();
    write!(
        page,
        "GET /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
    )
    .unwrap();

    let after = wait_for("the load in /metrics", Duration::from_secs(30), || {
        let s = scrape(&site);
        let moved = value(&s, "huddle_events_stored_total", &[])? >= stored + 10.0
            && value(
                &s,
                "huddle_events_rejected_total",
                &[("reason", "malformed_json")],
            )? >= 1.0
            && value(&s, "huddle_dashboard_streams", &[])? == 1.0;
        moved.then_some(s)
    });
    assert!(value(&after, "huddle_commit_seconds_count", &[]).unwrap() > commits);
    assert_eq!(value(&after, "huddle_boards_online", &[]), Some(2.0));
    assert_eq!(
        value(
            &after,
            "huddle_board_unacked_events",
            &[("board", "line2"), ("area", AREA)]
        ),
        Some(0.0),
        "every event of line2 is acknowledged"
    );
    assert!(
        value(
            &after,
            "huddle_board_since_event_seconds",
            &[("board", "line2")]
        )
        .is_some(),
        "line2's silence"
    );
    assert_eq!(
        value(&after, "huddle_alerts_open", &[("kind", "board_offline")]),
        Some(0.0)
    );

    drop(page);
    wait_for(
        "the page's stream closed in /metrics",
        Duration::from_secs(30),
        || (value(&scrape(&site), "huddle_dashboard_streams", &[]) == Some(0.0)).then_some(()),
    );
    site.aggregator.assert_running();
}
