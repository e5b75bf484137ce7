//! How a Route is reached over HTTP, as Knative's networking layer makes it reachable: the host
//! names it answers on (in the cluster, and outside it unless it is cluster-local), the traffic
//! split and tags the data plane routes by, and the placeholder Kubernetes Services that make
//! `http://<route>.<ns>` resolve — each an `ExternalName` to Ferry's HTTP entry, as Knative's
//! are to its gateway.

use std::collections::BTreeMap;

use ferry_api::contract::{HttpRoute, RevisionTarget};
use ferry_api::serving::domain::{VISIBILITY_LABEL, cluster_local_domain};
use ferry_api::serving::{Route, RouteStatus};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use super::labels::ROUTE_LABEL;
use super::owned::owned_meta;

/// A Route's resolved traffic as contract targets: one entry per revision with a share (a
/// revision named by two targets gets their sum), at the URL `url_of` gives it; revisions
/// `url_of` does not know are left out.
pub fn traffic_targets(
    status: &RouteStatus,
    url_of: &dyn Fn(&str) -> Option<String>,
) -> Vec<RevisionTarget> {
    let mut targets: Vec<RevisionTarget> = Vec::new();
    for t in &status.fields.traffic {
        let (Some(revision), Some(percent)) = (&t.revision_name, t.percent) else {
            continue;
        };
        let percent = u32::try_from(percent).unwrap_or(0);
        if percent == 0 {
            continue;
        }
        match targets.iter_mut().find(|x| &x.revision == revision) {
            Some(existing) => existing.percent += percent,
            None => {
                if let Some(url) = url_of(revision) {
                    targets.push(RevisionTarget {
                        revision: revision.clone(),
                        url,
                        percent,
                    });
                }
            }
        }
    }
    targets
}

/// The in-cluster host names of `<host>` in namespace `ns`: the short name (resolved through
/// the client pod's DNS search path), `<host>.<ns>`, `<host>.<ns>.svc` and the full name.
fn cluster_hosts(host: &str, ns: &str, cluster_domain: &str) -> Vec<String> {
    vec![
        host.to_owned(),
        format!("{host}.{ns}"),
        format!("{host}.{ns}.svc"),
        format!("{host}.{ns}.svc.{cluster_domain}"),
    ]
}

/// What the data plane serves for a Route: its own address (the traffic split) and one entry
/// per tag (the tagged revision alone), each with its in-cluster hosts and, when its URL in the
/// Route's status is not under the cluster-local domain, that URL's host as its external host.
/// The status is the source (as Knative builds its ingress from the route's computed hosts), so
/// the domain was decided once, by [`crate::serving::route_status`]. Empty until the Route's
/// traffic resolves to revisions `url_of` knows.
pub fn http_routes(
    route: &Route,
    cluster_domain: &str,
    url_of: &dyn Fn(&str) -> Option<String>,
) -> Vec<HttpRoute> {
    let Some(status) = &route.status else {
        return Vec::new();
    };
    let (name, ns) = (route.name_any(), route.namespace().unwrap_or_default());
    let local_suffix = format!(".{}", cluster_local_domain(cluster_domain));
    let external_host = |url: Option<&str>| -> Vec<String> {
        url.and_then(|u| {
            u.strip_prefix("http://")
                .or_else(|| u.strip_prefix("https://"))
        })
        .map(|h| h.split(['/', ':']).next().unwrap_or(h).to_ascii_lowercase())
        .filter(|h| !h.is_empty() && !h.ends_with(&local_suffix))
        .into_iter()
        .collect()
    };
    let entry = |host: &str, tag: Option<&str>, url: Option<&str>, targets| HttpRoute {
        route: format!("{ns}/{name}"),
        tag: tag.map(str::to_owned),
        hosts: cluster_hosts(host, &ns, cluster_domain),
        external_hosts: external_host(url),
        targets,
    };
    let targets = traffic_targets(status, url_of);
    if targets.is_empty() {
        return Vec::new();
    }
    let mut out = vec![entry(&name, None, status.fields.url.as_deref(), targets)];
    let mut tags: BTreeMap<&str, (&str, Option<&str>)> = BTreeMap::new();
    for t in &status.fields.traffic {
        if let (Some(tag), Some(revision)) = (&t.tag, &t.revision_name) {
            tags.insert(tag, (revision, t.url.as_deref()));
        }
    }
    for (tag, (revision, url)) in tags {
        if let Some(target_url) = url_of(revision) {
            let target = RevisionTarget {
                revision: revision.to_owned(),
                url: target_url,
                percent: 100,
            };
            out.push(entry(&tag_host(tag, &name), Some(tag), url, vec![target]));
        }
    }
    out
}

/// Knative's default tag template, `{{.Tag}}-{{.Name}}`.
pub fn tag_host(tag: &str, route: &str) -> String {
    format!("{tag}-{route}")
}

/// The names of the placeholder Services a Route needs: its own name and one per tag of its
/// resolved traffic.
pub fn route_service_names(route: &Route) -> Vec<String> {
    let name = route.name_any();
    let mut names = vec![name.clone()];
    if let Some(status) = &route.status {
        names.extend(
            status
                .fields
                .traffic
                .iter()
                .filter_map(|t| t.tag.as_deref())
                .map(|tag| tag_host(tag, &name)),
        );
    }
    names.sort();
    names.dedup();
    names
}

/// The placeholder Services of a Route (Knative's `MakeK8sPlaceholderService`): an
/// `ExternalName` to `entry_host` (Ferry's HTTP entry, the host of the operator's
/// `--ingress-url`) with port 80, owned by the Route and labelled with it, so
/// `http://<name>.<ns>.svc.<cluster domain>` reaches the entry with its own name as `Host`.
pub fn route_services(route: &Route, entry_host: &str) -> Vec<Service> {
    let mut labels = BTreeMap::from([(ROUTE_LABEL.to_owned(), route.name_any())]);
    if let Some(v) = route.labels().get(VISIBILITY_LABEL) {
        labels.insert(VISIBILITY_LABEL.to_owned(), v.clone());
    }
    route_service_names(route)
        .into_iter()
        .map(|name| Service {
            metadata: owned_meta(route, name, labels.clone(), BTreeMap::new()),
            spec: Some(ServiceSpec {
                type_: Some("ExternalName".to_owned()),
                external_name: Some(entry_host.to_owned()),
                session_affinity: Some("None".to_owned()),
                ports: Some(vec![ServicePort {
                    name: Some("http".to_owned()),
                    port: 80,
                    target_port: Some(IntOrString::Int(80)),
                    protocol: Some("TCP".to_owned()),
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            status: None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Route `shop/cart` with uid, labels, and resolved traffic: rev-1 90 % (tag `stable`),
    /// rev-2 10 % (tag `canary`), rev-2 again at 0 % (tag `next`).
    fn route(url: &str, tag_domain: &str, labels: serde_json::Value) -> Route {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "serving.knative.dev/v1", "kind": "Route",
            "metadata": {"name": "cart", "namespace": "shop", "uid": "u-1", "labels": labels},
            "spec": {"traffic": []},
            "status": {
                "url": url,
                "traffic": [
                    {"revisionName": "cart-00001", "percent": 90, "tag": "stable",
                     "url": format!("http://stable-cart.shop.{tag_domain}")},
                    {"revisionName": "cart-00002", "percent": 10, "tag": "canary",
                     "url": format!("http://canary-cart.shop.{tag_domain}")},
                    {"revisionName": "cart-00002", "percent": 0, "tag": "next",
                     "url": format!("http://next-cart.shop.{tag_domain}")}
                ]
            }
        }))
        .expect("a Route")
    }

    fn url_of(revision: &str) -> Option<String> {
        Some(format!("http://{revision}.shop.svc.cluster.local"))
    }

    #[test]
    fn a_route_and_each_tag_get_cluster_hosts_and_their_external_host() {
        let r = route(
            "http://cart.shop.example.com",
            "example.com",
            serde_json::json!({}),
        );
        let routes = http_routes(&r, "cluster.local", &url_of);
        assert_eq!(routes.len(), 4, "{routes:#?}");
        let main = &routes[0];
        assert_eq!(
            (main.route.as_str(), main.tag.as_deref()),
            ("shop/cart", None)
        );
        assert_eq!(
            main.hosts,
            [
                "cart",
                "cart.shop",
                "cart.shop.svc",
                "cart.shop.svc.cluster.local"
            ]
        );
        assert_eq!(main.external_hosts, ["cart.shop.example.com"]);
        let split: Vec<(&str, u32)> = main
            .targets
            .iter()
            .map(|t| (t.revision.as_str(), t.percent))
            .collect();
        assert_eq!(split, [("cart-00001", 90), ("cart-00002", 10)]);
        let canary = routes
            .iter()
            .find(|r| r.tag.as_deref() == Some("canary"))
            .expect("tag");
        assert_eq!(canary.hosts[3], "canary-cart.shop.svc.cluster.local");
        assert_eq!(canary.external_hosts, ["canary-cart.shop.example.com"]);
        assert_eq!(canary.targets[0].revision, "cart-00002");
        assert_eq!(canary.targets[0].percent, 100);
        let next = routes
            .iter()
            .find(|r| r.tag.as_deref() == Some("next"))
            .expect("a 0% tag");
        assert_eq!(
            next.targets[0].revision, "cart-00002",
            "a tag at 0% still routes"
        );
    }

    #[test]
    fn a_cluster_local_route_has_no_external_host() {
        let r = route(
            "http://cart.shop.svc.cluster.local",
            "svc.cluster.local",
            serde_json::json!({VISIBILITY_LABEL: "cluster-local"}),
        );
        let routes = http_routes(&r, "cluster.local", &url_of);
        assert!(
            routes.iter().all(|r| r.external_hosts.is_empty()),
            "{routes:#?}"
        );
        assert!(routes.iter().all(|r| !r.hosts.is_empty()));
    }

    #[test]
    fn nothing_is_served_before_the_traffic_resolves_to_known_revisions() {
        let mut r = route(
            "http://cart.shop.example.com",
            "example.com",
            serde_json::json!({}),
        );
        assert!(http_routes(&r, "cluster.local", &|_| None).is_empty());
        r.status = None;
        assert!(http_routes(&r, "cluster.local", &url_of).is_empty());
    }

    #[test]
    fn placeholder_services_are_external_names_owned_by_the_route() {
        let r = route(
            "http://cart.shop.example.com",
            "example.com",
            serde_json::json!({VISIBILITY_LABEL: "cluster-local", "team": "a"}),
        );
        let services = route_services(&r, "ferry-ingress.ferry.svc.cluster.local");
        let names: Vec<_> = services.iter().map(|s| s.name_any()).collect();
        assert_eq!(names, ["canary-cart", "cart", "next-cart", "stable-cart"]);
        for s in &services {
            let spec = s.spec.as_ref().expect("spec");
            assert_eq!(spec.type_.as_deref(), Some("ExternalName"));
            assert_eq!(
                spec.external_name.as_deref(),
                Some("ferry-ingress.ferry.svc.cluster.local")
            );
            assert_eq!(spec.ports.as_ref().expect("ports")[0].port, 80);
            assert_eq!(s.namespace().as_deref(), Some("shop"));
            let owner = &s.owner_references()[0];
            assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("Route", "u-1"));
            assert_eq!(owner.controller, Some(true));
            assert_eq!(
                s.labels().get(ROUTE_LABEL).map(String::as_str),
                Some("cart")
            );
            assert_eq!(
                s.labels().get(VISIBILITY_LABEL).map(String::as_str),
                Some("cluster-local")
            );
            assert!(!s.labels().contains_key("team"), "only routing labels");
        }
    }
}
