//! The dispatcher's fuzz target (`fuzz/`, docs/fuzzing.md): its corpus and every input that
//! once failed it, replayed through the same entry point as cargo-fuzz, on stable.

#[test]
fn cloudevent_ingress_inputs() {
    ferry_testkit::fuzz::replay("cloudevent_ingress", ferry_dispatcher::fuzzing::ingress);
}
