//! Send budgets shared by every dispatcher process, in Redis: the same GCRA as
//! `botc_runtime::platforms::limiter::Gcra` (one "theoretical arrival time" per key), as one
//! Lua script per send, so all of a send's checks pass together or none is charged, and two
//! dispatchers of one bot together never exceed its budget. Time is the Redis server's
//! (`TIME`), one clock for every dispatcher.
//!
//! A script touches one hash tag: a send's keys are stored under its first check's key (the
//! dispatcher puts the bot's budget first, then the conversation's), so the keys of one bot
//! live in one slot.

use crate::redis::Redis;
use botc_runtime::platforms::limiter::Check;
use botc_serve::ports::{Fut, RateLimiter};
use redis::Script;
use std::sync::LazyLock;
use std::time::Duration;

/// How long a sender waits when Redis cannot say: never a pass without the budget.
const UNKNOWN_WAIT: Duration = Duration::from_secs(1);

/// KEYS: the checks' keys; ARGV: interval and tolerance of each, in microseconds. 0 when the
/// send may go (every key charged), else microseconds to wait (nothing charged).
static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local wait = 0
local new = {}
for i, k in ipairs(KEYS) do
  local interval, tolerance = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local tat = math.max(tonumber(redis.call('GET', k) or '0'), now)
  new[i] = tat + interval
  local allow = new[i] - tolerance
  if allow > now then wait = math.max(wait, allow - now) end
end
if wait > 0 then return wait end
for i, k in ipairs(KEYS) do
  redis.call('SET', k, string.format('%d', new[i]), 'PX', math.floor((new[i] - now) / 1000) + 1)
end
return 0
"#,
    )
});

/// KEYS: the checks' keys; ARGV: the wait the platform asked for, then interval and
/// tolerance of each check, in microseconds.
static PENALIZE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local retry = tonumber(ARGV[1])
for i, k in ipairs(KEYS) do
  local interval, tolerance = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local blocked = now + retry + tolerance - interval
  local tat = math.max(tonumber(redis.call('GET', k) or '0'), blocked)
  redis.call('SET', k, string.format('%d', tat), 'PX', math.floor((tat - now) / 1000) + 1)
end
return 1
"#,
    )
});

pub struct RedisLimiter {
    pub redis: Redis,
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

impl RedisLimiter {
    fn keys(&self, checks: &[Check]) -> Vec<String> {
        let tag = checks.first().map_or("", |c| c.key.as_str());
        checks.iter().map(|c| self.redis.keys.limit(tag, &c.key)).collect()
    }
}

impl RateLimiter for RedisLimiter {
    fn acquire<'a>(&'a self, checks: &'a [Check]) -> Fut<'a, Result<(), Duration>> {
        Box::pin(async move {
            if checks.is_empty() {
                return Ok(());
            }
            let mut inv = ACQUIRE.prepare_invoke();
            for k in self.keys(checks) {
                inv.key(k);
            }
            for c in checks {
                let interval = c.limit.period / c.limit.rate.max(1);
                inv.arg(micros(interval)).arg(micros(interval * c.limit.burst.max(1)));
            }
            match inv.invoke_async::<u64>(&mut self.redis.conn.clone()).await {
                Ok(0) => Ok(()),
                Ok(us) => Err(Duration::from_micros(us)),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot reach the shared send budgets; waiting");
                    Err(UNKNOWN_WAIT)
                }
            }
        })
    }

    fn penalize<'a>(&'a self, checks: &'a [Check], retry_after: Duration) -> Fut<'a, ()> {
        Box::pin(async move {
            if checks.is_empty() {
                return;
            }
            let mut inv = PENALIZE.prepare_invoke();
            for k in self.keys(checks) {
                inv.key(k);
            }
            inv.arg(micros(retry_after));
            for c in checks {
                let interval = c.limit.period / c.limit.rate.max(1);
                inv.arg(micros(interval)).arg(micros(interval * c.limit.burst.max(1)));
            }
            if let Err(e) = inv.invoke_async::<i64>(&mut self.redis.conn.clone()).await {
                tracing::warn!(error = %e, "cannot record a platform's 429 in the shared send budgets");
            }
        })
    }
}
