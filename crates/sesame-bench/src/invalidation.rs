//! The near cache's invalidation latency: how long after instance A starts a revocation
//! instance B rejects the token, when B had the session in its near cache.
//!
//! Two stores with a near cache ("A" and "B", each its own connections and listeners, as two
//! app instances have) on one private `redis-server` or Cluster. Each trial: A creates a
//! logged-in session, B reads it twice (the second read is a cache hit), a thread polls B
//! every 20 µs, and A revokes the session. Measured from the start of A's `revoke_session`
//! until B first reports no session, and from A's acknowledgement (0 when B rejected before
//! A's reply arrived). Reported as p50/p99/max over the trials.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sesame::{SessionConfig, SessionManager, TokenAction};
use sesame_redis::{NearCacheConfig, RedisStore};
use sesame_testkit::{Cluster, RedisServer};

use crate::BenchError;

/// Where the two instances keep their sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// One private `redis-server`.
    Standalone,
    /// A private 3-master/3-replica cluster.
    Cluster,
}

impl std::fmt::Display for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Topology::Standalone => "standalone",
            Topology::Cluster => "cluster",
        })
    }
}

/// The figures of one run, in microseconds.
#[derive(Debug, Clone)]
pub struct Latency {
    /// Trials run.
    pub trials: usize,
    /// From the start of A's revocation: p50, p99, max.
    pub from_start: [u64; 3],
    /// From A's acknowledgement (0 when B was first): p50, p99, max.
    pub from_ack: [u64; 3],
    /// Trials in which B rejected the token before A's revocation returned.
    pub before_ack: usize,
    /// B's reads answered by its cache, over all trials.
    pub hits: u64,
}

fn err(what: &str) -> impl Fn(sesame::Error) -> BenchError + '_ {
    move |e| BenchError(format!("{what}: {e}"))
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn store(url: &str) -> Result<RedisStore, BenchError> {
    let s = RedisStore::builder(url)
        .near_cache(NearCacheConfig::default())
        .connect()
        .await
        .map_err(|e| BenchError(format!("connect: {e}")))?;
    match s.near_cache_stats() {
        Some(st) if st.live => Ok(s),
        _ => Err(BenchError("the near cache did not start tracking".into())),
    }
}

/// Runs `trials` trials against `url`.
pub async fn measure(url: &str, trials: usize) -> Result<Latency, BenchError> {
    let (a, b) = (store(url).await?, store(url).await?);
    let config =
        SessionConfig::builder().insecure_development_secret().build().map_err(err("config"))?;
    let ma = SessionManager::new(Arc::new(a), config.clone());
    let mb = SessionManager::new(Arc::new(b.clone()), config);
    let (mut from_start, mut from_ack, mut before_ack) = (Vec::new(), Vec::new(), 0);
    let hits_before = b.near_cache_stats().map_or(0, |s| s.hits);
    for i in 0..trials {
        let s = ma.open(None);
        s.login(&format!("user-{}", i % 100)).await.map_err(err("login"))?;
        let token = match s.commit().await.map_err(err("commit"))? {
            TokenAction::Set { token, .. } => token.expose(),
            other => return Err(BenchError(format!("login gave {other:?}"))),
        };
        for _ in 0..2 {
            if !mb.open(Some(&token)).exists().await.map_err(err("read on B"))? {
                return Err(BenchError("B does not see the new session".into()));
            }
        }
        let id = ma.open(Some(&token)).id().await.map_err(err("id"))?.unwrap_or_default();
        let principal = format!("user-{}", i % 100);
        let go = Arc::new(AtomicBool::new(false));
        // The poller is an OS thread that checks every 20 µs instead of a task that spins:
        // a spinning task would take a core from Redis and the listeners on a small machine.
        let poller = {
            let (mb, token, go) = (mb.clone(), token.clone(), go.clone());
            let rt = tokio::runtime::Handle::current();
            std::thread::spawn(move || {
                while !go.load(Ordering::Acquire) {
                    std::thread::sleep(Duration::from_micros(20));
                }
                let deadline = Instant::now() + Duration::from_secs(5);
                while Instant::now() < deadline {
                    match rt.block_on(mb.open(Some(&token)).exists()) {
                        Ok(false) => return Some(Instant::now()),
                        Ok(true) => std::thread::sleep(Duration::from_micros(20)),
                        Err(_) => return None,
                    }
                }
                None
            })
        };
        let start = Instant::now();
        go.store(true, Ordering::Release);
        let revoked = ma.revoke_session(&principal, &id).await.map_err(err("revoke"))?;
        let acked = Instant::now();
        if !revoked {
            return Err(BenchError("the revocation found no session".into()));
        }
        let seen = tokio::task::spawn_blocking(move || poller.join())
            .await
            .map_err(|e| BenchError(format!("poller: {e}")))?
            .map_err(|_| BenchError("the poller panicked".into()))?
            .ok_or_else(|| {
                BenchError("B still served the session 5 s after its revocation".into())
            })?;
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let seen_us = micros(seen.saturating_duration_since(start));
        if seen < acked {
            before_ack += 1;
        }
        from_start.push(seen_us);
        from_ack.push(micros(seen.saturating_duration_since(acked)));
    }
    from_start.sort_unstable();
    from_ack.sort_unstable();
    let three = |v: &[u64]| [pct(v, 0.5), pct(v, 0.99), v.last().copied().unwrap_or(0)];
    Ok(Latency {
        trials,
        from_start: three(&from_start),
        from_ack: three(&from_ack),
        before_ack,
        hits: b.near_cache_stats().map_or(0, |s| s.hits).saturating_sub(hits_before),
    })
}

/// Runs the measurement on a fresh private server of `topology`.
pub async fn run(topology: Topology, trials: usize) -> Result<Latency, BenchError> {
    match topology {
        Topology::Standalone => {
            let server = tokio::task::spawn_blocking(RedisServer::start)
                .await
                .map_err(|e| BenchError(e.to_string()))?;
            measure(&server.url(), trials).await
        }
        Topology::Cluster => {
            let cluster = tokio::task::spawn_blocking(Cluster::start)
                .await
                .map_err(|e| BenchError(e.to_string()))?
                .map_err(|e| BenchError(e.to_string()))?;
            measure(&cluster.url(), trials).await
        }
    }
}

/// The Markdown table's header.
pub const HEADER: &str = "| topology | trials | from revoke start p50 / p99 / max µs | after A's ack p50 / p99 / max µs | B first | B cache hits |\n|---|---|---|---|---|---|";

/// One table row.
pub fn row(topology: Topology, l: &Latency) -> String {
    let f = |v: &[u64; 3]| format!("{} / {} / {}", v[0], v[1], v[2]);
    format!(
        "| {topology} | {} | {} | {} | {} of {} | {} |",
        l.trials,
        f(&l.from_start),
        f(&l.from_ack),
        l.before_ack,
        l.trials,
        l.hits
    )
}
