//! Paging: `meta`, `next_page_url`/`previous_page_url` followed verbatim, tokens and sizes.

use crate::helpers::{identity, on_both_backends, TestApp};

on_both_backends!(lists_page_forward_and_back_by_token, paging_parameters_are_validated);

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
        app.get(&format!("{path}?Page=-1")).await.assert_error(400, 60200);
        app.get(&format!("{path}?PageSize=1000")).await.assert_status(200);
    }
}
