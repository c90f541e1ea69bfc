//! One measurement of one layout, on a fresh private `redis-server`.
//!
//! 1. Memory: `used_memory` is read, the sessions are created, `used_memory` is read again;
//!    then `MEMORY USAGE <key> SAMPLES 0` and `OBJECT ENCODING <key>` of every session key.
//! 2. Requests: for each kind (read, read+write), one warm-up pass over every session, then
//!    `CONFIG RESETSTAT`, a fixed number of requests round robin over the sessions with a
//!    fixed number in flight, and `INFO commandstats` / `INFO cpu` afterwards. Redis's
//!    process CPU per request is the time figure; the command counts show what each request
//!    asked of Redis (`INFO commandstats` counts the commands scripts run, too).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use serde_json::json;
use sesame::{Delta, Policy, Record, SessionConfig, SessionKey, TokenCodec};
use sesame_testkit::{RedisOptions, RedisServer};
use tokio::task::JoinSet;

use crate::content;
use crate::info::{parse_info, store_calls};
use crate::layout::{Client, Layout};
use crate::{BenchError, BenchResult};

/// Pause before reading `used_memory`: Redis's cron visits every client well within it.
const SETTLE: Duration = Duration::from_millis(1100);

/// What to measure.
#[derive(Debug, Clone)]
pub struct Config {
    /// Sessions per layout (users `0..sessions`).
    pub sessions: u32,
    /// Measured requests per request kind.
    pub requests: usize,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Timeouts and touch coalescing passed to every layout.
    pub policy: Policy,
}

impl Config {
    /// The published measurement: 1000 sessions, 50,000 requests of each kind, 32 in flight,
    /// the default session policy (30 min idle, 12 h absolute, touch after 1 min).
    pub fn standard() -> Config {
        Config { sessions: 1000, requests: 50_000, concurrency: 32, policy: default_policy() }
    }
}

/// A kind of request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// Load the session only (a read-only page).
    Read,
    /// Load the session, then save a delta setting `hits` to `hits + 1`.
    ReadWrite,
}

impl RequestKind {
    /// Label used in the report.
    pub fn label(self) -> &'static str {
        match self {
            RequestKind::Read => "read",
            RequestKind::ReadWrite => "read+write",
        }
    }
}

/// Memory taken by the sessions of one layout.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryFigures {
    /// Mean of `MEMORY USAGE <key> SAMPLES 0` over the session keys, bytes.
    pub memory_usage: f64,
    /// (`used_memory` after creating the sessions − before) / sessions, bytes, client buffers
    /// (`mem_clients_normal`) excluded. Includes the key's entries in the main and expires
    /// dictionaries.
    pub used_memory: f64,
    /// `OBJECT ENCODING` of the session keys → how many keys have it.
    pub encodings: BTreeMap<String, usize>,
}

/// Counters of one timed run of requests.
#[derive(Debug, Clone, PartialEq)]
pub struct RunFigures {
    /// Requests made.
    pub requests: u64,
    /// Calls per command counted by `INFO commandstats` since `CONFIG RESETSTAT` (lowercase
    /// names, subcommands as `name|sub`), the `INFO`, `CONFIG` and `SCRIPT` calls of the
    /// measurement left out. Redis counts the commands a script runs as well as the script,
    /// so one `evalsha` shows up together with the `get`, `set`... it ran.
    pub calls: BTreeMap<String, u64>,
    /// Change of `used_cpu_user + used_cpu_sys` of the Redis process, microseconds.
    pub cpu_usec: f64,
    /// Wall-clock duration of the client loop, seconds.
    pub wall_secs: f64,
}

impl RunFigures {
    fn per_request(&self, x: f64) -> f64 {
        x / self.requests.max(1) as f64
    }

    /// Calls of one command (lowercase name); 0 when Redis did not see it.
    pub fn calls_of(&self, name: &str) -> u64 {
        self.calls.get(name).copied().unwrap_or(0)
    }

    /// Script calls (`evalsha`).
    pub fn scripts(&self) -> u64 {
        self.calls_of("evalsha")
    }

    /// Every command counted, those run inside scripts included.
    pub fn commands(&self) -> u64 {
        self.calls.values().sum()
    }

    /// Redis process CPU per request, µs (from `INFO cpu`): networking, parsing, commands and
    /// scripts, all of it. The time figure of the report.
    pub fn cpu_usec_per_request(&self) -> f64 {
        self.per_request(self.cpu_usec)
    }

    /// Commands per request, those run inside scripts included.
    pub fn commands_per_request(&self) -> f64 {
        self.per_request(self.commands() as f64)
    }

    /// Script calls (`evalsha`) per request.
    pub fn scripts_per_request(&self) -> f64 {
        self.per_request(self.scripts() as f64)
    }

    /// Calls of one command per request.
    pub fn calls_per_request(&self, name: &str) -> f64 {
        self.per_request(self.calls_of(name) as f64)
    }

    /// Requests per second of the client loop (information only).
    pub fn requests_per_sec(&self) -> f64 {
        self.requests as f64 / self.wall_secs.max(1e-9)
    }
}

/// Everything measured for one layout in one round.
#[derive(Debug, Clone, PartialEq)]
pub struct LayoutFigures {
    /// The layout.
    pub layout: Layout,
    /// `redis_version` of the server.
    pub redis_version: String,
    /// `hash-max-listpack-entries` and `hash-max-listpack-value` of the server.
    pub listpack_limits: (u64, u64),
    /// Memory per session.
    pub memory: MemoryFigures,
    /// Read-only requests.
    pub read: RunFigures,
    /// Read then write requests.
    pub read_write: RunFigures,
}

/// One layout's sessions on its own fresh `redis-server` (killed on drop).
pub struct LayoutBench {
    config: Config,
    client: Client,
    admin: MultiplexedConnection,
    keys: Arc<Vec<SessionKey>>,
    // Declared last: dropped (killed) after the connections above.
    _server: RedisServer,
}

impl LayoutBench {
    /// Starts a private `redis-server` on a free loopback port and connects to it.
    pub async fn start(layout: Layout, config: Config) -> BenchResult<LayoutBench> {
        if config.sessions == 0 || config.concurrency == 0 {
            return Err(BenchError::new("sessions and concurrency must be positive"));
        }
        let server =
            tokio::task::spawn_blocking(|| RedisServer::start_with(RedisOptions::default()))
                .await
                .map_err(|e| BenchError::new(format!("starting redis-server: {e}")))??;
        let url = server.url();
        let admin = redis::Client::open(url.as_str())?.get_multiplexed_async_connection().await?;
        let client = Client::connect(layout, &url).await?;
        Ok(LayoutBench { config, client, admin, keys: Arc::new(Vec::new()), _server: server })
    }

    /// The layout's client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The key of user `n`'s session, once created.
    pub fn key(&self, n: u32) -> Option<&SessionKey> {
        self.keys.get(n as usize)
    }

    /// Creates the sessions of users `0..sessions` and measures their memory.
    ///
    /// The compact store's create also adds a logged-in session to its user's index; that
    /// index key is deleted right after each create, so every layout is measured on its
    /// session keys alone (an index would cost the same in every layout).
    pub async fn populate(&mut self) -> BenchResult<MemoryFigures> {
        // Redis allocates a latency histogram (tens of KB) for each command the first time it
        // runs: a throwaway session, created and deleted first, keeps them out of the delta.
        let throwaway = self.create(self.config.sessions).await?;
        redis::cmd("DEL")
            .arg(self.client.session_key(&throwaway))
            .query_async::<()>(&mut self.admin)
            .await?;
        let before = self.used_memory().await?;
        let mut keys = Vec::with_capacity(self.config.sessions as usize);
        for n in 0..self.config.sessions {
            keys.push(self.create(n).await?);
        }
        let after = self.used_memory().await?;
        self.keys = Arc::new(keys);

        let (mut usage, mut encodings) = (0u64, BTreeMap::new());
        for key in self.keys.iter() {
            let redis_key = self.client.session_key(key);
            let bytes: Option<u64> = redis::cmd("MEMORY")
                .arg("USAGE")
                .arg(&redis_key)
                .arg("SAMPLES")
                .arg(0)
                .query_async(&mut self.admin)
                .await?;
            usage += bytes.ok_or_else(|| BenchError::new("a session key is missing"))?;
            let encoding: String = redis::cmd("OBJECT")
                .arg("ENCODING")
                .arg(&redis_key)
                .query_async(&mut self.admin)
                .await?;
            *encodings.entry(encoding).or_insert(0) += 1;
        }
        let n = f64::from(self.config.sessions);
        Ok(MemoryFigures {
            memory_usage: usage as f64 / n,
            used_memory: (after - before) / n,
            encodings,
        })
    }

    /// Creates user `n`'s session and deletes the side keys the layout wrote with it.
    async fn create(&mut self, n: u32) -> BenchResult<SessionKey> {
        let now = sesame::now_ms();
        let format = self.client.layout().value_format();
        let record = content::record(n, now, &self.config.policy, format)?;
        let principal = content::principal(n);
        let key = TokenCodec::insecure_development().generate(principal.user().tag())?.key();
        self.client.create(&key, &record, now, &self.config.policy).await?;
        for side in self.client.side_keys(&record) {
            redis::cmd("DEL").arg(side).query_async::<()>(&mut self.admin).await?;
        }
        Ok(key)
    }

    /// Loads user `n`'s session through the layout's client.
    pub async fn load(&self, n: u32) -> BenchResult<Option<Record>> {
        let key = self.key(n).ok_or_else(|| BenchError::new(format!("no session for user {n}")))?;
        Ok(self
            .client
            .load(key, sesame::now_ms(), &self.config.policy)
            .await?
            .map(|l| std::sync::Arc::unwrap_or_clone(l.record)))
    }

    /// Runs `requests` requests of `kind`, round robin over the sessions, with
    /// `concurrency` in flight, and reads Redis's counters around them.
    pub async fn run(&mut self, kind: RequestKind, requests: usize) -> BenchResult<RunFigures> {
        if self.keys.is_empty() {
            return Err(BenchError::new("no sessions: populate first"));
        }
        redis::cmd("CONFIG").arg("RESETSTAT").query_async::<()>(&mut self.admin).await?;
        let cpu_before = self.cpu_secs().await?;
        let started = Instant::now();
        let next = Arc::new(AtomicUsize::new(0));
        let mut workers = JoinSet::new();
        for _ in 0..self.config.concurrency {
            let (client, keys, next) = (self.client.clone(), self.keys.clone(), next.clone());
            let policy = self.config.policy.clone();
            workers.spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= requests {
                        return Ok::<(), BenchError>(());
                    }
                    request(&client, &keys[i % keys.len()], kind, &policy).await?;
                }
            });
        }
        while let Some(done) = workers.join_next().await {
            done.map_err(|e| BenchError::new(format!("request task failed: {e}")))??;
        }
        let wall_secs = started.elapsed().as_secs_f64();
        let cpu_after = self.cpu_secs().await?;
        let stats: String =
            redis::cmd("INFO").arg("commandstats").query_async(&mut self.admin).await?;
        Ok(RunFigures {
            requests: requests as u64,
            calls: store_calls(&stats),
            cpu_usec: (cpu_after - cpu_before) * 1e6,
            wall_secs,
        })
    }

    /// The whole measurement: populate, then a warm-up pass and a timed run of each kind.
    pub async fn measure(&mut self) -> BenchResult<LayoutFigures> {
        let memory = self.populate().await?;
        let warm_up = self.config.sessions as usize;
        let requests = self.config.requests;
        self.run(RequestKind::Read, warm_up).await?;
        let read = self.run(RequestKind::Read, requests).await?;
        self.run(RequestKind::ReadWrite, warm_up).await?;
        let read_write = self.run(RequestKind::ReadWrite, requests).await?;
        let server = self.info("server").await?;
        let version = server.get("redis_version").cloned().unwrap_or_default();
        let listpack_limits = (
            self.config_number("hash-max-listpack-entries").await?,
            self.config_number("hash-max-listpack-value").await?,
        );
        Ok(LayoutFigures {
            layout: self.client.layout(),
            redis_version: version,
            listpack_limits,
            memory,
            read,
            read_write,
        })
    }

    async fn info(&mut self, section: &str) -> BenchResult<BTreeMap<String, String>> {
        let text: String = redis::cmd("INFO").arg(section).query_async(&mut self.admin).await?;
        Ok(parse_info(&text))
    }

    fn number(info: &BTreeMap<String, String>, field: &str) -> BenchResult<f64> {
        info.get(field)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| BenchError::new(format!("INFO has no number {field}")))
    }

    /// `used_memory` minus `mem_clients_normal`: client query and reply buffers grow and
    /// shrink with traffic (by tens of KB), which is noise here. Read after a pause, because
    /// Redis refreshes its per-client accounting in its cron, not after every command.
    async fn used_memory(&mut self) -> BenchResult<f64> {
        tokio::time::sleep(SETTLE).await;
        let memory = self.info("memory").await?;
        Ok(Self::number(&memory, "used_memory")? - Self::number(&memory, "mem_clients_normal")?)
    }

    async fn cpu_secs(&mut self) -> BenchResult<f64> {
        let cpu = self.info("cpu").await?;
        Ok(Self::number(&cpu, "used_cpu_user")? + Self::number(&cpu, "used_cpu_sys")?)
    }

    async fn config_number(&mut self, name: &str) -> BenchResult<u64> {
        let reply: Vec<String> =
            redis::cmd("CONFIG").arg("GET").arg(name).query_async(&mut self.admin).await?;
        reply
            .get(1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| BenchError::new(format!("CONFIG GET {name} answered {reply:?}")))
    }
}

/// Starts a fresh server, measures `layout` on it, and stops the server.
pub async fn measure_layout(layout: Layout, config: &Config) -> BenchResult<LayoutFigures> {
    LayoutBench::start(layout, config.clone()).await?.measure().await
}

/// One request of `kind` on one session.
async fn request(
    client: &Client,
    key: &SessionKey,
    kind: RequestKind,
    policy: &Policy,
) -> BenchResult<()> {
    let loaded = client
        .load(key, sesame::now_ms(), policy)
        .await?
        .ok_or_else(|| BenchError::new("a session vanished"))?;
    if kind == RequestKind::ReadWrite {
        let hits = content::hits(&loaded.record)?;
        let format = client.layout().value_format();
        let delta = Delta {
            set: vec![("hits".to_string(), content::encode(&json!(hits + 1), format)?)],
            ..Delta::default()
        };
        client
            .save(key, &loaded, &delta, sesame::now_ms(), policy)
            .await?
            .ok_or_else(|| BenchError::new("a session vanished before its save"))?;
    }
    Ok(())
}

/// The default session policy.
#[allow(clippy::expect_used)] // the defaults always build
fn default_policy() -> Policy {
    SessionConfig::builder()
        .insecure_development_secret()
        .build()
        .expect("the default configuration builds")
        .policy()
        .clone()
}
