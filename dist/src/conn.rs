//! One Redis connection type for both deployments: a single server (through a
//! `ConnectionManager`, which reconnects by itself) or a Redis Cluster (through the cluster
//! client, which follows slot moves and failovers). Both multiplex: many requests in flight
//! on one connection, so concurrent calls are pipelined on the wire.

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

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
    Cluster(ClusterConnection),
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
                Ok(Conn::Cluster(client.get_async_connection().await?))
            }
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
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
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}
