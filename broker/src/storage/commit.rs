//! Group commit of one partition: which fsync to run next, and when an append is durable.
//!
//! A pure state machine (no I/O); the partition runs the fsyncs it asks for. As in
//! PostgreSQL's WAL writer and Redpanda: a sync starts as soon as something waits for one and
//! none is running, and covers everything appended before it started; whatever arrives while
//! it runs is covered by the next one. So a lone producer waits one fsync, and concurrent
//! producers share fsyncs instead of queueing one each.
//!
//! # Guarantees
//! - [`GroupCommit::durable`] only grows, and only to the end a successful sync reported.
//! - After a failed sync the partition is *fenced*: no request is ever durable again (the
//!   kernel may have dropped the dirty pages, so a later successful fsync proves nothing about
//!   them — the lesson of PostgreSQL's "fsyncgate"). Only a restart, which recovers the log from
//!   what reached the disk, clears it.
//! - At most one sync runs at a time.

/// What a writer waiting for `end` should do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// Already durable: acknowledge.
    Durable,
    /// Nobody is syncing: the caller runs the sync loop (then waits like [`Request::Wait`]).
    Start,
    /// A sync is running; a later one (already asked for) will cover `end`: wait.
    Wait,
    /// The partition is fenced: answer with a storage error.
    Fenced,
}

/// What the sync loop does after a sync finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Writers are waiting past what was synced: sync again.
    SyncAgain,
    /// Nothing more is wanted (or the partition is fenced): the loop ends.
    Idle,
}

/// Group-commit state of one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupCommit {
    durable: i64,
    wanted: i64,
    syncing: bool,
    fenced: bool,
}

impl GroupCommit {
    /// State of a partition whose log up to `durable` (exclusive) is on disk.
    pub fn new(durable: i64) -> Self {
        GroupCommit {
            durable,
            wanted: durable,
            syncing: false,
            fenced: false,
        }
    }

    /// A writer needs everything below `end` durable.
    pub fn request(&mut self, end: i64) -> Request {
        if self.fenced {
            Request::Fenced
        } else if self.durable >= end {
            Request::Durable
        } else {
            self.wanted = self.wanted.max(end);
            if self.syncing {
                Request::Wait
            } else {
                self.syncing = true;
                Request::Start
            }
        }
    }

    /// The running sync finished: `Ok(end)` made everything below `end` durable (`end` is the
    /// log end taken before the fsync started); `Err(())` means it failed, which fences.
    pub fn finished(&mut self, outcome: Result<i64, ()>) -> Next {
        match outcome {
            Ok(end) if !self.fenced => {
                self.durable = self.durable.max(end);
                if self.wanted > self.durable {
                    return Next::SyncAgain;
                }
            }
            _ => self.fenced = true,
        }
        self.syncing = false;
        Next::Idle
    }

    /// Fences the partition without a sync (a failed write or roll).
    pub fn fence(&mut self) {
        self.fenced = true;
    }

    /// Offset below which everything is durable.
    pub fn durable(&self) -> i64 {
        self.durable
    }

    /// Whether a failure stopped the partition's writes.
    pub fn fenced(&self) -> bool {
        self.fenced
    }

    /// Whether a sync is running.
    pub fn syncing(&self) -> bool {
        self.syncing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writers_during_a_sync_share_the_next_one() {
        let mut c = GroupCommit::new(0);
        assert_eq!(c.request(0), Request::Durable, "nothing to sync");
        assert_eq!(c.request(10), Request::Start, "first writer starts a sync");
        // Three writers arrive while it runs (their appends are past its snapshot).
        for end in [12, 15, 11] {
            assert_eq!(c.request(end), Request::Wait);
        }
        // The running sync took its snapshot at 10.
        assert_eq!(c.finished(Ok(10)), Next::SyncAgain);
        assert_eq!(c.durable(), 10);
        assert_eq!(c.request(10), Request::Durable);
        // One more sync covers all three.
        assert_eq!(c.finished(Ok(15)), Next::Idle);
        assert_eq!((c.durable(), c.syncing()), (15, false));
        assert_eq!(c.request(15), Request::Durable);
        assert_eq!(
            c.request(16),
            Request::Start,
            "idle again: the next writer starts"
        );
    }

    #[test]
    fn a_sync_past_every_request_ends_the_loop() {
        let mut c = GroupCommit::new(5);
        assert_eq!(c.request(8), Request::Start);
        assert_eq!(c.request(9), Request::Wait);
        // The snapshot already included 9's append.
        assert_eq!(c.finished(Ok(12)), Next::Idle);
        assert_eq!(c.durable(), 12);
    }

    #[test]
    fn a_failed_sync_fences_for_good() {
        let mut c = GroupCommit::new(0);
        assert_eq!(c.request(4), Request::Start);
        assert_eq!(c.request(6), Request::Wait);
        assert_eq!(c.finished(Err(())), Next::Idle);
        assert!(c.fenced() && !c.syncing());
        assert_eq!(c.durable(), 0, "nothing past the failed range is durable");
        for end in [0, 4, 6, 100] {
            assert_eq!(c.request(end), Request::Fenced, "end {end}");
        }
        // A stray success afterwards changes nothing.
        assert_eq!(c.finished(Ok(6)), Next::Idle);
        assert_eq!(c.durable(), 0);

        let mut d = GroupCommit::new(3);
        d.fence();
        assert_eq!(d.request(1), Request::Fenced);
    }
}
