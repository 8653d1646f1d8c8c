//! Structure-aware sequences of events, raw gossip bytes among them, into one node, through the
//! `protocol::hostile` harness: it checks after each event that nothing was written without a
//! quorum of distinct valid signatures, no id was signed twice, no invalid signature was sent, and
//! memory stayed within bounds. Any violation panics, which the fuzzer reports.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::hostile::{Hostile, Violation};

fuzz_target!(|bytes: &[u8]| {
    if let Err(Violation(what)) = Hostile::run(bytes) {
        panic!("{what}");
    }
});
