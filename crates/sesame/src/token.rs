//! Session tokens, the secrets that check them, the hash tag they carry, the storage key
//! derived from them, and the keyed names of principals.
//!
//! A token is what the client holds. It is 68 base64url characters encoding 51 bytes:
//!
//! | bytes | content |
//! |---|---|
//! | 0 | the key id of the secret that made the check value |
//! | 1..5 | the hash tag: the slot group of the session (random for anonymous sessions, a keyed digest of the principal after login) |
//! | 5..37 | 256 random bits from the operating system's CSPRNG |
//! | 37..51 | check value: HMAC-SHA-256 over bytes 0..37 keyed by the secret, truncated to 112 bits |
//!
//! A secret is required: [`TokenCodec::new`] takes one or more [`TokenSecret`]s, the first for
//! new tokens and every one for checking, so a secret can be replaced without logging anyone
//! out (the key id finds the secret in one step). A forged token fails its check value before
//! any store call.
//!
//! The store never sees a token: it sees a [`SessionKey`], the tag plus the first 128 bits of
//! SHA-256 over the token's first 37 bytes. Whoever reads the store (a dump, `MONITOR`, `SCAN`)
//! cannot turn a key back into a usable token.
//!
//! Nor does a token or a key name show who the user is: a principal is known to stores by a
//! [`UserRef`], a digest of its name keyed by the [`Naming`] secret, and a logged-in token's tag
//! is part of that digest.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use crate::error::Error;

/// Number of characters of an encoded token.
pub const TOKEN_LEN: usize = 68;
const RAW_LEN: usize = 51;
const TAG_LEN: usize = 4;
const TAG_AT: usize = 1;
const BODY_LEN: usize = 37;
const MAC_LEN: usize = 14;
/// The public secret of [`TokenSecret::insecure_development`]: anyone can forge tokens under it.
const DEVELOPMENT_SECRET: &[u8] =
    b"sesame development secret: public, forgeable, never for production";

type HmacSha256 = Hmac<Sha256>;

/// The hash tag of a session: every key of one user lives under the same tag, hence in one
/// Redis Cluster slot, so that multi-key operations on a user's sessions stay atomic.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag([u8; TAG_LEN]);

impl Tag {
    /// A random tag, for an anonymous session.
    pub fn random() -> Result<Tag, Error> {
        let mut b = [0u8; TAG_LEN];
        getrandom::fill(&mut b).map_err(|e| Error::Random(e.to_string()))?;
        Ok(Tag(b))
    }

    /// The tag as 8 lowercase hex characters, as used inside `{...}` in keys.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// Appends [`Tag::to_hex`]'s text to `out` (no allocation of its own).
    pub fn push_hex(&self, out: &mut String) {
        push_hex(out, &self.0);
    }

    /// Parses what [`Tag::to_hex`] writes (8 hex characters, either case).
    pub fn from_hex(text: &str) -> Option<Tag> {
        let b = text.as_bytes();
        if b.len() != TAG_LEN * 2 {
            return None;
        }
        let mut out = [0u8; TAG_LEN];
        for (i, o) in out.iter_mut().enumerate() {
            let pair = std::str::from_utf8(b.get(i * 2..i * 2 + 2)?).ok()?;
            *o = u8::from_str_radix(pair, 16).ok()?;
        }
        Some(Tag(out))
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tag({})", self.to_hex())
    }
}

/// A secret that keys token check values (and, unless a separate naming secret is given,
/// the names of principals). Share it between every instance that serves the same sessions.
/// Its key id is derived from it: the first byte of a SHA-256 over it.
#[derive(Clone)]
pub struct TokenSecret {
    bytes: Vec<u8>,
    id: u8,
    /// The HMAC with this secret's key already absorbed (its inner and outer pads hashed
    /// once), cloned for each check value: half the hashing of keying it every time.
    keyed: Option<HmacSha256>,
}

impl TokenSecret {
    /// Wraps secret bytes. At least 32 bytes are required; use random bytes (for example
    /// `openssl rand -base64 48`), not a password.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<TokenSecret, Error> {
        let bytes = bytes.into();
        if bytes.len() < 32 {
            return Err(Error::Config(format!(
                "a token secret must be at least 32 bytes long, got {}",
                bytes.len()
            )));
        }
        Ok(TokenSecret::wrap(bytes))
    }

    /// The public development secret: tokens made under it can be forged by anyone who reads
    /// this source. Only for local development and tests.
    pub fn insecure_development() -> TokenSecret {
        TokenSecret::wrap(DEVELOPMENT_SECRET.to_vec())
    }

    fn wrap(bytes: Vec<u8>) -> TokenSecret {
        let mut h = Sha256::new();
        h.update(b"sesame key id\0");
        h.update(&bytes);
        let id = h.finalize()[0];
        let keyed = HmacSha256::new_from_slice(&bytes).ok();
        TokenSecret { bytes, id, keyed }
    }

    /// This secret's key id, as written in the first byte of the tokens it makes.
    pub fn key_id(&self) -> u8 {
        self.id
    }

    /// Whether this is the public development secret.
    pub fn is_insecure_development(&self) -> bool {
        self.bytes == DEVELOPMENT_SECRET
    }

    fn mac(&self, body: &[u8]) -> Result<[u8; MAC_LEN], Error> {
        let mut m = self
            .keyed
            .clone()
            .ok_or_else(|| Error::Config("token secret: HMAC refused the key".into()))?;
        m.update(body);
        let full = m.finalize().into_bytes();
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&full[..MAC_LEN]);
        Ok(out)
    }

    /// A key for another purpose, derived from this secret (HMAC over a label).
    fn derive(&self, label: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        if let Ok(mut m) = HmacSha256::new_from_slice(&self.bytes) {
            m.update(label);
            out.copy_from_slice(&m.finalize().into_bytes());
        }
        out
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenSecret(id={}, ..)", self.id)
    }
}

/// Makes tokens under its first secret and checks them under any of its secrets.
#[derive(Clone, Debug)]
pub struct TokenCodec {
    secrets: Vec<TokenSecret>,
}

impl TokenCodec {
    /// A codec whose first secret makes new tokens and whose every secret checks tokens (the
    /// others are earlier secrets being retired). At least one secret is required.
    pub fn new(secrets: Vec<TokenSecret>) -> Result<TokenCodec, Error> {
        if secrets.is_empty() {
            return Err(Error::Config("at least one token secret is required".into()));
        }
        Ok(TokenCodec { secrets })
    }

    /// A codec under the public development secret only ([`TokenSecret::insecure_development`]).
    pub fn insecure_development() -> TokenCodec {
        TokenCodec { secrets: vec![TokenSecret::insecure_development()] }
    }

    /// The secret that makes new tokens.
    pub fn current(&self) -> &TokenSecret {
        // `new` refuses an empty list; the development secret stands in otherwise.
        self.secrets.first().unwrap_or(&DEV_FALLBACK)
    }

    /// Every secret, the current one first.
    pub fn secrets(&self) -> &[TokenSecret] {
        &self.secrets
    }

    /// Makes a fresh token under `tag`.
    pub fn generate(&self, tag: Tag) -> Result<SessionToken, Error> {
        let secret = self.current();
        let mut raw = [0u8; RAW_LEN];
        raw[0] = secret.id;
        raw[TAG_AT..TAG_AT + TAG_LEN].copy_from_slice(&tag.0);
        getrandom::fill(&mut raw[TAG_AT + TAG_LEN..BODY_LEN])
            .map_err(|e| Error::Random(e.to_string()))?;
        let mac = secret.mac(&raw[..BODY_LEN])?;
        raw[BODY_LEN..].copy_from_slice(&mac);
        Ok(SessionToken { raw })
    }

    /// Parses a token as received from a client. Anything but exactly 68 base64url characters
    /// whose check value verifies (in constant time, over the whole value) under the secret
    /// its key id names is rejected, before any store call.
    pub fn parse(&self, text: &str) -> Result<SessionToken, InvalidToken> {
        if text.len() != TOKEN_LEN {
            return Err(InvalidToken::Length(text.len()));
        }
        let mut raw = [0u8; RAW_LEN];
        match URL_SAFE_NO_PAD.decode_slice(text.as_bytes(), &mut raw) {
            Ok(RAW_LEN) => {}
            _ => return Err(InvalidToken::Alphabet),
        }
        self.check(raw).ok_or(InvalidToken::Check)
    }

    /// Whether `text` has a token's form: 68 base64url characters naming the key id of one of
    /// the secrets. It does not verify the check value ([`TokenCodec::parse`] does), so it is
    /// cheap, and only fit for choosing among values a request presented.
    pub fn is_well_formed(&self, text: &str) -> bool {
        let mut raw = [0u8; RAW_LEN];
        text.len() == TOKEN_LEN
            && matches!(URL_SAFE_NO_PAD.decode_slice(text.as_bytes(), &mut raw), Ok(RAW_LEN))
            && self.secrets.iter().any(|s| s.id == raw[0])
    }

    /// The token whose raw bytes are `raw`, when its check value verifies under the secret its
    /// key id names (two secrets may share a key id: each is tried).
    fn check(&self, raw: [u8; RAW_LEN]) -> Option<SessionToken> {
        let mut ok = false;
        for secret in self.secrets.iter().filter(|s| s.id == raw[0]) {
            if let Ok(expected) = secret.mac(&raw[..BODY_LEN]) {
                ok |= bool::from(expected.ct_eq(&raw[BODY_LEN..]));
            }
        }
        ok.then_some(SessionToken { raw })
    }
}

static DEV_FALLBACK: std::sync::LazyLock<TokenSecret> =
    std::sync::LazyLock::new(TokenSecret::insecure_development);

/// The keyed function that names principals to stores: a principal's [`UserRef`] (its tag and
/// a 128-bit digest) is an HMAC of its name, so neither tokens nor Redis key names show who
/// the user is. Every instance sharing sessions must use the same naming secret, and it must
/// not change while sessions live: a user's index and revocation epoch are found by it.
#[derive(Clone)]
pub struct Naming {
    key: [u8; 32],
}

impl Naming {
    /// Naming keyed by a key derived from `secret`.
    pub fn from_secret(secret: &TokenSecret) -> Naming {
        Naming { key: secret.derive(b"sesame principal naming") }
    }

    /// The principal named `name`, with its store reference.
    pub fn principal(&self, name: &str) -> Principal {
        Principal { name: name.to_string(), user: self.user(name) }
    }

    /// The store reference of the principal named `name`.
    pub fn user(&self, name: &str) -> UserRef {
        let mut out = [0u8; 32];
        if let Ok(mut m) = HmacSha256::new_from_slice(&self.key) {
            m.update(name.as_bytes());
            out.copy_from_slice(&m.finalize().into_bytes());
        }
        let mut digest = [0u8; 16];
        digest.copy_from_slice(&out[TAG_LEN..TAG_LEN + 16]);
        UserRef { tag: Tag([out[0], out[1], out[2], out[3]]), digest }
    }
}

impl fmt::Debug for Naming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Naming(..)")
    }
}

/// How stores know a principal: a tag (the slot group of all the principal's keys) and a
/// 128-bit keyed digest of its name. Made by [`Naming::user`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserRef {
    tag: Tag,
    digest: [u8; 16],
}

impl UserRef {
    /// The tag every key of this principal lives under.
    pub fn tag(&self) -> Tag {
        self.tag
    }

    /// The digest as 22 base64url characters, as used in key names.
    pub fn id(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.digest)
    }

    /// Appends [`UserRef::id`]'s text to `out` (no allocation of its own).
    pub fn push_id(&self, out: &mut String) {
        URL_SAFE_NO_PAD.encode_string(self.digest, out);
    }

    /// The 20 bytes of the reference: tag, then digest.
    pub fn to_bytes(&self) -> [u8; 20] {
        let mut out = [0u8; 20];
        out[..TAG_LEN].copy_from_slice(&self.tag.0);
        out[TAG_LEN..].copy_from_slice(&self.digest);
        out
    }

    /// Reads what [`UserRef::to_bytes`] writes.
    pub fn from_bytes(bytes: &[u8]) -> Option<UserRef> {
        if bytes.len() != 20 {
            return None;
        }
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(bytes.get(..TAG_LEN)?);
        let mut digest = [0u8; 16];
        digest.copy_from_slice(bytes.get(TAG_LEN..)?);
        Some(UserRef { tag: Tag(tag), digest })
    }
}

impl fmt::Debug for UserRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserRef({{{}}}:{})", self.tag.to_hex(), self.id())
    }
}

/// A logged-in principal: its name (what the app sees) and its store reference.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    name: String,
    user: UserRef,
}

impl Principal {
    /// Joins a name and its reference (as read back from a store).
    pub fn from_parts(name: String, user: UserRef) -> Principal {
        Principal { name, user }
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The store reference.
    pub fn user(&self) -> UserRef {
        self.user
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Principal({:?})", self.user)
    }
}

impl TokenCodec {
    /// Seals `next` for the holder of `old`: XOR with a pad only `old`'s holder can derive.
    /// A rotation keeps this with the superseded key, so that a request still presenting the
    /// old token inside its grace window learns its successor (the store never sees a token).
    pub fn seal_successor(&self, old: &SessionToken, next: &SessionToken) -> Vec<u8> {
        let pad = successor_pad(old);
        next.raw.iter().zip(pad.iter()).map(|(a, b)| a ^ b).collect()
    }

    /// Opens what [`TokenCodec::seal_successor`] sealed for `old`. `None` when it does not
    /// open to a token with a valid check value (wrong holder, damaged bytes).
    pub fn open_successor(&self, old: &SessionToken, sealed: &[u8]) -> Option<SessionToken> {
        if sealed.len() != RAW_LEN {
            return None;
        }
        let pad = successor_pad(old);
        let mut raw = [0u8; RAW_LEN];
        for (i, out) in raw.iter_mut().enumerate() {
            *out = sealed.get(i).copied().unwrap_or(0) ^ pad.get(i).copied().unwrap_or(0);
        }
        self.check(raw)
    }
}

/// 64 bytes only the holder of `token` can compute: HMAC-SHA-256 keyed by the whole token over
/// two fixed labels (the first 51 bytes are used).
fn successor_pad(token: &SessionToken) -> [u8; 64] {
    let mut pad = [0u8; 64];
    for (i, label) in [b"sesame successor pad 1", b"sesame successor pad 2"].iter().enumerate() {
        if let Ok(mut m) = HmacSha256::new_from_slice(&token.raw) {
            m.update(*label);
            let block = m.finalize().into_bytes();
            if let Some(dst) = pad.get_mut(i * 32..(i + 1) * 32) {
                dst.copy_from_slice(&block);
            }
        }
    }
    pad
}

/// Why a presented token was rejected. Never carries the token itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidToken {
    /// The token has the wrong number of characters.
    #[error("session token has {0} characters, expected {TOKEN_LEN}")]
    Length(usize),
    /// The token holds characters outside base64url.
    #[error("session token is not base64url")]
    Alphabet,
    /// The check value does not match: altered, truncated-and-padded, forged or from another secret.
    #[error("session token check value does not match")]
    Check,
}

/// A session token: the bearer secret a client holds. Its `Debug` output is redacted, and it
/// has no `Display`; use [`SessionToken::expose`] only to write it into the response.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken {
    raw: [u8; RAW_LEN],
}

impl SessionToken {
    /// The encoded token, for the cookie or header that carries it to the client.
    pub fn expose(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.raw)
    }

    /// The tag this token carries.
    pub fn tag(&self) -> Tag {
        Tag([self.raw[1], self.raw[2], self.raw[3], self.raw[4]])
    }

    /// The storage key of this token's session.
    pub fn key(&self) -> SessionKey {
        let h = Sha256::digest(&self.raw[..BODY_LEN]);
        let mut digest = [0u8; 16];
        digest.copy_from_slice(&h[..16]);
        SessionKey { tag: self.tag(), digest }
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionToken(<redacted>, id={})", self.key().id())
    }
}

/// What a store knows a session by: its tag and the digest of its token.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey {
    tag: Tag,
    digest: [u8; 16],
}

impl SessionKey {
    /// The tag (slot group) of the session.
    pub fn tag(&self) -> Tag {
        self.tag
    }

    /// The digest as 22 base64url characters. This is the session's public id: safe to log,
    /// to list and to pass to revoke calls; it cannot be used as a token.
    pub fn id(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.digest)
    }

    /// Appends [`SessionKey::id`]'s text to `out` (no allocation of its own).
    pub fn push_id(&self, out: &mut String) {
        URL_SAFE_NO_PAD.encode_string(self.digest, out);
    }

    /// [`SessionKey::id`]'s text, encoded only when displayed (no allocation), for spans.
    pub(crate) fn id_display(&self) -> impl fmt::Display {
        /// The digest, displayed as its 22 base64url characters.
        struct Id([u8; 16]);
        impl fmt::Display for Id {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut text = [0u8; 22];
                let n = URL_SAFE_NO_PAD.encode_slice(self.0, &mut text).map_err(|_| fmt::Error)?;
                let text = text.get(..n).ok_or(fmt::Error)?;
                f.write_str(std::str::from_utf8(text).map_err(|_| fmt::Error)?)
            }
        }
        Id(self.digest)
    }

    /// Rebuilds a key from a tag and an id as returned by [`SessionKey::id`].
    pub fn from_parts(tag: Tag, id: &str) -> Option<SessionKey> {
        let mut digest = [0u8; 16];
        if id.len() != 22 {
            return None;
        }
        match URL_SAFE_NO_PAD.decode_slice(id.as_bytes(), &mut digest) {
            Ok(16) => Some(SessionKey { tag, digest }),
            _ => None,
        }
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionKey({{{}}}:{})", self.tag.to_hex(), self.id())
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    push_hex(&mut s, bytes);
    s
}

/// Appends `bytes` to `out` as lowercase hex.
fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    // A generated token parses back to the same token and key.
    #[test]
    fn round_trip() {
        let c = TokenCodec::insecure_development();
        let t = c.generate(Tag::random().unwrap()).unwrap();
        let text = t.expose();
        assert_eq!(text.len(), TOKEN_LEN);
        let back = c.parse(&text).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.key(), t.key());
    }

    // Every single-character change, truncation, extension or foreign alphabet is rejected.
    #[test]
    fn rejects_tampering() {
        let c = TokenCodec::insecure_development();
        let text = c.generate(Tag::random().unwrap()).unwrap().expose();
        for i in 0..text.len() {
            let mut b = text.clone().into_bytes();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            let s = String::from_utf8(b).unwrap();
            assert!(c.parse(&s).is_err(), "altered at {i}");
        }
        assert_eq!(c.parse(&text[..67]), Err(InvalidToken::Length(67)));
        assert_eq!(c.parse(&format!("{text}A")), Err(InvalidToken::Length(69)));
        let mut plus = text.clone();
        plus.replace_range(0..1, "+");
        assert_eq!(c.parse(&plus), Err(InvalidToken::Alphabet));
        assert!(c.parse(&"x".repeat(10_000)).is_err());
    }

    // The form check: a token's length, alphabet and a known key id, and nothing more (an
    // altered check value still has a token's form; parsing it fails).
    #[test]
    fn well_formed_is_the_form_only() {
        let c = TokenCodec::insecure_development();
        let text = c.generate(Tag::random().unwrap()).unwrap().expose();
        assert!(c.is_well_formed(&text));
        let mut b = text.clone().into_bytes();
        b[TOKEN_LEN - 1] = if b[TOKEN_LEN - 1] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(b).unwrap();
        assert!(c.is_well_formed(&altered) && c.parse(&altered).is_err());
        assert!(!c.is_well_formed(&text[..67]) && !c.is_well_formed("junk"));
        let mut plus = text.clone();
        plus.replace_range(5..6, "+");
        assert!(!c.is_well_formed(&plus));
        let other = codec(&[7]);
        let foreign = other.generate(Tag::random().unwrap()).unwrap().expose();
        let same_id = other.secrets[0].id == c.secrets[0].id;
        assert_eq!(c.is_well_formed(&foreign), same_id, "another secret's key id");
    }

    // A token made under one secret is rejected under another.
    #[test]
    fn secret_binds_tokens() {
        let a = codec(&[1]);
        let b = codec(&[2]);
        let t = a.generate(Tag::random().unwrap()).unwrap().expose();
        assert!(a.parse(&t).is_ok());
        assert_eq!(b.parse(&t), Err(InvalidToken::Check));
        assert!(TokenSecret::new(vec![0u8; 31]).is_err());
    }

    // A million tokens repeat nothing (256 random bits each).
    #[test]
    fn no_repeats_in_a_million() {
        let c = TokenCodec::insecure_development();
        let tag = Tag::random().unwrap();
        let mut seen = HashSet::with_capacity(1_000_000);
        for _ in 0..1_000_000 {
            let t = c.generate(tag).unwrap();
            assert!(seen.insert(t.raw));
        }
    }

    // Debug output never contains the token.
    #[test]
    fn debug_is_redacted() {
        let t = TokenCodec::insecure_development().generate(Tag::random().unwrap()).unwrap();
        let d = format!("{t:?}");
        assert!(!d.contains(&t.expose()));
        assert!(!d.contains(&t.expose()[4..20]));
    }

    // Ids round-trip through from_parts and reject malformed input.
    #[test]
    fn key_ids() {
        let alice = Naming::from_secret(&secret(7)).user("alice");
        let t = TokenCodec::insecure_development().generate(alice.tag()).unwrap();
        let k = t.key();
        assert_eq!(SessionKey::from_parts(k.tag(), &k.id()), Some(k));
        assert_eq!(SessionKey::from_parts(k.tag(), "short"), None);
        assert_eq!(k.tag(), alice.tag());
    }

    fn secret(b: u8) -> TokenSecret {
        TokenSecret::new(vec![b; 32]).unwrap()
    }

    fn codec(bytes: &[u8]) -> TokenCodec {
        TokenCodec::new(bytes.iter().map(|b| secret(*b)).collect()).unwrap()
    }

    // The first byte of a token is its secret's key id; a codec listing a new secret first and
    // the old one after it makes tokens under the new one and still accepts the old one's; once
    // the old one is dropped its tokens fail their check.
    #[test]
    fn secrets_rotate_without_logging_anyone_out() {
        let old = codec(&[1]);
        let rotating = codec(&[2, 1]);
        let done = codec(&[2]);
        let before = old.generate(Tag::random().unwrap()).unwrap();
        assert_eq!(before.raw[0], secret(1).key_id());
        assert_eq!(rotating.parse(&before.expose()), Ok(before.clone()));
        let after = rotating.generate(Tag::random().unwrap()).unwrap();
        assert_eq!(after.raw[0], secret(2).key_id());
        assert!(done.parse(&after.expose()).is_ok());
        assert_eq!(done.parse(&before.expose()), Err(InvalidToken::Check));
        assert!(TokenCodec::new(Vec::new()).is_err());
        // The key id is part of what the check value covers: another id fails it.
        let mut raw = after.raw;
        raw[0] = raw[0].wrapping_add(1);
        assert_eq!(rotating.parse(&URL_SAFE_NO_PAD.encode(raw)), Err(InvalidToken::Check));
    }

    // A principal's reference is keyed: another naming secret gives another tag and digest,
    // and neither is the unkeyed SHA-256 of the name; references round-trip through bytes.
    #[test]
    fn principal_names_are_keyed() {
        let a = Naming::from_secret(&secret(1)).user("alice");
        let b = Naming::from_secret(&secret(2)).user("alice");
        assert_ne!(a, b);
        assert_ne!(a.tag(), b.tag());
        let plain = Sha256::digest(b"alice");
        assert_ne!(a.tag().to_hex(), hex(&plain[..4]));
        assert_eq!(UserRef::from_bytes(&a.to_bytes()), Some(a));
        assert_eq!(UserRef::from_bytes(&[0u8; 19]), None);
        assert_eq!(Naming::from_secret(&secret(1)).user("alice"), a);
        let p = Naming::from_secret(&secret(1)).principal("alice");
        assert_eq!((p.name(), p.user()), ("alice", a));
        assert!(!format!("{p:?}").contains("alice"));
    }
}
