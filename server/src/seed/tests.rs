//! Parsing and checking seed files: each refusal names the field's path, line and column.

use super::*;

const AC: &str = "AC0123456789abcdef0123456789abcdef";
const VA: &str = "VA0123456789abcdef0123456789abcdef";
const CR: &str = "CR0123456789abcdef0123456789abcdef";
const YF: &str = "YF0123456789abcdef0123456789abcdef";

/// A folder of its own with `files` written in it; removed on drop.
struct Folder(PathBuf);

impl Folder {
    fn new(files: &[(&str, &str)]) -> Folder {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("vps-seed-unit-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        Folder(dir)
    }

    fn load(&self, text: &str) -> Result<Seed, String> {
        Seed::from_text(&self.0.join("seed.yaml"), text.to_owned()).map_err(|e| format!("{e:#}"))
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn refused(files: &[(&str, &str)], text: &str) -> String {
    match Folder::new(files).load(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e,
    }
}

fn p8() -> String {
    rcgen::KeyPair::generate().unwrap().serialize_pem()
}

/// An account with an APN token credential (`key.p8`) and a Service using it.
fn with_apn(service_tail: &str) -> String {
    format!(
        "accounts:
  - account_sid: {AC}
    auth_token: token-0123
    credentials:
      - sid: {CR}
        type: apn
        private_key_file: key.p8
        key_id: ABCDE12345
        team_id: TEAM012345
    services:
      - sid: {VA}
        friendly_name: Owl Bank
        push: {{apn_credential_sid: {CR}}}
{service_tail}"
    )
}

#[test]
fn a_valid_file_is_read_with_its_typed_values() {
    let folder = Folder::new(&[("key.p8", &p8())]);
    let text = with_apn(&format!(
        "        totp: {{issuer: Owl, time_step: 30, code_length: 6, skew: 1}}
        webhooks:
          - {{friendly_name: app, webhook_url: 'http://127.0.0.1:9/hook', event_types: ['*', '*'], version: v1}}
        devices:
          - {{identity: user-0001, factor_sid: {YF}, style: ios, push_token: {}}}
",
        "t".repeat(64)
    ));
    let seed = folder.load(&text).unwrap();
    assert_eq!(seed.configured(), (vec![AC.to_owned()], vec![]));
    let service = &seed.file.accounts[0].services[0];
    assert_eq!(service.totp.time_step.map(|t| t.0), Some(30));
    assert_eq!(service.webhooks[0].event_types.0, ["*"], "repeats are dropped");
    assert_eq!(service.webhooks[0].version.as_ref().map(|v| v.value), Some(Version::V1));
    assert!(matches!(seed.secrets[0][0], Secret::ApnToken { .. }));
    let devices = seed.devices();
    assert_eq!(devices.len(), 1);
    assert_eq!((devices[0].identity.as_str(), devices[0].style), ("user-0001", DeviceStyle::Ios));
    assert_eq!(devices[0].path, "accounts[0].services[0].devices[0]");
}

#[test]
fn json_is_read_as_yaml_tabs_included() {
    let text = format!(
        "{{\n\t\"accounts\": [\n\t\t{{\"account_sid\": \"{AC}\", \"auth_token\": \"token-0123\",\n\t\t \"services\": [{{\"sid\": \"{VA}\", \"friendly_name\": \"Owl\", \"push\": {{\"include_date\": true}}}}]}}\n\t]\n}}\n"
    );
    let seed = Folder::new(&[]).load(&text).unwrap();
    assert!(seed.file.accounts[0].services[0].push.include_date);
    let bad = text.replace(VA, "VA123");
    let err = refused(&[], &bad);
    assert!(
        err.contains("accounts[0].services[0].sid: must be VA followed by 32 hexadecimal digits at line 4"),
        "{err}"
    );
}

#[test]
fn a_bad_sid_names_its_path_line_and_column() {
    let text = with_apn("").replace(&format!("sid: {VA}"), "sid: VAnothex");
    let err = refused(&[("key.p8", &p8())], &text);
    assert!(err.starts_with("the seed file "), "{err}");
    assert!(
        err.contains("accounts[0].services[0].sid: must be VA followed by 32 hexadecimal digits at line 11 column 14"),
        "{err}"
    );
}

#[test]
fn each_scalar_is_checked_where_it_stands() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "auth_token: token-0123",
            "auth_token: short",
            "accounts[0].auth_token: must be at least 8 characters at line 3",
        ),
        (
            "        friendly_name: Owl Bank",
            "        friendly_name: '   '",
            "accounts[0].services[0].friendly_name: must not be empty at line 12",
        ),
        (
            "        type: apn",
            "        type: gcm",
            "accounts[0].credentials[0].type: must be one of: apn, fcm at line 6",
        ),
        ("        push: {", "        colour: blue\n        push: {", "accounts[0].services[0]: unknown field `colour`"),
    ];
    for (from, to, wanted) in cases {
        let err = refused(&[("key.p8", &p8())], &with_apn("").replace(from, to));
        assert!(err.contains(wanted), "{to}: {err}");
    }
    let tails: &[(&str, &str)] = &[
        (
            "        totp: {time_step: 90}\n",
            "accounts[0].services[0].totp.time_step: must be an integer from 20 to 60 at line 14",
        ),
        (
            "        webhooks: [{friendly_name: a, webhook_url: 'ftp://x', event_types: ['*']}]\n",
            "webhook_url: must be an absolute http or https URL at line 14",
        ),
        (
            "        webhooks: [{friendly_name: a, webhook_url: 'http://x', event_types: []}]\n",
            "event_types: must list at least one event type at line 14",
        ),
        (
            "        webhooks: [{friendly_name: a, webhook_url: 'http://x', event_types: [challenge.expired]}]\n",
            "event_types[0]: must be one of: *, factor.deleted",
        ),
        (
            "        webhooks: [{friendly_name: a, webhook_url: 'http://x', event_types: ['*'], status: off}]\n",
            "status: must be one of: enabled, disabled",
        ),
        (
            &format!("        devices: [{{identity: bad!, factor_sid: {YF}}}]\n"),
            "devices[0].identity: must be 8 to 64 characters",
        ),
        (
            &format!("        devices: [{{identity: user-0001, factor_sid: {YF}, style: windows}}]\n"),
            "devices[0].style: must be one of: android, ios",
        ),
        (
            "        devices: [{identity: user-0001, factor_sid: YC0123456789abcdef0123456789abcdef}]\n",
            "devices[0].factor_sid: must be YF followed by 32 hexadecimal digits",
        ),
    ];
    for (tail, wanted) in tails {
        let err = refused(&[("key.p8", &p8())], &with_apn(tail));
        assert!(err.contains(wanted), "{tail}: {err}");
    }
}

#[test]
fn credential_material_errors_name_the_file_field_and_its_line() {
    let missing = refused(&[], &with_apn(""));
    assert!(missing.contains("accounts[0].credentials[0].private_key_file: cannot read "), "{missing}");
    assert!(missing.contains("key.p8") && missing.contains("at line 7 column 27"), "{missing}");

    let not_pem = refused(&[("key.p8", "not a key")], &with_apn(""));
    assert!(
        not_pem.contains("accounts[0].credentials[0].private_key_file: must be a PKCS#8 PEM P-256 key (.p8)")
            && not_pem.contains("at line 7"),
        "{not_pem}"
    );

    let bad_key_id = refused(&[("key.p8", &p8())], &with_apn("").replace("ABCDE12345", "short"));
    assert!(
        bad_key_id.contains("accounts[0].credentials[0].key_id: must be 10 letters or digits at line 8"),
        "{bad_key_id}"
    );

    let no_team = refused(&[("key.p8", &p8())], &with_apn("").replace("        team_id: TEAM012345\n", ""));
    assert!(
        no_team.contains("accounts[0].credentials[0].type: this apn credential needs team_id at line 6"),
        "{no_team}"
    );

    let misplaced = refused(
        &[("key.p8", &p8())],
        &with_apn("").replace("key_id: ABCDE12345", "key_id: ABCDE12345\n        secret_file: sa.json"),
    );
    assert!(
        misplaced.contains("accounts[0].credentials[0].secret_file: is not a field of an apn credential at line 9"),
        "{misplaced}"
    );
}

#[test]
fn a_push_setting_naming_a_credential_of_the_other_type_is_refused_at_its_line() {
    let text = with_apn("")
        .replace(&format!("push: {{apn_credential_sid: {CR}}}"), &format!("push: {{fcm_credential_sid: {CR}}}"));
    let err = refused(&[("key.p8", &p8())], &text);
    assert!(
        err.contains(&format!(
            "accounts[0].services[0].push.fcm_credential_sid: {CR} is not an fcm credential at line 13"
        )),
        "{err}"
    );
}

#[test]
fn a_sid_given_twice_is_refused_at_its_second_place() {
    let second = format!("      - sid: {VA}\n        friendly_name: Again\n");
    let err = refused(&[("key.p8", &p8())], &with_apn(&second));
    assert!(err.contains(&format!("accounts[0].services[1].sid: {VA} appears twice in the file at line 14")), "{err}");

    let hooks = "        webhooks:\n          - {friendly_name: app, webhook_url: 'http://x', event_types: ['*']}\n          - {friendly_name: app, webhook_url: 'http://y', event_types: ['*']}\n";
    let err = refused(&[("key.p8", &p8())], &with_apn(hooks));
    assert!(
        err.contains(
            "accounts[0].services[0].webhooks[1].friendly_name: two webhooks of this Service have this name at line 16"
        ),
        "{err}"
    );
}

#[test]
fn tokens_never_appear_in_debug_output() {
    let seed = Folder::new(&[("key.p8", &p8())]).load(&with_apn("")).unwrap();
    let shown = format!("{:?}", seed.file.accounts[0]);
    assert!(!shown.contains("token-0123"), "{shown}");
}
