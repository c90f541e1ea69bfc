//! Encoding of attribute values: one header byte, then the payload.
//!
//! | header | payload |
//! |---|---|
//! | `0x01` | JSON |
//! | `0x02` | MessagePack (maps with field names) |
//! | `0x11` | JSON, LZ4 block compressed, prefixed by the uncompressed length (u32, little endian) |
//! | `0x12` | MessagePack, compressed the same way |
//! | `0x40` | one of the above, encrypted (see [`crate::crypt`]): key id, nonce, ciphertext |
//!
//! The header says how a value was written, so a store can hold values of both formats and
//! the configured format can change at any time: every value stays readable.
//!
//! Values are plain data: nothing that decodes into code. Hostile bytes give an error, and
//! a compressed value claiming more than [`MAX_VALUE_BYTES`] is refused before allocating.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The largest decoded value accepted, in bytes.
pub const MAX_VALUE_BYTES: usize = 16 * 1024 * 1024;

const MAX_DEPTH: usize = 128;
const JSON: u8 = 0x01;
const MSGPACK: u8 = 0x02;
const LZ4: u8 = 0x10;
/// The header of an encrypted value (see [`crate::crypt`]). It has neither a format's bits nor
/// the compression bit, so no plain value starts with it.
pub const ENCRYPTED: u8 = 0x40;

/// How attribute values are serialized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ValueFormat {
    /// JSON (the default): readable, and every language reads it.
    #[default]
    Json,
    /// MessagePack with field names: about a fifth smaller than JSON for typical objects,
    /// and every language reads it too.
    MessagePack,
}

/// Encodes a value as JSON, compressed with LZ4 when larger than `compress_above` and when
/// compression actually saves space.
pub fn encode<T: Serialize + ?Sized>(value: &T, compress_above: usize) -> Result<Vec<u8>, String> {
    encode_as(ValueFormat::Json, value, compress_above)
}

/// Encodes a value in `format`, compressed with LZ4 when larger than `compress_above` and
/// when compression actually saves space.
pub fn encode_as<T: Serialize + ?Sized>(
    format: ValueFormat,
    value: &T,
    compress_above: usize,
) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(64);
    let header = match format {
        ValueFormat::Json => {
            out.push(JSON);
            serde_json::to_writer(&mut out, value).map_err(|e| e.to_string())?;
            JSON
        }
        ValueFormat::MessagePack => {
            out.push(MSGPACK);
            rmp_serde::encode::write_named(&mut out, value).map_err(|e| e.to_string())?;
            MSGPACK
        }
    };
    let body = out.len() - 1;
    if body > compress_above {
        let packed = lz4_flex::compress(&out[1..]);
        if packed.len() + 4 < body {
            let len = u32::try_from(body).map_err(|_| "value too large".to_string())?;
            let mut c = Vec::with_capacity(packed.len() + 5);
            c.push(header | LZ4);
            c.extend_from_slice(&len.to_le_bytes());
            c.extend_from_slice(&packed);
            return Ok(c);
        }
    }
    Ok(out)
}

/// Decodes a value made by [`encode`] or [`encode_as`], whatever its format.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let (&header, rest) = bytes.split_first().ok_or("empty value")?;
    let unpacked;
    let body = if header & LZ4 != 0 {
        unpacked = decompress(rest)?;
        &unpacked[..]
    } else {
        rest
    };
    match header & !LZ4 {
        JSON => serde_json::from_slice(body).map_err(|e| e.to_string()),
        MSGPACK => {
            let mut de = rmp_serde::Deserializer::from_read_ref(body);
            // The same nesting limit as serde_json's, so hostile input cannot exhaust the stack.
            de.set_max_depth(MAX_DEPTH);
            T::deserialize(&mut de).map_err(|e| e.to_string())
        }
        ENCRYPTED => {
            Err("the value is encrypted; no encryption keys are configured to open it".into())
        }
        _ => Err(format!("unknown value format 0x{header:02x}")),
    }
}

fn decompress(rest: &[u8]) -> Result<Vec<u8>, String> {
    let (len, packed) = rest.split_at_checked(4).ok_or("truncated compressed value")?;
    let mut n = [0u8; 4];
    n.copy_from_slice(len);
    let n = u32::from_le_bytes(n) as usize;
    if n > MAX_VALUE_BYTES {
        return Err(format!("compressed value claims {n} bytes, more than allowed"));
    }
    let mut out = vec![0u8; n];
    let got = lz4_flex::decompress_into(packed, &mut out).map_err(|e| e.to_string())?;
    if got != n {
        return Err("compressed value has the wrong length".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // Small values stay plain; large repetitive ones are compressed; both round-trip, in
    // both formats.
    #[test]
    fn round_trip_and_compression() {
        for f in [ValueFormat::Json, ValueFormat::MessagePack] {
            let small = encode_as(f, &"hi", 128).unwrap();
            assert_eq!(small[0] & LZ4, 0);
            assert_eq!(decode::<String>(&small).unwrap(), "hi");
            let big = "abcd".repeat(200);
            let e = encode_as(f, &big, 128).unwrap();
            assert_ne!(e[0] & LZ4, 0);
            assert!(e.len() < big.len() / 4);
            assert_eq!(decode::<String>(&e).unwrap(), big);
        }
    }

    // MessagePack keeps field names, so untyped reads and struct evolution work, and it is
    // smaller than JSON for a typical object.
    #[test]
    fn msgpack_is_self_describing_and_smaller() {
        let v = json!({"name": "Ada Lovelace", "roles": ["user", "admin"], "n": 3, "ok": true});
        let m = encode_as(ValueFormat::MessagePack, &v, 1 << 20).unwrap();
        let j = encode_as(ValueFormat::Json, &v, 1 << 20).unwrap();
        assert_eq!(m[0], MSGPACK);
        assert_eq!(decode::<serde_json::Value>(&m).unwrap(), v);
        assert!(m.len() < j.len());
        #[derive(serde::Deserialize, PartialEq, Debug)]
        struct Part {
            name: String,
        }
        assert_eq!(decode::<Part>(&m).unwrap(), Part { name: "Ada Lovelace".into() });
    }

    // An encrypted value read without keys says so, whatever follows the header.
    #[test]
    fn encrypted_without_keys() {
        for bytes in [&[ENCRYPTED][..], &[ENCRYPTED, 1, 2, 3]] {
            let err = decode::<String>(bytes).unwrap_err();
            assert!(err.contains("encrypted"), "{err}");
        }
        assert_eq!(ENCRYPTED & LZ4, 0);
        assert!(![JSON, MSGPACK, JSON | LZ4, MSGPACK | LZ4].contains(&ENCRYPTED));
    }

    // Hostile bytes give errors, never a panic or a huge allocation.
    #[test]
    fn hostile_bytes() {
        assert!(decode::<String>(&[]).is_err());
        assert!(decode::<String>(&[0x7f, 1, 2]).is_err());
        assert!(decode::<String>(&[0x03, 1, 2]).is_err());
        assert!(decode::<String>(&[JSON, b'{']).is_err());
        assert!(decode::<String>(&[MSGPACK, 0xdd, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(decode::<Vec<u64>>(&[MSGPACK, 0xdd, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(decode::<String>(&[JSON | LZ4, 1]).is_err());
        assert!(decode::<String>(&[JSON | LZ4, 0xff, 0xff, 0xff, 0xff, 0]).is_err());
        assert!(decode::<String>(&[JSON | LZ4, 10, 0, 0, 0, 0xff, 0xff]).is_err());
        let mut deep = vec![MSGPACK];
        deep.extend(std::iter::repeat_n(0x91, 100_000));
        assert!(decode::<serde_json::Value>(&deep).is_err());
        let mut deep = vec![JSON];
        deep.extend(std::iter::repeat_n(b'[', 100_000));
        assert!(decode::<serde_json::Value>(&deep).is_err());
        for seed in 0u32..4000 {
            let mut bytes: Vec<u8> = (0..(seed % 40))
                .map(|i| (seed.wrapping_mul(2654435761) >> (i % 24)) as u8)
                .collect();
            let _ = decode::<serde_json::Value>(&bytes);
            bytes.insert(0, MSGPACK);
            let _ = decode::<serde_json::Value>(&bytes);
        }
    }
}
