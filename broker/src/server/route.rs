//! Which handler answers which Kafka API.

use std::sync::Arc;

use kafka_protocol::messages::{RequestKind, ResponseKind};

use super::broker::{Broker, Ctx, Respond};
use super::{metadata, transactions};

/// Runs one request: the synchronous part now (appends happen in request order), the rest in
/// the returned future.
pub(super) fn route(broker: &Arc<Broker>, req: RequestKind, ctx: Ctx) -> Respond {
    let b = broker.clone();
    macro_rules! later {
        ($f:expr) => {
            Box::pin(async move { Some(ResponseKind::from($f)) })
        };
    }
    match req {
        RequestKind::Produce(r) => broker.produce(r, &ctx),
        RequestKind::Fetch(r) => later!(b.fetch(r, ctx).await),
        RequestKind::ListOffsets(r) => later!(b.list_offsets(r, &ctx)),
        RequestKind::Metadata(r) => later!(b.metadata(r, &ctx)),
        RequestKind::ApiVersions(_) => later!(metadata::api_versions(0)),
        RequestKind::FindCoordinator(r) => later!(b.find_coordinator(r, &ctx)),
        RequestKind::DescribeConfigs(r) => later!(b.describe_configs(r, &ctx)),
        RequestKind::InitProducerId(r) => later!(b.init_producer_id(r, &ctx)),
        RequestKind::CreateTopics(r) => later!(b.create_topics(r, &ctx)),
        RequestKind::DeleteTopics(r) => later!(b.delete_topics(r, &ctx)),
        RequestKind::CreatePartitions(r) => later!(b.create_partitions(r, &ctx)),
        RequestKind::JoinGroup(r) => later!(b.join_group(r, &ctx).await),
        RequestKind::SyncGroup(r) => later!(b.sync_group(r, &ctx).await),
        RequestKind::Heartbeat(r) => later!(b.heartbeat(r, &ctx)),
        RequestKind::LeaveGroup(r) => later!(b.leave_group(r, &ctx)),
        RequestKind::OffsetCommit(r) => later!(b.offset_commit(r, &ctx).await),
        RequestKind::OffsetFetch(r) => later!(b.offset_fetch(r, &ctx)),
        RequestKind::DescribeGroups(r) => later!(b.describe_groups(r, &ctx)),
        RequestKind::DescribeCluster(r) => later!(b.describe_cluster(&r, &ctx)),
        RequestKind::ListGroups(r) => later!(b.list_groups(r, &ctx)),
        RequestKind::DeleteGroups(r) => later!(b.delete_groups(r, &ctx)),
        RequestKind::AlterConfigs(r) => later!(b.alter_configs(&r, &ctx)),
        RequestKind::IncrementalAlterConfigs(r) => later!(b.incremental_alter_configs(&r, &ctx)),
        RequestKind::OffsetDelete(r) => later!(b.offset_delete(&r, &ctx)),
        RequestKind::DeleteRecords(r) => later!(b.delete_records(&r, &ctx)),
        RequestKind::DescribeUserScramCredentials(r) => {
            later!(b.describe_user_scram_credentials(&r, &ctx))
        }
        RequestKind::AlterUserScramCredentials(r) => {
            later!(b.alter_user_scram_credentials(&r, &ctx))
        }
        RequestKind::CreateAcls(r) => later!(b.create_acls(&r, &ctx)),
        RequestKind::DescribeAcls(r) => later!(b.describe_acls(&r, &ctx)),
        RequestKind::DeleteAcls(r) => later!(b.delete_acls(&r, &ctx)),
        RequestKind::AddPartitionsToTxn(r) => later!(transactions::add_partitions_to_txn(&r)),
        RequestKind::AddOffsetsToTxn(r) => later!(transactions::add_offsets_to_txn(&r)),
        RequestKind::EndTxn(r) => later!(transactions::end_txn(&r)),
        RequestKind::TxnOffsetCommit(r) => later!(transactions::txn_offset_commit(&r)),
        // `connection` only decodes the APIs in `versions::SUPPORTED`.
        _ => Box::pin(async { None }),
    }
}
