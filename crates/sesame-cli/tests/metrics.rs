//! The demo balancer's `/metrics` endpoint over real HTTP: the Prometheus text reports the
//! counts of a known sequence of requests, and never a token or a principal. (A test binary
//! of its own: the recorder is one per process.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;

use reqwest::Client;
use serde_json::{json, Value};
use sesame::SessionConfig;
use sesame_axum::CookieConfig;
use sesame_cli::demo::{self, DemoOptions};

const COOKIE: &str = "sesame_demo";

async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// Sends a request; returns its status and the new token it set, if any.
async fn call(
    c: &Client,
    method: &str,
    url: String,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Option<String>) {
    let mut rb = c.request(method.parse().unwrap(), url);
    if let Some(t) = token {
        rb = rb.header("cookie", format!("{COOKIE}={t}"));
    }
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let token = r.headers().get("set-cookie").and_then(|v| {
        let v = v.to_str().ok()?.strip_prefix(&format!("{COOKIE}="))?.split(';').next()?;
        (!v.is_empty()).then(|| v.to_string())
    });
    (status, token)
}

/// The value of the sample `name` (with its labels as written) in Prometheus text.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

// Two instances behind the balancer on the in-memory store: a login and an anonymous cart (2
// creates), two visits (2 loads, 2 saves), a malformed token (1 invalid), a logout (1 load, 1
// destroy) and the logged-out token again (1 load, 1 unknown) are what `GET /metrics` on the
// balancer reports, with a latency summary per store operation.
#[tokio::test]
async fn metrics_endpoint_reports_a_known_sequence() {
    let opts = DemoOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        instances: 2,
        store: None,
        config: SessionConfig::builder().insecure_development_secret().build().unwrap(),
        cookie: CookieConfig::builder().name(COOKIE).secure(false).build().unwrap(),
        durability: None,
        near_cache: false,
    };
    let addr = serve(demo::build(&opts).await.unwrap()).await;
    let c = Client::new();
    let login = Some(json!({"username": "erin-principal"}));
    let (status, t) = call(&c, "POST", format!("http://{addr}/api/login"), None, login).await;
    assert_eq!(status, 200);
    let t = t.unwrap();
    for _ in 0..2 {
        assert_eq!(call(&c, "GET", format!("http://{addr}/api/me"), Some(&t), None).await.0, 200);
    }
    let tea = Some(json!({"item": "tea"}));
    let (status, anon) = call(&c, "POST", format!("http://{addr}/api/cart"), None, tea).await;
    assert_eq!((status, anon.is_some()), (200, true));
    let bad = Some("not-a-token");
    assert_eq!(call(&c, "GET", format!("http://{addr}/api/me"), bad, None).await.0, 401);
    assert_eq!(call(&c, "POST", format!("http://{addr}/api/logout"), Some(&t), None).await.0, 200);
    assert_eq!(call(&c, "GET", format!("http://{addr}/api/me"), Some(&t), None).await.0, 401);

    // Whichever instance is next, the balancer answers /metrics itself.
    for _ in 0..2 {
        let r = c.get(format!("http://{addr}/metrics")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers().get("x-served-by").is_none());
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
        let text = r.text().await.unwrap();
        let expect = [
            ("sesame_creates_total", 2.0),
            ("sesame_loads_total", 4.0),
            ("sesame_saves_total", 2.0),
            ("sesame_invalid_tokens_total", 1.0),
            ("sesame_unknown_tokens_total", 1.0),
            ("sesame_destroys_total", 1.0),
            ("sesame_store_op_duration_seconds_count{op=\"create\"}", 2.0),
            ("sesame_store_op_duration_seconds_count{op=\"load\"}", 4.0),
            ("sesame_store_op_duration_seconds_count{op=\"save\"}", 2.0),
            ("sesame_store_op_duration_seconds_count{op=\"destroy\"}", 1.0),
        ];
        for (name, n) in expect {
            assert_eq!(sample(&text, name), Some(n), "{name} in:\n{text}");
        }
        assert_eq!(sample(&text, "sesame_rotations_total"), None, "{text}");
        assert!(!text.contains(&t), "a token in the metrics");
        assert!(!text.contains("erin-principal"), "a principal in the metrics");
    }
}
