//! Replays the fuzzer's seeds and every input it ever found to crash the
//! request parser (`torque-app/fuzz/regressions/`), so a fixed crash stays
//! fixed without running the fuzzer (`scripts/fuzz.sh`).

use std::path::Path;

#[test]
fn the_fuzzers_seeds_and_findings_still_parse() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut replayed = 0;
    for dir in ["seeds/request_head", "regressions/request_head"] {
        for entry in std::fs::read_dir(fuzz.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| torque_app::web::request::check_invariants(&data));
            assert!(outcome.is_ok(), "{} makes the parser panic", path.display());
            replayed += 1;
        }
    }
    assert!(replayed >= 4, "the seeds are missing");
}
