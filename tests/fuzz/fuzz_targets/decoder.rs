//! Fuzzes the Wiegand decoder with arbitrary edge streams and configs.
//!
//! Each input byte pair is one edge: the low bit of the first byte picks
//! the line, the rest of the pair the gap since the previous edge (up to
//! ~65 ms, so glitches, normal spacing and silences all occur). The first
//! bytes choose the formats, keypad, silence and glitch threshold. The
//! decoder must never panic, and every card it reports must be a frame of
//! its format's length whose parity checks pass when decoded again alone.
#![no_main]

use std::time::Duration;

use huddle_board::kiosk::badge::wiegand::{
    Decoded, Decoder, DecoderConfig, Edge, Format, Formats, Keypad, Line,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&[mask, keypad, silence, glitch], rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let enabled: Vec<Format> = Format::ALL
        .into_iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, f)| f)
        .collect();
    let keypad = match keypad % 3 {
        0 => Keypad::None,
        1 => Keypad::FourBit,
        _ => Keypad::EightBit,
    };
    let mut decoder = Decoder::new(DecoderConfig {
        formats: Formats::new(&enabled, keypad),
        silence: Duration::from_millis(5 + u64::from(silence) % 100),
        glitch: Duration::from_micros(u64::from(glitch) % 200),
    });
    let mut at = Duration::from_secs(1);
    let mut reads = Vec::new();
    for pair in rest.chunks_exact(2) {
        let gap = (u64::from(pair[0] >> 1) << 9) | u64::from(pair[1]) << 1;
        // Occasionally step back in time: callbacks out of order.
        if pair[0] & 0x80 != 0 && at > Duration::from_micros(gap) {
            at -= Duration::from_micros(u64::from(pair[1]));
        } else {
            at += Duration::from_micros(gap);
        }
        let line = if pair[0] & 1 == 0 { Line::D0 } else { Line::D1 };
        reads.extend(decoder.edge(Edge { line, at }));
        if pair[1] == 0xFF {
            reads.extend(decoder.tick(at + Duration::from_millis(30)));
        }
    }
    reads.extend(decoder.finish());
    for read in reads {
        if let Ok(Decoded::Card(card)) = read.result {
            assert_eq!(read.frame.len(), card.format.bits());
            assert_eq!(card.format.decode(&read.frame), Ok(card));
        }
    }
});
