//! The session cookie lookup over arbitrary `Cookie` header bytes (one header per line): no
//! panic, and what it finds is never longer than a cookie may be.
#![no_main]

use std::sync::OnceLock;

use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use sesame::TokenCodec;
use sesame_axum::cookie::MAX_COOKIE_BYTES;
use sesame_axum::CookieConfig;

fn configs() -> &'static [CookieConfig; 2] {
    static CONFIGS: OnceLock<[CookieConfig; 2]> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        let plain = CookieConfig::builder().name("sid").secure(false).build().expect("valid");
        [CookieConfig::default(), plain]
    })
}

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for line in data.split(|b| *b == b'\n') {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            headers.append(COOKIE, v);
        }
    }
    let codec = TokenCodec::insecure_development();
    for config in configs() {
        for value in sesame_axum::fuzzing::cookie_occurrences(config, &headers) {
            assert!(config.name().len() + value.len() <= MAX_COOKIE_BYTES);
            if let Ok(token) = codec.parse(value) {
                assert_eq!(token.expose(), value);
            }
        }
    }
});
