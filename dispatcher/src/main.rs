//! `ferry-dispatcher`: Ferry's data plane as a standalone server.

use clap::Parser;
use ferry_dispatcher::config::DispatcherConfig;

// mimalloc instead of glibc malloc: the data plane allocates per event from several threads;
// glibc's arenas fragmented (RSS grew to 150 MiB after load and stayed) and its malloc/free
// took ~16% of the dispatcher's CPU in a profile at 3,000 events/s.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// CloudEvents over HTTP into a Kafka-protocol log and out to subscribers.
#[derive(Parser, Debug)]
#[command(name = "ferry-dispatcher", version)]
struct Cli {
    #[command(flatten)]
    config: DispatcherConfig,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let running = ferry_dispatcher::start(cli.config).await?;
    // One machine-readable line for scripts and tests that start the dispatcher on port 0.
    let http = running
        .http_addr
        .map(|a| format!(" http={a}"))
        .unwrap_or_default();
    println!(
        "ferry-dispatcher listening{http} admin={}",
        running.admin_addr
    );
    shutdown_signal().await;
    tracing::info!("shutting down: draining deliveries");
    running.shutdown().await;
    tracing::info!("stopped cleanly");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}
