//! Command-line arguments of `ferry-operator` (the Helm chart renders exactly these).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use ferry_runtime::duration;

/// `ferry-operator`: reconciles Knative Brokers, Triggers, KafkaChannels, Subscriptions,
/// KafkaSources and Services into topics, Deployments and the dispatcher's contract.
#[derive(Clone, Debug, Parser)]
#[command(name = "ferry-operator", version)]
pub struct Args {
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub metrics_listen: SocketAddr,

    /// Namespace of the leader-election Lease and of the contract Secret and ConfigMaps below
    /// (default: `POD_NAMESPACE`).
    #[arg(long, env = "POD_NAMESPACE", default_value = "ferry-system")]
    pub leader_election_namespace: String,

    /// Name of the leader-election Lease.
    #[arg(long, default_value = "ferry-operator")]
    pub leader_election_lease: String,

    /// This replica's identity in the Lease (default: `POD_NAME`, else the host name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,

    /// Secret whose key `contract.gz` receives the compiled contract (a Secret because the
    /// contract carries KafkaSources' SASL and TLS credentials).
    #[arg(long, default_value = "ferry-contract")]
    pub contract_secret: String,

    /// Secret that receives the ingress role's contract ([`Contract::for_ingress`]: no
    /// KafkaSources, so no credentials); empty: ingress dispatchers read `--contract-secret`.
    ///
    /// [`Contract::for_ingress`]: ferry_api::contract::Contract::for_ingress
    #[arg(long, default_value = "")]
    pub ingress_contract_secret: String,

    /// Knative `config-br-defaults` ConfigMap (broker class, config and delivery defaults),
    /// read every 5 s from the Lease's namespace.
    #[arg(long, default_value = "ferry-config-br-defaults")]
    pub br_defaults_configmap: String,

    /// Knative `config-autoscaler` ConfigMap.
    #[arg(long, default_value = "ferry-config-autoscaler")]
    pub autoscaler_configmap: String,

    /// Knative Serving `config-features` ConfigMap (which flag-gated PodSpec fields revisions
    /// may set), read every 5 s from the Lease's namespace; missing: Knative's defaults.
    #[arg(long, default_value = "ferry-config-features")]
    pub features_configmap: String,

    /// Knative's `config-observability` ConfigMap (`tracing-protocol`, `tracing-endpoint`,
    /// `tracing-sampling-rate`; the older `config-tracing` keys are read too), read every 5 s
    /// from the Lease's namespace: the dispatchers (through the contract) and the operator
    /// export spans as it says; missing or without tracing keys: their `OTEL_*` variables.
    #[arg(long, default_value = "ferry-config-observability")]
    pub observability_configmap: String,

    /// Base URL of the dispatcher's ingress: a Broker's address is `<base>/<namespace>/<name>`.
    #[arg(
        long,
        default_value = "http://ferry-dispatcher-ingress.ferry-system.svc.cluster.local"
    )]
    pub ingress_url: String,

    /// Headless Service whose endpoints are the dispatchers' admin ports (`/readyz` reports the
    /// contract generation each one applied).
    #[arg(long, default_value = "ferry-dispatcher-admin")]
    pub dispatcher_admin_service: String,

    /// Admin URLs of dispatchers to ask directly instead of the Service's endpoints (repeatable;
    /// for clusters where the operator runs outside, and for tests).
    #[arg(long = "dispatcher-admin-url")]
    pub dispatcher_admin_urls: Vec<String>,

    /// Bootstrap servers of the log every Broker and KafkaChannel topic lives on.
    #[arg(
        long,
        env = "FERRY_KAFKA_BOOTSTRAP_SERVERS",
        default_value = "ferry-broker:9092"
    )]
    pub kafka_bootstrap_servers: String,

    /// Also reconcile Brokers that carry no `eventing.knative.dev/broker.class` annotation and
    /// get no class from `config-br-defaults` either.
    #[arg(long)]
    pub claim_brokers_without_class: bool,

    /// Partitions of a topic when the Broker's config does not say (Knative's
    /// `default.topic.partitions`).
    #[arg(long, default_value_t = 10)]
    pub default_partitions: i32,

    /// Replication factor of a topic when the Broker's config does not say.
    #[arg(long, default_value_t = 1)]
    pub default_replication_factor: i32,

    /// Default DNS domain of Routes' URLs (`http://<route>.<namespace>.<domain>`) while the
    /// `config-domain` ConfigMap names none; empty: Knative's default, `svc.<cluster domain>`
    /// (reachable inside the cluster only).
    #[arg(long, default_value = "")]
    pub domain: String,

    /// Knative Serving `config-domain` ConfigMap (the domain of each Route's URL, by label
    /// selector), read every 5 s from the Lease's namespace.
    #[arg(long, default_value = "ferry-config-domain")]
    pub domain_configmap: String,

    /// Cluster DNS domain (revision and core Service URLs).
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,

    /// How long contract changes are gathered before one write.
    #[arg(long, default_value = "100ms", value_parser = duration::parse)]
    pub contract_debounce: Duration,

    /// Reconciles of one kind that run at once. Bounded so that a burst of thousands of objects
    /// neither floods the API server (starving the leader-election Lease) nor holds thousands
    /// of requests in memory.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u16).range(1..))]
    pub reconcile_concurrency: u16,

    /// How often every dispatcher's applied contract generation is read (the autoscaler
    /// ticks at `config-autoscaler`'s `tick-interval`).
    #[arg(long, default_value = "1s", value_parser = duration::parse)]
    pub dispatcher_poll: Duration,

    /// How long reconciles in flight may take to finish on shutdown (SIGTERM) before they are
    /// aborted; keep it below the pod's `terminationGracePeriodSeconds`.
    #[arg(long, default_value = "20s", value_parser = duration::parse)]
    pub drain_timeout: Duration,
}

impl Args {
    /// Arguments with every default, for tests and embedding.
    pub fn defaults() -> Self {
        Args::parse_from(["ferry-operator"])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_arguments_parse() {
        let a = Args::try_parse_from([
            "ferry-operator",
            "--metrics-listen=0.0.0.0:8080",
            "--leader-election-namespace=ferry-system",
            "--leader-election-lease=ferry-operator",
            "--contract-secret=ferry-contract",
            "--ingress-contract-secret=ferry-contract-ingress",
            "--br-defaults-configmap=ferry-config-br-defaults",
            "--autoscaler-configmap=ferry-config-autoscaler",
            "--features-configmap=ferry-config-features",
            "--domain-configmap=ferry-config-domain",
            "--observability-configmap=ferry-config-observability",
            "--ingress-url=http://ferry-dispatcher-ingress.ferry-system.svc.cluster.local",
            "--dispatcher-admin-service=ferry-dispatcher-admin",
            "--kafka-bootstrap-servers=ferry-broker-0.ferry-broker-headless:9092",
            "--claim-brokers-without-class",
        ])
        .expect("the chart's arguments parse");
        assert!(a.claim_brokers_without_class);
        assert_eq!(
            a.kafka_bootstrap_servers,
            "ferry-broker-0.ferry-broker-headless:9092"
        );
        assert_eq!(a.contract_debounce, Duration::from_millis(100));
    }

    #[test]
    fn bad_durations_are_named() {
        let e = Args::try_parse_from(["ferry-operator", "--dispatcher-poll=soon"])
            .expect_err("rejected")
            .to_string();
        assert!(e.contains("`soon` is not a duration"), "{e}");
        let e = Args::try_parse_from(["ferry-operator", "--dispatcher-poll=5"])
            .expect_err("rejected")
            .to_string();
        assert!(e.contains("no unit"), "{e}");
        let a = Args::try_parse_from(["ferry-operator", "--contract-debounce=1m30s"])
            .expect("Go durations");
        assert_eq!(a.contract_debounce, Duration::from_secs(90));
        assert_eq!(a.drain_timeout, Duration::from_secs(20));
    }
}
