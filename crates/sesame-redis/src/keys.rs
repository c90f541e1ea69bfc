//! Every Redis key name sesame writes, in one place.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `<prefix>:{<tag>}:s:<id>` | string | a session record, or the pointer a rotation left for a superseded token |
//! | `<prefix>:{<tag>}:u:<user>` | sorted set | the principal's sessions: member `<id>:<created>:<auth>`, score = idle deadline (ms) |
//! | `<prefix>:{<tag>}:e:<user>` | string | the principal's revocation epoch |
//!
//! `<user>` and a logged-in session's `<tag>` come from the principal's keyed reference
//! (`sesame::UserRef`): no key name shows who the user is. A logged-in session's tag is its
//! principal's, so a user's sessions, index and epoch share one Redis Cluster slot.

use sesame::{SessionKey, Tag, UserRef};

/// Builds key names under one prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: String) -> Keys {
        Keys { prefix }
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    fn base(&self, tag: Tag, kind: char) -> String {
        format!("{}:{{{}}}:{kind}:", self.prefix, tag.to_hex())
    }

    /// A session's key (its record, or the pointer left when its token was superseded).
    pub(crate) fn session(&self, key: &SessionKey) -> String {
        let mut k = self.base(key.tag(), 's');
        k.push_str(&key.id());
        k
    }

    /// The session key of `id` under `tag`.
    pub(crate) fn session_id(&self, tag: Tag, id: &str) -> String {
        let mut k = self.base(tag, 's');
        k.push_str(id);
        k
    }

    /// A principal's index.
    pub(crate) fn index(&self, user: UserRef) -> String {
        let mut k = self.base(user.tag(), 'u');
        k.push_str(&user.id());
        k
    }

    /// A principal's revocation epoch.
    pub(crate) fn epoch(&self, user: UserRef) -> String {
        let mut k = self.base(user.tag(), 'e');
        k.push_str(&user.id());
        k
    }
}
