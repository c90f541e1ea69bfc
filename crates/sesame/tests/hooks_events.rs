//! Events, hooks and half-authenticated states, on the in-memory store.
// Test code: a failed expectation must fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sesame::{
    ClientInfo, CreationRateLimit, Error, MemoryStore, RequestCheck, SessionConfig, SessionEvent,
    SessionHooks, SessionManager, TokenAction, Verdict,
};
use tokio::sync::broadcast::error::TryRecvError;

fn manager() -> SessionManager {
    let config = SessionConfig::builder().token_secret(vec![9u8; 32]).build().unwrap();
    SessionManager::new(Arc::new(MemoryStore::new()), config)
}

fn token(a: TokenAction) -> String {
    match a {
        TokenAction::Set { token, .. } => token.expose(),
        other => panic!("expected a new token, got {other:?}"),
    }
}

fn client(ip: &str, ua: &str) -> Option<ClientInfo> {
    Some(ClientInfo::new(Some(ip.into()), Some(ua)))
}

fn drain(rx: &mut tokio::sync::broadcast::Receiver<SessionEvent>) -> Vec<SessionEvent> {
    let mut out = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(e) => out.push(e),
            Err(TryRecvError::Empty) => return out,
            Err(e) => panic!("event stream: {e}"),
        }
    }
}

// Checklist 40: creation, login (rotation), logout, revocation, reuse and invalid tokens are
// each one event, carrying session ids (digests) and never a token.
#[tokio::test]
async fn events_carry_ids_never_tokens() {
    let m = SessionManager::new(
        Arc::new(MemoryStore::new()),
        SessionConfig::builder()
            .token_secret(vec![9u8; 32])
            .grace_period(Duration::ZERO)
            .build()
            .unwrap(),
    );
    let mut rx = m.events();
    let s = m.open(None);
    s.insert("cart", &["apple"]).await.unwrap();
    let anon = token(s.commit().await.unwrap());
    let s = m.open(Some(&anon));
    s.login("alice").await.unwrap();
    let t1 = token(s.commit().await.unwrap());
    let s = m.open(Some(&t1));
    s.cycle_id().await.unwrap();
    let t2 = token(s.commit().await.unwrap());
    // The superseded token after its (zero) grace window: reuse.
    assert!(!m.open(Some(&t1)).exists().await.unwrap());
    m.open(Some("forged-token")).exists().await.unwrap();
    let s = m.open(None);
    s.login("alice").await.unwrap();
    let t3 = token(s.commit().await.unwrap());
    let s = m.open(Some(&t3));
    s.logout().await.unwrap();
    assert_eq!(s.commit().await.unwrap(), TokenAction::Clear);
    let events = drain(&mut rx);
    let codec = m.config().tokens();
    let id = |t: &str| codec.parse(t).unwrap().key().id();
    let alice = Some("alice".to_string());
    assert_eq!(
        events,
        vec![
            SessionEvent::Created { id: id(&anon), principal: None },
            SessionEvent::Rotated { from: id(&anon), to: id(&t1), principal: alice.clone() },
            SessionEvent::Rotated { from: id(&t1), to: id(&t2), principal: alice.clone() },
            SessionEvent::ReuseDetected { id: id(&t1) },
            SessionEvent::InvalidToken {
                reason: "session token has 12 characters, expected 68".into()
            },
            SessionEvent::Created { id: id(&t3), principal: alice },
            SessionEvent::Destroyed { id: id(&t3) },
        ]
    );
    let printed = format!("{events:?}") + &serde_json::to_string(&events).unwrap();
    for t in [&anon, &t1, &t2, &t3] {
        assert!(!printed.contains(t.as_str()), "a token in an event");
    }
    // Revocations.
    let s = m.open(None);
    s.login("bob").await.unwrap();
    let b1 = token(s.commit().await.unwrap());
    assert!(m.revoke_session("bob", &id(&b1)).await.unwrap());
    assert_eq!(drain(&mut rx).last(), Some(&SessionEvent::Revoked { id: id(&b1) }));
    let s = m.open(None);
    s.login("bob").await.unwrap();
    token(s.commit().await.unwrap());
    assert_eq!(m.revoke_user("bob").await.unwrap(), 1);
    assert_eq!(
        drain(&mut rx).last(),
        Some(&SessionEvent::UserRevoked { principal: "bob".into(), count: 1 })
    );
}

// Checklist 38: the creation hook refuses the third new session of one client within the
// window, with a retry time, and nothing is written; other clients and existing sessions are
// not affected.
#[tokio::test]
async fn creation_rate_limit_per_client() {
    let m = manager().with_hooks(Arc::new(CreationRateLimit::new(2, Duration::from_secs(60))));
    let mut tokens = Vec::new();
    for _ in 0..2 {
        let s = m.open_for(None, client("10.0.0.1", "ua"));
        s.insert("x", &1).await.unwrap();
        tokens.push(token(s.commit().await.unwrap()));
    }
    let s = m.open_for(None, client("10.0.0.1", "ua"));
    s.insert("x", &1).await.unwrap();
    match s.commit().await {
        Err(Error::CreationRefused { retry_after: Some(d), .. }) => {
            assert!(d <= Duration::from_secs(60))
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(m.stats().created, 2);
    let s = m.open_for(None, client("10.0.0.2", "ua"));
    s.insert("x", &1).await.unwrap();
    token(s.commit().await.unwrap());
    // An existing session of the limited client keeps working (saves are not creations).
    let s = m.open_for(Some(&tokens[0]), client("10.0.0.1", "ua"));
    s.insert("x", &2).await.unwrap();
    assert_eq!(s.commit().await.unwrap(), TokenAction::Keep);
}

/// Ends a session used from another user agent; demands a fresh login from another address.
#[derive(Debug)]
struct Binding;

#[async_trait]
impl SessionHooks for Binding {
    async fn on_request(&self, check: &RequestCheck<'_>) -> Verdict {
        let (Some(then), Some(now)) = (check.recorded, check.client) else {
            return Verdict::Continue;
        };
        if then.user_agent != now.user_agent {
            Verdict::End
        } else if then.ip != now.ip {
            Verdict::StepUp
        } else {
            Verdict::Continue
        }
    }
}

// Checklist 39: the client is recorded at creation; the request hook sees it and this
// request's client, and can demand step-up (the session stays, only login proceeds) or end
// the session (gone on every instance, the client told to drop its token).
#[tokio::test]
async fn binding_and_request_hook() {
    let m = manager().with_hooks(Arc::new(Binding));
    let s = m.open_for(None, client("10.0.0.1", "firefox"));
    s.login("carol").await.unwrap();
    let t = token(s.commit().await.unwrap());
    let s = m.open_for(Some(&t), client("10.0.0.1", "firefox"));
    assert_eq!(
        s.created_by().await.unwrap(),
        ClientInfo::new(Some("10.0.0.1".into()), Some("firefox")).into()
    );
    assert_eq!(s.principal().await.unwrap().as_deref(), Some("carol"));
    // Another address: step-up.
    let s = m.open_for(Some(&t), client("10.9.9.9", "firefox"));
    assert!(matches!(s.principal().await, Err(Error::StepUpRequired)));
    assert!(matches!(s.insert("x", &1).await, Err(Error::StepUpRequired)));
    s.login("carol").await.unwrap();
    let t2 = token(s.commit().await.unwrap());
    assert!(m.open_for(Some(&t2), client("10.0.0.1", "firefox")).exists().await.unwrap());
    // Another user agent: the session ends.
    let s = m.open_for(Some(&t2), client("10.0.0.1", "curl"));
    assert!(matches!(s.get::<u64>("x").await, Err(Error::SessionEnded)));
    assert_eq!(s.commit().await.unwrap(), TokenAction::Clear);
    assert!(!m.open(Some(&t2)).exists().await.unwrap(), "ended in the store");
    assert!(m.list_user("carol").await.unwrap().is_empty());
}

// Checklist 31: a login waiting for its second step never counts as logged in (no principal,
// no authentication time, no user index entry, require_recent_auth fails), rotates the token,
// and is completed (and cleared) by login or dropped by cancel.
#[tokio::test]
async fn pending_login_is_not_a_login() {
    let m = manager();
    let s = m.open(None);
    s.insert("cart", &["apple"]).await.unwrap();
    let anon = token(s.commit().await.unwrap());
    let s = m.open(Some(&anon));
    s.begin_login("dave", "mfa").await.unwrap();
    let half = token(s.commit().await.unwrap());
    assert_ne!(half, anon, "the token rotates at the first step");
    let s = m.open(Some(&half));
    let pending = s.pending_login().await.unwrap().unwrap();
    assert_eq!((pending.principal.as_str(), pending.step.as_str()), ("dave", "mfa"));
    assert_eq!(s.principal().await.unwrap(), None);
    assert_eq!(s.auth_time_ms().await.unwrap(), None);
    assert!(matches!(
        s.require_recent_auth(Duration::from_secs(3600)).await,
        Err(Error::NotLoggedIn)
    ));
    assert!(matches!(s.list_sessions().await, Err(Error::NotLoggedIn)));
    assert!(m.list_user("dave").await.unwrap().is_empty());
    assert!(matches!(s.insert("sesame.pending", &1).await, Err(Error::Invalid(_))));
    s.login("dave").await.unwrap();
    let full = token(s.commit().await.unwrap());
    let s = m.open(Some(&full));
    assert_eq!(s.principal().await.unwrap().as_deref(), Some("dave"));
    assert_eq!(s.pending_login().await.unwrap(), None);
    assert_eq!(s.get::<Vec<String>>("cart").await.unwrap().unwrap(), ["apple"]);
    // A cancelled pending login leaves an anonymous session.
    let s = m.open(None);
    s.begin_login("erin", "password_reset").await.unwrap();
    let t = token(s.commit().await.unwrap());
    let s = m.open(Some(&t));
    s.cancel_pending_login().await.unwrap();
    s.commit().await.unwrap();
    let s = m.open(Some(&t));
    assert_eq!(s.pending_login().await.unwrap(), None);
    assert_eq!(s.principal().await.unwrap(), None);
}

// Checklist 46: without a secret the configuration does not build; the development opt-out
// is explicit and reported.
#[test]
fn a_secret_is_required() {
    let err = SessionConfig::builder().build().unwrap_err();
    assert!(err.to_string().contains("token_secret"), "{err}");
    let dev = SessionConfig::builder().insecure_development_secret().build().unwrap();
    assert!(dev.is_insecure_development());
}
