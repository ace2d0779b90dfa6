//! Logging for both binaries, through `tracing`. `RUST_LOG` sets the
//! filter; the default is `info`.
//!
//! Under systemd, stderr is connected to journald (`$JOURNAL_STREAM` says
//! so): lines go there without colours or timestamps, since the journal
//! stamps every line itself. Elsewhere they go to stderr as usual.

/// Starts logging once; later calls do nothing.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.with_ansi(false).without_time().try_init()
    } else {
        builder.try_init()
    };
}
