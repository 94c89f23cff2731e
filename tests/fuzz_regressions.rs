//! Every input of the fuzzer's corpus (`tests/fuzz/corpus/`) and every input
//! that once broke something (`tests/fuzz/regressions/`) goes through the
//! fuzzer's checks (`tests/fuzz/check.rs`): no panic, and the decoders agree.
//! The fuzzer itself is `examples/fuzz.rs`.

#[path = "fuzz/check.rs"]
mod check;

use std::path::PathBuf;

fn inputs(directory: &str) -> Vec<PathBuf> {
    let directory = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(directory);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&directory)
        .unwrap_or_else(|error| panic!("{}: {error}", directory.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    paths.sort();
    paths
}

fn check_all(directory: &str) -> usize {
    let paths = inputs(directory);
    for path in &paths {
        let input = std::fs::read(path).unwrap();
        if let Err(disagreement) = check::check(&input) {
            panic!("{}: {disagreement}", path.display());
        }
    }
    paths.len()
}

#[test]
fn the_corpus_passes_the_fuzz_checks() {
    assert!(
        check_all("tests/fuzz/corpus") >= 30,
        "the corpus went missing"
    );
}

#[test]
fn kept_regressions_pass_the_fuzz_checks() {
    check_all("tests/fuzz/regressions");
}
