//! Building and running the server: connect the store, put accounts and keys in place, bind,
//! serve, sweep. [`Application::build`] binds first (port 0 works) and reports the port, so
//! tests run real servers side by side.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::{Server, Service as _};
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use futures_util::FutureExt;

use crate::accounts::{self, Accounts, GeneratedAccount};
use crate::api::{self, AppState, Urls};
use crate::clock::SharedClock;
use crate::config::ServeArgs;
use crate::crypto::access_token::TokenKey;
use crate::crypto::secretbox::SecretBox;
use crate::error::ApiError;
use crate::store::Store;
use crate::workers::sweeper;
use crate::{push, webhooks};

/// A bound, ready server.
pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
    sweeper: tokio::task::JoinHandle<()>,
    pusher: tokio::task::JoinHandle<()>,
    webhook_worker: tokio::task::JoinHandle<()>,
    /// The account generated on first start, if this start made one.
    pub generated_account: Option<GeneratedAccount>,
    /// The local CA of `--tls-self-signed`, if used.
    pub self_signed: Option<crate::tls::SelfSignedInfo>,
}

const ACCESS_TOKEN_KEY_NAME: &str = "access_token_key";
const CREDENTIALS_KEY_NAME: &str = "credentials_key";

impl Application {
    pub async fn build(args: ServeArgs, clock: SharedClock) -> anyhow::Result<Application> {
        let store = Store::connect(&args.database.database_url, args.database.database_max_connections).await?;
        let generated_account = accounts::bootstrap(&store, &args, clock.now()).await?;
        let token_key =
            TokenKey::new(&stored_key(&store, ACCESS_TOKEN_KEY_NAME, args.access_token_key.as_deref()).await?);
        let secrets =
            Arc::new(SecretBox::new(&stored_key(&store, CREDENTIALS_KEY_NAME, args.credentials_key.as_deref()).await?));
        let push = args.push()?;
        let push_wake = Arc::new(tokio::sync::Notify::new());
        let webhook_settings = args.webhooks();
        let webhook_wake = Arc::new(tokio::sync::Notify::new());

        let tls = args.tls().map(|source| crate::tls::server_config(&source)).transpose()?;
        let listener = TcpListener::bind(&args.bind).with_context(|| format!("cannot listen on {}", args.bind))?;
        let address = listener.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let public_url = args.public_url.clone().unwrap_or_else(|| format!("{scheme}://{address}"));
        let state = web::Data::new(AppState {
            store: store.clone(),
            clock: clock.clone(),
            accounts: Accounts::new(store.clone()),
            token_key,
            urls: Urls::new(&public_url),
            device_clock_skew: args.device_clock_skew.max(0),
            rate_limits: args.rate_limits,
            secrets: secrets.clone(),
            push: push.clone(),
            push_wake: push_wake.clone(),
            webhooks: webhook_settings.clone(),
            webhook_wake: webhook_wake.clone(),
        });

        let app_state = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .app_data(web::PathConfig::default().error_handler(|_, req| ApiError::NotFound(req.path().to_owned()).into()))
                .app_data(web::QueryConfig::default().error_handler(|e, _| ApiError::MalformedBody(e.to_string()).into()))
                .wrap_fn(|req, srv| {
                    let started = Instant::now();
                    let method = req.method().clone();
                    let path = req.path().to_owned();
                    srv.call(req).map(move |res| {
                        if let Ok(res) = &res {
                            tracing::debug!(%method, %path, status = res.status().as_u16(), micros = started.elapsed().as_micros() as u64, "request");
                        }
                        res
                    })
                })
                .configure(api::configure)
                .default_service(web::to(api::not_found))
        })
        .workers(args.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())));
        let (server, self_signed) = match tls {
            Some((config, info)) => (server.listen_rustls_0_23(listener, config)?.run(), info),
            None => (server.listen(listener)?.run(), None),
        };

        let sender = Arc::new(push::worker::Sender::new(push, store.clone(), secrets));
        let pusher = tokio::spawn(push::worker::run(sender, store.clone(), clock.clone(), push_wake));
        let deliverer = Arc::new(webhooks::worker::Deliverer::new(webhook_settings, store.clone())?);
        let webhook_worker = tokio::spawn(webhooks::worker::run(deliverer, store.clone(), clock.clone(), webhook_wake));
        let sweeper = tokio::spawn(sweeper::run(
            store,
            clock,
            Duration::from_secs(args.sweep_interval.max(1)),
            args.unverified_factor_ttl,
        ));
        tracing::info!(%address, %public_url, database = state.store.backend().name(), "verify-push-server listening");
        Ok(Application {
            port: address.port(),
            server,
            state,
            sweeper,
            pusher,
            webhook_worker,
            generated_account,
            self_signed,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn public_url(&self) -> &str {
        self.state.urls.base()
    }

    /// The store, for tests that put state in place directly.
    pub fn store(&self) -> Store {
        self.state.store.clone()
    }

    /// A handle that stops the server gracefully.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until the server is stopped (SIGINT/SIGTERM or a handle), then stops the
    /// workers and closes the database.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.sweeper.abort();
        self.pusher.abort();
        self.webhook_worker.abort();
        self.state.store.close().await;
        tracing::info!("verify-push-server stopped");
        result
    }
}

/// A 256-bit server key: from configuration, or generated once and kept in the database under
/// `name`, so that every instance on it shares the key.
async fn stored_key(store: &Store, name: &str, configured: Option<&str>) -> anyhow::Result<[u8; 32]> {
    let encoded = match configured {
        Some(value) => value.trim().to_owned(),
        None => {
            let proposed = STANDARD.encode(TokenKey::generate_secret());
            store.server_key_or_insert(name, &proposed).await?
        }
    };
    STANDARD
        .decode(&encoded)
        .ok()
        .and_then(|b| b.try_into().ok())
        .with_context(|| format!("the {name} must be 32 bytes in base64"))
}

/// Asks the server listening on `bind` for `/healthz` over plain HTTP/1.1 (the `healthcheck`
/// subcommand, for container health checks). Ok when it answers 200 within five seconds.
pub async fn healthcheck(bind: &str) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let target = bind.replace("0.0.0.0", "127.0.0.1").replace("[::]", "[::1]");
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(&target).await?;
        let request = format!("GET /healthz HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        anyhow::Ok(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .context("no answer within 5 seconds")?
        .with_context(|| format!("cannot reach {target}"))?;
    let text = String::from_utf8_lossy(&response);
    let status_line = text.lines().next().unwrap_or("");
    if status_line.split_whitespace().nth(1) == Some("200") {
        Ok(())
    } else {
        anyhow::bail!("unhealthy: {status_line}")
    }
}
