//! What a virtual device does (README, "Virtual devices"): a P-256 key the server holds, playing
//! the device through the same path a mobile SDK's requests take. Each step builds the request
//! the SDK of its style would send (docs/protocol/device-protocol.md#enrolment,
//! docs/protocol/device-protocol.md#challenge-answer): the `Authorization` value (an access token
//! or a freshly signed factor JWT) goes through [`caller_from_authorization`], the form body is
//! encoded as that SDK encodes it and decoded by [`Params::decode`], and the handlers' cores run
//! on them. Nothing here writes a status: the cores verify every signature as they do for a
//! phone, so a device whose key no longer matches its Factor is refused as a phone would be.

use serde_json::{Map, Value};

use super::access_tokens::mint_access_token;
use super::auth::{caller_from_authorization, device_authorization, Caller};
use super::challenges::{
    challenge_view, fetch_challenge_core, list_challenge_core, update_challenge_core, ChallengeList,
};
use super::entities::{identity_param, EntityItemPath, EntityScope};
use super::factors::{create_new_factor_core, delete_factor_core, fetch_factor_core, update_factor_core};
use super::params::Params;
use super::{path_sid, service_of, AppState, Missing};
use crate::crypto::device_sign::DeviceSigner;
use crate::domain::rules::ACCESS_TOKEN_DEFAULT_TTL;
use crate::domain::sid::{FactorSid, ServiceSid};
use crate::domain::status::{ChallengeStatus, DeviceStyle, FactorStatus, FactorType, NotificationPlatform};
use crate::error::{ApiError, ApiResult};
use crate::store::challenges::ChallengeRow;
use crate::store::devices::DeviceRow;

/// The `Config.AppId` a virtual device reports.
const APP_ID: &str = "com.verifypushemulator.virtual";

/// The `{ChallengeSid}` that names a device's newest pending Challenge.
pub const LATEST: &str = "latest";

/// What enrolling a virtual device takes (validated by the caller).
pub struct Enrolment<'a> {
    pub service_sid: &'a ServiceSid,
    pub identity: &'a str,
    /// The backend's access token; else one is minted as the AccessTokens resource would.
    pub access_token: Option<&'a str>,
    pub style: DeviceStyle,
    pub friendly_name: &'a str,
    pub push_token: Option<&'a str>,
    pub verify: bool,
    /// A fixed Factor SID (the seed file's devices); the HTTP route never sets it, so the
    /// Factor gets a new one.
    pub factor_sid: Option<&'a FactorSid>,
}

/// The SDK version a style reports (`Config.SdkVersion`), as the client crate does.
fn sdk_version(style: DeviceStyle) -> &'static str {
    match style {
        DeviceStyle::Android => "0.9.0",
        DeviceStyle::Ios => "3.0.2",
    }
}

/// Encodes name/value pairs as the SDK of `style` does
/// (docs/protocol/device-protocol.md#form-encoding).
fn encode(style: DeviceStyle, pairs: &[(&str, &str)]) -> String {
    let android = |b: u8| b.is_ascii_alphanumeric() || b"_-!.~'()*".contains(&b);
    let ios = |b: u8| b.is_ascii_alphanumeric() || b"-._~!$&'()*,;=:@/?".contains(&b);
    let escape = |text: &str, raw: &dyn Fn(u8) -> bool| {
        text.bytes().map(|b| if raw(b) { char::from(b).to_string() } else { format!("%{b:02X}") }).collect::<String>()
    };
    let encoded: Vec<String> = match style {
        DeviceStyle::Android => {
            pairs.iter().map(|(n, v)| format!("{}={}", escape(n, &android), escape(v, &android))).collect()
        }
        DeviceStyle::Ios => pairs.iter().map(|(n, v)| escape(&format!("{n}={v}"), &ios)).collect(),
    };
    encoded.join("&")
}

/// A request body (or query string) as the server receives it from the SDK of `style`: encoded
/// by that SDK's rules, then decoded by the server's own decoder.
fn sent(style: DeviceStyle, pairs: &[(&str, &str)]) -> ApiResult<Params> {
    Params::decode(encode(style, pairs).as_bytes())
}

/// Creates the push Factor with the access token, stores the key sealed, and (when asked)
/// verifies the Factor with its signature: the SDK's enrolment.
pub async fn enroll(state: &AppState, account_sid: &str, e: &Enrolment<'_>) -> ApiResult<VirtualDevice> {
    let service = service_of(state, account_sid, e.service_sid).await?;
    identity_param(e.identity)?;
    let token = match e.access_token {
        Some(token) => token.to_owned(),
        None => {
            mint_access_token(state, service, e.identity, Some(e.friendly_name), ACCESS_TOKEN_DEFAULT_TTL).await?.token
        }
    };
    let pkcs8 = DeviceSigner::generate_pkcs8().map_err(anyhow::Error::from)?;
    let signer = DeviceSigner::from_pkcs8(&pkcs8).map_err(anyhow::Error::from)?;
    let public_key = signer.public_key_spki_base64();
    let platform = if e.push_token.is_some() { e.style.platform() } else { NotificationPlatform::None };
    let mut form = vec![("FriendlyName", e.friendly_name), ("FactorType", FactorType::Push.as_str())];
    let binding = [("Binding.PublicKey", public_key.as_str()), ("Binding.Alg", "ES256")];
    let mut config = vec![
        ("Config.SdkVersion", sdk_version(e.style)),
        ("Config.AppId", APP_ID),
        ("Config.NotificationPlatform", platform.as_str()),
    ];
    if let Some(push_token) = e.push_token {
        config.push(("Config.NotificationToken", push_token));
    }
    // iOS sends its dictionaries' pairs in another order.
    match e.style {
        DeviceStyle::Android => {
            form.extend(binding);
            form.extend(config);
        }
        DeviceStyle::Ios => {
            form.extend(config.into_iter().rev());
            form.extend(binding.into_iter().rev());
        }
    }
    let caller = caller_from_authorization(state, Some(&device_authorization(&token))).await?;
    let scope = EntityScope { service_sid: e.service_sid.to_string(), identity: e.identity.to_owned() };
    let factor = create_new_factor_core(state, &caller, &scope, &sent(e.style, &form)?, e.factor_sid).await?;
    state.store.insert_device(factor.id, e.style, &state.secrets.seal(&pkcs8), state.clock.now()).await?;
    let device = VirtualDevice::load(state, account_sid, &factor.sid).await?;
    if e.verify {
        device.verify(state).await?;
        return VirtualDevice::load(state, account_sid, &factor.sid).await;
    }
    Ok(device)
}

/// A virtual device with its key opened.
#[derive(Debug)]
pub struct VirtualDevice {
    pub row: DeviceRow,
    signer: DeviceSigner,
}

impl VirtualDevice {
    /// The device of Factor `factor_sid` of `account_sid`, or 404.
    pub async fn load(state: &AppState, account_sid: &str, factor_sid: &str) -> ApiResult<VirtualDevice> {
        let missing = Missing::Device(factor_sid);
        let sid: FactorSid = path_sid(factor_sid, missing)?;
        let row = state.store.device(account_sid, &sid).await?.ok_or_else(|| ApiError::from(missing))?;
        let pkcs8 = state
            .secrets
            .open(&row.sealed_key)
            .ok_or_else(|| anyhow::anyhow!("the key of device {} does not open", row.factor_sid))?;
        let signer = DeviceSigner::from_pkcs8(&pkcs8).map_err(anyhow::Error::from)?;
        Ok(VirtualDevice { row, signer })
    }

    /// Authenticates as the SDK does on each request: a factor JWT signed now.
    async fn caller(&self, state: &AppState) -> ApiResult<Caller> {
        let r = &self.row;
        let token = self
            .signer
            .factor_jwt(r.style, &r.credential_sid, &r.account_sid, state.clock.now())
            .map_err(anyhow::Error::from)?;
        caller_from_authorization(state, Some(&device_authorization(&token))).await
    }

    fn scope(&self) -> EntityScope {
        EntityScope { service_sid: self.row.service_sid.clone(), identity: self.row.identity.clone() }
    }

    fn item(&self, sid: &str) -> EntityItemPath {
        EntityItemPath {
            service_sid: self.row.service_sid.clone(),
            identity: self.row.identity.clone(),
            sid: sid.to_owned(),
        }
    }

    /// Verifies the Factor: `AuthPayload` = the key's DER signature over the Factor SID.
    pub async fn verify(&self, state: &AppState) -> ApiResult<()> {
        let caller = self.caller(state).await?;
        let payload = self.signer.factor_verification(&self.row.factor_sid).map_err(anyhow::Error::from)?;
        let form = sent(self.row.style, &[("AuthPayload", &payload)])?;
        update_factor_core(state, &caller, &self.item(&self.row.factor_sid), &form).await.map(|_| ())
    }

    /// Unenrols: the Factor's DELETE, signed with its key (the device goes with the Factor).
    pub async fn unenroll(&self, state: &AppState) -> ApiResult<()> {
        let caller = self.caller(state).await?;
        delete_factor_core(state, &caller, &self.item(&self.row.factor_sid)).await
    }

    /// The device's list of its Challenges, queried as the SDK queries (`FactorSid`, `PageSize`,
    /// `Order` always; `Status` and the page token when given in `q`).
    pub async fn challenges(&self, state: &AppState, q: &Params) -> ApiResult<ChallengeList> {
        let caller = self.caller(state).await?;
        let style = self.row.style;
        let size = q.get("PageSize").unwrap_or("50");
        let order = q.get("Order").unwrap_or("asc");
        let own = self.row.factor_sid.as_str();
        let mut query = match style {
            DeviceStyle::Android => vec![("PageSize", size), ("FactorSid", own), ("Order", order)],
            DeviceStyle::Ios => vec![("FactorSid", own), ("PageSize", size), ("Order", order)],
        };
        if let Some(status) = q.get("Status") {
            query.push(("Status", status));
        }
        if let Some(token) = q.get("PageToken").or_else(|| q.get("pageToken")) {
            query.push((if style == DeviceStyle::Ios { "pageToken" } else { "PageToken" }, token));
        }
        list_challenge_core(state, &caller, &self.scope(), &sent(style, &query)?).await
    }

    /// Answers Challenge `sid` (or the newest pending one, [`LATEST`]) as the SDK does: fetch it
    /// with its signature fields, sign them with `status`, send the answer. The server's checks
    /// decide (60322 answered, 60323 expired, 60324 a signature or field that does not match).
    pub async fn answer(&self, state: &AppState, sid: &str, status: ChallengeStatus) -> ApiResult<ChallengeRow> {
        let caller = self.caller(state).await?;
        let own = self.row.factor_sid.as_str();
        let missing = || ApiError::from(Missing::DeviceChallenge { factor: own, sid });
        // The SDKs answer from a verified Factor only; the server refuses other answers with 60318.
        let factor = fetch_factor_core(state, &caller, &self.item(own)).await?;
        if factor.status != FactorStatus::Verified {
            return Err(ApiError::FactorUnverified);
        }
        let sid = if sid == LATEST {
            let pending = ChallengeStatus::Pending.as_str();
            let q = sent(self.row.style, &[("Status", pending), ("Order", "desc"), ("PageSize", "1")])?;
            let list = self.challenges(state, &q).await?;
            list.page.rows.into_iter().next().ok_or_else(missing)?.sid
        } else {
            sid.to_owned()
        };
        let path = self.item(&sid);
        // A Challenge of another Factor of the same identity is refused to the device (401); to
        // the emulator's caller it is simply not one of this device's.
        let challenge = match fetch_challenge_core(state, &caller, &path).await {
            Err(ApiError::Unauthenticated) => return Err(missing()),
            other => other?,
        };
        let (body, fields) = challenge_view(state, &challenge, state.clock.now());
        let json: Map<String, Value> = match serde_json::to_value(body).map_err(anyhow::Error::from)? {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        // Without signature fields (no longer pending) the answer is still sent, so the server's
        // own check says why it cannot be answered.
        let payload = self
            .signer
            .challenge_answer(self.row.style, fields.unwrap_or_default(), &json, status.as_str())
            .map_err(anyhow::Error::from)?;
        let form = sent(self.row.style, &[("AuthPayload", &payload)])?;
        update_challenge_core(state, &caller, &path, &form).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_style_encodes_as_its_sdk_and_the_server_decodes_both() {
        let pairs = [("Binding.PublicKey", "MFk+w/a=="), ("FriendlyName", "Ann's phone")];
        let android = encode(DeviceStyle::Android, &pairs);
        let ios = encode(DeviceStyle::Ios, &pairs);
        assert_eq!(android, "Binding.PublicKey=MFk%2Bw%2Fa%3D%3D&FriendlyName=Ann's%20phone");
        assert_eq!(ios, "Binding.PublicKey=MFk%2Bw/a==&FriendlyName=Ann's%20phone");
        for style in [DeviceStyle::Android, DeviceStyle::Ios] {
            let p = sent(style, &pairs).unwrap_or_default();
            assert_eq!(p.get("Binding.PublicKey"), Some("MFk+w/a=="));
            assert_eq!(p.get("FriendlyName"), Some("Ann's phone"));
        }
    }
}
