//! The demo's admin view over real HTTP: the user list with each user's sessions, revocation
//! of one session and of all of a user's, the live event feed (Server-Sent Events) merging
//! every instance, and the loopback-only guard.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use sesame::SessionConfig;
use sesame_axum::CookieConfig;
use sesame_cli::demo::{self, DemoOptions};
use sesame_testkit::RedisServer;
use tower::ServiceExt;

const COOKIE: &str = "sesame_demo";

fn options(instances: usize, store: Option<String>) -> DemoOptions {
    DemoOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        instances,
        store,
        config: SessionConfig::builder().insecure_development_secret().build().unwrap(),
        cookie: CookieConfig::builder().name(COOKIE).secure(false).build().unwrap(),
        durability: None,
        near_cache: false,
    }
}

/// Serves `router` on a free loopback port, telling handlers the peer's address when
/// `peer_info` (as `sesame demo` does).
async fn serve(router: axum::Router, peer_info: bool) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        if peer_info {
            let svc = router.into_make_service_with_connect_info::<SocketAddr>();
            axum::serve(listener, svc).await.unwrap();
        } else {
            axum::serve(listener, router).await.unwrap();
        }
    });
    format!("http://{addr}")
}

/// Logs `user` in with a client that says `agent`; returns the session token.
async fn login(base: &str, user: &str, agent: &str) -> String {
    let c = Client::builder().user_agent(agent).build().unwrap();
    let r = c.post(format!("{base}/api/login")).json(&json!({ "username": user })).send().await;
    let r = r.unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    cookie.strip_prefix("sesame_demo=").unwrap().split(';').next().unwrap().to_string()
}

async fn me(base: &str, token: &str) -> u16 {
    let r =
        Client::new().get(format!("{base}/api/me")).header("cookie", format!("{COOKIE}={token}"));
    r.send().await.unwrap().status().as_u16()
}

async fn call(method: &str, url: String) -> (u16, Value) {
    let r = Client::new().request(method.parse().unwrap(), url).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// The id of the session `token` opens, as its own session list tells.
async fn session_id(base: &str, token: &str) -> String {
    let r = Client::new()
        .get(format!("{base}/api/sessions"))
        .header("cookie", format!("{COOKIE}={token}"));
    let list: Value = r.send().await.unwrap().json().await.unwrap();
    let sessions = list["sessions"].as_array().unwrap();
    let current = sessions.iter().find(|s| s["current"] == true).unwrap();
    current["id"].as_str().unwrap().to_string()
}

// The user list names each user who logged in through this process (sorted) with their live
// sessions and the clients that made them; an administrator revokes one session (that token
// is dead, the user's other one lives; the same revocation again is 404), then every session
// of the user; a malformed user name is a 400 with a message. On Redis, so the instances
// have their own store clients.
#[tokio::test]
async fn admin_lists_users_and_revokes_their_sessions() {
    let redis = RedisServer::start();
    let base = serve(demo::build(&options(2, Some(redis.url()))).await.unwrap(), true).await;
    let (empty_status, empty) = call("GET", format!("{base}/api/admin/users")).await;
    assert_eq!((empty_status, &empty["users"]), (200, &json!([])));
    let phone = login(&base, "ann", "phone/1").await;
    let laptop = login(&base, "ann", "laptop/2").await;
    let bob = login(&base, "bob", "tablet/3").await;
    let r = Client::new().get(format!("{base}/api/admin/users")).send().await.unwrap();
    assert!(r.headers().get("x-served-by").is_none(), "answered by the balancer");
    let (status, body) = (r.status().as_u16(), r.json::<Value>().await.unwrap());
    assert_eq!(status, 200);
    let users = body["users"].as_array().unwrap();
    let names: Vec<&str> = users.iter().map(|u| u["user"].as_str().unwrap()).collect();
    assert_eq!(names, ["ann", "bob"]);
    let agents: Vec<&str> = users[0]["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["user_agent"].as_str().unwrap())
        .collect();
    assert_eq!(agents, ["laptop/2", "phone/1"], "most recent first");
    let s = &users[1]["sessions"][0];
    assert_eq!((s["ip"].as_str(), s["user_agent"].as_str()), (Some("127.0.0.1"), Some("tablet/3")));
    let created = s["created_at"].as_u64().unwrap();
    assert!(s["last_seen_at"].as_u64().unwrap() >= created);
    assert!(s["expires_at"].as_u64().unwrap() > created);
    assert_eq!(s["id"].as_str(), Some(session_id(&base, &bob).await.as_str()));

    let phone_id = session_id(&base, &phone).await;
    let one = format!("{base}/api/admin/sessions/ann/{phone_id}");
    let (status, body) = call("DELETE", one.clone()).await;
    assert_eq!((status, &body["revoked"]), (200, &json!(1)));
    assert!(body["instance"].as_str().unwrap().starts_with("app-"));
    assert_eq!(me(&base, &phone).await, 401, "the revoked session is gone");
    assert_eq!(me(&base, &laptop).await, 200, "the user's other session lives");
    assert_eq!(call("DELETE", one).await.0, 404, "already revoked");
    let (status, body) = call("DELETE", format!("{base}/api/admin/sessions/bob/{phone_id}")).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("no such session of this user")));

    let (status, body) = call("DELETE", format!("{base}/api/admin/users/ann/sessions")).await;
    assert_eq!((status, &body["revoked"]), (200, &json!(1)));
    assert_eq!(me(&base, &laptop).await, 401);
    assert_eq!(me(&base, &bob).await, 200, "other users keep theirs");
    let (_, body) = call("GET", format!("{base}/api/admin/users")).await;
    assert_eq!(body["users"][0], json!({ "user": "ann", "sessions": [] }), "still listed");

    let (status, body) = call("DELETE", format!("{base}/api/admin/users/a%01b/sessions")).await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("principal"), "{body}");
}

/// The `session` events of a Server-Sent Events response, read until `done` holds of them.
async fn read_events(res: &mut reqwest::Response, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut text, mut events) = (String::new(), Vec::new());
    while !done(&events) {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, res.chunk()).await;
        let chunk = chunk.unwrap_or_else(|_| panic!("events so far: {events:?}")).unwrap().unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            if block.lines().any(|l| l == "event: session") {
                let data = block.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
                let event: Value = serde_json::from_str(data).unwrap();
                let id = block.lines().find_map(|l| l.strip_prefix("id: ")).unwrap();
                assert_eq!(id, event["seq"].to_string(), "the event id is its position");
                events.push(event);
            }
        }
    }
    events
}

fn kinds(events: &[Value]) -> Vec<(&str, &str)> {
    events.iter().map(|e| (e["kind"].as_str().unwrap(), e["instance"].as_str().unwrap())).collect()
}

// The feed merges every instance's events as they happen (logins on three instances, a
// revocation by the admin view), with ids and never tokens; a later subscriber first gets
// the recent events, oldest first.
#[tokio::test]
async fn event_feed_merges_every_instance() {
    let base = serve(demo::build(&options(3, None)).await.unwrap(), true).await;
    let mut feed = Client::new().get(format!("{base}/api/admin/events")).send().await.unwrap();
    assert_eq!(feed.status(), 200);
    assert_eq!(feed.headers()["content-type"], "text/event-stream");
    let mut tokens = Vec::new();
    for user in ["cy", "di", "ed"] {
        tokens.push(login(&base, user, "agent").await);
    }
    let id = session_id(&base, &tokens[0]).await;
    let (status, _) = call("DELETE", format!("{base}/api/admin/sessions/cy/{id}")).await;
    assert_eq!(status, 200);
    let events = read_events(&mut feed, |e| e.len() >= 4).await;
    let mut seen = kinds(&events);
    assert_eq!(seen.pop().unwrap().0, "revoked");
    assert_eq!(events[3]["id"], json!(id));
    assert_eq!(events[3]["user"], "cy", "the user of the revoked session, from its login");
    seen.sort();
    assert_eq!(seen, [("created", "app-1"), ("created", "app-2"), ("created", "app-3")]);
    let users: Vec<&str> = events[..3].iter().map(|e| e["user"].as_str().unwrap()).collect();
    assert_eq!(users, ["cy", "di", "ed"]);
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    for e in &events {
        let text = e.to_string();
        assert!(tokens.iter().all(|t| !text.contains(t.as_str())), "no token in {text}");
    }
    let mut later = Client::new().get(format!("{base}/api/admin/events")).send().await.unwrap();
    let backlog = read_events(&mut later, |e| e.len() >= 4).await;
    assert_eq!(backlog, events, "the recent events, oldest first");
}

// The admin view answers only loopback peers: a server that does not know the peer's
// address refuses it (403 with a message) while still serving the app; a request from
// another address is refused and one from ::1 served (these two through the router, as no
// other address can connect here).
#[tokio::test]
async fn admin_view_is_for_loopback_clients_only() {
    let router = demo::build(&options(1, None)).await.unwrap();
    let blind = serve(router.clone(), false).await;
    for path in ["/admin", "/api/admin/users", "/api/admin/events"] {
        let r = Client::new().get(format!("{blind}{path}")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
        let body: Value = r.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("loopback"), "{body}");
    }
    assert_eq!(Client::new().get(format!("{blind}/")).send().await.unwrap().status(), 200);
    let from = |ip: &str| {
        let mut req = http::Request::get("/api/admin/users").body(Body::empty()).unwrap();
        let peer: SocketAddr = (ip.parse::<std::net::IpAddr>().unwrap(), 40000).into();
        req.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(req)
    };
    assert_eq!(from("192.0.2.7").await.unwrap().status(), 403);
    assert_eq!(from("::1").await.unwrap().status(), 200);
    assert_eq!(from("::ffff:127.0.0.1").await.unwrap().status(), 200);
    let local = serve(router, true).await;
    let page = Client::new().get(format!("{local}/admin")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("id=\"feed\""));
}
