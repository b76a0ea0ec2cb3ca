//! Conversation history and the flow registry in SQLite (through sqlx), next to the embedded
//! store: `history.sqlite` in the data directory. People and tools read it while botc runs
//! (`botc history`, or any SQLite client); botc writes it from the history queue, so a crash
//! between a batch and its history costs nothing: the records wait in the store and are
//! written again (a record whose id is there already is kept once).

use super::ports::{Direction, FlowRegistry, Fut, HistoryRecord, HistorySink, StoreError};
use botc_runtime::vm::Button;
use serde_json::{Value as Json, json};
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use std::path::Path;
use std::time::Duration;

/// The schema's version, in SQLite's `user_version`, so a botc from before migrations
/// refuses a database a newer one changed (migrations themselves are tracked by sqlx).
const SCHEMA_VERSION: i64 = 2;

/// The history database's migrations, in order. Built with `Migrator::with_migrations` over
/// `include_str!` rather than the `sqlx::migrate!` macro: the macro's crate would compile
/// SQLite a second time (for the compiler), and this is all it would generate.
fn migrator() -> sqlx::migrate::Migrator {
    use sqlx::SqlSafeStr;
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    let step = |version, description: &'static str, sql: &'static str| {
        Migration::new(version, description.into(), MigrationType::Simple, sql.into_sql_str(), false)
    };
    Migrator::with_migrations(vec![
        step(1, "history", include_str!("../migrations/sqlite/0001_history.sql")),
        step(2, "flows by bot", include_str!("../migrations/sqlite/0002_flows_by_bot.sql")),
    ])
}

pub struct SqliteHistory {
    pool: SqlitePool,
}

fn db(e: sqlx::Error) -> StoreError {
    StoreError::Io(format!("history database: {e}"))
}

/// The history file in a data directory.
pub fn history_path(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("history.sqlite")
}

impl SqliteHistory {
    /// Opens (or creates) the history database for writing.
    pub async fn open(path: &Path) -> Result<SqliteHistory, String> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // The history queue forgets records once they are here: they must be on disk.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&pool)
            .await
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if version > SCHEMA_VERSION {
            return Err(format!(
                "{} was written by a newer botc (history schema {version}; this one knows {SCHEMA_VERSION})",
                path.display()
            ));
        }
        migrator().run(&pool).await.map_err(|e| format!("cannot set up {}: {e}", path.display()))?;
        sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA user_version = {SCHEMA_VERSION}")))
            .execute(&pool)
            .await
            .map_err(|e| format!("cannot set up {}: {e}", path.display()))?;
        Ok(SqliteHistory { pool })
    }

    /// Opens an existing history database to read it, also while botc writes it.
    pub async fn open_read_only(path: &Path) -> Result<SqliteHistory, String> {
        if !path.exists() {
            return Err(format!(
                "there is no history at {} yet; `botc serve` writes it in its data directory (is --data-dir right?)",
                path.display()
            ));
        }
        let options = SqliteConnectOptions::new().filename(path).read_only(true).busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        Ok(SqliteHistory { pool })
    }

    /// A user's (or, with `by_conversation`, a conversation's) history with a bot, oldest
    /// first: the last `limit` records.
    pub async fn transcript(
        &self,
        bot: &str,
        who: &str,
        by_conversation: bool,
        limit: u32,
    ) -> Result<Vec<HistoryRecord>, StoreError> {
        let sql = if by_conversation {
            "SELECT * FROM (SELECT * FROM history WHERE bot = ? AND conversation = ? ORDER BY seq DESC LIMIT ?) ORDER BY seq"
        } else {
            "SELECT * FROM (SELECT * FROM history WHERE bot = ? AND user_id = ? ORDER BY seq DESC LIMIT ?) ORDER BY seq"
        };
        let rows = sqlx::query(sql).bind(bot).bind(who).bind(limit).fetch_all(&self.pool).await.map_err(db)?;
        rows.iter().map(record).collect()
    }

    /// Up to `limit` users with history with `bot`, most recent first: a hint for the person
    /// who asked for one that has none.
    pub async fn users(&self, bot: &str, limit: u32) -> Result<Vec<String>, StoreError> {
        let rows =
            sqlx::query("SELECT user_id FROM history WHERE bot = ? GROUP BY user_id ORDER BY MAX(seq) DESC LIMIT ?")
                .bind(bot)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
        rows.iter().map(|r| r.try_get::<String, _>(0).map_err(db)).collect()
    }

    /// Every bot with history.
    pub async fn bots(&self) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar("SELECT DISTINCT bot FROM history ORDER BY bot").fetch_all(&self.pool).await.map_err(db)
    }

    pub async fn count(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM history").fetch_one(&self.pool).await.map_err(db)?;
        Ok(n as u64)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn record(row: &sqlx::sqlite::SqliteRow) -> Result<HistoryRecord, StoreError> {
    record_from_columns(|name| row.try_get::<String, _>(name).map_err(db), row.try_get::<i64, _>("at").map_err(db)?)
}

/// A history record from a database row (SQLite here, Postgres in the distributed store):
/// `get` reads a text column by name, `at` is the `at` column.
pub fn record_from_columns(
    get: impl Fn(&str) -> Result<String, StoreError>,
    at: i64,
) -> Result<HistoryRecord, StoreError> {
    let buttons: Json = serde_json::from_str(&get("buttons")?).unwrap_or(Json::Null);
    let buttons = buttons
        .as_array()
        .map(|list| {
            list.iter()
                .map(|b| Button {
                    label: b["label"].as_str().unwrap_or_default().to_string(),
                    value: b["value"].as_str().map(str::to_string),
                    url: b["url"].as_str().map(str::to_string),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(HistoryRecord {
        id: get("id")?,
        bot: get("bot")?,
        conversation: get("conversation")?,
        user_id: get("user_id")?,
        platform: get("platform")?,
        direction: if get("direction")? == "in" { Direction::In } else { Direction::Out },
        kind: get("kind")?,
        text: get("text")?,
        buttons,
        at: at as u64,
    })
}

/// A record's buttons as the JSON text the history tables keep.
pub fn buttons_json(buttons: &[Button]) -> String {
    let list: Vec<Json> = buttons.iter().map(|b| json!({ "label": b.label, "value": b.value, "url": b.url })).collect();
    Json::Array(list).to_string()
}

/// The `direction` column's value.
pub fn direction_name(d: Direction) -> &'static str {
    match d {
        Direction::In => "in",
        Direction::Out => "out",
    }
}

impl HistorySink for SqliteHistory {
    fn record(&self, records: Vec<HistoryRecord>) -> Fut<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await.map_err(db)?;
            for r in &records {
                sqlx::query(
                    "INSERT OR IGNORE INTO history (id, bot, conversation, user_id, platform, direction, kind, text, buttons, at)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(&r.id)
                .bind(&r.bot)
                .bind(&r.conversation)
                .bind(&r.user_id)
                .bind(&r.platform)
                .bind(direction_name(r.direction))
                .bind(&r.kind)
                .bind(&r.text)
                .bind(buttons_json(&r.buttons))
                .bind(r.at as i64)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            }
            tx.commit().await.map_err(db)
        })
    }
}

impl FlowRegistry for SqliteHistory {
    fn register(&self, bot: String, hash: [u8; 32], bytecode: Vec<u8>, at: u64) -> Fut<'_, Result<(), StoreError>> {
        Box::pin(async move {
            sqlx::query("INSERT OR IGNORE INTO flows (bot, hash, bytecode, first_served) VALUES (?, ?, ?, ?)")
                .bind(bot)
                .bind(hex(&hash))
                .bind(bytecode)
                .bind(at as i64)
                .execute(&self.pool)
                .await
                .map_err(db)?;
            Ok(())
        })
    }

    fn versions(&self, bot: String) -> Fut<'_, Result<Vec<Vec<u8>>, StoreError>> {
        Box::pin(async move {
            sqlx::query_scalar("SELECT bytecode FROM flows WHERE bot = ? ORDER BY first_served")
                .bind(bot)
                .fetch_all(&self.pool)
                .await
                .map_err(db)
        })
    }
}

/// A flow's hash as the registry keeps it.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
