//! A Redis Cluster master killed with SIGKILL: its replica takes over, and every session and
//! transcript entry a committed batch wrote is still there (each batch waits for a replica
//! before the partition's position moves); the store goes on working on the new master.

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
        };
        b.messages.push(Message { key: k.clone(), entry });
    }
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::disallowed_methods)] // a real cluster fails over on the real clock
async fn a_killed_master_fails_over_and_nothing_committed_is_lost() {
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
    let store = Distributed::new(Redis { conn, keys: Keys::new("botc:"), idle_ms: 0, replicas: 1 }, kafka);
    let lease =
        store.acquire(Work::Partition(0), "w", 1_000, Duration::from_secs(3600)).await.expect("lease").expect("free");
    let keys: Vec<String> = (0..50).map(|i| format!("bot/web/c{i}")).collect();
    store.commit(Arc::new(batch(&lease, &keys, 1))).await.expect("commit");

    // The master holding the first conversation's session answers for it (the others
    // redirect): kill it.
    let session_key = "botc:{c:bot/web/c0}:s";
    let master = *cluster
        .ports
        .iter()
        .find(|p| support::cli(**p, &["EXISTS", session_key]).trim() == "1")
        .expect("a master holds the session");
    let info = support::cli(master, &["INFO", "server"]);
    let pid = info.lines().find_map(|l| l.trim().strip_prefix("process_id:")).expect("pid").to_string();
    assert!(std::process::Command::new("kill").args(["-KILL", &pid]).status().expect("kill").success());

    // Wait (on the real clock: the cluster's own timeouts) for the replica to take over.
    let deadline = Instant::now() + Duration::from_secs(60);
    let others: Vec<u16> = cluster.ports.iter().copied().filter(|p| *p != master).collect();
    while !others.iter().all(|p| support::cli(*p, &["CLUSTER", "INFO"]).contains("cluster_state:ok")) {
        assert!(Instant::now() < deadline, "the cluster never recovered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
