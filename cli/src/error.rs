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
    /// The log failed a request.
    #[error("the log failed: {0}; check that it is running and that --kafka names it")]
    Log(#[from] rdkafka::error::KafkaError),
    /// Reading the log (or the journal on it) failed: it cannot be reached, has no such
    /// topic, or took too long.
    #[error("{0} (the log's address: --kafka, FERRY_KAFKA)")]
    LogRead(ferry_dispatcher::Error),
    /// The journal holds nothing about the event.
    #[error(
        "no journal entry for event {event_id:?} {place}; it was never accepted, or is older than the journal's retention"
    )]
    NotJournaled {
        /// The event id looked up.
        event_id: String,
        /// Where the journal was read: `in <topic> at <kafka>` or `at the dispatcher <url>`.
        place: String,
    },
    /// `--dispatcher` is not an http(s) URL.
    #[error(
        "--dispatcher {url:?} is not an http(s) URL ({reason}); pass e.g. http://127.0.0.1:9090, the dispatcher's admin address"
    )]
    NotADispatcherUrl {
        /// The argument.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `ferry trace --dispatcher`: the dispatcher's answer broke off or made no sense.
    #[error("reading the journal through the dispatcher at {url} failed: {message}")]
    DispatcherStream {
        /// The `--dispatcher` URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// `ferry trace --dispatcher`: the dispatcher did not answer.
    #[error(
        "cannot reach the dispatcher at {url}: {source}; check --dispatcher (FERRY_DISPATCHER) and, in a cluster, that the port-forward to the dispatcher's admin port is running"
    )]
    DispatcherUnreachable {
        /// The `--dispatcher` URL.
        url: String,
        /// Why the request failed.
        source: reqwest::Error,
    },
    /// `ferry trace --dispatcher`: the dispatcher refused or failed the request; its message
    /// says why.
    #[error("the dispatcher at {url} answered {status}: {message}")]
    DispatcherRefused {
        /// The `--dispatcher` URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The dispatcher's message.
        message: String,
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
            Error::NotATarget { .. }
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
            | Error::Log(_)
            | Error::LogRead(_)
            | Error::DevStart(_) => 3,
            Error::NotADispatcherUrl { .. } | Error::DispatcherRefused { status: 400, .. } => 2,
            Error::DispatcherUnreachable { .. }
            | Error::DispatcherRefused { .. }
            | Error::DispatcherStream { .. } => 3,
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

/// A failure of the dispatcher library's log reader ([`Error::LogRead`]), or of its delivery
/// code ([`Error::Deliverer`]).
impl From<ferry_dispatcher::Error> for Error {
    fn from(e: ferry_dispatcher::Error) -> Self {
        use ferry_dispatcher::Error as Dispatcher;
        match e {
            Dispatcher::NotAStart { .. }
            | Dispatcher::LogUnreachable { .. }
            | Dispatcher::TopicNotFound { .. }
            | Dispatcher::PartitionOffsets { .. }
            | Dispatcher::LogRead(_)
            | Dispatcher::JournalTooSlow { .. } => Error::LogRead(e),
            other => Error::Deliverer(other),
        }
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
        let unreachable = Error::from(ferry_dispatcher::Error::TopicNotFound {
            topic: "t".into(),
            kafka: "k:9092".into(),
        });
        assert_eq!(unreachable.exit_code(), 3);
        assert_eq!(
            unreachable.to_string(),
            "topic t not found at k:9092; check the name (the log's address: --kafka, FERRY_KAFKA)"
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
