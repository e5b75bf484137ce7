//! Verdicts over what a load run sent and what its sinks counted: pure functions, so the
//! soak and fault benchmarks and their own tests read the same rules.
//!
//! - [`delivery`]: every event the ingress answered 202 reached the subscriber or, per the
//!   delivery spec, the dead-letter sink — once, not both — and each took no more attempts
//!   than the spec allows.
//! - [`order`]: per partition key, first deliveries follow the log's order; later copies are
//!   at-least-once replays, counted with the times delivery went back (rewinds).

use std::collections::{BTreeMap, HashMap};

use crate::tally::Counts;

/// How the generator's request for one sequence number was answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(u8)]
pub enum Answer {
    /// Not sent (yet).
    #[default]
    Unsent = 0,
    /// 202 (or another 2xx): the ingress owns the event.
    Accepted = 1,
    /// Another status (503 under overload, say).
    Refused = 2,
    /// No answer: connection refused or reset, or timed out.
    Failed = 3,
}

/// Counts of a [`delivery`] audit; the run passed when [`Delivery::problems`] is empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Requests sent.
    pub sent: usize,
    /// Answered 2xx.
    pub accepted: usize,
    /// Accepted and delivered to the subscriber.
    pub delivered: usize,
    /// Accepted and in the dead-letter sink (not delivered).
    pub dead_lettered: usize,
    /// Accepted and in neither sink.
    pub lost: usize,
    /// Delivered to the subscriber and also dead-lettered.
    pub both: usize,
    /// Extra 2xx-answered copies beyond the first, subscriber and dead-letter sink together.
    pub duplicates: usize,
    /// Not answered 2xx, yet delivered or dead-lettered (the ingress wrote it, then could not
    /// say so, e.g. killed between the write and the answer).
    pub unanswered_but_delivered: usize,
    /// Requests to the subscriber.
    pub attempts: usize,
    /// Requests the subscriber failed.
    pub failed_attempts: usize,
    /// Events with more failed subscriber attempts than `retry + 1`.
    pub over_retried: usize,
    /// Dead-lettered with fewer than `retry + 1` failed subscriber attempts.
    pub dead_lettered_early: usize,
}

impl Delivery {
    /// What breaks the guarantees, as sentences; empty when none. Duplicates are allowed
    /// (at-least-once) and reported, not judged here.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut say = |n: usize, what: &str| {
            if n > 0 {
                problems.push(format!("{n} {what}"));
            }
        };
        say(self.lost, "accepted events lost");
        say(self.both, "events both delivered and dead-lettered");
        say(self.over_retried, "events retried beyond the delivery spec");
        say(
            self.dead_lettered_early,
            "events dead-lettered before their retries ran out",
        );
        problems
    }
}

/// Audits `answers` (per sequence number) against what the `subscriber` and the optional
/// `dead_letter` sink counted; `retry` is the delivery spec's retry count (`None`: not
/// checked, e.g. when a crash may replay attempts).
pub fn delivery(
    answers: &[Answer],
    subscriber: &Counts,
    dead_letter: Option<&Counts>,
    retry: Option<u32>,
) -> Delivery {
    let mut d = Delivery::default();
    let at = |v: &[u8], seq: usize| usize::from(v.get(seq).copied().unwrap_or(0));
    for (seq, answer) in answers.iter().enumerate() {
        if *answer == Answer::Unsent {
            continue;
        }
        d.sent += 1;
        let requests = at(&subscriber.requests, seq);
        let delivered = at(&subscriber.accepted, seq);
        let dead = dead_letter.map_or(0, |c| at(&c.accepted, seq));
        let failed = requests - delivered.min(requests);
        d.attempts += requests;
        d.failed_attempts += failed;
        d.duplicates += delivered.saturating_sub(1) + dead.saturating_sub(1);
        if *answer == Answer::Accepted {
            d.accepted += 1;
            match (delivered > 0, dead > 0) {
                (true, true) => d.both += 1,
                (true, false) => d.delivered += 1,
                (false, true) => d.dead_lettered += 1,
                (false, false) => d.lost += 1,
            }
        } else if delivered + dead > 0 {
            d.unanswered_but_delivered += 1;
        }
        if let Some(retry) = retry {
            let allowed = retry as usize + 1;
            if failed > allowed {
                d.over_retried += 1;
            }
            if dead > 0 && delivered == 0 && failed < allowed {
                d.dead_lettered_early += 1;
            }
        }
    }
    d
}

/// Counts of an [`order`] audit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Order {
    /// Partition keys seen in the log.
    pub keys: usize,
    /// Events in the log.
    pub events: usize,
    /// First deliveries that came before an earlier event of their key (in the log) was
    /// delivered: order breaks.
    pub out_of_order: usize,
    /// Deliveries of an event already delivered (at-least-once replays).
    pub duplicates: usize,
    /// Times a key's deliveries went back to an earlier log position (a replay starting).
    pub rewinds: usize,
    /// Events in the log never delivered.
    pub missing: usize,
    /// Deliveries of events not in the log.
    pub unknown: usize,
}

/// Audits `arrivals` (accepted deliveries as `(key, id)`, in arrival order) against `log`
/// (per key, the ids in log order).
pub fn order(log: &BTreeMap<u32, Vec<u32>>, arrivals: &[(u32, u32)]) -> Order {
    let mut o = Order {
        keys: log.len(),
        events: log.values().map(Vec::len).sum(),
        ..Order::default()
    };
    // Per key: each id's position in the log, which positions were delivered, the first
    // position not yet delivered and the last position delivered.
    struct Key {
        position: HashMap<u32, usize>,
        delivered: Vec<bool>,
        next: usize,
        last: Option<usize>,
    }
    let mut keys: HashMap<u32, Key> = log
        .iter()
        .map(|(key, ids)| {
            let position = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
            let state = Key {
                position,
                delivered: vec![false; ids.len()],
                next: 0,
                last: None,
            };
            (*key, state)
        })
        .collect();
    for (key, id) in arrivals {
        let Some(k) = keys.get_mut(key) else {
            o.unknown += 1;
            continue;
        };
        let Some(&at) = k.position.get(id) else {
            o.unknown += 1;
            continue;
        };
        if k.last.is_some_and(|last| at < last) {
            o.rewinds += 1;
        }
        k.last = Some(at);
        if k.delivered[at] {
            o.duplicates += 1;
            continue;
        }
        if at != k.next {
            o.out_of_order += 1;
        }
        k.delivered[at] = true;
        while k.delivered.get(k.next) == Some(&true) {
            k.next += 1;
        }
    }
    o.missing = keys
        .values()
        .map(|k| k.delivered.iter().filter(|d| !**d).count())
        .sum();
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(requests: &[u8], accepted: &[u8]) -> Counts {
        Counts {
            requests: requests.to_vec(),
            accepted: accepted.to_vec(),
            foreign: 0,
        }
    }

    #[test]
    fn delivery_table() {
        use Answer::*;
        // seq: 0 delivered first try; 1 delivered on the third; 2 dead-lettered after 3
        // failures; 3 lost; 4 both; 5 refused but delivered; 6 unsent; 7 dead-lettered after
        // one failure; 8 delivered twice; 9 failed four times.
        let answers = [
            Accepted, Accepted, Accepted, Accepted, Accepted, Refused, Unsent, Accepted, Accepted,
            Accepted,
        ];
        let subscriber = counts(
            &[1, 3, 3, 0, 1, 1, 0, 1, 2, 5],
            &[1, 1, 0, 0, 1, 1, 0, 0, 2, 1],
        );
        let dead = counts(
            &[0, 0, 1, 0, 1, 0, 0, 1, 0, 0],
            &[0, 0, 1, 0, 1, 0, 0, 1, 0, 0],
        );
        let d = delivery(&answers, &subscriber, Some(&dead), Some(2));
        assert_eq!(
            d,
            Delivery {
                sent: 9,
                accepted: 8,
                delivered: 4,
                dead_lettered: 2,
                lost: 1,
                both: 1,
                duplicates: 1,
                unanswered_but_delivered: 1,
                attempts: 17,
                failed_attempts: 10,
                over_retried: 1,
                dead_lettered_early: 1,
            }
        );
        assert_eq!(d.problems().len(), 4);
        let clean = delivery(&answers[..3], &subscriber, Some(&dead), Some(2));
        assert!(clean.problems().is_empty(), "{clean:?}");
    }

    #[test]
    fn order_table() {
        let log = BTreeMap::from([(1, vec![10, 11, 12, 13]), (2, vec![20, 21])]);
        // Name, arrivals as (key, id), expected audit.
        type Case = (&'static str, Vec<(u32, u32)>, Order);
        let cases: [Case; 4] = [
            (
                "in order, keys interleaved",
                vec![(1, 10), (2, 20), (1, 11), (2, 21), (1, 12), (1, 13)],
                Order::default(),
            ),
            (
                "a replay after a restart",
                vec![
                    (1, 10),
                    (1, 11),
                    (1, 12),
                    (1, 11),
                    (1, 12),
                    (1, 13),
                    (2, 20),
                    (2, 21),
                ],
                Order {
                    duplicates: 2,
                    rewinds: 1,
                    ..Order::default()
                },
            ),
            (
                "a skip, then the skipped one",
                vec![(1, 10), (1, 12), (1, 11), (1, 13), (2, 20), (2, 21)],
                Order {
                    out_of_order: 1,
                    rewinds: 1,
                    ..Order::default()
                },
            ),
            (
                "missing and unknown",
                vec![(1, 10), (1, 11), (1, 12), (2, 20), (3, 30), (2, 99)],
                Order {
                    missing: 2,
                    unknown: 2,
                    ..Order::default()
                },
            ),
        ];
        for (name, arrivals, mut expected) in cases {
            expected.keys = 2;
            expected.events = 6;
            assert_eq!(order(&log, &arrivals), expected, "{name}");
        }
    }
}
