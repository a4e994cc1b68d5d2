//! Property tests through the real HTTP server: arbitrary form bodies and query strings on the
//! routes that decode them, and arbitrary Basic credentials, never get a 5xx. Every error is
//! Twilio's envelope with the status it names; every credential that is not one is 401 / 20003.
//! (The decoder's own properties are in server/src/api/params_props.rs.)
//!
//! proptest runs on a blocking thread and sends each request through the test's runtime, so a
//! failing case shrinks to its smallest body and is printed. No regression file is written here
//! (a failing case belongs in a table test of its route, next to the fix).

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::Method;
use tokio::runtime::Handle;

use crate::helpers::{enc, identity, on_both_backends, Creds, Reply, TestApp};

on_both_backends!(arbitrary_bodies_and_queries_never_get_a_5xx, arbitrary_credentials_are_refused_with_401);

/// Parameter names the routes below read, so generated bodies reach their validation.
const NAMES: [&str; 24] = [
    "FriendlyName",
    "Push.IncludeDate",
    "Totp.Issuer",
    "Totp.TimeStep",
    "DefaultTemplateSid",
    "Details.Message",
    "Details.Fields",
    "HiddenDetails",
    "ExpirationDate",
    "FactorSid",
    "AuthPayload",
    "Metadata",
    "Config.NotificationToken",
    "Config.NotificationPlatform",
    "Config.SdkVersion",
    "EventTypes",
    "WebhookUrl",
    "Status",
    "Version",
    "Identity",
    "FactorType",
    "Ttl",
    "PageSize",
    "PageToken",
];

/// A body: arbitrary bytes, or `name=value` pairs of real parameter names with arbitrary values
/// (percent-encoded, or raw).
fn body() -> impl Strategy<Value = Vec<u8>> {
    // Any text, or short text dense in what decoders trip on: escapes, separators, controls.
    let value = prop_oneof![".{0,40}", "[a-z0-9 %&=+\\x00-\\x1f]{0,20}"];
    let pair = (proptest::sample::select(NAMES.to_vec()), value, any::<bool>()).prop_map(|(name, value, raw)| {
        if raw {
            format!("{name}={value}")
        } else {
            format!("{name}={}", enc(&value))
        }
    });
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        proptest::collection::vec(pair, 0..6).prop_map(|pairs| pairs.join("&").into_bytes()),
    ]
}

/// The body as a query string: printable ASCII as it is (bad `%` escapes included), every
/// other byte and `#` percent-encoded, as a URL must carry them.
fn query_text(body: &[u8]) -> String {
    body.iter()
        .map(|b| if b.is_ascii_graphic() && *b != b'#' { char::from(*b).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// `None` if `reply` is a 2xx, or an error in Twilio's envelope with a 4xx status.
fn problem(reply: &Reply) -> Option<String> {
    let status = reply.status.as_u16();
    if reply.status.is_success() {
        return None;
    }
    let body = &reply.body;
    let envelope = body["status"].as_u64() == Some(u64::from(status))
        && body["code"].as_u64().is_some()
        && body.as_object().is_some_and(|o| o.len() == 4);
    (!(400..500).contains(&status) || !envelope).then(|| format!("{status} {body}"))
}

/// Runs `property` for 256 generated values on a blocking thread; `send` turns a value into a
/// request answered by the test's server.
async fn run<S>(app: TestApp, strategy: S, property: fn(&TestApp, &Handle, S::Value) -> Result<(), TestCaseError>)
where
    S: Strategy + Send + 'static,
{
    let handle = Handle::current();
    let outcome = tokio::task::spawn_blocking(move || {
        let mut runner = TestRunner::new(Config { cases: 256, failure_persistence: None, ..Config::default() });
        runner.run(&strategy, |value| property(&app, &handle, value)).map_err(|e| e.to_string())
    })
    .await
    .expect("the property thread");
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}

async fn arbitrary_bodies_and_queries_never_get_a_5xx(app: TestApp) {
    let service = app.service().await;
    let user = identity();
    let (factor, _) = app.verified_factor(&service, &user).await;
    let entity = format!("/v2/Services/{service}/Entities/{user}");
    let targets = vec![
        format!("/v2/Services/{service}"),
        format!("{entity}/Challenges"),
        format!("{entity}/Factors/{factor}"),
        format!("/v2/Services/{service}/Webhooks"),
        format!("/v2/Services/{service}/AccessTokens"),
        format!("/v2/Services/{service}/Entities"),
    ];
    let strategy = (proptest::sample::select(targets), any::<bool>(), body());
    run(app, strategy, |app, handle, (path, as_query, body)| {
        let reply = if as_query {
            let query = query_text(&body);
            handle.block_on(app.send(Method::GET, &format!("{path}?{query}"), Some(&app.account), &[], &[], None))
        } else {
            let headers = [("Content-Type", "application/x-www-form-urlencoded")];
            handle.block_on(app.send(Method::POST, &path, Some(&app.account), &[], &headers, Some(body.clone())))
        };
        match problem(&reply) {
            Some(problem) => {
                Err(TestCaseError::fail(format!("{path} {:?}: {problem}", String::from_utf8_lossy(&body))))
            }
            None => Ok(()),
        }
    })
    .await;
}

async fn arbitrary_credentials_are_refused_with_401(app: TestApp) {
    let service = app.service().await;
    let user = identity();
    let (factor, _) = app.verified_factor(&service, &user).await;
    let path = format!("/v2/Services/{service}/Entities/{user}/Factors/{factor}");
    let user_name = prop_oneof![Just("token".to_owned()), Just(app.account.user.clone()), ".{0,40}"];
    let password = prop_oneof![".{0,80}", "[A-Za-z0-9_.=-]{0,400}", "([A-Za-z0-9_-]{1,60}\\.){2,4}[A-Za-z0-9_-]{0,90}"];
    let strategy = (user_name, password, Just(path));
    run(app, strategy, |app, handle, (user, password, path)| {
        let creds = Creds { user, password };
        let reply = handle.block_on(app.send(Method::GET, &path, Some(&creds), &[], &[], None));
        let refused = reply.status.as_u16() == 401 && reply.body["code"].as_u64() == Some(20003);
        prop_assert!(refused, "{creds:?}: {} {}", reply.status, reply.body);
        Ok(())
    })
    .await;
}
