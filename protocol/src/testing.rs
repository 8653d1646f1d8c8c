//! Fixtures for tests, benchmarks and harnesses: keys from small secrets (public knowledge, never
//! for production), price bodies, signed messages, and feeding a node one event. One definition
//! for the protocol's tests, the hostile harness, the benchmarks and the runtime's tests.

use crate::crypto::Keypair;
use crate::io::{Action, Event};
use crate::node::Node;
use crate::price::{Feed, Price, PriceBody, PriceId};
use crate::signatures::Signatures;
use crate::wire::Message;

/// The key whose secret is `secret` as a 32-byte big-endian number.
pub fn key(secret: u8) -> Keypair {
    let mut bytes = [0u8; 32];
    bytes[31] = secret;
    Keypair::from_secret(&bytes).expect("a small nonzero secret is a valid key")
}

/// Keys with secrets 1 to `n`, the same everywhere and in the test vector.
pub fn keys(n: u8) -> Vec<Keypair> {
    (1..=n).map(key).collect()
}

/// An ETH/USD price of `origin`, 8 decimals, observed at `observed_at_ms`, sequence 0.
pub fn body(origin: &Keypair, observed_at_ms: u64, units: u128) -> PriceBody {
    PriceBody {
        id: PriceId::mint(observed_at_ms, 0, origin.address()),
        feed: Feed::eth_usd(),
        price: Price(units),
        decimals: 8,
        observed_at_ms,
    }
}

/// `body` signed by each of `signers` (1 to 16 of them) for the network `network_id`.
pub fn signed(network_id: [u8; 32], body: PriceBody, signers: &[&Keypair]) -> Message {
    let digest = body.digest(&network_id);
    let signatures: Signatures = signers
        .iter()
        .map(|k| (k.address(), k.sign(&digest)))
        .collect();
    Message::new(network_id, body, signatures).expect("1 to 16 signatures")
}

/// Feeds one event and returns every action it caused.
pub fn step(node: &mut Node, now: u64, event: Event) -> Vec<Action> {
    node.handle(now, event);
    std::iter::from_fn(|| node.poll_action()).collect()
}
