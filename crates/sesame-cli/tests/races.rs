//! Races over real HTTP on the demo app: concurrent requests of one session or one user sent
//! to two demo instances at once, each scenario repeated for many rounds. Every scenario runs
//! twice: on the in-memory store (two demo instances sharing one `MemoryStore`, as `sesame demo`
//! runs them) and on a freshly spawned redis-server (two demo instances, each with its own
//! `RedisStore` client).
//!
//! The instances' stores are wrapped in [`Spy`], which passes every call through unchanged and
//! records, for each session made by a login, the user's revocation epoch the login read when it
//! began; one test also holds a save back until another request has ended its session. The
//! checks read the store through a third client ([`Backend::admin`]), as an operator would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::Client;
use serde_json::{json, Value};
use sesame::{
    CreateOutcome, Delta, Error, Loaded, Login, Lookup, MemoryStore, Policy, Record, RotateOutcome,
    Rotation, SaveOutcome, SessionConfig, SessionInfo, SessionKey, SessionManager, Store,
    StoreError, UserRef,
};
use sesame_axum::CookieConfig;
use sesame_cli::demo;
use sesame_redis::RedisStore;
use sesame_testkit::RedisServer;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

const COOKIE: &str = "sesame_demo";
/// The grace window of superseded tokens in these tests.
const GRACE: Duration = Duration::from_millis(300);
/// Longest wait for anything in a round; a hang fails the test instead of stalling it.
const PATIENCE: Duration = Duration::from_secs(20);

fn config() -> SessionConfig {
    SessionConfig::builder().insecure_development_secret().grace_period(GRACE).build().unwrap()
}

fn cookie() -> CookieConfig {
    CookieConfig::builder().name(COOKIE).secure(false).build().unwrap()
}

// ---------------------------------------------------------------------------------------------
// The store wrapper.

/// For each session made by a login: the principal and the epoch its login read when it began
/// (a rotation without a login inherits its predecessor's), in the order they were written.
#[derive(Default)]
struct Log {
    logins: Mutex<Vec<(String, String, u64)>>,
}

impl Log {
    fn note(&self, id: String, principal: String, epoch: u64) {
        self.logins.lock().unwrap().push((id, principal, epoch));
    }

    fn get(&self, id: &str) -> Option<(String, u64)> {
        let logins = self.logins.lock().unwrap();
        logins.iter().find(|(i, _, _)| i == id).map(|(_, p, e)| (p.clone(), *e))
    }

    /// Sessions of `principal` made by logins that read an epoch below `epoch`, the most
    /// recently written first: a rotation's successor comes before the token it superseded, so
    /// that checking a superseded token (which may revoke its lineage as a reused token) never
    /// hides a live successor from the checks.
    fn before(&self, principal: &str, epoch: u64) -> Vec<String> {
        let logins = self.logins.lock().unwrap();
        logins
            .iter()
            .rev()
            .filter(|(_, p, e)| p == principal && *e < epoch)
            .map(|(id, _, _)| id.clone())
            .collect()
    }
}

/// Holds the next save of one instance back: it reports that it was reached, then waits to be
/// released.
#[derive(Default)]
struct Gate {
    armed: AtomicBool,
    reached: Notify,
    release: Notify,
}

impl Gate {
    async fn pass(&self) {
        if self.armed.swap(false, Ordering::SeqCst) {
            self.reached.notify_one();
            self.release.notified().await;
        }
    }
}

/// A store that passes every call to `inner`, recording logins in `log` and holding saves at
/// `gate` when it is armed.
struct Spy {
    inner: Arc<dyn Store>,
    log: Arc<Log>,
    gate: Arc<Gate>,
}

#[async_trait]
impl Store for Spy {
    async fn create(
        &self,
        key: &SessionKey,
        record: &Record,
        login: Option<&Login>,
        now_ms: u64,
        policy: &Policy,
    ) -> Result<CreateOutcome, StoreError> {
        let out = self.inner.create(key, record, login, now_ms, policy).await?;
        if let (CreateOutcome::Created, Some(l)) = (out, login) {
            self.log.note(key.id(), l.principal.name().to_string(), l.epoch);
        }
        Ok(out)
    }

    async fn load(
        &self,
        key: &SessionKey,
        now_ms: u64,
        policy: &Policy,
    ) -> Result<Lookup, StoreError> {
        self.inner.load(key, now_ms, policy).await
    }

    async fn save(
        &self,
        key: &SessionKey,
        base: &Loaded,
        delta: &Delta,
        now_ms: u64,
        policy: &Policy,
    ) -> Result<SaveOutcome, StoreError> {
        self.gate.pass().await;
        self.inner.save(key, base, delta, now_ms, policy).await
    }

    async fn rotate(
        &self,
        rot: &Rotation<'_>,
        now_ms: u64,
        policy: &Policy,
    ) -> Result<RotateOutcome, StoreError> {
        let out = self.inner.rotate(rot, now_ms, policy).await?;
        if let RotateOutcome::Rotated(_) = &out {
            let origin = match &rot.login {
                Some(l) => Some((l.principal.name().to_string(), l.epoch)),
                None => self.log.get(&rot.old.id()),
            };
            if let Some((p, e)) = origin {
                self.log.note(rot.new.id(), p, e);
            }
        }
        Ok(out)
    }

    async fn peek(
        &self,
        keys: &[SessionKey],
        now_ms: u64,
    ) -> Result<Vec<Option<Record>>, StoreError> {
        self.inner.peek(keys, now_ms).await
    }

    async fn destroy(&self, key: &SessionKey, now_ms: u64) -> Result<bool, StoreError> {
        self.inner.destroy(key, now_ms).await
    }

    async fn user_epoch(&self, user: UserRef) -> Result<u64, StoreError> {
        self.inner.user_epoch(user).await
    }

    async fn list_user(
        &self,
        user: UserRef,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<SessionInfo>, StoreError> {
        self.inner.list_user(user, now_ms, limit).await
    }

    async fn revoke(&self, user: UserRef, id: &str, now_ms: u64) -> Result<bool, StoreError> {
        self.inner.revoke(user, id, now_ms).await
    }

    async fn revoke_all(
        &self,
        user: UserRef,
        keep: Option<&str>,
        now_ms: u64,
    ) -> Result<u64, StoreError> {
        self.inner.revoke_all(user, keep, now_ms).await
    }
}

// ---------------------------------------------------------------------------------------------
// Two demo instances on one store.

struct Backend {
    /// The two demo instances.
    apps: [SocketAddr; 2],
    /// Their save gates.
    gates: [Arc<Gate>; 2],
    /// A third client of the same store, for the checks.
    admin: SessionManager,
    log: Arc<Log>,
    client: Client,
    /// The Redis server or cluster, stopped when the backend is dropped.
    _redis: Option<Box<dyn std::any::Any + Send + Sync>>,
}

async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

async fn backend(
    stores: [Arc<dyn Store>; 3],
    redis: Option<Box<dyn std::any::Any + Send + Sync>>,
) -> Backend {
    let [a, b, admin] = stores;
    let log = Arc::new(Log::default());
    let gates = [Arc::new(Gate::default()), Arc::new(Gate::default())];
    let mut apps = Vec::new();
    for (i, inner) in [a, b].into_iter().enumerate() {
        let spy = Spy { inner, log: log.clone(), gate: gates[i].clone() };
        let manager = SessionManager::new(Arc::new(spy), config());
        apps.push(serve(demo::app(&format!("app-{}", i + 1), manager, cookie())).await);
    }
    Backend {
        apps: [apps[0], apps[1]],
        gates,
        admin: SessionManager::new(admin, config()),
        log,
        client: Client::new(),
        _redis: redis,
    }
}

/// Two demo instances sharing one in-memory store.
async fn memory() -> Backend {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    backend([store.clone(), store.clone(), store], None).await
}

/// Two demo instances on one redis-server, each with its own client.
async fn redis() -> Backend {
    let server = RedisServer::start();
    let mut stores = Vec::new();
    for _ in 0..3 {
        stores.push(Arc::new(RedisStore::connect(&server.url()).await.unwrap()) as Arc<dyn Store>);
    }
    let [a, b, admin]: [Arc<dyn Store>; 3] = stores.try_into().ok().unwrap();
    backend([a, b, admin], Some(Box::new(server))).await
}

/// Two demo instances on a 3-master, 3-replica Redis Cluster, each with its own client.
async fn cluster() -> Backend {
    let cluster =
        tokio::task::spawn_blocking(sesame_testkit::Cluster::start).await.unwrap().unwrap();
    let mut stores = Vec::new();
    for _ in 0..3 {
        let s = RedisStore::connect(&cluster.url()).await.unwrap();
        stores.push(Arc::new(s) as Arc<dyn Store>);
    }
    let [a, b, admin]: [Arc<dyn Store>; 3] = stores.try_into().ok().unwrap();
    backend([a, b, admin], Some(Box::new(cluster))).await
}

// ---------------------------------------------------------------------------------------------
// HTTP.

#[derive(Debug)]
struct Resp {
    status: u16,
    /// A token set by the response.
    token: Option<String>,
    /// Whether the response told the client to forget its token.
    cleared: bool,
    body: Value,
}

async fn call(
    c: &Client,
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Resp {
    let mut rb = c.request(method.parse().unwrap(), format!("http://{addr}{path}"));
    if let Some(t) = token {
        rb = rb.header("cookie", format!("{COOKIE}={t}"));
    }
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = tokio::time::timeout(PATIENCE, rb.send()).await.expect("no answer").unwrap();
    let status = r.status().as_u16();
    let set = r.headers().get("set-cookie").map(|v| {
        let v = v.to_str().unwrap().strip_prefix(&format!("{COOKIE}=")).unwrap();
        v.split(';').next().unwrap().to_string()
    });
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Resp { status, cleared: set.as_deref() == Some(""), token: set.filter(|v| !v.is_empty()), body }
}

/// [`call`] in a task of its own, so that many run at once.
fn spawn_call(
    b: &Backend,
    instance: usize,
    method: &'static str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> JoinHandle<Resp> {
    let (c, addr) = (b.client.clone(), b.apps[instance % 2]);
    let (path, token) = (path.to_string(), token.map(str::to_string));
    tokio::spawn(async move { call(&c, addr, method, &path, token.as_deref(), body).await })
}

async fn join(tasks: Vec<JoinHandle<Resp>>) -> Vec<Resp> {
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

impl Backend {
    async fn call(
        &self,
        i: usize,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        call(&self.client, self.apps[i % 2], method, path, token, body).await
    }

    /// Logs `user` in from a new client; its token.
    async fn login(&self, i: usize, user: &str) -> String {
        let r = self.call(i, "POST", "/api/login", None, Some(json!({ "username": user }))).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        r.token.unwrap()
    }

    /// Adds an item to the cart of the session of `token`, which must exist and keep its token.
    async fn add(&self, i: usize, token: &str, item: &str) {
        let r = self.call(i, "POST", "/api/cart", Some(token), Some(json!({ "item": item }))).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.token, None, "no new session");
    }

    /// `GET /api/me`: `Some(cart)` when the token reaches a logged-in session.
    async fn me(&self, i: usize, token: &str) -> Option<Vec<String>> {
        let r = self.call(i, "GET", "/api/me", Some(token), None).await;
        match r.status {
            200 => Some(serde_json::from_value(r.body["cart"].clone()).unwrap()),
            401 => None,
            s => panic!("GET /api/me: {s} {:?}", r.body),
        }
    }

    /// The live sessions of `user` as the store has them: (id, record).
    async fn live(&self, user: &str) -> Vec<(String, Record)> {
        let policy = self.admin.config().policy();
        let mut out = Vec::new();
        for s in self.admin.list_user(user).await.unwrap() {
            let key =
                SessionKey::from_parts(self.admin.config().principal(user).user().tag(), &s.id)
                    .unwrap();
            if let Lookup::Live(l) =
                self.admin.store().load(&key, sesame::now_ms(), policy).await.unwrap()
            {
                out.push((s.id, std::sync::Arc::unwrap_or_clone(l.record)));
            }
        }
        out
    }

    /// Ids of the live sessions of `user` whose cart holds `item`.
    async fn carrying(&self, user: &str, item: &str) -> Vec<String> {
        let live = self.live(user).await;
        live.into_iter()
            .filter(|(_, r)| cart(r).iter().any(|i| i == item))
            .map(|(id, _)| id)
            .collect()
    }

    /// Whether the session `id` of `user` is live in the store (its own session, not a
    /// successor). Like any lookup, it revokes the lineage of a token superseded longer than
    /// the grace window ago.
    async fn is_live(&self, user: &str, id: &str) -> bool {
        let key =
            SessionKey::from_parts(self.admin.config().principal(user).user().tag(), id).unwrap();
        let policy = self.admin.config().policy();
        matches!(
            self.admin.store().load(&key, sesame::now_ms(), policy).await.unwrap(),
            Lookup::Live(_)
        )
    }
}

fn cart(r: &Record) -> Vec<String> {
    r.attrs.get("cart").map(|b| sesame::value::decode(b).unwrap()).unwrap_or_default()
}

/// The public id of the session a token names.
fn id_of(token: &str) -> String {
    sesame::TokenCodec::insecure_development().parse(token).unwrap().key().id()
}

/// Runs a scenario on both stores.
macro_rules! on_both_stores {
    ($($scenario:ident),* $(,)?) => {
        mod memory_store {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $scenario() {
                    super::$scenario(&super::memory().await).await;
                }
            )*
        }
        mod redis_store {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $scenario() {
                    super::$scenario(&super::redis().await).await;
                }
            )*
        }
    };
}

// Every scenario once more on a Redis Cluster (one cluster for all: it is slow to start). On a
// cluster, an anonymous session and its user's sessions live in different slots, so the
// anonymous → user logins take the three-step path.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_scenario_on_a_redis_cluster() {
    let b = cluster().await;
    hundred_concurrent_cart_adds_all_persist(&b).await;
    concurrent_relogins_leave_one_session_with_the_data(&b).await;
    logout_racing_relogins_leaves_no_session_with_the_data(&b).await;
    revoke_all_racing_logins_and_rotations_ends_every_earlier_login(&b).await;
    reused_token_after_the_grace_window_ends_the_lineage(&b).await;
    save_after_logout_elsewhere_is_a_401(&b).await;
}

on_both_stores!(
    hundred_concurrent_cart_adds_all_persist,
    concurrent_relogins_leave_one_session_with_the_data,
    logout_racing_relogins_leaves_no_session_with_the_data,
    revoke_all_racing_logins_and_rotations_ends_every_earlier_login,
    reused_token_after_the_grace_window_ends_the_lineage,
    save_after_logout_elsewhere_is_a_401,
);

// ---------------------------------------------------------------------------------------------
// The scenarios.

// 100 concurrent add-to-cart requests on one session, alternating between the two instances:
// all 100 items persist (exact update, no lost write), round after round.
async fn hundred_concurrent_cart_adds_all_persist(b: &Backend) {
    for round in 0..8 {
        let user = format!("cart-{round}");
        let t = b.login(round, &user).await;
        let items: Vec<String> = (0..100).map(|i| format!("r{round}-item-{i}")).collect();
        let tasks = items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                spawn_call(b, i, "POST", "/api/cart", Some(&t), Some(json!({ "item": item })))
            })
            .collect();
        for r in join(tasks).await {
            assert_eq!(r.status, 200, "round {round}: {:?}", r.body);
            assert_eq!(r.token, None, "round {round}: same session");
        }
        let got: BTreeSet<String> = b.me(round + 1, &t).await.unwrap().into_iter().collect();
        assert_eq!(got, items.iter().cloned().collect::<BTreeSet<_>>(), "round {round}");
    }
}

// 8 concurrent re-logins of one user presenting one token: all are sent the same new token,
// afterwards at most one live session of the user carries the session's data, and once the grace window has passed the old token
// gets no session.
async fn concurrent_relogins_leave_one_session_with_the_data(b: &Backend) {
    let mut old = Vec::new();
    for round in 0..25 {
        let user = format!("relogin-{round}");
        let marker = format!("mark-{round}");
        let t0 = b.login(round, &user).await;
        b.add(round, &t0, &marker).await;
        let tasks = (0..8)
            .map(|i| {
                spawn_call(b, i, "POST", "/api/login", Some(&t0), Some(json!({ "username": user })))
            })
            .collect();
        let mut handed = std::collections::BTreeSet::new();
        for r in join(tasks).await {
            assert_eq!(r.status, 200, "round {round}: {:?}", r.body);
            assert!(r.token.is_some(), "round {round}: every re-login hands out a token");
            handed.extend(r.token);
        }
        // One successor: every re-login's client is sent the same token (a client left holding
        // another one would be taken for a thief after the grace window).
        assert_eq!(handed.len(), 1, "round {round}: {} distinct tokens handed out", handed.len());
        let carrying = b.carrying(&user, &marker).await;
        assert!(carrying.len() <= 1, "round {round}: {} sessions carry the data", carrying.len());
        old.push((user, t0, marker));
    }
    tokio::time::sleep(GRACE + Duration::from_millis(100)).await;
    for (round, (user, t0, marker)) in old.iter().enumerate() {
        let r = b.call(round, "GET", "/api/me", Some(t0), None).await;
        assert_eq!(r.status, 401, "round {round}: the old token after the grace window");
        assert_eq!(r.token, None, "round {round}: and no token for it");
        assert!(
            b.carrying(user, marker).await.is_empty(),
            "round {round}: its reuse ended the lineage"
        );
    }
}

// A logout racing 7 re-logins that present the same token: once the logout answered 2xx, no
// live session carries the session's data, whichever token any response handed out is used.
async fn logout_racing_relogins_leaves_no_session_with_the_data(b: &Backend) {
    for round in 0..25 {
        let user = format!("logout-{round}");
        let marker = format!("mark-{round}");
        let t0 = b.login(round, &user).await;
        b.add(round, &t0, &marker).await;
        let login = json!({ "username": user });
        let mut tasks = vec![spawn_call(b, round, "POST", "/api/logout", Some(&t0), None)];
        for i in 0..7 {
            tasks.push(spawn_call(
                b,
                round + 1 + i,
                "POST",
                "/api/login",
                Some(&t0),
                Some(login.clone()),
            ));
        }
        let rs = join(tasks).await;
        assert_eq!(rs[0].status, 200, "round {round}: logout {:?}", rs[0].body);
        assert!(rs[0].cleared, "round {round}: logout clears the cookie");
        for r in &rs[1..] {
            assert_eq!(r.status, 200, "round {round}: re-login {:?}", r.body);
        }
        // The store first (reading it has no side effect), then every token handed out (a
        // superseded one presented after its grace window would revoke its lineage).
        assert!(
            b.carrying(&user, &marker).await.is_empty(),
            "round {round}: a live session has the data"
        );
        let mut tokens: Vec<&str> = rs.iter().filter_map(|r| r.token.as_deref()).collect();
        tokens.push(&t0);
        for (i, t) in tokens.iter().enumerate() {
            if let Some(cart) = b.me(i, t).await {
                assert!(
                    !cart.contains(&marker),
                    "round {round}: a token handed out reaches the data"
                );
            }
        }
    }
}

// "Log out everywhere" racing fresh logins, re-logins (rotations) and logins of anonymous
// sessions of the same user: afterwards every session of the user made by a login that began
// before the revocation (read the user's epoch before it moved) is dead, except the caller's
// own with "log out other sessions"; logins that lost answer 401 with a clear message.
// Even rounds revoke through the demo's "log out other sessions", odd rounds as an operator
// (SessionManager::revoke_user, nothing kept).
async fn revoke_all_racing_logins_and_rotations_ends_every_earlier_login(b: &Backend) {
    let revoked_message = Error::LoginRevoked.to_string();
    for round in 0..20 {
        let user = format!("revoke-{round}");
        let login = json!({ "username": user });
        let revoker = b.login(round, &user).await;
        let mut devices = Vec::new();
        for i in 0..3 {
            devices.push(b.login(round + i, &user).await);
        }
        let mut anonymous = Vec::new();
        for i in 0..2 {
            let r = b.call(i, "POST", "/api/cart", None, Some(json!({ "item": "anon" }))).await;
            anonymous.push(r.token.unwrap());
        }
        let mut tasks = Vec::new();
        for i in 0..4 {
            tasks.push(spawn_call(b, i, "POST", "/api/login", None, Some(login.clone())));
        }
        for (i, t) in devices.iter().chain(&anonymous).enumerate() {
            tasks.push(spawn_call(b, i + 1, "POST", "/api/login", Some(t), Some(login.clone())));
        }
        for (i, t) in devices.iter().enumerate() {
            tasks.push(spawn_call(b, i, "GET", "/api/me", Some(t), None));
        }
        let logins = 4 + devices.len() + anonymous.len();
        let by_api = round % 2 == 0;
        let revoked = if by_api {
            let r =
                b.call(round, "POST", "/api/sessions/revoke-others", Some(&revoker), None).await;
            assert_eq!(r.status, 200, "round {round}: {:?}", r.body);
            r.body["revoked"].as_u64().unwrap()
        } else {
            b.admin.revoke_user(&user).await.unwrap()
        };
        let rs = join(tasks).await;
        for r in &rs[..logins] {
            match r.status {
                200 => assert!(r.token.is_some()),
                401 => assert_eq!(r.body["error"], revoked_message.as_str(), "round {round}"),
                s => panic!("round {round}: login answered {s} {:?}", r.body),
            }
        }
        let epoch =
            b.admin.store().user_epoch(b.admin.config().principal(&user).user()).await.unwrap();
        let kept = by_api.then(|| id_of(&revoker));
        let earlier = b.log.before(&user, epoch);
        for t in std::iter::once(&revoker).chain(&devices) {
            assert!(earlier.contains(&id_of(t)), "round {round}: a login before the race");
        }
        for id in &earlier {
            if Some(id) == kept.as_ref() {
                assert!(b.is_live(&user, id).await, "round {round}: the caller's session is kept");
            } else {
                assert!(!b.is_live(&user, id).await, "round {round}: {id} escaped the revocation");
            }
        }
        let listed: Vec<String> = b.live(&user).await.into_iter().map(|(id, _)| id).collect();
        for id in &listed {
            let began = b.log.get(id).map(|(_, e)| e);
            assert!(
                Some(id) == kept.as_ref() || began == Some(epoch),
                "round {round}: live session {id} began at epoch {began:?}, revoked at {epoch}"
            );
        }
        // Every token handed out that names an earlier login's session gets no session.
        for (i, t) in devices.iter().chain(rs.iter().filter_map(|r| r.token.as_ref())).enumerate() {
            if earlier.contains(&id_of(t)) {
                assert_eq!(b.me(i, t).await, None, "round {round}: an earlier login's token works");
            }
        }
        assert!(revoked >= 1, "round {round}: the sessions before the race were revoked");
    }
}

// A superseded token presented after its grace window, racing requests of the legitimate
// holder of its successor (reads and a re-login): the old token gets no session, and afterwards
// neither does its successor, nor any session with the lineage's data.
async fn reused_token_after_the_grace_window_ends_the_lineage(b: &Backend) {
    let mut cases = Vec::new();
    for round in 0..20 {
        let user = format!("reuse-{round}");
        let marker = format!("mark-{round}");
        let t0 = b.login(round, &user).await;
        b.add(round, &t0, &marker).await;
        let r = b
            .call(round + 1, "POST", "/api/login", Some(&t0), Some(json!({ "username": user })))
            .await;
        let t1 = r.token.unwrap();
        assert_ne!(t1, t0);
        // Within the window, the old token reaches the session and its client is sent t1.
        let r = b.call(round, "GET", "/api/me", Some(&t0), None).await;
        assert_eq!(r.status, 200, "round {round}: within the grace window");
        assert!(r.body["cart"].as_array().unwrap().contains(&json!(marker)));
        assert_eq!(r.token.as_deref(), Some(t1.as_str()), "round {round}: the successor is sent");
        cases.push((user, marker, t0, t1));
    }
    tokio::time::sleep(GRACE + Duration::from_millis(100)).await;
    for (round, (user, marker, t0, t1)) in cases.iter().enumerate() {
        let mut tasks = vec![spawn_call(b, round, "GET", "/api/me", Some(t0), None)];
        for i in 0..3 {
            tasks.push(spawn_call(b, round + 1 + i, "GET", "/api/me", Some(t1), None));
        }
        let login = json!({ "username": user });
        tasks.push(spawn_call(b, round + 1, "POST", "/api/login", Some(t1), Some(login)));
        let rs = join(tasks).await;
        assert_eq!(rs[0].status, 401, "round {round}: the reused token got a session");
        assert_eq!(rs[0].token, None);
        assert_eq!(b.me(round, t1).await, None, "round {round}: the successor is dead too");
        assert!(b.carrying(user, marker).await.is_empty(), "round {round}: the data is still live");
        for r in &rs[1..] {
            if let Some(t) = &r.token {
                if let Some(cart) = b.me(round, t).await {
                    assert!(
                        !cart.contains(marker),
                        "round {round}: a handed-out token reaches the data"
                    );
                }
            }
        }
    }
}

// A save whose session is logged out (even rounds) or revoked from another device (odd rounds)
// by another request on the other instance while the save is in flight answers 401 with a JSON
// error saying so, not 200, and writes nothing.
async fn save_after_logout_elsewhere_is_a_401(b: &Backend) {
    let ended = Error::SessionEnded.to_string();
    for round in 0..20 {
        let user = format!("late-{round}");
        let t = b.login(0, &user).await;
        b.add(0, &t, "early").await;
        b.gates[0].armed.store(true, Ordering::SeqCst);
        let save = spawn_call(b, 0, "POST", "/api/cart", Some(&t), Some(json!({ "item": "late" })));
        tokio::time::timeout(PATIENCE, b.gates[0].reached.notified())
            .await
            .expect("save not reached");
        if round % 2 == 0 {
            let r = b.call(1, "POST", "/api/logout", Some(&t), None).await;
            assert_eq!(r.status, 200, "round {round}: {:?}", r.body);
        } else {
            let other = b.login(1, &user).await;
            let r = b.call(1, "POST", "/api/sessions/revoke-others", Some(&other), None).await;
            assert_eq!(r.body["revoked"], 1, "round {round}");
        }
        b.gates[0].release.notify_one();
        let r = save.await.unwrap();
        assert_eq!(r.status, 401, "round {round}: {:?}", r.body);
        assert_eq!(r.body, json!({ "error": ended }), "round {round}");
        assert_eq!(r.token, None, "round {round}");
        assert_eq!(b.me(0, &t).await, None, "round {round}: the session stays ended");
        assert!(
            b.carrying(&user, "late").await.is_empty(),
            "round {round}: the late item was written"
        );
    }
}

// The store wrapper stays out of the way when not armed, and the checks see what the demo does.
#[tokio::test]
async fn spy_records_logins_and_sees_live_sessions() {
    let b = memory().await;
    let t = b.login(0, "spy").await;
    assert_eq!(b.log.get(&id_of(&t)), Some(("spy".to_string(), 0)));
    assert_eq!(b.live("spy").await.len(), 1);
    assert!(b.is_live("spy", &id_of(&t)).await);
    b.add(1, &t, "tea").await;
    assert_eq!(b.carrying("spy", "tea").await, [id_of(&t)]);
}
