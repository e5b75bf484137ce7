//! `ferry`: Ferry's command line. See the crate library for what each command does.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ferry::{dev, replay, send, tail, trace, validate};

// The embedded broker decodes untrusted frames; see `ferry_broker::SafeAllocator`.
#[global_allocator]
static ALLOCATOR: ferry_broker::SafeAllocator = ferry_broker::SafeAllocator;

/// Knative-style eventing and scale-to-zero serving on a Kafka-protocol log.
#[derive(Parser)]
#[command(name = "ferry", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the manifests on this machine: the embedded broker, the dispatcher and every
    /// Service revision as a local process, reloaded when the files change.
    ///
    /// Brokers and KafkaChannels take events at <ingress>/<namespace>/<name>; Services get a
    /// local URL; `<data-dir>/status.json` holds the printed table as JSON for scripts. Ctrl-C drains
    /// deliveries and stops everything cleanly.
    ///
    /// Exit codes: 0 stopped by Ctrl-C/SIGTERM; 1 a manifest is invalid, unsupported, or
    /// refers to something that does not exist; 2 bad arguments; 3 a component could not start
    /// (for example a port in use).
    #[command(
        after_help = "Examples:\n  ferry dev -f examples/cart/\n  ferry dev -f broker.yaml -f triggers.yaml --ingress 127.0.0.1:9000\n  ferry dev -f examples/cart/ --kafka kafka.internal:9092"
    )]
    Dev(dev::DevOptions),
    /// Check Knative manifests the way the operator and `ferry dev` read them.
    ///
    /// Exit codes: 0 all valid; 1 a manifest is invalid or uses a field Ferry does not
    /// support; 2 bad command-line arguments.
    #[command(
        after_help = "Examples:\n  ferry validate -f examples/cart/\n  ferry validate -f broker.yaml -f triggers.yaml -o json"
    )]
    Validate(validate::Validate),
    /// Send one CloudEvent (binary mode) to a Broker or KafkaChannel and print the answer.
    ///
    /// Exit codes: 0 accepted (2xx); 1 rejected (the status and reason are printed); 2 bad
    /// arguments; 3 the ingress could not be reached.
    #[command(
        after_help = "Examples:\n  ferry send default/default --type cart.created --source /shop --data '{\"cart\":\"c1\"}'\n  ferry send http://127.0.0.1:8080/default/orders --type order.placed --source /cli --ext partitionkey=c1 --data @order.json"
    )]
    Send(send::SendRequest),
    /// Re-deliver a Trigger's history to its subscriber, e.g. to rebuild a projection.
    ///
    /// Reads the Broker's log from --from up to its end at the start of the replay and delivers
    /// every event that passes the Trigger's filters with the Trigger's delivery spec (retries,
    /// dead-letter sink) and traffic split, one at a time in log order. The Trigger's own
    /// position in the log is not changed.
    ///
    /// Exit codes: 0 every matching event delivered; 1 some were dead-lettered, dropped or
    /// unreadable (the summary says how many); 2 bad arguments (unknown trigger, unreadable
    /// contract); 3 the log could not be read.
    #[command(
        after_help = "Examples:\n  ferry replay default/cart-items --from earliest\n  ferry replay shop/orders --from 2026-11-25T09:00:00Z -o json\n  ferry replay default/cart-items --from 1200 --contract /tmp/contract.json --kafka 127.0.0.1:9092"
    )]
    Replay(replay::Replay),
    /// Show where an event went: where ingress stored it (topic, partition, offset) and, for
    /// each Trigger, Subscription or KafkaSource, whether it was filtered out, delivered (status,
    /// attempts, time), dead-lettered or dropped — from the dispatcher's delivery journal.
    ///
    /// Exit codes: 0 found; 1 no journal entry for that id (never accepted, or older than the
    /// journal's retention); 2 bad arguments; 3 the log could not be read.
    #[command(
        after_help = "Examples:\n  ferry trace 4c1f6a2e-0b7d-4d0a-9a55-2f0c1d1e9b11\n  ferry trace order-17 --source /shop --since 2026-11-25T09:00:00Z -o json"
    )]
    Trace(trace::Trace),
    /// Follow a Broker's log (or any topic) as CloudEvents.
    #[command(
        after_help = "Examples:\n  ferry tail default/default\n  ferry tail default/orders --from earliest -o json\n  ferry tail payments --from 2026-11-25T09:00:00Z --max 10"
    )]
    Tail(tail::Tail),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Dev(options) => dev::command(options),
        Command::Validate(validate) => validate::command(&validate),
        Command::Send(request) => send::command(&request),
        Command::Replay(replay) => replay::command(&replay),
        Command::Trace(trace) => trace::command(&trace),
        Command::Tail(tail) => tail::command(&tail),
    }
}
