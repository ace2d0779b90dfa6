//! huddle-aggregator: the site service. `huddle-aggregator [--config FILE]`
//! ingests every board's events over MQTT (see `huddle_board::aggregator`);
//! the subcommands are tools for the people who run a site.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use huddle_board::aggregator::coaching::shell as coaching_shell;
use huddle_board::aggregator::config::AggregatorConfig;
use huddle_board::aggregator::store::{EventRow, Store};
use huddle_board::config::demo_secret_warning;
use huddle_board::domain::hash_badge;

/// The site service of huddle-board.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// The configuration file.
    #[arg(long, global = true, default_value = "config/aggregator.toml")]
    config: PathBuf,
    /// Check the configuration (and the roster file) and exit.
    #[arg(long)]
    check: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Ingest the boards' events (the default).
    Run,
    /// Print the keyed hash of a badge number, for the roster file's
    /// `badge_hashes`.
    HashBadge {
        /// The badge number.
        number: String,
    },
    /// Write stored data to stdout.
    Export {
        /// What to export.
        #[arg(long, value_enum, default_value_t = What::Events)]
        what: What,
        /// The format.
        #[arg(long, value_enum, default_value_t = Format::Csv)]
        format: Format,
    },
    /// Write a made-up plant's history into the configured data directory
    /// (a new site file), through the same store as ingest, and its roster
    /// beside it: for the dashboard's demo and the benchmarks.
    Generate {
        /// How many boards (areas of ten).
        #[arg(long, default_value_t = 50)]
        boards: usize,
        /// How many calendar days, ending today (two huddles each working day).
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// The seed: the same seed (and `--until`) gives the same history.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The end of the history (RFC 3339, e.g. 2026-12-04T12:00:00Z);
        /// the default is now.
        #[arg(long)]
        until: Option<String>,
        /// Where to write the plant's roster (default: roster.csv in the
        /// data directory; set `roster.file` to it to see the people).
        #[arg(long)]
        roster_out: Option<PathBuf>,
    },
    /// Check the site server as a technician would: config, roster, site
    /// file, broker (DNS, TCP, TLS, login, ACL), dashboard, boards not
    /// heard from. One line per check, with the remedy for a failure;
    /// exits 1 if any failed.
    Doctor {
        /// Run only this check (repeatable): config, roster, database,
        /// broker, dashboard, boards.
        #[arg(long = "check", value_name = "NAME")]
        checks: Vec<String>,
    },
    /// Write the JSON Schema of every topic's payload into a folder (the
    /// repository keeps them in config/schemas; needs no configuration).
    Schemas {
        /// The folder (made if missing).
        #[arg(long, default_value = "config/schemas")]
        out: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum What {
    /// Every stored event, by board then seq.
    Events,
    /// Every coaching observation with its acknowledgement, in time order.
    Observations,
    /// The coaching figures per person, as the coaching topic carries them now.
    Coaching,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// CSV with a header (see the README for each export's columns).
    Csv,
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(Command::Schemas { out }) = &cli.command {
        return write_schemas(out);
    }
    if let Some(Command::Doctor { checks }) = &cli.command {
        return doctor(&cli.config, checks);
    }
    let config = AggregatorConfig::load(&cli.config)?;
    if cli.check {
        if let Some(f) = &config.roster.file {
            huddle_board::aggregator::roster::load(f)?;
        }
        println!("{}: ok (site {})", cli.config.display(), config.site.id);
        if let Some(w) = demo_secret_warning(&config.demo_secrets(), &cli.config) {
            eprintln!("warning: {w}");
        }
        return Ok(());
    }
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => {
            if let Some(w) = demo_secret_warning(&config.demo_secrets(), &cli.config) {
                tracing::warn!("{w}");
            }
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            rt.block_on(huddle_board::aggregator::run(config, shutdown_signal()))?;
            Ok(())
        }
        Command::Schemas { out } => write_schemas(&out),
        Command::Doctor { .. } => unreachable!("doctor runs before the config is loaded"),
        Command::Generate {
            boards,
            days,
            seed,
            until,
            roster_out,
        } => generate(&config, boards, days, seed, until, roster_out),
        Command::HashBadge { number } => {
            anyhow::ensure!(
                !number.is_empty() && number.chars().all(|c| c.is_ascii_digit()),
                "a badge number is digits only"
            );
            println!("{}", hash_badge(config.site.site_key.as_bytes(), &number));
            Ok(())
        }
        Command::Export {
            what: What::Observations,
            format: Format::Csv,
        } => {
            let (header, rows) = coaching_shell::export_observations(&config)?;
            write_csv(&header, rows)
        }
        Command::Export {
            what: What::Coaching,
            format: Format::Csv,
        } => {
            let (header, rows) = coaching_shell::export_coaching(&config, chrono::Utc::now())?;
            write_csv(&header, rows)
        }
        Command::Export {
            what: What::Events,
            format: Format::Csv,
        } => {
            let store = Store::open_existing(&config.database_path())?;
            let mut out =
                csv::Writer::from_writer(std::io::BufWriter::new(std::io::stdout().lock()));
            out.write_record(["board", "seq", "id", "at", "kind", "data", "incarnation"])?;
            store.for_each_event(|r: EventRow| -> anyhow::Result<()> {
                out.write_record([
                    r.board,
                    r.seq.to_string(),
                    r.id,
                    r.at,
                    r.kind,
                    r.data,
                    r.incarnation,
                ])?;
                Ok(())
            })?;
            out.flush()?;
            out.into_inner()
                .map_err(|e| anyhow::anyhow!("cannot write: {}", e.error()))?
                .flush()?;
            Ok(())
        }
    }
}

/// `generate`: the history, a progress bar on a terminal, a summary line.
fn generate(
    config: &AggregatorConfig,
    boards: usize,
    days: u32,
    seed: u64,
    until: Option<String>,
    roster_out: Option<PathBuf>,
) -> anyhow::Result<()> {
    use huddle_board::aggregator::generate::{generate, progress_line, Plan};
    use std::io::IsTerminal;
    anyhow::ensure!((1..=100_000).contains(&boards), "--boards is 1 to 100000");
    anyhow::ensure!((1..=3660).contains(&days), "--days is 1 to 3660");
    let until = match until {
        Some(t) => huddle_board::wire::time::parse_ts(&t)
            .with_context(|| format!("--until `{t}` is not an RFC 3339 time"))?,
        None => chrono::Utc::now(),
    };
    let db = config.database_path();
    let roster = roster_out.unwrap_or_else(|| config.storage.data_dir.join("roster.csv"));
    let plan = Plan {
        boards,
        days,
        seed,
        until,
    };
    let started = std::time::Instant::now();
    let tty = std::io::stderr().is_terminal();
    let g = generate(config, &roster, &plan, |done, total, events| {
        if tty {
            eprint!("\r{}", progress_line(done, total, events, started));
        }
    })?;
    if tty {
        eprintln!();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "generated {} boards in {} areas ({} people), {days} days to {}: {} events, {} huddles, \
         {} observations in {} commits, {secs:.1} s ({:.0} events/s); database {}; roster {}",
        g.boards,
        g.areas,
        g.people,
        huddle_board::wire::time::ts(until),
        g.events,
        g.huddles,
        g.observations,
        g.commits,
        g.events as f64 / secs.max(1e-9),
        db.display(),
        roster.display()
    );
    Ok(())
}

/// Writes every topic's schema into `out`, one file each.
fn write_schemas(out: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot make {}", out.display()))?;
    let all = huddle_board::aggregator::schema::catalogue();
    for t in &all {
        let path = out.join(&t.file);
        std::fs::write(
            &path,
            huddle_board::aggregator::schema::file_text(&t.schema),
        )
        .with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!("{}: {} schemas", out.display(), all.len());
    Ok(())
}

/// Writes a header and rows as CSV to stdout.
fn write_csv(header: &[&str], rows: Vec<Vec<String>>) -> anyhow::Result<()> {
    let mut out = csv::Writer::from_writer(std::io::BufWriter::new(std::io::stdout().lock()));
    out.write_record(header)?;
    for row in rows {
        out.write_record(row)?;
    }
    out.flush()?;
    out.into_inner()
        .map_err(|e| anyhow::anyhow!("cannot write: {}", e.error()))?
        .flush()?;
    Ok(())
}

/// Completes on SIGINT or SIGTERM (systemd's stop).
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

/// `doctor`: every line as it is known; an error (exit 1) if one failed.
fn doctor(config: &std::path::Path, checks: &[String]) -> anyhow::Result<()> {
    use huddle_board::aggregator::doctor;
    huddle_board::doctor::command(doctor::CHECKS, checks, |only, out| {
        doctor::run(config, only, out)
    })
}

fn main() -> ExitCode {
    huddle_board::logging::init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = std::io::stdout().flush();
            eprintln!("huddle-aggregator: {e:#}");
            ExitCode::FAILURE
        }
    }
}
