//! Traffic targets: how a Route (or a Service's route) splits requests across revisions.

use std::collections::BTreeSet;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::validation::{FieldErrors, Path};

/// Most traffic targets in one route; bounds the CEL rules' cost on the API server.
pub const MAX_TRAFFIC_TARGETS: usize = 100;

/// One traffic target (Knative `TrafficTarget`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrafficTarget {
    /// Tag that makes this target addressable on its own (`<tag>-<route>` URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub tag: Option<String>,
    /// A fixed revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub revision_name: Option<String>,
    /// A Configuration whose latest ready revision is targeted (Route only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub configuration_name: Option<String>,
    /// Track the latest ready revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_revision: Option<bool>,
    /// Share of traffic, 0–100; all targets sum to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub percent: Option<i64>,
    /// The target's own URL (status only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl TrafficTarget {
    /// The target that sends all traffic to the latest ready revision (Knative's default).
    pub fn latest_100() -> Self {
        TrafficTarget {
            latest_revision: Some(true),
            percent: Some(100),
            ..TrafficTarget::default()
        }
    }

    /// Knative's rule on what a target names: exactly one of `revisionName`,
    /// `configurationName` (Route only) or `latestRevision: true` (`at` is the target).
    fn validate_revision_choice(&self, owner: TrafficOwner, at: &Path, errs: &mut FieldErrors) {
        let latest = self.latest_revision == Some(true);
        // Knative's rule: a revision or a configuration, not both; `latestRevision: true`
        // tracks a configuration (the one named, or the Service's own), so it may accompany
        // `configurationName` (Knative defaults Routes that way) but never `revisionName`.
        let mut chosen = Vec::new();
        if self.revision_name.is_some() {
            chosen.push("revisionName");
        }
        if self.configuration_name.is_some() {
            chosen.push("configurationName");
        } else if latest {
            chosen.push("latestRevision: true");
        }
        if owner == TrafficOwner::Service && self.configuration_name.is_some() {
            errs.push(
                &at.field("configurationName"),
                "is not allowed in a Service",
                "a Service routes to its own revisions: use revisionName or latestRevision",
            );
        }
        if latest && self.revision_name.is_some() && self.configuration_name.is_some() {
            chosen.push("latestRevision: true");
        }
        match chosen.len() {
            1 => {}
            0 => errs.push(
                at,
                "names no revision",
                "set revisionName, or latestRevision: true",
            ),
            _ => errs.push(
                at,
                format!("sets {}", chosen.join(" and ")),
                "set exactly one of revisionName, configurationName or latestRevision: true",
            ),
        }
        if self.latest_revision == Some(false) && self.revision_name.is_none() {
            errs.push(
                &at.field("latestRevision"),
                "is false but revisionName is not set",
                "name the revision, or set latestRevision: true",
            );
        }
    }
}

/// Where traffic targets appear: configuration names are allowed in a Route only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrafficOwner {
    /// A Service's `spec.traffic`: targets its own configuration.
    Service,
    /// A Route's `spec.traffic`.
    Route,
}

/// The CEL rules on a `traffic` list: percents sum to 100 and tags are unique.
pub(crate) fn traffic_list_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut schema = generator.subschema_for::<Vec<TrafficTarget>>();
    let obj = schema.ensure_object();
    obj.insert("maxItems".into(), MAX_TRAFFIC_TARGETS.into());
    obj.insert(
        "x-kubernetes-validations".into(),
        serde_json::json!([
            {
                "rule": "self.size() == 0 || self.map(t, has(t.percent) ? t.percent : 0).sum() == 100",
                "message": "traffic percents must sum to 100"
            },
            {
                "rule": "self.all(t, !has(t.tag) || self.filter(u, has(u.tag) && u.tag == t.tag).size() == 1)",
                "message": "traffic tags must be unique"
            }
        ]),
    );
    schema
}

/// Checks a traffic list with Knative's rules: each target names exactly one of
/// `revisionName`, `configurationName` (Route only) or `latestRevision: true`; percents are
/// 0–100 and sum to 100; tags are unique DNS labels; `url` is not set by users.
pub fn validate_traffic(
    targets: &[TrafficTarget],
    owner: TrafficOwner,
    path: &Path,
    errs: &mut FieldErrors,
) {
    if targets.is_empty() {
        return;
    }
    if targets.len() > MAX_TRAFFIC_TARGETS {
        errs.push(
            path,
            format!("has {} targets", targets.len()),
            format!("use at most {MAX_TRAFFIC_TARGETS}"),
        );
    }
    let mut tags = BTreeSet::new();
    let mut sum: i64 = 0;
    for (i, t) in targets.iter().enumerate() {
        let at = path.index(i);
        t.validate_revision_choice(owner, &at, errs);
        if let Some(p) = t.percent {
            if !(0..=100).contains(&p) {
                errs.push(
                    &at.field("percent"),
                    format!("{p} is out of range"),
                    "use 0-100",
                );
            }
            sum = sum.saturating_add(p);
        }
        if let Some(tag) = &t.tag {
            if !is_dns_label(tag) {
                errs.push(&at.field("tag"), format!("`{tag}` is not a DNS label"), "use lowercase letters, digits and '-', starting with a letter, at most 63 characters");
            }
            if !tags.insert(tag.as_str()) {
                errs.push(
                    &at.field("tag"),
                    format!("`{tag}` is used by another target"),
                    "give each tag to one target",
                );
            }
        }
        if t.url.is_some() {
            errs.push(
                &at.field("url"),
                "is set in the spec",
                "remove it; Ferry reports URLs in status.traffic",
            );
        }
    }
    if sum != 100 {
        errs.push(
            path,
            format!("percents sum to {sum}"),
            "make the percents add up to exactly 100",
        );
    }
}

/// RFC 1035 label: lowercase letter first, then lowercase letters, digits or '-', no trailing
/// '-', at most 63 characters.
pub(crate) fn is_dns_label(s: &str) -> bool {
    s.len() <= 63
        && s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && !s.ends_with('-')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Knative's name for the `generation`-th revision of a configuration: `<configuration>-00001`.
pub fn revision_name(configuration: &str, generation: u64) -> String {
    format!("{configuration}-{generation:05}")
}

/// One resolved traffic target: a concrete revision (Knative `status.traffic`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedTarget {
    /// The revision that receives this share.
    pub revision: String,
    /// Share of traffic, 0–100.
    pub percent: u32,
    /// The target's tag, if any.
    pub tag: Option<String>,
    /// `true` when the target tracks the latest ready revision.
    pub latest: bool,
}

/// Why a route's traffic cannot be resolved yet (Knative's `AllTrafficAssigned=False`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnresolvedTraffic {
    /// Knative's reason: `RevisionMissing` or `ConfigurationMissing`.
    pub reason: &'static str,
    /// What is missing and what to do.
    pub message: String,
}

/// Resolves a (validated) traffic list to concrete revisions, as a Route's reconciler does.
///
/// `configuration` is the Service's own configuration (for `latestRevision: true`);
/// `latest_ready(config)` names a configuration's latest ready revision (`None`: it has none
/// yet, or does not exist); `revision_exists(name)` says whether a named revision exists. An
/// empty list means 100% to the latest ready revision.
///
/// # Errors
/// The first target that cannot be resolved.
pub fn resolve_traffic(
    targets: &[TrafficTarget],
    configuration: Option<&str>,
    latest_ready: &dyn Fn(&str) -> Option<String>,
    revision_exists: &dyn Fn(&str) -> bool,
) -> Result<Vec<ResolvedTarget>, UnresolvedTraffic> {
    let default = [TrafficTarget::latest_100()];
    let targets = if targets.is_empty() {
        &default[..]
    } else {
        targets
    };
    targets
        .iter()
        .map(|t| {
            let percent = u32::try_from(t.percent.unwrap_or(0).clamp(0, 100)).unwrap_or(0);
            let (revision, latest) = if let Some(name) = &t.revision_name {
                if !revision_exists(name) {
                    return Err(UnresolvedTraffic {
                        reason: "RevisionMissing",
                        message: format!(
                            "revision {name:?} does not exist; name an existing revision or use latestRevision: true"
                        ),
                    });
                }
                (name.clone(), false)
            } else {
                let config = t.configuration_name.as_deref().or(configuration);
                let Some(config) = config else {
                    return Err(UnresolvedTraffic {
                        reason: "ConfigurationMissing",
                        message: "a latestRevision target needs a configuration".to_owned(),
                    });
                };
                let Some(name) = latest_ready(config) else {
                    return Err(UnresolvedTraffic {
                        reason: "RevisionMissing",
                        message: format!(
                            "configuration {config:?} has no ready revision yet"
                        ),
                    });
                };
                (name, true)
            };
            Ok(ResolvedTarget {
                revision,
                percent,
                tag: t.tag.clone(),
                latest,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(rev: &str, percent: i64, tag: Option<&str>) -> TrafficTarget {
        TrafficTarget {
            revision_name: Some(rev.into()),
            percent: Some(percent),
            tag: tag.map(Into::into),
            ..TrafficTarget::default()
        }
    }

    fn check(targets: &[TrafficTarget], owner: TrafficOwner) -> String {
        let mut errs = FieldErrors::default();
        validate_traffic(targets, owner, &Path::root("spec.traffic"), &mut errs);
        errs.to_string()
    }

    #[test]
    fn valid_splits() {
        assert_eq!(
            check(
                &[
                    target("a-00001", 90, None),
                    target("a-00002", 10, Some("canary"))
                ],
                TrafficOwner::Service
            ),
            ""
        );
        assert_eq!(
            check(&[TrafficTarget::latest_100()], TrafficOwner::Service),
            ""
        );
        let tag_only = TrafficTarget {
            tag: Some("old".into()),
            revision_name: Some("a-00001".into()),
            ..Default::default()
        };
        assert_eq!(
            check(
                &[TrafficTarget::latest_100(), tag_only],
                TrafficOwner::Route
            ),
            ""
        );
        // Knative defaults a Route's configuration targets to `latestRevision: true`.
        let defaulted = TrafficTarget {
            configuration_name: Some("a".into()),
            latest_revision: Some(true),
            percent: Some(100),
            ..Default::default()
        };
        assert_eq!(check(&[defaulted], TrafficOwner::Route), "");
    }

    #[test]
    fn rule_violations() {
        let cases: Vec<(Vec<TrafficTarget>, TrafficOwner, &str)> = vec![
            (
                vec![target("a", 90, None), target("b", 20, None)],
                TrafficOwner::Service,
                "spec.traffic: percents sum to 110",
            ),
            (
                vec![target("a", 50, Some("x")), target("b", 50, Some("x"))],
                TrafficOwner::Service,
                "spec.traffic[1].tag: `x` is used by another target",
            ),
            (
                vec![target("a", 100, Some("Bad_Tag"))],
                TrafficOwner::Service,
                "is not a DNS label",
            ),
            (
                vec![TrafficTarget {
                    percent: Some(100),
                    ..Default::default()
                }],
                TrafficOwner::Service,
                "spec.traffic[0]: names no revision",
            ),
            (
                vec![TrafficTarget {
                    revision_name: Some("a".into()),
                    latest_revision: Some(true),
                    percent: Some(100),
                    ..Default::default()
                }],
                TrafficOwner::Service,
                "sets revisionName and latestRevision: true",
            ),
            (
                vec![TrafficTarget {
                    configuration_name: Some("c".into()),
                    percent: Some(100),
                    ..Default::default()
                }],
                TrafficOwner::Service,
                "configurationName: is not allowed in a Service",
            ),
            (
                vec![target("a", 101, None)],
                TrafficOwner::Route,
                "percent: 101 is out of range",
            ),
            (
                vec![TrafficTarget {
                    url: Some("http://x".into()),
                    ..TrafficTarget::latest_100()
                }],
                TrafficOwner::Route,
                "url: is set in the spec",
            ),
        ];
        for (targets, owner, want) in cases {
            let got = check(&targets, owner);
            assert!(got.contains(want), "want {want:?} in {got:?}");
        }
    }

    #[test]
    fn revision_names_count_from_one_with_five_digits() {
        assert_eq!(revision_name("cart", 1), "cart-00001");
        assert_eq!(revision_name("cart", 123_456), "cart-123456");
    }

    #[test]
    fn traffic_resolves_to_concrete_revisions() {
        let latest = |c: &str| (c == "cart").then(|| "cart-00002".to_owned());
        let exists = |r: &str| r == "cart-00001" || r == "cart-00002";
        let target = |rev: Option<&str>, latest: bool, percent, tag: Option<&str>| TrafficTarget {
            revision_name: rev.map(str::to_owned),
            latest_revision: latest.then_some(true),
            percent: Some(percent),
            tag: tag.map(str::to_owned),
            ..TrafficTarget::default()
        };
        let resolved = |revision: &str, percent, tag: Option<&str>, latest| ResolvedTarget {
            revision: revision.into(),
            percent,
            tag: tag.map(str::to_owned),
            latest,
        };
        // (targets, configuration, expected: the targets or the reason)
        type Case<'a> = (
            Vec<TrafficTarget>,
            Option<&'a str>,
            Result<Vec<ResolvedTarget>, &'a str>,
        );
        let table: Vec<Case<'_>> = vec![
            (
                vec![],
                Some("cart"),
                Ok(vec![resolved("cart-00002", 100, None, true)]),
            ),
            (
                vec![
                    target(Some("cart-00001"), false, 90, Some("stable")),
                    target(None, true, 10, None),
                ],
                Some("cart"),
                Ok(vec![
                    resolved("cart-00001", 90, Some("stable"), false),
                    resolved("cart-00002", 10, None, true),
                ]),
            ),
            (
                vec![target(Some("cart-00009"), false, 100, None)],
                Some("cart"),
                Err("RevisionMissing"),
            ),
            (vec![], Some("empty"), Err("RevisionMissing")),
            (vec![], None, Err("ConfigurationMissing")),
        ];
        for (targets, config, want) in table {
            let got = resolve_traffic(&targets, config, &latest, &exists).map_err(|e| e.reason);
            assert_eq!(got, want, "{targets:?} of {config:?}");
        }
    }
}
