//! One demo app instance: the seeds' login / request / logout flow as a JSON API and a page.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use sesame::{SessionDetails, SessionManager};
use sesame_axum::{CookieConfig, Session, SessionError, SessionLayer};

const PAGE: &str = include_str!("index.html");
/// The style sheet of both pages.
const CSS: &str = include_str!("demo.css");
/// Most items a cart holds (enough for a hundred concurrent adds to all fit).
const MAX_CART: usize = 100;

#[derive(Clone)]
struct Instance {
    name: String,
    store: String,
    idle_ms: u64,
}

/// A handler's error: a session error or a plain status with a message.
pub(super) enum ApiError {
    Session(SessionError),
    Status(StatusCode, String),
}

impl From<sesame::Error> for ApiError {
    fn from(e: sesame::Error) -> Self {
        ApiError::Session(SessionError(e))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Session(e) => e.into_response(),
            ApiError::Status(s, m) => (s, Json(json!({ "error": m }))).into_response(),
        }
    }
}

pub(super) type ApiResult = Result<Json<Value>, ApiError>;

pub(super) fn bad(m: &str) -> ApiError {
    ApiError::Status(StatusCode::BAD_REQUEST, m.to_string())
}

/// Builds the router of one instance named `name`.
pub fn app(name: &str, manager: SessionManager, cookie: CookieConfig) -> Router {
    app_on(name, manager, cookie, "a shared store")
}

/// Like [`app`], telling the page which store the sessions live in.
pub fn app_on(name: &str, manager: SessionManager, cookie: CookieConfig, store: &str) -> Router {
    let idle_ms = manager.config().policy().idle_ms;
    let served_by = HeaderValue::from_str(name).unwrap_or(HeaderValue::from_static("instance"));
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/demo.css", get(|| async { ([(header::CONTENT_TYPE, "text/css")], CSS) }))
        .route("/api/info", get(info))
        .route("/api/login", post(login))
        .route("/api/me", get(me))
        .route("/api/cart", post(cart_add))
        .route("/api/cart/{item}", delete(cart_remove))
        .route("/api/sessions", get(sessions))
        .route("/api/sessions/revoke-others", post(revoke_others))
        .route("/api/sessions/{id}/revoke", post(revoke_one))
        .route("/api/logout", post(logout))
        .with_state(Instance { name: name.to_string(), store: store.to_string(), idle_ms })
        .layer(SessionLayer::new(manager).with_cookie(cookie))
        .layer(axum::middleware::map_response(move |mut res: Response| {
            let v = served_by.clone();
            async move {
                res.headers_mut().insert("x-served-by", v);
                res
            }
        }))
}

fn valid_username(u: &str) -> bool {
    (1..=64).contains(&u.len())
        && u.chars().all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c))
}

#[derive(Deserialize)]
struct Login {
    username: String,
}

async fn login(State(i): State<Instance>, session: Session, Json(body): Json<Login>) -> ApiResult {
    if !valid_username(&body.username) {
        return Err(bad("username: 1 to 64 letters, digits or . _ @ -"));
    }
    session.login(&body.username).await?;
    Ok(Json(json!({ "user": body.username, "instance": i.name })))
}

async fn user(session: &Session) -> Result<String, ApiError> {
    session
        .principal()
        .await?
        .ok_or_else(|| ApiError::Status(StatusCode::UNAUTHORIZED, "not logged in".into()))
}

async fn me(State(i): State<Instance>, session: Session) -> ApiResult {
    let user = user(&session).await?;
    // An exact counter: requests of one session in parallel (on any instance) each count.
    let visits: u64 = session.update("visits", |v: &mut u64| *v = v.saturating_add(1)).await?;
    let cart: Vec<String> = session.get("cart").await?.unwrap_or_default();
    Ok(Json(json!({
        "user": user,
        "instance": i.name,
        "visits": visits,
        "cart": cart,
        "created_at": session.created_ms().await?,
        "expires_at": session.expires_ms().await?,
    })))
}

#[derive(Deserialize)]
struct Item {
    item: String,
}

/// Works with or without login: an anonymous cart is kept when its owner logs in.
///
/// The cart is changed with an exact read-modify-write ([`sesame::Session::update`]), so that
/// concurrent adds to one session (several tabs, several instances) all persist. The answer is
/// the cart as this request saw it; items added meanwhile by other requests are kept too.
async fn cart_add(session: Session, Json(body): Json<Item>) -> ApiResult {
    let item = body.item.trim().to_string();
    if item.is_empty() || item.len() > 64 {
        return Err(bad("item: 1 to 64 characters"));
    }
    let cart: Vec<String> = session.get("cart").await?.unwrap_or_default();
    if cart.contains(&item) {
        return Ok(Json(json!({ "cart": cart })));
    }
    if cart.len() >= MAX_CART {
        return Err(bad("the cart is full"));
    }
    // Run again on the stored cart at commit when another request changed it meanwhile: the
    // checks are repeated there (no duplicate, never beyond the limit).
    let cart = session
        .update("cart", move |cart: &mut Vec<String>| {
            if !cart.contains(&item) && cart.len() < MAX_CART {
                cart.push(item.clone());
            }
        })
        .await?;
    Ok(Json(json!({ "cart": cart })))
}

/// Removes an item (exactly, as [`cart_add`] adds). Removing an absent item writes nothing.
async fn cart_remove(session: Session, Path(item): Path<String>) -> ApiResult {
    let cart: Vec<String> = session.get("cart").await?.unwrap_or_default();
    if !cart.contains(&item) {
        return Ok(Json(json!({ "cart": cart })));
    }
    let cart =
        session.update("cart", move |cart: &mut Vec<String>| cart.retain(|c| *c != item)).await?;
    Ok(Json(json!({ "cart": cart })))
}

/// Which instance answered and which store the sessions live in (never needs a session).
async fn info(State(i): State<Instance>) -> Json<Value> {
    Json(json!({ "instance": i.name, "store": i.store }))
}

/// The user's live sessions, the most recently active first (at most the per-user cap), each
/// with the browser and address that created it and when it was last seen (its idle deadline
/// minus the idle timeout, exact to the touch interval while the absolute deadline is further).
async fn sessions(State(i): State<Instance>, session: Session) -> ApiResult {
    user(&session).await?;
    let me = session.id().await?;
    let list: Vec<Value> = session
        .list_sessions_detailed()
        .await?
        .into_iter()
        .map(|d| {
            let current = Some(&d.info.id) == me.as_ref();
            let mut v = session_json(d, i.idle_ms);
            v["current"] = json!(current);
            v
        })
        .collect();
    Ok(Json(json!({ "sessions": list })))
}

/// A session as the JSON API shows it: id, creation, last activity (its idle deadline minus the
/// idle timeout `idle_ms`), expiry, and the browser and address that created it.
pub(super) fn session_json(d: SessionDetails, idle_ms: u64) -> Value {
    let s = d.info;
    let client = d.client.unwrap_or_default();
    json!({
        "id": s.id,
        "created_at": s.created_ms,
        "last_seen_at": s.expires_ms.saturating_sub(idle_ms).max(s.created_ms),
        "expires_at": s.expires_ms,
        "user_agent": client.user_agent,
        "ip": client.ip,
    })
}

async fn revoke_one(session: Session, Path(id): Path<String>) -> ApiResult {
    user(&session).await?;
    if session.id().await?.as_deref() == Some(id.as_str()) {
        return Err(bad("use logout to end the current session"));
    }
    if !session.revoke_session(&id).await? {
        return Err(ApiError::Status(StatusCode::NOT_FOUND, "no such session".into()));
    }
    Ok(Json(json!({ "revoked": 1 })))
}

async fn revoke_others(session: Session) -> ApiResult {
    user(&session).await?;
    let n = session.revoke_other_sessions().await?;
    Ok(Json(json!({ "revoked": n })))
}

async fn logout(session: Session) -> ApiResult {
    session.logout().await?;
    Ok(Json(json!({ "ok": true })))
}
