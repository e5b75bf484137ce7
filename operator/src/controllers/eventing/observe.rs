//! What an eventing reconcile observes besides its own object: the resolved addresses of its
//! destinations, and whether the publisher's view says to leave its status alone for now.

use ferry_api::contract::ObjectRef as ContractRef;
use ferry_api::duck::{Destination, KReference};
use ferry_api::resource::Resource as AnyResource;
use kube::runtime::controller::Action;

use crate::controllers::context::Context;
use crate::status::{self, DataPlane, spec_problem};

/// The resolved address of a destination, for status ([`status::destination_uri`]).
pub(super) fn destination_address(
    ctx: &Context,
    namespace: &str,
    dest: Option<&Destination>,
) -> Option<String> {
    let address = |r: &KReference| ctx.stores.address(r, &ctx.args.cluster_domain);
    status::destination_uri(namespace, dest, &address)
}

/// How long a compiled object waits for the dispatchers before its status says it waits.
const APPLY_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// Whether to leave the status alone for now, and when to look again. Pending objects are not
/// written: the publisher wakes them once it has compiled them. Objects the dispatchers have not
/// applied yet are not written during [`APPLY_GRACE`] either (the publisher wakes them when they
/// apply it, normally well within it). So a burst of new objects costs one status write each
/// instead of three; a data plane that does not apply the contract still shows up on every
/// object after the grace.
pub(super) fn wait_for_publisher(
    ctx: &Context,
    resource: AnyResource,
    dp: &DataPlane,
) -> Option<Action> {
    if spec_problem(&resource).is_some() {
        return None;
    }
    match dp {
        DataPlane::Pending => Some(Action::await_change()),
        DataPlane::Compiled { applied: false } => {
            let object = ContractRef::new(
                resource.kind(),
                resource.namespace().unwrap_or_default(),
                resource.name(),
            );
            let waited = ctx
                .publisher
                .unapplied_for(&object, resource_generation(&resource))?;
            (waited < APPLY_GRACE).then(|| Action::requeue(APPLY_GRACE - waited))
        }
        _ => None,
    }
}

fn resource_generation(resource: &AnyResource) -> Option<i64> {
    match resource {
        AnyResource::Trigger(t) => t.metadata.generation,
        AnyResource::Subscription(s) => s.metadata.generation,
        AnyResource::KafkaSource(s) => s.metadata.generation,
        _ => None,
    }
}
