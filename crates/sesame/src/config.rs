//! Session policies: timeouts, touch coalescing, limits. Validated when built.

use std::time::Duration;

use crate::error::Error;
use crate::token::{TokenCodec, TokenSecret};
use crate::value::ValueFormat;

/// What happens when a principal would exceed [`SessionConfigBuilder::max_sessions_per_user`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CapPolicy {
    /// The oldest sessions of the principal are revoked to make room (the default).
    #[default]
    EvictOldest,
    /// The new login is refused with [`crate::StoreError::LimitExceeded`].
    Refuse,
}

/// The part of the configuration a store needs, in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Idle timeout: a session not accessed for this long expires.
    pub idle_ms: u64,
    /// Absolute timeout: a session expires this long after it was created (or logged in),
    /// whatever its activity.
    pub absolute_ms: u64,
    /// The idle deadline is pushed forward only once this much of it has passed since the last
    /// push, so that reads do not write on every request.
    pub touch_after_ms: u64,
    /// Largest encoded session record a save may produce.
    pub max_record_bytes: usize,
    /// Largest number of attributes in one session.
    pub max_attributes: usize,
    /// Largest number of live sessions per principal, if any.
    pub max_sessions_per_user: Option<u32>,
    /// What to do when the cap is reached.
    pub cap_policy: CapPolicy,
}

/// Validated session configuration. Build it with [`SessionConfig::builder`].
#[derive(Debug, Clone)]
pub struct SessionConfig {
    policy: Policy,
    tokens: TokenCodec,
    compress_above: usize,
    value_format: ValueFormat,
    secret_configured: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            policy: Policy {
                idle_ms: 30 * 60 * 1000,
                absolute_ms: 12 * 60 * 60 * 1000,
                touch_after_ms: 60 * 1000,
                max_record_bytes: 64 * 1024,
                max_attributes: 256,
                max_sessions_per_user: None,
                cap_policy: CapPolicy::EvictOldest,
            },
            tokens: TokenCodec::default(),
            compress_above: 128,
            value_format: ValueFormat::Json,
            secret_configured: false,
        }
    }
}

impl SessionConfig {
    /// A builder starting from the defaults: 30 min idle, 12 h absolute, touch after 1 min,
    /// 64 KiB per session, 256 attributes, no per-user cap, compression above 128 bytes.
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = sesame::SessionConfig::builder()
    ///     .idle_timeout(Duration::from_secs(15 * 60))
    ///     .absolute_timeout(Duration::from_secs(8 * 3600))
    ///     .max_sessions_per_user(5)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(config.policy().idle_ms, 15 * 60 * 1000);
    /// ```
    pub fn builder() -> SessionConfigBuilder {
        SessionConfigBuilder { config: SessionConfig::default(), touch_after: None, secret: None }
    }

    /// The store-facing policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The token codec (check value keyed by the configured secret).
    pub fn tokens(&self) -> &TokenCodec {
        &self.tokens
    }

    /// Values whose encoding is larger than this many bytes are compressed when it helps.
    pub fn compress_above(&self) -> usize {
        self.compress_above
    }

    /// How new attribute values are serialized.
    pub fn value_format(&self) -> ValueFormat {
        self.value_format
    }

    /// Whether a token secret was configured (otherwise the check value is only a checksum).
    pub fn has_token_secret(&self) -> bool {
        self.secret_configured
    }
}

/// Builder of [`SessionConfig`]; [`SessionConfigBuilder::build`] validates it.
#[derive(Debug, Clone)]
pub struct SessionConfigBuilder {
    config: SessionConfig,
    touch_after: Option<Duration>,
    secret: Option<Vec<u8>>,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl SessionConfigBuilder {
    /// Idle timeout (sliding, enforced by the store). Default 30 minutes.
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.config.policy.idle_ms = millis(d);
        self
    }

    /// Absolute timeout from creation or login, never extended. Default 12 hours.
    pub fn absolute_timeout(mut self, d: Duration) -> Self {
        self.config.policy.absolute_ms = millis(d);
        self
    }

    /// How much of the idle window must pass before a read pushes the idle deadline forward.
    /// Default: a thirtieth of the idle timeout, at least one second (1 minute for 30 minutes).
    pub fn touch_after(mut self, d: Duration) -> Self {
        self.touch_after = Some(d);
        self
    }

    /// Largest encoded session, in bytes. Default 64 KiB.
    pub fn max_session_bytes(mut self, n: usize) -> Self {
        self.config.policy.max_record_bytes = n;
        self
    }

    /// Largest number of attributes per session. Default 256.
    pub fn max_attributes(mut self, n: usize) -> Self {
        self.config.policy.max_attributes = n;
        self
    }

    /// Caps the live sessions of one principal. Default: no cap.
    pub fn max_sessions_per_user(mut self, n: u32) -> Self {
        self.config.policy.max_sessions_per_user = Some(n);
        self
    }

    /// What to do at the cap. Default [`CapPolicy::EvictOldest`].
    pub fn cap_policy(mut self, p: CapPolicy) -> Self {
        self.config.policy.cap_policy = p;
        self
    }

    /// Secret (at least 32 bytes) keying the token check value; share it between instances.
    pub fn token_secret(mut self, secret: impl Into<Vec<u8>>) -> Self {
        self.secret = Some(secret.into());
        self
    }

    /// Compress values larger than this many bytes (when compression saves space). Default 128.
    pub fn compress_above(mut self, n: usize) -> Self {
        self.config.compress_above = n;
        self
    }

    /// Serialize new attribute values as JSON (the default) or MessagePack (smaller). Values
    /// already stored stay readable whatever this says.
    pub fn value_format(mut self, f: ValueFormat) -> Self {
        self.config.value_format = f;
        self
    }

    /// Validates and returns the configuration. Impossible settings are errors here, not at
    /// the first request.
    pub fn build(self) -> Result<SessionConfig, Error> {
        let mut c = self.config;
        let p = &mut c.policy;
        if p.idle_ms < 1000 {
            return Err(Error::Config("idle timeout must be at least one second".into()));
        }
        if p.absolute_ms < p.idle_ms {
            return Err(Error::Config(format!(
                "absolute timeout ({} ms) must not be shorter than the idle timeout ({} ms)",
                p.absolute_ms, p.idle_ms
            )));
        }
        if p.absolute_ms > 366 * 24 * 3600 * 1000 {
            return Err(Error::Config("absolute timeout must be at most one year".into()));
        }
        p.touch_after_ms = match self.touch_after {
            Some(d) => millis(d),
            None => (p.idle_ms / 30).max(1000).min(p.idle_ms / 2),
        };
        if p.touch_after_ms >= p.idle_ms {
            return Err(Error::Config(format!(
                "touch_after ({} ms) must be shorter than the idle timeout ({} ms)",
                p.touch_after_ms, p.idle_ms
            )));
        }
        if p.max_record_bytes < 256 {
            return Err(Error::Config("max_session_bytes must be at least 256".into()));
        }
        if p.max_attributes == 0 {
            return Err(Error::Config("max_attributes must be at least 1".into()));
        }
        if p.max_sessions_per_user == Some(0) {
            return Err(Error::Config("max_sessions_per_user must be at least 1".into()));
        }
        if let Some(secret) = self.secret {
            c.tokens = TokenCodec::new(Some(TokenSecret::new(secret)?));
            c.secret_configured = true;
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Impossible settings are rejected when the config is built.
    #[test]
    fn rejects_impossible_settings() {
        let b = SessionConfig::builder;
        assert!(b().idle_timeout(Duration::from_millis(10)).build().is_err());
        assert!(b()
            .idle_timeout(Duration::from_secs(60))
            .absolute_timeout(Duration::from_secs(30))
            .build()
            .is_err());
        assert!(b()
            .idle_timeout(Duration::from_secs(60))
            .touch_after(Duration::from_secs(60))
            .build()
            .is_err());
        assert!(b().max_sessions_per_user(0).build().is_err());
        assert!(b().token_secret(vec![1u8; 8]).build().is_err());
        assert!(b().max_session_bytes(10).build().is_err());
    }

    // Defaults coalesce touches to one per minute of a 30 minute idle window.
    #[test]
    fn defaults() {
        let c = SessionConfig::builder().build().unwrap();
        assert_eq!(c.policy().touch_after_ms, 60_000);
        assert!(!c.has_token_secret());
        let c = SessionConfig::builder().idle_timeout(Duration::from_secs(2)).build().unwrap();
        assert_eq!(c.policy().touch_after_ms, 1000);
    }
}
