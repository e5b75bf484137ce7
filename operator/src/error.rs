//! The operator's one error type: why a reconcile, the contract's publication or the operator
//! itself failed, with what to do about it.

/// The operator's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why something the operator did failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a call (retried with backoff).
    #[error("Kubernetes API: {0}; retrying (a 403 means the operator's RBAC lacks the grant)")]
    Kube(#[from] kube::Error),
    /// The log's admin API failed (its message names the topic or group).
    #[error("log at --kafka-bootstrap-servers: {0}; retrying")]
    Log(String),
    /// Adding or removing a finalizer, or cleaning up, failed.
    #[error("finalizer: {0}; retrying")]
    Finalizer(String),
    /// The cached object was older than the stored one (a finalizer patch's precondition
    /// failed): retried shortly, once the watch has caught up.
    #[error("the cached object is stale; retrying")]
    Stale,
    /// An object could not be encoded for the API server.
    #[error("cannot encode {what}: {source}")]
    Encode {
        /// What was being encoded.
        what: String,
        /// The encoder's complaint.
        source: serde_json::Error,
    },
    /// The contract Secret holds something that is not a contract.
    #[error(
        "the contract Secret {secret} holds no valid contract ({reason}); delete its keys \
         contract.gz and contract.json and the operator writes a new contract"
    )]
    Secret {
        /// `namespace/name` of the Secret.
        secret: String,
        /// What is wrong with it (never its content).
        reason: String,
    },
    /// The operator's configuration cannot work (a flag, an environment variable).
    #[error("{0}")]
    Config(String),
    /// CustomResourceDefinitions the operator watches are not installed.
    #[error(
        "the CustomResourceDefinitions {0} are not installed; install them with `kubectl apply \
         -f crds/` (or the Helm chart with crds enabled) and start the operator again"
    )]
    MissingCrds(String),
    /// This replica lost the leader-election Lease while leading.
    #[error("lost the leader-election Lease; exiting so that this replica restarts as a follower")]
    LostLease,
}

impl Error {
    /// The `reason` label of the failure metric.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(e)) if e.code == 409 => "conflict",
            Error::Kube(kube::Error::Api(e)) if e.code == 403 => "forbidden",
            Error::Kube(kube::Error::Api(e)) if e.code == 404 => "not_found",
            Error::Kube(kube::Error::Api(e)) if e.code == 422 => "invalid",
            Error::Kube(_) => "api",
            Error::Log(_) => "log",
            Error::Finalizer(_) => "finalizer",
            Error::Stale => "stale_cache",
            Error::Encode { .. } => "encode",
            Error::Secret { .. } => "secret",
            Error::Config(_) => "config",
            Error::MissingCrds(_) => "missing_crds",
            Error::LostLease => "lost_lease",
        }
    }
}

impl From<kube::runtime::finalizer::Error<Error>> for Error {
    /// Keeps the cause, so the failure metric counts e.g. a forbidden finalizer patch as
    /// `forbidden`.
    fn from(e: kube::runtime::finalizer::Error<Error>) -> Self {
        use kube::runtime::finalizer::Error as F;
        match e {
            F::ApplyFailed(e) | F::CleanupFailed(e) => e,
            // kube's finalizer patches test the finalizer list first; a failed test (422) means
            // the cache has not seen the previous patch yet.
            F::AddFinalizer(kube::Error::Api(e)) | F::RemoveFinalizer(kube::Error::Api(e))
                if e.code == 422 =>
            {
                Error::Stale
            }
            F::AddFinalizer(e) | F::RemoveFinalizer(e) => Error::Kube(e),
            other => Error::Finalizer(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16) -> Error {
        Error::Kube(kube::Error::Api(
            kube::core::Status::failure("refused", "Refused")
                .with_code(code)
                .boxed(),
        ))
    }

    #[test]
    fn the_failure_metric_keeps_its_reasons() {
        let cases = [
            (api(409), "conflict"),
            (api(403), "forbidden"),
            (api(404), "not_found"),
            (api(422), "invalid"),
            (api(500), "api"),
            (Error::Log("cannot create topic t".into()), "log"),
            (Error::Finalizer("cleanup".into()), "finalizer"),
            (Error::Stale, "stale_cache"),
        ];
        for (error, reason) in cases {
            assert_eq!(error.reason(), reason, "{error}");
        }
    }

    #[test]
    fn a_failed_finalizer_test_means_a_stale_cache_and_causes_are_kept() {
        use kube::runtime::finalizer::Error as F;
        let stale = |e: Error| match e {
            Error::Kube(kube::Error::Api(s)) => s,
            _ => unreachable!(),
        };
        assert!(matches!(
            Error::from(F::AddFinalizer(kube::Error::Api(stale(api(422))))),
            Error::Stale
        ));
        assert_eq!(
            Error::from(F::RemoveFinalizer(kube::Error::Api(stale(api(403))))).reason(),
            "forbidden"
        );
        assert_eq!(
            Error::from(F::<Error>::CleanupFailed(Error::Log("x".into()))).reason(),
            "log"
        );
    }
}
