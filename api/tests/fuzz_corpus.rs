//! The api crate's fuzz targets (`fuzz/`, docs/fuzzing.md): their corpora and every input
//! that once failed them, replayed through the same entry points as cargo-fuzz, on stable.

#[test]
fn cesql_inputs() {
    ferry_testkit::fuzz::replay("cesql", ferry_api::fuzzing::cesql);
}

#[test]
fn contract_inputs() {
    ferry_testkit::fuzz::replay("contract", ferry_api::fuzzing::contract);
}
