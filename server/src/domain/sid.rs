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

    /// A fresh random SID of this kind, lower-case hex like Twilio's.
    pub fn generate(self) -> String {
        let mut sid = String::with_capacity(34);
        sid.push_str(self.prefix());
        sid.push_str(&random_hex::<16>());
        sid
    }

    /// Whether `value` is a well-formed SID of this kind (`^XX[0-9a-fA-F]{32}$`).
    pub fn matches(self, value: &str) -> bool {
        value.len() == 34 && value.starts_with(self.prefix()) && value.as_bytes()[2..].iter().all(u8::is_ascii_hexdigit)
    }
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
        let sid = SidKind::Challenge.generate();
        assert!(SidKind::Challenge.matches(&sid), "{sid}");
        assert!(!SidKind::Factor.matches(&sid));
        assert_ne!(sid, SidKind::Challenge.generate());
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
