//! Fixtures for the benchmarks in `benches/oracle.rs`: keys, a node and signed messages.

use std::collections::BTreeSet;

pub use protocol::testing::{keys, signed};
use protocol::{
    Address, Config, Event, Feed, Keypair, MessageRef, Node, Price, PriceBody, PriceId, Signers,
};

/// Unix ms at which the benchmark's prices are observed.
pub const T0: u64 = 1_767_225_600_000;

/// The production defaults with `keys` as the allowlist.
pub fn config(keys: &[Keypair]) -> Config {
    let list: BTreeSet<Address> = keys.iter().map(Keypair::address).collect();
    Config::new("bench", Feed::eth_usd(), Signers::allowlist(list))
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

pub fn gossip(bytes: Vec<u8>) -> Event {
    Event::Gossip {
        message: MessageRef { token: 0 },
        bytes,
    }
}

/// Feeds one event and drains every action; returns how many there were.
pub fn feed(node: &mut Node, now: u64, event: Event) -> usize {
    node.handle(now, event);
    std::iter::from_fn(|| node.poll_action()).count()
}
