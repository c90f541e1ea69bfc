//! The servers under test with their sessions, the interleaved wrk rounds and the
//! correctness checks made along the way.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sesame::{MemoryStore, SessionManager};
use sesame_bench::{content, BenchError, BenchResult};
use sesame_redis::RedisStore;
use sesame_testkit::RedisServer;

use crate::redis_figures;
use crate::table::Run;
use crate::wrk::{self, WrkResult};
use crate::{apps, setup};

/// Name of the server without sessions.
pub(crate) const CEILING: &str = "ceiling";
/// Name of the server on the Redis store.
const SESAME: &str = "sesame";
/// Name of the server on the in-memory store.
const SESAME_MEMORY: &str = "sesame-memory";

/// One running server under test.
#[derive(Debug)]
pub(crate) struct Target {
    /// Name in the table.
    pub(crate) name: &'static str,
    /// Where it listens.
    addr: SocketAddr,
    /// Tokens of its sessions, user `n` at index `n` (the ceiling reuses sesame's).
    tokens: Vec<String>,
    /// The file wrk reads the tokens from.
    tokens_path: PathBuf,
    /// Its session manager, for the counters; `None` for the ceiling.
    manager: Option<SessionManager>,
    /// Whether its sessions live in the Redis server (whose commands are counted).
    redis_backed: bool,
}

/// Starts the three servers on the current runtime and logs in `sessions` users on each
/// session server; tokens files go to `dir`.
pub(crate) async fn start_targets(
    redis: &RedisServer,
    dir: &Path,
    sessions: u32,
) -> BenchResult<Vec<Target>> {
    let client = setup::client()?;
    let store = RedisStore::connect(&redis.url()).await?;
    let mut session_targets = Vec::new();
    for (name, store, redis_backed) in [
        (SESAME, Arc::new(store) as Arc<dyn sesame::Store>, true),
        (SESAME_MEMORY, Arc::new(MemoryStore::new()) as Arc<dyn sesame::Store>, false),
    ] {
        let (router, manager) = apps::session_router(store)?;
        let addr = apps::serve(router).await?;
        eprintln!("{name}: logging in {sessions} users on http://{addr}");
        let tokens = setup::create_sessions(&client, addr, sessions).await?;
        let tokens_path = setup::write_tokens(dir, &format!("{name}-tokens.txt"), &tokens)?;
        session_targets.push(Target {
            name,
            addr,
            tokens,
            tokens_path,
            manager: Some(manager),
            redis_backed,
        });
    }
    let first =
        session_targets.first().ok_or_else(|| BenchError::new("no session server was started"))?;
    // The ceiling gets the same cookies, so its requests have the same size.
    let ceiling = Target {
        name: CEILING,
        addr: apps::serve(apps::ceiling_router()).await?,
        tokens: first.tokens.clone(),
        tokens_path: first.tokens_path.clone(),
        manager: None,
        redis_backed: false,
    };
    let mut targets = vec![ceiling];
    targets.extend(session_targets);
    Ok(targets)
}

/// How to measure.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan<'a> {
    /// The wrk script.
    pub(crate) script: &'a Path,
    /// The Redis server behind the `sesame` target.
    pub(crate) redis: &'a RedisServer,
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
                let cpu_before =
                    if t.redis_backed { Some(redis_figures::start(plan.redis)?) } else { None };
                let url = format!("http://{}{endpoint}", t.addr);
                let result = wrk::run(plan.script, &t.tokens_path, &url, plan.seconds).await?;
                let redis = match cpu_before {
                    Some(cpu) => Some(redis_figures::usage_since(plan.redis, cpu)?),
                    None => None,
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
                if let Some(u) = &redis {
                    // At most one request per wrk connection is still in flight at the end.
                    let slack = u64::from(wrk::CONNECTIONS);
                    redis_figures::check_protocol(endpoint, result.requests, slack, u).map_err(
                        |e| BenchError::new(format!("{} round {}: {e}", t.name, round + 1)),
                    )?;
                }
                if endpoint == "/me" && t.manager.is_some() {
                    // A different session each round, far from the first ones.
                    let n = (round * 337 + 500) % t.tokens.len().max(1);
                    let user = content::principal(n as u32).name().to_string();
                    setup::check_session(&client, t.addr, &t.tokens[n], &user).await?;
                }
                runs.push(Run { server: t.name, endpoint, result, redis });
            }
        }
    }
    Ok(runs)
}

/// Checks every session manager's counters after the load: exactly the `sessions` logins
/// created sessions, and no token was rejected or unknown.
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
