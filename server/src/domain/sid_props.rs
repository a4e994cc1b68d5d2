//! Property tests of the SID rules (`sid.rs`): every generated or well-formed SID matches its
//! own kind and no other; anything else matches none, and nothing panics.
//!
//! Regression files are committed deliberately: proptest writes each failing case's seed to
//! `server/proptest-regressions/<module path>.txt` and re-runs those seeds first on every run.
//! Commit the file with the fix. The seeds there now are the cases that caught deliberately
//! broken copies of the code (run once to check that each property can fail).

use proptest::prelude::*;

use super::sid::SidKind;

const KINDS: [SidKind; 9] = SidKind::ALL;

fn kind() -> impl Strategy<Value = SidKind> {
    proptest::sample::select(KINDS.to_vec())
}

/// The SID rule written independently of `SidKind::matches`: a prefix and 32 hex digits,
/// counted in characters.
fn oracle(kind: SidKind, value: &str) -> bool {
    let chars: Vec<char> = value.chars().collect();
    chars.len() == 34
        && chars[..2].iter().copied().eq(kind.prefix().chars())
        && chars[2..].iter().all(|c| c.is_ascii_hexdigit())
}

proptest! {
    #[test]
    fn generated_sids_match_their_kind_and_no_other(kind in kind()) {
        let sid = kind.generate();
        for other in KINDS {
            prop_assert_eq!(other.matches(&sid), other == kind, "{} as {:?}", sid, other);
        }
    }

    #[test]
    fn any_well_formed_sid_matches_exactly_its_kind(kind in kind(), digits in "[0-9a-fA-F]{32}") {
        let sid = format!("{}{digits}", kind.prefix());
        let matching: Vec<SidKind> = KINDS.into_iter().filter(|k| k.matches(&sid)).collect();
        prop_assert_eq!(matching, vec![kind]);
    }

    #[test]
    fn arbitrary_text_matches_exactly_when_the_rule_says(
        (kind, value) in kind().prop_flat_map(|kind| {
            let near = format!("{}[0-9a-fA-Fgé]{{31,33}}", kind.prefix());
            (Just(kind), prop_oneof![
                ".{0,40}",
                "(AC|SK|VA|YE|YF|YC|YK|YW|CR|ac|va|Y)[0-9a-fA-F]{30,34}",
                proptest::string::string_regex(&near).unwrap_or_else(|e| panic!("{e}")),
            ])
        }),
    ) {
        prop_assert_eq!(kind.matches(&value), oracle(kind, &value), "{:?}", value);
    }

    #[test]
    fn one_wrong_character_or_length_is_refused(
        kind in kind(),
        digits in "[0-9a-f]{32}",
        at in 2usize..34,
        bad in "[g-zG-Z_\\-é.]",
    ) {
        let sid = format!("{}{digits}", kind.prefix());
        let mut changed: Vec<String> = sid.chars().map(String::from).collect();
        changed[at] = bad;
        let (changed, shorter, longer) = (changed.concat(), &sid[..33], format!("{sid}0"));
        prop_assert!(!kind.matches(&changed));
        prop_assert!(!kind.matches(shorter));
        prop_assert!(!kind.matches(&longer));
    }
}
