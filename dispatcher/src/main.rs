//! `ferry-dispatcher`: Ferry's data plane as a standalone server.

use clap::Parser;
use ferry_dispatcher::config::DispatcherFlags;

// mimalloc instead of glibc malloc: the data plane allocates per event from several threads;
// glibc's arenas fragmented (RSS grew to 150 MiB after load and stayed) and its malloc/free
// took ~16% of the dispatcher's CPU in a profile at 3,000 events/s.
#[cfg(not(feature = "dhat-heap"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(feature = "dhat-heap")]
#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

/// CloudEvents over HTTP into a Kafka-protocol log and out to subscribers.
#[derive(Parser, Debug)]
#[command(name = "ferry-dispatcher", version)]
struct Cli {
    #[command(flatten)]
    flags: DispatcherFlags,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    #[cfg(feature = "dhat-heap")]
    let _profiler = dhat::Profiler::new_heap();
    ferry_runtime::logging::init("info");
    let cli = Cli::parse();
    let running = ferry_dispatcher::start(cli.flags.into_config()).await?;
    // One machine-readable line for scripts and tests that start the dispatcher on port 0.
    let http = running
        .http_addr
        .map(|a| format!(" http={a}"))
        .unwrap_or_default()
        + &running
            .external_addr
            .map(|a| format!(" external={a}"))
            .unwrap_or_default();
    println!(
        "ferry-dispatcher listening{http} admin={}",
        running.admin_addr
    );
    ferry_runtime::shutdown::signal().await;
    tracing::info!("shutting down: draining deliveries");
    running.shutdown().await;
    tracing::info!("stopped cleanly");
    Ok(())
}
