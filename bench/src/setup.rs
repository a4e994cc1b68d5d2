//! Untimed setup: the backend's Service, enrolled devices, and the requests a scenario sends,
//! rendered (and signed) before the clock starts.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use p256::ecdsa::SigningKey;
use serde_json::{Map, Value};
use verify_push_client::device::Connection;
use verify_push_client::jwt::factor_jwt;
use verify_push_client::{Device, Profile, Style};

use crate::http::{self, Conn, Response};

/// A push token of the length FCM hands out (64 characters), so factors register `fcm`.
pub const PUSH_TOKEN: &str = "fcm-bench-token-0123456789abcdef0123456789abcdef0123456789abcdef";

pub fn now_unix() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// `Basic base64(user:password)`.
pub fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

/// Form encoding as twilio-python and the Android SDK send it (every reserved byte escaped).
pub fn form(pairs: &[(&str, &str)]) -> String {
    Style::Android.encode(pairs)
}

/// Twilio's date format, `YYYY-MM-DDTHH:MM:SSZ`.
pub fn twilio_date(unix: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::from_unix_timestamp(unix).ok().and_then(|t| t.format(&format).ok()).unwrap_or_default()
}

/// The backend side: Basic auth with the account SID and auth token.
#[derive(Clone)]
pub struct Backend {
    http: reqwest::Client,
    pub base_url: String,
    pub host: String,
    pub addr: SocketAddr,
    pub auth: String,
}

impl Backend {
    pub fn new(base_url: &str, addr: SocketAddr, account_sid: &str, auth_token: &str) -> anyhow::Result<Backend> {
        let base_url = base_url.trim_end_matches('/').to_owned();
        let host = base_url.split("://").nth(1).unwrap_or(&base_url).split('/').next().unwrap_or("").to_owned();
        Ok(Backend {
            http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?,
            base_url,
            host,
            addr,
            auth: basic(account_sid, auth_token),
        })
    }

    pub async fn post(&self, path: &str, pairs: &[(&str, &str)]) -> anyhow::Result<Map<String, Value>> {
        let response = self
            .http
            .post(format!("{}{path}", self.base_url))
            .header("Authorization", &self.auth)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form(pairs))
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("POST {path}: {status}: {text}");
        }
        match serde_json::from_str(&text) {
            Ok(Value::Object(map)) => Ok(map),
            _ => bail!("POST {path}: not a JSON object: {text}"),
        }
    }

    pub async fn create_service(&self, name: &str) -> anyhow::Result<String> {
        let service = self.post("/v2/Services", &[("FriendlyName", name)]).await?;
        string(&service, "sid")
    }

    pub async fn access_token(&self, service_sid: &str, identity: &str) -> anyhow::Result<String> {
        let path = format!("/v2/Services/{service_sid}/AccessTokens");
        let token = self.post(&path, &[("Identity", identity), ("FactorType", "push"), ("Ttl", "300")]).await?;
        string(&token, "token")
    }
}

pub fn string(map: &Map<String, Value>, key: &str) -> anyhow::Result<String> {
    map.get(key).and_then(Value::as_str).map(str::to_owned).with_context(|| format!("no string {key:?} in {map:?}"))
}

/// An enrolled device (a verified push factor) and the user it belongs to.
#[derive(Clone)]
pub struct User {
    pub identity: String,
    pub factor_sid: String,
    pub credential_sid: String,
    pub account_sid: String,
    pub key: SigningKey,
}

impl User {
    /// The device's `Authorization` value: `token` and a fresh factor JWT (valid 600 s).
    pub fn device_auth(&self) -> String {
        basic("token", &factor_jwt(&self.key, Style::Android, &self.credential_sid, &self.account_sid, now_unix()))
    }
}

/// Enrols `count` devices the way the SDKs do (access token → create factor → verify), `16` at
/// a time, through `verify-push-client`.
pub async fn enroll_users(backend: &Backend, service_sid: &str, count: usize, tag: &str) -> anyhow::Result<Vec<User>> {
    let next = Arc::new(AtomicUsize::new(0));
    let users = Arc::new(Mutex::new(Vec::with_capacity(count)));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16.min(count.max(1)) {
        let (backend, next, users, service_sid, tag) =
            (backend.clone(), next.clone(), users.clone(), service_sid.to_owned(), tag.to_owned());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return anyhow::Ok(());
                }
                let identity = format!("bench-{tag}-user-{i:06}");
                let token = backend.access_token(&service_sid, &identity).await?;
                let mut profile = Profile::new(&identity, &backend.base_url, Style::Android, &service_sid, &identity);
                profile.push_token = Some(PUSH_TOKEN.to_owned());
                let mut device = Device::new(profile, None, &Connection::default())?;
                device.enroll(&token, None).await.with_context(|| format!("enrolling {identity}"))?;
                let p = &device.profile;
                let user = User {
                    identity,
                    factor_sid: p.factor_sid.clone().context("no factor SID after enrolment")?,
                    credential_sid: p.credential_sid.clone().context("no credential SID after enrolment")?,
                    account_sid: p.account_sid.clone().context("no account SID after enrolment")?,
                    key: p.signing_key()?,
                };
                if let Ok(mut users) = users.lock() {
                    users.push((i, user));
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let mut users = std::mem::take(&mut *users.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    users.sort_by_key(|(i, _)| *i);
    Ok(users.into_iter().map(|(_, u)| u).collect())
}

/// The body of a backend's CreateChallenge: a message, three `Details.Fields` and
/// `HiddenDetails`, as twilio-python sends them; `expiration` is an ISO date or none (300 s).
pub fn challenge_form(factor_sid: &str, n: u64, expiration: Option<&str>) -> String {
    let ip = format!("203.0.113.{}", n % 250 + 1);
    let fields = [
        format!(r#"{{"label":"IP","value":"{ip}"}}"#),
        r#"{"label":"Location","value":"Lisbon, PT"}"#.to_owned(),
        r#"{"label":"Browser","value":"Firefox 133 on Linux"}"#.to_owned(),
    ];
    let hidden = format!(r#"{{"ip":"{ip}","session":"s-{n}"}}"#);
    let mut pairs: Vec<(&str, &str)> =
        vec![("FactorSid", factor_sid), ("Details.Message", "Login request to Owl Bank")];
    for field in &fields {
        pairs.push(("Details.Fields", field));
    }
    pairs.push(("HiddenDetails", &hidden));
    if let Some(at) = expiration {
        pairs.push(("ExpirationDate", at));
    }
    form(&pairs)
}

pub fn challenges_path(service_sid: &str, identity: &str) -> String {
    format!("/v2/Services/{service_sid}/Entities/{identity}/Challenges")
}

/// Sends `requests` over `concurrency` connections (untimed setup work) and returns the
/// responses in order; any non-2xx answer is an error.
pub async fn send_all(addr: SocketAddr, requests: Vec<Vec<u8>>, concurrency: usize) -> anyhow::Result<Vec<Response>> {
    let count = requests.len();
    let requests = Arc::new(requests);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency.clamp(1, count.max(1)) {
        let (requests, next) = (requests.clone(), next.clone());
        tasks.spawn(async move {
            let mut conn = Conn::new(addr);
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests.len() {
                    return anyhow::Ok(out);
                }
                let response = conn.send(&requests[i]).await.map_err(anyhow::Error::msg)?;
                if !response.is_success() {
                    bail!("setup request failed: {}: {}", response.status, response.text());
                }
                out.push((i, response));
            }
        });
    }
    let mut all: Vec<Option<Response>> = (0..count).map(|_| None).collect();
    while let Some(done) = tasks.join_next().await {
        for (i, response) in done?? {
            all[i] = Some(response);
        }
    }
    all.into_iter().map(|r| r.context("a setup request got no response")).collect()
}

/// Creates `per_user` pending challenges for every user (expiring in about an hour) and returns
/// each as (user index, JSON object).
pub async fn create_pending(
    backend: &Backend,
    service_sid: &str,
    users: &[User],
    total: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<(usize, Map<String, Value>)>> {
    let expiration = twilio_date(now_unix() + 3500);
    let requests: Vec<Vec<u8>> = (0..total)
        .map(|i| {
            let user = &users[i % users.len()];
            let body = challenge_form(&user.factor_sid, i as u64, Some(&expiration));
            http::render(
                "POST",
                &backend.host,
                &challenges_path(service_sid, &user.identity),
                &backend.auth,
                Some(&body),
            )
        })
        .collect();
    let responses = send_all(backend.addr, requests, concurrency).await?;
    responses
        .into_iter()
        .enumerate()
        .map(|(i, r)| match serde_json::from_slice(&r.body) {
            Ok(Value::Object(map)) => Ok((i % users.len(), map)),
            _ => bail!("a created challenge is not a JSON object: {}", r.text()),
        })
        .collect()
}

/// Runs `f` over `items` on every core (untimed CPU work such as signing).
pub fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).max(1);
    let chunk = items.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> =
            items.chunks(chunk).map(|part| scope.spawn(|| part.iter().map(&f).collect::<Vec<R>>())).collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    })
}
