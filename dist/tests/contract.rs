//! The port contract on Kafka (librdkafka's mock cluster: the real protocol on loopback; or a
//! real broker, `BOTC_TEST_KAFKA`) with the machine's Redis, and again with a Redis Cluster
//! the tests start; each check with its own topic and key prefix.

mod support;

use botc_dist::{Conn, Distributed, Kafka, KafkaConfig, Keys, Redis, RedisAddr};
use botc_serve::contract::{Fresh, PARTITIONS};
use std::time::Duration;

/// The Redis the machine runs (`BOTC_TEST_REDIS` to use another).
fn redis_url() -> String {
    std::env::var("BOTC_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

async fn fresh(redis_addr: RedisAddr) -> Fresh<Distributed> {
    let (brokers, topic, mock) = support::kafka(PARTITIONS).await;
    let conn = Conn::connect(&redis_addr).await.unwrap_or_else(|e| panic!("redis at {redis_addr:?}: {e}"));
    let prefix = format!("botc-test:{:016x}:", fastrand::u64(..));
    // The cluster has a replica per master: every batch waits for it, as in production.
    let replicas = usize::from(matches!(redis_addr, RedisAddr::Cluster(_)));
    let redis = Redis::new(conn, Keys::new(&prefix), 0, replicas);
    let kafka = Kafka::new(KafkaConfig {
        brokers,
        topic,
        partitions: PARTITIONS,
        publish_timeout: Duration::from_secs(10),
        settings: vec![],
    })
    .expect("kafka client");
    let cleanup = match redis_addr {
        RedisAddr::Single(url) => Some(Cleanup { url, prefix }),
        // The cluster goes away with the test process.
        RedisAddr::Cluster(_) => None,
    };
    Fresh { store: Distributed::new(redis, kafka), keep: Box::new((mock, cleanup)) }
}

/// Deletes a check's keys from the machine's Redis when the check is done.
struct Cleanup {
    url: String,
    prefix: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        use redis::TypedCommands as _;
        let Ok(mut c) = redis::Client::open(self.url.as_str()).and_then(|c| c.get_connection()) else { return };
        let keys: Vec<String> = match c.scan_match::<_, String>(format!("{}*", self.prefix)) {
            Ok(it) => it.filter_map(Result::ok).collect(),
            Err(_) => return,
        };
        if !keys.is_empty() {
            let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(keys).query(&mut c);
        }
    }
}

mod single {
    use super::*;
    botc_serve::contract_suite!(fresh(RedisAddr::Single(redis_url())));
}

mod cluster {
    use super::*;
    botc_serve::contract_suite!(fresh(RedisAddr::Cluster(support::cluster().nodes.clone())));
}
