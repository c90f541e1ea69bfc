//! The session handle on the in-memory store: laziness, change tracking, exact updates,
//! rotation and its grace window, login, logout, revocation, re-authentication and counters.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sesame::{
    CreateOutcome, Delta, Error, Loaded, Login, Lookup, MemoryStore, Policy, Record, RotateOutcome,
    Rotation, SaveOutcome, SessionConfig, SessionInfo, SessionKey, SessionManager, SessionToken,
    Store, StoreError, TokenAction, UserRef,
};
use tokio::sync::Barrier;

fn manager(store: Arc<dyn Store>) -> SessionManager {
    SessionManager::new(
        store,
        SessionConfig::builder().insecure_development_secret().build().unwrap(),
    )
}

fn with_grace(grace: Duration) -> SessionManager {
    let config =
        SessionConfig::builder().insecure_development_secret().grace_period(grace).build().unwrap();
    SessionManager::new(Arc::new(MemoryStore::new()), config)
}

fn token(a: TokenAction) -> SessionToken {
    match a {
        TokenAction::Set { token, .. } => token,
        other => panic!("expected a new token, got {other:?}"),
    }
}

/// A committed session of `principal` (anonymous when `None`) holding `cart`.
async fn session_with_cart(m: &SessionManager, principal: Option<&str>, cart: &[&str]) -> String {
    let s = m.open(None);
    if let Some(p) = principal {
        s.login(p).await.unwrap();
    }
    s.insert("cart", cart).await.unwrap();
    token(s.commit().await.unwrap()).expose()
}

async fn cart(m: &SessionManager, t: &str) -> Option<Vec<String>> {
    m.open(Some(t)).get("cart").await.unwrap()
}

fn unavailable(message: &str) -> StoreError {
    StoreError::Unavailable { message: message.into(), source: None }
}

/// Counts the calls that reach the store (instrumentation around the real memory store), with
/// fault injection a real store cannot be made to produce on demand.
#[derive(Default)]
struct Counting {
    inner: MemoryStore,
    calls: AtomicUsize,
    /// Creates report the key as taken, as a token collision would.
    refuse_creates: AtomicUsize,
    /// Rotations fail before doing anything (the store could not be reached).
    fail_rotates: AtomicUsize,
    /// Rotations are done, then report a failure (a lost reply).
    lose_rotate_replies: AtomicUsize,
}

impl Counting {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    fn hit(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

/// Takes one from a fault counter; whether there was one.
fn take_one(n: &AtomicUsize) -> bool {
    n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1)).is_ok()
}

#[async_trait]
impl Store for Counting {
    async fn create(
        &self,
        k: &SessionKey,
        r: &Record,
        l: Option<&Login>,
        n: u64,
        p: &Policy,
    ) -> Result<CreateOutcome, StoreError> {
        self.hit();
        if take_one(&self.refuse_creates) {
            return Ok(CreateOutcome::Exists);
        }
        self.inner.create(k, r, l, n, p).await
    }
    async fn load(&self, k: &SessionKey, n: u64, p: &Policy) -> Result<Lookup, StoreError> {
        self.hit();
        self.inner.load(k, n, p).await
    }
    async fn save(
        &self,
        k: &SessionKey,
        b: &Loaded,
        d: &Delta,
        n: u64,
        p: &Policy,
    ) -> Result<SaveOutcome, StoreError> {
        self.hit();
        self.inner.save(k, b, d, n, p).await
    }
    async fn rotate(
        &self,
        r: &Rotation<'_>,
        n: u64,
        p: &Policy,
    ) -> Result<RotateOutcome, StoreError> {
        self.hit();
        if take_one(&self.fail_rotates) {
            return Err(unavailable("down"));
        }
        let out = self.inner.rotate(r, n, p).await;
        if take_one(&self.lose_rotate_replies) {
            return Err(unavailable("lost reply"));
        }
        out
    }
    async fn peek(&self, keys: &[SessionKey], n: u64) -> Result<Vec<Option<Record>>, StoreError> {
        self.inner.peek(keys, n).await
    }

    async fn destroy(&self, k: &SessionKey, n: u64) -> Result<bool, StoreError> {
        self.hit();
        self.inner.destroy(k, n).await
    }
    async fn user_epoch(&self, p: UserRef) -> Result<u64, StoreError> {
        self.hit();
        self.inner.user_epoch(p).await
    }
    async fn list_user(
        &self,
        p: UserRef,
        n: u64,
        limit: usize,
    ) -> Result<Vec<SessionInfo>, StoreError> {
        self.hit();
        self.inner.list_user(p, n, limit).await
    }
    async fn revoke(&self, p: UserRef, id: &str, n: u64) -> Result<bool, StoreError> {
        self.hit();
        self.inner.revoke(p, id, n).await
    }
    async fn revoke_all(&self, p: UserRef, keep: Option<&str>, n: u64) -> Result<u64, StoreError> {
        self.hit();
        self.inner.revoke_all(p, keep, n).await
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

// cycle_id gives a new token with the same data (changes made after it in the same request
// kept); the old token resolves to the new session during the grace window, and its client is
// sent the new token; presented after the window, it gets no session and revokes the new one.
#[tokio::test]
async fn cycle_id_supersedes_the_old_token_for_a_grace_window() {
    let m = with_grace(Duration::from_millis(200));
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
    let new_id = s.id().await.unwrap();
    // Within the grace window: the old token reaches the new session, and even a read sends
    // the client its successor.
    let s = m.open(Some(&t1));
    assert_eq!(s.get::<String>("b").await.unwrap().as_deref(), Some("2"));
    assert_eq!(s.id().await.unwrap(), new_id);
    assert_eq!(token(s.commit().await.unwrap()).expose(), t2, "the successor is sent");
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(!m.open(Some(&t1)).exists().await.unwrap(), "reused after the window");
    assert_eq!(m.stats().reused_tokens, 1);
    assert!(!m.open(Some(&t2)).exists().await.unwrap(), "the lineage is revoked");
}

// With a zero grace window, presenting the superseded token at all is reuse.
#[tokio::test]
async fn zero_grace_makes_any_later_use_reuse() {
    let m = with_grace(Duration::ZERO);
    let t1 = session_with_cart(&m, Some("zed"), &["tea"]).await;
    let s = m.open(Some(&t1));
    s.cycle_id().await.unwrap();
    let t2 = token(s.commit().await.unwrap()).expose();
    tokio::time::sleep(Duration::from_millis(2)).await;
    assert!(!m.open(Some(&t1)).exists().await.unwrap());
    assert!(!m.open(Some(&t2)).exists().await.unwrap());
    assert!(m.list_user("zed").await.unwrap().is_empty());
}

// login binds the principal, records the authentication time, rotates the token and keeps
// the anonymous data; the pre-login token is dead at once (and presenting it is not reuse);
// require_recent_auth passes now and fails when the login is older than allowed.
#[tokio::test]
async fn login_rotates_and_records_auth_time() {
    let m = manager(Arc::new(MemoryStore::new()));
    let anon = session_with_cart(&m, None, &["tea"]).await;
    let s = m.open(Some(&anon));
    assert!(matches!(
        s.require_recent_auth(Duration::from_secs(60)).await,
        Err(Error::NotLoggedIn)
    ));
    s.login("alice").await.unwrap();
    let t = token(s.commit().await.unwrap()).expose();
    assert_ne!(t, anon);
    assert!(t.starts_with(
        &sesame::TokenCodec::insecure_development()
            .generate(m.config().principal("alice").user().tag())
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
    assert!(m.open(Some(&t)).exists().await.unwrap(), "and that is not reuse");
    assert_eq!(m.stats().reused_tokens, 0);
    assert!(m.open(None).login("").await.is_err());
    assert!(m.open(None).login("a\nb").await.is_err());
    assert!(m.open(None).login(&"x".repeat(300)).await.is_err());
}

// Told not to keep anonymous data, a login starts from an empty session.
#[tokio::test]
async fn login_can_drop_anonymous_data() {
    let config = SessionConfig::builder()
        .insecure_development_secret()
        .keep_data_on_login(false)
        .build()
        .unwrap();
    let m = SessionManager::new(Arc::new(MemoryStore::new()), config);
    let anon = session_with_cart(&m, None, &["tea"]).await;
    let s = m.open(Some(&anon));
    s.login("ada").await.unwrap();
    let t = token(s.commit().await.unwrap()).expose();
    assert_eq!(cart(&m, &t).await, None);
    assert_eq!(m.open(Some(&t)).principal().await.unwrap().as_deref(), Some("ada"));
    assert!(!m.open(Some(&anon)).exists().await.unwrap());
}

// A re-login as the same principal keeps the data under a new token, and the old token is
// superseded (it resolves to the new session during the grace window), not killed.
#[tokio::test]
async fn relogin_keeps_data_and_supersedes_the_token() {
    let m = manager(Arc::new(MemoryStore::new()));
    let t1 = session_with_cart(&m, Some("rae"), &["tea"]).await;
    let s = m.open(Some(&t1));
    s.login("rae").await.unwrap();
    let t2 = token(s.commit().await.unwrap()).expose();
    assert_ne!(t1, t2);
    assert_eq!(cart(&m, &t2).await.unwrap(), ["tea"]);
    assert_eq!(cart(&m, &t1).await.unwrap(), ["tea"], "within the grace window");
    let list = m.list_user("rae").await.unwrap();
    assert_eq!(list.len(), 1, "one session, not two");
    assert_eq!(Some(&list[0].id), m.open(Some(&t2)).id().await.unwrap().as_ref());
}

// A login as another principal than the session's ends that session and starts a clean one:
// nothing of the first user's data reaches the second.
#[tokio::test]
async fn login_as_another_principal_starts_clean() {
    let m = manager(Arc::new(MemoryStore::new()));
    let alice = session_with_cart(&m, Some("alice"), &["alice's"]).await;
    let s = m.open(Some(&alice));
    s.login("bob").await.unwrap();
    let bob = token(s.commit().await.unwrap()).expose();
    assert_eq!(m.open(Some(&bob)).principal().await.unwrap().as_deref(), Some("bob"));
    assert_eq!(cart(&m, &bob).await, None, "nothing carried over");
    assert!(!m.open(Some(&alice)).exists().await.unwrap(), "alice's session ended");
    assert!(m.list_user("alice").await.unwrap().is_empty());
    assert_eq!(m.list_user("bob").await.unwrap().len(), 1);
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

// A logout through a superseded token (within its grace window) ends the lineage's live
// session, not only the token it was given.
#[tokio::test]
async fn logout_through_a_superseded_token_ends_the_lineage() {
    let m = manager(Arc::new(MemoryStore::new()));
    let t1 = session_with_cart(&m, Some("lou"), &["tea"]).await;
    let s = m.open(Some(&t1));
    s.cycle_id().await.unwrap();
    let t2 = token(s.commit().await.unwrap()).expose();
    let s = m.open(Some(&t1));
    s.logout().await.unwrap();
    assert_eq!(s.commit().await.unwrap(), TokenAction::Clear);
    assert!(!m.open(Some(&t2)).exists().await.unwrap());
    assert!(m.list_user("lou").await.unwrap().is_empty());
}

// A request whose session is logged out by another request between its load and its commit
// fails with SessionEnded and writes nothing (counted); a rotation fails the same way; a login
// in that position starts a clean session instead (nothing of the old one carried).
#[tokio::test]
async fn commit_after_logout_elsewhere_is_session_ended() {
    let m = manager(Arc::new(MemoryStore::new()));
    let t = session_with_cart(&m, Some("sam"), &["tea"]).await;
    let saver = m.open(Some(&t));
    saver.insert("note", "late").await.unwrap();
    let rotator = m.open(Some(&t));
    rotator.cycle_id().await.unwrap();
    let relogin = m.open(Some(&t));
    relogin.login("sam").await.unwrap();
    let out = m.open(Some(&t));
    out.logout().await.unwrap();
    assert_eq!(out.commit().await.unwrap(), TokenAction::Clear);
    assert!(matches!(saver.commit().await, Err(Error::SessionEnded)));
    assert!(matches!(rotator.commit().await, Err(Error::SessionEnded)));
    assert_eq!(m.stats().sessions_ended, 2);
    assert!(!m.open(Some(&t)).exists().await.unwrap(), "nothing written back");
    let fresh = token(relogin.commit().await.unwrap()).expose();
    assert_eq!(cart(&m, &fresh).await, None, "a clean session");
    let list = m.list_user("sam").await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(Some(&list[0].id), m.open(Some(&fresh)).id().await.unwrap().as_ref());
}

// Logins of a user that began before revoke_user fail at commit with LoginRevoked, whether
// they create, rotate the user's own session or elevate an anonymous one (which is left as
// it was); a login that begins after the revocation succeeds.
#[tokio::test]
async fn logins_overtaken_by_revoke_user_fail() {
    let m = manager(Arc::new(MemoryStore::new()));
    let own = session_with_cart(&m, Some("vic"), &["tea"]).await;
    let anon = session_with_cart(&m, None, &["jam"]).await;
    let create = m.open(None);
    create.login("vic").await.unwrap();
    let rotate = m.open(Some(&own));
    rotate.login("vic").await.unwrap();
    let elevate = m.open(Some(&anon));
    elevate.login("vic").await.unwrap();
    assert_eq!(m.revoke_user("vic").await.unwrap(), 1);
    for s in [create, rotate, elevate] {
        assert!(matches!(s.commit().await, Err(Error::LoginRevoked)));
    }
    assert!(m.list_user("vic").await.unwrap().is_empty());
    assert!(!m.open(Some(&own)).exists().await.unwrap());
    assert_eq!(cart(&m, &anon).await.unwrap(), ["jam"], "the anonymous session is untouched");
    let later = m.open(Some(&anon));
    later.login("vic").await.unwrap();
    let t = token(later.commit().await.unwrap()).expose();
    assert_eq!(cart(&m, &t).await.unwrap(), ["jam"]);
    assert_eq!(m.list_user("vic").await.unwrap().len(), 1);
}

// revoke_other_sessions ends every other session of the user and keeps the caller's;
// revoke_session ends one session of the caller's user by id, and only of that user.
#[tokio::test]
async fn revoke_other_sessions_keeps_the_callers() {
    let m = manager(Arc::new(MemoryStore::new()));
    let a = session_with_cart(&m, Some("ola"), &["a"]).await;
    let b = session_with_cart(&m, Some("ola"), &["b"]).await;
    let c = session_with_cart(&m, Some("ola"), &["c"]).await;
    assert_eq!(m.open(Some(&b)).revoke_other_sessions().await.unwrap(), 2);
    assert!(!m.open(Some(&a)).exists().await.unwrap());
    assert!(!m.open(Some(&c)).exists().await.unwrap());
    assert_eq!(cart(&m, &b).await.unwrap(), ["b"]);
    let list = m.open(Some(&b)).list_sessions().await.unwrap();
    assert_eq!(list.len(), 1);
    let d = session_with_cart(&m, Some("ola"), &["d"]).await;
    let other = session_with_cart(&m, Some("pat"), &["e"]).await;
    let d_id = m.open(Some(&d)).id().await.unwrap().unwrap();
    let other_id = m.open(Some(&other)).id().await.unwrap().unwrap();
    let s = m.open(Some(&b));
    assert!(!s.revoke_session(&other_id).await.unwrap(), "not ola's session");
    assert!(s.revoke_session(&d_id).await.unwrap());
    assert!(!s.revoke_session(&d_id).await.unwrap(), "already gone");
    assert!(!m.open(Some(&d)).exists().await.unwrap());
    assert!(m.open(Some(&other)).exists().await.unwrap());
    assert!(m.open(Some(&b)).exists().await.unwrap());
}

// Fifty requests that all loaded one session before any of them committed each add an item
// with update: all fifty items persist (no lost update), in the value every later request reads.
#[tokio::test]
async fn concurrent_updates_of_one_attribute_all_persist() {
    let m = manager(Arc::new(MemoryStore::new()));
    let t = session_with_cart(&m, None, &[]).await;
    let n = 50;
    let barrier = Arc::new(Barrier::new(n));
    let mut tasks = Vec::new();
    for i in 0..n {
        let (m, t, barrier) = (m.clone(), t.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let s = m.open(Some(&t));
            let item = format!("item-{i}");
            let seen =
                s.update("cart", move |c: &mut Vec<String>| c.push(item.clone())).await.unwrap();
            assert_eq!(seen, [format!("item-{i}")], "computed from the loaded (empty) cart");
            barrier.wait().await; // every request has loaded before any commits
            assert_eq!(s.commit().await.unwrap(), TokenAction::Keep);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut got = cart(&m, &t).await.unwrap();
    got.sort();
    let mut want: Vec<String> = (0..n).map(|i| format!("item-{i}")).collect();
    want.sort();
    assert_eq!(got, want);
}

// Within one request, update follows the request's own changes (an insert, earlier updates),
// and the stored result is what the request computed.
#[tokio::test]
async fn update_follows_the_requests_own_changes() {
    let m = manager(Arc::new(MemoryStore::new()));
    let s = m.open(None);
    assert_eq!(s.update("n", |n: &mut u64| *n += 1).await.unwrap(), 1, "default, then +1");
    s.insert("n", &10u64).await.unwrap();
    assert_eq!(s.update("n", |n: &mut u64| *n += 1).await.unwrap(), 11);
    assert_eq!(s.update("n", |n: &mut u64| *n *= 2).await.unwrap(), 22);
    let t = token(s.commit().await.unwrap()).expose();
    let s = m.open(Some(&t));
    assert_eq!(s.get::<u64>("n").await.unwrap(), Some(22));
    assert_eq!(s.update("n", |n: &mut u64| *n += 1).await.unwrap(), 23);
    assert_eq!(s.update("n", |n: &mut u64| *n += 1).await.unwrap(), 24);
    s.commit().await.unwrap();
    assert_eq!(m.open(Some(&t)).get::<u64>("n").await.unwrap(), Some(24));
    let s = m.open(Some(&t));
    s.insert("s", "text").await.unwrap();
    assert!(matches!(s.update("s", |n: &mut u64| *n += 1).await, Err(Error::Value { .. })));
}

// An update whose attribute another request changed to something it cannot read fails at
// commit with a store Update error, and nothing of that request is written.
#[tokio::test]
async fn update_that_cannot_run_again_fails_the_commit() {
    let m = manager(Arc::new(MemoryStore::new()));
    let s = m.open(None);
    s.insert("n", &1u64).await.unwrap();
    let t = token(s.commit().await.unwrap()).expose();
    let counter = m.open(Some(&t));
    assert_eq!(counter.update("n", |n: &mut u64| *n += 1).await.unwrap(), 2);
    counter.insert("other", "x").await.unwrap();
    let writer = m.open(Some(&t));
    writer.insert("n", "no longer a number").await.unwrap();
    writer.commit().await.unwrap();
    let e = counter.commit().await.unwrap_err();
    assert!(matches!(e, Error::Store(StoreError::Update { ref name, .. }) if name == "n"), "{e}");
    let s = m.open(Some(&t));
    assert_eq!(s.get::<String>("n").await.unwrap().as_deref(), Some("no longer a number"));
    assert_eq!(s.get::<String>("other").await.unwrap(), None, "nothing partial written");
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
    let unknown = sesame::TokenCodec::insecure_development()
        .generate(sesame::Tag::random().unwrap())
        .unwrap();
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

// A re-login whose rotation fails loses nothing: when the store was not reached, the old
// token still works with its data; when the rotation was done but its reply lost, the retried
// login (old token, within the grace window) reaches the new session and keeps the data.
#[tokio::test]
async fn failed_rotation_loses_nothing() {
    let store = Arc::new(Counting::default());
    let m = manager(store.clone());
    let old = session_with_cart(&m, Some("ann"), &["tea"]).await;

    store.fail_rotates.store(1, Ordering::SeqCst);
    let s = m.open(Some(&old));
    s.login("ann").await.unwrap();
    assert!(s.commit().await.unwrap_err().is_unavailable());
    assert_eq!(cart(&m, &old).await.unwrap(), ["tea"]);

    store.lose_rotate_replies.store(1, Ordering::SeqCst);
    let s = m.open(Some(&old));
    s.login("ann").await.unwrap();
    assert!(s.commit().await.unwrap_err().is_unavailable());
    let retry = m.open(Some(&old));
    retry.login("ann").await.unwrap();
    let new = token(retry.commit().await.unwrap()).expose();
    let s = m.open(Some(&new));
    assert_eq!(s.principal().await.unwrap().as_deref(), Some("ann"));
    assert_eq!(cart(&m, &new).await.unwrap(), ["tea"]);
    assert_eq!(m.list_user("ann").await.unwrap().len(), 1, "one session of ann");
}

// A session over the configured size is refused at commit with a limit error; nothing is written.
#[tokio::test]
async fn oversized_session_is_refused() {
    let config = SessionConfig::builder()
        .insecure_development_secret()
        .max_session_bytes(1024)
        .compress_above(1 << 20)
        .build()
        .unwrap();
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

// The per-user cap applies at login: beyond it the least recently active session is logged out.
#[tokio::test]
async fn cap_per_user_at_login() {
    let config = SessionConfig::builder()
        .insecure_development_secret()
        .max_sessions_per_user(2)
        .build()
        .unwrap();
    assert_eq!(config.policy().max_sessions_per_user, 2);
    assert_eq!(
        SessionConfig::builder()
            .insecure_development_secret()
            .build()
            .unwrap()
            .policy()
            .max_sessions_per_user,
        sesame::DEFAULT_MAX_SESSIONS_PER_USER
    );
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

// list_user puts the most recently active session first: a write once touch_after has passed
// moves a session to the front (an earlier one keeps its place, as a read would).
#[tokio::test]
async fn list_is_most_recently_active_first() {
    let config = SessionConfig::builder()
        .insecure_development_secret()
        .touch_after(Duration::from_millis(50))
        .build()
        .unwrap();
    let m = SessionManager::new(Arc::new(MemoryStore::new()), config);
    let mut ids = Vec::new();
    let mut tokens = Vec::new();
    for i in 0..3 {
        let t = session_with_cart(&m, Some("liz"), &[&i.to_string()]).await;
        ids.push(m.open(Some(&t)).id().await.unwrap().unwrap());
        tokens.push(t);
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let order = |list: Vec<SessionInfo>| list.into_iter().map(|s| s.id).collect::<Vec<_>>();
    let list = m.list_user("liz").await.unwrap();
    assert_eq!(order(list), [ids[2].clone(), ids[1].clone(), ids[0].clone()]);
    let s = m.open(Some(&tokens[0]));
    s.insert("early", &true).await.unwrap();
    s.commit().await.unwrap();
    let list = m.list_user("liz").await.unwrap();
    assert_eq!(order(list), [ids[2].clone(), ids[1].clone(), ids[0].clone()], "not yet due");
    tokio::time::sleep(Duration::from_millis(60)).await;
    let s = m.open(Some(&tokens[0]));
    s.insert("seen", &true).await.unwrap();
    s.commit().await.unwrap();
    let list = m.list_user("liz").await.unwrap();
    assert_eq!(order(list), [ids[0].clone(), ids[2].clone(), ids[1].clone()]);
}

// A login refused at the per-user cap, or one whose result would be oversized, fails without
// losing the session it started from: the old token still works and keeps its data.
#[tokio::test]
async fn failed_login_keeps_the_old_session() {
    let config = SessionConfig::builder()
        .insecure_development_secret()
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
    let anon = session_with_cart(&m, None, &["tea"]).await;
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
    assert_eq!(cart(&m, &anon).await.unwrap(), ["tea"], "still there");
    assert!(m.list_user("eli").await.unwrap().is_empty());
}

// With renew_after, a request to a session older than that gets a new token (same data, the
// old token superseded with a grace window); a younger one does not.
#[tokio::test]
async fn renewal_timer_rotates_active_sessions() {
    let config = SessionConfig::builder()
        .insecure_development_secret()
        .renew_after(Duration::from_secs(1))
        .build()
        .unwrap();
    let m = SessionManager::new(Arc::new(MemoryStore::new()), config);
    let t1 = session_with_cart(&m, Some("ren"), &["tea"]).await;
    let s = m.open(Some(&t1));
    assert_eq!(cart(&m, &t1).await.unwrap(), ["tea"]);
    assert_eq!(s.commit().await.unwrap(), TokenAction::Keep, "young: no renewal");
    tokio::time::sleep(Duration::from_millis(1050)).await;
    let s = m.open(Some(&t1));
    assert_eq!(s.get::<Vec<String>>("cart").await.unwrap().unwrap(), ["tea"]);
    let t2 = token(s.commit().await.unwrap()).expose();
    assert_ne!(t1, t2);
    assert_eq!(cart(&m, &t2).await.unwrap(), ["tea"]);
    assert!(m.open(Some(&t1)).exists().await.unwrap(), "within the grace window");
    assert_eq!(m.list_user("ren").await.unwrap().len(), 1);
}

// `modify` sees absence as `None`, may remove, and runs again at commit on the value another
// request stored meanwhile; `attributes` lists what this request sees, without sesame's own
// entries, in name order.
#[tokio::test]
async fn modify_and_attributes() {
    let m = manager(Arc::new(MemoryStore::new()));
    let client = sesame::ClientInfo::new(Some("127.0.0.1".into()), Some("test"));
    let s = m.open_for(None, Some(client));
    s.insert("b", &2).await.unwrap();
    let got = s.modify("a", |v: Option<u64>| Some(v.map_or(10, |n| n + 1))).await.unwrap();
    assert_eq!(got, Some(10));
    let t = token(s.commit().await.unwrap()).expose();

    // Two requests read a = 10; the first adds 5 and commits; the second's "add 1" runs again
    // on 15 at commit.
    let (one, two) = (m.open(Some(&t)), m.open(Some(&t)));
    assert_eq!(one.modify("a", |v: Option<u64>| v.map(|n| n + 5)).await.unwrap(), Some(15));
    assert_eq!(two.modify("a", |v: Option<u64>| v.map(|n| n + 1)).await.unwrap(), Some(11));
    one.commit().await.unwrap();
    two.commit().await.unwrap();
    let s = m.open(Some(&t));
    assert_eq!(s.get::<u64>("a").await.unwrap(), Some(16));

    // `None` removes; a removal of an absent attribute leaves it absent.
    assert_eq!(s.modify("b", |_: Option<u64>| None).await.unwrap(), None);
    assert_eq!(s.modify("c", |v: Option<u64>| v).await.unwrap(), None);
    s.insert("z", "last").await.unwrap();
    let all = s.attributes::<serde_json::Value>().await.unwrap();
    assert_eq!(all, vec![("a".into(), 16.into()), ("z".into(), "last".into())]);
    s.commit().await.unwrap();
    let s = m.open(Some(&t));
    let names: Vec<String> =
        s.attributes::<serde_json::Value>().await.unwrap().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["a", "z"], "the stored client record (sesame.client) is not listed");
    assert!(s.get::<u64>("b").await.unwrap().is_none());
}

/// The transport layers box a session's commit once per request. Like the store futures, it
/// stays within glibc's per-thread cache of freed blocks (up to 1032 bytes): each branch's
/// store call inside it is boxed on its own (docs/BENCHMARKS.md, "Futures and the allocator").
#[tokio::test]
async fn a_commit_future_fits_the_allocators_thread_cache() {
    let m = with_grace(Duration::from_secs(5));
    let s = m.open(None);
    let commit = s.commit();
    let size = std::mem::size_of_val(&commit);
    assert!(size <= 1032, "a commit's future takes {size} bytes");
    commit.await.unwrap();
}
