//! The fuzz targets' inputs (`fuzz/seeds/<target>/`, `fuzz/corpus/<target>/` and
//! `fuzz/regressions/<target>/`), for the tests that replay them through the same entry points
//! as cargo-fuzz, on stable.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// Every input kept for `target`: its seeds, the minimized corpus and the inputs that once
/// failed, in path order. Panics when there are none (a renamed target would otherwise test nothing).
pub fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut out = Vec::new();
    for kind in ["seeds", "corpus", "regressions"] {
        let Ok(dir) = std::fs::read_dir(fuzz.join(kind).join(target)) else {
            continue;
        };
        for entry in dir.flatten() {
            let path = entry.path();
            if path.is_file() {
                let bytes = std::fs::read(&path).expect("read a fuzz input");
                out.push((path, bytes));
            }
        }
    }
    out.sort();
    assert!(!out.is_empty(), "no inputs for fuzz target {target}");
    out
}

/// Feeds every input of `target` to `entry`; panics naming each input that made it panic.
pub fn replay(target: &str, mut entry: impl FnMut(&[u8])) {
    let failed: Vec<String> = inputs(target)
        .into_iter()
        .filter(|(_, bytes)| catch_unwind(AssertUnwindSafe(|| entry(bytes))).is_err())
        .map(|(path, _)| path.display().to_string())
        .collect();
    assert!(failed.is_empty(), "inputs that panicked: {failed:#?}");
}
