//! Keeps roles running. Each role runs in its own task under a supervisor: when it panics or
//! returns while botc is not stopping, the supervisor logs it, counts it
//! (`botc_role_restarts_total`), marks the role down (so `/readyz` says which) and starts it
//! again after a back-off. Nothing a role holds in memory is needed to restart it: its work
//! is in the store.
//!
//! Work that one process at a time may do is held under a lease ([`Holding::hold`]), so a
//! second copy of a role (another process, or this one restarted) waits or takes over
//! instead of doing the work twice.

use super::Metrics;
use super::ports::{Lease, Leases, StoreError, Work};
use botc_runtime::clock::Clock;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// Which roles are down now, and for how many failures in a row.
#[derive(Default)]
pub struct Health {
    down: Mutex<BTreeMap<String, u32>>,
}

impl Health {
    /// The roles that are down, each with its failures in a row, for `/readyz`.
    pub fn down(&self) -> Vec<String> {
        let down = self.down.lock().unwrap_or_else(|e| e.into_inner());
        down.iter().map(|(role, n)| format!("{role} (failed {n} time(s) in a row)")).collect()
    }

    fn set(&self, role: &str, failures: Option<u32>) {
        let mut down = self.down.lock().unwrap_or_else(|e| e.into_inner());
        match failures {
            Some(n) => down.insert(role.to_string(), n),
            None => down.remove(role),
        };
    }
}

/// How a role ends when botc stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnStop {
    /// The role watches the stop signal itself and finishes what it is doing (workers
    /// finish their batch): wait for it.
    Finish,
    /// The role holds nothing unfinished worth waiting for: abort it.
    Abort,
}

/// What a supervisor needs besides the role.
#[derive(Clone)]
pub struct Supervision {
    pub health: Arc<Health>,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    pub stop: watch::Receiver<bool>,
}

/// Completes when `stop` turns true (or its sender is gone).
pub async fn until_stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Runs the role `start` makes, again and again, until `stop` turns true. A role that ran
/// for a minute or more before failing starts again at the shortest back-off.
pub async fn supervise<F, Fut>(role: String, on_stop: OnStop, s: Supervision, start: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut stop = s.stop.clone();
    let mut failures = 0u32;
    loop {
        if *stop.borrow() {
            return;
        }
        let started = s.clock.monotonic();
        let mut task = tokio::spawn(start());
        if failures > 0 {
            // Up again; a failure soon after marks it down again.
            s.health.set(&role, None);
        }
        let ended = tokio::select! {
            r = &mut task => r,
            _ = until_stopped(&mut stop) => {
                if on_stop == OnStop::Abort {
                    task.abort();
                }
                let _ = task.await;
                return;
            }
        };
        if *stop.borrow() {
            return;
        }
        if s.clock.monotonic().saturating_sub(started) >= std::time::Duration::from_secs(60) {
            failures = 0;
        }
        failures += 1;
        match ended {
            Ok(()) => tracing::error!(role = %role, "a role stopped by itself; restarting it"),
            Err(e) if e.is_panic() => {
                let payload = e.into_panic();
                let why = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(no message)".into());
                tracing::error!(role = %role, panic = %why, "a role panicked; restarting it");
            }
            Err(e) => tracing::error!(role = %role, error = %e, "a role failed; restarting it"),
        }
        s.metrics.restarted(&role);
        s.health.set(&role, Some(failures));
        tokio::select! {
            _ = s.clock.sleep(super::backoff(failures)) => {}
            _ = until_stopped(&mut stop) => return,
        }
    }
}

/// How long a lease lasts without renewal: how long work stays undone after its holder
/// died without a word, before another process takes it.
pub const LEASE_TTL: std::time::Duration = std::time::Duration::from_secs(10);

/// What a role needs to hold a lease.
#[derive(Clone)]
pub struct Holding {
    pub leases: Arc<dyn Leases>,
    /// This process, among the holders.
    pub holder: Arc<str>,
    pub clock: Arc<dyn Clock>,
}

impl Holding {
    /// Runs `run` with a lease on `work` for as long as it is held: first waits until the
    /// work is free (another process may be doing it), then renews the lease every third of
    /// its time. When the lease is lost, `run` is dropped and the lease sought again; when
    /// `run` returns (asked to stop, or told it was fenced) and `stop` is set, the lease is
    /// given up so a successor need not wait for it to expire.
    pub async fn hold<F, Fut>(&self, work: Work, mut stop: watch::Receiver<bool>, mut run: F)
    where
        F: FnMut(Lease) -> Fut,
        Fut: Future<Output = ()>,
    {
        let every = LEASE_TTL / 3;
        let mut failures = 0;
        loop {
            if *stop.borrow() {
                return;
            }
            let lease = match self.leases.acquire(work.clone(), &self.holder, self.clock.unix_ms(), LEASE_TTL).await {
                Ok(Some(lease)) => lease,
                Ok(None) => {
                    // Held by another process: wait for it to give up or go quiet.
                    tokio::select! {
                        _ = self.clock.sleep(every) => {}
                        _ = until_stopped(&mut stop) => return,
                    }
                    continue;
                }
                Err(e) => {
                    failures += 1;
                    tracing::error!(work = %work, error = %e, "cannot take a lease; retrying");
                    tokio::select! {
                        _ = self.clock.sleep(super::backoff(failures)) => {}
                        _ = until_stopped(&mut stop) => return,
                    }
                    continue;
                }
            };
            failures = 0;
            tracing::debug!(work = %work, epoch = lease.epoch, "lease taken");
            let running = run(lease.clone());
            tokio::pin!(running);
            loop {
                tokio::select! {
                    _ = &mut running => {
                        if *stop.borrow() {
                            if let Err(e) = self.leases.release(&lease).await {
                                tracing::warn!(work = %work, error = %e, "cannot give up a lease; it expires by itself");
                            }
                            return;
                        }
                        break;
                    }
                    _ = self.clock.sleep(every) => {
                        match self.leases.renew(&lease, self.clock.unix_ms(), LEASE_TTL).await {
                            Ok(()) => {}
                            Err(StoreError::Fenced(_)) => {
                                tracing::warn!(work = %work, "lease lost to another process; stopping this work");
                                break;
                            }
                            // Not lost yet: the store will say so if it is.
                            Err(e) => tracing::error!(work = %work, error = %e, "cannot renew a lease"),
                        }
                    }
                }
            }
        }
    }
}
