//! A minimal HTTP/1.1 keep-alive client for the timed phase.
//!
//! Requests are rendered to bytes before the timed phase ([`render`]), so sending one is a single
//! `write_all`; a response is read with `Content-Length` (or chunked) framing. This keeps the
//! load generator's share of the machine's two cores small: it does no header maps, no URL
//! parsing and no per-request allocation beyond the response body.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A parsed response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    /// `Twilio-Verify-Signature-Fields`, when present.
    pub signature_fields: Option<String>,
}

impl Response {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Renders a complete request. `auth` is the whole `Authorization` value (`Basic …`).
pub fn render(method: &str, host: &str, path: &str, auth: &str, body: Option<&str>) -> Vec<u8> {
    let mut out = String::with_capacity(256 + path.len() + body.map_or(0, str::len));
    out.push_str(method);
    out.push(' ');
    out.push_str(path);
    out.push_str(" HTTP/1.1\r\nHost: ");
    out.push_str(host);
    out.push_str("\r\nAuthorization: ");
    out.push_str(auth);
    out.push_str("\r\nAccept: application/json\r\nUser-Agent: verify-push-bench\r\n");
    match body {
        Some(body) => {
            out.push_str("Content-Type: application/x-www-form-urlencoded\r\nContent-Length: ");
            out.push_str(&body.len().to_string());
            out.push_str("\r\n\r\n");
            out.push_str(body);
        }
        None => out.push_str("\r\n"),
    }
    out.into_bytes()
}

/// One keep-alive connection; reconnects when the server closed it.
pub struct Conn {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    timeout: Duration,
}

impl Conn {
    pub fn new(addr: SocketAddr) -> Conn {
        Conn { addr, stream: None, buf: Vec::with_capacity(16 * 1024), timeout: Duration::from_secs(30) }
    }

    /// Opens the connection now (so that connecting is not part of the first measured request).
    pub async fn connect(&mut self) -> Result<(), String> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(self.addr).await.map_err(|e| format!("connect: {e}"))?;
            stream.set_nodelay(true).map_err(|e| e.to_string())?;
            self.stream = Some(stream);
            self.buf.clear();
        }
        Ok(())
    }

    /// Sends `request` and reads the response. A request on a reused connection that the server
    /// had closed (EOF before any byte) is retried once on a new connection.
    pub async fn send(&mut self, request: &[u8]) -> Result<Response, String> {
        let reused = self.stream.is_some();
        let result = match self.attempt(request).await {
            Err(Some(Failure::ClosedBeforeResponse)) if reused => self.attempt(request).await,
            result => result,
        };
        result.map_err(|failure| match failure {
            Some(failure) => failure.to_string(),
            None => format!("timed out after {} s", self.timeout.as_secs_f64()),
        })
    }

    /// One exchange within the timeout (`Err(None)`: timed out); any failure drops the connection.
    async fn attempt(&mut self, request: &[u8]) -> Result<Response, Option<Failure>> {
        let result = match tokio::time::timeout(self.timeout, self.exchange(request)).await {
            Ok(result) => result.map_err(Some),
            Err(_) => Err(None),
        };
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    async fn exchange(&mut self, request: &[u8]) -> Result<Response, Failure> {
        self.connect().await.map_err(Failure::Io)?;
        let Some(stream) = self.stream.as_mut() else { return Err(Failure::Io("no connection".into())) };
        if let Err(e) = stream.write_all(request).await {
            return Err(if is_reset(&e) { Failure::ClosedBeforeResponse } else { Failure::Io(format!("write: {e}")) });
        }
        let response = read_response(stream, &mut self.buf).await?;
        if response.1 {
            self.stream = None;
        }
        Ok(response.0)
    }
}

fn is_reset(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
    )
}

#[derive(Debug)]
enum Failure {
    ClosedBeforeResponse,
    Io(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::ClosedBeforeResponse => f.write_str("connection closed before a response"),
            Failure::Io(e) => f.write_str(e),
        }
    }
}

async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<usize, Failure> {
    let start = buf.len();
    buf.resize(start + 8192, 0);
    let read = stream.read(&mut buf[start..]).await;
    match read {
        Ok(n) => {
            buf.truncate(start + n);
            Ok(n)
        }
        Err(e) => {
            buf.truncate(start);
            Err(if is_reset(&e) { Failure::ClosedBeforeResponse } else { Failure::Io(format!("read: {e}")) })
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Reads one response from `stream` (bytes already buffered in `buf` first). Returns it and
/// whether the server asked to close the connection.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(Response, bool), Failure> {
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i + 4;
        }
        if fill(stream, buf).await? == 0 {
            return Err(if buf.is_empty() {
                Failure::ClosedBeforeResponse
            } else {
                Failure::Io("connection closed inside the response head".into())
            });
        }
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| Failure::Io("response head is not UTF-8".into()))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Failure::Io(format!("bad status line {status_line:?}")))?;
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    let mut close = false;
    let mut signature_fields = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = value.parse().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        } else if name.eq_ignore_ascii_case("twilio-verify-signature-fields") {
            signature_fields = Some(value.to_owned());
        }
    }
    buf.drain(..head_end);
    let body = if chunked {
        read_chunked(stream, buf).await?
    } else if let Some(len) = content_length {
        while buf.len() < len {
            if fill(stream, buf).await? == 0 {
                return Err(Failure::Io("connection closed inside the body".into()));
            }
        }
        buf.drain(..len).collect()
    } else if status == 204 || status == 304 || (100..200).contains(&status) {
        Vec::new()
    } else {
        // Delimited by the end of the connection.
        while fill(stream, buf).await? > 0 {}
        close = true;
        std::mem::take(buf)
    };
    Ok((Response { status, body, signature_fields }, close))
}

async fn read_chunked(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Vec<u8>, Failure> {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(i) = find(buf, b"\r\n") {
                break i;
            }
            if fill(stream, buf).await? == 0 {
                return Err(Failure::Io("connection closed inside a chunk".into()));
            }
        };
        let size_text = std::str::from_utf8(&buf[..line_end]).unwrap_or("");
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| Failure::Io(format!("bad chunk size {size_text:?}")))?;
        buf.drain(..line_end + 2);
        if size == 0 {
            // Trailers end with an empty line.
            loop {
                if let Some(i) = find(buf, b"\r\n") {
                    let empty = i == 0;
                    buf.drain(..i + 2);
                    if empty {
                        return Ok(body);
                    }
                } else if fill(stream, buf).await? == 0 {
                    return Err(Failure::Io("connection closed inside the trailers".into()));
                }
            }
        }
        while buf.len() < size + 2 {
            if fill(stream, buf).await? == 0 {
                return Err(Failure::Io("connection closed inside a chunk".into()));
            }
        }
        body.extend_from_slice(&buf[..size]);
        buf.drain(..size + 2);
    }
}

/// `GET /healthz` once; the status code, if the server answered at all.
pub async fn healthz(addr: SocketAddr) -> Option<u16> {
    let mut conn = Conn::new(addr);
    conn.timeout = Duration::from_secs(2);
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    conn.send(request.as_bytes()).await.ok().map(|r| r.status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    async fn serve_once(reply: &'static [u8]) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        tokio::spawn(async move {
            if let Ok((mut socket, _)) = listener.accept().await {
                let mut request = vec![0u8; 4096];
                let _ = socket.read(&mut request).await;
                let _ = socket.write_all(reply).await;
                let _ = socket.shutdown().await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn reads_content_length_and_chunked_bodies_and_the_signature_fields_header() {
        let addr = serve_once(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTwilio-Verify-Signature-Fields: sid,details\r\n\r\nhello",
        )
        .await;
        let response = Conn::new(addr).send(&render("GET", "h", "/x", "Basic eA==", None)).await;
        let response = response.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((response.status, response.text().as_str()), (200, "hello"));
        assert_eq!(response.signature_fields.as_deref(), Some("sid,details"));

        let addr =
            serve_once(b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
                .await;
        let response = Conn::new(addr).send(&render("POST", "h", "/x", "Basic eA==", Some("a=1"))).await;
        let response = response.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((response.status, response.text().as_str()), (201, "abcde"));
    }

    #[test]
    fn rendered_requests_carry_length_and_auth() {
        let text =
            String::from_utf8(render("POST", "127.0.0.1:1", "/v2/x", "Basic abc", Some("A=1&B=2"))).unwrap_or_default();
        assert!(text.starts_with("POST /v2/x HTTP/1.1\r\nHost: 127.0.0.1:1\r\nAuthorization: Basic abc\r\n"));
        assert!(text.ends_with("Content-Length: 7\r\n\r\nA=1&B=2"));
    }
}
