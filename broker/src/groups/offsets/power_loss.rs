//! The offset store on a [`SimDisk`] that loses power: seeded runs of commits and deletions
//! (of offsets, groups and topics) with a full disk, failing fsyncs and frequent compacting
//! rewrites, then a power loss (or a clean restart) and a replay.
//!
//! # Properties (every seed)
//! - The store opens: a crash only ever leaves a torn last line.
//! - Every acknowledged change is there: each committed offset holds the value of the last
//!   acknowledged commit or deletion that touched it, or of a change answered with an error
//!   after it (a failed write may survive, as in Kafka: the client retries it).
//! - Nothing is invented: every offset recovered is one some commit wrote.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use super::{Committed, OffsetStore};
use crate::error::Error;
use crate::storage::sim_disk::{Rng, SimDisk};

type Key = (String, String, i32);

/// Every change that touched each offset, in order: the value it left (`None`: deleted) and
/// whether it was acknowledged.
#[derive(Default)]
struct Model {
    history: BTreeMap<Key, Vec<(Option<i64>, bool)>>,
    /// What the store holds in memory: the acknowledged changes applied.
    acked: BTreeMap<Key, i64>,
    /// Acknowledged changes, refused writes cut back, and stores fenced (for the guard test).
    acks: u64,
    rolled_back: u64,
    fenced: bool,
}

impl Model {
    fn record(&mut self, keys: &[Key], value: impl Fn(&Key) -> Option<i64>, acked: bool) {
        for key in keys {
            let v = value(key);
            self.history
                .entry(key.clone())
                .or_default()
                .push((v, acked));
            if acked {
                match v {
                    Some(v) => self.acked.insert(key.clone(), v),
                    None => self.acked.remove(key),
                };
            }
        }
    }

    /// The values the store may hold for `key` after a restart.
    fn allowed(&self, key: &Key) -> BTreeSet<Option<i64>> {
        let history = self.history.get(key).map(Vec::as_slice).unwrap_or(&[]);
        let last_ack = history.iter().rposition(|(_, acked)| *acked);
        let mut allowed: BTreeSet<Option<i64>> = history[last_ack.map_or(0, |i| i + 1)..]
            .iter()
            .map(|(v, _)| *v)
            .collect();
        allowed.insert(last_ack.and_then(|i| history[i].0));
        allowed
    }

    /// Every offset ever written for `pick(key)`.
    fn seen(&self, pick: impl Fn(&Key) -> bool) -> Vec<Key> {
        self.history.keys().filter(|k| pick(k)).cloned().collect()
    }
}

const DATA: &str = "/data";
const GROUPS: [&str; 3] = ["g0", "g1", "g2"];
const TOPICS: [&str; 3] = ["a", "b", "c"];

fn committed(offset: i64, rng: &mut Rng) -> Committed {
    Committed {
        offset,
        leader_epoch: -1,
        metadata: Some("m".repeat(rng.below(200) as usize)),
    }
}

fn open(disk: &SimDisk, seed: u64) -> Result<OffsetStore<SimDisk>, String> {
    let mut store = OffsetStore::open_on(disk.clone(), Path::new(DATA), true, Arc::default())
        .map_err(|e| format!("seed {seed}: the store does not open: {e}"))?;
    // Rewritten compactly every few lines, so that rewrites meet the faults too.
    store.compact_min_lines = 4;
    Ok(store)
}

/// One change, recorded in `model` with its outcome.
fn step(store: &OffsetStore<SimDisk>, rng: &mut Rng, model: &mut Model, n: i64) {
    let group = GROUPS[rng.below(3) as usize].to_owned();
    let topic = |rng: &mut Rng| TOPICS[rng.below(3) as usize].to_owned();
    let (keys, value, result): (Vec<Key>, BTreeMap<Key, Option<i64>>, _) = match rng.below(10) {
        0..=6 => {
            let mut offsets = BTreeMap::new();
            for i in 0..=rng.below(3) {
                let key = (group.clone(), topic(rng), rng.below(2) as i32);
                offsets.insert(key, n * 10 + i as i64);
            }
            let sent = offsets
                .iter()
                .map(|((_, t, p), o)| (t.clone(), *p, committed(*o, rng)))
                .collect();
            let result = store.commit(&group, sent);
            let keys = offsets.keys().cloned().collect();
            let value = offsets.into_iter().map(|(k, o)| (k, Some(o))).collect();
            (keys, value, result)
        }
        7 => {
            // A no-op (nothing written) when the group has no offsets.
            let keys = if model.acked.keys().any(|k| k.0 == group) {
                model.seen(|k| k.0 == group)
            } else {
                Vec::new()
            };
            (keys, BTreeMap::new(), store.delete_group(&group))
        }
        8 => {
            let partitions = vec![(topic(rng), 0), (topic(rng), 1)];
            let keys = partitions
                .iter()
                .map(|(t, p)| (group.clone(), t.clone(), *p))
                .filter(|k| model.acked.contains_key(k))
                .collect();
            (
                keys,
                BTreeMap::new(),
                store.delete_offsets(&group, &partitions),
            )
        }
        _ => {
            let topic = topic(rng);
            let keys = model.seen(|k| k.1 == topic);
            (keys, BTreeMap::new(), store.delete_topic(&topic))
        }
    };
    let acked = result.is_ok();
    match &result {
        Ok(()) => model.acks += 1,
        Err(Error::WriteRolledBack { .. }) => model.rolled_back += 1,
        Err(_) => model.fenced = store.fenced(),
    }
    model.record(&keys, |k| value.get(k).copied().flatten(), acked);
}

/// A run of changes under random faults, a power loss or a clean restart, and the check.
fn run(seed: u64) -> Result<Model, String> {
    let mut rng = Rng::new(seed);
    let disk = SimDisk::default();
    let store = open(&disk, seed)?;
    let mut model = Model::default();
    for n in 0..rng.below(60) as i64 {
        match rng.below(100) {
            0..=79 => step(&store, &mut rng, &mut model, n),
            80..=87 => disk.set_capacity(Some(disk.used() + rng.below(600))),
            88..=95 => disk.set_capacity(None),
            _ => disk.fail_syncs(1 + rng.below(2)),
        }
        for (key, offset) in &model.acked {
            let held = store.fetch(&key.0, &key.1, key.2).map(|c| c.offset);
            if held != Some(*offset) {
                return Err(format!(
                    "seed {seed}: {key:?} holds {held:?} in memory, not {offset}"
                ));
            }
        }
    }
    drop(store);
    if rng.below(4) > 0 {
        disk.power_loss(&mut rng);
    } else {
        disk.set_capacity(None);
        disk.fail_syncs(0);
    }
    let store = open(&disk, seed)?;
    for group in store.groups() {
        for (topic, partition, c) in store.group(&group) {
            let key = (group.clone(), topic, partition);
            if !model.history.contains_key(&key) {
                return Err(format!("seed {seed}: {key:?} was never written"));
            }
            if !model.allowed(&key).contains(&Some(c.offset)) {
                return Err(format!(
                    "seed {seed}: {key:?} holds {}, a value no change it may keep left",
                    c.offset
                ));
            }
        }
    }
    for key in model.history.keys() {
        let held = store.fetch(&key.0, &key.1, key.2).map(|c| c.offset);
        let allowed = model.allowed(key);
        if !allowed.contains(&held) {
            return Err(format!(
                "seed {seed}: {key:?} recovered as {held:?}, expected one of {allowed:?}"
            ));
        }
    }
    Ok(model)
}

#[test]
fn acknowledged_offsets_survive_power_loss_and_faults() {
    let started = std::time::Instant::now();
    let failures: Vec<String> = (0..10_000u64)
        .filter_map(|seed| run(seed).err())
        .take(5)
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
    println!("10,000 seeds in {:?}", started.elapsed());
}

#[test]
fn the_simulation_reaches_the_faults_it_injects() {
    // Guards the property test against testing nothing: across the seeds, acknowledged
    // changes, writes refused on a full disk and cut back, and fenced stores all occur.
    let (mut acks, mut rolled_back, mut fenced) = (0, 0, 0);
    for seed in 0..1_000 {
        let model = run(seed).expect("the property holds");
        acks += model.acks;
        rolled_back += model.rolled_back;
        fenced += u64::from(model.fenced);
    }
    assert!(
        acks > 1_000 && rolled_back > 0 && fenced > 0,
        "{acks} {rolled_back} {fenced}"
    );
}
