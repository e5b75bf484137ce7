//! Which offsets may be committed: per partition, everything below the lowest unsettled offset.
//! Settled means delivered, dead-lettered, filtered out, or dropped after the last retry, so a
//! crash never skips an event that was still in flight.

use std::collections::{BTreeSet, HashMap};

#[derive(Debug, Default)]
struct PartitionProgress {
    unsettled: BTreeSet<i64>,
    /// One past the highest offset seen.
    next: i64,
    /// What was last reported as committable.
    committed: i64,
}

/// Tracks in-flight offsets per partition.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: HashMap<(String, i32), PartitionProgress>,
}

impl OffsetTracker {
    /// Records that `offset` was consumed and is now in flight. An offset at or below one seen
    /// before (the partition was reassigned and is read again) starts the partition afresh.
    pub fn begin(&mut self, topic: &str, partition: i32, offset: i64) {
        let fresh = || PartitionProgress {
            committed: offset,
            ..PartitionProgress::default()
        };
        let p = self
            .partitions
            .entry((topic.to_owned(), partition))
            .or_insert_with(fresh);
        if offset < p.next {
            *p = fresh();
        }
        p.unsettled.insert(offset);
        p.next = offset + 1;
    }

    /// Settles `offset`; returns the new committable position (the next offset to read) when
    /// it moved forward.
    pub fn settle(&mut self, topic: &str, partition: i32, offset: i64) -> Option<i64> {
        let p = self.partitions.get_mut(&(topic.to_owned(), partition))?;
        if !p.unsettled.remove(&offset) {
            return None;
        }
        let position = p.unsettled.first().copied().unwrap_or(p.next);
        (position > p.committed).then(|| {
            p.committed = position;
            position
        })
    }

    /// Events in flight across all partitions.
    pub fn in_flight(&self) -> usize {
        self.partitions.values().map(|p| p.unsettled.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_only_below_the_lowest_unsettled_offset() {
        let mut t = OffsetTracker::default();
        for o in 10..15 {
            t.begin("t", 0, o);
        }
        assert_eq!(t.settle("t", 0, 12), None, "10 and 11 still in flight");
        assert_eq!(t.settle("t", 0, 11), None);
        assert_eq!(t.settle("t", 0, 10), Some(13));
        assert_eq!(t.settle("t", 0, 14), None);
        assert_eq!(t.settle("t", 0, 13), Some(15));
        assert_eq!(t.settle("t", 0, 13), None, "settling twice does nothing");
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn partitions_are_independent_and_rewinds_restart() {
        let mut t = OffsetTracker::default();
        t.begin("t", 0, 5);
        t.begin("t", 1, 7);
        assert_eq!(t.settle("t", 1, 7), Some(8));
        assert_eq!(t.in_flight(), 1);
        t.begin("t", 1, 3);
        assert_eq!(t.settle("t", 1, 3), Some(4));
        assert_eq!(t.settle("u", 0, 1), None);
    }
}
