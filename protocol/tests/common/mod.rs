//! Shared test fixtures: deterministic keys, configs and signed messages.
#![allow(dead_code)]

pub mod cluster;

use std::collections::BTreeSet;

// Not every test uses every fixture.
#[allow(unused_imports)]
pub use protocol::testing::{body, keys, signed, step};
use protocol::{Address, Config, Feed, Keypair, Signers};

pub fn feed() -> Feed {
    Feed::eth_usd()
}

/// The production defaults with these keys as the allowlist, one source and no peer minimum.
pub fn config(keys: &[Keypair]) -> Config {
    let list: BTreeSet<Address> = keys.iter().map(Keypair::address).collect();
    let mut config = Config::new("testnet", feed(), Signers::allowlist(list));
    config.min_sources = 1;
    config.min_peers = 0;
    config
}

pub fn gossip(bytes: Vec<u8>) -> protocol::Event {
    protocol::Event::Gossip {
        message: protocol::MessageRef { token: 7 },
        bytes,
    }
}

pub fn verdict(v: protocol::Verdict) -> protocol::Action {
    protocol::Action::Verdict {
        message: protocol::MessageRef { token: 7 },
        verdict: v,
    }
}
