//! SIGTERM answers what already arrived. Requests sent on keep-alive connections just before
//! the signal each get a complete answer — those wholly arrived, and those still in transit
//! (part of the request arrived before the signal, the rest after); connections that sent
//! nothing are closed cleanly (end of stream, no reset); the process exits on its own,
//! successfully.
#![expect(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly by design")]

mod support;

use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::{free_port, on_both_backends, Backend, Database, Server, ACCOUNT, TOKEN};

const BUSY: usize = 32;
const IDLE: usize = 4;
const DEADLINE: Duration = Duration::from_secs(20);

/// What one connection got after the signal.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// A complete response (headers and every byte of the body) with this status.
    Answered(u16),
    /// End of stream before any byte of a response.
    ClosedCleanly,
    /// End of stream in the middle of a response.
    Truncated(String),
    /// A read error (a reset).
    Failed(String),
    /// Nothing within the deadline.
    Hung,
}

fn request(method: &str, path: &str, form: &str) -> Vec<u8> {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT}:{TOKEN}"));
    format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {auth}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    )
    .into_bytes()
}

/// Reads one response off a keep-alive connection.
async fn read_response(stream: &mut TcpStream) -> Outcome {
    let read = async {
        let mut bytes = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&bytes[..end]).to_string();
                let length = head
                    .lines()
                    .find_map(|l| l.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case("content-length")))
                    .map_or(0, |(_, v)| v.trim().parse::<usize>().unwrap());
                if bytes.len() >= end + 4 + length {
                    return Outcome::Answered(head.split(' ').nth(1).unwrap().parse().unwrap());
                }
            }
            match stream.read(&mut chunk).await {
                Ok(0) if bytes.is_empty() => return Outcome::ClosedCleanly,
                Ok(0) => return Outcome::Truncated(String::from_utf8_lossy(&bytes).to_string()),
                Ok(n) => bytes.extend_from_slice(&chunk[..n]),
                Err(e) => return Outcome::Failed(e.to_string()),
            }
        }
    };
    tokio::time::timeout(DEADLINE, read).await.unwrap_or(Outcome::Hung)
}

/// Opens a connection and makes it a used keep-alive one (a first request answered).
async fn keep_alive_connection(port: u16, service: &str) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.write_all(&request("GET", &format!("/v2/Services/{service}"), "")).await.unwrap();
    assert_eq!(read_response(&mut stream).await, Outcome::Answered(200));
    stream
}

async fn requests_begun_before_sigterm_are_answered(db: &str) {
    let port = free_port();
    let mut server = Server::start(db, port, &[]).await;
    let http = reqwest::Client::new();
    let created = support::call(
        &http,
        reqwest::Method::POST,
        &format!("{}/v2/Services", server.url),
        &[("FriendlyName", "Drain")],
    )
    .await;
    let service = created.0["sid"].as_str().unwrap().to_owned();

    let mut busy = Vec::new();
    for _ in 0..BUSY {
        busy.push(keep_alive_connection(port, &service).await);
    }
    let mut idle = Vec::new();
    for _ in 0..IDLE {
        idle.push(keep_alive_connection(port, &service).await);
    }
    // Half read, half write (a new Entity each). Every other request is in transit at
    // the signal: half its head is sent before, the rest once the server shows that it is
    // shutting down.
    let mut rests = Vec::new();
    for (i, stream) in busy.iter_mut().enumerate() {
        let bytes = if matches!(i % 4, 1 | 2) {
            request("GET", &format!("/v2/Services/{service}"), "")
        } else {
            request("POST", &format!("/v2/Services/{service}/Entities"), &format!("Identity=drain-identity-{i}"))
        };
        let split = if i % 2 == 0 { bytes.len() } else { bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap() / 2 };
        stream.write_all(&bytes[..split]).await.unwrap();
        rests.push(bytes[split..].to_vec());
    }
    let kill = std::process::Command::new("kill").arg("-TERM").arg(server.child.id().to_string()).status().unwrap();
    assert!(kill.success(), "kill -TERM");
    wait_for_shutdown_to_begin(port).await;
    for (stream, rest) in busy.iter_mut().zip(&rests) {
        // A write to a connection the server has dropped fails; the read below tells.
        let _ = stream.write_all(rest).await;
    }

    let outcomes = futures_util::future::join_all(busy.iter_mut().map(read_response)).await;
    let expected: Vec<Outcome> =
        (0..BUSY).map(|i| Outcome::Answered(if matches!(i % 4, 1 | 2) { 200 } else { 201 })).collect();
    let unanswered = outcomes.iter().zip(&expected).filter(|(got, want)| got != want).count();
    assert_eq!(outcomes, expected, "{unanswered} of {BUSY} requests begun before SIGTERM got no complete answer (the odd ones were in transit at the signal)");

    for outcome in futures_util::future::join_all(idle.iter_mut().map(read_response)).await {
        assert_eq!(outcome, Outcome::ClosedCleanly, "a connection that sent nothing is closed without a reset");
    }
    let status = exited_within(&mut server.child, DEADLINE).await.expect("the server exits after SIGTERM");
    assert!(status.success(), "exit status {status}");
}

/// Polls `/healthz`, on a new connection each time, until the server shows that its shutdown has
/// begun: it answers 503 (`draining`) with `Connection: close`, so a load balancer stops sending
/// it requests while the open ones are answered. (An answer that already closes its connection
/// may still be a 200 computed just before the signal was seen: poll again.)
async fn wait_for_shutdown_to_begin(port: u16) {
    let until = std::time::Instant::now() + DEADLINE;
    while std::time::Instant::now() < until {
        let mut probe = TcpStream::connect(("127.0.0.1", port)).await.expect("the server accepts while it drains");
        probe.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match probe.read(&mut byte).await {
                Ok(1) => head.push(byte[0]),
                other => panic!("/healthz got no complete answer while draining: {other:?}"),
            }
        }
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        if head.starts_with("http/1.1 503") {
            assert!(head.contains("\r\nconnection: close\r\n"), "a draining answer closes its connection: {head}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("/healthz never answered 503 after SIGTERM");
}

/// Polls until `child` has exited (its status) or `deadline` has passed (`None`).
async fn exited_within(child: &mut std::process::Child, deadline: Duration) -> Option<std::process::ExitStatus> {
    let until = std::time::Instant::now() + deadline;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if std::time::Instant::now() >= until {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn requests_begun_before_sigterm_are_answered_on(backend: Backend) {
    let db = Database::fresh(backend, "drain").await;
    requests_begun_before_sigterm_are_answered(&db.url).await;
}

/// An open live event stream (`/_emulator/Events`) never ends by itself: at SIGTERM it ends, so
/// the shutdown does not wait `--shutdown-timeout` for it (found running the examples: each
/// server stop took the whole 30 s while a test's stream was open).
async fn an_open_event_stream_ends_at_sigterm_on(backend: Backend) {
    let db = Database::fresh(backend, "drain_events").await;
    let mut server = Server::start(&db.url, free_port(), &[("VERIFY_PUSH_SHUTDOWN_TIMEOUT", "120")]).await;
    let mut stream = reqwest::Client::new()
        .get(format!("{}/_emulator/Events", server.url))
        .basic_auth(ACCOUNT, Some(TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let first = stream.chunk().await.unwrap().expect("the stream opens with its retry hint");
    assert!(String::from_utf8_lossy(&first).starts_with("retry:"), "{first:?}");
    let kill = std::process::Command::new("kill").arg("-TERM").arg(server.child.id().to_string()).status().unwrap();
    assert!(kill.success(), "kill -TERM");
    let ended = tokio::time::timeout(DEADLINE, async { while let Ok(Some(_)) = stream.chunk().await {} }).await;
    assert!(ended.is_ok(), "the event stream stayed open after SIGTERM");
    let status = exited_within(&mut server.child, DEADLINE).await.expect("the server exits after SIGTERM");
    assert!(status.success(), "exit status {status}");
}

on_both_backends!(requests_begun_before_sigterm_are_answered_on, an_open_event_stream_ends_at_sigterm_on);
