//! The routes and answers of the demo's JSON API that docs/DEMO.md documents and the other
//! demo tests do not reach: the cart, revoking one session by id, malformed bodies, and the
//! style sheet.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use reqwest::{Client, Method};
use serde_json::{json, Value};
use sesame::SessionConfig;
use sesame_axum::CookieConfig;
use sesame_cli::demo::{self, DemoOptions};

async fn demo() -> String {
    let opts = DemoOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        instances: 2,
        store: None,
        config: SessionConfig::builder().insecure_development_secret().build().unwrap(),
        cookie: CookieConfig::builder().name("sesame_demo").secure(false).build().unwrap(),
        durability: None,
        near_cache: false,
    };
    let router = demo::build(&opts).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

/// A client that keeps its cookie, like a browser.
fn browser() -> Client {
    Client::builder().cookie_store(true).build().unwrap()
}

async fn send(c: &Client, method: Method, url: String, body: Option<Value>) -> (u16, Value) {
    let mut rb = c.request(method, url);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

// The cart adds an item once, removes it exactly (removing an absent item changes nothing),
// and refuses an empty or overlong item with a message.
#[tokio::test]
async fn cart_adds_and_removes_items() {
    let base = demo().await;
    let c = browser();
    let add = |item: &str| {
        send(&c, Method::POST, format!("{base}/api/cart"), Some(json!({ "item": item })))
    };
    assert_eq!(add("tea").await, (200, json!({ "cart": ["tea"] })));
    assert_eq!(add("coffee").await, (200, json!({ "cart": ["tea", "coffee"] })));
    assert_eq!(add("tea").await, (200, json!({ "cart": ["tea", "coffee"] })), "no duplicate");
    let error = json!({ "error": "item: 1 to 64 characters" });
    assert_eq!(add(" ").await, (400, error.clone()));
    assert_eq!(add(&"x".repeat(65)).await, (400, error));
    let remove = |item: &str| send(&c, Method::DELETE, format!("{base}/api/cart/{item}"), None);
    assert_eq!(remove("tea").await, (200, json!({ "cart": ["coffee"] })));
    assert_eq!(remove("milk").await, (200, json!({ "cart": ["coffee"] })));
}

async fn revoke(c: &Client, base: &str, id: &str) -> (u16, Value) {
    send(c, Method::POST, format!("{base}/api/sessions/{id}/revoke"), None).await
}

// One session of the user is revoked by id from another (200, then 404 when done again);
// the current session is not (400: logout ends it); without a login it is 401.
#[tokio::test]
async fn revoke_one_session_by_id() {
    let base = demo().await;
    let (phone, laptop) = (browser(), browser());
    for c in [&phone, &laptop] {
        let r =
            send(c, Method::POST, format!("{base}/api/login"), Some(json!({"username": "ivy"})));
        assert_eq!(r.await.0, 200);
    }
    let (_, list) = send(&laptop, Method::GET, format!("{base}/api/sessions"), None).await;
    let id_of = |current: bool| {
        let s = list["sessions"].as_array().unwrap().iter().find(|s| s["current"] == current);
        s.unwrap()["id"].as_str().unwrap().to_string()
    };
    let (own, other) = (id_of(true), id_of(false));
    let current = json!({ "error": "use logout to end the current session" });
    assert_eq!(revoke(&laptop, &base, &own).await, (400, current));
    assert_eq!(revoke(&laptop, &base, &other).await, (200, json!({ "revoked": 1 })));
    assert_eq!(send(&phone, Method::GET, format!("{base}/api/me"), None).await.0, 401);
    assert_eq!(revoke(&laptop, &base, &other).await, (404, json!({ "error": "no such session" })));
    let not_logged_in = (401, json!({ "error": "not logged in" }));
    assert_eq!(revoke(&browser(), &base, &own).await, not_logged_in);
}

// A body that is not JSON is 415, JSON without the expected field 422, both with a plain
// text message; the page's style sheet is served as CSS.
#[tokio::test]
async fn malformed_bodies_and_the_style_sheet() {
    let base = demo().await;
    let c = Client::new();
    let r = c.post(format!("{base}/api/login")).body("ivy").send().await.unwrap();
    assert_eq!(r.status(), 415);
    assert!(r.text().await.unwrap().contains("Content-Type: application/json"));
    let (status, body) =
        send(&c, Method::POST, format!("{base}/api/login"), Some(json!({"user": "ivy"}))).await;
    assert_eq!(status, 422);
    assert!(body.as_str().unwrap().contains("missing field `username`"), "{body}");
    let css = c.get(format!("{base}/demo.css")).send().await.unwrap();
    assert_eq!(
        (css.status().as_u16(), &css.headers()["content-type"]),
        (200, &"text/css".parse().unwrap())
    );
}
