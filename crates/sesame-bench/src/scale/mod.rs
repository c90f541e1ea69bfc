//! The scale measurement: one private `redis-server` per total of logged-in sessions (10,000
//! and 1,000,000 by default), each filled up to its total; the memory per session of each;
//! then the latency of single operations (one at a time, so each figure is one operation's
//! own time): load, save, login, list a user's sessions, revoke all of a user's sessions.
//! The operations run in rounds that alternate between the servers, so a busy moment of the
//! machine falls on every total alike rather than on one of them.
//!
//! Sessions are made through [`SessionManager`] on a [`RedisStore`], as a web service would:
//! session `i` belongs to user `i / SESSIONS_PER_USER` and holds the [`crate::content`]
//! attributes of that user. Per-user operations touch one user's keys only, so their
//! latency should not depend on how many sessions Redis holds.

pub mod ops;
pub mod progress;
pub mod report;

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use sesame::{SessionConfig, SessionManager, TokenAction};
use sesame_redis::RedisStore;
use sesame_testkit::{RedisOptions, RedisServer};
use tokio::task::JoinSet;

use crate::content;
use crate::info::parse_info;
use crate::{BenchError, BenchResult};
use progress::Progress;

pub use ops::{OpKind, OpLatencies};

/// Sessions of each user: enough for a list and a revoke-all to have something to do.
pub const SESSIONS_PER_USER: u64 = 4;

/// Pause before reading `used_memory`: Redis refreshes its client accounting in its cron.
const SETTLE: Duration = Duration::from_millis(1100);

/// Idle timeout of the sessions: longer than a run, so none expires while it lasts.
const IDLE: Duration = Duration::from_secs(2 * 3600);
/// Age after which a read pushes a session's idle deadline forward: longer than a run, so a
/// timed load is a read only, whenever its session was made (with the default minute, loads
/// of sessions made over a minute earlier would also write).
const TOUCH_AFTER: Duration = Duration::from_secs(3600);

/// Keys whose `MEMORY USAGE` is averaged, per kind (session keys, user index keys).
const MEMORY_SAMPLES: u64 = 200;

/// What to measure.
#[derive(Debug, Clone)]
pub struct ScaleConfig {
    /// Totals of sessions to measure at, ascending.
    pub scales: Vec<u64>,
    /// Timed operations of each kind at each total.
    pub ops: usize,
    /// Session creations in flight while loading.
    pub concurrency: usize,
    /// Wall-clock budget of the whole run; a total whose estimated load does not fit is refused.
    pub budget: Duration,
}

impl ScaleConfig {
    /// The published run: 10,000 and 1,000,000 sessions, 2000 operations of each kind, 64
    /// creations in flight, 30 minutes at most.
    pub fn standard() -> ScaleConfig {
        ScaleConfig {
            scales: vec![10_000, 1_000_000],
            ops: 2000,
            concurrency: 64,
            budget: Duration::from_secs(30 * 60),
        }
    }

    /// The seconds-long form for the test suite: 1000 and 5000 sessions, 200 operations.
    pub fn smoke() -> ScaleConfig {
        ScaleConfig { scales: vec![1000, 5000], ops: 200, ..ScaleConfig::standard() }
    }
}

/// Memory taken at one total.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryFigures {
    /// (`used_memory` − the same before any session) / sessions, client buffers excluded:
    /// everything a session costs, its user's index and epoch keys' share included.
    pub used_memory: f64,
    /// Mean `MEMORY USAGE <key> SAMPLES 0` of sampled session keys.
    pub session_key: f64,
    /// The shortest and longest record among the sampled session keys (`STRLEN`), bytes: what
    /// decides the allocator's size class of the key's value.
    pub record_bytes: (u64, u64),
    /// Mean `MEMORY USAGE` of sampled user index keys, divided by [`SESSIONS_PER_USER`].
    pub index_share: f64,
    /// Keys in the database (`DBSIZE`).
    pub keys: u64,
}

/// Everything measured at one total.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleFigures {
    /// Sessions in Redis.
    pub sessions: u64,
    /// Memory per session.
    pub memory: MemoryFigures,
    /// Seconds the load took.
    pub load_secs: f64,
    /// Latencies of each operation kind, in [`OpKind::ALL`] order.
    pub ops: Vec<OpLatencies>,
}

/// One private server, the manager over it and the token of every session made so far.
pub struct ScaleBench {
    config: ScaleConfig,
    manager: SessionManager,
    store: Arc<RedisStore>,
    admin: MultiplexedConnection,
    /// Token of session `i` at index `i`.
    tokens: Vec<String>,
    baseline: f64,
    deadline: Instant,
    // Declared last: dropped (killed) after the connections above.
    _server: RedisServer,
}

impl ScaleBench {
    /// Starts a private `redis-server` (no `maxmemory`, no persistence) on a free loopback port
    /// and connects a store and a manager to it. Loads stop with an error after `deadline`.
    pub async fn start(config: ScaleConfig, deadline: Instant) -> BenchResult<ScaleBench> {
        if config.scales.is_empty() || config.ops == 0 || config.concurrency == 0 {
            return Err(BenchError::new("scales, operations and concurrency must be positive"));
        }
        if config.scales.windows(2).any(|w| w[0] >= w[1]) {
            return Err(BenchError::new("session totals must be given in ascending order"));
        }
        let server =
            tokio::task::spawn_blocking(|| RedisServer::start_with(RedisOptions::default()))
                .await
                .map_err(|e| BenchError::new(format!("starting redis-server: {e}")))??;
        let url = server.url();
        let admin = redis::Client::open(url.as_str())?.get_multiplexed_async_connection().await?;
        let store = Arc::new(RedisStore::connect(&url).await?);
        let session_config = SessionConfig::builder()
            .insecure_development_secret()
            .idle_timeout(IDLE)
            .touch_after(TOUCH_AFTER)
            .build()?;
        let manager = SessionManager::new(store.clone(), session_config);
        let mut bench = ScaleBench {
            config,
            manager,
            store,
            admin,
            tokens: Vec::new(),
            baseline: 0.0,
            deadline,
            _server: server,
        };
        // Redis allocates per-command structures (latency histograms, script cache) on first
        // use: a throwaway user's session, made and revoked first, keeps them out of the delta.
        create(&bench.manager, u64::MAX / 2).await?;
        bench.manager.revoke_user(&user_name(u64::MAX / 2 / SESSIONS_PER_USER)).await?;
        bench.baseline = bench.used_memory().await?;
        Ok(bench)
    }

    /// The configuration.
    pub fn config(&self) -> &ScaleConfig {
        &self.config
    }

    /// The manager.
    pub fn manager(&self) -> &SessionManager {
        &self.manager
    }

    /// Sessions made so far.
    pub fn sessions(&self) -> u64 {
        self.tokens.len() as u64
    }

    /// Makes sessions `sessions()..total` with `concurrency` in flight, showing progress;
    /// returns the seconds it took. Stops with an error when the deadline passes.
    pub async fn fill(&mut self, total: u64) -> BenchResult<f64> {
        let from = self.sessions();
        let deadline = self.deadline;
        let workers = self.config.concurrency as u64;
        let progress = Arc::new(Progress::default());
        let printer = tokio::spawn(progress::print_until_finished(progress.clone(), from, total));
        let started = Instant::now();
        let mut tasks = JoinSet::new();
        for w in 0..workers {
            let (manager, progress) = (self.manager.clone(), progress.clone());
            tasks.spawn(async move {
                let mut made = Vec::new();
                let mut i = from.saturating_add(w);
                while i < total {
                    if Instant::now() > deadline {
                        return Err(BenchError::new("the time budget ran out while loading"));
                    }
                    made.push((i, create(&manager, i).await?));
                    progress.add();
                    i = i.saturating_add(workers);
                }
                Ok::<_, BenchError>(made)
            });
        }
        let mut made = Vec::new();
        let mut failure = None;
        while let Some(done) = tasks.join_next().await {
            match done.map_err(|e| BenchError::new(format!("a loading task failed: {e}"))) {
                Ok(Ok(part)) => made.extend(part),
                Ok(Err(e)) | Err(e) => failure = failure.or(Some(e)),
            }
        }
        let secs = started.elapsed().as_secs_f64();
        progress.finish();
        printer.await.map_err(|e| BenchError::new(format!("progress printer: {e}")))?;
        if let Some(e) = failure {
            return Err(e);
        }
        made.sort_unstable_by_key(|(i, _)| *i);
        self.tokens.extend(made.into_iter().map(|(_, token)| token));
        if self.sessions() != total {
            return Err(BenchError::new(format!("made {} sessions, not {total}", self.sessions())));
        }
        Ok(secs)
    }

    /// Memory per session now.
    pub async fn memory(&mut self) -> BenchResult<MemoryFigures> {
        let n = self.sessions().max(1);
        let used = (self.used_memory().await? - self.baseline) / n as f64;
        let users = n.div_ceil(SESSIONS_PER_USER);
        let (mut session_sum, mut index_sum) = (0, 0);
        let mut record_bytes = (u64::MAX, 0);
        for s in 0..MEMORY_SAMPLES {
            let i = spread(s, MEMORY_SAMPLES, n);
            let key = self.manager.config().tokens().parse(self.token(i)?).map_err(|e| {
                BenchError::new(format!("a token this run made does not parse: {e}"))
            })?;
            let session_key = self.store.session_key(&key.key());
            session_sum += self.memory_usage(&session_key).await?;
            let len: u64 =
                redis::cmd("STRLEN").arg(&session_key).query_async(&mut self.admin).await?;
            record_bytes = (record_bytes.0.min(len), record_bytes.1.max(len));
            let user = content::named(&user_name(spread(s, MEMORY_SAMPLES, users))).user();
            index_sum += self.memory_usage(&self.store.index_key(user)).await?;
        }
        let keys: u64 = redis::cmd("DBSIZE").query_async(&mut self.admin).await?;
        let samples = MEMORY_SAMPLES as f64;
        Ok(MemoryFigures {
            used_memory: used,
            session_key: session_sum as f64 / samples,
            record_bytes: (record_bytes.0.min(record_bytes.1), record_bytes.1),
            index_share: index_sum as f64 / samples / SESSIONS_PER_USER as f64,
            keys,
        })
    }

    /// The token of session `i`.
    pub fn token(&self, i: u64) -> BenchResult<&str> {
        usize::try_from(i)
            .ok()
            .and_then(|i| self.tokens.get(i))
            .map(String::as_str)
            .ok_or_else(|| BenchError::new(format!("no session {i}")))
    }

    /// Replaces the token of session `i` (after its user's sessions were made again).
    pub fn set_token(&mut self, i: u64, token: String) -> BenchResult<()> {
        let slot = usize::try_from(i).ok().and_then(|i| self.tokens.get_mut(i));
        *slot.ok_or_else(|| BenchError::new(format!("no session {i}")))? = token;
        Ok(())
    }

    async fn memory_usage(&mut self, key: &str) -> BenchResult<u64> {
        let bytes: Option<u64> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(key)
            .arg("SAMPLES")
            .arg(0)
            .query_async(&mut self.admin)
            .await?;
        bytes.ok_or_else(|| BenchError::new(format!("key {key} is missing")))
    }

    /// `used_memory` minus `mem_clients_normal`, after a pause.
    async fn used_memory(&mut self) -> BenchResult<f64> {
        tokio::time::sleep(SETTLE).await;
        let text: String = redis::cmd("INFO").arg("memory").query_async(&mut self.admin).await?;
        let info = parse_info(&text);
        let number = |field: &str| {
            info.get(field)
                .and_then(|v| v.parse::<f64>().ok())
                .ok_or_else(|| BenchError::new(format!("INFO memory has no number {field}")))
        };
        Ok(number("used_memory")? - number("mem_clients_normal")?)
    }
}

/// The name of user `u`.
pub fn user_name(u: u64) -> String {
    format!("user-{u:06}")
}

/// The user of session `i`.
pub fn user_of(i: u64) -> u64 {
    i / SESSIONS_PER_USER
}

/// The `j`-th of `count` indexes spread evenly over `0..n`.
pub fn spread(j: u64, count: u64, n: u64) -> u64 {
    let at = u128::from(j) * u128::from(n) / u128::from(count.max(1));
    u64::try_from(at).unwrap_or(u64::MAX).min(n.saturating_sub(1))
}

/// Makes session `i` as a login would: an anonymous session gets its user's content, logs in
/// as the user and is committed. Returns its token.
pub async fn create(manager: &SessionManager, i: u64) -> BenchResult<String> {
    let u = user_of(i);
    let name = user_name(u);
    let n = u32::try_from(u).unwrap_or(u32::MAX);
    let session = manager.open(None);
    session.insert("user_id", &name).await?;
    session.insert("profile", &content::profile(n)).await?;
    session.insert("hits", &content::initial_hits(n)).await?;
    session.login(&name).await?;
    match session.commit().await? {
        TokenAction::Set { token, .. } => Ok(token.expose()),
        other => Err(BenchError::new(format!("a login answered {other:?}, not a new token"))),
    }
}
