//! Twilio's Verify v2 list envelope: the `meta` object and `PageToken` paging.
//!
//! `PageToken` is an opaque keyset cursor (the id of the row a page starts after or ends
//! before), so every page costs the same however deep it is. It also carries the number of the
//! page it leads to: the SDKs page with `PageToken` alone (docs/ARCHITECTURE.md, "Keyset
//! paging"), so `meta.page` and the previous page's URL come from the token. `Page` is "simply
//! for client state" (spec): validated, never used to skip rows or to number a page.

use actix_web::HttpResponse;
use serde::Serialize;
use serde_json::{Map, Value};

use super::params::Params;
use crate::crypto::{b64url, b64url_decode};
use crate::error::{ApiError, ApiResult};
use crate::store::{Cursor, Page, Window};

pub const DEFAULT_PAGE_SIZE: i64 = 50;
pub const MAX_PAGE_SIZE: i64 = 1000;

/// The paging parameters of one list request.
#[derive(Debug, Clone)]
pub struct PageRequest {
    pub size: i64,
    /// The page's number: the token's, 0 without a token.
    pub page: i64,
    pub token: Option<String>,
    pub window: Window,
}

impl PageRequest {
    /// Reads `PageSize`, `Page` and `PageToken` (also iOS's `pageToken`).
    pub fn from_query(q: &Params, descending: bool) -> ApiResult<PageRequest> {
        let size = match q.get("PageSize") {
            None => DEFAULT_PAGE_SIZE,
            Some(v) => match v.trim().parse::<i64>() {
                Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
                _ => return Err(ApiError::InvalidPageSize),
            },
        };
        if let Some(v) = q.get("Page") {
            if !v.trim().parse::<i64>().is_ok_and(|n| n >= 0) {
                return Err(ApiError::invalid("Page", "must be an integer of at least 0"));
            }
        }
        let token = q.get("PageToken").or_else(|| q.get("pageToken")).filter(|t| !t.is_empty());
        let (cursor, page) = match token {
            None => (Cursor::Start, 0),
            Some(t) => decode_token(t).ok_or(ApiError::InvalidPageToken)?,
        };
        Ok(PageRequest {
            size,
            page,
            token: token.map(str::to_owned),
            window: Window { cursor, descending, limit: size },
        })
    }
}

/// `PT` + base64url of `a<id>.<page>` (the page after row `id`) or `b<id>.<page>` (the page
/// before it), `<page>` being the number of the page the token leads to.
fn encode_token(cursor: Cursor, page: i64) -> String {
    let text = match cursor {
        Cursor::After(id) => format!("a{id}.{page}"),
        Cursor::Before(id) => format!("b{id}.{page}"),
        Cursor::Start => String::new(),
    };
    format!("PT{}", b64url(text.as_bytes()))
}

/// The cursor and page number of a token this server issued; `None` for anything else. A page
/// after a row is never the first page.
fn decode_token(token: &str) -> Option<(Cursor, i64)> {
    let raw = b64url_decode(token.strip_prefix("PT")?)?;
    let text = std::str::from_utf8(&raw).ok()?;
    let (id, page) = text.get(1..)?.split_once('.')?;
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !digits(id) || !digits(page) {
        return None;
    }
    let (id, page) = (id.parse::<i64>().ok()?, i64::from(page.parse::<u32>().ok()?));
    match text.as_bytes().first()? {
        b'a' if page > 0 => Some((Cursor::After(id), page)),
        b'b' => Some((Cursor::Before(id), page)),
        _ => None,
    }
}

#[derive(Serialize)]
struct Meta {
    page: i64,
    page_size: i64,
    first_page_url: String,
    previous_page_url: Option<String>,
    url: String,
    next_page_url: Option<String>,
    key: &'static str,
}

/// A list page: `{<key>: [...], "meta": {...}}`. `filters` are echoed into every paging URL,
/// before `PageSize`, `Page` and `PageToken`.
pub fn list_response<R, T: Serialize>(
    key: &'static str,
    list_url: &str,
    filters: &[(&str, String)],
    request: &PageRequest,
    page: Page<R>,
    id: impl Fn(&R) -> i64,
    render: impl Fn(&R) -> T,
) -> HttpResponse {
    let url_for = |page_number: i64, token: Option<&str>| {
        let mut url = format!("{list_url}?");
        for (name, value) in filters {
            url.push_str(name);
            url.push('=');
            url.push_str(&encode_component(value));
            url.push('&');
        }
        url.push_str(&format!("PageSize={}&Page={page_number}", request.size));
        if let Some(token) = token {
            url.push_str("&PageToken=");
            url.push_str(token);
        }
        url
    };
    let next = match page.rows.last() {
        Some(last) if page.has_next => {
            let number = request.page + 1;
            Some(url_for(number, Some(&encode_token(Cursor::After(id(last)), number))))
        }
        _ => None,
    };
    let previous = match page.rows.first() {
        Some(first) if page.has_previous && request.page > 0 => {
            let number = request.page - 1;
            Some(url_for(number, Some(&encode_token(Cursor::Before(id(first)), number))))
        }
        _ => None,
    };
    let meta = Meta {
        page: request.page,
        page_size: request.size,
        first_page_url: url_for(0, None),
        previous_page_url: previous,
        url: url_for(request.page, request.token.as_deref()),
        next_page_url: next,
        key,
    };
    let items: Vec<Value> = page.rows.iter().map(|r| serde_json::to_value(render(r)).unwrap_or(Value::Null)).collect();
    let mut body = Map::new();
    body.insert(key.to_owned(), Value::Array(items));
    body.insert("meta".to_owned(), serde_json::to_value(meta).unwrap_or(Value::Null));
    HttpResponse::Ok().json(body)
}

/// Percent-encodes a query value (RFC 3986 unreserved characters pass).
fn encode_component(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
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
    fn tokens_round_trip_and_garbage_is_refused() {
        for (cursor, page) in [(Cursor::After(42), 1), (Cursor::Before(7), 0), (Cursor::After(i64::MAX), 9)] {
            assert_eq!(decode_token(&encode_token(cursor, page)), Some((cursor, page)));
        }
        let token = |text: &str| format!("PT{}", b64url(text.as_bytes()));
        for bad in ["", "PT", "xyz", "PTbm9wZQ", "PT!!", "PTYS0x"] {
            assert_eq!(decode_token(bad), None, "{bad}");
        }
        for bad in ["a42", "a42.0", "a42.", "a.1", "a-1.2", "a1.-2", "a1.+2", "b1.2.3", "c1.2", "a1.99999999999"] {
            assert_eq!(decode_token(&token(bad)), None, "{bad}");
        }
    }

    #[test]
    fn page_size_and_page_are_validated() {
        let q = |s: &str| Params::decode(s.as_bytes()).unwrap_or_default();
        assert!(matches!(PageRequest::from_query(&q("PageSize=0"), false), Err(ApiError::InvalidPageSize)));
        assert!(matches!(PageRequest::from_query(&q("PageSize=1001"), false), Err(ApiError::InvalidPageSize)));
        assert!(matches!(PageRequest::from_query(&q("PageSize=ten"), false), Err(ApiError::InvalidPageSize)));
        assert!(PageRequest::from_query(&q("Page=-1"), false).is_err());
        assert!(matches!(PageRequest::from_query(&q("PageToken=nope"), false), Err(ApiError::InvalidPageToken)));
        let ok = PageRequest::from_query(&q("PageSize=1000&Page=3"), true);
        assert!(matches!(ok, Ok(PageRequest { size: 1000, page: 0, .. })), "no token: the first page");
        let token = encode_token(Cursor::After(5), 2);
        let ok = PageRequest::from_query(&q(&format!("Page=7&PageToken={token}")), true);
        assert!(matches!(ok, Ok(PageRequest { page: 2, .. })), "the token numbers the page");
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode_component("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }
}
