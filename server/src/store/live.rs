//! Live events (`GET /_emulator/Events`): each one is part of the write that causes it and is
//! published in commit order, to every instance (docs/ARCHITECTURE.md, "Live events").
//!
//! - **SQLite** (one writer): the writer publishes a script's events to this process's [`Hub`]
//!   right after its commit, while it still holds the writer, so the hub sees commits in order.
//! - **PostgreSQL**: the write's transaction ends with one `pg_notify` statement carrying its
//!   events; PostgreSQL delivers notifications at commit, in commit order, to every listening
//!   connection. Each instance listens on one connection ([`listen`]) and publishes what arrives
//!   to its hub — its own events included, so every instance sees one order.
//!
//! A notification's payload must stay under 8000 bytes: an event that does not fit travels
//! without its row ([`Subject::Reread`]) and the receiving instance reads the row again.
//!
//! The hub is a bounded broadcast: a subscriber that falls more than [`HUB_CAPACITY`] events
//! behind loses its place ([`Received::Overflow`]) and the stream is closed; publishers never wait.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::{Arg, Backend, Sql};
use crate::domain::status::EventType;

/// The PostgreSQL channel every instance on one schema listens on: this prefix and the schema
/// (a channel is database-wide; schemas apart, e.g. the tests', must not hear each other).
const CHANNEL_PREFIX: &str = "verify_push_events_";

/// Events a subscriber may fall behind before it is dropped.
pub const HUB_CAPACITY: usize = 1024;

/// A notification payload's limit is 8000 bytes; leave room.
const PAYLOAD_MAX: usize = 7900;

/// One event, as the writer recorded it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LiveEvent {
    #[serde(rename = "type")]
    pub kind: EventType,
    pub account_sid: String,
    pub service_sid: String,
    /// Known for challenge and factor events; push and webhook events learn it when rendered.
    pub identity: Option<String>,
    pub factor_sid: Option<String>,
    pub challenge_sid: Option<String>,
    /// The writer's clock at the change (Unix seconds).
    pub at: i64,
    pub subject: Subject,
}

/// The resource an event is about.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", content = "row")]
pub enum Subject {
    /// The Challenge as the change left it (a `ChallengeRow`; typed rows would make this module
    /// and theirs import each other).
    Challenge(serde_json::Value),
    /// The Factor as the change left it (a deleted one as it was): a `FactorRow`.
    Factor(serde_json::Value),
    /// A push, read when the event is rendered: by id, or (created with its Challenge, before
    /// its id was known) the Challenge's own push.
    Push { id: Option<i64> },
    /// A webhook delivery, read when the event is rendered.
    Delivery { id: i64 },
    /// Too large for a notification: the Challenge or Factor the SIDs name, read again.
    Reread,
}

impl LiveEvent {
    /// An event about one row (its SIDs given), which travels with it as `subject`.
    pub fn new(kind: EventType, account_sid: &str, service_sid: &str, at: i64, subject: Subject) -> LiveEvent {
        LiveEvent {
            kind,
            account_sid: account_sid.to_owned(),
            service_sid: service_sid.to_owned(),
            identity: None,
            factor_sid: None,
            challenge_sid: None,
            at,
            subject,
        }
    }

    /// The notification payload: the event, or without its row when that is too large.
    fn payload(&self) -> String {
        let full = serde_json::to_string(self).unwrap_or_default();
        if full.len() <= PAYLOAD_MAX {
            return full;
        }
        let mut light = self.clone();
        light.subject = Subject::Reread;
        serde_json::to_string(&light).unwrap_or_default()
    }
}

/// An event as this instance publishes it: numbered, in the order it learnt of it.
#[derive(Debug)]
pub struct Published {
    /// Monotonic per instance (the SSE `id:`).
    pub id: u64,
    pub event: LiveEvent,
    /// Its rendering, made once by the first subscriber that sends it.
    pub rendered: tokio::sync::OnceCell<Option<Rendered>>,
}

/// An event rendered for the stream.
#[derive(Debug)]
pub struct Rendered {
    /// The identity it concerns, when one is known.
    pub identity: Option<String>,
    /// The JSON object sent as the SSE `data:`.
    pub json: String,
}

/// This process's broadcast of events (cheap to clone).
#[derive(Debug, Clone)]
pub struct Hub {
    sender: broadcast::Sender<Arc<Published>>,
    next_id: Arc<AtomicU64>,
    /// PostgreSQL: the channel of this schema ("" on SQLite).
    pub(crate) channel: Arc<str>,
}

impl Default for Hub {
    fn default() -> Hub {
        Hub { sender: broadcast::channel(HUB_CAPACITY).0, next_id: Arc::new(AtomicU64::new(1)), channel: "".into() }
    }
}

/// What a subscriber receives next.
#[derive(Debug)]
pub enum Received {
    Event(Arc<Published>),
    /// It fell behind by this many events and lost its place.
    Overflow(u64),
    Closed,
}

/// One subscriber's place in the hub.
#[derive(Debug)]
pub struct Subscription(broadcast::Receiver<Arc<Published>>);

impl Subscription {
    pub async fn next(&mut self) -> Received {
        match self.0.recv().await {
            Ok(event) => Received::Event(event),
            Err(broadcast::error::RecvError::Lagged(n)) => Received::Overflow(n),
            Err(broadcast::error::RecvError::Closed) => Received::Closed,
        }
    }
}

impl Hub {
    pub fn subscribe(&self) -> Subscription {
        Subscription(self.sender.subscribe())
    }

    /// Publishes `events` in order (nobody listening is fine).
    pub(crate) fn publish(&self, events: impl IntoIterator<Item = LiveEvent>) {
        for event in events {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let _ = self.sender.send(Arc::new(Published { id, event, rendered: Default::default() }));
        }
    }

    /// On SQLite, publishes `events` that just committed; PostgreSQL's arrive by [`listen`].
    pub(crate) fn committed(&self, backend: Backend, events: &[LiveEvent]) {
        if backend == Backend::Sqlite && !events.is_empty() {
            self.publish(events.iter().cloned());
        }
    }

    /// On PostgreSQL, the statement that notifies `events` at commit (see [`notify_statement`]).
    pub(crate) fn notify(&self, backend: Backend, events: &[LiveEvent]) -> Option<Sql> {
        notify_statement(backend, &self.channel, events)
    }
}

/// On PostgreSQL, the statement that notifies `events` in order at commit (one statement for any
/// number); `None` on SQLite or without events.
fn notify_statement(backend: Backend, channel: &str, events: &[LiveEvent]) -> Option<Sql> {
    if backend != Backend::Postgres || events.is_empty() {
        return None;
    }
    let mut sql = Sql::statement("SELECT pg_notify(?, p) FROM (VALUES ", [Arg::text(channel)]);
    for (n, event) in events.iter().enumerate() {
        let comma = if n == 0 { "" } else { ", " };
        sql.push(&format!("{comma}({n}, ?)"), [Arg::Text(event.payload())]);
    }
    sql.push(") AS t(n, p) ORDER BY n", []);
    Some(sql)
}

/// Listens on PostgreSQL and publishes every event notified (every instance's) to `hub`, until
/// the pool closes. Returns once listening, so that no event committed after it is missed.
/// Returns the channel.
pub(crate) async fn listen(pool: &sqlx::PgPool, hub: Hub) -> Result<String, sqlx::Error> {
    let schema: String = sqlx::query_scalar("SELECT current_schema()").fetch_one(pool).await?;
    let channel: String = format!("{CHANNEL_PREFIX}{schema}").chars().take(63).collect();
    let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
    listener.listen(&channel).await?;
    let pool = pool.clone();
    tokio::spawn(async move {
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => match serde_json::from_str::<LiveEvent>(notification.payload()) {
                    Ok(event) => hub.publish([event]),
                    Err(error) => tracing::warn!(%error, "live events: an unreadable notification"),
                },
                // The connection was lost; sqlx reconnects on the next call (what was notified
                // meanwhile is lost to this instance's subscribers).
                Ok(None) => tracing::warn!("live events: the listening connection was lost; reconnecting"),
                Err(error) => {
                    if pool.is_closed() {
                        return;
                    }
                    tracing::warn!(%error, "live events: cannot listen; will retry");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
    Ok(channel)
}
