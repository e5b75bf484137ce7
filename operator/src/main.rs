//! `ferry-operator`: Ferry's control plane (see the library's documentation).

use std::process::ExitCode;

use clap::Parser;
use ferry_operator::args::Args;

// mimalloc instead of glibc malloc: compiling the contract makes large short-lived allocations
// from several threads, which glibc's arenas keep as resident memory.
#[cfg(not(feature = "dhat-heap"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(feature = "dhat-heap")]
#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

#[tokio::main]
async fn main() -> ExitCode {
    #[cfg(feature = "dhat-heap")]
    let _profiler = dhat::Profiler::new_heap();
    let args = Args::parse();
    ferry_runtime::logging::init("info");
    if let Err(e) = ferry_api::observability::Tracing::from_env(|k| std::env::var(k).ok()) {
        eprintln!("ferry-operator: tracing settings: {e}");
        return ExitCode::from(2);
    }
    let listener = match tokio::net::TcpListener::bind(args.metrics_listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "ferry-operator: cannot listen on {} (--metrics-listen): {e}",
                args.metrics_listen
            );
            return ExitCode::from(3);
        }
    };
    // Two clients, two connections: a burst of reconcile requests cannot delay a renewal of
    // the Lease.
    let (client, lease_client) = match (
        ferry_runtime::kube_client::client().await,
        ferry_runtime::kube_client::client().await,
    ) {
        (Ok(c), Ok(l)) => (c, l),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!(
                "ferry-operator: no Kubernetes API to talk to: {e}; run it in a cluster or set KUBECONFIG"
            );
            return ExitCode::from(2);
        }
    };
    let stopping = ferry_runtime::shutdown::on_signal();
    match ferry_operator::app::run_with_lease_client(client, lease_client, args, listener, stopping)
        .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferry-operator: {e}");
            ExitCode::FAILURE
        }
    }
}
