//! `botc`: the command line. Thin: parse arguments, read files, call the compiler, render.

/// `print!` that ends the program quietly when stdout is closed (`botc ... | head`),
/// instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = write!(std::io::stdout(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

macro_rules! outln {
    ($($arg:tt)*) => {{
        out!($($arg)*);
        out!("\n");
    }};
}

mod chat;
mod config;
mod load;
mod render;
mod testing;

use botc_compiler::{Compilation, Loader, Syntax, diagnostic::Diagnostic, dump, front::MAX_SOURCE_BYTES};
use clap::{Parser, Subcommand};
use render::Format;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "botc", version, about = "Check, format and graph chat-bot flows", propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check flows for mistakes (files, or directories searched for .yaml/.yml/.flow files)
    Check {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// How to print diagnostics
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Exit with status 1 when there are warnings, too
        #[arg(long)]
        deny_warnings: bool,
    },
    /// Compile flows to verified bytecode: one self-contained .botc per file, plus manifest.json
    Compile {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Output directory (created if missing)
        #[arg(short, long, default_value = "build")]
        out: PathBuf,
        /// Include node source positions (the YAML and DSL forms then differ in bytes)
        #[arg(long)]
        debug: bool,
    },
    /// Run conversation tests (`*.test.yaml`) against their flows
    Test {
        /// Test files, or directories searched for them
        #[arg(default_value = ".")]
        paths: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t = TestFormat::Human)]
        format: TestFormat,
        /// Report node and edge coverage per flow and list what no test reaches
        #[arg(long)]
        coverage: bool,
    },
    /// Talk to a flow in the terminal (or script it through a pipe)
    Chat {
        flow: PathBuf,
        /// Your name, as the flow sees it in `user.name`
        #[arg(long, default_value = "You")]
        user: String,
    },
    /// Say which waiting conversations can move from one compiled version to another
    Diff {
        old: PathBuf,
        new: PathBuf,
        #[arg(long, value_enum, default_value_t = DiffFormat::Human)]
        format: DiffFormat,
    },
    /// Run the flows as bots you can talk to in a browser (one process, state kept on disk)
    Serve {
        /// Flow files, or directories searched for them (default: flows/examples, unless
        /// --config names the bots)
        paths: Vec<PathBuf>,
        /// A botc.toml declaring the bots, listen address and limits (docs/serve.md)
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address to listen on [default: the config's, else 127.0.0.1:8080]
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Where conversations, timers and queued events are kept [default: the config's,
        /// else ./botc-data]
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Log lines for people, or one JSON object per line for log collectors
        #[arg(long, value_enum, default_value_t = LogFormat::Human)]
        log_format: LogFormat,
    },
    /// Print a conversation's history from `botc serve`'s data directory (also while it runs)
    History {
        /// The bot's id
        #[arg(long)]
        bot: String,
        /// The user's id (web chat: `web:CONVERSATION`)
        #[arg(long, required_unless_present = "conversation", conflicts_with = "conversation")]
        user: Option<String>,
        /// A conversation id instead of a user id
        #[arg(long)]
        conversation: Option<String>,
        /// The data directory `botc serve` used
        #[arg(long, default_value = "botc-data")]
        data_dir: PathBuf,
        /// Only the last N lines
        #[arg(long, default_value_t = 200)]
        limit: u32,
        #[arg(long, value_enum, default_value_t = HistoryFormat::Human)]
        format: HistoryFormat,
    },
    /// Load-test a running `botc serve` at a fixed arrival rate (a benchmark tool)
    Load {
        /// Base URL of the server, e.g. http://127.0.0.1:8080
        url: String,
        #[arg(long, default_value = "pizza_order")]
        bot: String,
        /// Requests per second
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        /// Seconds to run
        #[arg(long, default_value_t = 5)]
        duration: u64,
        /// Conversations to spread the requests over
        #[arg(long, default_value_t = 1000)]
        conversations: u64,
        /// Send web-chat messages, or signed Telegram updates or Slack events to the bot's
        /// webhook (the secret comes from --secret-env)
        #[arg(long, value_enum, default_value_t = LoadPlatform::Web)]
        platform: LoadPlatform,
        /// Environment variable holding the webhook secret or signing secret
        #[arg(long)]
        secret_env: Option<String>,
    },
    /// Run a stand-in for the Discord, Slack and Telegram APIs, printing each call it gets as
    /// a JSON line (point botc.toml's [platforms] at it to try bots without an account)
    FakePlatform {
        #[arg(long, default_value = "127.0.0.1:8099")]
        listen: std::net::SocketAddr,
    },
    /// A server that only acknowledges messages: the baseline for `botc load`
    #[command(hide = true)]
    LoadBaseline {
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: std::net::SocketAddr,
    },
    /// Print a .botc file as text
    Disasm { file: PathBuf },
    /// Print a flow's graph
    Graph {
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
    },
    /// Format a flow canonically, or convert it between YAML and the DSL
    Fmt {
        file: PathBuf,
        /// Output form (default: the file's own)
        #[arg(long, value_enum)]
        to: Option<Form>,
        /// Write the result to the file (with --to of the other form: to the file of the same
        /// name with the other extension) instead of printing it
        #[arg(short, long)]
        write: bool,
        /// With --write: go ahead even though comments will be lost
        #[arg(long)]
        drop_comments: bool,
    },
    /// Print the checked IR of a flow (a stable text dump, for debugging and tests)
    DumpIr { file: PathBuf },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum DiffFormat {
    Human,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum TestFormat {
    Human,
    /// JUnit XML, for CI test reports
    Junit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Form {
    Yaml,
    Dsl,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum GraphFormat {
    /// Graphviz dot
    Dot,
    /// Mermaid flowchart
    Mermaid,
}

/// Exit codes: 0 clean, 1 the flows have errors, 2 usage or I/O errors.
const EXIT_FINDINGS: u8 = 1;
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { 0 });
        }
    };
    match cli.command {
        Command::Check { paths, format, deny_warnings } => check(&paths, format, deny_warnings),
        Command::Graph { file, format } => graph(&file, format),
        Command::DumpIr { file } => dump_ir(&file),
        Command::Compile { paths, out, debug } => compile_cmd(&paths, &out, debug),
        Command::Disasm { file } => disasm(&file),
        Command::Test { paths, format, coverage } => test_cmd(&paths, format, coverage),
        Command::Diff { old, new, format } => diff_cmd(&old, &new, format),
        Command::Load { url, bot, rate, duration, conversations, platform, secret_env } => with_runtime(async move {
            let secret = match (&platform, secret_env) {
                (LoadPlatform::Web, _) => String::new(),
                (_, Some(var)) => match std::env::var(&var) {
                    Ok(s) => s,
                    Err(_) => return fail(format!("environment variable {var} (--secret-env) is not set")),
                },
                (_, None) => return fail("signed webhooks need --secret-env NAME"),
            };
            let target = match platform {
                LoadPlatform::Web => load::Target::Web,
                LoadPlatform::Telegram => load::Target::Telegram { secret },
                LoadPlatform::Slack => load::Target::Slack { secret },
            };
            let report = load::run(url.trim_end_matches('/'), &bot, target, rate, duration, conversations).await;
            outln!("{report}");
            ExitCode::SUCCESS
        }),
        Command::FakePlatform { listen } => with_runtime(async move {
            use botc_serve::fake::{FakePlatform, Tokens};
            let fake = match FakePlatform::start_at(listen, Tokens::default()).await {
                Ok(f) => f,
                Err(e) => return fail(format!("cannot listen on {listen}: {e}")),
            };
            outln!("fake platform APIs at {} (Ctrl-C stops it)", fake.base);
            let mut seen = 0;
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                for r in fake.received_from(seen) {
                    seen += 1;
                    let line = serde_json::json!({
                        "at_ms": r.at.as_secs_f64() * 1e3, "method": r.method, "path": r.path, "body": r.body,
                    });
                    outln!("{line}");
                }
            }
        }),
        Command::LoadBaseline { listen } => with_runtime(async move {
            match tokio::net::TcpListener::bind(listen).await {
                Ok(l) => {
                    outln!("baseline listening at http://{}/", l.local_addr().map_or(listen, |a| a));
                    match load::baseline(l).await {
                        Ok(()) => ExitCode::SUCCESS,
                        Err(e) => fail(e),
                    }
                }
                Err(e) => fail(format!("cannot listen on {listen}: {e}")),
            }
        }),
        Command::History { bot, user, conversation, data_dir, limit, format } => {
            let (who, by_conversation) = match (user, conversation) {
                (_, Some(c)) => (c, true),
                (Some(u), None) => (u, false),
                (None, None) => return fail("give --user or --conversation"),
            };
            history_cmd(&bot, &who, by_conversation, &data_dir, limit, format)
        }
        Command::Serve { paths, config, listen, data_dir, log_format } => {
            init_logs(log_format);
            serve_cmd(paths, config.as_deref(), listen, data_dir)
        }
        Command::Chat { flow, user } => match load_flow(&flow) {
            Ok(program) => match chat::run(&program, &user) {
                Ok(()) => ExitCode::SUCCESS,
                // The reader went away (`botc chat ... | head`): nothing more to say.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(e) => fail(format!("terminal: {e}")),
            },
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(EXIT_FINDINGS)
            }
        },
        Command::Fmt { file, to, write, drop_comments } => fmt(&file, to, write, drop_comments),
    }
}

/// A usage or I/O problem: printed to stderr, exit 2.
fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(EXIT_USAGE)
}

/// Reads imports from the file system, relative to the importing file.
struct FsLoader;

impl Loader for FsLoader {
    fn load(&mut self, importer: &str, path: &str) -> Result<(String, String), String> {
        let base = Path::new(importer).parent().unwrap_or(Path::new(""));
        let full = base.join(path);
        let name = full.to_string_lossy().into_owned();
        match read_flow(&full) {
            Ok(Ok(text)) => Ok((name, text)),
            Ok(Err(d)) => Err(d.message),
            Err(e) => Err(format!("cannot read {name}: {e}")),
        }
    }
}

/// Reads a flow file, refusing oversized and non-UTF-8 files with a diagnostic. The outer
/// error is I/O (exit 2); the inner one is a problem with the file's content (exit 1).
fn read_flow(path: &Path) -> std::io::Result<Result<String, Diagnostic>> {
    let meta = std::fs::metadata(path)?;
    let at = botc_compiler::Span::default();
    if meta.len() > MAX_SOURCE_BYTES as u64 {
        return Ok(Err(Diagnostic::error(
            "E0003",
            at,
            format!("file is {} bytes; flow files are limited to {MAX_SOURCE_BYTES} bytes", meta.len()),
        )
        .help("split the flow into several files and `imports` them")));
    }
    let bytes = std::fs::read(path)?;
    Ok(String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let line = bytes[..valid].iter().filter(|&&b| b == b'\n').count() + 1;
        Diagnostic::error(
            "E0004",
            at,
            format!("file is not valid UTF-8 (first bad byte at offset {valid}, line {line})"),
        )
        .help("save the file as UTF-8")
    }))
}

fn syntax_of(path: &Path) -> Option<Syntax> {
    Syntax::from_path(&path.to_string_lossy())
}

/// Expands directories into the flow files under them, sorted, so output is stable.
fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
        if meta.is_dir() {
            let mut found = Vec::new();
            walk(p, &mut found).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            found.sort();
            out.extend(found);
        } else if syntax_of(p).is_some() {
            out.push(p.clone());
        } else {
            return Err(format!("{} is not a flow file (expected .yaml, .yml or .flow)", p.display()));
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if syntax_of(&path).is_some() && !path.to_string_lossy().ends_with(".test.yaml") {
            out.push(path);
        }
    }
    Ok(())
}

/// Compiles one file; `Err` is an I/O problem.
fn compile(path: &Path) -> Result<Compilation, String> {
    let name = path.to_string_lossy().into_owned();
    let syntax = syntax_of(path).ok_or_else(|| format!("{name} is not a flow file (expected .yaml, .yml or .flow)"))?;
    match read_flow(path).map_err(|e| format!("cannot read {name}: {e}"))? {
        Ok(text) => Ok(botc_compiler::compile(&name, &text, syntax, &mut FsLoader)),
        Err(d) => {
            // The content was refused before parsing: report against an empty source.
            let mut sources = botc_compiler::SourceMap::new();
            let root = sources.add(name, "");
            Ok(Compilation { sources, root, diagnostics: vec![d], program: None, unchecked: None })
        }
    }
}

fn check(paths: &[PathBuf], format: Format, deny_warnings: bool) -> ExitCode {
    let files = match collect(paths) {
        Ok(f) => f,
        Err(e) => return fail(e),
    };
    if files.is_empty() {
        return fail("no flow files (.yaml, .yml, .flow) found");
    }
    let color = format == Format::Human && std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mut out = std::io::stdout().lock();
    let (mut errors, mut warnings) = (0usize, 0usize);
    for path in &files {
        let c = match compile(path) {
            Ok(c) => c,
            Err(e) => return fail(e),
        };
        for d in &c.diagnostics {
            if d.is_error() {
                errors += 1;
            } else {
                warnings += 1;
            }
            let _ = write!(out, "{}", render::render(&c.sources, d, format, color));
            if format == Format::Human {
                let _ = write!(out, "\n\n");
            }
        }
    }
    if format == Format::Human {
        let _ = writeln!(
            out,
            "checked {} file{}: {errors} error{}, {warnings} warning{}",
            files.len(),
            s(files.len()),
            s(errors),
            s(warnings)
        );
    }
    if errors > 0 || (deny_warnings && warnings > 0) { ExitCode::from(EXIT_FINDINGS) } else { ExitCode::SUCCESS }
}

fn s(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Compiles one file for `graph`/`dump-ir`, printing its diagnostics to stderr.
fn compile_for_output(file: &Path) -> Result<Compilation, ExitCode> {
    let c = compile(file).map_err(fail)?;
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    for d in &c.diagnostics {
        eprintln!("{}", render::render(&c.sources, d, Format::Human, color));
    }
    Ok(c)
}

fn graph(file: &Path, format: GraphFormat) -> ExitCode {
    let c = match compile_for_output(file) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let Some(ir) = c.ir() else { return ExitCode::from(EXIT_FINDINGS) };
    out!(
        "{}",
        match format {
            GraphFormat::Dot => dump::dot(ir),
            GraphFormat::Mermaid => dump::mermaid(ir),
        }
    );
    if c.has_errors() { ExitCode::from(EXIT_FINDINGS) } else { ExitCode::SUCCESS }
}

fn dump_ir(file: &Path) -> ExitCode {
    let c = match compile_for_output(file) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match &c.program {
        Some(p) => {
            out!("{}", dump::ir(p.program()));
            ExitCode::SUCCESS
        }
        None => ExitCode::from(EXIT_FINDINGS),
    }
}

/// The text's full-line comments, which formatting cannot keep (the schema modeline is kept).
fn comment_lines(text: &str) -> usize {
    text.lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('#') && !l.starts_with("# yaml-language-server:"))
        .count()
}

fn fmt(file: &Path, to: Option<Form>, write: bool, drop_comments: bool) -> ExitCode {
    let name = file.to_string_lossy().into_owned();
    let Some(syntax) = syntax_of(file) else {
        return fail(format!("{name} is not a flow file (expected .yaml, .yml or .flow)"));
    };
    let text = match read_flow(file) {
        Err(e) => return fail(format!("cannot read {name}: {e}")),
        Ok(Err(d)) => return fail(d.message),
        Ok(Ok(text)) => text,
    };
    let mut sources = botc_compiler::SourceMap::new();
    let id = sources.add(name.clone(), text.clone());
    let (ast, diags) = botc_compiler::front::parse(id, sources.get(id), syntax);
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let errors: Vec<_> = diags.iter().filter(|d| d.is_error()).collect();
    let Some(ast) = ast.filter(|_| errors.is_empty()) else {
        for d in errors {
            eprintln!("{}", render::render(&sources, d, Format::Human, color));
        }
        eprintln!("error: {name} has syntax errors; fix them before formatting (nothing was written)");
        return ExitCode::from(EXIT_FINDINGS);
    };
    let to = to.unwrap_or(match syntax {
        Syntax::Yaml => Form::Yaml,
        Syntax::Dsl => Form::Dsl,
    });
    let out = match to {
        Form::Yaml => {
            let modeline = text.lines().next().filter(|l| l.starts_with("# yaml-language-server:"));
            modeline.map(|m| format!("{m}\n")).unwrap_or_default() + &botc_compiler::print::yaml(&ast)
        }
        Form::Dsl => botc_compiler::print::dsl(&ast),
    };
    if !write {
        out!("{out}");
        return ExitCode::SUCCESS;
    }
    let comments = comment_lines(&text);
    if comments > 0 && !drop_comments {
        return fail(format!(
            "{name} has {comments} comment line(s) that formatting would drop; nothing was written \
             (print without -w to compare, or pass --drop-comments)"
        ));
    }
    let target = file.with_extension(match to {
        Form::Yaml => "yaml",
        Form::Dsl => "flow",
    });
    let target = if syntax_of(file)
        == Some(match to {
            Form::Yaml => Syntax::Yaml,
            Form::Dsl => Syntax::Dsl,
        }) {
        file.to_path_buf()
    } else {
        target
    };
    // Write to a temporary file and rename, so a crash never leaves half a flow behind.
    let tmp = target.with_extension("botc-fmt.tmp");
    if let Err(e) = std::fs::write(&tmp, &out).and_then(|()| std::fs::rename(&tmp, &target)) {
        let _ = std::fs::remove_file(&tmp);
        return fail(format!("cannot write {}: {e}", target.display()));
    }
    if target != file {
        eprintln!("wrote {}", target.display());
    }
    ExitCode::SUCCESS
}

/// Writes `bytes` to `path` through a temporary file and a rename, so readers never see half
/// a file and a crash leaves the old one.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp-botc");
    std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path)).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

fn compile_cmd(paths: &[PathBuf], out_dir: &Path, debug: bool) -> ExitCode {
    let files = match collect(paths) {
        Ok(f) if !f.is_empty() => f,
        Ok(_) => return fail("no flow files (.yaml, .yml, .flow) found"),
        Err(e) => return fail(e),
    };
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    // Compile everything first; write nothing unless everything compiles.
    let mut outputs: Vec<(String, Vec<u8>, botc_bytecode::Program, String)> = Vec::new();
    let mut errors = 0;
    for path in &files {
        let c = match compile(path) {
            Ok(c) => c,
            Err(e) => return fail(e),
        };
        for d in &c.diagnostics {
            errors += usize::from(d.is_error());
            eprintln!("{}\n", render::render(&c.sources, d, Format::Human, color));
        }
        let Some(checked) = &c.program else { continue };
        let options = botc_compiler::emit::Options { debug: debug.then_some(&c.sources) };
        let program = botc_compiler::emit::emit(checked, &options);
        let bytes = program.encode();
        let stem = path.file_stem().map_or("flow".into(), |s| s.to_string_lossy().into_owned());
        let file = format!("{stem}.botc");
        let source = path.to_string_lossy().into_owned();
        if let Some((_, other, _, other_src)) = outputs.iter().find(|(f, ..)| *f == file) {
            if *other != bytes {
                return fail(format!("{other_src} and {source} both compile to {file} but differ; rename one of them"));
            }
            continue;
        }
        outputs.push((file, bytes, program, source));
    }
    if errors > 0 {
        eprintln!("error: {errors} error(s); nothing was written");
        return ExitCode::from(EXIT_FINDINGS);
    }
    if let Err(e) = std::fs::create_dir_all(out_dir) {
        return fail(format!("cannot create {}: {e}", out_dir.display()));
    }
    outputs.sort_by(|a, b| a.0.cmp(&b.0));
    let mut manifest = Vec::new();
    for (file, bytes, program, source) in &outputs {
        if let Err(e) = write_atomic(&out_dir.join(file), bytes) {
            return fail(format!("cannot write {}: {e}", out_dir.join(file).display()));
        }
        manifest.push(serde_json::json!({
            "file": file,
            "name": program.name,
            "hash": program.hash_hex(),
            "size": bytes.len(),
            "source": source,
        }));
    }
    let manifest = serde_json::json!({ "format_version": botc_bytecode::FORMAT_VERSION, "programs": manifest });
    let text = serde_json::to_string_pretty(&manifest).expect("JSON values serialize") + "\n";
    if let Err(e) = write_atomic(&out_dir.join("manifest.json"), text.as_bytes()) {
        return fail(format!("cannot write manifest.json: {e}"));
    }
    eprintln!("compiled {} program(s) into {}", outputs.len(), out_dir.display());
    ExitCode::SUCCESS
}

fn disasm(file: &Path) -> ExitCode {
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => return fail(format!("cannot read {}: {e}", file.display())),
    };
    match botc_bytecode::load(&bytes) {
        Ok(v) => {
            out!("{}", botc_bytecode::disasm::disassemble(v.program()));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}: {e}", file.display());
            ExitCode::from(EXIT_FINDINGS)
        }
    }
}

/// Compiles a flow file and loads it as the runtime would; diagnostics go to stderr.
fn load_flow(path: &Path) -> Result<botc_runtime::Loaded, String> {
    let c = compile(path)?;
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let Some(checked) = &c.program else {
        for d in c.diagnostics.iter().filter(|d| d.is_error()) {
            eprintln!("{}\n", render::render(&c.sources, d, Format::Human, color));
        }
        return Err(format!("{} does not compile", path.display()));
    };
    let bytes = botc_compiler::emit::emit(checked, &botc_compiler::emit::Options { debug: None }).encode();
    botc_runtime::Loaded::from_bytes(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

fn test_cmd(paths: &[PathBuf], format: TestFormat, show_coverage: bool) -> ExitCode {
    let files = match testing::find(paths) {
        Ok(f) => f,
        Err(e) => return fail(format!("cannot read test paths: {e}")),
    };
    if files.is_empty() {
        return fail("no conversation tests (*.test.yaml) found");
    }
    let human = format == TestFormat::Human;
    let (mut passed, mut failed) = (0usize, 0usize);
    let mut junit = String::new();
    // Coverage per flow file, merged across test files.
    let mut coverage: Vec<(PathBuf, botc_runtime::Loaded, testing::Coverage)> = Vec::new();
    for file in &files {
        let shown = file.display().to_string();
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => return fail(format!("cannot read {shown}: {e}")),
        };
        let spec = match testing::parse(file, &text) {
            Ok(s) => s,
            Err(e) => {
                failed += 1;
                eprintln!("error: {shown}:{}: {}", e.line, e.message);
                let _ = writeln!(
                    junit,
                    "  <testsuite name=\"{}\" tests=\"1\" failures=\"1\"><testcase name=\"(test file)\"><failure message=\"{}\"/></testcase></testsuite>",
                    testing::xml_escape(&shown),
                    testing::xml_escape(&e.message)
                );
                continue;
            }
        };
        let flow_key = spec.flow.clone();
        if !coverage.iter().any(|(p, ..)| *p == flow_key) {
            match load_flow(&spec.flow) {
                Ok(program) => coverage.push((flow_key.clone(), program, testing::Coverage::default())),
                Err(e) => {
                    failed += spec.tests.len().max(1);
                    eprintln!("error: {shown}: {e}");
                    continue;
                }
            }
        }
        let entry = coverage.iter_mut().find(|(p, ..)| *p == flow_key).expect("just inserted");
        if human {
            outln!("{shown} ({})", spec.flow.display());
        }
        let mut cases = String::new();
        let mut file_failures = 0;
        for test in &spec.tests {
            let outcome = testing::run(&entry.1, test, &mut entry.2);
            match &outcome.failure {
                None => {
                    passed += 1;
                    if human {
                        outln!("  ok    {} ({} steps)", outcome.name, outcome.steps);
                    }
                    let _ = writeln!(
                        cases,
                        "    <testcase name=\"{}\" classname=\"{}\"/>",
                        testing::xml_escape(&outcome.name),
                        testing::xml_escape(&shown)
                    );
                }
                Some(why) => {
                    failed += 1;
                    file_failures += 1;
                    if human {
                        outln!("  FAIL  {}\n    {}", outcome.name, why.trim_end().replace('\n', "\n    "));
                    }
                    let _ = writeln!(
                        cases,
                        "    <testcase name=\"{}\" classname=\"{}\"><failure message=\"{}\">{}</failure></testcase>",
                        testing::xml_escape(&outcome.name),
                        testing::xml_escape(&shown),
                        testing::xml_escape(why.lines().next().unwrap_or("failed")),
                        testing::xml_escape(why)
                    );
                }
            }
        }
        let _ = write!(
            junit,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{file_failures}\">\n{cases}  </testsuite>\n",
            testing::xml_escape(&shown),
            spec.tests.len()
        );
    }
    if human {
        outln!("\ntest result: {passed} passed, {failed} failed");
    } else {
        out!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites tests=\"{}\" failures=\"{failed}\">\n{junit}</testsuites>\n",
            passed + failed
        );
    }
    if show_coverage {
        for (path, program, cov) in &coverage {
            let p = program.program();
            let all_edges = p.edges();
            let name = |n: u32| p.nodes.get(n as usize).map_or("?".to_string(), |node| p.text(node.name).to_string());
            let nodes_total = p.nodes.len();
            let edges_hit = all_edges.iter().filter(|e| cov.edges.contains(e)).count();
            let pct = |a: usize, b: usize| if b == 0 { 100.0 } else { a as f64 * 100.0 / b as f64 };
            let line = format!(
                "coverage {}: nodes {}/{} ({:.0}%), edges {}/{} ({:.0}%)",
                path.display(),
                cov.nodes.len(),
                nodes_total,
                pct(cov.nodes.len(), nodes_total),
                edges_hit,
                all_edges.len(),
                pct(edges_hit, all_edges.len())
            );
            let untested: Vec<String> = (0..nodes_total as u32).filter(|n| !cov.nodes.contains(n)).map(name).collect();
            let missed: Vec<String> = all_edges
                .iter()
                .filter(|e| !cov.edges.contains(e))
                .map(|&(a, b)| format!("{} -> {}", name(a), name(b)))
                .collect();
            let out = format!(
                "{line}{}{}",
                if untested.is_empty() {
                    String::new()
                } else {
                    format!("\n  untested nodes: {}", untested.join(", "))
                },
                if missed.is_empty() { String::new() } else { format!("\n  untested edges: {}", missed.join(", ")) }
            );
            if human { outln!("{out}") } else { eprintln!("{out}") }
        }
    }
    if failed > 0 { ExitCode::from(EXIT_FINDINGS) } else { ExitCode::SUCCESS }
}

fn load_botc(path: &Path) -> Result<botc_runtime::Loaded, ExitCode> {
    let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
    botc_runtime::Loaded::from_bytes(&bytes).map_err(|e| {
        eprintln!("error: {}: {e}", path.display());
        ExitCode::from(EXIT_FINDINGS)
    })
}

fn diff_cmd(old: &Path, new: &Path, format: DiffFormat) -> ExitCode {
    let (old, new) = match (load_botc(old), load_botc(new)) {
        (Ok(o), Ok(n)) => (o, n),
        (Err(code), _) | (_, Err(code)) => return code,
    };
    let points = botc_runtime::migrate::diff(old.program(), new.program());
    match format {
        DiffFormat::Json => {
            let list: Vec<_> = points
                .iter()
                .map(|p| serde_json::json!({ "flow": p.flow, "node": p.node, "kind": p.kind.name(), "verdict": p.verdict.name(), "reason": p.reason }))
                .collect();
            let out = serde_json::json!({ "old": old.program().hash_hex(), "new": new.program().hash_hex(), "wait_points": list });
            outln!("{}", serde_json::to_string_pretty(&out).expect("JSON values serialize"));
        }
        DiffFormat::Human => {
            if points.is_empty() {
                outln!("no conversation can be waiting in the old program");
            }
            for p in &points {
                let why = if p.reason.is_empty() { String::new() } else { format!(": {}", p.reason) };
                outln!("{:<8} {}.{} ({}){why}", p.verdict.name(), p.flow, p.node, p.kind.name());
            }
        }
    }
    ExitCode::SUCCESS
}

fn with_runtime(f: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt.block_on(f),
        Err(e) => fail(format!("cannot start the async runtime: {e}")),
    }
}

/// Logs go to stderr; `RUST_LOG` filters them (default: info).
fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn serve_cmd(
    mut paths: Vec<PathBuf>,
    config: Option<&Path>,
    listen: Option<std::net::SocketAddr>,
    data_dir: Option<PathBuf>,
) -> ExitCode {
    // Everything is read and checked before anything binds.
    let config = match config.map(config::load).transpose() {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    use botc_serve as serve;
    let mut options = serve::Options::default();
    let (mut partitions, mut capacity) = (serve::DEFAULT_PARTITIONS, serve::DEFAULT_QUEUE_CAPACITY);
    let mut declared: Vec<&config::BotConfig> = Vec::new();
    if let Some(c) = &config {
        options.body_limit = c.limits.body_limit;
        options.forget_idle = (c.limits.forget_idle_days > 0)
            .then(|| std::time::Duration::from_secs(c.limits.forget_idle_days.saturating_mul(86_400)));
        capacity = c.limits.queue_capacity;
        partitions = c.limits.partitions;
        let apis = &c.platforms;
        for (base, set) in [
            (&apis.discord_api, &mut options.api.discord),
            (&apis.slack_api, &mut options.api.slack),
            (&apis.telegram_api, &mut options.api.telegram),
        ] {
            if let Some(b) = base {
                *set = b.trim_end_matches('/').to_string();
            }
        }
        declared = c.bots.iter().collect();
        for b in &c.bots {
            tracing::info!(bot = %b.id, platform = ?b.platform, tenant = b.tenant.as_deref().unwrap_or("-"), plan = ?b.plan, "bot declared");
        }
    }
    let listen = listen.or(config.as_ref().and_then(|c| c.listen)).unwrap_or(([127, 0, 0, 1], 8080).into());
    if paths.is_empty() && declared.is_empty() {
        paths.push(PathBuf::from("flows/examples"));
    }
    let files = if paths.is_empty() {
        Vec::new()
    } else {
        match collect(&paths) {
            Ok(f) if !f.is_empty() => f,
            Ok(_) => return fail("no flow files (.yaml, .yml, .flow) found"),
            Err(e) => return fail(e),
        }
    };
    // Every flow found becomes a bot named after its file; a flow's YAML and DSL twins are
    // one bot. Bots declared in the config come first, with their own ids and names.
    let mut bots: Vec<serve::Bot> = Vec::new();
    for b in &declared {
        let program = match load_flow(&b.flow) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: bot `{}`: {e}; nothing was started", b.id);
                return ExitCode::from(EXIT_FINDINGS);
            }
        };
        let name = b.name.clone().unwrap_or_else(|| program.program().name.replace('_', " "));
        let platform = b.platform;
        let (mut per_bot, mut per_conversation) = platform.limits();
        let plans = &config.as_ref().map(|c| (c.plans.free, c.plans.premium));
        let plan = match (b.plan, plans) {
            (config::Plan::Free, Some((free, _))) => free.messages_per_second,
            (config::Plan::Premium, Some((_, premium))) => premium.messages_per_second,
            _ => None,
        };
        if platform != serve::Platform::Web {
            // The bot's own figure replaces the platform's (a platform may grant more); the
            // plan's caps it.
            if let Some(n) = b.messages_per_second {
                per_bot = botc_runtime::platforms::limiter::Limit::per_second(n);
            }
            if let Some(cap) = plan
                && cap < per_bot.rate
            {
                per_bot = botc_runtime::platforms::limiter::Limit::per_second(cap);
            }
            if let Some(n) = b.conversation_messages_per_second {
                per_conversation = botc_runtime::platforms::limiter::Limit::per_second(n);
            }
        }
        let mut bot = serve::Bot::web(&b.id, &name, std::sync::Arc::new(program));
        bot.platform = platform;
        bot.secrets = b.secrets.clone();
        bot.per_bot = per_bot;
        bot.per_conversation = per_conversation;
        bots.push(bot);
    }
    for path in &files {
        let program = match load_flow(path) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: {e}; nothing was started");
                return ExitCode::from(EXIT_FINDINGS);
            }
        };
        let id = path.file_stem().map_or("bot".into(), |s| s.to_string_lossy().into_owned());
        if let Some(other) = bots.iter().find(|b| b.id == id) {
            if other.program.program().hash != program.program().hash {
                return fail(format!("two different flows are both named `{id}`; rename one of the files"));
            }
            continue;
        }
        let name = program.program().name.replace('_', " ");
        bots.push(serve::Bot::web(&id, &name, std::sync::Arc::new(program)));
    }
    let data_dir =
        data_dir.or(config.as_ref().and_then(|c| c.data_dir.clone())).unwrap_or_else(|| PathBuf::from("botc-data"));
    let store = match serve::Embedded::open(&data_dir, partitions, capacity) {
        Ok(s) => std::sync::Arc::new(s),
        Err(e) => return fail(e),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return fail(format!("cannot start the async runtime: {e}")),
    };
    runtime.block_on(async move {
        let history = match serve::SqliteHistory::open(&serve::history_path(&data_dir)).await {
            Ok(h) => std::sync::Arc::new(h),
            Err(e) => return fail(e),
        };
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                return fail(format!(
                    "cannot listen on {listen}: {e} (is another botc running? try --listen 127.0.0.1:0)"
                ));
            }
        };
        // Signal handlers go in before the banner: a supervisor may send SIGTERM as soon as
        // it sees the server up, and that must drain, not kill.
        use tokio::signal::unix::{SignalKind, signal};
        let (mut term, mut int) = match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(t), Ok(i)) => (t, i),
            (Err(e), _) | (_, Err(e)) => return fail(format!("cannot handle signals: {e}")),
        };
        let addr = listener.local_addr().map_or(listen.to_string(), |a| a.to_string());
        outln!(
            "botc is serving {} bot(s) at http://{addr}/  (Ctrl-C stops it; conversations are kept in {})",
            bots.len(),
            data_dir.display()
        );
        tracing::info!(address = %addr, bots = bots.len(), data = %store.path().display(), "serving");
        let shutdown = async move {
            tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
            tracing::info!("stopping: finishing requests in flight");
        };
        let clock = std::sync::Arc::new(botc_runtime::clock::SystemClock::default());
        let ports = serve::Ports::embedded(store.clone(), history.clone(), clock);
        let result = serve::serve(listener, bots, options, ports, shutdown).await;
        store.close();
        history.close().await;
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(format!("server error: {e}")),
        }
    })
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum LoadPlatform {
    Web,
    Telegram,
    Slack,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum HistoryFormat {
    Human,
    /// One JSON object per line
    Jsonl,
}

fn history_cmd(bot: &str, who: &str, by_conversation: bool, dir: &Path, limit: u32, format: HistoryFormat) -> ExitCode {
    use botc_serve::{SqliteHistory, history_path, ports::Direction};
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return fail(format!("cannot start the async runtime: {e}")),
    };
    runtime.block_on(async {
        let history = match SqliteHistory::open_read_only(&history_path(dir)).await {
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
                    "this data directory has no history yet".to_string()
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

/// Unix seconds as `YYYY-MM-DD HH:MM:SS` (UTC).
fn render_time(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
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
