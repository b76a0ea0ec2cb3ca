//! History and the flow registry on the machine's Postgres (`BOTC_TEST_POSTGRES`, default
//! `postgres://postgres@127.0.0.1:5432/test`), each test in a schema of its own.

use botc_dist::{Postgres, PostgresConfig};
use botc_runtime::vm::Button;
use botc_serve::ports::{Direction, HistoryRecord, HistorySink};

fn url() -> String {
    std::env::var("BOTC_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Drops a test's schema when the test is over (also when it fails).
struct Schema(String);

impl Drop for Schema {
    fn drop(&mut self) {
        let (url, schema) = (url(), self.0.clone());
        // A runtime of its own: the test's may be shutting down.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async {
                if let Ok(pool) = sqlx::PgPool::connect(&url).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {schema} CASCADE")))
                        .execute(&pool)
                        .await;
                }
            })
        })
        .join();
    }
}

async fn open() -> (Postgres, Schema) {
    let url = url();
    let schema = format!("botc_test_{:016x}", fastrand::u64(..));
    let pg = Postgres::open(&PostgresConfig { url, read_url: None, schema: schema.clone(), pool: 2 })
        .await
        .expect("postgres");
    (pg, Schema(schema))
}

fn record(id: &str, conversation: &str, at: u64) -> HistoryRecord {
    HistoryRecord {
        id: id.into(),
        bot: "shop".into(),
        conversation: conversation.into(),
        user_id: format!("web:{conversation}"),
        platform: "web".into(),
        direction: Direction::Out,
        kind: "message".into(),
        text: format!("text of {id} — ünïcode, 'quotes'"),
        buttons: vec![Button { label: "Yes".into(), value: Some("y".into()), url: None }],
        at,
    }
}

#[tokio::test]
async fn history_is_stored_once_per_id_in_batch_order() {
    let (pg, _schema) = open().await;
    let batch: Vec<HistoryRecord> = (0..5).map(|i| record(&format!("e{i}:0"), "c1", 100 + i)).collect();
    pg.record(batch.clone()).await.expect("first batch");
    // A batch shipped again (the shipper crashed before forgetting it), overlapping a new one.
    let mut again = batch[3..].to_vec();
    again.push(record("e5:0", "c1", 105));
    pg.record(again).await.expect("second batch");
    let got = pg.transcript("shop", "c1", true, 100).await.expect("read");
    let ids: Vec<&str> = got.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["e0:0", "e1:0", "e2:0", "e3:0", "e4:0", "e5:0"]);
    assert_eq!(got[0], batch[0], "a record comes back as it was stored");
    assert_eq!(pg.count().await.expect("count"), 6);
    let by_user = pg.transcript("shop", "web:c1", false, 2).await.expect("by user");
    assert_eq!(by_user.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["e4:0", "e5:0"], "the latest, oldest first");
}

#[tokio::test]
async fn a_second_open_finds_the_schema_migrated() {
    let (pg, schema) = open().await;
    pg.record(vec![record("x", "c", 1)]).await.expect("record");
    pg.close().await;
    let again = Postgres::open(&PostgresConfig { url: url(), read_url: None, schema: schema.0.clone(), pool: 1 })
        .await
        .expect("reopen");
    assert_eq!(again.count().await.expect("count"), 1, "the reopened schema kept its history");
}

#[tokio::test]
async fn a_bad_schema_name_is_refused_before_connecting() {
    let e = Postgres::open(&PostgresConfig {
        url: "postgres://nowhere.invalid/x".into(),
        read_url: None,
        schema: "a; DROP".into(),
        pool: 1,
    })
    .await
    .err()
    .expect("refused");
    assert!(e.contains("schema `a; DROP` is not valid"), "{e}");
}

/// The flow registry's contract, on two connections to one schema (two processes).
mod registry {
    use super::*;
    use botc_serve::contract::FreshRegistry;

    async fn fresh() -> FreshRegistry<Postgres> {
        let (first, schema) = open().await;
        let second = Postgres::open(&PostgresConfig { url: url(), read_url: None, schema: schema.0.clone(), pool: 2 })
            .await
            .expect("postgres");
        FreshRegistry { first, second, keep: Box::new(schema) }
    }

    botc_serve::registry_suite!(fresh());
}
