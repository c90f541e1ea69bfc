//! What a Redis session key holds (a record or a rotation pointer): arbitrary bytes give an
//! error or a value, never a panic, and whatever decodes re-encodes to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sesame_redis::fuzzing::{decode_stored, encode_pointer, encode_record, StoredForm};

fuzz_target!(|data: &[u8]| {
    let Ok(stored) = decode_stored(data) else { return };
    let again = match &stored {
        StoredForm::Record(r) => encode_record(r),
        StoredForm::Pointer(kind, until_ms, successor, sealed) => {
            encode_pointer(*kind, *until_ms, *successor, sealed).expect("a decoded kind encodes")
        }
    };
    assert_eq!(decode_stored(&again), Ok(stored), "re-encoding changed the value");
});
