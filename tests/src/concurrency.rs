//! Races (issue 10): requests fired truly at once must leave the state a serial order would, with
//! exact counts of successes, Twilio errors, stored rows and webhook events — never a 5xx. And
//! Twilio's rate limits (60326, 60328), which hold under concurrency and across instances.

use std::collections::BTreeMap;
use std::future::Future;

use futures_util::future::join_all;
use reqwest::Method;
use serde_json::Value;
use verify_push_client::{jwt, Style};
use verify_push_server::clock::Clock;
use verify_push_server::config::{RateLimits, ServeArgs};

use crate::helpers::{
    device_key, factor_form, identity, on_both_backends, spawn_app_on, spawn_app_with, spki_base64,
    verification_payload, Postgres, Reply, TestApp,
};

on_both_backends!(
    with overlapping;
    notifications_stop_at_three_per_challenge,
    an_entity_gets_at_most_twenty_push_factors,
    one_public_key_makes_one_factor,
    a_factor_is_verified_once_with_one_event,
    challenges_racing_their_factors_delete_are_created_or_not_found,
    approve_and_deny_race_and_exactly_one_wins,
    an_answer_racing_its_factors_delete_never_fails,
    one_identity_makes_one_entity,
    entity_creations_are_limited_per_account_per_second,
    factor_creations_are_limited_per_entity_per_day,
    simultaneous_updates_of_a_service_and_a_webhook_all_land,
);
on_both_backends!(with unlimited; rate_limits_off_lets_bursts_through);

/// Several HTTP workers and database connections, so that requests really overlap.
fn overlapping(args: &mut ServeArgs) {
    args.workers = Some(4);
    args.database.database_max_connections = 8;
}

fn unlimited(args: &mut ServeArgs) {
    overlapping(args);
    args.rate_limits = RateLimits::Off;
}

/// Opens `n` connections to the server, so that a race's requests need not queue for them.
async fn warm_up(app: &TestApp, n: usize) {
    for reply in join_all((0..n).map(|_| app.get("/healthz"))).await {
        reply.assert_status(200);
    }
}

/// Runs the requests at once (on connections opened beforehand); returns the replies in order.
async fn at_once<F: Future<Output = Reply>>(app: &TestApp, requests: impl IntoIterator<Item = F>) -> Vec<Reply> {
    let requests: Vec<F> = requests.into_iter().collect();
    warm_up(app, requests.len()).await;
    join_all(requests).await
}

/// `app.post` owning its arguments, so that many can be built in a loop and run at once.
async fn post(app: &TestApp, path: String, form: Vec<(&str, String)>) -> Reply {
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    app.post(&path, &form).await
}

async fn delete(app: &TestApp, path: String) -> Reply {
    app.delete(&path).await
}

/// How many replies had each (status, Twilio code): `[(201, None), (429, Some(60309))]`.
fn tally(replies: &[Reply]) -> BTreeMap<(u16, Option<u64>), usize> {
    let mut counts = BTreeMap::new();
    for reply in replies {
        *counts.entry((reply.status.as_u16(), reply.body["code"].as_u64())).or_default() += 1;
    }
    counts
}

fn counts(expected: &[((u16, Option<u64>), usize)]) -> BTreeMap<(u16, Option<u64>), usize> {
    expected.iter().copied().filter(|(_, n)| *n > 0).collect()
}

/// A webhook on `service` subscribed to every event (its deliveries are what we count).
async fn webhook(app: &TestApp, service: &str) {
    app.expect_leftovers("the deliveries of a webhook at a closed port are counted here, never sent");
    let form = [("FriendlyName", "all"), ("EventTypes", "*"), ("WebhookUrl", "http://127.0.0.1:9/hook")];
    app.post(&format!("/v2/Services/{service}/Webhooks"), &form).await.assert_status(201);
}

/// The webhook deliveries recorded for `event_type`.
async fn events(app: &TestApp, event_type: &str) -> Vec<Value> {
    let reply = app.get(&format!("/_emulator/webhook-deliveries?EventType={event_type}&PageSize=1000")).await;
    reply.assert_status(200)["webhook_deliveries"].as_array().unwrap().clone()
}

/// The length of the list at `path` (`key` names it in the body).
async fn listed(app: &TestApp, path: &str, key: &str) -> usize {
    let sep = if path.contains('?') { '&' } else { '?' };
    let reply = app.get(&format!("{path}{sep}PageSize=1000")).await;
    reply.assert_status(200)[key].as_array().unwrap().len()
}

/// Creates a push Factor with a fresh key for `identity`.
async fn create_factor(app: &TestApp, service: &str, identity: &str) -> Reply {
    let public = spki_base64(&device_key());
    app.post(&format!("/v2/Services/{service}/Entities/{identity}/Factors"), &factor_form(&public, "none", "")).await
}

async fn notifications_stop_at_three_per_challenge(app: TestApp) {
    let service = app.service().await;
    let user = identity();
    let (factor, _) = app.verified_factor(&service, &user).await;
    let challenge = app.challenge(&service, &user, &factor).await["sid"].as_str().unwrap().to_owned();
    let path = format!("/v2/Services/{service}/Entities/{user}/Challenges/{challenge}/Notifications");
    let replies = at_once(&app, (0..20).map(|_| app.post(&path, &[("Ttl", "60")]))).await;
    assert_eq!(tally(&replies), counts(&[((201, None), 3), ((429, Some(60309)), 17)]));
    // The push sent at creation and one per Notification.
    let pushes = listed(&app, &format!("/_emulator/pushes?ChallengeSid={challenge}"), "pushes").await;
    assert_eq!(pushes, 4);
}

async fn an_entity_gets_at_most_twenty_push_factors(app: TestApp) {
    let service = app.service().await;
    let user = identity();
    let replies = at_once(&app, (0..30).map(|_| create_factor(&app, &service, &user))).await;
    assert_eq!(tally(&replies), counts(&[((201, None), 20), ((400, Some(60315)), 10)]));
    let stored = listed(&app, &format!("/v2/Services/{service}/Entities/{user}/Factors"), "factors").await;
    assert_eq!(stored, 20);
    assert_eq!(listed(&app, &format!("/v2/Services/{service}/Entities"), "entities").await, 1);
}

async fn one_public_key_makes_one_factor(app: TestApp) {
    let service = app.service().await;
    let user = identity();
    app.post(&format!("/v2/Services/{service}/Entities"), &[("Identity", &user)]).await.assert_status(201);
    let public = spki_base64(&device_key());
    let form = factor_form(&public, "none", "");
    let path = format!("/v2/Services/{service}/Entities/{user}/Factors");
    let replies = at_once(&app, (0..10).map(|_| app.post(&path, &form))).await;
    assert_eq!(tally(&replies), counts(&[((201, None), 1), ((409, Some(60317)), 9)]));
    assert_eq!(listed(&app, &path, "factors").await, 1);
}

async fn a_factor_is_verified_once_with_one_event(app: TestApp) {
    let service = app.service().await;
    webhook(&app, &service).await;
    let user = identity();
    let (factor, key) = app.unverified_factor(&service, &user).await;
    let payload = verification_payload(&key, &factor);
    let path = format!("/v2/Services/{service}/Entities/{user}/Factors/{factor}");
    let replies =
        at_once(&app, (0..20).map(|_| post(&app, path.clone(), vec![("AuthPayload", payload.clone())]))).await;
    assert_eq!(tally(&replies), counts(&[((200, None), 20)]));
    assert!(replies.iter().all(|r| r.body["status"] == "verified"));
    assert_eq!(events(&app, "factor.verified").await.len(), 1, "one transition, one event");
    assert_eq!(app.get(&path).await.assert_status(200)["status"], "verified");
}

async fn challenges_racing_their_factors_delete_are_created_or_not_found(app: TestApp) {
    let service = app.service().await;
    let user = identity();
    let challenges = format!("/v2/Services/{service}/Entities/{user}/Challenges");
    let (mut created, mut not_found) = (0, 0);
    for _ in 0..5 {
        let (factor, _) = app.verified_factor(&service, &user).await;
        let form = [("FactorSid", factor.as_str()), ("Details.Message", "Login request")];
        warm_up(&app, 31).await;
        let creations = join_all((0..30).map(|_| app.post(&challenges, &form)));
        let delete = delete(&app, format!("/v2/Services/{service}/Entities/{user}/Factors/{factor}"));
        let (replies, deleted) = tokio::join!(creations, delete);
        deleted.assert_status(204);
        let counted = tally(&replies);
        let n201 = counted.get(&(201, None)).copied().unwrap_or(0);
        let n404 = counted.get(&(404, Some(20404))).copied().unwrap_or(0);
        assert_eq!(n201 + n404, 30, "only 201 or 404/20404: {counted:?}");
        created += n201;
        not_found += n404;
    }
    assert_eq!(created + not_found, 150);
    // The deletes took every Challenge of their Factors with them.
    assert_eq!(listed(&app, &challenges, "challenges").await, 0);
}

/// A Factor's key, its pending Challenge, and that Challenge as the device signs it.
struct Pending {
    path: String,
    fields: Vec<String>,
    json: serde_json::Map<String, Value>,
}

async fn pending_challenge(app: &TestApp, service: &str, user: &str, factor: &str) -> Pending {
    let sid = app.challenge(service, user, factor).await["sid"].as_str().unwrap().to_owned();
    let path = format!("/v2/Services/{service}/Entities/{user}/Challenges/{sid}");
    let fetched = app.get(&path).await;
    let fields = fetched.headers["Twilio-Verify-Signature-Fields"].to_str().unwrap();
    let fields = fields.split(',').map(str::to_owned).collect();
    let json = fetched.assert_status(200).as_object().unwrap().clone();
    Pending { path, fields, json }
}

async fn approve_and_deny_race_and_exactly_one_wins(app: TestApp) {
    let service = app.service().await;
    webhook(&app, &service).await;
    let user = identity();
    let (factor, key) = app.verified_factor(&service, &user).await;
    let c = pending_challenge(&app, &service, &user, &factor).await;
    let answer = |status| jwt::challenge_answer(&key, Style::Android, &c.fields, &c.json, status).unwrap();
    let (approve, deny) = (answer("approved"), answer("denied"));
    let answers = (0..20).map(|i| if i % 2 == 0 { &approve } else { &deny });
    let replies = at_once(&app, answers.map(|a| post(&app, c.path.clone(), vec![("AuthPayload", a.clone())]))).await;
    assert_eq!(tally(&replies), counts(&[((200, None), 1), ((403, Some(60322)), 19)]));
    let winner = replies.iter().find(|r| r.status == 200).unwrap().body["status"].clone();
    assert_eq!(app.get(&c.path).await.assert_status(200)["status"], winner);
    let approved = events(&app, "challenge.approved").await.len();
    let denied = events(&app, "challenge.denied").await.len();
    assert_eq!((approved, denied), if winner == "approved" { (1, 0) } else { (0, 1) });
}

async fn an_answer_racing_its_factors_delete_never_fails(app: TestApp) {
    let service = app.service().await;
    webhook(&app, &service).await;
    let user = identity();
    let mut approvals = 0;
    for round in 0..10 {
        let (factor, key) = app.verified_factor(&service, &user).await;
        let c = pending_challenge(&app, &service, &user, &factor).await;
        let approve = jwt::challenge_answer(&key, Style::Ios, &c.fields, &c.json, "approved").unwrap();
        let factor_path = format!("/v2/Services/{service}/Entities/{user}/Factors/{factor}");
        warm_up(&app, 11).await;
        let answers = join_all((0..10).map(|_| post(&app, c.path.clone(), vec![("AuthPayload", approve.clone())])));
        let (answered, deleted) = tokio::join!(answers, app.delete(&factor_path));
        deleted.assert_status(204);
        let counted = tally(&answered);
        let approved = counted.get(&(200, None)).copied().unwrap_or(0);
        let refused = counted.get(&(403, Some(60322))).copied().unwrap_or(0);
        let gone = counted.get(&(404, Some(20404))).copied().unwrap_or(0);
        assert!(approved <= 1 && approved + refused + gone == 10, "{counted:?}");
        approvals += approved;
        // Consistent: the Factor and its Challenge are gone, whichever came first.
        app.get(&factor_path).await.assert_error(404, 20404);
        app.get(&c.path).await.assert_error(404, 20404);
        assert_eq!(events(&app, "factor.deleted").await.len(), round + 1);
        assert_eq!(events(&app, "challenge.approved").await.len(), approvals, "an event per approval only");
    }
}

async fn one_identity_makes_one_entity(app: TestApp) {
    let service = app.service().await;
    let path = format!("/v2/Services/{service}/Entities");
    let user = identity();
    let replies = at_once(&app, (0..10).map(|_| post(&app, path.clone(), vec![("Identity", user.clone())]))).await;
    assert_eq!(tally(&replies), counts(&[((201, None), 1), ((409, Some(60301)), 9)]));
    assert_eq!(listed(&app, &path, "entities").await, 1);
}

/// Updates at once, each of another field, and every one lands (none overwrites another with
/// the row it read).
async fn simultaneous_updates_of_a_service_and_a_webhook_all_land(app: TestApp) {
    for round in 0..5_u8 {
        let service = app.service().await;
        let path = format!("/v2/Services/{service}");
        let name = format!("Renamed {round}");
        let issuer = format!("Issuer {round}");
        let updates: [(&str, &str); 6] = [
            ("FriendlyName", &name),
            ("Push.IncludeDate", "true"),
            ("Totp.Issuer", &issuer),
            ("Totp.TimeStep", "45"),
            ("Totp.CodeLength", "8"),
            ("Totp.Skew", "2"),
        ];
        let replies =
            at_once(&app, updates.iter().map(|(k, v)| post(&app, path.clone(), vec![(*k, (*v).to_owned())]))).await;
        assert_eq!(tally(&replies), counts(&[((200, None), 6)]));
        let body = app.get(&path).await.assert_status(200).clone();
        assert_eq!(body["friendly_name"], name.as_str());
        assert_eq!(body["push"]["include_date"], true);
        assert_eq!(body["totp"], serde_json::json!({"issuer": issuer, "time_step": 45, "code_length": 8, "skew": 2}));

        let hook = format!("/v2/Services/{service}/Webhooks");
        let form = [("FriendlyName", "h"), ("EventTypes", "*"), ("WebhookUrl", "http://127.0.0.1:9/a")];
        let sid = app.post(&hook, &form).await.assert_status(201)["sid"].as_str().unwrap().to_owned();
        let path = format!("{hook}/{sid}");
        let updates: [(&str, &str); 5] = [
            ("FriendlyName", &name),
            ("EventTypes", "factor.verified"),
            ("WebhookUrl", "http://127.0.0.1:9/b"),
            ("Status", "disabled"),
            ("Version", "v1"),
        ];
        let replies =
            at_once(&app, updates.iter().map(|(k, v)| post(&app, path.clone(), vec![(*k, (*v).to_owned())]))).await;
        assert_eq!(tally(&replies), counts(&[((200, None), 5)]));
        let body = app.get(&path).await.assert_status(200).clone();
        assert_eq!(body["friendly_name"], name.as_str());
        assert_eq!(body["event_types"], serde_json::json!(["factor.verified"]));
        assert_eq!(body["webhook_url"], "http://127.0.0.1:9/b");
        assert_eq!(body["status"], "disabled");
        assert_eq!(body["version"], "v1");
    }
}

async fn entity_creations_are_limited_per_account_per_second(app: TestApp) {
    let (first, second) = (app.service().await, app.service().await);
    let create = |service: &str| post(&app, format!("/v2/Services/{service}/Entities"), vec![("Identity", identity())]);
    // One account's limit, across its Services.
    let replies = at_once(&app, (0..50).map(|i| create(if i % 2 == 0 { &first } else { &second }))).await;
    let message = replies.iter().find(|r| r.status == 429).unwrap().assert_error(429, 60328);
    assert_eq!(message, "Entities rate limit exceeded");
    assert_eq!(tally(&replies), counts(&[((201, None), 40), ((429, Some(60328)), 10)]));
    let stored = listed(&app, &format!("/v2/Services/{first}/Entities"), "entities").await
        + listed(&app, &format!("/v2/Services/{second}/Entities"), "entities").await;
    assert_eq!(stored, 40);
    // A Factor for a new identity creates an Entity: refused within the same second; a Factor
    // of an existing Entity creates none, so it is not.
    let refused = identity();
    create_factor(&app, &first, &refused).await.assert_error(429, 60328);
    app.get(&format!("/v2/Services/{first}/Entities/{refused}")).await.assert_error(404, 20404);
    let existing = app.get(&format!("/v2/Services/{first}/Entities?PageSize=1")).await.body["entities"][0]["identity"]
        .as_str()
        .unwrap()
        .to_owned();
    create_factor(&app, &first, &existing).await.assert_status(201);
    // Another account has its own budget.
    let other = app.send(Method::POST, "/v2/Services", Some(&app.other_account), &[("FriendlyName", "o")], &[], None);
    let other = other.await.assert_status(201)["sid"].as_str().unwrap().to_owned();
    let user = identity();
    let path = format!("/v2/Services/{other}/Entities");
    let form = [("Identity", user.as_str())];
    app.send(Method::POST, &path, Some(&app.other_account), &form, &[], None).await.assert_status(201);
    // The next second starts afresh.
    app.clock.advance(1);
    create(&first).await.assert_status(201);
    create_factor(&app, &second, &identity()).await.assert_status(201);
}

async fn factor_creations_are_limited_per_entity_per_day(app: TestApp) {
    let service = app.service().await;
    let user = identity();
    let factors = format!("/v2/Services/{service}/Entities/{user}/Factors");
    for _ in 0..95 {
        let sid = create_factor(&app, &service, &user).await.assert_status(201)["sid"].as_str().unwrap().to_owned();
        app.delete(&format!("{factors}/{sid}")).await.assert_status(204);
    }
    let replies = at_once(&app, (0..10).map(|_| create_factor(&app, &service, &user))).await;
    let message = replies.iter().find(|r| r.status == 429).unwrap().assert_error(429, 60326);
    assert_eq!(message, "Too many requests to create factors for the entity");
    assert_eq!(tally(&replies), counts(&[((201, None), 5), ((429, Some(60326)), 5)]));
    assert_eq!(listed(&app, &factors, "factors").await, 5);
    // Another Entity has its own budget; this one's returns the next day.
    create_factor(&app, &service, &identity()).await.assert_status(201);
    app.clock.advance(86_400);
    create_factor(&app, &service, &user).await.assert_status(201);
}

async fn rate_limits_off_lets_bursts_through(app: TestApp) {
    let service = app.service().await;
    let path = format!("/v2/Services/{service}/Entities");
    let replies = at_once(&app, (0..50).map(|_| post(&app, path.clone(), vec![("Identity", identity())]))).await;
    assert_eq!(tally(&replies), counts(&[((201, None), 50)]));
    let user = identity();
    let factors = format!("{path}/{user}/Factors");
    for _ in 0..101 {
        let sid = create_factor(&app, &service, &user).await.assert_status(201)["sid"].as_str().unwrap().to_owned();
        app.delete(&format!("{factors}/{sid}")).await.assert_status(204);
    }
}

/// Two instances on one PostgreSQL database share one account budget.
#[tokio::test]
async fn entity_rate_limit_holds_across_instances() {
    let one = spawn_app_with(Postgres, overlapping).await;
    let two = spawn_app_on(Postgres, &one.database_url).await;
    two.clock.set(one.clock.now());
    let service = one.service().await;
    let path = format!("/v2/Services/{service}/Entities");
    warm_up(&two, 30).await;
    let instances = (0..60).map(|i| if i % 2 == 0 { &one } else { &two });
    let replies = at_once(&one, instances.map(|app| post(app, path.clone(), vec![("Identity", identity())]))).await;
    assert_eq!(tally(&replies), counts(&[((201, None), 40), ((429, Some(60328)), 20)]));
    assert_eq!(listed(&one, &path, "entities").await, 40);
}

/// Holds a row lock on PostgreSQL: `change` runs in a transaction left open until `release`.
struct Held {
    conn: sqlx::PgConnection,
    pid: i32,
}

impl Held {
    async fn change(app: &TestApp, sql: &str, sid: &str) -> Held {
        use sqlx::Connection as _;
        let mut conn = sqlx::PgConnection::connect(&app.database_url).await.unwrap();
        let pid = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut conn).await.unwrap();
        sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
        let changed = sqlx::query(sql).bind(sid).execute(&mut conn).await.unwrap();
        assert_eq!(changed.rows_affected(), 1);
        Held { conn, pid }
    }

    /// Waits (bounded) until another session waits for this one's lock.
    async fn until_blocking(&mut self, app: &TestApp) {
        use sqlx::Connection as _;
        let mut watcher = sqlx::PgConnection::connect(&app.database_url).await.unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let blocked: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))")
                    .bind(self.pid)
                    .fetch_one(&mut watcher)
                    .await
                    .unwrap();
            if blocked > 0 {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "nothing waited for the held row");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    async fn release(mut self) {
        sqlx::query("COMMIT").execute(&mut self.conn).await.unwrap();
    }
}

/// Sweeps at `now` while `held`'s change to a row the sweep wants is uncommitted: once it
/// commits, the sweep must find nothing to do, and `path` must read as `status`.
async fn sweep_while_held(app: &TestApp, mut held: Held, now: i64, path: &str, status: &str) {
    let store = app.store.clone();
    let sweep = tokio::spawn(async move { verify_push_server::workers::sweeper::sweep(&store, now, 86_400).await });
    held.until_blocking(app).await;
    held.release().await;
    assert_eq!(sweep.await.unwrap().unwrap(), (0, 0), "nothing to sweep once the change committed");
    assert_eq!(app.get(path).await.assert_status(200)["status"], status);
}

/// The sweeper reads a Challenge as pending and overdue while its answer is being committed: the
/// answer stands (PostgreSQL; SQLite's single writer never interleaves them).
#[tokio::test]
async fn the_sweeper_never_expires_an_answered_challenge() {
    let app = spawn_app_with(Postgres, overlapping).await;
    let service = app.service().await;
    let user = identity();
    let (factor, _) = app.verified_factor(&service, &user).await;
    let sid = app.challenge(&service, &user, &factor).await["sid"].as_str().unwrap().to_owned();
    let answer = Held::change(&app, "UPDATE challenges SET status = 'approved' WHERE sid = $1", &sid).await;
    let path = format!("/v2/Services/{service}/Entities/{user}/Challenges/{sid}");
    sweep_while_held(&app, answer, app.clock.now() + 301, &path, "approved").await;
}

/// The sweeper reads a Factor as stale and unverified while its verification is being committed:
/// the verified Factor stays.
#[tokio::test]
async fn the_sweeper_never_deletes_a_factor_being_verified() {
    let app = spawn_app_with(Postgres, overlapping).await;
    let service = app.service().await;
    let user = identity();
    let (factor, _) = app.unverified_factor(&service, &user).await;
    let verify = Held::change(&app, "UPDATE factors SET status = 'verified' WHERE sid = $1", &factor).await;
    let path = format!("/v2/Services/{service}/Entities/{user}/Factors/{factor}");
    sweep_while_held(&app, verify, app.clock.now() + 86_401, &path, "verified").await;
}
