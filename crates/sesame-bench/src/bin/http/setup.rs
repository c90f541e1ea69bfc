//! Creating the benchmark's sessions through real HTTP logins, and checking that a session
//! still answers.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use futures_util::StreamExt as _;
use reqwest::header::SET_COOKIE;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use sesame_bench::{content, BenchError, BenchResult};

use crate::apps::COOKIE_NAME;

/// An HTTP client that talks to the loopback servers directly (no proxy, no cookie store:
/// tokens are read from `Set-Cookie` and sent explicitly).
pub(crate) fn client() -> BenchResult<Client> {
    Client::builder().no_proxy().build().map_err(|e| BenchError::new(format!("HTTP client: {e}")))
}

/// The value of the `name` cookie in a `Set-Cookie` header value, if it sets that cookie.
pub(crate) fn cookie_value<'a>(set_cookie: &'a str, name: &str) -> Option<&'a str> {
    let first = set_cookie.split(';').next()?.trim();
    let (k, v) = first.split_once('=')?;
    (k == name && !v.is_empty()).then_some(v)
}

/// Logins in flight at once while the sessions are made.
const PARALLEL_LOGINS: usize = 32;

/// Logs in users `0..count` on the server at `addr`, [`PARALLEL_LOGINS`] at a time, and
/// returns their session tokens in user order. Prints progress on large counts.
pub(crate) async fn create_sessions(
    client: &Client,
    addr: SocketAddr,
    count: u32,
) -> BenchResult<Vec<String>> {
    let url = format!("http://{addr}/login");
    let logins = futures_util::stream::iter(0..count)
        .map(|n| login(client, &url, n))
        .buffered(PARALLEL_LOGINS);
    futures_util::pin_mut!(logins);
    let mut tokens = Vec::with_capacity(count as usize);
    while let Some(token) = logins.next().await {
        tokens.push(token?);
        if count >= 20_000 && tokens.len() % 10_000 == 0 {
            eprintln!("  {} / {count} sessions", tokens.len());
        }
    }
    Ok(tokens)
}

/// Logs in user `n` with `POST url`; returns the session token.
async fn login(client: &Client, url: &str, n: u32) -> BenchResult<String> {
    let user = content::principal(n).name().to_string();
    let res = client
        .post(url)
        .json(&json!({ "user": user }))
        .send()
        .await
        .map_err(|e| BenchError::new(format!("POST {url}: {e}")))?;
    if res.status() != StatusCode::OK {
        let status = res.status();
        let body = res.text().await.unwrap_or_default();
        return Err(BenchError::new(format!("POST {url} for {user}: {status} {body}")));
    }
    let token = res
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| cookie_value(v, COOKIE_NAME))
        .ok_or_else(|| BenchError::new(format!("POST {url} for {user}: no session cookie")))?;
    Ok(token.to_string())
}

/// Writes one token per line to `dir/name` and returns the path.
pub(crate) fn write_tokens(dir: &Path, name: &str, tokens: &[String]) -> BenchResult<PathBuf> {
    let path = dir.join(name);
    let mut text = tokens.join("\n");
    text.push('\n');
    std::fs::write(&path, text)
        .map_err(|e| BenchError::new(format!("writing {}: {e}", path.display())))?;
    Ok(path)
}

/// Sends `GET /me_ro` with `token` and checks that the session answers as user `user`.
pub(crate) async fn check_session(
    client: &Client,
    addr: SocketAddr,
    token: &str,
    user: &str,
) -> BenchResult<()> {
    let url = format!("http://{addr}/me_ro");
    let res = client
        .get(&url)
        .header(reqwest::header::COOKIE, format!("{COOKIE_NAME}={token}"))
        .send()
        .await
        .map_err(|e| BenchError::new(format!("GET {url}: {e}")))?;
    let status = res.status();
    let set_cookie = res.headers().contains_key(SET_COOKIE);
    let body = res.text().await.unwrap_or_default();
    if status != StatusCode::OK {
        return Err(BenchError::new(format!("GET {url} as {user}: {status} {body}")));
    }
    if set_cookie {
        return Err(BenchError::new(format!("GET {url} as {user}: a pure read set a cookie")));
    }
    let answered = serde_json::from_str::<Value>(&body).ok();
    let got = answered.as_ref().and_then(|v| v.get("user_id")).and_then(Value::as_str);
    if got != Some(user) {
        return Err(BenchError::new(format!("GET {url} as {user}: answered {body}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // The token is the value of the named cookie, attributes ignored.
    #[test]
    fn reads_cookie_value() {
        let h = "sid=abc_DEF-123; Path=/; HttpOnly; SameSite=Lax";
        assert_eq!(cookie_value(h, "sid"), Some("abc_DEF-123"));
        assert_eq!(cookie_value(h, "other"), None);
        assert_eq!(cookie_value("sid=; Max-Age=0", "sid"), None);
    }
}
