//! The event bus on Kafka: one topic, partitioned by conversation key with botc's own stable
//! hash (the same partition for a conversation on every gateway, whatever the client
//! library's default partitioner), produced with idempotence and `acks=all`.
//!
//! Workers do not use Kafka's consumer-group assignment. Which worker steps a partition is
//! decided by a lease in Redis, and the partition's position is kept next to that lease, so
//! moving the position is fenced by the same epoch as the sessions (a consumer group's
//! offset commit cannot be fenced by botc's leases). Each leased partition gets a consumer
//! assigned to it at the position the worker asks for.

use botc_serve::Event;
use botc_serve::ports::{Delivery, StoreError};
use futures_util::FutureExt;
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How to reach the bus and how patient to be with it.
#[derive(Clone, Debug)]
pub struct KafkaConfig {
    /// `host:port,host:port`.
    pub brokers: String,
    pub topic: String,
    pub partitions: usize,
    /// Longest a publish may take before the gateway answers 503 (the platform retries).
    pub publish_timeout: Duration,
    /// Extra librdkafka settings for producers and consumers (`security.protocol`, ...).
    pub settings: Vec<(String, String)>,
}

/// A consumer reading one leased partition, and where it will read next.
struct Reader {
    consumer: Arc<StreamConsumer>,
    epoch: u64,
    next: u64,
}

pub struct Kafka {
    pub config: KafkaConfig,
    producer: FutureProducer,
    readers: Mutex<HashMap<usize, Reader>>,
}

/// botc's producer settings: idempotent, `acks=all`, a publish bounded by the timeout, then
/// the configured extras.
pub(crate) fn producer_config(config: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("message.timeout.ms", config.publish_timeout.as_millis().max(1).to_string());
    for (k, v) in &config.settings {
        c.set(k, v);
    }
    c
}

/// botc's consumer settings: positions are kept by botc (nothing committed to Kafka), a
/// position below what the topic still holds goes on from its oldest event, then the
/// configured extras.
pub(crate) fn consumer_config(config: &KafkaConfig, group: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "10");
    for (k, v) in &config.settings {
        c.set(k, v);
    }
    c
}

fn kafka(e: KafkaError) -> StoreError {
    match e {
        KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull) => StoreError::Full,
        e => StoreError::Io(format!("kafka: {e}")),
    }
}

impl Kafka {
    pub fn new(config: KafkaConfig) -> Result<Kafka, StoreError> {
        let producer: FutureProducer = producer_config(&config).create().map_err(kafka)?;
        Ok(Kafka { config, producer, readers: Mutex::new(HashMap::new()) })
    }

    /// Appends the events, each to its conversation's partition, and returns once the
    /// brokers have them all (or one failed).
    pub async fn publish(&self, events: &[Event]) -> Result<(), StoreError> {
        let encoded: Vec<(String, Vec<u8>, i32)> = events
            .iter()
            .map(|e| {
                let key = e.key();
                let p = botc_serve::partition_of(&key, self.config.partitions) as i32;
                (key, e.encode(), p)
            })
            .collect();
        // Sent in order (each send queues at its first poll), so a conversation's events keep
        // their order; the idempotent producer keeps it across retries.
        let sends = encoded.iter().map(|(key, bytes, p)| {
            let record = FutureRecord::to(&self.config.topic).partition(*p).key(key.as_str()).payload(bytes.as_slice());
            self.producer.send(record, self.config.publish_timeout)
        });
        for r in futures_util::future::join_all(sends).await {
            r.map_err(|(e, _)| kafka(e))?;
        }
        Ok(())
    }

    fn consumer(&self, partition: usize, from: u64) -> Result<StreamConsumer, StoreError> {
        let consumer: StreamConsumer =
            consumer_config(&self.config, &format!("botc-{}", self.config.topic)).create().map_err(kafka)?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.config.topic, partition as i32, Offset::Offset(from as i64)).map_err(kafka)?;
        consumer.assign(&tpl).map_err(kafka)?;
        Ok(consumer)
    }

    /// Up to `max` events of `partition` from offset `from`, waiting for one. The caller has
    /// checked the lease (`epoch`); a consumer made for an older lease or another position
    /// is replaced.
    pub async fn fetch(
        &self,
        partition: usize,
        epoch: u64,
        from: u64,
        max: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let consumer = {
            let mut readers = self.readers.lock().unwrap_or_else(|e| e.into_inner());
            match readers.get(&partition) {
                Some(r) if r.epoch == epoch && r.next == from => r.consumer.clone(),
                _ => {
                    let consumer = Arc::new(self.consumer(partition, from)?);
                    readers.insert(partition, Reader { consumer: consumer.clone(), epoch, next: from });
                    consumer
                }
            }
        };
        let mut out = Vec::new();
        // Errors on the way are the brokers coming and going (librdkafka reconnects by
        // itself): said once, then waited out like a quiet partition.
        let mut said = false;
        while out.is_empty() {
            match consumer.recv().await {
                Ok(m) => self.take(partition, from, &m, &mut out),
                Err(e) if !said => {
                    tracing::warn!(partition, error = %e, "reading the bus failed; waiting for the brokers");
                    said = true;
                }
                Err(_) => {}
            }
        }
        while out.len() < max {
            match consumer.recv().now_or_never() {
                Some(Ok(m)) => self.take(partition, from, &m, &mut out),
                Some(Err(_)) | None => break,
            }
        }
        if let Some(first) = out.first()
            && first.offset > from
        {
            tracing::error!(
                partition,
                from,
                to = first.offset,
                "events were deleted from the bus before they were stepped (retention too short?); going on after them"
            );
        }
        let next = out.last().map_or(from, |d: &Delivery| d.offset + 1);
        if let Some(r) = self.readers.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&partition)
            && Arc::ptr_eq(&r.consumer, &consumer)
        {
            r.next = next;
        }
        Ok(out)
    }

    fn take(&self, partition: usize, from: u64, m: &rdkafka::message::BorrowedMessage<'_>, out: &mut Vec<Delivery>) {
        let offset = m.offset() as u64;
        if offset < from {
            return;
        }
        let event = match Event::decode(m.payload().unwrap_or_default()) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(partition, offset, error = %e, "an event on the bus is unreadable");
                Event::unreadable(offset)
            }
        };
        out.push(Delivery { offset, event });
    }

    /// Stops reading a partition (its lease is gone).
    pub fn forget(&self, partition: usize) {
        self.readers.lock().unwrap_or_else(|e| e.into_inner()).remove(&partition);
    }

    /// The offset after the last event of each partition.
    pub async fn ends(&self) -> Result<Vec<u64>, StoreError> {
        let client = self.producer.clone();
        let topic = self.config.topic.clone();
        let partitions = self.config.partitions;
        tokio::task::spawn_blocking(move || {
            (0..partitions)
                .map(|p| {
                    client
                        .client()
                        .fetch_watermarks(&topic, p as i32, Duration::from_secs(5))
                        .map(|(_, high)| high.max(0) as u64)
                        .map_err(kafka)
                })
                .collect()
        })
        .await
        .map_err(|e| StoreError::Io(e.to_string()))?
    }

    /// Whether the topic exists with the configured partitions: `Err` says what is wrong
    /// and what to do, for people.
    pub async fn check(&self) -> Result<(), String> {
        let client = self.producer.clone();
        let topic = self.config.topic.clone();
        let brokers = self.config.brokers.clone();
        let want = self.config.partitions;
        tokio::task::spawn_blocking(move || {
            let md = client
                .client()
                .fetch_metadata(Some(&topic), Duration::from_secs(5))
                .map_err(|e| format!("cannot reach the kafka brokers at {brokers} ({e}); is kafka running there?"))?;
            let t = md.topics().iter().find(|t| t.name() == topic);
            match t {
                Some(t) if t.error().is_none() && t.partitions().len() == want => Ok(()),
                Some(t) if t.error().is_none() => Err(format!(
                    "kafka topic `{topic}` has {} partitions but kafka.partitions says {want}; make them agree",
                    t.partitions().len()
                )),
                _ => Err(format!("kafka topic `{topic}` does not exist; create it with `botc kafka init`")),
            }
        })
        .await
        .map_err(|e| e.to_string())?
    }
}

/// Creates the events topic: `Ok(true)` when created, `Ok(false)` when it existed already.
pub async fn create_topic(config: &KafkaConfig, replication: u16) -> Result<bool, String> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.brokers);
    for (k, v) in &config.settings {
        c.set(k, v);
    }
    let admin: AdminClient<DefaultClientContext> =
        c.create().map_err(|e| format!("cannot set up the kafka client: {e}"))?;
    let topic = NewTopic::new(&config.topic, config.partitions as i32, TopicReplication::Fixed(i32::from(replication)));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics([&topic], &options)
        .await
        .map_err(|e| format!("cannot create topic {} at {}: {e}", config.topic, config.brokers))?;
    match results.into_iter().next() {
        Some(Ok(_)) => Ok(true),
        Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => Ok(false),
        Some(Err((_, code))) => Err(format!("cannot create topic {}: {code}", config.topic)),
        None => Err(format!("the brokers did not answer about topic {}", config.topic)),
    }
}
