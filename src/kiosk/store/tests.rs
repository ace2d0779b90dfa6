//! The store's unit tests: `seq` without gaps, atomic actions, acks,
//! incarnations, the file's durability settings and a newer schema refused.

use chrono::{DateTime, Utc};
use rusqlite::Connection;

use super::*;
use crate::wire::event::{Envelope, Event};
use crate::wire::event::{NeedRef, UnknownBadge};
use crate::wire::payload::Ack;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-28T06:45:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn closed(n: &str) -> Event {
    Event::NeedClosed(NeedRef {
        need_id: n.into(),
        by: None,
    })
}

#[test]
fn seq_is_gap_free_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.db");
    {
        let mut s = Store::open(&path, "demo").unwrap();
        for i in 0..3 {
            let (_, envs) = s
                .transact(t0(), |tx| {
                    tx.emit(&closed(&i.to_string()))
                        .map_err(anyhow::Error::from)
                })
                .unwrap();
            assert_eq!(envs[0].seq, i + 1);
        }
    }
    let mut s = Store::open(&path, "demo").unwrap();
    assert_eq!(s.last_seq().unwrap(), 3);
    s.transact(t0(), |tx| {
        tx.emit(&closed("a"))?;
        tx.emit(&closed("b"))
    })
    .map_err(|e: StoreError| e)
    .unwrap();
    let seqs: Vec<u64> = s
        .events_since(0)
        .unwrap()
        .iter()
        .map(|b| serde_json::from_str::<Envelope>(b).unwrap().seq)
        .collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    assert_eq!(s.events_since(4).unwrap().len(), 1);
    assert_eq!(s.undelivered().unwrap(), 5);
}

#[test]
fn a_failed_action_leaves_neither_record_nor_event() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("k.db"), "demo").unwrap();
    let r: Result<((), _), anyhow::Error> = s.transact(t0(), |tx| {
        tx.conn()
            .execute(
                "INSERT INTO badges (hash, person_id, enrolled_at, enrolled_by) VALUES ('h', 'p1', 'x', 'p2')",
                [],
            )
            .map_err(|e| tx.err(e))?;
        tx.emit(&Event::UnknownBadge(UnknownBadge {
            badge_hash: crate::domain::hash_badge(b"k", "1"),
            huddle_id: None,
        }))?;
        // The record that follows violates a constraint: all must go.
        tx.conn()
            .execute("INSERT INTO attendance (huddle_id, person_id, arrived_at, late, via) VALUES ('nope', 'p', 'x', 0, 'badge')", [])
            .map_err(|e| tx.err(e))?;
        Ok(())
    });
    assert!(r.is_err());
    assert_eq!(s.last_seq().unwrap(), 0);
    assert!(s.events_since(0).unwrap().is_empty());
    let badges: i64 = s
        .read(|c| c.query_row("SELECT COUNT(*) FROM badges", [], |r| r.get(0)))
        .unwrap();
    assert_eq!(badges, 0);
    // And the next action gets seq 1.
    let (_, envs) = s
        .transact(t0(), |tx| {
            tx.emit(&closed("x")).map_err(anyhow::Error::from)
        })
        .unwrap();
    assert_eq!(envs[0].seq, 1);
}

#[test]
fn acks_mark_delivered_durably_and_pruning_keeps_seq() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.db");
    let mut s = Store::open(&path, "demo").unwrap();
    for i in 0..4 {
        s.transact(t0(), |tx| tx.emit(&closed(&i.to_string())))
            .map_err(|e: StoreError| e)
            .unwrap();
    }
    let d = s.mark_delivered(&ack(&s, 2), t0()).unwrap();
    assert_eq!((d.acked, d.last_seq, d.fork), (2, 4, None));
    assert_eq!(s.undelivered().unwrap(), 2);
    // Lower acks never lower it.
    assert_eq!(s.mark_delivered(&ack(&s, 1), t0()).unwrap().acked, 2);
    assert_eq!(s.mark_delivered(&ack(&s, 4), t0()).unwrap().acked, 4);
    assert_eq!(s.undelivered().unwrap(), 0);
    assert_eq!(s.outbox_rows(3, 4).unwrap().len(), 2);
    // Pruned rows leave the counter alone.
    assert_eq!(s.prune_delivered(t0()).unwrap(), 0);
    assert_eq!(
        s.prune_delivered(t0() + chrono::Duration::seconds(1))
            .unwrap(),
        4
    );
    drop(s);
    let mut s = Store::open(&path, "demo").unwrap();
    assert_eq!(s.acked().unwrap(), 4);
    let (_, envs) = s
        .transact(t0(), |tx| {
            tx.emit(&closed("x")).map_err(anyhow::Error::from)
        })
        .unwrap();
    assert_eq!(envs[0].seq, 5);
}

fn ack(s: &Store, seq: u64) -> Ack {
    Ack {
        board: "demo".into(),
        seq: 0,
        at: t0(),
        incarnations: vec![s.ack_for(seq).unwrap().expect("a row of this incarnation")],
    }
}

fn emit_n(s: &mut Store, n: usize) {
    for i in 0..n {
        s.transact(t0(), |tx| tx.emit(&closed(&i.to_string())))
            .map_err(|e: StoreError| e)
            .unwrap();
    }
}

#[test]
fn a_new_file_has_an_incarnation_and_its_envelopes_carry_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("k.db"), "demo").unwrap();
    let inc = s.incarnation().unwrap();
    assert_eq!((inc.base, inc.reason.as_str()), (1, "new file"));
    assert_eq!(inc.id.len(), 32);
    emit_n(&mut s, 2);
    let rows = s.outbox_rows(1, 2).unwrap();
    for row in &rows {
        let env: Envelope = serde_json::from_str(&row.body).unwrap();
        assert_eq!(
            (env.schema, env.incarnation.as_str(), env.base),
            (2, inc.id.as_str(), 1)
        );
    }
    // Another file for the same board is another incarnation.
    let other = Store::open(&dir.path().join("k2.db"), "demo").unwrap();
    assert_ne!(other.incarnation().unwrap().id, inc.id);
}

#[test]
fn a_late_ack_is_ignored_and_a_newer_lower_one_sends_again_what_the_site_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("k.db"), "demo").unwrap();
    emit_n(&mut s, 6);
    let hour = chrono::Duration::hours(1);
    let at = |mut a: Ack, t: DateTime<Utc>| {
        a.at = t;
        a
    };
    assert_eq!(s.mark_delivered(&ack(&s, 4), t0()).unwrap().acked, 4);
    // An ack older than the one that moved it, arriving late: ignored.
    let d = s
        .mark_delivered(&at(ack(&s, 2), t0() - hour), t0())
        .unwrap();
    assert_eq!((d.acked, d.rewound), (4, None));
    assert_eq!(s.undelivered().unwrap(), 2);
    // A newer ack that holds less: the site's file went back.
    let first = s.incarnation().unwrap();
    let d = s
        .mark_delivered(&at(ack(&s, 2), t0() + hour), t0())
        .unwrap();
    assert_eq!((d.acked, d.rewound, d.fork), (2, Some(4), None));
    assert_eq!(s.acked().unwrap(), 2);
    assert_eq!(s.undelivered().unwrap(), 4, "3 to 6 are to be sent again");
    assert_eq!(s.incarnation().unwrap(), first, "every row is still held");
    let d = s.mark_delivered(&at(ack(&s, 6), t0() + hour * 2), t0() + hour * 2);
    assert_eq!(d.unwrap().acked, 6);

    // When the rows it lost were pruned here, the rows still held move
    // into a new incarnation from the first of them.
    assert_eq!(s.prune_delivered(t0() + hour * 3).unwrap(), 6);
    emit_n(&mut s, 2);
    let d = s.mark_delivered(&at(ack(&s, 8), t0() + hour * 3), t0() + hour * 3);
    assert_eq!(d.unwrap().acked, 8);
    let mut back = ack(&s, 8);
    back.incarnations[0].seq = 4;
    back.incarnations[0].chain = "0".repeat(32);
    let d = s
        .mark_delivered(&at(back, t0() + hour * 4), t0() + hour * 4)
        .unwrap();
    let fork = d.fork.expect("a new incarnation past the pruned gap");
    assert_eq!((d.acked, d.rewound, fork.base), (6, Some(8), 7));
    assert_eq!(fork.old, first.id);
    assert_eq!(s.undelivered().unwrap(), 2, "7 and 8 are sent again");
    assert_eq!(s.incarnation().unwrap().base, 7);
}

#[test]
fn an_ack_that_is_not_this_files_starts_a_new_incarnation_and_marks_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.db");
    let mut s = Store::open(&path, "demo").unwrap();
    emit_n(&mut s, 4);
    s.mark_delivered(&ack(&s, 2), t0()).unwrap();
    let first = s.incarnation().unwrap();

    // Another incarnation's entry: ignored.
    let mut other = ack(&s, 3);
    other.incarnations[0].incarnation = "someone-else".into();
    let d = s.mark_delivered(&other, t0()).unwrap();
    assert_eq!((d.acked, d.fork.is_none()), (2, true));

    // Beyond the last seq (an older copy of the file): a fork.
    let mut beyond = ack(&s, 4);
    beyond.incarnations[0].seq = 9;
    let d = s.mark_delivered(&beyond, t0()).unwrap();
    let fork = d.fork.expect("a fork");
    assert_eq!(
        (d.acked, fork.old.as_str(), fork.base),
        (2, first.id.as_str(), 3)
    );
    assert_eq!(s.undelivered().unwrap(), 2, "nothing marked");
    let second = s.incarnation().unwrap();
    assert_eq!((second.id.as_str(), second.base), (fork.new.as_str(), 3));
    // The undelivered rows moved into it, ids and seqs kept.
    for row in s.outbox_rows(3, 4).unwrap() {
        let env: Envelope = serde_json::from_str(&row.body).unwrap();
        assert_eq!(
            (env.incarnation.as_str(), env.base),
            (second.id.as_str(), 3)
        );
    }
    // A digest that differs (a clone wrote other events): a fork again.
    let mut forged = ack(&s, 3);
    forged.incarnations[0].chain = "0".repeat(32);
    assert!(s.mark_delivered(&forged, t0()).unwrap().fork.is_some());
    // New events go on in the newest incarnation, and its own ack counts.
    emit_n(&mut s, 1);
    let d = s.mark_delivered(&ack(&s, 5), t0()).unwrap();
    assert_eq!((d.acked, d.fork), (5, None));
    assert_eq!(s.undelivered().unwrap(), 0);
    let third = s.incarnation().unwrap();
    assert_ne!(third.id, second.id);
    drop(s);
    let s = Store::open(&path, "demo").unwrap();
    assert_eq!(s.incarnation().unwrap(), third, "kept across reopen");
}

#[test]
fn wal_and_full_sync_are_set() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("k.db"), "demo").unwrap();
    let mode: String = s
        .read(|c| c.pragma_query_value(None, "journal_mode", |r| r.get(0)))
        .unwrap();
    let sync: i64 = s
        .read(|c| c.pragma_query_value(None, "synchronous", |r| r.get(0)))
        .unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(sync, 2, "synchronous=FULL");
}

#[test]
fn a_newer_database_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.db");
    drop(Store::open(&path, "demo").unwrap());
    let c = Connection::open(&path).unwrap();
    c.pragma_update(None, "user_version", 99).unwrap();
    drop(c);
    let e = Store::open(&path, "demo").err().unwrap();
    let msg = e.to_string();
    assert!(
        msg.contains("schema version 99") && msg.contains("newer"),
        "{msg}"
    );
    assert!(msg.contains(&path.display().to_string()), "{msg}");
}
