//! A client of `api-server`: logs in, calls `GET /me` twice with `Authorization: Bearer`,
//! logs out, and shows that the token no longer works. It prints each step on stdout and
//! exits with an error at the first answer it did not expect.
//!
//! Run it while `api-server` runs:
//!
//! ```sh
//! cargo run -p sesame-examples --bin api-client
//! ```
//!
//! `API_URL` names the server (default `http://127.0.0.1:3000`), `API_USER` the user to log
//! in as (default `alice`).
#![allow(clippy::print_stdout)] // printing the steps is what this program is for

use reqwest::{Client, RequestBuilder, StatusCode};
use serde_json::{json, Value};
use sesame_axum::BEARER_RESPONSE_HEADER;
use sesame_examples::BoxError;

/// Sends a request, fails unless the status is `expected`, and returns the response's new
/// token (the `X-Session-Token` header, when present) and JSON body.
async fn send(
    req: RequestBuilder,
    expected: StatusCode,
) -> Result<(Option<String>, Value), BoxError> {
    let resp = req.send().await?;
    let status = resp.status();
    let token = match resp.headers().get(BEARER_RESPONSE_HEADER) {
        Some(v) => Some(v.to_str()?.to_owned()),
        None => None,
    };
    let body: Value = resp.json().await?;
    if status != expected {
        return Err(format!("expected {expected}, got {status}: {body}").into());
    }
    Ok((token, body))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let base = std::env::var("API_URL").unwrap_or_else(|_| "http://127.0.0.1:3000".into());
    let user = std::env::var("API_USER").unwrap_or_else(|_| "alice".into());
    let client = Client::new();

    let login = client.post(format!("{base}/login")).json(&json!({ "user": user }));
    let (token, _) = send(login, StatusCode::OK).await?;
    let token = token.filter(|t| !t.is_empty()).ok_or("the login answer carried no token")?;
    println!("logged in as {user}");

    for _ in 0..2 {
        let me = client.get(format!("{base}/me")).bearer_auth(&token);
        let (_, body) = send(me, StatusCode::OK).await?;
        println!("me: {} (call {})", body["user"], body["calls"]);
    }

    let logout = client.post(format!("{base}/logout")).bearer_auth(&token);
    let (cleared, _) = send(logout, StatusCode::OK).await?;
    if cleared.as_deref() != Some("") {
        return Err("the logout answer did not clear the token".into());
    }
    println!("logged out");

    let again = client.get(format!("{base}/me")).bearer_auth(&token);
    let (_, body) = send(again, StatusCode::UNAUTHORIZED).await?;
    println!("the old token is refused: {}", body["error"]);
    Ok(())
}
