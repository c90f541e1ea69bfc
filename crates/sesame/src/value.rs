//! Encoding of attribute values: one header byte, then the payload.
//!
//! | header | payload |
//! |---|---|
//! | `0x01` | JSON |
//! | `0x11` | JSON, LZ4 block compressed, prefixed by the uncompressed length (u32, little endian) |
//!
//! Values are plain data: nothing that decodes into code. Hostile bytes give an error, and
//! a compressed value claiming more than [`MAX_VALUE_BYTES`] is refused before allocating.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The largest decoded value accepted, in bytes.
pub const MAX_VALUE_BYTES: usize = 16 * 1024 * 1024;

const JSON: u8 = 0x01;
const JSON_LZ4: u8 = 0x11;

/// Encodes a value as JSON, compressed with LZ4 when larger than `compress_above` and when
/// compression actually saves space.
pub fn encode<T: Serialize + ?Sized>(value: &T, compress_above: usize) -> Result<Vec<u8>, String> {
    let json = serde_json::to_vec(value).map_err(|e| e.to_string())?;
    if json.len() > compress_above {
        let packed = lz4_flex::compress(&json);
        if packed.len() + 4 < json.len() {
            let len = u32::try_from(json.len()).map_err(|_| "value too large".to_string())?;
            let mut out = Vec::with_capacity(packed.len() + 5);
            out.push(JSON_LZ4);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&packed);
            return Ok(out);
        }
    }
    let mut out = Vec::with_capacity(json.len() + 1);
    out.push(JSON);
    out.extend_from_slice(&json);
    Ok(out)
}

/// Decodes a value made by [`encode`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    match bytes.split_first() {
        Some((&JSON, json)) => serde_json::from_slice(json).map_err(|e| e.to_string()),
        Some((&JSON_LZ4, rest)) => {
            let json = decompress(rest)?;
            serde_json::from_slice(&json).map_err(|e| e.to_string())
        }
        Some((h, _)) => Err(format!("unknown value format 0x{h:02x}")),
        None => Err("empty value".into()),
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

    // Small values stay plain; large repetitive ones are compressed; both round-trip.
    #[test]
    fn round_trip_and_compression() {
        let small = encode(&"hi", 128).unwrap();
        assert_eq!(small[0], JSON);
        assert_eq!(decode::<String>(&small).unwrap(), "hi");
        let big = "abcd".repeat(200);
        let e = encode(&big, 128).unwrap();
        assert_eq!(e[0], JSON_LZ4);
        assert!(e.len() < big.len() / 4);
        assert_eq!(decode::<String>(&e).unwrap(), big);
    }

    // Hostile bytes give errors, never a panic or a huge allocation.
    #[test]
    fn hostile_bytes() {
        assert!(decode::<String>(&[]).is_err());
        assert!(decode::<String>(&[0x7f, 1, 2]).is_err());
        assert!(decode::<String>(&[JSON, b'{']).is_err());
        assert!(decode::<String>(&[JSON_LZ4, 1]).is_err());
        assert!(decode::<String>(&[JSON_LZ4, 0xff, 0xff, 0xff, 0xff, 0]).is_err());
        assert!(decode::<String>(&[JSON_LZ4, 10, 0, 0, 0, 0xff, 0xff]).is_err());
        for seed in 0u32..2000 {
            let bytes: Vec<u8> = (0..(seed % 40))
                .map(|i| (seed.wrapping_mul(2654435761) >> (i % 24)) as u8)
                .collect();
            let _ = decode::<serde_json::Value>(&bytes);
        }
    }
}
