//! The Wiegand reader on the Raspberry Pi's GPIO: the only file that names
//! rppal (feature `gpio`), so that the GPIO library stays replaceable.
//!
//! D0 and D1 are inputs with pull-ups (a Wiegand line idles high and the
//! reader pulls it low for each bit) and asynchronous interrupts on falling
//! edges, without debounce: pulses are 20-100 µs, shorter than any debounce
//! would keep, and ringing is the decoder's glitch rule. rppal calls each
//! pin's callback on its own thread with the kernel's timestamp of the
//! edge; both callbacks send into one channel, and the pure
//! [`Decoder`](super::wiegand::Decoder) orders the edges by timestamp. When
//! no edge arrives for the silence time, the frame under way ends.
//!
//! # Troubleshooting
//!
//! - *Not a Raspberry Pi*: rppal identifies the board from the device tree;
//!   elsewhere it refuses, and so does this source, naming the config file.
//! - *Permission denied* on `/dev/gpiochip0` or `/dev/gpiomem`: the user
//!   that runs the kiosk must be in the `gpio` group
//!   (`sudo usermod -aG gpio USER`, then log in again).
//! - *Pin in use*: another program (or a device-tree overlay) holds the
//!   pin; pick other BCM pins in `badge.wiegand`.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};

use rppal::gpio::{Event, Gpio, InputPin, Trigger};

use super::wiegand::{badge_input, Decoded, Decoder, Edge, FrameRead, Line, Normalise, Stats};
use super::{BadgeInput, BadgeSource};
use crate::kiosk::config::WiegandConfig;

/// Why the GPIO reader cannot start; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum GpioWiegandError {
    /// rppal does not recognise the machine.
    #[error(
        "the badge source is GPIO but this is not a Raspberry Pi; set badge.source to keyboard or simulated in {}",
        file.display()
    )]
    NotAPi {
        /// The configuration file to change.
        file: PathBuf,
    },
    /// The GPIO device cannot be opened by this user.
    #[error(
        "permission denied on {device}: add the user that runs the kiosk to the `gpio` group (sudo usermod -aG gpio $USER, then log in again)"
    )]
    PermissionDenied {
        /// The device node rppal tried.
        device: String,
    },
    /// A configured pin is held elsewhere or does not exist.
    #[error("GPIO {pin} ({key} in {}): {problem}", file.display())]
    Pin {
        /// BCM number.
        pin: u8,
        /// `badge.wiegand.d0_pin` or `d1_pin`.
        key: &'static str,
        /// The configuration file.
        file: PathBuf,
        /// What rppal said, with the remedy.
        problem: String,
    },
    /// Anything else rppal reports.
    #[error("GPIO: {0}")]
    Other(String),
}

/// A Wiegand reader on two GPIO pins.
pub struct GpioWiegand {
    // The pins hold their interrupts: dropping them stops the callbacks.
    _d0: InputPin,
    _d1: InputPin,
    edges: Receiver<Edge>,
    decoder: Decoder,
    /// A frame ended by the same edge as the one returned before it.
    pending: Option<FrameRead>,
    number: Normalise,
}

impl GpioWiegand {
    /// Opens the configured pins. `file` is the configuration file, named in
    /// errors.
    pub fn open(config: &WiegandConfig, file: &Path) -> Result<GpioWiegand, GpioWiegandError> {
        let gpio = Gpio::new().map_err(|e| gpio_error(e, file))?;
        let (tx, edges) = mpsc::channel();
        let d0 = input(
            &gpio,
            config.d0_pin,
            "badge.wiegand.d0_pin",
            Line::D0,
            &tx,
            file,
        )?;
        let d1 = input(
            &gpio,
            config.d1_pin,
            "badge.wiegand.d1_pin",
            Line::D1,
            &tx,
            file,
        )?;
        Ok(GpioWiegand {
            _d0: d0,
            _d1: d1,
            edges,
            decoder: Decoder::new(config.decoder()),
            pending: None,
            number: config.number,
        })
    }

    /// Blocks until the next frame ends; none when the callbacks are gone.
    pub fn next_frame(&mut self) -> Option<FrameRead> {
        if let Some(frame) = self.pending.take() {
            return Some(frame);
        }
        let silence = self.decoder.config().silence;
        loop {
            match self.edges.recv_timeout(silence) {
                Ok(edge) => {
                    // An edge ends at most two frames (the previous one
                    // after a silence, its own at the longest length).
                    let mut frames = self.decoder.edge(edge).into_iter();
                    if let Some(first) = frames.next() {
                        if let Some(second) = frames.next() {
                            self.pending = Some(second);
                        }
                        return Some(first);
                    }
                }
                // Nothing for the silence time: the frame under way is done.
                Err(RecvTimeoutError::Timeout) => {
                    if let Some(frame) = self.decoder.finish() {
                        return Some(frame);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return self.decoder.finish(),
            }
        }
    }

    /// The decoder's counters.
    pub fn stats(&self) -> Stats {
        self.decoder.stats()
    }
}

fn input(
    gpio: &Gpio,
    pin: u8,
    key: &'static str,
    line: Line,
    tx: &Sender<Edge>,
    file: &Path,
) -> Result<InputPin, GpioWiegandError> {
    let pin_error = |e: rppal::gpio::Error| match e {
        rppal::gpio::Error::PinUsed(_) => GpioWiegandError::Pin {
            pin,
            key,
            file: file.to_owned(),
            problem: "already in use (by another program or an overlay): choose another pin".into(),
        },
        rppal::gpio::Error::PinNotAvailable(_) => GpioWiegandError::Pin {
            pin,
            key,
            file: file.to_owned(),
            problem: "this Pi has no such GPIO: use a BCM number, not a header pin number".into(),
        },
        other => gpio_error(other, file),
    };
    let mut input = gpio.get(pin).map_err(pin_error)?.into_input_pullup();
    let tx = tx.clone();
    input
        .set_async_interrupt(Trigger::FallingEdge, None, move |event: Event| {
            // A closed channel means the reader is shutting down.
            let _ = tx.send(Edge {
                line,
                at: event.timestamp,
            });
        })
        .map_err(pin_error)?;
    Ok(input)
}

fn gpio_error(e: rppal::gpio::Error, file: &Path) -> GpioWiegandError {
    match e {
        rppal::gpio::Error::UnknownModel => GpioWiegandError::NotAPi {
            file: file.to_owned(),
        },
        rppal::gpio::Error::PermissionDenied(device) => {
            GpioWiegandError::PermissionDenied { device }
        }
        rppal::gpio::Error::Io(io) if io.kind() == std::io::ErrorKind::PermissionDenied => {
            GpioWiegandError::PermissionDenied {
                device: "/dev/gpiochip0".into(),
            }
        }
        other => GpioWiegandError::Other(other.to_string()),
    }
}

impl BadgeSource for GpioWiegand {
    fn run(mut self: Box<Self>, out: Sender<BadgeInput>) {
        while let Some(read) = self.next_frame() {
            if let Err(refusal) = &read.result {
                let stats = self.decoder.stats();
                tracing::warn!(
                    bits = read.frame.len(),
                    kind = refusal.kind(),
                    %refusal,
                    refused = stats.refused,
                    frames = stats.frames,
                    "Wiegand frame refused"
                );
            }
            if let Ok(Decoded::Key(key)) = read.result {
                tracing::debug!(key = %key.as_char(), "keypad key (PIN entry is not wired yet)");
            }
            if let Some(input) = badge_input(&read, self.number) {
                if out.send(input).is_err() {
                    return;
                }
            }
        }
        tracing::error!("the GPIO badge reader stopped: its interrupt threads are gone");
    }
}
