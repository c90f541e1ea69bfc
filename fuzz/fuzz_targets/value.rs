//! Attribute values (header byte, JSON / MessagePack, LZ4): arbitrary bytes give an error or a
//! value, never a panic, and a decoded value re-encodes in both formats and decodes back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use sesame::value::{decode, encode_as};
use sesame::ValueFormat;

/// Nesting depth, and whether any number is a float (floats may come back one ulp off
/// through JSON, so those values are only checked to decode again).
fn shape(v: &Value) -> (usize, bool) {
    match v {
        Value::Array(items) => {
            items.iter().map(shape).fold((1, false), |(d, f), (d2, f2)| (d.max(d2 + 1), f || f2))
        }
        Value::Object(map) => {
            map.values().map(shape).fold((1, false), |(d, f), (d2, f2)| (d.max(d2 + 1), f || f2))
        }
        Value::Number(n) => (0, n.is_f64()),
        _ => (0, false),
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = decode::<serde::de::IgnoredAny>(data);
    let Ok(value) = decode::<Value>(data) else { return };
    let (depth, floats) = shape(&value);
    if depth >= 100 {
        return;
    }
    for format in [ValueFormat::Json, ValueFormat::MessagePack] {
        for compress_above in [0, 128, usize::MAX] {
            let bytes = encode_as(format, &value, compress_above).expect("a decoded value encodes");
            let back = decode::<Value>(&bytes).expect("an encoded value decodes");
            if !floats {
                assert_eq!(back, value, "{format:?} round trip changed the value");
            }
        }
    }
});
