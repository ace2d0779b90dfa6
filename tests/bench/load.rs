//! The load the ingest benchmarks share (`ingest`, `baseline`): valid
//! events from many boards published at QoS 1, and the wait for every
//! board's retained ack.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use huddle_board::wire::event::{AttendanceTapped, Envelope, Event, TapVia};
use huddle_board::wire::topic::BoardTopics;
use rumqttc::{AsyncClient, Event as MqttEvent, MqttOptions, Packet, QoS};

/// The board id of board number `i`.
pub fn board_id(i: usize) -> String {
    format!("b{i:04}")
}

/// Event `seq` of board number `b` (an attendance tap): topic and payload.
pub fn message(site: &str, b: usize, seq: u64, now: DateTime<Utc>) -> (String, String) {
    let board = board_id(b);
    let event = Event::AttendanceTapped(AttendanceTapped {
        huddle_id: format!("h-{board}"),
        person_id: format!("p{seq}"),
        via: TapVia::Badge,
        late: false,
    });
    let env = Envelope::new(&board, seq, now, true, &event);
    let topic = BoardTopics::new(site, "area", &board).event(&env.kind);
    (topic, env.to_json())
}

/// Publishes `boards x per_board` valid events of `site` at QoS 1 and waits
/// for every PUBACK; `at_half` runs when half of them are acknowledged.
pub async fn publish(
    port: u16,
    site: &str,
    boards: usize,
    per_board: u64,
    at_half: Option<Box<dyn FnOnce() + Send>>,
) {
    let mut o = MqttOptions::new("bench-publisher", "127.0.0.1", port);
    o.set_inflight(1000);
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut ev) = AsyncClient::new(o, 10_000);
    let total = boards as u64 * per_board;
    let waiter = tokio::spawn(async move {
        let mut at_half = at_half;
        let mut acked = 0u64;
        while acked < total {
            match ev.poll().await {
                Ok(MqttEvent::Incoming(Packet::PubAck(_))) => {
                    acked += 1;
                    if acked == total / 2 {
                        if let Some(f) = at_half.take() {
                            f();
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => panic!("publisher connection: {e}"),
            }
        }
    });
    let now = Utc::now();
    for seq in 1..=per_board {
        for b in 0..boards {
            let (topic, payload) = message(site, b, seq, now);
            client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await
                .expect("queue a publication");
        }
    }
    waiter.await.expect("publisher task");
    let _ = client.disconnect().await;
}

/// Waits until every board's retained ack reaches `per_board`.
/// Returns when, and how many ack publications arrived on the way.
pub async fn wait_acks(port: u16, site: String, boards: usize, per_board: u64) -> (Instant, u64) {
    let mut o = MqttOptions::new("bench-acks", "127.0.0.1", port);
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut ev) = AsyncClient::new(o, 100);
    client
        .subscribe(format!("huddle/v1/{site}/+/+/ack"), QoS::AtLeastOnce)
        .await
        .expect("subscribe to acks");
    let mut acks: HashMap<String, u64> = HashMap::new();
    let mut seen = 0u64;
    loop {
        match ev.poll().await {
            Ok(MqttEvent::Incoming(Packet::Publish(p))) => {
                seen += 1;
                if let Ok(ack) =
                    serde_json::from_slice::<huddle_board::wire::payload::Ack>(&p.payload)
                {
                    acks.insert(ack.board, ack.seq);
                    if acks.len() == boards && acks.values().all(|s| *s >= per_board) {
                        return (Instant::now(), seen);
                    }
                }
            }
            Ok(_) => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
