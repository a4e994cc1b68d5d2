//! The emulated clock (README, "Test controls") across real server processes on one database:
//! a change through one instance is read through the other (on PostgreSQL by `NOTIFY`, on
//! either engine by the re-read every second), and the clock survives a restart.
#![expect(clippy::unwrap_used, reason = "tests fail loudly by design")]

mod support;

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;
use support::{call, free_port, on_both_backends, Backend, Database, Server};

on_both_backends!(a_clock_change_reaches_every_instance_and_survives_a_restart);

async fn clock(http: &reqwest::Client, server: &Server) -> Value {
    call(http, Method::GET, &format!("{}/_emulator/Clock", server.url), &[]).await.0
}

async fn a_clock_change_reaches_every_instance_and_survives_a_restart(backend: Backend) {
    let db = Database::fresh(backend, "shared_clock").await;
    let http = reqwest::Client::new();
    let one = Server::start(&db.url, free_port(), &[]).await;
    let two = Server::start(&db.url, free_port(), &[]).await;
    let moved = call(&http, Method::POST, &format!("{}/_emulator/Clock", one.url), &[("Advance", "7200")]).await.0;
    assert_eq!(moved["offset_seconds"], 7200);
    let deadline = Instant::now() + Duration::from_secs(5);
    while clock(&http, &two).await["offset_seconds"] != 7200 {
        assert!(Instant::now() < deadline, "the second instance never read the change");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(one);
    drop(two);
    let again = Server::start(&db.url, free_port(), &[]).await;
    let after = clock(&http, &again).await;
    assert!((after["offset_seconds"].as_i64().unwrap() - 7200).abs() <= 1, "kept across a restart: {after}");
    assert_eq!(after["frozen"], false);
}
