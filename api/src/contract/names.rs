//! The names Ferry gives things in the log, and how a destination becomes a URL — defined once,
//! used by the contract compiler, the operator (topics, consumer groups, finalizers, status
//! URIs), `ferry dev` and the CLI. A rule written twice drifts: a finalizer would delete a
//! consumer group that was never used, or a status would show a URL nobody posts to.
//!
//! The topic and group names are Knative's (eventing-kafka-broker), so a Ferry installation
//! pointed at a Kafka cluster Knative used finds the same topics and committed offsets.

use super::{Resolved, RevisionTarget, Target};
use crate::Error;
use crate::duck::{Destination, KReference};

/// Knative's topic name for a Kafka-backed Broker.
pub fn broker_topic(namespace: &str, name: &str) -> String {
    format!("knative-broker-{namespace}-{name}")
}

/// Knative's topic name for a KafkaChannel.
pub fn channel_topic(namespace: &str, name: &str) -> String {
    format!("knative-messaging-kafka.{namespace}.{name}")
}

/// The consumer group of a Trigger.
pub fn trigger_group(namespace: &str, trigger: &str) -> String {
    format!("knative-trigger-{namespace}-{trigger}")
}

/// The consumer group of a Subscription to a KafkaChannel.
pub fn subscription_group(namespace: &str, channel: &str, subscription: &str) -> String {
    format!("knative-messaging-kafka.{namespace}.{channel}.{subscription}")
}

/// The consumer group of a KafkaSource that names none (`spec.consumerGroup` unset).
pub fn source_group(uid: &str) -> String {
    format!("knative-kafka-source-{uid}")
}

/// Resolves a destination as the dispatcher will post to it, and as status reports it
/// (`subscriberUri`, `sinkUri`, `deadLetterSinkUri`): a `uri` alone as it is; a `ref` (its
/// namespace defaulted to `namespace`) through `resolve`; a `ref` plus a `uri` joined by
/// [`join_url`] — for a Knative Service, to each of its revisions' URLs.
///
/// # Errors
/// [`Error::DestinationUnset`], or [`Error::ReferentNotFound`] naming the referent.
pub fn resolve_destination(
    namespace: &str,
    dest: &Destination,
    resolve: &dyn Fn(&KReference) -> Option<Resolved>,
) -> crate::Result<Target> {
    let Some(reference) = &dest.reference else {
        return dest
            .uri
            .clone()
            .map(Target::Url)
            .ok_or(Error::DestinationUnset);
    };
    let mut reference = reference.clone();
    reference
        .namespace
        .get_or_insert_with(|| namespace.to_owned());
    let resolved = resolve(&reference).ok_or_else(|| Error::ReferentNotFound {
        kind: reference.kind.clone(),
        namespace: reference.namespace.clone().unwrap_or_default(),
        name: reference.name.clone(),
    })?;
    let join = |base: &str| match &dest.uri {
        Some(uri) => join_url(base, uri),
        None => base.to_owned(),
    };
    Ok(match resolved {
        Resolved::Url(url) => Target::Url(join(&url)),
        Resolved::Revisions(revisions) => Target::Revisions(
            revisions
                .into_iter()
                .map(|r| RevisionTarget {
                    url: join(&r.url),
                    ..r
                })
                .collect(),
        ),
    })
}

/// `base` with a destination's `uri` applied, as Knative resolves `ref` + `uri`: an absolute
/// path (`/x`) replaces the base's path, a relative one (`x`) is appended to it.
pub fn join_url(base: &str, uri: &str) -> String {
    if let Some(path) = uri.strip_prefix('/') {
        let authority_end = base
            .find("://")
            .map(|i| i + 3)
            .and_then(|start| base[start..].find('/').map(|j| start + j));
        let root = authority_end.map_or(base, |end| &base[..end]);
        format!("{root}/{path}")
    } else {
        format!("{}/{uri}", base.trim_end_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_knatives() {
        assert_eq!(broker_topic("ns", "b"), "knative-broker-ns-b");
        assert_eq!(channel_topic("ns", "c"), "knative-messaging-kafka.ns.c");
        assert_eq!(trigger_group("ns", "t"), "knative-trigger-ns-t");
        assert_eq!(
            subscription_group("ns", "c", "s"),
            "knative-messaging-kafka.ns.c.s"
        );
        assert_eq!(source_group("u-1"), "knative-kafka-source-u-1");
    }

    #[test]
    fn joins_relative_and_absolute_paths() {
        let cases = [
            ("http://a.ns.svc", "/x", "http://a.ns.svc/x"),
            ("http://a.ns.svc/", "x", "http://a.ns.svc/x"),
            ("http://a.ns.svc/base", "/x", "http://a.ns.svc/x"),
            ("http://a.ns.svc/base/", "x/y", "http://a.ns.svc/base/x/y"),
            ("http://a.ns.svc/base", "x", "http://a.ns.svc/base/x"),
        ];
        for (base, uri, want) in cases {
            assert_eq!(join_url(base, uri), want, "{base} + {uri}");
        }
    }
}
