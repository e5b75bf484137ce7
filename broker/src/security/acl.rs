//! ACLs and the authorizer, with the semantics of Kafka's `StandardAuthorizer`: bindings of
//! a resource pattern (type, name, `LITERAL` or `PREFIXED`) to a principal, a host, an
//! operation and `ALLOW` or `DENY`, managed with CreateAcls, DescribeAcls and DeleteAcls
//! (KIP-140, what `kafka-acls.sh` and the admin clients use) and kept in
//! `<data-dir>/acls.json`.
//!
//! With `--authorizer` off (the default) nothing is checked and the ACL APIs answer
//! `SECURITY_DISABLED`, as a Kafka broker without `authorizer.class.name` does. With it on,
//! every request is checked: super users (`--super-users`) may do everything; otherwise a
//! matching `DENY` wins over a matching `ALLOW`; `ALLOW` of `READ`, `WRITE`, `DELETE` or
//! `ALTER` implies `DESCRIBE`, and `ALLOW` of `ALTER_CONFIGS` implies `DESCRIBE_CONFIGS`; a
//! resource no binding matches is denied unless `--allow-everyone-if-no-acl-found`.
//!
//! A principal is `User:<name>` for a client that authenticated with SASL, else
//! `User:ANONYMOUS`; a binding's principal may be `User:*`, its host `*` or a client's IP.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, io_at};
use crate::storage::{Disk, RealDisk};

/// Kafka's `ResourceType` codes.
pub mod resource {
    /// Filters only: any type.
    pub const ANY: i8 = 1;
    /// A topic.
    pub const TOPIC: i8 = 2;
    /// A consumer group.
    pub const GROUP: i8 = 3;
    /// The cluster (its name is always `kafka-cluster`).
    pub const CLUSTER: i8 = 4;
    /// A transactional id.
    pub const TRANSACTIONAL_ID: i8 = 5;
    /// A delegation token.
    pub const DELEGATION_TOKEN: i8 = 6;
    /// A user (for delegation tokens).
    pub const USER: i8 = 7;
}

/// Kafka's `PatternType` codes.
pub mod pattern {
    /// Filters only: any pattern type, the name matched exactly.
    pub const ANY: i8 = 1;
    /// Filters only: every binding that applies to the named resource.
    pub const MATCH: i8 = 2;
    /// The resource named (or every one, for the name `*`).
    pub const LITERAL: i8 = 3;
    /// Every resource whose name starts with the pattern's.
    pub const PREFIXED: i8 = 4;
}

/// Kafka's `AclOperation` codes.
pub mod op {
    /// Filters only: any operation.
    pub const ANY: i8 = 1;
    /// Every operation.
    pub const ALL: i8 = 2;
    #[allow(missing_docs)]
    pub const READ: i8 = 3;
    #[allow(missing_docs)]
    pub const WRITE: i8 = 4;
    #[allow(missing_docs)]
    pub const CREATE: i8 = 5;
    #[allow(missing_docs)]
    pub const DELETE: i8 = 6;
    #[allow(missing_docs)]
    pub const ALTER: i8 = 7;
    #[allow(missing_docs)]
    pub const DESCRIBE: i8 = 8;
    #[allow(missing_docs)]
    pub const CLUSTER_ACTION: i8 = 9;
    #[allow(missing_docs)]
    pub const DESCRIBE_CONFIGS: i8 = 10;
    #[allow(missing_docs)]
    pub const ALTER_CONFIGS: i8 = 11;
    #[allow(missing_docs)]
    pub const IDEMPOTENT_WRITE: i8 = 12;
    #[allow(missing_docs)]
    pub const CREATE_TOKENS: i8 = 13;
    #[allow(missing_docs)]
    pub const DESCRIBE_TOKENS: i8 = 14;
}

/// Kafka's `AclPermissionType` codes.
pub mod permission {
    /// Filters only: either.
    pub const ANY: i8 = 1;
    /// Refuses what it matches, whatever else allows it.
    pub const DENY: i8 = 2;
    /// Allows what it matches.
    pub const ALLOW: i8 = 3;
}

/// The cluster resource's only name.
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// The principal of a client that did not authenticate.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

const INVALID_REQUEST: i16 = 42;

/// A refusal of one binding or filter: `(error code, message)`.
pub type Refusal = (i16, String);

/// One ACL.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclBinding {
    /// [`resource`] code.
    pub resource_type: i8,
    /// The resource's name (or prefix, or `*`).
    pub name: String,
    /// [`pattern::LITERAL`] or [`pattern::PREFIXED`].
    pub pattern_type: i8,
    /// `User:<name>` or `User:*`.
    pub principal: String,
    /// A client IP, or `*`.
    pub host: String,
    /// [`op`] code.
    pub operation: i8,
    /// [`permission`] code.
    pub permission: i8,
}

/// What DescribeAcls and DeleteAcls select: each field `None` or `ANY` for any value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclFilter {
    /// [`resource`] code or [`resource::ANY`].
    pub resource_type: i8,
    /// The resource name, or any.
    pub name: Option<String>,
    /// [`pattern`] code: a binding's own, or `ANY` / `MATCH`.
    pub pattern_type: i8,
    /// The principal, or any.
    pub principal: Option<String>,
    /// The host, or any.
    pub host: Option<String>,
    /// [`op`] code or [`op::ANY`].
    pub operation: i8,
    /// [`permission`] code or [`permission::ANY`].
    pub permission: i8,
}

fn refuse(message: impl Into<String>) -> Refusal {
    (INVALID_REQUEST, message.into())
}

/// `Ok` when the code `value` of field `what` is in `valid`, else a refusal naming it and
/// what to use.
fn within(
    what: &str,
    value: i8,
    valid: std::ops::RangeInclusive<i8>,
    expected: &str,
) -> std::result::Result<(), Refusal> {
    if valid.contains(&value) {
        Ok(())
    } else {
        Err(refuse(format!(
            "{what} {value} is not valid here: use {expected}"
        )))
    }
}

/// Whether `principal` is `Type:name` with both parts present (Kafka's `KafkaPrincipal`).
fn valid_principal(principal: &str) -> bool {
    principal
        .split_once(':')
        .is_some_and(|(kind, name)| !kind.is_empty() && !name.is_empty())
}

impl AclBinding {
    /// Checks a binding to create as Kafka's controller does.
    ///
    /// # Errors
    /// `INVALID_REQUEST` naming what is wrong.
    pub fn validate(&self) -> std::result::Result<(), Refusal> {
        within(
            "resource type",
            self.resource_type,
            resource::TOPIC..=resource::USER,
            "topic 2, group 3, cluster 4, transactional id 5, delegation token 6 or user 7",
        )?;
        within(
            "pattern type",
            self.pattern_type,
            pattern::LITERAL..=pattern::PREFIXED,
            "LITERAL (3) or PREFIXED (4)",
        )?;
        if self.name.is_empty() {
            return Err(refuse("the resource name is empty"));
        }
        if self.resource_type == resource::CLUSTER
            && (self.name != CLUSTER_NAME || self.pattern_type != pattern::LITERAL)
        {
            return Err(refuse(format!(
                "the cluster resource is the LITERAL name `{CLUSTER_NAME}`, not `{}`",
                self.name
            )));
        }
        if !valid_principal(&self.principal) {
            return Err(refuse(format!(
                "principal `{}` is not TYPE:NAME (e.g. User:alice, or User:* for everyone)",
                self.principal
            )));
        }
        if self.host != "*" && self.host.parse::<IpAddr>().is_err() {
            return Err(refuse(format!(
                "host `{}` is neither `*` nor an IP address",
                self.host
            )));
        }
        within(
            "operation",
            self.operation,
            op::ALL..=op::DESCRIBE_TOKENS,
            "ALL (2) to DESCRIBE_TOKENS (14)",
        )?;
        within(
            "permission type",
            self.permission,
            permission::DENY..=permission::ALLOW,
            "DENY (2) or ALLOW (3)",
        )?;
        Ok(())
    }

    /// Whether this binding's pattern covers resource `name` of `resource_type`.
    fn covers(&self, resource_type: i8, name: &str) -> bool {
        self.resource_type == resource_type
            && match self.pattern_type {
                pattern::LITERAL => self.name == name || self.name == "*",
                pattern::PREFIXED => name.starts_with(&self.name),
                _ => false,
            }
    }

    /// Whether this binding applies to `principal` connecting from `host`.
    fn applies_to(&self, principal: &str, host: Option<IpAddr>) -> bool {
        (self.principal == principal || self.principal == "User:*")
            && (self.host == "*" || host.is_some_and(|h| self.host.parse() == Ok(h)))
    }
}

impl AclFilter {
    /// Checks a filter as Kafka does (DescribeAcls, DeleteAcls).
    ///
    /// # Errors
    /// `INVALID_REQUEST` naming what is wrong.
    pub fn validate(&self) -> std::result::Result<(), Refusal> {
        within(
            "resource type",
            self.resource_type,
            resource::ANY..=resource::USER,
            "ANY (1) or a type from topic (2) to user (7)",
        )?;
        within(
            "pattern type",
            self.pattern_type,
            pattern::ANY..=pattern::PREFIXED,
            "ANY (1), MATCH (2), LITERAL (3) or PREFIXED (4)",
        )?;
        within(
            "operation",
            self.operation,
            op::ANY..=op::DESCRIBE_TOKENS,
            "ANY (1) or an operation from ALL (2) to DESCRIBE_TOKENS (14)",
        )?;
        within(
            "permission type",
            self.permission,
            permission::ANY..=permission::ALLOW,
            "ANY (1), DENY (2) or ALLOW (3)",
        )?;
        Ok(())
    }

    /// Whether `b` is selected (Kafka's `AclBindingFilter.matches`).
    pub fn matches(&self, b: &AclBinding) -> bool {
        let resource = self.resource_type == resource::ANY || self.resource_type == b.resource_type;
        let name = match (self.pattern_type, &self.name) {
            (_, None) => true,
            (pattern::MATCH, Some(n)) => match b.pattern_type {
                pattern::LITERAL => b.name == *n || b.name == "*",
                pattern::PREFIXED => n.starts_with(&b.name),
                _ => false,
            },
            (_, Some(n)) => b.name == *n,
        };
        let pattern_type = matches!(self.pattern_type, pattern::ANY | pattern::MATCH)
            || self.pattern_type == b.pattern_type;
        resource
            && name
            && pattern_type
            && self.principal.as_ref().is_none_or(|p| *p == b.principal)
            && self.host.as_ref().is_none_or(|h| *h == b.host)
            && (self.operation == op::ANY || self.operation == b.operation)
            && (self.permission == permission::ANY || self.permission == b.permission)
    }
}

/// Whether an `ALLOW` of `granted` allows `wanted` (Kafka's implied operations).
fn allows(granted: i8, wanted: i8) -> bool {
    granted == wanted
        || granted == op::ALL
        || (wanted == op::DESCRIBE
            && matches!(granted, op::READ | op::WRITE | op::DELETE | op::ALTER))
        || (wanted == op::DESCRIBE_CONFIGS && granted == op::ALTER_CONFIGS)
}

/// How the authorizer decides.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthorizerConfig {
    /// `--authorizer`: check every request (otherwise nothing is checked).
    pub enabled: bool,
    /// `--super-users`: principals that may do everything.
    pub super_users: Vec<String>,
    /// `--allow-everyone-if-no-acl-found`.
    pub allow_if_no_acl: bool,
}

#[derive(Default, Serialize, Deserialize)]
struct StoredFile {
    acls: BTreeSet<AclBinding>,
}

/// The ACLs and the authorizer.
#[derive(Debug)]
pub struct Acls {
    config: AuthorizerConfig,
    path: PathBuf,
    acls: RwLock<BTreeSet<AclBinding>>,
}

impl Acls {
    /// Loads `<data_dir>/acls.json` (none yet: no ACLs).
    ///
    /// # Errors
    /// I/O errors; [`Error::Damaged`] for a file that does not parse.
    pub fn open(data_dir: &Path, config: AuthorizerConfig) -> Result<Self> {
        let path = data_dir.join("acls.json");
        let acls = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice::<StoredFile>(&bytes)
                    .map_err(|e| Error::Damaged {
                        path: path.clone(),
                        problem: e.to_string(),
                    })?
                    .acls
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeSet::new(),
            Err(e) => return Err(io_at(&path)(e)),
        };
        Ok(Acls {
            config,
            path,
            acls: RwLock::new(acls),
        })
    }

    /// Whether requests are checked.
    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeSet<AclBinding>> {
        self.acls
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeSet<AclBinding>> {
        self.acls
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stores `acls` durably (a fsynced temporary file renamed over the old one).
    fn save(&self, acls: &BTreeSet<AclBinding>) -> Result<()> {
        let file = StoredFile { acls: acls.clone() };
        let bytes = serde_json::to_vec_pretty(&file).unwrap_or_default();
        RealDisk
            .replace(&self.path, &bytes)
            .map_err(io_at(&self.path))
    }

    /// CreateAcls: each binding validated and added (an existing one is not an error); the
    /// valid ones are stored durably before the answer.
    ///
    /// # Errors
    /// I/O errors storing them (nothing is added then).
    pub fn create(
        &self,
        bindings: Vec<AclBinding>,
    ) -> Result<Vec<std::result::Result<(), Refusal>>> {
        let mut acls = self.write();
        let mut next = acls.clone();
        let results: Vec<_> = bindings
            .into_iter()
            .map(|b| {
                b.validate()?;
                next.insert(b);
                Ok(())
            })
            .collect();
        if next != *acls {
            self.save(&next)?;
            *acls = next;
        }
        Ok(results)
    }

    /// DescribeAcls: the bindings `filter` selects, in a stable order.
    pub fn describe(&self, filter: &AclFilter) -> Vec<AclBinding> {
        self.read()
            .iter()
            .filter(|b| filter.matches(b))
            .cloned()
            .collect()
    }

    /// DeleteAcls: for each filter, the bindings it selected, removed (stored durably before
    /// the answer).
    ///
    /// # Errors
    /// I/O errors storing the result (nothing is removed then).
    pub fn delete(&self, filters: &[AclFilter]) -> Result<Vec<Vec<AclBinding>>> {
        let mut acls = self.write();
        let mut next = acls.clone();
        let removed: Vec<Vec<AclBinding>> = filters
            .iter()
            .map(|f| {
                let hit: Vec<AclBinding> = acls.iter().filter(|b| f.matches(b)).cloned().collect();
                for b in &hit {
                    next.remove(b);
                }
                hit
            })
            .collect();
        if next != *acls {
            self.save(&next)?;
            *acls = next;
        }
        Ok(removed)
    }

    /// Whether `principal` from `host` may perform `operation` on resource `name` of
    /// `resource_type` (always, with the authorizer off).
    pub fn authorize(
        &self,
        principal: &str,
        host: Option<IpAddr>,
        operation: i8,
        resource_type: i8,
        name: &str,
    ) -> bool {
        if !self.config.enabled || self.config.super_users.iter().any(|s| s == principal) {
            return true;
        }
        let acls = self.read();
        let mut any = false;
        let mut allowed = false;
        for b in acls.iter().filter(|b| b.covers(resource_type, name)) {
            any = true;
            if !b.applies_to(principal, host) {
                continue;
            }
            match b.permission {
                permission::DENY if b.operation == operation || b.operation == op::ALL => {
                    return false;
                }
                permission::ALLOW if allows(b.operation, operation) => allowed = true,
                _ => {}
            }
        }
        allowed || (!any && self.config.allow_if_no_acl)
    }

    /// Whether `principal` may perform `operation` on at least one resource of
    /// `resource_type` (Kafka's `authorizeByResourceType`, as InitProducerId asks for
    /// `WRITE` on any topic): some `ALLOW` binding of that type applies and no `DENY` of
    /// everything (`*` or the empty prefix) does.
    pub fn authorize_any(
        &self,
        principal: &str,
        host: Option<IpAddr>,
        operation: i8,
        resource_type: i8,
    ) -> bool {
        if !self.config.enabled || self.config.super_users.iter().any(|s| s == principal) {
            return true;
        }
        let acls = self.read();
        let of_type: Vec<&AclBinding> = acls
            .iter()
            .filter(|b| b.resource_type == resource_type && b.applies_to(principal, host))
            .collect();
        let denied_all = of_type.iter().any(|b| {
            b.permission == permission::DENY
                && (b.operation == operation || b.operation == op::ALL)
                && ((b.pattern_type == pattern::LITERAL && b.name == "*")
                    || (b.pattern_type == pattern::PREFIXED && b.name.is_empty()))
        });
        if denied_all {
            return false;
        }
        let allowed = of_type
            .iter()
            .any(|b| b.permission == permission::ALLOW && allows(b.operation, operation));
        let none_of_type = !acls.iter().any(|b| b.resource_type == resource_type);
        allowed || (none_of_type && self.config.allow_if_no_acl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(
        name: &str,
        pattern_type: i8,
        principal: &str,
        operation: i8,
        permission: i8,
    ) -> AclBinding {
        AclBinding {
            resource_type: resource::TOPIC,
            name: name.into(),
            pattern_type,
            principal: principal.into(),
            host: "*".into(),
            operation,
            permission,
        }
    }

    fn acls(config: AuthorizerConfig, bindings: Vec<AclBinding>) -> (tempfile::TempDir, Acls) {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = Acls::open(dir.path(), config).expect("open");
        for r in a.create(bindings).expect("stored") {
            r.expect("valid");
        }
        (dir, a)
    }

    fn alice_reads_orders() -> AclBinding {
        binding(
            "orders",
            pattern::LITERAL,
            "User:alice",
            op::READ,
            permission::ALLOW,
        )
    }

    fn on() -> AuthorizerConfig {
        AuthorizerConfig {
            enabled: true,
            super_users: vec!["User:admin".into()],
            allow_if_no_acl: false,
        }
    }

    #[test]
    fn deny_wins_implied_operations_and_patterns_apply_as_in_kafka() {
        let (_dir, a) = acls(
            on(),
            vec![
                alice_reads_orders(),
                binding(
                    "pay",
                    pattern::PREFIXED,
                    "User:bob",
                    op::WRITE,
                    permission::ALLOW,
                ),
                binding(
                    "payroll",
                    pattern::LITERAL,
                    "User:bob",
                    op::ALL,
                    permission::DENY,
                ),
                binding(
                    "*",
                    pattern::LITERAL,
                    "User:*",
                    op::ALTER_CONFIGS,
                    permission::ALLOW,
                ),
            ],
        );
        let can = |p: &str, o: i8, n: &str| a.authorize(p, None, o, resource::TOPIC, n);
        assert!(can("User:alice", op::READ, "orders"));
        assert!(
            can("User:alice", op::DESCRIBE, "orders"),
            "READ implies DESCRIBE"
        );
        assert!(!can("User:alice", op::WRITE, "orders"));
        assert!(can("User:bob", op::WRITE, "payments"), "prefixed");
        assert!(!can("User:bob", op::WRITE, "payroll"), "DENY wins");
        assert!(!can("User:bob", op::WRITE, "orders"));
        assert!(
            can("User:carol", op::DESCRIBE_CONFIGS, "anything"),
            "wildcard, implied"
        );
        assert!(can("User:admin", op::DELETE, "orders"), "super user");
        assert!(
            !can("User:carol", op::READ, "unbound"),
            "no ACL: denied by default"
        );
        assert!(!a.authorize("User:alice", None, op::READ, resource::GROUP, "orders"));
    }

    #[test]
    fn no_acl_found_allows_everyone_only_when_configured() {
        let config = AuthorizerConfig {
            allow_if_no_acl: true,
            ..on()
        };
        let (_dir, a) = acls(
            config,
            vec![binding(
                "orders",
                pattern::LITERAL,
                "User:alice",
                op::READ,
                permission::ALLOW,
            )],
        );
        assert!(a.authorize(ANONYMOUS, None, op::WRITE, resource::TOPIC, "other"));
        assert!(!a.authorize(ANONYMOUS, None, op::READ, resource::TOPIC, "orders"));
        let (_dir, off) = acls(AuthorizerConfig::default(), vec![]);
        assert!(off.authorize(ANONYMOUS, None, op::ALL, resource::CLUSTER, CLUSTER_NAME));
    }

    #[test]
    fn hosts_are_matched_by_address() {
        let mut b = binding("t", pattern::LITERAL, "User:*", op::READ, permission::ALLOW);
        b.host = "10.0.0.7".into();
        let (_dir, a) = acls(on(), vec![b]);
        let from = |ip: &str| Some(ip.parse::<IpAddr>().expect("ip"));
        assert!(a.authorize("User:x", from("10.0.0.7"), op::READ, resource::TOPIC, "t"));
        assert!(!a.authorize("User:x", from("10.0.0.8"), op::READ, resource::TOPIC, "t"));
    }

    #[test]
    fn filters_select_as_kafka_does_and_deletions_persist() {
        let (dir, a) = acls(
            on(),
            vec![
                alice_reads_orders(),
                binding(
                    "ord",
                    pattern::PREFIXED,
                    "User:bob",
                    op::WRITE,
                    permission::ALLOW,
                ),
                binding(
                    "*",
                    pattern::LITERAL,
                    "User:carol",
                    op::READ,
                    permission::DENY,
                ),
            ],
        );
        let filter = |name: Option<&str>, pattern_type| AclFilter {
            resource_type: resource::ANY,
            name: name.map(Into::into),
            pattern_type,
            principal: None,
            host: None,
            operation: op::ANY,
            permission: permission::ANY,
        };
        assert_eq!(a.describe(&filter(None, pattern::ANY)).len(), 3);
        assert_eq!(a.describe(&filter(Some("orders"), pattern::MATCH)).len(), 3);
        assert_eq!(a.describe(&filter(Some("orders"), pattern::ANY)).len(), 1);
        assert_eq!(a.describe(&filter(Some("ord"), pattern::PREFIXED)).len(), 1);
        assert_eq!(a.describe(&filter(Some("ord"), pattern::LITERAL)).len(), 0);
        let removed = a
            .delete(&[filter(Some("orders"), pattern::MATCH)])
            .expect("deleted");
        assert_eq!(removed[0].len(), 3);
        drop(a);
        let again = Acls::open(dir.path(), on()).expect("reopen");
        assert!(
            again.describe(&filter(None, pattern::ANY)).is_empty(),
            "kept deleted"
        );
    }

    #[test]
    fn bad_bindings_are_refused_naming_the_field() {
        let (_dir, a) = acls(on(), vec![]);
        let good = binding("t", pattern::LITERAL, "User:a", op::READ, permission::ALLOW);
        for (bad, want) in [
            (
                AclBinding {
                    pattern_type: pattern::MATCH,
                    ..good.clone()
                },
                "pattern type 2",
            ),
            (
                AclBinding {
                    principal: "alice".into(),
                    ..good.clone()
                },
                "not TYPE:NAME",
            ),
            (
                AclBinding {
                    host: "example.com".into(),
                    ..good.clone()
                },
                "nor an IP",
            ),
            (
                AclBinding {
                    operation: op::ANY,
                    ..good.clone()
                },
                "operation 1",
            ),
            (
                AclBinding {
                    permission: permission::ANY,
                    ..good.clone()
                },
                "permission type 1",
            ),
            (
                AclBinding {
                    resource_type: resource::CLUSTER,
                    ..good.clone()
                },
                "kafka-cluster",
            ),
            (
                AclBinding {
                    name: String::new(),
                    ..good.clone()
                },
                "name is empty",
            ),
        ] {
            let results = a.create(vec![bad]).expect("stored");
            let (code, message) = results[0].clone().expect_err("refused");
            assert_eq!(code, INVALID_REQUEST);
            assert!(message.contains(want), "{message}");
        }
        assert!(
            a.describe(&AclFilter {
                resource_type: resource::ANY,
                name: None,
                pattern_type: pattern::ANY,
                principal: None,
                host: None,
                operation: op::ANY,
                permission: permission::ANY,
            })
            .is_empty()
        );
    }

    #[test]
    fn any_topic_write_counts_for_idempotent_producers() {
        let (_dir, a) = acls(
            on(),
            vec![binding(
                "t",
                pattern::LITERAL,
                "User:alice",
                op::WRITE,
                permission::ALLOW,
            )],
        );
        assert!(a.authorize_any("User:alice", None, op::WRITE, resource::TOPIC));
        assert!(!a.authorize_any("User:bob", None, op::WRITE, resource::TOPIC));
    }
}
