//! The Wiegand decoder against the format sheets, random input and timing,
//! and the `huddle-kiosk badge` field tools through the built binary.
//!
//! Parity is checked here by a reference written from HID's format sheets
//! (bits numbered from 1), not by the code under test. Randomness is a
//! fixed-seed xorshift, so every run sees the same cases.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use crate::support::Rng;
use huddle_board::kiosk::badge::wiegand::{
    edges_of, Card, Decoded, Decoder, DecoderConfig, Edge, Format, Formats, Frame, FrameRead,
    Keypad, Line, Refusal,
};

const KIOSK: &str = env!("CARGO_BIN_EXE_huddle-kiosk");

/// Whether the bits (1-based positions `from..=to`, plus `extra`) and the
/// parity bit at `at` hold `even` or odd ones.
fn parity_ok(bits: &[bool], at: usize, covered: impl Fn(usize) -> bool, even: bool) -> bool {
    let ones = (1..=bits.len())
        .filter(|&p| p != at && covered(p) && bits[p - 1])
        .count()
        + usize::from(bits[at - 1]);
    (ones % 2 == 0) == even
}

/// The format sheets' rules, bits numbered from 1.
fn reference_valid(format: Format, bits: &[bool]) -> bool {
    if bits.len() != format.bits() {
        return false;
    }
    match format {
        // P(1) even over 2-13, P(26) odd over 14-25.
        Format::H10301 => {
            parity_ok(bits, 1, |p| (2..=13).contains(&p), true)
                && parity_ok(bits, 26, |p| (14..=25).contains(&p), false)
        }
        // P(1) even over 2-17, P(34) odd over 18-33.
        Format::H10306 => {
            parity_ok(bits, 1, |p| (2..=17).contains(&p), true)
                && parity_ok(bits, 34, |p| (18..=33).contains(&p), false)
        }
        // P(2) even over 3-4, 6-7, ..., 33-34; P(35) odd over 2-3, 5-6,
        // ..., 32-33; P(1) odd over 2-35.
        Format::Corporate1000 => {
            parity_ok(bits, 2, |p| (3..=34).contains(&p) && p % 3 != 2, true)
                && parity_ok(bits, 35, |p| (2..=33).contains(&p) && p % 3 != 1, false)
                && parity_ok(bits, 1, |p| (2..=35).contains(&p), false)
        }
        // P(1) even over 2-19, P(37) odd over 19-36.
        Format::H10304 | Format::H10302 => {
            parity_ok(bits, 1, |p| (2..=19).contains(&p), true)
                && parity_ok(bits, 37, |p| (19..=36).contains(&p), false)
        }
    }
}

fn bools(frame: &Frame) -> Vec<bool> {
    (0..frame.len()).map(|i| frame.bit(i)).collect()
}

/// The facility and card fields by the sheets: (first bit from 1, width).
fn reference_fields(format: Format, bits: &[bool]) -> (Option<u64>, u64) {
    let field = |from: usize, width: usize| {
        bits[from - 1..from - 1 + width]
            .iter()
            .fold(0u64, |acc, &b| (acc << 1) | u64::from(b))
    };
    match format {
        Format::H10301 => (Some(field(2, 8)), field(10, 16)),
        Format::H10306 => (Some(field(2, 16)), field(18, 16)),
        Format::Corporate1000 => (Some(field(3, 12)), field(15, 20)),
        Format::H10304 => (Some(field(2, 16)), field(18, 19)),
        Format::H10302 => (None, field(2, 35)),
    }
}

fn one(format: Format) -> Formats {
    Formats::new(&[format], Keypad::None)
}

#[test]
fn every_format_round_trips_ten_thousand_values_and_the_extremes() {
    let mut rng = Rng(0x5EED_0001);
    for format in Format::ALL {
        let (mf, mc) = (format.max_facility(), format.max_card());
        let mut cases = vec![
            (0, 0),
            (mf, mc),
            (0, mc),
            (mf, 0),
            (mf / 2, mc / 2),
            (mf.min(1), 1),
        ];
        for _ in 0..10_000 {
            cases.push((rng.below(mf + 1), rng.below(mc + 1)));
        }
        for (facility, card) in cases {
            let frame = format.encode(facility, card).unwrap();
            assert_eq!(frame.len(), format.bits());
            let bits = bools(&frame);
            assert!(
                reference_valid(format, &bits),
                "{format} {facility}/{card}: {frame}"
            );
            let want_facility = (mf > 0).then_some(facility);
            assert_eq!(reference_fields(format, &bits), (want_facility, card));
            let got = one(format).decode(&frame);
            assert_eq!(
                got,
                Ok(Decoded::Card(Card {
                    format,
                    facility: want_facility,
                    card
                })),
                "{format} {facility}/{card}"
            );
            // And through the text form the field tool reads.
            assert_eq!(Frame::parse(&frame.to_string()), Ok(frame));
        }
        // Out of range values are refused, not wrapped.
        assert!(format.encode(0, mc + 1).is_err());
        if mf > 0 {
            assert!(format.encode(mf + 1, 0).is_err());
        }
    }
}

#[test]
fn every_single_bit_flip_is_refused() {
    let mut rng = Rng(0x5EED_0002);
    for format in Format::ALL {
        for _ in 0..300 {
            let facility = rng.below(format.max_facility() + 1);
            let card = rng.below(format.max_card() + 1);
            let frame = format.encode(facility, card).unwrap();
            for i in 0..frame.len() {
                let flipped = frame.flipped(i);
                assert!(!reference_valid(format, &bools(&flipped)));
                match one(format).decode(&flipped) {
                    Err(Refusal::Parity { format: f, .. }) => assert_eq!(f, format),
                    other => panic!("{format}: flipping bit {} gave {other:?}", i + 1),
                }
            }
        }
    }
}

#[test]
fn every_frame_one_bit_short_or_long_is_refused() {
    let mut rng = Rng(0x5EED_0003);
    // H10306 (34) and Corporate 1000 (35) are one bit apart: with both
    // enabled, a 34-bit frame with one bit too many is a 35-bit frame, and
    // only Corporate 1000's three parity bits tell (about 1 in 8 pass);
    // a 35-bit frame missing one meets H10306's two (about 1 in 4).
    let (mut cross, mut cross_passed) = (0u32, 0u32);
    for format in Format::ALL {
        for _ in 0..500 {
            let frame = format
                .encode(
                    rng.below(format.max_facility() + 1),
                    rng.below(format.max_card() + 1),
                )
                .unwrap();
            let mut longer = [frame, frame];
            longer[0].push(false);
            longer[1].push(true);
            for wrong in [frame.truncated(), longer[0], longer[1]] {
                // The format itself refuses any other length.
                assert!(
                    matches!(
                        one(format).decode(&wrong),
                        Err(Refusal::UnknownLength { .. })
                    ),
                    "{format}: {} bits",
                    wrong.len()
                );
                let all = Formats::all().decode(&wrong);
                match wrong.len() {
                    34 | 35 => {
                        cross += 1;
                        if let Ok(Decoded::Card(card)) = all {
                            // Accepted only as a genuinely valid frame of
                            // the neighbouring format.
                            assert!(reference_valid(card.format, &bools(&wrong)));
                            cross_passed += 1;
                        }
                    }
                    n => assert!(
                        matches!(all, Err(Refusal::UnknownLength { .. })),
                        "{format}: {n} bits gave {all:?}"
                    ),
                }
            }
        }
    }
    let rate = f64::from(cross_passed) / f64::from(cross);
    eprintln!("34/35-bit neighbours accepted: {cross_passed} of {cross} ({rate:.3})");
    assert!(
        (0.05..0.40).contains(&rate),
        "34/35-bit neighbours passed {cross_passed} of {cross}"
    );
}

fn decoder(formats: Formats) -> Decoder {
    Decoder::new(DecoderConfig {
        formats,
        ..DecoderConfig::default()
    })
}

/// Feeds edges, then the end of input; returns every frame read.
fn feed(decoder: &mut Decoder, edges: &[Edge]) -> Vec<FrameRead> {
    let mut out = Vec::new();
    for e in edges {
        out.extend(decoder.edge(*e));
    }
    out.extend(decoder.finish());
    out
}

fn cards(reads: &[FrameRead]) -> Vec<Card> {
    reads
        .iter()
        .filter_map(|r| match r.result {
            Ok(Decoded::Card(c)) => Some(c),
            _ => None,
        })
        .collect()
}

#[test]
fn random_edge_streams_never_yield_a_badge_with_bad_parity() {
    let mut rng = Rng(0x5EED_0004);
    let mut d = decoder(Formats::all());
    let mut t = Duration::from_secs(1);
    let (mut badges, mut frames) = (0u64, 0u64);
    for stream in 0..100_000u32 {
        let mut edges = Vec::new();
        if stream % 4 == 0 {
            // A valid frame, damaged: a flip, a lost or an extra bit, a
            // ringing or crosstalk edge, or nothing.
            let format = Format::ALL[rng.below(5) as usize];
            let frame = format
                .encode(
                    rng.below(format.max_facility() + 1),
                    rng.below(format.max_card() + 1),
                )
                .unwrap();
            let spacing = Duration::from_micros(rng.range(200, 3000));
            edges = edges_of(&frame, t, spacing);
            let i = rng.below(edges.len() as u64) as usize;
            match rng.below(5) {
                0 => edges[i].line = other(edges[i].line),
                1 => {
                    edges.remove(i);
                }
                2 => edges.insert(i, edges[i]),
                3 => {
                    let mut e = edges[i];
                    e.at += Duration::from_micros(rng.range(1, 199));
                    if rng.below(2) == 0 {
                        e.line = other(e.line);
                    }
                    edges.insert(i + 1, e);
                }
                _ => {}
            }
        } else {
            let mut at = t;
            for _ in 0..rng.below(80) {
                at += Duration::from_micros(match rng.below(10) {
                    0 => rng.below(200),
                    1 => rng.range(20_000, 40_000),
                    _ => rng.range(200, 3000),
                });
                let line = if rng.below(2) == 0 {
                    Line::D0
                } else {
                    Line::D1
                };
                edges.push(Edge { line, at });
            }
        }
        for r in feed(&mut d, &edges) {
            frames += 1;
            if let Ok(Decoded::Card(card)) = r.result {
                badges += 1;
                assert_eq!(r.frame.len(), card.format.bits());
                assert!(
                    reference_valid(card.format, &bools(&r.frame)),
                    "stream {stream}: a {} badge with bad parity: {}",
                    card.format,
                    r.frame
                );
                assert_eq!(
                    reference_fields(card.format, &bools(&r.frame)),
                    (card.facility, card.card)
                );
            }
        }
        t = edges.last().map_or(t, |e| e.at) + Duration::from_millis(100);
    }
    let stats = d.stats();
    eprintln!("100000 streams: {frames} frames, {badges} badges, {stats:?}");
    assert_eq!(stats.frames, frames);
    assert_eq!(stats.cards, badges);
    // The damaged-frame streams must have exercised the badge path.
    assert!(badges > 5_000, "only {badges} badges in {frames} frames");
    assert!(stats.refused > 50_000, "{stats:?}");
    assert!(stats.glitches > 0, "{stats:?}");
}

fn other(line: Line) -> Line {
    match line {
        Line::D0 => Line::D1,
        Line::D1 => Line::D0,
    }
}

fn h10301(facility: u64, card: u64) -> Frame {
    Format::H10301.encode(facility, card).unwrap()
}

#[test]
fn a_gap_just_under_the_silence_joins_and_just_over_splits() {
    let frame = h10301(18, 4242);
    let t = Duration::from_secs(5);
    let spacing = Duration::from_millis(1);
    let silence = DecoderConfig::default().silence;
    for (gap, joined) in [
        (silence - Duration::from_micros(100), true),
        (silence + Duration::from_micros(100), false),
    ] {
        // The same frame with the gap before bit 14.
        let mut edges = edges_of(&frame, t, spacing);
        for e in &mut edges[13..] {
            e.at += gap - spacing;
        }
        // All formats enabled, so 26 bits is not the longest: only the
        // silence ends the frame.
        let reads = feed(&mut decoder(Formats::all()), &edges);
        if joined {
            assert_eq!(reads.len(), 1);
            assert_eq!(cards(&reads)[0].card, 4242);
        } else {
            assert_eq!(reads.len(), 2);
            assert!(cards(&reads).is_empty());
            assert_eq!(reads[0].frame.len(), 13);
        }
    }
}

#[test]
fn tick_ends_a_frame_at_the_silence_not_before() {
    let mut d = decoder(Formats::all());
    let edges = edges_of(&h10301(1, 2), Duration::ZERO, Duration::from_millis(2));
    for e in &edges {
        assert!(d.edge(*e).is_empty());
    }
    let last = edges.last().unwrap().at;
    assert_eq!(d.tick(last + Duration::from_micros(24_999)), None);
    let r = d.tick(last + Duration::from_millis(25)).unwrap();
    assert_eq!(cards(&[r])[0].card, 2);
    assert_eq!(d.tick(last + Duration::from_secs(1)), None);
}

#[test]
fn any_pulse_spacing_from_200_us_to_20_ms_reads() {
    let mut rng = Rng(0x5EED_0005);
    let mut spacings: Vec<u64> = vec![200, 201, 1_000, 19_999, 20_000];
    spacings.extend((0..200).map(|_| rng.range(200, 20_000)));
    for micros in spacings {
        let frame = h10301(rng.below(256), rng.below(65_536));
        let edges = edges_of(
            &frame,
            Duration::from_secs(9),
            Duration::from_micros(micros),
        );
        let reads = feed(&mut decoder(Formats::all()), &edges);
        assert_eq!(reads.len(), 1, "{micros} µs");
        assert_eq!(reads[0].frame, frame, "{micros} µs");
        // Uneven spacing too: each gap anywhere in the range.
        let mut at = Duration::from_secs(9);
        let jittered: Vec<Edge> = (0..frame.len())
            .map(|i| {
                at += Duration::from_micros(rng.range(200, 20_000));
                Edge {
                    line: if frame.bit(i) { Line::D1 } else { Line::D0 },
                    at,
                }
            })
            .collect();
        assert_eq!(
            feed(&mut decoder(Formats::all()), &jittered)[0].frame,
            frame
        );
    }
}

#[test]
fn d0_and_d1_callbacks_out_of_order_by_less_than_a_pulse_still_read() {
    let mut rng = Rng(0x5EED_0006);
    for _ in 0..2_000 {
        let format = Format::ALL[rng.below(5) as usize];
        let frame = format
            .encode(
                rng.below(format.max_facility() + 1),
                rng.below(format.max_card() + 1),
            )
            .unwrap();
        let spacing = Duration::from_micros(rng.range(200, 2_000));
        let mut edges = edges_of(&frame, Duration::from_secs(3), spacing);
        // Each line's callback runs on its own thread: a D1 edge may be
        // delivered before the D0 edge just ahead of it (timestamps stay
        // the kernel's).
        let mut i = 0;
        while i + 1 < edges.len() {
            if edges[i].line != edges[i + 1].line && rng.below(2) == 0 {
                edges.swap(i, i + 1);
                i += 2;
            } else {
                i += 1;
            }
        }
        let reads = feed(&mut decoder(Formats::all()), &edges);
        assert_eq!(reads.len(), 1);
        assert_eq!(reads[0].frame, frame);
        assert!(matches!(reads[0].result, Ok(Decoded::Card(_))));
    }
}

#[test]
fn ringing_is_dropped_and_crosstalk_is_refused() {
    let frame = h10301(200, 60_000);
    let base = edges_of(&frame, Duration::from_secs(1), Duration::from_millis(1));
    // A second falling edge on the same line 40 µs later: ringing.
    let mut ringing = base.clone();
    let echo = Edge {
        at: ringing[5].at + Duration::from_micros(40),
        ..ringing[5]
    };
    ringing.insert(6, echo);
    let mut d = decoder(Formats::all());
    assert_eq!(cards(&feed(&mut d, &ringing))[0].card, 60_000);
    assert_eq!(d.stats().glitches, 1);
    // The other line 40 µs later: nobody can tell which bit was sent.
    let mut crosstalk = base.clone();
    crosstalk.insert(
        6,
        Edge {
            line: other(base[5].line),
            at: base[5].at + Duration::from_micros(40),
        },
    );
    let reads = feed(&mut decoder(Formats::all()), &crosstalk);
    assert_eq!(reads.len(), 1);
    assert!(matches!(reads[0].result, Err(Refusal::Noise { pairs: 1 })));
}

// ---- the field tools, through the built binary ----

fn kiosk(args: &[&str]) -> Output {
    Command::new(KIOSK)
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .expect("run huddle-kiosk")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).trim().to_owned()
}

fn write_config(dir: &Path, from: &str, to: &str) -> String {
    let shipped = include_str!("../../../config/kiosk.toml");
    assert!(shipped.contains(from), "fixture lost `{from}`");
    let path = dir.join("kiosk.toml");
    std::fs::write(&path, shipped.replacen(from, to, 1)).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn badge_decode_prints_one_json_line() {
    let bits = h10301(18, 4242).to_string();
    let o = kiosk(&["badge", "decode", &bits]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        r#"{"format":"H10301","bits":26,"facility":18,"card":4242,"badge":"4242"}"#
    );
    // Every format without a config; 37 bits read as H10304 unless asked.
    let bits = Format::H10302
        .encode(0, 34_359_738_367)
        .unwrap()
        .to_string();
    let o = kiosk(&["badge", "decode", &bits, "--format", "H10302"]);
    assert_eq!(
        stdout(&o),
        r#"{"format":"H10302","bits":37,"facility":null,"card":34359738367,"badge":"34359738367"}"#
    );
    let bits = Format::Corporate1000.encode(4095, 1).unwrap().to_string();
    let o = kiosk(&["badge", "decode", &bits]);
    assert!(stdout(&o).starts_with(r#"{"format":"C1000","bits":35,"facility":4095,"card":1,"#));
}

#[test]
fn badge_decode_names_the_failed_check() {
    let bad = h10301(18, 4242).flipped(3).to_string();
    let o = kiosk(&["badge", "decode", &bad]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "");
    assert!(
        stderr(&o).contains("parity: bit 1 of H10301 (even parity over bits 2-13)"),
        "{}",
        stderr(&o)
    );
    let o = kiosk(&["badge", "decode", "101"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("unknown length: 3 bits (enabled lengths: 26, 34, 35, 37)"),
        "{}",
        stderr(&o)
    );
    let o = kiosk(&["badge", "decode", "10a1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("character 3 is `a`"), "{}", stderr(&o));
}

#[test]
fn badge_decode_follows_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "number = \"card\"",
        "number = \"facility_card\"",
    );
    let bits = h10301(18, 4242).to_string();
    let o = kiosk(&["--config", &config, "badge", "decode", &bits]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let key = "demo-site-key-change-me";
    let hash = huddle_board::domain::hash_badge(key.as_bytes(), "1804242");
    assert_eq!(
        stdout(&o),
        format!(
            r#"{{"format":"H10301","bits":26,"facility":18,"card":4242,"badge":"1804242","hash":"{hash}"}}"#
        )
    );
    // A site on H10302 only: a 26-bit frame is an unknown length there.
    let config = write_config(
        dir.path(),
        "formats = [\"H10301\", \"H10306\", \"C1000\", \"H10304\"]",
        "formats = [\"H10302\"]",
    );
    let o = kiosk(&["--config", &config, "badge", "decode", &bits]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("enabled lengths: 37)"),
        "{}",
        stderr(&o)
    );
    // A bad key names the file and the key.
    let config = write_config(dir.path(), "glitch_us = 150", "glitch_us = 900");
    let o = kiosk(&["--config", &config, "badge", "decode", &bits]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&format!("{config}: key `badge.wiegand.glitch_us`")),
        "{}",
        stderr(&o)
    );
}

#[test]
fn keypad_keys_decode_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "keypad = \"none\"", "keypad = \"8bit\"");
    let o = kiosk(&["--config", &config, "badge", "decode", "10110100"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), r#"{"key":"4","bits":8}"#);
}

/// The gpio source: in a build without the feature, a clear refusal; with
/// it, on this machine (no Raspberry Pi), rppal's refusal in our words.
#[test]
fn gpio_source_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), "source = \"keyboard\"", "source = \"gpio\"");
    let o = Command::new(KIOSK)
        .args(["--config", &config, "badge", "watch"])
        .env("HUDDLE_DATA_DIR", &data)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    if cfg!(feature = "gpio") {
        assert!(
            err.contains(&format!(
                "the badge source is GPIO but this is not a Raspberry Pi; set badge.source to keyboard or simulated in {config}"
            )),
            "{err}"
        );
    } else {
        assert!(err.contains("built without the `gpio` feature"), "{err}");
        // The board itself refuses to start the same way, naming the file.
        let o = Command::new(KIOSK)
            .args(["--config", &config, "run"])
            .env("HUDDLE_DATA_DIR", &data)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1));
        let err = stderr(&o);
        assert!(err.contains("built without the `gpio` feature"), "{err}");
        assert!(err.contains(&config), "{err}");
    }
}
