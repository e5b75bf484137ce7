//! Authorized operations in Describe responses (KIP-430): Metadata, DescribeGroups and
//! DescribeCluster answer, when the client asks, the bit set of ACL operations the caller may
//! perform on each resource — every operation that applies to the resource type that the
//! authorizer allows (all of them without `--authorizer`, as a Kafka broker without an
//! authorizer answers). Unasked, the field holds Kafka's "not requested" sentinel.

use super::broker::{Broker, Ctx};
use crate::security::acl::{CLUSTER_NAME, op, resource};

/// The field's value when the client did not ask (Kafka's `Integer.MIN_VALUE`).
pub(super) const NOT_REQUESTED: i32 = i32::MIN;

/// The kinds of resource a Describe response reports operations on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Resource {
    /// A topic.
    Topic,
    /// A consumer group.
    Group,
    /// The cluster.
    Cluster,
}

impl Resource {
    /// The operations that apply to this resource type (Kafka's
    /// `AclEntry.supportedOperations`).
    fn operations(self) -> &'static [i8] {
        use op::*;
        match self {
            Resource::Topic => &[
                READ,
                WRITE,
                CREATE,
                DESCRIBE,
                DELETE,
                ALTER,
                DESCRIBE_CONFIGS,
                ALTER_CONFIGS,
            ],
            Resource::Group => &[READ, DESCRIBE, DELETE],
            Resource::Cluster => &[
                CREATE,
                CLUSTER_ACTION,
                DESCRIBE_CONFIGS,
                ALTER_CONFIGS,
                IDEMPOTENT_WRITE,
                ALTER,
                DESCRIBE,
            ],
        }
    }

    fn code(self) -> i8 {
        match self {
            Resource::Topic => resource::TOPIC,
            Resource::Group => resource::GROUP,
            Resource::Cluster => resource::CLUSTER,
        }
    }
}

/// The field's value for resource `name` of type `kind` (the cluster's name is ignored):
/// the operations `ctx`'s principal may perform as a bit set (bit `n` for operation code
/// `n`) when `requested`, else [`NOT_REQUESTED`].
pub(super) fn authorized_operations(
    broker: &Broker,
    ctx: &Ctx,
    kind: Resource,
    name: &str,
    requested: bool,
) -> i32 {
    if !requested {
        return NOT_REQUESTED;
    }
    let name = if kind == Resource::Cluster {
        CLUSTER_NAME
    } else {
        name
    };
    kind.operations()
        .iter()
        .filter(|&&code| ctx.may(broker, code, kind.code(), name))
        .fold(0, |bits, &code| bits | (1 << code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_sets_are_kafkas() {
        // The values a Kafka broker without an authorizer answers.
        let cases = [
            ("topic", Resource::Topic, 0b0000_1101_1111_1000),
            ("group", Resource::Group, 0b0000_0001_0100_1000),
            ("cluster", Resource::Cluster, 0b0001_1111_1010_0000),
        ];
        for (name, resource, bits) in cases {
            let all = resource
                .operations()
                .iter()
                .fold(0i32, |b, &code| b | (1 << code));
            assert_eq!(all, bits, "{name}");
        }
    }
}
