//! One Redis connection type for both deployments: a single server (through a
//! `ConnectionManager`, which reconnects by itself) or a Redis Cluster (through the cluster
//! client, which follows slot moves and failovers). Both multiplex: many requests in flight
//! on one connection, so concurrent calls are pipelined on the wire.
//!
//! The cluster client (redis-rs 1.8, and 2.0-rc alike) can wedge during a failover: in about
//! one master kill of four its slot refresh never completes (a background node repair is
//! handed the connection map's lock while the driver no longer polls it), and every request
//! then times out, for good. [`Cluster`] watches for that: a request that times out has a
//! fresh client connection built from the seeds in the background, which replaces the wedged
//! one. A slow but healthy cluster costs at most one reconnect per [`REPLACE_EVERY`].

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::RoutingInfo;
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The least time between two replacements of a cluster connection.
pub const REPLACE_EVERY: Duration = Duration::from_secs(5);
/// The longest a replacement connection may take to come up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where Redis is: one server's URL, or a cluster's seed nodes (every node is best).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedisAddr {
    Single(String),
    Cluster(Vec<String>),
}

/// A Redis URL without its password (`redis://user:***@host:6379`), for messages: a URL given
/// through an environment variable may carry one.
pub fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => match url[scheme + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
            None => url.to_string(),
        },
        _ => url.to_string(),
    }
}

impl std::fmt::Display for RedisAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RedisAddr::Single(url) => f.write_str(&redacted(url)),
            RedisAddr::Cluster(seeds) => {
                let seeds: Vec<String> = seeds.iter().map(|s| redacted(s)).collect();
                write!(f, "cluster {}", seeds.join(", "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_password_in_a_url_is_never_shown() {
        assert_eq!(super::redacted("redis://botc:s3cret@redis:6379/0"), "redis://botc:***@redis:6379/0");
        assert_eq!(super::redacted("rediss://:s3cret@redis"), "rediss://:***@redis");
        assert_eq!(super::redacted("redis://redis:6379"), "redis://redis:6379");
    }
}

#[derive(Clone)]
pub enum Conn {
    Single(ConnectionManager),
    Cluster(Cluster),
}

/// A Redis Cluster connection that replaces itself when it has wedged (see the module doc).
#[derive(Clone)]
pub struct Cluster(Arc<Shared>);

struct Shared {
    client: ClusterClient,
    /// The connection in use and its generation (a replacement applies only to the
    /// generation that timed out).
    current: Mutex<(u64, ClusterConnection)>,
    replacing: AtomicBool,
}

impl Cluster {
    fn current(&self) -> (u64, ClusterConnection) {
        self.0.current.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// One command on the node `route` names.
    pub async fn route_command(&self, cmd: Cmd, route: RoutingInfo) -> RedisResult<Value> {
        let (generation, mut conn) = self.current();
        let result = conn.route_command(cmd, route).await;
        self.observe(generation, &result);
        result
    }

    fn observe<T>(&self, generation: u64, result: &RedisResult<T>) {
        if matches!(result, Err(e) if e.is_timeout()) {
            self.replace(generation);
        }
    }

    /// Builds a fresh connection in the background and puts it in place of `generation`.
    fn replace(&self, generation: u64) {
        if self.0.replacing.swap(true, Ordering::SeqCst) {
            return;
        }
        let shared = self.0.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(CONNECT_TIMEOUT, shared.client.get_async_connection()).await {
                Ok(Ok(fresh)) => {
                    let mut current = shared.current.lock().unwrap_or_else(|e| e.into_inner());
                    if current.0 == generation {
                        *current = (generation + 1, fresh);
                        tracing::warn!(generation = generation + 1, "a redis cluster request timed out: reconnected");
                    }
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "a redis cluster request timed out, and reconnecting failed"),
                Err(_) => tracing::warn!("a redis cluster request timed out, and reconnecting timed out too"),
            }
            tokio::time::sleep(REPLACE_EVERY).await;
            shared.replacing.store(false, Ordering::SeqCst);
        });
    }
}

impl Conn {
    pub async fn connect(addr: &RedisAddr) -> redis::RedisResult<Conn> {
        // Bounded waits: a Redis that does not answer is an error the roles retry, not a hang.
        match addr {
            RedisAddr::Single(url) => {
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(std::time::Duration::from_secs(5)))
                    .set_response_timeout(Some(std::time::Duration::from_secs(5)))
                    .set_number_of_retries(2);
                let client = redis::Client::open(url.as_str())?;
                Ok(Conn::Single(client.get_connection_manager_with_config(config).await?))
            }
            RedisAddr::Cluster(seeds) => {
                let client = redis::cluster::ClusterClient::builder(seeds.clone())
                    .connection_timeout(std::time::Duration::from_secs(5))
                    .response_timeout(std::time::Duration::from_secs(5))
                    .retries(4)
                    .build()?;
                let conn = client.get_async_connection().await?;
                Ok(Conn::Cluster(Cluster(Arc::new(Shared {
                    client,
                    current: Mutex::new((0, conn)),
                    replacing: AtomicBool::new(false),
                }))))
            }
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => Box::pin(async move {
                let (generation, mut conn) = c.current();
                let result = conn.req_packed_command(cmd).await;
                c.observe(generation, &result);
                result
            }),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => Box::pin(async move {
                let (generation, mut conn) = c.current();
                let result = conn.req_packed_commands(pipeline, offset, count).await;
                c.observe(generation, &result);
                result
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.current().1.get_db(),
        }
    }
}
