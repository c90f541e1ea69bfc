//! The routes and handlers of the service's `/v1` API (see `docs/SERVICE.md`).

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sesame::Session;
use sesame_http::HeaderLookup;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::reply::{body, json_reply, listed, token_change, view, Fail, Reply};
use super::{Service, OPENAPI, SERVICE_KEY_HEADER};

/// Largest request body accepted, in bytes (the store's own limits on a session are lower).
const MAX_BODY_BYTES: usize = 1 << 20;

pub(super) fn routes(service: Service) -> Router {
    Router::new()
        .route("/v1/sessions", post(create))
        .route("/v1/session", get(whoami).patch(change))
        .route("/v1/session/compare-and-set", post(compare_and_set))
        .route("/v1/session/login", post(login))
        .route("/v1/session/logout", post(logout))
        .route("/v1/session/user-sessions", get(own_sessions))
        .route("/v1/session/user-sessions/{id}", delete(revoke_own))
        .route("/v1/session/revoke-others", post(revoke_others))
        .route("/v1/users/{principal}/sessions", get(user_sessions))
        .route("/v1/users/{principal}/sessions/{id}", delete(revoke_user_session))
        .route("/v1/users/{principal}/revoke", post(revoke_user))
        .route(
            "/v1/health",
            get(|| async { json_reply(StatusCode::OK, &json!({ "status": "ok" })) }),
        )
        .route("/v1/openapi.json", get(openapi))
        .fallback(|| async {
            Fail::new(StatusCode::NOT_FOUND, "no such endpoint (see /v1/openapi.json)")
        })
        .method_not_allowed_fallback(|| async {
            Fail::new(StatusCode::METHOD_NOT_ALLOWED, "this endpoint does not take that method")
        })
        .with_state(service)
}

/// What a handler knows of its caller: the request's headers and the peer's address.
pub(crate) struct Caller {
    headers: HeaderMap,
    peer: Option<IpAddr>,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Caller, Infallible> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        Ok(Caller { headers: parts.headers.clone(), peer })
    }
}

struct Lookup<'h>(&'h HeaderMap);

impl<'h> HeaderLookup<'h> for Lookup<'h> {
    fn all(&self, name: &str) -> impl Iterator<Item = &'h [u8]> {
        self.0.get_all(name).into_iter().map(HeaderValue::as_bytes)
    }
}

impl Service {
    /// The caller's session: the token it presents (bearer, named header or forwarded
    /// cookie), opened lazily; a new session records the caller's client.
    fn open(&self, c: &Caller) -> Session {
        let s = &self.settings;
        let h = Lookup(&c.headers);
        let presented = s.transport.presented(&s.cookie, s.manager.config().tokens(), &h);
        s.manager.open_for(presented.token, s.client_info(&h, c.peer))
    }

    /// A new session for the caller, whatever token it presents.
    fn open_new(&self, c: &Caller) -> Session {
        let s = &self.settings;
        s.manager.open_for(None, s.client_info(&Lookup(&c.headers), c.peer))
    }

    /// Passes when the caller presents the service credential.
    fn check_key(&self, c: &Caller) -> Result<(), Fail> {
        let Some(given) = c.headers.get(SERVICE_KEY_HEADER) else {
            return Err(Fail::new(
                StatusCode::UNAUTHORIZED,
                "this endpoint needs the service credential in X-Sesame-Service-Key",
            ));
        };
        let Some(key) = &self.key_digest else {
            return Err(Fail::new(
                StatusCode::FORBIDDEN,
                "this service has no service credential configured (SESAME_SERVICE_KEY)",
            ));
        };
        let given: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        if bool::from(given.ct_eq(key)) {
            Ok(())
        } else {
            Err(Fail::new(StatusCode::FORBIDDEN, "wrong service credential"))
        }
    }
}

/// The request body, at most [`MAX_BODY_BYTES`].
async fn read(b: Body) -> Result<Bytes, Fail> {
    axum::body::to_bytes(b, MAX_BODY_BYTES).await.map_err(|_| {
        Fail::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the body is larger than {MAX_BODY_BYTES} bytes, or could not be read"),
        )
    })
}

/// A path's parameters, or a JSON 400.
fn path<T>(p: Result<Path<T>, PathRejection>) -> Result<T, Fail> {
    p.map(|Path(t)| t).map_err(|_| Fail::new(StatusCode::BAD_REQUEST, "malformed path parameter"))
}

/// Commits and answers `{"session", "token"}` with `status`.
async fn session_reply(s: &Session, status: StatusCode) -> Reply {
    let action = s.commit().await?;
    let session = view(s).await?.ok_or_else(Fail::no_session)?;
    Ok(json_reply(status, &json!({ "session": session, "token": token_change(&action) })))
}

/// Fails with 401 unless a live session backs `s`.
async fn live(s: &Session) -> Result<(), Fail> {
    if s.exists().await? {
        Ok(())
    } else {
        Err(Fail::no_session())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Create {
    #[serde(default)]
    attributes: Map<String, Value>,
    #[serde(default)]
    principal: Option<String>,
}

async fn create(State(svc): State<Service>, c: Caller, b: Body) -> Reply {
    let b: Create = body(&read(b).await?, true)?;
    if b.principal.is_some() {
        svc.check_key(&c)?;
    }
    if b.attributes.is_empty() && b.principal.is_none() {
        return Err(Fail::new(
            StatusCode::BAD_REQUEST,
            "a new session needs at least one attribute or a principal",
        ));
    }
    let s = svc.open_new(&c);
    for (name, value) in &b.attributes {
        s.insert(name, value).await?;
    }
    if let Some(p) = &b.principal {
        s.login(p).await?;
    }
    session_reply(&s, StatusCode::CREATED).await
}

async fn whoami(State(svc): State<Service>, c: Caller) -> Reply {
    let s = svc.open(&c);
    live(&s).await?;
    session_reply(&s, StatusCode::OK).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Change {
    #[serde(default)]
    set: Map<String, Value>,
    #[serde(default)]
    remove: Vec<String>,
}

async fn change(State(svc): State<Service>, c: Caller, b: Body) -> Reply {
    let b: Change = body(&read(b).await?, true)?;
    let s = svc.open(&c);
    live(&s).await?;
    for (name, value) in &b.set {
        s.insert(name, value).await?;
    }
    for name in &b.remove {
        s.remove(name).await?;
    }
    session_reply(&s, StatusCode::OK).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CompareAndSet {
    name: String,
    #[serde(default)]
    expected: Value,
    #[serde(default)]
    value: Value,
}

/// `null` (and a stored JSON `null`) stand for an absent attribute.
fn present(v: Value) -> Option<Value> {
    (!v.is_null()).then_some(v)
}

async fn compare_and_set(State(svc): State<Service>, c: Caller, b: Body) -> Reply {
    let b: CompareAndSet = body(&read(b).await?, true)?;
    let s = svc.open(&c);
    live(&s).await?;
    let (expected, new) = (present(b.expected), present(b.value));
    // The last run of the function is the one whose result is written (a run at commit, on
    // the value stored meanwhile, replaces this request's): the flag keeps its verdict.
    let swapped = Arc::new(AtomicBool::new(false));
    let verdict = swapped.clone();
    s.modify(&b.name, move |current: Option<Value>| {
        let current = current.and_then(present);
        let hit = current == expected;
        verdict.store(hit, Ordering::SeqCst);
        if hit {
            new.clone()
        } else {
            current
        }
    })
    .await?;
    let action = s.commit().await?;
    let session = view(&s).await?.ok_or_else(Fail::no_session)?;
    let current = session["attributes"].get(&b.name).cloned().unwrap_or(Value::Null);
    Ok(json_reply(
        StatusCode::OK,
        &json!({
            "swapped": swapped.load(Ordering::SeqCst),
            "current": current,
            "session": session,
            "token": token_change(&action),
        }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    principal: String,
}

async fn login(State(svc): State<Service>, c: Caller, b: Body) -> Reply {
    svc.check_key(&c)?;
    let b: Login = body(&read(b).await?, true)?;
    let s = svc.open(&c);
    s.login(&b.principal).await?;
    session_reply(&s, StatusCode::OK).await
}

async fn logout(State(svc): State<Service>, c: Caller) -> Reply {
    let s = svc.open(&c);
    s.logout().await?;
    s.commit().await?;
    Ok(json_reply(StatusCode::OK, &json!({ "token": { "action": "clear" } })))
}

async fn own_sessions(State(svc): State<Service>, c: Caller) -> Reply {
    let s = svc.open(&c);
    live(&s).await?;
    let sessions: Vec<Value> = s.list_sessions_detailed().await?.iter().map(listed).collect();
    let body = json!({
        "principal": s.principal().await?,
        "current": s.id().await?,
        "sessions": sessions,
    });
    s.commit().await?;
    Ok(json_reply(StatusCode::OK, &body))
}

async fn revoke_own(
    State(svc): State<Service>,
    c: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Reply {
    let id = path(id)?;
    let s = svc.open(&c);
    live(&s).await?;
    if s.id().await?.as_deref() == Some(id.as_str()) {
        return Err(Fail::new(
            StatusCode::BAD_REQUEST,
            "that is the current session: end it with /v1/session/logout",
        ));
    }
    let revoked = s.revoke_session(&id).await?;
    s.commit().await?;
    Ok(json_reply(StatusCode::OK, &json!({ "revoked": revoked })))
}

async fn revoke_others(State(svc): State<Service>, c: Caller) -> Reply {
    let s = svc.open(&c);
    live(&s).await?;
    let n = s.revoke_other_sessions().await?;
    s.commit().await?;
    Ok(json_reply(StatusCode::OK, &json!({ "revoked": n })))
}

async fn user_sessions(
    State(svc): State<Service>,
    c: Caller,
    p: Result<Path<String>, PathRejection>,
) -> Reply {
    svc.check_key(&c)?;
    let principal = path(p)?;
    let list = svc.settings.manager.list_user_detailed(&principal).await?;
    let sessions: Vec<Value> = list.iter().map(listed).collect();
    Ok(json_reply(StatusCode::OK, &json!({ "principal": principal, "sessions": sessions })))
}

async fn revoke_user_session(
    State(svc): State<Service>,
    c: Caller,
    p: Result<Path<(String, String)>, PathRejection>,
) -> Reply {
    svc.check_key(&c)?;
    let (principal, id) = path(p)?;
    let revoked = svc.settings.manager.revoke_session(&principal, &id).await?;
    Ok(json_reply(StatusCode::OK, &json!({ "revoked": revoked })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeAll {
    #[serde(default)]
    except: Option<String>,
}

async fn revoke_user(
    State(svc): State<Service>,
    c: Caller,
    p: Result<Path<String>, PathRejection>,
    b: Body,
) -> Reply {
    svc.check_key(&c)?;
    let principal = path(p)?;
    let b: RevokeAll = body(&read(b).await?, false)?;
    let m = &svc.settings.manager;
    let n = match &b.except {
        Some(keep) => m.revoke_user_except(&principal, keep).await?,
        None => m.revoke_user(&principal).await?,
    };
    Ok(json_reply(StatusCode::OK, &json!({ "revoked": n })))
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")], OPENAPI)
        .into_response()
}
