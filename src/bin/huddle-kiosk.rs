//! huddle-kiosk: the touchscreen app at a huddle board.
//!
//! `huddle-kiosk [--config FILE]` runs the board; the subcommands are tools
//! for people who install and check boards. Without `--config` the kiosk
//! runs with its embedded defaults (the shipped `config/kiosk.toml`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use huddle_board::config::demo_secret_warning;
use huddle_board::domain::hash_badge;
use huddle_board::kiosk::app::Board;
use huddle_board::kiosk::badge::tools as badge;
use huddle_board::kiosk::config::KioskConfig;
use huddle_board::kiosk::store::Store;

/// The huddle board's touchscreen app.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// The configuration file (default: the embedded defaults, which are
    /// the shipped config/kiosk.toml).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the board (the default).
    Run,
    /// Render every screen to PNG files, headlessly, with demo data.
    Snapshot {
        /// Where to write the PNG files.
        #[arg(long)]
        out: PathBuf,
        /// Sizes as WIDTHxHEIGHT (default: 800x480 and 1280x800).
        #[arg(long = "size")]
        sizes: Vec<String>,
        /// Also write, beside each PNG, a JSON file of where each labelled
        /// element is (the Pi rig taps there).
        #[arg(long)]
        layout: bool,
        /// The language of the screens (en, de, es, fr, pl, or xx: every
        /// text 40 % longer with accents; default: the config's
        /// `board.language`).
        #[arg(long)]
        lang: Option<String>,
    },
    /// Print the board's events, oldest first, one JSON envelope per line,
    /// exactly as they go on the wire.
    Events {
        /// Only events after this seq.
        #[arg(long, default_value_t = 0)]
        since: u64,
    },
    /// Run N virtual boards through complete huddles with the real core,
    /// one SQLite file per board, and deliver their events.
    Simulate {
        /// How many boards (sim-001, sim-002, ...).
        #[arg(long, default_value_t = 3)]
        boards: usize,
        /// The first board's number (`--first 4`: sim-004, ...), so that
        /// several processes, each with its boards' own credentials, can
        /// share a site.
        #[arg(long, default_value_t = 1)]
        first: usize,
        /// Huddles per board, in total across restarts.
        #[arg(long, default_value_t = 5)]
        huddles: usize,
        /// User actions per second per board (0: as fast as the disk allows).
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
        /// Where the boards' files go (default: the config's data directory).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Seconds to wait for every board's ack at the end.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        /// Measure each event's commit -> ack latency; print p50/p99 to stderr.
        #[arg(long)]
        latency: bool,
    },
    /// Check the board as a technician would: config, data directory and
    /// file, clock, broker (DNS, TCP, TLS, login, ACL), backlog, display,
    /// input, fonts, GPIO, unit. One line per check, with the remedy for
    /// a failure; exits 1 if any failed.
    Doctor {
        /// Run only this check (repeatable): config, data, clock, broker,
        /// backlog, display, input, fonts, gpio, unit.
        #[arg(long = "check", value_name = "NAME")]
        checks: Vec<String>,
    },
    /// Print the keyed hash of a badge number, for roster files.
    HashBadge {
        /// The badge number.
        number: String,
    },
    /// Field tools for a Wiegand badge reader.
    Badge {
        #[command(subcommand)]
        command: BadgeCommand,
    },
}

#[derive(Subcommand)]
enum BadgeCommand {
    /// Decode a frame given as 0s and 1s (first bit sent first) with the
    /// configured formats, or every format without --config; print one JSON
    /// line, or exit 1 naming the failed check.
    Decode {
        /// The bits, e.g. 10001001000010000100100100.
        bits: String,
        /// Decode as this format only (H10301, H10306, C1000, H10304, H10302).
        #[arg(long)]
        format: Option<String>,
    },
    /// Print every frame read from the configured pins, live: the raw bits,
    /// then the decoded badge or why it was refused (needs the `gpio` build).
    Watch,
}

fn parse_size(text: &str) -> anyhow::Result<(u32, u32)> {
    let (w, h) = text
        .split_once('x')
        .context("a size is WIDTHxHEIGHT, e.g. 800x480")?;
    Ok((w.parse().context("width")?, h.parse().context("height")?))
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(Command::Doctor { checks }) = &cli.command {
        return doctor(cli.config.as_deref(), checks);
    }
    let config = KioskConfig::load_or_embedded(cli.config.as_deref())?;
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => {
            let source = badge::open_source(&config)?;
            tracing::info!(board = %config.board.id, db = %config.database_path().display(), "starting");
            if let Some(w) = demo_secret_warning(&config.demo_secrets(), &config.source) {
                tracing::warn!("{w}");
            }
            let board = Board::open(config, chrono::Utc::now())?;
            huddle_board::kiosk::ui::run(board, source)
        }
        Command::Snapshot {
            out,
            sizes,
            layout,
            lang,
        } => {
            let mut config = config;
            if let Some(lang) = lang {
                // The pseudo-locale is for looking at the layout only.
                if lang != huddle_board::kiosk::language::PSEUDO {
                    huddle_board::kiosk::language::check(&lang)
                        .map_err(|m| anyhow::anyhow!("--lang: {m} (or xx, the pseudo-locale)"))?;
                }
                config.board.language = lang;
            }
            let sizes = if sizes.is_empty() {
                huddle_board::kiosk::snapshot::SIZES.to_vec()
            } else {
                sizes
                    .iter()
                    .map(|s| parse_size(s))
                    .collect::<anyhow::Result<_>>()?
            };
            for path in huddle_board::kiosk::snapshot::render_all(&config, &out, &sizes, layout)? {
                println!("{}", path.display());
            }
            Ok(())
        }
        Command::Events { since } => {
            let path = config.database_path();
            anyhow::ensure!(
                path.exists(),
                "no database at {} yet: the board has recorded nothing",
                path.display()
            );
            let store = Store::open(&path, &config.board.id)?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for line in store.events_since(since)? {
                use std::io::Write;
                writeln!(out, "{line}")?;
            }
            Ok(())
        }
        Command::Simulate {
            boards,
            first,
            huddles,
            rate,
            data_dir,
            timeout,
            latency,
        } => {
            let opts = huddle_board::kiosk::simulate::SimOptions {
                boards,
                first,
                huddles,
                rate,
                data_dir: data_dir.unwrap_or_else(|| config.storage.data_dir.clone()),
                ack_timeout: std::time::Duration::from_secs(timeout),
                publish: true,
                latency,
            };
            let results = huddle_board::kiosk::simulate::run(&config, &opts)?;
            let mut behind = 0;
            for r in &results {
                println!("{} {} {}", r.board, r.last_seq, r.acked);
                behind += usize::from(r.acked < r.last_seq);
            }
            anyhow::ensure!(
                behind == 0,
                "{behind} of {} boards are not fully acknowledged",
                results.len()
            );
            Ok(())
        }
        Command::Doctor { .. } => unreachable!("doctor runs before the config is loaded"),
        Command::HashBadge { number } => {
            anyhow::ensure!(
                !number.is_empty() && number.chars().all(|c| c.is_ascii_digit()),
                "a badge number is digits only"
            );
            println!("{}", hash_badge(config.badge.site_key.as_bytes(), &number));
            Ok(())
        }
        Command::Badge {
            command: BadgeCommand::Decode { bits, format },
        } => {
            let line = badge::decode(&config, cli.config.is_some(), &bits, format.as_deref())?;
            println!("{line}");
            Ok(())
        }
        #[cfg(feature = "gpio")]
        Command::Badge {
            command: BadgeCommand::Watch,
        } => badge::watch(&config),
        #[cfg(not(feature = "gpio"))]
        Command::Badge {
            command: BadgeCommand::Watch,
        } => anyhow::bail!(
            "badge watch reads the GPIO, but this huddle-kiosk was built without the `gpio` feature: build it with `cargo build --release --features gpio`"
        ),
    }
}

/// `doctor`: every line as it is known; an error (exit 1) if one failed.
fn doctor(config: Option<&std::path::Path>, checks: &[String]) -> anyhow::Result<()> {
    use huddle_board::kiosk::doctor;
    huddle_board::doctor::command(doctor::CHECKS, checks, |only, out| {
        doctor::run(config, only, out)
    })
}

fn main() -> ExitCode {
    huddle_board::logging::init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("huddle-kiosk: {e:#}");
            ExitCode::FAILURE
        }
    }
}
