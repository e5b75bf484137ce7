//! Which contract generation the dispatchers run: every dispatcher's admin `/readyz` answers
//! `generation N`; the generation in force everywhere is the smallest, and none while any
//! dispatcher has applied nothing yet.

use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::ListParams;

/// Reads `generation N` from a dispatcher's `/readyz` body.
pub fn parse_readyz(body: &str) -> Option<u64> {
    body.trim().strip_prefix("generation ")?.trim().parse().ok()
}

/// The generation every one of `reports` has reached; `None` when there are no dispatchers or
/// one has none.
pub fn in_force(reports: &[Option<u64>]) -> Option<u64> {
    if reports.is_empty() {
        return None;
    }
    reports
        .iter()
        .copied()
        .collect::<Option<Vec<u64>>>()?
        .into_iter()
        .min()
}

/// Where the dispatchers' admin endpoints are.
pub enum Admins {
    /// Fixed base URLs (`--dispatcher-admin-url`).
    Urls(Vec<String>),
    /// The ready endpoints of a (headless) Service's EndpointSlices.
    Service {
        /// EndpointSlices in the Service's namespace.
        api: Box<Api<EndpointSlice>>,
        /// The Service's name.
        name: String,
    },
}

impl Admins {
    /// `--dispatcher-admin-url`s when given, else the endpoints of `--dispatcher-admin-service`
    /// in the operator's namespace.
    pub fn from_args(client: &kube::Client, args: &crate::args::Args) -> Admins {
        if args.dispatcher_admin_urls.is_empty() {
            Admins::Service {
                api: Box::new(Api::namespaced(
                    client.clone(),
                    &args.leader_election_namespace,
                )),
                name: args.dispatcher_admin_service.clone(),
            }
        } else {
            Admins::Urls(args.dispatcher_admin_urls.clone())
        }
    }

    /// Base URLs of the dispatchers' admin ports now.
    ///
    /// # Errors
    /// The EndpointSlices could not be listed.
    pub async fn urls(&self) -> Result<Vec<String>, kube::Error> {
        match self {
            Admins::Urls(urls) => Ok(urls.clone()),
            Admins::Service { api, name } => {
                let slices = api
                    .list(
                        &ListParams::default()
                            .labels(&format!("kubernetes.io/service-name={name}")),
                    )
                    .await?;
                let mut urls = Vec::new();
                for slice in slices {
                    let port = slice
                        .ports
                        .as_ref()
                        .and_then(|p| p.first())
                        .and_then(|p| p.port)
                        .unwrap_or(9090);
                    for endpoint in slice.endpoints {
                        if endpoint.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                            continue;
                        }
                        for ip in endpoint.addresses {
                            let host = if ip.contains(':') {
                                format!("[{ip}]")
                            } else {
                                ip
                            };
                            urls.push(format!("http://{host}:{port}"));
                        }
                    }
                }
                Ok(urls)
            }
        }
    }
}

/// Asks every dispatcher for the generation it applied.
pub async fn applied(admins: &Admins, http: &reqwest::Client) -> Option<u64> {
    let urls = match admins.urls().await {
        Ok(urls) => urls,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the dispatchers");
            return None;
        }
    };
    let mut reports = Vec::with_capacity(urls.len());
    for url in urls {
        let report = match http
            .get(format!("{}/readyz", url.trim_end_matches('/')))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => {
                r.text().await.ok().as_deref().and_then(parse_readyz)
            }
            _ => None,
        };
        reports.push(report);
    }
    in_force(&reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generation_in_force_is_the_smallest_reported() {
        assert_eq!(parse_readyz("generation 12\n"), Some(12));
        assert_eq!(parse_readyz("no contract yet"), None);
        assert_eq!(in_force(&[]), None);
        assert_eq!(in_force(&[Some(3), Some(5)]), Some(3));
        assert_eq!(in_force(&[Some(3), None]), None);
    }
}
