//! Logging set-up. Building the subscriber is separate from installing it so
//! tests can capture output.

use std::io::IsTerminal;

use tracing_subscriber::{fmt, layer::SubscriberExt, EnvFilter, Registry};

use crate::config::LogFormat;

/// A subscriber writing to stderr in `format`, filtered by `RUST_LOG`
/// (default `info`).
pub fn subscriber(format: LogFormat) -> Box<dyn tracing::Subscriber + Send + Sync> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = Registry::default().with(filter);
    match format {
        LogFormat::Text => Box::new(
            registry.with(
                fmt::layer()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            ),
        ),
        LogFormat::Json => {
            Box::new(registry.with(fmt::layer().json().with_writer(std::io::stderr)))
        }
    }
}

/// Installs [`subscriber`] globally; a second call is a no-op.
pub fn init(format: LogFormat) {
    let _ = tracing::subscriber::set_global_default(subscriber(format));
}
