//! The badge readers: a badge number exists in clear only between the
//! reader and [`crate::domain::hash_badge`]; the roster, the database and
//! every event hold the keyed hash. Readers sit behind one small
//! trait, [`BadgeSource`]: the keyboard-wedge reader types into the window
//! (its digits reach [`KeyboardWedge`] from the UI), the simulated source
//! reads lines from a FIFO or stdin ([`LineSource`]), and a Wiegand reader
//! on the Pi's GPIO is the pure [`wiegand`] decoder behind the `gpio`
//! adapter (feature `gpio`, the only code that names rppal). [`tools`]
//! opens the configured source and holds the technician's field tools.

use std::fmt;
use std::io::BufRead;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

#[cfg(feature = "gpio")]
pub mod gpio;
pub mod tools;
pub mod wiegand;

/// One badge read by a reader, in clear until it is hashed.
#[derive(Clone, PartialEq, Eq)]
pub struct BadgeRead {
    /// The badge number as digits.
    pub number: String,
}

impl fmt::Debug for BadgeRead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print a badge number into logs.
        write!(f, "BadgeRead({} digits)", self.number.len())
    }
}

/// What a badge source sends to the board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadgeInput {
    /// A badge was read.
    Read(BadgeRead),
    /// A frame was read but is not a badge (bad parity, unknown length):
    /// the screen asks to tap again.
    Unreadable(String),
}

/// A badge reader that runs on its own thread and sends what it reads.
pub trait BadgeSource: Send {
    /// Reads until the reader ends or `out` is closed.
    fn run(self: Box<Self>, out: Sender<BadgeInput>);
}

/// Badge numbers, one per line, from any reader: a FIFO, a file or stdin.
/// Lines that are not digits are reported as unreadable.
pub struct LineSource<R> {
    reader: R,
}

impl<R: BufRead + Send> LineSource<R> {
    /// Wraps a reader.
    pub fn new(reader: R) -> Self {
        LineSource { reader }
    }
}

impl<R: BufRead + Send> BadgeSource for LineSource<R> {
    fn run(self: Box<Self>, out: Sender<BadgeInput>) {
        forward_lines(self.reader, &out);
    }
}

/// Sends each line as a badge input; false when the receiver is gone.
fn forward_lines(reader: impl BufRead, out: &Sender<BadgeInput>) -> bool {
    for line in reader.lines() {
        let Ok(line) = line else { break };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let input = if line.chars().all(|c| c.is_ascii_digit()) {
            BadgeInput::Read(BadgeRead {
                number: line.to_owned(),
            })
        } else {
            BadgeInput::Unreadable("not a badge number".to_owned())
        };
        if out.send(input).is_err() {
            return false;
        }
    }
    true
}

/// A simulated source on a FIFO: reopened after every writer closes it, so
/// that `echo 1001 > FIFO` works again and again.
pub struct FifoSource {
    path: std::path::PathBuf,
}

impl FifoSource {
    /// Reads the FIFO (or file) at `path`.
    pub fn new(path: impl Into<std::path::PathBuf>) -> Self {
        FifoSource { path: path.into() }
    }
}

impl BadgeSource for FifoSource {
    fn run(self: Box<Self>, out: Sender<BadgeInput>) {
        loop {
            let file = match std::fs::File::open(&self.path) {
                Ok(f) => f,
                Err(e) => {
                    tracing::error!(path = %self.path.display(), error = %e, "cannot open the simulated badge source");
                    return;
                }
            };
            let is_fifo = file.metadata().map(|m| is_fifo(&m)).unwrap_or(false);
            if !forward_lines(std::io::BufReader::new(file), &out) || !is_fifo {
                return;
            }
        }
    }
}

fn is_fifo(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    meta.file_type().is_fifo()
}

/// Collects the keys a keyboard-wedge reader types: digits then Enter.
/// A half-typed number older than the timeout is dropped, so that it does
/// not join the next badge.
#[derive(Debug)]
pub struct KeyboardWedge {
    digits: String,
    last_key: Option<Instant>,
    timeout: Duration,
    min_digits: usize,
}

impl KeyboardWedge {
    /// `timeout` between keys; `min_digits` make a badge.
    pub fn new(timeout: Duration, min_digits: usize) -> Self {
        KeyboardWedge {
            digits: String::new(),
            last_key: None,
            timeout,
            min_digits,
        }
    }

    /// One key typed at `now`: a digit, or `"\n"` / `"\r"` for Enter.
    /// Returns a badge when Enter completes one.
    pub fn key(&mut self, text: &str, now: Instant) -> Option<BadgeRead> {
        if self
            .last_key
            .is_some_and(|t| now.saturating_duration_since(t) > self.timeout)
        {
            self.digits.clear();
        }
        self.last_key = Some(now);
        match text {
            "\n" | "\r" => {
                let digits = std::mem::take(&mut self.digits);
                (digits.len() >= self.min_digits).then_some(BadgeRead { number: digits })
            }
            t if t.len() == 1 && t.chars().all(|c| c.is_ascii_digit()) => {
                if self.digits.len() < 32 {
                    self.digits.push_str(t);
                }
                None
            }
            _ => {
                self.digits.clear();
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_never_shows_its_number_in_logs() {
        let read = BadgeRead {
            number: "4242".into(),
        };
        assert!(!format!("{read:?}").contains("4242"));
    }

    #[test]
    fn wedge_reads_digits_then_enter() {
        let mut w = KeyboardWedge::new(Duration::from_millis(300), 3);
        let t = Instant::now();
        for (i, d) in ["1", "0", "0", "1"].iter().enumerate() {
            assert_eq!(w.key(d, t + Duration::from_millis(i as u64 * 10)), None);
        }
        assert_eq!(
            w.key("\n", t + Duration::from_millis(50)).unwrap().number,
            "1001"
        );
        // Too short: not a badge.
        w.key("1", t + Duration::from_millis(60));
        assert_eq!(w.key("\n", t + Duration::from_millis(70)), None);
    }

    #[test]
    fn wedge_drops_a_stale_half_number() {
        let mut w = KeyboardWedge::new(Duration::from_millis(300), 3);
        let t = Instant::now();
        w.key("9", t);
        w.key("9", t + Duration::from_millis(10));
        // A pause longer than the timeout: the 99 is dropped.
        for (i, d) in ["1", "2", "3"].iter().enumerate() {
            w.key(d, t + Duration::from_millis(400 + i as u64 * 10));
        }
        assert_eq!(
            w.key("\r", t + Duration::from_millis(450)).unwrap().number,
            "123"
        );
        // Any other key resets.
        w.key("5", t + Duration::from_millis(500));
        w.key("5", t + Duration::from_millis(510));
        w.key("5", t + Duration::from_millis(520));
        w.key("a", t + Duration::from_millis(530));
        assert_eq!(w.key("\n", t + Duration::from_millis(540)), None);
    }

    #[test]
    fn line_source_reports_digits_and_refuses_the_rest() {
        let (tx, rx) = std::sync::mpsc::channel();
        Box::new(LineSource::new(std::io::Cursor::new(
            "1001\n\nabc\n 2002 \n",
        )))
        .run(tx);
        let got: Vec<_> = rx.try_iter().collect();
        assert_eq!(
            got,
            vec![
                BadgeInput::Read(BadgeRead {
                    number: "1001".into()
                }),
                BadgeInput::Unreadable("not a badge number".into()),
                BadgeInput::Read(BadgeRead {
                    number: "2002".into()
                }),
            ]
        );
    }
}
