//! How each SDK encodes form bodies and query strings
//! (docs/protocol/device-protocol.md#form-encoding).
//!
//! - Android (`Uri.Builder.appendQueryParameter`): every character but `A-Za-z0-9_-!.~'()*` is
//!   percent-encoded, pairs in a fixed order.
//! - iOS (`CharacterSet.urlQueryAllowed` minus `+`, applied to the whole `name=value` string):
//!   `=`, `/`, `:`, `@`, `!`, `$`, `'`, `(`, `)`, `*`, `,`, `;` and `?` stay raw inside values; `+`,
//!   space, `{`, `}` and `"` are encoded. The list page token is sent as `pageToken`.

/// Which SDK this device imitates on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Style {
    Android,
    Ios,
}

impl Style {
    /// The push platform this SDK registers with a token.
    pub fn platform(self) -> &'static str {
        match self {
            Style::Android => "fcm",
            Style::Ios => "apn",
        }
    }

    /// The SDK version it reports (`Config.SdkVersion`).
    pub fn sdk_version(self) -> &'static str {
        match self {
            Style::Android => "0.9.0",
            Style::Ios => "3.0.2",
        }
    }

    /// The query parameter name of the page token.
    pub fn page_token_param(self) -> &'static str {
        match self {
            Style::Android => "PageToken",
            Style::Ios => "pageToken",
        }
    }

    /// Encodes name/value pairs as this SDK does.
    pub fn encode(self, pairs: &[(&str, &str)]) -> String {
        let encoded: Vec<String> = match self {
            Style::Android => {
                pairs.iter().map(|(n, v)| format!("{}={}", escape(n, android_raw), escape(v, android_raw))).collect()
            }
            Style::Ios => pairs.iter().map(|(n, v)| escape(&format!("{n}={v}"), ios_raw)).collect(),
        };
        encoded.join("&")
    }
}

fn android_raw(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"_-!.~'()*".contains(&b)
}

fn ios_raw(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*,;=:@/?".contains(&b)
}

fn escape(text: &str, raw: fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if raw(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn android_encodes_everything_but_its_unreserved_set() {
        let body = Style::Android.encode(&[("Binding.PublicKey", "MFk+w/a=="), ("FriendlyName", "Ann's phone")]);
        assert_eq!(body, "Binding.PublicKey=MFk%2Bw%2Fa%3D%3D&FriendlyName=Ann's%20phone");
    }

    #[test]
    fn ios_leaves_equals_and_slash_raw_inside_values() {
        let body = Style::Ios.encode(&[("Binding.PublicKey", "MFk+w/a=="), ("Metadata", r#"{"os":"iOS"}"#)]);
        assert_eq!(body, "Binding.PublicKey=MFk%2Bw/a==&Metadata=%7B%22os%22:%22iOS%22%7D");
    }
}
