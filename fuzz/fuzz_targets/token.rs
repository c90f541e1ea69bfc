//! Token parsing: any input is refused or accepted without a panic, and an accepted token is
//! exactly the canonical encoding of what it decoded to.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sesame::{SessionKey, Tag, TokenCodec, TokenSecret};

fn codecs() -> &'static [TokenCodec; 2] {
    static CODECS: OnceLock<[TokenCodec; 2]> = OnceLock::new();
    CODECS.get_or_init(|| {
        let secret = TokenSecret::new(vec![0x5a; 32]).expect("32 bytes is enough");
        [TokenCodec::insecure_development(), TokenCodec::new(vec![secret]).expect("one secret")]
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for codec in codecs() {
        if let Ok(token) = codec.parse(text) {
            assert_eq!(token.expose(), text, "an accepted token must be canonical");
            let key = token.key();
            assert_eq!(SessionKey::from_parts(key.tag(), &key.id()), Some(key));
        }
    }
    // The other decoders of token-derived text: a tag's hex and a key's id.
    if let Some(tag) = text.get(..8).and_then(Tag::from_hex) {
        assert_eq!(Tag::from_hex(&tag.to_hex()), Some(tag));
        if let Some(key) = text.get(8..).and_then(|id| SessionKey::from_parts(tag, id)) {
            assert_eq!(Some(key.id().as_str()), text.get(8..));
        }
    }
});
