//! Response headers that carry a token are marked sensitive (`HeaderValue::is_sensitive`), so
//! that HTTP/2 and HTTP/3 encoders never put them in their compression tables and
//! well-behaved middleware does not print them. The flag does not travel on the wire, so these
//! tests call the layer's service in the process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::Router;
use http::{Request, Response};
use sesame::{MemoryStore, SessionConfig, SessionManager};
use sesame_axum::{CookieConfig, SessionLayer, TransportConfig, BEARER_RESPONSE_HEADER};
use tower_service::Service;

async fn call(
    router: &mut Router,
    method: &str,
    uri: &str,
    cookie: Option<&str>,
) -> Response<Body> {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    std::future::poll_fn(|cx| Service::<Request<Body>>::poll_ready(router, cx)).await.unwrap();
    router.call(req.body(Body::empty()).unwrap()).await.unwrap()
}

fn manager() -> SessionManager {
    SessionManager::new(
        Arc::new(MemoryStore::new()),
        SessionConfig::builder().insecure_development_secret().build().unwrap(),
    )
}

// The Set-Cookie that hands out a token, the one that refreshes a persistent cookie and the
// one that clears it at logout are all sensitive.
#[tokio::test]
async fn set_cookie_is_sensitive() {
    let cookie = CookieConfig::builder().persistent(true).build().unwrap();
    // A save refreshes the cookie when it pushes the idle deadline: once touch_after has passed.
    let touch_after = std::time::Duration::from_millis(10);
    let config = SessionConfig::builder()
        .insecure_development_secret()
        .touch_after(touch_after)
        .build()
        .unwrap();
    let manager = SessionManager::new(Arc::new(MemoryStore::new()), config);
    let mut router = common::routes().layer(SessionLayer::new(manager).with_cookie(cookie));
    let res = call(&mut router, "POST", "/set/x/1", None).await;
    let set = res.headers().get("set-cookie").unwrap();
    assert!(set.is_sensitive(), "a new token");
    let pair = set.to_str().unwrap().split(';').next().unwrap().to_string();
    tokio::time::sleep(touch_after * 2).await;
    let res = call(&mut router, "POST", "/set/x/2", Some(&pair)).await;
    assert!(res.headers().get("set-cookie").unwrap().is_sensitive(), "a refresh");
    let res = call(&mut router, "POST", "/logout", Some(&pair)).await;
    assert!(res.headers().get("set-cookie").unwrap().is_sensitive(), "a clear");
}

// The response header that hands a token to a header client is sensitive, and so is the
// empty one that tells it to forget its token.
#[tokio::test]
async fn token_header_is_sensitive() {
    let transport = TransportConfig::builder().cookie(false).bearer(true).build().unwrap();
    let mut router = common::routes().layer(SessionLayer::new(manager()).with_transport(transport));
    let res = call(&mut router, "POST", "/login/alice", None).await;
    let token = res.headers().get(BEARER_RESPONSE_HEADER).unwrap();
    assert!(token.is_sensitive());
    let auth = format!("Bearer {}", token.to_str().unwrap());
    let req = Request::post("/logout").header("authorization", auth).body(Body::empty());
    let res = router.call(req.unwrap()).await.unwrap();
    let cleared = res.headers().get(BEARER_RESPONSE_HEADER).unwrap();
    assert!(cleared.is_empty() && cleared.is_sensitive());
}
