//! `ferry-operator`: Ferry's control plane.
//!
//! It will hold the kube-runtime controllers for Broker, Trigger, KafkaChannel, Subscription,
//! KafkaSource and the serving kinds (see DESIGN.md and the operator issue): pure functions
//! decide status, owned objects and the data-plane contract; thin code writes them by
//! server-side apply, under leader election. Today this crate ships the `crdgen` binary
//! (`src/bin/crdgen.rs`), which writes `crds/`.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "ferry-operator: the controllers are not built yet; this release ships the CRDs only \
         (`kubectl apply -f crds/`). `cargo run -p ferry-operator --bin crdgen` regenerates them."
    );
    ExitCode::from(1)
}
