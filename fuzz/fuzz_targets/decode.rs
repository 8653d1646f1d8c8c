//! Arbitrary bytes into the wire decoder: never panics, refuses anything over the size bound
//! before reading it, and whatever decodes re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::{DecodeError, MAX_MESSAGE_LEN, Message};

fuzz_target!(|bytes: &[u8]| {
    match Message::decode(bytes) {
        Ok(message) => assert_eq!(message.encode(), bytes),
        Err(error) => assert_eq!(
            bytes.len() > MAX_MESSAGE_LEN,
            error == DecodeError::TooLong(bytes.len())
        ),
    }
});
