//! A Redis Cluster of 3 masters and 3 replicas that a test starts itself (temp dir, own
//! ports). Each server is watched by a small shell loop that stops it when the test process
//! exits, so no server outlives its tests. Shared by the dist tests and the end-to-end tests
//! (which include this file by path).

use botc_runtime::clock::{Clock, SystemClock};
use std::net::TcpListener;
use std::process::{Command, Stdio};
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

impl RedisCluster {
    /// The port of the master that holds `key` (the others answer it with MOVED).
    pub fn master_of(&self, key: &str) -> u16 {
        *self.ports.iter().find(|p| cli(**p, &["EXISTS", key]).trim() == "1").expect("a master holds the key")
    }

    /// Kills the server on `port` with SIGKILL.
    pub fn kill(&self, port: u16) {
        let info = cli(port, &["INFO", "server"]);
        let pid = info.lines().find_map(|l| l.trim().strip_prefix("process_id:")).expect("pid").to_string();
        assert!(Command::new("kill").args(["-KILL", &pid]).status().expect("kill").success());
    }

    /// Waits (on the real clock: the cluster's own timeouts) until every node but `dead`
    /// says the cluster is ok again.
    pub fn wait_ok_without(&self, dead: u16) {
        let clock = SystemClock::default();
        let deadline = clock.monotonic() + Duration::from_secs(60);
        let others: Vec<u16> = self.ports.iter().copied().filter(|p| *p != dead).collect();
        while !others.iter().all(|p| cli(*p, &["CLUSTER", "INFO"]).contains("cluster_state:ok")) {
            assert!(clock.monotonic() < deadline, "the cluster never recovered");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
