//! The bots a process serves and the flow version each runs, which can change while it
//! runs: a process that follows an environment (`production`, `staging`) of the flow
//! registry serves the version that environment's alias points at, and moves to a new one
//! within seconds of `botc deploy` moving the alias (hot reload). Conversations move at
//! their next event, as `botc diff` predicts (the worker migrates each one).
//!
//! Readers take a [`Catalog`], an immutable snapshot: a worker steps a whole batch on one,
//! so one conversation never sees two versions inside a batch.

use super::Bot;
use super::ports::{Deploy, FlowRegistry, Source, StoreError, Version};
use arc_swap::ArcSwap;
use botc_runtime::vm::Loaded;
use std::collections::HashMap;
use std::sync::Arc;

/// The bots at one moment, by id, with the earlier versions of their flows (to move
/// waiting conversations onto the current one).
#[derive(Clone, Default)]
pub struct Catalog {
    /// In the order they were configured (`/api/bots` lists them so).
    list: Vec<Arc<Bot>>,
    by_id: HashMap<String, Arc<Bot>>,
    /// By bot id, then program hash.
    previous: HashMap<String, HashMap<[u8; 32], Arc<Loaded>>>,
    /// The registry's version number of each bot's current flow, when known.
    numbers: HashMap<String, u64>,
}

impl Catalog {
    fn new(bots: Vec<Bot>) -> Catalog {
        let list: Vec<Arc<Bot>> = bots.into_iter().map(Arc::new).collect();
        let by_id = list.iter().map(|b| (b.id.clone(), b.clone())).collect();
        Catalog { list, by_id, ..Catalog::default() }
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Bot>> {
        self.by_id.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Bot>> {
        self.list.iter()
    }

    /// An earlier version of `bot`'s flow, by its program hash.
    pub fn previous(&self, bot: &str, hash: &[u8; 32]) -> Option<&Loaded> {
        self.previous.get(bot).and_then(|v| v.get(hash)).map(|l| &**l)
    }

    /// Whether a session pinned to `hash` can be understood: it is `bot`'s current version
    /// or an earlier one this process has loaded.
    pub fn knows(&self, bot: &str, hash: &[u8; 32]) -> bool {
        self.get(bot).is_some_and(|b| b.program.program().hash == *hash) || self.previous(bot, hash).is_some()
    }

    /// The registry's number of `bot`'s current version.
    pub fn number(&self, bot: &str) -> Option<u64> {
        self.numbers.get(bot).copied()
    }

    /// This catalog with `bot` serving `program` (a bot not served yet joins as a web bot);
    /// its current version joins the earlier ones.
    fn with_version(&self, bot: &str, program: Arc<Loaded>, number: u64) -> Catalog {
        let mut next = self.clone();
        let served = match self.by_id.get(bot) {
            Some(b) => {
                let old = b.program.clone();
                next.previous.entry(bot.into()).or_default().insert(old.program().hash, old);
                Bot { program: program.clone(), ..(**b).clone() }
            }
            None => Bot::web(bot, &program.program().name.replace('_', " "), program.clone()),
        };
        let served = Arc::new(served);
        match next.list.iter_mut().find(|b| b.id == bot) {
            Some(slot) => *slot = served.clone(),
            None => next.list.push(served.clone()),
        }
        next.by_id.insert(bot.into(), served);
        next.previous.entry(bot.into()).or_default().remove(&program.program().hash);
        next.numbers.insert(bot.into(), number);
        next
    }
}

/// The bots a process serves, as a [`Catalog`] that reloads replace whole.
pub struct Bots {
    now: ArcSwap<Catalog>,
    /// Reloads one at a time.
    reloading: tokio::sync::Mutex<()>,
}

impl Bots {
    pub fn new(bots: Vec<Bot>) -> Bots {
        Bots { now: ArcSwap::from_pointee(Catalog::new(bots)), reloading: tokio::sync::Mutex::new(()) }
    }

    /// The bots as they are now; hold it for as long as one consistent view is needed.
    pub fn snapshot(&self) -> Arc<Catalog> {
        self.now.load_full()
    }

    pub fn get(&self, id: &str) -> Option<Arc<Bot>> {
        self.now.load().get(id).cloned()
    }

    pub fn list(&self) -> Vec<Arc<Bot>> {
        self.now.load().list.clone()
    }

    /// Records each bot's current flow version in the registry and loads its earlier ones.
    /// Following `environment`, a bot the environment has no version of yet gets this one
    /// (the first start of a new installation); the environment's own versions are then
    /// loaded by [`Bots::follow`].
    pub async fn remember_versions(&self, flows: &dyn FlowRegistry, environment: Option<&str>, now: u64) {
        let _one = self.reloading.lock().await;
        let mut next = (*self.snapshot()).clone();
        let deployed: HashMap<String, Version> = match environment {
            Some(env) => match flows.environment(env.into()).await {
                Ok(list) => list.into_iter().map(|v| (v.bot.clone(), v)).collect(),
                Err(e) => {
                    tracing::error!(environment = env, error = %e, "cannot read the environment's flow versions");
                    HashMap::new()
                }
            },
            None => HashMap::new(),
        };
        for b in &self.snapshot().list {
            let p = b.program.program();
            match flows.register(b.id.clone(), p.hash, p.encode(), Source::default(), now).await {
                Ok(v) => {
                    next.numbers.insert(b.id.clone(), v.number);
                    if let Some(env) = environment.filter(|_| !deployed.contains_key(&b.id)) {
                        let first = Deploy {
                            seq: 0,
                            bot: b.id.clone(),
                            environment: env.into(),
                            from: None,
                            to: v.number,
                            action: "deploy".into(),
                            by: "botc (first start, from its flow files)".into(),
                            plan: "no conversations yet".into(),
                            at: now,
                        };
                        // Another process starting at once may have done it: either is right.
                        if let Err(e) = flows.point(first).await
                            && !matches!(e, StoreError::Conflict(_))
                        {
                            tracing::error!(bot = %b.id, error = %e, "cannot record the first version in the environment");
                        }
                    }
                }
                Err(e) => tracing::error!(bot = %b.id, error = %e, "cannot record the flow version"),
            }
            let mut versions = HashMap::new();
            match flows.programs(b.id.clone()).await {
                Ok(list) => {
                    for bytes in list {
                        match Loaded::from_bytes(&bytes) {
                            Ok(old) if old.program().hash != p.hash => {
                                versions.insert(old.program().hash, Arc::new(old));
                            }
                            Ok(_) => {}
                            Err(e) => tracing::warn!(bot = %b.id, error = %e, "an earlier flow version does not load"),
                        }
                    }
                }
                Err(e) => tracing::error!(bot = %b.id, error = %e, "cannot read earlier flow versions"),
            }
            next.previous.insert(b.id.clone(), versions);
        }
        self.now.store(Arc::new(next));
    }

    /// Serves the versions `environment`'s aliases point at: the bots whose alias moved get
    /// their new version (loaded and verified from the registry); returns how many changed.
    pub async fn follow(&self, flows: &dyn FlowRegistry, environment: &str) -> Result<usize, StoreError> {
        let _one = self.reloading.lock().await;
        let aliases = flows.environment(environment.into()).await?;
        let mut next = (*self.snapshot()).clone();
        let mut changed = 0;
        for v in aliases {
            if next.get(&v.bot).is_some_and(|b| b.program.program().hash == v.hash) {
                next.numbers.insert(v.bot.clone(), v.number);
                continue;
            }
            let program = match next.previous.get(&v.bot).and_then(|p| p.get(&v.hash)) {
                Some(p) => p.clone(),
                // A registry that cannot be read is tried again later (`?`); one bad version
                // (bytecode this botc cannot verify, say a newer release's during an upgrade)
                // holds back only its own bot.
                None => match load(flows, &v.bot, v.hash).await? {
                    Ok(p) => Arc::new(p),
                    Err(why) => {
                        tracing::error!(bot = %v.bot, environment, version = v.number, error = %why, "cannot serve the deployed version; keeping the current one");
                        continue;
                    }
                },
            };
            next = next.with_version(&v.bot, program, v.number);
            changed += 1;
            tracing::info!(
                bot = %v.bot,
                environment,
                version = v.number,
                commit = %v.source.commit,
                "now serving a new version of the flow"
            );
        }
        if changed > 0 {
            self.now.store(Arc::new(next));
        }
        Ok(changed)
    }

    /// Loads a version of `bot` a session is pinned to that this process has not seen (one
    /// deployed since, or served by another process): first by following the environment,
    /// which may have moved, then by its hash. Never guesses: a version the registry does
    /// not have stays unknown (and the conversation starts over).
    pub async fn learn(
        &self,
        flows: &dyn FlowRegistry,
        environment: Option<&str>,
        bot: &str,
        hash: [u8; 32],
    ) -> Result<(), StoreError> {
        if let Some(env) = environment {
            self.follow(flows, env).await?;
        }
        let _one = self.reloading.lock().await;
        if self.snapshot().knows(bot, &hash) {
            return Ok(());
        }
        let Some(bytes) = flows.program(bot.into(), hash).await? else {
            return Ok(());
        };
        let program = Loaded::from_bytes(&bytes)
            .map_err(|e| StoreError::Io(format!("bot `{bot}`: a registered flow version does not load: {e}")))?;
        let mut next = (*self.snapshot()).clone();
        next.previous.entry(bot.into()).or_default().insert(hash, Arc::new(program));
        self.now.store(Arc::new(next));
        Ok(())
    }
}

/// A version from the registry, verified: `Err` when the registry cannot be read, `Ok(Err)`
/// when this version cannot be served (missing, or bytecode that does not verify).
async fn load(flows: &dyn FlowRegistry, bot: &str, hash: [u8; 32]) -> Result<Result<Loaded, String>, StoreError> {
    Ok(match flows.program(bot.into(), hash).await? {
        None => Err("the environment points at a version the registry does not hold".into()),
        Some(bytes) => Loaded::from_bytes(&bytes).map_err(|e| format!("the deployed version does not load: {e}")),
    })
}

/// Follows `environment` for as long as the process runs, from deploy `seen` (already
/// followed; `None`: nothing followed yet): each deploy (any process's) is loaded within
/// seconds of its commit. A registry that cannot be reached is tried again
/// with back-off; the process serves what it has meanwhile.
pub async fn watch(
    bots: Arc<Bots>,
    flows: Arc<dyn FlowRegistry>,
    environment: String,
    seen: Option<u64>,
    clock: Arc<dyn botc_runtime::clock::Clock>,
    metrics: Arc<super::Metrics>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    tokio::select! {
        _ = follow_forever(&bots, &*flows, &environment, seen, &*clock, &metrics) => {}
        _ = super::supervise::until_stopped(&mut stop) => {}
    }
}

async fn follow_forever(
    bots: &Bots,
    flows: &dyn FlowRegistry,
    environment: &str,
    mut seen: Option<u64>,
    clock: &dyn botc_runtime::clock::Clock,
    metrics: &super::Metrics,
) {
    // `seen`: the deploy last followed, read before following, so a deploy made in between
    // is followed again rather than missed.
    let mut failures = 0;
    loop {
        let step = async {
            seen = Some(match seen {
                None => flows.last_deploy().await?,
                Some(seq) => flows.deployed_after(seq).await?,
            });
            bots.follow(flows, environment).await
        };
        match step.await {
            Ok(changed) => {
                failures = 0;
                metrics.flow_reloads.inc_by(changed as u64);
            }
            Err(e) => {
                failures += 1;
                let wait = super::backoff(failures);
                tracing::error!(environment = %environment, error = %e, retry_in_ms = wait.as_millis() as u64, "cannot follow the flow registry; retrying");
                clock.sleep(wait).await;
            }
        }
    }
}
