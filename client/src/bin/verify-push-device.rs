//! `verify-push-device`: a Verify Push phone for people and CI scripts.
//!
//! Profiles (one per device) live in `$VERIFY_PUSH_DEVICE_HOME` (default `~/.verify-push-device`).
//! Human-readable output by default, `--json` for scripts; failures print the Twilio code and
//! message and exit non-zero.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde_json::{json, Map, Value};
use verify_push_client::device::Connection;
use verify_push_client::{Challenge, Device, DeviceError, KeyStore, ListOptions, Profile, Style};

/// A scriptable Verify Push device: enrol, list and answer challenges like the official SDKs.
#[derive(Parser)]
#[command(name = "verify-push-device", version, about)]
struct Cli {
    /// Folder of device profiles.
    #[arg(long, global = true, env = "VERIFY_PUSH_DEVICE_HOME")]
    home: Option<PathBuf>,
    /// Which device profile to use.
    #[arg(long, global = true, env = "VERIFY_PUSH_DEVICE_PROFILE", default_value = "default")]
    profile: String,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create and verify a push factor with an access token from the backend.
    Enroll(EnrollArgs),
    /// Show the enrolled devices (profiles).
    Factors,
    /// List this factor's challenges.
    Challenges {
        /// pending, approved, denied or expired.
        #[arg(long)]
        status: Option<String>,
        /// asc or desc.
        #[arg(long, default_value = "asc")]
        order: String,
        #[arg(long, default_value_t = 50)]
        page_size: u32,
        #[arg(long)]
        page_token: Option<String>,
    },
    /// Show one challenge.
    Show { challenge_sid: String },
    /// Approve a challenge (or the newest pending one with --latest).
    Approve(AnswerArgs),
    /// Deny a challenge (or the newest pending one with --latest).
    Deny(AnswerArgs),
    /// Poll for new pending challenges and print them, optionally answering them.
    Watch {
        /// Seconds between polls.
        #[arg(long, default_value_t = 2.0)]
        interval: f64,
        #[arg(long, conflicts_with = "auto_deny")]
        auto_approve: bool,
        #[arg(long)]
        auto_deny: bool,
        /// Stop after this many challenges.
        #[arg(long)]
        count: Option<usize>,
        /// Stop after this many seconds.
        #[arg(long)]
        timeout: Option<f64>,
    },
    /// Register a new push token (omit it to switch to platform `none`).
    UpdatePushToken { token: Option<String> },
    /// Delete the factor and forget the device.
    Unenroll,
}

#[derive(Args)]
struct EnrollArgs {
    /// Server base URL (`http://127.0.0.1:8080`, or `https://verify.twilio.com/v2/`).
    #[arg(long, env = "VERIFY_PUSH_URL")]
    url: String,
    /// Verify Service SID (VA…).
    #[arg(long)]
    service: String,
    /// The entity identity the access token was made for.
    #[arg(long)]
    identity: String,
    /// The access token from the backend (AccessTokens resource).
    #[arg(long)]
    access_token: String,
    /// Push token to register (FCM registration token or APNs device token).
    #[arg(long)]
    push_token: Option<String>,
    /// Which SDK to imitate on the wire.
    #[arg(long, value_enum, default_value = "android")]
    style: Style,
    #[arg(long, default_value = "verify-push-device")]
    friendly_name: String,
    /// A PEM CA certificate to trust (e.g. the server's --tls-self-signed CA).
    #[arg(long)]
    ca_cert: Option<PathBuf>,
    /// Factor metadata, `key=value`, repeatable.
    #[arg(long = "metadata", value_parser = parse_pair)]
    metadata: Vec<(String, String)>,
}

#[derive(Args)]
struct AnswerArgs {
    /// The challenge SID (YC…).
    #[arg(required_unless_present = "latest")]
    challenge_sid: Option<String>,
    /// Answer the newest pending challenge.
    #[arg(long, conflicts_with = "challenge_sid")]
    latest: bool,
}

fn parse_pair(text: &str) -> Result<(String, String), String> {
    text.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).ok_or_else(|| "expected key=value".to_owned())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("verify-push-device: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), DeviceError> {
    let store = KeyStore::new(cli.home.clone().unwrap_or_else(KeyStore::default_dir));
    let out = Output { json: cli.json };
    match cli.command {
        Command::Enroll(args) => {
            let mut profile = Profile::new(&cli.profile, &args.url, args.style, &args.service, &args.identity);
            profile.friendly_name = args.friendly_name;
            profile.push_token = args.push_token;
            profile.ca_cert = args.ca_cert.map(|p| std::fs::canonicalize(&p).unwrap_or(p));
            let mut device = Device::new(profile, Some(store), &Connection::default())?;
            let metadata: Map<String, Value> = args.metadata.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
            let factor = device.enroll(&args.access_token, (!metadata.is_empty()).then_some(&metadata)).await?;
            out.print(&json!({"profile": device.profile.name, "factor": factor}), || {
                format!("enrolled {} as factor {} ({})", device.profile.name, factor.sid, factor.status)
            });
        }
        Command::Factors => {
            let profiles = store.list()?;
            let rows: Vec<Value> = profiles
                .iter()
                .map(|p| json!({"profile": p.name, "factor_sid": p.factor_sid, "status": p.status, "service_sid": p.service_sid,
                                "identity": p.identity, "url": p.base_url, "style": p.style}))
                .collect();
            out.print(&Value::Array(rows), || {
                if profiles.is_empty() {
                    return "no enrolled devices".to_owned();
                }
                profiles
                    .iter()
                    .map(|p| {
                        format!(
                            "{:<12} {} {:<10} {} {} {}",
                            p.name,
                            p.factor_sid.as_deref().unwrap_or("-"),
                            p.status.as_deref().unwrap_or("-"),
                            p.service_sid,
                            p.identity,
                            p.base_url
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        Command::Challenges { status, order, page_size, page_token } => {
            let mut device = open(&store, &cli.profile)?;
            let page = device.challenges(&ListOptions { status, order, page_size, page_token }).await?;
            out.print(&serde_json::to_value(&page).unwrap_or_default(), || {
                let mut lines: Vec<String> = page.challenges.iter().map(summary).collect();
                if lines.is_empty() {
                    lines.push("no challenges".into());
                }
                if let Some(next) = &page.next_page_token {
                    lines.push(format!("next page: --page-token {next}"));
                }
                lines.join("\n")
            });
        }
        Command::Show { challenge_sid } => {
            let mut device = open(&store, &cli.profile)?;
            let challenge = device.challenge(&challenge_sid).await?;
            out.print(&Value::Object(challenge.json.clone()), || details(&challenge));
        }
        Command::Approve(args) => answer(&store, &cli.profile, args, true, &out).await?,
        Command::Deny(args) => answer(&store, &cli.profile, args, false, &out).await?,
        Command::Watch { interval, auto_approve, auto_deny, count, timeout } => {
            let mut device = open(&store, &cli.profile)?;
            let mut seen = HashSet::new();
            let started = std::time::Instant::now();
            let options =
                ListOptions { status: Some("pending".into()), order: "asc".into(), page_size: 50, page_token: None };
            loop {
                for challenge in device.challenges(&options).await?.challenges {
                    if !seen.insert(challenge.sid.clone()) {
                        continue;
                    }
                    let result = if auto_approve {
                        Some(device.approve(&challenge.sid).await?)
                    } else if auto_deny {
                        Some(device.deny(&challenge.sid).await?)
                    } else {
                        None
                    };
                    let shown = result.as_ref().unwrap_or(&challenge);
                    out.print(&serde_json::to_value(shown).unwrap_or_default(), || summary(shown));
                    if count.is_some_and(|c| seen.len() >= c) {
                        return Ok(());
                    }
                }
                if timeout.is_some_and(|t| started.elapsed().as_secs_f64() >= t) {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_secs_f64(interval.max(0.1))).await;
            }
        }
        Command::UpdatePushToken { token } => {
            let mut device = open(&store, &cli.profile)?;
            let factor = device.update_push_token(token.as_deref()).await?;
            out.print(&serde_json::to_value(&factor).unwrap_or_default(), || {
                format!("updated push token of {}", factor.sid)
            });
        }
        Command::Unenroll => {
            let mut device = open(&store, &cli.profile)?;
            let sid = device.profile.factor_sid.clone().unwrap_or_default();
            device.unenroll().await?;
            out.print(&json!({"deleted": sid}), || format!("deleted factor {sid} and profile {}", cli.profile));
        }
    }
    Ok(())
}

async fn answer(
    store: &KeyStore,
    profile: &str,
    args: AnswerArgs,
    approve: bool,
    out: &Output,
) -> Result<(), DeviceError> {
    let mut device = open(store, profile)?;
    let sid = match (args.challenge_sid, args.latest) {
        (Some(sid), _) => sid,
        (None, _) => device
            .latest_pending()
            .await?
            .map(|c| c.sid)
            .ok_or_else(|| DeviceError::Protocol("no pending challenge".into()))?,
    };
    let challenge = if approve { device.approve(&sid).await? } else { device.deny(&sid).await? };
    out.print(&Value::Object(challenge.json.clone()), || format!("{} {}", challenge.status, challenge.sid));
    Ok(())
}

fn open(store: &KeyStore, profile: &str) -> Result<Device, DeviceError> {
    Device::new(store.load(profile)?, Some(store.clone()), &Connection::default())
}

fn summary(c: &Challenge) -> String {
    format!("{} {:<8} {} {}", c.sid, c.status, c.date_created, c.message)
}

fn details(c: &Challenge) -> String {
    let mut lines = vec![
        format!("challenge  {}", c.sid),
        format!("status     {}", c.status),
        format!("message    {}", c.message),
        format!("created    {}", c.date_created),
        format!("expires    {}", c.expiration_date),
    ];
    lines.extend(c.fields.iter().map(|(label, value)| format!("  {label}: {value}")));
    lines.join("\n")
}

struct Output {
    json: bool,
}

impl Output {
    fn print(&self, value: &Value, human: impl FnOnce() -> String) {
        if self.json {
            println!("{value}");
        } else {
            println!("{}", human());
        }
    }
}
