//! Session policies: timeouts, touch coalescing, limits. Validated when built.

use std::sync::Arc;
use std::time::Duration;

use crate::crypt::{Keyring, RawKeys};
use crate::error::Error;
use crate::token::{Naming, Principal, TokenCodec, TokenSecret};
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
    /// Largest number of live sessions per principal. Every per-user operation is bounded by
    /// it; at most [`MAX_SESSIONS_PER_USER`].
    pub max_sessions_per_user: u32,
    /// What to do when the cap is reached.
    pub cap_policy: CapPolicy,
    /// How long a token superseded by a same-privilege rotation still resolves to its
    /// successor (so that a browser's parallel requests keep their session); presenting it
    /// after that revokes its lineage.
    pub grace_ms: u64,
    /// Rotate the token of an active session once this long has passed since its last
    /// rotation (the renewal timer); `None`: never.
    pub renew_after_ms: Option<u64>,
}

const NO_SECRET: &str = "no token secret is configured: pass `token_secret(..)` 32 or more \
random bytes shared by every instance (generate them with `openssl rand -base64 48`), or call \
`insecure_development_secret()` for local development";

/// The default cap on live sessions per user.
pub const DEFAULT_MAX_SESSIONS_PER_USER: u32 = 256;
/// The largest cap on live sessions per user an app may configure.
pub const MAX_SESSIONS_PER_USER: u32 = 100_000;

/// Validated session configuration. Build it with [`SessionConfig::builder`].
#[derive(Debug, Clone)]
pub struct SessionConfig {
    policy: Policy,
    tokens: TokenCodec,
    naming: Naming,
    compress_above: usize,
    value_format: ValueFormat,
    keep_data_on_login: bool,
    encryption: Option<Arc<Keyring>>,
}

impl SessionConfig {
    fn defaults() -> Self {
        SessionConfig {
            policy: Policy {
                idle_ms: 30 * 60 * 1000,
                absolute_ms: 12 * 60 * 60 * 1000,
                touch_after_ms: 60 * 1000,
                max_record_bytes: 64 * 1024,
                max_attributes: 256,
                max_sessions_per_user: DEFAULT_MAX_SESSIONS_PER_USER,
                cap_policy: CapPolicy::EvictOldest,
                grace_ms: 5_000,
                renew_after_ms: None,
            },
            tokens: TokenCodec::insecure_development(),
            naming: Naming::from_secret(&TokenSecret::insecure_development()),
            compress_above: 128,
            value_format: ValueFormat::Json,
            keep_data_on_login: true,
            encryption: None,
        }
    }
}

impl SessionConfig {
    /// A builder starting from the defaults: 30 min idle, 12 h absolute, touch after 1 min,
    /// 64 KiB per session, 256 attributes, at most 256 sessions per user, a 5 s grace window,
    /// no renewal timer, compression above 128 bytes. A token secret is required (see
    /// [`SessionConfigBuilder::token_secret`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// let secret = std::env::var("SESSION_SECRET").unwrap_or_else(|_| "x".repeat(32));
    /// let config = sesame::SessionConfig::builder()
    ///     .token_secret(secret)
    ///     .idle_timeout(Duration::from_secs(15 * 60))
    ///     .absolute_timeout(Duration::from_secs(8 * 3600))
    ///     .max_sessions_per_user(5)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(config.policy().idle_ms, 15 * 60 * 1000);
    /// ```
    pub fn builder() -> SessionConfigBuilder {
        SessionConfigBuilder {
            config: SessionConfig::defaults(),
            touch_after: None,
            grace: None,
            secrets: Vec::new(),
            naming_secret: None,
            development: false,
            encryption_keys: None,
        }
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

    /// Whether this configuration runs on the public development secret
    /// ([`SessionConfigBuilder::insecure_development_secret`]): anyone can forge its tokens.
    pub fn is_insecure_development(&self) -> bool {
        self.tokens.current().is_insecure_development()
    }

    /// The keyed naming of principals (see [`Naming`]).
    pub fn naming(&self) -> &Naming {
        &self.naming
    }

    /// The principal named `name`, as stores know it.
    pub fn principal(&self, name: &str) -> Principal {
        self.naming.principal(name)
    }

    /// Whether an anonymous session's attributes are kept when it logs in (a login as a
    /// different principal than the session's always starts clean).
    pub fn keep_data_on_login(&self) -> bool {
        self.keep_data_on_login
    }

    /// The encryption keys, when encryption at rest is on (see
    /// [`SessionConfigBuilder::encryption_keys`]).
    pub fn encryption(&self) -> Option<&Arc<Keyring>> {
        self.encryption.as_ref()
    }

    /// The principal named `principal` as it is written into records: with its name, or,
    /// while encryption is on, with an empty name (the name is then sealed in the record, and
    /// only its keyed reference, the same either way, is in clear).
    pub fn store_principal(&self, principal: &str) -> Principal {
        let user = self.naming.user(principal);
        match self.encryption {
            Some(_) => Principal::from_parts(String::new(), user),
            None => Principal::from_parts(principal.to_string(), user),
        }
    }
}

/// Builder of [`SessionConfig`]; [`SessionConfigBuilder::build`] validates it. Its `Debug`
/// output shows no secret or key.
#[derive(Clone)]
pub struct SessionConfigBuilder {
    config: SessionConfig,
    touch_after: Option<Duration>,
    grace: Option<Duration>,
    secrets: Vec<Vec<u8>>,
    naming_secret: Option<Vec<u8>>,
    development: bool,
    encryption_keys: Option<RawKeys>,
}

impl std::fmt::Debug for SessionConfigBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionConfigBuilder")
            .field("config", &self.config)
            .field("touch_after", &self.touch_after)
            .field("grace", &self.grace)
            .field("token_secrets", &self.secrets.len())
            .field("naming_secret", &self.naming_secret.is_some())
            .field("development", &self.development)
            .field("encryption_keys", &self.encryption_keys)
            .finish()
    }
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

    /// Caps the live sessions of one principal (1 to 100,000). Default 256. Every per-user
    /// operation is bounded by it.
    pub fn max_sessions_per_user(mut self, n: u32) -> Self {
        self.config.policy.max_sessions_per_user = n;
        self
    }

    /// How long a token superseded by a same-privilege rotation (`cycle_id`, a re-login as the
    /// same principal, the renewal timer) still resolves to its successor, so that requests
    /// sent in parallel with the rotation keep their session. Presenting it after this window
    /// revokes the whole lineage (reuse detection). Default 5 s (half the idle timeout when
    /// that is shorter); zero is allowed; at most the idle timeout.
    pub fn grace_period(mut self, d: Duration) -> Self {
        self.grace = Some(d);
        self
    }

    /// Rotates the token of an active session once `d` has passed since its last rotation,
    /// with the same grace window. Default: off.
    pub fn renew_after(mut self, d: Duration) -> Self {
        self.config.policy.renew_after_ms = Some(millis(d));
        self
    }

    /// Whether an anonymous session's attributes are carried into the session a login makes
    /// (default true: a shopping cart survives the login). A login as a principal other than
    /// the session's always starts from a clean session.
    pub fn keep_data_on_login(mut self, keep: bool) -> Self {
        self.config.keep_data_on_login = keep;
        self
    }

    /// What to do at the cap. Default [`CapPolicy::EvictOldest`].
    pub fn cap_policy(mut self, p: CapPolicy) -> Self {
        self.config.policy.cap_policy = p;
        self
    }

    /// The secret (at least 32 random bytes) that keys token check values and, unless
    /// [`naming_secret`](Self::naming_secret) is set, the keyed names of principals. Every
    /// instance serving the same sessions must share it. Generate one with
    /// `openssl rand -base64 48`. Calling this again adds older secrets (see
    /// [`token_secrets`](Self::token_secrets)).
    pub fn token_secret(mut self, secret: impl Into<Vec<u8>>) -> Self {
        self.secrets.push(secret.into());
        self
    }

    /// Several token secrets: the first makes new tokens, every one checks tokens. To replace
    /// a secret without logging anyone out, deploy `[new, old]`, and drop `old` once the
    /// sessions made under it have expired (the absolute timeout). With more than one secret,
    /// [`naming_secret`](Self::naming_secret) is required, so that principals keep their names.
    pub fn token_secrets<I, S>(mut self, secrets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<Vec<u8>>,
    {
        self.secrets.extend(secrets.into_iter().map(Into::into));
        self
    }

    /// The secret (at least 32 random bytes) that keys the names principals have in the store
    /// and the tags of logged-in tokens. It must not change while sessions live: a user's
    /// session index and revocation epoch are found by it. Default: derived from the only
    /// token secret.
    pub fn naming_secret(mut self, secret: impl Into<Vec<u8>>) -> Self {
        self.naming_secret = Some(secret.into());
        self
    }

    /// Runs on a public, built-in secret instead of a configured one: tokens can then be
    /// forged by anyone who reads sesame's source. For local development and tests only;
    /// [`SessionConfig::is_insecure_development`] reports it so an app can warn.
    pub fn insecure_development_secret(mut self) -> Self {
        self.development = true;
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

    /// Turns on encryption at rest: every attribute value, and the logged-in principal's name,
    /// is sealed with XChaCha20-Poly1305 before it reaches the store, bound to its session and
    /// its attribute name (a value copied into another session or attribute does not open).
    /// Each key is a key id and 32 bytes from a secure random source, shared by every
    /// instance; the first is the current key, which seals new values, and values sealed under
    /// any listed key still open. To replace a key, deploy `[(new, ..), (old, ..)]` on every
    /// instance; values are sealed again under the current key when written and at every
    /// rotation (login, `cycle_id`, renewal), so `old` can be dropped one absolute timeout
    /// after the last instance made `new` current. A value under a key no longer listed gives
    /// a clear error, not its content; a session whose principal does not open (its key is no
    /// longer listed, or the record was altered) is not used: its client starts a new session.
    ///
    /// `build()` refuses an empty list, a key that is not 32 bytes and a key id given twice.
    /// The keys never appear in `Debug` output. Turning encryption on or off starts every
    /// client on a new session: sessions written the other way are not used.
    ///
    /// ```
    /// // In production, read the keys from your secret store.
    /// let current = [0x5a_u8; 32];
    /// let previous = [0xa5_u8; 32];
    /// let config = sesame::SessionConfig::builder()
    ///     .token_secret([0x11_u8; 32])
    ///     .encryption_keys([(2, current), (1, previous)])
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(config.encryption().unwrap().current_key_id(), 2);
    /// // Debug output shows the key ids, never the keys.
    /// assert!(format!("{config:?}").contains("key_ids: [2, 1]"));
    /// ```
    pub fn encryption_keys<K: AsRef<[u8]>>(
        mut self,
        keys: impl IntoIterator<Item = (u8, K)>,
    ) -> Self {
        let keys = keys.into_iter().map(|(id, k)| (id, k.as_ref().to_vec())).collect();
        self.encryption_keys = Some(RawKeys(keys));
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
        if p.max_sessions_per_user == 0 || p.max_sessions_per_user > MAX_SESSIONS_PER_USER {
            return Err(Error::Config(format!(
                "max_sessions_per_user must be 1 to {MAX_SESSIONS_PER_USER}"
            )));
        }
        p.grace_ms = match self.grace {
            Some(d) => millis(d),
            None => p.grace_ms.min(p.idle_ms / 2),
        };
        if p.grace_ms > p.idle_ms {
            return Err(Error::Config("the grace period must not exceed the idle timeout".into()));
        }
        if p.renew_after_ms.is_some_and(|r| r < 1000) {
            return Err(Error::Config("renew_after must be at least one second".into()));
        }
        match (self.secrets.is_empty(), self.development) {
            (true, false) => return Err(Error::Config(NO_SECRET.into())),
            (false, true) => {
                return Err(Error::Config(
                    "both a token secret and the insecure development secret are set; keep one"
                        .into(),
                ))
            }
            (true, true) => {}
            (false, false) => {
                let secrets = self
                    .secrets
                    .into_iter()
                    .map(TokenSecret::new)
                    .collect::<Result<Vec<_>, _>>()?;
                let naming = match (self.naming_secret, secrets.as_slice()) {
                    (Some(n), _) => Naming::from_secret(&TokenSecret::new(n)?),
                    (None, [only]) => Naming::from_secret(only),
                    (None, _) => {
                        return Err(Error::Config(
                            "several token secrets need a naming_secret: principals must keep \
                             the names their sessions are indexed by while a secret is replaced \
                             (pass the secret you used until now)"
                                .into(),
                        ))
                    }
                };
                c.tokens = TokenCodec::new(secrets)?;
                c.naming = naming;
            }
        }
        if let Some(RawKeys(keys)) = self.encryption_keys {
            c.encryption = Some(Arc::new(Keyring::new(keys)?));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev() -> SessionConfigBuilder {
        SessionConfig::builder().insecure_development_secret()
    }

    // A secret is required unless the development secret is asked for by name; several
    // secrets need a naming secret; the naming follows the naming secret, not the token
    // secret order.
    #[test]
    fn secrets_are_required_and_named() {
        let err = SessionConfig::builder().build().unwrap_err().to_string();
        assert!(err.contains("token_secret") && err.contains("openssl rand"), "{err}");
        assert!(dev().token_secret(vec![1u8; 32]).build().is_err());
        assert!(SessionConfig::builder()
            .token_secrets([vec![2u8; 32], vec![1u8; 32]])
            .build()
            .is_err());
        let one = SessionConfig::builder().token_secret(vec![1u8; 32]).build().unwrap();
        assert!(!one.is_insecure_development());
        let rotating = SessionConfig::builder()
            .token_secrets([vec![2u8; 32], vec![1u8; 32]])
            .naming_secret(vec![1u8; 32])
            .build()
            .unwrap();
        assert_eq!(one.principal("alice"), rotating.principal("alice"));
        assert_ne!(one.principal("alice"), dev().build().unwrap().principal("alice"));
        let t = one.tokens().generate(one.principal("alice").user().tag()).unwrap();
        assert!(rotating.tokens().parse(&t.expose()).is_ok());
    }

    // Impossible settings are rejected when the config is built.
    #[test]
    fn rejects_impossible_settings() {
        let b = || SessionConfig::builder().insecure_development_secret();
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
        assert!(SessionConfig::builder().token_secret(vec![1u8; 8]).build().is_err());
        assert!(b().max_session_bytes(10).build().is_err());
        assert!(b().max_sessions_per_user(MAX_SESSIONS_PER_USER + 1).build().is_err());
        assert!(b()
            .idle_timeout(Duration::from_secs(60))
            .grace_period(Duration::from_secs(61))
            .build()
            .is_err());
        assert!(b().renew_after(Duration::from_millis(500)).build().is_err());
    }

    // The default grace window is 5 s, and half the idle timeout when that is shorter; an
    // explicit zero is kept; the default cap is 256.
    #[test]
    fn grace_and_cap_defaults() {
        let c = dev().build().unwrap();
        assert_eq!(c.policy().grace_ms, 5_000);
        assert_eq!(c.policy().max_sessions_per_user, DEFAULT_MAX_SESSIONS_PER_USER);
        assert!(c.keep_data_on_login());
        let c = dev().idle_timeout(Duration::from_secs(2)).build().unwrap();
        assert_eq!(c.policy().grace_ms, 1_000);
        let c = dev().grace_period(Duration::ZERO).build().unwrap();
        assert_eq!(c.policy().grace_ms, 0);
    }

    // Encryption keys: an empty list, a key of the wrong length and a repeated key id are
    // errors at build; the first key is current; neither the builder's nor the config's Debug
    // output holds a key.
    #[test]
    fn encryption_keys() {
        let b = dev;
        let no_keys: [(u8, [u8; 32]); 0] = [];
        assert!(b().encryption_keys(no_keys).build().is_err());
        assert!(b().encryption_keys([(1, vec![7u8; 16])]).build().is_err());
        assert!(b().encryption_keys([(1, vec![7u8; 33])]).build().is_err());
        let twice = b().encryption_keys([(1, [7u8; 32]), (1, [8u8; 32])]).build();
        assert!(matches!(twice, Err(Error::Config(m)) if m.contains("key id 1")));
        let builder = b().encryption_keys([(9, [0xabu8; 32]), (4, [0xcdu8; 32])]);
        let c = builder.clone().build().unwrap();
        let ring = c.encryption().unwrap();
        assert_eq!((ring.current_key_id(), ring.key_ids()), (9, vec![9, 4]));
        for text in [format!("{builder:?}"), format!("{c:?}"), format!("{c:#?}")] {
            assert!(!text.contains("171") && !text.contains("205"), "{text}");
            assert!(!text.contains("ab, ab") && !text.contains("0xab"), "{text}");
        }
        let plain = dev().build().unwrap();
        assert!(plain.encryption().is_none());
        assert_eq!(plain.store_principal("ada").name(), "ada");
        assert_eq!(c.store_principal("ada").name(), "", "no name in clear");
        assert_eq!(c.store_principal("ada").user(), plain.store_principal("ada").user());
        // Token secrets are not printed either.
        let secret = SessionConfig::builder().token_secret(vec![0xeeu8; 32]);
        assert!(!format!("{secret:?}").contains("238"), "{secret:?}");
    }

    // Defaults coalesce touches to one per minute of a 30 minute idle window.
    #[test]
    fn defaults() {
        let c = dev().build().unwrap();
        assert_eq!(c.policy().touch_after_ms, 60_000);
        assert!(c.is_insecure_development());
        let c = dev().idle_timeout(Duration::from_secs(2)).build().unwrap();
        assert_eq!(c.policy().touch_after_ms, 1000);
    }
}
