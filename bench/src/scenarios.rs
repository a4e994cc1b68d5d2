//! The five scenarios: what is prepared before the clock starts, and one unit of timed work.
//!
//! | scenario | one unit | prepared beforehand |
//! |---|---|---|
//! | create-challenge | backend `POST …/Challenges` (Basic auth, 3 `Details.Fields`, `HiddenDetails`) | rendered requests, one per user |
//! | device-approve | device `POST …/Challenges/{YC}` with a signed `AuthPayload` | a pool of pending challenges, their JSON, signed answers, factor JWTs |
//! | device-poll | device `GET …/Challenges?PageSize=1&FactorSid=…&Order=desc&Status=pending` | factor JWTs, two pending challenges per user |
//! | full-flow | create → device fetch → device approve → backend fetch (4 requests) | factor JWTs (the answer is signed in the loop: its SID is new) |
//! | enroll | access token → factor create → verify (3 requests) | device keys (the verification is signed in the loop) |

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use p256::ecdsa::SigningKey;
use p256::pkcs8::EncodePublicKey;
use serde_json::{Map, Value};
use verify_push_client::jwt::{challenge_answer, factor_jwt, factor_verification};
use verify_push_client::Style;

use crate::http::{self, Conn};
use crate::record::{Outcome, Recorder, UnitClock};
use crate::setup::{self, basic, challenge_form, challenges_path, form, now_unix, Backend, User, PUSH_TOKEN};

/// A scenario of the issue (#6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    CreateChallenge,
    DeviceApprove,
    DevicePoll,
    FullFlow,
    Enroll,
}

impl Scenario {
    pub const ALL: [Scenario; 5] = [
        Scenario::CreateChallenge,
        Scenario::DeviceApprove,
        Scenario::DevicePoll,
        Scenario::FullFlow,
        Scenario::Enroll,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::CreateChallenge => "create-challenge",
            Scenario::DeviceApprove => "device-approve",
            Scenario::DevicePoll => "device-poll",
            Scenario::FullFlow => "full-flow",
            Scenario::Enroll => "enroll",
        }
    }
}

/// Everything the scenarios share: the server, the backend's Service and the enrolled users.
pub struct Env {
    pub backend: Backend,
    pub service_sid: String,
    pub users: Vec<User>,
    /// A short random tag that keeps identities of separate runs apart.
    pub tag: String,
}

/// One user of full-flow.
pub struct FlowUser {
    create: Vec<u8>,
    challenges_path: String,
    device_auth: String,
    key: SigningKey,
}

/// The prepared work of one scenario.
pub enum Work {
    CreateChallenge {
        requests: Vec<Vec<u8>>,
    },
    DeviceApprove {
        pool: Vec<Vec<u8>>,
        next: AtomicUsize,
    },
    DevicePoll {
        requests: Vec<Vec<u8>>,
    },
    FullFlow {
        host: String,
        backend_auth: String,
        users: Vec<FlowUser>,
    },
    Enroll {
        host: String,
        service_sid: String,
        backend_auth: String,
        keys: Vec<(SigningKey, String)>,
        tag: String,
        /// Numbers new identities across phases.
        seq: AtomicU64,
    },
}

fn json_object(body: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

fn field<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    map.get(key).and_then(Value::as_str)
}

impl Work {
    /// Whether a unit is several requests (its latency is then reported too).
    pub fn multi_request(&self) -> bool {
        matches!(self, Work::FullFlow { .. } | Work::Enroll { .. })
    }

    /// Pending challenges left in a device-approve pool.
    pub fn remaining(&self) -> Option<usize> {
        match self {
            Work::DeviceApprove { pool, next } => Some(pool.len().saturating_sub(next.load(Ordering::Relaxed))),
            _ => None,
        }
    }

    /// One unit of work on connection `conn` by worker `worker` (its `n`th unit).
    pub async fn unit(&self, conn: &mut Conn, rec: &mut Recorder, worker: usize, n: u64, clock: UnitClock) -> Outcome {
        let m = clock.measured;
        let pick = |len: usize, stride: usize| (worker + (n as usize).wrapping_mul(stride)) % len.max(1);
        match self {
            Work::CreateChallenge { requests } => {
                let request = &requests[pick(requests.len(), 7919)];
                match rec.call(conn, request, clock.issued, m, "create challenge").await {
                    Some(_) => Outcome::Done,
                    None => Outcome::Failed,
                }
            }
            Work::DevicePoll { requests } => {
                let request = &requests[pick(requests.len(), 7919)];
                match rec.call(conn, request, clock.issued, m, "device poll").await {
                    Some(r) if r.body.windows(15).any(|w| w == b"\"challenges\":[{") => Outcome::Done,
                    Some(r) => {
                        rec.error("device poll", &format!("no pending challenge listed: {}", r.text()));
                        Outcome::Failed
                    }
                    None => Outcome::Failed,
                }
            }
            Work::DeviceApprove { pool, next } => {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(request) = pool.get(i) else { return Outcome::Exhausted };
                match rec.call(conn, request, clock.issued, m, "device approve").await {
                    Some(_) => Outcome::Done,
                    None => Outcome::Failed,
                }
            }
            Work::FullFlow { host, backend_auth, users } => {
                let user = &users[pick(users.len(), 1)];
                self.full_flow(conn, rec, clock, host, backend_auth, user).await
            }
            Work::Enroll { host, service_sid, backend_auth, keys, tag, seq } => {
                let identity = format!("bench-{tag}-enr-{}", seq.fetch_add(1, Ordering::Relaxed));
                let (key, spki) = &keys[pick(keys.len(), 1)];
                enroll(conn, rec, clock, host, service_sid, backend_auth, &identity, key, spki).await
            }
        }
    }

    async fn full_flow(
        &self,
        conn: &mut Conn,
        rec: &mut Recorder,
        clock: UnitClock,
        host: &str,
        backend_auth: &str,
        user: &FlowUser,
    ) -> Outcome {
        let m = clock.measured;
        let Some(created) = rec.call(conn, &user.create, clock.issued, m, "full-flow create").await else {
            return Outcome::Failed;
        };
        let Some(sid) = json_object(&created.body).and_then(|c| field(&c, "sid").map(str::to_owned)) else {
            rec.error("full-flow create", "no challenge SID in the response");
            return Outcome::Failed;
        };
        let path = format!("{}/{sid}", user.challenges_path);
        let fetch = http::render("GET", host, &path, &user.device_auth, None);
        let Some(fetched) = rec.call(conn, &fetch, Instant::now(), m, "full-flow device fetch").await else {
            return Outcome::Failed;
        };
        let (Some(fields), Some(challenge)) = (fetched.signature_fields.as_deref(), json_object(&fetched.body)) else {
            rec.error("full-flow device fetch", "no Twilio-Verify-Signature-Fields or no JSON object");
            return Outcome::Failed;
        };
        let fields: Vec<String> = fields.split(',').map(str::to_owned).collect();
        let signing = Instant::now();
        let payload = match challenge_answer(&user.key, Style::Android, &fields, &challenge, "approved") {
            Ok(p) => p,
            Err(e) => {
                rec.error("full-flow sign", &e.to_string());
                return Outcome::Failed;
            }
        };
        rec.client_work += signing.elapsed();
        let answer = http::render("POST", host, &path, &user.device_auth, Some(&form(&[("AuthPayload", &payload)])));
        if rec.call(conn, &answer, Instant::now(), m, "full-flow device approve").await.is_none() {
            return Outcome::Failed;
        }
        let check = http::render("GET", host, &path, backend_auth, None);
        let Some(after) = rec.call(conn, &check, Instant::now(), m, "full-flow backend fetch").await else {
            return Outcome::Failed;
        };
        match json_object(&after.body).as_ref().and_then(|c| field(c, "status")) {
            Some("approved") => Outcome::Done,
            other => {
                rec.error("full-flow backend fetch", &format!("status {other:?} after approving"));
                Outcome::Failed
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn enroll(
    conn: &mut Conn,
    rec: &mut Recorder,
    clock: UnitClock,
    host: &str,
    service_sid: &str,
    backend_auth: &str,
    identity: &str,
    key: &SigningKey,
    spki: &str,
) -> Outcome {
    let m = clock.measured;
    let body = form(&[("Identity", identity), ("FactorType", "push"), ("Ttl", "300")]);
    let request =
        http::render("POST", host, &format!("/v2/Services/{service_sid}/AccessTokens"), backend_auth, Some(&body));
    let Some(token) = rec.call(conn, &request, clock.issued, m, "enroll access token").await else {
        return Outcome::Failed;
    };
    let Some(token) = json_object(&token.body).and_then(|t| field(&t, "token").map(str::to_owned)) else {
        rec.error("enroll access token", "no token in the response");
        return Outcome::Failed;
    };
    // The Android SDK's factor creation (verify-push-client's Device::enroll, same fields and order).
    let body = form(&[
        ("FriendlyName", "Pixel 8"),
        ("FactorType", "push"),
        ("Binding.PublicKey", spki),
        ("Binding.Alg", "ES256"),
        ("Config.SdkVersion", Style::Android.sdk_version()),
        ("Config.AppId", "com.verifypushemulator.device"),
        ("Config.NotificationPlatform", "fcm"),
        ("Config.NotificationToken", PUSH_TOKEN),
    ]);
    let factors = format!("/v2/Services/{service_sid}/Entities/{identity}/Factors");
    let request = http::render("POST", host, &factors, &basic("token", &token), Some(&body));
    let Some(created) = rec.call(conn, &request, Instant::now(), m, "enroll factor create").await else {
        return Outcome::Failed;
    };
    let factor = json_object(&created.body).unwrap_or_default();
    let credential = factor.get("config").and_then(|c| c.get("credential_sid")).and_then(Value::as_str);
    let (Some(sid), Some(account), Some(credential)) =
        (field(&factor, "sid"), field(&factor, "account_sid"), credential)
    else {
        rec.error("enroll factor create", "no sid, account_sid or config.credential_sid");
        return Outcome::Failed;
    };
    let signing = Instant::now();
    let jwt = factor_jwt(key, Style::Android, credential, account, now_unix());
    let payload = factor_verification(key, sid);
    rec.client_work += signing.elapsed();
    let body = form(&[("AuthPayload", &payload)]);
    let request = http::render("POST", host, &format!("{factors}/{sid}"), &basic("token", &jwt), Some(&body));
    let Some(verified) = rec.call(conn, &request, Instant::now(), m, "enroll verify").await else {
        return Outcome::Failed;
    };
    match json_object(&verified.body).as_ref().and_then(|f| field(f, "status")) {
        Some("verified") => Outcome::Done,
        other => {
            rec.error("enroll verify", &format!("status {other:?} after verifying"));
            Outcome::Failed
        }
    }
}

/// create-challenge: one rendered CreateChallenge per user (default 300 s expiry).
pub fn create_challenge(env: &Env) -> Work {
    let b = &env.backend;
    let requests = env
        .users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let body = challenge_form(&u.factor_sid, i as u64, None);
            http::render("POST", &b.host, &challenges_path(&env.service_sid, &u.identity), &b.auth, Some(&body))
        })
        .collect();
    Work::CreateChallenge { requests }
}

/// A pending challenge of the device-approve pool, with its signed answer.
pub struct PoolItem {
    user: usize,
    path: String,
    body: String,
}

/// Creates `count` pending challenges spread over the users and signs each one's answer, as the
/// device would after fetching it (the signature fields come from a real device fetch; the
/// JSON signed is the creation response, checked equal to the device's fetch on its signed
/// fields — if it ever differs, every challenge is fetched by its device instead).
pub async fn approve_pool(env: &Env, count: usize, concurrency: usize) -> anyhow::Result<Vec<PoolItem>> {
    let b = &env.backend;
    let created = setup::create_pending(b, &env.service_sid, &env.users, count, concurrency).await?;
    let Some((u0, first)) = created.first() else { bail!("no challenge created") };
    let sid0 = field(first, "sid").context("no sid")?;
    let user0 = &env.users[*u0];
    let path0 = format!("{}/{sid0}", challenges_path(&env.service_sid, &user0.identity));
    let fetched = Conn::new(b.addr)
        .send(&http::render("GET", &b.host, &path0, &user0.device_auth(), None))
        .await
        .map_err(anyhow::Error::msg)?;
    if fetched.status != 200 {
        bail!("device fetch of a pending challenge: {} {}", fetched.status, fetched.text());
    }
    let fields: Vec<String> = fetched
        .signature_fields
        .as_deref()
        .context("a pending challenge came without Twilio-Verify-Signature-Fields")?
        .split(',')
        .map(str::to_owned)
        .collect();
    let fetched_json = json_object(&fetched.body).context("the fetched challenge is not a JSON object")?;
    let same = fields.iter().all(|f| fetched_json.get(f) == first.get(f));
    let created = if same {
        created
    } else {
        eprintln!("  note: creation and fetch responses differ on signed fields; fetching every challenge");
        let requests: Vec<Vec<u8>> = created
            .iter()
            .map(|(u, c)| {
                let user = &env.users[*u];
                let path =
                    format!("{}/{}", challenges_path(&env.service_sid, &user.identity), field(c, "sid").unwrap_or(""));
                http::render("GET", &b.host, &path, &user.device_auth(), None)
            })
            .collect();
        let responses = setup::send_all(b.addr, requests, concurrency).await?;
        created
            .iter()
            .zip(responses)
            .map(|((u, _), r)| Ok((*u, json_object(&r.body).context("fetched challenge is not JSON")?)))
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    let signed = setup::parallel_map(&created, |(u, challenge)| {
        let user = &env.users[*u];
        let sid = field(challenge, "sid").unwrap_or_default();
        let payload = challenge_answer(&user.key, Style::Android, &fields, challenge, "approved")
            .map_err(|e| anyhow::anyhow!("signing an answer: {e}"))?;
        Ok(PoolItem {
            user: *u,
            path: format!("{}/{sid}", challenges_path(&env.service_sid, &user.identity)),
            body: form(&[("AuthPayload", &payload)]),
        })
    });
    signed.into_iter().collect()
}

/// device-approve: the pool rendered with fresh factor JWTs (one per device, reused: the server
/// verifies the signature on every request all the same).
pub fn device_approve(env: &Env, items: &[PoolItem]) -> Work {
    let auths: Vec<String> = env.users.iter().map(User::device_auth).collect();
    let pool = items
        .iter()
        .map(|item| http::render("POST", &env.backend.host, &item.path, &auths[item.user], Some(&item.body)))
        .collect();
    Work::DeviceApprove { pool, next: AtomicUsize::new(0) }
}

/// Gives every user `per_user` pending challenges (for device-poll to find).
pub async fn seed_pending(env: &Env, per_user: usize, concurrency: usize) -> anyhow::Result<()> {
    setup::create_pending(&env.backend, &env.service_sid, &env.users, env.users.len() * per_user, concurrency).await?;
    Ok(())
}

/// device-poll: each device's list request, as the Android SDK orders its query.
pub fn device_poll(env: &Env) -> Work {
    let b = &env.backend;
    let requests = env
        .users
        .iter()
        .map(|u| {
            let query = Style::Android.encode(&[
                ("PageSize", "1"),
                ("FactorSid", &u.factor_sid),
                ("Order", "desc"),
                ("Status", "pending"),
            ]);
            let path = format!("{}?{query}", challenges_path(&env.service_sid, &u.identity));
            http::render("GET", &b.host, &path, &u.device_auth(), None)
        })
        .collect();
    Work::DevicePoll { requests }
}

/// full-flow: per user, the backend's create request and the device's credentials.
pub fn full_flow(env: &Env) -> Work {
    let b = &env.backend;
    let users = env
        .users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let path = challenges_path(&env.service_sid, &u.identity);
            let body = challenge_form(&u.factor_sid, i as u64, None);
            FlowUser {
                create: http::render("POST", &b.host, &path, &b.auth, Some(&body)),
                challenges_path: path,
                device_auth: u.device_auth(),
                key: u.key.clone(),
            }
        })
        .collect();
    Work::FullFlow { host: b.host.clone(), backend_auth: b.auth.clone(), users }
}

/// enroll: a few hundred device keys, cycled (a key must only be unique within an entity, and
/// every enrolment is a new entity).
pub fn enroll_work(env: &Env, keys: usize) -> anyhow::Result<Work> {
    let keys = (0..keys.max(1))
        .map(|_| {
            let key = SigningKey::random(&mut rand_core::OsRng);
            let der = key.verifying_key().to_public_key_der().map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok((key, STANDARD.encode(der.as_bytes())))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Work::Enroll {
        host: env.backend.host.clone(),
        service_sid: env.service_sid.clone(),
        backend_auth: env.backend.auth.clone(),
        keys,
        tag: format!("{}{}", env.tag, crate::ids::hex(2)),
        seq: AtomicU64::new(0),
    })
}
