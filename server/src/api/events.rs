//! `GET /_emulator/Events`: the calling account's live events as Server-Sent Events (README.md,
//! "Live events"; docs/ARCHITECTURE.md, "Live events").
//!
//! Filters `ServiceSid`, `Identity` and `Type` (repeated or comma-separated; `challenge.*`, `*`).
//! Each event is one SSE message: `id:` (monotonic per instance), `event:` (its type) and `data:`,
//! one line of JSON with the SIDs and the resource rendered as the REST API (or
//! `/_emulator/pushes`, `/_emulator/webhook-deliveries`) renders it. The stream opens with a
//! `retry:` hint, sends a `: keep-alive` comment every 15 s, and a client that falls too far
//! behind ([`HUB_CAPACITY`] events) gets `event: overflow` and the end of the stream.

use std::time::Duration;

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::HttpResponse;
use serde::Serialize;
use serde_json::Value;

use super::auth::AccountAuth;
use super::params::Query;
use super::{challenges, emulator, factors, param_sid, AppState, State};
use crate::domain::dates;
use crate::domain::sid::ServiceSid;
use crate::domain::status::EventType;
use crate::error::{ApiError, ApiResult};
use crate::store::challenges::ChallengeRow;
use crate::store::factors::FactorRow;
use crate::store::live::{LiveEvent, Published, Received, Rendered, Subject, Subscription, HUB_CAPACITY};

/// How often an idle stream sends a comment (proxies and clients close silent connections).
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The reconnection delay suggested to clients, milliseconds.
const RETRY_MS: u32 = 2000;

/// Which events a stream sends.
#[derive(Debug)]
struct Filter {
    account_sid: String,
    service_sid: Option<String>,
    identity: Option<String>,
    /// Empty: every type.
    types: Vec<EventType>,
}

impl Filter {
    fn parse(account_sid: &str, q: &super::params::Params) -> ApiResult<Filter> {
        let service_sid = match q.get("ServiceSid") {
            Some(raw) => Some(param_sid::<ServiceSid>("ServiceSid", raw)?.to_string()),
            None => None,
        };
        let identity = q.get("Identity").map(str::to_owned);
        let mut types = Vec::new();
        let mut every = false;
        for word in q.all("Type").into_iter().flat_map(|v| v.split(',')).map(str::trim) {
            if word == "*" {
                every = true;
            } else if let Some(family) = word.strip_suffix('*').filter(|f| f.ends_with('.')) {
                // A family (`challenge.*`): the types of `EventType` that start with it.
                let before = types.len();
                types.extend(
                    EventType::NAMES
                        .iter()
                        .filter(|n| n.starts_with(family))
                        .filter_map(|n| n.parse::<EventType>().ok()),
                );
                if types.len() == before {
                    return Err(ApiError::invalid("Type", format!("no event type matches {word:?}")));
                }
            } else {
                let kind: EventType = word.parse().map_err(|_| {
                    ApiError::invalid(
                        "Type",
                        format!(
                            "unknown event type {word:?}: one of {}, a family's `*` or `*`",
                            EventType::NAMES.join(", ")
                        ),
                    )
                })?;
                types.push(kind);
            }
        }
        if every {
            types.clear();
        }
        Ok(Filter { account_sid: account_sid.to_owned(), service_sid, identity, types })
    }

    /// Whether the event may be sent (its identity is checked once rendered).
    fn admits(&self, e: &LiveEvent) -> bool {
        e.account_sid == self.account_sid
            && self.service_sid.as_ref().is_none_or(|s| *s == e.service_sid)
            && (self.types.is_empty() || self.types.contains(&e.kind))
    }

    fn admits_identity(&self, rendered: &Rendered) -> bool {
        self.identity.as_ref().is_none_or(|i| rendered.identity.as_ref() == Some(i))
    }
}

/// The JSON of one event.
#[derive(Serialize)]
struct EventBody<'a> {
    #[serde(rename = "type")]
    kind: EventType,
    account_sid: &'a str,
    service_sid: &'a str,
    identity: Option<&'a str>,
    factor_sid: Option<&'a str>,
    challenge_sid: Option<&'a str>,
    /// When the change committed (the writer's clock).
    date_created: String,
    resource: Value,
}

/// Renders an event once for every stream of this instance (`None`: it cannot be read).
async fn render(state: &AppState, e: &LiveEvent) -> Option<Rendered> {
    let mut identity = e.identity.clone();
    let resource = match &e.subject {
        Subject::Challenge(row) => {
            let c: ChallengeRow = serde_json::from_value(row.clone()).ok()?;
            serde_json::to_value(challenges::render(state, &c, e.at)).ok()?
        }
        Subject::Factor(row) => {
            let f: FactorRow = serde_json::from_value(row.clone()).ok()?;
            serde_json::to_value(factors::render(state, &f)).ok()?
        }
        Subject::Push { id } => {
            let challenge_sid = e.challenge_sid.as_deref().unwrap_or_default();
            let (push, of) = state.store.push_of_event(&e.account_sid, *id, challenge_sid).await.ok()?;
            identity = identity.or(of);
            push.as_ref().map_or(Value::Null, emulator::push_json)
        }
        Subject::Delivery { id } => {
            let delivery = state.store.delivery_of_event(&e.account_sid, *id).await.ok()?;
            let json = delivery.as_ref().map_or(Value::Null, emulator::delivery_json);
            identity = identity.or_else(|| json["fields"]["entity_identity"].as_str().map(str::to_owned));
            json
        }
        Subject::Reread => reread(state, e).await?,
    };
    let body = EventBody {
        kind: e.kind,
        account_sid: &e.account_sid,
        service_sid: &e.service_sid,
        identity: identity.as_deref(),
        factor_sid: e.factor_sid.as_deref(),
        challenge_sid: e.challenge_sid.as_deref(),
        date_created: dates::format(e.at),
        resource,
    };
    Some(Rendered { json: serde_json::to_string(&body).ok()?, identity })
}

/// The resource of an event too large for a notification, read again (null if it is gone).
async fn reread(state: &AppState, e: &LiveEvent) -> Option<Value> {
    let (service, identity) = (&e.service_sid, e.identity.as_deref().unwrap_or_default());
    let value = match (&e.challenge_sid, &e.factor_sid) {
        (Some(sid), _) => {
            match state.store.challenge(&e.account_sid, service, identity, &sid.parse().ok()?).await.ok()? {
                Some(c) => serde_json::to_value(challenges::render(state, &c, e.at)).ok()?,
                None => Value::Null,
            }
        }
        (None, Some(sid)) => match state.store.factor(&e.account_sid, service, identity, sid).await.ok()? {
            Some(f) => serde_json::to_value(factors::render(state, &f)).ok()?,
            None => Value::Null,
        },
        (None, None) => Value::Null,
    };
    Some(value)
}

/// One SSE message.
fn message(p: &Published, json: &str) -> Bytes {
    Bytes::from(format!("id: {}\nevent: {}\ndata: {json}\n\n", p.id, p.event.kind))
}

/// A stream's state between two messages.
struct Stream {
    state: State,
    filter: Filter,
    subscription: Subscription,
    keep_alive: tokio::time::Interval,
    opened: bool,
    done: bool,
}

impl Stream {
    /// The next bytes to send, or `None` at the end.
    async fn next(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        if !self.opened {
            self.opened = true;
            return Some(Bytes::from(format!("retry: {RETRY_MS}\n: connected\n\n")));
        }
        loop {
            let received = tokio::select! {
                _ = self.keep_alive.tick() => return Some(Bytes::from_static(b": keep-alive\n\n")),
                // A graceful shutdown waits for open connections: a stream ends at its start.
                () = self.state.draining_begun() => {
                    self.done = true;
                    return None;
                }
                received = self.subscription.next() => received,
            };
            match received {
                Received::Event(p) => {
                    if !self.filter.admits(&p.event) {
                        continue;
                    }
                    let rendered = p.rendered.get_or_init(|| render(&self.state, &p.event)).await;
                    match rendered {
                        Some(r) if self.filter.admits_identity(r) => return Some(message(&p, &r.json)),
                        _ => continue,
                    }
                }
                Received::Overflow(missed) => {
                    self.done = true;
                    let data = format!("{{\"missed\":{missed},\"buffer\":{HUB_CAPACITY}}}");
                    return Some(Bytes::from(format!("event: overflow\ndata: {data}\n\n")));
                }
                Received::Closed => return None,
            }
        }
    }
}

pub async fn stream_events(auth: AccountAuth, state: State, Query(q): Query) -> ApiResult<HttpResponse> {
    let filter = Filter::parse(&auth.account_sid, &q)?;
    // Subscribed before the response starts: every event committed after the headers arrive
    // is sent.
    let subscription = state.store.live.subscribe();
    let keep_alive = tokio::time::interval_at(tokio::time::Instant::now() + KEEP_ALIVE, KEEP_ALIVE);
    let stream = Stream { state, filter, subscription, keep_alive, opened: false, done: false };
    let body = futures_util::stream::unfold(stream, |mut s| async move {
        s.next().await.map(|bytes| (Ok::<_, actix_web::Error>(bytes), s))
    });
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}
