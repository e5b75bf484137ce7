//! `ferry-operator`: Ferry's control plane (see the library's documentation).

use std::process::ExitCode;

use clap::Parser;
use ferry_operator::args::Args;
use tokio::sync::watch;

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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
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
    let client = match kube::Client::try_default().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "ferry-operator: no Kubernetes API to talk to: {e}; run it in a cluster or set KUBECONFIG"
            );
            return ExitCode::from(2);
        }
    };
    let lease_client = match kube::Client::try_default().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ferry-operator: no Kubernetes API to talk to: {e}");
            return ExitCode::from(2);
        }
    };
    let (stop, stopping) = watch::channel(false);
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("stopping");
        let _ = stop.send(true);
    });
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
