//! Logging: a tracing subscriber writing to stderr, human-readable or JSON, filtered by
//! RUST_LOG or `log.level`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::settings::LogSettings;

/// Installs the global subscriber. Calling it twice keeps the first one.
pub fn init(log: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal: `docker logs` and log files get plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let result = if log.format == "json" {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    // A second call (tests) finds a subscriber already installed; that is fine.
    let _ = result;
}
