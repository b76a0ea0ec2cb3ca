//! `botc`: the command line. Thin: this file parses arguments and hands each command to its
//! module in `cmd/`; `flows.rs` finds, reads and compiles flow files for them.

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
mod cmd;
mod config;
mod flows;
mod load;
mod render;
mod testing;

use clap::{Parser, Subcommand};
use cmd::diff::DiffFormat;
use cmd::fmt::Form;
use cmd::graph::GraphFormat;
use cmd::history::HistoryFormat;
use cmd::load::LoadPlatform;
use cmd::serve::LogFormat;
use cmd::test::TestFormat;
use render::Format;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "botc",
    version,
    about = "botc: chat-bot flows, checked and compiled, served on one machine or as a distributed runtime",
    long_about = "botc: chat-bot flows, checked and compiled, served on one machine or as a distributed runtime.\n\n\
        Write a flow (YAML or the botc DSL), `botc check` it, test it with `botc test`, talk to it with \
        `botc chat`, run it with `botc serve flows/` (web chat, Discord, Slack, Telegram), and deploy \
        versions from git with `botc deploy`. The same binary runs the distributed roles (gateway, \
        worker, dispatcher, scheduler) on Kafka, Redis and Postgres.\n\n\
        Docs: docs/flow-language.md (the language), docs/serve.md, docs/distributed.md.",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check flows for mistakes (files, or directories searched for .yaml/.yml/.flow files)
    Check {
        /// Flow files, or directories searched for them
        #[arg(required_unless_present = "explain")]
        paths: Vec<PathBuf>,
        /// How to print diagnostics
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Exit with status 1 when there are warnings, too
        #[arg(long)]
        deny_warnings: bool,
        /// Explain a diagnostic code (like E0401), with a wrong and a fixed example
        #[arg(long, value_name = "CODE", conflicts_with_all = ["paths", "deny_warnings"])]
        explain: Option<String>,
    },
    /// Compile flows to verified bytecode: one self-contained .botc per file, plus manifest.json
    Compile {
        /// Flow files, or directories searched for them
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
        /// How to print results (junit: a report for CI)
        #[arg(long, value_enum, default_value_t = TestFormat::Human)]
        format: TestFormat,
        /// Report node and edge coverage per flow and list what no test reaches
        #[arg(long)]
        coverage: bool,
    },
    /// Talk to a flow in the terminal (or script it through a pipe)
    Chat {
        /// The flow file to talk to (.yaml, .yml or .flow)
        flow: PathBuf,
        /// Your name, as the flow sees it in `user.name`
        #[arg(long, default_value = "You")]
        user: String,
    },
    /// Say which waiting conversations can move from one compiled version to another
    Diff {
        /// The compiled version conversations are waiting in (.botc)
        old: PathBuf,
        /// The compiled version to move them to (.botc)
        new: PathBuf,
        /// How to print the verdict
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
        /// Serve the flow versions this registry environment points at, and follow it as
        /// `botc deploy` moves it (hot reload) [default: the config's `environment`, else
        /// the flow files as given]
        #[arg(long, short = 'e')]
        environment: Option<String>,
        /// Log lines for people, or one JSON object per line for log collectors
        #[arg(long, value_enum, default_value_t = LogFormat::Human)]
        log_format: LogFormat,
        /// Go on with a botc.redb that is new or emptied while history.sqlite belongs to an
        /// earlier one (its conversations start over; the history is kept)
        #[arg(long)]
        new_store: bool,
    },
    /// Run the gateway role of the distributed runtime: verify webhooks and web-chat
    /// messages, put them on Kafka, acknowledge (docs/distributed.md)
    #[cfg(feature = "distributed")]
    Gateway(RoleArgs),
    /// Run the worker role: step the flows over the events of the Kafka partitions it leases
    #[cfg(feature = "distributed")]
    Worker(RoleArgs),
    /// Run the dispatcher role: deliver replies through the platforms' APIs within budgets
    #[cfg(feature = "distributed")]
    Dispatcher(RoleArgs),
    /// Run the scheduler role: timers, flows' http requests, history into Postgres
    #[cfg(feature = "distributed")]
    Scheduler(RoleArgs),
    /// Kafka for the distributed runtime
    #[cfg(feature = "distributed")]
    Kafka {
        #[command(subcommand)]
        command: KafkaCommand,
    },
    /// Check that the distributed roles can run with a config: brokers, topic, Redis,
    /// Postgres; says what is wrong and how to fix it (changes nothing)
    #[cfg(feature = "distributed")]
    Doctor {
        #[arg(long)]
        config: PathBuf,
    },
    /// Tools for trying and testing botc on one machine
    #[cfg(feature = "distributed")]
    #[command(hide = true)]
    Dev {
        #[command(subcommand)]
        command: DevCommand,
    },
    /// Deploy flows from git to an environment (production, staging) of the flow registry
    ///
    /// Checks and compiles the flows, records their git commit, shows what happens to the
    /// conversations waiting in each bot, and moves the environment; running processes that
    /// follow it load the new version within seconds (docs/deploy.md).
    Deploy {
        /// Flow files, or directories searched for them, besides the bots the config declares
        /// (the same as `botc serve` is given)
        paths: Vec<PathBuf>,
        #[command(flatten)]
        registry: RegistryArgs,
        /// Deploy only this bot (repeatable) [default: every bot found]
        #[arg(long = "bot", value_name = "BOT")]
        bots: Vec<String>,
        /// Show the plan (versions, waiting conversations that move or start over); change nothing
        #[arg(long)]
        dry_run: bool,
        /// Deploy even when waiting conversations would start over
        #[arg(long)]
        allow_restarts: bool,
        /// Deploy files that differ from the git commit (or outside git); the commit is
        /// recorded with `-dirty`
        #[arg(long)]
        allow_dirty: bool,
    },
    /// Point an environment back at an earlier version of a bot's flow (by default the one
    /// the current version replaced)
    Rollback {
        /// The bot's id
        bot: String,
        /// The version number to go back to (`botc versions BOT` lists them)
        #[arg(long)]
        to: Option<u64>,
        #[command(flatten)]
        registry: RegistryArgs,
        /// Show the plan; change nothing
        #[arg(long)]
        dry_run: bool,
        /// Roll back even when waiting conversations would start over
        #[arg(long)]
        allow_restarts: bool,
    },
    /// List a bot's flow versions in the registry: number, hash, commit, author, and which
    /// environments point at each
    Versions {
        /// The bot's id
        bot: String,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// List the latest deploys and rollbacks, newest first
    Deploys {
        /// Only this bot's
        #[arg(long)]
        bot: Option<String>,
        /// How many
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[command(flatten)]
        registry: RegistryArgs,
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
        /// Read the distributed runtime's history instead: the botc.toml whose [postgres]
        /// holds it
        #[arg(long, conflicts_with = "data_dir")]
        config: Option<PathBuf>,
        /// Only the last N lines
        #[arg(long, default_value_t = 200)]
        limit: u32,
        #[arg(long, value_enum, default_value_t = HistoryFormat::Human)]
        format: HistoryFormat,
    },
    /// List the stored sessions `botc serve` could not read and set aside (each conversation
    /// started over), from a data directory no botc is using
    Quarantine {
        /// The data directory `botc serve` used
        #[arg(long, default_value = "botc-data")]
        data_dir: PathBuf,
        /// At most this many records, oldest first
        #[arg(long, default_value_t = 100)]
        limit: usize,
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
        /// Keep-alive connections the requests are spread over (a request whose connection
        /// is still busy waits, and its wait counts in its latency)
        #[arg(long, default_value_t = 128)]
        connections: usize,
        /// Seconds a sent request may wait for its answer before it counts as timed out (from
        /// the send, as a platform's webhook timeout; waiting for a busy connection counts in
        /// the latency instead)
        #[arg(long, default_value_t = 30)]
        timeout: u64,
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
    Disasm {
        /// The compiled flow (.botc)
        file: PathBuf,
    },
    /// Print a flow's graph
    Graph {
        /// The flow file (.yaml, .yml or .flow)
        file: PathBuf,
        /// Graphviz dot, Mermaid for Markdown, or an SVG picture (`> flow.svg`, open it in a browser)
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
    },
    /// Format flows canonically (comments are kept), or convert them between YAML and the DSL
    Fmt {
        /// Flow files (.yaml, .yml or .flow) or directories of them
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Output form (default: each file's own)
        #[arg(long, value_enum, conflicts_with = "check")]
        to: Option<Form>,
        /// Write the result to the file (with --to of the other form: to the file of the same
        /// name with the other extension) instead of printing it
        #[arg(short, long, conflicts_with = "check")]
        write: bool,
        /// Write nothing; list the files not in canonical form and exit 1 if there are any (for CI)
        #[arg(long)]
        check: bool,
        /// Leave the comments out
        #[arg(long)]
        drop_comments: bool,
    },
    /// Print the checked IR of a flow (a stable text dump, for debugging and tests)
    DumpIr {
        /// The flow file (.yaml, .yml or .flow)
        file: PathBuf,
    },
    /// Print a shell completion script: `botc completions bash > /etc/bash_completion.d/botc`,
    /// or for zsh, fish, powershell, elvish
    Completions {
        /// The shell to complete in
        shell: clap_complete::Shell,
    },
}

/// What every distributed role takes.
#[cfg(feature = "distributed")]
#[derive(clap::Args)]
struct RoleArgs {
    /// Flow files, or directories searched for them, besides the bots the config declares
    paths: Vec<PathBuf>,
    /// botc.toml with [kafka], [redis] and [postgres] (docs/distributed.md)
    #[arg(long)]
    config: PathBuf,
    /// Address for this process's HTTP (the gateway's API; /healthz, /readyz, /metrics)
    /// [default: the config's, else 127.0.0.1:8080]
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Serve and follow this registry environment [default: the config's `environment`,
    /// else the flow files as given]
    #[arg(long, short = 'e')]
    environment: Option<String>,
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
}

/// Which flow registry a deploy command uses.
#[derive(clap::Args)]
struct RegistryArgs {
    /// A botc.toml: with a [postgres] section, the distributed runtime's registry (and its
    /// Redis, to count conversations); else the data directory it names
    #[arg(long)]
    config: Option<PathBuf>,
    /// `botc serve`'s data directory (its history.sqlite holds the registry) [default: the
    /// config's, else ./botc-data]
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The environment [default: the config's `environment`, else production]
    #[arg(long, short = 'e')]
    environment: Option<String>,
}

impl RegistryArgs {
    fn into_where(self) -> cmd::deploy::Where {
        cmd::deploy::Where { config: self.config, data_dir: self.data_dir, environment: self.environment }
    }
}

#[cfg(feature = "distributed")]
#[derive(Subcommand)]
enum KafkaCommand {
    /// Create the events topic with the configured partitions (or check the one there)
    Init {
        #[arg(long)]
        config: PathBuf,
    },
}

#[cfg(feature = "distributed")]
#[derive(Subcommand)]
enum DevCommand {
    /// Run librdkafka's mock Kafka cluster with the events topic; prints its brokers
    KafkaMock {
        /// The topics to create (repeat for more; the mock cannot create them later)
        #[arg(long, default_value = "botc-events")]
        topic: Vec<String>,
        #[arg(long, default_value_t = 16)]
        partitions: usize,
    },
    /// Measure the brokers alone: produce events to a topic, then consume each and produce it
    /// to another (the baseline of scripts/bench-distributed)
    KafkaPassthrough {
        #[arg(long)]
        brokers: String,
        /// The input topic (created when missing; not the events topic roles read)
        #[arg(long, default_value = "botc-passthrough-in")]
        topic: String,
        #[arg(long, default_value_t = 16)]
        partitions: usize,
        /// The output topic (created when missing)
        #[arg(long, default_value = "botc-passthrough-out")]
        output: String,
        #[arg(long, default_value_t = 100_000)]
        events: usize,
        /// Payload bytes per event
        #[arg(long, default_value_t = 200)]
        size: usize,
    },
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
        Command::Check { explain: Some(code), .. } => cmd::check::explain(&code),
        Command::Check { paths, format, deny_warnings, explain: None } => {
            cmd::check::check(&paths, format, deny_warnings)
        }
        Command::Graph { file, format } => cmd::graph::graph(&file, format),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "botc", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::DumpIr { file } => cmd::dump_ir::dump_ir(&file),
        Command::Compile { paths, out, debug } => cmd::compile::compile_cmd(&paths, &out, debug),
        Command::Disasm { file } => cmd::disasm::disasm(&file),
        Command::Test { paths, format, coverage } => cmd::test::test_cmd(&paths, format, coverage),
        Command::Diff { old, new, format } => cmd::diff::diff_cmd(&old, &new, format),
        Command::Load { url, bot, rate, duration, conversations, connections, timeout, platform, secret_env } => {
            let opts = load::Options {
                rate,
                secs: duration,
                conversations,
                connections,
                timeout: std::time::Duration::from_secs(timeout),
            };
            cmd::load::load_cmd(&url, &bot, opts, platform, secret_env)
        }
        Command::FakePlatform { listen } => cmd::fake_platform::fake_platform_cmd(listen),
        Command::LoadBaseline { listen } => cmd::load::baseline_cmd(listen),
        Command::History { bot, user, conversation, data_dir, config, limit, format } => {
            let (who, by_conversation) = match (user, conversation) {
                (_, Some(c)) => (c, true),
                (Some(u), None) => (u, false),
                (None, None) => return fail("give --user or --conversation"),
            };
            cmd::history::history_cmd(&bot, &who, by_conversation, &data_dir, config.as_deref(), limit, format)
        }
        Command::Deploy { paths, registry, bots, dry_run, allow_restarts, allow_dirty } => {
            let allow = cmd::deploy::Allow { dry_run, restarts: allow_restarts, dirty: allow_dirty };
            cmd::deploy::deploy_cmd(paths, bots, registry.into_where(), allow)
        }
        Command::Rollback { bot, to, registry, dry_run, allow_restarts } => {
            let allow = cmd::deploy::Allow { dry_run, restarts: allow_restarts, dirty: false };
            cmd::deploy::rollback_cmd(bot, to, registry.into_where(), allow)
        }
        Command::Versions { bot, registry } => cmd::deploy::versions_cmd(bot, registry.into_where()),
        Command::Deploys { bot, limit, registry } => cmd::deploy::deploys_cmd(bot, limit, registry.into_where()),
        Command::Quarantine { data_dir, limit, format } => cmd::quarantine::quarantine_cmd(&data_dir, limit, format),
        Command::Serve { paths, config, listen, data_dir, environment, log_format, new_store } => {
            cmd::serve::init_logs(log_format);
            cmd::serve::serve_cmd(paths, config.as_deref(), listen, data_dir, environment, new_store)
        }
        #[cfg(feature = "distributed")]
        Command::Gateway(a) => role(cmd::role::Part::Gateway, a),
        #[cfg(feature = "distributed")]
        Command::Worker(a) => role(cmd::role::Part::Worker, a),
        #[cfg(feature = "distributed")]
        Command::Dispatcher(a) => role(cmd::role::Part::Dispatcher, a),
        #[cfg(feature = "distributed")]
        Command::Scheduler(a) => role(cmd::role::Part::Scheduler, a),
        #[cfg(feature = "distributed")]
        Command::Kafka { command: KafkaCommand::Init { config } } => cmd::role::kafka_init_cmd(&config),
        #[cfg(feature = "distributed")]
        Command::Doctor { config } => cmd::role::doctor_cmd(&config),
        #[cfg(feature = "distributed")]
        Command::Dev { command: DevCommand::KafkaMock { topic, partitions } } => {
            cmd::role::kafka_mock_cmd(&topic, partitions)
        }
        #[cfg(feature = "distributed")]
        Command::Dev { command: DevCommand::KafkaPassthrough { brokers, topic, partitions, output, events, size } } => {
            cmd::role::kafka_passthrough_cmd(brokers, topic, partitions, &output, events, size)
        }
        Command::Chat { flow, user } => cmd::chat::chat_cmd(&flow, &user),
        Command::Fmt { paths, to, write, check, drop_comments } => {
            let mode = match (write, check) {
                (true, _) => cmd::fmt::Mode::Write,
                (_, true) => cmd::fmt::Mode::Check,
                _ => cmd::fmt::Mode::Print,
            };
            cmd::fmt::fmt(&paths, to, mode, drop_comments)
        }
    }
}

#[cfg(feature = "distributed")]
fn role(part: cmd::role::Part, a: RoleArgs) -> ExitCode {
    cmd::serve::init_logs(a.log_format);
    cmd::role::role_cmd(part, a.paths, &a.config, a.listen, a.environment)
}

/// A usage or I/O problem: printed to stderr, exit 2.
fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(EXIT_USAGE)
}

fn with_runtime(f: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt.block_on(f),
        Err(e) => fail(format!("cannot start the async runtime: {e}")),
    }
}
