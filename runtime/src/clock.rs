//! Time, passed in. Everything in botc that needs the time of day, a monotonic reading or a
//! sleep asks a [`Clock`]; only [`SystemClock`] reads the real one (clippy's
//! `disallowed-methods` bans `SystemTime::now` and `Instant::now` elsewhere). Tests use
//! [`ManualClock`], whose time moves only when the test says so, so nothing in them waits
//! on real time or races it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

pub type Sleep<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

pub trait Clock: Send + Sync {
    /// Wall-clock time: milliseconds since the unix epoch.
    fn unix_ms(&self) -> u64;
    /// Monotonic time since an arbitrary start (for rate limits and back-off).
    fn monotonic(&self) -> Duration;
    /// Completes once `d` has passed on this clock.
    fn sleep(&self, d: Duration) -> Sleep<'_>;

    /// Wall-clock time in unix seconds (what events, timers and the VM use).
    fn unix(&self) -> u64 {
        self.unix_ms() / 1000
    }
}

/// The real clock: the system's time of day, a monotonic instant, and tokio's timer.
pub struct SystemClock {
    start: std::time::Instant,
}

impl Default for SystemClock {
    fn default() -> Self {
        #[allow(clippy::disallowed_methods)] // the one place that reads the real clock
        SystemClock { start: std::time::Instant::now() }
    }
}

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one place that reads the real clock
    fn unix_ms(&self) -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
    }

    fn monotonic(&self) -> Duration {
        self.start.elapsed()
    }

    fn sleep(&self, d: Duration) -> Sleep<'_> {
        Box::pin(tokio::time::sleep(d))
    }
}

/// A clock that moves only when told to ([`ManualClock::advance`]); sleepers wake when it
/// passes their deadline.
pub struct ManualClock {
    inner: Mutex<Manual>,
}

struct Manual {
    /// Milliseconds since the unix epoch.
    unix_ms: u64,
    /// Milliseconds since the clock was made.
    elapsed_ms: u64,
    sleepers: Vec<Waker>,
}

impl ManualClock {
    /// A clock that reads `unix_ms` now.
    pub fn at(unix_ms: u64) -> ManualClock {
        ManualClock { inner: Mutex::new(Manual { unix_ms, elapsed_ms: 0, sleepers: Vec::new() }) }
    }

    /// Moves time on by `d` and wakes every sleeper whose time has come.
    pub fn advance(&self, d: Duration) {
        let wakers = {
            let mut m = self.lock();
            let ms = d.as_millis() as u64;
            m.unix_ms += ms;
            m.elapsed_ms += ms;
            std::mem::take(&mut m.sleepers)
        };
        for w in wakers {
            w.wake();
        }
    }

    /// How many sleeps are waiting for time to move (so a test can wait until a role is
    /// parked on the clock before advancing it).
    pub fn sleepers(&self) -> usize {
        self.lock().sleepers.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Manual> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Clock for ManualClock {
    fn unix_ms(&self) -> u64 {
        self.lock().unix_ms
    }

    fn monotonic(&self) -> Duration {
        Duration::from_millis(self.lock().elapsed_ms)
    }

    fn sleep(&self, d: Duration) -> Sleep<'_> {
        let until = self.lock().elapsed_ms.saturating_add(d.as_millis() as u64);
        Box::pin(ManualSleep { clock: self, until })
    }
}

struct ManualSleep<'a> {
    clock: &'a ManualClock,
    until: u64,
}

impl Future for ManualSleep<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut m = self.clock.lock();
        if m.elapsed_ms >= self.until {
            return Poll::Ready(());
        }
        // One waker per task is enough: waking it polls every sleep the task holds.
        if !m.sleepers.iter().any(|w| w.will_wake(cx.waker())) {
            m.sleepers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_sleep_ends_when_the_clock_passes_it_and_not_before() {
        let clock = std::sync::Arc::new(ManualClock::at(1_000));
        let c = clock.clone();
        let sleeper = tokio::spawn(async move { c.sleep(Duration::from_secs(2)).await });
        while clock.sleepers() == 0 {
            tokio::task::yield_now().await;
        }
        clock.advance(Duration::from_secs(1));
        // Woken, it finds its time has not come and waits again.
        while clock.sleepers() == 0 {
            tokio::task::yield_now().await;
        }
        assert!(!sleeper.is_finished());
        clock.advance(Duration::from_secs(1));
        sleeper.await.expect("the sleep ends");
        assert_eq!((clock.unix(), clock.monotonic()), (3, Duration::from_secs(2)));
    }
}
