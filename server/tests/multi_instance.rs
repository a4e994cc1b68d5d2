//! Three server processes on one PostgreSQL database share the work: API calls go round-robin
//! across them, and pushes and webhook deliveries go to whichever instance's worker claims them.
//! One instance is killed with SIGKILL while it holds pushes and webhook deliveries in flight
//! (the fakes hold their answers back for a while), then restarted. Checked: every acknowledged
//! write is visible through every instance; a challenge approved through one instance reads as
//! approved through the others at once; the survivors take the victim's claims over once their
//! leases lapse; every challenge's push and every webhook event arrives; and every request a fake
//! received is a recorded attempt (pushes and webhooks are at-least-once, so duplicates exist,
//! but each is visible in `/_emulator/…`). The duplicate counts are printed: run with
//! `cargo nextest run -p verify-push-server --test multi_instance --success-output immediate`.
#![expect(clippy::unwrap_used, reason = "tests fail loudly by design")]

mod support;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use p256::ecdsa::SigningKey;
use reqwest::Method;
use serde_json::{json, Value};
use support::fakes::{Fake, Recorded, Responder, TestCa};
use support::{approve, call, free_port, verified_factor, Backend, Database, Server};

const INSTANCES: usize = 3;
/// The instance killed and restarted.
const VICTIM: usize = 2;
const FACTORS: usize = 12;
/// Push and webhook timeouts (seconds): the survivors', and the victim's, which is longer so that
/// its leases (2 × timeout + 5 s, claimed at `date_updated`) can be told apart in the database.
const TIMEOUT: i64 = 2;
const VICTIM_TIMEOUT: i64 = 3;
/// How long the fakes hold each answer while the kill is prepared: under every timeout, so the
/// survivors' attempts succeed, and long enough that the victim has work in flight.
const HOLD: Duration = Duration::from_millis(1500);

const RSA_PEM: &str = include_str!("../../tests/fixtures/fcm-service-account-key.pem");
const P8: &str = include_str!("../../tests/fixtures/apns-token-key.p8");

/// The push services and the webhook receiver, all recording.
struct Fakes {
    oauth: Fake,
    fcm: Fake,
    apns: Fake,
    receiver: Fake,
    ca_file: PathBuf,
}

impl Fakes {
    async fn start() -> Fakes {
        let listener = || async { tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap() };
        let answer = |body: &'static str| -> Responder { Arc::new(move |_| (200, body.to_owned())) };
        let ca = TestCa::new();
        let ca_file = std::env::temp_dir().join(format!("vps-multi-ca-{}.pem", std::process::id()));
        std::fs::write(&ca_file, &ca.pem).unwrap();
        Fakes {
            oauth: Fake::start(listener().await, None, answer(r#"{"access_token": "ya29.x", "expires_in": 3600}"#))
                .await,
            fcm: Fake::start(listener().await, None, answer(r#"{"name": "projects/multi/messages/1"}"#)).await,
            apns: Fake::start(listener().await, Some((&ca, false)), answer("{}")).await,
            receiver: Fake::start(listener().await, None, answer("{}")).await,
            ca_file,
        }
    }

    fn hold(&self, delay: Duration) {
        for fake in [&self.fcm, &self.apns, &self.receiver] {
            fake.hold.set(delay);
        }
    }

    /// Every push request received, by the challenge it announces.
    fn pushes_by_challenge(&self) -> HashMap<String, Vec<Recorded>> {
        let mut by_challenge: HashMap<String, Vec<Recorded>> = HashMap::new();
        for r in self.fcm.log.to_path("/messages:send").into_iter().chain(self.apns.log.to_path("/3/device/")) {
            let body: Value = serde_json::from_str(&r.body).unwrap();
            let sid = body["message"]["data"]["challenge_sid"].as_str().or(body["challenge_sid"].as_str()).unwrap();
            by_challenge.entry(sid.to_owned()).or_default().push(r);
        }
        by_challenge
    }

    /// Every webhook request received, by its delivery's uuid.
    fn webhooks_by_uuid(&self) -> HashMap<String, Vec<HashMap<String, String>>> {
        let mut by_uuid: HashMap<String, Vec<HashMap<String, String>>> = HashMap::new();
        for r in self.receiver.log.all() {
            let form: HashMap<String, String> =
                r.body.split('&').filter_map(|p| p.split_once('=')).map(|(k, v)| (k.into(), v.into())).collect();
            by_uuid.entry(form["uuid"].clone()).or_default().push(form);
        }
        by_uuid
    }
}

/// The settings of instance `i`: its push endpoints carry `/i<i>` as a path prefix, so the fakes
/// can tell which instance sent a push.
fn settings(i: usize, fakes: &Fakes) -> Vec<(&'static str, String)> {
    let timeout = if i == VICTIM { VICTIM_TIMEOUT } else { TIMEOUT }.to_string();
    let apns = format!("{}/i{i}", fakes.apns.url(true));
    vec![
        ("VERIFY_PUSH_FCM_URL", format!("{}/i{i}", fakes.fcm.url(false))),
        ("VERIFY_PUSH_APNS_URL", apns.clone()),
        ("VERIFY_PUSH_APNS_SANDBOX_URL", apns),
        ("VERIFY_PUSH_PUSH_CA_CERT", fakes.ca_file.display().to_string()),
        ("VERIFY_PUSH_PUSH_TIMEOUT", timeout.clone()),
        ("VERIFY_PUSH_WEBHOOK_TIMEOUT", timeout),
        ("VERIFY_PUSH_PUSH_POLL_MS", "50".into()),
        ("VERIFY_PUSH_WEBHOOK_POLL_MS", "50".into()),
        ("VERIFY_PUSH_WEBHOOK_MAX_BACKOFF", "1".into()),
        ("VERIFY_PUSH_WEBHOOK_MAX_ATTEMPTS", "1000".into()),
        ("VERIFY_PUSH_DATABASE_MAX_CONNECTIONS", "4".into()),
        ("VERIFY_PUSH_WORKERS", "1".into()),
    ]
}

async fn start(db: &str, port: u16, i: usize, fakes: &Fakes) -> Server {
    let env = settings(i, fakes);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Server::start(db, port, &env).await
}

struct Factor {
    sid: String,
    key: SigningKey,
    /// `/v2/Services/{VA}/Entities/{identity}`, to put after an instance's URL.
    entity: String,
}

/// A challenge whose creation (and, if `approved`, approval) the server acknowledged.
struct Acknowledged {
    sid: String,
    entity: String,
    approved: bool,
}

/// One challenge per factor, created through instance `urls[k]` and — two in three — approved
/// through `urls[k + 1]`; every approval is then read through every other instance at once.
async fn round(http: &reqwest::Client, urls: &[String], factors: &[Factor], seq: usize) -> Vec<Acknowledged> {
    let work = factors.iter().enumerate().map(|(f, factor)| async move {
        let k = seq * factors.len() + f;
        let (create, answer) = (&urls[k % urls.len()], &urls[(k + 1) % urls.len()]);
        let challenges = format!("{create}{}/Challenges", factor.entity);
        let form = [("FactorSid", factor.sid.as_str()), ("Details.Message", "multi")];
        let (created, _) = call(http, Method::POST, &challenges, &form).await;
        let sid = created["sid"].as_str().unwrap().to_owned();
        let approved = !k.is_multiple_of(3);
        if approved {
            approve(http, &format!("{answer}{}/Challenges/{sid}", factor.entity), &factor.key).await;
            for other in urls.iter().filter(|u| *u != answer) {
                let (seen, _) =
                    call(http, Method::GET, &format!("{other}{}/Challenges/{sid}", factor.entity), &[]).await;
                assert_eq!(seen["status"], "approved", "approved through {answer}, read through {other}");
            }
        }
        Acknowledged { sid, entity: factor.entity.clone(), approved }
    });
    join_all(work).await
}

/// Lists everything in an `/_emulator` list (one page of up to 1,000 is all there is here).
async fn list(http: &reqwest::Client, url: &str, key: &str) -> Vec<Value> {
    let (page, _) = call(http, Method::GET, &format!("{url}?PageSize=1000"), &[]).await;
    assert!(page["meta"]["next_page_url"].is_null(), "more than one page of {key}");
    page[key].as_array().unwrap().clone()
}

/// Rows in `table` that the victim holds: claimed (`sending`) with the victim's lease length.
async fn held_by_victim(db: &sqlx::PgPool, table: &str) -> Vec<i64> {
    let sql =
        format!("SELECT id FROM {table} WHERE status = 'sending' AND lease_until - date_updated = $1 ORDER BY id");
    sqlx::query_scalar(&sql).bind(VICTIM_TIMEOUT * 2 + 5).fetch_all(db).await.unwrap()
}

/// Whether every one of these rows of `table` was sent or delivered.
async fn settled(db: &sqlx::PgPool, table: &str, ids: &[i64]) -> bool {
    let sql = format!("SELECT count(*) FROM {table} WHERE id = ANY($1) AND status IN ('sent', 'delivered')");
    let done: i64 = sqlx::query_scalar(&sql).bind(ids).fetch_one(db).await.unwrap();
    usize::try_from(done).unwrap() == ids.len()
}

/// Whether exactly one of these attempts is logged as interrupted (taken back after its lease
/// lapsed, by one of the instances racing to do so).
fn interrupted(attempts: &Value) -> bool {
    let interrupted = |a: &&Value| a["error"].as_str().is_some_and(|e| e.starts_with("interrupted"));
    attempts.as_array().unwrap().iter().filter(interrupted).count() == 1
}

/// Compares the requests a fake received for one push or delivery with its recorded attempts:
/// every attempt the receiver answered (an HTTP status is recorded) reached it, and every request
/// it received is an attempt — one received without an attempt is a send nobody can see. (An
/// attempt may lack a request: a timeout or an interruption before the request went out.)
fn unaccounted(what: &str, attempts: &[Value], receipts: usize) -> Option<String> {
    let answered = attempts.iter().filter(|a| !a["http_status"].is_null()).count();
    (answered > receipts || receipts > attempts.len()).then(|| {
        format!("{what}: {receipts} request(s) received, {} attempt(s) recorded: {attempts:?}", attempts.len())
    })
}

#[tokio::test]
async fn three_instances_on_postgres_share_the_work_and_lose_nothing_to_a_kill_9() {
    let started = Instant::now();
    let database = Database::fresh(Backend::Postgres, "multi").await;
    let db = database.url.as_str();
    let inspect = sqlx::PgPool::connect(db).await.unwrap();
    let fakes = Fakes::start().await;
    let http = reqwest::Client::new();
    let ports: Vec<u16> = (0..INSTANCES).map(|_| free_port()).collect();
    // All three start at once on the empty schema (migrations and key generation race).
    let mut servers = join_all((0..INSTANCES).map(|i| start(db, ports[i], i, &fakes))).await;
    let urls: Vec<String> = servers.iter().map(|s| s.url.clone()).collect();

    // Credentials, Service and Webhook, each through another instance.
    let secret = json!({"type": "service_account", "project_id": "multi", "private_key": RSA_PEM,
        "client_email": "push@multi.iam.gserviceaccount.com", "token_uri": format!("{}/token", fakes.oauth.url(false))});
    let form = [("Type", "fcm"), ("Secret", &secret.to_string())];
    let fcm = call(&http, Method::POST, &format!("{}/v1/Credentials", urls[0]), &form).await.0;
    let form = [("Type", "apn"), ("PrivateKey", P8), ("KeyId", "ABC123DEFG"), ("TeamId", "TEAM123456")];
    let apn = call(&http, Method::POST, &format!("{}/v1/Credentials", urls[1]), &form).await.0;
    let form = [
        ("FriendlyName", "Multi"),
        ("Push.FcmCredentialSid", fcm["sid"].as_str().unwrap()),
        ("Push.ApnCredentialSid", apn["sid"].as_str().unwrap()),
    ];
    let service = call(&http, Method::POST, &format!("{}/v2/Services", urls[2]), &form).await.0;
    let service = service["sid"].as_str().unwrap().to_owned();
    let hook = format!("{}/hook", fakes.receiver.url(false));
    let form = [("FriendlyName", "all"), ("EventTypes", "*"), ("WebhookUrl", hook.as_str())];
    call(&http, Method::POST, &format!("{}/v2/Services/{service}/Webhooks", urls[0]), &form).await;

    // Factors: created through one instance, verified through the next; half FCM, half APNs.
    let mut expected_events: HashSet<(String, String)> = HashSet::new();
    let factors: Vec<Factor> = join_all((0..FACTORS).map(|f| {
        let (http, urls, service) = (&http, &urls, &service);
        async move {
            let entity = format!("/v2/Services/{service}/Entities/user-multi-{f}");
            let (platform, token) = if f % 2 == 0 {
                ("fcm", format!("fcm-token-{f}-{}", "x".repeat(40)))
            } else {
                ("apn", "a1b2c3d4".repeat(8))
            };
            let (create, verify) = (&urls[f % INSTANCES], &urls[(f + 1) % INSTANCES]);
            let seed = u8::try_from(f).unwrap() + 40;
            let (sid, key) = verified_factor(
                http,
                &format!("{create}{entity}"),
                &format!("{verify}{entity}"),
                seed,
                platform,
                Some(&token),
            )
            .await;
            Factor { sid, key, entity }
        }
    }))
    .await;
    for factor in &factors {
        expected_events.insert(("factor.created".into(), factor.sid.clone()));
        expected_events.insert(("factor.verified".into(), factor.sid.clone()));
    }

    // A first round with fast fakes.
    let mut acknowledged = round(&http, &urls, &factors, 0).await;

    // Slow fakes: rounds of work until the victim holds a push and a webhook delivery at once
    // (claimed, and sent or about to be), then SIGKILL.
    fakes.hold(HOLD);
    let mut seq = 1;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        acknowledged.extend(round(&http, &urls, &factors, seq).await);
        seq += 1;
        let mut ready = false;
        for _ in 0..25 {
            let pushes = held_by_victim(&inspect, "pushes").await;
            let deliveries = held_by_victim(&inspect, "webhook_deliveries").await;
            if !pushes.is_empty() && !deliveries.is_empty() {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if ready {
            break;
        }
        assert!(Instant::now() < deadline, "the victim never held a push and a delivery at once");
    }
    servers[VICTIM].kill();
    let killed_at = Instant::now();
    // Nothing moves these rows until their leases lapse: this is exactly what the victim held.
    let victim_pushes = held_by_victim(&inspect, "pushes").await;
    let victim_deliveries = held_by_victim(&inspect, "webhook_deliveries").await;
    fakes.hold(Duration::ZERO);

    // The survivors go on, and take the victim's claims over once its leases lapse.
    let survivors: Vec<String> =
        urls.iter().enumerate().filter(|(i, _)| *i != VICTIM).map(|(_, u)| u.clone()).collect();
    acknowledged.extend(round(&http, &survivors, &factors, seq).await);
    seq += 1;
    let deadline = Instant::now() + Duration::from_secs(40);
    while !settled(&inspect, "pushes", &victim_pushes).await
        || !settled(&inspect, "webhook_deliveries", &victim_deliveries).await
    {
        assert!(Instant::now() < deadline, "the survivors did not take the victim's claims over");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let takeover = killed_at.elapsed();

    // The victim comes back and takes part again.
    servers[VICTIM] = start(db, ports[VICTIM], VICTIM, &fakes).await;
    acknowledged.extend(round(&http, &urls, &factors, seq).await);
    for a in acknowledged.iter().filter(|a| a.approved) {
        expected_events.insert(("challenge.approved".into(), a.sid.clone()));
    }

    // Drain: every push sent, every delivery delivered (read through the restarted instance).
    let deadline = Instant::now() + Duration::from_secs(40);
    let (pushes, deliveries) = loop {
        let pushes = list(&http, &format!("{}/_emulator/pushes", urls[VICTIM]), "pushes").await;
        let deliveries =
            list(&http, &format!("{}/_emulator/webhook-deliveries", urls[VICTIM]), "webhook_deliveries").await;
        if pushes.len() == acknowledged.len()
            && pushes.iter().all(|p| p["status"] == "sent")
            && deliveries.len() == expected_events.len()
            && deliveries.iter().all(|d| d["outcome"] == "delivered")
        {
            break (pushes, deliveries);
        }
        assert!(
            Instant::now() < deadline,
            "not drained: {} pushes ({} acknowledged challenges), {} deliveries ({} events): {:?} {:?}",
            pushes.len(),
            acknowledged.len(),
            deliveries.len(),
            expected_events.len(),
            pushes.iter().filter(|p| p["status"] != "sent").collect::<Vec<_>>(),
            deliveries.iter().filter(|d| d["outcome"] != "delivered").collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // Every acknowledged write reads the same through every instance.
    for url in &urls {
        let http = &http;
        let reads = acknowledged.iter().map(|a| async move {
            let (c, _) = call(http, Method::GET, &format!("{url}{}/Challenges/{}", a.entity, a.sid), &[]).await;
            assert_eq!(c["status"], if a.approved { "approved" } else { "pending" }, "{} through {url}", a.sid);
        });
        join_all(reads).await;
        for factor in &factors {
            let (f, _) = call(http, Method::GET, &format!("{url}{}/Factors/{}", factor.entity, factor.sid), &[]).await;
            assert_eq!(f["status"], "verified", "{} through {url}", factor.sid);
        }
    }

    // Every challenge has exactly one push, delivered; every request a fake received is one of
    // its recorded attempts.
    let received = fakes.pushes_by_challenge();
    let listed: HashSet<&str> = pushes.iter().map(|p| p["challenge_sid"].as_str().unwrap()).collect();
    let challenges: HashSet<&str> = acknowledged.iter().map(|a| a.sid.as_str()).collect();
    assert_eq!(listed, challenges, "one push per acknowledged challenge");
    let mut unseen = Vec::new();
    let (mut duplicate_pushes, mut extra_pushes) = (0, 0);
    for p in &pushes {
        let sid = p["challenge_sid"].as_str().unwrap();
        let receipts = received.get(sid).map_or(0, Vec::len);
        assert!(receipts >= 1, "the push of {sid} never arrived");
        let attempts = p["attempts"].as_array().unwrap();
        unseen.extend(unaccounted(&format!("push {sid}"), attempts, receipts));
        duplicate_pushes += usize::from(receipts > 1);
        extra_pushes += receipts - 1;
    }
    // The victim's claims were finished by a survivor (their last receipt came from /i0 or /i1),
    // after logging the victim's attempt as interrupted.
    for p in pushes.iter().filter(|p| victim_pushes.contains(&p["id"].as_i64().unwrap())) {
        let last = received[p["challenge_sid"].as_str().unwrap()].last().unwrap();
        assert!(!last.path.starts_with(&format!("/i{VICTIM}/")), "taken over by a survivor: {}", last.path);
        assert!(interrupted(&p["attempts"]), "{p}");
    }

    // Every event of an acknowledged write was delivered, once per webhook, and accounted for.
    let received = fakes.webhooks_by_uuid();
    let events: HashSet<(String, String)> = deliveries
        .iter()
        .map(|d| {
            let fields = &d["fields"];
            let sid = fields["challenge_sid"].as_str().or(fields["factor_sid"].as_str()).unwrap();
            (d["event_type"].as_str().unwrap().to_owned(), sid.to_owned())
        })
        .collect();
    assert_eq!(events, expected_events, "the events of the acknowledged writes");
    let victim_uuids: Vec<String> = sqlx::query_scalar("SELECT uuid FROM webhook_deliveries WHERE id = ANY($1)")
        .bind(&victim_deliveries)
        .fetch_all(&inspect)
        .await
        .unwrap();
    let (mut duplicate_webhooks, mut extra_webhooks) = (0, 0);
    for d in &deliveries {
        let uuid = d["uuid"].as_str().unwrap();
        let receipts = received.get(uuid).map_or(&[][..], Vec::as_slice);
        assert!(!receipts.is_empty(), "delivery {uuid} never arrived");
        assert!(receipts.iter().all(|r| r["type"] == d["event_type"]), "{uuid}: {receipts:?}");
        unseen.extend(unaccounted(&format!("delivery {uuid}"), d["attempts"].as_array().unwrap(), receipts.len()));
        assert!(!victim_uuids.iter().any(|v| v == uuid) || interrupted(&d["attempts"]), "{d}");
        duplicate_webhooks += usize::from(receipts.len() > 1);
        extra_webhooks += receipts.len() - 1;
    }
    assert!(unseen.is_empty(), "requests received without a recorded attempt:\n{}", unseen.join("\n"));

    println!(
        "multi-instance (PostgreSQL, {INSTANCES} instances, 1 SIGKILL): {} challenges, {} pushes, {} webhook \
         deliveries in {:.1?}. The victim held {} push(es) and {} delivery(ies) when killed; survivors took them \
         over {:.1?} after the kill. Duplicates: {duplicate_pushes} push(es) received more than once ({extra_pushes} \
         extra request(s)), {duplicate_webhooks} webhook delivery(ies) received more than once ({extra_webhooks} \
         extra request(s)); every one of them a recorded attempt.",
        acknowledged.len(),
        pushes.len(),
        deliveries.len(),
        started.elapsed(),
        victim_pushes.len(),
        victim_deliveries.len(),
        takeover,
    );
    let _ = std::fs::remove_file(&fakes.ca_file);
}
