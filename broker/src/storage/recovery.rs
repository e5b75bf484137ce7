//! Crash recovery of a segment: what to keep of a log whose end is damaged.
//!
//! A crash can leave the active segment ending in a torn write: part of the last batch, or
//! garbage where the kernel extended the file but never wrote the data. Nothing in it was
//! acknowledged under `always` or `interval` (an ack waits for the fsync that covers it), so
//! recovery drops it — with a warning naming the file, position and size, and counted in
//! `ferry_broker_recovery_truncated_bytes_total{reason="torn_tail"}`.
//!
//! Kafka's log recovery truncates a segment at its first invalid batch wherever that is, with
//! a log line. Ferry does so only for a torn *tail*. When valid batches follow the damage
//! (corruption in the middle: a bad sector, a flipped bit — or any damage in an older,
//! fsynced segment), truncating would also drop every record after it, acknowledged ones
//! among them. So recovery refuses to open the partition ([`Error::CorruptSegment`] names the
//! file, the position and what to do) and the broker does not start, unless the operator
//! allows the truncation ([`Recovery::Truncate`], `--truncate-corrupt-segments`).
//!
//! One crash shape looks like corruption too: the kernel writes dirty pages back in any order,
//! so a power loss can lose an unsynced write while a later unsynced one reached the disk.
//! Everything after such a hole was never acknowledged under `always`/`interval`, and
//! truncating loses nothing promised. Ferry appends and never preallocates, so a page the
//! kernel never wrote back reads as zeros: damage that is all zero bytes up to the next valid
//! batch is taken for that shape ([`Damage::Hole`]) and truncated like a torn tail, with its
//! own reason in the log and the metric. Damage with any other content is refused: without a
//! durable record of the synced end Ferry cannot tell it from damage to acknowledged data, and
//! asks rather than guess.

use super::batch::BatchHeader;
use crate::error::Error;

/// How recovery treats damage that valid data follows.
///
/// A torn tail of the active segment (the last write, cut short by a crash) is always
/// truncated, logged and counted: nothing in it was acknowledged under `always`/`interval`.
/// Damage that a valid batch follows, or any damage in an older (fsynced) segment, is
/// corruption: truncating there, as Kafka's log recovery does, would silently drop the
/// acknowledged records after it, so by default the partition is refused
/// ([`crate::Error::CorruptSegment`] names the file and position) and the broker does not
/// start. A hole of zero bytes before the next valid batch ([`Damage::Hole`], a lost
/// unsynced write followed by a later one the kernel did write back) is truncated: nothing
/// after it was acknowledged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Recovery {
    /// Refuse to open the partition (the default).
    #[default]
    Refuse,
    /// Truncate at the damage, dropping what follows (`--truncate-corrupt-segments`).
    Truncate,
}

/// Where a segment's valid batches end, and what follows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Damage {
    /// The file ends with the last valid batch.
    None,
    /// Bytes after the last valid batch, and no valid batch among them.
    TornTail,
    /// Zero bytes up to a valid batch at this byte position: pages of an unsynced write that
    /// never reached the disk, followed by a later write that did (a power loss).
    Hole {
        /// Where the next valid batch starts.
        next_valid: u64,
    },
    /// A valid batch at this byte position follows the damage, which is not all zeros.
    Corrupt {
        /// Where the next valid batch starts.
        next_valid: u64,
    },
    /// The damage is in a sealed (older, fsynced) segment: later segments hold valid data.
    Sealed,
}

/// What recovery does about a segment's damage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing to do.
    Keep,
    /// Cut the file at the end of its valid batches; the reason as the metric labels it.
    Truncate(&'static str),
    /// Refuse to open the partition.
    Refuse,
}

/// Decides what recovery does about `damage` under `policy`.
pub fn decide(damage: Damage, policy: Recovery) -> Action {
    match (damage, policy) {
        (Damage::None, _) => Action::Keep,
        (Damage::TornTail, _) => Action::Truncate("torn_tail"),
        (Damage::Hole { .. }, _) => Action::Truncate("unsynced_hole"),
        (Damage::Corrupt { .. } | Damage::Sealed, Recovery::Truncate) => {
            Action::Truncate("corrupt")
        }
        (Damage::Corrupt { .. } | Damage::Sealed, Recovery::Refuse) => Action::Refuse,
    }
}

/// What recovery cut off a segment, for the metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Truncated {
    /// `torn_tail`, `unsynced_hole` or `corrupt`.
    pub reason: &'static str,
    /// Bytes dropped.
    pub bytes: u64,
}

/// Whether `header`, found at `position` in a file of `len` bytes, can start a batch that
/// continues a log whose next offset is `next_offset` (a cheap filter before the CRC check).
pub fn plausible(header: &BatchHeader, position: u64, len: u64, next_offset: i64) -> bool {
    let total = header.total_len() as u64;
    header.magic == 2
        && header.base_offset >= next_offset
        && total >= super::BATCH_HEADER_LEN as u64
        && position + total <= len
}

/// The error refusing a damaged segment.
pub fn refusal(path: &std::path::Path, position: u64, len: u64, damage: Damage) -> Error {
    let follows = match damage {
        Damage::Corrupt { next_valid } => format!("a valid batch follows at byte {next_valid}"),
        _ => "later segments hold valid records".to_owned(),
    };
    Error::CorruptSegment {
        path: path.to_owned(),
        position,
        bytes: len - position,
        follows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_torn_tail_is_dropped_without_asking() {
        let corrupt = Damage::Corrupt { next_valid: 100 };
        for (damage, policy, want) in [
            (Damage::None, Recovery::Refuse, Action::Keep),
            (
                Damage::TornTail,
                Recovery::Refuse,
                Action::Truncate("torn_tail"),
            ),
            (
                Damage::TornTail,
                Recovery::Truncate,
                Action::Truncate("torn_tail"),
            ),
            (
                Damage::Hole { next_valid: 4096 },
                Recovery::Refuse,
                Action::Truncate("unsynced_hole"),
            ),
            (corrupt, Recovery::Refuse, Action::Refuse),
            (corrupt, Recovery::Truncate, Action::Truncate("corrupt")),
            (Damage::Sealed, Recovery::Refuse, Action::Refuse),
            (
                Damage::Sealed,
                Recovery::Truncate,
                Action::Truncate("corrupt"),
            ),
        ] {
            assert_eq!(decide(damage, policy), want, "{damage:?} {policy:?}");
        }
    }
}
