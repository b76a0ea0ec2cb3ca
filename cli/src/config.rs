//! `botc.toml`: what `botc serve` runs. Read and checked completely before anything binds,
//! so a mistake is reported with its file, line and fix instead of half a server starting.

use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on (the command line's `--listen` wins).
    pub listen: Option<std::net::SocketAddr>,
    /// Where conversations, timers and queued events are kept, relative to the config
    /// file (the command line's `--data-dir` wins).
    pub data_dir: Option<PathBuf>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub bots: Vec<BotConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default = "default_body_limit")]
    pub body_limit: usize,
    #[serde(default = "default_queue")]
    pub queue_capacity: usize,
    #[serde(default = "default_partitions")]
    pub partitions: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { body_limit: default_body_limit(), queue_capacity: default_queue(), partitions: default_partitions() }
    }
}

fn default_body_limit() -> usize {
    1024 * 1024
}
fn default_queue() -> usize {
    10_000
}
fn default_partitions() -> usize {
    4
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Web,
    Discord,
    Slack,
    Telegram,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    #[default]
    Free,
    Premium,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BotConfig {
    pub id: String,
    /// The flow file, relative to the config file.
    pub flow: PathBuf,
    #[serde(default = "default_platform")]
    pub platform: Platform,
    /// Display name (default: the flow's name).
    pub name: Option<String>,
    pub tenant: Option<String>,
    #[serde(default)]
    pub plan: Plan,
}

fn default_platform() -> Platform {
    Platform::Web
}

/// Reads and checks a config file. The error is a complete message for the user.
pub fn load(path: &Path) -> Result<Config, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let mut config: Config = toml::from_str(&text).map_err(|e| {
        let line = e.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        let at = line.map(|l| format!(":{l}")).unwrap_or_default();
        format!("{shown}{at}: {}", e.message().trim_end())
    })?;
    let base = path.parent().unwrap_or(Path::new(""));
    let line_of =
        |needle: &str| text.lines().position(|l| l.contains(needle)).map_or(String::new(), |i| format!(":{}", i + 1));
    let mut seen: Vec<&str> = Vec::new();
    for bot in &config.bots {
        let valid = !bot.id.is_empty()
            && bot.id.len() <= 64
            && bot.id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
        if !valid {
            return Err(format!(
                "{shown}{}: bot id `{}` is not valid; use 1-64 letters, digits, `-` or `_`",
                line_of(&format!("\"{}\"", bot.id)),
                bot.id
            ));
        }
        if seen.contains(&bot.id.as_str()) {
            return Err(format!(
                "{shown}{}: two bots have the id `{}`; ids must be unique",
                line_of(&format!("\"{}\"", bot.id)),
                bot.id
            ));
        }
        seen.push(&bot.id);
        if bot.platform != Platform::Web {
            return Err(format!(
                "{shown}{}: bot `{}` uses platform {:?}, which this version cannot serve yet; use platform = \"web\"",
                line_of("platform"),
                bot.id,
                bot.platform
            ));
        }
        if !base.join(&bot.flow).exists() {
            return Err(format!(
                "{shown}{}: bot `{}`: flow file {} does not exist (paths are relative to the config file)",
                line_of(&bot.flow.to_string_lossy()),
                bot.id,
                base.join(&bot.flow).display()
            ));
        }
    }
    if config.limits.partitions == 0 || config.limits.partitions > 1024 {
        return Err(format!("{shown}{}: limits.partitions must be between 1 and 1024", line_of("partitions")));
    }
    if config.limits.body_limit < 1024 {
        return Err(format!("{shown}{}: limits.body_limit must be at least 1024 bytes", line_of("body_limit")));
    }
    for bot in &mut config.bots {
        bot.flow = base.join(&bot.flow);
    }
    config.data_dir = config.data_dir.map(|d| base.join(d));
    Ok(config)
}
