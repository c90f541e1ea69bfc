//! The demo app over real HTTP: instances sharing Redis, the balancer, and the binary itself.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Client;
use serde_json::{json, Value};
use sesame::{SessionConfig, SessionManager};
use sesame_axum::CookieConfig;
use sesame_cli::demo::{self, DemoOptions};
use sesame_redis::RedisStore;
use sesame_testkit::RedisServer;

const COOKIE: &str = "sesame_demo";

fn cookie() -> CookieConfig {
    CookieConfig::builder().name(COOKIE).secure(false).build().unwrap()
}

async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

struct Resp {
    status: u16,
    token: Option<String>,
    served_by: String,
    body: Value,
}

async fn call(
    c: &Client,
    method: &str,
    url: String,
    token: Option<&str>,
    body: Option<Value>,
) -> Resp {
    let mut rb = c.request(method.parse().unwrap(), url);
    if let Some(t) = token {
        rb = rb.header("cookie", format!("{COOKIE}={t}"));
    }
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let served_by = r.headers()["x-served-by"].to_str().unwrap().to_string();
    let token = r.headers().get("set-cookie").and_then(|v| {
        let v = v.to_str().ok()?.strip_prefix(&format!("{COOKIE}="))?.split(';').next()?;
        (!v.is_empty()).then(|| v.to_string())
    });
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Resp { status, token, served_by, body }
}

async fn redis_instance(redis: &RedisServer, name: &str) -> SocketAddr {
    let store = RedisStore::connect(&redis.url()).await.unwrap();
    let manager = SessionManager::new(
        Arc::new(store),
        SessionConfig::builder().insecure_development_secret().build().unwrap(),
    );
    serve(demo::app(name, manager, cookie())).await
}

// Two demo instances with their own Redis clients: an anonymous cart survives login (with a
// new token; the old one is dead), the user is known on both, other sessions are listed and
// revoked from either instance, and logout ends the session everywhere.
#[tokio::test]
async fn instances_share_sessions_through_redis() {
    let redis = RedisServer::start();
    let a = redis_instance(&redis, "A").await;
    let b = redis_instance(&redis, "B").await;
    let c = Client::new();
    let r =
        call(&c, "POST", format!("http://{a}/api/cart"), None, Some(json!({"item": "tea"}))).await;
    assert_eq!((r.status, r.served_by.as_str()), (200, "A"));
    let anon = r.token.unwrap();
    let login = json!({"username": "carol"});
    let r =
        call(&c, "POST", format!("http://{b}/api/login"), Some(&anon), Some(login.clone())).await;
    assert_eq!(r.body, json!({"user": "carol", "instance": "B"}));
    let t1 = r.token.unwrap();
    assert_ne!(t1, anon);
    let me = call(&c, "GET", format!("http://{a}/api/me"), Some(&t1), None).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["user"], "carol");
    assert_eq!(me.body["instance"], "A");
    assert_eq!(me.body["cart"], json!(["tea"]), "the anonymous cart is kept at login");
    assert_eq!(me.body["visits"], 1);
    assert!(me.body["expires_at"].as_u64().unwrap() > me.body["created_at"].as_u64().unwrap());
    let old = call(&c, "GET", format!("http://{b}/api/me"), Some(&anon), None).await;
    assert_eq!(old.status, 401, "the pre-login token is dead");
    // A second device.
    let t2 =
        call(&c, "POST", format!("http://{a}/api/login"), None, Some(login)).await.token.unwrap();
    let list = call(&c, "GET", format!("http://{b}/api/sessions"), Some(&t2), None).await;
    let sessions = list.body["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    let r =
        call(&c, "POST", format!("http://{b}/api/sessions/revoke-others"), Some(&t2), None).await;
    assert_eq!(r.body["revoked"], 1);
    assert_eq!(call(&c, "GET", format!("http://{a}/api/me"), Some(&t1), None).await.status, 401);
    assert_eq!(call(&c, "GET", format!("http://{a}/api/me"), Some(&t2), None).await.status, 200);
    let r = call(&c, "POST", format!("http://{b}/api/logout"), Some(&t2), None).await;
    assert_eq!(r.status, 200);
    assert_eq!(call(&c, "GET", format!("http://{a}/api/me"), Some(&t2), None).await.status, 401);
    let bad = json!({"username": "a b"});
    assert_eq!(
        call(&c, "POST", format!("http://{a}/api/login"), None, Some(bad)).await.status,
        400
    );
}

// The balancer sends consecutive requests to each instance in turn, and they share the
// in-memory store: a login is known on every instance.
#[tokio::test]
async fn balancer_round_robins_over_instances() {
    let opts = DemoOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        instances: 3,
        store: None,
        config: SessionConfig::builder().insecure_development_secret().build().unwrap(),
        cookie: cookie(),
        durability: None,
        near_cache: false,
    };
    let addr = serve(demo::build(&opts).await.unwrap()).await;
    let c = Client::new();
    let login = Some(json!({"username": "dan"}));
    let t = call(&c, "POST", format!("http://{addr}/api/login"), None, login).await.token.unwrap();
    let mut served = Vec::new();
    for i in 1..=6 {
        let r = call(&c, "GET", format!("http://{addr}/api/me"), Some(&t), None).await;
        assert_eq!(r.body["user"], "dan");
        assert_eq!(r.body["visits"], i);
        assert_eq!(r.body["instance"], r.served_by.as_str());
        served.push(r.served_by);
    }
    assert_eq!(served[..3], served[3..]);
    let mut distinct = served[..3].to_vec();
    distinct.sort();
    assert_eq!(distinct, ["app-1", "app-2", "app-3"]);
    let page = call(&c, "GET", format!("http://{addr}/"), None, None).await;
    assert!(page.body.as_str().unwrap().contains("id=\"login-form\""));
}

// The `sesame demo` binary starts with no setup (in-memory store) and serves the page and API.
#[tokio::test]
async fn binary_runs_with_no_setup() {
    let port = sesame_testkit::free_port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sesame"))
        .args(["demo", "--listen", &format!("127.0.0.1:{port}"), "--instances", "2"])
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let c = Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(15);
    let page = loop {
        match c.get(format!("{base}/")).send().await {
            Ok(r) => break r,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("demo did not start: {e}"),
        }
    };
    assert_eq!(page.status(), 200);
    let login = Some(json!({"username": "eve"}));
    let r = call(&c, "POST", format!("{base}/api/login"), None, login).await;
    assert_eq!(r.status, 200);
    let me = call(&c, "GET", format!("{base}/api/me"), r.token.as_deref(), None).await;
    assert_eq!(me.body["user"], "eve");
    assert_ne!(me.served_by, r.served_by, "two instances take turns");
    child.kill().await.unwrap();
}

// `--store redis://...`: every instance gets its own Redis client and they share sessions;
// an unknown store URL is a clear start-up error that does not echo a password.
#[tokio::test]
async fn demo_on_redis_store() {
    let redis = RedisServer::start();
    let opts = DemoOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        instances: 2,
        store: Some(redis.url()),
        config: SessionConfig::builder().insecure_development_secret().build().unwrap(),
        cookie: cookie(),
        durability: None,
        near_cache: false,
    };
    let addr = serve(demo::build(&opts).await.unwrap()).await;
    let c = Client::new();
    let login = Some(json!({"username": "fay"}));
    let r = call(&c, "POST", format!("http://{addr}/api/login"), None, login).await;
    let me = call(&c, "GET", format!("http://{addr}/api/me"), r.token.as_deref(), None).await;
    assert_eq!(me.body["user"], "fay");
    assert_ne!(me.served_by, r.served_by);
    assert_eq!(redis.cli(&["DBSIZE"]).unwrap(), "2", "the session and the user's index");
    let bad = DemoOptions { store: Some("mongodb://u:secret@h".into()), ..opts };
    let e = demo::build(&bad).await.err().unwrap();
    assert!(e.contains("unknown store URL") && !e.contains("secret"), "{e}");
}

// `--store` takes Sentinel and Cluster URLs too: both instances share sessions through them.
#[tokio::test]
async fn demo_on_sentinel_and_cluster() {
    let group =
        tokio::task::spawn_blocking(sesame_testkit::SentinelGroup::start).await.unwrap().unwrap();
    let cluster =
        tokio::task::spawn_blocking(sesame_testkit::Cluster::start).await.unwrap().unwrap();
    for url in [group.url(), cluster.url()] {
        let opts = DemoOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            instances: 2,
            store: Some(url.clone()),
            config: SessionConfig::builder().insecure_development_secret().build().unwrap(),
            cookie: cookie(),
            durability: Some((1, Duration::from_secs(2))),
            near_cache: false,
        };
        let addr = serve(demo::build(&opts).await.unwrap()).await;
        let c = Client::new();
        let login = Some(json!({"username": "gus"}));
        let r = call(&c, "POST", format!("http://{addr}/api/login"), None, login).await;
        assert_eq!(r.status, 200, "{url}: {:?}", r.body);
        let me = call(&c, "GET", format!("http://{addr}/api/me"), r.token.as_deref(), None).await;
        assert_eq!(me.body["user"], "gus", "{url}");
        assert_ne!(me.served_by, r.served_by);
    }
}

// The page's JSON API says which store the sessions live in, and lists each session with the
// browser that created it, when it was last seen and when it expires.
#[tokio::test]
async fn sessions_show_their_device_and_the_store() {
    let redis = RedisServer::start();
    let store = RedisStore::connect(&redis.url()).await.unwrap();
    let manager = SessionManager::new(
        Arc::new(store),
        SessionConfig::builder().insecure_development_secret().build().unwrap(),
    );
    let a =
        serve(demo::app_on("A", manager, cookie(), &demo::store_label(Some(&redis.url())))).await;
    let info = call(&Client::new(), "GET", format!("http://{a}/api/info"), None, None).await;
    assert_eq!(info.body["store"], demo::redact(&redis.url()));
    assert_eq!(info.token, None, "no session for the info call");
    let login = || Some(json!({"username": "dora"}));
    let phone = Client::builder().user_agent("phone-browser/1").build().unwrap();
    let laptop = Client::builder().user_agent("laptop-browser/2").build().unwrap();
    call(&phone, "POST", format!("http://{a}/api/login"), None, login()).await.token.unwrap();
    let t = call(&laptop, "POST", format!("http://{a}/api/login"), None, login()).await.token;
    let list = call(&laptop, "GET", format!("http://{a}/api/sessions"), t.as_deref(), None).await;
    let sessions = list.body["sessions"].as_array().unwrap();
    let agents: Vec<&str> = sessions.iter().map(|s| s["user_agent"].as_str().unwrap()).collect();
    assert_eq!(agents, ["laptop-browser/2", "phone-browser/1"], "most recent first");
    for s in sessions {
        let (created, seen) = (s["created_at"].as_u64().unwrap(), s["last_seen_at"].as_u64());
        assert!(seen.unwrap() >= created && s["expires_at"].as_u64().unwrap() > created);
    }
}
