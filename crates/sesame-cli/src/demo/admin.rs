//! The demo's admin view: every remembered user's sessions with revocation, and a live feed of
//! the session events of every instance of this process. Served on the balancer, only to
//! clients on this machine (loopback).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use futures_util::stream::{self, Stream, StreamExt};
use serde_json::json;
use sesame::SessionManager;
use tokio::sync::broadcast::error::RecvError;

use super::app::{session_json, ApiError, ApiResult};
use super::feed::{self, Feed, FeedEvent};

const PAGE: &str = include_str!("admin.html");

/// The admin endpoints' state: the instances' managers and the merged feed.
#[derive(Clone)]
struct Admin {
    instances: Arc<Vec<(String, SessionManager)>>,
    next: Arc<AtomicUsize>,
    feed: Arc<Feed>,
}

impl Admin {
    /// The next instance in turn (store calls are spread like the balancer spreads requests).
    fn pick(&self) -> Result<&(String, SessionManager), ApiError> {
        let n = self.instances.len().max(1);
        self.instances
            .get(self.next.fetch_add(1, Ordering::Relaxed) % n)
            .ok_or_else(|| ApiError::Status(StatusCode::SERVICE_UNAVAILABLE, "no instance".into()))
    }
}

/// The admin routes over the named instances' managers. Subscribes to their events now: the
/// feed holds what happens from this call on.
pub fn router(instances: Vec<(String, SessionManager)>) -> Router {
    let feed = Arc::new(Feed::default());
    for (name, manager) in &instances {
        feed::forward(feed.clone(), name.clone(), manager.events());
    }
    let state = Admin { instances: Arc::new(instances), next: Arc::default(), feed };
    Router::new()
        .route("/admin", get(|| async { Html(PAGE) }))
        .route("/api/admin/users", get(users))
        .route("/api/admin/events", get(events))
        .route("/api/admin/sessions/{user}/{id}", delete(revoke_one))
        .route("/api/admin/users/{user}/sessions", delete(revoke_all))
        .with_state(state)
        .layer(middleware::from_fn(loopback_only))
}

/// Lets through only requests whose peer is a loopback address; a server run without the
/// peer's address (no connect info) answers 403 too.
async fn loopback_only(req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_canonical());
    if peer.is_some_and(|ip| ip.is_loopback()) {
        return next.run(req).await;
    }
    let msg = "the admin view answers only requests from this machine (a loopback address)";
    ApiError::Status(StatusCode::FORBIDDEN, msg.into()).into_response()
}

/// `GET /api/admin/users`: each remembered user (sorted) with their live sessions.
async fn users(State(a): State<Admin>) -> ApiResult {
    let (instance, manager) = a.pick()?;
    let idle_ms = manager.config().policy().idle_ms;
    let mut users = Vec::new();
    for user in a.feed.users() {
        let sessions: Vec<_> = manager
            .list_user_detailed(&user)
            .await?
            .into_iter()
            .map(|d| session_json(d, idle_ms))
            .collect();
        users.push(json!({ "user": user, "sessions": sessions }));
    }
    Ok(Json(json!({ "users": users, "instance": instance })))
}

/// `DELETE /api/admin/sessions/{user}/{id}`: revokes one session of a user.
async fn revoke_one(State(a): State<Admin>, Path((user, id)): Path<(String, String)>) -> ApiResult {
    let (instance, manager) = a.pick()?;
    if !manager.revoke_session(&user, &id).await? {
        return Err(ApiError::Status(StatusCode::NOT_FOUND, "no such session of this user".into()));
    }
    Ok(Json(json!({ "revoked": 1, "instance": instance })))
}

/// `DELETE /api/admin/users/{user}/sessions`: revokes every session of a user.
async fn revoke_all(State(a): State<Admin>, Path(user): Path<String>) -> ApiResult {
    let (instance, manager) = a.pick()?;
    let n = manager.revoke_user(&user).await?;
    Ok(Json(json!({ "revoked": n, "instance": instance })))
}

fn sse(e: &FeedEvent) -> Result<Event, axum::Error> {
    Event::default().event("session").id(e.seq.to_string()).json_data(e)
}

/// `GET /api/admin/events`: Server-Sent Events, the recent events first (oldest first), then
/// each new one as it happens.
async fn events(State(a): State<Admin>) -> Sse<impl Stream<Item = Result<Event, axum::Error>>> {
    let (backlog, rx) = a.feed.subscribe();
    let live = stream::unfold(rx, |mut rx| async move {
        let next = match rx.recv().await {
            Ok(e) => sse(&e),
            Err(RecvError::Lagged(n)) => Ok(Event::default().event("lagged").data(n.to_string())),
            Err(RecvError::Closed) => return None,
        };
        Some((next, rx))
    });
    let backlog: Vec<_> = backlog.iter().map(sse).collect();
    Sse::new(stream::iter(backlog).chain(live)).keep_alive(KeepAlive::default())
}
