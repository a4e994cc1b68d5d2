//! Building and running the server: read the seed file, connect the store, load the keys, put
//! accounts and the seed's resources in place, bind, serve, and run the push and webhook workers
//! and the sweeper beside it; on SIGTERM/SIGINT, drain open connections before stopping
//! (`drain_on_signal`). [`Application::build`] binds first (port 0 works) and reports the port,
//! so tests run real servers side by side.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::{Server, ServerHandle, Service as _};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::ConnectionType;
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use futures_util::FutureExt;

use crate::accounts::Accounts;
use crate::api::virtual_device::{self, Enrolment};
use crate::api::{self, AppState, Urls};
use crate::bootstrap::{self, GeneratedAccount};
use crate::clock::{EmulatedClock, SharedClock};
use crate::config::{EmulatorControls, ServeArgs};
use crate::crypto::access_token::TokenKey;
use crate::crypto::secretbox::SecretBox;
use crate::domain::dates;
use crate::error::ApiError;
use crate::seed::{Seed, SeedDevice};
use crate::store::Store;
use crate::workers::{OutboxWorker, Workers};
use crate::{push, webhooks};

/// This server's background work: the push sender and the webhook deliverer, scheduled by
/// [`crate::workers`].
pub type ServerWorkers = Workers<push::worker::Sender, webhooks::worker::Deliverer>;

/// A bound, ready server.
pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
    workers: ServerWorkers,
    /// Whether [`Application::run_until_stopped`] runs the loops of `workers`.
    background_loops: bool,
    drain: Arc<Drain>,
    shutdown_timeout: Duration,
    /// The account generated on first start, if this start made one.
    pub generated_account: Option<GeneratedAccount>,
    /// The local CA of `--tls-self-signed`, if used.
    pub self_signed: Option<crate::tls::SelfSignedInfo>,
}

/// Enrols the seed file's devices as virtual devices, through the device path with their fixed
/// Factor SIDs, after the seed's transaction (README.md, "Seed file"). A device whose Factor
/// already exists is left alone with its key; one held elsewhere was refused by
/// [`Seed::prepare`], and is refused here too should it appear since.
async fn enroll_seeded(state: &AppState, devices: &[SeedDevice]) -> anyhow::Result<()> {
    let (mut enrolled, mut unchanged) = (0, 0);
    for d in devices {
        if let Some(factor) = state.store.factor_anywhere(&d.factor_sid).await? {
            anyhow::ensure!(
                factor.account_sid == d.account_sid
                    && factor.service_sid == *d.service_sid
                    && factor.identity == d.identity,
                "the seed file's {}.factor_sid: {} is a Factor of another account, Service or identity",
                d.path,
                d.factor_sid
            );
            unchanged += 1;
            continue;
        }
        let enrolment = Enrolment {
            service_sid: &d.service_sid,
            identity: &d.identity,
            access_token: None,
            style: d.style,
            friendly_name: d.friendly_name.as_deref().unwrap_or(api::devices::DEFAULT_FRIENDLY_NAME),
            push_token: d.push_token.as_deref(),
            verify: true,
            factor_sid: Some(&d.factor_sid),
        };
        virtual_device::enroll(state, &d.account_sid, &enrolment)
            .await
            .map_err(|e| anyhow::anyhow!("enrolling the seed file's device {} ({}): {e}", d.path, d.factor_sid))?;
        enrolled += 1;
    }
    if !devices.is_empty() {
        tracing::info!(enrolled, unchanged, "seed file devices enrolled");
    }
    Ok(())
}

/// The seed file, put back for one account after `/_emulator/Reset`.
struct SeedAgain(Arc<Seed>);

impl crate::api::Reseed for SeedAgain {
    fn reseed<'a>(
        &'a self,
        state: &'a AppState,
        account_sid: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + 'a>> {
        Box::pin(async move {
            let writes = self.0.prepare(&state.store, &state.secrets, state.clock.now()).await?;
            self.0.apply(&state.store, &writes.of_account(account_sid)).await?;
            let devices: Vec<SeedDevice> =
                self.0.devices().into_iter().filter(|d| d.account_sid == account_sid).collect();
            enroll_seeded(state, &devices).await
        })
    }
}

impl Application {
    /// Builds the server over `base`, the clock the test controls move (the system clock in
    /// production); with `--emulator-controls off`, `base` is the server's clock as it is.
    pub async fn build(args: ServeArgs, base: SharedClock) -> anyhow::Result<Application> {
        // A bad seed file stops the start before the database is touched.
        let seed = args.seed.as_deref().map(Seed::load).transpose()?.map(Arc::new);
        let store = Store::connect(&args.database.database_url, args.database.database_max_connections).await?;
        let emulated_clock = match args.emulator_controls {
            EmulatorControls::On => Some(EmulatedClock::load(store.clone(), base.clone()).await?),
            EmulatorControls::Off => None,
        };
        let clock: SharedClock = match &emulated_clock {
            Some(emulated) => emulated.clone(),
            None => base,
        };
        let keys = crate::keys::load(&store, &args).await?;
        let token_key = TokenKey::new(&keys.access_token);
        let secrets = Arc::new(SecretBox::new(&keys.credentials));
        // Every check of the seed before any write (bootstrap removes unconfigured API keys).
        let seed_writes = match &seed {
            Some(seed) => Some(seed.prepare(&store, &secrets, clock.now()).await?),
            None => None,
        };
        let (accounts, api_keys) = seed.as_deref().map(Seed::configured).unwrap_or_default();
        let seeded = bootstrap::Seeded { accounts, api_keys };
        let generated_account = bootstrap::bootstrap(&store, &args, &seeded, clock.now()).await?;
        if let (Some(seed), Some(writes)) = (&seed, &seed_writes) {
            seed.apply(&store, writes).await?;
        }
        let push = args.push()?;
        let push_wake = Arc::new(tokio::sync::Notify::new());
        let webhook_settings = args.webhooks();
        let webhook_wake = Arc::new(tokio::sync::Notify::new());

        let tls = args.tls().map(|source| crate::tls::server_config(&source)).transpose()?;
        let listener = TcpListener::bind(&args.bind).with_context(|| format!("cannot listen on {}", args.bind))?;
        let address = listener.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let public_url = args.public_url.clone().unwrap_or_else(|| format!("{scheme}://{address}"));
        let drain = Arc::new(Drain::default());
        let state = web::Data::new(AppState {
            store: store.clone(),
            clock: clock.clone(),
            accounts: Accounts::new(store.clone(), Duration::from_millis(args.accounts_refresh_ms)),
            token_key,
            urls: Urls::new(&public_url),
            device_clock_skew: args.device_clock_skew.max(0),
            rate_limits: args.rate_limits,
            secrets: secrets.clone(),
            push: push.clone(),
            push_wake: push_wake.clone(),
            webhooks: webhook_settings.clone(),
            webhook_wake: webhook_wake.clone(),
            emulated_clock,
            draining: drain.draining.clone(),
            drain_wake: drain.wake.clone(),
            reseed: seed.clone().map(|seed| Arc::new(SeedAgain(seed)) as Arc<dyn crate::api::Reseed>),
        });
        if let Some(seed) = &seed {
            enroll_seeded(&state, &seed.devices()).await?;
        }

        let app_state = state.clone();
        let app_clock = clock.clone();
        let (app_drain, connection_drain) = (drain.clone(), drain.clone());
        let server = HttpServer::new(move || {
            let drain = app_drain.clone();
            let clock = app_clock.clone();
            App::new()
                .app_data(app_state.clone())
                .app_data(web::PathConfig::default().error_handler(|_, req| ApiError::NotFound(req.path().to_owned()).into()))
                .app_data(web::QueryConfig::default().error_handler(|e, _| ApiError::MalformedBody(e.to_string()).into()))
                .wrap_fn(move |req, srv| {
                    let drain = drain.clone();
                    let clock = clock.clone();
                    let started = Instant::now();
                    let method = req.method().clone();
                    let path = req.path().to_owned();
                    srv.call(req).map(move |mut res| {
                        if let Ok(res) = &mut res {
                            // Header names as the SDKs look them up (`Date`,
                            // `Twilio-Verify-Signature-Fields`): docs/ARCHITECTURE.md, Decisions.
                            // Only HTTP/1 writes this flag; HTTP/2 names stay lowercase.
                            res.response_mut().head_mut().set_camel_case_headers(true);
                            // The server's clock, emulated or not: the SDKs re-sync from it.
                            if let Ok(date) = HeaderValue::from_str(&dates::http(clock.now())) {
                                res.headers_mut().insert(header::DATE, date);
                            }
                            if drain.draining.load(Ordering::Relaxed) {
                                res.response_mut().head_mut().set_connection_type(ConnectionType::Close);
                            }
                            tracing::debug!(%method, %path, status = res.status().as_u16(), micros = started.elapsed().as_micros() as u64, "request");
                        }
                        res
                    })
                })
                .configure(api::configure)
                .default_service(web::to(api::not_found))
        })
        .on_connect(move |_, extensions| {
            connection_drain.connections.fetch_add(1, Ordering::Relaxed);
            extensions.insert(OpenConnection(connection_drain.clone()));
        })
        .workers(args.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())))
        .disable_signals()
        .shutdown_timeout(args.shutdown_timeout);
        let (server, self_signed) = match tls {
            Some((config, info)) => (server.listen_rustls_0_23(listener, config)?.run(), info),
            None => (server.listen(listener)?.run(), None),
        };

        let poll = (push.poll_interval, webhook_settings.poll_interval);
        let workers = Workers {
            push: OutboxWorker::new(
                push::worker::Sender::new(push, store.clone(), secrets),
                store.clone(),
                poll.0,
                push_wake,
            ),
            webhooks: OutboxWorker::new(
                webhooks::worker::Deliverer::new(webhook_settings, store.clone())?,
                store.clone(),
                poll.1,
                webhook_wake,
            ),
            store,
            clock,
            sweep_interval: Duration::from_secs(args.sweep_interval.max(1)),
            unverified_factor_ttl: args.unverified_factor_ttl,
        };
        tracing::info!(%address, %public_url, database = state.store.backend().name(), "verify-push-server listening");
        Ok(Application {
            port: address.port(),
            server,
            state,
            workers,
            background_loops: true,
            drain,
            shutdown_timeout: Duration::from_secs(args.shutdown_timeout),
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

    /// The server's clock (the emulated one unless `--emulator-controls off`).
    pub fn clock(&self) -> SharedClock {
        self.state.clock.clone()
    }

    /// The server's background work, for tests that run it by hand ([`Workers::drain`]).
    pub fn workers(&self) -> ServerWorkers {
        self.workers.clone()
    }

    /// Serves without the background loops: pushes, webhook deliveries and sweeps happen only
    /// when [`Workers::drain`] runs them (the e2e tests; docs/ARCHITECTURE.md, Tests).
    pub fn without_background_loops(mut self) -> Application {
        self.background_loops = false;
        self
    }

    /// A handle that stops the server gracefully.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Starts the background loops and serves until the server is stopped (SIGTERM/SIGINT, see
    /// [`drain_on_signal`], or a handle), then stops the loops and closes the database.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let mut loops = if self.background_loops { self.workers.spawn() } else { Vec::new() };
        // Not background work of the drain's kind: the clock follows other instances' changes
        // also in tests that run the work by hand.
        if let Some(clock) = &self.state.emulated_clock {
            loops.push(tokio::spawn(clock.clone().follow()));
        }
        let signals = tokio::spawn(drain_on_signal(self.server.handle(), self.drain.clone(), self.shutdown_timeout));
        let result = self.server.await;
        signals.abort();
        for task in loops {
            task.abort();
        }
        self.state.store.close().await;
        tracing::info!("verify-push-server stopped");
        result
    }
}

/// Graceful-shutdown state, shared by the signal task, the app's wrap and every connection.
#[derive(Default)]
struct Drain {
    /// Set at the first SIGTERM/SIGINT: each answer then closes its connection, and `/healthz`
    /// answers 503 `draining` (shared with [`AppState`]).
    draining: Arc<AtomicBool>,
    /// Woken when `draining` is set (open event streams end).
    wake: Arc<tokio::sync::Notify>,
    /// Open HTTP connections.
    connections: AtomicUsize,
}

/// Held in a connection's extensions: counts it open until it ends.
struct OpenConnection(Arc<Drain>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Graceful shutdown. actix-web's own (disabled here) closes every idle keep-alive connection
/// the moment the signal arrives and drops any request not yet fully read, so a request in
/// transit at that moment gets no answer. Instead, at the first SIGTERM/SIGINT the server
/// keeps serving with `Connection: close` on every answer, until no connection is left (idle
/// ones end at their keep-alive timeout) or `timeout` has passed; only then does actix's
/// graceful stop close what is idle and give requests still running `timeout` again. A
/// second signal stops at once.
async fn drain_on_signal(handle: ServerHandle, drain: Arc<Drain>, timeout: Duration) {
    let Ok(mut signals) = Signals::new() else {
        tracing::error!("cannot listen for SIGTERM/SIGINT; stop the server with SIGKILL");
        return;
    };
    signals.recv().await;
    drain.draining.store(true, Ordering::Relaxed);
    drain.wake.notify_waiters();
    let open = drain.connections.load(Ordering::Relaxed);
    tracing::info!(open, timeout = timeout.as_secs(), "shutting down: answering open connections, then closing them");
    let deadline = tokio::time::Instant::now() + timeout;
    while drain.connections.load(Ordering::Relaxed) > 0 && tokio::time::Instant::now() < deadline {
        tokio::select! {
            () = signals.recv() => return handle.stop(false).await,
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
    handle.stop(true).await;
}

/// SIGTERM and SIGINT (Ctrl-C elsewhere than Unix).
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Signals { term: signal(SignalKind::terminate())?, int: signal(SignalKind::interrupt())? })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
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
