//! The operator's view of the cluster: one shared reflector store per kind, and the addresses
//! of everything a `ref` can point at.

use ferry_api::contract::{Resolved, RevisionTarget};
use ferry_api::duck::{AddressStatus, KReference};
use ferry_api::eventing::{Broker, Trigger};
use ferry_api::messaging::{KafkaChannel, Subscription};
use ferry_api::serving::{Configuration, KnativeService, Revision, Route};
use ferry_api::sources::KafkaSource;
use ferry_control::contract_inputs::Eventing;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{ObjectRef, Store};

pub use crate::serving::{REVISION_LABEL, revision_url, traffic_targets};

/// Readers of every store the controllers and the contract share.
#[derive(Clone)]
pub struct Stores {
    /// Brokers (every class; the class is checked where it matters).
    pub brokers: Store<Broker>,
    /// Triggers.
    pub triggers: Store<Trigger>,
    /// KafkaChannels.
    pub channels: Store<KafkaChannel>,
    /// Subscriptions.
    pub subscriptions: Store<Subscription>,
    /// KafkaSources.
    pub sources: Store<KafkaSource>,
    /// Knative Services.
    pub services: Store<KnativeService>,
    /// Configurations.
    pub configurations: Store<Configuration>,
    /// Revisions.
    pub revisions: Store<Revision>,
    /// Routes.
    pub routes: Store<Route>,
    /// Deployments of revisions (label `serving.knative.dev/revision`).
    pub deployments: Store<Deployment>,
    /// EndpointSlices of revisions' Services (label `serving.knative.dev/revision`).
    pub endpoints: Store<EndpointSlice>,
}

fn get<K>(store: &Store<K>, namespace: &str, name: &str) -> Option<std::sync::Arc<K>>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    store.get(&ObjectRef::new(name).within(namespace))
}

fn url_of(address: &AddressStatus) -> Option<String> {
    address.address.as_ref().and_then(|a| a.url.clone())
}

/// The API group of a reference (`apiVersion` before the `/`, or `group`; core is `""`).
fn group(r: &KReference) -> &str {
    match (&r.api_version, &r.group) {
        (Some(v), _) => v.split_once('/').map_or("", |(g, _)| g),
        (None, Some(g)) => g,
        (None, None) => "",
    }
}

impl Stores {
    /// The eventing objects the contract is compiled from, as the stores hold them (shared, not
    /// copied).
    pub fn eventing(&self) -> Eventing {
        Eventing {
            brokers: self.brokers.state(),
            triggers: self.triggers.state(),
            channels: self.channels.state(),
            subscriptions: self.subscriptions.state(),
            sources: self.sources.state(),
        }
    }

    /// The address a reference resolves to (namespace already defaulted): an addressable's
    /// `status.address.url`, a core Service's cluster DNS name. `None` when the referent does
    /// not exist, has no address yet, or is of a kind that is not addressable.
    pub fn address(&self, r: &KReference, cluster_domain: &str) -> Option<String> {
        let ns = r.namespace.as_deref()?;
        match (group(r), r.kind.as_str()) {
            ("eventing.knative.dev", "Broker") => get(&self.brokers, ns, &r.name)
                .and_then(|b| b.status.as_ref().and_then(|s| url_of(&s.address))),
            ("messaging.knative.dev", "KafkaChannel") => get(&self.channels, ns, &r.name)
                .and_then(|c| c.status.as_ref().and_then(|s| url_of(&s.address))),
            ("serving.knative.dev", "Service") => get(&self.services, ns, &r.name).and_then(|s| {
                let status = s.status.as_ref()?;
                status
                    .route
                    .address
                    .as_ref()
                    .and_then(|a| a.url.clone())
                    .or_else(|| status.route.url.clone())
            }),
            ("serving.knative.dev", "Route") => get(&self.routes, ns, &r.name).and_then(|rt| {
                let status = rt.status.as_ref()?;
                status
                    .fields
                    .address
                    .as_ref()
                    .and_then(|a| a.url.clone())
                    .or_else(|| status.fields.url.clone())
            }),
            ("", "Service") => Some(format!("http://{}.{ns}.svc.{cluster_domain}", r.name)),
            _ => None,
        }
    }

    /// What the contract delivers to for a reference: a Knative Service or Route becomes its
    /// Route's revisions with their percents (the dispatcher splits the traffic and activates
    /// revisions at zero); everything else its address.
    pub fn resolve(&self, r: &KReference, cluster_domain: &str) -> Option<Resolved> {
        let ns = r.namespace.as_deref()?;
        if group(r) == "serving.knative.dev" && matches!(r.kind.as_str(), "Service" | "Route") {
            // A Service's Route has the Service's name.
            let route = get(&self.routes, ns, &r.name)?;
            let targets = route_targets(&route, cluster_domain);
            return (!targets.is_empty()).then_some(Resolved::Revisions(targets));
        }
        self.address(r, cluster_domain).map(Resolved::Url)
    }
}

/// The name of the channel a Subscription subscribes to.
pub fn channel_of(sub: &Subscription) -> &str {
    sub.spec.channel.name.as_deref().unwrap_or_default()
}

/// A Route's `status.traffic` as contract targets at the revisions' in-cluster URLs.
pub fn route_targets(route: &Route, cluster_domain: &str) -> Vec<RevisionTarget> {
    let ns = route.metadata.namespace.as_deref().unwrap_or_default();
    route.status.as_ref().map_or_else(Vec::new, |status| {
        traffic_targets(status, &|r| Some(revision_url(ns, r, cluster_domain)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_api::serving::TrafficTarget;
    use kube::runtime::reflector::store;
    use kube::runtime::watcher::Event;

    fn stores_with(brokers: Vec<Broker>, routes: Vec<Route>) -> Stores {
        fn filled<K>(items: Vec<K>) -> Store<K>
        where
            K: kube::Resource<DynamicType = ()> + Clone + 'static,
        {
            let (reader, mut writer) = store();
            writer.apply_watcher_event(&Event::Init);
            for item in items {
                writer.apply_watcher_event(&Event::InitApply(item));
            }
            writer.apply_watcher_event(&Event::InitDone);
            reader
        }
        Stores {
            brokers: filled(brokers),
            triggers: filled(vec![]),
            channels: filled(vec![]),
            subscriptions: filled(vec![]),
            sources: filled(vec![]),
            services: filled(vec![]),
            configurations: filled(vec![]),
            revisions: filled(vec![]),
            routes: filled(routes),
            deployments: filled(vec![]),
            endpoints: filled(vec![]),
        }
    }

    fn reference(api_version: &str, kind: &str, name: &str) -> KReference {
        KReference {
            kind: kind.to_owned(),
            namespace: Some("ns".to_owned()),
            name: name.to_owned(),
            api_version: Some(api_version.to_owned()),
            group: None,
        }
    }

    #[test]
    fn references_resolve_to_addresses_or_revisions() {
        let mut ready: Broker = serde_json::from_value(serde_json::json!({
            "apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
            "metadata": {"name": "ready", "namespace": "ns"},
            "spec": {},
            "status": {"address": {"url": "http://ingress/ns/ready"}}
        }))
        .expect("broker");
        let fresh = {
            let mut b = ready.clone();
            b.metadata.name = Some("fresh".into());
            b.status = None;
            b
        };
        ready.metadata.uid = Some("u".into());
        let mut route = Route::new("svc", Default::default());
        route.metadata.namespace = Some("ns".into());
        route.status = Some(Default::default());
        let status = route.status.as_mut().expect("status");
        status.fields.traffic = vec![
            TrafficTarget {
                revision_name: Some("svc-00001".into()),
                percent: Some(90),
                ..Default::default()
            },
            TrafficTarget {
                revision_name: Some("svc-00002".into()),
                percent: Some(10),
                tag: Some("candidate".into()),
                ..Default::default()
            },
            TrafficTarget {
                revision_name: Some("svc-00002".into()),
                percent: Some(0),
                tag: Some("latest".into()),
                ..Default::default()
            },
        ];
        let stores = stores_with(vec![ready, fresh], vec![route]);
        let cases = [
            (
                reference("eventing.knative.dev/v1", "Broker", "ready"),
                Some(Resolved::Url("http://ingress/ns/ready".into())),
            ),
            (
                reference("eventing.knative.dev/v1", "Broker", "fresh"),
                None,
            ),
            (
                reference("eventing.knative.dev/v1", "Broker", "absent"),
                None,
            ),
            (
                reference("v1", "Service", "plain"),
                Some(Resolved::Url("http://plain.ns.svc.cluster.local".into())),
            ),
            (
                reference("serving.knative.dev/v1", "Service", "svc"),
                Some(Resolved::Revisions(vec![
                    RevisionTarget {
                        revision: "svc-00001".into(),
                        url: "http://svc-00001.ns.svc.cluster.local".into(),
                        percent: 90,
                    },
                    RevisionTarget {
                        revision: "svc-00002".into(),
                        url: "http://svc-00002.ns.svc.cluster.local".into(),
                        percent: 10,
                    },
                ])),
            ),
            (
                reference("serving.knative.dev/v1", "Service", "other"),
                None,
            ),
            (reference("apps/v1", "Deployment", "svc"), None),
        ];
        for (r, want) in cases {
            assert_eq!(stores.resolve(&r, "cluster.local"), want, "{r:?}");
        }
    }
}
