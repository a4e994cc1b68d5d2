//! Paging: `meta`, `next_page_url`/`previous_page_url` followed verbatim, tokens and sizes, and
//! paging the SDKs' way: `PageToken` alone, never `Page`.

use serde_json::Value;

use crate::helpers::{identity, on_both_backends, TestApp};

on_both_backends!(
    lists_page_forward_and_back_by_token,
    paging_parameters_are_validated,
    every_list_pages_both_ways_with_the_page_token_alone,
);

const P8: &str = include_str!("../fixtures/apns-token-key.p8");

async fn lists_page_forward_and_back_by_token(app: TestApp) {
    let service = app.service().await;
    let mut created = Vec::new();
    for _ in 0..7 {
        let user = identity();
        app.post(&format!("/v2/Services/{service}/Entities"), &[("Identity", &user)]).await.assert_status(201);
        created.push(user);
    }
    let list_url = format!("{}/v2/Services/{service}/Entities", app.url);
    let first = app.get(&format!("{list_url}?PageSize=3")).await;
    let meta = &first.assert_status(200)["meta"];
    assert_eq!(meta["page"], 0);
    assert_eq!(meta["page_size"], 3);
    assert_eq!(meta["key"], "entities");
    assert_eq!(meta["first_page_url"], format!("{list_url}?PageSize=3&Page=0"));
    assert_eq!(meta["url"], format!("{list_url}?PageSize=3&Page=0"));
    assert!(meta["previous_page_url"].is_null());

    let identities = |reply: &crate::helpers::Reply| -> Vec<String> {
        reply.body["entities"].as_array().unwrap().iter().map(|e| e["identity"].as_str().unwrap().to_owned()).collect()
    };
    let mut seen = identities(&first);
    let mut pages = vec![first];
    while let Some(next) = pages.last().unwrap().body["meta"]["next_page_url"].as_str().map(str::to_owned) {
        assert!(next.starts_with(&list_url), "absolute and pointing at this server: {next}");
        let page = app.get(&next).await;
        page.assert_status(200);
        assert_eq!(page.body["meta"]["url"], next.as_str());
        seen.extend(identities(&page));
        pages.push(page);
        assert!(pages.len() < 10, "paging must end");
    }
    assert_eq!(seen, created, "every entity exactly once, in creation order");
    assert_eq!(pages.iter().map(|p| identities(p).len()).collect::<Vec<_>>(), vec![3, 3, 1]);
    assert_eq!(pages[2].body["meta"]["page"], 2);

    let back = pages[2].body["meta"]["previous_page_url"].as_str().unwrap();
    assert_eq!(identities(&app.get(back).await), identities(&pages[1]));
    let back = pages[1].body["meta"]["previous_page_url"].as_str().unwrap();
    let page0 = app.get(back).await;
    assert_eq!(identities(&page0), identities(&pages[0]));
}

async fn paging_parameters_are_validated(app: TestApp) {
    let service = app.service().await;
    for path in [
        "/v2/Services".to_owned(),
        format!("/v2/Services/{service}/Entities"),
        format!("/v2/Services/{service}/Webhooks"),
    ] {
        app.get(&format!("{path}?PageSize=0")).await.assert_error(400, 60373);
        app.get(&format!("{path}?PageSize=1001")).await.assert_error(400, 60373);
        app.get(&format!("{path}?PageSize=abc")).await.assert_error(400, 60373);
        app.get(&format!("{path}?PageToken=garbage")).await.assert_error(400, 60374);
        app.get(&format!("{path}?PageToken=PTeDE")).await.assert_error(400, 60374);
        // `a42` (no page number) and `a4.0` (a page after a row numbered as the first).
        app.get(&format!("{path}?PageToken=PTYTQy")).await.assert_error(400, 60374);
        app.get(&format!("{path}?PageToken=PTYTQuMA")).await.assert_error(400, 60374);
        app.get(&format!("{path}?Page=-1")).await.assert_error(400, 60200);
        app.get(&format!("{path}?PageSize=1000")).await.assert_status(200);
    }
}

/// The `PageToken` query value of a paging URL, as the SDKs extract it into
/// `nextPageToken`/`previousPageToken` (docs/ARCHITECTURE.md, "Keyset paging").
fn page_token(url: &str) -> String {
    let query = url.split_once('?').unwrap().1;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("PageToken="))
        .unwrap_or_else(|| panic!("no PageToken in {url}"))
        .to_owned()
}

/// One paged list: where it lives, the filters a client repeats on every page (in the order the
/// server echoes them), its key, and the SIDs it must list, in list order.
struct List {
    url: String,
    filters: String,
    key: &'static str,
    sids: Vec<String>,
}

/// Walks `list` forward and back with `PageToken` alone (never `Page`), as the Android SDK does:
/// `meta.page` counts 0, 1, 2…, `first_page_url` is page 0, and every page reached backwards
/// from the last holds the rows it held going forward.
async fn walk_with_tokens_alone(app: &TestApp, list: &List) {
    let List { url, filters, key, sids } = list;
    let what = |page: usize| format!("{key} page {page}");
    let get = |token: Option<String>| {
        let token = token.map(|t| format!("&PageToken={t}")).unwrap_or_default();
        let target = format!("{url}?{filters}PageSize=3{token}");
        async move {
            let reply = app.get(&target).await;
            reply.assert_status(200);
            reply.body
        }
    };
    let rows = |body: &Value| -> Vec<String> {
        body[*key].as_array().unwrap().iter().map(|r| r["sid"].as_str().unwrap().to_owned()).collect()
    };
    let first_page_url = format!("{url}?{filters}PageSize=3&Page=0");

    let mut pages = vec![get(None).await];
    loop {
        let number = pages.len() - 1;
        let meta = &pages[number]["meta"];
        assert_eq!(meta["page"], number, "{}: {meta}", what(number));
        assert_eq!(meta["first_page_url"], first_page_url.as_str(), "{}", what(number));
        assert_eq!(meta["previous_page_url"].is_null(), number == 0, "{}: {meta}", what(number));
        let Some(next) = meta["next_page_url"].as_str() else { break };
        let next = get(Some(page_token(next))).await;
        pages.push(next);
        assert!(pages.len() < 10, "{key}: paging must end");
    }
    assert!(pages.len() >= 3, "{key}: at least three pages");
    assert_eq!(pages.iter().flat_map(&rows).collect::<Vec<_>>(), *sids, "{key}: every row once, in order");

    let mut number = pages.len() - 1;
    let mut page = pages[number].clone();
    while let Some(previous) = page["meta"]["previous_page_url"].as_str() {
        page = get(Some(page_token(previous))).await;
        number -= 1;
        assert_eq!(page["meta"]["page"], number, "{} reached backwards: {}", what(number), page["meta"]);
        assert_eq!(rows(&page), rows(&pages[number]), "{} reached backwards", what(number));
        assert_eq!(page["meta"]["first_page_url"], first_page_url.as_str());
    }
    assert_eq!(number, 0, "{key}: paging back ends on the first page");
}

async fn every_list_pages_both_ways_with_the_page_token_alone(app: TestApp) {
    let sid = |reply: crate::helpers::Reply| reply.assert_status(201)["sid"].as_str().unwrap().to_owned();
    let mut services = Vec::new();
    for n in 0..7 {
        services.push(sid(app.post("/v2/Services", &[("FriendlyName", &format!("Paged {n}"))]).await));
    }
    // Factors make Entities of their own, so the Entities listed live in a Service without any.
    let (service, bare) = (&services[0], &services[1]);
    let (mut entities, mut factors, mut webhooks, mut credentials) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let user = identity();
    for _ in 0..7 {
        entities.push(sid(app.post(&format!("/v2/Services/{bare}/Entities"), &[("Identity", &identity())]).await));
        factors.push(app.unverified_factor(service, &user).await.0);
        let hook = [
            ("FriendlyName", "Paged"),
            ("EventTypes", "*"),
            ("WebhookUrl", "https://example.com/hook"),
            ("Status", "disabled"),
        ];
        webhooks.push(sid(app.post(&format!("/v2/Services/{service}/Webhooks"), &hook).await));
        let credential = [("Type", "apn"), ("PrivateKey", P8), ("KeyId", "ABC123DEFG"), ("TeamId", "TEAM123456")];
        credentials.push(sid(app.post("/v1/Credentials", &credential).await));
    }
    let approver = identity();
    let (factor, _) = app.verified_factor(service, &approver).await;
    let mut challenges = Vec::new();
    for _ in 0..7 {
        challenges.push(app.challenge(service, &approver, &factor).await["sid"].as_str().unwrap().to_owned());
    }
    challenges.reverse();

    let base = &app.url;
    let lists = [
        List { url: format!("{base}/v2/Services"), filters: String::new(), key: "services", sids: services.clone() },
        List {
            url: format!("{base}/v2/Services/{bare}/Entities"),
            filters: String::new(),
            key: "entities",
            sids: entities,
        },
        List {
            url: format!("{base}/v2/Services/{service}/Entities/{user}/Factors"),
            filters: String::new(),
            key: "factors",
            sids: factors,
        },
        List {
            url: format!("{base}/v2/Services/{service}/Entities/{approver}/Challenges"),
            filters: format!("FactorSid={factor}&Order=desc&"),
            key: "challenges",
            sids: challenges,
        },
        List {
            url: format!("{base}/v2/Services/{service}/Webhooks"),
            filters: String::new(),
            key: "webhooks",
            sids: webhooks,
        },
        List { url: format!("{base}/v1/Credentials"), filters: String::new(), key: "credentials", sids: credentials },
    ];
    for list in &lists {
        walk_with_tokens_alone(&app, list).await;
    }
}
