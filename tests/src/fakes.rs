//! Local fakes of the push services: a server that records every request and answers from a
//! script. Over TLS it speaks HTTP/2 only (as APNs does) and can require a client certificate;
//! in plain mode it speaks HTTP/1.1 (the FCM and OAuth endpoints). Port 0, or a port reserved
//! earlier, so a test can start it late ("the receiver was down").

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;

/// A request the fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub version: hyper::Version,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// The common name of the client certificate, when one was presented.
    pub client_cn: Option<String>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Decides the answer to a request: (status, JSON body).
pub type Responder = Arc<dyn Fn(&Recorded) -> (u16, String) + Send + Sync>;

#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<Recorded>>>);

impl Log {
    pub fn all(&self) -> Vec<Recorded> {
        self.0.lock().unwrap().clone()
    }
    pub fn to_path(&self, fragment: &str) -> Vec<Recorded> {
        self.all().into_iter().filter(|r| r.path.contains(fragment)).collect()
    }
}

/// A scripted sequence of statuses, then `then` for every later request.
pub fn script(statuses: &[(u16, &str)], then: (u16, &str)) -> Responder {
    let queue: Mutex<VecDeque<(u16, String)>> =
        Mutex::new(statuses.iter().map(|(s, b)| (*s, (*b).to_owned())).collect());
    let then = (then.0, then.1.to_owned());
    Arc::new(move |_| queue.lock().unwrap().pop_front().unwrap_or_else(|| then.clone()))
}

/// A local CA that signs the fake's server certificate and, for client-certificate auth,
/// client certificates.
pub struct TestCa {
    pub pem: String,
    key: KeyPair,
    params: CertificateParams,
}

impl TestCa {
    pub fn new() -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, "fake push CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let pem = params.self_signed(&key).unwrap().pem();
        TestCa { pem, key, params }
    }

    /// A certificate for `cn` (and `localhost`/`127.0.0.1`), with its key: (cert PEM, key PEM).
    pub fn issue(&self, cn: &str) -> (String, String) {
        self.issue_for(cn, KeyPair::generate().unwrap())
    }

    /// A certificate for `cn` whose public key is that of `key_pem` (PKCS#8: P-256, or RSA).
    pub fn issue_with_key(&self, cn: &str, key_pem: &str) -> String {
        self.issue_for(cn, KeyPair::from_pem(key_pem).unwrap()).0
    }

    fn issue_for(&self, cn: &str, key: KeyPair) -> (String, String) {
        let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

pub struct Fake {
    pub addr: SocketAddr,
    pub log: Log,
    /// How long each answer is held back after its request is recorded (none at first).
    #[allow(dead_code, reason = "used by server/tests/multi_instance.rs, which includes this file")]
    pub hold: Hold,
}

/// A delay the fake waits, after recording a request, before it answers: a slow receiver, so
/// that requests are in flight (their sender waiting) for a while. Changed while the fake runs.
#[derive(Clone, Default)]
pub struct Hold(Arc<AtomicU64>);

impl Hold {
    #[allow(dead_code, reason = "used by server/tests/multi_instance.rs, which includes this file")]
    pub fn set(&self, delay: Duration) {
        self.0.store(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    async fn wait(&self) {
        let millis = self.0.load(Ordering::Relaxed);
        if millis > 0 {
            tokio::time::sleep(Duration::from_millis(millis)).await;
        }
    }
}

impl Fake {
    pub fn url(&self, tls: bool) -> String {
        format!("{}://127.0.0.1:{}", if tls { "https" } else { "http" }, self.addr.port())
    }

    /// Starts on `listener`. With `tls`, serves HTTP/2 over TLS with a certificate from `ca`,
    /// requiring client certificates signed by `ca` when `client_auth`.
    pub async fn start(listener: TcpListener, tls: Option<(&TestCa, bool)>, responder: Responder) -> Fake {
        Fake::start_slow(listener, tls, responder, Duration::ZERO).await
    }

    /// [`Fake::start`], answering each request `latency` after it arrived (so that requests
    /// made at once are all in flight together).
    pub async fn start_slow(
        listener: TcpListener,
        tls: Option<(&TestCa, bool)>,
        responder: Responder,
        latency: Duration,
    ) -> Fake {
        let addr = listener.local_addr().unwrap();
        let (log, hold) = (Log::default(), Hold::default());
        let responder = Arc::new(Mutex::new(responder));
        let acceptor = tls.map(|(ca, client_auth)| tls_acceptor(ca, client_auth));
        let (task_log, task_responder, task_hold) = (log.clone(), responder.clone(), hold.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (log, responder, acceptor) = (task_log.clone(), task_responder.clone(), acceptor.clone());
                let hold = task_hold.clone();
                tokio::spawn(async move {
                    match acceptor {
                        Some(acceptor) => {
                            let Ok(tls) = acceptor.accept(stream).await else { return };
                            let cn = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(common_name);
                            let service = hyper::service::service_fn(move |req| {
                                handle(req, cn.clone(), log.clone(), responder.clone(), hold.clone(), latency)
                            });
                            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                                .serve_connection(TokioIo::new(tls), service)
                                .await;
                        }
                        None => {
                            let service = hyper::service::service_fn(move |req| {
                                handle(req, None, log.clone(), responder.clone(), hold.clone(), latency)
                            });
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                    }
                });
            }
        });
        Fake { addr, log, hold }
    }
}

async fn handle(
    req: Request<Incoming>,
    client_cn: Option<String>,
    log: Log,
    responder: Arc<Mutex<Responder>>,
    hold: Hold,
    latency: Duration,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let method = req.method().to_string();
    let path = req.uri().path_and_query().map(ToString::to_string).unwrap_or_default();
    let version = req.version();
    let headers = req.headers().iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned())).collect();
    let body = String::from_utf8_lossy(&req.into_body().collect().await?.to_bytes()).into_owned();
    let recorded = Recorded { method, path, version, headers, body, client_cn };
    let respond = responder.lock().unwrap().clone();
    let (status, body) = respond(&recorded);
    log.0.lock().unwrap().push(recorded);
    hold.wait().await;
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap())
}

fn tls_acceptor(ca: &TestCa, client_auth: bool) -> tokio_rustls::TlsAcceptor {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (cert_pem, key_pem) = ca.issue("localhost");
    let chain = vec![pem_cert(&cert_pem)];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pem_der(&key_pem)));
    let builder =
        rustls::ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions().unwrap();
    let mut config = if client_auth {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pem_cert(&ca.pem)).unwrap();
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build().unwrap();
        builder.with_client_cert_verifier(verifier).with_single_cert(chain, key).unwrap()
    } else {
        builder.with_no_client_auth().with_single_cert(chain, key).unwrap()
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

fn pem_der(pem: &str) -> Vec<u8> {
    use base64::Engine;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(body).unwrap()
}

fn pem_cert(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from(pem_der(pem))
}

/// The subject CN of a DER certificate (found by its OID, 2.5.4.3).
fn common_name(cert: &CertificateDer<'_>) -> String {
    let der = cert.as_ref();
    let oid = [0x06, 0x03, 0x55, 0x04, 0x03];
    // The last CN in the certificate is the subject's (the issuer's comes first).
    let at = der.windows(oid.len()).rposition(|w| w == oid).unwrap();
    let len = usize::from(der[at + oid.len() + 1]);
    let start = at + oid.len() + 2;
    String::from_utf8_lossy(&der[start..start + len]).into_owned()
}
