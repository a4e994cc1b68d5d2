//! The device: one method per call the Verify Push SDKs make
//! (docs/protocol/device-protocol.md#endpoints-the-sdks-call).
//!
//! Every call after enrolment is authenticated by a fresh factor JWT. When the server answers 401
//! with a `Date` header, the device learns the clock difference, keeps it, and retries once,
//! exactly as the SDKs do (docs/protocol/device-protocol.md#clock-sync). Deleting counts 404, and a
//! 401 on the retry, as success (docs/protocol/device-protocol.md#deleting-a-factor).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::{Method, StatusCode};
use serde_json::{Map, Value};

use crate::encoding::Style;
use crate::error::DeviceError;
use crate::jwt;
use crate::keystore::{KeyStore, Profile};

/// A Factor as the SDKs read it (docs/protocol/device-protocol.md#factor-response).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Factor {
    pub sid: String,
    pub account_sid: String,
    pub credential_sid: String,
    pub friendly_name: String,
    pub status: String,
    pub date_created: String,
}

/// A Challenge as the SDKs read it
/// (docs/protocol/device-protocol.md#challenge-fields-the-sdks-read), with its full JSON and, for a
/// fetched pending one, the fields to sign.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Challenge {
    pub sid: String,
    pub factor_sid: String,
    pub status: String,
    pub message: String,
    pub fields: Vec<(String, String)>,
    pub date_created: String,
    pub expiration_date: String,
    #[serde(skip)]
    pub json: Map<String, Value>,
    #[serde(skip)]
    pub signature_fields: Option<Vec<String>>,
}

/// One page of a Challenge list, with the page tokens taken from `meta`'s URLs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChallengePage {
    pub challenges: Vec<Challenge>,
    pub page: i64,
    pub page_size: i64,
    pub next_page_token: Option<String>,
    pub previous_page_token: Option<String>,
}

/// The list call's parameters (docs/protocol/device-protocol.md#listing-challenges).
#[derive(Debug, Clone)]
pub struct ListOptions {
    pub status: Option<String>,
    /// `asc` or `desc`.
    pub order: String,
    pub page_size: u32,
    pub page_token: Option<String>,
}

impl Default for ListOptions {
    fn default() -> Self {
        ListOptions { status: None, order: "asc".into(), page_size: 50, page_token: None }
    }
}

/// How a device talks: TLS trust and a simulated clock error.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    /// A PEM CA to trust besides the public roots.
    pub ca_cert_pem: Option<Vec<u8>>,
    /// Seconds this device's clock is wrong by (to test the SDKs' re-sync).
    pub clock_error: i64,
}

/// A Verify Push device.
pub struct Device {
    pub profile: Profile,
    http: reqwest::Client,
    store: Option<KeyStore>,
    clock_error: i64,
    resyncs: u32,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device").field("profile", &self.profile).field("resyncs", &self.resyncs).finish_non_exhaustive()
    }
}

struct Reply {
    status: StatusCode,
    date: Option<SystemTime>,
    signature_fields: Option<Vec<String>>,
    body: String,
}

impl Device {
    /// A device for `profile`; with a store, every change to the profile is saved.
    pub fn new(profile: Profile, store: Option<KeyStore>, connection: &Connection) -> Result<Device, DeviceError> {
        let mut builder =
            reqwest::Client::builder().timeout(Duration::from_secs(30)).user_agent(user_agent(profile.style));
        let pem = match (&connection.ca_cert_pem, &profile.ca_cert) {
            (Some(pem), _) => Some(pem.clone()),
            (None, Some(path)) => Some(
                std::fs::read(path)
                    .map_err(|e| DeviceError::Store(format!("CA certificate {}: {e}", path.display())))?,
            ),
            (None, None) => None,
        };
        if let Some(pem) = pem {
            let cert =
                reqwest::Certificate::from_pem(&pem).map_err(|e| DeviceError::Store(format!("CA certificate: {e}")))?;
            builder = builder.add_root_certificate(cert);
        }
        Ok(Device { profile, http: builder.build()?, store, clock_error: connection.clock_error, resyncs: 0 })
    }

    /// How many times this device re-synced its clock from a 401's `Date` and retried.
    pub fn resyncs(&self) -> u32 {
        self.resyncs
    }

    fn local_now(&self) -> i64 {
        let system = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        system + self.clock_error + self.profile.time_correction
    }

    fn save(&self) -> Result<(), DeviceError> {
        match &self.store {
            Some(store) => store.save(&self.profile),
            None => Ok(()),
        }
    }

    fn entity_url(&self) -> String {
        format!("{}Services/{}/Entities/{}", self.profile.base_url, self.profile.service_sid, self.profile.identity)
    }

    fn factor_sid(&self) -> Result<&str, DeviceError> {
        self.profile
            .factor_sid
            .as_deref()
            .ok_or_else(|| DeviceError::Store("this profile has no factor: enroll first".into()))
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        password: &str,
        form: &[(&str, &str)],
    ) -> Result<Reply, DeviceError> {
        let style = self.profile.style;
        let accept = if method == Method::GET { "application/x-www-form-urlencoded" } else { "application/json" };
        let mut request = self
            .http
            .request(method.clone(), url)
            .basic_auth("token", Some(password))
            .header("Accept", accept)
            .header("Content-Type", "application/x-www-form-urlencoded");
        if method == Method::POST {
            request = request.body(style.encode(form));
        } else if method == Method::DELETE && style == Style::Ios {
            request = request.body("");
        }
        let response = request.send().await?;
        let status = response.status();
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let date = header("date").and_then(|d| httpdate::parse_http_date(&d).ok());
        let signature_fields =
            header("twilio-verify-signature-fields").map(|f| f.split(',').map(str::to_owned).collect());
        let body = response.text().await?;
        Ok(Reply { status, date, signature_fields, body })
    }

    /// A factor-JWT call with the SDKs' clock re-sync: one retry after a 401 carrying `Date`.
    async fn signed(&mut self, method: Method, url: &str, form: &[(&str, &str)]) -> Result<(Reply, bool), DeviceError> {
        let key = self.profile.signing_key()?;
        let credential =
            self.profile.credential_sid.clone().ok_or_else(|| DeviceError::Store("not enrolled".into()))?;
        let account = self.profile.account_sid.clone().ok_or_else(|| DeviceError::Store("not enrolled".into()))?;
        let mut retried = false;
        loop {
            let token = jwt::factor_jwt(&key, self.profile.style, &credential, &account, self.local_now());
            let reply = self.send(method.clone(), url, &token, form).await?;
            match (reply.status, reply.date) {
                (StatusCode::UNAUTHORIZED, Some(date)) if !retried => {
                    let server = date.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
                    let system = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
                    self.profile.time_correction = server - (system + self.clock_error);
                    self.resyncs += 1;
                    self.save()?;
                    retried = true;
                }
                _ => return Ok((reply, retried)),
            }
        }
    }

    /// Enrols: creates the push Factor with the backend's access token
    /// (docs/protocol/device-protocol.md#enrolment), then verifies it with a signature over its SID
    /// (docs/protocol/device-protocol.md#verifying-a-factor). The profile is saved after each step.
    pub async fn enroll(
        &mut self,
        access_token: &str,
        metadata: Option<&Map<String, Value>>,
    ) -> Result<Factor, DeviceError> {
        let key = self.profile.signing_key()?;
        let public_key = spki_base64(&key)?;
        let style = self.profile.style;
        let platform =
            if self.profile.push_token.as_deref().is_some_and(|t| !t.is_empty()) { style.platform() } else { "none" };
        let app_id = "com.verifypushemulator.device";
        let metadata_text = metadata.map(|m| Value::Object(m.clone()).to_string());
        let friendly_name = self.profile.friendly_name.clone();
        let mut form: Vec<(&str, &str)> = vec![("FriendlyName", &friendly_name), ("FactorType", "push")];
        let binding = [("Binding.PublicKey", public_key.as_str()), ("Binding.Alg", "ES256")];
        let mut config = vec![
            ("Config.SdkVersion", style.sdk_version()),
            ("Config.AppId", app_id),
            ("Config.NotificationPlatform", platform),
        ];
        if let Some(token) = self.profile.push_token.as_deref().filter(|t| !t.is_empty()) {
            config.push(("Config.NotificationToken", token));
        }
        match style {
            Style::Android => {
                form.extend(binding);
                form.extend(config);
            }
            Style::Ios => {
                form.extend(config.into_iter().rev());
                form.extend(binding.into_iter().rev());
            }
        }
        if let Some(m) = &metadata_text {
            form.push(("Metadata", m));
        }
        let url = format!("{}/Factors", self.entity_url());
        let reply = self.send(Method::POST, &url, access_token, &form).await?;
        let factor = parse_factor(&expect_success(reply)?.body)?;
        self.profile.factor_sid = Some(factor.sid.clone());
        self.profile.account_sid = Some(factor.account_sid.clone());
        self.profile.credential_sid = Some(factor.credential_sid.clone());
        self.profile.status = Some(factor.status.clone());
        self.save()?;
        self.verify().await
    }

    /// Verifies the Factor: `AuthPayload` = DER signature over its SID
    /// (docs/protocol/device-protocol.md#verifying-a-factor).
    pub async fn verify(&mut self) -> Result<Factor, DeviceError> {
        let sid = self.factor_sid()?.to_owned();
        let payload = jwt::factor_verification(&self.profile.signing_key()?, &sid);
        let url = format!("{}/Factors/{sid}", self.entity_url());
        let (reply, _) = self.signed(Method::POST, &url, &[("AuthPayload", &payload)]).await?;
        let factor = parse_factor(&expect_success(reply)?.body)?;
        self.profile.status = Some(factor.status.clone());
        self.save()?;
        Ok(factor)
    }

    /// Registers a new push token (docs/protocol/device-protocol.md#updating-the-push-token): the
    /// SDKs resend name and config.
    pub async fn update_push_token(&mut self, token: Option<&str>) -> Result<Factor, DeviceError> {
        let sid = self.factor_sid()?.to_owned();
        self.profile.push_token = token.filter(|t| !t.is_empty()).map(str::to_owned);
        let style = self.profile.style;
        let platform = if self.profile.push_token.is_some() { style.platform() } else { "none" };
        let friendly_name = self.profile.friendly_name.clone();
        let push_token = self.profile.push_token.clone();
        let mut form = vec![
            ("FriendlyName", friendly_name.as_str()),
            ("Config.SdkVersion", style.sdk_version()),
            ("Config.AppId", "com.verifypushemulator.device"),
            ("Config.NotificationPlatform", platform),
        ];
        if let Some(t) = &push_token {
            form.push(("Config.NotificationToken", t));
        }
        let url = format!("{}/Factors/{sid}", self.entity_url());
        let (reply, _) = self.signed(Method::POST, &url, &form).await?;
        let factor = parse_factor(&expect_success(reply)?.body)?;
        self.save()?;
        Ok(factor)
    }

    /// Deletes the Factor (docs/protocol/device-protocol.md#deleting-a-factor) and forgets it.
    pub async fn unenroll(&mut self) -> Result<(), DeviceError> {
        let sid = self.factor_sid()?.to_owned();
        let url = format!("{}/Factors/{sid}", self.entity_url());
        let (reply, retried) = self.signed(Method::DELETE, &url, &[]).await?;
        let gone = reply.status.is_success()
            || reply.status == StatusCode::NOT_FOUND
            || (retried && reply.status == StatusCode::UNAUTHORIZED);
        if !gone {
            return Err(DeviceError::from_response(reply.status.as_u16(), &reply.body));
        }
        if let Some(store) = &self.store {
            store.delete(&self.profile.name)?;
        }
        self.profile.factor_sid = None;
        self.profile.status = None;
        Ok(())
    }

    /// Lists this Factor's Challenges (docs/protocol/device-protocol.md#listing-challenges).
    pub async fn challenges(&mut self, options: &ListOptions) -> Result<ChallengePage, DeviceError> {
        let sid = self.factor_sid()?.to_owned();
        let style = self.profile.style;
        let size = options.page_size.to_string();
        let mut query: Vec<(&str, &str)> = match style {
            Style::Android => vec![("PageSize", &size), ("FactorSid", &sid), ("Order", &options.order)],
            Style::Ios => vec![("FactorSid", &sid), ("PageSize", &size), ("Order", &options.order)],
        };
        if let Some(status) = &options.status {
            query.push(("Status", status));
        }
        if let Some(token) = &options.page_token {
            query.push((style.page_token_param(), token));
        }
        let url = format!("{}/Challenges?{}", self.entity_url(), style.encode(&query));
        let (reply, _) = self.signed(Method::GET, &url, &[]).await?;
        parse_page(&expect_success(reply)?.body)
    }

    /// Fetches one Challenge (docs/protocol/device-protocol.md#fetching-a-challenge), with the
    /// fields to sign when it is pending.
    pub async fn challenge(&mut self, challenge_sid: &str) -> Result<Challenge, DeviceError> {
        let url = format!("{}/Challenges/{challenge_sid}", self.entity_url());
        let (reply, _) = self.signed(Method::GET, &url, &[]).await?;
        let reply = expect_success(reply)?;
        let mut challenge = parse_challenge(json_object(&reply.body)?)?;
        challenge.signature_fields = reply.signature_fields;
        if challenge.factor_sid != self.factor_sid()? {
            return Err(DeviceError::Protocol(format!("challenge {challenge_sid} belongs to another factor")));
        }
        Ok(challenge)
    }

    /// Approves a pending Challenge (docs/protocol/device-protocol.md#challenge-answer): fetch,
    /// sign, answer, re-read.
    pub async fn approve(&mut self, challenge_sid: &str) -> Result<Challenge, DeviceError> {
        self.answer(challenge_sid, "approved").await
    }

    /// Denies a pending Challenge (docs/protocol/device-protocol.md#challenge-answer).
    pub async fn deny(&mut self, challenge_sid: &str) -> Result<Challenge, DeviceError> {
        self.answer(challenge_sid, "denied").await
    }

    async fn answer(&mut self, challenge_sid: &str, status: &str) -> Result<Challenge, DeviceError> {
        let challenge = self.challenge(challenge_sid).await?;
        if challenge.status != "pending" {
            return Err(DeviceError::NotPending { sid: challenge.sid, status: challenge.status });
        }
        let fields = challenge.signature_fields.clone().ok_or_else(|| {
            DeviceError::Protocol("a pending challenge came without Twilio-Verify-Signature-Fields".into())
        })?;
        let payload =
            jwt::challenge_answer(&self.profile.signing_key()?, self.profile.style, &fields, &challenge.json, status)?;
        let url = format!("{}/Challenges/{challenge_sid}", self.entity_url());
        let (reply, _) = self.signed(Method::POST, &url, &[("AuthPayload", &payload)]).await?;
        expect_success(reply)?;
        let after = self.challenge(challenge_sid).await?;
        if after.status != status {
            return Err(DeviceError::NotUpdated { sid: after.sid, status: after.status });
        }
        Ok(after)
    }

    /// The newest pending Challenge, if any.
    pub async fn latest_pending(&mut self) -> Result<Option<Challenge>, DeviceError> {
        let options =
            ListOptions { status: Some("pending".into()), order: "desc".into(), page_size: 1, page_token: None };
        Ok(self.challenges(&options).await?.challenges.into_iter().next())
    }
}

fn user_agent(style: Style) -> String {
    match style {
        Style::Android => format!(
            "verify-push-device; Android; 1.0; 1; Android 14 (34); emulator; VerifySDK; {}; 2013",
            style.sdk_version()
        ),
        Style::Ios => {
            format!("verify-push-device; iOS; 1.0; 1; iOS 17.0; emulator; TwilioVerify; {}; 1", style.sdk_version())
        }
    }
}

fn spki_base64(key: &p256::ecdsa::SigningKey) -> Result<String, DeviceError> {
    use base64::Engine;
    use p256::pkcs8::EncodePublicKey;
    let der = key.verifying_key().to_public_key_der().map_err(|e| DeviceError::Store(e.to_string()))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(der.as_bytes()))
}

fn expect_success(reply: Reply) -> Result<Reply, DeviceError> {
    if reply.status.is_success() {
        Ok(reply)
    } else {
        Err(DeviceError::from_response(reply.status.as_u16(), &reply.body))
    }
}

fn json_object(body: &str) -> Result<Map<String, Value>, DeviceError> {
    match serde_json::from_str(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(DeviceError::Protocol("the response is not a JSON object".into())),
    }
}

fn string(map: &Map<String, Value>, key: &str) -> Result<String, DeviceError> {
    map.get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| DeviceError::Protocol(format!("missing string {key:?}")))
}

fn parse_factor(body: &str) -> Result<Factor, DeviceError> {
    let map = json_object(body)?;
    let config = map.get("config").and_then(Value::as_object).cloned().unwrap_or_default();
    let status = string(&map, "status")?;
    if status != "verified" && status != "unverified" {
        return Err(DeviceError::Protocol(format!("unknown factor status {status:?}")));
    }
    Ok(Factor {
        sid: string(&map, "sid")?,
        account_sid: string(&map, "account_sid")?,
        credential_sid: string(&config, "credential_sid")?,
        friendly_name: string(&map, "friendly_name")?,
        date_created: string(&map, "date_created")?,
        status,
    })
}

fn parse_challenge(map: Map<String, Value>) -> Result<Challenge, DeviceError> {
    let details =
        map.get("details").and_then(Value::as_object).ok_or_else(|| DeviceError::Protocol("missing details".into()))?;
    let fields = match details.get("fields") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|f| {
                let f = f.as_object().ok_or_else(|| DeviceError::Protocol("a field is not an object".into()))?;
                Ok((string(f, "label")?, string(f, "value")?))
            })
            .collect::<Result<_, DeviceError>>()?,
        Some(_) => return Err(DeviceError::Protocol("details.fields is not a list".into())),
    };
    let status = string(&map, "status")?;
    if !["pending", "approved", "denied", "expired"].contains(&status.as_str()) {
        return Err(DeviceError::Protocol(format!("unknown challenge status {status:?}")));
    }
    Ok(Challenge {
        sid: string(&map, "sid")?,
        factor_sid: string(&map, "factor_sid")?,
        message: string(details, "message")?,
        date_created: string(&map, "date_created")?,
        expiration_date: string(&map, "expiration_date")?,
        status,
        fields,
        json: map,
        signature_fields: None,
    })
}

fn parse_page(body: &str) -> Result<ChallengePage, DeviceError> {
    let map = json_object(body)?;
    let items = map
        .get("challenges")
        .and_then(Value::as_array)
        .ok_or_else(|| DeviceError::Protocol("missing challenges".into()))?;
    let challenges = items
        .iter()
        .map(|c| parse_challenge(c.as_object().cloned().unwrap_or_default()))
        .collect::<Result<Vec<_>, _>>()?;
    let meta =
        map.get("meta").and_then(Value::as_object).ok_or_else(|| DeviceError::Protocol("missing meta".into()))?;
    let token = |key: &str| meta.get(key).and_then(Value::as_str).and_then(page_token_of);
    Ok(ChallengePage {
        challenges,
        page: meta
            .get("page")
            .and_then(Value::as_i64)
            .ok_or_else(|| DeviceError::Protocol("missing meta.page".into()))?,
        page_size: meta
            .get("page_size")
            .and_then(Value::as_i64)
            .ok_or_else(|| DeviceError::Protocol("missing meta.page_size".into()))?,
        next_page_token: token("next_page_url"),
        previous_page_token: token("previous_page_url"),
    })
}

/// The `PageToken` query parameter of a paging URL (the SDKs read exactly this name).
fn page_token_of(url: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|pair| pair.strip_prefix("PageToken=")).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_are_read_from_paging_urls_like_the_sdks_do() {
        // docs/protocol/device-protocol.md#sdk-vectors (iOS SDK test constants).
        let url =
            "https://verify.twilio.com/Challenges?Page=1&PageToken=DNYC033ef13049d311c1d31a8cc4b16065e1&PageSize=2";
        assert_eq!(page_token_of(url).as_deref(), Some("DNYC033ef13049d311c1d31a8cc4b16065e1"));
        assert_eq!(page_token_of("https://x/Challenges?PageSize=2"), None);
    }

    #[test]
    fn factors_need_credential_sid_and_a_known_status() {
        let ok = r#"{"sid":"YF1","account_sid":"AC1","friendly_name":"f","status":"unverified","date_created":"2020-07-16T20:46:34Z","config":{"credential_sid":"CR1"}}"#;
        assert_eq!(parse_factor(ok).map(|f| f.credential_sid).ok().as_deref(), Some("CR1"));
        assert!(parse_factor(&ok.replace(r#""config":{"credential_sid":"CR1"}"#, r#""config":{}"#)).is_err());
        assert!(parse_factor(&ok.replace("unverified", "weird")).is_err());
    }
}
