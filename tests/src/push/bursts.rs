//! Many pushes at once: a burst shares one OAuth access token (FCM) and one provider token
//! (APNs).

use std::collections::HashSet;
use std::time::Duration;

use tokio::net::TcpListener;
use verify_push_server::clock::Clock;
use verify_push_server::domain::dates;
use verify_push_server::store::Backend;

use super::{apn_token_credential, app_with, challenge, fake, fcm_credential, google, push_when_drained, service_with};
use crate::fakes::{script, Fake, TestCa};
use crate::helpers::for_each_backend;

const BURST: usize = 10;

for_each_backend!(a_burst_of_fcm_pushes_makes_one_token_request, a_burst_of_apns_pushes_signs_one_provider_token,);

/// A port with nothing listening on it yet.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn a_burst_of_fcm_pushes_makes_one_token_request(backend: Backend) {
    // The Google endpoints are down while the challenges are made, so every push fails its first
    // attempt; once the clock moves past their backoff all of them are due together, and the
    // worker claims and sends them as one batch.
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let app = app_with(backend, None, |a| a.fcm_url = url.clone()).await;
    let credential = fcm_credential(&app, &format!("{url}/token")).await;
    let (service, user, factor) = service_with(&app, "fcm", Some(&credential)).await;
    let mut sids = Vec::new();
    for i in 0..BURST {
        sids.push(challenge(&app, &service, &user, &factor, &format!("Burst {i}")).await);
    }
    for sid in &sids {
        push_when_drained(&app, sid, "retrying").await;
    }
    // A slow token endpoint keeps the first token request in flight while the other sends of
    // the batch ask for a token.
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let google = Fake::start_slow(listener, None, google(vec![]), Duration::from_millis(300)).await;
    app.clock.advance(10);
    for sid in &sids {
        push_when_drained(&app, sid, "sent").await;
    }
    assert_eq!(google.log.to_path("messages:send").len(), BURST);
    assert_eq!(google.log.to_path("/token").len(), 1, "one token request for the whole burst");
}

async fn a_burst_of_apns_pushes_signs_one_provider_token(backend: Backend) {
    let ca = TestCa::new();
    // Every push's first attempt is refused (500), so all of them are retried together later.
    let first = vec![(500, r#"{"reason": "InternalServerError"}"#); BURST];
    let apns = fake(Some((&ca, false)), script(&first, (200, "{}"))).await;
    let url = apns.url(true);
    let app = app_with(backend, Some(&ca), |a| a.apns_url = url).await;
    let credential = apn_token_credential(&app, false).await;
    let (service, user, factor) = service_with(&app, "apn", Some(&credential)).await;
    let expires = dates::format(app.clock.now() + 59 * 60);
    let mut sids = Vec::new();
    for i in 0..BURST {
        let path = format!("/v2/Services/{service}/Entities/{user}/Challenges");
        let form =
            [("FactorSid", factor.as_str()), ("Details.Message", &format!("Burst {i}")), ("ExpirationDate", &expires)];
        sids.push(app.post(&path, &form).await.assert_status(201)["sid"].as_str().unwrap().to_owned());
    }
    for sid in &sids {
        push_when_drained(&app, sid, "retrying").await;
    }
    // Past the provider token's 50 minutes: the retries of the burst need a new one.
    app.clock.advance(51 * 60);
    for sid in &sids {
        push_when_drained(&app, sid, "sent").await;
    }
    let requests = apns.log.all();
    assert_eq!(requests.len(), 2 * BURST);
    let tokens = |requests: &[crate::fakes::Recorded]| -> HashSet<String> {
        requests.iter().map(|r| r.header("authorization").unwrap().to_owned()).collect()
    };
    let (before, after) = (tokens(&requests[..BURST]), tokens(&requests[BURST..]));
    assert_eq!(before.len(), 1, "one provider token for the first attempts");
    assert_eq!(after.len(), 1, "one new provider token for the retries");
    assert!(before.is_disjoint(&after), "the token was renewed after 50 minutes");
}
