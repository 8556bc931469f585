//! The repository's test data (`testdata/` at the repository root: Sealed Secrets vectors and the
//! controllers' CRDs; `testdata/README.md` says where each file came from).

use std::path::PathBuf;

/// Path of `testdata/<rel>`; panics naming the path when it is missing.
pub fn testdata(rel: &str) -> PathBuf {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata")).join(rel);
    assert!(path.exists(), "test data {} is missing from the repository", path.display());
    path
}

/// Contents of `testdata/<rel>`.
pub fn read_testdata(rel: &str) -> String {
    let path = testdata(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}
