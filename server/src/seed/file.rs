//! The seed file's shape (README, "Seed file"): YAML, or JSON read as YAML (JSON is YAML), keys
//! named as in Twilio's JSON, every resource nested under its account and Service.
//!
//! Every scalar is checked while it is parsed (a SID's shape, a name's length, a word of a closed
//! set, a number's range), so serde_yaml reports the error with the field's path and its line and
//! column: `accounts[0].services[1].sid: must be VA followed by 32 hexadecimal digits at line 9
//! column 14`. Unknown keys are refused the same way. Errors found after parsing (a credential
//! that does not exist, material that does not parse) are located by parsing again with that
//! field refused ([`locate`]): each [`Field`] is numbered in parse order, which the second parse
//! repeats.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::marker::PhantomData;
use std::path::PathBuf;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

use crate::domain::rules::{
    is_http_url, is_valid_identity, CREDENTIAL_FRIENDLY_NAME_MAX, FACTOR_FRIENDLY_NAME_MAX, MIN_SECRET_LEN,
    NOTIFICATION_TOKEN_LEN, SERVICE_FRIENDLY_NAME_MAX, TOTP_CODE_LENGTH, TOTP_ISSUER_MAX, TOTP_SKEW, TOTP_TIME_STEP,
    WEBHOOK_EVENT_TYPES, WEBHOOK_FRIENDLY_NAME_MAX, WEBHOOK_URL_MAX,
};
use crate::domain::sid::{AccountSid, ApiKeySid, CredentialSid, FactorSid, ServiceSid, WebhookSid};
use crate::domain::status::{CredentialType, DeviceStyle, WebhookStatus};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedFile {
    #[serde(default)]
    pub accounts: Vec<Account>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    pub account_sid: Field<AccountSid>,
    pub auth_token: Field<Token>,
    #[serde(default)]
    pub friendly_name: Option<Field<Name<64>>>,
    #[serde(default)]
    pub api_keys: Vec<ApiKey>,
    #[serde(default)]
    pub credentials: Vec<Credential>,
    #[serde(default)]
    pub services: Vec<Service>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    pub sid: Field<ApiKeySid>,
    pub secret: Field<Token>,
}

/// A push credential; its material comes from files (paths relative to the seed file's folder):
/// `fcm` a service-account JSON (`secret_file`), `apn` a certificate and its key
/// (`certificate_file` + `private_key_file`, `sandbox`) or a `.p8` (`private_key_file` +
/// `key_id` + `team_id`), as the Credentials API takes them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    pub sid: Field<CredentialSid>,
    #[serde(rename = "type")]
    pub kind: Field<CredentialType>,
    #[serde(default)]
    pub friendly_name: Option<Field<Name<CREDENTIAL_FRIENDLY_NAME_MAX>>>,
    #[serde(default)]
    pub sandbox: bool,
    #[serde(default)]
    pub secret_file: Option<Field<FilePath>>,
    #[serde(default)]
    pub certificate_file: Option<Field<FilePath>>,
    #[serde(default)]
    pub private_key_file: Option<Field<FilePath>>,
    #[serde(default)]
    pub key_id: Option<Field<String>>,
    #[serde(default)]
    pub team_id: Option<Field<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub sid: Field<ServiceSid>,
    pub friendly_name: Field<Name<SERVICE_FRIENDLY_NAME_MAX>>,
    #[serde(default)]
    pub push: Push,
    #[serde(default)]
    pub totp: Totp,
    #[serde(default)]
    pub webhooks: Vec<Webhook>,
    #[serde(default)]
    pub devices: Vec<Device>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Push {
    #[serde(default)]
    pub include_date: bool,
    #[serde(default)]
    pub apn_credential_sid: Option<Field<CredentialSid>>,
    #[serde(default)]
    pub fcm_credential_sid: Option<Field<CredentialSid>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Totp {
    #[serde(default)]
    pub issuer: Option<Field<Name<TOTP_ISSUER_MAX>>>,
    #[serde(default)]
    pub time_step: Option<TimeStep>,
    #[serde(default)]
    pub code_length: Option<CodeLength>,
    #[serde(default)]
    pub skew: Option<Skew>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// Optional: without it, a webhook is known by (Service, `friendly_name`).
    #[serde(default)]
    pub sid: Option<Field<WebhookSid>>,
    pub friendly_name: Field<Name<WEBHOOK_FRIENDLY_NAME_MAX>>,
    pub webhook_url: Field<Url>,
    pub event_types: EventTypes,
    #[serde(default)]
    pub version: Option<Field<Version>>,
    #[serde(default)]
    pub status: Option<Field<WebhookStatus>>,
}

/// A virtual device: a Factor with a fixed SID, enrolled for `identity` once the seed is written (startup.rs).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    pub identity: Field<Identity>,
    pub factor_sid: Field<FactorSid>,
    #[serde(default)]
    pub style: Option<Field<DeviceStyle>>,
    #[serde(default)]
    pub friendly_name: Option<Field<Name<FACTOR_FRIENDLY_NAME_MAX>>>,
    #[serde(default)]
    pub push_token: Option<Field<PushToken>>,
}

thread_local! {
    /// The number the next [`Field`] parsed on this thread gets.
    static NEXT: Cell<usize> = const { Cell::new(0) };
    /// A field to refuse (its number) and the reason, while [`locate`] parses again.
    static REFUSE: RefCell<Option<(usize, String)>> = const { RefCell::new(None) };
}

/// Parses a seed file's text; the error is serde_yaml's (path, message, line and column).
pub fn parse(text: &str) -> Result<SeedFile, String> {
    NEXT.with(|n| n.set(0));
    serde_yaml::from_str(text).map_err(|e| e.to_string())
}

/// `reason` for the field numbered `at`, with its path, line and column: the text is parsed again
/// and that field refused.
pub fn locate(text: &str, at: usize, reason: &str) -> String {
    REFUSE.with(|r| *r.borrow_mut() = Some((at, reason.to_owned())));
    let located = parse(text).err();
    REFUSE.with(|r| r.borrow_mut().take());
    located.unwrap_or_else(|| reason.to_owned())
}

/// A scalar checked as it is parsed.
pub trait Check: Sized {
    fn check(text: &str) -> Result<Self, String>;
}

/// A checked scalar and its number in parse order (for [`locate`]).
#[derive(Debug, Clone)]
pub struct Field<T> {
    pub value: T,
    pub at: usize,
}

impl<T> std::ops::Deref for Field<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<'de, T: Check> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<T: Check> Visitor<'_> for V<T> {
            type Value = Field<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Field<T>, E> {
                let at = NEXT.with(|n| n.replace(n.get() + 1));
                if let Some((_, reason)) = REFUSE.with(|r| r.borrow().clone()).filter(|(refused, _)| *refused == at) {
                    return Err(E::custom(reason));
                }
                T::check(text).map(|value| Field { value, at }).map_err(E::custom)
            }
        }
        d.deserialize_str(V(PhantomData))
    }
}

impl Check for String {
    fn check(text: &str) -> Result<String, String> {
        Ok(text.to_owned())
    }
}

macro_rules! sids {
    ($($sid:ty),+) => {$(
        impl Check for $sid {
            fn check(text: &str) -> Result<$sid, String> {
                <$sid>::parse(text)
                    .ok_or_else(|| format!("must be {} followed by 32 hexadecimal digits", <$sid>::KIND.prefix()))
            }
        }
    )+};
}
sids!(AccountSid, ApiKeySid, CredentialSid, FactorSid, ServiceSid, WebhookSid);

macro_rules! words {
    ($($word:ty),+) => {$(
        impl Check for $word {
            fn check(text: &str) -> Result<$word, String> {
                text.parse().map_err(|_| format!("must be one of: {}", <$word>::NAMES.join(", ")))
            }
        }
    )+};
}
words!(CredentialType, DeviceStyle, WebhookStatus);

/// An auth token or API key secret: at least [`MIN_SECRET_LEN`] characters. Never printed.
#[derive(Clone)]
pub struct Token(pub String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Check for Token {
    fn check(text: &str) -> Result<Token, String> {
        if text.len() < MIN_SECRET_LEN {
            return Err(format!("must be at least {MIN_SECRET_LEN} characters"));
        }
        Ok(Token(text.to_owned()))
    }
}

/// A name: not blank, at most `MAX` characters (as the API counts them).
#[derive(Debug, Clone)]
pub struct Name<const MAX: usize>(pub String);

impl<const MAX: usize> Check for Name<MAX> {
    fn check(text: &str) -> Result<Name<MAX>, String> {
        if text.trim().is_empty() {
            return Err("must not be empty".to_owned());
        }
        if text.chars().count() > MAX {
            return Err(format!("must be at most {MAX} characters long"));
        }
        Ok(Name(text.to_owned()))
    }
}

/// A file of credential material, relative to the seed file's folder unless absolute.
#[derive(Debug, Clone)]
pub struct FilePath(pub PathBuf);

impl Check for FilePath {
    fn check(text: &str) -> Result<FilePath, String> {
        if text.trim().is_empty() {
            return Err("must name a file".to_owned());
        }
        Ok(FilePath(PathBuf::from(text)))
    }
}

/// Text newtypes, each accepted when its test holds, else refused with its reason.
macro_rules! texts {
    ($($(#[$doc:meta])* $name:ident: $valid:expr, $reason:expr;)+) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name(pub String);

        impl Check for $name {
            fn check(text: &str) -> Result<$name, String> {
                let valid: fn(&str) -> bool = $valid;
                if valid(text) {
                    Ok($name(text.to_owned()))
                } else {
                    Err($reason)
                }
            }
        }
    )+};
}

texts! {
    /// An absolute http(s) URL, as the Webhooks API takes `WebhookUrl`.
    Url: |t| is_http_url(t) && t.len() <= WEBHOOK_URL_MAX, "must be an absolute http or https URL".to_owned();
    /// An Entity identity (8 to 64 dash-separated alphanumerics).
    Identity: is_valid_identity, "must be 8 to 64 characters, letters, digits and dashes".to_owned();
    /// A device's push token (`Config.NotificationToken`).
    PushToken: |t| NOTIFICATION_TOKEN_LEN.contains(&t.len()),
        format!("must be {} to {} characters", NOTIFICATION_TOKEN_LEN.start(), NOTIFICATION_TOKEN_LEN.end());
}

/// The seed's own closed word sets, each checked as it is parsed.
macro_rules! choices {
    ($($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),+ })+) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl Check for $name {
            fn check(text: &str) -> Result<$name, String> {
                match text {
                    $($text => Ok($name::$variant),)+
                    _ => Err(format!("must be one of: {}", [$($text),+].join(", "))),
                }
            }
        }
    )+};
}

choices! {
    /// A webhook's payload version.
    Version { V1 => "v1", V2 => "v2" }
}

/// A webhook's event types: at least one, each one the Webhooks API takes, repeats dropped.
#[derive(Debug, Clone)]
pub struct EventTypes(pub Vec<&'static str>);

impl Check for &'static str {
    fn check(text: &str) -> Result<&'static str, String> {
        WEBHOOK_EVENT_TYPES
            .iter()
            .copied()
            .find(|e| *e == text)
            .ok_or_else(|| format!("must be one of: {}", WEBHOOK_EVENT_TYPES.join(", ")))
    }
}

impl<'de> Deserialize<'de> for EventTypes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EventTypes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of event types")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<EventTypes, A::Error> {
                let mut chosen: Vec<&'static str> = Vec::new();
                while let Some(event) = seq.next_element::<Field<&'static str>>()? {
                    if !chosen.contains(&event.value) {
                        chosen.push(event.value);
                    }
                }
                if chosen.is_empty() {
                    return Err(de::Error::custom("must list at least one event type"));
                }
                Ok(EventTypes(chosen))
            }
        }
        d.deserialize_seq(V)
    }
}

/// An integer setting checked against its range as it is parsed.
macro_rules! ranged {
    ($($(#[$doc:meta])* $name:ident => $range:expr;)+) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name(pub i64);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        write!(f, "an integer from {} to {}", $range.start(), $range.end())
                    }
                    fn visit_i64<E: de::Error>(self, v: i64) -> Result<$name, E> {
                        if $range.contains(&v) {
                            Ok($name(v))
                        } else {
                            Err(E::custom(format!("must be an integer from {} to {}", $range.start(), $range.end())))
                        }
                    }
                    fn visit_u64<E: de::Error>(self, v: u64) -> Result<$name, E> {
                        self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
                    }
                }
                d.deserialize_i64(V)
            }
        }
    )+};
}

ranged! {
    /// `totp.time_step`, seconds.
    TimeStep => TOTP_TIME_STEP;
    /// `totp.code_length`, digits.
    CodeLength => TOTP_CODE_LENGTH;
    /// `totp.skew`, time steps.
    Skew => TOTP_SKEW;
}
