//! The node's own cost on top of signature checks, counted in instructions rather than time (this
//! machine's timings move with its neighbours). Run each mode under callgrind and compare:
//!
//! ```sh
//! cargo build --release -p benches --example quorum_overhead
//! for mode in setup bare node; do
//!   valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.$mode target/release/examples/quorum_overhead $mode
//! done
//! ```
//!
//! `setup` builds 500 prices with 3 signatures each; `bare` adds exactly the 3 recoveries per price
//! that any verifier must do; `node` instead feeds them to a node until each is ready. The node's
//! overhead is (node - bare) / (bare - setup).

use std::hint::black_box;

use benches::{T0, body, config, feed, gossip, keys, signed};
use protocol::{Message, Node};

const PRICES: u64 = 500;

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let keys = keys(4);
    let config = config(&keys);
    let net = config.network_id();
    let messages: Vec<Vec<u8>> = (0..PRICES)
        .map(|i| signed(net, body(&keys[0], i), &[&keys[0], &keys[1], &keys[2]]).encode())
        .collect();
    let now = T0 + PRICES;
    let mut node = Node::new(config, keys[3].address(), 1, now).expect("valid config");
    match mode.as_str() {
        "setup" => {}
        "bare" => {
            for bytes in &messages {
                let message = Message::decode(bytes).expect("valid");
                let digest = message.body.digest(&net);
                let valid = message
                    .signatures()
                    .iter()
                    .all(|(&a, s)| s.is_by(&digest, a));
                assert!(black_box(valid));
            }
        }
        "node" => {
            for bytes in messages {
                black_box(feed(&mut node, now, gossip(bytes)));
            }
            assert_eq!(node.counters().quorum_reached, PRICES);
        }
        _ => panic!("mode: setup, bare or node"),
    }
}
