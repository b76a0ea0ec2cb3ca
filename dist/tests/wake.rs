//! Wake-ups between processes: a process waiting for a transcript to change is woken when
//! another process commits a batch with transcript entries, well before its fallback poll.

mod support;

use botc_dist::{Conn, Distributed, Kafka, KafkaConfig, Keys, Redis, RedisAddr};
use botc_serve::Entry;
use botc_serve::ports::{Batch, Committer, Expected, Leases, Message, SessionWrite, Stored, Transcript, Work};
use std::sync::Arc;
use std::time::Duration;

async fn process(brokers: &str, topic: &str, addr: &RedisAddr, prefix: &str) -> Distributed {
    let conn = Conn::connect(addr).await.expect("redis");
    let kafka = Kafka::new(KafkaConfig {
        brokers: brokers.into(),
        topic: topic.into(),
        partitions: 1,
        publish_timeout: Duration::from_secs(5),
        settings: vec![],
    })
    .expect("kafka");
    Distributed::new(Redis::new(conn, Keys::new(prefix), 60_000, 0), kafka)
}

#[tokio::test]
async fn a_commit_in_one_process_wakes_a_transcript_reader_in_another() {
    let (brokers, topic, _mock) = support::kafka(1).await;
    let addr = RedisAddr::Single(std::env::var("BOTC_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()));
    let prefix = format!("botc-test:{:016x}:", fastrand::u64(..));
    let (writer, reader) =
        (process(&brokers, &topic, &addr, &prefix).await, process(&brokers, &topic, &addr, &prefix).await);
    reader.listen(&addr);
    // Subscribing wakes every waiter once (anything missed meanwhile is looked at).
    tokio::time::timeout(Duration::from_secs(3), reader.changed("bot/web/c")).await.expect("subscribed");

    let changed = reader.changed("bot/web/c");
    let lease =
        writer.acquire(Work::Partition(0), "w", 1_000, Duration::from_secs(10)).await.expect("lease").expect("free");
    let key = "bot/web/c".to_string();
    let mut batch = Batch::new(lease, 1);
    batch.sessions.push(SessionWrite {
        key: key.clone(),
        expected: Expected::Absent,
        stored: Stored { session: vec![1], version: 1, applied: 1, partition: 0, name: String::new(), touched_at: 0 },
    });
    let entry =
        Entry { seq: 0, id: "e1:0".into(), from: botc_serve::From::Bot, text: "hi".into(), buttons: vec![], at: 0 };
    batch.messages.push(Message { key: key.clone(), entry });
    writer.commit(Arc::new(batch)).await.expect("commit");
    // Well under the fallback poll (5 s): woken by the writer's announcement.
    tokio::time::timeout(Duration::from_secs(2), changed).await.expect("the reader was woken");
    assert_eq!(reader.after(&key, 0).await.expect("read").len(), 1);
    let _ = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("redis-cli --scan --pattern '{prefix}*' | xargs -r redis-cli del >/dev/null"))
        .status();
}
