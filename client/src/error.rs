//! Errors of the device: Twilio's error envelope, transport failures, protocol surprises.

/// A failed device operation.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The API answered with an error; `code` and `message` come from Twilio's envelope.
    #[error("HTTP {status}: {message} (Twilio code {})", code.map_or_else(|| "none".to_owned(), |c| c.to_string()))]
    Api { status: u16, code: Option<u32>, message: String, more_info: Option<String> },
    /// The server could not be reached or the exchange broke.
    #[error("transport error: {0}")]
    Transport(#[from] reqwest::Error),
    /// The server answered something the SDKs would not accept.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The challenge cannot be answered: it is not pending (the SDKs' local check).
    #[error("challenge {sid} is {status}, not pending")]
    NotPending { sid: String, status: String },
    /// The answer was accepted but a re-read shows another status (the SDKs'
    /// `NotUpdatedChallengeException`).
    #[error("challenge {sid} was not updated: it is {status}")]
    NotUpdated { sid: String, status: String },
    /// The key store could not be read or written.
    #[error("key store: {0}")]
    Store(String),
}

impl DeviceError {
    /// The Twilio error code, when the API gave one.
    pub fn code(&self) -> Option<u32> {
        match self {
            DeviceError::Api { code, .. } => *code,
            _ => None,
        }
    }

    /// The HTTP status, when the API answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            DeviceError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Reads Twilio's `{code, message, more_info, status}` from an error body (anything else
    /// still yields an error, with the body as message).
    pub fn from_response(status: u16, body: &str) -> DeviceError {
        let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
        let field = |name: &str| parsed.as_ref().and_then(|v| v.get(name)).cloned();
        let code = field("code")
            .and_then(|c| c.as_u64().or_else(|| c.as_str()?.parse().ok()))
            .and_then(|c| u32::try_from(c).ok());
        let message = field("message").and_then(|m| m.as_str().map(str::to_owned)).unwrap_or_else(|| {
            if body.is_empty() {
                "(empty body)".to_owned()
            } else {
                body.chars().take(200).collect()
            }
        });
        let more_info = field("more_info").and_then(|m| m.as_str().map(str::to_owned));
        DeviceError::Api { status, code, message, more_info }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twilio_envelopes_become_typed_errors() {
        let e = DeviceError::from_response(
            403,
            r#"{"code":60324,"message":"Challenge verification failed","more_info":"https://www.twilio.com/docs/errors/60324","status":403}"#,
        );
        assert_eq!(e.code(), Some(60324));
        assert_eq!(e.status(), Some(403));
        assert!(e.to_string().contains("Challenge verification failed"));
        let e = DeviceError::from_response(502, "<html>bad gateway</html>");
        assert_eq!(e.code(), None);
        assert!(e.to_string().contains("bad gateway"));
    }
}
