//! `ferry-broker`: Ferry's embedded Kafka-compatible log as a standalone server.

use std::time::Duration;

use clap::Parser;
use ferry_broker::{Broker, BrokerConfig};

/// The broker must run on [`ferry_broker::SafeAllocator`]: see its docs (a malformed array
/// length must not abort the process).
#[global_allocator]
static ALLOCATOR: ferry_broker::SafeAllocator = ferry_broker::SafeAllocator;

/// A single-node, durable server that speaks the Kafka wire protocol.
#[derive(Parser, Debug)]
#[command(name = "ferry-broker", version)]
struct Cli {
    #[command(flatten)]
    config: BrokerConfig,
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
    let running = Broker::start(cli.config).await?;
    // One machine-readable line for scripts and tests that start the broker on port 0.
    println!(
        "ferry-broker listening kafka={} admin={}",
        running.kafka_addr, running.admin_addr
    );
    shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
    running.shutdown(Duration::from_secs(10)).await?;
    tracing::info!("stopped cleanly");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
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
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
