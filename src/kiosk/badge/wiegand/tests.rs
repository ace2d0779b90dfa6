//! The decoder's unit tests: every timing and format case, fed edges by hand.

use super::*;

fn bits(s: &str) -> Frame {
    Frame::parse(s).unwrap()
}

#[test]
fn h10301_known_frame() {
    // Facility 18, card 4242, worked by hand: facility 00010010, card
    // 0001000010010010; bits 2-13 hold 3 ones (even parity 1), bits
    // 14-25 hold 3 ones (odd parity 0).
    let f = Format::H10301.encode(18, 4242).unwrap();
    assert_eq!(f.to_string(), "10001001000010000100100100");
    let card = Format::H10301.decode(&f).unwrap();
    assert_eq!((card.facility, card.card), (Some(18), 4242));
}

#[test]
fn corporate_1000_parity_layout() {
    let f = Format::Corporate1000.encode(0, 0).unwrap();
    // All data zero: bit 2 even → 0, bit 35 odd → 1, bit 1 odd over
    // bits 2-35 (one 1) → 0.
    assert_eq!(f.to_string(), format!("0{}1", "0".repeat(33)));
    assert!(Format::Corporate1000.decode(&f).is_ok());
}

#[test]
fn parity_refusal_names_the_bit() {
    let f = Format::H10301.encode(18, 4242).unwrap().flipped(20);
    let e = Formats::all().decode(&f).unwrap_err();
    assert_eq!(
        e.to_string(),
        "parity: bit 26 of H10301 (odd parity over bits 14-25) does not match"
    );
    let e = Formats::all().decode(&bits("1010")).unwrap_err();
    assert!(e.to_string().starts_with("unknown length: 4 bits"), "{e}");
}

#[test]
fn keypad_frames() {
    let four = Formats::new(&[Format::H10301], Keypad::FourBit);
    assert_eq!(four.decode(&bits("0111")), Ok(Decoded::Key(Key::Digit(7))));
    assert_eq!(four.decode(&bits("1011")), Ok(Decoded::Key(Key::Hash)));
    assert!(four.decode(&bits("1111")).is_err());
    assert!(four.decode(&bits("11100001")).is_err());
    let eight = Formats::new(&[Format::H10301], Keypad::EightBit);
    assert_eq!(
        eight.decode(&bits("11100001")),
        Ok(Decoded::Key(Key::Digit(1)))
    );
    assert_eq!(eight.decode(&bits("01011010")), Ok(Decoded::Key(Key::Star)));
    assert!(eight.decode(&bits("11110001")).is_err());
    assert!(eight.decode(&bits("0001")).is_err());
}

#[test]
fn normalisation() {
    let card = Card {
        format: Format::H10301,
        facility: Some(18),
        card: 4242,
    };
    assert_eq!(Normalise::Card.badge_number(&card), "4242");
    assert_eq!(Normalise::FacilityCard.badge_number(&card), "1804242");
    assert_eq!(Normalise::DataBits.badge_number(&card), "1183890");
    let no_facility = Card {
        format: Format::H10302,
        facility: None,
        card: 77,
    };
    assert_eq!(Normalise::FacilityCard.badge_number(&no_facility), "77");
}

#[test]
fn frame_ends_at_silence_or_at_the_longest_length() {
    let config = DecoderConfig {
        formats: Formats::new(&[Format::H10301], Keypad::None),
        ..DecoderConfig::default()
    };
    let mut d = Decoder::new(config);
    let frame = Format::H10301.encode(1, 2).unwrap();
    let edges = edges_of(&frame, Duration::from_secs(1), Duration::from_millis(2));
    let mut out = Vec::new();
    for e in edges {
        out.extend(d.edge(e));
    }
    // 26 is the longest enabled length: no need to wait.
    assert_eq!(out.len(), 1);
    assert!(matches!(out[0].result, Ok(Decoded::Card(_))));
    // One more bit without a pause: refused as overlong.
    let extra = Edge {
        line: Line::D0,
        at: out[0].ended_at + Duration::from_millis(2),
    };
    assert!(d.edge(extra).is_empty());
    let r = d.tick(extra.at + Duration::from_millis(25)).unwrap();
    assert_eq!(r.result, Err(Refusal::Overlong));
    assert_eq!(d.stats().refused, 1);
}
