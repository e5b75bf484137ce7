//! `ferry`: Ferry's command line. See the crate library for what each command does.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
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
    Validate {
        /// A manifest file, or a directory of *.yaml / *.yml files (repeatable).
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Send one CloudEvent (binary mode) to a Broker or KafkaChannel and print the answer.
    ///
    /// Exit codes: 0 accepted (2xx); 1 rejected (the status and reason are printed); 2 bad
    /// arguments; 3 the ingress could not be reached.
    #[command(
        after_help = "Examples:\n  ferry send default/default --type cart.created --source /shop --data '{\"cart\":\"c1\"}'\n  ferry send http://127.0.0.1:8080/default/orders --type order.placed --source /cli --ext partitionkey=c1 --data @order.json"
    )]
    Send {
        /// `<namespace>/<name>` of a Broker or KafkaChannel, or a full URL.
        target: String,
        /// The CloudEvents `type`.
        #[arg(long = "type")]
        ty: String,
        /// The CloudEvents `source`.
        #[arg(long)]
        source: String,
        /// The CloudEvents `id` (a random UUID by default).
        #[arg(long)]
        id: Option<String>,
        /// JSON data, or @path to send a file's bytes.
        #[arg(long)]
        data: Option<String>,
        /// An extension attribute name=value (repeatable).
        #[arg(long = "ext")]
        extensions: Vec<String>,
        /// Ingress base URL for `<namespace>/<name>` targets.
        #[arg(long, default_value = "http://127.0.0.1:8080", env = "FERRY_INGRESS")]
        ingress: String,
    },
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
    Replay {
        /// `<namespace>/<trigger>`.
        trigger: String,
        /// earliest, latest, an offset, or an RFC 3339 time.
        #[arg(long)]
        from: tail::StartAt,
        /// The contract the dispatcher runs (ferry dev writes it under its data directory).
        #[arg(long, default_value = ".ferry/contract.json")]
        contract: PathBuf,
        /// Read the log from these bootstrap servers instead of the contract's.
        #[arg(long, env = "FERRY_KAFKA")]
        kafka: Option<String>,
        /// Output format of the summary.
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Show where an event went: where ingress stored it (topic, partition, offset) and, for
    /// each Trigger, Subscription or KafkaSource, whether it was filtered out, delivered (status,
    /// attempts, time), dead-lettered or dropped — from the dispatcher's delivery journal.
    ///
    /// Exit codes: 0 found; 1 no journal entry for that id (never accepted, or older than the
    /// journal's retention); 2 bad arguments; 3 the log could not be read.
    #[command(
        after_help = "Examples:\n  ferry trace 4c1f6a2e-0b7d-4d0a-9a55-2f0c1d1e9b11\n  ferry trace order-17 --source /shop --since 2026-11-25T09:00:00Z -o json"
    )]
    Trace {
        /// The event's id.
        event_id: String,
        /// Only the event with this source (ids are unique per source).
        #[arg(long)]
        source: Option<String>,
        /// Kafka bootstrap servers of the log.
        #[arg(long, default_value = "127.0.0.1:9092", env = "FERRY_KAFKA")]
        kafka: String,
        /// The journal topic (the dispatcher's --journal-topic).
        #[arg(long, default_value = ferry_dispatcher::journal::DEFAULT_TOPIC)]
        journal_topic: String,
        /// Read the journal from here: earliest, an offset, or an RFC 3339 time.
        #[arg(long, default_value = "earliest")]
        since: tail::StartAt,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Follow a Broker's log (or any topic) as CloudEvents.
    #[command(
        after_help = "Examples:\n  ferry tail default/default\n  ferry tail default/orders --from earliest -o json\n  ferry tail payments --from 2026-11-25T09:00:00Z --max 10"
    )]
    Tail {
        /// `<namespace>/<broker>`, or a topic name.
        source: String,
        /// Kafka bootstrap servers of the log.
        #[arg(long, default_value = "127.0.0.1:9092", env = "FERRY_KAFKA")]
        kafka: String,
        /// earliest, latest, an offset, or an RFC 3339 time.
        #[arg(long, default_value = "latest")]
        from: tail::StartAt,
        /// Stop after this many records.
        #[arg(long)]
        max: Option<usize>,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    /// A table and one line per problem.
    Table,
    /// A JSON document for scripts.
    Json,
}

fn main() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Command::Trace {
            event_id,
            source,
            kafka,
            journal_topic,
            since,
            output,
        } => {
            let options = trace::Trace {
                event_id,
                source,
                kafka,
                topic: journal_topic,
                since,
            };
            let entries = match trace::run(&options) {
                Ok(entries) => entries,
                Err(e) => {
                    eprintln!("ferry trace: {e}");
                    return Ok(ExitCode::from(3));
                }
            };
            match output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&entries)?),
                Output::Table if !entries.is_empty() => print!("{}", trace::table(&entries)),
                Output::Table => {}
            }
            if entries.is_empty() {
                eprintln!(
                    "ferry trace: no journal entry for event {:?} in {} at {}; it was never accepted, or is older than the journal's retention",
                    options.event_id, options.topic, options.kafka
                );
                return Ok(ExitCode::from(1));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay {
            trigger,
            from,
            contract,
            kafka,
            output,
        } => {
            let options = replay::Replay {
                trigger,
                from,
                contract,
                kafka,
            };
            let tty = std::io::stderr().is_terminal();
            let runtime = tokio::runtime::Runtime::new()?;
            let result = runtime.block_on(replay::run(&options, |s| {
                if tty && (s.read % 100 == 0 || s.read == s.total) {
                    eprint!("\rreplaying {}: {}/{} events", s.trigger, s.read, s.total);
                }
            }));
            if tty {
                eprintln!();
            }
            match result {
                Ok(summary) => {
                    match output {
                        Output::Json => println!("{}", serde_json::to_string(&summary)?),
                        Output::Table => println!(
                            "replayed {} of {} events to {}: {} delivered, {} filtered out, {} dead-lettered, {} dropped, {} not CloudEvents",
                            summary.read,
                            summary.total,
                            summary.trigger,
                            summary.delivered,
                            summary.filtered,
                            summary.dead_lettered,
                            summary.dropped,
                            summary.malformed
                        ),
                    }
                    Ok(if summary.complete() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    })
                }
                Err(e @ replay::ReplayError::Usage(_)) => {
                    eprintln!("ferry replay: {e}");
                    Ok(ExitCode::from(2))
                }
                Err(e @ replay::ReplayError::Log(_)) => {
                    eprintln!("ferry replay: {e}");
                    Ok(ExitCode::from(3))
                }
            }
        }
        Command::Dev(mut options) => {
            options.color = dev::stdout_is_terminal();
            // The broker's and dispatcher's own logs: warnings and errors (a dropped event is
            // an error naming its id) unless RUST_LOG says otherwise.
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
                )
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .init();
            let runtime = tokio::runtime::Runtime::new()?;
            match runtime.block_on(dev::run(options, stop_signal())) {
                Ok(()) => Ok(ExitCode::SUCCESS),
                Err(dev::DevError::Invalid(problems)) => {
                    eprintln!("ferry dev: the manifests cannot run:");
                    for p in problems {
                        eprintln!("  {p}");
                    }
                    Ok(ExitCode::from(1))
                }
                Err(dev::DevError::Start(e)) => {
                    eprintln!("ferry dev: {e}");
                    Ok(ExitCode::from(3))
                }
            }
        }
        Command::Send {
            target,
            ty,
            source,
            id,
            data,
            extensions,
            ingress,
        } => {
            let request = send::SendRequest {
                target,
                ingress,
                ty,
                source,
                id,
                data,
                extensions,
            };
            let prepared = send::target_url(&request.target, &request.ingress)
                .and_then(|url| Ok((url, send::build_event(&request)?)));
            let (url, event) = match prepared {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("ferry send: {e}");
                    return Ok(ExitCode::from(2));
                }
            };
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            match runtime.block_on(send::send(&url, &event)) {
                Ok((status, body)) => {
                    if (200..300).contains(&status) {
                        // The id too: it is what `ferry trace` takes.
                        let id = cloudevents::AttributesReader::id(&event);
                        println!("{status} id={id} {}", body.trim_end());
                    } else {
                        println!("{status} {}", body.trim_end());
                    }
                    Ok(if (200..300).contains(&status) {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    })
                }
                Err(e) => {
                    eprintln!("ferry send: {e}");
                    Ok(ExitCode::from(3))
                }
            }
        }
        Command::Tail {
            source,
            kafka,
            from,
            max,
            output,
        } => {
            let options = tail::Tail {
                kafka,
                topic: tail::topic_for(&source),
                from,
                json: matches!(output, Output::Json),
                max,
            };
            match tail::run(&options, &mut std::io::stdout().lock()) {
                Ok(()) => Ok(ExitCode::SUCCESS),
                Err(e) => {
                    eprintln!("ferry tail: {e}");
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::Validate { files, output } => {
            let outcome = validate::run(&files);
            let mut stdout = std::io::stdout().lock();
            match output {
                Output::Table => validate::print_table(&outcome, &mut stdout)?,
                Output::Json => writeln!(stdout, "{}", serde_json::to_string_pretty(&outcome)?)?,
            }
            Ok(if outcome.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM.
async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}
