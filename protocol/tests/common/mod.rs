//! Shared test fixtures: deterministic keys, configs and signed messages.
#![allow(dead_code)]

pub mod cluster;

use std::collections::{BTreeMap, BTreeSet};

use protocol::{Address, Config, Feed, Keypair, Message, Price, PriceBody, PriceId, Signers};

/// Keys with secrets 1, 2, 3, ... (big-endian), the same in every test and in the test vector.
pub fn keys(n: u8) -> Vec<Keypair> {
    (1..=n)
        .map(|i| {
            let mut secret = [0u8; 32];
            secret[31] = i;
            Keypair::from_secret(&secret).unwrap()
        })
        .collect()
}

pub fn feed() -> Feed {
    Feed::eth_usd()
}

/// The production defaults with these keys as the allowlist, one source and no peer minimum.
pub fn config(keys: &[Keypair]) -> Config {
    let list: BTreeSet<Address> = keys.iter().map(Keypair::address).collect();
    let mut config = Config::new("testnet", feed(), Signers::Allowlist(list));
    config.min_sources = 1;
    config.min_peers = 0;
    config
}

pub fn body(origin: &Keypair, observed_at_ms: u64, units: u128) -> PriceBody {
    PriceBody {
        id: PriceId::mint(observed_at_ms, 0, origin.address()),
        feed: feed(),
        price: Price(units),
        decimals: 8,
        observed_at_ms,
    }
}

pub fn signed(network_id: [u8; 32], body: PriceBody, signers: &[&Keypair]) -> Message {
    let digest = body.digest(&network_id);
    let signatures: BTreeMap<_, _> = signers
        .iter()
        .map(|k| (k.address(), k.sign(&digest)))
        .collect();
    Message::new(network_id, body, signatures).unwrap()
}

/// Feeds one event and returns every action it caused.
pub fn step(node: &mut protocol::Node, now: u64, event: protocol::Event) -> Vec<protocol::Action> {
    node.handle(now, event);
    std::iter::from_fn(|| node.poll_action()).collect()
}

pub fn gossip(bytes: Vec<u8>) -> protocol::Event {
    protocol::Event::Gossip {
        message: protocol::MessageRef { peer: 1, token: 7 },
        bytes,
    }
}

pub fn verdict(v: protocol::Verdict) -> protocol::Action {
    protocol::Action::Verdict {
        message: protocol::MessageRef { peer: 1, token: 7 },
        verdict: v,
    }
}
