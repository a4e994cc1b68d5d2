//! The command line. Every flag is also an environment variable (`VERIFY_PUSH_*`); `serve` is the
//! default subcommand. `.env.example` lists every variable.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::tls::TlsSource;

pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/verify-push.db";
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";

/// A self-hosted emulator of Twilio Verify Push (the Verify v2 REST API).
#[derive(Parser)]
#[command(name = "verify-push-server", version, about, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options of `serve`, which runs when no subcommand is given.
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve(Box<ServeArgs>),
    /// Apply the database migrations and exit.
    Migrate(DatabaseArgs),
    /// Ask a running server's /healthz; exit 0 when it answers 200 (for container health checks).
    Healthcheck(HealthcheckArgs),
}

#[derive(Args, Clone)]
pub struct DatabaseArgs {
    /// Database URL: `sqlite://PATH` (created if missing), `sqlite::memory:`, or
    /// `postgres://USER@HOST/DB`.
    #[arg(long, env = "VERIFY_PUSH_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// Most database connections in the pool.
    #[arg(long, env = "VERIFY_PUSH_DATABASE_MAX_CONNECTIONS", default_value_t = 8)]
    pub database_max_connections: u32,
}

#[derive(Args, Clone)]
pub struct HealthcheckArgs {
    /// Address of the server to ask.
    #[arg(long, env = "VERIFY_PUSH_BIND", default_value = DEFAULT_BIND)]
    pub bind: String,
}

/// Whether Twilio's documented rate limits are enforced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RateLimits {
    On,
    Off,
}

/// Whether the test controls are served (README, "Test controls").
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EmulatorControls {
    On,
    Off,
}

#[derive(Args, Clone)]
pub struct ServeArgs {
    /// Address to listen on (`HOST:PORT`; port 0 picks a free port).
    #[arg(long, env = "VERIFY_PUSH_BIND", default_value = DEFAULT_BIND)]
    pub bind: String,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Base URL used in every `url`, `links` and paging URL of responses
    /// (default `http://<bind>`). Set it when clients reach the server through another name.
    #[arg(long, env = "VERIFY_PUSH_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Account SID of the bootstrap account (`AC` + 32 hex digits). With
    /// VERIFY_PUSH_AUTH_TOKEN; when both are unset an account is generated on first start.
    #[arg(long, env = "VERIFY_PUSH_ACCOUNT_SID")]
    pub account_sid: Option<String>,
    /// Auth token of the bootstrap account.
    #[arg(long, env = "VERIFY_PUSH_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
    /// API key SID (`SK` + 32 hex digits) for the bootstrap account.
    #[arg(long, env = "VERIFY_PUSH_API_KEY_SID")]
    pub api_key_sid: Option<String>,
    /// API key secret for VERIFY_PUSH_API_KEY_SID.
    #[arg(long, env = "VERIFY_PUSH_API_KEY_SECRET", hide_env_values = true)]
    pub api_key_secret: Option<String>,
    /// A JSON file of further accounts and API keys (see README, "Accounts").
    #[arg(long, env = "VERIFY_PUSH_ACCOUNTS_FILE")]
    pub accounts_file: Option<PathBuf>,
    /// A seed file (YAML; JSON is YAML too) of accounts, API keys, push credentials, Services
    /// with fixed SIDs, their webhooks and virtual devices, put in place at every start (README,
    /// "Seed file"). A bad file stops the start, naming the field, line and column.
    #[arg(long, env = "VERIFY_PUSH_SEED")]
    pub seed: Option<PathBuf>,
    /// Milliseconds an instance trusts a cached credential before reading it again, so that a
    /// rotated auth token or a removed API key reaches every instance within this time.
    #[arg(long, env = "VERIFY_PUSH_ACCOUNTS_REFRESH_MS", default_value_t = 2000)]
    pub accounts_refresh_ms: u64,
    /// Key for access tokens: 32 bytes, base64. When unset, one is generated on first start and
    /// kept in the key file (see --keys-file), or in the database on PostgreSQL without one.
    #[arg(long, env = "VERIFY_PUSH_ACCESS_TOKEN_KEY", hide_env_values = true)]
    pub access_token_key: Option<String>,
    /// Seconds between sweeps that mark overdue Challenges expired and drop stale unverified
    /// Factors.
    #[arg(long, env = "VERIFY_PUSH_SWEEP_INTERVAL", default_value_t = 10)]
    pub sweep_interval: u64,
    /// Seconds after which an unverified Factor is deleted (Twilio: 1 to 24 hours).
    #[arg(long, env = "VERIFY_PUSH_UNVERIFIED_FACTOR_TTL", default_value_t = 86_400)]
    pub unverified_factor_ttl: i64,
    /// Seconds a device's clock may differ from the server's before its request JWTs are refused
    /// with 401 (the SDKs then re-sync from the `Date` header and retry once).
    #[arg(long, env = "VERIFY_PUSH_DEVICE_CLOCK_SKEW", default_value_t = 60)]
    pub device_clock_skew: i64,
    /// Twilio's rate limits (README, "Rate limits"): `on` refuses a Factor creation beyond 100 per
    /// Entity per day (429 / 60326) and an Entity creation beyond 40 per account per second
    /// (429 / 60328); `off` lets load tests through.
    #[arg(long, env = "VERIFY_PUSH_RATE_LIMITS", value_enum, default_value_t = RateLimits::On)]
    pub rate_limits: RateLimits,
    /// The test controls (README, "Test controls"): `on` serves the emulated clock
    /// (`/_emulator/Clock`), expiring one Challenge and `/_emulator/Reset`, and the clock follows
    /// what they set; `off` (shared deployments) answers those paths 404 like any unknown path
    /// and runs on the system clock. `/_emulator/pushes` and `webhook-deliveries` stay.
    #[arg(long, env = "VERIFY_PUSH_EMULATOR_CONTROLS", value_enum, default_value_t = EmulatorControls::On)]
    pub emulator_controls: EmulatorControls,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(long, env = "VERIFY_PUSH_TLS_CERT", requires = "tls_key", conflicts_with = "tls_self_signed")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "VERIFY_PUSH_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve HTTPS with a local CA and server certificate kept in this folder (created on first
    /// start, reused after). Devices trust DIR/ca.pem.
    #[arg(long, env = "VERIFY_PUSH_TLS_SELF_SIGNED")]
    pub tls_self_signed: Option<PathBuf>,
    /// Host names and addresses the self-signed certificate covers (comma-separated).
    #[arg(long, env = "VERIFY_PUSH_TLS_HOSTNAMES", default_value = crate::tls::DEFAULT_HOSTNAMES, value_delimiter = ',')]
    pub tls_hostnames: Vec<String>,
    /// Key that encrypts push credentials at rest: 32 bytes, base64. When unset, one is
    /// generated on first start and kept in the key file (see --keys-file), or in the database
    /// on PostgreSQL without one.
    #[arg(long, env = "VERIFY_PUSH_CREDENTIALS_KEY", hide_env_values = true)]
    pub credentials_key: Option<String>,
    /// File that keeps the generated keys (access-token and credentials key), mode 0600. Default:
    /// beside a SQLite database (`verify-push.keys` next to `verify-push.db`); with PostgreSQL,
    /// unset keeps them in the database (give every instance the same file, or set the keys).
    #[arg(long, env = "VERIFY_PUSH_KEYS_FILE")]
    pub keys_file: Option<PathBuf>,
    /// APNs production endpoint (point it at a local fake in tests and labs).
    #[arg(long, env = "VERIFY_PUSH_APNS_URL", default_value = "https://api.push.apple.com")]
    pub apns_url: String,
    /// APNs sandbox endpoint, for credentials with Sandbox=true.
    #[arg(long, env = "VERIFY_PUSH_APNS_SANDBOX_URL", default_value = "https://api.sandbox.push.apple.com")]
    pub apns_sandbox_url: String,
    /// FCM HTTP v1 endpoint.
    #[arg(long, env = "VERIFY_PUSH_FCM_URL", default_value = "https://fcm.googleapis.com")]
    pub fcm_url: String,
    /// A PEM CA to trust, besides the public roots, when sending pushes and fetching FCM tokens.
    #[arg(long, env = "VERIFY_PUSH_PUSH_CA_CERT")]
    pub push_ca_cert: Option<PathBuf>,
    /// Attempts per push before it is marked failed.
    #[arg(long, env = "VERIFY_PUSH_PUSH_MAX_ATTEMPTS", default_value_t = 8)]
    pub push_max_attempts: i64,
    /// Seconds one push attempt may take.
    #[arg(long, env = "VERIFY_PUSH_PUSH_TIMEOUT", default_value_t = 10)]
    pub push_timeout: u64,
    /// Milliseconds between outbox polls (new pushes also wake the worker at once).
    #[arg(long, env = "VERIFY_PUSH_PUSH_POLL_MS", default_value_t = 1000)]
    pub push_poll_ms: u64,
    /// Seconds one webhook delivery attempt may take.
    #[arg(long, env = "VERIFY_PUSH_WEBHOOK_TIMEOUT", default_value_t = 10)]
    pub webhook_timeout: u64,
    /// Attempts per webhook delivery before it is marked failed.
    #[arg(long, env = "VERIFY_PUSH_WEBHOOK_MAX_ATTEMPTS", default_value_t = 10)]
    pub webhook_max_attempts: i64,
    /// The longest wait between two delivery attempts, seconds (backoff doubles up to it).
    #[arg(long, env = "VERIFY_PUSH_WEBHOOK_MAX_BACKOFF", default_value_t = 300)]
    pub webhook_max_backoff: i64,
    /// Webhook deliveries in flight at once.
    #[arg(long, env = "VERIFY_PUSH_WEBHOOK_CONCURRENCY", default_value_t = 16)]
    pub webhook_concurrency: i64,
    /// Milliseconds between delivery-queue polls (new events also wake the worker at once).
    #[arg(long, env = "VERIFY_PUSH_WEBHOOK_POLL_MS", default_value_t = 1000)]
    pub webhook_poll_ms: u64,
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "VERIFY_PUSH_WORKERS")]
    pub workers: Option<usize>,
    /// Seconds a graceful shutdown (SIGTERM or SIGINT) keeps serving: every answer then closes
    /// its connection, and idle connections end at their keep-alive timeout. After that, or when
    /// no connection is left, idle connections are closed and requests still running get this
    /// long again. A second signal stops at once.
    #[arg(long, env = "VERIFY_PUSH_SHUTDOWN_TIMEOUT", default_value_t = 30)]
    pub shutdown_timeout: u64,
}

impl ServeArgs {
    /// The webhook delivery settings.
    pub fn webhooks(&self) -> crate::webhooks::WebhookSettings {
        crate::webhooks::WebhookSettings {
            timeout: std::time::Duration::from_secs(self.webhook_timeout.max(1)),
            max_attempts: self.webhook_max_attempts.max(1),
            max_backoff: self.webhook_max_backoff.max(1),
            poll_interval: std::time::Duration::from_millis(self.webhook_poll_ms.max(10)),
            concurrency: self.webhook_concurrency.clamp(1, 256),
        }
    }

    /// The push delivery settings.
    pub fn push(&self) -> anyhow::Result<crate::push::PushSettings> {
        let extra_ca_pem = match &self.push_ca_cert {
            Some(path) => {
                Some(std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?)
            }
            None => None,
        };
        Ok(crate::push::PushSettings {
            apns_url: self.apns_url.clone(),
            apns_sandbox_url: self.apns_sandbox_url.clone(),
            fcm_url: self.fcm_url.clone(),
            extra_ca_pem,
            max_attempts: self.push_max_attempts.max(1),
            timeout: std::time::Duration::from_secs(self.push_timeout.max(1)),
            poll_interval: std::time::Duration::from_millis(self.push_poll_ms.max(10)),
        })
    }

    /// The HTTPS configuration, if any.
    pub fn tls(&self) -> Option<TlsSource> {
        match (&self.tls_cert, &self.tls_key, &self.tls_self_signed) {
            (Some(cert), Some(key), _) => Some(TlsSource::Files { cert: cert.clone(), key: key.clone() }),
            (_, _, Some(dir)) => {
                Some(TlsSource::SelfSigned { dir: dir.clone(), hostnames: self.tls_hostnames.clone() })
            }
            _ => None,
        }
    }

    /// The settings of `serve` with every default, for tests and embedding.
    pub fn defaults() -> ServeArgs {
        ServeArgs {
            bind: DEFAULT_BIND.to_owned(),
            database: DatabaseArgs { database_url: DEFAULT_DATABASE_URL.to_owned(), database_max_connections: 8 },
            public_url: None,
            account_sid: None,
            auth_token: None,
            api_key_sid: None,
            api_key_secret: None,
            accounts_file: None,
            seed: None,
            accounts_refresh_ms: 2000,
            access_token_key: None,
            sweep_interval: 10,
            unverified_factor_ttl: 86_400,
            device_clock_skew: 60,
            rate_limits: RateLimits::On,
            emulator_controls: EmulatorControls::On,
            tls_cert: None,
            tls_key: None,
            tls_self_signed: None,
            tls_hostnames: crate::tls::DEFAULT_HOSTNAMES.split(',').map(str::to_owned).collect(),
            credentials_key: None,
            keys_file: None,
            apns_url: "https://api.push.apple.com".to_owned(),
            apns_sandbox_url: "https://api.sandbox.push.apple.com".to_owned(),
            fcm_url: "https://fcm.googleapis.com".to_owned(),
            push_ca_cert: None,
            push_max_attempts: 8,
            push_timeout: 10,
            push_poll_ms: 1000,
            webhook_timeout: 10,
            webhook_max_attempts: 10,
            webhook_max_backoff: 300,
            webhook_concurrency: 16,
            webhook_poll_ms: 1000,
            workers: None,
            shutdown_timeout: 30,
        }
    }
}
