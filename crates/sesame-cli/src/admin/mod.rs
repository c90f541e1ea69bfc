//! The administration commands: `sessions` (list, show, revoke), `stats`, `watch` and
//! `doctor`, against any store URL. Human tables by default, `--json` for machines. Nothing
//! printed is a token or an attribute value; session ids are.
//!
//! Exit codes: 0 done (and, for `doctor`, nothing wrong); 1 the answer is negative (no such
//! session; `doctor` found warnings only); 2 the command failed or found something wrong
//! (cannot connect, a missing secret, `doctor` errors, `watch` without the notifications it
//! needs).

pub(crate) mod doctor;
pub(crate) mod sessions;
pub(crate) mod stats;
pub(crate) mod watch;

use std::process::ExitCode;

use sesame::{Naming, TokenSecret};
use sesame_redis::admin::{Admin, AdminOptions};

pub(crate) use doctor::DoctorArgs;
pub(crate) use sessions::SessionsArgs;
pub(crate) use stats::StatsArgs;
pub(crate) use watch::WatchArgs;

/// Where the sessions are, and how to print.
#[derive(clap::Args)]
pub(crate) struct StoreArgs {
    /// Store URL: redis://[user:pass@]host:port[/db] (rediss:// for TLS),
    /// redis+sentinel://host:port,host:port/<master-name>, redis+cluster://host:port,host:port.
    #[arg(long)]
    store: String,
    /// The key prefix the applications use.
    #[arg(long, default_value = "sesame")]
    prefix: String,
    /// A PEM file with the CA certificate that signed the Redis servers' TLS certificates
    /// (for rediss:// URLs whose CA the system does not trust).
    #[arg(long, value_name = "PEM_FILE")]
    ca_cert: Option<std::path::PathBuf>,
    /// Print JSON instead of tables (one object; `watch`: one object per line).
    #[arg(long)]
    json: bool,
}

impl std::fmt::Debug for StoreArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password.
        f.debug_struct("StoreArgs")
            .field("prefix", &self.prefix)
            .field("json", &self.json)
            .finish_non_exhaustive()
    }
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Done; nothing wrong.
    Done,
    /// The answer is negative (not found; doctor: warnings only).
    Negative,
    /// Something is wrong (doctor errors; watch not configured).
    Wrong,
}

impl Outcome {
    fn code(self) -> ExitCode {
        match self {
            Outcome::Done => ExitCode::SUCCESS,
            Outcome::Negative => ExitCode::from(1),
            Outcome::Wrong => ExitCode::from(2),
        }
    }
}

/// Runs a command's future and turns its result into an exit code, printing a failure on
/// stderr.
pub(crate) async fn run<F>(command: F) -> ExitCode
where
    F: std::future::Future<Output = Result<Outcome, String>>,
{
    match command.await {
        Ok(outcome) => outcome.code(),
        Err(e) => {
            eprintln!("sesame: {e}");
            Outcome::Wrong.code()
        }
    }
}

/// Connects to the store URL for administration.
async fn connect(args: &StoreArgs) -> Result<Admin, String> {
    let ca_cert_pem = match &args.ca_cert {
        Some(path) => Some(
            std::fs::read(path)
                .map_err(|e| format!("cannot read --ca-cert {}: {e}", path.display()))?,
        ),
        None => None,
    };
    let options =
        AdminOptions { prefix: args.prefix.clone(), ca_cert_pem, ..AdminOptions::default() };
    Admin::connect(&args.store, options).await.map_err(|e| format!("cannot connect: {e}"))
}

/// The environment variable holding the token secret.
const TOKEN_SECRET_VAR: &str = "SESAME_TOKEN_SECRET";
/// The environment variable holding the naming secret, when the apps set one.
const NAMING_SECRET_VAR: &str = "SESAME_NAMING_SECRET";

fn secret_var(name: &str) -> Result<Option<String>, String> {
    match std::env::var(name) {
        Ok(v) => Ok(Some(v)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(format!("{name} is not valid UTF-8")),
    }
}

/// The keyed naming of users the applications use: from `SESAME_NAMING_SECRET` when set (the
/// apps' `naming_secret`), else from `SESAME_TOKEN_SECRET` (their single token secret), read
/// as the demo reads it.
fn naming() -> Result<Naming, String> {
    let bad = |name: &str, e: sesame::Error| format!("{name}: {e}");
    if let Some(n) = secret_var(NAMING_SECRET_VAR)? {
        let secret = TokenSecret::new(n.into_bytes()).map_err(|e| bad(NAMING_SECRET_VAR, e))?;
        return Ok(Naming::from_secret(&secret));
    }
    match secret_var(TOKEN_SECRET_VAR)? {
        Some(t) => {
            let secret = TokenSecret::new(t.into_bytes()).map_err(|e| bad(TOKEN_SECRET_VAR, e))?;
            Ok(Naming::from_secret(&secret))
        }
        None => Err(format!(
            "this command needs the secret the applications use, because a user's Redis keys are \
             named by a keyed digest of the user's name: set {TOKEN_SECRET_VAR} to their token \
             secret (and {NAMING_SECRET_VAR} to their naming secret, if they set one)"
        )),
    }
}

/// A user's keyed reference as printed: `{<tag>}:<id>`.
fn user_ref(user: sesame::UserRef) -> String {
    format!("{{{}}}:{}", user.tag().to_hex(), user.id())
}

/// Checks a session id given on the command line. The argument is not repeated in the
/// error: it could be a token pasted by mistake.
fn check_id(id: &str) -> Result<(), String> {
    if sesame_redis::admin::is_session_id(id) {
        Ok(())
    } else {
        Err(format!(
            "the argument given as a session id is not one: an id is 22 base64url characters, \
             this has {} (a token is never needed here)",
            id.chars().count()
        ))
    }
}
