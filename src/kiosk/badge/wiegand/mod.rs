//! The Wiegand decoder: edges in, frames and badges out.
//!
//! A Wiegand reader sends each bit as a short low pulse (20-100 µs) on one of
//! two lines, D0 for a 0 and D1 for a 1, a few hundred microseconds to a few
//! milliseconds apart; a frame is the bits of one card or one key press,
//! followed by silence. This module is pure: it is fed [`Edge`]s (the line
//! and the kernel's timestamp of a falling edge) and the time when nothing
//! happened ([`Decoder::tick`]), and returns what it read. It does no I/O
//! and has no clock of its own, so every timing case is a plain test; the
//! GPIO adapter (`gpio.rs`) and the `badge watch` tool are its shells.
//!
//! Rules, in order:
//! - An edge on the same line as a kept edge less than `glitch` before or
//!   after it is ringing of the same pulse: dropped and counted. An edge on
//!   the *other* line that close is noise nobody can place (crosstalk, a
//!   missing common ground): the frame is refused as noisy.
//! - Edges are kept in timestamp order, so that the two lines' callbacks,
//!   which arrive on separate threads, may come out of order.
//! - A frame ends at `silence` after its last edge, or as soon as it holds
//!   as many bits as the longest enabled format (so a card of that format
//!   never waits for the silence). Bits beyond that start the next frame,
//!   which is refused as overlong.
//! - A frame is decoded by length with the enabled formats; a length no
//!   enabled format has, or any failed parity bit, is a [`Refusal`], never a
//!   badge.
//!
//! Bits are numbered from 1, the first bit sent, as in HID's format sheets;
//! the `badge decode` tool and every refusal use that numbering.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use super::{BadgeInput, BadgeRead};

/// One of the two data lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Line {
    /// A pulse on D0 is a 0 bit.
    D0,
    /// A pulse on D1 is a 1 bit.
    D1,
}

/// A falling edge on a line at a kernel timestamp (any monotonic origin).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    /// Which line fell.
    pub line: Line,
    /// When, on the clock that [`Decoder::tick`] is given.
    pub at: Duration,
}

/// The bits of one frame, first bit sent first (at most 64).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Frame {
    /// The bits, the last one sent in the least significant place.
    value: u64,
    /// How many bits.
    len: u8,
}

/// The longest frame kept; longer input is cut (no format comes near it).
pub const MAX_FRAME_BITS: usize = 64;

impl Frame {
    /// A frame of `len` bits (≤ 64) from their value, first bit most
    /// significant.
    pub fn new(value: u64, len: usize) -> Option<Frame> {
        if len > MAX_FRAME_BITS || (len < 64 && value >> len != 0) {
            return None;
        }
        Some(Frame {
            value,
            len: len as u8,
        })
    }

    /// Parses `0`/`1` characters, first bit sent first.
    pub fn parse(text: &str) -> Result<Frame, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("no bits given: write the frame as 0s and 1s, first bit first".into());
        }
        if text.len() > MAX_FRAME_BITS {
            return Err(format!(
                "{} bits is longer than any Wiegand format ({MAX_FRAME_BITS} at most)",
                text.len()
            ));
        }
        let mut frame = Frame::default();
        for (i, c) in text.chars().enumerate() {
            match c {
                '0' => frame.push(false),
                '1' => frame.push(true),
                other => {
                    return Err(format!(
                        "character {} is `{other}`: a frame is only 0s and 1s",
                        i + 1
                    ))
                }
            }
        }
        Ok(frame)
    }

    /// Number of bits.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether the frame holds no bit.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends a bit (ignored beyond 64 bits).
    pub fn push(&mut self, bit: bool) {
        if self.len() < MAX_FRAME_BITS {
            self.value = (self.value << 1) | u64::from(bit);
            self.len += 1;
        }
    }

    /// Bit at 0-based position `i` (0 is the first bit sent).
    pub fn bit(&self, i: usize) -> bool {
        i < self.len() && (self.value >> (self.len() - 1 - i)) & 1 == 1
    }

    /// `count` bits from 0-based position `start`, as a number.
    fn field(&self, start: usize, count: usize) -> u64 {
        (start..start + count).fold(0, |acc, i| (acc << 1) | u64::from(self.bit(i)))
    }

    /// The value, last bit least significant.
    pub fn value(&self) -> u64 {
        self.value
    }

    /// The same frame with the bit at 0-based `i` flipped.
    pub fn flipped(&self, i: usize) -> Frame {
        if i >= self.len() {
            return *self;
        }
        Frame {
            value: self.value ^ (1 << (self.len() - 1 - i)),
            len: self.len,
        }
    }

    /// The frame with its last bit removed.
    pub fn truncated(&self) -> Frame {
        if self.len == 0 {
            return *self;
        }
        Frame {
            value: self.value >> 1,
            len: self.len - 1,
        }
    }
}

impl fmt::Display for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for i in 0..self.len() {
            f.write_str(if self.bit(i) { "1" } else { "0" })?;
        }
        Ok(())
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A frame holds a badge number: print its length only.
        write!(f, "Frame({} bits)", self.len)
    }
}

/// A card format. H10304 and H10302 share the 37-bit length and the
/// parity rule, so a site enables one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum Format {
    /// HID's open 26-bit format: 8-bit facility, 16-bit card.
    H10301,
    /// 34 bits: 16-bit facility, 16-bit card.
    H10306,
    /// HID Corporate 1000, 35 bits: 12-bit company code, 20-bit card.
    #[serde(rename = "C1000")]
    Corporate1000,
    /// 37 bits: 16-bit facility, 19-bit card.
    H10304,
    /// 37 bits: 35-bit card, no facility.
    H10302,
}

/// How one parity bit is computed, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parity {
    /// The covered bits and this one hold an even number of 1s.
    Even,
    /// The covered bits and this one hold an odd number of 1s.
    Odd,
}

/// One parity check of a format: the bit (0-based) and what it covers.
struct Check {
    bit: usize,
    parity: Parity,
    covers: fn(usize) -> bool,
    /// The covered bits as a format sheet says them, numbered from 1.
    describe: &'static str,
}

impl Format {
    /// Every format, in the order `decode` tries them.
    pub const ALL: [Format; 5] = [
        Format::H10301,
        Format::H10306,
        Format::Corporate1000,
        Format::H10304,
        Format::H10302,
    ];

    /// The name in config and output.
    pub fn name(self) -> &'static str {
        match self {
            Format::H10301 => "H10301",
            Format::H10306 => "H10306",
            Format::Corporate1000 => "C1000",
            Format::H10304 => "H10304",
            Format::H10302 => "H10302",
        }
    }

    /// Frame length in bits.
    pub fn bits(self) -> usize {
        match self {
            Format::H10301 => 26,
            Format::H10306 => 34,
            Format::Corporate1000 => 35,
            Format::H10304 | Format::H10302 => 37,
        }
    }

    /// (first bit, width) of the facility field, 0-based; none for H10302.
    fn facility_field(self) -> Option<(usize, usize)> {
        match self {
            Format::H10301 => Some((1, 8)),
            Format::H10306 | Format::H10304 => Some((1, 16)),
            Format::Corporate1000 => Some((2, 12)),
            Format::H10302 => None,
        }
    }

    /// (first bit, width) of the card field, 0-based.
    fn card_field(self) -> (usize, usize) {
        match self {
            Format::H10301 => (9, 16),
            Format::H10306 => (17, 16),
            Format::Corporate1000 => (14, 20),
            Format::H10304 => (17, 19),
            Format::H10302 => (1, 35),
        }
    }

    /// Largest facility code (0 when the format has none).
    pub fn max_facility(self) -> u64 {
        self.facility_field().map_or(0, |(_, w)| (1 << w) - 1)
    }

    /// Largest card number.
    pub fn max_card(self) -> u64 {
        (1 << self.card_field().1) - 1
    }

    /// Width of the card field in bits.
    pub fn card_bits(self) -> usize {
        self.card_field().1
    }

    /// The parity checks, in the order they must be computed when encoding
    /// (Corporate 1000's bit 1 covers the other two).
    fn checks(self) -> &'static [Check] {
        const H10301: &[Check] = &[
            Check {
                bit: 0,
                parity: Parity::Even,
                covers: |i| (1..=12).contains(&i),
                describe: "bits 2-13",
            },
            Check {
                bit: 25,
                parity: Parity::Odd,
                covers: |i| (13..=24).contains(&i),
                describe: "bits 14-25",
            },
        ];
        const H10306: &[Check] = &[
            Check {
                bit: 0,
                parity: Parity::Even,
                covers: |i| (1..=16).contains(&i),
                describe: "bits 2-17",
            },
            Check {
                bit: 33,
                parity: Parity::Odd,
                covers: |i| (17..=32).contains(&i),
                describe: "bits 18-33",
            },
        ];
        const C1000: &[Check] = &[
            Check {
                bit: 1,
                parity: Parity::Even,
                covers: |i| (2..=33).contains(&i) && i % 3 != 1,
                describe: "bits 3-4, 6-7, ..., 33-34",
            },
            Check {
                bit: 34,
                parity: Parity::Odd,
                covers: |i| (1..=32).contains(&i) && i % 3 != 0,
                describe: "bits 2-3, 5-6, ..., 32-33",
            },
            Check {
                bit: 0,
                parity: Parity::Odd,
                covers: |i| (1..=34).contains(&i),
                describe: "bits 2-35",
            },
        ];
        const BITS37: &[Check] = &[
            Check {
                bit: 0,
                parity: Parity::Even,
                covers: |i| (1..=18).contains(&i),
                describe: "bits 2-19",
            },
            Check {
                bit: 36,
                parity: Parity::Odd,
                covers: |i| (18..=35).contains(&i),
                describe: "bits 19-36",
            },
        ];
        match self {
            Format::H10301 => H10301,
            Format::H10306 => H10306,
            Format::Corporate1000 => C1000,
            Format::H10304 | Format::H10302 => BITS37,
        }
    }

    /// The frame of a card in this format, or why it cannot be encoded.
    pub fn encode(self, facility: u64, card: u64) -> Result<Frame, String> {
        if facility > self.max_facility() {
            return Err(format!(
                "{} holds facility codes up to {}, not {facility}",
                self.name(),
                self.max_facility()
            ));
        }
        if card > self.max_card() {
            return Err(format!(
                "{} holds card numbers up to {}, not {card}",
                self.name(),
                self.max_card()
            ));
        }
        let len = self.bits();
        let place = |start: usize, width: usize, field: u64| field << (len - start - width);
        let mut value = 0u64;
        if let Some((start, width)) = self.facility_field() {
            value |= place(start, width, facility);
        }
        let (start, width) = self.card_field();
        value |= place(start, width, card);
        let mut frame = Frame::new(value, len).ok_or("field outside the frame")?;
        for check in self.checks() {
            if !check.holds(&frame) {
                frame = frame.flipped(check.bit);
            }
        }
        Ok(frame)
    }

    /// Decodes a frame of this format's length: fields, then every parity.
    pub fn decode(self, frame: &Frame) -> Result<Card, Refusal> {
        if frame.len() != self.bits() {
            return Err(Refusal::UnknownLength {
                bits: frame.len(),
                known: vec![self.bits()],
            });
        }
        for check in self.checks() {
            if !check.holds(frame) {
                return Err(Refusal::Parity {
                    format: self,
                    bit: check.bit + 1,
                    parity: check.parity,
                    covers: check.describe,
                });
            }
        }
        let (start, width) = self.card_field();
        Ok(Card {
            format: self,
            facility: self.facility_field().map(|(s, w)| frame.field(s, w)),
            card: frame.field(start, width),
        })
    }
}

impl Check {
    fn holds(&self, frame: &Frame) -> bool {
        let ones = (0..frame.len())
            .filter(|&i| (self.covers)(i) && frame.bit(i))
            .count()
            + usize::from(frame.bit(self.bit));
        match self.parity {
            Parity::Even => ones % 2 == 0,
            Parity::Odd => ones % 2 == 1,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        Format::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!("`{s}` is not a format: use H10301, H10306, C1000, H10304 or H10302")
            })
    }
}

/// A decoded card.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Card {
    /// Its format.
    pub format: Format,
    /// The facility (site, company) code; none in H10302.
    pub facility: Option<u64>,
    /// The card number.
    pub card: u64,
}

impl fmt::Debug for Card {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print a card number into logs.
        write!(f, "Card({})", self.format)
    }
}

/// A keypad key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// 0-9.
    Digit(u8),
    /// `*` (sent as 10; often "escape").
    Star,
    /// `#` (sent as 11; often "enter").
    Hash,
}

impl Key {
    fn from_code(code: u64) -> Option<Key> {
        match code {
            0..=9 => Some(Key::Digit(code as u8)),
            10 => Some(Key::Star),
            11 => Some(Key::Hash),
            _ => None,
        }
    }

    /// The key as a character.
    pub fn as_char(self) -> char {
        match self {
            Key::Digit(d) => char::from(b'0' + d),
            Key::Star => '*',
            Key::Hash => '#',
        }
    }
}

/// Which keypad frames a reader sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Keypad {
    /// No keypad: 4- and 8-bit frames are refused.
    #[default]
    None,
    /// One key per 4-bit frame (0-9, 10 = `*`, 11 = `#`).
    #[serde(rename = "4bit")]
    FourBit,
    /// One key per 8-bit frame: the complement of the key's 4 bits, then
    /// the 4 bits.
    #[serde(rename = "8bit")]
    EightBit,
}

/// What a frame decodes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// A card with valid parity.
    Card(Card),
    /// A keypad key.
    Key(Key),
}

/// Why a frame is not a badge (or a key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No enabled format has this length.
    UnknownLength {
        /// The frame's length.
        bits: usize,
        /// The lengths that are enabled.
        known: Vec<usize>,
    },
    /// A parity bit does not match.
    Parity {
        /// The format tried.
        format: Format,
        /// The parity bit, numbered from 1.
        bit: usize,
        /// Even or odd.
        parity: Parity,
        /// The bits it covers, numbered from 1.
        covers: &'static str,
    },
    /// A keypad frame that is no key.
    BadKey {
        /// What is wrong.
        why: &'static str,
    },
    /// Edges on both lines within the glitch threshold of each other.
    Noise {
        /// How many such pairs.
        pairs: usize,
    },
    /// Bits that came right after a frame of the longest length.
    Overlong,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::UnknownLength { bits, known } => {
                let known: Vec<String> = known.iter().map(|b| b.to_string()).collect();
                write!(
                    f,
                    "unknown length: {bits} bits (enabled lengths: {})",
                    known.join(", ")
                )
            }
            Refusal::Parity {
                format,
                bit,
                parity,
                covers,
            } => write!(
                f,
                "parity: bit {bit} of {format} ({} parity over {covers}) does not match",
                match parity {
                    Parity::Even => "even",
                    Parity::Odd => "odd",
                }
            ),
            Refusal::BadKey { why } => write!(f, "keypad frame: {why}"),
            Refusal::Noise { pairs } => write!(
                f,
                "noise: D0 and D1 fell together {pairs} time(s) (crosstalk, or no common ground)"
            ),
            Refusal::Overlong => write!(
                f,
                "overlong: these bits followed a frame of the longest enabled length without a pause"
            ),
        }
    }
}

impl Refusal {
    /// A short name, for counters and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::UnknownLength { .. } => "unknown_length",
            Refusal::Parity { .. } => "parity",
            Refusal::BadKey { .. } => "bad_key",
            Refusal::Noise { .. } => "noise",
            Refusal::Overlong => "overlong",
        }
    }
}

/// The enabled formats and keypad frames: turns frames into cards or keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Formats {
    enabled: Vec<Format>,
    keypad: Keypad,
}

impl Formats {
    /// The given formats (one per length: the first wins a shared length)
    /// and keypad frames.
    pub fn new(enabled: &[Format], keypad: Keypad) -> Formats {
        let mut kept: Vec<Format> = Vec::new();
        for f in enabled {
            if !kept.iter().any(|k| k.bits() == f.bits()) {
                kept.push(*f);
            }
        }
        Formats {
            enabled: kept,
            keypad,
        }
    }

    /// Every format (37 bits as H10304), no keypad: what `badge decode`
    /// uses without a configuration.
    pub fn all() -> Formats {
        Formats::new(&Format::ALL, Keypad::None)
    }

    /// The enabled formats.
    pub fn enabled(&self) -> &[Format] {
        &self.enabled
    }

    /// The keypad frames.
    pub fn keypad(&self) -> Keypad {
        self.keypad
    }

    /// Every length that is a card or a key.
    pub fn lengths(&self) -> Vec<usize> {
        let mut lengths: Vec<usize> = self.enabled.iter().map(|f| f.bits()).collect();
        match self.keypad {
            Keypad::None => {}
            Keypad::FourBit => lengths.push(4),
            Keypad::EightBit => lengths.push(8),
        }
        lengths.sort_unstable();
        lengths.dedup();
        lengths
    }

    /// The longest length: a frame ends as soon as it has this many bits.
    pub fn longest(&self) -> usize {
        self.lengths().last().copied().unwrap_or(MAX_FRAME_BITS)
    }

    /// Decodes one frame.
    pub fn decode(&self, frame: &Frame) -> Result<Decoded, Refusal> {
        match (self.keypad, frame.len()) {
            (Keypad::FourBit, 4) => {
                return Key::from_code(frame.value())
                    .map(Decoded::Key)
                    .ok_or(Refusal::BadKey {
                        why: "codes 12-15 are no key",
                    })
            }
            (Keypad::EightBit, 8) => {
                let (high, low) = (frame.value() >> 4, frame.value() & 0xF);
                if high != !low & 0xF {
                    return Err(Refusal::BadKey {
                        why: "the first 4 bits are not the complement of the last 4",
                    });
                }
                return Key::from_code(low)
                    .map(Decoded::Key)
                    .ok_or(Refusal::BadKey {
                        why: "codes 12-15 are no key",
                    });
            }
            _ => {}
        }
        match self.enabled.iter().find(|f| f.bits() == frame.len()) {
            Some(format) => format.decode(frame).map(Decoded::Card),
            None => Err(Refusal::UnknownLength {
                bits: frame.len(),
                known: self.lengths(),
            }),
        }
    }
}

/// How a decoded card becomes the badge number that the roster hashes.
///
/// A keyboard-wedge reader at another board may type the same card as its
/// card number only, or as facility and card: this setting makes a GPIO
/// board agree with the site's other readers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalise {
    /// The card number in decimal (18/4242 → `4242`).
    #[default]
    Card,
    /// The facility code, then the card number zero-padded to the width of
    /// the format's largest card number (H10301 18/4242 → `1804242`). A
    /// format without facility gives the card number.
    FacilityCard,
    /// The data bits between the parity bits as one binary number, in
    /// decimal (H10301 18/4242 → 18 × 65536 + 4242 = `1183890`).
    DataBits,
}

impl Normalise {
    /// The badge number of a card.
    pub fn badge_number(self, card: &Card) -> String {
        match (self, card.facility) {
            (Normalise::Card, _) | (_, None) => card.card.to_string(),
            (Normalise::FacilityCard, Some(facility)) => {
                let width = card.format.max_card().to_string().len();
                format!("{facility}{:0width$}", card.card)
            }
            (Normalise::DataBits, Some(facility)) => {
                ((facility << card.format.card_bits()) | card.card).to_string()
            }
        }
    }
}

/// What the decoder needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecoderConfig {
    /// Formats and keypad frames.
    pub formats: Formats,
    /// A frame ends after this long without an edge.
    pub silence: Duration,
    /// Edges closer than this are ringing (same line) or noise (both lines).
    pub glitch: Duration,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        DecoderConfig {
            formats: Formats::all(),
            silence: Duration::from_millis(25),
            glitch: Duration::from_micros(150),
        }
    }
}

/// One frame read: its bits and what they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameRead {
    /// The raw bits, first sent first.
    pub frame: Frame,
    /// The card or key, or why it is neither.
    pub result: Result<Decoded, Refusal>,
    /// Timestamp of the frame's last edge.
    pub ended_at: Duration,
}

/// Counters since the decoder started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames read, good or not.
    pub frames: u64,
    /// Cards with valid parity.
    pub cards: u64,
    /// Keypad keys.
    pub keys: u64,
    /// Frames refused.
    pub refused: u64,
    /// Edges dropped as ringing.
    pub glitches: u64,
}

/// The edge-to-frame state machine.
#[derive(Debug)]
pub struct Decoder {
    config: DecoderConfig,
    longest: usize,
    /// The current frame's edges, in timestamp order.
    edges: Vec<Edge>,
    /// Pairs of edges on both lines within the glitch threshold.
    noise_pairs: usize,
    /// The last frame ended at the longest length, at this time: bits that
    /// follow it without a pause are refused as overlong.
    cut_at: Option<Duration>,
    overlong: bool,
    stats: Stats,
}

impl Decoder {
    /// A decoder with no frame under way.
    pub fn new(config: DecoderConfig) -> Decoder {
        let longest = config.formats.longest();
        Decoder {
            config,
            longest,
            edges: Vec::with_capacity(MAX_FRAME_BITS),
            noise_pairs: 0,
            cut_at: None,
            overlong: false,
            stats: Stats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &DecoderConfig {
        &self.config
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Takes one edge. Returns the frames it completed: the previous frame
    /// when the edge comes after the silence, this one when it reaches the
    /// longest length.
    pub fn edge(&mut self, edge: Edge) -> Vec<FrameRead> {
        let mut out = Vec::new();
        if let Some(last) = self.edges.last() {
            if edge.at >= last.at + self.config.silence {
                out.extend(self.close());
            }
        }
        if self.edges.is_empty() {
            self.overlong = self
                .cut_at
                .is_some_and(|cut| edge.at < cut + self.config.silence);
            self.cut_at = None;
        }
        if self.insert(edge) && self.edges.len() >= self.longest {
            let ended_at = self.edges.last().map_or(edge.at, |e| e.at);
            out.extend(self.close());
            self.cut_at = Some(ended_at);
        }
        out
    }

    /// Nothing happened until `now`: ends the frame if it has been silent
    /// for the silence time.
    pub fn tick(&mut self, now: Duration) -> Option<FrameRead> {
        let last = self.edges.last()?;
        (now >= last.at + self.config.silence)
            .then(|| self.close())
            .flatten()
    }

    /// Ends the frame under way now, whatever the time (end of input).
    pub fn finish(&mut self) -> Option<FrameRead> {
        self.close()
    }

    /// Inserts an edge in timestamp order; false when it is ringing.
    fn insert(&mut self, edge: Edge) -> bool {
        let pos = self.edges.partition_point(|e| e.at <= edge.at);
        let glitch = self.config.glitch;
        let near = |e: &Edge| e.at.abs_diff(edge.at) < glitch;
        let neighbours = [
            pos.checked_sub(1).and_then(|i| self.edges.get(i)),
            self.edges.get(pos),
        ];
        if neighbours
            .iter()
            .flatten()
            .any(|e| e.line == edge.line && near(e))
        {
            self.stats.glitches += 1;
            return false;
        }
        self.noise_pairs += neighbours
            .iter()
            .flatten()
            .filter(|e| e.line != edge.line && near(e))
            .count();
        self.edges.insert(pos, edge);
        true
    }

    fn close(&mut self) -> Option<FrameRead> {
        let ended_at = self.edges.last()?.at;
        let mut frame = Frame::default();
        for e in self.edges.drain(..) {
            frame.push(e.line == Line::D1);
        }
        let result = if self.noise_pairs > 0 {
            Err(Refusal::Noise {
                pairs: self.noise_pairs,
            })
        } else if self.overlong {
            Err(Refusal::Overlong)
        } else {
            self.config.formats.decode(&frame)
        };
        self.noise_pairs = 0;
        self.overlong = false;
        self.cut_at = None;
        self.stats.frames += 1;
        match &result {
            Ok(Decoded::Card(_)) => self.stats.cards += 1,
            Ok(Decoded::Key(_)) => self.stats.keys += 1,
            Err(_) => self.stats.refused += 1,
        }
        Some(FrameRead {
            frame,
            result,
            ended_at,
        })
    }
}

/// What a frame means for the board: a badge (its number under
/// `number`), a refusal that asks to tap again, or nothing for a keypad key
/// (kept for PIN entry, which is not wired yet).
pub fn badge_input(read: &FrameRead, number: Normalise) -> Option<BadgeInput> {
    match &read.result {
        Ok(Decoded::Card(card)) => Some(BadgeInput::Read(BadgeRead {
            number: number.badge_number(card),
        })),
        Ok(Decoded::Key(_)) => None,
        Err(refusal) => Some(BadgeInput::Unreadable(refusal.to_string())),
    }
}

/// The edges a reader sends for a frame: one per bit, `spacing` apart from
/// `start`. For tests, the fuzz target and the benchmark.
pub fn edges_of(frame: &Frame, start: Duration, spacing: Duration) -> Vec<Edge> {
    (0..frame.len())
        .map(|i| Edge {
            line: if frame.bit(i) { Line::D1 } else { Line::D0 },
            at: start + spacing * i as u32,
        })
        .collect()
}

#[cfg(test)]
mod tests;
