//! # sesame-cli — the `sesame` command
//!
//! ## Layout
//!
//! - [`demo`]: `sesame demo` — the demo web app ([`demo::app`], one instance), the round-robin
//!   balancer ([`demo::balancer`]) and the runner; in-memory store by default, Redis with
//!   `--store redis://...`.
//! - [`serve`]: `sesame serve` — the HTTP session service (`docs/SERVICE.md`).
//! - [`secrets`]: the token secrets, naming secret and encryption keys from the environment.
//! - [`mod@format`]: dates, durations and tables for the commands' output.
//! - `main.rs`: argument parsing.
#![forbid(unsafe_code)]

pub mod demo;
pub mod format;
pub mod secrets;
pub mod serve;
