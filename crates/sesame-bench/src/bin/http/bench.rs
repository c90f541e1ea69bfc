//! The servers under test with their sessions, the interleaved wrk rounds and the
//! correctness checks made along the way.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sesame::{MemoryStore, SessionManager};
use sesame_bench::{content, BenchError, BenchResult};
use sesame_redis::{NearCacheConfig, RedisStore};
use sesame_testkit::{Flavor, RedisOptions, RedisServer};

use crate::redis_figures;
use crate::table::Run;
use crate::wrk::{self, WrkResult};
use crate::{actix_app, apps, cpu, peers, setup, KEYS_MEASURED};

/// Name of the server without sessions.
pub(crate) const CEILING: &str = "ceiling";
/// Name of the server without sessions that does the session app's handler work.
pub(crate) const HANDLER_ONLY: &str = "handler-only";
/// Name of the ceiling on actix-web (its routes and fixed answers, no sessions).
pub(crate) const CEILING_ACTIX: &str = "ceiling-actix";
/// The servers on actix-web, measured also against [`CEILING_ACTIX`].
pub(crate) const ON_ACTIX: [&str; 3] = [CEILING_ACTIX, ACTIX, SESAME_ACTIX];
/// The servers without sessions.
const WITHOUT_SESSIONS: [&str; 3] = [CEILING, HANDLER_ONLY, CEILING_ACTIX];
/// Name of the sesame server on Redis.
const SESAME: &str = "sesame";
/// Name of the sesame server on Redis with the near cache.
const SESAME_CACHE: &str = "sesame-cache";
/// Name of the sesame server on actix-web (sesame-actix), on Redis.
const SESAME_ACTIX: &str = "sesame-actix";
/// Name of the sesame server on axum served as the actix-web servers are: one current-thread
/// runtime per core, the store connected on a thread of its own.
const SESAME_PER_THREAD: &str = "sesame-per-thread";
/// Name of the sesame server on the in-memory store.
const SESAME_MEMORY: &str = "sesame-memory";
/// Name of the tower-sessions server.
const TOWER: &str = "tower-sessions";
/// Name of the actix-session server.
const ACTIX: &str = "actix-session";

/// What the Redis server of a session server held after its logins.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Memory {
    /// Sessions created.
    pub(crate) sessions: u32,
    /// `used_memory` after the logins minus before, per session (indexes included).
    pub(crate) used_per_session: f64,
    /// Mean `MEMORY USAGE` of a session key.
    pub(crate) session_key: f64,
    /// Mean `MEMORY USAGE` of a per-user index key (sesame only).
    pub(crate) index_key: Option<f64>,
}

/// One running server under test.
#[derive(Debug)]
pub(crate) struct Target {
    /// Name in the table.
    pub(crate) name: &'static str,
    /// Where it listens.
    addr: SocketAddr,
    /// Tokens of the sessions wrk uses, user `n` at index `n` (the ceiling reuses sesame's).
    tokens: Vec<String>,
    /// The file wrk reads the tokens from.
    tokens_path: PathBuf,
    /// Its session manager, for the counters; sesame's servers only.
    manager: Option<SessionManager>,
    /// Its own Redis server, for the servers that keep sessions in Redis.
    pub(crate) redis: Option<RedisServer>,
    /// Whether every run is checked against sesame's store protocol.
    sesame_protocol: bool,
    /// Bytes per session, for the servers that keep sessions in Redis.
    pub(crate) memory: Option<Memory>,
}

/// How many sessions to make: `total` logins per session server, of which the first `used`
/// are the ones wrk rotates over.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sessions {
    /// Logins per session server (the bytes-per-session figure is over all of them).
    pub(crate) total: u32,
    /// Sessions the load uses.
    pub(crate) used: u32,
}

/// A session server before its logins.
struct Started {
    name: &'static str,
    addr: SocketAddr,
    manager: Option<SessionManager>,
    redis: Option<RedisServer>,
}

/// The session servers, in table order.
pub(crate) const SESSION_SERVERS: [&str; 7] =
    [SESAME, SESAME_CACHE, SESAME_MEMORY, TOWER, ACTIX, SESAME_ACTIX, SESAME_PER_THREAD];
/// The servers that run sesame on Redis.
const SESAME_ON_REDIS: [&str; 4] = [SESAME, SESAME_CACHE, SESAME_ACTIX, SESAME_PER_THREAD];
/// Those whose every run is checked against sesame's store protocol (not the near cache's,
/// whose commands depend on what it holds).
const PROTOCOL_CHECKED: [&str; 3] = [SESAME, SESAME_ACTIX, SESAME_PER_THREAD];

/// The server program of every private Redis (set once, before any server starts).
static FLAVOR: std::sync::OnceLock<Flavor> = std::sync::OnceLock::new();

/// Runs every Redis-backed server on `flavor` instead of Redis.
pub(crate) fn use_flavor(flavor: Flavor) {
    let _ = FLAVOR.set(flavor);
}

/// The server program of every private Redis.
pub(crate) fn flavor() -> Flavor {
    FLAVOR.get().copied().unwrap_or_default()
}

/// Starts the session server `name` on the current runtime (the actix one on its own thread),
/// on its own Redis server when it keeps sessions in Redis.
async fn start_server(name: &str) -> BenchResult<Started> {
    let redis = || RedisServer::start_with(RedisOptions { flavor: flavor(), ..Default::default() });
    Ok(match name {
        SESAME => {
            let redis = redis()?;
            let store = RedisStore::connect(&redis.url()).await?;
            let (router, manager) = apps::session_router(Arc::new(store))?;
            let addr = apps::serve(router).await?;
            Started { name: SESAME, addr, manager: Some(manager), redis: Some(redis) }
        }
        SESAME_CACHE => {
            let redis = redis()?;
            let store = RedisStore::builder(redis.url())
                .near_cache(NearCacheConfig::default())
                .connect()
                .await?;
            let (router, manager) = apps::session_router(Arc::new(store))?;
            let addr = apps::serve(router).await?;
            Started { name: SESAME_CACHE, addr, manager: Some(manager), redis: Some(redis) }
        }
        SESAME_MEMORY => {
            let (router, manager) = apps::session_router(Arc::new(MemoryStore::new()))?;
            let addr = apps::serve(router).await?;
            Started { name: SESAME_MEMORY, addr, manager: Some(manager), redis: None }
        }
        TOWER => {
            let redis = redis()?;
            let addr = apps::serve(peers::tower_router(&redis.url()).await?).await?;
            Started { name: TOWER, addr, manager: None, redis: Some(redis) }
        }
        ACTIX => {
            let redis = redis()?;
            let addr = peers::start_actix(&redis.url())?;
            Started { name: ACTIX, addr, manager: None, redis: Some(redis) }
        }
        SESAME_ACTIX => {
            let redis = redis()?;
            let (addr, manager) = actix_app::start_sesame(&redis.url())?;
            Started { name: SESAME_ACTIX, addr, manager: Some(manager), redis: Some(redis) }
        }
        SESAME_PER_THREAD => {
            let redis = redis()?;
            let url = redis.url();
            let connect = async move { RedisStore::connect(&url).await };
            let store = apps::on_own_thread(SESAME_PER_THREAD, connect)?;
            let (router, manager) = apps::session_router(Arc::new(store))?;
            let addr = apps::serve_per_thread(SESAME_PER_THREAD, router, actix_app::workers())?;
            Started { name: SESAME_PER_THREAD, addr, manager: Some(manager), redis: Some(redis) }
        }
        other => return Err(BenchError::new(format!("no session server is called {other}"))),
    })
}

/// Starts the session servers `names` (each session server on its own Redis server) and the
/// ceiling, and logs in `sessions.total` users on each session server; token files go to
/// `dir`. The ceiling comes first and is sent the first session server's cookies.
pub(crate) async fn start_targets(
    dir: &Path,
    names: &[&str],
    sessions: Sessions,
) -> BenchResult<Vec<Target>> {
    let client = setup::client()?;
    let mut session_targets = Vec::new();
    for name in names {
        let s = start_server(name).await?;
        let before = match &s.redis {
            Some(r) => Some(redis_figures::used_memory(r)?),
            None => None,
        };
        eprintln!("{}: logging in {} users on http://{}", s.name, sessions.total, s.addr);
        let mut tokens = setup::create_sessions(&client, s.addr, sessions.total).await?;
        let memory = match (&s.redis, before) {
            (Some(r), Some(before)) => Some(memory_of(r, s.name, sessions.total, before)?),
            _ => None,
        };
        tokens.truncate(sessions.used as usize);
        let tokens_path = setup::write_tokens(dir, &format!("{}-tokens.txt", s.name), &tokens)?;
        session_targets.push(Target {
            name: s.name,
            addr: s.addr,
            tokens,
            tokens_path,
            sesame_protocol: PROTOCOL_CHECKED.contains(&s.name),
            manager: s.manager,
            redis: s.redis,
            memory,
        });
    }
    let first =
        session_targets.first().ok_or_else(|| BenchError::new("no session server was started"))?;
    // The servers without sessions get the same cookies, so their requests have the same size.
    let without_sessions = |name, addr| Target {
        name,
        addr,
        tokens: first.tokens.clone(),
        tokens_path: first.tokens_path.clone(),
        manager: None,
        redis: None,
        sesame_protocol: false,
        memory: None,
    };
    let mut targets = vec![
        without_sessions(CEILING, apps::serve(apps::ceiling_router()).await?),
        without_sessions(HANDLER_ONLY, apps::serve(apps::handler_only_router()?).await?),
        without_sessions(CEILING_ACTIX, actix_app::start_ceiling(CEILING_ACTIX)?),
    ];
    targets.extend(session_targets);
    Ok(targets)
}

impl Target {
    /// Where it listens.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The file of its tokens, one per line.
    pub(crate) fn tokens_path(&self) -> &Path {
        &self.tokens_path
    }
}

/// The bytes-per-session figures of `server`'s Redis after `sessions` logins, given its
/// `used_memory` before them.
fn memory_of(redis: &RedisServer, server: &str, sessions: u32, before: u64) -> BenchResult<Memory> {
    let after = redis_figures::used_memory(redis)?;
    let (session_pattern, index_key) = if SESAME_ON_REDIS.contains(&server) {
        let (index, _) =
            redis_figures::mean_key_bytes(redis, redis_figures::INDEX_PATTERN, KEYS_MEASURED)?;
        (redis_figures::SESSION_PATTERN, Some(index))
    } else {
        // A peer's Redis holds its session keys and nothing else.
        ("*", None)
    };
    let (session_key, _) = redis_figures::mean_key_bytes(redis, session_pattern, KEYS_MEASURED)?;
    Ok(Memory {
        sessions,
        used_per_session: after.saturating_sub(before) as f64 / f64::from(sessions.max(1)),
        session_key,
        index_key,
    })
}

/// How to measure.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan<'a> {
    /// The wrk script.
    pub(crate) script: &'a Path,
    /// Interleaved rounds.
    pub(crate) rounds: usize,
    /// Length of each measured run, seconds.
    pub(crate) seconds: u64,
    /// Length of the warm-up run per server, seconds.
    pub(crate) warmup_seconds: u64,
    /// Endpoints, in order.
    pub(crate) endpoints: &'a [&'static str],
}

/// Fails when a run saw any error response or socket error.
fn check_run(target: &Target, endpoint: &str, what: &str, r: &WrkResult) -> BenchResult<()> {
    if r.non_2xx > 0 || r.socket_errors > 0 {
        return Err(BenchError::new(format!(
            "{} GET {endpoint} ({what}): {} non-2xx responses and {} socket errors among {} \
             requests; a benchmark of errors is no benchmark",
            target.name, r.non_2xx, r.socket_errors, r.requests
        )));
    }
    if r.requests == 0 {
        return Err(BenchError::new(format!(
            "{} GET {endpoint} ({what}): no request completed",
            target.name
        )));
    }
    Ok(())
}

/// The warm-up, then `plan.rounds` rounds of every endpoint on every target (endpoints
/// outer, targets inner). After each `/me` run a session server must still answer a read;
/// after each run of the Redis-backed server, Redis must have seen the store's protocol.
///
/// The Redis statistics are read with `redis-cli` between runs, on this (driving) thread;
/// the servers run on the runtime's worker threads.
pub(crate) async fn measure(targets: &[Target], plan: &Plan<'_>) -> BenchResult<Vec<Run>> {
    let client = setup::client()?;
    for t in targets {
        let url = format!("http://{}/me_ro", t.addr);
        let r = wrk::run(plan.script, &t.tokens_path, &url, plan.warmup_seconds).await?;
        check_run(t, "/me_ro", "warm-up", &r)?;
    }
    let mut runs = Vec::new();
    for round in 0..plan.rounds {
        for &endpoint in plan.endpoints {
            for t in targets {
                let cpu_before = match &t.redis {
                    Some(r) => Some(redis_figures::start(r)?),
                    None => None,
                };
                let app_before = cpu::process_seconds()?;
                let url = format!("http://{}{endpoint}", t.addr);
                let result = wrk::run(plan.script, &t.tokens_path, &url, plan.seconds).await?;
                let app_cpu_s = (cpu::process_seconds()? - app_before).max(0.0);
                let redis = match (&t.redis, cpu_before) {
                    (Some(r), Some(cpu)) => Some(redis_figures::usage_since(r, cpu)?),
                    _ => None,
                };
                eprintln!(
                    "round {}/{}: {:<13} GET {endpoint:<6} {:>8.0} req/s, p99 {:.2} ms",
                    round + 1,
                    plan.rounds,
                    t.name,
                    result.req_per_s(),
                    result.p99_us as f64 / 1000.0
                );
                check_run(t, endpoint, &format!("round {}", round + 1), &result)?;
                if let (true, Some(u)) = (t.sesame_protocol, &redis) {
                    // At most one request per wrk connection is still in flight at the end.
                    let slack = u64::from(wrk::CONNECTIONS);
                    redis_figures::check_protocol(endpoint, result.requests, slack, u).map_err(
                        |e| BenchError::new(format!("{} round {}: {e}", t.name, round + 1)),
                    )?;
                }
                if endpoint == "/me" && !WITHOUT_SESSIONS.contains(&t.name) {
                    // A different session each round, far from the first ones.
                    let n = (round * 337 + 500) % t.tokens.len().max(1);
                    let user = content::principal(n as u32).name().to_string();
                    setup::check_session(&client, t.addr, &t.tokens[n], &user).await?;
                }
                runs.push(Run { server: t.name, endpoint, result, redis, app_cpu_s });
            }
        }
    }
    Ok(runs)
}

/// Checks every sesame session manager's counters after the load: exactly the `sessions`
/// logins created sessions, and no token was rejected or unknown.
pub(crate) fn check_counters(targets: &[Target], sessions: u32) -> BenchResult<()> {
    for t in targets {
        let Some(manager) = &t.manager else { continue };
        let s = manager.stats();
        if s.created != u64::from(sessions) || s.invalid_tokens != 0 || s.unknown_tokens != 0 {
            return Err(BenchError::new(format!(
                "{}: after the load the counters are {s:?}; expected {sessions} created, no \
                 invalid or unknown token",
                t.name
            )));
        }
    }
    Ok(())
}
