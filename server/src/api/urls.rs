//! Absolute URLs of resources, built from the configured public base URL. The helper libraries
//! follow `meta.next_page_url` verbatim, so these must point at this server
//! (docs/protocol/rest-api.md#paging).

/// The public base URL, without a trailing slash.
#[derive(Debug, Clone)]
pub struct Urls {
    base: String,
}

impl Urls {
    pub fn new(base: &str) -> Urls {
        Urls { base: base.trim_end_matches('/').to_owned() }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// `base + path` for a path starting with `/`.
    pub fn absolute(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn services(&self) -> String {
        self.absolute("/v2/Services")
    }
    pub fn service(&self, sid: &str) -> String {
        format!("{}/v2/Services/{sid}", self.base)
    }
    pub fn service_child(&self, sid: &str, child: &str) -> String {
        format!("{}/v2/Services/{sid}/{child}", self.base)
    }
    pub fn entity(&self, service: &str, identity: &str) -> String {
        format!("{}/v2/Services/{service}/Entities/{identity}", self.base)
    }
    pub fn entity_child(&self, service: &str, identity: &str, child: &str) -> String {
        format!("{}/v2/Services/{service}/Entities/{identity}/{child}", self.base)
    }
}
