//! Webhooks are at-least-once across a crash: with the receiver down, 1,000 challenge approvals,
//! then `kill -9` and a restart, then the receiver up — all 1,000 `challenge.approved` events
//! arrive.
#![expect(clippy::unwrap_used, reason = "tests fail loudly by design")]

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use p256::ecdsa::SigningKey;
use support::{approve, call, fakes, free_port, on_both_backends, verified_factor, Backend, Database, Server};

const APPROVALS: usize = 1000;
const FACTORS: usize = 10;

async fn start(db: &str, port: u16) -> Server {
    let env = [
        ("VERIFY_PUSH_WEBHOOK_POLL_MS", "50"),
        ("VERIFY_PUSH_WEBHOOK_TIMEOUT", "1"),
        ("VERIFY_PUSH_WEBHOOK_MAX_BACKOFF", "1"),
        ("VERIFY_PUSH_WEBHOOK_MAX_ATTEMPTS", "100000"),
    ];
    Server::start(db, port, &env).await
}

/// Creates a challenge for `factor` and approves it with the factor's key; returns its SID.
async fn create_and_approve(http: &reqwest::Client, entity: &str, factor: &str, key: &SigningKey) -> String {
    let (created, _) = call(
        http,
        reqwest::Method::POST,
        &format!("{entity}/Challenges"),
        &[("FactorSid", factor), ("Details.Message", "crash")],
    )
    .await;
    let sid = created["sid"].as_str().unwrap().to_owned();
    approve(http, &format!("{entity}/Challenges/{sid}"), key).await;
    sid
}

on_both_backends!(every_approval_is_delivered_across_a_kill_9_while_the_receiver_was_down);

async fn every_approval_is_delivered_across_a_kill_9_while_the_receiver_was_down(backend: Backend) {
    let database = Database::fresh(backend, "webhook_crash").await;
    let db = database.url.as_str();
    let (port, receiver_port) = (free_port(), free_port());
    let mut server = start(db, port).await;
    let http = reqwest::Client::new();
    let base = server.url.clone();

    let (service, _) =
        call(&http, reqwest::Method::POST, &format!("{base}/v2/Services"), &[("FriendlyName", "Crash")]).await;
    let service = service["sid"].as_str().unwrap().to_owned();
    let hook = format!("http://127.0.0.1:{receiver_port}/hook");
    call(
        &http,
        reqwest::Method::POST,
        &format!("{base}/v2/Services/{service}/Webhooks"),
        &[("FriendlyName", "h"), ("EventTypes", "challenge.approved"), ("WebhookUrl", &hook)],
    )
    .await;

    let entity = format!("{base}/v2/Services/{service}/Entities/user-webhook-crash");
    let mut factors = Vec::new();
    for i in 0..FACTORS {
        let seed = u8::try_from(i).unwrap() + 20;
        factors.push(verified_factor(&http, &entity, &entity, seed, "none", None).await);
    }

    let mut approved = HashSet::new();
    for chunk in (0..APPROVALS).collect::<Vec<_>>().chunks(20) {
        let batch = chunk.iter().map(|i| {
            let (factor, key) = &factors[i % FACTORS];
            create_and_approve(&http, &entity, factor, key)
        });
        approved.extend(join_all(batch).await);
    }
    assert_eq!(approved.len(), APPROVALS);
    server.kill(); // SIGKILL, with deliveries queued and some mid-attempt.

    let answers: fakes::Responder = Arc::new(|_| (200, "{}".to_owned()));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", receiver_port)).await.unwrap();
    let receiver = fakes::Fake::start(listener, None, answers).await;
    let _server = start(db, port).await;
    let mut delivered = HashSet::new();
    for _ in 0..2400 {
        delivered = receiver
            .log
            .all()
            .iter()
            .filter_map(|r| r.body.split('&').find_map(|p| p.strip_prefix("challenge_sid=")).map(str::to_owned))
            .collect();
        if delivered.len() >= APPROVALS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(delivered, approved, "every approval's event arrived");
}
