//! Logging through `tracing`: text or JSON, to stderr or a file; `RUST_LOG`
//! overrides the level (`info` by default). Access lines use the
//! `torque::access` target.

use std::fs::OpenOptions;
use std::io::{self, IsTerminal};
use std::path::Path;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber. `file` of `None` or `-` means stderr; a file
/// is appended to.
pub fn init(file: Option<&Path>, format: LogFormat) -> io::Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let result = match file {
        Some(path) if path != Path::new("-") => {
            let file = OpenOptions::new().create(true).append(true).open(path).map_err(|e| {
                io::Error::new(e.kind(), format!("cannot open log file {}: {e}", path.display()))
            })?;
            let builder = builder.with_writer(Mutex::new(file)).with_ansi(false);
            match format {
                LogFormat::Text => builder.try_init(),
                LogFormat::Json => builder.json().try_init(),
            }
        }
        _ => {
            let builder = builder.with_writer(io::stderr).with_ansi(io::stderr().is_terminal());
            match format {
                LogFormat::Text => builder.try_init(),
                LogFormat::Json => builder.json().try_init(),
            }
        }
    };
    result.map_err(|e| io::Error::other(e.to_string()))
}
