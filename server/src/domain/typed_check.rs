//! Keeps the domain typed: outside `server/src/domain/` no source file checks a SID by hand
//! (`SidKind`, `starts_with("YF")`) or spells a status word as a literal (`"pending"`,
//! `'verified'` in SQL). SIDs are parsed into their types (`sid.rs`); statuses are the enums of
//! `status.rs`, whose `as_str()`/`sql()` give the text where the store needs it.
//!
//! The words checked are the enums' own (`NAMES`), so a new status is checked as soon as it is
//! declared. Not checked: the platform `none`, a word the code uses for other things (JWS
//! `alg: none` in the hostile-token tests, a Challenge's `responded_reason`).
//! Exemptions, if one is ever needed, go in [`EXEMPT`] with their reason; an exemption that
//! matches nothing fails the test, so none outlives its cause.

use std::path::{Path, PathBuf};

use super::sid::SidKind;
use super::status::{
    AttemptResult, ChallengeStatus, CredentialType, DeliveryStatus, FactorStatus, FactorType, NotificationPlatform,
    PushStatus, WebhookStatus,
};

/// (file under `server/src`, the offending text, why it stays).
const EXEMPT: &[(&str, &str, &str)] = &[];

const KINDS: [SidKind; 9] = SidKind::ALL;

/// Every text whose presence in a file outside `domain/` is a hand-made check or a literal.
fn banned() -> Vec<String> {
    let mut banned = vec!["SidKind".to_owned()];
    for kind in KINDS {
        for call in ["starts_with", "strip_prefix"] {
            banned.push(format!("{call}(\"{}", kind.prefix()));
        }
    }
    let words = [
        ChallengeStatus::NAMES,
        FactorStatus::NAMES,
        FactorType::NAMES,
        PushStatus::NAMES,
        DeliveryStatus::NAMES,
        AttemptResult::NAMES,
        WebhookStatus::NAMES,
        CredentialType::NAMES,
        NotificationPlatform::NAMES,
    ];
    let other_uses = NotificationPlatform::None.as_str();
    for word in words.into_iter().flatten().filter(|w| **w != other_uses) {
        banned.push(format!("\"{word}\""));
        banned.push(format!("'{word}'"));
    }
    banned
}

/// `(line number, banned text)` of each offence in `text`.
fn offences(text: &str, banned: &[String]) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        for b in banned {
            if line.contains(b.as_str()) {
                found.push((n + 1, b.clone()));
            }
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_sid_check_or_status_literal_outside_the_domain() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let banned = banned();
    let mut used = vec![false; EXEMPT.len()];
    let mut report = Vec::new();
    for path in &files {
        let relative = path.strip_prefix(&src).unwrap().to_string_lossy().replace('\\', "/");
        if relative.starts_with("domain/") {
            continue;
        }
        let text = std::fs::read_to_string(path).unwrap();
        for (line, what) in offences(&text, &banned) {
            let exemption = EXEMPT.iter().position(|(file, needle, _)| *file == relative && *needle == what);
            match exemption {
                Some(i) => used[i] = true,
                None => report.push(format!("server/src/{relative}:{line}: {what}")),
            }
        }
    }
    assert!(files.len() > 50, "read only {} files under {}", files.len(), src.display());
    assert!(report.is_empty(), "hand-made SID checks or status literals outside domain/:\n{}", report.join("\n"));
    let stale: Vec<_> = EXEMPT.iter().zip(used).filter(|(_, u)| !u).map(|(e, _)| e).collect();
    assert!(stale.is_empty(), "exemptions that match nothing: {stale:?}");
}

#[test]
fn the_check_finds_what_the_code_used_to_do() {
    // Lines as they stood before the domain was typed: each must be caught.
    let before = r#"
    if !SidKind::Factor.matches(&path.sid) || !SidKind::Service.matches(&path.service_sid) {
    if factor.status != "verified" {
        status: "pending".to_owned(),
        "UPDATE challenges SET status = 'expired', date_updated = $1 WHERE status = 'pending' AND id IN \
    let waiting = matches!(d.status.as_str(), "pending" | "retrying");
    if username.starts_with("AC") {
        factor_type: "push".to_owned(),
        "apn" => "apn",
"#;
    let found = offences(before, &banned());
    let lines: Vec<usize> = found.iter().map(|(line, _)| *line).collect();
    for line in 2..=9 {
        assert!(lines.contains(&line), "line {line} of the sample was not caught: {found:?}");
    }
    assert!(offences("let sid = FactorSid::parse(raw); // a pending Challenge", &banned()).is_empty());
}
