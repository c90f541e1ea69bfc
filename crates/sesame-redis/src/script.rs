//! The script registry and runner: every write is one Lua script, called by SHA (`EVALSHA`),
//! loaded again on `NOSCRIPT`, followed in the same pipeline by `WAIT` when durability is on,
//! and sent once more after a broken connection when the caller says that is safe.

use redis::{ErrorKind, Script, ServerErrorKind, Value};
use sesame::StoreError;

use crate::conn::Conn;
use crate::error::{is_broken_connection, map_err};

/// Helpers the scripts share, defined once (`lua/lib.lua`); each script is sent with the ones
/// it names (see [`source`]).
const LIB: &str = include_str!("lua/lib.lua");

/// The scripts, each the Lua beside the Rust that calls it.
#[derive(Debug)]
pub(crate) struct Scripts {
    pub(crate) create: Script,
    pub(crate) save: Script,
    pub(crate) rotate: Script,
    pub(crate) swap: Script,
    pub(crate) end: Script,
    pub(crate) end_many: Script,
    pub(crate) bump_epoch: Script,
}

/// The Lua of each script, as [`Scripts::all`] lists them (for `SCRIPT LOAD`).
const BODIES: [&str; 7] = [
    include_str!("ops/create.lua"),
    include_str!("ops/save.lua"),
    include_str!("ops/rotate.lua"),
    include_str!("ops/swap.lua"),
    include_str!("ops/end.lua"),
    include_str!("ops/end_many.lua"),
    include_str!("ops/bump_epoch.lua"),
];

fn with_lib(body: &str) -> Script {
    Script::new(&source(body))
}

/// A script's full source: the definitions of `lua/lib.lua` that `body` names, directly or
/// through another included definition, in the library's order, then `body`. Redis runs a
/// script's whole chunk on every call, so a helper a script never uses would cost a closure
/// per call (measured: about 1,850 instructions per `EVALSHA` of the save script for the
/// three helpers it does not use).
fn source(body: &str) -> String {
    let defs = lib_definitions();
    let mut wanted = vec![false; defs.len()];
    // Definitions only name earlier ones, so one pass from the last to the first sees every
    // user of a definition before the definition itself.
    for i in (0..defs.len()).rev() {
        let (name, _) = defs[i];
        wanted[i] = mentions(body, name)
            || defs
                .iter()
                .zip(&wanted)
                .skip(i + 1)
                .any(|(&(_, text), &w)| w && mentions(text, name));
    }
    let mut out = String::with_capacity(LIB.len() + body.len() + 1);
    for (&(_, text), _) in defs.iter().zip(&wanted).filter(|(_, &w)| w) {
        out.push_str(text);
        out.push('\n');
    }
    out.push_str(body);
    out
}

/// The definitions of `lua/lib.lua`: each paragraph (blank-line separated) that defines a
/// `local` name, as (name, text). A paragraph without a definition (the file's heading) is
/// left out.
fn lib_definitions() -> Vec<(&'static str, &'static str)> {
    LIB.split("\n\n")
        .filter_map(|text| {
            let line = text.lines().find(|l| l.starts_with("local "))?;
            let rest =
                line.strip_prefix("local function ").or_else(|| line.strip_prefix("local "))?;
            let end = rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len());
            let name = rest.get(..end).filter(|n| !n.is_empty())?;
            Some((name, text.trim_end()))
        })
        .collect()
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Whether `text` names the identifier `name` (not as part of a longer identifier).
fn mentions(text: &str, name: &str) -> bool {
    text.match_indices(name).any(|(at, _)| {
        let before = text.get(..at).and_then(|b| b.chars().next_back());
        let after = text.get(at + name.len()..).and_then(|a| a.chars().next());
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

impl Scripts {
    pub(crate) fn new() -> Scripts {
        let [create, save, rotate, swap, end, end_many, bump_epoch] = BODIES.map(with_lib);
        Scripts { create, save, rotate, swap, end, end_many, bump_epoch }
    }

    /// The source of every script, for `SCRIPT LOAD`.
    pub(crate) fn sources() -> [String; 7] {
        BODIES.map(source)
    }

    pub(crate) fn all(&self) -> [&Script; 7] {
        [
            &self.create,
            &self.save,
            &self.rotate,
            &self.swap,
            &self.end,
            &self.end_many,
            &self.bump_epoch,
        ]
    }
}

/// Wait for replicas before acknowledging a write (see
/// [`crate::RedisStoreBuilder::durability`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Durability {
    /// How many replicas must confirm each write.
    pub replicas: u32,
    /// How long to wait for them.
    pub timeout: std::time::Duration,
}

/// What a [`Call`] sends.
#[derive(Clone, Copy)]
enum Op<'a> {
    /// `EVALSHA` of this script, with the call's keys and arguments.
    Script(&'a Script),
    /// The native compare-and-set of Valkey 8.1 and later: `SET key new IFEQ expected
    /// KEEPTTL`, with the call's one key and its two arguments (expected, new).
    SetIfEqual,
}

/// One write: a script call, or the native compare-and-set, with its keys and arguments.
pub(crate) struct Call<'a> {
    op: Op<'a>,
    keys: Vec<Vec<u8>>,
    args: Vec<Vec<u8>>,
    /// Whether sending the call again after a broken connection is safe (the script
    /// recognizes its own earlier write, or its effect is the same when applied twice).
    retry_safe: bool,
}

impl<'a> Call<'a> {
    /// The call's `KEYS`.
    pub(crate) fn keys(&self) -> &[Vec<u8>] {
        &self.keys
    }

    pub(crate) fn new(script: &'a Script) -> Call<'a> {
        Call::with_op(Op::Script(script))
    }

    /// `SET key new IFEQ expected KEEPTTL`: give it one key, then the expected value and the
    /// new one as arguments. Answers `OK` when it wrote, nil when the key is missing or holds
    /// something else; a server without `IFEQ` answers a syntax error
    /// ([`crate::error::is_syntax_error`]).
    pub(crate) fn set_if_equal() -> Call<'a> {
        Call::with_op(Op::SetIfEqual)
    }

    fn with_op(op: Op<'a>) -> Call<'a> {
        Call { op, keys: Vec::with_capacity(4), args: Vec::with_capacity(10), retry_safe: false }
    }

    pub(crate) fn key(&mut self, k: impl redis::ToRedisArgs) -> &mut Self {
        k.write_redis_args(&mut self.keys);
        self
    }

    pub(crate) fn arg(&mut self, a: impl redis::ToRedisArgs) -> &mut Self {
        a.write_redis_args(&mut self.args);
        self
    }

    /// The call's first key (empty when it has none).
    pub(crate) fn session_key(&self) -> &[u8] {
        self.keys.first().map_or(&[][..], Vec::as_slice)
    }

    /// Whether this is the native compare-and-set rather than a script.
    pub(crate) fn is_native(&self) -> bool {
        matches!(self.op, Op::SetIfEqual)
    }

    pub(crate) fn retry_safe(&mut self, safe: bool) -> &mut Self {
        self.retry_safe = safe;
        self
    }

    fn cmd(&self) -> redis::Cmd {
        // Sized once: the name, the hash, the key count (at most 20 digits), keys and args.
        let all = self.keys.iter().chain(&self.args);
        let data = all.clone().map(Vec::len).sum::<usize>() + 7 + 40 + 20;
        let mut c = redis::Cmd::with_capacity(3 + all.count(), data);
        let script = match self.op {
            Op::Script(script) => script,
            Op::SetIfEqual => {
                let key = self.keys.first().map_or(&[][..], Vec::as_slice);
                let arg = |i: usize| self.args.get(i).map_or(&[][..], Vec::as_slice);
                c.arg("SET").arg(key).arg(arg(1)).arg("IFEQ").arg(arg(0)).arg("KEEPTTL");
                return c;
            }
        };
        c.arg("EVALSHA").arg(script.get_hash()).arg(self.keys.len());
        for k in &self.keys {
            c.arg(k.as_slice());
        }
        for a in &self.args {
            c.arg(a.as_slice());
        }
        c
    }
}

/// Runs a write script. With durability, `WAIT` travels in the same pipeline on the same
/// connection right behind it, so it covers exactly this write; that connection is a
/// dedicated one where the topology has them (see `pool`), so the `WAIT` holds up no other
/// request.
pub(crate) async fn run(
    conn: &Conn,
    durability: Option<Durability>,
    call: &Call<'_>,
) -> Result<Value, StoreError> {
    let cmd = call.cmd();
    let mut conn = conn.clone();
    let mut reloaded = false;
    let mut resent = false;
    let mut redirected = false;
    loop {
        let result = match durability {
            Some(d) => Box::pin(waited(&mut conn, &cmd, d)).await?,
            None => cmd.query_async::<Value>(&mut conn).await,
        };
        match result {
            Err(e) if !reloaded && e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                // A restarted or promoted server has an empty script cache. On a cluster this
                // loads the script on every node.
                reloaded = true;
                if let Op::Script(script) = call.op {
                    Box::pin(script.load_async(&mut conn)).await.map_err(map_err)?;
                }
            }
            Err(e) if !resent && call.retry_safe && is_broken_connection(&e) => {
                // The connection was found broken (a restarted server): the client reconnects,
                // and this call is one that may safely be sent again.
                resent = true;
                tracing::debug!(error = %e, "resending a write after a broken connection");
            }
            Err(e) if !redirected && e.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly) => {
                // A dedicated connection reached a demoted master: nothing was written, and
                // the master was forgotten; send the write once more to the new one.
                redirected = true;
            }
            other => return other.map_err(write_error),
        }
    }
}

/// Maps the error of a write: one whose reply did not come in time may have been applied, and
/// its error says the outcome is unknown.
fn write_error(e: redis::RedisError) -> StoreError {
    if e.is_timeout() {
        return StoreError::Unavailable {
            message: format!(
                "{}: no reply to a write in time ({e}); it may or may not have been applied",
                StoreError::OUTCOME_UNKNOWN
            ),
            source: Some(Box::new(e)),
        };
    }
    map_err(e)
}

/// One write followed by `WAIT`, on a dedicated connection when there is one. The outer error
/// is final; the inner one is the client's, for the caller's retries.
async fn waited(
    conn: &mut Conn,
    cmd: &redis::Cmd,
    d: Durability,
) -> Result<redis::RedisResult<Value>, StoreError> {
    let mut p = redis::pipe();
    p.add_command(cmd.clone())
        .cmd("WAIT")
        .arg(d.replicas)
        .arg(u64::try_from(d.timeout.as_millis()).unwrap_or(u64::MAX).max(1));
    let replied = match conn.lease(d.timeout).await {
        Some(Ok(mut lease)) => {
            let r = p.query_async::<(Value, i64)>(lease.conn()).await;
            lease.done(&r);
            r
        }
        Some(Err(e)) => return Err(map_err(e)),
        None => p.query_async::<(Value, i64)>(conn).await,
    };
    match replied {
        Ok((v, acked)) if acked >= i64::from(d.replicas) => Ok(Ok(v)),
        Ok((_, acked)) => Err(StoreError::Unavailable {
            message: format!(
                "{}: write not confirmed by {} replica(s) within {} ms ({acked} confirmed); it was applied on the master and may or may not survive a failover",
                StoreError::OUTCOME_UNKNOWN,
                d.replicas,
                d.timeout.as_millis()
            ),
            source: None,
        }),
        Err(e) => Ok(Err(e)),
    }
}

/// Sends a one-command read, once more after a broken connection. (Cheaper than a pipeline
/// of one: no command list, and no reply array to unwrap.)
pub(crate) async fn read_one<T: redis::FromRedisValue>(
    conn: &Conn,
    cmd: &redis::Cmd,
) -> Result<T, StoreError> {
    let mut conn = conn.clone();
    match cmd.query_async::<T>(&mut conn).await {
        Err(e) if is_broken_connection(&e) => {
            tracing::debug!(error = %e, "resending a read after a broken connection");
            cmd.query_async::<T>(&mut conn).await.map_err(map_err)
        }
        other => other.map_err(map_err),
    }
}

/// Sends a read (a pipeline), once more after a broken connection.
pub(crate) async fn read<T: redis::FromRedisValue>(
    conn: &Conn,
    pipe: &redis::Pipeline,
) -> Result<T, StoreError> {
    let mut conn = conn.clone();
    match pipe.query_async::<T>(&mut conn).await {
        Err(e) if is_broken_connection(&e) => {
            tracing::debug!(error = %e, "resending a read after a broken connection");
            pipe.query_async::<T>(&mut conn).await.map_err(map_err)
        }
        other => other.map_err(map_err),
    }
}

/// Loads every script into the server's script cache, so the first calls need no `NOSCRIPT`
/// retry. (After a server restart, calls reload scripts by themselves.)
pub(crate) async fn load_all(conn: &Conn, scripts: &Scripts) -> Result<(), StoreError> {
    let mut conn = conn.clone();
    for script in scripts.all() {
        script.load_async(&mut conn).await.map_err(map_err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The library's names that `source` defines.
    fn defined(source: &str) -> Vec<&str> {
        lib_definitions()
            .into_iter()
            .map(|(name, _)| name)
            .filter(|name| {
                source.lines().any(|l| {
                    l.starts_with(&format!("local {name} ="))
                        || l.starts_with(&format!("local function {name}("))
                })
            })
            .collect()
    }

    #[test]
    fn the_library_defines_its_helpers_once_each() {
        let names: Vec<&str> = lib_definitions().into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            ["INDEX_MARGIN_MS", "POINTER_MARK", "fit_index", "is_record", "epoch_is"]
        );
    }

    // Each script gets the helpers it names and what they name in turn, and nothing else.
    #[test]
    fn a_script_gets_only_the_helpers_it_names() {
        let save = source(include_str!("ops/save.lua"));
        assert_eq!(defined(&save), ["INDEX_MARGIN_MS"]);
        assert!(save.ends_with(include_str!("ops/save.lua")));
        // fit_index names INDEX_MARGIN_MS, which comes first.
        let uses_fit = source("fit_index(KEYS[1])");
        assert_eq!(defined(&uses_fit), ["INDEX_MARGIN_MS", "fit_index"]);
        assert!(uses_fit.find("local INDEX_MARGIN_MS") < uses_fit.find("local function fit_index"));
        // A longer identifier is not a use.
        assert!(defined(&source("local is_records = 1\nreturn 'x'")).is_empty());
        assert_eq!(
            defined(&source("if is_record(v) then return 1 end")),
            ["POINTER_MARK", "is_record"]
        );
        for body in BODIES {
            let full = source(body);
            for (name, _) in lib_definitions() {
                if mentions(body, name) {
                    assert!(defined(&full).contains(&name), "{name} missing from:\n{full}");
                }
            }
        }
    }
}
