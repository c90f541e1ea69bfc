//! The failover scenario: real HTTP clients against the demo app on a replicated Redis, whose
//! master is killed with SIGKILL in the middle of the load.
//!
//! Each client is one user. It logs in, then loops over `GET /api/me` (which increments the
//! session's `visits` counter: a read and an update per request) and logs in again every
//! [`RELOGIN_EVERY`] requests (a rotation: the new session is written and the old token left
//! pointing to it, in one script). Every response is checked:
//!
//! - `200` must name the client's own user (else: a *wrong session*), and show `visits` at
//!   least one above the last acknowledged value (else: *updates lost*);
//! - `401` means the session is gone (a *session lost*); the client logs in again;
//! - `503` is the expected answer while no master is reachable (*failed*);
//! - anything else is an *other error*.
//!
//! Two app instances (each with its own store client) sit behind the demo's round-robin
//! balancer. After a warm-up the master is killed; the load goes on until the topology has
//! failed over and [`QUIET`] has passed without a failure, or [`MAX_RUN`] is reached.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sesame::{SessionConfig, SessionManager, Store};
use sesame_axum::CookieConfig;
use sesame_redis::RedisStore;
use sesame_testkit::{Cluster, SentinelGroup, SentinelOptions};

use crate::BenchError;

/// Logins happen again after this many `/api/me` requests of one client.
pub const RELOGIN_EVERY: u64 = 25;
/// The load runs this long before the kill.
pub const WARMUP: Duration = Duration::from_secs(2);
/// The run ends once the failover is over and this long passed without a failed request.
pub const QUIET: Duration = Duration::from_secs(2);
/// The run ends after this long in any case (and reports "not recovered").
pub const MAX_RUN: Duration = Duration::from_secs(45);
const COOKIE: &str = "sesame_failover";

/// Which replicated topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// One master, one replica, three sentinels.
    Sentinel,
    /// Three masters, three replicas.
    Cluster,
}

impl std::fmt::Display for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Topology::Sentinel => "Sentinel",
            Topology::Cluster => "Cluster",
        })
    }
}

/// One run's settings.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The topology.
    pub topology: Topology,
    /// Acknowledge writes only after `WAIT <every replica> <timeout>` (see
    /// `RedisStoreBuilder::durability`): 2 for Sentinel, 1 for Cluster. Waiting for fewer
    /// replicas than a failover may choose from does not protect a write: the promoted
    /// replica may be one that has not received it.
    pub durability: bool,
    /// Concurrent clients (users).
    pub clients: usize,
}

/// What one run saw.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Requests answered 200.
    pub ok: u64,
    /// Requests answered 503 (store unavailable).
    pub failed: u64,
    /// Requests answered with another status, or not answered.
    pub other_errors: u64,
    /// 200 answers naming another user than the client's: must be 0.
    pub wrong_sessions: u64,
    /// Logins answered 200.
    pub logins_acked: u64,
    /// Sessions of acknowledged logins that were later gone (401).
    pub sessions_lost: u64,
    /// Acknowledged increments of `visits` that were later missing.
    pub updates_lost: u64,
    /// From the kill to the last failed request (the window in which requests failed).
    pub window: Option<Duration>,
    /// From the kill to the moment the topology reported the new master.
    pub failover_took: Option<Duration>,
    /// From the kill to the moment the killed node was back as a replica.
    pub rejoined_after: Option<Duration>,
    /// A few of the other errors, as `status: body`.
    pub other_samples: Vec<String>,
    /// Whether service came back (a quiet period with no failure after the failover).
    pub recovered: bool,
}

#[derive(Default)]
struct Counters {
    ok: AtomicU64,
    failed: AtomicU64,
    other: AtomicU64,
    wrong: AtomicU64,
    logins: AtomicU64,
    sessions_lost: AtomicU64,
    updates_lost: AtomicU64,
}

struct Shared {
    counters: Counters,
    stop: AtomicBool,
    /// Instants of failed (503 / unanswered) requests.
    failures: Mutex<Vec<Instant>>,
    other_samples: Mutex<Vec<String>>,
}

impl Shared {
    async fn other(&self, r: Result<reqwest::Response, reqwest::Error>) {
        self.counters.other.fetch_add(1, Ordering::Relaxed);
        let sample = match r {
            Ok(r) => format!("{}: {}", r.status(), r.text().await.unwrap_or_default()),
            Err(e) => format!("no answer: {e}"),
        };
        if let Ok(mut s) = self.other_samples.lock() {
            if s.len() < 5 {
                s.push(sample);
            }
        }
        self.failure();
    }

    fn failure(&self) {
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut f) = self.failures.lock() {
            f.push(Instant::now());
        }
    }
}

/// The replicated Redis under test; dropped at the end of the run (all processes killed).
enum Servers {
    Sentinel(SentinelGroup),
    Cluster(Cluster),
}

impl Servers {
    fn start(t: Topology) -> Result<Servers, BenchError> {
        Ok(match t {
            Topology::Sentinel => Servers::Sentinel(
                SentinelGroup::start_with(SentinelOptions {
                    replicas: 2,
                    ..SentinelOptions::default()
                })
                .map_err(err)?,
            ),
            Topology::Cluster => Servers::Cluster(Cluster::start().map_err(err)?),
        })
    }

    fn url(&self) -> String {
        match self {
            Servers::Sentinel(g) => g.url(),
            Servers::Cluster(c) => c.url(),
        }
    }

    /// Kills the master serving `key` (the master, for Sentinel), waits for the failover, then
    /// restarts the killed node (it rejoins as a replica, as a supervised server would), in a
    /// blocking thread. Returns how long the failover and the rejoin took from the kill.
    async fn kill_master_and_wait(
        self,
        key: String,
    ) -> Result<(Servers, Duration, Duration), BenchError> {
        tokio::task::spawn_blocking(move || {
            let mut s = self;
            let started = Instant::now();
            let failover = match &mut s {
                Servers::Sentinel(g) => {
                    let old = g.current_master_port().map_err(err)?;
                    let victim = g.kill_master().map_err(err)?;
                    g.wait_for_failover(old, Duration::from_secs(40)).map_err(err)?;
                    let failover = started.elapsed();
                    g.restart_node(victim).map_err(err)?;
                    failover
                }
                Servers::Cluster(c) => {
                    let slot = c.keyslot(&key).map_err(err)?;
                    let victim = c.master_for_slot(slot).map_err(err)?;
                    c.kill_node(victim);
                    c.wait_for_failover(victim, Duration::from_secs(40)).map_err(err)?;
                    let failover = started.elapsed();
                    c.restart_node(victim).map_err(err)?;
                    failover
                }
            };
            Ok((s, failover, started.elapsed()))
        })
        .await
        .map_err(|e| BenchError::new(format!("failover waiter: {e}")))?
    }
}

/// Replicas of each master in the scenario's topology.
pub fn replicas(t: Topology) -> u32 {
    match t {
        Topology::Sentinel => 2,
        Topology::Cluster => 1,
    }
}

fn err(e: impl std::fmt::Display) -> BenchError {
    BenchError::new(e.to_string())
}

async fn store(url: &str, durability: Option<u32>) -> Result<Arc<dyn Store>, BenchError> {
    let mut b = RedisStore::builder(url)
        .response_timeout(Duration::from_millis(1000))
        .connect_timeout(Duration::from_millis(500));
    if let Some(n) = durability {
        b = b.durability(n, Duration::from_millis(1000));
    }
    Ok(Arc::new(b.connect().await.map_err(err)?))
}

/// Starts the app: two instances behind the balancer, on a free loopback port.
async fn serve(url: &str, durability: Option<u32>) -> Result<std::net::SocketAddr, BenchError> {
    let cookie = CookieConfig::builder().name(COOKIE).secure(false).build().map_err(err)?;
    let mut instances = Vec::new();
    for i in 0..2 {
        let manager = SessionManager::new(
            store(url, durability).await?,
            SessionConfig::builder().insecure_development_secret().build().map_err(err)?,
        );
        instances.push(sesame_cli::demo::app(&format!("app-{}", i + 1), manager, cookie.clone()));
    }
    let router = sesame_cli::demo::balancer(instances);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(err)?;
    let addr = listener.local_addr().map_err(err)?;
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(addr)
}

fn token_of(r: &reqwest::Response) -> Option<String> {
    r.headers().get_all("set-cookie").iter().find_map(|v| {
        let v = v.to_str().ok()?;
        let value = v.strip_prefix(COOKIE)?.strip_prefix('=')?.split(';').next()?;
        (!value.is_empty()).then(|| value.to_string())
    })
}

/// One user's loop.
async fn client(i: usize, base: String, shared: Arc<Shared>) {
    let http = match reqwest::Client::builder().timeout(Duration::from_secs(15)).build() {
        Ok(c) => c,
        Err(_) => return,
    };
    let user = format!("user{i}");
    let c = &shared.counters;
    let mut token: Option<String> = None;
    let mut visits: u64 = 0;
    let mut since_login: u64 = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        if token.is_none() || since_login >= RELOGIN_EVERY {
            let mut logged_in = false;
            let mut rb =
                http.post(format!("{base}/api/login")).json(&serde_json::json!({"username": user}));
            if let Some(t) = &token {
                rb = rb.header("cookie", format!("{COOKIE}={t}"));
            }
            match rb.send().await {
                Ok(r) if r.status() == 200 => match token_of(&r) {
                    Some(t) => {
                        c.ok.fetch_add(1, Ordering::Relaxed);
                        c.logins.fetch_add(1, Ordering::Relaxed);
                        if token.is_none() {
                            visits = 0;
                        }
                        token = Some(t);
                        since_login = 0;
                        logged_in = true;
                    }
                    None => {
                        c.other.fetch_add(1, Ordering::Relaxed);
                    }
                },
                Ok(r) if r.status() == 503 => shared.failure(),
                other => shared.other(other).await,
            }
            if !logged_in {
                // The login failed: back off a little, as after any failure.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            continue;
        }
        let Some(t) = &token else { continue };
        let r = http
            .get(format!("{base}/api/me"))
            .header("cookie", format!("{COOKIE}={t}"))
            .send()
            .await;
        since_login += 1;
        match r {
            Ok(r) if r.status() == 200 => {
                let body: serde_json::Value = r.json().await.unwrap_or_default();
                c.ok.fetch_add(1, Ordering::Relaxed);
                if body["user"].as_str() != Some(user.as_str()) {
                    c.wrong.fetch_add(1, Ordering::Relaxed);
                }
                let seen = body["visits"].as_u64().unwrap_or(0);
                if seen < visits + 1 {
                    c.updates_lost.fetch_add(visits + 1 - seen, Ordering::Relaxed);
                    if let Ok(mut s) = shared.other_samples.lock() {
                        if s.len() < 12 {
                            s.push(format!("update lost: {user} expected visits >= {} but saw {seen}, {since_login} requests after its last login, on {}", visits + 1, body["instance"]));
                        }
                    }
                }
                visits = seen;
            }
            Ok(r) if r.status() == 401 => {
                c.sessions_lost.fetch_add(1, Ordering::Relaxed);
                token = None;
            }
            Ok(r) if r.status() == 503 => {
                shared.failure();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => {
                shared.other(other).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Runs one scenario on freshly spawned servers.
pub async fn run(opts: Options) -> Result<Report, BenchError> {
    let servers =
        tokio::task::spawn_blocking(move || Servers::start(opts.topology)).await.map_err(err)??;
    let url = servers.url();
    let addr = serve(&url, opts.durability.then_some(replicas(opts.topology))).await?;
    let base = format!("http://{addr}");
    let shared = Arc::new(Shared {
        counters: Counters::default(),
        stop: AtomicBool::new(false),
        failures: Mutex::new(Vec::new()),
        other_samples: Mutex::new(Vec::new()),
    });
    let mut tasks = Vec::new();
    for i in 0..opts.clients.max(1) {
        tasks.push(tokio::spawn(client(i, base.clone(), shared.clone())));
    }
    tokio::time::sleep(WARMUP).await;
    // For a cluster, kill the master of user0's slot: every user's keys live in their slot.
    let key = {
        let user = crate::content::named("user0").user();
        format!("sesame:{{{}}}:u:{}", user.tag().to_hex(), user.id())
    };
    let killed_at = Instant::now();
    let outcome = servers.kill_master_and_wait(key).await;
    let (servers, failover_took, rejoined_after) = match outcome {
        Ok((s, d, r)) => (Some(s), Some(d), Some(r)),
        Err(e) => {
            shared.stop.store(true, Ordering::Relaxed);
            return Err(BenchError::new(format!("failover did not complete: {}", e.0)));
        }
    };
    // Keep the load on until a quiet period without failures, or the time limit.
    let recovered = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let last = shared.failures.lock().ok().and_then(|f| f.last().copied());
        let quiet_since = last.map_or(killed_at, |l| l.max(killed_at));
        if quiet_since.elapsed() >= QUIET {
            break true;
        }
        if killed_at.elapsed() >= MAX_RUN {
            break false;
        }
    };
    shared.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    drop(servers);
    let c = &shared.counters;
    let window = shared
        .failures
        .lock()
        .ok()
        .and_then(|f| f.iter().filter(|t| **t >= killed_at).max().copied())
        .map(|t| t - killed_at);
    Ok(Report {
        ok: c.ok.load(Ordering::Relaxed),
        failed: c.failed.load(Ordering::Relaxed),
        other_errors: c.other.load(Ordering::Relaxed),
        wrong_sessions: c.wrong.load(Ordering::Relaxed),
        logins_acked: c.logins.load(Ordering::Relaxed),
        sessions_lost: c.sessions_lost.load(Ordering::Relaxed),
        updates_lost: c.updates_lost.load(Ordering::Relaxed),
        window,
        failover_took,
        rejoined_after,
        other_samples: shared.other_samples.lock().map(|s| s.clone()).unwrap_or_default(),
        recovered,
    })
}

/// One Markdown table row for a run.
pub fn row(opts: &Options, r: &Report) -> String {
    let ms = |d: Option<Duration>| d.map_or("-".to_string(), |d| d.as_millis().to_string());
    format!(
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
        opts.topology,
        if opts.durability { format!("WAIT {}", replicas(opts.topology)) } else { "off".into() },
        ms(r.failover_took),
        ms(r.rejoined_after),
        ms(r.window),
        r.ok,
        r.failed,
        r.other_errors,
        r.wrong_sessions,
        r.sessions_lost,
        r.updates_lost,
        if r.recovered { "yes" } else { "NO" },
    )
}

/// The header of [`row`]'s table.
pub const HEADER: &str = "| topology | durability | failover (ms) | killed node back (ms) | failing window (ms) | ok | 503 | other errors | wrong sessions | sessions lost | updates lost | recovered |\n|---|---|---|---|---|---|---|---|---|---|---|---|";
