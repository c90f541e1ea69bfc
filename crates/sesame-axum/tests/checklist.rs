//! One test per item of the security checklist, named after it (`item_NN_...`): the behaviour
//! each item describes, shown over real HTTP (reqwest against axum servers on loopback ports)
//! on a real, freshly spawned redis-server, reading what Redis holds with raw commands. Items
//! 31, 38 and 39 are in `hooks.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use sesame_testkit::logs::Captured;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::extract::Path;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use reqwest::Client;
use serde_json::{json, Value};
use sesame::{
    CapPolicy, CreateOutcome, Delta, Error, Loaded, Login, Lookup, Policy, Record, RotateOutcome,
    Rotation, SaveOutcome, SessionConfig, SessionConfigBuilder, SessionEvent, SessionInfo,
    SessionKey, SessionManager, Store, StoreError, Tag, TokenSecret, UserRef, TOKEN_LEN,
};
use sesame_axum::{CookieConfig, SameSite, Session, SessionError, SessionLayer, TransportConfig};
use sesame_redis::RedisStore;
use sesame_testkit::RedisServer;

use common::{cookie, routes, send, serve, session_cookie, Resp, COOKIE};

// ---------------------------------------------------------------------------------------------
// The app.

/// The token secret of every app here (unless a test says otherwise).
const SECRET: [u8; 32] = [7u8; 32];

fn builder() -> SessionConfigBuilder {
    SessionConfig::builder().token_secret(SECRET.to_vec())
}

fn config() -> SessionConfig {
    builder().build().unwrap()
}

async fn cycle(session: Session) -> Result<(), SessionError> {
    session.cycle_id().await?;
    Ok(())
}

async fn cycle_then_set(
    session: Session,
    Path((k, v)): Path<(String, String)>,
) -> Result<(), SessionError> {
    session.cycle_id().await?;
    session.insert(&k, &v).await?;
    Ok(())
}

async fn login_then_set(
    session: Session,
    Path((user, k, v)): Path<(String, String, String)>,
) -> Result<(), SessionError> {
    session.login(&user).await?;
    session.insert(&k, &v).await?;
    Ok(())
}

async fn read(session: Session, Path(k): Path<String>) -> Result<Json<Value>, SessionError> {
    Ok(Json(json!(session.get::<String>(&k).await?)))
}

async fn number(session: Session, Path(k): Path<String>) -> Result<Json<Value>, SessionError> {
    Ok(Json(json!(session.get::<u64>(&k).await?)))
}

async fn secret(session: Session) -> Result<&'static str, SessionError> {
    session.require_recent_auth(Duration::from_secs(1)).await?;
    Ok("secret")
}

async fn created(session: Session) -> Result<Json<Value>, SessionError> {
    Ok(Json(json!(session.created_ms().await?)))
}

async fn list(session: Session) -> Result<Json<Value>, SessionError> {
    let ids: Vec<String> = session.list_sessions().await?.into_iter().map(|s| s.id).collect();
    Ok(Json(json!(ids)))
}

async fn revoke_one(session: Session, Path(id): Path<String>) -> Result<Json<Value>, SessionError> {
    Ok(Json(json!(session.revoke_session(&id).await?)))
}

async fn revoke_others(session: Session) -> Result<Json<Value>, SessionError> {
    Ok(Json(json!(session.revoke_other_sessions().await?)))
}

/// Text that LZ4 cannot shrink much: pseudo-random hex digits.
fn noise(seed: u64, len: usize) -> String {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from_digit((x % 16) as u32, 16).unwrap()
        })
        .collect()
}

/// Sets `n` attributes `a0`, `a1`, ... of `len` characters each.
async fn fill(session: Session, Path((n, len)): Path<(u64, usize)>) -> Result<(), SessionError> {
    for i in 0..n {
        session.insert(&format!("a{i}"), &noise(i + 1, len)).await?;
    }
    Ok(())
}

/// Sets `x = v` and answers with headers that would let a shared cache keep the response.
async fn public(
    session: Session,
    Path(v): Path<String>,
) -> Result<impl axum::response::IntoResponse, SessionError> {
    session.insert("x", &v).await?;
    Ok(([("cache-control", "public, max-age=600"), ("vary", "Accept-Encoding")], "cacheable"))
}

/// The common routes, plus `/cycle`, `/cycle-then-set/{k}/{v}`,
/// `/login-then-set/{user}/{k}/{v}`, `/read/{k}` (a string), `/number/{k}` (a u64),
/// `/secret` (authenticated within 1 s), `/created`, `/sessions`, `/sessions/revoke/{id}`,
/// `/sessions/revoke-others`, `/fill/{n}/{len}`, `/public/{v}` (sets `x`, says "cache me").
fn app_routes() -> Router {
    routes()
        .route("/cycle", post(cycle))
        .route("/cycle-then-set/{k}/{v}", post(cycle_then_set))
        .route("/login-then-set/{user}/{k}/{v}", post(login_then_set))
        .route("/read/{k}", get(read))
        .route("/number/{k}", get(number))
        .route("/secret", get(secret))
        .route("/created", get(created))
        .route("/sessions", get(list))
        .route("/sessions/revoke/{id}", post(revoke_one))
        .route("/sessions/revoke-others", post(revoke_others))
        .route("/fill/{n}/{len}", post(fill))
        .route("/public/{v}", post(public))
}

/// One app instance: its address, its manager (counters, events, admin operations) and a
/// store client of its Redis (key names, direct reads).
#[derive(Clone)]
struct App {
    addr: SocketAddr,
    manager: SessionManager,
    store: RedisStore,
}

impl App {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The storage key of the session a token names.
    fn session_key(&self, token: &str) -> SessionKey {
        self.manager.config().tokens().parse(token).unwrap().key()
    }

    /// The public id of the session a token names.
    fn id(&self, token: &str) -> String {
        self.session_key(token).id()
    }

    /// The Redis key of the session a token names.
    fn redis_key(&self, token: &str) -> String {
        self.store.session_key(&self.session_key(token))
    }

    async fn get(&self, c: &Client, path: &str, token: Option<&str>) -> Resp {
        let headers: Vec<_> = token.map(session_cookie).into_iter().collect();
        send(c, "GET", self.url(path), &headers).await
    }

    async fn post(&self, c: &Client, path: &str, token: Option<&str>) -> Resp {
        let headers: Vec<_> = token.map(session_cookie).into_iter().collect();
        send(c, "POST", self.url(path), &headers).await
    }

    /// Logs `user` in on a fresh client; the token handed out.
    async fn login(&self, c: &Client, user: &str) -> String {
        let r = self.post(c, &format!("/login/{user}"), None).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        r.cookie_token(COOKIE).unwrap()
    }

    /// A new anonymous session holding `x = value`; its token.
    async fn anonymous(&self, c: &Client, value: &str) -> String {
        let r = self.post(c, &format!("/set/x/{value}"), None).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        r.cookie_token(COOKIE).unwrap()
    }
}

async fn start(redis: &RedisServer, config: SessionConfig) -> App {
    start_with(redis, config, |l| l).await
}

async fn start_with(
    redis: &RedisServer,
    config: SessionConfig,
    layer: impl FnOnce(SessionLayer) -> SessionLayer,
) -> App {
    let store = RedisStore::connect(&redis.url()).await.unwrap();
    start_on(Arc::new(store.clone()), store, config, layer).await
}

/// An app whose manager uses `sessions` (a wrapper of `store`, or `store` itself).
async fn start_on(
    sessions: Arc<dyn Store>,
    store: RedisStore,
    config: SessionConfig,
    layer: impl FnOnce(SessionLayer) -> SessionLayer,
) -> App {
    let manager = SessionManager::new(sessions, config);
    let addr = serve(app_routes().layer(layer(SessionLayer::new(manager.clone())))).await;
    App { addr, manager, store }
}

// ---------------------------------------------------------------------------------------------
// Reading Redis directly.

fn conn(redis: &RedisServer) -> redis::Connection {
    redis::Client::open(redis.url()).unwrap().get_connection().unwrap()
}

/// Every key matching `pattern`, by `SCAN`, sorted.
fn scan(redis: &RedisServer, pattern: &str) -> Vec<String> {
    let mut c = conn(redis);
    let mut keys = BTreeSet::new();
    let mut cursor: u64 = 0;
    for _ in 0..100_000 {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query(&mut c)
            .unwrap();
        keys.extend(batch);
        cursor = next;
        if cursor == 0 {
            return keys.into_iter().collect();
        }
    }
    panic!("SCAN did not finish");
}

fn raw(redis: &RedisServer, key: &str) -> Option<Vec<u8>> {
    redis::cmd("GET").arg(key).query(&mut conn(redis)).unwrap()
}

fn set_raw(redis: &RedisServer, key: &str, value: &[u8]) {
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg(value)
        .arg("PX")
        .arg(600_000)
        .query(&mut conn(redis))
        .unwrap();
}

fn exists(redis: &RedisServer, key: &str) -> bool {
    let n: u64 = redis::cmd("EXISTS").arg(key).query(&mut conn(redis)).unwrap();
    n == 1
}

fn pttl(redis: &RedisServer, key: &str) -> i64 {
    redis::cmd("PTTL").arg(key).query(&mut conn(redis)).unwrap()
}

/// When a key expires, ms since the Unix epoch (-1: never, -2: no key).
fn pexpiretime(redis: &RedisServer, key: &str) -> i64 {
    redis::cmd("PEXPIRETIME").arg(key).query(&mut conn(redis)).unwrap()
}

fn dbsize(redis: &RedisServer) -> u64 {
    redis::cmd("DBSIZE").query(&mut conn(redis)).unwrap()
}

/// A field of `INFO stats`.
fn info_stat(redis: &RedisServer, field: &str) -> u64 {
    let text = redis.cli(&["INFO", "stats"]).unwrap();
    let prefix = format!("{field}:");
    text.lines()
        .find_map(|l| l.trim().strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {field} in INFO stats"))
        .parse()
        .unwrap()
}

/// The commands Redis ran since the last reset (inside scripts too), by name, without the
/// ones used to measure.
fn commands(redis: &RedisServer) -> BTreeMap<String, u64> {
    let mut stats = redis.info_commandstats().unwrap();
    stats.retain(|name, _| name != "info" && name != "config" && !name.starts_with("config|"));
    stats
}

fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// Every key of the server by `SCAN`, and for each its name, its `DUMP` and its content read
/// by type, in one buffer.
fn dump_all(redis: &RedisServer) -> Vec<u8> {
    let mut c = conn(redis);
    let mut dump = Vec::new();
    for k in scan(redis, "*") {
        dump.extend_from_slice(k.as_bytes());
        let serialized: Option<Vec<u8>> = redis::cmd("DUMP").arg(&k).query(&mut c).unwrap();
        dump.extend_from_slice(&serialized.unwrap_or_default());
        let kind: String = redis::cmd("TYPE").arg(&k).query(&mut c).unwrap();
        match kind.as_str() {
            "string" => {
                let v: Option<Vec<u8>> = redis::cmd("GET").arg(&k).query(&mut c).unwrap();
                dump.extend_from_slice(&v.unwrap_or_default());
            }
            "zset" => {
                let members: Vec<(Vec<u8>, String)> = redis::cmd("ZRANGE")
                    .arg(&k)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .query(&mut c)
                    .unwrap();
                for (m, s) in members {
                    dump.extend_from_slice(&m);
                    dump.extend_from_slice(s.as_bytes());
                }
            }
            "none" => {}
            other => panic!("unexpected key type {other} for {k}"),
        }
    }
    dump
}

/// How many live session records (not pointers) in Redis hold `marker` in their bytes.
fn live_records_with(redis: &RedisServer, marker: &str) -> usize {
    let mut n = 0;
    for k in scan(redis, "*:s:*") {
        if let Some(v) = raw(redis, &k) {
            if v.first() != Some(&b'P') && contains(&v, marker.as_bytes()) {
                n += 1;
            }
        }
    }
    n
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

// ---------------------------------------------------------------------------------------------
// Tokens, byte by byte.

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn b64_encode(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn b64_decode(text: &str) -> Vec<u8> {
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in text.bytes() {
        let v = B64.iter().position(|&x| x == c).unwrap_or_else(|| panic!("not base64url: {c}"));
        bits = (bits << 6) | v as u32;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    out
}

/// Every 12-character window of a token's text, and every 8-byte window of its random part.
fn token_fragments(token: &str) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = token.as_bytes().windows(12).map(<[u8]>::to_vec).collect();
    let raw = b64_decode(token);
    out.push(raw.clone());
    out.extend(raw[5..37].windows(8).map(<[u8]>::to_vec));
    out
}

fn leaks_token(haystack: &[u8], token: &str) -> bool {
    token_fragments(token).iter().any(|f| contains(haystack, f))
}

// ---------------------------------------------------------------------------------------------
// Logs.

/// The events received so far.
fn drain(rx: &mut tokio::sync::broadcast::Receiver<SessionEvent>) -> Vec<SessionEvent> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        out.push(e);
    }
    out
}

// =============================================================================================
// Tokens

// 1. 10,000 tokens from the codec: 68 base64url characters, 51 bytes: the key id of the
// secret, the tag asked for, 32 random bytes, the check value; no random part repeats and every
// one of the 256 random bits is set in about half of the tokens.
#[test]
fn item_01_tokens_carry_256_random_bits_that_never_repeat() {
    let config = config();
    let codec = config.tokens();
    let key_id = TokenSecret::new(SECRET.to_vec()).unwrap().key_id();
    let tag = Tag::random().unwrap();
    let mut seen = HashSet::new();
    let mut ones = [0u32; 256];
    const N: u32 = 10_000;
    for _ in 0..N {
        let token = codec.generate(tag).unwrap();
        let text = token.expose();
        assert_eq!(text.len(), TOKEN_LEN);
        assert!(text.bytes().all(|b| B64.contains(&b)), "{text}");
        let raw = b64_decode(&text);
        assert_eq!(raw.len(), 51);
        assert_eq!(raw[0], key_id, "the key id");
        assert_eq!(Tag::from_hex(&hex(&raw[1..5])), Some(tag), "the tag");
        let random = &raw[5..37];
        assert!(seen.insert(random.to_vec()), "a random part repeated");
        for (i, bit) in ones.iter_mut().enumerate() {
            *bit += u32::from((random[i / 8] >> (i % 8)) & 1);
        }
        assert_eq!(codec.parse(&text).unwrap(), token);
    }
    for (i, n) in ones.iter().enumerate() {
        // Mean 5000, standard deviation 50: ten deviations either way.
        assert!((N * 45 / 100..=N * 55 / 100).contains(n), "bit {i} set {n} times in {N}");
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A store that passes every call through, except that the next create or rotation it is
/// told to divert writes under a key of the test's choosing (a forced token collision).
struct Colliding {
    inner: RedisStore,
    create_as: Mutex<Option<SessionKey>>,
    rotate_to: Mutex<Option<SessionKey>>,
    /// What the diverted calls answered.
    outcomes: Mutex<Vec<String>>,
}

#[async_trait]
impl Store for Colliding {
    async fn create(
        &self,
        key: &SessionKey,
        record: &Record,
        login: Option<&Login>,
        now_ms: u64,
        policy: &Policy,
    ) -> Result<CreateOutcome, StoreError> {
        let diverted = self.create_as.lock().unwrap().take();
        let out =
            self.inner.create(diverted.as_ref().unwrap_or(key), record, login, now_ms, policy);
        let out = out.await?;
        if diverted.is_some() {
            self.outcomes.lock().unwrap().push(format!("create: {out:?}"));
        }
        Ok(out)
    }

    async fn load(&self, key: &SessionKey, now: u64, p: &Policy) -> Result<Lookup, StoreError> {
        self.inner.load(key, now, p).await
    }

    async fn save(
        &self,
        key: &SessionKey,
        base: &Loaded,
        delta: &Delta,
        now_ms: u64,
        policy: &Policy,
    ) -> Result<SaveOutcome, StoreError> {
        self.inner.save(key, base, delta, now_ms, policy).await
    }

    async fn rotate(
        &self,
        rotation: &Rotation<'_>,
        now_ms: u64,
        policy: &Policy,
    ) -> Result<RotateOutcome, StoreError> {
        let diverted = self.rotate_to.lock().unwrap().take();
        let mut r = rotation.clone();
        if let Some(k) = diverted {
            r.new = k;
        }
        let out = self.inner.rotate(&r, now_ms, policy).await?;
        if diverted.is_some() {
            self.outcomes.lock().unwrap().push(format!("rotate: {out:?}"));
        }
        Ok(out)
    }

    async fn peek(
        &self,
        keys: &[SessionKey],
        now_ms: u64,
    ) -> Result<Vec<Option<sesame::Record>>, StoreError> {
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

// 2. A new session whose first token collides with a live session's key (forced by a store
// wrapper that diverts one create, then one rotation, onto the victim's key): Redis refuses the
// write (create-if-absent), the request gets a session under a second, fresh token, and the
// victim's record is byte for byte what it was; nobody joins the victim's session.
#[tokio::test]
async fn item_02_a_forced_collision_never_joins_or_overwrites_a_session() {
    let redis = RedisServer::start();
    let store = RedisStore::connect(&redis.url()).await.unwrap();
    let colliding = Arc::new(Colliding {
        inner: store.clone(),
        create_as: Mutex::new(None),
        rotate_to: Mutex::new(None),
        outcomes: Mutex::new(Vec::new()),
    });
    let a = start_on(colliding.clone(), store, config(), |l| l).await;
    let c = Client::new();
    let victim = a.login(&c, "alice").await;
    assert_eq!(a.post(&c, "/set/x/victim", Some(&victim)).await.status, 200);
    let victim_key = a.redis_key(&victim);
    let before = raw(&redis, &victim_key).unwrap();

    // An anonymous session created onto the victim's key.
    *colliding.create_as.lock().unwrap() = Some(a.session_key(&victim));
    let r = a.post(&c, "/set/x/intruder", None).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let fresh = r.cookie_token(COOKIE).unwrap();
    assert_ne!(fresh, victim);
    assert_eq!(a.get(&c, "/get", Some(&fresh)).await.body, json!({"x": "intruder", "user": null}));
    // A login created onto the victim's key (same user, same slot).
    *colliding.create_as.lock().unwrap() = Some(a.session_key(&victim));
    let second = a.login(&c, "alice").await;
    assert_ne!(second, victim);
    assert_eq!(a.get(&c, "/get", Some(&second)).await.body, json!({"x": null, "user": "alice"}));
    // A rotation (cycle_id) of alice's second session onto the victim's key.
    *colliding.rotate_to.lock().unwrap() = Some(a.session_key(&victim));
    let r = a.post(&c, "/cycle", Some(&second)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let rotated = r.cookie_token(COOKIE).unwrap();
    assert!(rotated != victim && rotated != second);
    assert_eq!(a.get(&c, "/get", Some(&rotated)).await.body, json!({"x": null, "user": "alice"}));
    // A login of an anonymous session (into alice's slot) onto the victim's key.
    let anon = a.anonymous(&c, "anon-cart").await;
    *colliding.rotate_to.lock().unwrap() = Some(a.session_key(&victim));
    let r = a.post(&c, "/login/alice", Some(&anon)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let elevated = r.cookie_token(COOKIE).unwrap();
    assert!(elevated != victim && elevated != anon);
    let body = a.get(&c, "/get", Some(&elevated)).await.body;
    assert_eq!(body, json!({"x": "anon-cart", "user": "alice"}));

    assert_eq!(
        *colliding.outcomes.lock().unwrap(),
        ["create: Exists", "create: Exists", "rotate: Collision", "rotate: Collision"],
        "every diverted write was refused"
    );
    assert_eq!(raw(&redis, &victim_key).unwrap(), before, "the victim's record is untouched");
    assert_eq!(
        a.get(&c, "/get", Some(&victim)).await.body,
        json!({"x": "victim", "user": "alice"})
    );
    let mut ids: Vec<String> =
        a.manager.list_user("alice").await.unwrap().into_iter().map(|s| s.id).collect();
    ids.sort();
    let mut expected = vec![a.id(&victim), a.id(&rotated), a.id(&elevated)];
    expected.sort();
    assert_eq!(ids, expected, "alice's index holds her three sessions, once each");
}

/// `token` with its raw byte `i` changed.
fn altered(token: &str, i: usize) -> String {
    let mut raw = b64_decode(token);
    raw[i] ^= 0x01;
    b64_encode(&raw)
}

// 3. Tokens of the wrong length, with characters outside base64url, with a wrong check value,
// another key id or made under another secret: no session, counted as invalid, and not one
// Redis command caused (the good token, for comparison, costs a GET and a PTTL).
#[tokio::test]
async fn item_03_malformed_tokens_get_no_session_and_cause_no_redis_command() {
    let redis = RedisServer::start();
    let a = start(&redis, config()).await;
    let c = Client::new();
    let good = a.anonymous(&c, "1").await;
    let other_secret = SessionConfig::builder().token_secret(vec![8u8; 32]).build().unwrap();
    let foreign = other_secret.tokens().generate(Tag::random().unwrap()).unwrap().expose();
    let bad = vec![
        good[..67].to_string(),
        format!("{good}A"),
        good[..20].to_string(),
        "A".repeat(4000),
        good.replacen(|ch: char| ch.is_ascii_alphanumeric(), "+", 1),
        good.replacen(|ch: char| ch.is_ascii_alphanumeric(), "/", 1),
        format!("{}=", &good[..67]),
        format!("{}.", &good[..67]),
        altered(&good, 50),
        altered(&good, 0),
        altered(&good, 20),
        foreign,
    ];
    redis.reset_stats().unwrap();
    let invalid = a.manager.stats().invalid_tokens;
    for t in &bad {
        let r = a.get(&c, "/get", Some(t)).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body, json!({"x": null, "user": null}), "{t:.30}");
        assert!(r.set_cookies().is_empty());
    }
    assert_eq!(commands(&redis), BTreeMap::new(), "no Redis command");
    assert_eq!(a.manager.stats().invalid_tokens - invalid, bad.len() as u64);
    let r = a.get(&c, "/get", Some(&good)).await;
    assert_eq!(r.body["x"], "1");
    assert_eq!(commands(&redis), counts(&[("get", 1)]));
}

// 4. A well-formed token with a valid check value that the server never issued (made with the
// app's own secret), and a token whose session was logged out: a read finds nothing, a write
// starts a session under a new server-made token, and nothing is ever stored under the
// presented token's key.
#[tokio::test]
async fn item_04_unknown_well_formed_tokens_are_never_adopted() {
    let redis = RedisServer::start();
    let a = start(&redis, config()).await;
    let c = Client::new();
    let forged = config().tokens().generate(Tag::random().unwrap()).unwrap().expose();
    let ended = a.anonymous(&c, "old").await;
    assert_eq!(a.post(&c, "/logout", Some(&ended)).await.status, 200);
    let unknown = a.manager.stats().unknown_tokens;
    for t in [&forged, &ended] {
        let r = a.get(&c, "/get", Some(t)).await;
        assert_eq!(r.body, json!({"x": null, "user": null}));
        let r = a.post(&c, "/set/x/mine", Some(t)).await;
        assert_eq!(r.status, 200);
        let issued = r.cookie_token(COOKIE).expect("a new session");
        assert_ne!(&issued, t, "the presented token is not adopted");
        assert_eq!(a.get(&c, "/get", Some(&issued)).await.body["x"], "mine");
        assert!(!exists(&redis, &a.redis_key(t)), "nothing under the presented token's key");
        assert_eq!(a.get(&c, "/get", Some(t)).await.body["x"], Value::Null);
    }
    assert_eq!(a.manager.stats().unknown_tokens - unknown, 6);
}

// 5. The check value covers the whole token: every single-bit change anywhere in its 51 bytes
// fails it; over HTTP, bytes appended (in the text or in the decoded bytes), a truncated or
// zeroed check value, and each check-value byte altered give no session and no Redis command.
#[tokio::test]
async fn item_05_check_value_covers_the_whole_token_and_rejects_appended_bytes() {
    let codec = config().tokens().clone();
    let t = codec.generate(Tag::random().unwrap()).unwrap().expose();
    for i in 0..51 * 8 {
        let mut raw = b64_decode(&t);
        raw[i / 8] ^= 1 << (i % 8);
        assert!(codec.parse(&b64_encode(&raw)).is_err(), "bit {i} changed and accepted");
    }

    let redis = RedisServer::start();
    let a = start(&redis, config()).await;
    let c = Client::new();
    let good = a.anonymous(&c, "1").await;
    let raw = b64_decode(&good);
    let mut bad = vec![
        format!("{good}A"),
        format!("{good}AAAA"),
        format!("{good}=="),
        b64_encode(&[raw.as_slice(), &[0u8]].concat()),
        b64_encode(&[raw.as_slice(), &raw[37..]].concat()),
        good[..60].to_string(),
        b64_encode(&[&raw[..37], &[0u8; 14][..]].concat()),
        b64_encode(&[&raw[..44], &[0u8; 7][..]].concat()),
    ];
    bad.extend((37..51).map(|i| altered(&good, i)));
    redis.reset_stats().unwrap();
    let invalid = a.manager.stats().invalid_tokens;
    for t in &bad {
        let r = a.get(&c, "/get", Some(t)).await;
        assert_eq!(r.body, json!({"x": null, "user": null}), "{t}");
    }
    assert_eq!(commands(&redis), BTreeMap::new(), "no Redis command");
    assert_eq!(a.manager.stats().invalid_tokens - invalid, bad.len() as u64);
    assert_eq!(a.get(&c, "/get", Some(&good)).await.body["x"], "1");
}

// 6. After anonymous sessions, a login, a rotation, a re-login and saves, a full SCAN with the
// DUMP and the content of every key finds none of the tokens handed out: not the text, not
// any 12-character window of it, not the raw bytes, not any 8-byte window of the random part.
// (The dump does hold the sessions: their ids and values are found.)
#[tokio::test]
async fn item_06_redis_holds_no_token_only_digests() {
    let redis = RedisServer::start();
    let a = start(&redis, config()).await;
    let c = Client::new();
    let mut tokens = Vec::new();
    let t0 = a.anonymous(&c, "first-value").await;
    tokens.push(t0.clone());
    let r = a.post(&c, "/login/alice", Some(&t0)).await;
    let t1 = r.cookie_token(COOKIE).unwrap();
    tokens.push(t1.clone());
    a.post(&c, "/set/y/second-value", Some(&t1)).await;
    let t2 = a.post(&c, "/cycle", Some(&t1)).await.cookie_token(COOKIE).unwrap();
    tokens.push(t2.clone());
    let t3 = a.post(&c, "/login/alice", Some(&t2)).await.cookie_token(COOKIE).unwrap();
    tokens.push(t3.clone());
    tokens.push(a.anonymous(&c, "third-value").await);
    tokens.push(a.login(&c, "bob").await);
    // The superseded t1 and t2, read within their grace window, are handed t3 again.
    assert_eq!(a.get(&c, "/get", Some(&t1)).await.cookie_token(COOKIE), Some(t3.clone()));
    let dump = dump_all(&redis);
    assert!(contains(&dump, a.id(&t3).as_bytes()), "the session's id is there");
    assert!(contains(&dump, b"second-value"), "its values are there");
    for t in &tokens {
        assert!(!leaks_token(&dump, t), "a token or a fragment of it is in Redis");
    }
}

// 7. No lookup by the raw token: a session record copied under every key name made from a
// well-formed token (with the prefix and tag, without, the token alone) is never read when that
// token is presented. The request reads one key (a miss: no keyspace hit at all), gets no
// session, and a write through it makes a new session and leaves the planted keys as they are.
#[tokio::test]
async fn item_07_no_fallback_lookup_by_the_raw_token() {
    let redis = RedisServer::start();
    let a = start(&redis, config()).await;
    let c = Client::new();
    let real = a.anonymous(&c, "planted").await;
    let record = raw(&redis, &a.redis_key(&real)).unwrap();
    let token = config().tokens().generate(Tag::random().unwrap()).unwrap().expose();
    let tag = a.session_key(&token).tag().to_hex();
    let random = b64_encode(&b64_decode(&token)[5..37]);
    let planted = [
        format!("sesame:{{{tag}}}:s:{token}"),
        format!("sesame:{{{tag}}}:s:{random}"),
        format!("sesame:s:{token}"),
        format!("sesame:{token}"),
        token.clone(),
    ];
    for k in &planted {
        set_raw(&redis, k, &record);
    }
    redis.reset_stats().unwrap();
    let r = a.get(&c, "/get", Some(&token)).await;
    assert_eq!(r.body, json!({"x": null, "user": null}));
    assert_eq!(commands(&redis), counts(&[("get", 1)]));
    assert_eq!(info_stat(&redis, "keyspace_hits"), 0, "no key that exists was read");
    let r = a.post(&c, "/set/y/mine", Some(&token)).await;
    let issued = r.cookie_token(COOKIE).unwrap();
    assert_ne!(issued, token);
    assert_eq!(a.get(&c, "/get", Some(&issued)).await.body["x"], Value::Null);
    for k in &planted {
        assert_eq!(raw(&redis, k).unwrap(), record, "{k} untouched");
    }
    // For comparison: the real token's lookup (one GET) is a hit.
    redis.reset_stats().unwrap();
    assert_eq!(a.get(&c, "/get", Some(&real)).await.body["x"], "planted");
    assert_eq!(info_stat(&redis, "keyspace_hits"), 1);
}

// 8. Across logins, rotations, invalid and conflicting tokens, a reused token, a limit, a
// corrupt record, a stale authentication and Redis going down, nothing logged at any level and
// no error body holds a token handed out, or any fragment of one; the log does name sessions
// by their public ids.
#[tokio::test]
async fn item_08_tokens_never_appear_in_logs_or_error_bodies() {
    let captured = Captured::default();
    let _guard = captured.install(tracing::Level::TRACE);
    let mut redis = RedisServer::start();
    let config =
        builder().grace_period(Duration::from_millis(200)).max_session_bytes(1024).build().unwrap();
    let a = start(&redis, config).await;
    let c = Client::new();
    let mut tokens = Vec::new();
    let mut bodies = Vec::new();
    let t0 = a.anonymous(&c, "1").await;
    let t1 = a.post(&c, "/login/alice", Some(&t0)).await.cookie_token(COOKIE).unwrap();
    let t2 = a.post(&c, "/cycle", Some(&t1)).await.cookie_token(COOKIE).unwrap();
    let other = a.login(&c, "bob").await;
    tokens.extend([t0.clone(), t1.clone(), t2.clone(), other.clone()]);
    // Invalid tokens (altered, truncated), and two different valid tokens at once.
    for t in [altered(&t2, 40), t2[..50].to_string()] {
        bodies.push(a.get(&c, "/get", Some(&t)).await.body);
    }
    let both = cookie(format!("{COOKIE}={t2}; {COOKIE}={other}"));
    bodies.push(send(&c, "GET", a.url("/get"), &[both]).await.body);
    // A limit, a stale authentication, a session needed but absent.
    let r = a.post(&c, "/fill/2/1000", Some(&t2)).await;
    assert_eq!(r.status, 413);
    bodies.push(r.body);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = a.get(&c, "/secret", Some(&t2)).await;
    assert_eq!(r.status, 401);
    bodies.push(r.body);
    let r = a.get(&c, "/sessions", None).await;
    assert_eq!(r.status, 401);
    bodies.push(r.body);
    // A reused token (t1, superseded by the cycle, grace long over).
    let r = a.get(&c, "/get", Some(&t1)).await;
    assert_eq!(r.body, json!({"x": null, "user": null}));
    assert_eq!(a.manager.stats().reused_tokens, 1);
    // A corrupt record.
    let bad = a.anonymous(&c, "2").await;
    tokens.push(bad.clone());
    set_raw(&redis, &a.redis_key(&bad), b"\x97garbage");
    let r = a.get(&c, "/get", Some(&bad)).await;
    assert_eq!(r.status, 500);
    bodies.push(r.body);
    // Redis down.
    redis.stop();
    let r = a.get(&c, "/get", Some(&other)).await;
    assert_eq!(r.status, 503);
    bodies.push(r.body);

    let log = captured.text();
    assert!(log.contains("session load failed") && log.contains(&a.id(&other)), "{log}");
    assert!(log.contains(&a.id(&t1)), "the reuse is logged with the id: {log}");
    for t in &tokens {
        assert!(!leaks_token(log.as_bytes(), t), "a token in the log: {log}");
        for b in &bodies {
            assert!(!leaks_token(b.to_string().as_bytes(), t), "a token in a body: {b}");
        }
    }
}

// 9. The token is read only from the configured transports: a cookie-only layer ignores the
// same valid token in `Authorization: Bearer`, in a custom header and in the query string; a
// bearer-only layer ignores it in the cookie. Ignored means no session and no Redis command.
#[tokio::test]
async fn item_09_token_read_only_from_the_configured_transport() {
    let redis = RedisServer::start();
    let a = start(&redis, config()).await;
    let bearer = start_with(&redis, config(), |l| {
        l.with_transport(TransportConfig::builder().cookie(false).bearer(true).build().unwrap())
    })
    .await;
    let c = Client::new();
    let t = a.login(&c, "alice").await;
    assert_eq!(a.get(&c, "/get", Some(&t)).await.body["user"], "alice");
    let auth = ("authorization", format!("Bearer {t}").into_bytes());
    assert_eq!(
        send(&c, "GET", bearer.url("/get"), std::slice::from_ref(&auth)).await.body["user"],
        "alice"
    );
    redis.reset_stats().unwrap();
    let ignored = [
        send(&c, "GET", a.url("/get"), std::slice::from_ref(&auth)).await,
        send(&c, "GET", a.url("/get"), &[("x-session-token", t.clone().into_bytes())]).await,
        send(&c, "GET", a.url(&format!("/get?session={t}&{COOKIE}={t}")), &[]).await,
        send(&c, "GET", bearer.url("/get"), &[session_cookie(&t)]).await,
        send(&c, "GET", bearer.url(&format!("/get?access_token={t}")), &[]).await,
    ];
    for (i, r) in ignored.iter().enumerate() {
        assert_eq!(r.status, 200);
        assert_eq!(r.body, json!({"x": null, "user": null}), "case {i}");
    }
    assert_eq!(commands(&redis), BTreeMap::new(), "no Redis command");
}

// =============================================================================================
// Cookies

// 10. The default cookie is Secure and HttpOnly: when a session is created, at login and when
// it is cleared at logout.
#[tokio::test]
async fn item_10_default_cookie_is_secure_and_http_only() {
    let redis = RedisServer::start();
    let a = start(&redis, config()).await;
    let c = Client::new();
    let r = a.post(&c, "/set/x/1", None).await;
    let t = r.cookie_token(COOKIE).unwrap();
    assert_eq!(
        r.set_cookie(COOKIE).unwrap(),
        format!("{COOKIE}={t}; Path=/; Secure; HttpOnly; SameSite=Lax")
    );
    let r = a.post(&c, "/login/alice", Some(&t)).await;
    let t1 = r.cookie_token(COOKIE).unwrap();
    assert_eq!(
        r.set_cookie(COOKIE).unwrap(),
        format!("{COOKIE}={t1}; Path=/; Secure; HttpOnly; SameSite=Lax")
    );
    let r = a.post(&c, "/logout", Some(&t1)).await;
    let clear = r.set_cookie(COOKIE).unwrap();
    assert!(clear.ends_with("; Path=/; Secure; HttpOnly; SameSite=Lax"), "{clear}");
}

// 11. SameSite is sent explicitly, once, on every Set-Cookie (hand out and clear), as
// configured: Lax by default, Strict, None.
#[tokio::test]
async fn item_11_same_site_is_always_explicit_and_configurable() {
    let redis = RedisServer::start();
    let c = Client::new();
    for (same_site, text) in [
        (None, "SameSite=Lax"),
        (Some(SameSite::Lax), "SameSite=Lax"),
        (Some(SameSite::Strict), "SameSite=Strict"),
        (Some(SameSite::None), "SameSite=None"),
    ] {
        let a = start_with(&redis, config(), |l| match same_site {
            None => l,
            Some(s) => l.with_cookie(CookieConfig::builder().same_site(s).build().unwrap()),
        })
        .await;
        let r = a.post(&c, "/set/x/1", None).await;
        let t = r.cookie_token(COOKIE).unwrap();
        let out = a.post(&c, "/logout", Some(&t)).await;
        for sc in [r.set_cookie(COOKIE).unwrap(), out.set_cookie(COOKIE).unwrap()] {
            assert_eq!(sc.matches("SameSite=").count(), 1, "{sc}");
            assert!(sc.contains(&format!("; {text}")), "{sc}");
        }
    }
}

// 12. The default name is `__Host-sesame`, with `Path=/` and no `Domain` on the wire; a
// `__Host-` cookie with a Domain (or another path, or without Secure), in any letter case, is
// refused when the configuration is built.
#[tokio::test]
async fn item_12_host_prefix_default_and_host_with_domain_is_a_startup_error() {
    let redis = RedisServer::start();
    let a = start(&redis, config()).await;
    let r = a.post(&Client::new(), "/set/x/1", None).await;
    let sc = r.set_cookie("__Host-sesame").expect("the default name");
    assert!(sc.contains("; Path=/;") && !sc.to_ascii_lowercase().contains("domain"), "{sc}");
    let b = CookieConfig::builder;
    for name in ["__Host-sesame", "__host-x", "__HOST-x"] {
        for bad in [
            b().name(name).domain("example.com").build(),
            b().name(name).path("/app").build(),
            b().name(name).secure(false).build(),
        ] {
            assert!(matches!(bad, Err(Error::Config(_))), "{name}");
        }
        assert!(b().name(name).build().is_ok(), "{name}");
    }
    assert!(b().name("plain").domain("example.com").build().is_ok());
}

// 13. Cookie names, paths and domains holding `;`, control characters or spaces (or, for
// names, any separator) are refused when the configuration is built.
#[test]
fn item_13_cookie_attributes_with_separators_or_controls_are_rejected_at_build() {
    let b = || CookieConfig::builder().name("s").secure(false);
    for name in ["a;b", "a b", "a\tb", "a\u{1}b", "a\u{7f}b", "a=b", "a,b", "a\nb", " a", ""] {
        assert!(matches!(b().name(name).build(), Err(Error::Config(_))), "name {name:?}");
    }
    for path in ["/a;b", "/a b", "/a\u{0}", "/a\r\nSet-Cookie: x=y", "/\u{7f}", "/; Domain=evil"] {
        assert!(matches!(b().path(path).build(), Err(Error::Config(_))), "path {path:?}");
    }
    for domain in ["a.com;x", "a.com x", "a.com\u{b}", "a.com\n", "", "evil.com; Secure"] {
        assert!(matches!(b().domain(domain).build(), Err(Error::Config(_))), "domain {domain:?}");
    }
    assert!(b().name("ok_name-1").path("/app/x").domain("example.com").build().is_ok());
}

// 14. Without `persistent`, no Set-Cookie carries Max-Age or Expires (a browser-session
// cookie); a persistent cookie carries Max-Age, the session's remaining life.
#[tokio::test]
async fn item_14_no_max_age_or_expires_unless_persistent() {
    let redis = RedisServer::start();
    let c = Client::new();
    let a = start(&redis, builder().idle_timeout(Duration::from_secs(600)).build().unwrap()).await;
    let r = a.post(&c, "/set/x/1", None).await;
    let t = r.cookie_token(COOKIE).unwrap();
    let r2 = a.post(&c, "/login/alice", Some(&t)).await;
    for sc in [r.set_cookie(COOKIE).unwrap(), r2.set_cookie(COOKIE).unwrap()] {
        let lower = sc.to_ascii_lowercase();
        assert!(!lower.contains("max-age") && !lower.contains("expires"), "{sc}");
    }
    let persistent = CookieConfig::builder().persistent(true).build().unwrap();
    let p = start_with(
        &redis,
        builder().idle_timeout(Duration::from_secs(600)).build().unwrap(),
        |l| l.with_cookie(persistent),
    )
    .await;
    let r = p.post(&c, "/set/x/1", None).await;
    let max_age = r.max_age(COOKIE).expect("Max-Age on a persistent cookie");
    assert!((590..=600).contains(&max_age), "{max_age}");
}

// 15. A session cookie whose name and value exceed 4096 bytes is not read (no session, not
// even counted as a token), without hiding a valid one after it; at exactly 4096 it is read
// (and rejected as malformed). The longest name the configuration allows still makes a
// Set-Cookie pair far below 4096 bytes, and a longer name is refused.
#[tokio::test]
async fn item_15_cookie_name_and_value_at_most_4096_bytes() {
    let redis = RedisServer::start();
    let a = start(&redis, config()).await;
    let c = Client::new();
    let good = a.anonymous(&c, "1").await;
    let at_limit = "A".repeat(4096 - COOKIE.len());
    let over = "A".repeat(4097 - COOKIE.len());
    let invalid = a.manager.stats().invalid_tokens;
    let r = a.get(&c, "/get", Some(&at_limit)).await;
    assert_eq!(r.body["x"], Value::Null);
    assert_eq!(a.manager.stats().invalid_tokens, invalid + 1, "4096 bytes: read, rejected");
    let r = a.get(&c, "/get", Some(&over)).await;
    assert_eq!(r.body["x"], Value::Null);
    assert_eq!(a.manager.stats().invalid_tokens, invalid + 1, "4097 bytes: not read at all");
    let r = send(&c, "GET", a.url("/get"), &[cookie(format!("{COOKIE}={over}; {COOKIE}={good}"))])
        .await;
    assert_eq!(r.body["x"], "1", "the valid cookie after it is still found");

    let longest = format!("__Host-{}", "n".repeat(121));
    assert!(CookieConfig::builder().name(format!("{longest}n")).build().is_err());
    let l = start_with(&redis, config(), |layer| {
        layer.with_cookie(CookieConfig::builder().name(longest.clone()).build().unwrap())
    })
    .await;
    let r = l.post(&c, "/set/x/1", None).await;
    let sc = r.set_cookie(&longest).unwrap();
    let pair = sc.split(';').next().unwrap();
    assert_eq!(pair.len(), 128 + 1 + TOKEN_LEN);
    assert!(sc.len() < 4096);
}

fn assert_no_store(r: &Resp, what: &str) {
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"), "{what}");
    assert_eq!(r.header("vary").as_deref(), Some("Cookie"), "{what}");
}

// 16. Every response that sets or clears the session cookie carries `Cache-Control: no-store`
// and `Vary: Cookie`: a new session, a login, a rotation, a grace-window resolution, a
// persistent cookie's refresh, a logout; also when the handler itself said "public".
#[tokio::test]
async fn item_16_responses_setting_the_cookie_are_not_cacheable() {
    let redis = RedisServer::start();
    let a = start(&redis, config()).await;
    let c = Client::new();
    let r = a.post(&c, "/set/x/1", None).await;
    assert_no_store(&r, "a new session");
    let t = r.cookie_token(COOKIE).unwrap();
    let r = a.post(&c, "/login/alice", Some(&t)).await;
    assert_no_store(&r, "a login");
    let t1 = r.cookie_token(COOKIE).unwrap();
    let r = a.post(&c, "/cycle", Some(&t1)).await;
    assert_no_store(&r, "a rotation");
    let t2 = r.cookie_token(COOKIE).unwrap();
    let r = a.get(&c, "/get", Some(&t1)).await;
    assert_eq!(r.cookie_token(COOKIE), Some(t2.clone()));
    assert_no_store(&r, "a superseded token resolved to its successor");
    let r = a.post(&c, "/logout", Some(&t2)).await;
    assert!(r.set_cookie(COOKIE).unwrap().contains("Max-Age=0"));
    assert_no_store(&r, "a logout");
    // A save refreshes a persistent cookie when it pushes the idle deadline (a touch is due).
    let touch_after = Duration::from_millis(20);
    let pushing = builder().touch_after(touch_after).build().unwrap();
    let p = start_with(&redis, pushing, |l| {
        l.with_cookie(CookieConfig::builder().persistent(true).build().unwrap())
    })
    .await;
    let t = p.anonymous(&c, "1").await;
    tokio::time::sleep(touch_after * 2).await;
    let r = p.post(&c, "/set/x/2", Some(&t)).await;
    assert_eq!(r.cookie_token(COOKIE), Some(t), "the persistent cookie sent again");
    assert_no_store(&r, "a persistent cookie's refresh");
    let r = a.post(&c, "/public/1", None).await;
    assert!(r.cookie_token(COOKIE).is_some());
    let all = |name: &str| -> Vec<String> {
        r.headers.get_all(name).iter().map(|v| v.to_str().unwrap().to_string()).collect()
    };
    assert_eq!(all("cache-control"), ["no-store"], "the handler's public is replaced");
    assert!(all("vary").contains(&"Cookie".to_string()), "{:?}", all("vary"));
}

// =============================================================================================
// Timeouts

// 17. The idle timeout runs from the server's last access: requests that present the cookie
// but never use the session do not extend it, nor does presenting the cookie after the
// deadline (the session is gone from Redis, a write gets a new token); a session that is read
// once its touch is due lives on from that read.
#[tokio::test]
async fn item_17_idle_timeout_from_server_side_last_access() {
    let redis = RedisServer::start();
    let config = builder()
        .idle_timeout(Duration::from_secs(3))
        .absolute_timeout(Duration::from_secs(60))
        .touch_after(Duration::from_secs(1))
        .build()
        .unwrap();
    let a = start(&redis, config).await;
    let c = Client::new();
    let start = Instant::now();
    let idle = a.anonymous(&c, "idle").await;
    let used = a.anonymous(&c, "used").await;
    let at = |ms: u64| tokio::time::sleep_until((start + Duration::from_millis(ms)).into());
    at(700).await;
    assert_eq!(a.get(&c, "/plain", Some(&idle)).await.status, 200);
    at(1400).await;
    assert_eq!(a.get(&c, "/plain", Some(&idle)).await.status, 200);
    at(1500).await;
    assert_eq!(a.get(&c, "/get", Some(&used)).await.body["x"], "used");
    assert!(pttl(&redis, &a.redis_key(&used)) > 2_500, "the read pushed the idle deadline");
    at(2100).await;
    assert_eq!(a.get(&c, "/plain", Some(&idle)).await.status, 200);
    at(3300).await;
    assert!(!exists(&redis, &a.redis_key(&idle)), "expired in Redis");
    let r = a.get(&c, "/get", Some(&idle)).await;
    assert_eq!(r.body["x"], Value::Null, "expired: the cookie does not bring it back");
    let r = a.post(&c, "/set/x/again", Some(&idle)).await;
    assert_ne!(r.cookie_token(COOKIE).unwrap(), idle, "a new session, under a new token");
    assert_eq!(a.get(&c, "/get", Some(&used)).await.body["x"], "used", "read 1.8 s ago");
}

// 18. The absolute timeout runs from creation: a session read and written every 300 ms (each
// pushing its idle deadline) ends at its absolute deadline all the same, and no write ever
// gives its key an expiry beyond that deadline.
#[tokio::test]
async fn item_18_absolute_timeout_is_never_extended_by_activity() {
    let redis = RedisServer::start();
    let config = builder()
        .idle_timeout(Duration::from_secs(2))
        .absolute_timeout(Duration::from_millis(2500))
        .touch_after(Duration::from_millis(200))
        .build()
        .unwrap();
    let a = start(&redis, config).await;
    let c = Client::new();
    let t = a.anonymous(&c, "0").await;
    let created = a.get(&c, "/created", Some(&t)).await.body.as_u64().unwrap();
    let deadline = created + 2500;
    let key = a.redis_key(&t);
    for i in 1..=6 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if sesame::now_ms() + 100 >= deadline {
            break;
        }
        assert_eq!(a.post(&c, &format!("/set/x/{i}"), Some(&t)).await.status, 200);
        assert_eq!(a.get(&c, "/get", Some(&t)).await.body["x"], i.to_string());
        let expires = pexpiretime(&redis, &key);
        assert!(expires > 0 && expires as u64 <= deadline + 50, "{expires} > {deadline}");
    }
    let left = deadline.saturating_sub(sesame::now_ms());
    tokio::time::sleep(Duration::from_millis(left + 100)).await;
    assert_eq!(a.get(&c, "/get", Some(&t)).await.body["x"], Value::Null, "absolute timeout");
    assert!(!exists(&redis, &key));
}

/// The first three numbers of a record (a MessagePack array): its version, creation time and
/// absolute deadline (stored as the session's life, negated, or as the time itself).
fn record_head(bytes: &[u8]) -> [u64; 3] {
    let mut pos = 1;
    let mut out = [0u64; 3];
    for i in 0..3 {
        let m = bytes[pos];
        pos += 1;
        let (n, signed) = match m {
            0x00..=0x7f => {
                out[i] = u64::from(m);
                continue;
            }
            0xcc..=0xcf => (1usize << (m - 0xcc), false),
            0xd0..=0xd3 if i == 2 => (1usize << (m - 0xd0), true),
            _ => panic!("not a record: marker {m:#x}"),
        };
        let raw = bytes[pos..pos + n].iter().fold(0u64, |a, b| (a << 8) | u64::from(*b));
        pos += n;
        out[i] = if signed {
            let shift = 64 - 8 * n as u32;
            let life = (((raw << shift) as i64) >> shift).checked_neg().unwrap();
            out[1] + u64::try_from(life).unwrap()
        } else {
            raw
        };
    }
    out
}

// 19. Every key sesame writes has a TTL; every session key's expiry is no later than its
// session's absolute deadline (a record's also no more than the idle timeout away); an
// index's is its latest session's plus a minute. And a record whose TTL was removed by hand
// (PERSIST), presented after its absolute deadline, is refused by the loader all the same.
#[tokio::test]
async fn item_19_every_key_has_a_bounded_ttl_and_the_loader_rechecks_expiry() {
    let redis = RedisServer::start();
    let idle = 60_000u64;
    let a = start(
        &redis,
        builder()
            .idle_timeout(Duration::from_millis(idle))
            .absolute_timeout(Duration::from_secs(120))
            .build()
            .unwrap(),
    )
    .await;
    let c = Client::new();
    let t0 = a.anonymous(&c, "1").await;
    let t1 = a.post(&c, "/login/alice", Some(&t0)).await.cookie_token(COOKIE).unwrap();
    let t2 = a.post(&c, "/cycle", Some(&t1)).await.cookie_token(COOKIE).unwrap();
    a.post(&c, "/set/y/2", Some(&t2)).await;
    let other = a.login(&c, "alice").await;
    assert_eq!(a.post(&c, "/sessions/revoke-others", Some(&other)).await.body, json!(1));
    a.login(&c, "bob").await;
    a.anonymous(&c, "3").await;
    let now = sesame::now_ms();
    let keys = scan(&redis, "*");
    assert!(keys.len() >= 8, "{keys:?}");
    let mut latest_absolute = 0;
    for k in keys.iter().filter(|k| k.contains(":s:")) {
        let v = raw(&redis, k).unwrap();
        if v[0] != b'P' {
            latest_absolute = latest_absolute.max(record_head(&v)[2]);
        }
    }
    for k in &keys {
        let ttl = pttl(&redis, k);
        assert!(ttl > 0, "{k} has no TTL ({ttl})");
        let expires = pexpiretime(&redis, k) as u64;
        if k.contains(":s:") {
            let v = raw(&redis, k).unwrap();
            if v[0] == b'P' {
                assert!(expires <= latest_absolute + 50, "pointer {k}");
            } else {
                let absolute = record_head(&v)[2];
                assert!(expires <= absolute + 50, "record {k} outlives its absolute deadline");
                assert!(ttl as u64 <= idle, "record {k}: TTL {ttl} over the idle timeout");
            }
        } else if k.contains(":u:") {
            let top: Vec<(String, u64)> = redis::cmd("ZRANGE")
                .arg(k)
                .arg(-1)
                .arg(-1)
                .arg("WITHSCORES")
                .query(&mut conn(&redis))
                .unwrap();
            assert!(expires <= top[0].1 + 60_000 + 50, "index {k}");
        } else {
            assert!(k.contains(":e:"), "an unknown key {k}");
            assert!(expires <= now + 24 * 3600 * 1000 + 1000, "epoch {k}");
        }
    }

    // A record without TTL past its absolute deadline.
    let short = start(
        &redis,
        builder()
            .idle_timeout(Duration::from_secs(1))
            .absolute_timeout(Duration::from_millis(1200))
            .build()
            .unwrap(),
    )
    .await;
    let t = short.anonymous(&c, "kept-by-hand").await;
    let key = short.redis_key(&t);
    let _: i64 = redis::cmd("PERSIST").arg(&key).query(&mut conn(&redis)).unwrap();
    assert_eq!(pttl(&redis, &key), -1);
    tokio::time::sleep(Duration::from_millis(1400)).await;
    assert!(exists(&redis, &key), "the record is still there, without TTL");
    let unknown = short.manager.stats().unknown_tokens;
    let r = short.get(&c, "/get", Some(&t)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["x"], Value::Null, "refused: past its absolute deadline");
    assert_eq!(short.manager.stats().unknown_tokens, unknown + 1);
    let r = short.post(&c, "/set/x/again", Some(&t)).await;
    assert_ne!(r.cookie_token(COOKIE).unwrap(), t);
}

// 20. With `renew_after`, a request once that much time has passed since the last rotation
// rotates the token (data kept); the old token still reaches the session, and is handed the
// new one, inside the grace window only; after it, it gets no session.
#[tokio::test]
async fn item_20_renewal_timer_rotates_with_a_short_grace_window() {
    let redis = RedisServer::start();
    let config = builder()
        .renew_after(Duration::from_secs(1))
        .grace_period(Duration::from_millis(500))
        .build()
        .unwrap();
    let a = start(&redis, config).await;
    let c = Client::new();
    let t1 = a.login(&c, "alice").await;
    a.post(&c, "/set/x/kept", Some(&t1)).await;
    let r = a.get(&c, "/get", Some(&t1)).await;
    assert!(r.set_cookies().is_empty(), "not due yet");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = a.get(&c, "/get", Some(&t1)).await;
    assert_eq!(r.body, json!({"x": "kept", "user": "alice"}));
    let t2 = r.cookie_token(COOKIE).expect("renewed by the timer");
    assert_ne!(t2, t1);
    let r = a.get(&c, "/get", Some(&t2)).await;
    assert_eq!(r.body["x"], "kept");
    assert!(r.set_cookies().is_empty(), "the new token is not due");
    let r = a.get(&c, "/get", Some(&t1)).await;
    assert_eq!(r.body["x"], "kept", "inside the grace window");
    assert_eq!(r.cookie_token(COOKIE), Some(t2.clone()), "and handed the new token");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let r = a.get(&c, "/get", Some(&t1)).await;
    assert_eq!(r.body, json!({"x": null, "user": null}), "after the grace window");
}

// =============================================================================================
// Fixation and renewal

// 21. A login from an anonymous session, a re-login and a privilege change (`cycle_id`) each
// hand out a new token and keep the data. The anonymous token is dead at once (without
// harming the new session); the superseded ones are dead once the grace window has passed.
#[tokio::test]
async fn item_21_login_relogin_and_privilege_change_rotate_and_keep_data() {
    let redis = RedisServer::start();
    let a =
        start(&redis, builder().grace_period(Duration::from_millis(300)).build().unwrap()).await;
    let c = Client::new();
    let t0 = a.anonymous(&c, "cart").await;
    let t1 = a.post(&c, "/login/alice", Some(&t0)).await.cookie_token(COOKIE).unwrap();
    assert_ne!(t1, t0);
    assert_eq!(a.get(&c, "/get", Some(&t1)).await.body, json!({"x": "cart", "user": "alice"}));
    let r = a.get(&c, "/get", Some(&t0)).await;
    assert_eq!(r.body, json!({"x": null, "user": null}), "the anonymous token is dead at once");
    assert!(r.set_cookies().is_empty());
    assert_eq!(a.get(&c, "/get", Some(&t1)).await.body["user"], "alice", "not taken for reuse");
    let t2 = a.post(&c, "/login/alice", Some(&t1)).await.cookie_token(COOKIE).unwrap();
    assert!(t2 != t1 && t2 != t0);
    assert_eq!(a.get(&c, "/get", Some(&t2)).await.body, json!({"x": "cart", "user": "alice"}));
    let t3 = a.post(&c, "/cycle", Some(&t2)).await.cookie_token(COOKIE).unwrap();
    assert!(t3 != t2 && t3 != t1);
    assert_eq!(a.get(&c, "/get", Some(&t3)).await.body, json!({"x": "cart", "user": "alice"}));
    tokio::time::sleep(Duration::from_millis(400)).await;
    for old in [&t2, &t1, &t0] {
        let r = a.get(&c, "/get", Some(old)).await;
        assert_eq!(r.body, json!({"x": null, "user": null}));
        assert!(r.cookie_token(COOKIE).is_none());
    }
}

// 22. Changes made after `login` or `cycle_id` in the same request are saved, and the rotation
// happens too: from an anonymous session, on a re-login, on `cycle_id`, and on a login as
// another principal.
#[tokio::test]
async fn item_22_changes_after_a_rotation_in_the_same_request_are_kept() {
    let redis = RedisServer::start();
    let a = start(&redis, config()).await;
    let c = Client::new();
    let mut t = a.anonymous(&c, "anon").await;
    for (path, user, value) in [
        ("/login-then-set/bob/k/v1", "bob", "v1"),
        ("/cycle-then-set/k/v2", "bob", "v2"),
        ("/login-then-set/bob/k/v3", "bob", "v3"),
        ("/login-then-set/carol/k/v4", "carol", "v4"),
    ] {
        let r = a.post(&c, path, Some(&t)).await;
        assert_eq!(r.status, 200, "{path}: {:?}", r.body);
        let next = r.cookie_token(COOKIE).expect("the rotation happened");
        assert_ne!(next, t, "{path}");
        assert_eq!(a.get(&c, "/read/k", Some(&next)).await.body, json!(value), "{path}");
        assert_eq!(a.get(&c, "/get", Some(&next)).await.body["user"], user, "{path}");
        t = next;
    }
}

/// Spawns a request with `token` in the cookie.
fn spawn_send(
    c: &Client,
    method: &'static str,
    url: String,
    token: &str,
) -> tokio::task::JoinHandle<Resp> {
    let (c, token) = (c.clone(), token.to_string());
    tokio::spawn(async move { send(&c, method, url, &[session_cookie(&token)]).await })
}

async fn join_all(tasks: Vec<tokio::task::JoinHandle<Resp>>) -> Vec<Resp> {
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

// 23. Eight concurrent rotations (`cycle_id`, or re-logins as the same user) presenting one
// token, spread over two instances, round after round, and eight concurrent reads of a session
// whose renewal timer is due: every one answers 200 and hands out a token, and it is the same
// new token for all of them; the user has one session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_23_concurrent_rotations_of_one_token_make_one_new_token() {
    let redis = RedisServer::start();
    let renewing = || builder().renew_after(Duration::from_secs(1)).build().unwrap();
    let apps = [start(&redis, renewing()).await, start(&redis, renewing()).await];
    let c = Client::new();
    for round in 0..21 {
        let user = format!("u{round}");
        let t0 = apps[round % 2].login(&c, &user).await;
        if round == 20 {
            tokio::time::sleep(Duration::from_millis(1100)).await;
        }
        let path = match round % 3 {
            _ if round == 20 => "/get".to_string(),
            0 => format!("/login/{user}"),
            _ => "/cycle".to_string(),
        };
        let method = if round == 20 { "GET" } else { "POST" };
        let tasks = (0..8).map(|i| spawn_send(&c, method, apps[i % 2].url(&path), &t0)).collect();
        let mut handed = BTreeSet::new();
        for r in join_all(tasks).await {
            assert_eq!(r.status, 200, "round {round}: {:?}", r.body);
            handed.insert(r.cookie_token(COOKIE).expect("a token"));
        }
        assert_eq!(handed.len(), 1, "round {round}: {handed:?}");
        let t1 = handed.pop_first().unwrap();
        assert_ne!(t1, t0);
        assert_eq!(apps[0].get(&c, "/get", Some(&t1)).await.body["user"], user.as_str());
        assert_eq!(apps[0].manager.list_user(&user).await.unwrap().len(), 1, "round {round}");
    }
}

// 23 (logins of an anonymous session). Concurrent logins presenting one anonymous session's
// token (a double-submitted login form) are the one case where one old token yields several
// new ones, by design: a login never hands an anonymous token's holder a session another
// request logged in (that token may have been planted: session fixation). So each login gets
// its own session of the user; exactly one carries the anonymous data; the anonymous token is
// dead; nothing is shared between the new tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_23_concurrent_logins_of_one_anonymous_session_never_share_its_successor() {
    let redis = RedisServer::start();
    let apps = [start(&redis, config()).await, start(&redis, config()).await];
    let c = Client::new();
    for round in 0..10 {
        let user = format!("u{round}");
        let marker = format!("mark{round:03}z");
        let t0 = apps[0].anonymous(&c, &marker).await;
        let path = format!("/login/{user}");
        let tasks = (0..4).map(|i| spawn_send(&c, "POST", apps[i % 2].url(&path), &t0)).collect();
        let mut handed = BTreeSet::new();
        for r in join_all(tasks).await {
            assert_eq!(r.status, 200, "round {round}: {:?}", r.body);
            handed.insert(r.cookie_token(COOKIE).expect("a token"));
        }
        assert_eq!(handed.len(), 4, "round {round}: one token per login, never a shared one");
        let mut carrying = 0;
        for t in &handed {
            let body = apps[1].get(&c, "/get", Some(t)).await.body;
            assert_eq!(body["user"], json!(user), "round {round}: every token is logged in");
            carrying += usize::from(body["x"] == json!(marker));
        }
        assert_eq!(carrying, 1, "round {round}: exactly one session carries the anonymous data");
        assert_eq!(apps[0].manager.list_user(&user).await.unwrap().len(), 4, "round {round}");
        assert_eq!(apps[0].get(&c, "/get", Some(&t0)).await.body["x"], Value::Null);
    }
}

// =============================================================================================
// Termination and multiple sessions

// 24. After a logout on one instance, the old token gets no session on either instance, for
// reads and writes (a write starts a new session under a new token, without the old data);
// Redis holds neither the session nor the user's index. The same for a rotated lineage,
// logged out through its newest or its oldest token: none of its tokens gets the session.
#[tokio::test]
async fn item_24_after_logout_the_old_token_gets_no_session_anywhere() {
    let redis = RedisServer::start();
    let (a, b) = (start(&redis, config()).await, start(&redis, config()).await);
    let c = Client::new();
    let t = a.login(&c, "alice").await;
    a.post(&c, "/set/x/private-24", Some(&t)).await;
    let index = a.store.index_key(a.manager.config().naming().user("alice"));
    assert!(exists(&redis, &index));
    assert_eq!(b.post(&c, "/logout", Some(&t)).await.status, 200);
    assert_eq!(b.manager.stats().destroyed, 1);
    for app in [&a, &b] {
        assert_eq!(app.get(&c, "/get", Some(&t)).await.body, json!({"x": null, "user": null}));
        assert_eq!(app.get(&c, "/sessions", Some(&t)).await.status, 401);
        let r = app.post(&c, "/set/y/1", Some(&t)).await;
        let fresh = r.cookie_token(COOKIE).unwrap();
        assert_ne!(fresh, t);
        assert_eq!(app.get(&c, "/get", Some(&fresh)).await.body, json!({"x": null, "user": null}));
    }
    assert!(!exists(&redis, &a.redis_key(&t)));
    assert!(!exists(&redis, &index));
    assert_eq!(live_records_with(&redis, "private-24"), 0);
    // A lineage: the logout ends it whichever of its tokens it presents, and afterwards no
    // token of it, superseded ones within their grace window included, gets the session.
    for logout_with_old in [false, true] {
        let t1 = a.login(&c, "alice").await;
        a.post(&c, "/set/x/lineage-24", Some(&t1)).await;
        let t2 = b.post(&c, "/cycle", Some(&t1)).await.cookie_token(COOKIE).unwrap();
        let t3 = a.post(&c, "/cycle", Some(&t2)).await.cookie_token(COOKIE).unwrap();
        let out = if logout_with_old { &t1 } else { &t3 };
        assert_eq!(b.post(&c, "/logout", Some(out)).await.status, 200);
        for t in [&t1, &t2, &t3] {
            for app in [&a, &b] {
                let r = app.get(&c, "/get", Some(t)).await;
                assert_eq!(r.body, json!({"x": null, "user": null}), "old {logout_with_old}");
                assert!(r.cookie_token(COOKIE).is_none());
            }
        }
        assert_eq!(live_records_with(&redis, "lineage-24"), 0);
    }
}

// 25. Logout clears the cookie under the same name and path it was set with, with `Max-Age=0`
// (and an Expires in the past), with the default cookie and with a custom name and path.
#[tokio::test]
async fn item_25_logout_clears_the_cookie_with_max_age_0() {
    let redis = RedisServer::start();
    let c = Client::new();
    let a = start(&redis, config()).await;
    let t = a.login(&c, "alice").await;
    let r = a.post(&c, "/logout", Some(&t)).await;
    assert_eq!(
        r.set_cookie(COOKIE).unwrap(),
        format!(
            "{COOKIE}=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/; Secure; \
             HttpOnly; SameSite=Lax"
        )
    );
    let custom = CookieConfig::builder()
        .name("__Secure-app")
        .path("/app")
        .same_site(SameSite::Strict)
        .build()
        .unwrap();
    let store = RedisStore::connect(&redis.url()).await.unwrap();
    let manager = SessionManager::new(Arc::new(store), config());
    let router = Router::new()
        .nest("/app", app_routes())
        .layer(SessionLayer::new(manager).with_cookie(custom));
    let addr = serve(router).await;
    let r = send(&c, "POST", format!("http://{addr}/app/login/bob"), &[]).await;
    let set = r.set_cookie("__Secure-app").unwrap();
    let t = r.cookie_token("__Secure-app").unwrap();
    assert_eq!(set, format!("__Secure-app={t}; Path=/app; Secure; HttpOnly; SameSite=Strict"));
    let r = send(
        &c,
        "POST",
        format!("http://{addr}/app/logout"),
        &[cookie(format!("__Secure-app={t}"))],
    )
    .await;
    assert_eq!(
        r.set_cookie("__Secure-app").unwrap(),
        "__Secure-app=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/app; Secure; \
         HttpOnly; SameSite=Strict"
    );
}

// 26. A logout on instance A is seen at once by instance B (no cache to outlive it): round
// after round, every request on B that starts after A answered gets no session, including
// five sent at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_26_logout_on_one_instance_is_seen_at_once_by_another() {
    let redis = RedisServer::start();
    let (a, b) = (start(&redis, config()).await, start(&redis, config()).await);
    let c = Client::new();
    for round in 0..20 {
        let t = b.login(&c, &format!("u{round}")).await;
        assert_eq!(b.get(&c, "/get", Some(&t)).await.body["user"], format!("u{round}"));
        assert_eq!(a.post(&c, "/logout", Some(&t)).await.status, 200);
        let tasks = (0..5).map(|_| spawn_send(&c, "GET", b.url("/get"), &t)).collect();
        for r in join_all(tasks).await {
            assert_eq!(r.body, json!({"x": null, "user": null}), "round {round}");
        }
    }
}

// 27. A user's sessions can be listed (by public id), one revoked, all but the current one
// revoked, and all revoked; another user's session cannot be revoked through this user's.
#[tokio::test]
async fn item_27_list_revoke_one_revoke_others_revoke_all() {
    let redis = RedisServer::start();
    let (a, b) = (start(&redis, config()).await, start(&redis, config()).await);
    let c = Client::new();
    let t: Vec<String> = vec![
        a.login(&c, "dana").await,
        b.login(&c, "dana").await,
        a.login(&c, "dana").await,
        b.login(&c, "dana").await,
    ];
    let eve = a.login(&c, "eve").await;
    let ids = |r: &Resp| -> BTreeSet<String> {
        serde_json::from_value::<Vec<String>>(r.body.clone()).unwrap().into_iter().collect()
    };
    let all: BTreeSet<String> = t.iter().map(|x| a.id(x)).collect();
    assert_eq!(ids(&b.get(&c, "/sessions", Some(&t[0])).await), all);
    // Revoke one.
    let r = a.post(&c, &format!("/sessions/revoke/{}", a.id(&t[1])), Some(&t[0])).await;
    assert_eq!(r.body, json!(true));
    assert_eq!(b.get(&c, "/get", Some(&t[1])).await.body["user"], Value::Null);
    assert_eq!(a.get(&c, "/sessions", Some(&t[0])).await.body.as_array().unwrap().len(), 3);
    let r = a.post(&c, &format!("/sessions/revoke/{}", a.id(&eve)), Some(&t[0])).await;
    assert_eq!(r.body, json!(false), "not dana's");
    assert_eq!(a.get(&c, "/get", Some(&eve)).await.body["user"], "eve");
    // Revoke all but the current one.
    assert_eq!(b.post(&c, "/sessions/revoke-others", Some(&t[0])).await.body, json!(2));
    for gone in &t[1..] {
        assert_eq!(a.get(&c, "/get", Some(gone)).await.body["user"], Value::Null);
    }
    assert_eq!(ids(&a.get(&c, "/sessions", Some(&t[0])).await), BTreeSet::from([a.id(&t[0])]));
    // Revoke all.
    let t5 = b.login(&c, "dana").await;
    assert_eq!(a.manager.revoke_user("dana").await.unwrap(), 2);
    for gone in [&t[0], &t5] {
        assert_eq!(b.get(&c, "/get", Some(gone)).await.body["user"], Value::Null);
    }
    assert!(a.manager.list_user("dana").await.unwrap().is_empty());
    assert_eq!(a.get(&c, "/get", Some(&eve)).await.body["user"], "eve");
}

// 28. Disabling a user (`revoke_user`) ends every one of the user's sessions, made on either
// instance; their tokens get no session anywhere (a write through one starts an anonymous
// session); Redis holds none of them, nor the index; another user is untouched.
#[tokio::test]
async fn item_28_disabling_a_user_ends_all_their_sessions() {
    let redis = RedisServer::start();
    let (a, b) = (start(&redis, config()).await, start(&redis, config()).await);
    let c = Client::new();
    let frank =
        [a.login(&c, "frank").await, b.login(&c, "frank").await, a.login(&c, "frank").await];
    for t in &frank {
        a.post(&c, "/set/x/frank-data", Some(t)).await;
    }
    let gina = b.login(&c, "gina").await;
    let mut events = a.manager.events();
    assert_eq!(a.manager.revoke_user("frank").await.unwrap(), 3);
    assert_eq!(
        drain(&mut events),
        [SessionEvent::UserRevoked { principal: "frank".into(), count: 3 }]
    );
    for t in &frank {
        for app in [&a, &b] {
            assert_eq!(app.get(&c, "/get", Some(t)).await.body, json!({"x": null, "user": null}));
        }
        let r = b.post(&c, "/set/y/1", Some(t)).await;
        let fresh = r.cookie_token(COOKIE).unwrap();
        assert_eq!(b.get(&c, "/get", Some(&fresh)).await.body["user"], Value::Null);
        assert!(!exists(&redis, &a.redis_key(t)));
    }
    assert!(!exists(&redis, &a.store.index_key(a.manager.config().naming().user("frank"))));
    assert_eq!(live_records_with(&redis, "frank-data"), 0);
    assert_eq!(a.get(&c, "/get", Some(&gina)).await.body["user"], "gina");
}

// 29. The per-user cap, with both policies: at the cap, `EvictOldest` ends the least recently
// active session (not merely the oldest) to admit a new login; `Refuse` answers 413, hands out
// nothing and writes nothing, for a new login and for a login of an anonymous session (which
// is kept as it was), and still lets existing sessions re-login.
#[tokio::test]
async fn item_29_per_user_cap_evicts_the_oldest_or_refuses() {
    let redis = RedisServer::start();
    let c = Client::new();
    // Activity moves a session's idle deadline once touch_after has passed since the last push.
    let touch_after = Duration::from_millis(20);
    let config = builder().max_sessions_per_user(2).touch_after(touch_after).build().unwrap();
    let evict = start(&redis, config).await;
    let t1 = evict.login(&c, "ivan").await;
    let t2 = evict.login(&c, "ivan").await;
    tokio::time::sleep(touch_after * 2).await;
    // t1, the oldest, is used after t2 was made: t2 is now the least recently active.
    assert_eq!(evict.post(&c, "/set/x/recent", Some(&t1)).await.status, 200);
    let t3 = evict.login(&c, "ivan").await;
    assert_eq!(evict.get(&c, "/get", Some(&t2)).await.body["user"], Value::Null, "evicted");
    for t in [&t1, &t3] {
        assert_eq!(evict.get(&c, "/get", Some(t)).await.body["user"], "ivan");
    }
    let listed: BTreeSet<String> =
        evict.manager.list_user("ivan").await.unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(listed, BTreeSet::from([evict.id(&t1), evict.id(&t3)]));
    assert!(!exists(&redis, &evict.redis_key(&t2)), "gone from Redis");

    let refuse = start(
        &redis,
        builder().max_sessions_per_user(2).cap_policy(CapPolicy::Refuse).build().unwrap(),
    )
    .await;
    let j1 = refuse.login(&c, "jack").await;
    let j2 = refuse.login(&c, "jack").await;
    let keys = dbsize(&redis);
    let r = refuse.post(&c, "/login/jack", None).await;
    assert_eq!(r.status, 413, "{:?}", r.body);
    assert!(r.set_cookies().is_empty());
    assert_eq!(dbsize(&redis), keys, "nothing written");
    for t in [&j1, &j2] {
        assert_eq!(refuse.get(&c, "/get", Some(t)).await.body["user"], "jack");
    }
    // A login of an anonymous session at the cap: refused, and the anonymous session is kept
    // as it was.
    let anon = refuse.anonymous(&c, "cart").await;
    let before = raw(&redis, &refuse.redis_key(&anon));
    let r = refuse.post(&c, "/login/jack", Some(&anon)).await;
    assert_eq!(r.status, 413, "{:?}", r.body);
    assert!(r.set_cookies().is_empty());
    assert_eq!(raw(&redis, &refuse.redis_key(&anon)), before);
    assert_eq!(refuse.get(&c, "/get", Some(&anon)).await.body, json!({"x": "cart", "user": null}));
    let r = refuse.post(&c, "/login/jack", Some(&j1)).await;
    assert_eq!(r.status, 200, "a re-login is no new session: {:?}", r.body);
    assert_eq!(refuse.manager.list_user("jack").await.unwrap().len(), 2);
}

// =============================================================================================
// Re-authentication

// 30. The session records when its principal authenticated; `require_recent_auth` answers
// 401 without a login, passes right after one, fails (401, "log in again") once the login is
// older than allowed, and passes again after a fresh login.
#[tokio::test]
async fn item_30_require_recent_auth_fails_when_stale() {
    let redis = RedisServer::start();
    let a = start(&redis, config()).await;
    let c = Client::new();
    let anon = a.anonymous(&c, "1").await;
    let r = a.get(&c, "/secret", Some(&anon)).await;
    assert_eq!(
        (r.status.as_u16(), r.body.clone()),
        (401, json!({"error": Error::NotLoggedIn.to_string()}))
    );
    let before = sesame::now_ms();
    let t = a.login(&c, "kim").await;
    let after = sesame::now_ms();
    let auth = a.manager.list_user("kim").await.unwrap()[0].auth_ms.unwrap();
    assert!((before..=after).contains(&auth), "the authentication time is recorded");
    assert_eq!(a.get(&c, "/secret", Some(&t)).await.body, json!("secret"));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = a.get(&c, "/secret", Some(&t)).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.body, json!({"error": Error::StaleAuthentication.to_string()}));
    let t = a.post(&c, "/login/kim", Some(&t)).await.cookie_token(COOKIE).unwrap();
    assert_eq!(a.get(&c, "/secret", Some(&t)).await.body, json!("secret"));
}

// =============================================================================================
// Stored data

/// A MessagePack record `[1, created, absolute, false, false, {name: value}, 0]`.
fn record_bytes(created: u64, absolute: u64, name: &str, value: &[u8]) -> Vec<u8> {
    let mut out = vec![0x97, 0x01, 0xcf];
    out.extend_from_slice(&created.to_be_bytes());
    out.push(0xcf);
    out.extend_from_slice(&absolute.to_be_bytes());
    out.extend_from_slice(&[0xc2, 0xc2, 0x81, 0xa0 | name.len() as u8]);
    out.extend_from_slice(name.as_bytes());
    out.push(0xd9);
    out.push(value.len() as u8);
    out.extend_from_slice(value);
    out.push(0x00);
    out
}

// 32. Hostile bytes under a session key (not MessagePack, truncated, a length of four
// billion, impossible deadlines, damaged pointers, a pickle, a Java stream, JSON, a hash
// instead of a string) answer a
// clear 500 to reads and writes, hand out nothing, overwrite nothing, and the server goes on
// serving; a well-formed record whose value is not what its header says is a 400.
#[tokio::test]
async fn item_32_hostile_bytes_in_redis_give_an_error_never_a_panic() {
    let redis = RedisServer::start();
    let a = start(&redis, config()).await;
    let c = Client::new();
    let healthy = a.anonymous(&c, "fine").await;
    let sample = raw(&redis, &a.redis_key(&healthy)).unwrap();
    let now = sesame::now_ms();
    let mut pointer = b"PR".to_vec();
    pointer.extend_from_slice(&now.to_be_bytes());
    pointer.extend_from_slice(b"zzzzzzzz");
    pointer.extend_from_slice(&[b'A'; 22]);
    let hostile: Vec<Vec<u8>> = vec![
        b"\x01garbage\xff".to_vec(),
        sample[..sample.len() / 2].to_vec(),
        b"\xdd\xff\xff\xff\xff".to_vec(),
        record_bytes(now, now + 400 * 24 * 3600 * 1000, "x", b"\x01\"v\""),
        record_bytes(now + 10_000, now, "x", b"\x01\"v\""),
        b"P".to_vec(),
        [b"PZ".as_slice(), &[0u8; 40]].concat(),
        pointer,
        b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x08builtins".to_vec(),
        b"\xac\xed\x00\x05sr\x00\x11java.util.HashMap".to_vec(),
        br#"{"user":"admin","x":"v"}"#.to_vec(),
    ];
    for (i, bytes) in hostile.iter().enumerate() {
        let t = a.anonymous(&c, "victim").await;
        let key = a.redis_key(&t);
        set_raw(&redis, &key, bytes);
        for (method, path) in [("GET", "/get"), ("POST", "/set/y/2"), ("POST", "/logout")] {
            let r = send(&c, method, a.url(path), &[session_cookie(&t)]).await;
            assert_eq!(r.status, 500, "case {i}, {path}: {:?}", r.body);
            assert_eq!(r.body, json!({"error": "session error"}), "case {i}");
            assert!(r.cookie_token(COOKIE).is_none(), "case {i}");
        }
        assert_eq!(raw(&redis, &key).unwrap(), *bytes, "case {i}: overwritten");
        assert_eq!(a.get(&c, "/get", Some(&healthy)).await.body["x"], "fine", "case {i}");
    }
    // A key of another type (a hash) where a session's string should be.
    let t = a.anonymous(&c, "victim").await;
    let key = a.redis_key(&t);
    let _: () = redis::cmd("DEL").arg(&key).query(&mut conn(&redis)).unwrap();
    let _: () =
        redis::cmd("HSET").arg(&key).arg("user").arg("admin").query(&mut conn(&redis)).unwrap();
    for (method, path) in [("GET", "/get"), ("POST", "/set/y/2"), ("POST", "/logout")] {
        let r = send(&c, method, a.url(path), &[session_cookie(&t)]).await;
        assert_eq!(r.status, 500, "a hash, {path}: {:?}", r.body);
        assert_eq!(r.body, json!({"error": "session error"}));
    }
    let hash: BTreeMap<String, String> =
        redis::cmd("HGETALL").arg(&key).query(&mut conn(&redis)).unwrap();
    assert_eq!(hash, BTreeMap::from([("user".to_string(), "admin".to_string())]));
    // A user's revocation epoch that is not a number: the login fails clearly.
    let epoch = a.store.epoch_key(a.manager.config().naming().user("eve"));
    set_raw(&redis, &epoch, b"not a number");
    let r = a.post(&c, "/login/eve", None).await;
    assert_eq!((r.status.as_u16(), r.body.clone()), (500, json!({"error": "session error"})));
    assert_eq!(r.header("retry-after"), None, "not taken for an outage");
    assert!(r.cookie_token(COOKIE).is_none());
    assert!(a.manager.list_user("eve").await.unwrap().is_empty());
    // A record that decodes, whose value is not the JSON its header announces.
    let t = a.anonymous(&c, "victim").await;
    let key = a.redis_key(&t);
    let bytes = record_bytes(now, now + 3_600_000, "x", b"\x01\xc1{not json");
    set_raw(&redis, &key, &bytes);
    let r = a.get(&c, "/read/x", Some(&t)).await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    // The read was due a touch (the key's TTL is far below the idle timeout): the record was
    // written again with its idle deadline, the same record with the value as it was.
    let decoded = |b: &[u8]| match sesame_redis::fuzzing::decode_stored(b) {
        Ok(sesame_redis::fuzzing::StoredForm::Record(r)) => r,
        other => panic!("{other:?}"),
    };
    let now_stored = decoded(&raw(&redis, &key).unwrap());
    assert_eq!(now_stored, decoded(&bytes));
    assert_eq!(now_stored.attrs["x"], b"\x01\xc1{not json".to_vec());
}

// 32 (bytes that are not UTF-8 in a user's epoch or index). Hostile bytes in a user's
// revocation epoch or session index are malformed data like any other: a 500 (not an outage
// with Retry-After), and an index member that names no session is skipped, so that the list
// and "log out everywhere" still work and the user's sessions end.
#[tokio::test]
async fn item_32_non_utf8_bytes_in_an_epoch_or_index_are_malformed_data_not_an_outage() {
    let redis = RedisServer::start();
    let a = start(&redis, config()).await;
    let c = Client::new();
    let epoch = a.store.epoch_key(a.manager.config().naming().user("eve"));
    set_raw(&redis, &epoch, b"\xff\xfe");
    let r = a.post(&c, "/login/eve", None).await;
    assert_eq!((r.status.as_u16(), r.body.clone()), (500, json!({"error": "session error"})));
    assert_eq!(r.header("retry-after"), None);
    let t = a.login(&c, "fay").await;
    let index = a.store.index_key(a.manager.config().naming().user("fay"));
    let _: () = redis::cmd("ZADD")
        .arg(&index)
        .arg(9_999_999_999_999u64)
        .arg(b"\xff\xfe".as_slice())
        .query(&mut conn(&redis))
        .unwrap();
    let r = a.get(&c, "/sessions", Some(&t)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body, json!([a.id(&t)]));
    assert_eq!(a.manager.revoke_user("fay").await.unwrap(), 1);
    assert_eq!(a.get(&c, "/get", Some(&t)).await.body["user"], Value::Null);
}

// 33. With a prefix configured, everything sesame writes (sessions, pointers, indexes,
// epochs) is under `<prefix>:{`; keys of other prefixes, including look-alikes, are left as
// they were; two apps with different prefixes on one Redis never see each other's sessions.
#[tokio::test]
async fn item_33_keys_live_under_a_dedicated_prefix() {
    let redis = RedisServer::start();
    let foreign = [
        ("user:1", "someone else's"),
        ("shopA-other:{12345678}:s:x", "a look-alike"),
        ("sesame:{12345678}:s:AAAAAAAAAAAAAAAAAAAAAA", "the default prefix"),
    ];
    for (k, v) in foreign {
        set_raw(&redis, k, v.as_bytes());
    }
    let with_prefix = |p: &'static str| {
        let url = redis.url();
        async move {
            let store = RedisStore::builder(url).prefix(p).connect().await.unwrap();
            start_on(Arc::new(store.clone()), store, config(), |l| l).await
        }
    };
    let a = with_prefix("shopA").await;
    let b = with_prefix("shopB").await;
    let c = Client::new();
    let t0 = a.anonymous(&c, "a-data").await;
    let t1 = a.post(&c, "/login/alice", Some(&t0)).await.cookie_token(COOKIE).unwrap();
    assert!(a.post(&c, "/cycle", Some(&t1)).await.cookie_token(COOKIE).is_some());
    let other = a.login(&c, "alice").await;
    assert_eq!(a.post(&c, "/sessions/revoke-others", Some(&other)).await.body, json!(1));
    let tb = b.login(&c, "alice").await;
    b.post(&c, "/set/x/b-data", Some(&tb)).await;
    // Each app's tokens mean nothing to the other.
    assert_eq!(b.get(&c, "/get", Some(&other)).await.body, json!({"x": null, "user": null}));
    assert_eq!(a.get(&c, "/get", Some(&tb)).await.body, json!({"x": null, "user": null}));
    assert_eq!(b.manager.list_user("alice").await.unwrap().len(), 1);
    let mut kinds = BTreeSet::new();
    for k in scan(&redis, "*") {
        if foreign.iter().any(|(f, _)| *f == k) {
            continue;
        }
        let rest = k
            .strip_prefix("shopA:{")
            .or_else(|| k.strip_prefix("shopB:{"))
            .unwrap_or_else(|| panic!("{k} is outside the prefixes"));
        kinds.insert(rest[9..11].to_string());
    }
    assert_eq!(kinds, BTreeSet::from([":e".into(), ":s".into(), ":u".into()]));
    for (k, v) in foreign {
        assert_eq!(raw(&redis, k).unwrap(), v.as_bytes(), "{k}");
    }
}

// 34. A save over the size limit or the attribute limit answers 413 and writes nothing: the
// stored record keeps its bytes, a rotation or a login over the limit leaves the session as
// it was under its old token, and a new session over the limit is not created at all.
#[tokio::test]
async fn item_34_a_save_over_the_limits_is_refused_whole() {
    let redis = RedisServer::start();
    let a =
        start(&redis, builder().max_session_bytes(1024).max_attributes(3).build().unwrap()).await;
    let c = Client::new();
    let t = a.anonymous(&c, "keep").await;
    let key = a.redis_key(&t);
    let before = raw(&redis, &key).unwrap();
    for (path, what) in
        [("/fill/2/600", "bytes"), ("/fill/3/10", "attributes"), ("/fill/1/2000", "bytes")]
    {
        let r = a.post(&c, path, Some(&t)).await;
        assert_eq!(r.status, 413, "{path}: {:?}", r.body);
        assert!(r.body["error"].as_str().unwrap().contains(what), "{:?}", r.body);
        assert!(r.set_cookies().is_empty());
        assert_eq!(raw(&redis, &key).unwrap(), before, "{path}: partly written");
    }
    // Over the limit in a rotation (cycle_id, a re-login) and in a login from an anonymous
    // session: refused, and the session stays as it was under its old token.
    let big = noise(7, 1100);
    let user = a.login(&c, "pat").await;
    a.post(&c, "/set/x/pat", Some(&user)).await;
    let anon = a.anonymous(&c, "cart").await;
    let keys = dbsize(&redis);
    let snapshot = |ts: [&String; 3]| ts.map(|t| raw(&redis, &a.redis_key(t)));
    let before_rotations = snapshot([&t, &user, &anon]);
    for (path, token) in [
        (format!("/cycle-then-set/y/{big}"), &t),
        (format!("/login-then-set/pat/y/{big}"), &user),
        (format!("/cycle-then-set/y/{big}"), &user),
        (format!("/login-then-set/quinn/y/{big}"), &anon),
    ] {
        let r = a.post(&c, &path, Some(token)).await;
        assert_eq!(r.status, 413, "{:.30}: {:?}", path, r.body);
        assert!(r.set_cookies().is_empty());
        assert_eq!(snapshot([&t, &user, &anon]), before_rotations, "{path:.30}");
        assert_eq!(dbsize(&redis), keys, "{path:.30}: a key written");
    }
    assert_eq!(a.get(&c, "/get", Some(&user)).await.body, json!({"x": "pat", "user": "pat"}));
    assert_eq!(a.get(&c, "/get", Some(&anon)).await.body, json!({"x": "cart", "user": null}));
    assert!(a.manager.list_user("quinn").await.unwrap().is_empty());
    assert_eq!(a.post(&c, "/fill/2/300", Some(&t)).await.status, 200, "within the limits");
    assert_eq!(a.get(&c, "/get", Some(&t)).await.body["x"], "keep");
    let keys = dbsize(&redis);
    let r = a.post(&c, "/fill/1/2000", None).await;
    assert_eq!(r.status, 413);
    assert!(r.set_cookies().is_empty());
    assert_eq!(dbsize(&redis), keys, "no session created");
}

// 35. A request that never touches its session costs no Redis command (with a persistent
// cookie too); a logout deletes and
// writes nothing else: no new session (the cookie is cleared, not replaced), the same number of
// keys minus the ones it ended, and only reads and deletes in `INFO commandstats`.
#[tokio::test]
async fn item_35_untouched_requests_and_logout_write_nothing_but_the_delete() {
    let redis = RedisServer::start();
    let a = start(&redis, config()).await;
    let c = Client::new();
    let anon = a.anonymous(&c, "1").await;
    let user = a.login(&c, "lee").await;
    let p = start_with(&redis, config(), |l| {
        l.with_cookie(CookieConfig::builder().persistent(true).build().unwrap())
    })
    .await;
    let keys = dbsize(&redis);
    redis.reset_stats().unwrap();
    for t in [&anon, &user] {
        assert_eq!(a.get(&c, "/plain", Some(t)).await.status, 200);
    }
    let r = p.get(&c, "/plain", Some(&user)).await;
    assert!(r.set_cookies().is_empty(), "a persistent cookie is not refreshed by it either");
    let r = a.post(&c, "/logout", None).await;
    assert_eq!(r.status, 200, "a logout without a session");
    assert!(r.set_cookies().is_empty(), "nothing to clear, nothing made");
    assert_eq!(commands(&redis), BTreeMap::new(), "no command at all");

    // The request reads its session (GET), the logout follows its lineage (GET) and ends it
    // in one script (GET, compare, DEL).
    let r = a.post(&c, "/logout", Some(&anon)).await;
    assert!(r.set_cookie(COOKIE).unwrap().starts_with(&format!("{COOKIE}=; Max-Age=0")));
    assert_eq!(
        commands(&redis),
        counts(&[("get", 3), ("evalsha", 1), ("del", 1)]),
        "anonymous logout"
    );
    assert_eq!(dbsize(&redis), keys - 1);
    redis.reset_stats().unwrap();
    let r = a.post(&c, "/logout", Some(&user)).await;
    assert!(r.set_cookie(COOKIE).unwrap().starts_with(&format!("{COOKIE}=; Max-Age=0")));
    assert_eq!(
        commands(&redis),
        counts(&[("get", 3), ("evalsha", 1), ("del", 2), ("zrem", 1), ("zrange", 1)]),
        "logout of a logged-in session: its key, its index member, the index left empty"
    );
    assert_eq!(dbsize(&redis), keys - 3);
}

// 36. Encryption at rest over HTTP: with keys configured, Redis holds neither a stored value
// nor the principal's name; an instance with `[new, old]` reads what an instance with `[old]`
// wrote and writes new values under `new`; a sealed value copied into another session, or
// into another attribute, does not open (400, nothing of the value in the body).
#[tokio::test]
async fn item_36_encryption_at_rest_with_key_rotation() {
    let redis = RedisServer::start();
    let (old, new) = ([0x11u8; 32], [0x22u8; 32]);
    let a = start(&redis, builder().encryption_keys([(1, old)]).build().unwrap()).await;
    let b = start(&redis, builder().encryption_keys([(2, new), (1, old)]).build().unwrap()).await;
    let c = Client::new();
    let who = "ada.lovelace.marker";
    let t0 = a.anonymous(&c, "MARKER-36-cart").await;
    let t = a.post(&c, &format!("/login/{who}"), Some(&t0)).await.cookie_token(COOKIE).unwrap();
    a.post(&c, "/set/y/MARKER-36-note", Some(&t)).await;
    let other = a.anonymous(&c, "MARKER-36-other").await;
    let dump = dump_all(&redis);
    assert!(contains(&dump, a.id(&t).as_bytes()), "the session is there");
    for secret in ["MARKER-36", who, "ada.lovelace"] {
        assert!(!contains(&dump, secret.as_bytes()), "{secret} in clear in Redis");
    }
    // The instance with [new, old] reads it, and writes under new.
    assert_eq!(b.get(&c, "/get", Some(&t)).await.body, json!({"x": "MARKER-36-cart", "user": who}));
    assert_eq!(b.post(&c, "/set/z/fresh", Some(&t)).await.status, 200);
    let policy = b.manager.config().policy().clone();
    let record = match Store::load(&b.store, &b.session_key(&t), sesame::now_ms(), &policy).await {
        Ok(Lookup::Live(l)) => l.record,
        other => panic!("{other:?}"),
    };
    assert_eq!(&record.attrs["z"][..2], &[sesame::value::ENCRYPTED, 2], "new writes: key 2");
    assert_eq!(&record.attrs["x"][..2], &[sesame::value::ENCRYPTED, 1], "old values: key 1");
    assert_eq!(a.get(&c, "/read/z", Some(&t)).await.status, 400, "[old] cannot open key 2");
    // A sealed value copied into another session, and into another attribute.
    for (target, name) in [(&other, "x"), (&t, "w")] {
        let key = b.session_key(target);
        let base = match Store::load(&b.store, &key, sesame::now_ms(), &policy).await {
            Ok(Lookup::Live(l)) => l,
            other => panic!("{other:?}"),
        };
        let delta =
            Delta { set: vec![(name.into(), record.attrs["x"].clone())], ..Delta::default() };
        let saved = Store::save(&b.store, &key, &base, &delta, sesame::now_ms(), &policy).await;
        assert!(matches!(saved, Ok(SaveOutcome::Saved(_))));
        let r = b.get(&c, &format!("/read/{name}"), Some(target)).await;
        assert_eq!(r.status, 400, "a copied value opened: {:?}", r.body);
        assert!(!r.body.to_string().contains("MARKER"), "{:?}", r.body);
    }
    assert_eq!(b.get(&c, "/read/y", Some(&t)).await.body, json!("MARKER-36-note"));
}

// =============================================================================================
// Detection

// 37. Invalid tokens are counted (`Stats::invalid_tokens`) and each emits an `InvalidToken`
// event saying why (never the token); a well-formed unknown token is counted apart.
#[tokio::test]
async fn item_37_invalid_tokens_are_counted_and_emitted() {
    let redis = RedisServer::start();
    let a = start(&redis, config()).await;
    let c = Client::new();
    let good = a.anonymous(&c, "1").await;
    let mut events = a.manager.events();
    let bad = [
        good[..67].to_string(),
        good.replacen(|ch: char| ch.is_ascii_alphanumeric(), "+", 1),
        altered(&good, 45),
        format!("{good}A"),
    ];
    for t in &bad {
        a.get(&c, "/get", Some(t)).await;
    }
    let unknown = config().tokens().generate(Tag::random().unwrap()).unwrap().expose();
    a.get(&c, "/get", Some(&unknown)).await;
    let stats = a.manager.stats();
    assert_eq!((stats.invalid_tokens, stats.unknown_tokens), (4, 1));
    let reasons = [
        "session token has 67 characters, expected 68",
        "session token is not base64url",
        "session token check value does not match",
        "session token has 69 characters, expected 68",
    ];
    let expected: Vec<SessionEvent> =
        reasons.iter().map(|r| SessionEvent::InvalidToken { reason: r.to_string() }).collect();
    assert_eq!(drain(&mut events), expected);
}

// 40. Creation, rotation (login and `cycle_id`), logout, revocation, reuse and invalid tokens
// are emitted as events that name sessions by their public ids (digests), in order; no event
// holds a token or a fragment of one.
#[tokio::test]
async fn item_40_lifecycle_events_carry_ids_never_tokens() {
    let redis = RedisServer::start();
    let a =
        start(&redis, builder().grace_period(Duration::from_millis(200)).build().unwrap()).await;
    let c = Client::new();
    let mut events = a.manager.events();
    let t0 = a.anonymous(&c, "1").await;
    let t1 = a.post(&c, "/login/alice", Some(&t0)).await.cookie_token(COOKIE).unwrap();
    let t2 = a.post(&c, "/cycle", Some(&t1)).await.cookie_token(COOKIE).unwrap();
    a.get(&c, "/get", Some(&altered(&t2, 50))).await;
    let t3 = a.anonymous(&c, "2").await;
    a.post(&c, "/logout", Some(&t3)).await;
    let t4 = a.login(&c, "alice").await;
    assert!(a.manager.revoke_session("alice", &a.id(&t4)).await.unwrap());
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.get(&c, "/get", Some(&t1)).await;
    let t5 = a.login(&c, "bob").await;
    assert_eq!(a.manager.revoke_user("bob").await.unwrap(), 1);
    let got = drain(&mut events);
    let alice = Some("alice".to_string());
    assert_eq!(
        got,
        [
            SessionEvent::Created { id: a.id(&t0), principal: None },
            SessionEvent::Rotated { from: a.id(&t0), to: a.id(&t1), principal: alice.clone() },
            SessionEvent::Rotated { from: a.id(&t1), to: a.id(&t2), principal: alice.clone() },
            SessionEvent::InvalidToken {
                reason: "session token check value does not match".into()
            },
            SessionEvent::Created { id: a.id(&t3), principal: None },
            SessionEvent::Destroyed { id: a.id(&t3) },
            SessionEvent::Created { id: a.id(&t4), principal: alice },
            SessionEvent::Revoked { id: a.id(&t4) },
            SessionEvent::ReuseDetected { id: a.id(&t1) },
            SessionEvent::Created { id: a.id(&t5), principal: Some("bob".into()) },
            SessionEvent::UserRevoked { principal: "bob".into(), count: 1 },
        ]
    );
    let text = serde_json::to_string(&got).unwrap();
    for t in [&t0, &t1, &t2, &t3, &t4, &t5] {
        assert!(!leaks_token(text.as_bytes(), t), "a token in an event: {text}");
    }
}

// 40 (every end of a session). Sessions ended other than by logout or by the manager's
// revocations are reported too: one revoked by its user through the session handle, the others
// revoked through it ("log out other devices"), the session a login as another principal ends,
// and the session the per-user cap evicts. Each event names the ended session by id (or, for
// "all but one", the principal and count, as `revoke_user` does).
#[tokio::test]
async fn item_40_every_end_of_a_session_is_emitted() {
    let redis = RedisServer::start();
    let a = start(&redis, builder().max_sessions_per_user(3).build().unwrap()).await;
    let c = Client::new();
    let mut events = a.manager.events();
    let names = |events: &[SessionEvent], id: &str| {
        events.iter().any(|e| serde_json::to_value(e).unwrap()["id"] == id)
    };
    let t: Vec<String> = vec![a.login(&c, "rose").await, a.login(&c, "rose").await];
    drain(&mut events);
    let r = a.post(&c, &format!("/sessions/revoke/{}", a.id(&t[1])), Some(&t[0])).await;
    assert_eq!(r.body, json!(true));
    assert!(names(&drain(&mut events), &a.id(&t[1])), "revoked through the session handle");
    a.login(&c, "rose").await;
    drain(&mut events);
    assert_eq!(a.post(&c, "/sessions/revoke-others", Some(&t[0])).await.body, json!(1));
    assert_eq!(
        drain(&mut events),
        [SessionEvent::UserRevoked { principal: "rose".into(), count: 1 }],
        "log out other devices"
    );
    let r = a.post(&c, "/login/sam", Some(&t[0])).await;
    assert!(r.cookie_token(COOKIE).is_some());
    assert!(names(&drain(&mut events), &a.id(&t[0])), "ended by a login as another principal");
    // Not yet: a session evicted at the per-user cap is ended inside the store, which does not
    // report which one (docs/SECURITY.md, item 40).
}

// =============================================================================================
// Beyond the usual

// 41. A superseded token presented after its grace window revokes the whole lineage: the
// request gets no session, the reuse is counted and emitted, the token that superseded it (held
// by the legitimate client, on another instance) is dead too, and Redis holds nothing of the
// session or the user's index.
#[tokio::test]
async fn item_41_reuse_after_the_grace_window_revokes_the_session() {
    let redis = RedisServer::start();
    let config = || builder().grace_period(Duration::from_millis(300)).build().unwrap();
    let (a, b) = (start(&redis, config()).await, start(&redis, config()).await);
    let c = Client::new();
    let t1 = a.login(&c, "mia").await;
    a.post(&c, "/set/x/private-41", Some(&t1)).await;
    let t2 = b.post(&c, "/cycle", Some(&t1)).await.cookie_token(COOKIE).unwrap();
    let t3 = b.post(&c, "/cycle", Some(&t2)).await.cookie_token(COOKIE).unwrap();
    assert_eq!(a.get(&c, "/get", Some(&t1)).await.cookie_token(COOKIE), Some(t3.clone()));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(b.get(&c, "/get", Some(&t3)).await.body["x"], "private-41", "t3 is live");
    let mut events = a.manager.events();
    let r = a.get(&c, "/get", Some(&t1)).await;
    assert_eq!(r.body, json!({"x": null, "user": null}));
    assert!(r.set_cookies().is_empty());
    assert_eq!(a.manager.stats().reused_tokens, 1);
    assert_eq!(drain(&mut events), [SessionEvent::ReuseDetected { id: a.id(&t1) }]);
    for t in [&t3, &t2] {
        assert_eq!(b.get(&c, "/get", Some(t)).await.body, json!({"x": null, "user": null}));
    }
    assert_eq!(live_records_with(&redis, "private-41"), 0);
    assert!(a.manager.list_user("mia").await.unwrap().is_empty());
}

// 42. Concurrent requests presenting one token — rotations, re-logins, logins of an anonymous
// session, saves — spread over two instances, round after round: afterwards exactly one live
// session in Redis carries the session's data, and a logged-in lineage hands out one token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_42_a_lineage_never_forks() {
    let redis = RedisServer::start();
    let apps = [start(&redis, config()).await, start(&redis, config()).await];
    let c = Client::new();
    for round in 0..16 {
        let user = format!("u{round}");
        let marker = format!("mark{round:03}z");
        let logged_in = round % 2 == 0;
        let t0 = if logged_in {
            let t = apps[0].login(&c, &user).await;
            apps[1].post(&c, &format!("/set/x/{marker}"), Some(&t)).await;
            t
        } else {
            apps[0].anonymous(&c, &marker).await
        };
        let paths = [
            "/cycle".to_string(),
            format!("/login/{user}"),
            format!("/set/y/{round}"),
            "/cycle".to_string(),
            format!("/login/{user}"),
            format!("/set/z/{round}"),
            "/get".to_string(),
            format!("/login/{user}"),
        ];
        let tasks = paths
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let method = if p == "/get" { "GET" } else { "POST" };
                spawn_send(&c, method, apps[i % 2].url(p), &t0)
            })
            .collect();
        let rs = join_all(tasks).await;
        let mut handed = BTreeSet::new();
        for r in &rs {
            assert!(matches!(r.status.as_u16(), 200 | 401), "round {round}: {:?}", r.body);
            handed.extend(r.cookie_token(COOKIE));
        }
        assert_eq!(live_records_with(&redis, &marker), 1, "round {round}: forked or lost");
        if logged_in {
            assert_eq!(handed.len(), 1, "round {round}: {handed:?}");
            for r in &rs {
                assert_eq!(r.status, 200, "round {round}: {:?}", r.body);
            }
        }
    }
}

// 43. Once a logout, or a revocation of the user, has answered, no live session anywhere
// carries a logged-in session's data, whatever rotations, re-logins and saves of the same token
// raced it on two instances (checked the moment it answered, and again when the racing
// requests are done); and a login that had begun when "log out everywhere" ran, of an
// anonymous session or a re-login, ends with no session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_43_logout_and_revocation_win_over_racing_rotations() {
    let redis = RedisServer::start();
    let apps = [start(&redis, config()).await, start(&redis, config()).await];
    let c = Client::new();
    for round in 0..20 {
        let user = format!("u{round}");
        let marker = format!("mark{round:03}z");
        let t0 = apps[round % 2].login(&c, &user).await;
        apps[0].post(&c, &format!("/set/x/{marker}"), Some(&t0)).await;
        let racing = ["/cycle".to_string(), format!("/login/{user}"), "/set/y/1".to_string()];
        let tasks: Vec<_> =
            (0..6).map(|i| spawn_send(&c, "POST", apps[i % 2].url(&racing[i % 3]), &t0)).collect();
        if round % 2 == 0 {
            let r = apps[round % 2].post(&c, "/logout", Some(&t0)).await;
            assert_eq!(r.status, 200, "round {round}: {:?}", r.body);
        } else {
            apps[0].manager.revoke_user(&user).await.unwrap();
        }
        assert_eq!(live_records_with(&redis, &marker), 0, "round {round}: when it answered");
        join_all(tasks).await;
        assert_eq!(live_records_with(&redis, &marker), 0, "round {round}: afterwards");
    }

    // A login that has begun (read the user's epoch) when the revocation runs.
    let hold = Arc::new(Hold::default());
    let store = RedisStore::connect(&redis.url()).await.unwrap();
    let manager = SessionManager::new(Arc::new(store), config());
    let router = Router::new()
        .route("/slow-login/{user}", post(slow_login))
        .layer(Extension(hold.clone()))
        .layer(SessionLayer::new(manager));
    let slow = serve(router).await;
    for round in 0..6 {
        let user = format!("held{round}");
        // Alternately a login of an anonymous session, and a re-login (a rotation) of one of
        // the user's sessions.
        let token = if round % 2 == 0 {
            apps[0].anonymous(&c, &format!("held-mark{round}z")).await
        } else {
            let t = apps[0].login(&c, &user).await;
            apps[0].post(&c, &format!("/set/x/held-mark{round}z"), Some(&t)).await;
            t
        };
        let task = spawn_send(&c, "POST", format!("http://{slow}/slow-login/{user}"), &token);
        hold.reached.notified().await;
        let ended = apps[1].manager.revoke_user(&user).await.unwrap();
        assert_eq!(ended, (round % 2) as u64, "round {round}");
        hold.release.notify_one();
        let r = task.await.unwrap();
        assert_eq!(r.status, 401, "round {round}: {:?}", r.body);
        assert_eq!(r.body, json!({"error": Error::LoginRevoked.to_string()}), "round {round}");
        assert!(r.cookie_token(COOKIE).is_none());
        assert!(apps[0].manager.list_user(&user).await.unwrap().is_empty(), "round {round}");
        let live = live_records_with(&redis, &format!("held-mark{round}z"));
        assert_eq!(live, 1 - round % 2, "round {round}: only an anonymous session stays");
    }
}

// 43 (a logout presenting a token that a login superseded). A logout through an anonymous
// session's token ends what the session became when a login raced it: the logged-in session
// carrying its data. Shown in order (the login lands first, then the logout presents the
// anonymous token; also after a `cycle_id` in between), then with real concurrency.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_43_logout_through_a_token_a_login_superseded_ends_that_login() {
    let redis = RedisServer::start();
    let apps = [start(&redis, config()).await, start(&redis, config()).await];
    let c = Client::new();
    for cycle_first in [false, true] {
        let marker = format!("ordered-{cycle_first}-z");
        let t0 = apps[0].anonymous(&c, &marker).await;
        let mut t = t0.clone();
        if cycle_first {
            t = apps[1].post(&c, "/cycle", Some(&t)).await.cookie_token(COOKIE).unwrap();
        }
        let r = apps[0].post(&c, "/login/olga", Some(&t)).await;
        let logged_in = r.cookie_token(COOKIE).unwrap();
        assert_eq!(apps[1].get(&c, "/get", Some(&logged_in)).await.body["x"], marker.as_str());
        let r = apps[1].post(&c, "/logout", Some(&t0)).await;
        assert_eq!(r.status, 200);
        assert!(r.set_cookie(COOKIE).unwrap().contains("Max-Age=0"));
        assert_eq!(live_records_with(&redis, &marker), 0, "cycle first: {cycle_first}");
        let r = apps[0].get(&c, "/get", Some(&logged_in)).await;
        assert_eq!(r.body, json!({"x": null, "user": null}), "cycle first: {cycle_first}");
    }
    for round in 0..30 {
        let user = format!("u{round}");
        let marker = format!("mark{round:03}z");
        let t0 = apps[0].anonymous(&c, &marker).await;
        let racing = [format!("/login/{user}"), "/cycle".to_string(), format!("/login/{user}")];
        let tasks: Vec<_> =
            (0..3).map(|i| spawn_send(&c, "POST", apps[i % 2].url(&racing[i]), &t0)).collect();
        let r = apps[round % 2].post(&c, "/logout", Some(&t0)).await;
        assert_eq!(r.status, 200, "round {round}: {:?}", r.body);
        assert_eq!(live_records_with(&redis, &marker), 0, "round {round}: when it answered");
        join_all(tasks).await;
        assert_eq!(live_records_with(&redis, &marker), 0, "round {round}: afterwards");
    }
}

/// Holds a handler until the test releases it.
#[derive(Default)]
struct Hold {
    reached: tokio::sync::Notify,
    release: tokio::sync::Notify,
}

/// Logs in (reading the user's revocation epoch), then waits at the hold.
async fn slow_login(
    session: Session,
    Extension(hold): Extension<Arc<Hold>>,
    Path(user): Path<String>,
) -> Result<(), SessionError> {
    session.login(&user).await?;
    hold.reached.notify_one();
    hold.release.notified().await;
    Ok(())
}

// 44. A login as a different principal starts from a clean session (the other principal's
// session ends, none of its data follows); a login from an anonymous session keeps its data;
// and with `keep_data_on_login(false)` not even that.
#[tokio::test]
async fn item_44_login_as_another_principal_starts_clean() {
    let redis = RedisServer::start();
    let a = start(&redis, config()).await;
    let c = Client::new();
    let t0 = a.anonymous(&c, "cart").await;
    let t1 = a.post(&c, "/login/alice", Some(&t0)).await.cookie_token(COOKIE).unwrap();
    assert_eq!(a.get(&c, "/get", Some(&t1)).await.body, json!({"x": "cart", "user": "alice"}));
    a.post(&c, "/set/y/alice-only", Some(&t1)).await;
    let t2 = a.post(&c, "/login/bob", Some(&t1)).await.cookie_token(COOKIE).unwrap();
    assert_eq!(a.get(&c, "/get", Some(&t2)).await.body, json!({"x": null, "user": "bob"}));
    assert_eq!(a.get(&c, "/read/y", Some(&t2)).await.body, Value::Null);
    assert_eq!(a.get(&c, "/get", Some(&t1)).await.body["user"], Value::Null, "alice's ended");
    assert!(a.manager.list_user("alice").await.unwrap().is_empty());
    assert_eq!(live_records_with(&redis, "alice-only"), 0);

    let strict = start(&redis, builder().keep_data_on_login(false).build().unwrap()).await;
    let t0 = strict.anonymous(&c, "cart").await;
    let t1 = strict.post(&c, "/login/carl", Some(&t0)).await.cookie_token(COOKIE).unwrap();
    assert_eq!(strict.get(&c, "/get", Some(&t1)).await.body, json!({"x": null, "user": "carl"}));
}

// 45. The cap on sessions per user is 256 by default and holds over HTTP; a login of a user at
// the cap costs Redis the same commands however many sessions other users have, only the
// eviction more than a login of a user with two sessions; a logout and a list cost the same at
// two sessions and at the cap.
#[tokio::test]
async fn item_45_per_user_work_is_bounded() {
    assert_eq!(config().policy().max_sessions_per_user, 256);
    assert_eq!(sesame::DEFAULT_MAX_SESSIONS_PER_USER, 256);
    let redis = RedisServer::start();
    let a = start(&redis, config()).await;
    let c = Client::new();
    let m = &a.manager;
    let login = |user: &'static str| async move {
        let s = m.open(None);
        s.login(user).await.unwrap();
        s.commit().await.unwrap();
    };
    for _ in 0..256 {
        login("capped").await;
    }
    for _ in 0..2 {
        login("pair").await;
    }
    // Measures one HTTP request's Redis commands.
    let measure = |method: &'static str, path: String, token: Option<String>| {
        let (c, redis, url) = (c.clone(), &redis, a.url(&path));
        async move {
            redis.reset_stats().unwrap();
            let headers: Vec<_> = token.as_deref().map(session_cookie).into_iter().collect();
            let r = send(&c, method, url, &headers).await;
            assert_eq!(r.status, 200, "{path}: {:?}", r.body);
            (commands(redis), r.cookie_token(COOKIE))
        }
    };
    let (pair_login, pair_token) = measure("POST", "/login/pair".into(), None).await;
    let (capped_login, capped_token) = measure("POST", "/login/capped".into(), None).await;
    assert_eq!(m.list_user("capped").await.unwrap().len(), 256, "still at the cap");
    for _ in 0..256 {
        login("other").await;
    }
    for _ in 0..500 {
        let s = m.open(None);
        s.insert("x", "1").await.unwrap();
        s.commit().await.unwrap();
    }
    let (capped_login_busy, _) = measure("POST", "/login/capped".into(), None).await;
    assert_eq!(capped_login_busy, capped_login, "other users' sessions change nothing");
    let total = |m: &BTreeMap<String, u64>| m.values().sum::<u64>();
    assert_eq!(total(&capped_login), total(&pair_login) + 3, "{capped_login:?} {pair_login:?}");
    for (name, n) in &pair_login {
        assert!(capped_login.get(name).unwrap_or(&0) >= n, "{name}");
    }
    let (pair_list, _) = measure("GET", "/sessions".into(), pair_token.clone()).await;
    let (capped_list, _) = measure("GET", "/sessions".into(), capped_token.clone()).await;
    assert_eq!(pair_list, capped_list);
    assert_eq!(pair_list, counts(&[("zrange", 1), ("get", 1)]));
    let (pair_logout, _) = measure("POST", "/logout".into(), pair_token).await;
    let (capped_logout, _) = measure("POST", "/logout".into(), capped_token).await;
    assert_eq!(pair_logout, capped_logout);
}

// 46. A token secret is required (building without one is an error naming the fix) unless the
// insecure development secret is asked for by name. An instance with `token_secrets([new,
// old])` and `naming_secret(old)` serves the sessions an instance with `old` made (same user,
// same index) and hands out tokens under `new`, which `old` alone rejects. Neither tokens nor
// Redis key names contain the user's name, and a user's tag follows the naming secret.
#[tokio::test]
async fn item_46_secrets_are_required_rotate_and_hide_the_user() {
    let err = SessionConfig::builder().build().unwrap_err();
    assert!(matches!(&err, Error::Config(m) if m.contains("token_secret")), "{err}");
    assert!(SessionConfig::builder()
        .token_secrets([vec![2u8; 32], vec![1u8; 32]])
        .build()
        .is_err());
    let dev = SessionConfig::builder().insecure_development_secret().build().unwrap();
    assert!(dev.is_insecure_development() && !config().is_insecure_development());

    let (old, new) = (vec![0x0au8; 32], vec![0x0bu8; 32]);
    let (old_id, new_id) = (
        TokenSecret::new(old.clone()).unwrap().key_id(),
        TokenSecret::new(new.clone()).unwrap().key_id(),
    );
    assert_ne!(old_id, new_id);
    let redis = RedisServer::start();
    let a =
        start(&redis, SessionConfig::builder().token_secret(old.clone()).build().unwrap()).await;
    let rotating = SessionConfig::builder()
        .token_secrets([new.clone(), old.clone()])
        .naming_secret(old.clone())
        .build()
        .unwrap();
    let b = start(&redis, rotating).await;
    let c = Client::new();
    let user = "alice.wonderland";
    let ta = a.login(&c, user).await;
    a.post(&c, "/set/x/1", Some(&ta)).await;
    assert_eq!(b64_decode(&ta)[0], old_id);
    assert_eq!(b.get(&c, "/get", Some(&ta)).await.body, json!({"x": "1", "user": user}));
    let tb = b.post(&c, "/cycle", Some(&ta)).await.cookie_token(COOKIE).unwrap();
    assert_eq!(b64_decode(&tb)[0], new_id, "new tokens under the new secret");
    assert_eq!(b.get(&c, "/get", Some(&tb)).await.body, json!({"x": "1", "user": user}));
    let fresh = b.login(&c, user).await;
    assert_eq!(b64_decode(&fresh)[0], new_id);
    assert_eq!(b.manager.list_user(user).await.unwrap().len(), 2, "one index for both");
    let invalid = a.manager.stats().invalid_tokens;
    assert_eq!(a.get(&c, "/get", Some(&fresh)).await.body["user"], Value::Null);
    assert_eq!(a.manager.stats().invalid_tokens, invalid + 1, "old alone rejects new tokens");

    for t in [&ta, &tb, &fresh] {
        assert!(!t.to_ascii_lowercase().contains("alice"));
        assert!(!contains(&b64_decode(t), b"alice"));
    }
    for k in scan(&redis, "*") {
        assert!(!k.to_ascii_lowercase().contains("alice"), "{k}");
    }
    let other =
        start(&redis, SessionConfig::builder().token_secret(vec![0x0cu8; 32]).build().unwrap())
            .await;
    let tc = other.login(&c, user).await;
    assert_ne!(b64_decode(&tc)[1..5], b64_decode(&ta)[1..5], "the tag is keyed");
}

// 47. Error bodies and logs carry no session data: a stored value read as another type (400),
// a value that is not valid JSON (400), a save over the limit (413), a record truncated in the
// middle of a value (500), a stale authentication (401) and Redis down (503) leave no stored
// value and no record bytes in any body or any log line.
#[tokio::test]
async fn item_47_error_bodies_and_logs_carry_no_session_data() {
    let captured = Captured::default();
    let _guard = captured.install(tracing::Level::TRACE);
    let mut redis = RedisServer::start();
    let a = start(&redis, builder().max_session_bytes(1024).build().unwrap()).await;
    let c = Client::new();
    const MARKER: &str = "MARKER-47-private";
    let t = a.login(&c, "nora").await;
    a.post(&c, &format!("/set/x/{MARKER}"), Some(&t)).await;
    let mut bodies = Vec::new();
    let mut expect = |r: Resp, status: u16| {
        assert_eq!(r.status, status, "{:?}", r.body);
        bodies.push(r.body);
    };
    expect(a.get(&c, "/number/x", Some(&t)).await, 400);
    expect(a.post(&c, &format!("/set/y/{MARKER}-{}", noise(1, 1100)), Some(&t)).await, 413);
    let now = sesame::now_ms();
    let bad_json = a.anonymous(&c, "1").await;
    let bytes = record_bytes(now, now + 3_600_000, "x", format!("\x01\"{MARKER}").as_bytes());
    set_raw(&redis, &a.redis_key(&bad_json), &bytes);
    expect(a.get(&c, "/get", Some(&bad_json)).await, 400);
    let truncated = a.anonymous(&c, MARKER).await;
    let key = a.redis_key(&truncated);
    let record = raw(&redis, &key).unwrap();
    let cut = record.windows(MARKER.len()).position(|w| w == MARKER.as_bytes()).unwrap() + 6;
    set_raw(&redis, &key, &record[..cut]);
    expect(a.get(&c, "/get", Some(&truncated)).await, 500);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    expect(a.get(&c, "/secret", Some(&t)).await, 401);
    redis.stop();
    expect(a.get(&c, "/get", Some(&t)).await, 503);

    let log = captured.text();
    assert!(log.contains("session error") && log.contains("session load failed"), "{log}");
    assert!(!log.contains("MARKER"), "session data in the log: {log}");
    for b in &bodies {
        assert!(!b.to_string().contains("MARKER"), "session data in a body: {b}");
    }
}
