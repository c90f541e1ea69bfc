//! `sesame sessions list | show | revoke`.

use serde_json::{json, Value};
use sesame::{now_ms, Store as _};
use sesame_redis::admin::{Content, Inspection, PointerKindName};

use super::{check_id, connect, naming, user_ref, Outcome, StoreArgs};
use sesame_cli::format::{self, out};

/// `sesame sessions ...`
#[derive(clap::Args, Debug)]
pub(crate) struct SessionsArgs {
    #[command(subcommand)]
    command: SessionsCommand,
}

#[derive(clap::Subcommand, Debug)]
enum SessionsCommand {
    /// A user's live sessions, the most recently active first (needs SESAME_TOKEN_SECRET).
    List(ListArgs),
    /// One session's metadata: times, principal, attribute names and sizes (never values).
    Show(ShowArgs),
    /// Ends one session of a user, or all of them (but one, with --except).
    Revoke(RevokeArgs),
}

#[derive(clap::Args, Debug)]
struct ListArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The user's name, as the application logs them in.
    #[arg(long)]
    user: String,
    /// List at most this many sessions.
    #[arg(long, default_value_t = sesame::MAX_SESSIONS_PER_USER as usize)]
    limit: usize,
}

#[derive(clap::Args, Debug)]
struct ShowArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The session id (22 characters, as `list` shows it).
    #[arg(allow_hyphen_values = true)]
    id: String,
    /// The session's user: its key is then read directly instead of searched with SCAN (needs
    /// SESAME_TOKEN_SECRET).
    #[arg(long)]
    user: Option<String>,
}

#[derive(clap::Args, Debug)]
struct RevokeArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The session to end; without it, every session of the user ends.
    #[arg(allow_hyphen_values = true)]
    id: Option<String>,
    /// The user (needs SESAME_TOKEN_SECRET).
    #[arg(long)]
    user: String,
    /// With no id: keep this session, end the others.
    #[arg(long, conflicts_with = "id", allow_hyphen_values = true)]
    except: Option<String>,
}

pub(crate) async fn run(args: SessionsArgs) -> Result<Outcome, String> {
    match args.command {
        SessionsCommand::List(a) => list(a).await,
        SessionsCommand::Show(a) => show(a).await,
        SessionsCommand::Revoke(a) => revoke(a).await,
    }
}

async fn list(a: ListArgs) -> Result<Outcome, String> {
    let user = naming()?.user(&a.user);
    let admin = connect(&a.store).await?;
    let now = now_ms();
    let sessions = admin.store().list_user(user, now, a.limit).await.map_err(|e| e.to_string())?;
    if a.store.json {
        let items: Vec<Value> = sessions
            .iter()
            .map(|s| {
                json!({
                    "id": s.id,
                    "created_ms": s.created_ms,
                    "auth_ms": s.auth_ms,
                    "expires_ms": s.expires_ms,
                })
            })
            .collect();
        format::json(&json!({
            "user": a.user,
            "user_ref": user_ref(user),
            "sessions": items,
        }));
        return Ok(Outcome::Done);
    }
    if sessions.is_empty() {
        out(&format!("user {} ({}): no live sessions", a.user, user_ref(user)));
        return Ok(Outcome::Done);
    }
    let rows: Vec<Vec<String>> = sessions
        .iter()
        .map(|s| {
            vec![
                s.id.clone(),
                format::short(s.created_ms),
                s.auth_ms.map_or_else(|| "-".into(), format::short),
                format!(
                    "{} ({})",
                    format::short(s.expires_ms),
                    format::relative(s.expires_ms, now)
                ),
            ]
        })
        .collect();
    out(&format!(
        "user {} ({}): {} live session{}, the most recently active first",
        a.user,
        user_ref(user),
        sessions.len(),
        if sessions.len() == 1 { "" } else { "s" }
    ));
    out(&format::table(&["ID", "CREATED", "AUTHENTICATED", "EXPIRES IF IDLE"], &rows));
    Ok(Outcome::Done)
}

async fn show(a: ShowArgs) -> Result<Outcome, String> {
    check_id(&a.id)?;
    let user = match &a.user {
        Some(name) => Some(naming()?.user(name)),
        None => None,
    };
    let admin = connect(&a.store).await?;
    let keys = match user {
        Some(u) => vec![admin.session_key(u.tag(), &a.id)],
        None => admin.find_session(&a.id, 1000).await.map_err(|e| e.to_string())?,
    };
    let mut found = Vec::new();
    for key in &keys {
        if let Some(i) = admin.inspect(key).await.map_err(|e| e.to_string())? {
            found.push(i);
        }
    }
    let now = now_ms();
    if a.store.json {
        let items: Vec<Value> = found.iter().map(|i| inspection_json(&a.id, i, now)).collect();
        format::json(&Value::Array(items));
    } else if found.is_empty() {
        let place = match user {
            Some(u) => format!("of user {}", user_ref(u)),
            None => format!("under the prefix {:?} on any master", a.store.prefix),
        };
        out(&format!("no key of session {} {place}", a.id));
    } else {
        let text: Vec<String> = found.iter().map(|i| inspection_text(&a.id, i, now)).collect();
        out(&text.join("\n\n"));
    }
    Ok(if found.is_empty() { Outcome::Negative } else { Outcome::Done })
}

fn inspection_json(id: &str, i: &Inspection, now: u64) -> Value {
    let mut v = json!({
        "id": id,
        "key": i.key,
        "ttl_ms": i.ttl_ms,
        "stored_bytes": i.stored_bytes,
    });
    match &i.content {
        Content::Session(s) => {
            v["kind"] = json!("session");
            v["version"] = json!(s.version);
            v["created_ms"] = json!(s.created_ms);
            v["absolute_ms"] = json!(s.absolute_ms);
            v["idle_expires_ms"] = json!(i.ttl_ms.map(|t| now.saturating_add(t)));
            v["principal"] = match s.principal {
                Some(p) => json!({
                    "user_ref": user_ref(p),
                    "name": s.principal_name,
                }),
                None => Value::Null,
            };
            v["auth_ms"] = json!(s.auth_ms);
            v["rotated_ms"] = json!((s.rotated_ms > 0).then_some(s.rotated_ms));
            v["encrypted"] = json!(s.encrypted);
            v["attributes"] = s
                .attributes
                .iter()
                .map(|(name, bytes)| json!({ "name": name, "bytes": bytes }))
                .collect();
        }
        Content::Pointer(p) => {
            v["kind"] = json!("pointer");
            v["pointer_kind"] = json!(p.kind.as_str());
            v["successor"] = json!(p.successor_id);
            v["successor_tag"] = json!(p.successor_tag.to_hex());
            v["until_ms"] = json!(p.until_ms);
        }
        Content::Unreadable(why) => {
            v["kind"] = json!("unreadable");
            v["error"] = json!(why);
        }
        _ => v["kind"] = json!("unknown"),
    }
    v
}

fn inspection_text(id: &str, i: &Inspection, now: u64) -> String {
    let mut rows: Vec<(&str, String)> = vec![("session", id.to_string()), ("key", i.key.clone())];
    let ttl = match i.ttl_ms {
        Some(t) => format!(
            "{} ({}, PTTL {} ms)",
            format::short(now.saturating_add(t)),
            format::relative(now.saturating_add(t), now),
            t
        ),
        None => "none (the key has no TTL)".into(),
    };
    let mut attributes = Vec::new();
    match &i.content {
        Content::Session(s) => {
            rows.push(("kind", "live session record".into()));
            rows.push((
                "created",
                format!(
                    "{} ({})",
                    format::short(s.created_ms),
                    format::relative(s.created_ms, now)
                ),
            ));
            rows.push((
                "absolute deadline",
                format!(
                    "{} ({})",
                    format::short(s.absolute_ms),
                    format::relative(s.absolute_ms, now)
                ),
            ));
            rows.push(("expires if idle", ttl));
            rows.push((
                "principal",
                match (s.principal, &s.principal_name) {
                    (None, _) => "none (anonymous)".into(),
                    (Some(p), Some(name)) => format!("{name} ({})", user_ref(p)),
                    (Some(p), None) => format!("{} (name sealed)", user_ref(p)),
                },
            ));
            rows.push((
                "authenticated",
                s.auth_ms.map_or_else(
                    || "-".into(),
                    |t| format!("{} ({})", format::short(t), format::relative(t, now)),
                ),
            ));
            rows.push((
                "token rotated",
                if s.rotated_ms == 0 {
                    "never".into()
                } else {
                    format!(
                        "{} ({})",
                        format::short(s.rotated_ms),
                        format::relative(s.rotated_ms, now)
                    )
                },
            ));
            rows.push(("version", s.version.to_string()));
            rows.push(("encrypted at rest", if s.encrypted { "yes" } else { "no" }.into()));
            rows.push(("stored bytes", i.stored_bytes.to_string()));
            let total: usize = s.attributes.iter().map(|(_, n)| *n).fold(0, usize::saturating_add);
            rows.push((
                "attributes",
                format!("{} ({} bytes of values)", s.attributes.len(), format::count(total as u64)),
            ));
            attributes = s
                .attributes
                .iter()
                .map(|(name, bytes)| vec![format!("  {name}"), format!("{bytes} bytes")])
                .collect();
        }
        Content::Pointer(p) => {
            rows.push(("kind", format!("pointer left by a rotation: {}", p.kind.as_str())));
            rows.push(("successor", p.successor_id.clone()));
            let until =
                format!("{} ({})", format::short(p.until_ms), format::relative(p.until_ms, now));
            match p.kind {
                PointerKindName::Renewed => rows.push(("grace window ends", until)),
                PointerKindName::Moving => rows.push(("claim lapses", until)),
                _ => {}
            }
            rows.push(("key expires", ttl));
        }
        Content::Unreadable(why) => {
            rows.push(("kind", format!("unreadable: {why}")));
            rows.push(("key expires", ttl));
        }
        _ => rows.push(("kind", "unknown".into())),
    }
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut text: Vec<String> =
        rows.into_iter().map(|(k, v)| format!("{k:<width$}  {v}")).collect();
    if !attributes.is_empty() {
        text.push(format::table(&["  NAME", "SIZE"], &attributes));
    }
    text.join("\n")
}

async fn revoke(a: RevokeArgs) -> Result<Outcome, String> {
    if let Some(id) = a.id.as_deref().or(a.except.as_deref()) {
        check_id(id)?;
    }
    let user = naming()?.user(&a.user);
    let admin = connect(&a.store).await?;
    let now = now_ms();
    match &a.id {
        Some(id) => {
            let done = admin.store().revoke(user, id, now).await.map_err(|e| e.to_string())?;
            if a.store.json {
                format::json(&json!({ "id": id, "revoked": done }));
            } else if done {
                out(&format!("revoked session {id} of user {}", a.user));
            } else {
                out(&format!("user {} has no live session {id}: nothing revoked", a.user));
            }
            Ok(if done { Outcome::Done } else { Outcome::Negative })
        }
        None => {
            let n = admin
                .store()
                .revoke_all(user, a.except.as_deref(), now)
                .await
                .map_err(|e| e.to_string())?;
            if a.store.json {
                format::json(&json!({ "revoked": n, "kept": a.except }));
            } else {
                let kept = a.except.as_ref().map(|k| format!(" (kept {k})")).unwrap_or_default();
                out(&format!(
                    "revoked {n} session{} of user {}{kept}",
                    if n == 1 { "" } else { "s" },
                    a.user
                ));
            }
            Ok(Outcome::Done)
        }
    }
}
