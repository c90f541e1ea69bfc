//! The session handle on the in-memory store: laziness, change tracking, rotation, login,
//! logout, re-authentication and counters.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sesame::{
    Delta, Error, Loaded, MemoryStore, Policy, Record, SaveOutcome, SessionConfig, SessionInfo,
    SessionKey, SessionManager, SessionToken, Store, StoreError, Taken, TokenAction,
};

fn manager(store: Arc<dyn Store>) -> SessionManager {
    SessionManager::new(store, SessionConfig::default())
}

fn token(a: TokenAction) -> SessionToken {
    match a {
        TokenAction::Set { token, .. } => token,
        other => panic!("expected a new token, got {other:?}"),
    }
}

/// Counts the calls that reach the store (instrumentation around the real memory store).
#[derive(Default)]
struct Counting {
    inner: MemoryStore,
    calls: AtomicUsize,
    refuse_creates: AtomicUsize,
    /// Fault injection: takes seal the session, then report a failure (a lost reply).
    fail_takes: AtomicUsize,
    /// Fault injection: finish_take calls fail without doing anything.
    fail_finishes: AtomicUsize,
}

impl Counting {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    fn hit(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl Store for Counting {
    async fn create(
        &self,
        k: &SessionKey,
        r: &Record,
        n: u64,
        p: &Policy,
    ) -> Result<bool, StoreError> {
        self.hit();
        // Fault injection: report the key as taken, as a token collision would.
        if self.refuse_creates.load(Ordering::SeqCst) > 0 {
            self.refuse_creates.fetch_sub(1, Ordering::SeqCst);
            return Ok(false);
        }
        self.inner.create(k, r, n, p).await
    }
    async fn load(&self, k: &SessionKey, n: u64, p: &Policy) -> Result<Option<Loaded>, StoreError> {
        self.hit();
        self.inner.load(k, n, p).await
    }
    async fn save(
        &self,
        k: &SessionKey,
        b: &Record,
        d: &Delta,
        n: u64,
        p: &Policy,
    ) -> Result<SaveOutcome, StoreError> {
        self.hit();
        self.inner.save(k, b, d, n, p).await
    }
    async fn destroy(&self, k: &SessionKey) -> Result<bool, StoreError> {
        self.hit();
        self.inner.destroy(k).await
    }
    async fn take(&self, k: &SessionKey, n: u64) -> Result<Taken, StoreError> {
        self.hit();
        let taken = self.inner.take(k, n).await;
        if self.fail_takes.load(Ordering::SeqCst) > 0 {
            self.fail_takes.fetch_sub(1, Ordering::SeqCst);
            return Err(StoreError::Unavailable { message: "lost reply".into(), source: None });
        }
        taken
    }
    async fn finish_take(&self, k: &SessionKey, restore: bool, n: u64) -> Result<bool, StoreError> {
        self.hit();
        if self.fail_finishes.load(Ordering::SeqCst) > 0 {
            self.fail_finishes.fetch_sub(1, Ordering::SeqCst);
            return Err(StoreError::Unavailable { message: "down".into(), source: None });
        }
        self.inner.finish_take(k, restore, n).await
    }
    async fn list_user(&self, p: &str, n: u64) -> Result<Vec<SessionInfo>, StoreError> {
        self.hit();
        self.inner.list_user(p, n).await
    }
    async fn revoke(&self, p: &str, id: &str) -> Result<bool, StoreError> {
        self.hit();
        self.inner.revoke(p, id).await
    }
    async fn revoke_all(&self, p: &str, keep: Option<&str>) -> Result<u64, StoreError> {
        self.hit();
        self.inner.revoke_all(p, keep).await
    }
}

// A request that never touches its session, or reads it without a token, makes no store call;
// a read that changes nothing makes exactly one call (the load) and writes nothing.
#[tokio::test]
async fn lazy_and_no_write_without_change() {
    let store = Arc::new(Counting::default());
    let m = manager(store.clone());
    assert_eq!(m.open(None).commit().await.unwrap(), TokenAction::Keep);
    let s = m.open(None);
    assert_eq!(s.get::<u32>("n").await.unwrap(), None);
    assert_eq!(s.commit().await.unwrap(), TokenAction::Keep, "nothing to create");
    assert_eq!(store.calls(), 0);
    let s = m.open(None);
    s.insert("n", &1u32).await.unwrap();
    let t = token(s.commit().await.unwrap()).expose();
    let before = store.calls();
    let s = m.open(Some(&t));
    assert_eq!(s.get::<u32>("n").await.unwrap(), Some(1));
    s.insert("n", &1u32).await.unwrap(); // the value it already has
    assert_eq!(s.commit().await.unwrap(), TokenAction::Keep);
    assert_eq!(store.calls() - before, 1, "one load, no save");
    let s = m.open(Some(&t));
    let _ = s.id().await.unwrap();
    let _ = s.id().await.unwrap();
    assert_eq!(store.calls() - before, 2, "loaded once per request");
}

// cycle_id gives a new token with the same data; the old token is dead; changes made after
// the rotation in the same request are kept.
#[tokio::test]
async fn cycle_id_keeps_data_and_kills_old_token() {
    let m = manager(Arc::new(MemoryStore::new()));
    let s = m.open(None);
    s.insert("a", "1").await.unwrap();
    let t1 = token(s.commit().await.unwrap()).expose();
    let s = m.open(Some(&t1));
    s.cycle_id().await.unwrap();
    s.insert("b", "2").await.unwrap();
    let t2 = token(s.commit().await.unwrap()).expose();
    assert_ne!(t1, t2);
    let s = m.open(Some(&t2));
    assert_eq!(s.get::<String>("a").await.unwrap().as_deref(), Some("1"));
    assert_eq!(s.get::<String>("b").await.unwrap().as_deref(), Some("2"));
    assert!(!m.open(Some(&t1)).exists().await.unwrap());
}

// login binds the principal, records the authentication time, rotates the token and keeps
// the data; require_recent_auth passes now and fails when the login is older than allowed.
#[tokio::test]
async fn login_rotates_and_records_auth_time() {
    let m = manager(Arc::new(MemoryStore::new()));
    let s = m.open(None);
    s.insert("cart", &["tea"]).await.unwrap();
    let anon = token(s.commit().await.unwrap()).expose();
    let s = m.open(Some(&anon));
    assert!(matches!(
        s.require_recent_auth(Duration::from_secs(60)).await,
        Err(Error::NotLoggedIn)
    ));
    s.login("alice").await.unwrap();
    let t = token(s.commit().await.unwrap()).expose();
    assert_ne!(t, anon);
    assert!(t.starts_with(
        &sesame::TokenCodec::default()
            .generate(sesame::Tag::for_principal("alice"))
            .unwrap()
            .expose()[..5]
    ));
    let s = m.open(Some(&t));
    assert_eq!(s.principal().await.unwrap().as_deref(), Some("alice"));
    assert_eq!(s.get::<Vec<String>>("cart").await.unwrap().unwrap(), ["tea"]);
    s.require_recent_auth(Duration::from_secs(60)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(matches!(
        s.require_recent_auth(Duration::from_millis(10)).await,
        Err(Error::StaleAuthentication)
    ));
    assert!(!m.open(Some(&anon)).exists().await.unwrap(), "pre-login token dead");
    assert!(m.open(None).login("").await.is_err());
    assert!(m.open(None).login("a\nb").await.is_err());
    assert!(m.open(None).login(&"x".repeat(300)).await.is_err());
}

// Logout deletes the session and tells the client to forget its token; the handle refuses
// further use in that request.
#[tokio::test]
async fn logout_destroys() {
    let m = manager(Arc::new(MemoryStore::new()));
    let s = m.open(None);
    s.login("bob").await.unwrap();
    let t = token(s.commit().await.unwrap()).expose();
    let s = m.open(Some(&t));
    s.logout().await.unwrap();
    assert!(matches!(s.get::<u8>("x").await, Err(Error::Destroyed)));
    assert_eq!(s.commit().await.unwrap(), TokenAction::Clear);
    assert!(!m.open(Some(&t)).exists().await.unwrap());
    assert!(m.list_user("bob").await.unwrap().is_empty());
    assert_eq!(m.stats().destroyed, 1);
}

// Malformed tokens are counted and never reach the store; unknown well-formed ones are
// counted after one lookup and never adopted.
#[tokio::test]
async fn invalid_and_unknown_tokens_are_counted() {
    let store = Arc::new(Counting::default());
    let m = manager(store.clone());
    for bad in ["", "short", &"A".repeat(64), &"é".repeat(32)] {
        assert!(!m.open(Some(bad)).exists().await.unwrap());
    }
    assert_eq!(store.calls(), 0);
    assert_eq!(m.stats().invalid_tokens, 4);
    let unknown = sesame::TokenCodec::default().generate(sesame::Tag::random().unwrap()).unwrap();
    let s = m.open(Some(&unknown.expose()));
    s.insert("a", &1).await.unwrap();
    let issued = token(s.commit().await.unwrap());
    assert_ne!(issued, unknown, "never adopted");
    assert_eq!(m.stats().unknown_tokens, 1);
}

// A create that meets a taken key draws a new token and never joins the existing session.
#[tokio::test]
async fn create_collision_draws_a_new_token() {
    let store = Arc::new(Counting::default());
    store.refuse_creates.store(2, Ordering::SeqCst);
    let m = manager(store.clone());
    let s = m.open(None);
    s.insert("a", &1).await.unwrap();
    let t = token(s.commit().await.unwrap());
    assert_eq!(store.calls(), 3, "two refused creates, then one that succeeded");
    assert!(m.open(Some(&t.expose())).exists().await.unwrap());
    store.refuse_creates.store(3, Ordering::SeqCst);
    let s = m.open(None);
    s.insert("a", &1).await.unwrap();
    assert!(s.commit().await.is_err(), "three collisions in a row are an error, not a join");
}

// A take that sealed the session but reported a failure (a lost reply): the login fails
// with the error, the old session is put back and works; if even that fails, the retried
// login still carries the session's data along (the sealed record is handed over again).
#[tokio::test]
async fn failed_take_loses_nothing() {
    let store = Arc::new(Counting::default());
    let m = manager(store.clone());
    let s = m.open(None);
    s.insert("cart", &vec!["tea"]).await.unwrap();
    let old = token(s.commit().await.unwrap());

    store.fail_takes.store(1, Ordering::SeqCst);
    let s = m.open(Some(&old.expose()));
    s.login("ann").await.unwrap();
    assert!(s.commit().await.is_err());
    let again = m.open(Some(&old.expose()));
    assert_eq!(again.get::<Vec<String>>("cart").await.unwrap(), Some(vec!["tea".to_string()]));

    store.fail_takes.store(1, Ordering::SeqCst);
    store.fail_finishes.store(1, Ordering::SeqCst);
    let s = m.open(Some(&old.expose()));
    s.login("ann").await.unwrap();
    assert!(s.commit().await.is_err());
    assert!(!m.open(Some(&old.expose())).exists().await.unwrap(), "sealed, not valid");
    let retry = m.open(Some(&old.expose()));
    retry.login("ann").await.unwrap();
    let new = token(retry.commit().await.unwrap());
    let s = m.open(Some(&new.expose()));
    assert_eq!(s.principal().await.unwrap().as_deref(), Some("ann"));
    assert_eq!(s.get::<Vec<String>>("cart").await.unwrap(), Some(vec!["tea".to_string()]));
    assert!(!m.open(Some(&old.expose())).exists().await.unwrap());
}

// A session over the configured size is refused at commit with a limit error; nothing is written.
#[tokio::test]
async fn oversized_session_is_refused() {
    let config =
        SessionConfig::builder().max_session_bytes(1024).compress_above(1 << 20).build().unwrap();
    let m = SessionManager::new(Arc::new(MemoryStore::new()), config);
    let s = m.open(None);
    s.insert("big", &"x".repeat(2000)).await.unwrap();
    let e = s.commit().await.unwrap_err();
    assert!(matches!(e, Error::Store(StoreError::LimitExceeded(_))), "{e}");
    let s = m.open(None);
    s.insert("ok", "small").await.unwrap();
    let t = token(s.commit().await.unwrap()).expose();
    let s = m.open(Some(&t));
    s.insert("big", &"x".repeat(2000)).await.unwrap();
    assert!(s.commit().await.is_err());
    let s = m.open(Some(&t));
    assert_eq!(s.get::<String>("big").await.unwrap(), None, "nothing partial written");
}

// The per-user cap applies at login: beyond it the oldest session is logged out.
#[tokio::test]
async fn cap_per_user_at_login() {
    let config = SessionConfig::builder().max_sessions_per_user(2).build().unwrap();
    let m = SessionManager::new(Arc::new(MemoryStore::new()), config);
    let mut tokens = Vec::new();
    for _ in 0..3 {
        let s = m.open(None);
        s.login("carol").await.unwrap();
        tokens.push(token(s.commit().await.unwrap()).expose());
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    assert!(!m.open(Some(&tokens[0])).exists().await.unwrap());
    assert!(m.open(Some(&tokens[2])).exists().await.unwrap());
    assert_eq!(m.list_user("carol").await.unwrap().len(), 2);
    assert_eq!(m.revoke_user("carol").await.unwrap(), 2);
    assert!(!m.open(Some(&tokens[2])).exists().await.unwrap());
}

// A login refused at the per-user cap, or one whose result would be oversized, fails without
// losing the session it started from: the old token still works and keeps its data.
#[tokio::test]
async fn failed_login_keeps_the_old_session() {
    let config = SessionConfig::builder()
        .max_sessions_per_user(1)
        .cap_policy(sesame::CapPolicy::Refuse)
        .max_session_bytes(1024)
        .compress_above(1 << 20)
        .build()
        .unwrap();
    let m = SessionManager::new(Arc::new(MemoryStore::new()), config);
    let s = m.open(None);
    s.login("dora").await.unwrap();
    token(s.commit().await.unwrap());
    let s = m.open(None);
    s.insert("cart", &["tea"]).await.unwrap();
    let anon = token(s.commit().await.unwrap()).expose();
    let s = m.open(Some(&anon));
    s.login("dora").await.unwrap();
    let e = s.commit().await.unwrap_err();
    assert!(matches!(e, Error::Store(StoreError::LimitExceeded(_))), "{e}");
    let s = m.open(Some(&anon));
    assert_eq!(s.get::<Vec<String>>("cart").await.unwrap().unwrap(), ["tea"]);
    assert_eq!(s.principal().await.unwrap(), None);
    s.login("eli").await.unwrap();
    s.insert("big", &"x".repeat(2000)).await.unwrap();
    assert!(s.commit().await.is_err());
    let s = m.open(Some(&anon));
    assert_eq!(s.get::<Vec<String>>("cart").await.unwrap().unwrap(), ["tea"], "still there");
    assert!(m.list_user("eli").await.unwrap().is_empty());
}
