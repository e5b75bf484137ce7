//! The crate's error: what a settings document (`config-autoscaler`, `config-br-defaults`) or a
//! KafkaSource's `spec.net` got wrong, each message saying what was wrong and what to do.
//!
//! Validation of resources reports every problem at once and keeps its own type
//! ([`FieldErrors`](crate::validation::FieldErrors)); durations
//! ([`DurationError`](crate::duration::DurationError)), the contract compiler and CESQL keep
//! theirs too, as their callers read their fields. This module imports nothing from the rest
//! of the crate, so every module can use it without an import circle.

/// What went wrong in a function of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `config-autoscaler` value that does not parse or is out of range.
    #[error("config-autoscaler `{key}`: {problem}; {fix}")]
    AutoscalerSetting {
        /// The ConfigMap key (or setting) at fault.
        key: &'static str,
        /// What is wrong with its value.
        problem: String,
        /// What to write instead.
        fix: &'static str,
    },

    /// The `default-br-config` document of Knative's `config-br-defaults` ConfigMap is not
    /// valid YAML or has an unknown field (the YAML error names it).
    #[error("default-br-config: {0}")]
    BrokerDefaults(serde_yaml::Error),

    /// A SASL mechanism Ferry's Kafka clients do not have (GSSAPI, OAUTHBEARER, a typo).
    #[error("SASL mechanism `{0}` is not supported; use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")]
    UnsupportedSaslMechanism(String),

    /// A Secret the caller's reader could not read; the reader's message says why and what to
    /// do (it knows where Secrets come from: the cluster, or `ferry dev`'s manifests).
    #[error("{0}")]
    SecretUnreadable(String),

    /// A Secret lacks the key a `secretKeyRef` names.
    #[error("Secret {namespace}/{name} has no key `{key}`; add it or fix the secretKeyRef")]
    SecretKeyMissing {
        /// The Secret's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
        /// The key.
        key: String,
    },

    /// A Secret's value that must be text is not UTF-8.
    #[error("Secret {namespace}/{name} key `{key}` is not UTF-8 text; store PEM, not DER")]
    SecretKeyNotText {
        /// The Secret's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
        /// The key.
        key: String,
    },

    /// A destination with neither `ref` nor `uri`.
    #[error("neither ref nor uri is set")]
    DestinationUnset,

    /// A destination's `ref` names nothing that has an address (yet).
    #[error(
        "{kind} {namespace}/{name} not found or has no address yet; create it or fix the reference"
    )]
    ReferentNotFound {
        /// The referent's kind.
        kind: String,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },

    /// A one-URL destination (a reply, a dead-letter sink) resolves to a Knative Service with
    /// no revision to send to.
    #[error("resolves to a service without revisions")]
    NoRevisions,

    /// A contract that is not gzip though it starts like it.
    #[error("contract is not valid gzip: {0}")]
    ContractGzip(std::io::Error),

    /// A contract that is not JSON of the contract's shape.
    #[error("contract is not valid JSON: {0}")]
    ContractJson(serde_json::Error),

    /// A contract that parses but breaks what the dispatcher relies on: every problem, with
    /// its path and a fix.
    #[error("{0}")]
    ContractInvalid(String),

    /// A field's value was rejected; `error` says why.
    #[error("{path}: {error}")]
    InField {
        /// The field, e.g. `spec.net.sasl.type`.
        path: &'static str,
        /// Why its value was rejected.
        error: Box<Error>,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
