//! `sesame demo`: several app instances, each with its own store client, behind a built-in
//! round-robin balancer on one port. The balancer itself answers `GET /metrics` with the
//! process's metrics in the Prometheus text format, and serves the admin view (`/admin` and
//! `/api/admin/...`) to clients on this machine.

mod admin;
mod app;
pub mod feed;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use sesame::{MemoryStore, SessionConfig, SessionManager, Store};
use sesame_axum::CookieConfig;
use sesame_redis::RedisStore;
use tower::ServiceExt;

pub use admin::router as admin_router;
pub use app::{app, app_on};

/// Options of `sesame demo`.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Address of the balancer.
    pub listen: SocketAddr,
    /// Number of app instances.
    pub instances: usize,
    /// Store URL; `None` for the in-memory store.
    pub store: Option<String>,
    /// Session configuration.
    pub config: SessionConfig,
    /// Cookie configuration.
    pub cookie: CookieConfig,
    /// Replicas that must confirm each write, and how long to wait for them.
    pub durability: Option<(u32, Duration)>,
    /// Give each instance's Redis store a near cache.
    pub near_cache: bool,
}

impl DemoOptions {
    fn store_options(&self) -> StoreOptions {
        StoreOptions { durability: self.durability, near_cache: self.near_cache }
    }
}

/// Opens a store client for `url` (`None`: a new in-memory store).
pub async fn open_store(url: Option<&str>) -> Result<Arc<dyn Store>, String> {
    open_store_with(url, StoreOptions::default()).await
}

/// How [`open_store_with`] opens a Redis store.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreOptions {
    /// Acknowledge writes only once this many replicas confirm them, waiting this long (see
    /// `sesame_redis::RedisStoreBuilder::durability`).
    pub durability: Option<(u32, Duration)>,
    /// Keep recently read sessions in memory, kept correct by Redis (see
    /// `sesame_redis::RedisStoreBuilder::near_cache`).
    pub near_cache: bool,
}

/// Like [`open_store`], with the options of a Redis store.
pub async fn open_store_with(url: Option<&str>, o: StoreOptions) -> Result<Arc<dyn Store>, String> {
    let StoreOptions { durability, near_cache } = o;
    match url {
        None | Some("memory") | Some("memory://") => {
            if durability.is_some() {
                return Err("--durability needs a Redis store with replicas".into());
            }
            if near_cache {
                return Err("--near-cache needs a Redis store (the in-memory store is already in memory)".into());
            }
            Ok(Arc::new(MemoryStore::new()))
        }
        Some(u) if u.contains("://") && u.split("://").next().is_some_and(|s| s.starts_with("redis")) => {
            let mut b = RedisStore::builder(u);
            if let Some((n, t)) = durability {
                b = b.durability(n, t);
            }
            if near_cache {
                b = b.near_cache(sesame_redis::NearCacheConfig::default());
            }
            b.connect()
                .await
                .map(|s| Arc::new(s) as Arc<dyn Store>)
                .map_err(|e| format!("cannot use store {}: {e}", redact(u)))
        }
        Some(u) => Err(format!(
            "unknown store URL {}: use redis://host:port, rediss://host:port, redis+sentinel://host:port,host:port/<master>, redis+cluster://host:port,host:port, or leave it out for the in-memory store",
            redact(u)
        )),
    }
}

/// Hides the password of a URL for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(a)) if a > s => format!("{}://***@{}", &url[..s], &url[a + 1..]),
        _ => url.to_string(),
    }
}

/// Builds the instances and the balancer in front of them.
pub async fn build(opts: &DemoOptions) -> Result<Router, String> {
    let n = opts.instances.clamp(1, 64);
    let shared_memory = match opts.store.as_deref() {
        None | Some("memory") | Some("memory://") => {
            Some(open_store_with(None, opts.store_options()).await?)
        }
        _ => None,
    };
    let mut instances = Vec::with_capacity(n);
    let mut managers = Vec::with_capacity(n);
    for i in 0..n {
        let store = match &shared_memory {
            // In-memory sessions are shared by being in the same process.
            Some(s) => s.clone(),
            None => open_store_with(opts.store.as_deref(), opts.store_options()).await?,
        };
        let manager = SessionManager::new(store, opts.config.clone());
        let label = store_label(opts.store.as_deref());
        let name = format!("app-{}", i + 1);
        managers.push((name.clone(), manager.clone()));
        instances.push(app_on(&name, manager, opts.cookie.clone(), &label));
    }
    let metrics = prometheus();
    Ok(balancer(instances)
        .merge(admin_router(managers))
        .route("/metrics", get(move || render_metrics(metrics.clone()))))
}

/// The Prometheus recorder of this process, installed by the first call (one per process,
/// shared by every instance and every demo built in it); `None` when another recorder was
/// installed first.
pub fn prometheus() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok().map(|()| handle)
        })
        .clone()
}

/// `GET /metrics`: the metrics in the Prometheus text format.
async fn render_metrics(handle: Option<PrometheusHandle>) -> axum::response::Response {
    match handle {
        Some(h) => {
            h.run_upkeep();
            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], h.render()).into_response()
        }
        None => (StatusCode::SERVICE_UNAVAILABLE, "another metrics recorder is installed\n")
            .into_response(),
    }
}

/// What the page says the sessions live in: the store URL without credentials, or the
/// in-memory store.
pub fn store_label(url: Option<&str>) -> String {
    match url {
        None | Some("memory") | Some("memory://") => {
            "the in-memory store (shared by the instances of this process)".to_string()
        }
        Some(u) => redact(u),
    }
}

/// Sends each request to the next router in turn.
pub fn balancer(instances: Vec<Router>) -> Router {
    let instances = Arc::new(instances);
    let next = Arc::new(AtomicUsize::new(0));
    let svc = tower::service_fn(move |req: Request<Body>| {
        let i = next.fetch_add(1, Ordering::Relaxed) % instances.len().max(1);
        let router = instances.get(i).cloned().unwrap_or_default();
        router.oneshot(req)
    });
    Router::new().fallback_service(svc)
}

/// Runs the demo until Ctrl-C.
pub async fn run(opts: DemoOptions) -> Result<(), String> {
    let router = build(&opts).await?;
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", opts.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let store = opts.store.as_deref().map_or("in-memory store".to_string(), redact);
    tracing::info!("sesame demo: {} instances on {store}", opts.instances.clamp(1, 64));
    eprintln!(
        "sesame demo: {} app instances on {store}, behind a round-robin balancer\n  open http://{addr}/  (Ctrl-C to stop)",
        opts.instances.clamp(1, 64)
    );
    axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| e.to_string())?;
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(())
}
