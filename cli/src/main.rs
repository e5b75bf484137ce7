//! `ferry`: Ferry's command line. See the crate library for what each command does.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use ferry::{send, tail, validate};

/// Knative-style eventing and scale-to-zero serving on a Kafka-protocol log.
#[derive(Parser)]
#[command(name = "ferry", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
                    println!("{status} {}", body.trim_end());
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
