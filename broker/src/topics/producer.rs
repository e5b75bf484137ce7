//! Idempotent-producer state of one partition: the last epoch and sequence each producer id
//! wrote, and its last few batches, so retries are recognised and gaps rejected as Kafka does.

use std::collections::{HashMap, VecDeque};

use crate::error::{Error, Result};
use crate::storage::BatchHeader;

/// How many recent batches per producer are remembered for duplicate detection (Kafka keeps
/// five, matching `max.in.flight.requests.per.connection` ≤ 5 for idempotent producers).
pub const RECENT_BATCHES: usize = 5;

/// One batch a producer wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WrittenBatch {
    /// Sequence of its first record.
    pub first_seq: i32,
    /// Sequence of its last record.
    pub last_seq: i32,
    /// Offset its first record got.
    pub base_offset: i64,
}

#[derive(Clone, Debug, Default)]
struct ProducerEntry {
    epoch: i16,
    recent: VecDeque<WrittenBatch>,
}

/// What to do with a producer's batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Not written by an idempotent producer, or the next batch in its sequence: append it.
    Append,
    /// A retry of a batch already in the log: answer with its original offset, write nothing.
    Duplicate(WrittenBatch),
}

/// Producer states of one partition.
#[derive(Clone, Debug, Default)]
pub struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
}

fn last_seq(header: &BatchHeader) -> i32 {
    // Sequences wrap at i32::MAX back to 0, as in Kafka.
    let n = i64::from(header.base_sequence) + i64::from(header.last_offset_delta);
    i32::try_from(n % (i64::from(i32::MAX) + 1)).unwrap_or(0)
}

fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX { 0 } else { seq + 1 }
}

impl ProducerStates {
    /// Decides what to do with `header`'s batch, without changing any state.
    ///
    /// # Errors
    /// [`Error::StaleProducerEpoch`] or [`Error::OutOfOrderSequence`] when the batch must be
    /// refused.
    pub fn check(&self, header: &BatchHeader) -> Result<SequenceCheck> {
        if header.producer_id < 0 {
            return Ok(SequenceCheck::Append);
        }
        let Some(entry) = self.producers.get(&header.producer_id) else {
            // Kafka accepts a producer it has no state for at any sequence (its state may
            // have been removed with old segments).
            return Ok(SequenceCheck::Append);
        };
        let first = header.base_sequence;
        if header.producer_epoch < entry.epoch {
            return Err(Error::StaleProducerEpoch {
                got: header.producer_epoch,
                current: entry.epoch,
            });
        }
        if header.producer_epoch > entry.epoch {
            return if first == 0 {
                Ok(SequenceCheck::Append)
            } else {
                Err(Error::OutOfOrderSequence {
                    got: first,
                    expected: 0,
                })
            };
        }
        let last = last_seq(header);
        if let Some(dup) = entry
            .recent
            .iter()
            .find(|b| b.first_seq == first && b.last_seq == last)
        {
            return Ok(SequenceCheck::Duplicate(*dup));
        }
        let expected = entry.recent.back().map_or(0, |b| next_seq(b.last_seq));
        if first == expected {
            Ok(SequenceCheck::Append)
        } else {
            Err(Error::OutOfOrderSequence {
                got: first,
                expected,
            })
        }
    }

    /// Records a batch that was appended with its offsets assigned (also used to rebuild
    /// the state from the log on start).
    pub fn record(&mut self, header: &BatchHeader) {
        if header.producer_id < 0 || header.base_sequence < 0 {
            return;
        }
        let entry = self.producers.entry(header.producer_id).or_default();
        if header.producer_epoch != entry.epoch {
            entry.epoch = header.producer_epoch;
            entry.recent.clear();
        }
        if entry.recent.len() == RECENT_BATCHES {
            entry.recent.pop_front();
        }
        entry.recent.push_back(WrittenBatch {
            first_seq: header.base_sequence,
            last_seq: last_seq(header),
            base_offset: header.base_offset,
        });
    }

    /// Number of producers with state.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Whether no producer has state.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, seq: i32, count: i32, base_offset: i64) -> BatchHeader {
        BatchHeader {
            base_offset,
            batch_length: 0,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            records_count: count,
        }
    }

    /// The check with a refusal as its message, so outcomes compare with `assert_eq!`.
    fn checked(s: &ProducerStates, h: &BatchHeader) -> Result<SequenceCheck, String> {
        s.check(h).map_err(|e| e.to_string())
    }

    #[test]
    fn sequences_duplicates_gaps_and_epochs() {
        let mut s = ProducerStates::default();
        assert_eq!(
            checked(&s, &header(-1, -1, -1, 1, 0)),
            Ok(SequenceCheck::Append)
        );
        let first = header(7, 0, 0, 3, 0);
        assert_eq!(checked(&s, &first), Ok(SequenceCheck::Append));
        s.record(&first);
        let second = header(7, 0, 3, 2, 3);
        assert_eq!(checked(&s, &second), Ok(SequenceCheck::Append));
        s.record(&second);
        assert_eq!(
            checked(&s, &header(7, 0, 0, 3, 99)),
            Ok(SequenceCheck::Duplicate(WrittenBatch {
                first_seq: 0,
                last_seq: 2,
                base_offset: 0
            })),
            "a retried batch is recognised with its original offset"
        );
        assert_eq!(
            checked(&s, &header(7, 0, 6, 1, 0)),
            Err(Error::OutOfOrderSequence {
                got: 6,
                expected: 5
            }
            .to_string())
        );
        assert_eq!(
            checked(&s, &header(7, 1, 4, 1, 0)),
            Err(Error::OutOfOrderSequence {
                got: 4,
                expected: 0
            }
            .to_string()),
            "a new epoch starts at sequence 0"
        );
        let bumped = header(7, 1, 0, 1, 5);
        assert_eq!(checked(&s, &bumped), Ok(SequenceCheck::Append));
        s.record(&bumped);
        assert_eq!(
            checked(&s, &header(7, 0, 5, 1, 0)),
            Err(Error::StaleProducerEpoch { got: 0, current: 1 }.to_string())
        );
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn remembers_five_batches_and_wraps_sequences() {
        let mut s = ProducerStates::default();
        for i in 0..7 {
            s.record(&header(1, 0, i, 1, i64::from(i)));
        }
        assert_eq!(
            checked(&s, &header(1, 0, 1, 1, 0)),
            Err(Error::OutOfOrderSequence {
                got: 1,
                expected: 7
            }
            .to_string()),
            "only the last five batches are remembered"
        );
        assert!(matches!(
            checked(&s, &header(1, 0, 2, 1, 0)),
            Ok(SequenceCheck::Duplicate(_))
        ));
        let mut w = ProducerStates::default();
        w.record(&header(2, 0, i32::MAX - 1, 2, 0));
        assert_eq!(
            checked(&w, &header(2, 0, 0, 1, 2)),
            Ok(SequenceCheck::Append)
        );
    }
}
