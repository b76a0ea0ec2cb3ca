//! Everything botc keeps in Redis, as calls that each make one round trip (or a few at once):
//! leases and partition positions, sessions with compare-and-set, the web transcripts, the
//! reply queues, timers, the outbox, the history queue, quarantined sessions and the
//! platform-redelivery marks.
//!
//! Key layout. Every key starts with the configured prefix (`botc:` by default). Keys that a
//! script must touch together share a Redis Cluster hash tag, so each script stays in one
//! slot:
//! - `{c:CONVERSATION}:s` (session: `v` version, `r` record), `:t` (transcript entries, a
//!   list) and `:ti` (transcript entry ids). They expire together after the idle time.
//! - `{pN}:lease`, `{pN}:offset`: bus partition N's lease and committed position.
//! - `{r:BOT}:lease`, `:items`, `:order`, `:ids`, `:pid`, `:done`, `:next`: a bot's replies,
//!   and the same under `{outbox}` for flows' http requests (one queue mechanism for both).
//! - `{timers}:lease`, and `{tN}:due`, `{tN}:ev` for N in 0..16: timers, sharded so the
//!   timers of many conversations spread over the cluster.
//! - `{history}:q`, `:ids`, `:next`: history not yet in Postgres.
//! - `quarantine` (a list), `d:EVENT` (redelivery marks), `replies:bots` (bots with replies),
//!   `members:GROUP` (the live processes of a role, for sharing its work); the channel
//!   `wake` carries wake-ups between processes (`wake.rs`).
//! - `{l:FIRST}:KEY`: send budgets (`limiter.rs`), under the tag of their send's first one.
//!
//! A conversation key may hold any character; `{`, `}` and `%` are escaped, so a key never
//! changes which part of it is the hash tag.
//!
//! Numbers travel as decimal strings and are compared as strings or integers below 2^53,
//! which is as far as Lua's numbers are exact.

use crate::conn::Conn;
use botc_serve::Entry;
use botc_serve::Event;
use botc_serve::ports::*;
use botc_serve::records::*;
use redis::cluster_routing::RoutingInfo;
use redis::{Script, Value};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

/// Timer shards: enough to spread over a large cluster's masters, few enough to read all at
/// every tick.
pub const TIMER_SHARDS: usize = 16;
/// Delivered reply ids and completed outbox ids remembered per queue, so a batch done again
/// after a crash cannot queue them a second time.
const KEEP_DONE: u64 = 10_000;

fn io(e: redis::RedisError) -> StoreError {
    StoreError::Io(format!("redis: {e}"))
}

/// `{`, `}` and `%` percent-escaped.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '{' => out.push_str("%7B"),
            '}' => out.push_str("%7D"),
            '%' => out.push_str("%25"),
            c => out.push(c),
        }
    }
    out
}

fn unesc(s: &str) -> String {
    s.replace("%7B", "{").replace("%7D", "}").replace("%25", "%")
}

/// `s` with SCAN's glob characters escaped.
fn glob(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// FNV-1a, stable across builds (timer shards are stored by it).
fn shard_of(key: &str) -> usize {
    botc_serve::partition_of(key, TIMER_SHARDS)
}

#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys { prefix: prefix.to_string() }
    }
    fn conv(&self, key: &str, part: &str) -> String {
        format!("{}{{c:{}}}:{part}", self.prefix, esc(key))
    }
    fn tag(&self, work: &Work) -> String {
        match work {
            Work::Partition(p) => format!("p{p}"),
            Work::Replies(bot) => format!("r:{}", esc(bot)),
            Work::Timers => "timers".into(),
            Work::Outbox => "outbox".into(),
        }
    }
    fn lease(&self, work: &Work) -> String {
        format!("{}{{{}}}:lease", self.prefix, self.tag(work))
    }
    fn offset(&self, partition: usize) -> String {
        format!("{}{{p{partition}}}:offset", self.prefix)
    }
    fn replies(&self, bot: &str, part: &str) -> String {
        format!("{}{{r:{}}}:{part}", self.prefix, esc(bot))
    }
    fn outbox(&self, part: &str) -> String {
        format!("{}{{outbox}}:{part}", self.prefix)
    }
    fn timers(&self, shard: usize, part: &str) -> String {
        format!("{}{{t{shard}}}:{part}", self.prefix)
    }
    fn history(&self, part: &str) -> String {
        format!("{}{{history}}:{part}", self.prefix)
    }
    /// A key (or channel) name outside any hash tag.
    pub fn plain_name(&self, name: &str) -> String {
        self.plain(name)
    }
    fn plain(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }
    /// A send budget's key, in the hash tag of its send's first budget.
    pub(crate) fn limit(&self, tag: &str, key: &str) -> String {
        format!("{}{{l:{}}}:{}", self.prefix, esc(tag), esc(key))
    }
    /// The conversation key of a session key.
    fn conversation_of(&self, session_key: &str) -> Option<String> {
        let inner = session_key.strip_prefix(&self.prefix)?.strip_prefix("{c:")?.strip_suffix("}:s")?;
        Some(unesc(inner))
    }
    fn dedupe(&self, id: &str) -> String {
        format!("{}d:{}", self.prefix, esc(id))
    }
}

macro_rules! script {
    ($name:ident, $src:expr) => {
        static $name: LazyLock<Script> = LazyLock::new(|| Script::new(&format!("{HELD}{}", $src)));
    };
}

/// Every script may check a lease: the epoch in `k` must be `e`.
const HELD: &str = "local function held(k, e) return redis.call('HGET', k, 'epoch') == e end\n";

script!(
    ACQUIRE,
    r#"
local h = redis.call('HMGET', KEYS[1], 'holder', 'epoch', 'until')
local now = tonumber(ARGV[2])
if h[1] and h[1] ~= ARGV[1] and tonumber(h[3]) > now then return false end
local epoch = (tonumber(h[2]) or 0) + 1
redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'epoch', string.format('%d', epoch),
  'until', string.format('%d', now + tonumber(ARGV[3])))
return epoch
"#
);
script!(
    RENEW,
    r#"
if not held(KEYS[1], ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'until', string.format('%d', tonumber(ARGV[2]) + tonumber(ARGV[3])))
return 1
"#
);
script!(
    RELEASE,
    r#"
if not held(KEYS[1], ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'until', '0')
return 1
"#
);
script!(
    MEMBERS,
    r#"
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return redis.call('ZCARD', KEYS[1])
"#
);
script!(
    HOLDS,
    r#"
if not held(KEYS[1], ARGV[1]) then return 0 end
return 1
"#
);
script!(
    COMMITTED,
    r#"
if not held(KEYS[1], ARGV[1]) then return -1 end
return tonumber(redis.call('GET', KEYS[2]) or '0')
"#
);
script!(
    ADVANCE,
    r#"
if not held(KEYS[1], ARGV[1]) then return -1 end
local now = tonumber(redis.call('GET', KEYS[2]) or '0')
local next = tonumber(ARGV[2])
if next > now then redis.call('SET', KEYS[2], ARGV[2]) return next end
return now
"#
);
script!(
    SESSION_CAS,
    r#"
if ARGV[1] == 'absent' then
  if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
elseif ARGV[1] == 'version' then
  if redis.call('HGET', KEYS[1], 'v') ~= ARGV[2] then return 0 end
else
  if redis.call('HGET', KEYS[1], 'r') ~= ARGV[2] then return 0 end
end
redis.call('HSET', KEYS[1], 'v', ARGV[3], 'r', ARGV[4])
if ARGV[5] ~= '0' then redis.call('PEXPIRE', KEYS[1], ARGV[5]) end
return 1
"#
);
script!(
    TRANSCRIPT_ADD,
    r#"
local n = 0
for i = 2, #ARGV, 2 do
  if redis.call('HSETNX', KEYS[2], ARGV[i], '1') == 1 then
    redis.call('RPUSH', KEYS[1], ARGV[i + 1])
    n = n + 1
  end
end
if ARGV[1] ~= '0' then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  redis.call('PEXPIRE', KEYS[2], ARGV[1])
end
return n
"#
);
// A queue (a bot's replies, the outbox): items by position in insertion order, each with an
// id; an id already waiting or done lately is not queued again. KEYS: items (position →
// bytes), order (positions), ids (id → position), pid (position → id), done (ids lately
// done), next (the last position), lease.
script!(
    QUEUE_ADD,
    r#"
local n = 0
for i = 1, #ARGV, 2 do
  local id = ARGV[i]
  if redis.call('HEXISTS', KEYS[3], id) == 0 and not redis.call('ZSCORE', KEYS[5], id) then
    local pos = redis.call('INCR', KEYS[6])
    redis.call('HSET', KEYS[1], pos, ARGV[i + 1])
    redis.call('ZADD', KEYS[2], pos, pos)
    redis.call('HSET', KEYS[3], id, pos)
    redis.call('HSET', KEYS[4], pos, id)
    n = n + 1
  end
end
return n
"#
);
// The oldest `ARGV[2]` items under the lease: {1, position, bytes, ...}, or {0} when fenced.
script!(
    QUEUE_READ,
    r#"
if not held(KEYS[7], ARGV[1]) then return {0} end
local out = {1}
for _, pos in ipairs(redis.call('ZRANGE', KEYS[2], 0, tonumber(ARGV[2]) - 1)) do
  table.insert(out, pos)
  table.insert(out, redis.call('HGET', KEYS[1], pos) or '')
end
return out
"#
);
// The position of id `ARGV[2]` under the lease (0: not waiting), or -1 when fenced.
script!(
    QUEUE_FIND,
    r#"
if not held(KEYS[7], ARGV[1]) then return -1 end
return tonumber(redis.call('HGET', KEYS[3], ARGV[2]) or '0')
"#
);
// Item at position `ARGV[2]` done: forgotten, its id remembered among the last `ARGV[3]`.
// Under the lease unless `ARGV[1]` is empty. 1, or 0 when fenced.
script!(
    QUEUE_DONE,
    r#"
if ARGV[1] ~= '' and not held(KEYS[7], ARGV[1]) then return 0 end
local pos = ARGV[2]
local id = redis.call('HGET', KEYS[4], pos)
redis.call('HDEL', KEYS[1], pos)
redis.call('ZREM', KEYS[2], pos)
redis.call('HDEL', KEYS[4], pos)
if id then
  redis.call('HDEL', KEYS[3], id)
  redis.call('ZADD', KEYS[5], pos, id)
  local c = redis.call('ZCARD', KEYS[5])
  if c > tonumber(ARGV[3]) then redis.call('ZREMRANGEBYRANK', KEYS[5], 0, c - tonumber(ARGV[3]) - 1) end
end
return 1
"#
);
script!(
    TIMERS_CHANGE,
    r#"
local i = 1
while i <= #ARGV do
  if ARGV[i] == 'S' then
    redis.call('ZADD', KEYS[1], ARGV[i + 2], ARGV[i + 1])
    redis.call('HSET', KEYS[2], ARGV[i + 1], ARGV[i + 3])
    i = i + 4
  else
    redis.call('ZREM', KEYS[1], ARGV[i + 1])
    redis.call('HDEL', KEYS[2], ARGV[i + 1])
    i = i + 2
  end
end
return 1
"#
);
script!(
    TIMERS_DUE,
    r#"
local out = {}
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
for i = 1, #due, 2 do
  table.insert(out, due[i])
  table.insert(out, due[i + 1])
  table.insert(out, redis.call('HGET', KEYS[2], due[i]) or '')
end
return out
"#
);
script!(
    TIMERS_FIRED,
    r#"
local n = 0
for i = 1, #ARGV, 2 do
  local at = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if at and tonumber(at) == tonumber(ARGV[i + 1]) then
    redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('HDEL', KEYS[2], ARGV[i])
    n = n + 1
  end
end
return n
"#
);
// Records not shipped yet, once per id: three commands a record.
script!(
    HISTORY_ADD,
    r#"
local n = 0
for i = 1, #ARGV, 2 do
  local id = ARGV[i]
  if redis.call('HSETNX', KEYS[2], id, '1') == 1 then
    local pos = redis.call('INCR', KEYS[3])
    redis.call('RPUSH', KEYS[1], string.format('%d %d ', pos, #id) .. id .. ARGV[i + 1])
    n = n + 1
  end
end
return n
"#
);
// Forgets the records up to position ARGV[1]: three commands per thousand records.
script!(
    HISTORY_SHIPPED,
    r#"
local n = 0
while true do
  local items = redis.call('LRANGE', KEYS[1], 0, 999)
  local ids = {}
  local k = 0
  for _, item in ipairs(items) do
    local _, stop, pos, len = string.find(item, '^(%d+) (%d+) ')
    if pos and tonumber(pos) > tonumber(ARGV[1]) then break end
    if pos then table.insert(ids, string.sub(item, stop + 1, stop + tonumber(len))) end
    k = k + 1
  end
  if #ids > 0 then redis.call('HDEL', KEYS[2], unpack(ids)) end
  if k > 0 then redis.call('LTRIM', KEYS[1], k, -1) end
  n = n + k
  if k < 1000 then break end
end
return n
"#
);
script!(
    DEDUPE_CLAIM,
    r#"
local v = redis.call('GET', KEYS[1])
if v == 'pending' then return 2 end
if v and tonumber(v) > tonumber(ARGV[1]) then return 1 end
redis.call('SET', KEYS[1], 'pending', 'PX', ARGV[2])
return 0
"#
);
script!(
    DEDUPE_RELEASE,
    r#"
if redis.call('GET', KEYS[1]) == 'pending' then redis.call('DEL', KEYS[1]) end
return 1
"#
);

/// What a redelivery mark says about an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Not seen: this caller publishes it, then settles or releases the claim.
    Fresh,
    /// Published within the window.
    Duplicate,
    /// Another gateway is publishing it right now.
    Busy,
}

/// The Redis half of the distributed store.
#[derive(Clone)]
pub struct Redis {
    pub conn: Conn,
    pub keys: Keys,
    /// Sessions and transcripts expire this long after their conversation last moved
    /// (milliseconds; 0: never).
    pub idle_ms: u64,
    /// Replicas each master must have copied a batch's writes to before the partition's
    /// position moves past it (0: do not wait), so a failover cannot lose what a worker
    /// counted as done.
    pub replicas: usize,
    /// The routes to every master, read once: they go by slot, so a failover does not change
    /// them (forgotten when a WAIT fails, in case the cluster was resharded).
    masters: Arc<Mutex<Option<Vec<Option<RoutingInfo>>>>>,
    /// Batches in a row whose writes reached fewer replicas than asked (for logging: once
    /// at 1, 10, 100, 1,000, then every 10,000, not once a batch).
    short: Arc<std::sync::atomic::AtomicU64>,
}

/// Whether the `n`th event in a row of one kind is logged: the 1st, 10th, 100th, 1,000th,
/// then every 10,000th (a fault that lasts does not flood the log, and is still seen).
pub fn log_nth(n: u64) -> bool {
    matches!(n, 1 | 10 | 100 | 1000) || (n > 0 && n.is_multiple_of(10_000))
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

fn bytes(v: Value) -> Vec<u8> {
    match v {
        Value::BulkString(b) => b,
        Value::SimpleString(s) => s.into_bytes(),
        Value::Int(i) => i.to_string().into_bytes(),
        _ => Vec::new(),
    }
}

/// A lease-checked script's answer: `{1, ...}` or `{0}` when fenced.
fn checked(v: Vec<Value>, work: &Work) -> Result<Vec<Value>, StoreError> {
    let mut it = v.into_iter();
    match it.next().as_ref().and_then(int) {
        Some(1) => Ok(it.collect()),
        _ => Err(StoreError::Fenced(work.clone())),
    }
}

impl Redis {
    /// Sessions and transcripts expire after `idle_ms` without an event (0: never); batches
    /// wait for `replicas` replicas (0: for none).
    pub fn new(conn: Conn, keys: Keys, idle_ms: u64, replicas: usize) -> Redis {
        Redis { conn, keys, idle_ms, replicas, masters: Arc::default(), short: Arc::default() }
    }

    fn conn(&self) -> Conn {
        self.conn.clone()
    }

    // Leases.

    pub async fn acquire(
        &self,
        work: &Work,
        holder: &str,
        now_ms: u64,
        ttl_ms: u64,
    ) -> Result<Option<Lease>, StoreError> {
        let epoch: Option<u64> = ACQUIRE
            .key(self.keys.lease(work))
            .arg(holder)
            .arg(now_ms)
            .arg(ttl_ms)
            .invoke_async(&mut self.conn())
            .await
            .map_err(io)?;
        Ok(epoch.map(|epoch| Lease { work: work.clone(), epoch }))
    }

    pub async fn renew(&self, lease: &Lease, now_ms: u64, ttl_ms: u64) -> Result<(), StoreError> {
        let ok: i64 = RENEW
            .key(self.keys.lease(&lease.work))
            .arg(lease.epoch)
            .arg(now_ms)
            .arg(ttl_ms)
            .invoke_async(&mut self.conn())
            .await
            .map_err(io)?;
        if ok == 1 { Ok(()) } else { Err(StoreError::Fenced(lease.work.clone())) }
    }

    pub async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        let _: i64 = RELEASE
            .key(self.keys.lease(&lease.work))
            .arg(lease.epoch)
            .invoke_async(&mut self.conn())
            .await
            .map_err(io)?;
        Ok(())
    }

    /// Waits until every master's writes so far reached `replicas` replicas (at most a
    /// second). Short of that (a replica is down) it says so and goes on: the cluster is
    /// degraded, and stopping every worker would not make it less so.
    pub async fn replicated(&self) -> Result<(), StoreError> {
        if self.replicas == 0 {
            return Ok(());
        }
        let cached = self.masters.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let masters = match cached {
            Some(m) => m,
            None => {
                let m = self.masters().await?;
                *self.masters.lock().unwrap_or_else(|e| e.into_inner()) = Some(m.clone());
                m
            }
        };
        let waits = masters.iter().map(|m| {
            let mut cmd = redis::cmd("WAIT");
            cmd.arg(self.replicas).arg(1000);
            self.query_on(m, cmd)
        });
        let mut fewest = usize::MAX;
        for r in futures_util::future::join_all(waits).await {
            let r = r.inspect_err(|_| *self.masters.lock().unwrap_or_else(|e| e.into_inner()) = None);
            fewest = fewest.min(int(&r?).unwrap_or(0).max(0) as usize);
        }
        use std::sync::atomic::Ordering;
        if fewest < self.replicas {
            let n = self.short.fetch_add(1, Ordering::Relaxed) + 1;
            if log_nth(n) {
                tracing::warn!(
                    replicas = fewest,
                    wanted = self.replicas,
                    batches = n,
                    "redis writes reached fewer replicas than configured; a failover now could lose them"
                );
            }
        } else if self.short.swap(0, Ordering::Relaxed) > 0 {
            tracing::info!(replicas = self.replicas, "redis writes reach every configured replica again");
        }
        Ok(())
    }

    /// Counts the live holders of `group`, after saying `holder` is alive for `ttl_ms`.
    pub async fn members(&self, group: &str, holder: &str, now_ms: u64, ttl_ms: u64) -> Result<usize, StoreError> {
        let n: usize = MEMBERS
            .key(self.keys.plain(&format!("members:{}", esc(group))))
            .arg(holder)
            .arg(now_ms.saturating_add(ttl_ms))
            .arg(now_ms)
            .arg(ttl_ms.saturating_mul(2))
            .invoke_async(&mut self.conn())
            .await
            .map_err(io)?;
        Ok(n)
    }

    /// `Err(Fenced)` unless `lease` is the newest on its work.
    pub async fn holds(&self, lease: &Lease) -> Result<(), StoreError> {
        let ok: i64 = HOLDS
            .key(self.keys.lease(&lease.work))
            .arg(lease.epoch)
            .invoke_async(&mut self.conn())
            .await
            .map_err(io)?;
        if ok == 1 { Ok(()) } else { Err(StoreError::Fenced(lease.work.clone())) }
    }

    // Bus positions.

    pub async fn committed(&self, lease: &Lease) -> Result<u64, StoreError> {
        let p = lease.partition().ok_or_else(|| StoreError::Fenced(lease.work.clone()))?;
        let at: i64 = COMMITTED
            .key(self.keys.lease(&lease.work))
            .key(self.keys.offset(p))
            .arg(lease.epoch)
            .invoke_async(&mut self.conn())
            .await
            .map_err(io)?;
        u64::try_from(at).map_err(|_| StoreError::Fenced(lease.work.clone()))
    }

    /// Moves the partition's position to `next` unless it is already past it.
    pub async fn advance(&self, lease: &Lease, next: u64) -> Result<(), StoreError> {
        let p = lease.partition().ok_or_else(|| StoreError::Fenced(lease.work.clone()))?;
        let at: i64 = ADVANCE
            .key(self.keys.lease(&lease.work))
            .key(self.keys.offset(p))
            .arg(lease.epoch)
            .arg(next)
            .invoke_async(&mut self.conn())
            .await
            .map_err(io)?;
        if at < 0 { Err(StoreError::Fenced(lease.work.clone())) } else { Ok(()) }
    }

    /// Every partition's committed position (no lease needed: for the bus depth).
    pub async fn positions(&self, partitions: usize) -> Result<Vec<u64>, StoreError> {
        let reads = (0..partitions).map(|p| {
            let mut c = self.conn();
            let key = self.keys.offset(p);
            async move { redis::cmd("GET").arg(key).query_async::<Option<u64>>(&mut c).await }
        });
        let got = futures_util::future::join_all(reads).await;
        got.into_iter().map(|r| r.map(|v| v.unwrap_or(0)).map_err(io)).collect()
    }

    // Sessions.

    /// The raw `(version, record)` of each key, concurrently.
    async fn raw(&self, keys: &[String]) -> Result<Vec<Option<(Option<String>, Vec<u8>)>>, StoreError> {
        let reads = keys.iter().map(|k| {
            let mut c = self.conn();
            let key = self.keys.conv(k, "s");
            async move {
                redis::cmd("HMGET")
                    .arg(key)
                    .arg("v")
                    .arg("r")
                    .query_async::<(Option<String>, Option<Vec<u8>>)>(&mut c)
                    .await
            }
        });
        let got = futures_util::future::join_all(reads).await;
        got.into_iter().map(|r| r.map(|(v, rec)| rec.map(|rec| (v, rec))).map_err(io)).collect()
    }

    pub async fn load(&self, keys: &[String]) -> Result<HashMap<String, Found>, StoreError> {
        let raw = self.raw(keys).await?;
        let mut out = HashMap::with_capacity(keys.len());
        for (k, r) in keys.iter().zip(raw) {
            if let Some((_, rec)) = r {
                let found = match decode_stored(&rec, 0) {
                    Ok(s) => Found::Stored(s),
                    Err(e) => Found::Unreadable { raw: rec, error: e.to_string() },
                };
                out.insert(k.clone(), found);
            }
        }
        Ok(out)
    }

    /// The sessions whose stored state is not what the batch expects, read concurrently;
    /// and for each expected-unreadable session, its bytes (its compare-and-set compares
    /// them).
    pub async fn conflicts(&self, writes: &[SessionWrite]) -> Result<(Vec<String>, Vec<Option<Vec<u8>>>), StoreError> {
        let keys: Vec<String> = writes.iter().map(|w| w.key.clone()).collect();
        let raw = self.raw(&keys).await?;
        let mut conflicts = Vec::new();
        let mut unreadable = Vec::with_capacity(writes.len());
        for (w, r) in writes.iter().zip(raw) {
            let (found, bytes) = match r {
                None => (Expected::Absent, None),
                Some((_, rec)) => match decode_stored(&rec, 0) {
                    Ok(s) => (Expected::Version(s.version), None),
                    Err(_) => (Expected::Unreadable, Some(rec)),
                },
            };
            if found != w.expected {
                conflicts.push(w.key.clone());
            }
            unreadable.push(bytes);
        }
        Ok((conflicts, unreadable))
    }

    /// Writes each session by compare-and-set, concurrently; the keys whose set failed.
    pub async fn write_sessions(
        &self,
        writes: &[SessionWrite],
        unreadable: &[Option<Vec<u8>>],
    ) -> Result<Vec<String>, StoreError> {
        let sets = writes.iter().zip(unreadable).map(|(w, raw)| {
            let mut c = self.conn();
            let mut inv = SESSION_CAS.key(self.keys.conv(&w.key, "s"));
            match (w.expected, raw) {
                (Expected::Absent, _) => inv.arg("absent").arg(""),
                (Expected::Version(v), _) => inv.arg("version").arg(v.to_string()),
                (Expected::Unreadable, Some(raw)) => inv.arg("bytes").arg(raw.as_slice()),
                (Expected::Unreadable, None) => inv.arg("bytes").arg(""),
            };
            inv.arg(w.stored.version.to_string()).arg(encode_stored(&w.stored)).arg(self.idle_ms);
            async move { inv.invoke_async::<i64>(&mut c).await }
        });
        let got = futures_util::future::join_all(sets).await;
        let mut failed = Vec::new();
        for (w, r) in writes.iter().zip(got) {
            if r.map_err(io)? != 1 {
                failed.push(w.key.clone());
            }
        }
        Ok(failed)
    }

    /// Every master: `None` for the one server, else a cluster route to each master (by
    /// the first slot it serves, so the client's own slot map finds the connection).
    async fn masters(&self) -> Result<Vec<Option<RoutingInfo>>, StoreError> {
        use redis::cluster_routing::{Route, SingleNodeRoutingInfo, SlotAddr};
        let Conn::Cluster(_) = &self.conn else { return Ok(vec![None]) };
        let nodes: String = redis::cmd("CLUSTER").arg("NODES").query_async(&mut self.conn()).await.map_err(io)?;
        let mut out = Vec::new();
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            let Some(flags) = fields.get(2) else { continue };
            if !flags.split(',').any(|f| f == "master") || flags.contains("fail") {
                continue;
            }
            // Fields 8 on: the slots served, `0-5460` or `5461`; a master with none is skipped.
            let Some(slot) = fields.get(8).and_then(|r| r.split('-').next()).and_then(|s| s.parse::<u16>().ok()) else {
                continue;
            };
            out.push(Some(RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::new(
                slot,
                SlotAddr::Master,
            )))));
        }
        Ok(out)
    }

    async fn query_on(&self, route: &Option<RoutingInfo>, cmd: redis::Cmd) -> Result<Value, StoreError> {
        match (&self.conn, route) {
            (Conn::Cluster(c), Some(route)) => c.route_command(cmd, route.clone()).await.map_err(io),
            _ => cmd.query_async::<Value>(&mut self.conn()).await.map_err(io),
        }
    }

    /// Conversations with a session whose keys start with `prefix`, at most `max`, by
    /// walking every master with SCAN (an operator's view, not the data path).
    async fn session_keys(&self, prefix: &str, max: usize) -> Result<Vec<String>, StoreError> {
        let pattern = format!("{}{{c:{}*}}:s", self.keys.prefix, glob(&esc(prefix)));
        let mut keys = Vec::new();
        for master in self.masters().await? {
            let mut cursor = 0u64;
            loop {
                let mut cmd = redis::cmd("SCAN");
                cmd.arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(1000);
                let (next, found): (u64, Vec<String>) =
                    redis::FromRedisValue::from_redis_value(self.query_on(&master, cmd).await?)
                        .map_err(|e| StoreError::Io(format!("redis: {e}")))?;
                keys.extend(found.iter().filter_map(|k| self.keys.conversation_of(k)));
                if keys.len() >= max {
                    keys.truncate(max);
                    return Ok(keys);
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(keys)
    }

    pub async fn count_sessions(&self) -> Result<u64, StoreError> {
        Ok(self.session_keys("", usize::MAX).await?.len() as u64)
    }

    pub async fn scan_sessions(&self, prefix: &str, max: usize) -> Result<Vec<(String, Stored)>, StoreError> {
        let convs = self.session_keys(prefix, max).await?;
        let mut found = self.load(&convs).await?;
        Ok(convs
            .into_iter()
            .filter_map(|k| match found.remove(&k) {
                Some(Found::Stored(s)) => Some((k, s)),
                _ => None,
            })
            .collect())
    }

    // Effects.

    pub async fn add_messages(&self, messages: &[Message]) -> Result<bool, StoreError> {
        let mut by_key: Vec<(&str, Vec<&Message>)> = Vec::new();
        for m in messages {
            match by_key.iter_mut().find(|(k, _)| *k == m.key) {
                Some((_, v)) => v.push(m),
                None => by_key.push((m.key.as_str(), vec![m])),
            }
        }
        let adds = by_key.into_iter().map(|(k, ms)| {
            let mut c = self.conn();
            let mut inv = TRANSCRIPT_ADD.key(self.keys.conv(k, "t"));
            inv.key(self.keys.conv(k, "ti")).arg(self.idle_ms);
            for m in ms {
                inv.arg(m.entry.id.as_str()).arg(encode_entry(&m.entry));
            }
            async move { inv.invoke_async::<i64>(&mut c).await }
        });
        let mut added = false;
        for r in futures_util::future::join_all(adds).await {
            added |= r.map_err(io)? > 0;
        }
        Ok(added)
    }

    pub async fn transcript(&self, key: &str, seq: u64) -> Result<Vec<Entry>, StoreError> {
        let raw: Vec<Vec<u8>> = redis::cmd("LRANGE")
            .arg(self.keys.conv(key, "t"))
            .arg(seq)
            .arg(-1)
            .query_async(&mut self.conn())
            .await
            .map_err(io)?;
        let mut out = Vec::with_capacity(raw.len());
        for (i, bytes) in raw.iter().enumerate() {
            let at = seq + 1 + i as u64;
            match decode_entry(at, bytes) {
                Ok(e) => out.push(e),
                Err(e) => {
                    tracing::error!(conversation = %key, seq = at, error = %e, "a transcript entry is unreadable")
                }
            }
        }
        Ok(out)
    }

    /// A queue's keys, in the order the queue scripts take them.
    fn queue(&self, work: &Work) -> Vec<String> {
        let part = |p: &str| match work {
            Work::Replies(bot) => self.keys.replies(bot, p),
            _ => self.keys.outbox(p),
        };
        let mut keys: Vec<String> = ["items", "order", "ids", "pid", "done", "next"].iter().map(|p| part(p)).collect();
        keys.push(self.keys.lease(work));
        keys
    }

    async fn enqueue<'i>(
        &self,
        work: &Work,
        items: impl Iterator<Item = (&'i str, Vec<u8>)>,
    ) -> Result<(), StoreError> {
        let mut inv = QUEUE_ADD.prepare_invoke();
        for k in self.queue(work) {
            inv.key(k);
        }
        for (id, bytes) in items {
            inv.arg(id).arg(bytes);
        }
        inv.invoke_async::<i64>(&mut self.conn()).await.map_err(io)?;
        Ok(())
    }

    async fn read_queue(&self, lease: &Lease, max: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let mut inv = QUEUE_READ.prepare_invoke();
        for k in self.queue(&lease.work) {
            inv.key(k);
        }
        let got: Vec<Value> = inv.arg(lease.epoch).arg(max).invoke_async(&mut self.conn()).await.map_err(io)?;
        let mut out = Vec::new();
        let mut it = checked(got, &lease.work)?.into_iter();
        while let (Some(pos), Some(item)) = (it.next(), it.next()) {
            if let Some(pos) = int(&pos).and_then(|p| u64::try_from(p).ok()) {
                out.push((pos, bytes(item)));
            }
        }
        Ok(out)
    }

    /// Marks the item at `position` done; under `lease` when given.
    async fn dequeue(&self, work: &Work, lease: Option<&Lease>, position: u64) -> Result<(), StoreError> {
        let mut inv = QUEUE_DONE.prepare_invoke();
        for k in self.queue(work) {
            inv.key(k);
        }
        let epoch = lease.map(|l| l.epoch.to_string()).unwrap_or_default();
        let ok: i64 = inv.arg(epoch).arg(position).arg(KEEP_DONE).invoke_async(&mut self.conn()).await.map_err(io)?;
        if ok == 1 { Ok(()) } else { Err(StoreError::Fenced(work.clone())) }
    }

    pub async fn add_replies(&self, replies: &[QueuedReply]) -> Result<(), StoreError> {
        let mut by_bot: Vec<(&str, Vec<&QueuedReply>)> = Vec::new();
        for r in replies {
            match by_bot.iter_mut().find(|(b, _)| *b == r.bot) {
                Some((_, v)) => v.push(r),
                None => by_bot.push((r.bot.as_str(), vec![r])),
            }
        }
        let adds = by_bot.into_iter().map(|(bot, rs)| async move {
            redis::cmd("SADD")
                .arg(self.keys.plain("replies:bots"))
                .arg(bot)
                .query_async::<i64>(&mut self.conn())
                .await
                .map_err(io)?;
            self.enqueue(&Work::Replies(bot.to_string()), rs.iter().map(|r| (r.id.as_str(), encode_reply(r)))).await
        });
        for r in futures_util::future::join_all(adds).await {
            r?;
        }
        Ok(())
    }

    pub async fn waiting(&self, lease: &Lease, max: usize) -> Result<Vec<(u64, QueuedReply)>, StoreError> {
        let mut out = Vec::new();
        for (pos, item) in self.read_queue(lease, max).await? {
            match decode_reply(&item) {
                Ok(r) => out.push((pos, r)),
                Err(e) => {
                    tracing::error!(work = %lease.work, position = pos, error = %e, "a queued reply is unreadable; it is dropped");
                    self.delivered(lease, pos).await?;
                }
            }
        }
        Ok(out)
    }

    pub async fn delivered(&self, lease: &Lease, position: u64) -> Result<(), StoreError> {
        self.dequeue(&lease.work, Some(lease), position).await
    }

    pub async fn replies_depth(&self) -> Result<u64, StoreError> {
        let bots: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.keys.plain("replies:bots"))
            .query_async(&mut self.conn())
            .await
            .map_err(io)?;
        let counts = bots.iter().map(|b| {
            let mut c = self.conn();
            let key = self.keys.replies(b, "order");
            async move { redis::cmd("ZCARD").arg(key).query_async::<u64>(&mut c).await }
        });
        let mut n = 0;
        for r in futures_util::future::join_all(counts).await {
            n += r.map_err(io)?;
        }
        Ok(n)
    }

    pub async fn add_outbox(&self, items: &[OutboxItem]) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        self.enqueue(&Work::Outbox, items.iter().map(|i| (i.id.as_str(), encode_item(i)))).await
    }

    pub async fn outbox_pending(&self, lease: &Lease, max: usize) -> Result<Vec<OutboxItem>, StoreError> {
        let mut out = Vec::new();
        for (pos, item) in self.read_queue(lease, max).await? {
            match decode_item(&item) {
                Ok(item) => out.push(item),
                Err(e) => tracing::error!(position = pos, error = %e, "an outbox item is unreadable; it is skipped"),
            }
        }
        Ok(out)
    }

    /// Where the item waits (`None`: it does not), under the lease.
    pub async fn outbox_find(&self, lease: &Lease, id: &str) -> Result<Option<u64>, StoreError> {
        let mut inv = QUEUE_FIND.prepare_invoke();
        for k in self.queue(&lease.work) {
            inv.key(k);
        }
        let pos: i64 = inv.arg(lease.epoch).arg(id).invoke_async(&mut self.conn()).await.map_err(io)?;
        match pos {
            -1 => Err(StoreError::Fenced(lease.work.clone())),
            0 => Ok(None),
            p => Ok(Some(p as u64)),
        }
    }

    /// Forgets the item and remembers that it was done (whatever became of the lease: its
    /// response is already on the bus).
    pub async fn outbox_done(&self, position: u64) -> Result<(), StoreError> {
        self.dequeue(&Work::Outbox, None, position).await
    }

    pub async fn change_timers(&self, changes: &[TimerChange]) -> Result<(), StoreError> {
        let mut shards: Vec<Option<redis::ScriptInvocation<'static>>> = (0..TIMER_SHARDS).map(|_| None).collect();
        for change in changes {
            let (key, timer) = match change {
                TimerChange::Start { event, .. } => match event.kind {
                    botc_runtime::vm::Input::Timer { timer } => (event.key(), timer),
                    _ => continue,
                },
                TimerChange::Cancel { key, timer } => (key.clone(), *timer),
            };
            let s = shard_of(&key);
            let inv = shards[s].get_or_insert_with(|| {
                let mut inv = TIMERS_CHANGE.prepare_invoke();
                inv.key(self.keys.timers(s, "due")).key(self.keys.timers(s, "ev"));
                inv
            });
            let member = format!("{key}\n{timer}");
            match change {
                TimerChange::Start { at, event } => inv.arg("S").arg(member).arg(*at).arg(event.encode()),
                TimerChange::Cancel { .. } => inv.arg("C").arg(member),
            };
        }
        let sets = shards.into_iter().flatten().map(|inv| {
            let mut c = self.conn();
            async move { inv.invoke_async::<i64>(&mut c).await }
        });
        for r in futures_util::future::join_all(sets).await {
            r.map_err(io)?;
        }
        Ok(())
    }

    /// Timers due at `now` (unix seconds), up to `max` per shard: (shard, member, at, event).
    pub async fn due_timers(&self, now: u64, max: usize) -> Result<Vec<(usize, String, u64, Event)>, StoreError> {
        let reads = (0..TIMER_SHARDS).map(|s| {
            let mut c = self.conn();
            let mut inv = TIMERS_DUE.prepare_invoke();
            inv.key(self.keys.timers(s, "due")).key(self.keys.timers(s, "ev")).arg(now).arg(max);
            async move { (s, inv.invoke_async::<Vec<Value>>(&mut c).await) }
        });
        let mut out = Vec::new();
        for (s, r) in futures_util::future::join_all(reads).await {
            let got = r.map_err(io)?;
            let mut it = got.into_iter();
            while let (Some(m), Some(at), Some(ev)) = (it.next(), it.next(), it.next()) {
                let member = String::from_utf8_lossy(&bytes(m)).into_owned();
                let at = int(&at).and_then(|a| u64::try_from(a).ok()).unwrap_or(0);
                match Event::decode(&bytes(ev)) {
                    Ok(e) => out.push((s, member, at, e)),
                    Err(e) => {
                        tracing::error!(timer = %member, error = %e, "a stored timer is unreadable; it is dropped");
                        self.timers_fired(&[(s, member, at)]).await?;
                    }
                }
            }
        }
        Ok(out)
    }

    /// Forgets fired timers that were not set again meanwhile.
    pub async fn timers_fired(&self, fired: &[(usize, String, u64)]) -> Result<(), StoreError> {
        let mut shards: Vec<Option<redis::ScriptInvocation<'static>>> = (0..TIMER_SHARDS).map(|_| None).collect();
        for (s, member, at) in fired {
            let inv = shards[*s].get_or_insert_with(|| {
                let mut inv = TIMERS_FIRED.prepare_invoke();
                inv.key(self.keys.timers(*s, "due")).key(self.keys.timers(*s, "ev"));
                inv
            });
            inv.arg(member.as_str()).arg(*at);
        }
        let sets = shards.into_iter().flatten().map(|inv| {
            let mut c = self.conn();
            async move { inv.invoke_async::<i64>(&mut c).await }
        });
        for r in futures_util::future::join_all(sets).await {
            r.map_err(io)?;
        }
        Ok(())
    }

    /// Per shard, the first due time and the count: (next due, pending).
    pub async fn timer_stats(&self) -> Result<(Option<u64>, u64), StoreError> {
        let reads = (0..TIMER_SHARDS).map(|s| {
            let mut c = self.conn();
            let key = self.keys.timers(s, "due");
            async move {
                let mut p = redis::pipe();
                p.cmd("ZRANGE").arg(&key).arg(0).arg(0).arg("WITHSCORES").cmd("ZCARD").arg(&key);
                p.query_async::<(Vec<(String, u64)>, u64)>(&mut c).await
            }
        });
        let (mut next, mut pending) = (None::<u64>, 0);
        for r in futures_util::future::join_all(reads).await {
            let (first, n) = r.map_err(io)?;
            pending += n;
            if let Some((_, at)) = first.first() {
                next = Some(next.map_or(*at, |n| n.min(*at)));
            }
        }
        Ok((next, pending))
    }

    pub async fn add_history(&self, records: &[HistoryRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut inv = HISTORY_ADD.prepare_invoke();
        inv.key(self.keys.history("q")).key(self.keys.history("ids")).key(self.keys.history("next"));
        for r in records {
            inv.arg(r.id.as_str()).arg(encode_record(r));
        }
        inv.invoke_async::<i64>(&mut self.conn()).await.map_err(io)?;
        Ok(())
    }

    pub async fn unshipped(&self, max: usize) -> Result<Vec<(u64, HistoryRecord)>, StoreError> {
        let raw: Vec<Vec<u8>> = redis::cmd("LRANGE")
            .arg(self.keys.history("q"))
            .arg(0)
            .arg(max.saturating_sub(1))
            .query_async(&mut self.conn())
            .await
            .map_err(io)?;
        let mut out = Vec::with_capacity(raw.len());
        for item in raw {
            // `POS IDLEN ID` then the record.
            let mut parts = item.splitn(3, |b| *b == b' ');
            let (Some(pos), Some(len), Some(rest)) = (parts.next(), parts.next(), parts.next()) else { continue };
            let parse = |b: &[u8]| std::str::from_utf8(b).ok().and_then(|s| s.parse::<u64>().ok());
            let (Some(pos), Some(len)) = (parse(pos), parse(len)) else { continue };
            let Some(record) = rest.get(len as usize..) else { continue };
            match decode_record(record) {
                Ok(r) => out.push((pos, r)),
                Err(e) => tracing::error!(position = pos, error = %e, "a history record is unreadable; it is skipped"),
            }
        }
        Ok(out)
    }

    pub async fn shipped(&self, upto: u64) -> Result<(), StoreError> {
        HISTORY_SHIPPED
            .key(self.keys.history("q"))
            .key(self.keys.history("ids"))
            .arg(upto)
            .invoke_async::<i64>(&mut self.conn())
            .await
            .map_err(io)?;
        Ok(())
    }

    pub async fn quarantine(&self, q: &[Quarantined]) -> Result<(), StoreError> {
        if q.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("RPUSH");
        cmd.arg(self.keys.plain("quarantine"));
        for item in q {
            cmd.arg(encode_quarantined(item));
        }
        cmd.query_async::<i64>(&mut self.conn()).await.map_err(io)?;
        Ok(())
    }

    pub async fn quarantined(&self, max: usize) -> Result<Vec<Quarantined>, StoreError> {
        let raw: Vec<Vec<u8>> = redis::cmd("LRANGE")
            .arg(self.keys.plain("quarantine"))
            .arg(0)
            .arg(max.saturating_sub(1))
            .query_async(&mut self.conn())
            .await
            .map_err(io)?;
        Ok(raw.iter().filter_map(|b| decode_quarantined(b).ok()).collect())
    }

    // Redelivery marks.

    /// Claims an event id for publishing: `now` and the window in the event's own time
    /// (unix seconds); a claim not settled within `pending_ms` lapses (its gateway died).
    pub async fn claim(&self, id: &str, now: u64, pending_ms: u64) -> Result<Claim, StoreError> {
        let got: i64 = DEDUPE_CLAIM
            .key(self.keys.dedupe(id))
            .arg(now)
            .arg(pending_ms)
            .invoke_async(&mut self.conn())
            .await
            .map_err(io)?;
        Ok(match got {
            0 => Claim::Fresh,
            1 => Claim::Duplicate,
            _ => Claim::Busy,
        })
    }

    /// The event was published: remember it until `expires` (unix seconds, event time) for
    /// `ttl_ms` of real time.
    pub async fn settle(&self, id: &str, expires: u64, ttl_ms: u64) -> Result<(), StoreError> {
        redis::cmd("SET")
            .arg(self.keys.dedupe(id))
            .arg(expires)
            .arg("PX")
            .arg(ttl_ms.max(1))
            .query_async::<()>(&mut self.conn())
            .await
            .map_err(io)
    }

    /// Publishing failed: the platform's retry must be taken.
    pub async fn unclaim(&self, id: &str) -> Result<(), StoreError> {
        DEDUPE_RELEASE.key(self.keys.dedupe(id)).invoke_async::<i64>(&mut self.conn()).await.map_err(io)?;
        Ok(())
    }

    /// The server's facts a doctor looks at: whether it is a cluster member, and whether it
    /// keeps its data (AOF or RDB snapshots).
    pub async fn facts(&self) -> Result<(bool, bool), StoreError> {
        let info: String = redis::cmd("INFO").arg("cluster").query_async(&mut self.conn()).await.map_err(io)?;
        let cluster = info.lines().any(|l| l.trim() == "cluster_enabled:1");
        let info: String = redis::cmd("INFO").arg("persistence").query_async(&mut self.conn()).await.map_err(io)?;
        let aof = info.lines().any(|l| l.trim() == "aof_enabled:1");
        let save: Vec<String> =
            redis::cmd("CONFIG").arg("GET").arg("save").query_async(&mut self.conn()).await.unwrap_or_default();
        let snapshots = save.get(1).is_some_and(|s| !s.trim().is_empty());
        Ok((cluster, aof || snapshots))
    }

    /// Whether Redis answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        redis::cmd("PING").query_async::<String>(&mut self.conn()).await.map(|_| ()).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn braces_in_a_key_cannot_move_its_hash_tag() {
        let k = Keys::new("botc:");
        assert_eq!(k.conv("bot/web/a}b{c%", "s"), "botc:{c:bot/web/a%7Db%7Bc%25}:s");
        assert_eq!(k.lease(&Work::Replies("x}".into())), "botc:{r:x%7D}:lease");
        assert_eq!(k.replies("x}", "items"), "botc:{r:x%7D}:items");
    }

    #[test]
    fn a_lasting_fault_is_logged_ever_more_rarely() {
        let logged: Vec<u64> = (0..=30_000).filter(|n| log_nth(*n)).collect();
        assert_eq!(logged, [1, 10, 100, 1000, 10_000, 20_000, 30_000]);
    }
}
