//! `/_emulator/pushes` while the worker records attempts underneath it: each push is shown with
//! exactly the attempts of the state it is shown in.

use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;
use verify_push_server::store::Backend;

use super::{app_with, challenge, fake, fcm_credential, google, push_when_drained, service_with, TestApp};
use crate::helpers::for_each_backend;

for_each_backend!(the_push_list_shows_each_push_with_the_attempts_of_its_state);

/// What a push of the list below may show with the clock frozen (each push is claimed once,
/// and its only attempt is refused with 500): no attempt before the attempt is recorded,
/// exactly that attempt after.
fn consistent(push: &Value) -> Result<(), String> {
    let attempts = push["attempts"].as_array().map_or(&[][..], Vec::as_slice);
    let fine = match push["status"].as_str().unwrap_or_default() {
        "queued" | "sending" => attempts.is_empty(),
        "retrying" => attempts.len() == 1 && attempts[0]["outcome"] == "retry" && attempts[0]["http_status"] == 500,
        _ => false,
    };
    if fine {
        Ok(())
    } else {
        Err(format!("status {} with attempts {}", push["status"], push["attempts"]))
    }
}

/// Lists the pushes again and again until `done`, checking each push shown; returns how many
/// push states it saw and what was inconsistent.
async fn watch(app: &TestApp, done: &AtomicBool) -> (usize, Vec<String>) {
    let (mut seen, mut wrong) = (0, Vec::new());
    while !done.load(Ordering::Relaxed) {
        let reply = app.get("/_emulator/pushes?PageSize=100").await;
        for push in reply.assert_status(200)["pushes"].as_array().unwrap() {
            seen += 1;
            if let Err(e) = consistent(push) {
                wrong.push(e);
            }
        }
    }
    (seen, wrong)
}

async fn the_push_list_shows_each_push_with_the_attempts_of_its_state(backend: Backend) {
    const PUSHES: usize = 30;
    let refusals = vec![(500, r#"{"error": {"status": "INTERNAL"}}"#); PUSHES];
    let google = fake(None, google(refusals)).await;
    let url = google.url(false);
    let app = app_with(backend, None, |a| a.fcm_url = url.clone()).await;
    let credential = fcm_credential(&app, &format!("{url}/token")).await;
    let (service, user, factor) = service_with(&app, "fcm", Some(&credential)).await;
    let done = AtomicBool::new(false);
    // Four readers list the pushes while each new challenge's push is claimed, sent, refused
    // and recorded; a reader whose list straddles a recorded attempt shows that push in one
    // state with the attempts of another.
    let make = async {
        let mut sids = Vec::new();
        for i in 0..PUSHES {
            sids.push(challenge(&app, &service, &user, &factor, &format!("Watched {i}")).await);
        }
        for sid in &sids {
            push_when_drained(&app, sid, "retrying").await;
        }
        done.store(true, Ordering::Relaxed);
    };
    let (_, a, b, c, d) =
        tokio::join!(make, watch(&app, &done), watch(&app, &done), watch(&app, &done), watch(&app, &done));
    let seen = a.0 + b.0 + c.0 + d.0;
    let wrong: Vec<String> = [a.1, b.1, c.1, d.1].concat();
    assert!(seen >= PUSHES, "the readers saw {seen} push states");
    assert!(wrong.is_empty(), "{} of {seen} push states were inconsistent, e.g. {}", wrong.len(), wrong[0]);
    assert_eq!(google.log.to_path("messages:send").len(), PUSHES, "one attempt per push");
}
