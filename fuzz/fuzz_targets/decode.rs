//! Arbitrary bytes into the wire decoder: never panics, and whatever decodes re-encodes to the
//! same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::{MAX_MESSAGE_LEN, Message};

fuzz_target!(|bytes: &[u8]| {
    if let Ok(message) = Message::decode(bytes) {
        assert!(bytes.len() <= MAX_MESSAGE_LEN);
        assert_eq!(message.encode(), bytes);
    }
});
