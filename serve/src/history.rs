//! Conversation history and the flow registry in SQLite (through sqlx), next to the embedded
//! store: `history.sqlite` in the data directory. People and tools read it while botc runs
//! (`botc history`, or any SQLite client); botc writes it from the history queue, so a crash
//! between a batch and its history costs nothing: the records wait in the store and are
//! written again (a record whose id is there already is kept once).

use super::ports::{Deploy, Direction, FlowRegistry, Fut, HistoryRecord, HistorySink, Source, StoreError, Version};
use botc_runtime::vm::Button;
use serde_json::{Value as Json, json};
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use std::path::Path;
use std::time::Duration;

/// The schema's version, in SQLite's `user_version`, so a botc from before migrations
/// refuses a database a newer one changed (migrations themselves are tracked by sqlx).
const SCHEMA_VERSION: i64 = 4;

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
        step(3, "versions and environments", include_str!("../migrations/sqlite/0003_versions_and_environments.sql")),
        step(4, "secrets", include_str!("../migrations/sqlite/0004_secrets.sql")),
    ])
}

pub struct SqliteHistory {
    pool: SqlitePool,
    /// The file written, and which file it was when opened (device and inode): SQLite goes
    /// on writing a file deleted or replaced under it, where nobody will read it again.
    file: Option<(std::path::PathBuf, (u64, u64))>,
}

/// A file's identity on its filesystem.
fn identity(path: &Path) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
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
        let file = identity(path).map(|id| (path.to_path_buf(), id));
        Ok(SqliteHistory { pool, file })
    }

    /// Records `secret` under `name`, replacing what was there.
    pub async fn replace_secret(&self, name: &str, secret: [u8; 32]) -> Result<(), StoreError> {
        sqlx::query("INSERT OR REPLACE INTO secrets (name, secret) VALUES (?1, ?2)")
            .bind(name)
            .bind(secret.to_vec())
            .execute(&self.pool)
            .await
            .map_err(db)
            .map(|_| ())
    }

    /// `Err` when the file written is no longer the one at its path (deleted or replaced
    /// while botc runs): then nothing is written, so the records wait in the store's queue
    /// until botc is restarted, instead of going into a file nobody will read.
    fn still_there(&self) -> Result<(), StoreError> {
        match &self.file {
            Some((path, id)) if identity(path) != Some(*id) => Err(StoreError::Io(format!(
                "{} was deleted or replaced while botc runs; history waits in the store until botc is restarted \
                 (which makes a new one)",
                path.display()
            ))),
            _ => Ok(()),
        }
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
        Ok(SqliteHistory { pool, file: None })
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
            self.still_there()?;
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
    fn register(
        &self,
        bot: String,
        hash: [u8; 32],
        bytecode: Vec<u8>,
        source: Source,
        at: u64,
    ) -> Fut<'_, Result<Version, StoreError>> {
        Box::pin(async move {
            self.still_there()?;
            // One statement, so the next number is taken atomically (SQLite has one writer).
            sqlx::query(
                "INSERT OR IGNORE INTO flows (bot, hash, bytecode, first_served, number, source_commit, source_author, source_message)
                 SELECT ?1, ?2, ?3, ?4, COALESCE(MAX(number), 0) + 1, ?5, ?6, ?7 FROM flows WHERE bot = ?1",
            )
            .bind(&bot)
            .bind(hex(&hash))
            .bind(bytecode)
            .bind(at as i64)
            .bind(&source.commit)
            .bind(&source.author)
            .bind(&source.message)
            .execute(&self.pool)
            .await
            .map_err(db)?;
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {VERSION_COLUMNS} FROM flows WHERE bot = ? AND hash = ?"
            )))
            .bind(&bot)
            .bind(hex(&hash))
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
            version_row(&row).map_err(db)
        })
    }

    fn programs(&self, bot: String) -> Fut<'_, Result<Vec<Vec<u8>>, StoreError>> {
        Box::pin(async move {
            sqlx::query_scalar("SELECT bytecode FROM flows WHERE bot = ? ORDER BY number")
                .bind(bot)
                .fetch_all(&self.pool)
                .await
                .map_err(db)
        })
    }

    fn program(&self, bot: String, hash: [u8; 32]) -> Fut<'_, Result<Option<Vec<u8>>, StoreError>> {
        Box::pin(async move {
            sqlx::query_scalar("SELECT bytecode FROM flows WHERE bot = ? AND hash = ?")
                .bind(bot)
                .bind(hex(&hash))
                .fetch_optional(&self.pool)
                .await
                .map_err(db)
        })
    }

    fn versions(&self, bot: String) -> Fut<'_, Result<Vec<Version>, StoreError>> {
        Box::pin(async move {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {VERSION_COLUMNS} FROM flows WHERE bot = ? ORDER BY number"
            )))
            .bind(bot)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
            rows.iter().map(|r| version_row(r).map_err(db)).collect()
        })
    }

    fn environment(&self, environment: String) -> Fut<'_, Result<Vec<Version>, StoreError>> {
        Box::pin(async move {
            let columns = VERSION_COLUMNS.replace(", ", ", f.");
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT f.{columns} FROM aliases a JOIN flows f ON f.bot = a.bot AND f.number = a.number
                 WHERE a.environment = ? ORDER BY a.bot"
            )))
            .bind(environment)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
            rows.iter().map(|r| version_row(r).map_err(db)).collect()
        })
    }

    fn point(&self, d: Deploy) -> Fut<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await.map_err(db)?;
            let exists: Option<i64> = sqlx::query_scalar("SELECT number FROM flows WHERE bot = ? AND number = ?")
                .bind(&d.bot)
                .bind(d.to as i64)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
            if exists.is_none() {
                return Err(StoreError::Io(format!("bot `{}` has no version {}", d.bot, d.to)));
            }
            // Compare-and-set in the statement that writes, so two deploys cannot both win.
            let moved = match d.from {
                Some(from) => {
                    sqlx::query("UPDATE aliases SET number = ? WHERE bot = ? AND environment = ? AND number = ?")
                        .bind(d.to as i64)
                        .bind(&d.bot)
                        .bind(&d.environment)
                        .bind(from as i64)
                }
                None => sqlx::query("INSERT OR IGNORE INTO aliases (number, bot, environment) VALUES (?, ?, ?)")
                    .bind(d.to as i64)
                    .bind(&d.bot)
                    .bind(&d.environment),
            }
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
            if moved != 1 {
                return Err(StoreError::Conflict(vec![format!("{}@{}", d.bot, d.environment)]));
            }
            let seq: i64 = sqlx::query_scalar(
                "INSERT INTO deploys (bot, environment, from_number, to_number, action, by_whom, plan, at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq",
            )
            .bind(&d.bot)
            .bind(&d.environment)
            .bind(d.from.map(|n| n as i64))
            .bind(d.to as i64)
            .bind(&d.action)
            .bind(&d.by)
            .bind(&d.plan)
            .bind(d.at as i64)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
            tx.commit().await.map_err(db)?;
            Ok(seq as u64)
        })
    }

    fn deploys(&self, bot: Option<String>, limit: usize) -> Fut<'_, Result<Vec<Deploy>, StoreError>> {
        Box::pin(async move {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {DEPLOY_COLUMNS} FROM deploys WHERE ?1 IS NULL OR bot = ?1 ORDER BY seq DESC LIMIT ?2"
            )))
            .bind(bot)
            .bind(limit.min(i64::MAX as usize) as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
            rows.iter().map(|r| deploy_row(r).map_err(db)).collect()
        })
    }

    fn secret(&self, name: String, fresh: [u8; 32]) -> Fut<'_, Result<[u8; 32], StoreError>> {
        Box::pin(async move {
            sqlx::query("INSERT OR IGNORE INTO secrets (name, secret) VALUES (?1, ?2)")
                .bind(&name)
                .bind(fresh.to_vec())
                .execute(&self.pool)
                .await
                .map_err(db)?;
            let kept: Vec<u8> = sqlx::query_scalar("SELECT secret FROM secrets WHERE name = ?1")
                .bind(&name)
                .fetch_one(&self.pool)
                .await
                .map_err(db)?;
            kept.try_into().map_err(|_| StoreError::Io(format!("the secret `{name}` is not 32 bytes")))
        })
    }

    fn last_deploy(&self) -> Fut<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let seq: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM deploys")
                .fetch_one(&self.pool)
                .await
                .map_err(db)?;
            Ok(seq as u64)
        })
    }

    fn deployed_after(&self, seq: u64) -> Fut<'_, Result<u64, StoreError>> {
        // SQLite tells no other process about a commit: `botc deploy` writes from its own
        // process, so the server looks twice a second (one indexed read).
        Box::pin(async move {
            loop {
                let last = self.last_deploy().await?;
                if last > seq {
                    return Ok(last);
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    }
}

/// The registry's columns of a version and of a deploy, in the order [`version_row`] and
/// [`deploy_row`] read them: the same in SQLite and Postgres.
pub const VERSION_COLUMNS: &str = "bot, number, hash, source_commit, source_author, source_message, first_served";
pub const DEPLOY_COLUMNS: &str = "seq, bot, environment, from_number, to_number, action, by_whom, plan, at";

/// A version from a row of [`VERSION_COLUMNS`], in either database.
pub fn version_row<'r, R>(r: &'r R) -> Result<Version, sqlx::Error>
where
    R: Row,
    usize: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let hash: String = r.try_get(2)?;
    Ok(Version {
        bot: r.try_get(0)?,
        number: r.try_get::<i64, _>(1)? as u64,
        hash: unhex(&hash).ok_or_else(|| sqlx::Error::Decode(format!("a flow hash `{hash}` is not valid").into()))?,
        source: Source { commit: r.try_get(3)?, author: r.try_get(4)?, message: r.try_get(5)? },
        at: r.try_get::<i64, _>(6)? as u64,
    })
}

/// A deploy from a row of [`DEPLOY_COLUMNS`], in either database.
pub fn deploy_row<'r, R>(r: &'r R) -> Result<Deploy, sqlx::Error>
where
    R: Row,
    usize: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(Deploy {
        seq: r.try_get::<i64, _>(0)? as u64,
        bot: r.try_get(1)?,
        environment: r.try_get(2)?,
        from: r.try_get::<Option<i64>, _>(3)?.map(|n| n as u64),
        to: r.try_get::<i64, _>(4)? as u64,
        action: r.try_get(5)?,
        by: r.try_get(6)?,
        plan: r.try_get(7)?,
        at: r.try_get::<i64, _>(8)? as u64,
    })
}

/// A hash as [`hex`] wrote it, back to bytes.
pub fn unhex(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if s.len() != 64 {
        return None;
    }
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A flow's hash as the registry keeps it.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
