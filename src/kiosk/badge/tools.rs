//! The badge tools of `huddle-kiosk`: opening the configured source, and
//! the field tools a technician runs at a board (`badge decode`,
//! `badge watch`). The binary only parses arguments and calls these.

use crate::kiosk::badge::{BadgeSource, FifoSource, LineSource};
use crate::kiosk::config::{BadgeSourceKind, KioskConfig};

/// The badge source `badge.source` names: none for the keyboard wedge
/// (the window collects its keys), stdin or a FIFO when simulated, the
/// Wiegand reader on GPIO (feature `gpio`).
pub fn open_source(config: &KioskConfig) -> anyhow::Result<Option<Box<dyn BadgeSource>>> {
    Ok(match config.badge.source {
        BadgeSourceKind::Keyboard => None,
        BadgeSourceKind::Simulated if config.badge.simulated_path == "-" => Some(Box::new(
            LineSource::new(std::io::BufReader::new(std::io::stdin())),
        )),
        BadgeSourceKind::Simulated => Some(Box::new(FifoSource::new(&config.badge.simulated_path))),
        #[cfg(feature = "gpio")]
        BadgeSourceKind::Gpio => Some(Box::new(crate::kiosk::badge::gpio::GpioWiegand::open(
            &config.badge.wiegand,
            &config.source,
        )?)),
        #[cfg(not(feature = "gpio"))]
        BadgeSourceKind::Gpio => anyhow::bail!(without_gpio(config)),
    })
}

#[cfg(not(feature = "gpio"))]
fn without_gpio(config: &KioskConfig) -> String {
    format!(
        "badge.source is gpio in {}, but this huddle-kiosk was built without the `gpio` feature: build it with `cargo build --release --features gpio`, or set badge.source to keyboard or simulated",
        config.source.display()
    )
}

/// One decoded frame, as `badge decode` prints it (fields in this order).
#[derive(serde::Serialize)]
struct DecodedJson {
    format: &'static str,
    bits: usize,
    facility: Option<u64>,
    card: u64,
    badge: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    hash: Option<String>,
}

/// A keypad key, as `badge decode` prints it.
#[derive(serde::Serialize)]
struct KeyJson {
    key: String,
    bits: usize,
}

/// `huddle-kiosk badge decode`: one frame of bits (`"0101..."`) decoded
/// with the configured formats (or all of them, or the one named), as one
/// JSON line; the hash only when a config file names the site key.
pub fn decode(
    config: &KioskConfig,
    configured: bool,
    bits: &str,
    format: Option<&str>,
) -> anyhow::Result<String> {
    use crate::kiosk::badge::wiegand::{Decoded, Format, Formats, Frame};
    let frame = Frame::parse(bits).map_err(anyhow::Error::msg)?;
    let wiegand = &config.badge.wiegand;
    let formats = match format {
        Some(name) => Formats::new(
            &[name.parse::<Format>().map_err(anyhow::Error::msg)?],
            wiegand.keypad,
        ),
        None if configured => Formats::new(&wiegand.formats, wiegand.keypad),
        None => Formats::all(),
    };
    let line = match formats.decode(&frame) {
        Ok(Decoded::Card(card)) => {
            let badge = wiegand.number.badge_number(&card);
            let hash = configured.then(|| {
                crate::domain::hash_badge(config.badge.site_key.as_bytes(), &badge).to_string()
            });
            serde_json::to_string(&DecodedJson {
                format: card.format.name(),
                bits: frame.len(),
                facility: card.facility,
                card: card.card,
                badge,
                hash,
            })?
        }
        Ok(Decoded::Key(key)) => serde_json::to_string(&KeyJson {
            key: key.as_char().to_string(),
            bits: frame.len(),
        })?,
        Err(refusal) => anyhow::bail!("{refusal}"),
    };
    Ok(line)
}

/// `huddle-kiosk badge watch`: every frame read from the configured pins,
/// live, with the decoded badge or why it was refused.
#[cfg(feature = "gpio")]
pub fn watch(config: &KioskConfig) -> anyhow::Result<()> {
    use crate::kiosk::badge::wiegand::Decoded;
    use std::io::Write;
    let wiegand = &config.badge.wiegand;
    let mut reader = crate::kiosk::badge::gpio::GpioWiegand::open(wiegand, &config.source)?;
    eprintln!(
        "watching D0 on GPIO {} and D1 on GPIO {} ({}); tap a badge, Ctrl-C to stop",
        wiegand.d0_pin,
        wiegand.d1_pin,
        config.source.display()
    );
    let mut out = std::io::stdout().lock();
    while let Some(read) = reader.next_frame() {
        let verdict = match &read.result {
            Ok(Decoded::Card(card)) => format!(
                "{} facility {} card {} -> badge {}",
                card.format,
                card.facility.map_or("-".to_owned(), |f| f.to_string()),
                card.card,
                wiegand.number.badge_number(card)
            ),
            Ok(Decoded::Key(key)) => format!("key {}", key.as_char()),
            Err(refusal) => format!("REFUSED {refusal}"),
        };
        let stats = reader.stats();
        writeln!(
            out,
            "{:>2} bits {} -> {verdict} [frames {} refused {} glitches {}]",
            read.frame.len(),
            read.frame,
            stats.frames,
            stats.refused,
            stats.glitches
        )?;
        out.flush()?;
    }
    anyhow::bail!("the GPIO interrupt threads stopped")
}
