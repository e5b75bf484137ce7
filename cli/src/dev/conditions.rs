//! Eventing objects' readiness in `ferry dev`: each row's READY is the object's Knative `Ready`
//! condition, computed by the status functions the operator writes to the cluster
//! ([`ferry_control::status`]) from what `ferry dev` observed — its place in the contract, its
//! topic, its resolved destinations (by the contract's own rule). So a Trigger is Ready here
//! exactly when it would be in a cluster.

use std::collections::BTreeMap;

use ferry_api::contract::{CompileError, Contract, Egress, ObjectRef, Target, broker_topic};
use ferry_api::duck::{KReference, READY, Status};
use ferry_control::status::{
    self, BrokerState, ChannelState, DataPlane, Observed, Topic, destination_uri,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use super::desired::{AddressKind, Desired};
use super::row::Row;
use super::serving::{Serving, service_key};

/// What the rows are computed from.
pub struct World<'a> {
    /// The manifests.
    pub desired: &'a Desired,
    /// The contract last written.
    pub contract: &'a Contract,
    /// Objects the last compile left out, and why.
    pub errors: &'a [CompileError],
    /// The generation the dispatcher applied.
    pub applied: Option<u64>,
    /// Topics as the log answered.
    pub topics: &'a BTreeMap<String, Topic>,
    /// `http://<ingress>`.
    pub ingress_base: &'a str,
    /// Services and revisions.
    pub serving: &'a Serving,
}

impl World<'_> {
    /// The address a `ref` resolves to for status: a Broker's or channel's ingress URL, a
    /// Service's local URL once its traffic answers.
    fn address(&self, r: &KReference) -> Option<String> {
        let ns = r.namespace.as_deref()?;
        match self.desired.address_kind(r)? {
            AddressKind::Ingress => Some(status::ingress_url(self.ingress_base, ns, &r.name)),
            AddressKind::Service => {
                let key = format!("{ns}/{}", r.name);
                self.serving.ready_targets(&key)?;
                self.serving.proxies.get(&key).map(|p| p.url.clone())
            }
        }
    }

    fn data_plane(&self, kind: &str, ns: &str, name: &str) -> DataPlane {
        let object = ObjectRef::new(kind, ns, name);
        match self.errors.iter().find(|e| e.object == object) {
            Some(e) => DataPlane::Failed(e.clone()),
            None => DataPlane::Compiled {
                applied: self
                    .applied
                    .is_some_and(|g| g >= self.contract.generation && self.contract.generation > 0),
            },
        }
    }

    fn egress(&self, kind: &str, ns: &str, name: &str) -> Option<&Egress> {
        let object = ObjectRef::new(kind, ns, name);
        self.contract
            .resources
            .iter()
            .flat_map(|r| &r.egresses)
            .find(|e| e.reference == object)
    }

    fn observed(&self, kind: &str, ns: &str, name: &str) -> Observed {
        Observed {
            data_plane: self.data_plane(kind, ns, name),
            egress: self.egress(kind, ns, name).cloned(),
            ..Observed::default()
        }
    }

    /// A not-ready row's detail: the Ready condition's reason and message — or, for a
    /// reference to a loaded Service that is not serving yet, that it waits for it.
    fn explain(&self, status: &Status) -> String {
        let ready = status.condition(READY);
        let message = ready.and_then(|c| c.message.clone()).unwrap_or_default();
        let waiting = self.desired.services.iter().find_map(|s| {
            let key = service_key(s);
            let state = self.serving.services.get(&key)?;
            (state.ready_targets.is_none() && message.contains(&format!("Service {key} "))).then(
                || {
                    format!(
                        "waiting for Service {key}: {}",
                        state.reason.clone().unwrap_or_else(|| "starting".into())
                    )
                },
            )
        });
        waiting.unwrap_or_else(|| match ready.and_then(|c| c.reason.clone()) {
            Some(reason) if message.is_empty() => reason,
            Some(reason) => format!("{reason}: {message}"),
            None => "waiting for the dispatcher to apply the contract".into(),
        })
    }

    fn state(
        &self,
        status: &Status,
        ready_detail: impl FnOnce() -> String,
    ) -> Result<String, String> {
        if status.is_ready() {
            Ok(ready_detail())
        } else {
            Err(self.explain(status))
        }
    }
}

/// The eventing objects' rows: Brokers, KafkaChannels, Triggers, Subscriptions, KafkaSources.
pub fn eventing_rows(w: &World<'_>) -> Vec<Row> {
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let mut rows = Vec::new();
    let mut brokers = BTreeMap::new();
    for b in &w.desired.brokers {
        let (ns, name) = (b.namespace().unwrap_or_default(), b.name_any());
        let topic = broker_topic(&ns, &name);
        let dlq = b
            .spec
            .delivery
            .as_ref()
            .and_then(|d| d.dead_letter_sink.as_ref());
        let obs = Observed {
            topic: w.topics.get(&topic).cloned().unwrap_or_default(),
            dead_letter_sink_uri: destination_uri(&ns, dlq, &|r| w.address(r)),
            ..w.observed("Broker", &ns, &name)
        };
        let st = status::broker_status(b, &obs, w.ingress_base, &now);
        brokers.insert((ns.clone(), name.clone()), st.status.is_ready());
        let state = w.state(&st.status, || format!("topic {topic}"));
        let url = Some(status::ingress_url(w.ingress_base, &ns, &name));
        rows.push(Row::new("Broker", &ns, &name, url, state));
    }
    let channels = channel_rows(w, &now, &mut rows);
    for t in &w.desired.triggers {
        let (ns, name) = (t.namespace().unwrap_or_default(), t.name_any());
        let broker = match brokers.get(&(ns.clone(), t.spec.broker.clone())) {
            Some(ready) => BrokerState::Present(*ready),
            None => BrokerState::Missing,
        };
        let obs = Observed {
            subscriber_uri: destination_uri(&ns, Some(&t.spec.subscriber), &|r| w.address(r)),
            ..w.observed("Trigger", &ns, &name)
        };
        let st = status::trigger_status(t, broker, &obs, &now);
        rows.push(egress_row(w, "Trigger", &ns, &name, &st.status));
    }
    for s in &w.desired.subscriptions {
        let (ns, name) = (s.namespace().unwrap_or_default(), s.name_any());
        let channel = s.spec.channel.name.clone().unwrap_or_default();
        let channel = match channels.get(&(ns.clone(), channel)) {
            Some(ready) => ChannelState::Present(*ready),
            None => ChannelState::Missing,
        };
        let address = |r: &KReference| w.address(r);
        let obs = Observed {
            subscriber_uri: destination_uri(&ns, s.spec.subscriber.as_ref(), &address),
            reply_uri: destination_uri(&ns, s.spec.reply.as_ref(), &address),
            ..w.observed("Subscription", &ns, &name)
        };
        let st = status::subscription_status(s, channel, &obs, &now);
        rows.push(egress_row(w, "Subscription", &ns, &name, &st.status));
    }
    for s in &w.desired.sources {
        let (ns, name) = (s.namespace().unwrap_or_default(), s.name_any());
        let obs = Observed {
            subscriber_uri: destination_uri(&ns, Some(&s.spec.sink), &|r| w.address(r)),
            ..w.observed("KafkaSource", &ns, &name)
        };
        let topics = source_topics(w, &s.spec.topics);
        let st = status::source_status(s, &obs, &topics, &now);
        rows.push(egress_row(w, "KafkaSource", &ns, &name, &st.status));
    }
    rows
}

/// KafkaChannels' rows; returns whether each is ready, by (namespace, name).
fn channel_rows(
    w: &World<'_>,
    now: &Time,
    rows: &mut Vec<Row>,
) -> BTreeMap<(String, String), bool> {
    let mut ready = BTreeMap::new();
    for c in &w.desired.channels {
        let (ns, name) = (c.namespace().unwrap_or_default(), c.name_any());
        let topic = ferry_api::contract::channel_topic(&ns, &name);
        let subs: Vec<_> = w
            .desired
            .subscriptions
            .iter()
            .filter(|s| s.namespace().as_deref() == Some(&ns))
            .filter(|s| s.spec.channel.name.as_deref() == Some(&name))
            .map(|s| (s, w.data_plane("Subscription", &ns, &s.name_any())))
            .collect();
        let subscribers: Vec<_> = subs.iter().map(|(s, dp)| (*s, dp.clone())).collect();
        let obs = Observed {
            topic: w.topics.get(&topic).cloned().unwrap_or_default(),
            ..w.observed("KafkaChannel", &ns, &name)
        };
        let st = status::channel_status(c, &obs, &subscribers, w.ingress_base, now);
        ready.insert((ns.clone(), name.clone()), st.status.is_ready());
        let state = w.state(&st.status, || format!("topic {topic}"));
        let url = Some(status::ingress_url(w.ingress_base, &ns, &name));
        rows.push(Row::new("KafkaChannel", &ns, &name, url, state));
    }
    ready
}

/// A KafkaSource's topics: on the embedded broker `ferry dev` creates them; on `--kafka` they
/// are the user's, and are taken to exist (the source's consumer reports otherwise).
fn source_topics(w: &World<'_>, topics: &[String]) -> Topic {
    let missing = topics
        .iter()
        .find(|t| matches!(w.topics.get(*t), Some(Topic::Pending | Topic::Failed(_))));
    match missing.and_then(|t| w.topics.get(t)) {
        Some(state) => state.clone(),
        None => Topic::Ready(topics.join(",")),
    }
}

fn egress_row(w: &World<'_>, kind: &str, ns: &str, name: &str, status: &Status) -> Row {
    let destination = || match w.egress(kind, ns, name).map(|e| &e.destination) {
        Some(Target::Url(url)) => format!("→ {url}"),
        Some(Target::Revisions(revs)) => format!(
            "→ {}",
            revs.iter()
                .map(|r| format!("{} {}%", r.revision, r.percent))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => String::new(),
    };
    Row::new(kind, ns, name, None, w.state(status, destination))
}
