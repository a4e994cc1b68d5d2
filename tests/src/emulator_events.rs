//! `GET /_emulator/Events`: live events as Server-Sent Events (README.md, "Live events").

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::Value;
use verify_push_client::{jwt, Style};

use verify_push_server::config::ServeArgs;
use verify_push_server::store::Backend;

use crate::fakes::{script, TestCa};
use crate::helpers::{for_each_backend, identity, on_both_backends, Creds, TestApp};
use crate::{push, webhook_delivery};

/// How long a test waits for an event that must come.
const DEADLINE: Duration = Duration::from_secs(10);

/// One SSE message.
#[derive(Debug)]
struct Message {
    id: Option<u64>,
    event: String,
    data: Value,
}

/// An open event stream.
struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    async fn open(app: &TestApp, query: &str) -> Events {
        let response = reqwest::Client::new()
            .get(format!("{}/_emulator/Events{query}", app.url))
            .basic_auth(&app.account.user, Some(&app.account.password))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["Content-Type"], "text/event-stream");
        Events { response, buffer: String::new() }
    }

    /// The next message (comments skipped), or `None` when the stream ends.
    async fn next(&mut self) -> Option<Message> {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (None, String::new(), None);
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        id = v.parse().ok();
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        event = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data = Some(serde_json::from_str(v).unwrap());
                    }
                }
                if let Some(data) = data {
                    return Some(Message { id, event, data });
                }
            }
            let chunk =
                tokio::time::timeout(DEADLINE, self.response.chunk()).await.expect("an event in time").unwrap()?;
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    async fn expect(&mut self, event: &str) -> Message {
        let m = self.next().await.expect("the stream is open");
        assert_eq!(m.event, event, "{m:?}");
        assert_eq!(m.data["type"], event);
        m
    }
}

/// Approves or denies a pending Challenge as its device.
async fn answer(app: &TestApp, key: &p256::ecdsa::SigningKey, challenge: &Value, status: &str) -> Value {
    let path = format!(
        "/v2/Services/{}/Entities/{}/Challenges/{}",
        challenge["service_sid"].as_str().unwrap(),
        challenge["identity"].as_str().unwrap(),
        challenge["sid"].as_str().unwrap()
    );
    let fetched = app.get(&path).await;
    let fields: Vec<String> =
        fetched.headers["Twilio-Verify-Signature-Fields"].to_str().unwrap().split(',').map(str::to_owned).collect();
    let json = fetched.assert_status(200).as_object().unwrap().clone();
    let token = jwt::challenge_answer(key, Style::Android, &fields, &json, status).unwrap();
    app.post(&path, &[("AuthPayload", &token)]).await.assert_status(200).clone()
}

async fn each_event_arrives_with_its_sids_and_resource(app: TestApp) {
    let mut events = Events::open(&app, "").await;
    let service = app.service().await;
    let user = identity();
    let (factor, key) = app.verified_factor(&service, &user).await;
    let created = events.expect("factor.created").await;
    assert_eq!(created.data["resource"]["status"], "unverified");
    assert_eq!(created.data["factor_sid"], factor.as_str());
    assert_eq!(created.data["identity"], user.as_str());
    assert_eq!(created.data["account_sid"], app.account.user.as_str());
    assert_eq!(created.data["service_sid"], service.as_str());
    let verified = events.expect("factor.verified").await;
    assert_eq!(verified.data["resource"]["status"], "verified");
    assert!(verified.id > created.id, "ids grow");

    let challenge = app.challenge(&service, &user, &factor).await;
    let m = events.expect("challenge.created").await;
    assert_eq!(m.data["resource"], challenge, "rendered as the REST API renders it");
    assert_eq!(m.data["challenge_sid"], challenge["sid"]);
    // No credential: the push is recorded with the Challenge.
    let recorded = events.expect("push.recorded").await;
    assert_eq!(recorded.data["resource"]["challenge_sid"], challenge["sid"]);
    assert_eq!(recorded.data["resource"]["status"], "recorded");
    assert_eq!(recorded.data["identity"], user.as_str());

    let approved = answer(&app, &key, &challenge, "approved").await;
    let m = events.expect("challenge.approved").await;
    assert_eq!(m.data["resource"], approved);

    let second = app.challenge(&service, &user, &factor).await;
    events.expect("challenge.created").await;
    events.expect("push.recorded").await;
    app.clock.advance(3600);
    app.sweep_and_drain().await;
    let m = events.expect("challenge.expired").await;
    assert_eq!(m.data["challenge_sid"], second["sid"]);
    assert_eq!(m.data["resource"]["status"], "expired");

    app.delete(&format!("/v2/Services/{service}/Entities/{user}/Factors/{factor}")).await.assert_status(204);
    let m = events.expect("factor.deleted").await;
    assert_eq!(m.data["resource"]["sid"], factor.as_str());
}

async fn filters_pick_the_events_and_other_accounts_never_show(app: TestApp) {
    let (service, other_service) = (app.service().await, app.service().await);
    let (user, other_user) = (identity(), identity());
    let mut by_type = Events::open(&app, "?Type=challenge.*").await;
    let mut by_service =
        Events::open(&app, &format!("?ServiceSid={service}&Type=factor.created,factor.verified")).await;
    let mut by_identity = Events::open(&app, &format!("?Identity={other_user}&Type=factor.created")).await;
    // Another account's stream sees nothing of this account's: its first event is its own.
    let other = app.other_account.clone();
    let other_service_of_other = {
        let reply =
            app.send(reqwest::Method::POST, "/v2/Services", Some(&other), &[("FriendlyName", "x")], &[], None).await;
        reply.assert_status(201)["sid"].as_str().unwrap().to_owned()
    };
    let mut others = {
        let response = reqwest::Client::new()
            .get(format!("{}/_emulator/Events", app.url))
            .basic_auth(&other.user, Some(&other.password))
            .send()
            .await
            .unwrap();
        Events { response, buffer: String::new() }
    };

    let (other_factor, _) = app.verified_factor(&other_service, &other_user).await;
    let (factor, _) = app.verified_factor(&service, &user).await;
    let challenge = app.challenge(&service, &user, &factor).await;

    let m = by_type.expect("challenge.created").await;
    assert_eq!(m.data["challenge_sid"], challenge["sid"], "the factor events were filtered out");
    let m = by_service.expect("factor.created").await;
    assert_eq!(m.data["factor_sid"], factor.as_str(), "the other Service's factor was filtered out");
    by_service.expect("factor.verified").await;
    let m = by_identity.expect("factor.created").await;
    assert_eq!(m.data["factor_sid"], other_factor.as_str());

    // The other account's own change is the first event its stream gets.
    let url = format!("/v2/Services/{other_service_of_other}/Entities/{}/Factors", identity());
    let key = crate::helpers::device_key();
    let public = crate::helpers::spki_base64(&key);
    let token = "t".repeat(40);
    let form = crate::helpers::factor_form(&public, "fcm", &token);
    app.send(reqwest::Method::POST, &url, Some(&other), &form, &[], None).await.assert_status(201);
    let m = others.expect("factor.created").await;
    assert_eq!(m.data["account_sid"], other.user.as_str());
}

async fn bad_filters_and_bad_credentials_are_refused(app: TestApp) {
    let reply = app.get("/_emulator/Events?Type=challenge.exploded").await;
    assert!(reply.assert_error(400, 60200).contains("Type"));
    let reply = app.get("/_emulator/Events?Type=nothing.*").await;
    assert!(reply.assert_error(400, 60200).contains("Type"));
    let reply = app.get("/_emulator/Events?ServiceSid=VAnope").await;
    assert!(reply.assert_error(400, 60200).contains("ServiceSid"));
    let wrong = Creds { user: app.account.user.clone(), password: "wrong".repeat(4) };
    let reply = app.send(reqwest::Method::GET, "/_emulator/Events", Some(&wrong), &[], &[], None).await;
    reply.assert_error(401, 20003);
    let reply = app.send(reqwest::Method::GET, "/_emulator/Events", None, &[], &[], None).await;
    reply.assert_error(401, 20003);
}

/// Many factors at once, each created → verified → challenged → approved: every factor's events
/// arrive in that order.
async fn events_arrive_in_order_per_factor(app: TestApp) {
    let service = app.service().await;
    let mut events = Events::open(&app, "?Type=factor.*,challenge.created,challenge.approved").await;
    let flows = (0..8).map(|_| async {
        let user = identity();
        let (factor, key) = app.verified_factor(&service, &user).await;
        let challenge = app.challenge(&service, &user, &factor).await;
        answer(&app, &key, &challenge, "approved").await;
        factor
    });
    let factors = join_all(flows).await;
    let mut seen: std::collections::HashMap<String, Vec<String>> = Default::default();
    for _ in 0..factors.len() * 4 {
        let m = events.next().await.unwrap();
        seen.entry(m.data["factor_sid"].as_str().unwrap().to_owned()).or_default().push(m.event);
    }
    for factor in &factors {
        assert_eq!(seen[factor], ["factor.created", "factor.verified", "challenge.created", "challenge.approved"]);
    }
}

/// `push.sent` and `push.failed`: an APNs fake answers the first push 200 and the next 410.
async fn push_outcomes_arrive_with_the_push_as_emulator_pushes_renders_it(backend: Backend) {
    let ca = TestCa::new();
    let answers = script(&[(200, "{}")], (410, r#"{"reason": "Unregistered"}"#));
    let apns = push::fake(Some((&ca, false)), answers).await;
    let url = apns.url(true);
    let app = push::app_with(backend, Some(&ca), |a| a.apns_url = url).await;
    let credential = push::apn_token_credential(&app, false).await;
    let (service, user, factor) = push::service_with(&app, "apn", Some(&credential)).await;
    let mut events = Events::open(&app, "?Type=push.*").await;
    for outcome in ["sent", "failed"] {
        let sid = push::challenge(&app, &service, &user, &factor, outcome).await;
        app.drain().await;
        let m = events.expect(&format!("push.{outcome}")).await;
        let pushes = push::pushes_of(&app, &sid).await;
        assert_eq!(pushes.len(), 1);
        assert_eq!(m.data["resource"], pushes[0], "rendered as /_emulator/pushes renders it");
        assert_eq!(m.data["resource"]["status"], outcome);
        assert_eq!(m.data["challenge_sid"], sid.as_str());
        assert_eq!(m.data["factor_sid"], factor.as_str());
        assert_eq!(m.data["identity"], user.as_str());
        assert_eq!(m.data["service_sid"], service.as_str());
        assert_eq!(m.data["account_sid"], app.account.user.as_str());
    }
    assert_eq!(apns.log.all().len(), 2);
}

fn one_attempt(args: &mut ServeArgs) {
    args.webhook_max_attempts = 1;
}

/// `webhook.delivered` and `webhook.failed`: the receiver answers the first delivery 200 and
/// the next 500, which with one attempt allowed is final.
async fn webhook_outcomes_arrive_with_the_delivery_as_emulator_renders_it(app: TestApp) {
    let hooks = webhook_delivery::receiver(script(&[(200, "ok")], (500, "boom"))).await;
    let service = app.service().await;
    let hook = webhook_delivery::webhook(&app, &service, &hooks.url(false), &["factor.created"], "v2").await;
    let mut events = Events::open(&app, "?Type=webhook.*").await;
    for outcome in ["delivered", "failed"] {
        let user = identity();
        let (factor, _) = app.unverified_factor(&service, &user).await;
        app.drain().await;
        let m = events.expect(&format!("webhook.{outcome}")).await;
        let listed = app.get(&format!("/_emulator/webhook-deliveries?WebhookSid={hook}")).await;
        let deliveries = listed.assert_status(200)["webhook_deliveries"].as_array().unwrap().clone();
        let delivery = deliveries.iter().find(|d| d["factor_sid"] == factor.as_str()).unwrap();
        assert_eq!(&m.data["resource"], delivery, "rendered as /_emulator/webhook-deliveries renders it");
        assert_eq!(m.data["resource"]["outcome"], outcome);
        assert_eq!(m.data["identity"], user.as_str());
        assert_eq!(m.data["service_sid"], service.as_str());
        assert_eq!(m.data["account_sid"], app.account.user.as_str());
    }
    assert_eq!(hooks.log.all().len(), 2);
}

on_both_backends!(with one_attempt; webhook_outcomes_arrive_with_the_delivery_as_emulator_renders_it);

for_each_backend!(push_outcomes_arrive_with_the_push_as_emulator_pushes_renders_it);

on_both_backends!(
    each_event_arrives_with_its_sids_and_resource,
    filters_pick_the_events_and_other_accounts_never_show,
    bad_filters_and_bad_credentials_are_refused,
    events_arrive_in_order_per_factor,
);

/// Two servers on one PostgreSQL schema: a change made through one arrives on a stream opened on
/// the other (NOTIFY reaches every listening instance).
#[tokio::test]
async fn an_event_from_one_instance_arrives_on_another() {
    let a = crate::helpers::spawn_app(crate::helpers::Postgres).await;
    let b = crate::helpers::spawn_app_on(crate::helpers::Postgres, &a.database_url).await;
    let mut on_b = Events::open(&b, "?Type=challenge.created").await;
    let service = a.service().await;
    let user = identity();
    let (factor, _) = a.verified_factor(&service, &user).await;
    let challenge = a.challenge(&service, &user, &factor).await;
    let m = on_b.expect("challenge.created").await;
    assert_eq!(m.data["challenge_sid"], challenge["sid"]);
    assert_eq!(m.data["resource"]["url"].as_str().unwrap().replace(&b.url, &a.url), challenge["url"].as_str().unwrap());
}

/// Challenges made by the slow-client test (two events each): with 20 detail fields each
/// `challenge.created` is ~5 KB, so these outgrow the hub (`HUB_CAPACITY`, 1024 events) plus
/// what the socket buffers hold (the server's send buffer grows to a few MB on loopback: the slow
/// stream took ~850 events before it stopped being polled, and lost ~930).
const FLOOD: usize = 1400;

/// A client that stops reading is dropped (`event: overflow`, then the end of the response)
/// while another client on the same server receives every event, and the server stays healthy.
#[tokio::test]
async fn a_slow_client_is_dropped_while_others_receive_every_event() {
    use base64::Engine;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = crate::helpers::spawn_app(crate::helpers::Sqlite).await;
    let service = app.service().await;
    let user = identity();
    let (factor, _) = app.verified_factor(&service, &user).await;

    // The slow client: a small receive buffer, reads the response head and the opening message,
    // then nothing until the flood is over.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut slow = socket.connect(app.url.trim_start_matches("http://").parse().unwrap()).await.unwrap();
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", app.account.user, app.account.password));
    let request = format!(
        "GET /_emulator/Events HTTP/1.1\r\nHost: test\r\nAuthorization: Basic {basic}\r\nConnection: close\r\n\r\n"
    );
    slow.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !String::from_utf8_lossy(&head).contains(": connected") {
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(DEADLINE, slow.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "the stream opens: {}", String::from_utf8_lossy(&head));
        head.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&head).starts_with("HTTP/1.1 200"));

    // The fast client reads as the events come.
    let mut fast = Events::open(&app, "").await;
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while got.len() < 2 * FLOOD + 2 {
            let m = fast.next().await.expect("the fast stream stays open");
            got.push((m.id.unwrap(), m.event));
        }
        got
    });

    let fields: Vec<String> = (0..20)
        .map(|n| {
            serde_json::json!({"label": format!("label {n:02} {}", "l".repeat(26)), "value": "v".repeat(128)})
                .to_string()
        })
        .collect();
    let path = format!("/v2/Services/{service}/Entities/{user}/Challenges");
    let message = "m".repeat(256);
    let mut form: Vec<(&str, &str)> = vec![("FactorSid", &factor), ("Details.Message", &message)];
    form.extend(fields.iter().map(|f| ("Details.Fields", f.as_str())));
    for _ in 0..FLOOD {
        app.post(&path, &form).await.assert_status(201);
    }

    // Now the slow client reads: what was buffered, then `event: overflow`, then the end.
    let mut rest = Vec::new();
    tokio::time::timeout(DEADLINE, slow.read_to_end(&mut rest)).await.expect("the slow stream ends").unwrap();
    let rest = String::from_utf8_lossy(&rest);
    let overflow = rest.find("event: overflow\ndata: ").expect("the slow client is told it fell behind");
    assert!(rest[overflow..].contains(r#""buffer":1024"#), "{}", &rest[overflow..]);
    assert!(!rest[overflow..].contains("event: challenge"), "nothing after the overflow");
    assert!(rest.ends_with("0\r\n\r\n"), "the response ends: {}", &rest[rest.len().saturating_sub(200)..]);

    // The server is healthy and the fast client, which got every event, still gets new ones.
    let health = reqwest::get(format!("{}/healthz", app.url)).await.unwrap();
    assert_eq!(health.status(), 200);
    app.challenge(&service, &user, &factor).await;
    let got = tokio::time::timeout(DEADLINE, reader).await.expect("every event in time").unwrap();
    let first = got[0].0;
    for (n, (id, event)) in got.iter().enumerate() {
        assert_eq!(*id, first + n as u64, "no event missed");
        assert_eq!(event, if n % 2 == 0 { "challenge.created" } else { "push.recorded" });
    }
}
