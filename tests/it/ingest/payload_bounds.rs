//! Property: no payload the aggregator accepts makes a status, coaching or
//! alert payload larger than the MQTT client can send
//! ([`huddle_board::mqtt::fits`]). rumqttc cannot send a larger packet:
//! it would drop the connection and retry the same publish after every
//! reconnect, and the site would stop.
//!
//! Seeded random boards send the largest events the validator accepts:
//! texts of up to `MAX_TEXT_CHARS` characters that expand most in JSON
//! (quotes, control characters, four-byte characters), new ids at every
//! event, many escalations and huddles. Every event goes through the real
//! validator first; only what it accepts is folded. Each seed's figures
//! are printed, so a failing one can be replayed.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use huddle_board::aggregator::coaching::{self, CoachingEvent, StoredCoachingEvent, Targets};
use huddle_board::aggregator::status::{Rules, Site, StoredEvent};
use huddle_board::aggregator::validate::{validate, MAX_TEXT_CHARS};
use huddle_board::domain::{BehaviourScore, ObservationLevel, Pick, SelfView};
use huddle_board::mqtt::{fits, MAX_PACKET};
use huddle_board::wire::event::{
    AttendanceTapped, Envelope, Event, HuddleAdvanced, HuddleStarted, NeedRaised,
    ObservationRecorded, StartTrigger, TapVia,
};
use huddle_board::wire::topic::{BoardTopics, SiteTopics};

const SITE: &str = "plant1";
const AREA: &str = "assembly";
const MAX_BYTES: usize = 65_536;

use crate::support::Rng;

/// Texts that grow most in JSON.
trait Texts {
    fn text(&mut self) -> String;
}

impl Texts for Rng {
    /// A text of `MAX_TEXT_CHARS - 0..20` characters of the kinds that
    /// grow most in JSON.
    fn text(&mut self) -> String {
        const CHARS: [char; 6] = ['"', '\\', '\u{1}', '\u{1F600}', 'é', 'x'];
        let n = MAX_TEXT_CHARS - self.below(20) as usize;
        (0..n)
            .map(|_| CHARS[self.below(CHARS.len() as u64) as usize])
            .collect()
    }
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 3, 6, 0, 0).unwrap()
}

/// The event as a board would send it, if the validator accepts it: its
/// stored `data` text.
fn accepted(board: &str, seq: u64, at: DateTime<Utc>, event: &Event) -> Option<(String, String)> {
    let env = Envelope::new(board, seq, at, true, event).in_incarnation("0193aa", 1);
    let topic = BoardTopics::new(SITE, AREA, board).event(&env.kind);
    let a = validate(SITE, &topic, env.to_json().as_bytes(), MAX_BYTES).ok()?;
    Some((a.envelope.kind, a.envelope.data))
}

fn random_event(rng: &mut Rng) -> Event {
    let huddle_id = rng.text();
    match rng.below(4) {
        0 => Event::NeedRaised(NeedRaised {
            need_id: rng.text(),
            huddle_id,
            category: rng.text(),
            text: rng.text(),
            escalated: true,
        }),
        1 => Event::HuddleStarted(HuddleStarted {
            huddle_id,
            scheduled_at: None,
            slot: None,
            started_by: rng.text(),
            trigger: StartTrigger::TeamLeader,
            target_minutes: 15,
            agenda: (0..30).map(|_| rng.text()).collect(),
        }),
        2 => Event::HuddleAdvanced(HuddleAdvanced {
            huddle_id,
            step: rng.text(),
            index: 3,
        }),
        _ => Event::AttendanceTapped(AttendanceTapped {
            huddle_id,
            person_id: rng.text(),
            via: TapVia::Badge,
            late: false,
        }),
    }
}

#[test]
fn no_accepted_event_makes_a_status_or_alert_too_large_for_mqtt() {
    let rules = Rules {
        escalation_stale: Duration::hours(1),
        offline_after: Duration::seconds(90),
    };
    for seed in 1..=4u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut site = Site::new(SITE, chrono_tz::Europe::Berlin, rules, t0());
        let (mut accepted_n, mut largest) = (0, 0);
        for seq in 1..=1500u64 {
            let at = t0() + Duration::seconds(seq as i64);
            let board = format!("b{}", rng.below(3));
            let Some((kind, data)) = accepted(&board, seq, at, &random_event(&mut rng)) else {
                continue;
            };
            accepted_n += 1;
            let e = StoredEvent {
                board: &board,
                seq,
                at,
                kind: &kind,
                data: &data,
            };
            site.event(AREA, e, true, at);
            if seq % 100 == 0 {
                // Two hours on: every escalation is stale, every alert due.
                let e = site.evaluate(at + Duration::hours(2));
                for b in &e.boards {
                    let topic = BoardTopics::new(SITE, &b.area, &b.board).status();
                    let payload = serde_json::to_vec(b).unwrap();
                    largest = largest.max(payload.len());
                    assert!(
                        fits(&topic, &payload),
                        "seed {seed}: status of {} bytes",
                        payload.len()
                    );
                }
                let payload = serde_json::to_vec(&e.site).unwrap();
                assert!(fits(&SiteTopics::new(SITE).status(), &payload));
                for a in &e.alerts {
                    let payload = serde_json::to_vec(a).unwrap();
                    assert!(
                        fits(&SiteTopics::new(SITE).alert("x"), &payload),
                        "seed {seed}: alert"
                    );
                }
            }
        }
        assert!(
            accepted_n > 1000,
            "seed {seed}: the validator refused what it should take"
        );
        println!("seed {seed}: {accepted_n} events accepted, largest status {largest} bytes (limit {MAX_PACKET})");
    }
}

#[test]
fn no_accepted_observation_makes_the_coaching_report_too_large_for_mqtt() {
    let mut rng = Rng(7);
    let mut events = Vec::new();
    for seq in 1..=3000u64 {
        let at = t0() + Duration::seconds(seq as i64);
        let level = ObservationLevel::Facilitation;
        let note = "n".repeat(huddle_board::domain::NOTE_MAX_CHARS);
        let r = ObservationRecorded {
            observation_id: rng.text(),
            level,
            observer: rng.text(),
            learner: rng.text(),
            huddle_id: Some(rng.text()),
            self_view: SelfView::SoSo,
            scores: level
                .behaviours()
                .iter()
                .map(|b| BehaviourScore {
                    behaviour: (*b).into(),
                    score: 3,
                })
                .collect(),
            strength: Pick {
                behaviour: level.behaviours()[0].into(),
                note: note.clone(),
            },
            focus: Pick {
                behaviour: level.behaviours()[1].into(),
                note,
            },
            trigger: rng.text(),
            reobserve_on: NaiveDate::from_ymd_opt(2026, 12, 10).unwrap(),
        };
        let Some(_) = accepted("b1", seq, at, &Event::ObservationRecorded(r.clone())) else {
            continue;
        };
        events.push(StoredCoachingEvent {
            board: "b1".into(),
            seq,
            at,
            event: CoachingEvent::Recorded(r),
        });
    }
    assert!(
        events.len() > 2000,
        "the validator refused what it should take"
    );
    let folded = coaching::fold(events);
    let targets = Targets {
        team_leader: 2,
        supervisor: 1,
        window: Duration::days(7),
    };
    let report = coaching::report(
        SITE,
        &[],
        &folded.observations,
        targets,
        t0(),
        t0() + Duration::days(1),
    );
    let payload = serde_json::to_vec(&report).unwrap();
    println!(
        "coaching report: {} people, {} left out, {} bytes (limit {MAX_PACKET})",
        report.people.len(),
        report.unlisted_left_out,
        payload.len()
    );
    assert!(report.unlisted_left_out > 0);
    assert!(fits(&SiteTopics::new(SITE).coaching(), &payload));
}
