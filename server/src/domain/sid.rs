//! Twilio SIDs: a two-letter prefix and 32 hex digits (docs/protocol/rest-api.md#sid-prefixes).

use ring::rand::{SecureRandom, SystemRandom};

/// The SID prefixes this server issues or accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SidKind {
    Account,
    ApiKey,
    Service,
    Entity,
    Factor,
    Challenge,
    AccessToken,
    Webhook,
    Credential,
}

impl SidKind {
    /// Every kind.
    pub const ALL: [SidKind; 9] = [
        SidKind::Account,
        SidKind::ApiKey,
        SidKind::Service,
        SidKind::Entity,
        SidKind::Factor,
        SidKind::Challenge,
        SidKind::AccessToken,
        SidKind::Webhook,
        SidKind::Credential,
    ];

    pub const fn prefix(self) -> &'static str {
        match self {
            SidKind::Account => "AC",
            SidKind::ApiKey => "SK",
            SidKind::Service => "VA",
            SidKind::Entity => "YE",
            SidKind::Factor => "YF",
            SidKind::Challenge => "YC",
            SidKind::AccessToken => "YK",
            SidKind::Webhook => "YW",
            SidKind::Credential => "CR",
        }
    }

    /// A fresh random SID of this kind, lower-case hex like Twilio's. Callers use the typed
    /// `XxxSid::generate()` below.
    pub(super) fn generate(self) -> String {
        let mut sid = String::with_capacity(34);
        sid.push_str(self.prefix());
        sid.push_str(&random_hex::<16>());
        sid
    }

    /// Whether `value` is a well-formed SID of this kind (`^XX[0-9a-fA-F]{32}$`). Callers parse
    /// into the typed SIDs below instead (`FactorSid::parse`).
    pub(super) fn matches(self, value: &str) -> bool {
        value.len() == 34 && value.starts_with(self.prefix()) && value.as_bytes()[2..].iter().all(u8::is_ascii_hexdigit)
    }
}

/// A value that is not a well-formed SID of the wanted kind (its prefix).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be a {0}… SID")]
pub struct WrongSid(pub &'static str);

/// One newtype per SID kind: it holds only a well-formed SID of its kind (parsed once at the
/// edge with `FromStr`/`parse`, or freshly generated), renders with `Display`, serialises as
/// its text and reads as `&str` (`Deref`) where SQL binds it.
macro_rules! sid_types {
    ($( $(#[$doc:meta])* $name:ident => $kind:ident; )+) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const KIND: SidKind = SidKind::$kind;

            /// A fresh random SID of this kind.
            pub fn generate() -> $name {
                $name(SidKind::$kind.generate())
            }

            /// `value` if it is a well-formed SID of this kind.
            pub fn parse(value: &str) -> Option<$name> {
                SidKind::$kind.matches(value).then(|| $name(value.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = WrongSid;
            fn from_str(value: &str) -> Result<$name, WrongSid> {
                $name::parse(value).ok_or(WrongSid(SidKind::$kind.prefix()))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl From<$name> for String {
            fn from(sid: $name) -> String {
                sid.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }
    )+};
}

sid_types! {
    /// `AC…`: an account.
    AccountSid => Account;
    /// `SK…`: an API key.
    ApiKeySid => ApiKey;
    /// `VA…`: a Verify Service.
    ServiceSid => Service;
    /// `YE…`: an Entity.
    EntitySid => Entity;
    /// `YF…`: a Factor.
    FactorSid => Factor;
    /// `YC…`: a Challenge.
    ChallengeSid => Challenge;
    /// `YK…`: an enrolment access token.
    AccessTokenSid => AccessToken;
    /// `YW…`: a webhook.
    WebhookSid => Webhook;
    /// `CR…`: a push credential (and a Factor's device-key id).
    CredentialSid => Credential;
}

/// `N` random bytes from the system CSPRNG, as lower-case hex.
pub fn random_hex<const N: usize>() -> String {
    let bytes = random_bytes::<N>();
    let mut out = String::with_capacity(N * 2);
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

/// `N` random bytes from the system CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The system RNG failing means the OS cannot give randomness: nothing safe can continue.
    #[expect(clippy::expect_used, reason = "no secure fallback exists when the OS RNG fails")]
    SystemRandom::new().fill(&mut bytes).expect("the operating system's random generator failed");
    bytes
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_sids_have_prefix_and_32_hex_digits() {
        let sid = ChallengeSid::generate();
        assert!(SidKind::Challenge.matches(&sid), "{sid}");
        assert!(!SidKind::Factor.matches(&sid));
        assert_ne!(sid, ChallengeSid::generate());
        assert_eq!(sid.as_str().parse::<ChallengeSid>(), Ok(sid.clone()));
        assert_eq!(sid.as_str().parse::<FactorSid>(), Err(WrongSid("YF")));
    }

    #[test]
    fn matching_rejects_wrong_length_prefix_and_digits() {
        assert!(SidKind::Service.matches("VAaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
        assert!(SidKind::Service.matches("VA0123456789ABCDEF0123456789abcdef"));
        assert!(!SidKind::Service.matches("VAaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
        assert!(!SidKind::Service.matches("VAgaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
        assert!(!SidKind::Service.matches("vaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
        assert!(!SidKind::Service.matches("VAaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaé"));
    }
}
