//! Knative Serving's `config-domain` ConfigMap and the `networking.knative.dev/visibility`
//! label: which domain a Route's `status.url` is under, and whether it is reachable from outside
//! the cluster at all.
//!
//! Each key of `config-domain` is a domain; its value is empty (the default domain) or YAML
//! `selector: {label: value, …}`. A Route takes the domain whose selector matches its labels
//! with the most labels, else the domain with an empty selector, else `svc.<cluster domain>`
//! (Knative's default since 1.11: the route's in-cluster name). A Route labelled
//! `networking.knative.dev/visibility: cluster-local`, or one whose domain is
//! `svc.<cluster domain>`, is reachable inside the cluster only. Keys starting with `_`
//! (`_example`) are documentation, as in Knative's shipped ConfigMaps.

use std::collections::BTreeMap;

/// Name of Knative's ConfigMap.
pub const CONFIG_DOMAIN: &str = "config-domain";
/// The label that keeps a Service or Route inside the cluster.
pub const VISIBILITY_LABEL: &str = "networking.knative.dev/visibility";
/// [`VISIBILITY_LABEL`]'s value for cluster-local.
pub const CLUSTER_LOCAL: &str = "cluster-local";

/// The domains of `config-domain`, each with its label selector.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Domains {
    entries: Vec<(String, BTreeMap<String, String>)>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    #[serde(default)]
    selector: BTreeMap<String, String>,
}

impl Domains {
    /// One default domain (what the operator's `--domain` sets when no ConfigMap names one).
    pub fn with_default(domain: &str) -> Domains {
        Domains {
            entries: vec![(domain.to_owned(), BTreeMap::new())],
        }
    }

    /// Whether no domain is configured (Knative's default, [`cluster_local_domain`], applies).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Reads the ConfigMap's data.
    ///
    /// # Errors
    /// A key that is not a DNS domain, or a value that is not empty or `selector: {…}`; the
    /// message names the key and the fix.
    pub fn from_data(data: &BTreeMap<String, String>) -> Result<Domains, String> {
        let mut entries = Vec::new();
        for (domain, value) in data.iter().filter(|(k, _)| !k.starts_with('_')) {
            if !is_domain(domain) {
                return Err(format!(
                    "{CONFIG_DOMAIN} key {domain:?} is not a DNS domain; keys are domains such as example.com"
                ));
            }
            let selector = if value.trim().is_empty() {
                BTreeMap::new()
            } else {
                serde_yaml::from_str::<Entry>(value)
                    .map_err(|e| {
                        format!(
                            "{CONFIG_DOMAIN} {domain}: {e}; the value is empty (the default domain) or `selector:` with labels"
                        )
                    })?
                    .selector
            };
            entries.push((domain.clone(), selector));
        }
        Ok(Domains { entries })
    }

    /// The domain of a Route with `labels` (see the module's rules).
    pub fn domain_for(&self, labels: &BTreeMap<String, String>, cluster_domain: &str) -> String {
        let local = cluster_local_domain(cluster_domain);
        if labels.get(VISIBILITY_LABEL).map(String::as_str) == Some(CLUSTER_LOCAL) {
            return local;
        }
        self.entries
            .iter()
            .filter(|(_, selector)| selector.iter().all(|(k, v)| labels.get(k) == Some(v)))
            // Most specific first; among equals the first domain in name order.
            .max_by(|(a, sa), (b, sb)| sa.len().cmp(&sb.len()).then(b.cmp(a)))
            .map_or(local, |(domain, _)| domain.clone())
    }
}

/// `svc.<cluster domain>`: the domain of routes reachable only inside the cluster.
pub fn cluster_local_domain(cluster_domain: &str) -> String {
    format!("svc.{cluster_domain}")
}

fn is_domain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_most_specific_matching_selector_wins_then_the_default() {
        let domains = Domains::from_data(&labels(&[
            ("example.com", ""),
            ("example.org", "selector:\n  app: nonprofit\n"),
            ("special.org", "selector:\n  app: nonprofit\n  tier: gold\n"),
            ("svc.cluster.local", "selector:\n  app: secret\n"),
            ("_example", "anything at all: [\n"),
        ]))
        .expect("valid");
        let pick = |l: &[(&str, &str)]| domains.domain_for(&labels(l), "cluster.local");
        assert_eq!(pick(&[]), "example.com");
        assert_eq!(pick(&[("app", "nonprofit")]), "example.org");
        assert_eq!(
            pick(&[("app", "nonprofit"), ("tier", "gold")]),
            "special.org"
        );
        assert_eq!(pick(&[("app", "secret")]), "svc.cluster.local");
        assert_eq!(
            pick(&[(VISIBILITY_LABEL, CLUSTER_LOCAL)]),
            "svc.cluster.local"
        );
    }

    #[test]
    fn no_domain_at_all_is_the_cluster_local_one() {
        let none = Domains::from_data(&BTreeMap::new()).expect("valid");
        assert_eq!(
            none.domain_for(&BTreeMap::new(), "k8s.test"),
            "svc.k8s.test"
        );
        let only_selected =
            Domains::from_data(&labels(&[("example.org", "selector:\n  app: x\n")]))
                .expect("valid");
        assert_eq!(
            only_selected.domain_for(&labels(&[("app", "y")]), "cluster.local"),
            "svc.cluster.local"
        );
    }

    #[test]
    fn bad_keys_and_values_are_named() {
        let bad_key = Domains::from_data(&labels(&[("Example.COM", "")])).unwrap_err();
        assert!(
            bad_key.contains("\"Example.COM\" is not a DNS domain"),
            "{bad_key}"
        );
        let bad_value =
            Domains::from_data(&labels(&[("example.com", "selektor:\n  a: b\n")])).unwrap_err();
        assert!(
            bad_value.contains("config-domain example.com"),
            "{bad_value}"
        );
        assert!(bad_value.contains("selector"), "{bad_value}");
    }
}
