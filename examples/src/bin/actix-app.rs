//! The README's axum example on actix-web: the same routes (`POST /login` with a JSON string,
//! `GET /visits`, `POST /logout`), the same answers, sessions in Redis, the default secure
//! cookie, log output on stderr.
//!
//! Run it (Redis on 127.0.0.1:6379, or say where with `REDIS_URL`):
//!
//! ```sh
//! export SESSION_SECRET="$(openssl rand -base64 48)"
//! cargo run -p sesame-examples --bin actix-app
//! ```
//!
//! then call it with the curl lines of the README ("Using it with axum"): they work unchanged.
//! `LISTEN` changes the address (default `127.0.0.1:3000`), `RUST_LOG` the log level.

use std::sync::Arc;

use actix_web::{web, App, HttpServer};
use sesame::SessionManager;
use sesame_actix::{Session, SessionError, SessionMiddleware};
use sesame_examples::{init_logs, listen_addr, redis_url, session_config, BoxError};
use sesame_redis::RedisStore;

async fn login(session: Session, user: web::Json<String>) -> Result<String, SessionError> {
    // ... check the credentials first ...
    session.login(&user).await?; // binds the user and rotates the token
    Ok(format!("logged in as {}\n", user.as_str()))
}

async fn visits(session: Session) -> Result<String, SessionError> {
    // An exact read-modify-write: concurrent requests never lose a visit.
    let n: u64 = session.update("visits", |n: &mut u64| *n += 1).await?;
    Ok(format!("visit number {n}\n"))
}

async fn logout(session: Session) -> Result<String, SessionError> {
    session.logout().await?; // deleted in Redis, cookie cleared
    Ok("logged out\n".into())
}

#[actix_web::main]
async fn main() -> Result<(), BoxError> {
    init_logs();
    let store = RedisStore::connect(&redis_url()).await?;
    let manager = SessionManager::new(Arc::new(store), session_config()?);
    let addr = listen_addr();
    let server = HttpServer::new(move || {
        App::new()
            .wrap(SessionMiddleware::new(manager.clone()))
            .route("/login", web::post().to(login))
            .route("/visits", web::get().to(visits))
            .route("/logout", web::post().to(logout))
    })
    .bind(&addr)?;
    tracing::info!("listening on http://{addr}");
    server.run().await?;
    Ok(())
}
