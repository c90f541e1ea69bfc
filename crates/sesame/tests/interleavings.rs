//! Deterministic interleavings of whole requests at the `Session` level, on the in-memory
//! store: each request is a `SessionManager::open(Some(token))` session driven step by step
//! (load, act, commit) in a chosen order, or released together by a `tokio::sync::Barrier`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use sesame::{
    Error, MemoryStore, Session, SessionConfig, SessionConfigBuilder, SessionManager, SessionToken,
    TokenAction,
};
use tokio::sync::Barrier;

fn manager_with(b: SessionConfigBuilder) -> SessionManager {
    SessionManager::new(Arc::new(MemoryStore::new()), b.build().unwrap())
}

fn manager() -> SessionManager {
    manager_with(SessionConfig::builder().insecure_development_secret())
}

fn set_token(a: TokenAction) -> SessionToken {
    match a {
        TokenAction::Set { token, .. } => token,
        other => panic!("expected a token to be set, got {other:?}"),
    }
}

/// An anonymous session holding a cart; its token text.
async fn anonymous_with_cart(m: &SessionManager) -> String {
    let s = m.open(None);
    s.insert("cart", &vec!["apple".to_string()]).await.unwrap();
    set_token(s.commit().await.unwrap()).expose()
}

/// A session logged in as `principal` holding `secret`; its token text.
async fn logged_in(m: &SessionManager, principal: &str) -> String {
    let s = m.open(None);
    s.login(principal).await.unwrap();
    s.insert("secret", &format!("{principal}'s secret")).await.unwrap();
    set_token(s.commit().await.unwrap()).expose()
}

/// Opens a request on `token` and loads its session; returns it and whether one was found.
async fn request(m: &SessionManager, token: &str) -> (Session, bool) {
    let s = m.open(Some(token));
    let exists = s.exists().await.unwrap();
    (s, exists)
}

async fn live(m: &SessionManager, token: &str) -> bool {
    request(m, token).await.1
}

async fn principal_of(m: &SessionManager, token: &str) -> Option<String> {
    m.open(Some(token)).principal().await.unwrap()
}

// Two requests on one logged-in token both log in again as its user and commit in turn: the
// first rotates, the second joins that rotation (the same head token is Set), one live session.
#[tokio::test]
async fn concurrent_relogins_share_one_successor() {
    let m = manager();
    let t0 = logged_in(&m, "alice").await;
    let (r1, _) = request(&m, &t0).await;
    let (r2, _) = request(&m, &t0).await;
    r1.login("alice").await.unwrap();
    r2.login("alice").await.unwrap();
    r2.insert("from_r2", &2u32).await.unwrap();
    let a1 = set_token(r1.commit().await.unwrap());
    let a2 = set_token(r2.commit().await.unwrap());
    assert_ne!(a1.expose(), t0);
    assert_eq!(a1, a2, "the second request is given the first one's token");
    let sessions = m.list_user("alice").await.unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].id, a1.key().id());
    let s = m.open(Some(&a1.expose()));
    assert_eq!(
        s.get::<u32>("from_r2").await.unwrap(),
        Some(2),
        "the second request's change landed"
    );
    assert_eq!(s.get::<String>("secret").await.unwrap().as_deref(), Some("alice's secret"));
}

// The same, released together by a barrier between load and commit: one token for both, one
// live session.
#[tokio::test]
async fn concurrent_relogins_with_barrier() {
    let m = manager();
    let t0 = logged_in(&m, "alice").await;
    let barrier = Arc::new(Barrier::new(8));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (m, t0, barrier) = (m.clone(), t0.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let (s, exists) = request(&m, &t0).await;
            assert!(exists);
            s.login("alice").await.unwrap();
            barrier.wait().await;
            set_token(s.commit().await.unwrap())
        }));
    }
    let mut tokens = Vec::new();
    for t in tasks {
        tokens.push(t.await.unwrap());
    }
    assert!(tokens.iter().all(|t| t == &tokens[0]), "every request got the same token");
    assert_eq!(m.list_user("alice").await.unwrap().len(), 1);
}

// Two requests on one anonymous token both log in as the same user: the first elevates the
// session (the old token dies at once, so the second cannot be handed the first one's token)
// and the second starts a clean session. Observed behaviour, documented: two live sessions, and
// the second (whose cookie the browser keeps last) has lost the cart.
#[tokio::test]
async fn concurrent_logins_from_one_anonymous_token() {
    let m = manager();
    let t0 = anonymous_with_cart(&m).await;
    let (r1, _) = request(&m, &t0).await;
    let (r2, _) = request(&m, &t0).await;
    r1.login("alice").await.unwrap();
    r2.login("alice").await.unwrap();
    let a1 = set_token(r1.commit().await.unwrap());
    let a2 = set_token(r2.commit().await.unwrap());
    assert_ne!(a1, a2);
    assert_eq!(m.list_user("alice").await.unwrap().len(), 2);
    let cart = |t: SessionToken| {
        let m = m.clone();
        async move { m.open(Some(&t.expose())).get::<Vec<String>>("cart").await.unwrap() }
    };
    assert_eq!(cart(a1).await, Some(vec!["apple".to_string()]));
    assert_eq!(cart(a2).await, None);
}

// A logout that commits between another request's load and that request's rotation ends the
// session: the rotation fails with SessionEnded and nothing is live.
#[tokio::test]
async fn logout_between_load_and_rotation() {
    let m = manager();
    let t0 = logged_in(&m, "alice").await;
    let (r1, _) = request(&m, &t0).await;
    let (r2, _) = request(&m, &t0).await;
    r1.logout().await.unwrap();
    assert_eq!(r1.commit().await.unwrap(), TokenAction::Clear);
    r2.cycle_id().await.unwrap();
    assert!(matches!(r2.commit().await, Err(Error::SessionEnded)));
    assert!(m.list_user("alice").await.unwrap().is_empty());
    assert!(!live(&m, &t0).await);
    assert_eq!(m.stats().sessions_ended, 1);
}

// A logout that commits after another request's rotation (it loaded the old token before)
// still ends the lineage: the rotated session is gone too.
#[tokio::test]
async fn logout_after_rotation_ends_the_head() {
    let m = manager();
    let t0 = logged_in(&m, "alice").await;
    let (r1, _) = request(&m, &t0).await;
    let (r2, _) = request(&m, &t0).await;
    r2.cycle_id().await.unwrap();
    let t1 = set_token(r2.commit().await.unwrap()).expose();
    r1.logout().await.unwrap();
    assert_eq!(r1.commit().await.unwrap(), TokenAction::Clear);
    assert!(!live(&m, &t1).await);
    assert!(!live(&m, &t0).await);
    assert!(m.list_user("alice").await.unwrap().is_empty());
}

// A revoke_user between login() and commit() refuses the login with LoginRevoked and writes
// nothing, whether the login elevates an anonymous session, starts a fresh one, or re-logs in.
#[tokio::test]
async fn revoke_user_between_login_and_commit() {
    let m = manager();
    let anon = anonymous_with_cart(&m).await;
    let (r, _) = request(&m, &anon).await;
    r.login("bob").await.unwrap();
    m.revoke_user("bob").await.unwrap();
    assert!(matches!(r.commit().await, Err(Error::LoginRevoked)));
    assert!(m.list_user("bob").await.unwrap().is_empty());
    assert!(live(&m, &anon).await, "the anonymous session is untouched");
    assert_eq!(principal_of(&m, &anon).await, None);
    // A login without a session.
    let r = m.open(None);
    r.login("bob").await.unwrap();
    m.revoke_user("bob").await.unwrap();
    assert!(matches!(r.commit().await, Err(Error::LoginRevoked)));
    assert!(m.list_user("bob").await.unwrap().is_empty());
    // A re-login of a session of the user.
    let t = logged_in(&m, "bob").await;
    let (r, _) = request(&m, &t).await;
    r.login("bob").await.unwrap();
    assert_eq!(m.revoke_user("bob").await.unwrap(), 1);
    assert!(matches!(r.commit().await, Err(Error::LoginRevoked)));
    assert!(m.list_user("bob").await.unwrap().is_empty());
    assert!(!live(&m, &t).await);
}

// A save committing after a concurrent logout fails with SessionEnded and writes nothing.
#[tokio::test]
async fn save_after_concurrent_logout() {
    let m = manager();
    let t0 = logged_in(&m, "alice").await;
    let (r1, _) = request(&m, &t0).await;
    let (r2, _) = request(&m, &t0).await;
    r2.insert("late", &1u32).await.unwrap();
    r1.logout().await.unwrap();
    assert_eq!(r1.commit().await.unwrap(), TokenAction::Clear);
    assert!(matches!(r2.commit().await, Err(Error::SessionEnded)));
    assert!(!live(&m, &t0).await);
    assert!(m.list_user("alice").await.unwrap().is_empty());
    assert_eq!(m.stats().sessions_ended, 1);
}

// A login as user B over user A's session starts clean (A's attributes are gone) and ends A's
// session.
#[tokio::test]
async fn login_as_other_user_starts_clean() {
    let m = manager();
    let ta = logged_in(&m, "alice").await;
    let (r, _) = request(&m, &ta).await;
    assert_eq!(r.principal().await.unwrap().as_deref(), Some("alice"));
    r.login("bob").await.unwrap();
    let tb = set_token(r.commit().await.unwrap()).expose();
    let s = m.open(Some(&tb));
    assert_eq!(s.principal().await.unwrap().as_deref(), Some("bob"));
    assert_eq!(s.get::<String>("secret").await.unwrap(), None, "A's attributes are gone");
    assert!(!live(&m, &ta).await, "A's session is ended");
    assert!(m.list_user("alice").await.unwrap().is_empty());
    assert_eq!(m.list_user("bob").await.unwrap().len(), 1);
}

// An anonymous session logging in keeps its cart, and its old token is dead at once; with
// keep_data_on_login(false) the logged-in session starts without it.
#[tokio::test]
async fn login_keeps_the_cart_unless_told_not_to() {
    for keep in [true, false] {
        let m = manager_with(
            SessionConfig::builder().insecure_development_secret().keep_data_on_login(keep),
        );
        let t0 = anonymous_with_cart(&m).await;
        let (r, _) = request(&m, &t0).await;
        r.login("carol").await.unwrap();
        let t1 = set_token(r.commit().await.unwrap()).expose();
        let s = m.open(Some(&t1));
        assert_eq!(s.principal().await.unwrap().as_deref(), Some("carol"));
        let cart = s.get::<Vec<String>>("cart").await.unwrap();
        if keep {
            assert_eq!(cart, Some(vec!["apple".to_string()]));
        } else {
            assert_eq!(cart, None, "keep_data_on_login(false)");
        }
        assert!(!live(&m, &t0).await, "the anonymous token is dead (keep = {keep})");
        assert_eq!(m.stats().reused_tokens, 0, "its later use is not reuse");
        assert_eq!(m.list_user("carol").await.unwrap().len(), 1);
    }
}

// Within the grace window a superseded token reaches its successor and its client is sent the
// successor; presented after the window it gets no session, revokes the lineage, and is counted
// as reused.
#[tokio::test]
async fn superseded_token_after_grace_is_reuse() {
    let m = manager_with(
        SessionConfig::builder()
            .insecure_development_secret()
            .grace_period(Duration::from_millis(300)),
    );
    let t0 = logged_in(&m, "alice").await;
    let (r, _) = request(&m, &t0).await;
    r.cycle_id().await.unwrap();
    let t1 = set_token(r.commit().await.unwrap());
    let (r, exists) = request(&m, &t0).await;
    assert!(exists, "within grace");
    assert_eq!(set_token(r.commit().await.unwrap()), t1, "the client is sent the successor");
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(!live(&m, &t0).await);
    assert_eq!(m.stats().reused_tokens, 1);
    assert!(!live(&m, &t1.expose()).await, "the lineage is revoked");
    assert!(m.list_user("alice").await.unwrap().is_empty());
}

// A request that loaded before a concurrent rotation and saves after it (within grace) lands
// its change on the rotated session.
#[tokio::test]
async fn save_within_grace_lands_on_the_head() {
    let m = manager();
    let t0 = logged_in(&m, "alice").await;
    let (r1, _) = request(&m, &t0).await;
    let (r2, _) = request(&m, &t0).await;
    r1.cycle_id().await.unwrap();
    let t1 = set_token(r1.commit().await.unwrap()).expose();
    r2.insert("late", &1u32).await.unwrap();
    r2.commit().await.unwrap();
    let s = m.open(Some(&t1));
    assert_eq!(s.get::<u32>("late").await.unwrap(), Some(1));
    assert_eq!(m.list_user("alice").await.unwrap().len(), 1);
}

// The renewal timer: a request before the interval keeps the token, the first request after it
// rotates the token (keeping the data), and a parallel request on the old token gets the same
// new token.
#[tokio::test]
async fn renewal_timer_rotates_after_the_interval() {
    let m = manager_with(
        SessionConfig::builder().insecure_development_secret().renew_after(Duration::from_secs(1)),
    );
    let t0 = logged_in(&m, "alice").await;
    let (r, _) = request(&m, &t0).await;
    assert_eq!(r.commit().await.unwrap(), TokenAction::Keep, "before the interval");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (r1, _) = request(&m, &t0).await;
    let (r2, _) = request(&m, &t0).await;
    let t1 = set_token(r1.commit().await.unwrap());
    assert_ne!(t1.expose(), t0);
    assert_eq!(set_token(r2.commit().await.unwrap()), t1, "the parallel request joins the renewal");
    let (r, _) = request(&m, &t1.expose()).await;
    assert_eq!(r.get::<String>("secret").await.unwrap().as_deref(), Some("alice's secret"));
    assert_eq!(r.commit().await.unwrap(), TokenAction::Keep, "the new token is fresh");
    assert_eq!(m.list_user("alice").await.unwrap().len(), 1);
}

// Exact updates of one attribute from two interleaved requests keep both changes.
#[tokio::test]
async fn interleaved_updates_keep_both() {
    let m = manager();
    let t0 = anonymous_with_cart(&m).await;
    let (r1, _) = request(&m, &t0).await;
    let (r2, _) = request(&m, &t0).await;
    let c1: Vec<String> =
        r1.update("cart", |c: &mut Vec<String>| c.push("bread".into())).await.unwrap();
    let c2: Vec<String> =
        r2.update("cart", |c: &mut Vec<String>| c.push("milk".into())).await.unwrap();
    assert_eq!(c1, ["apple", "bread"]);
    assert_eq!(c2, ["apple", "milk"]);
    assert_eq!(r1.commit().await.unwrap(), TokenAction::Keep);
    assert_eq!(r2.commit().await.unwrap(), TokenAction::Keep);
    let cart = m.open(Some(&t0)).get::<Vec<String>>("cart").await.unwrap();
    assert_eq!(cart, Some(vec!["apple".into(), "bread".into(), "milk".into()]));
}

// An anonymous session's login racing a renewal of its token (the renewal timer or cycle_id on
// a parallel request, committed first): the login must not be lost; the client ends up holding
// a session logged in as the user.
#[tokio::test]
async fn login_racing_a_renewal_is_not_lost() {
    let m = manager();
    let t0 = anonymous_with_cart(&m).await;
    let (renewing, _) = request(&m, &t0).await;
    let (logging_in, _) = request(&m, &t0).await;
    renewing.cycle_id().await.unwrap();
    logging_in.login("dave").await.unwrap();
    set_token(renewing.commit().await.unwrap());
    let t = set_token(logging_in.commit().await.unwrap()).expose();
    assert_eq!(principal_of(&m, &t).await.as_deref(), Some("dave"), "the login was dropped");
    assert_eq!(m.list_user("dave").await.unwrap().len(), 1);
}

// Session fixation through a renewal: an attacker plants anonymous token t0; the victim's
// session is renewed (t0 superseded by t1) and then logs in (t1 elevated to t2). Presented
// within t0's grace window, the planted token must not reach the logged-in session.
#[tokio::test]
async fn planted_token_does_not_follow_a_renewal_into_a_login() {
    let m = manager();
    let t0 = anonymous_with_cart(&m).await;
    let (victim, _) = request(&m, &t0).await;
    victim.cycle_id().await.unwrap();
    let t1 = set_token(victim.commit().await.unwrap()).expose();
    let (victim, _) = request(&m, &t1).await;
    victim.login("erin").await.unwrap();
    let t2 = set_token(victim.commit().await.unwrap()).expose();
    assert_eq!(principal_of(&m, &t2).await.as_deref(), Some("erin"));
    let (attacker, exists) = request(&m, &t0).await;
    assert_eq!(attacker.principal().await.unwrap(), None, "the planted token reached the login");
    assert!(!exists);
}
