//! The `sesame` command.
#![forbid(unsafe_code)]

mod admin;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use sesame::SessionConfig;
use sesame_axum::CookieConfig;
use sesame_cli::demo::{self, DemoOptions};
use sesame_cli::serve::{self, ServeOptions};

/// sesame: distributed sessions for Rust web services, on Redis.
#[derive(Parser, Debug)]
#[command(name = "sesame", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the demo web app: several app instances behind a round-robin balancer.
    Demo(DemoArgs),
    /// Run the HTTP session service (a JSON API for apps in any language; docs/SERVICE.md).
    Serve(ServeArgs),
    /// List, inspect and revoke sessions in Redis.
    Sessions(admin::SessionsArgs),
    /// Count sessions, users and bytes in Redis (a SCAN of every master).
    Stats(admin::StatsArgs),
    /// Print session lifecycle events as Redis reports them (keyspace notifications).
    Watch(admin::WatchArgs),
    /// Check the Redis configuration for what sessions need.
    Doctor(admin::DoctorArgs),
}

#[derive(clap::Args, Debug)]
struct DemoArgs {
    /// Address of the balancer.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Number of app instances.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=64))]
    instances: u16,
    #[command(flatten)]
    session: SessionArgs,
    /// Use the production cookie (`__Host-` name, Secure). Needs HTTPS in front of the demo;
    /// by default the demo, served over plain HTTP, uses a non-Secure `sesame_demo` cookie.
    #[arg(long)]
    secure_cookie: bool,
}

/// The store and the session policy, shared by `demo` and `serve`.
#[derive(clap::Args, Debug)]
struct SessionArgs {
    /// Store URL: redis://[user:pass@]host:port (rediss:// for TLS),
    /// redis+sentinel://host:port,host:port/<master-name>, redis+cluster://host:port,host:port.
    /// Default: the in-memory store.
    #[arg(long)]
    store: Option<String>,
    /// Acknowledge a write only once this many replicas confirm it (WAIT); a write they do
    /// not confirm within --durability-timeout-ms fails with 503.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    durability: Option<u32>,
    /// How long a write waits for its replicas, with --durability.
    #[arg(long, default_value_t = 500)]
    durability_timeout_ms: u64,
    /// Idle timeout in seconds.
    #[arg(long, default_value_t = 1800)]
    idle_timeout: u64,
    /// Absolute timeout in seconds.
    #[arg(long, default_value_t = 43200)]
    absolute_timeout: u64,
    /// Maximum concurrent sessions per user (the oldest is logged out beyond it).
    #[arg(long)]
    max_sessions_per_user: Option<u32>,
    /// Keep recently read sessions in memory, kept correct by Redis's invalidations
    /// (CLIENT TRACKING; Redis 6 or later).
    #[arg(long)]
    near_cache: bool,
}

impl SessionArgs {
    /// The session configuration, with the secrets of the environment (see
    /// `sesame_cli::secrets`); without a token secret there, `fallback` gives one or says why
    /// there is none.
    fn config(
        &self,
        fallback: impl FnOnce() -> Result<Vec<u8>, String>,
    ) -> Result<SessionConfig, String> {
        let mut b = SessionConfig::builder()
            .idle_timeout(Duration::from_secs(self.idle_timeout))
            .absolute_timeout(Duration::from_secs(self.absolute_timeout));
        if let Some(n) = self.max_sessions_per_user {
            b = b.max_sessions_per_user(n);
        }
        let (mut b, found) = sesame_cli::secrets::apply(b, |k| std::env::var(k).ok())?;
        if !found.token_secret {
            b = b.token_secret(fallback()?);
        }
        b.build().map_err(|e| e.to_string())
    }

    fn durability(&self) -> Option<(u32, Duration)> {
        self.durability.map(|n| (n, Duration::from_millis(self.durability_timeout_ms)))
    }
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// Address to listen on (port 0 picks a free one; the address is printed).
    #[arg(long, default_value = "127.0.0.1:7700")]
    listen: SocketAddr,
    #[command(flatten)]
    session: SessionArgs,
    /// The cookie a forwarded `Cookie` header is read under (the Rust layers' default name).
    #[arg(long, default_value = "__Host-sesame")]
    cookie_name: String,
    /// The named request header a token may come in.
    #[arg(long, default_value = "X-Session-Token")]
    token_header: String,
    /// The header whose first value is recorded as the client's address when a session is
    /// created.
    #[arg(long, default_value = "X-Forwarded-For")]
    client_ip_header: String,
}

/// 48 random bytes: the demo's token secret when none is given (its sessions then end with
/// the process).
fn random_secret() -> Result<Vec<u8>, String> {
    let mut secret = vec![0u8; 48];
    getrandom::fill(&mut secret).map_err(|e| format!("cannot draw a random secret: {e}"))?;
    tracing::info!(
        "no SESAME_TOKEN_SECRET given: this run uses a random token secret, so its sessions \
         are not valid in other demo processes or after a restart"
    );
    Ok(secret)
}

fn demo_options(a: DemoArgs) -> Result<DemoOptions, String> {
    let config = a.session.config(random_secret)?;
    let cookie = if a.secure_cookie {
        CookieConfig::builder().build()
    } else {
        CookieConfig::builder().name("sesame_demo").secure(false).build()
    }
    .map_err(|e| e.to_string())?;
    Ok(DemoOptions {
        listen: a.listen,
        instances: usize::from(a.instances),
        durability: a.session.durability(),
        near_cache: a.session.near_cache,
        store: a.session.store,
        config,
        cookie,
    })
}

/// The options of `sesame serve`: the token secret must be given (`SESAME_TOKEN_SECRET` or
/// `SESAME_TOKEN_SECRETS`), since a service exists to share sessions with other processes; the
/// service credential comes from `SESAME_SERVICE_KEY`.
fn serve_options(a: ServeArgs) -> Result<ServeOptions, String> {
    let service_key = std::env::var("SESAME_SERVICE_KEY").ok().map(String::into_bytes);
    Ok(ServeOptions {
        listen: a.listen,
        config: a.session.config(|| {
            Err("sesame serve needs SESAME_TOKEN_SECRET: the token secret the Rust apps sharing \
                 its sessions use (at least 32 bytes, for example `openssl rand -base64 48`)"
                .to_string())
        })?,
        durability: a.session.durability(),
        near_cache: a.session.near_cache,
        store: a.session.store,
        cookie_name: a.cookie_name,
        token_header: a.token_header,
        client_ip_header: Some(a.client_ip_header),
        service_key,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // The admin commands report what matters themselves; the store's own start-up warnings
    // would repeat `doctor` on every command.
    let default_filter =
        if matches!(cli.command, Command::Demo(_) | Command::Serve(_)) { "warn" } else { "error" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::Demo(a) => match demo_options(a) {
            Ok(opts) => demo::run(opts).await,
            Err(e) => Err(e),
        },
        Command::Serve(a) => match serve_options(a) {
            Ok(opts) => serve::run(opts).await,
            Err(e) => Err(e),
        },
        Command::Sessions(a) => return admin::run(admin::sessions::run(a)).await,
        Command::Stats(a) => return admin::run(admin::stats::run(a)).await,
        Command::Watch(a) => return admin::run(admin::watch::run(a)).await,
        Command::Doctor(a) => return admin::run(admin::doctor::run(a)).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sesame: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn arguments() {
        Cli::command().debug_assert();
    }

    // A session id may start with `-` (base64url): it is taken as the id, never as a flag,
    // wherever it stands; the flags around it are still recognized.
    #[test]
    fn ids_starting_with_a_hyphen() {
        let id = "-7NzlxnLbkhY0rya828dWw";
        for args in [
            vec!["sessions", "show", id, "--store", "redis://h:1"],
            vec!["sessions", "show", "--json", "--store", "redis://h:1", id],
            vec!["sessions", "revoke", id, "--user", "u", "--store", "redis://h:1"],
            vec!["sessions", "revoke", "--user", "u", "--except", id, "--store", "redis://h:1"],
        ] {
            let cli = Cli::try_parse_from(std::iter::once("sesame").chain(args.iter().copied()));
            let text = format!("{:?}", cli.unwrap().command);
            assert!(text.contains(id), "{args:?}: {text}");
        }
    }
}
