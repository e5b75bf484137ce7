//! Why a `ferry` command failed: one error type for the command line, each message saying what
//! was wrong and what to do, and the exit code it ends the command with.

use std::path::PathBuf;
use std::process::ExitCode;

/// The result of the command line's library functions.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a `ferry` command failed.
///
/// The commands' exit codes follow [`Error::exit_code`]: 2 for a bad argument, 3 when a log or
/// an ingress could not be reached or read, 1 otherwise.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `--from` or `--since` is not a position in the log.
    #[error(
        "{text:?} is not earliest, latest, an offset or an RFC 3339 time (2026-11-25T10:00:00Z)"
    )]
    NotAStart {
        /// The argument.
        text: String,
    },
    /// A `ferry send` target that is neither a URL nor `<namespace>/<name>`.
    #[error(
        "target {target:?} is neither a URL nor <namespace>/<name>; use e.g. default/orders or http://127.0.0.1:8080/default/orders"
    )]
    NotATarget {
        /// The argument.
        target: String,
    },
    /// An `--ext` without `=`.
    #[error("--ext {ext:?} is not name=value; write e.g. --ext region=eu")]
    ExtensionNotNameValue {
        /// The argument.
        ext: String,
    },
    /// An `--ext` name CloudEvents does not allow.
    #[error("--ext {name:?}: extension names use only lowercase letters a-z and digits 0-9")]
    ExtensionName {
        /// The name given.
        name: String,
    },
    /// `--data @file` names a file that cannot be read.
    #[error("--data @{path}: cannot read the file: {source}; check the path after @")]
    DataFile {
        /// The path after `@`.
        path: String,
        /// Why it cannot be read.
        source: std::io::Error,
    },
    /// `--data` that is not JSON.
    #[error("--data is not valid JSON ({0}); pass JSON, or @file for other content")]
    DataNotJson(serde_json::Error),
    /// The attributes do not make a CloudEvent.
    #[error("not a valid CloudEvent: {0}; check --type and --source")]
    NotACloudEvent(cloudevents::event::EventBuilderError),
    /// A `ferry replay` argument that is not `<namespace>/<trigger>`.
    #[error("{trigger:?} is not <namespace>/<trigger>, e.g. default/cart-items")]
    NotATrigger {
        /// The argument.
        trigger: String,
    },
    /// The contract holds no such Trigger.
    #[error(
        "trigger {trigger} is not in the contract (it does not exist or is not ready); triggers there: {known}"
    )]
    TriggerNotFound {
        /// The argument.
        trigger: String,
        /// The Triggers the contract holds, comma-separated, or `none`.
        known: String,
    },
    /// The dispatcher cannot deliver for the Trigger as the contract describes it (its
    /// filters do not compile); the dispatcher's message says what to do.
    #[error(transparent)]
    Deliverer(ferry_dispatcher::Error),
    /// The `--contract` file cannot be read.
    #[error(
        "cannot read the contract {} ({source}); run from where ferry dev runs or pass --contract",
        path.display()
    )]
    ContractUnreadable {
        /// The file.
        path: PathBuf,
        /// Why it cannot be read.
        source: std::io::Error,
    },
    /// The `--contract` file is not a contract.
    #[error(
        "{} is not a valid contract: {reason}; pass the file ferry dev or the operator wrote",
        path.display()
    )]
    ContractInvalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The ingress did not answer.
    #[error("cannot reach {url}: {source}; is `ferry dev` or the dispatcher running?")]
    IngressUnreachable {
        /// Where the event was sent.
        url: String,
        /// Why the request failed.
        source: reqwest::Error,
    },
    /// No HTTP client could be set up.
    #[error("cannot create an HTTP client: {0}; check the system's TLS and proxy settings")]
    HttpClient(reqwest::Error),
    /// The log's metadata could not be fetched.
    #[error("cannot reach the log at {kafka}: {source}; pass --kafka host:port")]
    LogUnreachable {
        /// Bootstrap servers.
        kafka: String,
        /// What the client said.
        source: rdkafka::error::KafkaError,
    },
    /// The log has no such topic.
    #[error("topic {topic} not found at {kafka}; check the name (namespace/broker or a topic)")]
    TopicNotFound {
        /// The topic.
        topic: String,
        /// Bootstrap servers.
        kafka: String,
    },
    /// A partition's offsets could not be read.
    #[error("{topic}/{partition}: {source}; check that the log is running and try again")]
    PartitionOffsets {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// What the client said.
        source: rdkafka::error::KafkaError,
    },
    /// The log failed a request.
    #[error("the log failed: {0}; check that it is running and that --kafka names it")]
    Log(#[from] rdkafka::error::KafkaError),
    /// The journal holds nothing about the event.
    #[error(
        "no journal entry for event {event_id:?} in {topic} at {kafka}; it was never accepted, or is older than the journal's retention"
    )]
    NotJournaled {
        /// The event id looked up.
        event_id: String,
        /// The journal topic.
        topic: String,
        /// Bootstrap servers.
        kafka: String,
    },
    /// The journal was not read to its end in time.
    #[error("reading the journal at {kafka} took over 2 minutes; try --since")]
    JournalTooSlow {
        /// Bootstrap servers.
        kafka: String,
    },
    /// `ferry dev`: the manifests cannot run; every problem, one line each (file, document,
    /// field and fix).
    #[error("the manifests cannot run:\n  {}", .0.join("\n  "))]
    ManifestsInvalid(Vec<String>),
    /// `ferry dev`: a component could not start (a port in use, an unwritable data
    /// directory); the message names the flag to change.
    #[error("{0}")]
    DevStart(String),
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}; the system is out of threads or files")]
    Runtime(std::io::Error),
    /// The command's output could not be written (stdout closed).
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

impl Error {
    /// The code a command exits with after this error: 2 for a bad argument, 3 when a log or
    /// an ingress could not be reached or read, 1 when what was asked for is not there or the
    /// command could not run or print.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::NotAStart { .. }
            | Error::NotATarget { .. }
            | Error::ExtensionNotNameValue { .. }
            | Error::ExtensionName { .. }
            | Error::DataFile { .. }
            | Error::DataNotJson(_)
            | Error::NotACloudEvent(_)
            | Error::NotATrigger { .. }
            | Error::TriggerNotFound { .. }
            | Error::Deliverer(_)
            | Error::ContractUnreadable { .. }
            | Error::ContractInvalid { .. } => 2,
            Error::IngressUnreachable { .. }
            | Error::HttpClient(_)
            | Error::LogUnreachable { .. }
            | Error::TopicNotFound { .. }
            | Error::PartitionOffsets { .. }
            | Error::Log(_)
            | Error::JournalTooSlow { .. }
            | Error::DevStart(_) => 3,
            Error::NotJournaled { .. }
            | Error::ManifestsInvalid(_)
            | Error::Runtime(_)
            | Error::Output(_) => 1,
        }
    }

    /// Ends `ferry <command>` on this error: prints `ferry <command>: <error>` to stderr and
    /// returns [`Error::exit_code`].
    pub fn report(&self, command: &str) -> ExitCode {
        eprintln!("ferry {command}: {self}");
        ExitCode::from(self.exit_code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_exit_2_and_unreachable_services_3() {
        let usage = Error::NotATrigger {
            trigger: "nope".into(),
        };
        assert_eq!(usage.exit_code(), 2);
        let unreachable = Error::TopicNotFound {
            topic: "t".into(),
            kafka: "k:9092".into(),
        };
        assert_eq!(unreachable.exit_code(), 3);
        assert_eq!(
            unreachable.to_string(),
            "topic t not found at k:9092; check the name (namespace/broker or a topic)"
        );
        assert_eq!(
            Error::Output(std::io::Error::other("closed")).exit_code(),
            1
        );
        let invalid = Error::ManifestsInvalid(vec!["a.yaml: x".into(), "b.yaml: y".into()]);
        assert_eq!(invalid.exit_code(), 1);
        assert_eq!(
            invalid.to_string(),
            "the manifests cannot run:\n  a.yaml: x\n  b.yaml: y"
        );
        assert_eq!(Error::DevStart("port in use".into()).exit_code(), 3);
    }
}
