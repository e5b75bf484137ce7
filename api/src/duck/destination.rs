//! Destinations and addresses: `ref` / `uri` sinks and the `status.address` of addressable kinds.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::validation::{FieldError, FieldErrors, Path, unsupported};

/// A reference to a Kubernetes object by kind and name (Knative `duckv1.KReference`).
///
/// Unlike core `ObjectReference` it has no `uid`/`resourceVersion`/`fieldPath`: Knative resolves
/// it to the referent's `status.address.url` when it reconciles.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KReference {
    /// Kind of the referent, e.g. `Service`.
    pub kind: String,
    /// Namespace of the referent; defaults to the namespace of the object holding the reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name of the referent.
    pub name: String,
    /// API version of the referent, e.g. `serving.knative.dev/v1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// API group of the referent, as an alternative to `apiVersion` (Knative's experimental
    /// `kreference-group` feature).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// Where events are sent: a reference to an addressable object, a URI, or a reference plus a
/// relative URI joined to the referent's address (Knative `duckv1.Destination`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.ref) || has(self.uri)",
    "message": "a destination needs ref or uri"
}]))]
pub struct Destination {
    /// A reference to an addressable object (Knative Service, Broker, KafkaChannel, core Service).
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<KReference>,
    /// An absolute URL, or with `ref` a relative URI resolved against the referent's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// PEM CA certificates the sender trusts when delivering to this destination.
    #[serde(default, rename = "CACerts", skip_serializing_if = "Option::is_none")]
    pub ca_certs: Option<String>,
    /// OIDC audience of the destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

impl Destination {
    /// A destination pointing at an absolute URI.
    pub fn uri(uri: impl Into<String>) -> Self {
        Destination {
            uri: Some(uri.into()),
            ..Destination::default()
        }
    }

    /// A destination pointing at an object by reference.
    pub fn reference(api_version: &str, kind: &str, name: &str) -> Self {
        Destination {
            reference: Some(KReference {
                kind: kind.to_owned(),
                name: name.to_owned(),
                api_version: Some(api_version.to_owned()),
                ..KReference::default()
            }),
            ..Destination::default()
        }
    }

    /// Checks Knative's destination rules: `ref` or `uri`; a lone `uri` must be absolute; with a
    /// `ref`, `uri` must be relative; a `ref` names its kind, name and API version or group.
    pub fn validate(&self, path: &Path, errs: &mut FieldErrors) {
        match (&self.reference, &self.uri) {
            (None, None) => errs.push(
                path,
                "a destination needs `ref` or `uri`",
                "set `ref` to an addressable object or `uri` to an absolute URL",
            ),
            (None, Some(uri)) => {
                if !is_absolute_url(uri) {
                    errs.push(
                        &path.field("uri"),
                        format!("`{uri}` is not an absolute URL"),
                        "use a URL with a scheme and host (http://host/path), or add `ref`",
                    );
                }
            }
            (Some(reference), uri) => {
                if let Some(uri) = uri
                    && is_absolute_url(uri)
                {
                    errs.push(
                        &path.field("uri"),
                        format!("`{uri}` is absolute but `ref` is set too"),
                        "with `ref`, `uri` must be a relative path such as /extra/path",
                    );
                }
                reference.validate(&path.field("ref"), errs);
            }
        }
    }
}

impl Destination {
    /// Records the fields of this destination Ferry does not act on yet: `CACerts` (custom CAs
    /// for TLS to sinks) and `audience` (OIDC tokens).
    pub fn unsupported_fields(&self, path: &Path, out: &mut Vec<FieldError>) {
        if self.ca_certs.is_some() {
            unsupported(
                out,
                &path.field("CACerts"),
                "Ferry delivers with the system trust store; remove CACerts",
            );
        }
        if self.audience.is_some() {
            unsupported(
                out,
                &path.field("audience"),
                "Ferry does not send OIDC tokens yet; remove audience",
            );
        }
    }
}

impl KReference {
    /// Checks that the reference names its kind, name and API version (or group).
    pub fn validate(&self, path: &Path, errs: &mut FieldErrors) {
        if self.kind.is_empty() {
            errs.push(
                &path.field("kind"),
                "kind is empty",
                "name the referent's kind, e.g. Service",
            );
        }
        if self.name.is_empty() {
            errs.push(
                &path.field("name"),
                "name is empty",
                "name the referent object",
            );
        }
        if self.api_version.as_deref().unwrap_or("").is_empty()
            && self.group.as_deref().unwrap_or("").is_empty()
        {
            errs.push(
                &path.field("apiVersion"),
                "apiVersion is empty",
                "set apiVersion, e.g. serving.knative.dev/v1",
            );
        }
    }
}

/// `true` when `uri` has a scheme and a non-empty host (`http://host...`).
pub(crate) fn is_absolute_url(uri: &str) -> bool {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return false;
    };
    let scheme_ok = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    scheme_ok && !host.is_empty()
}

/// One address of an addressable resource (Knative `duckv1.Addressable`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Addressable {
    /// Name of the address, e.g. `http` or `https`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The URL events are sent to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// PEM CA certificates for this address.
    #[serde(default, rename = "CACerts", skip_serializing_if = "Option::is_none")]
    pub ca_certs: Option<String>,
    /// OIDC audience of this address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

/// The addressable status fields (Knative `duckv1.AddressStatus`), inlined into kinds' status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AddressStatus {
    /// The primary address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Addressable>,
    /// All addresses, the primary one included.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Addressable>,
}

/// Extensions a source adds to every event it emits (Knative `ceOverrides`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CloudEventOverrides {
    /// Extension attributes set on every emitted event, overriding values already present.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extensions: BTreeMap<String, String>,
}

/// A type/source pair a source reports that it emits (Knative `status.ceAttributes`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CloudEventAttributes {
    /// The CloudEvents `type`.
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    pub event_type: String,
    /// The CloudEvents `source`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_urls() {
        for ok in [
            "http://a",
            "https://a.b:8080/x?y",
            "h2c://svc.ns.svc.cluster.local/",
        ] {
            assert!(is_absolute_url(ok), "{ok}");
        }
        for bad in [
            "",
            "/relative",
            "http://",
            "://host",
            "1http://h",
            "host/path",
        ] {
            assert!(!is_absolute_url(bad), "{bad}");
        }
    }

    #[test]
    fn destination_rules() {
        let check = |d: &Destination| {
            let mut errs = FieldErrors::default();
            d.validate(&Path::root("spec.subscriber"), &mut errs);
            errs.to_string()
        };
        assert_eq!(check(&Destination::uri("http://sink")), "");
        assert!(check(&Destination::default()).contains("spec.subscriber: a destination needs"));
        assert!(
            check(&Destination::uri("/x"))
                .contains("spec.subscriber.uri: `/x` is not an absolute URL")
        );
        let mut with_ref = Destination::reference("serving.knative.dev/v1", "Service", "cart");
        assert_eq!(check(&with_ref), "");
        with_ref.uri = Some("/extra".into());
        assert_eq!(check(&with_ref), "");
        with_ref.uri = Some("http://elsewhere".into());
        assert!(check(&with_ref).contains("is absolute but `ref` is set too"));
        let no_kind = Destination {
            reference: Some(KReference {
                name: "x".into(),
                ..KReference::default()
            }),
            ..Destination::default()
        };
        let msg = check(&no_kind);
        assert!(
            msg.contains("spec.subscriber.ref.kind: kind is empty"),
            "{msg}"
        );
        assert!(msg.contains("spec.subscriber.ref.apiVersion"), "{msg}");
    }
}
