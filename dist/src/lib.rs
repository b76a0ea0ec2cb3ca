//! botc's distributed column: the same ports `botc serve` runs on, implemented on Kafka (the
//! event bus) and Redis or Redis Cluster (leases, bus positions, sessions, transcripts,
//! replies, timers, outbox, history queue, redelivery marks) and Postgres (history, the flow
//! registry), so the roles run as separate
//! processes that scale by running more copies. Every adapter passes the port contract
//! (`botc_serve::contract`).

pub mod conn;
pub mod kafka;
pub mod limiter;
pub mod mock;
pub mod passthrough;
pub mod postgres;
pub mod redis;
pub mod store;
pub mod wake;

pub use conn::{Conn, RedisAddr};
pub use kafka::{Kafka, KafkaConfig};
pub use limiter::RedisLimiter;
pub use postgres::{Postgres, PostgresConfig};
pub use redis::{Keys, Redis};
pub use store::Distributed;
