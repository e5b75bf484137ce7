//! Which contract generation the dispatchers run: every dispatcher's admin `/readyz` answers
//! `generation N`; the generation in force everywhere is the smallest, and none while any
//! dispatcher has applied nothing yet.

use std::time::Duration;

use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::ListParams;

use ferry_api::reports::parse_ready_body;
use tokio::sync::watch;

use crate::tasks::unless_stopped;

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
    /// [`crate::Error::Kube`]: the EndpointSlices could not be listed.
    pub async fn urls(&self) -> crate::Result<Vec<String>> {
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

/// How long one request to a dispatcher's admin port may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(2);

/// The HTTP client for the dispatchers' admin ports: every request bounded by 2 s.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(ADMIN_TIMEOUT)
        .build()
        .expect("an HTTP client with a timeout builds")
}

/// What the dispatchers report at one poll.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Poll {
    /// The generation they all applied ([`in_force`]).
    pub applied: Option<u64>,
    /// The hosts (pod IPs) of the ready dispatchers, sorted: the contract's `activators`.
    /// `None` when they could not be listed (the last list stands).
    pub hosts: Option<Vec<String>>,
}

/// Asks the dispatchers every `every` which generation they all applied and who they are, and
/// hands it to `report`, until `stop` turns `true`.
pub async fn follow_applied(
    admins: Admins,
    every: Duration,
    report: impl Fn(Poll) + Send,
    mut stop: watch::Receiver<bool>,
) {
    let http = http_client();
    let mut tick = tokio::time::interval(every);
    while unless_stopped(&mut stop, tick.tick()).await.is_some() {
        match unless_stopped(&mut stop, self::applied(&admins, &http)).await {
            Some(poll) => report(poll),
            None => return,
        }
    }
}

/// The host of an admin base URL (`http://10.0.0.7:9090` → `10.0.0.7`).
fn host_of(url: &str) -> String {
    let authority = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or_default();
    match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default().to_owned(),
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(h, _)| h)
            .to_owned(),
    }
}

/// Asks every dispatcher for the generation it applied.
pub async fn applied(admins: &Admins, http: &reqwest::Client) -> Poll {
    let urls = match admins.urls().await {
        Ok(urls) => urls,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the dispatchers");
            return Poll::default();
        }
    };
    let mut hosts: Vec<String> = urls.iter().map(|u| host_of(u)).collect();
    hosts.sort();
    hosts.dedup();
    let mut reports = Vec::with_capacity(urls.len());
    for url in urls {
        let report = match http
            .get(format!(
                "{}{}",
                url.trim_end_matches('/'),
                ferry_api::reports::READY_PATH
            ))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => {
                r.text().await.ok().as_deref().and_then(parse_ready_body)
            }
            _ => None,
        };
        reports.push(report);
    }
    Poll {
        applied: in_force(&reports),
        hosts: Some(hosts),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_urls_give_the_dispatchers_hosts() {
        assert_eq!(host_of("http://10.244.0.7:9090"), "10.244.0.7");
        assert_eq!(host_of("http://[fd00::7]:9090/"), "fd00::7");
        assert_eq!(host_of("http://127.0.0.1"), "127.0.0.1");
    }

    #[test]
    fn the_generation_in_force_is_the_smallest_reported() {
        assert_eq!(in_force(&[]), None);
        assert_eq!(in_force(&[Some(3), Some(5)]), Some(3));
        assert_eq!(in_force(&[Some(3), None]), None);
    }
}
