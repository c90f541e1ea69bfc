//! Shared by the HTTP test files: a small app, a server on a loopback port, and a client call
//! that sends raw header bytes and collects what came back.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;

use axum::extract::Path;
use axum::routing::{get, post};
use axum::{Json, Router};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use sesame_axum::{Session, SessionError};

/// The default cookie's name.
pub const COOKIE: &str = "__Host-sesame";

async fn set(session: Session, Path((k, v)): Path<(String, String)>) -> Result<(), SessionError> {
    session.insert(&k, &v).await?;
    Ok(())
}

async fn dump(session: Session) -> Result<Json<Value>, SessionError> {
    Ok(Json(json!({
        "x": session.get::<String>("x").await?,
        "user": session.principal().await?,
    })))
}

async fn login(session: Session, Path(user): Path<String>) -> Result<(), SessionError> {
    session.login(&user).await?;
    Ok(())
}

async fn logout(session: Session) -> Result<(), SessionError> {
    session.logout().await?;
    Ok(())
}

/// `POST /set/{k}/{v}`, `GET /get` (`{"x", "user"}`), `POST /login/{user}`, `POST /logout`,
/// `GET /plain` (never touches the session). Add the layer yourself.
pub fn routes() -> Router {
    Router::new()
        .route("/set/{k}/{v}", post(set))
        .route("/get", get(dump))
        .route("/login/{user}", post(login))
        .route("/logout", post(logout))
        .route("/plain", get(|| async { "no session here" }))
}

pub async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Resp {
    /// Every `Set-Cookie` value, as text.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers.get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect()
    }

    /// The one `Set-Cookie` for `name`, if any (panics on two).
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        let prefix = format!("{name}=");
        let mut all: Vec<String> =
            self.set_cookies().into_iter().filter(|s| s.starts_with(&prefix)).collect();
        assert!(all.len() <= 1, "one Set-Cookie per name: {all:?}");
        all.pop()
    }

    /// The token a `Set-Cookie` for `name` hands out (`None` when absent or cleared).
    pub fn cookie_token(&self, name: &str) -> Option<String> {
        let sc = self.set_cookie(name)?;
        let v = sc.strip_prefix(&format!("{name}="))?.split(';').next()?;
        (!v.is_empty()).then(|| v.to_string())
    }

    /// The `Max-Age` of the `Set-Cookie` for `name`.
    pub fn max_age(&self, name: &str) -> Option<u64> {
        let sc = self.set_cookie(name)?;
        sc.split("; ").find_map(|a| a.strip_prefix("Max-Age=")).map(|v| v.parse().unwrap())
    }

    /// A response header as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(|v| v.to_str().unwrap().to_string())
    }
}

/// Sends a request with these headers (raw bytes allowed in values).
pub async fn send(c: &Client, method: &str, url: String, headers: &[(&str, Vec<u8>)]) -> Resp {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_bytes(v).unwrap(),
        );
    }
    let r = c.request(method.parse().unwrap(), url).headers(map).send().await.unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Resp { status, headers, body }
}

/// A `Cookie` request header.
pub fn cookie(value: impl Into<Vec<u8>>) -> (&'static str, Vec<u8>) {
    ("cookie", value.into())
}

/// The default cookie carrying `token`.
pub fn session_cookie(token: &str) -> (&'static str, Vec<u8>) {
    cookie(format!("{COOKIE}={token}"))
}
