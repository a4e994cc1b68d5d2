//! Validation of JSON response bodies against the named schemas
//! (`components.schemas`) of an OpenAPI 3.0 document, so that the end-to-end
//! tests can check that the emulator answers with exactly the shapes Twilio's
//! official spec (`reference/twilio-oai/*.json`) describes.
//!
//! This module owns the schema semantics the tests rely on; it implements the
//! subset of OpenAPI 3.0 Schema Objects that Twilio's specs use:
//!
//! * `$ref` to any local pointer (`#/components/schemas/...`), resolved
//!   recursively, with cycle detection; siblings of `$ref` are ignored, as
//!   OpenAPI 3.0 prescribes;
//! * `type` (`object`, `array`, `string`, `integer`, `number`, `boolean`); an
//!   `integer` must be written as a JSON integer (`4`, not `4.0`);
//! * `nullable: true`; without it `null` is an error wherever `type` or `enum`
//!   is given (a schema with neither, like `{}`, accepts anything, as in
//!   OpenAPI 3.0.3); `nullable` also admits `null` next to an `enum`;
//! * `enum`, `properties`, `required`, `additionalProperties` (`false` or a
//!   schema), `items`;
//! * `pattern` (compiled with the `regex` crate and searched, not implicitly
//!   anchored: Twilio's patterns carry their own `^...$`), `minLength` /
//!   `maxLength` (in characters), `minimum` / `maximum`;
//! * `format`: `date-time` must be EXACTLY `YYYY-MM-DDTHH:MM:SSZ` (stricter than
//!   RFC 3339 on purpose: Twilio's helper libraries only parse that form),
//!   `uri` must be an absolute `http(s)` URL, `uri-map` (Twilio's) must be an
//!   object whose values are all such URLs, `int32` / `int64` bound integers;
//!   other formats are annotations and are ignored.
//!
//! Annotations (`description`, `example`, `default`, `title`, `x-*`, ...) are
//! ignored. Constraint keywords outside this subset (`allOf`, `oneOf`,
//! `anyOf`, `not`, `multipleOf`, ...) are reported as problems rather than
//! silently accepted, so a spec that starts using them makes the tests fail
//! loudly instead of passing vacuously.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt::Display;
use std::path::Path;

use regex::Regex;
use serde_json::{Map, Number, Value};

/// Constraint keywords this validator does not implement; a schema using one is
/// reported as a problem instead of being treated as satisfied.
const UNSUPPORTED_KEYWORDS: &[&str] = &[
    "allOf",
    "oneOf",
    "anyOf",
    "not",
    "multipleOf",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
];

/// A parsed OpenAPI 3.0 document, ready to validate instances against its
/// `components.schemas`.
pub struct OpenApi {
    doc: Value,
    /// Every string-valued `pattern` found in the document, compiled once.
    patterns: HashMap<String, Result<Regex, String>>,
}

impl OpenApi {
    /// Reads and parses an OpenAPI 3.0 document in JSON form.
    pub fn from_json_file(path: &Path) -> Result<OpenApi, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let doc: Value =
            serde_json::from_str(&text).map_err(|e| format!("{} is not valid JSON: {e}", path.display()))?;
        match doc.get("openapi").and_then(Value::as_str) {
            Some(v) if v.starts_with("3.0.") => {}
            other => return Err(format!("{} is not an OpenAPI 3.0 document (openapi = {other:?})", path.display())),
        }
        Ok(OpenApi::from_value(doc))
    }

    /// Wraps an already parsed document (no version check).
    pub fn from_value(doc: Value) -> OpenApi {
        let mut patterns = HashMap::new();
        collect_patterns(&doc, &mut patterns);
        OpenApi { doc, patterns }
    }

    /// Validate `instance` against `components.schemas[name]`.
    /// Returns every problem found (empty Vec = valid), each naming the JSON pointer of the offending value.
    pub fn validate(&self, schema_name: &str, instance: &Value) -> Vec<String> {
        let Some(schema) = self.schema(schema_name) else {
            return vec![format!("at {}: unknown schema {schema_name:?}: not in components.schemas", show_pointer(""))];
        };
        let mut walk = Walk { api: self, errors: Vec::new(), ref_stack: Vec::new() };
        walk.check(schema, &schema_location(schema_name), instance, "");
        walk.errors
    }

    /// Like validate, and additionally requires that every property listed in the schema's `properties`
    /// (at the top level) is present in the instance (Twilio's schemas mark nothing `required`, but the
    /// emulator must emit every property). Returns all problems.
    pub fn validate_complete(&self, schema_name: &str, instance: &Value) -> Vec<String> {
        let mut errors = self.validate(schema_name, instance);
        let (Some(schema), Some(object)) = (self.schema(schema_name), instance.as_object()) else {
            // Unknown schema or non-object instance: `validate` has said so.
            return errors;
        };
        let (schema, location) = match self.resolve_top(schema, schema_location(schema_name)) {
            Ok(found) => found,
            Err(problem) => {
                errors.push(format!("at {}: {problem}", show_pointer("")));
                return errors;
            }
        };
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            for name in properties.keys() {
                if !object.contains_key(name) {
                    errors.push(format!(
                        "at {}: missing property {name:?} (every property of {location} must be emitted)",
                        show_pointer(&child_pointer("", name))
                    ));
                }
            }
        }
        errors
    }

    /// The raw schema value, for tests that compare schemas between documents.
    pub fn schema(&self, schema_name: &str) -> Option<&Value> {
        self.doc.get("components")?.get("schemas")?.get(schema_name)
    }

    /// Follows a chain of `$ref`s from a top-level schema to the schema object
    /// that carries the keywords.
    fn resolve_top<'a>(&'a self, mut schema: &'a Value, mut location: String) -> Result<(&'a Value, String), String> {
        let mut seen: Vec<&str> = Vec::new();
        while let Some(reference) = schema.get("$ref") {
            let reference = resolve_target(reference)?;
            if seen.contains(&reference) {
                return Err(format!("cyclic $ref {reference:?} from {location}"));
            }
            seen.push(reference);
            let Some(target) = self.doc.pointer(&reference[1..]) else {
                return Err(format!("unresolvable $ref {reference:?} in {location}"));
            };
            schema = target;
            location = reference.to_owned();
        }
        Ok((schema, location))
    }
}

/// One validation run: the problems found so far, and the `$ref`s followed at
/// the current instance location (to detect reference cycles).
struct Walk<'a> {
    api: &'a OpenApi,
    errors: Vec<String>,
    ref_stack: Vec<&'a str>,
}

impl<'a> Walk<'a> {
    fn fail(&mut self, pointer: &str, message: impl Display) {
        self.errors.push(format!("at {}: {message}", show_pointer(pointer)));
    }

    /// Validates a value nested inside the current one; `$ref` cycle tracking
    /// starts afresh there, since recursion through the instance terminates.
    fn descend(&mut self, schema: &'a Value, location: &str, instance: &Value, pointer: &str) {
        let saved = std::mem::take(&mut self.ref_stack);
        self.check(schema, location, instance, pointer);
        self.ref_stack = saved;
    }

    fn check(&mut self, schema: &'a Value, location: &str, instance: &Value, pointer: &str) {
        let Some(keywords) = schema.as_object() else {
            self.fail(pointer, format!("schema {location} is not an object"));
            return;
        };
        if let Some(reference) = keywords.get("$ref") {
            self.check_ref(reference, location, instance, pointer);
            return;
        }
        for keyword in UNSUPPORTED_KEYWORDS {
            if keywords.contains_key(*keyword) {
                self.fail(
                    pointer,
                    format!("schema {location} uses `{keyword}`, which this validator does not implement"),
                );
            }
        }
        if instance.is_null() {
            let nullable = keywords.get("nullable") == Some(&Value::Bool(true));
            if !nullable && (keywords.contains_key("type") || keywords.contains_key("enum")) {
                self.fail(pointer, format!("null is not allowed (schema {location} is not nullable)"));
            }
            return;
        }
        if let Some(expected) = keywords.get("type") {
            match type_matches(expected, instance) {
                Ok(true) => {}
                Ok(false) => {
                    self.fail(
                        pointer,
                        format!(
                            "expected type {}, found {} {} (schema {location})",
                            show(expected),
                            kind(instance),
                            show(instance)
                        ),
                    );
                    // The remaining keywords would only repeat the type error.
                    return;
                }
                Err(problem) => {
                    self.fail(pointer, format!("schema {location}: {problem}"));
                    return;
                }
            }
        }
        if let Some(allowed) = keywords.get("enum") {
            match allowed.as_array() {
                Some(values) if values.contains(instance) => {}
                Some(_) => self
                    .fail(pointer, format!("{} is not one of {} (schema {location})", show(instance), show(allowed))),
                None => self.fail(pointer, format!("schema {location}: `enum` is not an array")),
            }
        }
        match instance {
            Value::String(text) => self.check_string(keywords, location, text, pointer),
            Value::Number(number) => self.check_number(keywords, location, number, pointer),
            Value::Object(object) => self.check_object(keywords, location, object, pointer),
            Value::Array(elements) => self.check_array(keywords, location, elements, pointer),
            Value::Null | Value::Bool(_) => {}
        }
    }

    fn check_ref(&mut self, reference: &'a Value, location: &str, instance: &Value, pointer: &str) {
        let reference = match resolve_target(reference) {
            Ok(reference) => reference,
            Err(problem) => {
                self.fail(pointer, format!("schema {location}: {problem}"));
                return;
            }
        };
        if self.ref_stack.contains(&reference) {
            self.fail(pointer, format!("cyclic $ref {reference:?} in {location}"));
            return;
        }
        let Some(target) = self.api.doc.pointer(&reference[1..]) else {
            self.fail(pointer, format!("unresolvable $ref {reference:?} in {location}"));
            return;
        };
        self.ref_stack.push(reference);
        self.check(target, reference, instance, pointer);
        self.ref_stack.pop();
    }

    fn check_string(&mut self, keywords: &Map<String, Value>, location: &str, text: &str, pointer: &str) {
        let length = text.chars().count();
        if let Some(min) = keywords.get("minLength") {
            match min.as_u64() {
                Some(min) if (length as u64) < min => self.fail(
                    pointer,
                    format!(
                        "{} has {length} characters, fewer than minLength {min} (schema {location})",
                        show_str(text)
                    ),
                ),
                Some(_) => {}
                None => self.fail(pointer, format!("schema {location}: `minLength` is not a non-negative integer")),
            }
        }
        if let Some(max) = keywords.get("maxLength") {
            match max.as_u64() {
                Some(max) if (length as u64) > max => self.fail(
                    pointer,
                    format!(
                        "{} has {length} characters, more than maxLength {max} (schema {location})",
                        show_str(text)
                    ),
                ),
                Some(_) => {}
                None => self.fail(pointer, format!("schema {location}: `maxLength` is not a non-negative integer")),
            }
        }
        if let Some(pattern) = keywords.get("pattern") {
            match pattern.as_str() {
                Some(pattern) => self.check_pattern(pattern, location, text, pointer),
                None => self.fail(pointer, format!("schema {location}: `pattern` is not a string")),
            }
        }
        match keywords.get("format").and_then(Value::as_str) {
            Some("date-time") if !is_twilio_date_time(text) => self.fail(
                pointer,
                format!(
                    "{} is not a date-time of the exact form YYYY-MM-DDTHH:MM:SSZ (schema {location})",
                    show_str(text)
                ),
            ),
            Some("uri") if !is_http_url(text) => self.fail(
                pointer,
                format!("{} is not an absolute http(s) URL (format uri, schema {location})", show_str(text)),
            ),
            _ => {}
        }
    }

    fn check_pattern(&mut self, pattern: &str, location: &str, text: &str, pointer: &str) {
        let compiled_late;
        let regex = match self.api.patterns.get(pattern) {
            Some(Ok(regex)) => regex,
            Some(Err(problem)) => {
                self.fail(pointer, format!("schema {location}: {problem}"));
                return;
            }
            // Only reachable for documents whose patterns were not collected.
            None => match Regex::new(pattern) {
                Ok(regex) => {
                    compiled_late = regex;
                    &compiled_late
                }
                Err(e) => {
                    self.fail(pointer, format!("schema {location}: pattern {pattern:?} does not compile: {e}"));
                    return;
                }
            },
        };
        if !regex.is_match(text) {
            self.fail(pointer, format!("{} does not match pattern {pattern:?} (schema {location})", show_str(text)));
        }
    }

    fn check_number(&mut self, keywords: &Map<String, Value>, location: &str, number: &Number, pointer: &str) {
        if let Some(format) = keywords.get("format").and_then(Value::as_str) {
            let in_range = match format {
                "int32" => Some(number.as_i64().is_some_and(|n| i32::try_from(n).is_ok())),
                "int64" => Some(number.is_i64()),
                _ => None,
            };
            if in_range == Some(false) {
                self.fail(pointer, format!("{number} is not an integer within the {format} range (schema {location})"));
            }
        }
        for (keyword, violated_by, relation) in
            [("minimum", Ordering::Less, "less than"), ("maximum", Ordering::Greater, "greater than")]
        {
            let Some(bound) = keywords.get(keyword) else {
                continue;
            };
            let Some(bound) = bound.as_number() else {
                self.fail(pointer, format!("schema {location}: `{keyword}` is not a number"));
                continue;
            };
            if compare_numbers(number, bound) == Some(violated_by) {
                self.fail(pointer, format!("{number} is {relation} {keyword} {bound} (schema {location})"));
            }
        }
    }

    fn check_object(
        &mut self,
        keywords: &'a Map<String, Value>,
        location: &str,
        object: &Map<String, Value>,
        pointer: &str,
    ) {
        let properties = match keywords.get("properties") {
            None => None,
            Some(Value::Object(properties)) => Some(properties),
            Some(_) => {
                self.fail(pointer, format!("schema {location}: `properties` is not an object"));
                None
            }
        };
        if let Some(properties) = properties {
            for (name, subschema) in properties {
                if let Some(value) = object.get(name) {
                    let sublocation = child_pointer(&format!("{location}/properties"), name);
                    self.descend(subschema, &sublocation, value, &child_pointer(pointer, name));
                }
            }
        }
        if let Some(required) = keywords.get("required") {
            match required.as_array() {
                Some(names) => {
                    for name in names {
                        match name.as_str() {
                            Some(name) if !object.contains_key(name) => self.fail(
                                &child_pointer(pointer, name),
                                format!("missing required property {name:?} (schema {location})"),
                            ),
                            Some(_) => {}
                            None => self.fail(pointer, format!("schema {location}: `required` lists a non-string")),
                        }
                    }
                }
                None => self.fail(pointer, format!("schema {location}: `required` is not an array")),
            }
        }
        let declared = |name: &str| properties.is_some_and(|p| p.contains_key(name));
        match keywords.get("additionalProperties") {
            None | Some(Value::Bool(true)) => {}
            Some(Value::Bool(false)) => {
                for name in object.keys().filter(|name| !declared(name)) {
                    self.fail(
                        &child_pointer(pointer, name),
                        format!("property {name:?} is not allowed (additionalProperties is false in {location})"),
                    );
                }
            }
            Some(subschema @ Value::Object(_)) => {
                let sublocation = format!("{location}/additionalProperties");
                for (name, value) in object.iter().filter(|(name, _)| !declared(name)) {
                    self.descend(subschema, &sublocation, value, &child_pointer(pointer, name));
                }
            }
            Some(_) => self
                .fail(pointer, format!("schema {location}: `additionalProperties` is neither a boolean nor a schema")),
        }
        if keywords.get("format").and_then(Value::as_str) == Some("uri-map") {
            for (name, value) in object {
                if !value.as_str().is_some_and(is_http_url) {
                    self.fail(
                        &child_pointer(pointer, name),
                        format!("{} is not an absolute http(s) URL (format uri-map, schema {location})", show(value)),
                    );
                }
            }
        }
    }

    fn check_array(&mut self, keywords: &'a Map<String, Value>, location: &str, elements: &[Value], pointer: &str) {
        let Some(items) = keywords.get("items") else {
            return;
        };
        let sublocation = format!("{location}/items");
        for (index, element) in elements.iter().enumerate() {
            self.descend(items, &sublocation, element, &child_pointer(pointer, &index.to_string()));
        }
    }
}

/// Checks a `$ref` value: a string naming a pointer into this document.
fn resolve_target(reference: &Value) -> Result<&str, String> {
    match reference.as_str() {
        Some(reference) if reference.starts_with('#') => Ok(reference),
        Some(reference) => Err(format!("only local $refs (\"#/...\") are supported, not {reference:?}")),
        None => Err("`$ref` is not a string".to_owned()),
    }
}

fn collect_patterns(value: &Value, patterns: &mut HashMap<String, Result<Regex, String>>) {
    match value {
        Value::Object(object) => {
            if let Some(Value::String(pattern)) = object.get("pattern") {
                if !patterns.contains_key(pattern) {
                    let compiled =
                        Regex::new(pattern).map_err(|e| format!("pattern {pattern:?} does not compile: {e}"));
                    patterns.insert(pattern.clone(), compiled);
                }
            }
            for nested in object.values() {
                collect_patterns(nested, patterns);
            }
        }
        Value::Array(elements) => {
            for nested in elements {
                collect_patterns(nested, patterns);
            }
        }
        _ => {}
    }
}

fn type_matches(expected: &Value, instance: &Value) -> Result<bool, String> {
    let Some(expected) = expected.as_str() else {
        return Err(format!("`type` {} is not a string (OpenAPI 3.0 has no type arrays)", show(expected)));
    };
    Ok(match expected {
        "object" => instance.is_object(),
        "array" => instance.is_array(),
        "string" => instance.is_string(),
        // serde_json keeps `4.0` and `1e3` as floats: only integer literals count.
        "integer" => instance.is_i64() || instance.is_u64(),
        "number" => instance.is_number(),
        "boolean" => instance.is_boolean(),
        other => return Err(format!("unknown type {other:?}")),
    })
}

fn compare_numbers(a: &Number, b: &Number) -> Option<Ordering> {
    fn as_integer(n: &Number) -> Option<i128> {
        n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from))
    }
    match (as_integer(a), as_integer(b)) {
        (Some(a), Some(b)) => Some(a.cmp(&b)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` and nothing else (no fraction, no offset, upper-case
/// `T` and `Z`), with a real calendar date and a time of day up to 23:59:59.
fn is_twilio_date_time(text: &str) -> bool {
    fn digits(bytes: &[u8]) -> Option<u32> {
        bytes.iter().try_fold(0u32, |acc, &b| b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0')))
    }
    let b = text.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' || b[19] != b'Z'
    {
        return false;
    }
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) = (
        digits(&b[0..4]),
        digits(&b[5..7]),
        digits(&b[8..10]),
        digits(&b[11..13]),
        digits(&b[14..16]),
        digits(&b[17..19]),
    ) else {
        return false;
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days_in_month).contains(&day) && hour <= 23 && minute <= 59 && second <= 59
}

/// An absolute `http` or `https` URL with a non-empty host, an optional numeric
/// port, and no whitespace or control characters.
fn is_http_url(text: &str) -> bool {
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((scheme, rest)) = text.split_once("://") else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return false;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, host_port)| host_port);
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        let Some((host, after)) = bracketed.split_once(']') else {
            return false;
        };
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(port) => Some(port),
                None => return false,
            },
        };
        if !host.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.') {
            return false;
        }
        (host, port)
    } else {
        match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    let host_ok =
        !host.is_empty() && host.chars().all(|c| c.is_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '%' | ':'));
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok
}

/// `#/components/schemas/<name>`, with the name escaped as a pointer segment.
fn schema_location(schema_name: &str) -> String {
    child_pointer("#/components/schemas", schema_name)
}

/// Appends one RFC 6901 segment (`~` → `~0`, `/` → `~1`) to a JSON pointer.
fn child_pointer(pointer: &str, segment: &str) -> String {
    format!("{pointer}/{}", segment.replace('~', "~0").replace('/', "~1"))
}

fn show_pointer(pointer: &str) -> String {
    if pointer.is_empty() {
        "\"\" (the document root)".to_owned()
    } else {
        format!("{pointer:?}")
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn show_str(text: &str) -> String {
    show(&Value::String(text.to_owned()))
}

/// A value as compact JSON, cut short if long.
fn show(value: &Value) -> String {
    const LIMIT: usize = 120;
    let text = value.to_string();
    match text.char_indices().nth(LIMIT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::PathBuf;
    use std::sync::OnceLock;

    fn spec_path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../reference/twilio-oai/twilio_verify_v2.json")
    }

    fn spec() -> &'static OpenApi {
        static SPEC: OnceLock<OpenApi> = OnceLock::new();
        SPEC.get_or_init(|| match OpenApi::from_json_file(&spec_path()) {
            Ok(api) => api,
            Err(problem) => panic!("{problem}"),
        })
    }

    const CHALLENGE: &str = "verify.v2.service.entity.challenge";
    const SERVICE: &str = "verify.v2.service";
    const WEBHOOK: &str = "verify.v2.service.webhook";

    /// Every example body the spec gives for `schema_name`: responses whose
    /// schema is a `$ref` to it, and the elements of list pages whose array
    /// property's `items` is such a `$ref`. Labelled for failure messages.
    fn spec_examples(schema_name: &str) -> Vec<(String, Value)> {
        let target = json!(schema_location(schema_name));
        let mut found = Vec::new();
        let Some(paths) = spec().doc.get("paths").and_then(Value::as_object) else {
            panic!("the spec has no paths");
        };
        for (path, operations) in paths {
            let Some(operations) = operations.as_object() else {
                continue;
            };
            for (method, operation) in operations {
                let Some(responses) = operation.get("responses").and_then(Value::as_object) else {
                    continue;
                };
                for (status, response) in responses {
                    let Some(content) = response.pointer("/content/application~1json") else {
                        continue;
                    };
                    let schema = content.get("schema").unwrap_or(&Value::Null);
                    let Some(examples) = content.get("examples").and_then(Value::as_object) else {
                        continue;
                    };
                    for (example_name, example) in examples {
                        let label = format!("{method} {path} {status} {example_name}");
                        let Some(body) = example.get("value") else {
                            continue;
                        };
                        if schema.get("$ref") == Some(&target) {
                            found.push((label.clone(), body.clone()));
                        }
                        let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
                            continue;
                        };
                        for (list, property) in properties {
                            if property.pointer("/items/$ref") != Some(&target) {
                                continue;
                            }
                            let elements = body.get(list).and_then(Value::as_array).cloned().unwrap_or_default();
                            for (i, element) in elements.into_iter().enumerate() {
                                found.push((format!("{label} /{list}/{i}"), element));
                            }
                        }
                    }
                }
            }
        }
        found
    }

    /// The first example for `schema_name` labelled with `label_fragment`.
    fn example(schema_name: &str, label_fragment: &str) -> Value {
        match spec_examples(schema_name).into_iter().find(|(label, _)| label.contains(label_fragment)) {
            Some((_, body)) => body,
            None => panic!("no example {label_fragment:?} for {schema_name}"),
        }
    }

    fn with(mut body: Value, pointer: &str, value: Value) -> Value {
        match body.pointer_mut(pointer) {
            Some(slot) => *slot = value,
            None => panic!("{pointer} not in {body}"),
        }
        body
    }

    fn without(mut body: Value, property: &str) -> Value {
        match body.as_object_mut().and_then(|o| o.remove(property)) {
            Some(_) => body,
            None => panic!("{property} not in {body}"),
        }
    }

    /// Asserts that exactly the listed problems were reported: one per entry,
    /// each at the given pointer and mentioning the given text.
    #[track_caller]
    fn assert_problems(errors: &[String], expected: &[(&str, &str)]) {
        let matches = |error: &String, (pointer, text): &(&str, &str)| {
            error.starts_with(&format!("at {}:", show_pointer(pointer))) && error.contains(text)
        };
        assert_eq!(errors.len(), expected.len(), "problems: {errors:#?}, expected {expected:?}");
        for wanted in expected {
            assert!(
                errors.iter().any(|e| matches(e, wanted)),
                "no problem at {:?} mentioning {:?} in {errors:#?}",
                wanted.0,
                wanted.1
            );
        }
    }

    // ---------------------------------------------------------------- spec --

    #[test]
    fn spec_loads_and_exposes_raw_schemas() {
        let api = spec();
        let Some(challenge) = api.schema(CHALLENGE) else {
            panic!("{CHALLENGE} missing");
        };
        assert_eq!(
            challenge.pointer("/properties/status/$ref"),
            Some(&json!("#/components/schemas/challenge_enum_challenge_statuses"))
        );
        assert!(api.schema(SERVICE).is_some());
        assert!(api.schema(WEBHOOK).is_some());
        assert!(api.schema("verify.v2.no_such_thing").is_none());
        assert_problems(&api.validate("verify.v2.no_such_thing", &json!({})), &[("", "unknown schema")]);
    }

    #[test]
    fn from_json_file_reports_missing_and_non_openapi_files() {
        let missing = OpenApi::from_json_file(Path::new("/nonexistent/spec.json"));
        assert!(matches!(missing, Err(ref e) if e.contains("cannot read")));
        // Cargo.toml is not JSON.
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        assert!(matches!(OpenApi::from_json_file(&manifest), Err(ref e) if e.contains("not valid JSON")));
    }

    /// The keywords `components.schemas` of the Verify spec uses are exactly the
    /// ones this module implements or deliberately ignores; fails if Twilio adds
    /// one, so the validator gets extended rather than silently passing.
    #[test]
    fn spec_uses_only_supported_keywords() {
        fn walk(schema: &Value, out: &mut std::collections::BTreeSet<String>) {
            let Some(keywords) = schema.as_object() else {
                return;
            };
            out.extend(keywords.keys().cloned());
            if let Some(properties) = keywords.get("properties").and_then(Value::as_object) {
                properties.values().for_each(|s| walk(s, out));
            }
            for key in ["items", "additionalProperties"] {
                if let Some(nested) = keywords.get(key) {
                    walk(nested, out);
                }
            }
        }
        let mut used = std::collections::BTreeSet::new();
        let Some(schemas) = spec().doc.pointer("/components/schemas").and_then(Value::as_object) else {
            panic!("no components.schemas");
        };
        schemas.values().for_each(|s| walk(s, &mut used));
        let known = [
            "$ref",
            "type",
            "nullable",
            "enum",
            "properties",
            "items",
            "pattern",
            "minLength",
            "maxLength",
            "format",
            "default",
            "description",
            "x-twilio",
        ];
        let unknown: Vec<_> = used.iter().filter(|k| !known.contains(&k.as_str())).collect();
        assert!(unknown.is_empty(), "new keywords in the spec: {unknown:?}");
    }

    #[test]
    fn every_spec_example_of_the_push_schemas_is_valid_and_complete() {
        let mut failures = Vec::new();
        for name in [CHALLENGE, SERVICE, WEBHOOK] {
            let examples = spec_examples(name);
            assert!(examples.len() >= 3, "too few examples for {name}: {}", examples.len());
            for (label, body) in examples {
                let problems = spec().validate_complete(name, &body);
                if !problems.is_empty() {
                    failures.push((label, problems));
                }
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
    }

    /// Twilio's own examples double as a false-positive check of the whole
    /// validator: every example body typed by a named schema (70 in the
    /// vendored spec) validates and is complete, date-times and SIDs included.
    #[test]
    fn every_spec_example_of_every_schema_is_valid_and_complete() {
        let Some(schemas) = spec().doc.pointer("/components/schemas").and_then(Value::as_object) else {
            panic!("no components.schemas");
        };
        let mut checked = 0;
        let mut failures = Vec::new();
        for name in schemas.keys() {
            for (label, body) in spec_examples(name) {
                checked += 1;
                let problems = spec().validate_complete(name, &body);
                if !problems.is_empty() {
                    failures.push((name.clone(), label, problems));
                }
            }
        }
        assert!(checked >= 60, "only {checked} examples found");
        assert!(failures.is_empty(), "{failures:#?}");
    }

    // ---------------------------------------------------------- challenge --

    fn challenge() -> Value {
        example(CHALLENGE, "post /v2/Services/{ServiceSid}/Entities/{Identity}/Challenges 201 createPush")
    }

    #[test]
    fn challenge_wrong_types() {
        let api = spec();
        assert_problems(
            &api.validate(CHALLENGE, &with(challenge(), "/date_created", json!(5))),
            &[("/date_created", "expected type \"string\", found integer 5")],
        );
        assert_problems(
            &api.validate(CHALLENGE, &with(challenge(), "/identity", json!(true))),
            &[("/identity", "expected type \"string\", found boolean")],
        );
        assert_problems(
            &api.validate(CHALLENGE, &with(challenge(), "/links", json!(["x"]))),
            &[("/links", "expected type \"object\", found array")],
        );
        // A `$ref`ed enum is typed too.
        assert_problems(
            &api.validate(CHALLENGE, &with(challenge(), "/status", json!(1))),
            &[("/status", "expected type \"string\"")],
        );
        assert_problems(&api.validate(CHALLENGE, &json!([])), &[("", "expected type \"object\", found array")]);
    }

    #[test]
    fn challenge_null_only_where_nullable() {
        let api = spec();
        // status, responded_reason and factor_type are $refs to non-nullable enums.
        for field in ["status", "responded_reason", "factor_type"] {
            let pointer = format!("/{field}");
            assert_problems(
                &api.validate(CHALLENGE, &with(challenge(), &pointer, Value::Null)),
                &[(&pointer, "null is not allowed")],
            );
        }
        // Everything else is nullable, including the untyped `details`.
        for field in ["sid", "date_responded", "details", "hidden_details", "url", "links"] {
            let body = with(challenge(), &format!("/{field}"), Value::Null);
            assert_problems(&api.validate_complete(CHALLENGE, &body), &[]);
        }
        // Untyped nullable properties accept any JSON value.
        let body = with(challenge(), "/metadata", json!([1, "two", {"three": 3.5}]));
        assert_problems(&api.validate(CHALLENGE, &body), &[]);
    }

    #[test]
    fn challenge_bad_enum() {
        let api = spec();
        assert_problems(
            &api.validate(CHALLENGE, &with(challenge(), "/status", json!("bogus"))),
            &[("/status", "\"bogus\" is not one of [\"pending\",\"expired\",\"approved\",\"denied\"]")],
        );
        assert_problems(
            &api.validate(CHALLENGE, &with(challenge(), "/factor_type", json!("PUSH"))),
            &[("/factor_type", "is not one of")],
        );
        assert_problems(
            &api.validate(CHALLENGE, &with(challenge(), "/responded_reason", json!(""))),
            &[("/responded_reason", "is not one of")],
        );
    }

    #[test]
    fn challenge_bad_sids() {
        let api = spec();
        let hex32 = "0123456789abcdefABCDEF0123456789";
        assert_problems(&api.validate(CHALLENGE, &with(challenge(), "/sid", json!(format!("YC{hex32}")))), &[]);
        // Right length, not hex.
        assert_problems(
            &api.validate(CHALLENGE, &with(challenge(), "/sid", json!(format!("YC{}", "z".repeat(32))))),
            &[("/sid", "does not match pattern \"^YC[0-9a-fA-F]{32}$\"")],
        );
        // Wrong prefix: a challenge SID where the factor SID belongs.
        assert_problems(
            &api.validate(CHALLENGE, &with(challenge(), "/factor_sid", json!(format!("YC{hex32}")))),
            &[("/factor_sid", "does not match pattern \"^YF")],
        );
        // Too short: both the length and the pattern complain.
        assert_problems(
            &api.validate(CHALLENGE, &with(challenge(), "/entity_sid", json!("YE123"))),
            &[("/entity_sid", "fewer than minLength 34"), ("/entity_sid", "does not match pattern")],
        );
        // Too long: the pattern's `$` anchor and maxLength both apply.
        assert_problems(
            &api.validate(CHALLENGE, &with(challenge(), "/account_sid", json!(format!("AC{hex32}0")))),
            &[("/account_sid", "more than maxLength 34"), ("/account_sid", "does not match pattern")],
        );
    }

    #[test]
    fn challenge_strict_date_time() {
        let api = spec();
        for good in ["2015-07-30T20:00:00Z", "2024-02-29T23:59:59Z", "2000-02-29T00:00:00Z"] {
            assert_problems(&api.validate(CHALLENGE, &with(challenge(), "/date_created", json!(good))), &[]);
        }
        for bad in [
            "2015-07-30T20:00:00.000Z", // fractional seconds
            "2015-07-30T20:00:00.5Z",
            "2015-07-30T20:00:00+00:00", // offset instead of Z
            "2015-07-30T20:00:00",       // no zone
            "2015-07-30 20:00:00Z",      // space separator
            "2015-07-30t20:00:00z",      // lower case
            "2015-07-30T20:00Z",         // no seconds
            "2015-7-30T20:00:00Z",       // unpadded month
            "2015-02-29T20:00:00Z",      // not a leap year
            "1900-02-29T20:00:00Z",      // century, not a leap year
            "2015-13-01T20:00:00Z",
            "2015-04-31T20:00:00Z",
            "2015-07-30T24:00:00Z",
            "2015-07-30T20:60:00Z",
            "2015-07-30T20:00:60Z",
            "Thu, 30 Jul 2015 20:00:00 +0000", // RFC 2822, as some Twilio APIs use
            "",
        ] {
            assert_problems(
                &api.validate(CHALLENGE, &with(challenge(), "/expiration_date", json!(bad))),
                &[("/expiration_date", "is not a date-time of the exact form YYYY-MM-DDTHH:MM:SSZ")],
            );
        }
    }

    #[test]
    fn challenge_uri_and_uri_map() {
        let api = spec();
        for good in ["http://127.0.0.1:8080/v2/Services", "https://[::1]:4433/x?y=1#z", "HTTPS://verify.twilio.com"] {
            assert_problems(&api.validate(CHALLENGE, &with(challenge(), "/url", json!(good))), &[]);
        }
        for bad in [
            "/v2/Services/VA/Entities", // relative
            "ftp://verify.twilio.com/x",
            "https://",
            "https:///path",
            "https://host:port/",
            "https://verify.twilio.com/a b",
            "verify.twilio.com/v2",
        ] {
            assert_problems(
                &api.validate(CHALLENGE, &with(challenge(), "/url", json!(bad))),
                &[("/url", "is not an absolute http(s) URL (format uri,")],
            );
        }
        // `links` is Twilio's `uri-map`: every value must be such a URL.
        assert_problems(
            &api.validate(CHALLENGE, &with(challenge(), "/links/notifications", json!("/relative/Notifications"))),
            &[("/links/notifications", "format uri-map")],
        );
        assert_problems(
            &api.validate(CHALLENGE, &with(challenge(), "/links", json!({"a/b": 7}))),
            &[("/links/a~1b", "7 is not an absolute http(s) URL")],
        );
    }

    #[test]
    fn challenge_completeness() {
        let api = spec();
        let body = without(challenge(), "responded_reason");
        // Nothing is `required` in Twilio's schemas...
        assert_problems(&api.validate(CHALLENGE, &body), &[]);
        // ...but the emulator must emit every property.
        assert_problems(
            &api.validate_complete(CHALLENGE, &body),
            &[("/responded_reason", "missing property \"responded_reason\"")],
        );
        let body = without(without(challenge(), "links"), "hidden_details");
        assert_problems(
            &api.validate_complete(CHALLENGE, &body),
            &[("/links", "missing property"), ("/hidden_details", "missing property")],
        );
        // validate_complete still reports ordinary problems, all of them.
        let body = with(without(challenge(), "url"), "/status", json!("nope"));
        assert_problems(
            &api.validate_complete(CHALLENGE, &body),
            &[("/url", "missing property"), ("/status", "is not one of")],
        );
        // Extra properties are allowed: the schema has no additionalProperties.
        let body = with(challenge(), "/status", json!("expired"));
        let Value::Object(mut object) = body else { panic!("not an object") };
        object.insert("extra".to_owned(), json!(1));
        assert_problems(&api.validate_complete(CHALLENGE, &Value::Object(object)), &[]);
    }

    #[test]
    fn challenge_reports_every_problem_at_once() {
        let mut body = with(challenge(), "/sid", json!("nope-nope-nope-nope-nope-nope-nope"));
        body = with(body, "/date_updated", json!("2015-07-30T20:00:00.123Z"));
        body = with(body, "/status", Value::Null);
        body = with(body, "/url", json!(42));
        assert_problems(
            &spec().validate(CHALLENGE, &body),
            &[
                ("/sid", "does not match pattern"),
                ("/date_updated", "date-time"),
                ("/status", "null is not allowed"),
                ("/url", "expected type \"string\""),
            ],
        );
    }

    // ------------------------------------------------------------ service --

    fn service() -> Value {
        example(SERVICE, "get /v2/Services/{Sid} 200 fetchRecord")
    }

    #[test]
    fn service_integer_and_boolean_fields() {
        let api = spec();
        assert_problems(&api.validate(SERVICE, &with(service(), "/code_length", json!(10))), &[]);
        for bad in [json!(4.5), json!(4.0), json!("4"), json!(true)] {
            assert_problems(
                &api.validate(SERVICE, &with(service(), "/code_length", bad)),
                &[("/code_length", "expected type \"integer\"")],
            );
        }
        // code_length is the only non-nullable scalar of a Service.
        assert_problems(
            &api.validate(SERVICE, &with(service(), "/code_length", Value::Null)),
            &[("/code_length", "null is not allowed")],
        );
        assert_problems(
            &api.validate(SERVICE, &with(service(), "/psd2_enabled", json!("false"))),
            &[("/psd2_enabled", "expected type \"boolean\", found string \"false\"")],
        );
        assert_problems(&api.validate(SERVICE, &with(service(), "/psd2_enabled", Value::Null)), &[]);
    }

    #[test]
    fn service_sids_dates_and_completeness() {
        let api = spec();
        assert_problems(
            &api.validate(SERVICE, &with(service(), "/sid", json!("YCaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"))),
            &[("/sid", "does not match pattern \"^VA[0-9a-fA-F]{32}$\"")],
        );
        assert_problems(
            &api.validate(
                SERVICE,
                &with(service(), "/default_template_sid", json!("HJAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAG")),
            ),
            &[("/default_template_sid", "does not match pattern")],
        );
        assert_problems(
            &api.validate(SERVICE, &with(service(), "/date_updated", json!("2015-07-30T20:00:00.000000Z"))),
            &[("/date_updated", "date-time")],
        );
        // `push` is untyped and nullable: free-form configuration.
        assert_problems(&api.validate(SERVICE, &with(service(), "/push", json!({"include_date": "x"}))), &[]);
        assert_problems(
            &api.validate_complete(SERVICE, &without(service(), "verify_event_subscription_enabled")),
            &[("/verify_event_subscription_enabled", "missing property")],
        );
    }

    // ------------------------------------------------------------ webhook --

    fn webhook() -> Value {
        example(WEBHOOK, "post /v2/Services/{ServiceSid}/Webhooks 201 create")
    }

    #[test]
    fn webhook_enums_arrays_and_urls() {
        let api = spec();
        assert_problems(
            &api.validate(WEBHOOK, &with(webhook(), "/webhook_method", json!("PUT"))),
            &[("/webhook_method", "\"PUT\" is not one of [\"GET\",\"POST\"]")],
        );
        assert_problems(
            &api.validate(WEBHOOK, &with(webhook(), "/status", json!("Enabled"))),
            &[("/status", "is not one of")],
        );
        assert_problems(
            &api.validate(WEBHOOK, &with(webhook(), "/version", Value::Null)),
            &[("/version", "null is not allowed")],
        );
        assert_problems(
            &api.validate(WEBHOOK, &with(webhook(), "/event_types/1", json!(7))),
            &[("/event_types/1", "expected type \"string\", found integer 7")],
        );
        assert_problems(
            &api.validate(WEBHOOK, &with(webhook(), "/event_types", json!("factor.deleted"))),
            &[("/event_types", "expected type \"array\"")],
        );
        // Items of `{"type": "string"}` are not nullable.
        assert_problems(
            &api.validate(WEBHOOK, &with(webhook(), "/event_types/0", Value::Null)),
            &[("/event_types/0", "null is not allowed")],
        );
        assert_problems(&api.validate(WEBHOOK, &with(webhook(), "/event_types", json!([]))), &[]);
        assert_problems(
            &api.validate(WEBHOOK, &with(webhook(), "/webhook_url", json!("owlbank.twilio.com"))),
            &[("/webhook_url", "absolute http(s) URL")],
        );
        assert_problems(
            &api.validate(WEBHOOK, &with(webhook(), "/sid", json!("YWaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"))),
            &[("/sid", "fewer than minLength 34"), ("/sid", "does not match pattern")],
        );
        assert_problems(
            &api.validate_complete(WEBHOOK, &without(webhook(), "event_types")),
            &[("/event_types", "missing property")],
        );
    }

    // ----------------------------------------- keywords Twilio doesn't use --

    /// A small document exercising the keywords the Verify spec does not use
    /// (`required`, `additionalProperties`, `minimum`/`maximum`, int formats),
    /// recursive `$ref`s and pointer escaping.
    fn synthetic() -> OpenApi {
        OpenApi::from_value(json!({
            "openapi": "3.0.1",
            "components": {"schemas": {
                "closed": {
                    "type": "object",
                    "required": ["id"],
                    "additionalProperties": false,
                    "properties": {
                        "id": {"type": "integer", "format": "int32", "minimum": 1, "maximum": 100},
                        "big": {"type": "integer", "format": "int64"},
                        "ratio": {"type": "number", "minimum": 0, "maximum": 1.5},
                        "a/b~c": {"type": "string", "minLength": 2, "maxLength": 3},
                        "tags": {"$ref": "#/components/schemas/string_map"},
                        "free": {"type": "object"},
                        "kind": {"type": "string", "enum": ["x", "y"], "nullable": true}
                    }
                },
                "string_map": {"type": "object", "additionalProperties": {"type": "string", "pattern": "^[a-z]+$"}},
                "tree": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "children": {"type": "array", "items": {"$ref": "#/components/schemas/tree"}}
                    }
                },
                "alias": {"$ref": "#/components/schemas/alias2"},
                "alias2": {"$ref": "#/components/schemas/closed"},
                "loop_a": {"$ref": "#/components/schemas/loop_b"},
                "loop_b": {"$ref": "#/components/schemas/loop_a"},
                "dangling": {"$ref": "#/components/schemas/nowhere"},
                "external": {"$ref": "other.json#/components/schemas/x"},
                "choice": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
                "bad_pattern": {"type": "string", "pattern": "(unclosed"},
                "weird_type": {"type": "date"}
            }}
        }))
    }

    #[test]
    fn required_and_additional_properties() {
        let api = synthetic();
        assert_problems(&api.validate("closed", &json!({"id": 5})), &[]);
        assert_problems(
            &api.validate("closed", &json!({"id": 5, "extra": true, "more": null})),
            &[("/extra", "property \"extra\" is not allowed"), ("/more", "is not allowed")],
        );
        assert_problems(&api.validate("closed", &json!({})), &[("/id", "missing required property \"id\"")]);
        // additionalProperties as a schema, reached through a $ref.
        assert_problems(&api.validate("closed", &json!({"id": 1, "tags": {"a": "ok"}})), &[]);
        assert_problems(
            &api.validate("closed", &json!({"id": 1, "tags": {"a": "ok", "b": "NOT", "c": 3}})),
            &[("/tags/b", "does not match pattern \"^[a-z]+$\""), ("/tags/c", "expected type \"string\"")],
        );
        // A free-form object accepts any object.
        assert_problems(&api.validate("closed", &json!({"id": 1, "free": {"x": [1, {"y": null}]}})), &[]);
        // nullable + enum: null is fine, other values must be listed.
        assert_problems(&api.validate("closed", &json!({"id": 1, "kind": null})), &[]);
        assert_problems(&api.validate("closed", &json!({"id": 1, "kind": "z"})), &[("/kind", "is not one of")]);
    }

    #[test]
    fn numeric_bounds_and_formats() {
        let api = synthetic();
        assert_problems(&api.validate("closed", &json!({"id": 100, "ratio": 1.5})), &[]);
        assert_problems(&api.validate("closed", &json!({"id": 0})), &[("/id", "less than minimum 1")]);
        assert_problems(&api.validate("closed", &json!({"id": 101})), &[("/id", "greater than maximum 100")]);
        assert_problems(
            &api.validate("closed", &json!({"id": 1, "ratio": -0.5})),
            &[("/ratio", "less than minimum 0")],
        );
        assert_problems(
            &api.validate("closed", &json!({"id": 1, "ratio": 1.6})),
            &[("/ratio", "greater than maximum 1.5")],
        );
        // An integer literal is a number.
        assert_problems(&api.validate("closed", &json!({"id": 1, "ratio": 1})), &[]);
        // int32 range (also out of [1, 100], hence two problems).
        assert_problems(
            &api.validate("closed", &json!({"id": 2_147_483_648_i64})),
            &[("/id", "int32 range"), ("/id", "greater than maximum")],
        );
        assert_problems(&api.validate("closed", &json!({"id": 1, "big": i64::MAX})), &[]);
        assert_problems(&api.validate("closed", &json!({"id": 1, "big": i64::MIN})), &[]);
        assert_problems(&api.validate("closed", &json!({"id": 1, "big": u64::MAX})), &[("/big", "int64 range")]);
        assert_problems(
            &api.validate("closed", &json!({"id": 1, "big": 1e3})),
            &[("/big", "expected type \"integer\", found number 1000.0")],
        );
    }

    #[test]
    fn string_lengths_count_characters_and_pointers_are_escaped() {
        let api = synthetic();
        // Three characters, nine bytes.
        assert_problems(&api.validate("closed", &json!({"id": 1, "a/b~c": "äöü"})), &[]);
        assert_problems(
            &api.validate("closed", &json!({"id": 1, "a/b~c": "ä"})),
            &[("/a~1b~0c", "1 characters, fewer than minLength 2")],
        );
        assert_problems(
            &api.validate("closed", &json!({"id": 1, "a/b~c": "abcd"})),
            &[("/a~1b~0c", "more than maxLength 3")],
        );
    }

    #[test]
    fn refs_resolve_recursively() {
        let api = synthetic();
        let tree = json!({"name": "root", "children": [
            {"name": "a", "children": []},
            {"name": "b", "children": [{"name": "c", "children": [{"name": 5}]}]}
        ]});
        assert_problems(
            &api.validate("tree", &tree),
            &[("/children/1/children/0/children/0/name", "expected type \"string\"")],
        );
        // A chain of aliases reaches `closed`, for validate and validate_complete.
        assert_problems(&api.validate("alias", &json!({"id": 1, "nope": 1})), &[("/nope", "not allowed")]);
        let complete = api.validate_complete("alias", &json!({"id": 1}));
        assert_eq!(complete.len(), 6, "{complete:#?}");
        assert!(complete.iter().all(|e| e.contains("missing property")), "{complete:#?}");
        assert_problems(&api.validate_complete("tree", &json!({"name": "x"})), &[("/children", "missing property")]);
    }

    #[test]
    fn broken_or_unsupported_schemas_are_reported_not_ignored() {
        let api = synthetic();
        assert_problems(&api.validate("loop_a", &json!(1)), &[("", "cyclic $ref")]);
        assert_problems(&api.validate_complete("loop_a", &json!({})), &[("", "cyclic $ref"), ("", "cyclic $ref")]);
        assert_problems(&api.validate("dangling", &json!(1)), &[("", "unresolvable $ref")]);
        assert_problems(&api.validate("external", &json!(1)), &[("", "only local $refs")]);
        assert_problems(
            &api.validate("choice", &json!("x")),
            &[("", "`oneOf`, which this validator does not implement")],
        );
        assert_problems(&api.validate("bad_pattern", &json!("x")), &[("", "does not compile")]);
        assert_problems(&api.validate("weird_type", &json!("x")), &[("", "unknown type \"date\"")]);
    }
}
