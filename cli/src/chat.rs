//! `botc chat FLOW`: talk to a flow in the terminal, on the real VM with a virtual clock.
//! Works with piped input too, so a conversation can be scripted. As in `botc serve` and
//! `botc test`, the user's first message starts the conversation.

use botc_runtime::Context;
use botc_runtime::sim::{Conversation, Reply};
use std::io::{BufRead, IsTerminal, Write};

const HELP: &str = "commands: a number presses that button · /vars · /time +10m · /http 200 {\"json\": 1} · /http error · /handback · /restart · /quit";

pub fn run(program: &botc_runtime::Loaded, user: &str) -> std::io::Result<()> {
    let interactive = std::io::stdin().is_terminal();
    let context = Context {
        user_id: "chat-user".into(),
        user_name: user.to_string(),
        platform: "web".into(),
        bot_id: "chat".into(),
        bot_name: program.program().name.clone(),
        ..Context::default()
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "chatting with `{}` ({HELP})", program.program().name)?;
    writeln!(out, "(say something to begin)")?;
    let mut c = Conversation::new(program, context.clone());
    let mut buttons: Vec<(String, Option<String>)> = Vec::new();
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        if interactive {
            write!(out, "> ")?;
            out.flush()?;
        }
        let Some(line) = lines.next() else { break };
        let line = line?;
        let line = line.trim();
        if !interactive {
            writeln!(out, "you: {line}")?;
        }
        let result = match line {
            "" => continue,
            "/quit" | "/exit" => break,
            "/help" => {
                writeln!(out, "{HELP}")?;
                continue;
            }
            "/vars" => {
                for (name, value) in c.vars() {
                    writeln!(out, "  {name} = {}", written(&value))?;
                }
                continue;
            }
            "/restart" => {
                c = Conversation::new(program, context.clone());
                buttons.clear();
                writeln!(out, "(a new conversation: say something to begin)")?;
                continue;
            }
            "/handback" if c.ended() => {
                writeln!(out, "(nothing to hand back: the conversation has ended; say something to begin again)")?;
                continue;
            }
            "/handback" => c.hand_back(),
            _ if line.starts_with("/time") => {
                let arg = line.trim_start_matches("/time").trim().trim_start_matches('+');
                match botc_compiler::ast::parse_duration(arg) {
                    Ok(secs) => c.advance(secs),
                    Err(e) => {
                        writeln!(out, "(/time needs a duration like +10m: {e})")?;
                        continue;
                    }
                }
            }
            _ if line.starts_with("/http") => {
                let rest = line.trim_start_matches("/http").trim();
                if rest == "error" {
                    c.http(0, serde_json::Value::Null)
                } else {
                    let (status, body) = rest.split_once(' ').unwrap_or((rest, "null"));
                    match (status.parse::<u16>(), serde_json::from_str(body)) {
                        (Ok(s), Ok(b)) => c.http(s, b),
                        _ => {
                            writeln!(out, "(usage: /http STATUS JSON, e.g. /http 200 {{\"id\": 7}}, or /http error)")?;
                            continue;
                        }
                    }
                }
            }
            _ if line.starts_with('/') => {
                writeln!(out, "(unknown command; {HELP})")?;
                continue;
            }
            _ => match line.parse::<usize>().ok().and_then(|n| buttons.get(n.wrapping_sub(1))) {
                Some((label, Some(value))) => {
                    writeln!(out, "(pressed [{label}])")?;
                    let value = value.clone();
                    c.button(&value)
                }
                Some((label, None)) => {
                    writeln!(out, "([{label}] is a link; it sends nothing)")?;
                    continue;
                }
                None => c.user(line),
            },
        };
        show(&mut out, &c, result, &mut buttons)?;
    }
    Ok(())
}

/// A value as the flow language writes it: texts quoted, lists in brackets.
fn written(value: &botc_runtime::Value) -> String {
    use botc_compiler::print::quote;
    use botc_runtime::Value;
    match value {
        Value::Unset => "(unset)".into(),
        Value::Text(s) => quote(s),
        Value::List(items) => format!("[{}]", items.iter().map(|i| quote(i)).collect::<Vec<_>>().join(", ")),
        Value::Json(j) => j.to_string(),
        other => other.to_string(),
    }
}

fn show(
    out: &mut impl Write,
    c: &Conversation<'_>,
    result: Result<Reply, botc_runtime::vm::Error>,
    buttons: &mut Vec<(String, Option<String>)>,
) -> std::io::Result<()> {
    let reply = match result {
        Ok(r) => r,
        Err(e) => return writeln!(out, "(the flow failed: {e})"),
    };
    if !reply.messages.is_empty() {
        // Numbers press the buttons of the latest messages only, numbered on across them.
        buttons.clear();
    }
    for m in &reply.messages {
        writeln!(out, "bot: {}", m.text.replace('\n', "\n     "))?;
        if let Some(img) = &m.image {
            writeln!(out, "     (image {img})")?;
        }
        for b in &m.buttons {
            buttons.push((b.label.clone(), b.value.clone()));
            match &b.url {
                Some(u) => writeln!(out, "     [{}] {} ({u})", buttons.len(), b.label)?,
                None => writeln!(out, "     [{}] {}", buttons.len(), b.label)?,
            }
        }
    }
    for r in &reply.requests {
        if let botc_runtime::Effect::Http { method, url, .. } = r {
            writeln!(out, "(http {} {url}: answer with /http 200 {{...}} or /http error)", method.name())?;
        }
    }
    for (queue, reason) in &reply.handoffs {
        // A handoff without `next` ends the flow: the agent has the last word.
        let then = if c.ended() {
            "the flow ends here, so the agent finishes the conversation"
        } else {
            "/handback returns it to the bot"
        };
        writeln!(
            out,
            "(handed to the `{queue}` queue{}; {then})",
            reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default()
        )?;
    }
    if reply.messages.is_empty()
        && reply.requests.is_empty()
        && reply.handoffs.is_empty()
        && let Some(why) = reply.ignored.first()
    {
        writeln!(out, "(ignored: {why})")?;
    }
    if c.ended() {
        writeln!(out, "(the conversation has ended; say something to begin again)")?;
    } else if let Some(node) = c.waiting_at() {
        let timers: Vec<String> = c
            .timers()
            .iter()
            .map(|(_, secs)| format!("timer in {}", botc_compiler::ast::format_duration((*secs).max(1))))
            .collect();
        writeln!(
            out,
            "(waiting at {node}{})",
            if timers.is_empty() { String::new() } else { format!("; {}", timers.join(", ")) }
        )?;
    }
    Ok(())
}
