//! `botc history`: a conversation's history from a data directory.

use crate::fail;
use std::path::Path;
use std::process::ExitCode;

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum HistoryFormat {
    Human,
    /// One JSON object per line
    Jsonl,
}

/// Where history is read from: `botc serve`'s data directory, or the distributed runtime's
/// Postgres.
enum Source {
    Sqlite(botc_serve::SqliteHistory),
    #[cfg(feature = "distributed")]
    Postgres(botc_dist::Postgres),
}

type Records = Result<Vec<botc_serve::ports::HistoryRecord>, botc_serve::ports::StoreError>;
type Names = Result<Vec<String>, botc_serve::ports::StoreError>;

impl Source {
    async fn open(dir: &Path, config: Option<&Path>) -> Result<Source, String> {
        match config {
            None => {
                let path = botc_serve::history_path(dir);
                Ok(Source::Sqlite(botc_serve::SqliteHistory::open_read_only(&path).await?))
            }
            #[cfg(feature = "distributed")]
            Some(config) => {
                let c = crate::config::load(config)?;
                let infra = crate::config::infra(&c, config)?;
                Ok(Source::Postgres(botc_dist::Postgres::open_reader(&infra.postgres).await?))
            }
            #[cfg(not(feature = "distributed"))]
            Some(_) => Err("this botc was built without the distributed runtime; read history with --data-dir".into()),
        }
    }

    async fn transcript(&self, bot: &str, who: &str, by_conversation: bool, limit: u32) -> Records {
        match self {
            Source::Sqlite(h) => h.transcript(bot, who, by_conversation, limit).await,
            #[cfg(feature = "distributed")]
            Source::Postgres(p) => p.transcript(bot, who, by_conversation, limit).await,
        }
    }

    async fn users(&self, bot: &str, limit: u32) -> Names {
        match self {
            Source::Sqlite(h) => h.users(bot, limit).await,
            #[cfg(feature = "distributed")]
            Source::Postgres(p) => p.users(bot, limit).await,
        }
    }

    async fn bots(&self) -> Names {
        match self {
            Source::Sqlite(h) => h.bots().await,
            #[cfg(feature = "distributed")]
            Source::Postgres(p) => p.bots().await,
        }
    }
}

pub(crate) fn history_cmd(
    bot: &str,
    who: &str,
    by_conversation: bool,
    dir: &Path,
    config: Option<&Path>,
    limit: u32,
    format: HistoryFormat,
) -> ExitCode {
    use botc_serve::ports::Direction;
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return fail(format!("cannot start the async runtime: {e}")),
    };
    runtime.block_on(async {
        let history = match Source::open(dir, config).await {
            Ok(h) => h,
            Err(e) => return fail(e),
        };
        let records = match history.transcript(bot, who, by_conversation, limit).await {
            Ok(r) => r,
            Err(e) => return fail(e),
        };
        if records.is_empty() {
            let what = if by_conversation { "conversation" } else { "user" };
            let users = history.users(bot, 10).await.unwrap_or_default();
            let hint = if users.is_empty() {
                let bots = history.bots().await.unwrap_or_default();
                if bots.is_empty() {
                    "there is no history yet".to_string()
                } else {
                    format!("bot `{bot}` has none; bots with history: {}", bots.join(", "))
                }
            } else {
                format!("users of bot `{bot}`, most recent first: {}", users.join(", "))
            };
            return fail(format!("no history for {what} `{who}` of bot `{bot}`; {hint}"));
        }
        for r in &records {
            match format {
                HistoryFormat::Jsonl => {
                    let buttons: Vec<serde_json::Value> = r
                        .buttons
                        .iter()
                        .map(|b| serde_json::json!({ "label": b.label, "value": b.value, "url": b.url }))
                        .collect();
                    let line = serde_json::json!({
                        "id": r.id, "at": r.at, "conversation": r.conversation, "user": r.user_id,
                        "platform": r.platform,
                        "direction": if r.direction == Direction::In { "in" } else { "out" },
                        "kind": r.kind, "text": r.text, "buttons": buttons,
                    });
                    outln!("{line}");
                }
                HistoryFormat::Human => {
                    let who = match (r.direction, r.kind.as_str()) {
                        (Direction::In, "text" | "button") => "user",
                        (Direction::In, _) => "event",
                        (Direction::Out, "note") => "botc",
                        (Direction::Out, _) => "bot",
                    };
                    let mut text = r.text.replace('\n', "\n        ");
                    if r.kind == "button" {
                        text = format!("[{text}]");
                    }
                    outln!("{}  {who:<5}  {text}", render_time(r.at));
                    if !r.buttons.is_empty() {
                        let labels: Vec<String> = r.buttons.iter().map(|b| format!("[{}]", b.label)).collect();
                        outln!("{:19}  {:<5}  {}", "", "", labels.join(" "));
                    }
                }
            }
        }
        ExitCode::SUCCESS
    })
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS` (UTC), by jiff's calendar.
pub(crate) fn render_time(secs: u64) -> String {
    match i64::try_from(secs).ok().and_then(|s| jiff::Timestamp::from_second(s).ok()) {
        Some(t) => t.strftime("%Y-%m-%d %H:%M:%S").to_string(),
        // Past the year 9999: no history line carries such a time, but say what it was.
        None => format!("@{secs}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_render_as_utc_dates_across_leap_years_and_centuries() {
        for (secs, text) in [
            (0, "1970-01-01 00:00:00"),
            (951_782_400, "2000-02-29 00:00:00"),
            (1_795_953_119, "2026-11-29 11:51:59"),
            (4_107_542_399, "2100-02-28 23:59:59"),
        ] {
            assert_eq!(super::render_time(secs), text);
        }
    }
}
