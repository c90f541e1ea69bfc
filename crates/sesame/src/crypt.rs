//! Encryption at rest (optional): every attribute value, and the principal's name, sealed
//! with XChaCha20-Poly1305 under a key chosen by its id.
//!
//! A sealed value is an envelope:
//!
//! | bytes | what |
//! |---|---|
//! | 1 | [`crate::value::ENCRYPTED`] (`0x40`), a header no plain value has |
//! | 1 | the key id |
//! | 24 | a random nonce from the operating system |
//! | rest | the ciphertext of the plain value (header byte and payload, compressed first when that helps), then the 16-byte tag |
//!
//! The associated data binds the envelope to its place: the header, the key id, the
//! session's random identity ([`Record::sid`](crate::Record::sid), 16 bytes that stay the same
//! across every rotation of one session and are never reused by another) and the attribute's
//! name. A value copied into another session, or into another attribute of the same session,
//! fails to open. The principal is sealed the same way under [`PRINCIPAL_SLOT`], a name no
//! attribute can have, and the store indexes the session under the principal's
//! [`pseudonym`] instead of the name.
//!
//! Keys have ids (one byte): new values are sealed under the current key (the first one
//! configured) and values sealed under any configured key open, so a key can be replaced
//! without ending any session: configure `[new, old]` on every instance; values are sealed
//! again under the current key when written and at every rotation, so `old` can be dropped one
//! absolute timeout later.

use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::store::{Delta, Record, Update, UpdateFn};
use crate::value::ENCRYPTED;

/// Length of an encryption key, in bytes.
pub const KEY_LEN: usize = 32;
/// Length of an envelope's nonce, in bytes.
pub const NONCE_LEN: usize = 24;
/// Length of a session's identity ([`Sid`]), in bytes.
pub const SID_LEN: usize = 16;
/// The name the principal is sealed under, and the attribute that holds it in the record: no
/// attribute can have it (attribute names are 1 to 256 bytes long).
pub const PRINCIPAL_SLOT: &str = "";

const TAG_LEN: usize = 16;
const HEAD_LEN: usize = 2 + NONCE_LEN;
/// Domain separation of the associated data.
const AAD_CONTEXT: &[u8] = b"sesame value v1\0";
/// Domain separation of principal pseudonyms.
const PSEUDONYM_CONTEXT: &[u8] = b"sesame principal v1\0";

/// A session's random identity: drawn when the session is created with encryption on, kept by
/// every save and rotation of it (and by a login that carries an anonymous session's data).
pub type Sid = [u8; SID_LEN];

/// Why a sealed value did not open. The messages name no value, key or token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The stored bytes are not an envelope, while encryption is on.
    #[error("the stored value is not encrypted, but encryption is on")]
    NotEncrypted,
    /// Too short to be an envelope.
    #[error("the encrypted value is truncated")]
    Truncated,
    /// Sealed under a key id that is not configured (a retired key, or another deployment's).
    #[error("the value was encrypted under key id {0}, which is not configured")]
    UnknownKey(u8),
    /// The tag does not verify: the bytes were changed, or the value was copied from another
    /// session or another attribute.
    #[error(
        "the encrypted value failed authentication (altered, or copied from another session or attribute)"
    )]
    Authentication,
}

/// The configured encryption keys. Its `Debug` shows the key ids, never a key.
#[derive(Clone)]
pub struct Keyring {
    current: u8,
    keys: Vec<(u8, XChaCha20Poly1305)>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.current)
            .field("key_ids", &self.key_ids())
            .finish_non_exhaustive()
    }
}

/// Keys as handed to the configuration builder, checked when it builds. Its `Debug` shows
/// the key ids only.
#[derive(Clone, Default)]
pub(crate) struct RawKeys(pub(crate) Vec<(u8, Vec<u8>)>);

impl fmt::Debug for RawKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<u8> = self.0.iter().map(|(id, _)| *id).collect();
        f.debug_struct("RawKeys").field("key_ids", &ids).finish_non_exhaustive()
    }
}

impl Keyring {
    /// A keyring from `(key id, 32-byte key)` pairs, the current key first. An empty list,
    /// a key of another length or a key id given twice is an error.
    pub fn new(keys: Vec<(u8, Vec<u8>)>) -> Result<Keyring, Error> {
        let Some(&(current, _)) = keys.first() else {
            return Err(Error::Config("encryption needs at least one key".into()));
        };
        let mut ring = Vec::with_capacity(keys.len());
        for (id, key) in &keys {
            if ring.iter().any(|(seen, _)| seen == id) {
                return Err(Error::Config(format!("encryption key id {id} is given twice")));
            }
            let cipher = XChaCha20Poly1305::new_from_slice(key).map_err(|_| {
                Error::Config(format!(
                    "encryption key {id} is {} bytes long; keys are {KEY_LEN} bytes",
                    key.len()
                ))
            })?;
            ring.push((*id, cipher));
        }
        Ok(Keyring { current, keys: ring })
    }

    /// The id new values are sealed under.
    pub fn current_key_id(&self) -> u8 {
        self.current
    }

    /// Every configured key id, the current one first.
    pub fn key_ids(&self) -> Vec<u8> {
        self.keys.iter().map(|(id, _)| *id).collect()
    }

    /// Seals `plain` for attribute `name` of the session `sid`, under the current key, with a
    /// fresh random nonce.
    pub fn seal(&self, sid: &Sid, name: &str, plain: &[u8]) -> Result<Vec<u8>, Error> {
        let (id, cipher) = self
            .keys
            .first()
            .ok_or_else(|| Error::Config("encryption needs at least one key".into()))?;
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| Error::Random(e.to_string()))?;
        let aad = associated_data(*id, sid, name);
        let sealed = cipher
            .encrypt(&XNonce::from(nonce), Payload { msg: plain, aad: &aad })
            .map_err(|_| Error::Invalid("a session value is too large to encrypt".into()))?;
        let mut out = Vec::with_capacity(HEAD_LEN + sealed.len());
        out.push(ENCRYPTED);
        out.push(*id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens an envelope made by [`Keyring::seal`] for the same session and name, under any
    /// configured key.
    pub fn open(&self, sid: &Sid, name: &str, sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        match sealed.first() {
            Some(&ENCRYPTED) => {}
            Some(_) => return Err(OpenError::NotEncrypted),
            None => return Err(OpenError::Truncated),
        }
        if sealed.len() < HEAD_LEN + TAG_LEN {
            return Err(OpenError::Truncated);
        }
        let (head, body) = sealed.split_at(HEAD_LEN);
        let id = head.get(1).copied().ok_or(OpenError::Truncated)?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(head.get(2..HEAD_LEN).ok_or(OpenError::Truncated)?);
        let (_, cipher) =
            self.keys.iter().find(|(k, _)| *k == id).ok_or(OpenError::UnknownKey(id))?;
        let aad = associated_data(id, sid, name);
        cipher
            .decrypt(&XNonce::from(nonce), Payload { msg: body, aad: &aad })
            .map_err(|_| OpenError::Authentication)
    }
}

fn associated_data(id: u8, sid: &Sid, name: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_CONTEXT.len() + 2 + SID_LEN + name.len());
    aad.extend_from_slice(AAD_CONTEXT);
    aad.push(ENCRYPTED);
    aad.push(id);
    aad.extend_from_slice(sid);
    // Last, so that no two (sid, name) pairs give the same bytes.
    aad.extend_from_slice(name.as_bytes());
    aad
}

/// A request's changes sealed for the session `sid`: set values and update results sealed
/// under the current key; each update's function opens the stored value, runs on the plain
/// encoding and seals what it returns, so a store that runs it again on the stored value
/// (another request saved first) still gets a sealed value. An update's `seen` stays the
/// stored bytes it was computed from, which the store compares.
///
/// With `reseal` (the record a rotation starts from), every value of it sealed under another
/// key than the current one, and not written by the delta, is sealed again under the current
/// key, as an exact update (a value another request wrote meanwhile is not overwritten). So a
/// retired key is needed at most one absolute timeout after the new one became current: every
/// login restarts that timeout and rotates.
pub(crate) fn seal_delta(
    keys: &Arc<Keyring>,
    sid: &Sid,
    plain: &Delta,
    reseal: Option<&Record>,
) -> Result<Delta, Error> {
    let mut out = Delta { remove: plain.remove.clone(), ..Delta::default() };
    for (name, v) in &plain.set {
        out.set.push((name.clone(), keys.seal(sid, name, v)?));
    }
    for u in &plain.update {
        let result = u.result.as_deref().map(|v| keys.seal(sid, &u.name, v)).transpose()?;
        let (ring, sid, name, inner) = (keys.clone(), *sid, u.name.clone(), u.apply.clone());
        let apply: UpdateFn = Arc::new(move |stored: Option<&[u8]>| {
            let opened = match stored {
                Some(b) => Some(ring.open(&sid, &name, b).map_err(|e| e.to_string())?),
                None => None,
            };
            match inner(opened.as_deref())? {
                Some(v) => ring.seal(&sid, &name, &v).map(Some).map_err(|e| e.to_string()),
                None => Ok(None),
            }
        });
        out.update.push(Update { name: u.name.clone(), seen: u.seen.clone(), result, apply });
    }
    let current = keys.current_key_id();
    for (name, raw) in reseal.map(|r| &r.attrs).into_iter().flatten() {
        let written = plain.set.iter().any(|(n, _)| n == name)
            || plain.remove.contains(name)
            || plain.update.iter().any(|u| &u.name == name);
        if written || raw.get(1) == Some(&current) {
            continue;
        }
        // A value that does not open is left as it is: reading it gives the error.
        let Ok(opened) = keys.open(sid, name, raw) else { continue };
        let result = Some(keys.seal(sid, name, &opened)?);
        let (ring, sid, n) = (keys.clone(), *sid, name.clone());
        let apply: UpdateFn = Arc::new(move |stored: Option<&[u8]>| {
            let Some(b) = stored else { return Ok(None) };
            match ring.open(&sid, &n, b) {
                Ok(p) if b.get(1) != Some(&ring.current) => {
                    ring.seal(&sid, &n, &p).map(Some).map_err(|e| e.to_string())
                }
                _ => Ok(Some(b.to_vec())),
            }
        });
        out.update.push(Update { name: name.clone(), seen: Some(raw.clone()), result, apply });
    }
    Ok(out)
}

/// A new session identity, from the operating system's random generator.
pub fn new_sid() -> Result<Sid, Error> {
    let mut sid = [0u8; SID_LEN];
    getrandom::fill(&mut sid).map_err(|e| Error::Random(e.to_string()))?;
    Ok(sid)
}

/// The name a store indexes a principal under while encryption is on: `~` and the base64url
/// SHA-256 of the name (44 characters). It is the same on every instance and for every key,
/// so key changes do not move anyone's sessions. It is not keyed: whoever reads the store can
/// test a guessed name against it, but not read the name.
pub fn pseudonym(principal: &str) -> String {
    let mut h = Sha256::new();
    h.update(PSEUDONYM_CONTEXT);
    h.update(principal.as_bytes());
    let mut out = String::with_capacity(44);
    out.push('~');
    out.push_str(&URL_SAFE_NO_PAD.encode(h.finalize()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(ids: &[u8]) -> Keyring {
        Keyring::new(ids.iter().map(|&id| (id, vec![id; KEY_LEN])).collect()).unwrap()
    }

    const SID: Sid = [7; SID_LEN];
    const OTHER_SID: Sid = [8; SID_LEN];

    // A sealed value opens for the same session and name, with the layout documented above
    // (header, key id, 24-byte nonce, ciphertext + 16-byte tag), and never holds the plain
    // bytes; two seals of one value differ (fresh nonces).
    #[test]
    fn round_trip() {
        let r = ring(&[1]);
        let plain = b"\x01\"marker-plain-text\"";
        let a = r.seal(&SID, "note", plain).unwrap();
        assert_eq!(a[0], ENCRYPTED);
        assert_eq!(a[1], 1);
        assert_eq!(a.len(), 1 + 1 + NONCE_LEN + plain.len() + TAG_LEN);
        assert!(!a.windows(6).any(|w| w == b"marker"));
        assert_eq!(r.open(&SID, "note", &a).unwrap(), plain);
        let b = r.seal(&SID, "note", plain).unwrap();
        assert_ne!(a, b);
        assert_ne!(a[2..2 + NONCE_LEN], b[2..2 + NONCE_LEN]);
        // The empty value too.
        let e = r.seal(&SID, "note", b"").unwrap();
        assert_eq!(r.open(&SID, "note", &e).unwrap(), b"");
    }

    // An unknown key id is named in the error; the message has no value text.
    #[test]
    fn wrong_key_id() {
        let sealed = ring(&[1]).seal(&SID, "note", b"\x01\"secret\"").unwrap();
        let err = ring(&[2]).open(&SID, "note", &sealed).unwrap_err();
        assert_eq!(err, OpenError::UnknownKey(1));
        assert!(err.to_string().contains("key id 1"), "{err}");
        assert!(!err.to_string().contains("secret"));
        // The same id with another key: the tag does not verify.
        let other = Keyring::new(vec![(1, vec![9; KEY_LEN])]).unwrap();
        assert_eq!(other.open(&SID, "note", &sealed).unwrap_err(), OpenError::Authentication);
    }

    // Changing any single byte (or bit) of an envelope, or cutting it, makes it fail to open;
    // nothing panics.
    #[test]
    fn tampered_bytes() {
        let r = ring(&[1, 2]);
        let sealed = r.seal(&SID, "note", b"\x01\"some value\"").unwrap();
        for i in 0..sealed.len() {
            for bit in [0x01u8, 0x80] {
                let mut t = sealed.clone();
                t[i] ^= bit;
                let err = r.open(&SID, "note", &t).unwrap_err();
                assert!(
                    matches!(
                        err,
                        OpenError::Authentication
                            | OpenError::UnknownKey(_)
                            | OpenError::NotEncrypted
                    ),
                    "byte {i}: {err:?}"
                );
            }
        }
        for n in 0..sealed.len() {
            assert!(r.open(&SID, "note", &sealed[..n]).is_err(), "cut at {n}");
        }
        let mut longer = sealed.clone();
        longer.push(0);
        assert_eq!(r.open(&SID, "note", &longer).unwrap_err(), OpenError::Authentication);
        assert_eq!(r.open(&SID, "note", b"\x01\"plain\"").unwrap_err(), OpenError::NotEncrypted);
    }

    // A value copied into another attribute of its session, or into another session, fails
    // authentication; so does the principal's envelope read as an attribute.
    #[test]
    fn copies_fail() {
        let r = ring(&[1]);
        let sealed = r.seal(&SID, "cart", b"\x01[1,2]").unwrap();
        assert_eq!(r.open(&SID, "wish", &sealed).unwrap_err(), OpenError::Authentication);
        assert_eq!(r.open(&OTHER_SID, "cart", &sealed).unwrap_err(), OpenError::Authentication);
        let p = r.seal(&SID, PRINCIPAL_SLOT, b"alice").unwrap();
        assert_eq!(r.open(&SID, "a", &p).unwrap_err(), OpenError::Authentication);
        assert_eq!(r.open(&SID, PRINCIPAL_SLOT, &p).unwrap(), b"alice");
        // Names are not confused with the identity's bytes.
        let x = r.seal(&SID, "ab", b"v").unwrap();
        assert_eq!(r.open(&SID, "a", &x).unwrap_err(), OpenError::Authentication);
    }

    // Key rotation: a value sealed under key 1 opens with [2, 1], which seals new values under
    // 2; with [2] alone the old value gives a clear "unknown key" error.
    #[test]
    fn key_rotation() {
        let old = ring(&[1]).seal(&SID, "note", b"\x01\"v\"").unwrap();
        let both = ring(&[2, 1]);
        assert_eq!(both.open(&SID, "note", &old).unwrap(), b"\x01\"v\"");
        assert_eq!(both.current_key_id(), 2);
        let new = both.seal(&SID, "note", b"\x01\"w\"").unwrap();
        assert_eq!(new[1], 2);
        let only_new = ring(&[2]);
        assert_eq!(only_new.open(&SID, "note", &new).unwrap(), b"\x01\"w\"");
        let err = only_new.open(&SID, "note", &old).unwrap_err();
        assert_eq!(err, OpenError::UnknownKey(1));
        assert_eq!(
            err.to_string(),
            "the value was encrypted under key id 1, which is not configured"
        );
    }

    // An empty list, a short or long key and a repeated id are refused; Debug shows ids only.
    #[test]
    fn keyring_checks_and_debug() {
        assert!(Keyring::new(vec![]).is_err());
        assert!(Keyring::new(vec![(1, vec![0; 31])]).is_err());
        assert!(Keyring::new(vec![(1, vec![0; 33])]).is_err());
        assert!(Keyring::new(vec![(1, vec![1; 32]), (1, vec![2; 32])]).is_err());
        let r = Keyring::new(vec![(3, vec![0xab; 32]), (1, vec![0xcd; 32])]).unwrap();
        let d = format!("{r:?}");
        assert_eq!(d, "Keyring { current: 3, key_ids: [3, 1], .. }");
        let raw = RawKeys(vec![(3, vec![0xab; 32])]);
        assert!(!format!("{raw:?}").contains("171"), "{raw:?}");
    }

    // Pseudonyms are stable, distinct per name, 44 characters, and do not contain the name.
    #[test]
    fn pseudonyms() {
        let a = pseudonym("alice@example.com");
        assert_eq!(a, pseudonym("alice@example.com"));
        assert_ne!(a, pseudonym("alice@example.co"));
        assert_eq!(a.len(), 44);
        assert!(a.starts_with('~') && !a.contains("alice"));
        assert!(new_sid().unwrap() != new_sid().unwrap());
    }
}
