//! Logging. `RUST_LOG` (or `VERIFY_PUSH_LOG`) sets the filter; the default is `info`.
//! Never log auth tokens, access tokens, keys, signatures or request bodies.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = std::env::var("VERIFY_PUSH_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("info,sqlx=warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).try_init();
}
