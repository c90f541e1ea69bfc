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

    /// `<prefix>:{<tag>}:<kind>:<id>`, built in one allocation: a name is made for every
    /// store call.
    fn name(&self, tag: Tag, kind: char, push_id: impl FnOnce(&mut String)) -> String {
        // ":{" + 8 hex + "}:" + kind + ":" + a 22-character id.
        let mut k = String::with_capacity(self.prefix.len() + 37);
        k.push_str(&self.prefix);
        k.push_str(":{");
        tag.push_hex(&mut k);
        k.push_str("}:");
        k.push(kind);
        k.push(':');
        push_id(&mut k);
        k
    }

    /// A session's key (its record, or the pointer left when its token was superseded).
    pub(crate) fn session(&self, key: &SessionKey) -> String {
        self.name(key.tag(), 's', |k| key.push_id(k))
    }

    /// The session key of `id` under `tag`.
    pub(crate) fn session_id(&self, tag: Tag, id: &str) -> String {
        self.name(tag, 's', |k| k.push_str(id))
    }

    /// A principal's index.
    pub(crate) fn index(&self, user: UserRef) -> String {
        self.name(user.tag(), 'u', |k| user.push_id(k))
    }

    /// A principal's revocation epoch.
    pub(crate) fn epoch(&self, user: UserRef) -> String {
        self.name(user.tag(), 'e', |k| user.push_id(k))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use sesame::{TokenCodec, TokenSecret};

    use super::*;

    // Each name is the documented `<prefix>:{<tag>}:<kind>:<id>`, whatever the prefix's length.
    #[test]
    fn names() {
        let key =
            TokenCodec::insecure_development().generate(Tag::random().unwrap()).unwrap().key();
        let user = sesame::Naming::from_secret(&TokenSecret::insecure_development()).user("ann");
        for prefix in ["sesame", "", "a-much-longer-prefix-than-the-default:app"] {
            let keys = Keys::new(prefix.to_string());
            let tag = key.tag().to_hex();
            assert_eq!(keys.session(&key), format!("{prefix}:{{{tag}}}:s:{}", key.id()));
            assert_eq!(keys.session_id(key.tag(), "xyz"), format!("{prefix}:{{{tag}}}:s:xyz"));
            let utag = user.tag().to_hex();
            assert_eq!(keys.index(user), format!("{prefix}:{{{utag}}}:u:{}", user.id()));
            assert_eq!(keys.epoch(user), format!("{prefix}:{{{utag}}}:e:{}", user.id()));
        }
    }
}
