//! CreateAcls, DescribeAcls and DeleteAcls (KIP-140) over the ACL store
//! ([`crate::security::acl`]). Without `--authorizer` each answers `SECURITY_DISABLED`, as a
//! Kafka broker without an authorizer does; with it, the caller needs `ALTER` on the cluster
//! to create or delete ACLs and `DESCRIBE` to list them (`CLUSTER_AUTHORIZATION_FAILED`).

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::broker::{Broker, Ctx};
use crate::security::acl::{AclBinding, AclFilter, CLUSTER_NAME, Refusal, op, resource};

const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
const SECURITY_DISABLED: i16 = 54;
const KAFKA_STORAGE_ERROR: i16 = 56;

fn text(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// Why every item of the request is refused before any is looked at, if it is.
fn refusal(broker: &Broker, ctx: &Ctx, operation: i8) -> Option<Refusal> {
    if !broker.acls.enabled() {
        return Some((
            SECURITY_DISABLED,
            "No authorizer is configured: start ferry-broker with --authorizer to use ACLs".into(),
        ));
    }
    (!ctx.may(broker, operation, resource::CLUSTER, CLUSTER_NAME)).then(|| {
        (
            CLUSTER_AUTHORIZATION_FAILED,
            format!(
                "{} may not {} the cluster's ACLs",
                ctx.principal,
                if operation == op::ALTER {
                    "change"
                } else {
                    "list"
                }
            ),
        )
    })
}

/// The [`AclFilter`] of a DescribeAcls request or a DeleteAcls filter (the same fields).
macro_rules! filter_of {
    ($f:expr) => {
        AclFilter {
            resource_type: $f.resource_type_filter,
            name: $f.resource_name_filter.as_ref().map(ToString::to_string),
            pattern_type: $f.pattern_type_filter,
            principal: $f.principal_filter.as_ref().map(ToString::to_string),
            host: $f.host_filter.as_ref().map(ToString::to_string),
            operation: $f.operation,
            permission: $f.permission_type,
        }
    };
}

impl Broker {
    pub(super) fn create_acls(&self, req: &CreateAclsRequest, ctx: &Ctx) -> CreateAclsResponse {
        let result = |outcome: Result<(), Refusal>| match outcome {
            Ok(()) => AclCreationResult::default(),
            Err((code, message)) => AclCreationResult::default()
                .with_error_code(code)
                .with_error_message(Some(text(message))),
        };
        let all = |refused: Refusal| {
            req.creations
                .iter()
                .map(|_| result(Err(refused.clone())))
                .collect()
        };
        let results = if let Some(refused) = refusal(self, ctx, op::ALTER) {
            all(refused)
        } else {
            let bindings = req
                .creations
                .iter()
                .map(|c| AclBinding {
                    resource_type: c.resource_type,
                    name: c.resource_name.to_string(),
                    pattern_type: c.resource_pattern_type,
                    principal: c.principal.to_string(),
                    host: c.host.to_string(),
                    operation: c.operation,
                    permission: c.permission_type,
                })
                .collect();
            match self.acls.create(bindings) {
                Ok(outcomes) => outcomes.into_iter().map(result).collect(),
                Err(e) => {
                    tracing::error!(error = %e, "storing ACLs failed");
                    all((KAFKA_STORAGE_ERROR, e.to_string()))
                }
            }
        };
        CreateAclsResponse::default().with_results(results)
    }

    pub(super) fn describe_acls(
        &self,
        req: &DescribeAclsRequest,
        ctx: &Ctx,
    ) -> DescribeAclsResponse {
        let f = filter_of!(req);
        let checked = refusal(self, ctx, op::DESCRIBE).map_or_else(|| f.validate(), Err);
        if let Err((code, message)) = checked {
            return DescribeAclsResponse::default()
                .with_error_code(code)
                .with_error_message(Some(text(message)));
        }
        // One entry per resource pattern, its ACLs under it (the store is sorted by pattern).
        let mut resources: Vec<DescribeAclsResource> = Vec::new();
        for b in self.acls.describe(&f) {
            let description = AclDescription::default()
                .with_principal(text(b.principal))
                .with_host(text(b.host))
                .with_operation(b.operation)
                .with_permission_type(b.permission);
            match resources.last_mut() {
                Some(r)
                    if r.resource_type == b.resource_type
                        && r.resource_name.as_str() == b.name
                        && r.pattern_type == b.pattern_type =>
                {
                    r.acls.push(description);
                }
                _ => resources.push(
                    DescribeAclsResource::default()
                        .with_resource_type(b.resource_type)
                        .with_resource_name(text(b.name))
                        .with_pattern_type(b.pattern_type)
                        .with_acls(vec![description]),
                ),
            }
        }
        DescribeAclsResponse::default().with_resources(resources)
    }

    pub(super) fn delete_acls(&self, req: &DeleteAclsRequest, ctx: &Ctx) -> DeleteAclsResponse {
        let failed = |(code, message): Refusal| {
            DeleteAclsFilterResult::default()
                .with_error_code(code)
                .with_error_message(Some(text(message)))
        };
        let filters: Vec<AclFilter> = req.filters.iter().map(|f| filter_of!(f)).collect();
        if let Some(refused) = refusal(self, ctx, op::ALTER) {
            let results = filters.iter().map(|_| failed(refused.clone())).collect();
            return DeleteAclsResponse::default().with_filter_results(results);
        }
        // Invalid filters are answered alone; the valid ones delete together.
        let checked: Vec<Result<(), Refusal>> = filters.iter().map(AclFilter::validate).collect();
        let valid: Vec<AclFilter> = filters
            .iter()
            .zip(&checked)
            .filter(|(_, c)| c.is_ok())
            .map(|(f, _)| f.clone())
            .collect();
        let mut deleted = match self.acls.delete(&valid) {
            Ok(deleted) => deleted.into_iter(),
            Err(e) => {
                tracing::error!(error = %e, "storing ACLs failed");
                let results = filters
                    .iter()
                    .map(|_| failed((KAFKA_STORAGE_ERROR, e.to_string())))
                    .collect();
                return DeleteAclsResponse::default().with_filter_results(results);
            }
        };
        let results = checked
            .into_iter()
            .map(|c| match c {
                Err(refused) => failed(refused),
                Ok(()) => DeleteAclsFilterResult::default().with_matching_acls(
                    deleted
                        .next()
                        .unwrap_or_default()
                        .into_iter()
                        .map(|b| {
                            DeleteAclsMatchingAcl::default()
                                .with_resource_type(b.resource_type)
                                .with_resource_name(text(b.name))
                                .with_pattern_type(b.pattern_type)
                                .with_principal(text(b.principal))
                                .with_host(text(b.host))
                                .with_operation(b.operation)
                                .with_permission_type(b.permission)
                        })
                        .collect(),
                ),
            })
            .collect();
        DeleteAclsResponse::default().with_filter_results(results)
    }
}
