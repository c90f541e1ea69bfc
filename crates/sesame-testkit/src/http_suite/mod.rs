//! One HTTP suite for every framework integration: the same cases, over real HTTP (reqwest
//! against a server on a loopback port) and a real, freshly spawned redis-server, run against
//! each framework through a [`Framework`] that a test file implements.
//!
//! The suite needs no web framework itself. A test file implements [`Framework`]: it connects
//! a store to a Redis URL, and serves an [`App`] with the standard routes below, each a thin
//! wrapper of a function of [`routes`] (so that the behaviour under test is the framework's
//! session layer, not the handlers). Then [`http_suite_tests!`](crate::http_suite_tests)
//! turns the list of cases, written once in that macro, into one `#[tokio::test]` each.
//!
//! | route | handler |
//! | --- | --- |
//! | `GET /get/{k}` | [`routes::get`]: `{"value": <k's value>, "user": <principal>}` |
//! | `POST /set/{k}` (text body) | [`routes::set`]: the body becomes `k`'s value |
//! | `POST /hold/{k}` (text body) | [`routes::hold`]: sets `k`, then waits at the [`Hold`] |
//! | `POST /login/{user}` | [`routes::login`] |
//! | `POST /logout` | [`routes::logout`] |
//! | `POST /rotate` | [`routes::rotate`]: a new token for the same session |
//! | `GET /strict` | [`routes::strict`]: needs a login of the last minute |
//! | `GET /untouched` | [`UNTOUCHED`], without touching the session |
// Test code: a failed expectation must fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::sync::Arc;

use serde_json::{json, Value};
use sesame::{Error, SessionConfig, SessionHooks, SessionManager};
use sesame_http::{CookieConfig, TransportConfig};

use crate::conformance::DynStore;
use crate::{RedisOptions, RedisServer};

mod cases;
mod cases_more;

pub use cases::*;
pub use cases_more::*;

/// The name of the default session cookie.
pub const COOKIE: &str = "__Host-sesame";

/// The text `GET /untouched` answers.
pub const UNTOUCHED: &str = "untouched";

/// What a framework integration provides to run the suite.
pub trait Framework {
    /// A store on the Redis at `url`.
    fn store(url: &str) -> impl Future<Output = DynStore> + Send;

    /// Serves `app`'s routes (see the module's table) behind the framework's session layer,
    /// configured with `app`'s manager, cookie, transports and client address header, on a
    /// free loopback port.
    fn serve(app: App) -> impl Future<Output = Served> + Send;
}

/// What to serve.
#[derive(Clone)]
pub struct App {
    /// The session manager.
    pub manager: SessionManager,
    /// The session cookie.
    pub cookie: CookieConfig,
    /// The token transports.
    pub transport: TransportConfig,
    /// The request header naming the client's address, if any.
    pub client_ip_header: Option<&'static str>,
    /// Where `POST /hold/{k}` waits.
    pub hold: Arc<Hold>,
}

/// A running server.
pub struct Served {
    /// Its base URL, for example `http://127.0.0.1:4000`.
    pub url: String,
    /// Stops the server when dropped.
    pub guard: Box<dyn Send>,
}

/// Holds a handler between its session work and its answer until the test releases it.
#[derive(Debug, Default)]
pub struct Hold {
    /// Notified when the handler reached the hold.
    pub reached: tokio::sync::Notify,
    /// Notified by the test to let the handler answer.
    pub release: tokio::sync::Notify,
}

/// The handlers of the standard routes, framework-neutral: each adapter's route calls one and
/// answers its JSON with 200, or its error through the integration's error type.
pub mod routes {
    use super::*;

    /// `GET /get/{k}`.
    pub async fn get(s: &sesame::Session, k: &str) -> Result<Value, Error> {
        Ok(json!({ "value": s.get::<String>(k).await?, "user": s.principal().await? }))
    }

    /// `POST /set/{k}`.
    pub async fn set(s: &sesame::Session, k: &str, body: String) -> Result<Value, Error> {
        s.insert(k, &body).await?;
        Ok(json!({ "saved": true }))
    }

    /// `POST /hold/{k}`: sets `k`, then waits until the test releases the hold (the commit
    /// comes after that, in the session layer).
    pub async fn hold(
        s: &sesame::Session,
        k: &str,
        body: String,
        hold: &Hold,
    ) -> Result<Value, Error> {
        s.insert(k, &body).await?;
        hold.reached.notify_one();
        hold.release.notified().await;
        Ok(json!({ "saved": true }))
    }

    /// `POST /login/{user}`.
    pub async fn login(s: &sesame::Session, user: &str) -> Result<Value, Error> {
        s.login(user).await?;
        Ok(json!({ "user": user }))
    }

    /// `POST /logout`.
    pub async fn logout(s: &sesame::Session) -> Result<Value, Error> {
        s.logout().await?;
        Ok(json!({ "user": null }))
    }

    /// `POST /rotate`.
    pub async fn rotate(s: &sesame::Session) -> Result<Value, Error> {
        s.cycle_id().await?;
        Ok(json!({ "rotated": true }))
    }

    /// `GET /strict`: a login of the last minute is needed.
    pub async fn strict(s: &sesame::Session) -> Result<Value, Error> {
        s.require_recent_auth(std::time::Duration::from_secs(60)).await?;
        Ok(json!({ "user": s.principal().await? }))
    }
}

/// How a case sets up its server.
pub struct Setup {
    /// The session configuration.
    pub config: SessionConfig,
    /// The session cookie.
    pub cookie: CookieConfig,
    /// The token transports.
    pub transport: TransportConfig,
    /// The request header naming the client's address.
    pub client_ip_header: Option<&'static str>,
    /// The manager's hooks.
    pub hooks: Option<Arc<dyn SessionHooks>>,
    /// The Redis server's options.
    pub redis: RedisOptions,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            config: SessionConfig::builder().insecure_development_secret().build().unwrap(),
            cookie: CookieConfig::default(),
            transport: TransportConfig::default(),
            client_ip_header: None,
            hooks: None,
            redis: RedisOptions::default(),
        }
    }
}

/// A case's world: a Redis, a server of the framework on it, a client.
pub struct Harness {
    /// The Redis server.
    pub redis: RedisServer,
    /// The manager the server uses.
    pub manager: SessionManager,
    /// Where the `/hold` route waits.
    pub hold: Arc<Hold>,
    /// The HTTP client (no cookie store: cases send their cookies by hand).
    pub client: reqwest::Client,
    served: Served,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: reqwest::header::HeaderMap,
    /// The body as JSON, or as a JSON string when it is not JSON.
    pub body: Value,
}

impl Resp {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(|v| v.to_str().unwrap().to_string())
    }

    /// The one `Set-Cookie` header, if any (more than one fails the case).
    pub fn set_cookie(&self) -> Option<String> {
        let all: Vec<_> = self.headers.get_all("set-cookie").iter().collect();
        assert!(all.len() <= 1, "at most one Set-Cookie: {all:?}");
        self.header("set-cookie")
    }

    /// The token the response hands out in cookie `name`, if any (not a clearing).
    pub fn cookie_token(&self, name: &str) -> Option<String> {
        let sc = self.set_cookie()?;
        let v = sc.strip_prefix(&format!("{name}="))?.split(';').next()?;
        (!v.is_empty()).then(|| v.to_string())
    }

    /// The token the response hands out in the default cookie.
    pub fn token(&self) -> Option<String> {
        self.cookie_token(COOKIE)
    }
}

impl Harness {
    /// Starts a Redis and a server of framework `F` set up by `setup`.
    pub async fn start<F: Framework>(setup: Setup) -> Harness {
        let redis = RedisServer::start_with(setup.redis).unwrap();
        let store = F::store(&redis.url()).await;
        let mut manager = SessionManager::new(store, setup.config);
        if let Some(hooks) = setup.hooks {
            manager = manager.with_hooks(hooks);
        }
        let hold = Arc::new(Hold::default());
        let served = F::serve(App {
            manager: manager.clone(),
            cookie: setup.cookie,
            transport: setup.transport,
            client_ip_header: setup.client_ip_header,
            hold: hold.clone(),
        })
        .await;
        Harness { redis, manager, hold, client: reqwest::Client::new(), served }
    }

    /// Sends `method path` with these headers and body.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Option<String>,
    ) -> Resp {
        let url = format!("{}{path}", self.served.url);
        let mut rb = self.client.request(method.parse().unwrap(), url);
        for (k, v) in headers {
            rb = rb.header(*k, v);
        }
        if let Some(b) = body {
            rb = rb.body(b);
        }
        let r = rb.send().await.unwrap();
        let (status, headers) = (r.status().as_u16(), r.headers().clone());
        let text = r.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Resp { status, headers, body }
    }

    /// Sends `method path`, with `token` in the default cookie when given.
    pub async fn call(&self, method: &str, path: &str, token: Option<&str>) -> Resp {
        let cookie: Vec<(&str, String)> =
            token.map(|t| ("cookie", format!("{COOKIE}={t}"))).into_iter().collect();
        let body = (method == "POST").then(|| "v".to_string());
        self.send(method, path, &cookie, body).await
    }

    /// A new anonymous session holding `x = v`; its token.
    pub async fn anonymous(&self) -> String {
        let r = self.call("POST", "/set/x", None).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        r.token().expect("a new session hands out a cookie")
    }

    /// How many keys the Redis holds.
    pub fn keys(&self) -> u64 {
        self.redis.cli(&["DBSIZE"]).unwrap().trim().parse().unwrap()
    }
}

/// Generates one `#[tokio::test]` per case of the HTTP suite for the framework `$fw` (a type
/// implementing [`http_suite::Framework`](crate::http_suite::Framework)).
///
/// This macro holds the one list of cases.
#[macro_export]
macro_rules! http_suite_tests {
    // The list of cases, written once: calls `$cb! { $args ; case, case, ... }`.
    (@list ($($cb:tt)*) $($args:tt)*) => {
        $($cb)*! { $($args)* ;
            untouched_session_costs_nothing,
            unchanged_session_is_not_written,
            strict_route_needs_a_login,
            secure_cookie_defaults,
            login_rotates_the_token,
            rotate_hands_out_a_new_token,
            logout_clears_the_cookie_and_deletes,
            store_down_is_503_with_retry_after,
            ended_session_is_401,
            too_large_is_413,
            creation_rate_limit_is_429,
            bearer_transport,
            named_header_transport,
            two_different_tokens_mean_none,
            forged_token_costs_no_store_call,
            token_in_the_url_is_ignored,
            persistent_cookie_has_max_age,
        }
    };
    (@each $fw:ty ; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::http_suite::$name::<$fw>().await;
            }
        )*
    };
    ($fw:ty) => {
        $crate::http_suite_tests!(@list ($crate::http_suite_tests) @each $fw);
    };
}
