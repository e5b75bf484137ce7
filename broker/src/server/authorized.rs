//! Authorized operations in Describe responses (KIP-430): Metadata, DescribeGroups and
//! DescribeCluster answer, when the client asks, the bit set of ACL operations the caller may
//! perform on each resource. The broker has no ACLs, so — as a Kafka broker without an
//! authorizer — every operation that applies to the resource type is allowed. Unasked, the
//! field holds Kafka's "not requested" sentinel.

/// The field's value when the client did not ask (Kafka's `Integer.MIN_VALUE`).
pub(super) const NOT_REQUESTED: i32 = i32::MIN;

/// Kafka's `AclOperation` codes.
mod op {
    pub const READ: u8 = 3;
    pub const WRITE: u8 = 4;
    pub const CREATE: u8 = 5;
    pub const DELETE: u8 = 6;
    pub const ALTER: u8 = 7;
    pub const DESCRIBE: u8 = 8;
    pub const CLUSTER_ACTION: u8 = 9;
    pub const DESCRIBE_CONFIGS: u8 = 10;
    pub const ALTER_CONFIGS: u8 = 11;
    pub const IDEMPOTENT_WRITE: u8 = 12;
}

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
    fn operations(self) -> &'static [u8] {
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
}

/// The field's value for `resource`: every applicable operation as a bit set (bit `n` for
/// operation code `n`) when `requested`, else [`NOT_REQUESTED`].
pub(super) fn authorized_operations(resource: Resource, requested: bool) -> i32 {
    if !requested {
        return NOT_REQUESTED;
    }
    resource
        .operations()
        .iter()
        .fold(0, |bits, code| bits | (1 << code))
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
            assert_eq!(authorized_operations(resource, true), bits, "{name}");
            assert_eq!(authorized_operations(resource, false), i32::MIN, "{name}");
        }
    }
}
