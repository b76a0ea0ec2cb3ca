//! Real infrastructure for the distributed tests: a Redis Cluster of 3 masters and 3
//! replicas that the tests start themselves (temp dir, own ports), shared by the tests of
//! one binary. Each server is watched by a small shell loop that stops it when the test
//! process exits, so no server outlives its tests. And a Kafka topic per test, on a mock
//! cluster or a real broker.

// Each test binary uses part of this module.
#![allow(dead_code)]

use botc_runtime::clock::{Clock, SystemClock};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

pub struct RedisCluster {
    pub nodes: Vec<String>,
    pub ports: Vec<u16>,
    /// The watchdog shells (each ends with its server when the test process does).
    _servers: Vec<std::process::Child>,
    _dir: tempfile::TempDir,
}

/// A port that is free, with its cluster bus port (+10000) free too.
fn free_port() -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

pub fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli").arg("-p").arg(port.to_string()).args(args).output().expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A cluster of this test's own (one it may break).
pub fn start() -> RedisCluster {
    let dir = tempfile::tempdir().expect("temp dir");
    let ports: Vec<u16> = (0..6).map(|_| free_port()).collect();
    let me = std::process::id();
    let mut servers = Vec::new();
    for port in &ports {
        let node_dir = dir.path().join(port.to_string());
        std::fs::create_dir_all(&node_dir).expect("node dir");
        let server = format!(
            "redis-server --port {port} --bind 127.0.0.1 --cluster-enabled yes --cluster-config-file nodes.conf \
             --save '' --appendonly no --repl-diskless-sync-delay 0 --cluster-replica-validity-factor 0 \
             --cluster-node-timeout 2000 --dir {dir} --logfile {dir}/log",
            dir = node_dir.display()
        );
        // The server, and a watchdog that stops it once this test process is gone.
        let script = format!("{server} & s=$!; while kill -0 {me} 2>/dev/null; do sleep 1; done; kill $s");
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        servers.push(child);
    }
    let clock = SystemClock::default();
    let deadline = clock.monotonic() + Duration::from_secs(20);
    for port in &ports {
        while cli(*port, &["PING"]).trim() != "PONG" {
            assert!(clock.monotonic() < deadline, "redis-server on {port} did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let created = Command::new("redis-cli")
        .arg("--cluster")
        .arg("create")
        .args(&addrs)
        .args(["--cluster-replicas", "1", "--cluster-yes"])
        .output()
        .expect("redis-cli --cluster create");
    assert!(created.status.success(), "cluster create: {}", String::from_utf8_lossy(&created.stdout));
    for port in &ports {
        while !cli(*port, &["CLUSTER", "INFO"]).contains("cluster_state:ok") {
            assert!(clock.monotonic() < deadline, "the cluster did not become ok on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    RedisCluster { nodes: addrs.iter().map(|a| format!("redis://{a}")).collect(), ports, _servers: servers, _dir: dir }
}

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
