//! Per-IP limits, on top of each connection's own rate limit: one address may hold so many open
//! websockets and send so many messages a second across all of them, so one client cannot crowd
//! out the rest. Behind a reverse proxy every shopper shares the proxy's address: raise the limits
//! there (`serve --per-ip-connections`, `--per-ip-rate`). The load benchmark switches them off.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use dashmap::DashMap;

/// The limits; `0` switches one off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Open websockets per address.
    pub connections: usize,
    /// Messages per second per address, sustained (the burst is twice that).
    pub rate: f64,
    /// Messages per second on one connection, sustained (the burst is four times that).
    pub connection_rate: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections: 256,
            rate: 50.0,
            connection_rate: 5.0,
        }
    }
}

#[derive(Debug)]
struct PerIp {
    open: usize,
    tokens: f64,
    refilled: Instant,
}

/// What every address is using now.
#[derive(Debug, Default)]
pub struct IpLimiter {
    pub limits: Limits,
    seen: DashMap<IpAddr, PerIp>,
}

/// Holds one of an address's connections; dropping it gives the slot back.
pub struct Slot {
    limiter: Arc<IpLimiter>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let remove = match self.limiter.seen.get_mut(&self.ip) {
            Some(mut s) => {
                s.open = s.open.saturating_sub(1);
                s.open == 0
            }
            None => false,
        };
        if remove {
            self.limiter.seen.remove_if(&self.ip, |_, s| s.open == 0);
        }
    }
}

impl IpLimiter {
    pub fn new(limits: Limits) -> Self {
        IpLimiter {
            limits,
            seen: DashMap::new(),
        }
    }

    /// A connection slot for `ip`, or `None` when it has all it may open.
    pub fn connect(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let burst = self.limits.rate * 2.0;
        let mut s = self.seen.entry(ip).or_insert_with(|| PerIp {
            open: 0,
            tokens: burst,
            refilled: Instant::now(),
        });
        if self.limits.connections > 0 && s.open >= self.limits.connections {
            return None;
        }
        s.open += 1;
        Some(Slot {
            limiter: self.clone(),
            ip,
        })
    }

    /// Whether `ip` may send another message now.
    pub fn message(&self, ip: IpAddr) -> bool {
        if self.limits.rate <= 0.0 {
            return true;
        }
        let Some(mut s) = self.seen.get_mut(&ip) else {
            return true;
        };
        let burst = self.limits.rate * 2.0;
        s.tokens = (s.tokens + s.refilled.elapsed().as_secs_f64() * self.limits.rate).min(burst);
        s.refilled = Instant::now();
        if s.tokens < 1.0 {
            return false;
        }
        s.tokens -= 1.0;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_and_messages_are_limited_per_address() {
        let l = Arc::new(IpLimiter::new(Limits {
            connections: 2,
            rate: 1.0,
            connection_rate: 1.0,
        }));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let s1 = l.connect(a).unwrap();
        let _s2 = l.connect(a).unwrap();
        assert!(l.connect(a).is_none(), "a third from the same address");
        assert!(l.connect(b).is_some(), "another address is not affected");
        drop(s1);
        assert!(l.connect(a).is_some(), "a closed connection frees its slot");
        // Burst of 2, then refused until the bucket refills.
        assert!(l.message(a) && l.message(a));
        assert!(!l.message(a));
        assert!(l.message(b));
    }
}
