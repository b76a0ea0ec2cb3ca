//! `botc quarantine`: the stored sessions botc could not read and set aside.

use crate::cmd::history::{HistoryFormat, render_time};
use crate::fail;
use std::path::Path;
use std::process::ExitCode;

/// Lists up to `limit` quarantined session records of the data directory `dir`, oldest
/// first: which conversation, when, why, and (as JSON) the bytes themselves.
pub(crate) fn quarantine_cmd(dir: &Path, limit: usize, format: HistoryFormat) -> ExitCode {
    let records = match botc_serve::Embedded::quarantined_in(dir, limit) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    match format {
        HistoryFormat::Human if records.is_empty() => {
            outln!("no quarantined sessions in {}", dir.display());
        }
        HistoryFormat::Human => {
            for q in &records {
                outln!("{}  {}  {} ({} bytes)", render_time(q.at), q.key, q.error, q.raw.len());
            }
            outln!(
                "\n{} record(s). Each conversation started over when its session was found unreadable; \
                 `--format jsonl` prints the bytes (hex) for a bug report.",
                records.len()
            );
        }
        HistoryFormat::Jsonl => {
            for q in &records {
                let hex: String = q.raw.iter().map(|b| format!("{b:02x}")).collect();
                let line = serde_json::json!({ "conversation": q.key, "at": q.at, "error": q.error, "bytes_hex": hex });
                outln!("{line}");
            }
        }
    }
    ExitCode::SUCCESS
}
