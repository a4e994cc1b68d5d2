//! Twilio's date format. Responses carry exactly `YYYY-MM-DDTHH:MM:SSZ`: twilio-python and the
//! mobile SDKs parse only that form (docs/protocol/rest-api.md#responses-and-dates,
//! docs/protocol/device-protocol.md#dates).

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::OffsetDateTime;

/// Formats Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format(unix: i64) -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

/// Formats Unix seconds as an HTTP date (`Thu, 30 Jul 2015 20:00:00 GMT`), for the `Date`
/// header the SDKs re-sync their clocks from (docs/protocol/device-protocol.md#clock-sync).
pub fn http(unix: i64) -> String {
    let format =
        format_description!("[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT");
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| "Thu, 01 Jan 1970 00:00:00 GMT".to_owned())
}

/// Parses an ISO 8601 / RFC 3339 date-time (any offset, optional fractions) into Unix seconds.
/// The helper libraries send `YYYY-MM-DDTHH:MM:SSZ`, but pass a user's own string through.
pub fn parse(text: &str) -> Option<i64> {
    OffsetDateTime::parse(text.trim(), &Rfc3339).ok().map(OffsetDateTime::unix_timestamp)
}

/// An optional date as JSON: a string, or `null`.
pub fn format_opt(unix: Option<i64>) -> Option<String> {
    unix.map(format)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_whole_seconds_in_utc_with_literal_z() {
        assert_eq!(format(1_438_286_400), "2015-07-30T20:00:00Z");
        assert_eq!(format(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn formats_http_dates() {
        assert_eq!(http(1_438_286_400), "Thu, 30 Jul 2015 20:00:00 GMT");
        assert_eq!(http(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn parses_twilio_form_offsets_and_fractions() {
        assert_eq!(parse("2015-07-30T20:00:00Z"), Some(1_438_286_400));
        assert_eq!(parse("2015-07-30T22:00:00+02:00"), Some(1_438_286_400));
        assert_eq!(parse("2015-07-30T20:00:00.750Z"), Some(1_438_286_400));
        assert_eq!(parse("2015-07-30 20:00"), None);
        assert_eq!(parse("tomorrow"), None);
    }
}
