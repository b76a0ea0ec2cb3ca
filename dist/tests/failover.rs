//! A Redis Cluster master killed with SIGKILL: its replica takes over, and every session and
//! transcript entry a committed batch wrote is still there (each batch waits for a replica
//! before the partition's position moves); the store goes on working on the new master, also
//! when the cluster client wedges in its slot refresh (it does in about one run of four; the
//! connection then replaces itself, `dist/src/conn.rs`).

mod support;

use botc_dist::{Conn, Distributed, Kafka, KafkaConfig, Keys, Redis, RedisAddr};
use botc_serve::Entry;
use botc_serve::ports::{
    Batch, Committer, Expected, Found, Leases, Message, SessionStore, SessionWrite, Stored, Transcript, Work,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn batch(lease: &botc_serve::ports::Lease, keys: &[String], version: u64) -> Batch {
    let mut b = Batch::new(lease.clone(), version);
    for k in keys {
        let expected = if version == 1 { Expected::Absent } else { Expected::Version(version - 1) };
        let stored =
            Stored { session: vec![1], version, applied: version, partition: 0, name: String::new(), touched_at: 0 };
        b.sessions.push(SessionWrite { key: k.clone(), expected, stored });
        let entry = Entry {
            seq: 0,
            id: format!("{k}:{version}"),
            from: botc_serve::From::Bot,
            text: "hi".into(),
            buttons: vec![],
            at: 0,
        };
        b.messages.push(Message { key: k.clone(), entry });
    }
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::disallowed_methods)] // a real cluster fails over on the real clock
async fn a_killed_master_fails_over_and_nothing_committed_is_lost() {
    // RUST_LOG=botc_dist=debug,redis=debug shows the client's recovery.
    let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).try_init();
    let cluster = support::start();
    let (brokers, topic, _mock) = support::kafka(1).await;
    let addr = RedisAddr::Cluster(cluster.nodes.clone());
    let conn = Conn::connect(&addr).await.expect("cluster");
    let kafka = Kafka::new(KafkaConfig {
        brokers,
        topic,
        partitions: 1,
        publish_timeout: Duration::from_secs(5),
        settings: vec![],
    })
    .expect("kafka");
    let store = Distributed::new(Redis::new(conn, Keys::new("botc:"), 0, 1), kafka);
    let lease =
        store.acquire(Work::Partition(0), "w", 1_000, Duration::from_secs(3600)).await.expect("lease").expect("free");
    let keys: Vec<String> = (0..50).map(|i| format!("bot/web/c{i}")).collect();
    store.commit(Arc::new(batch(&lease, &keys, 1))).await.expect("commit");

    // The master holding the first conversation's session answers for it (the others
    // redirect): kill it, and wait for its replica to take over.
    let master = cluster.master_of("botc:{c:bot/web/c0}:s");
    cluster.kill(master);
    cluster.wait_ok_without(master);
    let deadline = Instant::now() + Duration::from_secs(60);
    // Every session and entry is there; the client finds the new master by itself.
    let found = loop {
        match store.load(&keys).await {
            Ok(f) if f.len() == keys.len() => break f,
            Ok(f) => panic!("sessions lost in the failover: {} of {} left", f.len(), keys.len()),
            Err(e) => {
                assert!(Instant::now() < deadline, "the store never reached the new master: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    assert!(found.values().all(|f| matches!(f, Found::Stored(s) if s.version == 1)));
    for k in &keys {
        assert_eq!(store.after(k, 0).await.expect("transcript").len(), 1, "{k}'s transcript entry was lost");
    }
    // And the store goes on: the next batch commits on the new master.
    loop {
        match store.commit(Arc::new(batch(&lease, &keys, 2))).await {
            Ok(()) => break,
            Err(e) => {
                assert!(Instant::now() < deadline, "commits never worked again: {e:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}
