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
use sesame_axum::{CookieConfig, SessionLayer};
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
    SessionManager::new(Arc::new(MemoryStore::new()), SessionConfig::default())
}

// The Set-Cookie that hands out a token, the one that refreshes a persistent cookie and the
// one that clears it at logout are all sensitive.
#[tokio::test]
async fn set_cookie_is_sensitive() {
    let cookie = CookieConfig::builder().persistent(true).build().unwrap();
    let mut router = common::routes().layer(SessionLayer::new(manager()).with_cookie(cookie));
    let res = call(&mut router, "POST", "/set/x/1", None).await;
    let set = res.headers().get("set-cookie").unwrap();
    assert!(set.is_sensitive(), "a new token");
    let pair = set.to_str().unwrap().split(';').next().unwrap().to_string();
    let res = call(&mut router, "POST", "/set/x/2", Some(&pair)).await;
    assert!(res.headers().get("set-cookie").unwrap().is_sensitive(), "a refresh");
    let res = call(&mut router, "POST", "/logout", Some(&pair)).await;
    assert!(res.headers().get("set-cookie").unwrap().is_sensitive(), "a clear");
}
