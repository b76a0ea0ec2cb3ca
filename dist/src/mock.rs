//! librdkafka's mock cluster: real Kafka protocol on loopback ports, in this process, for
//! tests and for trying the distributed roles on one machine without a broker. The cluster
//! is not `Send`, so it lives on a thread of its own until the handle is dropped.

use std::sync::mpsc;

/// What a test can do to the running cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Every broker stops answering (connections are refused).
    Down,
    /// The brokers answer again.
    Up,
}

/// A running mock cluster; dropping it stops the cluster.
pub struct MockKafka {
    pub brokers: String,
    stop: Option<mpsc::Sender<Fault>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MockKafka {
    /// Starts `brokers` mock brokers with `topics` created (name, partitions).
    pub fn start(brokers: i32, topics: &[(&str, usize)]) -> Result<MockKafka, String> {
        let topics: Vec<(String, usize)> = topics.iter().map(|(t, p)| (t.to_string(), *p)).collect();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<String, String>>();
        let (stop_tx, stop_rx) = mpsc::channel::<Fault>();
        let thread = std::thread::Builder::new()
            .name("kafka-mock".into())
            .spawn(move || {
                let cluster = match rdkafka::mocking::MockCluster::new(brokers) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("cannot start the mock Kafka cluster: {e}")));
                        return;
                    }
                };
                for (t, p) in &topics {
                    if let Err(e) = cluster.create_topic(t, *p as i32, 1) {
                        let _ = ready_tx.send(Err(format!("cannot create topic {t}: {e}")));
                        return;
                    }
                }
                let _ = ready_tx.send(Ok(cluster.bootstrap_servers()));
                // Until the handle is dropped (the sender with it).
                while let Ok(fault) = stop_rx.recv() {
                    for broker in 1..=brokers {
                        let done = match fault {
                            Fault::Down => cluster.broker_down(broker),
                            Fault::Up => cluster.broker_up(broker),
                        };
                        if let Err(e) = done {
                            tracing::error!(broker, error = %e, "the mock cluster did not take a fault");
                        }
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        let brokers = ready_rx.recv().map_err(|e| e.to_string())??;
        Ok(MockKafka { brokers, stop: Some(stop_tx), thread: Some(thread) })
    }
}

impl MockKafka {
    /// Makes every broker go down or come back.
    pub fn fault(&self, fault: Fault) {
        if let Some(tx) = &self.stop {
            let _ = tx.send(fault);
        }
    }
}

impl Drop for MockKafka {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
