//! Fixtures for the benchmarks in `benches/oracle.rs`: keys, a node and signed messages.

use std::collections::BTreeSet;

use protocol::{
    Address, Config, Event, Feed, Keypair, Message, MessageRef, Node, Price, PriceBody, PriceId,
    Signers,
};

/// Unix ms at which the benchmark's prices are observed.
pub const T0: u64 = 1_767_225_600_000;

/// Keys with secrets 1, 2, 3, ...
pub fn keys(n: u8) -> Vec<Keypair> {
    (1..=n)
        .map(|i| {
            let mut secret = [0u8; 32];
            secret[31] = i;
            Keypair::from_secret(&secret).expect("small secrets are valid keys")
        })
        .collect()
}

/// The production defaults with `keys` as the allowlist.
pub fn config(keys: &[Keypair]) -> Config {
    let list: BTreeSet<Address> = keys.iter().map(Keypair::address).collect();
    Config::new("bench", Feed::eth_usd(), Signers::Allowlist(list))
}

/// The `i`-th distinct price from `origin`, observed at `T0 + i` ms.
pub fn body(origin: &Keypair, i: u64) -> PriceBody {
    PriceBody {
        id: PriceId::mint(T0 + i, (i % 4096) as u16, origin.address()),
        feed: Feed::eth_usd(),
        price: Price(301_245_000_000 + u128::from(i)),
        decimals: 8,
        observed_at_ms: T0 + i,
    }
}

pub fn signed(network_id: [u8; 32], body: PriceBody, signers: &[&Keypair]) -> Message {
    let digest = body.digest(&network_id);
    let signatures = signers
        .iter()
        .map(|k| (k.address(), k.sign(&digest)))
        .collect();
    Message::new(network_id, body, signatures).expect("1 to 16 signatures")
}

pub fn gossip(bytes: Vec<u8>) -> Event {
    Event::Gossip {
        message: MessageRef { peer: 0, token: 0 },
        bytes,
    }
}

/// Feeds one event and drains every action; returns how many there were.
pub fn feed(node: &mut Node, now: u64, event: Event) -> usize {
    node.handle(now, event);
    std::iter::from_fn(|| node.poll_action()).count()
}
