//! `botc deploy`, `botc rollback`, `botc versions`, `botc deploys`: flow versions in the
//! registry, and the environments (`production`, `staging`) that running processes follow.
//!
//! The registry is the one the processes read: the distributed runtime's Postgres when the
//! config has a `[postgres]` section, else `history.sqlite` in `botc serve`'s data directory.
//! Before an environment moves, the conversations waiting in the bot are counted and each is
//! moved on paper exactly as a worker will move it (`migrate::forecast`); a deploy that would
//! start conversations over is refused unless the author says `--allow-restarts`.
//!
//! Git is asked through its command line (`git rev-parse`, `status`, `log`): three read-only
//! questions do not justify a Git library and its build time.

use super::history::render_time;
use super::serve::bots_and_options;
use crate::{EXIT_FINDINGS, config, fail};
use botc_runtime::Loaded;
use botc_runtime::migrate::{Forecast, forecast};
use botc_runtime::session::Session;
use botc_serve::ports::{Deploy, FlowRegistry, Source, StoreError, Version};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Where a deploy command reads and moves versions, and counts waiting conversations.
pub(crate) struct Where {
    pub config: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub environment: Option<String>,
}

/// What a deploy may do.
pub(crate) struct Allow {
    pub dry_run: bool,
    pub restarts: bool,
    pub dirty: bool,
}

const DEFAULT_ENVIRONMENT: &str = "production";
/// Conversations counted per bot before a deploy (the rest are not looked at).
const CENSUS_MAX: usize = 5_000_000;

enum Registry {
    Sqlite(botc_serve::SqliteHistory),
    #[cfg(feature = "distributed")]
    Postgres(botc_dist::Postgres),
}

/// Where the conversations are, to count them.
enum Sessions {
    /// The data directory has no store yet: nobody waits.
    None,
    Embedded(botc_serve::Embedded),
    /// They cannot be read now; why.
    Unavailable(String),
    #[cfg(feature = "distributed")]
    Redis(botc_dist::Redis),
}

struct Target {
    registry: Registry,
    sessions: Sessions,
    /// Where it is, for people.
    shown: String,
    environment: String,
}

impl Target {
    fn registry(&self) -> &dyn FlowRegistry {
        match &self.registry {
            Registry::Sqlite(h) => h,
            #[cfg(feature = "distributed")]
            Registry::Postgres(p) => p,
        }
    }

    /// The sessions of `bot` that can be read; `Err` says why none can be counted.
    async fn sessions(&self, bot: &str) -> Result<Vec<Session>, String> {
        use botc_serve::ports::SessionStore;
        let prefix = format!("{bot}/");
        let stored = match &self.sessions {
            Sessions::None => return Ok(Vec::new()),
            Sessions::Unavailable(why) => return Err(why.clone()),
            Sessions::Embedded(e) => e.scan(&prefix, CENSUS_MAX).await,
            #[cfg(feature = "distributed")]
            Sessions::Redis(r) => r.scan_sessions(&prefix, CENSUS_MAX).await,
        };
        let stored = stored.map_err(|e| format!("cannot read the conversations: {e}"))?;
        Ok(stored.iter().filter_map(|(_, s)| Session::decode(&s.session).ok()).collect())
    }

    async fn close(self) {
        if let Sessions::Embedded(e) = &self.sessions {
            e.close();
        }
        match self.registry {
            Registry::Sqlite(h) => h.close().await,
            #[cfg(feature = "distributed")]
            Registry::Postgres(p) => p.close().await,
        }
    }
}

fn environment_name(flag: Option<&str>, config: Option<&config::Config>) -> Result<String, String> {
    let name = flag.or(config.and_then(|c| c.environment.as_deref())).unwrap_or(DEFAULT_ENVIRONMENT);
    config::check_environment(name)?;
    Ok(name.to_string())
}

/// Opens the registry (and the conversations) the config or data directory names.
async fn open(
    w: &Where,
    config: Option<&config::Config>,
    partitions: usize,
    capacity: usize,
) -> Result<Target, String> {
    let environment = environment_name(w.environment.as_deref(), config)?;
    #[cfg(feature = "distributed")]
    if let (Some(path), Some(c)) = (&w.config, config)
        && c.postgres.is_some()
    {
        let infra = config::infra(c, path)?;
        let pg = botc_dist::Postgres::open(&infra.postgres).await?;
        let conn = botc_dist::Conn::connect(&infra.redis)
            .await
            .map_err(|e| format!("cannot connect to redis ({}) to count conversations: {e}", infra.redis))?;
        let redis = botc_dist::Redis::new(conn, botc_dist::Keys::new(&infra.prefix), 0, infra.replicas);
        return Ok(Target {
            registry: Registry::Postgres(pg),
            sessions: Sessions::Redis(redis),
            shown: format!("postgres (schema {})", infra.postgres.schema),
            environment,
        });
    }
    let dir = w
        .data_dir
        .clone()
        .or_else(|| config.and_then(|c| c.data_dir.clone()))
        .unwrap_or_else(|| PathBuf::from("botc-data"));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create data directory {}: {e}", dir.display()))?;
    let history = botc_serve::SqliteHistory::open(&botc_serve::history_path(&dir)).await?;
    let sessions = if !dir.join("botc.redb").exists() {
        Sessions::None
    } else {
        match botc_serve::Embedded::open(&dir, partitions, capacity) {
            Ok(store) => Sessions::Embedded(store),
            Err(e) if e.to_string().contains("in use") => Sessions::Unavailable(format!(
                "a running botc serve holds {} (they are counted when it is stopped)",
                dir.display()
            )),
            Err(e) => Sessions::Unavailable(format!("{e}")),
        }
    };
    Ok(Target {
        registry: Registry::Sqlite(history),
        sessions,
        shown: botc_serve::history_path(&dir).display().to_string(),
        environment,
    })
}

/// Who is deploying: the CI's actor, else the user, at this host.
fn deployer() -> String {
    let user = ["GITHUB_ACTOR", "GITLAB_USER_LOGIN", "USER", "USERNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "someone".into());
    match std::fs::read_to_string("/proc/sys/kernel/hostname") {
        Ok(host) if !host.trim().is_empty() => format!("{user}@{}", host.trim()),
        _ => user,
    }
}

fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run git: {e} (is git installed?)"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
}

/// The commit the deployed files come from. Files that differ from it (changed, staged or
/// untracked) refuse the deploy unless `allow_dirty`; then the commit is recorded with
/// `-dirty`.
fn source_of(files: &[PathBuf], allow_dirty: bool) -> Result<(Source, Vec<String>), String> {
    // Asked where the flows are, so a deploy can be run from anywhere.
    let files: Vec<PathBuf> = files.iter().map(|f| std::path::absolute(f).unwrap_or_else(|_| f.clone())).collect();
    let first = files.first().cloned().unwrap_or_default();
    let dir = if first.is_dir() { first } else { first.parent().map(Path::to_path_buf).unwrap_or_default() };
    let git = |args: &[&str]| git(&dir, args);
    if let Err(e) = git(&["rev-parse", "--show-toplevel"]) {
        if allow_dirty {
            return Ok((Source::default(), vec!["not in a git work tree: no commit recorded".into()]));
        }
        return Err(format!(
            "botc deploy records the git commit it deploys, but {} is not in a git work tree ({e}); \
             keep the flows in a repository, or pass --allow-dirty to deploy without a commit",
            dir.display()
        ));
    }
    let mut args = vec!["status", "--porcelain", "--untracked-files=all", "--"];
    let names: Vec<String> = files.iter().map(|f| f.to_string_lossy().into_owned()).collect();
    args.extend(names.iter().map(String::as_str));
    let dirty: Vec<String> = git(&args)?.lines().map(|l| l.get(3..).unwrap_or(l).to_string()).collect();
    let head = git(&["log", "-1", "--format=%H%n%an <%ae>%n%s"]).map_err(|e| {
        format!("cannot read the current commit ({e}); commit the flows first (a repository with no commits has none)")
    })?;
    let mut lines = head.lines();
    let mut source = Source {
        commit: lines.next().unwrap_or_default().to_string(),
        author: lines.next().unwrap_or_default().to_string(),
        message: lines.next().unwrap_or_default().to_string(),
    };
    let mut notes = Vec::new();
    if !dirty.is_empty() {
        if !allow_dirty {
            return Err(format!(
                "these files differ from commit {} and would be deployed as they are on disk:\n  {}\ncommit them \
                 (botc deploy records the commit it deploys), or pass --allow-dirty",
                short(&source.commit),
                dirty.join("\n  ")
            ));
        }
        source.commit.push_str("-dirty");
        notes.push(format!("{} file(s) differ from the commit; recorded as {}", dirty.len(), short(&source.commit)));
    }
    Ok((source, notes))
}

fn short(commit: &str) -> String {
    match commit.split_once('-') {
        Some((sha, rest)) => format!("{}-{rest}", &sha[..sha.len().min(10)]),
        None => commit[..commit.len().min(10)].to_string(),
    }
}

/// Every version of `bot` the registry holds that loads, by hash.
async fn known_versions(r: &dyn FlowRegistry, bot: &str) -> Result<HashMap<[u8; 32], Loaded>, StoreError> {
    let mut out = HashMap::new();
    for bytes in r.programs(bot.into()).await? {
        if let Ok(l) = Loaded::from_bytes(&bytes) {
            out.insert(l.program().hash, l);
        }
    }
    Ok(out)
}

/// What moving `bot` to `new` does, printed; the one-line summary the deploy records, and
/// whether conversations would (or, uncounted, may) start over.
struct Plan {
    summary: String,
    restarts: bool,
}

/// `versions`: the bot's versions as the registry lists them (for their numbers).
async fn plan(
    target: &Target,
    bot: &str,
    current: Option<&Version>,
    new: &Loaded,
    versions: &[Version],
) -> Result<Plan, String> {
    let programs = known_versions(target.registry(), bot).await.map_err(|e| e.to_string())?;
    let current = current.and_then(|v| programs.get(&v.hash));
    let numbers: HashMap<[u8; 32], u64> = versions.iter().map(|v| (v.hash, v.number)).collect();
    let plan = counted(target, bot, current, new, &programs, &numbers).await?;
    // The deploy's record also keeps `botc diff`'s verdict against the version it replaces.
    let verdict = match current {
        None => "first version".to_string(),
        Some(current) => {
            let points = botc_runtime::migrate::diff(current.program(), new.program());
            let n = |v| points.iter().filter(|p| p.verdict == v).count();
            use botc_runtime::migrate::Verdict::{Mapping, Restart, Resume};
            format!("diff: {} resume, {} restart, {} need a map", n(Resume), n(Restart), n(Mapping))
        }
    };
    Ok(Plan { summary: format!("{verdict}; {}", plan.summary), restarts: plan.restarts })
}

async fn counted(
    target: &Target,
    bot: &str,
    current: Option<&Loaded>,
    new: &Loaded,
    programs: &HashMap<[u8; 32], Loaded>,
    numbers: &HashMap<[u8; 32], u64>,
) -> Result<Plan, String> {
    match target.sessions(bot).await {
        Ok(sessions) => {
            let f = forecast(new, |h| programs.get(h), sessions);
            print_forecast(&f, numbers);
            let summary = if f.waiting() == 0 {
                "no conversation waiting".to_string()
            } else {
                format!(
                    "{} waiting: {} moved, {} started over, {} already on it",
                    f.waiting(),
                    f.moving,
                    f.restarting,
                    f.staying
                )
            };
            Ok(Plan { summary, restarts: f.restarting > 0 })
        }
        Err(why) => {
            // Uncounted: what `botc diff` says of each place a conversation can wait.
            outln!("        waiting conversations not counted: {why}");
            let mut restarts = false;
            if let Some(current) = current {
                for p in botc_runtime::migrate::diff(current.program(), new.program()) {
                    if p.verdict != botc_runtime::migrate::Verdict::Resume {
                        restarts = true;
                        outln!("        at {} ({}): would start over: {}", p.node, p.kind.name(), p.reason);
                    }
                }
            }
            if !restarts {
                outln!("        every place a conversation can wait carries over");
            }
            Ok(Plan { summary: format!("not counted ({why})"), restarts })
        }
    }
}

fn print_forecast(f: &Forecast, numbers: &HashMap<[u8; 32], u64>) {
    if f.waiting() == 0 {
        outln!("        no conversation is waiting");
        return;
    }
    outln!(
        "        {} waiting conversation(s): {} move on, {} start over{}",
        f.waiting(),
        f.moving,
        f.restarting,
        if f.staying > 0 { format!(", {} already on this version", f.staying) } else { String::new() }
    );
    let width = f.places.keys().map(|(_, p, _)| p.len()).max().unwrap_or(0);
    for ((hash, place, moves), p) in &f.places {
        // The registry's number of the version they wait on (a hash prefix for one it lost).
        let from = numbers.get(hash).map_or_else(|| botc_serve::hex(hash)[..8].to_string(), |n| format!("v{n}"));
        let what = if *moves { "move on".to_string() } else { format!("start over: {}", p.reason) };
        outln!("          {place:<width$}  {:>7}  (from {from})  {what}", p.count);
    }
}

/// One bot's move: the version it goes to (registered unless dry), planned, then pointed.
struct Move<'a> {
    bot: &'a str,
    program: &'a Loaded,
    /// Registered at deploy time with this source; `None`: a version already there.
    register: Option<&'a Source>,
    number: Option<u64>,
    action: &'static str,
    /// The bot's versions in the registry.
    versions: &'a [Version],
}

/// Plans and (unless dry or refused) makes one move; true when it was refused.
async fn make(
    target: &Target,
    m: Move<'_>,
    current: Option<&Version>,
    allow: &Allow,
    now: u64,
) -> Result<bool, String> {
    let r = target.registry();
    let env = &target.environment;
    let plan = plan(target, m.bot, current, m.program, m.versions).await?;
    if plan.restarts && !allow.restarts {
        outln!("        refused: conversations would start over (pass --allow-restarts to deploy anyway)");
        return Ok(true);
    }
    if allow.dry_run {
        outln!("        (dry run: nothing changed)");
        return Ok(false);
    }
    let number = match (m.register, m.number) {
        (Some(source), _) => {
            let p = m.program.program();
            r.register(m.bot.into(), p.hash, p.encode(), source.clone(), now).await.map_err(|e| e.to_string())?.number
        }
        (None, Some(n)) => n,
        (None, None) => return Err("nothing to deploy".into()),
    };
    let deploy = Deploy {
        seq: 0,
        bot: m.bot.into(),
        environment: env.clone(),
        from: current.map(|v| v.number),
        to: number,
        action: m.action.into(),
        by: deployer(),
        plan: plan.summary,
        at: now,
    };
    match r.point(deploy).await {
        Ok(_) => {
            outln!("        {} `{}` is now version {number}", env, m.bot);
            Ok(false)
        }
        Err(StoreError::Conflict(_)) => Err(format!(
            "another deploy moved `{}` in {env} meanwhile; run the command again to see the new plan",
            m.bot
        )),
        Err(e) => Err(e.to_string()),
    }
}

fn now() -> u64 {
    botc_runtime::clock::Clock::unix(&botc_runtime::clock::SystemClock::default())
}

fn describe(v: &Version) -> String {
    let mut s = format!("v{}", v.number);
    if !v.source.commit.is_empty() {
        s.push_str(&format!(", commit {} \"{}\" by {}", short(&v.source.commit), v.source.message, v.source.author));
    }
    s
}

/// The files whose state the deployed versions come from: the flows and the config.
fn deployed_files(paths: &[PathBuf], config_path: Option<&Path>, config: Option<&config::Config>) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = paths.to_vec();
    if let Some(c) = config {
        files.extend(c.bots.iter().map(|b| b.flow.clone()));
    }
    if files.is_empty() {
        files.push(PathBuf::from("flows/examples"));
    }
    files.extend(config_path.map(Path::to_path_buf));
    files
}

pub(crate) fn deploy_cmd(paths: Vec<PathBuf>, only: Vec<String>, w: Where, allow: Allow) -> ExitCode {
    let config = match w.config.as_deref().map(config::load).transpose() {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let files = deployed_files(&paths, w.config.as_deref(), config.as_ref());
    let (bots, _, partitions, capacity) = match bots_and_options(paths, config.as_ref()) {
        Ok(b) => b,
        Err(code) => return code,
    };
    if let Some(missing) = only.iter().find(|id| !bots.iter().any(|b| &b.id == *id)) {
        let ids: Vec<&str> = bots.iter().map(|b| b.id.as_str()).collect();
        return fail(format!("no bot `{missing}` among the flows given; they are: {}", ids.join(", ")));
    }
    let (source, notes) = match source_of(&files, allow.dirty) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    crate::with_runtime(async move {
        let target = match open(&w, config.as_ref(), partitions, capacity).await {
            Ok(t) => t,
            Err(e) => return fail(e),
        };
        let result = deploy(&target, &bots, &only, &source, &notes, &allow).await;
        target.close().await;
        match result {
            Ok(false) => ExitCode::SUCCESS,
            Ok(true) => ExitCode::from(EXIT_FINDINGS),
            Err(e) => fail(e),
        }
    })
}

/// True when a move was refused.
async fn deploy(
    target: &Target,
    bots: &[botc_serve::Bot],
    only: &[String],
    source: &Source,
    notes: &[String],
    allow: &Allow,
) -> Result<bool, String> {
    let env = &target.environment;
    let r = target.registry();
    let current: HashMap<String, Version> =
        r.environment(env.clone()).await.map_err(|e| e.to_string())?.into_iter().map(|v| (v.bot.clone(), v)).collect();
    let commit = if source.commit.is_empty() { "no commit".to_string() } else { short(&source.commit) };
    outln!("{} {env} in {} from {commit}", if allow.dry_run { "plan for" } else { "deploying to" }, target.shown);
    for n in notes {
        outln!("  note: {n}");
    }
    let (mut refused, mut changed) = (false, 0);
    let now = now();
    for b in bots.iter().filter(|b| only.is_empty() || only.contains(&b.id)) {
        let hash = b.program.program().hash;
        let existing = r.versions(b.id.clone()).await.map_err(|e| e.to_string())?;
        let known = existing.iter().find(|v| v.hash == hash);
        let label = known.map_or_else(|| "new version".to_string(), |v| format!("v{}", v.number));
        match current.get(&b.id) {
            Some(v) if v.hash == hash => {
                outln!("  {}: unchanged ({})", b.id, describe(v));
                continue;
            }
            Some(v) => outln!("  {}: {} -> {label}", b.id, describe(v)),
            None => outln!("  {}: first deploy -> {label}", b.id),
        }
        changed += 1;
        let m = Move {
            bot: &b.id,
            program: &b.program,
            register: known.is_none().then_some(source),
            number: known.map(|v| v.number),
            action: "deploy",
            versions: &existing,
        };
        refused |= make(target, m, current.get(&b.id), allow, now).await?;
    }
    if changed == 0 {
        outln!("nothing to deploy: {env} already runs these flows");
    } else if refused {
        let what = if allow.dry_run { "would not be deployed" } else { "were not deployed" };
        outln!("some bots {what} (see above); `botc diff OLD NEW` shows where conversations wait");
    } else if !allow.dry_run {
        outln!(
            "processes following {env} (`environment = \"{env}\"` in botc.toml, or --environment {env}) load it within seconds"
        );
    }
    Ok(refused)
}

pub(crate) fn rollback_cmd(bot: String, to: Option<u64>, w: Where, allow: Allow) -> ExitCode {
    let config = match w.config.as_deref().map(config::load).transpose() {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let (partitions, capacity) =
        config.as_ref().map_or((botc_serve::DEFAULT_PARTITIONS, botc_serve::DEFAULT_QUEUE_CAPACITY), |c| {
            (c.limits.partitions, c.limits.queue_capacity)
        });
    crate::with_runtime(async move {
        let target = match open(&w, config.as_ref(), partitions, capacity).await {
            Ok(t) => t,
            Err(e) => return fail(e),
        };
        let result = rollback(&target, &bot, to, &allow).await;
        target.close().await;
        match result {
            Ok(false) => ExitCode::SUCCESS,
            Ok(true) => ExitCode::from(EXIT_FINDINGS),
            Err(e) => fail(e),
        }
    })
}

async fn rollback(target: &Target, bot: &str, to: Option<u64>, allow: &Allow) -> Result<bool, String> {
    let env = &target.environment;
    let r = target.registry();
    let current = r.environment(env.clone()).await.map_err(|e| e.to_string())?.into_iter().find(|v| v.bot == bot);
    let Some(current) = current else {
        return Err(format!("bot `{bot}` has never been deployed to {env}; `botc deploys` lists what has"));
    };
    let versions = r.versions(bot.into()).await.map_err(|e| e.to_string())?;
    let number = match to {
        Some(n) => n,
        None => {
            // The version the current one replaced, in this environment.
            let history = r.deploys(Some(bot.into()), 1000).await.map_err(|e| e.to_string())?;
            let last = history.iter().find(|d| &d.environment == env && d.to == current.number);
            match last.and_then(|d| d.from) {
                Some(n) => n,
                None => {
                    return Err(format!(
                        "{env} `{bot}` is at {}, the first version deployed there: there is nothing before it \
                         (`botc versions {bot}` lists the versions; pick one with --to)",
                        describe(&current)
                    ));
                }
            }
        }
    };
    let Some(version) = versions.iter().find(|v| v.number == number) else {
        let numbers: Vec<String> = versions.iter().map(|v| v.number.to_string()).collect();
        return Err(format!("bot `{bot}` has no version {number}; it has {}", numbers.join(", ")));
    };
    if version.number == current.number {
        outln!("{env} `{bot}` is already at {}", describe(version));
        return Ok(false);
    }
    let bytes = r
        .program(bot.into(), version.hash)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("the registry lost the bytecode of `{bot}` v{number}"))?;
    let program = Loaded::from_bytes(&bytes).map_err(|e| format!("`{bot}` v{number} does not load: {e}"))?;
    outln!(
        "{} {env} in {}: `{bot}` {} -> {}",
        if allow.dry_run { "plan for rolling back" } else { "rolling back" },
        target.shown,
        describe(&current),
        describe(version)
    );
    let m =
        Move { bot, program: &program, register: None, number: Some(number), action: "rollback", versions: &versions };
    make(target, m, Some(&current), allow, now()).await
}

pub(crate) fn versions_cmd(bot: String, w: Where) -> ExitCode {
    listing(w, move |target| Box::pin(async move { versions(&target, &bot).await }))
}

pub(crate) fn deploys_cmd(bot: Option<String>, limit: usize, w: Where) -> ExitCode {
    listing(w, move |target| Box::pin(async move { deploys(&target, bot, limit).await }))
}

type Listing = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>>>>;

/// A read-only command against the registry.
fn listing(w: Where, run: impl FnOnce(std::rc::Rc<Target>) -> Listing) -> ExitCode {
    let config = match w.config.as_deref().map(config::load).transpose() {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    crate::with_runtime(async move {
        let mut w = w;
        // Listing counts nothing: the data directory's store is not opened.
        let target = match open_registry(&mut w, config.as_ref()).await {
            Ok(t) => std::rc::Rc::new(t),
            Err(e) => return fail(e),
        };
        let result = run(target.clone()).await;
        if let Ok(t) = std::rc::Rc::try_unwrap(target) {
            t.close().await;
        }
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(e),
        }
    })
}

async fn open_registry(w: &mut Where, config: Option<&config::Config>) -> Result<Target, String> {
    let mut t = open(w, config, botc_serve::DEFAULT_PARTITIONS, botc_serve::DEFAULT_QUEUE_CAPACITY).await?;
    if let Sessions::Embedded(e) = std::mem::replace(&mut t.sessions, Sessions::None) {
        e.close();
    }
    Ok(t)
}

async fn versions(target: &Target, bot: &str) -> Result<(), String> {
    let r = target.registry();
    let versions = r.versions(bot.into()).await.map_err(|e| e.to_string())?;
    if versions.is_empty() {
        return Err(format!("bot `{bot}` has no versions in {}", target.shown));
    }
    // Where each environment points: its latest deploy of this bot.
    let mut envs: HashMap<u64, Vec<String>> = HashMap::new();
    let mut seen: Vec<String> = Vec::new();
    for d in r.deploys(Some(bot.into()), 10_000).await.map_err(|e| e.to_string())? {
        if !seen.contains(&d.environment) {
            seen.push(d.environment.clone());
            envs.entry(d.to).or_default().push(d.environment);
        }
    }
    let author = |v: &Version| if v.source.author.is_empty() { "-".to_string() } else { v.source.author.clone() };
    let width = versions.iter().map(|v| author(v).chars().count()).max().unwrap_or(0).max(6);
    outln!("{:>4}  {:<8}  {:<10}  {:<19}  {:<width$}  message", "", "hash", "commit", "registered (UTC)", "author");
    for v in versions.iter().rev() {
        let here = envs.get(&v.number).map_or(String::new(), |e| format!("  <- {}", e.join(", ")));
        let commit = if v.source.commit.is_empty() { "-".to_string() } else { short(&v.source.commit) };
        outln!(
            "{:>4}  {:<8}  {:<10}  {:<19}  {:<width$}  {}{here}",
            format!("v{}", v.number),
            &botc_serve::hex(&v.hash)[..8],
            commit,
            render_time(v.at),
            author(v),
            if v.source.message.is_empty() { "-" } else { &v.source.message }
        );
    }
    Ok(())
}

async fn deploys(target: &Target, bot: Option<String>, limit: usize) -> Result<(), String> {
    let list = target.registry().deploys(bot.clone(), limit).await.map_err(|e| e.to_string())?;
    if list.is_empty() {
        outln!("no deploys{} in {}", bot.map_or(String::new(), |b| format!(" of `{b}`")), target.shown);
        return Ok(());
    }
    let bot_width = list.iter().map(|d| d.bot.chars().count()).max().unwrap_or(0);
    let env_width = list.iter().map(|d| d.environment.chars().count()).max().unwrap_or(0);
    for d in list {
        let from = d.from.map_or("-".to_string(), |n| format!("v{n}"));
        outln!(
            "{:>5}  {}  {:<8}  {:<bot_width$}  {:<env_width$}  {from:>4} -> v{:<4}  by {}: {}",
            format!("#{}", d.seq),
            render_time(d.at),
            d.action,
            d.bot,
            d.environment,
            d.to,
            d.by,
            d.plan
        );
    }
    Ok(())
}
