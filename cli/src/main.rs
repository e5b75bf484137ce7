//! `ferry`: Ferry's command line. See the crate library for what each command does.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use ferry::validate;

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
