//! The real `huddle-aggregator` binary against a real Mosquitto:
//! - a board's events with a gap (1, 2, 4, then 3): the retained ack goes
//!   to 2, stays there while 3 is missing, then goes to 4;
//! - the bad inputs of the issue (malformed JSON, wrong board in the
//!   topic, oversize, unknown kind, seq 0, binary garbage, other schema,
//!   kind mismatch) and 1,200 deterministic random payloads: the aggregator
//!   keeps running, counts each by reason on its stats topic, stores none
//!   of them (export), and the ack does not move;
//! - the demo board's roster appears retained, with hashes only;
//! - the contiguous ack survives a restart, and a duplicate at or below it
//!   makes the aggregator publish it again.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::{wait_for, Aggregator, Mosquitto, Publisher, Sub};
use chrono::Utc;
use huddle_board::aggregator::{validate, Stats};
use huddle_board::domain::hash_badge;
use huddle_board::kiosk::config::KioskConfig;
use huddle_board::wire::event::{Envelope, Event, NeedRef};
use huddle_board::wire::payload::{Ack, BoardLive, RosterMessage};
use huddle_board::wire::topic::{BoardTopics, SiteTopics};

const AGGREGATOR: &str = env!("CARGO_BIN_EXE_huddle-aggregator");
const SITE_KEY: &str = "demo-site-key-change-me";
const LIMIT: usize = 64 * 1024;

/// The acks received, in order.
fn acks(sub: &Sub) -> Vec<u64> {
    sub.payloads::<Ack>().into_iter().map(|a| a.seq).collect()
}

fn envelope(board: &str, seq: u64) -> Envelope {
    Envelope::new(
        board,
        seq,
        Utc::now(),
        true,
        &Event::NeedClosed(NeedRef {
            need_id: format!("n{seq}"),
            by: Some("p01".into()),
        }),
    )
}

/// xorshift64: deterministic garbage without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Random payloads that can never be a valid envelope: random bytes,
/// truncated envelopes, random JSON values and objects.
fn random_payloads(count: usize, template: &[u8]) -> Vec<Vec<u8>> {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    (0..count)
        .map(|_| match rng.below(4) {
            0 => {
                let len = rng.below(300) as usize;
                (0..len).map(|_| rng.next() as u8).collect()
            }
            1 => template[..rng.below(template.len() as u64) as usize].to_vec(),
            2 => {
                let v = match rng.below(5) {
                    0 => serde_json::json!(rng.next()),
                    1 => serde_json::json!(null),
                    2 => serde_json::json!([rng.next(), "x", {"schema": 1}]),
                    3 => serde_json::json!(format!("s{}", rng.next())),
                    _ => serde_json::json!(rng.below(2) == 0),
                };
                serde_json::to_vec(&v).unwrap()
            }
            _ => {
                let mut v: serde_json::Value = serde_json::from_slice(template).unwrap();
                let keys = [
                    "schema",
                    "id",
                    "board",
                    "seq",
                    "at",
                    "kind",
                    "data",
                    "clock_synced",
                ];
                let key = keys[rng.below(keys.len() as u64) as usize];
                match rng.below(3) {
                    0 => {
                        v.as_object_mut().unwrap().remove(key);
                    }
                    1 => v[key] = serde_json::json!([rng.next()]),
                    _ => v[format!("x{}", rng.below(1000))] = serde_json::json!(1),
                }
                serde_json::to_vec(&v).unwrap()
            }
        })
        .collect()
}

fn export(dir: &Path, broker: &str) -> Vec<(String, u64, String)> {
    let out = Command::new(AGGREGATOR)
        .arg("--config")
        .arg(dir.join("aggregator.toml"))
        .args(["export", "--what", "events", "--format", "csv"])
        .env("HUDDLE_DATA_DIR", dir.join("data"))
        .env("HUDDLE_MQTT_URL", broker)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "export failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut reader = csv::Reader::from_reader(out.stdout.as_slice());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        ["board", "seq", "id", "at", "kind", "data", "incarnation"]
    );
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            let data: serde_json::Value = serde_json::from_str(&r[5]).expect("data is JSON");
            assert!(data.is_object());
            (r[0].to_owned(), r[1].parse().unwrap(), r[2].to_owned())
        })
        .collect()
}

fn total(stats: &Stats) -> u64 {
    stats.rejected.values().sum()
}

#[test]
fn ingest_acks_contiguously_rejects_bad_input_and_publishes_the_roster() {
    crate::support::require("mosquitto_sub", "mosquitto-clients");
    let mut broker = Mosquitto::start_with("max_queued_messages 100000");
    let url = broker.url();
    let dir = tempfile::tempdir().unwrap();
    let roster_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/roster.csv");
    std::fs::write(
        dir.path().join("aggregator.toml"),
        format!(
            "[site]\nid = \"plant1\"\ntimezone = \"Europe/Berlin\"\nsite_key = \"{SITE_KEY}\"\n\
             [ingest]\nmax_message_bytes = {LIMIT}\n[roster]\nfile = \"{}\"\n",
            roster_file.display()
        ),
    )
    .unwrap();

    let b1 = BoardTopics::new("plant1", "assembly", "b1");
    let site = SiteTopics::new("plant1");
    let ack_sub = Sub::start(broker.port, &b1.ack(), dir.path());
    let stats_sub = Sub::start(broker.port, &site.aggregator_stats(), dir.path());
    let mut agg = Aggregator::start(dir.path(), &url);
    wait_for(
        "the aggregator's first stats",
        Duration::from_secs(20),
        || {
            agg.assert_running();
            stats_sub.payloads::<Stats>().last().cloned()
        },
    );

    // 1, 2, 4: the ack stops at 2.
    let mut publisher = Publisher::connect(broker.port);
    let kind = "need.closed";
    let events: BTreeMap<u64, Envelope> = (1..=5).map(|s| (s, envelope("b1", s))).collect();
    for seq in [1, 2, 4] {
        publisher.publish(b1.event(kind), false, events[&seq].to_json().into_bytes());
    }
    publisher.flush();
    wait_for("ack 2", Duration::from_secs(10), || {
        acks(&ack_sub).contains(&2).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        acks(&ack_sub).iter().max(),
        Some(&2),
        "the ack passed the gap at 3"
    );
    // 3 fills the gap: 4.
    publisher.publish(b1.event(kind), false, events[&3].to_json().into_bytes());
    publisher.flush();
    wait_for("ack 4", Duration::from_secs(10), || {
        acks(&ack_sub).contains(&4).then_some(())
    });
    let seen = acks(&ack_sub);
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "acks went back: {seen:?}"
    );

    // The bad inputs of the issue, then random ones.
    let good = events[&5].to_json().into_bytes();
    let mut bad: Vec<(String, Vec<u8>, Option<&str>)> = Vec::new();
    bad.push((
        b1.event(kind),
        b"{\"schema\":1,\"board\":".to_vec(),
        Some("malformed_json"),
    ));
    let b2 = BoardTopics::new("plant1", "assembly", "b2");
    bad.push((b2.event(kind), good.clone(), Some("board_mismatch")));
    let mut oversize = good.clone();
    oversize.resize(LIMIT + 1, b' ');
    bad.push((b1.event(kind), oversize, Some("oversize")));
    let mut unknown: serde_json::Value = serde_json::from_slice(&good).unwrap();
    unknown["kind"] = "coffee.spilled".into();
    bad.push((
        b1.event("coffee.spilled"),
        serde_json::to_vec(&unknown).unwrap(),
        Some("unknown_kind"),
    ));
    bad.push((
        b1.event(kind),
        envelope("b1", 0).to_json().into_bytes(),
        Some("bad_seq"),
    ));
    bad.push((
        b1.event(kind),
        vec![0xff, 0xfe, 0x00, 0x01, 0x80, 0xc3, 0x28, 0x00],
        Some("malformed_json"),
    ));
    let mut schema2: serde_json::Value = serde_json::from_slice(&good).unwrap();
    schema2["schema"] = 3.into();
    bad.push((
        b1.event(kind),
        serde_json::to_vec(&schema2).unwrap(),
        Some("bad_schema"),
    ));
    bad.push((
        b1.event("huddle.started"),
        good.clone(),
        Some("kind_mismatch"),
    ));
    let mut payload: serde_json::Value = serde_json::from_slice(&good).unwrap();
    payload["data"] = serde_json::json!({"need": 1});
    bad.push((
        b1.event(kind),
        serde_json::to_vec(&payload).unwrap(),
        Some("bad_payload"),
    ));
    for p in random_payloads(1200, &good) {
        bad.push((b1.event(kind), p, None));
    }

    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for (topic, payload, reason) in &bad {
        let r = validate("plant1", topic, payload, LIMIT)
            .expect_err("every bad input is rejected")
            .reason;
        if let Some(want) = reason {
            assert_eq!(r.key(), *want, "{topic}");
        }
        *expected.entry(r.key().to_owned()).or_default() += 1;
    }
    for (topic, payload, _) in &bad {
        publisher.publish(topic.as_str(), false, payload.clone());
    }
    publisher.flush();

    let stats = wait_for("every rejection counted", Duration::from_secs(30), || {
        agg.assert_running();
        stats_sub
            .payloads::<Stats>()
            .last()
            .filter(|s| total(s) == bad.len() as u64)
            .cloned()
    });
    for (reason, n) in &expected {
        assert_eq!(stats.rejected[reason], *n, "{reason}: {:?}", stats.rejected);
    }
    eprintln!("stats after {} bad inputs: {stats:?}", bad.len());
    assert_eq!(stats.stored, 4);
    assert_eq!(stats.integrity_alerts, 0);
    assert_eq!(
        expected.len(),
        8,
        "every reason but bad_topic: {expected:?}"
    );

    let rows = export(dir.path(), &url);
    let keys: Vec<(String, u64)> = rows.iter().map(|(b, s, _)| (b.clone(), *s)).collect();
    assert_eq!(
        keys,
        (1..=4).map(|s| ("b1".to_owned(), s)).collect::<Vec<_>>(),
        "only the four good events are stored"
    );
    for (_, seq, id) in &rows {
        assert_eq!(id, &events[seq].id.to_string());
    }
    assert_eq!(
        acks(&ack_sub).iter().max(),
        Some(&4),
        "the bad inputs moved the ack"
    );
    agg.assert_running();

    // The roster: the demo board's people, hashes only.
    let roster_sub = Sub::start(
        broker.port,
        &BoardTopics::new("plant1", "assembly", "demo").roster(),
        dir.path(),
    );
    let raw = wait_for("the demo roster", Duration::from_secs(10), || {
        roster_sub.text().lines().next().map(str::to_owned)
    });
    let payload = raw.split_once(' ').unwrap().1;
    let roster: RosterMessage = serde_json::from_str(payload).unwrap();
    let kiosk = KioskConfig::from_toml(
        include_str!("../../../config/kiosk.toml"),
        Path::new("config/kiosk.toml"),
    )
    .unwrap();
    assert_eq!(roster.board, "demo");
    assert_eq!(roster.people.len(), kiosk.people.len());
    let tokens: Vec<&str> = payload
        .split(|c: char| !c.is_ascii_alphanumeric())
        .collect();
    for p in &kiosk.people {
        let q = roster.people.iter().find(|q| q.id == p.id).unwrap();
        for number in &p.badges {
            assert!(
                !tokens.contains(&number.as_str()),
                "badge number {number} is in the roster payload"
            );
            assert!(q
                .badge_hashes
                .contains(&hash_badge(SITE_KEY.as_bytes(), number)));
        }
    }

    // Still alive: 5 moves the ack; the board's status follows.
    let status_sub = Sub::start(broker.port, &b1.status(), dir.path());
    publisher.publish(b1.event(kind), false, good.clone());
    publisher.flush();
    wait_for("ack 5", Duration::from_secs(10), || {
        acks(&ack_sub).contains(&5).then_some(())
    });
    wait_for("status at 5", Duration::from_secs(10), || {
        status_sub
            .payloads::<BoardLive>()
            .last()
            .filter(|s| s.last_seq == 5)
            .cloned()
    });

    // Restart: the ack is still 5, and a duplicate below it republishes it.
    drop(agg);
    let agg_sub = Sub::start(broker.port, &b1.ack(), dir.path());
    let mut agg = Aggregator::start(dir.path(), &url);
    wait_for("the ack after a restart", Duration::from_secs(20), || {
        agg.assert_running();
        acks(&agg_sub).contains(&5).then_some(())
    });
    let before = acks(&agg_sub).len();
    publisher.publish(b1.event(kind), false, events[&3].to_json().into_bytes());
    publisher.flush();
    wait_for(
        "the ack again after a duplicate",
        Duration::from_secs(10),
        || {
            let a = acks(&agg_sub);
            (a.len() > before && a.last() == Some(&5)).then_some(())
        },
    );
    let stats = wait_for("the duplicate counted", Duration::from_secs(10), || {
        stats_sub
            .payloads::<Stats>()
            .last()
            .filter(|s| s.duplicates == 1)
            .cloned()
    });
    assert_eq!((stats.stored, stats.integrity_alerts), (5, 0));

    // The broker forgets everything: the aggregator publishes its retained
    // state again when it reconnects.
    broker.kill();
    broker.restart();
    let after = Sub::start(broker.port, &b1.ack(), dir.path());
    wait_for(
        "the ack after the broker restarted",
        Duration::from_secs(30),
        || {
            agg.assert_running();
            acks(&after).contains(&5).then_some(())
        },
    );
    agg.assert_running();
    assert!(
        !agg.log().contains("panicked"),
        "the aggregator panicked:\n{}",
        agg.log()
    );
}
