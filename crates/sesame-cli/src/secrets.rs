//! The secrets of `sesame serve` and `sesame demo`, from the environment, so that a process
//! shares sessions with Rust apps configured with the same ones:
//!
//! - `SESAME_TOKEN_SECRET`: one token secret; or `SESAME_TOKEN_SECRETS`: several, separated by
//!   commas, the first making new tokens (see `SessionConfigBuilder::token_secrets`);
//! - `SESAME_NAMING_SECRET`: the naming secret (required with several token secrets);
//! - `SESAME_ENCRYPTION_KEYS`: encryption at rest, as `id:key` pairs separated by commas, each
//!   key 32 bytes in base64, the first current (see `SessionConfigBuilder::encryption_keys`).
//!
//! Secrets are used as the bytes of the text given, as the Rust builder takes them.

use base64::Engine as _;
use sesame::SessionConfigBuilder;

/// What was found: whether any token secret was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    /// A token secret came from `SESAME_TOKEN_SECRET` or `SESAME_TOKEN_SECRETS`.
    pub token_secret: bool,
}

/// Applies the secrets that `var` (an environment lookup) holds to `b`. Errors name the
/// variable and never quote a secret.
pub fn apply(
    mut b: SessionConfigBuilder,
    var: impl Fn(&str) -> Option<String>,
) -> Result<(SessionConfigBuilder, Found), String> {
    let one = var("SESAME_TOKEN_SECRET");
    let many = var("SESAME_TOKEN_SECRETS");
    let token_secret = match (one, many) {
        (Some(_), Some(_)) => {
            return Err("set SESAME_TOKEN_SECRET or SESAME_TOKEN_SECRETS, not both".into())
        }
        (Some(s), None) => {
            b = b.token_secret(s.into_bytes());
            true
        }
        (None, Some(list)) => {
            let secrets: Vec<Vec<u8>> =
                list.split(',').map(|s| s.trim().as_bytes().to_vec()).collect();
            if secrets.iter().any(Vec::is_empty) {
                return Err("SESAME_TOKEN_SECRETS holds an empty secret".into());
            }
            b = b.token_secrets(secrets);
            true
        }
        (None, None) => false,
    };
    if let Some(n) = var("SESAME_NAMING_SECRET") {
        b = b.naming_secret(n.into_bytes());
    }
    if let Some(list) = var("SESAME_ENCRYPTION_KEYS") {
        b = b.encryption_keys(encryption_keys(&list)?);
    }
    Ok((b, Found { token_secret }))
}

/// Parses `id:base64,id:base64`.
fn encryption_keys(list: &str) -> Result<Vec<(u8, Vec<u8>)>, String> {
    let mut keys = Vec::new();
    for (n, pair) in list.split(',').enumerate() {
        let bad = |why: &str| format!("SESAME_ENCRYPTION_KEYS, entry {}: {why}", n + 1);
        let (id, key) = pair.trim().split_once(':').ok_or_else(|| bad("expected id:base64-key"))?;
        let id: u8 = id.trim().parse().map_err(|_| bad("the id must be a number from 0 to 255"))?;
        let key = key.trim();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(key)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(key))
            .map_err(|_| bad("the key is not base64"))?;
        keys.push((id, bytes));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_string())
    }

    const S1: &str = "a-first-token-secret-of-32-bytes-or-more";
    const S2: &str = "a-second-token-secret-of-32-bytes-or-more";
    const N: &str = "a-naming-secret-of-at-least-32-bytes-long";

    #[test]
    fn secrets_and_keys() {
        let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let old = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
        let keys = format!("2:{key}, 1:{old}");
        let both = format!("{S1},{S2}");
        let vars = [
            ("SESAME_TOKEN_SECRETS", both.as_str()),
            ("SESAME_NAMING_SECRET", N),
            ("SESAME_ENCRYPTION_KEYS", keys.as_str()),
        ];
        let (b, found) = apply(sesame::SessionConfig::builder(), env(&vars)).unwrap();
        assert!(found.token_secret);
        let config = b.build().unwrap();
        assert_eq!(config.encryption().unwrap().current_key_id(), 2);
        assert_eq!(config.tokens().secrets().len(), 2);
    }

    #[test]
    fn errors_name_the_variable_and_quote_no_secret() {
        let both = [("SESAME_TOKEN_SECRET", S1), ("SESAME_TOKEN_SECRETS", S2)];
        assert!(apply(sesame::SessionConfig::builder(), env(&both))
            .err()
            .unwrap()
            .contains("not both"));
        for bad in ["7", "x:AAAA", "1:not base64!", "300:AAAA"] {
            let vars = [("SESAME_TOKEN_SECRET", S1), ("SESAME_ENCRYPTION_KEYS", bad)];
            let e = apply(sesame::SessionConfig::builder(), env(&vars)).err().unwrap();
            assert!(e.starts_with("SESAME_ENCRYPTION_KEYS, entry 1:"), "{e}");
            assert!(!e.contains(S1), "{e}");
        }
        let (_, found) = apply(sesame::SessionConfig::builder(), env(&[])).unwrap();
        assert!(!found.token_secret);
    }
}
