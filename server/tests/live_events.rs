//! Live events across processes: two server processes on one PostgreSQL schema; a stream opened
//! on one receives, within a deadline, the event of a change made through the other (each
//! instance LISTENs; docs/ARCHITECTURE.md, "Live events").
#![expect(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly by design")]

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use support::{call, free_port, verified_factor, Backend, Database, Server, ACCOUNT, TOKEN};

/// How long the event may take (generous: two cores shared by parallel builds).
const DEADLINE: Duration = Duration::from_secs(10);

/// Reads `response` until an SSE message of type `event` arrives; returns its data.
async fn next_event(response: &mut reqwest::Response, buffer: &mut String, event: &str) -> Value {
    loop {
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            if block.lines().any(|l| l == format!("event: {event}")) {
                let data = block.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
                return serde_json::from_str(data).unwrap();
            }
        }
        let chunk = response.chunk().await.unwrap().expect("the stream stays open");
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

#[tokio::test]
async fn live_events_reach_a_stream_on_another_process() {
    let db = Database::fresh(Backend::Postgres, "live_events").await;
    let a = Server::start(&db.url, free_port(), &[]).await;
    let b = Server::start(&db.url, free_port(), &[]).await;
    let http = reqwest::Client::new();
    let mut on_b = http
        .get(format!("{}/_emulator/Events?Type=challenge.created", b.url))
        .basic_auth(ACCOUNT, Some(TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(on_b.status(), 200);

    let (service, _) = call(&http, Method::POST, &format!("{}/v2/Services", a.url), &[("FriendlyName", "x")]).await;
    let entity = format!("{}/v2/Services/{}/Entities/user-live-events", a.url, service["sid"].as_str().unwrap());
    let (factor, _) = verified_factor(&http, &entity, &entity, 7, "fcm", Some(&"e".repeat(64))).await;
    let (challenge, _) = call(
        &http,
        Method::POST,
        &format!("{entity}/Challenges"),
        &[("FactorSid", &factor), ("Details.Message", "hi")],
    )
    .await;

    let mut buffer = String::new();
    let data = tokio::time::timeout(DEADLINE, next_event(&mut on_b, &mut buffer, "challenge.created"))
        .await
        .expect("the event of a change made through A arrives on B in time");
    assert_eq!(data["challenge_sid"], challenge["sid"]);
    assert_eq!(data["factor_sid"], factor.as_str());
    assert_eq!(data["resource"]["sid"], challenge["sid"]);
    assert_eq!(data["resource"]["status"], "pending");
}
