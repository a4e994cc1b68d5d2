//! Webhook delivery: every callback of a full device run, in order, validated by twilio-python's
//! RequestValidator and twilio-node's validateRequest; retries with one uuid; disabled and
//! deleted webhooks; redirects not followed.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use serde_json::{json, Value};
use tokio::net::TcpListener;
use verify_push_client::device::Connection;
use verify_push_client::{Device, Profile, Style};
use verify_push_server::clock::Clock;

use crate::fakes::{script, Fake, Recorded, Responder};
use crate::helpers::{identity, on_both_backends, TestApp};

on_both_backends!(
    a_device_run_sends_every_event_in_order_signed_for_twilios_validators,
    a_failing_receiver_gets_the_same_event_until_it_answers_2xx,
    disabled_and_deleted_webhooks_get_nothing_new,
    redirects_are_not_followed,
);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

fn form(body: &str) -> HashMap<String, String> {
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let decode = |s: &str| {
                let s = s.replace('+', " ");
                let bytes = s.as_bytes();
                let mut out = Vec::new();
                let mut i = 0;
                while i < bytes.len() {
                    if bytes[i] == b'%' {
                        out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                        i += 3;
                    } else {
                        out.push(bytes[i]);
                        i += 1;
                    }
                }
                String::from_utf8(out).unwrap()
            };
            (decode(k), decode(v))
        })
        .collect()
}

pub(crate) async fn receiver(responder: Responder) -> Fake {
    Fake::start(TcpListener::bind("127.0.0.1:0").await.unwrap(), None, responder).await
}

pub(crate) async fn webhook(app: &TestApp, service: &str, url: &str, events: &[&str], version: &str) -> String {
    let mut f: Vec<(&str, &str)> = vec![("FriendlyName", "hook"), ("WebhookUrl", url), ("Version", version)];
    f.extend(events.iter().map(|e| ("EventTypes", *e)));
    app.post(&format!("/v2/Services/{service}/Webhooks"), &f).await.assert_status(201)["sid"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Runs the deliveries due at the clock's time ([`TestApp::drain`]); returns what `fake` got.
async fn received_once_drained(app: &TestApp, fake: &Fake) -> Vec<Recorded> {
    app.drain().await;
    fake.log.all()
}

/// The first delivery of webhook `hook` in `/_emulator/webhook-deliveries`.
pub(crate) async fn delivery_of(app: &TestApp, hook: &str) -> Value {
    app.get(&format!("/_emulator/webhook-deliveries?WebhookSid={hook}")).await.body["webhook_deliveries"][0].clone()
}

/// Runs one of the validator scripts over `requests`; returns one verdict per request.
fn validate(program: &str, script: &str, token: &str, url: &str, requests: &[Recorded]) -> Vec<bool> {
    let input = json!({"auth_token": token, "requests": requests.iter().map(|r| json!({
        "url": url, "params": form(&r.body), "signature": r.header("x-twilio-signature").unwrap_or(""),
    })).collect::<Vec<_>>()});
    let mut child = Command::new(program)
        .arg(root().join(script))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e} (run scripts/setup-helper-libs.sh)"));
    child.stdin.take().unwrap().write_all(input.to_string().as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{script}: {}", String::from_utf8_lossy(&output.stdout));
    serde_json::from_slice(&output.stdout).unwrap()
}

async fn a_device_run_sends_every_event_in_order_signed_for_twilios_validators(app: TestApp) {
    let hooks = receiver(Arc::new(|_| (200, "{}".into()))).await;
    let legacy = receiver(Arc::new(|_| (200, "{}".into()))).await;
    let off = receiver(Arc::new(|_| (200, "{}".into()))).await;
    let url = format!("{}/hooks/verify?tenant=owl", hooks.url(false));
    let service = app.service().await;
    webhook(&app, &service, &url, &["*"], "v2").await;
    webhook(&app, &service, &format!("{}/v1", legacy.url(false)), &["challenge.approved", "challenge.denied"], "v1")
        .await;
    let disabled = webhook(&app, &service, &off.url(false), &["*"], "v2").await;
    app.post(&format!("/v2/Services/{service}/Webhooks/{disabled}"), &[("Status", "disabled")])
        .await
        .assert_status(200);

    // enroll → verify → approve → deny → delete, through the device.
    let user = identity();
    let token =
        app.post(&format!("/v2/Services/{service}/AccessTokens"), &[("Identity", &user), ("FactorType", "push")]).await;
    let mut device =
        Device::new(Profile::new("hooks", &app.url, Style::Android, &service, &user), None, &Connection::default())
            .unwrap();
    let metadata = serde_json::Map::from_iter([("os".to_owned(), Value::from("Android"))]);
    let factor = device.enroll(token.body["token"].as_str().unwrap(), Some(&metadata)).await.unwrap();
    let approve = app
        .post(
            &format!("/v2/Services/{service}/Entities/{user}/Challenges"),
            &[
                ("FactorSid", &factor.sid),
                ("Details.Message", "Sign in?"),
                ("HiddenDetails", r#"{"ip":"203.0.113.7"}"#),
            ],
        )
        .await;
    let approve = approve.body["sid"].as_str().unwrap().to_owned();
    device.approve(&approve).await.unwrap();
    let deny = app.challenge(&service, &user, &factor.sid).await["sid"].as_str().unwrap().to_owned();
    device.deny(&deny).await.unwrap();
    device.unenroll().await.unwrap();

    let received = received_once_drained(&app, &hooks).await;
    let events: Vec<HashMap<String, String>> = received.iter().map(|r| form(&r.body)).collect();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str()).collect();
    assert_eq!(
        types,
        ["factor.created", "factor.verified", "challenge.approved", "challenge.denied", "factor.deleted"]
    );
    for (event, request) in events.iter().zip(&received) {
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/hooks/verify?tenant=owl");
        assert_eq!(request.header("content-type"), Some("application/x-www-form-urlencoded"));
        assert_eq!(request.header("i-twilio-idempotency-token"), Some(event["uuid"].as_str()));
        assert_eq!(event["account_sid"], app.account.user);
        assert_eq!(event["service_sid"], service);
        assert_eq!(event["entity_identity"], user);
        assert_eq!(event["factor_sid"], factor.sid);
        assert_eq!(event["factor_type"], "push");
        assert_eq!(event["factor_friendly_name"], factor.friendly_name);
        assert_eq!(serde_json::from_str::<Value>(&event["factor_metadata"]).unwrap(), json!({"os": "Android"}));
    }
    let uuids: std::collections::HashSet<&String> = events.iter().map(|e| &e["uuid"]).collect();
    assert_eq!(uuids.len(), 5, "one uuid per event");
    for uuid in uuids {
        let hex: String = uuid.split('-').collect();
        let groups: Vec<usize> = uuid.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "{uuid}");
        assert!(hex.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)), "{uuid}");
        assert!(&uuid[14..15] == "4" && "89ab".contains(&uuid[19..20]), "version 4, RFC 4122 variant: {uuid}");
    }
    assert_eq!(events[2]["challenge_sid"], approve);
    assert_eq!(
        serde_json::from_str::<Value>(&events[2]["challenge_details"]).unwrap(),
        json!({"message": "Sign in?", "fields": []})
    );
    assert_eq!(
        serde_json::from_str::<Value>(&events[2]["challenge_hidden_details"]).unwrap(),
        json!({"ip": "203.0.113.7"})
    );
    assert_eq!(events[3]["challenge_sid"], deny);
    assert!(!events[3].contains_key("challenge_hidden_details"), "absent values are omitted");

    let python = root().join("tests/helper-libs/python/.venv/bin/python");
    let verdicts = validate(
        python.to_str().unwrap(),
        "tests/helper-libs/python/validate_webhooks.py",
        &app.account.password,
        &url,
        &received,
    );
    assert_eq!(verdicts, vec![true; 5], "twilio-python's RequestValidator accepts every callback");
    let verdicts =
        validate("node", "tests/helper-libs/node/validate_webhooks.js", &app.account.password, &url, &received);
    assert_eq!(verdicts, vec![true; 5], "twilio-node's validateRequest accepts every callback");
    let forged = validate(
        python.to_str().unwrap(),
        "tests/helper-libs/python/validate_webhooks.py",
        "another-token",
        &url,
        &received,
    );
    assert_eq!(forged, vec![false; 5], "and only for the right auth token");

    let v1: Vec<HashMap<String, String>> = legacy.log.all().iter().map(|r| form(&r.body)).collect();
    assert_eq!(v1.iter().map(|e| e["type"].as_str()).collect::<Vec<_>>(), ["challenge.approved", "challenge.denied"]);
    assert!(v1.iter().all(|e| !e.contains_key("factor_metadata")), "v1 carries no v2-only fields");
    assert!(off.log.all().is_empty(), "a disabled webhook gets nothing");
}

async fn a_failing_receiver_gets_the_same_event_until_it_answers_2xx(app: TestApp) {
    let hooks = receiver(script(&[(500, "boom"), (500, "boom")], (200, "ok"))).await;
    let service = app.service().await;
    let hook = webhook(&app, &service, &hooks.url(false), &["factor.created"], "v2").await;
    app.unverified_factor(&service, &identity()).await;
    for expected in 1..=3 {
        let got = received_once_drained(&app, &hooks).await;
        assert_eq!(got.len(), expected);
        app.clock.advance(60);
    }
    let uuids: Vec<String> = hooks.log.all().iter().map(|r| form(&r.body)["uuid"].clone()).collect();
    assert_eq!(uuids.len(), 3);
    assert!(uuids.iter().all(|u| u == &uuids[0]), "one uuid across retries: {uuids:?}");
    let delivery = &delivery_of(&app, &hook).await;
    assert_eq!(delivery["outcome"], "delivered");
    assert_eq!(delivery["uuid"], uuids[0].as_str());
    let statuses: Vec<&Value> = delivery["attempts"].as_array().unwrap().iter().map(|a| &a["http_status"]).collect();
    assert_eq!(statuses, vec![&json!(500), &json!(500), &json!(200)]);
    assert!(delivery["attempts"][0]["error"].as_str().unwrap().contains("500"));
    let filtered = app.get("/_emulator/webhook-deliveries?EventType=factor.verified").await;
    assert_eq!(filtered.body["webhook_deliveries"], json!([]));
    assert_eq!(app.delete("/_emulator/webhook-deliveries").await.status, 204);
    assert_eq!(app.get("/_emulator/webhook-deliveries").await.body["webhook_deliveries"], json!([]));
}

async fn disabled_and_deleted_webhooks_get_nothing_new(app: TestApp) {
    let hooks = receiver(Arc::new(|_| (503, "down".into()))).await;
    let service = app.service().await;
    let hook = webhook(&app, &service, &hooks.url(false), &["*"], "v2").await;
    app.unverified_factor(&service, &identity()).await;
    assert_eq!(received_once_drained(&app, &hooks).await.len(), 1);
    app.post(&format!("/v2/Services/{service}/Webhooks/{hook}"), &[("Status", "disabled")]).await.assert_status(200);
    app.clock.advance(60);
    assert_eq!(app.drain().await.deliveries, 1, "the retry is claimed, and cancelled");
    assert_eq!(delivery_of(&app, &hook).await["outcome"], "cancelled");
    app.unverified_factor(&service, &identity()).await;
    let other = webhook(&app, &service, &hooks.url(false), &["*"], "v2").await;
    assert_eq!(app.delete(&format!("/v2/Services/{service}/Webhooks/{other}")).await.status, 204);
    app.unverified_factor(&service, &identity()).await;
    app.clock.advance(600);
    assert_eq!(app.drain().await.deliveries, 0, "no delivery for a disabled or deleted webhook");
    assert_eq!(hooks.log.all().len(), 1, "nothing after the webhook was disabled or deleted");
}

async fn redirects_are_not_followed(app: TestApp) {
    let target = receiver(Arc::new(|_| (200, "{}".into()))).await;
    let location = format!("{}/elsewhere", target.url(false));
    let hooks = receiver(Arc::new(move |_| (302, location.clone()))).await;
    let service = app.service().await;
    let hook = webhook(&app, &service, &hooks.url(false), &["factor.created"], "v2").await;
    app.unverified_factor(&service, &identity()).await;
    assert_eq!(received_once_drained(&app, &hooks).await.len(), 1);
    let delivery = delivery_of(&app, &hook).await;
    assert_eq!(delivery["attempts"][0]["http_status"], 302);
    assert_eq!(delivery["outcome"], "retrying");
    assert!(target.log.all().is_empty(), "the redirect was not followed");
    let _ = app.clock.now();
}
