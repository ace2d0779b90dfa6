//! Logging for both binaries: `tracing` to stderr (journald reads it under
//! systemd). `RUST_LOG` sets the filter; the default is `info`.

/// Starts logging once; later calls do nothing.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
