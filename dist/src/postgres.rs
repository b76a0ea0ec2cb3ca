//! History and the flow registry in Postgres (sqlx, with migrations): batched, idempotent
//! inserts (one statement per batch, `ON CONFLICT DO NOTHING` on the records' ids), and the
//! reads `botc history` makes. The history shipper moves records here from the Redis queue,
//! so a Postgres outage delays history and loses none of it.

use botc_serve::ports::{Deploy, FlowRegistry, Fut, HistoryRecord, HistorySink, Source, StoreError, Version};
use botc_serve::registry_rows::{DEPLOY_COLUMNS, VERSION_COLUMNS, deploy_row, version_row};
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;

fn migrator() -> sqlx::migrate::Migrator {
    use sqlx::SqlSafeStr;
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    // Written out rather than `sqlx::migrate!`, which needs sqlx's proc macros (and their
    // build time) for one list of files.
    let step = |version, description: &'static str, sql: &'static str| {
        Migration::new(version, description.into(), MigrationType::Simple, sql.into_sql_str(), false)
    };
    Migrator::with_migrations(vec![
        step(1, "history and flows", include_str!("../migrations/postgres/0001_history_and_flows.sql")),
        step(2, "versions and environments", include_str!("../migrations/postgres/0002_versions_and_environments.sql")),
        step(3, "secrets", include_str!("../migrations/postgres/0003_secrets.sql")),
    ])
}

fn db(e: sqlx::Error) -> StoreError {
    StoreError::Io(format!("postgres: {e}"))
}

/// Where the database is and how many connections to keep.
#[derive(Clone, Debug)]
pub struct PostgresConfig {
    pub url: String,
    /// A read replica for history reads (`botc history`); `None` reads from `url`.
    pub read_url: Option<String>,
    /// The schema botc's tables live in (created if missing).
    pub schema: String,
    pub pool: u32,
}

pub struct Postgres {
    pool: PgPool,
}

impl Postgres {
    /// Connects and brings the schema up to date. Errors say what failed, for people.
    pub async fn open(config: &PostgresConfig) -> Result<Postgres, String> {
        let schema = &config.schema;
        if schema.is_empty() || !schema.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("postgres schema `{schema}` is not valid; use letters, digits and _"));
        }
        let options = PgConnectOptions::from_str(&config.url)
            .map_err(|e| format!("postgres url is not valid: {e}"))?
            .options([("search_path", schema.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(config.pool.max(1))
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(|e| format!("cannot connect to postgres: {e}"))?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA IF NOT EXISTS {schema}")))
            .execute(&pool)
            .await
            .map_err(|e| format!("cannot create postgres schema {schema}: {e}"))?;
        migrator().run(&pool).await.map_err(|e| format!("cannot migrate postgres schema {schema}: {e}"))?;
        Ok(Postgres { pool })
    }

    /// Connects for reading history only: to the read replica when one is configured, else
    /// to the primary; it changes nothing (a replica cannot be migrated), so a schema that is
    /// not there yet is an error that says so.
    pub async fn open_reader(config: &PostgresConfig) -> Result<Postgres, String> {
        let schema = &config.schema;
        let (url, which) = match &config.read_url {
            Some(url) => (url, "the postgres read replica (postgres.read_url)"),
            None => (&config.url, "postgres"),
        };
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| format!("{which}: the url is not valid: {e}"))?
            .options([("search_path", schema.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(|e| format!("cannot connect to {which}: {e}"))?;
        let table = format!("{schema}.history");
        let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
            .bind(&table)
            .fetch_one(&pool)
            .await
            .map_err(|e| format!("cannot read {which}: {e}"))?;
        if exists.is_none() {
            return Err(format!(
                "{which} has no table {table}: no role has started against this database yet (roles create and migrate the schema)"
            ));
        }
        Ok(Postgres { pool })
    }

    /// Connects without changing anything and says how far the schema is migrated: the
    /// latest migration applied (0: none yet) and the latest this botc knows.
    pub async fn migrated(config: &PostgresConfig) -> Result<(i64, i64), String> {
        let options = PgConnectOptions::from_str(&config.url).map_err(|e| format!("postgres url is not valid: {e}"))?;
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(|e| format!("cannot connect to postgres: {e}"))?;
        let table = format!("{}._sqlx_migrations", config.schema);
        let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
            .bind(&table)
            .fetch_one(&pool)
            .await
            .map_err(|e| format!("cannot read postgres: {e}"))?;
        let applied = match exists {
            None => 0,
            Some(_) => {
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COALESCE(MAX(version), 0) FROM {table}")))
                    .fetch_one(&pool)
                    .await
                    .map_err(|e| format!("cannot read {table}: {e}"))?
            }
        };
        pool.close().await;
        let known = migrator().iter().map(|m| m.version).max().unwrap_or(0);
        Ok((applied, known))
    }

    /// A conversation's (or a user's) latest `limit` records, oldest first.
    pub async fn transcript(
        &self,
        bot: &str,
        who: &str,
        by_conversation: bool,
        limit: u32,
    ) -> Result<Vec<HistoryRecord>, StoreError> {
        let column = if by_conversation { "conversation" } else { "user_id" };
        let sql = format!(
            "SELECT seq, id, bot, conversation, user_id, platform, direction, kind, text, buttons::text AS buttons, at
             FROM (SELECT * FROM history WHERE bot = $1 AND {column} = $2 ORDER BY seq DESC LIMIT $3) t ORDER BY seq"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(bot)
            .bind(who)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(record).collect()
    }

    /// A bot's users, the most recent first.
    pub async fn users(&self, bot: &str, limit: u32) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(
            "SELECT user_id FROM history WHERE bot = $1 GROUP BY user_id ORDER BY MAX(seq) DESC LIMIT $2",
        )
        .bind(bot)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)
    }

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

fn record(row: &sqlx::postgres::PgRow) -> Result<HistoryRecord, StoreError> {
    botc_serve::record_from_columns(|name| row.try_get::<String, _>(name).map_err(db), row.try_get("at").map_err(db)?)
}

impl HistorySink for Postgres {
    fn record(&self, records: Vec<HistoryRecord>) -> Fut<'_, Result<(), StoreError>> {
        Box::pin(async move {
            if records.is_empty() {
                return Ok(());
            }
            let col = |f: fn(&HistoryRecord) -> String| records.iter().map(f).collect::<Vec<String>>();
            let buttons = col(|r| botc_serve::buttons_json(&r.buttons));
            let at: Vec<i64> = records.iter().map(|r| r.at as i64).collect();
            // One statement for the whole batch; rows keep the batch's order.
            sqlx::query(
                "INSERT INTO history (id, bot, conversation, user_id, platform, direction, kind, text, buttons, at)
                 SELECT id, bot, conversation, user_id, platform, direction, kind, text, buttons::jsonb, at
                 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                             $8::text[], $9::text[], $10::bigint[])
                      AS t (id, bot, conversation, user_id, platform, direction, kind, text, buttons, at)
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(col(|r| r.id.clone()))
            .bind(col(|r| r.bot.clone()))
            .bind(col(|r| r.conversation.clone()))
            .bind(col(|r| r.user_id.clone()))
            .bind(col(|r| r.platform.clone()))
            .bind(col(|r| botc_serve::direction_name(r.direction).into()))
            .bind(col(|r| r.kind.clone()))
            .bind(col(|r| r.text.clone()))
            .bind(buttons)
            .bind(at)
            .execute(&self.pool)
            .await
            .map_err(db)?;
            Ok(())
        })
    }
}

impl FlowRegistry for Postgres {
    fn register(
        &self,
        bot: String,
        hash: [u8; 32],
        bytecode: Vec<u8>,
        source: Source,
        at: u64,
    ) -> Fut<'_, Result<Version, StoreError>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await.map_err(db)?;
            // Processes starting with new flows register at once: one at a time per bot, so
            // each version gets the next number.
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext('botc flows ' || $1))")
                .bind(&bot)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            sqlx::query(
                "INSERT INTO flows (bot, hash, bytecode, first_served, number, source_commit, source_author, source_message)
                 SELECT $1, $2, $3, $4, COALESCE(MAX(number), 0) + 1, $5, $6, $7 FROM flows WHERE bot = $1
                 ON CONFLICT (bot, hash) DO NOTHING",
            )
            .bind(&bot)
            .bind(botc_serve::hex(&hash))
            .bind(bytecode)
            .bind(at as i64)
            .bind(&source.commit)
            .bind(&source.author)
            .bind(&source.message)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {VERSION_COLUMNS} FROM flows WHERE bot = $1 AND hash = $2"
            )))
            .bind(&bot)
            .bind(botc_serve::hex(&hash))
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
            tx.commit().await.map_err(db)?;
            version_row(&row).map_err(db)
        })
    }

    fn programs(&self, bot: String) -> Fut<'_, Result<Vec<Vec<u8>>, StoreError>> {
        Box::pin(async move {
            sqlx::query_scalar("SELECT bytecode FROM flows WHERE bot = $1 ORDER BY number")
                .bind(bot)
                .fetch_all(&self.pool)
                .await
                .map_err(db)
        })
    }

    fn program(&self, bot: String, hash: [u8; 32]) -> Fut<'_, Result<Option<Vec<u8>>, StoreError>> {
        Box::pin(async move {
            sqlx::query_scalar("SELECT bytecode FROM flows WHERE bot = $1 AND hash = $2")
                .bind(bot)
                .bind(botc_serve::hex(&hash))
                .fetch_optional(&self.pool)
                .await
                .map_err(db)
        })
    }

    fn versions(&self, bot: String) -> Fut<'_, Result<Vec<Version>, StoreError>> {
        Box::pin(async move {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {VERSION_COLUMNS} FROM flows WHERE bot = $1 ORDER BY number"
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
                 WHERE a.environment = $1 ORDER BY a.bot"
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
            let exists: Option<i64> = sqlx::query_scalar("SELECT number FROM flows WHERE bot = $1 AND number = $2")
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
                    sqlx::query("UPDATE aliases SET number = $1 WHERE bot = $2 AND environment = $3 AND number = $4")
                        .bind(d.to as i64)
                        .bind(&d.bot)
                        .bind(&d.environment)
                        .bind(from as i64)
                }
                None => sqlx::query(
                    "INSERT INTO aliases (number, bot, environment) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                )
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
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING seq",
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
            // Delivered to listeners when (and only if) the deploy commits.
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(DEPLOYS_CHANNEL)
                .bind(seq.to_string())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)?;
            Ok(seq as u64)
        })
    }

    fn deploys(&self, bot: Option<String>, limit: usize) -> Fut<'_, Result<Vec<Deploy>, StoreError>> {
        Box::pin(async move {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {DEPLOY_COLUMNS} FROM deploys WHERE $1::TEXT IS NULL OR bot = $1 ORDER BY seq DESC LIMIT $2"
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
            sqlx::query("INSERT INTO secrets (name, secret) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
                .bind(&name)
                .bind(fresh.to_vec())
                .execute(&self.pool)
                .await
                .map_err(db)?;
            let kept: Vec<u8> = sqlx::query_scalar("SELECT secret FROM secrets WHERE name = $1")
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
        // LISTEN first, then look: a deploy committed in between is seen by the look, one
        // after it by the notification. A notification lost with a broken connection is
        // caught by looking again every 30 s.
        Box::pin(async move {
            let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool).await.map_err(db)?;
            listener.listen(DEPLOYS_CHANNEL).await.map_err(db)?;
            loop {
                let last = self.last_deploy().await?;
                if last > seq {
                    return Ok(last);
                }
                // A notification, or 30 s: either way, look again.
                if let Ok(Err(e)) = tokio::time::timeout(Duration::from_secs(30), listener.try_recv()).await {
                    return Err(db(e));
                }
            }
        })
    }
}

/// The channel a committed deploy is announced on (its payload: the deploy's sequence number).
pub const DEPLOYS_CHANNEL: &str = "botc_deploys";
