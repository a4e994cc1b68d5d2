//! No test proves that nothing happened by sleeping: background work is drained
//! (`TestApp::drain`) and then asserted on. Sleeps remain only where real time must pass or a
//! real process is polled with a deadline; each file's count is listed here with its reason, so
//! a new sleep fails this test until it is justified (or replaced by a drain).

use std::collections::BTreeMap;
use std::path::Path;

/// (file under the workspace root, sleeps in it, why).
const ALLOWED: &[(&str, usize, &str)] = &[
    (
        "tests/src/fakes.rs",
        2,
        "slow receivers: a fake holds its answers back (Hold, start_slow) to keep requests in flight",
    ),
    ("tests/src/push.rs", 1, "bounded poll until the background loop, running as in production, has sent"),
    ("tests/src/emulator_clock.rs", 2, "bounded polls until the other instance has read the clock change"),
    ("tests/src/concurrency.rs", 1, "bounded poll of pg_stat_activity until a session waits on the held row lock"),
    (
        "tests/src/faults.rs",
        2,
        "bounded polls for wall-clock recovery: the pool after a refused connection, the accounts cache",
    ),
    ("server/tests/support/mod.rs", 2, "bounded polls of a started binary's /healthz and of a refused start's exit"),
    ("server/tests/graceful_shutdown.rs", 2, "bounded polls of a real process: Connection: close, then its exit"),
    (
        "server/tests/crash_recovery.rs",
        1,
        "bounded poll of a restarted binary (its own wall clock) until the push is sent",
    ),
    ("server/tests/interrupted_attempt.rs", 2, "bounded polls of a real binary: sends in flight, then settled rows"),
    ("server/tests/multi_instance.rs", 3, "bounded polls of three real binaries: claims held, taken over, all settled"),
    ("server/tests/shared_clock.rs", 1, "bounded poll of a second binary until it has read the clock change"),
    ("server/tests/webhook_crash.rs", 1, "bounded poll of a restarted binary until every event arrived"),
];

fn sleeps_under(root: &Path, dir: &str, found: &mut BTreeMap<String, usize>) {
    let needle = concat!("sle", "ep(");
    let mut pending = vec![root.join(dir)];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let count = std::fs::read_to_string(&path).unwrap().matches(needle).count();
                if count > 0 {
                    let name = path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
                    found.insert(name, count);
                }
            }
        }
    }
}

#[test]
fn no_test_sleeps_outside_the_allow_list() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut found = BTreeMap::new();
    sleeps_under(root, "tests/src", &mut found);
    sleeps_under(root, "server/tests", &mut found);
    let allowed: BTreeMap<String, usize> = ALLOWED.iter().map(|(file, n, _)| ((*file).to_owned(), *n)).collect();
    assert_eq!(
        found, allowed,
        "sleeps per file differ from the allow-list in tests/src/sleeps.rs: drain background work \
         (TestApp::drain) instead of sleeping, or add the sleep there with its reason"
    );
}
