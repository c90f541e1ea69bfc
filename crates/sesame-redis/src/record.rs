//! The stored form of a session: one MessagePack array per session key.
//!
//! ```text
//! [ version, created_ms, absolute_ms, principal | false, auth_ms | false, { name: value, ... },
//!   rotated_ms, idle_left_ms?, sid? ]
//! ```
//!
//! The principal is written as 20 bytes of its keyed reference (tag and digest, see
//! `sesame::UserRef`), then its name (empty while encryption at rest is on: the name is then
//! sealed among the attributes).
//!
//! Three times are written relative to `created_ms`, as negative numbers (which no time since
//! 1970 is), because the time itself takes 9 bytes: `absolute_ms` as `-(absolute - created)`
//! (5 bytes for a life of up to 24 days); `auth_ms`, which a login reads just before its
//! record is made, as `-(created - auth) - 1` (1 to 3 bytes for up to 32 seconds before
//! creation); and a non-zero `rotated_ms` as `-(rotated - created) - 1` (1 byte for a login's
//! rotation, which happens at creation). A time outside those ranges is written as itself,
//! and so were all three in records written before this form; the decoder reads both forms.
//!
//! (Records written before the renewal timer existed have six fields: `rotated_ms` is then 0.
//! `idle_left_ms` carries the key's idle deadline, the expiry set by the write that last set
//! its TTL, as the time from it to `absolute_ms` (5 bytes for any absolute timeout up to 49
//! days, where the deadline itself would take 9), so that a load needs no `PTTL`; records
//! written before it existed lack it, and a load then asks for the TTL. `sid`, the session's
//! 16-byte identity, is written only while encryption at rest is on. The two optional fields
//! are told apart by type: a number is the deadline, a string the identity.)
//!
//! A session key can instead hold a [`Pointer`]: what a rotation leaves behind for the
//! superseded token. Pointers start with the byte `P`, which no record starts with.
//!
//! Values are the attribute bytes made by the core's value codec (header byte + payload),
//! written with MessagePack `str` framing (raw bytes, not necessarily UTF-8), so that Redis's
//! built-in `cmsgpack`, which does not read `bin`, can read a record in a script or by hand.
//! Only this module writes records; the decoder also accepts the forms `cmsgpack`
//! writes (an empty map as an empty array, `nil`) and `bin`, so records stay readable
//! whoever wrote them. Absent fields are `false`, never `nil`, because a
//! `nil` would leave a hole in the Lua table and change how `cmsgpack` re-encodes it.
//!
//! The decoder never panics and never trusts a length: hostile bytes give an error.

use std::collections::BTreeMap;

use sesame::{Principal, Record, SessionKey, Tag, UserRef};

/// Longest possible session life: the configuration caps the absolute timeout at a year.
const MAX_LIFETIME_MS: u64 = 366 * 24 * 3600 * 1000;

/// Encodes a record with the idle deadline its write gives the key (`None`: the key keeps a
/// TTL this write does not know, and a load asks for it).
pub(crate) fn encode(r: &Record, idle_deadline_ms: Option<u64>) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(32 + r.attrs.iter().map(|(k, v)| k.len() + v.len() + 8).sum::<usize>());
    // Writing into a Vec cannot fail; the results are ignored for that reason.
    let fields = 7 + u32::from(idle_deadline_ms.is_some()) + u32::from(r.sid.is_some());
    let _ = rmp::encode::write_array_len(&mut out, fields);
    let _ = rmp::encode::write_uint(&mut out, r.version);
    let _ = rmp::encode::write_uint(&mut out, r.created_ms);
    write_absolute(&mut out, r.created_ms, r.absolute_ms);
    match &r.principal {
        Some(p) => {
            let name = p.name().as_bytes();
            let len = u32::try_from(name.len().saturating_add(20)).unwrap_or(u32::MAX);
            let _ = rmp::encode::write_str_len(&mut out, len);
            out.extend_from_slice(&p.user().to_bytes());
            out.extend_from_slice(name);
        }
        None => {
            let _ = rmp::encode::write_bool(&mut out, false);
        }
    }
    match r.auth_ms {
        Some(t) => write_auth(&mut out, r.created_ms, t),
        None => {
            let _ = rmp::encode::write_bool(&mut out, false);
        }
    }
    let n = u32::try_from(r.attrs.len()).unwrap_or(u32::MAX);
    let _ = rmp::encode::write_map_len(&mut out, n);
    for (k, v) in &r.attrs {
        let _ = rmp::encode::write_str(&mut out, k);
        // `str` framing with raw bytes: Redis's cmsgpack does not read `bin`.
        let _ = rmp::encode::write_str_len(&mut out, u32::try_from(v.len()).unwrap_or(u32::MAX));
        out.extend_from_slice(v);
    }
    write_rotated(&mut out, r.created_ms, r.rotated_ms);
    if let Some(deadline) = idle_deadline_ms {
        // Counted back from the absolute deadline; one past it (no write makes it) is written
        // as the absolute deadline, which caps every TTL anyway.
        let _ = rmp::encode::write_uint(&mut out, r.absolute_ms.saturating_sub(deadline));
    }
    if let Some(sid) = &r.sid {
        // `str` framing with raw bytes, like the values.
        let _ = rmp::encode::write_str_len(&mut out, sesame::crypt::SID_LEN as u32);
        out.extend_from_slice(sid);
    }
    out
}

/// Writes the absolute deadline as the session's life, negated (`-(absolute - created)`: 5
/// bytes for a life of up to 24 days, where the time itself takes 9), when that life is 1 ms
/// to [`MAX_LIFETIME_MS`]; as the time itself otherwise (which the decoder then checks).
fn write_absolute(out: &mut Vec<u8>, created_ms: u64, absolute_ms: u64) {
    let life =
        absolute_ms.checked_sub(created_ms).filter(|life| (1..=MAX_LIFETIME_MS).contains(life));
    write_relative(out, life, absolute_ms);
}

/// Writes the authentication time as how long before creation it was, negated and less one
/// (`-(created - auth) - 1`), when it is 0 ms to [`MAX_LIFETIME_MS`] before creation: a login
/// reads its time just before its record is made, so this takes 1 to 3 bytes where the time
/// itself takes 9. Any other time is written as itself.
fn write_auth(out: &mut Vec<u8>, created_ms: u64, auth_ms: u64) {
    let before = created_ms.checked_sub(auth_ms).filter(|before| *before < MAX_LIFETIME_MS);
    write_relative(out, before.map(|b| b + 1), auth_ms);
}

/// Writes the last rotation's time as how long after creation it was, negated and less one
/// (`-(rotated - created) - 1`), when it is 0 ms to [`MAX_LIFETIME_MS`] after creation: a
/// login's rotation happens at creation (1 byte), a renewal within the session's life (at most
/// 5 bytes for 24 days). 0 (never rotated) and any other time are written as themselves.
fn write_rotated(out: &mut Vec<u8>, created_ms: u64, rotated_ms: u64) {
    let after = rotated_ms.checked_sub(created_ms).filter(|after| *after < MAX_LIFETIME_MS);
    write_relative(out, after.filter(|_| rotated_ms != 0).map(|a| a + 1), rotated_ms);
}

/// Writes `-magnitude` in MessagePack's smallest signed form when there is a magnitude (1 to
/// [`MAX_LIFETIME_MS`], far inside `i64`), else `time` itself.
fn write_relative(out: &mut Vec<u8>, magnitude: Option<u64>, time: u64) {
    let _ = match magnitude {
        Some(m) => rmp::encode::write_sint(out, i64::try_from(m).map_or(i64::MIN, |m| -m)),
        None => rmp::encode::write_uint(out, time),
    };
}

/// Decodes a record, accepting what both this module and Redis's `cmsgpack` write.
#[cfg(test)]
pub(crate) fn decode(bytes: &[u8]) -> Result<Record, String> {
    decode_with_deadline(bytes).map(|(record, _)| record)
}

/// Decodes a record and the idle deadline it carries (`None`: written before records carried
/// one, or by a write that did not know the key's TTL).
pub(crate) fn decode_with_deadline(bytes: &[u8]) -> Result<(Record, Option<u64>), String> {
    let mut c = Cursor { b: bytes, pos: 0 };
    let fields = c.array_len()?.ok_or("record is not an array")?;
    if !(6..=9).contains(&fields) {
        return Err(format!("record has {fields} fields, expected 6 to 9"));
    }
    let version = c.uint()?;
    let created_ms = c.uint()?;
    // A negative number is the session's life (see `write_absolute`); records written before
    // that form, and Redis's `cmsgpack`, give the time itself.
    let absolute_ms =
        c.time(|life| created_ms.checked_add(life), "the absolute deadline overflows")?;
    let principal = match c.peek()? {
        0xc2 | 0xc0 => {
            c.pos += 1;
            None
        }
        _ => Some(principal(c.bytes()?)?),
    };
    let auth_ms = match c.peek()? {
        0xc2 | 0xc0 => {
            c.pos += 1;
            None
        }
        // A negative number counts back from creation (see `write_auth`).
        _ => Some(
            c.time(|n| created_ms.checked_sub(n - 1), "the authentication time is before 1970")?,
        ),
    };
    let mut attrs = BTreeMap::new();
    let n = match c.map_len()? {
        Some(n) => n,
        None => match c.array_len()? {
            Some(0) => 0,
            _ => return Err("attributes are not a map".into()),
        },
    };
    for _ in 0..n {
        let k =
            String::from_utf8(c.bytes()?.to_vec()).map_err(|_| "attribute name is not UTF-8")?;
        let v = c.bytes()?.to_vec();
        attrs.insert(k, v);
    }
    // A negative number counts on from creation (see `write_rotated`).
    let rotated_ms = if fields < 7 {
        0
    } else {
        c.time(|n| created_ms.checked_add(n - 1), "the rotation time overflows")?
    };
    // After `rotated_ms`: the deadline (a number), the identity (a string), or both in that
    // order.
    let idle_left = match fields {
        9 => Some(c.uint()?),
        8 if !is_string_marker(c.peek()?) => Some(c.uint()?),
        _ => None,
    };
    // (A hostile distance beyond the absolute deadline gives a deadline at 0: a touch is due.)
    let deadline = idle_left.map(|left| absolute_ms.saturating_sub(left));
    let sid = if fields == 9 || (fields == 8 && deadline.is_none()) {
        let b = c.bytes()?;
        Some(
            <sesame::crypt::Sid>::try_from(b)
                .map_err(|_| "the session identity is not 16 bytes")?,
        )
    } else {
        None
    };
    if c.pos != bytes.len() {
        return Err("trailing bytes after the record".into());
    }
    if absolute_ms < created_ms || absolute_ms - created_ms > MAX_LIFETIME_MS {
        return Err("the record's deadlines are impossible".into());
    }
    let record =
        Record { created_ms, absolute_ms, principal, auth_ms, rotated_ms, version, attrs, sid };
    Ok((record, deadline))
}

/// Whether a MessagePack marker starts a `str` or `bin`.
fn is_string_marker(m: u8) -> bool {
    matches!(m, 0xa0..=0xbf | 0xd9..=0xdb | 0xc4..=0xc6)
}

/// Reads a principal: its 20-byte reference, then its name.
fn principal(bytes: &[u8]) -> Result<Principal, String> {
    let user = bytes.get(..20).and_then(UserRef::from_bytes).ok_or("principal is too short")?;
    let name = bytes.get(20..).unwrap_or_default();
    let name = String::from_utf8(name.to_vec()).map_err(|_| "principal is not UTF-8")?;
    Ok(Principal::from_parts(name, user))
}

/// What a superseded token's key holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pointer {
    /// What happened to the token.
    pub(crate) kind: PointerKind,
    /// Renew: the end of the grace window; Moving: when the claim lapses (ms since the epoch).
    pub(crate) until_ms: u64,
    /// Where the lineage went.
    pub(crate) successor: SessionKey,
    /// The successor token sealed for the old token's holder (Renew only; else empty).
    pub(crate) sealed: Vec<u8>,
}

/// The states of a superseded key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PointerKind {
    /// Superseded by a same-privilege rotation: resolves to its successor until `until_ms`,
    /// revokes the lineage when presented after that.
    Renew,
    /// Superseded by a login into another slot: dead for requests, followed by a logout.
    Elevate,
    /// A login into another slot is writing the successor (first step of three).
    Moving,
    /// Closed by a logout (a session key that must not be created, or a claim that was
    /// cancelled): dead.
    Ended,
}

impl PointerKind {
    fn byte(self) -> u8 {
        match self {
            PointerKind::Renew => b'R',
            PointerKind::Elevate => b'E',
            PointerKind::Moving => b'M',
            PointerKind::Ended => b'X',
        }
    }
}

/// The first byte of every pointer.
pub(crate) const POINTER_MARK: u8 = b'P';
const POINTER_HEAD: usize = 2 + 8 + 8 + 22;

/// Encodes a pointer: `P`, kind, `until_ms` (8 bytes big-endian), the successor's tag (8 hex
/// characters) and id (22 characters), then the sealed successor.
pub(crate) fn encode_pointer(p: &Pointer) -> Vec<u8> {
    let mut out = Vec::with_capacity(POINTER_HEAD + p.sealed.len());
    out.push(POINTER_MARK);
    out.push(p.kind.byte());
    out.extend_from_slice(&p.until_ms.to_be_bytes());
    out.extend_from_slice(p.successor.tag().to_hex().as_bytes());
    out.extend_from_slice(p.successor.id().as_bytes());
    out.extend_from_slice(&p.sealed);
    out
}

/// What a session key holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stored {
    /// A live session's record, with the idle deadline it carries.
    Record(Record, Option<u64>),
    /// A superseded token's pointer.
    Pointer(Pointer),
}

/// Decodes whatever a session key holds.
pub(crate) fn decode_stored(bytes: &[u8]) -> Result<Stored, String> {
    if bytes.first() != Some(&POINTER_MARK) {
        return decode_with_deadline(bytes).map(|(r, d)| Stored::Record(r, d));
    }
    let head = bytes.get(..POINTER_HEAD).ok_or("pointer is truncated")?;
    let kind = match head.get(1) {
        Some(b'R') => PointerKind::Renew,
        Some(b'E') => PointerKind::Elevate,
        Some(b'M') => PointerKind::Moving,
        Some(b'X') => PointerKind::Ended,
        _ => return Err("unknown pointer kind".into()),
    };
    let mut until = [0u8; 8];
    until.copy_from_slice(head.get(2..10).ok_or("pointer is truncated")?);
    let tag = std::str::from_utf8(head.get(10..18).ok_or("pointer is truncated")?)
        .ok()
        .and_then(Tag::from_hex)
        .ok_or("pointer has a bad tag")?;
    let id = std::str::from_utf8(head.get(18..40).ok_or("pointer is truncated")?)
        .map_err(|_| "pointer has a bad id")?;
    let successor = SessionKey::from_parts(tag, id).ok_or("pointer has a bad id")?;
    let sealed = bytes.get(POINTER_HEAD..).unwrap_or_default().to_vec();
    Ok(Stored::Pointer(Pointer { kind, until_ms: u64::from_be_bytes(until), successor, sealed }))
}

/// An integer read from a record: a negative one as its magnitude (at least 1).
enum Number {
    Unsigned(u64),
    Negative(u64),
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Result<u8, String> {
        self.b.get(self.pos).copied().ok_or_else(|| "record is truncated".to_string())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).ok_or("length overflow")?;
        let s = self.b.get(self.pos..end).ok_or("record is truncated")?;
        self.pos = end;
        Ok(s)
    }

    fn be(&mut self, n: usize) -> Result<u64, String> {
        Ok(self.take(n)?.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    fn uint(&mut self) -> Result<u64, String> {
        match self.number()? {
            Number::Unsigned(v) => Ok(v),
            Number::Negative(_) => Err("negative number in record".into()),
        }
    }

    /// A time: a non-negative number is the time itself; a negative one is counted from the
    /// creation time by `relative` (given its magnitude, at least 1), or `overflow` is the
    /// error.
    fn time(
        &mut self,
        relative: impl FnOnce(u64) -> Option<u64>,
        overflow: &str,
    ) -> Result<u64, String> {
        match self.number()? {
            Number::Unsigned(t) => Ok(t),
            Number::Negative(n) => relative(n).ok_or_else(|| overflow.to_string()),
        }
    }

    /// An integer, in any of MessagePack's forms (an integral double too, as `cmsgpack` may
    /// write one).
    fn number(&mut self) -> Result<Number, String> {
        let m = self.peek()?;
        self.pos += 1;
        match m {
            0x00..=0x7f => Ok(Number::Unsigned(u64::from(m))),
            // Negative fixint: 0xff is -1, 0xe0 is -32.
            0xe0..=0xff => Ok(Number::Negative(u64::from(m.wrapping_neg()))),
            0xcc => self.be(1).map(Number::Unsigned),
            0xcd => self.be(2).map(Number::Unsigned),
            0xce => self.be(4).map(Number::Unsigned),
            0xcf => self.be(8).map(Number::Unsigned),
            0xd0..=0xd3 => {
                let n = 1usize << (m - 0xd0);
                let raw = self.be(n)?;
                let shift = 64 - 8 * n as u32;
                let v = ((raw << shift) as i64) >> shift;
                Ok(match u64::try_from(v) {
                    Ok(v) => Number::Unsigned(v),
                    Err(_) => Number::Negative(v.unsigned_abs()),
                })
            }
            0xcb => {
                let f = f64::from_bits(self.be(8)?);
                if f >= 0.0 && f.fract() == 0.0 && f < 1.8e19 {
                    Ok(Number::Unsigned(f as u64))
                } else {
                    Err("non-integral number in record".into())
                }
            }
            _ => Err(format!("expected a number, found marker 0x{m:02x}")),
        }
    }

    /// A str or bin payload.
    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let m = self.peek()?;
        self.pos += 1;
        let n = match m {
            0xa0..=0xbf => usize::from(m & 0x1f),
            0xd9 | 0xc4 => self.be(1)? as usize,
            0xda | 0xc5 => self.be(2)? as usize,
            0xdb | 0xc6 => self.be(4)? as usize,
            _ => return Err(format!("expected a string, found marker 0x{m:02x}")),
        };
        self.take(n)
    }

    /// The length of a container whose fix form is `fix..=fix + 15` and whose 16- and 32-bit
    /// forms are `wide` and `wide + 1`; `None` (nothing consumed) for any other marker.
    fn container_len(&mut self, fix: u8, wide: u8) -> Result<Option<usize>, String> {
        let m = self.peek()?;
        let n = if (fix..=fix + 15).contains(&m) {
            self.pos += 1;
            usize::from(m - fix)
        } else if m == wide || m == wide + 1 {
            self.pos += 1;
            self.be(if m == wide { 2 } else { 4 })? as usize
        } else {
            return Ok(None);
        };
        // Each element takes at least one byte: refuse lengths the input cannot hold.
        if n > self.b.len().saturating_sub(self.pos) {
            return Err("container length exceeds the record".into());
        }
        Ok(Some(n))
    }

    fn array_len(&mut self) -> Result<Option<usize>, String> {
        self.container_len(0x90, 0xdc)
    }

    fn map_len(&mut self) -> Result<Option<usize>, String> {
        self.container_len(0x80, 0xde)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str) -> Principal {
        sesame::Naming::from_secret(&sesame::TokenSecret::insecure_development()).principal(name)
    }

    fn sample() -> Record {
        let mut attrs = BTreeMap::new();
        attrs.insert("a".to_string(), vec![1, b'"', b'x', b'"']);
        attrs.insert("bin".to_string(), vec![0xff; 300]);
        Record {
            created_ms: 1_763_683_200_000,
            absolute_ms: 1_763_726_400_000,
            principal: Some(named("alice")),
            auth_ms: Some(1_763_683_200_001),
            rotated_ms: 1_763_683_300_000,
            version: 7,
            attrs,
            sid: None,
        }
    }

    // Pointers round-trip, and every truncation of one is an error, never a panic.
    #[test]
    fn pointers() {
        let successor =
            SessionKey::from_parts(named("bob").user().tag(), "AAAAAAAAAAAAAAAAAAAAAA").unwrap();
        for (kind, sealed) in [(PointerKind::Renew, vec![7u8; 48]), (PointerKind::Elevate, vec![])]
        {
            let p = Pointer { kind, until_ms: u64::MAX, successor, sealed };
            let bytes = encode_pointer(&p);
            assert_eq!(decode_stored(&bytes).unwrap(), Stored::Pointer(p));
            for n in 0..POINTER_HEAD {
                assert!(decode_stored(&bytes[..n]).is_err() || n == 0);
            }
        }
        assert!(matches!(
            decode_stored(&encode(&sample(), None)).unwrap(),
            Stored::Record(_, None)
        ));
    }

    // Records round-trip, with and without optional fields and attributes.
    #[test]
    fn round_trip() {
        let r = sample();
        assert_eq!(decode(&encode(&r, None)).unwrap(), r);
        let empty = Record { created_ms: 1, absolute_ms: 2, ..Record::default() };
        assert_eq!(decode(&encode(&empty, None)).unwrap(), empty);
    }

    // The session identity is a trailing eighth field, written only when there is one: a
    // record without it is encoded exactly as before (seven fields), and a record with it
    // round-trips; an identity of another length is refused.
    #[test]
    fn session_identity_field() {
        let plain = encode(&sample(), None);
        assert_eq!(plain[0], 0x97);
        let with = Record { sid: Some([0xee; 16]), ..sample() };
        let bytes = encode(&with, None);
        assert_eq!(bytes[0], 0x98);
        assert_eq!(&bytes[1..plain.len()], &plain[1..]);
        assert_eq!(&bytes[plain.len()..], [&[0xb0][..], &[0xee; 16]].concat());
        assert_eq!(decode(&bytes).unwrap(), with);
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err(), "truncated at {n}");
        }
        let mut short = plain.clone();
        short[0] = 0x98;
        short.extend_from_slice(&[0xaf]);
        short.extend_from_slice(&[1; 15]);
        assert!(decode(&short).is_err());
        let mut nine = bytes.clone();
        nine[0] = 0x99;
        nine.push(0);
        assert!(decode(&nine).is_err());
    }

    // The idle deadline is an optional number after `rotated_ms`, before the identity: with
    // and without either, records round-trip; a record without the deadline is encoded
    // exactly as before; counted back from the absolute deadline it takes 5 bytes; every
    // truncation is an error.
    #[test]
    fn idle_deadline_field() {
        let d = 1_763_690_000_000;
        for sid in [None, Some([0xee; 16])] {
            let r = Record { sid, ..sample() };
            let without = encode(&r, None);
            let with = encode(&r, Some(d));
            assert_eq!(with[0], without[0] + 1, "one more field");
            assert_eq!(with.len(), without.len() + 5, "a 32-bit distance");
            assert_eq!(decode_with_deadline(&with).unwrap(), (r.clone(), Some(d)));
            assert_eq!(decode_with_deadline(&without).unwrap(), (r.clone(), None));
            assert_eq!(decode_stored(&with).unwrap(), Stored::Record(r.clone(), Some(d)));
            for n in 0..with.len() {
                assert!(decode_with_deadline(&with[..n]).is_err(), "truncated at {n}");
            }
        }
        // A deadline beyond the absolute one (no write makes it) is stored as the absolute
        // one, which caps every TTL anyway; a distance beyond the absolute deadline (hostile
        // bytes) reads as a deadline at 0.
        let r = sample();
        let far = encode(&r, Some(u64::MAX));
        assert_eq!(decode_with_deadline(&far).unwrap(), (r.clone(), Some(r.absolute_ms)));
        let mut hostile = encode(&r, None);
        hostile[0] = 0x98;
        hostile.push(0xcf);
        hostile.extend_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(decode_with_deadline(&hostile).unwrap(), (r, Some(0)));
        // Nine fields need both; a string where the deadline belongs is refused.
        let mut bad = encode(&Record { sid: Some([1; 16]), ..sample() }, None);
        bad[0] = 0x99;
        assert!(decode_with_deadline(&bad).is_err());
    }

    /// The encoded length of `sample()` with the given times and nothing optional.
    fn len_with(absolute_ms: u64, auth_ms: Option<u64>) -> usize {
        let r = Record { absolute_ms, auth_ms, ..sample() };
        let bytes = encode(&r, None);
        assert_eq!(decode(&bytes).unwrap(), r, "round trip");
        bytes.len()
    }

    // The absolute deadline is written as the session's life, negated: 5 bytes for the default
    // 12 hours and for anything up to 24 days, 9 bytes beyond (still a round trip); a
    // zero life, or a deadline before creation (no write makes either), is the time itself,
    // and the latter is refused as before.
    #[test]
    fn absolute_deadline_is_written_as_the_life() {
        let created = sample().created_ms;
        let hours_12 = len_with(created + 12 * 3600 * 1000, None);
        let days_24 = len_with(created + (1 << 31), None);
        assert_eq!(hours_12, days_24);
        assert_eq!(len_with(created + (1 << 31) + 1, None), hours_12 + 4, "int64");
        assert_eq!(len_with(created + MAX_LIFETIME_MS, None), hours_12 + 4);
        assert_eq!(len_with(created, None), hours_12 + 4, "zero life: the time itself");
        let at = |life: u64| {
            let bytes = encode(&Record { absolute_ms: created + life, ..sample() }, None);
            let at = 2 + 9; // the array's marker, the version (7), the creation time
            bytes[at..at + 5].to_vec()
        };
        assert_eq!(at(12 * 3600 * 1000), [&[0xd2][..], &(-43_200_000i32).to_be_bytes()].concat());
        let before = Record { absolute_ms: created - 1, ..sample() };
        assert!(decode(&encode(&before, None)).is_err(), "absolute before creation");
    }

    // The authentication time is written counting back from creation: 1 byte at creation and
    // up to 31 ms before it, 2 up to 128 ms, 3 up to 32 s; 9 (the time itself) after creation
    // or a year and more before it. Every form round-trips.
    #[test]
    fn authentication_time_is_written_back_from_creation() {
        let (created, absolute) = (sample().created_ms, sample().absolute_ms);
        let none = len_with(absolute, None);
        let with = |back: i64| {
            let auth = created.checked_add_signed(-back).unwrap();
            len_with(absolute, Some(auth)) - none + 1 // `false` takes one byte
        };
        assert_eq!([with(0), with(31), with(32), with(127), with(128)], [1, 1, 2, 2, 3]);
        assert_eq!([with(32_767), with(32_768)], [3, 5]);
        assert_eq!(with(-1), 9, "after creation: the time itself");
        assert_eq!(with(MAX_LIFETIME_MS as i64 - 1), 9, "a year before: int64");
        assert_eq!(with(MAX_LIFETIME_MS as i64), 9, "beyond: the time itself");
        assert_eq!(len_with(absolute, Some(0)) - none + 1, 1, "1970: the time itself, 0");
    }

    // The last rotation's time is written counting on from creation: 1 byte for a rotation at
    // creation (a login's), 5 for one within 24 days; 0 (never rotated) stays 1 byte; a time
    // before creation is the time itself. Every form round-trips.
    #[test]
    fn rotation_time_is_written_on_from_creation() {
        let created = sample().created_ms;
        let len = |rotated_ms: u64| {
            let r = Record { rotated_ms, ..sample() };
            let bytes = encode(&r, None);
            assert_eq!(decode(&bytes).unwrap(), r, "round trip");
            bytes.len()
        };
        let never = len(0);
        assert_eq!(len(created) - never, 0, "at creation: -1");
        assert_eq!(len(created + 31) - never, 0, "-32: still one byte");
        assert_eq!(len(created + 32) - never, 1, "int8");
        assert_eq!(len(created + 3_600_000) - never, 4, "an hour on: int32");
        assert_eq!(len(created - 1) - never, 8, "before creation: the time itself");
        assert_eq!(len(created + MAX_LIFETIME_MS) - never, 8, "a year on: the time itself");
    }

    // Records written with their times as times (before the relative form) read the same; a
    // negative number that points before 1970 or past the end of time is refused, never a
    // panic, and so is a negative number anywhere else.
    #[test]
    fn times_written_as_themselves_still_read() {
        let created: u64 = 1_763_683_200_000;
        let record = |absolute: &[u8], auth: &[u8], rotated: &[u8]| {
            let mut b = vec![0x97, 0x01, 0xcf];
            b.extend_from_slice(&created.to_be_bytes());
            b.extend_from_slice(absolute);
            b.push(0xc2);
            b.extend_from_slice(auth);
            b.push(0x80);
            b.extend_from_slice(rotated);
            decode(&b)
        };
        let time = |t: u64| [&[0xcf][..], &t.to_be_bytes()].concat();
        let old = record(&time(created + 1000), &time(created - 5), &[0]).unwrap();
        assert_eq!((old.absolute_ms, old.auth_ms), (created + 1000, Some(created - 5)));
        let new = record(&[0xd1, 0xfc, 0x18], &[0xfa], &[0]).unwrap(); // -1000, -6
        assert_eq!((new.absolute_ms, new.auth_ms), (created + 1000, Some(created - 5)));
        let min = [&[0xd3][..], &i64::MIN.to_be_bytes()].concat();
        assert!(record(&time(created + 1000), &min, &[0]).is_err(), "auth before 1970");
        let far = [&[0xd3][..], &(-(MAX_LIFETIME_MS as i64) - 1).to_be_bytes()].concat();
        assert!(record(&far, &[0xff], &[0]).is_err(), "a life beyond a year");
        assert!(record(&min, &[0xff], &[0]).is_err(), "a life of 2^63 ms");
        let rotated = record(&time(created + 1000), &[0xff], &[0xcd, 0x03, 0xe8]).unwrap();
        assert_eq!(rotated.rotated_ms, 1000, "a small rotation time is the time itself");
        let rotated = record(&time(created + 1000), &[0xff], &[0xff]).unwrap();
        assert_eq!(rotated.rotated_ms, created, "-1: rotated at creation");
        let max = [&[0xd3][..], &(-i64::MAX).to_be_bytes()].concat();
        let mut huge = vec![0x97, 0x01, 0xcf];
        huge.extend_from_slice(&(u64::MAX - 5).to_be_bytes());
        huge.extend_from_slice(&[0xcf]);
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        huge.extend_from_slice(&[0xc2, 0xc2, 0x80]);
        huge.extend_from_slice(&max);
        assert!(decode(&huge).is_err(), "a rotation time past the end of time");
        let mut negative_created = vec![0x97, 0x01, 0xff, 0xff, 0xc2, 0xc2, 0x80, 0x00];
        assert!(decode(&negative_created).is_err(), "a negative creation time");
        negative_created[1] = 0xff;
        assert!(decode(&negative_created).is_err(), "a negative version");
    }

    // The cmsgpack forms (empty attributes as an empty array, nil for absent) decode too.
    #[test]
    fn accepts_lua_forms() {
        let bytes = [0x96, 0x01, 0x02, 0x03, 0xc0, 0xc0, 0x90];
        let r = decode(&bytes).unwrap();
        assert_eq!((r.version, r.created_ms, r.absolute_ms), (1, 2, 3));
        assert!(r.attrs.is_empty() && r.principal.is_none());
    }

    // Every truncation and random garbage give an error, never a panic.
    #[test]
    fn hostile_bytes() {
        let full = encode(&sample(), None);
        for n in 0..full.len() {
            assert!(decode(&full[..n]).is_err(), "truncated at {n}");
        }
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..3000usize {
            let bytes: Vec<u8> = (0..len % 97)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let _ = decode(&bytes);
            let mut prefixed = vec![0x96];
            prefixed.extend_from_slice(&bytes);
            let _ = decode(&prefixed);
        }
        assert!(decode(&[0x96, 1, 2, 3, 0xc0, 0xc0, 0xdf, 0xff, 0xff, 0xff, 0xff]).is_err());
    }
}
