//! Connection caps, checked at accept: at most `--max-connections` open connections in all
//! and `--max-connections-per-ip` from one client address (Kafka's `max.connections` and
//! `max.connections.per.ip`). A connection over a cap is closed at once.
//!
//! [`decide`] is the pure rule; [`Admission`] keeps the counts and hands out a
//! [`Ticket`] per admitted connection, which gives its place back when dropped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::metrics::Metrics;

/// The caps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Caps {
    /// Open connections in all.
    pub total: usize,
    /// Open connections from one client address.
    pub per_ip: usize,
}

/// Why a connection is refused: the metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// `--max-connections` reached.
    Total,
    /// `--max-connections-per-ip` reached for this address.
    PerIp,
}

impl Refusal {
    /// The `reason` label of `ferry_broker_connections_refused_total`.
    pub(super) fn label(self) -> &'static str {
        match self {
            Refusal::Total => "max_connections",
            Refusal::PerIp => "max_connections_per_ip",
        }
    }
}

/// Whether one more connection from an address with `from_ip` open ones may open, with
/// `total` open in all.
pub(super) fn decide(caps: Caps, total: usize, from_ip: usize) -> Result<(), Refusal> {
    if total >= caps.total {
        Err(Refusal::Total)
    } else if from_ip >= caps.per_ip {
        Err(Refusal::PerIp)
    } else {
        Ok(())
    }
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
    /// Refusals not yet logged, and when the last log line was written.
    unlogged: u64,
    logged_at: Option<Instant>,
}

/// The open connections, by client address.
#[derive(Debug)]
pub(super) struct Admission {
    caps: Caps,
    counts: Mutex<Counts>,
    metrics: Arc<Metrics>,
}

/// An admitted connection's place; dropping it frees the place.
#[derive(Debug)]
pub(super) struct Ticket {
    admission: Arc<Admission>,
    ip: IpAddr,
}

/// Refusals are logged at most this often (a flood would otherwise flood the log).
const LOG_EVERY: Duration = Duration::from_secs(1);

impl Admission {
    pub(super) fn new(caps: Caps, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Admission {
            caps,
            counts: Mutex::default(),
            metrics,
        })
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A ticket for a connection from `ip`, or `None` (counted and, rate-limited, logged)
    /// when a cap is reached.
    pub(super) fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Ticket> {
        let mut c = self.counts();
        let from_ip = c.per_ip.get(&ip).copied().unwrap_or(0);
        match decide(self.caps, c.total, from_ip) {
            Ok(()) => {
                c.total += 1;
                c.per_ip.insert(ip, from_ip + 1);
                self.metrics.connection_opened();
                Some(Ticket {
                    admission: self.clone(),
                    ip,
                })
            }
            Err(refusal) => {
                self.metrics.connection_refused(refusal.label());
                c.unlogged += 1;
                let now = Instant::now();
                if c.logged_at
                    .is_none_or(|at| now.duration_since(at) >= LOG_EVERY)
                {
                    tracing::debug!(
                        %ip,
                        reason = refusal.label(),
                        refused_since_last_line = c.unlogged,
                        caps = ?self.caps,
                        "connection refused: a connection cap is reached"
                    );
                    c.unlogged = 0;
                    c.logged_at = Some(now);
                }
                None
            }
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut c = self.admission.counts();
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.per_ip.remove(&self.ip);
            }
        }
        self.admission.metrics.connection_closed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_decide() {
        let caps = Caps {
            total: 3,
            per_ip: 2,
        };
        for (name, total, from_ip, want) in [
            ("first", 0, 0, Ok(())),
            ("second from the address", 1, 1, Ok(())),
            ("third from the address", 2, 2, Err(Refusal::PerIp)),
            ("full", 3, 0, Err(Refusal::Total)),
            ("full and the address at its cap", 3, 2, Err(Refusal::Total)),
        ] {
            assert_eq!(decide(caps, total, from_ip), want, "{name}");
        }
    }

    #[test]
    fn tickets_give_their_place_back() {
        let caps = Caps {
            total: 3,
            per_ip: 2,
        };
        let metrics = Arc::new(Metrics::default());
        let admission = Admission::new(caps, metrics.clone());
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let first = admission.admit(a).expect("first");
        let second = admission.admit(a).expect("second");
        assert!(admission.admit(a).is_none(), "per-address cap");
        let third = admission.admit(b).expect("another address");
        assert!(admission.admit(b).is_none(), "total cap");
        drop(first);
        let again = admission.admit(a).expect("a place was freed");
        drop((second, third, again));
        assert!(admission.counts().per_ip.is_empty());
        let text = metrics.render();
        for want in [
            "ferry_broker_connections_open 0",
            "ferry_broker_connections_refused_total{reason=\"max_connections_per_ip\"} 1",
            "ferry_broker_connections_refused_total{reason=\"max_connections\"} 1",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
    }
}
