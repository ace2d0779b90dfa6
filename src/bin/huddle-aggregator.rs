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
