//! The HTTP suite of `sesame_testkit::http_suite`, run against axum: the standard routes
//! behind `SessionLayer` on a loopback port, over a real redis-server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::HeaderName;
use serde_json::Value;
use sesame_axum::{Session, SessionError, SessionLayer};
use sesame_redis::RedisStore;
use sesame_testkit::conformance::DynStore;
use sesame_testkit::http_suite::{routes, App, Framework, Hold, Served, UNTOUCHED};

type Answer = Result<Json<Value>, SessionError>;

async fn get_k(s: Session, Path(k): Path<String>) -> Answer {
    Ok(Json(routes::get(&s, &k).await?))
}

async fn set_k(s: Session, Path(k): Path<String>, body: String) -> Answer {
    Ok(Json(routes::set(&s, &k, body).await?))
}

async fn hold_k(
    State(hold): State<Arc<Hold>>,
    s: Session,
    Path(k): Path<String>,
    body: String,
) -> Answer {
    Ok(Json(routes::hold(&s, &k, body, &hold).await?))
}

async fn login(s: Session, Path(user): Path<String>) -> Answer {
    Ok(Json(routes::login(&s, &user).await?))
}

async fn logout(s: Session) -> Answer {
    Ok(Json(routes::logout(&s).await?))
}

async fn rotate(s: Session) -> Answer {
    Ok(Json(routes::rotate(&s).await?))
}

async fn strict(s: Session) -> Answer {
    Ok(Json(routes::strict(&s).await?))
}

/// Stops the server when the case ends.
struct Abort(tokio::task::JoinHandle<()>);

impl Drop for Abort {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Axum;

impl Framework for Axum {
    async fn store(url: &str) -> DynStore {
        Arc::new(RedisStore::connect(url).await.unwrap())
    }

    async fn serve(app: App) -> Served {
        let mut layer = SessionLayer::new(app.manager).with_cookie(app.cookie);
        layer = layer.with_transport(app.transport);
        if let Some(name) = app.client_ip_header {
            layer = layer.with_client_ip_header(HeaderName::from_static(name));
        }
        let router = Router::new()
            .route("/get/{k}", get(get_k))
            .route("/set/{k}", post(set_k))
            .route("/hold/{k}", post(hold_k))
            .route("/login/{user}", post(login))
            .route("/logout", post(logout))
            .route("/rotate", post(rotate))
            .route("/strict", get(strict))
            .route("/untouched", get(|| async { UNTOUCHED }))
            .with_state(app.hold)
            .layer(layer);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Served { url, guard: Box::new(Abort(task)) }
    }
}

sesame_testkit::http_suite_tests!(Axum);
