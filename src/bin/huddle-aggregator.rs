//! huddle-aggregator: the site service (ingest, rules and dashboard arrive
//! with their issues). Today it loads and validates its configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// The site service of huddle-board.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// The configuration file.
    #[arg(long, default_value = "config/aggregator.toml")]
    config: PathBuf,
    /// Check the configuration and exit.
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    huddle_board::logging::init();
    let cli = Cli::parse();
    match huddle_board::config::AggregatorConfig::load(&cli.config) {
        Ok(config) => {
            if cli.check {
                println!("{}: ok (site {})", cli.config.display(), config.site.id);
                return ExitCode::SUCCESS;
            }
            eprintln!(
                "huddle-aggregator: configuration {} is valid; ingest over MQTT is not built yet (see README, \"Status\")",
                cli.config.display()
            );
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("huddle-aggregator: {e}");
            ExitCode::from(2)
        }
    }
}
