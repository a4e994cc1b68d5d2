//! The closed sets of words Twilio's resources (and our outboxes) use: statuses, factor types,
//! notification platforms. Each is an enum, converted to and from its text only at the edges
//! (the store's row mapping and binds, request parameters, rendering); `sql()` gives the quoted
//! SQL literal for the `WHERE` clauses that must name a status in their text (a partial index is
//! used only when the query repeats its predicate literally, docs/ARCHITECTURE.md "Plans are tested").

/// A text that is none of an enum's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be one of: {0}")]
pub struct UnknownWord(pub &'static str);

/// An enum of words: its texts, in declaration order.
pub trait Word: std::str::FromStr + Copy {
    const NAMES: &'static [&'static str];
}

macro_rules! words {
    ($( $(#[$doc:meta])* $name:ident { $( $variant:ident => $text:literal ),+ $(,)? } )+) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $( #[serde(rename = $text)] $variant ),+
        }

        impl $name {
            /// Every word, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text ),+
                }
            }

            /// The word as a quoted SQL literal (`'pending'`).
            pub const fn sql(self) -> &'static str {
                match self {
                    $( $name::$variant => concat!("'", $text, "'") ),+
                }
            }
        }

        impl Word for $name {
            const NAMES: &'static [&'static str] = $name::NAMES;
        }

        impl std::str::FromStr for $name {
            type Err = UnknownWord;
            fn from_str(text: &str) -> Result<$name, UnknownWord> {
                match text {
                    $( $text => Ok($name::$variant), )+
                    _ => Err(UnknownWord(concat!($($text, " "),+))),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = UnknownWord;
            fn try_from(text: String) -> Result<$name, UnknownWord> {
                text.parse()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )+};
}

words! {
    /// A Challenge's status (docs/protocol/rest-api.md#responses-and-dates). `expired` is also
    /// what a pending one past its expiration date reads as ([`ChallengeStatus::at`]).
    ChallengeStatus { Pending => "pending", Expired => "expired", Approved => "approved", Denied => "denied" }
    /// A Factor's status.
    FactorStatus { Unverified => "unverified", Verified => "verified" }
    /// A Factor's (and its Challenges' and access tokens') type.
    FactorType { Push => "push", Totp => "totp", Passkeys => "passkeys" }
    /// A push Factor's `Config.NotificationPlatform`.
    NotificationPlatform { Apn => "apn", Fcm => "fcm", None => "none" }
    /// A webhook's status.
    WebhookStatus { Enabled => "enabled", Disabled => "disabled" }
    /// A push Credential's `Type` (`gcm`, the legacy FCM API, is refused).
    CredentialType { Apn => "apn", Fcm => "fcm" }
    /// A row of the push outbox (`pushes.status`).
    PushStatus {
        Queued => "queued",
        Sending => "sending",
        Retrying => "retrying",
        Sent => "sent",
        Failed => "failed",
        Recorded => "recorded",
    }
    /// A row of the webhook outbox (`webhook_deliveries.status`).
    DeliveryStatus {
        Pending => "pending",
        Sending => "sending",
        Retrying => "retrying",
        Delivered => "delivered",
        Failed => "failed",
        Cancelled => "cancelled",
    }
    /// The outcome of one logged attempt of either outbox (`*_attempts.outcome`).
    AttemptResult { Sent => "sent", Retry => "retry", Failed => "failed" }
    /// Which SDK a virtual device imitates on the wire (docs/protocol/device-protocol.md#form-encoding).
    DeviceStyle { Android => "android", Ios => "ios" }
}

impl DeviceStyle {
    /// The push platform this SDK registers a token with.
    pub fn platform(self) -> NotificationPlatform {
        match self {
            DeviceStyle::Android => NotificationPlatform::Fcm,
            DeviceStyle::Ios => NotificationPlatform::Apn,
        }
    }
}

impl ChallengeStatus {
    /// The status clients see at `now`: a pending Challenge past its expiration date is expired.
    pub fn at(self, expiration_date: i64, now: i64) -> ChallengeStatus {
        if self == ChallengeStatus::Pending && expiration_date <= now {
            ChallengeStatus::Expired
        } else {
            self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_unknown_ones_are_refused() {
        for name in ChallengeStatus::NAMES {
            assert_eq!(name.parse::<ChallengeStatus>().map(ChallengeStatus::as_str), Ok(*name));
        }
        assert_eq!(ChallengeStatus::Pending.sql(), "'pending'");
        assert_eq!("Pending".parse::<ChallengeStatus>(), Err(UnknownWord("pending expired approved denied ")));
        assert_eq!(DeliveryStatus::Cancelled.to_string(), "cancelled");
    }

    #[test]
    fn a_pending_challenge_reads_expired_from_its_expiration_date() {
        assert_eq!(ChallengeStatus::Pending.at(100, 99), ChallengeStatus::Pending);
        assert_eq!(ChallengeStatus::Pending.at(100, 100), ChallengeStatus::Expired);
        assert_eq!(ChallengeStatus::Approved.at(100, 200), ChallengeStatus::Approved);
    }
}
