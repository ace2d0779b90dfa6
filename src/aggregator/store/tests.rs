use super::batch::apply_in;
use super::migrations::migrate_to;
use super::*;
use crate::aggregator::validate::{Incoming, Reason};
use crate::wire::event::{
    chain_next, chain_start, Envelope, Event, HuddleClosed, HuddleStarted, NeedRef, StartTrigger,
};
use crate::wire::payload::{HuddleState, IncarnationAck};
use crate::wire::time::ts;
use chrono::{DateTime, TimeZone, Utc};
use rusqlite::params;

fn at(min: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 6, min, 0).unwrap()
}

fn need(board: &str, seq: u64, need: &str) -> Envelope {
    Envelope::new(
        board,
        seq,
        at(seq as u32 % 60),
        true,
        &Event::NeedClosed(NeedRef {
            need_id: need.into(),
            by: None,
        }),
    )
}

fn ev(e: Envelope) -> Input {
    Input::Event {
        area: "assembly".into(),
        envelope: Incoming::from_envelope(&e),
    }
}

fn need_in(inc: &str, base: u64, seq: u64) -> Envelope {
    need("b1", seq, "n").in_incarnation(inc, base)
}

fn entry(o: &BatchOutcome, inc: &str) -> IncarnationAck {
    o.boards["b1"]
        .ack
        .incarnation(inc)
        .cloned()
        .expect("listed")
}

#[test]
fn each_incarnation_is_stored_and_acked_apart_with_the_boards_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agg.db");
    let mut s = Store::open(&path).unwrap();
    let old: Vec<Envelope> = (1..=3).map(|q| need_in("aaa", 1, q)).collect();
    s.apply(&old.iter().cloned().map(ev).collect::<Vec<_>>(), at(0))
        .unwrap();
    // The card was reflashed: a new file starts again at seq 1.
    let new: Vec<Envelope> = (1..=2).map(|q| need_in("bbb", 1, q)).collect();
    let o = s
        .apply(&new.iter().cloned().map(ev).collect::<Vec<_>>(), at(1))
        .unwrap();
    assert_eq!(
        o.stats.stored,
        3 + 2,
        "same seqs, other incarnation: stored"
    );
    assert!(o.alerts.is_empty() && o.twins.is_empty());
    let mut chain = chain_start("bbb");
    for e in &new {
        chain = chain_next(&chain, &e.id);
    }
    assert_eq!(
        entry(&o, "bbb"),
        IncarnationAck {
            incarnation: "bbb".into(),
            seq: 2,
            chain
        }
    );
    assert_eq!(entry(&o, "aaa").seq, 3);
    let status = &o.boards["b1"].status;
    assert_eq!(status.incarnation.as_deref(), Some("bbb"));
    assert_eq!(status.replaced_at, Some(at(1)));
    // A restored copy's new incarnation starts above its old ack.
    let ccc: Vec<Envelope> = (40..=43).map(|q| need_in("ccc", 40, q)).collect();
    let o = s
        .apply(&[ev(ccc[1].clone()), ev(ccc[0].clone())], at(2))
        .unwrap();
    assert_eq!(entry(&o, "ccc").seq, 41);
    // All of it survives a restart, a gap included.
    s.apply(&[ev(ccc[3].clone())], at(3)).unwrap();
    drop(s);
    let mut s = Store::open(&path).unwrap();
    let acks = s.acks(at(4));
    assert_eq!(acks[0].1.incarnation("ccc").unwrap().seq, 41);
    let o = s.apply(&[ev(ccc[2].clone())], at(5)).unwrap();
    assert_eq!(entry(&o, "ccc").seq, 43, "the gap filled after a restart");
    let chain = ccc
        .iter()
        .fold(chain_start("ccc"), |c, e| chain_next(&c, &e.id));
    assert_eq!(
        entry(&o, "ccc").chain,
        chain,
        "the chain goes on across the restart"
    );
    assert_eq!(entry(&o, "bbb").seq, 2);
    assert_eq!(o.boards["b1"].status.incarnation.as_deref(), Some("ccc"));
}

#[test]
fn what_cannot_be_a_next_event_is_bad_seq_and_not_stored() {
    let (_dir, mut s) = open();
    let o = s
        .apply(
            &[ev(need("b1", 1, "n")), ev(need("b1", 10u64.pow(15), "n"))],
            at(0),
        )
        .unwrap();
    assert_eq!((o.stats.stored, o.stats.rejected["bad_seq"]), (1, 1));
    assert_eq!(o.refused[0].seq, 10u64.pow(15));
    assert_eq!(o.boards["b1"].status.last_seq, 1);
    // Within reach of the ack it is a gap, stored.
    let o = s
        .apply(&[ev(need("b1", 1 + MAX_SEQ_AHEAD, "n"))], at(1))
        .unwrap();
    assert_eq!(o.stats.stored, 2);
    // A board cannot make endless incarnations.
    let many: Vec<Input> = (0..MAX_INCARNATIONS + 5)
        .map(|i| ev(need_in(&format!("inc{i}"), 1, 1)))
        .collect();
    let o = s.apply(&many, at(2)).unwrap();
    assert_eq!(
        o.stats.rejected["bad_seq"],
        1 + 6,
        "the legacy one counts too"
    );
}

#[test]
fn an_older_incarnation_writing_after_a_newer_one_is_a_twin_alert_once() {
    let (_dir, mut s) = open();
    s.apply(&[ev(need_in("aaa", 1, 1))], at(0)).unwrap();
    s.apply(&[ev(need_in("bbb", 1, 1))], at(1)).unwrap();
    let o = s.apply(&[ev(need_in("aaa", 1, 2))], at(2)).unwrap();
    assert_eq!(o.stats.stored, 3, "both boards' events are kept");
    assert_eq!(
        o.twins,
        [TwinAlert {
            board: "b1".into(),
            older: "aaa".into(),
            newer: "bbb".into(),
            at: at(2)
        }]
    );
    let o = s.apply(&[ev(need_in("aaa", 1, 3))], at(3)).unwrap();
    assert!(o.twins.is_empty(), "once per pair");
    assert_eq!(
        o.boards["b1"].status.incarnation.as_deref(),
        Some("bbb"),
        "the newer stays current"
    );
}

#[test]
fn export_gives_an_event_stored_under_two_incarnations_once_in_order_of_time() {
    let (_dir, mut s) = open();
    let second = need_in("aaa", 1, 2);
    s.apply(&[ev(need_in("aaa", 1, 1)), ev(second.clone())], at(0))
        .unwrap();
    // The board forked after seq 1: seq 2 comes again in a new incarnation.
    let moved = Envelope {
        incarnation: "bbb".into(),
        base: 2,
        ..second
    };
    s.apply(&[ev(moved), ev(need_in("bbb", 2, 3))], at(1))
        .unwrap();
    let mut rows = Vec::new();
    s.for_each_event(|r| {
        rows.push((r.incarnation, r.seq));
        Ok::<_, StoreError>(())
    })
    .unwrap();
    let aaa = |q| ("aaa".to_owned(), q);
    assert_eq!(rows, [aaa(1), aaa(2), ("bbb".to_owned(), 3)]);
}

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("agg.db")).unwrap();
    (dir, store)
}

#[test]
fn the_checkpointer_copies_the_wal_into_the_file_and_the_writer_does_not() {
    let (dir, mut s) = open();
    let file = dir.path().join("agg.db");
    let size = || std::fs::metadata(&file).unwrap().len();
    let before = size();
    let batch: Vec<Input> = (1..=2000).map(|i| ev(need("b1", i, "n"))).collect();
    s.apply(&batch, Utc::now()).unwrap();
    // Committed, but only in the WAL: the writer does not checkpoint.
    assert_eq!(size(), before, "the writer checkpointed by itself");
    let _checkpointer = Checkpointer::start(&file).unwrap();
    let deadline = std::time::Instant::now() + 10 * CHECKPOINT_EVERY;
    while size() < before + 200_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint within {:?}: the file is still {} bytes",
            10 * CHECKPOINT_EVERY,
            size()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The writer goes on beside it.
    s.apply(&[ev(need("b1", 2001, "n"))], Utc::now()).unwrap();
}

#[test]
fn a_gap_holds_the_ack_until_it_is_filled() {
    let (_dir, mut s) = open();
    let o = s
        .apply(
            &[
                ev(need("b1", 1, "n")),
                ev(need("b1", 2, "n")),
                ev(need("b1", 4, "n")),
            ],
            at(0),
        )
        .unwrap();
    let b = &o.boards["b1"];
    assert_eq!((b.ack_moved, b.ack.seq), (true, 2));
    assert!(b.ack_due());
    assert_eq!(b.status.last_seq, 2);

    let o = s.apply(&[ev(need("b1", 6, "n"))], at(1)).unwrap();
    assert_eq!(o.boards["b1"].ack.seq, 2);
    assert!(
        !o.boards["b1"].ack_due(),
        "a gap above the ack publishes nothing"
    );

    let o = s.apply(&[ev(need("b1", 3, "n"))], at(2)).unwrap();
    assert_eq!(o.boards["b1"].ack.seq, 4);
    let o = s.apply(&[ev(need("b1", 5, "n"))], at(3)).unwrap();
    assert_eq!(o.boards["b1"].ack.seq, 6);
    assert_eq!(o.stats.stored, 6);
}

#[test]
fn the_ack_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agg.db");
    {
        let mut s = Store::open(&path).unwrap();
        s.apply(&[ev(need("b1", 1, "n")), ev(need("b1", 2, "n"))], at(0))
            .unwrap();
    }
    let mut s = Store::open(&path).unwrap();
    assert_eq!(s.boards()[0].1.last_seq, 2);
    let o = s.apply(&[ev(need("b1", 3, "n"))], at(1)).unwrap();
    assert_eq!(
        (o.boards["b1"].ack_moved, o.boards["b1"].ack.seq),
        (true, 3)
    );
    assert_eq!(schema_version(&path).unwrap(), MIGRATIONS.len() as i64);
}

#[test]
fn a_version_3_file_keeps_its_events_and_acks_through_migrations_4_and_5() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agg.db");
    let two = need("b1", 2, "n");
    {
        // A file as version 3 wrote it: events clustered by (board, seq).
        let mut conn = Connection::open(&path).unwrap();
        migrate_to(&mut conn, &path, 3).unwrap();
        let tx = conn.transaction().unwrap();
        for e in [need("b1", 1, "n"), two.clone(), need("b1", 4, "n")] {
            tx.execute(
                "INSERT INTO events (board, seq, id, at, clock_synced, kind, data, received_at)
                 VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6, ?4)",
                params![
                    e.board,
                    e.seq as i64,
                    e.id.to_string(),
                    ts(e.at),
                    e.kind,
                    e.data.to_string()
                ],
            )
            .unwrap();
        }
        tx.execute(
            "INSERT INTO boards (board, area, acked, last_seq, first_seen) VALUES ('b1', 'a', 2, 4, ?1)",
            [ts(at(0))],
        )
        .unwrap();
        tx.commit().unwrap();
    }
    let mut s = Store::open(&path).unwrap();
    assert_eq!(schema_version(&path).unwrap(), MIGRATIONS.len() as i64);
    let mut seqs = Vec::new();
    s.for_each_event(|r| {
        seqs.push(r.seq);
        Ok::<_, StoreError>(())
    })
    .unwrap();
    assert_eq!(seqs, [1, 2, 4]);
    assert_eq!(s.boards()[0].1.last_seq, 2);
    let o = s.apply(&[ev(two), ev(need("b1", 3, "n"))], at(1)).unwrap();
    assert_eq!(o.stats.duplicates, 1, "seq 2, stored before, is known");
    let unique: bool = s
        .conn
        .query_row(
            "SELECT \"unique\" FROM pragma_index_list('events') WHERE name = 'events_key'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        unique,
        "(board, incarnation, seq) is unique in the file, not only in memory"
    );
    assert_eq!(o.boards["b1"].ack.seq, 4, "seq 4, stored before, is found");
    let plan: String = s
        .conn
        .query_row(
            "EXPLAIN QUERY PLAN SELECT id FROM events WHERE board = 'b1' AND incarnation = '' AND seq = 2",
            [],
            |r| r.get(3),
        )
        .unwrap();
    assert!(plan.contains("events_key"), "{plan}");
}

#[test]
fn a_stored_event_the_memory_does_not_know_is_a_re_send_not_an_error() {
    let (_dir, mut s) = open();
    let one = need("b1", 1, "n");
    s.apply(&[ev(one.clone())], at(0)).unwrap();
    // Memory that knows the board but missed the event: the insert
    // meets the unique key.
    let boards = HashMap::from([("b1".to_owned(), BoardRow::new("a"))]);
    let tx = s.conn.transaction().unwrap();
    let done = apply_in(&tx, &boards, &Stats::default(), &[ev(one)], at(1)).unwrap();
    assert_eq!((done.stats.stored, done.stats.duplicates), (0, 1));
    assert!(done.alerts.is_empty());
}

#[test]
fn a_gap_and_what_lies_beyond_it_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agg.db");
    let three = need("b1", 3, "n");
    {
        let mut s = Store::open(&path).unwrap();
        let o = s
            .apply(&[ev(need("b1", 1, "n")), ev(three.clone())], at(0))
            .unwrap();
        assert_eq!(o.boards["b1"].ack.seq, 1);
    }
    let mut s = Store::open(&path).unwrap();
    // seq 3 is known to be stored: a re-send of it is a duplicate...
    let o = s.apply(&[ev(three)], at(1)).unwrap();
    assert_eq!((o.stats.stored, o.stats.duplicates), (2, 1));
    // ...and filling the gap moves the ack over it.
    let o = s.apply(&[ev(need("b1", 2, "n"))], at(2)).unwrap();
    assert_eq!(
        (o.boards["b1"].ack_moved, o.boards["b1"].ack.seq),
        (true, 3)
    );
    let mut again = Store::open(&path).unwrap();
    assert_eq!(again.boards()[0].1.last_seq, 3);
    let o = again.apply(&[ev(need("b1", 4, "n"))], at(3)).unwrap();
    assert_eq!(o.boards["b1"].ack.seq, 4);
}

#[test]
fn an_exact_duplicate_is_counted_and_republishes_the_ack() {
    let (_dir, mut s) = open();
    let first = need("b1", 1, "n");
    s.apply(&[ev(first.clone())], at(0)).unwrap();
    let o = s.apply(&[ev(first.clone())], at(1)).unwrap();
    let b = &o.boards["b1"];
    assert_eq!(b.ack.seq, 1);
    assert!(b.duplicate_at_or_below_ack && b.ack_due());
    assert_eq!(o.stats.duplicates, 1);
    assert_eq!(o.stats.stored, 1);
    assert!(o.alerts.is_empty());
}

#[test]
fn same_key_other_content_is_an_alert_and_the_first_is_kept() {
    let (_dir, mut s) = open();
    let first = need("b1", 1, "first");
    let mut second = need("b1", 1, "second");
    s.apply(&[ev(first.clone())], at(0)).unwrap();
    let o = s.apply(&[ev(second.clone())], at(1)).unwrap();
    assert_eq!(o.alerts.len(), 1);
    assert_eq!(o.alerts[0].stored_id, first.id.to_string());
    assert_eq!(o.stats.integrity_alerts, 1);

    // Same id, other data: also an alert.
    second.id = first.id;
    let o = s.apply(&[ev(second)], at(2)).unwrap();
    assert_eq!(o.alerts.len(), 1);
    assert_eq!(s.integrity_alerts().unwrap().len(), 2);

    let mut rows = Vec::new();
    s.for_each_event(|r| {
        rows.push(r);
        Ok::<_, StoreError>(())
    })
    .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, first.id.to_string());
    assert!(rows[0].data.contains("\"first\""), "{}", rows[0].data);
}

#[test]
fn a_duplicate_inside_one_batch_is_seen() {
    let (_dir, mut s) = open();
    let e = need("b1", 1, "n");
    let o = s.apply(&[ev(e.clone()), ev(e)], at(0)).unwrap();
    assert_eq!((o.stats.stored, o.stats.duplicates), (1, 1));
}

#[test]
fn rejections_are_counted_by_reason() {
    let (_dir, mut s) = open();
    let o = s
        .apply(
            &[
                Input::Rejected(Reason::MalformedJson),
                Input::Rejected(Reason::MalformedJson),
                Input::Rejected(Reason::BadSeq),
            ],
            at(0),
        )
        .unwrap();
    assert!(o.boards.is_empty());
    assert_eq!(o.stats.rejected["malformed_json"], 2);
    assert_eq!(o.stats.rejected["bad_seq"], 1);
    assert_eq!(o.stats.rejected["oversize"], 0);
    assert_eq!(o.stats.rejected.len(), Reason::ALL.len());
}

#[test]
fn status_follows_huddles_online_and_the_newest_event() {
    let (_dir, mut s) = open();
    let started = Envelope::new(
        "b1",
        1,
        at(1),
        true,
        &Event::HuddleStarted(HuddleStarted {
            huddle_id: "h".into(),
            scheduled_at: None,
            slot: None,
            started_by: "p01".into(),
            trigger: StartTrigger::TeamLeader,
            target_minutes: 15,
            agenda: vec![],
        }),
    );
    let o = s
        .apply(
            &[
                Input::Online {
                    area: "assembly".into(),
                    board: "b1".into(),
                    online: true,
                },
                ev(started),
            ],
            at(1),
        )
        .unwrap();
    let st = &o.boards["b1"].status;
    assert!(st.online);
    assert_eq!(st.huddle, HuddleState::InProgress);
    assert_eq!(st.last_event_at, Some(at(1)));

    let closed = Envelope::new(
        "b1",
        3,
        at(3),
        true,
        &Event::HuddleClosed(HuddleClosed {
            huddle_id: "h".into(),
            closed_by: "p01".into(),
            summary: serde_json::from_value(serde_json::json!({
                "present": 1, "expected": 1, "late": 0, "absent": [], "kpis_hit": 0,
                "kpis_reviewed": 0, "kpis_total": 0, "needs_raised": 0,
                "needs_escalated": 0, "actions_created": 0, "actions_closed": 0,
                "duration_s": 60, "target_s": 900
            }))
            .unwrap(),
        }),
    );
    let o = s.apply(&[ev(closed)], at(3)).unwrap();
    let st = &o.boards["b1"].status;
    assert_eq!(st.huddle, HuddleState::Closed);
    assert_eq!(st.last_seq, 1, "the gap at 2 holds the status's seq too");
    assert_eq!(st.last_event_at, Some(at(3)));
}

#[test]
fn a_newer_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agg.db");
    Store::open(&path).unwrap();
    let conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let e = Store::open(&path).err().unwrap().to_string();
    assert!(e.contains("schema version 99"), "{e}");
}
