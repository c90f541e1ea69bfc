//! The spans around store operations carry the session's public id, never the token or the
//! principal. (A test binary of its own: no other test registers callsites meanwhile.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sesame_testkit::logs::Captured;
use std::sync::Arc;

use sesame::{MemoryStore, SessionConfig, SessionManager, SessionToken, TokenAction};

fn token(a: TokenAction) -> SessionToken {
    match a {
        TokenAction::Set { token, .. } => token,
        other => panic!("expected a new token, got {other:?}"),
    }
}

// Each store operation runs in a `sesame.store` span naming the operation and the session's
// public id; neither the token nor the principal's name appears.
#[tokio::test]
async fn store_spans_carry_the_session_id_and_never_the_token() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let m = SessionManager::new(
        Arc::new(MemoryStore::new()),
        SessionConfig::builder().insecure_development_secret().build().unwrap(),
    );
    let s = m.open(None);
    s.login("principal-carol").await.unwrap();
    let t = token(s.commit().await.unwrap());
    let s = m.open(Some(&t.expose()));
    s.insert("x", &1).await.unwrap();
    s.commit().await.unwrap();
    let id = t.key().id();

    let out = captured.text();
    for op in ["create", "load", "save"] {
        let line = out
            .lines()
            .find(|l| l.contains(&format!("sesame.store{{op=\"{op}\" id={id}}}")))
            .unwrap_or_else(|| panic!("no {op} span with the id in:\n{out}"));
        assert!(line.contains("close"), "{line}");
    }
    assert!(!out.contains(&t.expose()), "the token was logged:\n{out}");
    assert!(!out.contains("principal-carol"), "the principal was logged:\n{out}");
}
