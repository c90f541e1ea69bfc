//! # sesame — distributed sessions for Rust web services
//!
//! ## Quick start
//!
//! A web framework integration (`sesame-axum`, `sesame-actix`) opens and commits the session
//! of each request for you; underneath, this is what happens:
//!
//! ```
//! use std::sync::Arc;
//! use sesame::{MemoryStore, SessionConfig, SessionManager, TokenAction};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), sesame::Error> {
//! let config = SessionConfig::builder()
//!     .token_secret("32 or more random bytes, the same on every instance")
//!     .build()?;
//! // The in-memory store; `sesame_redis::RedisStore` shares sessions between instances.
//! let manager = SessionManager::new(Arc::new(MemoryStore::new()), config);
//!
//! // A request without a token changes its (new) session; the commit saves it and says
//! // which token to hand to the client.
//! let session = manager.open(None);
//! session.insert("cart", &["apple"]).await?;
//! let TokenAction::Set { token, .. } = session.commit().await? else { panic!("a new token") };
//!
//! // The next request presents the token and finds the cart.
//! let session = manager.open(Some(&token.expose()));
//! assert_eq!(session.get::<Vec<String>>("cart").await?, Some(vec!["apple".to_owned()]));
//! # Ok(()) }
//! ```
//!
//! ## What is where
//!
//! This is the core crate: everything that does not depend on a particular store or web
//! framework. Stores live in their own crates (`sesame-redis`), and so do framework
//! integrations (`sesame-axum`, `sesame-actix`).
//!
//! ## Layout
//!
//! - [`token`]: tokens (256 random bits + hash tag + check value), storage keys derived from a
//!   digest of the token, redacted `Debug`.
//! - [`config`]: [`SessionConfig`] — idle and absolute timeouts, touch coalescing, limits,
//!   per-user cap; validated when built.
//! - [`session`]: [`Session`], the per-request handle — lazy load (a superseded token resolves
//!   to its lineage's head within its grace window), typed get/insert/remove/update with change
//!   tracking, `cycle_id`, `login`, `logout`; its commit (`session/commit.rs`) is one store
//!   operation: a save, a rotation, a create or the end of the lineage.
//! - [`manager`]: [`SessionManager`] — a store plus a config; opens sessions, admin operations,
//!   counters.
//! - [`store`]: the [`Store`] trait every backend implements, the data it moves
//!   ([`Record`], [`Delta`], [`Rotation`], [`Lookup`]), and the rules every backend applies the
//!   same way (delta merging, touch coalescing, index members, pointer lifetimes).
//! - [`memory`]: [`MemoryStore`], the embedded default, with the same semantics as Redis.
//! - [`value`]: attribute value encoding (JSON or MessagePack, LZ4 when it helps).
//! - [`events`]: lifecycle events ([`SessionEvent`], ids only, never tokens) and the hooks an
//!   app installs ([`SessionHooks`]: creation refusals such as [`CreationRateLimit`],
//!   per-request checks against the client recorded at creation).
//! - [`crypt`]: optional encryption at rest (XChaCha20-Poly1305 envelopes with key ids, bound
//!   to their session and attribute).
//! - [`error`]: [`Error`] and [`StoreError`].
//! - [`metrics`]: the names of the metrics recorded through the `metrics` facade, and the
//!   spans around store operations.
#![forbid(unsafe_code)]

pub mod config;
pub mod crypt;
pub mod error;
pub mod events;
pub mod manager;
pub mod memory;
pub mod metrics;
pub mod session;
pub mod store;
pub mod token;
pub mod value;

pub use config::{
    CapPolicy, Policy, SessionConfig, SessionConfigBuilder, DEFAULT_MAX_SESSIONS_PER_USER,
    MAX_SESSIONS_PER_USER,
};
pub use error::{BoxError, Error, StoreError};
pub use events::{
    ClientInfo, CreationRateLimit, Refusal, RequestCheck, SessionEvent, SessionHooks, Verdict,
};
pub use manager::{now_ms, SessionDetails, SessionManager, Stats};
pub use memory::MemoryStore;
pub use session::{PendingLogin, Session, TokenAction};
pub use store::{
    CreateOutcome, Delta, Loaded, Login, Lookup, Record, RotateOutcome, Rotation, RotationKind,
    SaveOutcome, SessionInfo, Store, Update,
};
pub use token::{
    InvalidToken, Naming, Principal, SessionKey, SessionToken, Tag, TokenCodec, TokenSecret,
    UserRef, TOKEN_LEN,
};
pub use value::ValueFormat;
