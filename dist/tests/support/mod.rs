//! Real infrastructure for the distributed tests: a Redis Cluster of 3 masters and 3
//! replicas (`cluster.rs`), shared by the tests of one binary; and a Kafka topic per test,
//! on a mock cluster or a real broker.

// Each test binary uses part of this module.
#![allow(dead_code)]

mod cluster;
pub use cluster::*;

use std::sync::OnceLock;
use std::time::Duration;

/// The cluster this test binary shares, started on first use.
pub fn cluster() -> &'static RedisCluster {
    static CLUSTER: OnceLock<RedisCluster> = OnceLock::new();
    CLUSTER.get_or_init(start)
}

/// A Kafka topic with `partitions` for one test: on the real broker `BOTC_TEST_KAFKA` names
/// (a topic of the test's own), else on a mock cluster of its own (returned: it lives as long
/// as the test keeps it). The brokers and the topic.
pub async fn kafka(partitions: usize) -> (String, String, Option<botc_dist::mock::MockKafka>) {
    match std::env::var("BOTC_TEST_KAFKA").ok().filter(|b| !b.is_empty()) {
        Some(brokers) => {
            let topic = format!("botc-test-{:016x}", fastrand::u64(..));
            let config = botc_dist::KafkaConfig {
                brokers: brokers.clone(),
                topic: topic.clone(),
                partitions,
                publish_timeout: Duration::from_secs(10),
                settings: vec![],
            };
            botc_dist::kafka::create_topic(&config, 1).await.expect("topic on the real broker");
            (brokers, topic, None)
        }
        None => {
            let mock = botc_dist::mock::MockKafka::start(1, &[("events", partitions)]).expect("mock kafka");
            (mock.brokers.clone(), "events".into(), Some(mock))
        }
    }
}
