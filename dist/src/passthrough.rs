//! The baseline the distributed runtime is measured against (`botc dev kafka-passthrough`,
//! scripts/bench-distributed): what the broker and librdkafka alone do on this machine when
//! every event is consumed and produced again, with botc's producer settings (idempotent,
//! `acks=all`) and nothing else: no Redis, no VM, no HTTP.

use crate::KafkaConfig;
use botc_runtime::clock::Clock;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::time::Duration;

/// What one run measured.
pub struct Passthrough {
    /// Events produced to the input topic, and how long until the brokers had them all.
    pub produced: usize,
    pub produce: Duration,
    /// Events consumed from the input and produced to the output, and how long until the
    /// brokers had the last one.
    pub passed: usize,
    pub pass: Duration,
}

/// botc's own producer, with room to queue a whole run.
fn producer(config: &KafkaConfig) -> Result<FutureProducer, String> {
    crate::kafka::producer_config(config)
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .map_err(|e| format!("cannot set up the kafka producer: {e}"))
}

/// Enqueues `record` (waiting for deliveries in `pending` while librdkafka's queue is full)
/// and adds its delivery to `pending`.
async fn enqueue(
    producer: &FutureProducer,
    mut record: FutureRecord<'_, [u8], [u8]>,
    pending: &mut FuturesUnordered<rdkafka::producer::DeliveryFuture>,
) -> Result<(), String> {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    loop {
        match producer.send_result(record) {
            Ok(delivery) => {
                pending.push(delivery);
                return Ok(());
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                match pending.next().await {
                    Some(d) => delivered(d)?,
                    None => tokio::time::sleep(Duration::from_millis(1)).await,
                }
            }
            Err((e, _)) => return Err(format!("produce: {e}")),
        }
    }
}

fn delivered(d: <rdkafka::producer::DeliveryFuture as std::future::Future>::Output) -> Result<(), String> {
    match d {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(format!("produce: {e}")),
        Err(_) => Err("the producer went away".into()),
    }
}

/// Produces `events` payloads of `size` bytes to `config.topic` (spread over its partitions),
/// then consumes them and produces each to `output` (same partition), timing both on `clock`.
pub async fn run(
    config: &KafkaConfig,
    output: &str,
    events: usize,
    size: usize,
    clock: &dyn Clock,
) -> Result<Passthrough, String> {
    let producer = producer(config)?;
    let partitions = config.partitions.max(1);
    // Where each partition ends now: the run reads from there.
    let starts: Vec<i64> = {
        let (p, topic) = (producer.clone(), config.topic.clone());
        tokio::task::spawn_blocking(move || {
            use rdkafka::producer::Producer;
            (0..partitions)
                .map(|i| {
                    p.client()
                        .fetch_watermarks(&topic, i as i32, Duration::from_secs(10))
                        .map(|(_, high)| high)
                        .map_err(|e| format!("cannot read topic {topic}: {e}"))
                })
                .collect::<Result<Vec<i64>, String>>()
        })
        .await
        .map_err(|e| e.to_string())??
    };
    let payload = vec![b'x'; size];
    let keys: Vec<String> = (0..events).map(|i| format!("bench/web/c{}", i % 1000)).collect();

    let started = clock.monotonic();
    let mut sends = FuturesUnordered::new();
    for (i, key) in keys.iter().enumerate() {
        let record = FutureRecord::to(&config.topic)
            .partition((i % partitions) as i32)
            .key(key.as_bytes())
            .payload(payload.as_slice());
        enqueue(&producer, record, &mut sends).await?;
    }
    while let Some(d) = sends.next().await {
        delivered(d)?;
    }
    let produce = clock.monotonic() - started;

    // botc's consumer settings: a position the broker no longer holds (librdkafka's mock keeps a
    // bounded log per partition) reads on from the oldest event, and the run then says it fell
    // short.
    let consumer: StreamConsumer = crate::kafka::consumer_config(config, "botc-passthrough")
        .create()
        .map_err(|e| format!("cannot set up the kafka consumer: {e}"))?;
    let mut tpl = TopicPartitionList::new();
    for (i, start) in starts.iter().enumerate() {
        tpl.add_partition_offset(&config.topic, i as i32, Offset::Offset(*start)).map_err(|e| e.to_string())?;
    }
    consumer.assign(&tpl).map_err(|e| format!("cannot read topic {}: {e}", config.topic))?;

    let started = clock.monotonic();
    let mut stream = consumer.stream();
    let mut passed = 0;
    let mut sends = FuturesUnordered::new();
    while passed < events {
        let m = match tokio::time::timeout(Duration::from_secs(30), stream.next()).await {
            Ok(Some(Ok(m))) => m,
            Ok(Some(Err(e))) => return Err(format!("consume: {e}")),
            Ok(None) | Err(_) => return Err(format!("consumed only {passed} of {events} events in 30 s")),
        };
        let record = FutureRecord::to(output)
            .partition(m.partition())
            .key(m.key().unwrap_or_default())
            .payload(m.payload().unwrap_or_default());
        enqueue(&producer, record, &mut sends).await?;
        passed += 1;
        // Collect what the brokers acknowledged so far, without waiting.
        while let Some(Some(d)) = futures_util::FutureExt::now_or_never(sends.next()) {
            delivered(d)?;
        }
    }
    while let Some(d) = sends.next().await {
        delivered(d)?;
    }
    let pass = clock.monotonic() - started;
    Ok(Passthrough { produced: events, produce, passed, pass })
}
