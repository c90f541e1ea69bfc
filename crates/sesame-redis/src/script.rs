//! The script registry and runner: every write is one Lua script, called by SHA (`EVALSHA`),
//! loaded again on `NOSCRIPT`, followed in the same pipeline by `WAIT` when durability is on,
//! and sent once more after a broken connection when the caller says that is safe.

use redis::{ErrorKind, Script, ServerErrorKind, Value};
use sesame::StoreError;

use crate::conn::Conn;
use crate::error::{is_broken_connection, map_err};

/// Helpers every script may use, defined once (`lua/lib.lua`), prepended to each script.
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

fn source(body: &str) -> String {
    format!("{LIB}\n{body}")
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

/// One script call: its keys and arguments.
pub(crate) struct Call<'a> {
    script: &'a Script,
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
        Call {
            script,
            keys: Vec::with_capacity(4),
            args: Vec::with_capacity(10),
            retry_safe: false,
        }
    }

    pub(crate) fn key(&mut self, k: impl redis::ToRedisArgs) -> &mut Self {
        k.write_redis_args(&mut self.keys);
        self
    }

    pub(crate) fn arg(&mut self, a: impl redis::ToRedisArgs) -> &mut Self {
        a.write_redis_args(&mut self.args);
        self
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
        c.arg("EVALSHA").arg(self.script.get_hash()).arg(self.keys.len());
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
                Box::pin(call.script.load_async(&mut conn)).await.map_err(map_err)?;
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

/// Sends a read (a command or a pipeline), once more after a broken connection.
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
