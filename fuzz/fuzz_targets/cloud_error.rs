//! Any bytes as a cloud error body, and as an id on its way into a URL path:
//! never a panic, and an id that passes the check never needs encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let body = drover::cloud::error::parse_body(data);
    if let Some(message) = &body.message {
        assert!(message.chars().count() <= 1003, "a message is shortened");
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = drover::cloud::error::parse_retry_after(text);
        if drover::cloud::id::check(text).is_ok() {
            assert_eq!(drover::cloud::id::segment(text), text);
        }
        let encoded = drover::cloud::id::segment(text);
        assert!(!encoded.contains(['/', '?', '#', '.']));
    }
});
