//! The benchmark's baseline tool moves every event: each one produced to the input topic is
//! consumed and lands on the output topic, on the same partition.

mod support;

use botc_runtime::clock::SystemClock;
use rdkafka::producer::Producer;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_is_consumed_and_produced_again() {
    // Two topics: on the real broker BOTC_TEST_KAFKA names, or on a mock cluster (which
    // cannot create topics later) started with both.
    let output = format!("botc-passthrough-{:08x}", fastrand::u32(..));
    let (brokers, topic, mock) = match std::env::var("BOTC_TEST_KAFKA").ok().filter(|b| !b.is_empty()) {
        Some(_) => support::kafka(4).await,
        None => {
            let mock = botc_dist::mock::MockKafka::start(1, &[("in", 4), (output.as_str(), 4)]).expect("mock kafka");
            (mock.brokers.clone(), "in".to_string(), Some(mock))
        }
    };
    let config = botc_dist::KafkaConfig {
        brokers: brokers.clone(),
        topic,
        partitions: 4,
        publish_timeout: Duration::from_secs(10),
        settings: vec![],
    };
    if mock.is_none() {
        let out = botc_dist::KafkaConfig { topic: output.clone(), ..config.clone() };
        botc_dist::kafka::create_topic(&out, 1).await.expect("output topic");
    }
    let r = botc_dist::passthrough::run(&config, &output, 2_000, 64, &SystemClock::default()).await.expect("run");
    assert_eq!((r.produced, r.passed), (2_000, 2_000));
    let client: rdkafka::producer::BaseProducer =
        rdkafka::ClientConfig::new().set("bootstrap.servers", &brokers).create().expect("client");
    let landed: i64 = tokio::task::spawn_blocking(move || {
        (0..4)
            .map(|p| client.client().fetch_watermarks(&output, p, Duration::from_secs(10)).expect("watermarks").1)
            .sum()
    })
    .await
    .expect("watermarks");
    assert_eq!(landed, 2_000, "every event is on the output topic");
}
