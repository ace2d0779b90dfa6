//! The outbox publisher against a real Mosquitto (started on a free port by
//! the test, no persistence) and a real SQLite file, with a test peer that
//! plays the aggregator's side of the ack protocol honestly: it subscribes
//! to the board's events and publishes, retained, the highest contiguous
//! seq it has received. Mosquitto missing fails the test with the command
//! that installs it.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::board::kiosk_config;
use crate::support::retained;
use crate::support::{publish_retained, require, Mosquitto};
use chrono::Utc;
use huddle_board::kiosk::config::KioskConfig;
use huddle_board::kiosk::outbox::{LinkStatus, Outbox};
use huddle_board::kiosk::store::Store;
use huddle_board::text::{Text, TextKey};
use huddle_board::wire::event::{chain_next, chain_start, Envelope, Event, NeedRef};
use huddle_board::wire::payload::{Ack, IncarnationAck, RosterMessage};
use huddle_board::wire::topic::BoardTopics;
use rumqttc::{AsyncClient, Event as MqttEvent, MqttOptions, Packet, QoS};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The shipped configuration delivering to `url`, quick to reconnect.
fn config(dir: &Path, url: &str, ack_timeout_s: u64) -> KioskConfig {
    let mut c = kiosk_config(dir);
    c.mqtt.url = url.to_owned();
    c.mqtt.backoff_max_s = 1;
    c.mqtt.keep_alive_s = 5;
    c.delivery.ack_timeout_s = ack_timeout_s;
    c.validate().unwrap();
    c
}

fn topics(c: &KioskConfig) -> BoardTopics {
    BoardTopics::new(&c.board.site, &c.board.area, &c.board.id)
}

/// Commits `n` events, one action each, as the kiosk core does.
fn commit(store: &mut Store, n: usize) {
    for _ in 0..n {
        store
            .transact(Utc::now(), |tx| {
                tx.emit(&Event::NeedClosed(NeedRef {
                    need_id: uuid::Uuid::now_v7().to_string(),
                    by: None,
                }))
                .map(|_| ())
            })
            .map_err(|e: huddle_board::kiosk::store::StoreError| e)
            .unwrap();
    }
}

/// Waits until the status satisfies `ok`, or fails with the last status.
async fn wait_status(
    rx: &mut watch::Receiver<LinkStatus>,
    timeout: Duration,
    what: &str,
    ok: impl Fn(&LinkStatus) -> bool,
) -> LinkStatus {
    let r = tokio::time::timeout(timeout, async {
        loop {
            let now = rx.borrow_and_update().clone();
            if ok(&now) {
                return now;
            }
            rx.changed().await.expect("outbox status gone");
        }
    })
    .await;
    match r {
        Ok(s) => s,
        Err(_) => panic!("timed out waiting for {what}; status: {:?}", *rx.borrow()),
    }
}

/// The aggregator's ack protocol, honestly: every receipt of an event is
/// recorded, the contiguous high-water mark is published retained on
/// `.../ack` after each. `drop_first` seqs are ignored the first time they
/// arrive (a lost message).
struct Peer {
    receipts: Arc<Mutex<Vec<u64>>>,
    subscribed: watch::Receiver<u32>,
    task: JoinHandle<()>,
}

impl Peer {
    fn start(port: u16, topics: BoardTopics, board: &str, drop_first: &[u64]) -> Peer {
        let receipts = Arc::new(Mutex::new(Vec::new()));
        let (sub_tx, subscribed) = watch::channel(0u32);
        let mut options = MqttOptions::new(format!("test-aggregator-{port}"), "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(5));
        let (client, mut eventloop) = AsyncClient::new(options, 10_000);
        let board = board.to_owned();
        let mut drop_first: HashSet<u64> = drop_first.iter().copied().collect();
        let seen = receipts.clone();
        let task = tokio::spawn(async move {
            // Per incarnation: base, stored seqs above the ack, ack, chain.
            let mut streams: BTreeMap<String, (BTreeMap<u64, uuid::Uuid>, u64, String)> =
                BTreeMap::new();
            loop {
                match eventloop.poll().await {
                    Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                        client
                            .try_subscribe(topics.event("+"), QoS::AtLeastOnce)
                            .unwrap();
                    }
                    Ok(MqttEvent::Incoming(Packet::SubAck(_))) => {
                        sub_tx.send_modify(|n| *n += 1);
                    }
                    Ok(MqttEvent::Incoming(Packet::Publish(p))) => {
                        let env: Envelope = serde_json::from_slice(&p.payload).unwrap();
                        assert_eq!(env.board, board);
                        seen.lock().unwrap().push(env.seq);
                        if drop_first.remove(&env.seq) {
                            continue;
                        }
                        let (have, contiguous, chain) =
                            streams.entry(env.incarnation.clone()).or_insert_with(|| {
                                (BTreeMap::new(), env.base - 1, chain_start(&env.incarnation))
                            });
                        have.insert(env.seq, env.id);
                        while let Some(id) = have.remove(&(*contiguous + 1)) {
                            *contiguous += 1;
                            *chain = chain_next(chain, &id);
                        }
                        let ack = Ack {
                            board: board.clone(),
                            seq: 0,
                            at: Utc::now(),
                            incarnations: streams
                                .iter()
                                .map(|(id, (_, seq, chain))| IncarnationAck {
                                    incarnation: id.clone(),
                                    seq: *seq,
                                    chain: chain.clone(),
                                })
                                .collect(),
                        };
                        let _ = client.try_publish(
                            topics.ack(),
                            QoS::AtLeastOnce,
                            true,
                            serde_json::to_vec(&ack).unwrap(),
                        );
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        Peer {
            receipts,
            subscribed,
            task,
        }
    }

    /// Waits for the `n`th subscription (one per connection).
    async fn subscribed(&mut self, n: u32) {
        tokio::time::timeout(
            Duration::from_secs(10),
            self.subscribed.wait_for(|s| *s >= n),
        )
        .await
        .expect("test aggregator did not subscribe")
        .unwrap();
    }

    fn receipts(&self) -> Vec<u64> {
        self.receipts.lock().unwrap().clone()
    }

    fn distinct(&self) -> BTreeSet<u64> {
        self.receipts().into_iter().collect()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The retained payload on `topic`, read by a fresh `mosquitto_sub`.
fn start(config: &KioskConfig, store: &mut Store) -> Outbox {
    let outbox =
        Outbox::start(config, &tokio::runtime::Handle::current(), Box::new(|_| {})).unwrap();
    let wake = outbox.notifier();
    store.set_commit_hook(Box::new(move |_| wake.notify()));
    outbox
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_committed_while_the_broker_is_down_are_delivered_when_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start();
    broker.kill();
    let c = config(dir.path(), &broker.url(), 2);
    let mut store = Store::open(&c.database_path(), &c.board.id).unwrap();
    let outbox = start(&c, &mut store);
    let mut status = outbox.status();
    commit(&mut store, 20);
    let s = wait_status(&mut status, Duration::from_secs(5), "offline", |s| {
        s.error.is_some() && s.last_seq == 20
    })
    .await;
    assert!(!s.connected);
    assert_eq!(
        (s.queued(), s.describe(20).0),
        (20, Text::with(TextKey::LinkOfflineQueued, "20"))
    );
    assert_eq!(store.undelivered().unwrap(), 20);

    broker.restart();
    let mut peer = Peer::start(broker.port, topics(&c), &c.board.id, &[]);
    peer.subscribed(1).await;
    let s = wait_status(&mut status, Duration::from_secs(15), "all acked", |s| {
        s.connected && s.acked == 20
    })
    .await;
    assert_eq!(s.describe(20), (Text::new(TextKey::LinkOnline), true));
    assert_eq!(peer.distinct(), (1..=20).collect());
    assert_eq!(store.undelivered().unwrap(), 0);
    assert_eq!(store.acked().unwrap(), 20);
    outbox.shutdown().await;

    // The ack is remembered: a restart resumes from it.
    drop(store);
    let store = Store::open(&c.database_path(), &c.board.id).unwrap();
    assert_eq!(store.acked().unwrap(), 20);
    assert_eq!(store.last_seq().unwrap(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_killed_mid_stream_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start();
    let c = config(dir.path(), &broker.url(), 1);
    let mut store = Store::open(&c.database_path(), &c.board.id).unwrap();
    let mut peer = Peer::start(broker.port, topics(&c), &c.board.id, &[]);
    peer.subscribed(1).await;
    let outbox = start(&c, &mut store);
    let mut status = outbox.status();
    wait_status(&mut status, Duration::from_secs(5), "connected", |s| {
        s.connected
    })
    .await;

    for i in 0..100 {
        commit(&mut store, 1);
        if i == 40 {
            // Everything the broker held (queued messages, retained acks) is gone.
            broker.kill();
        }
        if i == 70 {
            broker.restart();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let s = wait_status(&mut status, Duration::from_secs(20), "all 100 acked", |s| {
        s.acked == 100
    })
    .await;
    assert!(s.connected);
    let got = peer.distinct();
    let missing: Vec<u64> = (1..=100).filter(|n| !got.contains(n)).collect();
    assert!(missing.is_empty(), "never arrived: {missing:?}");
    assert_eq!(store.undelivered().unwrap(), 0);
    outbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_ack_makes_the_kiosk_send_again_from_ack_plus_one() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let c = config(dir.path(), &broker.url(), 1);
    let mut store = Store::open(&c.database_path(), &c.board.id).unwrap();
    // Seq 3 is lost the first time: the ack stops at 2 while 4 and 5 arrive.
    let mut peer = Peer::start(broker.port, topics(&c), &c.board.id, &[3]);
    peer.subscribed(1).await;
    let outbox = start(&c, &mut store);
    let mut status = outbox.status();
    wait_status(&mut status, Duration::from_secs(5), "connected", |s| {
        s.connected
    })
    .await;
    let t0 = std::time::Instant::now();
    commit(&mut store, 5);
    wait_status(&mut status, Duration::from_secs(8), "all 5 acked", |s| {
        s.acked == 5
    })
    .await;
    let threes = peer.receipts().iter().filter(|&&s| s == 3).count();
    assert!(
        threes >= 2,
        "seq 3 was not sent again: {:?}",
        peer.receipts()
    );
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "re-sent before the ack timeout"
    );
    assert_eq!(store.undelivered().unwrap(), 0);
    outbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_is_retained_true_and_the_last_will_says_false() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let c = config(dir.path(), &broker.url(), 2);
    let online = topics(&c).online();
    let mut store = Store::open(&c.database_path(), &c.board.id).unwrap();

    // A connection that dies (tasks aborted, no DISCONNECT): the last will.
    let outbox = start(&c, &mut store);
    let mut status = outbox.status();
    wait_status(&mut status, Duration::from_secs(5), "connected", |s| {
        s.connected
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(retained(broker.port, &online), "true");
    drop(outbox);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(retained(broker.port, &online), "false");

    // Back again, then a clean stop also leaves `false`.
    let outbox = start(&c, &mut store);
    let mut status = outbox.status();
    wait_status(&mut status, Duration::from_secs(5), "connected", |s| {
        s.connected
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(retained(broker.port, &online), "true");
    outbox.shutdown().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(retained(broker.port, &online), "false");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_beyond_the_last_seq_starts_a_new_incarnation_and_marks_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let c = config(dir.path(), &broker.url(), 2);
    let t = topics(&c);
    let mut store = Store::open(&c.database_path(), &c.board.id).unwrap();
    let first = store.incarnation().unwrap();
    // An aggregator that holds 1000 events of this incarnation: this file
    // is an older copy of the one that wrote them.
    let ack = Ack {
        board: c.board.id.clone(),
        seq: 1000,
        at: Utc::now(),
        incarnations: vec![IncarnationAck {
            incarnation: first.id.clone(),
            seq: 1000,
            chain: "0".repeat(32),
        }],
    };
    publish_retained(broker.port, &t.ack(), &serde_json::to_string(&ack).unwrap());
    commit(&mut store, 3);
    let outbox = start(&c, &mut store);
    let mut status = outbox.status();
    wait_status(&mut status, Duration::from_secs(5), "connected", |s| {
        s.connected
    })
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while store.incarnation().unwrap().id == first.id {
        assert!(
            std::time::Instant::now() < deadline,
            "no new incarnation after an ack beyond the last seq"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let second = store.incarnation().unwrap();
    assert_eq!(second.base, 1);
    assert_eq!(store.acked().unwrap(), 0);
    assert_eq!(
        store.undelivered().unwrap(),
        3,
        "nothing counts as delivered"
    );
    for row in store.outbox_rows(1, 3).unwrap() {
        let env: Envelope = serde_json::from_str(&row.body).unwrap();
        assert_eq!(env.incarnation, second.id, "re-sent in the new incarnation");
    }
    outbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retained_roster_reaches_the_callback() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let c = config(dir.path(), &broker.url(), 2);
    let roster = RosterMessage {
        board: c.board.id.clone(),
        issued_at: Utc::now(),
        people: vec![],
    };
    publish_retained(
        broker.port,
        &topics(&c).roster(),
        &serde_json::to_string(&roster).unwrap(),
    );
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let outbox = Outbox::start(
        &c,
        &tokio::runtime::Handle::current(),
        Box::new(move |r| {
            let _ = tx.send(r);
        }),
    )
    .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("no roster")
        .unwrap();
    assert_eq!(got, roster);
    outbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_are_reported_with_the_keys_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let passwd = dir.path().join("passwd");
    let ok = Command::new(require("mosquitto_passwd", "mosquitto"))
        .args(["-b", "-c", passwd.to_str().unwrap(), "board-demo", "right"])
        .status()
        .unwrap();
    assert!(ok.success());
    let broker = Mosquitto::start_with(&format!(
        "allow_anonymous false\npassword_file {}",
        passwd.display()
    ));
    let mut c = config(dir.path(), &broker.url(), 2);
    c.mqtt.username = Some("board-demo".into());
    c.mqtt.password = Some("wrong".into());
    let mut store = Store::open(&c.database_path(), &c.board.id).unwrap();
    commit(&mut store, 1);
    let outbox = start(&c, &mut store);
    let mut status = outbox.status();
    let s = wait_status(&mut status, Duration::from_secs(5), "refused", |s| {
        s.error.is_some()
    })
    .await;
    let e = s.error.clone().unwrap();
    assert!(
        e.contains("refused") && e.contains("mqtt.username") && e.contains("config/kiosk.toml"),
        "{e}"
    );
    assert_eq!(
        s.describe(1).0,
        Text::with(TextKey::LinkPasswordRefusedQueued, "1")
    );
    outbox.shutdown().await;

    // The right password connects.
    c.mqtt.password = Some("right".into());
    let outbox = start(&c, &mut store);
    let mut status = outbox.status();
    wait_status(&mut status, Duration::from_secs(5), "connected", |s| {
        s.connected
    })
    .await;
    outbox.shutdown().await;
}
