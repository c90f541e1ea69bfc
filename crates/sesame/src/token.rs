//! Session tokens, the hash tag they carry, and the storage key derived from them.
//!
//! A token is what the client holds. It is 64 base64url characters encoding 48 bytes:
//!
//! | bytes | content |
//! |---|---|
//! | 0..4 | the hash tag: the slot group of the session (random for anonymous sessions, derived from the principal after login) |
//! | 4..36 | 256 random bits from the operating system's CSPRNG |
//! | 36..48 | check value: HMAC-SHA-256 over bytes 0..36, truncated to 96 bits |
//!
//! The check value is keyed by the configured token secret. Without one it is keyed by a fixed
//! public key and is only a checksum: it still rejects truncated, altered or made-up tokens
//! before any store call, but it does not stop a deliberate forger from producing well-formed
//! tokens (which then only cost one store lookup that finds nothing). Configure a secret, shared
//! by every instance, to reject forgeries too.
//!
//! The store never sees a token: it sees a [`SessionKey`], the tag plus the first 128 bits of
//! SHA-256 over the token's tag and random part. Whoever reads the store (a dump, `MONITOR`,
//! `SCAN`) cannot turn a key back into a usable token.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use crate::error::Error;

/// Number of characters of an encoded token.
pub const TOKEN_LEN: usize = 64;
const RAW_LEN: usize = 48;
const TAG_LEN: usize = 4;
const BODY_LEN: usize = 36;
const MAC_LEN: usize = 12;
const DEFAULT_MAC_KEY: &[u8] = b"sesame token check value (no secret configured)";

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

    /// The tag of a principal: the first 32 bits of SHA-256 over its name.
    pub fn for_principal(principal: &str) -> Tag {
        let h = Sha256::digest(principal.as_bytes());
        Tag([h[0], h[1], h[2], h[3]])
    }

    /// The tag as 8 lowercase hex characters, as used inside `{...}` in keys.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
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

/// Secret that keys the token check value. Share it between every instance that serves the
/// same sessions.
#[derive(Clone)]
pub struct TokenSecret(Vec<u8>);

impl TokenSecret {
    /// Wraps secret bytes. At least 32 bytes are required.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<TokenSecret, Error> {
        let bytes = bytes.into();
        if bytes.len() < 32 {
            return Err(Error::Config(format!(
                "the token secret must be at least 32 bytes long, got {}",
                bytes.len()
            )));
        }
        Ok(TokenSecret(bytes))
    }

    fn public_default() -> TokenSecret {
        TokenSecret(DEFAULT_MAC_KEY.to_vec())
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret(..)")
    }
}

/// Makes and checks tokens under one secret.
#[derive(Clone, Debug)]
pub struct TokenCodec {
    secret: TokenSecret,
}

impl Default for TokenCodec {
    fn default() -> Self {
        TokenCodec { secret: TokenSecret::public_default() }
    }
}

impl TokenCodec {
    /// A codec keyed by `secret`, or by the public default when `None`.
    pub fn new(secret: Option<TokenSecret>) -> TokenCodec {
        TokenCodec { secret: secret.unwrap_or_else(TokenSecret::public_default) }
    }

    fn mac(&self, body: &[u8]) -> Result<[u8; MAC_LEN], Error> {
        let mut m = HmacSha256::new_from_slice(&self.secret.0)
            .map_err(|e| Error::Config(format!("token secret: {e}")))?;
        m.update(body);
        let full = m.finalize().into_bytes();
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&full[..MAC_LEN]);
        Ok(out)
    }

    /// Makes a fresh token under `tag`.
    pub fn generate(&self, tag: Tag) -> Result<SessionToken, Error> {
        let mut raw = [0u8; RAW_LEN];
        raw[..TAG_LEN].copy_from_slice(&tag.0);
        getrandom::fill(&mut raw[TAG_LEN..BODY_LEN]).map_err(|e| Error::Random(e.to_string()))?;
        let mac = self.mac(&raw[..BODY_LEN])?;
        raw[BODY_LEN..].copy_from_slice(&mac);
        Ok(SessionToken { raw })
    }

    /// Parses a token as received from a client. Anything but exactly 64 base64url characters
    /// whose check value verifies (in constant time) is rejected, before any store call.
    pub fn parse(&self, text: &str) -> Result<SessionToken, InvalidToken> {
        if text.len() != TOKEN_LEN {
            return Err(InvalidToken::Length(text.len()));
        }
        let mut raw = [0u8; RAW_LEN];
        match URL_SAFE_NO_PAD.decode_slice(text.as_bytes(), &mut raw) {
            Ok(RAW_LEN) => {}
            _ => return Err(InvalidToken::Alphabet),
        }
        let expected = self.mac(&raw[..BODY_LEN]).map_err(|_| InvalidToken::Check)?;
        if bool::from(expected.ct_eq(&raw[BODY_LEN..])) {
            Ok(SessionToken { raw })
        } else {
            Err(InvalidToken::Check)
        }
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
        let expected = self.mac(&raw[..BODY_LEN]).ok()?;
        bool::from(expected.ct_eq(&raw[BODY_LEN..])).then_some(SessionToken { raw })
    }
}

/// 64 bytes only the holder of `token` can compute: HMAC-SHA-256 keyed by the whole token over
/// two fixed labels.
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
        Tag([self.raw[0], self.raw[1], self.raw[2], self.raw[3]])
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
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    // A generated token parses back to the same token and key.
    #[test]
    fn round_trip() {
        let c = TokenCodec::default();
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
        let c = TokenCodec::default();
        let text = c.generate(Tag::random().unwrap()).unwrap().expose();
        for i in 0..text.len() {
            let mut b = text.clone().into_bytes();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            let s = String::from_utf8(b).unwrap();
            assert!(c.parse(&s).is_err(), "altered at {i}");
        }
        assert_eq!(c.parse(&text[..63]), Err(InvalidToken::Length(63)));
        assert_eq!(c.parse(&format!("{text}A")), Err(InvalidToken::Length(65)));
        let mut plus = text.clone();
        plus.replace_range(0..1, "+");
        assert_eq!(c.parse(&plus), Err(InvalidToken::Alphabet));
        assert!(c.parse(&"x".repeat(10_000)).is_err());
    }

    // A token made under one secret is rejected under another.
    #[test]
    fn secret_binds_tokens() {
        let a = TokenCodec::new(Some(TokenSecret::new(vec![1u8; 32]).unwrap()));
        let b = TokenCodec::new(Some(TokenSecret::new(vec![2u8; 32]).unwrap()));
        let t = a.generate(Tag::random().unwrap()).unwrap().expose();
        assert!(a.parse(&t).is_ok());
        assert_eq!(b.parse(&t), Err(InvalidToken::Check));
        assert!(TokenSecret::new(vec![0u8; 31]).is_err());
    }

    // A million tokens repeat nothing (256 random bits each).
    #[test]
    fn no_repeats_in_a_million() {
        let c = TokenCodec::default();
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
        let t = TokenCodec::default().generate(Tag::random().unwrap()).unwrap();
        let d = format!("{t:?}");
        assert!(!d.contains(&t.expose()));
        assert!(!d.contains(&t.expose()[4..20]));
    }

    // Ids round-trip through from_parts and reject malformed input.
    #[test]
    fn key_ids() {
        let t = TokenCodec::default().generate(Tag::for_principal("alice")).unwrap();
        let k = t.key();
        assert_eq!(SessionKey::from_parts(k.tag(), &k.id()), Some(k));
        assert_eq!(SessionKey::from_parts(k.tag(), "short"), None);
        assert_eq!(k.tag(), Tag::for_principal("alice"));
    }
}
