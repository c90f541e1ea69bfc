//! The alternative layout: one Redis hash per session, the way Spring Session stores them.
//!
//! Fields: `_v` version, `_c` created ms, `_a` absolute deadline ms, `_p` principal, `_t`
//! authentication ms (the last two only when logged in), then one field per attribute whose
//! value is the same encoded attribute bytes (JSON values) the compact layout stores. The
//! key's TTL is the idle timeout (capped by the absolute deadline). Keys are the compact
//! layout's keys, so every layout pays the same for key names.
//!
//! Attribute names are stored bare (no prefix), which favours this layout slightly; a real
//! implementation would have to keep attribute names away from the `_x` fields.

use std::sync::Arc;

use redis::aio::ConnectionManager;
use redis::Script;
use sesame::{Delta, Policy, Record, SessionKey};

use crate::{BenchError, BenchResult};

/// The load script: `HGETALL` + `PTTL` + the same coalesced touch as the compact load.
pub const LOAD_LUA: &str = include_str!("lua/hash_load.lua");
/// The save script: `HSET` / `HDEL` of the delta, `HINCRBY _v 1`, `PEXPIRE`.
pub const SAVE_LUA: &str = include_str!("lua/hash_save.lua");

/// Sessions as Redis hashes, on one multiplexed, self-reconnecting connection.
#[derive(Clone)]
pub struct HashStore {
    conn: ConnectionManager,
    prefix: String,
    load: Arc<Script>,
    save: Arc<Script>,
}

impl std::fmt::Debug for HashStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashStore").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl HashStore {
    /// Connects to `url` and loads both scripts into the server's cache.
    pub async fn connect(url: &str) -> BenchResult<HashStore> {
        let client = redis::Client::open(url)?;
        let mut conn = ConnectionManager::new(client).await?;
        let load = Script::new(LOAD_LUA);
        let save = Script::new(SAVE_LUA);
        load.load_async(&mut conn).await?;
        save.load_async(&mut conn).await?;
        Ok(HashStore { conn, prefix: "sesame".into(), load: Arc::new(load), save: Arc::new(save) })
    }

    /// The Redis key of a session (the same as the compact layout's).
    pub fn session_key(&self, key: &SessionKey) -> String {
        format!("{}:{{{}}}:s:{}", self.prefix, key.tag().to_hex(), key.id())
    }

    /// Writes a new session (one `HSET` + `PEXPIRE` in a transaction).
    pub async fn create(
        &self,
        key: &SessionKey,
        record: &Record,
        now_ms: u64,
        policy: &Policy,
    ) -> BenchResult<()> {
        let ttl = policy.idle_ms.min(record.absolute_ms.saturating_sub(now_ms));
        if ttl == 0 {
            return Err(BenchError::new("the session is already expired"));
        }
        let redis_key = self.session_key(key);
        let mut hset = redis::cmd("HSET");
        hset.arg(&redis_key)
            .arg("_v")
            .arg(record.version)
            .arg("_c")
            .arg(record.created_ms)
            .arg("_a")
            .arg(record.absolute_ms);
        if let Some(p) = &record.principal {
            hset.arg("_p").arg(p.name());
        }
        if let Some(t) = record.auth_ms {
            hset.arg("_t").arg(t);
        }
        for (name, value) in &record.attrs {
            hset.arg(name).arg(value.as_slice());
        }
        let mut pipe = redis::pipe();
        pipe.atomic().add_command(hset).ignore().cmd("PEXPIRE").arg(&redis_key).arg(ttl).ignore();
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    /// Loads a session, touching it like the compact layout does. `None` when absent.
    pub async fn load(
        &self,
        key: &SessionKey,
        now_ms: u64,
        policy: &Policy,
    ) -> BenchResult<Option<Record>> {
        let mut inv = self.load.key(self.session_key(key));
        inv.arg(policy.idle_ms).arg(policy.touch_after_ms).arg(now_ms);
        let mut conn = self.conn.clone();
        let reply: Option<(Vec<Vec<u8>>, i64)> = inv.invoke_async(&mut conn).await?;
        match reply {
            None => Ok(None),
            Some((fields, _pttl)) => {
                let record = decode(&fields)?;
                Ok((record.absolute_ms > now_ms).then_some(record))
            }
        }
    }

    /// Applies a delta; the new version, or `None` when the session is missing.
    pub async fn save(
        &self,
        key: &SessionKey,
        delta: &Delta,
        now_ms: u64,
        policy: &Policy,
    ) -> BenchResult<Option<u64>> {
        let mut inv = self.save.key(self.session_key(key));
        inv.arg(now_ms).arg(policy.idle_ms).arg(delta.set.len());
        for (name, value) in &delta.set {
            inv.arg(name).arg(value.as_slice());
        }
        for name in &delta.remove {
            inv.arg(name);
        }
        let mut conn = self.conn.clone();
        let version: u64 = inv.invoke_async(&mut conn).await?;
        Ok((version > 0).then_some(version))
    }
}

/// Rebuilds a record from the flat `HGETALL` reply.
pub fn decode(fields: &[Vec<u8>]) -> BenchResult<Record> {
    fn text(v: &[u8]) -> BenchResult<String> {
        String::from_utf8(v.to_vec()).map_err(|_| BenchError::new("field is not UTF-8"))
    }
    fn number(v: &[u8]) -> BenchResult<u64> {
        text(v)?.parse().map_err(|_| BenchError::new("field is not a number"))
    }
    if fields.len() % 2 != 0 {
        return Err(BenchError::new("HGETALL reply has an odd length"));
    }
    let mut r = Record::default();
    let (mut has_version, mut has_absolute) = (false, false);
    for pair in fields.chunks(2) {
        let [name, value] = pair else { continue };
        match name.as_slice() {
            b"_v" => (r.version, has_version) = (number(value)?, true),
            b"_c" => r.created_ms = number(value)?,
            b"_a" => (r.absolute_ms, has_absolute) = (number(value)?, true),
            b"_p" => r.principal = Some(crate::content::named(&text(value)?)),
            b"_t" => r.auth_ms = Some(number(value)?),
            _ => {
                r.attrs.insert(text(name)?, value.clone());
            }
        }
    }
    if !(has_version && has_absolute) {
        return Err(BenchError::new("session hash lacks _v or _a"));
    }
    Ok(r)
}
