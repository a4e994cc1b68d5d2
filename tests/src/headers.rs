//! Header names on the wire. The SDKs look headers up by their exact names (`Date`,
//! `Twilio-Verify-Signature-Fields`; docs/protocol/device-protocol.md#response-headers: plain map
//! subscripts), so a case-sensitive header map on the device misses lowercase names. These tests
//! read the raw response bytes, which no HTTP client library would show: every header line of
//! representative responses, over HTTP/1.1 and over HTTPS.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use verify_push_client::{jwt, Style};
use verify_push_server::clock::Clock;

use crate::helpers::{on_both_backends, spawn_app_with, Sqlite, TestApp};

on_both_backends!(every_header_name_goes_out_in_canonical_case);

/// Sends one raw HTTP/1.1 request (`Connection: close`) and returns the status and the header
/// lines, exactly as the server wrote them.
async fn exchange(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    method: &str,
    path: &str,
    basic: Option<(&str, &str)>,
    form: &str,
) -> (u16, Vec<String>) {
    use base64::Engine;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if let Some((user, password)) = basic {
        let credentials = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        request.push_str(&format!("Authorization: Basic {credentials}\r\n"));
    }
    if !form.is_empty() {
        request.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{form}", form.len()));
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    // A TLS peer may end without close_notify after `Connection: close`; the bytes are all there.
    let _ = stream.read_to_end(&mut raw).await;
    let text = String::from_utf8(raw).unwrap();
    let head = text.split("\r\n\r\n").next().unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    (status, lines.map(str::to_owned).collect())
}

async fn plain(app: &TestApp, method: &str, path: &str, basic: Option<(&str, &str)>, form: &str) -> (u16, Vec<String>) {
    let address = app.url.trim_start_matches("http://");
    exchange(tokio::net::TcpStream::connect(address).await.unwrap(), method, path, basic, form).await
}

/// The spelling the SDKs and Twilio use: each dash-separated word capitalised. (RFC 9110 spells
/// one name otherwise, `WWW-Authenticate`; actix-http writes names either lowercase or in this
/// form, and no SDK reads that header. Names are case-insensitive in HTTP.)
fn canonical(name: &str) -> String {
    name.split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map_or_else(String::new, |c| c.to_ascii_uppercase().to_string() + &chars.as_str().to_ascii_lowercase())
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// Asserts that every header line is `Canonical-Name: value` and that `expected` are among them;
/// returns the names.
#[track_caller]
fn assert_canonical(what: &str, lines: &[String], expected: &[&str]) -> Vec<String> {
    let names: Vec<String> = lines.iter().map(|l| l.split_once(": ").unwrap().0.to_owned()).collect();
    for name in &names {
        assert_eq!(*name, canonical(name), "{what}: header line {name:?} is not in canonical case ({lines:?})");
    }
    for name in expected {
        assert!(names.iter().any(|n| n == name), "{what}: no {name:?} header line in {lines:?}");
    }
    names
}

async fn every_header_name_goes_out_in_canonical_case(app: TestApp) {
    let account = (app.account.user.as_str(), app.account.password.as_str());
    let (status, lines) = plain(&app, "POST", "/v2/Services", Some(account), "FriendlyName=Headers").await;
    assert_eq!(status, 201);
    assert_canonical("201 create", &lines, &["Content-Type", "Content-Length", "Date"]);

    let service = app.service().await;
    let (status, lines) = plain(&app, "GET", &format!("/v2/Services/{service}"), Some(account), "").await;
    assert_eq!(status, 200);
    assert_canonical("200 fetch", &lines, &["Content-Type", "Content-Length", "Date"]);

    let (status, lines) = plain(&app, "GET", "/v2/Services", None, "").await;
    assert_eq!(status, 401);
    assert_canonical("401", &lines, &["Www-Authenticate", "Content-Type", "Date"]);

    let (status, lines) = plain(&app, "GET", "/v2/Nothing/Here", Some(account), "").await;
    assert_eq!(status, 404);
    assert_canonical("404 default", &lines, &["Content-Type", "Date"]);
    let (status, lines) = plain(&app, "PUT", "/v2/Services", Some(account), "").await;
    assert_eq!(status, 405);
    assert_canonical("405 default", &lines, &["Content-Type", "Date"]);

    let (device_service, device) = crate::device::enrolled_device(&app, Style::Android, 0).await;
    let user = device.profile.identity.clone();
    let factor = device.profile.factor_sid.clone().unwrap();
    let challenge = app.challenge(&device_service, &user, &factor).await["sid"].as_str().unwrap().to_owned();
    let token = jwt::factor_jwt(
        &device.profile.signing_key().unwrap(),
        Style::Android,
        device.profile.credential_sid.as_deref().unwrap(),
        device.profile.account_sid.as_deref().unwrap(),
        app.clock.now(),
    );
    let path = format!("/v2/Services/{device_service}/Entities/{user}/Challenges/{challenge}");
    let (status, lines) = plain(&app, "GET", &path, Some(("token", &token)), "").await;
    assert_eq!(status, 200);
    assert_canonical("device challenge fetch", &lines, &["Twilio-Verify-Signature-Fields", "Date", "Content-Type"]);

    let (status, lines) = plain(&app, "DELETE", &format!("/v2/Services/{service}"), Some(account), "").await;
    assert_eq!(status, 204);
    assert_canonical("204 delete", &lines, &["Date"]);
}

/// An HTTPS server with a self-signed CA in a folder of its own.
async fn https_app() -> (TestApp, std::path::PathBuf) {
    let dir = std::env::temp_dir()
        .join(format!("verify-push-e2e-tls-{}", verify_push_server::domain::sid::random_hex::<6>()));
    let tls_dir = dir.clone();
    (spawn_app_with(Sqlite, move |args| args.tls_self_signed = Some(tls_dir)).await, dir)
}

/// A TLS client trusting the CA in `dir`, offering `alpn`.
fn connector(dir: &std::path::Path, alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
    let ca = std::fs::read(dir.join("ca.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&ca) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

async fn tls_connect(
    app: &TestApp,
    connector: &tokio_rustls::TlsConnector,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(app.url.trim_start_matches("http://")).await?;
    connector.connect(rustls::pki_types::ServerName::try_from("localhost").unwrap(), tcp).await
}

/// HTTPS is HTTP/1.1 (the server is built without HTTP/2; a client offering `h2` first still
/// gets `http/1.1`) and carries the same names.
#[tokio::test]
async fn https_answers_http1_with_canonical_header_names() {
    let (app, dir) = https_app().await;
    let tls = tls_connect(&app, &connector(&dir, &[b"h2", b"http/1.1"])).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]), "HTTP/1.1 is negotiated");
    let account = (app.account.user.as_str(), app.account.password.as_str());
    let (status, lines) = exchange(tls, "GET", "/v2/Services", Some(account), "").await;
    assert_eq!(status, 200);
    assert_canonical("HTTPS 200 list", &lines, &["Content-Type", "Content-Length", "Date"]);
    let _ = std::fs::remove_dir_all(dir);
}

/// A client that speaks only HTTP/2 is refused in the TLS handshake (no common protocol), and
/// the server goes on serving: it must not select `h2`, which it cannot serve.
#[tokio::test]
async fn an_h2_only_tls_client_is_refused_in_the_handshake() {
    let (app, dir) = https_app().await;
    let h2_only = connector(&dir, &[b"h2"]);
    for _ in 0..3 {
        let refused = tls_connect(&app, &h2_only).await;
        let error = refused.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("NoApplicationProtocol"), "refused for want of a protocol: {error:?}");
    }
    let http1 = connector(&dir, &[b"http/1.1"]);
    let account = (app.account.user.as_str(), app.account.password.as_str());
    let (status, _) =
        exchange(tls_connect(&app, &http1).await.unwrap(), "GET", "/v2/Services", Some(account), "").await;
    assert_eq!(status, 200, "still serving");
    let _ = std::fs::remove_dir_all(dir);
}
