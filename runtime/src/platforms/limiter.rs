//! Rate limits as GCRA (the generic cell rate algorithm: a token bucket kept as one
//! "theoretical arrival time" per key, no background refill). A send usually has to pass
//! several limits at once (Telegram: 30/s per bot and 1/s per chat); [`Gcra::acquire`]
//! checks them all and writes them all, or writes nothing. A platform's 429 is written back
//! with [`Gcra::penalize`], so every sender for that key waits as long as the platform asked.
//!
//! Time comes from a [`Clock`], so tests drive it by hand.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

pub use crate::clock::Clock;
use std::sync::Arc;

/// At most `rate` sends per `period`, of which up to `burst` may go at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub rate: u32,
    pub period: Duration,
    pub burst: u32,
}

impl Limit {
    /// `n` per second, bursts of `n`.
    pub fn per_second(n: u32) -> Limit {
        Limit { rate: n, period: Duration::from_secs(1), burst: n }
    }

    /// Time between two sends at the steady rate.
    fn interval(&self) -> Duration {
        self.period / self.rate.max(1)
    }

    /// How far ahead of now the arrival time may run.
    fn tolerance(&self) -> Duration {
        self.interval() * self.burst.max(1)
    }
}

/// One limit of one send: the key names whose budget it is (`telegram:BOT:chat:ID`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub key: String,
    pub limit: Limit,
}

pub struct Gcra {
    clock: Arc<dyn Clock>,
    /// Theoretical arrival time per key, and how many keys there may be before the next sweep.
    tat: Mutex<Tats>,
}

#[derive(Default)]
struct Tats {
    by_key: HashMap<String, Duration>,
    sweep_at: usize,
}

/// Keys are forgotten once their arrival time has passed. A sweep runs when the table has
/// grown to this many keys, or to twice what the last sweep kept: so each key costs O(1)
/// sweeping however many keys are live at once (a sweep that keeps most of them waits for
/// the table to double).
const SWEEP_AT: usize = 100_000;

impl Gcra {
    pub fn new(clock: Arc<dyn Clock>) -> Gcra {
        Gcra { clock, tat: Mutex::new(Tats { by_key: HashMap::new(), sweep_at: SWEEP_AT }) }
    }

    /// Takes one send's budget from every check, or from none: `Err(wait)` says how long
    /// until all of them would allow it.
    pub fn acquire(&self, checks: &[Check]) -> Result<(), Duration> {
        let now = self.clock.monotonic();
        let mut tat = self.tat.lock().unwrap_or_else(|e| e.into_inner());
        let mut wait = Duration::ZERO;
        let mut next = Vec::with_capacity(checks.len());
        for c in checks {
            let current = tat.by_key.get(&c.key).copied().unwrap_or(now).max(now);
            let new_tat = current + c.limit.interval();
            let allow_at = new_tat.saturating_sub(c.limit.tolerance());
            if allow_at > now {
                wait = wait.max(allow_at - now);
            }
            next.push(new_tat);
        }
        if wait > Duration::ZERO {
            return Err(wait);
        }
        if tat.by_key.len() >= tat.sweep_at {
            tat.by_key.retain(|_, t| *t > now);
            tat.sweep_at = SWEEP_AT.max(2 * tat.by_key.len());
        }
        for (c, t) in checks.iter().zip(next) {
            tat.by_key.insert(c.key.clone(), t);
        }
        Ok(())
    }

    /// The platform said to wait `retry_after`: no send passes these checks before then.
    pub fn penalize(&self, checks: &[Check], retry_after: Duration) {
        let now = self.clock.monotonic();
        let mut tat = self.tat.lock().unwrap_or_else(|e| e.into_inner());
        for c in checks {
            // The next send is allowed exactly when the wait is over.
            let blocked = (now + retry_after + c.limit.tolerance()).saturating_sub(c.limit.interval());
            let t = tat.by_key.entry(c.key.clone()).or_insert(now);
            *t = (*t).max(blocked);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    /// A clock the test moves, to `ms` milliseconds after it started.
    struct Fake(Arc<ManualClock>);

    impl Default for Fake {
        fn default() -> Self {
            Fake(Arc::new(ManualClock::at(0)))
        }
    }

    impl Fake {
        fn at(&self, ms: u64) {
            let now = self.0.monotonic();
            self.0.advance(Duration::from_millis(ms).saturating_sub(now));
        }
    }

    impl std::ops::Deref for Fake {
        type Target = Arc<ManualClock>;
        fn deref(&self) -> &Self::Target {
            &self.0
        }
    }

    fn check(key: &str, limit: Limit) -> Check {
        Check { key: key.into(), limit }
    }

    /// Allowed sends out of `n` attempts at `times` (ms), one key at `limit`.
    fn run(limit: Limit, times: &[u64]) -> Vec<bool> {
        let clock = Fake::default();
        let g = Gcra::new(clock.0.clone());
        times
            .iter()
            .map(|&t| {
                clock.at(t);
                g.acquire(&[check("k", limit)]).is_ok()
            })
            .collect()
    }

    #[test]
    fn a_table_of_bursts_steady_rates_and_boundaries() {
        let ten = Limit::per_second(10);
        let cases: &[(&str, Limit, Vec<u64>, usize)] = &[
            ("a burst takes the whole budget at once", ten, vec![0; 20], 10),
            ("a steady 10/s always passes", ten, (0..50).map(|i| i * 100).collect(), 50),
            // Sends by time t: at most (t + tolerance) / interval = (1950 + 1000) / 100.
            ("20/s for 2 s: the burst, then 10/s", ten, (0..40).map(|i| i * 50).collect(), 29),
            // Fixed windows let 2N through across a boundary; GCRA does not.
            ("20 tries in 62 ms across a second boundary", ten, (0..20).map(|i| 969 + i * 3).collect(), 10),
            ("1/s per chat: bursts of one", Limit::per_second(1), vec![0, 10, 999, 1000, 1500, 2000], 3),
            (
                "bursts smaller than the rate",
                Limit { rate: 30, period: Duration::from_secs(1), burst: 5 },
                vec![0; 10],
                5,
            ),
        ];
        for (name, limit, times, allowed) in cases {
            let got = run(*limit, times).iter().filter(|&&ok| ok).count();
            assert_eq!(got, *allowed, "{name}");
        }
    }

    #[test]
    fn a_denied_send_says_how_long_to_wait_and_then_passes() {
        let clock = Fake::default();
        let g = Gcra::new(clock.0.clone());
        let one = [check("chat", Limit::per_second(1))];
        assert_eq!(g.acquire(&one), Ok(()));
        clock.at(250);
        assert_eq!(g.acquire(&one), Err(Duration::from_millis(750)));
        clock.at(999);
        assert_eq!(g.acquire(&one), Err(Duration::from_millis(1)));
        clock.at(1000);
        assert_eq!(g.acquire(&one), Ok(()));
    }

    #[test]
    fn several_limits_are_all_or_nothing() {
        let clock = Fake::default();
        let g = Gcra::new(clock.0.clone());
        let global = Limit::per_second(30);
        let chat = Limit::per_second(1);
        let send = |c: u32| [check("tg:bot", global), check(&format!("tg:bot:chat:{c}"), chat)];
        // Five sends to one chat: one passes.
        let one_chat: Vec<bool> = (0..5).map(|_| g.acquire(&send(1)).is_ok()).collect();
        assert_eq!(one_chat, [true, false, false, false, false]);
        // 40 sends to distinct chats: the bot's 30/s (one already used) lets 29 through.
        let many = (2..42).filter(|&c| g.acquire(&send(c)).is_ok()).count();
        assert_eq!(many, 29);
        // A send the global limit denied took nothing from its chat: once the global budget
        // is back, that chat can send at once.
        clock.at(1000);
        assert_eq!(g.acquire(&send(41)), Ok(()), "chat 41 was denied globally and kept its budget");
    }

    #[test]
    fn a_429_blocks_the_key_for_exactly_its_retry_after() {
        let clock = Fake::default();
        let g = Gcra::new(clock.0.clone());
        let limits = [check("discord:bot", Limit::per_second(50))];
        assert_eq!(g.acquire(&limits), Ok(()));
        g.penalize(&limits, Duration::from_millis(2500));
        clock.at(1);
        assert_eq!(g.acquire(&limits), Err(Duration::from_millis(2499)));
        clock.at(2500);
        assert_eq!(g.acquire(&limits), Ok(()));
        // A shorter penalty never shortens a longer one.
        g.penalize(&limits, Duration::from_secs(10));
        g.penalize(&limits, Duration::from_secs(1));
        clock.at(11_000);
        assert!(g.acquire(&limits).is_err());
        clock.at(12_500);
        assert_eq!(g.acquire(&limits), Ok(()));
    }

    #[test]
    fn in_any_window_the_sends_never_exceed_rate_plus_burst() {
        // Attempts every millisecond for 5 s at 10/s: count passes in every sliding second.
        let clock = Fake::default();
        let g = Gcra::new(clock.0.clone());
        let limit = [check("k", Limit::per_second(10))];
        let mut passed = Vec::new();
        for ms in 0..5000 {
            clock.at(ms);
            if g.acquire(&limit).is_ok() {
                passed.push(ms);
            }
        }
        for start in 0..4000 {
            let n = passed.iter().filter(|&&t| t >= start && t < start + 1000).count();
            // The first second holds the burst and the steady sends of that second.
            assert!(n <= 20, "{n} sends in [{start}, {start}+1000)");
            if start >= 1000 {
                assert!(n <= 10, "{n} sends in [{start}, {start}+1000) after the burst");
            }
        }
    }
}

#[cfg(test)]
mod sweep {
    use super::*;
    use crate::clock::ManualClock;

    /// Keys whose budget is whole again are forgotten; while more than `SWEEP_AT` keys are
    /// live at once, a sweep waits for the table to double, so it is not run on every call.
    #[test]
    fn spent_keys_are_forgotten_and_live_ones_are_not_swept_on_every_call() {
        let clock = Arc::new(ManualClock::at(0));
        let g = Gcra::new(clock.clone());
        let limit = Limit { rate: 1, period: Duration::from_secs(60), burst: 1 };
        let take = |k: usize| g.acquire(&[Check { key: format!("k{k}"), limit }]).expect("a new key has budget");
        let state = || {
            let t = g.tat.lock().unwrap();
            (t.by_key.len(), t.sweep_at)
        };
        (0..=SWEEP_AT).for_each(take);
        assert_eq!(state(), (SWEEP_AT + 1, 2 * SWEEP_AT), "a sweep that kept every live key waits for twice as many");
        (SWEEP_AT + 1..2 * SWEEP_AT - 1).for_each(take);
        assert_eq!(state().0, 2 * SWEEP_AT - 1, "no sweep before the table doubles");
        // A minute on, every key's budget is whole again: the next sweep forgets them all.
        clock.advance(Duration::from_secs(61));
        take(2 * SWEEP_AT);
        assert_eq!(state().0, 2 * SWEEP_AT, "the table has doubled");
        take(2 * SWEEP_AT + 1);
        assert_eq!(state(), (2, SWEEP_AT), "only the keys taken since are kept");
    }
}
