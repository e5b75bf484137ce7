//! `ferry-broker`: Ferry's embedded Kafka-compatible log as a standalone server.

use std::time::Duration;

use clap::Parser;
use ferry_broker::{Broker, BrokerFlags};
use ferry_runtime::telemetry::Telemetry;

/// The broker must run on [`ferry_broker::SafeAllocator`]: see its docs (a malformed array
/// length must not abort the process).
#[global_allocator]
static ALLOCATOR: ferry_broker::SafeAllocator = ferry_broker::SafeAllocator;

/// A single-node, durable server that speaks the Kafka wire protocol.
#[derive(Parser, Debug)]
#[command(name = "ferry-broker", version)]
struct Cli {
    #[command(flatten)]
    flags: BrokerFlags,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ferry_runtime::logging::init("info");
    let cli = Cli::parse();
    // Watched from before the line below: a SIGTERM right after it stops the broker cleanly
    // instead of killing it.
    let mut stopping = ferry_runtime::shutdown::on_signal();
    // Spans of Produce and Fetch over OTLP when the standard `OTEL_*` variables say so; a bad
    // value refuses to start, as a bad flag does.
    let telemetry =
        Telemetry::from_env("ferry-broker").map_err(|e| anyhow::anyhow!("{e}; fix or unset it"))?;
    let running = Broker::start_traced(cli.flags.into_config(), telemetry.clone()).await?;
    // One machine-readable line for scripts and tests that start the broker on port 0.
    println!(
        "ferry-broker listening kafka={} admin={}",
        running.kafka_addr, running.admin_addr
    );
    let _ = stopping.wait_for(|stop| *stop).await;
    tracing::info!("shutting down: finishing in-flight requests");
    let stopped = running.shutdown(Duration::from_secs(10)).await;
    // The last spans are sent before exit (bounded by the SDK's shutdown timeout).
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    stopped?;
    tracing::info!("stopped cleanly");
    Ok(())
}
