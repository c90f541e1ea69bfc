//! The servers on actix-web: how one runs on its own actix system, and **sesame-actix**, the
//! sesame app on actix-web (the same handlers as the axum app), so that sesame and
//! actix-session are also compared on one framework and one runtime model.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::{mpsc, Arc};

use actix_web::{web, App, HttpResponse, HttpServer};
use sesame::SessionManager;
use sesame_actix::{Session, SessionError, SessionMiddleware};
use sesame_bench::{BenchError, BenchResult};
use sesame_redis::RedisStore;

use crate::apps::{self, user_number, Login};

/// Worker threads of an actix-web server: as many as tokio's runtime has for the axum
/// servers (one per core).
pub(crate) fn workers() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
}

/// Binds a loopback port, then on a thread of its own (named `thread`) runs an actix system
/// whose first task is `start`: it makes the server on the listener, with whatever it needs
/// (its store) made inside the system, as an actix app would. Returns the address once the
/// server listens, or why it could not start.
pub(crate) fn spawn_system<F, Fut>(thread: &str, start: F) -> BenchResult<SocketAddr>
where
    F: FnOnce(TcpListener) -> Fut + Send + 'static,
    Fut: Future<Output = Result<actix_web::dev::Server, String>>,
{
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| BenchError::new(format!("cannot bind a loopback port: {e}")))?;
    let addr = listener.local_addr().map_err(|e| BenchError::new(format!("local address: {e}")))?;
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
    let name = thread.to_string();
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                match start(listener).await {
                    Ok(server) => {
                        let _ = ready_tx.send(Ok(()));
                        if let Err(e) = server.await {
                            eprintln!("error: {name} server on {addr} stopped: {e}");
                        }
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            });
        })
        .map_err(|e| BenchError::new(format!("{thread} thread: {e}")))?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(addr),
        Ok(Err(e)) => Err(BenchError::new(e)),
        Err(_) => {
            Err(BenchError::new(format!("the {thread} server thread ended before listening")))
        }
    }
}

/// Starts **ceiling-actix**: actix-web with the ceiling's routes and fixed answers, no
/// sessions, one worker per core, on its own actix system. The actix-web servers are also
/// measured against it, so that what their framework costs or saves is not taken for their
/// session layer's.
pub(crate) fn start_ceiling(name: &str) -> BenchResult<SocketAddr> {
    spawn_system(name, |listener| async move {
        let server = HttpServer::new(|| {
            App::new()
                .route("/login", web::post().to(ceiling_user))
                .route("/me", web::get().to(ceiling_me))
                .route("/me_ro", web::get().to(ceiling_user))
        })
        .workers(workers())
        .disable_signals()
        .listen(listener)
        .map_err(|e| format!("actix-web listen: {e}"))?;
        Ok(server.run())
    })
}

/// `ceiling-actix`'s `POST /login` and `GET /me_ro`: the ceiling's answer.
async fn ceiling_user() -> HttpResponse {
    HttpResponse::Ok().json(apps::ceiling_user())
}

/// `ceiling-actix`'s `GET /me`: the ceiling's answer.
async fn ceiling_me() -> HttpResponse {
    HttpResponse::Ok().json(apps::ceiling_me())
}

/// Starts the sesame app on actix-web (sesame-actix's middleware, one worker per core) on its
/// own actix system, with a `RedisStore` on `url` connected inside that system, as
/// actix-session's store is. Returns its address and its session manager.
pub(crate) fn start_sesame(url: &str) -> BenchResult<(SocketAddr, SessionManager)> {
    let url = url.to_string();
    let (manager_tx, manager_rx) = mpsc::channel::<SessionManager>();
    let addr = spawn_system("sesame-actix", move |listener| async move {
        let store = RedisStore::connect(&url).await.map_err(|e| format!("sesame store: {e}"))?;
        let manager = apps::manager(Arc::new(store));
        let cookie = apps::cookie().map_err(|e| e.to_string())?;
        let _ = manager_tx.send(manager.clone());
        let server = HttpServer::new(move || {
            App::new()
                .wrap(SessionMiddleware::new(manager.clone()).cookie(cookie.clone()))
                .route("/login", web::post().to(login))
                .route("/me", web::get().to(me))
                .route("/me_ro", web::get().to(me_ro))
        })
        .workers(workers())
        .disable_signals()
        .listen(listener)
        .map_err(|e| format!("actix-web listen: {e}"))?;
        Ok(server.run())
    })?;
    let manager = manager_rx
        .recv()
        .map_err(|_| BenchError::new("the sesame-actix server started without its manager"))?;
    Ok((addr, manager))
}

/// `POST /login`, as the axum app's.
async fn login(session: Session, body: web::Json<Login>) -> Result<HttpResponse, SessionError> {
    let Some(n) = user_number(&body.user) else {
        return Ok(HttpResponse::BadRequest().body("the user must be user-NNNNNN"));
    };
    Ok(HttpResponse::Ok().json(apps::log_in(&session, &body.user, n).await?))
}

/// `GET /me`, as the axum app's.
async fn me(session: Session) -> Result<HttpResponse, SessionError> {
    Ok(HttpResponse::Ok().json(apps::read_and_count(&session).await?))
}

/// `GET /me_ro`, as the axum app's.
async fn me_ro(session: Session) -> Result<HttpResponse, SessionError> {
    Ok(HttpResponse::Ok().json(apps::read_only(&session).await?))
}
