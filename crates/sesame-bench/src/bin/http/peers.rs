//! The peers, serving the same routes on the same workload as the sesame app:
//! tower-sessions 0.14 with tower-sessions-redis-store 0.16 (one fred connection) on axum,
//! and actix-session 0.11's `RedisSessionStore` on actix-web 4.
//!
//! Each handler does what the sesame app's does: `POST /login` renews the session id and
//! stores `user_id`, `profile` and `hits` = 0; `GET /me` reads the three and stores
//! `hits + 1`; `GET /me_ro` reads `user_id` and `profile`. A missing attribute is a 401.

use std::net::SocketAddr;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use sesame_bench::{content, BenchError, BenchResult};
use tower_sessions_redis_store::fred::prelude::{ClientLike, Config};

use crate::actix_app;
use crate::apps::{user_number, Login, COOKIE_NAME};

/// What a handler answers when a session attribute is missing or the store failed.
fn refused(status: StatusCode, what: impl std::fmt::Display) -> Response {
    (status, Json(json!({ "error": what.to_string() }))).into_response()
}

/// The tower-sessions app on the Redis server at `url`, with one fred connection.
pub(crate) async fn tower_router(url: &str) -> BenchResult<Router> {
    use tower_sessions::{Session, SessionManagerLayer};
    use tower_sessions_redis_store::fred::prelude::Client;
    use tower_sessions_redis_store::RedisStore;

    let config = Config::from_url(url).map_err(|e| BenchError::new(format!("fred: {e}")))?;
    let client = Client::new(config, None, None, None);
    client.init().await.map_err(|e| BenchError::new(format!("fred connect: {e}")))?;
    let layer =
        SessionManagerLayer::new(RedisStore::new(client)).with_name(COOKIE_NAME).with_secure(false);

    async fn login(session: Session, Json(body): Json<Login>) -> Response {
        let Some(n) = user_number(&body.user) else {
            return refused(StatusCode::BAD_REQUEST, "the user must be user-NNNNNN");
        };
        let result = async {
            session.cycle_id().await?;
            session.insert("user_id", &body.user).await?;
            session.insert("profile", content::profile(n)).await?;
            session.insert("hits", 0u64).await
        }
        .await;
        match result {
            Ok(()) => Json(json!({ "user_id": body.user })).into_response(),
            Err(e) => refused(StatusCode::SERVICE_UNAVAILABLE, e),
        }
    }
    async fn read(session: &Session) -> Result<(String, Value, u64), Response> {
        let fail = |e: tower_sessions::session::Error| refused(StatusCode::SERVICE_UNAVAILABLE, e);
        let missing = || refused(StatusCode::UNAUTHORIZED, "not logged in");
        let user: String = session.get("user_id").await.map_err(fail)?.ok_or_else(missing)?;
        let profile: Value = session.get("profile").await.map_err(fail)?.ok_or_else(missing)?;
        let hits: u64 = session.get("hits").await.map_err(fail)?.ok_or_else(missing)?;
        Ok((user, profile, hits))
    }
    async fn me(session: Session) -> Response {
        match read(&session).await {
            Ok((user, _profile, hits)) => match session.insert("hits", hits + 1).await {
                Ok(()) => Json(json!({ "user_id": user, "hits": hits + 1 })).into_response(),
                Err(e) => refused(StatusCode::SERVICE_UNAVAILABLE, e),
            },
            Err(r) => r,
        }
    }
    async fn me_ro(session: Session) -> Response {
        match read(&session).await {
            Ok((user, _profile, _)) => Json(json!({ "user_id": user })).into_response(),
            Err(r) => r,
        }
    }

    Ok(Router::new()
        .route("/login", post(login))
        .route("/me", get(me))
        .route("/me_ro", get(me_ro))
        .layer(layer))
}

/// Starts the actix-session app on its own thread (an actix system with one worker per
/// core) against the Redis server at `url`; returns its address once it listens.
pub(crate) fn start_actix(url: &str) -> BenchResult<SocketAddr> {
    use actix_session::storage::RedisSessionStore;
    use actix_session::{Session, SessionExt as _, SessionMiddleware};
    use actix_web::cookie::Key;
    use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

    fn answer(status: u16, body: Value) -> HttpResponse {
        let status = actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
        HttpResponse::build(status).json(body)
    }
    /// The three attributes, or the status and message to answer with.
    fn read(session: &Session) -> Result<(String, Value, u64), (u16, String)> {
        let fail = |e: actix_session::SessionGetError| (503, e.to_string());
        let missing = || (401, "not logged in".to_string());
        let user: String = session.get("user_id").map_err(fail)?.ok_or_else(missing)?;
        let profile: Value = session.get("profile").map_err(fail)?.ok_or_else(missing)?;
        let hits: u64 = session.get("hits").map_err(fail)?.ok_or_else(missing)?;
        Ok((user, profile, hits))
    }
    async fn login(req: HttpRequest, body: web::Json<Login>) -> HttpResponse {
        let session = req.get_session();
        let Some(n) = user_number(&body.user) else {
            return answer(400, json!({ "error": "the user must be user-NNNNNN" }));
        };
        session.renew();
        let result = session
            .insert("user_id", &body.user)
            .and_then(|()| session.insert("profile", content::profile(n)))
            .and_then(|()| session.insert("hits", 0u64));
        match result {
            Ok(()) => answer(200, json!({ "user_id": body.user })),
            Err(e) => answer(500, json!({ "error": e.to_string() })),
        }
    }
    async fn me(req: HttpRequest) -> HttpResponse {
        let session = req.get_session();
        match read(&session) {
            Ok((user, _profile, hits)) => match session.insert("hits", hits + 1) {
                Ok(()) => answer(200, json!({ "user_id": user, "hits": hits + 1 })),
                Err(e) => answer(500, json!({ "error": e.to_string() })),
            },
            Err((status, message)) => answer(status, json!({ "error": message })),
        }
    }
    async fn me_ro(req: HttpRequest) -> HttpResponse {
        match read(&req.get_session()) {
            Ok((user, _profile, _)) => answer(200, json!({ "user_id": user })),
            Err((status, message)) => answer(status, json!({ "error": message })),
        }
    }

    let url = url.to_string();
    actix_app::spawn_system("actix-session", move |listener| async move {
        let store =
            RedisSessionStore::new(url).await.map_err(|e| format!("actix-session store: {e}"))?;
        let key = Key::generate();
        let server = HttpServer::new(move || {
            let sessions = SessionMiddleware::builder(store.clone(), key.clone())
                .cookie_name(COOKIE_NAME.to_string())
                .cookie_secure(false)
                .build();
            App::new()
                .wrap(sessions)
                .route("/login", web::post().to(login))
                .route("/me", web::get().to(me))
                .route("/me_ro", web::get().to(me_ro))
        })
        .workers(actix_app::workers())
        .disable_signals()
        .listen(listener)
        .map_err(|e| format!("actix-web listen: {e}"))?;
        Ok(server.run())
    })
}
