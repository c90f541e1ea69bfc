//! The HTTP suite of `sesame_testkit::http_suite`, run against actix-web: the standard
//! routes behind `SessionMiddleware` on a loopback port, over a real redis-server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::http::header::HeaderName;
use actix_web::web::{self, Data, Json, Path};
use actix_web::{App as ActixApp, HttpServer};
use serde_json::Value;
use sesame_actix::{Session, SessionError, SessionMiddleware};
use sesame_redis::RedisStore;
use sesame_testkit::conformance::DynStore;
use sesame_testkit::http_suite::{routes, App, Framework, Hold, Served, UNTOUCHED};

type Answer = Result<Json<Value>, SessionError>;

async fn get_k(s: Session, k: Path<String>) -> Answer {
    Ok(Json(routes::get(&s, &k).await?))
}

async fn set_k(s: Session, k: Path<String>, body: String) -> Answer {
    Ok(Json(routes::set(&s, &k, body).await?))
}

async fn hold_k(hold: Data<Arc<Hold>>, s: Session, k: Path<String>, body: String) -> Answer {
    Ok(Json(routes::hold(&s, &k, body, &hold).await?))
}

async fn login(s: Session, user: Path<String>) -> Answer {
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
struct Stop(ServerHandle);

impl Drop for Stop {
    fn drop(&mut self) {
        // The stop command is sent at once; its completion is not awaited.
        drop(self.0.stop(false));
    }
}

struct Actix;

impl Framework for Actix {
    async fn store(url: &str) -> DynStore {
        Arc::new(RedisStore::connect(url).await.unwrap())
    }

    async fn serve(app: App) -> Served {
        let mut middleware = SessionMiddleware::new(app.manager).cookie(app.cookie);
        middleware = middleware.transport(app.transport);
        if let Some(name) = app.client_ip_header {
            middleware = middleware.client_ip_header(HeaderName::from_static(name));
        }
        let hold = app.hold;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        // actix-web runs on a single-threaded runtime of its own, in a thread of its own.
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    ActixApp::new()
                        .wrap(middleware.clone())
                        .app_data(Data::new(hold.clone()))
                        .route("/get/{k}", web::get().to(get_k))
                        .route("/set/{k}", web::post().to(set_k))
                        .route("/hold/{k}", web::post().to(hold_k))
                        .route("/login/{user}", web::post().to(login))
                        .route("/logout", web::post().to(logout))
                        .route("/rotate", web::post().to(rotate))
                        .route("/strict", web::get().to(strict))
                        .route("/untouched", web::get().to(|| async { UNTOUCHED }))
                })
                .workers(1)
                .disable_signals()
                .listen(listener)
                .unwrap()
                .run();
                tx.send(server.handle()).unwrap();
                server.await.unwrap()
            })
        });
        let handle = rx.recv().unwrap();
        Served { url, guard: Box::new(Stop(handle)) }
    }
}

sesame_testkit::http_suite_tests!(Actix);
