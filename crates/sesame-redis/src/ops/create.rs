//! Creating a session (`create.lua`): create-if-absent; for a logged-in session the login's
//! epoch, the cap (evicting the least recently active session, declared in `KEYS`) and the
//! index.

use sesame::store::{parse_index_member, write_ttl};
use sesame::{CapPolicy, CreateOutcome, Login, Policy, Record, SessionKey, StoreError};

use crate::error::{backend, unexpected};
use crate::ops::lineage::code;
use crate::record;
use crate::script::Call;
use crate::store::RedisStore;

/// Most rounds of one create at the cap under concurrent logins of the same user.
const MAX_ATTEMPTS: usize = 128;

/// The create script's answers.
enum Reply {
    Created,
    Taken,
    Refused,
    Evict(String),
    Revoked,
    Lapsed,
}

/// What `create` may additionally be told.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Options {
    /// Refuse after this time (ms since the epoch, by Redis's clock).
    pub(crate) deadline_ms: Option<u64>,
}

/// Why a create did not happen, beyond [`CreateOutcome`].
pub(crate) enum Created {
    Outcome(CreateOutcome),
    /// The deadline passed.
    Lapsed,
}

pub(crate) async fn create(
    store: &RedisStore,
    key: &SessionKey,
    record: &Record,
    login: Option<&Login>,
    now: u64,
    policy: &Policy,
    options: Options,
) -> Result<Created, StoreError> {
    let ttl = write_ttl(policy, record.absolute_ms, now);
    if ttl == 0 {
        return Err(backend("refusing to create a session that is already expired"));
    }
    let encoded = record::encode(record, Some(now.saturating_add(ttl)));
    let member = record.index_member(&key.id());
    // The least recently active live member, read first: at the cap the script evicts it, and
    // on Redis Cluster every key a script touches must be declared. Below the cap it is unused.
    let mut evict: Option<String> = match &record.principal {
        Some(p) => {
            let mut pipe = redis::pipe();
            pipe.cmd("ZRANGE")
                .arg(store.keys.index(p.user()))
                .arg(format!("({now}"))
                .arg("+inf")
                .arg("BYSCORE")
                .arg("LIMIT")
                .arg(0)
                .arg(1);
            let (oldest,): (Vec<Vec<u8>>,) = crate::script::read(&store.conn, &pipe).await?;
            oldest.into_iter().next().and_then(|m| String::from_utf8(m).ok())
        }
        None => None,
    };
    // Each round either succeeds or learns the member to evict, which changes only when a
    // concurrent login of the same user landed first: N concurrent logins need at most N.
    for _ in 0..MAX_ATTEMPTS {
        let mut call = Call::new(&store.scripts.create);
        call.key(store.keys.session(key)).retry_safe(true);
        if let Some(p) = &record.principal {
            call.key(store.keys.index(p.user())).key(store.keys.epoch(p.user()));
            if let Some((id, _, _)) = evict.as_deref().and_then(parse_index_member) {
                call.key(store.keys.session_id(p.user().tag(), id));
            }
        }
        call.arg(encoded.as_slice())
            .arg(ttl)
            .arg(now)
            .arg(member.as_str())
            .arg(now.saturating_add(ttl))
            .arg(policy.max_sessions_per_user)
            .arg(if policy.cap_policy == CapPolicy::Refuse { "1" } else { "0" })
            .arg(login.map(|l| l.epoch.to_string()).unwrap_or_default())
            .arg(evict.as_deref().unwrap_or(""))
            .arg(options.deadline_ms.map(|d| d.to_string()).unwrap_or_default());
        let v = store.run(&call).await?;
        let reply = match code(&v, "create")? {
            (1, _) => Reply::Created,
            (0, _) => Reply::Taken,
            (-1, _) => Reply::Refused,
            (-2, rest) => match rest.first() {
                Some(redis::Value::BulkString(m)) => {
                    Reply::Evict(String::from_utf8_lossy(m).into_owned())
                }
                _ => return Err(unexpected("create", &v)),
            },
            (-3, _) => Reply::Revoked,
            (-4, _) => Reply::Lapsed,
            _ => return Err(unexpected("create", &v)),
        };
        return Ok(match reply {
            Reply::Created => Created::Outcome(CreateOutcome::Created),
            Reply::Taken => Created::Outcome(CreateOutcome::Exists),
            Reply::Revoked => Created::Outcome(CreateOutcome::Revoked),
            Reply::Lapsed => Created::Lapsed,
            Reply::Refused => {
                return Err(StoreError::LimitExceeded(format!(
                    "the user already has the maximum of {} sessions",
                    policy.max_sessions_per_user
                )))
            }
            Reply::Evict(m) => {
                if parse_index_member(&m).is_none() {
                    return Err(StoreError::Corrupt(
                        "the user's index holds a malformed member".into(),
                    ));
                }
                evict = Some(m);
                continue;
            }
        });
    }
    Err(StoreError::Unavailable {
        message: "the user's sessions kept changing while a login made room for itself; try again"
            .into(),
        source: None,
    })
}
