//! The ledger of contract generations: the contract last written, which generation carries each
//! object in its current form, which generation every dispatcher applied, and what each object's
//! controller was last told — so that an object reads `Compiled { applied: true }` exactly once
//! the dispatchers run the generation that carries its current entry, and only the controllers
//! whose objects changed are woken.
//!
//! A publication goes: compile ([`crate::contract_inputs::compile`]) → [`Ledger::stamp`] (a new
//! generation only when the content changed) → the runner writes it → [`Ledger::record`] →
//! [`Ledger::tell`] (whom to wake). Time is passed in.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use ferry_api::contract::{CompileError, Contract, ContractResource, Egress, ObjectRef};

use crate::status::DataPlane;

/// Where an object was last seen by the compiler.
#[derive(Clone, Debug)]
enum Seen {
    /// In the contract since contract generation `since` (its current form).
    Carried { since: u64 },
    /// Left out.
    Failed(CompileError),
}

/// What the control plane knows about the contract it publishes.
#[derive(Debug, Default)]
pub struct Ledger {
    /// The contract last written (generation 0 before the first write).
    contract: Contract,
    /// `true` once a contract was written or read back, so generations continue.
    resumed: bool,
    /// Per object: the `metadata.generation` compiled and where it went.
    seen: HashMap<ObjectRef, (Option<i64>, Seen)>,
    /// Where each egress sits in `contract` (resource index, egress index).
    egresses: HashMap<ObjectRef, (usize, usize)>,
    /// The generation every dispatcher reports.
    applied: Option<u64>,
    /// When each generation not yet applied everywhere was recorded.
    written_at: BTreeMap<u64, Instant>,
    /// What each object's controller was last told (for which `metadata.generation`), to wake
    /// only those whose state changed — including a spec change that compiles to the same
    /// contract entry.
    told: HashMap<ObjectRef, (Option<i64>, DataPlane)>,
}

/// The contract without its generation, for "did anything change".
pub fn same_content(a: &Contract, b: &Contract) -> bool {
    a.resources == b.resources && a.activation == b.activation
}

/// A resource without its egresses: what decides whether the resource itself changed.
fn resource_shell(r: &ContractResource) -> ContractResource {
    ContractResource {
        egresses: Vec::new(),
        ..r.clone()
    }
}

impl Ledger {
    /// Continues from `existing` (the contract already published), so generations keep growing
    /// across restarts and leader changes.
    pub fn resume(&mut self, existing: Option<Contract>) {
        if let Some(contract) = existing {
            self.contract = contract;
        }
        self.resumed = true;
    }

    /// Whether [`Ledger::resume`] ran.
    pub fn resumed(&self) -> bool {
        self.resumed
    }

    /// The generation of the contract last written.
    pub fn generation(&self) -> u64 {
        self.contract.generation
    }

    /// Numbers a freshly compiled `contract`: the next generation when its content differs from
    /// the last written, else the last written one. Returns whether it changed.
    pub fn stamp(&self, contract: &mut Contract) -> bool {
        let changed = !same_content(&self.contract, contract);
        contract.generation = self.contract.generation + u64::from(changed);
        changed
    }

    /// Records the generation every dispatcher applied; `true` when that changed.
    pub fn set_applied(&mut self, generation: Option<u64>) -> bool {
        let changed = self.applied != generation;
        self.applied = generation;
        changed
    }

    /// `true` once every dispatcher runs the contract last written (or none reports: nobody
    /// consumes, nothing to wait for).
    pub fn settled(&self) -> bool {
        self.applied.is_none_or(|a| a >= self.contract.generation)
    }

    /// Records `new` (stamped) as written at `now`, with the objects it left out and every
    /// object compiled: entries unchanged since the previous contract keep the generation they
    /// first appeared in.
    pub fn record(
        &mut self,
        new: Contract,
        errors: Vec<CompileError>,
        objects: &[(ObjectRef, Option<i64>)],
        now: Instant,
    ) {
        let generation = new.generation;
        let old_resources: HashMap<&ObjectRef, &ContractResource> = self
            .contract
            .resources
            .iter()
            .map(|r| (&r.reference, r))
            .collect();
        let old_egresses: HashMap<&ObjectRef, &Egress> = self
            .contract
            .resources
            .iter()
            .flat_map(|r| &r.egresses)
            .map(|e| (&e.reference, e))
            .collect();
        let generations: HashMap<&ObjectRef, Option<i64>> =
            objects.iter().map(|(o, g)| (o, *g)).collect();
        let compiled = |object: &ObjectRef| generations.get(object).copied().flatten();
        let carried = |object: &ObjectRef, unchanged: bool| {
            let since = match self.seen.get(object) {
                Some((_, Seen::Carried { since })) if unchanged => *since,
                _ => generation,
            };
            (compiled(object), Seen::Carried { since })
        };
        let mut seen = HashMap::with_capacity(objects.len());
        let mut egresses = HashMap::new();
        for (ri, resource) in new.resources.iter().enumerate() {
            let unchanged = old_resources
                .get(&resource.reference)
                .is_some_and(|old| resource_shell(old) == resource_shell(resource));
            seen.insert(
                resource.reference.clone(),
                carried(&resource.reference, unchanged),
            );
            for (ei, egress) in resource.egresses.iter().enumerate() {
                let unchanged = old_egresses
                    .get(&egress.reference)
                    .is_some_and(|old| *old == egress);
                seen.insert(
                    egress.reference.clone(),
                    carried(&egress.reference, unchanged),
                );
                egresses.insert(egress.reference.clone(), (ri, ei));
            }
        }
        for e in errors {
            seen.insert(e.object.clone(), (compiled(&e.object), Seen::Failed(e)));
        }
        self.seen = seen;
        self.egresses = egresses;
        self.written_at.entry(generation).or_insert(now);
        if let Some(applied) = self.applied {
            self.written_at.retain(|g, _| *g > applied);
        }
        self.contract = new;
    }

    /// Where `object`, at `metadata.generation` `generation`, stands in the data plane.
    pub fn data_plane(&self, object: &ObjectRef, generation: Option<i64>) -> DataPlane {
        match self.seen.get(object) {
            Some((seen_gen, _)) if *seen_gen != generation => DataPlane::Pending,
            Some((_, Seen::Failed(e))) => DataPlane::Failed(e.clone()),
            Some((_, Seen::Carried { since })) => DataPlane::Compiled {
                applied: self.applied.is_some_and(|a| a >= *since),
            },
            None => DataPlane::Pending,
        }
    }

    /// [`Ledger::data_plane`], and `object`'s compiled egress.
    pub fn observe(
        &self,
        object: &ObjectRef,
        generation: Option<i64>,
    ) -> (DataPlane, Option<Egress>) {
        let egress = self
            .egresses
            .get(object)
            .and_then(|(r, e)| self.contract.resources.get(*r)?.egresses.get(*e).cloned());
        (self.data_plane(object, generation), egress)
    }

    /// How long, at `now`, `object` (at `metadata.generation` `generation`) has been in a
    /// written contract that the dispatchers have not all applied yet; `None` when it is not
    /// waiting for the dispatchers.
    pub fn unapplied_for(
        &self,
        object: &ObjectRef,
        generation: Option<i64>,
        now: Instant,
    ) -> Option<Duration> {
        match self.seen.get(object) {
            Some((g, Seen::Carried { since }))
                if *g == generation && self.applied.is_none_or(|a| a < *since) =>
            {
                self.written_at
                    .get(since)
                    .map(|t| now.saturating_duration_since(*t))
            }
            _ => None,
        }
    }

    /// The objects (of `objects`, every object compiled) whose data-plane state differs from
    /// what their controller was last told; from now on they count as told.
    pub fn tell(&mut self, objects: &[(ObjectRef, Option<i64>)]) -> Vec<ObjectRef> {
        let mut changed = Vec::new();
        let mut told = HashMap::with_capacity(objects.len());
        for (o, g) in objects {
            let now = (*g, self.data_plane(o, *g));
            if self.told.get(o) != Some(&now) {
                changed.push(o.clone());
            }
            told.insert(o.clone(), now);
        }
        self.told = told;
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn egress(name: &str, url: &str) -> Egress {
        serde_json::from_value(serde_json::json!({
            "uid": name, "ref": {"kind": "Trigger", "namespace": "ns", "name": name},
            "consumerGroup": format!("g-{name}"), "destination": {"url": url},
        }))
        .expect("egress")
    }

    fn contract(generation: u64, egresses: Vec<Egress>) -> Contract {
        Contract {
            generation,
            resources: vec![ContractResource {
                uid: "b".into(),
                reference: ObjectRef::new("Broker", "ns", "b"),
                topics: vec!["t".into()],
                bootstrap_servers: "k:9092".into(),
                auth: None,
                ingress: None,
                egresses,
            }],
            activation: vec![],
            routes: vec![],
            tag_header_routing: false,
            tracing: None,
            activators: Vec::new(),
        }
    }

    fn objects() -> Vec<(ObjectRef, Option<i64>)> {
        vec![
            (ObjectRef::new("Broker", "ns", "b"), Some(1)),
            (ObjectRef::new("Trigger", "ns", "a"), Some(1)),
            (ObjectRef::new("Trigger", "ns", "c"), Some(2)),
            (ObjectRef::new("Trigger", "ns", "x"), Some(1)),
        ]
    }

    fn dp(ledger: &Ledger, kind: &str, name: &str, g: i64) -> DataPlane {
        ledger.data_plane(&ObjectRef::new(kind, "ns", name), Some(g))
    }

    #[test]
    fn objects_are_applied_once_the_dispatchers_reach_the_generation_that_changed_them() {
        let mut ledger = Ledger::default();
        let now = Instant::now();
        let objs = objects();
        let err = CompileError {
            object: ObjectRef::new("Trigger", "ns", "x"),
            reason: "SubscriberNotResolved",
            message: "spec.subscriber: nope".into(),
        };
        ledger.record(
            contract(1, vec![egress("a", "http://a")]),
            vec![err.clone()],
            &objs,
            now,
        );
        ledger.record(
            contract(2, vec![egress("a", "http://a"), egress("c", "http://c")]),
            vec![err.clone()],
            &objs,
            now,
        );
        ledger.set_applied(Some(1));
        let compiled = |applied| DataPlane::Compiled { applied };
        assert_eq!(dp(&ledger, "Broker", "b", 1), compiled(true));
        assert_eq!(dp(&ledger, "Trigger", "a", 1), compiled(true));
        assert_eq!(dp(&ledger, "Trigger", "c", 2), compiled(false));
        assert_eq!(dp(&ledger, "Trigger", "x", 1), DataPlane::Failed(err));
        // A newer spec than the one compiled is pending until the next compile.
        assert_eq!(dp(&ledger, "Trigger", "a", 2), DataPlane::Pending);
        assert_eq!(dp(&ledger, "Trigger", "nobody", 1), DataPlane::Pending);
        ledger.set_applied(Some(2));
        assert_eq!(dp(&ledger, "Trigger", "c", 2), compiled(true));
        // Changing an egress makes it wait for the generation that carries the change.
        ledger.record(
            contract(3, vec![egress("a", "http://a2"), egress("c", "http://c")]),
            vec![],
            &objs,
            now,
        );
        assert_eq!(dp(&ledger, "Trigger", "a", 1), compiled(false));
        assert_eq!(dp(&ledger, "Trigger", "c", 2), compiled(true));
        assert_eq!(dp(&ledger, "Broker", "b", 1), compiled(true));
        assert_eq!(dp(&ledger, "Trigger", "x", 1), DataPlane::Pending);
        let (_, a) = ledger.observe(&ObjectRef::new("Trigger", "ns", "a"), Some(1));
        assert_eq!(a, Some(egress("a", "http://a2")));
    }

    #[test]
    fn a_new_generation_only_when_the_content_changes_and_only_after_resuming_from_it() {
        let mut ledger = Ledger::default();
        assert!(!ledger.resumed());
        ledger.resume(Some(contract(41, vec![egress("a", "http://a")])));
        assert!(ledger.resumed());
        let mut same = contract(0, vec![egress("a", "http://a")]);
        assert!(!ledger.stamp(&mut same));
        assert_eq!(same.generation, 41);
        let mut other = contract(0, vec![egress("a", "http://b")]);
        assert!(ledger.stamp(&mut other));
        assert_eq!(other.generation, 42);
        assert!(same_content(
            &same,
            &contract(7, vec![egress("a", "http://a")])
        ));
        let mut fresh = Ledger::default();
        fresh.resume(None);
        assert_eq!(fresh.generation(), 0);
    }

    #[test]
    fn waiting_for_the_dispatchers_is_timed_from_the_write_and_ends_once_applied() {
        let mut ledger = Ledger::default();
        let written = Instant::now();
        let later = written + Duration::from_secs(2);
        let trigger = ObjectRef::new("Trigger", "ns", "a");
        ledger.record(
            contract(1, vec![egress("a", "http://a")]),
            vec![],
            &objects(),
            written,
        );
        assert_eq!(
            ledger.unapplied_for(&trigger, Some(1), later),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            ledger.unapplied_for(&trigger, Some(2), later),
            None,
            "newer spec"
        );
        assert!(!ledger.set_applied(None), "unchanged");
        assert!(
            ledger.settled(),
            "no dispatcher reports: nothing to wait for"
        );
        assert!(ledger.set_applied(Some(0)));
        assert!(!ledger.settled());
        ledger.set_applied(Some(1));
        assert!(ledger.settled());
        assert_eq!(ledger.unapplied_for(&trigger, Some(1), later), None);
    }

    #[test]
    fn controllers_are_told_only_what_changed_for_their_objects() {
        let mut ledger = Ledger::default();
        let objs = objects();
        ledger.record(
            contract(1, vec![egress("a", "http://a")]),
            vec![],
            &objs,
            Instant::now(),
        );
        assert_eq!(
            ledger.tell(&objs).len(),
            objs.len(),
            "everyone, the first time"
        );
        assert_eq!(ledger.tell(&objs), Vec::<ObjectRef>::new());
        ledger.set_applied(Some(1));
        let woken = ledger.tell(&objs);
        assert_eq!(
            woken,
            [
                ObjectRef::new("Broker", "ns", "b"),
                ObjectRef::new("Trigger", "ns", "a")
            ]
        );
        // A new spec of `a` that compiles to the same entry is news to its controller too.
        let mut newer = objs.clone();
        newer[1].1 = Some(2);
        ledger.record(
            contract(1, vec![egress("a", "http://a")]),
            vec![],
            &newer,
            Instant::now(),
        );
        assert_eq!(ledger.tell(&newer), [ObjectRef::new("Trigger", "ns", "a")]);
    }
}
