//! Per-client admission for the web chat's API, so one client cannot take what is meant for
//! everyone (disk, the bus, the workers): budgets per client address and per conversation
//! (GCRA, the same limiter that paces platform sends), and a cap on each address's open
//! long-polls. A request over budget is refused with 429 and `Retry-After`; nothing of it is
//! stored.
//!
//! A client is its address: an IPv4 address, or an IPv6 address's /64 (one subscriber usually
//! holds a whole /64, so counting single IPv6 addresses would let one client be millions).
//! Behind a proxy every request comes from the proxy; `[web] client_address_header` then names
//! the header the proxy puts the client's address in. Each gateway process keeps its own
//! budgets: with N gateways behind a balancer a client gets up to N times the budget.

use botc_runtime::clock::Clock;
use botc_runtime::platforms::limiter::{Check, Gcra, Limit};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What one client may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// Writes (messages and new conversations) per client address.
    pub per_client: Limit,
    /// Messages per conversation.
    pub per_conversation: Limit,
    /// Long-polls one client address may hold open at once.
    pub polls_per_client: usize,
}

impl Default for AdmissionLimits {
    /// Far above what people typing produce (a busy office behind one address included),
    /// far below what fills a disk.
    fn default() -> Self {
        AdmissionLimits {
            per_client: Limit { rate: 120, period: Duration::from_secs(60), burst: 60 },
            per_conversation: Limit { rate: 30, period: Duration::from_secs(60), burst: 10 },
            polls_per_client: 16,
        }
    }
}

pub struct Admission {
    limits: AdmissionLimits,
    gcra: Gcra,
    /// Open long-polls per client.
    polls: Arc<Mutex<HashMap<Client, usize>>>,
    /// The header a trusted proxy puts the client's address in, lower-case.
    address_header: Option<String>,
}

/// A client, as admission counts them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Client(IpAddr);

impl std::fmt::Display for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V6(a) => write!(f, "{a}/64"),
            IpAddr::V4(a) => write!(f, "{a}"),
        }
    }
}

impl Client {
    fn of(ip: IpAddr) -> Client {
        match ip {
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => Client(IpAddr::V4(v4)),
                None => {
                    let mut s = a.segments();
                    s[4..].fill(0);
                    Client(IpAddr::V6(s.into()))
                }
            },
            v4 => Client(v4),
        }
    }
}

/// A long-poll's place among its client's (none to count without a client address); given
/// back when dropped.
pub struct Poll {
    polls: Arc<Mutex<HashMap<Client, usize>>>,
    client: Option<Client>,
}

impl Drop for Poll {
    fn drop(&mut self) {
        let Some(client) = self.client else { return };
        let mut polls = self.polls.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = polls.get_mut(&client) {
            *n -= 1;
            if *n == 0 {
                polls.remove(&client);
            }
        }
    }
}

impl Admission {
    pub fn new(limits: AdmissionLimits, address_header: Option<String>, clock: Arc<dyn Clock>) -> Admission {
        Admission {
            limits,
            gcra: Gcra::new(clock),
            polls: Arc::default(),
            address_header: address_header.map(|h| h.to_ascii_lowercase()),
        }
    }

    /// Who sent a request: the configured header's address (its last entry, the one the
    /// trusted proxy added), else the connection's peer.
    pub fn client(&self, headers: &axum::http::HeaderMap, peer: Option<SocketAddr>) -> Option<Client> {
        let named = self.address_header.as_ref().and_then(|h| headers.get(h.as_str())).and_then(|v| v.to_str().ok());
        let forwarded = named.and_then(|v| v.rsplit(',').next()).and_then(|a| a.trim().parse::<IpAddr>().ok());
        forwarded.or(peer.map(|p| p.ip())).map(Client::of)
    }

    /// Takes one write from `client`'s budget and, for a message, one from its
    /// conversation's (`key`): both or neither. `Err(wait)`: over budget for `wait` more.
    pub fn write(&self, client: Option<Client>, conversation: Option<&str>) -> Result<(), Duration> {
        let mut checks = Vec::with_capacity(2);
        if let Some(c) = client {
            checks.push(Check { key: format!("client {c}"), limit: self.limits.per_client });
        }
        if let Some(key) = conversation {
            checks.push(Check { key: format!("conversation {key}"), limit: self.limits.per_conversation });
        }
        self.gcra.acquire(&checks)
    }

    /// A place for one more long-poll of `client`, or `None` when it holds as many as it may.
    pub fn poll(&self, client: Option<Client>) -> Option<Poll> {
        if let Some(c) = client {
            let mut polls = self.polls.lock().unwrap_or_else(|e| e.into_inner());
            let n = polls.entry(c).or_default();
            if *n >= self.limits.polls_per_client {
                return None;
            }
            *n += 1;
        }
        Some(Poll { polls: self.polls.clone(), client })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use botc_runtime::clock::ManualClock;

    fn admission(limits: AdmissionLimits, header: Option<&str>) -> (Admission, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::at(0));
        (Admission::new(limits, header.map(String::from), clock.clone()), clock)
    }

    #[test]
    fn a_client_over_its_budget_waits_and_others_do_not() {
        let limits = AdmissionLimits { per_client: Limit::per_second(2), ..AdmissionLimits::default() };
        let (a, clock) = admission(limits, None);
        let (one, two) = (Some(Client::of([10, 0, 0, 1].into())), Some(Client::of([10, 0, 0, 2].into())));
        assert!(a.write(one, None).is_ok() && a.write(one, None).is_ok());
        let wait = a.write(one, None).expect_err("the third in the same instant");
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(500), "{wait:?}");
        assert!(a.write(two, None).is_ok(), "another client has its own budget");
        clock.advance(wait);
        assert!(a.write(one, None).is_ok(), "after the wait it is taken");
    }

    #[test]
    fn a_conversation_has_its_own_budget_and_a_refusal_charges_neither() {
        let limits = AdmissionLimits {
            per_client: Limit::per_second(3),
            per_conversation: Limit::per_second(1),
            ..AdmissionLimits::default()
        };
        let (a, _) = admission(limits, None);
        let c = Some(Client::of([10, 0, 0, 1].into()));
        assert!(a.write(c, Some("shop/web/a")).is_ok());
        assert!(a.write(c, Some("shop/web/a")).is_err(), "the conversation's budget is spent");
        // The refusal took nothing from the client: two more conversations still fit.
        assert!(a.write(c, Some("shop/web/b")).is_ok());
        assert!(a.write(c, Some("shop/web/c")).is_ok());
        assert!(a.write(c, Some("shop/web/d")).is_err(), "now the client's is spent");
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let (a, _) = admission(AdmissionLimits::default(), None);
        let peer = |ip: &str| Some(SocketAddr::new(ip.parse().expect("ip"), 5000));
        let headers = axum::http::HeaderMap::new();
        let x = a.client(&headers, peer("2001:db8:1:2:aaaa::1"));
        assert_eq!(x, a.client(&headers, peer("2001:db8:1:2:ffff:1:2:3")), "the same /64");
        assert_ne!(x, a.client(&headers, peer("2001:db8:1:3::1")), "another /64");
        assert_eq!(
            a.client(&headers, peer("::ffff:10.0.0.1")),
            a.client(&headers, peer("10.0.0.1")),
            "an IPv4-mapped address is its IPv4 address"
        );
        assert_eq!(x.map(|c| c.to_string()).as_deref(), Some("2001:db8:1:2::/64"));
    }

    #[test]
    fn the_address_header_is_read_only_when_configured_and_its_last_entry_counts() {
        let peer = Some(SocketAddr::new([127, 0, 0, 1].into(), 5000));
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("x-forwarded-for", "6.6.6.6, 203.0.113.9".parse().expect("value"));
        let (open, _) = admission(AdmissionLimits::default(), None);
        assert_eq!(open.client(&headers, peer), Some(Client::of([127, 0, 0, 1].into())), "not trusted by default");
        let (proxied, _) = admission(AdmissionLimits::default(), Some("X-Forwarded-For"));
        assert_eq!(proxied.client(&headers, peer), Some(Client::of([203, 0, 113, 9].into())));
        headers.insert("x-forwarded-for", "not an address".parse().expect("value"));
        assert_eq!(proxied.client(&headers, peer), Some(Client::of([127, 0, 0, 1].into())), "garbage: the peer");
    }

    #[test]
    fn long_polls_are_capped_per_client_and_given_back() {
        let (a, _) = admission(AdmissionLimits { polls_per_client: 2, ..AdmissionLimits::default() }, None);
        let c = Some(Client::of([10, 0, 0, 1].into()));
        let first = a.poll(c).expect("first");
        let _second = a.poll(c).expect("second");
        assert!(a.poll(c).is_none(), "a third is refused");
        assert!(a.poll(Some(Client::of([10, 0, 0, 2].into()))).is_some(), "another client's is not");
        drop(first);
        assert!(a.poll(c).is_some(), "a finished poll gives its place back");
    }
}
